// dev/fuzz/readers.h: the fuzz targets of every binary reader, shared by the libFuzzer harness
// (fuzz_readers.c, one program per target) and the regression replay (replay.c, run by `make test`).
//
// Each target writes the input to files in a private temp folder and calls the reader exactly as ./train
// does (load_model, load_adapter, dataset_open, tokenizer_load), then uses what it loaded (a forward pass,
// a LoRA merge, every record), so a header that passes the checks but lies is caught where it would crash.
// Multi-file inputs (a safetensors file and its config.json, ...) are the files joined by FZ_SEP.
//
// A reader that refuses its input calls fail_at, which prints the one-line error and exits; here
// common.h's fail_hook longjmps back instead. Everything the reader had allocated or opened by then is
// freed by the tracking below: malloc, calloc, realloc, free, fopen and fclose of the project's code are
// redirected (macros defined after the system headers, before the project's files) to versions that
// remember each live block and stream. The error text (stderr's buffer) is dropped after each input;
// sanitizer reports write to the file descriptor directly and are never dropped.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdio_ext.h>  // __fpurge: drops the buffered error text of a refused input
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// ---------------------------------------------------------------------------- tracking
// An open-addressing set of live blocks (pointer -> nothing); slots hold NULL (empty) or FZ_GONE (deleted).
#define FZ_GONE ((void*)1)
static void** fz_slot;
static size_t fz_cap, fz_used;  // slots, slots not NULL
static size_t fz_hash(const void* p) { uint64_t x = (uint64_t)(uintptr_t)p; x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; return (size_t)(x ^ (x >> 29)); }
static void fz_add(void* p);
static void fz_grow(void) {
    void** old = fz_slot;
    size_t oc = fz_cap;
    fz_cap = fz_cap ? 2 * fz_cap : 4096;
    fz_slot = (void**)calloc(fz_cap, sizeof(void*));
    if (!fz_slot) abort();
    fz_used = 0;
    for (size_t i = 0; i < oc; i++)
        if (old[i] && old[i] != FZ_GONE) fz_add(old[i]);
    free(old);
}
static void fz_add(void* p) {
    if (!p) return;
    if (2 * (fz_used + 1) > fz_cap) fz_grow();
    size_t i = fz_hash(p) & (fz_cap - 1);
    while (fz_slot[i] && fz_slot[i] != FZ_GONE) i = (i + 1) & (fz_cap - 1);
    if (!fz_slot[i]) fz_used++;
    fz_slot[i] = p;
}
static void fz_remove(void* p) {
    if (!p || !fz_cap) return;
    size_t i = fz_hash(p) & (fz_cap - 1);
    while (fz_slot[i] && fz_slot[i] != p) i = (i + 1) & (fz_cap - 1);
    if (fz_slot[i] == p) fz_slot[i] = FZ_GONE;
}
static void* fz_malloc(size_t n) { void* p = malloc(n); fz_add(p); return p; }
static void* fz_calloc(size_t n, size_t s) { void* p = calloc(n, s); fz_add(p); return p; }
static void* fz_realloc(void* p, size_t n) {
    fz_remove(p);
    void* q = realloc(p, n);
    fz_add(q ? q : p);  // on failure p stays live
    return q;
}
static void fz_free(void* p) { fz_remove(p); free(p); }

#define FZ_MAX_FILES 64
static FILE* fz_files[FZ_MAX_FILES];
static FILE* fz_fopen(const char* path, const char* mode) {
    FILE* f = fopen(path, mode);
    for (int i = 0; f && i < FZ_MAX_FILES; i++)
        if (!fz_files[i]) { fz_files[i] = f; break; }
    return f;
}
static int fz_fclose(FILE* f) {
    for (int i = 0; i < FZ_MAX_FILES; i++)
        if (fz_files[i] == f) fz_files[i] = NULL;
    return fclose(f);
}
// After each input: frees every block and closes every stream the project's code left behind, except the
// blocks that live on purpose from one call to the next (keep: kernels.h's matmul packing buffer).
static void fz_release_all(void* keep) {
    for (size_t i = 0; i < fz_cap; i++)
        if (fz_slot[i] && fz_slot[i] != FZ_GONE && fz_slot[i] != keep) free(fz_slot[i]);
    if (fz_cap) memset(fz_slot, 0, fz_cap * sizeof(void*));
    fz_used = 0;
    fz_add(keep);
    for (int i = 0; i < FZ_MAX_FILES; i++)
        if (fz_files[i]) fclose(fz_files[i]), fz_files[i] = NULL;
}

