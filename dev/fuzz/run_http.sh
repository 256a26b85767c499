#!/usr/bin/env bash
# Builds dev/fuzz/fuzz_http.c (serve.c's HTTP parser and JSON request readers) with clang's libFuzzer +
# ASan + UBSan, replays dev/fuzz/regress/http/, then fuzzes each of the 4 targets for SECONDS (default 60).
#   bash dev/fuzz/run_http.sh [SECONDS]        (from the repo root; needs clang)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER=${1:-60}
OUT=${FUZZ_OUT:-/tmp/finetune_fuzz_http}
mkdir -p "$OUT" dev/fuzz/crashes
clang -O1 -g -std=c11 -Wno-unknown-pragmas -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -o "$OUT/fuzz_http" dev/fuzz/fuzz_http.c -lm
if ls dev/fuzz/regress/http/* >/dev/null 2>&1; then "$OUT/fuzz_http" dev/fuzz/regress/http/*; fi
for t in 0 1 2 3; do
  corpus="$OUT/corpus_$t"
  mkdir -p "$corpus"
  case $t in  # seeds; the first byte selects the target
    0) printf '\x00POST /v1/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\n{}GET /health?x HTTP/1.0\nTransfer-Encoding: chunked\n\n' > "$corpus/seed" ;;
    1) printf '\x01{"prompt": [1, 2], "max_tokens": 5, "temperature": 0.5, "top_p": 1, "stop": ["a", "\\u00e9"], "stream": true, "seed": 3, "x": [{"y": null}]}' > "$corpus/seed" ;;
    2) printf '\x02{"texts": ["a", "\\ud83d\\ude00", ""], "model": 1}' > "$corpus/seed" ;;
    3) printf '\x03a"\\\n\x01\xc3\xa9\xc3\x28\xed\xa0\x80\xf4\x90\x80\x80\xf0\x9f\x98\x80' > "$corpus/seed" ;;
  esac
  echo "== target $t: ${SECONDS_PER}s"
  "$OUT/fuzz_http" "$corpus" -max_total_time="$SECONDS_PER" -max_len=4096 -timeout=10 \
    -artifact_prefix=dev/fuzz/crashes/ -print_final_stats=1 2>&1 | grep -E "stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY|crash-|timeout-" || true
done
ls dev/fuzz/crashes/ 2>/dev/null | head
