"""
GPT-2 in PyTorch, written from the math, shared by dev/gen_reference.py (float64, the
reference the C code is tested against) and dev/bench_torch.py (float32, the speed peer).

Shapes (same legend as model.h): B batch, T time, C channels, V vocab, Vp padded vocab,
L layers, NH heads, hs = C/NH head size. Last axis contiguous, PyTorch order.

The parameter table below is the llm.c memory order. Per-layer tensors are stacked along a
leading L axis in the table (that is how gpt_X.bin and the reference file store them), but the
model holds them as separate per-layer leaf tensors "qkvw.3" etc.: indexing a stacked leaf
inside the forward would make autograd zero-fill and scatter a full (L,...) gradient per layer,
which is slow and not what a PyTorch user writes. to_leaves()/stack() convert between the two.
"""
import math

import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------- parameter table
# (name, shape as a function of the config, per-layer?, weight decay?)
# Matrices decay; biases and LayerNorm parameters do not (GPT-2 / llm.c convention).
PARAMS = [
    ("wte",      lambda c: (c["Vp"], c["C"]),          False, True),
    ("wpe",      lambda c: (c["maxT"], c["C"]),        False, True),
    ("ln1w",     lambda c: (c["L"], c["C"]),           True,  False),
    ("ln1b",     lambda c: (c["L"], c["C"]),           True,  False),
    ("qkvw",     lambda c: (c["L"], 3 * c["C"], c["C"]), True, True),
    ("qkvb",     lambda c: (c["L"], 3 * c["C"]),       True,  False),
    ("attprojw", lambda c: (c["L"], c["C"], c["C"]),   True,  True),
    ("attprojb", lambda c: (c["L"], c["C"]),           True,  False),
    ("ln2w",     lambda c: (c["L"], c["C"]),           True,  False),
    ("ln2b",     lambda c: (c["L"], c["C"]),           True,  False),
    ("fcw",      lambda c: (c["L"], 4 * c["C"], c["C"]), True, True),
    ("fcb",      lambda c: (c["L"], 4 * c["C"]),       True,  False),
    ("fcprojw",  lambda c: (c["L"], c["C"], 4 * c["C"]), True, True),
    ("fcprojb",  lambda c: (c["L"], c["C"]),           True,  False),
    ("lnfw",     lambda c: (c["C"],),                  False, False),
    ("lnfb",     lambda c: (c["C"],),                  False, False),
]


def param_shapes(cfg):
    """[(name, shape, decays)] in memory order, shapes as in the table (stacked over L)."""
    return [(name, tuple(shape(cfg)), decays) for name, shape, _, decays in PARAMS]


def init_params(cfg, gen, dtype=torch.float32, nontrivial=True, draw_dtype=torch.float64):
    """
    Stacked parameter dict in table order. GPT-2 style: matrices ~ normal(0, 0.02).
    nontrivial=True (the reference): LayerNorm weights 1 + 0.1*randn and all biases 0.02*randn,
    so their gradients are really exercised. nontrivial=False (the benchmark): LN w=1, b=0, biases 0.
    The reference draws in float64 and rounds; the benchmark draws in float32 (draw_dtype) so that a
    float64 copy of GPT-2 124M does not show up in its peak RSS.
    Padded wte rows V..Vp-1 are zero: they never receive gradient from the loss (only the first V
    logits enter it) nor from the embedding (token ids are < V).
    """
    p = {}
    for name, shape, _decays in param_shapes(cfg):
        randn = lambda: torch.randn(shape, generator=gen, dtype=draw_dtype)
        if name.startswith("ln") and name.endswith("w"):
            t = 1.0 + 0.1 * randn() if nontrivial else torch.ones(shape, dtype=draw_dtype)
        elif name.endswith("b"):
            t = 0.02 * randn() if nontrivial else torch.zeros(shape, dtype=draw_dtype)
        else:
            t = 0.02 * randn()
        p[name] = t.to(dtype)
    p["wte"][cfg["V"]:].zero_()
    return p


def to_leaves(stacked, cfg, requires_grad=True, copy=True):
    """
    stacked table dict -> dict of leaf tensors ("qkvw.0", ..., "wte", ...). copy=False makes the
    leaves views into the stacked tensors (no second copy of the model; in-place updates of a leaf
    then show in the stacked tensor too). Each leaf gets its own .grad either way.
    """
    take = (lambda t: t.clone()) if copy else (lambda t: t.detach())
    leaves = {}
    for name, _shape, per_layer, _decays in PARAMS:
        if per_layer:
            for l in range(cfg["L"]):
                leaves[f"{name}.{l}"] = take(stacked[name][l]).requires_grad_(requires_grad)
        else:
            leaves[name] = take(stacked[name]).requires_grad_(requires_grad)
    return leaves


