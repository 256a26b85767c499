"""
The Llama speed peer: a Llama-style decoder (the layout of ./train --arch llama, model.h) written
in float32 PyTorch from the definitions, no transformers, trained on the CPU; dev/bench.sh runs it side by
side with ./train bench. The default shape is SmolLM2-135M's (30 layers, C=576, 9 heads, 3 KV heads,
intermediate 1536, V=49152, rope_theta 100000, RMSNorm eps 1e-5, tied LM head), B=4 T=64.

    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 dev/bench_llama_torch.py [--L 30 --C 576 --NH 9 --NKV 3
        --F 1536 --V 49152 --maxT 8192 --theta 100000 --B 4 --T 64 --steps 3 --warmup 1 --threads 2
        --lora 0 --lora_targets q,k,v,o --alpha 16 --mode train]

The model, per layer, as Hugging Face's LlamaDecoderLayer computes it (x: the residual stream, (B,T,C)):
    a = rmsnorm(x) * ln1w                      rmsnorm(x) = x / sqrt(mean(x^2) + eps)      (LlamaRMSNorm)
    q, k, v = a Wq^T, a Wk^T, a Wv^T            (B,T,C), (B,T,KVC), (B,T,KVC); KVC = NKV * hs, hs = C / NH
    q, k = rope(q), rope(k)                     rotate_half form, angle = t * theta^(-2i/hs), t = 0..T-1
    y = softmax(q k^T / sqrt(hs), causal) v     query head h reads kv head h // (NH / NKV)  (GQA, repeat_kv)
    x = x + y Wo^T
    m = rmsnorm(x) * ln2w
    x = x + (silu(m Wgate^T) * (m Wup^T)) Wdown^T                                           (SwiGLU)
then lnf = rmsnorm(x) * lnfw, logits = lnf wte^T (tied), mean cross-entropy over the first V logits.
Each projection is its own nn.Linear-style (out, in) matrix without bias, as in HF (q_proj, k_proj, ...), not
fused as ours: what a PyTorch user writes. --fused 1 fuses q|k|v and gate|up into one matrix each (our
layout) to see what that is worth on the PyTorch side.

Attention: F.scaled_dot_product_attention(is_causal=True) where this torch has it (2.0 and later); Debian's
torch 1.13 does not, and then the forward spells it out (q k^T, a -inf mask, F.softmax, @ v), which is what
PyTorch 1.13's own nn.MultiheadAttention does on the CPU too.

Threads, OpenBLAS kernels, OMP_WAIT_POLICY and the float64 check of the BLAS: as dev/bench_torch.py (its
docstring says why): --threads sets both torch's pool and OpenBLAS's; OMP_WAIT_POLICY defaults to PASSIVE.

--mode train: --warmup untimed steps, then --steps timed ones: forward, backward, clip_grad_norm_(1.0),
  AdamW (betas 0.9, 0.95, eps 1e-8, weight decay 0.1 on the matrices (embedding included), none on the
  RMSNorm weights; ./train's defaults), zero_grad. Random init (every matrix N(0, 0.02), RMSNorm weights 1,
  as ./train --init) and random tokens, fixed seed; weights drawn in float32 (no float64 copy in the RSS).
--mode forward: the same number of forward passes (logits and loss) under torch.no_grad().
--lora r (r > 0): every base weight frozen (requires_grad False), rank-r LoRA on --lora_targets (any of
  q,k,v,o,gate,up,down): out += (alpha/r) (x A^T) B^T, A (r, in) ~ N(0, 1/r)-ish, B (out, r) = 0 (PEFT's
  init is kaiming-uniform A; no matter for timing); AdamW over the A and B tensors only, no weight decay.
--ckpt FILE --tokens FILE (the correctness check, not timing): load the weights from a ./train checkpoint of
  a llama model (the spec's parameter table, float32) and print the mean loss of the first --B x --T window
  batch of a dataprep token file (x = tokens[i*T .. i*T+T), y = the next token, row i), to compare with
  `./train eval --model FILE --data FILE --batch B --seq T --max-batches 1`; --check_steps K: first K AdamW
  steps of full fine-tuning on that batch with ./train's defaults (lr 3e-4, cosine to 0.1x, no warmup, clip
  1.0), to compare with ./train train --shuffle 0 --steps K on a file of that one window (dev/bench.sh's
  llama-check case runs both).

Prints one JSON line, as dev/bench_torch.py:
{"peer":"pytorch","torch":..,"threads":..,"ms_per_step":..,"tokens_per_s":..,"cpu_share":..,"peak_rss_mb":..,
 "loss":..,"blas":..,"blas_threads":..,"blas_check_rel_err":..,"attention":"sdpa"|"explicit", ...}
 (ms_per_step: the median of the timed steps; peak_rss_mb: ru_maxrss of this process; loss: of the last
 timed step, before its update)
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # must precede the OpenMP runtime's start
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HAVE_SDPA = hasattr(F, "scaled_dot_product_attention")


sys.dont_write_bytecode = True  # no dev/__pycache__ next to the sources
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import check_blas, openblas  # noqa: E402  (the same BLAS probe and float64 check as the GPT-2 peer)


# ----------------------------------------------------------------------------- parameters
# (name, shape, per layer?) in our memory order (the spec's table, llama rows only). Projections are kept
# separate (HF's q_proj etc.); ours fuses q|k|v into qkvw (QKV, C) and gate|up into fcw (2F, C).
def param_table(a):
    C, KVC, F_ = a.C, a.NKV * (a.C // a.NH), a.F
    if a.fused:
        block = [("ln1w", (C,)), ("qkvw", (C + 2 * KVC, C)), ("ow", (C, C)), ("ln2w", (C,)),
                 ("gateupw", (2 * F_, C)), ("downw", (C, F_))]
    else:
        block = [("ln1w", (C,)), ("qw", (C, C)), ("kw", (KVC, C)), ("vw", (KVC, C)), ("ow", (C, C)),
                 ("ln2w", (C,)), ("gatew", (F_, C)), ("upw", (F_, C)), ("downw", (C, F_))]
    return [("wte", (a.Vp, C))] + [(f"{n}.{l}", s) for l in range(a.L) for n, s in block] + [("lnfw", (C,))]


def init_params(a, gen):
    """Random init as ./train --init --arch llama: matrices N(0, 0.02), RMSNorm weights 1, padded wte rows 0."""
    p = {}
    for name, shape in param_table(a):
        if name.split(".")[0] in ("ln1w", "ln2w", "lnfw"):
            p[name] = torch.ones(shape)
        else:
            p[name] = torch.empty(shape).normal_(0.0, 0.02, generator=gen)  # in place: no temporary in the RSS
    p["wte"][a.V:].zero_()
    return p


def load_ckpt(a, path):
    """Weights from a finetune.c llama checkpoint (formats.c's save_checkpoint). Only a plain tied base model
    (no LoRA / adapter / head tensors): the check's case."""
    with open(path, "rb") as f:
        h = struct.unpack("<256i", f.read(1024))
        if h[0] != 20261130:
            sys.exit(f"{path}: not a finetune.c checkpoint (magic {h[0]})")
        maxT, V, L, NH, C, Vp, Fw = h[3], h[4], h[5], h[6], h[7], h[8], h[18]
        NKV = h[28] or NH
        theta, eps = struct.unpack("<f", struct.pack("<i", h[29]))[0], struct.unpack("<f", struct.pack("<i", h[30]))[0]
        if h[22] != 2 or h[31] or h[32] or h[10] or h[13] or h[14] or h[15] or h[19] or h[21]:
            sys.exit(f"{path}: the check reads a plain tied llama base model (arch {h[22]}, untied {h[31]}, "
                     f"qkv_bias {h[32]}, lora_r {h[10]}, int8 {h[19]})")
        for k, v in dict(maxT=maxT, V=V, Vp=Vp, L=L, NH=NH, NKV=NKV, C=C, F=Fw).items():
            setattr(a, k, v)
        a.theta, a.eps = theta, (eps or 1e-5)
        a.rope_factor = struct.unpack("<f", struct.pack("<i", h[33]))[0] or 1.0
        KVC = NKV * (C // NH)
        # then the tensor table (h[9] entries: a 16-byte name and an int64 element count), then the tensors
        # that have elements, in that order, float32
        table = [struct.unpack("<16sq", f.read(24)) for _ in range(h[9])]
        raw = {n.rstrip(b"\0").decode(): torch.frombuffer(bytearray(f.read(4 * k)), dtype=torch.float32)
               for n, k in table if k}
    want = dict(wte=Vp * C, ln1w=L * C, qkvw=L * (C + 2 * KVC) * C, attprojw=L * C * C, ln2w=L * C,
                fcw=L * 2 * Fw * C, fcprojw=L * C * Fw, lnfw=C)
    if {k: v.numel() for k, v in raw.items()} != want:
        sys.exit(f"{path}: tensors {[(k, v.numel()) for k, v in raw.items()]}, expected {list(want.items())}")
    p = {"wte": raw["wte"].view(Vp, C), "lnfw": raw["lnfw"]}
    qkvw = raw["qkvw"].view(L, C + 2 * KVC, C)
    fcw = raw["fcw"].view(L, 2 * Fw, C)
    for l in range(L):
        p[f"ln1w.{l}"], p[f"ln2w.{l}"] = raw["ln1w"].view(L, C)[l], raw["ln2w"].view(L, C)[l]
        p[f"ow.{l}"], p[f"downw.{l}"] = raw["attprojw"].view(L, C, C)[l], raw["fcprojw"].view(L, C, Fw)[l]
        if a.fused:
            p[f"qkvw.{l}"], p[f"gateupw.{l}"] = qkvw[l], fcw[l]
        else:
            p[f"qw.{l}"], p[f"kw.{l}"], p[f"vw.{l}"] = qkvw[l].split([C, KVC, KVC])
            p[f"gatew.{l}"], p[f"upw.{l}"] = fcw[l].split([Fw, Fw])
    return {k: v.clone() for k, v in p.items()}


# ----------------------------------------------------------------------------- the model
def rmsnorm(x, w, eps):
    # y = x / sqrt(mean(x^2) + eps) * w over the last axis. HF: LlamaRMSNorm (torch 1.13 has no F.rms_norm)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_tables(a, T):
    # cos, sin: (T, hs). HF: LlamaRotaryEmbedding; inv_freq_i = theta^(-2i/hs), angles repeated for both halves
    hs = a.C // a.NH
    inv_freq = 1.0 / (a.theta ** (torch.arange(0, hs, 2, dtype=torch.float32) / hs))  # (hs/2)
    pos = torch.arange(T, dtype=torch.float32) / a.rope_factor  # linear rope_scaling divides the positions
    ang = torch.outer(pos, inv_freq)                                                   # (T, hs/2)
    emb = torch.cat([ang, ang], dim=-1)                                                # (T, hs)
    return emb.cos(), emb.sin()


def rope(x, cos, sin):
    # x: (B, heads, T, hs). y[i] = x[i] cos - x[i+half] sin; y[i+half] = x[i+half] cos + x[i] sin (rotate_half)
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def linear(x, w, lora=None):
    # x W^T, W (out, in) as nn.Linear, no bias; LoRA: + scale (x A^T) B^T
    y = F.linear(x, w)
    if lora is not None:
        A, Bm, scale = lora  # A (r, in), Bm (out, r): PEFT's lora_A / lora_B
        y = y + scale * F.linear(F.linear(x, A), Bm)
    return y


def forward(p, idx, tgt, a, cos, sin, lora):
    B, T = idx.shape
    C, NH, NKV = a.C, a.NH, a.NKV
    hs, KVC = C // NH, a.NKV * (C // NH)
    causal = None if HAVE_SDPA else torch.ones(T, T, dtype=torch.bool).tril()  # key <= query
    x = p["wte"][idx]                                                            # (B,T,C)
    for l in range(a.L):
        P = lambda n: p[f"{n}.{l}"]
        Lo = lambda n: lora.get(f"{n}.{l}")
        h = rmsnorm(x, P("ln1w"), a.eps)
        if a.fused:
            qkv = list(F.linear(h, P("qkvw")).split([C, KVC, KVC], dim=-1))  # our fused layout
            for j, n in enumerate(("q", "k", "v")):
                if Lo(n) is not None:  # LoRA into that projection's columns
                    A, Bm, s = Lo(n)
                    qkv[j] = qkv[j] + s * F.linear(F.linear(h, A), Bm)
            q, k, v = qkv
        else:
            q, k, v = linear(h, P("qw"), Lo("q")), linear(h, P("kw"), Lo("k")), linear(h, P("vw"), Lo("v"))
        q = rope(q.view(B, T, NH, hs).transpose(1, 2), cos, sin)                 # (B,NH,T,hs)
        k = rope(k.view(B, T, NKV, hs).transpose(1, 2), cos, sin)                # (B,NKV,T,hs)
        v = v.view(B, T, NKV, hs).transpose(1, 2)
        if NKV != NH:  # GQA: HF's repeat_kv, kv head j serves query heads j*g .. j*g+g-1
            k, v = k.repeat_interleave(NH // NKV, dim=1), v.repeat_interleave(NH // NKV, dim=1)
        if HAVE_SDPA:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))              # (B,NH,T,T)
            y = F.softmax(att.masked_fill(~causal, float("-inf")), dim=-1) @ v
        y = y.transpose(1, 2).reshape(B, T, C)
        x = x + linear(y, P("ow"), Lo("o"))
        m = rmsnorm(x, P("ln2w"), a.eps)
        if a.fused:
            g, u = F.linear(m, P("gateupw")).split([a.F, a.F], dim=-1)
            if Lo("gate") is not None:
                A, Bm, s = Lo("gate")
                g = g + s * F.linear(F.linear(m, A), Bm)
            if Lo("up") is not None:
                A, Bm, s = Lo("up")
                u = u + s * F.linear(F.linear(m, A), Bm)
        else:
            g, u = linear(m, P("gatew"), Lo("gate")), linear(m, P("upw"), Lo("up"))
        x = x + linear(F.silu(g) * u, P("downw"), Lo("down"))
    x = rmsnorm(x, p["lnfw"], a.eps)
    logits = F.linear(x, p["wte"])[..., :a.V]                                   # tied head, (B,T,V)
    return F.cross_entropy(logits.reshape(-1, a.V), tgt.reshape(-1))


def read_tokens(path, n):
    """The first n tokens of a dataprep LM token file (dataset.h: 256 int32 header, then uint16 or uint32)."""
    with open(path, "rb") as f:
        h = struct.unpack("<256i", f.read(1024))
        if h[0] != 20261128 or h[2] not in (2, 4):
            sys.exit(f"{path}: not a dataprep token file (magic {h[0]}, bytes per token {h[2]})")
        count = h[4] | (h[5] << 32)
        if count < n:
            sys.exit(f"{path}: {count} tokens, the check needs {n}")
        return torch.tensor(struct.unpack(f"<{n}{'H' if h[2] == 2 else 'I'}", f.read(n * h[2])), dtype=torch.long)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for k, v in dict(L=30, C=576, NH=9, NKV=3, F=1536, V=49152, Vp=0, maxT=8192, B=4, T=64, steps=3, warmup=1,
                     threads=2, lora=0, fused=0, seed=1337, check_steps=0).items():
        ap.add_argument(f"--{k}", type=int, default=v)
    ap.add_argument("--theta", type=float, default=100000.0)
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--rope_factor", type=float, default=1.0)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--lora_targets", default="q,k,v,o")
    ap.add_argument("--mode", choices=["train", "forward"], default="train")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--ckpt", help="a ./train llama checkpoint: load its weights (with --tokens: the check)")
    ap.add_argument("--tokens", help="a dataprep token file: print the loss of its first B x T batch")
    a = ap.parse_args()
    a.Vp = a.Vp or (a.V + 63) // 64 * 64  # ours pads V to a multiple of 64 (49152 already is)
    torch.set_num_threads(a.threads)
    blas = openblas()
    if blas:
        blas.openblas_set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    p = load_ckpt(a, a.ckpt) if a.ckpt else init_params(a, gen)
    if a.C % a.NH or a.NH % a.NKV or (a.C // a.NH) % 2 or a.T > a.maxT or a.V > a.Vp:
        sys.exit(f"bench_llama_torch.py: bad shape C={a.C} NH={a.NH} NKV={a.NKV} T={a.T} maxT={a.maxT} V={a.V}")
    cos, sin = rope_tables(a, a.T)

    if a.tokens:  # the correctness check: one forward in float32 on a known batch
        n = a.B * a.T + 1
        tok = read_tokens(a.tokens, n)
        # rows as ./train eval's loader takes them (file order): row b = tokens[b*T .. b*T+T], target: next token
        idx = torch.stack([tok[b * a.T: b * a.T + a.T] for b in range(a.B)])
        tgt = torch.stack([tok[b * a.T + 1: b * a.T + a.T + 1] for b in range(a.B)])
        if a.check_steps:  # full fine-tuning on this one batch with ./train's defaults, then the loss again
            params = list(p.values())
            for t in params:
                t.requires_grad_(True)
            opt = torch.optim.AdamW([{"params": [t for t in params if t.dim() == 2], "weight_decay": 0.1},
                                     {"params": [t for t in params if t.dim() != 2], "weight_decay": 0.0}],
                                    lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
            for s in range(a.check_steps):
                f = s / max(1, a.check_steps)  # ./train's cosine schedule (warmup 0) down to 0.1 x lr
                for g in opt.param_groups:
                    g["lr"] = 0.1 * a.lr + 0.5 * (1 + math.cos(math.pi * f)) * 0.9 * a.lr
                forward(p, idx, tgt, a, cos, sin, {}).backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            loss = forward(p, idx, tgt, a, cos, sin, {}).item()
        print(json.dumps({"peer": "pytorch", "check": "loss", "steps": a.check_steps, "loss": round(loss, 7),
                          "B": a.B, "T": a.T,
                          "L": a.L, "C": a.C, "NH": a.NH, "NKV": a.NKV, "F": a.F, "V": a.V, "theta": a.theta,
                          "eps": a.eps}))
        return

    rel = check_blas(a)
    if not rel < 1e-5:  # fp32 products of length C..F: ~1e-7..1e-6 here; a broken kernel is off by O(1)
        sys.exit(f"bench_llama_torch.py: float32 matmul off by {rel:.2e} (relative) against float64 with OpenBLAS "
                 f"kernel {blas.openblas_get_corename().decode() if blas else '?'}: results would be wrong")
    idx = torch.randint(0, a.V, (a.B, a.T), generator=gen)
    tgt = torch.randint(0, a.V, (a.B, a.T), generator=gen)
    for t in p.values():
        t.requires_grad_(a.lora == 0)

    lora = {}
    if a.lora > 0:
        targets = a.lora_targets.split(",")
        bad = set(targets) - {"q", "k", "v", "o", "gate", "up", "down"}
        if bad:
            sys.exit(f"bench_llama_torch.py: unknown LoRA target(s) {sorted(bad)} (q,k,v,o,gate,up,down)")
        KVC = a.NKV * (a.C // a.NH)
        shapes = dict(q=(a.C, a.C), k=(KVC, a.C), v=(KVC, a.C), o=(a.C, a.C), gate=(a.F, a.C), up=(a.F, a.C),
                      down=(a.C, a.F))
        for l in range(a.L):
            for n in targets:
                out_f, in_f = shapes[n]
                A = (torch.randn(a.lora, in_f, generator=gen) / a.lora).requires_grad_(True)
                Bm = torch.zeros(out_f, a.lora, requires_grad=True)
                lora[f"{n}.{l}"] = (A, Bm, a.alpha / a.lora)
        trainable = [x for A, Bm, _ in lora.values() for x in (A, Bm)]
        groups = [{"params": trainable, "weight_decay": 0.0}]
    else:
        trainable = list(p.values())
        groups = [{"params": [t for t in trainable if t.dim() == 2], "weight_decay": 0.1},
                  {"params": [t for t in trainable if t.dim() != 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.95), eps=1e-8)

    def step():
        if a.mode == "forward":
            with torch.no_grad():
                return forward(p, idx, tgt, a, cos, sin, lora).item()
        loss = forward(p, idx, tgt, a, cos, sin, lora)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    first = None
    for _ in range(a.warmup):  # allocator, OpenBLAS thread pool, AdamW state
        loss = step()
        first = loss if first is None else first
    t0, c0 = time.perf_counter(), time.process_time()
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t)
        first = loss if first is None else first
    times.sort()  # the median step, as ./train bench reports: robust to a step slowed by another process
    n = len(times)
    ms = 1000 * (times[n // 2] if n % 2 else (times[n // 2 - 1] + times[n // 2]) / 2)
    cpu_share = (time.process_time() - c0) / ((time.perf_counter() - t0) * a.threads)
    print(json.dumps({
        "peer": "pytorch", "torch": torch.__version__, "threads": a.threads, "mode": a.mode, "lora": a.lora,
        "lora_targets": a.lora_targets if a.lora else "", "fused": a.fused,
        "L": a.L, "C": a.C, "NH": a.NH, "NKV": a.NKV, "F": a.F, "V": a.V, "B": a.B, "T": a.T,
        "attention": "sdpa" if HAVE_SDPA else "explicit",
        "ms_per_step": round(ms, 2), "tokens_per_s": round(a.B * a.T / (ms / 1000), 1),
        "cpu_share": round(cpu_share, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # KiB on Linux
        "first_loss": round(first, 6), "loss": round(loss, 6),
        "trainable": sum(t.numel() for t in trainable),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"], "loadavg_1min": os.getloadavg()[0],
        "blas": blas.openblas_get_corename().decode() if blas else "", "blas_threads":
        blas.openblas_get_num_threads() if blas else 0, "blas_check_rel_err": float(f"{rel:.2e}")}))


if __name__ == "__main__":
    main()
