// continual.c: training on new data without forgetting the old. Two standard remedies:
//   rehearsal (--replay OLD --replay-frac F): a seeded share of every batch's rows is drawn from the earlier
//     data, so the old task keeps contributing gradient;
//   EWC, elastic weight consolidation (Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting in neural
//     networks"): ./train fisher estimates how much each weight mattered to the old task (a diagonal Fisher
//     F, saved with the weights theta* it was measured at), and --ewc LAMBDA --fisher FILE adds the penalty
//       (lambda/2) * sum_i F_i (theta_i - theta*_i)^2        over the trainable parameters
//     to the loss: each weight is held to its old value in proportion to its importance.
// train.c hooks both into its training loop (train_step) and adds the `fisher` command.

#pragma once
#include "loader.c"  // defines: DataLoader, loader_init, loader_next, Batch, batch_run, check_data_matches_model
#include "model.h"   // defines: GPT, PARAM_TABLE, gpt_alloc_grads, gpt_backward, gpt_grad

// ---------------------------------------------------------------------------- rehearsal (replay)
// Every global batch the training loader reads (N*B rows under MPI, each micro-batch under --accum) has
// rows = round(F * N*B) of its rows replaced by rows of the earlier data: exactly that many, every batch (not a
// Bernoulli draw per row, whose share would wander from batch to batch on small batches). Which rows, and
// which earlier items fill them, come from an RNG seeded by (--seed, the batch's index step*accum + k):
//   - deterministic: the same seed gives the same batches; resume reproduces them (the index is all the
//     state there is, so nothing extra goes into the checkpoint);
//   - the same on every MPI rank (each rank reads the whole global batch and keeps its rows), so the sharded
//     global batch is exactly the single-process one; a rank's own rows may hold more or fewer replayed rows
//     than another's, the global batch holds exactly `rows`.
// The earlier items are drawn uniformly with replacement (a replay buffer sampled at random, as in
// experience replay), one row at a time: an LM row is a window of T+1 tokens starting at a multiple of T,
// an example row one example truncated or padded to T, as loader.c cuts them with B = 1.
typedef struct {
    DataLoader dl;   // the earlier data, B = 1, file order: item k is read by setting dl.pos = k
    float frac;      // --replay-frac
    int rows;        // replayed rows per global batch
    int batch_rows;  // rows of a global batch
    uint64_t seed;
    int* perm;       // (batch_rows) scratch for choosing the rows
} Replay;

// splitmix64's finaliser: a well-mixed 64-bit value from a counter (seeds the per-batch RNG)
static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Replayed rows in a batch of n rows at share frac: the nearest integer (halves round up).
static int replay_count(float frac, int n) { return (int)floor((double)frac * n + 0.5); }

// Opens OLD for replay into the batches of `train` (the training loader: its kind and global batch size),
// checking that it can serve rows of the same kind and length for this model.
static void replay_open(Replay* rp, const char* path, float frac, const DataLoader* train, const GPT* model, uint64_t seed) {
    memset(rp, 0, sizeof *rp);
    if (!(frac > 0.0f && frac <= 1.0f))
        failf("e.g. --replay-frac 0.2: a fifth of every batch from the earlier data", "--replay-frac %g must be in (0, 1]", frac);
    int n = train->B, T = train->T;
    rp->rows = replay_count(frac, n);
    if (rp->rows < 1)
        failf("raise --replay-frac or --batch", "--replay-frac %g of a batch of %d rows rounds to 0 replayed rows", frac, n);
    Dataset probe;  // checked here first, so the errors speak of --replay rather than of --batch
    char err[512];
    if (dataset_open(&probe, path, err, sizeof err) != 0) failf("--replay takes a dataset from ./dataprep, like --train", "%s", err);
    int is_tokens = probe.magic != EXAMPLES_MAGIC;
    uint64_t count = probe.count;
    dataset_close(&probe);
    if (is_tokens && count < (uint64_t)T + 1)
        failf("replay rows have --seq tokens: use a smaller --seq or more data",
              "--replay %s: %llu tokens is fewer than one row of --seq %d + 1", path, (unsigned long long)count, T);
    if (!is_tokens && count < 1) failf(NULL, "--replay %s has no examples", path);
    loader_init(&rp->dl, path, 1, T, 0, 1);
    if (rp->dl.kind != train->kind) {
        static const char* const kinds[] = {"language-modelling", "classification", "SFT"};
        failf("replay data of the same task as --train (token files: lm, dataprep cls: cls, dataprep sft: sft)",
              "--replay %s is a %s dataset but --train %s is a %s dataset", path, kinds[rp->dl.kind], train->path, kinds[train->kind]);
    }
    check_data_matches_model(&rp->dl, model);
    if (rp->dl.ds.vocab_size > model->config.V)
        failf("replay data tokenized with the tokenizer of --train", "--replay %s has %d token ids, the model %d", path,
              rp->dl.ds.vocab_size, model->config.V);
    rp->frac = frac;
    rp->batch_rows = n;
    rp->seed = seed;
    rp->perm = (int*)mallocCheck((size_t)n * sizeof(int));
    printf("replay: %s (%zu %s), %d of every %d rows\n", path, rp->dl.num_items, is_tokens ? "windows" : "examples", rp->rows, n);
}

