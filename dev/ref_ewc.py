"""
Writes ref/ewc_b.safetensors: the PyTorch reference for EWC's diagonal Fisher estimate (continual.c).

    /usr/bin/python3 dev/ref_ewc.py          (from the repo root; needs torch and numpy, Debian's)

Never runs during build or `make test`: the output (about 240 KB) is committed.

The model is ref/gpt_b.bin (made by dev/gen_reference.py: L=3, NH=3, C=36, V=317, maxT=20), computed
with in float64 (the weights rounded to float32 first, as the file holds them). The data is a seeded
stream of N*T+1 = 79 token ids, cut as continual.c's Fisher loop cuts a token file with B=1: example k
has inputs tokens[kT .. kT+T) and targets tokens[kT+1 .. kT+T]. The estimate is the empirical Fisher
with per-example gradients:

    F_i = (1/N) sum_n (d loss_n / d theta_i)^2,   loss_n = mean cross-entropy over example n's T targets

(the gradient of the mean negative log-likelihood, so its square equals that of d log p / d theta_i).

Tensors written: "tokens" (N*T+1,) I32, and "fisher.<name>" for each of the 16 GPT-2 tensors in table
order, stacked over L, F32 (metadata: N, T).
"""
import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # no dev/__pycache__ next to the sources
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_reference as R  # noqa: E402  (read_llmc, save_safetensors)
import gpt_torch as G  # noqa: E402

N, T = 6, 13


def main():
    cfg, params = R.read_llmc("ref/gpt_b.bin")
    rng = np.random.default_rng(20261201)
    tokens = rng.integers(0, cfg["V"], size=N * T + 1).astype(np.int32)
    leaves = G.to_leaves({k: v.double() for k, v in params.items()}, cfg)
    fisher = {k: torch.zeros_like(v) for k, v in leaves.items()}
    for n in range(N):
        x = torch.from_numpy(tokens[n * T:n * T + T].astype(np.int64))[None, :]          # (1,T)
        y = torch.from_numpy(tokens[n * T + 1:n * T + T + 1].astype(np.int64))[None, :]  # (1,T)
        for v in leaves.values():
            v.grad = None
        _, loss = G.forward(leaves, x, cfg, targets=y)
        loss.backward()
        for k, v in leaves.items():
            fisher[k] += v.grad.detach() ** 2 / N
    # self-check: one entry of the estimate against a central difference of each example's loss
    k, idx = "qkvw.1", (5, 7)
    fd = 0.0
    with torch.no_grad():
        for n in range(N):
            x = torch.from_numpy(tokens[n * T:n * T + T].astype(np.int64))[None, :]
            y = torch.from_numpy(tokens[n * T + 1:n * T + T + 1].astype(np.int64))[None, :]
            orig, h = leaves[k][idx].item(), 1e-6
            leaves[k][idx] = orig + h
            lp = G.forward(leaves, x, cfg, targets=y)[1].item()
            leaves[k][idx] = orig - h
            lm = G.forward(leaves, x, cfg, targets=y)[1].item()
            leaves[k][idx] = orig
            fd += ((lp - lm) / (2 * h)) ** 2 / N
    got = fisher[k][idx].item()
    assert abs(fd - got) <= 1e-6 * abs(got) + 1e-12, (fd, got)
    stacked = G.stack(fisher, cfg)
    out = [("tokens", tokens)]
    for name, _shape, _d in G.param_shapes(cfg):
        out.append((f"fisher.{name}", stacked[name].numpy().astype(np.float32)))
    R.save_safetensors("ref/ewc_b.safetensors", out, {"N": N, "T": T})
    total = sum(float(v.sum()) for v in stacked.values())
    print(f"wrote ref/ewc_b.safetensors: N={N} T={T}, sum of F = {total:.6e}, finite-difference check {fd:.6e} vs {got:.6e}")


if __name__ == "__main__":
    main()
