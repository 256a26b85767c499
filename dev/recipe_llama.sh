#!/usr/bin/env bash
# A small Llama-style model pretrained here and fine-tuned two ways. The model (--arch llama): 4 layers, 4 query
# heads sharing 2 key/value heads (grouped-query attention), 128 channels, SwiGLU MLP 344 wide (8C/3 = 341,
# rounded up to a multiple of 8), RoPE theta 10000, RMSNorm, embedding tied to the LM head, 128 positions, the
# GPT-2 tokenizer: 7.17M weights, against 7.26M for dev/pretrain_base.sh's GPT-2 (6.44M of either is the
# embedding). Pretrained exactly as dev/pretrain_base.sh pretrains the GPT-2 base (Tiny Shakespeare + the
# TinyStories sample, batch 8 x 128 tokens, lr 1e-3, warmup 50, the same steps), then fine-tuned:
#   sst2  GLUE SST-2 classification as dev/recipe_sst2_finetune.sh does it (validation: every 40th row of
#         train.tsv; GLUE dev is the test split; batch 32 at 48 tokens, dropout 0.1; evaluated again at 64
#         tokens): all weights (lr 1e-3); LoRA r=8 on every projection (q,k,v,o,gate,up,down; lr 3e-3); and the
#         same LoRA with the token embedding trained too (the base leaves a fifth of SST-2's token ids at their
#         random init, see README "Results on real data").
#   sft   SFT on the 999-example Alpaca sample as dev/recipe_alpaca_sft.sh does it (plain template, cut to 128
#         tokens, loss on the response, split 80/10/10): the response-token loss, BLEU-4 and ROUGE-L of greedy
#         answers (eval --generate -1, at most 128 new tokens) before and after, and three greedy answers.
# Environment:
#   ARCH=llama|gpt2  the model (default llama); gpt2 runs the same recipe for dev/pretrain_base.sh's GPT-2, so
#               the two can be compared at the same weight budget, data and steps (and, with STEPS=1500 and
#               runs/base_gpt2tok/model.bin present, reuses that base instead of pretraining it again)
#   STEPS=N     pretraining steps (default 1500, dev/pretrain_base.sh's)
#   PRE=FILE    reuse a model pretrained before (e.g. runs/recipe_llama/pre/model.bin) instead of pretraining
#   FT_STEPS=M  SST-2 fine-tuning steps of each run (default: one epoch, 2041 steps of 32)
#   SFT_EPOCHS=E  SFT epochs (default 4, as dev/recipe_alpaca_sft.sh)
#   PARTS="sst2 sft"  which fine-tuning parts to run (default both)
# Writes data/pretrain_*, data/sst2ft_*, data/alpaca_sft_* and runs/recipe_$ARCH/ (pre, sst2_full, sst2_lora,
# sst2_lora_emb, sft, gen_base, gen_sft), and ends with a summary of every figure and each stage's wall time.
# Full length: about 70 minutes of pretraining on one busy thread (2.7 s per step) plus about an hour of
# fine-tuning (not run). README "Llama-style models" has the figures of
# OMP_NUM_THREADS=1 STEPS=150 FT_STEPS=200 SFT_EPOCHS=1 (one thread of a shared machine).
# Needs ../shared/data (tinyshakespeare, tinystories, sst2, alpaca_demo, gpt2_bpe).
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${ARCH:-llama}
STEPS=${STEPS:-1500}
FT_STEPS=${FT_STEPS:-}
SFT_EPOCHS=${SFT_EPOCHS:-4}
PARTS=${PARTS:-sst2 sft}
case $ARCH in
    llama) arch="--arch llama --kv-heads 2 --mlp-width 344 --rope-theta 10000"
           targets=q,k,v,o,gate,up,down ;;
    gpt2)  arch=""
           targets=qkv,proj,fc,fcproj ;;
    *) echo "recipe_llama: ARCH=$ARCH: expected llama or gpt2" >&2; exit 1 ;;
