#!/usr/bin/env bash
# make bench: full training steps (forward, backward, clipping, AdamW; random init, random tokens) of this
# project and of PyTorch, measured back to back in one run, on 1 and on 2 threads, for three cases:
#   GPT-2 124M (L12 NH12 C768, V 50257) at B=4 T=64: the issue's target shape, fine-tuning with small batches;
#   the same with LoRA (r=8 on qkv and proj: the default --method lora);
#   L6 NH6 C384 (V 50257) at B=8 T=256: the README's from-scratch example; 2048 tokens a step instead of
#     256, so the matmuls have 8x more rows and the LM head (19M of its 30M parameters) dominates.
# Each of our runs also measures the machine's FP32 peak (an FMA loop, 1 and all threads, in that run), so
# "% of peak" compares with the peak under the same load. Then a table (markdown, as in README.md). The
# "CPU share" column (process CPU time / (wall time x threads), ours / PyTorch's) says whether the run had the
# cores to itself: ours is ~1.0 on an idle machine (its waiting OpenMP threads spin, and count), and lower
# means other processes took the cores: do not trust that row. PyTorch's threads sleep while they wait
# (OMP_WAIT_POLICY=PASSIVE, see dev/bench_torch.py), so its share is also below 1 when it alone leaves a
# core idle (~0.8 on 2 threads here). The machine this was written on is a shared VM where even runs at
# CPU share 1.0 vary by +-10% (memory bandwidth and cache are shared too): compare medians of repeats.
# PyTorch is Debian's python3-torch; dev/bench_torch.py checks its OpenBLAS kernels' numbers against float64
# first, and sets OpenBLAS's own thread count (torch.set_num_threads does not). OpenBLAS 0.3.21 does not
# recognise newer CPUs (this project's KVM Xeon and Zen 5 EPYC) and falls back to a slow generic kernel, so
# OPENBLAS_CORETYPE names the kernels to use, but only those the CPU has the instructions for (from the
# /proc/cpuinfo flags): SkylakeX with AVX-512 F/BW/DQ/VL, Haswell with AVX2+FMA, else OpenBLAS's own choice.
# (Forcing SkylakeX on a CPU without AVX-512 dies with SIGILL.) An OPENBLAS_CORETYPE already set is kept.
# If the peer fails anyway, its error is printed and the bench goes on without it. Takes ~5 minutes on 2 cores.
#   THREADS="1 2" STEPS=5 SMALL_STEPS=3 CASES="124m lora small" make bench
# Llama (issue 15), not in the default CASES: the SmolLM2-135M shape (30 layers, C=576, 9 heads, 3 KV heads,
# intermediate 1536, V=49152, rope_theta 100000; 134.5M parameters, tied head) at B=4 T=64, random weights:
#   smol       full fine-tuning;   smol-lora   LoRA r=8 alpha 16 on q,k,v,o (base frozen)
# against dev/bench_llama_torch.py (the same model in PyTorch, written from the definitions; its docstring),
# LLAMA_STEPS (default 3) timed steps after 1 warmup (a step takes seconds here). ~3 minutes on 2 cores:
#   CASES="smol smol-lora" bash dev/bench.sh
# llama-check (a correctness check of the peer, no timing, no table row): see llama_check below.
# ISA=avx2 on an AVX-512 machine: our side is built with -mno-avx512f (the AVX2+FMA tile, into a temp dir),
# PyTorch is held to AVX2 the same way (OPENBLAS_CORETYPE=Haswell, ATEN_CPU_CAPABILITY=avx2,
# DNNL_MAX_CPU_ISA=AVX2): "an AVX2 build on an AVX-512 machine", the closest this machine gets to AVX2-only.
# QEMU_CPU=EPYC-Milan (any `qemu-x86_64 -cpu help` model), x86 only: both sides run under qemu-user emulating
# that CPU, e.g. the AMD Zen 3 (AVX2 + FMA, no AVX-512) of the issue that found `make bench` crashing there.
# The ISA and the OpenBLAS kernels are then decided from what that CPU answers (dev/cpu_flags.c asks CPUID;
# /proc/cpuinfo stays the host's under qemu-user), and our side is built for it (-march=haswell -mtune=generic with AVX2+FMA,
# else -march=x86-64; qemu 7.2 emulates no AVX-512). This checks that the bench runs to its table on such a
# CPU and which kernels it picks; emulation is ~500x slower, so its times say nothing about speed:
#   OPENBLAS_CORETYPE= QEMU_CPU=EPYC-Milan CASES=tiny make bench
# (CASES=tiny: L2 NH2 C64 V512 at B=4 T=64, a few seconds a step under emulation.)
# BUSY=1: one busy loop runs on the side for the whole bench (another process taking a core), to see how the
# 2-thread runs degrade under load; it stops when the bench ends.
set -euo pipefail
cd "$(dirname "$0")/.."
threads_list=${THREADS:-"1 2"}
steps=${STEPS:-5}
small_steps=${SMALL_STEPS:-3}
llama_steps=${LLAMA_STEPS:-3}
cases=${CASES:-"124m lora small"}
py=/usr/bin/python3
[ -x "$py" ] || py=python3
torch=1
"$py" -c "import torch" 2>/dev/null || torch=0
[ $torch = 1 ] || echo "PyTorch not found (apt-get install python3-torch libopenblas0-pthread): finetune.c only"

