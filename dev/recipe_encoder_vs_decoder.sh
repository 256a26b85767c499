#!/usr/bin/env bash
# Encoder or decoder: a BERT-style encoder (--arch encoder: bidirectional attention, masked-LM pretraining with
# the 80/10/10 rule, the class head on [CLS] at position 0) against the GPT-2 decoder of the same size (4 layers,
# 4 heads, 128 channels, 128 positions, GPT-2 tokenizer: dev/pretrain_base.sh's model), both pretrained on the same
# text (the base's Tiny Shakespeare + TinyStories) with the same settings (batch 8 x 128, lr 1e-3, warmup 50), then
# fine-tuned the same way on GLUE SST-2 with dev/recipe_sst2_finetune.sh's splits and full fine-tuning settings
# (batch 32 at 48 tokens, lr 1e-3, dropout 0.1; the checkpoint best on the validation part, every 40th row of
# train, is evaluated on GLUE dev, at 64 tokens so nothing is cut).
#
#   STEPS=N     pretraining steps of each model (default 1500, the base's). With 1500 and BASE (default
#               runs/base_gpt2tok/model.bin) present, the decoder is that base and only the encoder is pretrained.
#   FT_STEPS=M  fine-tuning steps of each (default: one epoch, 2041 steps of 32)
#   TEXT=PREFIX pretraining text already prepared (PREFIX_train.bin, PREFIX_val.bin), e.g. the base's
#               TEXT=../wt-base/data/pretrain; without it, made into data/pretrain as dev/pretrain_base.sh does
#   DEC_PRE=F ENC_PRE=F  reuse a decoder and an encoder pretrained before (e.g. by an earlier run of this
#               recipe: runs/evd_dec_pre/model.bin, runs/evd_enc_pre/model.bin) instead of pretraining
#   PARTS="sst2 ner"  which fine-tuning comparisons to run (default both): SST-2 classification, and WNUT 17
#               named entities with the token head as dev/recipe_wnut17.sh trains it (NER_EPOCHS, default 5)
# Both are also fine-tuned from a random init with the same settings (the contrast case). The two pretraining
# losses are of different tasks (next token against the 15% masked tokens) and are not comparable; the SST-2
# accuracies are. Full length (STEPS=1500, one epoch of fine-tuning): well over an
# hour (not run); STEPS=150 FT_STEPS=200 took 24 minutes on one thread of a busy shared machine (README
# "Encoder or decoder" has its figures). Needs ../shared/data (sst2, gpt2_bpe;
# tinyshakespeare and tinystories without TEXT).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-1500}
FT_STEPS=${FT_STEPS:-}
BASE=${BASE:-runs/base_gpt2tok/model.bin}
make -s train dataprep
mkdir -p data runs/evd_dec_pre runs/evd_enc_pre runs/evd_dec_sst2 runs/evd_enc_sst2
bpe=../shared/data/gpt2_bpe
text=${TEXT:-data/pretrain}
if [ ! -f "${text}_train.bin" ]; then
    ./dataprep text --tokenizer $bpe --out data/pretrain --chunk-lines 100 --split 95/5/0 \
        ../shared/data/tinyshakespeare/input.txt ../shared/data/tinystories/tiny_stories.txt
    text=data/pretrain
fi
pre="--init 4,4,128 --vocab 50257 --max-seq 128 --train ${text}_train.bin --val ${text}_val.bin --batch 8 --seq 128
     --steps $STEPS --lr 1e-3 --warmup 50 --eval-every $((STEPS < 500 ? STEPS : 500)) --val-batches 0 --print-every 100"
PARTS=${PARTS:-sst2 ner}
if [ -n "${DEC_PRE:-}" ]; then
    dec=$DEC_PRE
elif [ "$STEPS" = 1500 ] && [ -f "$BASE" ]; then
    dec=$BASE
else
    ./train $pre --out runs/evd_dec_pre
    dec=runs/evd_dec_pre/model.bin
fi
if [ -n "${ENC_PRE:-}" ]; then
    enc=$ENC_PRE
else
    ./train $pre --arch encoder --out runs/evd_enc_pre
    enc=runs/evd_enc_pre/model.bin