#define malloc(n) fz_malloc(n)
#define calloc(n, s) fz_calloc(n, s)
#define realloc(p, n) fz_realloc(p, n)
#define free(p) fz_free(p)
#define fopen(p, m) fz_fopen(p, m)
#define fclose(f) fz_fclose(f)

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include "../../formats.c"  // defines: load_model, load_adapter, and (through model.h, tokenizer.c) the model
#include "../../dataset.h"  // defines: dataset_open, dataset_get
#undef malloc
#undef calloc
#undef realloc
#undef free
#undef fopen
#undef fclose

// ---------------------------------------------------------------------------- the harness
static jmp_buf fz_jmp;
static void fz_on_fail(void) { longjmp(fz_jmp, 1); }
static char fz_dir[256];  // this process's temp folder
static char fz_errbuf[1 << 16];
static int fz_verbose;    // FZ_VERBOSE=1: print the readers' errors instead of dropping them

static void fz_cleanup(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fz_dir);
    if (fz_dir[0] && system(cmd)) {}
}
static void fz_init(void) {
    if (fz_dir[0]) return;
    const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fz_dir, sizeof fz_dir, "%s/fz_readers.XXXXXX", base);
    if (!mkdtemp(fz_dir)) abort();
    atexit(fz_cleanup);
    fz_verbose = getenv("FZ_VERBOSE") != NULL;
    if (!fz_verbose) setvbuf(stderr, fz_errbuf, _IOFBF, sizeof fz_errbuf);  // the readers' error lines stay in memory...
    fail_hook = fz_on_fail;
}
// fz_dir/NAME := bytes; returns the path (static buffer per slot)
static const char* fz_write(int slot, const char* name, const uint8_t* p, size_t n) {
    static char paths[4][512];
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", fz_dir, name);
    FILE* f = fopen(paths[slot], "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f)) abort();
    return paths[slot];
}
static const char* fz_mkdir(const char* name) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", fz_dir, name);
    mkdir(path, 0755);
    return path;
}
static void fz_rm(const char* name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", fz_dir, name);
    unlink(path);
}
// Splits an input at the first FZ_SEP: a = before (or all), b = after (NULL when there is no separator).
#define FZ_SEP "\n==> next file <==\n"
static void fz_split(const uint8_t* p, size_t n, size_t* na, const uint8_t** b, size_t* nb) {
    size_t k = strlen(FZ_SEP);
    const uint8_t* s = n >= k ? (const uint8_t*)memmem(p, n, FZ_SEP, k) : NULL;
    *na = s ? (size_t)(s - p) : n;
    *b = s ? s + k : NULL;
    *nb = s ? n - (size_t)(s - p) - k : 0;
}

// The model the adapter targets apply their files to: the config the seeds were trained on.
static GPTConfig fz_base_config(void) {
    GPTConfig c = {.maxT = 8, .V = 257, .Vp = 320, .L = 2, .NH = 2, .C = 8};
    return c;
}

// Uses a loaded model as ./train would: a LoRA merge and unmerge (export --merge 1), one forward pass of
// four tokens (the classification head when there is one); with train_too, a backward and an AdamW step.
static void fz_use_model(GPT* m, int train_too) {
    const GPTConfig* c = &m->config;
    if (c->lora_r && !m->q8_memory) gpt_lora_merge(m, 1.0f), gpt_lora_merge(m, -1.0f);
    int T = c->maxT < 4 ? c->maxT : 4, in[4], tg[4], len[1] = {T}, lab[1] = {c->num_classes - 1};
    for (int i = 0; i < T; i++) in[i] = i % c->V, tg[i] = (i + 1) % c->V;
    gpt_alloc_activations(m, 1, T);
    if (c->num_classes) gpt_forward_cls(m, in, len, lab, 1, T);
    else gpt_forward(m, in, tg, 1, T);
    if (train_too && m->grads_memory && m->m_memory) {
        gpt_zero_grad(m);
        gpt_backward(m);
        AdamWConfig o = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};
        gpt_adamw_update(m, &o, 1);
    }
}

// Runs body(data, size) with fail_at longjmp'ing back; frees what it left. Returns 1 when it was refused.
typedef void (*FzBody)(const uint8_t*, size_t);
static int fz_run(FzBody body, const uint8_t* data, size_t size) {
    fz_init();
    int refused = 0;
    if (setjmp(fz_jmp) == 0) body(data, size);
    else refused = 1;
    if (fz_verbose) fflush(stderr);
    else __fpurge(stderr);  // ...and are dropped here
    fz_release_all(gemm_shared);
    return refused;
}

