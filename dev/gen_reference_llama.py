"""
PyTorch references for the Llama-style models (issue 15; the layout is the one in model.h's table: fused
q|k|v rows, fused gate|up rows, stacked over L). Written from the definitions in float64, no transformers:

    RMSNorm       y = x / sqrt(mean(x^2) + norm_eps) * w                        (HF LlamaRMSNorm)
    RoPE          HF's rotate_half form on q and k, position t / rope_factor, inv_freq_i = theta^(-2i/hs)
    attention     causal, GQA: query head h reads kv head h // (NH/NKV); scale 1/sqrt(hs)
    MLP           SwiGLU: down(silu(gate(x)) * up(x))
    head          logits = rmsnorm(x) @ (lm_head if untied else wte)^T, first V of Vp
    Qwen2         optional q, k, v biases (qkv_bias)

and our fine-tuning methods on top: LoRA on q, k, v, o, gate, up, down (each its own A, B; B not zero, so dA
is really tested), adapters and the class head (score.weight, last real token) as for GPT-2, prefix-tuning
(L,P,KVC keys and values, not rotated, attended first; the sequence keeps positions 0..T-1), freezing with
layer-wise LR decay.

    /usr/bin/python3 dev/gen_reference_llama.py      -> ref/llama_<name>.safetensors

The loop (trainable masks, LR scales, torch.optim.AdamW with clipping, decay and the warmup+cosine schedule,
the file's contents) is dev/gen_reference_methods.run_method's, so each file reads like a method file:
"param.<name>" (here the base weights too: there is no llama base model file), "trainable.*", "lr_scale.*",
the batch, logits, loss, "grad.<name>", step_loss / step_lr / step_gradnorm and "final.<name>"; the metadata
add the model's config (arch=2, L, NH, NKV, C, F, V, Vp, maxT, rope_theta, norm_eps, rope_factor, untied,
qkv_bias). rope_theta and norm_eps are never the defaults (10000, 1e-5), so a default left in shows.

Self-checks (assert), each against an independent formulation:
  - the forward equals a Hugging Face-style one (separate q/k/v/gate/up/down weights sliced out of the fused
    rows, cos/sin tables of width hs built from cat(freqs, freqs), repeat_kv by expand + reshape);
  - RoPE equals the complex-number form (pairs (x_i, x_{i+hs/2}) times e^{i t theta_i}); GQA by
    repeat_interleave equals a loop over query heads reading kv head h // (NH/NKV); RMSNorm and SwiGLU equal
    their formulas written out;
  - a few gradient entries per tensor equal a central finite difference;
  - a wrong RoPE theta, RMSNorm eps, rope factor, head-to-kv mapping, or no RoPE at all, moves the logits or
    the gradients by far more than the C tests' tolerances (so those tests can fail).
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_torch as G  # noqa: E402
import gen_reference_methods as M  # noqa: E402

torch.set_default_dtype(torch.float64)

# ----------------------------------------------------------------------------- configs
# hs = C/NH must be even (RoPE rotates pairs). Vp = V padded to a multiple of 64 (model.h), so every V here
# leaves padded rows. B, T: the batch.
CONFIGS = {
    # the odd shape: 3 layers, 6 heads over 2 KV heads (groups of 3), hs=8, F=80, separate lm_head
    "untied": dict(L=3, NH=6, NKV=2, C=48, F=80, V=61, maxT=24, rope_theta=500000.0, norm_eps=1e-6,
                   rope_factor=0.0, untied=1, qkv_bias=0, B=3, T=11),
    # tied head, plain multi-head attention (NKV = NH), hs=12, linear rope scaling (positions / 2)
    "tied": dict(L=2, NH=3, NKV=3, C=36, F=60, V=53, maxT=16, rope_theta=25000.0, norm_eps=3e-6,
                 rope_factor=2.0, untied=0, qkv_bias=0, B=2, T=9),
    # Qwen2: q, k, v biases, one KV head for all 4 query heads (multi-query), tied (as the small Qwen2s)
    "qwen2": dict(L=2, NH=4, NKV=1, C=32, F=48, V=67, maxT=16, rope_theta=1000000.0, norm_eps=1e-6,
                  rope_factor=0.0, untied=0, qkv_bias=1, B=3, T=7),
    # the base the fine-tuning methods run on: small (the files hold the base weights), untied, GQA 4 -> 2
    "methods": dict(L=2, NH=4, NKV=2, C=32, F=48, V=67, maxT=24, rope_theta=500000.0, norm_eps=1e-6,
                    rope_factor=0.0, untied=1, qkv_bias=0, B=4, T=13),
}
# full fine-tuning of each model config (files ref/llama_untied, llama_tied, llama_qwen2)
FULL = ["untied", "tied", "qwen2"]
# the methods, on CONFIGS["methods"] (files ref/llama_<name>). LoRA targets: o 2, down 8, q 16, k 32, v 64,
# gate 128, up 256 (model.h's LORA_* bits); 506 = all seven.
METHODS = {
    "lora": dict(lora_r=4, lora_alpha=8.0, lora_targets=506, train="peft"),
    "adapter": dict(adapter_dim=8, train="peft"),
    "prefix": dict(prefix_len=3, train="peft"),
    "freeze": dict(train="freeze", layer_decay=0.8),
    "cls": dict(num_classes=3, label_smoothing=0.1, train="all"),
}
LORA = [  # (our tensor prefix, bit, fused weight it adds to, its rows in that weight: (start, width) of cfg)
    ("lora_proj", 2, "attprojw", lambda c: (0, c["C"])),
    ("lora_fcproj", 8, "fcprojw", lambda c: (0, c["C"])),
    ("lora_q", 16, "qkvw", lambda c: (0, c["C"])),
    ("lora_k", 32, "qkvw", lambda c: (c["C"], kvc(c))),
    ("lora_v", 64, "qkvw", lambda c: (c["C"] + kvc(c), kvc(c))),
    ("lora_gate", 128, "fcw", lambda c: (0, c["F"])),
    ("lora_up", 256, "fcw", lambda c: (c["F"], c["F"])),
]


def kvc(c):
    return c["NKV"] * (c["C"] // c["NH"])


def pad_vocab(V):
    return (V + 63) // 64 * 64


def base_shapes(c):
    """[(name, shape stacked over L, per-layer?)] of the base tensors a llama has, in model.h's table order."""
    L, C, F_, Vp = c["L"], c["C"], c["F"], c["Vp"]
    QKV = C + 2 * kvc(c)
    out = [("wte", (Vp, C), False), ("ln1w", (L, C), True), ("qkvw", (L, QKV, C), True)]
    if c["qkv_bias"]:
        out.append(("qkvb", (L, QKV), True))
    out += [("attprojw", (L, C, C), True), ("ln2w", (L, C), True), ("fcw", (L, 2 * F_, C), True),
            ("fcprojw", (L, C, F_), True), ("lnfw", (C,), False)]
    if c["untied"]:
        out.append(("lm_head", (Vp, C), False))
    return out


