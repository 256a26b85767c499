// model.h: GPT-2 for training, in plain C. The specification of this project.
//
// Everything the model computes lives here: the configuration, the one parameter table, every kernel
// (forward directly above its backward), the whole-model forward and backward, and AdamW. train.c adds
// files and the command line; test_gpt.c holds all of it to PyTorch and to finite differences.
//
// Legend (used in every shape comment; PyTorch order, the last axis is contiguous in memory):
//   B batch   T time (sequence length)   C channels   V vocab   Vp vocab padded to a multiple of 64
//   L layers  NH heads   hs head size (C/NH)   OC output channels   maxT longest sequence (positions)
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// ---------------------------------------------------------------------------- error helpers
// Every failure a user can cause ends here: one line naming what and where, one hint line, exit 1.
static void die(const char* file, int line, const char* what, const char* hint) {
    fprintf(stderr, "error: %s (%s:%d)\n", what, file, line);
    if (hint && hint[0]) fprintf(stderr, "hint: %s\n", hint);
    exit(1);
}
#define DIE(what, hint) die(__FILE__, __LINE__, what, hint)

static void* malloc_check(size_t size, const char* file, int line) {
    void* p = malloc(size ? size : 1);
    if (!p) {
        char msg[128];
        snprintf(msg, sizeof msg, "out of memory asking for %zu bytes", size);
        die(file, line, msg, "use a smaller --batch/--seq or a smaller model");
    }
    return p;
}
#define mallocCheck(size) malloc_check(size, __FILE__, __LINE__)

static void* calloc_check(size_t n, size_t size, const char* file, int line) {
    void* p = malloc_check(n * size, file, line);
    memset(p, 0, n * size);
    return p;
}
#define callocCheck(n, size) calloc_check(n, size, __FILE__, __LINE__)

// ---------------------------------------------------------------------------- config
typedef struct {
    int maxT;  // longest sequence, e.g. 1024
    int V;     // vocabulary size, e.g. 50257
    int Vp;    // V padded up to a multiple of 64 (50304): the padded rows are zero and never predicted
    int L;     // number of blocks
    int NH;    // number of heads
    int C;     // channels
} GPTConfig;

static int pad_vocab(int V) { return (V + 63) / 64 * 64; }

// ---------------------------------------------------------------------------- the parameter table
// The one list of parameters, in memory order (this is also llm.c's order). Allocation, checkpoint I/O, the
// loaders' shape checks, AdamW's decay groups and the test report all walk this table.
// Shapes use the legend's symbols; "3C" means 3*C. Per-layer tensors are stacked along a leading L axis.
// decay: 1 for matrices (each per-layer slice is 2-D), 0 for biases and LayerNorm parameters (nanoGPT's
// convention). Note it is not "ndim >= 2" of the stacked shape: qkvb is (L,3C) but each layer's bias is 1-D.
#define NUM_PARAMS 16
typedef struct {
    const char* name;
    const char* shape;
    int decay;
    const char* hf;   // its name in a Hugging Face GPT-2 checkpoint (after "h.N." for per-layer tensors)
    int hf_transposed; // 1 where HF's Conv1D stores the weight (in, out), the transpose of ours
} ParamSpec;
static const ParamSpec PARAM_TABLE[NUM_PARAMS] = {
    // name        shape      decay  Hugging Face name       transposed
    {"wte", "Vp,C", 1, "wte.weight", 0},              // token embedding, also the LM head (tied); HF stores V rows
    {"wpe", "maxT,C", 1, "wpe.weight", 0},            // position embedding
    {"ln1w", "L,C", 0, "ln_1.weight", 0},             // LayerNorm before attention
    {"ln1b", "L,C", 0, "ln_1.bias", 0},
    {"qkvw", "L,3C,C", 1, "attn.c_attn.weight", 1},   // attention q,k,v projection, nn.Linear layout (out, in)
    {"qkvb", "L,3C", 0, "attn.c_attn.bias", 0},
    {"attprojw", "L,C,C", 1, "attn.c_proj.weight", 1}, // attention output projection
    {"attprojb", "L,C", 0, "attn.c_proj.bias", 0},
    {"ln2w", "L,C", 0, "ln_2.weight", 0},             // LayerNorm before the MLP
    {"ln2b", "L,C", 0, "ln_2.bias", 0},
    {"fcw", "L,4C,C", 1, "mlp.c_fc.weight", 1},       // MLP up projection
    {"fcb", "L,4C", 0, "mlp.c_fc.bias", 0},
    {"fcprojw", "L,C,4C", 1, "mlp.c_proj.weight", 1}, // MLP down projection
    {"fcprojb", "L,C", 0, "mlp.c_proj.bias", 0},
    {"lnfw", "C", 0, "ln_f.weight", 0},               // final LayerNorm
    {"lnfb", "C", 0, "ln_f.bias", 0},
};

// The same tensors by name or by index. The union keeps the names in the table's order: a static
// assertion below checks the count, and test_gpt.c checks each name's index against the table.
typedef union {
    struct {
        float *wte, *wpe, *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb;
        float *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb, *lnfw, *lnfb;
    };
    float* t[NUM_PARAMS];
} ParameterTensors;
_Static_assert(sizeof(ParameterTensors) == NUM_PARAMS * sizeof(float*), "ParameterTensors drifted from PARAM_TABLE");

