"""
Writes tiny Hugging Face Llama / Qwen2 model folders with random weights, the real tensor names and a
config.json with the key set of the released models (SmolLM2-135M's LlamaForCausalLM, Qwen2.5-0.5B's
Qwen2ForCausalLM), and next to each the logits a float64 PyTorch forward gives for fixed tokens. test_gpt.c
loads the folders with `--model DIR` (formats.c: load_hf_safetensors) and compares. The outputs are committed
under ref/, so `make test` needs no Python.

    /usr/bin/python3 dev/make_hf_llama.py            (from the repo root; writes ref/hf_llama_*)
    /usr/bin/python3 dev/make_hf_llama.py check DIR  (prints the float64 logits of any such folder, tokens below)
    /usr/bin/python3 dev/make_hf_llama.py big smollm2-135m|qwen2.5-0.5b DIR
        a folder at the real model's shape (config.json of the same keys, BF16 random weights, no reference):
        for timing and memory of loading and training at that size; not committed (270 MB / 990 MB)
    /usr/bin/python3 dev/make_hf_llama.py peft BASE_DIR PEFT_DIR MERGED_DIR
        applies a PEFT LoRA adapter (./train export --format peft) to a Hugging Face base folder the way PEFT
        does (peft_apply below), and compares its float64 logits with those of MERGED_DIR (./train export
        --format safetensors --merge 1 of the same model): our file means what our merge computes

transformers is not installed here: the forward below is written from the definitions of
transformers' LlamaForCausalLM / Qwen2ForCausalLM / LlamaForSequenceClassification (RMSNorm in the
input's precision, rotate_half RoPE with inv_freq = theta^(-2i/hs), linear rope_scaling dividing the
positions by factor, grouped-query attention by repeat_kv, SwiGLU MLP down(silu(gate(x)) * up(x)),
Qwen2's q/k/v biases, the tied or separate lm_head, and the sequence head on the last token).

Every weight is a multiple of 1/1024 below 1/4 in size (and the RMSNorm weights 1 + k/128, |k| <= 32), so
it is exact in BF16 (8 significant bits) and F16 (11): the F32, F16 and BF16 files of one model hold the
same numbers, and a loader must give bit-identical models from all three.

Folders (each: config.json, model.safetensors, ref_logits.safetensors):
  hf_llama_f32     LlamaForCausalLM, tied embeddings, L=2 C=16 NH=2 NKV=1 F=40 V=80, F32
  hf_llama_f16     the same weights in F16
  hf_llama_bf16    the same weights in BF16
  hf_llama_untied  separate lm_head.weight, rope_scaling linear (factor 2), NKV = NH = 2, F=24, F32
  hf_qwen2         Qwen2ForCausalLM: q/k/v biases, rms_norm_eps 1e-6, rope_theta 1e6, BF16
  hf_llama_cls     LlamaForSequenceClassification: score.weight (3, C), no lm_head, F32
ref_logits.safetensors: tokens (B, T) I32, and logits (B, T, V) F32, or for the classifier cls_logits (B, K)
at the last position; all rows are full length (no padding).
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True
OUT = "ref"
B, T = 2, 8
TOKENS = [[1, 7, 42, 79, 0, 13, 5, 64], [60, 2, 2, 33, 71, 9, 50, 18]]


# ----------------------------------------------------------------------------- safetensors, any dtype
def st_bytes(arr, dtype):
    """float64 array (already exact in dtype) -> (safetensors dtype code, little-endian bytes)."""
    if dtype == "F32":
        return np.ascontiguousarray(arr, dtype="<f4").tobytes()
    if dtype == "F16":
        h = np.ascontiguousarray(arr, dtype="<f2")
        assert np.array_equal(h.astype(np.float64), arr), "a value is not exact in F16"
        return h.tobytes()
    if dtype == "BF16":  # the top 16 bits of the float32: exact because the low 16 are zero
        bits = np.ascontiguousarray(arr, dtype="<f4").view("<u4")
        assert not (bits & 0xFFFF).any(), "a value is not exact in BF16"
        return (bits >> 16).astype("<u2").tobytes()
    if dtype == "I32":
        return np.ascontiguousarray(arr, dtype="<i4").tobytes()
    raise ValueError(dtype)


def save_safetensors(path, tensors, dtype):
    """tensors: {name: float64 array}; written sorted by name, as safetensors' save_file does."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        arr = tensors[name]
        code = "I32" if arr.dtype.kind == "i" else dtype
        raw = st_bytes(arr, code)
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)


