#!/usr/bin/env bash
# make demo: the main job on data the project makes itself.
#   1. generate a tiny language of arithmetic problems (dev/gen_arith.c), byte-level tokens
#   2. pretrain a small GPT from scratch on addition ("71+57=128")
#   3. fine-tune it on a related but different task, subtraction ("92-74=18")
#   4. print the loss on held-out subtraction problems before and after, and greedy samples
set -euo pipefail
cd "$(dirname "$0")/.."
out=demo_out
mkdir -p "$out/base" "$out/ft"
cc -O2 -o "$out/gen_arith" dev/gen_arith.c
"$out/gen_arith" + 60000 1 "$out/add"
"$out/gen_arith" - 30000 2 "$out/sub"

# bytes <-> ids for the prompts and samples (the byte tokenizer: id = byte value)
encode() { printf '%s' "$1" | od -An -tu1 | tr -s ' \n' ' ' | sed 's/^ //; s/ $//'; }
decode() { for id in $1; do [ "$id" = 10 ] && printf '\\n' || printf "\\$(printf '%03o' "$id")"; done; }
show_samples() {  # greedy answers to subtraction problems seen in training and held out
    while read -r split line; do
        p="${line%%=*}="
        ids=$(./train sample --model "$1" --tokens "$(encode "$p")" --gen 3 --temperature 0 --stop 10)
        got=$(decode "$ids")
        got="${got%\\n}"
        printf '    %-5s %s  model: %-10s %s\n' "$split" "$line" "$got" "$([ "$got" = "$line" ] && echo right || echo wrong)"
    done < "$out/sub_examples.txt"
}

common="--batch 16 --seq 64 --print-every 100 --weight-decay 0.0"
echo "== 1. pretrain a 4-layer GPT (C=128) from scratch on addition"
./train --init 4,4,128 --vocab 256 --max-seq 64 $common --train "$out/add_train.bin" --val "$out/add_val.bin" \
    --steps 600 --lr 2e-3 --warmup 30 --eval-every 200 --out "$out/base" --log "$out/base.jsonl"

echo "== 2. the base model on held-out subtraction problems, before fine-tuning"
before=$(./train eval --model "$out/base/model.bin" --data "$out/sub_val.bin" --batch 16 --seq 64)
echo "    $before"
show_samples "$out/base/model.bin"

echo "== 3. fine-tune all weights on subtraction"
./train --model "$out/base/model.bin" $common --train "$out/sub_train.bin" --val "$out/sub_val.bin" \
    --steps 200 --lr 1e-3 --warmup 10 --eval-every 100 --out "$out/ft" --log "$out/ft.jsonl"

echo "== 4. after fine-tuning"
after=$(./train eval --model "$out/ft/model.bin" --data "$out/sub_val.bin" --batch 16 --seq 64)
echo "    $after"
show_samples "$out/ft/model.bin"
lb=$(echo "$before" | sed 's/.*"loss": \([0-9.]*\).*/\1/')
la=$(echo "$after" | sed 's/.*"loss": \([0-9.]*\).*/\1/')
echo
echo "held-out subtraction loss: before fine-tuning $lb, after $la (nats per byte)"
echo "(answers are written least-significant digit first: 92-74=18 is \"92-74=81\". A model this small, trained"
echo " for two minutes, memorises more than it generalises: see val rise in $out/base.jsonl while train loss falls.)"
echo "logs: $out/base.jsonl $out/ft.jsonl; models: $out/base/model.bin $out/ft/model.bin"