// Replaces rp->rows seeded rows of the global batch g (batch number `index` of the run) by earlier rows.
static void replay_mix(Replay* rp, Batch* g, uint64_t index, int V) {
    int n = rp->batch_rows, T = g->T;
    uint64_t rng = mix64(rp->seed ^ mix64(index)) | 1;  // xorshift's state must not be 0
    for (int i = 0; i < n; i++) rp->perm[i] = i;
    for (int j = 0; j < rp->rows; j++) {  // a partial Fisher-Yates shuffle: perm[0..rows) are distinct rows
        int t = j + (int)(random_u32(&rng) % (uint32_t)(n - j));
        int s = rp->perm[j];
        rp->perm[j] = rp->perm[t];
        rp->perm[t] = s;
    }
    for (int j = 0; j < rp->rows; j++) {
        int row = rp->perm[j];
        uint64_t r64 = (uint64_t)random_u32(&rng) << 32 | random_u32(&rng);
        rp->dl.pos = (size_t)(r64 % rp->dl.num_items);  // unshuffled, so order[k] = k: this reads item k
        loader_next(&rp->dl, g->x + (size_t)row * T, g->y + (size_t)row * T, g->len + row, g->lab + row, V);
    }
}

static void replay_free(Replay* rp) {
    loader_free(&rp->dl);
    free(rp->perm);
    memset(rp, 0, sizeof *rp);
}

// ---------------------------------------------------------------------------- EWC: the diagonal Fisher
// F_i = E[(d log p(y|x) / d theta_i)^2], estimated as the EMPIRICAL Fisher with PER-EXAMPLE gradients:
//   F_i = (1/N) sum_n g_{n,i}^2,   g_n = d loss_n / d theta at theta*,  loss_n = example n's mean loss
// - empirical: y is the data's label (target token), not a y sampled from the model's own p(y|x) (the "true"
//   Fisher). It needs one backward per example instead of one per sampled label, and it is what the original
//   EWC code and most PyTorch implementations compute; near a minimum of the old task the two are close.
// - per example, not per batch: squaring a batch's mean gradient gives (mean g)^2, which is the Fisher's
//   mean term only; the per-example variance, most of F when gradients disagree, is lost (on average the
//   batch estimate is ~B times too small for noisy weights). So the model runs one example at a time (B = 1).
// - loss_n is the mean over the example's targets (the loss the trainer minimises), so lambda weighs the
//   penalty against the per-token training loss whatever --seq is. An LM example is one window of T+1 tokens
//   (loader.c's rows with B = 1), a classification example one labelled text, an SFT example its response.
// PyTorch: for x, y in examples: model.zero_grad(); F.cross_entropy(model(x), y).backward();
//          fisher[n] += p.grad ** 2 / N  for each parameter; dev/ref_ewc.py writes ref/ewc_b.safetensors so.
typedef struct {
    float* F[NUM_PARAMS];      // (numel of tensor i): the Fisher diagonal, NULL where the file has none
    float* theta[NUM_PARAMS];  // (numel of tensor i): the weights it was measured at (theta*)
    uint64_t examples;         // N
    int T;                     // --seq it was measured with
    float lambda;              // --ewc
} Ewc;

static void ewc_free(Ewc* e) {
    for (int i = 0; i < NUM_PARAMS; i++) free(e->F[i]), free(e->theta[i]);
    memset(e, 0, sizeof *e);
}

