// model.h: GPT-2 for training, in plain C. The specification of this project.
//
// The model: the configuration, the one parameter table, building and freeing a model, int8 storage, the
// whole-model forward and then its backward (the layer backwards in exactly the reverse order), AdamW and
// the learning-rate schedule. The layer kernels it is built from are in kernels.h (forward directly above
// backward) and lora.c; test_gpt.c holds all of it to PyTorch and to finite differences.
//
// Legend (used in every shape comment, in kernels.h, lora.c and infer.h too; PyTorch order, the last axis is
// contiguous in memory). The parameter and activation tables' shape strings use the same symbols.
//   B batch            T time (sequence length)     C channels          maxT longest sequence (positions)
//   V vocab            Vp vocab padded to a multiple of 64 (Vlm: Vp with the LM head, 0 with a class head)
//   L layers           NH heads                     hs head size (C/NH) F MLP hidden width (4C in GPT-2)
//   N rows (B*T)       OC output channels           K classes of the classification head
//   r LoRA rank (rqkv, rproj, rfc, rfcproj: per target, 0 where it has none)
//   D adapter bottleneck width (CA: C where there are adapters, else 0)
//   P prefix-tuning positions (PT = P + T: the keys a query attends to)
//   E tags of the token-classification head (every position gets E logits; 0 without that head)

#pragma once
#include "lora.c"  // defines: the layer kernels (kernels.h), LoRA, adapters and the classification head

// ---------------------------------------------------------------------------- config
// Which projections get LoRA (bits of GPTConfig.lora_targets)
enum { LORA_QKV = 1, LORA_PROJ = 2, LORA_FC = 4, LORA_FCPROJ = 8 };
// The architecture (GPTConfig.arch, checkpoint header [22]): the same parameters, a different attention mask.
// ARCH_GPT2: causal, next-token LM. ARCH_ENCODER: bidirectional (BERT-style), masked-LM pretraining
// (loader.c), the class head on position 0. (Issue 15 reserves 2 for llama.)
typedef enum { ARCH_GPT2 = 0, ARCH_ENCODER = 1 } Arch;
static const char* const ARCH_NAMES[] = {"gpt2", "encoder"};

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
    int lm_head_too;   // multi-task (multitask.c): the tied LM head runs too, for lm tasks, beside the class head
    int arch;          // Arch: ARCH_GPT2 (0, every file without the field) or ARCH_ENCODER
    int mask_id;       // the encoder's [MASK] token id (the text vocabulary's size; also its [CLS]); 0 for GPT-2
    int num_tags;      // E: token-classification head (GPT2ForTokenClassification), E tag logits per position;
                       // 0 = none. The head kind: token when E > 0, sequence when K > 0, else the tied LM head
} GPTConfig;

static int pad_vocab(int V) { return (V + 63) / 64 * 64; }
// the number of named labels the head has: E tags (token head) or K classes (sequence head), else 0
static int head_labels(const GPTConfig* c) { return c->num_tags ? c->num_tags : c->num_classes; }
static int mlp_width(const GPTConfig* c) { return c->F ? c->F : 4 * c->C; }

