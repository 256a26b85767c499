// train.c: the trainer. Files in and out (token files, checkpoints in three formats), the data loader, the
// training loop, and the `train`, `eval` and `sample` commands. The model itself is in model.h.
//
//   ./train --init 4,4,128 --vocab 256 --train data_train.bin --val data_val.bin --steps 500 --out run
//   ./train eval --model run/model.bin --data data_val.bin
//   ./train sample --model run/model.bin --tokens "12 43 7"
//   ./train classify --model run/best.bin --tokenizer bytes < lines.txt
//
// test_gpt.c #includes this file with TESTING defined, which leaves out main().
#define _POSIX_C_SOURCE 200809L  // for getpid, clock_gettime
#include "model.h"
#include "dataset.h"
#include "tokenizer.c"
#include <errno.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

// ---------------------------------------------------------------------------- file helpers
// Formats a message and dies with a hint: the one-line error every bad input gets.
static int dist_rank_for_errors = 0;  // set by dist_init; see failf
static void failf(const char* hint, const char* fmt, ...) {
    if (dist_rank_for_errors > 0) {  // under MPI: let rank 0 report an error every rank hits (it takes all
        struct timespec ts = {0, 300000000};  // processes down first), so it is printed once
        nanosleep(&ts, NULL);
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (hint && hint[0]) fprintf(stderr, "hint: %s\n", hint);
    exit(1);
}

static FILE* fopen_check(const char* path, const char* mode) {
    FILE* f = fopen(path, mode);
    if (!f) failf(mode[0] == 'r' ? "check the path" : "check that the folder exists and is writable",
                  "cannot open %s for %s: %s", path, mode[0] == 'r' ? "reading" : "writing", strerror(errno));
    return f;
}

// Reads exactly n bytes or dies naming the file and what was being read.
static void fread_check(void* dst, size_t n, FILE* f, const char* path, const char* what) {
    if (fread(dst, 1, n, f) != n)
        failf("the file is truncated or not in the expected format", "%s: unexpected end of file reading %s", path, what);
}

static void fwrite_check(const void* src, size_t n, FILE* f, const char* path) {
    if (fwrite(src, 1, n, f) != n) failf("check free disk space", "%s: write failed: %s", path, strerror(errno));
}

static long long file_size(FILE* f) {
    long pos = ftell(f);
    fseek(f, 0, SEEK_END);
    long long n = ftell(f);
    fseek(f, pos, SEEK_SET);
    return n;
}

// Nothing half-written is left behind: writers write PATH.tmp, then rename it over PATH when complete.
typedef struct {
    FILE* f;
    char path[1024], tmp[1100];
} SafeWriter;

static void safe_open(SafeWriter* w, const char* path) {
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp%d", path, (int)getpid());
    w->f = fopen(w->tmp, "wb");
    if (!w->f) failf("check that the folder exists and is writable", "cannot write %s: %s", path, strerror(errno));
}

static void safe_close(SafeWriter* w) {
    if (fclose(w->f) != 0 || rename(w->tmp, w->path) != 0) {
        remove(w->tmp);
        failf("check free disk space and permissions", "could not finish writing %s: %s", w->path, strerror(errno));
    }
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;  // Linux reports KiB
}

// ---------------------------------------------------------------------------- distributed (MPI)
// Built by `make mpi` (-DUSE_MPI, with mpicc); the default build has none of it. Every process (rank) holds
// the whole model and trains on its share of each global batch: rank r takes rows r*B .. r*B+B-1 of the
// batch a single process would read with --batch N*B. Gradients are summed with MPI_Allreduce before
// clipping and the update, each rank's loss weighted by its share of the global targets (as gradient
// accumulation does), so N ranks with --batch B take the steps of one process with --batch N*B, up to the
// order of the sums. Only rank 0 writes logs, checkpoints and plots. With --zero 1 (ZeRO stage 1), rank r
// keeps AdamW state only for its 1/N of the trainable floats, updates those, and the updated slices are
// gathered to every rank.
#ifdef USE_MPI
#include <mpi.h>
static int dist_rank = 0, dist_world = 1, dist_finalized = 0;

// exit() anywhere (a bad file on one rank, say) takes every rank down instead of leaving them waiting
static void dist_exit_handler(void) {
    if (!dist_finalized) MPI_Abort(MPI_COMM_WORLD, 1);
}
static void dist_init(int* argc, char*** argv) {
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &dist_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &dist_world);
    dist_rank_for_errors = dist_rank;
    atexit(dist_exit_handler);
}
static void dist_finalize(void) {
    dist_finalized = 1;
    MPI_Finalize();
}
static void dist_sum_floats(float* x, size_t n) {
    for (size_t off = 0; off < n; off += 1 << 30) {  // MPI counts are int
        int c = (int)(n - off < (1u << 30) ? n - off : 1u << 30);
        MPI_Allreduce(MPI_IN_PLACE, x + off, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}
static void dist_sum_doubles(double* x, size_t n) {
    MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
// Fails on every rank unless all ranks hold the same bytes (their flags, their model's config).
static void dist_check_same(const void* data, size_t n, const char* what) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char*)data)[i]) * 1099511628211ull;
    unsigned long long lo = h, hi = h;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    if (lo != hi) {
        dist_rank_for_errors = 0;  // every rank knows; rank 0 says it
        if (dist_rank == 0) failf("start every rank with the same flags and files", "ranks disagree on %s", what);
        MPI_Barrier(MPI_COMM_WORLD);
        exit(1);
    }
}
// Every rank holds [lo_r, hi_r) of x (the ranks' ranges tile [0, n)); afterwards every rank holds all of x.
static void dist_allgather_ranges(float* x, size_t n) {
    int* counts = (int*)mallocCheck((size_t)dist_world * sizeof(int));
    int* displs = (int*)mallocCheck((size_t)dist_world * sizeof(int));
    for (int r = 0; r < dist_world; r++) {
        displs[r] = (int)(n * r / dist_world);
        counts[r] = (int)(n * (r + 1) / dist_world) - displs[r];
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
    free(counts);
    free(displs);
}
// Rank 0 receives every rank's shard [lo_r, hi_r) of a length-n array into full (rank 0 only).
static void dist_gather_to_root(float* full, const float* shard, size_t n) {
    int* counts = (int*)mallocCheck((size_t)dist_world * sizeof(int));
    int* displs = (int*)mallocCheck((size_t)dist_world * sizeof(int));
    for (int r = 0; r < dist_world; r++) {
        displs[r] = (int)(n * r / dist_world);
        counts[r] = (int)(n * (r + 1) / dist_world) - displs[r];
    }
    MPI_Gatherv(shard, counts[dist_rank], MPI_FLOAT, full, counts, displs, MPI_FLOAT, 0, MPI_COMM_WORLD);
    free(counts);
    free(displs);
}
#else
static const int dist_rank = 0, dist_world = 1;
static void dist_init(int* argc, char*** argv) { (void)argc, (void)argv; }
static void dist_finalize(void) {}
static void dist_sum_floats(float* x, size_t n) { (void)x, (void)n; }
static void dist_sum_doubles(double* x, size_t n) { (void)x, (void)n; }
static void dist_check_same(const void* data, size_t n, const char* what) { (void)data, (void)n, (void)what; }
static void dist_allgather_ranges(float* x, size_t n) { (void)x, (void)n; }
static void dist_gather_to_root(float* full, const float* shard, size_t n) { memcpy(full, shard, n * sizeof(float)); }
#endif
// This rank's share [lo, hi) of n items.
static size_t dist_lo(size_t n) { return n * (size_t)dist_rank / (size_t)dist_world; }
static size_t dist_hi(size_t n) { return n * (size_t)(dist_rank + 1) / (size_t)dist_world; }

// ---------------------------------------------------------------------------- data loader
// Datasets come from dataprep (dataset.h documents the formats; files are memory-mapped, never read whole):
//   token files (ours or llm.c's): language modelling. The file is cut into windows of B*T+1 tokens; window k
//     starts at token k*B*T (consecutive windows share one token, as in llm.c). Inputs are the first B*T
//     tokens, targets the same shifted by one.
//   example files, classification: B examples per batch, each truncated/padded to T tokens; the batch
//     carries each example's length and label.
//   example files, SFT: B examples per batch, inputs ids[0..T), targets ids[1..T] where the loss mask is 1
//     (the response), -1 elsewhere (the prompt and the padding).
// With shuffle, each epoch visits the windows (or examples) in a fresh seeded permutation.
typedef enum { DATA_LM, DATA_CLS, DATA_SFT } DataKind;

typedef struct {
    Dataset ds;
    char path[1024];
    DataKind kind;
    int B, T, shuffle;
    int pad_tail;           // examples: the last batch of an epoch is filled up with ignored rows (evaluation)
    size_t num_items;       // windows (LM) or examples
    size_t num_batches;     // per epoch
    size_t* order;          // permutation of the items for this epoch
    size_t pos;             // next index into order
    uint64_t epoch;
    uint64_t epoch_rng;     // RNG state that made this epoch's permutation (saved in checkpoints)
    uint64_t rng;           // RNG state for the next epoch's permutation
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
        dl->kind = dl->ds.kind == DS_CLS ? DATA_CLS : DATA_SFT;
        if (dl->ds.count < (uint64_t)B)
            failf("use a smaller --batch", "%s: %llu examples is fewer than one batch of %d", path, (unsigned long long)dl->ds.count, B);
        dl->num_items = dl->ds.count;
        dl->num_batches = dl->num_items / B;
    }
    dl->order = (size_t*)mallocCheck(dl->num_items * sizeof(size_t));
    dl->rng = seed ? seed : 1;
    loader_make_order(dl);
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
        return;
    }
    for (int b = 0; b < B; b++) {
        if (dl->pos >= dl->num_items) {  // pad_tail: an ignored row (no label, no targets)
            for (int i = 0; i < T; i++) inputs[(size_t)b * T + i] = 0;
            if (dl->kind == DATA_CLS) lengths[b] = 1, labels[b] = -1;
            else for (int i = 0; i < T; i++) targets[(size_t)b * T + i] = -1;
            continue;
        }
        size_t e = dl->order[dl->pos++];
        Example ex;
        if (dataset_get(&dl->ds, e, &ex) != 0) failf("the file is damaged; run dataprep again", "%s: example %zu is corrupt", dl->path, e);
        if (ex.n == 0) failf("dataprep drops empty rows; run it again", "%s: example %zu is empty", dl->path, e);
        int* in = inputs + (size_t)b * T;
        if (dl->kind == DATA_CLS) {
            int n = ex.n < (size_t)T ? (int)ex.n : T;  // truncated to T tokens
            for (int i = 0; i < T; i++) in[i] = i < n ? loader_token(dl, ex.ids, (size_t)i, e, V) : 0;
            lengths[b] = n;
            labels[b] = ex.label;
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

// ---------------------------------------------------------------------------- a very small JSON reader
// Enough JSON for safetensors headers and config.json: objects, arrays, strings, numbers, true/false/null.
typedef struct {
    const char* s;
    const char* end;
    const char* path;  // for error messages
} Json;

static void json_fail(Json* j, const char* what) {
    failf("the file is not valid JSON of the expected shape", "%s: JSON: %s (%ld bytes before the end)", j->path, what,
          (long)(j->end - j->s));
}
static void json_ws(Json* j) {
    while (j->s < j->end && (*j->s == ' ' || *j->s == '\n' || *j->s == '\r' || *j->s == '\t')) j->s++;
}
static int json_peek(Json* j) {
    json_ws(j);
    return j->s < j->end ? *j->s : -1;
}
static void json_expect(Json* j, char c) {
    if (json_peek(j) != c) {
        char msg[32];
        snprintf(msg, sizeof msg, "expected '%c'", c);
        json_fail(j, msg);
    }
    j->s++;
}
// Reads a string into out (truncated to cap-1). Escapes are decoded for ASCII; \uXXXX becomes '?'.
static void json_string(Json* j, char* out, size_t cap) {
    json_expect(j, '"');
    size_t n = 0;
    while (j->s < j->end && *j->s != '"') {
        char c = *j->s++;
        if (c == '\\') {
            if (j->s >= j->end) break;
            char e = *j->s++;
            c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
            if (e == 'u') {
                if (j->end - j->s < 4) break;
                j->s += 4;
                c = '?';
            }
        }
        if (n + 1 < cap) out[n++] = c;
    }
    if (j->s >= j->end) json_fail(j, "unterminated string");
    j->s++;
    if (cap) out[n] = 0;
}
static double json_number(Json* j) {
    json_ws(j);
    char buf[64];
    size_t n = 0;
    while (j->s < j->end && n < sizeof buf - 1 && strchr("+-0123456789.eE", *j->s)) buf[n++] = *j->s++;
    buf[n] = 0;
    char* e;
    double v = strtod(buf, &e);
    if (n == 0 || *e) json_fail(j, "bad number");
    return v;
}
static void json_skip(Json* j, int depth) {
    if (depth > 64) json_fail(j, "nested too deeply");
    int c = json_peek(j);
    if (c == '"') {
        char tmp[8];
        json_string(j, tmp, sizeof tmp);
    } else if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->s++;
        if (json_peek(j) == close) { j->s++; return; }
        for (;;) {
            if (c == '{') {
                char tmp[8];
                json_string(j, tmp, sizeof tmp);
                json_expect(j, ':');
            }
            json_skip(j, depth + 1);
            int d = json_peek(j);
            if (d == ',') { j->s++; continue; }
            if (d == close) { j->s++; return; }
            json_fail(j, "expected ',' or a closing bracket");
        }
    } else if (c == 't' || c == 'f' || c == 'n') {
        const char* w = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t n = strlen(w);
        if ((size_t)(j->end - j->s) < n || strncmp(j->s, w, n)) json_fail(j, "bad literal");
        j->s += n;
    } else {
        json_number(j);
    }
}

// Finds a top-level numeric key in a JSON object text; returns 1 and sets *out when present.
static int json_get_number(const char* text, size_t len, const char* key, const char* path, double* out) {
    Json j = {text, text + len, path};
    json_expect(&j, '{');
    if (json_peek(&j) == '}') return 0;
    for (;;) {
        char k[128];
        json_string(&j, k, sizeof k);
        json_expect(&j, ':');
        int c = json_peek(&j);
        if (!strcmp(k, key) && (c == '-' || (c >= '0' && c <= '9'))) {
            *out = json_number(&j);
            return 1;
        }
        json_skip(&j, 0);
        int d = json_peek(&j);
        if (d == ',') { j.s++; continue; }
        if (d == '}') return 0;
        json_fail(&j, "expected ',' or '}'");
    }
}

// ---------------------------------------------------------------------------- safetensors
// The format: u64 little-endian N, then N bytes of JSON {"name": {"dtype": "F32", "shape": [..],
// "data_offsets": [begin, end]}, ..., "__metadata__": {"key": "value"}}, then the raw data, offsets relative
// to its start. Used for Hugging Face checkpoints and for this project's PyTorch reference files.
typedef struct {
    char name[128];
    char dtype[8];
    int ndim;
    int64_t shape[8];
    uint64_t begin, end;  // byte offsets into the data region
} StTensor;

typedef struct {
    FILE* f;
    char path[1024];
    uint64_t data_start;
    int n;
    StTensor* t;
    int nmeta;
    char (*meta_key)[64];
    char (*meta_val)[64];
} SafeTensors;

static size_t st_dtype_size(const char* d) {
    if (!strcmp(d, "F32") || !strcmp(d, "I32")) return 4;
    if (!strcmp(d, "F16") || !strcmp(d, "BF16")) return 2;
    if (!strcmp(d, "I64") || !strcmp(d, "F64")) return 8;
    return 0;
}

static void st_open(SafeTensors* st, const char* path) {
    memset(st, 0, sizeof(*st));
    snprintf(st->path, sizeof st->path, "%s", path);
    st->f = fopen_check(path, "rb");
    long long fsize = file_size(st->f);
    uint64_t hlen;
    fread_check(&hlen, 8, st->f, path, "the safetensors header length");
    if (hlen < 2 || hlen > (uint64_t)fsize - 8 || hlen > (100u << 20))
        failf("is this a safetensors file?", "%s: header length %llu does not fit the file (%lld bytes)", path,
              (unsigned long long)hlen, fsize);
    char* text = (char*)mallocCheck(hlen);
    fread_check(text, hlen, st->f, path, "the safetensors JSON header");
    st->data_start = 8 + hlen;
    uint64_t data_len = (uint64_t)fsize - st->data_start;
    Json j = {text, text + hlen, path};
    int cap = 16;
    st->t = (StTensor*)mallocCheck(cap * sizeof(StTensor));
    st->meta_key = (char(*)[64])mallocCheck(64 * 64);
    st->meta_val = (char(*)[64])mallocCheck(64 * 64);
    json_expect(&j, '{');
    while (json_peek(&j) != '}') {
        char key[128];
        json_string(&j, key, sizeof key);
        json_expect(&j, ':');
        json_expect(&j, '{');
        if (!strcmp(key, "__metadata__")) {
            while (json_peek(&j) != '}') {
                char k[64], v[64];
                json_string(&j, k, sizeof k);
                json_expect(&j, ':');
                json_string(&j, v, sizeof v);
                if (st->nmeta < 64) {
                    memcpy(st->meta_key[st->nmeta], k, 64);
                    memcpy(st->meta_val[st->nmeta], v, 64);
                    st->nmeta++;
                }
                if (json_peek(&j) == ',') j.s++;
            }
            j.s++;
        } else {
            if (st->n == cap) st->t = (StTensor*)realloc(st->t, (cap *= 2) * sizeof(StTensor));
            StTensor* t = &st->t[st->n++];
            memset(t, 0, sizeof(*t));
            snprintf(t->name, sizeof t->name, "%s", key);
            int have = 0;
            while (json_peek(&j) != '}') {
                char k[32];
                json_string(&j, k, sizeof k);
                json_expect(&j, ':');
                if (!strcmp(k, "dtype")) {
                    json_string(&j, t->dtype, sizeof t->dtype);
                    have |= 1;
                } else if (!strcmp(k, "shape") || !strcmp(k, "data_offsets")) {
                    int is_shape = k[0] == 's', n = 0;
                    json_expect(&j, '[');
                    while (json_peek(&j) != ']') {
                        double v = json_number(&j);
                        if (v < 0 || n >= 8) json_fail(&j, "bad shape or offsets");
                        if (is_shape) t->shape[n] = (int64_t)v;
                        else if (n == 0) t->begin = (uint64_t)v;
                        else t->end = (uint64_t)v;
                        n++;
                        if (json_peek(&j) == ',') j.s++;
                    }
                    j.s++;
                    if (is_shape) t->ndim = n, have |= 2;
                    else if (n == 2) have |= 4;
                } else {
                    json_skip(&j, 0);
                }
                if (json_peek(&j) == ',') j.s++;
            }
            j.s++;
            if (have != 7) failf("is this a safetensors file?", "%s: tensor '%s' lacks dtype, shape or data_offsets", path, key);
            size_t es = st_dtype_size(t->dtype);
            uint64_t numel = 1;
            for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)t->shape[d];
            if (!es) failf("supported: F32, F16, BF16, I32", "%s: tensor '%s' has unsupported dtype %s", path, key, t->dtype);
            if (t->end < t->begin || t->end > data_len || t->end - t->begin != numel * es)
                failf("the file is truncated or corrupt", "%s: tensor '%s' offsets [%llu, %llu] do not match its shape or the file size",
                      path, key, (unsigned long long)t->begin, (unsigned long long)t->end);
        }
        if (json_peek(&j) == ',') j.s++;
        else if (json_peek(&j) != '}') json_fail(&j, "expected ',' or '}'");
    }
    free(text);
}

