// loader.c: datasets into batches (the data loader, memory-mapped, shuffled per epoch, resumable), running the
// model on a batch, and evaluate(): loss, accuracy and the confusion matrix over a dataset.

#pragma once
#include "dataset.h"  // defines: Dataset, dataset_open, dataset_get (the file formats)
#include "dist.h"     // defines: dist_rank, dist_world, dist_sum_doubles (evaluation is sharded over ranks)
#include "model.h"    // defines: GPT, gpt_forward, gpt_forward_cls

// ---------------------------------------------------------------------------- data loader
// Datasets come from dataprep (dataset.h documents the formats; files are memory-mapped, never read whole):
//   token files (ours or llm.c's): language modelling. The file is cut into windows of B*T+1 tokens; window k
//     starts at token k*B*T (consecutive windows share one token, as in llm.c). Inputs are the first B*T
//     tokens, targets the same shifted by one.
//   example files, classification: B examples per batch, each truncated/padded to T tokens; the batch
//     carries each example's length and label.
//   example files, SFT: B examples per batch, inputs ids[0..T), targets ids[1..T] where the loss mask is 1
//     (the response), -1 elsewhere (the prompt and the padding).
//   example files, token labels (DS_TOK): B examples per batch, inputs ids[0..T), targets the tag of each
//     position (not shifted: position i is scored on its own tag), -1 where there is none (later subwords,
//     padding).
// With shuffle, each epoch visits the windows (or examples) in a fresh seeded permutation.
// For an encoder (check_data_matches_model arms it), token windows become masked-LM rows (mlm_mask_row below)
// and every classification row starts with [CLS] at position 0, where the encoder's class head reads.
typedef enum { DATA_LM, DATA_CLS, DATA_SFT, DATA_TOK } DataKind;

typedef struct {
    Dataset ds;
    char path[1024];
    DataKind kind;
    int B, T, shuffle;
    int pad_tail;           // examples: the last batch of an epoch is filled up with ignored rows (evaluation)
    size_t num_items;       // windows (LM) or examples
    size_t num_cut;         // examples longer than T, which batches cut to their first T tokens
    size_t num_batches;     // per epoch
    size_t* order;          // permutation of the items for this epoch
    size_t pos;             // next index into order
    uint64_t epoch;
    uint64_t epoch_rng;     // RNG state that made this epoch's permutation (saved in checkpoints)
    uint64_t rng;           // RNG state for the next epoch's permutation
    uint64_t seed;          // the seed it was made with (masked-LM masks derive from it)
    int mask_id;            // the encoder's [MASK] id (also its [CLS]); -1: a GPT-2 model, batches as they are
} DataLoader;

static void loader_make_order(DataLoader* dl) {
    for (size_t i = 0; i < dl->num_items; i++) dl->order[i] = i;
    dl->epoch_rng = dl->rng;
    if (dl->shuffle) {  // Fisher-Yates
        for (size_t i = dl->num_items - 1; i > 0; i--) {
            size_t j = random_u32(&dl->rng) % (i + 1);
            size_t t = dl->order[i];
            dl->order[i] = dl->order[j];
            dl->order[j] = t;
        }
    }
    dl->pos = 0;
}

