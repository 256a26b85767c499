"""
The speed peer: the same GPT-2 (dev/gpt_torch.py) trained in float32 PyTorch on the CPU.

    OPENBLAS_CORETYPE=SkylakeX python3 dev/bench_torch.py [--L 12 --NH 12 --C 768 --V 50257
        --Vp 50304 --maxT 1024 --B 4 --T 64 --steps 5 --threads 2 --lora 0 --mode train]

Debian's torch uses the system OpenBLAS, whose CPU detection does not recognise this (virtual) CPU
and falls back to a slow generic kernel ("Prescott"); OPENBLAS_CORETYPE=SkylakeX selects the AVX-512
kernels. Checked: the same losses with and without it (bit-identical at small sizes; at 124M the loss
after 6 steps differs in the 7th digit, 6.952947 vs 6.952945, from the kernels' different summation
order); only the speed changes, ~5x at 124M. Every run also checks it again: the float32 products that
the step uses (x @ W^T, dy @ W, dy^T @ x at the run's shapes) against float64, before timing; a kernel
that computed wrong numbers would stop the bench here. (With a pyenv shim in front of the system python,
run /usr/bin/python3.)

Threads: torch.set_num_threads sets torch's own (OpenMP) pool but not OpenBLAS's, which Debian builds
with pthreads and which keeps one thread per core; so --threads also calls openblas_set_num_threads
(found in the loaded library). "1 thread" is then really one: before this, a 1-thread PyTorch run
still did its matmuls on 2.

OMP_WAIT_POLICY defaults to PASSIVE here (set before torch is imported; override from the shell):
torch's OpenMP pool and Debian's pthread OpenBLAS pool otherwise busy-wait against each other, and on
a 2-core machine every elementwise op after a GEMM then waits out a scheduler slice (~7 ms each):
--mode forward at 124M went 2.2 s -> 0.9 s per step. Timings also swing widely when anything else
runs on the machine; check the load average (and cpu_share in the output: CPU time / (wall x threads),
~1.0 when the run had its cores to itself). ms_per_step is the median over the timed steps.

--mode train: 1 warmup + --steps full steps: forward, backward, clip_grad_norm_(1.0), AdamW (weight
  decay 0.1 on matrices only), zero_grad. Random init and random tokens, fixed seed.
--mode forward: 1 warmup + --steps forward passes (logits and loss) under torch.no_grad().
--lora r (r > 0): freeze every base parameter and train rank-r LoRA adapters (alpha = r, scale 1;
  A ~ normal(0, 1/r) (loralib: kaiming-uniform; no matter for timing), B = 0) on --lora_targets,
  no weight decay on the adapters.

Prints one JSON line:
{"peer":"pytorch","torch":..,"threads":..,"B":..,"T":..,"ms_per_step":..,"tokens_per_s":..,
 "peak_rss_mb":..,"loss":..,"blas":..,"blas_threads":..,"blas_check_rel_err":..}
 (loss: of the last timed step, before its update; blas: OpenBLAS's kernel name, "SkylakeX" wanted)
"""
import argparse
import ctypes
import json
import os
import resource
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # must precede the OpenMP runtime's start
import torch  # noqa: E402

sys.dont_write_bytecode = True  # no dev/__pycache__ next to the sources
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_torch as G  # noqa: E402


def openblas():
    """The OpenBLAS library torch loaded (Debian links it as the system BLAS), or None."""
    with open("/proc/self/maps") as f:
        paths = sorted({line.split()[-1] for line in f if "libopenblas" in line})
    if not paths:
        return None
    lib = ctypes.CDLL(paths[0])
    lib.openblas_get_corename.restype = ctypes.c_char_p
    return lib