// Estimates F on up to max_examples examples of path (all when 0), in file order, and records theta* = the
// model's weights. Every tensor with elements gets an entry, except int8 weights (frozen, no gradient). The
// model must not have gradients yet: every such tensor is made trainable for the estimate.
static void ewc_fisher(Ewc* e, GPT* model, const char* path, int T, uint64_t max_examples) {
    const GPTConfig* c = &model->config;
    if (model->grads_memory) DIE("ewc_fisher needs a model without gradients", "call it on a freshly loaded model");
    memset(e, 0, sizeof *e);
    for (int i = 0; i < NUM_PARAMS; i++) gpt_set_trainable(model, i, -1, !model->q8[i].q);
    gpt_alloc_grads(model);
    DataLoader dl;
    loader_init(&dl, path, 1, T, 0, 1);
    check_data_matches_model(&dl, model);
    uint64_t n = dl.num_items;
    if (max_examples && max_examples < n) n = max_examples;
    for (int i = 0; i < NUM_PARAMS; i++) {
        size_t ne = param_numel(c, i);
        if (!ne || model->q8[i].q) continue;
        e->F[i] = (float*)callocCheck(ne, sizeof(float));
        e->theta[i] = (float*)mallocCheck(ne * sizeof(float));
        memcpy(e->theta[i], model->params.t[i], ne * sizeof(float));
    }
    Batch b;
    batch_alloc(&b, 1, T);
    uint64_t used = 0;
    for (uint64_t k = 0; k < n; k++) {
        loader_next(&dl, b.x, b.y, b.len, b.lab, c->V);
        batch_run(model, dl.kind, &b);
        if (!isfinite(model->mean_loss)) continue;  // an SFT example whose response was cut off by --seq
        gpt_zero_grad(model);
        gpt_backward(model);
        for (int i = 0; i < NUM_PARAMS; i++) {
            if (!e->F[i]) continue;
            size_t ns = slice_numel(c, i);
            for (int l = 0; l < (param_per_layer(i) ? c->L : 1); l++) {
                const float* g = gpt_grad(model, i, l);
                float* f = e->F[i] + (size_t)l * ns;
                for (size_t j = 0; j < ns; j++) f[j] += g[j] * g[j];
            }
        }
        used++;
    }
    if (!used) failf("the examples must have targets within --seq tokens", "%s: no example had a loss to differentiate", path);
    for (int i = 0; i < NUM_PARAMS; i++)
        for (size_t j = 0, ne = e->F[i] ? param_numel(c, i) : 0; j < ne; j++) e->F[i][j] /= (float)used;
    e->examples = used;
    e->T = T;
    batch_free(&b);
    loader_free(&dl);
}

// ---------------------------------------------------------------------------- the Fisher file
// PATH (e.g. run/model.fisher), little-endian, written by ./train fisher:
//   header 8 int32: [0] 20261201 (EWC_MAGIC)  [1] 1 (version)  [2] entries E (<= 35)  [3] T (--seq)
//                   [4] examples N, low 32 bits  [5] high 32 bits  [6] the model's L  [7] 0
//   E entries, each: int32 table index i, int32 name length m (1..63), m bytes of PARAM_TABLE[i].name,
//                    int64 numel, numel float32 F, numel float32 theta*
//   nothing after the last entry.
// The name and numel pin each entry to the model's tensor: a file measured on another model shape is refused.
#define EWC_MAGIC 20261201
#define EWC_VERSION 1

static void ewc_put_i32(SafeWriter* w, int32_t v) { fwrite_check(&v, 4, w->f, w->path); }

static void ewc_save(const Ewc* e, const GPT* model, const char* path) {
    const GPTConfig* c = &model->config;
    int32_t entries = 0;
    for (int i = 0; i < NUM_PARAMS; i++) entries += e->F[i] != NULL;
    SafeWriter w;
    safe_open(&w, path);
    int32_t h[8] = {EWC_MAGIC, EWC_VERSION, entries, e->T, (int32_t)(uint32_t)e->examples, (int32_t)(uint32_t)(e->examples >> 32), c->L, 0};
    fwrite_check(h, sizeof h, w.f, path);
    for (int i = 0; i < NUM_PARAMS; i++) {
        if (!e->F[i]) continue;
        int32_t m = (int32_t)strlen(PARAM_TABLE[i].name);
        ewc_put_i32(&w, i);
        ewc_put_i32(&w, m);
        fwrite_check(PARAM_TABLE[i].name, (size_t)m, w.f, path);
        int64_t ne = (int64_t)param_numel(c, i);
        fwrite_check(&ne, 8, w.f, path);
        fwrite_check(e->F[i], (size_t)ne * sizeof(float), w.f, path);
        fwrite_check(e->theta[i], (size_t)ne * sizeof(float), w.f, path);
    }
    safe_close(&w);
}