static void loader_init(DataLoader* dl, const char* path, int B, int T, int shuffle, uint64_t seed) {
    memset(dl, 0, sizeof(*dl));
    snprintf(dl->path, sizeof dl->path, "%s", path);
    char err[512];
    if (dataset_open(&dl->ds, path, err, sizeof err) != 0)
        failf("datasets come from ./dataprep (text, cls or sft) or llm.c's data scripts", "%s", err);
    dl->B = B;
    dl->T = T;
    dl->shuffle = shuffle;
    size_t BT = (size_t)B * T;
    if (dl->ds.magic != EXAMPLES_MAGIC) {
        dl->kind = DATA_LM;
        if (dl->ds.count < BT + 1)
            failf("use a smaller --batch or --seq, or more data",
                  "%s: %llu tokens is too few for one batch of B*T+1 = %zu", path, (unsigned long long)dl->ds.count, BT + 1);
        dl->num_items = (dl->ds.count - 1) / BT;
        dl->num_batches = dl->num_items;
    } else {
        dl->kind = dl->ds.kind == DS_CLS ? DATA_CLS : dl->ds.kind == DS_TOK ? DATA_TOK : DATA_SFT;
        if (dl->ds.count < (uint64_t)B)
            failf("use a smaller --batch", "%s: %llu examples is fewer than one batch of %d", path, (unsigned long long)dl->ds.count, B);
        dl->num_items = dl->ds.count;
        dl->num_batches = dl->num_items / B;
        if (dl->ds.max_len > T)  // counted once here, so the run says how many it cuts (never silently)
            for (uint64_t i = 0; i < dl->ds.count; i++) {
                Example ex;
                if (dataset_get(&dl->ds, i, &ex) == 0 && ex.n > (uint64_t)T) dl->num_cut++;
            }
    }
    dl->order = (size_t*)mallocCheck(dl->num_items * sizeof(size_t));
    dl->rng = seed ? seed : 1;
    dl->seed = dl->rng;
    dl->mask_id = -1;
    loader_make_order(dl);
}

// ---------------------------------------------------------------------------- masked-LM rows (the encoder)
// BERT's pretraining task (Devlin et al. 2019, section 3.1) on an ordinary token window. In each row of T
// tokens, n = round(15% of T) positions (at least 1) are picked uniformly without replacement; of those, 80%
// become [MASK], 10% a uniformly random id of the text vocabulary [0, mask_id), and 10% stay as they are. The
// targets are the original ids at the picked positions and -1 elsewhere, with no shift: the tied LM head's
// cross-entropy at position t predicts the token at t. (Hugging Face's DataCollatorForLanguageModeling picks
// each position with probability 15% instead; a fixed count per row means no batch is ever without targets.)
// seed: the row's, a pure function of (loader seed, epoch, the row's first token offset in the file), so the
// masks are the same on every rank (each reads the whole global batch) and after --resume (the loader's
// position is restored), fresh every epoch (RoBERTa's dynamic masking), and fixed for evaluation (epoch 0,
// seed 1) whatever --batch is. perm: (T) scratch.
#define MLM_PICK 0.15
#define MLM_MASK 0.8    // of the picked: [MASK]
#define MLM_RANDOM 0.1  // of the picked: a random token (the remaining 10% keep theirs)
static uint64_t mlm_mix(uint64_t z) {  // splitmix64's finaliser: a well-mixed, never-zero xorshift seed
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return z ? z : 1;
}
static uint64_t mlm_row_seed(uint64_t seed, uint64_t epoch, uint64_t offset) { return mlm_mix(mlm_mix(mlm_mix(seed) ^ epoch) ^ offset); }
static void mlm_mask_row(int* in, int* tg, int* perm, int T, int mask_id, uint64_t seed) {
    uint64_t rng = seed;
    int n = (int)(MLM_PICK * T + 0.5);
    if (n < 1) n = 1;
    for (int i = 0; i < T; i++) tg[i] = -1, perm[i] = i;
    for (int k = 0; k < n; k++) {  // partial Fisher-Yates: perm[0..n) is a uniform n-subset of the positions
        int j = k + (int)(random_u32(&rng) % (uint32_t)(T - k));
        int t = perm[k];
        perm[k] = perm[j], perm[j] = t;
        int pos = perm[k];
        tg[pos] = in[pos];
        float u = random_f32(&rng);
        if (u < MLM_MASK) in[pos] = mask_id;
        else if (u < MLM_MASK + MLM_RANDOM) in[pos] = (int)(random_u32(&rng) % (uint32_t)mask_id);
    }
}

// Token i of an example, checked against the model's vocabulary.
static int loader_token(const DataLoader* dl, const unsigned char* ids, size_t i, uint64_t where, int V) {
    int id = dataset_id(ids, dl->ds.bytes_per_token, i);
    if (id < 0 || id >= V)
        failf("the data was tokenized with a different vocabulary than the model's",
              "%s: token id %d at %s %llu is out of range for the model's vocabulary V=%d", dl->path, id,
              dl->kind == DATA_LM ? "position" : "example", (unsigned long long)where, V);
    return id;
}

