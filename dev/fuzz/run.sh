#!/usr/bin/env bash
# Builds dev/fuzz/fuzz_dataprep.c with clang's libFuzzer + ASan + UBSan, replays the regression inputs
# in dev/fuzz/regress/, then fuzzes each of the 5 targets for SECONDS (default 60) from small seeds.
#   bash dev/fuzz/run.sh [SECONDS]        (from the repo root; needs clang)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER=${1:-60}
OUT=${FUZZ_OUT:-/tmp/finetune_fuzz}
mkdir -p "$OUT" dev/fuzz/crashes
clang -O1 -g -std=c11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -o "$OUT/fuzz_dataprep" dev/fuzz/fuzz_dataprep.c -lm
regress=$(find dev/fuzz/regress -maxdepth 1 -type f 2>/dev/null | sort)  # files only: regress/http/ is fuzz_http's
if [ -n "$regress" ]; then "$OUT/fuzz_dataprep" $regress; fi
for t in 0 1 2 3 4; do
  corpus="$OUT/corpus_$t"
  mkdir -p "$corpus"
  case $t in  # one seed per target; the first byte selects it
    0) printf '\x00finetune.c tokenizer 1\ntype bpe\nmerges 2\n104 101\n256 108\nspecials 1\n<|endoftext|>\n' > "$corpus/seed" ;;
    1) printf '\x01text,label\n"a, ""b""",1\n"multi\nline",0\n' > "$corpus/seed" ;;
    2) printf '\x02text\tlabel\nhello\t1\n' > "$corpus/seed" ;;
    3) printf '\x03{"text": "hi \\u00e9 \\ud83d\\ude00", "label": 1, "x": [1, {"y": null}]}\n' > "$corpus/seed" ;;
    4) printf "\x04Hello world! It's caf\xc3\xa9 \xff\xfe  \n\n 123" > "$corpus/seed" ;;
  esac
  echo "== target $t: ${SECONDS_PER}s"
  "$OUT/fuzz_dataprep" "$corpus" -max_total_time="$SECONDS_PER" -max_len=4096 -timeout=10 \
    -artifact_prefix=dev/fuzz/crashes/ -print_final_stats=1 2>&1 | grep -E "stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY|crash-|timeout-" || true
done
ls dev/fuzz/crashes/ 2>/dev/null | head
