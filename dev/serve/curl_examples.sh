#!/usr/bin/env bash
# The README's curl examples, run against a server: every endpoint once, then SIGTERM.
#   bash dev/serve/curl_examples.sh                 # a tiny random model with the byte tokenizer
#   FLAGS="--model run/model.bin --tokenizer ../shared/data/gpt2_bpe" bash dev/serve/curl_examples.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
FLAGS=${FLAGS:-"--init 2,2,32 --vocab 256 --max-seq 64 --tokenizer bytes"}
OUT=$(mktemp -d)
./train serve $FLAGS --port 0 --access-log "$OUT/access.jsonl" > "$OUT/stdout" 2> "$OUT/stderr" &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$OUT"' EXIT
for _ in $(seq 100); do grep -q listening "$OUT/stdout" 2>/dev/null && break; sleep 0.1; done
PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$OUT/stdout")
URL=http://127.0.0.1:$PORT
set -x
curl -s $URL/health; echo
curl -s $URL/v1/completions -H 'Content-Type: application/json' \
     -d '{"prompt": "Hello", "max_tokens": 8, "temperature": 0}'; echo
curl -sN $URL/v1/completions -d '{"prompt": "Hello", "max_tokens": 3, "temperature": 0.8, "top_p": 0.9, "stream": true}'
curl -s $URL/v1/completions -d '{"prompt": [72, 101], "max_tokens": 4, "stop": ["\n"], "seed": 1}'; echo
curl -s $URL/v1/completions -d '{"prompt": "Hello",'; echo                 # malformed: 400 with a JSON error
curl -s $URL/v1/classify -d '{"texts": ["a fine film", "a dull one"]}'; echo  # 400 here: this model has the LM head
curl -s $URL/metrics | grep -v '^#' | grep -E 'requests_total|tokens|queue'
set +x
kill -TERM $PID
wait $PID
tail -n 2 "$OUT/stderr"
echo "access log:"; cat "$OUT/access.jsonl"
