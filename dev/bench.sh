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
# PyTorch is Debian's python3-torch, given OPENBLAS_CORETYPE=SkylakeX so its OpenBLAS uses the AVX-512
# kernels on this CPU it does not recognise; dev/bench_torch.py checks those kernels' numbers against float64
# first, and sets OpenBLAS's own thread count (torch.set_num_threads does not). Takes ~5 minutes on 2 cores.
#   THREADS="1 2" STEPS=5 SMALL_STEPS=3 CASES="124m lora small" make bench
set -euo pipefail
cd "$(dirname "$0")/.."
threads_list=${THREADS:-"1 2"}
steps=${STEPS:-5}
small_steps=${SMALL_STEPS:-3}
cases=${CASES:-"124m lora small"}
py=/usr/bin/python3
[ -x "$py" ] || py=python3
torch=1
"$py" -c "import torch" 2>/dev/null || torch=0
[ $torch = 1 ] || echo "PyTorch not found (apt-get install python3-torch libopenblas0-pthread): finetune.c only"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for case in $cases; do
    case $case in
        124m)  name="GPT-2 124M, B=4 T=64, full";   n=$steps
               ours="--init 12,12,768 --vocab 50257 --batch 4 --seq 64"; theirs="--L 12 --NH 12 --C 768 --B 4 --T 64" ;;
        lora)  name="GPT-2 124M, B=4 T=64, LoRA r=8 qkv+proj"; n=$steps
               ours="--init 12,12,768 --vocab 50257 --batch 4 --seq 64 --method lora --lora-rank 8"
               theirs="--L 12 --NH 12 --C 768 --B 4 --T 64 --lora 8 --lora_targets qkvw,attprojw" ;;
        small) name="L6 NH6 C384, B=8 T=256, full"; n=$small_steps
               ours="--init 6,6,384 --vocab 50257 --batch 8 --seq 256"; theirs="--L 6 --NH 6 --C 384 --B 8 --T 256" ;;
        *) echo "unknown case '$case' (124m, lora, small)"; exit 1 ;;
    esac
    for th in $threads_list; do
        echo "-- $name, $th thread(s), 1 warmup + $n steps"
        o=$(OMP_NUM_THREADS=$th ./train bench $ours --steps "$n" | tail -n 1)
        echo "finetune.c: $o"
        t='{}'
        if [ $torch = 1 ]; then
            t=$(OMP_NUM_THREADS=$th OPENBLAS_NUM_THREADS=$th OPENBLAS_CORETYPE=SkylakeX \
                "$py" dev/bench_torch.py $theirs --steps "$n" --threads "$th" | tail -n 1)
            echo "PyTorch:    $t"
        fi
        printf '%s\t%s\t%s\n' "$name" "$o" "$t" >>"$out"
    done
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
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
EOF