def init_base(c, gen):
    """Non-trivial values so every gradient is exercised: matrices N(0, 0.1^2) (not HF's 0.02: larger
    attention scores make RoPE and GQA matter more), RMSNorm weights 1 + 0.1 N, biases 0.1 N. Drawn in
    float64, rounded to float32 (what the file holds and the C model computes with). Padded vocab rows 0."""
    p = {}
    for name, shape, _pl in base_shapes(c):
        r = torch.randn(shape, generator=gen)
        t = 1.0 + 0.1 * r if name in ("ln1w", "ln2w", "lnfw") else 0.1 * r
        if name in ("wte", "lm_head"):
            t[c["V"]:] = 0.0
        p[name] = t.float().double()
    return p


def llama_peft_shapes(c, m):
    """(per-layer [(name, shape)], global [(name, shape)]) of the method's tensors (peft_shapes for llama)."""
    C, F_, r, A, P, K = c["C"], c["F"], m.get("lora_r", 0), m.get("adapter_dim", 0), m.get("prefix_len", 0), m.get("num_classes", 0)
    out = []
    for pre, bit, w, rows in LORA:
        if r and m["lora_targets"] & bit:
            fan_in = F_ if w == "fcprojw" else C
            out += [(pre + "_a", (r, fan_in)), (pre + "_b", (rows(c)[1], r))]
    if A:
        for s in ("adpa", "adpm"):
            out += [(s + "_dw", (A, C)), (s + "_db", (A,)), (s + "_uw", (C, A)), (s + "_ub", (C,))]
    if P:
        out += [("prefix_k", (P, kvc(c))), ("prefix_v", (P, kvc(c)))]
    return out, ([("cls_w", (K, C))] if K else [])


