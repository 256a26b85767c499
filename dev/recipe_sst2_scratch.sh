#!/usr/bin/env bash
# GLUE SST-2 sentiment with a small GPT trained from scratch (no pretraining): the contrast case for the
# fine-tuning recipes. GPT-2 tokenizer, the GLUE train and dev files as given (dev is the reported split; the
# test labels are hidden), 2 layers x 128 channels plus the classification head, dropout 0.1, one epoch of
# batch 32. About 6 minutes on 2 cores. Needs ../shared/data/sst2 and ../shared/data/gpt2_bpe.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s train dataprep
mkdir -p data runs/sst2_scratch
./dataprep cls --tokenizer ../shared/data/gpt2_bpe --out data/sst2 --text-col sentence \
    --train ../shared/data/sst2/glue/train.tsv --val ../shared/data/sst2/glue/dev.tsv
./train --init 2,2,128 --vocab 50257 --max-seq 64 --train data/sst2_train.ds --val data/sst2_val.ds \
    --batch 32 --seq 64 --epochs 1 --lr 1e-3 --warmup 50 --eval-every 500 --val-batches 0 --metric accuracy \
    --dropout 0.1 --print-every 100 --out runs/sst2_scratch
./train eval --model runs/sst2_scratch/best.bin --data data/sst2_val.ds --batch 32 --seq 64
