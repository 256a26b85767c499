#!/usr/bin/env bash
# Named-entity recognition on WNUT 17 (emerging and rare entities in tweets, Reddit, YouTube and Stack Overflow
# comments; six types, BIO tags): a token-classification head on every position, trained two ways on the same
# splits and scored on the organisers' test file with entity-level F1 (exact span and type, micro over
# entities, as conlleval / seqeval) and token accuracy:
#   scratch:   a 4-layer 128-channel GPT-2-tokenizer model from random weights;
#   finetune:  the same shape, from the base pretrained here on Tiny Shakespeare + TinyStories
#              (BASE=path, default runs/base_gpt2tok/model.bin; dev/pretrain_base.sh makes it when missing).
# dataprep tok encodes each word as " " + word and tags its first subword (the rest are not scored), cut at
# 128 tokens (the base's context): 2 test sentences are longer and lose 24 words. Training batches are 72
# tokens (no training sentence is longer); the test is scored at 128. 5 epochs each, checkpoint chosen on the
# dev file's entity F1 (--metric f1). A causal model tags a word from the words before it and its own first
# subword only: it never sees the right context a bidirectional encoder does.
# About 3 minutes of CPU per run on one thread (OMP_NUM_THREADS=1); measured 6-14 minutes of wall time on the
# busy shared 2-core machine (README, "Named-entity recognition").
# Needs ../shared/data (wnut17, gpt2_bpe; tinyshakespeare and tinystories without a base).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s train dataprep
BASE=${BASE:-runs/base_gpt2tok/model.bin}
[ -f "$BASE" ] || { [ "$BASE" = runs/base_gpt2tok/model.bin ] && bash dev/pretrain_base.sh; }
[ -f "$BASE" ] || { echo "BASE=$BASE: no such file" >&2; exit 1; }
mkdir -p data runs/wnut17_scratch runs/wnut17_finetune
bpe=../shared/data/gpt2_bpe
w=../shared/data/wnut17
./dataprep tok --tokenizer $bpe --out data/wnut17 --max-len 128 --train $w/wnut17train.conll \
    --val $w/emerging.dev.conll --test $w/emerging.test.annotated
common="--lr 1e-3 --train data/wnut17_train.ds --val data/wnut17_val.ds --test data/wnut17_test.ds --batch 16 --seq 72
        --epochs 5 --warmup 50 --dropout 0.1 --eval-every 212 --val-batches 0 --metric f1 --print-every 106
        --tokenizer $bpe"
./train --init 4,4,128 --max-seq 128 $common --out runs/wnut17_scratch
./train --model "$BASE" $common --out runs/wnut17_finetune
# the test file at the full 128 tokens, with the checkpoint chosen on dev
for run in wnut17_scratch wnut17_finetune; do
    ./train eval --model runs/$run/best.bin --data data/wnut17_test.ds --batch 16 --seq 128 > runs/$run/test_eval.json
    f1=$(grep -o '"entity_f1": [0-9.]*' runs/$run/test_eval.json | cut -d' ' -f2)
    p=$(grep -o '"entity_precision": [0-9.]*' runs/$run/test_eval.json | cut -d' ' -f2)
    r=$(grep -o '"entity_recall": [0-9.]*' runs/$run/test_eval.json | cut -d' ' -f2)
    acc=$(grep -o '"token_accuracy": [0-9.]*' runs/$run/test_eval.json | cut -d' ' -f2)
    echo "$run: test entity F1 $f1 (precision $p, recall $r), token accuracy $acc  (runs/$run/test_eval.json, errors: runs/$run/errors.md)"
done
