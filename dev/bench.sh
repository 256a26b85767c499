#!/usr/bin/env bash
# make bench: GPT-2 124M-shaped full training steps (random init, random tokens), this project and PyTorch
# measured back to back in one run, and their ratio. PyTorch comes from Debian (python3-torch); it is given
# OPENBLAS_CORETYPE=SkylakeX so Debian's OpenBLAS uses its AVX-512 kernels on CPUs it does not recognise
# (its best on this kind of machine; see dev/bench_torch.py). Set SHAPE, STEPS or THREADS to change the run:
#   SHAPE="--init 6,6,384" make bench
set -euo pipefail
cd "$(dirname "$0")/.."
shape=${SHAPE:-"--init 12,12,768"}
steps=${STEPS:-5}
threads=${THREADS:-2}
read -r L NH C <<<"$(echo "$shape" | sed 's/.*--init \([0-9]*\),\([0-9]*\),\([0-9]*\).*/\1 \2 \3/')"
py=/usr/bin/python3
[ -x "$py" ] || py=python3

echo "== finetune.c: L=$L NH=$NH C=$C, B=4 T=64, $steps steps after 1 warmup, $threads threads"
ours=$(OMP_NUM_THREADS=$threads ./train bench $shape --vocab 50257 --batch 4 --seq 64 --steps "$steps")
echo "$ours"
if ! "$py" -c "import torch" 2>/dev/null; then
    echo "PyTorch not found (apt-get install python3-torch libopenblas0-pthread): no side-by-side ratio"
    exit 0
fi
echo "== PyTorch $("$py" -c 'import torch; print(torch.__version__)'), same shape"
theirs=$(OPENBLAS_CORETYPE=SkylakeX "$py" dev/bench_torch.py --L "$L" --NH "$NH" --C "$C" --B 4 --T 64 \
         --steps "$steps" --threads "$threads" | tail -n 1)
echo "$theirs"
ms() { echo "$1" | sed 's/.*"ms_per_step": \([0-9.]*\).*/\1/'; }
rss() { echo "$1" | sed 's/.*"peak_rss_mb": \([0-9.]*\).*/\1/'; }
awk -v a="$(ms "$ours")" -v b="$(ms "$theirs")" -v ra="$(rss "$ours")" -v rb="$(rss "$theirs")" 'BEGIN {
    printf "ratio: finetune.c step time / PyTorch step time = %.2f (%.2fx %s); peak RSS %.0f MB vs %.0f MB\n",
           a / b, (a < b ? b / a : a / b), (a < b ? "faster" : "slower"), ra, rb }'
