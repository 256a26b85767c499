#!/usr/bin/env bash
# The base model the fine-tuning recipes start from: a small GPT (4 layers, 4 heads, 128 channels, 128
# positions, GPT-2 tokenizer) pretrained as a language model on Tiny Shakespeare + the TinyStories sample,
# 1500 steps of batch 8 x 128 tokens. Writes data/pretrain_{train,val}.bin and runs/base_gpt2tok/ (model.bin,
# best.bin; val loss about 4.64). About 16 minutes on 2 cores. Always pretrains; the recipes that can reuse
# an existing runs/base_gpt2tok/model.bin check for it before calling this. Needs ../shared/data
# (tinyshakespeare, tinystories, gpt2_bpe).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s train dataprep
mkdir -p data runs/base_gpt2tok
bpe=../shared/data/gpt2_bpe
./dataprep text --tokenizer $bpe --out data/pretrain --chunk-lines 100 --split 95/5/0 \
    ../shared/data/tinyshakespeare/input.txt ../shared/data/tinystories/tiny_stories.txt
./train --init 4,4,128 --vocab 50257 --max-seq 128 --train data/pretrain_train.bin --val data/pretrain_val.bin \
    --batch 8 --seq 128 --steps 1500 --lr 1e-3 --warmup 50 --eval-every 500 --val-batches 0 --print-every 100 \
    --out runs/base_gpt2tok
