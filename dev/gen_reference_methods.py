"""
PyTorch references for the fine-tuning methods and heads (issue: LoRA, adapters, prefix-tuning,
freezing with layer-wise LR decay, the classification head, the token-classification head). Written from the math in float64, on
top of the base model of config a (ref/gpt_a.bin, written by dev/gen_reference.py; run that first).

    /usr/bin/python3 dev/gen_reference_methods.py      -> ref/method_<name>.safetensors
                                                           and ref/method_multitask.safetensors

Each file holds, for one method: the fine-tuning tensors' starting values ("param.<name>", stacked
over L as in model.h's table; LoRA B is NOT zero here, so dA is really tested), the trainable mask
("trainable.<name>", one 0/1 per layer) and LR multipliers ("lr_scale.<name>"), the batch, logits,
loss, the gradient of every trainable tensor ("grad.<name>"), and 10 AdamW steps with clipping,
decay and a warmup+cosine schedule ("step_loss", "step_lr", "step_gradnorm", "final.<name>").
The optimizer is torch.optim.AdamW with one parameter group per (tensor, layer) slice.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_torch as G  # noqa: E402
from gen_reference import load_safetensors, read_llmc, save_safetensors  # noqa: E402

torch.set_default_dtype(torch.float64)
OPT = dict(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, grad_clip=1.0, warmup=3,
           schedule="cosine", min_lr_frac=0.1, steps=10)
LORA_BITS = {"qkvw": 1, "attprojw": 2, "fcw": 4, "fcprojw": 8}
LORA_NAMES = {"qkvw": "lora_qkv", "attprojw": "lora_proj", "fcw": "lora_fc", "fcprojw": "lora_fcproj"}


def peft_shapes(cfg, m):
    """(name, per-layer shape) of the fine-tuning tensors this method has, in model.h's table order."""
    C, r, A, P, K = cfg["C"], m.get("lora_r", 0), m.get("adapter_dim", 0), m.get("prefix_len", 0), m.get("num_classes", 0)
    out = []
    dims = {"qkvw": (3 * C, C), "attprojw": (C, C), "fcw": (4 * C, C), "fcprojw": (C, 4 * C)}
    for w, (o, i) in dims.items():
        if r and m["lora_targets"] & LORA_BITS[w]:
            out += [(LORA_NAMES[w] + "_a", (r, i)), (LORA_NAMES[w] + "_b", (o, r))]
    if A:
        for s in ("adpa", "adpm"):
            out += [(s + "_dw", (A, C)), (s + "_db", (A,)), (s + "_uw", (C, A)), (s + "_ub", (C,))]
    if P:
        out += [("prefix_k", (P, C)), ("prefix_v", (P, C))]
    E = m.get("num_tags", 0)
    return out, ([("cls_w", (K, C))] if K else []) + ([("tok_w", (E, C)), ("tok_b", (E,))] if E else [])


