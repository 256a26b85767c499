#!/bin/bash
# Our export formats read by other people's code, on the models `make test` leaves in test_tmp/ (GPT-2: V = 50257, C = 32;
# the Llama-style models at the end):
#   dev/check_gguf.mjs  GGUF F32 and Q8_0 through Hugging Face's @huggingface/gguf, against the safetensors export
#   dev/check_peft.py   PEFT adapters (a trained LM LoRA, the test's classifier) applied as PEFT applies them,
#                       against our merged export and our forward (./train eval --adapter)
# Run from the repository root after `make test`; needs node (npm ci fetches @huggingface/gguf once) and
# /usr/bin/python3 with torch.
set -euo pipefail
[ -d dev/node_modules/@huggingface/gguf ] || (cd dev && npm ci --silent)
o=test_tmp/formats
rm -rf $o && mkdir -p $o/lrun
bpe=../shared/data/gpt2_bpe
./train export --model test_tmp/xf_base.bin --format safetensors --out $o/base_hf >/dev/null
for dt in f32 q8_0; do
    ./train export --model test_tmp/xf_base.bin --format gguf --dtype $dt --tokenizer $bpe --out $o/$dt.gguf >/dev/null
    echo "== GGUF $dt"
    node dev/check_gguf.mjs $o/$dt.gguf $o/base_hf $bpe
done
# a LoRA trained for 30 steps on qkv and the MLP's c_proj of layers 1-2 (attn.c_proj has none)
./train --model test_tmp/xf_base.bin --train test_tmp/tok.bin --batch 2 --seq 16 --steps 30 --lr 3e-2 --method lora \
    --lora-rank 4 --lora-alpha 8 --lora-targets qkv,fcproj --lora-layers 1-2 --out $o/lrun >/dev/null
for m in lm:$o/lrun/model.bin cls:test_tmp/xf_cls.bin; do
    name=${m%%:*} model=${m#*:}
    ./train export --model $model --format peft --out $o/${name}_peft >/dev/null
    ./train export --model $model --format safetensors --merge 1 --out $o/${name}_merged >/dev/null
    echo "== PEFT $name"
    if [ $name = lm ]; then
        ours=$(./train eval --model test_tmp/xf_base.bin --adapter $o/lm_peft --data test_tmp/tok.bin --batch 2 --seq 16 --max-batches 1)
        /usr/bin/python3 dev/check_peft.py $o/base_hf $o/lm_peft $o/lm_merged test_tmp/tok.bin 2 16 "$ours"
    else
        /usr/bin/python3 dev/check_peft.py $o/base_hf $o/cls_peft $o/cls_merged
    fi
done
# Llama-style models (test_gpt's llama GGUF tests leave ll0 tied, ll1 untied with RoPE scaling, ll2 qwen2):
# GGUF read by @huggingface/gguf against the HF export, with the Q/K reordering checked on RoPE scores
for m in test_tmp/ll0.bin test_tmp/ll1.bin test_tmp/ll2.bin; do
    n=$(basename $m .bin)
    ./train export --model $m --format safetensors --out $o/${n}_hf >/dev/null
    ./train export --model $m --format gguf --out $o/$n.gguf >/dev/null
    echo "== GGUF llama $n"
    node dev/check_gguf.mjs $o/$n.gguf $o/${n}_hf
done
# a LoRA on every Llama module of an HF Llama folder, exported as PEFT and applied as PEFT applies it
./train --model ref/hf_llama_untied --train test_tmp/tok.bin --batch 2 --seq 16 --steps 3 --method lora --lora-rank 4 \
    --lora-targets q,k,v,o,gate,up,down --lora-layers 1-1 --out $o/llrun >/dev/null
./train export --model $o/llrun/model.bin --format peft --out $o/ll_peft >/dev/null
./train export --model $o/llrun/model.bin --format safetensors --merge 1 --out $o/ll_merged >/dev/null
echo "== PEFT llama"
/usr/bin/python3 dev/make_hf_llama.py peft ref/hf_llama_untied $o/ll_peft $o/ll_merged
