// kernels.h: every layer kernel of the model, each forward directly above its backward, with the shapes in
// model.h's legend. model.h builds the model from them; test_gpt.c checks each against finite differences.

#pragma once
#include "common.h"  // defines: the error helpers, mallocCheck
#ifdef _OPENMP
#include <omp.h>     // defines: omp_get_num_threads (the kernels' loops are OpenMP parallel)
#endif
#if (defined(__ARM_NEON) || defined(__aarch64__)) && !defined(__AVX512F__) && !defined(__AVX2__) && !defined(GEMM_PORTABLE)
#include <arm_neon.h>  // defines: the NEON intrinsics of the matmul's ARM micro-kernel ("matmul" below)
#endif

// ---------------------------------------------------------------------------- random numbers
// xorshift64*: small, fast, and its whole state is one u64 that checkpoints save and restore.
static uint32_t random_u32(uint64_t* state) {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return (uint32_t)((*state * 0x2545F4914F6CDD1Dull) >> 32);
}
// uniform in [0, 1)
static float random_f32(uint64_t* state) { return (random_u32(state) >> 8) / 16777216.0f; }
// standard normal by Box-Muller
static float random_normal(uint64_t* state) {
    float u1 = random_f32(state), u2 = random_f32(state);
    if (u1 < 1e-7f) u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.283185307179586f * u2);
}

// ---------------------------------------------------------------------------- encoder
// x[b,t,:] = wte[inp[b,t],:] + wpe[t,:].  PyTorch: wte(idx) + wpe(pos)
// out: (B,T,C)   inp: (B,T) ids in [0,V)   wte: (Vp,C)   wpe: (maxT,C), or NULL: none (Llama), x = wte[inp]
static void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float* o = out + ((size_t)b * T + t) * C;
            const float* we = wte + (size_t)inp[b * T + t] * C;
            if (!wpe) {
                memcpy(o, we, (size_t)C * sizeof(float));
                continue;
            }
            const float* pe = wpe + (size_t)t * C;
            for (int i = 0; i < C; i++) o[i] = we[i] + pe[i];
        }
    }
}
// forward was out = wte[ix] + wpe[t], so dwte[ix] += dout and dwpe[t] += dout. Either may be NULL (frozen).
static void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp, int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float* d = dout + ((size_t)b * T + t) * C;
            if (dwte) {
                float* dw = dwte + (size_t)inp[b * T + t] * C;
                for (int i = 0; i < C; i++) dw[i] += d[i];
            }
            if (dwpe) {
                float* dp = dwpe + (size_t)t * C;
                for (int i = 0; i < C; i++) dp[i] += d[i];
            }
        }
    }
}

// ---------------------------------------------------------------------------- layernorm
// y = (x - mean) * rstd * w + b over the last axis, rstd = 1/sqrt(var + 1e-5) with the biased variance.
// PyTorch: nn.LayerNorm(C, eps=1e-5)
// y, x: (N,C)   w, b: (C)   mean, rstd: (N), saved for backward
static void layernorm_forward(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                              size_t N, int C) {
    const float eps = 1e-5f;
#pragma omp parallel for
    for (size_t n = 0; n < N; n++) {
        const float* xn = x + n * C;
        float m = 0.0f;
        for (int i = 0; i < C; i++) m += xn[i];
        m /= C;
        float v = 0.0f;  // two passes: var of (x - m) is stable, E[x^2] - m^2 is not
        for (int i = 0; i < C; i++) v += (xn[i] - m) * (xn[i] - m);
        v /= C;
        float s = 1.0f / sqrtf(v + eps);
        float* yn = y + n * C;
        for (int i = 0; i < C; i++) yn[i] = (xn[i] - m) * s * w[i] + b[i];
        mean[n] = m;
        rstd[n] = s;
    }
}
// forward was y = xhat * w + b with xhat = (x - mean) * rstd. So dw += dy * xhat, db += dy, and with
// g = dy * w:  dx += rstd * (g - mean(g) - xhat * mean(g * xhat))   (mean over the C channels).
// Accumulates into dx, dw, db; dw and db may be NULL (frozen).
static void layernorm_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                               const float* mean, const float* rstd, size_t N, int C) {
    // dx rows are independent and run in parallel; dw, db sum over rows and stay serial (they are only C long)
#pragma omp parallel for
    for (size_t n = 0; n < N; n++) {
        const float* dyn = dy + n * C;
        const float* xn = x + n * C;
        float m = mean[n], s = rstd[n];
        float gmean = 0.0f, gxmean = 0.0f;
        for (int i = 0; i < C; i++) {
            float xhat = (xn[i] - m) * s;
            float g = dyn[i] * w[i];
            gmean += g;
            gxmean += g * xhat;
        }
        gmean /= C;
        gxmean /= C;
        float* dxn = dx + n * C;
        for (int i = 0; i < C; i++) {
            float xhat = (xn[i] - m) * s;
            dxn[i] += s * (dyn[i] * w[i] - gmean - xhat * gxmean);
        }
    }
    if (dw || db) {
        for (size_t n = 0; n < N; n++) {
            const float* dyn = dy + n * C;
            const float* xn = x + n * C;
            float m = mean[n], s = rstd[n];
            for (int i = 0; i < C; i++) {
                if (dw) dw[i] += dyn[i] * (xn[i] - m) * s;
                if (db) db[i] += dyn[i];
            }
        }
    }
}

// ---------------------------------------------------------------------------- rmsnorm
// y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps): LayerNorm without the mean and the bias (Llama).
// PyTorch (Hugging Face LlamaRMSNorm): w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
// y, x: (N,C)   w: (C)   rstd: (N), saved for backward
static void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, size_t N, int C, float eps) {
#pragma omp parallel for
    for (size_t n = 0; n < N; n++) {
        const float* xn = x + n * C;
        float ss = 0.0f;
        for (int i = 0; i < C; i++) ss += xn[i] * xn[i];
        float s = 1.0f / sqrtf(ss / C + eps);
        float* yn = y + n * C;
        for (int i = 0; i < C; i++) yn[i] = xn[i] * s * w[i];
        rstd[n] = s;
    }
}
// forward was y_i = w_i x_i s with s = (mean(x^2) + eps)^(-1/2), ds/dx_j = -s^3 x_j / C. So dw += dy * x * s,
// and with g = dy * w:  dx_j += s g_j - s^3 x_j mean(g * x) = s (g_j - xhat_j mean(g * xhat)), xhat = x s.
// Accumulates into dx and dw (dw may be NULL: frozen).
static void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                             size_t N, int C) {
#pragma omp parallel for
    for (size_t n = 0; n < N; n++) {
        const float *dyn = dy + n * C, *xn = x + n * C;
        float s = rstd[n], gx = 0.0f;
        for (int i = 0; i < C; i++) gx += dyn[i] * w[i] * xn[i] * s;
        gx /= C;
        float* dxn = dx + n * C;
        for (int i = 0; i < C; i++) dxn[i] += s * (dyn[i] * w[i] - xn[i] * s * gx);
    }
    if (dw)  // a sum over rows: serial, it is only C long (as layernorm_backward's)
        for (size_t n = 0; n < N; n++)
            for (int i = 0; i < C; i++) dw[i] += dy[n * C + i] * x[n * C + i] * rstd[n];
}

// ---------------------------------------------------------------------------- matmul
// out = inp @ w^T + bias.  PyTorch: nn.Linear(C, OC) (weight stored (OC, C))
// out: (N,OC)   inp: (N,C)   w: (OC,C)   bias: (OC) or NULL
//
// Two versions: the _ref one is the definition, three plain loops a student can check by eye; the fast one
// (below) is what the model runs, and test_gpt.c holds it to the reference.
static void matmul_forward_ref(float* out, const float* inp, const float* w, const float* bias, size_t N, int C,
                               int OC) {
    for (size_t n = 0; n < N; n++) {
        for (int o = 0; o < OC; o++) {
            float acc = bias ? bias[o] : 0.0f;
            for (int i = 0; i < C; i++) acc += inp[n * C + i] * w[(size_t)o * C + i];
            out[n * OC + o] = acc;
        }
    }
}
// forward was out[n,o] = sum_i inp[n,i] w[o,i] + bias[o], so
//   dinp[n,i] += sum_o dout[n,o] w[o,i]     dw[o,i] += sum_n dout[n,o] inp[n,i]     dbias[o] += sum_n dout[n,o]
// Any of dinp, dw, dbias may be NULL (not needed / frozen).
static void matmul_backward_ref(float* dinp, float* dw, float* dbias, const float* dout, const float* inp,
                                const float* w, size_t N, int C, int OC) {
    for (size_t n = 0; n < N; n++) {
        for (int o = 0; o < OC; o++) {
            float d = dout[n * OC + o];
            if (dinp) for (int i = 0; i < C; i++) dinp[n * C + i] += d * w[(size_t)o * C + i];
            if (dw) for (int i = 0; i < C; i++) dw[(size_t)o * C + i] += d * inp[n * C + i];
            if (dbias) dbias[o] += d;
        }
    }
}