# ----------------------------------------------------------------------------- the pieces
def rmsnorm(x, w, eps):
    # y = x / sqrt(mean(x^2) + eps) * w   (HF LlamaRMSNorm; no mean subtracted, no bias)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_angles(c, T):
    """(T, hs/2) angles t' * inv_freq_i with t' = t / rope_factor (linear scaling; 0 = none)."""
    hs = c["C"] // c["NH"]
    inv_freq = c["rope_theta"] ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)  # (hs/2)
    t = torch.arange(T, dtype=torch.float64)
    if c["rope_factor"]:
        t = t / c["rope_factor"]
    return t[:, None] * inv_freq[None, :]


def rope(x, ang):
    """x: (B, heads, T, hs), ang: (T, hs/2). rotate_half form: y = x cos + rotate_half(x) sin, where
    rotate_half(x) = cat(-x[half:], x[:half]) and cos, sin repeat the half-width table twice."""
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)  # (T, hs)
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rot * sin


def rope_complex(x, ang):
    """The same rotation as complex numbers: z_i = x_i + j x_{i+hs/2} times e^{j ang_i}."""
    half = x.shape[-1] // 2
    z = torch.complex(x[..., :half], x[..., half:]) * torch.polar(torch.ones_like(ang), ang)
    return torch.cat([z.real, z.imag], -1)