// ---------------------------------------------------------------------------- the targets
// ckpt: any model file through load_model (our checkpoints, llm.c's file; the dispatch on the first bytes)
static void fz_ckpt(const uint8_t* p, size_t n) {
    GPT m;
    load_model(&m, fz_write(0, "model.bin", p, n), NULL);
    fz_use_model(&m, 0);
    gpt_free(&m);
}
// resume: a training checkpoint (--resume): the model, trainable mask, AdamW state and TrainState
static void fz_resume(const uint8_t* p, size_t n) {
    GPT m;
    TrainState st;
    load_model(&m, fz_write(0, "ckpt.bin", p, n), &st);
    fz_use_model(&m, 1);
    gpt_free(&m);
}
// safetensors: DIR/model.safetensors [FZ_SEP DIR/config.json], loaded as the folder
static void fz_safetensors(const uint8_t* p, size_t n) {
    size_t na, nb;
    const uint8_t* b;
    fz_split(p, n, &na, &b, &nb);
    fz_mkdir("hf");
    fz_write(0, "hf/model.safetensors", p, na);
    if (b) fz_write(1, "hf/config.json", b, nb);
    else fz_rm("hf/config.json");
    GPT m;
    load_model(&m, fz_mkdir("hf"), NULL);
    fz_use_model(&m, 0);
    gpt_free(&m);
}
// gguf: one .gguf file
static void fz_gguf(const uint8_t* p, size_t n) {
    GPT m;
    load_model(&m, fz_write(0, "model.gguf", p, n), NULL);
    fz_use_model(&m, 0);
    gpt_free(&m);
}
// adapter: our adapter.bin applied to the base model (--adapter)
static void fz_adapter(const uint8_t* p, size_t n) {
    GPT m;
    gpt_build(&m, fz_base_config());
    load_adapter(&m, fz_write(0, "adapter.bin", p, n));
    fz_use_model(&m, 0);
    gpt_free(&m);
}
// The Llama base the peft_llama target applies its files to: ref/hf_llama_f32's shape (dev/make_hf_llama.py)
static GPTConfig fz_llama_config(void) {
    GPTConfig c = {.maxT = 8, .V = 80, .Vp = 128, .L = 2, .NH = 2, .C = 16, .F = 40, .arch = ARCH_LLAMA};
    c.n_kv_heads = 1, c.rope_theta = 1e5f, c.norm_eps = 1e-5f;
    return c;
}
// peft: DIR/adapter_model.safetensors [FZ_SEP DIR/adapter_config.json] applied to the base model, then
// exported again as PEFT (export --format peft); peft_llama: the same on the Llama base
static void fz_peft_on(const uint8_t* p, size_t n, GPTConfig base) {
    size_t na, nb;
    const uint8_t* b;
    fz_split(p, n, &na, &b, &nb);
    fz_mkdir("peft");
    fz_write(0, "peft/adapter_model.safetensors", p, na);
    if (b) fz_write(1, "peft/adapter_config.json", b, nb);
    else fz_rm("peft/adapter_config.json");
    GPT m;
    gpt_build(&m, base);
    load_adapter(&m, fz_mkdir("peft"));
    fz_use_model(&m, 0);
    char out[600];
    snprintf(out, sizeof out, "%s/peft_out", fz_dir);
    export_peft(&m, out, 0.0f);
    gpt_free(&m);
}
static void fz_peft(const uint8_t* p, size_t n) { fz_peft_on(p, n, fz_base_config()); }
static void fz_peft_llama(const uint8_t* p, size_t n) { fz_peft_on(p, n, fz_llama_config()); }
// ds: an example file (.ds); every record must then be readable
static void fz_ds(const uint8_t* p, size_t n) {
    Dataset ds;
    char err[512];
    if (dataset_open(&ds, fz_write(0, "data.ds", p, n), err, sizeof err)) return;
    for (uint64_t i = 0; ds.index && i < ds.count; i++) {  // (a token file has no records: the tokens target)
        Example ex;
        if (dataset_get(&ds, i, &ex)) abort();  // validated at open: a record that fails now is a bug
        for (size_t k = 0; k < ex.n; k++) {
            int id = dataset_id(ex.ids, ds.bytes_per_token, k);
            if (ds.vocab_size > 0 && (id < 0 || id >= ds.vocab_size)) abort();
        }
        if (ds.kind == DS_CLS && (ex.label < 0 || ex.label >= ds.num_labels)) abort();
    }
    if (ds.kind == DS_CLS) {  // the label-names section after the index: read (or refused) within the file
        char(*names)[256] = (char(*)[256])malloc((size_t)ds.num_labels * 256);
        int k = names ? dataset_label_names(&ds, "data.ds", names, err, sizeof err) : 0;
        for (int c = 0; c < k; c++)
            if (!names[c][0] || strlen(names[c]) > 255) abort();
        free(names);
    }
    dataset_close(&ds);
}
// tokens: a token file (.bin, ours or llm.c's); every token it says it holds must be readable
static void fz_tokens(const uint8_t* p, size_t n) {
    Dataset ds;
    char err[512];
    if (dataset_open(&ds, fz_write(0, "data.bin", p, n), err, sizeof err)) return;
    volatile uint64_t sum = 0;  // (the ids are not checked at open: the loader checks each against the model)
    for (uint64_t i = 0; ds.data && i < ds.count; i++) sum += (uint64_t)dataset_token(&ds, i);
    (void)sum;
    dataset_close(&ds);
}
// tokenizer: GPT-2's DIR/encoder.json FZ_SEP DIR/vocab.bpe, then an encode and decode
static void fz_tokenizer(const uint8_t* p, size_t n) {
    size_t na, nb;
    const uint8_t* b;
    fz_split(p, n, &na, &b, &nb);
    fz_mkdir("bpe");
    fz_write(0, "bpe/encoder.json", p, na);
    if (b) fz_write(1, "bpe/vocab.bpe", b, nb);
    else fz_rm("bpe/vocab.bpe");
    Tokenizer t;
    char err[1024];
    if (tokenizer_load(&t, fz_mkdir("bpe"), err, sizeof err)) return;
    IntVec ids = {0};
    ByteVec back = {0};
    static const char text[] = "Hello world! It's caf\xc3\xa9 <|endoftext|> 123";
    tokenizer_encode(&t, (const unsigned char*)text, sizeof text - 1, 1, &ids);
    for (size_t i = 0; i < ids.len; i++)
        if (ids.data[i] < 0 || ids.data[i] >= t.vocab_size) abort();
    tokenizer_decode(&t, ids.data, ids.len, &back, NULL);
    fz_free(ids.data), fz_free(back.data);  // (the project's blocks: tracked)
    tokenizer_free(&t);
}