// The fast path: one blocked, packed matrix product that all three products above reduce to:
//   Cm[i,j] += sum_k A(i,k) * Bm(k,j)   for i < M, j < N, k < K,
// where A(i,k) = A[i*sai + k*sak] and Bm(k,j) = B[k*sbk + j*sbj], so a transpose is only a change of strides.
//
// Blocking scheme (the classic Goto/BLIS one): K is walked in KC-long slices; each slice of A and of B is first
// copied ("packed") into a contiguous buffer laid out in the exact order the micro-kernel reads it, so its
// loads are unit-stride and one operand's panel stays in L1 cache while the other's stream from L2. The
// micro-kernel computes an MR x NR block of Cm in registers.
//
// The register tile: MR x NR accumulators must fit in the vector registers with room left for one row of B
// (NR/VEC vectors) and one broadcast of A, or the compiler spills accumulators to the stack on every k and the
// kernel runs at half speed. Register files differ, so the tile is chosen at compile time from the compiler's
// predefined macros for the ISA it targets (-march=...), never assumed; every path is tested by building the
// test suite for that ISA (.ci/run). Accumulators / registers:
//   AVX-512 (__AVX512F__):         32 zmm of 16 floats;  8 x 32 = 16 accumulators + 2 (B row) + 1 (broadcast).
//                                   14 x 32 (28 + 2 + 1) and 12 x 32 fit too, and do more FMAs per load, but
//                                   on Zen 5 they ran no faster alone (~215 GFLOP/s, all three) and ~5% slower
//                                   in the model's products, whose M = B*T is a multiple of 8, not of 12 or 14.
//   AVX2 + FMA (__AVX2__, __FMA__): 16 ymm of 8 floats;  6 x 16 = 12 + 2 + 1, the tile BLIS and OpenBLAS use
//                                   for Haswell and Zen sgemm. (The 8 x 32 tile this file used to have on
//                                   every CPU needs 32 ymm: on AVX2 gcc spilled and it ran 1.1-1.6x slower
//                                   than PyTorch.)
//   ARM NEON (__ARM_NEON, AArch64): 32 q of 4 floats;    8 x 12 = 24 + 3 + 2 (A's 8 values as 2 vectors,
//                                   multiplied by lane: intrinsics, see below), BLIS's armv8a sgemm tile
//   anything else (plain C):       4 x 8, the loops below without vector types; on x86-64's baseline SSE2
//                                   (16 xmm of 4) gcc makes that 8 accumulators. (Measured with -march=x86-64:
//                                   4x8 27-30 GFLOP/s, 8x32 25, 4x16, 6x8, 8x8, 8x16 and 6x16 7-11: the
//                                   plain loops vectorise well only in some shapes.)
// KC, the K-slice length, from the L1 data cache: the stationary B panel (KC x NR floats) plus the A panels
// streaming past it (MR x KC each, two in flight) should fit in L1, which is 32 KB on Skylake-X/Zen 4 and
// 48 KB on Ice Lake/Sapphire Rapids/Zen 5, 32-64 KB on ARM cores; a longer slice halves how often the C tile
// is read and written (once per slice, and C comes from L2 or DRAM). MC, how many rows/columns of the small
// operand are packed for all threads at once, from L2 (1-2 MB per core): MC x KC floats stay in L2 while
// every block of the other operand streams past them. The thread block (GEMM_MB rows of A, GEMM_NB columns
// of B) is the grain handed to a thread, see gemm_any.
#if defined(__AVX512F__)
#define GEMM_ISA "AVX-512"
#define GEMM_VEC 16  // floats per vector register
#define GEMM_MR 8
#define GEMM_NR 32  // a multiple of VEC: NR / VEC vectors per row of the tile
#define GEMM_KC 256  // B panel 32 KB + A panels 2 x 8 KB: an L1 of 48 KB (Zen 5, Ice Lake and later)
#define GEMM_MC 512  // 512 x 256 floats = 512 KB: half of a 1 MB L2 (Skylake-X, Zen 4/5; 2 MB on Sapphire Rapids)
#elif defined(__AVX2__) && defined(__FMA__)
#define GEMM_ISA "AVX2+FMA"
#define GEMM_VEC 8
#define GEMM_MR 6
#define GEMM_NR 16
#define GEMM_KC 256  // B panel 16 KB + A panels 2 x 6 KB: fits a 32 KB L1
#define GEMM_MC 256  // 256 KB: half of Zen 2/3's 512 KB L2 (Haswell has 256 KB: there it comes from L3)
#elif defined(__ARM_NEON) || defined(__aarch64__)
#define GEMM_ISA "NEON"
#define GEMM_VEC 4
#define GEMM_MR 8
#define GEMM_NR 12
#define GEMM_KC 256  // B panel 12 KB + A panels 2 x 8 KB: fits a 32 KB L1 (BLIS armv8a: kc 256 as well)
#define GEMM_MC 256  // 256 KB: half of a Cortex-A76/Neoverse-N1 512 KB L2
#ifndef GEMM_PORTABLE
#define GEMM_NEON_INTRINSICS  // the kernel below that multiplies by lanes; -DGEMM_PORTABLE: the plain-C one
#endif
#else
#define GEMM_ISA "generic"
#define GEMM_VEC 0  // no vector types: the plain-C micro-kernel
#define GEMM_MR 4
#define GEMM_NR 8
#define GEMM_KC 256  // B panel 8 KB + A panels 2 x 4 KB
#define GEMM_MC 256
#endif
#if GEMM_VEC > 0
#define GEMM_NV (GEMM_NR / GEMM_VEC)  // vectors per row of the tile
#endif
// a thread's block of the large dimension: a multiple of the tile, about GEMM_BW wide (see gemm_any for why 64;
// -DGEMM_BW=128 and -DGEMM_KS=2 or 8 measured the same as the defaults for a 2-thread 124M step, dev/PROFILE.md)
#ifndef GEMM_BW
#define GEMM_BW 64
#endif
#define GEMM_MB (GEMM_MR * ((GEMM_BW + GEMM_MR - 1) / GEMM_MR))
#define GEMM_NB (GEMM_NR * ((GEMM_BW + GEMM_NR - 1) / GEMM_NR))
#define GEMM_STR2(x) #x
#define GEMM_STR(x) GEMM_STR2(x)
// what was built, for `./train bench` to print: e.g. "AVX-512 14x32 fp32, KC 256"
static const char gemm_tile[] = GEMM_ISA " " GEMM_STR(GEMM_MR) "x" GEMM_STR(GEMM_NR) " fp32, KC " GEMM_STR(GEMM_KC);

#if defined(GEMM_NEON_INTRINSICS)
// The NEON micro-kernel, in intrinsics because plain C cannot ask for what it needs: A's 8 values loaded as 2
// vectors and each FMA taking one lane of them (fmla v.4s, v.4s, a.s[lane]), 24 + 3 + 2 registers. From the
// portable kernel below (the same computation; -DGEMM_PORTABLE builds it, and .ci/run tests both) gcc 12 loads
// the 8 values into 8 scalar registers instead: 24 + 3 + 8 = 35 of 32, so 3 accumulators spill on every k.
static void gemm_micro(int kc, const float* restrict Ap, const float* restrict Bp, float* restrict Cm, size_t ldc,
                       int mr, int nr) {
    float32x4_t acc[8][3];
#pragma GCC unroll 8  // every loop over acc unrolled, so acc[i][v] are 24 named registers, never memory
    for (int i = 0; i < 8; i++)
        for (int v = 0; v < 3; v++) acc[i][v] = vdupq_n_f32(0.0f);
    for (int k = 0; k < kc; k++) {
        const float* b = Bp + (size_t)k * 12;
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
        float32x4_t a0 = vld1q_f32(Ap + (size_t)k * 8), a1 = vld1q_f32(Ap + (size_t)k * 8 + 4);
#define GEMM_NEON_ROW(i, a, lane)                          \
    acc[i][0] = vfmaq_laneq_f32(acc[i][0], b0, a, lane); \
    acc[i][1] = vfmaq_laneq_f32(acc[i][1], b1, a, lane); \
    acc[i][2] = vfmaq_laneq_f32(acc[i][2], b2, a, lane);
        GEMM_NEON_ROW(0, a0, 0) GEMM_NEON_ROW(1, a0, 1) GEMM_NEON_ROW(2, a0, 2) GEMM_NEON_ROW(3, a0, 3)
        GEMM_NEON_ROW(4, a1, 0) GEMM_NEON_ROW(5, a1, 1) GEMM_NEON_ROW(6, a1, 2) GEMM_NEON_ROW(7, a1, 3)
#undef GEMM_NEON_ROW
    }
    if (mr == 8 && nr == 12) {
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
            for (int v = 0; v < 3; v++) vst1q_f32(Cm + i * ldc + 4 * v, vaddq_f32(vld1q_f32(Cm + i * ldc + 4 * v), acc[i][v]));
    } else {  // edge tile: only the valid corner (the packed buffers were zero-padded)
        float t[8][12];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
            for (int v = 0; v < 3; v++) vst1q_f32(&t[i][4 * v], acc[i][v]);
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++) Cm[i * ldc + j] += t[i][j];
    }
}
#elif GEMM_VEC > 0
// The micro-kernel in GCC/Clang vector extensions (plain C with a vector type: `a * b[v]` with a float a and a
// vector b[v] multiplies every lane by a; -ffp-contract=fast fuses the += into one FMA). The acc array is
// MR x NV registers; fixed trip counts, so the compiler unrolls the i and v loops completely.
typedef float gemm_v __attribute__((vector_size(4 * GEMM_VEC)));
static inline gemm_v gemm_load(const float* p) {  // memcpy: an unaligned vector load (vmovups, ld1)
    gemm_v v;
    memcpy(&v, p, sizeof v);
    return v;
}
// acc = Ap (MR x kc, packed k-major) times Bp (kc x NR, packed k-major); then Cm[:mr, :nr] += acc
static void gemm_micro(int kc, const float* restrict Ap, const float* restrict Bp, float* restrict Cm, size_t ldc,
                       int mr, int nr) {
    gemm_v acc[GEMM_MR][GEMM_NV];
    for (int i = 0; i < GEMM_MR; i++)
        for (int v = 0; v < GEMM_NV; v++) acc[i][v] = (gemm_v){0};
    for (int k = 0; k < kc; k++) {
        gemm_v b[GEMM_NV];
        for (int v = 0; v < GEMM_NV; v++) b[v] = gemm_load(Bp + (size_t)k * GEMM_NR + v * GEMM_VEC);
        const float* a = Ap + (size_t)k * GEMM_MR;
        for (int i = 0; i < GEMM_MR; i++)
            for (int v = 0; v < GEMM_NV; v++) acc[i][v] += a[i] * b[v];
    }
    if (mr == GEMM_MR && nr == GEMM_NR) {
        for (int i = 0; i < GEMM_MR; i++)
            for (int v = 0; v < GEMM_NV; v++) {
                gemm_v c = gemm_load(Cm + i * ldc + v * GEMM_VEC) + acc[i][v];
                memcpy(Cm + i * ldc + v * GEMM_VEC, &c, sizeof c);
            }
    } else {  // edge tile: only the valid corner (the packed buffers were zero-padded)
        float t[GEMM_MR][GEMM_NR];  // (filled by stores, not memcpy(t, acc): taking acc's address made gcc keep it in memory)
        for (int i = 0; i < GEMM_MR; i++)
            for (int v = 0; v < GEMM_NV; v++) memcpy(&t[i][v * GEMM_VEC], &acc[i][v], sizeof acc[i][v]);
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++) Cm[i * ldc + j] += t[i][j];
    }
}
#else
// The portable micro-kernel, the same computation in plain loops (the compiler vectorises the j loop where
// it can): what every other CPU and compiler runs.
static void gemm_micro(int kc, const float* restrict Ap, const float* restrict Bp, float* restrict Cm, size_t ldc,
                       int mr, int nr) {
    float acc[GEMM_MR][GEMM_NR];
    for (int i = 0; i < GEMM_MR; i++)
        for (int j = 0; j < GEMM_NR; j++) acc[i][j] = 0.0f;
    for (int k = 0; k < kc; k++) {
        const float* a = Ap + (size_t)k * GEMM_MR;
        const float* b = Bp + (size_t)k * GEMM_NR;
        for (int i = 0; i < GEMM_MR; i++)
            for (int j = 0; j < GEMM_NR; j++) acc[i][j] += a[i] * b[j];
    }
    if (mr == GEMM_MR && nr == GEMM_NR) {  // constant trip counts here too, or acc could not live in registers
        for (int i = 0; i < GEMM_MR; i++)
            for (int j = 0; j < GEMM_NR; j++) Cm[i * ldc + j] += acc[i][j];
    } else {  // edge tile: only the valid corner (the packed buffers were zero-padded)
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++) Cm[i * ldc + j] += acc[i][j];
    }
}
#endif

