#!/usr/bin/env bash
# dev/cuda/emu/run.sh: builds test_gpt.cu, train.cu and the dev/cuda benchmarks for the CPU emulator and runs
# the test (and, with BENCH=1, every benchmark at its "small" shapes). For machines without a GPU: it checks
# the CUDA code's indexing, launch shapes, barrier placement, cuBLAS argument layout and numerics against the
# CPU path. It is NOT a GPU: it cannot see memory-model bugs, races between blocks, real cuBLAS behaviour or
# speed. Needs g++, python3 and the CUDA headers (nvcc's include folder); no GPU, no driver.
#   bash dev/cuda/emu/run.sh            (from the repository root, after `make train`)
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
emu=$root/dev/cuda/emu
cuda_inc=${CUDA_INC:-/usr/local/cuda/include}
out=${EMU_OUT:-${TMPDIR:-/tmp}/finetune_emu}
rm -rf "$out" && mkdir -p "$out/dev/cuda" "$out/test_tmp"
# train.cu includes "train.c" from its own folder: the build folder gets the C sources beside the rewritten .cu
cp "$root"/*.c "$root"/*.h "$out"/  # every C source: train.cu reaches them through train.c's includes
for f in train.cu test_gpt.cu; do python3 "$emu/rewrite.py" "$root/$f" "$out/$f"; done
cp "$root"/dev/cuda/common.h "$out/dev/cuda/"
flags="-std=c++17 -O2 -fopenmp -Wall -Wno-unused-function -Wno-missing-field-initializers -Wno-unknown-pragmas -include $emu/emu.h -I$cuda_inc"
echo "== building for the emulator in $out"
g++ $flags -x c++ "$out/test_gpt.cu" -x c++ "$emu/emu_runtime.cpp" -o "$out/test_gpt_gpu"
g++ $flags -x c++ "$out/train.cu" -x c++ "$emu/emu_runtime.cpp" -o "$out/train_gpu"
ln -sfn "$root/ref" "$out/ref"
[ -x "$root/train" ] || { echo "build ./train first (make train)"; exit 1; }
ln -sfn "$root/train" "$out/train"
cd "$out"
echo "== test_gpt.cu under the emulator (a few minutes)"
status=0
./test_gpt_gpu || status=$?
if [ "${BENCH:-0}" = 1 ]; then
    for f in "$root"/dev/cuda/*.cu; do
        b=$(basename "$f" .cu)
        python3 "$emu/rewrite.py" "$f" "$out/dev/cuda/$b.cu"
        g++ $flags -x c++ "$out/dev/cuda/$b.cu" -x c++ "$emu/emu_runtime.cpp" -o "$out/dev/cuda/$b"
        echo "== dev/cuda/$b small (emulated: the times mean nothing)"
        "$out/dev/cuda/$b" small || status=1
    done
fi
exit $status
