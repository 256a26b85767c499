#!/usr/bin/env bash
# Multi-task training against single-task training, on GLUE SST-2 (sentiment) and SMS Spam, from the same base:
# the 4-layer 128-channel GPT-2-tokenizer base pretrained on Tiny Shakespeare + TinyStories (dev/pretrain_base.sh;
# BASE=path/to/model.bin to use another copy). Three full fine-tuning runs, batch 16 x 64 tokens, lr 1e-3:
#   sst2   SST-2 alone, 600 steps
#   sms    SMS Spam alone, 300 steps
#   multi  one trunk with both heads (a 2-class head each: rows 0-1 and 2-3 of cls_w), 900 steps, each step one
#          task drawn by temperature sampling (T = 2: p ~ sqrt(batches per epoch), about 0.79 / 0.21, so about
#          the single-task runs' 600 and 300 steps, in one run)
# Splits as in dev/recipe_sst2_finetune.sh (validation: every 40th row of GLUE train; test: GLUE dev) and
# dev/recipe_sms_finetune.sh (dataprep's seeded 80/10/10). The checkpoint is chosen on validation accuracy (the
# multi-task run: the mean of the two tasks'); each task's test split is evaluated once at the end, at --seq 64.
# 11m45s measured on one thread (OMP_NUM_THREADS=1) of the shared 2-core machine (load average about 8 then):
# 234 s + 91 s + 346 s of training, the rest validation, dataprep and the test evaluations. Needs ../shared/data
# (sst2, sms_spam, gpt2_bpe).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s train dataprep
BASE=${BASE:-runs/base_gpt2tok/model.bin}
[ -f "$BASE" ] || bash dev/pretrain_base.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
bpe=../shared/data/gpt2_bpe
mkdir -p data runs
awk -v tr=data/mt_sst2_trainpart.tsv -v va=data/mt_sst2_valpart.tsv \
    'NR == 1 { print > tr; print > va; next } NR % 40 == 0 { print > va; next } { print > tr }' \
    ../shared/data/sst2/glue/train.tsv
./dataprep cls --tokenizer $bpe --out data/mt_sst2 --text-col sentence --train data/mt_sst2_trainpart.tsv \
    --val data/mt_sst2_valpart.tsv --test ../shared/data/sst2/glue/dev.tsv
./dataprep cls --tokenizer $bpe --out data/mt_sms --no-header --label-col 0 --text-col 1 --input-format tsv \
    ../shared/data/sms_spam/SMSSpamCollection
common="--model $BASE --batch 16 --seq 64 --lr 1e-3 --warmup 30 --dropout 0.1 --val-batches 0 --metric accuracy
        --print-every 100"
rm -rf runs/mt_sst2 runs/mt_sms runs/mt_multi
./train $common --train data/mt_sst2_train.ds --val data/mt_sst2_val.ds --steps 600 --eval-every 150 --out runs/mt_sst2
./train $common --train data/mt_sms_train.ds --val data/mt_sms_val.ds --steps 300 --eval-every 75 --out runs/mt_sms
./train $common --task sst2=cls:data/mt_sst2_train.ds:data/mt_sst2_val.ds --task sms=cls:data/mt_sms_train.ds:data/mt_sms_val.ds \
    --task-sampling temperature --task-temp 2 --steps 900 --eval-every 225 --out runs/mt_multi
# each task's test split, once, with the checkpoint chosen on validation
for t in sst2 sms; do
    echo "single-task $t, test:"
    ./train eval --model runs/mt_$t/best.bin --data data/mt_${t}_test.ds --batch 32 --seq 64
    echo "multi-task, task $t, test:"
    ./train eval --model runs/mt_multi/best.bin --task-head $t --data data/mt_${t}_test.ds --batch 32 --seq 64
done
