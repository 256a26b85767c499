#!/usr/bin/env bash
# SMS Spam classification with a small GPT trained from scratch (no pretraining): the contrast case for the
# fine-tuning recipes. GPT-2 tokenizer, seeded stratified 80/10/10 split, 2 layers x 128 channels plus the
# classification head, 600 steps of batch 16; the model with the best validation accuracy is evaluated once
# on the test split, with the confusion matrix and DIR/errors.md. About 1.5 minutes on 2 cores.
# Needs ../shared/data/sms_spam and ../shared/data/gpt2_bpe (see the README's Data section).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s train dataprep
mkdir -p data runs/sms_scratch
./dataprep cls --tokenizer ../shared/data/gpt2_bpe --out data/sms --no-header --label-col 0 --text-col 1 \
    --input-format tsv ../shared/data/sms_spam/SMSSpamCollection
./train --init 2,2,128 --vocab 50257 --max-seq 128 --train data/sms_train.ds --val data/sms_val.ds \
    --test data/sms_test.ds --batch 16 --seq 128 --steps 600 --lr 1e-3 --warmup 30 --eval-every 200 \
    --val-batches 0 --metric accuracy --print-every 100 --out runs/sms_scratch --log runs/sms_scratch/log.jsonl \
    --tokenizer ../shared/data/gpt2_bpe