def attend(q, k, v, mask, NH, NKV, loop=False):
    """q: (B,NH,T,hs), k, v: (B,NKV,S,hs), mask (T,S) True = visible. GQA by repeat_interleave (kv head j
    serves query heads j*g .. j*g+g-1, g = NH/NKV); loop=True: one query head at a time, kv head h // g."""
    g = NH // NKV
    hs = q.shape[-1]
    if loop:
        outs = []
        for h in range(NH):
            a = (q[:, h] @ k[:, h // g].transpose(-2, -1)) / math.sqrt(hs)
            outs.append(F.softmax(a.masked_fill(~mask, float("-inf")), dim=-1) @ v[:, h // g])
        return torch.stack(outs, 1)
    k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
    a = (q @ k.transpose(-2, -1)) / math.sqrt(hs)                               # (B,NH,T,S)
    return F.softmax(a.masked_fill(~mask, float("-inf")), dim=-1) @ v


# ----------------------------------------------------------------------------- the model
def forward_llama(p, idx, c, m, targets=None, lengths=None, labels=None, class_weights=None, check=False,
                  wrong=None):
    """
    The Llama forward with the method's additions (same signature as gen_reference_methods.forward_ft).
    p: leaves ("qkvw.0", ..., "wte", "lm_head", "lora_q_a.1", ...). Returns (logits, loss).
    check=True: assert the independent formulations of RoPE and GQA agree on the way (float64, 1e-12).
    wrong: a deliberately wrong variant for the sensitivity self-check ("norope", "kvmap", or a dict of
    config overrides), never written to a file.
    """
    if isinstance(wrong, dict):
        c = dict(c, **wrong)
    B, T = idx.shape
    C, NH, NKV, V, L, F_ = c["C"], c["NH"], c["NKV"], c["V"], c["L"], c["F"]
    hs, KVC, P = C // NH, kvc(c), m.get("prefix_len", 0)
    scale = m.get("lora_alpha", 0) / m["lora_r"] if m.get("lora_r") else 0.0
    ang = rope_angles(c, T)

    def proj(x, w, l):
        """x @ W^T (+ bias) for fused weight w of layer l, plus every LoRA that writes into its rows."""
        bias = p.get(f"qkvb.{l}") if w == "qkvw" else None
        y = F.linear(x, p[f"{w}.{l}"], bias)
        for pre, _bit, ww, rows in LORA:
            if ww == w and f"{pre}_a.{l}" in p:
                s0, n = rows(c)
                delta = scale * F.linear(F.linear(x, p[f"{pre}_a.{l}"]), p[f"{pre}_b.{l}"])  # (.., n)
                y = y + F.pad(delta, (s0, y.shape[-1] - s0 - n))
        return y

    def adapter(x, s, l):  # Houlsby: x + up(gelu(down(x))), as for GPT-2
        if f"{s}_dw.{l}" not in p:
            return x
        return x + F.linear(G.gelu(F.linear(x, p[f"{s}_dw.{l}"], p[f"{s}_db.{l}"])), p[f"{s}_uw.{l}"], p[f"{s}_ub.{l}"])

    h = p["wte"][idx]                                                          # (B,T,C), no position embedding
    mask = torch.cat([torch.ones(T, P, dtype=torch.bool), torch.ones(T, T, dtype=torch.bool).tril()], dim=1)
    for l in range(L):
        a = rmsnorm(h, p[f"ln1w.{l}"], c["norm_eps"])
        q, k, v = proj(a, "qkvw", l).split([C, KVC, KVC], dim=-1)
        q = q.view(B, T, NH, hs).transpose(1, 2)                               # (B,NH,T,hs)
        k, v = (t.view(B, T, NKV, hs).transpose(1, 2) for t in (k, v))        # (B,NKV,T,hs)
        if wrong != "norope":
            qr, kr = rope(q, ang), rope(k, ang)
            if check:
                assert torch.allclose(qr, rope_complex(q, ang), rtol=0, atol=1e-12), "rotate_half != complex RoPE"
                assert torch.allclose(kr, rope_complex(k, ang), rtol=0, atol=1e-12), "rotate_half != complex RoPE"
            q, k = qr, kr
        if P:  # prefix keys/values: not rotated (they have no position), visible to every query
            pk = p[f"prefix_k.{l}"].view(P, NKV, hs).transpose(0, 1).expand(B, NKV, P, hs)
            pv = p[f"prefix_v.{l}"].view(P, NKV, hs).transpose(0, 1).expand(B, NKV, P, hs)
            k, v = torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2)
        if wrong == "kvmap":  # query head h on kv head h % NKV (interleaved) instead of h // g (blocks)
            g = NH // NKV
            perm = torch.tensor([h % NKV for h in range(NH)])
            y = attend(q, k[:, perm], v[:, perm], mask, NH, NH) if g > 1 else attend(q, k, v, mask, NH, NKV)
        else:
            y = attend(q, k, v, mask, NH, NKV)
        if check:
            assert torch.allclose(y, attend(q, k, v, mask, NH, NKV, loop=True), rtol=0, atol=1e-12), "GQA differs"
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        h = h + adapter(proj(y, "attprojw", l), "adpa", l)
        mm = rmsnorm(h, p[f"ln2w.{l}"], c["norm_eps"])
        gate, up = proj(mm, "fcw", l).split(F_, dim=-1)
        act = F.silu(gate) * up                                                # SwiGLU, (B,T,F)
        if check:
            assert torch.allclose(act, gate * torch.sigmoid(gate) * up, rtol=0, atol=1e-12), "SwiGLU differs"
        h = h + adapter(proj(act, "fcprojw", l), "adpm", l)
    if check:
        ref = h / torch.sqrt((h * h).sum(-1, keepdim=True) / C + c["norm_eps"]) * p["lnfw"]
        assert torch.allclose(rmsnorm(h, p["lnfw"], c["norm_eps"]), ref, rtol=0, atol=1e-12), "RMSNorm differs"
    h = rmsnorm(h, p["lnfw"], c["norm_eps"])
    if m.get("num_classes"):  # LlamaForSequenceClassification: score.weight (no bias) on the last real token
        logits = F.linear(h[torch.arange(B), lengths - 1], p["cls_w"])                # (B,K)
        loss = F.cross_entropy(logits, labels, weight=class_weights, label_smoothing=m.get("label_smoothing", 0.0))
        return logits, loss
    logits = F.linear(h, p["lm_head"] if c["untied"] else p["wte"])[..., :V]       # (B,T,V)
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-1)
    return logits, loss


def forward_hf_style(sp, idx, c):
    """
    The base model once more, the way Hugging Face's LlamaModel is organised, from the stacked tensors:
    separate q_proj/k_proj/v_proj and gate_proj/up_proj weights (row slices of the fused ones), one (T, hs)
    cos/sin table from emb = cat(freqs, freqs), apply_rotary_pos_emb, repeat_kv by expand + reshape, an
    additive -inf mask. Only logits; used to check forward_llama's layout and ops.
    """
    B, T = idx.shape
    C, NH, NKV, L, F_, V = c["C"], c["NH"], c["NKV"], c["L"], c["F"], c["V"]
    hs, KVC, g = C // NH, kvc(c), NH // NKV
    pos = torch.arange(T, dtype=torch.float64) / (c["rope_factor"] or 1.0)
    inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs))
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()

    def rotate_half(x):
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        return torch.cat((-x2, x1), dim=-1)

    def repeat_kv(x):
        b, n, t, d = x.shape
        return x[:, :, None, :, :].expand(b, n, g, t, d).reshape(b, n * g, t, d)

    def norm(x, w):
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + c["norm_eps"]))

    causal = torch.full((T, T), float("-inf")).triu(1)
    x = sp["wte"][idx]
    for l in range(L):
        W = sp["qkvw"][l]
        bq = bk = bv = None
        if c["qkv_bias"]:
            bq, bk, bv = sp["qkvb"][l][:C], sp["qkvb"][l][C:C + KVC], sp["qkvb"][l][C + KVC:]
        hn = norm(x, sp["ln1w"][l])
        q = F.linear(hn, W[:C], bq).view(B, T, NH, hs).transpose(1, 2)
        k = F.linear(hn, W[C:C + KVC], bk).view(B, T, NKV, hs).transpose(1, 2)
        v = F.linear(hn, W[C + KVC:], bv).view(B, T, NKV, hs).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = repeat_kv(k), repeat_kv(v)
        w = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(hs) + causal, dim=-1)
        x = x + F.linear((w @ v).transpose(1, 2).reshape(B, T, C), sp["attprojw"][l])
        hn = norm(x, sp["ln2w"][l])
        gate_proj, up_proj = sp["fcw"][l][:F_], sp["fcw"][l][F_:]
        x = x + F.linear(F.silu(F.linear(hn, gate_proj)) * F.linear(hn, up_proj), sp["fcprojw"][l])
    x = norm(x, sp["lnfw"])
    return F.linear(x, sp["lm_head"] if c["untied"] else sp["wte"])[..., :V]


