// infer.h: generation. The KV cache (prefill the prompt in one batched pass, then one position per new
// token), the samplers (temperature, top-k, top-p) and generate().

#pragma once
#include "model.h"  // defines: GPT, gpt_forward, the kernels

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
    float* k;             // (L, P+cap, KVC) keys, heads concatenated as in qkv (Llama: after RoPE); entries
                          // 0..P-1: the prefix. Grouped-query attention caches NKV heads only: NH/NKV times smaller
    float* v;             // (L, P+cap, KVC) values, the same layout
    // one position's activations, named as in ACT_TABLE; every layer reuses them
    float* x;             // (C) the residual stream
    float* ln;            // (C) a LayerNorm's output (ln1, ln2, lnf)
    float* ln_stat;       // (2) its mean and rstd
    float* qkv;           // (QKV)
    float* att;           // (NH, P+cap) the query's attention probabilities
    float *atty, *attproj, *fcproj, *adp_out;  // (C)
    float *fch, *fch_gelu;                     // (FU), (F)
    float *adp_h, *adp_hg;                     // (A) adapter bottleneck, before and after GELU
    float* lora_h;        // (r)
    float* logits;        // (Vp), or (K) class logits with a classification head
    float* probs;         // (K) class probabilities
    float* memory;        // the one allocation all of the above are carved from
} KVCache;

// What generation refuses: an encoder. Its attention is bidirectional, so a position's keys and values change
// whenever a token is appended (no cache), and masked-LM training never taught it to predict the next token.
static void refuse_encoder_generation(const GPT* model, const char* what) {
    if (model->config.arch == ARCH_ENCODER)
        failf("an encoder (--arch encoder) is for understanding tasks: fine-tune it with a class head, or generate with a gpt2 model",
              "%s needs a decoder (GPT-2), and this model is an encoder", what);
}

