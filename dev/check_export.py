"""
Checks an export from `./train export --format safetensors` independently of the C loader: reads the
Hugging Face files with this folder's own safetensors reader (dev/gen_reference.py), runs the GPT-2 of
dev/gpt_torch.py in float64 on the first batch of a token file, and compares the mean loss with what
`./train eval --max-batches 1` prints for the same batch.

    /usr/bin/python3 dev/check_export.py HF_DIR TOKENS.bin B T "<json line from ./train eval>"

Where transformers is installed, also loads HF_DIR with GPT2LMHeadModel and compares its loss.
"""
import json
import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_torch as G  # noqa: E402
from gen_reference import read_hf  # noqa: E402


def main():
    hf_dir, tokens, B, T, ours = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5])
    with open(os.path.join(hf_dir, "config.json")) as f:
        V = json.load(f)["vocab_size"]
    cfg, stacked = read_hf(hf_dir, (V + 63) // 64 * 64)
    raw = open(tokens, "rb").read()
    h = np.frombuffer(raw[:1024], dtype="<i4")
    width = 2 if h[0] == 20240520 else int(h[2])
    ids = np.frombuffer(raw[1024:1024 + (B * T + 1) * width], dtype="<u2" if width == 2 else "<u4").astype(np.int64)
    x = torch.from_numpy(ids[:-1].reshape(B, T))
    y = torch.from_numpy(ids[1:].reshape(B, T))
    leaves = G.to_leaves({k: v.double() for k, v in stacked.items()}, cfg, requires_grad=False)
    _, loss = G.forward(leaves, x, cfg, y)
    rel = abs(loss.item() - ours["loss"]) / ours["loss"]
    print(f"gpt_torch on the exported files: loss {loss.item():.6f}, ./train eval {ours['loss']:.6f}, rel diff {rel:.1e}")
    ok = rel < 1e-5
    try:
        from transformers import GPT2LMHeadModel  # not in Debian's python3-torch; on machines that have it
        m = GPT2LMHeadModel.from_pretrained(hf_dir).double().eval()
        with torch.no_grad():
            out = m(x, labels=x)  # HF shifts labels itself: same targets as y
        rel2 = abs(out.loss.item() - ours["loss"]) / ours["loss"]
        print(f"transformers GPT2LMHeadModel: loss {out.loss.item():.6f}, rel diff {rel2:.1e}")
        ok = ok and rel2 < 1e-5
    except ImportError:
        print("transformers not installed: checked with gpt_torch only")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