out=$(mktemp)
tmp=$(mktemp -d)
busy=
trap '[ -n "$busy" ] && kill "$busy" 2>/dev/null; rm -rf "$out" "$tmp"' EXIT

# the CPU's vector ISA, from its flags (x86) or features (ARM), and the OpenBLAS kernels it can run
cpuinfo=$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || true)
model=$(grep -m1 -E 'model name|^Model' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ //' || true)
model=${model:-$(uname -m) CPU}  # many aarch64 kernels list no model name
emu=  # the command every run of either side goes through: empty, or qemu-x86_64 -cpu $QEMU_CPU
if [ -n "${QEMU_CPU:-}" ]; then
    command -v qemu-x86_64 >/dev/null && [ "$(uname -m)" = x86_64 ] ||
        { echo "QEMU_CPU=$QEMU_CPU: needs an x86-64 machine with qemu-x86_64 (apt-get install qemu-user)"; exit 1; }
    emu=$tmp/on_cpu  # qemu-x86_64 -cpu $QEMU_CPU, less its warnings about CPUID bits TCG does not emulate
    printf '#!/bin/sh\nqemu-x86_64 -cpu "%s" "$@" 2>"%s/qemu.$$"; rc=$?\n' "$QEMU_CPU" "$tmp" >"$emu"
    printf 'grep -v "TCG doesn.t support requested feature" "%s/qemu.$$" >&2; rm -f "%s/qemu.$$"; exit $rc\n' "$tmp" "$tmp" >>"$emu"
    chmod +x "$emu"
    cc -O2 -o "$tmp/cpu_flags" dev/cpu_flags.c
    cpuinfo=$($emu "$tmp/cpu_flags" 2>/dev/null) ||
        { echo "QEMU_CPU=$QEMU_CPU: qemu-x86_64 cannot run it (see qemu-x86_64 -cpu help)"; exit 1; }
    model="$QEMU_CPU emulated by qemu-x86_64 on $model (times are the emulation's, not a speed measurement)"
fi
flags=" $(echo "$cpuinfo" | cut -d: -f2) "
has() { [[ $flags == *" $1 "* ]]; }
if has avx512f && has avx512bw && has avx512dq && has avx512vl; then isa=AVX-512 core=SkylakeX
elif has avx2 && has fma; then isa=AVX2+FMA core=Haswell
elif has asimd; then isa=NEON core=
else isa="no AVX2, no NEON" core=
fi
train=./train
torch_env=()
arch=  # non-empty: our side is built with ARCH=$arch in $tmp instead of using ./train
if [ "${ISA:-}" = avx2 ]; then
    has avx2 && has fma || { echo "ISA=avx2: this CPU has no AVX2+FMA"; exit 1; }
    arch="-march=native -mno-avx512f" why="an AVX2 build on an AVX-512 machine"
    isa="AVX2+FMA (restricted; the CPU has $isa)" core=Haswell
    torch_env=(ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2 ONEDNN_MAX_CPU_ISA=AVX2)
fi
if [ -n "$emu" ]; then
    arch=-march=x86-64 why="for the emulated $QEMU_CPU"
    has avx2 && has fma && arch="-march=haswell -mtune=generic"  # generic: no gathers (qemu 7.2 gets one wrong, dev/test_isa.sh)
fi
if [ -n "$arch" ]; then
    echo "== building ./train with ARCH='$arch' in $tmp ($why)"
    git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$tmp"
    make -C "$tmp" -s ARCH="$arch" train >/dev/null
    train=$tmp/train
fi
[ -n "${OPENBLAS_CORETYPE:-}" ] && echo "== OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE from the environment is kept (OPENBLAS_CORETYPE= to let the bench choose $core)"
core=${OPENBLAS_CORETYPE:-$core}
[ -n "$core" ] && torch_env+=(OPENBLAS_CORETYPE=$core)
tile=$(grep -a -o -m1 '[A-Za-z0-9+-]* [0-9]*x[0-9]* fp32, KC [0-9]*' "$train" | head -n 1)  # kernels.h's gemm_tile
echo "== $model, $(nproc) cores, vector ISA: $isa;" \
     "finetune.c's matmul tile: $tile; PyTorch's OpenBLAS kernels: ${core:-its own choice}"
if [ "${BUSY:-0}" = 1 ]; then
    timeout 3600 sh -c 'while :; do :; done' &
    busy=$!
    echo "== BUSY=1: a busy loop (pid $busy) takes one core for the whole bench"
fi
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg); ./train's OMP_WAIT_POLICY: ${OMP_WAIT_POLICY:-unset (libgomp: waiting threads spin a while, then sleep)}"
# ./train's flags for the SmolLM2-135M shape (rope_theta and the RMSNorm eps as SmolLM2's config.json)
smol_ours="--arch llama --init 30,9,576 --kv-heads 3 --mlp-width 1536 --vocab 49152 --rope-theta 100000 --norm-eps 1e-5"
smol_theirs="--L 30 --C 576 --NH 9 --NKV 3 --F 1536 --V 49152 --theta 100000 --eps 1e-5"

