"""
Checks a PEFT adapter written by `./train export --format peft` the way Hugging Face PEFT uses one, without the
peft package (Debian's python3-torch has none): GPT-2 is built here from torch.nn modules named as transformers
names them (transformer.h.N.attn.c_attn, ... Conv1D layers holding (in, out) weights), the base is loaded from
a Hugging Face export, and adapter_config.json is applied as PEFT's LoRA applies it:
  - a module gets LoRA if its full name re.fullmatch-es target_modules (a regex string), or, for a list, equals
    or ends with "." + one of the names, restricted to layers_to_transform when that is set (layers_pattern h)
  - it becomes base(x) + lora_B(lora_A(x)) * scaling, lora_A = nn.Linear(in, r), lora_B = nn.Linear(r, out),
    scaling = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora); dropout is off at inference
  - adapter_model.safetensors' keys "base_model.model.<module>.lora_A.weight" load into those, every one of
    them used and every LoRA module given both; modules_to_save ("score") replace the base module's weight
  - merging (merge_and_unload) adds transpose(B A) * scaling to the Conv1D weight when fan_in_fan_out is true
Compared in float64:
  1. the logits of base + adapter (unmerged) against the model ./train export --merge 1 wrote (our merge)
  2. PEFT's merge of the same adapter against 1's unmerged logits
  3. with a token file: the mean loss on its first batch against ./train eval --adapter PEFT_DIR (our forward)

    /usr/bin/python3 dev/check_peft.py BASE_HF PEFT_DIR MERGED_HF [TOKENS.bin B T '<json line of ./train eval>']
"""
import json
import math
import os
import re
import sys

import numpy as np
import torch
import torch.nn as nn

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_torch as G  # noqa: E402
from gen_reference import load_safetensors  # noqa: E402

torch.set_default_dtype(torch.float64)