// Evaluates a shape string like "L,3C,C" for a config and batch (B, T may be 0 for parameters).
// Writes up to 5 dims, returns the number of dims.
static int shape_dims(const char* shape, const GPTConfig* c, int B, int T, size_t dims[5]) {
    int nd = 0;
    const char* s = shape;
    while (*s && nd < 5) {
        size_t mult = 1;
        if (*s >= '0' && *s <= '9') mult = (size_t)strtoul(s, (char**)&s, 10);
        size_t v = 0;
        if (!strncmp(s, "maxT", 4)) { v = (size_t)c->maxT; s += 4; }
        else if (!strncmp(s, "Vp", 2)) { v = (size_t)c->Vp; s += 2; }
        else if (!strncmp(s, "NH", 2)) { v = (size_t)c->NH; s += 2; }
        else if (*s == 'V') { v = (size_t)c->V; s += 1; }
        else if (*s == 'L') { v = (size_t)c->L; s += 1; }
        else if (*s == 'C') { v = (size_t)c->C; s += 1; }
        else if (*s == 'B') { v = (size_t)B; s += 1; }
        else if (*s == 'T') { v = (size_t)T; s += 1; }
        else { fprintf(stderr, "bad shape symbol in '%s'\n", shape); exit(1); }
        dims[nd++] = mult * v;
        if (*s == ',') s++;
    }
    return nd;
}

static size_t shape_numel(const char* shape, const GPTConfig* c, int B, int T) {
    size_t dims[5], n = 1;
    int nd = shape_dims(shape, c, B, T, dims);
    for (int i = 0; i < nd; i++) n *= dims[i];
    return n;
}

static size_t param_numel(const GPTConfig* c, int i) { return shape_numel(PARAM_TABLE[i].shape, c, 0, 0); }

static size_t num_parameters(const GPTConfig* c) {
    size_t n = 0;
    for (int i = 0; i < NUM_PARAMS; i++) n += param_numel(c, i);
    return n;
}

// Carves one allocation into the tensors of the table.
static void point_parameters(ParameterTensors* p, float* memory, const GPTConfig* c) {
    for (int i = 0; i < NUM_PARAMS; i++) {
        p->t[i] = memory;
        memory += param_numel(c, i);
    }
}

// ---------------------------------------------------------------------------- activations
// What the forward pass keeps for the backward pass, also one table in memory order.
#define NUM_ACTS 22
static const struct { const char* name; const char* shape; } ACT_TABLE[NUM_ACTS] = {
    {"encoded", "B,T,C"},        // token + position embedding
    {"ln1", "L,B,T,C"},          // LayerNorm 1 output
    {"ln1_mean", "L,B,T"},       // saved for LayerNorm 1 backward
    {"ln1_rstd", "L,B,T"},
    {"qkv", "L,B,T,3C"},         // q, k, v
    {"atty", "L,B,T,C"},         // attention output, heads concatenated
    {"att", "L,B,NH,T,T"},       // attention probabilities (post softmax, zero above the diagonal)
    {"attproj", "L,B,T,C"},      // after the output projection
    {"residual2", "L,B,T,C"},    // residual stream after attention
    {"ln2", "L,B,T,C"},
    {"ln2_mean", "L,B,T"},
    {"ln2_rstd", "L,B,T"},
    {"fch", "L,B,T,4C"},         // MLP hidden, before GELU
    {"fch_gelu", "L,B,T,4C"},    // MLP hidden, after GELU
    {"fcproj", "L,B,T,C"},       // MLP output
    {"residual3", "L,B,T,C"},    // residual stream after the block
    {"lnf", "B,T,C"},
    {"lnf_mean", "B,T"},
    {"lnf_rstd", "B,T"},
    {"logits", "B,T,Vp"},
    {"probs", "B,T,Vp"},         // softmax of the first V logits; zero in the padded columns
    {"losses", "B,T"},           // per-position loss, 0 where the target is ignored
};
typedef union {
    struct {
        float *encoded, *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att, *attproj, *residual2, *ln2, *ln2_mean,
            *ln2_rstd, *fch, *fch_gelu, *fcproj, *residual3, *lnf, *lnf_mean, *lnf_rstd, *logits, *probs, *losses;
    };
    float* t[NUM_ACTS];
} ActivationTensors;
_Static_assert(sizeof(ActivationTensors) == NUM_ACTS * sizeof(float*), "ActivationTensors drifted from ACT_TABLE");

// Gradients of activations. Backward walks one layer at a time, so apart from the residual stream and the
// logits these are one layer's worth and reused by every layer (each is zeroed before the layer uses it).
#define NUM_GRAD_ACTS 7
static const struct { const char* name; const char* shape; } GRAD_ACT_TABLE[NUM_GRAD_ACTS] = {
    {"dlogits", "B,T,Vp"},
    {"dresidual", "B,T,C"},   // gradient of the residual stream, flowing down through the layers
    {"dln", "B,T,C"},         // gradient of a LayerNorm output (ln1, ln2 or lnf)
    {"dqkv", "B,T,3C"},
    {"datty", "B,T,C"},
    {"dfch", "B,T,4C"},
    {"dfch_gelu", "B,T,4C"},
};
typedef union {
    struct {
        float *dlogits, *dresidual, *dln, *dqkv, *datty, *dfch, *dfch_gelu;
    };
    float* t[NUM_GRAD_ACTS];
} GradActTensors;
_Static_assert(sizeof(GradActTensors) == NUM_GRAD_ACTS * sizeof(float*), "GradActTensors drifted");

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
// out: (B,T,C)   inp: (B,T) ids in [0,V)   wte: (Vp,C)   wpe: (maxT,C)
static void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float* o = out + ((size_t)b * T + t) * C;
            const float* we = wte + (size_t)inp[b * T + t] * C;
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
// micro-kernel computes an
// MR x NR block of Cm in registers: MR*NR = 8*32 floats = 16 AVX-512 registers of accumulators. It is plain C
// with fixed trip counts, which gcc -O3 -march=native turns into broadcast + FMA instructions.
#define GEMM_MR 8
#define GEMM_NR 32
#define GEMM_KC 256