# ----------------------------------------------------------------------------- self-checks
def leaves_of(stacked, table, L):
    out = {}
    for n, _shape, pl in table:
        if pl:
            for l in range(L):
                out[f"{n}.{l}"] = stacked[n][l].clone().requires_grad_(True)
        else:
            out[n] = stacked[n].clone().requires_grad_(True)
    return out


def tol_metric(a, b):
    """test_report.h's check_tensor measure: max |a - b| / (|b| + rms(b))."""
    rms = float(b.pow(2).mean().sqrt())
    return float(((a - b).abs() / (b.abs() + rms)).max())


def self_check(c, base, idx, tgt):
    """The asserts of the module docstring, on the base model of config c (full fine-tuning, LM loss)."""
    table = base_shapes(c)
    leaves = leaves_of(base, table, c["L"])
    m = {}
    logits, loss = forward_llama(leaves, idx, c, m, targets=tgt, check=True)
    with torch.no_grad():
        hf = forward_hf_style(base, idx, c)
    assert torch.allclose(logits, hf, rtol=0, atol=1e-12), "forward_llama differs from the HF-style forward"
    loss.backward()
    grads = {k: x.grad.clone() for k, x in leaves.items()}
    # central finite differences on 3 entries of every leaf (float64, h=1e-5: truncation ~1e-10, rounding
    # ~1e-16*loss/h ~ 5e-11; relative to the 1e-3 floor below that is < 1e-7, so 1e-6; a real bug is > 1e-3)
    gen, worst = torch.Generator().manual_seed(99), 0.0
    for k, x in leaves.items():
        for _ in range(3):
            j = int(torch.randint(0, x.numel(), (1,), generator=gen))
            if k in ("wte", "lm_head") and j // c["C"] >= c["V"]:
                j = j % (c["V"] * c["C"])  # padded rows have no effect: test a real one
            with torch.no_grad():
                orig = x.view(-1)[j].item()
                x.view(-1)[j] = orig + 1e-5
                lp = forward_llama(leaves, idx, c, m, targets=tgt)[1].item()
                x.view(-1)[j] = orig - 1e-5
                lm = forward_llama(leaves, idx, c, m, targets=tgt)[1].item()
                x.view(-1)[j] = orig
            fd, an = (lp - lm) / 2e-5, grads[k].view(-1)[j].item()
            err = abs(fd - an) / (abs(an) + 1e-3)
            worst = max(worst, err)
            assert err < 1e-6, f"finite difference {k}[{j}]: fd={fd:.10g} autograd={an:.10g}"
    # a wrong variant must move the logits or some gradient by >= 10x the C tests' tolerances (TOL_LOGITS 1e-5,
    # TOL_GRADS 1e-4), or that mistake in the C code could pass
    variants = {"norope": "norope", "theta=10000": dict(rope_theta=10000.0), "eps=1e-5": dict(norm_eps=1e-5)}
    if c["NKV"] not in (1, c["NH"]):
        variants["kv head h%NKV"] = "kvmap"
    variants["rope_factor=1" if c["rope_factor"] else "rope_factor=2"] = dict(rope_factor=0.0 if c["rope_factor"] else 2.0)
    seen = []
    for what, wv in variants.items():
        wl = leaves_of(base, table, c["L"])
        lw, ls = forward_llama(wl, idx, c, m, targets=tgt, wrong=wv)
        ls.backward()
        dl = tol_metric(lw.detach(), logits.detach()) / 1e-5
        dg = max(tol_metric(wl[k].grad, grads[k]) for k in wl) / 1e-4
        assert max(dl, dg) >= 10, f"{what}: logits move {dl:.1f}x, grads {dg:.1f}x the tolerance: the test could not see it"
        seen.append(f"{what} {max(dl, dg):.0f}x")
    return worst, seen