def forward_ft(p, idx, cfg, m, targets=None, lengths=None, labels=None, class_weights=None, tags=None):
    """GPT-2 (gpt_torch.forward's math) with the method's additions. Returns (logits, loss)."""
    B, T = idx.shape
    C, NH, V, L = cfg["C"], cfg["NH"], cfg["V"], cfg["L"]
    hs, P = C // NH, m.get("prefix_len", 0)
    scale = m.get("lora_alpha", 0) / m["lora_r"] if m.get("lora_r") else 0.0

    def lin(x, w, l, name):
        lw = LORA_NAMES.get(name)
        lora = None
        if lw and f"{lw}_a.{l}" in p:
            lora = (p[f"{lw}_a.{l}"], p[f"{lw}_b.{l}"], scale)
        return G.linear(x, p[f"{name}.{l}"], p[f"{name[:-1]}b.{l}"], lora)

    def adapter(x, s, l):
        if f"{s}_dw.{l}" not in p:
            return x
        hmid = G.gelu(F.linear(x, p[f"{s}_dw.{l}"], p[f"{s}_db.{l}"]))
        return x + F.linear(hmid, p[f"{s}_uw.{l}"], p[f"{s}_ub.{l}"])

    h = p["wte"][idx] + p["wpe"][torch.arange(T)]
    # keys: P prefix positions (always visible), then the sequence (causal)
    mask = torch.cat([torch.ones(T, P, dtype=torch.bool), torch.ones(T, T, dtype=torch.bool).tril()], dim=1)
    for l in range(L):
        a = G.layernorm(h, p[f"ln1w.{l}"], p[f"ln1b.{l}"])
        q, k, v = lin(a, None, l, "qkvw").split(C, dim=-1)
        q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in (q, k, v))   # (B,NH,T,hs)
        if P:
            pk = p[f"prefix_k.{l}"].view(P, NH, hs).transpose(0, 1).expand(B, NH, P, hs)
            pv = p[f"prefix_v.{l}"].view(P, NH, hs).transpose(0, 1).expand(B, NH, P, hs)
            k, v = torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)                         # (B,NH,T,P+T)
        att = F.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        h = h + adapter(lin(y, None, l, "attprojw"), "adpa", l)
        mm = G.layernorm(h, p[f"ln2w.{l}"], p[f"ln2b.{l}"])
        f = G.gelu(lin(mm, None, l, "fcw"))
        h = h + adapter(lin(f, None, l, "fcprojw"), "adpm", l)
    h = G.layernorm(h, p["lnfw"], p["lnfb"])
    if m.get("num_classes"):
        pooled = h[torch.arange(B), lengths - 1]                                 # (B,C) last real token
        logits = F.linear(pooled, p["cls_w"])                                   # (B,K)
        loss = F.cross_entropy(logits, labels, weight=class_weights, label_smoothing=m.get("label_smoothing", 0.0))
        return logits, loss
    if m.get("num_tags"):  # GPT2ForTokenClassification: classifier on every position, CE over the tagged ones
        logits = F.linear(h, p["tok_w"], p["tok_b"])                            # (B,T,E)
        loss = F.cross_entropy(logits.reshape(-1, m["num_tags"]), tags.reshape(-1), ignore_index=-1)
        return logits, loss
    logits = F.linear(h, p["wte"])[..., :V]
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-1)
    return logits, loss


METHODS = {
    # LoRA on all four projections, both layers
    "lora": dict(lora_r=4, lora_alpha=8.0, lora_targets=15, train="peft"),
    # Houlsby adapters, bottleneck 8
    "adapter": dict(adapter_dim=8, train="peft"),
    # prefix-tuning, 3 positions per layer
    "prefix": dict(prefix_len=3, train="peft"),
    # classification head (K=3) + full fine-tuning, class weights, label smoothing, varying lengths
    "cls": dict(num_classes=3, label_smoothing=0.1, train="all"),
    # freezing: embeddings and block 0 frozen, layer-wise LR decay 0.8 on the rest
    "freeze": dict(train="freeze", layer_decay=0.8),
    # token-classification head (E=5 tags, about a third of the positions untagged) + full fine-tuning
    "tok": dict(num_tags=5, train="all"),
    # the same head with LoRA on all four projections (base frozen, head and LoRA trained)
    "tok_lora": dict(num_tags=5, lora_r=4, lora_alpha=8.0, lora_targets=15, train="peft"),
}


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    cfg, base = read_llmc("ref/gpt_a.bin")
    ref_a, _meta = load_safetensors("ref/ref_a.safetensors")
    idx = torch.from_numpy(ref_a["inputs"].copy()).long()
    tgt = torch.from_numpy(ref_a["targets"].copy()).long()
    base = {k: v.double() for k, v in base.items()}
    for name, m in METHODS.items():
        run_method(name, m, cfg, base, idx, tgt, gen)
    multitask(cfg, base, idx, tgt, torch.Generator().manual_seed(4321))


