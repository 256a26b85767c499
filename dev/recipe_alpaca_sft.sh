#!/usr/bin/env bash
# Supervised fine-tuning (SFT) on the 999-example Alpaca-format sample: the 4-layer 128-channel GPT-2-tokenizer
# base pretrained on Tiny Shakespeare + TinyStories (runs/base_gpt2tok/model.bin, reused if present, else
# dev/pretrain_base.sh makes it, about 16 minutes more) learns to answer instructions, with the loss on the
# response tokens only. The base has 128 positions, so the examples are cut to 128 tokens (--max-len 128: over
# half of the responses are truncated, 3 prompts that fill the window are dropped) and the short `plain` template
# ("### Instruction: ... ### Response:") leaves more of the window to the response than `alpaca`'s preamble.
# Split 80/10/10 (dataprep's default, seeded); validation picks the checkpoint. Reported: response-token loss on
# the test split before (the base) and after fine-tuning; corpus BLEU-4 (sacreBLEU's, 13a) and mean ROUGE-L F
# (rouge-score's) of both models' greedy responses to every test prompt (eval --generate -1, at most 128 new
# tokens, stopping at <|endoftext|>) against the reference responses (as dataprep cut them), the responses in
# runs/alpaca_sft/gen_{base,sft}/generations.jsonl; and the greedy answers of both to the first three test
# prompts, with the reference. Exact match (eval --exact-match) is left out: it counts only verbatim
# reproductions of long, truncated GPT-4 answers, which a model this size never makes.
# Environment: BASE (default runs/base_gpt2tok/model.bin; made by dev/pretrain_base.sh when missing), EPOCHS
# (default 4). About 12 minutes on one thread (OMP_NUM_THREADS=1). Needs ../shared/data (alpaca_demo, gpt2_bpe;
# tinyshakespeare and tinystories without a base).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s train dataprep
mkdir -p data runs/alpaca_sft
base=${BASE:-runs/base_gpt2tok/model.bin}
if [ ! -f "$base" ]; then
    [ -z "${BASE:-}" ] || { echo "recipe_alpaca_sft: BASE=$BASE does not exist" >&2; exit 1; }
    bash dev/pretrain_base.sh
fi
bpe=../shared/data/gpt2_bpe
gen="--generate -1 --max-new-tokens 128 --tokenizer $bpe"
./dataprep sft --tokenizer $bpe --out data/alpaca_sft --template plain --max-len 128 \
    ../shared/data/alpaca_demo/alpaca_en_demo.json
echo "before fine-tuning (the base), test split:"
./train eval --model $base --data data/alpaca_sft_test.ds --batch 8 --seq 128 $gen --out runs/alpaca_sft/gen_base
./train --model $base --train data/alpaca_sft_train.ds --val data/alpaca_sft_val.ds --test data/alpaca_sft_test.ds \
    --batch 8 --seq 128 --epochs "${EPOCHS:-4}" --lr 1e-3 --warmup 20 --dropout 0.1 --eval-every 50 --val-batches 0 \
    --print-every 25 --out runs/alpaca_sft
echo "after fine-tuning (best on validation), test split:"
./train eval --model runs/alpaca_sft/best.bin --data data/alpaca_sft_test.ds --batch 8 --seq 128 $gen --out runs/alpaca_sft/gen_sft

# the token ids of example K of a dataprep sft file, its prompt or its response (record layout in dataset.h)
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
    for m in $base runs/alpaca_sft/best.bin; do
        echo "---- $m, greedy:"
        ./train sample --model $m --tokens "$ids" --tokenizer $bpe --temperature 0 --gen 64 --stop 50256
    done
done
