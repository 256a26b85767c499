// lora.c: the parameter-efficient fine-tuning kernels and the classification head, each forward directly
// above its backward. model.h includes this file after its own kernels (these are built from them) and calls
// them from gpt_forward / gpt_backward when GPTConfig turns them on. The base weights they sit on are frozen
// by the trainer: a NULL gradient pointer means "frozen", exactly as in model.h.
#pragma once
#include "kernels.h"  // defines: matmul, gemm, dropout, gelu, residual (what these are built from)

// ---------------------------------------------------------------------------- LoRA
// out += (alpha/r) * (dropout(x) A^T) B^T: a rank-r update of a frozen projection W (Hu et al. 2021). PyTorch
// (PEFT): lora_B(lora_A(lora_dropout(x))) * scaling.  At init B = 0, so the model equals the base exactly.
// out: (N,OC) accumulated, rows ldo apart (ldo = OC, or wider when the projection writes some columns of a
// fused output: Llama's q, k, v of qkv)   h: (N,r) = scale * x A^T, saved for backward   x: (N,C)   A: (r,C)
// B: (OC,r)   p > 0: LoRA dropout on x with the mask of `seed`; xd: (N,C) scratch for the dropped input.
static void lora_forward(float* out, int ldo, float* h, const float* x, const float* A, const float* B, float scale,
                         size_t N, int C, int OC, int r, float p, uint64_t seed, float* xd) {
    if (p > 0.0f) {
        dropout_forward(xd, x, N * C, p, seed);
        x = xd;
    }
    matmul_forward(h, x, A, NULL, N, C, r);
    for (size_t i = 0; i < N * (size_t)r; i++) h[i] *= scale;
    // out(N,OC) += h(N,r) @ B^T: Bm(k, j) = B[j*r + k]
    gemm(out, (size_t)ldo, h, (size_t)r, 1, B, 1, (size_t)r, (int)N, OC, r);
}
// forward was h = s xd A^T (xd = dropout(x), or x), out += h B^T. So dB += dout^T h, dh = dout B, and through
// h: dA += s dh^T xd, dxd = s dh A, and dx += dropout_backward(dxd). dh: (N,r) scratch. dx, dA, dB may be
// NULL. p > 0: xd, dxd are (N,C) scratch; the mask is recomputed from the same seed as the forward.
// dout: (N,OC), rows ldo apart, as the forward's out.
static void lora_backward(float* dx, float* dA, float* dB, float* dh, const float* dout, int ldo, const float* h,
                          const float* x, const float* A, const float* B, float scale, size_t N, int C, int OC,
                          int r, float p, uint64_t seed, float* xd, float* dxd) {
    // dB(OC,r) += dout^T(OC,N) @ h(N,r)
    if (dB) gemm(dB, (size_t)r, dout, 1, (size_t)ldo, h, (size_t)r, 1, OC, r, (int)N);
    // dh(N,r) = s * dout(N,OC) @ B(OC,r)
    memset(dh, 0, N * (size_t)r * sizeof(float));
    gemm(dh, (size_t)r, dout, (size_t)ldo, 1, B, (size_t)r, 1, (int)N, r, OC);
    for (size_t i = 0; i < N * (size_t)r; i++) dh[i] *= scale;
    if (p > 0.0f) {  // h = xd A^T, xd = dropout(x)
        dropout_forward(xd, x, N * C, p, seed);
        memset(dxd, 0, N * C * sizeof(float));
        matmul_backward(dx ? dxd : NULL, dA, NULL, dh, xd, A, N, C, r);
        if (dx) dropout_backward(dx, dxd, N * C, p, seed);
        return;
    }
    // h = x A^T is a matmul with weight A (r, C)
    matmul_backward(dx, dA, NULL, dh, x, A, N, C, r);
}

// W += sign * scale * B A for one layer: merge (sign +1) folds LoRA into the weight for inference; unmerge
// (sign -1) takes it out again. W: (OC,C)   A: (r,C)   B: (OC,r). The sum is formed in double and rounded
// once, so merge then unmerge returns W to within one rounding of each element.
static void lora_merge_layer(float* W, const float* A, const float* B, float scale, int C, int OC, int r,
                             float sign) {
#pragma omp parallel for
    for (int o = 0; o < OC; o++) {
        for (int i = 0; i < C; i++) {
            double d = 0.0;
            for (int k = 0; k < r; k++) d += (double)B[(size_t)o * r + k] * A[(size_t)k * C + i];
            W[(size_t)o * C + i] = (float)(W[(size_t)o * C + i] + sign * scale * d);
        }
    }
}

