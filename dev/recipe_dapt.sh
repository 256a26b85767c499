#!/usr/bin/env bash
# Domain-adaptive pretraining (DAPT; Gururangan et al. 2020, "Don't Stop Pretraining"): continue the base's
# language-model training on the target domain's unlabelled text, then fine-tune, and compare with fine-tuning the
# base directly, on the same splits with the same seed. Target task: GLUE SST-2 (movie-review phrases). The base
# (4 layers, 128 channels, GPT-2 tokenizer) was pretrained on plays and children's stories, a different domain.
#
# Domain text: the sentences of the rows of glue/train.tsv that dev/recipe_sst2_finetune.sh trains on, without
# their labels (its validation rows, every 40th, are left out, and GLUE dev, the reported test split, is never
# trained on), one phrase per document (dataprep text --docs line: <|endoftext|> between phrases), 95% for DAPT
# and 5% for its validation (which picks the DAPT checkpoint). Steps:
#   1. the domain text, the perplexity files and the SST-2 classification splits (as dev/recipe_sst2_finetune.sh)
#   2. LM perplexity of the base on the domain (the classification validation rows' phrases and the GLUE dev
#      sentences: evaluation only) and on the base's own pretraining validation text (what DAPT forgets)
#   3. DAPT: continue LM training of the base, DAPT_STEPS steps of 8 x 128 tokens, lr 3e-4, warmup 20, cosine
#   4. the same perplexities with the DAPT model (best.bin, chosen on the DAPT validation text)
#   5. SST-2 full fine-tuning with dev/recipe_sst2_finetune.sh's first run's flags (batch 32, 48 tokens, lr 1e-3,
#      warmup 50, dropout 0.1, seed 1337), once from the base and once from the DAPT model, then both on GLUE dev
#      at 64 tokens; a table at the end
# Environment (the defaults make the full recipe; smaller step counts give a quicker, weaker comparison):
#   BASE        the base checkpoint (default runs/base_gpt2tok/model.bin; made by dev/pretrain_base.sh if missing)
#   BASE_VAL    its pretraining validation tokens (default data/pretrain_val.bin beside it; skipped if missing)
#   DAPT_STEPS  DAPT optimizer steps (default 600: about one pass over the 0.6M domain tokens)
#   FT_STEPS    fine-tuning steps (default: one epoch, as dev/recipe_sst2_finetune.sh, 2,054 steps)
#   OUT         the run folders' parent (default runs/dapt)
# Time on one thread (OMP_NUM_THREADS=1) of the shared 2-core machine under load (five other jobs): DAPT 2.5 s a
# step, fine-tuning 0.33-0.42 s a step; DAPT_STEPS=200 FT_STEPS=300 (the README's table) took 18 minutes, the
# defaults would take about 50 (less on a quiet machine). Needs ../shared/data (sst2, gpt2_bpe; tinyshakespeare and
# tinystories without a base).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s train dataprep
base=${BASE:-runs/base_gpt2tok/model.bin}
if [ ! -f "$base" ]; then
    [ -z "${BASE:-}" ] || { echo "recipe_dapt: BASE=$BASE does not exist" >&2; exit 1; }
    bash dev/pretrain_base.sh
fi
base_val=${BASE_VAL:-$(dirname "$(dirname "$(dirname "$base")")")/data/pretrain_val.bin}
dapt_steps=${DAPT_STEPS:-600}
out=${OUT:-runs/dapt}
if [ -n "${FT_STEPS:-}" ]; then ft_len="--steps $FT_STEPS"; else ft_len="--epochs 1"; fi
bpe=../shared/data/gpt2_bpe
mkdir -p data "$out"

# 1. data: the classification splits exactly as dev/recipe_sst2_finetune.sh makes them, then the unlabelled text
awk -v tr=data/dapt_sst2_trainpart.tsv -v va=data/dapt_sst2_valpart.tsv \
    'NR == 1 { print > tr; print > va; next } NR % 40 == 0 { print > va; next } { print > tr }' \
    ../shared/data/sst2/glue/train.tsv
./dataprep cls --tokenizer $bpe --out data/dapt_sst2 --text-col sentence --train data/dapt_sst2_trainpart.tsv \
    --val data/dapt_sst2_valpart.tsv --test ../shared/data/sst2/glue/dev.tsv
for part in trainpart valpart; do tail -n +2 data/dapt_sst2_$part.tsv | cut -f1 > data/dapt_text_$part.txt; done
tail -n +2 ../shared/data/sst2/glue/dev.tsv | cut -f1 > data/dapt_text_dev.txt
./dataprep text --tokenizer $bpe --out data/dapt_lm --docs line --split 95/5/0 data/dapt_text_trainpart.txt
./dataprep text --tokenizer $bpe --out data/dapt_ppl_valpart --docs line --split 100/0/0 data/dapt_text_valpart.txt
./dataprep text --tokenizer $bpe --out data/dapt_ppl_dev --docs line --split 100/0/0 data/dapt_text_dev.txt

# 2.-4. perplexities before and after DAPT
ppl() {  # MODEL FILE: the eval line's ppl
    ./train eval --model "$1" --data "$2" --batch 8 --seq 128 | sed -n 's/.*"ppl": \([0-9.na]*\).*/\1/p'
}
ppl_files="data/dapt_ppl_valpart_train.bin data/dapt_ppl_dev_train.bin"
[ -f "$base_val" ] && ppl_files="$ppl_files $base_val"
declare -A before after
for f in $ppl_files; do before[$f]=$(ppl "$base" "$f"); done
./train --model "$base" --train data/dapt_lm_train.bin --val data/dapt_lm_val.bin --batch 8 --seq 128 \
    --steps "$dapt_steps" --lr 3e-4 --warmup 20 --eval-every 100 --val-batches 0 --print-every 50 --out "$out/lm"
for f in $ppl_files; do after[$f]=$(ppl "$out/lm/best.bin" "$f"); done

# 5. SST-2 fine-tuning from each, the flags of dev/recipe_sst2_finetune.sh's full fine-tuning run
ft="--train data/dapt_sst2_train.ds --val data/dapt_sst2_val.ds --test data/dapt_sst2_test.ds --batch 32 --seq 48
    $ft_len --warmup 50 --dropout 0.1 --eval-every 500 --val-batches 0 --metric accuracy --print-every 100
    --tokenizer $bpe --lr 1e-3"
./train --model "$base" $ft --out "$out/ft_base"
./train --model "$out/lm/best.bin" $ft --out "$out/ft_dapt"
acc() { ./train eval --model "$1" --data data/dapt_sst2_test.ds --batch 32 --seq 64 | sed -n 's/.*"accuracy": \([0-9.]*\).*/\1/p'; }
acc_base=$(acc "$out/ft_base/best.bin")
acc_dapt=$(acc "$out/ft_dapt/best.bin")

echo
echo "DAPT_STEPS=$dapt_steps, fine-tuning ${FT_STEPS:-1 epoch} steps; base $base"
echo "| | without DAPT (the base) | with DAPT |"
echo "| --- | --- | --- |"
echo "| SST-2 test accuracy (GLUE dev, 872 sentences) | $acc_base | $acc_dapt |"
for f in $ppl_files; do echo "| LM perplexity on $f | ${before[$f]} | ${after[$f]} |"; done