def check_blas(a):
    """Max relative error of the step's three float32 matmul forms against float64 (at the run's shapes)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.B * a.T, a.C, generator=g, dtype=torch.float64)
    F_ = getattr(a, "F", 4 * a.C)  # the MLP width (GPT-2: 4C; the Llama peer passes its own)
    w = torch.randn(F_, a.C, generator=g, dtype=torch.float64) / a.C ** 0.5
    dy = torch.randn(a.B * a.T, F_, generator=g, dtype=torch.float64)
    worst = 0.0
    for f in (lambda x, w, dy: x @ w.t(), lambda x, w, dy: dy @ w, lambda x, w, dy: dy.t() @ x):
        ref, got = f(x, w, dy), f(x.float(), w.float(), dy.float()).double()
        worst = max(worst, ((got - ref).abs().max() / ref.abs().max()).item())
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for k, v in dict(L=12, NH=12, C=768, V=50257, Vp=50304, maxT=1024, B=4, T=64,
                     steps=5, threads=2, lora=0, seed=1337).items():
        ap.add_argument(f"--{k}", type=int, default=v)
    ap.add_argument("--lora_targets", default="qkvw,attprojw,fcw,fcprojw")
    ap.add_argument("--mode", choices=["train", "forward"], default="train")
    ap.add_argument("--lr", type=float, default=1e-4)
    a = ap.parse_args()
    assert a.T <= a.maxT and a.C % a.NH == 0 and a.V <= a.Vp
    torch.set_num_threads(a.threads)
    blas = openblas()
    if blas:
        blas.openblas_set_num_threads(a.threads)
    rel = check_blas(a)
    if not rel < 1e-5:  # fp32 products of length C..4C: ~1e-7..1e-6 here; a broken kernel is off by O(1)
        sys.exit(f"bench_torch.py: float32 matmul off by {rel:.2e} (relative) against float64 with OpenBLAS "
                 f"kernel {blas.openblas_get_corename().decode() if blas else '?'}: results would be wrong")
    cfg = dict(L=a.L, NH=a.NH, C=a.C, maxT=a.maxT, V=a.V, Vp=a.Vp)

    gen = torch.Generator().manual_seed(a.seed)
    params = G.to_leaves(G.init_params(cfg, gen, torch.float32, nontrivial=False,
                                         draw_dtype=torch.float32), cfg, copy=False)
    idx = torch.randint(0, a.V, (a.B, a.T), generator=gen)
    tgt = torch.randint(0, a.V, (a.B, a.T), generator=gen)

    lora = None
    if a.lora > 0:
        lora = {}
        for k, p in params.items():
            p.requires_grad_(False)
            if k.split(".")[0] in a.lora_targets.split(","):
                out_f, in_f = p.shape
                A = (torch.randn(a.lora, in_f, generator=gen) / a.lora).requires_grad_(True)
                Bm = torch.zeros(out_f, a.lora, requires_grad=True)
                lora[k] = (A, Bm, 1.0)  # scale = alpha / r with alpha = r
        trainable = [x for A, Bm, _ in lora.values() for x in (A, Bm)]
        groups = [{"params": trainable, "weight_decay": 0.0}]
    else:
        groups = [{"params": [p for k, p in params.items() if G.decays(k)], "weight_decay": 0.1},
                  {"params": [p for k, p in params.items() if not G.decays(k)], "weight_decay": 0.0}]
        trainable = [p for g in groups for p in g["params"]]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.95), eps=1e-8)

    def step():
        if a.mode == "forward":
            with torch.no_grad():
                return G.forward(params, idx, cfg, tgt, lora=lora)[1].item()
        _, loss = G.forward(params, idx, cfg, tgt, lora=lora)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    step()  # warmup: allocator, OpenBLAS thread pool, AdamW state
    t0, c0 = time.perf_counter(), time.process_time()
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t)
    times.sort()  # the median step, as finetune.c's bench reports: robust to a step slowed by another process
    ms = 1000 * (times[len(times) // 2] if len(times) % 2 else (times[len(times) // 2 - 1] + times[len(times) // 2]) / 2)
    # CPU time / (wall x threads): ~1 on an idle machine, lower when other processes took the cores
    cpu_share = (time.process_time() - c0) / ((time.perf_counter() - t0) * a.threads)
    print(json.dumps({
        "peer": "pytorch", "torch": torch.__version__, "threads": a.threads, "mode": a.mode,
        "lora": a.lora, "L": a.L, "C": a.C, "B": a.B, "T": a.T,
        "ms_per_step": round(ms, 2), "tokens_per_s": round(a.B * a.T / (ms / 1000), 1),
        "cpu_share": round(cpu_share, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # KiB on Linux
        "loss": round(loss, 6),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"], "loadavg_1min": os.getloadavg()[0],
        "blas": blas.openblas_get_corename().decode() if blas else "", "blas_threads":
        blas.openblas_get_num_threads() if blas else 0, "blas_check_rel_err": float(f"{rel:.2e}")}))


if __name__ == "__main__":
    main()