// The packing of an operand whose k runs along its rows (the forward's weight, w[o][i] read as Bm(k=i, j=o);
// the forward's activations and every dinp's dout, as A) is a transpose: d[k][j] = src[j][k]. One element at a
// time, that is one load and one store per float at a stride of NR floats, 3-5x slower than the loop below,
// and was a fifth of the forward products' time. The loop moves 4 x 4 blocks through 4 vector registers of 4
// floats: 4 loads along k, two rounds of shuffles (interleave pairs of rows, then pairs of pairs), 4 stores
// along j. 4 floats is a vector on every ISA here (SSE, AVX, NEON), and NR and MR are multiples of 4 except
// AVX2's MR = 6, whose last 2 rows, like any k beyond a multiple of 4, take the plain loop.
typedef float gemm_v4 __attribute__((vector_size(16)));
#if defined(__clang__) || __GNUC__ >= 12
#define GEMM_SHUF4(a, b, i, j, k, l) __builtin_shufflevector(a, b, i, j, k, l)
#else  // gcc before 12 has only its own spelling
typedef int gemm_v4i __attribute__((vector_size(16)));
#define GEMM_SHUF4(a, b, i, j, k, l) __builtin_shuffle(a, b, (gemm_v4i){i, j, k, l})
#endif
// d[k * ldd + j] = src[j * lds + k] for j < n, k < kc
static void gemm_transpose(float* restrict d, int ldd, const float* restrict src, size_t lds, int n, int kc) {
    int j0 = 0, n4 = n / 4 * 4, kc4 = kc / 4 * 4;
    for (; j0 < n4; j0 += 4) {
        const float* s = src + (size_t)j0 * lds;
        for (int k = 0; k < kc4; k += 4) {
            gemm_v4 r0, r1, r2, r3;  // rows j0..j0+3 of src, k..k+3
            memcpy(&r0, s + k, 16), memcpy(&r1, s + lds + k, 16);
            memcpy(&r2, s + 2 * lds + k, 16), memcpy(&r3, s + 3 * lds + k, 16);
            gemm_v4 t0 = GEMM_SHUF4(r0, r1, 0, 4, 1, 5), t1 = GEMM_SHUF4(r0, r1, 2, 6, 3, 7);  // r0[0] r1[0] r0[1] r1[1]
            gemm_v4 t2 = GEMM_SHUF4(r2, r3, 0, 4, 1, 5), t3 = GEMM_SHUF4(r2, r3, 2, 6, 3, 7);
            gemm_v4 c0 = GEMM_SHUF4(t0, t2, 0, 1, 4, 5), c1 = GEMM_SHUF4(t0, t2, 2, 3, 6, 7);  // column k: r0..r3[k]
            gemm_v4 c2 = GEMM_SHUF4(t1, t3, 0, 1, 4, 5), c3 = GEMM_SHUF4(t1, t3, 2, 3, 6, 7);
            memcpy(d + (size_t)k * ldd + j0, &c0, 16), memcpy(d + (size_t)(k + 1) * ldd + j0, &c1, 16);
            memcpy(d + (size_t)(k + 2) * ldd + j0, &c2, 16), memcpy(d + (size_t)(k + 3) * ldd + j0, &c3, 16);
        }
        for (int k = kc4; k < kc; k++)
            for (int j = j0; j < j0 + 4; j++) d[(size_t)k * ldd + j] = src[(size_t)j * lds + k];
    }
    for (int j = n4; j < n; j++)
        for (int k = 0; k < kc; k++) d[(size_t)k * ldd + j] = src[(size_t)j * lds + k];
}

// Packs A rows [i0, i0+mc) x cols [p0, p0+kc) into panels of MR rows: dst[panel][k][MR], zero padded.
static void gemm_pack_a(float* dst, const float* A, size_t sai, size_t sak, int i0, int mc, int p0, int kc) {
    for (int ip = 0; ip < mc; ip += GEMM_MR) {
        float* d = dst + (size_t)ip * kc;
        int mr = mc - ip < GEMM_MR ? mc - ip : GEMM_MR;
        if (sai == 1) {  // columns of A are contiguous (a transposed operand): copy MR at a time
            for (int k = 0; k < kc; k++) {
                const float* src = A + (size_t)(i0 + ip) + (size_t)(p0 + k) * sak;
                for (int i = 0; i < GEMM_MR; i++) d[k * GEMM_MR + i] = i < mr ? src[i] : 0.0f;
            }
        } else if (sak == 1) {  // rows of A are contiguous: a transpose, then zeros below the last row
            gemm_transpose(d, GEMM_MR, A + (size_t)(i0 + ip) * sai + (size_t)p0, sai, mr, kc);
            for (int k = 0; k < kc; k++)
                for (int i = mr; i < GEMM_MR; i++) d[k * GEMM_MR + i] = 0.0f;
        } else {  // rows of A strided: walk each row
            for (int i = 0; i < GEMM_MR; i++) {
                if (i < mr) {
                    const float* src = A + (size_t)(i0 + ip + i) * sai + (size_t)p0 * sak;
                    for (int k = 0; k < kc; k++) d[k * GEMM_MR + i] = src[(size_t)k * sak];
                } else {
                    for (int k = 0; k < kc; k++) d[k * GEMM_MR + i] = 0.0f;
                }
            }
        }
    }
}

// int8 weights (see "int8 weights" below): element e is q[e] * d[e / Q8_GROUP]
#define Q8_GROUP 32
typedef struct { const int8_t* q; const float* d; } Q8;
static inline float q8_at(const Q8* w, size_t e) { return (float)w->q[e] * w->d[e / Q8_GROUP]; }

// Packs Bm rows [p0, p0+kc) x cols [j0, j0+nc) into panels of NR columns: dst[panel][k][NR], zero padded.
// Bm is B, or the int8 weight Bq when B is NULL.
static void gemm_pack_b(float* dst, const float* B, const Q8* Bq, size_t sbk, size_t sbj, int p0, int kc, int j0,
                        int nc) {
    for (int jp = 0; jp < nc; jp += GEMM_NR) {
        float* d = dst + (size_t)jp * kc;
        int nr = nc - jp < GEMM_NR ? nc - jp : GEMM_NR;
        if (Bq && sbj == 1) {  // int8: the same two walks as the float cases below, widening each element
            for (int k = 0; k < kc; k++) {
                size_t e = (size_t)(p0 + k) * sbk + (size_t)(j0 + jp);
                for (int j = 0; j < GEMM_NR; j++) d[k * GEMM_NR + j] = j < nr ? q8_at(Bq, e + j) : 0.0f;
            }
        } else if (Bq) {
            for (int j = 0; j < GEMM_NR; j++) {
                size_t e = (size_t)(j0 + jp + j) * sbj + (size_t)p0 * sbk;
                for (int k = 0; k < kc; k++) d[k * GEMM_NR + j] = j < nr ? q8_at(Bq, e + (size_t)k * sbk) : 0.0f;
            }
        } else if (sbj == 1) {  // rows of Bm are contiguous: copy NR at a time
            for (int k = 0; k < kc; k++) {
                const float* src = B + (size_t)(p0 + k) * sbk + (size_t)(j0 + jp);
                for (int j = 0; j < GEMM_NR; j++) d[k * GEMM_NR + j] = j < nr ? src[j] : 0.0f;
            }
        } else if (sbk == 1) {  // columns of Bm are contiguous (a transposed weight): a transpose, then zeros
            gemm_transpose(d, GEMM_NR, B + (size_t)(j0 + jp) * sbj + (size_t)p0, sbj, nr, kc);
            for (int k = 0; k < kc; k++)
                for (int j = nr; j < GEMM_NR; j++) d[k * GEMM_NR + j] = 0.0f;
        } else {  // columns of Bm strided: walk each column
            for (int j = 0; j < GEMM_NR; j++) {
                if (j < nr) {
                    const float* src = B + (size_t)(j0 + jp + j) * sbj + (size_t)p0 * sbk;
                    for (int k = 0; k < kc; k++) d[k * GEMM_NR + j] = src[(size_t)k * sbk];
                } else {
                    for (int k = 0; k < kc; k++) d[k * GEMM_NR + j] = 0.0f;
                }
            }
        }
    }
}

