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
    exit(1);  // under MPI, train.c's exit handler takes every other process down too
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
// Which projections get LoRA (bits of GPTConfig.lora_targets)
enum { LORA_QKV = 1, LORA_PROJ = 2, LORA_FC = 4, LORA_FCPROJ = 8 };

typedef struct {
    int maxT;  // longest sequence, e.g. 1024
    int V;     // vocabulary size, e.g. 50257
    int Vp;    // V padded up to a multiple of 64 (50304): the padded rows are zero and never predicted
    int L;     // number of blocks
    int NH;    // number of heads
    int C;     // channels
    int F;     // MLP hidden width; 0 means GPT-2's 4C (structured pruning of MLP neurons makes it smaller)
    // parameter-efficient additions (lora.c); 0 = absent, and then their tensors have no elements
    int lora_r;        // LoRA rank r
    int lora_targets;  // LORA_* bits: which projections get W x + (alpha/r) B A x
    float lora_alpha;  // LoRA scale is alpha / r
    int adapter_dim;   // A: Houlsby adapter bottleneck, after attention and after the MLP
    int prefix_len;    // P: prefix-tuning, trainable key/value vectors per layer every position attends to
    int num_classes;   // K: classification head (GPT2ForSequenceClassification); 0 = the tied LM head
    int lora_first, lora_last;  // LoRA acts on layers lora_first..lora_last (inclusive)
} GPTConfig;

static int pad_vocab(int V) { return (V + 63) / 64 * 64; }
static int mlp_width(const GPTConfig* c) { return c->F ? c->F : 4 * c->C; }

// ---------------------------------------------------------------------------- the parameter table
// The one list of parameters, in memory order (the first 16 are GPT-2's, in llm.c's order). Allocation,
// checkpoint I/O, the loaders' shape checks, AdamW's decay groups, freezing and the test report all walk it.
// Shapes use the legend's symbols; "3C" means 3*C. Per-layer tensors are stacked along a leading L axis.
// The fine-tuning additions use: rqkv, rproj, rfc, rfcproj (the LoRA rank where that projection is a
// target, else 0), A (adapter bottleneck), CA (C with adapters, else 0), P (prefix length), K (classes);
// absent ones have 0 elements.
// decay: 1 for matrices (each per-layer slice is 2-D), 0 for biases and LayerNorm parameters (nanoGPT's
// convention). Note it is not "ndim >= 2" of the stacked shape: qkvb is (L,3C) but each layer's bias is 1-D.
#define NUM_BASE_PARAMS 16  // GPT-2 itself: what llm.c and Hugging Face GPT-2 files hold
#define NUM_PARAMS 35
typedef struct {
    const char* name;
    const char* shape;
    int decay;
    const char* hf;    // its name in a Hugging Face GPT-2 checkpoint (after "h.N." for per-layer tensors)
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
    {"fcw", "L,F,C", 1, "mlp.c_fc.weight", 1},       // MLP up projection
    {"fcb", "L,F", 0, "mlp.c_fc.bias", 0},
    {"fcprojw", "L,C,F", 1, "mlp.c_proj.weight", 1}, // MLP down projection
    {"fcprojb", "L,C", 0, "mlp.c_proj.bias", 0},
    {"lnfw", "C", 0, "ln_f.weight", 0},               // final LayerNorm
    {"lnfb", "C", 0, "ln_f.bias", 0},
    // LoRA (Hu et al. 2021): W x + (alpha/r) B A x. A: (r, in), B: (out, r), PEFT's lora_A / lora_B layout
    {"lora_qkv_a", "L,rqkv,C", 1, "attn.c_attn.lora_A.weight", 0},
    {"lora_qkv_b", "L,3C,rqkv", 1, "attn.c_attn.lora_B.weight", 0},
    {"lora_proj_a", "L,rproj,C", 1, "attn.c_proj.lora_A.weight", 0},
    {"lora_proj_b", "L,C,rproj", 1, "attn.c_proj.lora_B.weight", 0},
    {"lora_fc_a", "L,rfc,C", 1, "mlp.c_fc.lora_A.weight", 0},
    {"lora_fc_b", "L,F,rfc", 1, "mlp.c_fc.lora_B.weight", 0},
    {"lora_fcproj_a", "L,rfcproj,F", 1, "mlp.c_proj.lora_A.weight", 0},
    {"lora_fcproj_b", "L,C,rfcproj", 1, "mlp.c_proj.lora_B.weight", 0},
    // Houlsby adapters: x + up(gelu(down(x))), after the attention projection and after the MLP
    {"adpa_dw", "L,A,C", 1, "adapter_attn.down.weight", 0},
    {"adpa_db", "L,A", 0, "adapter_attn.down.bias", 0},
    {"adpa_uw", "L,C,A", 1, "adapter_attn.up.weight", 0},
    {"adpa_ub", "L,CA", 0, "adapter_attn.up.bias", 0},
    {"adpm_dw", "L,A,C", 1, "adapter_mlp.down.weight", 0},
    {"adpm_db", "L,A", 0, "adapter_mlp.down.bias", 0},
    {"adpm_uw", "L,C,A", 1, "adapter_mlp.up.weight", 0},
    {"adpm_ub", "L,CA", 0, "adapter_mlp.up.bias", 0},
    // prefix-tuning (Li & Liang 2021): P key and value vectors per layer, heads concatenated
    {"prefix_k", "L,P,C", 1, "prefix.keys", 0},
    {"prefix_v", "L,P,C", 1, "prefix.values", 0},
    // classification head: logits = h_last @ cls_w^T (no bias, as GPT2ForSequenceClassification's score)
    {"cls_w", "K,C", 1, "score.weight", 0},
};

// The same tensors by name or by index. The union keeps the names in the table's order: a static
// assertion below checks the count, and test_gpt.c checks each name's index against the table.
typedef union {
    struct {
        float *wte, *wpe, *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb;
        float *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb, *lnfw, *lnfb;
        float *lora_qkv_a, *lora_qkv_b, *lora_proj_a, *lora_proj_b, *lora_fc_a, *lora_fc_b, *lora_fcproj_a,
            *lora_fcproj_b;
        float *adpa_dw, *adpa_db, *adpa_uw, *adpa_ub, *adpm_dw, *adpm_db, *adpm_uw, *adpm_ub;
        float *prefix_k, *prefix_v, *cls_w;
    };
    float* t[NUM_PARAMS];
} ParameterTensors;
_Static_assert(sizeof(ParameterTensors) == NUM_PARAMS * sizeof(float*), "ParameterTensors drifted from PARAM_TABLE");

static int lora_rank_for(const GPTConfig* c, int target) { return (c->lora_targets & target) ? c->lora_r : 0; }