// ---------------------------------------------------------------------------- adapters
// y = x + up(gelu(down(x))): a Houlsby adapter (Houlsby et al. 2019), bottleneck D. Up is zero-initialised,
// so at init y = x and the model equals the base model.
// y, x: (N,C)   h, hg: (N,D) before and after GELU, saved   dw: (D,C) db: (D) uw: (C,D) ub: (C)
static void adapter_forward(float* y, float* h, float* hg, const float* x, const float* dw, const float* db,
                            const float* uw, const float* ub, size_t N, int C, int D) {
    matmul_forward(h, x, dw, db, N, C, D);
    gelu_forward(hg, h, N * D);
    matmul_forward(y, hg, uw, ub, N, D, C);
    residual_forward(y, y, x, N * C);
}
// forward was y = x + up(hg), hg = gelu(h), h = down(x): dx += dy (the skip), then back through up, GELU and
// down. dh, dhg: (N,D) scratch. Accumulates into dx and the weight gradients (NULL = frozen).
static void adapter_backward(float* dx, float* ddw, float* ddb, float* duw, float* dub, float* dh, float* dhg,
                             const float* dy, const float* x, const float* h, const float* hg, const float* dw,
                             const float* uw, size_t N, int C, int D) {
    for (size_t i = 0; i < N * C; i++) dx[i] += dy[i];
    memset(dhg, 0, N * D * sizeof(float));
    matmul_backward(dhg, duw, dub, dy, hg, uw, N, D, C);
    memset(dh, 0, N * D * sizeof(float));
    gelu_backward(dh, h, dhg, N * D);
    matmul_backward(dx, ddw, ddb, dh, x, dw, N, C, D);
}

// ---------------------------------------------------------------------------- classification head
// The way Hugging Face's GPT2ForSequenceClassification does it: the final hidden state of each sequence's
// last real token (position len_b - 1; padding after it is never looked at) through a linear map to K
// class logits, then cross-entropy with optional class weights w and label smoothing eps, exactly as
// F.cross_entropy(logits, y, weight=w, label_smoothing=eps):
//   loss = sum_b [ (1-eps) w_yb (-log p_b,yb) + (eps/K) sum_k w_k (-log p_b,k) ] / sum_b w_yb   (w = 1 if none)
// logits, probs: (B,K)   hidden: (B,T,C)   lengths, labels: (B)   cls_w: (K,C)   weights: (K) or NULL
static float cls_forward(float* logits, float* probs, const float* hidden, const int* lengths, const int* labels,
                         const float* cls_w, const float* weights, float eps, int B, int T, int C, int K) {
    double num = 0.0, den = 0.0;
    for (int b = 0; b < B; b++) {
        const float* hb = hidden + ((size_t)b * T + lengths[b] - 1) * C;
        float* lg = logits + (size_t)b * K;
        float* p = probs + (size_t)b * K;
        for (int k = 0; k < K; k++) {
            float s = 0.0f;
            for (int i = 0; i < C; i++) s += hb[i] * cls_w[(size_t)k * C + i];
            lg[k] = s;
        }
        float maxv = lg[0];
        for (int k = 1; k < K; k++) if (lg[k] > maxv) maxv = lg[k];
        double z = 0.0;
        for (int k = 0; k < K; k++) z += exp((double)lg[k] - maxv);
        double logz = log(z) + maxv, smooth = 0.0, wsum = 0.0;
        for (int k = 0; k < K; k++) {
            p[k] = (float)exp((double)lg[k] - logz);
            double wk = weights ? weights[k] : 1.0;
            smooth += wk * (logz - lg[k]);  // w_k * -log p_k
            wsum += wk;
        }
        (void)wsum;
        if (labels[b] < 0) continue;  // no label: contributes nothing
        double wy = weights ? weights[labels[b]] : 1.0;
        num += (1.0 - eps) * wy * (logz - lg[labels[b]]) + eps / K * smooth;
        den += wy;
    }
    return den > 0.0 ? (float)(num / den) : NAN;
}
// d loss / d logit_b,k = [ (1-eps) w_yb (p_k - [k = yb]) + (eps/K) (S p_k - w_k) ] / sum_b w_yb, S = sum_k w_k.
// Then logits = h cls_w^T gives dcls_w += dlogits^T h and dhidden[b, len_b - 1] += dlogits cls_w.
// dlogits: (B,K) scratch. dhidden is accumulated (only the pooled positions get gradient). scale multiplies
// the gradient (gradient accumulation, as in crossentropy_backward).
static void cls_backward(float* dhidden, float* dcls_w, float* dlogits, const float* probs, const float* hidden,
                         const int* lengths, const int* labels, const float* cls_w, const float* weights, float eps,
                         float scale, int B, int T, int C, int K) {
    double den = 0.0, S = 0.0;
    for (int b = 0; b < B; b++) if (labels[b] >= 0) den += weights ? weights[labels[b]] : 1.0;
    for (int k = 0; k < K; k++) S += weights ? weights[k] : 1.0;
    for (int b = 0; b < B; b++) {
        const float* p = probs + (size_t)b * K;
        float* d = dlogits + (size_t)b * K;
        int y = labels[b];
        double wy = y >= 0 ? (weights ? weights[y] : 1.0) : 0.0;
        for (int k = 0; k < K; k++) {
            double wk = weights ? weights[k] : 1.0;
            double g = y < 0 ? 0.0 : (1.0 - eps) * wy * (p[k] - (k == y)) + eps / K * (S * p[k] - wk);
            d[k] = (float)(scale * g / den);
        }
        const float* hb = hidden + ((size_t)b * T + lengths[b] - 1) * C;
        float* dhb = dhidden + ((size_t)b * T + lengths[b] - 1) * C;
        for (int k = 0; k < K; k++) {
            if (dcls_w) for (int i = 0; i < C; i++) dcls_w[(size_t)k * C + i] += d[k] * hb[i];
            for (int i = 0; i < C; i++) dhb[i] += d[k] * cls_w[(size_t)k * C + i];
        }
    }
}
