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
// (GPT-2's fused c_attn and c_fc take one LoRA each; Llama's q, k, v and gate, up take their own, as PEFT does,
// and its o_proj and down_proj use LORA_PROJ and LORA_FCPROJ.)
enum { LORA_QKV = 1, LORA_PROJ = 2, LORA_FC = 4, LORA_FCPROJ = 8, LORA_Q = 16, LORA_K = 32, LORA_V = 64,
       LORA_GATE = 128, LORA_UP = 256 };
// The architecture (GPTConfig.arch, checkpoint header [22]): the same parameters, a different attention mask.
// ARCH_GPT2: causal, next-token LM. ARCH_ENCODER: bidirectional (BERT-style), masked-LM pretraining
// (loader.c), the class head on position 0. ARCH_LLAMA: GPT-2 with five changes (Llama, SmolLM2, Qwen2):
// RMSNorm for LayerNorm (no biases anywhere, but Qwen2's q/k/v), RoPE on q and k for the position
// embedding, grouped-query attention (NKV <= NH key/value heads), a SwiGLU MLP, and an optional untied LM head.
typedef enum { ARCH_GPT2 = 0, ARCH_ENCODER = 1, ARCH_LLAMA = 2 } Arch;
static const char* const ARCH_NAMES[] = {"gpt2", "encoder", "llama"};

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
    // ARCH_LLAMA only (0 for the others)
    int n_kv_heads;    // NKV: key/value heads (grouped-query attention); 0 means NH
    float rope_theta;  // RoPE base (HF rope_theta): head pair i turns at rope_theta^(-2i/hs) radians per position
    float rope_factor; // linear RoPE scaling (HF rope_scaling type linear): positions divided by it; 0 = none
    float norm_eps;    // RMSNorm epsilon (HF rms_norm_eps)
    int untied;        // 1: a separate LM head (lm_head); 0: tied to wte
    int qkv_bias;      // 1: q, k, v have biases (Qwen2)
} GPTConfig;

static int pad_vocab(int V) { return (V + 63) / 64 * 64; }
// the number of named labels the head has: E tags (token head) or K classes (sequence head), else 0
static int head_labels(const GPTConfig* c) { return c->num_tags ? c->num_tags : c->num_classes; }
static int mlp_width(const GPTConfig* c) { return c->F ? c->F : 4 * c->C; }
static int is_llama(const GPTConfig* c) { return c->arch == ARCH_LLAMA; }
static int kv_heads(const GPTConfig* c) { return c->n_kv_heads ? c->n_kv_heads : c->NH; }
static int kv_width(const GPTConfig* c) { return kv_heads(c) * (c->C / c->NH); }  // KVC: k's (and v's) width
static int qkv_width(const GPTConfig* c) { return c->C + 2 * kv_width(c); }       // QKV: 3C for GPT-2