// A bounds-checked cursor over the file's bytes: every read first checks that the bytes are there.
typedef struct { const unsigned char* p; size_t n, pos; const char* path; } EwcCursor;

static const unsigned char* ewc_take(EwcCursor* cur, size_t k, const char* what) {
    if (k > cur->n - cur->pos)
        failf("the file is truncated or not a Fisher file; write it again with ./train fisher",
              "%s: %s needs %zu bytes at offset %zu, the file has %zu", cur->path, what, k, cur->pos, cur->n);
    const unsigned char* r = cur->p + cur->pos;
    cur->pos += k;
    return r;
}
static int32_t ewc_i32(EwcCursor* cur, const char* what) { int32_t v; memcpy(&v, ewc_take(cur, 4, what), 4); return v; }

// Reads a Fisher file for `model`: each entry must name a tensor of the model with the model's size.
static void ewc_load(Ewc* e, const GPT* model, const char* path) {
    const GPTConfig* c = &model->config;
    memset(e, 0, sizeof *e);
    FILE* f = fopen_check(path, "rb");
    long long size = file_size(f);
    if (size < 0) failf(NULL, "%s: cannot tell the file's size", path);
    unsigned char* buf = (unsigned char*)mallocCheck((size_t)size);
    fread_check(buf, (size_t)size, f, path, "the Fisher file");
    fclose(f);
    EwcCursor cur = {buf, (size_t)size, 0, path};
    int32_t h[8];
    for (int k = 0; k < 8; k++) h[k] = ewc_i32(&cur, "the header");
    if (h[0] != EWC_MAGIC)
        failf("make one with ./train fisher --model M --data OLD --out FILE", "%s: magic number %d, expected %d (a Fisher file)", path, h[0], EWC_MAGIC);
    if (h[1] != EWC_VERSION) failf("write it again with this ./train fisher", "%s: Fisher file version %d, this program reads %d", path, h[1], EWC_VERSION);
    if (h[2] < 1 || h[2] > NUM_PARAMS) failf("the file is damaged", "%s: %d entries, expected 1..%d", path, h[2], NUM_PARAMS);
    e->T = h[3];
    e->examples = (uint64_t)(uint32_t)h[4] | (uint64_t)(uint32_t)h[5] << 32;
    for (int k = 0; k < h[2]; k++) {
        int32_t i = ewc_i32(&cur, "an entry's tensor index"), m = ewc_i32(&cur, "an entry's name length");
        if (i < 0 || i >= NUM_PARAMS) failf("the file is damaged", "%s: entry %d names tensor %d, expected 0..%d", path, k, i, NUM_PARAMS - 1);
        if (m < 1 || m > 63) failf("the file is damaged", "%s: entry %d has a name of %d bytes, expected 1..63", path, k, m);
        const unsigned char* name = ewc_take(&cur, (size_t)m, "an entry's name");
        if ((size_t)m != strlen(PARAM_TABLE[i].name) || memcmp(name, PARAM_TABLE[i].name, (size_t)m))
            failf("the file is damaged or from another version", "%s: entry %d is tensor %d named '%.*s', expected '%s'", path, k, i, m,
                  (const char*)name, PARAM_TABLE[i].name);
        if (e->F[i]) failf("the file is damaged", "%s: tensor %s appears twice", path, PARAM_TABLE[i].name);
        int64_t ne;
        memcpy(&ne, ewc_take(&cur, 8, "an entry's size"), 8);
        if (ne < 0 || (uint64_t)ne != param_numel(c, i))
            failf("compute the Fisher on this model (./train fisher --model ...), after any vocabulary growth",
                  "%s: tensor %s has %lld elements in the file but %zu in the model", path, PARAM_TABLE[i].name, (long long)ne, param_numel(c, i));
        if (ne == 0) continue;
        const unsigned char* data = ewc_take(&cur, (size_t)ne * 8, "an entry's F and theta*");
        e->F[i] = (float*)mallocCheck((size_t)ne * sizeof(float));
        e->theta[i] = (float*)mallocCheck((size_t)ne * sizeof(float));
        memcpy(e->F[i], data, (size_t)ne * sizeof(float));
        memcpy(e->theta[i], data + (size_t)ne * 4, (size_t)ne * sizeof(float));
        for (int64_t j = 0; j < ne; j++)
            if (!(e->F[i][j] >= 0.0f && isfinite(e->F[i][j])) || !isfinite(e->theta[i][j]))
                failf("the file is damaged", "%s: tensor %s element %lld: F = %g, theta* = %g (F must be finite and >= 0)", path,
                      PARAM_TABLE[i].name, (long long)j, e->F[i][j], e->theta[i][j]);
    }
    if (cur.pos != cur.n) failf("the file is damaged", "%s: %zu bytes after the last entry", path, cur.n - cur.pos);
    free(buf);
}