def run_method(name, m, cfg, base, idx, tgt, gen, base_table=None, shapes=peft_shapes, forward=forward_ft,
               path=None, meta_extra=None, write_base=False, frozen=()):
    """
    One method's reference file: draw its tensors (from gen), compute logits, loss and gradients, run the 10
    AdamW steps, write it. The defaults are GPT-2's (gpt_torch's table, peft_shapes, forward_ft,
    ref/method_<name>.safetensors); dev/gen_reference_llama.py passes its own table ([(name, per-layer?)] of
    the base tensors it has), shapes and forward, extra metadata (its config) and write_base=True (there is no
    base model file, so the base weights go into the file as "param.<name>" too); frozen names tensors frozen
    whatever m["train"] says (a head the method does not use). Returns the file's path.
    """
    B, T, L = idx.shape[0], idx.shape[1], cfg["L"]
    if base_table is None:
        base_table = [(n, r[1]) for n, *r in G.PARAMS]
    base_names = [n for n, _pl in base_table]
    per_layer, glob = shapes(cfg, m)
    stacked = dict(base)
    for n, shp in per_layer:  # non-trivial values everywhere (B != 0, up != 0) so all grads are real
        stacked[n] = 0.1 * torch.randn((L,) + shp, generator=gen)
    for n, shp in glob:
        stacked[n] = 0.1 * torch.randn(shp, generator=gen)
    # leaves
    leaves = {}
    names = base_names + [n for n, _ in per_layer] + [n for n, _ in glob]
    layered = {n for n, pl in base_table if pl} | {n for n, _ in per_layer}
    for n in names:
        if n in layered:
            for l in range(L):
                leaves[f"{n}.{l}"] = stacked[n][l].clone().requires_grad_(True)
        else:
            leaves[n] = stacked[n].clone().requires_grad_(True)
    # trainable mask and lr scales per slice
    trainable, lr_scale = {}, {}
    for n in names:
        nl = L if n in layered else 1
        is_peft = n not in base_names
        if m["train"] == "peft":
            tr = [1 if is_peft else 0] * nl
        elif m["train"] == "all":
            tr = [1] * nl
        else:  # freeze: embeddings and block 0 frozen
            tr = [0] * nl if n in ("wte", "wpe") else ([0] + [1] * (nl - 1) if n in layered else [1])
        trainable[n] = [0] * nl if n in frozen else tr
        d = m.get("layer_decay", 1.0)
        if n in layered:
            lr_scale[n] = [d ** (L - 1 - l) for l in range(L)]
        elif n in ("wte", "wpe"):
            lr_scale[n] = [d ** L]
        else:
            lr_scale[n] = [1.0]
    def leaf_names(n):
        return [f"{n}.{l}" for l in range(L)] if n in layered else [n]
    train_leaves = [(ln, n, i) for n in names for i, ln in enumerate(leaf_names(n)) if trainable[n][i]]

    kw = {}
    K = m.get("num_classes", 0)
    if K:
        kw["lengths"] = torch.tensor([T, T - 5, 3, T - 1][:B])
        kw["labels"] = torch.tensor([2, 0, 1, 2][:B])
        kw["class_weights"] = torch.tensor([0.5, 2.0, 1.25])
    elif m.get("num_tags"):  # tags in [0, E), -1 on every third position (not scored), seeded
        tags = torch.randint(0, m["num_tags"], (B, T), generator=torch.Generator().manual_seed(7))
        tags[:, 1::3] = -1
        kw["tags"] = tags
    else:
        kw["targets"] = tgt

    def loss_fn():
        return forward(leaves, idx, cfg, m, **kw)

    logits, loss = loss_fn()
    loss.backward()
    grads = {ln: leaves[ln].grad.clone() for ln, _n, _i in train_leaves}
    # the optimizer: one group per trainable slice
    groups = [dict(params=[leaves[ln]], scale=lr_scale[n][i],
                   weight_decay=OPT["weight_decay"] if decays_name(n) else 0.0) for ln, n, i in train_leaves]
    opt = torch.optim.AdamW(groups, lr=OPT["lr"], betas=(OPT["beta1"], OPT["beta2"]), eps=OPT["eps"])
    for l_ in leaves.values():
        l_.grad = None
    step_loss, step_lr, step_norm = [], [], []
    for s in range(OPT["steps"]):
        opt.zero_grad(set_to_none=True)
        _, ls = loss_fn()
        ls.backward()
        params = [leaves[ln] for ln, _n, _i in train_leaves]
        norm = torch.nn.utils.clip_grad_norm_(params, OPT["grad_clip"])
        lr = G.lr_at(s, OPT["lr"], OPT["warmup"], OPT["steps"], OPT["schedule"], OPT["min_lr_frac"])
        for g in opt.param_groups:
            g["lr"] = lr * g["scale"]
        opt.step()
        step_loss.append(ls.item())
        step_lr.append(lr)
        step_norm.append(norm.item())
    out = {"inputs": idx.int(), "logits": logits.detach().float(), "loss": loss.detach().reshape(1).float(),
           "step_loss": torch.tensor(step_loss).float(), "step_lr": torch.tensor(step_lr).float(),
           "step_gradnorm": torch.tensor(step_norm).float()}
    if K:
        out["lengths"] = kw["lengths"].int()
        out["labels"] = kw["labels"].int()
        out["class_weights"] = kw["class_weights"].float()
    elif "tags" in kw:
        out["tags"] = kw["tags"].int()
    else:
        out["targets"] = tgt.int()
    for n in names:
        out[f"trainable.{n}"] = torch.tensor(trainable[n]).int()
        out[f"lr_scale.{n}"] = torch.tensor(lr_scale[n]).float()
        if write_base or n not in base_names:
            out[f"param.{n}"] = stacked[n].float()
        if any(trainable[n]):
            lns = leaf_names(n)
            gl = [grads[ln] if trainable[n][i] else torch.zeros_like(leaves[ln]) for i, ln in enumerate(lns)]
            out[f"grad.{n}"] = (torch.stack(gl) if n in layered else gl[0]).float()
            fl = [leaves[ln].detach() for ln in lns]
            out[f"final.{n}"] = (torch.stack(fl) if n in layered else fl[0]).float()
    meta = {k: str(v) for k, v in m.items() if k != "train"}
    meta.update({k: str(v) for k, v in OPT.items()})
    meta.update(method=name, B=str(B), T=str(T))
    meta.update({k: str(v) for k, v in (meta_extra or {}).items()})
    path = path or f"ref/method_{name}.safetensors"
    save_safetensors(path, [(k, v.numpy()) for k, v in out.items()], meta)
    print(f"{name:8s} loss {loss.item():.6f}  steps {step_loss[0]:.4f} -> {step_loss[-1]:.4f}  "
          f"norms {min(step_norm):.2f}-{max(step_norm):.2f}  {os.path.getsize(path)} bytes")
    return path


