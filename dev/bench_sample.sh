#!/usr/bin/env bash
# Generation speed: GPT-2 124M-shaped model (random init), batch 1, a prompt of M tokens then N new tokens,
# greedy, with a KV cache; ./train sample and PyTorch (dev/bench_sample.py, Debian's python3-torch with
# OPENBLAS_CORETYPE=SkylakeX, see dev/bench.sh; projections as F.linear, then as torch.mv) back to back,
# and the ratios. All count tokens/s = N / (prompt pass + N steps). All run with OMP_WAIT_POLICY=PASSIVE: a
# decode step is ~100 short parallel loops, and spinning threads lose badly when anything else runs on the
# machine (check the load printed with each run).
#   SHAPE="--init 6,6,384" M=64 N=256 THREADS=1 bash dev/bench_sample.sh
set -euo pipefail
cd "$(dirname "$0")/.."
shape=${SHAPE:-"--init 12,12,768"}
M=${M:-16}
N=${N:-128}
threads=${THREADS:-2}
read -r L NH C <<<"$(echo "$shape" | sed 's/.*--init \([0-9]*\),\([0-9]*\),\([0-9]*\).*/\1 \2 \3/')"
py=/usr/bin/python3
[ -x "$py" ] || py=python3
export OMP_WAIT_POLICY=PASSIVE

echo "== finetune.c: L=$L NH=$NH C=$C, prompt $M tokens + $N generated, greedy, $threads threads (load: $(cut -d' ' -f1 /proc/loadavg))"
prompt=$(seq -s ' ' 1 "$M")
ours=$(OMP_NUM_THREADS=$threads ./train sample $shape --vocab 50257 --tokens "$prompt" --gen "$N" --temperature 0 \
       --stop -1 2>&1 >/dev/null | grep tokens/s)
echo "$ours"
if ! "$py" -c "import torch" 2>/dev/null; then
    echo "PyTorch not found (apt-get install python3-torch libopenblas0-pthread): no side-by-side ratio"
    exit 0
fi
a=$(echo "$ours" | sed 's/.*: \([0-9.]*\) tokens\/s.*/\1/')
# PyTorch twice: --mv 0 projects with F.linear as nn.Linear does; --mv 1 uses torch.mv for one-token steps
for mv in 0 1; do
    echo "== PyTorch $("$py" -c 'import torch; print(torch.__version__)'), same shape, --mv $mv (load: $(cut -d' ' -f1 /proc/loadavg))"
    theirs=$(OPENBLAS_CORETYPE=SkylakeX "$py" dev/bench_sample.py --L "$L" --NH "$NH" --C "$C" --M "$M" --N "$N" \
             --threads "$threads" --mv "$mv" | tail -n 1)
    echo "$theirs"
    b=$(echo "$theirs" | sed 's/.*"tokens_per_s": \([0-9.]*\).*/\1/')
    awk -v a="$a" -v b="$b" -v mv="$mv" 'BEGIN {
        printf "ratio (--mv %d): finetune.c %.1f tokens/s / PyTorch %.1f tokens/s = %.2f (%.2fx %s)\n", mv, a, b, a / b,
               (a > b ? a / b : b / a), (a > b ? "faster" : "slower") }'
done