// tokjson: a Hugging Face tokenizer.json (tokenizer_load on the file), then encodes that exercise every stage
// (added tokens, NFC, the pre-tokenizer steps, BPE with ignore_merges) and a decode
static void fz_tokjson(const uint8_t* p, size_t n) {
    Tokenizer t;
    char err[1024];
    if (tokenizer_load(&t, fz_write(0, "tokenizer.json", p, n), err, sizeof err)) return;
    static const char text[] = "Hello world! It's caf\xc3\xa9 e\xcc\x81 <|endoftext|><|im_start|> 12345 \xe4\xb8\xad\xe6\x96\x87\n\n  x\xff";
    for (int special = 0; special < 2; special++) {
        IntVec ids = {0};
        ByteVec back = {0};
        tokenizer_encode(&t, (const unsigned char*)text, sizeof text - 1, special, &ids);
        for (size_t i = 0; i < ids.len; i++)
            if (ids.data[i] < 0 || ids.data[i] >= t.vocab_size) abort();
        tokenizer_decode(&t, ids.data, ids.len, &back, NULL);
        fz_free(ids.data), fz_free(back.data);
    }
    tokenizer_free(&t);
}

typedef struct { const char* name; FzBody body; } FzTarget;
static const FzTarget FZ_TARGETS[] = {
    {"ckpt", fz_ckpt}, {"resume", fz_resume}, {"safetensors", fz_safetensors}, {"gguf", fz_gguf},
    {"adapter", fz_adapter}, {"peft", fz_peft}, {"ds", fz_ds}, {"tokens", fz_tokens}, {"tokenizer", fz_tokenizer},
    {"tokjson", fz_tokjson}, {"peft_llama", fz_peft_llama},
};
#define FZ_NUM_TARGETS ((int)(sizeof FZ_TARGETS / sizeof FZ_TARGETS[0]))
