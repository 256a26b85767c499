#!/usr/bin/env bash
# Seed corpora for the reader fuzz targets (dev/fuzz/readers.h): small real files that ./train and ./dataprep
# write, one folder per target under OUT (default /tmp/finetune_fuzz/seeds). Needs ./train, ./dataprep and ./gen_arith built.
#   bash dev/fuzz/make_seeds.sh [OUT]
# The model is tiny on purpose (L=2 NH=2 C=8, V=257 bytes, maxT=8: ~14 KB files) so that each fuzz run is
# fast; the int8 seeds need C a multiple of 32 (L=1 NH=1 C=32).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-/tmp/finetune_fuzz/seeds}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
SEP=$'\n==> next file <==\n'
rm -rf "$OUT"
mkdir -p "$OUT"/{ckpt,resume,safetensors,gguf,adapter,peft,ds,tokens,tokenizer,tokjson,peft_llama}
q() { "$@" >"$W/log" 2>&1 || { echo "make_seeds: failed: $*" >&2; tail -3 "$W/log" >&2; exit 1; }; }

# data: bytes tokenizer, so V = 257
printf 'hello world, this is a small text for the fuzz seeds.\nanother line here.\n%.0s' {1..20} > "$W/text.txt"
q ./dataprep text --tokenizer bytes --docs line --out "$W/lm" "$W/text.txt"
printf 'text,label\n' > "$W/cls.csv"
for i in $(seq 1 40); do printf '"good %d",pos\n"bad %d",neg\n' $i $i; done >> "$W/cls.csv"
q ./dataprep cls --tokenizer bytes --out "$W/cls" "$W/cls.csv"
for i in $(seq 1 30); do printf '{"instruction": "say %d", "input": "", "output": "%d"}\n' $i $i; done > "$W/sft.jsonl"
q ./dataprep sft --tokenizer bytes --out "$W/sft" --max-len 300 --template plain "$W/sft.jsonl"
cp "$W/lm_val.bin" "$OUT/tokens/ours.bin"
q ./dataprep text --tokenizer bytes --docs line --format llmc --out "$W/llmc" "$W/text.txt"
cp "$W/llmc_val.bin" "$OUT/tokens/llmc.bin"
cp "$W/cls_val.ds" "$OUT/ds/cls.ds"
cp "$W/sft_val.ds" "$OUT/ds/sft.ds"

mkdir -p "$W"/{full,lora,adp,pfx,clslora,w32}
T="./train --init 2,2,8 --vocab 257 --max-seq 8 --batch 2 --seq 8 --steps 2 --lr 1e-3"
q $T --train "$W/lm_train.bin" --out "$W/full"
q $T --train "$W/lm_train.bin" --method lora --lora-rank 2 --lora-layers 1-1 --lora-targets qkv,fc --out "$W/lora"
q $T --train "$W/lm_train.bin" --method adapter --adapter-dim 2 --out "$W/adp"
q $T --train "$W/lm_train.bin" --method prefix --prefix-len 2 --out "$W/pfx"
q $T --train "$W/cls_train.ds" --method lora --lora-rank 2 --out "$W/clslora"
q ./train --init 1,1,32 --vocab 257 --max-seq 4 --batch 2 --seq 4 --steps 1 --train "$W/lm_train.bin" --out "$W/w32"
q ./train quantize --model "$W/w32/model.bin" --out "$W/q8.bin"
cp "$W/full/model.bin" "$OUT/ckpt/model.bin"
cp "$W/lora/model.bin" "$OUT/ckpt/lora.bin"
cp "$W/clslora/model.bin" "$OUT/ckpt/cls_lora.bin"
cp "$W/q8.bin" "$OUT/ckpt/q8.bin"
q ./train export --model "$W/full/model.bin" --format llmc --out "$W/llmc_model.bin"
cp "$W/llmc_model.bin" "$OUT/ckpt/llmc.bin"
cp "$W/full/ckpt.bin" "$OUT/resume/full.bin"
cp "$W/lora/ckpt.bin" "$OUT/resume/lora.bin"
cp "$W/clslora/ckpt.bin" "$OUT/resume/cls_lora.bin"
cp "$W/lora/adapter.bin" "$OUT/adapter/lora.bin"
cp "$W/adp/adapter.bin" "$OUT/adapter/adapter.bin"
cp "$W/pfx/adapter.bin" "$OUT/adapter/prefix.bin"
cp "$W/clslora/adapter.bin" "$OUT/adapter/cls_lora.bin"