// The next batch. LM and SFT fill inputs and targets (B,T); classification fills inputs (B,T), lengths (B)
// and labels (B). Any of the outputs a kind does not use may be NULL.
static void loader_next(DataLoader* dl, int* inputs, int* targets, int* lengths, int* labels, int V) {
    int B = dl->B, T = dl->T;
    size_t need = dl->kind == DATA_LM || dl->pad_tail ? 1 : (size_t)B;
    if (dl->pos + need > dl->num_items) {
        dl->epoch++;
        loader_make_order(dl);
    }
    if (dl->kind == DATA_LM) {
        size_t BT = (size_t)B * T, start = dl->order[dl->pos++] * BT;
        for (size_t i = 0; i <= BT; i++) {
            int id = loader_token(dl, dl->ds.data, start + i, start + i, V);
            if (i < BT) inputs[i] = id;
            if (i > 0) targets[i - 1] = id;
        }
        if (dl->mask_id >= 0) {  // the encoder: masked-LM rows instead of next-token targets
            int* perm = (int*)mallocCheck((size_t)T * sizeof(int));
            for (int b = 0; b < B; b++)
                mlm_mask_row(inputs + (size_t)b * T, targets + (size_t)b * T, perm, T, dl->mask_id,
                             mlm_row_seed(dl->seed, dl->epoch, start + (size_t)b * T));
            free(perm);
        }
        return;
    }
    for (int b = 0; b < B; b++) {
        if (dl->pos >= dl->num_items) {  // pad_tail: an ignored row (no label, no targets)
            for (int i = 0; i < T; i++) inputs[(size_t)b * T + i] = 0;
            if (dl->kind == DATA_CLS) lengths[b] = 1, labels[b] = -1;
            if (dl->kind == DATA_TOK) lengths[b] = T;
            if (dl->kind != DATA_CLS) for (int i = 0; i < T; i++) targets[(size_t)b * T + i] = -1;
            continue;
        }
        size_t e = dl->order[dl->pos++];
        Example ex;
        if (dataset_get(&dl->ds, e, &ex) != 0) failf("the file is damaged; run dataprep again", "%s: example %zu is corrupt", dl->path, e);
        if (ex.n == 0) failf("dataprep drops empty rows; run it again", "%s: example %zu is empty", dl->path, e);
        int* in = inputs + (size_t)b * T;
        if (dl->kind == DATA_CLS) {
            int cls = dl->mask_id >= 0;  // the encoder: [CLS] (the [MASK] id) first, then the text
            int n = ex.n + cls < (size_t)T ? (int)ex.n + cls : T;  // truncated to T tokens
            for (int i = 0; i < T; i++) in[i] = i < cls ? dl->mask_id : i < n ? loader_token(dl, ex.ids, (size_t)(i - cls), e, V) : 0;
            lengths[b] = n;
            labels[b] = ex.label;
        } else if (dl->kind == DATA_TOK) {
            int* tg = targets + (size_t)b * T;
            for (int i = 0; i < T; i++) {
                in[i] = (size_t)i < ex.n ? loader_token(dl, ex.ids, (size_t)i, e, V) : 0;
                tg[i] = (size_t)i < ex.n && ex.mask[i] != DS_TAG_NONE ? ex.mask[i] : -1;
            }
            lengths[b] = ex.n < (size_t)T ? (int)ex.n : T;  // what an encoder attends to
        } else {
            int* tg = targets + (size_t)b * T;
            for (int i = 0; i < T; i++) {
                in[i] = (size_t)i < ex.n ? loader_token(dl, ex.ids, (size_t)i, e, V) : 0;
                // target i is token i+1, kept where the mask says the loss is taken there
                tg[i] = ((size_t)i + 1 < ex.n && ex.mask[i + 1]) ? loader_token(dl, ex.ids, (size_t)i + 1, e, V) : -1;
            }
        }
    }
}

