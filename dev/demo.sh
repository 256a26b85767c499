#!/usr/bin/env bash
# make demo: the main job, on data the project makes itself (about 2 minutes on 2 cores).
#   1. generate a tiny language of arithmetic problems (dev/gen_arith.c): byte-level tokens, written as SFT
#      examples (prompt "71+57=", response "821\n"; answers least-significant digit first), with held-out
#      validation problems that never appear in training
#   2. pretrain a small GPT from scratch on addition, loss on the answers only
#   3. fine-tune it on a related but different task, subtraction: all weights, and LoRA side by side
#   4. print held-out loss and exact-match accuracy (greedy generation) before and after, and samples
set -euo pipefail
cd "$(dirname "$0")/.."
out=demo_out
rm -rf "$out"
mkdir -p "$out/base" "$out/full" "$out/lora"
cc -O2 -o "$out/gen_arith" dev/gen_arith.c
"$out/gen_arith" + 60000 1 "$out/add"
"$out/gen_arith" - 30000 2 "$out/sub"

encode() { printf '%s' "$1" | od -An -tu1 | tr -s ' \n' ' ' | sed 's/^ //; s/ $//'; }
decode() { for id in $1; do [ "$id" = 10 ] || printf "\\$(printf '%03o' "$id")"; done; }
field() { echo "$1" | sed "s/.*\"$2\": \([0-9.a-z]*\).*/\1/"; }
evaluate() {  # $1 model, $2 data: held-out loss per answer token and exact-match accuracy
    ./train eval --model "$1" --data "$2" --batch 64 --seq 16 --exact-match 300
}
samples() {  # greedy answers to subtraction problems seen in training and held out (gen_arith's examples)
    while read -r split line; do
        p="${line%%=*}="
        # (stderr kept aside: sample prints its tokens/s there; shown only if it fails)
        ids=$(./train sample --model "$1" --tokens "$(encode "$p")" --gen 4 --temperature 0 --stop 10 2>"$out/sample.err") ||
            { cat "$out/sample.err" >&2; exit 1; }
        got="$(decode "$ids")"
        printf '    %-5s %-10s model: %-10s %s\n' "$split" "$line" "$got" "$([ "$got" = "$line" ] && echo right || echo wrong)"
    done < "$out/sub_examples.txt"
}
common="--batch 64 --seq 16 --print-every 100 --eval-every 100 --val-batches 0"

echo "== 1. pretrain a 4-layer GPT (C=128, 0.83M parameters) from scratch on addition"
./train --init 4,4,128 --vocab 256 --max-seq 16 $common --train "$out/add_train.ds" --val "$out/add_val.ds" \
    --steps 600 --lr 2e-3 --warmup 30 --out "$out/base" --log "$out/base.jsonl"
add=$(evaluate "$out/base/model.bin" "$out/add_val.ds")
echo "held-out addition: $add"

echo "== 2. the base model on subtraction, before fine-tuning (held-out loss and exact match, then samples)"
before=$(evaluate "$out/base/model.bin" "$out/sub_val.ds")
echo "    $before"
samples "$out/base/model.bin"

echo "== 3a. fine-tune all weights on subtraction"
./train --model "$out/base/model.bin" $common --train "$out/sub_train.ds" --val "$out/sub_val.ds" \
    --steps 250 --lr 1e-3 --warmup 10 --out "$out/full" --log "$out/full.jsonl" | tee "$out/full.txt"
full=$(evaluate "$out/full/model.bin" "$out/sub_val.ds")

echo "== 3b. fine-tune with LoRA instead (rank 8 on every projection, base frozen)"
./train --model "$out/base/model.bin" $common --train "$out/sub_train.ds" --val "$out/sub_val.ds" \
    --steps 250 --lr 3e-3 --warmup 10 --method lora --lora-rank 8 --lora-alpha 16 \
    --lora-targets qkv,proj,fc,fcproj --out "$out/lora" --log "$out/lora.jsonl" | tee "$out/lora.txt"
lora=$(./train eval --model "$out/base/model.bin" --adapter "$out/lora/adapter.bin" --data "$out/sub_val.ds" \
       --batch 64 --seq 16 --exact-match 300)

echo "== 4. subtraction problems seen in training and held out, greedy answers"
echo "  before:"; samples "$out/base/model.bin"
echo "  full:  "; samples "$out/full/model.bin"
echo "  LoRA:  "; samples "$out/lora/model.bin"
echo
ms() { sed -n 's/.* \([0-9.]*\) ms\/step.*/\1/p' "$1"; }
tr_() { sed -n 's/^trainable: \([0-9]*\) parameters.*/\1/p' "$1"; }
printf '%-22s %12s %10s %14s %10s\n' "held-out subtraction" "trainable" "ms/step" "loss/answer tok" "exact"
printf '%-22s %12s %10s %14s %10s\n' "base (before)" "-" "-" "$(field "$before" loss)" "$(field "$before" exact_match)"
printf '%-22s %12s %10s %14s %10s\n' "full fine-tuning" "$(tr_ "$out/full.txt")" "$(ms "$out/full.txt")" "$(field "$full" loss)" "$(field "$full" exact_match)"
printf '%-22s %12s %10s %14s %10s\n' "LoRA r=8" "$(tr_ "$out/lora.txt")" "$(ms "$out/lora.txt")" "$(field "$lora" loss)" "$(field "$lora" exact_match)"
echo "(exact = share of 300 held-out problems whose greedy answer is entirely right; answers are written least-"
echo " significant digit first: 92-74=18 is \"92-74=81\". Plots: $out/*/curves.svg; logs: $out/*.jsonl)"
echo "A model this small, trained for a minute, memorises the problems it has seen before it learns to add:"
echo "training problems come out right, held-out ones mostly not, and the validation loss in the logs rises"
echo "while the training loss falls. Fine-tuning still moves it to the new task: compare 'before' with the rest."