def load_safetensors(path):
    """-> {name: float64 numpy array} (F32, F16, BF16, I32)"""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, e in header.items():
        b, en = e["data_offsets"]
        raw = data[8 + n + b:8 + n + en]
        d = e["dtype"]
        if d == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype("<u4") << 16).view("<f4")
        else:
            a = np.frombuffer(raw, dtype={"F32": "<f4", "F16": "<f2", "I32": "<i4"}[d])
        out[name] = a.astype(np.float64 if d != "I32" else np.int64).reshape(e["shape"])
    return out


# ----------------------------------------------------------------------------- the configs
def llama_config(L, C, NH, NKV, F, V, maxT, tied, rope_scaling=None, cls=0):
    """The key set of HuggingFaceTB/SmolLM2-135M's config.json, at a tiny shape."""
    c = {
        "architectures": ["LlamaForSequenceClassification" if cls else "LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "head_dim": C // NH,
        "hidden_act": "silu",
        "hidden_size": C,
        "initializer_range": 0.02,
        "intermediate_size": F,
        "is_llama_config": True,
        "max_position_embeddings": maxT,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": NH,
        "num_hidden_layers": L,
        "num_key_value_heads": NKV,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_interleaved": False,
        "rope_scaling": rope_scaling,
        "rope_theta": 100000,
        "tie_word_embeddings": tied,
        "torch_dtype": "float32",
        "transformers_version": "4.48.0",
        "use_cache": True,
        "vocab_size": V,
    }
    if cls:
        c["id2label"] = {str(k): f"LABEL_{k}" for k in range(cls)}
        c["label2id"] = {f"LABEL_{k}": k for k in range(cls)}
        c["pad_token_id"] = V - 1
    return c


def qwen2_config(L, C, NH, NKV, F, V, maxT):
    """The key set of Qwen/Qwen2.5-0.5B's config.json, at a tiny shape."""
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": V - 2,
        "eos_token_id": V - 1,
        "hidden_act": "silu",
        "hidden_size": C,
        "initializer_range": 0.02,
        "intermediate_size": F,
        "max_position_embeddings": maxT,
        "max_window_layers": L,
        "model_type": "qwen2",
        "num_attention_heads": NH,
        "num_hidden_layers": L,
        "num_key_value_heads": NKV,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": maxT,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.40.1",
        "use_cache": True,
        "use_mrope": False,
        "use_sliding_window": False,
        "vocab_size": V,
    }