// acc = Ap (MR x kc, packed k-major) times Bp (kc x NR, packed k-major); then Cm[:mr, :nr] += acc
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
    if (mr == GEMM_MR && nr == GEMM_NR) {
        for (int i = 0; i < GEMM_MR; i++)
            for (int j = 0; j < GEMM_NR; j++) Cm[i * ldc + j] += acc[i][j];
    } else {  // edge tile: only the valid corner (the packed buffers were zero-padded)
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++) Cm[i * ldc + j] += acc[i][j];
    }
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
        } else {  // rows of A are contiguous: walk each row
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

// Packs Bm rows [p0, p0+kc) x cols [j0, j0+nc) into panels of NR columns: dst[panel][k][NR], zero padded.
static void gemm_pack_b(float* dst, const float* B, size_t sbk, size_t sbj, int p0, int kc, int j0, int nc) {
    for (int jp = 0; jp < nc; jp += GEMM_NR) {
        float* d = dst + (size_t)jp * kc;
        int nr = nc - jp < GEMM_NR ? nc - jp : GEMM_NR;
        if (sbj == 1) {  // rows of Bm are contiguous: copy NR at a time
            for (int k = 0; k < kc; k++) {
                const float* src = B + (size_t)(p0 + k) * sbk + (size_t)(j0 + jp);
                for (int j = 0; j < GEMM_NR; j++) d[k * GEMM_NR + j] = j < nr ? src[j] : 0.0f;
            }
        } else {  // columns of Bm are contiguous (a transposed weight): walk each column
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
// activations, BT = 256 rows) is packed whole for each K-slice, shared by all threads: it then stays in L2
// and is packed once instead of once per tile. Threads split the large dimension into 256-wide blocks, each
// packing its own block of the other operand. Grow-only buffers: no allocation in the steady state.
#define GEMM_BLOCK 256  // width of a thread's block of the large dimension (multiple of MR and NR)
static float* gemm_shared;
static size_t gemm_shared_cap;

static void gemm(float* Cm, size_t ldc, const float* A, size_t sai, size_t sak, const float* B, size_t sbk,
                 size_t sbj, int M, int N, int K) {
    int a_small = M <= N;
    int small = a_small ? M : N, large = a_small ? N : M;
    int small_r = a_small ? GEMM_MR : GEMM_NR;  // panel width of the small operand
    size_t need = (size_t)((small + small_r - 1) / small_r * small_r) * GEMM_KC;
    if (need > gemm_shared_cap) {
        free(gemm_shared);
        gemm_shared = (float*)mallocCheck(need * sizeof(float));
        gemm_shared_cap = need;
    }
    int npanels = (small + small_r - 1) / small_r, nblocks = (large + GEMM_BLOCK - 1) / GEMM_BLOCK;
    for (int p0 = 0; p0 < K; p0 += GEMM_KC) {
        int kc = K - p0 < GEMM_KC ? K - p0 : GEMM_KC;
#pragma omp parallel
        {
            // 1. pack the small operand whole, its panels split among the threads
#pragma omp for
            for (int pn = 0; pn < npanels; pn++) {
                int off = pn * small_r, w = small - off < small_r ? small - off : small_r;
                if (a_small) gemm_pack_a(gemm_shared + (size_t)off * kc, A, sai, sak, off, w, p0, kc);
                else gemm_pack_b(gemm_shared + (size_t)off * kc, B, sbk, sbj, p0, kc, off, w);
            }
            // (implicit barrier: everyone sees the packed small operand)
            // 2. each block of the large dimension: pack it, then run the micro-kernel over all pairs of panels
#pragma omp for schedule(dynamic, 1)
            for (int blk = 0; blk < nblocks; blk++) {
                static _Thread_local float big[GEMM_BLOCK * GEMM_KC] __attribute__((aligned(64)));
                int b0 = blk * GEMM_BLOCK, bw = large - b0 < GEMM_BLOCK ? large - b0 : GEMM_BLOCK;
                if (a_small) {  // big = B columns [b0, b0+bw); the B panel stays in L1 while A panels stream
                    gemm_pack_b(big, B, sbk, sbj, p0, kc, b0, bw);
                    for (int jp = 0; jp < bw; jp += GEMM_NR)
                        for (int ip = 0; ip < M; ip += GEMM_MR)
                            gemm_micro(kc, gemm_shared + (size_t)ip * kc, big + (size_t)jp * kc,
                                       Cm + (size_t)ip * ldc + b0 + jp, ldc, M - ip < GEMM_MR ? M - ip : GEMM_MR,
                                       bw - jp < GEMM_NR ? bw - jp : GEMM_NR);
                } else {  // big = A rows [b0, b0+bw); the A panel stays in L1 while B panels stream
                    gemm_pack_a(big, A, sai, sak, b0, bw, p0, kc);
                    for (int ip = 0; ip < bw; ip += GEMM_MR)
                        for (int jp = 0; jp < N; jp += GEMM_NR)
                            gemm_micro(kc, big + (size_t)ip * kc, gemm_shared + (size_t)jp * kc,
                                       Cm + (size_t)(b0 + ip) * ldc + jp, ldc, bw - ip < GEMM_MR ? bw - ip : GEMM_MR,
                                       N - jp < GEMM_NR ? N - jp : GEMM_NR);
                }
            }
        }
    }
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
    if (dbias) {
#pragma omp parallel for
        for (int o = 0; o < OC; o++) {
            float s = 0.0f;
            for (size_t n = 0; n < N; n++) s += dout[n * OC + o];
            dbias[o] += s;
        }
    }
}

// ---------------------------------------------------------------------------- attention
// Causal multi-head self-attention on a packed qkv. For each batch b, head h, query position t:
//   s[t2] = q_t . k_t2 / sqrt(hs) for t2 <= t;  att[t2] = softmax(s)[t2];  y_t = sum_t2 att[t2] v_t2
// PyTorch: F.scaled_dot_product_attention(q, k, v, is_causal=True)
// out: (B,T,C) heads concatenated   att: (B,NH,T,T) probabilities, saved for backward   qkv: (B,T,3C)
static void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(3)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                const float* q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float* a = att + (((size_t)b * NH + h) * T + t) * T;
                float maxv = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * hs;
                    float s = 0.0f;
                    for (int i = 0; i < hs; i++) s += q[i] * k[i];
                    s *= scale;
                    a[t2] = s;
                    if (s > maxv) maxv = s;
                }
                float sum = 0.0f;  // subtract the max before exp: same softmax, no overflow
                for (int t2 = 0; t2 <= t; t2++) {
                    a[t2] = expf(a[t2] - maxv);
                    sum += a[t2];
                }
                for (int t2 = 0; t2 <= t; t2++) a[t2] /= sum;
                for (int t2 = t + 1; t2 < T; t2++) a[t2] = 0.0f;  // masked: exactly zero
                float* y = out + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++) y[i] = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* v = qkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * hs;
                    for (int i = 0; i < hs; i++) y[i] += a[t2] * v[i];
                }
            }
        }
    }
}
// forward was y_t = sum_t2 att[t2] v_t2, att = softmax(s), s[t2] = q_t.k_t2 * scale. So, per query row t:
//   dv_t2 += att[t2] dy_t;  datt[t2] = dy_t . v_t2;
//   ds[t2] = att[t2] (datt[t2] - sum_j att[j] datt[j])     (softmax backward)
//   dq_t += sum_t2 ds[t2] k_t2 * scale;  dk_t2 += ds[t2] q_t * scale
// One (b, h) pair owns its slice of dqkv, so pairs run in parallel without races. Accumulates into dqkv.
static void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T,
                               int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float datt[T];  // one row of d(att), on this thread's stack
            for (int t = 0; t < T; t++) {
                const float* a = att + (((size_t)b * NH + h) * T + t) * T;
                const float* dy = dout + ((size_t)b * T + t) * C + h * hs;
                const float* q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float* dq = dqkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float dot = 0.0f;  // sum_j att[j] datt[j]
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* v = qkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * hs;
                    float* dv = dqkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * hs;
                    float d = 0.0f;
                    for (int i = 0; i < hs; i++) {
                        d += dy[i] * v[i];
                        dv[i] += a[t2] * dy[i];
                    }
                    datt[t2] = d;
                    dot += a[t2] * d;
                }
                for (int t2 = 0; t2 <= t; t2++) {
                    float ds = a[t2] * (datt[t2] - dot) * scale;
                    const float* k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * hs;
                    float* dk = dqkv + ((size_t)b * T + t2) * 3 * C + C + h * hs;
                    for (int i = 0; i < hs; i++) {
                        dq[i] += ds * k[i];
                        dk[i] += ds * q[i];
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------- gelu
// y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).  PyTorch: nn.GELU(approximate='tanh')
// y, x: (N)
#define GELU_SCALE 0.7978845608028654f  // sqrt(2/pi)
static void gelu_forward(float* y, const float* x, size_t N) {
#pragma omp parallel for
    for (size_t i = 0; i < N; i++) {
        float xi = x[i];
        y[i] = 0.5f * xi * (1.0f + tanhf(GELU_SCALE * (xi + 0.044715f * xi * xi * xi)));
    }
}
// forward was y = 0.5 x (1 + tanh(u)), u = s (x + 0.044715 x^3), so
//   dy/dx = 0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) s (1 + 3 * 0.044715 x^2).  Accumulates into dx.
static void gelu_backward(float* dx, const float* x, const float* dy, size_t N) {
#pragma omp parallel for
    for (size_t i = 0; i < N; i++) {
        float xi = x[i];
        float th = tanhf(GELU_SCALE * (xi + 0.044715f * xi * xi * xi));
        float grad = 0.5f * (1.0f + th) + 0.5f * xi * (1.0f - th * th) * GELU_SCALE * (1.0f + 3.0f * 0.044715f * xi * xi);
        dx[i] += grad * dy[i];
    }
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
        float maxv = -INFINITY;
        for (int i = 0; i < V; i++) if (lg[i] > maxv) maxv = lg[i];
        double z = 0.0;  // the normaliser in double: V terms, and the loss is judged to 1e-5 relative
        for (int i = 0; i < V; i++) {
            p[i] = expf(lg[i] - maxv);
            z += p[i];
        }
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
// Writes (=) dlogits.
static void crossentropy_backward(float* dlogits, const float* probs, const int* targets, size_t N, int V, int Vp) {
    size_t count = 0;
    for (size_t n = 0; n < N; n++) count += targets[n] >= 0;
    float w = count ? 1.0f / count : 0.0f;
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

// ---------------------------------------------------------------------------- the model
typedef struct {
    GPTConfig config;
    ParameterTensors params;  // shapes: PARAM_TABLE
    float* params_memory;
    size_t num_parameters;
    ParameterTensors grads;   // same shapes as params; allocated on the first backward
    float* grads_memory;
    float* m_memory;          // AdamW first moment, allocated on the first update
    float* v_memory;          // AdamW second moment
    ActivationTensors acts;   // shapes: ACT_TABLE at (B, T)
    float* acts_memory;
    GradActTensors gacts;     // shapes: GRAD_ACT_TABLE at (B, T)
    float* gacts_memory;
    int B, T;                 // the batch shape the activations were allocated for (0 before the first forward)
    int* inputs;              // (B,T) copy of the last forward's inputs, for backward
    int* targets;             // (B,T) copy of the last forward's targets, or all -1 when none were given
    float mean_loss;          // the last forward's loss; NaN when no targets
} GPT;

static void gpt_build(GPT* model, GPTConfig config) {
    memset(model, 0, sizeof(*model));
    model->config = config;
    model->num_parameters = num_parameters(&config);
    model->params_memory = (float*)callocCheck(model->num_parameters, sizeof(float));
    point_parameters(&model->params, model->params_memory, &config);
    model->mean_loss = NAN;
}

// GPT-2's initialisation: weights ~ N(0, 0.02); the two projections into the residual stream (attprojw,
// fcprojw) scaled down by 1/sqrt(2L) so the stream's variance does not grow with depth; biases 0; LayerNorm
// weights 1. The padded rows of wte stay 0. Seeded: the same seed gives the same model.
static void gpt_init_random(GPT* model, uint64_t* rng) {
    const GPTConfig* c = &model->config;
    float resid_std = 0.02f / sqrtf(2.0f * c->L);
    for (int i = 0; i < NUM_PARAMS; i++) {
        float* p = model->params.t[i];
        size_t n = param_numel(c, i);
        const char* name = PARAM_TABLE[i].name;
        if (!strcmp(name, "ln1w") || !strcmp(name, "ln2w") || !strcmp(name, "lnfw")) {
            for (size_t j = 0; j < n; j++) p[j] = 1.0f;
        } else if (!PARAM_TABLE[i].decay) {
            memset(p, 0, n * sizeof(float));
        } else {
            float std = (!strcmp(name, "attprojw") || !strcmp(name, "fcprojw")) ? resid_std : 0.02f;
            if (!strcmp(name, "wte")) n = (size_t)c->V * c->C;  // padded rows stay zero
            for (size_t j = 0; j < n; j++) p[j] = std * random_normal(rng);
        }
    }
}

static void gpt_free(GPT* model) {
    free(model->params_memory);
    free(model->grads_memory);
    free(model->m_memory);
    free(model->v_memory);
    free(model->acts_memory);
    free(model->gacts_memory);
    free(model->inputs);
    free(model->targets);
    memset(model, 0, sizeof(*model));
}

// (Re)allocates activations for a batch shape. Memory is one block per table, carved into tensors.
static void gpt_alloc_activations(GPT* model, int B, int T) {
    if (model->B == B && model->T == T) return;
    const GPTConfig* c = &model->config;
    free(model->acts_memory);
    free(model->gacts_memory);
    free(model->inputs);
    free(model->targets);
    size_t n = 0;
    for (int i = 0; i < NUM_ACTS; i++) n += shape_numel(ACT_TABLE[i].shape, c, B, T);
    model->acts_memory = (float*)callocCheck(n, sizeof(float));
    float* p = model->acts_memory;
    for (int i = 0; i < NUM_ACTS; i++) {
        model->acts.t[i] = p;
        p += shape_numel(ACT_TABLE[i].shape, c, B, T);
    }
    model->gacts_memory = NULL;  // allocated on the first backward: inference never needs it
    model->inputs = (int*)mallocCheck((size_t)B * T * sizeof(int));
    model->targets = (int*)mallocCheck((size_t)B * T * sizeof(int));
    model->B = B;
    model->T = T;
}

// Checks token ids: inputs in [0, V), targets in [0, V) or -1 (ignored). Returns the first bad index or -1.
static long gpt_check_tokens(const GPTConfig* c, const int* inputs, const int* targets, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (inputs[i] < 0 || inputs[i] >= c->V) return (long)i;
        if (targets && (targets[i] < -1 || targets[i] >= c->V)) return (long)i;
    }
    return -1;
}

// Forward pass. inputs (B,T) token ids; targets (B,T) next-token ids with -1 = ignore, or NULL for
// inference. Fills acts (logits, probs, ...) and model->mean_loss (NaN without targets).
static void gpt_forward(GPT* model, const int* inputs, const int* targets, int B, int T) {
    const GPTConfig* c = &model->config;
    if (T > c->maxT) {
        char msg[160];
        snprintf(msg, sizeof msg, "sequence length T=%d is longer than the model's maxT=%d", T, c->maxT);
        DIE(msg, "use a smaller --seq");
    }
    long bad = gpt_check_tokens(c, inputs, targets, (size_t)B * T);
    if (bad >= 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "token id out of range at batch position %ld: input %d, target %d, vocab V=%d",
                 bad, inputs[bad], targets ? targets[bad] : -1, c->V);
        DIE(msg, "the data was tokenized for a different vocabulary than the model's");
    }
    gpt_alloc_activations(model, B, T);
    size_t BT = (size_t)B * T;
    int C = c->C, L = c->L, NH = c->NH;
    memcpy(model->inputs, inputs, BT * sizeof(int));
    if (targets) memcpy(model->targets, targets, BT * sizeof(int));
    else for (size_t i = 0; i < BT; i++) model->targets[i] = -1;

    ParameterTensors p = model->params;
    ActivationTensors a = model->acts;
    encoder_forward(a.encoded, inputs, p.wte, p.wpe, B, T, C);
    for (int l = 0; l < L; l++) {
        const float* residual = l == 0 ? a.encoded : a.residual3 + (size_t)(l - 1) * BT * C;
        // this layer's slices of weights and activations
        const float* l_ln1w = p.ln1w + (size_t)l * C;
        const float* l_ln1b = p.ln1b + (size_t)l * C;
        const float* l_qkvw = p.qkvw + (size_t)l * 3 * C * C;
        const float* l_qkvb = p.qkvb + (size_t)l * 3 * C;
        const float* l_attprojw = p.attprojw + (size_t)l * C * C;
        const float* l_attprojb = p.attprojb + (size_t)l * C;
        const float* l_ln2w = p.ln2w + (size_t)l * C;
        const float* l_ln2b = p.ln2b + (size_t)l * C;
        const float* l_fcw = p.fcw + (size_t)l * 4 * C * C;
        const float* l_fcb = p.fcb + (size_t)l * 4 * C;
        const float* l_fcprojw = p.fcprojw + (size_t)l * C * 4 * C;
        const float* l_fcprojb = p.fcprojb + (size_t)l * C;
        float* l_ln1 = a.ln1 + (size_t)l * BT * C;
        float* l_ln1_mean = a.ln1_mean + (size_t)l * BT;
        float* l_ln1_rstd = a.ln1_rstd + (size_t)l * BT;
        float* l_qkv = a.qkv + (size_t)l * BT * 3 * C;
        float* l_atty = a.atty + (size_t)l * BT * C;
        float* l_att = a.att + (size_t)l * B * NH * T * T;
        float* l_attproj = a.attproj + (size_t)l * BT * C;
        float* l_residual2 = a.residual2 + (size_t)l * BT * C;
        float* l_ln2 = a.ln2 + (size_t)l * BT * C;
        float* l_ln2_mean = a.ln2_mean + (size_t)l * BT;
        float* l_ln2_rstd = a.ln2_rstd + (size_t)l * BT;
        float* l_fch = a.fch + (size_t)l * BT * 4 * C;
        float* l_fch_gelu = a.fch_gelu + (size_t)l * BT * 4 * C;
        float* l_fcproj = a.fcproj + (size_t)l * BT * C;
        float* l_residual3 = a.residual3 + (size_t)l * BT * C;

        layernorm_forward(l_ln1, l_ln1_mean, l_ln1_rstd, residual, l_ln1w, l_ln1b, BT, C);
        matmul_forward(l_qkv, l_ln1, l_qkvw, l_qkvb, BT, C, 3 * C);
        attention_forward(l_atty, l_att, l_qkv, B, T, C, NH);
        matmul_forward(l_attproj, l_atty, l_attprojw, l_attprojb, BT, C, C);
        residual_forward(l_residual2, residual, l_attproj, BT * C);
        layernorm_forward(l_ln2, l_ln2_mean, l_ln2_rstd, l_residual2, l_ln2w, l_ln2b, BT, C);
        matmul_forward(l_fch, l_ln2, l_fcw, l_fcb, BT, C, 4 * C);
        gelu_forward(l_fch_gelu, l_fch, BT * 4 * C);
        matmul_forward(l_fcproj, l_fch_gelu, l_fcprojw, l_fcprojb, BT, 4 * C, C);
        residual_forward(l_residual3, l_residual2, l_fcproj, BT * C);
    }
    const float* residual = a.residual3 + (size_t)(L - 1) * BT * C;
    layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, residual, p.lnfw, p.lnfb, BT, C);
    matmul_forward(a.logits, a.lnf, p.wte, NULL, BT, C, c->Vp);  // tied LM head: logits = lnf @ wte^T
    // probs are always computed (sampling needs them); the loss only with targets
    model->mean_loss = crossentropy_forward(a.probs, a.losses, a.logits, model->targets, BT, c->V, c->Vp);
}

static void gpt_zero_grad(GPT* model) {
    if (model->grads_memory) memset(model->grads_memory, 0, model->num_parameters * sizeof(float));
}

// Backward pass: the forward in reverse, line for line. Accumulates (+=) into model->grads, so gradient
// accumulation over micro-batches is just several forward/backward pairs between two gpt_zero_grad calls.
static void gpt_backward(GPT* model) {
    const GPTConfig* c = &model->config;
    if (!isfinite(model->mean_loss))
        DIE("backward called without a finite loss", "call gpt_forward with targets first (some not -1)");
    int B = model->B, T = model->T, C = c->C, L = c->L, NH = c->NH;
    size_t BT = (size_t)B * T;
    if (!model->grads_memory) {
        model->grads_memory = (float*)callocCheck(model->num_parameters, sizeof(float));
        point_parameters(&model->grads, model->grads_memory, c);
    }
    if (!model->gacts_memory) {
        size_t n = 0;
        for (int i = 0; i < NUM_GRAD_ACTS; i++) n += shape_numel(GRAD_ACT_TABLE[i].shape, c, B, T);
        model->gacts_memory = (float*)callocCheck(n, sizeof(float));
        float* ptr = model->gacts_memory;
        for (int i = 0; i < NUM_GRAD_ACTS; i++) {
            model->gacts.t[i] = ptr;
            ptr += shape_numel(GRAD_ACT_TABLE[i].shape, c, B, T);
        }
    }
    ParameterTensors p = model->params, g = model->grads;
    ActivationTensors a = model->acts;
    GradActTensors ga = model->gacts;

    crossentropy_backward(ga.dlogits, a.probs, model->targets, BT, c->V, c->Vp);
    memset(ga.dln, 0, BT * C * sizeof(float));
    matmul_backward(ga.dln, g.wte, NULL, ga.dlogits, a.lnf, p.wte, BT, C, c->Vp);
    memset(ga.dresidual, 0, BT * C * sizeof(float));
    layernorm_backward(ga.dresidual, g.lnfw, g.lnfb, ga.dln, a.residual3 + (size_t)(L - 1) * BT * C, p.lnfw,
                       a.lnf_mean, a.lnf_rstd, BT, C);
    for (int l = L - 1; l >= 0; l--) {
        const float* residual = l == 0 ? a.encoded : a.residual3 + (size_t)(l - 1) * BT * C;
        const float* l_ln1w = p.ln1w + (size_t)l * C;
        const float* l_qkvw = p.qkvw + (size_t)l * 3 * C * C;
        const float* l_attprojw = p.attprojw + (size_t)l * C * C;
        const float* l_ln2w = p.ln2w + (size_t)l * C;
        const float* l_fcw = p.fcw + (size_t)l * 4 * C * C;
        const float* l_fcprojw = p.fcprojw + (size_t)l * C * 4 * C;
        float* dl_ln1w = g.ln1w + (size_t)l * C;
        float* dl_ln1b = g.ln1b + (size_t)l * C;
        float* dl_qkvw = g.qkvw + (size_t)l * 3 * C * C;
        float* dl_qkvb = g.qkvb + (size_t)l * 3 * C;
        float* dl_attprojw = g.attprojw + (size_t)l * C * C;
        float* dl_attprojb = g.attprojb + (size_t)l * C;
        float* dl_ln2w = g.ln2w + (size_t)l * C;
        float* dl_ln2b = g.ln2b + (size_t)l * C;
        float* dl_fcw = g.fcw + (size_t)l * 4 * C * C;
        float* dl_fcb = g.fcb + (size_t)l * 4 * C;
        float* dl_fcprojw = g.fcprojw + (size_t)l * C * 4 * C;
        float* dl_fcprojb = g.fcprojb + (size_t)l * C;
        const float* l_ln1 = a.ln1 + (size_t)l * BT * C;
        const float* l_ln1_mean = a.ln1_mean + (size_t)l * BT;
        const float* l_ln1_rstd = a.ln1_rstd + (size_t)l * BT;
        const float* l_qkv = a.qkv + (size_t)l * BT * 3 * C;
        const float* l_atty = a.atty + (size_t)l * BT * C;
        const float* l_att = a.att + (size_t)l * B * NH * T * T;
        const float* l_residual2 = a.residual2 + (size_t)l * BT * C;
        const float* l_ln2 = a.ln2 + (size_t)l * BT * C;
        const float* l_ln2_mean = a.ln2_mean + (size_t)l * BT;
        const float* l_ln2_rstd = a.ln2_rstd + (size_t)l * BT;
        const float* l_fch = a.fch + (size_t)l * BT * 4 * C;
        const float* l_fch_gelu = a.fch_gelu + (size_t)l * BT * 4 * C;

        // residual3 = residual2 + fcproj: residual_backward would add dresidual into both d(residual2) and
        // d(fcproj). Both are equal to dresidual, so dresidual itself is read as d(fcproj) below, and then
        // becomes d(residual2) as LayerNorm 2's backward adds its part into it. Same for residual2.
        memset(ga.dfch_gelu, 0, BT * 4 * C * sizeof(float));
        matmul_backward(ga.dfch_gelu, dl_fcprojw, dl_fcprojb, ga.dresidual, l_fch_gelu, l_fcprojw, BT, 4 * C, C);
        memset(ga.dfch, 0, BT * 4 * C * sizeof(float));
        gelu_backward(ga.dfch, l_fch, ga.dfch_gelu, BT * 4 * C);
        memset(ga.dln, 0, BT * C * sizeof(float));
        matmul_backward(ga.dln, dl_fcw, dl_fcb, ga.dfch, l_ln2, l_fcw, BT, C, 4 * C);
        layernorm_backward(ga.dresidual, dl_ln2w, dl_ln2b, ga.dln, l_residual2, l_ln2w, l_ln2_mean, l_ln2_rstd, BT, C);
        // residual2 = residual + attproj: dresidual is now d(residual2), read as d(attproj)
        memset(ga.datty, 0, BT * C * sizeof(float));
        matmul_backward(ga.datty, dl_attprojw, dl_attprojb, ga.dresidual, l_atty, l_attprojw, BT, C, C);
        memset(ga.dqkv, 0, BT * 3 * C * sizeof(float));
        attention_backward(ga.dqkv, ga.datty, l_qkv, l_att, B, T, C, NH);
        memset(ga.dln, 0, BT * C * sizeof(float));
        matmul_backward(ga.dln, dl_qkvw, dl_qkvb, ga.dqkv, l_ln1, l_qkvw, BT, C, 3 * C);
        layernorm_backward(ga.dresidual, dl_ln1w, dl_ln1b, ga.dln, residual, l_ln1w, l_ln1_mean, l_ln1_rstd, BT, C);
    }
    encoder_backward(g.wte, g.wpe, ga.dresidual, model->inputs, B, T, C);
}

// ---------------------------------------------------------------------------- optimizer
// Global L2 norm of all gradients, in double. PyTorch: torch.nn.utils.clip_grad_norm_ computes the same norm.
static float gpt_grad_norm(const GPT* model) {
    // partial sums over fixed 64K-element chunks, then added in chunk order: the same result whatever the
    // number of threads (an OpenMP reduction may add the threads' partials in any order)
    const size_t chunk = 1 << 16;
    size_t n = model->num_parameters, nchunks = (n + chunk - 1) / chunk;
    double* partial = (double*)mallocCheck(nchunks * sizeof(double));
    const float* g = model->grads_memory;
#pragma omp parallel for
    for (size_t k = 0; k < nchunks; k++) {
        double s = 0.0;
        size_t end = (k + 1) * chunk < n ? (k + 1) * chunk : n;
        for (size_t i = k * chunk; i < end; i++) s += (double)g[i] * g[i];
        partial[k] = s;
    }
    double s = 0.0;
    for (size_t k = 0; k < nchunks; k++) s += partial[k];
    free(partial);
    return (float)sqrt(s);
}

// Scales the gradients so their global norm is at most max_norm, exactly as torch.nn.utils.clip_grad_norm_:
// coef = max_norm / (norm + 1e-6), applied only when coef < 1. Returns the norm before clipping.
static float gpt_clip_grad_norm(GPT* model, float max_norm) {
    float norm = gpt_grad_norm(model);
    if (max_norm > 0.0f) {
        float coef = max_norm / (norm + 1e-6f);
        if (coef < 1.0f) {
            float* g = model->grads_memory;
            for (size_t i = 0; i < model->num_parameters; i++) g[i] *= coef;
        }
    }
    return norm;
}

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} AdamWConfig;