// ---------------------------------------------------------------------------- the parameter table
// The one list of parameters, in memory order (the first 16 are GPT-2's, in llm.c's order). Allocation,
// checkpoint I/O, the loaders' shape checks, AdamW's decay groups, freezing and the test report all walk it.
// Shapes use the legend's symbols; "3C" means 3*C. Per-layer tensors are stacked along a leading L axis.
// The fine-tuning additions use: rqkv, rproj, rfc, rfcproj (the LoRA rank where that projection is a
// target, else 0), D (adapter bottleneck), CA (C with adapters, else 0), P (prefix length), K (classes);
// absent ones have 0 elements.
// decay: 1 for matrices (each per-layer slice is 2-D), 0 for biases and LayerNorm parameters (nanoGPT's
// convention). Note it is not "ndim >= 2" of the stacked shape: qkvb is (L,3C) but each layer's bias is 1-D.
#define NUM_BASE_PARAMS 16  // GPT-2 itself: what llm.c and Hugging Face GPT-2 files hold
#define NUM_PARAMS 37
typedef struct {
    const char* name;
    const char* shape;
    int decay;
    const char* hf;    // its name in a Hugging Face GPT-2 checkpoint (after "h.N." for per-layer tensors)
    int hf_transposed; // 1 where HF's Conv1D stores the weight (in, out), the transpose of ours
    const char* gguf;  // its name in a GGUF file of llama.cpp's gpt2 (after "blk.N."), NULL: not in GPT-2
    int int8;          // 1: gpt_quantize stores it as int8 (the matrices every token multiplies by, 99.7% of GPT-2)
    int prunable;      // 1: ./train prune may zero it (the block matrices; wte is also the LM head, so it stays)
} ParamSpec;
static const ParamSpec PARAM_TABLE[NUM_PARAMS] = {
    // name, shape, decay, Hugging Face name, transposed, GGUF name (llama.cpp gpt2), int8, prunable
    // token embedding, also the LM head (tied); HF stores V rows
    {"wte",            "Vp,C",         1,  "wte.weight",                 0,  "token_embd.weight",     1,  0},
    // position embedding
    {"wpe",            "maxT,C",       1,  "wpe.weight",                 0,  "position_embd.weight",  0,  0},
    // LayerNorm before attention
    {"ln1w",           "L,C",          0,  "ln_1.weight",                0,  "attn_norm.weight",      0,  0},
    {"ln1b",           "L,C",          0,  "ln_1.bias",                  0,  "attn_norm.bias",        0,  0},
    // attention q,k,v projection, nn.Linear layout (out, in)
    {"qkvw",           "L,3C,C",       1,  "attn.c_attn.weight",         1,  "attn_qkv.weight",       1,  1},
    {"qkvb",           "L,3C",         0,  "attn.c_attn.bias",           0,  "attn_qkv.bias",         0,  0},
    // attention output projection
    {"attprojw",       "L,C,C",        1,  "attn.c_proj.weight",         1,  "attn_output.weight",    1,  1},
    {"attprojb",       "L,C",          0,  "attn.c_proj.bias",           0,  "attn_output.bias",      0,  0},
    // LayerNorm before the MLP
    {"ln2w",           "L,C",          0,  "ln_2.weight",                0,  "ffn_norm.weight",       0,  0},
    {"ln2b",           "L,C",          0,  "ln_2.bias",                  0,  "ffn_norm.bias",         0,  0},
    // MLP up projection
    {"fcw",            "L,F,C",        1,  "mlp.c_fc.weight",            1,  "ffn_up.weight",         1,  1},
    {"fcb",            "L,F",          0,  "mlp.c_fc.bias",              0,  "ffn_up.bias",           0,  0},
    // MLP down projection
    {"fcprojw",        "L,C,F",        1,  "mlp.c_proj.weight",          1,  "ffn_down.weight",       1,  1},
    {"fcprojb",        "L,C",          0,  "mlp.c_proj.bias",            0,  "ffn_down.bias",         0,  0},
    // final LayerNorm
    {"lnfw",           "C",            0,  "ln_f.weight",                0,  "output_norm.weight",    0,  0},
    {"lnfb",           "C",            0,  "ln_f.bias",                  0,  "output_norm.bias",      0,  0},
    // LoRA (Hu et al. 2021): W x + (alpha/r) B A x. A: (r, in), B: (out, r), PEFT's lora_A / lora_B layout
    {"lora_qkv_a",     "L,rqkv,C",     1,  "attn.c_attn.lora_A.weight",  0,  NULL,                    0,  0},
    {"lora_qkv_b",     "L,3C,rqkv",    1,  "attn.c_attn.lora_B.weight",  0,  NULL,                    0,  0},
    {"lora_proj_a",    "L,rproj,C",    1,  "attn.c_proj.lora_A.weight",  0,  NULL,                    0,  0},
    {"lora_proj_b",    "L,C,rproj",    1,  "attn.c_proj.lora_B.weight",  0,  NULL,                    0,  0},
    {"lora_fc_a",      "L,rfc,C",      1,  "mlp.c_fc.lora_A.weight",     0,  NULL,                    0,  0},
    {"lora_fc_b",      "L,F,rfc",      1,  "mlp.c_fc.lora_B.weight",     0,  NULL,                    0,  0},
    {"lora_fcproj_a",  "L,rfcproj,F",  1,  "mlp.c_proj.lora_A.weight",   0,  NULL,                    0,  0},
    {"lora_fcproj_b",  "L,C,rfcproj",  1,  "mlp.c_proj.lora_B.weight",   0,  NULL,                    0,  0},
    // Houlsby adapters: x + up(gelu(down(x))), after the attention projection and after the MLP
    {"adpa_dw",        "L,D,C",        1,  "adapter_attn.down.weight",   0,  NULL,                    0,  0},
    {"adpa_db",        "L,D",          0,  "adapter_attn.down.bias",     0,  NULL,                    0,  0},
    {"adpa_uw",        "L,C,D",        1,  "adapter_attn.up.weight",     0,  NULL,                    0,  0},
    {"adpa_ub",        "L,CA",         0,  "adapter_attn.up.bias",       0,  NULL,                    0,  0},
    {"adpm_dw",        "L,D,C",        1,  "adapter_mlp.down.weight",    0,  NULL,                    0,  0},
    {"adpm_db",        "L,D",          0,  "adapter_mlp.down.bias",      0,  NULL,                    0,  0},
    {"adpm_uw",        "L,C,D",        1,  "adapter_mlp.up.weight",      0,  NULL,                    0,  0},
    {"adpm_ub",        "L,CA",         0,  "adapter_mlp.up.bias",        0,  NULL,                    0,  0},
    // prefix-tuning (Li & Liang 2021): P key and value vectors per layer, heads concatenated
    {"prefix_k",       "L,P,C",        1,  "prefix.keys",                0,  NULL,                    0,  0},
    {"prefix_v",       "L,P,C",        1,  "prefix.values",              0,  NULL,                    0,  0},
    // classification head: logits = h_last @ cls_w^T (no bias, as GPT2ForSequenceClassification's score)
    {"cls_w",          "K,C",          1,  "score.weight",               0,  NULL,                    0,  0},
    // token-classification head: logits[b,t] = lnf[b,t] @ tok_w^T + tok_b (GPT2ForTokenClassification's classifier)
    {"tok_w",          "E,C",          1,  "classifier.weight",          0,  NULL,                    0,  0},
    {"tok_b",          "E",            0,  "classifier.bias",            0,  NULL,                    0,  0},
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
        float *tok_w, *tok_b;
    };
    float* t[NUM_PARAMS];
} ParameterTensors;
_Static_assert(sizeof(ParameterTensors) == NUM_PARAMS * sizeof(float*), "ParameterTensors drifted from PARAM_TABLE");