esac
make -s train dataprep
R=runs/recipe_$ARCH
mkdir -p data $R/pre $R/sst2_full $R/sst2_lora $R/sst2_lora_emb $R/sft
bpe=../shared/data/gpt2_bpe
times=""
stage() { times="$times  $1 $((SECONDS - t0))s\n"; t0=$SECONDS; }  # NAME: record the wall time since the last
t0=$SECONDS

# ---- pretraining: dev/pretrain_base.sh's data and settings
./dataprep text --tokenizer $bpe --out data/pretrain --chunk-lines 100 --split 95/5/0 \
    ../shared/data/tinyshakespeare/input.txt ../shared/data/tinystories/tiny_stories.txt
if [ -n "${PRE:-}" ]; then
    [ -f "$PRE" ] || { echo "recipe_llama: PRE=$PRE does not exist" >&2; exit 1; }
    base=$PRE
elif [ "$ARCH" = gpt2 ] && [ "$STEPS" = 1500 ] && [ -f runs/base_gpt2tok/model.bin ]; then
    base=runs/base_gpt2tok/model.bin
else
    ./train --init 4,4,128 --vocab 50257 --max-seq 128 $arch --train data/pretrain_train.bin \
        --val data/pretrain_val.bin --batch 8 --seq 128 --steps "$STEPS" --lr 1e-3 --warmup 50 \
        --eval-every $((STEPS < 500 ? STEPS : 500)) --val-batches 0 --print-every 100 --out $R/pre 2>&1 | tee $R/pre/console.txt
    base=$R/pre/model.bin
fi
pre_eval=$(./train eval --model "$base" --data data/pretrain_val.bin --batch 8 --seq 128)
echo "pretrained ($ARCH, $base), validation text: $pre_eval"
stage pretraining

# ---- SST-2 classification: dev/recipe_sst2_finetune.sh's splits and settings
if [[ " $PARTS " == *" sst2 "* ]]; then
awk -v tr=data/sst2ft_trainpart.tsv -v va=data/sst2ft_valpart.tsv \
    'NR == 1 { print > tr; print > va; next } NR % 40 == 0 { print > va; next } { print > tr }' \
    ../shared/data/sst2/glue/train.tsv
./dataprep cls --tokenizer $bpe --out data/sst2ft --text-col sentence --train data/sst2ft_trainpart.tsv \
    --val data/sst2ft_valpart.tsv --test ../shared/data/sst2/glue/dev.tsv
if [ -n "$FT_STEPS" ]; then length="--steps $FT_STEPS"; every=$((FT_STEPS < 500 ? FT_STEPS : 500)); else length="--epochs 1"; every=500; fi
common="--model $base --train data/sst2ft_train.ds --val data/sst2ft_val.ds --test data/sst2ft_test.ds
        --batch 32 --seq 48 $length --warmup 50 --dropout 0.1 --eval-every $every --val-batches 0
        --metric accuracy --print-every 100 --tokenizer $bpe"
./train $common --lr 1e-3 --out $R/sst2_full
stage sst2_full
lora="--lr 3e-3 --method lora --lora-rank 8 --lora-targets $targets"
./train $common $lora --out $R/sst2_lora
stage sst2_lora
./train $common $lora --unfreeze embeddings --out $R/sst2_lora_emb
stage sst2_lora_emb
fi

# ---- SFT on the Alpaca sample: dev/recipe_alpaca_sft.sh's data and settings
if [[ " $PARTS " == *" sft "* ]]; then
gen="--generate -1 --max-new-tokens 128 --tokenizer $bpe"
./dataprep sft --tokenizer $bpe --out data/alpaca_sft --template plain --max-len 128 \
    ../shared/data/alpaca_demo/alpaca_en_demo.json
echo "before fine-tuning (the base), test split:"
gen_base=$(./train eval --model "$base" --data data/alpaca_sft_test.ds --batch 8 --seq 128 $gen --out $R/gen_base)
echo "$gen_base"
stage sft_eval_base
./train --model "$base" --train data/alpaca_sft_train.ds --val data/alpaca_sft_val.ds --test data/alpaca_sft_test.ds \
    --batch 8 --seq 128 --epochs "$SFT_EPOCHS" --lr 1e-3 --warmup 20 --dropout 0.1 --eval-every 50 --val-batches 0 \
    --print-every 25 --out $R/sft
