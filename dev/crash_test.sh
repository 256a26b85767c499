#!/usr/bin/env bash
# dev/crash_test.sh: kill -9 a training run at random moments (and once between a checkpoint's write and its
# rename), resume it each time, and check that the result is what an uninterrupted run gives:
#   - the final model.bin is bit-identical to the uninterrupted run's,
#   - log.jsonl has each step exactly once, in order,
#   - no temp file (NAME.tmp.PID.RAND) is left in the run folder.
# Usage: bash dev/crash_test.sh [KILLS]   (default 12 random kills; `make test-crash` runs it)
# Needs ./train and ./dataprep built. The random moments come from $RANDOM, seeded by CRASH_SEED (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-12}
N=120  # steps of the run
export OMP_NUM_THREADS=1  # a run this small gains nothing from threads, and spinning ones slow a busy machine
RANDOM=${CRASH_SEED:-1}
dir=$(mktemp -d /tmp/finetune_crash.XXXXXX)
trap 'rm -rf "$dir"' EXIT

# data the project makes itself: the repository's own C source as bytes
cat train.c model.h kernels.h > "$dir/text.txt"
./dataprep text --tokenizer bytes --chunk-lines 50 --out "$dir/d" "$dir/text.txt" > /dev/null
flags=(--init 2,4,64 --vocab 257 --max-seq 64 --train "$dir/d_train.bin" --val "$dir/d_val.bin" --batch 8 --seq 64
       --steps $N --lr 1e-3 --warmup 5 --eval-every 10 --val-batches 2 --save-every 3 --print-every 0 --seed 7 --dropout 0.1)

t0=$(date +%s%N)
./train "${flags[@]}" --out "$dir/ref" > /dev/null
ms=$(( ($(date +%s%N) - t0) / 1000000 ))  # an uninterrupted run's time: kills land anywhere in it
echo "     uninterrupted run: ${ms} ms"
fail=0
check_run() {  # $1: the run folder; compares it with the uninterrupted run
    local run=$1 what=$2
    if ! cmp -s "$dir/ref/model.bin" "$run/model.bin"; then echo "FAIL $what: model.bin differs from the uninterrupted run"; fail=1; fi
    local steps
    steps=$(grep -o '^{"step": [0-9]*' "$run/log.jsonl" | grep -o '[0-9]*$' | tr '\n' ' ')
    if [ "$steps" != "$(seq -s ' ' 1 $N) " ]; then echo "FAIL $what: log steps are: $steps"; fail=1; fi
    local left
    left=$(find "$run" -name '*.tmp*' | wc -l)
    if [ "$left" != 0 ]; then echo "FAIL $what: temp files left: $(find "$run" -name '*.tmp*')"; fail=1; fi
    [ $fail = 0 ] && echo "ok   $what: bit-identical model, steps 1..$N logged once each, no temp file"
    return 0
}

# 1. one crash between the write of ckpt.bin and its rename (as a power cut at the worst moment), then resumes
run="$dir/between"
if (FINETUNE_CRASH_BEFORE_RENAME=ckpt.bin exec ./train "${flags[@]}" --out "$run" > /dev/null 2>&1); then
    echo "FAIL: the crash hook did not fire"; exit 1
fi 2> /dev/null
if ls "$run"/ckpt.bin.tmp.* > /dev/null 2>&1; then echo "     killed between write and rename: $(basename "$run"/ckpt.bin.tmp.*) left, no ckpt.bin"; fi
[ -f "$run/ckpt.bin" ] && { echo "FAIL: ckpt.bin exists although its rename never happened"; fail=1; }
./train "${flags[@]}" --out "$run" > /dev/null  # no checkpoint yet: starts again from step 0
check_run "$run" "crash before rename"

# 2. kill -9 at random moments, resuming from the last checkpoint each time
run="$dir/random"
attempts=0 killed=0 resumed=0
finished=0
while [ $finished = 0 ]; do  # until one invocation runs to its end (exit 0)
    resume=()
    [ -f "$run/ckpt.bin" ] && resume=(--resume "$run") && resumed=$((resumed + 1))
    ./train "${flags[@]}" --out "$run" "${resume[@]}" > "$dir/out.txt" 2>&1 &
    pid=$!
    if [ $killed -lt "$kills" ]; then
        # once this invocation has logged a step past the last one logged before (so every invocation makes
        # progress, on a fast or a busy machine), a random moment in the time of the next 4 steps: a few steps
        # per invocation, so KILLS kills land at random moments spread over the run
        start=$(grep -c '^{"step"' "$run/log.jsonl" 2> /dev/null || true)
        [ ${#resume[@]} = 0 ] && start=0
        for _ in $(seq 3000); do
            now=$(grep -c '^{"step"' "$run/log.jsonl" 2> /dev/null || true)
            { [ "${now:-0}" -gt "${start:-0}" ] || ! kill -0 $pid 2> /dev/null; } && break
            sleep 0.01
        done
        t=$((RANDOM % (4 * ms / N + 1)))
        sleep "$((t / 1000)).$(printf '%03d' $((t % 1000)))"
        if kill -9 $pid 2> /dev/null; then killed=$((killed + 1)); fi
        [ -n "${CRASH_VERBOSE:-}" ] && echo "     attempt $attempts: killed after ${t} ms, log has $(grep -c '^{"step"' "$run/log.jsonl" 2> /dev/null) steps"
    fi
    wait $pid 2> /dev/null && finished=1
    attempts=$((attempts + 1))
    [ $attempts -gt $((kills + 60)) ] && { echo "FAIL: no finished run after $attempts attempts"; cat "$dir/out.txt"; exit 1; }
done
echo "     $killed kill -9 at random moments, $attempts invocations, $resumed of them resumed from a checkpoint"
if [ $killed -lt $((kills / 2)) ] || [ $resumed -lt 1 ]; then
    echo "FAIL: too few kills landed ($killed, $resumed resumed) for the test to mean anything"; fail=1
fi
check_run "$run" "random kills"
exit $fail