# ----------------------------------------------------------------------------- GPT-2 with transformers' names
class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D: y = x @ W + b with W stored (in, out)."""

    def __init__(self, nin, nout):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(nin, nout))
        self.bias = nn.Parameter(torch.zeros(nout))

    def forward(self, x):
        return x @ self.weight + self.bias


class Attention(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.NH, self.c_attn, self.c_proj = NH, Conv1D(C, 3 * C), Conv1D(C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.NH, C // self.NH).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.NH)
        att = att.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")).softmax(-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, C, F):
        super().__init__()
        self.c_fc, self.c_proj = Conv1D(C, F), Conv1D(F, C)

    def forward(self, x):
        return self.c_proj(G.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, C, NH, F):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(C, eps=1e-5), Attention(C, NH)
        self.ln_2, self.mlp = nn.LayerNorm(C, eps=1e-5), MLP(C, F)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    """GPT2LMHeadModel (tied head) or, with K classes, GPT2ForSequenceClassification (score, no bias)."""

    def __init__(self, cfg):
        super().__init__()
        C, F = cfg["n_embd"], cfg.get("n_inner") or 4 * cfg["n_embd"]
        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(cfg["vocab_size"], C)
        self.transformer.wpe = nn.Embedding(cfg["n_positions"], C)
        self.transformer.h = nn.ModuleList(Block(C, cfg["n_head"], F) for _ in range(cfg["n_layer"]))
        self.transformer.ln_f = nn.LayerNorm(C, eps=1e-5)
        self.score = nn.Linear(C, cfg["num_labels"], bias=False) if cfg.get("num_labels") else None

    def forward(self, idx):
        t = self.transformer
        x = t.wte(idx) + t.wpe(torch.arange(idx.shape[1]))
        for block in t.h:
            x = block(x)
        x = t.ln_f(x)
        # classification: every row is full length (no padding), so the pooled position is the last one
        return self.score(x[:, -1]) if self.score is not None else x @ t.wte.weight.T


def load_hf(dirname, num_labels=None):
    """A Hugging Face export (model.safetensors + config.json) -> GPT2 in float64. num_labels: load it as
    GPT2ForSequenceClassification with a new score head (as PEFT's SEQ_CLS base is), which the adapter replaces."""
    with open(os.path.join(dirname, "config.json")) as f:
        cfg = json.load(f)
    if num_labels:
        cfg["num_labels"] = num_labels
    model = GPT2(cfg)
    tensors, _ = load_safetensors(os.path.join(dirname, "model.safetensors"))
    state = {("transformer." + k if not k.startswith("score") else k): torch.from_numpy(v.astype(np.float64))
             for k, v in tensors.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and missing in ([], ["score.weight"]), (missing, unexpected)
    return model, cfg


# ----------------------------------------------------------------------------- PEFT's LoRA, re-enacted
class LoraConv1D(nn.Module):
    def __init__(self, base, r, scaling):
        super().__init__()
        nin, nout = base.weight.shape  # PEFT reads (in, out) off a Conv1D's weight
        self.base_layer, self.scaling = base, scaling
        self.lora_A, self.lora_B = nn.Linear(nin, r, bias=False), nn.Linear(r, nout, bias=False)

    def forward(self, x):
        return self.base_layer(x) + self.lora_B(self.lora_A(x)) * self.scaling

    def merged(self, fan_in_fan_out):
        delta = self.lora_B.weight @ self.lora_A.weight * self.scaling  # (out, in)
        self.base_layer.weight.data += delta.T if fan_in_fan_out else delta
        return self.base_layer


def targeted(cfg, name):
    """PEFT's check_target_module_exists for LoRA (no exclude_modules)."""
    tm = cfg["target_modules"]
    if isinstance(tm, str):
        return re.fullmatch(tm, name) is not None
    found = name in tm or any(name.endswith("." + t) for t in tm)
    layers = cfg.get("layers_to_transform")
    if found and layers is not None:
        m = re.match(r".*\.h\.(\d+)\.", name)  # layers_pattern: GPT-2 keeps its blocks in "h"
        found = m is not None and int(m.group(1)) in ([layers] if isinstance(layers, int) else layers)
    return found


def apply_peft(model, peft_dir):
    """Injects LoRA as adapter_config.json says and loads adapter_model.safetensors. Returns (model, cfg, names)."""
    with open(os.path.join(peft_dir, "adapter_config.json")) as f:
        cfg = json.load(f)
    assert cfg["peft_type"] == "LORA" and cfg.get("bias", "none") == "none" and not cfg.get("use_dora")
    assert cfg.get("fan_in_fan_out"), "GPT-2's Conv1D layers want fan_in_fan_out: true"
    r, alpha = cfg["r"], cfg["lora_alpha"]
    scaling = alpha / (math.sqrt(r) if cfg.get("use_rslora") else r)
    names = [n for n, m in model.named_modules() if isinstance(m, Conv1D) and targeted(cfg, n)]
    for n in names:
        parent, child = model.get_submodule(n.rsplit(".", 1)[0]), n.rsplit(".", 1)[1]
        setattr(parent, child, LoraConv1D(getattr(parent, child), r, scaling))
    tensors, _ = load_safetensors(os.path.join(peft_dir, "adapter_model.safetensors"))
    state = {}
    for k, v in tensors.items():
        assert k.startswith("base_model.model."), k
        state[k[len("base_model.model."):]] = torch.from_numpy(v.astype(np.float64))
    for m in cfg.get("modules_to_save") or []:
        assert f"{m}.weight" in state, f"modules_to_save {m}: no {m}.weight in the adapter"
    missing, unexpected = model.load_state_dict(state, strict=False)
    lora_missing = [k for k in missing if ".lora_" in k]
    assert not unexpected and not lora_missing, (unexpected, lora_missing)
    return model, cfg, names


def merge_peft(model, cfg, names):
    """PEFT's merge_and_unload: fold each LoRA into its Conv1D and put the Conv1D back."""
    for n in names:
        parent, child = model.get_submodule(n.rsplit(".", 1)[0]), n.rsplit(".", 1)[1]
        # on a Conv1D PEFT sets fan_in_fan_out to True whatever the config says (with a warning when it said False)
        setattr(parent, child, getattr(parent, child).merged(fan_in_fan_out=True))
    return model


def main():
    base_dir, peft_dir, merged_dir = sys.argv[1:4]
    with open(os.path.join(peft_dir, "adapter_config.json")) as f:
        seq_cls = json.load(f)["task_type"] == "SEQ_CLS"
    score, _ = load_safetensors(os.path.join(peft_dir, "adapter_model.safetensors"))
    K = score["base_model.model.score.weight"].shape[0] if seq_cls else None
    model, hcfg = load_hf(base_dir, K)
    if seq_cls:  # the base's logits with the adapter's head, so that "moves them" below is LoRA's doing alone
        model.score.weight.data = torch.from_numpy(score["base_model.model.score.weight"].astype(np.float64))
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        idx = torch.randint(0, hcfg["vocab_size"], (2, hcfg["n_positions"]), generator=g)
        base_logits = model(idx)
        model, cfg, names = apply_peft(model, peft_dir)
        lora_logits = model(idx)
        ours_merged, _ = load_hf(merged_dir)
        merged_logits = ours_merged(idx)
        peft_merged = merge_peft(model, cfg, names)(idx)
    print(f"target_modules {cfg['target_modules']!r} picked {len(names)} modules: {', '.join(names)}")
    d1 = (lora_logits - merged_logits).abs().max().item()
    d2 = (peft_merged - lora_logits).abs().max().item()
    moved = (lora_logits - base_logits).abs().max().item()
    scale = lora_logits.abs().max().item()
    print(f"logits {tuple(lora_logits.shape)}: the adapter moves them by up to {moved:.3e} (max |logit| {scale:.3f})")
    print(f"1. base + PEFT LoRA (unmerged) vs ./train export --merge 1: max |d| = {d1:.3e}")
    print(f"2. PEFT's merge (fan_in_fan_out) vs unmerged:               max |d| = {d2:.3e}")
    # the exported weights are fp32: our merge W + s B A is rounded once to fp32, so 1 differs by fp32 rounding of
    # the merged weights (~6e-8 relative) carried through the model; 2 is float64 both ways
    ok = moved > 1e3 * max(d1, 1e-300) and d1 <= 1e-5 * scale and d2 <= 1e-10 * scale
    if len(sys.argv) > 4:  # the loss of our forward (./train eval --adapter) on the first batch of a token file
        tokens, B, T, ours = sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), json.loads(sys.argv[7])
        raw = open(tokens, "rb").read()
        h = np.frombuffer(raw[:1024], dtype="<i4")
        width = 2 if h[0] == 20240520 else int(h[2])
        ids = np.frombuffer(raw[1024:1024 + (B * T + 1) * width], dtype="<u2" if width == 2 else "<u4").astype(np.int64)
        x, y = torch.from_numpy(ids[:-1].reshape(B, T)), torch.from_numpy(ids[1:].reshape(B, T))
        model, _ = load_hf(base_dir, K)
        model, _, _ = apply_peft(model, peft_dir)
        with torch.no_grad():
            logits = model(x)
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).item()
        rel = abs(loss - ours["loss"]) / ours["loss"]
        print(f"3. loss on the first batch: PEFT-style {loss:.7f}, ./train eval --adapter {ours['loss']:.7f}, rel diff {rel:.1e}")
        ok = ok and rel < 1e-5  # eval prints 6 decimals
    print("check_peft:", "OK" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