// ---------------------------------------------------------------------------- EWC: the penalty
// The trainable parameters the penalty covers (those with an F), and all trainable ones.
static size_t ewc_covered(const Ewc* e, const GPT* model, size_t* trainable) {
    const GPTConfig* c = &model->config;
    size_t cov = 0, all = 0;
    for (int i = 0; i < NUM_PARAMS; i++) {
        size_t ns = slice_numel(c, i);
        for (int l = 0; l < (param_per_layer(i) ? c->L : 1); l++) {
            if (!ns || !model->trainable[(size_t)i * c->L + l]) continue;
            all += ns;
            cov += e->F[i] ? ns : 0;
        }
    }
    if (trainable) *trainable = all;
    return cov;
}

// (lambda/2) * sum_i F_i (theta_i - theta*_i)^2 over the trainable slices, in double.
static double ewc_penalty(const Ewc* e, const GPT* model) {
    const GPTConfig* c = &model->config;
    double s = 0.0;
    for (int i = 0; i < NUM_PARAMS; i++) {
        if (!e->F[i]) continue;
        size_t ns = slice_numel(c, i);
        for (int l = 0; l < (param_per_layer(i) ? c->L : 1); l++) {
            if (!model->trainable[(size_t)i * c->L + l]) continue;
            size_t o = (size_t)l * ns;
            const float *p = model->params.t[i] + o, *f = e->F[i] + o, *t = e->theta[i] + o;
            for (size_t j = 0; j < ns; j++) s += (double)f[j] * ((double)p[j] - t[j]) * ((double)p[j] - t[j]);
        }
    }
    return 0.5 * e->lambda * s;
}

// Adds the penalty's gradient, d/dtheta_i = lambda * F_i (theta_i - theta*_i), to the trainable slices'
// gradients. train_step calls it after the micro-batches' backward and before the clipping and AdamW step, so
// the penalty is part of the clipped gradient, as in PyTorch EWC code (loss = task_loss + penalty; backward;
// clip_grad_norm_; step). Under MPI rank 0 alone adds it: the ranks' gradients are summed next.
static void ewc_add_grad(const Ewc* e, GPT* model) {
    const GPTConfig* c = &model->config;
    for (int i = 0; i < NUM_PARAMS; i++) {
        if (!e->F[i]) continue;
        size_t ns = slice_numel(c, i);
        for (int l = 0; l < (param_per_layer(i) ? c->L : 1); l++) {
            float* g = gpt_grad(model, i, l);
            if (!g) continue;  // frozen
            size_t o = (size_t)l * ns;
            const float *p = model->params.t[i] + o, *f = e->F[i] + o, *t = e->theta[i] + o;
            for (size_t j = 0; j < ns; j++) g[j] += e->lambda * f[j] * (p[j] - t[j]);
        }
    }
}

// --ewc LAMBDA --fisher FILE: loaded for the model as it will train (after its method's tensors and freezing).
static void ewc_open(Ewc* e, const GPT* model, const char* path, float lambda) {
    if (!path) failf("for example --ewc 100 --fisher run_a/model.fisher (made by ./train fisher)", "--ewc needs --fisher FILE");
    if (!(lambda > 0.0f)) failf("for example --ewc 100 --fisher FILE", "--fisher given without --ewc LAMBDA");
    ewc_load(e, model, path);
    e->lambda = lambda;
    size_t all, cov = ewc_covered(e, model, &all);
    if (!cov)
        failf("EWC holds the weights the Fisher was measured on: train those (e.g. --method full), or compute the Fisher of this model",
              "%s covers none of the %zu trainable parameters", path, all);
    printf("ewc: lambda %g, %s (F from %llu examples at T=%d) covers %zu of %zu trainable parameters\n", lambda, path,
           (unsigned long long)e->examples, e->T, cov, all);
}