static void loader_free(DataLoader* dl) {
    dataset_close(&dl->ds);
    free(dl->order);
    memset(dl, 0, sizeof(*dl));
}

// ---------------------------------------------------------------------------- batches and evaluation
typedef struct {
    int *x, *y, *len, *lab;  // inputs (B,T); targets (B,T); lengths (B); labels (B)
    int B, T;
} Batch;

static void batch_alloc(Batch* b, int B, int T) {
    b->B = B;
    b->T = T;
    b->x = (int*)mallocCheck((size_t)B * T * sizeof(int));
    b->y = (int*)mallocCheck((size_t)B * T * sizeof(int));
    b->len = (int*)mallocCheck((size_t)B * sizeof(int));
    b->lab = (int*)mallocCheck((size_t)B * sizeof(int));
}
static void batch_free(Batch* b) {
    free(b->x);
    free(b->y);
    free(b->len);
    free(b->lab);
}

// Checks that the data and the model's head go together: classification data needs a class head with at
// least as many classes; LM and SFT data need the LM head; an encoder takes no SFT data. A multi-task model is
// checked against the head it runs now (a task's rows of cls_w and their names, or the LM head: multitask.c
// selects it). Every loader that feeds a model passes through here, so this is also where an encoder's loader
// is armed (dl->mask_id): its token windows become masked-LM rows and its class rows get [CLS] in front.
static void check_data_matches_model(DataLoader* dl, const GPT* model) {
    int K = gpt_head_classes(model), E = model->config.num_tags;
    char(*model_names)[256] = model->label_names ? model->label_names + (K ? model->head_k0 : 0) : NULL;
    if ((dl->kind == DATA_TOK) != (E > 0))
        failf(E ? "use a token-label dataset (./dataprep tok) with this model" : "train a token-classification model on it first (./train --train that file)",
              E ? "%s is not a token-label dataset but the model has a %d-tag head" : "%s is a token-label dataset but the model has no token head (E=%d)", dl->path, E);
    if (E && dl->ds.num_labels != E)
        fail_at(dl->path, "prepare every split with one dataprep tok call (the training file fixes the tags)",
                "%d tags here, the model's head has %d (a different tag set)", dl->ds.num_labels, E);
    if (model->config.arch == ARCH_ENCODER) {
        int mask = model->config.mask_id;
        if (dl->kind == DATA_SFT)
            failf("SFT teaches a decoder to generate a response; fine-tune a gpt2 model on it, or an encoder on cls data",
                  "%s is an SFT dataset but the model is an encoder", dl->path);
        if (dl->ds.vocab_size > mask)
            failf("encode the data with the tokenizer the encoder was made for (its vocabulary ends before [MASK])",
                  "%s has token ids up to %d, but the encoder's [MASK] is id %d", dl->path, dl->ds.vocab_size - 1, mask);
        dl->mask_id = mask;
        if (dl->kind == DATA_CLS && dl->ds.max_len + 1 > dl->T) {  // recounted: [CLS] takes one position
            dl->num_cut = 0;
            for (uint64_t i = 0; i < dl->ds.count; i++) {
                Example ex;
                if (dataset_get(&dl->ds, i, &ex) == 0 && ex.n + 1 > (uint64_t)dl->T) dl->num_cut++;
            }
        }
    }
    if (dl->kind == DATA_CLS && !K)
        failf("train a classification model on it first (./train --train that file), or pass --classes K",
              "%s is a classification dataset but the model has the LM head", dl->path);
    if (dl->kind != DATA_CLS && K)
        failf("use a classification dataset (./dataprep cls) with this model",
              "%s is a %s dataset but the model has a %d-class head", dl->path, dl->kind == DATA_LM ? "language-modelling" : "SFT", K);
    if (dl->kind == DATA_CLS && dl->ds.num_labels > K)
        failf("the dataset and the model disagree on the labels", "%s has %d labels, the model's head %d", dl->path, dl->ds.num_labels, K);
    if ((dl->kind != DATA_CLS && dl->kind != DATA_TOK) || !model_names) return;
    // class ids are positions in a sorted list of names, made per dataprep call: a file prepared with other
    // names, or the same in another order, would be scored against the wrong classes without this check
    char(*names)[256] = (char(*)[256])mallocCheck((size_t)dl->ds.num_labels * 256);
    char err[512];
    int n = dataset_label_names(&dl->ds, dl->path, names, err, sizeof err);
    if (n < 0) failf("prepare the file again with ./dataprep cls", "%s", err);
    for (int k = 0; k < n; k++)
        if (strcmp(names[k], model_names[k]))
            fail_at(dl->path, "prepare every split in one dataprep call, or give each call the same --labels a,b,... order",
                    "class %d is '%s' here but '%s' for the model (trained on other label names or another order)", k, names[k], model_names[k]);
    free(names);
}