fi
echo "pretraining ($STEPS steps of 8 x 128 tokens; val loss: next-token for the decoder, masked tokens for the encoder):"
echo "  decoder $(./train eval --model "$dec" --data ${text}_val.bin --batch 8 --seq 128)"
echo "  encoder $(./train eval --model "$enc" --data ${text}_val.bin --batch 8 --seq 128)"

if [[ " $PARTS " == *" sst2 "* ]]; then

awk -v tr=data/sst2ft_trainpart.tsv -v va=data/sst2ft_valpart.tsv \
    'NR == 1 { print > tr; print > va; next } NR % 40 == 0 { print > va; next } { print > tr }' \
    ../shared/data/sst2/glue/train.tsv
./dataprep cls --tokenizer $bpe --out data/sst2ft --text-col sentence --train data/sst2ft_trainpart.tsv \
    --val data/sst2ft_valpart.tsv --test ../shared/data/sst2/glue/dev.tsv
if [ -n "$FT_STEPS" ]; then length="--steps $FT_STEPS"; every=$((FT_STEPS < 500 ? FT_STEPS : 500)); else length="--epochs 1"; every=500; fi
ft="--train data/sst2ft_train.ds --val data/sst2ft_val.ds --test data/sst2ft_test.ds --batch 32 --seq 48 $length
    --warmup 50 --dropout 0.1 --eval-every $every --val-batches 0 --metric accuracy --print-every 100 --lr 1e-3"
./train --model "$dec" $ft --out runs/evd_dec_sst2
./train --model "$enc" $ft --out runs/evd_enc_sst2
# the contrast case: the same fine-tuning from a random init, no pretraining
mkdir -p runs/evd_dec_scratch runs/evd_enc_scratch
./train --init 4,4,128 --vocab 50257 --max-seq 128 $ft --out runs/evd_dec_scratch
./train --init 4,4,128 --vocab 50257 --max-seq 128 --arch encoder $ft --out runs/evd_enc_scratch

echo "SST-2, the best checkpoint on the validation part, on GLUE dev (872 sentences, 64 tokens):"
for run in dec_sst2 enc_sst2 dec_scratch enc_scratch; do
    echo "  $run $(./train eval --model runs/evd_$run/best.bin --data data/sst2ft_test.ds --batch 32 --seq 64 | cut -c1-60)"
done
fi

# WNUT 17 named entities: the token head on every position, dev/recipe_wnut17.sh's data and settings. The
# encoder tags a word seeing the words on both sides; the decoder only those before it.
if [[ " $PARTS " == *" ner "* ]]; then
w=../shared/data/wnut17
./dataprep tok --tokenizer $bpe --out data/wnut17 --max-len 128 --train $w/wnut17train.conll \
    --val $w/emerging.dev.conll --test $w/emerging.test.annotated
ner="--lr 1e-3 --train data/wnut17_train.ds --val data/wnut17_val.ds --test data/wnut17_test.ds --batch 16 --seq 72
     --epochs ${NER_EPOCHS:-5} --warmup 50 --dropout 0.1 --eval-every 212 --val-batches 0 --metric f1 --print-every 106"
mkdir -p runs/evd_dec_ner runs/evd_enc_ner runs/evd_dec_ner_scratch runs/evd_enc_ner_scratch
./train --model "$dec" $ner --out runs/evd_dec_ner
./train --model "$enc" $ner --out runs/evd_enc_ner
./train --init 4,4,128 --vocab 50257 --max-seq 128 $ner --out runs/evd_dec_ner_scratch
./train --init 4,4,128 --vocab 50257 --max-seq 128 --arch encoder $ner --out runs/evd_enc_ner_scratch
echo "WNUT 17, the best checkpoint on dev entity F1, on the test file (128 tokens):"
for run in dec_ner enc_ner dec_ner_scratch enc_ner_scratch; do
    j=$(./train eval --model runs/evd_$run/best.bin --data data/wnut17_test.ds --batch 16 --seq 128)
    echo "  $run entity F1 $(echo "$j" | grep -o '"entity_f1": [0-9.]*' | cut -d' ' -f2)," \
         "precision $(echo "$j" | grep -o '"entity_precision": [0-9.]*' | cut -d' ' -f2)," \
         "recall $(echo "$j" | grep -o '"entity_recall": [0-9.]*' | cut -d' ' -f2)," \
         "token accuracy $(echo "$j" | grep -o '"token_accuracy": [0-9.]*' | cut -d' ' -f2)"
done
fi