// ---------------------------------------------------------------------------- the parameter table
// The one list of parameters, in memory order (the first 16 are GPT-2's, in llm.c's order). Allocation,
// checkpoint I/O, the loaders' shape checks, AdamW's decay groups, freezing and the test report all walk it.
// Shapes use the legend's symbols; "3C" means 3*C. Per-layer tensors are stacked along a leading L axis.
// The fine-tuning additions use: rqkv, rproj, rfc, rfcproj (the LoRA rank where that projection is a
// target, else 0), D (adapter bottleneck), CA (C with adapters, else 0), P (prefix length), K (classes);
// absent ones have 0 elements.
// decay: 1 for matrices (each per-layer slice is 2-D), 0 for biases and LayerNorm parameters (nanoGPT's
// convention). Note it is not "ndim >= 2" of the stacked shape: qkvb is (L,3C) but each layer's bias is 1-D.
#define NUM_BASE_PARAMS 16  // GPT-2 itself: what llm.c and Hugging Face GPT-2 files hold (and lm_head: param_is_base)
#define NUM_PARAMS 48
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
    {"wpe",            "Pos,C",        1,  "wpe.weight",                 0,  "position_embd.weight",  0,  0},
    // LayerNorm before attention
    {"ln1w",           "L,C",          0,  "ln_1.weight",                0,  "attn_norm.weight",      0,  0},
    {"ln1b",           "L,Cb",         0,  "ln_1.bias",                  0,  "attn_norm.bias",        0,  0},
    // attention q,k,v projection, nn.Linear layout (out, in)
    {"qkvw",           "L,QKV,C",      1,  "attn.c_attn.weight",         1,  "attn_qkv.weight",       1,  1},
    {"qkvb",           "L,QKVb",       0,  "attn.c_attn.bias",           0,  "attn_qkv.bias",         0,  0},
    // attention output projection
    {"attprojw",       "L,C,C",        1,  "attn.c_proj.weight",         1,  "attn_output.weight",    1,  1},
    {"attprojb",       "L,Cb",         0,  "attn.c_proj.bias",           0,  "attn_output.bias",      0,  0},
    // LayerNorm before the MLP
    {"ln2w",           "L,C",          0,  "ln_2.weight",                0,  "ffn_norm.weight",       0,  0},
    {"ln2b",           "L,Cb",         0,  "ln_2.bias",                  0,  "ffn_norm.bias",         0,  0},
    // MLP up projection
    {"fcw",            "L,FU,C",       1,  "mlp.c_fc.weight",            1,  "ffn_up.weight",         1,  1},
    {"fcb",            "L,Fb",         0,  "mlp.c_fc.bias",              0,  "ffn_up.bias",           0,  0},
    // MLP down projection
    {"fcprojw",        "L,C,F",        1,  "mlp.c_proj.weight",          1,  "ffn_down.weight",       1,  1},
    {"fcprojb",        "L,Cb",         0,  "mlp.c_proj.bias",            0,  "ffn_down.bias",         0,  0},
    // final LayerNorm
    {"lnfw",           "C",            0,  "ln_f.weight",                0,  "output_norm.weight",    0,  0},
    {"lnfb",           "Cb",           0,  "ln_f.bias",                  0,  "output_norm.bias",      0,  0},
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
    {"prefix_k",       "L,P,KVC",      1,  "prefix.keys",                0,  NULL,                    0,  0},
    {"prefix_v",       "L,P,KVC",      1,  "prefix.values",              0,  NULL,                    0,  0},
    // classification head: logits = h_last @ cls_w^T (no bias, as GPT2ForSequenceClassification's score)
    {"cls_w",          "K,C",          1,  "score.weight",               0,  NULL,                    0,  0},
    // token-classification head: logits[b,t] = lnf[b,t] @ tok_w^T + tok_b (GPT2ForTokenClassification's classifier)
    {"tok_w",          "E,C",          1,  "classifier.weight",          0,  NULL,                    0,  0},
    {"tok_b",          "E",            0,  "classifier.bias",            0,  NULL,                    0,  0},
    // Llama: the LM head when it is not tied to wte (Vu: Vp rows then, else none)
    {"lm_head",        "Vu,C",         1,  "lm_head.weight",             0,  "output.weight",         1,  0},
    // Llama: LoRA on q, k, v, gate and up separately (each writes its own columns of the fused qkv and fch)
    {"lora_q_a",       "L,rq,C",       1,  "self_attn.q_proj.lora_A.weight",    0,  NULL,             0,  0},
    {"lora_q_b",       "L,C,rq",       1,  "self_attn.q_proj.lora_B.weight",    0,  NULL,             0,  0},
    {"lora_k_a",       "L,rk,C",       1,  "self_attn.k_proj.lora_A.weight",    0,  NULL,             0,  0},
    {"lora_k_b",       "L,KVC,rk",     1,  "self_attn.k_proj.lora_B.weight",    0,  NULL,             0,  0},
    {"lora_v_a",       "L,rv,C",       1,  "self_attn.v_proj.lora_A.weight",    0,  NULL,             0,  0},
    {"lora_v_b",       "L,KVC,rv",     1,  "self_attn.v_proj.lora_B.weight",    0,  NULL,             0,  0},
    {"lora_gate_a",    "L,rgate,C",    1,  "mlp.gate_proj.lora_A.weight",       0,  NULL,             0,  0},
    {"lora_gate_b",    "L,F,rgate",    1,  "mlp.gate_proj.lora_B.weight",       0,  NULL,             0,  0},
    {"lora_up_a",      "L,rup,C",      1,  "mlp.up_proj.lora_A.weight",         0,  NULL,             0,  0},
    {"lora_up_b",      "L,F,rup",      1,  "mlp.up_proj.lora_B.weight",         0,  NULL,             0,  0},
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
        float *lm_head, *lora_q_a, *lora_q_b, *lora_k_a, *lora_k_b, *lora_v_a, *lora_v_b, *lora_gate_a, *lora_gate_b,
            *lora_up_a, *lora_up_b;
    };
    float* t[NUM_PARAMS];
} ParameterTensors;
_Static_assert(sizeof(ParameterTensors) == NUM_PARAMS * sizeof(float*), "ParameterTensors drifted from PARAM_TABLE");

static int lora_rank_for(const GPTConfig* c, int target) { return (c->lora_targets & target) ? c->lora_r : 0; }