// The operand that is small along its free dimension (M for A, N for B; at small batch that is the
// activations, BT = 256 rows) is packed once per call (per thread, see below), not once per tile: up to GEMM_MC
// of it at a time, for GEMM_KS K-slices at a time. Threads split the large dimension into blocks (GEMM_MB rows
// of A or GEMM_NB columns of B); each thread packs its block of the other operand one K-slice at a time and
// runs the micro-kernel on it against the shared panels, and goes on to the block's next K-slice before
// taking another block. So a block of Cm (e.g. 256 x 64 floats, 64 KB) is read and written from L2 for each
// of its K-slices, not from memory: the LM head's 51 MB of logits cross the memory bus once per GEMM_KS
// slices instead of once per slice (3 slices of K = 768: once, not three times), and its weight gradient's
// input (dinp, K = 50304) gets a parallel region per 4 slices instead of per slice.
// Grow-only buffers: no allocation in the steady state.
// Blocks ~64 wide, not wider: the large dimension is often only C = 768, and 768 / 64 = 12 blocks share out
// evenly over 2, 3, 4 or 6 threads, while 768 / 256 = 3 blocks left one of 2 threads idle a third of the time.
// A block's micro-kernel calls (its panels x all of the small operand's) still take far longer than handing it
// out. Blocks are handed out dynamically: a thread whose core another process took does less of them instead
// of making the others wait at the barrier for its fixed share. A thread asks for its next block one slice
// early, so the prefetch below fetches the block it will really pack next.
// With a few threads, each packs the whole small operand into its own copy: on the 2-core Zen 5 VM, one
// shared copy packed half by each thread took each of them longer than one thread packing all of it alone
// (281 against 158 us, dinp of qkv), because writing a line the other core had read must take it back from
// that core, and reading the half the other core wrote costs the same again. Own copies made the products
// alone (12 weights, as in a step) 3-10% faster on 2 threads. The cost, packing the small operand once per
// thread, grows with the team, so beyond GEMM_OWN_TEAM threads the panels are split into one shared copy.
#define GEMM_BIG (GEMM_MB > GEMM_NB ? GEMM_MB : GEMM_NB)
#ifndef GEMM_KS
#define GEMM_KS 4  // K-slices of the small operand packed at once: 4 x MC x KC floats, at most 2 MB (half of it
                   // at BT = 256): it streams from L2/L3 past each block, the block's Cm stays in L2
#endif
#ifndef GEMM_OWN_TEAM
#define GEMM_OWN_TEAM 4  // teams of up to this many threads each pack their own copy of the small operand
#endif
static int gemm_own_team = GEMM_OWN_TEAM;  // a variable so that the tests can run both ways
static float* gemm_shared;
static size_t gemm_shared_cap;

static inline int gemm_threads(void) {  // threads the next parallel region will have
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}
static inline int gemm_thread(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}
static inline int gemm_claim(int* counter) {  // the next block of the large dimension, for whoever asks first
    int v;
#pragma omp atomic capture
    v = (*counter)++;
    return v;
}
// Where a block's K-slice of the big operand lies: rows of len contiguous floats, stride apart (len = 0: not a
// walk the prefetch below knows, e.g. the int8 weights).
typedef struct { const float* base; size_t stride; int rows, len; } GemmPiece;
static GemmPiece gemm_piece(int a_small, const float* A, size_t sai, size_t sak, const float* B, size_t sbk,
                            size_t sbj, int p0, int kc, int b0, int bw) {
    GemmPiece g = {NULL, 0, 0, 0};
    if (a_small && B && sbk == 1) g = (GemmPiece){B + (size_t)b0 * sbj + p0, sbj, bw, kc};
    else if (a_small && B && sbj == 1) g = (GemmPiece){B + (size_t)p0 * sbk + b0, sbk, kc, bw};
    else if (!a_small && sak == 1) g = (GemmPiece){A + (size_t)b0 * sai + p0, sai, bw, kc};
    else if (!a_small && sai == 1) g = (GemmPiece){A + (size_t)p0 * sak + b0, sak, kc, bw};
    return g;
}
// Part `part` of `nparts` of a piece, asked from memory ahead of its packing: the micro-kernel calls on this
// slice each ask for a share of the next slice's lines, so they arrive while the arithmetic runs. (The
// weights were last touched by the previous step's AdamW and come from DRAM; their packing used to wait.)
static inline void gemm_prefetch(GemmPiece g, int part, int nparts) {
    for (int r = (int)((long)g.rows * part / nparts); r < (int)((long)g.rows * (part + 1) / nparts); r++)
        for (int x = 0; x < g.len; x += 16) __builtin_prefetch(g.base + (size_t)r * g.stride + x);
}

// The micro-kernel over every pair of packed panels: Cm[:mw, :nw] += Ap (mw x kc) @ Bp (kc x nw). The outer
// loop walks the big operand's panels (b_outer: Bp's), so one of them stays in L1 while the other's stream
// past it; each call also prefetches its share of `next`.
static void gemm_sweep(int kc, const float* Ap, int mw, const float* Bp, int nw, float* Cm, size_t ldc, int b_outer,
                       GemmPiece next) {
    int npa = (mw + GEMM_MR - 1) / GEMM_MR, npb = (nw + GEMM_NR - 1) / GEMM_NR, c = 0;
    for (int o = 0; o < (b_outer ? npb : npa); o++)
        for (int in = 0; in < (b_outer ? npa : npb); in++) {
            int ip = (b_outer ? in : o) * GEMM_MR, jp = (b_outer ? o : in) * GEMM_NR;
            gemm_prefetch(next, c++, npa * npb);
            gemm_micro(kc, Ap + (size_t)ip * kc, Bp + (size_t)jp * kc, Cm + (size_t)ip * ldc + jp, ldc,
                       mw - ip < GEMM_MR ? mw - ip : GEMM_MR, nw - jp < GEMM_NR ? nw - jp : GEMM_NR);
        }
}

// Packs task t of a chunk of the small operand: K-slice q0 + t / npanels, panel t % npanels, into buf.
static void gemm_pack_small(float* buf, size_t slice, int t, int npanels, int a_small, const float* A, size_t sai,
                            size_t sak, const float* B, const Q8* Bq, size_t sbk, size_t sbj, int K, int q0,
                            int s0, int sw) {
    int small_r = a_small ? GEMM_MR : GEMM_NR;
    int q = q0 + t / npanels, off = t % npanels * small_r, w = sw - off < small_r ? sw - off : small_r;
    int p0 = q * GEMM_KC, kc = K - p0 < GEMM_KC ? K - p0 : GEMM_KC;
    float* dst = buf + (size_t)(q - q0) * slice + (size_t)off * kc;
    if (a_small) gemm_pack_a(dst, A, sai, sak, s0 + off, w, p0, kc);
    else gemm_pack_b(dst, B, Bq, sbk, sbj, p0, kc, s0 + off, w);
}