# ----------------------------------------------------------------------------- main
def batch(c, gen):
    B, T, V = c["B"], c["T"], c["V"]
    idx = torch.randint(0, V, (B, T), generator=gen)
    tgt = torch.randint(0, V, (B, T), generator=gen)
    tgt[0, :2] = -1            # ignored positions at the start of row 0 ...
    tgt[B - 1, T - 1] = -1     # ... and at the very end
    return idx, tgt


def config_meta(c):
    keys = ("L", "NH", "NKV", "C", "F", "V", "Vp", "maxT", "rope_theta", "norm_eps", "rope_factor", "untied", "qkv_bias")
    return dict(arch=2, **{k: (repr(c[k]) if isinstance(c[k], float) else c[k]) for k in keys})


def main():
    torch.manual_seed(0)
    for i, (X, c) in enumerate(CONFIGS.items()):
        c["Vp"] = pad_vocab(c["V"])
        assert (c["C"] // c["NH"]) % 2 == 0 and c["NH"] % c["NKV"] == 0 and c["C"] % c["NH"] == 0, X
        gen = torch.Generator().manual_seed(1500 + i)
        base = init_base(c, gen)
        idx, tgt = batch(c, gen)
        fd, seen = self_check(c, base, idx, tgt)
        print(f"config {X}: " + " ".join(f"{k}={c[k]}" for k in ("L", "NH", "NKV", "C", "F", "V", "Vp", "B", "T",
                                                                 "rope_theta", "norm_eps", "rope_factor", "untied", "qkv_bias")))
        print(f"  self-checks: HF-style forward, complex RoPE, GQA loop, SwiGLU, RMSNorm equal (1e-12); "
              f"fd worst rel {fd:.1e}; wrong variants move by {', '.join(seen)} the tolerance")
        table = [(n, pl) for n, _s, pl in base_shapes(c)]
        runs = [(X, dict(train="all"))] if X in FULL else list(METHODS.items())
        for name, m in runs:
            path = f"ref/llama_{name}.safetensors"
            M.run_method(name, m, c, base, idx, tgt, gen, base_table=table, shapes=llama_peft_shapes,
                         forward=forward_llama, path=path, meta_extra=config_meta(c), write_base=True,
                         frozen=("lm_head",) if m.get("num_classes") else ())  # a class head never reads it
            size = os.path.getsize(path)
            assert size < 1024 * 1024, f"{path} is {size} bytes"
    print("all self-checks passed")


if __name__ == "__main__":
    main()
