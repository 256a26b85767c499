#!/usr/bin/env bash
# SMS Spam, the fine-tuning way: pretrain a small GPT (4 layers, 128 channels, GPT-2 tokenizer) on Tiny
# Shakespeare + the TinyStories sample as language modelling (dev/pretrain_base.sh), then fine-tune it with a
# classification head, once with all weights and once with LoRA (r=8 on every projection; base frozen, head
# trained), and compare with the same model trained from scratch (dev/recipe_sms_scratch.sh). About 25 minutes
# on 2 cores, most of it the pretraining. Needs ../shared/data (tinyshakespeare, tinystories, sms_spam, gpt2_bpe).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s train dataprep
mkdir -p data runs/sms_full runs/sms_lora
bash dev/pretrain_base.sh
bpe=../shared/data/gpt2_bpe
./dataprep cls --tokenizer $bpe --out data/sms --no-header --label-col 0 --text-col 1 --input-format tsv \
    ../shared/data/sms_spam/SMSSpamCollection
common="--model runs/base_gpt2tok/model.bin --train data/sms_train.ds --val data/sms_val.ds --test data/sms_test.ds
        --batch 16 --seq 128 --steps 600 --warmup 30 --eval-every 200 --val-batches 0 --metric accuracy
        --print-every 100 --tokenizer $bpe"
./train $common --lr 1e-3 --out runs/sms_full
./train $common --lr 3e-3 --method lora --lora-rank 8 --lora-targets qkv,proj,fc,fcproj --out runs/sms_lora