// Cm(M,N) += A(M,K) @ Bm(K,N), element (i,k) of A at A[i*sai + k*sak], element (k,j) of Bm at B[k*sbk + j*sbj]
// (or, when Bq is given instead of B, the int8 weight Bq at the same index, widened to fp32 as it is packed).
static void gemm_any(float* Cm, size_t ldc, const float* A, size_t sai, size_t sak, const float* B, const Q8* Bq,
                     size_t sbk, size_t sbj, int M, int N, int K) {
    int a_small = M <= N;
    int small = a_small ? M : N, large = a_small ? N : M;
    int small_r = a_small ? GEMM_MR : GEMM_NR;  // panel width of the small operand
    int chunk = small <= GEMM_MC ? small : GEMM_MC / small_r * small_r;  // of the small operand, packed at once
    size_t slice = (size_t)((chunk + small_r - 1) / small_r * small_r) * GEMM_KC;  // its floats per K-slice
    int nslices = (K + GEMM_KC - 1) / GEMM_KC, ks = nslices < GEMM_KS ? nslices : GEMM_KS;
    int team = gemm_threads(), own = team <= gemm_own_team;  // own: a packed copy per thread
    size_t copy = slice * ks, need = copy * (own ? team : 1);
    if (need > gemm_shared_cap) {
        free(gemm_shared);
        gemm_shared = (float*)mallocCheck(need * sizeof(float));
        gemm_shared_cap = need;
    }
    int bwidth = a_small ? GEMM_NB : GEMM_MB, nblocks = (large + bwidth - 1) / bwidth;
    for (int q0 = 0; q0 < nslices; q0 += ks) {  // K-slices [q0, q1): K from q0 * KC
        int q1 = nslices - q0 < ks ? nslices : q0 + ks;
        for (int s0 = 0; s0 < small; s0 += chunk) {
            int sw = small - s0 < chunk ? small - s0 : chunk, npanels = (sw + small_r - 1) / small_r;
            int ntasks = (q1 - q0) * npanels, counter = 0;
#pragma omp parallel num_threads(team)
            {
                // 1. pack this chunk of the small operand for each K-slice: each thread all of it into its own
                // copy, or the panels split among the threads into one shared copy
                float* sh0 = gemm_shared + (own ? (size_t)gemm_thread() * copy : 0);
                if (own) {
                    for (int t = 0; t < ntasks; t++)
                        gemm_pack_small(sh0, slice, t, npanels, a_small, A, sai, sak, B, Bq, sbk, sbj, K, q0, s0, sw);
                } else {
#pragma omp for schedule(dynamic, 1)
                    for (int t = 0; t < ntasks; t++)
                        gemm_pack_small(sh0, slice, t, npanels, a_small, A, sai, sak, B, Bq, sbk, sbj, K, q0, s0, sw);
                    // (implicit barrier: everyone sees the packed small operand)
                }
                // 2. each block of the large dimension, K-slice by K-slice: pack it, then run the micro-kernel over
                // all pairs of panels. Blocks go to whichever thread asks first; a thread asks for its next one as
                // it starts a block's last slice, so that block's first slice can be prefetched during it.
                static _Thread_local float big[GEMM_BIG * GEMM_KC] __attribute__((aligned(64)));
                int blk = gemm_claim(&counter);
                while (blk < nblocks) {
                    int b0 = blk * bwidth, bw = large - b0 < bwidth ? large - b0 : bwidth, nxt = nblocks;
                    for (int q = q0; q < q1; q++) {
                        int p0 = q * GEMM_KC, kc = K - p0 < GEMM_KC ? K - p0 : GEMM_KC;
                        const float* sh = sh0 + (size_t)(q - q0) * slice;
                        if (q + 1 == q1) nxt = gemm_claim(&counter);
                        int nq = q + 1 < q1 ? q + 1 : q0, nb = q + 1 < q1 ? blk : nxt;  // what this thread packs next
                        GemmPiece next = {NULL, 0, 0, 0};
                        if (nb < nblocks) {
                            int np0 = nq * GEMM_KC, nb0 = nb * bwidth;
                            next = gemm_piece(a_small, A, sai, sak, B, sbk, sbj, np0, K - np0 < GEMM_KC ? K - np0 : GEMM_KC,
                                              nb0, large - nb0 < bwidth ? large - nb0 : bwidth);
                        }
                        if (a_small) {  // big = B columns [b0, b0+bw); each B panel stays in L1 while A panels stream
                            gemm_pack_b(big, B, Bq, sbk, sbj, p0, kc, b0, bw);
                            gemm_sweep(kc, sh, sw, big, bw, Cm + (size_t)s0 * ldc + b0, ldc, 1, next);
                        } else {  // big = A rows [b0, b0+bw); each A panel stays in L1 while B panels stream
                            gemm_pack_a(big, A, sai, sak, b0, bw, p0, kc);
                            gemm_sweep(kc, big, bw, sh, sw, Cm + (size_t)b0 * ldc + s0, ldc, 0, next);
                        }
                    }
                    blk = nxt;
                }
            }
        }
    }
}

static void gemm(float* Cm, size_t ldc, const float* A, size_t sai, size_t sak, const float* B, size_t sbk,
                 size_t sbj, int M, int N, int K) {
    gemm_any(Cm, ldc, A, sai, sak, B, NULL, sbk, sbj, M, N, K);
}

// Same contract as matmul_forward_ref.
static void matmul_forward(float* out, const float* inp, const float* w, const float* bias, size_t N, int C,
                           int OC) {
#pragma omp parallel for
    for (size_t n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) out[n * OC + o] = bias ? bias[o] : 0.0f;
    // out(N,OC) += inp(N,C) @ w^T: A = inp, Bm(k=i, j=o) = w[o*C + i]
    gemm(out, (size_t)OC, inp, (size_t)C, 1, w, 1, (size_t)C, (int)N, OC, C);
}
// Same contract as matmul_backward_ref.
static void matmul_backward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp,
                            const float* w, size_t N, int C, int OC) {
    // dinp(N,C) += dout(N,OC) @ w(OC,C)
    if (dinp) gemm(dinp, (size_t)C, dout, (size_t)OC, 1, w, (size_t)C, 1, (int)N, C, OC);
    // dw(OC,C) += dout^T(OC,N) @ inp(N,C): A(i=o, k=n) = dout[n*OC + o]
    if (dw) gemm(dw, (size_t)C, dout, 1, (size_t)OC, inp, (size_t)C, 1, OC, C, (int)N);
    if (dbias) {  // 64 columns per task, summed down the rows side by side (a vector each), not one column
                  // at a time, which read one float of each 64-byte line (each sum keeps its order, n = 0, 1, ...)
#pragma omp parallel for
        for (int o0 = 0; o0 < OC; o0 += 64) {
            float s[64] = {0};
            int w = OC - o0 < 64 ? OC - o0 : 64;
            for (size_t n = 0; n < N; n++)
                for (int j = 0; j < w; j++) s[j] += dout[n * OC + o0 + j];
            for (int j = 0; j < w; j++) dbias[o0 + j] += s[j];
        }
    }
}

// ---------------------------------------------------------------------------- int8 weights (Q8_0)
// Post-training weight-only quantization, as llama.cpp's Q8_0 and llama2.c's runq.c: each group of 32
// consecutive weights (in memory order, so along a row when the row length is a multiple of 32) shares one
// scale d = max|w| / 127, rounded to fp16 as GGUF stores it, and keeps q = round(w / d) in int8:
//   w ~= q * d,  |w - q * d| <= d / 2.
// 1 byte + 4/32 bytes per weight instead of 4: 28% of the fp32 size. Only the big matrices are quantized
// (wte, qkvw, attprojw, fcw, fcprojw); the matmuls read them through gemm's packing step, which widens
// them to fp32 as it copies, so the arithmetic and accumulation stay fp32.

// IEEE half precision <-> float, round to nearest even (GGUF stores Q8_0 scales as fp16)
static uint16_t fp16_from_f32(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffff;
    if (ax > 0x7f800000) return (uint16_t)(sign | 0x7e00);   // NaN
    if (ax >= 0x477ff000) return (uint16_t)(sign | 0x7c00);  // >= 65520 rounds to infinity
    if (ax < 0x38800000) {                                   // below 2^-14: a subnormal half, in units of 2^-24
        float a;
        memcpy(&a, &ax, 4);
        return (uint16_t)(sign | (uint32_t)lrintf(a * 16777216.0f));
    }
    uint32_t h = ((ax >> 23) - 112) << 10 | (ax >> 13 & 0x3ff), rest = ax & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;  // a carry into the exponent is still right
    return (uint16_t)(sign | h);
}
static float fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = h >> 10 & 0x1f, m = h & 0x3ff, x;
    if (e == 0) return (sign ? -1.0f : 1.0f) * ldexpf((float)m, -24);
    x = e == 31 ? sign | 0x7f800000 | m << 13 : sign | (e + 112) << 23 | m << 13;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

// q (n), d (n / Q8_GROUP): out.  x (n): in, n a multiple of Q8_GROUP.
static void q8_quantize(int8_t* q, float* d, const float* x, size_t n) {
#pragma omp parallel for
    for (size_t g = 0; g < n / Q8_GROUP; g++) {
        const float* xg = x + g * Q8_GROUP;
        float amax = 0.0f;
        for (int j = 0; j < Q8_GROUP; j++) amax = fmaxf(amax, fabsf(xg[j]));
        float dg = fp16_to_f32(fp16_from_f32(amax / 127.0f)), id = dg > 0.0f ? 1.0f / dg : 0.0f;
        for (int j = 0; j < Q8_GROUP; j++) {
            float v = rintf(xg[j] * id);  // |v| <= 127 up to fp16's rounding of d (< 0.05%)
            q[g * Q8_GROUP + j] = (int8_t)(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v);
        }
        d[g] = dg;
    }
}

// matmul_forward with an int8 weight w: out(N,OC) = inp(N,C) @ w^T + bias
static void matmul_forward_q8(float* out, const float* inp, const Q8* w, const float* bias, size_t N, int C, int OC) {
#pragma omp parallel for
    for (size_t n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) out[n * OC + o] = bias ? bias[o] : 0.0f;
    gemm_any(out, (size_t)OC, inp, (size_t)C, 1, NULL, w, 1, (size_t)C, (int)N, OC, C);
}
// Its backward to the input only (a quantized weight is frozen): dinp(N,C) += dout(N,OC) @ w(OC,C)
static void matmul_backward_q8(float* dinp, const float* dout, const Q8* w, size_t N, int C, int OC) {
    gemm_any(dinp, (size_t)C, dout, (size_t)OC, 1, NULL, w, (size_t)C, 1, (int)N, C, OC);
}

// ---------------------------------------------------------------------------- residual
// y = x1 + x2.  y, x1, x2: (N)
static void residual_forward(float* y, const float* x1, const float* x2, size_t N) {
#pragma omp parallel for
    for (size_t i = 0; i < N; i++) y[i] = x1[i] + x2[i];
}
// forward was y = x1 + x2, so dx1 += dy and dx2 += dy. gpt_backward needs no call to it: there the two
// gradients are the same buffer (see the comment in gpt_backward); it is kept, and tested, for completeness.
static inline void residual_backward(float* dx1, float* dx2, const float* dy, size_t N) {
    for (size_t i = 0; i < N; i++) {
        dx1[i] += dy[i];
        dx2[i] += dy[i];
    }
}