// The class names of a classification dataset (NULL when the file has none), to give to a new head.
static char (*loader_label_names(const DataLoader* dl))[256] {
    if (dl->kind != DATA_CLS && dl->kind != DATA_TOK) return NULL;
    char(*names)[256] = (char(*)[256])callocCheck((size_t)dl->ds.num_labels, 256);
    char err[512];
    int n = dataset_label_names(&dl->ds, dl->path, names, err, sizeof err);
    if (n < 0) failf("prepare the file again with ./dataprep cls", "%s", err);
    if (n == 0) free(names), names = NULL;
    return names;
}

// The denominator of a batch's mean loss: its number of targets (LM, SFT), or for classification the sum
// of its labels' class weights (the number of labelled examples without weights).
static double batch_denominator(const GPT* model, DataKind kind, const Batch* b) {
    double n = 0.0;
    if (kind == DATA_CLS) {
        for (int i = 0; i < b->B; i++)
            if (b->lab[i] >= 0) n += model->class_weights ? model->class_weights[model->head_k0 + b->lab[i]] : 1.0;
    } else {
        for (size_t i = 0; i < (size_t)b->B * b->T; i++) n += b->y[i] >= 0;
    }
    return n;
}

// Runs the forward pass on a fetched batch. Returns its number of targets (LM, SFT) or labelled examples
// (classification).
static size_t batch_run(GPT* model, DataKind kind, const Batch* b) {
    size_t n = 0;
    if (kind == DATA_CLS) {
        gpt_forward_cls(model, b->x, b->len, b->lab, b->B, b->T);
        for (int i = 0; i < b->B; i++) n += b->lab[i] >= 0;
    } else if (kind == DATA_TOK) {  // the targets are the tags
        gpt_forward_tok(model, b->x, b->y, b->len, b->B, b->T);
        for (size_t i = 0; i < (size_t)b->B * b->T; i++) n += b->y[i] >= 0;
    } else {
        gpt_forward(model, b->x, b->y, b->B, b->T);
        for (size_t i = 0; i < (size_t)b->B * b->T; i++) n += b->y[i] >= 0;
    }
    return n;
}

// Fetches the next batch and runs the forward pass.
static size_t batch_forward(GPT* model, DataLoader* dl, Batch* b) {
    loader_next(dl, b->x, b->y, b->len, b->lab, model->config.V);
    return batch_run(model, dl->kind, b);
}

typedef struct {
    double loss;      // mean over all targets (LM, SFT) or labelled examples (classification)
    double accuracy;  // classification: share of examples whose argmax is the label; token labels: share of
                      // tagged positions whose argmax is the tag; else NaN
    size_t count;     // targets or examples
    size_t* confusion;  // classification: (K,K) counts [gold][predicted], malloc'd; else NULL
} EvalResult;

// How evaluate runs the model on the next batch: the CPU's batch_forward below, or the GPU's (train.cu). Returns
// the number of targets (or labelled examples) and sets the batch's mean loss and, with a class head, its
// (B,K) class logits, with a token head its (B,T,E) tag logits (else NULL).
typedef size_t (*BatchForward)(void* ctx, DataLoader* dl, Batch* b, float* mean_loss, const float** cls_logits);

