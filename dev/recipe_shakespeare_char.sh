#!/usr/bin/env bash
# Tiny Shakespeare, character level (byte tokenizer), a small GPT from scratch: nanoGPT's small CPU config
# (4 layers, 4 heads, 128 channels, context 64, batch 12, 2000 iterations, lr 1e-3 decaying to 1e-4,
# beta2 0.99, no dropout), which its README reports at about 1.88 validation loss. About 3 minutes on 2 cores.
# Our split differs from nanoGPT's (it holds out the last 10% of the file): a seeded 90/10 split of
# 100-line chunks. Needs ../shared/data/tinyshakespeare/input.txt (see the README's Data section).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s train dataprep
mkdir -p data runs/shakechar
./dataprep text --tokenizer bytes --out data/shakechar --chunk-lines 100 --split 90/10/0 \
    ../shared/data/tinyshakespeare/input.txt
./train --init 4,4,128 --vocab 257 --max-seq 64 --train data/shakechar_train.bin --val data/shakechar_val.bin \
    --batch 12 --seq 64 --steps 2000 --lr 1e-3 --warmup 100 --min-lr-frac 0.1 --weight-decay 0.1 --beta2 0.99 \
    --eval-every 500 --val-batches 0 --print-every 100 --out runs/shakechar --log runs/shakechar/log.jsonl