# ----------------------------------------------------------------------------- random weights, exact in BF16
def weights(cfg, seed, cls=0):
    """{HF name: float64 array}. Matrices: N(0, 0.1) rounded to k/1024, |k| <= 255; biases the same;
    RMSNorm weights 1 + k/128, |k| <= 32 (not all ones, so swapped norms would show). Larger than HF's
    N(0, 0.02) init so that attention is far from uniform and RoPE, GQA and each mapping show in the logits
    (sensitivity() checks that)."""
    g = torch.Generator().manual_seed(seed)
    C, L, V, F = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"], cfg["intermediate_size"]
    NH, NKV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    KV = NKV * (C // NH)

    def mat(*shape):
        x = torch.randn(*shape, generator=g, dtype=torch.float64) * 0.1
        return (torch.round(x * 1024).clamp(-255, 255) / 1024).numpy()

    def norm(n):
        return (1 + torch.randint(-32, 33, (n,), generator=g).double() / 128).numpy()

    w = {"model.embed_tokens.weight": mat(V, C)}
    for l in range(L):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = norm(C)
        w[p + "self_attn.q_proj.weight"] = mat(C, C)
        w[p + "self_attn.k_proj.weight"] = mat(KV, C)
        w[p + "self_attn.v_proj.weight"] = mat(KV, C)
        if cfg["model_type"] == "qwen2":  # Qwen2Attention: bias=True on q, k, v (not o)
            w[p + "self_attn.q_proj.bias"] = mat(C)
            w[p + "self_attn.k_proj.bias"] = mat(KV)
            w[p + "self_attn.v_proj.bias"] = mat(KV)
        w[p + "self_attn.o_proj.weight"] = mat(C, C)
        w[p + "post_attention_layernorm.weight"] = norm(C)
        w[p + "mlp.gate_proj.weight"] = mat(F, C)
        w[p + "mlp.up_proj.weight"] = mat(F, C)
        w[p + "mlp.down_proj.weight"] = mat(C, F)
    w["model.norm.weight"] = norm(C)
    if cls:
        w["score.weight"] = mat(cls, C)
    elif not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = mat(V, C)
    return w


# ----------------------------------------------------------------------------- the forward, float64
def rms_norm(x, w, eps):
    """LlamaRMSNorm: w * x / sqrt(mean(x^2) + eps)"""
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def forward(cfg, w, tokens, variant=None):
    """-> logits (B, T, V), or with score.weight the class logits (B, K) at the last position.
    variant: a deliberate mistake, for sensitivity(): "no_rope", "no_scaling",
    "tile_kv", "swap_gate_up", "swap_kv"."""
    t = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in w.items()}
    C, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    NH, NKV = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    hs, eps = C // NH, cfg["rms_norm_eps"]
    idx = torch.tensor(tokens)
    Bn, Tn = idx.shape
    x = t["model.embed_tokens.weight"][idx]
    # LlamaRotaryEmbedding: inv_freq_i = theta^(-2i/hs); linear scaling divides the positions by factor
    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs))
    rs = cfg.get("rope_scaling") or {}
    linear = rs.get("rope_type", rs.get("type")) == "linear" and variant != "no_scaling"
    pos = torch.arange(Tn, dtype=torch.float64) / (rs["factor"] if linear else 1.0)
    freqs = pos[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.ones(Tn, Tn, dtype=torch.bool).tril()

    def lin(name, v):
        y = v @ t[name + ".weight"].T
        return y + t[name + ".bias"] if name + ".bias" in t else y

    for l in range(L):
        p = f"model.layers.{l}."
        h = rms_norm(x, t[p + "input_layernorm.weight"], eps)
        q = lin(p + "self_attn.q_proj", h).view(Bn, Tn, NH, hs).transpose(1, 2)
        k = lin(p + "self_attn.k_proj", h).view(Bn, Tn, NKV, hs).transpose(1, 2)
        v = lin(p + "self_attn.v_proj", h).view(Bn, Tn, NKV, hs).transpose(1, 2)
        if variant == "swap_kv":
            k, v = v, k
        if variant != "no_rope":
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        if variant == "tile_kv":  # kv head h % NKV instead of h // (NH/NKV)
            k, v = k.repeat(1, NH // NKV, 1, 1), v.repeat(1, NH // NKV, 1, 1)
        else:
            k, v = k.repeat_interleave(NH // NKV, dim=1), v.repeat_interleave(NH // NKV, dim=1)  # repeat_kv
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(Bn, Tn, C)
        x = x + lin(p + "self_attn.o_proj", y)
        h = rms_norm(x, t[p + "post_attention_layernorm.weight"], eps)
        gate, up = lin(p + "mlp.gate_proj", h), lin(p + "mlp.up_proj", h)
        if variant == "swap_gate_up":
            gate, up = up, gate
        x = x + lin(p + "mlp.down_proj", torch.nn.functional.silu(gate) * up)
    x = rms_norm(x, t["model.norm.weight"], eps)
    if "score.weight" in t:
        return x[:, -1, :] @ t["score.weight"].T
    head = t["lm_head.weight"] if "lm_head.weight" in t else t["model.embed_tokens.weight"]
    return x @ head.T


def self_check(cfg):
    """rotate_half RoPE equals the spec's formula: each pair (x_i, x_{i+half}) turned by the angle
    t * inv_freq_i (here t = 3)."""
    hs = cfg["hidden_size"] // cfg["num_attention_heads"]
    x = torch.randn(hs, dtype=torch.float64)
    ang = 3 * 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs))
    h = hs // 2
    y = torch.cat((x[:h] * ang.cos() - x[h:] * ang.sin(), x[h:] * ang.cos() + x[:h] * ang.sin()))
    emb = torch.cat((ang, ang))
    assert torch.allclose(x * emb.cos() + rotate_half(x) * emb.sin(), y, atol=1e-14)


def sensitivity(cfg, w):
    """Each deliberate mistake moves the reference by far more than test_gpt.c's tolerance (1e-5): a loader
    or forward that made it could not pass. Returns the smallest change."""
    out = forward(cfg, w, TOKENS)
    kinds = ["no_rope", "swap_gate_up", "swap_kv"] + (["tile_kv"] if cfg["num_key_value_heads"] not in (1, cfg["num_attention_heads"]) else [])
    kinds += ["no_scaling"] if cfg.get("rope_scaling") else []
    moved = {k: (forward(cfg, w, TOKENS, k) - out).abs().max().item() for k in kinds}
    assert min(moved.values()) > 1e-2, moved
    return ", ".join(f"{k} {v:.3f}" for k, v in moved.items())


def write_folder(name, cfg, w, dtype):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    cfg = dict(cfg, torch_dtype={"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype])
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    save_safetensors(os.path.join(d, "model.safetensors"), w, dtype)
    # the file must read back as the same numbers
    back = load_safetensors(os.path.join(d, "model.safetensors"))
    assert sorted(back) == sorted(w) and all(np.array_equal(back[k], w[k]) for k in w)
    out = forward(cfg, back, TOKENS)
    key = "cls_logits" if "score.weight" in w else "logits"
    save_safetensors(os.path.join(d, "ref_logits.safetensors"),
                     {"tokens": np.array(TOKENS, dtype=np.int32), key: out.numpy()}, "F32")
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"{d}: {cfg['architectures'][0]} {dtype}, {len(w)} tensors, {size} bytes; {key} {tuple(out.shape)} "
          f"|max| {out.abs().max().item():.4f}; mistakes move it by {sensitivity(cfg, back)}")


def peft_apply(cfg, w, peft_dir):
    """PEFT's LoRA on a Llama: a module (full name "model.layers.N.self_attn.q_proj") gets LoRA when it
    equals or ends with "." + a target_modules entry (a list), or re.fullmatch-es it (a string), and its layer
    is in layers_to_transform when that is set; then W + (lora_alpha / r) B A (sqrt(r) with use_rslora).
    Every adapter tensor must be used, and every such module must get both A and B."""
    import re
    with open(os.path.join(peft_dir, "adapter_config.json")) as f:
        ac = json.load(f)
    assert ac["peft_type"] == "LORA" and not ac.get("use_dora") and ac.get("bias", "none") == "none"
    ad = load_safetensors(os.path.join(peft_dir, "adapter_model.safetensors"))
    r, tm, layers = ac["r"], ac["target_modules"], ac.get("layers_to_transform")
    scale = ac["lora_alpha"] / (math.sqrt(r) if ac.get("use_rslora") else r)
    w, used = dict(w), set()
    for name in list(w):
        if not name.endswith(".weight") or name == "model.embed_tokens.weight":
            continue
        mod = name[:-len(".weight")]
        hit = re.fullmatch(tm, mod) is not None if isinstance(tm, str) else any(mod == t or mod.endswith("." + t) for t in tm)
        m = re.match(r"model\.layers\.(\d+)\.", mod)
        if hit and layers is not None and not isinstance(tm, str):
            hit = m is not None and int(m.group(1)) in layers
        if not hit:
            continue
        ka, kb = f"base_model.model.{mod}.lora_A.weight", f"base_model.model.{mod}.lora_B.weight"
        assert ka in ad and kb in ad, f"{mod} is targeted but the adapter lacks {ka} or {kb}"
        assert ad[ka].shape == (r, w[name].shape[1]) and ad[kb].shape == (w[name].shape[0], r)
        w[name] = w[name] + scale * (ad[kb] @ ad[ka])
        used |= {ka, kb}
    for k in ac.get("modules_to_save") or []:
        key = f"base_model.model.{k}.weight"
        w[f"{k}.weight"] = ad[key]
        used.add(key)
    assert used == set(ad), f"adapter tensors PEFT would not use: {sorted(set(ad) - used)}"
    return w, len(used)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "big":
        shapes = {  # HuggingFaceTB/SmolLM2-135M and Qwen/Qwen2.5-0.5B's config.json
            "smollm2-135m": lambda: llama_config(30, 576, 9, 3, 1536, 49152, 8192, tied=True),
            "qwen2.5-0.5b": lambda: qwen2_config(24, 896, 14, 2, 4864, 151936, 32768),
        }
        cfg = shapes[sys.argv[2]]()
        if cfg["model_type"] == "llama":
            cfg["head_dim"] = 64
        d = sys.argv[3]
        os.makedirs(d, exist_ok=True)
        cfg["torch_dtype"] = "bfloat16"
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        w = weights(cfg, 5)
        save_safetensors(os.path.join(d, "model.safetensors"), w, "BF16")
        print(f"{d}: {sys.argv[2]} shape, {sum(v.size for v in w.values())} parameters, BF16")
        return
    if len(sys.argv) == 5 and sys.argv[1] == "peft":
        base, peft_dir, merged = sys.argv[2:]
        with open(os.path.join(base, "config.json")) as f:
            cfg = json.load(f)
        w, n = peft_apply(cfg, load_safetensors(os.path.join(base, "model.safetensors")), peft_dir)
        with open(os.path.join(merged, "config.json")) as f:
            mcfg = json.load(f)
        a = forward(cfg, w, TOKENS)
        b = forward(mcfg, load_safetensors(os.path.join(merged, "model.safetensors")), TOKENS)
        d = (a - b).abs().max().item()
        moved = (a - forward(cfg, load_safetensors(os.path.join(base, "model.safetensors")), TOKENS)).abs().max().item()
        print(f"peft: {n} adapter tensors applied as PEFT does; logits against the merged export: max |d| = {d:.2e} "
              f"(the adapter moves them by {moved:.3f})")
        sys.exit(0 if d < 1e-5 else 1)
    if len(sys.argv) == 3 and sys.argv[1] == "check":
        with open(os.path.join(sys.argv[2], "config.json")) as f:
            cfg = json.load(f)
        out = forward(cfg, load_safetensors(os.path.join(sys.argv[2], "model.safetensors")), TOKENS)
        np.set_printoptions(precision=6, suppress=True, linewidth=160)
        print(out.numpy())
        return
    # L, C, NH, NKV, F, V, maxT: C=16 with 2 heads of 8 and 1 kv head (GQA 2:1), F=40 (not 4C, not a
    # multiple of 32), V=80 (padded to 128 by us), maxT=64
    base = llama_config(2, 16, 2, 1, 40, 80, 64, tied=True)
    self_check(base)
    w = weights(base, 1)
    for dtype in ("F32", "F16", "BF16"):
        write_folder(f"hf_llama_{dtype.lower()}", base, w, dtype)
    untied = llama_config(2, 16, 2, 2, 24, 80, 64, tied=False, rope_scaling={"rope_type": "linear", "factor": 2.0})
    write_folder("hf_llama_untied", untied, weights(untied, 2), "F32")
    qwen = qwen2_config(2, 16, 4, 2, 32, 80, 64)  # hs = 4
    write_folder("hf_qwen2", qwen, weights(qwen, 3), "BF16")
    cls = llama_config(2, 16, 2, 1, 40, 80, 64, tied=True, cls=3)
    write_folder("hf_llama_cls", cls, weights(cls, 4, cls=3), "F32")


if __name__ == "__main__":
    main()