// Allocates a cache of cap positions (1..maxT) for this model's shape. The only allocation of decoding.
static void kv_init(KVCache* kv, const GPT* model, int cap) {
    const GPTConfig* c = &model->config;
    refuse_encoder_generation(model, "the KV cache (generation)");
    if (cap < 1 || cap > c->maxT) DIE("KV cache capacity outside [1, maxT]", "");
    size_t C = (size_t)c->C, PC = (size_t)(c->prefix_len + cap), F = (size_t)mlp_width(c), A = (size_t)c->adapter_dim;
    size_t K = (size_t)c->num_classes, kvn = (size_t)c->L * PC * kv_width(c), FU = is_llama(c) ? 2 * F : F;
    float** dst[] = {&kv->k, &kv->v, &kv->x, &kv->ln, &kv->ln_stat, &kv->qkv, &kv->att, &kv->atty, &kv->attproj,
                     &kv->fcproj, &kv->adp_out, &kv->fch, &kv->fch_gelu, &kv->adp_h, &kv->adp_hg, &kv->lora_h,
                     &kv->logits, &kv->probs};
    size_t n[] = {kvn, kvn, C, C, 2, (size_t)qkv_width(c), (size_t)c->NH * PC, C, C, C, C, FU, F, A, A, (size_t)c->lora_r,
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
    size_t P = (size_t)c->prefix_len, C = (size_t)kv_width(c), PC = P + (size_t)kv->cap;  // C: the cache's width
    for (int l = 0; l < c->L && P; l++) {
        memcpy(kv->k + l * PC * C, model->params.prefix_k + l * P * C, P * C * sizeof(float));
        memcpy(kv->v + l * PC * C, model->params.prefix_v + l * P * C, P * C * sizeof(float));
    }
}

// Dot products for the matrix-vector products of a decode step: dot_f32 (kernels.h, "vector helpers") for a
// float row, and this one for an int8 row (q, one scale d per group of 32): sum_e q[e] d[e/32] x[e], n a
// multiple of 32
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
// out: (C)   att: (NH, stride) probabilities   q: (C) the query   kc, vc: (n, KVC) this layer's cache, query
// head h reading kv head h / (NH/NKV) as attention_forward does
static void attention_decode(float* out, float* att, const float* q, const float* kc, const float* vc, int n,
                             int C, int NH, int NKV, int stride) {
    int hs = C / NH, KVC = NKV * hs, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for
    for (int h = 0; h < NH; h++) {
        float* a = att + (size_t)h * stride;
        int kh = (h / group) * hs;
        for (int j = 0; j < n; j++) a[j] = dot_f32(q + h * hs, kc + (size_t)j * KVC + kh, hs) * scale;
        softmax_f32(a, n);  // as in attention_forward
        float* y = out + h * hs;
        for (int i = 0; i < hs; i++) y[i] = 0.0f;
        for (int j = 0; j < n; j++) {
            const float* v = vc + (size_t)j * KVC + kh;
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
    int NKV = kv_heads(c), KV = kv_width(c), QKV = qkv_width(c), llama = is_llama(c);
    ParameterTensors p = model->params;
    if (pos == 0) kv_copy_prefix(model, kv);
    const float* wpe_t = llama ? NULL : p.wpe + (size_t)pos * C;  // encoder at position pos: wte[token] + wpe[pos]
    if (model->q8[PIDX(wte)].q) encoder_forward_q8(kv->x, &token, &model->q8[PIDX(wte)], wpe_t, 1, 1, C);
    else encoder_forward(kv->x, &token, p.wte, wpe_t, 1, 1, C);
    for (int l = 0; l < L; l++) {
        float* l_k = kv->k + (size_t)l * PC * KV;  // this layer's cache, (P+cap, KVC)
        float* l_v = kv->v + (size_t)l * PC * KV;
        gpt_norm_forward(model, kv->ln, kv->ln_stat, kv->ln_stat + 1, kv->x, p.ln1w + (size_t)l * C, llama ? NULL : p.ln1b + (size_t)l * C, 1);
        gpt_matvec_forward(model, PIDX(qkvw), l, kv->qkv, kv->ln, llama && !c->qkv_bias ? NULL : p.qkvb + (size_t)l * QKV, C, QKV);
        gpt_lora_forward(model, PIDX(qkvw), l, kv->qkv, kv->ln, 1, kv->lora_h, 0.0f, NULL);
        if (llama) rope_apply(kv->qkv, model->rope_cs, 1, 1, C, NH, NKV, pos, 1.0f);
        memcpy(l_k + (size_t)(P + pos) * KV, kv->qkv + C, (size_t)KV * sizeof(float));  // this position's k and v
        memcpy(l_v + (size_t)(P + pos) * KV, kv->qkv + C + KV, (size_t)KV * sizeof(float));
        attention_decode(kv->atty, kv->att, kv->qkv, l_k, l_v, P + pos + 1, C, NH, NKV, PC);
        gpt_matvec_forward(model, PIDX(attprojw), l, kv->attproj, kv->atty, llama ? NULL : p.attprojb + (size_t)l * C, C, C);
        gpt_lora_forward(model, PIDX(attprojw), l, kv->attproj, kv->atty, 1, kv->lora_h, 0.0f, NULL);
        const float* attn_out = kv->attproj;
        if (A) {
            adapter_forward(kv->adp_out, kv->adp_h, kv->adp_hg, kv->attproj, p.adpa_dw + (size_t)l * A * C,
                            p.adpa_db + (size_t)l * A, p.adpa_uw + (size_t)l * C * A, p.adpa_ub + (size_t)l * C, 1, C, A);
            attn_out = kv->adp_out;
        }
        residual_forward(kv->x, kv->x, attn_out, C);  // residual2, in place
        gpt_norm_forward(model, kv->ln, kv->ln_stat, kv->ln_stat + 1, kv->x, p.ln2w + (size_t)l * C, llama ? NULL : p.ln2b + (size_t)l * C, 1);
        gpt_matvec_forward(model, PIDX(fcw), l, kv->fch, kv->ln, llama ? NULL : p.fcb + (size_t)l * F, C, llama ? 2 * F : F);
        gpt_lora_forward(model, PIDX(fcw), l, kv->fch, kv->ln, 1, kv->lora_h, 0.0f, NULL);
        gpt_act_forward(model, kv->fch_gelu, kv->fch, 1);
        gpt_matvec_forward(model, PIDX(fcprojw), l, kv->fcproj, kv->fch_gelu, llama ? NULL : p.fcprojb + (size_t)l * C, F, C);
        gpt_lora_forward(model, PIDX(fcprojw), l, kv->fcproj, kv->fch_gelu, 1, kv->lora_h, 0.0f, NULL);
        const float* mlp_out = kv->fcproj;
        if (A) {
            adapter_forward(kv->adp_out, kv->adp_h, kv->adp_hg, kv->fcproj, p.adpm_dw + (size_t)l * A * C,
                            p.adpm_db + (size_t)l * A, p.adpm_uw + (size_t)l * C * A, p.adpm_ub + (size_t)l * C, 1, C, A);
            mlp_out = kv->adp_out;
        }
        residual_forward(kv->x, kv->x, mlp_out, C);  // residual3, in place
    }
    gpt_norm_forward(model, kv->ln, kv->ln_stat, kv->ln_stat + 1, kv->x, p.lnfw, llama ? NULL : p.lnfb, 1);
    if (c->num_classes) {
        int one = 1, none = -1;  // a sequence of length 1 (the row just computed), no label
        cls_forward(kv->logits, kv->probs, kv->ln, &one, &none, p.cls_w, NULL, 0.0f, 1, 1, C, c->num_classes);
    } else {
        gpt_matvec_forward(model, gpt_lm_head(c), 0, kv->logits, kv->ln, NULL, C, c->Vp);  // the LM head
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
    size_t C = (size_t)c->C, P = (size_t)c->prefix_len, PC = P + (size_t)kv->cap, KV = (size_t)kv_width(c), QKV = (size_t)qkv_width(c);
    for (int l = 0; l < c->L; l++) {
        for (int t = 0; t < n; t++) {  // qkv is (L, 1, n, QKV): k at offset C, v at C + KVC
            const float* qkv = model->acts.qkv + ((size_t)l * n + t) * QKV;
            memcpy(kv->k + (l * PC + P + t) * KV, qkv + C, KV * sizeof(float));
            memcpy(kv->v + (l * PC + P + t) * KV, qkv + C + KV, KV * sizeof(float));
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

// ---------------------------------------------------------------------------- sampling
// How the next token is drawn, in Hugging Face's order: logits / temperature, then top-k, then top-p
// (nucleus), each renormalising what is left. llama2.c's Sampler, with top-k added.
typedef struct { float p; int i; } ProbIndex;  // a token and its (unnormalised) probability
typedef struct {
    float temperature;  // 0: greedy (argmax)
    int top_k;          // keep the k most likely tokens (0: all)
    float top_p;        // then the smallest set of those whose probability sum reaches top_p (1: all)
    int stop_token;     // generation stops after this token (-1: never)
    uint64_t rng;
    ProbIndex* cand;    // (V) scratch, allocated once
} Sampler;

static void sampler_init(Sampler* s, int V, float temperature, int top_k, float top_p, int stop_token, uint64_t seed) {
    s->temperature = temperature, s->top_k = top_k, s->top_p = top_p, s->stop_token = stop_token;
    s->rng = seed ? seed : 1;  // xorshift's state must not be 0
    s->cand = (ProbIndex*)mallocCheck((size_t)V * sizeof(ProbIndex));
}
static void sampler_free(Sampler* s) { free(s->cand); }

static int cmp_prob_desc(const void* a, const void* b) {
    float x = ((const ProbIndex*)a)->p, y = ((const ProbIndex*)b)->p;
    return x < y ? 1 : x > y ? -1 : 0;
}

// Reorders c[0..n) so that c[0..k) are the k largest (in no particular order): quickselect (Hoare
// partition), O(n) on average, instead of sorting all V tokens for every one generated.
static void select_top_k(ProbIndex* c, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = c[lo + (hi - lo) / 2].p;
        int i = lo, j = hi;
        while (i <= j) {  // larger to the left: afterwards c[lo..j] >= pivot >= c[i..hi]
            while (c[i].p > pivot) i++;
            while (c[j].p < pivot) j--;
            if (i <= j) {
                ProbIndex t = c[i]; c[i] = c[j]; c[j] = t;
                i++, j--;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;  // position k-1 is in the band equal to the pivot: done
    }
}

// Draws the next token from one position's logits (V of them).
static int sample_next(Sampler* s, const float* logits, int V) {
    int best = 0;
    for (int i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    if (s->temperature <= 0.0f) return best;
    ProbIndex* c = s->cand;
    for (int i = 0; i < V; i++) {  // exp((logit - max) / temperature): the best token gets exactly 1
        c[i].p = expf((logits[i] - logits[best]) / s->temperature);
        c[i].i = i;
    }
    int n = V;
    if (s->top_k > 0 && s->top_k < V) {
        select_top_k(c, V, s->top_k);
        n = s->top_k;
    }
    if (s->top_p < 1.0f) {
        double z = 0.0;
        for (int k = 0; k < n; k++) z += c[k].p;
        // A token below (1-p)/(n-1) of the mass cannot be in the nucleus (all such tokens together hold
        // less than 1-p), so only the others are sorted. The best token (p = 1) is always kept.
        float cutoff = fminf((float)((1.0 - s->top_p) / (n > 1 ? n - 1 : 1) * z), 1.0f);
        int m = 0;
        for (int k = 0; k < n; k++) if (c[k].p >= cutoff) c[m++] = c[k];
        qsort(c, (size_t)m, sizeof *c, cmp_prob_desc);
        double acc = 0.0;
        n = 0;
        while (n < m && acc < s->top_p * z) acc += c[n++].p;  // the smallest prefix reaching p
    }
    double z = 0.0;
    for (int k = 0; k < n; k++) z += c[k].p;
    double r = random_f32(&s->rng) * z, acc = 0.0;
    for (int k = 0; k < n; k++) {
        acc += c[k].p;
        if (r < acc) return c[k].i;
    }
    return c[n - 1].i;  // r fell in the rounding of the last sum
}

// Extends prompt[0..n) by up to `steps` tokens, stopping after s->stop_token. Writes into out, which holds
// n + steps ints; returns the new length. The prompt goes through one batched pass (gpt_prefill), then each
// new token is one gpt_decode_step on the KV cache. When the cache (maxT positions) is full it is refilled
// with the last maxT/2 tokens in one batched pass and generation goes on: a window that slides by half its
// length at a time, so the model always sees between maxT/2 and maxT tokens (positions are absolute, so
// the cache cannot simply be shifted by one). emit, when not NULL, is called with each new token (the server
// streams it and checks stop strings); returning 0 ends generation there.
static int generate_with(GPT* model, Sampler* s, const int* prompt, int n, int steps, int* out,
                         int (*emit)(void* ctx, int token), void* ctx) {
    int maxT = model->config.maxT, cap = n + steps < maxT ? n + steps : maxT;
    memcpy(out, prompt, (size_t)n * sizeof(int));
    if (steps < 1) return n;
    KVCache kv;
    kv_init(&kv, model, cap);
    int len = n, start = n > cap ? n - cap : 0;  // the cache holds out[start..len)
    const float* logits = gpt_prefill(model, &kv, out + start, len - start);
    for (int i = 0; i < steps; i++) {
        int next = sample_next(s, logits, model->config.V);
        out[len++] = next;
        if ((emit && !emit(ctx, next)) || next == s->stop_token || i + 1 == steps) break;
        if (len - start > cap) {  // full: keep the last half
            start = len - (cap + 1) / 2;
            logits = gpt_prefill(model, &kv, out + start, len - start);
        } else {
            logits = gpt_decode_step(model, &kv, next, len - 1 - start);
        }
    }
    kv_free(&kv);
    return len;
}
static int generate(GPT* model, Sampler* s, const int* prompt, int n, int steps, int* out) {
    return generate_with(model, s, prompt, n, steps, out, NULL, NULL);
}

// Appends the ids of a --tokens string ("464 3290", commas and whitespace between) to prompt[0..*n), which
// holds *cap ints and grows; every id must be in [0, V). Returns the (possibly moved) array.
static int* parse_token_ids(const char* s, int V, int* prompt, int* n, int* cap) {
    while (*s) {
        char* e;
        long id = strtol(s, &e, 10);
        if (e == s) {
            if (*s == ' ' || *s == ',' || *s == '\n' || *s == '\t') { s++; continue; }
            failf("--tokens takes space-separated integers", "bad character '%c' in --tokens", *s);
        }
        if (id < 0 || id >= V) failf("the prompt must use the model's vocabulary", "prompt token %ld out of range [0, %d)", id, V);
        if (*n == *cap) prompt = (int*)realloc(prompt, (size_t)(*cap *= 2) * sizeof(int));
        prompt[(*n)++] = (int)id;
        s = e;
    }
    return prompt;
}
