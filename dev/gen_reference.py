"""
Writes the PyTorch reference files that test_gpt.c checks the C trainer against.

    python3 dev/gen_reference.py          (from the repo root; writes ref/)

Needs torch and numpy (Debian: apt-get install python3-torch python3-numpy; with a pyenv shim
in front of the system python, run /usr/bin/python3). Never runs during build or `make test`:
the outputs are committed.

The model runs in float64, so the reference is the (near-)exact answer and our float32 C code is
judged against the truth, not against another float32 implementation's rounding. The weights are
rounded to float32 first (that is what gpt_X.bin holds), then computed with in float64.

For each config X in {a, b}:
  ref/gpt_X.bin                llm.c model file: 256 x int32 header, then float32 params in table order
  ref/hf_X/model.safetensors   the same weights in Hugging Face GPT-2 layout (Conv1D (in,out) weights,
  ref/hf_X/config.json         unpadded wte); config b adds the h.i.attn.bias mask buffers and a
                               shuffled tensor order, to exercise a robust loader
  ref/ref_X.safetensors        inputs, targets, logits, loss, grad.<name> for every parameter, then
                               10 AdamW steps: step_loss, step_lr, step_gradnorm, final.<name>
Self-checks (assert): the fused ops equal the written-out formulas; a few gradient entries per
tensor equal a central finite difference; the hand-written AdamW + clipping equals
torch.optim.AdamW + clip_grad_norm_; re-reading gpt_X.bin and hf_X reproduces the logits.
"""
import json
import math
import os
import random
import struct
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # no dev/__pycache__ next to the sources
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_torch as G  # noqa: E402

OUT = "ref"
CONFIGS = {
    # L, NH, C, maxT, V, Vp: model.  B, T: batch.  Optimizer and schedule below.
    "a": dict(L=2, NH=4, C=64, maxT=32, V=500, Vp=512, B=4, T=16,
              warmup=3, schedule="cosine", grad_clip=2.0, seed=1337),
    # odd sizes everywhere: hs=12, C not a multiple of 8, T not a power of two
    "b": dict(L=3, NH=3, C=36, maxT=20, V=317, Vp=320, B=3, T=13,
              warmup=2, schedule="linear", grad_clip=1.0, seed=4242),
}
OPTIM = dict(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, min_lr_frac=0.1, steps=10)
# grad_clip (per config): chosen from the printed global grad norms (~1-4, one spike to ~24 in a)
# so that clipping is active on most steps but not all: both branches are tested, and the script
# asserts that stays true.

# ----------------------------------------------------------------------------- safetensors
# Format: u64 little-endian N, then N bytes of JSON {name: {dtype, shape, data_offsets:[begin,end]},
# "__metadata__": {str: str}} padded with spaces to a multiple of 8, then the raw little-endian data
# (offsets relative to the start of the data).
DTYPES = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8"}


