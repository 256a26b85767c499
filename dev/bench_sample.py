"""
The speed peer for generation: GPT-2 (dev/gpt_torch.py's parameters) in float32 PyTorch on the CPU,
batch 1, a prompt of M tokens then N new tokens, greedy, with a KV cache, the way Hugging Face's
generate(use_cache=True) does it: the prompt in one forward pass, then one position per step, each
layer's keys and values appended to a preallocated cache.

    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 dev/bench_sample.py [--L 12 --NH 12 --C 768 --V 50257
        --Vp 50304 --maxT 1024 --M 16 --N 128 --threads 2]

Random init (the speed does not depend on the values). One untimed warmup generation first (allocator,
thread pools), then one timed. tokens_per_s = N / (time of prompt pass + N steps), the same quantity
./train sample prints. See dev/bench_torch.py for OPENBLAS_CORETYPE and OMP_WAIT_POLICY.

--mv 0: every projection is F.linear, as nn.Linear (and HF's Conv1D addmm) computes it; at one token that is
  a 1-row GEMM, which Debian's OpenBLAS runs at ~5 GB/s of weights here.
--mv 1 (default): the one-token steps use torch.mv (a GEMV, ~14 GB/s here): the stronger peer.

Prints one JSON line:
{"peer":"pytorch","torch":..,"threads":..,"M":..,"N":..,"ms_per_token":..,"tokens_per_s":..,...}
"""
import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # must precede the OpenMP runtime's start
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.dont_write_bytecode = True  # no dev/__pycache__ next to the sources
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_torch as G  # noqa: E402


def linear(x, w, b, mv):
    """x @ w^T + b for x (1, n, in); with mv and n = 1 as a matrix-vector product."""
    if mv and x.shape[-2] == 1:
        y = torch.mv(w, x.reshape(-1))
        return (y if b is None else y + b).view(1, 1, -1)
    return F.linear(x, w, b)


def forward_cached(p, idx, pos, cache, cfg, mv):
    """idx: (1, n) tokens at positions pos..pos+n-1. Appends their keys/values to cache (per layer a
    (1, NH, maxT, hs) pair) and returns the logits of the last one, (V,)."""
    n = idx.shape[1]
    C, NH, L = cfg["C"], cfg["NH"], cfg["L"]
    hs = C // NH
    h = p["wte"][idx] + p["wpe"][pos:pos + n]                                # (1,n,C)
    # query i (at pos+i) sees keys 0..pos+i: causal within the new tokens, everything before them
    mask = torch.ones(n, pos + n, dtype=torch.bool).tril(diagonal=pos) if n > 1 else None
    for l in range(L):
        P = lambda name: p[f"{name}.{l}"]
        a = G.layernorm(h, P("ln1w"), P("ln1b"))
        q, k, v = linear(a, P("qkvw"), P("qkvb"), mv).split(C, dim=-1)
        q, k, v = (t.view(1, n, NH, hs).transpose(1, 2) for t in (q, k, v))  # (1,NH,n,hs)
        ck, cv = cache[l]
        ck[:, :, pos:pos + n] = k
        cv[:, :, pos:pos + n] = v
        K, Vv = ck[:, :, :pos + n], cv[:, :, :pos + n]                       # (1,NH,pos+n,hs)
        att = (q @ K.transpose(-2, -1)) * (1.0 / math.sqrt(hs))              # (1,NH,n,pos+n)
        if mask is not None:
            att = att.masked_fill(~mask, float("-inf"))
        y = (F.softmax(att, dim=-1) @ Vv).transpose(1, 2).reshape(1, n, C)
        h = h + linear(y, P("attprojw"), P("attprojb"), mv)
        m = G.layernorm(h, P("ln2w"), P("ln2b"))
        h = h + linear(G.gelu(linear(m, P("fcw"), P("fcb"), mv)), P("fcprojw"), P("fcprojb"), mv)
    h = G.layernorm(h[:, -1:], p["lnfw"], p["lnfb"])                         # (1,1,C)
    return linear(h, p["wte"], None, mv).reshape(-1)[:cfg["V"]]              # tied head


def generate(p, prompt, N, cfg, mv):
    hs = cfg["C"] // cfg["NH"]
    cache = [(torch.empty(1, cfg["NH"], cfg["maxT"], hs), torch.empty(1, cfg["NH"], cfg["maxT"], hs))
             for _ in range(cfg["L"])]
    out = list(prompt)
    logits = forward_cached(p, torch.tensor([out]), 0, cache, cfg, mv)
    for i in range(N):
        out.append(int(logits.argmax()))
        if i + 1 < N:
            logits = forward_cached(p, torch.tensor([[out[-1]]]), len(out) - 1, cache, cfg, mv)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for k, v in dict(L=12, NH=12, C=768, V=50257, Vp=50304, maxT=1024, M=16, N=128, threads=2, seed=1337,
                     mv=1).items():
        ap.add_argument(f"--{k}", type=int, default=v)
    a = ap.parse_args()
    assert a.M + a.N <= a.maxT and a.C % a.NH == 0 and a.V <= a.Vp
    torch.set_num_threads(a.threads)
    cfg = dict(L=a.L, NH=a.NH, C=a.C, maxT=a.maxT, V=a.V, Vp=a.Vp)
    gen = torch.Generator().manual_seed(a.seed)
    p = G.to_leaves(G.init_params(cfg, gen, torch.float32, nontrivial=False, draw_dtype=torch.float32), cfg,
                    requires_grad=False, copy=False)
    prompt = torch.randint(0, a.V, (a.M,), generator=gen).tolist()
    with torch.inference_mode():
        generate(p, prompt, min(a.N, 8), cfg, a.mv)  # warmup
        t0 = time.perf_counter()
        out = generate(p, prompt, a.N, cfg, a.mv)
        dt = time.perf_counter() - t0
    print(json.dumps({
        "peer": "pytorch", "torch": torch.__version__, "threads": a.threads, "L": a.L, "C": a.C,
        "M": a.M, "N": a.N, "mv": a.mv, "ms_per_token": round(1000 * dt / a.N, 2), "tokens_per_s": round(a.N / dt, 1),
        "last_tokens": out[-3:], "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"], "loadavg_1min": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