def stack(leaf_dict, cfg):
    """dict keyed like to_leaves() (params, grads, ...) -> stacked table dict in memory order."""
    out = {}
    for name, _shape, per_layer, _decays in PARAMS:
        if per_layer:
            out[name] = torch.stack([leaf_dict[f"{name}.{l}"] for l in range(cfg["L"])])
        else:
            out[name] = leaf_dict[name]
    return out


def decays(leaf_name):
    """Does the leaf (e.g. "qkvw.3") get weight decay?"""
    base = leaf_name.split(".")[0]
    return next(d for name, _s, _pl, d in PARAMS if name == base)


# ----------------------------------------------------------------------------- the model
# Two spellings of each nonlinearity: PyTorch's fused op (fast, what the benchmark uses) and the
# formula written out (explicit=True). gen_reference.py asserts both give the same numbers.

def layernorm(x, w, b, explicit=False):
    # y = (x - mean) / sqrt(var + eps) * w + b, biased variance. PyTorch: nn.LayerNorm(C, eps=1e-5)
    if not explicit:
        return F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5)
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * w + b


def gelu(x, explicit=False):
    # GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). HF: "gelu_new"
    if not explicit:
        return F.gelu(x, approximate="tanh")
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def linear(x, w, b, lora=None):
    # x @ w^T + b with w in nn.Linear (out, in) layout; optional LoRA: + scale * (x @ A^T) @ B^T
    y = F.linear(x, w, b)
    if lora is not None:
        A, Bm, scale = lora  # A: (r, in), Bm: (out, r)   (loralib's lora_A / lora_B)
        y = y + scale * F.linear(F.linear(x, A), Bm)
    return y


def forward(p, idx, cfg, targets=None, explicit=False, lora=None):
    """
    p: leaves dict (see to_leaves). idx, targets: (B,T) int64, targets may be -1 = ignore.
    Returns logits (B,T,V) (the first V of the Vp padded logits) and the mean cross-entropy over
    non-ignored positions (None without targets).
    lora: optional dict leaf name ("qkvw.0") -> (A, B, scale).
    """
    B, T = idx.shape
    C, NH, V, L = cfg["C"], cfg["NH"], cfg["V"], cfg["L"]
    hs = C // NH
    lora = lora or {}
    pos = torch.arange(T)
    h = p["wte"][idx] + p["wpe"][pos]                                      # (B,T,C)
    causal = torch.ones(T, T, dtype=torch.bool).tril()                     # (T,T) key <= query
    for l in range(L):
        P = lambda n: p[f"{n}.{l}"]
        a = layernorm(h, P("ln1w"), P("ln1b"), explicit)                   # (B,T,C)
        qkv = linear(a, P("qkvw"), P("qkvb"), lora.get(f"qkvw.{l}"))      # (B,T,3C)
        q, k, v = qkv.split(C, dim=-1)                                     # 3 x (B,T,C)
        q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in (q, k, v))  # (B,NH,T,hs)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))            # (B,NH,T,T)
        att = att.masked_fill(~causal, float("-inf"))
        if explicit:  # softmax, shifted by the row max for stability
            att = torch.exp(att - att.amax(-1, keepdim=True))
            att = att / att.sum(-1, keepdim=True)
        else:
            att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)           # (B,T,C)
        h = h + linear(y, P("attprojw"), P("attprojb"), lora.get(f"attprojw.{l}"))
        m = layernorm(h, P("ln2w"), P("ln2b"), explicit)
        f = gelu(linear(m, P("fcw"), P("fcb"), lora.get(f"fcw.{l}")), explicit)  # (B,T,4C)
        h = h + linear(f, P("fcprojw"), P("fcprojb"), lora.get(f"fcprojw.{l}"))
    h = layernorm(h, p["lnfw"], p["lnfb"], explicit)
    logits = F.linear(h, p["wte"])[..., :V]                                # tied head, (B,T,V)
    if targets is None:
        return logits, None
    flat, tgt = logits.reshape(-1, V), targets.reshape(-1)
    if explicit:  # -log softmax(logits)[target], mean over targets != -1
        keep = tgt != -1
        lse = torch.logsumexp(flat[keep], dim=-1)
        loss = (lse - flat[keep].gather(1, tgt[keep][:, None])[:, 0]).mean()
    else:
        loss = F.cross_entropy(flat, tgt, ignore_index=-1)
    return logits, loss


# ----------------------------------------------------------------------------- LR schedule
def lr_at(s, lr, warmup, steps, schedule, min_lr_frac):
    """Learning rate at step s (0-indexed), the exact formula the C trainer implements."""
    if s < warmup:
        return lr * (s + 1) / warmup
    f = (s - warmup) / max(1, steps - warmup)
    min_lr = lr * min_lr_frac
    if schedule == "cosine":
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * f)) * (lr - min_lr)
    if schedule == "linear":
        return lr - f * (lr - min_lr)
    if schedule == "constant":
        return lr
    raise ValueError(f"unknown schedule {schedule!r}")
