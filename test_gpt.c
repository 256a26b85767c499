// test_gpt.c: holds the C model to finite differences and to PyTorch.
//
//   tier 1  every kernel's backward against central finite differences of its forward (tiny shapes), and the
//           fast matmul against the reference matmul
//   tier 2  the whole model against PyTorch reference files made by dev/gen_reference.py (float64 torch):
//           logits, loss, every parameter gradient, and 10 AdamW steps with clipping, decay and a schedule
//   tier 3  loaders and invariants: llm.c and Hugging Face files give the reference logits, checkpoints
//           round-trip bit for bit, a resumed run reproduces the uninterrupted one, bad files fail cleanly
//
// One line per check, a summary, and a non-zero exit on any failure. Run from the repository root.
#define TESTING
#include "train.c"
#include <sys/stat.h>

#include "test_report.h"
#include <ctype.h>

// ---------------------------------------------------------------------------- tier 1: finite differences
// For a kernel y = f(x, w, ...) we take the scalar objective J = sum_i y_i r_i with fixed random r, so dJ/dy = r
// is what the backward receives. The numeric gradient dJ/dx_j = (J(x + h e_j) - J(x - h e_j)) / 2h is taken on
// the same float kernel, with J summed in double. Its error is O(h^2) truncation plus fp32 rounding of the
// forward, about 6e-8 * |terms| / h; with h = 1e-3 and these sizes that is ~1e-4 of the gradient's scale, so the
// tolerance is 2e-3 relative to the tensor's scale (rms floor as above). The PyTorch tier checks tightly.
static uint64_t test_rng = 42;

static void fill_random(float* x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * random_normal(&test_rng);
}

typedef double (*Objective)(void* ctx);

static double dot_double(const float* a, const float* r, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * r[i];
    return s;
}

// Numeric gradient of J with respect to the n floats at x (perturbed in place and restored).
static void numeric_grad(double* out, float* x, size_t n, Objective J, void* ctx, float h) {
    for (size_t i = 0; i < n; i++) {
        float orig = x[i];
        x[i] = orig + h;
        double jp = J(ctx);
        x[i] = orig - h;
        double jm = J(ctx);
        x[i] = orig;
        out[i] = (jp - jm) / ((double)(orig + h) - (double)(orig - h));  // the step actually taken in fp32
    }
}

static void check_fd(const char* kernel, const char* what, const float* analytic, float* x, size_t n, Objective J,
                     void* ctx) {
    double* num = (double*)mallocCheck(n * sizeof(double));
    numeric_grad(num, x, n, J, ctx, 1e-3f);
    float* numf = (float*)mallocCheck(n * sizeof(float));
    for (size_t i = 0; i < n; i++) numf[i] = (float)num[i];
    char name[64];
    snprintf(name, sizeof name, "fd %s", kernel);
    check_tensor(name, what, analytic, numf, n, 2e-3);
    free(num);
    free(numf);
}

// layernorm
typedef struct { float *y, *mean, *rstd, *x, *w, *b, *r; size_t N; int C; } LnCtx;
static double ln_obj(void* p) {
    LnCtx* c = p;
    layernorm_forward(c->y, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C);
    return dot_double(c->y, c->r, c->N * c->C);
}
static void test_fd_layernorm(void) {
    size_t N = 6; int C = 13;
    LnCtx c = {mallocCheck(N * C * 4), mallocCheck(N * 4), mallocCheck(N * 4), mallocCheck(N * C * 4),
               mallocCheck(C * 4), mallocCheck(C * 4), mallocCheck(N * C * 4), N, C};
    fill_random(c.x, N * C, 1.0f); fill_random(c.w, C, 1.0f); fill_random(c.b, C, 1.0f); fill_random(c.r, N * C, 1.0f);
    float* dx = callocCheck(N * C, 4); float* dw = callocCheck(C, 4); float* db = callocCheck(C, 4);
    ln_obj(&c);
    layernorm_backward(dx, dw, db, c.r, c.x, c.w, c.mean, c.rstd, N, C);
    check_fd("layernorm", "dx", dx, c.x, N * C, ln_obj, &c);
    check_fd("layernorm", "dw", dw, c.w, C, ln_obj, &c);
    check_fd("layernorm", "db", db, c.b, C, ln_obj, &c);
    free(c.y); free(c.mean); free(c.rstd); free(c.x); free(c.w); free(c.b); free(c.r); free(dx); free(dw); free(db);
}

// matmul (the fast one; it is held to the reference separately)
typedef struct { float *out, *inp, *w, *bias, *r; size_t N; int C, OC; } MmCtx;
static double mm_obj(void* p) {
    MmCtx* c = p;
    matmul_forward(c->out, c->inp, c->w, c->bias, c->N, c->C, c->OC);
    return dot_double(c->out, c->r, c->N * c->OC);
}
static void test_fd_matmul(void) {
    size_t N = 5; int C = 7, OC = 9;
    MmCtx c = {mallocCheck(N * OC * 4), mallocCheck(N * C * 4), mallocCheck(OC * C * 4), mallocCheck(OC * 4),
               mallocCheck(N * OC * 4), N, C, OC};
    fill_random(c.inp, N * C, 1.0f); fill_random(c.w, OC * C, 1.0f); fill_random(c.bias, OC, 1.0f); fill_random(c.r, N * OC, 1.0f);
    float* dinp = callocCheck(N * C, 4); float* dw = callocCheck(OC * C, 4); float* db = callocCheck(OC, 4);
    mm_obj(&c);
    matmul_backward(dinp, dw, db, c.r, c.inp, c.w, N, C, OC);
    check_fd("matmul", "dinp", dinp, c.inp, N * C, mm_obj, &c);
    check_fd("matmul", "dw", dw, c.w, OC * C, mm_obj, &c);
    check_fd("matmul", "dbias", db, c.bias, OC, mm_obj, &c);
    free(c.out); free(c.inp); free(c.w); free(c.bias); free(c.r); free(dinp); free(dw); free(db);
}

// attention
typedef struct { float *out, *att, *qkv, *r; int B, T, C, NH, NKV; float p; int causal; const int* lengths; } AttCtx;
static double att_obj(void* p) {
    AttCtx* c = p;
    attention_forward(c->out, c->att, c->qkv, NULL, NULL, c->lengths, c->B, c->T, c->C, c->NH, c->NKV, 0, c->causal, c->p, 99);
    return dot_double(c->out, c->r, (size_t)c->B * c->T * c->C);
}
// causal = 0: the encoder's bidirectional attention, with row 1 padded after 3 tokens (no key beyond them).
// NKV < 3: grouped-query attention (Llama), 3 query heads sharing NKV key/value heads.
static void test_fd_attention(float p, int causal, int NKV) {
    int B = 2, T = 5, C = 12, NH = NKV == 2 ? 4 : 3, QKV = C + 2 * NKV * (C / NH);
    static const int lengths[2] = {5, 3};
    size_t n = (size_t)B * T * C, nq = (size_t)B * T * QKV;
    AttCtx c = {mallocCheck(n * 4), mallocCheck((size_t)B * NH * T * T * 4), mallocCheck(nq * 4), mallocCheck(n * 4), B, T, C, NH, NKV, p,
                causal, causal ? NULL : lengths};
    fill_random(c.qkv, nq, 1.0f); fill_random(c.r, n, 1.0f);
    float* dqkv = callocCheck(nq, 4);
    att_obj(&c);
    attention_backward(dqkv, NULL, NULL, c.r, c.qkv, NULL, NULL, c.att, c.lengths, B, T, C, NH, NKV, 0, causal, p, 99);
    const char* k = NKV != NH ? (p > 0 ? "gqa-attn+drop" : "gqa-attn") : causal ? (p > 0 ? "attn+drop" : "attention") : (p > 0 ? "bidir-attn+drop" : "bidir-attn");
    check_fd(k, "dqkv", dqkv, c.qkv, nq, att_obj, &c);
    if (!causal) {  // the padded keys of row 1 (positions 3, 4) get exactly no weight and no key/value gradient
        int zero = 1;
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++)
                for (int j = 3; j < T; j++) zero &= c.att[(((size_t)1 * NH + h) * T + t) * T + j] == 0.0f;
        for (int t = 3; t < T; t++)
            for (int i = C; i < 3 * C; i++) zero &= dqkv[((size_t)1 * T + t) * 3 * C + i] == 0.0f;
        report(zero, "bidir-attn: a padded key has attention weight 0 and no k/v gradient");
    }
    free(c.out); free(c.att); free(c.qkv); free(c.r); free(dqkv);
}

// gelu
typedef struct { float *y, *x, *r; size_t N; } GeluCtx;
static double gelu_obj(void* p) {
    GeluCtx* c = p;
    gelu_forward(c->y, c->x, c->N);
    return dot_double(c->y, c->r, c->N);
}
static void test_fd_gelu(void) {
    size_t N = 64;
    GeluCtx c = {mallocCheck(N * 4), mallocCheck(N * 4), mallocCheck(N * 4), N};
    fill_random(c.x, N, 2.0f); fill_random(c.r, N, 1.0f);
    float* dx = callocCheck(N, 4);
    gelu_obj(&c);
    gelu_backward(dx, c.x, c.r, N);
    check_fd("gelu", "dx", dx, c.x, N, gelu_obj, &c);
    free(c.y); free(c.x); free(c.r); free(dx);
}

// Llama's kernels. rmsnorm: gradients for x and w; eps large enough that a wrong eps in backward shows
typedef struct { float *y, *rstd, *x, *w, *r; size_t N; int C; float eps; } RmsCtx;
static double rms_obj(void* p) {
    RmsCtx* c = p;
    rmsnorm_forward(c->y, c->rstd, c->x, c->w, c->N, c->C, c->eps);
    return dot_double(c->y, c->r, c->N * c->C);
}
static void test_fd_rmsnorm(void) {
    size_t N = 6; int C = 13;
    RmsCtx c = {mallocCheck(N * C * 4), mallocCheck(N * 4), mallocCheck(N * C * 4), mallocCheck(C * 4), mallocCheck(N * C * 4), N, C, 0.05f};
    fill_random(c.x, N * C, 1.0f); fill_random(c.w, C, 1.0f); fill_random(c.r, N * C, 1.0f);
    float *dx = callocCheck(N * C, 4), *dw = callocCheck(C, 4);
    rms_obj(&c);
    rmsnorm_backward(dx, dw, c.r, c.x, c.w, c.rstd, N, C);
    check_fd("rmsnorm", "dx", dx, c.x, N * C, rms_obj, &c);
    check_fd("rmsnorm", "dw", dw, c.w, C, rms_obj, &c);
    rms_obj(&c);  // y of the unperturbed x (check_fd's last call left a perturbed one)
    // the definition itself: y = w x / sqrt(mean(x^2) + eps), in double, for one row
    double ss = 0.0, worst = 0.0;
    for (int i = 0; i < C; i++) ss += (double)c.x[C + i] * c.x[C + i];
    for (int i = 0; i < C; i++) {  // (an if, not fmax: gcc 12's aarch64 vectoriser crashes on that reduction)
        double want = c.w[i] * c.x[C + i] / sqrt(ss / C + 0.05), e = fabs(c.y[C + i] - want);
        if (e > worst) worst = e;
    }
    report(worst < 1e-6, "rmsnorm: row 1 is w x / sqrt(mean(x^2) + eps) (worst error %.1e)", worst);
    free(c.y); free(c.rstd); free(c.x); free(c.w); free(c.r); free(dx); free(dw);
}

// rope: in place on q and k of a packed qkv (GQA: 4 query heads, 2 key heads), v untouched; backward = rotate back
typedef struct { float *y, *x, *cs, *r; int B, T, C, NH, NKV; } RopeCtx;
static double rope_obj(void* p) {
    RopeCtx* c = p;
    size_t n = (size_t)c->B * c->T * (c->C + 2 * c->NKV * (c->C / c->NH));
    memcpy(c->y, c->x, n * 4);
    rope_apply(c->y, c->cs, c->B, c->T, c->C, c->NH, c->NKV, 0, 1.0f);
    return dot_double(c->y, c->r, n);
}
static void test_fd_rope(void) {
    int B = 2, T = 5, C = 16, NH = 4, NKV = 2, hs = C / NH, QKV = C + 2 * NKV * hs;
    size_t n = (size_t)B * T * QKV;
    RopeCtx c = {mallocCheck(n * 4), mallocCheck(n * 4), mallocCheck((size_t)T * hs * 4), mallocCheck(n * 4), B, T, C, NH, NKV};
    rope_table(c.cs, T, hs, 500000.0f, 0.0f);
    fill_random(c.x, n, 1.0f); fill_random(c.r, n, 1.0f);
    float* dx = mallocCheck(n * 4);
    memcpy(dx, c.r, n * 4);
    rope_apply(dx, c.cs, B, T, C, NH, NKV, 0, -1.0f);  // the backward: dy turned back
    check_fd("rope", "dqkv", dx, c.x, n, rope_obj, &c);
    rope_obj(&c);
    // the definition, by hand for one pair: row (b=1, t=3), key head 1, pair i=1 (channels 1 and 3 of hs=4):
    // angle = 3 * 500000^(-2/4); y1 = x1 cos - x3 sin, y3 = x3 cos + x1 sin; v (the last 2*hs... ) unchanged
    size_t row = ((size_t)1 * T + 3) * QKV, k1 = row + C + 1 * hs;
    double a = 3.0 * pow(500000.0, -0.5), x1 = c.x[k1 + 1], x3 = c.x[k1 + 3];
    double e = fmax(fabs(c.y[k1 + 1] - (x1 * cos(a) - x3 * sin(a))), fabs(c.y[k1 + 3] - (x3 * cos(a) + x1 * sin(a))));
    int v_same = !memcmp(c.y + row + C + NKV * hs, c.x + row + C + NKV * hs, (size_t)NKV * hs * 4);
    report(e < 1e-6 && v_same, "rope: a key pair turns by t * theta^(-2i/hs) (error %.1e), v is untouched", e);
    // linear scaling (rope_scaling type linear, factor 4): position t turns as t / 4 does without it
    float *cs4 = mallocCheck((size_t)4 * T * hs * 4), *cs1 = mallocCheck((size_t)T * hs * 4);
    rope_table(cs4, 4 * T, hs, 500000.0f, 4.0f);
    rope_table(cs1, T, hs, 500000.0f, 0.0f);
    report(!memcmp(cs4 + (size_t)8 * hs, cs1 + (size_t)2 * hs, (size_t)hs * 4), "rope: linear factor 4 at position 8 = no scaling at position 2");
    free(c.y); free(c.x); free(c.cs); free(c.r); free(dx); free(cs4); free(cs1);
}

// swiglu: y = silu(gate) * up over the two halves of each row
typedef struct { float *y, *x, *r; size_t N; int F; } SwiCtx;
static double swi_obj(void* p) {
    SwiCtx* c = p;
    swiglu_forward(c->y, c->x, c->N, c->F);
    return dot_double(c->y, c->r, c->N * c->F);
}
static void test_fd_swiglu(void) {
    size_t N = 4; int F = 9;
    SwiCtx c = {mallocCheck(N * F * 4), mallocCheck(N * 2 * F * 4), mallocCheck(N * F * 4), N, F};
    fill_random(c.x, N * 2 * F, 3.0f); fill_random(c.r, N * F, 1.0f);
    float* dx = callocCheck(N * 2 * F, 4);
    swi_obj(&c);
    swiglu_backward(dx, c.x, c.r, N, F);
    check_fd("swiglu", "dx", dx, c.x, N * 2 * F, swi_obj, &c);
    swi_obj(&c);
    double g = c.x[2 * F + 4], u = c.x[2 * F + F + 4], want = g / (1.0 + exp(-g)) * u;  // row 1, channel 4
    report(fabs(c.y[F + 4] - want) < 1e-6, "swiglu: y = g sigmoid(g) u (row 1, channel 4: %g, want %g)", c.y[F + 4], want);
    free(c.y); free(c.x); free(c.r); free(dx);
}

// residual
typedef struct { float *y, *x1, *x2, *r; size_t N; } ResCtx;
static double res_obj(void* p) {
    ResCtx* c = p;
    residual_forward(c->y, c->x1, c->x2, c->N);
    return dot_double(c->y, c->r, c->N);
}
static void test_fd_residual(void) {
    size_t N = 20;
    ResCtx c = {mallocCheck(N * 4), mallocCheck(N * 4), mallocCheck(N * 4), mallocCheck(N * 4), N};
    fill_random(c.x1, N, 1.0f); fill_random(c.x2, N, 1.0f); fill_random(c.r, N, 1.0f);
    float* d1 = callocCheck(N, 4); float* d2 = callocCheck(N, 4);
    residual_backward(d1, d2, c.r, N);
    check_fd("residual", "dx1", d1, c.x1, N, res_obj, &c);
    check_fd("residual", "dx2", d2, c.x2, N, res_obj, &c);
    free(c.y); free(c.x1); free(c.x2); free(c.r); free(d1); free(d2);
}

// encoder
typedef struct { float *out, *wte, *wpe, *r; int* inp; int B, T, C; } EncCtx;
static double enc_obj(void* p) {
    EncCtx* c = p;
    encoder_forward(c->out, c->inp, c->wte, c->wpe, c->B, c->T, c->C);
    return dot_double(c->out, c->r, (size_t)c->B * c->T * c->C);
}
static void test_fd_encoder(void) {
    int B = 2, T = 3, C = 4, V = 5;
    int inp[6] = {1, 3, 1, 0, 4, 3};  // repeated ids: their gradients must add up
    EncCtx c = {mallocCheck(B * T * C * 4), mallocCheck(V * C * 4), mallocCheck(T * C * 4), mallocCheck(B * T * C * 4), inp, B, T, C};
    fill_random(c.wte, V * C, 1.0f); fill_random(c.wpe, T * C, 1.0f); fill_random(c.r, B * T * C, 1.0f);
    float* dwte = callocCheck(V * C, 4); float* dwpe = callocCheck(T * C, 4);
    encoder_backward(dwte, dwpe, c.r, inp, B, T, C);
    check_fd("encoder", "dwte", dwte, c.wte, V * C, enc_obj, &c);
    check_fd("encoder", "dwpe", dwpe, c.wpe, T * C, enc_obj, &c);
    free(c.out); free(c.wte); free(c.wpe); free(c.r); free(dwte); free(dwpe);
}

// softmax + cross-entropy: J = mean loss itself (the backward's contract), with an ignored position
typedef struct { float *probs, *losses, *logits; int* targets; size_t N; int V, Vp; } CeCtx;
static double ce_obj(void* p) {
    CeCtx* c = p;
    return crossentropy_forward(c->probs, c->losses, c->logits, c->targets, c->N, c->V, c->Vp);
}
static void test_fd_crossentropy(void) {
    size_t N = 4; int V = 7, Vp = 8;
    int targets[4] = {3, -1, 0, 6};
    CeCtx c = {mallocCheck(N * Vp * 4), mallocCheck(N * 4), mallocCheck(N * Vp * 4), targets, N, V, Vp};
    fill_random(c.logits, N * Vp, 2.0f);
    float* dlogits = callocCheck(N * Vp, 4);
    ce_obj(&c);
    crossentropy_backward(dlogits, c.probs, targets, N, V, Vp, 1.0f);
    check_fd("xent", "dlogits", dlogits, c.logits, N * Vp, ce_obj, &c);
    free(c.probs); free(c.losses); free(c.logits); free(dlogits);
}

// attention with a prefix: gradients for q, k, v and for the prefix keys and values
typedef struct { float *out, *att, *qkv, *pk, *pv, *r; int B, T, C, NH, NKV, P, causal; const int* lengths; } PreCtx;
static double pre_obj(void* p) {
    PreCtx* c = p;
    attention_forward(c->out, c->att, c->qkv, c->pk, c->pv, c->lengths, c->B, c->T, c->C, c->NH, c->NKV, c->P, c->causal, 0.0f, 0);
    return dot_double(c->out, c->r, (size_t)c->B * c->T * c->C);
}
// causal = 0: prefix-tuning composes with the encoder's bidirectional attention (row 1 padded after len1 tokens)
// NKV = 1: with grouped-query attention (Llama): the prefix is NKV heads wide, as k and v are
static void test_fd_prefix_attention_at(int causal, int NKV, int T, int C, int P, int len1) {
    int B = 2, NH = 2, KV = NKV * (C / NH), QKV = C + 2 * KV;
    const int lengths[2] = {T, len1};
    size_t n = (size_t)B * T * C, nq = (size_t)B * T * QKV;
    PreCtx c = {mallocCheck(n * 4), mallocCheck((size_t)B * NH * T * (P + T) * 4), mallocCheck(nq * 4),
                mallocCheck(P * KV * 4), mallocCheck(P * KV * 4), mallocCheck(n * 4), B, T, C, NH, NKV, P, causal, causal ? NULL : lengths};
    fill_random(c.qkv, nq, 1.0f); fill_random(c.pk, P * KV, 1.0f); fill_random(c.pv, P * KV, 1.0f); fill_random(c.r, n, 1.0f);
    float *dqkv = callocCheck(nq, 4), *dpk = callocCheck(P * KV, 4), *dpv = callocCheck(P * KV, 4);
    pre_obj(&c);
    attention_backward(dqkv, dpk, dpv, c.r, c.qkv, c.pk, c.pv, c.att, c.lengths, B, T, C, NH, NKV, P, c.causal, 0.0f, 0);
    const char* k = NKV != NH ? "gqa-prefix-attn" : causal ? "prefix-attn" : "bidir-prefix";
    if (P + T <= ATT_CHUNK) {  // one chunk of keys: against finite differences
        check_fd(k, "dqkv", dqkv, c.qkv, nq, pre_obj, &c);
        check_fd(k, "dpk", dpk, c.pk, P * KV, pre_obj, &c);
        check_fd(k, "dpv", dpv, c.pv, P * KV, pre_obj, &c);
    } else {  // several chunks: forward and backward against the definition in double, one key at a time (finite
              // differences of a float forward this wide carry ~2e-3 of rounding noise: the tolerance itself)
        int hs = C / NH;
        double* ref = callocCheck(nq + 2 * (size_t)P * KV + 1, sizeof(double));  // dqkv, dpk, dpv
        double *rpk = ref + nq, *rpv = rpk + (size_t)P * KV, worst = 0, dworst = 0;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int t = 0; t < T; t++) {
                    int nk = attention_keys(causal, c.lengths, b, t, T, P), kh = h / (NH / NKV) * hs;
                    size_t qrow = ((size_t)b * T + t) * QKV + h * hs, orow = ((size_t)b * T + t) * C + h * hs;
                    const float *q = c.qkv + qrow, *dy = c.r + orow, *key[P + T], *val[P + T];
                    double a[P + T], datt[P + T], *dk[P + T], *dv[P + T], z = 0, m = -1e300, dot = 0;
                    for (int j = 0; j < nk; j++) {
                        size_t sj = ((size_t)b * T + j - P) * QKV + C + kh;
                        key[j] = j < P ? c.pk + j * KV + kh : c.qkv + sj;
                        val[j] = j < P ? c.pv + j * KV + kh : c.qkv + sj + KV;
                        dk[j] = j < P ? rpk + j * KV + kh : ref + sj;
                        dv[j] = j < P ? rpv + j * KV + kh : ref + sj + KV;
                        a[j] = 0;
                        for (int i = 0; i < hs; i++) a[j] += (double)q[i] * key[j][i] / sqrt((double)hs);
                        m = a[j] > m ? a[j] : m;
                    }
                    for (int j = 0; j < nk; j++) z += a[j] = exp(a[j] - m);
                    for (int j = 0; j < nk; j++) a[j] /= z;
                    for (int i = 0; i < hs; i++) {
                        double y = 0;
                        for (int j = 0; j < nk; j++) y += a[j] * val[j][i];
                        double e = fabs(c.out[orow + i] - y) / (1 + fabs(y));
                        worst = e > worst ? e : worst;
                    }
                    for (int j = 0; j < nk; j++) {
                        datt[j] = 0;
                        for (int i = 0; i < hs; i++) datt[j] += (double)dy[i] * val[j][i], dv[j][i] += a[j] * dy[i];
                        dot += a[j] * datt[j];
                    }
                    for (int j = 0; j < nk; j++)
                        for (int i = 0; i < hs; i++) {
                            double ds = a[j] * (datt[j] - dot) / sqrt((double)hs);
                            ref[qrow + i] += ds * key[j][i];
                            dk[j][i] += ds * q[i];
                        }
                }
        const float* ours[3] = {dqkv, dpk, dpv};
        const double* want[3] = {ref, rpk, rpv};
        size_t len[3] = {nq, (size_t)P * KV, (size_t)P * KV};
        for (int x = 0; x < 3; x++)
            for (size_t i = 0; i < len[x]; i++) {
                double e = fabs(ours[x][i] - want[x][i]) / (1 + fabs(want[x][i]));
                dworst = e > dworst ? e : dworst;
            }
        report(worst < 1e-5 && dworst < 1e-5, "%s over %d keys (chunks of %d), hs=%d: output and dqkv, dpk, dpv against the "
               "definition in double, worst %.1e and %.1e (tol 1e-5)", k, P + T, ATT_CHUNK, hs, worst, dworst);
        free(ref);
    }
    free(c.out); free(c.att); free(c.qkv); free(c.pk); free(c.pv); free(c.r); free(dqkv); free(dpk); free(dpv);
}
static void test_fd_prefix_attention(int causal, int NKV) { test_fd_prefix_attention_at(causal, NKV, 4, 6, 3, 2); }
// Attention takes its keys ATT_CHUNK (64) at a time: more keys than that, with the prefix inside the first chunk
// or running past it, and without a prefix; head sizes 8, 64 and 72, so the chunk transposes take their 4 x 4
// blocks and the weighted sums of rows (attention_rows_sum) both their vector and their plain loop. On
// their own random stream (the tests after them draw the same numbers as before these existed).
static void test_fd_attention_chunks(void) {
    uint64_t saved = test_rng;
    test_rng = 64;
    test_fd_prefix_attention_at(1, 1, 66, 16, 5, 66);   // causal, 2 heads share 1 kv head; keys 0-63 and 64-70
    test_fd_prefix_attention_at(0, 2, 66, 16, 5, 61);   // bidirectional, row 1 padded after 61 tokens
    test_fd_prefix_attention_at(1, 2, 5, 16, 66, 5);    // 66 prefix keys: the second chunk starts inside the prefix
    test_fd_prefix_attention_at(1, 2, 70, 16, 0, 70);   // no prefix
    test_fd_prefix_attention_at(0, 2, 66, 128, 3, 60);  // hs = 64: the weighted sums' vector path
    test_fd_prefix_attention_at(1, 1, 66, 144, 5, 66);  // hs = 72: the vector path and its tail
    test_rng = saved;
}

// LoRA: out = x W^T + s (x A^T) B^T, gradients for x, A and B
typedef struct { float *out, *h, *x, *W, *A, *Bm, *r; float s; size_t N; int C, OC, R; float p; float* xd; } LoraCtx;
static double lora_obj(void* p) {
    LoraCtx* c = p;
    matmul_forward(c->out, c->x, c->W, NULL, c->N, c->C, c->OC);
    lora_forward(c->out, c->OC, c->h, c->x, c->A, c->Bm, c->s, c->N, c->C, c->OC, c->R, c->p, 77, c->xd);
    return dot_double(c->out, c->r, c->N * c->OC);
}
static void test_fd_lora(float p) {
    size_t N = 5; int C = 7, OC = 6, R = 3;
    LoraCtx c = {mallocCheck(N * OC * 4), mallocCheck(N * R * 4), mallocCheck(N * C * 4), mallocCheck(OC * C * 4),
                 mallocCheck(R * C * 4), mallocCheck(OC * R * 4), mallocCheck(N * OC * 4), 1.7f, N, C, OC, R, p,
                 mallocCheck(N * C * 4)};
    float* dxd = mallocCheck(N * C * 4);
    fill_random(c.x, N * C, 1.0f); fill_random(c.W, OC * C, 1.0f); fill_random(c.A, R * C, 1.0f);
    fill_random(c.Bm, OC * R, 1.0f); fill_random(c.r, N * OC, 1.0f);
    float *dx = callocCheck(N * C, 4), *dA = callocCheck(R * C, 4), *dB = callocCheck(OC * R, 4), *dh = callocCheck(N * R, 4);
    lora_obj(&c);
    lora_backward(dx, dA, dB, dh, c.r, OC, c.h, c.x, c.A, c.Bm, c.s, N, C, OC, R, p, 77, c.xd, dxd);
    matmul_backward(dx, NULL, NULL, c.r, c.x, c.W, N, C, OC);  // the frozen W's path into dx
    const char* k = p > 0 ? "lora+drop" : "lora";  // with dropout: the same seed gives the same mask
    check_fd(k, "dx", dx, c.x, N * C, lora_obj, &c);
    check_fd(k, "dA", dA, c.A, R * C, lora_obj, &c);
    check_fd(k, "dB", dB, c.Bm, OC * R, lora_obj, &c);
    free(c.out); free(c.h); free(c.x); free(c.W); free(c.A); free(c.Bm); free(c.r); free(dx); free(dA); free(dB); free(dh);
    free(c.xd); free(dxd);
}

// LoRA into some columns of a wider output (Llama's q, k, v share the fused qkv): with rows ld = 11 apart and
// the update in columns [3, 9), forward and backward give exactly what the plain (N, 6) call gives there, and
// leave the other columns alone
static void test_lora_strided(void) {
    size_t N = 5; int C = 7, OC = 6, R = 3, ld = 11, c0 = 3;
    float *x = mallocCheck(N * C * 4), *A = mallocCheck(R * C * 4), *Bm = mallocCheck(OC * R * 4), *h = mallocCheck(N * R * 4);
    float *wide = callocCheck(N * ld, 4), *narrow = callocCheck(N * OC, 4), *dwide = mallocCheck(N * ld * 4), *dnarrow = mallocCheck(N * OC * 4);
    fill_random(x, N * C, 1.0f); fill_random(A, R * C, 1.0f); fill_random(Bm, OC * R, 1.0f); fill_random(dwide, N * ld, 1.0f);
    for (size_t n = 0; n < N; n++) memcpy(dnarrow + n * OC, dwide + n * ld + c0, OC * 4);
    lora_forward(wide + c0, ld, h, x, A, Bm, 1.3f, N, C, OC, R, 0.0f, 0, NULL);
    lora_forward(narrow, OC, h, x, A, Bm, 1.3f, N, C, OC, R, 0.0f, 0, NULL);
    int same = 1;
    for (size_t n = 0; n < N; n++)
        for (int j = 0; j < ld; j++) same &= wide[n * ld + j] == (j >= c0 && j < c0 + OC ? narrow[n * OC + j - c0] : 0.0f);
    float *dx1 = callocCheck(N * C, 4), *dx2 = callocCheck(N * C, 4), *dA1 = callocCheck(R * C, 4), *dA2 = callocCheck(R * C, 4);
    float *dB1 = callocCheck(OC * R, 4), *dB2 = callocCheck(OC * R, 4), *dh = mallocCheck(N * R * 4);
    lora_backward(dx1, dA1, dB1, dh, dwide + c0, ld, h, x, A, Bm, 1.3f, N, C, OC, R, 0.0f, 0, NULL, NULL);
    lora_backward(dx2, dA2, dB2, dh, dnarrow, OC, h, x, A, Bm, 1.3f, N, C, OC, R, 0.0f, 0, NULL, NULL);
    same &= !memcmp(dx1, dx2, N * C * 4) && !memcmp(dA1, dA2, R * C * 4) && !memcmp(dB1, dB2, OC * R * 4);
    report(same, "lora: into columns [3, 9) of rows 11 apart = the plain call there, forward and backward");
    free(x); free(A); free(Bm); free(h); free(wide); free(narrow); free(dwide); free(dnarrow);
    free(dx1); free(dx2); free(dA1); free(dA2); free(dB1); free(dB2); free(dh);
}

// Llama's kernels and the attention's grouped-query form, on their own random stream (the tests after them
// draw the same numbers as before these existed)
static void test_fd_llama_kernels(void) {
    uint64_t saved = test_rng;
    test_rng = 2024;
    test_fd_attention(0.0f, 1, 2);  // grouped-query: 4 heads share 2 key/value heads
    test_fd_attention(0.3f, 1, 1);  // 3 heads share one (multi-query)
    test_fd_prefix_attention(1, 1);
    test_fd_rmsnorm();
    test_fd_rope();
    test_fd_swiglu();
    test_lora_strided();
    test_rng = saved;
}

// adapter: y = x + up(gelu(down(x)))
typedef struct { float *y, *h, *hg, *x, *dw, *db, *uw, *ub, *r; size_t N; int C, A; } AdpCtx;
static double adp_obj(void* p) {
    AdpCtx* c = p;
    adapter_forward(c->y, c->h, c->hg, c->x, c->dw, c->db, c->uw, c->ub, c->N, c->C, c->A);
    return dot_double(c->y, c->r, c->N * c->C);
}
static void test_fd_adapter(void) {
    size_t N = 4; int C = 6, A = 3;
    AdpCtx c = {mallocCheck(N * C * 4), mallocCheck(N * A * 4), mallocCheck(N * A * 4), mallocCheck(N * C * 4),
                mallocCheck(A * C * 4), mallocCheck(A * 4), mallocCheck(C * A * 4), mallocCheck(C * 4),
                mallocCheck(N * C * 4), N, C, A};
    fill_random(c.x, N * C, 1.0f); fill_random(c.dw, A * C, 1.0f); fill_random(c.db, A, 1.0f);
    fill_random(c.uw, C * A, 1.0f); fill_random(c.ub, C, 1.0f); fill_random(c.r, N * C, 1.0f);
    float *dx = callocCheck(N * C, 4), *ddw = callocCheck(A * C, 4), *ddb = callocCheck(A, 4), *duw = callocCheck(C * A, 4),
          *dub = callocCheck(C, 4), *dh = callocCheck(N * A, 4), *dhg = callocCheck(N * A, 4);
    adp_obj(&c);
    adapter_backward(dx, ddw, ddb, duw, dub, dh, dhg, c.r, c.x, c.h, c.hg, c.dw, c.uw, N, C, A);
    check_fd("adapter", "dx", dx, c.x, N * C, adp_obj, &c);
    check_fd("adapter", "ddown_w", ddw, c.dw, A * C, adp_obj, &c);
    check_fd("adapter", "ddown_b", ddb, c.db, A, adp_obj, &c);
    check_fd("adapter", "dup_w", duw, c.uw, C * A, adp_obj, &c);
    check_fd("adapter", "dup_b", dub, c.ub, C, adp_obj, &c);
    free(c.y); free(c.h); free(c.hg); free(c.x); free(c.dw); free(c.db); free(c.uw); free(c.ub); free(c.r);
    free(dx); free(ddw); free(ddb); free(duw); free(dub); free(dh); free(dhg);
}

// classification head with class weights and label smoothing: J = the loss itself
typedef struct { float *logits, *probs, *hidden, *w, *cw; int *len, *lab; float eps; int B, T, C, K; } ClsCtx;
static double cls_obj(void* p) {
    ClsCtx* c = p;
    return cls_forward(c->logits, c->probs, c->hidden, c->len, c->lab, c->w, c->cw, c->eps, c->B, c->T, c->C, c->K);
}
static void test_fd_cls(void) {
    int B = 3, T = 4, C = 5, K = 3;
    int len[3] = {4, 2, 3}, lab[3] = {2, 0, 2};
    float cw[3] = {0.5f, 2.0f, 1.25f};
    ClsCtx c = {mallocCheck(B * K * 4), mallocCheck(B * K * 4), mallocCheck(B * T * C * 4), mallocCheck(K * C * 4), cw,
                len, lab, 0.1f, B, T, C, K};
    fill_random(c.hidden, B * T * C, 1.0f); fill_random(c.w, K * C, 1.0f);
    float *dh = callocCheck(B * T * C, 4), *dw = callocCheck(K * C, 4), *dl = callocCheck(B * K, 4);
    cls_obj(&c);
    cls_backward(dh, dw, dl, c.probs, c.hidden, len, lab, c.w, cw, c.eps, 1.0f, B, T, C, K);
    check_fd("cls head", "dhidden", dh, c.hidden, B * T * C, cls_obj, &c);
    check_fd("cls head", "dcls_w", dw, c.w, K * C, cls_obj, &c);
    free(c.logits); free(c.probs); free(c.hidden); free(c.w); free(dh); free(dw); free(dl);
}

// the fast matmul against the reference loops, on shapes that exercise every edge of the blocking
// kernels.h's vector helpers (16 partial sums, exp_poly) against the plain loops they replace, in double,
// for lengths below, at and past a multiple of 16 (the tail loops) and one vocabulary row. Tolerances: fp32
// rounding of a 16-way split sum of |terms| <= 1 (dot, sum: 1e-6 relative to the sum of |terms|), exact
// for the max, and for each exponential 1e-6 relative to exp of the same fp32 argument (exp_poly: < 1e-7 seen).
static void test_vector_helpers(void) {
    const int lens[] = {0, 1, 15, 16, 17, 64, 100, 50257};
    for (int l = 0; l < (int)(sizeof lens / sizeof lens[0]); l++) {
        int n = lens[l];
        float *a = mallocCheck((n + 1) * 4), *b = mallocCheck((n + 1) * 4), *e = mallocCheck((n + 1) * 4);
        fill_random(a, n, 3.0f), fill_random(b, n, 1.0f);
        double dot = 0, dabs = 0, mx = -INFINITY, z = 0, werr = 0;
        for (int i = 0; i < n; i++) dot += (double)a[i] * b[i], dabs += fabs((double)a[i] * b[i]), mx = a[i] > mx ? a[i] : mx;
        memcpy(e, a, n * 4);
        float m = max_f32(a, n);
        double zs = exp_shift_sum(e, n, m);
        for (int i = 0; i < n; i++) {
            double want = exp((double)(a[i] - m));  // the argument rounded to fp32 as exp_shift_sum gets it
            z += want;
            if (fabs(e[i] - want) > werr * want) werr = fabs(e[i] - want) / want;
        }
        double derr = fabs(dot_f32(a, b, n) - dot) / (dabs > 0 ? dabs : 1);
        int ok = derr < 1e-6 && (n == 0 ? m == -INFINITY : m == (float)mx) && werr < 1e-6 && fabs(zs - z) <= 1e-6 * (z > 0 ? z : 1);
        report(ok, "vector helpers, n=%d: dot_f32 rel %.1e, max_f32 %s, exp_shift_sum element rel %.1e, sum rel %.1e",
               n, derr, m == (float)mx || n == 0 ? "exact" : "WRONG", werr, n ? fabs(zs - z) / z : 0.0);
        free(a), free(b), free(e);
    }
}

static void test_matmul_fast_vs_ref(void) {
    // {N, C, OC}; 600 x 700 is more than GEMM_MC (512) of the small operand: it is packed in two chunks. K of
    // 1299 (forward, C) and 1301 (dinp, OC) is more than GEMM_KS K-slices: two rounds of packing, the last
    // slice 19 or 21 long (not a multiple of the transpose's 4 x 4 blocks), as are the odd N and OC (edge panels)
    const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {37, 70, 33}, {130, 300, 257}, {64, 768, 96}, {600, 40, 700},
                             {19, 1299, 45}, {40, 37, 1301}};
    // each shape twice: every thread packing its own copy of the small operand, then one copy shared
    for (int s = 0; s < 2 * (int)(sizeof shapes / sizeof shapes[0]); s++) {
        int shared = s % 2;
        gemm_own_team = shared ? 0 : GEMM_OWN_TEAM;
        size_t N = shapes[s / 2][0]; int C = shapes[s / 2][1], OC = shapes[s / 2][2];
        float *inp = mallocCheck(N * C * 4), *w = mallocCheck((size_t)OC * C * 4), *b = mallocCheck(OC * 4);
        float *dout = mallocCheck(N * OC * 4), *o1 = mallocCheck(N * OC * 4), *o2 = mallocCheck(N * OC * 4);
        fill_random(inp, N * C, 1.0f); fill_random(w, (size_t)OC * C, 1.0f); fill_random(b, OC, 1.0f); fill_random(dout, N * OC, 1.0f);
        float *di1 = callocCheck(N * C, 4), *di2 = callocCheck(N * C, 4), *dw1 = callocCheck((size_t)OC * C, 4),
              *dw2 = callocCheck((size_t)OC * C, 4), *db1 = callocCheck(OC, 4), *db2 = callocCheck(OC, 4);
        matmul_forward(o1, inp, w, b, N, C, OC);
        matmul_forward_ref(o2, inp, w, b, N, C, OC);
        matmul_backward(di1, dw1, db1, dout, inp, w, N, C, OC);
        matmul_backward_ref(di2, dw2, db2, dout, inp, w, N, C, OC);
        char shape[48];
        snprintf(shape, sizeof shape, "%zux%dx%d%s", N, C, OC, shared ? " shared" : "");
        // both sum the same products in different orders in fp32: sqrt(K) * 6e-8 relative, ~1e-6 at K=768
        check_tensor("mm fast out", shape, o1, o2, N * OC, 1e-5);
        check_tensor("mm fast dinp", shape, di1, di2, N * C, 1e-5);
        check_tensor("mm fast dw", shape, dw1, dw2, (size_t)OC * C, 1e-5);
        check_tensor("mm fast db", shape, db1, db2, OC, 1e-5);
        free(inp); free(w); free(b); free(dout); free(o1); free(o2); free(di1); free(di2); free(dw1); free(dw2); free(db1); free(db2);
    }
    gemm_own_team = GEMM_OWN_TEAM;
}

// ---------------------------------------------------------------------------- tier 2: PyTorch reference
// Tolerances, from the issue's targets and the errors measured (see the "used" column):
//   logits and loss 1e-5 relative; gradients 1e-4; AdamW trajectory (10 steps) 1e-4 on the losses and grad
//   norms, 2e-4 on each tensor's total update (normwise, see below). Worst seen over the base and method
//   references: logits 2.8e-6, gradients 5.3e-6, step losses and norms 1.6e-5, updates 8.6e-5; the multi-task
//   reference (steps alternating between three heads): step norms 2.0e-5, updates 1.3e-4.
// The reference is float64 PyTorch, so these bound our fp32 error against the exact answer.
#define TOL_LOGITS 1e-5
#define TOL_GRADS 1e-4
#define TOL_STEPS 1e-4
#define TOL_UPDATE 2e-4

static const char* meta_or_die(const SafeTensors* st, const char* key) {
    const char* v = st_meta(st, key);
    if (!v) failf("regenerate with dev/gen_reference.py", "%s: metadata '%s' missing", st->path, key);
    return v;
}

static float* read_ref(const SafeTensors* st, const char* name, size_t expect_numel) {
    const StTensor* t = st_find(st, name);
    if (!t) failf("regenerate with dev/gen_reference.py", "%s: tensor '%s' missing", st->path, name);
    if (st_numel(t) != expect_numel) failf(NULL, "%s: tensor '%s' has %zu elements, expected %zu", st->path, name, st_numel(t), expect_numel);
    float* out = (float*)mallocCheck(expect_numel * sizeof(float));
    st_read_f32(st, t, out);
    return out;
}

// Logits of the model's last forward, first V of each padded row, into a (B*T, V) buffer.
static float* unpadded_logits(const GPT* m) {
    size_t BT = (size_t)m->B * m->T;
    int V = m->config.V, Vp = m->config.Vp;
    float* out = (float*)mallocCheck(BT * V * sizeof(float));
    for (size_t i = 0; i < BT; i++) memcpy(out + i * V, m->acts.logits + i * Vp, (size_t)V * sizeof(float));
    return out;
}

static void test_reference(const char* tag) {
    char path[256], model_path[256], hf_path[256];
    snprintf(path, sizeof path, "ref/ref_%s.safetensors", tag);
    snprintf(model_path, sizeof model_path, "ref/gpt_%s.bin", tag);
    snprintf(hf_path, sizeof hf_path, "ref/hf_%s", tag);
    printf("-- PyTorch reference %s (%s, weights %s)\n", tag, path, model_path);
    SafeTensors st;
    st_open(&st, path);
    GPT model;
    load_model(&model, model_path, NULL);
    const GPTConfig* c = &model.config;
    int B = atoi(meta_or_die(&st, "B")), T = atoi(meta_or_die(&st, "T"));
    if (atoi(meta_or_die(&st, "L")) != c->L || atoi(meta_or_die(&st, "C")) != c->C || atoi(meta_or_die(&st, "V")) != c->V)
        failf("regenerate the reference files together", "%s does not match %s", path, model_path);
    size_t BT = (size_t)B * T;
    int* inputs = (int*)mallocCheck(BT * sizeof(int));
    int* targets = (int*)mallocCheck(BT * sizeof(int));
    st_read_i32(&st, st_find(&st, "inputs"), inputs);
    st_read_i32(&st, st_find(&st, "targets"), targets);

    // forward: logits and loss
    gpt_forward(&model, inputs, targets, B, T);
    float* ref_logits = read_ref(&st, "logits", BT * c->V);
    float* logits = unpadded_logits(&model);
    check_tensor("logits", "(B,T,V)", logits, ref_logits, BT * c->V, TOL_LOGITS);
    float* ref_loss = read_ref(&st, "loss", 1);
    check_tensor("loss", "()", &model.mean_loss, ref_loss, 1, TOL_LOGITS);

    // backward: every parameter gradient
    gpt_zero_grad(&model);
    gpt_backward(&model);
    for (int i = 0; i < NUM_PARAMS; i++) {
        if (!param_numel(c, i)) continue;  // fine-tuning tensors this config does not have
        char name[64];
        snprintf(name, sizeof name, "grad.%s", PARAM_TABLE[i].name);
        float* ref = read_ref(&st, name, param_numel(c, i));
        char label[32];
        snprintf(label, sizeof label, "d%s", PARAM_TABLE[i].name);
        char shape[24];
        snprintf(shape, sizeof shape, "(%s)", PARAM_TABLE[i].shape);
        check_tensor(label, shape, gpt_grad(&model, i, 0), ref, param_numel(c, i), TOL_GRADS);
        free(ref);
    }

    // invariant: the key bias gets no gradient (a shift shared by all keys leaves every softmax unchanged)
    double kmax = 0.0, qvmax = 0.0;
    for (int l = 0; l < c->L; l++)
        for (int j = 0; j < 3 * c->C; j++) {
            double v = fabs(gpt_grad(&model, PIDX(qkvb), 0)[(size_t)l * 3 * c->C + j]);
            if (j >= c->C && j < 2 * c->C) kmax = fmax(kmax, v);
            else qvmax = fmax(qvmax, v);
        }
    report(kmax <= 1e-5 * qvmax, "key-bias gradient is ~0: max %.1e vs q,v bias max %.1e (tol 1e-5 of it)", kmax, qvmax);

    // the Hugging Face copy of the same weights must give the same logits
    GPT hf;
    load_model(&hf, hf_path, NULL);
    gpt_forward(&hf, inputs, targets, B, T);
    float* hf_logits = unpadded_logits(&hf);
    check_tensor("hf logits", "(B,T,V)", hf_logits, ref_logits, BT * c->V, TOL_LOGITS);
    free(hf_logits);
    gpt_free(&hf);

    // 10 AdamW steps on the same batch, with clipping, weight decay and the schedule from the metadata
    int steps = atoi(meta_or_die(&st, "steps")), warmup = atoi(meta_or_die(&st, "warmup"));
    AdamWConfig opt = {0, (float)atof(meta_or_die(&st, "beta1")), (float)atof(meta_or_die(&st, "beta2")),
                       (float)atof(meta_or_die(&st, "eps")), (float)atof(meta_or_die(&st, "weight_decay"))};
    float lr = (float)atof(meta_or_die(&st, "lr")), clip = (float)atof(meta_or_die(&st, "grad_clip"));
    float min_frac = (float)atof(meta_or_die(&st, "min_lr_frac"));
    const char* sched_name = meta_or_die(&st, "schedule");
    Schedule sched = !strcmp(sched_name, "cosine") ? SCHED_COSINE : !strcmp(sched_name, "linear") ? SCHED_LINEAR : SCHED_CONSTANT;
    float* losses = (float*)mallocCheck(steps * sizeof(float));
    float* lrs = (float*)mallocCheck(steps * sizeof(float));
    float* norms = (float*)mallocCheck(steps * sizeof(float));
    int clipped = 0;
    float* initial = (float*)mallocCheck(model.num_parameters * sizeof(float));
    memcpy(initial, model.params_memory, model.num_parameters * sizeof(float));
    for (int s = 0; s < steps; s++) {
        gpt_forward(&model, inputs, targets, B, T);
        losses[s] = model.mean_loss;
        gpt_zero_grad(&model);
        gpt_backward(&model);
        norms[s] = gpt_clip_grad_norm(&model, clip);
        clipped += norms[s] > clip;
        opt.lr = lrs[s] = lr_at(s, lr, warmup, steps, sched, min_frac);
        gpt_adamw_update(&model, &opt, s + 1);
    }
    float* ref_losses = read_ref(&st, "step_loss", steps);
    float* ref_lrs = read_ref(&st, "step_lr", steps);
    float* ref_norms = read_ref(&st, "step_gradnorm", steps);
    check_tensor("step lr", sched_name, lrs, ref_lrs, steps, 1e-6);  // plain float arithmetic: ~1e-7
    check_tensor("step norm", "(10)", norms, ref_norms, steps, TOL_GRADS);
    check_tensor("step loss", "(10)", losses, ref_losses, steps, TOL_STEPS);
    report(clipped > 0 && clipped < steps + 1, "clipping active on %d of %d steps (clip=%g)", clipped, steps, clip);
    // Parameters after the 10 steps, judged on the update (final - initial) as a whole tensor:
    // |upd_ours - upd_ref| / |upd_ref| (L2 norms). Not elementwise, because Adam divides each gradient by its
    // own running RMS: an element whose gradient is ~0 (the key bias's is exactly 0, as softmax ignores a shift
    // shared by all keys) moves by lr * noise / (|noise| + eps) in fp32 and in float64 alike, so elementwise
    // its update is rounding noise made lr-sized. So the key bias is left out of qkvb's comparison, and checked
    // for what it is instead: its gradient is ~0 (above). A wrong update rule moves whole tensors: measured
    // errors are ~1e-4 and below, a wrong decay or bias correction gives > 1e-2.
    for (int i = 0; i < NUM_PARAMS; i++) {
        if (!param_numel(c, i)) continue;
        char name[64];
        snprintf(name, sizeof name, "final.%s", PARAM_TABLE[i].name);
        size_t n = param_numel(c, i);
        float* ref = read_ref(&st, name, n);
        const float* p0 = initial + (model.params.t[i] - model.params_memory);
        int is_qkvb = !strcmp(PARAM_TABLE[i].name, "qkvb");
        double dd = 0.0, du = 0.0;
        for (size_t j = 0; j < n; j++) {
            if (is_qkvb && j % (3 * c->C) >= (size_t)c->C && j % (3 * c->C) < 2 * (size_t)c->C) continue;  // key bias
            double uo = (double)model.params.t[i][j] - p0[j], ur = (double)ref[j] - p0[j];
            dd += (uo - ur) * (uo - ur);
            du += ur * ur;
        }
        double rel = sqrt(dd) / (sqrt(du) + 1e-30);
        report(rel <= TOL_UPDATE, "%-10s (%s)%s n=%zu  |update - ref| / |ref update| = %.1e  tol=%.0e  used %3.0f%%",
               PARAM_TABLE[i].name, PARAM_TABLE[i].shape, is_qkvb ? " q,v parts" : "", n, rel, TOL_UPDATE,
               100.0 * rel / TOL_UPDATE);
        free(ref);
    }
    // AdamW clears each gradient as it reads it (model.h, gpt_zero_grad), so the steps above passed with
    // gpt_zero_grad skipping its pass: the gradients are all 0 after a full update, and a partial one (ZeRO's
    // shard) leaves the rest for gpt_zero_grad to clear
    size_t nz = 0, n = model.num_trainable;
    for (size_t j = 0; j < n; j++) nz += model.grads_memory[j] != 0.0f;
    int flag_full = model.grads_zero;
    gpt_forward(&model, inputs, targets, B, T), gpt_zero_grad(&model), gpt_backward(&model);
    gpt_adamw_update_range(&model, &opt, steps + 1, 0, n / 2);
    size_t nz_lo = 0, nz_hi = 0;
    for (size_t j = 0; j < n; j++) *(j < n / 2 ? &nz_lo : &nz_hi) += model.grads_memory[j] != 0.0f;
    int flag_part = model.grads_zero;
    gpt_zero_grad(&model);
    size_t nz_after = 0;
    for (size_t j = 0; j < n; j++) nz_after += model.grads_memory[j] != 0.0f;
    report(nz == 0 && flag_full && nz_lo == 0 && nz_hi > 0 && !flag_part && nz_after == 0,
           "AdamW leaves the gradients zero: %zu nonzero of %zu after a full step; after a half-range step %zu in "
           "the range, %zu outside it, %zu after gpt_zero_grad", nz, n, nz_lo, nz_hi, nz_after);
    free(initial);
    free(losses); free(lrs); free(norms); free(ref_losses); free(ref_lrs); free(ref_norms);
    free(ref_logits); free(logits); free(ref_loss); free(inputs); free(targets);
    gpt_free(&model);
    st_close(&st);
}

// ---------------------------------------------------------------------------- tier 2b: fine-tuning methods
// dev/gen_reference_methods.py: the base model of config a plus each method's tensors (LoRA B nonzero, so
// every gradient is real), its trainable mask and LR scales. Same tolerances as the base model; frozen
// tensors must get no gradient buffer and stay bit-identical through the 10 steps.
static float meta_float(const SafeTensors* st, const char* key, float dflt) {
    const char* v = st_meta(st, key);
    return v ? (float)atof(v) : dflt;
}

// The 10 steps' losses and clipped gradient norms against a method reference's step_loss and step_gradnorm.
static void check_steps(const SafeTensors* st, const float* losses, const float* norms, int steps) {
    float* ref_losses = read_ref(st, "step_loss", steps);
    float* ref_norms = read_ref(st, "step_gradnorm", steps);
    check_tensor("step norm", "(10)", norms, ref_norms, steps, TOL_GRADS);
    check_tensor("step loss", "(10)", losses, ref_losses, steps, TOL_STEPS);
    free(ref_losses); free(ref_norms);
}

// Llama-style models: dev/gen_reference_llama.py's ref/llama_<name>.safetensors. There is no llama base model
// file, so each reference carries its model: the config in the metadata (arch=2, L, NH, NKV, C, F, V, Vp, maxT,
// rope_theta, norm_eps, rope_factor, untied, qkv_bias) and every base weight as "param.<name>" in our layout.
// This builds that model; test_method then holds it to the file like any method reference (logits, loss, every
// gradient, 10 AdamW steps, the same tolerances). Worst seen over the eight files (./test_gpt, 2-core AMD EPYC Zen 5):
// logits 1.8e-6, gradients 3.9e-6, step norms 2.7e-5, updates 3.7e-5: within the GPT-2 margins above. A RoPE
// turning the wrong way, kv head h % NKV for h / (NH/NKV), eps 1e-5 for the file's, LoRA v written into k's
// columns, or rope_factor ignored each fail 26 to 221 of these checks.
static void llama_from_ref(GPT* m, const SafeTensors* st) {
    GPTConfig c = {.arch = ARCH_LLAMA, .L = atoi(meta_or_die(st, "L")), .NH = atoi(meta_or_die(st, "NH")),
                   .n_kv_heads = atoi(meta_or_die(st, "NKV")), .C = atoi(meta_or_die(st, "C")), .F = atoi(meta_or_die(st, "F")),
                   .V = atoi(meta_or_die(st, "V")), .maxT = atoi(meta_or_die(st, "maxT")),
                   .rope_theta = (float)atof(meta_or_die(st, "rope_theta")), .norm_eps = (float)atof(meta_or_die(st, "norm_eps")),
                   .rope_factor = (float)atof(meta_or_die(st, "rope_factor")), .untied = atoi(meta_or_die(st, "untied")),
                   .qkv_bias = atoi(meta_or_die(st, "qkv_bias"))};
    c.Vp = pad_vocab(c.V);
    if (c.Vp != atoi(meta_or_die(st, "Vp"))) failf("regenerate with dev/gen_reference_llama.py", "%s: Vp %s, model.h pads V=%d to %d", st->path, meta_or_die(st, "Vp"), c.V, c.Vp);
    gpt_build(m, c);
    for (int i = 0; i < NUM_PARAMS; i++) {  // the base tensors this config has (a llama has no wpe, no LayerNorm biases, ...)
        if (!param_numel(&c, i)) continue;
        char name[64];
        snprintf(name, sizeof name, "param.%s", PARAM_TABLE[i].name);
        float* v = read_ref(st, name, param_numel(&c, i));
        memcpy(m->params.t[i], v, param_numel(&c, i) * sizeof(float));
        free(v);
    }
}

// method: a file of dev/gen_reference_methods.py ("lora": ref/method_lora.safetensors), or a path (the
// encoder's files, dev/gen_reference_encoder.py, whose metadata make the base model of config a an encoder).
static void test_method(const char* method) {
    char path[256];
    if (strchr(method, '/')) snprintf(path, sizeof path, "%s", method);
    else snprintf(path, sizeof path, "ref/method_%s.safetensors", method);
    printf("-- PyTorch reference, method %s (%s)\n", method, path);
    SafeTensors st;
    st_open(&st, path);
    GPT model;
    if (meta_float(&st, "arch", ARCH_GPT2) == ARCH_LLAMA) llama_from_ref(&model, &st);  // the model is in the file
    else load_model(&model, "ref/gpt_a.bin", NULL);
    model.config.arch = (int)meta_float(&st, "arch", ARCH_GPT2);
    model.config.mask_id = (int)meta_float(&st, "mask_id", 0);
    GPTConfig c = model.config;
    c.lora_r = (int)meta_float(&st, "lora_r", 0);
    c.lora_alpha = meta_float(&st, "lora_alpha", 0);
    c.lora_targets = (int)meta_float(&st, "lora_targets", 0);
    c.lora_first = 0;
    c.lora_last = c.L - 1;
    c.adapter_dim = (int)meta_float(&st, "adapter_dim", 0);
    c.prefix_len = (int)meta_float(&st, "prefix_len", 0);
    c.num_classes = (int)meta_float(&st, "num_classes", 0);
    c.num_tags = (int)meta_float(&st, "num_tags", 0);
    uint64_t rng = 1;
    gpt_set_peft(&model, c, &rng);
    model.label_smoothing = meta_float(&st, "label_smoothing", 0);
    int B = atoi(meta_or_die(&st, "B")), T = atoi(meta_or_die(&st, "T")), K = c.num_classes, E = c.num_tags, L = c.L;
    size_t BT = (size_t)B * T;
    for (int i = NUM_BASE_PARAMS; i < NUM_PARAMS; i++) {
        if (!param_numel(&c, i)) continue;
        char name[64];
        snprintf(name, sizeof name, "param.%s", PARAM_TABLE[i].name);
        float* v = read_ref(&st, name, param_numel(&c, i));
        memcpy(model.params.t[i], v, param_numel(&c, i) * sizeof(float));
        free(v);
    }
    for (int i = 0; i < NUM_PARAMS; i++) {
        if (!param_numel(&c, i)) continue;
        int nl = param_per_layer(i) ? L : 1;
        char name[64];
        snprintf(name, sizeof name, "trainable.%s", PARAM_TABLE[i].name);
        const StTensor* tt = st_find(&st, name);
        if (!tt) failf("regenerate with dev/gen_reference_methods.py", "%s: %s missing", path, name);
        int tr[64];
        st_read_i32(&st, tt, tr);
        snprintf(name, sizeof name, "lr_scale.%s", PARAM_TABLE[i].name);
        float* sc = read_ref(&st, name, (size_t)nl);
        for (int l = 0; l < nl; l++) {
            gpt_set_trainable(&model, i, l, tr[l]);
            model.lr_scale[(size_t)i * L + l] = sc[l];
        }
        free(sc);
    }
    int* inputs = (int*)mallocCheck(BT * sizeof(int));
    st_read_i32(&st, st_find(&st, "inputs"), inputs);
    int *targets = NULL, *lengths = NULL, *labels = NULL;
    if (K) {
        lengths = (int*)mallocCheck(B * sizeof(int));
        labels = (int*)mallocCheck(B * sizeof(int));
        st_read_i32(&st, st_find(&st, "lengths"), lengths);
        st_read_i32(&st, st_find(&st, "labels"), labels);
        model.class_weights = read_ref(&st, "class_weights", (size_t)K);
    } else {  // next-token targets, or with a token head the tags of the positions (-1: not scored)
        targets = (int*)mallocCheck(BT * sizeof(int));
        st_read_i32(&st, st_find(&st, E ? "tags" : "targets"), targets);
    }
#define FORWARD() (K ? gpt_forward_cls(&model, inputs, lengths, labels, B, T) : E ? gpt_forward_tok(&model, inputs, targets, NULL, B, T) \
                                                                              : gpt_forward(&model, inputs, targets, B, T))
    FORWARD();
    size_t nlogits = K ? (size_t)B * K : E ? BT * E : BT * c.V;
    float* ref_logits = read_ref(&st, "logits", nlogits);
    float* logits = K ? model.acts.cls_logits : E ? model.acts.tok_logits : unpadded_logits(&model);
    check_tensor("logits", K ? "(B,K)" : E ? "(B,T,E)" : "(B,T,V)", logits, ref_logits, nlogits, TOL_LOGITS);
    float* ref_loss = read_ref(&st, "loss", 1);
    check_tensor("loss", "()", &model.mean_loss, ref_loss, 1, TOL_LOGITS);
    gpt_zero_grad(&model);
    gpt_backward(&model);
    int frozen_ok = 1, ntr = 0;
    size_t closed_form = 0;
    for (int i = 0; i < NUM_PARAMS; i++) {
        size_t n = param_numel(&c, i), ns = slice_numel(&c, i);
        if (!n) continue;
        int nl = param_per_layer(i) ? L : 1, any = 0;
        for (int l = 0; l < nl; l++) {
            int tr = model.trainable[(size_t)i * L + l];
            any |= tr;
            closed_form += tr ? ns : 0;
            if (!tr && gpt_grad(&model, i, l)) frozen_ok = 0;  // frozen: no gradient memory at all
        }
        if (!any) continue;
        ntr++;
        char name[64], label[32], shape[24];
        snprintf(name, sizeof name, "grad.%s", PARAM_TABLE[i].name);
        float* ref = read_ref(&st, name, n);
        for (int l = 0; l < nl; l++) {
            float* g = gpt_grad(&model, i, l);
            if (!g) continue;
            snprintf(label, sizeof label, nl > 1 ? "d%s[%d]" : "d%s", PARAM_TABLE[i].name, l);
            snprintf(shape, sizeof shape, "(%s)", PARAM_TABLE[i].shape);
            check_tensor(label, shape, g, ref + (size_t)l * ns, ns, TOL_GRADS);
        }
        free(ref);
    }
    report(frozen_ok && closed_form == model.num_trainable,
           "frozen slices have no gradient memory; trainable floats %zu = closed form %zu (%d tensors)",
           model.num_trainable, closed_form, ntr);
    // 10 AdamW steps
    float* initial = (float*)mallocCheck(model.num_parameters * sizeof(float));
    memcpy(initial, model.params_memory, model.num_parameters * sizeof(float));
    int steps = atoi(meta_or_die(&st, "steps")), warmup = atoi(meta_or_die(&st, "warmup"));
    AdamWConfig opt = {0, meta_float(&st, "beta1", 0), meta_float(&st, "beta2", 0), meta_float(&st, "eps", 0),
                       meta_float(&st, "weight_decay", 0)};
    float lr = meta_float(&st, "lr", 0), clip = meta_float(&st, "grad_clip", 0);
    float losses[16], norms[16];
    for (int s = 0; s < steps && s < 16; s++) {
        FORWARD();
        losses[s] = model.mean_loss;
        gpt_zero_grad(&model);
        gpt_backward(&model);
        norms[s] = gpt_clip_grad_norm(&model, clip);
        opt.lr = lr_at(s, lr, warmup, steps, SCHED_COSINE, meta_float(&st, "min_lr_frac", 0));
        gpt_adamw_update(&model, &opt, s + 1);
    }
#undef FORWARD
    check_steps(&st, losses, norms, steps);
    int frozen_same = 1;
    for (int i = 0; i < NUM_PARAMS; i++) {
        size_t n = param_numel(&c, i), ns = slice_numel(&c, i);
        if (!n) continue;
        int nl = param_per_layer(i) ? L : 1, any = 0;
        const float* p0 = initial + (model.params.t[i] - model.params_memory);
        for (int l = 0; l < nl; l++) {
            if (model.trainable[(size_t)i * L + l]) any = 1;
            else if (memcmp(model.params.t[i] + (size_t)l * ns, p0 + (size_t)l * ns, ns * sizeof(float))) frozen_same = 0;
        }
        if (!any) continue;
        char name[64];
        snprintf(name, sizeof name, "final.%s", PARAM_TABLE[i].name);
        float* ref = read_ref(&st, name, n);
        // The key bias is left out, as in test_reference. Llama (Qwen2's biases): RoPE turns it by the key's
        // position, so it has a gradient, but its slowly turning pairs (t theta^(-2i/hs) ~ 0 over T positions)
        // are again nearly a shift shared by all keys: gradients ~1e-7 beside 1e-2 (ref/llama_qwen2), the size
        // of fp32's error in them, so Adam's lr-sized steps there are noise. Its gradient is checked above.
        int is_qkvb = !strcmp(PARAM_TABLE[i].name, "qkvb");
        size_t QKV = (size_t)qkv_width(&c), KVC = (size_t)kv_width(&c);
        double dd = 0.0, du = 0.0;
        for (int l = 0; l < nl; l++) {
            if (!model.trainable[(size_t)i * L + l]) continue;
            for (size_t j = (size_t)l * ns; j < (size_t)(l + 1) * ns; j++) {
                if (is_qkvb && j % QKV >= (size_t)c.C && j % QKV < c.C + KVC) continue;  // key bias
                double uo = (double)model.params.t[i][j] - p0[j], ur = (double)ref[j] - p0[j];
                dd += (uo - ur) * (uo - ur);
                du += ur * ur;
            }
        }
        double rel = sqrt(dd) / (sqrt(du) + 1e-30);
        report(rel <= TOL_UPDATE, "%-13s (%s) |update - ref| / |ref update| = %.1e  tol=%.0e  used %3.0f%%",
               PARAM_TABLE[i].name, PARAM_TABLE[i].shape, rel, TOL_UPDATE, 100.0 * rel / TOL_UPDATE);
        free(ref);
    }
    report(frozen_same, "frozen tensors bit-identical after %d steps", steps);
    free(initial); free(ref_logits); free(ref_loss);
    if (!K && !E) free(logits);
    free(inputs); free(targets); free(lengths); free(labels);
    gpt_free(&model);
    st_close(&st);
}

// ---------------------------------------------------------------------------- tier 3b: fine-tuning invariants
static float* lm_logits_copy(GPT* m, const int* x, int B, int T) {
    gpt_forward(m, x, NULL, B, T);
    size_t n = (size_t)B * T * m->config.Vp;
    float* out = (float*)mallocCheck(n * sizeof(float));
    memcpy(out, m->acts.logits, n * sizeof(float));
    return out;
}

// ---------------------------------------------------------------------------- tier 2c: multi-task
// dev/gen_reference_methods.py's multi-task reference: one trunk, a 2-class task (rows 0-1 of cls_w), a
// 3-class task (rows 2-4) and an lm task (the tied LM head), full fine-tuning. Each task's logits and loss;
// the gradient of sum_t w_t loss_t (one forward/backward per task, loss_scale = w_t, accumulated); then 10
// AdamW steps, step s on task s % 3 alone. Same tolerances as the single-task references.
static void mt_set_tasks(GPT* m, const int* classes, int n) {
    m->tasks = (TaskHead*)callocCheck((size_t)n, sizeof(TaskHead));
    m->num_tasks = n;
    for (int t = 0, k0 = 0; t < n; k0 += classes[t], t++) {
        snprintf(m->tasks[t].name, 64, "t%d", t);
        m->tasks[t].kind = classes[t] ? DATA_CLS : DATA_LM;
        m->tasks[t].k0 = classes[t] ? k0 : 0;
        m->tasks[t].nk = classes[t];
    }
}

static void test_method_multitask(void) {
    const char* path = "ref/method_multitask.safetensors";
    printf("-- PyTorch reference, multi-task: two class heads and the LM head on one trunk (%s)\n", path);
    SafeTensors st;
    st_open(&st, path);
    GPT model;
    load_model(&model, "ref/gpt_a.bin", NULL);
    int classes[3], B = atoi(meta_or_die(&st, "B")), T = atoi(meta_or_die(&st, "T"));
    float w[3];
    sscanf(meta_or_die(&st, "classes"), "%d,%d,%d", &classes[0], &classes[1], &classes[2]);
    sscanf(meta_or_die(&st, "weights"), "%f,%f,%f", &w[0], &w[1], &w[2]);
    GPTConfig c = model.config;
    c.num_classes = classes[0] + classes[1] + classes[2];
    c.lm_head_too = 1;
    uint64_t rng = 1;
    gpt_set_peft(&model, c, &rng);
    mt_set_tasks(&model, classes, 3);
    model.label_smoothing = meta_float(&st, "label_smoothing", 0);
    float* cw = read_ref(&st, "param.cls_w", param_numel(&c, PIDX(cls_w)));
    memcpy(model.params.cls_w, cw, param_numel(&c, PIDX(cls_w)) * sizeof(float));
    free(cw);
    int *x[3], *len[2], *lab[2], *y = (int*)mallocCheck((size_t)B * T * sizeof(int));
    char name[64];
    for (int t = 0; t < 3; t++) {
        x[t] = (int*)mallocCheck((size_t)B * T * sizeof(int));
        snprintf(name, sizeof name, "inputs.%d", t);
        st_read_i32(&st, st_find(&st, name), x[t]);
        if (t == 2) break;
        len[t] = (int*)mallocCheck((size_t)B * sizeof(int));
        lab[t] = (int*)mallocCheck((size_t)B * sizeof(int));
        snprintf(name, sizeof name, "lengths.%d", t);
        st_read_i32(&st, st_find(&st, name), len[t]);
        snprintf(name, sizeof name, "labels.%d", t);
        st_read_i32(&st, st_find(&st, name), lab[t]);
    }
    st_read_i32(&st, st_find(&st, "targets.2"), y);
#define MT_FORWARD(t) (tasks_use_head(&model, t), (t) == 2 ? gpt_forward(&model, x[2], y, B, T) : gpt_forward_cls(&model, x[t], len[t], lab[t], B, T))
    gpt_zero_grad(&model);
    for (int t = 0; t < 3; t++) {
        MT_FORWARD(t);
        size_t nl = t == 2 ? (size_t)B * T * c.V : (size_t)B * classes[t];
        snprintf(name, sizeof name, "logits.%d", t);
        float* ref = read_ref(&st, name, nl);
        float* ours = t == 2 ? unpadded_logits(&model) : model.acts.cls_logits;
        char label[32];
        snprintf(label, sizeof label, "task %d logits", t);
        check_tensor(label, t == 2 ? "(B,T,V)" : t ? "(B,3)" : "(B,2)", ours, ref, nl, TOL_LOGITS);
        if (t == 2) free(ours);
        free(ref);
        snprintf(name, sizeof name, "loss.%d", t);
        ref = read_ref(&st, name, 1);
        snprintf(label, sizeof label, "task %d loss", t);
        check_tensor(label, "()", &model.mean_loss, ref, 1, TOL_LOGITS);
        free(ref);
        model.loss_scale = w[t];
        gpt_backward(&model);
        model.loss_scale = 1.0f;
    }
    for (int i = 0; i < NUM_PARAMS; i++) {
        size_t n = param_numel(&c, i);
        if (!n) continue;
        snprintf(name, sizeof name, "grad.%s", PARAM_TABLE[i].name);
        float* ref = read_ref(&st, name, n);
        char label[32], shape[24];
        snprintf(label, sizeof label, "d%s", PARAM_TABLE[i].name);
        snprintf(shape, sizeof shape, "(%s)", PARAM_TABLE[i].shape);
        check_tensor(label, shape, gpt_grad(&model, i, 0), ref, n, TOL_GRADS);  // the slices are packed in order
        free(ref);
    }
    int steps = atoi(meta_or_die(&st, "steps")), warmup = atoi(meta_or_die(&st, "warmup"));
    AdamWConfig opt = {0, meta_float(&st, "beta1", 0), meta_float(&st, "beta2", 0), meta_float(&st, "eps", 0),
                       meta_float(&st, "weight_decay", 0)};
    float lr = meta_float(&st, "lr", 0), clip = meta_float(&st, "grad_clip", 0), losses[16], norms[16];
    float* initial = (float*)mallocCheck(model.num_parameters * sizeof(float));
    memcpy(initial, model.params_memory, model.num_parameters * sizeof(float));
    for (int s = 0; s < steps && s < 16; s++) {
        MT_FORWARD(s % 3);
        losses[s] = model.mean_loss;
        gpt_zero_grad(&model);
        model.loss_scale = w[s % 3];
        gpt_backward(&model);
        model.loss_scale = 1.0f;
        norms[s] = gpt_clip_grad_norm(&model, clip);
        opt.lr = lr_at(s, lr, warmup, steps, SCHED_COSINE, meta_float(&st, "min_lr_frac", 0));
        gpt_adamw_update(&model, &opt, s + 1);
    }
#undef MT_FORWARD
    check_steps(&st, losses, norms, steps);
    double worst = 0.0;
    for (int i = 0; i < NUM_PARAMS; i++) {  // each tensor's total update, normwise, as in test_method
        size_t n = param_numel(&c, i);
        if (!n) continue;
        snprintf(name, sizeof name, "final.%s", PARAM_TABLE[i].name);
        float* ref = read_ref(&st, name, n);
        const float* p0 = initial + (model.params.t[i] - model.params_memory);
        double dd = 0.0, du = 0.0;
        for (size_t j = 0; j < n; j++) {
            if (i == PIDX(qkvb) && j % (3 * c.C) >= (size_t)c.C && j % (3 * c.C) < 2 * (size_t)c.C) continue;  // key bias
            double uo = (double)model.params.t[i][j] - p0[j], ur = (double)ref[j] - p0[j];
            dd += (uo - ur) * (uo - ur);
            du += ur * ur;
        }
        worst = fmax(worst, sqrt(dd) / (sqrt(du) + 1e-30));
        free(ref);
    }
    report(worst <= TOL_UPDATE, "10 multi-task AdamW steps: every tensor's update within %.0e of the reference's (worst %.1e, used %.0f%%)",
           TOL_UPDATE, worst, 100.0 * worst / TOL_UPDATE);
    free(initial); free(y);
    for (int t = 0; t < 3; t++) free(x[t]);
    for (int t = 0; t < 2; t++) free(len[t]), free(lab[t]);
    gpt_free(&model);
    st_close(&st);
}

// A task's rows of the class head: the slice cls_w + k0*C run as a K_t-class head gives, bit for bit, the
// logits, loss and gradients of a model whose whole head is those rows; the other tasks' rows get exactly zero
// gradient; and the trunk's gradient through a class range agrees with finite differences.
static void test_class_range(void) {
    GPT m, s;
    load_model(&m, "ref/gpt_a.bin", NULL);
    load_model(&s, "ref/gpt_a.bin", NULL);
    GPTConfig c = m.config, cs = s.config;
    int classes[3] = {2, 3, 0};
    c.num_classes = 5, c.lm_head_too = 1, cs.num_classes = 3;
    uint64_t rng = 9, rng2 = 9;
    gpt_set_peft(&m, c, &rng);
    gpt_set_peft(&s, cs, &rng2);
    fill_random(m.params.cls_w, 5 * (size_t)c.C, 0.3f);
    memcpy(s.params.cls_w, m.params.cls_w + 2 * (size_t)c.C, 3 * (size_t)c.C * sizeof(float));  // rows 2-4
    mt_set_tasks(&m, classes, 3);
    m.label_smoothing = s.label_smoothing = 0.1f;
    int B = 3, T = 12, x[36], len[3] = {12, 4, 7}, lab[3] = {2, 0, 1};
    for (int i = 0; i < B * T; i++) x[i] = (int)(random_u32(&rng) % (uint32_t)c.V);
    tasks_use_head(&m, 1);
    gpt_forward_cls(&m, x, len, lab, B, T);
    gpt_forward_cls(&s, x, len, lab, B, T);
    gpt_zero_grad(&m), gpt_zero_grad(&s);
    gpt_backward(&m), gpt_backward(&s);
    int same = m.mean_loss == s.mean_loss && !memcmp(m.acts.cls_logits, s.acts.cls_logits, 9 * sizeof(float));
    for (int i = 0; i < NUM_PARAMS && same; i++)
        if (i != PIDX(cls_w) && param_numel(&cs, i)) same = !memcmp(gpt_grad(&m, i, 0), gpt_grad(&s, i, 0), param_numel(&cs, i) * sizeof(float));
    const float* dm = gpt_grad(&m, PIDX(cls_w), 0);
    same = same && !memcmp(dm + 2 * (size_t)c.C, gpt_grad(&s, PIDX(cls_w), 0), 3 * (size_t)c.C * sizeof(float));
    int others_zero = 1;
    for (size_t j = 0; j < 2 * (size_t)c.C; j++) others_zero &= dm[j] == 0.0f;
    report(same, "class range [2, 5) of a 5-row head = a 3-class head of those rows: logits, loss, every gradient bit-identical");
    report(others_zero, "class range [2, 5): task 0's rows 0-1 of cls_w get exactly zero gradient");
    // finite differences of the loss through the range: the largest gradient of each tensor (as test_model_dropout_fd)
    int bad = 0, checked = 0;
    double worst = 0.0;
    for (int i = 0; i < NUM_PARAMS; i++) {
        const float* g = gpt_grad(&m, i, 0);
        size_t n = param_numel(&c, i);
        if (!g || !n) continue;
        size_t k = 0;
        for (size_t j = 1; j < n; j++) if (fabsf(g[j]) > fabsf(g[k])) k = j;
        if (fabsf(g[k]) < 1e-2f) continue;
        float orig = m.params.t[i][k], h = 1e-2f;
        m.params.t[i][k] = orig + h;
        gpt_forward_cls(&m, x, len, lab, B, T);
        double lp = m.mean_loss;
        m.params.t[i][k] = orig - h;
        gpt_forward_cls(&m, x, len, lab, B, T);
        double lmn = m.mean_loss;
        m.params.t[i][k] = orig;
        double num = (lp - lmn) / ((double)(orig + h) - (double)(orig - h)), rel = fabs(num - g[k]) / fabs(g[k]);
        worst = fmax(worst, rel);
        bad += rel > 1e-2;
        checked++;
    }
    // tolerance: as test_model_dropout_fd (h = 1e-2 on an fp32 forward, central difference: ~1e-3 seen)
    report(!bad && checked >= 10, "class range [2, 5): %d tensors' largest gradients vs finite differences, worst rel %.1e (tol 1e-2)", checked, worst);
    // the LM head of the same model: what an lm task runs; its logits equal a plain LM's
    tasks_use_head(&m, 2);
    int y[36];
    for (int i = 0; i < B * T; i++) y[i] = x[(i + 1) % (B * T)];
    gpt_forward(&m, x, y, B, T);
    GPT lmo;
    load_model(&lmo, "ref/gpt_a.bin", NULL);
    gpt_forward(&lmo, x, y, B, T);
    report(m.mean_loss == lmo.mean_loss && !memcmp(m.acts.logits, lmo.acts.logits, (size_t)B * T * c.Vp * sizeof(float)),
           "an lm task of a multi-task model runs the tied LM head: logits and loss bit-identical to the plain LM");
    gpt_free(&lmo), gpt_free(&m), gpt_free(&s);
}

static void test_peft_invariants(void) {
    printf("-- fine-tuning invariants\n");
    int B = 2, T = 16;
    int x[32];
    uint64_t rng = 11;
    GPT m;
    load_model(&m, "ref/gpt_a.bin", NULL);
    for (int i = 0; i < B * T; i++) x[i] = (int)(random_u32(&rng) % (uint32_t)m.config.V);
    size_t nl = (size_t)B * T * m.config.Vp;
    float* base = lm_logits_copy(&m, x, B, T);
    // LoRA at init (B = 0) and adapters at init (up = 0) leave the model exactly as it was
    GPTConfig c = m.config;
    c.lora_r = 4, c.lora_alpha = 8.0f, c.lora_targets = LORA_QKV | LORA_PROJ | LORA_FC | LORA_FCPROJ;
    c.lora_first = 0, c.lora_last = c.L - 1;
    gpt_set_peft(&m, c, &rng);
    float* l0 = lm_logits_copy(&m, x, B, T);
    report(!memcmp(l0, base, nl * sizeof(float)), "LoRA at init gives the base logits bit for bit");
    GPT ma;
    load_model(&ma, "ref/gpt_a.bin", NULL);
    GPTConfig ca = ma.config;
    ca.adapter_dim = 8;
    gpt_set_peft(&ma, ca, &rng);
    float* a0 = lm_logits_copy(&ma, x, B, T);
    report(!memcmp(a0, base, nl * sizeof(float)), "adapters at init give the base logits bit for bit");
    // trained-looking LoRA: B nonzero
    for (int i = PIDX(lora_qkv_b); i <= PIDX(lora_fcproj_b); i += 2)
        fill_random(m.params.t[i], param_numel(&m.config, i), 0.05f);
    float* lora = lm_logits_copy(&m, x, B, T);
    // adapter file round trip: save just the LoRA tensors, apply them to a fresh base
    save_checkpoint_kind(&m, "test_tmp/adapter.bin", NULL, CKPT_ADAPTER);
    GPT mb;
    load_model(&mb, "ref/gpt_a.bin", NULL);
    load_adapter(&mb, "test_tmp/adapter.bin");
    float* rt = lm_logits_copy(&mb, x, B, T);
    FILE* f = fopen("test_tmp/adapter.bin", "rb");
    long long asz = f ? file_size(f) : 0;
    if (f) fclose(f);
    report(!memcmp(rt, lora, nl * sizeof(float)), "adapter file (%lld bytes, base is %zu) on a fresh base: same logits bit for bit",
           asz, num_base_parameters(&m.config) * 4);
    // merge: W += s B A, then the plain model gives the LoRA model's logits; unmerge restores W
    size_t nb = num_base_parameters(&m.config);
    float* w0 = (float*)mallocCheck(nb * sizeof(float));
    memcpy(w0, m.params_memory, nb * sizeof(float));
    gpt_lora_merge(&m, 1.0f);
    float* w1 = (float*)mallocCheck(nb * sizeof(float));
    memcpy(w1, m.params_memory, nb * sizeof(float));
    GPT plain;
    GPTConfig pc = {.maxT = c.maxT, .V = c.V, .Vp = c.Vp, .L = c.L, .NH = c.NH, .C = c.C};  // no LoRA
    gpt_build(&plain, pc);
    memcpy(plain.params_memory, m.params_memory, nb * sizeof(float));
    float* merged = lm_logits_copy(&plain, x, B, T);
    // two fp32 paths to the same sums: (x W^T) + s (x A^T) B^T versus x (W + s B A)^T, ~1e-6 apart
    check_tensor("merged", "(B,T,Vp)", merged, lora, nl, 1e-5);
    gpt_lora_merge(&m, -1.0f);
    // Each element is rounded once by the merge and once by the unmerge, each time at the size of the
    // merged value, so it comes back within 2 ulps of max(|W|, |W + delta|): the ratio below is at most 1.
    double worst = 0.0;
    for (size_t i = 0; i < nb; i++) {
        double ulp = ldexp(1.0, -23) * fmax(fabs(w0[i]), fabs(w1[i]));
        double d = fabs((double)m.params_memory[i] - w0[i]);
        if (d > 0 && d / (2.0 * ulp) > worst) worst = d / (2.0 * ulp);
    }
    report(worst <= 1.0, "merge then unmerge restores W to fp32 rounding: worst change %.2f of its 2-ulp bound", worst);
    free(base); free(l0); free(a0); free(lora); free(rt); free(merged); free(w0); free(w1);
    gpt_free(&m); gpt_free(&ma); gpt_free(&mb); gpt_free(&plain);
}

// Gradient accumulation: two micro-batches of 2 rows, each weighted by its share of the targets, give the
// gradient of one batch of 4 rows. Targets are partly ignored so the shares are unequal (5/8 and 3/8 style).
static void test_accumulation(void) {
    GPT m;
    load_model(&m, "ref/gpt_a.bin", NULL);
    int B = 4, T = 16, x[64], y[64];
    uint64_t rng = 21;
    for (int i = 0; i < B * T; i++) {
        x[i] = (int)(random_u32(&rng) % (uint32_t)m.config.V);
        y[i] = (i < 2 * T && i % 3 == 0) ? -1 : (int)(random_u32(&rng) % (uint32_t)m.config.V);  // rows 0-1 sparser
    }
    gpt_forward(&m, x, y, B, T);
    float full_loss = m.mean_loss;
    gpt_zero_grad(&m);
    gpt_backward(&m);
    float* g1 = (float*)mallocCheck(m.num_trainable * sizeof(float));
    memcpy(g1, m.grads_memory, m.num_trainable * sizeof(float));
    double total = 0, cnt[2] = {0, 0}, loss = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 2 * T; i++) cnt[k] += y[k * 2 * T + i] >= 0;
    total = cnt[0] + cnt[1];
    gpt_zero_grad(&m);
    for (int k = 0; k < 2; k++) {
        gpt_forward(&m, x + k * 2 * T, y + k * 2 * T, 2, T);
        loss += cnt[k] / total * m.mean_loss;
        m.loss_scale = (float)(cnt[k] / total);
        gpt_backward(&m);
    }
    m.loss_scale = 1.0f;
    char shape[48];
    snprintf(shape, sizeof shape, "shares %.0f/%.0f", cnt[0], cnt[1]);
    // the same sums in a different grouping: fp32 rounding, ~1e-6
    check_tensor("accum grads", shape, m.grads_memory, g1, m.num_trainable, 1e-5);
    float l = (float)loss;
    check_tensor("accum loss", "()", &l, &full_loss, 1, 1e-6);
    free(g1);
    gpt_free(&m);
}

// Classification metrics against a case computed by hand. Confusion [gold][pred] for K=3:
//   gold 0: 5 0 1   gold 1: 2 3 0   gold 2: 0 0 0   (class 2 never occurs but is predicted once)
// class 0: tp 5, fp 2, fn 1 -> P 5/7, R 5/6, F1 = 2*(5/7)(5/6)/((5/7)+(5/6)) = 10/13
// class 1: tp 3, fp 0, fn 2 -> P 1, R 3/5, F1 = 3/4;  class 2: tp 0, fp 1, fn 0 -> P 0, R 0 (no support), F1 0
// accuracy = 8/11 = micro F1; macro F1 = (10/13 + 3/4 + 0) / 3
static void test_metrics(void) {
    size_t cm[9] = {5, 0, 1, 2, 3, 0, 0, 0, 0};
    ClsMetrics r = cls_metrics(cm, 3);
    double want_macro = (10.0 / 13 + 0.75 + 0.0) / 3;
    int ok = fabs(r.accuracy - 8.0 / 11) < 1e-12 && fabs(r.micro_f1 - 8.0 / 11) < 1e-12 &&
             fabs(r.precision[0] - 5.0 / 7) < 1e-12 && fabs(r.recall[0] - 5.0 / 6) < 1e-12 &&
             fabs(r.f1[0] - 10.0 / 13) < 1e-12 && fabs(r.f1[1] - 0.75) < 1e-12 && r.f1[2] == 0.0 &&
             r.support[0] == 6 && r.support[1] == 5 && r.support[2] == 0 && fabs(r.macro_f1 - want_macro) < 1e-12;
    report(ok, "metrics on a hand-computed confusion matrix: acc %.4f macro F1 %.4f (want %.4f) micro F1 %.4f",
           r.accuracy, r.macro_f1, want_macro, r.micro_f1);
}

// The whole model with dropout on (embeddings, attention, residual branches) and LoRA dropout, against a
// central difference of the model's own loss under the same masks (same seed). One element per tensor,
// the one with the largest gradient; h = 1e-2, where fp32 rounding of the ~6.2 loss contributes ~1e-4 to
// the quotient and curvature less, so 1e-2 relative to the gradient. A mask that differed between forward
// and backward would be off by ~100%.
static void test_model_dropout_fd(void) {
    GPT m;
    load_model(&m, "ref/gpt_a.bin", NULL);
    GPTConfig c = m.config;
    c.lora_r = 4, c.lora_alpha = 8.0f, c.lora_targets = LORA_QKV | LORA_FC, c.lora_first = 0, c.lora_last = c.L - 1;
    uint64_t rng = 5;
    gpt_set_peft(&m, c, &rng);
    for (int i = PIDX(lora_qkv_b); i <= PIDX(lora_fcproj_b); i += 2) fill_random(m.params.t[i], param_numel(&c, i), 0.05f);
    m.dropout = 0.1f, m.lora_dropout = 0.1f, m.training = 1, m.dropout_seed = 1234567;
    int B = 2, T = 16, x[32], y[32];
    for (int i = 0; i < B * T; i++) x[i] = (int)(random_u32(&rng) % (uint32_t)c.V), y[i] = (int)(random_u32(&rng) % (uint32_t)c.V);
    gpt_forward(&m, x, y, B, T);
    gpt_zero_grad(&m);
    gpt_backward(&m);
    int bad = 0, checked = 0;
    double worst = 0.0;
    for (int i = 0; i < NUM_PARAMS; i++) {
        float* g = gpt_grad(&m, i, 0);
        size_t n = param_numel(&c, i);
        if (!g || !n) continue;
        size_t k = 0;
        for (size_t j = 1; j < n; j++) if (fabsf(g[j]) > fabsf(g[k])) k = j;
        if (fabsf(g[k]) < 1e-2f) continue;
        float orig = m.params.t[i][k], h = 1e-2f;
        m.params.t[i][k] = orig + h;
        gpt_forward(&m, x, y, B, T);
        double lp = m.mean_loss;
        m.params.t[i][k] = orig - h;
        gpt_forward(&m, x, y, B, T);
        double lm = m.mean_loss;
        m.params.t[i][k] = orig;
        double num = (lp - lm) / ((double)(orig + h) - (double)(orig - h)), rel = fabs(num - g[k]) / fabs(g[k]);
        worst = fmax(worst, rel);
        bad += rel > 1e-2;
        checked++;
    }
    report(!bad && checked >= 10, "model with dropout 0.1 + LoRA dropout: %d tensors' largest gradients vs finite differences, worst rel %.1e (tol 1e-2)",
           checked, worst);
    gpt_free(&m);
}

// The whole Llama-style model against finite differences of its loss: for every tensor, the largest entry of its
// gradient (all layers). Three configs: (a) untied head, Qwen2's q/k/v biases, LoRA on all 7 targets, full
// fine-tuning on top (base and LoRA both train); (b) tied, multi-query (NKV = 1), adapters and a prefix, with
// dropout; (c) the class head on rows of different lengths. In fp32 with h = 1e-2 the worst seen is 4.3e-4
// relative; 1e-2 is the tolerance (a wrong sign, scale or index is off by 1e-1 or more).
static void test_llama_fd(void) {
    for (int v = 0; v < 3; v++) {
        GPTConfig c = {.maxT = 8, .V = 37, .Vp = 64, .L = 2, .NH = 4, .C = 16, .F = 24, .arch = ARCH_LLAMA, .n_kv_heads = 2,
                       .rope_theta = 5e5f, .norm_eps = 1e-6f};
        if (v == 0) c.untied = 1, c.qkv_bias = 1, c.lora_r = 2, c.lora_alpha = 3.0f, c.lora_first = 0, c.lora_last = 1,
                    c.lora_targets = LORA_Q | LORA_K | LORA_V | LORA_PROJ | LORA_GATE | LORA_UP | LORA_FCPROJ;
        if (v == 1) c.n_kv_heads = 1, c.adapter_dim = 4, c.prefix_len = 2;
        if (v == 2) c.num_classes = 3;
        GPT m;
        gpt_build(&m, c);
        uint64_t rng = 31 + (uint64_t)v;
        gpt_init_random(&m, &rng);
        for (int i = NUM_BASE_PARAMS; i < NUM_PARAMS; i++)
            if (!param_is_base(i)) fill_random(m.params.t[i], param_numel(&c, i), 0.3f);  // LoRA B, adapter up != 0
        // weights 0.3 (not 0.02: every gradient then stands well above fp32's noise in the differences), nonzero
        // biases, norm weights away from 1, embeddings at unit scale (RMSNorm's input: h = 1e-2 is a small step)
        for (int i = 0; i < NUM_PARAMS; i++)
            if (param_is_base(i)) fill_random(m.params.t[i], param_is_base(i) && i != PIDX(wte) ? slice_numel(&c, i) * (param_per_layer(i) ? c.L : 1) : (size_t)c.V * c.C,
                                              i == PIDX(wte) ? 1.0f : PARAM_TABLE[i].decay ? 0.3f : 0.5f);
        if (v == 1) m.dropout = 0.1f, m.training = 1, m.dropout_seed = 99;
        int B = 2, T = 8, x[16], y[16], lens[2] = {8, 5}, labels[2] = {2, 0};
        for (int i = 0; i < B * T; i++) x[i] = (int)(random_u32(&rng) % 37u), y[i] = (int)(random_u32(&rng) % 37u);
#define LLAMA_FWD() (v == 2 ? gpt_forward_cls(&m, x, lens, labels, B, T) : gpt_forward(&m, x, y, B, T))
        LLAMA_FWD();
        gpt_zero_grad(&m);
        gpt_backward(&m);
        int bad = 0, checked = 0;
        double worst = 0.0;
        const char* worst_name = "";
        for (int i = 0; i < NUM_PARAMS; i++) {
            float* g = gpt_grad(&m, i, 0);
            size_t n = param_numel(&c, i);
            if (!g || !n) continue;
            size_t k = 0;
            for (size_t j = 1; j < n; j++) if (fabsf(g[j]) > fabsf(g[k])) k = j;
            if (fabsf(g[k]) < 1e-3f) { bad++; printf("  %s: largest gradient only %.1e\n", PARAM_TABLE[i].name, g[k]); continue; }
            float orig = m.params.t[i][k], h = 1e-2f;
            m.params.t[i][k] = orig + h;
            LLAMA_FWD();
            double lp = m.mean_loss;
            m.params.t[i][k] = orig - h;
            LLAMA_FWD();
            double lm = m.mean_loss;
            m.params.t[i][k] = orig;
            double num = (lp - lm) / ((double)(orig + h) - (double)(orig - h)), rel = fabs(num - g[k]) / fabs(g[k]);
            if (rel > worst) worst = rel, worst_name = PARAM_TABLE[i].name;
            bad += rel > 1e-2;
            checked++;
        }
#undef LLAMA_FWD
        const char* what[] = {"untied, q/k/v biases, LoRA x7 + full", "tied, NKV=1, adapters, prefix, dropout", "class head, lengths 8 and 5"};
        int want[] = {24, 18, 9};  // the tensors with elements: 10 base + 14 LoRA; 8 base + 8 adapter + 2 prefix; 8 + cls_w
        report(!bad && checked == want[v], "llama model (%s): %d tensors' largest gradients vs finite differences, worst rel %.1e (%s; tol 1e-2)",
               what[v], checked, worst, worst_name);
        gpt_free(&m);
    }
}

// ---------------------------------------------------------------------------- tier 3: loaders, invariants
// The named fields of ParameterTensors must sit at the index PARAM_TABLE gives their name.
static void test_param_names(void) {
#define FIELD(f) {#f, offsetof(ParameterTensors, f) / sizeof(float*)}
    const struct { const char* name; size_t index; } fields[NUM_PARAMS] = {
        FIELD(wte), FIELD(wpe), FIELD(ln1w), FIELD(ln1b), FIELD(qkvw), FIELD(qkvb), FIELD(attprojw), FIELD(attprojb),
        FIELD(ln2w), FIELD(ln2b), FIELD(fcw), FIELD(fcb), FIELD(fcprojw), FIELD(fcprojb), FIELD(lnfw), FIELD(lnfb),
        FIELD(lora_qkv_a), FIELD(lora_qkv_b), FIELD(lora_proj_a), FIELD(lora_proj_b), FIELD(lora_fc_a),
        FIELD(lora_fc_b), FIELD(lora_fcproj_a), FIELD(lora_fcproj_b), FIELD(adpa_dw), FIELD(adpa_db), FIELD(adpa_uw),
        FIELD(adpa_ub), FIELD(adpm_dw), FIELD(adpm_db), FIELD(adpm_uw), FIELD(adpm_ub), FIELD(prefix_k),
        FIELD(prefix_v), FIELD(cls_w), FIELD(tok_w), FIELD(tok_b), FIELD(lm_head), FIELD(lora_q_a), FIELD(lora_q_b),
        FIELD(lora_k_a), FIELD(lora_k_b), FIELD(lora_v_a), FIELD(lora_v_b), FIELD(lora_gate_a), FIELD(lora_gate_b),
        FIELD(lora_up_a), FIELD(lora_up_b)};
#undef FIELD
    int ok = 1;
    for (int i = 0; i < NUM_PARAMS; i++) ok &= !strcmp(PARAM_TABLE[fields[i].index].name, fields[i].name);
    report(ok, "ParameterTensors field names match PARAM_TABLE order (%d tensors)", NUM_PARAMS);
}

// Our checkpoint: save, load, bit-identical parameters and optimizer state.
static void test_checkpoint_roundtrip(void) {
    GPT m;
    GPTConfig c = {.maxT = 16, .V = 50, .Vp = 64, .L = 2, .NH = 2, .C = 8};
    gpt_build(&m, c);
    uint64_t rng = 7;
    gpt_init_random(&m, &rng);
    const char* path = "test_tmp/roundtrip.bin";
    save_checkpoint(&m, path, NULL);
    GPT m2;
    load_model(&m2, path, NULL);
    int same = m2.num_parameters == m.num_parameters &&
               !memcmp(m.params_memory, m2.params_memory, m.num_parameters * sizeof(float)) &&
               !memcmp(&m.config, &m2.config, sizeof(GPTConfig));
    report(same, "checkpoint round trip: %zu parameters bit-identical", m.num_parameters);
    gpt_free(&m);
    gpt_free(&m2);
}

// Runs a shell command, returns its exit status and the first line of output that contains `needle`
// (or the last line) in out.
static int run_cmd(const char* cmd, const char* needle, char* out, size_t cap) {
    char full[2048];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE* p = popen(full, "r");
    if (!p) return -1;
    char line[1024];
    out[0] = 0;
    int found = 0;
    while (fgets(line, sizeof line, p)) {
        if (!found) snprintf(out, cap, "%s", line);
        if (needle && strstr(line, needle)) found = 1;
    }
    int status = pclose(p);
    size_t n = strlen(out);
    if (n && out[n - 1] == '\n') out[n - 1] = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Reads a whole file; *n is its size (0 and NULL when missing).
static unsigned char* read_whole(const char* path, size_t* n) {
    FILE* f = fopen(path, "rb");
    *n = 0;
    if (!f) return NULL;
    *n = (size_t)file_size(f);
    unsigned char* b = (unsigned char*)mallocCheck(*n + 1);
    if (fread(b, 1, *n, f) != *n) *n = 0;
    b[*n] = 0;
    fclose(f);
    return b;
}

static void write_tokens(const char* path, const int* ids, size_t n, int V) {
    FILE* f = fopen_check(path, "wb");
    int32_t h[256] = {TOKENS_MAGIC, 1, 2, V, (int32_t)n, 0};
    fwrite(h, sizeof h, 1, f);
    for (size_t i = 0; i < n; i++) {
        uint16_t t = (uint16_t)ids[i];
        fwrite(&t, 2, 1, f);
    }
    fclose(f);
}

static void copy_truncated(const char* src, const char* dst, long keep) {
    FILE* f = fopen_check(src, "rb");
    FILE* g = fopen_check(dst, "wb");
    char buf[4096];
    long left = keep;
    size_t n;
    while (left > 0 && (n = fread(buf, 1, left < 4096 ? (size_t)left : 4096, f)) > 0) {
        fwrite(buf, 1, n, g);
        left -= (long)n;
    }
    fclose(f);
    fclose(g);
}

// Expects `cmd` to exit non-zero with an "error:" line containing `needle`.
static void expect_error(const char* what, const char* cmd, const char* needle) {
    char out[1024];
    int rc = run_cmd(cmd, "error:", out, sizeof out);
    int ok = rc != 0 && strstr(out, "error:") && strstr(out, needle);
    report(ok, "bad input, %s: exit %d, \"%s\"", what, rc, out);
}

// Reads the "loss" values of a JSONL log.
static int read_log_losses(const char* path, double* out, int cap) {
    FILE* f = fopen(path, "r");
    if (!f) return 0;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < cap) {
        char* s = strstr(line, "\"loss\": ");
        if (s) out[n++] = strtod(s + 8, NULL);
    }
    fclose(f);
    return n;
}

static void test_cli(void) {
    printf("-- command line: resume, eval, bad input (runs ./train)\n");
    // a small random token file, V=64
    int n = 3000, V = 64;
    int* ids = (int*)mallocCheck(n * sizeof(int));
    uint64_t rng = 3;
    for (int i = 0; i < n; i++) ids[i] = (int)(random_u32(&rng) % (i % 7 == 0 ? V : 8));  // some structure to learn
    write_tokens("test_tmp/tok.bin", ids, n, V);
    const char* common = "./train --init 2,2,16 --vocab 64 --max-seq 32 --train test_tmp/tok.bin --val test_tmp/tok.bin "
                         "--batch 2 --seq 16 --steps 10 --lr 1e-2 --warmup 2 --eval-every 5 --val-batches 2 --seed 5";
    char cmd[1024], out[1024];
    snprintf(cmd, sizeof cmd, "%s --log test_tmp/full.jsonl --out test_tmp/full", common);
    mkdir("test_tmp/full", 0755);
    mkdir("test_tmp/part", 0755);
    int rc1 = run_cmd(cmd, "done:", out, sizeof out);
    snprintf(cmd, sizeof cmd, "%s --log test_tmp/part.jsonl --out test_tmp/part --stop-at 4", common);
    int rc2 = run_cmd(cmd, "done:", out, sizeof out);
    snprintf(cmd, sizeof cmd, "%s --log test_tmp/part.jsonl --out test_tmp/part --resume test_tmp/part", common);
    int rc3 = run_cmd(cmd, "done:", out, sizeof out);
    double a[16], b[16];
    int na = read_log_losses("test_tmp/full.jsonl", a, 16), nb = read_log_losses("test_tmp/part.jsonl", b, 16);
    int same = rc1 == 0 && rc2 == 0 && rc3 == 0 && na == 10 && nb == 10;
    for (int i = 0; same && i < 10; i++) same = a[i] == b[i];
    report(same, "resume: 4 steps + resume to 10 gives the same 10 losses as one run (exit %d %d %d, %d and %d logged)",
           rc1, rc2, rc3, na, nb);
    // the final models are bit-identical too
    GPT m1, m2;
    load_model(&m1, "test_tmp/full/model.bin", NULL);
    load_model(&m2, "test_tmp/part/model.bin", NULL);
    report(!memcmp(m1.params_memory, m2.params_memory, m1.num_parameters * 4), "resume: final parameters bit-identical");
    gpt_free(&m1);
    gpt_free(&m2);
    // the same with LoRA and LoRA dropout: the dropout masks come from the checkpointed RNG
    const char* lcommon = "--method lora --lora-rank 4 --lora-dropout 0.2 --lora-targets qkv,fc";
    mkdir("test_tmp/lfull", 0755);
    mkdir("test_tmp/lpart", 0755);
    snprintf(cmd, sizeof cmd, "%s %s --log test_tmp/lfull.jsonl --out test_tmp/lfull", common, lcommon);
    rc1 = run_cmd(cmd, "done:", out, sizeof out);
    snprintf(cmd, sizeof cmd, "%s %s --log test_tmp/lpart.jsonl --out test_tmp/lpart --stop-at 6", common, lcommon);
    rc2 = run_cmd(cmd, "done:", out, sizeof out);
    snprintf(cmd, sizeof cmd, "%s %s --log test_tmp/lpart.jsonl --out test_tmp/lpart --resume test_tmp/lpart", common, lcommon);
    rc3 = run_cmd(cmd, "done:", out, sizeof out);
    na = read_log_losses("test_tmp/lfull.jsonl", a, 16), nb = read_log_losses("test_tmp/lpart.jsonl", b, 16);
    same = rc1 == 0 && rc2 == 0 && rc3 == 0 && na == 10 && nb == 10;
    for (int i = 0; same && i < 10; i++) same = a[i] == b[i];
    report(same, "resume with LoRA + dropout: 6 steps + resume gives the same 10 losses (exit %d %d %d)", rc1, rc2, rc3);
    snprintf(cmd, sizeof cmd, "%s --method lora --lora-rank 4 --lora-targets qkv,fc --log test_tmp/lnodrop.jsonl", common);
    run_cmd(cmd, "done:", out, sizeof out);
    int nd = read_log_losses("test_tmp/lnodrop.jsonl", b, 16), differs = 0;
    for (int i = 0; i < nd && i < na; i++) differs |= a[i] != b[i];
    report(nd == 10 && differs, "LoRA dropout 0.2 changes the training losses (it is really applied)");
    // eval prints loss and ppl
    rc1 = run_cmd("./train eval --model test_tmp/full/model.bin --data test_tmp/tok.bin --batch 2 --seq 16", "\"ppl\"", out, sizeof out);
    double loss = 0, ppl = 0;
    char* s = strstr(out, "\"loss\": ");
    if (s) loss = strtod(s + 8, NULL);
    s = strstr(out, "\"ppl\": ");
    if (s) ppl = strtod(s + 7, NULL);
    report(rc1 == 0 && loss > 0 && fabs(ppl - exp(loss)) < 1e-3 * ppl, "eval: %s", out);

    // bad input: each a one-line error and a non-zero exit
    ids[10] = V + 5;
    write_tokens("test_tmp/badtok.bin", ids, n, V);
    expect_error("token id >= V", "./train --init 1,1,8 --vocab 64 --max-seq 16 --train test_tmp/badtok.bin --batch 2 --seq 8 --steps 50 --shuffle 0",
                 "out of range");
    copy_truncated("ref/gpt_a.bin", "test_tmp/trunc.bin", 100000);
    expect_error("truncated llm.c model", "./train eval --model test_tmp/trunc.bin --data test_tmp/tok.bin", "expected");
    copy_truncated("test_tmp/tok.bin", "test_tmp/trunctok.bin", 2000);
    expect_error("truncated token file", "./train --init 1,1,8 --vocab 64 --train test_tmp/trunctok.bin", "holds only");
    FILE* f = fopen_check("test_tmp/magic.bin", "wb");
    int32_t junk[256] = {12345, 1};
    fwrite(junk, sizeof junk, 1, f);
    fclose(f);
    expect_error("wrong magic (model)", "./train eval --model test_tmp/magic.bin --data test_tmp/tok.bin", "unknown model format");
    expect_error("wrong magic (tokens)", "./train --init 1,1,8 --vocab 64 --train test_tmp/magic.bin", "magic number 12345");
    copy_truncated("ref/ref_a.safetensors", "test_tmp/trunc.safetensors", 5000);
    expect_error("truncated safetensors", "./train eval --model test_tmp/trunc.safetensors --data test_tmp/tok.bin", "safetensors");
    // shape mismatch: a checkpoint whose parameter table disagrees with its header
    GPT m;
    GPTConfig c = {.maxT = 16, .V = 50, .Vp = 64, .L = 1, .NH = 2, .C = 8};
    gpt_build(&m, c);
    save_checkpoint(&m, "test_tmp/shape.bin", NULL);
    gpt_free(&m);
    f = fopen_check("test_tmp/shape.bin", "r+b");
    int32_t C2 = 16;
    fseek(f, 7 * 4, SEEK_SET);  // header[7] = C
    fwrite(&C2, 4, 1, f);
    fclose(f);
    expect_error("shape mismatch", "./train eval --model test_tmp/shape.bin --data test_tmp/tok.bin", "elements, expected");
    f = fopen("test_tmp/plain_file", "wb");
    fclose(f);
    expect_error("unwritable --out", "./train --init 1,1,8 --vocab 64 --train test_tmp/tok.bin --batch 2 --seq 8 --steps 1 --out test_tmp/plain_file/dir",
                 "exists and is not a folder");
    expect_error("unknown flag", "./train --nope 1", "unknown flag");
    expect_error("NaN loss", "./train --init 1,1,8 --vocab 64 --train test_tmp/tok.bin --batch 2 --seq 8 --steps 20 --lr 1000 --grad-clip 0 --schedule constant",
                 "loss is");
    free(ids);
}

// A small classification dataset through dataset.h's writer: random tokens, K=3 labels (the label is the
// first token mod 3, so there is something to learn).
static void write_cls_dataset(const char* path, int n, int V, int K) {
    DsWriter w;
    char err[256];
    if (ds_writer_open(&w, path, EXAMPLES_MAGIC, DS_CLS, V, K, err, sizeof err)) failf(NULL, "%s", err);
    uint64_t rng = 9;
    for (int e = 0; e < n; e++) {
        int len = 3 + (int)(random_u32(&rng) % 10), ids[16];
        for (int i = 0; i < len; i++) ids[i] = (int)(random_u32(&rng) % (uint32_t)V);
        ds_write_example(&w, ids, (size_t)len, ids[0] % K, NULL);
    }
    if (ds_writer_close(&w, err, sizeof err)) failf(NULL, "%s", err);
}

// A small SFT dataset: a prompt of 2-5 tokens, then a response (mask 1) that repeats the prompt.
static long write_sft_dataset(const char* path, int n, int V) {
    long masked = 0;
    DsWriter w;
    char err[256];
    if (ds_writer_open(&w, path, EXAMPLES_MAGIC, DS_SFT, V, 0, err, sizeof err)) failf(NULL, "%s", err);
    uint64_t rng = 13;
    for (int e = 0; e < n; e++) {
        int np = 2 + (int)(random_u32(&rng) % 4), ids[16];
        unsigned char mask[16] = {0};
        for (int i = 0; i < np; i++) ids[i] = (int)(random_u32(&rng) % (uint32_t)V);
        for (int i = 0; i < np; i++) ids[np + i] = ids[i], mask[np + i] = 1;
        ds_write_example(&w, ids, (size_t)(2 * np), np, mask);
        masked += np;
    }
    if (ds_writer_close(&w, err, sizeof err)) failf(NULL, "%s", err);
    return masked;
}

static long long output_number(const char* cmd, const char* key) {
    char out[1024];
    if (run_cmd(cmd, key, out, sizeof out) != 0) return -1;
    const char* s = strstr(out, key);
    return s ? atoll(s + strlen(key)) : -1;
}


static void test_cli_methods(void) {
    printf("-- command line: fine-tuning methods (runs ./train)\n");
    mkdir("test_tmp/base", 0755);
    mkdir("test_tmp/lora", 0755);
    mkdir("test_tmp/cls", 0755);
    char out[1024];
    int rc = run_cmd("./train --init 2,2,16 --vocab 64 --max-seq 32 --train test_tmp/tok.bin --batch 2 --seq 16 --steps 2 "
                     "--out test_tmp/base", "done:", out, sizeof out);
    // LoRA r=4 on qkv and proj of L=2, C=16: per layer r*C + 3C*r (qkv) + r*C + C*r (proj) = 384, so 768
    long long ntr = output_number("./train --model test_tmp/base/model.bin --train test_tmp/tok.bin --batch 2 --seq 16 "
                                  "--steps 3 --method lora --lora-rank 4 --lora-targets qkv,proj --out test_tmp/lora",
                                  "trainable: ");
    report(rc == 0 && ntr == 768, "LoRA trainable parameters printed %lld = closed form 2*(4*16 + 48*4 + 4*16 + 16*4) = 768", ntr);
    char e1[1024], e2[1024];
    int r1 = run_cmd("./train eval --model test_tmp/lora/model.bin --data test_tmp/tok.bin --batch 2 --seq 16", "loss", e1, sizeof e1);
    int r2 = run_cmd("./train eval --model test_tmp/base/model.bin --adapter test_tmp/lora/adapter.bin --data test_tmp/tok.bin "
                     "--batch 2 --seq 16", "loss", e2, sizeof e2);
    report(r1 == 0 && r2 == 0 && !strcmp(e1, e2), "base + adapter.bin evaluates exactly as the saved model: %s", e2);
    // classification with LoRA: the head is added for the data's 3 labels and always trains
    write_cls_dataset("test_tmp/cls.ds", 64, 64, 3);
    rc = run_cmd("./train --model test_tmp/base/model.bin --train test_tmp/cls.ds --val test_tmp/cls.ds --batch 4 --seq 16 "
                 "--steps 4 --method lora --lora-rank 2 --class-weights auto --label-smoothing 0.1 --out test_tmp/cls",
                 "done:", out, sizeof out);
    report(rc == 0, "classification + LoRA trains: %s", out);
    rc = run_cmd("./train eval --model test_tmp/cls/model.bin --data test_tmp/cls.ds --batch 5 --seq 16", "accuracy", out, sizeof out);
    report(rc == 0 && strstr(out, "\"examples\": 64"), "classification eval counts every example (64, batch 5): %s", out);
    // SFT with adapters: loss only on the response tokens
    long masked = write_sft_dataset("test_tmp/sft.ds", 48, 64);
    mkdir("test_tmp/sft", 0755);
    char before[1024];
    run_cmd("./train eval --model test_tmp/base/model.bin --data test_tmp/sft.ds --batch 4 --seq 16", "loss", before, sizeof before);
    rc = run_cmd("./train --model test_tmp/base/model.bin --train test_tmp/sft.ds --batch 4 --seq 16 --steps 30 --lr 1e-2 "
                 "--method adapter --adapter-dim 8 --out test_tmp/sft", "done:", out, sizeof out);
    char after[1024];
    int rc2 = run_cmd("./train eval --model test_tmp/base/model.bin --adapter test_tmp/sft/adapter.bin --data test_tmp/sft.ds "
                      "--batch 4 --seq 16", "loss", after, sizeof after);
    double lb = strtod(strstr(before, "\"loss\": ") ? strstr(before, "\"loss\": ") + 8 : "0", NULL);
    double la = strtod(strstr(after, "\"loss\": ") ? strstr(after, "\"loss\": ") + 8 : "0", NULL);
    report(rc == 0 && rc2 == 0 && la < lb, "SFT + adapters: response loss %.4f -> %.4f after 30 steps", lb, la);
    const char* tk = strstr(after, "\"tokens\": ");
    report(tk && atol(tk + 10) == masked, "SFT eval takes the loss on exactly the %ld response tokens: %s", masked, after);
    // early stopping: a too-high learning rate makes validation accuracy fall after the first evaluation; the
    // run stops after 2 evaluations without improvement, best.bin is the model of the best evaluation, and
    // the test metric is computed with it
    mkdir("test_tmp/es", 0755);
    char esout[1024], beval[1024];
    rc = run_cmd("./train --model test_tmp/base/model.bin --train test_tmp/cls.ds --val test_tmp/cls.ds --test test_tmp/cls.ds "
                 "--batch 4 --seq 16 --steps 60 --lr 3e-2 --eval-every 3 --val-batches 0 --early-stop 2 --metric accuracy "
                 "--out test_tmp/es", "test (best", esout, sizeof esout);
    rc2 = run_cmd("./train eval --model test_tmp/es/best.bin --data test_tmp/cls.ds --batch 4 --seq 16", "accuracy", beval, sizeof beval);
    const char* ta = strstr(esout, "accuracy ");
    const char* ba = strstr(beval, "\"accuracy\": ");
    report(rc == 0 && rc2 == 0 && strstr(esout, "step 3)") && ta && ba && fabs(atof(ta + 9) - atof(ba + 12)) < 1e-9,
           "early stopping keeps the best model: %s | best.bin eval accuracy %.6f", esout, ba ? atof(ba + 12) : -1.0);
    // the sweep driver on a tiny grid: 4 runs, one fails at start (seq 64 > maxT 32) and is recorded,
    // the best on validation gets the one test evaluation, a second invocation resumes (runs nothing)
    const char* sw = "./train sweep --grid \"lr=1e-3,1e-2 seq=16,64\" --out test_tmp/sw --model test_tmp/base/model.bin "
                     "--train test_tmp/cls.ds --val test_tmp/cls.ds --test test_tmp/cls.ds --batch 4 --steps 6 --method lora "
                     "--metric accuracy --eval-every 3 --val-batches 0";
    system("rm -rf test_tmp/sw");
    rc = run_cmd(sw, "best:", out, sizeof out);
    FILE* rf = fopen("test_tmp/sw/results.csv", "r");
    int rows = 0, failed = 0, tested = 0;
    char line[512];
    while (rf && fgets(line, sizeof line, rf)) {
        rows++;
        failed += strstr(line, ",failed,") != NULL;
        tested += line[strlen(line) - 2] != ',';  // the test column is filled
    }
    if (rf) fclose(rf);
    report(rc == 0 && rows == 5 && failed == 2 && tested == 2 && !strstr(out, "nan"), "sweep: %d rows (header + 4), %d failed runs recorded, test for the best only: %s",
           rows, failed, out);
    char again[1024];
    run_cmd(sw, "done before", again, sizeof again);
    report(strstr(again, "done before") != NULL, "sweep resumes: finished runs are not run again (%s)", again);
    expect_error("sweep grid with an unknown flag", "./train sweep --grid \"lr=1e-3 nope=3\" --out test_tmp/sw_bad --model test_tmp/base/model.bin "
                 "--train test_tmp/cls.ds --val test_tmp/cls.ds", "unknown flag '--nope'");
    {  // error analysis written with --test: its accuracy is the test accuracy of the same (best) model
        FILE* ef = fopen("test_tmp/es/errors.md", "r");
        char l1[256] = "", l2[256] = "", l3[256] = "";
        if (ef) {
            if (!fgets(l1, sizeof l1, ef) || !fgets(l2, sizeof l2, ef) || !fgets(l3, sizeof l3, ef)) l3[0] = 0;
            fclose(ef);
        }
        const char* acc = strstr(l3, "accuracy ");
        report(acc && ta && fabs(atof(acc + 9) - atof(ta + 9)) < 1e-4, "errors.md agrees with the test accuracy: %s", l3);
        // the run report: the same test accuracy, and a confusion matrix whose cells add up to the examples
        size_t rn = 0;
        unsigned char* rep = read_whole("test_tmp/es/report.md", &rn);
        const char* racc = rep ? strstr((const char*)rep, "accuracy **") : NULL;
        const char* conf = rep ? strstr((const char*)rep, "Confusion matrix") : NULL;
        const char* nex = rep ? strstr((const char*)rep, " examples\n") : NULL;
        long cells = 0;
        for (const char* p = conf; p && (p = strstr(p, "| **")); p++) {  // each row: | **name** | n | n | ... |
            const char* q = strstr(p + 4, "** |") + 4;
            while (*q == ' ' || isdigit((unsigned char)*q) || *q == '|') {
                if (isdigit((unsigned char)*q)) cells += strtol(q, (char**)&q, 10);
                else q++;
            }
        }
        long examples = 0;
        if (nex) {  // "... over N examples"
            const char* o = nex;
            while (o > (const char*)rep && isdigit((unsigned char)o[-1])) o--;
            examples = atol(o);
        }
        report(racc && ta && fabs(atof(racc + 11) - atof(ta + 9)) < 1e-4 && cells == examples && examples > 0,
               "report.md: test accuracy %.4f as printed, confusion cells sum to %ld of %ld examples",
               racc ? atof(racc + 11) : -1.0, cells, examples);
        free(rep);
    }
    expect_error("metric the task lacks",  "./train --model test_tmp/base/model.bin --train test_tmp/tok.bin --val test_tmp/tok.bin "
                 "--seq 16 --metric f1 --early-stop 2", "--metric f1 for a lm dataset");
    // added tokens: a dataset made for V=70 grows a V=64 model; old rows unchanged, new rows the mean
    {
        int ids[400];
        uint64_t r2 = 17;
        for (int i = 0; i < 400; i++) ids[i] = (int)(random_u32(&r2) % 70);
        write_tokens("test_tmp/tok70.bin", ids, 400, 70);
        mkdir("test_tmp/grow", 0755);
        rc = run_cmd("./train --model test_tmp/base/model.bin --train test_tmp/tok70.bin --batch 2 --seq 16 --steps 1 --lr 0 "
                     "--out test_tmp/grow", "done:", out, sizeof out);
        GPT g0, g1;
        load_model(&g0, "test_tmp/base/model.bin", NULL);
        load_model(&g1, "test_tmp/grow/model.bin", NULL);
        int C = g0.config.C, ok = rc == 0 && g1.config.V == 70 &&
                                  !memcmp(g0.params.wte, g1.params.wte, (size_t)64 * C * sizeof(float));
        for (int j = 0; ok && j < C; j++) {
            double s = 0;
            for (int v = 0; v < 64; v++) s += g0.params.wte[(size_t)v * C + j];
            for (int v = 64; v < 70; v++) ok &= fabs(g1.params.wte[(size_t)v * C + j] - s / 64) < 1e-6;
        }
        report(ok, "a dataset with 6 added tokens grows the model to V=%d: old rows kept, new rows the mean", g1.config.V);
        gpt_free(&g0);
        gpt_free(&g1);
    }
    // text in, text out: a byte-tokenizer model samples from a text prompt
    mkdir("test_tmp/v257", 0755);
    run_cmd("./train --init 1,1,8 --vocab 257 --max-seq 32 --train test_tmp/tok.bin --batch 2 --seq 16 --steps 1 --out test_tmp/v257",
            "done:", out, sizeof out);
    rc = run_cmd("./train sample --model test_tmp/v257/model.bin --tokenizer bytes --prompt \"hi there\" --gen 4 --temperature 0",
                 "hi there", out, sizeof out);
    report(rc == 0 && !strncmp(out, "hi there", 8), "sample --prompt text with --tokenizer: \"%s\"", out);
    // export: Hugging Face safetensors and llm.c files load back to the same model; LoRA merged on export
    {
        mkdir("test_tmp/hf_export", 0755);
        mkdir("test_tmp/hf_cls", 0755);
        int r1 = run_cmd("./train export --model test_tmp/base/model.bin --format safetensors --out test_tmp/hf_export", "wrote", out, sizeof out);
        int r2 = run_cmd("./train export --model test_tmp/base/model.bin --format llmc --out test_tmp/export.llmc.bin", "wrote", out, sizeof out);
        int r3 = run_cmd("./train export --model test_tmp/base/model.bin --adapter test_tmp/lora/adapter.bin --format safetensors "
                         "--out test_tmp/hf_export_lora --merge 1", "wrote", out, sizeof out);
        int r4 = run_cmd("./train export --model test_tmp/cls/model.bin --format safetensors --out test_tmp/hf_cls --merge 1", "wrote", out, sizeof out);
        GPT m0, m1, m2;
        load_model(&m0, "test_tmp/base/model.bin", NULL);
        load_model(&m1, "test_tmp/hf_export", NULL);
        load_model(&m2, "test_tmp/export.llmc.bin", NULL);
        size_t nb = num_base_parameters(&m0.config);
        int same = r1 == 0 && r2 == 0 && m1.num_parameters == nb && !memcmp(m0.params_memory, m1.params_memory, nb * 4) &&
                   !memcmp(m0.params_memory, m2.params_memory, nb * 4);
        report(same, "export to HF safetensors and llm.c, load back: every parameter bit-identical (%zu)", nb);
        // the merged LoRA export evaluates like base + adapter
        char e1[512], e2[512];
        run_cmd("./train eval --model test_tmp/base/model.bin --adapter test_tmp/lora/adapter.bin --data test_tmp/tok.bin --batch 2 --seq 16", "loss", e1, sizeof e1);
        run_cmd("./train eval --model test_tmp/hf_export_lora --data test_tmp/tok.bin --batch 2 --seq 16", "loss", e2, sizeof e2);
        double l1 = strstr(e1, "\"loss\": ") ? atof(strstr(e1, "\"loss\": ") + 8) : -1, l2 = strstr(e2, "\"loss\": ") ? atof(strstr(e2, "\"loss\": ") + 8) : -2;
        report(r3 == 0 && fabs(l1 - l2) <= 1e-5 * fabs(l1), "LoRA merged on export evaluates as base + adapter: %.6f vs %.6f", l1, l2);
        run_cmd("./train eval --model test_tmp/cls/model.bin --data test_tmp/cls.ds --batch 4 --seq 16", "accuracy", e1, sizeof e1);
        run_cmd("./train eval --model test_tmp/hf_cls --data test_tmp/cls.ds --batch 4 --seq 16", "accuracy", e2, sizeof e2);
        report(r4 == 0 && strstr(e1, "accuracy") && strstr(e2, "accuracy") && !strncmp(strstr(e1, "accuracy"), strstr(e2, "accuracy"), 20),
               "classification model through HF export (score.weight) evaluates the same: %.60s", e2);
        gpt_free(&m0), gpt_free(&m1), gpt_free(&m2);
        expect_error("export LoRA without --merge", "./train export --model test_tmp/lora/model.bin --format safetensors --out test_tmp/x",
                     "the model has LoRA tensors");
    }
    // bad input
    mkdir("test_tmp/other", 0755);
    run_cmd("./train --init 1,2,16 --vocab 64 --max-seq 32 --train test_tmp/tok.bin --batch 2 --seq 16 --steps 1 "
            "--out test_tmp/other", "done:", out, sizeof out);
    expect_error("adapter for another base", "./train eval --model test_tmp/other/model.bin --adapter test_tmp/lora/adapter.bin "
                 "--data test_tmp/tok.bin", "adapter is for L=2");
    const char* base = "./train --model test_tmp/base/model.bin --train test_tmp/tok.bin --batch 2 --seq 16 --steps 1";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --method lora --lora-rank 0", base);
    expect_error("LoRA rank 0", cmd, "--lora-rank 0");
    snprintf(cmd, sizeof cmd, "%s --method lora --lora-alpha 0", base);
    expect_error("LoRA alpha <= 0", cmd, "--lora-alpha 0 must be in (0, 1000000]");
    snprintf(cmd, sizeof cmd, "%s --method lora --lora-targets qkv,mlp", base);
    expect_error("unknown LoRA target", cmd, "unknown --lora-targets name 'mlp'");
    snprintf(cmd, sizeof cmd, "%s --method lora --lora-layers 1-5", base);
    expect_error("LoRA layer range outside the model", cmd, "outside the model's layers 0-1");
    expect_error("K < 2 classes", "./train --model test_tmp/base/model.bin --train test_tmp/cls.ds --batch 4 --seq 16 --steps 1 "
                 "--classes 1", "--classes 1");
    expect_error("labels >= K", "./train --model test_tmp/base/model.bin --train test_tmp/cls.ds --batch 4 --seq 16 --steps 1 "
                 "--classes 2", "has 3 labels, the model's head 2");
    expect_error("eval data kind vs head", "./train eval --model test_tmp/cls/model.bin --data test_tmp/tok.bin", "language-modelling dataset");
    expect_error("--task vs data", "./train --model test_tmp/base/model.bin --train test_tmp/tok.bin --seq 16 --task cls", "--task cls but");
}

// ---------------------------------------------------------------------------- multi-task on the command line
// A classification file whose label names are given (dataprep stores them; the task table keeps them).
static void write_named_cls(const char* path, int n, int V, const char* const* names, int K, uint64_t seed) {
    DsWriter w;
    char err[256];
    if (ds_writer_open(&w, path, EXAMPLES_MAGIC, DS_CLS, V, K, err, sizeof err)) failf(NULL, "%s", err);
    ds_writer_set_labels(&w, names);
    for (int e = 0; e < n; e++) {
        int len = 3 + (int)(random_u32(&seed) % 10), ids[16];
        for (int i = 0; i < len; i++) ids[i] = (int)(random_u32(&seed) % (uint32_t)V);
        ds_write_example(&w, ids, (size_t)len, ids[0] % K, NULL);
    }
    if (ds_writer_close(&w, err, sizeof err)) failf(NULL, "%s", err);
}

// The task of each step: counter-based draws, so their shares match p (the counts of 4000 draws within 4 sigma
// of 4000 p, sigma = sqrt(4000 p (1-p)) = 27 for p = 0.25: a fixed seed, so this cannot flake) and the same
// draws come back on every call.
static void test_task_sampling(void) {
    TaskSet ts;
    memset(&ts, 0, sizeof ts);
    ts.n = 2, ts.seed = 1337, ts.t[0].p = 0.25, ts.t[1].p = 0.75;
    int count[2] = {0, 0}, again = 1;
    for (uint64_t s = 0; s < 4000; s++) count[tasks_draw(&ts, s)]++;
    for (uint64_t s = 0; s < 100; s++) again &= tasks_draw(&ts, s) == tasks_draw(&ts, s);
    report(abs(count[0] - 1000) <= 4 * 27 && again, "task sampling: 4000 draws at p = 0.25 / 0.75 give %d / %d (want 1000 +- 108), the same on every call",
           count[0], count[1]);
}

static void test_cli_multitask(void) {
    printf("-- command line: multi-task training (runs ./train)\n");
    test_task_sampling();
    const char* ab[2] = {"neg", "pos"}, *hs[3] = {"ham", "spam", "zzz"};
    write_named_cls("test_tmp/mt_a.ds", 48, 64, ab, 2, 21);
    write_named_cls("test_tmp/mt_av.ds", 12, 64, ab, 2, 22);
    write_named_cls("test_tmp/mt_b.ds", 80, 64, hs, 3, 23);
    write_named_cls("test_tmp/mt_bv.ds", 12, 64, hs, 3, 24);
    const char* tasks = "--task cls:test_tmp/mt_a.ds:test_tmp/mt_av.ds --task cls:test_tmp/mt_b.ds:test_tmp/mt_bv.ds "
                        "--task text=lm:test_tmp/tok.bin --task-weights 1,0.5,0.25 --task-sampling temperature --task-temp 2";
    char cmd[2048], out[1024];
    snprintf(cmd, sizeof cmd, "./train --model test_tmp/base/model.bin %s --batch 4 --seq 16 --steps 12 --eval-every 4 "
             "--dropout 0.1 --accum 2 --out test_tmp/mt_full", tasks);
    int rc = run_cmd(cmd, "done:", out, sizeof out);
    report(rc == 0, "multi-task: 2 cls tasks + 1 lm task train on one trunk: %s", out);
    // temperature sampling: p_i = n_i^(1/2) / sum; the run prints n_i (batches per epoch) and p_i
    double n[3] = {0}, p[3] = {0};
    snprintf(cmd, sizeof cmd, "./train --model test_tmp/base/model.bin %s --batch 4 --seq 16 --steps 0 2>&1", tasks);
    FILE* pipe = popen(cmd, "r");
    char line[1024];
    while (pipe && fgets(line, sizeof line, pipe)) {  // "task 0: mt_a (cls) FILE, val FILE, 12 batches per epoch, weight 1, p 0.2127, ..."
        int t;
        const char* s = strstr(line, " batches per epoch");
        if (sscanf(line, "task %d: ", &t) != 1 || t < 0 || t > 2 || !s) continue;
        while (s > line && s[-1] != ' ') s--;
        n[t] = atof(s);
        if ((s = strstr(line, ", p "))) p[t] = atof(s + 4);
    }
    if (pipe) pclose(pipe);
    double z = sqrt(n[0]) + sqrt(n[1]) + sqrt(n[2]), worst = 0.0;
    for (int t = 0; t < 3; t++) worst = fmax(worst, fabs(p[t] - sqrt(n[t]) / z));
    report(n[0] > 0 && n[1] > 0 && n[2] > 0 && worst < 1e-4, "temperature sampling T=2: p = %.4f %.4f %.4f = sqrt(n_i)/sum over n = %.0f %.0f %.0f batches (printed to 4 digits)",
           p[0], p[1], p[2], n[0], n[1], n[2]);
    size_t nlog;
    unsigned char* log = read_whole("test_tmp/mt_full/log.jsonl", &nlog);
    report(log && strstr((char*)log, "\"task\": \"text\"") && strstr((char*)log, "\"tasks\": {\"mt_a\": {\"val_loss\": ") &&
           strstr((char*)log, "\"mt_b\": {\"val_loss\": "), "multi-task log: each step's task, and per-task val loss / accuracy / F1 on validation steps");
    free(log);
    unsigned char* rep = read_whole("test_tmp/mt_full/report.md", &nlog);
    size_t nsvg;
    unsigned char* svg = read_whole("test_tmp/mt_full/curves_tasks.svg", &nsvg);
    report(rep && strstr((char*)rep, "## Tasks") && strstr((char*)rep, "| mt_b | cls | 3 (2-4) |") && svg && strstr((char*)svg, "mt_b"),
           "multi-task report: the task table (mt_b owns rows 2-4 of cls_w) and curves_tasks.svg");
    free(rep), free(svg);
    // resume: the same draws and each task's loader replayed: the uninterrupted run's losses and model, bit for bit
    snprintf(cmd, sizeof cmd, "./train --model test_tmp/base/model.bin %s --batch 4 --seq 16 --steps 12 --eval-every 4 "
             "--dropout 0.1 --accum 2 --out test_tmp/mt_res --stop-at 5 && ./train --model test_tmp/base/model.bin %s --batch 4 "
             "--seq 16 --steps 12 --eval-every 4 --dropout 0.1 --accum 2 --out test_tmp/mt_res --resume test_tmp/mt_res", tasks, tasks);
    rc = run_cmd(cmd, "done:", out, sizeof out);
    double l1[32], l2[32];
    int n1 = read_log_losses("test_tmp/mt_full/log.jsonl", l1, 32), n2 = read_log_losses("test_tmp/mt_res/log.jsonl", l2, 32);
    size_t na, nb;
    unsigned char* ma = read_whole("test_tmp/mt_full/model.bin", &na);
    unsigned char* mb = read_whole("test_tmp/mt_res/model.bin", &nb);
    report(rc == 0 && n1 == 12 && n2 == 12 && !memcmp(l1, l2, sizeof(double) * 12) && na == nb && ma && mb && !memcmp(ma, mb, na),
           "multi-task resume: stop at 5 + resume gives the same 12 losses and a bit-identical model.bin (exit %d)", rc);
    free(ma), free(mb);
    // the model file keeps every head; eval picks one with --task-head, extract writes it alone
    expect_error("multi-task model without --task-head", "./train eval --model test_tmp/mt_full/model.bin --data test_tmp/mt_av.ds --batch 4 --seq 16",
                 "choose its task with --task-head");
    char e1[1024], e2[1024];
    int r1 = run_cmd("./train eval --model test_tmp/mt_full/model.bin --task-head mt_b --data test_tmp/mt_bv.ds --batch 4 --seq 16", "accuracy", e1, sizeof e1);
    int r2 = run_cmd("./train extract --model test_tmp/mt_full/model.bin --task-head mt_b --out test_tmp/mt_b.bin > /dev/null && "
                     "./train eval --model test_tmp/mt_b.bin --data test_tmp/mt_bv.ds --batch 4 --seq 16", "accuracy", e2, sizeof e2);
    report(r1 == 0 && r2 == 0 && !strcmp(e1, e2), "eval --task-head mt_b = eval of the extracted single-task model: %.60s", e2);
    expect_error("task whose label names differ from the data's", "./train eval --model test_tmp/mt_full/model.bin --task-head mt_b "
                 "--data test_tmp/mt_av.ds --batch 4 --seq 16", "class 0 is 'neg' here but 'ham' for the model");
    expect_error("--task-head naming no task", "./train eval --model test_tmp/mt_full/model.bin --task-head nope --data test_tmp/mt_av.ds",
                 "has no task 'nope'");
    expect_error("serve of a multi-task model", "./train serve --model test_tmp/mt_full/model.bin --port 0 --tokenizer bytes",
                 "cannot be served as it is");
    rc = run_cmd("./train eval --model test_tmp/mt_full/model.bin --task-head text --data test_tmp/tok.bin --batch 2 --seq 16", "ppl", out, sizeof out);
    report(rc == 0 && strstr(out, "\"ppl\""), "eval --task-head text runs the LM head of the multi-task model: %s", out);
    // LoRA on a multi-task model: adapter.bin carries every head and the task table
    snprintf(cmd, sizeof cmd, "./train --model test_tmp/base/model.bin %s --method lora --lora-rank 2 --batch 4 --seq 16 --steps 3 "
             "--out test_tmp/mt_lora > /dev/null && ./train eval --model test_tmp/mt_lora/model.bin --task-head mt_b --data test_tmp/mt_bv.ds "
             "--batch 4 --seq 16", tasks);
    r1 = run_cmd(cmd, "accuracy", e1, sizeof e1);
    r2 = run_cmd("./train eval --model test_tmp/base/model.bin --adapter test_tmp/mt_lora/adapter.bin --task-head mt_b --data test_tmp/mt_bv.ds "
                 "--batch 4 --seq 16", "accuracy", e2, sizeof e2);
    report(r1 == 0 && r2 == 0 && !strcmp(e1, e2), "multi-task LoRA: base + adapter.bin --task-head mt_b evaluates exactly as model.bin: %.50s", e2);
    // one task is a plain run: the same losses as --train/--val
    rc = run_cmd("./train --model test_tmp/base/model.bin --task cls:test_tmp/mt_b.ds:test_tmp/mt_bv.ds --batch 4 --seq 16 --steps 6 "
                 "--dropout 0.1 --out test_tmp/mt_one > /dev/null && ./train --model test_tmp/base/model.bin --train test_tmp/mt_b.ds "
                 "--val test_tmp/mt_bv.ds --batch 4 --seq 16 --steps 6 --dropout 0.1 --out test_tmp/mt_single", "done:", out, sizeof out);
    n1 = read_log_losses("test_tmp/mt_one/log.jsonl", l1, 32), n2 = read_log_losses("test_tmp/mt_single/log.jsonl", l2, 32);
    report(rc == 0 && n1 == 6 && n2 == 6 && !memcmp(l1, l2, sizeof(double) * 6), "a single --task cls:TRAIN:VAL gives the same 6 losses as --train/--val");
    // a task's weight scales its gradient: weight 0.5 (a power of two, so exact in fp32) halves the first step's norm
    rc = run_cmd("./train --model test_tmp/base/model.bin --task cls:test_tmp/mt_b.ds:test_tmp/mt_bv.ds --task-weights 0.5 --batch 4 "
                 "--seq 16 --steps 1 --dropout 0.1 --out test_tmp/mt_half", "done:", out, sizeof out);
    double g1 = -1, g2 = -2;
    unsigned char* la = read_whole("test_tmp/mt_one/log.jsonl", &na);
    unsigned char* lb = read_whole("test_tmp/mt_half/log.jsonl", &nb);
    if (la && strstr((char*)la, "\"grad_norm\": ")) g1 = atof(strstr((char*)la, "\"grad_norm\": ") + 13);
    if (lb && strstr((char*)lb, "\"grad_norm\": ")) g2 = atof(strstr((char*)lb, "\"grad_norm\": ") + 13);
    report(rc == 0 && fabs(g2 - 0.5 * g1) <= 1e-6, "--task-weights 0.5 halves the task's gradient: step 1 norm %.6f vs %.6f (the log's 6 digits)", g2, g1);
    free(la), free(lb);
    // bad specs: one line, before any work (no run folder is made)
    write_sft_dataset("test_tmp/mt_sft.ds", 8, 64);
    static const char* const bad[][3] = {
        {"lm task given a .ds", "--task lm:test_tmp/mt_a.ds", "needs a token file (./dataprep text, or llm.c's .bin), but this is a classification file"},
        {"cls task given a token file", "--task cls:test_tmp/tok.bin", "needs a classification example file (./dataprep cls), but this is a token file"},
        {"cls task given an SFT .ds", "--task cls:test_tmp/mt_a.ds --task cls:test_tmp/mt_sft.ds", "but this is an SFT file"},
        {"cls task's val file a token file", "--task cls:test_tmp/mt_a.ds:test_tmp/tok.bin", "but this is a token file"},
        {"unknown task kind", "--task ner:test_tmp/mt_a.ds", "unknown kind 'ner'"},
        {"task weight 0", "--task cls:test_tmp/mt_a.ds --task lm:test_tmp/tok.bin --task-weights 1,0", "--task-weights 0 must be in (0, 1000000]"},
        {"negative task weight", "--task cls:test_tmp/mt_a.ds --task-weights -2", "must be in (0, 1000000]"},
        {"task weight not a number", "--task cls:test_tmp/mt_a.ds --task-weights x", "--task-weights expects a number, got 'x'"},
        {"task weights count", "--task cls:test_tmp/mt_a.ds --task lm:test_tmp/tok.bin --task-weights 1", "has 1 values for 2 tasks"},
        {"two tasks of one name", "--task cls:test_tmp/mt_a.ds --task mt_a=lm:test_tmp/tok.bin", "two tasks are called 'mt_a'"},
        {"--train with task specs", "--task cls:test_tmp/mt_a.ds --train test_tmp/tok.bin", "--train cannot be used with --task"},
        {"--task-weights without tasks", "--train test_tmp/tok.bin --task-weights 1", "--task-weights is for multi-task training"},
        {"missing task file", "--task cls:test_tmp/none.ds", "none.ds"},
    };
    int before_ok = 1;
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(cmd, sizeof cmd, "./train --model test_tmp/base/model.bin %s --batch 4 --seq 16 --steps 2 --out test_tmp/mt_bad", bad[k][1]);
        expect_error(bad[k][0], cmd, bad[k][2]);
        struct stat sb;
        before_ok &= stat("test_tmp/mt_bad", &sb) != 0;
    }
    report(before_ok, "bad task specs stop before any work: no run folder was made");
}

// ---------------------------------------------------------------------------- inference: KV cache, sampling, classify
// The KV cache reorganises the forward pass, it does not approximate it: gpt_decode_step at position t
// computes row t of gpt_forward from the same numbers. Only the big matmuls sum in another order (the
// decode step's matrix-vector products use 16 partial sums, gemm runs along k), so logits differ by fp32
// rounding: worst seen 2.7e-6 relative (to |ref| + rms, check_tensor's rule; LoRA, whose extra products
// round too), the rest below 1e-6. The tolerance 1e-5 is 4x that, and far below any real mistake: a
// missing LoRA term or prefix, or a wrong position, moves the logits by 1e-2 to 1 of their scale.
static void test_inference(void) {
    printf("-- inference: KV cache against the full forward, sampling, classify (runs ./train)\n");
    const char* what[] = {"plain", "LoRA", "adapters", "prefix", "int8+LoRA", "classifier", "llama", "llama int8+LoRA", "llama classifier"};
    for (int k = 0; k < 9; k++) {
        GPTConfig c = {.maxT = 16, .V = 67, .Vp = 128, .L = 2, .NH = 2, .C = 32};  // C = 32: one int8 group
        if (k >= 6)  // Llama: 4 heads sharing 2 key/value heads (the cache holds 2), F = 48, RoPE at theta 5e5
            c.arch = ARCH_LLAMA, c.NH = 4, c.n_kv_heads = 2, c.F = 48, c.rope_theta = 5e5f, c.norm_eps = 1e-6f;
        if (k == 6)  // every Llama LoRA target on layer 1, an untied head, Qwen2's q/k/v biases, adapters, a prefix
            c.lora_r = 4, c.lora_alpha = 8.0f, c.lora_targets = LORA_Q | LORA_K | LORA_V | LORA_PROJ | LORA_GATE | LORA_UP | LORA_FCPROJ,
            c.lora_first = 1, c.lora_last = 1, c.untied = 1, c.qkv_bias = 1, c.adapter_dim = 8, c.prefix_len = 3;
        if (k == 7) c.lora_r = 4, c.lora_alpha = 8.0f, c.lora_targets = LORA_Q | LORA_V, c.lora_first = 0, c.lora_last = 1;
        if (k == 8) c.num_classes = 3, c.V = 257, c.Vp = 320, c.prefix_len = 2;
        if (k == 1 || k == 4)  // LoRA on every target of layer 1 only
            c.lora_r = 4, c.lora_alpha = 8.0f, c.lora_targets = LORA_QKV | LORA_PROJ | LORA_FC | LORA_FCPROJ, c.lora_first = 1, c.lora_last = 1;
        if (k == 2) c.adapter_dim = 8;
        if (k == 3 || k == 5) c.prefix_len = 3;
        if (k == 5) c.num_classes = 3, c.V = 257, c.Vp = 320;  // the byte tokenizer's vocabulary, for classify
        uint64_t rng = 100 + (uint64_t)k;
        GPT m;
        gpt_build(&m, c);
        gpt_init_random(&m, &rng);
        for (int i = NUM_BASE_PARAMS; i < NUM_PARAMS; i++) fill_random(m.params.t[i], param_numel(&c, i), 0.1f);  // LoRA B, adapter up != 0
        if (k == 4 || k == 7) gpt_quantize(&m);
        int T = c.maxT, K = c.num_classes, n = K ? K : c.Vp, x[16], xs[256], lens[16];
        for (int t = 0; t < T; t++) x[t] = (int)(random_u32(&rng) % (uint32_t)c.V);
        float* ref = (float*)mallocCheck((size_t)T * n * sizeof(float));
        float* got = (float*)mallocCheck((size_t)T * n * sizeof(float));
        if (K) {  // row t of the batch is the sequence x[0..t], classified at its last token
            for (int b = 0; b < T; b++) {
                memcpy(xs + b * T, x, sizeof x);
                lens[b] = b + 1;
            }
            gpt_forward_cls(&m, xs, lens, NULL, T, T);
            memcpy(ref, m.acts.cls_logits, (size_t)T * n * sizeof(float));
        } else {
            gpt_forward(&m, x, NULL, 1, T);
            memcpy(ref, m.acts.logits, (size_t)T * n * sizeof(float));
        }
        KVCache kv;
        kv_init(&kv, &m, T);
        for (int t = 0; t < T; t++) memcpy(got + (size_t)t * n, gpt_decode_step(&m, &kv, x[t], t), (size_t)n * sizeof(float));
        char name[64];
        snprintf(name, sizeof name, "kv %s", what[k]);
        check_tensor(name, K ? "(T,K)" : "(T,Vp)", got, ref, (size_t)T * n, 1e-5);
        // the prompt as one batched prefill of 7 tokens, then decode steps (the cache is reused as it is)
        memcpy(got + (size_t)6 * n, gpt_prefill(&m, &kv, x, 7), (size_t)n * sizeof(float));
        for (int t = 7; t < T; t++) memcpy(got + (size_t)t * n, gpt_decode_step(&m, &kv, x[t], t), (size_t)n * sizeof(float));
        snprintf(name, sizeof name, "prefill %s", what[k]);
        check_tensor(name, "(T-6,.)", got + (size_t)6 * n, ref + (size_t)6 * n, (size_t)(T - 6) * n, 1e-5);
        kv_free(&kv);
        // generation: the cached path against the old one (a full forward of the whole context per token),
        // greedy for 12 tokens, then sampled for 40 (past maxT = 16: the window slides as generate's does)
        for (int mode = 0; mode < 2 && !K; mode++) {
            int steps = mode ? 40 : 12, a[64], b[64], nb = 4, start = 0, cap = 4 + steps < T ? 4 + steps : T;
            Sampler s1, s2;
            sampler_init(&s1, c.V, mode ? 1.0f : 0.0f, mode ? 20 : 0, mode ? 0.9f : 1.0f, -1, 7);
            sampler_init(&s2, c.V, mode ? 1.0f : 0.0f, mode ? 20 : 0, mode ? 0.9f : 1.0f, -1, 7);
            int na = generate(&m, &s1, x, 4, steps, a);
            memcpy(b, x, 4 * sizeof(int));
            for (int i = 0; i < steps; i++) {
                if (nb - start > cap) start = nb - (cap + 1) / 2;
                gpt_forward(&m, b + start, NULL, 1, nb - start);
                b[nb] = sample_next(&s2, m.acts.logits + (size_t)(nb - start - 1) * c.Vp, c.V);
                nb++;
            }
            report(na == nb && !memcmp(a, b, (size_t)nb * sizeof(int)), "generate with the KV cache, %s, %s: the same %d tokens as without",
                   what[k], mode ? "sampled (T=1, top-k 20, top-p 0.9) past maxT" : "greedy", na - 4);
            sampler_free(&s1);
            sampler_free(&s2);
        }
        free(ref);
        free(got);
        if (k == 5) save_checkpoint(&m, "test_tmp/clsinf.bin", NULL);  // for classify below
        gpt_free(&m);
    }
    // sampling on hand-made logits: probabilities 0.10 0.30 0.05 0.40 0.15, so by rank tokens 3, 1, 4, 0, 2.
    // 20000 seeded draws each; a frequency's standard deviation is at most 0.0035, the tolerance 0.015 (4 sd)
    const float pr[5] = {0.10f, 0.30f, 0.05f, 0.40f, 0.15f};
    float lg[5];
    for (int i = 0; i < 5; i++) lg[i] = logf(pr[i]);
    const struct { float temp; int k; float p; double expect[5]; const char* what; } sc[] = {
        {1.0f, 0, 1.0f, {.10, .30, .05, .40, .15}, "no filter: all 5 at their probabilities"},
        {1.0f, 0, 0.5f, {0, .3 / .7, 0, .4 / .7, 0}, "top-p 0.5: {3,1} (0.40 < 0.5 <= 0.70), renormalised"},
        {1.0f, 0, 0.8f, {0, .3 / .85, 0, .4 / .85, .15 / .85}, "top-p 0.8: {3,1,4} (0.70 < 0.8 <= 0.85)"},
        {1.0f, 3, 1.0f, {0, .3 / .85, 0, .4 / .85, .15 / .85}, "top-k 3: {3,1,4}"},
        {1.0f, 2, 0.5f, {0, 0, 0, 1, 0}, "top-k 2 then top-p 0.5: {3} (0.57 of the renormalised pair)"},
        {0.0f, 0, 1.0f, {0, 0, 0, 1, 0}, "temperature 0: argmax"},
    };
    for (size_t j = 0; j < sizeof sc / sizeof sc[0]; j++) {
        Sampler s;
        sampler_init(&s, 5, sc[j].temp, sc[j].k, sc[j].p, -1, 99);
        int count[5] = {0}, draws = 20000;
        for (int d = 0; d < draws; d++) count[sample_next(&s, lg, 5)]++;
        double worst = 0.0;
        int ok = 1;
        for (int i = 0; i < 5; i++) {
            ok &= sc[j].expect[i] > 0 || count[i] == 0;  // outside the set: never drawn
            worst = fmax(worst, fabs((double)count[i] / draws - sc[j].expect[i]));
        }
        report(ok && worst <= 0.015, "sampling, %s: drawn %d %d %d %d %d of %d, max|freq - p| = %.4f tol 0.015", sc[j].what,
               count[0], count[1], count[2], count[3], count[4], draws, worst);
        sampler_free(&s);
    }
    // ./train classify on a file: batches of 3 lines, one line longer than maxT, one empty; each printed
    // label and probability is the model's on that line alone (gpt_forward_cls at B = 1)
    FILE* f = fopen_check("test_tmp/lines.txt", "w");
    const char* lines[] = {"hello", "", "0123456789 this line is longer than 16 bytes", "ab", "XYZ", "4"};
    for (int i = 0; i < 6; i++) fprintf(f, "%s\n", lines[i]);
    fclose(f);
    FILE* p = popen("./train classify --model test_tmp/clsinf.bin --tokenizer bytes --input test_tmp/lines.txt "
                    "--labels neg,neu,pos --batch 3 2>test_tmp/classify.err", "r");
    GPT m;
    load_model(&m, "test_tmp/clsinf.bin", NULL);
    const char* names[3] = {"neg", "neu", "pos"};
    char line[512];
    int printed = 0, agree = 0;
    double worst = 0.0;
    while (p && fgets(line, sizeof line, p)) {
        char label[64], text[256] = "";
        float prob = -1.0f;
        if (sscanf(line, "%63[^\t]\t%f\t%255[^\n]", label, &prob, text) < 2) continue;
        int ids[16], n = 0;
        for (const char* s = text; *s && n < 16; s++) ids[n++] = (unsigned char)*s;  // the byte tokenizer, truncated
        if (!n) continue;
        gpt_forward_cls(&m, ids, &n, NULL, 1, n);
        int best = 0;
        for (int kk = 1; kk < 3; kk++) if (m.acts.cls_probs[kk] > m.acts.cls_probs[best]) best = kk;
        worst = fmax(worst, fabs(prob - m.acts.cls_probs[best]));
        agree += !strcmp(label, names[best]) && !strcmp(text, lines[printed + (printed >= 1)]);
        printed++;
    }
    int rc = p ? pclose(p) : -1;
    char err[512] = "";
    FILE* e = fopen("test_tmp/classify.err", "r");
    int noted = 0;
    while (e && fgets(err, sizeof err, e)) noted |= strstr(err, "line 3 has 44 tokens") != NULL;
    if (e) fclose(e);
    // printed with 4 decimals: 5e-5 of rounding, plus fp32 noise
    report(rc == 0 && printed == 5 && agree == 5 && worst <= 6e-5 && noted,
           "classify: %d of 5 lines (the empty one skipped) with the label and probability of a B=1 forward, max|d| = %.1e (printed %%.4f), truncation noted: %d",
           agree, worst, noted);
    gpt_free(&m);
    expect_error("classify with an LM model", "./train classify --model ref/gpt_a.bin --tokenizer bytes --input test_tmp/lines.txt", "LM head");
    expect_error("classify --labels count", "./train classify --model test_tmp/clsinf.bin --tokenizer bytes --labels a,b --input test_tmp/lines.txt",
                 "--labels has 2 names");
}

// ---------------------------------------------------------------------------- other tools' formats (formats.c)
// A GGUF metadata entry found by its key in a file's bytes: points at the u32 value type (the value follows).
static const unsigned char* gguf_entry(const unsigned char* b, size_t n, const char* key) {
    size_t k = strlen(key);
    for (size_t i = 8; i + k + 4 <= n; i++) {
        uint64_t len;
        memcpy(&len, b + i - 8, 8);
        if (len == k && !memcmp(b + i, key, k)) return b + i + k;
    }
    return NULL;
}
// Element idx of the string array at entry e (type 9, element type 8, count, then u64-length strings).
static void gguf_entry_string(const unsigned char* e, uint64_t idx, char* out, size_t cap) {
    const unsigned char* s = e + 16;
    uint64_t len;
    for (uint64_t i = 0;; i++, s += 8 + len) {
        memcpy(&len, s, 8);
        if (i == idx) break;
    }
    snprintf(out, cap, "%.*s", (int)len, (const char*)s + 8);
}
static uint64_t u64_at(const unsigned char* p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t u32_at(const unsigned char* p) { uint32_t v; memcpy(&v, p, 4); return v; }

// Writes a copy of src with 4 bytes replaced at offset `at` (a corrupted GGUF for the bad-input checks).
static void copy_patched(const char* src, const char* dst, size_t at, const char* four) {
    size_t n;
    unsigned char* b = read_whole(src, &n);
    if (b && at + 4 <= n) memcpy(b + at, four, 4);
    FILE* f = fopen_check(dst, "wb");
    if (b) fwrite(b, 1, n, f);
    fclose(f);
    free(b);
}

// PEFT adapters and GGUF files: each exported by ./train export, read back by our loaders, compared bit for bit
// with the model that was exported; the GGUF header byte by byte; bad input. dev/check_gguf.mjs and
// dev/check_peft.py check the same files with other people's readers.
static void test_export_formats(void) {
    printf("-- export formats: PEFT LoRA adapters, GGUF (runs ./train)\n");
    int B = 2, T = 8, x[16], lens[2] = {8, 5};
    uint64_t rng = 23;
    GPTConfig c;
    memset(&c, 0, sizeof c);
    c.maxT = 16, c.V = 50257, c.Vp = pad_vocab(c.V), c.L = 3, c.NH = 2, c.C = 32;  // GPT-2's vocabulary, C = 32 for Q8_0
    GPT base;
    gpt_build(&base, c);
    gpt_init_random(&base, &test_rng);
    for (int p = PIDX(ln1w); p < NUM_BASE_PARAMS; p++)  // nonzero biases and LayerNorm parameters too
        if (!PARAM_TABLE[p].decay) fill_random(base.params.t[p], param_numel(&c, p), 0.1f);
    save_checkpoint(&base, "test_tmp/xf_base.bin", NULL);
    for (int i = 0; i < B * T; i++) x[i] = (int)(random_u32(&rng) % (uint32_t)c.V);
    size_t nl = (size_t)B * T * c.Vp, nb = num_base_parameters(&c);
    float* lbase = lm_logits_copy(&base, x, B, T);
    char out[1024];
    system("rm -rf test_tmp/xf_peft test_tmp/xf_peft_cls test_tmp/xf_*.gguf*");

    // PEFT, language model: LoRA r=4 on qkv and on the MLP's c_proj in layers 1-2. The attention's c_proj has
    // none, so target_modules must tell the two c_proj apart.
    GPT lora, back, back2;
    load_model(&lora, "test_tmp/xf_base.bin", NULL);
    GPTConfig cl = lora.config;
    cl.lora_r = 4, cl.lora_alpha = 12.0f, cl.lora_targets = LORA_QKV | LORA_FCPROJ, cl.lora_first = 1, cl.lora_last = 2;
    gpt_set_peft(&lora, cl, &rng);
    for (int i = PIDX(lora_qkv_b); i <= PIDX(lora_fcproj_b); i += 2) fill_random(lora.params.t[i], param_numel(&cl, i), 0.05f);
    save_checkpoint(&lora, "test_tmp/xf_lora.bin", NULL);
    float* llora = lm_logits_copy(&lora, x, B, T);
    int rc = run_cmd("./train export --model test_tmp/xf_lora.bin --format peft --out test_tmp/xf_peft", "wrote", out, sizeof out);
    load_model(&back, "test_tmp/xf_base.bin", NULL);
    load_adapter(&back, "test_tmp/xf_peft");
    float* lback = lm_logits_copy(&back, x, B, T);
    const GPTConfig* cb = &back.config;
    report(rc == 0 && memcmp(llora, lbase, nl * 4) && cb->lora_r == 4 && cb->lora_alpha == 12.0f &&
           cb->lora_targets == cl.lora_targets && cb->lora_first == 1 && cb->lora_last == 2 && !memcmp(lback, llora, nl * 4),
           "PEFT export, then --adapter DIR on the base: the same LoRA config and logits bit for bit (%s)", out);
    load_model(&back2, "test_tmp/xf_base.bin", NULL);
    load_adapter(&back2, "test_tmp/xf_peft/adapter_model.safetensors");
    float* lback2 = lm_logits_copy(&back2, x, B, T);
    report(!memcmp(lback2, llora, nl * 4), "--adapter DIR/adapter_model.safetensors works the same");
    SafeTensors st;
    st_open(&st, "test_tmp/xf_peft/adapter_model.safetensors");
    const StTensor* ta = st_find(&st, "base_model.model.transformer.h.1.attn.c_attn.lora_A.weight");
    const StTensor* tb = st_find(&st, "base_model.model.transformer.h.2.mlp.c_proj.lora_B.weight");
    int keys_ok = st.n == 8 && ta && ta->ndim == 2 && ta->shape[0] == 4 && ta->shape[1] == 32 && tb && tb->ndim == 2 &&
                  tb->shape[0] == 32 && tb->shape[1] == 4;
    st_close(&st);
    size_t ncfg;
    char* cfg = (char*)read_whole("test_tmp/xf_peft/adapter_config.json", &ncfg);
    const char* want = "\"target_modules\": \"(transformer\\\\.)?h\\\\.(1|2)\\\\.(attn\\\\.c_attn|mlp\\\\.c_proj)\"";
    report(keys_ok && cfg && strstr(cfg, want) && strstr(cfg, "\"fan_in_fan_out\": true") && strstr(cfg, "\"task_type\": \"CAUSAL_LM\"") &&
           strstr(cfg, "\"r\": 4,") && strstr(cfg, "\"lora_alpha\": 12,"),
           "PEFT files: 8 tensors base_model.model.transformer.h.N.<module>.lora_A (r,in) / lora_B (out,r); config %s", want);
    free(cfg);
    // PEFT, classification: LoRA on all four targets and the score head (modules_to_save)
    GPT cls, clsb;
    load_model(&cls, "test_tmp/xf_base.bin", NULL);
    GPTConfig cc = cls.config;
    cc.num_classes = 3, cc.lora_r = 2, cc.lora_alpha = 4.0f, cc.lora_targets = LORA_QKV | LORA_PROJ | LORA_FC | LORA_FCPROJ;
    cc.lora_first = 0, cc.lora_last = 2;
    gpt_set_peft(&cls, cc, &rng);
    for (int i = PIDX(lora_qkv_b); i <= PIDX(lora_fcproj_b); i += 2) fill_random(cls.params.t[i], param_numel(&cc, i), 0.05f);
    save_checkpoint(&cls, "test_tmp/xf_cls.bin", NULL);
    gpt_forward_cls(&cls, x, lens, NULL, B, T);
    float lc[6];
    memcpy(lc, cls.acts.cls_logits, sizeof lc);
    rc = run_cmd("./train export --model test_tmp/xf_cls.bin --format peft --out test_tmp/xf_peft_cls", "wrote", out, sizeof out);
    load_model(&clsb, "test_tmp/xf_base.bin", NULL);
    load_adapter(&clsb, "test_tmp/xf_peft_cls");
    gpt_forward_cls(&clsb, x, lens, NULL, B, T);
    cfg = (char*)read_whole("test_tmp/xf_peft_cls/adapter_config.json", &ncfg);
    report(rc == 0 && clsb.config.num_classes == 3 && !memcmp(lc, clsb.acts.cls_logits, sizeof lc) && cfg &&
           strstr(cfg, "\"task_type\": \"SEQ_CLS\"") && strstr(cfg, "\"modules_to_save\": [\"score\"]"),
           "PEFT export of a classifier (SEQ_CLS, score in modules_to_save) on the base: class logits bit for bit");
    free(cfg);

    // GGUF, F32 with GPT-2's tokenizer: loads back to the same parameters and logits
    rc = run_cmd("./train export --model test_tmp/xf_base.bin --format gguf --out test_tmp/xf.gguf --tokenizer ../shared/data/gpt2_bpe",
                 "wrote", out, sizeof out);
    if (rc != 0) failf("it reads GPT-2's BPE files from ../shared/data/gpt2_bpe (see README, Data)", "GGUF export: %s", out);
    GPT g;
    load_model(&g, "test_tmp/xf.gguf", NULL);
    float* lg = lm_logits_copy(&g, x, B, T);
    report(rc == 0 && !memcmp(&g.config, &c, sizeof c) && !memcmp(g.params_memory, base.params_memory, nb * 4) &&
           !memcmp(lg, lbase, nl * 4), "GGUF F32 export, load back: config, %zu parameters and logits bit for bit (%s)", nb, out);
    // the header, byte by byte
    size_t n;
    unsigned char* b = read_whole("test_tmp/xf.gguf", &n);
    const unsigned char* ff = b ? gguf_entry(b, n, "gpt2.feed_forward_length") : NULL;
    const unsigned char* tk = b ? gguf_entry(b, n, "tokenizer.ggml.tokens") : NULL;
    const unsigned char* mg = b ? gguf_entry(b, n, "tokenizer.ggml.merges") : NULL;
    const unsigned char* eos = b ? gguf_entry(b, n, "tokenizer.ggml.eos_token_id") : NULL;
    char t262[32] = "", m0[32] = "";
    if (tk && u32_at(tk) == 9 && u32_at(tk + 4) == 8 && u64_at(tk + 8) == 50257) gguf_entry_string(tk, 262, t262, sizeof t262);
    if (mg && u32_at(mg) == 9 && u32_at(mg + 4) == 8 && u64_at(mg + 8) == 50000) gguf_entry_string(mg, 0, m0, sizeof m0);
    int hdr_ok = n > 64 && !memcmp(b, "GGUF", 4) && u32_at(b + 4) == 3 && u64_at(b + 8) == 2 + 12 * 3 + 2 &&
                 u64_at(b + 16) == 16 && u64_at(b + 24) == 20 && !memcmp(b + 32, "general.architecture", 20) &&
                 u32_at(b + 52) == 8 && u64_at(b + 56) == 4 && !memcmp(b + 64, "gpt2", 4) && n % 32 == 0;
    report(hdr_ok && ff && u32_at(ff) == 4 && u32_at(ff + 4) == 128 && !strcmp(t262, "\xC4\xA0the") && !strcmp(m0, "\xC4\xA0 t") &&
           eos && u32_at(eos) == 4 && u32_at(eos + 4) == 50256,
           "GGUF bytes: magic, v3, 40 tensors, 16 entries, general.architecture = gpt2 first, feed_forward_length u32 128, "
           "token 262 \"%s\", merge 0 \"%s\", eos 50256, size %zu a multiple of 32", t262, m0, n);
    free(b);
    // GGUF Q8_0 from the fp32 model: the same int8 model as gpt_quantize makes
    rc = run_cmd("./train export --model test_tmp/xf_base.bin --format gguf --dtype q8_0 --out test_tmp/xf_q8.gguf", "wrote", out, sizeof out);
    GPT g8, q, g8b, gf;
    load_model(&g8, "test_tmp/xf_q8.gguf", NULL);
    load_model(&q, "test_tmp/xf_base.bin", NULL);
    gpt_quantize(&q);
    float* lq = lm_logits_copy(&q, x, B, T);
    float* lg8 = lm_logits_copy(&g8, x, B, T);
    report(rc == 0 && g8.q8_memory && !memcmp(lg8, lq, nl * 4) && memcmp(lq, lbase, nl * 4),
           "GGUF Q8_0 export of the fp32 model loads as the int8 model gpt_quantize makes: logits bit for bit");
    // an int8 model: its int8 values and scales go out and come back as they are
    export_gguf(&q, "test_tmp/xf_q8b.gguf", 1, NULL);
    load_model(&g8b, "test_tmp/xf_q8b.gguf", NULL);
    float* lg8b = lm_logits_copy(&g8b, x, B, T);
    int same8 = g8b.q8_memory != NULL;
    for (int i = 0; same8 && i < NUM_PARAMS; i++)
        if (q.q8[i].q) {
            size_t m = param_numel(&c, i);
            same8 = g8b.q8[i].q && !memcmp(g8b.q8[i].q, q.q8[i].q, m) && !memcmp(g8b.q8[i].d, q.q8[i].d, m / Q8_GROUP * 4);
        }
    report(same8 && !memcmp(lg8b, lq, nl * 4), "GGUF Q8_0 of an int8 model: int8 values, scales and logits bit for bit");
    // and as F32: each weight widened to q * d, exactly what the int8 matmul computes with
    export_gguf(&q, "test_tmp/xf_q8f.gguf", 0, NULL);
    load_model(&gf, "test_tmp/xf_q8f.gguf", NULL);
    float* lgf = lm_logits_copy(&gf, x, B, T);
    report(!gf.q8_memory && !memcmp(lgf, lq, nl * 4), "GGUF F32 of an int8 model (widened) gives the int8 model's logits bit for bit");
    // a pruned MLP (F = 96, not 4C): feed_forward_length in GGUF, n_inner in config.json
    GPTConfig cf = c;
    cf.V = 64, cf.Vp = 64, cf.F = 96;
    GPT mf, mf1, mf2;
    gpt_build(&mf, cf);
    gpt_init_random(&mf, &test_rng);
    export_gguf(&mf, "test_tmp/xf_f96.gguf", 0, NULL);
    mkdir("test_tmp/xf_f96_hf", 0755);
    export_hf(&mf, "test_tmp/xf_f96_hf");
    load_model(&mf1, "test_tmp/xf_f96.gguf", NULL);
    load_model(&mf2, "test_tmp/xf_f96_hf", NULL);
    size_t nbf = num_base_parameters(&cf);
    report(mf1.config.F == 96 && mf2.config.F == 96 && !memcmp(mf1.params_memory, mf.params_memory, nbf * 4) &&
           !memcmp(mf2.params_memory, mf.params_memory, nbf * 4), "MLP width 96 (not 4C): GGUF and Hugging Face exports load back with F = %d, %d",
           mf1.config.F, mf2.config.F);
    save_checkpoint(&mf, "test_tmp/xf_f96.bin", NULL);

    // bad input: one-line errors, and nothing half-written left behind
    expect_error("unknown export format", "./train export --model test_tmp/xf_base.bin --format tflite --out test_tmp/xf_x", "unknown --format 'tflite'");
    expect_error("export into a missing folder", "./train export --model test_tmp/xf_base.bin --format gguf --out test_tmp/no_dir/x.gguf",
                 "test_tmp/no_dir/x.gguf: error: cannot write: No such file");
    expect_error("peft export without LoRA", "./train export --model test_tmp/xf_base.bin --format peft --out test_tmp/xf_peft_none",
                 "the model has no LoRA");
    expect_error("gguf with unmerged LoRA", "./train export --model test_tmp/xf_lora.bin --format gguf --out test_tmp/xf_bad.gguf",
                 "the model has LoRA tensors");
    expect_error("gguf of a classifier", "./train export --model test_tmp/xf_cls.bin --format gguf --merge 1 --out test_tmp/xf_bad.gguf",
                 "3-class head");
    expect_error("llm.c export of MLP width 96", "./train export --model test_tmp/xf_f96.bin --format llmc --out test_tmp/xf_bad.bin",
                 "MLP width is 96, not 4C");
    expect_error("q8_0 with rows of 16", "./train export --model test_tmp/base/model.bin --format gguf --dtype q8_0 --out test_tmp/xf_bad.gguf",
                 "not a multiple of the Q8_0 block size 32");
    expect_error("safetensors export of an int8 model", "./train export --model test_tmp/xf_q8.gguf --format safetensors --out test_tmp/xf_bad_hf",
                 "weights are int8");
    int left = run_cmd("ls test_tmp | grep -c -e '^xf_bad' -e '^xf_peft_none'", NULL, out, sizeof out);  // PATH.tmpPID too
    report(left == 1 && !strcmp(out, "0"), "failed exports leave no file, temporary or final, behind (%s found)", out);
    copy_patched("test_tmp/xf_q8.gguf", "test_tmp/xf_arch.gguf", 64, "gptj");
    expect_error("GGUF of another architecture", "./train sample --model test_tmp/xf_arch.gguf --tokens \"1 2\"", "general.architecture is 'gptj'");
    copy_patched("test_tmp/xf_q8.gguf", "test_tmp/xf_ver.gguf", 4, "\x01\x00\x00\x00");
    expect_error("GGUF version 1", "./train sample --model test_tmp/xf_ver.gguf --tokens \"1 2\"", "GGUF version 1, expected 3");
    FILE* f = fopen_check("test_tmp/xf_q8.gguf", "rb");
    long keep = (long)file_size(f) - 1000;
    fclose(f);
    copy_truncated("test_tmp/xf_q8.gguf", "test_tmp/xf_trunc.gguf", keep);
    expect_error("truncated GGUF", "./train sample --model test_tmp/xf_trunc.gguf --tokens \"1 2\"", "truncated?");
    copy_truncated("test_tmp/xf.gguf", "test_tmp/xf_trunc2.gguf", 300000);  // inside the vocabulary
    expect_error("GGUF truncated in its metadata", "./train sample --model test_tmp/xf_trunc2.gguf --tokens \"1 2\"", "unexpected end of file");
    free(lbase), free(llora), free(lback), free(lback2), free(lg), free(lq), free(lg8), free(lg8b), free(lgf);
    gpt_free(&base), gpt_free(&lora), gpt_free(&back), gpt_free(&back2), gpt_free(&cls), gpt_free(&clsb), gpt_free(&g);
    gpt_free(&g8), gpt_free(&q), gpt_free(&g8b), gpt_free(&gf), gpt_free(&mf), gpt_free(&mf1), gpt_free(&mf2);
}

// ---------------------------------------------------------------------------- GGUF for Llama-style models
// A tensor's bytes in a GGUF file, found by walking the header as ggml's docs/gguf.md lays it out (a walk of
// its own, not formats.c's reader): its type and ne[0..1]; NULL when absent or when the header runs past n.
static const unsigned char* gguf_tensor_bytes(const unsigned char* b, size_t n, const char* name, uint32_t* type, uint64_t ne[2]) {
    static const int size[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (!b || n < 24) return NULL;
    uint64_t nt = u64_at(b + 8), nkv = u64_at(b + 16), off = 0;
    size_t p = 24;
    int found = 0;
    for (uint64_t i = 0; i < nkv && p + 12 <= n; i++) {
        p += 8 + (size_t)u64_at(b + p);  // the key
        uint32_t t = u32_at(b + p);
        p += 4;
        if (t == GGUF_STRING) p += 8 + (size_t)u64_at(b + p);
        else if (t == GGUF_ARRAY) {
            uint32_t et = u32_at(b + p);
            uint64_t cnt = u64_at(b + p + 4);
            p += 12;
            for (uint64_t k = 0; et == GGUF_STRING && k < cnt && p + 8 <= n; k++) p += 8 + (size_t)u64_at(b + p);
            if (et != GGUF_STRING) p += (size_t)cnt * (size_t)size[et];
        } else p += (size_t)size[t];
    }
    for (uint64_t i = 0; i < nt && p + 8 <= n; i++) {
        size_t len = (size_t)u64_at(b + p);
        int match = len == strlen(name) && !memcmp(b + p + 8, name, len);
        p += 8 + len;
        uint32_t nd = u32_at(b + p);
        p += 4;
        if (match) ne[0] = u64_at(b + p), ne[1] = nd > 1 ? u64_at(b + p + 8) : 1;
        p += 8 * (size_t)nd;
        if (match) *type = u32_at(b + p), off = u64_at(b + p + 4), found = 1;
        p += 12;
    }
    size_t data = (p + 31) / 32 * 32;
    return found && data + off <= n ? b + data + off : NULL;
}

// The two RoPE forms on one head vector x (hs) at position t, in double. Hugging Face's rotate_half (ours):
// pairs (x[i], x[i + hs/2]). ggml's normal RoPE (llama.cpp's llama architecture): pairs (x[2i], x[2i + 1]).
// Both rotate pair i by the angle t * theta^(-2i/hs).
static void rope_half_ref(double* y, const double* x, int hs, int t, double theta) {
    for (int i = 0; i < hs / 2; i++) {
        double a = t * pow(theta, -2.0 * i / hs), c = cos(a), s = sin(a);
        y[i] = x[i] * c - x[i + hs / 2] * s;
        y[i + hs / 2] = x[i + hs / 2] * c + x[i] * s;
    }
}
static void rope_norm_ref(double* y, const double* x, int hs, int t, double theta) {
    for (int i = 0; i < hs / 2; i++) {
        double a = t * pow(theta, -2.0 * i / hs), c = cos(a), s = sin(a);
        y[2 * i] = x[2 * i] * c - x[2 * i + 1] * s;
        y[2 * i + 1] = x[2 * i + 1] * c + x[2 * i] * s;
    }
}

// The Q/K permutation on its own: a bijection whose inverse is gguf_rope_dst, rows placed as worked out by hand,
// and the property it exists for: llama.cpp's RoPE on the permuted q and k gives our RoPE's attention score.
static void test_gguf_permutation(void) {
    printf("-- GGUF: the Q/K permutation of llama.cpp's llama architecture\n");
    // 2 heads of hs = 6 (half 3), rows 0..11. GGUF row 2i + s of a head holds our row s*3 + i: GGUF row 1 is
    // head 0's pair 0, second element = our row 3; GGUF row 8 (head 1, i = 2: pair 1, first element) = our row 7.
    // hs = 6, not 4: for hs = 4 the permutation swaps rows 1 and 2 and is its own inverse, hiding a direction bug.
    size_t hs = 6, hits[12] = {0};
    int inv_ok = 1;
    for (size_t r = 0; r < 12; r++) {
        hits[gguf_rope_src(r, hs)]++;
        inv_ok &= gguf_rope_dst(gguf_rope_src(r, hs), hs) == r && gguf_rope_src(gguf_rope_dst(r, hs), hs) == r;
    }
    int bij = 1;
    for (int r = 0; r < 12; r++) bij &= hits[r] == 1;
    // the same on a hand-built matrix: W[row][col] = 100 row + col, gathered as the writer does, back as the loader does
    float W[12][5], G[12][5], back[12][5];
    for (int r = 0; r < 12; r++)
        for (int k = 0; k < 5; k++) W[r][k] = (float)(100 * r + k);
    for (size_t r = 0; r < 12; r++) memcpy(G[r], W[gguf_rope_src(r, hs)], sizeof G[r]);
    for (size_t q = 0; q < 12; q++) memcpy(back[q], G[gguf_rope_dst(q, hs)], sizeof back[q]);
    int hand = gguf_rope_src(1, hs) == 3 && gguf_rope_src(8, hs) == 7 && gguf_rope_dst(3, hs) == 1 && G[1][2] == 302.0f &&
               G[8][0] == 700.0f && G[0][4] == 4.0f && G[11][1] == 1101.0f;
    report(bij && inv_ok && hand && !memcmp(back, W, sizeof W),
           "permutation (2 heads, hs=6): a bijection, dst(src(r)) = r, GGUF row 1 = our row 3, row 8 = our row 7 "
           "(W[row] = 100 row + col: G[1][2] = %g, G[8][0] = %g), permute then inverse = identity", G[1][2], G[8][0]);
    // RoPE: ggml's normal RoPE of P q equals P (our RoPE of q), for every element, so the score of a query at
    // position t and a key at position s agrees. Random q, k of one head (hs = 16), t = 0..31, s = 13t mod 32,
    // theta 10000. The two sides compute each element from the same two products in double, so they agree to
    // rounding: 1e-12 (seen: 0 elementwise, ~1e-15 on the score). The wrong direction (P^-1) pairs other rows and
    // changes the score by O(1) where t != s.
    int H = 16;
    double q[16], k[16], pq[16], pk[16], rq[16], rk[16], rpq[16], rpk[16], worst = 0, worst_dot = 0, wrong_dot = 0;
    uint64_t rng = 5;
    for (int i = 0; i < H; i++) q[i] = random_normal(&rng), k[i] = random_normal(&rng);
    for (int t = 0; t < 32; t++) {
        double dot = 0, dotp = 0, dotw = 0, wq[16], wk[16], rwq[16], rwk[16];
        for (int r = 0; r < H; r++) {
            pq[r] = q[gguf_rope_src((size_t)r, (size_t)H)], pk[r] = k[gguf_rope_src((size_t)r, (size_t)H)];
            wq[r] = q[gguf_rope_dst((size_t)r, (size_t)H)], wk[r] = k[gguf_rope_dst((size_t)r, (size_t)H)];  // the wrong direction
        }
        int sk = 13 * t % 32;
        rope_half_ref(rq, q, H, t, 10000.0), rope_half_ref(rk, k, H, sk, 10000.0);
        rope_norm_ref(rpq, pq, H, t, 10000.0), rope_norm_ref(rpk, pk, H, sk, 10000.0);
        rope_norm_ref(rwq, wq, H, t, 10000.0), rope_norm_ref(rwk, wk, H, sk, 10000.0);
        for (int r = 0; r < H; r++) {
            worst = fmax(worst, fabs(rpq[r] - rq[gguf_rope_src((size_t)r, (size_t)H)]));
            dot += rq[r] * rk[r], dotp += rpq[r] * rpk[r], dotw += rwq[r] * rwk[r];
        }
        worst_dot = fmax(worst_dot, fabs(dot - dotp)), wrong_dot = fmax(wrong_dot, fabs(dot - dotw));
    }
    report(worst <= 1e-12 && worst_dot <= 1e-12 && wrong_dot > 0.1,
           "RoPE: llama.cpp's normal RoPE on permuted q, k = ours permuted (max |d| %.1e), scores q.k agree (max |d| %.1e, "
           "32 position pairs, hs=16); the inverse permutation instead would be off by %.2f", worst, worst_dot, wrong_dot);
}

// A random Llama-style model (every base tensor and the LM head random, so every row is told apart).
static void build_llama(GPT* m, int L, int NH, int NKV, int C, int F, int V, int untied, int bias, float theta, float eps,
                        float factor, uint64_t seed) {
    GPTConfig c;
    memset(&c, 0, sizeof c);
    c.maxT = 16, c.V = V, c.Vp = pad_vocab(V), c.L = L, c.NH = NH, c.C = C, c.F = F;
    c.arch = ARCH_LLAMA, c.n_kv_heads = NKV, c.rope_theta = theta, c.norm_eps = eps, c.untied = untied, c.qkv_bias = bias;
    c.rope_factor = factor;
    gpt_build(m, c);
    uint64_t rng = seed;
    for (size_t i = 0; i < m->num_parameters; i++) m->params_memory[i] = 0.02f * random_normal(&rng);
    for (size_t i = (size_t)V * C; i < (size_t)m->config.Vp * C; i++) m->params.wte[i] = 0.0f;  // padded rows zero
    if (untied)
        for (size_t i = (size_t)V * C; i < (size_t)m->config.Vp * C; i++) m->params.lm_head[i] = 0.0f;
}

static int llama_config_same(const GPTConfig* a, const GPTConfig* b) {
    return a->maxT == b->maxT && a->V == b->V && a->Vp == b->Vp && a->L == b->L && a->NH == b->NH && a->C == b->C &&
           mlp_width(a) == mlp_width(b) && a->arch == b->arch && kv_heads(a) == kv_heads(b) &&
           a->rope_theta == b->rope_theta && a->norm_eps == b->norm_eps && a->untied == b->untied &&
           a->qkv_bias == b->qkv_bias && a->rope_factor == b->rope_factor;
}

// Exports to GGUF and loads back: config and every parameter bit for bit (f32), int8 values and scales (q8_0);
// the file's layout checked at its bytes (the permuted rows, the split q|k|v and gate|up, output); bad files.
static void test_gguf_llama(void) {
    printf("-- GGUF: Llama-style models (llama.cpp's llama and qwen2), round trips and bad input\n");
    struct { const char* what; int L, NH, NKV, C, F, V, untied, bias; float theta, eps, factor; } cs[] = {
        {"llama, tied, NH=3 NKV=1 (C=48, F=80, V=70)", 2, 3, 1, 48, 80, 70, 0, 0, 10000.0f, 1e-6f, 0.0f},
        {"llama, untied, linear RoPE x2 (theta 5e5)", 2, 3, 1, 48, 80, 70, 1, 0, 500000.0f, 1e-5f, 2.0f},
        {"qwen2 (q/k/v biases), NH=6 NKV=2", 1, 6, 2, 48, 64, 70, 0, 1, 1000000.0f, 1e-6f, 0.0f},
    };
    char path[64];
    int x[16];
    for (int i = 0; i < 16; i++) x[i] = (7 * i + 3) % 70;
    for (int i = 0; i < 3; i++) {
        GPT m, g;
        build_llama(&m, cs[i].L, cs[i].NH, cs[i].NKV, cs[i].C, cs[i].F, cs[i].V, cs[i].untied, cs[i].bias, cs[i].theta,
                    cs[i].eps, cs[i].factor, 40 + (uint64_t)i);
        snprintf(path, sizeof path, "test_tmp/ll%d.gguf", i);
        export_gguf(&m, path, 0, NULL);
        snprintf(path, sizeof path, "test_tmp/ll%d.bin", i);  // the same model for dev/check_formats.sh
        save_checkpoint(&m, path, NULL);
        snprintf(path, sizeof path, "test_tmp/ll%d.gguf", i);
        load_model(&g, path, NULL);
        int same = llama_config_same(&m.config, &g.config) && g.num_parameters == m.num_parameters &&
                   !memcmp(g.params_memory, m.params_memory, m.num_parameters * sizeof(float));
        float *la = lm_logits_copy(&m, x, 2, 8), *lb = same ? lm_logits_copy(&g, x, 2, 8) : NULL;
        same = same && !memcmp(la, lb, (size_t)2 * 8 * m.config.Vp * sizeof(float));
        free(la), free(lb);
        report(same, "GGUF F32 %s: config, %zu parameters and logits back bit for bit", cs[i].what, m.num_parameters);
        // the bytes: GGUF row 1 of attn_q is our q row hs/2 (llama; qwen2: row 1), attn_k row 1 our row C + hs/2,
        // attn_v row 1 our row C + KVC + 1, ffn_up row 0 our fcw row F, output row 5 our lm_head row 5
        size_t n;
        unsigned char* b = read_whole(path, &n);
        int C = cs[i].C, hs = C / cs[i].NH, KVC = cs[i].NKV * hs, F = cs[i].F, sh = cs[i].bias ? 1 : hs / 2;
        const float* qkv0 = m.params.qkvw;  // layer 0
        uint32_t tq, tk, tv, tu, to = 0;
        uint64_t nq[2], nk[2], nv[2], nu[2], no[2] = {0, 0};
        const unsigned char* q = gguf_tensor_bytes(b, n, "blk.0.attn_q.weight", &tq, nq);
        const unsigned char* k = gguf_tensor_bytes(b, n, "blk.0.attn_k.weight", &tk, nk);
        const unsigned char* v = gguf_tensor_bytes(b, n, "blk.0.attn_v.weight", &tv, nv);
        const unsigned char* u = gguf_tensor_bytes(b, n, "blk.0.ffn_up.weight", &tu, nu);
        const unsigned char* o = gguf_tensor_bytes(b, n, "output.weight", &to, no);
        const unsigned char* arch = b ? gguf_entry(b, n, "general.architecture") : NULL;
        const char* want_arch = cs[i].bias ? "qwen2" : "llama";
        char key[64];
        snprintf(key, sizeof key, "%s.attention.head_count_kv", want_arch);
        const unsigned char* kvh = b ? gguf_entry(b, n, key) : NULL;
        int ok = q && k && v && u && nq[0] == (uint64_t)C && nq[1] == (uint64_t)C && nk[1] == (uint64_t)KVC &&
                 nv[1] == (uint64_t)KVC && nu[1] == (uint64_t)F && tq == GGML_F32 &&
                 !memcmp(q + 4 * C, qkv0 + (size_t)sh * C, 4 * C) &&
                 !memcmp(k + 4 * C, qkv0 + (size_t)(C + sh) * C, 4 * C) &&
                 !memcmp(v + 4 * C, qkv0 + (size_t)(C + KVC + 1) * C, 4 * C) &&
                 !memcmp(u, m.params.fcw + (size_t)F * C, 4 * C) &&
                 (cs[i].untied ? o && no[1] == (uint64_t)cs[i].V && !memcmp(o + 20 * C, m.params.lm_head + 5 * C, 4 * C) : !o) &&
                 arch && u64_at(arch + 4) == strlen(want_arch) && !memcmp(arch + 12, want_arch, strlen(want_arch)) &&
                 kvh && u32_at(kvh) == GGUF_U32 && u32_at(kvh + 4) == (uint32_t)cs[i].NKV;
        report(ok, "GGUF bytes (%s): architecture %s, head_count_kv %d, attn_q row 1 = our q row %d, attn_k row 1 = k row %d, "
               "attn_v [%d x %d], ffn_up row 0 = fcw row F, %s", cs[i].what, want_arch, cs[i].NKV, sh, sh, (int)KVC, C,
               cs[i].untied ? "output.weight = lm_head (V rows)" : "no output.weight (tied)");
        free(b);
        gpt_free(&m), gpt_free(&g);
    }
    // Q8_0: an int8 model (C=96, NH=3 so hs=32, NKV=1, untied) written as it is and read back bit for bit; the fp32
    // model exported as Q8_0 loads as the int8 model gpt_quantize makes of it
    GPT m, q8m, g1, g2;
    build_llama(&m, 2, 3, 1, 96, 64, 70, 1, 0, 10000.0f, 1e-5f, 0.0f, 50);
    build_llama(&q8m, 2, 3, 1, 96, 64, 70, 1, 0, 10000.0f, 1e-5f, 0.0f, 50);
    gpt_quantize(&q8m);
    export_gguf(&q8m, "test_tmp/ll_q8.gguf", 1, NULL);
    export_gguf(&m, "test_tmp/ll_q8f.gguf", 1, NULL);
    load_model(&g1, "test_tmp/ll_q8.gguf", NULL);
    load_model(&g2, "test_tmp/ll_q8f.gguf", NULL);
    size_t n8 = 0;
    for (int p = 0; p < NUM_PARAMS; p++)
        if (q8m.q8[p].q) n8 += param_numel(&q8m.config, p);
    int s1 = g1.q8_memory && llama_config_same(&g1.config, &q8m.config) && !memcmp(g1.q8_memory, q8m.q8_memory, n8) &&
             !memcmp(g1.q8_scales, q8m.q8_scales, n8 / Q8_GROUP * sizeof(float)) && g1.num_parameters == q8m.num_parameters &&
             !memcmp(g1.params_memory, q8m.params_memory, q8m.num_parameters * sizeof(float));
    int s2 = g2.q8_memory && !memcmp(g2.q8_memory, q8m.q8_memory, n8) && !memcmp(g2.q8_scales, q8m.q8_scales, n8 / Q8_GROUP * sizeof(float));
    float *l1 = lm_logits_copy(&g1, x, 2, 8), *lq = lm_logits_copy(&q8m, x, 2, 8);
    s1 = s1 && !memcmp(l1, lq, (size_t)2 * 8 * q8m.config.Vp * sizeof(float));
    free(l1), free(lq);
    report(s1, "GGUF Q8_0 of an int8 llama model (untied, hs=32): %zu int8 values, their scales, the fp32 rest and logits bit for bit", n8);
    report(s2, "GGUF Q8_0 of the fp32 llama model loads as the int8 model gpt_quantize makes: int8 values and scales bit for bit");
    gpt_free(&m), gpt_free(&q8m), gpt_free(&g1), gpt_free(&g2);

    // the tokenizer keys from a tokenizer.json, for llama.cpp's "gpt2" (byte-level BPE) vocabulary. Expected values
    // read off the ref/ files by hand: token 279 (282 in SmolLM2's) is "Ġthe", the first merge "Ġ Ġ" of 1575, the
    // EOS and BOS ids from added_tokens; Qwen2's <tool_call> (1845) is a non-special added token (user-defined, 4).
    struct { const char* file; const char* pre; int the, eos, bos, add_bos, extra, extra_type; } tk[] = {
        {"ref/tokjson_gpt2.json", "gpt-2", 279, 1831, 1831, 0, 1831, 3},
        {"ref/tokjson_smol.json", "smollm", 282, 0, 0, 0, 2, 3},
        {"ref/tokjson_llama3.json", "llama-bpe", 279, 1832, 1831, 1, 1836, 3},
        {"ref/tokjson_qwen2.json", "qwen2", 279, 1831, 1831, 0, 1845, 4},
    };
    GPT tm;
    build_llama(&tm, 1, 2, 1, 32, 32, 1900, 0, 0, 10000.0f, 1e-5f, 0.0f, 60);
    save_checkpoint(&tm, "test_tmp/ll_tokcfg_model.bin", NULL);
    for (int i = 0; i < 4; i++) {
        export_gguf(&tm, "test_tmp/ll_tok.gguf", 0, tk[i].file);
        size_t n;
        unsigned char* b = read_whole("test_tmp/ll_tok.gguf", &n);
        const unsigned char* pre = b ? gguf_entry(b, n, "tokenizer.ggml.pre") : NULL;
        const unsigned char* toks = b ? gguf_entry(b, n, "tokenizer.ggml.tokens") : NULL;
        const unsigned char* types = b ? gguf_entry(b, n, "tokenizer.ggml.token_type") : NULL;
        const unsigned char* merges = b ? gguf_entry(b, n, "tokenizer.ggml.merges") : NULL;
        const unsigned char* eos = b ? gguf_entry(b, n, "tokenizer.ggml.eos_token_id") : NULL;
        const unsigned char* bos = b ? gguf_entry(b, n, "tokenizer.ggml.bos_token_id") : NULL;
        const unsigned char* ab = b ? gguf_entry(b, n, "tokenizer.ggml.add_bos_token") : NULL;
        char the[32] = "", m0[32] = "", pad[32] = "";
        if (toks && u64_at(toks + 8) == 1900) gguf_entry_string(toks, (uint64_t)tk[i].the, the, sizeof the), gguf_entry_string(toks, 1899, pad, sizeof pad);
        if (merges && u64_at(merges + 8) == 1575) gguf_entry_string(merges, 0, m0, sizeof m0);
        int ok = pre && u64_at(pre + 4) == strlen(tk[i].pre) && !memcmp(pre + 12, tk[i].pre, strlen(tk[i].pre)) &&
                 !strcmp(the, "\xc4\xa0the") && !strcmp(m0, "\xc4\xa0 \xc4\xa0") && !strcmp(pad, "[PAD1899]") && types &&
                 u64_at(types + 8) == 1900 && (int)u32_at(types + 16 + 4 * tk[i].extra) == tk[i].extra_type &&
                 u32_at(types + 16 + 4 * 1899) == 4 && u32_at(types + 16 + 4 * 279) == 1 && eos &&
                 u32_at(eos + 4) == (uint32_t)tk[i].eos && bos && u32_at(bos + 4) == (uint32_t)tk[i].bos && ab &&
                 u32_at(ab) == GGUF_BOOL && ab[4] == tk[i].add_bos;
        report(ok, "GGUF tokenizer from %s: pre \"%s\", token %d \"%s\", merge 0 \"%s\", id %d of type %d, [PAD1899], "
               "EOS %d, BOS %d, add_bos_token %d", tk[i].file, tk[i].pre, tk[i].the, the, m0, tk[i].extra, tk[i].extra_type,
               tk[i].eos, tk[i].bos, tk[i].add_bos);
        free(b);
    }
    // a tokenizer_config.json beside the tokenizer.json (SmolLM2-Instruct's kind): BOS, EOS, padding token,
    // add_bos_token and the chat template come from it; a token it names that the tokenizer lacks is refused
    mkdir("test_tmp/ll_tokcfg", 0755);
    size_t tn;
    unsigned char* tj = read_whole("ref/tokjson_smol.json", &tn);
    FILE* cf = fopen_check("test_tmp/ll_tokcfg/tokenizer.json", "wb");
    if (tj) fwrite(tj, 1, tn, cf);
    fclose(cf);
    free(tj);
    const char* tmpl = "{% for m in messages %}<|im_start|>{{ m['role'] }}\\n{{ m['content'] }}<|im_end|>\\n{% endfor %}";
    cf = fopen_check("test_tmp/ll_tokcfg/tokenizer_config.json", "w");
    fprintf(cf, "{\"add_bos_token\": false, \"bos_token\": \"<|im_start|>\", \"eos_token\": {\"content\": \"<|im_end|>\", "
                "\"lstrip\": false}, \"pad_token\": \"<|endoftext|>\", \"chat_template\": \"%s\", \"model_max_length\": 8192}\n", tmpl);
    fclose(cf);
    export_gguf(&tm, "test_tmp/ll_tokcfg.gguf", 0, "test_tmp/ll_tokcfg/tokenizer.json");
    size_t cn;
    unsigned char* cb = read_whole("test_tmp/ll_tokcfg.gguf", &cn);
    const unsigned char* ceos = cb ? gguf_entry(cb, cn, "tokenizer.ggml.eos_token_id") : NULL;
    const unsigned char* cbos = cb ? gguf_entry(cb, cn, "tokenizer.ggml.bos_token_id") : NULL;
    const unsigned char* cpad = cb ? gguf_entry(cb, cn, "tokenizer.ggml.padding_token_id") : NULL;
    const unsigned char* cab = cb ? gguf_entry(cb, cn, "tokenizer.ggml.add_bos_token") : NULL;
    const unsigned char* ctm = cb ? gguf_entry(cb, cn, "tokenizer.chat_template") : NULL;
    const char* want_tmpl = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}";
    int cok = ceos && u32_at(ceos + 4) == 2 && cbos && u32_at(cbos + 4) == 1 && cpad && u32_at(cpad + 4) == 0 && cab && cab[4] == 0 &&
              ctm && u32_at(ctm) == GGUF_STRING && u64_at(ctm + 4) == strlen(want_tmpl) && !memcmp(ctm + 12, want_tmpl, strlen(want_tmpl));
    report(cok, "GGUF tokenizer_config.json: EOS <|im_end|> = 2, BOS <|im_start|> = 1, padding <|endoftext|> = 0, "
           "add_bos_token false, tokenizer.chat_template (%zu bytes, JSON escapes decoded)", strlen(want_tmpl));
    free(cb);
    cf = fopen_check("test_tmp/ll_tokcfg/tokenizer_config.json", "w");
    fprintf(cf, "{\"eos_token\": \"<|im_stop|>\"}\n");
    fclose(cf);
    expect_error("tokenizer_config.json naming a token the tokenizer lacks",
                 "./train export --model test_tmp/ll_tokcfg_model.bin --format gguf --tokenizer test_tmp/ll_tokcfg/tokenizer.json --out test_tmp/ll_bad.gguf",
                 "tokenizer_config.json: error: eos_token \"<|im_stop|>\" is not a token of the tokenizer");
    gpt_free(&tm);

    // LoRA (on q, v and down) must be merged first; merged, the GGUF evaluates as the LoRA model does. The merge
    // rounds W + (alpha/r) B A to float32 once, so the losses agree to ~1e-7 relative; 1e-5 is the bound.
    char out[1024], out2[1024];
    int rc = run_cmd("OMP_NUM_THREADS=1 ./train --model test_tmp/ll1.bin --train test_tmp/tok.bin --batch 2 --seq 8 --steps 5 --lr 3e-2 "
                     "--method lora --lora-rank 2 --lora-targets q,v,down --out test_tmp/ll_lora", "done:", out, sizeof out);
    expect_error("GGUF of a llama with unmerged LoRA", "./train export --model test_tmp/ll_lora/model.bin --format gguf --out test_tmp/ll_lora.gguf",
                 "the model has LoRA tensors");
    rc |= run_cmd("./train export --model test_tmp/ll_lora/model.bin --format gguf --merge 1 --out test_tmp/ll_lora.gguf", "wrote", out, sizeof out);
    rc |= run_cmd("./train eval --model test_tmp/ll_lora/model.bin --data test_tmp/tok.bin --batch 2 --seq 8 --max-batches 2", "loss", out, sizeof out);
    rc |= run_cmd("./train eval --model test_tmp/ll_lora.gguf --data test_tmp/tok.bin --batch 2 --seq 8 --max-batches 2", "loss", out2, sizeof out2);
    const char *la = strstr(out, "\"loss\": "), *lb = strstr(out2, "\"loss\": ");
    double loss_a = la ? atof(la + 8) : NAN, loss_b = lb ? atof(lb + 8) : NAN;
    report(rc == 0 && fabs(loss_a - loss_b) <= 1e-5 * fabs(loss_a),
           "llama LoRA (q, v, down) merged into GGUF (--merge 1): eval loss %.6f, the LoRA model's %.6f", loss_b, loss_a);

    // bad files: llama's sizes come from its keys, every tensor is checked against them and against the file
    size_t n;
    unsigned char* b = read_whole("test_tmp/ll1.gguf", &n);
    const unsigned char* kvh = b ? gguf_entry(b, n, "llama.attention.head_count_kv") : NULL;
    const unsigned char* st = b ? gguf_entry(b, n, "llama.rope.scaling.type") : NULL;
    size_t kv_at = kvh ? (size_t)(kvh - b) + 4 : 0, st_at = st ? (size_t)(st - b) + 12 : 0;  // the u32 value; the string's bytes
    free(b);
    copy_patched("test_tmp/ll1.gguf", "test_tmp/ll_kv3.gguf", kv_at, "\x03\x00\x00\x00");
    copy_patched("test_tmp/ll1.gguf", "test_tmp/ll_kv2.gguf", kv_at, "\x02\x00\x00\x00");
    copy_patched("test_tmp/ll1.gguf", "test_tmp/ll_yarn.gguf", st_at, "yarn");
    expect_error("GGUF llama with head_count_kv 3 (the file's k has 1 head)", "./train sample --model test_tmp/ll_kv3.gguf --tokens \"1 2\"",
                 "blk.0.attn_k.weight has ne = [48, 16, 1, 1], expected [48, 48]");
    expect_error("GGUF llama with head_count_kv 2 (not a divisor of 3)", "./train sample --model test_tmp/ll_kv2.gguf --tokens \"1 2\"",
                 "llama.attention.head_count_kv 2 does not divide head_count 3");
    expect_error("GGUF llama with YaRN RoPE scaling", "./train sample --model test_tmp/ll_yarn.gguf --tokens \"1 2\"",
                 "llama.rope.scaling.type is 'yarnar'");
    copy_truncated("test_tmp/ll1.gguf", "test_tmp/ll_trunc.gguf", (long)n - 64);  // inside output.weight, the last tensor
    expect_error("GGUF llama truncated in its last tensor", "./train sample --model test_tmp/ll_trunc.gguf --tokens \"1 2\"",
                 "output.weight needs bytes");
}

// ---------------------------------------------------------------------------- int8 weights and pruning
// A small model with C a multiple of 32 (int8 groups run along rows), random weights.
static void build_random(GPT* m, int L, int NH, int C, int V, uint64_t seed) {
    GPTConfig c = {.maxT = 16, .V = V, .Vp = pad_vocab(V), .L = L, .NH = NH, .C = C};
    gpt_build(m, c);
    uint64_t rng = seed;
    gpt_init_random(m, &rng);
}

static void test_int8(void) {
    printf("-- int8 weights (Q8_0), LoRA on an int8 base (QLoRA-style)\n");
    // fp16 conversion: hand-checked values, including ties (to even), subnormals and overflow
    struct { float f; uint16_t h; } cs[] = {{1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff}, {65520.0f, 0x7c00},
        {1.0f + 0x1p-11f, 0x3c00}, {1.0f + 3 * 0x1p-11f, 0x3c02}, {0x1p-24f, 0x0001}, {0x1p-25f, 0x0000},
        {1.5f * 0x1p-24f, 0x0002}, {0x1p-14f, 0x0400}, {-0.0f, 0x8000}, {0.333333343f, 0x3555}};
    int bad = -1;
    for (int i = 0; i < (int)(sizeof cs / sizeof cs[0]); i++)
        if (fp16_from_f32(cs[i].f) != cs[i].h) bad = i;
    int rt_bad = 0;  // every finite half survives half -> float -> half
    for (uint32_t h = 0; h < 0x10000; h++)
        if ((h & 0x7c00) != 0x7c00 && fp16_from_f32(fp16_to_f32((uint16_t)h)) != h) rt_bad++;
    report(bad < 0 && rt_bad == 0, "fp16: %d hand-checked conversions%s, all 63488 finite halves round-trip (%d differ)",
           (int)(sizeof cs / sizeof cs[0]), bad < 0 ? " right" : " WRONG", rt_bad);
    // Q8_0 quantization: |w - q d| <= d/2, d fp16-exact, |q| <= 127, an all-zero group gives d = 0
    size_t n = 4096;
    float* x = (float*)mallocCheck(n * sizeof(float));
    fill_random(x, n, 1.0f);
    x[5] = 40.0f;                                     // an outlier: its group's scale is large
    for (int j = 64; j < 96; j++) x[j] = 0.0f;        // group 2 all zero
    int8_t* q = (int8_t*)mallocCheck(n);
    float* d = (float*)mallocCheck(n / Q8_GROUP * sizeof(float));
    q8_quantize(q, d, x, n);
    double worst = 0.0;
    int ok = d[2] == 0.0f;
    for (size_t j = 0; j < n; j++) {
        float dg = d[j / Q8_GROUP];
        if (q[j] < -127 || fp16_to_f32(fp16_from_f32(dg)) != dg) ok = 0;
        if (dg > 0) worst = fmax(worst, fabs(x[j] - (double)q[j] * dg) / (0.5 * dg));
    }
    report(ok && worst <= 1.0 + 1e-6, "Q8_0 quantize: error within half a step everywhere (worst %.3f of d/2), scales fp16-exact", worst);
    // the int8 matmul against the reference matmul on the dequantized weights (same math, another sum order)
    int N = 5, C = 64, OC = 96;
    float *w = (float*)mallocCheck((size_t)OC * C * 4), *deq = (float*)mallocCheck((size_t)OC * C * 4);
    float *inp = (float*)mallocCheck((size_t)N * C * 4), *bias = (float*)mallocCheck((size_t)OC * 4);
    float *o1 = (float*)mallocCheck((size_t)N * OC * 4), *o2 = (float*)mallocCheck((size_t)N * OC * 4);
    float *dy = (float*)mallocCheck((size_t)N * OC * 4), *g1 = (float*)callocCheck((size_t)N * C, 4), *g2 = (float*)callocCheck((size_t)N * C, 4);
    fill_random(w, (size_t)OC * C, 1.0f), fill_random(inp, (size_t)N * C, 1.0f), fill_random(bias, OC, 1.0f), fill_random(dy, (size_t)N * OC, 1.0f);
    int8_t* wq = (int8_t*)mallocCheck((size_t)OC * C);
    float* wd = (float*)mallocCheck((size_t)OC * C / Q8_GROUP * 4);
    q8_quantize(wq, wd, w, (size_t)OC * C);
    Q8 wv = {wq, wd};
    for (size_t j = 0; j < (size_t)OC * C; j++) deq[j] = q8_at(&wv, j);
    matmul_forward_q8(o1, inp, &wv, bias, N, C, OC);
    matmul_forward_ref(o2, inp, deq, bias, N, C, OC);
    check_tensor("q8 fwd", "(N,OC)", o1, o2, (size_t)N * OC, 1e-5);
    matmul_backward_q8(g1, dy, &wv, N, C, OC);
    matmul_backward_ref(g2, NULL, NULL, dy, inp, deq, N, C, OC);
    check_tensor("q8 dinp", "(N,C)", g1, g2, (size_t)N * C, 1e-5);
    free(x), free(q), free(d), free(w), free(deq), free(inp), free(bias), free(o1), free(o2), free(dy), free(g1), free(g2), free(wq), free(wd);

    // whole model: an int8 model and an fp32 model holding the dequantized weights compute the same numbers.
    // Both paths pack the same fp32 values (q * d) into the same gemm, so logits and LoRA gradients agree
    // bit for bit: that is the claim "int8 storage, fp32 arithmetic".
    GPT m, m8;
    build_random(&m, 2, 2, 32, 50, 21);
    save_checkpoint(&m, "test_tmp/fp32.bin", NULL);
    load_model(&m8, "test_tmp/fp32.bin", NULL);
    size_t np32 = m8.num_parameters;
    gpt_quantize(&m8);
    for (int i = 0; i < NUM_PARAMS; i++)
        if (m8.q8[i].q)
            for (size_t j = 0; j < param_numel(&m.config, i); j++) m.params.t[i][j] = q8_at(&m8.q8[i], j);
    int B = 2, T = 8, xs[16], ys[16];
    uint64_t rng = 5;
    for (int i = 0; i < B * T; i++) xs[i] = (int)(random_u32(&rng) % 50), ys[i] = (int)(random_u32(&rng) % 50);
    float* l32 = lm_logits_copy(&m, xs, B, T);
    float* l8 = lm_logits_copy(&m8, xs, B, T);
    size_t nl = (size_t)B * T * m.config.Vp;
    report(!memcmp(l32, l8, nl * 4), "int8 model = fp32 model on the dequantized weights: logits bit for bit");
    report(m8.num_parameters < np32 / 2 && !m8.params.wte && !m8.params.qkvw,
           "int8 model keeps no fp32 copy of its matrices (%zu fp32 floats left of %zu)", m8.num_parameters, np32);
    GPTConfig lc = m.config;
    lc.lora_r = 4, lc.lora_alpha = 8.0f, lc.lora_targets = LORA_QKV | LORA_PROJ | LORA_FC | LORA_FCPROJ, lc.lora_last = 1;
    uint64_t r1 = 9, r2 = 9;
    gpt_set_peft(&m, lc, &r1);
    gpt_set_peft(&m8, lc, &r2);
    for (int i = PIDX(lora_qkv_b); i <= PIDX(lora_fcproj_b); i += 2) {  // trained-looking LoRA: B nonzero
        fill_random(m.params.t[i], param_numel(&lc, i), 0.05f);
        memcpy(m8.params.t[i], m.params.t[i], param_numel(&lc, i) * 4);
    }
    for (int i = 0; i < NUM_BASE_PARAMS; i++) gpt_set_trainable(&m, i, -1, 0), gpt_set_trainable(&m8, i, -1, 0);
    gpt_forward(&m, xs, ys, B, T), gpt_zero_grad(&m), gpt_backward(&m);
    gpt_forward(&m8, xs, ys, B, T), gpt_zero_grad(&m8), gpt_backward(&m8);
    report(m.num_trainable == m8.num_trainable && m.mean_loss == m8.mean_loss &&
               !memcmp(m.grads_memory, m8.grads_memory, m.num_trainable * 4),
           "LoRA on the int8 base: loss and all %zu LoRA gradients bit-identical to LoRA on its fp32 twin", m.num_trainable);
    // our checkpoint holds int8 as int8: round trip, and the size
    gpt_free(&m8);
    load_model(&m8, "test_tmp/fp32.bin", NULL);
    gpt_quantize(&m8);
    save_checkpoint(&m8, "test_tmp/q8.bin", NULL);
    GPT m9;
    load_model(&m9, "test_tmp/q8.bin", NULL);
    float* l9 = lm_logits_copy(&m9, xs, B, T);
    float* l8b = lm_logits_copy(&m8, xs, B, T);
    FILE* f = fopen("test_tmp/q8.bin", "rb");
    long long s8 = file_size(f);
    fclose(f);
    f = fopen("test_tmp/fp32.bin", "rb");
    long long s32 = file_size(f);
    fclose(f);
    report(!memcmp(l9, l8b, nl * 4) && m9.q8_memory && !memcmp(m9.q8_memory, m8.q8_memory, 10),
           "int8 checkpoint round trip: same logits bit for bit; file %lld bytes vs fp32 %lld (%.1f%%)", s8, s32, 100.0 * s8 / s32);
    free(l32), free(l8), free(l9), free(l8b);
    gpt_free(&m), gpt_free(&m8), gpt_free(&m9);
    // command line
    char out[1024];
    // the size is exactly: header, table, then per tensor n int8 + n/32 fp32 scales, or n fp32
    long long expect = 1024 + NUM_PARAMS * 24;
    GPTConfig qc = {.maxT = 16, .V = 50, .Vp = 64, .L = 2, .NH = 2, .C = 32};
    for (int i = 0; i < NUM_PARAMS; i++) {
        long long k = (long long)param_numel(&qc, i);
        expect += param_quantizable(i) ? k + k / Q8_GROUP * 4 : 4 * k;
    }
    report(s8 == expect, "int8 checkpoint size %lld = %lld expected (n + n/32*4 bytes per int8 tensor)", s8, expect);
    int rc = run_cmd("./train quantize --model test_tmp/fp32.bin --out test_tmp/q8cli.bin", "int8 file is", out, sizeof out);
    report(rc == 0 && strstr(out, "int8 file is 33.0%"), "./train quantize: exit %d, \"%s\"", rc, out);
    {  // data this model's vocabulary covers (V = 50)
        int ids[600];
        for (int i = 0; i < 600; i++) ids[i] = (int)(random_u32(&rng) % 50);
        write_tokens("test_tmp/tok50.bin", ids, 600, 50);
    }
    copy_truncated("test_tmp/q8cli.bin", "test_tmp/q8trunc.bin", 2000);
    expect_error("truncated int8 checkpoint", "./train eval --model test_tmp/q8trunc.bin --data test_tmp/tok.bin", "expected");
    expect_error("full fine-tuning of an int8 model",
                 "./train --model test_tmp/q8cli.bin --train test_tmp/tok50.bin --batch 2 --seq 8 --steps 1", "int8 model and --method is full");
    expect_error("quantizing an int8 model", "./train quantize --model test_tmp/q8cli.bin --out test_tmp/q8q8.bin", "already int8");
    FILE* partial = fopen("test_tmp/q8q8.bin", "rb");
    report(!partial, "no output file left behind after a refused quantize");
    if (partial) fclose(partial);
}

static void test_pruning(void) {
    printf("-- pruning: unstructured, heads, neurons\n");
    // quickselect against a sort, with many ties
    float a[1000], b[1000];
    uint64_t rng = 17;
    for (int i = 0; i < 1000; i++) a[i] = (float)(random_u32(&rng) % 50);
    memcpy(b, a, sizeof a);
    for (int i = 1; i < 1000; i++)  // insertion sort: the obviously correct reference
        for (int j = i; j > 0 && b[j - 1] > b[j]; j--) { float t = b[j]; b[j] = b[j - 1]; b[j - 1] = t; }
    int ok = 1;
    for (size_t k = 0; k < 1000; k += 37) {
        float c[1000];
        memcpy(c, a, sizeof a);
        if (kth_smallest(c, 1000, k) != b[k]) ok = 0;
    }
    report(ok, "kth_smallest agrees with sorting at 28 ranks of 1000 values with ties");
    // unstructured, global: the reached sparsity, and every dropped weight is no larger than every kept one
    GPT m;
    build_random(&m, 2, 2, 32, 50, 33);
    prune_unstructured(&m, 0.3f, 0);
    size_t nz;
    double sp = prunable_sparsity(&m, &nz);
    GPT orig;
    build_random(&orig, 2, 2, 32, 50, 33);
    double max_dropped = 0.0, min_kept = INFINITY;
    for (int k = 0; k < num_prunable(); k++)
        for (size_t e = 0; e < param_numel(&m.config, prunable_param(k)); e++) {
            double v = fabs(orig.params.t[prunable_param(k)][e]);
            if (m.params.t[prunable_param(k)][e] == 0.0f) max_dropped = fmax(max_dropped, v);
            else min_kept = fmin(min_kept, v);
        }
    report(fabs(sp - 0.3) < 1e-3 && max_dropped <= min_kept,  // floor(0.3 n) weights go
           "unstructured 30%%: sparsity %.4f, largest dropped |w| %.4g <= smallest kept %.4g", sp, max_dropped, min_kept);
    gpt_free(&m);
    // per layer: each layer's each matrix at the fraction
    build_random(&m, 2, 2, 32, 50, 33);
    prune_unstructured(&m, 0.5f, 1);
    double worst = 0.0;
    for (int k = 0; k < num_prunable(); k++) {
        size_t sn = slice_numel(&m.config, prunable_param(k));
        for (int l = 0; l < 2; l++) {
            size_t z = 0;
            for (size_t e = 0; e < sn; e++) z += m.params.t[prunable_param(k)][(size_t)l * sn + e] == 0.0f;
            worst = fmax(worst, fabs((double)z / sn - 0.5));
        }
    }
    report(worst < 0.002, "per-layer 50%%: every layer's every matrix within %.4f of 50%%", worst);
    gpt_free(&m);
    // heads: the weakest head of each layer goes (made weak on purpose: head 1 of layer 0, head 0 of layer 1)
    build_random(&m, 2, 2, 32, 50, 33);
    int C = 32, hs = 16;
    for (int l = 0; l < 2; l++) {
        int h = l == 0 ? 1 : 0;
        float* qkvw = m.params.qkvw + (size_t)l * 3 * C * C;
        for (int part = 0; part < 3; part++)
            for (int r = part * C + h * hs; r < part * C + (h + 1) * hs; r++)
                for (int i = 0; i < C; i++) qkvw[(size_t)r * C + i] *= 0.1f;
    }
    prune_heads(&m, 1);
    int heads_ok = 1;
    for (int l = 0; l < 2; l++) {
        int h = l == 0 ? 1 : 0;
        const float* qkvw = m.params.qkvw + (size_t)l * 3 * C * C;
        const float* pw = m.params.attprojw + (size_t)l * C * C;
        for (int part = 0; part < 3; part++)
            for (int r = 0; r < C; r++)
                for (int i = 0; i < C; i++) {
                    int in_head = r / hs == h;
                    if ((qkvw[(size_t)(part * C + r) * C + i] == 0.0f) != in_head) heads_ok = 0;
                }
        for (int o = 0; o < C; o++)
            for (int i = 0; i < C; i++)
                if ((pw[(size_t)o * C + i] == 0.0f) != (i / hs == h)) heads_ok = 0;
    }
    report(heads_ok, "heads: exactly the weakest head of each layer is zeroed (its q,k,v rows and output columns)");
    gpt_free(&m);
    // neurons: neurons that write nothing (zero fcprojw column) are the ones removed, and removing them does
    // not change the function. F 128 -> 64 shrinks the model; the sum order changes, hence 1e-5 not bit-exact.
    build_random(&m, 2, 2, 32, 50, 33);
    int F = 128;
    for (int l = 0; l < 2; l++)
        for (int o = 0; o < C; o++)
            for (int j = 1; j < F; j += 2) m.params.fcprojw[(size_t)l * C * F + (size_t)o * F + j] = 0.0f;
    int xs[16];
    for (int i = 0; i < 16; i++) xs[i] = (int)(random_u32(&rng) % 50);
    float* before = lm_logits_copy(&m, xs, 2, 8);
    prune_neurons(&m, 64);
    float* after = lm_logits_copy(&m, xs, 2, 8);
    report(mlp_width(&m.config) == 64 && param_numel(&m.config, PIDX(fcw)) == (size_t)2 * 64 * 32,
           "neurons: F 128 -> %d, fcw now %zu floats", mlp_width(&m.config), param_numel(&m.config, PIDX(fcw)));
    check_tensor("pruned", "(B,T,Vp)", after, before, (size_t)16 * m.config.Vp, 1e-5);
    save_checkpoint(&m, "test_tmp/pruned.bin", NULL);
    GPT m2;
    load_model(&m2, "test_tmp/pruned.bin", NULL);
    float* again = lm_logits_copy(&m2, xs, 2, 8);
    report(m2.config.F == 64 && !memcmp(again, after, (size_t)16 * m.config.Vp * 4),
           "a pruned model's checkpoint keeps F = %d: same logits bit for bit", m2.config.F);
    free(before), free(after), free(again);
    gpt_free(&m), gpt_free(&m2), gpt_free(&orig);
    // Llama: a neuron is gate row j, up row F + j and down column j. Neurons that write nothing (zero down
    // column) are removed with both their rows, and the function stays (1e-5, as above). Heads with GQA: only a
    // query head's own q rows and output columns are zeroed; the k, v rows its group shares stay.
    GPTConfig lc = {.maxT = 16, .V = 50, .Vp = 64, .L = 2, .NH = 4, .C = 32, .F = 48, .arch = ARCH_LLAMA, .n_kv_heads = 2,
                    .rope_theta = 1e4f, .norm_eps = 1e-5f};
    gpt_build(&m, lc);
    rng = 44;
    gpt_init_random(&m, &rng);
    for (int l = 0; l < 2; l++)
        for (int o = 0; o < C; o++)
            for (int j = 0; j < 48; j += 3) m.params.fcprojw[(size_t)l * C * 48 + (size_t)o * 48 + j] = 0.0f;  // 16 dead neurons a layer
    before = lm_logits_copy(&m, xs, 2, 8);
    prune_neurons(&m, 32);
    after = lm_logits_copy(&m, xs, 2, 8);
    report(mlp_width(&m.config) == 32 && param_numel(&m.config, PIDX(fcw)) == (size_t)2 * 64 * 32,
           "llama neurons: F 48 -> %d, fcw (gate | up) now %zu floats", mlp_width(&m.config), param_numel(&m.config, PIDX(fcw)));
    check_tensor("llama pruned", "(B,T,Vp)", after, before, (size_t)16 * m.config.Vp, 1e-5);
    free(before), free(after);
    float* kv_before = mallocCheck((size_t)2 * 16 * 32 * 4);  // the k, v rows of layer 0 (2 KV heads of 8)
    memcpy(kv_before, m.params.qkvw + (size_t)C * C, (size_t)2 * 16 * 32 * 4);
    prune_heads(&m, 1);
    int zq = 0, zo = 0;
    for (int r = 0; r < C; r++) zq += m.params.qkvw[(size_t)r * C] == 0.0f;
    for (int i = 0; i < C; i++) zo += m.params.attprojw[i] == 0.0f;
    report(zq == 8 && zo == 8 && !memcmp(kv_before, m.params.qkvw + (size_t)C * C, (size_t)2 * 16 * 32 * 4),
           "llama heads (4 sharing 2 KV heads): one head's 8 q rows and 8 output columns zeroed (%d, %d), k and v untouched", zq, zo);
    free(kv_before);
    gpt_free(&m);
    // command line: prune, then recover with --keep-sparsity (the zeros survive training)
    char out[1024];
    int rc = run_cmd("./train prune --model test_tmp/fp32.bin --prune unstructured --sparsity 0.5 --out test_tmp/sparse.bin",
                     "wrote", out, sizeof out);
    report(rc == 0 && strstr(out, "-> 50.0%"), "./train prune: exit %d, \"%s\"", rc, out);
    mkdir("test_tmp/recover", 0755);
    rc = run_cmd("./train --model test_tmp/sparse.bin --train test_tmp/tok50.bin --batch 2 --seq 8 --steps 3 --lr 1e-2 "
                 "--keep-sparsity 1 --out test_tmp/recover", "done:", out, sizeof out);
    GPT r;
    load_model(&r, "test_tmp/recover/model.bin", NULL);
    double sr = prunable_sparsity(&r, NULL);
    report(rc == 0 && sr >= 0.5, "--keep-sparsity 1: after 3 training steps sparsity is still %.4f", sr);
    gpt_free(&r);
    expect_error("sparsity 1", "./train prune --model test_tmp/fp32.bin --prune heads --sparsity 1 --out test_tmp/x.bin", "[0, 1)");
    expect_error("unknown prune mode", "./train prune --model test_tmp/fp32.bin --prune rows --sparsity 0.5 --out test_tmp/x.bin", "unknown --prune");
}

// ---------------------------------------------------------------------------- ONNX export
// A protobuf reader, only for this test: the fields of one message, one at a time (the wire format is in
// onnx.c's header). It knows nothing of onnx.c's writer, so a wrong key, length or varint there shows up here.
typedef struct { const unsigned char *p, *end; int bad; } PbIn;
typedef struct { int field, wire; uint64_t v; const unsigned char* data; size_t len; } PbField;
static uint64_t pbin_varint(PbIn* r) {
    uint64_t v = 0;
    for (int s = 0; s < 64; s += 7) {
        if (r->p >= r->end) { r->bad = 1; return 0; }
        unsigned char b = *r->p++;
        v |= (uint64_t)(b & 0x7F) << s;
        if (!(b & 0x80)) return v;
    }
    r->bad = 1;
    return 0;
}
static int pbin_next(PbIn* r, PbField* f) {  // 0 at the end of the message, or on damage (r->bad)
    if (r->bad || r->p >= r->end) return 0;
    uint64_t key = pbin_varint(r);
    f->field = (int)(key >> 3), f->wire = (int)(key & 7), f->v = 0, f->data = NULL, f->len = 0;
    if (f->wire == 0) f->v = pbin_varint(r);
    else if (f->wire == 5 && r->end - r->p >= 4) f->data = r->p, f->len = 4, r->p += 4;
    else if (f->wire == 2) {
        uint64_t n = pbin_varint(r);
        if (n > (uint64_t)(r->end - r->p)) r->bad = 1;
        else f->data = r->p, f->len = (size_t)n, r->p += n;
    } else r->bad = 1;
    return !r->bad;
}
static PbIn pbin_sub(const PbField* f) { PbIn r = {f->data, f->data + f->len, f->wire != 2}; return r; }
static int pb_is(const PbField* f, const char* s) { return f->wire == 2 && f->len == strlen(s) && !memcmp(f->data, s, f->len); }
static void pb_copy_str(const PbField* f, char* out, size_t cap) {
    size_t n = f->len < cap - 1 ? f->len : cap - 1;
    memcpy(out, f->data, n);
    out[n] = 0;
}

// What the test reads back of a model.onnx.
typedef struct { char name[64]; int dtype, nd; int64_t dims[4]; const unsigned char* raw; size_t nraw; } OxTensor;
typedef struct { char name[64]; int dtype, nd; int64_t dims[4]; char param[4][48]; } OxValue;
typedef struct { char op[32], out[64], in[4][64]; int nin; float eps; int64_t transB; } OxNode;
typedef struct {
    int64_t ir, opset;
    int opset_count, bad;
    OxTensor* init; int ninit;
    OxValue in[16], out[16]; int nin, nout;
    OxNode* node; int nnode;
} OxModel;

static void ox_value(PbIn r, OxValue* v) {  // ValueInfoProto -> TypeProto -> Tensor -> shape -> dims
    PbField f, g, h, s, d;
    memset(v, 0, sizeof *v);
    while (pbin_next(&r, &f)) {
        if (f.field == 1) pb_copy_str(&f, v->name, sizeof v->name);
        if (f.field != 2) continue;
        PbIn rt = pbin_sub(&f);
        while (pbin_next(&rt, &g)) {
            if (g.field != 1) continue;
            PbIn rtt = pbin_sub(&g);
            while (pbin_next(&rtt, &h)) {
                if (h.field == 1) v->dtype = (int)h.v;
                if (h.field != 2) continue;
                PbIn rs = pbin_sub(&h);
                while (pbin_next(&rs, &s)) {
                    if (s.field != 1 || v->nd == 4) continue;
                    PbIn rd = pbin_sub(&s);
                    int k = v->nd++;
                    while (pbin_next(&rd, &d)) {
                        if (d.field == 1) v->dims[k] = (int64_t)d.v;
                        if (d.field == 2) pb_copy_str(&d, v->param[k], sizeof v->param[k]);
                    }
                }
            }
        }
    }
}

static void ox_parse(OxModel* m, const unsigned char* b, size_t n) {
    memset(m, 0, sizeof *m);
    PbIn r = {b, b + n, 0};
    PbField f, g, h, a;
    while (pbin_next(&r, &f)) {
        if (f.field == 1) m->ir = (int64_t)f.v;
        if (f.field == 8) {
            PbIn ro = pbin_sub(&f);
            int default_domain = 1;
            int64_t version = 0;
            while (pbin_next(&ro, &g)) {
                if (g.field == 1 && g.len) default_domain = 0;
                if (g.field == 2) version = (int64_t)g.v;
            }
            if (default_domain) m->opset = version;
            m->opset_count++;
        }
        if (f.field != 7) continue;
        PbIn rg = pbin_sub(&f);
        while (pbin_next(&rg, &g)) {
            if (g.field == 1) {  // NodeProto
                m->node = (OxNode*)reallocCheck(m->node, (size_t)(m->nnode + 1) * sizeof(OxNode));
                OxNode* nd = &m->node[m->nnode++];
                memset(nd, 0, sizeof *nd);
                nd->eps = NAN;
                PbIn rn = pbin_sub(&g);
                while (pbin_next(&rn, &h)) {
                    if (h.field == 1 && nd->nin < 4) pb_copy_str(&h, nd->in[nd->nin++], 64);
                    if (h.field == 2) pb_copy_str(&h, nd->out, sizeof nd->out);
                    if (h.field == 4) pb_copy_str(&h, nd->op, sizeof nd->op);
                    if (h.field != 5) continue;
                    PbIn ra = pbin_sub(&h);
                    char an[32] = "";
                    float fv = NAN;
                    int64_t iv = 0;
                    while (pbin_next(&ra, &a)) {
                        if (a.field == 1) pb_copy_str(&a, an, sizeof an);
                        if (a.field == 2 && a.len == 4) memcpy(&fv, a.data, 4);
                        if (a.field == 3) iv = (int64_t)a.v;
                    }
                    if (!strcmp(an, "epsilon")) nd->eps = fv;
                    if (!strcmp(an, "transB")) nd->transB = iv;
                }
            } else if (g.field == 5) {  // TensorProto
                m->init = (OxTensor*)reallocCheck(m->init, (size_t)(m->ninit + 1) * sizeof(OxTensor));
                OxTensor* t = &m->init[m->ninit++];
                memset(t, 0, sizeof *t);
                PbIn rt = pbin_sub(&g);
                while (pbin_next(&rt, &h)) {
                    if (h.field == 1 && t->nd < 4) t->dims[t->nd++] = (int64_t)h.v;
                    if (h.field == 2) t->dtype = (int)h.v;
                    if (h.field == 8) pb_copy_str(&h, t->name, sizeof t->name);
                    if (h.field == 9) t->raw = h.data, t->nraw = h.len;
                }
                m->bad |= rt.bad;
            } else if ((g.field == 11 && m->nin < 16) || (g.field == 12 && m->nout < 16)) {
                ox_value(pbin_sub(&g), g.field == 11 ? &m->in[m->nin++] : &m->out[m->nout++]);
            }
        }
        m->bad |= rg.bad;
    }
    m->bad |= r.bad;
}
static void ox_free(OxModel* m) { free(m->init), free(m->node); }
static const OxTensor* ox_init(const OxModel* m, const char* name) {
    for (int i = 0; i < m->ninit; i++) if (!strcmp(m->init[i].name, name)) return &m->init[i];
    return NULL;
}
static int ox_count(const OxModel* m, const char* op) {
    int n = 0;
    for (int i = 0; i < m->nnode; i++) n += !strcmp(m->node[i].op, op);
    return n;
}

// Every weight of `ref` (LoRA already merged into it) is an initializer with its name, shape and exact bytes.
static int ox_weights_equal(const OxModel* m, const GPT* ref, int* nweights) {
    const GPTConfig* c = &ref->config;
    int ok = 1;
    *nweights = 0;
    for (int p = 0; p < NUM_BASE_PARAMS + 1; p++) {
        int i = p < NUM_BASE_PARAMS ? p : PIDX(cls_w);
        if (i == PIDX(cls_w) && !c->num_classes) continue;
        size_t n = slice_numel(c, i), rows, cols;
        slice_shape(c, i, &rows, &cols);
        if (i == PIDX(wte)) rows = (size_t)c->V, n = rows * cols;  // the padded rows are not exported
        for (int l = 0; l < (param_per_layer(i) ? c->L : 1); l++) {
            char name[64];
            if (param_per_layer(i)) snprintf(name, sizeof name, "h.%d.%s", l, PARAM_TABLE[i].name);
            else snprintf(name, sizeof name, "%s", PARAM_TABLE[i].name);
            const OxTensor* t = ox_init(m, name);
            int good = t && t->dtype == 1 && t->nd == (cols ? 2 : 1) && t->dims[0] == (int64_t)rows &&
                       (!cols || t->dims[1] == (int64_t)cols) && t->nraw == n * 4 &&
                       !memcmp(t->raw, ref->params.t[i] + (size_t)l * slice_numel(c, i), n * 4);
            if (!good) {
                if (ok) printf("       first wrong or missing initializer: %s\n", name);
                ok = 0;
            }
            (*nweights)++;
        }
    }
    return ok;
}

// Nodes in order, each reading only graph inputs, initializers and earlier outputs (ONNX requires a
// topologically sorted graph), every output name new, and `final` made by the last node.
static int ox_well_formed(const OxModel* m, const char* final) {
    for (int i = 0; i < m->nnode; i++) {
        const OxNode* nd = &m->node[i];
        for (int k = 0; k < nd->nin; k++) {
            int found = ox_init(m, nd->in[k]) != NULL;
            for (int j = 0; !found && j < m->nin; j++) found = !strcmp(m->in[j].name, nd->in[k]);
            for (int j = 0; !found && j < i; j++) found = !strcmp(m->node[j].out, nd->in[k]);
            if (!found) { printf("       node %d (%s) reads %s before it exists\n", i, nd->op, nd->in[k]); return 0; }
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(m->node[j].out, nd->out)) { printf("       %s is written twice\n", nd->out); return 0; }
        if (!nd->out[0] || !nd->op[0]) return 0;
    }
    return m->nnode > 0 && !strcmp(m->node[m->nnode - 1].out, final);
}

static void test_onnx_export(void) {
    printf("-- ONNX export: the protobuf read back, structure, weights; the logits dump (runs ./train)\n");
    GPTConfig c;
    memset(&c, 0, sizeof c);
    c.maxT = 16, c.V = 50, c.Vp = pad_vocab(c.V), c.L = 2, c.NH = 2, c.C = 16, c.F = 40;  // Vp = 64: padded rows; F != 4C
    GPT base;
    gpt_build(&base, c);
    uint64_t rng = 31;
    gpt_init_random(&base, &rng);
    for (int p = PIDX(ln1w); p < NUM_BASE_PARAMS; p++)  // nonzero biases and LayerNorm parameters too
        if (!PARAM_TABLE[p].decay) fill_random(base.params.t[p], param_numel(&c, p), 0.1f);
    save_checkpoint(&base, "test_tmp/ox_lm.bin", NULL);
    // a classifier with LoRA on every target, B nonzero so that the merge changes the weights
    GPT cls;
    load_model(&cls, "test_tmp/ox_lm.bin", NULL);
    GPTConfig cc = cls.config;
    cc.num_classes = 3, cc.lora_r = 2, cc.lora_alpha = 4.0f, cc.lora_targets = LORA_QKV | LORA_PROJ | LORA_FC | LORA_FCPROJ;
    cc.lora_first = 0, cc.lora_last = 1;
    gpt_set_peft(&cls, cc, &rng);
    for (int i = PIDX(lora_qkv_b); i <= PIDX(lora_fcproj_b); i += 2) fill_random(cls.params.t[i], param_numel(&cc, i), 0.05f);
    save_checkpoint(&cls, "test_tmp/ox_cls.bin", NULL);
    gpt_lora_merge(&cls, 1.0f);  // what the export must hold
    system("rm -rf test_tmp/ox_lm_onnx test_tmp/ox_cls_onnx");

    const struct { const char* model; const char* dir; const char* flags; GPT* ref; } runs[2] = {
        {"test_tmp/ox_lm.bin", "test_tmp/ox_lm_onnx", "", &base},
        {"test_tmp/ox_cls.bin", "test_tmp/ox_cls_onnx", " --merge 1", &cls},
    };
    for (int k = 0; k < 2; k++) {
        char cmd[512], out[1024], path[256];
        snprintf(cmd, sizeof cmd, "./train export --model %s --format onnx --out %s%s", runs[k].model, runs[k].dir, runs[k].flags);
        int rc = run_cmd(cmd, "wrote", out, sizeof out);
        snprintf(path, sizeof path, "%s/model.onnx", runs[k].dir);
        size_t n;
        unsigned char* b = read_whole(path, &n);
        OxModel m;
        ox_parse(&m, b ? b : (const unsigned char*)"", n);
        int K = runs[k].ref->config.num_classes, L = c.L;
        const char* what = K ? "classifier, LoRA merged" : "LM";
        report(rc == 0 && b && !m.bad && m.ir == 8 && m.opset == 17 && m.opset_count == 1,
               "onnx %s: %zu bytes parse as protobuf to the end; ir_version %lld, opset %lld (%s)", what, n,
               (long long)m.ir, (long long)m.opset, out);
        // inputs and outputs, with the dynamic axes named
        const OxValue *in0 = &m.in[0], *in1 = &m.in[1], *o = &m.out[0];
        int io_ok = m.nin == (K ? 2 : 1) && m.nout == 1 && !strcmp(in0->name, "input_ids") && in0->dtype == 7 &&
                    in0->nd == 2 && !strcmp(in0->param[0], "batch_size") && !strcmp(in0->param[1], "sequence_length") &&
                    !strcmp(o->name, "logits") && o->dtype == 1 && !strcmp(o->param[0], "batch_size");
        if (K) io_ok = io_ok && !strcmp(in1->name, "attention_mask") && in1->dtype == 7 && in1->nd == 2 &&
                       !strcmp(in1->param[1], "sequence_length") && o->nd == 2 && o->dims[1] == K && !o->param[1][0];
        else io_ok = io_ok && o->nd == 3 && !strcmp(o->param[1], "sequence_length") && o->dims[2] == c.V;
        report(io_ok, "onnx %s: inputs %s%s (batch_size, sequence_length) int64, output logits %s float", what,
               in0->name, K ? " + attention_mask" : "", K ? "(batch_size, K=3)" : "(batch_size, sequence_length, V=50)");
        int nw;
        int w_ok = ox_weights_equal(&m, runs[k].ref, &nw);
        int nfloat = 0;  // float initializers that are not weights: the scalar constants only
        for (int i = 0; i < m.ninit; i++) nfloat += m.init[i].dtype == 1 && m.init[i].nd > 0;
        report(w_ok && nfloat == nw, "onnx %s: %d weights stored once each, name, shape and bytes equal to the model's%s", what,
               nw, K ? " after the merge" : " (wte unpadded, serving the embedding and the LM head)");
        int eps_ok = 1, gemm_ok = 1;
        for (int i = 0; i < m.nnode; i++) {
            if (!strcmp(m.node[i].op, "LayerNormalization")) eps_ok &= m.node[i].eps == 1e-5f;
            if (!strcmp(m.node[i].op, "Gemm")) gemm_ok &= m.node[i].transB == 1;
        }
        int ops_ok = ox_count(&m, "LayerNormalization") == 2 * L + 1 && ox_count(&m, "Softmax") == L &&
                     ox_count(&m, "Gemm") == 4 * L + 1 && ox_count(&m, "Tanh") == L && ox_count(&m, "Where") == L &&
                     ox_count(&m, "MatMul") == 2 * L && ox_count(&m, "Range") == 1 && ox_count(&m, "GatherND") == (K ? 1 : 0) &&
                     ox_count(&m, "ReduceSum") == (K ? 1 : 0);
        report(ops_ok && eps_ok && gemm_ok && ox_well_formed(&m, "logits"),
               "onnx %s: %d nodes in topological order; %d LayerNormalization (eps 1e-5), %d Gemm (transB), %d Softmax, "
               "%d Where (causal mask from Range), %d Tanh (GELU)%s", what, m.nnode, ox_count(&m, "LayerNormalization"),
               ox_count(&m, "Gemm"), ox_count(&m, "Softmax"), ox_count(&m, "Where"), ox_count(&m, "Tanh"),
               K ? ", GatherND of the last real token" : "");
        ox_free(&m);
        free(b);
    }
    // the LM's KV-cache decoder: past_key_values.N.key/value in, present.N.key/value out (Optimum's names)
    {
        size_t n;
        unsigned char* b = read_whole("test_tmp/ox_lm_onnx/decoder_with_past_model.onnx", &n);
        OxModel m;
        ox_parse(&m, b ? b : (const unsigned char*)"", n);
        int L = c.L, io_ok = !m.bad && m.opset == 17 && m.nin == 1 + 2 * L && m.nout == 1 + 2 * L &&
                             !strcmp(m.in[0].name, "input_ids") && !strcmp(m.out[0].name, "logits");
        for (int i = 0; io_ok && i < 2 * L; i++) {
            char want_in[64], want_out[64];
            snprintf(want_in, sizeof want_in, "past_key_values.%d.%s", i / 2, i % 2 ? "value" : "key");
            snprintf(want_out, sizeof want_out, "present.%d.%s", i / 2, i % 2 ? "value" : "key");
            const OxValue *vi = &m.in[1 + i], *vo = &m.out[1 + i];
            io_ok = !strcmp(vi->name, want_in) && vi->dtype == 1 && vi->nd == 4 && !strcmp(vi->param[0], "batch_size") &&
                    vi->dims[1] == c.NH && !strcmp(vi->param[2], "past_sequence_length") && vi->dims[3] == c.C / c.NH &&
                    !strcmp(vo->name, want_out) && vo->nd == 4 && vo->dims[1] == c.NH &&
                    !strcmp(vo->param[2], "past_sequence_length + sequence_length") && vo->dims[3] == c.C / c.NH;
        }
        int nw;
        int w_ok = ox_weights_equal(&m, &base, &nw);
        report(b && io_ok && w_ok && ox_count(&m, "Concat") == 2 + 2 * L && ox_count(&m, "Range") == 2 &&
               ox_count(&m, "Softmax") == L && ox_well_formed(&m, "logits"),
               "onnx LM decoder_with_past_model.onnx: input_ids + %d past_key_values.N.key/value (batch_size, NH, "
               "past_sequence_length, hs), logits + %d present.N.*; the same %d weights; %d nodes in order", 2 * L,
               2 * L, nw, m.nnode);
        ox_free(&m);
        free(b);
        FILE* f = fopen("test_tmp/ox_cls_onnx/decoder_with_past_model.onnx", "rb");
        report(!f, "onnx classifier: no KV-cache decoder (it has no LM head)");
        if (f) fclose(f);
    }
    expect_error("onnx export of an unmerged LoRA", "./train export --model test_tmp/ox_cls.bin --format onnx --out test_tmp/ox_x", "the model has LoRA tensors");
    GPT q8;
    load_model(&q8, "test_tmp/ox_lm.bin", NULL);
    gpt_quantize(&q8);
    save_checkpoint(&q8, "test_tmp/ox_q8.bin", NULL);
    gpt_free(&q8);
    expect_error("onnx export of an int8 model", "./train export --model test_tmp/ox_q8.bin --format onnx --out test_tmp/ox_x", "int8");

    // the logits dump the ONNX Runtime check compares with: the inputs and exactly our forward's logits
    int B = 2, T = 8, ids[2 * 8 * 2 + 1];
    for (int i = 0; i < (int)(sizeof ids / sizeof ids[0]); i++) ids[i] = (int)(random_u32(&rng) % (uint32_t)c.V);
    write_tokens("test_tmp/ox_tok.bin", ids, sizeof ids / sizeof ids[0], c.V);
    char out[1024];
    int rc = run_cmd("./train eval --model test_tmp/ox_lm.bin --data test_tmp/ox_tok.bin --batch 2 --seq 8 --dump-logits test_tmp/ox_dump.bin",
                     "loss", out, sizeof out);
    size_t n;
    unsigned char* d = read_whole("test_tmp/ox_dump.bin", &n);
    size_t per = (size_t)B * T * 4 + (size_t)B * T * c.V * 4;
    int32_t h[8] = {0};
    if (d && n >= 32) memcpy(h, d, 32);
    int ok = rc == 0 && d && h[0] == LOGITS_MAGIC && h[1] == 1 && h[2] == 0 && h[3] == 2 && h[4] == B && h[5] == T &&
             h[6] == c.V && n == 32 + 2 * per;
    size_t nl = (size_t)B * T * c.V;
    float* got = (float*)callocCheck(2 * nl, sizeof(float));
    float* want = (float*)callocCheck(2 * nl, sizeof(float));
    for (int bi = 0; ok && bi < 2; bi++) {
        const unsigned char* pb = d + 32 + bi * per;
        ok = !memcmp(pb, ids + bi * B * T, (size_t)B * T * 4);  // batch bi's inputs: tokens bi*B*T ...
        memcpy(got + bi * nl, pb + (size_t)B * T * 4, nl * 4);
        float* lg = lm_logits_copy(&base, ids + bi * B * T, B, T);
        for (int r = 0; r < B * T; r++) memcpy(want + bi * nl + (size_t)r * c.V, lg + (size_t)r * c.Vp, (size_t)c.V * 4);
        free(lg);
    }
    report(ok, "eval --dump-logits: header [OXLG 1 lm 2 batches B=2 T=8 V=50] and each batch's inputs as the data holds them");
    // ./train and this test are one build, so the logits are equal bit for bit; 1e-6 leaves room for a test
    // built with other flags than ./train (another matmul tile: differences of a few fp32 ulps, ~1e-7)
    check_tensor("dump", "(2,B,T,V)", got, want, 2 * nl, 1e-6);
    free(got), free(want);
    free(d);
    gpt_free(&base);
    gpt_free(&cls);
}

// ---------------------------------------------------------------------------- the flag table
// flags.h's FLAGS is the one list of flags: --help, parsing and the README's table come from it. These
// checks fail if a flag is added to Args without a row, if --help leaves one out, or if the README's table
// was not regenerated after a change (paste `./train --help-markdown` between its markers).
static char* read_text(const char* path, const char* cmd) {
    FILE* f = path ? fopen(path, "rb") : popen(cmd, "r");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, k;
    char* s = (char*)mallocCheck(cap);
    while ((k = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (n + 1 == cap) s = (char*)realloc(s, cap *= 2);
    }
    s[n] = 0;
    if (path) fclose(f);
    else pclose(f);
    return s;
}

static void test_flag_table(void) {
    char* help = read_text(NULL, "./train --help");
    int missing = 0, cmds_missing = 0;
    const char* first_missing = "";
    for (int i = 0; i < NUM_FLAGS; i++) {
        char want[64];
        snprintf(want, sizeof want, "  %s ", FLAGS[i].name);  // the flag at the start of its help line
        char want_nl[64];
        snprintf(want_nl, sizeof want_nl, "  %s\n", FLAGS[i].name);
        if (!help || (!strstr(help, want) && !strstr(help, want_nl))) missing++, first_missing = FLAGS[i].name;
    }
    for (int i = 0; i < NUM_COMMANDS; i++) {
        char want[64];
        snprintf(want, sizeof want, " %s", COMMANDS[i].name);
        if (!help || !strstr(strstr(help, "usage:"), want)) cmds_missing++;
    }
    report(help && missing == 0 && cmds_missing == 0, "--help lists all %d flags of the table (%d missing%s%s) and all %d commands (%d missing)",
           NUM_FLAGS, missing, missing ? ", e.g. " : "", first_missing, NUM_COMMANDS, cmds_missing);
    free(help);
    // every flag given its default explicitly parses to the same Args as no flags at all
    char* av0[] = {(char*)"./train", NULL};
    Args base = parse_args(1, av0);
    int differ = 0;
    const char* first_differ = "";
    for (int i = 0; i < NUM_FLAGS; i++) {
        if (!FLAGS[i].def) continue;
        char* av[] = {(char*)"./train", (char*)FLAGS[i].name, (char*)FLAGS[i].def, NULL};
        Args a = parse_args(3, av);
        a.given[i] = 0, a.argc = base.argc, a.argv = base.argv;
        if (memcmp(&a, &base, sizeof a)) differ++, first_differ = FLAGS[i].name;
    }
    report(differ == 0, "each flag typed with its default value parses as the default (%d differ%s%s)", differ,
           differ ? ", e.g. " : "", first_differ);
    char* md = read_text(NULL, "./train --help-markdown");
    char* readme = read_text("README.md", NULL);
    const char* start = readme ? strstr(readme, "<!-- flags: ./train --help-markdown -->\n") : NULL;
    const char* end = start ? strstr(start, "<!-- end flags -->") : NULL;
    int same = md && start && end && (size_t)(end - start) == strlen(md) + 40 && !strncmp(start + 40, md, strlen(md));
    report(same, "README.md's flag table is ./train --help-markdown (%s)", same ? "identical" : start ? "differs: regenerate it" : "markers not found");
    free(md), free(readme);
    expect_error("unknown command", "./train frobnicate --steps 1", "unknown command 'frobnicate'");
}

// Files as a careless user handles them (issue 18, the writer half): outputs never replace inputs, links or
// special files; two runs never share a folder; nothing half-written or temporary is left after an error; a
// resumed run logs each step once; every number a flag takes is range-checked; what cannot apply says so.
static void test_file_safety(void) {
    printf("-- files and flags: what the writers refuse, locks, temp files, ranges (runs ./train)\n");
    char out[1024];
    const char* tiny = "./train --init 1,1,8 --vocab 64 --train test_tmp/tok.bin --batch 2 --seq 8";
    char cmd[1400];
    // --log pointing at the training data: refused, the data intact
    long before = 0, after = 0;
    FILE* f = fopen("test_tmp/tok.bin", "rb");
    before = f ? (long)file_size(f) : -1;
    if (f) fclose(f);
    snprintf(cmd, sizeof cmd, "%s --steps 1 --log test_tmp/tok.bin", tiny);
    expect_error("--log is the --train file", cmd, "is the input --train test_tmp/tok.bin");
    f = fopen("test_tmp/tok.bin", "rb");
    after = f ? (long)file_size(f) : -1;
    if (f) fclose(f);
    report(before > 1024 && before == after, "--log at the --train file: the data is untouched (%ld bytes, was %ld)", after, before);
    // a symlinked log: refused, its target untouched
    system("rm -rf test_tmp/fs_link && mkdir -p test_tmp/fs_link && echo precious > test_tmp/fs_target && ln -s ../fs_target test_tmp/fs_link/log.jsonl");
    snprintf(cmd, sizeof cmd, "%s --steps 1 --out test_tmp/fs_link", tiny);
    expect_error("a symlinked DIR/log.jsonl", cmd, "is a symbolic link");
    run_cmd("cat test_tmp/fs_target", "precious", out, sizeof out);
    report(strstr(out, "precious") != NULL, "symlinked log: the link's target is untouched");
    // the run folder is created (with its parents), and an export may not replace its own input or a FIFO
    snprintf(cmd, sizeof cmd, "rm -rf test_tmp/fs_new && %s --steps 2 --out test_tmp/fs_new/a/b", tiny);
    int rc = run_cmd(cmd, "done:", out, sizeof out);
    report(rc == 0 && access("test_tmp/fs_new/a/b/model.bin", F_OK) == 0, "--out in a missing folder: created with its parents (exit %d)", rc);
    expect_error("export over its own --model", "./train export --model test_tmp/fs_new/a/b/model.bin --format llmc --out test_tmp/fs_new/a/b/model.bin",
                 "is the input --model");
    system("rm -f test_tmp/fs_fifo && mkfifo test_tmp/fs_fifo");
    expect_error("export onto a FIFO", "./train export --model test_tmp/fs_new/a/b/model.bin --format llmc --out test_tmp/fs_fifo", "not a regular file");
    // a write that fails half way (a file-size limit, as a full disk would): an error naming the file, no temp left
    rc = run_cmd("sh -c \"trap '' XFSZ; ulimit -f 2; ./train export --model test_tmp/fs_new/a/b/model.bin --format llmc --out test_tmp/fs_big.bin\"",
                 "error:", out, sizeof out);
    int leftovers = system("ls test_tmp | grep -q 'fs_big.bin.tmp'") == 0;
    report(rc != 0 && strstr(out, "fs_big.bin") && !leftovers && access("test_tmp/fs_big.bin", F_OK) != 0,
           "a write that fails half way: exit %d, \"%s\", no temp file and no partial file left", rc, out);
    // a log that cannot be written (the file-size limit again): the run stops naming the log, not exit 0
    snprintf(cmd, sizeof cmd, "sh -c \"trap '' XFSZ; ulimit -f 4; %s --steps 300 --print-every 0 --log test_tmp/fs_biglog.jsonl\"", tiny);
    rc = run_cmd(cmd, "error:", out, sizeof out);
    report(rc != 0 && strstr(out, "fs_biglog.jsonl: error: write failed"), "a log write that fails stops the run: exit %d, \"%s\"", rc, out);
    // two runs into one folder: the second stops naming the first's pid
    snprintf(cmd, sizeof cmd, "(rm -rf test_tmp/fs_lock; (%s --steps 1000000 --print-every 0 --out test_tmp/fs_lock > /dev/null 2>&1 & echo $! > test_tmp/fs_lock.pid); "
             "for i in $(seq 200); do [ -s test_tmp/fs_lock/.lock ] && break; sleep 0.1; done; %s --steps 1 --out test_tmp/fs_lock; "
             "rc=$?; kill $(cat test_tmp/fs_lock.pid); exit $rc)", tiny, tiny);
    rc = run_cmd(cmd, "error:", out, sizeof out);
    report(rc != 0 && strstr(out, "fs_lock: error: the folder is in use by another process (pid "), "two runs into one --out: exit %d, \"%s\"", rc, out);
    // resume after a kill: the temp files of the killed run are removed, no step is logged twice
    snprintf(cmd, sizeof cmd, "rm -rf test_tmp/fs_res && %s --steps 6 --save-every 2 --stop-at 4 --out test_tmp/fs_res", tiny);
    run_cmd(cmd, "done:", out, sizeof out);
    system("echo '{\"step\": 5, \"loss\": 1}' >> test_tmp/fs_res/log.jsonl && touch test_tmp/fs_res/ckpt.bin.tmp.99999.0badf00d");
    snprintf(cmd, sizeof cmd, "%s --steps 6 --save-every 2 --out test_tmp/fs_res --resume test_tmp/fs_res", tiny);
    rc = run_cmd(cmd, "removed", out, sizeof out);
    double losses[16];
    int n = read_log_losses("test_tmp/fs_res/log.jsonl", losses, 16);
    int steps_ok = n == 6;
    f = fopen("test_tmp/fs_res/log.jsonl", "r");
    char line[512];
    for (int k = 1; f && fgets(line, sizeof line, f); k++) {
        int step = -1;
        steps_ok &= sscanf(line, "{\"step\": %d", &step) == 1 && step == k;
    }
    if (f) fclose(f);
    report(rc == 0 && strstr(out, "ckpt.bin.tmp.99999.0badf00d") && access("test_tmp/fs_res/ckpt.bin.tmp.99999.0badf00d", F_OK) != 0,
           "resume: a killed run's temp file is removed (\"%s\")", out);
    report(steps_ok, "resume after steps logged past the checkpoint: steps 1..6 logged once each (%d lines)", n);
    snprintf(cmd, sizeof cmd, "%s --steps 6 --save-every 2 --out test_tmp/fs_res --resume test_tmp/fs_res --lr 1e-3", tiny);
    run_cmd(cmd, "note: resuming", out, sizeof out);
    report(strstr(out, "note: resuming with --lr 1e-3; the run in test_tmp/fs_res was started with --lr (default)") != NULL,
           "resume with a flag that differs from the run's command.txt says so: \"%s\"", out);
    // numbers: whole, in their type, in their range (each names the flag, the value and the range)
    static const char* const bad_numbers[][2] = {
        {"--batch 4294967298", "--batch 4294967298 must be in [1, 65536]"}, {"--steps 9999999999", "--steps 9999999999 must be in [0, 1000000000]"},
        {"--eps -1", "--eps -1 must be in (0, 1]"}, {"--beta2 2", "--beta2 2 must be in [0, 1)"},
        {"--min-lr-frac -5", "--min-lr-frac -5 must be in [0, 1]"}, {"--batch 4x", "--batch expects an integer, got '4x'"},
        {"--lr 1e999", "--lr expects a number"}, {"--seed -3", "--seed expects an integer in [0, 2^64)"},
        {"--seed 18446744073709551616", "--seed expects an integer in [0, 2^64)"}, {"--vocab 2147483647", "--vocab 2147483647 must be in [1, 4194304]"},
        {"--lora-targets ''", "--lora-targets needs a value, got an empty string"},
        {"--method lora --lora-targets ,", "--lora-targets ',' names no target"},
        {"--method lora --lora-rank 100000", "--lora-rank 100000 must be in [1, 65536]"},
        {"--method lora --lora-rank 9", "--lora-rank 9 is larger than the model's width C = 8"},
        {"--method adapter --adapter-dim 1000000", "--adapter-dim 1000000 must be in [1, 65536]"},
    };
    for (size_t k = 0; k < sizeof bad_numbers / sizeof bad_numbers[0]; k++) {
        snprintf(cmd, sizeof cmd, "%s --steps 1 %s", tiny, bad_numbers[k][0]);
        expect_error(bad_numbers[k][0], cmd, bad_numbers[k][1]);
    }
    expect_error("--init with a huge C", "./train --init 1,1,2147483647 --vocab 64 --train test_tmp/tok.bin --steps 1", "bad --init '1,1,2147483647'");
    expect_error("--init past memory", "./train --init 64,16,65536 --train test_tmp/tok.bin --steps 1", "GB of fp32 weights");
    // a flag that cannot apply says so
    expect_error("a train flag on eval", "./train eval --model test_tmp/fs_new/a/b/model.bin --data test_tmp/tok.bin --lr 1", "--lr does not apply to ./train eval");
    snprintf(cmd, sizeof cmd, "%s --steps 1 --lora-rank 4", tiny);
    expect_error("a LoRA flag with --method full", cmd, "--lora-rank is for --method lora, and --method is full");
    snprintf(cmd, sizeof cmd, "%s --steps 1 --eval-every 5", tiny);
    expect_error("--eval-every without --val", cmd, "--eval-every needs validation data");
    snprintf(cmd, sizeof cmd, "%s --steps 1 --epochs 1", tiny);
    expect_error("--epochs with --steps", cmd, "--epochs sets the step count");
    // examples cut by --seq are counted, in the output and in the report
    Dataset ds;
    char err[256];
    size_t longer = 0;
    if (dataset_open(&ds, "test_tmp/cls.ds", err, sizeof err) == 0) {
        for (uint64_t i = 0; i < ds.count; i++) {
            Example ex;
            if (dataset_get(&ds, i, &ex) == 0 && ex.n > 8) longer++;
        }
        dataset_close(&ds);
    }
    char needle[128];
    snprintf(needle, sizeof needle, "data: %zu of 64 examples are longer than --seq 8", longer);
    rc = run_cmd("./train --model test_tmp/base/model.bin --train test_tmp/cls.ds --batch 4 --seq 8 --steps 1 --out test_tmp/fs_cut", needle, out, sizeof out);
    run_cmd("cat test_tmp/fs_cut/report.md", "cut by --seq", out, sizeof out);
    report(rc == 0 && longer > 0 && strstr(out, "cut by --seq"), "--seq 8 on examples of 3-12 tokens: %zu cut, counted on the console and in report.md", longer);
    // label names travel with the data: a split prepared with the labels in another order is refused
    f = fopen("test_tmp/fs_lab.tsv", "w");
    for (int k = 0; f && k < 40; k++) fprintf(f, "%s\tsome text %d %s\n", k % 2 ? "pos" : "neg", k, k % 2 ? "good" : "bad");
    if (f) fclose(f);
    rc = run_cmd("./dataprep cls --tokenizer bytes --no-header --label-col 0 --text-col 1 --input-format tsv --split 100/0/0 "
                 "--out test_tmp/fs_ab test_tmp/fs_lab.tsv > /dev/null && ./dataprep cls --tokenizer bytes --no-header --label-col 0 "
                 "--text-col 1 --input-format tsv --split 100/0/0 --labels pos,neg --out test_tmp/fs_ba test_tmp/fs_lab.tsv", "wrote", out, sizeof out);
    Dataset la, lb;
    char na[2][256] = {{0}}, nb[2][256] = {{0}};
    int ka = -1, kb = -1;
    if (rc == 0 && dataset_open(&la, "test_tmp/fs_ab_train.ds", err, sizeof err) == 0) ka = dataset_label_names(&la, "a", na, err, sizeof err), dataset_close(&la);
    if (rc == 0 && dataset_open(&lb, "test_tmp/fs_ba_train.ds", err, sizeof err) == 0) kb = dataset_label_names(&lb, "b", nb, err, sizeof err), dataset_close(&lb);
    report(ka == 2 && kb == 2 && !strcmp(na[0], "neg") && !strcmp(na[1], "pos") && !strcmp(nb[0], "pos") && !strcmp(nb[1], "neg"),
           "dataprep cls stores the label names in the .ds file (sorted: %s,%s; --labels: %s,%s)", na[0], na[1], nb[0], nb[1]);
    expect_error("validation data with the labels in another order",
                 "./train --init 1,1,8 --vocab 257 --train test_tmp/fs_ab_train.ds --val test_tmp/fs_ba_train.ds --batch 2 --seq 8 --steps 1",
                 "fs_ba_train.ds: error: class 0 is 'pos' here but 'neg' for the model");
    // the model carries the names it was trained on (model.bin, ckpt.bin, adapter.bin), and eval compares them
    rc = run_cmd("./train --init 1,1,8 --vocab 257 --train test_tmp/fs_ab_train.ds --batch 2 --seq 8 --steps 1 --out test_tmp/fs_labrun"
                 " && ./train --model test_tmp/fs_labrun/model.bin --train test_tmp/fs_ab_train.ds --batch 2 --seq 8 --steps 1 --method lora"
                 " --out test_tmp/fs_labrun2", "done:", out, sizeof out);
    GPT lm;
    int names_ok = rc == 0;
    const char* files[] = {"test_tmp/fs_labrun/model.bin", "test_tmp/fs_labrun/ckpt.bin", "test_tmp/fs_labrun2/model.bin"};
    for (int k = 0; names_ok && k < 3; k++) {
        load_model(&lm, files[k], NULL);
        names_ok = lm.label_names && !strcmp(lm.label_names[0], "neg") && !strcmp(lm.label_names[1], "pos");
        gpt_free(&lm);
    }
    load_model(&lm, "test_tmp/fs_labrun/model.bin", NULL);
    free(lm.label_names), lm.label_names = NULL;
    load_adapter(&lm, "test_tmp/fs_labrun2/adapter.bin");
    names_ok = names_ok && lm.label_names && !strcmp(lm.label_names[1], "pos");
    gpt_free(&lm);
    report(names_ok, "a classifier's checkpoints (model.bin, ckpt.bin, LoRA adapter.bin) keep the label names neg,pos");
    expect_error("eval on data with the labels in another order", "./train eval --model test_tmp/fs_labrun/model.bin --data test_tmp/fs_ba_train.ds --batch 2 --seq 8",
                 "class 0 is 'pos' here but 'neg' for the model");
    rc = run_cmd("./train eval --model test_tmp/fs_labrun/model.bin --data test_tmp/fs_ab_train.ds --batch 2 --seq 8", "\"accuracy\"", out, sizeof out);
    report(rc == 0, "eval on data with the same names: runs (exit %d)", rc);
    rc = run_cmd("echo 'some text 3 good' | ./train classify --model test_tmp/fs_labrun/model.bin --tokenizer bytes", "\t", out, sizeof out);
    report(rc == 0 && (!strncmp(out, "neg\t", 4) || !strncmp(out, "pos\t", 4)), "classify prints the model's own label names: \"%s\"", out);
    expect_error("classify --labels against the model's names", "echo x | ./train classify --model test_tmp/fs_labrun/model.bin --tokenizer bytes --labels pos,neg",
                 "--labels names class 0 'pos', but the model was trained with 'neg' there");
    // eval of data with nothing to evaluate: an error, not {"loss": nan}
    expect_error("eval with no targets", "./train eval --model test_tmp/base/model.bin --data test_tmp/sft.ds --batch 4 --seq 1", "no targets to evaluate");
}

// ---------------------------------------------------------------------------- hostile files (issue 18)
// Each file below is a real file our writers made, then damaged the way a careless or hostile user would;
// each must get a one-line error (what, where) and exit 1, never a crash, a hang, a silent load or an
// allocation the file cannot back. The same files are kept under dev/fuzz/regress/ for ./fuzz_replay.
static void write_whole(const char* path, const void* p, size_t n) {
    FILE* f = fopen_check(path, "wb");
    if (n) fwrite_check(p, n, f, path);
    fclose(f);
}
// A copy of src with the int32 at index i (of the file as int32s) set to v: a header field.
static void copy_with_i32(const char* src, const char* dst, size_t i, int32_t v) {
    size_t n;
    unsigned char* b = read_whole(src, &n);
    if (b && 4 * i + 4 <= n) memcpy(b + 4 * i, &v, 4);
    write_whole(dst, b, n);
    free(b);
}

// A Llama-style model on the command line: resume gives the same run, the checkpoint keeps the architecture
// (eval of model.bin = the run's own last validation), LoRA on Llama's module names, and the mixed-up flags
// and corrupt headers are refused with one line each. Uses test_cli's token file.
static void test_llama_cli(void) {
    printf("-- llama on the command line (runs ./train)\n");
    const char* common = "./train --init 2,4,16 --arch llama --kv-heads 2 --mlp-width 40 --rope-theta 500000 --norm-eps 1e-6 "
                         "--untied 1 --vocab 64 --max-seq 32 --train test_tmp/tok.bin --val test_tmp/tok.bin --batch 2 --seq 16 "
                         "--steps 10 --lr 1e-2 --warmup 2 --seed 5";
    char cmd[1024], out[1024];
    mkdir("test_tmp/llama_full", 0755);
    mkdir("test_tmp/llama_part", 0755);
    snprintf(cmd, sizeof cmd, "%s --log test_tmp/llama_full.jsonl --out test_tmp/llama_full", common);
    int rc1 = run_cmd(cmd, "done:", out, sizeof out);
    snprintf(cmd, sizeof cmd, "%s --log test_tmp/llama_part.jsonl --out test_tmp/llama_part --stop-at 4", common);
    int rc2 = run_cmd(cmd, "done:", out, sizeof out);
    snprintf(cmd, sizeof cmd, "%s --log test_tmp/llama_part.jsonl --out test_tmp/llama_part --resume test_tmp/llama_part", common);
    int rc3 = run_cmd(cmd, "done:", out, sizeof out);
    double a[16], b[16];
    int na = read_log_losses("test_tmp/llama_full.jsonl", a, 16), nb = read_log_losses("test_tmp/llama_part.jsonl", b, 16);
    int same = rc1 == 0 && rc2 == 0 && rc3 == 0 && na == 10 && nb == 10 && a[9] < a[0];
    for (int i = 0; same && i < 10; i++) same = a[i] == b[i];
    GPT m1, m2;
    load_model(&m1, "test_tmp/llama_full/model.bin", NULL);
    load_model(&m2, "test_tmp/llama_part/model.bin", NULL);
    const GPTConfig* c = &m1.config;
    int kept = c->arch == ARCH_LLAMA && c->n_kv_heads == 2 && c->F == 40 && c->rope_theta == 500000.0f && c->norm_eps == 1e-6f &&
               c->untied == 1 && m1.num_parameters == m2.num_parameters && !memcmp(m1.params_memory, m2.params_memory, m1.num_parameters * 4);
    report(same && kept, "llama: 4 steps + resume = one run of 10 (losses %.4f -> %.4f), the checkpoint keeps arch, NKV, F, theta, eps, "
           "the untied head, and the weights bit for bit", na ? a[0] : 0.0, na ? a[9] : 0.0);
    gpt_free(&m1);
    gpt_free(&m2);
    // LoRA by PEFT's module names: 7 targets, 2 layers, r = 4; trainable = 2 * 4 * (q 16+16, k 16+8, v 16+8,
    // o 16+16, gate 16+40, up 16+40, down 40+16) = 2 * 4 * 280 = 2240
    snprintf(cmd, sizeof cmd, "./train --model test_tmp/llama_full/model.bin --method lora --lora-rank 4 --lora-targets "
             "q_proj,k_proj,v_proj,o_proj,gate,up,down --train test_tmp/tok.bin --batch 2 --seq 16 --steps 3 --out test_tmp/llama_lora");
    mkdir("test_tmp/llama_lora", 0755);
    rc1 = run_cmd(cmd, "trainable: ", out, sizeof out);
    report(rc1 == 0 && strstr(out, "trainable: 2240 parameters"), "llama LoRA on q,k,v,o,gate,up,down (PEFT names): %s", out);
    expect_error("--lora-targets q on a GPT-2", "./train --init 1,2,16 --vocab 64 --train test_tmp/tok.bin --method lora --lora-targets q --steps 1",
                 "--lora-targets 'q' is a Llama module; this is a gpt2 model");
    expect_error("--kv-heads on a GPT-2", "./train --init 1,2,16 --vocab 64 --kv-heads 1 --train test_tmp/tok.bin --steps 1",
                 "--kv-heads is for Llama-style models");
    expect_error("--kv-heads with a loaded model", "./train --model test_tmp/llama_full/model.bin --kv-heads 1 --train test_tmp/tok.bin --steps 1",
                 "--kv-heads is for --init");
    expect_error("NKV not dividing NH", "./train --init 1,4,16 --arch llama --kv-heads 3 --vocab 64 --train test_tmp/tok.bin --steps 1",
                 "--kv-heads 3 with 4 heads");
    expect_error("odd head size", "./train --init 1,2,6 --arch llama --vocab 64 --train test_tmp/tok.bin --steps 1", "has head size 3");
    copy_with_i32("test_tmp/llama_full/model.bin", "test_tmp/llama_badkv.bin", 28, 3);
    expect_error("checkpoint header [28] (NKV) = 3 of NH 4", "./train eval --model test_tmp/llama_badkv.bin --data test_tmp/tok.bin --seq 16",
                 "KV heads (must divide NH) out of range");
    copy_with_i32("test_tmp/llama_full/model.bin", "test_tmp/llama_badarch.bin", 22, 0);  // llama fields under a GPT-2 arch
    expect_error("a llama header marked gpt2", "./train eval --model test_tmp/llama_badarch.bin --data test_tmp/tok.bin --seq 16",
                 "Llama fields in a model of another architecture");
    copy_with_i32("test_tmp/llama_full/model.bin", "test_tmp/llama_badtheta.bin", 29, 0x7fc00000);  // theta NaN
    expect_error("RoPE theta NaN", "./train eval --model test_tmp/llama_badtheta.bin --data test_tmp/tok.bin --seq 16", "RoPE theta");
}
// A copy of src with n bytes at offset at replaced (at < 0: from the end).
static void copy_with_bytes(const char* src, const char* dst, long at, const void* p, size_t k) {
    size_t n;
    unsigned char* b = read_whole(src, &n);
    size_t pos = at < 0 ? n - (size_t)(-at) : (size_t)at;
    if (b && pos + k <= n) memcpy(b + pos, p, k);
    write_whole(dst, b, n);
    free(b);
}
// A copy of a safetensors file with `from` replaced by `to` in its JSON header (the header length updated;
// data offsets are relative to the data, so they stay right).
static void copy_st_edited(const char* src, const char* dst, const char* from, const char* to) {
    size_t n;
    unsigned char* b = read_whole(src, &n);
    uint64_t hlen = 0;
    if (b && n >= 8) memcpy(&hlen, b, 8);
    char* hdr = (char*)mallocCheck(hlen + strlen(to) + 1);
    memcpy(hdr, b + 8, hlen);
    hdr[hlen] = 0;
    char* at = strstr(hdr, from);
    char* out = (char*)mallocCheck(n + strlen(to) + 8);
    size_t len = 0;
    if (at) {
        memcpy(out + 8, hdr, (size_t)(at - hdr)), len = (size_t)(at - hdr);
        memcpy(out + 8 + len, to, strlen(to)), len += strlen(to);
        memcpy(out + 8 + len, at + strlen(from), hlen - (size_t)(at - hdr) - strlen(from));
        len += hlen - (size_t)(at - hdr) - strlen(from);
    } else {
        memcpy(out + 8, hdr, hlen), len = hlen;
        printf("(copy_st_edited: '%s' not found in %s)\n", from, src);
    }
    uint64_t nl = len;
    memcpy(out, &nl, 8);
    memcpy(out + 8 + len, b + 8 + hlen, n - 8 - hlen);
    write_whole(dst, out, 8 + len + n - 8 - hlen);
    free(b), free(hdr), free(out);
}
// The text of tensor name's entry in a safetensors header, {"dtype":...}, into out.
static void st_entry_text(const char* path, const char* name, char* out, size_t cap) {
    size_t n;
    unsigned char* b = read_whole(path, &n);
    char key[160];
    snprintf(key, sizeof key, "\"%s\":{", name);
    const char* s = b ? strstr((const char*)b + 8, key) : NULL;
    const char* e = s ? strchr(s, '}') : NULL;
    snprintf(out, cap, "%.*s", s && e ? (int)(e + 1 - s) : 0, s ? s : "");
    free(b);
}

static void test_hostile_files(void) {
    printf("-- hostile files: every reader refuses a damaged file with a one-line error\n");
    mkdir("test_tmp/hostile", 0755);
    const char* D = "test_tmp/hostile";
    char cmd[1024], path[256], src[640];
    int ids[512];
    for (int i = 0; i < 512; i++) ids[i] = (i * 7) % 64;
    write_tokens("test_tmp/hostile/tok.bin", ids, 512, 64);
    GPT m;
    build_random(&m, 2, 2, 8, 64, 5);  // small (10 KB), so that the files can be kept under dev/fuzz/regress
    save_checkpoint(&m, "test_tmp/hostile/base.bin", NULL);
    export_hf(&m, "test_tmp/hostile/hf");
    export_gguf(&m, "test_tmp/hostile/base.gguf", 0, NULL);
    GPTConfig with = m.config;
    with.lora_r = 2, with.lora_targets = LORA_QKV | LORA_FC, with.lora_alpha = 4, with.lora_first = 0, with.lora_last = 1;
    uint64_t rng = 3;
    gpt_set_peft(&m, with, &rng);
    save_checkpoint(&m, "test_tmp/hostile/lora.bin", NULL);
    save_checkpoint_kind(&m, "test_tmp/hostile/lora_adapter.bin", NULL, CKPT_ADAPTER);
    export_peft(&m, "test_tmp/hostile/peft", 0.0f);
    gpt_free(&m);
    const char* eval = "--data test_tmp/hostile/tok.bin --batch 2 --seq 8";

    // the LoRA layer range of a checkpoint (header [16], [17]) and of an adapter file
    copy_with_i32("test_tmp/hostile/lora.bin", "test_tmp/hostile/lora_range.bin", 17, 5);
    expect_error("checkpoint LoRA layers 0-5 of L=2 (export --merge 1)",
                 "./train export --model test_tmp/hostile/lora_range.bin --format safetensors --merge 1 --out test_tmp/hostile/x", "LoRA layer range");
    copy_with_i32("test_tmp/hostile/lora.bin", "test_tmp/hostile/lora_range2.bin", 16, -3);
    expect_error("checkpoint LoRA layers -3-1 (--format peft)",
                 "./train export --model test_tmp/hostile/lora_range2.bin --format peft --out test_tmp/hostile/x", "LoRA layer range");
    copy_with_i32("test_tmp/hostile/lora_adapter.bin", "test_tmp/hostile/adapter_range.bin", 17, 9);
    expect_error("adapter LoRA layers 0-9 (--adapter ... --merge 1)",
                 "./train export --model test_tmp/hostile/base.bin --adapter test_tmp/hostile/adapter_range.bin --format safetensors --merge 1 --out test_tmp/hostile/x",
                 "LoRA layer range");
    // checkpoint kind 7; V = 2^24 in a file of a small model (refused by its size, before any allocation);
    // V = 2^28 (out of range: not "out of memory ... --batch")
    copy_with_i32("test_tmp/hostile/base.bin", "test_tmp/hostile/kind7.bin", 2, 7);
    snprintf(cmd, sizeof cmd, "./train eval --model test_tmp/hostile/kind7.bin %s", eval);
    expect_error("checkpoint kind 7", cmd, "checkpoint kind 7");
    copy_with_i32("test_tmp/hostile/base.bin", "test_tmp/hostile/v24a.bin", 4, 1 << 24);
    copy_with_i32("test_tmp/hostile/v24a.bin", "test_tmp/hostile/v24.bin", 8, 1 << 24);
#ifdef __SANITIZE_ADDRESS__
    const char* limit = "";  // AddressSanitizer reserves terabytes of address space: no ulimit -v under it
#else
    const char* limit = "ulimit -v 400000; ";  // 400 MB: a real model of this size loads, the 537 MB wte claimed cannot
#endif
    snprintf(cmd, sizeof cmd, "%s./train eval --model test_tmp/hostile/v24.bin %s", limit, eval);
    expect_error("checkpoint claiming V=2^24 (checked before allocating)", cmd, "v24.bin: error: tensor 0 is 'wte' with 512 elements");
    snprintf(cmd, sizeof cmd, "%s./train eval --model test_tmp/hostile/base.bin %s", limit, eval);
    char out[1024];
    report(run_cmd(cmd, "loss", out, sizeof out) == 0, "hostile: the undamaged model loads under the same memory limit: %s", out);
    copy_with_i32("test_tmp/hostile/base.bin", "test_tmp/hostile/v28a.bin", 4, 1 << 28);
    copy_with_i32("test_tmp/hostile/v28a.bin", "test_tmp/hostile/v28.bin", 8, 1 << 28);
    snprintf(cmd, sizeof cmd, "./train eval --model test_tmp/hostile/v28.bin %s", eval);
    expect_error("checkpoint claiming V=2^28 (the file named, not the flags)", cmd, "hostile/v28.bin: error: vocabulary V out of range");
    // --model given a FIFO: refused at once instead of blocking on open (timeout 20: a hang fails the check)
    remove("test_tmp/hostile/fifo");
    if (mkfifo("test_tmp/hostile/fifo", 0644) == 0) {
        snprintf(cmd, sizeof cmd, "timeout 20 ./train eval --model test_tmp/hostile/fifo %s", eval);
        expect_error("--model a FIFO", cmd, "not a regular file");
    }

    // training checkpoints (--resume): a trainable count that overflows x8, a step of 1e12
    snprintf(cmd, sizeof cmd, "./train --model test_tmp/hostile/base.bin --train test_tmp/hostile/tok.bin --batch 2 --seq 8 --steps 2 --out %s/run > /dev/null 2>&1", D);
    mkdir("test_tmp/hostile/run", 0755);
    int rc = system(cmd);
    size_t ckn;
    unsigned char* ck = read_whole("test_tmp/hostile/run/ckpt.bin", &ckn);
    report(rc == 0 && ck && ckn > sizeof(TrainState) + 8, "hostile: a training checkpoint to damage (%zu bytes)", ckn);
    if (ck && ckn > sizeof(TrainState) + 8) {
        int64_t nt;
        size_t nt_at = 0;
        // the count sits after the tensors and the mask: find it as the int64 whose m and v fill the rest
        for (size_t at = 1024; at + 8 <= ckn; at += 1) {
            memcpy(&nt, ck + at, 8);
            if (nt > 0 && at + 8 + (size_t)nt * 8 + sizeof(TrainState) == ckn) { nt_at = at; break; }
        }
        int64_t huge = (int64_t)1 << 61;
        copy_with_bytes("test_tmp/hostile/run/ckpt.bin", "test_tmp/hostile/resume_count.ckpt", (long)nt_at, &huge, 8);
        mkdir("test_tmp/hostile/r1", 0755);
        copy_with_bytes("test_tmp/hostile/resume_count.ckpt", "test_tmp/hostile/r1/ckpt.bin", 0, "", 0);
        snprintf(cmd, sizeof cmd, "./train --resume %s/r1 --train test_tmp/hostile/tok.bin --batch 2 --seq 8 --steps 4 --out %s/r1", D, D);
        expect_error("--resume: trainable count 2^61 (x8 overflows)", cmd, "trainable count");
        int64_t step = 1000000000000LL;
        mkdir("test_tmp/hostile/r2", 0755);
        copy_with_bytes("test_tmp/hostile/run/ckpt.bin", "test_tmp/hostile/r2/ckpt.bin", -(long)sizeof(TrainState), &step, 8);
        snprintf(cmd, sizeof cmd, "./train --resume %s/r2 --train test_tmp/hostile/tok.bin --batch 2 --seq 8 --steps 4 --out %s/r2", D, D);
        expect_error("--resume: step 1e12", cmd, "step out of range");
        copy_with_bytes("test_tmp/hostile/r2/ckpt.bin", "test_tmp/hostile/resume_step.ckpt", 0, "", 0);
    }
    free(ck);

    // safetensors: shapes exactly (a transposed and a 1-D c_attn), a shape whose product wraps to the right
    // count, overlapping data, a duplicate name; config.json's n_inner -5
    char e[512], to[1200];
    st_entry_text("test_tmp/hostile/hf/model.safetensors", "h.0.attn.c_attn.weight", e, sizeof e);
    snprintf(src, sizeof src, "%s", e);
    char* sh = strstr(e, "[8,24]");
    if (sh) {
        memcpy(sh, "[24,8]", 6);
        snprintf(to, sizeof to, "%s", e);
        copy_st_edited("test_tmp/hostile/hf/model.safetensors", "test_tmp/hostile/st_transposed.safetensors", src, to);
        memcpy(sh, "[192] ", 6);
        copy_st_edited("test_tmp/hostile/hf/model.safetensors", "test_tmp/hostile/st_1d.safetensors", src, e);
    }
    char ln[512], ln2[512], lnb[512];
    st_entry_text("test_tmp/hostile/hf/model.safetensors", "h.0.ln_1.weight", ln, sizeof ln);
    snprintf(ln2, sizeof ln2, "%s", ln);
    char* s8 = strstr(ln2, "[8]");  // 8 floats; 8*5*5581*8681*49477*384773 = 8 (2^62 + 1) = 2^65 + 8 wraps to 8
    if (s8) {
        char wrapped[600];
        snprintf(wrapped, sizeof wrapped, "%.*s[8,5,5581,8681,49477,384773]%s", (int)(s8 - ln2), ln2, s8 + 3);
        copy_st_edited("test_tmp/hostile/hf/model.safetensors", "test_tmp/hostile/st_wrap.safetensors", ln, wrapped);
    }
    st_entry_text("test_tmp/hostile/hf/model.safetensors", "h.0.ln_1.bias", lnb, sizeof lnb);
    const char* off_w = strstr(ln, "\"data_offsets\"");
    const char* off_b = strstr(lnb, "\"data_offsets\"");
    if (off_w && off_b) {  // the bias reads the weight's bytes
        snprintf(to, sizeof to, "%.*s%s", (int)(off_b - lnb), lnb, off_w);
        copy_st_edited("test_tmp/hostile/hf/model.safetensors", "test_tmp/hostile/st_overlap.safetensors", lnb, to);
    }
    snprintf(to, sizeof to, "%s,%s", ln, ln);  // the same entry twice
    copy_st_edited("test_tmp/hostile/hf/model.safetensors", "test_tmp/hostile/st_dup.safetensors", ln, to);
    static const struct { const char *what, *file, *needle; } st_cases[] = {
        {"safetensors: c_attn stored transposed", "st_transposed", "has shape [24, 8]"},
        {"safetensors: c_attn stored 1-D", "st_1d", "has shape [192]"},
        {"safetensors: a shape whose product wraps 64 bits", "st_wrap", "overflows 64 bits"},
        {"safetensors: two tensors on the same bytes", "st_overlap", "overlap"},
        {"safetensors: a tensor name twice", "st_dup", "appears twice"},
    };
    for (int k = 0; k < (int)(sizeof st_cases / sizeof st_cases[0]); k++) {
        snprintf(path, sizeof path, "%s/%s", D, st_cases[k].file);
        mkdir(path, 0755);
        snprintf(cmd, sizeof cmd, "cp %s/%s.safetensors %s/model.safetensors && cp %s/hf/config.json %s/", D, st_cases[k].file, path, D, path);
        if (system(cmd)) printf("(cp failed)\n");
        snprintf(cmd, sizeof cmd, "./train eval --model %s %s", path, eval);
        expect_error(st_cases[k].what, cmd, st_cases[k].needle);
    }
    mkdir("test_tmp/hostile/st_inner", 0755);
    if (system("cp test_tmp/hostile/hf/model.safetensors test_tmp/hostile/st_inner/")) printf("(cp failed)\n");
    FILE* f = fopen_check("test_tmp/hostile/st_inner/config.json", "w");
    fprintf(f, "{\"model_type\": \"gpt2\", \"n_layer\": 2, \"n_head\": 2, \"n_embd\": 8, \"n_inner\": -5}\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "./train eval --model test_tmp/hostile/st_inner %s", eval);
    expect_error("config.json with n_inner -5", cmd, "st_inner/config.json: error: n_inner is -5");

    // GGUF: C, L and the MLP width each below 2^24 but their product past 2^64 (the size guard wrapped)
    size_t gn;
    unsigned char* g = read_whole("test_tmp/hostile/base.gguf", &gn);
    const char* keys[4] = {"gpt2.embedding_length", "gpt2.block_count", "gpt2.feed_forward_length", "gpt2.attention.head_count"};
    for (int k = 0; g && k < 4; k++) {
        unsigned char* v = (unsigned char*)gguf_entry(g, gn, keys[k]);
        uint32_t big = k < 3 ? (1u << 24) - 1 : 1;
        if (v) memcpy(v + 4, &big, 4);  // after the u32 value type
    }
    unsigned char* te = g ? (unsigned char*)gguf_entry(g, gn, "token_embd.weight") : NULL;
    if (te) { uint64_t c = (1u << 24) - 1; memcpy(te + 4, &c, 8); }  // ne[0] after the u32 n_dims
    if (g) write_whole("test_tmp/hostile/gguf_overflow.gguf", g, gn);
    free(g);
    snprintf(cmd, sizeof cmd, "./train eval --model test_tmp/hostile/gguf_overflow.gguf %s", eval);
    expect_error("GGUF whose parameter count overflows", cmd, "gguf_overflow.gguf: error: gpt2.embedding_length is 1.67772e+07: missing, or out of range");

    // .ds files: an index entry of 2^64-1 (the bounds check wrapped), a label outside [0, K) found when
    // the file is opened (not mid-run, and the file named)
    write_cls_dataset("test_tmp/hostile/cls.ds", 40, 64, 3);
    size_t dn;
    unsigned char* d = read_whole("test_tmp/hostile/cls.ds", &dn);
    uint64_t index_off = 0, r39 = 0;
    if (d && dn > 1024) memcpy(&index_off, d + 44, 8);
    if (d && index_off + 8 * 41 <= dn) {
        memcpy(&r39, d + index_off + 8 * 39, 8);
        uint64_t wrap = UINT64_MAX;
        copy_with_bytes("test_tmp/hostile/cls.ds", "test_tmp/hostile/ds_index.ds", (long)(index_off + 8 * 20), &wrap, 8);
        int32_t seven = 7;
        copy_with_bytes("test_tmp/hostile/cls.ds", "test_tmp/hostile/ds_label.ds", (long)(r39 + 4), &seven, 4);
    }
    free(d);
    // an example file with no examples (dataprep sft when --max-len drops every row of a split) is written,
    // and opens with N = 0 (the writer used to dereference its empty index)
    DsWriter w0;
    char err0[256];
    Dataset ds0;
    int ok0 = ds_writer_open(&w0, "test_tmp/hostile/empty.ds", EXAMPLES_MAGIC, DS_SFT, 64, 0, err0, sizeof err0) == 0 &&
              ds_writer_close(&w0, err0, sizeof err0) == 0 && dataset_open(&ds0, "test_tmp/hostile/empty.ds", err0, sizeof err0) == 0;
    report(ok0 && ds0.count == 0, "hostile: an example file with no examples is written and opens with N = 0 %s", ok0 ? "" : err0);
    if (ok0) dataset_close(&ds0);
    expect_error(".ds index entry 2^64-1",
                 "./train --init 1,1,8 --vocab 64 --max-seq 8 --train test_tmp/hostile/ds_index.ds --batch 2 --seq 8 --steps 30",
                 "ds_index.ds: example 19: index entry");
    mkdir("test_tmp/hostile/ep", 0755);
    expect_error(".ds label 7 of K=3 in the last record (one epoch)",
                 "./train --init 1,1,8 --vocab 64 --max-seq 8 --train test_tmp/hostile/ds_label.ds --batch 2 --seq 8 --epochs 1 --shuffle 0 --out test_tmp/hostile/ep",
                 "ds_label.ds: example 39 has a label outside [0, K)");
}

// ---------------------------------------------------------------------------- continual learning (continual.c)
// EWC's Fisher against PyTorch (ref/ewc_b.safetensors, dev/ref_ewc.py: float64 per-example gradients of
// gpt_b on 6 windows of 13 tokens), the Fisher file's round trip, and the penalty's gradient against central
// differences of the penalty, on a model with frozen slices.
static void test_ewc(void) {
    printf("-- continual learning: EWC (Fisher vs PyTorch, penalty gradient vs finite differences)\n");
    SafeTensors st;
    st_open(&st, "ref/ewc_b.safetensors");
    int N = atoi(meta_or_die(&st, "N")), T = atoi(meta_or_die(&st, "T"));
    const StTensor* tt = st_find(&st, "tokens");
    if (!tt || st_numel(tt) != (size_t)N * T + 1) failf("regenerate with dev/ref_ewc.py", "ref/ewc_b.safetensors: bad 'tokens'");
    int* tok = (int*)mallocCheck(st_numel(tt) * sizeof(int));
    st_read_i32(&st, tt, tok);
    GPT m;
    load_model(&m, "ref/gpt_b.bin", NULL);
    write_tokens("test_tmp/ewc_tokens.bin", tok, st_numel(tt), m.config.V);
    Ewc e;
    ewc_fisher(&e, &m, "test_tmp/ewc_tokens.bin", T, 0);
    report(e.examples == (uint64_t)N, "fisher: %llu examples used (want %d: the windows of %d tokens)", (unsigned long long)e.examples, N, T + 1);
    // Each F is a mean of squared fp32 gradients, which match PyTorch's float64 ones to ~1e-5 of their scale
    // (TOL_GRADS tier); squaring doubles the relative error. Worst seen 8.1e-7 (qkvw): tolerance 5e-6.
    for (int i = 0; i < NUM_BASE_PARAMS; i++) {
        char name[64];
        snprintf(name, sizeof name, "fisher.%s", PARAM_TABLE[i].name);
        size_t n = param_numel(&m.config, i);
        float* ref = read_ref(&st, name, n);
        check_tensor(name, PARAM_TABLE[i].shape, e.F[i], ref, n, 5e-6);
        free(ref);
    }
    st_close(&st);
    free(tok);
    // the file: written, read back bit for bit; theta* is the model's weights
    ewc_save(&e, &m, "test_tmp/b.fisher");
    Ewc r;
    ewc_load(&r, &m, "test_tmp/b.fisher");
    int same = r.examples == e.examples && r.T == e.T;
    for (int i = 0; i < NUM_PARAMS && same; i++) {
        size_t n = param_numel(&m.config, i);
        same = (!e.F[i]) == (!r.F[i]) && (!e.F[i] || (!memcmp(e.F[i], r.F[i], n * 4) && !memcmp(r.theta[i], m.params.t[i], n * 4)));
    }
    report(same, "fisher file round trip: F and theta* bit-identical, theta* = the model's weights");
    ewc_free(&r);
    gpt_free(&m);
    // The penalty's gradient. F ~ |N(0,1)| and theta* = theta + N(0, 0.1) (the measured F is mostly tiny, which
    // would test little), lambda 0.7; qkvw of layer 1 and lnfw frozen. The penalty is quadratic in each
    // coordinate, so its central difference is exact up to rounding: the double sum of ~60K terms and the
    // fp32 step leave ~1e-10 of the gradient; the gradient itself is one fp32 product added to 1/64, ~1e-9
    // absolute. Errors are relative to |gradient| + 1e-3 (the typical one is ~0.05; the floor keeps tiny F
    // from judging digits the fp32 sum cannot hold). Worst seen 7.9e-7; tolerance 5e-6.
    load_model(&m, "ref/gpt_b.bin", NULL);
    gpt_set_trainable(&m, PIDX(qkvw), 1, 0);
    gpt_set_trainable(&m, PIDX(lnfw), -1, 0);
    gpt_alloc_grads(&m);
    uint64_t rng = 77;
    for (int i = 0; i < NUM_PARAMS; i++) {
        if (!e.F[i]) continue;
        size_t n = param_numel(&m.config, i);
        for (size_t j = 0; j < n; j++) {
            e.F[i][j] = fabsf(random_normal(&rng));
            e.theta[i][j] = m.params.t[i][j] + 0.1f * random_normal(&rng);
        }
    }
    e.lambda = 0.7f;
    for (size_t j = 0; j < m.num_trainable; j++) m.grads_memory[j] = 0.015625f;  // it adds to what backward left
    ewc_add_grad(&e, &m);
    int checked = 0, bad = 0, frozen_ok = 1;
    double worst = 0.0;
    const GPTConfig* c = &m.config;
    for (int i = 0; i < NUM_BASE_PARAMS; i++) {
        size_t ns = slice_numel(c, i);
        for (int l = 0; l < (param_per_layer(i) ? c->L : 1); l++) {
            const float* g = gpt_grad(&m, i, l);
            size_t picks[3] = {0, ns / 2, ns - 1};
            for (int k = 0; k < 3; k++) {
                float* p = m.params.t[i] + (size_t)l * ns + picks[k];
                float orig = *p, h = 1e-2f;
                *p = orig + h;
                double jp = ewc_penalty(&e, &m);
                *p = orig - h;
                double jm = ewc_penalty(&e, &m);
                *p = orig;
                double num = (jp - jm) / ((double)(orig + h) - (double)(orig - h));
                if (!g) {  // frozen: outside the penalty, and no gradient to add to
                    // A frozen slice inside the penalty would move it by about lambda F 2h (theta - theta*), over 1e-7
                    // of it here; two evaluations of the same 56k-term sum may differ by rounding alone (clang
                    // contracts the two inlined copies into FMAs differently), about 1e-16 of it.
                    frozen_ok &= fabs(jp - jm) <= 1e-12 * fabs(jp);
                    continue;
                }
                double ana = (double)g[picks[k]] - 0.015625, rel = fabs(ana - num) / (fabs(num) + 1e-3);
                worst = fmax(worst, rel);
                bad += rel > 5e-6;
                checked++;
            }
        }
    }
    size_t all, cov = ewc_covered(&e, &m, &all);
    report(!bad && checked >= 100 && frozen_ok && cov == all && all == m.num_trainable,
           "ewc penalty gradient lambda F (theta - theta*): %d elements vs finite differences, worst rel %.1e (tol 5e-6); "
           "frozen slices outside the penalty; covers %zu of %zu trainable", checked, worst, cov, all);
    ewc_free(&e);
    gpt_free(&m);
}

// Replay: every batch has exactly round(frac * rows) rows from the earlier data (told apart by their token
// range), the other rows untouched, each replayed row a real window of the earlier file; the same seed gives
// the same batches, another seed or batch index other rows. Then the errors, resume and EWC through ./train.
static void test_replay(void) {
    printf("-- continual learning: replay (batch composition, determinism, errors, resume)\n");
    report(replay_count(0.25f, 10) == 3 && replay_count(0.2f, 4) == 1 && replay_count(0.1f, 4) == 0 && replay_count(1.0f, 7) == 7,
           "replay rows: round(frac * rows), halves up (0.25 of 10 -> 3, 0.2 of 4 -> 1, 0.1 of 4 -> 0)");
    int V = 300, T = 8, B = 10, n = 4000;
    int* ids = (int*)mallocCheck(n * sizeof(int));
    for (int i = 0; i < n; i++) ids[i] = i % 100;  // the new task: ids 0..99
    write_tokens("test_tmp/rp_new.bin", ids, n, V);
    for (int i = 0; i < n; i++) ids[i] = 200 + i % 100;  // the old one: 200..299, a token tells its position mod 100
    write_tokens("test_tmp/rp_old.bin", ids, n, V);
    write_tokens("test_tmp/rp_short.bin", ids, (size_t)T, V);  // one token short of a row
    free(ids);
    GPT m;
    GPTConfig c = {.L = 1, .NH = 1, .C = 8, .V = V, .Vp = pad_vocab(V), .maxT = T};
    gpt_build(&m, c);
    DataLoader dl;
    loader_init(&dl, "test_tmp/rp_new.bin", B, T, 1, 7);
    Replay rp, rq, rs;
    replay_open(&rp, "test_tmp/rp_old.bin", 0.25f, &dl, &m, 1234);
    replay_open(&rq, "test_tmp/rp_old.bin", 0.25f, &dl, &m, 1234);
    replay_open(&rs, "test_tmp/rp_old.bin", 0.25f, &dl, &m, 999);
    Batch g, orig, g2;
    batch_alloc(&g, B, T), batch_alloc(&orig, B, T), batch_alloc(&g2, B, T);
    size_t BT = (size_t)B * T;
    int exact = 1, untouched = 1, windows = 1, reproducible = 1, other_seed = 0, other_index = 0, prev_rows = -1;
    for (int it = 0; it < 50; it++) {
        loader_next(&dl, orig.x, orig.y, orig.len, orig.lab, V);
        memcpy(g.x, orig.x, BT * sizeof(int)), memcpy(g.y, orig.y, BT * sizeof(int));
        replay_mix(&rp, &g, (uint64_t)it, V);
        int replayed = 0, rows_mask = 0;
        for (int b = 0; b < B; b++) {
            const int *x = g.x + (size_t)b * T, *y = g.y + (size_t)b * T;
            if (x[0] >= 200) {
                replayed++, rows_mask |= 1 << b;
                windows &= (x[0] - 200) % 4 == 0;  // a window starts at a multiple of T = 8: position mod 100 is one of 4
                for (int t = 0; t < T; t++) windows &= x[t] >= 200 && y[t] == 200 + (x[t] - 200 + 1) % 100 && (t + 1 == T || x[t + 1] == y[t]);
            } else {
                untouched &= !memcmp(x, orig.x + (size_t)b * T, T * sizeof(int)) && !memcmp(y, orig.y + (size_t)b * T, T * sizeof(int));
            }
        }
        exact &= replayed == 3;
        memcpy(g2.x, orig.x, BT * sizeof(int)), memcpy(g2.y, orig.y, BT * sizeof(int));
        replay_mix(&rq, &g2, (uint64_t)it, V);
        reproducible &= !memcmp(g.x, g2.x, BT * sizeof(int)) && !memcmp(g.y, g2.y, BT * sizeof(int));
        memcpy(g2.x, orig.x, BT * sizeof(int)), memcpy(g2.y, orig.y, BT * sizeof(int));
        replay_mix(&rs, &g2, (uint64_t)it, V);
        other_seed |= memcmp(g.x, g2.x, BT * sizeof(int)) != 0;
        other_index |= prev_rows >= 0 && rows_mask != prev_rows;
        prev_rows = rows_mask;
    }
    report(exact && untouched && windows, "replay 0.25 of 10 rows: every one of 50 batches has exactly 3 rows of the old data, "
           "each a real window of it, the other 7 rows untouched (%d %d %d)", exact, untouched, windows);
    report(reproducible && other_seed && other_index, "replay: the same seed reproduces the batches; another seed, or the next "
           "batch, replaces other rows (%d %d %d)", reproducible, other_seed, other_index);
    batch_free(&g), batch_free(&orig), batch_free(&g2);
    replay_free(&rp), replay_free(&rq), replay_free(&rs);
    loader_free(&dl);
    gpt_free(&m);
    // classification rows carry their length and label along: new examples are ids < 100 with label 0, old
    // ones ids >= 200 with label 1 and length 3 + (first id mod 5); a replayed row must keep both
    {
        char err[256];
        DsWriter w;
        for (int pass = 0; pass < 2; pass++) {
            if (ds_writer_open(&w, pass ? "test_tmp/rp_old_cls.ds" : "test_tmp/rp_new_cls.ds", EXAMPLES_MAGIC, DS_CLS, V, 2, err, sizeof err)) failf(NULL, "%s", err);
            for (int e = 0; e < 30; e++) {
                int first = pass ? 200 + e : e, len = pass ? 3 + first % 5 : 6, x[8];
                for (int i = 0; i < len; i++) x[i] = first;
                ds_write_example(&w, x, (size_t)len, pass, NULL);
            }
            if (ds_writer_close(&w, err, sizeof err)) failf(NULL, "%s", err);
        }
        GPTConfig cc = {.L = 1, .NH = 1, .C = 8, .V = V, .Vp = pad_vocab(V), .maxT = T, .num_classes = 2};
        gpt_build(&m, cc);
        loader_init(&dl, "test_tmp/rp_new_cls.ds", 4, T, 1, 7);
        replay_open(&rp, "test_tmp/rp_old_cls.ds", 0.5f, &dl, &m, 5);
        batch_alloc(&g, 4, T);
        int ok = 1;
        for (int it = 0; it < 20; it++) {
            loader_next(&dl, g.x, g.y, g.len, g.lab, V);
            replay_mix(&rp, &g, (uint64_t)it, V);
            int old = 0;
            for (int b = 0; b < 4; b++) {
                int first = g.x[(size_t)b * T];
                if (first >= 200) old++, ok &= g.lab[b] == 1 && g.len[b] == 3 + first % 5;
                else ok &= g.lab[b] == 0 && g.len[b] == 6;
            }
            ok &= old == 2;
        }
        report(ok, "replay of classification data: 2 of 4 rows every batch, each with its own length and label");
        batch_free(&g);
        replay_free(&rp);
        loader_free(&dl);
        gpt_free(&m);
    }
    // through ./train
    write_cls_dataset("test_tmp/rp_cls.ds", 40, V, 3);
    const char* common = "./train --init 1,2,16 --vocab 300 --max-seq 8 --train test_tmp/rp_new.bin --batch 4 --seq 8 --steps 6 "
                         "--lr 1e-2 --seed 3";
    char cmd[1024], out[1024];
    snprintf(cmd, sizeof cmd, "%s --replay test_tmp/rp_cls.ds", common);
    expect_error("replay of another task kind", cmd, "is a classification dataset but --train");
    snprintf(cmd, sizeof cmd, "%s --replay test_tmp/rp_short.bin", common);
    expect_error("replay data shorter than one row of --seq", cmd, "fewer than one row of --seq 8");
    snprintf(cmd, sizeof cmd, "%s --replay test_tmp/rp_old.bin --replay-frac 0.1", common);
    expect_error("replay share that rounds to no row", cmd, "rounds to 0 replayed rows");
    snprintf(cmd, sizeof cmd, "%s --replay test_tmp/rp_old.bin --replay-frac 1.5", common);
    expect_error("replay share above 1", cmd, "must be in (0, 1]");
    // resume reproduces the replayed batches (their rows depend only on the seed and the batch's index)
    mkdir("test_tmp/rp_full", 0755);
    mkdir("test_tmp/rp_part", 0755);
    const char* rflags = "--replay test_tmp/rp_old.bin --replay-frac 0.5 --accum 2";
    snprintf(cmd, sizeof cmd, "%s %s --out test_tmp/rp_full", common, rflags);
    int rc1 = run_cmd(cmd, "replay:", out, sizeof out);
    int said = strstr(out, "replay: test_tmp/rp_old.bin") && strstr(out, "2 of every 4 rows");
    snprintf(cmd, sizeof cmd, "%s %s --out test_tmp/rp_part --stop-at 3", common, rflags);
    int rc2 = run_cmd(cmd, "done:", out, sizeof out);
    snprintf(cmd, sizeof cmd, "%s %s --out test_tmp/rp_part --resume test_tmp/rp_part", common, rflags);
    int rc3 = run_cmd(cmd, "done:", out, sizeof out);
    double a[8], b[8], p[8];
    int na = read_log_losses("test_tmp/rp_full/log.jsonl", a, 8), nb = read_log_losses("test_tmp/rp_part/log.jsonl", b, 8);
    int same = rc1 == 0 && rc2 == 0 && rc3 == 0 && na == 6 && nb == 6 && said;
    for (int i = 0; same && i < 6; i++) same = a[i] == b[i];
    snprintf(cmd, sizeof cmd, "%s --log test_tmp/rp_plain.jsonl", common);
    run_cmd(cmd, "done:", out, sizeof out);
    int np = read_log_losses("test_tmp/rp_plain.jsonl", p, 8), differs = 0;
    for (int i = 0; i < np && i < na; i++) differs |= a[i] != p[i];
    report(same && np == 6 && differs, "replay 0.5 with --accum 2: 3 steps + resume give the same 6 losses as one run, and "
           "differ from the run without replay (exit %d %d %d)", rc1, rc2, rc3);
    // EWC through ./train: the fisher command, then a run that uses it; and the Fisher file's checks
    snprintf(cmd, sizeof cmd, "./train fisher --model test_tmp/rp_full/model.bin --data test_tmp/rp_old.bin --seq 8 "
                              "--fisher-examples 20 --out test_tmp/rp.fisher");
    int rcf = run_cmd(cmd, "wrote", out, sizeof out);
    int fisher_said = rcf == 0 && strstr(out, "on 20 examples");
    snprintf(cmd, sizeof cmd, "%s --model test_tmp/rp_full/model.bin --ewc 100 --fisher test_tmp/rp.fisher --log test_tmp/rp_ewc.jsonl",
             common + strlen("./train --init 1,2,16"));
    char full[1100];
    snprintf(full, sizeof full, "./train %s", cmd);
    int rce = run_cmd(full, "ewc:", out, sizeof out);
    report(fisher_said && rce == 0 && strstr(out, "covers"), "./train fisher then --ewc 100 --fisher: runs (exit %d %d): %s", rcf, rce, out);
    snprintf(full, sizeof full, "./train %s --method lora", cmd);
    expect_error("EWC with nothing it covers trainable (LoRA on a full-model Fisher)", full, "covers none of the");
    copy_truncated("test_tmp/rp.fisher", "test_tmp/rp_trunc.fisher", 1000);
    snprintf(full, sizeof full, "%s --ewc 1 --fisher test_tmp/rp_trunc.fisher", common);
    expect_error("truncated Fisher file", full, "needs");
    copy_patched("test_tmp/rp.fisher", "test_tmp/rp_nan.fisher", 51, "\x00\x00\xc0\x7f");  // wte's first F (after 32 + 4 + 4 + 3 + 8 bytes): NaN
    snprintf(full, sizeof full, "%s --ewc 1 --fisher test_tmp/rp_nan.fisher", common);
    expect_error("Fisher file with a NaN", full, "F must be finite");
    snprintf(full, sizeof full, "%s --ewc 1 --fisher test_tmp/b.fisher", common);
    expect_error("Fisher file of another model", full, "elements in the file but");
    snprintf(full, sizeof full, "%s --ewc 1 --fisher test_tmp/rp_old.bin", common);
    expect_error("not a Fisher file", full, "magic number");
    snprintf(full, sizeof full, "%s --ewc 1", common);
    expect_error("--ewc without --fisher", full, "--ewc needs --fisher");
}

// ---------------------------------------------------------------------------- the encoder (--arch encoder)
// The masking rule (loader.c's mlm_mask_row) statistically, the loader's masks for determinism (same seed,
// other --batch, resume, next epoch), the class head's independence from padding, and the commands: an encoder
// trains (masked LM), resumes bit for bit, evaluates with seeded masks, fine-tunes a class head; what needs a
// decoder refuses in one line.
static void test_encoder(void) {
    printf("-- the encoder: masked-LM rule, deterministic masks, [CLS] pooling, commands\n");
    // 1. the rule: exactly round(15% of T) picked per row; of those 80% [MASK], 10% random, 10% kept
    int T = 128, rows = 2000, mask = 1000, per = (int)(0.15 * T + 0.5);
    int *in = (int*)mallocCheck((size_t)T * sizeof(int)), *orig = (int*)mallocCheck((size_t)T * sizeof(int));
    int *tg = (int*)mallocCheck((size_t)T * sizeof(int)), *perm = (int*)mallocCheck((size_t)T * sizeof(int));
    long nmask = 0, nrand = 0, nkept = 0, npicked = 0, at[128] = {0};
    int exact = 1, consistent = 1;
    uint64_t rng = 11;
    for (int r = 0; r < rows; r++) {
        for (int t = 0; t < T; t++) orig[t] = in[t] = (int)(random_u32(&rng) % (uint32_t)mask);
        mlm_mask_row(in, tg, perm, T, mask, mlm_row_seed(5, 0, (uint64_t)r * T));
        int k = 0;
        for (int t = 0; t < T; t++) {
            if (tg[t] < 0) { consistent &= in[t] == orig[t]; continue; }  // not picked: untouched, no target
            k++, at[t]++;
            consistent &= tg[t] == orig[t] && in[t] >= 0 && in[t] <= mask;
            if (in[t] == mask) nmask++;
            else if (in[t] != orig[t]) nrand++;
            else nkept++;
        }
        exact &= k == per;
        npicked += k;
    }
    report(exact && consistent, "mlm rule: %d of T=%d positions picked in each of %d rows (round(15%%)); targets are the originals "
           "there, -1 elsewhere; unpicked inputs untouched", per, T, rows);
    // n = 38000 picked: sd of the [MASK] share sqrt(.8*.2/n) = 0.0021, of the random share 0.0015; 4 sd allowed.
    // A random token equal to the original (1 in 1000) reads as kept: 0.1% of the random share, far below that.
    double fm = (double)nmask / npicked, fr = (double)nrand / npicked, fk = (double)nkept / npicked;
    double sm = sqrt(0.8 * 0.2 / npicked), sr = sqrt(0.1 * 0.9 / npicked);
    report(fabs(fm - 0.8) < 4 * sm && fabs(fr - 0.1) < 4 * sr && fabs(fk - 0.1) < 4 * sr,
           "mlm rule: of %ld picked, %.4f [MASK], %.4f random, %.4f kept (want 0.8/0.1/0.1 within 4 sd: %.4f, %.4f)",
           npicked, fm, fr, fk, 4 * sm, 4 * sr);
    // each position is picked with probability per/T: 2000 rows give 297 +- 16 (sd); 5 sd allowed over 128 positions
    double mean = (double)rows * per / T, sd = sqrt(rows * ((double)per / T) * (1.0 - (double)per / T));
    long lo = at[0], hi = at[0];
    for (int t = 1; t < T; t++) lo = at[t] < lo ? at[t] : lo, hi = at[t] > hi ? at[t] : hi;
    report(lo > mean - 5 * sd && hi < mean + 5 * sd, "mlm rule: every position is picked %ld-%ld times in %d rows (expected %.0f +- %.0f sd)",
           lo, hi, rows, mean, sd);
    free(in), free(orig), free(tg), free(perm);

    // 2. the loader's masks: a pure function of (seed, epoch, the row's offset)
    int n = 16 * 8 + 1, V = 64;  // 8 rows of 16 tokens, exactly: 4 windows at B=2, 2 at B=4
    int* ids = (int*)mallocCheck((size_t)n * sizeof(int));
    rng = 21;
    for (int i = 0; i < n; i++) ids[i] = (int)(random_u32(&rng) % (uint32_t)V);
    write_tokens("test_tmp/enc_tok.bin", ids, (size_t)n, V);
    free(ids);
    int x2[4][32], y2[4][32], x4[2][64], y4[2][64], xa[64], ya[64], xb[64], yb[64];
    DataLoader d2, d4, d;
    loader_init(&d2, "test_tmp/enc_tok.bin", 2, 16, 0, 1);
    loader_init(&d4, "test_tmp/enc_tok.bin", 4, 16, 0, 1);
    d2.mask_id = d4.mask_id = V;
    for (int k = 0; k < 4; k++) loader_next(&d2, x2[k], y2[k], NULL, NULL, V + 1);
    for (int k = 0; k < 2; k++) loader_next(&d4, x4[k], y4[k], NULL, NULL, V + 1);
    int same_b = !memcmp(x2, x4, sizeof x2) && !memcmp(y2, y4, sizeof y2);  // the same 8 rows, the same masks
    int nt = 0;
    for (int k = 0; k < 2; k++) for (int i = 0; i < 64; i++) nt += y4[k][i] >= 0;
    report(same_b && nt == 8 * 2, "mlm masks: the same rows get the same masks at --batch 2 and 4 (%d targets in 8 rows of 16)", nt);
    loader_next(&d4, xa, ya, NULL, NULL, V + 1);  // epoch 1: the first window again, masked afresh
    report(memcmp(xa, x4[0], sizeof xa) || memcmp(ya, y4[0], sizeof ya), "mlm masks: a new epoch masks a window afresh");
    loader_free(&d2), loader_free(&d4);
    // resume: a loader put back at (epoch, position) as run_load does continues with the same batches
    loader_init(&d4, "test_tmp/enc_tok.bin", 2, 16, 1, 77);
    d4.mask_id = V;
    for (int k = 0; k < 5; k++) loader_next(&d4, xa, ya, NULL, NULL, V + 1);
    loader_init(&d, "test_tmp/enc_tok.bin", 2, 16, 1, 77);
    d.mask_id = V;
    d.rng = d4.epoch_rng, loader_make_order(&d), d.epoch = d4.epoch, d.rng = d4.rng, d.pos = d4.pos;
    loader_next(&d4, xa, ya, NULL, NULL, V + 1);
    loader_next(&d, xb, yb, NULL, NULL, V + 1);
    report(!memcmp(xa, xb, 32 * sizeof(int)) && !memcmp(ya, yb, 32 * sizeof(int)), "mlm masks: a loader restored to (epoch %llu, position) gives the same masked batch",
           (unsigned long long)d4.epoch);
    loader_free(&d4), loader_free(&d);

    // 3. [CLS] pooling: a row's class probabilities do not depend on the rows batched with it (padding is no key)
    GPT m;
    build_random(&m, 2, 2, 16, V + 1, 3);
    GPTConfig c = m.config;
    m.config.arch = c.arch = ARCH_ENCODER, m.config.mask_id = c.mask_id = V;
    c.num_classes = 3;
    uint64_t r2 = 4;
    gpt_set_peft(&m, c, &r2);
    int rws[2 * 32], len[2] = {5, 12}, x[2 * 32];
    for (int i = 0; i < 64; i++) rws[i] = (int)(random_u32(&r2) % (uint32_t)V);
    classify_rows(&m, rws, 32, len, 1, 5, x);
    float alone[3];
    memcpy(alone, m.acts.cls_probs, sizeof alone);
    int cls_first = x[0] == V && x[1] == rws[0];
    classify_rows(&m, rws, 32, len, 2, 12, x);
    float d01 = 0.0f;
    for (int k = 0; k < 3; k++) d01 = fmaxf(d01, fabsf(alone[k] - m.acts.cls_probs[k]));
    // the same sums in the same order but over keys that are all real: the row alone and padded agree to rounding
    report(cls_first && d01 < 1e-6f, "encoder classify: [CLS] first; a 5-token row alone and padded to 12 beside a longer one: max |dp| = %.1e", d01);
    gpt_free(&m);

    // 4. the commands
    const char* enc = "./train --init 2,2,16 --arch encoder --vocab 64 --max-seq 32 --train test_tmp/tok.bin --batch 2 --seq 16 "
                      "--lr 1e-2 --warmup 2 --seed 5 --steps 10";
    char cmd[1400], out[1024];
    snprintf(cmd, sizeof cmd, "%s --log test_tmp/enc_full.jsonl --out test_tmp/enc_full", enc);
    int rc1 = run_cmd(cmd, "encoder (bidirectional; [MASK] = [CLS] = id 64)", out, sizeof out);
    int said = strstr(out, "[MASK] = [CLS] = id 64") != NULL;
    snprintf(cmd, sizeof cmd, "%s --log test_tmp/enc_part.jsonl --out test_tmp/enc_part --stop-at 4", enc);
    int rc2 = run_cmd(cmd, "done:", out, sizeof out);
    snprintf(cmd, sizeof cmd, "%s --log test_tmp/enc_part.jsonl --out test_tmp/enc_part --resume test_tmp/enc_part", enc);
    int rc3 = run_cmd(cmd, "done:", out, sizeof out);
    double a[16], b[16];
    int na = read_log_losses("test_tmp/enc_full.jsonl", a, 16), nb = read_log_losses("test_tmp/enc_part.jsonl", b, 16);
    int same = rc1 == 0 && rc2 == 0 && rc3 == 0 && na == 10 && nb == 10 && said;
    for (int i = 0; same && i < 10; i++) same = a[i] == b[i];
    report(same, "encoder: trains on masked LM, says its [MASK] id; 4 steps + resume gives the same 10 losses (exit %d %d %d)", rc1, rc2, rc3);
    size_t nbytes;
    unsigned char* hb = read_whole("test_tmp/enc_full/model.bin", &nbytes);
    int32_t h[256] = {0};
    if (hb && nbytes >= sizeof h) memcpy(h, hb, sizeof h);
    free(hb);
    report(h[22] == ARCH_ENCODER && h[23] == 64 && h[4] == 65, "encoder checkpoint: header [22] = %d (encoder), [23] = %d ([MASK]), V = %d", h[22], h[23], h[4]);
    // eval: seeded masks, the same loss at --batch 2 and 4 over the same 8 rows (summed in another order)
    GPT em;
    load_model(&em, "test_tmp/enc_full/model.bin", NULL);
    EvalResult e2 = evaluate(&em, "test_tmp/enc_tok.bin", 2, 16, 0), e4 = evaluate(&em, "test_tmp/enc_tok.bin", 4, 16, 0);
    EvalResult e2b = evaluate(&em, "test_tmp/enc_tok.bin", 2, 16, 0);
    report(e2.count == 16 && e4.count == 16 && e2.loss == e2b.loss && fabs(e2.loss - e4.loss) < 1e-6 * e2.loss,
           "encoder eval: masked-LM loss %.6f over %zu targets, repeatable, at --batch 4 %.6f", e2.loss, e2.count, e4.loss);
    gpt_free(&em);
    // fine-tuning a class head on the encoder: [CLS] is prepended, the head reads position 0
    write_cls_dataset("test_tmp/enc_cls.ds", 40, 64, 3);
    snprintf(cmd, sizeof cmd, "./train --model test_tmp/enc_full/model.bin --train test_tmp/enc_cls.ds --val test_tmp/enc_cls.ds "
             "--batch 4 --seq 16 --steps 4 --out test_tmp/enc_cls");
    int rc = run_cmd(cmd, "done:", out, sizeof out);
    snprintf(cmd, sizeof cmd, "./train eval --model test_tmp/enc_cls/model.bin --data test_tmp/enc_cls.ds --batch 4 --seq 16");
    int rce = run_cmd(cmd, "accuracy", out, sizeof out);
    report(rc == 0 && rce == 0 && strstr(out, "\"accuracy\""), "encoder + class head: fine-tunes and evaluates (%s)", out);
    // what needs a decoder refuses, in one line
    const char* em_ = "test_tmp/enc_full/model.bin";
    snprintf(cmd, sizeof cmd, "./train sample --model %s --tokens \"1 2 3\"", em_);
    expect_error("sample with an encoder", cmd, "sample needs a decoder (GPT-2), and this model is an encoder");
    const char* fmts[] = {"safetensors", "llmc", "gguf", "onnx", "peft"};
    for (int k = 0; k < 5; k++) {
        snprintf(cmd, sizeof cmd, "./train export --model %s --format %s --out test_tmp/enc_export", em_, fmts[k]);
        char what[64];
        snprintf(what, sizeof what, "export --format %s of an encoder", fmts[k]);
        expect_error(what, cmd, "the model is an encoder");
    }
    write_sft_dataset("test_tmp/enc_sft.ds", 8, 64);
    snprintf(cmd, sizeof cmd, "./train --model %s --train test_tmp/enc_sft.ds --batch 2 --seq 16 --steps 1", em_);
    expect_error("SFT on an encoder", cmd, "is an SFT dataset but the model is an encoder");
    snprintf(cmd, sizeof cmd, "./train eval --model %s --data test_tmp/enc_sft.ds --batch 2 --seq 16 --exact-match 2", em_);
    expect_error("eval --exact-match (generation) on an encoder", cmd, "the model is an encoder");
    snprintf(cmd, sizeof cmd, "./train serve --model %s --port 0", em_);
    expect_error("serve an encoder's LM head", cmd, "needs a decoder (GPT-2), and this model is an encoder");
    snprintf(cmd, sizeof cmd, "./train --model %s --arch encoder --train test_tmp/tok.bin --steps 1", em_);
    expect_error("--arch with a loaded model", cmd, "--arch is for --init");
    expect_error("unknown --arch", "./train --init 1,1,8 --arch bert --train test_tmp/tok.bin", "unknown --arch 'bert'");
    snprintf(cmd, sizeof cmd, "./train --init 1,1,8 --arch encoder --vocab 63 --max-seq 32 --train test_tmp/tok.bin --batch 2 --seq 16 --steps 1");
    expect_error("token data that uses the [MASK] id", cmd, "but the encoder's [MASK] is id 63");
    // a GPT-2 adapter on an encoder base (same shapes otherwise)
    snprintf(cmd, sizeof cmd, "./train --init 2,2,16 --vocab 65 --max-seq 32 --train test_tmp/tok.bin --batch 2 --seq 16 --steps 1 "
             "--method lora --out test_tmp/enc_gptlora");
    run_cmd(cmd, "done:", out, sizeof out);
    snprintf(cmd, sizeof cmd, "./train eval --model %s --adapter test_tmp/enc_gptlora/adapter.bin --data test_tmp/tok.bin --batch 2 --seq 16", em_);
    expect_error("a gpt2 adapter on an encoder", cmd, "maxT=32 gpt2, the model is");
    // a header whose architecture is out of range
    copy_with_i32("test_tmp/enc_full/model.bin", "test_tmp/enc_badarch.bin", 22, 7);
    expect_error("checkpoint header [22] = 7", "./train eval --model test_tmp/enc_badarch.bin --data test_tmp/tok.bin --batch 2 --seq 16",
                 "architecture (0 gpt2, 1 encoder, 2 llama) out of range");
    copy_with_i32("test_tmp/enc_full/model.bin", "test_tmp/enc_badmask.bin", 23, 65);
    expect_error("checkpoint header [23] = V", "./train eval --model test_tmp/enc_badmask.bin --data test_tmp/tok.bin --batch 2 --seq 16",
                 "[MASK] id (in [0, V) for an encoder, else 0) out of range");
}


// ---------------------------------------------------------------------------- model cards (card.c)
// SHA-256 on FIPS 180-4's test vectors (also fed in uneven pieces, so the partial-block path is exercised),
// then the card of a run folder (made by test_replay's run) and the cards export writes.
static void test_card(void) {
    printf("-- model cards: SHA-256 (FIPS 180-4 vectors), DIR/README.md, export\n");
    static const struct { const char* msg; const char* want; } V[] = {
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    char hex[65];
    for (int i = 0; i < 3; i++) {
        sha256_hex(V[i].msg, strlen(V[i].msg), hex);
        report(!strcmp(hex, V[i].want), "sha256(\"%.20s%s\") = %s", V[i].msg, strlen(V[i].msg) > 20 ? "..." : "", hex);
    }
    char* a = (char*)mallocCheck(1000000);
    memset(a, 'a', 1000000);
    // the padding's edge cases: 55 bytes leave just room for the 0x80 and the length in the last block,
    // 56 and 63 do not, 64 fills a block exactly (digests from Python's hashlib)
    static const struct { size_t n; const char* want; } E[] = {
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
    };
    int edges = 0;
    for (int i = 0; i < 4; i++) sha256_hex(a, E[i].n, hex), edges += !strcmp(hex, E[i].want);
    report(edges == 4, "sha256 of 55, 63, 64 and 119 'a's (the padding's edge cases): %d of 4 right", edges);
    sha256_hex(a, 1000000, hex);
    int ok1 = !strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    Sha256 s;
    sha256_init(&s);
    size_t pos = 0, step[] = {1, 63, 64, 65, 127, 1000, 55, 56, 57};
    for (int k = 0; pos < 1000000; k++) {
        size_t n = step[k % 9] < 1000000 - pos ? step[k % 9] : 1000000 - pos;
        sha256_update(&s, a + pos, n);
        pos += n;
    }
    char hex2[65];
    sha256_final(&s, hex2);
    report(ok1 && !strcmp(hex, hex2), "sha256(one million 'a') = %s, whole and in pieces of 1..1000 bytes", hex);
    free(a);
    // the run folder's card: front matter, the data files with the hashes, the command
    size_t n;
    char* card = (char*)read_whole("test_tmp/rp_full/README.md", &n);
    char h_new[65], h_old[65], h_model[65];
    long long sz;
    sha256_file("test_tmp/rp_new.bin", h_new, &sz);
    sha256_file("test_tmp/rp_old.bin", h_old, &sz);
    sha256_file("test_tmp/rp_full/model.bin", h_model, &sz);
    int ok = card && !strncmp(card, "---\n", 4) && strstr(card, "\nlibrary_name: finetune.c\n") && strstr(card, "\n- continual-learning\n") &&
             strstr(card, "\ndatasets:\n- \"test_tmp/rp_new.bin\"\n- \"test_tmp/rp_old.bin\"\nmetrics:") && strstr(card, h_new) &&
             strstr(card, h_old) && strstr(card, h_model) && strstr(card, "| rehearsal | 0.5 of every batch's rows from `test_tmp/rp_old.bin` |") &&
             strstr(card, "--replay test_tmp/rp_old.bin --replay-frac 0.5 --accum 2 --out test_tmp/rp_full\n```") && strstr(card, "- machine: ");
    report(ok, "model card: test_tmp/rp_full/README.md has the front matter, the data and model files with their SHA-256, the method, the command");
    char out[1024];  // the hashes agree with coreutils' where it is installed (not needed by the test)
    if (run_cmd("sha256sum test_tmp/rp_old.bin", NULL, out, sizeof out) == 0)
        report(!strncmp(out, h_old, 64), "sha256 of a file = sha256sum's: %.16s...", out);
    // export carries the card, adding the exported files' hashes; a model without a card gets a minimal one
    int rc = run_cmd("./train export --model test_tmp/rp_full/model.bin --format safetensors --out test_tmp/rp_hf", "wrote", out, sizeof out);
    size_t m;
    char* ex = (char*)read_whole("test_tmp/rp_hf/README.md", &m);
    char h_st[65];
    sha256_file("test_tmp/rp_hf/model.safetensors", h_st, &sz);
    report(rc == 0 && card && ex && m > n && !memcmp(ex, card, n) && strstr(ex + n, "## Export") && strstr(ex + n, h_st) && strstr(ex + n, h_model),
           "export --format safetensors: OUT/README.md is the run's card plus an Export section with the files' SHA-256 (exit %d)", rc);
    free(ex);
    rc = run_cmd("./train export --model ref/gpt_a.bin --format safetensors --out test_tmp/nocard_hf", "wrote", out, sizeof out);
    ex = (char*)read_whole("test_tmp/nocard_hf/README.md", &m);
    report(rc == 0 && ex && !strncmp(ex, "---\nlibrary_name: finetune.c\n", 29) && strstr(ex, "came with no model card") && strstr(ex, "## Export"),
           "export of a model outside a run folder: a minimal card with the Export section (exit %d)", rc);
    free(ex);
    rc = run_cmd("./train export --model test_tmp/lora/model.bin --format peft --out test_tmp/rp_peft", "wrote", out, sizeof out);
    ex = (char*)read_whole("test_tmp/rp_peft/README.md", &m);
    report(rc == 0 && ex && strstr(ex, "\n- lora\n") && strstr(ex, "adapter_model.safetensors"), "export --format peft carries the LoRA run's card (exit %d)", rc);
    free(ex);
    free(card);
}

// ---------------------------------------------------------------------------- generation metrics (genmetrics.h)
// BLEU as sacreBLEU computes it and ROUGE-L F as rouge-score does: the 13a tokenizer, hand-computed cases (the
// arithmetic is in the comments), edge cases, and the values the two packages' own test suites assert.
// BLEU is double arithmetic on small integer counts, the same operations as sacreBLEU's in the same order, so
// the tolerance is 1e-9 on the 0-100 scale (the error seen is ~1e-14); the published values are given to 8-10
// digits and held to that (sacreBLEU's own EPSILON is 1e-8), the 3-decimal ones to 1e-3 as sacreBLEU does.
static double gm_bleu(const char* const* hyps, const char* const* refs, size_t n, int R, BleuOpts o, BleuStats* out) {
    BleuStats st = bleu_corpus(hyps, refs, n, R, &o);
    if (out) *out = st;
    return st.score;
}
static BleuOpts gm_opts(BleuSmooth smooth, double value, int eff, int tok13a, int order) {
    BleuOpts o = bleu_opts_default();
    o.smooth = smooth, o.smooth_value = value, o.effective_order = eff, o.tokenize_13a = tok13a, o.max_order = order;
    return o;
}
// The string value of "key": in a JSONL line (decoded), into out; 0 on success.
static int gm_json_field(const char* line, const char* key, ByteVec* out) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char* s = strstr(line, k);
    if (!s) return -1;
    JsonScan js = {(const unsigned char*)s + strlen(k), strlen(s + strlen(k)), 0, 1, NULL};
    return jscan_string(&js, out);
}

static void test_genmetrics(void) {
    printf("-- generation metrics: corpus BLEU (sacreBLEU) and ROUGE-L (rouge-score), eval --generate\n");
    // 13a: each expected string is what sacreBLEU's Tokenizer13a()(s.rstrip()) returns (sacrebleu at commit f615c72,
    // run here), and follows by hand from the rules in genmetrics.h: punctuation split except ' , - . ; a period or
    // comma split unless between digits; a dash split after a digit; entities decoded; "-\n" joins; whitespace is
    // Python's (NBSP, U+3000, U+2028, 0x1C split; trailing NBSP stripped).
    static const char* const tok[][2] = {
        {"Hello, world!", "Hello , world !"}, {"It costs $3.50, ok.", "It costs $ 3.50 , ok ."}, {"don't stop", "don't stop"},
        {"pages 1-2 and a-b", "pages 1 - 2 and a-b"}, {"&quot;hi&quot; &amp;amp; bye", "\" hi \" & amp ; bye"},
        {"end-\nof line<skipped>", "endof line"}, {"a..b,,c", "a . . b , , c"}, {"3.14,2.71.x", "3.14,2.71 . x"},
        {"(x+y)/2=z;", "( x + y ) / 2 = z ;"}, {"  tabs\tand\xc2\xa0nbsp\xe3\x80\x80ideo  ", "tabs and nbsp ideo"},
        {"x\xe2\x80\xa8y\x1cz", "x y z"}, {"Zah\xc4\x83r alb; \xc5\xa3" "ara.", "Zah\xc4\x83r alb ; \xc5\xa3" "ara ."},
        {"e.g. U.S.A., 5,000.", "e . g . U . S . A . , 5,000 ."}, {"trailing space \xc2\xa0", "trailing space"},
    };
    int ntok = (int)(sizeof tok / sizeof tok[0]), tok_ok = 0, first_bad = -1;
    ByteVec tv = {0};
    for (int i = 0; i < ntok; i++) {
        bleu_tokenize_13a(tok[i][0], strlen(tok[i][0]), &tv);
        if (!strcmp((char*)tv.data, tok[i][1])) tok_ok++;
        else if (first_bad < 0) first_bad = i;
    }
    if (first_bad >= 0) bleu_tokenize_13a(tok[first_bad][0], strlen(tok[first_bad][0]), &tv);
    report(tok_ok == ntok, "13a tokenizer: %d/%d strings as sacreBLEU's Tokenizer13a%s%s%s", tok_ok, ntok,
           first_bad >= 0 ? "; first bad: got '" : "", first_bad >= 0 ? (char*)tv.data : "", first_bad >= 0 ? "'" : "");
    free(tv.data);

    BleuOpts none = gm_opts(BLEU_SMOOTH_NONE, NAN, 0, 1, 4), expo = gm_opts(BLEU_SMOOTH_EXP, NAN, 0, 1, 4);
    BleuStats st;
    // hand: hyp "the cat sat on the mat", ref "the cat is on the mat" (6 tokens each, BP = 1).
    //   1-grams: the x2 (ref has 2), cat, on, mat match, sat does not: 5/6; 2-grams: "the cat", "on the", "the mat": 3/5;
    //   3-grams: "on the mat": 1/4; 4-grams: none of 3. No smoothing: log 0, BLEU 0. exp: the first order with no
    //   match gets 100/(2*3): BLEU = 100 * (5/6 * 3/5 * 1/4 * 1/6)^(1/4) = 37.99178428257963
    const char* h1[] = {"the cat sat on the mat"};
    const char* r1[] = {"the cat is on the mat"};
    double b0 = gm_bleu(h1, r1, 1, 1, none, &st), b1 = gm_bleu(h1, r1, 1, 1, expo, NULL);
    report(st.correct[0] == 5 && st.correct[1] == 3 && st.correct[2] == 1 && st.correct[3] == 0 && st.total[0] == 6 &&
           st.total[3] == 3 && b0 == 0.0 && fabs(b1 - 37.99178428257963) < 1e-9,
           "BLEU by hand: counts %.0f/%.0f %.0f/%.0f %.0f/%.0f %.0f/%.0f; none %.4f = 0, exp %.10f = 37.9917842826", st.correct[0],
           st.total[0], st.correct[1], st.total[1], st.correct[2], st.total[2], st.correct[3], st.total[3], b0, b1);
    // hand: corpus-level pooling. Add "a b c d" / "a b c d": counts 9/10 6/8 3/6 1/4, lengths 10/10:
    //   BLEU = 100 * (0.9 * 0.75 * 0.5 * 0.25)^(1/4) = 100 * 0.084375^(1/4) = 53.8953...; the first segment alone is 0
    const char* h2[] = {"the cat sat on the mat", "a b c d"};
    const char* r2[] = {"the cat is on the mat", "a b c d"};
    double b2 = gm_bleu(h2, r2, 2, 1, none, NULL), want2 = 100.0 * pow(0.9 * 0.75 * 0.5 * 0.25, 0.25);
    report(fabs(b2 - want2) < 1e-9, "BLEU by hand, counts summed over the corpus before the precisions: %.10f = 100*(9/10*6/8*3/6*1/4)^(1/4)", b2);
    // hand: clipping. "the the the the" vs "the cat": "the" counts min(4, 1) = 1 of 4
    const char* h3[] = {"the the the the"};
    const char* r3[] = {"the cat"};
    gm_bleu(h3, r3, 1, 1, none, &st);
    report(st.correct[0] == 1 && st.total[0] == 4, "BLEU clips each n-gram at its reference count: 'the' x4 vs x1 -> %.0f/%.0f", st.correct[0], st.total[0]);
    // hand: the reference length with two references is the one closest to the hypothesis's, a tie going to the
    //   shorter: "a b c" (3) against "a b" (2) and "a b c d" (4) counts ref_len 2, so BP = 1 (4 would give e^(1-4/3))
    const char* h7[] = {"a b c"};
    const char* r7[] = {"a b", "a b c d"};
    gm_bleu(h7, r7, 1, 2, none, &st);
    report(st.ref_len == 2 && st.bp == 1.0, "BLEU, two references at distance 1: ref_len %.0f (the shorter), BP %.4f", st.ref_len, st.bp);
    // edge: shorter than 4 tokens. "the cat" vs "the cat sat": no 3-grams, so BLEU 0 (the loop stops at an order with
    //   no n-gram); with effective order the mean is over orders 1-2 (both 100%) times BP = exp(1 - 3/2): 60.65306597
    const char* h4[] = {"the cat"};
    const char* r4[] = {"the cat sat"};
    double b4 = gm_bleu(h4, r4, 1, 1, expo, &st), b4e = gm_bleu(h4, r4, 1, 1, gm_opts(BLEU_SMOOTH_NONE, NAN, 1, 1, 4), NULL);
    report(b4 == 0.0 && fabs(st.bp - exp(-0.5)) < 1e-15 && fabs(b4e - 100.0 * exp(-0.5)) < 1e-9,
           "BLEU, 2-token hypothesis: %.4f (no 3-grams), BP %.6f = e^(1-3/2), effective order %.8f = 100 e^(-1/2)", b4, st.bp, b4e);
    // edge: a perfect match is 100 (to the last bit or so: exp(log 100)), punctuation and all; an empty hypothesis is 0 with BP 0
    const char* h5[] = {"The quick brown fox jumps over the lazy dog.", ""};
    const char* r5[] = {"The quick brown fox jumps over the lazy dog.", "the cat"};
    double b5 = gm_bleu(h5, r5, 1, 1, none, NULL), b6 = gm_bleu(h5 + 1, r5 + 1, 1, 1, expo, &st);
    report(fabs(b5 - 100.0) < 1e-12 && b6 == 0.0 && st.bp == 0.0 && st.sys_len == 0, "BLEU edge cases: perfect match %.10f = 100, empty hypothesis %.4f (BP %.1f)", b5, b6, st.bp);

    // sacreBLEU's test suite (test/test_bleu.py, test/test_sentence_bleu.py at commit f615c72): the README example,
    // three hypotheses against two reference streams
    const char* hy[] = {"The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."};
    const char* rf[] = {"The dog bit the man.", "It was not unexpected.", "The man bit him first.",
                        "The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."};
    const char* empty3[] = {"", "", ""};
    double p1 = gm_bleu(hy, rf, 3, 2, expo, NULL), p2 = gm_bleu(hy, rf, 3, 2, none, NULL),
           p3 = gm_bleu(hy, rf, 3, 2, gm_opts(BLEU_SMOOTH_EXP, NAN, 0, 0, 4), NULL), p4 = gm_bleu(empty3, rf, 3, 2, expo, NULL);
    report(fabs(p1 - 48.530827) < 1e-6 && fabs(p2 - 48.530827) < 1e-6 && fabs(p3 - 49.1919566) < 1e-7 && p4 == 0.0,
           "sacreBLEU test_corpus_bleu: %.6f (exp) %.6f (none) = 48.530827, tokenize none %.7f = 49.1919566, empty %.1f = 0", p1, p2, p3, p4);
    static const double by_order[] = {77.65, 60.50, 53.93, 48.53, 46.14, 43.28};  // test_max_ngram_order, "%.2f"
    int ord_ok = 0;
    for (int n = 1; n <= 6; n++) {
        char got[16], want[16];
        snprintf(got, sizeof got, "%.2f", gm_bleu(hy, rf, 3, 2, gm_opts(BLEU_SMOOTH_EXP, NAN, 0, 1, n), NULL));
        snprintf(want, sizeof want, "%.2f", by_order[n - 1]);
        ord_ok += !strcmp(got, want);
    }
    report(ord_ok == 6, "sacreBLEU test_max_ngram_order: %d/6 orders 1-6 give 77.65 60.50 53.93 48.53 46.14 43.28", ord_ok);
    // test_case_statistics / test_offset: raw_corpus_bleu = tokenize none, floor smoothing, effective order
    const char* hs[] = {"am I am a character sequence"};
    const char* rs[] = {"I am a symbol string sequence a a"};
    double off1 = gm_bleu(hs, rs, 1, 1, gm_opts(BLEU_SMOOTH_FLOOR, NAN, 1, 0, 4), &st) / 100;
    double off0 = gm_bleu(hs, rs, 1, 1, gm_opts(BLEU_SMOOTH_FLOOR, 0.0, 1, 0, 4), NULL) / 100;
    report(st.correct[0] == 4 && st.correct[1] == 2 && st.correct[2] == 1 && st.correct[3] == 0 && st.total[0] == 6 && st.total[1] == 5 &&
           st.total[2] == 4 && st.total[3] == 3 && fabs(off1 - 0.1555722182) < 1e-10 && off0 == 0.0,
           "sacreBLEU test_statistics [4,2,1,0]/[6,5,4,3], test_offset floor 0.1: %.10f = 0.1555722182, floor 0: %.1f", off1, off0);
    // test_raw_bleu_cases and test_effective_order (floor 0.01, effective order, tokenize none)
    BleuOpts raw = gm_opts(BLEU_SMOOTH_FLOOR, 0.01, 1, 0, 4);
    const char* ra[] = {"this is a test", "another test"};
    const char* rr[] = {"ref1", "ref2"};
    const char* rb[] = {"this is a test"};
    const char* rc_[] = {"this is a fest"};
    const char* e1[] = {"test"}, *e2[] = {"a test"}, *e3[] = {"a little test"};
    double v[6] = {gm_bleu(ra, rr, 1, 2, raw, NULL), gm_bleu(rb, rb, 1, 1, raw, NULL), gm_bleu(rc_, rb, 1, 1, raw, NULL),
                   gm_bleu(e1, e2, 1, 1, raw, NULL), gm_bleu(e2, e2, 1, 1, raw, NULL), gm_bleu(e3, e2, 1, 1, raw, NULL)};
    static const double want_raw[6] = {0.0, 1.0, 0.223606797749979, 0.3678794411714425, 1.0, 0.03218297948685433};
    int raw_ok = 0;
    for (int i = 0; i < 6; i++) raw_ok += fabs(v[i] / 100 - want_raw[i]) < 1e-12;
    report(raw_ok == 6, "sacreBLEU test_raw_bleu + test_effective_order: %d/6 (%.15f %.16f %.17f ...)", raw_ok, v[2] / 100, v[3] / 100, v[5] / 100);
    // test_scoring: compute_bleu from statistics [9,7,5,3]/[10,8,6,4], lengths 11/11 -> 0.8375922397
    BleuStats sc;
    memset(&sc, 0, sizeof sc);
    double c9[] = {9, 7, 5, 3}, t10[] = {10, 8, 6, 4};
    memcpy(sc.correct, c9, sizeof c9), memcpy(sc.total, t10, sizeof t10), sc.sys_len = sc.ref_len = 11;
    bleu_compute(&sc, &none);
    report(fabs(sc.score / 100 - 0.8375922397) < 1e-10, "sacreBLEU test_scoring: %.10f = 0.8375922397", sc.score / 100);
    // test_sentence_bleu.py (sacreBLEU #98, Romanian, UTF-8): sentence BLEU = effective order, each smoothing; 1e-3 as there
    const char* sys[] = {"Produc\xc8\x9bia de zah\xc4\x83r prim\xc4\x83 va fi exprimat\xc4\x83 \xc3\xaen ceea ce prive\xc8\x99te zah\xc4\x83rul alb;"};
    const char* ref[] = {"produc\xc5\xa3ia de zah\xc4\x83r brut se exprim\xc4\x83 \xc3\xaen zah\xc4\x83r alb;"};
    struct { BleuSmooth s; double value; int tok13a; double want; } ro[] = {
        {BLEU_SMOOTH_EXP, NAN, 1, 8.493}, {BLEU_SMOOTH_NONE, NAN, 1, 0.0}, {BLEU_SMOOTH_FLOOR, NAN, 1, 4.51688},
        {BLEU_SMOOTH_FLOOR, 0.5, 1, 10.10}, {BLEU_SMOOTH_ADD_K, NAN, 1, 14.882}, {BLEU_SMOOTH_ADD_K, 2, 1, 21.389},
        {BLEU_SMOOTH_EXP, NAN, 0, 7.347}};
    int ro_ok = 0;
    for (int i = 0; i < 7; i++) ro_ok += fabs(gm_bleu(sys, ref, 1, 1, gm_opts(ro[i].s, ro[i].value, 1, ro[i].tok13a, 4), NULL) - ro[i].want) < 1e-3;
    const char* s0[] = {"this is a cat"}, *r0[] = {"okay thanks"};
    int zero_ok = 0;
    for (int s = 0; s < 4; s++) zero_ok += gm_bleu(s0, r0, 1, 1, gm_opts((BleuSmooth)s, NAN, 1, 1, 4), NULL) == 0.0;
    report(ro_ok == 7 && zero_ok == 4, "sacreBLEU test_sentence_bleu: %d/7 smoothings (exp 8.493, none 0, floor 4.51688 / 10.10, add-k "
           "14.882 / 21.389, tokenize none 7.347), no match 0 under all 4: %d/4", ro_ok, zero_ok);

    // ROUGE-L. rouge-score's rouge_scorer_test.py: testRougeLConsecutive / NonConsecutive: target "testing one two",
    // prediction "testing one" / "testing two": LCS 2, P = 2/2, R = 2/3, F = 4/5; testRougeEmpty: 0
    RougeScore q1 = rouge_l("testing one two", "testing one"), q2 = rouge_l("testing one two", "testing two"),
               q3 = rouge_l("testing one two", "");
    report(fabs(q1.precision - 1) < 1e-15 && fabs(q1.recall - 2.0 / 3) < 1e-15 && fabs(q1.f - 0.8) < 1e-15 &&
           fabs(q2.f - 0.8) < 1e-15 && q3.f == 0 && q3.precision == 0 && q3.recall == 0,
           "rouge-score testRougeL*: P %.4f R %.4f F %.4f (= 1, 2/3, 4/5), non-consecutive F %.4f, empty F %.1f", q1.precision, q1.recall, q1.f, q2.f, q3.f);
    // hand: "The cat, sat on THE mat!" vs target "the cat is on the mat": lowercase, punctuation gone: 6 tokens each,
    //   LCS "the cat on the mat" = 5: P = R = F = 5/6. "testing" vs "testing one two": LCS 1, P 1, R 1/3, F 2*(1/3)/(4/3) = 1/2.
    //   Only non-alphanumerics: no token, F 0. U+0130 "I" lowers to "i" + U+0307 in Python: "\xc4\xb0stanbul" is "i stanbul";
    //   the Kelvin sign U+212A lowers to "k". Corpus: the mean of the F's.
    RougeScore q4 = rouge_l("the cat is on the mat", "The cat, sat on THE mat!"), q5 = rouge_l("testing one two", "testing"),
               q6 = rouge_l("the cat", "/ -- ?"), q7 = rouge_l("i stanbul 5k", "\xc4\xb0stanbul 5\xe2\x84\xaa");
    const char* tg[] = {"testing one two", "the cat is on the mat"}, *pr[] = {"testing", "The cat, sat on THE mat!"};
    double mean = rouge_l_corpus(tg, pr, 2);
    report(fabs(q4.f - 5.0 / 6) < 1e-15 && fabs(q5.f - 0.5) < 1e-15 && q6.f == 0 && fabs(q7.f - 1) < 1e-15 &&
           fabs(mean - (0.5 + 5.0 / 6) / 2) < 1e-15,
           "ROUGE-L by hand: %.6f = 5/6, %.4f = 1/2, no tokens %.1f, U+0130/U+212A %.1f = 1, corpus mean %.6f = (1/2 + 5/6)/2", q4.f, q5.f, q6.f, q7.f, mean);

    // eval --generate, end to end. A byte-level SFT set: prompts "Q: ab\nA:" ... "Q: ij\nA:", every response " the cat
    // sat on the mat." + <|endoftext|> (256), and a 1-layer V = 257 model trained on it until it answers that
    // (100 steps; seeded). Greedy, up to 40 new tokens: every response is the reference, BLEU 100, ROUGE-L 1. Cut
    // at 16 new tokens: " the cat sat on " is 4 13a tokens against 7 ("the cat sat on the mat ."): all four
    // precisions 100% (1 4-gram of 1), BP = exp(1 - 7/4), BLEU = 100 e^(-3/4) = 47.2366552741; ROUGE-L: LCS 4,
    // P = 4/4, R = 4/6, F = 0.8. Both lines' figures are also recomputed from generations.jsonl.
    DsWriter w;
    char err[256];
    const char* answer = " the cat sat on the mat.";
    if (ds_writer_open(&w, "test_tmp/gen_sft.ds", EXAMPLES_MAGIC, DS_SFT, 257, 0, err, sizeof err)) failf(NULL, "%s", err);
    static const char* const qa[] = {"ab", "cd", "ef", "gh", "ij"};
    for (int e = 0; e < 5; e++) {
        int ids[64], n = 0;
        char q[16];
        snprintf(q, sizeof q, "Q: %s\nA:", qa[e]);
        for (const char* c = q; *c; c++) ids[n++] = (unsigned char)*c;
        int np = n;
        for (const char* c = answer; *c; c++) ids[n++] = (unsigned char)*c;
        ids[n++] = 256;
        unsigned char mask[64] = {0};
        for (int i = np; i < n; i++) mask[i] = 1;
        ds_write_example(&w, ids, (size_t)n, np, mask);
    }
    if (ds_writer_close(&w, err, sizeof err)) failf(NULL, "%s", err);
    char out[1024];
    mkdir("test_tmp/gen", 0755);
    int rc = run_cmd("./train --init 1,2,32 --vocab 257 --max-seq 48 --train test_tmp/gen_sft.ds --batch 5 --seq 48 --steps 100 "
                     "--lr 1e-2 --print-every 0 --out test_tmp/gen", "done:", out, sizeof out);
    report(rc == 0, "a byte-level model learns the constant answer: %s", out);
    static const int max_new[2] = {40, 16};
    static const double want_bleu[2] = {100.0, 47.2366552741}, want_rouge[2] = {1.0, 0.8};
    for (int k = 0; k < 2; k++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "./train eval --model test_tmp/gen/model.bin --data test_tmp/gen_sft.ds --batch 5 --seq 48 "
                 "--generate -1 --max-new-tokens %d --tokenizer bytes --out test_tmp/gen", max_new[k]);
        rc = run_cmd(cmd, "bleu", out, sizeof out);
        const char* bs = strstr(out, "\"bleu\": "), *rs_ = strstr(out, "\"rouge_l\": "), *ge = strstr(out, "\"gen_examples\": ");
        double printed_bleu = bs ? strtod(bs + 8, NULL) : NAN, printed_rouge = rs_ ? strtod(rs_ + 11, NULL) : NAN;
        FILE* f = fopen("test_tmp/gen/generations.jsonl", "r");
        char line[4096];
        char* hyps[8] = {0}, *refs[8] = {0};
        int lines = 0, bounded = 1, refs_ok = 1;
        while (f && lines < 8 && fgets(line, sizeof line, f)) {
            ByteVec g = {0}, h = {0};
            const char* nt = strstr(line, "\"new_tokens\": ");
            bounded &= nt && atoi(nt + 14) == (k ? 16 : 25) && strstr(line, k ? "\"stopped\": false" : "\"stopped\": true");
            if (gm_json_field(line, "reference", &g) || gm_json_field(line, "generation", &h)) refs_ok = 0;
            refs_ok &= g.data && !strcmp((char*)g.data, answer);  // the response without its <|endoftext|>
            refs[lines] = (char*)g.data, hyps[lines] = (char*)h.data;
            lines++;
        }
        if (f) fclose(f);
        double rb_ = lines ? bleu_corpus((const char* const*)hyps, (const char* const*)refs, (size_t)lines, 1, &none).score : NAN;
        double rr_ = lines ? rouge_l_corpus((const char* const*)refs, (const char* const*)hyps, (size_t)lines) : NAN;
        // printed with 4 (BLEU) and 6 (ROUGE-L) decimals: half a unit of the last digit
        report(rc == 0 && ge && atoi(ge + 16) == 5 && lines == 5 && bounded && refs_ok && fabs(printed_bleu - want_bleu[k]) < 5e-5 &&
               fabs(printed_rouge - want_rouge[k]) < 5e-7 && fabs(rb_ - printed_bleu) < 5e-5 && fabs(rr_ - printed_rouge) < 5e-7,
               "eval --generate --max-new-tokens %d: 5 JSONL lines, %s, BLEU %.4f (want %.4f) ROUGE-L %.6f (want %.1f), the same "
               "recomputed from the file", max_new[k], k ? "16 new tokens, none stopped" : "the reference + <|endoftext|> each",
               printed_bleu, want_bleu[k], printed_rouge, want_rouge[k]);
        for (int i = 0; i < lines; i++) free(hyps[i]), free(refs[i]);
    }
    char s1[1024], s2[1024];
    const char* samp = "./train eval --model test_tmp/gen/model.bin --data test_tmp/gen_sft.ds --batch 5 --seq 48 --generate 3 "
                       "--max-new-tokens 30 --tokenizer bytes --temperature 1.5 --top-k 20 --seed 7";
    int ra_ = run_cmd(samp, "bleu", s1, sizeof s1), rb2 = run_cmd(samp, "bleu", s2, sizeof s2);
    const char* gs = strstr(s1, "\"gen_seconds\"");  // everything before the timing must agree
    report(ra_ == 0 && rb2 == 0 && gs && !strncmp(s1, s2, (size_t)(gs - s1)) && strstr(s1, "\"gen_examples\": 3"),
           "eval --generate sampled (--temperature 1.5 --top-k 20 --seed 7) twice: the same line: %.*s", gs ? (int)(gs - s1) : 0, s1);
    expect_error("--generate without --tokenizer", "./train eval --model test_tmp/gen/model.bin --data test_tmp/gen_sft.ds --generate 2 --seq 48", "--generate decodes");
    expect_error("--generate on LM tokens", "./train eval --model test_tmp/gen/model.bin --data test_tmp/tok.bin --generate 2 --tokenizer bytes --seq 16", "is not SFT data");
    expect_error("--max-new-tokens without --generate", "./train eval --model test_tmp/gen/model.bin --data test_tmp/gen_sft.ds --max-new-tokens 4 --seq 48", "is for eval --generate");
    expect_error("unknown --bleu-smooth", "./train eval --model test_tmp/gen/model.bin --data test_tmp/gen_sft.ds --generate 2 --tokenizer bytes --bleu-smooth add-one --seq 48", "unknown --bleu-smooth");
}

// ---------------------------------------------------------------------------- token classification: spans and scores
// spans.h against hand-computed cases, broken BIO sequences included (an I- without a B-, a type change inside
// a run, an entity open at the end of the sentence), the way conlleval and seqeval's default mode read them.
static int spans_equal(const Entity* s, int n, const int* want, int nwant) {  // want: start, end, type triples
    if (n != nwant) return 0;
    for (int i = 0; i < n; i++)
        if (s[i].start != want[3 * i] || s[i].end != want[3 * i + 1] || s[i].type != want[3 * i + 2]) return 0;
    return 1;
}
static void test_spans(void) {
    printf("-- token classification: entity spans and scores (spans.h), hand-computed\n");
    const char names[5][256] = {"B-loc", "B-per", "I-loc", "I-per", "O"};  // ids 0..4; types: loc = 0, per = 1
    enum { BL, BP, IL, IP, O };
    TagSet ts;
    int bad = tagset_init(&ts, names, 5);
    report(!bad && ts.ntypes == 2 && !strcmp(ts.types[0], "loc") && !strcmp(ts.types[1], "per") && ts.tag[IP].bio == 'I' &&
           ts.tag[IP].type == 1 && ts.tag[O].type == -1, "tag set: 5 BIO tags, types loc, per in order of first appearance");
    const char notbio[3][256] = {"O", "B-x", "PER"};
    TagSet t2;
    report(tagset_init(&t2, notbio, 3) == 3 && !tag_is_bio("B-") && !tag_is_bio("E-x") && !tag_is_bio("o") && tag_is_bio("I-x"),
           "a tag outside BIO (PER, B-, E-x, o) is refused, naming the first (index 2 + 1)");
    tagset_free(&t2);
    struct { const char* what; int n; int tags[8]; int nwant; int want[12]; } cases[] = {
        {"B-per I-per O B-loc: two entities", 4, {BP, IP, O, BL}, 2, {0, 2, 1, 3, 4, 0}},
        {"O I-per I-per: an I- without a B- starts one", 3, {O, IP, IP}, 1, {1, 3, 1}},
        {"I-per at the start", 1, {IP}, 1, {0, 1, 1}},
        {"B-per I-loc: a type change splits it", 2, {BP, IL}, 2, {0, 1, 1, 1, 2, 0}},
        {"I-loc B-loc I-loc: B- always starts a new one", 3, {IL, BL, IL}, 2, {0, 1, 0, 1, 3, 0}},
        {"B-per B-per: two", 2, {BP, BP}, 2, {0, 1, 1, 1, 2, 1}},
        {"O O: none", 2, {O, O}, 0, {0}},
        {"B-loc I-loc I-loc open at the end", 3, {BL, IL, IL}, 1, {0, 3, 0}},
    };
    Entity sp[8];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int n = spans_from_tags(sp, cases[k].tags, cases[k].n, &ts);
        report(spans_equal(sp, n, cases[k].want, cases[k].nwant), "spans: %s (%d found)", cases[k].what, n);
    }
    // scores: sentence 1 gold (0,2,per) (3,5,loc) (6,7,per); predicted (0,1,per) (3,5,loc) (5,7,per): the I-per
    // after I-loc starts a predicted entity at 5. One exact match (loc). Tokens: 5 of 7 tags right.
    // sentence 2 gold none, predicted (0,1,loc). Sentence 3 all right (no entities).
    int g1[7] = {BP, IP, O, BL, IL, O, IP}, p1[7] = {BP, O, O, BL, IL, IP, IP};
    int g2[2] = {O, O}, p2[2] = {BL, O}, g3[2] = {O, BP}, p3[2] = {O, BP};
    SpanCounts sc;
    span_counts_init(&sc, ts.ntypes);
    Entity scratch[16];
    int w1 = span_counts_add(&sc, g1, p1, 7, &ts, scratch), w2 = span_counts_add(&sc, g2, p2, 2, &ts, scratch);
    int w3 = span_counts_add(&sc, g3, p3, 2, &ts, scratch);
    PRF all = span_prf(&sc, -1), loc = span_prf(&sc, 0), per = span_prf(&sc, 1);
    // gold 4 (2 per + 1 loc + 1 per), predicted 5, correct 2 (loc, and sentence 3's per): P = 2/5, R = 2/4
    double P = 2.0 / 5, R = 2.0 / 4, F = 2 * P * R / (P + R);
    report(w1 && w2 && !w3, "sentences with wrong entities flagged: %d %d %d (want 1 1 0)", w1, w2, w3);
    report(all.gold == 4 && all.pred == 5 && all.correct == 2 && fabs(all.precision - P) < 1e-15 && fabs(all.recall - R) < 1e-15 &&
           fabs(all.f1 - F) < 1e-15, "micro: gold %zu pred %zu correct %zu  P %.4f R %.4f F1 %.4f (want 4 5 2, %.4f %.4f %.4f)",
           all.gold, all.pred, all.correct, all.precision, all.recall, all.f1, P, R, F);
    // loc: gold 1, pred 2, correct 1 -> P 1/2, R 1, F1 2/3; per: gold 3, pred 3, correct 1 -> 1/3 each
    report(fabs(loc.precision - 0.5) < 1e-15 && loc.recall == 1.0 && fabs(loc.f1 - 2.0 / 3) < 1e-15 &&
           fabs(per.precision - 1.0 / 3) < 1e-15 && fabs(per.recall - 1.0 / 3) < 1e-15 && fabs(per.f1 - 1.0 / 3) < 1e-15,
           "per type: loc P %.4f R %.4f F1 %.4f (want 0.5 1 0.6667), per %.4f %.4f %.4f (want 1/3 each)", loc.precision,
           loc.recall, loc.f1, per.precision, per.recall, per.f1);
    // tokens: 5 of 7 in sentence 1, 1 of 2 in sentence 2 (B-loc for O), 2 of 2 in sentence 3
    report(sc.tok_correct == 8 && sc.tok_total == 11, "token accuracy %zu/%zu (want 8/11)", sc.tok_correct, sc.tok_total);
    PRF none = prf_of(0, 0, 0);
    report(none.precision == 0.0 && none.recall == 0.0 && none.f1 == 0.0, "no entities at all: P = R = F1 = 0 (seqeval's zero_division)");
    span_counts_free(&sc);
    tagset_free(&ts);
}

// dataprep tok -> train -> eval on a small CoNLL file with a learnable rule (names are persons, cities
// locations, "New York" a two-word location), with the GPT-2 tokenizer; then LoRA, adapters and freezing on the
// token head, and eval data with another tag set refused.
static void write_text(const char* path, const char* s) {
    FILE* f = fopen(path, "wb");
    if (!f) failf(NULL, "cannot write %s", path);
    fputs(s, f);
    fclose(f);
}
static void test_tok_cli(void) {
    printf("-- token classification: dataprep tok, train, eval, errors.md, methods (runs ./dataprep, ./train)\n");
    static const char* per[] = {"Alice", "Bob", "Carol", "Dave", "Erin"};
    static const char* loc[] = {"Paris", "London", "Berlin", "Rome"};
    FILE* f = fopen("test_tmp/ner.conll", "wb");
    if (!f) failf(NULL, "cannot write test_tmp/ner.conll");
    for (int s = 0; s < 80; s++) {
        fprintf(f, "%s\tB-person\nwent\tO\nto\tO\n", per[s % 5]);
        if (s % 3 == 0) fprintf(f, "New\tB-location\nYork\tI-location\n");
        else fprintf(f, "%s\tB-location\n", loc[s % 4]);
        fprintf(f, "with\tO\n%s\tB-person\n%s", per[(s + 2) % 5], s % 2 ? "\t\n" : "\n");  // a lone TAB separates too
    }
    fclose(f);
    char out[1024];
    int rc = run_cmd("./dataprep tok --tokenizer ../shared/data/gpt2_bpe --out test_tmp/ner --max-len 32 --train test_tmp/ner.conll "
                     "--val test_tmp/ner.conll --test test_tmp/ner.conll", "80 sentences", out, sizeof out);
    report(rc == 0, "dataprep tok: 80 sentences per split (exit %d: %s)", rc, out);
    rc = run_cmd("./train --init 2,2,32 --max-seq 32 --train test_tmp/ner_train.ds --val test_tmp/ner_val.ds --test test_tmp/ner_test.ds "
                 "--batch 8 --seq 16 --steps 120 --lr 3e-3 --val-batches 0 --metric f1 --tokenizer ../shared/data/gpt2_bpe --out test_tmp/ner",
                 "test entities:", out, sizeof out);
    const char* fs = strstr(out, " F1 ");
    double f1 = fs ? atof(fs + 4) : -1.0;
    // the rule is learnable from each word's own token and its left context: every run seen reaches F1 1.0
    report(rc == 0 && f1 >= 0.95, "train on the token head: test entity F1 %.3f >= 0.95 (exit %d: %s)", f1, rc, out);
    size_t n;
    char* md = (char*)read_whole("test_tmp/ner/errors.md", &n);
    report(md && strstr(md, "sentences have wrong entities") && strstr(md, "Entity precision"), "errors.md written with its summary");
    free(md);
    // a model 2 steps in gets entities wrong: errors.md marks them, gold then predicted, [words]type
    mkdir("test_tmp/ner_early", 0755);
    rc = run_cmd("./train --init 2,2,32 --max-seq 32 --train test_tmp/ner_train.ds --val test_tmp/ner_val.ds --test test_tmp/ner_test.ds "
                 "--batch 8 --seq 16 --steps 2 --tokenizer ../shared/data/gpt2_bpe --out test_tmp/ner_early", "error analysis", out, sizeof out);
    md = (char*)read_whole("test_tmp/ner_early/errors.md", &n);
    report(rc == 0 && md && strstr(md, "| 1 | 0 | [Alice]person went to [New York]location with [Carol]person |"),
           "errors.md after 2 steps: sentence 0 listed with its gold entities marked (exit %d)", rc);
    free(md);
    rc = run_cmd("./train eval --model test_tmp/ner/model.bin --data test_tmp/ner_test.ds --batch 8 --seq 16", "\"entity_f1\"", out, sizeof out);
    const char* e = strstr(out, "\"entity_f1\": ");
    report(rc == 0 && e && fabs(atof(e + 13) - f1) < 1e-6 && strstr(out, "\"type\": \"location\"") && strstr(out, "\"token_accuracy\""),
           "eval on the saved model: the same entity F1, per type, token accuracy (exit %d)", rc);
    // Hugging Face's layout: GPT2ForTokenClassification's classifier.weight and .bias, read back the same
    char out2[1024];
    rc = run_cmd("./train export --model test_tmp/ner/model.bin --format safetensors --out test_tmp/ner_hf", "wrote", out2, sizeof out2);
    int rc2 = run_cmd("./train eval --model test_tmp/ner_hf --data test_tmp/ner_test.ds --batch 8 --seq 16", "\"entity_f1\"", out2, sizeof out2);
    const char* l1 = strstr(out, "\"loss\""), *l2 = strstr(out2, "\"loss\"");
    report(rc == 0 && rc2 == 0 && l1 && l2 && atof(l1 + 8) == atof(l2 + 8), "export --format safetensors (classifier.*) and eval of it: the same loss (%s)", l2 ? l2 : out2);
    rc = run_cmd("./train export --model test_tmp/ner/model.bin --format gguf --out test_tmp/ner.gguf", "token head", out2, sizeof out2);
    report(rc == 1, "export of a token model to a format without its head refused: %s", out2);
    rc = run_cmd("./train serve --model test_tmp/ner/model.bin --port 0 --tokenizer ../shared/data/gpt2_bpe", "no endpoint", out2, sizeof out2);
    report(rc == 1, "serve of a token model refused: %s", out2);
    // a training and a test file with a tag set of their own: refused at eval, naming the file
    write_text("test_tmp/ner_other.conll", "Alice\tB-person\nsang\tO\n\nBob\tB-person\nsang\tO\n\n");
    run_cmd("./dataprep tok --tokenizer ../shared/data/gpt2_bpe --out test_tmp/ner_other --train test_tmp/ner_other.conll", "wrote", out, sizeof out);
    rc = run_cmd("./train eval --model test_tmp/ner/model.bin --data test_tmp/ner_other_train.ds --batch 2 --seq 16", "tags here", out, sizeof out);
    report(rc == 1 && strstr(out, "ner_other_train.ds: error:"), "eval data with another tag set refused: %s", out);
    rc = run_cmd("./train eval --model test_tmp/ner/model.bin --data test_tmp/cls.ds --batch 2 --seq 16", "not a token-label dataset", out, sizeof out);
    report(rc == 1, "a classification file given to a token model refused (exit %d)", rc);
    // methods on the token head (E = 4 tags, C = 32): the head is E*C + E = 132 floats and trains with each
    struct { const char* flags; long long want; const char* what; } m[] = {
        {"--method lora --lora-rank 4", 2 * (4 * 32 * 6) + 132, "LoRA r=4 on qkv,proj: 2 layers x r*C*(1+3+1+1), + the head"},
        {"--method adapter --adapter-dim 8", 2 * 2 * (8 * 32 + 8 + 32 * 8 + 32) + 132, "adapters D=8: 2 layers x 2 x (DC+D+CD+C), + the head"},
        {"--freeze base", 132, "everything frozen but the head"},
        {"--freeze head", -132, "the head frozen (the rest trains)"},
    };
    long long total = output_number("./train --model test_tmp/ner/model.bin --train test_tmp/ner_train.ds --batch 8 --seq 16 --steps 1",
                                    "trainable: ");
    for (size_t k = 0; k < sizeof m / sizeof m[0]; k++) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "./train --model test_tmp/ner/model.bin --train test_tmp/ner_train.ds --batch 8 --seq 16 --steps 3 %s", m[k].flags);
        long long got = output_number(cmd, "trainable: ");
        long long want = m[k].want < 0 ? total + m[k].want : m[k].want;
        report(got == want, "tok head with %s: %lld trainable (want %lld: %s)", m[k].flags, got, want, m[k].what);
    }
}

// A checkpoint written before the table grew (fewer tensors, the missing ones empty under its config, as the
// token head of a file from before it existed) still loads: its table is cut to 35 entries here by hand.
static void test_old_table(void) {
    GPT m;
    GPTConfig c = {.maxT = 16, .V = 50, .Vp = 64, .L = 2, .NH = 2, .C = 8};
    gpt_build(&m, c);
    uint64_t rng = 5;
    gpt_init_random(&m, &rng);
    save_checkpoint(&m, "test_tmp/old_table_new.bin", NULL);
    size_t n;
    unsigned char* b = read_whole("test_tmp/old_table_new.bin", &n);
    int old = 35, ok = b && n > 1024 + NUM_PARAMS * 24;
    if (ok) {
        int32_t h9 = old;
        memcpy(b + 9 * 4, &h9, 4);
        FILE* f = fopen("test_tmp/old_table.bin", "wb");
        ok = f && fwrite(b, 1, 1024 + (size_t)old * 24, f) == 1024 + (size_t)old * 24 &&
             fwrite(b + 1024 + NUM_PARAMS * 24, 1, n - 1024 - NUM_PARAMS * 24, f) == n - 1024 - NUM_PARAMS * 24;
        if (f) fclose(f);
    }
    free(b);
    GPT m2;
    if (ok) load_model(&m2, "test_tmp/old_table.bin", NULL);
    ok = ok && m2.num_parameters == m.num_parameters && !memcmp(m.params_memory, m2.params_memory, m.num_parameters * sizeof(float));
    report(ok, "a checkpoint with the older 35-tensor table loads, parameters bit-identical");
    if (ok) gpt_free(&m2);
    gpt_free(&m);
}

// The busy-machine hint (train.c): when other runnable tasks leave fewer free cores than our threads.
static void test_busy_hint(void) {
    printf("-- the busy-machine hint\n");
    int ok = machine_busy(1, 2, 2) && machine_busy(7, 2, 2) && !machine_busy(0, 2, 2) && !machine_busy(1, 2, 1) &&
             !machine_busy(1, 16, 8) && machine_busy(9, 16, 8) && !machine_busy(-1, 2, 2);
    report(ok, "machine_busy: 1 other task on 2 cores with 2 threads is busy, none is not, 1 thread never is, 8 of 16 "
           "cores free for 8 threads is not, 7 is; no /proc (-1) is not");
    int o = others_running();
    int has_proc = access("/proc/loadavg", R_OK) == 0;
    report(has_proc ? o >= 0 : o == -1, "others_running %s: %d other runnable task(s) now", has_proc ? "reads /proc" : "says -1 without /proc", o);
    report(default_threads(1, 2, 2) == 1 && default_threads(0, 2, 2) == 2 && default_threads(7, 2, 2) == 1 &&
           default_threads(-1, 2, 2) == 2 && default_threads(9, 16, 8) == 7 && default_threads(1, 16, 8) == 8 &&
           default_threads(3, 2, 1) == 1,
           "default_threads: one per core other work leaves free (1 of 2 beside one busy task; 7 of 16 beside 9), at least 1, "
           "never more than asked");
}

// ---------------------------------------------------------------------------- Hugging Face Llama / Qwen2 folders
// ref/hf_llama_* (dev/make_hf_llama.py): tiny LlamaForCausalLM / Qwen2ForCausalLM / LlamaForSequenceClassification
// folders with random weights, the real names and config keys, and the logits of a float64 PyTorch forward.
// Each loads with the config it declares; F32, F16 and BF16 files of the same (BF16-exact) weights give the same
// model bit for bit; the fused rows hold q | k | v and gate | up; the logits match the reference; a folder
// trains, exports to safetensors and PEFT and loads back bit for bit; every unsupported config.json feature
// and every damaged folder is refused with one line naming it.

// The worst |a - b| so far, a NaN counting as infinite (fmax would drop it).
static double hfl_worse(double worst, double a, double b) {
    double d = fabs(a - b);
    return d <= worst ? worst : isnan(d) ? INFINITY : d;
}
// The reference's logits (or class logits) against our forward of its tokens; returns the worst |d|.
static double hfl_logits_diff(GPT* m, const char* dir) {
    char path[256];
    snprintf(path, sizeof path, "%s/ref_logits.safetensors", dir);
    SafeTensors st;
    st_open(&st, path);
    const StTensor* tt = st_find(&st, "tokens");
    int B = tt && tt->ndim == 2 ? (int)tt->shape[0] : 0, T = B ? (int)tt->shape[1] : 0, x[64], lens[8];
    if (!B || B * T > 64) failf("regenerate with dev/make_hf_llama.py", "%s: bad tokens", path);
    st_read_i32(&st, tt, x);
    const GPTConfig* c = &m->config;
    double worst = 0;
    if (c->num_classes) {
        float* want = read_ref(&st, "cls_logits", (size_t)B * c->num_classes);
        for (int b = 0; b < B; b++) lens[b] = T;
        gpt_alloc_activations(m, B, T);
        gpt_forward_cls(m, x, lens, NULL, B, T);
        for (int i = 0; i < B * c->num_classes; i++) worst = hfl_worse(worst, m->acts.cls_logits[i], want[i]);
        free(want);
    } else {
        float* want = read_ref(&st, "logits", (size_t)B * T * c->V);
        float* got = lm_logits_copy(m, x, B, T);
        for (int i = 0; i < B * T; i++)
            for (int v = 0; v < c->V; v++) worst = hfl_worse(worst, got[(size_t)i * c->Vp + v], want[(size_t)i * c->V + v]);
        free(want), free(got);
    }
    st_close(&st);
    return worst;
}

// The spec's row layout, written out independently of formats.c's table: qkvw's layer slice is q_proj's C
// rows, k_proj's KVC, v_proj's KVC (biases the same); fcw's is gate_proj's F rows, then up_proj's.
static int hfl_fused_rows_ok(const GPT* m, const char* dir) {
    char path[256], name[128];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    SafeTensors st;
    st_open(&st, path);
    const GPTConfig* c = &m->config;
    size_t C = (size_t)c->C, KVC = (size_t)c->n_kv_heads * (C / (size_t)c->NH), F = (size_t)mlp_width(c), QKV = C + 2 * KVC;
    int ok = 1;
    for (int l = 0; l < c->L; l++) {
        const char* part[5] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"};
        size_t row0[5] = {0, C, C + KVC, 0, F}, rows[5] = {C, KVC, KVC, F, F};
        for (int k = 0; k < 5; k++)
            for (int bias = 0; bias < (k < 3 && c->qkv_bias ? 2 : 1); bias++) {
                snprintf(name, sizeof name, "model.layers.%d.%s.%s", l, part[k], bias ? "bias" : "weight");
                const StTensor* t = st_find(&st, name);
                size_t cols = bias ? 1 : C;
                if (!t || st_numel(t) != rows[k] * cols) { ok = 0; continue; }
                float* w = (float*)mallocCheck(st_numel(t) * sizeof(float));
                st_read_f32(&st, t, w);
                const float* ours = bias ? m->params.qkvb + (size_t)l * QKV + row0[k]
                                         : (k < 3 ? m->params.qkvw + (size_t)l * QKV * C : m->params.fcw + (size_t)l * 2 * F * C) + row0[k] * C;
                ok &= !memcmp(w, ours, st_numel(t) * sizeof(float));
                free(w);
            }
    }
    st_close(&st);
    return ok;
}

// The base model's parameters and the config fields an export keeps, equal bit for bit.
static int hfl_same_base(const GPT* a, const GPT* b) {
    const GPTConfig *x = &a->config, *y = &b->config;
    int cfg = x->arch == y->arch && x->L == y->L && x->C == y->C && x->NH == y->NH && x->n_kv_heads == y->n_kv_heads &&
              mlp_width(x) == mlp_width(y) && x->V == y->V && x->Vp == y->Vp && x->maxT == y->maxT && x->untied == y->untied &&
              x->qkv_bias == y->qkv_bias && x->rope_theta == y->rope_theta && x->norm_eps == y->norm_eps &&
              x->rope_factor == y->rope_factor && x->num_classes == y->num_classes;
    if (!cfg) return 0;
    for (int p = 0; p < NUM_PARAMS; p++) {
        if (p >= NUM_BASE_PARAMS && p != PIDX(lm_head) && p != PIDX(cls_w)) continue;
        size_t n = param_numel(x, p);
        if (n != param_numel(y, p) || (n && memcmp(a->params.t[p], b->params.t[p], n * sizeof(float)))) return 0;
    }
    return 1;
}

// A copy of ref folder src in dst with `from` replaced by `to` in config.json (from NULL: unchanged).
static void hfl_copy_edited(const char* src, const char* dst, const char* from, const char* to) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s && cp %s/model.safetensors %s/", dst, dst, src, dst);
    if (system(cmd)) {}
    snprintf(cmd, sizeof cmd, "%s/config.json", src);
    size_t n;
    char* text = (char*)read_whole(cmd, &n);
    char* at = text && from ? strstr(text, from) : NULL;
    if (from && !at) printf("(hfl_copy_edited: '%s' not found in %s/config.json)\n", from, src);
    snprintf(cmd, sizeof cmd, "%s/config.json", dst);
    FILE* f = fopen_check(cmd, "wb");
    if (at) fprintf(f, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    else if (text) fputs(text, f);
    fclose(f);
    free(text);
}

// The issue's whole path on a Hugging Face Llama-layout folder written by dev/make_hf_llama.py (real names and
// config): it loads, trains 2 steps, and the trained model goes out as safetensors and GGUF and comes back bit for
// bit, each (tied F32 and the untied folder with linear RoPE scaling).
static void test_hf_llama_roundtrip(void) {
    const char* dirs[2] = {"ref/hf_llama_f32", "ref/hf_llama_untied"};
    for (int d = 0; d < 2; d++) {
        char cmd[512], out[1024], run[64];
        snprintf(run, sizeof run, "test_tmp/hfrt%d", d);
        mkdir(run, 0755);
        snprintf(cmd, sizeof cmd, "./train --model %s --train test_tmp/tok.bin --batch 2 --seq 16 --steps 2 --out %s", dirs[d], run);
        int rc = run_cmd(cmd, "done:", out, sizeof out);
        snprintf(cmd, sizeof cmd, "./train export --model %s/model.bin --format safetensors --out %s/hf", run, run);
        rc |= run_cmd(cmd, "wrote", out, sizeof out);
        snprintf(cmd, sizeof cmd, "./train export --model %s/model.bin --format gguf --out %s/m.gguf", run, run);
        rc |= run_cmd(cmd, "wrote", out, sizeof out);
        GPT t, h, g, base;
        char path[128];
        snprintf(path, sizeof path, "%s/model.bin", run);
        load_model(&t, path, NULL);
        snprintf(path, sizeof path, "%s/hf", run);
        load_model(&h, path, NULL);
        snprintf(path, sizeof path, "%s/m.gguf", run);
        load_model(&g, path, NULL);
        load_model(&base, dirs[d], NULL);
        int same = rc == 0 && t.num_parameters == h.num_parameters && t.num_parameters == g.num_parameters &&
                   !memcmp(t.params_memory, h.params_memory, t.num_parameters * 4) && !memcmp(t.params_memory, g.params_memory, t.num_parameters * 4) &&
                   memcmp(t.params_memory, base.params_memory, t.num_parameters * 4) != 0 && is_llama(&g.config) &&
                   g.config.untied == t.config.untied && g.config.rope_factor == t.config.rope_factor;
        report(same, "%s: loads, trains 2 steps, exports to safetensors and GGUF, both load back bit for bit (%zu weights, trained away from the folder's)",
               dirs[d], t.num_parameters);
        gpt_free(&t), gpt_free(&h), gpt_free(&g), gpt_free(&base);
    }
}

static void test_hf_llama(void) {
    printf("-- Hugging Face Llama / Qwen2 folders: load, F32/F16/BF16, logits, train, export, PEFT, bad config.json\n");
    const char* dirs[6] = {"ref/hf_llama_f32", "ref/hf_llama_f16", "ref/hf_llama_bf16", "ref/hf_llama_untied", "ref/hf_qwen2", "ref/hf_llama_cls"};
    GPT m[6];
    for (int i = 0; i < 6; i++) load_model(&m[i], dirs[i], NULL);
    const GPTConfig* c = &m[0].config;
    report(c->arch == ARCH_LLAMA && c->L == 2 && c->C == 16 && c->NH == 2 && c->n_kv_heads == 1 && mlp_width(c) == 40 && c->V == 80 &&
           c->Vp == 128 && c->maxT == 64 && !c->untied && !c->qkv_bias && c->rope_theta == 100000.0f && c->norm_eps == 1e-5f &&
           c->rope_factor == 0 && !c->num_classes,
           "%s: llama, L=%d C=%d NH=%d NKV=%d F=%d V=%d (Vp %d) maxT=%d, tied, theta %g, eps %g (config.json)", dirs[0], c->L, c->C,
           c->NH, c->n_kv_heads, mlp_width(c), c->V, c->Vp, c->maxT, (double)c->rope_theta, (double)c->norm_eps);
    size_t np = num_parameters(c);
    report(!memcmp(&m[1].config, c, sizeof *c) && !memcmp(&m[2].config, c, sizeof *c) &&
           !memcmp(m[1].params_memory, m[0].params_memory, np * 4) && !memcmp(m[2].params_memory, m[0].params_memory, np * 4),
           "F16 and BF16 files of the same (exactly representable) weights load to the F32 model bit for bit (%zu parameters)", np);
    const GPTConfig *cu = &m[3].config, *cq = &m[4].config, *cc = &m[5].config;
    report(cu->untied && cu->n_kv_heads == 2 && cu->rope_factor == 2.0f && mlp_width(cu) == 24 && cq->qkv_bias && cq->NH == 4 &&
           cq->n_kv_heads == 2 && cq->rope_theta == 1e6f && cq->norm_eps == 1e-6f && !cq->untied && cc->num_classes == 3 && !cc->untied,
           "untied + rope_scaling linear 2 (lm_head, NKV %d), qwen2 (q/k/v biases, theta %g, eps %g), classifier (K = %d)",
           cu->n_kv_heads, (double)cq->rope_theta, (double)cq->norm_eps, cc->num_classes);
    int rows_ok = 1;
    for (int i = 0; i < 6; i++) rows_ok &= hfl_fused_rows_ok(&m[i], dirs[i]);
    report(rows_ok, "qkvw's rows are q_proj | k_proj | v_proj (and qkvb the biases), fcw's gate_proj | up_proj, in all 6 folders");
    // float32 against float64 through 2 layers, |logits| ~1: the worst seen is ~3e-7; dev/make_hf_llama.py
    // checks that RoPE, its scaling, GQA's head mapping and the gate/up and k/v order each move it by > 1e-2
    for (int i = 0; i < 6; i++) {
        double d = hfl_logits_diff(&m[i], dirs[i]);
        report(d < 2e-6, "%s: %s against PyTorch float64, max |d| = %.2e (tol 2e-6)", dirs[i], m[i].config.num_classes ? "class logits" : "logits", d);
    }

    // train 2 steps from the folder, export to safetensors, load back: the trained model bit for bit
    int n = 600, ids[600];
    uint64_t rng = 11;
    for (int i = 0; i < n; i++) ids[i] = (int)(random_u32(&rng) % 80);
    write_tokens("test_tmp/hfl_tok.bin", ids, n, 80);
    char out[1024], cmd[1024];
    if (system("rm -rf test_tmp/hfl_run test_tmp/hfl_hf test_tmp/hfl_lora test_tmp/hfl_peft test_tmp/hfl_merged")) {}
    int rc = run_cmd("./train --model ref/hf_qwen2 --train test_tmp/hfl_tok.bin --batch 2 --seq 8 --steps 2 --lr 1e-2 --out test_tmp/hfl_run",
                     "done:", out, sizeof out);
    int rc2 = run_cmd("./train export --model test_tmp/hfl_run/model.bin --format safetensors --out test_tmp/hfl_hf", "wrote", out, sizeof out);
    GPT trained, back;
    load_model(&trained, "test_tmp/hfl_run/model.bin", NULL);
    load_model(&back, "test_tmp/hfl_hf", NULL);
    report(rc == 0 && rc2 == 0 && hfl_same_base(&trained, &back) && !hfl_same_base(&trained, &m[4]),
           "qwen2 folder: trains 2 steps (it changed), exports to safetensors, loads back bit for bit (%s)", out);
    for (int i = 0; i < 6; i++) {  // every folder's model through export_hf and back
        char dir[64];
        snprintf(dir, sizeof dir, "test_tmp/hfl_x%d", i);
        export_hf(&m[i], dir);
        GPT b2;
        load_model(&b2, dir, NULL);
        int same = hfl_same_base(&m[i], &b2);
        snprintf(cmd, sizeof cmd, "%s/config.json", dir);
        size_t nc;
        char* cfg = (char*)read_whole(cmd, &nc);
        const char* arch = i == 4 ? "\"Qwen2ForCausalLM\"" : i == 5 ? "\"LlamaForSequenceClassification\"" : "\"LlamaForCausalLM\"";
        report(same && cfg && strstr(cfg, arch) && strstr(cfg, i == 4 ? "\"model_type\": \"qwen2\"" : "\"model_type\": \"llama\"") &&
               (i != 3 || strstr(cfg, "\"factor\": 2}")), "%s: export_hf then load: config and weights bit for bit, %s", dirs[i], arch);
        free(cfg);
        gpt_free(&b2);
    }
    SafeTensors st;
    st_open(&st, "test_tmp/hfl_x3/model.safetensors");
    int names_ok = st.n == 21 && st_find(&st, "lm_head.weight") && st_find(&st, "model.layers.1.mlp.down_proj.weight");
    st_close(&st);
    st_open(&st, "test_tmp/hfl_x0/model.safetensors");
    names_ok &= st.n == 20 && !st_find(&st, "lm_head.weight");
    st_close(&st);
    report(names_ok, "the untied export writes lm_head.weight (21 tensors), the tied one does not (20)");

    // PEFT: LoRA on all seven modules of layer 1 (of 2), random B so it is not the identity
    GPT lora, base, peft;
    load_model(&lora, "ref/hf_llama_untied", NULL);
    GPTConfig cl = lora.config;
    cl.lora_r = 2, cl.lora_alpha = 6.0f, cl.lora_first = 1, cl.lora_last = 1;
    cl.lora_targets = LORA_Q | LORA_K | LORA_V | LORA_PROJ | LORA_GATE | LORA_UP | LORA_FCPROJ;
    gpt_set_peft(&lora, cl, &rng);
    PeftModule mods[7];
    int nm = peft_modules(&cl, mods);
    for (int k = 0; k < nm; k++) fill_random(lora.params.t[mods[k].a + 1], param_numel(&cl, mods[k].a + 1), 0.2f);
    save_checkpoint(&lora, "test_tmp/hfl_lora.bin", NULL);
    rc = run_cmd("./train export --model test_tmp/hfl_lora.bin --format peft --out test_tmp/hfl_peft", "wrote", out, sizeof out);
    load_model(&base, "ref/hf_llama_untied", NULL);
    load_model(&peft, "ref/hf_llama_untied", NULL);
    load_adapter(&peft, "test_tmp/hfl_peft");
    int x[16];
    for (int i = 0; i < 16; i++) x[i] = ids[i];
    size_t nl = (size_t)16 * lora.config.Vp;
    float *ll = lm_logits_copy(&lora, x, 2, 8), *lp = lm_logits_copy(&peft, x, 2, 8), *lb = lm_logits_copy(&base, x, 2, 8);
    const GPTConfig* pc = &peft.config;
    report(rc == 0 && nm == 7 && pc->lora_r == 2 && pc->lora_alpha == 6.0f && pc->lora_targets == cl.lora_targets && pc->lora_first == 1 &&
           pc->lora_last == 1 && !memcmp(ll, lp, nl * 4) && memcmp(ll, lb, nl * 4),
           "llama PEFT export (7 modules, layer 1), then --adapter on the HF base: the same LoRA and logits bit for bit (%s)", out);
    st_open(&st, "test_tmp/hfl_peft/adapter_model.safetensors");
    const StTensor* ka = st_find(&st, "base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight");
    const StTensor* ga = st_find(&st, "base_model.model.model.layers.1.mlp.gate_proj.lora_A.weight");
    names_ok = st.n == 14 && ka && ka->shape[0] == 16 && ka->shape[1] == 2 && ga && ga->shape[0] == 2 && ga->shape[1] == 16;
    st_close(&st);
    size_t nc;
    char* cfg = (char*)read_whole("test_tmp/hfl_peft/adapter_config.json", &nc);
    const char* want = "\"target_modules\": [\"q_proj\", \"k_proj\", \"v_proj\", \"o_proj\", \"gate_proj\", \"up_proj\", \"down_proj\"]";
    report(names_ok && cfg && strstr(cfg, want) && strstr(cfg, "\"layers_to_transform\": [1],") && strstr(cfg, "\"fan_in_fan_out\": false"),
           "PEFT files: 14 tensors base_model.model.model.layers.1.<module>.lora_A (r,in) / lora_B (out,r); %s, layers_to_transform [1]", want);
    free(cfg), free(ll), free(lp), free(lb);
    // the command line: LoRA trained from the folder (--lora-targets with HF's short names), exported as PEFT,
    // applied to the folder again: the trained model's logits bit for bit
    rc = run_cmd("./train --model ref/hf_llama_f32 --train test_tmp/hfl_tok.bin --batch 2 --seq 8 --steps 2 --lr 1e-2 --method lora "
                 "--lora-rank 2 --lora-targets q,v,gate,down --lora-layers 0-0 --out test_tmp/hfl_lora", "done:", out, sizeof out);
    rc2 = run_cmd("./train export --model test_tmp/hfl_lora/model.bin --format peft --out test_tmp/hfl_lora/peft", "wrote", out, sizeof out);
    GPT tl, tp;
    load_model(&tl, "test_tmp/hfl_lora/model.bin", NULL);
    load_model(&tp, "ref/hf_llama_f32", NULL);
    load_adapter(&tp, "test_tmp/hfl_lora/peft");
    ll = lm_logits_copy(&tl, x, 2, 8), lp = lm_logits_copy(&tp, x, 2, 8), lb = lm_logits_copy(&m[0], x, 2, 8);
    report(rc == 0 && rc2 == 0 && tp.config.lora_targets == (LORA_Q | LORA_V | LORA_GATE | LORA_FCPROJ) && tp.config.lora_last == 0 &&
           !memcmp(ll, lp, (size_t)16 * tl.config.Vp * 4) && memcmp(ll, lb, (size_t)16 * tl.config.Vp * 4),
           "./train --method lora on the folder (q,v,gate,down, layer 0; it moved the logits), export peft, --adapter: logits bit for bit");
    free(ll), free(lp), free(lb);
    gpt_free(&tl), gpt_free(&tp);
    // a classifier: LoRA on q, v of both layers and the score head (modules_to_save), on the LlamaForSequenceClassification base
    GPT cls, clsb;
    load_model(&cls, "ref/hf_llama_cls", NULL);
    GPTConfig ck = cls.config;
    ck.lora_r = 2, ck.lora_alpha = 4.0f, ck.lora_first = 0, ck.lora_last = 1, ck.lora_targets = LORA_Q | LORA_V;
    gpt_set_peft(&cls, ck, &rng);
    fill_random(cls.params.lora_q_b, param_numel(&ck, PIDX(lora_q_b)), 0.2f);
    fill_random(cls.params.lora_v_b, param_numel(&ck, PIDX(lora_v_b)), 0.2f);
    fill_random(cls.params.cls_w, param_numel(&ck, PIDX(cls_w)), 0.2f);
    export_peft(&cls, "test_tmp/hfl_peft_cls", 0.0f);
    load_model(&clsb, "ref/hf_llama_cls", NULL);
    load_adapter(&clsb, "test_tmp/hfl_peft_cls");
    int lens2[2] = {8, 6};
    gpt_alloc_activations(&cls, 2, 8), gpt_alloc_activations(&clsb, 2, 8);
    gpt_forward_cls(&cls, x, lens2, NULL, 2, 8);
    gpt_forward_cls(&clsb, x, lens2, NULL, 2, 8);
    cfg = (char*)read_whole("test_tmp/hfl_peft_cls/adapter_config.json", &nc);
    report(clsb.config.lora_targets == (LORA_Q | LORA_V) && !memcmp(cls.acts.cls_logits, clsb.acts.cls_logits, 6 * sizeof(float)) && cfg &&
           strstr(cfg, "\"target_modules\": [\"q_proj\", \"v_proj\"],") && strstr(cfg, "\"layers_to_transform\": null,") &&
           strstr(cfg, "\"modules_to_save\": [\"score\"]") && strstr(cfg, "\"task_type\": \"SEQ_CLS\""),
           "llama classifier PEFT (q, v, all layers, score): SEQ_CLS, layers_to_transform null, class logits bit for bit");
    free(cfg);
    gpt_free(&cls), gpt_free(&clsb);

    // bad config.json: one line naming the key, the value and what is supported
    struct { const char* src; const char* from; const char* to; const char* needle; } bad[] = {
        {"ref/hf_llama_f32", "\"model_type\": \"llama\"", "\"model_type\": \"mistral\"", "model_type is \"mistral\": not supported (supported: \"gpt2\", \"llama\", \"qwen2\")"},
        {"ref/hf_llama_f32", "\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}", "rope_scaling is {\"rope_type\": \"yarn\"}: not supported (supported: null, \"default\", \"linear\")"},
        {"ref/hf_llama_f32", "\"rope_scaling\": null", "\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2.0}", "rope_scaling is {\"rope_type\": \"dynamic\"}: not supported"},
        {"ref/hf_llama_f32", "\"rope_scaling\": null", "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 0.5}", "rope_scaling is linear with factor 0.5: not supported (supported: a factor >= 1)"},
        {"ref/hf_qwen2", "\"use_sliding_window\": false", "\"use_sliding_window\": true", "use_sliding_window is true: not supported (supported: false"},
        {"ref/hf_llama_f32", "\"use_cache\": true", "\"num_local_experts\": 8", "num_local_experts is 8: not supported (supported: dense models"},
        {"ref/hf_llama_f32", "\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "hidden_act is \"gelu\": not supported (supported: \"silu\""},
        {"ref/hf_llama_f32", "\"head_dim\": 8", "\"head_dim\": 4", "head_dim is 4: not supported (supported: hidden_size / num_attention_heads)"},
        {"ref/hf_llama_f32", "\"mlp_bias\": false", "\"mlp_bias\": true", "mlp_bias is true: not supported (supported: false)"},
        {"ref/hf_llama_f32", "\"attention_bias\": false", "\"attention_bias\": true", "attention_bias is true: not supported"},
        {"ref/hf_llama_f32", "\"hidden_size\": 16,", "", "hidden_size is missing"},
        {"ref/hf_llama_f32", "\"num_key_value_heads\": 1", "\"num_key_value_heads\": 3", "num_key_value_heads 3 does not divide num_attention_heads 2"},
        {"ref/hf_llama_f32", "\"intermediate_size\": 40", "\"intermediate_size\": 41", "'model.layers.0.mlp.gate_proj.weight' has shape [40, 16], expected [41, 16]"},
        {"ref/hf_llama_f32", "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false", "missing tensor 'lm_head.weight'"},
        {"ref/hf_llama_f32", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1", "unexpected tensor 'model.layers.1."},
        {"ref/hf_llama_f32", "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": \"small\"", "rms_norm_eps must be a number"},
        {"ref/hf_llama_untied", "\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true", "lm_head.weight differs from model.embed_tokens.weight"},
        {"ref/hf_llama_f32", "\"model_type\": \"llama\"", "\"model_type\": \"gpt2\"", "needs its config.json, not a gpt2 one"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hfl_copy_edited(bad[i].src, "test_tmp/hfl_bad", bad[i].from, bad[i].to);
        char what[128];
        snprintf(what, sizeof what, "config.json with %.100s", bad[i].to[0] ? bad[i].to : "no hidden_size");
        expect_error(what, "./train sample --model test_tmp/hfl_bad --tokens \"1 2\"", bad[i].needle);
    }
    // damaged tensors: a renamed one (missing and unexpected), a duplicate-looking old buffer that is fine, no config.json
    hfl_copy_edited("ref/hf_llama_f32", "test_tmp/hfl_bad", NULL, NULL);
    copy_st_edited("ref/hf_llama_f32/model.safetensors", "test_tmp/hfl_bad/model.safetensors", "model.layers.1.self_attn.v_proj.weight",
                   "model.layers.1.self_attn.w_proj.weight");
    expect_error("a tensor renamed", "./train sample --model test_tmp/hfl_bad --tokens \"1 2\"", "missing tensor 'model.layers.1.self_attn.v_proj.weight'");
    copy_st_edited("ref/hf_llama_f32/model.safetensors", "test_tmp/hfl_bad/model.safetensors", "model.norm.weight", "model.layers.0.self_attn.rotary_emb.inv_freq");
    expect_error("model.norm.weight missing", "./train sample --model test_tmp/hfl_bad --tokens \"1 2\"", "missing tensor 'model.norm.weight'");
    copy_st_edited("ref/hf_llama_f32/model.safetensors", "test_tmp/hfl_bad/model.safetensors", "\"model.norm.weight\"", "\"norm.weight\"");
    GPT noprefix;
    load_model(&noprefix, "test_tmp/hfl_bad", NULL);
    report(hfl_same_base(&noprefix, &m[0]), "a tensor without the \"model.\" prefix (LlamaModel's own names) loads the same");
    gpt_free(&noprefix);
    if (system("rm test_tmp/hfl_bad/config.json")) {}
    expect_error("no config.json", "./train sample --model test_tmp/hfl_bad --tokens \"1 2\"", "a Llama-layout checkpoint (model.embed_tokens.weight) needs its config.json");
    if (system("rm -rf test_tmp/hfl_bad && mkdir -p test_tmp/hfl_bad && cp ref/hf_llama_f32/config.json test_tmp/hfl_bad/ && "
               "touch test_tmp/hfl_bad/model.safetensors.index.json")) {}
    expect_error("a sharded folder", "./train sample --model test_tmp/hfl_bad --tokens \"1 2\"", "a sharded checkpoint (model.safetensors.index.json)");
    for (int i = 0; i < 6; i++) gpt_free(&m[i]);
    gpt_free(&trained), gpt_free(&back), gpt_free(&lora), gpt_free(&base), gpt_free(&peft);
}

int main(void) {
    mkdir("test_tmp", 0755);
    printf("-- tier 1: kernels against finite differences, fast matmul against the reference\n");
    test_fd_encoder();
    test_fd_layernorm();
    test_fd_matmul();
    test_fd_attention(0.0f, 1, 3);
    test_fd_attention(0.3f, 1, 3);
    test_fd_attention(0.0f, 0, 3);
    test_fd_attention(0.3f, 0, 3);
    test_fd_gelu();
    test_fd_residual();
    test_fd_crossentropy();
    test_fd_prefix_attention(1, 2);
    test_fd_prefix_attention(0, 2);
    test_fd_attention_chunks();
    test_fd_lora(0.0f);
    test_fd_lora(0.3f);
    test_fd_llama_kernels();
    test_llama_fd();
    test_fd_adapter();
    test_fd_cls();
    test_vector_helpers();
    test_matmul_fast_vs_ref();
    test_reference("a");
    test_reference("b");
    test_method("lora");
    test_method("adapter");
    test_method("prefix");
    test_method("cls");
    test_method("freeze");
    test_method_multitask();
    test_class_range();
    test_method("ref/encoder_mlm.safetensors");
    test_method("ref/encoder_cls.safetensors");
    test_method("ref/encoder_prefix.safetensors");
    test_method("tok");
    test_method("tok_lora");
    test_method("ref/llama_untied.safetensors");
    test_method("ref/llama_tied.safetensors");
    test_method("ref/llama_qwen2.safetensors");
    test_method("ref/llama_lora.safetensors");
    test_method("ref/llama_adapter.safetensors");
    test_method("ref/llama_prefix.safetensors");
    test_method("ref/llama_freeze.safetensors");
    test_method("ref/llama_cls.safetensors");
    printf("-- tier 3: loaders and invariants\n");
    test_peft_invariants();
    test_accumulation();
    test_model_dropout_fd();
    test_metrics();
    test_param_names();
    test_checkpoint_roundtrip();
    test_old_table();
    test_busy_hint();
    test_flag_table();
    test_cli();
    test_llama_cli();
    test_cli_methods();
    test_cli_multitask();
    test_genmetrics();
    test_file_safety();
    test_export_formats();
    test_gguf_permutation();
    test_gguf_llama();
    test_inference();
    test_int8();
    test_pruning();
    test_onnx_export();
    test_hostile_files();
    test_ewc();
    test_replay();
    test_encoder();
    test_card();
    test_spans();
    test_tok_cli();
    test_hf_llama();
    test_hf_llama_roundtrip();
    printf("gpt: %d passed, %d failed\n", checks_passed, checks_failed);
    return checks_failed ? 1 : 0;
}