q ./train export --model "$W/full/model.bin" --format safetensors --out "$W/hf"
{ cat "$W/hf/model.safetensors"; printf '%s' "$SEP"; cat "$W/hf/config.json"; } > "$OUT/safetensors/with_config"
cp "$W/hf/model.safetensors" "$OUT/safetensors/no_config"
q ./train export --model "$W/clslora/model.bin" --format safetensors --merge 1 --out "$W/hfcls"
{ cat "$W/hfcls/model.safetensors"; printf '%s' "$SEP"; cat "$W/hfcls/config.json"; } > "$OUT/safetensors/cls"
q ./gen_arith + 200 1 "$W/ar"  # byte tokens below 80: the Llama folder's vocabulary
for t in "q,k,v,o,gate,up,down 1-1" "q,v 0-1"; do  # LoRA on the Llama folder (peft_llama's base), exported as PEFT
  set -- $t
  q ./train --model ref/hf_llama_f32 --train "$W/ar_train.bin" --batch 2 --seq 8 --steps 2 --method lora --lora-rank 2 \
    --lora-targets "$1" --lora-layers "$2" --out "$W/llama_$2"
  q ./train export --model "$W/llama_$2/model.bin" --format peft --out "$W/llama_peft_$2"
  { cat "$W/llama_peft_$2/adapter_model.safetensors"; printf '%s' "$SEP"; cat "$W/llama_peft_$2/adapter_config.json"; } > "$OUT/peft_llama/lora_$2"
done
for d in hf_llama_bf16 hf_llama_untied hf_qwen2 hf_llama_cls; do  # Llama / Qwen2 folders (dev/make_hf_llama.py)
  { cat "ref/$d/model.safetensors"; printf '%s' "$SEP"; cat "ref/$d/config.json"; } > "$OUT/safetensors/$d"
done
q ./train export --model "$W/full/model.bin" --format gguf --dtype f32 --out "$W/f32.gguf"
cp "$W/f32.gguf" "$OUT/gguf/f32.gguf"
q ./train export --model "$W/q8.bin" --format gguf --out "$W/q8.gguf"
cp "$W/q8.gguf" "$OUT/gguf/q8.gguf"
q ./train export --model "$W/lora/model.bin" --format peft --out "$W/peft"
{ cat "$W/peft/adapter_model.safetensors"; printf '%s' "$SEP"; cat "$W/peft/adapter_config.json"; } > "$OUT/peft/lora"
q ./train export --model "$W/clslora/model.bin" --format peft --out "$W/peftcls"
{ cat "$W/peftcls/adapter_model.safetensors"; printf '%s' "$SEP"; cat "$W/peftcls/adapter_config.json"; } > "$OUT/peft/cls"

# GPT-2's tokenizer format, cut down: the 256 byte tokens, a few merges, <|endoftext|>
BPE=../shared/data/gpt2_bpe
if [ -f "$BPE/encoder.json" ]; then
    /usr/bin/python3 - "$BPE" "$OUT/tokenizer/small" <<'PY'
import json, sys
enc = json.load(open(sys.argv[1] + "/encoder.json"))
merges = open(sys.argv[1] + "/vocab.bpe", encoding="utf-8").read().split("\n")[1:40]
toks = sorted(enc, key=enc.get)[:256]
keep = {t: i for i, t in enumerate(toks)}
ok = []
for m in merges:
    a, b = m.split(" ")
    if a in keep and b in keep and a + b not in keep:
        keep[a + b] = len(keep); ok.append(m)
keep["<|endoftext|>"] = len(keep)
with open(sys.argv[2], "w", encoding="utf-8") as f:
    f.write(json.dumps(keep, ensure_ascii=False) + "\n==> next file <==\n#version: 0.2\n" + "\n".join(ok) + "\n")
PY
fi
# Hugging Face tokenizer.json: the small committed ones (ref/tokjson_*.json, 1700 tokens each) and the hostile
# hand-made ones of the regression folder
cp ref/tokjson_*.json dev/fuzz/regress/tokjson/* "$OUT/tokjson/"
ls -l "$OUT"/* | awk '{s+=$5} END {print "make_seeds: " NR " lines, " s " bytes"}'