// One AdamW step, exactly torch.optim.AdamW: t is the 1-based step count (for bias correction).
//   p -= lr * wd * p                          (decoupled decay, matrices only: PARAM_TABLE[i].decay)
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)      (eps outside the sqrt)
static void gpt_adamw_update(GPT* model, const AdamWConfig* o, int t) {
    if (!model->m_memory) {
        model->m_memory = (float*)callocCheck(model->num_parameters, sizeof(float));
        model->v_memory = (float*)callocCheck(model->num_parameters, sizeof(float));
    }
    const float lr = o->lr, b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    const float inv_bc1 = 1.0f / (1.0f - powf(b1, (float)t));  // bias corrections, as multipliers
    const float inv_bc2 = 1.0f / (1.0f - powf(b2, (float)t));
    size_t off = 0;
    for (int i = 0; i < NUM_PARAMS; i++) {
        size_t n = param_numel(&model->config, i);
        const float decay = 1.0f - lr * (PARAM_TABLE[i].decay ? o->weight_decay : 0.0f);
        float* restrict p = model->params_memory + off;
        const float* restrict g = model->grads_memory + off;
        float* restrict m = model->m_memory + off;
        float* restrict v = model->v_memory + off;
#pragma omp parallel for simd
        for (size_t j = 0; j < n; j++) {
            float gj = g[j];
            float mj = b1 * m[j] + (1.0f - b1) * gj;
            float vj = b2 * v[j] + (1.0f - b2) * gj * gj;
            m[j] = mj;
            v[j] = vj;
            p[j] = p[j] * decay - lr * (mj * inv_bc1) / (sqrtf(vj * inv_bc2) + eps);
        }
        off += n;
    }
}

// ---------------------------------------------------------------------------- learning-rate schedule
// step is 0-based. Linear warmup from lr/warmup to lr over `warmup` steps, then decay to min_lr = lr*min_frac
// at step `total` (cosine or linear), or stay at lr (constant; warmup still applies).
typedef enum { SCHED_CONSTANT, SCHED_COSINE, SCHED_LINEAR } Schedule;

static float lr_at(int step, float lr, int warmup, int total, Schedule s, float min_frac) {
    if (step < warmup) return lr * (step + 1) / warmup;
    if (s == SCHED_CONSTANT) return lr;
    float min_lr = lr * min_frac;
    int span = total - warmup > 1 ? total - warmup : 1;
    float f = (float)(step - warmup) / span;
    if (f > 1.0f) f = 1.0f;
    if (s == SCHED_COSINE) return min_lr + 0.5f * (1.0f + cosf(3.14159265358979f * f)) * (lr - min_lr);
    return lr - f * (lr - min_lr);
}