// ---------------------------------------------------------------------------- dropout
// Inverted dropout with a counter-based mask: element i of a tensor is kept (and scaled by 1/(1-p)) unless a
// hash of (seed, i) falls below p. The mask is a pure function of the seed, so backward recomputes it
// instead of storing it, and the result does not depend on threads. PyTorch: F.dropout(x, p, training=True)
// (its masks come from a different generator, so runs are not bit-comparable with PyTorch's).
static inline float dropout_keep_scale(uint64_t seed, size_t i, float p) {
    uint64_t z = seed + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;  // splitmix64 finaliser
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    float u = (float)(z >> 40) / 16777216.0f;  // uniform in [0, 1)
    return u < p ? 0.0f : 1.0f / (1.0f - p);
}
// y = dropout(x) (y may be x). y, x: (n)
static void dropout_forward(float* y, const float* x, size_t n, float p, uint64_t seed) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) y[i] = x[i] * dropout_keep_scale(seed, i, p);
}
// forward was y = x * m_i (m_i = 0 or 1/(1-p)), so dx += dy * m_i.
static void dropout_backward(float* dx, const float* dy, size_t n, float p, uint64_t seed) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * dropout_keep_scale(seed, i, p);
}
// y = x1 + dropout(x2): the residual add with dropout on the branch (GPT-2's resid_pdrop). p = 0: plain add.
static void residual_dropout_forward(float* y, const float* x1, const float* x2, size_t n, float p, uint64_t seed) {
    if (p <= 0.0f) {
        residual_forward(y, x1, x2, n);
        return;
    }
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) y[i] = x1[i] + x2[i] * dropout_keep_scale(seed, i, p);
}

// ---------------------------------------------------------------------------- vector helpers
// Loops the compiler can vectorise without -ffast-math, for attention and softmax. A sum or a dot product
// in one running variable is a chain the compiler may not reorder (fp addition is not associative), so it
// stays scalar: 16 independent partial sums instead fill one 512-bit register (two 256-bit ones, four NEON
// ones). libm's expf is a call per element; exp_poly is Cephes' expf polynomial after the usual 2^k range
// reduction, in plain arithmetic with no branch, so a loop of it vectorises.
static inline float dot_f32(const float* a, const float* b, int n) {
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += a[i + j] * b[i + j];
    float s = 0.0f;
    for (int j = 0; j < 16; j++) s += acc[j];
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}
static inline float max_f32(const float* a, int n) {  // -INFINITY for n = 0
    float m[16];
    for (int j = 0; j < 16; j++) m[j] = -INFINITY;
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) {
            float x = a[i + j];  // (written as m < x ? x : m, gcc vectorises it: vmaxps)
            m[j] = m[j] < x ? x : m[j];
        }
    for (; i < n; i++) m[0] = a[i] > m[0] ? a[i] : m[0];
    float r = m[0];
    for (int j = 1; j < 16; j++) r = m[j] > r ? m[j] : r;
    return r;
}
static inline float exp_poly(float x) {  // e^x for x in [-87, 88], relative error < 1e-7
    x = x > -87.0f ? x : -87.0f;  // written so that NaN becomes -87: the conversion below needs a number
    x = x < 88.0f ? x : 88.0f;    // (a NaN input still gives NaN in GELU: it multiplies x)
    float t = x * 1.44269504088896341f;                      // x / ln 2
    // k = the nearest integer to t, by the 1.5 * 2^23 trick (the sum's last bit is the ones place). Not
    // (int)(t + (t >= 0 ? 0.5 : -0.5)): after the clamps above gcc "threads" that branch into separate code
    // paths, and a loop with control flow is not vectorised (GELU ran scalar, 10x slower).
    float kf = (t + 12582912.0f) - 12582912.0f;
    int32_t k = (int32_t)kf;
    float r = x - kf * 0.693359375f + kf * 2.12194440e-4f;  // x - k ln2, ln2 split in two
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;                                // e^r
    uint32_t bits = (uint32_t)(k + 127) << 23;               // 2^k as a float
    float s;
    memcpy(&s, &bits, 4);
    return p * s;
}
// a[i] = e^(a[i] - shift) for i < n; returns their sum, accumulated in double (16 partial sums). Two loops:
// with the sum in the same loop as exp_poly's clamps, gcc 12 vectorised neither.
static inline double exp_shift_sum(float* a, int n, float shift) {
    for (int i = 0; i < n; i++) a[i] = exp_poly(a[i] - shift);
    double acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += a[i + j];
    double z = 0.0;
    for (int j = 0; j < 16; j++) z += acc[j];
    for (; i < n; i++) z += a[i];
    return z;
}
static inline void softmax_f32(float* a, int n) {  // in place; the max subtracted first: no overflow
    float inv = (float)(1.0 / exp_shift_sum(a, n, max_f32(a, n)));
    for (int j = 0; j < n; j++) a[j] *= inv;
}

