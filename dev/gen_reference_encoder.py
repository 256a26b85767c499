"""
PyTorch references for the encoder (--arch encoder, BERT-style): bidirectional attention, masked-LM
loss on given masked positions, and the classification head pooled at position 0 ([CLS]). Written
from the math in float64 on the weights of config a (ref/gpt_a.bin, from dev/gen_reference.py; run
that first), read as an encoder whose [MASK] (= [CLS]) id is V-1 = 499.

    /usr/bin/python3 dev/gen_reference_encoder.py      -> ref/encoder_<case>.safetensors

Cases (test_gpt.c's test_method reads them like the method files, plus "arch" and "mask_id" metadata):
  mlm     every weight trained on the masked-LM loss: inputs with 15% of positions picked (80% -> [MASK],
          10% a random id, 10% kept), targets the original ids there and -1 elsewhere, no shift
  cls     a 3-class head on position 0 of rows that start with [CLS], padded after their lengths (the
          padding is never a key: the encoder's attention mask), class weights and label smoothing
  prefix  prefix-tuning (P=3, only the prefix trains) on the masked-LM batch: the prefix composes with
          bidirectional attention
Each file: the fine-tuning tensors' starting values, the trainable mask and LR scales, the batch,
logits, loss, the gradient of every trainable tensor, and 10 AdamW steps ("step_loss", "step_lr",
"step_gradnorm", "final.<name>"), as dev/gen_reference_methods.py writes them.
Self-checks (assert): with causal=True this forward is gen_reference_methods.forward_ft (the same
model, only the mask differs); the encoder's logits at position 0 depend on the last token (they do
not in GPT-2); a class row's logits do not depend on its padding tokens.
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
from gen_reference import load_safetensors, read_llmc, save_safetensors  # noqa: E402

torch.set_default_dtype(torch.float64)
OPT = M.OPT


def forward_enc(p, idx, cfg, m, causal=False, targets=None, lengths=None, labels=None, class_weights=None):
    """
    The model of gen_reference_methods.forward_ft (GPT-2 blocks, LoRA/adapters/prefix, tied LM head or
    class head), with the attention mask as a switch. causal=False (the encoder): query t sees every
    prefix position and every key of its row before lengths[b] (all T without lengths); the class head
    reads position 0. causal=True: GPT-2's mask and the last real token, as forward_ft.
    """
    B, T = idx.shape
    C, NH, V, L = cfg["C"], cfg["NH"], cfg["V"], cfg["L"]
    hs, P = C // NH, m.get("prefix_len", 0)
    h = p["wte"][idx] + p["wpe"][torch.arange(T)]
    n = lengths if lengths is not None else torch.full((B,), T)
    if causal:
        seq = torch.ones(T, T, dtype=torch.bool).tril().expand(B, T, T)          # key <= query
    else:
        seq = (torch.arange(T)[None, None, :] < n[:, None, None]).expand(B, T, T)  # key < the row's length
    mask = torch.cat([torch.ones(B, T, P, dtype=torch.bool), seq], dim=2)[:, None]  # (B,1,T,P+T)
    for l in range(L):
        a = G.layernorm(h, p[f"ln1w.{l}"], p[f"ln1b.{l}"])
        q, k, v = G.linear(a, p[f"qkvw.{l}"], p[f"qkvb.{l}"]).split(C, dim=-1)
        q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in (q, k, v))       # (B,NH,T,hs)
        if P:
            pk = p[f"prefix_k.{l}"].view(P, NH, hs).transpose(0, 1).expand(B, NH, P, hs)
            pv = p[f"prefix_v.{l}"].view(P, NH, hs).transpose(0, 1).expand(B, NH, P, hs)
            k, v = torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)                             # (B,NH,T,P+T)
        att = F.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        h = h + G.linear(y, p[f"attprojw.{l}"], p[f"attprojb.{l}"])
        mm = G.layernorm(h, p[f"ln2w.{l}"], p[f"ln2b.{l}"])
        h = h + G.linear(G.gelu(G.linear(mm, p[f"fcw.{l}"], p[f"fcb.{l}"])), p[f"fcprojw.{l}"], p[f"fcprojb.{l}"])
    h = G.layernorm(h, p["lnfw"], p["lnfb"])
    if m.get("num_classes"):
        pooled = h[torch.arange(B), n - 1] if causal else h[:, 0]                   # (B,C): last token / [CLS]
        logits = F.linear(pooled, p["cls_w"])                                       # (B,K)
        loss = F.cross_entropy(logits, labels, weight=class_weights, label_smoothing=m.get("label_smoothing", 0.0))
        return logits, loss
    logits = F.linear(h, p["wte"])[..., :V]                                         # tied head, (B,T,V)
    loss = None
    if targets is not None:  # masked LM: the target at t is the original token at t (no shift), -1 elsewhere
        loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-1)
    return logits, loss


def mlm_batch(idx, mask_id, gen):
    """BERT's rule, drawn here with torch's generator: round(15% of T) positions per row, 80/10/10."""
    B, T = idx.shape
    x, tgt = idx.clone(), torch.full_like(idx, -1)
    n = max(1, round(0.15 * T))
    for b in range(B):
        pos = torch.randperm(T, generator=gen)[:n]
        tgt[b, pos] = idx[b, pos]
        for t in pos.tolist():
            u = torch.rand((), generator=gen).item()
            if u < 0.8:
                x[b, t] = mask_id
            elif u < 0.9:
                x[b, t] = int(torch.randint(0, mask_id, (), generator=gen))
    return x, tgt


CASES = {
    "mlm": dict(train="all"),
    "cls": dict(num_classes=3, label_smoothing=0.1, train="all"),
    "prefix": dict(prefix_len=3, train="peft"),
}


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2024)
    cfg, base = read_llmc("ref/gpt_a.bin")
    ref_a, _meta = load_safetensors("ref/ref_a.safetensors")
    idx0 = torch.from_numpy(ref_a["inputs"].copy()).long()
    B, T, L, V = idx0.shape[0], idx0.shape[1], cfg["L"], cfg["V"]
    mask_id = V - 1
    idx0 = idx0.clamp(max=mask_id - 1)  # the text's ids stay below [MASK]
    base = {k: v.double() for k, v in base.items()}
    mlm_x, mlm_t = mlm_batch(idx0, mask_id, gen)
    assert (mlm_t >= 0).sum(1).eq(max(1, round(0.15 * T))).all()
    for name, m in CASES.items():
        per_layer, glob = M.peft_shapes(cfg, m)
        stacked = dict(base)
        for n, shp in per_layer:
            stacked[n] = 0.1 * torch.randn((L,) + shp, generator=gen)
        for n, shp in glob:
            stacked[n] = 0.1 * torch.randn(shp, generator=gen)
        names = [n for n, *_ in G.PARAMS] + [n for n, _ in per_layer] + [n for n, _ in glob]
        layered = {n for n, *_r in G.PARAMS if _r[1]} | {n for n, _ in per_layer}
        leaves = {}
        for n in names:
            if n in layered:
                for l in range(L):
                    leaves[f"{n}.{l}"] = stacked[n][l].clone().requires_grad_(True)
            else:
                leaves[n] = stacked[n].clone().requires_grad_(True)
        base_names = [x for x, *_ in G.PARAMS]
        trainable = {n: [1 if (m["train"] == "all" or n not in base_names) else 0] * (L if n in layered else 1) for n in names}
        lr_scale = {n: [1.0] * (L if n in layered else 1) for n in names}

        def leaf_names(n):
            return [f"{n}.{l}" for l in range(L)] if n in layered else [n]
        train_leaves = [(ln, n, i) for n in names for i, ln in enumerate(leaf_names(n)) if trainable[n][i]]

        K = m.get("num_classes", 0)
        kw = {}
        if K:
            lengths = torch.tensor([T, T - 5, 3, T - 1][:B])
            idx = idx0.clone()
            idx[:, 0] = mask_id  # [CLS] first
            for b in range(B):
                idx[b, lengths[b]:] = 0  # padding, as the loader pads
            kw = dict(lengths=lengths, labels=torch.tensor([2, 0, 1, 2][:B]), class_weights=torch.tensor([0.5, 2.0, 1.25]))
            # self-check: the padding is never seen (other padding tokens, the same logits)
            other = idx.clone()
            for b in range(B):
                other[b, lengths[b]:] = 7
            with torch.no_grad():
                la, _ = forward_enc(leaves, idx, cfg, m, **kw)
                lb, _ = forward_enc(leaves, other, cfg, m, **kw)
            assert torch.allclose(la, lb, rtol=0, atol=1e-12), "padding leaked into the class logits"
        else:
            idx = mlm_x
            kw = dict(targets=mlm_t)
        with torch.no_grad():  # self-checks: causal=True is forward_ft; bidirectional sees the future
            ce, _ = forward_enc(leaves, idx, cfg, m, causal=True, **kw)
            cf, _ = M.forward_ft(leaves, idx, cfg, m, **kw)
            assert torch.allclose(ce, cf, rtol=0, atol=1e-12), "forward_enc(causal=True) differs from forward_ft"
            if not K:
                x2 = idx.clone()
                x2[:, -1] = (x2[:, -1] + 1) % mask_id
                e1, _ = forward_enc(leaves, idx, cfg, m)
                e2, _ = forward_enc(leaves, x2, cfg, m)
                c1, _ = forward_enc(leaves, idx, cfg, m, causal=True)
                c2, _ = forward_enc(leaves, x2, cfg, m, causal=True)
                assert (e1[:, 0] - e2[:, 0]).abs().max() > 1e-6 and torch.equal(c1[:, 0], c2[:, 0])

        def loss_fn():
            return forward_enc(leaves, idx, cfg, m, **kw)

        logits, loss = loss_fn()
        loss.backward()
        grads = {ln: leaves[ln].grad.clone() for ln, _n, _i in train_leaves}
        groups = [dict(params=[leaves[ln]], scale=lr_scale[n][i],
                       weight_decay=OPT["weight_decay"] if M.decays_name(n) else 0.0) for ln, n, i in train_leaves]
        opt = torch.optim.AdamW(groups, lr=OPT["lr"], betas=(OPT["beta1"], OPT["beta2"]), eps=OPT["eps"])
        for leaf in leaves.values():
            leaf.grad = None
        step_loss, step_lr, step_norm = [], [], []
        for s in range(OPT["steps"]):
            opt.zero_grad(set_to_none=True)
            _, ls = loss_fn()
            ls.backward()
            norm = torch.nn.utils.clip_grad_norm_([leaves[ln] for ln, _n, _i in train_leaves], OPT["grad_clip"])
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
        else:
            out["targets"] = kw["targets"].int()
        for n in names:
            out[f"trainable.{n}"] = torch.tensor(trainable[n]).int()
            out[f"lr_scale.{n}"] = torch.tensor(lr_scale[n]).float()
            if n not in base_names:
                out[f"param.{n}"] = stacked[n].float()
            if any(trainable[n]):
                lns = leaf_names(n)
                gl = [grads[ln] if trainable[n][i] else torch.zeros_like(leaves[ln]) for i, ln in enumerate(lns)]
                out[f"grad.{n}"] = (torch.stack(gl) if n in layered else gl[0]).float()
                fl = [leaves[ln].detach() for ln in lns]
                out[f"final.{n}"] = (torch.stack(fl) if n in layered else fl[0]).float()
        meta = {k: str(v) for k, v in m.items() if k != "train"}
        meta.update({k: str(v) for k, v in OPT.items()})
        meta.update(method=f"encoder_{name}", B=str(B), T=str(T), arch="1", mask_id=str(mask_id))
        path = f"ref/encoder_{name}.safetensors"
        save_safetensors(path, [(k, v.numpy()) for k, v in out.items()], meta)
        print(f"{name:8s} loss {loss.item():.6f}  steps {step_loss[0]:.4f} -> {step_loss[-1]:.4f}  "
              f"norms {min(step_norm):.2f}-{max(step_norm):.2f}  {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