stage sft_train
echo "after fine-tuning (best on validation), test split:"
gen_sft=$(./train eval --model $R/sft/best.bin --data data/alpaca_sft_test.ds --batch 8 --seq 128 $gen --out $R/gen_sft)
echo "$gen_sft"
stage sft_eval_sft
# greedy answers to the first three test prompts: their prompt and reference token ids read from the .ds file
# (the record layout in dataset.h; the same reader as dev/recipe_alpaca_sft.sh's)
example_ids() {  # FILE K prompt|response
    local f=$1 k=$2 bpt idx off n np
    bpt=$(od -An -t u4 -j 16 -N 4 "$f" | tr -d ' ')
    idx=$(od -An -t u8 -j 44 -N 8 "$f" | tr -d ' ')
    off=$(od -An -t u8 -j $((idx + 8 * k)) -N 8 "$f" | tr -d ' ')
    n=$(od -An -t u4 -j "$off" -N 4 "$f" | tr -d ' ')
    np=$(od -An -t d4 -j $((off + 4)) -N 4 "$f" | tr -d ' ')
    if [ "$3" = prompt ]; then set -- $((off + 8)) "$np"; else set -- $((off + 8 + np * bpt)) $((n - np)); fi
    od -An -v -t u"$bpt" -j "$1" -N $(($2 * bpt)) "$f" | tr -s ' \n' '  ' | sed 's/^ //; s/ $//'
}
for k in 0 1 2; do
    ids=$(example_ids data/alpaca_sft_test.ds $k prompt)
    echo "==== test example $k, reference:"
    example_ids data/alpaca_sft_test.ds $k response | ./dataprep decode --tokenizer $bpe; echo
    for m in "$base" $R/sft/best.bin; do
        echo "---- $m, greedy:"
        ./train sample --model "$m" --tokens "$ids" --tokenizer $bpe --temperature 0 --gen 64 --stop 50256
    done
done
stage sft_samples
fi

# ---- the summary: every figure above, from the eval lines (JSON) the runs wrote
field() { echo "$2" | grep -o "\"$1\": [-0-9.]*" | head -1 | cut -d' ' -f2; }  # NAME JSON
echo "==== recipe_llama summary: ARCH=$ARCH STEPS=$STEPS FT_STEPS=${FT_STEPS:-epoch} SFT_EPOCHS=$SFT_EPOCHS"
grep -m1 '^model:' $R/pre/console.txt 2>/dev/null || true
echo "pretraining validation loss: $(field loss "$pre_eval")"
if [[ " $PARTS " == *" sst2 "* ]]; then
    echo "SST-2, the best checkpoint on the validation part, on GLUE dev (872 sentences, 64 tokens):"
    for run in sst2_full sst2_lora sst2_lora_emb; do
        j=$(./train eval --model $R/$run/best.bin --data data/sst2ft_test.ds --batch 32 --seq 64)
        echo "  $run accuracy $(field accuracy "$j") macro F1 $(field macro_f1 "$j")" \
             "confusion $(echo "$j" | grep -o '"confusion": .*' | cut -d' ' -f2- | tr -d '}')"
    done
fi
if [[ " $PARTS " == *" sft "* ]]; then
    echo "SFT, test split (98 examples; greedy answers of at most 128 new tokens):"
    for g in base sft; do
        j=$([ $g = base ] && echo "$gen_base" || echo "$gen_sft")
        echo "  $g: response-token loss $(field loss "$j") (ppl $(field ppl "$j")), BLEU-4 $(field bleu "$j")" \
             "(precisions $(echo "$j" | grep -o '"bleu_precisions": [^]]*' | cut -d'[' -f2), brevity penalty" \
             "$(field bleu_bp "$j")), ROUGE-L F $(field rouge_l "$j"), $(field gen_stopped "$j") of" \
             "$(field gen_examples "$j") stopped at end-of-text"
    done
fi
printf "wall time per stage:\n$times"