# llama-check: does the peer compute our function? One random llama model written by ./train (--steps 0 saves
# the init), its loss on the first B x T window of a random token file by ./train eval and by the peer reading
# that checkpoint (--ckpt, --tokens); then the same after K AdamW steps on that one batch (./train --shuffle 0
# on a file of exactly one window; the peer with ./train's defaults: lr 3e-4 cosine to 0.1x, betas 0.9/0.95,
# eps 1e-8, weight decay 0.1 on matrices, clip 1.0). LLAMA_CHECK_SHAPE=smol: at SmolLM2's shape (else a small
# odd one), LLAMA_CHECK_STEPS=K (default 1). Tolerance 1e-4 on a loss of ~ln V: float32 on both sides, in
# different summation orders (blocked matmuls, fused vs separate projections); each run prints the |d| seen.
llama_check() {
    local shape=${LLAMA_CHECK_SHAPE:-small} k=${LLAMA_CHECK_STEPS:-1} B=4 T=64 V ours d=$tmp/check fail=0
    if [ "$shape" = smol ]; then V=49152 ours=$smol_ours
    else V=1000 ours="--arch llama --init 3,6,48 --kv-heads 2 --mlp-width 80 --vocab 1000 --rope-theta 10000 --norm-eps 1e-5"
    fi
    mkdir -p "$d"
    "$py" -c 'import random, struct, sys
path, n, V = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r, h = random.Random(7), [0] * 256
h[0], h[1], h[2], h[3], h[4] = 20261128, 1, 2, V, n  # dataset.h: an LM token file of uint16 tokens
open(path, "wb").write(struct.pack("<256i", *h) + struct.pack(f"<{n}H", *[r.randrange(V) for _ in range(n)]))' \
        "$d/tok.bin" $((B * T + 1)) "$V"
    OMP_NUM_THREADS=2 $emu $train train $ours --train "$d/tok.bin" --batch $B --seq $T --steps 0 --out "$d/init" >/dev/null
    OMP_NUM_THREADS=2 $emu $train train --model "$d/init/model.bin" --train "$d/tok.bin" --batch $B --seq $T --shuffle 0 \
        --steps "$k" --out "$d/trained" >/dev/null
    for m in init trained; do
        local o t what="at init" steps=0
        [ $m = trained ] && what="after $k AdamW step(s)" steps=$k
        o=$(OMP_NUM_THREADS=2 $emu $train eval --model "$d/$m/model.bin" --data "$d/tok.bin" --batch $B --seq $T --max-batches 1 | tail -n 1)
        t=$(env "${torch_env[@]}" OMP_NUM_THREADS=2 $emu "$py" dev/bench_llama_torch.py --ckpt "$d/init/model.bin" \
            --tokens "$d/tok.bin" --B $B --T $T --check_steps $steps | tail -n 1)
        "$py" -c 'import json, sys
o, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
lo, lt = o["loss"], t["loss"]
d = abs(lo - lt)
print(f"llama-check ({sys.argv[3]}): ./train eval loss {lo:.6f}, PyTorch {lt:.7f}, |d| {d:.1e}: " +
      ("OK" if d <= 1e-4 else "FAIL (tolerance 1e-4)"))
sys.exit(d > 1e-4)' "$o" "$t" "$shape shape, $what" || fail=1
    done
    return $fail
}