def save_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, numpy array), written in that order."""
    header, blobs, off = {}, [], 0
    for name, arr in tensors:
        code = next(k for k, v in DTYPES.items() if np.dtype(v) == arr.dtype.newbyteorder("<"))
        raw = np.ascontiguousarray(arr, dtype=DTYPES[code]).tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata is not None:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)


def load_safetensors(path):
    """-> ({name: numpy array}, metadata dict)"""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, e in header.items():
        b, en = e["data_offsets"]
        out[name] = np.frombuffer(data[base + b:base + en], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
    return out, meta


# ----------------------------------------------------------------------------- llm.c model file
MAGIC, VERSION_FP32 = 20240326, 3


def write_llmc(path, cfg, params):
    header = np.zeros(256, dtype="<i4")
    header[:8] = [MAGIC, VERSION_FP32, cfg["maxT"], cfg["V"], cfg["L"], cfg["NH"], cfg["C"], cfg["Vp"]]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        for name, _shape, _d in G.param_shapes(cfg):
            f.write(params[name].numpy().astype("<f4").tobytes())


def read_llmc(path):
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(1024), dtype="<i4")
        assert header[0] == MAGIC and header[1] == VERSION_FP32, header[:2]
        cfg = dict(zip(["maxT", "V", "L", "NH", "C", "Vp"], header[2:8].tolist()))
        params = {}
        for name, shape, _d in G.param_shapes(cfg):
            n = int(np.prod(shape))
            params[name] = torch.from_numpy(np.frombuffer(f.read(4 * n), dtype="<f4").reshape(shape).copy())
        assert f.read() == b"", "trailing bytes"
    return cfg, params


# ----------------------------------------------------------------------------- HF GPT-2 layout
# HF stores the four per-layer matrices as Conv1D weights, (in, out) = our (out, in) transposed.
HF_PER_LAYER = [  # (HF suffix, our name, transpose?)
    ("ln_1.weight", "ln1w", False), ("ln_1.bias", "ln1b", False),
    ("attn.c_attn.weight", "qkvw", True), ("attn.c_attn.bias", "qkvb", False),
    ("attn.c_proj.weight", "attprojw", True), ("attn.c_proj.bias", "attprojb", False),
    ("ln_2.weight", "ln2w", False), ("ln_2.bias", "ln2b", False),
    ("mlp.c_fc.weight", "fcw", True), ("mlp.c_fc.bias", "fcb", False),
    ("mlp.c_proj.weight", "fcprojw", True), ("mlp.c_proj.bias", "fcprojb", False),
]


def write_hf(dirname, cfg, params, with_mask_buffer, shuffle_seed=None):
    os.makedirs(dirname, exist_ok=True)
    f32 = lambda t: t.numpy().astype("<f4")
    L, V, maxT = cfg["L"], cfg["V"], cfg["maxT"]
    tensors = [("wte.weight", f32(params["wte"][:V])),  # unpadded (V, C)
               ("wpe.weight", f32(params["wpe"]))]
    for i in range(L):
        for suffix, name, tr in HF_PER_LAYER:
            t = params[name][i]
            tensors.append((f"h.{i}.{suffix}", f32(t.t() if tr else t)))
        if with_mask_buffer:  # the causal mask old checkpoints carry; not a parameter, loaders skip it
            tensors.append((f"h.{i}.attn.bias", np.tril(np.ones((maxT, maxT), "<f4"))[None, None]))
    tensors += [("ln_f.weight", f32(params["lnfw"])), ("ln_f.bias", f32(params["lnfb"]))]
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(tensors)
    save_safetensors(os.path.join(dirname, "model.safetensors"), tensors, {"format": "pt"})
    hf_cfg = {"model_type": "gpt2", "n_layer": L, "n_head": cfg["NH"], "n_embd": cfg["C"],
              "n_positions": maxT, "vocab_size": V, "layer_norm_epsilon": 1e-5,
              "activation_function": "gelu_new"}
    with open(os.path.join(dirname, "config.json"), "w") as f:
        json.dump(hf_cfg, f, indent=2)
        f.write("\n")


def read_hf(dirname, Vp):
    """HF directory -> (cfg, stacked params in our layout, padded wte)."""
    with open(os.path.join(dirname, "config.json")) as f:
        hc = json.load(f)
    cfg = dict(L=hc["n_layer"], NH=hc["n_head"], C=hc["n_embd"], maxT=hc["n_positions"],
               V=hc["vocab_size"], Vp=Vp)
    t, _ = load_safetensors(os.path.join(dirname, "model.safetensors"))
    T = lambda name: torch.from_numpy(t[name].astype(np.float32))
    wte = torch.zeros(Vp, cfg["C"])
    wte[:cfg["V"]] = T("wte.weight")
    p = {"wte": wte, "wpe": T("wpe.weight"), "lnfw": T("ln_f.weight"), "lnfb": T("ln_f.bias")}
    for suffix, name, tr in HF_PER_LAYER:
        layers = [T(f"h.{i}.{suffix}") for i in range(cfg["L"])]
        p[name] = torch.stack([x.t() if tr else x for x in layers])
    return cfg, p


# ----------------------------------------------------------------------------- optimizer
def clip_coef(norm, clip):
    # torch.nn.utils.clip_grad_norm_: g *= clamp(clip / (norm + 1e-6), max=1)
    return min(1.0, clip / (norm + 1e-6))


def adamw_hand(p, g, m, v, t, lr, o, decay):
    """One AdamW update of tensor p in place (float64), the same math as torch.optim.AdamW."""
    b1, b2 = o["beta1"], o["beta2"]
    m.mul_(b1).add_((1 - b1) * g)                  # m = b1 m + (1-b1) g
    v.mul_(b2).add_((1 - b2) * g * g)              # v = b2 v + (1-b2) g^2
    mhat = m / (1 - b1 ** t)
    vhat = v / (1 - b2 ** t)
    if decay:                                      # decoupled decay, before the Adam step (as torch)
        p.sub_(lr * o["weight_decay"] * p)
    p.sub_(lr * mhat / (torch.sqrt(vhat) + o["eps"]))


def train_hand(leaves0, idx, tgt, cfg, o):
    """10 steps with the hand-written optimizer. Returns losses, lrs, norms, final leaves."""
    p = {k: x.detach().clone().requires_grad_(True) for k, x in leaves0.items()}
    m = {k: torch.zeros_like(x) for k, x in p.items()}
    v = {k: torch.zeros_like(x) for k, x in p.items()}
    losses, lrs, norms = [], [], []
    for s in range(o["steps"]):
        _, loss = G.forward(p, idx, cfg, tgt)
        grads = dict(zip(p, torch.autograd.grad(loss, list(p.values()))))
        norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
        c = clip_coef(norm, o["grad_clip"])
        lr = G.lr_at(s, o["lr"], cfg["warmup"], o["steps"], cfg["schedule"], o["min_lr_frac"])
        with torch.no_grad():
            for k in p:
                adamw_hand(p[k], grads[k] * c, m[k], v[k], s + 1, lr, o, G.decays(k))
        losses.append(loss.item()); lrs.append(lr); norms.append(norm)
    return losses, lrs, norms, {k: x.detach() for k, x in p.items()}


def train_torch(leaves0, idx, tgt, cfg, o):
    """The same 10 steps with torch.optim.AdamW and clip_grad_norm_, to check train_hand."""
    p = {k: x.detach().clone().requires_grad_(True) for k, x in leaves0.items()}
    groups = [{"params": [x for k, x in p.items() if G.decays(k)], "weight_decay": o["weight_decay"]},
              {"params": [x for k, x in p.items() if not G.decays(k)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])
    losses, norms = [], []
    for s in range(o["steps"]):
        opt.zero_grad(set_to_none=True)
        _, loss = G.forward(p, idx, cfg, tgt)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(p.values()), o["grad_clip"])
        for gr in opt.param_groups:
            gr["lr"] = G.lr_at(s, o["lr"], cfg["warmup"], o["steps"], cfg["schedule"], o["min_lr_frac"])
        opt.step()
        losses.append(loss.item()); norms.append(float(norm))
    return losses, norms, {k: x.detach() for k, x in p.items()}


# ----------------------------------------------------------------------------- checks
def check_close(what, a, b, tol):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    err = float(((a - b).abs() / (b.abs() + 1.0)).max())
    assert err <= tol, f"{what}: max rel err {err:.3e} > {tol:.1e}"
    return err


def finite_difference_check(leaves, idx, tgt, cfg, grads, gen, per_tensor=3, h=1e-5):
    """Central differences on a few random entries of every parameter (float64)."""
    worst = 0.0
    for k, x in leaves.items():
        for _ in range(per_tensor):
            j = int(torch.randint(0, x.numel(), (1,), generator=gen))
            if k == "wte" and j // cfg["C"] >= cfg["V"]:
                j = j % (cfg["V"] * cfg["C"])  # padded rows have no effect; test a real one
            with torch.no_grad():
                orig = x.view(-1)[j].item()
                x.view(-1)[j] = orig + h; lp = G.forward(leaves, idx, cfg, tgt)[1].item()
                x.view(-1)[j] = orig - h; lm = G.forward(leaves, idx, cfg, tgt)[1].item()
                x.view(-1)[j] = orig
            fd, an = (lp - lm) / (2 * h), grads[k].view(-1)[j].item()
            err = abs(fd - an) / (abs(an) + 1e-3)
            worst = max(worst, err)
            # h=1e-5 in float64: truncation O(h^2) ~1e-10, rounding 1e-16*loss/h ~6e-11 absolute,
            # i.e. up to ~6e-8 relative to the 1e-3 floor; worst seen 1e-7, so 1e-6 (a real bug is >1e-3)
            assert err < 1e-6, f"finite difference {k}[{j}]: fd={fd:.10g} autograd={an:.10g}"
    return worst


# ----------------------------------------------------------------------------- main
def generate(X, cfg):
    o = dict(OPTIM, grad_clip=cfg["grad_clip"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    # weights: float64 draws rounded to float32 (what the .bin holds), computed with in float64
    params = {k: t.double() for k, t in G.init_params(cfg, gen, torch.float32).items()}
    B, T, V = cfg["B"], cfg["T"], cfg["V"]
    idx = torch.randint(0, V, (B, T), generator=gen)
    tgt = torch.randint(0, V, (B, T), generator=gen)
    tgt[0, :3] = -1          # ignored positions at the start of row 0 ...
    tgt[B - 1, T - 1] = -1   # ... and at the very end of the batch

    leaves = G.to_leaves(params, cfg)
    logits, loss = G.forward(leaves, idx, cfg, tgt)
    loss.backward()
    grads = G.stack({k: x.grad for k, x in leaves.items()}, cfg)
    assert float(grads["wte"][V:].abs().max()) == 0.0, "padded wte rows got gradient"

    # the fused PyTorch ops agree with the formulas written out
    with torch.no_grad():
        logits_e, loss_e = G.forward(leaves, idx, cfg, tgt, explicit=True)
    check_close("explicit logits", logits_e, logits, 1e-12)
    check_close("explicit loss", loss_e, loss, 1e-12)
    fd_err = finite_difference_check(leaves, idx, tgt, cfg, {k: x.grad for k, x in leaves.items()}, gen)

    # 10 optimizer steps, by hand and by torch.optim.AdamW; they must agree
    losses, lrs, norms, final = train_hand(leaves, idx, tgt, cfg, o)
    t_losses, t_norms, t_final = train_torch(leaves, idx, tgt, cfg, o)
    check_close("adamw losses", losses, t_losses, 1e-12)
    check_close("adamw norms", norms, t_norms, 1e-12)
    adam_err = max(check_close(f"adamw final {k}", final[k], t_final[k], 1e-12) for k in final)
    assert abs(losses[0] - loss.item()) < 1e-14
    n_clipped = sum(n > o["grad_clip"] for n in norms)
    assert o["steps"] // 2 <= n_clipped < o["steps"], f"clipping active on {n_clipped} steps: adjust grad_clip"
    final = G.stack(final, cfg)

    # How far a float32 implementation lands from this reference (the same PyTorch code run in
    # float32), printed as a guide for the C tests' tolerances; not stored.
    l32 = {k: x.detach().float().requires_grad_(True) for k, x in leaves.items()}
    lg32, ls32 = G.forward(l32, idx, cfg, tgt)
    ls32.backward()
    g32 = G.stack({k: x.grad for k, x in l32.items()}, cfg)
    f32_losses, _, _, f32_final = train_hand(l32, idx, tgt, cfg, o)
    f32_final = G.stack(f32_final, cfg)
    fp32_gap = dict(
        logits=float((lg32.double() - logits).abs().max()),
        grads=max(float((g32[k].double() - grads[k]).abs().max()) for k in grads),
        step_loss=max(abs(a - b) for a, b in zip(f32_losses, losses)),
        final=max(float((f32_final[k].double() - final[k]).abs().max()) for k in final))

    # ---- write
    os.makedirs(OUT, exist_ok=True)
    bin_path = os.path.join(OUT, f"gpt_{X}.bin")
    hf_dir = os.path.join(OUT, f"hf_{X}")
    ref_path = os.path.join(OUT, f"ref_{X}.safetensors")
    write_llmc(bin_path, cfg, params)
    write_hf(hf_dir, cfg, params, with_mask_buffer=(X == "b"), shuffle_seed=(7 if X == "b" else None))

    f32 = lambda t: np.asarray(t.detach().numpy() if torch.is_tensor(t) else t, dtype="<f4")
    tensors = [("inputs", idx.numpy().astype("<i4")), ("targets", tgt.numpy().astype("<i4")),
               ("logits", f32(logits)), ("loss", f32([loss.item()]))]
    tensors += [(f"grad.{k}", f32(grads[k])) for k, _s, _d in G.param_shapes(cfg)]
    tensors += [("step_loss", f32(losses)), ("step_lr", f32(lrs)), ("step_gradnorm", f32(norms))]
    tensors += [(f"final.{k}", f32(final[k])) for k, _s, _d in G.param_shapes(cfg)]
    meta = {k: cfg[k] for k in ("L", "NH", "C", "maxT", "V", "Vp", "B", "T")}
    meta.update(lr=o["lr"], beta1=o["beta1"], beta2=o["beta2"], eps=o["eps"],
                weight_decay=o["weight_decay"], grad_clip=o["grad_clip"], warmup=cfg["warmup"],
                schedule=cfg["schedule"], min_lr_frac=o["min_lr_frac"], steps=o["steps"])
    save_safetensors(ref_path, tensors, {k: repr(v) if isinstance(v, float) else str(v)
                                         for k, v in meta.items()})

    # ---- read everything back and recompute
    ref, _ = load_safetensors(ref_path)
    assert np.array_equal(ref["logits"], f32(logits))
    for path_kind, (rcfg, rp) in (("gpt_%s.bin" % X, read_llmc(bin_path)),
                                  ("hf_%s" % X, read_hf(hf_dir, cfg["Vp"]))):
        for k in ("L", "NH", "C", "maxT", "V", "Vp"):
            assert rcfg[k] == cfg[k], (path_kind, k)
        for k in params:
            assert torch.equal(rp[k].double(), params[k]), (path_kind, k)
        rl = G.to_leaves({k: t.double() for k, t in rp.items()}, cfg, requires_grad=False)
        with torch.no_grad():
            lg, ls = G.forward(rl, torch.from_numpy(ref["inputs"].astype(np.int64)), cfg,
                               torch.from_numpy(ref["targets"].astype(np.int64)))
        assert np.array_equal(f32(lg), ref["logits"]), f"{path_kind}: logits differ"
        assert abs(ls.item() - float(ref["loss"][0])) < 1e-6, f"{path_kind}: loss differs"

    # ---- summary
    print(f"config {X}: L={cfg['L']} NH={cfg['NH']} C={cfg['C']} maxT={cfg['maxT']} V={V} Vp={cfg['Vp']} "
          f"B={B} T={T}  schedule={cfg['schedule']} warmup={cfg['warmup']}  "
          f"ignored targets={int((tgt == -1).sum())}")
    print(f"  loss {loss.item():.6f} (ln V = {math.log(V):.4f})   "
          f"fd check worst rel {fd_err:.1e}   hand vs torch AdamW worst rel {adam_err:.1e}")
    print("  float32 PyTorch vs this reference, max abs diff: " +
          "  ".join(f"{k} {v:.1e}" for k, v in fp32_gap.items()))
    print("  step  loss      lr        gradnorm  clipped")
    for s in range(o["steps"]):
        print(f"  {s:4d}  {losses[s]:.6f}  {lrs[s]:.6f}  {norms[s]:.6f}  {'yes' if norms[s] > o['grad_clip'] else 'no'}")
    for path in (bin_path, os.path.join(hf_dir, "model.safetensors"), os.path.join(hf_dir, "config.json"), ref_path):
        size = os.path.getsize(path)
        assert size < 2 * 1024 * 1024, f"{path} is {size} bytes"
        print(f"  {size:9d}  {path}")


def main():
    torch.set_default_dtype(torch.float64)  # the reference is computed in float64 throughout
    for X, cfg in CONFIGS.items():
        generate(X, cfg)
    print("all self-checks passed")


if __name__ == "__main__":
    main()