static int lora_rank_for(const GPTConfig* c, int target) { return (c->lora_targets & target) ? c->lora_r : 0; }

// Evaluates a shape string like "L,3C,C" for a config and batch (B, T may be 0 for parameters).
// Writes up to 5 dims, returns the number of dims.
static int shape_dims(const char* shape, const GPTConfig* c, int B, int T, size_t dims[5]) {
    static const char* names[] = {"maxT", "Vlm", "Vp", "NH", "rqkv", "rproj", "rfcproj", "rfc", "PT",
                                  "V", "L", "CA", "C", "B", "T", "D", "P", "K", "r", "F", "E"};
    int nd = 0;
    const char* s = shape;
    while (*s && nd < 5) {
        size_t mult = 1;
        if (*s >= '0' && *s <= '9') mult = (size_t)strtoul(s, (char**)&s, 10);
        int k = 0, n = (int)(sizeof names / sizeof names[0]);
        while (k < n && strncmp(s, names[k], strlen(names[k]))) k++;
        if (k == n) DIE("a shape string in a table uses a symbol shape_dims does not know", shape);
        s += strlen(names[k]);
        size_t v = 0;
        switch (k) {
            case 0: v = (size_t)c->maxT; break;
            case 1: v = (c->num_classes && !c->lm_head_too) || c->num_tags ? 0 : (size_t)c->Vp; break;  // LM-head logits: none with only a class head, or a tag head
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
            case 20: v = (size_t)c->num_tags; break;
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

// The prunable column as a list: the k-th prunable parameter in table order (-1 past the last), and how many.
static int prunable_param(int k) {
    for (int i = 0; i < NUM_PARAMS; i++)
        if (PARAM_TABLE[i].prunable && k-- == 0) return i;
    return -1;
}
static int num_prunable(void) {
    int n = 0;
    for (int i = 0; i < NUM_PARAMS; i++) n += PARAM_TABLE[i].prunable;
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
#define NUM_ACTS 36
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
    {"adpa_h", "L,B,T,D"},       // attention adapter: down(x), before GELU
    {"adpa_hg", "L,B,T,D"},      // after GELU
    {"adpa_out", "L,B,T,CA"},    // x + up(...): what the residual adds when adapters are on
    {"adpm_h", "L,B,T,D"},       // MLP adapter, the same three
    {"adpm_hg", "L,B,T,D"},
    {"adpm_out", "L,B,T,CA"},
    {"cls_logits", "B,K"},       // classification head
    {"cls_probs", "B,K"},
    {"tok_logits", "B,T,E"},     // token-classification head: E tag logits per position
    {"tok_probs", "B,T,E"},      // their softmax
};
typedef union {
    struct {
        float *encoded, *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att, *attproj, *residual2, *ln2, *ln2_mean,
            *ln2_rstd, *fch, *fch_gelu, *fcproj, *residual3, *lnf, *lnf_mean, *lnf_rstd, *logits, *probs, *losses;
        float *lora_h_qkv, *lora_h_proj, *lora_h_fc, *lora_h_fcproj;
        float *adpa_h, *adpa_hg, *adpa_out, *adpm_h, *adpm_hg, *adpm_out, *cls_logits, *cls_probs;
        float *tok_logits, *tok_probs;
    };
    float* t[NUM_ACTS];
} ActivationTensors;
_Static_assert(sizeof(ActivationTensors) == NUM_ACTS * sizeof(float*), "ActivationTensors drifted from ACT_TABLE");

// Gradients of activations. Backward walks one layer at a time, so apart from the residual stream and the
// logits these are one layer's worth and reused by every layer (each is zeroed before the layer uses it).
#define NUM_GRAD_ACTS 14
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
    {"dadp_h", "B,T,D"},
    {"dadp_hg", "B,T,D"},
    {"dcls_logits", "B,K"},
    {"ddrop", "B,T,C"},       // residual dropout: gradient of the dropped branch
    {"dtok_logits", "B,T,E"}, // token-classification head
};
typedef union {
    struct {
        float *dlogits, *dresidual, *dln, *dqkv, *datty, *dfch, *dfch_gelu, *dlora_h, *dadp_x, *dadp_h, *dadp_hg,
            *dcls_logits, *ddrop, *dtok_logits;
    };
    float* t[NUM_GRAD_ACTS];
} GradActTensors;
_Static_assert(sizeof(GradActTensors) == NUM_GRAD_ACTS * sizeof(float*), "GradActTensors drifted");

// ---------------------------------------------------------------------------- the model
// Multi-task (multitask.c): one trunk, several heads. A cls task's classes are rows [k0, k0 + nk) of cls_w
// (K is the sum of every cls task's classes); an lm task (nk 0) uses the tied LM head.
typedef struct {
    char name[64];
    int kind;    // loader.c's DataKind: 0 lm, 1 cls
    int k0, nk;  // its rows of cls_w
} TaskHead;

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
    int* lengths;             // (B) tokens in each sequence (classification; T for LM batches); the encoder's
                              // attention reads no key past a row's length
    int* pool_len;            // (B) the class head reads row b at position pool_len[b]-1: lengths[b] for GPT-2
                              // (the last token), 1 for the encoder (position 0, its [CLS])
    int* labels;              // (B) classification: class ids (-1 = none)
    float* class_weights;     // (K) or NULL: classification loss weights
    char (*label_names)[256]; // (K) or NULL: the class names of the data the head was trained on (checkpoints keep them)
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
    TaskHead* tasks;          // (num_tasks) multi-task: each task's head, or NULL (checkpoints keep them)
    int num_tasks;
    int head_k0, head_nk;     // the head the next forward/backward runs: rows [head_k0, +head_nk) of cls_w (nk 0: all K)
    int head_lm;              // 1: the tied LM head instead (an lm task of a multi-task model)
    // int8 weights (gpt_quantize): q8[i].q is set for a quantized tensor, whose fp32 pointer is then NULL
    // (its place in params_memory is never touched, so it costs no resident memory). Quantized tensors are
    // frozen: LoRA on an int8 base is QLoRA's idea with int8 instead of 4-bit NF4.
    Q8 q8[NUM_PARAMS];
    int8_t* q8_memory;
    float* q8_scales;
} GPT;

// The classes of the head the next forward runs (0: the LM head).
static int gpt_head_classes(const GPT* m) {
    return m->head_lm || !m->config.num_classes ? 0 : m->head_nk ? m->head_nk : m->config.num_classes;
}

static float lora_scale(const GPTConfig* c) { return c->lora_alpha / (float)c->lora_r; }

static size_t slice_numel(const GPTConfig* c, int i) {
    return param_numel(c, i) / (param_per_layer(i) ? (size_t)c->L : 1);
}

// memory: the parameters' block (num_parameters floats, taken over), or NULL for a new one of zeros.
static void gpt_build_on(GPT* model, GPTConfig config, float* memory) {
    memset(model, 0, sizeof(*model));
    model->config = config;
    model->num_parameters = num_parameters(&config);
    model->params_memory = memory ? memory : (float*)callocCheck(model->num_parameters, sizeof(float));
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
static void gpt_build(GPT* model, GPTConfig config) { gpt_build_on(model, config, NULL); }

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
// classification head ~ N(0, 0.02) (it is new, there is nothing to equal); the token head's weight the same
// and its bias 0 (Hugging Face's _init_weights for a Linear).
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
                   !strcmp(name, "cls_w") || !strcmp(name, "tok_w")) {
            for (size_t j = 0; j < n; j++) p[j] = 0.02f * random_normal(rng);
        } else {
            memset(p, 0, n * sizeof(float));  // lora B, adapter up weights and all adapter biases
        }
    }
}