status=0
for case in $cases; do
    peer=dev/bench_torch.py
    case $case in
        124m)  name="GPT-2 124M, B=4 T=64, full";   n=$steps
               ours="--init 12,12,768 --vocab 50257 --batch 4 --seq 64"; theirs="--L 12 --NH 12 --C 768 --B 4 --T 64" ;;
        lora)  name="GPT-2 124M, B=4 T=64, LoRA r=8 qkv+proj"; n=$steps
               ours="--init 12,12,768 --vocab 50257 --batch 4 --seq 64 --method lora --lora-rank 8"
               theirs="--L 12 --NH 12 --C 768 --B 4 --T 64 --lora 8 --lora_targets qkvw,attprojw" ;;
        small) name="L6 NH6 C384, B=8 T=256, full"; n=$small_steps
               ours="--init 6,6,384 --vocab 50257 --batch 8 --seq 256"; theirs="--L 6 --NH 6 --C 384 --B 8 --T 256" ;;
        tiny)  name="L2 NH2 C64 V512, B=4 T=64, full"; n=$small_steps
               ours="--init 2,2,64 --vocab 512 --batch 4 --seq 64"; theirs="--L 2 --NH 2 --C 64 --V 512 --Vp 512 --B 4 --T 64" ;;
        smol)  name="SmolLM2-135M shape, B=4 T=64, full"; n=$llama_steps peer=dev/bench_llama_torch.py
               ours="$smol_ours --batch 4 --seq 64"; theirs="$smol_theirs --B 4 --T 64" ;;
        smol-lora) name="SmolLM2-135M shape, B=4 T=64, LoRA r=8 q,k,v,o"; n=$llama_steps peer=dev/bench_llama_torch.py
               ours="$smol_ours --batch 4 --seq 64 --method lora --lora-rank 8 --lora-alpha 16 --lora-targets q,k,v,o"
               theirs="$smol_theirs --B 4 --T 64 --lora 8 --alpha 16 --lora_targets q,k,v,o" ;;
        llama-check) llama_check || status=1; continue ;;
        *) echo "unknown case '$case' (124m, lora, small, tiny, smol, smol-lora, llama-check)"; exit 1 ;;
    esac
    for th in $threads_list; do
        echo "-- $name, $th thread(s), 1 warmup + $n steps"
        o=$(OMP_NUM_THREADS=$th $emu $train bench $ours --steps "$n" | tail -n 1)
        echo "finetune.c: $o"
        t='{}'
        if [ $torch = 1 ]; then
            if t=$(env "${torch_env[@]}" OMP_NUM_THREADS=$th OPENBLAS_NUM_THREADS=$th \
                   $emu "$py" $peer $theirs --steps "$n" --threads "$th" 2>"$tmp/torch.err" | tail -n 1) &&
               [ "${t:0:1}" = "{" ]; then
                echo "PyTorch:    $t"
            else
                echo "PyTorch failed (${torch_env[*]}), left out of this row:"; tail -n 5 "$tmp/torch.err"
                t='{}'
            fi
        fi
        printf '%s\t%s\t%s\n' "$name" "$o" "$t" >>"$out"
    done
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -s "$out" ] || exit $status  # llama-check alone: no table
"$py" - "$out" <<'EOF'
import json, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
print("\n| case | threads | finetune.c ms/step | tokens/s | GFLOP/s | % of peak | peak RSS | PyTorch ms/step "
      "| PyTorch peak RSS | finetune.c vs PyTorch | CPU share |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
peaks = {}
for name, o, t in rows:
    o, t = json.loads(o), json.loads(t)
    peaks.setdefault(o["threads"], []).append(o["peak_gflops"])
    ratio, theirs, rss, share = "", "", "", f"{o['cpu_share']:.2f}"
    if t:
        r = t["ms_per_step"] / o["ms_per_step"]
        ratio = f"**{r:.2f}x faster**" if r >= 1 else f"{1 / r:.2f}x slower"
        theirs, rss = f"{t['ms_per_step']:.0f}", f"{t['peak_rss_mb']:.0f} MB"
        share += f" / {t['cpu_share']:.2f}"
    print(f"| {name} | {o['threads']} | {o['ms_per_step']:.0f} | {o['tokens_per_s']:.0f} | {o['gflops']:.1f} | "
          f"{100 * o['frac_of_peak']:.0f}% | {o['peak_rss_mb']:.0f} MB | {theirs} | {rss} | {ratio} | {share} |")
med = lambda v: sorted(v)[len(v) // 2]
print("\nmeasured FP32 peak (FMA loop, median over the runs): " +
      ", ".join(f"{med(v):.0f} GFLOP/s on {k} thread{'s' if k > 1 else ''}" for k, v in sorted(peaks.items())))
peer = next((json.loads(t) for _n, _o, t in rows if t != "{}"), None)
if peer:
    print(f"PyTorch {peer['torch']}, float32, OpenBLAS kernels {peer['blas'] or '?'}, OMP_WAIT_POLICY="
          f"{peer['omp_wait_policy']}" + (f", attention: {peer['attention']}" if "attention" in peer else ""))
EOF
exit $status
