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
typedef struct { float *out, *att, *qkv, *r; int B, T, C, NH; float p; } AttCtx;
static double att_obj(void* p) {
    AttCtx* c = p;
    attention_forward(c->out, c->att, c->qkv, NULL, NULL, c->B, c->T, c->C, c->NH, 0, c->p, 99);
    return dot_double(c->out, c->r, (size_t)c->B * c->T * c->C);
}
static void test_fd_attention(float p) {
    int B = 2, T = 5, C = 12, NH = 3;
    size_t n = (size_t)B * T * C;
    AttCtx c = {mallocCheck(n * 4), mallocCheck((size_t)B * NH * T * T * 4), mallocCheck(3 * n * 4), mallocCheck(n * 4), B, T, C, NH, p};
    fill_random(c.qkv, 3 * n, 1.0f); fill_random(c.r, n, 1.0f);
    float* dqkv = callocCheck(3 * n, 4);
    att_obj(&c);
    attention_backward(dqkv, NULL, NULL, c.r, c.qkv, NULL, NULL, c.att, B, T, C, NH, 0, p, 99);
    const char* k = p > 0 ? "attn+drop" : "attention";
    check_fd(k, "dqkv", dqkv, c.qkv, 3 * n, att_obj, &c);
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
typedef struct { float *out, *att, *qkv, *pk, *pv, *r; int B, T, C, NH, P; } PreCtx;
static double pre_obj(void* p) {
    PreCtx* c = p;
    attention_forward(c->out, c->att, c->qkv, c->pk, c->pv, c->B, c->T, c->C, c->NH, c->P, 0.0f, 0);
    return dot_double(c->out, c->r, (size_t)c->B * c->T * c->C);
}
static void test_fd_prefix_attention(void) {
    int B = 2, T = 4, C = 6, NH = 2, P = 3;
    size_t n = (size_t)B * T * C;
    PreCtx c = {mallocCheck(n * 4), mallocCheck((size_t)B * NH * T * (P + T) * 4), mallocCheck(3 * n * 4),
                mallocCheck(P * C * 4), mallocCheck(P * C * 4), mallocCheck(n * 4), B, T, C, NH, P};
    fill_random(c.qkv, 3 * n, 1.0f); fill_random(c.pk, P * C, 1.0f); fill_random(c.pv, P * C, 1.0f); fill_random(c.r, n, 1.0f);
    float *dqkv = callocCheck(3 * n, 4), *dpk = callocCheck(P * C, 4), *dpv = callocCheck(P * C, 4);
    pre_obj(&c);
    attention_backward(dqkv, dpk, dpv, c.r, c.qkv, c.pk, c.pv, c.att, B, T, C, NH, P, 0.0f, 0);
    check_fd("prefix-attn", "dqkv", dqkv, c.qkv, 3 * n, pre_obj, &c);
    check_fd("prefix-attn", "dpk", dpk, c.pk, P * C, pre_obj, &c);
    check_fd("prefix-attn", "dpv", dpv, c.pv, P * C, pre_obj, &c);
    free(c.out); free(c.att); free(c.qkv); free(c.pk); free(c.pv); free(c.r); free(dqkv); free(dpk); free(dpv);
}

// LoRA: out = x W^T + s (x A^T) B^T, gradients for x, A and B
typedef struct { float *out, *h, *x, *W, *A, *Bm, *r; float s; size_t N; int C, OC, R; float p; float* xd; } LoraCtx;
static double lora_obj(void* p) {
    LoraCtx* c = p;
    matmul_forward(c->out, c->x, c->W, NULL, c->N, c->C, c->OC);
    lora_forward(c->out, c->h, c->x, c->A, c->Bm, c->s, c->N, c->C, c->OC, c->R, c->p, 77, c->xd);
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
    lora_backward(dx, dA, dB, dh, c.r, c.h, c.x, c.A, c.Bm, c.s, N, C, OC, R, p, 77, c.xd, dxd);
    matmul_backward(dx, NULL, NULL, c.r, c.x, c.W, N, C, OC);  // the frozen W's path into dx
    const char* k = p > 0 ? "lora+drop" : "lora";  // with dropout: the same seed gives the same mask
    check_fd(k, "dx", dx, c.x, N * C, lora_obj, &c);
    check_fd(k, "dA", dA, c.A, R * C, lora_obj, &c);
    check_fd(k, "dB", dB, c.Bm, OC * R, lora_obj, &c);
    free(c.out); free(c.h); free(c.x); free(c.W); free(c.A); free(c.Bm); free(c.r); free(dx); free(dA); free(dB); free(dh);
    free(c.xd); free(dxd);
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
static void test_matmul_fast_vs_ref(void) {
    const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {37, 70, 33}, {130, 300, 257}, {64, 768, 96}};
    for (int s = 0; s < 5; s++) {
        size_t N = shapes[s][0]; int C = shapes[s][1], OC = shapes[s][2];
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
        snprintf(shape, sizeof shape, "%zux%dx%d", N, C, OC);
        // both sum the same products in different orders in fp32: sqrt(K) * 6e-8 relative, ~1e-6 at K=768
        check_tensor("mm fast out", shape, o1, o2, N * OC, 1e-5);
        check_tensor("mm fast dinp", shape, di1, di2, N * C, 1e-5);
        check_tensor("mm fast dw", shape, dw1, dw2, (size_t)OC * C, 1e-5);
        check_tensor("mm fast db", shape, db1, db2, OC, 1e-5);
        free(inp); free(w); free(b); free(dout); free(o1); free(o2); free(di1); free(di2); free(dw1); free(dw2); free(db1); free(db2);
    }
}

// ---------------------------------------------------------------------------- tier 2: PyTorch reference
// Tolerances, from the targets and the errors measured (see the "used" column):
//   logits and loss 1e-5 relative; gradients 1e-4; AdamW trajectory (10 steps) 1e-4 on the losses and grad
//   norms, 2e-4 on each tensor's total update (normwise, see below). Worst seen over the base and method
//   references: logits 2.8e-6, gradients 5.3e-6, step losses and norms 1.6e-5, updates 8.6e-5.
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

static void test_method(const char* method) {
    char path[256];
    snprintf(path, sizeof path, "ref/method_%s.safetensors", method);
    printf("-- PyTorch reference, method %s (%s)\n", method, path);
    SafeTensors st;
    st_open(&st, path);
    GPT model;
    load_model(&model, "ref/gpt_a.bin", NULL);
    GPTConfig c = model.config;
    c.lora_r = (int)meta_float(&st, "lora_r", 0);
    c.lora_alpha = meta_float(&st, "lora_alpha", 0);
    c.lora_targets = (int)meta_float(&st, "lora_targets", 0);
    c.lora_first = 0;
    c.lora_last = c.L - 1;
    c.adapter_dim = (int)meta_float(&st, "adapter_dim", 0);
    c.prefix_len = (int)meta_float(&st, "prefix_len", 0);
    c.num_classes = (int)meta_float(&st, "num_classes", 0);
    uint64_t rng = 1;
    gpt_set_peft(&model, c, &rng);
    model.label_smoothing = meta_float(&st, "label_smoothing", 0);
    int B = atoi(meta_or_die(&st, "B")), T = atoi(meta_or_die(&st, "T")), K = c.num_classes, L = c.L;
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
    } else {
        targets = (int*)mallocCheck(BT * sizeof(int));
        st_read_i32(&st, st_find(&st, "targets"), targets);
    }
#define FORWARD() (K ? gpt_forward_cls(&model, inputs, lengths, labels, B, T) : gpt_forward(&model, inputs, targets, B, T))
    FORWARD();
    size_t nlogits = K ? (size_t)B * K : BT * c.V;
    float* ref_logits = read_ref(&st, "logits", nlogits);
    float* logits = K ? model.acts.cls_logits : unpadded_logits(&model);
    check_tensor("logits", K ? "(B,K)" : "(B,T,V)", logits, ref_logits, nlogits, TOL_LOGITS);
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
    float* ref_losses = read_ref(&st, "step_loss", steps);
    float* ref_norms = read_ref(&st, "step_gradnorm", steps);
    check_tensor("step norm", "(10)", norms, ref_norms, steps, TOL_GRADS);
    check_tensor("step loss", "(10)", losses, ref_losses, steps, TOL_STEPS);
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
        int is_qkvb = !strcmp(PARAM_TABLE[i].name, "qkvb");
        double dd = 0.0, du = 0.0;
        for (int l = 0; l < nl; l++) {
            if (!model.trainable[(size_t)i * L + l]) continue;
            for (size_t j = (size_t)l * ns; j < (size_t)(l + 1) * ns; j++) {
                if (is_qkvb && j % (3 * c.C) >= (size_t)c.C && j % (3 * c.C) < 2 * (size_t)c.C) continue;  // key bias
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
    free(initial); free(ref_losses); free(ref_norms); free(ref_logits); free(ref_loss);
    if (!K) free(logits);
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
        FIELD(prefix_v), FIELD(cls_w)};
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
    expect_error("unwritable --out", "./train --init 1,1,8 --vocab 64 --train test_tmp/tok.bin --batch 2 --seq 8 --steps 1 --out /nonexistent/dir",
                 "cannot write");
    expect_error("unknown flag", "./train --nope 1", "unknown flag");
    expect_error("NaN loss", "./train --init 1,1,8 --vocab 64 --train test_tmp/tok.bin --batch 2 --seq 8 --steps 3 --lr 1e30 --grad-clip 0",
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
    expect_error("LoRA alpha <= 0", cmd, "--lora-alpha 0 must be > 0");
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

int main(void) {
    mkdir("test_tmp", 0755);
    printf("-- tier 1: kernels against finite differences, fast matmul against the reference\n");
    test_fd_encoder();
    test_fd_layernorm();
    test_fd_matmul();
    test_fd_attention(0.0f);
    test_fd_attention(0.3f);
    test_fd_gelu();
    test_fd_residual();
    test_fd_crossentropy();
    test_fd_prefix_attention();
    test_fd_lora(0.0f);
    test_fd_lora(0.3f);
    test_fd_adapter();
    test_fd_cls();
    test_matmul_fast_vs_ref();
    test_reference("a");
    test_reference("b");
    test_method("lora");
    test_method("adapter");
    test_method("prefix");
    test_method("cls");
    test_method("freeze");
    printf("-- tier 3: loaders and invariants\n");
    test_peft_invariants();
    test_accumulation();
    test_model_dropout_fd();
    test_metrics();
    test_param_names();
    test_checkpoint_roundtrip();
    test_cli();
    test_cli_methods();
    printf("gpt: %d passed, %d failed\n", checks_passed, checks_failed);
    return checks_failed ? 1 : 0;
}