static void gpt_free(GPT* model) {
    free(model->params_memory);
    free(model->label_names);
    free(model->tasks);
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
    free(model->pool_len);
    free(model->labels);
    free(model->class_weights);
    free(model->dropout_scratch);
    free(model->q8_memory);
    free(model->q8_scales);
    memset(model, 0, sizeof(*model));
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


// (Re)allocates activations for a batch shape. Memory is one block per table, carved into tensors.
static void gpt_alloc_activations(GPT* model, int B, int T) {
    if (model->B == B && model->T == T) return;
    const GPTConfig* c = &model->config;
    free(model->acts_memory);
    free(model->gacts_memory);
    free(model->inputs);
    free(model->targets);
    free(model->lengths);
    free(model->pool_len);
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
    model->pool_len = (int*)mallocCheck((size_t)B * sizeof(int));
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

// The trainable parameter count, from the mask (what the optimizer updates).
static size_t count_trainable(const GPT* model) {
    const GPTConfig* c = &model->config;
    size_t n = 0;
    for (int i = 0; i < NUM_PARAMS; i++)
        for (int l = 0; l < (param_per_layer(i) ? c->L : 1); l++)
            if (model->trainable[(size_t)i * c->L + l]) n += slice_numel(c, i);
    return n;
}

static int has_finetuning_tensors(const GPTConfig* c) {
    return c->lora_r || c->adapter_dim || c->prefix_len || c->num_classes || c->num_tags;
}

// ---------------------------------------------------------------------------- int8 model
// Which tensors gpt_quantize turns into int8: the matrices every token multiplies by (99.7% of GPT-2's weights).
static int param_quantizable(int i) { return PARAM_TABLE[i].int8; }

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

// ---------------------------------------------------------------------------- new fine-tuning tensors
// Rebuilds a model with new fine-tuning settings (LoRA, adapters, prefix, head), keeping the base weights.
// The added tensors start from gpt_init_peft. Call before training starts.
static void gpt_set_peft(GPT* model, GPTConfig with, uint64_t* rng) {
    GPTConfig c = model->config;
    if (with.maxT != c.maxT || with.V != c.V || with.Vp != c.Vp || with.L != c.L || with.NH != c.NH ||
        with.C != c.C || mlp_width(&with) != mlp_width(&c) || with.arch != c.arch || with.mask_id != c.mask_id)
        DIE("gpt_set_peft cannot change the base model's shape", "");
    GPT m;
    if (!model->q8_memory) {
        // The base tensors come first in the table, so they are the same prefix of the parameters' block under
        // both configs: the block is grown (or shrunk) in place and its tail zeroed, and no second copy of the
        // base weights is ever resident (LoRA's peak memory is the base, not twice the base).
        size_t nbase = 0, n = num_parameters(&with);
        for (int i = 0; i < NUM_BASE_PARAMS; i++) nbase += param_numel(&c, i);
        float* mem = (float*)reallocCheck(model->params_memory, n * sizeof(float));
        memset(mem + nbase, 0, (n - nbase) * sizeof(float));
        model->params_memory = NULL;  // now m's
        gpt_build_on(&m, with, mem);
    } else {
        gpt_build(&m, with);
        for (int i = 0; i < NUM_BASE_PARAMS; i++)
            if (!model->q8[i].q) memcpy(m.params.t[i], model->params.t[i], param_numel(&c, i) * sizeof(float));
    }
    if (model->q8_memory) {  // an int8 base moves over as it is, and stays frozen
        m.q8_memory = model->q8_memory, m.q8_scales = model->q8_scales;
        model->q8_memory = NULL, model->q8_scales = NULL;
        memcpy(m.q8, model->q8, sizeof m.q8);
        gpt_drop_fp32_copies(&m);
    }
    gpt_init_peft(&m, rng);
    float* cw = model->class_weights;  // training options survive the rebuild
    float smoothing = model->label_smoothing;
    model->class_weights = NULL;
    gpt_free(model);
    *model = m;
    model->class_weights = cw;
    model->label_smoothing = smoothing;
}

// ---------------------------------------------------------------------------- kernel timers (optional)
// Built with -DKERNEL_TIMERS (`make profile`), every kernel call in gpt_forward_body and gpt_backward is
// timed (wall clock, summed by kind and direction; matmuls by weight) and `./train bench` prints the table.
// The two functions' text is untouched: each kernel name is redefined below as a macro that wraps the call
// in a start/stop pair (a function-like macro does not expand inside its own expansion, so the inner name
// is the real function), and #undef'd again right after gpt_backward. dev/PROFILE.md has a breakdown.
#ifdef KERNEL_TIMERS  // (clock_gettime: common.h)
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

// ---------------------------------------------------------------------------- forward
// The body of the forward pass; gpt_forward and gpt_forward_cls set up the batch first.
static void gpt_forward_body(GPT* model) {
    const GPTConfig* c = &model->config;
    int B = model->B, T = model->T;
    size_t BT = (size_t)B * T;
    int C = c->C, L = c->L, NH = c->NH, P = c->prefix_len, A = c->adapter_dim, PT = P + T, F = mlp_width(c);
    int rq = lora_rank_for(c, LORA_QKV), rp = lora_rank_for(c, LORA_PROJ), rf = lora_rank_for(c, LORA_FC),
        rg = lora_rank_for(c, LORA_FCPROJ);
    int causal = c->arch != ARCH_ENCODER;  // the only difference the encoder makes inside the blocks
    float lora_s = c->lora_r ? lora_scale(c) : 0.0f;
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
                             p.lora_qkv_b + (size_t)l * 3 * C * rq, lora_s, BT, C, 3 * C, rq, pd, dropout_site_seed(model, DROP_LORA + 0, l), xd);
        attention_forward(l_atty, l_att, l_qkv, P ? p.prefix_k + (size_t)l * P * C : NULL,
                          P ? p.prefix_v + (size_t)l * P * C : NULL, model->lengths, B, T, C, NH, P, causal, pdrop,
                          dropout_site_seed(model, DROP_ATT, l));
        gpt_matmul_forward(model, PIDX(attprojw), l, l_attproj, l_atty, l_attprojb, BT, C, C);
        if (rp && lon) lora_forward(l_attproj, a.lora_h_proj + (size_t)l * BT * rp, l_atty, p.lora_proj_a + (size_t)l * rp * C,
                             p.lora_proj_b + (size_t)l * C * rp, lora_s, BT, C, C, rp, pd, dropout_site_seed(model, DROP_LORA + 1, l), xd);
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
                             p.lora_fc_b + (size_t)l * F * rf, lora_s, BT, C, F, rf, pd, dropout_site_seed(model, DROP_LORA + 2, l), xd);
        gelu_forward(l_fch_gelu, l_fch, BT * F);
        gpt_matmul_forward(model, PIDX(fcprojw), l, l_fcproj, l_fch_gelu, l_fcprojb, BT, F, C);
        if (rg && lon) lora_forward(l_fcproj, a.lora_h_fcproj + (size_t)l * BT * rg, l_fch_gelu,
                             p.lora_fcproj_a + (size_t)l * rg * F, p.lora_fcproj_b + (size_t)l * C * rg, lora_s, BT,
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
    if (gpt_head_classes(model)) {  // classification head on each sequence's last token (the encoder's: position 0),
        int k0 = model->head_k0;    // the task's rows of cls_w
        model->mean_loss = cls_forward(a.cls_logits, a.cls_probs, a.lnf, model->pool_len, model->labels, p.cls_w + (size_t)k0 * C,
                                       model->class_weights ? model->class_weights + k0 : NULL, model->label_smoothing, B, T,
                                       C, gpt_head_classes(model));
    } else if (c->num_tags) {  // token-classification head on every position: a linear map, then softmax + CE
        // over the positions whose tag is not -1 (the first subword of each word). PyTorch:
        // F.cross_entropy((lnf @ tok_w.T + tok_b).view(-1, E), tags.view(-1), ignore_index=-1)
        gpt_matmul_forward(model, PIDX(tok_w), 0, a.tok_logits, a.lnf, p.tok_b, BT, C, c->num_tags);
        model->mean_loss = crossentropy_forward(a.tok_probs, a.losses, a.tok_logits, model->targets, BT, c->num_tags, c->num_tags);
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
    if (gpt_head_classes(model)) DIE("gpt_forward called on a classification model", "use gpt_forward_cls");
    if (model->config.num_tags) DIE("gpt_forward called on a token-classification model", "use gpt_forward_tok");
    gpt_check_batch(model, inputs, targets, B, T);
    gpt_alloc_activations(model, B, T);
    size_t BT = (size_t)B * T;
    memcpy(model->inputs, inputs, BT * sizeof(int));
    if (targets) memcpy(model->targets, targets, BT * sizeof(int));
    else for (size_t i = 0; i < BT; i++) model->targets[i] = -1;
    for (int b = 0; b < B; b++) model->lengths[b] = T;  // no padding: the encoder attends to every position
    gpt_forward_body(model);
}

// Forward pass with the classification head. lengths (B) in [1, T]: each row's real tokens (the rest is
// padding, never attended to by the pooled position); labels (B) in [0, K) or -1, or NULL for inference.
static void gpt_forward_cls(GPT* model, const int* inputs, const int* lengths, const int* labels, int B, int T) {
    int K = gpt_head_classes(model);
    if (!K) DIE("gpt_forward_cls called on a model without a classification head", "set num_classes");
    gpt_check_batch(model, inputs, NULL, B, T);
    for (int b = 0; b < B; b++) {
        if (lengths[b] < 1 || lengths[b] > T) DIE("classification example length outside [1, T]", "");
        if (labels && (labels[b] < -1 || labels[b] >= K)) {
            char msg[128];
            snprintf(msg, sizeof msg, "label %d outside [0, %d)", labels[b], K);
            DIE(msg, "the dataset has more classes than the model's head (--classes)");
        }
    }
    gpt_alloc_activations(model, B, T);
    size_t BT = (size_t)B * T;
    memcpy(model->inputs, inputs, BT * sizeof(int));
    for (size_t i = 0; i < BT; i++) model->targets[i] = -1;
    memcpy(model->lengths, lengths, (size_t)B * sizeof(int));
    for (int b = 0; b < B; b++) model->pool_len[b] = model->config.arch == ARCH_ENCODER ? 1 : lengths[b];
    for (int b = 0; b < B; b++) model->labels[b] = labels ? labels[b] : -1;
    gpt_forward_body(model);
}

// Forward pass with the token-classification head. tags (B,T): position (b,t)'s tag in [0, E), or -1 where the
// loss is not taken (later subwords of a word, padding); NULL for inference. Fills tok_logits, tok_probs.
// lengths (B): each row's real tokens (an encoder attends to those only), or NULL: all T.
static void gpt_forward_tok(GPT* model, const int* inputs, const int* tags, const int* lengths, int B, int T) {
    const GPTConfig* c = &model->config;
    if (!c->num_tags) DIE("gpt_forward_tok called on a model without a token-classification head", "set num_tags");
    gpt_check_batch(model, inputs, NULL, B, T);
    size_t BT = (size_t)B * T;
    for (size_t i = 0; tags && i < BT; i++)
        if (tags[i] < -1 || tags[i] >= c->num_tags) {
            char msg[128];
            snprintf(msg, sizeof msg, "tag %d at batch position %zu outside [0, %d)", tags[i], i, c->num_tags);
            DIE(msg, "the dataset has more tags than the model's head");
        }
    gpt_alloc_activations(model, B, T);
    memcpy(model->inputs, inputs, BT * sizeof(int));
    for (size_t i = 0; i < BT; i++) model->targets[i] = tags ? tags[i] : -1;  // the tags are the targets
    for (int b = 0; b < B; b++) model->lengths[b] = lengths && lengths[b] >= 1 && lengths[b] <= T ? lengths[b] : T;
    gpt_forward_body(model);
}

// ---------------------------------------------------------------------------- backward
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
    int causal = c->arch != ARCH_ENCODER;
    float lora_s = c->lora_r ? lora_scale(c) : 0.0f;
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
    if (gpt_head_classes(model)) {  // forward used rows [k0, k0 + K) of cls_w: only they get gradient
        int k0 = model->head_k0;
        float* dcls_w = G(cls_w, 0);
        cls_backward(ga.dln, dcls_w ? dcls_w + (size_t)k0 * C : NULL, ga.dcls_logits, a.cls_probs, a.lnf, model->pool_len,
                     model->labels, p.cls_w + (size_t)k0 * C, model->class_weights ? model->class_weights + k0 : NULL,
                     model->label_smoothing, model->loss_scale, B, T, C, gpt_head_classes(model));
    } else if (c->num_tags) {  // forward was logits = lnf @ tok_w^T + tok_b, loss = CE over the tagged positions
        crossentropy_backward(ga.dtok_logits, a.tok_probs, model->targets, BT, c->num_tags, c->num_tags, model->loss_scale);
        gpt_matmul_backward(model, PIDX(tok_w), 0, ga.dln, G(tok_w, 0), G(tok_b, 0), ga.dtok_logits, a.lnf, BT, C, c->num_tags);
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
                              p.lora_fcproj_b + (size_t)l * C * rg, lora_s, BT, F, C, rg, pd, dropout_site_seed(model, DROP_LORA + 3, l), xd, dxd);
        gpt_matmul_backward(model, PIDX(fcprojw), l, ga.dfch_gelu, G(fcprojw, l), G(fcprojb, l), dmlp_out, l_fch_gelu, BT, F, C);
        memset(ga.dfch, 0, BT * F * sizeof(float));
        gelu_backward(ga.dfch, l_fch, ga.dfch_gelu, BT * F);
        memset(ga.dln, 0, BT * C * sizeof(float));
        if (rf && lon) lora_backward(ga.dln, G(lora_fc_a, l), G(lora_fc_b, l), ga.dlora_h, ga.dfch,
                              a.lora_h_fc + (size_t)l * BT * rf, l_ln2, p.lora_fc_a + (size_t)l * rf * C,
                              p.lora_fc_b + (size_t)l * F * rf, lora_s, BT, C, F, rf, pd, dropout_site_seed(model, DROP_LORA + 2, l), xd, dxd);
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
                              p.lora_proj_b + (size_t)l * C * rp, lora_s, BT, C, C, rp, pd, dropout_site_seed(model, DROP_LORA + 1, l), xd, dxd);
        gpt_matmul_backward(model, PIDX(attprojw), l, ga.datty, G(attprojw, l), G(attprojb, l), dattn_out, l_atty, BT, C, C);
        memset(ga.dqkv, 0, BT * 3 * C * sizeof(float));
        attention_backward(ga.dqkv, P ? G(prefix_k, l) : NULL, P ? G(prefix_v, l) : NULL, ga.datty, l_qkv,
                           P ? p.prefix_k + (size_t)l * P * C : NULL, P ? p.prefix_v + (size_t)l * P * C : NULL, l_att,
                           model->lengths, B, T, C, NH, P, causal, pdrop, dropout_site_seed(model, DROP_ATT, l));
        memset(ga.dln, 0, BT * C * sizeof(float));
        if (rq && lon) lora_backward(ga.dln, G(lora_qkv_a, l), G(lora_qkv_b, l), ga.dlora_h, ga.dqkv,
                              a.lora_h_qkv + (size_t)l * BT * rq, l_ln1, p.lora_qkv_a + (size_t)l * rq * C,
                              p.lora_qkv_b + (size_t)l * 3 * C * rq, lora_s, BT, C, 3 * C, rq, pd, dropout_site_seed(model, DROP_LORA + 0, l), xd, dxd);
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
