#!/usr/bin/env bash
# Fuzzes the readers (dev/fuzz/readers.h) with libFuzzer + ASan + UBSan: builds them (make fuzz), makes seed
# corpora from real files (make_seeds.sh), replays dev/fuzz/regress/, then runs each target for SECONDS
# (default 60), JOBS at a time (default 1), and prints one line per target: executions, peak memory, result.
# Exits 1 if any target crashed (sanitizer report, abort, timeout or out-of-memory), so CI can run it.
#   bash dev/fuzz/run_readers.sh [SECONDS] [NAMES...]        (from the repo root; JOBS=2 to run two at once)
# A crash input lands in dev/fuzz/crashes/NAME-crash-*; after the fix, keep it as dev/fuzz/regress/NAME/NAME
# so that `make test` (./fuzz_replay) replays it.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER=${1:-60}
shift || true
NAMES=${*:-ckpt resume safetensors gguf adapter peft ds tokens tokenizer tokjson}
OUT=${FUZZ_OUT:-/tmp/finetune_fuzz}
JOBS=${JOBS:-1}
make -s train dataprep fuzz_replay fuzz >/dev/null
bash dev/fuzz/make_seeds.sh "$OUT/seeds" >/dev/null
./fuzz_replay || true  # (says which folders are empty)
mkdir -p dev/fuzz/crashes
# -timeout=60: a slow input is a hang, but nice -n 19 on a busy shared machine can stall a process for seconds
# (a 10 s limit reported a 0.6 s input as a timeout once)
one() {
    local t=$1 corpus="$OUT/corpus_$1"
    mkdir -p "$corpus"
    cp -n "$OUT/seeds/$t"/* "$corpus"/ 2>/dev/null || true
    nice -n 19 dev/fuzz/bin/fuzz_"$t" "$corpus" -max_total_time="$SECONDS_PER" -rss_limit_mb=2048 -timeout=60 \
        -report_slow_units=60 -artifact_prefix=dev/fuzz/crashes/"$t"- -print_final_stats=1 > "$OUT/log_$t" 2>&1 || true
    local execs rss result
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/log_$t" | grep -o '[0-9]*$' || echo 0)
    rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$OUT/log_$t" | grep -o '[0-9]*$' || echo '?')
    # a crash, leak, timeout or out-of-memory; not a "slow unit", which libFuzzer also writes out (an input that
    # once took 10 s: on a busy machine a nice 19 process is stalled that long, see the -timeout note above)
    result=$(grep -oE 'ERROR: [A-Za-z]+: [^ ]+( [^ ]+)?|SUMMARY: .*|Test unit written to .*' "$OUT/log_$t" | grep -v 'slow-unit-' | head -1 || true)
    printf 'fuzz %-12s %4ss  %10s executions  peak %5s MB  %s\n' "$t" "$SECONDS_PER" "$execs" "$rss" "${result:-no crash}"
    if [ -n "$result" ] || [ "$execs" = 0 ]; then touch "$OUT/failed_$t"; fi
}
rm -f "$OUT"/failed_*
running=0
for t in $NAMES; do
    one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
ls dev/fuzz/crashes/ 2>/dev/null | head
if ls "$OUT"/failed_* >/dev/null 2>&1; then echo "fuzz: FAILED: $(ls "$OUT"/failed_* | sed 's/.*failed_//' | tr '\n' ' ')(logs: $OUT/log_NAME)"; exit 1; fi
echo "fuzz: all targets ran without a crash"