// Evaluates up to max_batches batches (all of the file when max_batches <= 0), in file order, running the
// model through forward (ctx is its model; model is the host's, for its config and the data checks).
static EvalResult evaluate_with(void* ctx, BatchForward forward, const GPT* model, const char* path, int B, int T,
                                int max_batches) {
    DataLoader dl;
    loader_init(&dl, path, B, T, 0, 1);
    check_data_matches_model(&dl, model);
    if (dl.kind != DATA_LM) {  // every example counts: the last batch is padded with ignored rows
        dl.pad_tail = 1;
        dl.num_batches = (dl.num_items + B - 1) / B;
    }
    size_t nb = dl.num_batches;
    if (max_batches > 0 && (size_t)max_batches < nb) nb = (size_t)max_batches;
    Batch b;
    batch_alloc(&b, B, T);
    double sum = 0.0;
    size_t count = 0, correct = 0;
    int K = gpt_head_classes(model);  // the head it runs (a multi-task model's current task)
    size_t* cm = K ? (size_t*)callocCheck((size_t)K * K, sizeof(size_t)) : NULL;
    for (size_t i = 0; i < nb; i++) {
        if (i % (size_t)dist_world != (size_t)dist_rank) {  // another rank's batch (evaluation is sharded)
            loader_next(&dl, b.x, b.y, b.len, b.lab, model->config.V);
            continue;
        }
        float mean_loss;
        const float* cls_logits;
        size_t n = forward(ctx, &dl, &b, &mean_loss, &cls_logits);
        if (n) sum += (double)mean_loss * n;  // NaN-free: a batch with no targets adds nothing
        count += n;
        int E = model->config.num_tags;
        for (size_t q = 0; E && q < (size_t)B * T; q++) {  // token accuracy: argmax at each tagged position
            if (b.y[q] < 0) continue;
            const float* lg = cls_logits + q * E;
            int best = 0;
            for (int k = 1; k < E; k++) if (lg[k] > lg[best]) best = k;
            correct += best == b.y[q];
        }
        for (int e = 0; K && e < B; e++) {
            const float* lg = cls_logits + (size_t)e * K;
            int best = 0;
            for (int k = 1; k < K; k++) if (lg[k] > lg[best]) best = k;
            correct += b.lab[e] >= 0 && best == b.lab[e];
            if (b.lab[e] >= 0) cm[(size_t)b.lab[e] * K + best]++;
        }
    }
    batch_free(&b);
    loader_free(&dl);
    if (dist_world > 1) {  // add up the ranks' shards
        size_t nk = (size_t)K * K;
        double* red = (double*)callocCheck(3 + nk, sizeof(double));
        red[0] = sum, red[1] = (double)count, red[2] = (double)correct;
        for (size_t i = 0; i < nk; i++) red[3 + i] = (double)cm[i];
        dist_sum_doubles(red, 3 + nk);
        sum = red[0], count = (size_t)red[1], correct = (size_t)red[2];
        for (size_t i = 0; i < nk; i++) cm[i] = (size_t)red[3 + i];
        free(red);
    }
    if (!count)  // a loss over nothing is no number: say why rather than print NaN
        fail_at(path, "SFT examples whose response is cut off by --seq have no targets: use a longer --seq, or check the file",
                "no targets to evaluate%s", max_batches ? " in the batches --max-batches allows" : "");
    if (!isfinite(sum)) fail_at(path, "the model's weights are not finite: check the model file, or lower --lr", "the loss is %f", sum);
    EvalResult r = {sum / count, K || model->config.num_tags ? (double)correct / count : NAN, count, cm};
    return r;
}

static size_t cpu_batch_forward(void* ctx, DataLoader* dl, Batch* b, float* mean_loss, const float** cls_logits) {
    GPT* model = (GPT*)ctx;
    size_t n = batch_forward(model, dl, b);
    *mean_loss = model->mean_loss;
    *cls_logits = model->config.num_tags ? model->acts.tok_logits : model->acts.cls_logits;
    return n;
}

static EvalResult evaluate(GPT* model, const char* path, int B, int T, int max_batches) {
    return evaluate_with(model, cpu_batch_forward, model, path, B, T, max_batches);
}