// Evaluates a shape string like "L,3C,C" for a config and batch (B, T may be 0 for parameters).
// Writes up to 5 dims, returns the number of dims. A symbol is matched by its name's prefix, in this order
// (so every name comes before the shorter names it starts with: "rqkv" before "rq", "Cb" before "C").
static int shape_dims(const char* shape, const GPTConfig* c, int B, int T, size_t dims[5]) {
    int llama = is_llama(c), F = mlp_width(c);
    static const char* names[] = {"maxT", "Vlm", "Vp", "Vu", "NH", "rqkv", "rproj", "rfcproj", "rfc", "rgate", "rup",
                                  "rq", "rk", "rv", "PT", "Pos", "V", "L", "CA", "Cb", "C", "B", "T", "D", "P", "KVC",
                                  "K", "r", "FU", "Fb", "F", "E", "QKVb", "QKV"};
    size_t vals[] = {
        (size_t)c->maxT,
        (c->num_classes && !c->lm_head_too) || c->num_tags ? 0 : (size_t)c->Vp,  // Vlm: LM-head logits; none with only a class head, or a tag head
        (size_t)c->Vp,
        llama && c->untied ? (size_t)c->Vp : 0,                 // Vu: rows of a separate (untied) LM head
        (size_t)c->NH,
        (size_t)lora_rank_for(c, LORA_QKV), (size_t)lora_rank_for(c, LORA_PROJ), (size_t)lora_rank_for(c, LORA_FCPROJ),
        (size_t)lora_rank_for(c, LORA_FC), (size_t)lora_rank_for(c, LORA_GATE), (size_t)lora_rank_for(c, LORA_UP),
        (size_t)lora_rank_for(c, LORA_Q), (size_t)lora_rank_for(c, LORA_K), (size_t)lora_rank_for(c, LORA_V),
        (size_t)c->prefix_len + (size_t)T,                      // PT: keys per query, the prefix then the sequence
        llama ? 0 : (size_t)c->maxT,                            // Pos: learned positions (RoPE has none)
        (size_t)c->V,
        (size_t)c->L,
        c->adapter_dim ? (size_t)c->C : 0,                      // CA: C where there are adapters, else 0
        llama ? 0 : (size_t)c->C,                               // Cb: a C-wide bias (LayerNorm, projections)
        (size_t)c->C,
        (size_t)B,
        (size_t)T,
        (size_t)c->adapter_dim,
        (size_t)c->prefix_len,
        (size_t)kv_width(c),                                    // KVC: the keys' (and values') width
        (size_t)c->num_classes,
        (size_t)c->lora_r,
        (size_t)(llama ? 2 * F : F),                            // FU: the MLP's first matmul (Llama: gate | up)
        llama ? 0 : (size_t)F,                                  // Fb: its bias
        (size_t)F,
        (size_t)c->num_tags,
        !llama || c->qkv_bias ? (size_t)qkv_width(c) : 0,        // QKVb: the q, k, v biases
        (size_t)qkv_width(c),                                   // QKV: q, k, v side by side (3C for GPT-2)
    };
    _Static_assert(sizeof names / sizeof names[0] == sizeof vals / sizeof vals[0], "a shape symbol without a value");
    int nd = 0;
    const char* s = shape;
    while (*s && nd < 5) {
        size_t mult = 1;
        if (*s >= '0' && *s <= '9') mult = (size_t)strtoul(s, (char**)&s, 10);
        int k = 0, n = (int)(sizeof names / sizeof names[0]);
        while (k < n && strncmp(s, names[k], strlen(names[k]))) k++;
        if (k == n) DIE("a shape string in a table uses a symbol shape_dims does not know", shape);
        s += strlen(names[k]);
        dims[nd++] = mult * vals[k];
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
// the first NUM_BASE_PARAMS tensors: a contiguous prefix of the parameters' block (GPT-2's base; llm.c files)
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
#define NUM_ACTS 41
static const struct { const char* name; const char* shape; } ACT_TABLE[NUM_ACTS] = {
    {"encoded", "B,T,C"},        // token + position embedding
    {"ln1", "L,B,T,C"},          // LayerNorm 1 output
    {"ln1_mean", "L,B,T"},       // saved for LayerNorm 1 backward
    {"ln1_rstd", "L,B,T"},
    {"qkv", "L,B,T,QKV"},        // q, k, v (Llama: q and k after RoPE)
    {"atty", "L,B,T,C"},         // attention output, heads concatenated
    {"att", "L,B,NH,T,PT"},      // attention probabilities over (prefix, sequence); zero above the diagonal
    {"attproj", "L,B,T,C"},      // after the output projection
    {"residual2", "L,B,T,C"},    // residual stream after attention
    {"ln2", "L,B,T,C"},
    {"ln2_mean", "L,B,T"},
    {"ln2_rstd", "L,B,T"},
    {"fch", "L,B,T,FU"},        // MLP hidden, before GELU (Llama: gate | up)
    {"fch_gelu", "L,B,T,F"},    // MLP hidden, after GELU (Llama: silu(gate) * up)
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
    {"lora_h_q", "L,B,T,rq"},    // Llama's separate LoRA codes: q, k, v, gate, up
    {"lora_h_k", "L,B,T,rk"},
    {"lora_h_v", "L,B,T,rv"},
    {"lora_h_gate", "L,B,T,rgate"},
    {"lora_h_up", "L,B,T,rup"},
};
typedef union {
    struct {
        float *encoded, *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att, *attproj, *residual2, *ln2, *ln2_mean,
            *ln2_rstd, *fch, *fch_gelu, *fcproj, *residual3, *lnf, *lnf_mean, *lnf_rstd, *logits, *probs, *losses;
        float *lora_h_qkv, *lora_h_proj, *lora_h_fc, *lora_h_fcproj;
        float *adpa_h, *adpa_hg, *adpa_out, *adpm_h, *adpm_hg, *adpm_out, *cls_logits, *cls_probs;
        float *tok_logits, *tok_probs;
        float *lora_h_q, *lora_h_k, *lora_h_v, *lora_h_gate, *lora_h_up;
    };
    float* t[NUM_ACTS];
} ActivationTensors;
_Static_assert(sizeof(ActivationTensors) == NUM_ACTS * sizeof(float*), "ActivationTensors drifted from ACT_TABLE");
#define AIDX(name) ((int)(offsetof(ActivationTensors, name) / sizeof(float*)))  // index in ACT_TABLE

// Gradients of activations. Backward walks one layer at a time, so apart from the residual stream and the
// logits these are one layer's worth and reused by every layer (each is zeroed before the layer uses it).
#define NUM_GRAD_ACTS 14
static const struct { const char* name; const char* shape; } GRAD_ACT_TABLE[NUM_GRAD_ACTS] = {
    {"dlogits", "B,T,Vlm"},
    {"dresidual", "B,T,C"},   // gradient of the residual stream, flowing down through the layers
    {"dln", "B,T,C"},         // gradient of a LayerNorm output (ln1, ln2 or lnf)
    {"dqkv", "B,T,QKV"},
    {"datty", "B,T,C"},
    {"dfch", "B,T,FU"},
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
// The base model's tensors (what a pretrained checkpoint holds): the first 16, and Llama's untied LM head,
// which came later to the table and so sits after the fine-tuning tensors.
static int param_is_base(int i) { return i < NUM_BASE_PARAMS || i == PIDX(lm_head); }

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
    int grads_zero;           // every gradient is 0: AdamW cleared each as it read it, gpt_zero_grad has nothing to do
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
    float* rope_cs;           // Llama: (maxT, hs/2, 2) cos and sin of each position's RoPE angles (rope_table)
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
    if (is_llama(&config)) {
        int hs = config.C / config.NH;
        model->rope_cs = (float*)mallocCheck((size_t)config.maxT * hs * sizeof(float));
        rope_table(model->rope_cs, config.maxT, hs, config.rope_theta, config.rope_factor);
    }
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
// tensors get their own init (gpt_init_peft). Llama (Hugging Face's LlamaPreTrainedModel): every matrix
// N(0, 0.02) without the depth scaling, RMSNorm weights 1.
static void gpt_init_random(GPT* model, uint64_t* rng) {
    const GPTConfig* c = &model->config;
    float resid_std = is_llama(c) ? 0.02f : 0.02f / sqrtf(2.0f * c->L);
    for (int i = 0; i < NUM_PARAMS; i++) {
        if (!param_is_base(i)) continue;
        float* p = model->params.t[i];
        size_t n = param_numel(c, i);
        const char* name = PARAM_TABLE[i].name;
        if (!strcmp(name, "ln1w") || !strcmp(name, "ln2w") || !strcmp(name, "lnfw")) {
            for (size_t j = 0; j < n; j++) p[j] = 1.0f;
        } else if (!PARAM_TABLE[i].decay) {
            memset(p, 0, n * sizeof(float));
        } else {
            float std = (!strcmp(name, "attprojw") || !strcmp(name, "fcprojw")) ? resid_std : 0.02f;
            if (!strcmp(name, "wte") || !strcmp(name, "lm_head")) n = n ? (size_t)c->V * c->C : 0;  // padded rows stay zero
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
        if (!n || param_is_base(i)) continue;
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
    free(model->rope_cs);
    memset(model, 0, sizeof(*model));
}


// ---------------------------------------------------------------------------- where LoRA sits
// The LoRA targets, in the order of their bits (k is also the dropout site DROP_LORA + k): each adds a rank-r
// update to rows [row0, row0 + out) of one weight w (ld rows in all, in columns), its code h kept in
// activation act. GPT-2 has one per matrix; Llama's q, k, v share qkvw and its gate, up share fcw.
#define NUM_LORA_SITES 9
typedef struct { int bit, a, b, w, act, row0, in, out, ld; } LoraSite;
static LoraSite lora_site(const GPTConfig* c, int k) {
    int C = c->C, F = mlp_width(c), KV = kv_width(c), QKV = qkv_width(c), FU = is_llama(c) ? 2 * F : F;
    const LoraSite s[NUM_LORA_SITES] = {
        {LORA_QKV, PIDX(lora_qkv_a), PIDX(lora_qkv_b), PIDX(qkvw), AIDX(lora_h_qkv), 0, C, QKV, QKV},
        {LORA_PROJ, PIDX(lora_proj_a), PIDX(lora_proj_b), PIDX(attprojw), AIDX(lora_h_proj), 0, C, C, C},
        {LORA_FC, PIDX(lora_fc_a), PIDX(lora_fc_b), PIDX(fcw), AIDX(lora_h_fc), 0, C, FU, FU},
        {LORA_FCPROJ, PIDX(lora_fcproj_a), PIDX(lora_fcproj_b), PIDX(fcprojw), AIDX(lora_h_fcproj), 0, F, C, C},
        {LORA_Q, PIDX(lora_q_a), PIDX(lora_q_b), PIDX(qkvw), AIDX(lora_h_q), 0, C, C, QKV},
        {LORA_K, PIDX(lora_k_a), PIDX(lora_k_b), PIDX(qkvw), AIDX(lora_h_k), C, C, KV, QKV},
        {LORA_V, PIDX(lora_v_a), PIDX(lora_v_b), PIDX(qkvw), AIDX(lora_h_v), C + KV, C, KV, QKV},
        {LORA_GATE, PIDX(lora_gate_a), PIDX(lora_gate_b), PIDX(fcw), AIDX(lora_h_gate), 0, C, F, FU},
        {LORA_UP, PIDX(lora_up_a), PIDX(lora_up_b), PIDX(fcw), AIDX(lora_h_up), F, C, F, FU},
    };
    return s[k];
}

// Folds LoRA into the base weights (sign +1: W += (alpha/r) B A on every target and LoRA layer) or takes it
// out again (sign -1). After a merge, a config without LoRA gives the same outputs with plain matmuls.
static void gpt_lora_merge(GPT* model, float sign) {
    const GPTConfig* c = &model->config;
    if (!c->lora_r) return;
    if (model->q8_memory) DIE("LoRA cannot be merged into int8 weights", "merge the fp32 model first, then quantize");
    float s = lora_scale(c);
    for (int k = 0; k < NUM_LORA_SITES; k++) {
        LoraSite t = lora_site(c, k);
        int r = lora_rank_for(c, t.bit);
        if (!r) continue;
        for (int l = c->lora_first; l <= c->lora_last; l++)
            lora_merge_layer(model->params.t[t.w] + ((size_t)l * t.ld + t.row0) * t.in, model->params.t[t.a] + (size_t)l * r * t.in,
                             model->params.t[t.b] + (size_t)l * t.out * r, s, t.in, t.out, r, sign);
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
// encoder_forward reading an int8 wte: out[b,t,:] = wte[inp[b,t],:] + wpe[t,:] (wpe NULL: none)
static void encoder_forward_q8(float* out, const int* inp, const Q8* wte, const float* wpe, int B, int T, int C) {
#pragma omp parallel for
    for (int bt = 0; bt < B * T; bt++) {
        size_t row = (size_t)inp[bt] * C;
        const float* wp = wpe ? wpe + (size_t)(bt % T) * C : NULL;
        for (int i = 0; i < C; i++) out[(size_t)bt * C + i] = q8_at(wte, row + i) + (wp ? wp[i] : 0.0f);
    }
}

// ---------------------------------------------------------------------------- new fine-tuning tensors
// Rebuilds a model with new fine-tuning settings (LoRA, adapters, prefix, head), keeping the base weights.
// The added tensors start from gpt_init_peft. Call before training starts.
static void gpt_set_peft(GPT* model, GPTConfig with, uint64_t* rng) {
    GPTConfig c = model->config;
    if (with.maxT != c.maxT || with.V != c.V || with.Vp != c.Vp || with.L != c.L || with.NH != c.NH ||
        with.C != c.C || mlp_width(&with) != mlp_width(&c) || with.arch != c.arch || with.mask_id != c.mask_id ||
        kv_heads(&with) != kv_heads(&c) || with.untied != c.untied || with.qkv_bias != c.qkv_bias ||
        with.rope_theta != c.rope_theta || with.rope_factor != c.rope_factor || with.norm_eps != c.norm_eps)
        DIE("gpt_set_peft cannot change the base model's shape", "");
    GPT m;
    if (!model->q8_memory) {
        // The base tensors come first in the table, so they are the same prefix of the parameters' block under
        // both configs: the block is grown (or shrunk) in place and its tail zeroed, and no second copy of the
        // base weights is ever resident (LoRA's peak memory is the base, not twice the base). An untied
        // LM head (Llama) sits after the fine-tuning tensors, so it moves out and back in.
        size_t nbase = num_base_parameters(&c), n = num_parameters(&with), nh = param_numel(&c, PIDX(lm_head));
        float* head = nh ? (float*)mallocCheck(nh * sizeof(float)) : NULL;
        if (nh) memcpy(head, model->params.lm_head, nh * sizeof(float));
        float* mem = (float*)reallocCheck(model->params_memory, n * sizeof(float));
        memset(mem + nbase, 0, (n - nbase) * sizeof(float));
        model->params_memory = NULL;  // now m's
        gpt_build_on(&m, with, mem);
        if (nh) memcpy(m.params.lm_head, head, nh * sizeof(float));
        free(head);
    } else {
        gpt_build(&m, with);
        for (int i = 0; i < NUM_PARAMS; i++)
            if (param_is_base(i) && !model->q8[i].q) memcpy(m.params.t[i], model->params.t[i], param_numel(&c, i) * sizeof(float));
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

// ---------------------------------------------------------------------------- the family's layers
// What differs between GPT-2 and Llama inside a block, as one call each, so the forward and backward read the same
// for both. Normalization: LayerNorm (GPT-2, the encoder) or RMSNorm (Llama, no mean and no bias).
static void gpt_norm_forward(const GPT* model, float* y, float* mean, float* rstd, const float* x, const float* w,
                             const float* b, size_t N) {
    const GPTConfig* c = &model->config;
    if (is_llama(c)) rmsnorm_forward(y, rstd, x, w, N, c->C, c->norm_eps);
    else layernorm_forward(y, mean, rstd, x, w, b, N, c->C);
}
static void gpt_norm_backward(const GPT* model, float* dx, float* dw, float* db, const float* dy, const float* x,
                              const float* w, const float* mean, const float* rstd, size_t N) {
    const GPTConfig* c = &model->config;
    if (is_llama(c)) rmsnorm_backward(dx, dw, dy, x, w, rstd, N, c->C);
    else layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, N, c->C);
}
// The MLP's nonlinearity: GELU (GPT-2) or SwiGLU over the gate | up halves (Llama). y: (N,F)   x: (N,FU)
static void gpt_act_forward(const GPT* model, float* y, const float* x, size_t N) {
    int F = mlp_width(&model->config);
    if (is_llama(&model->config)) swiglu_forward(y, x, N, F);
    else gelu_forward(y, x, N * F);
}
static void gpt_act_backward(const GPT* model, float* dx, const float* x, const float* dy, size_t N) {
    int F = mlp_width(&model->config);
    if (is_llama(&model->config)) swiglu_backward(dx, x, dy, N, F);
    else gelu_backward(dx, x, dy, N * F);
}
// Every LoRA on weight w in layer l (sites of lora_site): out (N, ld) += its updates, from input x (N, in).
// h: scratch for the codes (at least N*r), or NULL: into the activations (kept for backward). xd: dropout scratch.
static void gpt_lora_forward(const GPT* model, int w, int l, float* out, const float* x, size_t N, float* h, float pd, float* xd) {
    const GPTConfig* c = &model->config;
    if (!c->lora_r || l < c->lora_first || l > c->lora_last) return;
    for (int k = 0; k < NUM_LORA_SITES; k++) {
        LoraSite t = lora_site(c, k);
        int r = lora_rank_for(c, t.bit);
        if (t.w != w || !r) continue;
        lora_forward(out + t.row0, t.ld, h ? h : model->acts.t[t.act] + (size_t)l * N * r, x, model->params.t[t.a] + (size_t)l * r * t.in,
                     model->params.t[t.b] + (size_t)l * t.out * r, lora_scale(c), N, t.in, t.out, r, pd,
                     dropout_site_seed(model, DROP_LORA + k, l), xd);
    }
}
// Its backward: dx (N, in) += each update's input gradient, from dout (N, ld); the LoRA gradients of layer l.
static void gpt_lora_backward(const GPT* model, int w, int l, float* dx, const float* dout, const float* x, size_t N,
                              float* dh, float pd, float* xd, float* dxd) {
    const GPTConfig* c = &model->config;
    if (!c->lora_r || l < c->lora_first || l > c->lora_last) return;
    for (int k = 0; k < NUM_LORA_SITES; k++) {
        LoraSite t = lora_site(c, k);
        int r = lora_rank_for(c, t.bit);
        if (t.w != w || !r) continue;
        lora_backward(dx, gpt_grad(model, t.a, l), gpt_grad(model, t.b, l), dh, dout + t.row0, t.ld,
                      model->acts.t[t.act] + (size_t)l * N * r, x, model->params.t[t.a] + (size_t)l * r * t.in,
                      model->params.t[t.b] + (size_t)l * t.out * r, lora_scale(c), N, t.in, t.out, r, pd,
                      dropout_site_seed(model, DROP_LORA + k, l), xd, dxd);
    }
}
// The LM head's weight: wte (tied) or Llama's separate lm_head.
static int gpt_lm_head(const GPTConfig* c) { return param_numel(c, PIDX(lm_head)) ? PIDX(lm_head) : PIDX(wte); }

// ---------------------------------------------------------------------------- kernel timers (optional)
// Built with -DKERNEL_TIMERS (`make profile`), every kernel call in gpt_forward_body and gpt_backward is
// timed (wall clock, summed by kind and direction; matmuls by weight) and `./train bench` prints the table.
// The two functions' text is untouched: each kernel name is redefined below as a macro that wraps the call
// in a start/stop pair (a function-like macro does not expand inside its own expansion, so the inner name
// is the real function), and #undef'd again right after gpt_backward. dev/PROFILE.md has a breakdown.
#ifdef KERNEL_TIMERS  // (clock_gettime: common.h)
enum { KT_ENCODER, KT_LAYERNORM, KT_MM_QKV, KT_MM_ATTPROJ, KT_MM_FC, KT_MM_FCPROJ, KT_MM_LMHEAD, KT_ATTENTION,
       KT_GELU, KT_RESIDUAL, KT_XENT, KT_PEFT, KT_KINDS };  // forward k, backward KT_KINDS + k
static const char* const KT_NAME[KT_KINDS] = {"encoder", "layernorm / rmsnorm", "matmul qkv", "matmul attproj",
    "matmul fc", "matmul fcproj", "matmul lm head", "attention (+rope)", "gelu / swiglu", "residual (+dropout)",
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
#define gpt_norm_forward(...) KT_WRAP(KT_LAYERNORM, gpt_norm_forward(__VA_ARGS__))
#define gpt_norm_backward(...) KT_WRAP(KT_KINDS + KT_LAYERNORM, gpt_norm_backward(__VA_ARGS__))
#define rope_apply(...) KT_WRAP(KT_ATTENTION, rope_apply(__VA_ARGS__))
#define gpt_matmul_forward(m, i, ...) KT_WRAP(kt_matmul(i, 0), gpt_matmul_forward(m, i, __VA_ARGS__))
#define gpt_matmul_backward(m, i, ...) KT_WRAP(kt_matmul(i, 1), gpt_matmul_backward(m, i, __VA_ARGS__))
#define attention_forward(...) KT_WRAP(KT_ATTENTION, attention_forward(__VA_ARGS__))
#define attention_backward(...) KT_WRAP(KT_KINDS + KT_ATTENTION, attention_backward(__VA_ARGS__))
#define gpt_act_forward(...) KT_WRAP(KT_GELU, gpt_act_forward(__VA_ARGS__))
#define gpt_act_backward(...) KT_WRAP(KT_KINDS + KT_GELU, gpt_act_backward(__VA_ARGS__))
#define residual_dropout_forward(...) KT_WRAP(KT_RESIDUAL, residual_dropout_forward(__VA_ARGS__))
#define dropout_backward(...) KT_WRAP(KT_KINDS + KT_RESIDUAL, dropout_backward(__VA_ARGS__))
#define crossentropy_forward(...) (kt_start(), kt_stop_f(KT_XENT, crossentropy_forward(__VA_ARGS__)))
#define crossentropy_backward(...) KT_WRAP(KT_KINDS + KT_XENT, crossentropy_backward(__VA_ARGS__))
#define gpt_lora_forward(...) KT_WRAP(KT_PEFT, gpt_lora_forward(__VA_ARGS__))
#define gpt_lora_backward(...) KT_WRAP(KT_KINDS + KT_PEFT, gpt_lora_backward(__VA_ARGS__))
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
    int NKV = kv_heads(c), KV = kv_width(c), QKV = qkv_width(c), llama = is_llama(c), FU = llama ? 2 * F : F;
    int causal = c->arch != ARCH_ENCODER;  // the only difference the encoder makes inside the blocks
    float pd = model->training && c->lora_r ? model->lora_dropout : 0.0f;  // LoRA dropout while training
    float* xd = NULL;
    if (pd > 0.0f) {
        if (!model->dropout_scratch) model->dropout_scratch = (float*)mallocCheck(2 * BT * (F > C ? F : C) * sizeof(float));
        xd = model->dropout_scratch;
    }
    float pdrop = model->training ? model->dropout : 0.0f;  // embeddings, attention, residual branches
    ParameterTensors p = model->params;
    ActivationTensors a = model->acts;
    const float* wpe = llama ? NULL : p.wpe;  // Llama has no position embedding: RoPE turns q and k instead
    if (model->q8[PIDX(wte)].q) encoder_forward_q8(a.encoded, model->inputs, &model->q8[PIDX(wte)], wpe, B, T, C);
    else encoder_forward(a.encoded, model->inputs, p.wte, wpe, B, T, C);
    if (pdrop > 0.0f) dropout_forward(a.encoded, a.encoded, BT * C, pdrop, dropout_site_seed(model, DROP_EMB, 0));
    for (int l = 0; l < L; l++) {
        const float* residual = l == 0 ? a.encoded : a.residual3 + (size_t)(l - 1) * BT * C;
        // this layer's slices of weights and activations (Llama has no biases: NULL, but Qwen2's q, k, v)
        const float* l_ln1w = p.ln1w + (size_t)l * C;
        const float* l_ln1b = llama ? NULL : p.ln1b + (size_t)l * C;
        const float* l_qkvb = llama && !c->qkv_bias ? NULL : p.qkvb + (size_t)l * QKV;
        const float* l_attprojb = llama ? NULL : p.attprojb + (size_t)l * C;
        const float* l_ln2w = p.ln2w + (size_t)l * C;
        const float* l_ln2b = llama ? NULL : p.ln2b + (size_t)l * C;
        const float* l_fcb = llama ? NULL : p.fcb + (size_t)l * F;
        const float* l_fcprojb = llama ? NULL : p.fcprojb + (size_t)l * C;
        float* l_ln1 = a.ln1 + (size_t)l * BT * C;
        float* l_ln1_mean = a.ln1_mean + (size_t)l * BT;
        float* l_ln1_rstd = a.ln1_rstd + (size_t)l * BT;
        float* l_qkv = a.qkv + (size_t)l * BT * QKV;
        float* l_atty = a.atty + (size_t)l * BT * C;
        float* l_att = a.att + (size_t)l * B * NH * T * PT;
        float* l_attproj = a.attproj + (size_t)l * BT * C;
        float* l_residual2 = a.residual2 + (size_t)l * BT * C;
        float* l_ln2 = a.ln2 + (size_t)l * BT * C;
        float* l_ln2_mean = a.ln2_mean + (size_t)l * BT;
        float* l_ln2_rstd = a.ln2_rstd + (size_t)l * BT;
        float* l_fch = a.fch + (size_t)l * BT * FU;
        float* l_fch_gelu = a.fch_gelu + (size_t)l * BT * F;
        float* l_fcproj = a.fcproj + (size_t)l * BT * C;
        float* l_residual3 = a.residual3 + (size_t)l * BT * C;

        gpt_norm_forward(model, l_ln1, l_ln1_mean, l_ln1_rstd, residual, l_ln1w, l_ln1b, BT);
        gpt_matmul_forward(model, PIDX(qkvw), l, l_qkv, l_ln1, l_qkvb, BT, C, QKV);
        gpt_lora_forward(model, PIDX(qkvw), l, l_qkv, l_ln1, BT, NULL, pd, xd);
        if (llama) rope_apply(l_qkv, model->rope_cs, B, T, C, NH, NKV, 0, 1.0f);
        attention_forward(l_atty, l_att, l_qkv, P ? p.prefix_k + (size_t)l * P * KV : NULL,
                          P ? p.prefix_v + (size_t)l * P * KV : NULL, model->lengths, B, T, C, NH, NKV, P, causal, pdrop,
                          dropout_site_seed(model, DROP_ATT, l));
        gpt_matmul_forward(model, PIDX(attprojw), l, l_attproj, l_atty, l_attprojb, BT, C, C);
        gpt_lora_forward(model, PIDX(attprojw), l, l_attproj, l_atty, BT, NULL, pd, xd);
        const float* attn_out = l_attproj;  // what the residual adds: the projection, or the adapter's output
        if (A) {
            float* l_out = a.adpa_out + (size_t)l * BT * C;
            adapter_forward(l_out, a.adpa_h + (size_t)l * BT * A, a.adpa_hg + (size_t)l * BT * A, l_attproj,
                            p.adpa_dw + (size_t)l * A * C, p.adpa_db + (size_t)l * A, p.adpa_uw + (size_t)l * C * A,
                            p.adpa_ub + (size_t)l * C, BT, C, A);
            attn_out = l_out;
        }
        residual_dropout_forward(l_residual2, residual, attn_out, BT * C, pdrop, dropout_site_seed(model, DROP_RES_ATT, l));
        gpt_norm_forward(model, l_ln2, l_ln2_mean, l_ln2_rstd, l_residual2, l_ln2w, l_ln2b, BT);
        gpt_matmul_forward(model, PIDX(fcw), l, l_fch, l_ln2, l_fcb, BT, C, FU);
        gpt_lora_forward(model, PIDX(fcw), l, l_fch, l_ln2, BT, NULL, pd, xd);
        gpt_act_forward(model, l_fch_gelu, l_fch, BT);
        gpt_matmul_forward(model, PIDX(fcprojw), l, l_fcproj, l_fch_gelu, l_fcprojb, BT, F, C);
        gpt_lora_forward(model, PIDX(fcprojw), l, l_fcproj, l_fch_gelu, BT, NULL, pd, xd);
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
    gpt_norm_forward(model, a.lnf, a.lnf_mean, a.lnf_rstd, residual, p.lnfw, llama ? NULL : p.lnfb, BT);
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
        gpt_matmul_forward(model, gpt_lm_head(c), 0, a.logits, a.lnf, NULL, BT, C, c->Vp);  // logits = lnf @ wte^T (tied)
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
    model->grads_zero = 0;
    int B = model->B, T = model->T, C = c->C, L = c->L, NH = c->NH, P = c->prefix_len, A = c->adapter_dim, PT = P + T, F = mlp_width(c);
    int NKV = kv_heads(c), KV = kv_width(c), QKV = qkv_width(c), llama = is_llama(c), FU = llama ? 2 * F : F;
    int causal = c->arch != ARCH_ENCODER;
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
        gpt_matmul_backward(model, gpt_lm_head(c), 0, ga.dln, gpt_grad(model, gpt_lm_head(c), 0), NULL, ga.dlogits, a.lnf, BT, C, c->Vp);
    }
    memset(ga.dresidual, 0, BT * C * sizeof(float));
    gpt_norm_backward(model, ga.dresidual, G(lnfw, 0), G(lnfb, 0), ga.dln, a.residual3 + (size_t)(L - 1) * BT * C, p.lnfw,
                      a.lnf_mean, a.lnf_rstd, BT);
    int lowest = gpt_lowest_trainable_layer(model);
    for (int l = L - 1; l >= 0 && l >= lowest; l--) {
        const float* residual = l == 0 ? a.encoded : a.residual3 + (size_t)(l - 1) * BT * C;
        const float* l_ln1w = p.ln1w + (size_t)l * C;
        const float* l_ln2w = p.ln2w + (size_t)l * C;
        const float* l_ln1 = a.ln1 + (size_t)l * BT * C;
        const float* l_ln1_mean = a.ln1_mean + (size_t)l * BT;
        const float* l_ln1_rstd = a.ln1_rstd + (size_t)l * BT;
        const float* l_qkv = a.qkv + (size_t)l * BT * QKV;
        const float* l_atty = a.atty + (size_t)l * BT * C;
        const float* l_att = a.att + (size_t)l * B * NH * T * PT;
        const float* l_attproj = a.attproj + (size_t)l * BT * C;
        const float* l_residual2 = a.residual2 + (size_t)l * BT * C;
        const float* l_ln2 = a.ln2 + (size_t)l * BT * C;
        const float* l_ln2_mean = a.ln2_mean + (size_t)l * BT;
        const float* l_ln2_rstd = a.ln2_rstd + (size_t)l * BT;
        const float* l_fch = a.fch + (size_t)l * BT * FU;
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
        gpt_lora_backward(model, PIDX(fcprojw), l, ga.dfch_gelu, dmlp_out, l_fch_gelu, BT, ga.dlora_h, pd, xd, dxd);
        gpt_matmul_backward(model, PIDX(fcprojw), l, ga.dfch_gelu, G(fcprojw, l), G(fcprojb, l), dmlp_out, l_fch_gelu, BT, F, C);
        memset(ga.dfch, 0, BT * FU * sizeof(float));
        gpt_act_backward(model, ga.dfch, l_fch, ga.dfch_gelu, BT);
        memset(ga.dln, 0, BT * C * sizeof(float));
        gpt_lora_backward(model, PIDX(fcw), l, ga.dln, ga.dfch, l_ln2, BT, ga.dlora_h, pd, xd, dxd);
        gpt_matmul_backward(model, PIDX(fcw), l, ga.dln, G(fcw, l), G(fcb, l), ga.dfch, l_ln2, BT, C, FU);
        gpt_norm_backward(model, ga.dresidual, G(ln2w, l), G(ln2b, l), ga.dln, l_residual2, l_ln2w, l_ln2_mean, l_ln2_rstd, BT);
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
        gpt_lora_backward(model, PIDX(attprojw), l, ga.datty, dattn_out, l_atty, BT, ga.dlora_h, pd, xd, dxd);
        gpt_matmul_backward(model, PIDX(attprojw), l, ga.datty, G(attprojw, l), G(attprojb, l), dattn_out, l_atty, BT, C, C);
        memset(ga.dqkv, 0, BT * QKV * sizeof(float));
        attention_backward(ga.dqkv, P ? G(prefix_k, l) : NULL, P ? G(prefix_v, l) : NULL, ga.datty, l_qkv,
                           P ? p.prefix_k + (size_t)l * P * KV : NULL, P ? p.prefix_v + (size_t)l * P * KV : NULL, l_att,
                           model->lengths, B, T, C, NH, NKV, P, causal, pdrop, dropout_site_seed(model, DROP_ATT, l));
        // forward turned q and k after the projection: their gradients turn back first (RoPE's transpose)
        if (llama) rope_apply(ga.dqkv, model->rope_cs, B, T, C, NH, NKV, 0, -1.0f);
        memset(ga.dln, 0, BT * C * sizeof(float));
        gpt_lora_backward(model, PIDX(qkvw), l, ga.dln, ga.dqkv, l_ln1, BT, ga.dlora_h, pd, xd, dxd);
        gpt_matmul_backward(model, PIDX(qkvw), l, ga.dln, G(qkvw, l), G(qkvb, l), ga.dqkv, l_ln1, BT, C, QKV);
        gpt_norm_backward(model, ga.dresidual, G(ln1w, l), G(ln1b, l), ga.dln, residual, l_ln1w, l_ln1_mean, l_ln1_rstd, BT);
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
#undef gpt_norm_forward
#undef gpt_norm_backward
#undef rope_apply
#undef gpt_matmul_forward
#undef gpt_matmul_backward
#undef attention_forward
#undef attention_backward
#undef gpt_act_forward
#undef gpt_act_backward
#undef residual_dropout_forward
#undef dropout_backward
#undef crossentropy_forward
#undef crossentropy_backward
#undef gpt_lora_forward
#undef gpt_lora_backward
#undef adapter_forward
#undef adapter_backward
#undef cls_forward
#undef cls_backward
#endif

// A full AdamW step (gpt_adamw_update_range over every gradient) leaves the gradients zero, so the usual
// zero_grad after it costs nothing: one pass over the 0.5 GB of a 124M model's gradients less per step.
static void gpt_zero_grad(GPT* model) {
    if (model->grads_memory && !model->grads_zero) memset(model->grads_memory, 0, model->num_trainable * sizeof(float));
    model->grads_zero = model->grads_memory != NULL;
}

// ---------------------------------------------------------------------------- optimizer
// Global L2 norm of all gradients, in double. PyTorch: torch.nn.utils.clip_grad_norm_ computes the same norm.
static float gpt_grad_norm(const GPT* model) {
    // partial sums over fixed 64K-element chunks, then added in chunk order: the same result whatever the
    // number of threads (an OpenMP reduction may add the threads' partials in any order)
    const size_t chunk = 1 << 16;
    size_t n = model->num_trainable, nchunks = (n + chunk - 1) / chunk;
    static double* partial;  // grow-only: no allocation in the steady state
    static size_t cap;
    if (nchunks > cap) {
        free(partial);
        partial = (double*)mallocCheck(nchunks * sizeof(double));
        cap = nchunks;
    }
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
            float* restrict g = model->grads_memory + off;
            float* restrict m = model->m_memory + off - lo;  // m[j] is the state of element off + j
            float* restrict v = model->v_memory + off - lo;
#pragma omp parallel for simd
            for (size_t j = j0; j < j1; j++) {
                float gj = g[j] * gs;
                g[j] = 0.0f;  // read for the last time: cleared here instead of by a separate pass (gpt_zero_grad)
                float mj = b1 * m[j] + (1.0f - b1) * gj;
                float vj = b2 * v[j] + (1.0f - b2) * gj * gj;
                m[j] = mj;
                v[j] = vj;
                p[j] = p[j] * decay - lr * (mj * inv_bc1) / (sqrtf(vj * inv_bc2) + eps);
            }
        }
    }
    model->grad_scale = 1.0f;
    model->grads_zero = lo == 0 && hi == model->num_trainable;  // else the gradients outside [lo, hi) remain
}

// Copies the trainable slices of the parameters into flat (to_flat = 1), packed as the gradients are, or
// back from flat (to_flat = 0). ZeRO-1 gathers the ranks' updated shards in this packed form.
static void gpt_pack_trainable(GPT* model, float* flat, int to_flat) {
    const GPTConfig* c = &model->config;
    if (flat == model->grads_memory) model->grads_zero = 0;  // (ZeRO: the gradient buffer carries parameters)
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