// Evaluates a shape string like "L,3C,C" for a config and batch (B, T may be 0 for parameters).
// Writes up to 5 dims, returns the number of dims.
static int shape_dims(const char* shape, const GPTConfig* c, int B, int T, size_t dims[5]) {
    static const char* names[] = {"maxT", "Vlm", "Vp", "NH", "rqkv", "rproj", "rfcproj", "rfc", "PT",
                                  "V", "L", "CA", "C", "B", "T", "A", "P", "K", "r", "F"};
    int nd = 0;
    const char* s = shape;
    while (*s && nd < 5) {
        size_t mult = 1;
        if (*s >= '0' && *s <= '9') mult = (size_t)strtoul(s, (char**)&s, 10);
        int k = 0, n = (int)(sizeof names / sizeof names[0]);
        while (k < n && strncmp(s, names[k], strlen(names[k]))) k++;
        if (k == n) { fprintf(stderr, "bad shape symbol in '%s'\n", shape); exit(1); }
        s += strlen(names[k]);
        size_t v = 0;
        switch (k) {
            case 0: v = (size_t)c->maxT; break;
            case 1: v = c->num_classes ? 0 : (size_t)c->Vp; break;  // LM-head logits: none with a class head
            case 2: v = (size_t)c->Vp; break;
            case 3: v = (size_t)c->NH; break;
            case 4: v = (size_t)lora_rank_for(c, LORA_QKV); break;
            case 5: v = (size_t)lora_rank_for(c, LORA_PROJ); break;
            case 6: v = (size_t)lora_rank_for(c, LORA_FCPROJ); break;
            case 7: v = (size_t)lora_rank_for(c, LORA_FC); break;
            case 8: v = (size_t)c->prefix_len + (size_t)T; break;  // keys per query: prefix, then the sequence
            case 9: v = (size_t)c->V; break;
            case 10: v = (size_t)c->L; break;
            case 11: v = c->adapter_dim ? (size_t)c->C : 0; break;  // CA: C where there are adapters, else 0
            case 12: v = (size_t)c->C; break;
            case 13: v = (size_t)B; break;
            case 14: v = (size_t)T; break;
            case 15: v = (size_t)c->adapter_dim; break;
            case 16: v = (size_t)c->prefix_len; break;
            case 17: v = (size_t)c->num_classes; break;
            case 18: v = (size_t)c->lora_r; break;
            case 19: v = (size_t)mlp_width(c); break;
        }
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
static int param_per_layer(int i) { return PARAM_TABLE[i].shape[0] == 'L'; }

static size_t num_parameters(const GPTConfig* c) {
    size_t n = 0;
    for (int i = 0; i < NUM_PARAMS; i++) n += param_numel(c, i);
    return n;
}
static size_t num_base_parameters(const GPTConfig* c) {
    size_t n = 0;
    for (int i = 0; i < NUM_BASE_PARAMS; i++) n += param_numel(c, i);
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
#define NUM_ACTS 34
static const struct { const char* name; const char* shape; } ACT_TABLE[NUM_ACTS] = {
    {"encoded", "B,T,C"},        // token + position embedding
    {"ln1", "L,B,T,C"},          // LayerNorm 1 output
    {"ln1_mean", "L,B,T"},       // saved for LayerNorm 1 backward
    {"ln1_rstd", "L,B,T"},
    {"qkv", "L,B,T,3C"},         // q, k, v
    {"atty", "L,B,T,C"},         // attention output, heads concatenated
    {"att", "L,B,NH,T,PT"},      // attention probabilities over (prefix, sequence); zero above the diagonal
    {"attproj", "L,B,T,C"},      // after the output projection
    {"residual2", "L,B,T,C"},    // residual stream after attention
    {"ln2", "L,B,T,C"},
    {"ln2_mean", "L,B,T"},
    {"ln2_rstd", "L,B,T"},
    {"fch", "L,B,T,F"},         // MLP hidden, before GELU
    {"fch_gelu", "L,B,T,F"},    // MLP hidden, after GELU
    {"fcproj", "L,B,T,C"},       // MLP output
    {"residual3", "L,B,T,C"},    // residual stream after the block
    {"lnf", "B,T,C"},
    {"lnf_mean", "B,T"},
    {"lnf_rstd", "B,T"},
    {"logits", "B,T,Vlm"},       // LM head (absent with a classification head)
    {"probs", "B,T,Vlm"},        // softmax of the first V logits; zero in the padded columns
    {"losses", "B,T"},           // per-position loss, 0 where the target is ignored
    {"lora_h_qkv", "L,B,T,rqkv"},      // LoRA: x A^T, the rank-r code of each projection's input
    {"lora_h_proj", "L,B,T,rproj"},
    {"lora_h_fc", "L,B,T,rfc"},
    {"lora_h_fcproj", "L,B,T,rfcproj"},
    {"adpa_h", "L,B,T,A"},       // attention adapter: down(x), before GELU
    {"adpa_hg", "L,B,T,A"},      // after GELU
    {"adpa_out", "L,B,T,CA"},    // x + up(...): what the residual adds when adapters are on
    {"adpm_h", "L,B,T,A"},       // MLP adapter, the same three
    {"adpm_hg", "L,B,T,A"},
    {"adpm_out", "L,B,T,CA"},
    {"cls_logits", "B,K"},       // classification head
    {"cls_probs", "B,K"},
};
typedef union {
    struct {
        float *encoded, *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att, *attproj, *residual2, *ln2, *ln2_mean,
            *ln2_rstd, *fch, *fch_gelu, *fcproj, *residual3, *lnf, *lnf_mean, *lnf_rstd, *logits, *probs, *losses;
        float *lora_h_qkv, *lora_h_proj, *lora_h_fc, *lora_h_fcproj;
        float *adpa_h, *adpa_hg, *adpa_out, *adpm_h, *adpm_hg, *adpm_out, *cls_logits, *cls_probs;
    };
    float* t[NUM_ACTS];
} ActivationTensors;
_Static_assert(sizeof(ActivationTensors) == NUM_ACTS * sizeof(float*), "ActivationTensors drifted from ACT_TABLE");

// Gradients of activations. Backward walks one layer at a time, so apart from the residual stream and the
// logits these are one layer's worth and reused by every layer (each is zeroed before the layer uses it).
#define NUM_GRAD_ACTS 13
static const struct { const char* name; const char* shape; } GRAD_ACT_TABLE[NUM_GRAD_ACTS] = {
    {"dlogits", "B,T,Vlm"},
    {"dresidual", "B,T,C"},   // gradient of the residual stream, flowing down through the layers
    {"dln", "B,T,C"},         // gradient of a LayerNorm output (ln1, ln2 or lnf)
    {"dqkv", "B,T,3C"},
    {"datty", "B,T,C"},
    {"dfch", "B,T,F"},
    {"dfch_gelu", "B,T,F"},
    {"dlora_h", "B,T,r"},     // LoRA: gradient of x A^T
    {"dadp_x", "B,T,CA"},     // adapters: gradient of the adapter's input
    {"dadp_h", "B,T,A"},
    {"dadp_hg", "B,T,A"},
    {"dcls_logits", "B,K"},
    {"ddrop", "B,T,C"},       // residual dropout: gradient of the dropped branch
};
typedef union {
    struct {
        float *dlogits, *dresidual, *dln, *dqkv, *datty, *dfch, *dfch_gelu, *dlora_h, *dadp_x, *dadp_h, *dadp_hg,
            *dcls_logits, *ddrop;
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
// a thread's block of the large dimension: a multiple of the tile, about 64 wide (see gemm_any for why 64)
#define GEMM_MB (GEMM_MR * ((64 + GEMM_MR - 1) / GEMM_MR))
#define GEMM_NB (GEMM_NR * ((64 + GEMM_NR - 1) / GEMM_NR))
#define GEMM_STR2(x) #x
#define GEMM_STR(x) GEMM_STR2(x)
// what was built, for `./train bench` to print: e.g. "AVX-512 14x32 fp32, KC 256"
static const char gemm_tile[] = GEMM_ISA " " GEMM_STR(GEMM_MR) "x" GEMM_STR(GEMM_NR) " fp32, KC " GEMM_STR(GEMM_KC);

#if defined(GEMM_NEON_INTRINSICS)
#include <arm_neon.h>
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
// activations, BT = 256 rows) is packed for each K-slice, up to GEMM_MC of it at a time (then it stays in
// L2), shared by all threads: packed once instead of once per tile. Threads split the large dimension into
// blocks (GEMM_MB rows of A or GEMM_NB columns of B), each packing its own block of the other operand.
// Grow-only buffers: no allocation in the steady state.
// ~64 wide, not wider: the large dimension is often only C = 768, and 768 / 64 = 12 blocks share out evenly
// over 2, 3, 4 or 6 threads, while 768 / 256 = 3 blocks left one of 2 threads idle a third of the time. A block's
// micro-kernel calls (its panels x all of the small operand's) still take far longer than handing it out.
// Both loops hand out work dynamically: a thread whose core another process took does less of it instead of
// making the others wait at the barrier for its fixed share.
#define GEMM_BIG (GEMM_MB > GEMM_NB ? GEMM_MB : GEMM_NB)
static float* gemm_shared;
static size_t gemm_shared_cap;

// Cm(M,N) += A(M,K) @ Bm(K,N), element (i,k) of A at A[i*sai + k*sak], element (k,j) of Bm at B[k*sbk + j*sbj]
// (or, when Bq is given instead of B, the int8 weight Bq at the same index, widened to fp32 as it is packed).
static void gemm_any(float* Cm, size_t ldc, const float* A, size_t sai, size_t sak, const float* B, const Q8* Bq,
                     size_t sbk, size_t sbj, int M, int N, int K) {
    int a_small = M <= N;
    int small = a_small ? M : N, large = a_small ? N : M;
    int small_r = a_small ? GEMM_MR : GEMM_NR;  // panel width of the small operand
    int chunk = small <= GEMM_MC ? small : GEMM_MC / small_r * small_r;  // of the small operand, packed at once
    size_t need = (size_t)((chunk + small_r - 1) / small_r * small_r) * GEMM_KC;
    if (need > gemm_shared_cap) {
        free(gemm_shared);
        gemm_shared = (float*)mallocCheck(need * sizeof(float));
        gemm_shared_cap = need;
    }
    int bwidth = a_small ? GEMM_NB : GEMM_MB, nblocks = (large + bwidth - 1) / bwidth;
    for (int p0 = 0; p0 < K; p0 += GEMM_KC) {
        int kc = K - p0 < GEMM_KC ? K - p0 : GEMM_KC;
        for (int s0 = 0; s0 < small; s0 += chunk) {
            int sw = small - s0 < chunk ? small - s0 : chunk, npanels = (sw + small_r - 1) / small_r;
#pragma omp parallel
            {
                // 1. pack this chunk of the small operand, its panels split among the threads
#pragma omp for schedule(dynamic, 1)
                for (int pn = 0; pn < npanels; pn++) {
                    int off = pn * small_r, w = sw - off < small_r ? sw - off : small_r;
                    if (a_small) gemm_pack_a(gemm_shared + (size_t)off * kc, A, sai, sak, s0 + off, w, p0, kc);
                    else gemm_pack_b(gemm_shared + (size_t)off * kc, B, Bq, sbk, sbj, p0, kc, s0 + off, w);
                }
                // (implicit barrier: everyone sees the packed small operand)
                // 2. each block of the large dimension: pack it, then run the micro-kernel over all pairs of panels
#pragma omp for schedule(dynamic, 1)
                for (int blk = 0; blk < nblocks; blk++) {
                    static _Thread_local float big[GEMM_BIG * GEMM_KC] __attribute__((aligned(64)));
                    int b0 = blk * bwidth, bw = large - b0 < bwidth ? large - b0 : bwidth;
                    if (a_small) {  // big = B columns [b0, b0+bw); the B panel stays in L1 while A panels stream
                        gemm_pack_b(big, B, Bq, sbk, sbj, p0, kc, b0, bw);
                        for (int jp = 0; jp < bw; jp += GEMM_NR)
                            for (int ip = 0; ip < sw; ip += GEMM_MR)
                                gemm_micro(kc, gemm_shared + (size_t)ip * kc, big + (size_t)jp * kc,
                                           Cm + (size_t)(s0 + ip) * ldc + b0 + jp, ldc,
                                           sw - ip < GEMM_MR ? sw - ip : GEMM_MR, bw - jp < GEMM_NR ? bw - jp : GEMM_NR);
                    } else {  // big = A rows [b0, b0+bw); the A panel stays in L1 while B panels stream
                        gemm_pack_a(big, A, sai, sak, b0, bw, p0, kc);
                        for (int ip = 0; ip < bw; ip += GEMM_MR)
                            for (int jp = 0; jp < sw; jp += GEMM_NR)
                                gemm_micro(kc, big + (size_t)ip * kc, gemm_shared + (size_t)jp * kc,
                                           Cm + (size_t)(b0 + ip) * ldc + s0 + jp, ldc,
                                           bw - ip < GEMM_MR ? bw - ip : GEMM_MR, sw - jp < GEMM_NR ? sw - jp : GEMM_NR);
                    }
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
    if (dbias) {
#pragma omp parallel for
        for (int o = 0; o < OC; o++) {
            float s = 0.0f;
            for (size_t n = 0; n < N; n++) s += dout[n * OC + o];
            dbias[o] += s;
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

// ---------------------------------------------------------------------------- attention
// Causal multi-head self-attention on a packed qkv, optionally with P prefix keys/values (prefix-tuning)
// that every position attends to. For batch b, head h, query position t, with keys j over the prefix
// (j < P: pk_j, pv_j) and the sequence up to t (j = P + t2, t2 <= t: k_t2, v_t2):
//   s[j] = q_t . key_j / sqrt(hs);  att[j] = softmax(s)[j];  y_t = sum_j att[j] value_j
// PyTorch: F.scaled_dot_product_attention(q, cat(pk, k), cat(pv, v), attn_mask) (is_causal when P = 0)
// out: (B,T,C) heads concatenated   att: (B,NH,T,P+T) probabilities, saved for backward   qkv: (B,T,3C)
// pk, pv: (P,C) this layer's prefix, heads concatenated like q/k/v; NULL when P = 0
// p > 0: attention dropout on the probabilities (GPT-2's attn_pdrop) with the mask of `seed`; att keeps the
// probabilities before dropout (what softmax backward needs), the mask is recomputed in backward.
static void attention_forward(float* out, float* att, const float* qkv, const float* pk, const float* pv, int B,
                              int T, int C, int NH, int P, float p, uint64_t seed) {
    int hs = C / NH, PT = P + T;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(3)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                const float* q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float* a = att + (((size_t)b * NH + h) * T + t) * PT;
                float maxv = -INFINITY;
                for (int j = 0; j <= P + t; j++) {
                    const float* k = j < P ? pk + (size_t)j * C + h * hs : qkv + ((size_t)b * T + j - P) * 3 * C + C + h * hs;
                    float s = 0.0f;
                    for (int i = 0; i < hs; i++) s += q[i] * k[i];
                    s *= scale;
                    a[j] = s;
                    if (s > maxv) maxv = s;
                }
                float sum = 0.0f;  // subtract the max before exp: same softmax, no overflow
                for (int j = 0; j <= P + t; j++) {
                    a[j] = expf(a[j] - maxv);
                    sum += a[j];
                }
                for (int j = 0; j <= P + t; j++) a[j] /= sum;
                for (int j = P + t + 1; j < PT; j++) a[j] = 0.0f;  // masked: exactly zero
                float* y = out + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++) y[i] = 0.0f;
                size_t row = (((size_t)b * NH + h) * T + t) * PT;  // the mask index of a[0]
                for (int j = 0; j <= P + t; j++) {
                    const float* v = j < P ? pv + (size_t)j * C + h * hs : qkv + ((size_t)b * T + j - P) * 3 * C + 2 * C + h * hs;
                    float aj = p > 0.0f ? a[j] * dropout_keep_scale(seed, row + j, p) : a[j];
                    for (int i = 0; i < hs; i++) y[i] += aj * v[i];
                }
            }
        }
    }
}
// forward was y_t = sum_j m_j att[j] value_j (m_j the dropout mask, 1 without dropout), att = softmax(s),
// s[j] = q_t.key_j * scale. So, per query row t:
//   dvalue_j += m_j att[j] dy_t;  datt[j] = m_j dy_t . value_j;
//   ds[j] = att[j] (datt[j] - sum_i att[i] datt[i])     (softmax backward)
//   dq_t += sum_j ds[j] key_j * scale;  dkey_j += ds[j] q_t * scale
// Each head owns its channel slice of dqkv and of dpk/dpv, so heads run in parallel without races (batch
// rows share the prefix, so they stay inside one thread). Accumulates into dqkv, and dpk, dpv unless NULL.
static void attention_backward(float* dqkv, float* dpk, float* dpv, const float* dout, const float* qkv,
                               const float* pk, const float* pv, const float* att, int B, int T, int C, int NH,
                               int P, float p, uint64_t seed) {
    int hs = C / NH, PT = P + T;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for
    for (int h = 0; h < NH; h++) {
        float datt[PT];  // one row of d(att), on this thread's stack
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                const float* a = att + (((size_t)b * NH + h) * T + t) * PT;
                const float* dy = dout + ((size_t)b * T + t) * C + h * hs;
                const float* q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float* dq = dqkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float dot = 0.0f;  // sum_i att[i] datt[i]
                size_t row = (((size_t)b * NH + h) * T + t) * PT;
                for (int j = 0; j <= P + t; j++) {
                    float mj = p > 0.0f ? dropout_keep_scale(seed, row + j, p) : 1.0f;
                    int pre = j < P;
                    const float* v = pre ? pv + (size_t)j * C + h * hs : qkv + ((size_t)b * T + j - P) * 3 * C + 2 * C + h * hs;
                    float* dv = pre ? (dpv ? dpv + (size_t)j * C + h * hs : NULL)
                                    : dqkv + ((size_t)b * T + j - P) * 3 * C + 2 * C + h * hs;
                    float d = 0.0f;
                    for (int i = 0; i < hs; i++) d += dy[i] * v[i];
                    if (dv) for (int i = 0; i < hs; i++) dv[i] += mj * a[j] * dy[i];
                    d *= mj;
                    datt[j] = d;
                    dot += a[j] * d;
                }
                for (int j = 0; j <= P + t; j++) {
                    int pre = j < P;
                    float ds = a[j] * (datt[j] - dot) * scale;
                    const float* k = pre ? pk + (size_t)j * C + h * hs : qkv + ((size_t)b * T + j - P) * 3 * C + C + h * hs;
                    float* dk = pre ? (dpk ? dpk + (size_t)j * C + h * hs : NULL)
                                    : dqkv + ((size_t)b * T + j - P) * 3 * C + C + h * hs;
                    for (int i = 0; i < hs; i++) dq[i] += ds * k[i];
                    if (dk) for (int i = 0; i < hs; i++) dk[i] += ds * q[i];
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------- gelu
// y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).  PyTorch: nn.GELU(approximate='tanh')
// y, x: (N)
//
// tanh is computed from a plain-C exp (Cephes' expf polynomial after the usual 2^k range reduction) that the
// compiler vectorises, unlike libm's tanhf: 3x faster. Its error is absolute, at most 1.3e-7 over
// [-12, 12] (libm's tanhf: 1.0e-7), which in GELU is far below the fp32 noise the tests allow.
#define GELU_SCALE 0.7978845608028654f  // sqrt(2/pi)
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

#include "lora.c"  // LoRA, adapters and the classification head, built from the kernels above

// ---------------------------------------------------------------------------- the model
// Index of a parameter in PARAM_TABLE from its field name: PIDX(qkvw) == 4.
#define PIDX(name) ((int)(offsetof(ParameterTensors, name) / sizeof(float*)))

typedef struct {
    GPTConfig config;
    ParameterTensors params;  // shapes: PARAM_TABLE
    float* params_memory;
    size_t num_parameters;
    // Training. A "slice" is one layer of a per-layer tensor, or a whole tensor without a layer axis; each is
    // trainable or frozen. Only trainable slices get gradient memory and AdamW state, packed in table order.
    uint8_t* trainable;       // (NUM_PARAMS, L): [i*L + l]; tensors without a layer axis use l = 0
    size_t* grad_offset;      // same indexing: the slice's offset in grads/m/v, SIZE_MAX when frozen
    float* lr_scale;          // same indexing: learning-rate multiplier (layer-wise decay), 1 by default
    float* grads_memory;      // allocated on the first backward, num_trainable floats
    size_t num_trainable;
    float* m_memory;          // AdamW first moment, allocated on the first update
    float* v_memory;          // AdamW second moment
    ActivationTensors acts;   // shapes: ACT_TABLE at (B, T)
    float* acts_memory;
    GradActTensors gacts;     // shapes: GRAD_ACT_TABLE at (B, T)
    float* gacts_memory;
    int B, T;                 // the batch shape the activations were allocated for (0 before the first forward)
    int* inputs;              // (B,T) copy of the last forward's inputs, for backward
    int* targets;             // (B,T) copy of the last forward's targets (-1 = ignore)
    int* lengths;             // (B) classification: tokens in each sequence (the head reads position len-1)
    int* labels;              // (B) classification: class ids (-1 = none)
    float* class_weights;     // (K) or NULL: classification loss weights
    float label_smoothing;    // classification loss label smoothing
    float lora_dropout;       // LoRA dropout probability, applied while training is set
    float dropout;            // dropout on embeddings, attention probabilities and residual branches (GPT-2's
                              // embd/attn/resid_pdrop), applied while training is set
    int training;             // 1: dropout is on (the trainer sets it around training steps)
    uint64_t dropout_seed;    // the current step's dropout seed (masks are recomputed from it in backward)
    float* dropout_scratch;   // (2, B, T, max(C, F)) when LoRA dropout is on: dropped inputs and their gradient
    float grad_scale;         // pending gradient clipping factor, applied by the next AdamW update (1 = none)
    float loss_scale;         // backward differentiates loss_scale * loss (1; gradient accumulation sets it)
    float mean_loss;          // the last forward's loss; NaN when no targets
    // int8 weights (gpt_quantize): q8[i].q is set for a quantized tensor, whose fp32 pointer is then NULL
    // (its place in params_memory is never touched, so it costs no resident memory). Quantized tensors are
    // frozen: LoRA on an int8 base is QLoRA's idea with int8 instead of 4-bit NF4.
    Q8 q8[NUM_PARAMS];
    int8_t* q8_memory;
    float* q8_scales;
} GPT;

static float lora_scale(const GPTConfig* c) { return c->lora_alpha / (float)c->lora_r; }

static size_t slice_numel(const GPTConfig* c, int i) {
    return param_numel(c, i) / (param_per_layer(i) ? (size_t)c->L : 1);
}

static void gpt_build(GPT* model, GPTConfig config) {
    memset(model, 0, sizeof(*model));
    model->config = config;
    model->num_parameters = num_parameters(&config);
    model->params_memory = (float*)callocCheck(model->num_parameters, sizeof(float));
    point_parameters(&model->params, model->params_memory, &config);
    size_t ns = (size_t)NUM_PARAMS * config.L;
    model->trainable = (uint8_t*)mallocCheck(ns);
    memset(model->trainable, 1, ns);  // full fine-tuning unless told otherwise
    model->grad_offset = (size_t*)mallocCheck(ns * sizeof(size_t));
    model->lr_scale = (float*)mallocCheck(ns * sizeof(float));
    for (size_t i = 0; i < ns; i++) model->lr_scale[i] = 1.0f;
    model->mean_loss = NAN;
    model->grad_scale = 1.0f;
    model->loss_scale = 1.0f;
}

// Sets one slice (layer l; l = -1: every layer) of tensor i trainable or frozen. Before the first backward.
static void gpt_set_trainable(GPT* model, int i, int l, int on) {
    if (model->grads_memory) DIE("trainable set changed after gradients were allocated", "freeze before training");
    int L = model->config.L;
    for (int k = 0; k < L; k++)
        if (l < 0 || k == l) model->trainable[(size_t)i * L + k] = (uint8_t)on;
}

// The gradient of slice (i, l) (l = 0 for tensors without a layer axis), or NULL when it is frozen or empty.
static float* gpt_grad(const GPT* model, int i, int l) {
    if (!model->grads_memory) return NULL;
    size_t off = model->grad_offset[(size_t)i * model->config.L + l];
    return off == SIZE_MAX ? NULL : model->grads_memory + off;
}

// Packs the trainable slices and allocates their gradients.
static void gpt_alloc_grads(GPT* model) {
    const GPTConfig* c = &model->config;
    size_t off = 0;
    for (int i = 0; i < NUM_PARAMS; i++) {
        size_t n = slice_numel(c, i);
        for (int l = 0; l < c->L; l++) {
            size_t k = (size_t)i * c->L + l;
            int exists = n > 0 && (param_per_layer(i) || l == 0);
            if (exists && model->trainable[k] && model->q8[i].q)
                DIE("an int8-quantized weight is set trainable", "quantized base weights are frozen: use --method lora");
            model->grad_offset[k] = exists && model->trainable[k] ? off : SIZE_MAX;
            if (model->grad_offset[k] != SIZE_MAX) off += n;
        }
    }
    model->num_trainable = off;
    model->grads_memory = (float*)callocCheck(off ? off : 1, sizeof(float));
}

// GPT-2's initialisation: weights ~ N(0, 0.02); the two projections into the residual stream (attprojw,
// fcprojw) scaled down by 1/sqrt(2L) so the stream's variance does not grow with depth; biases 0; LayerNorm
// weights 1. The padded rows of wte stay 0. Seeded: the same seed gives the same model. The fine-tuning
// tensors get their own init (gpt_init_peft).
static void gpt_init_random(GPT* model, uint64_t* rng) {
    const GPTConfig* c = &model->config;
    float resid_std = 0.02f / sqrtf(2.0f * c->L);
    for (int i = 0; i < NUM_BASE_PARAMS; i++) {
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

// Initialises the fine-tuning tensors so that the model at init equals the base model:
// LoRA A as PEFT does (nn.init.kaiming_uniform_(a=sqrt(5)): uniform in +-1/sqrt(in)), B = 0;
// adapters: down ~ N(0, 0.02) with zero bias, up = 0 (so the adapter adds 0);
// prefix keys/values ~ N(0, 0.02) (they do change the model: a prefix is attended to from the start);
// classification head ~ N(0, 0.02) (it is new, there is nothing to equal).
static void gpt_init_peft(GPT* model, uint64_t* rng) {
    const GPTConfig* c = &model->config;
    for (int i = NUM_BASE_PARAMS; i < NUM_PARAMS; i++) {
        float* p = model->params.t[i];
        size_t n = param_numel(c, i);
        if (!n) continue;
        const char* name = PARAM_TABLE[i].name;
        size_t len = strlen(name);
        if (!strncmp(name, "lora_", 5) && name[len - 1] == 'a') {
            size_t dims[5];
            shape_dims(PARAM_TABLE[i].shape, c, 0, 0, dims);
            float bound = 1.0f / sqrtf((float)dims[2]);  // dims = (L, r, in)
            for (size_t j = 0; j < n; j++) p[j] = bound * (2.0f * random_f32(rng) - 1.0f);
        } else if (!strcmp(name, "adpa_dw") || !strcmp(name, "adpm_dw") || !strncmp(name, "prefix_", 7) ||
                   !strcmp(name, "cls_w")) {
            for (size_t j = 0; j < n; j++) p[j] = 0.02f * random_normal(rng);
        } else {
            memset(p, 0, n * sizeof(float));  // lora B, adapter up weights and all adapter biases
        }
    }
}

static void gpt_free(GPT* model);

// Rebuilds a model with new fine-tuning settings (LoRA, adapters, prefix, head), keeping the base weights.
// The added tensors start from gpt_init_peft. Call before training starts.
static void gpt_drop_fp32_copies(GPT* model);  // int8 model, below
static void gpt_set_peft(GPT* model, GPTConfig with, uint64_t* rng) {
    GPTConfig c = model->config;
    if (with.maxT != c.maxT || with.V != c.V || with.Vp != c.Vp || with.L != c.L || with.NH != c.NH ||
        with.C != c.C || mlp_width(&with) != mlp_width(&c))
        DIE("gpt_set_peft cannot change the base model's shape", "");
    GPT m;
    gpt_build(&m, with);
    for (int i = 0; i < NUM_BASE_PARAMS; i++)
        if (!model->q8[i].q) memcpy(m.params.t[i], model->params.t[i], param_numel(&c, i) * sizeof(float));
    if (model->q8_memory) {  // an int8 base moves over as it is, and stays frozen
        m.q8_memory = model->q8_memory, m.q8_scales = model->q8_scales;
        model->q8_memory = NULL, model->q8_scales = NULL;
        memcpy(m.q8, model->q8, sizeof m.q8);
        gpt_drop_fp32_copies(&m);
    }
    gpt_init_peft(&m, rng);
    float* cw = model->class_weights;  // training options survive the rebuild
    float ls = model->label_smoothing;
    model->class_weights = NULL;
    gpt_free(model);
    *model = m;
    model->class_weights = cw;
    model->label_smoothing = ls;
}

// Folds LoRA into the base weights (sign +1: W += (alpha/r) B A on every target and LoRA layer) or takes it
// out again (sign -1). After a merge, a config without LoRA gives the same outputs with plain matmuls.
static void gpt_lora_merge(GPT* model, float sign) {
    const GPTConfig* c = &model->config;
    if (!c->lora_r) return;
    if (model->q8_memory) DIE("LoRA cannot be merged into int8 weights", "merge the fp32 model first, then quantize");
    float s = lora_scale(c);
    int C = c->C, F = mlp_width(c);
    const struct { int target; float *W, *A, *Bm; int in, out; } t[4] = {
        {LORA_QKV, model->params.qkvw, model->params.lora_qkv_a, model->params.lora_qkv_b, C, 3 * C},
        {LORA_PROJ, model->params.attprojw, model->params.lora_proj_a, model->params.lora_proj_b, C, C},
        {LORA_FC, model->params.fcw, model->params.lora_fc_a, model->params.lora_fc_b, C, F},
        {LORA_FCPROJ, model->params.fcprojw, model->params.lora_fcproj_a, model->params.lora_fcproj_b, F, C},
    };
    for (int k = 0; k < 4; k++) {
        int r = lora_rank_for(c, t[k].target);
        if (!r) continue;
        for (int l = c->lora_first; l <= c->lora_last; l++)
            lora_merge_layer(t[k].W + (size_t)l * t[k].out * t[k].in, t[k].A + (size_t)l * r * t[k].in,
                             t[k].Bm + (size_t)l * t[k].out * r, s, t[k].in, t[k].out, r, sign);
    }
}

// Grows the vocabulary to V_new (tokens added by dataprep --add-token, say): wte gets V_new - V new rows, each
// set to the mean of the existing embeddings, so a new token starts as an "average" token rather than at
// random (Hugging Face's resize_token_embeddings also starts from the mean). Since wte is also the LM head,
// the new tokens start with the average logit. Everything else is kept. Call before training starts.
static void gpt_grow_vocab(GPT* model, int V_new) {
    GPTConfig c = model->config, cn = c;
    if (V_new <= c.V) return;
    if (model->q8_memory) DIE("cannot add tokens to an int8 model", "add tokens to the fp32 model, then quantize");
    cn.V = V_new;
    cn.Vp = pad_vocab(V_new) > c.Vp ? pad_vocab(V_new) : c.Vp;
    GPT m;
    gpt_build(&m, cn);
    for (int i = 0; i < NUM_PARAMS; i++) {
        if (i == PIDX(wte)) continue;
        memcpy(m.params.t[i], model->params.t[i], param_numel(&c, i) * sizeof(float));
    }
    int C = c.C;
    memcpy(m.params.wte, model->params.wte, (size_t)c.V * C * sizeof(float));
    for (int j = 0; j < C; j++) {
        double s = 0.0;
        for (int v = 0; v < c.V; v++) s += model->params.wte[(size_t)v * C + j];
        for (int v = c.V; v < V_new; v++) m.params.wte[(size_t)v * C + j] = (float)(s / c.V);
    }
    memcpy(m.trainable, model->trainable, (size_t)NUM_PARAMS * c.L);
    float* cw = model->class_weights;
    model->class_weights = NULL;
    gpt_free(model);
    *model = m;
    model->class_weights = cw;
}

static void gpt_free(GPT* model) {
    free(model->params_memory);
    free(model->trainable);
    free(model->grad_offset);
    free(model->lr_scale);
    free(model->grads_memory);
    free(model->m_memory);
    free(model->v_memory);
    free(model->acts_memory);
    free(model->gacts_memory);
    free(model->inputs);
    free(model->targets);
    free(model->lengths);
    free(model->labels);
    free(model->class_weights);
    free(model->dropout_scratch);
    free(model->q8_memory);
    free(model->q8_scales);
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
    free(model->lengths);
    free(model->labels);
    free(model->dropout_scratch);
    model->dropout_scratch = NULL;
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
    model->lengths = (int*)mallocCheck((size_t)B * sizeof(int));
    model->labels = (int*)mallocCheck((size_t)B * sizeof(int));
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


// The dropout seed of one site in layer l for this step. Sites: 0 embeddings, 1 attention probabilities,
// 2 the attention branch, 3 the MLP branch, 10+k LoRA target k. Every site and layer gets its own masks.
enum { DROP_EMB = 0, DROP_ATT = 1, DROP_RES_ATT = 2, DROP_RES_MLP = 3, DROP_LORA = 10 };
static uint64_t dropout_site_seed(const GPT* model, int site, int l) {
    return model->dropout_seed ^ ((uint64_t)(64 * l + site + 1) * 0xD1B54A32D192ED03ull);
}

// ---------------------------------------------------------------------------- int8 model
// Which tensors gpt_quantize turns into int8: the matrices every token multiplies by (99.7% of GPT-2's weights).
static int param_quantizable(int i) {
    return i == PIDX(wte) || i == PIDX(qkvw) || i == PIDX(attprojw) || i == PIDX(fcw) || i == PIDX(fcprojw);
}

// Allocates the int8 copies of the quantizable tensors and points q8[] at them (their contents follow).
static void gpt_alloc_q8(GPT* model) {
    const GPTConfig* c = &model->config;
    size_t n = 0;
    for (int i = 0; i < NUM_PARAMS; i++) {
        if (!param_quantizable(i)) continue;
        if (slice_numel(c, i) % Q8_GROUP)
            DIE("a weight's size is not a multiple of the int8 group size 32", "int8 needs C a multiple of 32");
        n += param_numel(c, i);
    }
    model->q8_memory = (int8_t*)mallocCheck(n);
    model->q8_scales = (float*)mallocCheck(n / Q8_GROUP * sizeof(float));
    for (size_t off = 0, i = 0; i < NUM_PARAMS; i++) {
        if (!param_quantizable((int)i)) continue;
        model->q8[i].q = model->q8_memory + off;
        model->q8[i].d = model->q8_scales + off / Q8_GROUP;
        off += param_numel(c, (int)i);
    }
}

// Frees the fp32 copies of the int8 tensors: params_memory shrinks to the tensors that stay fp32 (same
// order), their pointers become NULL, and they are frozen for good.
static void gpt_drop_fp32_copies(GPT* model) {
    const GPTConfig* c = &model->config;
    size_t n = 0;
    for (int i = 0; i < NUM_PARAMS; i++)
        if (!model->q8[i].q) n += param_numel(c, i);
    float* mem = (float*)callocCheck(n ? n : 1, sizeof(float));
    float* p = mem;
    for (int i = 0; i < NUM_PARAMS; i++) {
        if (model->q8[i].q) {
            model->params.t[i] = NULL;
            gpt_set_trainable(model, i, -1, 0);
            continue;
        }
        memcpy(p, model->params.t[i], param_numel(c, i) * sizeof(float));
        model->params.t[i] = p;
        p += param_numel(c, i);
    }
    free(model->params_memory);
    model->params_memory = mem;
    model->num_parameters = n;
}

// Quantizes a float model's big matrices to int8 (Q8_0); their fp32 values are then freed.
static void gpt_quantize(GPT* model) {
    if (model->q8_memory) return;
    gpt_alloc_q8(model);
    for (int i = 0; i < NUM_PARAMS; i++)
        if (model->q8[i].q)
            q8_quantize((int8_t*)model->q8[i].q, (float*)model->q8[i].d, model->params.t[i], param_numel(&model->config, i));
    gpt_drop_fp32_copies(model);
}

// Layer l's slice of the weight tensor i, as int8 (q8 set) or fp32.
static Q8 gpt_q8_slice(const GPT* model, int i, int l) {
    size_t off = (size_t)l * slice_numel(&model->config, i);
    Q8 w = {model->q8[i].q + off, model->q8[i].d + off / Q8_GROUP};
    return w;
}
// out(N,OC) = inp(N,C) @ W^T + bias with W layer l of weight tensor i, whether fp32 or int8
static void gpt_matmul_forward(const GPT* model, int i, int l, float* out, const float* inp, const float* bias,
                               size_t N, int C, int OC) {
    if (model->q8[i].q) {
        Q8 w = gpt_q8_slice(model, i, l);
        matmul_forward_q8(out, inp, &w, bias, N, C, OC);
    } else {
        matmul_forward(out, inp, model->params.t[i] + (size_t)l * C * OC, bias, N, C, OC);
    }
}
// Its backward: matmul_backward's contract (dw must be NULL for an int8 weight: those are frozen).
static void gpt_matmul_backward(const GPT* model, int i, int l, float* dinp, float* dw, float* dbias,
                                const float* dout, const float* inp, size_t N, int C, int OC) {
    if (model->q8[i].q) {
        Q8 w = gpt_q8_slice(model, i, l);
        matmul_backward(NULL, NULL, dbias, dout, inp, NULL, N, C, OC);
        if (dinp) matmul_backward_q8(dinp, dout, &w, N, C, OC);
    } else {
        matmul_backward(dinp, dw, dbias, dout, inp, model->params.t[i] + (size_t)l * C * OC, N, C, OC);
    }
}
// encoder_forward reading an int8 wte: out[b,t,:] = wte[inp[b,t],:] + wpe[t,:]
static void encoder_forward_q8(float* out, const int* inp, const Q8* wte, const float* wpe, int B, int T, int C) {
#pragma omp parallel for
    for (int bt = 0; bt < B * T; bt++) {
        size_t row = (size_t)inp[bt] * C;
        const float* wp = wpe + (size_t)(bt % T) * C;
        for (int i = 0; i < C; i++) out[(size_t)bt * C + i] = q8_at(wte, row + i) + wp[i];
    }
}

// ---------------------------------------------------------------------------- kernel timers (optional)
// Built with -DKERNEL_TIMERS (`make profile`), every kernel call in gpt_forward_body and gpt_backward is
// timed (wall clock, summed by kind and direction; matmuls by weight) and `./train bench` prints the table.
// The two functions' text is untouched: each kernel name is redefined below as a macro that wraps the call
// in a start/stop pair (a function-like macro does not expand inside its own expansion, so the inner name
// is the real function), and #undef'd again right after gpt_backward. dev/PROFILE.md has a breakdown.
#ifdef KERNEL_TIMERS
#include <time.h>
enum { KT_ENCODER, KT_LAYERNORM, KT_MM_QKV, KT_MM_ATTPROJ, KT_MM_FC, KT_MM_FCPROJ, KT_MM_LMHEAD, KT_ATTENTION,
       KT_GELU, KT_RESIDUAL, KT_XENT, KT_PEFT, KT_KINDS };  // forward k, backward KT_KINDS + k
static const char* const KT_NAME[KT_KINDS] = {"encoder", "layernorm", "matmul qkv", "matmul attproj",
    "matmul fc", "matmul fcproj", "matmul lm head", "attention", "gelu", "residual (+dropout)",
    "softmax + cross-entropy", "PEFT (LoRA, adapters, cls head)"};
static double kt_sec[2 * KT_KINDS], kt_t0;
static double kt_now(void) {
    struct timespec t;
    timespec_get(&t, TIME_UTC);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static void kt_start(void) { kt_t0 = kt_now(); }
static void kt_stop(int k) { kt_sec[k] += kt_now() - kt_t0; }
static float kt_stop_f(int k, float r) { kt_stop(k); return r; }
static void kt_reset(void) { memset(kt_sec, 0, sizeof kt_sec); }
// the table, per step over `steps` steps of step_ms each, of which opt_ms was clipping + AdamW
static void kt_print(int steps, double step_ms, double opt_ms) {
    double timed = opt_ms;
    printf("%-32s %9s %9s %7s\n", "kernel (ms per step)", "forward", "backward", "share");
    for (int k = 0; k < KT_KINDS; k++) {
        double f = 1000.0 * kt_sec[k] / steps, b = 1000.0 * kt_sec[KT_KINDS + k] / steps;
        timed += f + b;
        if (f + b > 0.0) printf("%-32s %9.1f %9.1f %6.1f%%\n", KT_NAME[k], f, b, 100.0 * (f + b) / step_ms);
    }
    printf("%-32s %19.1f %6.1f%%\n", "grad norm + AdamW", opt_ms, 100.0 * opt_ms / step_ms);
    printf("%-32s %19.1f %6.1f%%\n", "rest (memsets, the loops' glue)", step_ms - timed, 100.0 * (step_ms - timed) / step_ms);
}
static int kt_matmul(int i, int bwd) {
    int k = i == PIDX(qkvw) ? KT_MM_QKV : i == PIDX(attprojw) ? KT_MM_ATTPROJ : i == PIDX(fcw) ? KT_MM_FC
          : i == PIDX(fcprojw) ? KT_MM_FCPROJ : KT_MM_LMHEAD;
    return k + bwd * KT_KINDS;
}
#define KT_WRAP(k, call) (kt_start(), call, kt_stop(k))
#define encoder_forward(...) KT_WRAP(KT_ENCODER, encoder_forward(__VA_ARGS__))
#define encoder_forward_q8(...) KT_WRAP(KT_ENCODER, encoder_forward_q8(__VA_ARGS__))
#define encoder_backward(...) KT_WRAP(KT_KINDS + KT_ENCODER, encoder_backward(__VA_ARGS__))
#define layernorm_forward(...) KT_WRAP(KT_LAYERNORM, layernorm_forward(__VA_ARGS__))
#define layernorm_backward(...) KT_WRAP(KT_KINDS + KT_LAYERNORM, layernorm_backward(__VA_ARGS__))
#define gpt_matmul_forward(m, i, ...) KT_WRAP(kt_matmul(i, 0), gpt_matmul_forward(m, i, __VA_ARGS__))
#define gpt_matmul_backward(m, i, ...) KT_WRAP(kt_matmul(i, 1), gpt_matmul_backward(m, i, __VA_ARGS__))
#define attention_forward(...) KT_WRAP(KT_ATTENTION, attention_forward(__VA_ARGS__))
#define attention_backward(...) KT_WRAP(KT_KINDS + KT_ATTENTION, attention_backward(__VA_ARGS__))
#define gelu_forward(...) KT_WRAP(KT_GELU, gelu_forward(__VA_ARGS__))
#define gelu_backward(...) KT_WRAP(KT_KINDS + KT_GELU, gelu_backward(__VA_ARGS__))
#define residual_dropout_forward(...) KT_WRAP(KT_RESIDUAL, residual_dropout_forward(__VA_ARGS__))
#define dropout_backward(...) KT_WRAP(KT_KINDS + KT_RESIDUAL, dropout_backward(__VA_ARGS__))
#define crossentropy_forward(...) (kt_start(), kt_stop_f(KT_XENT, crossentropy_forward(__VA_ARGS__)))
#define crossentropy_backward(...) KT_WRAP(KT_KINDS + KT_XENT, crossentropy_backward(__VA_ARGS__))
#define lora_forward(...) KT_WRAP(KT_PEFT, lora_forward(__VA_ARGS__))
#define lora_backward(...) KT_WRAP(KT_KINDS + KT_PEFT, lora_backward(__VA_ARGS__))
#define adapter_forward(...) KT_WRAP(KT_PEFT, adapter_forward(__VA_ARGS__))
#define adapter_backward(...) KT_WRAP(KT_KINDS + KT_PEFT, adapter_backward(__VA_ARGS__))
#define cls_forward(...) (kt_start(), kt_stop_f(KT_PEFT, cls_forward(__VA_ARGS__)))
#define cls_backward(...) KT_WRAP(KT_KINDS + KT_PEFT, cls_backward(__VA_ARGS__))
#endif

// The body of the forward pass; gpt_forward and gpt_forward_cls set up the batch first.
static void gpt_forward_body(GPT* model) {
    const GPTConfig* c = &model->config;
    int B = model->B, T = model->T;
    size_t BT = (size_t)B * T;
    int C = c->C, L = c->L, NH = c->NH, P = c->prefix_len, A = c->adapter_dim, PT = P + T, F = mlp_width(c);
    int rq = lora_rank_for(c, LORA_QKV), rp = lora_rank_for(c, LORA_PROJ), rf = lora_rank_for(c, LORA_FC),
        rg = lora_rank_for(c, LORA_FCPROJ);
    float ls = c->lora_r ? lora_scale(c) : 0.0f;
    float pd = model->training && c->lora_r ? model->lora_dropout : 0.0f;  // LoRA dropout while training
    float* xd = NULL;
    if (pd > 0.0f) {
        if (!model->dropout_scratch) model->dropout_scratch = (float*)mallocCheck(2 * BT * (F > C ? F : C) * sizeof(float));
        xd = model->dropout_scratch;
    }
    float pdrop = model->training ? model->dropout : 0.0f;  // embeddings, attention, residual branches
    ParameterTensors p = model->params;
    ActivationTensors a = model->acts;
    if (model->q8[PIDX(wte)].q) encoder_forward_q8(a.encoded, model->inputs, &model->q8[PIDX(wte)], p.wpe, B, T, C);
    else encoder_forward(a.encoded, model->inputs, p.wte, p.wpe, B, T, C);
    if (pdrop > 0.0f) dropout_forward(a.encoded, a.encoded, BT * C, pdrop, dropout_site_seed(model, DROP_EMB, 0));
    for (int l = 0; l < L; l++) {
        const float* residual = l == 0 ? a.encoded : a.residual3 + (size_t)(l - 1) * BT * C;
        int lon = l >= c->lora_first && l <= c->lora_last;  // LoRA acts on this layer
        // this layer's slices of weights and activations
        const float* l_ln1w = p.ln1w + (size_t)l * C;
        const float* l_ln1b = p.ln1b + (size_t)l * C;
        const float* l_qkvb = p.qkvb + (size_t)l * 3 * C;
        const float* l_attprojb = p.attprojb + (size_t)l * C;
        const float* l_ln2w = p.ln2w + (size_t)l * C;
        const float* l_ln2b = p.ln2b + (size_t)l * C;
        const float* l_fcb = p.fcb + (size_t)l * F;
        const float* l_fcprojb = p.fcprojb + (size_t)l * C;
        float* l_ln1 = a.ln1 + (size_t)l * BT * C;
        float* l_ln1_mean = a.ln1_mean + (size_t)l * BT;
        float* l_ln1_rstd = a.ln1_rstd + (size_t)l * BT;
        float* l_qkv = a.qkv + (size_t)l * BT * 3 * C;
        float* l_atty = a.atty + (size_t)l * BT * C;
        float* l_att = a.att + (size_t)l * B * NH * T * PT;
        float* l_attproj = a.attproj + (size_t)l * BT * C;
        float* l_residual2 = a.residual2 + (size_t)l * BT * C;
        float* l_ln2 = a.ln2 + (size_t)l * BT * C;
        float* l_ln2_mean = a.ln2_mean + (size_t)l * BT;
        float* l_ln2_rstd = a.ln2_rstd + (size_t)l * BT;
        float* l_fch = a.fch + (size_t)l * BT * F;
        float* l_fch_gelu = a.fch_gelu + (size_t)l * BT * F;
        float* l_fcproj = a.fcproj + (size_t)l * BT * C;
        float* l_residual3 = a.residual3 + (size_t)l * BT * C;

        layernorm_forward(l_ln1, l_ln1_mean, l_ln1_rstd, residual, l_ln1w, l_ln1b, BT, C);
        gpt_matmul_forward(model, PIDX(qkvw), l, l_qkv, l_ln1, l_qkvb, BT, C, 3 * C);
        if (rq && lon) lora_forward(l_qkv, a.lora_h_qkv + (size_t)l * BT * rq, l_ln1, p.lora_qkv_a + (size_t)l * rq * C,
                             p.lora_qkv_b + (size_t)l * 3 * C * rq, ls, BT, C, 3 * C, rq, pd, dropout_site_seed(model, DROP_LORA + 0, l), xd);
        attention_forward(l_atty, l_att, l_qkv, P ? p.prefix_k + (size_t)l * P * C : NULL,
                          P ? p.prefix_v + (size_t)l * P * C : NULL, B, T, C, NH, P, pdrop,
                          dropout_site_seed(model, DROP_ATT, l));
        gpt_matmul_forward(model, PIDX(attprojw), l, l_attproj, l_atty, l_attprojb, BT, C, C);
        if (rp && lon) lora_forward(l_attproj, a.lora_h_proj + (size_t)l * BT * rp, l_atty, p.lora_proj_a + (size_t)l * rp * C,
                             p.lora_proj_b + (size_t)l * C * rp, ls, BT, C, C, rp, pd, dropout_site_seed(model, DROP_LORA + 1, l), xd);
        const float* attn_out = l_attproj;  // what the residual adds: the projection, or the adapter's output
        if (A) {
            float* l_out = a.adpa_out + (size_t)l * BT * C;
            adapter_forward(l_out, a.adpa_h + (size_t)l * BT * A, a.adpa_hg + (size_t)l * BT * A, l_attproj,
                            p.adpa_dw + (size_t)l * A * C, p.adpa_db + (size_t)l * A, p.adpa_uw + (size_t)l * C * A,
                            p.adpa_ub + (size_t)l * C, BT, C, A);
            attn_out = l_out;
        }
        residual_dropout_forward(l_residual2, residual, attn_out, BT * C, pdrop, dropout_site_seed(model, DROP_RES_ATT, l));
        layernorm_forward(l_ln2, l_ln2_mean, l_ln2_rstd, l_residual2, l_ln2w, l_ln2b, BT, C);
        gpt_matmul_forward(model, PIDX(fcw), l, l_fch, l_ln2, l_fcb, BT, C, F);
        if (rf && lon) lora_forward(l_fch, a.lora_h_fc + (size_t)l * BT * rf, l_ln2, p.lora_fc_a + (size_t)l * rf * C,
                             p.lora_fc_b + (size_t)l * F * rf, ls, BT, C, F, rf, pd, dropout_site_seed(model, DROP_LORA + 2, l), xd);
        gelu_forward(l_fch_gelu, l_fch, BT * F);
        gpt_matmul_forward(model, PIDX(fcprojw), l, l_fcproj, l_fch_gelu, l_fcprojb, BT, F, C);
        if (rg && lon) lora_forward(l_fcproj, a.lora_h_fcproj + (size_t)l * BT * rg, l_fch_gelu,
                             p.lora_fcproj_a + (size_t)l * rg * F, p.lora_fcproj_b + (size_t)l * C * rg, ls, BT,
                             F, C, rg, pd, dropout_site_seed(model, DROP_LORA + 3, l), xd);
        const float* mlp_out = l_fcproj;
        if (A) {
            float* l_out = a.adpm_out + (size_t)l * BT * C;
            adapter_forward(l_out, a.adpm_h + (size_t)l * BT * A, a.adpm_hg + (size_t)l * BT * A, l_fcproj,
                            p.adpm_dw + (size_t)l * A * C, p.adpm_db + (size_t)l * A, p.adpm_uw + (size_t)l * C * A,
                            p.adpm_ub + (size_t)l * C, BT, C, A);
            mlp_out = l_out;
        }
        residual_dropout_forward(l_residual3, l_residual2, mlp_out, BT * C, pdrop, dropout_site_seed(model, DROP_RES_MLP, l));
    }
    const float* residual = a.residual3 + (size_t)(L - 1) * BT * C;
    layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, residual, p.lnfw, p.lnfb, BT, C);
    if (c->num_classes) {  // classification head on each sequence's last token
        model->mean_loss = cls_forward(a.cls_logits, a.cls_probs, a.lnf, model->lengths, model->labels, p.cls_w,
                                       model->class_weights, model->label_smoothing, B, T, C, c->num_classes);
    } else {
        gpt_matmul_forward(model, PIDX(wte), 0, a.logits, a.lnf, NULL, BT, C, c->Vp);  // tied LM head: logits = lnf @ wte^T
        // probs are always computed (sampling needs them); the loss only with targets
        model->mean_loss = crossentropy_forward(a.probs, a.losses, a.logits, model->targets, BT, c->V, c->Vp);
    }
}

static void gpt_check_batch(const GPT* model, const int* inputs, const int* targets, int B, int T) {
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
}

// Forward pass with the LM head. inputs (B,T) token ids; targets (B,T) next-token ids with -1 = ignore, or
// NULL for inference. Fills acts (logits, probs, ...) and model->mean_loss (NaN without targets).
static void gpt_forward(GPT* model, const int* inputs, const int* targets, int B, int T) {
    if (model->config.num_classes) DIE("gpt_forward called on a classification model", "use gpt_forward_cls");
    gpt_check_batch(model, inputs, targets, B, T);
    gpt_alloc_activations(model, B, T);
    size_t BT = (size_t)B * T;
    memcpy(model->inputs, inputs, BT * sizeof(int));
    if (targets) memcpy(model->targets, targets, BT * sizeof(int));
    else for (size_t i = 0; i < BT; i++) model->targets[i] = -1;
    gpt_forward_body(model);
}

// Forward pass with the classification head. lengths (B) in [1, T]: each row's real tokens (the rest is
// padding, never attended to by the pooled position); labels (B) in [0, K) or -1, or NULL for inference.
static void gpt_forward_cls(GPT* model, const int* inputs, const int* lengths, const int* labels, int B, int T) {
    const GPTConfig* c = &model->config;
    if (!c->num_classes) DIE("gpt_forward_cls called on a model without a classification head", "set num_classes");
    gpt_check_batch(model, inputs, NULL, B, T);
    for (int b = 0; b < B; b++) {
        if (lengths[b] < 1 || lengths[b] > T) DIE("classification example length outside [1, T]", "");
        if (labels && (labels[b] < -1 || labels[b] >= c->num_classes)) {
            char msg[128];
            snprintf(msg, sizeof msg, "label %d outside [0, %d)", labels[b], c->num_classes);
            DIE(msg, "the dataset has more classes than the model's head (--classes)");
        }
    }
    gpt_alloc_activations(model, B, T);
    size_t BT = (size_t)B * T;
    memcpy(model->inputs, inputs, BT * sizeof(int));
    for (size_t i = 0; i < BT; i++) model->targets[i] = -1;
    memcpy(model->lengths, lengths, (size_t)B * sizeof(int));
    for (int b = 0; b < B; b++) model->labels[b] = labels ? labels[b] : -1;
    gpt_forward_body(model);
}

// ---------------------------------------------------------------------------- inference with a KV cache
// Generation one token at a time. Attention is causal, so the keys and values of position t depend only
// on tokens 0..t and never change once computed: the cache keeps them, and each new token then costs one
// position's forward (matrix-vector products) instead of the whole sequence's. gpt_decode_step below is
// gpt_forward_body at B = T = 1 for position pos, line for line, with attention reading the cache and the
// big matmuls as gpt_matvec_forward (the same products, summed in another order).
// Inference only: no dropout, nothing kept for backward. LoRA stays unmerged (as in the forward).
// PyTorch: Hugging Face's past_key_values / use_cache=True.
typedef struct {
    int cap;              // positions the cache holds (at most maxT)
    int len;              // positions 0..len-1 are filled
    float* k;             // (L, P+cap, C) keys, heads concatenated as in qkv; entries 0..P-1: the prefix
    float* v;             // (L, P+cap, C) values, the same layout
    // one position's activations, named as in ACT_TABLE; every layer reuses them
    float* x;             // (C) the residual stream
    float* ln;            // (C) a LayerNorm's output (ln1, ln2, lnf)
    float* ln_stat;       // (2) its mean and rstd
    float* qkv;           // (3C)
    float* att;           // (NH, P+cap) the query's attention probabilities
    float *atty, *attproj, *fcproj, *adp_out;  // (C)
    float *fch, *fch_gelu;                     // (F)
    float *adp_h, *adp_hg;                     // (A) adapter bottleneck, before and after GELU
    float* lora_h;        // (r)
    float* logits;        // (Vp), or (K) class logits with a classification head
    float* probs;         // (K) class probabilities
    float* memory;        // the one allocation all of the above are carved from
} KVCache;

// Allocates a cache of cap positions (1..maxT) for this model's shape. The only allocation of decoding.
static void kv_init(KVCache* kv, const GPT* model, int cap) {
    const GPTConfig* c = &model->config;
    if (cap < 1 || cap > c->maxT) DIE("KV cache capacity outside [1, maxT]", "");
    size_t C = (size_t)c->C, PC = (size_t)(c->prefix_len + cap), F = (size_t)mlp_width(c), A = (size_t)c->adapter_dim;
    size_t K = (size_t)c->num_classes, kvn = (size_t)c->L * PC * C;
    float** dst[] = {&kv->k, &kv->v, &kv->x, &kv->ln, &kv->ln_stat, &kv->qkv, &kv->att, &kv->atty, &kv->attproj,
                     &kv->fcproj, &kv->adp_out, &kv->fch, &kv->fch_gelu, &kv->adp_h, &kv->adp_hg, &kv->lora_h,
                     &kv->logits, &kv->probs};
    size_t n[] = {kvn, kvn, C, C, 2, 3 * C, (size_t)c->NH * PC, C, C, C, C, F, F, A, A, (size_t)c->lora_r,
                  K ? K : (size_t)c->Vp, K};
    size_t total = 0;
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++) total += n[i];
    kv->memory = (float*)callocCheck(total, sizeof(float));
    float* p = kv->memory;
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++) {
        *dst[i] = p;
        p += n[i];
    }
    kv->cap = cap;
    kv->len = 0;
}
static void kv_free(KVCache* kv) {
    free(kv->memory);
    memset(kv, 0, sizeof(*kv));
}

// Copies each layer's prefix-tuning keys and values into cache entries 0..P-1 (done whenever a sequence
// starts, so a cache follows the current prefix weights).
static void kv_copy_prefix(const GPT* model, KVCache* kv) {
    const GPTConfig* c = &model->config;
    size_t P = (size_t)c->prefix_len, C = (size_t)c->C, PC = P + (size_t)kv->cap;
    for (int l = 0; l < c->L && P; l++) {
        memcpy(kv->k + l * PC * C, model->params.prefix_k + l * P * C, P * C * sizeof(float));
        memcpy(kv->v + l * PC * C, model->params.prefix_v + l * P * C, P * C * sizeof(float));
    }
}

// Dot products for the matrix-vector products of a decode step: 16 independent partial sums, which the
// compiler keeps in one vector register (a single running sum could not be vectorised without reordering
// the additions, which only -ffast-math allows).
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
// the same with an int8 row (q, one scale d per group of 32): sum_e q[e] d[e/32] x[e], n a multiple of 32
static inline float dot_q8(const int8_t* q, const float* d, const float* x, int n) {
    float acc[Q8_GROUP] = {0};
    for (int g = 0; g < n / Q8_GROUP; g++)
        for (int j = 0; j < Q8_GROUP; j++) acc[j] += (float)q[g * Q8_GROUP + j] * d[g] * x[g * Q8_GROUP + j];
    float s = 0.0f;
    for (int j = 0; j < Q8_GROUP; j++) s += acc[j];
    return s;
}

// out(OC) = W x + bias for one row x (C), W layer l of weight tensor i, fp32 or int8: gpt_matmul_forward at
// N = 1. There gemm's packing and 8-row tiles would be 8x wasted work; a matrix-vector product is bound by
// reading each weight once, and that is all this does. (Same sums in another order: ~1e-7 relative.)
static void gpt_matvec_forward(const GPT* model, int i, int l, float* out, const float* x, const float* bias, int C,
                               int OC) {
    const Q8* w = &model->q8[i];
    if (w->q && C % Q8_GROUP) {  // int8 groups that straddle rows: the general path
        gpt_matmul_forward(model, i, l, out, x, bias, 1, C, OC);
        return;
    }
    size_t base = (size_t)l * C * OC;
#pragma omp parallel for
    for (int o = 0; o < OC; o++) {
        size_t row = base + (size_t)o * C;
        float s = w->q ? dot_q8(w->q + row, w->d + row / Q8_GROUP, x, C) : dot_f32(model->params.t[i] + row, x, C);
        out[o] = (bias ? bias[o] : 0.0f) + s;
    }
}

// One query against the cache: row t = pos of attention_forward, its n = P + pos + 1 keys and values read
// from the cache (the prefix first) instead of from qkv. The same operations in the same order.
// out: (C)   att: (NH, stride) probabilities   q: (C) the query   kc, vc: (n, C) this layer's cache
static void attention_decode(float* out, float* att, const float* q, const float* kc, const float* vc, int n,
                             int C, int NH, int stride) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for
    for (int h = 0; h < NH; h++) {
        float* a = att + (size_t)h * stride;
        float maxv = -INFINITY;
        for (int j = 0; j < n; j++) {
            const float* k = kc + (size_t)j * C + h * hs;
            float s = 0.0f;
            for (int i = 0; i < hs; i++) s += q[h * hs + i] * k[i];
            s *= scale;
            a[j] = s;
            if (s > maxv) maxv = s;
        }
        float sum = 0.0f;  // subtract the max before exp, as in attention_forward
        for (int j = 0; j < n; j++) {
            a[j] = expf(a[j] - maxv);
            sum += a[j];
        }
        for (int j = 0; j < n; j++) a[j] /= sum;
        float* y = out + h * hs;
        for (int i = 0; i < hs; i++) y[i] = 0.0f;
        for (int j = 0; j < n; j++) {
            const float* v = vc + (size_t)j * C + h * hs;
            for (int i = 0; i < hs; i++) y[i] += a[j] * v[i];
        }
    }
}

// The forward pass of the token at position pos, given the cached keys/values of positions 0..pos-1.
// Writes this position's keys/values into the cache (anything cached after pos is dropped: kv->len =
// pos + 1) and returns kv->logits: the (Vp) next-token logits, or for a classification model the (K)
// class logits of the sequence 0..pos (its head reads the last token; kv->probs has their softmax).
static float* gpt_decode_step(GPT* model, KVCache* kv, int token, int pos) {
    const GPTConfig* c = &model->config;
    if (pos < 0 || pos > kv->len || pos >= kv->cap) DIE("gpt_decode_step: pos is not the next free cache position", "decode positions in order 0, 1, 2, ... up to the cache's capacity");
    if (token < 0 || token >= c->V) DIE("gpt_decode_step: token id out of range", "");
    int C = c->C, L = c->L, NH = c->NH, P = c->prefix_len, A = c->adapter_dim, F = mlp_width(c), PC = P + kv->cap;
    int rq = lora_rank_for(c, LORA_QKV), rp = lora_rank_for(c, LORA_PROJ), rf = lora_rank_for(c, LORA_FC),
        rg = lora_rank_for(c, LORA_FCPROJ);
    float ls = c->lora_r ? lora_scale(c) : 0.0f;
    ParameterTensors p = model->params;
    if (pos == 0) kv_copy_prefix(model, kv);
    const float* wpe_t = p.wpe + (size_t)pos * C;  // encoder at position pos: wte[token] + wpe[pos]
    if (model->q8[PIDX(wte)].q) encoder_forward_q8(kv->x, &token, &model->q8[PIDX(wte)], wpe_t, 1, 1, C);
    else encoder_forward(kv->x, &token, p.wte, wpe_t, 1, 1, C);
    for (int l = 0; l < L; l++) {
        int lon = l >= c->lora_first && l <= c->lora_last;  // LoRA acts on this layer
        float* l_k = kv->k + (size_t)l * PC * C;  // this layer's cache, (P+cap, C)
        float* l_v = kv->v + (size_t)l * PC * C;
        layernorm_forward(kv->ln, kv->ln_stat, kv->ln_stat + 1, kv->x, p.ln1w + (size_t)l * C, p.ln1b + (size_t)l * C, 1, C);
        gpt_matvec_forward(model, PIDX(qkvw), l, kv->qkv, kv->ln, p.qkvb + (size_t)l * 3 * C, C, 3 * C);
        if (rq && lon) lora_forward(kv->qkv, kv->lora_h, kv->ln, p.lora_qkv_a + (size_t)l * rq * C,
                                    p.lora_qkv_b + (size_t)l * 3 * C * rq, ls, 1, C, 3 * C, rq, 0.0f, 0, NULL);
        memcpy(l_k + (size_t)(P + pos) * C, kv->qkv + C, (size_t)C * sizeof(float));  // this position's k and v
        memcpy(l_v + (size_t)(P + pos) * C, kv->qkv + 2 * C, (size_t)C * sizeof(float));
        attention_decode(kv->atty, kv->att, kv->qkv, l_k, l_v, P + pos + 1, C, NH, PC);
        gpt_matvec_forward(model, PIDX(attprojw), l, kv->attproj, kv->atty, p.attprojb + (size_t)l * C, C, C);
        if (rp && lon) lora_forward(kv->attproj, kv->lora_h, kv->atty, p.lora_proj_a + (size_t)l * rp * C,
                                    p.lora_proj_b + (size_t)l * C * rp, ls, 1, C, C, rp, 0.0f, 0, NULL);
        const float* attn_out = kv->attproj;
        if (A) {
            adapter_forward(kv->adp_out, kv->adp_h, kv->adp_hg, kv->attproj, p.adpa_dw + (size_t)l * A * C,
                            p.adpa_db + (size_t)l * A, p.adpa_uw + (size_t)l * C * A, p.adpa_ub + (size_t)l * C, 1, C, A);
            attn_out = kv->adp_out;
        }
        residual_forward(kv->x, kv->x, attn_out, C);  // residual2, in place
        layernorm_forward(kv->ln, kv->ln_stat, kv->ln_stat + 1, kv->x, p.ln2w + (size_t)l * C, p.ln2b + (size_t)l * C, 1, C);
        gpt_matvec_forward(model, PIDX(fcw), l, kv->fch, kv->ln, p.fcb + (size_t)l * F, C, F);
        if (rf && lon) lora_forward(kv->fch, kv->lora_h, kv->ln, p.lora_fc_a + (size_t)l * rf * C,
                                    p.lora_fc_b + (size_t)l * F * rf, ls, 1, C, F, rf, 0.0f, 0, NULL);
        gelu_forward(kv->fch_gelu, kv->fch, F);
        gpt_matvec_forward(model, PIDX(fcprojw), l, kv->fcproj, kv->fch_gelu, p.fcprojb + (size_t)l * C, F, C);
        if (rg && lon) lora_forward(kv->fcproj, kv->lora_h, kv->fch_gelu, p.lora_fcproj_a + (size_t)l * rg * F,
                                    p.lora_fcproj_b + (size_t)l * C * rg, ls, 1, F, C, rg, 0.0f, 0, NULL);
        const float* mlp_out = kv->fcproj;
        if (A) {
            adapter_forward(kv->adp_out, kv->adp_h, kv->adp_hg, kv->fcproj, p.adpm_dw + (size_t)l * A * C,
                            p.adpm_db + (size_t)l * A, p.adpm_uw + (size_t)l * C * A, p.adpm_ub + (size_t)l * C, 1, C, A);
            mlp_out = kv->adp_out;
        }
        residual_forward(kv->x, kv->x, mlp_out, C);  // residual3, in place
    }
    layernorm_forward(kv->ln, kv->ln_stat, kv->ln_stat + 1, kv->x, p.lnfw, p.lnfb, 1, C);
    if (c->num_classes) {
        int one = 1, none = -1;  // a sequence of length 1 (the row just computed), no label
        cls_forward(kv->logits, kv->probs, kv->ln, &one, &none, p.cls_w, NULL, 0.0f, 1, 1, C, c->num_classes);
    } else {
        gpt_matvec_forward(model, PIDX(wte), 0, kv->logits, kv->ln, NULL, C, c->Vp);  // tied LM head
    }
    kv->len = pos + 1;
    return kv->logits;
}

// Fills the cache with tokens[0..n) in one batched forward pass (matrix-matrix products: much faster than
// n decode steps) and returns what gpt_decode_step would have for the last of them. Leaves the (1, n)
// activations allocated in the model.
static float* gpt_prefill(GPT* model, KVCache* kv, const int* tokens, int n) {
    const GPTConfig* c = &model->config;
    if (n < 1 || n > kv->cap) DIE("gpt_prefill: more tokens than the KV cache holds (or none)", "");
    if (c->num_classes) gpt_forward_cls(model, tokens, &n, NULL, 1, n);
    else gpt_forward(model, tokens, NULL, 1, n);
    kv_copy_prefix(model, kv);
    size_t C = (size_t)c->C, P = (size_t)c->prefix_len, PC = P + (size_t)kv->cap;
    for (int l = 0; l < c->L; l++) {
        for (int t = 0; t < n; t++) {  // qkv is (L, 1, n, 3C): k at offset C, v at 2C
            const float* qkv = model->acts.qkv + ((size_t)l * n + t) * 3 * C;
            memcpy(kv->k + (l * PC + P + t) * C, qkv + C, C * sizeof(float));
            memcpy(kv->v + (l * PC + P + t) * C, qkv + 2 * C, C * sizeof(float));
        }
    }
    kv->len = n;
    if (c->num_classes) {
        memcpy(kv->logits, model->acts.cls_logits, (size_t)c->num_classes * sizeof(float));
        memcpy(kv->probs, model->acts.cls_probs, (size_t)c->num_classes * sizeof(float));
    } else {
        memcpy(kv->logits, model->acts.logits + (size_t)(n - 1) * c->Vp, (size_t)c->Vp * sizeof(float));
    }
    return kv->logits;
}

// The lowest layer backward must reach: below it nothing is trainable (a speed-up for LoRA on top layers
// and for frozen lower blocks). -1 means the embeddings train, so every layer is needed.
static int gpt_lowest_trainable_layer(const GPT* model) {
    const GPTConfig* c = &model->config;
    if (gpt_grad(model, PIDX(wte), 0) || gpt_grad(model, PIDX(wpe), 0)) return -1;
    for (int l = 0; l < c->L; l++)
        for (int i = 0; i < NUM_PARAMS; i++)
            if (param_per_layer(i) && gpt_grad(model, i, l)) return l;
    return c->L;  // only the final LayerNorm / head train
}

// Backward pass: the forward in reverse, line for line. Accumulates (+=) into the gradients of trainable
// slices, so gradient accumulation over micro-batches is several forward/backward pairs between two
// gpt_zero_grad calls. Frozen slices get no gradient (NULL pointers into the kernels).
static void gpt_backward(GPT* model) {
    const GPTConfig* c = &model->config;
    if (!isfinite(model->mean_loss))
        DIE("backward called without a finite loss", "call gpt_forward with targets first (some not -1)");
    int B = model->B, T = model->T, C = c->C, L = c->L, NH = c->NH, P = c->prefix_len, A = c->adapter_dim, PT = P + T, F = mlp_width(c);
    int rq = lora_rank_for(c, LORA_QKV), rp = lora_rank_for(c, LORA_PROJ), rf = lora_rank_for(c, LORA_FC),
        rg = lora_rank_for(c, LORA_FCPROJ);
    float ls = c->lora_r ? lora_scale(c) : 0.0f;
    size_t BT = (size_t)B * T;
    float pd = model->training && c->lora_r ? model->lora_dropout : 0.0f;  // as in the forward
    float* xd = pd > 0.0f ? model->dropout_scratch : NULL;
    float* dxd = pd > 0.0f ? model->dropout_scratch + BT * (F > C ? F : C) : NULL;
    float pdrop = model->training ? model->dropout : 0.0f;
    if (!model->grads_memory) gpt_alloc_grads(model);
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
    ParameterTensors p = model->params;
    ActivationTensors a = model->acts;
    GradActTensors ga = model->gacts;
#define G(name, l) gpt_grad(model, PIDX(name), l)

    memset(ga.dln, 0, BT * C * sizeof(float));
    if (c->num_classes) {
        cls_backward(ga.dln, G(cls_w, 0), ga.dcls_logits, a.cls_probs, a.lnf, model->lengths, model->labels, p.cls_w,
                     model->class_weights, model->label_smoothing, model->loss_scale, B, T, C, c->num_classes);
    } else {
        crossentropy_backward(ga.dlogits, a.probs, model->targets, BT, c->V, c->Vp, model->loss_scale);
        gpt_matmul_backward(model, PIDX(wte), 0, ga.dln, G(wte, 0), NULL, ga.dlogits, a.lnf, BT, C, c->Vp);
    }
    memset(ga.dresidual, 0, BT * C * sizeof(float));
    layernorm_backward(ga.dresidual, G(lnfw, 0), G(lnfb, 0), ga.dln, a.residual3 + (size_t)(L - 1) * BT * C, p.lnfw,
                       a.lnf_mean, a.lnf_rstd, BT, C);
    int lowest = gpt_lowest_trainable_layer(model);
    for (int l = L - 1; l >= 0 && l >= lowest; l--) {
        const float* residual = l == 0 ? a.encoded : a.residual3 + (size_t)(l - 1) * BT * C;
        int lon = l >= c->lora_first && l <= c->lora_last;
        const float* l_ln1w = p.ln1w + (size_t)l * C;
        const float* l_ln2w = p.ln2w + (size_t)l * C;
        const float* l_ln1 = a.ln1 + (size_t)l * BT * C;
        const float* l_ln1_mean = a.ln1_mean + (size_t)l * BT;
        const float* l_ln1_rstd = a.ln1_rstd + (size_t)l * BT;
        const float* l_qkv = a.qkv + (size_t)l * BT * 3 * C;
        const float* l_atty = a.atty + (size_t)l * BT * C;
        const float* l_att = a.att + (size_t)l * B * NH * T * PT;
        const float* l_attproj = a.attproj + (size_t)l * BT * C;
        const float* l_residual2 = a.residual2 + (size_t)l * BT * C;
        const float* l_ln2 = a.ln2 + (size_t)l * BT * C;
        const float* l_ln2_mean = a.ln2_mean + (size_t)l * BT;
        const float* l_ln2_rstd = a.ln2_rstd + (size_t)l * BT;
        const float* l_fch = a.fch + (size_t)l * BT * F;
        const float* l_fch_gelu = a.fch_gelu + (size_t)l * BT * F;
        const float* l_fcproj = a.fcproj + (size_t)l * BT * C;

        // residual3 = residual2 + mlp_out: residual_backward would add dresidual into both d(residual2) and
        // d(mlp_out). Both equal dresidual, so dresidual itself is read as d(mlp_out) below, and then becomes
        // d(residual2) as LayerNorm 2's backward adds its part into it. Same for residual2.
        // With residual dropout, residual3 = residual2 + m * mlp_out, so d(mlp_out) = m * dresidual instead.
        const float* dmlp_out = ga.dresidual;
        if (pdrop > 0.0f) {
            memset(ga.ddrop, 0, BT * C * sizeof(float));
            dropout_backward(ga.ddrop, ga.dresidual, BT * C, pdrop, dropout_site_seed(model, DROP_RES_MLP, l));
            dmlp_out = ga.ddrop;
        }
        if (A) {  // mlp_out = adapter(fcproj): dfcproj comes out of the adapter
            const float* dy = dmlp_out;
            memset(ga.dadp_x, 0, BT * C * sizeof(float));
            adapter_backward(ga.dadp_x, G(adpm_dw, l), G(adpm_db, l), G(adpm_uw, l), G(adpm_ub, l), ga.dadp_h,
                             ga.dadp_hg, dy, l_fcproj, a.adpm_h + (size_t)l * BT * A,
                             a.adpm_hg + (size_t)l * BT * A, p.adpm_dw + (size_t)l * A * C,
                             p.adpm_uw + (size_t)l * C * A, BT, C, A);
            dmlp_out = ga.dadp_x;
        }
        memset(ga.dfch_gelu, 0, BT * F * sizeof(float));
        if (rg && lon) lora_backward(ga.dfch_gelu, G(lora_fcproj_a, l), G(lora_fcproj_b, l), ga.dlora_h, dmlp_out,
                              a.lora_h_fcproj + (size_t)l * BT * rg, l_fch_gelu, p.lora_fcproj_a + (size_t)l * rg * F,
                              p.lora_fcproj_b + (size_t)l * C * rg, ls, BT, F, C, rg, pd, dropout_site_seed(model, DROP_LORA + 3, l), xd, dxd);
        gpt_matmul_backward(model, PIDX(fcprojw), l, ga.dfch_gelu, G(fcprojw, l), G(fcprojb, l), dmlp_out, l_fch_gelu, BT, F, C);
        memset(ga.dfch, 0, BT * F * sizeof(float));
        gelu_backward(ga.dfch, l_fch, ga.dfch_gelu, BT * F);
        memset(ga.dln, 0, BT * C * sizeof(float));
        if (rf && lon) lora_backward(ga.dln, G(lora_fc_a, l), G(lora_fc_b, l), ga.dlora_h, ga.dfch,
                              a.lora_h_fc + (size_t)l * BT * rf, l_ln2, p.lora_fc_a + (size_t)l * rf * C,
                              p.lora_fc_b + (size_t)l * F * rf, ls, BT, C, F, rf, pd, dropout_site_seed(model, DROP_LORA + 2, l), xd, dxd);
        gpt_matmul_backward(model, PIDX(fcw), l, ga.dln, G(fcw, l), G(fcb, l), ga.dfch, l_ln2, BT, C, F);
        layernorm_backward(ga.dresidual, G(ln2w, l), G(ln2b, l), ga.dln, l_residual2, l_ln2w, l_ln2_mean, l_ln2_rstd,
                           BT, C);
        // residual2 = residual + attn_out: dresidual is now d(residual2), read as d(attn_out)
        const float* dattn_out = ga.dresidual;
        if (pdrop > 0.0f) {
            memset(ga.ddrop, 0, BT * C * sizeof(float));
            dropout_backward(ga.ddrop, ga.dresidual, BT * C, pdrop, dropout_site_seed(model, DROP_RES_ATT, l));
            dattn_out = ga.ddrop;
        }
        if (A) {
            const float* dy = dattn_out;
            memset(ga.dadp_x, 0, BT * C * sizeof(float));
            adapter_backward(ga.dadp_x, G(adpa_dw, l), G(adpa_db, l), G(adpa_uw, l), G(adpa_ub, l), ga.dadp_h,
                             ga.dadp_hg, dy, l_attproj, a.adpa_h + (size_t)l * BT * A,
                             a.adpa_hg + (size_t)l * BT * A, p.adpa_dw + (size_t)l * A * C,
                             p.adpa_uw + (size_t)l * C * A, BT, C, A);
            dattn_out = ga.dadp_x;
        }
        memset(ga.datty, 0, BT * C * sizeof(float));
        if (rp && lon) lora_backward(ga.datty, G(lora_proj_a, l), G(lora_proj_b, l), ga.dlora_h, dattn_out,
                              a.lora_h_proj + (size_t)l * BT * rp, l_atty, p.lora_proj_a + (size_t)l * rp * C,
                              p.lora_proj_b + (size_t)l * C * rp, ls, BT, C, C, rp, pd, dropout_site_seed(model, DROP_LORA + 1, l), xd, dxd);
        gpt_matmul_backward(model, PIDX(attprojw), l, ga.datty, G(attprojw, l), G(attprojb, l), dattn_out, l_atty, BT, C, C);
        memset(ga.dqkv, 0, BT * 3 * C * sizeof(float));
        attention_backward(ga.dqkv, P ? G(prefix_k, l) : NULL, P ? G(prefix_v, l) : NULL, ga.datty, l_qkv,
                           P ? p.prefix_k + (size_t)l * P * C : NULL, P ? p.prefix_v + (size_t)l * P * C : NULL, l_att,
                           B, T, C, NH, P, pdrop, dropout_site_seed(model, DROP_ATT, l));
        memset(ga.dln, 0, BT * C * sizeof(float));
        if (rq && lon) lora_backward(ga.dln, G(lora_qkv_a, l), G(lora_qkv_b, l), ga.dlora_h, ga.dqkv,
                              a.lora_h_qkv + (size_t)l * BT * rq, l_ln1, p.lora_qkv_a + (size_t)l * rq * C,
                              p.lora_qkv_b + (size_t)l * 3 * C * rq, ls, BT, C, 3 * C, rq, pd, dropout_site_seed(model, DROP_LORA + 0, l), xd, dxd);
        gpt_matmul_backward(model, PIDX(qkvw), l, ga.dln, G(qkvw, l), G(qkvb, l), ga.dqkv, l_ln1, BT, C, 3 * C);
        layernorm_backward(ga.dresidual, G(ln1w, l), G(ln1b, l), ga.dln, residual, l_ln1w, l_ln1_mean, l_ln1_rstd,
                           BT, C);
    }
    if (lowest < 0) {
        // encoded = m * (wte[x] + wpe[t]) with embedding dropout: the gradient picks up the same mask
        if (pdrop > 0.0f) dropout_forward(ga.dresidual, ga.dresidual, BT * C, pdrop, dropout_site_seed(model, DROP_EMB, 0));
        encoder_backward(G(wte, 0), G(wpe, 0), ga.dresidual, model->inputs, B, T, C);
    }
#undef G
}
#ifdef KERNEL_TIMERS  // the timed names end here (see "kernel timers")
#undef encoder_forward
#undef encoder_forward_q8
#undef encoder_backward
#undef layernorm_forward
#undef layernorm_backward
#undef gpt_matmul_forward
#undef gpt_matmul_backward
#undef attention_forward
#undef attention_backward
#undef gelu_forward
#undef gelu_backward
#undef residual_dropout_forward
#undef dropout_backward
#undef crossentropy_forward
#undef crossentropy_backward
#undef lora_forward
#undef lora_backward
#undef adapter_forward
#undef adapter_backward
#undef cls_forward
#undef cls_backward
#endif

static void gpt_zero_grad(GPT* model) {
    if (model->grads_memory) memset(model->grads_memory, 0, model->num_trainable * sizeof(float));
}

// ---------------------------------------------------------------------------- optimizer
// Global L2 norm of all gradients, in double. PyTorch: torch.nn.utils.clip_grad_norm_ computes the same norm.
static float gpt_grad_norm(const GPT* model) {
    // partial sums over fixed 64K-element chunks, then added in chunk order: the same result whatever the
    // number of threads (an OpenMP reduction may add the threads' partials in any order)
    const size_t chunk = 1 << 16;
    size_t n = model->num_trainable, nchunks = (n + chunk - 1) / chunk;
    double* partial = (double*)mallocCheck((nchunks ? nchunks : 1) * sizeof(double));
    const float* g = model->grads_memory;
#pragma omp parallel for
    for (size_t k = 0; k < nchunks; k++) {
        size_t i = k * chunk, end = (k + 1) * chunk < n ? (k + 1) * chunk : n;
        double s8[8] = {0};  // 8 independent running sums, not one: a single sum is a chain of dependent
        for (; i + 8 <= end; i += 8)  // adds, each waiting out the previous one's 4-cycle latency
            for (int j = 0; j < 8; j++) s8[j] += (double)g[i + j] * g[i + j];
        double s = 0.0;
        for (; i < end; i++) s += (double)g[i] * g[i];
        for (int j = 0; j < 8; j++) s += s8[j];
        partial[k] = s;
    }
    double s = 0.0;
    for (size_t k = 0; k < nchunks; k++) s += partial[k];
    free(partial);
    return (float)sqrt(s);
}

// Clips the gradients so their global norm is at most max_norm, exactly as torch.nn.utils.clip_grad_norm_:
// coef = max_norm / (norm + 1e-6), applied only when coef < 1. Returns the norm before clipping.
// The multiplication by coef is deferred to the next gpt_adamw_update, which reads each gradient once anyway
// (the same float product, so the same numbers as scaling in place, and one pass over memory fewer).
static float gpt_clip_grad_norm(GPT* model, float max_norm) {
    float norm = gpt_grad_norm(model);
    model->grad_scale = 1.0f;
    if (max_norm > 0.0f) {
        float coef = max_norm / (norm + 1e-6f);
        if (coef < 1.0f) model->grad_scale = coef;
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
// Only trainable slices are touched; each uses lr times its lr_scale (layer-wise decay).
// [lo, hi) restricts the update to that range of the packed trainable floats, with m and v holding just
// hi - lo floats: how ZeRO-1 shards the optimizer state over processes (train.c). Everything: [0, num_trainable).
static void gpt_adamw_update_range(GPT* model, const AdamWConfig* o, int t, size_t lo, size_t hi) {
    if (!model->grads_memory) DIE("AdamW step before any backward", "");
    if (!model->m_memory) {
        model->m_memory = (float*)callocCheck(hi - lo ? hi - lo : 1, sizeof(float));
        model->v_memory = (float*)callocCheck(hi - lo ? hi - lo : 1, sizeof(float));
    }
    const GPTConfig* c = &model->config;
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    const float inv_bc1 = 1.0f / (1.0f - powf(b1, (float)t));  // bias corrections, as multipliers
    const float inv_bc2 = 1.0f / (1.0f - powf(b2, (float)t));
    const float gs = model->grad_scale;  // clipping, deferred from gpt_clip_grad_norm
    for (int i = 0; i < NUM_PARAMS; i++) {
        size_t n = slice_numel(c, i);
        for (int l = 0; l < (param_per_layer(i) ? c->L : 1); l++) {
            size_t k = (size_t)i * c->L + l, off = model->grad_offset[k];
            if (off == SIZE_MAX || off + n <= lo || off >= hi) continue;
            size_t j0 = off < lo ? lo - off : 0, j1 = off + n > hi ? hi - off : n;  // this slice's part of the range
            const float lr = o->lr * model->lr_scale[k];
            const float decay = 1.0f - lr * (PARAM_TABLE[i].decay ? o->weight_decay : 0.0f);
            float* restrict p = model->params.t[i] + (size_t)l * n;
            const float* restrict g = model->grads_memory + off;
            float* restrict m = model->m_memory + off - lo;  // m[j] is the state of element off + j
            float* restrict v = model->v_memory + off - lo;
#pragma omp parallel for simd
            for (size_t j = j0; j < j1; j++) {
                float gj = g[j] * gs;
                float mj = b1 * m[j] + (1.0f - b1) * gj;
                float vj = b2 * v[j] + (1.0f - b2) * gj * gj;
                m[j] = mj;
                v[j] = vj;
                p[j] = p[j] * decay - lr * (mj * inv_bc1) / (sqrtf(vj * inv_bc2) + eps);
            }
        }
    }
    model->grad_scale = 1.0f;
}

// Copies the trainable slices of the parameters into flat (to_flat = 1), packed as the gradients are, or
// back from flat (to_flat = 0). ZeRO-1 gathers the ranks' updated shards in this packed form.
static void gpt_pack_trainable(GPT* model, float* flat, int to_flat) {
    const GPTConfig* c = &model->config;
    for (int i = 0; i < NUM_PARAMS; i++) {
        size_t n = slice_numel(c, i);
        for (int l = 0; l < (param_per_layer(i) ? c->L : 1); l++) {
            size_t off = model->grad_offset[(size_t)i * c->L + l];
            if (off == SIZE_MAX) continue;
            float* p = model->params.t[i] + (size_t)l * n;
            if (to_flat) memcpy(flat + off, p, n * sizeof(float));
            else memcpy(p, flat + off, n * sizeof(float));
        }
    }
}

static void gpt_adamw_update(GPT* model, const AdamWConfig* o, int t) {
    gpt_adamw_update_range(model, o, t, 0, model->num_trainable);
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