static const StTensor* st_find(const SafeTensors* st, const char* name) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}

static const char* st_meta(const SafeTensors* st, const char* key) {
    for (int i = 0; i < st->nmeta; i++)
        if (!strcmp(st->meta_key[i], key)) return st->meta_val[i];
    return NULL;
}

static size_t st_numel(const StTensor* t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

// Reads a tensor as float32 (F16 and BF16 are widened; I32 converted) into out, which holds st_numel floats.
static void st_read_f32(const SafeTensors* st, const StTensor* t, float* out) {
    size_t n = st_numel(t), es = st_dtype_size(t->dtype);
    unsigned char* raw = (unsigned char*)mallocCheck(n * es);
    fseek(st->f, (long)(st->data_start + t->begin), SEEK_SET);
    fread_check(raw, n * es, st->f, st->path, t->name);
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(t->dtype, "F32")) memcpy(&out[i], raw + 4 * i, 4);
        else if (!strcmp(t->dtype, "I32")) { int32_t v; memcpy(&v, raw + 4 * i, 4); out[i] = (float)v; }
        else {
            uint16_t h;
            memcpy(&h, raw + 2 * i, 2);
            uint32_t bits;
            if (!strcmp(t->dtype, "BF16")) bits = (uint32_t)h << 16;  // bf16 is the top half of an fp32
            else {  // IEEE half -> float
                uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
                if (e == 0) {
                    float f = ldexpf((float)m, -24);
                    memcpy(&bits, &f, 4);
                    bits |= sign;
                } else if (e == 31) bits = sign | 0x7f800000u | (m << 13);
                else bits = sign | ((e + 112) << 23) | (m << 13);
            }
            memcpy(&out[i], &bits, 4);
        }
    }
    free(raw);
}

static void st_read_i32(const SafeTensors* st, const StTensor* t, int* out) {
    if (strcmp(t->dtype, "I32")) failf(NULL, "%s: tensor '%s' is %s, expected I32", st->path, t->name, t->dtype);
    fseek(st->f, (long)(st->data_start + t->begin), SEEK_SET);
    fread_check(out, st_numel(t) * 4, st->f, st->path, t->name);
}

static void st_close(SafeTensors* st) {
    if (st->f) fclose(st->f);
    free(st->t);
    free(st->meta_key);
    free(st->meta_val);
    memset(st, 0, sizeof(*st));
}

// ---------------------------------------------------------------------------- Hugging Face GPT-2 names
// PARAM_TABLE gives each parameter's Hugging Face name; per-layer ones (shape starting with L) get "h.N.".

// Strips an optional "transformer." prefix (GPT2LMHeadModel checkpoints carry it).
static const char* hf_base_name(const char* name) {
    return strncmp(name, "transformer.", 12) ? name : name + 12;
}

static const StTensor* hf_find(const SafeTensors* st, const char* base) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(hf_base_name(st->t[i].name), base)) return &st->t[i];
    return NULL;
}

// Reads the config from a sibling config.json, or infers it from shapes: V, C from wte; maxT from wpe;
// L by counting blocks; NH cannot be seen in any shape, so without config.json it is taken as C/64, which
// holds for every released GPT-2 size (head size 64).
static GPTConfig hf_config(const SafeTensors* st, const char* path) {
    GPTConfig c = {0};
    const StTensor* wte = hf_find(st, "wte.weight");
    const StTensor* wpe = hf_find(st, "wpe.weight");
    if (!wte || !wpe || wte->ndim != 2 || wpe->ndim != 2)
        failf("expected a GPT-2 checkpoint with wte.weight and wpe.weight", "%s: no GPT-2 embedding tensors found", path);
    c.V = (int)wte->shape[0];
    c.C = (int)wte->shape[1];
    c.maxT = (int)wpe->shape[0];
    for (c.L = 0;; c.L++) {
        char name[64];
        snprintf(name, sizeof name, "h.%d.ln_1.weight", c.L);
        if (!hf_find(st, name)) break;
    }
    c.NH = c.C % 64 == 0 ? c.C / 64 : 0;
    const StTensor* fc = hf_find(st, "h.0.mlp.c_fc.weight");  // (C, F): the MLP width, unless config.json says
    if (fc && fc->ndim == 2 && fc->shape[1] != 4 * c.C) c.F = (int)fc->shape[1];
    // config.json beside the file overrides the inference
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "%s", path);
    char* slash = strrchr(cfg, '/');
    snprintf(slash ? slash + 1 : cfg, sizeof cfg - (slash ? (size_t)(slash + 1 - cfg) : 0), "config.json");
    FILE* f = fopen(cfg, "rb");
    if (f) {
        long long n = file_size(f);
        char* text = (char*)mallocCheck((size_t)n + 1);
        fread_check(text, (size_t)n, f, cfg, "config.json");
        fclose(f);
        double v;
        if (json_get_number(text, (size_t)n, "n_head", cfg, &v)) c.NH = (int)v;
        if (json_get_number(text, (size_t)n, "n_inner", cfg, &v)) c.F = (int)v == 4 * c.C ? 0 : (int)v;  // null: 4C
        if (json_get_number(text, (size_t)n, "n_layer", cfg, &v) && (int)v != c.L)
            failf("config.json and model.safetensors disagree", "%s: n_layer=%d but the checkpoint has %d blocks", cfg, (int)v, c.L);
        free(text);
    }
    if (c.L < 1 || c.NH < 1 || c.C % c.NH)
        failf("put the model's config.json next to the .safetensors file", "%s: cannot tell the number of heads (C=%d)", path, c.C);
    c.Vp = pad_vocab(c.V);
    return c;
}

static void load_hf_safetensors(GPT* model, const char* path) {
    SafeTensors st;
    st_open(&st, path);
    GPTConfig c = hf_config(&st, path);
    const StTensor* score = st_find(&st, "score.weight");  // GPT2ForSequenceClassification's head
    if (score) {
        if (score->ndim != 2 || score->shape[1] != c.C || score->shape[0] < 2)
            failf("score.weight must be (K, C) with K >= 2", "%s: score.weight has a bad shape", path);
        c.num_classes = (int)score->shape[0];
    }
    gpt_build(model, c);
    if (score) st_read_f32(&st, score, model->params.cls_w);
    // every tensor must be a known one: ignore only the attention-mask buffers and the tied lm_head
    for (int i = 0; i < st.n; i++) {
        const char* b = hf_base_name(st.t[i].name);
        const char* dot = strrchr(b, '.');
        if (!strcmp(b, "lm_head.weight") || !strcmp(b, "score.weight") || (dot && (!strcmp(dot, ".bias") || !strcmp(dot, ".masked_bias")) &&
                                              strstr(b, ".attn.") && !strstr(b, "c_attn") && !strstr(b, "c_proj")))
            continue;
        int known = 0;
        for (int p = 0; p < NUM_BASE_PARAMS && !known; p++) {
            const char* s = strstr(b, PARAM_TABLE[p].hf);
            known = s && !strcmp(s, PARAM_TABLE[p].hf);
        }
        if (!known) failf("this loader reads GPT-2 (GPT2Model / GPT2LMHeadModel) checkpoints", "%s: unexpected tensor '%s'", path, st.t[i].name);
    }
    for (int p = 0; p < NUM_BASE_PARAMS; p++) {
        int layers = param_per_layer(p) ? c.L : 1;
        size_t per = param_numel(&c, p) / layers;
        if (p == 0) per = (size_t)c.V * c.C;  // wte: only the first V rows are stored
        float* tmp = (float*)mallocCheck(per * sizeof(float));
        for (int l = 0; l < layers; l++) {
            char name[128];
            if (param_per_layer(p)) snprintf(name, sizeof name, "h.%d.%s", l, PARAM_TABLE[p].hf);
            else snprintf(name, sizeof name, "%s", PARAM_TABLE[p].hf);
            const StTensor* t = hf_find(&st, name);
            if (!t) failf("the checkpoint is incomplete or not GPT-2", "%s: missing tensor '%s'", path, name);
            if (st_numel(t) != per)
                failf("the checkpoint does not match its config", "%s: tensor '%s' has %zu elements, expected %zu", path, name,
                      st_numel(t), per);
            float* dst = model->params.t[p] + (size_t)l * per;
            if (PARAM_TABLE[p].hf_transposed) {  // (in, out) -> (out, in)
                st_read_f32(&st, t, tmp);
                int rows = (int)t->shape[0], cols = (int)t->shape[1];
                for (int r = 0; r < rows; r++)
                    for (int k = 0; k < cols; k++) dst[(size_t)k * rows + r] = tmp[(size_t)r * cols + k];
            } else {
                st_read_f32(&st, t, dst);
            }
        }
        free(tmp);
    }
    st_close(&st);
}

// ---------------------------------------------------------------------------- llm.c model files
// llm.c's format: 256 int32 [0]=20240326 [1]=3 (fp32) [2]=maxT [3]=V [4]=L [5]=NH [6]=C [7]=Vp, then every
// parameter as fp32 in this project's table order (which is llm.c's).
#define LLMC_MODEL_MAGIC 20240326

static void load_llmc(GPT* model, FILE* f, const char* path) {
    int32_t h[256];
    fseek(f, 0, SEEK_SET);
    fread_check(h, sizeof h, f, path, "the llm.c header");
    if (h[1] == 5) failf("use the fp32 file (gpt2_124M.bin), not gpt2_124M_bf16.bin", "%s: llm.c bf16 checkpoints (version 5) are not supported", path);
    if (h[1] != 3) failf("re-export with llm.c's train_gpt2.py", "%s: llm.c model version %d, expected 3 (fp32)", path, h[1]);
    GPTConfig c = {.maxT = h[2], .V = h[3], .Vp = h[7], .L = h[4], .NH = h[5], .C = h[6]};
    if (c.maxT < 1 || c.V < 1 || c.L < 1 || c.NH < 1 || c.C < 1 || c.C % c.NH || c.Vp < c.V)
        failf("the header is corrupt", "%s: bad config maxT=%d V=%d L=%d NH=%d C=%d Vp=%d", path, c.maxT, c.V, c.L, c.NH, c.C, c.Vp);
    gpt_build(model, c);
    size_t nb = num_base_parameters(&c);
    long long expect = 1024 + (long long)nb * 4, got = file_size(f);
    if (got != expect)
        failf("the file is truncated or the header does not match the data", "%s: expected %lld bytes for this config, found %lld", path, expect, got);
    fread_check(model->params_memory, nb * 4, f, path, "parameters");
}

// ---------------------------------------------------------------------------- other tools' formats
// Hugging Face GPT-2 and llm.c exports, PEFT LoRA adapters, GGUF for llama.cpp: export.c.
#include "export.c"

// ---------------------------------------------------------------------------- our checkpoints
// 256 int32: [0]=20261130 [1]=1 (version) [2]=kind (1 model, 2 training state, 3 adapter only) [3]=maxT [4]=V
// [5]=L [6]=NH [7]=C [8]=Vp [9]=NUM_PARAMS [10]=lora_r [11]=lora_targets [12]=lora_alpha (float bits)
// [13]=adapter_dim [14]=prefix_len [15]=num_classes [16]=lora_first [17]=lora_last [18]=F (MLP width, 0 = 4C)
// [19]=1 when the big matrices are int8 (model.h's Q8_0: each such tensor is stored as its n int8 values
// followed by its n/32 fp32 scales, instead of n fp32 values).
// Then the parameter table: per tensor a 16-byte name and an int64 element count (0 for a tensor the file
// does not hold), so a loader can say which tensor does not match; then those tensors (fp32, table order).
// An adapter-only file holds just the fine-tuning tensors (LoRA, adapters, prefix, head): small, and applied
// to a base model with --adapter. A training checkpoint continues with the trainable mask (NUM_PARAMS x L
// bytes), the number of trainable floats (int64), AdamW's m and v over them, and a TrainState.
#define CKPT_MAGIC 20261130
#define CKPT_VERSION 1
enum { CKPT_MODEL = 1, CKPT_TRAIN = 2, CKPT_ADAPTER = 3 };

typedef struct {
    int64_t step;          // optimizer steps done
    int64_t B, T;          // batch shape of the run (a resumed run must use the same)
    uint64_t rng;          // the trainer's RNG state
    uint64_t data_epoch;   // data loader position: epoch, the RNG state that shuffled it, index within it
    uint64_t data_epoch_rng;
    uint64_t data_next_rng;
    uint64_t data_pos;
    double best_metric;    // early stopping: best validation metric so far (NaN: none yet)
    int64_t best_step;     // the step it was reached at
    int64_t bad_evals;     // evaluations since then without improvement
} TrainState;

static void ckpt_header(int32_t h[256], const GPTConfig* c, int kind) {
    memset(h, 0, 256 * sizeof(int32_t));
    int32_t alpha;
    memcpy(&alpha, &c->lora_alpha, 4);
    int32_t v[] = {CKPT_MAGIC, CKPT_VERSION, kind, c->maxT, c->V, c->L, c->NH, c->C, c->Vp, NUM_PARAMS,
                   c->lora_r, c->lora_targets, alpha, c->adapter_dim, c->prefix_len, c->num_classes,
                   c->lora_first, c->lora_last, c->F};
    memcpy(h, v, sizeof v);
}

static GPTConfig ckpt_config(const int32_t h[256], const char* path) {
    GPTConfig c = {.maxT = h[3], .V = h[4], .Vp = h[8], .L = h[5], .NH = h[6], .C = h[7], .F = h[18], .lora_r = h[10],
                   .lora_targets = h[11], .adapter_dim = h[13], .prefix_len = h[14], .num_classes = h[15],
                   .lora_first = h[16], .lora_last = h[17]};
    memcpy(&c.lora_alpha, &h[12], 4);
    if (c.maxT < 1 || c.V < 1 || c.L < 1 || c.NH < 1 || c.C < 1 || c.C % c.NH || c.Vp < c.V || c.lora_r < 0 || c.F < 0 ||
        c.adapter_dim < 0 || c.prefix_len < 0 || c.num_classes < 0 || c.num_classes == 1)
        failf("the header is corrupt", "%s: bad config maxT=%d V=%d L=%d NH=%d C=%d Vp=%d", path, c.maxT, c.V, c.L,
              c.NH, c.C, c.Vp);
    return c;
}

// Which tensors a file of this kind holds.
static int ckpt_holds(int kind, int i) { return kind != CKPT_ADAPTER || i >= NUM_BASE_PARAMS; }

static void save_checkpoint_kind(const GPT* model, const char* path, const TrainState* state, int kind) {
    SafeWriter w;
    safe_open(&w, path);
    const GPTConfig* c = &model->config;
    int32_t h[256];
    ckpt_header(h, c, kind);
    h[19] = model->q8_memory != NULL;
    fwrite_check(h, sizeof h, w.f, path);
    for (int i = 0; i < NUM_PARAMS; i++) {
        char name[16] = {0};
        snprintf(name, sizeof name, "%s", PARAM_TABLE[i].name);
        int64_t n = ckpt_holds(kind, i) ? (int64_t)param_numel(c, i) : 0;
        fwrite_check(name, 16, w.f, path);
        fwrite_check(&n, 8, w.f, path);
    }
    for (int i = 0; i < NUM_PARAMS; i++) {
        if (!ckpt_holds(kind, i)) continue;
        size_t n = param_numel(c, i);
        if (model->q8[i].q) {  // int8 values, then their scales
            fwrite_check(model->q8[i].q, n, w.f, path);
            fwrite_check(model->q8[i].d, n / Q8_GROUP * 4, w.f, path);
        } else {
            fwrite_check(model->params.t[i], n * 4, w.f, path);
        }
    }
    if (kind == CKPT_TRAIN) {
        if (!model->m_memory) failf(NULL, "%s: no optimizer state to save before the first step", path);
        int64_t nt = (int64_t)model->num_trainable;
        fwrite_check(model->trainable, (size_t)NUM_PARAMS * c->L, w.f, path);
        fwrite_check(&nt, 8, w.f, path);
        fwrite_check(model->m_memory, model->num_trainable * 4, w.f, path);
        fwrite_check(model->v_memory, model->num_trainable * 4, w.f, path);
        fwrite_check(state, sizeof *state, w.f, path);
    }
    safe_close(&w);
}

static void save_checkpoint(const GPT* model, const char* path, const TrainState* state) {
    save_checkpoint_kind(model, path, state, state ? CKPT_TRAIN : CKPT_MODEL);
}

// Reads the parameter table of an open checkpoint (after the header) and checks it against config c.
static void ckpt_read_table(FILE* f, const char* path, const GPTConfig* c, int kind) {
    for (int i = 0; i < NUM_PARAMS; i++) {
        char name[17] = {0};
        int64_t n;
        fread_check(name, 16, f, path, "the parameter table");
        fread_check(&n, 8, f, path, "the parameter table");
        int64_t want = ckpt_holds(kind, i) ? (int64_t)param_numel(c, i) : 0;
        if (strcmp(name, PARAM_TABLE[i].name) || n != want)
            failf("the checkpoint's parameter table does not match this model definition",
                  "%s: tensor %d is '%s' with %lld elements, expected '%s' (%s) with %lld", path, i, name, (long long)n,
                  PARAM_TABLE[i].name, PARAM_TABLE[i].shape, (long long)want);
    }
}

// Loads our checkpoint. With state != NULL, it must be a training checkpoint and the optimizer state,
// trainable mask and TrainState are restored too.
static void load_checkpoint(GPT* model, FILE* f, const char* path, TrainState* state) {
    int32_t h[256];
    fseek(f, 0, SEEK_SET);
    fread_check(h, sizeof h, f, path, "the checkpoint header");
    if (h[1] != CKPT_VERSION) failf("was it written by a newer finetune.c?", "%s: checkpoint version %d, expected %d", path, h[1], CKPT_VERSION);
    if (h[9] != NUM_PARAMS) failf(NULL, "%s: checkpoint has %d parameter tensors, expected %d", path, h[9], NUM_PARAMS);
    if (h[2] == CKPT_ADAPTER)
        failf("load the base model with --model and this file with --adapter", "%s: this is an adapter-only file", path);
    GPTConfig c = ckpt_config(h, path);
    gpt_build(model, c);
    if (h[19]) gpt_alloc_q8(model), gpt_drop_fp32_copies(model);
    ckpt_read_table(f, path, &c, h[2]);
    size_t ns = (size_t)NUM_PARAMS * c.L;
    long long expect = 1024 + NUM_PARAMS * 24;
    for (int i = 0; i < NUM_PARAMS; i++) {
        long long n = (long long)param_numel(&c, i);
        expect += model->q8[i].q ? n + n / Q8_GROUP * 4 : n * 4;
    }
    if (h[2] == CKPT_TRAIN) {
        long long at = expect;
        int64_t nt = 0;
        fseek(f, (long)(at + (long long)ns), SEEK_SET);
        if (fread(&nt, 8, 1, f) != 1 || nt < 0) nt = 0;
        expect += (long long)ns + 8 + nt * 8 + (long long)sizeof(TrainState);
    }
    if (file_size(f) != expect)
        failf("the file is truncated or was not written completely", "%s: expected %lld bytes, found %lld", path, expect, file_size(f));
    fseek(f, 1024 + NUM_PARAMS * 24, SEEK_SET);
    for (int i = 0; i < NUM_PARAMS; i++) {
        size_t n = param_numel(&c, i);
        if (model->q8[i].q) {
            fread_check((int8_t*)model->q8[i].q, n, f, path, PARAM_TABLE[i].name);
            fread_check((float*)model->q8[i].d, n / Q8_GROUP * 4, f, path, PARAM_TABLE[i].name);
        } else {
            fread_check(model->params.t[i], n * 4, f, path, PARAM_TABLE[i].name);
        }
    }
    if (state) {
        if (h[2] != CKPT_TRAIN) failf("--resume needs the run folder's ckpt.bin (a training checkpoint), not model.bin", "%s: this is a model-only checkpoint", path);
        fread_check(model->trainable, ns, f, path, "the trainable mask");
        int64_t nt;
        fread_check(&nt, 8, f, path, "the trainable count");
        gpt_alloc_grads(model);
        if ((int64_t)model->num_trainable != nt)
            failf("the file is corrupt", "%s: trainable mask gives %zu floats, file says %lld", path, model->num_trainable, (long long)nt);
        model->m_memory = (float*)mallocCheck((size_t)nt * 4 + 4);
        model->v_memory = (float*)mallocCheck((size_t)nt * 4 + 4);
        fread_check(model->m_memory, (size_t)nt * 4, f, path, "AdamW m");
        fread_check(model->v_memory, (size_t)nt * 4, f, path, "AdamW v");
        fread_check(state, sizeof *state, f, path, "the training state");
    }
}

