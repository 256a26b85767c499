#!/usr/bin/env bash
# Continual learning, measured: a small character-level GPT learns task A (Tiny Shakespeare), then task B
# (TinyStories) three ways: plainly, with rehearsal (--replay A's training data, a quarter of every batch),
# and with EWC (./train fisher on A, then --ewc LAMBDA). After each stage, the test perplexity on BOTH tasks:
# forgetting shows as A's perplexity rising while B's falls. Prints a Markdown table (also written to
# runs/continual/table.md). Needs ../shared/data/{tinyshakespeare,tinystories} (see the README's Data section).
#
# Sizes are for a 2-core machine shared with other work: a 2-layer, 4-head, 64-channel GPT at context 64,
# batch 8; A 800 steps from scratch, each B stage 400 steps; the tests' first 50 batches (25,600 tokens).
# Every stage uses the same seed, so the three B runs see the same B batches (replay swaps some rows for A's).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s train dataprep
out=runs/continual
rm -rf "$out"
mkdir -p data "$out"/{a,b_plain,b_replay,b_ewc3,b_ewc4}
t0=$(date +%s)

echo "== data: byte-level tokens (V=257), 80/10/10 splits"
./dataprep text --tokenizer bytes --out data/cl_shake --chunk-lines 100 --split 80/10/10 \
    ../shared/data/tinyshakespeare/input.txt | tail -1
./dataprep text --tokenizer bytes --out data/cl_stories --docs line --split 80/10/10 \
    ../shared/data/tinystories/tiny_stories.txt | tail -1
A=data/cl_shake B=data/cl_stories
common="--batch 8 --seq 64 --beta2 0.99 --print-every 100 --val-batches 20"

echo "== task A: Tiny Shakespeare from scratch"
./train --init 2,4,64 --vocab 257 --max-seq 64 $common --train ${A}_train.bin --val ${A}_val.bin \
    --steps 800 --lr 3e-3 --warmup 50 --out "$out/a" | grep -E "^step +(400|800)/|^done"
echo "== EWC's Fisher on A's training data (300 windows of 65 tokens)"
./train fisher --model "$out/a/model.bin" --data ${A}_train.bin --seq 64 --fisher-examples 300 --out "$out/a/model.fisher"

stageB="--model $out/a/model.bin $common --train ${B}_train.bin --val ${B}_val.bin --steps 400 --lr 1e-3 --warmup 20"
echo "== task B: TinyStories, plainly"
./train $stageB --out "$out/b_plain" | grep -E "^step +400/|^done"
echo "== task B with rehearsal: a quarter of every batch from A"
./train $stageB --replay ${A}_train.bin --replay-frac 0.25 --out "$out/b_replay" | grep -E "^replay|^step +400/|^done"
echo "== task B with EWC, lambda 1e3 and 1e4"
./train $stageB --ewc 1e3 --fisher "$out/a/model.fisher" --out "$out/b_ewc3" | grep -E "^ewc|^step +400/|^done"
./train $stageB --ewc 1e4 --fisher "$out/a/model.fisher" --out "$out/b_ewc4" | grep -E "^ewc|^step +400/|^done"

echo "== test perplexity on both tasks (first 50 test batches of each)"
ppl() { ./train eval --model "$1" --data "$2" --batch 8 --seq 64 --max-batches 50 | sed -n 's/.*"ppl": \([0-9.]*\).*/\1/p'; }
{
    echo "| stage | A (Shakespeare) test ppl | B (TinyStories) test ppl |"
    echo "| --- | --- | --- |"
    for s in "a:after A" "b_plain:then B, plainly" "b_replay:then B, replay 0.25 of A" \
             "b_ewc3:then B, EWC lambda 1e3" "b_ewc4:then B, EWC lambda 1e4"; do
        m="$out/${s%%:*}/model.bin"
        echo "| ${s#*:} | $(ppl "$m" ${A}_test.bin) | $(ppl "$m" ${B}_test.bin) |"
    done
} | tee "$out/table.md"
echo "total: $(( $(date +%s) - t0 )) s; model cards: $out/*/README.md"
