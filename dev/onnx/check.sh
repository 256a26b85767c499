#!/bin/bash
# dev/onnx/check.sh: our ONNX export run in the real runtime. Builds small models with ./train on generated
# data (an LM pretrained from --init, a LoRA on it merged on export, a classifier with full fine-tuning and
# one with LoRA merged), exports each with `./train export --format onnx`, and has ONNX Runtime (npm
# onnxruntime-node, CPU) reproduce `./train eval --dump-logits`'s logits within 1e-4 relative, at two batch
# shapes each (the export fixes neither axis). The LMs' KV-cache decoder (decoder_with_past_model.onnx) must
# give the same logits a call at a time, and greedy generation through it the same tokens as
# `./train sample --temperature 0`. With Debian's python3-onnx, onnx.checker (full_check, which runs shape
# inference) judges every file too.
#   bash dev/onnx/check.sh            (from the repository root; builds train and dataprep)
# onnxruntime-node is looked up through NODE_PATH, then under $ORT_PREFIX (default /tmp/finetune_c_onnx),
# and installed there when npm can (`npm install --prefix $ORT_PREFIX --ignore-scripts onnxruntime-node`: the
# CPU build ships in the package, the install script only fetches GPU libraries). Never inside the repo.
# Without node/npm or the package, it says so and exits 0. Exits 1 on any mismatch.
set -euo pipefail
cd "$(dirname "$0")/../.."
ORT_PREFIX=${ORT_PREFIX:-/tmp/finetune_c_onnx}
export NODE_PATH="${NODE_PATH:+$NODE_PATH:}$ORT_PREFIX/node_modules"
if ! command -v node >/dev/null; then echo "onnx check: skipped (no node)"; exit 0; fi
if ! node -e "require.resolve('onnxruntime-node')" 2>/dev/null; then
    if ! command -v npm >/dev/null; then echo "onnx check: skipped (no npm to install onnxruntime-node)"; exit 0; fi
    echo "onnx check: installing onnxruntime-node under $ORT_PREFIX"
    if ! npm install --prefix "$ORT_PREFIX" --ignore-scripts --silent --no-audit --no-fund onnxruntime-node >/dev/null; then
        echo "onnx check: skipped (npm could not install onnxruntime-node)"; exit 0
    fi
fi
make -s train dataprep >/dev/null
o=test_tmp/onnx_check
rm -rf $o && mkdir -p $o/lm $o/lora $o/cls $o/cls_lora
# data: numbered sentences for the LM, two kinds of line of varying length for the classifier (bytes: V=257)
awk 'BEGIN { for (i = 1; i <= 400; i++) printf "the %s fox %d jumps over %d lazy dogs\n", (i % 3 ? "quick" : "slow brown"), i, i * 7 % 13 }' > $o/text.txt
awk 'BEGIN { print "text\tlabel"; for (i = 1; i <= 300; i++) if (i % 2) printf "a good and happy %s %d\tpos\n", substr("day night week", 1 + i % 9, 3 + i % 5), i; else printf "sad %d\tneg\n", i }' > $o/cls.tsv
./dataprep text --tokenizer bytes --docs line --out $o/lm_data $o/text.txt >/dev/null
./dataprep cls --tokenizer bytes --out $o/cls_data $o/cls.tsv >/dev/null
common="--batch 4 --seq 32 --print-every 0"
./train --init 2,4,64 --vocab 257 --max-seq 64 --train $o/lm_data_train.bin --steps 40 --lr 3e-3 $common --out $o/lm >/dev/null
./train --model $o/lm/model.bin --train $o/lm_data_train.bin --steps 20 --lr 1e-2 --method lora --lora-rank 4 \
    --lora-targets qkv,proj,fc,fcproj $common --out $o/lora >/dev/null
./train --model $o/lm/model.bin --train $o/cls_data_train.ds --steps 20 --lr 1e-3 $common --out $o/cls >/dev/null
./train --model $o/lm/model.bin --train $o/cls_data_train.ds --steps 20 --lr 1e-2 --method lora --lora-rank 4 \
    --lora-layers 1-1 $common --out $o/cls_lora >/dev/null
fail=0
for run in lm:lm_data_val.bin lora:lm_data_val.bin cls:cls_data_val.ds cls_lora:cls_data_val.ds; do
    name=${run%%:*} data=$o/${run#*:}
    case $name in *lora) merge="--merge 1" ;; *) merge="" ;; esac
    ./train export --model $o/$name/model.bin --format onnx --out $o/${name}_onnx $merge >/dev/null
    files=$o/${name}_onnx/model.onnx
    [ ${name%%_*} = cls ] || files="$files $o/${name}_onnx/decoder_with_past_model.onnx"
    if /usr/bin/python3 -c "import onnx" 2>/dev/null; then
        for f in $files; do
            /usr/bin/python3 -c "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True); print('[ OK ] ' + sys.argv[1] + ': onnx.checker ' + onnx.__version__ + ' (full_check)')" $f || fail=1
        done
    fi
    # two shapes: for the classifier T=48 holds every example, T=12 truncates some (the head reads the last kept)
    for shape in $([ ${name%%_*} = cls ] && echo "4,48 3,12" || echo "2,32 3,17"); do
        B=${shape%,*} T=${shape#*,}
        ./train eval --model $o/$name/model.bin --data $data --batch $B --seq $T --max-batches 3 \
            --dump-logits $o/${name}_${B}x$T.logits >/dev/null
        for f in $files; do
            node dev/onnx/check_ort.js $f $o/${name}_${B}x$T.logits "$name $(basename $f .onnx) B=$B T=$T" || fail=1
        done
    done
    if [ ${name%%_*} != cls ]; then  # greedy generation, 40 new tokens after "the quick "
        prompt="116 104 101 32 113 117 105 99 107 32"
        ours=$(./train sample --model $o/$name/model.bin --tokens "$prompt" --temperature 0 --gen 40 2>/dev/null)
        theirs=$(node dev/onnx/generate.js $o/${name}_onnx/decoder_with_past_model.onnx "$prompt" 40) || fail=1
        if [ "$ours" = "$theirs" ]; then echo "[ OK ] $name: greedy generation through the KV cache in ONNX Runtime = ./train sample's 40 tokens"
        else echo "[FAIL] $name: greedy generation differs: ours $ours, ONNX Runtime $theirs"; fail=1; fi
    fi
done
[ $fail = 0 ] && echo "onnx check: ONNX Runtime reproduces our logits for every model" || echo "onnx check: FAILED"
exit $fail