// Applies an adapter-only file (LoRA / adapters / prefix / head) to a loaded base model. The file's base
// config must match the model's; the model is rebuilt with the file's fine-tuning config. A PEFT adapter
// (folder or .safetensors) goes to load_peft instead.
static void load_adapter(GPT* model, const char* path) {
    char stp[1100], cfgp[1100];
    if (peft_paths(path, stp, cfgp)) {  // a Hugging Face PEFT LoRA adapter (export.c)
        load_peft(model, path);
        return;
    }
    FILE* f = fopen_check(path, "rb");
    int32_t h[256];
    fread_check(h, sizeof h, f, path, "the adapter header");
    if (h[0] != CKPT_MAGIC || h[2] != CKPT_ADAPTER)
        failf("--adapter takes the adapter.bin that training with --method lora|adapter|prefix writes",
              "%s: not a finetune.c adapter file (magic %d, kind %d)", path, h[0], h[2]);
    if (h[1] != CKPT_VERSION || h[9] != NUM_PARAMS) failf(NULL, "%s: adapter file version %d, expected %d", path, h[1], CKPT_VERSION);
    GPTConfig ac = ckpt_config(h, path), mc = model->config;
    if (ac.maxT != mc.maxT || ac.V != mc.V || ac.L != mc.L || ac.NH != mc.NH || ac.C != mc.C)
        failf("apply an adapter to the base model it was trained on",
              "%s: adapter is for L=%d NH=%d C=%d V=%d maxT=%d, the model is L=%d NH=%d C=%d V=%d maxT=%d", path, ac.L,
              ac.NH, ac.C, ac.V, ac.maxT, mc.L, mc.NH, mc.C, mc.V, mc.maxT);
    uint64_t rng = 1;
    gpt_set_peft(model, ac, &rng);
    ckpt_read_table(f, path, &ac, CKPT_ADAPTER);
    long long expect = 1024 + NUM_PARAMS * 24;
    for (int i = NUM_BASE_PARAMS; i < NUM_PARAMS; i++) expect += (long long)param_numel(&ac, i) * 4;
    if (file_size(f) != expect)
        failf("the file is truncated", "%s: expected %lld bytes, found %lld", path, expect, file_size(f));
    for (int i = NUM_BASE_PARAMS; i < NUM_PARAMS; i++)
        fread_check(model->params.t[i], param_numel(&ac, i) * 4, f, path, PARAM_TABLE[i].name);
    fclose(f);
}