def decays_name(n):
    for name, _s, _pl, d in G.PARAMS:
        if name == n:
            return d
    return not (n.endswith("_db") or n.endswith("_ub") or n == "tok_b")  # fine-tuning matrices decay, biases do not


# ----------------------------------------------------------------------------- multi-task
# One trunk, three heads (multitask.c): task 0 cls with K=2 (rows 0-1 of cls_w), task 1 cls with K=3 (rows 2-4),
# task 2 lm (the tied LM head). Each cls task's softmax is over its own rows only. Full fine-tuning.
#   gradients: of sum_t w_t * loss_t (one forward/backward per task, accumulated), "grad.<name>"
#   10 AdamW steps: step s trains task s % 3 alone on w_t * loss_t ("step_loss" is loss_t, unweighted, as the
#   trainer logs it); clipping on that step's gradient, as in the other methods.
MT_WEIGHTS = [1.0, 0.5, 0.25]
MT_CLASSES = [2, 3, 0]


def multitask(cfg, base, idx, tgt, gen):
    B, T, L, C = idx.shape[0], idx.shape[1], cfg["L"], cfg["C"]
    K = sum(MT_CLASSES)
    cls_w = 0.1 * torch.randn((K, C), generator=gen)
    eps = 0.1
    batches = [dict(idx=idx, lengths=torch.tensor([T, T - 5, 3, T - 1][:B]), labels=torch.tensor([1, 0, 1, 0][:B])),
               dict(idx=idx.flip(0), lengths=torch.tensor([2, T, T - 3, 5][:B]), labels=torch.tensor([2, 0, 1, 2][:B])),
               dict(idx=idx, targets=tgt)]
    names = [n for n, *_ in G.PARAMS] + ["cls_w"]
    layered = {n for n, *_r in G.PARAMS if _r[1]}
    leaves = {}
    for n in names:
        src = cls_w if n == "cls_w" else base[n]
        if n in layered:
            for l in range(L):
                leaves[f"{n}.{l}"] = src[l].clone().requires_grad_(True)
        else:
            leaves[n] = src.clone().requires_grad_(True)
    m = dict(num_classes=K, label_smoothing=eps)

    def task_loss(t):
        bt = batches[t]
        if MT_CLASSES[t]:
            k0 = sum(MT_CLASSES[:t])
            # the trunk of forward_ft, then this task's rows of the head: a K_t-class head of its own
            p = dict(leaves)
            p["cls_w"] = leaves["cls_w"][k0:k0 + MT_CLASSES[t]]
            return forward_ft(p, bt["idx"], cfg, m, lengths=bt["lengths"], labels=bt["labels"])
        return forward_ft(leaves, bt["idx"], cfg, {}, targets=bt["targets"])

    out = {}
    total = 0.0
    for t in range(3):
        logits, loss = task_loss(t)
        out[f"logits.{t}"] = logits.detach().float()
        out[f"loss.{t}"] = loss.detach().reshape(1).float()
        total = total + MT_WEIGHTS[t] * loss
    total.backward()
    lnames = list(leaves)
    grads = {ln: leaves[ln].grad.clone() for ln in lnames}

    def leaf_names(n):
        return [f"{n}.{l}" for l in range(L)] if n in layered else [n]
    groups = [dict(params=[leaves[ln]], weight_decay=OPT["weight_decay"] if decays_name(n) else 0.0)
              for n in names for ln in leaf_names(n)]
    opt = torch.optim.AdamW(groups, lr=OPT["lr"], betas=(OPT["beta1"], OPT["beta2"]), eps=OPT["eps"])
    for l_ in leaves.values():
        l_.grad = None
    step_loss, step_lr, step_norm = [], [], []
    for s in range(OPT["steps"]):
        t = s % 3
        opt.zero_grad(set_to_none=True)
        _, ls = task_loss(t)
        (MT_WEIGHTS[t] * ls).backward()
        # the C trainer's AdamW steps every trainable slice, a head this step did not use with a zero gradient
        # (its moments decay, its momentum still moves it, weight decay applies): PyTorch with
        # zero_grad(set_to_none=False). With set_to_none=True AdamW would skip the head instead.
        for ln in lnames:
            if leaves[ln].grad is None:
                leaves[ln].grad = torch.zeros_like(leaves[ln])
        params = [leaves[ln] for ln in lnames]
        norm = torch.nn.utils.clip_grad_norm_(params, OPT["grad_clip"])
        lr = G.lr_at(s, OPT["lr"], OPT["warmup"], OPT["steps"], OPT["schedule"], OPT["min_lr_frac"])
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        step_loss.append(ls.item())
        step_lr.append(lr)
        step_norm.append(norm.item())
    for t in range(2):
        out[f"inputs.{t}"] = batches[t]["idx"].int()
        out[f"lengths.{t}"] = batches[t]["lengths"].int()
        out[f"labels.{t}"] = batches[t]["labels"].int()
    out["inputs.2"] = idx.int()
    out["targets.2"] = tgt.int()
    out["param.cls_w"] = cls_w.float()
    out["step_loss"] = torch.tensor(step_loss).float()
    out["step_lr"] = torch.tensor(step_lr).float()
    out["step_gradnorm"] = torch.tensor(step_norm).float()
    for n in names:
        lns = leaf_names(n)
        g = [grads[ln] for ln in lns]
        out[f"grad.{n}"] = (torch.stack(g) if n in layered else g[0]).float()
        fl = [leaves[ln].detach() for ln in lns]
        out[f"final.{n}"] = (torch.stack(fl) if n in layered else fl[0]).float()
    meta = {k: str(v) for k, v in OPT.items()}
    meta.update(method="multitask", B=str(B), T=str(T), label_smoothing=str(eps),
                weights=",".join(str(w) for w in MT_WEIGHTS), classes=",".join(str(k) for k in MT_CLASSES))
    path = "ref/method_multitask.safetensors"
    save_safetensors(path, [(k, v.numpy()) for k, v in out.items()], meta)
    print(f"multitask loss {total.item():.6f}  steps {step_loss[0]:.4f} -> {step_loss[-1]:.4f}  "
          f"norms {min(step_norm):.2f}-{max(step_norm):.2f}  {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    if sys.argv[1:] == ["multitask"]:  # only the multi-task file (the others stay byte-identical)
        torch.manual_seed(0)
        cfg_, base_ = read_llmc("ref/gpt_a.bin")
        ref_, _m = load_safetensors("ref/ref_a.safetensors")
        multitask(cfg_, {k: v.double() for k, v in base_.items()}, torch.from_numpy(ref_["inputs"].copy()).long(),
                  torch.from_numpy(ref_["targets"].copy()).long(), torch.Generator().manual_seed(4321))
    else:
        main()
