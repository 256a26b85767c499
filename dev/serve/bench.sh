#!/usr/bin/env bash
# Server figures at GPT-2 124M shape with random weights (--init 12,12,768), OMP_NUM_THREADS threads (2):
#   1. single-stream generation: `./train sample` against one request to `./train serve` (the same prompt of
#      16 ids, GEN=64 greedy tokens), alternated ROUNDS=2 times; tokens/s as each reports it (prompt pass included)
#      and as the client sees it (HTTP included)
#   2. classification at 8 concurrent clients: a 2-class head on the 124M shape (one training step on a
#      made-up dataset, so that the checkpoint has a head), dev/serve/load_test.py --endpoint classify
#   bash dev/serve/bench.sh            (from the repo root; needs ../shared/data/gpt2_bpe; a few minutes)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
ROUNDS=${ROUNDS:-2}
REQUESTS=${REQUESTS:-500}
GEN=${GEN:-64}          # tokens per generation
CLASSIFY=${CLASSIFY:-1}  # 0: the generation figures only
TOK=../shared/data/gpt2_bpe
OUT=bench_out/serve
mkdir -p $OUT
PROMPT="464 3290 286 1204 318 257 1295 13 632 373 257 3621 1110 290 262 4252"
echo "machine: $(nproc --all) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg); OMP_NUM_THREADS=$OMP_NUM_THREADS"
./train serve --init 12,12,768 --port 0 --access-log $OUT/access.jsonl > $OUT/serve.out 2> $OUT/serve.err &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 600); do grep -q listening $OUT/serve.out 2>/dev/null && break; sleep 0.1; done
PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' $OUT/serve.out)
IDS=$(echo $PROMPT | tr ' ' ',')
for r in $(seq $ROUNDS); do
  ./train sample --init 12,12,768 --tokens "$PROMPT" --gen $GEN --temperature 0 2>&1 >/dev/null | grep -o 'sample:.*' | sed "s/^/round $r: /"
  python3 - "$PORT" "$IDS" "$r" "$GEN" <<'PY'
import http.client, json, sys, time
port, ids, r, gen = int(sys.argv[1]), [int(x) for x in sys.argv[2].split(",")], sys.argv[3], int(sys.argv[4])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
t0 = time.perf_counter()
c.request("POST", "/v1/completions", json.dumps({"prompt": ids, "max_tokens": gen, "temperature": 0}))
j = json.loads(c.getresponse().read())
dt = time.perf_counter() - t0
n = j["usage"]["completion_tokens"]
print("round %s: serve: %d prompt tokens, %d generated in %.3f s: %.1f tokens/s (server's timing); client: %.3f s, %.1f tokens/s"
      % (r, len(ids), n, j["timing"]["seconds"], j["timing"]["tokens_per_s"], dt, n / dt))
PY
done
kill -TERM $PID; wait $PID || true
if [ "$CLASSIFY" = 0 ]; then exit 0; fi
# a 2-class head on the 124M shape
python3 - > $OUT/cls.tsv <<'PY'
import random
random.seed(1)
w = "good bad fine great awful movie plot actor boring fun loved hated the a was it".split()
print("text\tlabel")
for i in range(200):
    print(" ".join(random.choice(w) for _ in range(random.randint(4, 16))) + "\t" + random.choice(["neg", "pos"]))
PY
./dataprep cls --tokenizer $TOK --out $OUT/cls $OUT/cls.tsv > /dev/null
[ -f $OUT/cls_run/model.bin ] || { mkdir -p $OUT/cls_run; ./train --init 12,12,768 --train $OUT/cls_train.ds --steps 1 --batch 2 --seq 32 --out $OUT/cls_run > $OUT/cls_train.log 2>&1; }
./train serve --model $OUT/cls_run/model.bin --tokenizer $TOK --labels $OUT/cls_labels.txt --port 0 --access-log $OUT/access_cls.jsonl > $OUT/serve.out 2> $OUT/serve.err &
PID=$!
for _ in $(seq 600); do grep -q listening $OUT/serve.out 2>/dev/null && break; sleep 0.1; done
PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' $OUT/serve.out)
python3 dev/serve/load_test.py --port $PORT --endpoint classify --clients 8 --requests $REQUESTS --time-limit 60
kill -TERM $PID; wait $PID || true
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