// Loads any supported model file, telling the format by its first bytes: our checkpoint, llm.c's model file,
// a GGUF file (llama.cpp's gpt2), or a Hugging Face model.safetensors (a folder holding one also works).
static void load_model(GPT* model, const char* path_in, TrainState* state) {
    char path[1024];
    snprintf(path, sizeof path, "%s", path_in);
    char inside[1024];  // a Hugging Face model folder: read the model.safetensors inside it
    snprintf(inside, sizeof inside, "%s/model.safetensors", path_in);
    FILE* g = fopen(inside, "rb");
    if (g) {
        fclose(g);
        snprintf(path, sizeof path, "%s", inside);
    }
    FILE* f = fopen_check(path, "rb");
    int32_t magic = 0;
    unsigned char first[9] = {0};
    if (fread(first, 1, 9, f) < 9) failf("is this a model file?", "%s: file is too short to be a model", path);
    memcpy(&magic, first, 4);
    if (magic == CKPT_MAGIC) {
        load_checkpoint(model, f, path, state);
        fclose(f);
    } else if (state) {
        failf("--resume needs the ckpt.bin that --out DIR writes", "%s: not a finetune.c training checkpoint (magic %d)", path, magic);
    } else if (magic == LLMC_MODEL_MAGIC) {
        load_llmc(model, f, path);
        fclose(f);
    } else if (!memcmp(first, "GGUF", 4)) {
        fclose(f);
        load_gguf(model, path);
    } else if (first[8] == '{') {
        fclose(f);
        load_hf_safetensors(model, path);
    } else {
        fclose(f);
        failf("supported: finetune.c checkpoints, llm.c's gpt2_124M.bin, Hugging Face model.safetensors, GGUF (gpt2)",
              "%s: unknown model format (first int32 %d, expected %d, %d or a safetensors header)", path, magic,
              CKPT_MAGIC, LLMC_MODEL_MAGIC);
    }
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
// least as many classes; LM and SFT data need the LM head.
static void check_data_matches_model(const DataLoader* dl, const GPT* model) {
    int K = model->config.num_classes;
    if (dl->kind == DATA_CLS && !K)
        failf("train a classification model on it first (./train --train that file), or pass --classes K",
              "%s is a classification dataset but the model has the LM head", dl->path);
    if (dl->kind != DATA_CLS && K)
        failf("use a classification dataset (./dataprep cls) with this model",
              "%s is a %s dataset but the model has a %d-class head", dl->path, dl->kind == DATA_LM ? "language-modelling" : "SFT", K);
    if (dl->kind == DATA_CLS && dl->ds.num_labels > K)
        failf("the dataset and the model disagree on the labels", "%s has %d labels, the model's head %d", dl->path, dl->ds.num_labels, K);
}

// The denominator of a batch's mean loss: its number of targets (LM, SFT), or for classification the sum
// of its labels' class weights (the number of labelled examples without weights).
static double batch_denominator(const GPT* model, DataKind kind, const Batch* b) {
    double n = 0.0;
    if (kind == DATA_CLS) {
        for (int i = 0; i < b->B; i++)
            if (b->lab[i] >= 0) n += model->class_weights ? model->class_weights[b->lab[i]] : 1.0;
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

// ---------------------------------------------------------------------------- classification metrics
// From a confusion matrix cm[gold * K + predicted]: per-class precision tp/(tp+fp), recall tp/(tp+fn) and
// F1 = 2PR/(P+R), each 0 where its denominator is 0 (scikit-learn's zero_division=0); macro F1 is their
// plain mean; micro F1 pools the counts, which for single-label classification equals accuracy.
typedef struct {
    double accuracy, macro_f1, micro_f1;
    double precision[64], recall[64], f1[64];  // per class (K <= 64 reported)
    size_t support[64];                         // gold examples per class
} ClsMetrics;

static ClsMetrics cls_metrics(const size_t* cm, int K) {
    ClsMetrics r;
    memset(&r, 0, sizeof r);
    size_t total = 0, correct = 0;
    for (int g = 0; g < K; g++)
        for (int p = 0; p < K; p++) {
            total += cm[(size_t)g * K + p];
            if (g == p) correct += cm[(size_t)g * K + p];
        }
    for (int k = 0; k < K && k < 64; k++) {
        size_t tp = cm[(size_t)k * K + k], fp = 0, fn = 0;
        for (int o = 0; o < K; o++) {
            if (o == k) continue;
            fp += cm[(size_t)o * K + k];
            fn += cm[(size_t)k * K + o];
        }
        r.support[k] = tp + fn;
        r.precision[k] = tp + fp ? (double)tp / (tp + fp) : 0.0;
        r.recall[k] = tp + fn ? (double)tp / (tp + fn) : 0.0;
        double pr = r.precision[k] + r.recall[k];
        r.f1[k] = pr > 0 ? 2.0 * r.precision[k] * r.recall[k] / pr : 0.0;
        r.macro_f1 += r.f1[k] / K;
    }
    r.accuracy = total ? (double)correct / total : 0.0;
    r.micro_f1 = r.accuracy;  // pooled tp / (tp + (fp + fn)/2), and sum fp = sum fn = total - correct
    return r;
}

typedef struct {
    double loss;      // mean over all targets (LM, SFT) or labelled examples (classification)
    double accuracy;  // classification: share of examples whose argmax is the label; else NaN
    size_t count;     // targets or examples
    size_t* confusion;  // classification: (K,K) counts [gold][predicted], malloc'd; else NULL
} EvalResult;

// Evaluates up to max_batches batches (all of the file when max_batches <= 0), in file order.
static EvalResult evaluate(GPT* model, const char* path, int B, int T, int max_batches) {
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
    int K = model->config.num_classes;
    size_t* cm = K ? (size_t*)callocCheck((size_t)K * K, sizeof(size_t)) : NULL;
    for (size_t i = 0; i < nb; i++) {
        if (i % (size_t)dist_world != (size_t)dist_rank) {  // another rank's batch (evaluation is sharded)
            loader_next(&dl, b.x, b.y, b.len, b.lab, model->config.V);
            continue;
        }
        size_t n = batch_forward(model, &dl, &b);
        if (n) sum += (double)model->mean_loss * n;  // NaN-free: a batch with no targets adds nothing
        count += n;
        for (int e = 0; K && e < B; e++) {
            const float* lg = model->acts.cls_logits + (size_t)e * K;
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
    EvalResult r = {count ? sum / count : NAN, K && count ? (double)correct / count : NAN, count, cm};
    return r;
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
// the cache cannot simply be shifted by one).
static int generate(GPT* model, Sampler* s, const int* prompt, int n, int steps, int* out) {
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
        if (next == s->stop_token || i + 1 == steps) break;
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

// ---------------------------------------------------------------------------- error analysis
// For a classification dataset: every example's prediction, then DIR/errors.md with accuracy by class and
// by length, and the misclassified examples, most confident mistakes first (decoded when --tokenizer is
// given). Label names come from PREFIX_labels.txt beside PREFIX_{train,val,test}.ds when it exists.
typedef struct {
    size_t index;  // example number in the file
    int gold, pred, len;
    float conf;    // probability of the predicted class
} Prediction;

static int cmp_conf_desc(const void* a, const void* b) {
    float x = ((const Prediction*)a)->conf, y = ((const Prediction*)b)->conf;
    return x < y ? 1 : x > y ? -1 : 0;
}

// Reads label names (second tab-separated column of dataprep's PREFIX_labels.txt) from f, and closes it.
static void read_label_file(FILE* f, char names[][64], int K) {
    char line[512];
    while (fgets(line, sizeof line, f)) {
        int id;
        char name[64];
        if (line[0] != '#' && sscanf(line, "%d\t%63[^\t\n]", &id, name) == 2 && id >= 0 && id < K) snprintf(names[id], 64, "%s", name);
    }
    fclose(f);
}
// Label names from the labels file next to a dataset, if any; else the class ids.
static void read_label_names(const char* data_path, char names[][64], int K) {
    for (int k = 0; k < K; k++) snprintf(names[k], 64, "%d", k);
    char path[1100];
    snprintf(path, sizeof path, "%s", data_path);
    char* u = strrchr(path, '_');
    if (!u) return;
    snprintf(u, sizeof path - (size_t)(u - path), "_labels.txt");
    FILE* f = fopen(path, "r");
    if (f) read_label_file(f, names, K);
}

static void error_analysis(GPT* model, const char* data_path, int B, int T, const char* out_path, const char* tokenizer_path) {
    int K = model->config.num_classes;
    DataLoader dl;
    loader_init(&dl, data_path, B, T, 0, 1);
    dl.pad_tail = 1;
    size_t nb = (dl.num_items + B - 1) / B, np = 0;
    Prediction* pr = (Prediction*)mallocCheck(dl.num_items * sizeof(Prediction));
    Batch b;
    batch_alloc(&b, B, T);
    for (size_t i = 0; i < nb; i++) {
        batch_forward(model, &dl, &b);
        for (int e = 0; e < B && np < dl.num_items; e++) {
            if (b.lab[e] < 0) continue;
            const float* p = model->acts.cls_probs + (size_t)e * K;
            int best = 0;
            for (int k = 1; k < K; k++) if (p[k] > p[best]) best = k;
            pr[np] = (Prediction){np, b.lab[e], best, b.len[e], p[best]};
            np++;
        }
    }
    char names[64][64];
    read_label_names(data_path, names, K < 64 ? K : 64);
    Tokenizer tok;
    int have_tok = 0;
    if (tokenizer_path) {
        tokenizer_load_or_die(&tok, tokenizer_path);
        have_tok = 1;
    }
    SafeWriter w;
    safe_open(&w, out_path);
    size_t correct = 0;
    for (size_t i = 0; i < np; i++) correct += pr[i].gold == pr[i].pred;
    fprintf(w.f, "# Error analysis: %s\n\n%zu examples, %zu correct (accuracy %.4f)\n\n", data_path, np, correct,
            np ? (double)correct / np : 0.0);
    fprintf(w.f, "## Accuracy by class\n\n| class | examples | correct | accuracy |\n|---|---|---|---|\n");
    for (int k = 0; k < K && k < 64; k++) {
        size_t n = 0, c = 0;
        for (size_t i = 0; i < np; i++) if (pr[i].gold == k) n++, c += pr[i].pred == k;
        fprintf(w.f, "| %s | %zu | %zu | %.4f |\n", names[k], n, c, n ? (double)c / n : 0.0);
    }
    fprintf(w.f, "\n## Accuracy by length (tokens, after truncation to %d)\n\n| length | examples | accuracy |\n|---|---|---|\n", T);
    const int edges[] = {0, 16, 32, 64, 128, 256, 1 << 30};
    for (int bkt = 0; bkt + 1 < (int)(sizeof edges / sizeof edges[0]); bkt++) {
        size_t n = 0, c = 0;
        for (size_t i = 0; i < np; i++)
            if (pr[i].len > edges[bkt] && pr[i].len <= edges[bkt + 1]) n++, c += pr[i].gold == pr[i].pred;
        if (!n) continue;
        if (edges[bkt + 1] == 1 << 30) fprintf(w.f, "| > %d | %zu | %.4f |\n", edges[bkt], n, (double)c / n);
        else fprintf(w.f, "| %d-%d | %zu | %.4f |\n", edges[bkt] + 1, edges[bkt + 1], n, (double)c / n);
    }
    qsort(pr, np, sizeof *pr, cmp_conf_desc);
    fprintf(w.f, "\n## Misclassified, most confident first\n\n| # | example | gold | predicted | confidence | text |\n|---|---|---|---|---|---|\n");
    int shown = 0;
    for (size_t i = 0; i < np && shown < 200; i++) {
        if (pr[i].gold == pr[i].pred) continue;
        Example ex;
        char text[400] = "";
        if (dataset_get(&dl.ds, pr[i].index, &ex) == 0) {
            size_t n = ex.n < 128 ? ex.n : 128;
            if (have_tok) {
                ByteVec bytes = {0};
                int ids[128];
                for (size_t j = 0; j < n; j++) ids[j] = dataset_id(ex.ids, dl.ds.bytes_per_token, j);
                if (tokenizer_decode(&tok, ids, n, &bytes, NULL) == 0) {
                    size_t k = 0;
                    for (size_t j = 0; j < bytes.len && k + 2 < sizeof text; j++) {
                        unsigned char ch = bytes.data[j];
                        text[k++] = ch == '|' ? '/' : (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' : (char)ch;
                    }
                    text[k] = 0;
                }
                free(bytes.data);
            } else {  // ids, when no tokenizer was given
                size_t k = 0;
                for (size_t j = 0; j < n && k + 12 < sizeof text; j++)
                    k += (size_t)snprintf(text + k, sizeof text - k, "%d ", dataset_id(ex.ids, dl.ds.bytes_per_token, j));
            }
        }
        fprintf(w.f, "| %d | %zu | %s | %s | %.3f | %s |\n", ++shown, pr[i].index, names[pr[i].gold], names[pr[i].pred],
                pr[i].conf, text);
    }
    safe_close(&w);
    if (have_tok) tokenizer_free(&tok);
    batch_free(&b);
    loader_free(&dl);
    free(pr);
}

// ---------------------------------------------------------------------------- plots (SVG)
// Written by the program itself so a user opens them in a browser; no Python needed.
typedef struct {
    double* x;
    double* y;
    size_t n, cap;
} Series;

static void series_add(Series* s, double x, double y) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->x = (double*)realloc(s->x, s->cap * sizeof(double));
        s->y = (double*)realloc(s->y, s->cap * sizeof(double));
        if (!s->x || !s->y) DIE("out of memory", "");
    }
    s->x[s->n] = x;
    s->y[s->n++] = y;
}

// A line chart of up to two series (train in blue, validation in orange) with axis labels.
static void svg_curves(const char* path, const char* title, const Series* a, const char* an, const Series* b,
                       const char* bn) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    const Series* ss[2] = {a, b};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; ss[k] && i < ss[k]->n; i++) {
            if (!isfinite(ss[k]->y[i])) continue;
            x0 = fmin(x0, ss[k]->x[i]), x1 = fmax(x1, ss[k]->x[i]);
            y0 = fmin(y0, ss[k]->y[i]), y1 = fmax(y1, ss[k]->y[i]);
        }
    if (!isfinite(x0)) return;
    if (x1 == x0) x1 = x0 + 1;
    if (y1 == y0) y1 = y0 + 1;
    SafeWriter w;
    safe_open(&w, path);
    const double W = 640, H = 400, L = 60, R = 20, T = 40, Bm = 50;
    fprintf(w.f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(w.f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"%.0f\" y=\"24\" font-size=\"15\">%s</text>\n", L, title);
    fprintf(w.f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L, H - Bm, W - R, H - Bm);
    fprintf(w.f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L, T, L, H - Bm);
    for (int i = 0; i <= 4; i++) {  // ticks
        double fx = x0 + (x1 - x0) * i / 4, fy = y0 + (y1 - y0) * i / 4;
        double px = L + (W - L - R) * i / 4, py = H - Bm - (H - T - Bm) * i / 4;
        fprintf(w.f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%.0f</text>\n", px, H - Bm + 18, fx);
        fprintf(w.f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">%.3g</text>\n", L - 6, py + 4, fy);
        fprintf(w.f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#ddd\"/>\n", L, py, W - R, py);
    }
    fprintf(w.f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">step</text>\n", (L + W - R) / 2, H - 12);
    const char* colors[2] = {"#1f77b4", "#ff7f0e"};
    const char* names[2] = {an, bn};
    for (int k = 0; k < 2; k++) {
        if (!ss[k] || !ss[k]->n) continue;
        fprintf(w.f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", colors[k]);
        for (size_t i = 0; i < ss[k]->n; i++)
            if (isfinite(ss[k]->y[i]))
                fprintf(w.f, "%.1f,%.1f ", L + (W - L - R) * (ss[k]->x[i] - x0) / (x1 - x0),
                        H - Bm - (H - T - Bm) * (ss[k]->y[i] - y0) / (y1 - y0));
        fprintf(w.f, "\"/>\n<text x=\"%.0f\" y=\"%d\" fill=\"%s\">%s</text>\n", W - R - 150, 24 + 16 * k, colors[k], names[k]);
    }
    fprintf(w.f, "</svg>\n");
    safe_close(&w);
}

// The confusion matrix as a heat map: rows gold, columns predicted, counts in the cells.
static void svg_confusion(const char* path, const size_t* cm, int K) {
    SafeWriter w;
    safe_open(&w, path);
    int cell = K <= 10 ? 48 : 480 / K, L = 90, T = 60;
    size_t mx = 1;
    for (int i = 0; i < K * K; i++) mx = cm[i] > mx ? cm[i] : mx;
    fprintf(w.f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n",
            L + K * cell + 20 > 420 ? L + K * cell + 20 : 420, T + K * cell + 20);
    fprintf(w.f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"15\">confusion matrix (rows: gold, columns: predicted)</text>\n");
    for (int g = 0; g < K; g++) {
        fprintf(w.f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">gold %d</text>\n", L - 6, T + g * cell + cell / 2 + 4, g);
        fprintf(w.f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", L + g * cell + cell / 2, T - 6, g);
        for (int p = 0; p < K; p++) {
            size_t v = cm[(size_t)g * K + p];
            int shade = 255 - (int)(200.0 * v / mx);
            fprintf(w.f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,255)\" stroke=\"white\"/>\n",
                    L + p * cell, T + g * cell, cell, cell, shade, shade);
            if (cell >= 24)
                fprintf(w.f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%zu</text>\n", L + p * cell + cell / 2,
                        T + g * cell + cell / 2 + 4, v);
        }
    }
    fprintf(w.f, "</svg>\n");
    safe_close(&w);
}

// ---------------------------------------------------------------------------- command line
static int g_argc;     // the command line, kept for DIR/command.txt (the config a run used)
static char** g_argv;

typedef struct {
    const char* cmd;            // "train", "eval", "sample" or "bench"
    const char* model;          // --model
    const char* init;           // --init L,NH,C
    int vocab, max_seq;         // --vocab, --max-seq (for --init)
    const char* train, *val;    // --train, --val
    const char* data;           // --data (eval)
    int B, T, steps;
    float lr, min_lr_frac, weight_decay, beta1, beta2, eps, grad_clip;
    int warmup;
    Schedule schedule;
    uint64_t seed;
    const char* log, *out, *resume;
    int eval_every, val_batches, save_every, shuffle, print_every;
    const char* tokens;         // --tokens (sample)
    int gen_steps, top_k, stop_token, stop_set;  // stop_set: --stop was given (else the tokenizer's <|endoftext|>)
    float temperature, top_p;
    const char* input, *labels;  // classify: --input FILE|- and --labels a,b,...|FILE
    int max_batches;            // eval
    int stop_at;                // stop (as if interrupted) after this step, writing the checkpoint
    // fine-tuning
    const char* method;         // full | lora | adapter | prefix
    const char* task;           // lm | cls | sft (checked against the data)
    int lora_rank, adapter_dim, prefix_len, classes, accum, early_stop, zero;
    float epochs;
    const char* metric, *test, *tokenizer;
    const char* prompt;  // sample: prompt text (needs --tokenizer)
    const char* format;  // export: safetensors | llmc | peft | gguf
    const char* dtype;   // export gguf: f32 | q8_0 (default: q8_0 for an int8 model, else f32)
    int merge;           // export: fold LoRA into the weights first
    const char* prune;   // prune: unstructured | layer | heads | neurons
    float sparsity;      // prune: fraction of the block-matrix weights to remove, in [0, 1)
    int keep_sparsity;   // train: put a pruned model's zeros back after every step
    int exact_match;  // eval on SFT data: greedy-generate the responses of this many examples (-1 = all)
    float lora_alpha, layer_decay, label_smoothing, lora_dropout, dropout;
    const char* lora_targets, *lora_layers, *freeze, *unfreeze, *class_weights, *adapter;
} Args;

static void print_help(void) {
    printf(
        "finetune.c trainer\n"
        "usage: ./train [train] [flags]  |  ./train eval [flags]  |  ./train sample [flags]  |  ./train classify [flags]  |  ./train bench [flags]\n\n"
        "model (one of):\n"
        "  --model FILE        load a model: finetune.c checkpoint, llm.c gpt2_124M.bin, HF model.safetensors (or its\n"
        "                      folder), or a GGUF file of llama.cpp's gpt2 (F32, F16 or Q8_0; Q8_0 loads as int8)\n"
        "  --init L,NH,C       random GPT-2-style init with L layers, NH heads, C channels\n"
        "  --vocab V           vocabulary size for --init (default 50257)\n"
        "  --max-seq N         positions (maxT) for --init (default 1024)\n"
        "  --adapter FILE      apply an adapter.bin (LoRA / adapters / prefix / head) to the model, or a Hugging\n"
        "                      Face PEFT LoRA adapter (its folder or adapter_model.safetensors)\n"
        "data (from ./dataprep; the kind of file sets the task):\n"
        "  --train FILE        token file (LM), classification or SFT example file\n"
        "  --val FILE          validation data of the same kind (optional)\n"
        "  --task T            lm|cls|sft: check that the data is of this kind (default: take it from the data)\n"
        "  --batch B           sequences per micro-batch (default 4)\n"
        "  --accum K           gradient accumulation: K micro-batches per optimizer step (default 1)\n"
        "  --seq T             tokens per sequence (default 64); examples are truncated or padded to it\n"
        "  --shuffle 0|1       visit windows / examples in a seeded random order each epoch (default 1)\n"
        "fine-tuning method:\n"
        "  --method M          full|lora|adapter|prefix (default full)\n"
        "  --lora-rank r       LoRA rank (default 8)\n"
        "  --lora-alpha a      LoRA scale is alpha/r (default 16)\n"
        "  --lora-targets L    comma list of qkv,proj,fc,fcproj (default qkv,proj)\n"
        "  --lora-layers A-B   layers that get LoRA (default all)\n"
        "  --lora-dropout P    dropout on the LoRA input while training (default 0)\n"
        "  --adapter-dim A     adapter bottleneck (default 16)\n"
        "  --prefix-len P      prefix-tuning positions per layer (default 10)\n"
        "  --freeze LIST       freeze: embeddings, head, final-ln, first:K, blocks:A-B, base (all GPT-2 weights)\n"
        "  --unfreeze LIST     the same items, applied after --freeze (e.g. --freeze base --unfreeze blocks:10-11)\n"
        "  --layer-decay D     layer-wise LR decay: block l gets lr*D^(L-1-l), embeddings lr*D^L (default 1)\n"
        "  --classes K         classes of the classification head (default: the dataset's label count)\n"
        "  --class-weights W   comma list of K loss weights, or 'auto' = N/(K*count_k) from the training data\n"
        "  --label-smoothing E classification label smoothing (default 0)\n"
        "optimization:\n"
        "  --steps N           optimizer steps (default 100)\n"
        "  --epochs E          train for E passes over the data instead (sets --steps; fractions allowed)\n"
        "  --lr X              peak learning rate (default 3e-4)\n"
        "  --schedule S        constant|cosine|linear (default cosine)\n"
        "  --warmup N          linear warmup steps (default 0)\n"
        "  --min-lr-frac F     decay to lr*F at the last step (default 0.1)\n"
        "  --weight-decay W    AdamW decoupled weight decay on matrices (default 0.1)\n"
        "  --beta1 B1 --beta2 B2 --eps E   AdamW (defaults 0.9, 0.95, 1e-8)\n"
        "  --grad-clip G       clip the global gradient norm to G, 0 = off (default 1.0)\n"
        "  --dropout P         dropout on embeddings, attention probabilities and residual branches while\n"
        "                      training (GPT-2's embd/attn/resid_pdrop; default 0)\n"
        "  --seed S            seed for init and data order (default 1337)\n"
        "monitoring and output:\n"
        "  --eval-every N      validation every N steps and at the end, 0 = only at the end (default 0)\n"
        "  --val-batches N     batches per validation (default 20; 0 = all)\n"
        "  --early-stop N      stop after N validations without improvement of --metric; DIR/best.bin keeps the best\n"
        "  --metric M          val_loss | accuracy | f1 (macro F1): what --early-stop watches (default val_loss)\n"
        "  --test FILE         evaluate the best model (by --metric) on this data once, at the end; for\n"
        "                      classification also DIR/errors.md (accuracy by class and length, worst mistakes)\n"
        "  --tokenizer PATH    decode example text in DIR/errors.md (the gpt2_bpe folder or a dataprep tokenizer)\n"
        "  --print-every N     console line every N steps (default 1)\n"
        "  --log FILE          JSONL: step, loss, lr, grad_norm, tokens_per_s, val_loss (and val_accuracy) on eval steps\n"
        "  --out DIR           the run folder: DIR/model.bin (last), DIR/best.bin (best on --val), DIR/ckpt.bin\n"
        "                      (resumable state), DIR/adapter.bin (lora/adapter/prefix/head tensors only),\n"
        "                      DIR/log.jsonl (unless --log), DIR/command.txt, DIR/curves.svg\n"
        "  --save-every N      also write DIR/ckpt.bin every N steps (default 0 = only at the end)\n"
        "  --resume DIR        continue from DIR/ckpt.bin with the same flags; reproduces the uninterrupted run\n"
        "  --stop-at N         stop after step N as if interrupted (writes DIR/ckpt.bin; continue with --resume)\n"
        "distributed (build with make mpi, run with mpirun -np N): --batch is per rank, the global batch N*B\n"
        "  --zero 0|1          1: shard AdamW state over the ranks (ZeRO stage 1) (default 0)\n"
        "eval:   ./train eval --model FILE --data FILE [--adapter FILE --batch B --seq T --max-batches N]\n"
        "        prints one JSON line: loss and ppl (LM, SFT), or loss, accuracy, macro/micro F1, per-class\n"
        "        precision/recall/F1 and the confusion matrix [gold][predicted] (classification)\n"
        "        --exact-match N: on SFT data, also greedy-generate N responses (-1: all) and report the share\n"
        "        reproduced exactly\n"
        "sample: ./train sample --model FILE --tokens \"ids\" [--gen N (64) --temperature X (1.0; 0 = greedy)\n"
        "        --top-k K (0 = off) --top-p P (1.0 = off) --stop ID --seed S]  prints the prompt and generated\n"
        "        token ids; or, as text, ./train sample --model FILE --tokenizer PATH --prompt \"text\" [...]\n"
        "        Uses a KV cache (tokens/s on stderr). --stop defaults to the tokenizer's <|endoftext|> (50256\n"
        "        for GPT-2), -1 without a tokenizer. Past maxT tokens the context slides by maxT/2 at a time.\n"
        "classify: ./train classify --model FILE --tokenizer PATH [--input FILE (default - = stdin)\n"
        "        --labels a,b,...|PREFIX_labels.txt --batch B]  a classification model on each line of text:\n"
        "        prints label<TAB>probability<TAB>text; empty lines skipped, lines over maxT tokens truncated\n"
        "sweep:  ./train sweep --grid \"lr=1e-3,3e-3 lora-rank=4,8\" --out DIR [--random N --test FILE] <train flags>\n"
        "        one run per grid point in DIR/run_NNN, resumable; the best on --val (--metric) is evaluated on\n"
        "        --test; DIR/results.csv and DIR/results.md\n"
        "export: ./train export --model FILE [--adapter FILE] --format safetensors|llmc|peft|gguf --out PATH [--merge 1]\n"
        "        safetensors: PATH/model.safetensors + PATH/config.json in Hugging Face GPT-2 layout (score.weight for\n"
        "        a class head); llmc: llm.c's model file. --merge 1 folds LoRA into the weights first\n"
        "        peft: the LoRA itself (unmerged) as a Hugging Face PEFT adapter: PATH/adapter_model.safetensors +\n"
        "        PATH/adapter_config.json (score.weight too for a class head); load it back with --adapter PATH\n"
        "        gguf: PATH.gguf for llama.cpp (architecture gpt2) [--dtype f32|q8_0] [--tokenizer DIR]: q8_0 stores\n"
        "        the matrices as int8 (C and the MLP width must be multiples of 32; default for an int8 model);\n"
        "        --tokenizer ../shared/data/gpt2_bpe puts the vocabulary in (llama.cpp needs it to run the model)\n"
        "bench:  ./train bench --init 12,12,768 [--method lora ... --batch 4 --seq 64 --steps 5]  timed training\n"
        "        steps on random tokens (1 warmup step first); one JSON line with ms/step, tokens/s, GFLOP/s\n");
}

static int parse_int_arg(const char* flag, const char* v) {
    char* e;
    long x = strtol(v, &e, 10);
    if (*e || e == v) failf("see ./train --help", "%s expects an integer, got '%s'", flag, v);
    return (int)x;
}
static float parse_float_arg(const char* flag, const char* v) {
    char* e;
    float x = strtof(v, &e);
    if (*e || e == v || !isfinite(x)) failf("see ./train --help", "%s expects a number, got '%s'", flag, v);
    return x;
}

static Args parse_args(int argc, char** argv) {
    Args a;  // defaults (assigned one by one: C++, which train.cu compiles this file as, wants no reordering)
    memset(&a, 0, sizeof a);
    a.cmd = "train", a.vocab = 50257, a.max_seq = 1024, a.B = 4, a.T = 64, a.steps = 100, a.lr = 3e-4f;
    a.min_lr_frac = 0.1f, a.weight_decay = 0.1f, a.beta1 = 0.9f, a.beta2 = 0.95f, a.eps = 1e-8f, a.grad_clip = 1.0f;
    a.schedule = SCHED_COSINE, a.seed = 1337, a.val_batches = 20, a.shuffle = 1, a.print_every = 1;
    a.gen_steps = 64, a.top_k = 0, a.stop_token = -1, a.temperature = 1.0f, a.top_p = 1.0f;
    a.method = "full", a.lora_rank = 8, a.lora_alpha = 16.0f, a.lora_targets = "qkv,proj", a.adapter_dim = 16;
    a.prefix_len = 10, a.layer_decay = 1.0f, a.accum = 1, a.metric = "val_loss";
    int i = 1;
    if (argc > 1 && argv[1][0] != '-') {
        a.cmd = argv[1];
        if (strcmp(a.cmd, "train") && strcmp(a.cmd, "eval") && strcmp(a.cmd, "sample") && strcmp(a.cmd, "bench") &&
            strcmp(a.cmd, "export") && strcmp(a.cmd, "classify") && strcmp(a.cmd, "quantize") && strcmp(a.cmd, "prune"))
            failf("commands: train (default), eval, sample, classify, sweep, bench, export, quantize, prune", "unknown command '%s'", a.cmd);
        i = 2;
    }
    for (; i < argc; i++) {
        const char* f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { print_help(); exit(0); }
        if (i + 1 >= argc) failf("see ./train --help", "flag %s needs a value", f);
        const char* v = argv[++i];
        if (!strcmp(f, "--model")) a.model = v;
        else if (!strcmp(f, "--init")) a.init = v;
        else if (!strcmp(f, "--vocab")) a.vocab = parse_int_arg(f, v);
        else if (!strcmp(f, "--max-seq")) a.max_seq = parse_int_arg(f, v);
        else if (!strcmp(f, "--train")) a.train = v;
        else if (!strcmp(f, "--val")) a.val = v;
        else if (!strcmp(f, "--data")) a.data = v;
        else if (!strcmp(f, "--batch")) a.B = parse_int_arg(f, v);
        else if (!strcmp(f, "--seq")) a.T = parse_int_arg(f, v);
        else if (!strcmp(f, "--steps")) a.steps = parse_int_arg(f, v);
        else if (!strcmp(f, "--lr")) a.lr = parse_float_arg(f, v);
        else if (!strcmp(f, "--min-lr-frac")) a.min_lr_frac = parse_float_arg(f, v);
        else if (!strcmp(f, "--weight-decay")) a.weight_decay = parse_float_arg(f, v);
        else if (!strcmp(f, "--beta1")) a.beta1 = parse_float_arg(f, v);
        else if (!strcmp(f, "--beta2")) a.beta2 = parse_float_arg(f, v);
        else if (!strcmp(f, "--eps")) a.eps = parse_float_arg(f, v);
        else if (!strcmp(f, "--grad-clip")) a.grad_clip = parse_float_arg(f, v);
        else if (!strcmp(f, "--warmup")) a.warmup = parse_int_arg(f, v);
        else if (!strcmp(f, "--schedule")) {
            if (!strcmp(v, "constant")) a.schedule = SCHED_CONSTANT;
            else if (!strcmp(v, "cosine")) a.schedule = SCHED_COSINE;
            else if (!strcmp(v, "linear")) a.schedule = SCHED_LINEAR;
            else failf("use constant, cosine or linear", "unknown --schedule '%s'", v);
        } else if (!strcmp(f, "--seed")) a.seed = (uint64_t)strtoull(v, NULL, 10);
        else if (!strcmp(f, "--log")) a.log = v;
        else if (!strcmp(f, "--out")) a.out = v;
        else if (!strcmp(f, "--resume")) a.resume = v;
        else if (!strcmp(f, "--eval-every")) a.eval_every = parse_int_arg(f, v);
        else if (!strcmp(f, "--val-batches")) a.val_batches = parse_int_arg(f, v);
        else if (!strcmp(f, "--save-every")) a.save_every = parse_int_arg(f, v);
        else if (!strcmp(f, "--shuffle")) a.shuffle = parse_int_arg(f, v);
        else if (!strcmp(f, "--print-every")) a.print_every = parse_int_arg(f, v);
        else if (!strcmp(f, "--tokens")) a.tokens = v;
        else if (!strcmp(f, "--gen")) a.gen_steps = parse_int_arg(f, v);
        else if (!strcmp(f, "--top-k")) a.top_k = parse_int_arg(f, v);
        else if (!strcmp(f, "--stop")) a.stop_token = parse_int_arg(f, v), a.stop_set = 1;
        else if (!strcmp(f, "--top-p")) a.top_p = parse_float_arg(f, v);
        else if (!strcmp(f, "--input")) a.input = v;
        else if (!strcmp(f, "--labels")) a.labels = v;
        else if (!strcmp(f, "--temperature")) a.temperature = parse_float_arg(f, v);
        else if (!strcmp(f, "--max-batches")) a.max_batches = parse_int_arg(f, v);
        else if (!strcmp(f, "--stop-at")) a.stop_at = parse_int_arg(f, v);
        else if (!strcmp(f, "--method")) a.method = v;
        else if (!strcmp(f, "--task")) a.task = v;
        else if (!strcmp(f, "--lora-rank")) a.lora_rank = parse_int_arg(f, v);
        else if (!strcmp(f, "--lora-alpha")) a.lora_alpha = parse_float_arg(f, v);
        else if (!strcmp(f, "--lora-targets")) a.lora_targets = v;
        else if (!strcmp(f, "--lora-layers")) a.lora_layers = v;
        else if (!strcmp(f, "--lora-dropout")) a.lora_dropout = parse_float_arg(f, v);
        else if (!strcmp(f, "--dropout")) a.dropout = parse_float_arg(f, v);
        else if (!strcmp(f, "--adapter-dim")) a.adapter_dim = parse_int_arg(f, v);
        else if (!strcmp(f, "--prefix-len")) a.prefix_len = parse_int_arg(f, v);
        else if (!strcmp(f, "--freeze")) a.freeze = v;
        else if (!strcmp(f, "--unfreeze")) a.unfreeze = v;
        else if (!strcmp(f, "--layer-decay")) a.layer_decay = parse_float_arg(f, v);
        else if (!strcmp(f, "--classes")) a.classes = parse_int_arg(f, v);
        else if (!strcmp(f, "--class-weights")) a.class_weights = v;
        else if (!strcmp(f, "--label-smoothing")) a.label_smoothing = parse_float_arg(f, v);
        else if (!strcmp(f, "--adapter")) a.adapter = v;
        else if (!strcmp(f, "--accum")) a.accum = parse_int_arg(f, v);
        else if (!strcmp(f, "--epochs")) a.epochs = parse_float_arg(f, v);
        else if (!strcmp(f, "--zero")) a.zero = parse_int_arg(f, v);
        else if (!strcmp(f, "--early-stop")) a.early_stop = parse_int_arg(f, v);
        else if (!strcmp(f, "--metric")) a.metric = v;
        else if (!strcmp(f, "--test")) a.test = v;
        else if (!strcmp(f, "--tokenizer")) a.tokenizer = v;
        else if (!strcmp(f, "--exact-match")) a.exact_match = parse_int_arg(f, v);
        else if (!strcmp(f, "--prompt")) a.prompt = v;
        else if (!strcmp(f, "--format")) a.format = v;
        else if (!strcmp(f, "--dtype")) a.dtype = v;
        else if (!strcmp(f, "--merge")) a.merge = parse_int_arg(f, v);
        else if (!strcmp(f, "--prune")) a.prune = v;
        else if (!strcmp(f, "--sparsity")) a.sparsity = parse_float_arg(f, v);
        else if (!strcmp(f, "--keep-sparsity")) a.keep_sparsity = parse_int_arg(f, v);
        else failf("see ./train --help for the list of flags", "unknown flag '%s'", f);
    }
    if (a.B < 1 || a.T < 1) failf(NULL, "--batch and --seq must be at least 1 (got %d, %d)", a.B, a.T);
    if (strcmp(a.metric, "val_loss") && strcmp(a.metric, "accuracy") && strcmp(a.metric, "f1"))
        failf("use val_loss, accuracy or f1 (macro F1)", "unknown --metric '%s'", a.metric);
    if (a.early_stop < 0 || a.epochs < 0) failf(NULL, "--early-stop and --epochs must not be negative");
    if (a.zero != 0 && a.zero != 1) failf("0: every rank keeps all AdamW state; 1: ZeRO stage 1 shards it", "--zero %d", a.zero);
    if (a.accum < 1) failf("--accum k runs k micro-batches of --batch B per optimizer step", "--accum %d must be at least 1", a.accum);
    if (a.steps < 0 || a.warmup < 0) failf(NULL, "--steps and --warmup must not be negative");
    if (a.lr < 0.0f || a.weight_decay < 0.0f || a.grad_clip < 0.0f) failf(NULL, "--lr, --weight-decay and --grad-clip must not be negative");
    if (strcmp(a.method, "full") && strcmp(a.method, "lora") && strcmp(a.method, "adapter") && strcmp(a.method, "prefix"))
        failf("use full, lora, adapter or prefix", "unknown --method '%s'", a.method);
    if (a.task && strcmp(a.task, "lm") && strcmp(a.task, "cls") && strcmp(a.task, "sft"))
        failf("use lm, cls or sft", "unknown --task '%s'", a.task);
    if (!strcmp(a.method, "lora") && a.lora_rank < 1) failf("a LoRA rank is at least 1, typically 4-64", "--lora-rank %d", a.lora_rank);
    if (!strcmp(a.method, "lora") && a.lora_alpha <= 0.0f) failf("alpha scales the update (alpha/r); use e.g. 2r", "--lora-alpha %g must be > 0", a.lora_alpha);
    if (!strcmp(a.method, "adapter") && a.adapter_dim < 1) failf(NULL, "--adapter-dim %d must be at least 1", a.adapter_dim);
    if (!strcmp(a.method, "prefix") && a.prefix_len < 1) failf(NULL, "--prefix-len %d must be at least 1", a.prefix_len);
    if (a.layer_decay <= 0.0f || a.layer_decay > 1.0f) failf("typical values are 0.65-0.95", "--layer-decay %g must be in (0, 1]", a.layer_decay);
    if (a.label_smoothing < 0.0f || a.label_smoothing >= 1.0f) failf(NULL, "--label-smoothing %g must be in [0, 1)", a.label_smoothing);
    if (a.dropout < 0.0f || a.dropout >= 1.0f) failf(NULL, "--dropout %g must be in [0, 1)", a.dropout);
    if (a.lora_dropout < 0.0f || a.lora_dropout >= 1.0f) failf(NULL, "--lora-dropout %g must be in [0, 1)", a.lora_dropout);
    if (a.top_p <= 0.0f || a.top_p > 1.0f) failf("e.g. 0.9 samples from the tokens that make up 90% of the probability", "--top-p %g must be in (0, 1]", a.top_p);
    if (a.temperature < 0.0f || a.top_k < 0) failf("--temperature 0 is greedy; --top-k 0 keeps every token", "--temperature and --top-k must not be negative");
    return a;
}

// Builds the model the flags ask for: --resume DIR, --model FILE or --init L,NH,C; then --adapter FILE.
static void model_from_args(GPT* model, const Args* a, TrainState* state, uint64_t* rng) {
    if (a->resume) {
        char path[1024];
        snprintf(path, sizeof path, "%s/ckpt.bin", a->resume);
        load_model(model, path, state);
        return;  // the checkpoint holds the fine-tuning tensors and the trainable set already
    } else if (a->model) {
        load_model(model, a->model, NULL);
    } else if (a->init) {
        GPTConfig c = {.maxT = a->max_seq, .V = a->vocab};
        if (sscanf(a->init, "%d,%d,%d", &c.L, &c.NH, &c.C) != 3 || c.L < 1 || c.NH < 1 || c.C < 1 || c.C % c.NH)
            failf("for example --init 12,12,768 (GPT-2 124M); C must be divisible by NH", "bad --init '%s'", a->init);
        if (c.V < 2 || c.maxT < 1) failf(NULL, "--vocab must be at least 2 and --max-seq at least 1");
        c.Vp = pad_vocab(c.V);
        gpt_build(model, c);
        gpt_init_random(model, rng);
    } else {
        failf("give --model FILE, --init L,NH,C or --resume DIR", "no model to %s", a->cmd);
    }
    if (a->adapter) load_adapter(model, a->adapter);
}

// Parses "A-B" (or "A") into a layer range within [0, L).
static void parse_layer_range(const char* s, int L, int* lo, int* hi, const char* flag) {
    int n = sscanf(s, "%d-%d", lo, hi);
    if (n == 1) *hi = *lo;
    if (n < 1 || *lo < 0 || *hi < *lo || *hi >= L)
        failf("layers are numbered 0..L-1", "%s '%s' is outside the model's layers 0-%d", flag, s, L - 1);
}

// Applies one --freeze / --unfreeze list: embeddings, head, final-ln, first:K, blocks:A-B, base.
static void apply_freeze_list(GPT* model, const char* list, int on, const char* flag) {
    const GPTConfig* c = &model->config;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    for (char* item = strtok(buf, ","); item; item = strtok(NULL, ",")) {
        int lo = 0, hi = -1;
        if (!strcmp(item, "embeddings")) {  // wte is also the LM head (tied): freezing it freezes the head
            gpt_set_trainable(model, PIDX(wte), -1, on);
            gpt_set_trainable(model, PIDX(wpe), -1, on);
        } else if (!strcmp(item, "head")) {  // the LM head is wte (tied); a class head is cls_w
            gpt_set_trainable(model, c->num_classes ? PIDX(cls_w) : PIDX(wte), -1, on);
        } else if (!strcmp(item, "final-ln")) {
            gpt_set_trainable(model, PIDX(lnfw), -1, on);
            gpt_set_trainable(model, PIDX(lnfb), -1, on);
        } else if (!strcmp(item, "base")) {
            for (int i = 0; i < NUM_BASE_PARAMS; i++) gpt_set_trainable(model, i, -1, on);
        } else if (!strncmp(item, "first:", 6)) {
            int k = atoi(item + 6);
            if (k < 1 || k > c->L) failf("first:K takes 1 <= K <= L", "%s item '%s' with L=%d", flag, item, c->L);
            lo = 0, hi = k - 1;
        } else if (!strncmp(item, "blocks:", 7)) {
            parse_layer_range(item + 7, c->L, &lo, &hi, flag);
        } else {
            failf("items: embeddings, head, final-ln, first:K, blocks:A-B, base", "%s: unknown item '%s'", flag, item);
        }
        for (int l = lo; l <= hi; l++)  // every per-layer base tensor of those blocks
            for (int i = 0; i < NUM_BASE_PARAMS; i++)
                if (param_per_layer(i)) gpt_set_trainable(model, i, l, on);
    }
}

// Sets up the fine-tuning the flags ask for on a freshly loaded model (not on resume, where the checkpoint
// already holds it): the head for the data, the method's tensors, the trainable set, and LR scales.
static void setup_finetuning(GPT* model, const Args* a, const DataLoader* dl, uint64_t* rng) {
    GPTConfig c = model->config;
    int peft = strcmp(a->method, "full") != 0;
    if (dl->kind == DATA_CLS && !c.num_classes) {
        c.num_classes = a->classes ? a->classes : dl->ds.num_labels;
        if (c.num_classes < 2) failf("classification needs at least 2 classes", "--classes %d (dataset %s has %d labels)", c.num_classes, dl->path, dl->ds.num_labels);
    }
    if (!strcmp(a->method, "lora")) {
        c.lora_r = a->lora_rank;
        c.lora_alpha = a->lora_alpha;
        c.lora_targets = 0;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", a->lora_targets);
        for (char* s = strtok(buf, ","); s; s = strtok(NULL, ",")) {
            if (!strcmp(s, "qkv")) c.lora_targets |= LORA_QKV;
            else if (!strcmp(s, "proj")) c.lora_targets |= LORA_PROJ;
            else if (!strcmp(s, "fc")) c.lora_targets |= LORA_FC;
            else if (!strcmp(s, "fcproj")) c.lora_targets |= LORA_FCPROJ;
            else failf("targets: qkv, proj, fc, fcproj", "unknown --lora-targets name '%s'", s);
        }
        c.lora_first = 0;
        c.lora_last = c.L - 1;
        if (a->lora_layers) parse_layer_range(a->lora_layers, c.L, &c.lora_first, &c.lora_last, "--lora-layers");
    }
    if (!strcmp(a->method, "adapter")) c.adapter_dim = a->adapter_dim;
    if (!strcmp(a->method, "prefix")) c.prefix_len = a->prefix_len;
    if (memcmp(&c, &model->config, sizeof c)) gpt_set_peft(model, c, rng);
    if (peft) apply_freeze_list(model, "base", 0, "--method");  // parameter-efficient: the base is frozen
    for (int l = 0; l < c.L; l++)  // LoRA outside its layer range stays zero and frozen
        if (l < c.lora_first || l > c.lora_last)
            for (int i = PIDX(lora_qkv_a); i <= PIDX(lora_fcproj_b); i++) gpt_set_trainable(model, i, l, 0);
    if (a->freeze) apply_freeze_list(model, a->freeze, 0, "--freeze");
    if (a->unfreeze) apply_freeze_list(model, a->unfreeze, 1, "--unfreeze");
}

// Layer-wise LR decay: per-layer slices of block l get D^(L-1-l); the embeddings D^L; the rest 1.
static void set_layer_decay(GPT* model, float d) {
    int L = model->config.L;
    for (int i = 0; i < NUM_PARAMS; i++)
        for (int l = 0; l < L; l++) {
            float s = 1.0f;
            if (param_per_layer(i)) s = powf(d, (float)(L - 1 - l));
            else if (i == PIDX(wte) || i == PIDX(wpe)) s = powf(d, (float)L);
            model->lr_scale[(size_t)i * L + l] = s;
        }
}

// Class weights: a comma list of K numbers, or "auto" = N / (K * count_k) over the training labels.
static float* parse_class_weights(const char* spec, const DataLoader* dl, int K) {
    float* w = (float*)mallocCheck((size_t)K * sizeof(float));
    if (!strcmp(spec, "auto")) {
        size_t* count = (size_t*)callocCheck((size_t)K, sizeof(size_t));
        for (uint64_t e = 0; e < dl->ds.count; e++) {
            Example ex;
            if (dataset_get(&dl->ds, e, &ex) == 0 && ex.label >= 0 && ex.label < K) count[ex.label]++;
        }
        for (int k = 0; k < K; k++) {
            if (!count[k]) failf("give the weights by hand (--class-weights w1,w2,...)", "--class-weights auto: class %d never occurs in %s", k, dl->path);
            w[k] = (float)dl->ds.count / ((float)K * count[k]);
        }
        free(count);
        return w;
    }
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    int k = 0;
    for (char* s = strtok(buf, ","); s; s = strtok(NULL, ",")) {
        if (k == K) failf(NULL, "--class-weights has more than K=%d values", K);
        w[k++] = parse_float_arg("--class-weights", s);
        if (w[k - 1] < 0.0f) failf(NULL, "--class-weights must not be negative");
    }
    if (k != K) failf(NULL, "--class-weights has %d values, the head has K=%d classes", k, K);
    return w;
}

static void format_duration(char* out, size_t cap, double s) {
    if (s < 60) snprintf(out, cap, "%.0fs", s);
    else if (s < 3600) snprintf(out, cap, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(out, cap, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
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
    return c->lora_r || c->adapter_dim || c->prefix_len || c->num_classes;
}

// ---------------------------------------------------------------------------- the run report
// DIR/report.md: what a person reads after a run. The command, the model and method, how training went, the
// test result of the model chosen on validation (per-class table and confusion matrix for classification),
// and the other files of the run folder.
typedef struct {
    int steps_done, stopped_early;
    double seconds, ms_per_step, tokens_per_s, peak_mb, last_loss;
    const TrainState* st;
    const EvalResult* test;  // NULL when there was no --test
} RunSummary;

static void write_report(const Args* a, const GPT* model, size_t ntrain, const RunSummary* r) {
    const GPTConfig* c = &model->config;
    char path[1100];
    snprintf(path, sizeof path, "%s/report.md", a->out);
    SafeWriter w;
    safe_open(&w, path);
    FILE* f = w.f;
    fprintf(f, "# Run report: %s\n\n```\n", a->out);
    for (int i = 0; i < g_argc; i++) fprintf(f, "%s%s", g_argv[i], i + 1 < g_argc ? " " : "\n");
    fprintf(f, "```\n\n## Model\n\n| | |\n|---|---|\n");
    fprintf(f, "| shape | L=%d, NH=%d, C=%d, MLP width %d, V=%d, maxT=%d |\n", c->L, c->NH, c->C, mlp_width(c), c->V, c->maxT);
    fprintf(f, "| method | %s", a->method);
    if (c->lora_r) fprintf(f, " (r=%d, alpha=%g, layers %d-%d)", c->lora_r, c->lora_alpha, c->lora_first, c->lora_last);
    if (c->adapter_dim) fprintf(f, " (bottleneck %d)", c->adapter_dim);
    if (c->prefix_len) fprintf(f, " (prefix %d)", c->prefix_len);
    if (model->q8_memory) fprintf(f, " on an int8 base");
    fprintf(f, " |\n| head | %s |\n", c->num_classes ? "classification" : "language model");
    fprintf(f, "| trainable | %zu of %zu parameters (%.2f%%) |\n\n", ntrain, model->num_parameters,
            100.0 * ntrain / model->num_parameters);
    fprintf(f, "## Training\n\n| | |\n|---|---|\n");
    fprintf(f, "| steps | %lld%s |\n", (long long)r->st->step, r->stopped_early ? " (stopped early)" : "");
    fprintf(f, "| batch | %d x %d tokens, accumulation %d |\n", a->B, a->T, a->accum);
    fprintf(f, "| time | %.1f s, %.1f ms/step, %.0f tokens/s |\n", r->seconds, r->ms_per_step, r->tokens_per_s);
    fprintf(f, "| peak memory | %.0f MB (resident) |\n", r->peak_mb);
    fprintf(f, "| last train loss | %.4f |\n", r->last_loss);
    if (a->val && isfinite(r->st->best_metric))
        fprintf(f, "| best validation %s | %.4f at step %lld |\n", a->metric, r->st->best_metric, (long long)r->st->best_step);
    if (r->test) {
        const EvalResult* te = r->test;
        fprintf(f, "\n## Test (evaluated once, with the model chosen on validation at step %lld)\n\n", (long long)r->st->best_step);
        if (!c->num_classes) {
            fprintf(f, "loss %.4f, perplexity %.2f over %zu targets\n", te->loss, exp(te->loss), te->count);
        } else {
            int K = c->num_classes;
            ClsMetrics mt = cls_metrics(te->confusion, K);
            char(*names)[64] = (char(*)[64])mallocCheck((size_t)K * 64);
            read_label_names(a->test, names, K);
            fprintf(f, "accuracy **%.4f**, macro F1 %.4f, micro F1 %.4f, loss %.4f over %zu examples\n\n", te->accuracy,
                    mt.macro_f1, mt.micro_f1, te->loss, te->count);
            fprintf(f, "| class | precision | recall | F1 | support |\n|---|---|---|---|---|\n");
            for (int k = 0; k < K && k < 64; k++)
                fprintf(f, "| %s | %.4f | %.4f | %.4f | %zu |\n", names[k], mt.precision[k], mt.recall[k], mt.f1[k], mt.support[k]);
            fprintf(f, "\nConfusion matrix (rows: true class, columns: predicted):\n\n| |");
            for (int p = 0; p < K; p++) fprintf(f, " %s |", names[p]);
            fprintf(f, "\n|---|");
            for (int p = 0; p < K; p++) fprintf(f, "---|");
            fprintf(f, "\n");
            for (int g = 0; g < K; g++) {
                fprintf(f, "| **%s** |", names[g]);
                for (int p = 0; p < K; p++) fprintf(f, " %zu |", te->confusion[(size_t)g * K + p]);
                fprintf(f, "\n");
            }
            free(names);
        }
    }
    fprintf(f, "\n## Files\n\n- `curves.svg`: train and validation loss\n- `log.jsonl`: every step\n");
    fprintf(f, "- `model.bin`: the last model; `ckpt.bin`: it with the optimizer state (for --resume)\n");
    if (a->val) fprintf(f, "- `best.bin`: the model chosen on validation\n");
    if (has_finetuning_tensors(c)) fprintf(f, "- `adapter.bin`: the fine-tuning tensors alone (apply with --adapter)\n");
    if (r->test && c->num_classes)
        fprintf(f, "- `confusion_test.svg`: the confusion matrix\n- `errors.md`: misclassified test examples, "
                   "most confident first, and accuracy by class and by length\n");
    safe_close(&w);
}

#include "compress.c"  // quantize and prune commands

static int cmd_train(const Args* a) {
    GPT model;
    TrainState st = {0};
    uint64_t rng = a->seed ? a->seed : 1;
    model_from_args(&model, a, &st, &rng);
    if (!a->train) failf("give --train FILE (a dataset from ./dataprep)", "no training data");
    if (a->T > model.config.maxT) failf("use a smaller --seq", "--seq %d is longer than the model's maxT=%d", a->T, model.config.maxT);
    if (a->resume && (st.B != a->B || st.T != a->T))
        failf("resume with the same --batch and --seq as the original run", "%s: the run used B=%lld T=%lld, flags say B=%d T=%d",
              a->resume, (long long)st.B, (long long)st.T, a->B, a->T);
    if (!a->resume) st.rng = rng;
    DataLoader dl;  // reads global batches of N*B rows; this rank trains on rows r*B .. r*B+B-1
    loader_init(&dl, a->train, a->B * dist_world, a->T, a->shuffle, a->seed ^ 0x9E3779B97F4A7C15ull);
    static const char* kind_names[] = {"lm", "cls", "sft"};
    if (a->task && strcmp(a->task, kind_names[dl.kind]))
        failf("--task must match the data: token files are lm, dataprep cls files cls, dataprep sft files sft",
              "--task %s but %s is a %s dataset", a->task, a->train, kind_names[dl.kind]);
    if (a->resume) {  // put the loader back where the interrupted run left it
        dl.rng = st.data_epoch_rng;
        loader_make_order(&dl);
        dl.epoch = st.data_epoch;
        dl.rng = st.data_next_rng;
        dl.pos = st.data_pos;
    } else {
        if (dl.ds.vocab_size > model.config.V && model.q8_memory)
            failf("add the tokens to the fp32 model (train it once on this data), then quantize",
                  "%s has %d token ids but the int8 model only %d", a->train, dl.ds.vocab_size, model.config.V);
        if (dl.ds.vocab_size > model.config.V) {  // the data has tokens the model does not (dataprep --add-token)
            printf("growing the vocabulary from %d to %d for %s: the new embedding rows start as the mean of the others\n",
                   model.config.V, dl.ds.vocab_size, a->train);
            gpt_grow_vocab(&model, dl.ds.vocab_size);
        }
        setup_finetuning(&model, a, &dl, &rng);
    }
    const GPTConfig* c = &model.config;
    check_data_matches_model(&dl, &model);
    if (a->val) {  // the same check for the validation file, before any work
        DataLoader vl;
        loader_init(&vl, a->val, a->B, a->T, 0, 1);
        check_data_matches_model(&vl, &model);
        if (vl.kind != dl.kind) failf("give validation data of the same kind as --train", "%s and %s are different kinds of dataset", a->train, a->val);
        loader_free(&vl);
    }
    if (model.q8_memory && !strcmp(a->method, "full"))
        failf("int8 weights are frozen: train LoRA on the int8 base (--method lora), or fine-tune the fp32 model",
              "%s is an int8 model and --method is full", a->model ? a->model : "the model");
    uint8_t* pruned = NULL;  // --keep-sparsity: where the prunable matrices are zero now, stays zero
    if (a->keep_sparsity) {
        size_t n = 0;
        for (int k = 0; k < 4; k++) n += param_numel(c, PRUNABLE[k]);
        pruned = (uint8_t*)mallocCheck(n);
        for (int k = 0, j = 0; k < 4; k++)
            for (size_t e = 0; e < param_numel(c, PRUNABLE[k]); e++) pruned[j++] = model.params.t[PRUNABLE[k]][e] == 0.0f;
    }
    set_layer_decay(&model, a->layer_decay);
    model.label_smoothing = a->label_smoothing;
    model.lora_dropout = a->lora_dropout;
    model.dropout = a->dropout;
    if (a->class_weights) {
        if (!c->num_classes) failf("class weights are for classification data", "--class-weights given for a %s dataset", kind_names[dl.kind]);
        model.class_weights = parse_class_weights(a->class_weights, &dl, c->num_classes);
    }
    FILE* logf = NULL;
    if (a->out && dist_rank == 0) {
        char probe[1024];
        snprintf(probe, sizeof probe, "%s/.write_test", a->out);
        FILE* p = fopen(probe, "wb");
        if (!p) failf("create the folder first (mkdir -p) or choose another --out", "cannot write into --out %s: %s", a->out, strerror(errno));
        fclose(p);
        remove(probe);
    }
    char default_log[1100];
    if (a->out && !a->log) snprintf(default_log, sizeof default_log, "%s/log.jsonl", a->out);  // the run folder's log
    const char* log_path = a->log ? a->log : a->out ? default_log : NULL;
    if (log_path && dist_rank == 0) logf = fopen_check(log_path, a->resume ? "a" : "w");
    if (a->out && dist_rank == 0 && g_argv) {  // the config this run used: its command line
        char path[1100];
        snprintf(path, sizeof path, "%s/command.txt", a->out);
        FILE* f = fopen_check(path, a->resume ? "a" : "w");
        for (int i = 0; i < g_argc; i++) fprintf(f, "%s%s", g_argv[i], i + 1 < g_argc ? " " : "\n");
        fclose(f);
    }
    size_t BT = (size_t)a->B * a->T, ntrain = count_trainable(&model);
    printf("model: L=%d NH=%d C=%d V=%d (Vp=%d) maxT=%d, %zu parameters", c->L, c->NH, c->C, c->V, c->Vp, c->maxT,
           model.num_parameters);
    if (c->lora_r) printf(", LoRA r=%d alpha=%g on layers %d-%d", c->lora_r, c->lora_alpha, c->lora_first, c->lora_last);
    if (c->adapter_dim) printf(", adapters A=%d", c->adapter_dim);
    if (c->prefix_len) printf(", prefix P=%d", c->prefix_len);
    if (c->num_classes) printf(", %d-class head", c->num_classes);
    printf("\ntrainable: %zu parameters (%.2f%%), method %s\n", ntrain, 100.0 * ntrain / model.num_parameters, a->method);
    printf("data: %s (%s), %zu %s, %zu batches of B=%d x T=%d per epoch\n", a->train, kind_names[dl.kind], dl.num_items,
           dl.kind == DATA_LM ? "windows" : "examples", dl.num_batches, a->B * dist_world, a->T);
    if (dist_world > 1)
        printf("ranks: %d, each B=%d; AdamW state per rank %.1f MB (%s; %.1f MB in all)\n", dist_world, a->B,
               2.0 * 4 * (a->zero ? (double)(dist_hi(ntrain) - dist_lo(ntrain)) : (double)ntrain) / 1e6,
               a->zero ? "ZeRO-1: a 1/N shard" : "a full copy on each rank", 2.0 * 4 * ntrain / 1e6);
#ifdef _OPENMP
    printf("threads: %d (OpenMP)\n", omp_get_max_threads());
#else
    printf("threads: 1 (built without OpenMP)\n");
#endif
    Batch* micro = (Batch*)mallocCheck((size_t)a->accum * sizeof(Batch));
    for (int k = 0; k < a->accum; k++) batch_alloc(&micro[k], a->B, a->T);
    Batch global;  // the global batch the loader reads (N*B rows); micro[k] is this rank's slice of it
    batch_alloc(&global, a->B * dist_world, a->T);
    size_t zlo = 0, zhi = 0;  // ZeRO-1: this rank's range of the packed trainable floats
    if (!model.grads_memory) gpt_alloc_grads(&model);
    zlo = a->zero ? dist_lo(model.num_trainable) : 0;
    zhi = a->zero ? dist_hi(model.num_trainable) : model.num_trainable;
    if (a->zero && model.m_memory) {  // resumed: keep just this rank's shard of the optimizer state
        float* m = (float*)mallocCheck((zhi - zlo + 1) * sizeof(float));
        float* v = (float*)mallocCheck((zhi - zlo + 1) * sizeof(float));
        memcpy(m, model.m_memory + zlo, (zhi - zlo) * sizeof(float));
        memcpy(v, model.v_memory + zlo, (zhi - zlo) * sizeof(float));
        free(model.m_memory), free(model.v_memory);
        model.m_memory = m, model.v_memory = v;
    }

    int steps = a->steps;
    if (a->epochs > 0) steps = (int)ceil(a->epochs * dl.num_batches / a->accum);
    // early stopping / best model: the metric must exist for this task, and needs validation data
    int higher_better = strcmp(a->metric, "val_loss") != 0;
    if (higher_better && !c->num_classes)
        failf("accuracy and f1 are classification metrics; use --metric val_loss", "--metric %s for a %s dataset", a->metric, kind_names[dl.kind]);
    if ((a->early_stop || a->test) && !a->val) failf("give --val FILE to choose the best model on", "--early-stop/--test need validation data");
    if (a->test) {  // check the test file before any work
        DataLoader tl;
        loader_init(&tl, a->test, a->B, a->T, 0, 1);
        check_data_matches_model(&tl, &model);
        loader_free(&tl);
    }
    Series train_curve = {0}, val_curve = {0};  // for DIR/curves.svg
    float* best = NULL;  // the best parameters so far (by --metric on --val); DIR/best.bin whenever --val and --out
    if (a->early_stop || a->test) best = (float*)mallocCheck(model.num_parameters * sizeof(float));
    if (!a->resume) st.best_metric = NAN;
    if (best && a->resume && isfinite(st.best_metric)) {  // the best model so far was saved next to the checkpoint
        char path[1024];
        snprintf(path, sizeof path, "%s/best.bin", a->resume);
        GPT bm;
        load_model(&bm, path, NULL);
        if (bm.num_parameters != model.num_parameters) failf(NULL, "%s does not match the checkpoint", path);
        memcpy(best, bm.params_memory, model.num_parameters * sizeof(float));
        gpt_free(&bm);
    }
    AdamWConfig opt = {a->lr, a->beta1, a->beta2, a->eps, a->weight_decay};
    double t_start = now_seconds(), t_steps = 0.0;
    int first = (int)st.step, stopped_early = 0;
    EvalResult val = {NAN, NAN, 0, NULL};
    double last_loss = NAN;
    for (int step = first; step < steps; step++) {
        double t0 = now_seconds();
        // Gradient accumulation: fetch the K micro-batches, then forward/backward each with its loss weighted
        // by its share of all K batches' targets, so the summed gradient is exactly that of their mean loss
        // (one batch of K*B), up to fp32 rounding.
        double total = 0.0, loss = 0.0;
        for (int k = 0; k < a->accum; k++) {
            loader_next(&dl, global.x, global.y, global.len, global.lab, c->V);
            size_t r0 = (size_t)dist_rank * a->B;  // this rank's rows of the global batch
            memcpy(micro[k].x, global.x + r0 * a->T, BT * sizeof(int));
            memcpy(micro[k].y, global.y + r0 * a->T, BT * sizeof(int));
            memcpy(micro[k].len, global.len + r0, (size_t)a->B * sizeof(int));
            memcpy(micro[k].lab, global.lab + r0, (size_t)a->B * sizeof(int));
            total += batch_denominator(&model, dl.kind, &micro[k]);
        }
        dist_sum_doubles(&total, 1);  // targets over all ranks' micro-batches: the global mean's denominator
        if (total <= 0.0) failf("check the data: every target of this batch is masked", "step %d: the batch has no targets", step + 1);
        gpt_zero_grad(&model);
        for (int k = 0; k < a->accum; k++) {
            double share = batch_denominator(&model, dl.kind, &micro[k]) / total;
            if (share == 0.0) continue;
            model.training = 1;  // dropout on, with a seed drawn from the saved RNG (resumable), one per rank
            model.dropout_seed = ((uint64_t)random_u32(&st.rng) << 32 | random_u32(&st.rng)) ^ (uint64_t)dist_rank * 0x9E3779B97F4A7C15ull;
            batch_run(&model, dl.kind, &micro[k]);
            if (!isfinite(model.mean_loss)) failf("lower --lr, or check the data", "step %d: loss is %f", step + 1, model.mean_loss);
            loss += share * model.mean_loss;
            model.loss_scale = (float)share;
            gpt_backward(&model);
        }
        model.loss_scale = 1.0f;
        if (dist_world > 1) {  // each rank's gradient is its share of the global mean: summing them gives it
            dist_sum_floats(model.grads_memory, model.num_trainable);
            dist_sum_doubles(&loss, 1);
        }
        float norm = gpt_clip_grad_norm(&model, a->grad_clip);
        opt.lr = lr_at(step, a->lr, a->warmup, steps, a->schedule, a->min_lr_frac);
        gpt_adamw_update_range(&model, &opt, step + 1, zlo, zhi);
        if (a->zero) {  // every rank updated its shard; gather the updated parameters everywhere. The gradient
            // buffer is free until the next backward, so it carries them (packed) instead of a second copy.
            gpt_pack_trainable(&model, model.grads_memory, 1);
            dist_allgather_ranges(model.grads_memory, model.num_trainable);
            gpt_pack_trainable(&model, model.grads_memory, 0);
        }
        if (pruned) {  // AdamW moved pruned weights off zero (momentum, decay of others): put them back
            for (int k = 0, j = 0; k < 4; k++)
                for (size_t e = 0; e < param_numel(c, PRUNABLE[k]); e++, j++)
                    if (pruned[j]) model.params.t[PRUNABLE[k]][e] = 0.0f;
        }
        model.training = 0;
        double dt = now_seconds() - t0;
        t_steps += dt;
        int done = step + 1 - first;
        double tok_s = BT * a->accum * dist_world / dt;  // all ranks' tokens
        int is_eval = a->val && ((a->eval_every > 0 && (step + 1) % a->eval_every == 0) || step + 1 == steps);
        int improved = 0;
        double metric = NAN;
        series_add(&train_curve, step + 1, loss);
        last_loss = loss;
        if (is_eval) {
            val = evaluate(&model, a->val, a->B, a->T, a->val_batches);
            series_add(&val_curve, step + 1, val.loss);
            metric = val.loss;
            if (!strcmp(a->metric, "accuracy")) metric = val.accuracy;
            if (!strcmp(a->metric, "f1")) metric = cls_metrics(val.confusion, c->num_classes).macro_f1;
            free(val.confusion);
            val.confusion = NULL;
            improved = !isfinite(st.best_metric) || (higher_better ? metric > st.best_metric : metric < st.best_metric);
            if (improved) {
                st.best_metric = metric;
                st.best_step = step + 1;
                st.bad_evals = 0;
                if (best) memcpy(best, model.params_memory, model.num_parameters * sizeof(float));
                if (a->out && dist_rank == 0) {
                    char path[1024];
                    snprintf(path, sizeof path, "%s/best.bin", a->out);
                    save_checkpoint(&model, path, NULL);
                }
            } else {
                st.bad_evals++;
            }
        }
        if (step + 1 == steps || (a->print_every > 0 && (step + 1) % a->print_every == 0) || is_eval) {
            char eta[32];
            format_duration(eta, sizeof eta, t_steps / done * (steps - step - 1));
            char bar[21];  // 20 cells, one per 5% of the steps
            for (int k = 0; k < 20; k++) bar[k] = k < 20 * (step + 1) / steps ? '#' : '.';
            bar[20] = 0;
            printf("step %5d/%d [%s] | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | eta %s", step + 1, steps, bar, loss,
                   opt.lr, norm, tok_s, eta);
            if (is_eval) printf(" | val %.4f", val.loss);
            if (is_eval && c->num_classes) printf(" acc %.4f", val.accuracy);
            if (is_eval && best) printf("%s", improved ? " (best)" : "");
            printf("\n");
            fflush(stdout);
        }
        if (logf) {
            fprintf(logf, "{\"step\": %d, \"loss\": %.8f, \"lr\": %.6e, \"grad_norm\": %.6f, \"tokens_per_s\": %.1f", step + 1,
                    loss, opt.lr, norm, tok_s);
            if (is_eval) fprintf(logf, ", \"val_loss\": %.6f", val.loss);
            if (is_eval && c->num_classes) fprintf(logf, ", \"val_accuracy\": %.6f", val.accuracy);
            if (is_eval && !strcmp(a->metric, "f1")) fprintf(logf, ", \"val_f1\": %.6f", metric);
            fprintf(logf, "}\n");
            fflush(logf);
        }
        st.step = step + 1;
        int stop_now = step + 1 == a->stop_at;
        if (a->early_stop && st.bad_evals >= a->early_stop) {
            printf("early stop: no improvement of %s in %d evaluations; best %.6f at step %lld\n", a->metric, a->early_stop,
                   st.best_metric, (long long)st.best_step);
            stopped_early = 1;
        }
        if (a->out && (stop_now || stopped_early || step + 1 == steps || (a->save_every > 0 && (step + 1) % a->save_every == 0))) {
            float *m_shard = model.m_memory, *v_shard = model.v_memory;
            if (a->zero) {  // rank 0 writes the whole optimizer state: gather the shards first
                float* m_full = dist_rank == 0 ? (float*)mallocCheck(model.num_trainable * sizeof(float) + 4) : NULL;
                float* v_full = dist_rank == 0 ? (float*)mallocCheck(model.num_trainable * sizeof(float) + 4) : NULL;
                dist_gather_to_root(m_full, m_shard, model.num_trainable);
                dist_gather_to_root(v_full, v_shard, model.num_trainable);
                model.m_memory = m_full, model.v_memory = v_full;
            }
            st.B = a->B;
            st.T = a->T;
            st.data_epoch = dl.epoch;
            st.data_epoch_rng = dl.epoch_rng;
            st.data_next_rng = dl.rng;
            st.data_pos = dl.pos;
            char path[1024];
            snprintf(path, sizeof path, "%s/ckpt.bin", a->out);
            if (dist_rank == 0) save_checkpoint(&model, path, &st);
            if (a->zero) {
                free(model.m_memory), free(model.v_memory);
                model.m_memory = m_shard, model.v_memory = v_shard;
            }
        }
        if (stop_now) {
            printf("stopping after step %d as asked (--stop-at); continue with --resume\n", step + 1);
            break;
        }
        if (stopped_early) break;
    }
    if (a->out && dist_rank == 0) {
        char path[1024];
        snprintf(path, sizeof path, "%s/model.bin", a->out);
        save_checkpoint(&model, path, NULL);
        printf("wrote %s/model.bin (last) and %s/ckpt.bin", a->out, a->out);
        if (a->val) printf(" and %s/best.bin (best %s %.6f, step %lld)", a->out, a->metric, st.best_metric, (long long)st.best_step);
        if (has_finetuning_tensors(c)) {
            snprintf(path, sizeof path, "%s/adapter.bin", a->out);
            save_checkpoint_kind(&model, path, NULL, CKPT_ADAPTER);
            printf(" and %s/adapter.bin", a->out);
        }
        snprintf(path, sizeof path, "%s/curves.svg", a->out);
        svg_curves(path, "loss", &train_curve, "train loss", &val_curve, "val loss");
        printf("\nplot: %s (this run's steps)\n", path);
    }
    free(train_curve.x), free(train_curve.y), free(val_curve.x), free(val_curve.y);
    int n = (int)st.step - first;
    printf("done: %d steps in %.1fs, %.1f ms/step, %.0f tokens/s, trainable %zu, peak RSS %.0f MB\n", n,
           now_seconds() - t_start, n ? 1000.0 * t_steps / n : 0.0, n ? BT * a->accum * dist_world * n / t_steps : 0.0, ntrain,
           peak_rss_mb());
    EvalResult te = {NAN, NAN, 0, NULL};
    int tested = 0;
    if (a->test && (st.step == steps || stopped_early)) {
        // The test split is evaluated once, at the end, with the model chosen on validation.
        memcpy(model.params_memory, best, model.num_parameters * sizeof(float));
        te = evaluate(&model, a->test, a->B, a->T, 0);
        tested = 1;
        printf("test (best by %s, step %lld): loss %.6f", a->metric, (long long)st.best_step, te.loss);
        if (c->num_classes) {
            ClsMetrics mt = cls_metrics(te.confusion, c->num_classes);
            printf(" accuracy %.6f macro F1 %.6f", te.accuracy, mt.macro_f1);
        }
        printf(" over %zu %s\n", te.count, c->num_classes ? "examples" : "targets");
        if (c->num_classes && a->out && dist_rank == 0) {
            char path[1024];
            snprintf(path, sizeof path, "%s/confusion_test.svg", a->out);
            svg_confusion(path, te.confusion, c->num_classes);
            printf("plot: %s\n", path);
            snprintf(path, sizeof path, "%s/errors.md", a->out);
            error_analysis(&model, a->test, a->B, a->T, path, a->tokenizer);
            printf("error analysis: %s\n", path);
        }
        if (logf) {
            fprintf(logf, "{\"test_loss\": %.6f, \"best_step\": %lld", te.loss, (long long)st.best_step);
            if (c->num_classes) fprintf(logf, ", \"test_accuracy\": %.6f, \"test_macro_f1\": %.6f", te.accuracy,
                                        cls_metrics(te.confusion, c->num_classes).macro_f1);
            fprintf(logf, "}\n");
        }
    }
    if (a->out && dist_rank == 0) {
        RunSummary rs = {n, stopped_early, now_seconds() - t_start, n ? 1000.0 * t_steps / n : 0.0,
                         n ? BT * a->accum * dist_world * n / t_steps : 0.0, peak_rss_mb(), last_loss, &st,
                         tested ? &te : NULL};
        write_report(a, &model, ntrain, &rs);
        printf("report: %s/report.md\n", a->out);
    }
    free(te.confusion);
    if (logf && a->val) fprintf(logf, "{\"best_%s\": %.8f, \"best_step\": %lld}\n", a->metric, st.best_metric, (long long)st.best_step);
    if (logf) fclose(logf);
    free(best);
    for (int k = 0; k < a->accum; k++) batch_free(&micro[k]);
    free(micro);
    batch_free(&global);
    loader_free(&dl);
    free(pruned);
    gpt_free(&model);
    return 0;
}

// SFT: the share of examples whose greedy continuation of the prompt reproduces the reference response
// exactly (all of its tokens). Up to max_examples examples (all when <= 0), in file order.
static double sft_exact_match(GPT* model, const char* path, int max_examples, size_t* n_out) {
    Dataset ds;
    char err[512];
    if (dataset_open(&ds, path, err, sizeof err) != 0) failf(NULL, "%s", err);
    size_t n = ds.count, hits = 0, done = 0;
    if (max_examples > 0 && (size_t)max_examples < n) n = (size_t)max_examples;
    Sampler greedy;
    sampler_init(&greedy, model->config.V, 0.0f, 0, 1.0f, -1, 1);
    int maxT = model->config.maxT;
    int* ids = (int*)mallocCheck((size_t)maxT * 2 * sizeof(int));
    int* out = (int*)mallocCheck((size_t)maxT * 2 * sizeof(int));
    for (size_t e = 0; e < n; e++) {
        Example ex;
        if (dataset_get(&ds, e, &ex) != 0) failf("run dataprep again", "%s: example %zu is corrupt", path, e);
        int np = ex.label, nr = (int)ex.n - ex.label;
        if (np < 1 || nr < 1 || (int)ex.n > maxT) continue;  // no prompt, no response, or too long for the model
        for (size_t i = 0; i < ex.n; i++) ids[i] = dataset_id(ex.ids, ds.bytes_per_token, i);
        int len = generate(model, &greedy, ids, np, nr, out);
        int ok = len == (int)ex.n;
        for (int i = np; ok && i < len; i++) ok = out[i] == ids[i];
        hits += ok;
        done++;
    }
    free(ids);
    free(out);
    sampler_free(&greedy);
    dataset_close(&ds);
    if (n_out) *n_out = done;
    return done ? (double)hits / done : NAN;
}

static int cmd_eval(const Args* a) {
    GPT model;
    uint64_t rng = a->seed;
    model_from_args(&model, a, NULL, &rng);
    if (!a->data) failf("give --data FILE (a dataset from ./dataprep)", "nothing to evaluate");
    EvalResult r = evaluate(&model, a->data, a->B, a->T, a->max_batches);
    int K = model.config.num_classes;
    if (K) {
        ClsMetrics mt = cls_metrics(r.confusion, K);
        printf("{\"loss\": %.6f, \"accuracy\": %.6f, \"macro_f1\": %.6f, \"micro_f1\": %.6f, \"examples\": %zu, \"per_class\": [",
               r.loss, r.accuracy, mt.macro_f1, mt.micro_f1, r.count);
        for (int k = 0; k < K && k < 64; k++)
            printf("%s{\"class\": %d, \"precision\": %.6f, \"recall\": %.6f, \"f1\": %.6f, \"support\": %zu}", k ? ", " : "", k,
                   mt.precision[k], mt.recall[k], mt.f1[k], mt.support[k]);
        printf("], \"confusion\": [");
        for (int g = 0; g < K; g++) {
            printf("%s[", g ? ", " : "");
            for (int p = 0; p < K; p++) printf("%s%zu", p ? ", " : "", r.confusion[(size_t)g * K + p]);
            printf("]");
        }
        printf("]}\n");
        free(r.confusion);
    } else {
        printf("{\"loss\": %.6f, \"ppl\": %.4f, \"tokens\": %zu", r.loss, exp(r.loss), r.count);
        Dataset probe;
        char err[512];
        if (a->exact_match && dataset_open(&probe, a->data, err, sizeof err) == 0) {
            int sft = probe.kind == DS_SFT && probe.magic == EXAMPLES_MAGIC;
            dataset_close(&probe);
            if (!sft) failf("exact match compares generated responses: it needs an SFT dataset", "--exact-match on %s", a->data);
            size_t n = 0;
            double em = sft_exact_match(&model, a->data, a->exact_match, &n);
            printf(", \"exact_match\": %.6f, \"generated\": %zu", em, n);
        }
        printf("}\n");
    }
    gpt_free(&model);
    return 0;
}

static int cmd_sample(const Args* a) {
    GPT model;
    uint64_t rng = a->seed ? a->seed : 1;
    model_from_args(&model, a, NULL, &rng);
    if (model.config.num_classes) failf("sampling needs the LM head", "this model has a %d-class head", model.config.num_classes);
    if (!a->tokens && !a->prompt) failf("give --tokens \"id id ...\", or --prompt \"text\" with --tokenizer", "no prompt");
    if (a->prompt && !a->tokenizer) failf("text needs the tokenizer the model was trained with", "--prompt without --tokenizer");
    int cap = 16, n = 0;
    int* prompt = (int*)mallocCheck((size_t)cap * sizeof(int));
    Tokenizer tok;
    if (a->tokenizer) tokenizer_load_or_die(&tok, a->tokenizer);
    if (a->prompt) {  // text -> ids
        IntVec ids = {0};
        tokenizer_encode(&tok, a->prompt, strlen(a->prompt), 0, &ids);
        for (size_t i = 0; i < ids.len; i++) {
            if (ids.data[i] >= model.config.V)
                failf("use the tokenizer the model was trained with", "prompt token %d out of range [0, %d)", ids.data[i], model.config.V);
            if (n == cap) prompt = (int*)realloc(prompt, (size_t)(cap *= 2) * sizeof(int));
            prompt[n++] = ids.data[i];
        }
        free(ids.data);
    }
    const char* s = a->prompt ? "" : a->tokens;
    while (*s) {
        char* e;
        long id = strtol(s, &e, 10);
        if (e == s) {
            if (*s == ' ' || *s == ',' || *s == '\n' || *s == '\t') { s++; continue; }
            failf("--tokens takes space-separated integers", "bad character '%c' in --tokens", *s);
        }
        if (id < 0 || id >= model.config.V)
            failf("the prompt must use the model's vocabulary", "prompt token %ld out of range [0, %d)", id, model.config.V);
        if (n == cap) prompt = (int*)realloc(prompt, (size_t)(cap *= 2) * sizeof(int));
        prompt[n++] = (int)id;
        s = e;
    }
    if (n == 0) failf(NULL, "the prompt is empty");
    if (a->gen_steps < 0) failf(NULL, "--gen %d must not be negative", a->gen_steps);
    if (n > model.config.maxT) fprintf(stderr, "note: the prompt has %d tokens; the model sees its last maxT = %d\n", n, model.config.maxT);
    // stop at <|endoftext|> (50256 in GPT-2) when there is a tokenizer, unless --stop says otherwise
    int stop = a->stop_set ? a->stop_token : a->tokenizer ? tok.eot_id : -1;
    Sampler sampler;
    sampler_init(&sampler, model.config.V, a->temperature, a->top_k, a->top_p, stop, rng);
    int* out = (int*)mallocCheck((size_t)(n + a->gen_steps) * sizeof(int));
    double t0 = now_seconds();
    int len = generate(&model, &sampler, prompt, n, a->gen_steps, out);
    double dt = now_seconds() - t0;
    fprintf(stderr, "sample: %d prompt tokens, %d generated in %.3f s: %.1f tokens/s (KV cache)\n", n, len - n, dt,
            (len - n) / (dt > 0 ? dt : 1e-9));
    if (a->tokenizer) {  // ids -> text, without the stop token
        ByteVec text = {0};
        tokenizer_decode(&tok, out, (size_t)(len > n && out[len - 1] == stop ? len - 1 : len), &text, NULL);
        fwrite(text.data, 1, text.len, stdout);
        printf("\n");
        free(text.data);
        tokenizer_free(&tok);
    } else {
        for (int i = 0; i < len; i++) printf("%d%s", out[i], i + 1 < len ? " " : "\n");
    }
    free(prompt);
    free(out);
    sampler_free(&sampler);
    gpt_free(&model);
    return 0;
}

// ./train classify: each line of text in, its predicted class out, as "label<TAB>probability<TAB>text".
// Lines are read --batch at a time and run as one padded batch: gpt_forward_cls reads each row at its own
// last token, and causal attention keeps the padding after it from changing anything. Empty lines are
// skipped; a line longer than maxT tokens keeps its first maxT, as training truncates examples.
// Label names: --labels a,b,... or dataprep's PREFIX_labels.txt (--labels FILE); without it the class ids.
static int cmd_classify(const Args* a) {
    GPT model;
    uint64_t rng = a->seed ? a->seed : 1;
    model_from_args(&model, a, NULL, &rng);
    int K = model.config.num_classes, maxT = model.config.maxT, B = a->B;
    if (!K) failf("classify needs a model with a class head (trained on ./dataprep cls data)", "this model has the LM head");
    if (!a->tokenizer) failf("give the tokenizer the model was trained with", "classify needs --tokenizer");
    char(*names)[64] = (char(*)[64])mallocCheck((size_t)K * 64);
    for (int k = 0; k < K; k++) snprintf(names[k], 64, "%d", k);
    if (a->labels && strchr(a->labels, ',')) {  // a comma list, one name per class
        int k = 0;
        for (const char* s = a->labels; *s; k++) {
            size_t m = strcspn(s, ",");
            if (k < K) snprintf(names[k], 64, "%.*s", (int)(m < 63 ? m : 63), s);
            s += m + (s[m] == ',');
        }
        if (k != K) failf("give one name per class, in class-id order", "--labels has %d names, the model's head %d classes", k, K);
    } else if (a->labels) {
        read_label_file(fopen_check(a->labels, "r"), names, K);
    }
    Tokenizer tok;
    tokenizer_load_or_die(&tok, a->tokenizer);
    FILE* in = !a->input || !strcmp(a->input, "-") ? stdin : fopen_check(a->input, "r");
    char** text = (char**)callocCheck((size_t)B, sizeof(char*));  // the batch's lines (getline grows them)
    size_t* text_cap = (size_t*)callocCheck((size_t)B, sizeof(size_t));
    int* rows = (int*)mallocCheck((size_t)B * maxT * sizeof(int));  // each line's ids, maxT apart
    int* x = (int*)mallocCheck((size_t)B * maxT * sizeof(int));     // the batch (nb, T)
    int* len = (int*)mallocCheck((size_t)B * sizeof(int));
    IntVec ids = {0};
    size_t line = 0, done = 0;
    double t0 = now_seconds();
    for (;;) {
        int nb = 0, T = 1;
        while (nb < B && getline(&text[nb], &text_cap[nb], in) >= 0) {
            line++;
            text[nb][strcspn(text[nb], "\r\n")] = 0;
            ids.len = 0;
            tokenizer_encode(&tok, text[nb], strlen(text[nb]), 0, &ids);
            int n = (int)ids.len;
            if (n == 0) continue;  // an empty line
            if (n > maxT) {
                fprintf(stderr, "note: line %zu has %d tokens; classified on its first maxT = %d\n", line, n, maxT);
                n = maxT;
            }
            for (int i = 0; i < n; i++) {
                if (ids.data[i] >= model.config.V)
                    failf("use the tokenizer the model was trained with", "line %zu: token %d out of range [0, %d)", line, ids.data[i], model.config.V);
                rows[(size_t)nb * maxT + i] = ids.data[i];
            }
            len[nb] = n;
            if (n > T) T = n;
            nb++;
        }
        if (!nb) break;
        for (int b = 0; b < nb; b++)  // (nb, T), each line padded with token 0 after its end
            for (int i = 0; i < T; i++) x[(size_t)b * T + i] = i < len[b] ? rows[(size_t)b * maxT + i] : 0;
        gpt_forward_cls(&model, x, len, NULL, nb, T);
        for (int b = 0; b < nb; b++) {
            const float* p = model.acts.cls_probs + (size_t)b * K;
            int best = 0;
            for (int k = 1; k < K; k++) if (p[k] > p[best]) best = k;
            printf("%s\t%.4f\t%s\n", names[best], p[best], text[b]);
        }
        fflush(stdout);
        done += (size_t)nb;
    }
    double dt = now_seconds() - t0;
    fprintf(stderr, "classify: %zu lines in %.3f s (%.1f lines/s)\n", done, dt, done / (dt > 0 ? dt : 1e-9));
    if (in != stdin) fclose(in);
    for (int b = 0; b < B; b++) free(text[b]);
    free(text), free(text_cap), free(rows), free(x), free(len), free(ids.data), free(names);
    tokenizer_free(&tok);
    gpt_free(&model);
    return 0;
}

// ---------------------------------------------------------------------------- hyperparameter sweep
// ./train sweep --grid "lr=1e-3,3e-3 lora-rank=4,8" --out DIR [--random N] [--test FILE] [--metric M] ...
// runs ./train once per point of the grid (or N points drawn from it, seeded), each with the remaining flags
// plus its own, in DIR/run_NNN/ (its log, stdout, best.bin). A run already finished (DIR/run_NNN/result.txt)
// is not run again, so an interrupted sweep continues where it stopped; a failed run is recorded and the
// sweep goes on. The best run on validation (--metric) is then evaluated on --test, and only that one.
// Results: DIR/results.csv and DIR/results.md.
#include <sys/stat.h>
#include <sys/wait.h>

typedef struct {
    char name[64];
    char* values[32];
    int n;
} GridAxis;

// Runs argv with stdout and stderr to log_path; returns the exit status (-1 if it could not run).
static int run_logged(char** argv, const char* log_path) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        FILE* f = fopen(log_path, "w");
        if (f) {
            dup2(fileno(f), 1);
            dup2(fileno(f), 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The value of "best_<metric>" from a run's JSONL log, NaN if absent.
static double read_best_metric(const char* log_path, const char* metric) {
    FILE* f = fopen(log_path, "r");
    if (!f) return NAN;
    char line[2048], key[64];
    snprintf(key, sizeof key, "\"best_%s\": ", metric);
    double v = NAN;
    while (fgets(line, sizeof line, f)) {
        char* s = strstr(line, key);
        if (s) v = strtod(s + strlen(key), NULL);
    }
    fclose(f);
    return v;
}

static int cmd_sweep(int argc, char** argv) {
    const char *grid = NULL, *out = NULL, *test = NULL, *metric = "val_loss", *val = NULL, *train = NULL;
    const char *batch = "4", *seq = "64";  // for the test evaluation: the defaults, or the best run's
    int random_n = 0;
    uint64_t seed = 1337;
    char* pass[256];  // flags forwarded to every run
    int np = 0;
    for (int i = 2; i < argc; i++) {
        if (i + 1 >= argc) failf("see ./train --help", "flag %s needs a value", argv[i]);
        const char *f = argv[i], *v = argv[i + 1];
        if (!strcmp(f, "--grid")) grid = v;
        else if (!strcmp(f, "--out")) out = v;
        else if (!strcmp(f, "--random")) random_n = parse_int_arg(f, v);
        else if (!strcmp(f, "--test")) test = v;
        else {
            if (!strcmp(f, "--metric")) metric = v;
            if (!strcmp(f, "--seed")) seed = strtoull(v, NULL, 10);
            if (!strcmp(f, "--val")) val = v;
            if (!strcmp(f, "--train")) train = v;
            if (!strcmp(f, "--log") || !strcmp(f, "--resume"))
                failf("each run gets its own log and folder under the sweep's --out", "%s is not allowed in a sweep", f);
            if (np + 2 > 200) failf(NULL, "too many flags");
            pass[np++] = argv[i], pass[np++] = argv[i + 1];
        }
        i++;
    }
    if (!grid || !out) failf("for example: ./train sweep --grid \"lr=1e-3,3e-3 lora-rank=4,8\" --out sweep1 --train ... --val ...",
                             "sweep needs --grid and --out");
    if (!val) failf("the sweep picks the best run on validation data", "sweep needs --val FILE");
    // parse the grid: space-separated axes "flag=v1,v2,..."
    GridAxis axes[16];
    int na = 0;
    char* gbuf = strdup(grid);
    for (char* tok = strtok(gbuf, " "); tok; tok = strtok(NULL, " ")) {
        char* eq = strchr(tok, '=');
        if (!eq || na == 16) failf("axes look like lr=1e-3,3e-3", "bad --grid axis '%s'", tok);
        *eq = 0;
        GridAxis* ax = &axes[na++];
        snprintf(ax->name, sizeof ax->name, "--%s", tok);
        ax->n = 0;
        for (char* s = eq + 1; s && *s && ax->n < 32;) {
            char* comma = strchr(s, ',');
            if (comma) *comma = 0;
            ax->values[ax->n++] = s;
            s = comma ? comma + 1 : NULL;
        }
        if (!ax->n) failf(NULL, "grid axis %s has no values", ax->name);
    }
    size_t total = 1;
    for (int a = 0; a < na; a++) total *= (size_t)axes[a].n;
    // which points: all, or random_n of them drawn without replacement (seeded)
    size_t* pts = (size_t*)mallocCheck(total * sizeof(size_t));
    for (size_t i = 0; i < total; i++) pts[i] = i;
    size_t npts = total;
    if (random_n > 0 && (size_t)random_n < total) {
        uint64_t r = seed ^ 0xA5A5A5A5ull;
        for (size_t i = 0; i < (size_t)random_n; i++) {
            size_t j = i + random_u32(&r) % (total - i), tmp = pts[i];
            pts[i] = pts[j], pts[j] = tmp;
        }
        npts = (size_t)random_n;
    }
    // build every run's command line and check it parses before any work starts
    char self[1024];
    // each run executes this program again: argv[0], or $FINETUNE_TRAIN when set (a wrapper that runs it under
    // an emulator: qemu-user without binfmt_misc cannot exec the binary argv[0] names, see dev/test_isa.sh)
    const char* prog = getenv("FINETUNE_TRAIN");
    snprintf(self, sizeof self, "%s", prog && prog[0] ? prog : argv[0]);
    char*** runs = (char***)mallocCheck(npts * sizeof(char**));
    for (size_t p = 0; p < npts; p++) {
        char** av = (char**)callocCheck((size_t)np + 2 * na + 8, sizeof(char*));
        int k = 0;
        av[k++] = self;
        for (int i = 0; i < np; i++) av[k++] = pass[i];
        size_t idx = pts[p];
        for (int a = na - 1; a >= 0; a--) {  // mixed-radix digits of the point index
            av[k++] = axes[a].name;
            av[k++] = axes[a].values[idx % (size_t)axes[a].n];
            idx /= (size_t)axes[a].n;
        }
        runs[p] = av;
        Args check = parse_args(k, av);  // an unknown flag or bad value fails here, before any run
        (void)check;
    }
    if (train && strcmp(metric, "val_loss")) {  // a metric the task lacks fails before any run, too
        DataLoader dl;
        loader_init(&dl, train, 1, 1, 0, 1);
        if (dl.kind != DATA_CLS) failf("accuracy and f1 are classification metrics", "--metric %s for a non-classification dataset", metric);
        loader_free(&dl);
    }
    mkdir(out, 0755);
    double* results = (double*)mallocCheck(npts * sizeof(double));
    int* status = (int*)mallocCheck(npts * sizeof(int));
    int higher = strcmp(metric, "val_loss") != 0;
    long best = -1;
    for (size_t p = 0; p < npts; p++) {
        char dir[1100], log[1200], res[1200], so[1200];
        snprintf(dir, sizeof dir, "%s/run_%03zu", out, p);
        snprintf(log, sizeof log, "%s/log.jsonl", dir);
        snprintf(res, sizeof res, "%s/result.txt", dir);
        snprintf(so, sizeof so, "%s/stdout.txt", dir);
        mkdir(dir, 0755);
        FILE* rf = fopen(res, "r");
        if (rf) {  // finished in an earlier invocation
            if (fscanf(rf, "%d %lf", &status[p], &results[p]) != 2) status[p] = -1, results[p] = NAN;
            fclose(rf);
            printf("run %03zu: done before (%s %.6f)\n", p, metric, results[p]);
        } else {
            int k = 0;
            while (runs[p][k]) k++;
            runs[p][k++] = (char*)"--out", runs[p][k++] = dir, runs[p][k++] = (char*)"--log", runs[p][k++] = log;
            printf("run %03zu:", p);
            for (int i = 1 + np; i < k - 4; i++) printf(" %s", runs[p][i]);
            printf(" ... ");
            fflush(stdout);
            status[p] = run_logged(runs[p], so);
            runs[p][k - 4] = NULL;  // dir and log are this iteration's buffers: drop them from the saved argv
            results[p] = status[p] == 0 ? read_best_metric(log, metric) : NAN;
            printf("%s %s %.6f\n", status[p] == 0 ? "ok" : "FAILED (see stdout.txt)", metric, results[p]);
            rf = fopen(res, "w");
            if (rf) fprintf(rf, "%d %.10g\n", status[p], results[p]), fclose(rf);
        }
        if (status[p] == 0 && isfinite(results[p]) &&
            (best < 0 || (higher ? results[p] > results[best] : results[p] < results[best])))
            best = (long)p;
    }
    double test_metric = NAN;
    char test_line[2048] = "";
    if (best >= 0 && test) {  // only the chosen run sees the test set, with that run's --batch and --seq
        for (int i = 1; runs[best][i] && runs[best][i + 1]; i++) {
            if (!strcmp(runs[best][i], "--batch")) batch = runs[best][i + 1];
            if (!strcmp(runs[best][i], "--seq")) seq = runs[best][i + 1];
        }
        char model[1200], so[1200];
        snprintf(model, sizeof model, "%s/run_%03ld/best.bin", out, best);
        snprintf(so, sizeof so, "%s/test.txt", out);
        char* av[] = {self, (char*)"eval", (char*)"--model", model, (char*)"--data", (char*)test, (char*)"--batch",
                      (char*)batch, (char*)"--seq", (char*)seq, NULL};
        int rc = run_logged(av, so);
        FILE* f = fopen(so, "r");
        if (f && fgets(test_line, sizeof test_line, f)) {
            const char* key = strcmp(metric, "val_loss") ? "\"accuracy\": " : "\"loss\": ";
            char* s = strstr(test_line, key);
            if (s) test_metric = strtod(s + strlen(key), NULL);
        }
        if (f) fclose(f);
        if (rc) printf("test evaluation failed, see %s\n", so);
    }
    // the results table
    char path[1100];
    snprintf(path, sizeof path, "%s/results.csv", out);
    SafeWriter w;
    safe_open(&w, path);
    fprintf(w.f, "run");
    for (int a = 0; a < na; a++) fprintf(w.f, ",%s", axes[a].name + 2);
    fprintf(w.f, ",status,%s,test\n", metric);
    for (size_t p = 0; p < npts; p++) {
        fprintf(w.f, "%03zu", p);
        size_t idx = pts[p];
        const char* v[16];
        for (int a = na - 1; a >= 0; a--) v[a] = axes[a].values[idx % (size_t)axes[a].n], idx /= (size_t)axes[a].n;
        for (int a = 0; a < na; a++) fprintf(w.f, ",%s", v[a]);
        fprintf(w.f, ",%s,%.6f,", status[p] == 0 ? "ok" : "failed", results[p]);
        if ((long)p == best && test) fprintf(w.f, "%.6f", test_metric);
        fprintf(w.f, "\n");
    }
    safe_close(&w);
    snprintf(path, sizeof path, "%s/results.md", out);
    safe_open(&w, path);
    fprintf(w.f, "| run |");
    for (int a = 0; a < na; a++) fprintf(w.f, " %s |", axes[a].name + 2);
    fprintf(w.f, " status | best %s (val) | test |\n|---|", metric);
    for (int a = 0; a < na; a++) fprintf(w.f, "---|");
    fprintf(w.f, "---|---|---|\n");
    for (size_t p = 0; p < npts; p++) {
        fprintf(w.f, "| %03zu%s |", p, (long)p == best ? " (best)" : "");
        size_t idx = pts[p];
        const char* v[16];
        for (int a = na - 1; a >= 0; a--) v[a] = axes[a].values[idx % (size_t)axes[a].n], idx /= (size_t)axes[a].n;
        for (int a = 0; a < na; a++) fprintf(w.f, " %s |", v[a]);
        fprintf(w.f, " %s | %.6f | ", status[p] == 0 ? "ok" : "failed", results[p]);
        if ((long)p == best && test) fprintf(w.f, "%.6f", test_metric);
        fprintf(w.f, " |\n");
    }
    safe_close(&w);
    if (best >= 0) printf("best: run %03ld, %s %.6f%s", best, metric, results[best], test ? "" : "\n");
    if (best >= 0 && test) printf("; test %s %.6f\n", strcmp(metric, "val_loss") ? "accuracy" : "loss", test_metric);
    printf("results: %s/results.csv and %s/results.md\n", out, out);
    free(gbuf), free(pts), free(results), free(status);
    for (size_t p = 0; p < npts; p++) free(runs[p]);
    free(runs);
    return best >= 0 ? 0 : 1;
}

static int cmd_export(const Args* a) {
    GPT model;
    uint64_t rng = 1;
    model_from_args(&model, a, NULL, &rng);
    GPTConfig* c = &model.config;
    if (!a->out || !a->format) failf("for example: ./train export --model run/model.bin --format safetensors --out hf_model",
                                     "export needs --format and --out");
    if (!strcmp(a->format, "peft")) {  // the LoRA itself, unmerged
        if (a->merge) failf("peft exports the LoRA tensors themselves; drop --merge", "--merge 1 with --format peft");
        export_peft(&model, a->out, a->lora_dropout);
        printf("wrote %s/adapter_model.safetensors and %s/adapter_config.json\n", a->out, a->out);
        gpt_free(&model);
        return 0;
    }
    if (c->lora_r) {
        if (!a->merge) failf("add --merge 1 to fold LoRA into the weights (W += alpha/r B A)", "the model has LoRA tensors");
        if (model.q8_memory) failf("merge into the fp32 model, then quantize", "LoRA cannot be merged into int8 weights");
        gpt_lora_merge(&model, 1.0f);
        c->lora_r = 0;  // the merged weights alone now compute the same function
    }
    if (c->adapter_dim || c->prefix_len)
        failf("adapters and prefixes have no place in GPT-2's layout; export the base, or keep our format",
              "the model has %s", c->adapter_dim ? "adapters" : "a prefix");
    if (!strcmp(a->format, "safetensors")) {
        export_hf(&model, a->out);
        printf("wrote %s/model.safetensors and %s/config.json\n", a->out, a->out);
    } else if (!strcmp(a->format, "llmc")) {
        if (c->num_classes) failf("llm.c's format has no classification head; use --format safetensors", "the model has a %d-class head", c->num_classes);
        export_llmc(&model, a->out);
        printf("wrote %s\n", a->out);
    } else if (!strcmp(a->format, "gguf")) {
        const char* dt = a->dtype ? a->dtype : model.q8_memory ? "q8_0" : "f32";
        if (strcmp(dt, "f32") && strcmp(dt, "q8_0")) failf("use --dtype f32 or q8_0", "unknown --dtype '%s'", dt);
        export_gguf(&model, a->out, !strcmp(dt, "q8_0"), a->tokenizer);
        printf("wrote %s (%s%s)\n", a->out, dt, a->tokenizer ? ", with the tokenizer" : ", no tokenizer: llama.cpp needs --tokenizer");
    } else {
        failf("formats: safetensors, llmc, peft, gguf", "unknown --format '%s'", a->format);
    }
    gpt_free(&model);
    return 0;
}

static int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

// Model FLOPs of one training step, by the usual convention (Kaplan et al. / PaLM appendix B): 6 per
// parameter per token for the matmuls (2 forward, 4 backward; the LM head counts, the position embedding
// does not), plus 6 * 2 * L * T * C per token for attention scores and weighted sums (causal masking not
// subtracted). Achieved GFLOP/s = this / step time.
// Full fine-tuning (every weight trained): 6 per parameter per token. train.cu's bench uses this one.
static double train_flops_full(const GPTConfig* c, int B, int T) {
    double n = (double)num_parameters(c) - (double)c->maxT * c->C;
    return 6.0 * n * B * T + 12.0 * c->L * (double)T * c->C * B * T;
}
// Any method: a frozen parameter gets no weight gradient, so it costs 4, not 6 (LoRA: 4 per base weight,
// 6 per adapter weight). The same as train_flops_full when everything trains.
static double train_flops_per_step(const GPT* model, int B, int T) {
    const GPTConfig* c = &model->config;
    double wpe = (double)c->maxT * c->C;
    double n = (double)num_parameters(c) - wpe;
    double ntrain = (double)count_trainable(model) - (model->trainable[(size_t)PIDX(wpe) * c->L] ? wpe : 0.0);
    return (4.0 * n + 2.0 * ntrain) * B * T + 12.0 * c->L * (double)T * c->C * B * T;
}

// The machine's FP32 peak as measured, not as specified: GFLOP/s of a loop that does nothing but
// independent multiply-adds, run for about `seconds` on `threads` threads (OpenMP). 12 accumulators of 16
// floats: with -O3 -march=native each row is one AVX-512 register and the loop body 12 FMA instructions,
// enough independent chains to keep both FMA units busy (latency 4 cycles x 2 units needs at least 8).
// x -> x * m + a converges to 1: no overflow, no denormals. Each thread counts its own rounds until the time
// is up (no barrier between rounds to wait on). The best of 5 tries of seconds/5 each: a peak is what the
// machine can do, and a try that another process interrupted says less about that. The reference for
// "% of peak" in the bench.
#define PEAK_ACC 12
#define PEAK_W 16
static double fma_peak_try(int threads, double seconds) {
    const long iters = 1 << 18;  // one round: 2 * 12 * 16 * 2^18 = 100 MFLOP, ~1 ms
    volatile float sink = 0.0f;  // the results are used, so the loop is not optimised away
    double rounds = 0.0, xsum = 0.0, t0 = now_seconds();
    (void)threads;  // without OpenMP: one thread
#pragma omp parallel num_threads(threads) reduction(+ : rounds, xsum)
    {
        float x[PEAK_ACC][PEAK_W];
        for (int i = 0; i < PEAK_ACC; i++)
            for (int j = 0; j < PEAK_W; j++) x[i][j] = 1e-3f * (float)(i + j);
        do {
            for (long it = 0; it < iters; it++)
                for (int i = 0; i < PEAK_ACC; i++)
                    for (int j = 0; j < PEAK_W; j++) x[i][j] = x[i][j] * 0.999999f + 1e-6f;
            rounds += 1.0;
        } while (now_seconds() - t0 < seconds);
        for (int i = 0; i < PEAK_ACC; i++)
            for (int j = 0; j < PEAK_W; j++) xsum += x[i][j];
    }
    double t1 = now_seconds();
    sink = (float)xsum;
    (void)sink;
    return 2.0 * PEAK_ACC * PEAK_W * (double)iters * rounds / (t1 - t0) / 1e9;
}
static double fma_peak_gflops(int threads, double seconds) {
    double best = 0.0;
    for (int i = 0; i < 5; i++) {
        double g = fma_peak_try(threads, seconds / 5);
        if (g > best) best = g;
    }
    return best;
}

static int cmd_bench(const Args* a) {
    printf("matmul tile: %s\n", gemm_tile);  // which register tile this build's -march got (see "matmul" in model.h)
    GPT model;
    uint64_t rng = a->seed ? a->seed : 1;
    model_from_args(&model, a, NULL, &rng);
    DataLoader lm = {.kind = DATA_LM};  // random tokens: the LM task
    setup_finetuning(&model, a, &lm, &rng);
    const GPTConfig* c = &model.config;
    size_t BT = (size_t)a->B * a->T;
    int* x = (int*)mallocCheck(BT * sizeof(int));
    int* y = (int*)mallocCheck(BT * sizeof(int));
    for (size_t i = 0; i < BT; i++) {
        x[i] = (int)(random_u32(&rng) % (uint32_t)c->V);
        y[i] = (int)(random_u32(&rng) % (uint32_t)c->V);
    }
    AdamWConfig opt = {a->lr, a->beta1, a->beta2, a->eps, a->weight_decay};
    double t_total = 0.0, t_fwd = 0.0, t_bwd = 0.0, t_opt = 0.0, cpu0 = 0.0;
    int n = a->steps > 0 ? a->steps : 1;
    double* per_step = (double*)callocCheck(4 * (size_t)n, sizeof(double));  // [what][step]: the 4 times below
    float loss = NAN;
    for (int s = 0; s <= a->steps; s++) {  // step 0 is the warmup: first-touch of every buffer, not timed
        if (s == 1) {
            struct timespec ts;
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
            cpu0 = ts.tv_sec + ts.tv_nsec * 1e-9;
#ifdef KERNEL_TIMERS
            kt_reset();
#endif
        }
        double t0 = now_seconds();
        gpt_forward(&model, x, y, a->B, a->T);
        loss = model.mean_loss;
        double t1 = now_seconds();
        gpt_zero_grad(&model);
        gpt_backward(&model);
        double t2 = now_seconds();
        gpt_clip_grad_norm(&model, a->grad_clip);
        gpt_adamw_update(&model, &opt, s + 1);
        double t3 = now_seconds();
        if (s > 0) {
            t_total += t3 - t0;
            t_fwd += t1 - t0;
            t_bwd += t2 - t1;
            t_opt += t3 - t2;
            double t[4] = {t3 - t0, t1 - t0, t2 - t1, t3 - t2};
            for (int w = 0; w < 4; w++) per_step[(size_t)w * n + s - 1] = 1000.0 * t[w];
        }
    }
    // medians over the timed steps (each part on its own, so they need not add up): a step slowed down by
    // another process on the machine moves the mean, not the median
    for (int w = 0; w < 4; w++) qsort(per_step + (size_t)w * n, (size_t)n, sizeof(double), cmp_double);
    double med[4];
    for (int w = 0; w < 4; w++) {
        const double* v = per_step + (size_t)w * n;
        med[w] = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    }
    free(per_step);
    double ms = med[0];
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    // CPU time the process got over the timed steps / (their wall time x threads): ~1 on an idle machine
    // (waiting OpenMP threads spin, so they count), lower when other processes took the cores: a busy machine
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    double cpu_share = (ts.tv_sec + ts.tv_nsec * 1e-9 - cpu0) / (t_total * threads);
#ifdef KERNEL_TIMERS
    kt_print(a->steps, 1000.0 * t_total / a->steps, 1000.0 * t_opt / a->steps);  // means: the timers sum
#endif
    // the peak, measured right after the steps (same machine state, same load): on 1 thread and on all
    double peak1 = fma_peak_gflops(1, 1.0), peak = threads > 1 ? fma_peak_gflops(threads, 1.0) : peak1;
    double gflops = train_flops_per_step(&model, a->B, a->T) / (ms * 1e6);
    printf("{\"impl\": \"finetune.c\", \"threads\": %d, \"L\": %d, \"C\": %d, \"B\": %d, \"T\": %d, \"ms_per_step\": %.1f, "
           "\"tokens_per_s\": %.1f, \"gflops\": %.1f, \"peak_gflops_1t\": %.1f, \"peak_gflops\": %.1f, "
           "\"frac_of_peak\": %.3f, \"cpu_share\": %.2f, \"peak_rss_mb\": %.0f, \"loss\": %.6f, "
           "\"ms_forward\": %.1f, \"ms_backward\": %.1f, \"ms_optimizer\": %.1f, \"method\": \"%s\", \"trainable\": %zu}\n",
           threads, c->L, c->C, a->B, a->T, ms, BT / (ms / 1000.0), gflops, peak1, peak, gflops / peak, cpu_share,
           peak_rss_mb(), loss, med[1], med[2], med[3], a->method, count_trainable(&model));
    free(x);
    free(y);
    gpt_free(&model);
    return 0;
}

#ifndef TESTING
int main(int argc, char** argv) {
    g_argc = argc, g_argv = argv;
    dist_init(&argc, &argv);
    if (dist_rank != 0 && !freopen("/dev/null", "w", stdout)) exit(1);  // one rank speaks
    {  // every rank must run the same command line
        char all[8192] = {0};
        size_t n = 0;
        for (int i = 1; i < argc && n < sizeof all - 1; i++) n += (size_t)snprintf(all + n, sizeof all - n, "%s ", argv[i]);
        dist_check_same(all, strlen(all), "the command line");
    }
    if (argc > 1 && !strcmp(argv[1], "sweep")) {
        int rc = cmd_sweep(argc, argv);
        dist_finalize();
        return rc;
    }
    Args a = parse_args(argc, argv);
    int rc = !strcmp(a.cmd, "eval") ? cmd_eval(&a) : !strcmp(a.cmd, "sample") ? cmd_sample(&a)
           : !strcmp(a.cmd, "classify") ? cmd_classify(&a)
           : !strcmp(a.cmd, "bench") ? cmd_bench(&a) : !strcmp(a.cmd, "export") ? cmd_export(&a)
           : !strcmp(a.cmd, "quantize") ? cmd_quantize(&a) : !strcmp(a.cmd, "prune") ? cmd_prune(&a) : cmd_train(&a);
    dist_finalize();
    return rc;
}
#endif