// ---------------------------------------------------------------------------- attention
// Multi-head self-attention on a packed qkv, causal (GPT-2, Llama) or bidirectional (the encoder, BERT-style),
// optionally with P prefix keys/values (prefix-tuning) that every position attends to. For batch b, head h,
// query position t, with keys j over the prefix (j < P: pk_j, pv_j) and the sequence (j = P + t2: k_t2, v_t2):
//   s[j] = q_t . key_j / sqrt(hs);  att[j] = softmax(s)[j];  y_t = sum_j att[j] value_j
// causal = 1: t2 <= t (query t sees itself and the past). causal = 0: every t2 < n_b, where n_b = lengths[b]
// (the row's real tokens: padding after them is never a key) or T when lengths is NULL (lengths is unread
// when causal: padding after a row's end is in its future).
// Grouped-query attention (Llama): NKV <= NH key/value heads, and query head h reads kv head h / (NH/NKV),
// so each group of NH/NKV query heads shares one key and value (NKV = NH: every head its own, GPT-2).
// PyTorch: F.scaled_dot_product_attention(q, cat(pk, k), cat(pv, v), attn_mask) (is_causal when P = 0 and causal),
// with k, v repeated NH/NKV times along the head axis (transformers' repeat_kv) for NKV < NH.
// out: (B,T,C) heads concatenated   att: (B,NH,T,P+T) probabilities, saved for backward   qkv: (B,T,QKV):
// q (C), k (KVC), v (KVC) side by side, KVC = NKV*hs, QKV = C + 2 KVC (3C without GQA)
// pk, pv: (P,KVC) this layer's prefix, heads concatenated like k/v; NULL when P = 0   lengths: (B) or NULL
// p > 0: attention dropout on the probabilities (GPT-2's attn_pdrop) with the mask of `seed`; att keeps the
// probabilities before dropout (what softmax backward needs), the mask is recomputed in backward.
// The keys query t of row b attends to are j = 0 .. attention_keys(...) - 1 (the rest of its att row is 0).
static inline int attention_keys(int causal, const int* lengths, int b, int t, int T, int P) {
    return P + (causal ? t + 1 : lengths ? lengths[b] : T);
}
// Scores against a chunk of ATT_CHUNK keys at a time: a query row's dot products with one key each, q . k_j,
// end in a horizontal sum of 16 lanes, a chain of 16 dependent adds per key that took most of attention's
// time (at T = 64, hs = 64: 46 GFLOP/s). Instead the chunk's keys are transposed once per (batch row, head)
// into kt (hs x ATT_CHUNK, key index fastest), and s[jj] = sum_i x[i] kt[i][jj] runs ATT_CHUNK sums side by
// side: fixed-size loops, so the sums stay in vector registers (4 of AVX-512's, 8 of AVX2's) and each x[i]
// is one broadcast. Keys j0 .. j0 + n - 1: prefix keys (j < P) from pk, the rest from the sequence, k_t2 =
// seq + t2 * sstride; the chunk's unused columns are zero.
#define ATT_CHUNK 64
static void attention_chunk_t(float* kt, const float* pk, size_t pstride, const float* seq, size_t sstride, int P,
                              int j0, int n, int hs) {
    int np = P - j0 > 0 ? (P - j0 < n ? P - j0 : n) : 0;  // how many of the chunk's keys are prefix keys
    if (np > 0) gemm_transpose(kt, ATT_CHUNK, pk + (size_t)j0 * pstride, pstride, np, hs);
    if (n > np) gemm_transpose(kt + np, ATT_CHUNK, seq + (size_t)(j0 + np - P) * sstride, sstride, n - np, hs);
    for (int i = 0; i < hs; i++)
        for (int jj = n; jj < ATT_CHUNK; jj++) kt[i * ATT_CHUNK + jj] = 0.0f;
}
#if GEMM_VEC > 0  // the sums as vectors of the matmul's width, or gcc keeps a float array of them on the stack
typedef float att_v __attribute__((vector_size(4 * GEMM_VEC)));
static inline void attention_scores(float* restrict s, const float* restrict x, const float* restrict kt, int hs) {
    att_v acc[ATT_CHUNK / GEMM_VEC];
    for (int v = 0; v < ATT_CHUNK / GEMM_VEC; v++) acc[v] = (att_v){0};
    for (int i = 0; i < hs; i++)
        for (int v = 0; v < ATT_CHUNK / GEMM_VEC; v++) {
            att_v k;
            memcpy(&k, kt + i * ATT_CHUNK + v * GEMM_VEC, sizeof k);
            acc[v] += x[i] * k;
        }
    for (int v = 0; v < ATT_CHUNK / GEMM_VEC; v++) memcpy(s + v * GEMM_VEC, &acc[v], sizeof acc[v]);
}
#else
static inline void attention_scores(float* restrict s, const float* restrict x, const float* restrict kt, int hs) {
    float acc[ATT_CHUNK] = {0};
    for (int i = 0; i < hs; i++)
        for (int jj = 0; jj < ATT_CHUNK; jj++) acc[jj] += x[i] * kt[i * ATT_CHUNK + jj];
    for (int jj = 0; jj < ATT_CHUNK; jj++) s[jj] = acc[jj];
}
#endif
// y[0:hs] += sum_j w[j] row_j for j < n, row_j = base + j * stride: the weighted sum of values (y_t) and of keys
// (dq_t). One j at a time into y in memory, each update waits for the last one's store; here ATT_CHUNK
// channels at a time are held in registers over all j (the plain loop takes what is left, hs = 3 or 8 in tests).
static void attention_rows_sum(float* restrict y, const float* restrict w, int n, const float* base, size_t stride,
                               int hs) {
    int i0 = 0;
#if GEMM_VEC > 0
    for (; i0 + ATT_CHUNK <= hs; i0 += ATT_CHUNK) {
        att_v acc[ATT_CHUNK / GEMM_VEC];
        for (int v = 0; v < ATT_CHUNK / GEMM_VEC; v++) memcpy(&acc[v], y + i0 + v * GEMM_VEC, sizeof acc[v]);
        for (int j = 0; j < n; j++)
            for (int v = 0; v < ATT_CHUNK / GEMM_VEC; v++) {
                att_v r;
                memcpy(&r, base + (size_t)j * stride + i0 + v * GEMM_VEC, sizeof r);
                acc[v] += w[j] * r;
            }
        for (int v = 0; v < ATT_CHUNK / GEMM_VEC; v++) memcpy(y + i0 + v * GEMM_VEC, &acc[v], sizeof acc[v]);
    }
#endif
    for (int j = 0; j < n; j++)
        for (int i = i0; i < hs; i++) y[i] += w[j] * base[(size_t)j * stride + i];
}
// y += sum_jj w[jj] x_(j0+jj) for jj < n, over keys or values j0 .. j0 + n - 1: x_j = pre + j * KVC for the prefix
// (j < P), seq + (j - P) * QKV after it
static void attention_kv_sum(float* y, const float* w, int j0, int n, const float* pre, const float* seq, int KVC,
                             int QKV, int P, int hs) {
    int np = P - j0 > 0 ? (P - j0 < n ? P - j0 : n) : 0;  // how many of them are in the prefix
    if (np > 0) attention_rows_sum(y, w, np, pre + (size_t)j0 * KVC, (size_t)KVC, hs);
    if (n > np) attention_rows_sum(y, w + np, n - np, seq + (size_t)(j0 + np - P) * QKV, (size_t)QKV, hs);
}
// y += sum_j m_j att[j] value_j over a row's nk keys, m_j the dropout mask of element row + j (1 when p = 0);
// w: nk floats of scratch
static void attention_values(float* y, float* w, const float* a, int nk, const float* pv, const float* vseq, int kh,
                             int KVC, int QKV, int P, size_t row, float p, uint64_t seed, int hs) {
    for (int j = 0; j < nk; j++) w[j] = p > 0.0f ? a[j] * dropout_keep_scale(seed, row + j, p) : a[j];
    attention_kv_sum(y, w, 0, nk, pv ? pv + kh : NULL, vseq + kh, KVC, QKV, P, hs);
}
static void attention_forward(float* out, float* att, const float* qkv, const float* pk, const float* pv,
                              const int* lengths, int B, int T, int C, int NH, int NKV, int P, int causal, float p,
                              uint64_t seed) {
    int hs = C / NH, PT = P + T, KVC = NKV * hs, QKV = C + 2 * KVC, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            int kh = (h / group) * hs;  // this head's channels in k and v
            const float* keys = qkv + (size_t)b * T * QKV + C + kh;
            float kt[hs * ATT_CHUNK], s[ATT_CHUNK], wv[PT];  // this chunk's keys, transposed; one row's scores
            // 1. scores, chunk by chunk of keys, into att's rows (the last row has the most keys)
            int nmax = attention_keys(causal, lengths, b, T - 1, T, P);
            for (int j0 = 0; j0 < nmax; j0 += ATT_CHUNK) {
                int n = nmax - j0 < ATT_CHUNK ? nmax - j0 : ATT_CHUNK;
                attention_chunk_t(kt, pk ? pk + kh : NULL, (size_t)KVC, keys, (size_t)QKV, P, j0, n, hs);
                for (int t = 0; t < T; t++) {
                    int nk = attention_keys(causal, lengths, b, t, T, P);
                    if (nk <= j0) continue;
                    float* a = att + (((size_t)b * NH + h) * T + t) * PT + j0;
                    attention_scores(s, qkv + ((size_t)b * T + t) * QKV + h * hs, kt, hs);
                    for (int jj = 0; jj < n && j0 + jj < nk; jj++) a[jj] = s[jj] * scale;
                }
            }
            // 2. each row: softmax over its keys, then y_t = sum_j att[j] value_j
            for (int t = 0; t < T; t++) {
                float* a = att + (((size_t)b * NH + h) * T + t) * PT;
                int nk = attention_keys(causal, lengths, b, t, T, P);
                softmax_f32(a, nk);
                for (int j = nk; j < PT; j++) a[j] = 0.0f;  // masked: exactly zero
                float* y = out + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++) y[i] = 0.0f;
                attention_values(y, wv, a, nk, pv, qkv + (size_t)b * T * QKV + C + KVC, kh, KVC, QKV, P,
                                 (((size_t)b * NH + h) * T + t) * PT, p, seed, hs);
            }
        }
    }
}
// forward was y_t = sum_j m_j att[j] value_j (m_j the dropout mask, 1 without dropout), att = softmax(s),
// s[j] = q_t.key_j * scale. So, per query row t:
//   dvalue_j += m_j att[j] dy_t;  datt[j] = m_j dy_t . value_j;
//   ds[j] = att[j] (datt[j] - sum_i att[i] datt[i])     (softmax backward)
//   dq_t += sum_j ds[j] key_j * scale;  dkey_j += ds[j] q_t * scale
// The sum in softmax backward is dy_t . (sum_i m_i att[i] value_i) = dy_t . y_t, so it is known (y_t recomputed
// as the forward does) before any datt, and each chunk of keys is done in one pass: dy_t . value_j for the
// chunk's values at once, as attention_forward's scores are.
// Each kv head owns its channel slice of dk, dv (and of dpk/dpv), and its group's query heads their slices
// of dq, so kv heads run in parallel without races; a group's heads run in turn inside one thread, adding
// into the shared dk, dv (batch rows share the prefix, so they stay inside one thread too). Accumulates into
// dqkv, and dpk, dpv unless NULL.
static void attention_backward(float* dqkv, float* dpk, float* dpv, const float* dout, const float* qkv,
                               const float* pk, const float* pv, const float* att, const int* lengths, int B, int T,
                               int C, int NH, int NKV, int P, int causal, float p, uint64_t seed) {
    int hs = C / NH, PT = P + T, KVC = NKV * hs, QKV = C + 2 * KVC, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for
    for (int g = 0; g < NKV; g++) {
        float kt[hs * ATT_CHUNK], s[ATT_CHUNK], ds[ATT_CHUNK], y[hs], dot[T], wv[PT];  // on this thread's stack
        int kh = g * hs;
        for (int h = g * group; h < (g + 1) * group; h++) {
            for (int b = 0; b < B; b++) {
                // dot[t] = sum_i att[i] datt[i] = dy_t . y_t
                for (int t = 0; t < T; t++) {
                    size_t row = (((size_t)b * NH + h) * T + t) * PT;
                    for (int i = 0; i < hs; i++) y[i] = 0.0f;
                    attention_values(y, wv, att + row, attention_keys(causal, lengths, b, t, T, P), pv,
                                     qkv + (size_t)b * T * QKV + C + KVC, kh, KVC, QKV, P, row, p, seed, hs);
                    dot[t] = dot_f32(dout + ((size_t)b * T + t) * C + h * hs, y, hs);
                }
                int nmax = attention_keys(causal, lengths, b, T - 1, T, P);
                for (int j0 = 0; j0 < nmax; j0 += ATT_CHUNK) {
                    int n = nmax - j0 < ATT_CHUNK ? nmax - j0 : ATT_CHUNK;
                    attention_chunk_t(kt, pv ? pv + kh : NULL, (size_t)KVC, qkv + (size_t)b * T * QKV + C + KVC + kh,
                                      (size_t)QKV, P, j0, n, hs);  // this chunk's values, transposed
                    for (int t = 0; t < T; t++) {
                        int nk = attention_keys(causal, lengths, b, t, T, P);
                        if (nk <= j0) continue;
                        const float* a = att + (((size_t)b * NH + h) * T + t) * PT;
                        const float* dy = dout + ((size_t)b * T + t) * C + h * hs;
                        const float* q = qkv + ((size_t)b * T + t) * QKV + h * hs;
                        float* dq = dqkv + ((size_t)b * T + t) * QKV + h * hs;
                        size_t row = (((size_t)b * NH + h) * T + t) * PT;
                        attention_scores(s, dy, kt, hs);  // s[jj] = dy_t . value_(j0+jj)
                        int w = nk - j0 < n ? nk - j0 : n;
                        for (int jj = 0; jj < w; jj++) {
                            int j = j0 + jj, pre = j < P;
                            float mj = p > 0.0f ? dropout_keep_scale(seed, row + j, p) : 1.0f;
                            float* dv = pre ? (dpv ? dpv + (size_t)j * KVC + kh : NULL)
                                            : dqkv + ((size_t)b * T + j - P) * QKV + C + KVC + kh;
                            if (dv) for (int i = 0; i < hs; i++) dv[i] += mj * a[j] * dy[i];
                            ds[jj] = a[j] * (mj * s[jj] - dot[t]) * scale;
                            float* dk = pre ? (dpk ? dpk + (size_t)j * KVC + kh : NULL)
                                            : dqkv + ((size_t)b * T + j - P) * QKV + C + kh;
                            if (dk) for (int i = 0; i < hs; i++) dk[i] += ds[jj] * q[i];
                        }
                        // dq_t += sum_jj ds[jj] key_(j0+jj)
                        attention_kv_sum(dq, ds, j0, w, pk ? pk + kh : NULL, qkv + (size_t)b * T * QKV + C + kh, KVC, QKV,
                                         P, hs);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------- rope
// Rotary position embedding (Su et al. 2021) as Hugging Face's Llama applies it ("rotate_half"): in each head
// vector x (hs), channel i of the first half and channel i + hs/2 of the second form a pair, turned by the
// angle t * f_i at position t, f_i = theta^(-2i/hs) (rope_factor > 1: linear scaling, t / factor):
//   y_i = x_i cos - x_{i+hs/2} sin;   y_{i+hs/2} = x_{i+hs/2} cos + x_i sin
// so q_t . k_s depends on t - s only. Applied in place to the NH query heads and the NKV key heads of qkv.
// PyTorch: q * cos + rotate_half(q) * sin with cos, sin = cat(freqs, freqs).cos(), .sin()
// qkv: (B,T,QKV) as attention_forward's   cs: (maxT, hs/2, 2) cos and sin of each position and pair (rope_table)
static void rope_table(float* cs, int maxT, int hs, float theta, float factor) {
    for (int t = 0; t < maxT; t++)
        for (int i = 0; i < hs / 2; i++) {  // in double, then rounded: the angle itself is exact to fp32
            double f = pow((double)theta, -2.0 * i / hs), a = (factor > 1.0f ? t / (double)factor : (double)t) * f;
            cs[((size_t)t * (hs / 2) + i) * 2] = (float)cos(a);
            cs[((size_t)t * (hs / 2) + i) * 2 + 1] = (float)sin(a);
        }
}
// sign +1 turns forward; sign -1 turns back by the same angle, which is the backward (a rotation's transpose is
// its inverse): dx_i = dy_i cos + dy_{i+hs/2} sin, dx_{i+hs/2} = dy_{i+hs/2} cos - dy_i sin. pos0: the first
// row's position (0 in training; the decode step's position when T = 1).
static void rope_apply(float* qkv, const float* cs, int B, int T, int C, int NH, int NKV, int pos0, float sign) {
    int hs = C / NH, half = hs / 2, QKV = C + 2 * NKV * hs;
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float* row = qkv + ((size_t)b * T + t) * QKV;
            const float* c = cs + (size_t)(pos0 + t) * half * 2;
            for (int h = 0; h < NH + NKV; h++) {  // NH query heads, then NKV key heads (they follow q in the row)
                float* x = row + h * hs;
                for (int i = 0; i < half; i++) {
                    float co = c[2 * i], si = sign * c[2 * i + 1], x1 = x[i], x2 = x[i + half];
                    x[i] = x1 * co - x2 * si;
                    x[i + half] = x2 * co + x1 * si;
                }
            }
        }
}

// ---------------------------------------------------------------------------- gelu
// y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).  PyTorch: nn.GELU(approximate='tanh')
// y, x: (N)
//
// tanh is computed from exp_poly ("vector helpers" above), which the compiler vectorises, unlike libm's
// tanhf: 3x faster. Its error is absolute, at most 1.3e-7 over
// [-12, 12] (libm's tanhf: 1.0e-7), which in GELU is far below the fp32 noise the tests allow.
#define GELU_SCALE 0.7978845608028654f  // sqrt(2/pi)
static inline float tanh_poly(float u) {  // tanh(u) = (e^2u - 1) / (e^2u + 1); |u| > 9 is +-1 in fp32
    u = u > -9.0f ? u : -9.0f;
    u = u < 9.0f ? u : 9.0f;
    float e = exp_poly(2.0f * u);
    return (e - 1.0f) / (e + 1.0f);
}
static void gelu_forward(float* y, const float* x, size_t N) {
#pragma omp parallel for simd
    for (size_t i = 0; i < N; i++) {
        float xi = x[i];
        y[i] = 0.5f * xi * (1.0f + tanh_poly(GELU_SCALE * (xi + 0.044715f * xi * xi * xi)));
    }
}
// forward was y = 0.5 x (1 + tanh(u)), u = s (x + 0.044715 x^3), so
//   dy/dx = 0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) s (1 + 3 * 0.044715 x^2).  Accumulates into dx.
static void gelu_backward(float* dx, const float* x, const float* dy, size_t N) {
#pragma omp parallel for simd
    for (size_t i = 0; i < N; i++) {
        float xi = x[i];
        float th = tanh_poly(GELU_SCALE * (xi + 0.044715f * xi * xi * xi));
        float grad = 0.5f * (1.0f + th) + 0.5f * xi * (1.0f - th * th) * GELU_SCALE * (1.0f + 3.0f * 0.044715f * xi * xi);
        dx[i] += grad * dy[i];
    }
}

// ---------------------------------------------------------------------------- swiglu
// y = silu(gate) * up, silu(g) = g sigmoid(g): Llama's MLP nonlinearity (Shazeer 2020), between the fused
// gate|up matmul and down_proj. PyTorch: F.silu(gate_proj(x)) * up_proj(x)
// y: (N,F)   x: (N,2F), each row gate (F) then up (F)
static void swiglu_forward(float* y, const float* x, size_t N, int F) {
#pragma omp parallel for
    for (size_t n = 0; n < N; n++)
        for (int j = 0; j < F; j++) {
            float g = x[n * 2 * F + j], u = x[n * 2 * F + F + j];
            y[n * F + j] = g / (1.0f + exp_poly(-g)) * u;
        }
}
// forward was y = g sig(g) u. So du += dy g sig(g), dg += dy u sig(g) (1 + g (1 - sig(g))). Accumulates into dx.
static void swiglu_backward(float* dx, const float* x, const float* dy, size_t N, int F) {
#pragma omp parallel for
    for (size_t n = 0; n < N; n++)
        for (int j = 0; j < F; j++) {
            float g = x[n * 2 * F + j], u = x[n * 2 * F + F + j], sg = 1.0f / (1.0f + exp_poly(-g)), d = dy[n * F + j];
            dx[n * 2 * F + j] += d * u * sg * (1.0f + g * (1.0f - sg));
            dx[n * 2 * F + F + j] += d * g * sg;
        }
}

// ---------------------------------------------------------------------------- softmax + cross-entropy
// probs = softmax(logits[:V]); loss[n] = -log(probs[n, target[n]]); targets of -1 are ignored (loss 0).
// Returns the mean loss over the non-ignored positions, or NaN when every target is ignored (undefined).
// PyTorch: F.cross_entropy(logits[..., :V].view(-1, V), targets.view(-1), ignore_index=-1)
// probs: (N,Vp), zero in the padded columns   losses: (N)   logits: (N,Vp)   targets: (N)
static float crossentropy_forward(float* probs, float* losses, const float* logits, const int* targets, size_t N,
                                  int V, int Vp) {
#pragma omp parallel for
    for (size_t n = 0; n < N; n++) {
        const float* lg = logits + n * Vp;
        float* p = probs + n * Vp;
        float maxv = max_f32(lg, V);
        memcpy(p, lg, (size_t)V * sizeof(float));
        double z = exp_shift_sum(p, V, maxv);  // in double: V terms, and the loss is judged to 1e-5 relative
        float inv = (float)(1.0 / z);
        for (int i = 0; i < V; i++) p[i] *= inv;
        for (int i = V; i < Vp; i++) p[i] = 0.0f;
        int tg = targets[n];
        // -log p[tg] = log z - (lg[tg] - max): exact even when p[tg] underflows to 0
        losses[n] = tg < 0 ? 0.0f : (float)(log(z) - (double)(lg[tg] - maxv));
    }
    // the mean, summed in a fixed order so the result does not depend on the number of threads
    double sum = 0.0;
    size_t count = 0;
    for (size_t n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        sum += losses[n];
        count++;
    }
    return count ? (float)(sum / count) : NAN;
}
// forward was loss = mean_n -log softmax(logits_n)[target_n], so for a kept position
//   dlogits[n,i] = (probs[n,i] - [i == target_n]) / count,  and 0 for ignored positions and padded columns.
// Writes (=) dlogits. scale multiplies the whole gradient (1 normally; gradient accumulation weights each
// micro-batch by its share of the targets, so k micro-batches add up to the mean over all of them).
static void crossentropy_backward(float* dlogits, const float* probs, const int* targets, size_t N, int V, int Vp,
                                  float scale) {
    size_t count = 0;
    for (size_t n = 0; n < N; n++) count += targets[n] >= 0;
    float w = count ? scale / count : 0.0f;
#pragma omp parallel for
    for (size_t n = 0; n < N; n++) {
        float* d = dlogits + n * Vp;
        const float* p = probs + n * Vp;
        int tg = targets[n];
        if (tg < 0) {
            memset(d, 0, (size_t)Vp * sizeof(float));
            continue;
        }
        for (int i = 0; i < V; i++) d[i] = p[i] * w;
        d[tg] -= w;
        for (int i = V; i < Vp; i++) d[i] = 0.0f;
    }
}
