// formats.c: every model file format, each reader next to its writer, and load_model, which tells them apart
// by their first bytes.
//
//   format                 written by                 read by                   files
//   finetune.c checkpoint  save_checkpoint(_kind)     load_checkpoint, load_adapter   model.bin, ckpt.bin, adapter.bin
//   Hugging Face GPT-2     export_hf                  load_hf_safetensors       model.safetensors + config.json
//   HF Llama / Qwen2       export_hf (export_hf_llama) load_hf_llama (config.json model_type llama|qwen2)
//   llm.c                  export_llmc                load_llmc                 gpt2_124M.bin's layout
//   PEFT LoRA adapter      export_peft                load_peft (--adapter)     adapter_model.safetensors + adapter_config.json
//                          (GPT-2 and Llama module names)
//   GGUF v3 (llama.cpp)    export_gguf                load_gguf (--model)       one .gguf: gpt2, llama or qwen2; F32 or Q8_0 (F16 read)
//
// Every file is written through SafeWriter (PATH.tmp, renamed when complete). Numbers are written in the
// host's byte order, which all these formats define as little-endian: x86 and ARM, not big-endian machines.
// Kept valid C++ as well (train.cu compiles it as C++): casts on malloc, no compound literals.

#pragma once
#include "model.h"        // defines: GPT, the parameter table, the int8 layout
#include "tokenizer.c"    // defines: Tokenizer (GGUF files carry the vocabulary)

// ---------------------------------------------------------------------------- the checked reader
// Every reader below goes through this layer: each length and offset a file gives is checked against the
// file's size before anything is allocated or read, with overflow-safe arithmetic (a + b > n is written
// b > n - a), and each header field against what a model can be (check_config). Errors name the file.
typedef struct {
    FILE* f;
    const char* path;
    uint64_t size, pos;
} Reader;

static Reader rd_open(const char* path) {
    Reader r = {fopen_check(path, "rb"), path, 0, 0};
    long long n = file_size(r.f);
    if (n < 0) failf("give the path of a regular file", "%s: cannot tell the file's size", path);
    r.size = (uint64_t)n;
    return r;
}
static void rd_close(Reader* r) {
    if (r->f) fclose(r->f);
    r->f = NULL;
}
// Fails unless [off, off + len) lies inside the file.
static void rd_span(const Reader* r, uint64_t off, uint64_t len, const char* what) {
    if (off > r->size || len > r->size - off)
        fail_at(r->path, "the file is truncated or corrupt",
                "unexpected end of file: %s needs bytes [%llu, %llu + %llu) but the file has %llu (truncated?)", what, (unsigned long long)off,
                (unsigned long long)off, (unsigned long long)len, (unsigned long long)r->size);
}
static void rd_seek(Reader* r, uint64_t off, const char* what) {
    rd_span(r, off, 0, what);
    if (fseek(r->f, (long)off, SEEK_SET) != 0) fail_at(r->path, "the file is truncated or corrupt", "cannot seek to %s", what);
    r->pos = off;
}
static void rd_bytes(Reader* r, void* dst, uint64_t n, const char* what) {
    rd_span(r, r->pos, n, what);
    fread_check(dst, (size_t)n, r->f, r->path, what);
    r->pos += n;
}
static void rd_skip(Reader* r, uint64_t n, const char* what) {
    rd_span(r, r->pos, n, what);
    rd_seek(r, r->pos + n, what);
}
static uint32_t rd_u32(Reader* r, const char* what) { uint32_t v; rd_bytes(r, &v, 4, what); return v; }
static uint64_t rd_u64(Reader* r, const char* what) { uint64_t v; rd_bytes(r, &v, 8, what); return v; }

// Size arithmetic that fails (naming the file) instead of wrapping around.
static uint64_t mul_or_fail(uint64_t a, uint64_t b, const char* path, const char* what) {
    if (b && a > UINT64_MAX / b) fail_at(path, "the file is corrupt", "%s overflows 64 bits", what);
    return a * b;
}
static uint64_t add_or_fail(uint64_t a, uint64_t b, const char* path, const char* what) {
    if (b > UINT64_MAX - a) fail_at(path, "the file is corrupt", "%s overflows 64 bits", what);
    return a + b;
}

// A whole small text file (config.json, adapter_config.json) with a 0 after it, at most cap bytes.
static char* rd_small_file(const char* path, uint64_t cap, size_t* len) {
    Reader r = rd_open(path);
    if (r.size > cap)
        fail_at(path, "is this the right file?", "%llu bytes; a file of this kind is at most %llu", (unsigned long long)r.size,
                (unsigned long long)cap);
    char* text = (char*)mallocCheck((size_t)r.size + 1);
    rd_bytes(&r, text, r.size, "the text");
    text[r.size] = 0;
    *len = (size_t)r.size;
    rd_close(&r);
    return text;
}

// What a model can be. The limits are far beyond any GPT-2 (L 48, C 1600, V 50257, maxT 1024) and keep every
// size product below 2^64: the largest tensor, L*F*C, is at most 2^10 * 2^20 * 2^16 = 2^46 floats.
#define MAX_LAYERS 1024
#define MAX_CHANNELS 65536
#define MAX_VOCAB (1 << 24)
#define MAX_POSITIONS (1 << 20)
#define MAX_WIDTH (1 << 20)  // MLP width, LoRA rank, adapter bottleneck, prefix length, classes

// Every field of a config read from a file, checked before it sizes anything. what: "header", "config.json"...
static void check_config(const GPTConfig* c, const char* path, const char* what) {
    const char* bad = NULL;
    char msg[160];
    if (c->L < 1 || c->L > MAX_LAYERS) bad = "layers L";
    else if (c->C < 1 || c->C > MAX_CHANNELS) bad = "channels C";
    else if (c->NH < 1 || c->NH > c->C || c->C % c->NH) bad = "heads NH (must divide C)";
    else if (c->V < 1 || c->V > MAX_VOCAB) bad = "vocabulary V";
    else if (c->Vp < c->V || c->Vp > MAX_VOCAB + 1024) bad = "padded vocabulary Vp (must be >= V)";
    else if (c->maxT < 1 || c->maxT > MAX_POSITIONS) bad = "positions maxT";
    else if (c->F < 0 || c->F > MAX_WIDTH) bad = "MLP width F";
    else if (c->lora_r < 0 || c->lora_r > MAX_WIDTH) bad = "LoRA rank";
    else if (c->adapter_dim < 0 || c->adapter_dim > MAX_WIDTH) bad = "adapter width";
    else if (c->prefix_len < 0 || c->prefix_len > MAX_WIDTH) bad = "prefix length";
    else if (c->num_classes < 0 || c->num_classes == 1 || c->num_classes > MAX_WIDTH) bad = "classes K (0 or >= 2)";
    else if (c->num_tags < 0 || c->num_tags == 1 || c->num_tags > MAX_WIDTH || (c->num_tags && c->num_classes)) bad = "tags E (0 or >= 2, no class head)";
    else if (c->lora_r && (c->lora_targets < 1 || c->lora_targets > 511)) bad = "LoRA targets";
    else if (c->lora_r && (c->arch == ARCH_LLAMA ? c->lora_targets & (LORA_QKV | LORA_FC) : c->lora_targets > 15)) bad = "LoRA targets (of this architecture)";
    else if (c->lora_r && !(isfinite(c->lora_alpha) && c->lora_alpha > 0)) bad = "LoRA alpha";
    else if (c->lora_r && (c->lora_first < 0 || c->lora_first > c->lora_last || c->lora_last >= c->L)) bad = "LoRA layer range";
    else if (c->arch != ARCH_GPT2 && c->arch != ARCH_ENCODER && c->arch != ARCH_LLAMA) bad = "architecture (0 gpt2, 1 encoder, 2 llama)";
    else if (c->arch != ARCH_LLAMA && (c->n_kv_heads || c->rope_theta != 0.0f || c->norm_eps != 0.0f || c->untied ||
                                       c->qkv_bias || c->rope_factor != 0.0f)) bad = "Llama fields in a model of another architecture";
    else if (c->arch == ARCH_LLAMA && (c->n_kv_heads < 0 || c->n_kv_heads > c->NH || c->NH % kv_heads(c))) bad = "KV heads (must divide NH)";
    else if (c->arch == ARCH_LLAMA && (c->C / c->NH) % 2) bad = "head size (RoPE needs it even)";
    else if (c->arch == ARCH_LLAMA && !(c->rope_theta > 1.0f && c->rope_theta <= 1e12f)) bad = "RoPE theta";
    else if (c->arch == ARCH_LLAMA && !(c->rope_factor == 0.0f || (c->rope_factor >= 1.0f && c->rope_factor <= 1e6f))) bad = "RoPE scaling factor";
    else if (c->arch == ARCH_LLAMA && !(c->norm_eps > 0.0f && c->norm_eps <= 1.0f)) bad = "RMSNorm eps";
    else if (c->arch == ARCH_LLAMA && ((c->untied | c->qkv_bias) & ~1)) bad = "untied / q,k,v bias flags (0 or 1)";
    else if (c->arch == ARCH_ENCODER ? c->mask_id < 0 || c->mask_id >= c->V : c->mask_id != 0) bad = "[MASK] id (in [0, V) for an encoder, else 0)";
    if (!bad) return;
    snprintf(msg, sizeof msg, "the %s is corrupt or not from this program", what);
    fail_at(path, msg, "%s out of range: L=%d NH=%d C=%d V=%d Vp=%d maxT=%d F=%d lora r=%d targets=%d alpha=%g layers %d-%d "
            "adapter=%d prefix=%d K=%d E=%d arch=%d mask=%d NKV=%d theta=%g eps=%g", bad, c->L, c->NH, c->C, c->V, c->Vp, c->maxT, c->F, c->lora_r, c->lora_targets,
            (double)c->lora_alpha, c->lora_first, c->lora_last, c->adapter_dim, c->prefix_len, c->num_classes, c->num_tags, c->arch, c->mask_id,
            c->n_kv_heads, (double)c->rope_theta, (double)c->norm_eps);
}

// int8 models need every quantized slice a multiple of the group size (gpt_alloc_q8 relies on it).
static void check_q8_config(const GPTConfig* c, const char* path) {
    for (int i = 0; i < NUM_PARAMS; i++)
        if (param_quantizable(i) && slice_numel(c, i) % Q8_GROUP)
            fail_at(path, "the file is corrupt: int8 models need C and the MLP width multiples of 32",
                    "%s has %zu weights a layer, not a multiple of the int8 group size %d", PARAM_TABLE[i].name,
                    slice_numel(c, i), Q8_GROUP);
}

// The sanity cap on memory, checked before the model is built: a header that asks for more than this machine
// has is reported against the file, not as "out of memory" against the flags. bytes: what the model will take.
static void check_model_memory(const char* path, double bytes) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    double have = pages > 0 && page > 0 ? (double)pages * (double)page : 1e15;
    if (bytes > have)
        fail_at(path, "the file's header is corrupt, or the model is too large for this machine",
                "the model it describes needs %.1f GB, this machine has %.1f GB", bytes / 1e9, have / 1e9);
}

// A tensor's byte range inside a file, for the overlap check.
typedef struct {
    uint64_t begin, end;
    const char* name;
} Span;
static int span_cmp(const void* a, const void* b) {
    const Span *x = (const Span*)a, *y = (const Span*)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}
// Fails if two non-empty tensors share a byte (sorts s).
static void check_no_overlap(Span* s, size_t n, const char* path) {
    qsort(s, n, sizeof *s, span_cmp);
    for (size_t i = 0, last = n; i < n; i++) {  // last: the latest non-empty span
        if (s[i].end == s[i].begin) continue;
        if (last < n && s[last].end > s[i].begin)
            fail_at(path, "the file is corrupt: every tensor has its own bytes", "tensors '%s' and '%s' overlap (bytes %llu-%llu and %llu-%llu)",
                    s[last].name, s[i].name, (unsigned long long)s[last].begin, (unsigned long long)s[last].end,
                    (unsigned long long)s[i].begin, (unsigned long long)s[i].end);
        last = i;
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

static int st_name_cmp(const void* a, const void* b) { return strcmp(((const StTensor*)a)->name, ((const StTensor*)b)->name); }

// Reads the header; checks each tensor's dtype, its shape (whole numbers whose product does not overflow),
// that its data_offsets match the shape exactly and lie inside the file, that no two tensors share a name or
// a byte. Nothing is allocated beyond the header itself (at most the file's size).
static void st_open(SafeTensors* st, const char* path) {
    memset(st, 0, sizeof(*st));
    snprintf(st->path, sizeof st->path, "%s", path);
    Reader r = rd_open(path);
    uint64_t hlen = rd_u64(&r, "the safetensors header length");
    if (hlen < 2 || hlen > r.size - 8 || hlen > (100u << 20))
        fail_at(path, "is this a safetensors file?", "header length %llu does not fit the file (%llu bytes)",
                (unsigned long long)hlen, (unsigned long long)r.size);
    char* text = (char*)mallocCheck(hlen);
    rd_bytes(&r, text, hlen, "the safetensors JSON header");
    st->f = r.f;
    st->data_start = 8 + hlen;
    uint64_t data_len = r.size - st->data_start;
    Json j = json_begin(text, hlen, path);
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
                if (json_peek(&j) == ',') json_next(&j);
                else if (json_peek(&j) != '}') json_fail(&j, "expected ',' or '}'");
            }
            json_next(&j);
        } else {
            if (st->n == cap) st->t = (StTensor*)reallocCheck(st->t, (size_t)(cap *= 2) * sizeof(StTensor));
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
                        // whole numbers below 2^53 (exact in a double); the byte counts are checked below
                        if (!(v >= 0 && v <= 9007199254740992.0) || v != floor(v) || n >= (is_shape ? 8 : 2))
                            json_fail(&j, "a shape or data_offsets entry is not a whole number in range, or there are too many");
                        if (is_shape) t->shape[n] = (int64_t)v;
                        else if (n == 0) t->begin = (uint64_t)v;
                        else t->end = (uint64_t)v;
                        n++;
                        if (json_peek(&j) == ',') json_next(&j);
                        else if (json_peek(&j) != ']') json_fail(&j, "expected ',' or ']'");
                    }
                    json_next(&j);
                    if (is_shape) t->ndim = n, have |= 2;
                    else if (n == 2) have |= 4;
                } else {
                    json_skip(&j, 0);
                }
                if (json_peek(&j) == ',') json_next(&j);
                else if (json_peek(&j) != '}') json_fail(&j, "expected ',' or '}'");
            }
            json_next(&j);
            if (have != 7) fail_at(path, "is this a safetensors file?", "tensor '%s' lacks dtype, shape or data_offsets", key);
            size_t es = st_dtype_size(t->dtype);
            if (!es) fail_at(path, "supported: F32, F16, BF16, I32", "tensor '%s' has unsupported dtype %s", key, t->dtype);
            uint64_t bytes = es;
            for (int d = 0; d < t->ndim; d++) bytes = mul_or_fail(bytes, (uint64_t)t->shape[d], path, "a tensor's shape");
            if (t->end < t->begin || t->end > data_len || t->end - t->begin != bytes)
                fail_at(path, "the file is truncated or corrupt", "tensor '%s' offsets [%llu, %llu] do not match its shape or the file size",
                        key, (unsigned long long)t->begin, (unsigned long long)t->end);
        }
        if (json_peek(&j) == ',') json_next(&j);
        else if (json_peek(&j) != '}') json_fail(&j, "expected ',' or '}'");
    }
    free(text);
    // no two tensors with one name, none sharing a byte
    StTensor* sorted = (StTensor*)mallocCheck((size_t)st->n * sizeof(StTensor));
    if (st->n) memcpy(sorted, st->t, (size_t)st->n * sizeof(StTensor));
    qsort(sorted, (size_t)st->n, sizeof(StTensor), st_name_cmp);
    for (int i = 1; i < st->n; i++)
        if (!strcmp(sorted[i].name, sorted[i - 1].name))
            fail_at(path, "the file is corrupt: each tensor appears once", "tensor '%s' appears twice", sorted[i].name);
    free(sorted);
    Span* sp = (Span*)mallocCheck((size_t)st->n * sizeof(Span));
    for (int i = 0; i < st->n; i++) sp[i].begin = st->t[i].begin, sp[i].end = st->t[i].end, sp[i].name = st->t[i].name;
    check_no_overlap(sp, (size_t)st->n, path);
    free(sp);
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

// Reads a tensor as float32 (F16 and BF16 are widened exactly; F64 rounded; I32, I64 converted) into out, which holds st_numel floats.
static void st_read_f32(const SafeTensors* st, const StTensor* t, float* out) {
    size_t n = st_numel(t), es = st_dtype_size(t->dtype);
    unsigned char* raw = (unsigned char*)mallocCheck(n * es);
    fseek(st->f, (long)(st->data_start + t->begin), SEEK_SET);
    fread_check(raw, n * es, st->f, st->path, t->name);
    const char* d = t->dtype;  // (one comparison per tensor, not per element: a 135M model is 135M elements)
    if (!strcmp(d, "F32")) memcpy(out, raw, n * 4);
    else if (!strcmp(d, "I32")) for (size_t i = 0; i < n; i++) { int32_t v; memcpy(&v, raw + 4 * i, 4); out[i] = (float)v; }
    else if (!strcmp(d, "F64")) for (size_t i = 0; i < n; i++) { double v; memcpy(&v, raw + 8 * i, 8); out[i] = (float)v; }  // rounded to nearest
    else if (!strcmp(d, "I64")) for (size_t i = 0; i < n; i++) { int64_t v; memcpy(&v, raw + 8 * i, 8); out[i] = (float)v; }
    else if (!strcmp(d, "BF16"))
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, raw + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;  // bf16 is the top half of an fp32
            memcpy(&out[i], &bits, 4);
        }
    else
        for (size_t i = 0; i < n; i++) {  // F16: IEEE half -> float
            uint16_t h;
            memcpy(&h, raw + 2 * i, 2);
            uint32_t bits, sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
            if (e == 0) {
                float f = ldexpf((float)m, -24);
                memcpy(&bits, &f, 4);
                bits |= sign;
            } else if (e == 31) bits = sign | 0x7f800000u | (m << 13);
            else bits = sign | ((e + 112) << 23) | (m << 13);
            memcpy(&out[i], &bits, 4);
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

// ---------------------------------------------------------------------------- safetensors writer
// (The reader is st_open in train.c.) One tensor: rows x cols fp32 (cols = 0: a vector of rows), written as it
// is or transposed (our nn.Linear (out, in) as GPT-2's Conv1D (in, out)).
typedef struct {
    char name[160];
    size_t rows, cols;
    const float* data;
    int transpose;
} StOut;

// u64 header length, the JSON header (padded with spaces so the data starts 8-byte aligned), the data in order.
static void st_write(const char* path, const StOut* t, int n) {
    size_t cap = 64 + (size_t)n * 320, len = 0;  // 320 > the longest entry: a 159-char name and four 20-digit numbers
    char* hdr = (char*)mallocCheck(cap);
    uint64_t off = 0;
    len += (size_t)snprintf(hdr, cap, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        size_t r = t[i].rows, q = t[i].cols, bytes = r * (q ? q : 1) * 4;
        if (t[i].transpose) r = t[i].cols, q = t[i].rows;
        len += (size_t)snprintf(hdr + len, cap - len, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%zu", t[i].name, r);
        if (q) len += (size_t)snprintf(hdr + len, cap - len, ",%zu", q);
        len += (size_t)snprintf(hdr + len, cap - len, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                                (unsigned long long)(off + bytes));
        off += bytes;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    while (len % 8) hdr[len++] = ' ';
    SafeWriter w;
    safe_open(&w, path);
    uint64_t hlen = len;
    fwrite_check(&hlen, 8, w.f, path);
    fwrite_check(hdr, len, w.f, path);
    for (int i = 0; i < n; i++) {
        size_t r = t[i].rows, q = t[i].cols ? t[i].cols : 1;
        if (!t[i].transpose) {
            fwrite_check(t[i].data, r * q * 4, w.f, path);
            continue;
        }
        float* tmp = (float*)mallocCheck(r * q * sizeof(float));  // (rows, cols) -> (cols, rows)
        for (size_t a = 0; a < r; a++)
            for (size_t b = 0; b < q; b++) tmp[b * r + a] = t[i].data[a * q + b];
        fwrite_check(tmp, r * q * 4, w.f, path);
        free(tmp);
    }
    safe_close(&w);
    free(hdr);
}

// ---------------------------------------------------------------------------- shapes
// Layer l's slice of tensor p as a matrix: rows x cols in memory order, cols = 0 for a vector. wte is cut to its
// V real rows: padding to Vp is ours, other formats do not have it.
static void slice_shape(const GPTConfig* c, int p, size_t* rows, size_t* cols) {
    size_t dims[5];
    int nd = shape_dims(PARAM_TABLE[p].shape, c, 0, 0, dims), k = param_per_layer(p);  // k = 1 skips the L axis
    *rows = p == PIDX(wte) ? (size_t)c->V : dims[k];
    *cols = nd - k == 2 ? dims[k + 1] : 0;
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

// A dimension of a tensor as an int, when it is one in [1, max]; else 0 (check_config then refuses it).
static int st_dim(const StTensor* t, int d, int max) {
    return d < t->ndim && t->shape[d] >= 1 && t->shape[d] <= max ? (int)t->shape[d] : 0;
}

// An integer field of config.json, when present: a whole number in [lo, hi] or the file is refused.
static int hf_config_int(const char* text, size_t n, const char* key, const char* cfg, int lo, int hi, int* out) {
    double v;
    if (!json_get_number(text, n, key, cfg, &v)) return 0;
    if (!(v >= lo && v <= hi) || v != floor(v))
        fail_at(cfg, "config.json's numbers must describe a GPT-2", "%s is %g, expected a whole number in [%d, %d]", key, v, lo, hi);
    *out = (int)v;
    return 1;
}

// Reads the config from a sibling config.json, or infers it from shapes: V, C from wte; maxT from wpe;
// L by counting blocks; NH cannot be seen in any shape, so without config.json it is taken as C/64, which
// holds for every released GPT-2 size (head size 64). Every field is range-checked (check_config); the
// shapes themselves are checked exactly by load_hf_safetensors.
static GPTConfig hf_config(const SafeTensors* st, const char* path) {
    GPTConfig c = {0};
    const StTensor* wte = hf_find(st, "wte.weight");
    const StTensor* wpe = hf_find(st, "wpe.weight");
    if (!wte || !wpe || wte->ndim != 2 || wpe->ndim != 2)
        fail_at(path, "expected a GPT-2 checkpoint with wte.weight and wpe.weight", "no GPT-2 embedding matrices found");
    c.V = st_dim(wte, 0, MAX_VOCAB);
    c.C = st_dim(wte, 1, MAX_CHANNELS);
    c.maxT = st_dim(wpe, 0, MAX_POSITIONS);
    for (c.L = 0; c.L <= MAX_LAYERS; c.L++) {
        char name[64];
        snprintf(name, sizeof name, "h.%d.ln_1.weight", c.L);
        if (!hf_find(st, name)) break;
    }
    c.NH = c.C % 64 == 0 ? c.C / 64 : 0;
    const StTensor* fc = hf_find(st, "h.0.mlp.c_fc.weight");  // (C, F): the MLP width, unless config.json says
    if (fc && fc->ndim == 2 && fc->shape[1] != 4 * (int64_t)c.C) c.F = st_dim(fc, 1, MAX_WIDTH);
    // config.json beside the file overrides the inference
    char cfg[1200];
    snprintf(cfg, sizeof cfg, "%s", path);
    char* slash = strrchr(cfg, '/');
    snprintf(slash ? slash + 1 : cfg, sizeof cfg - (slash ? (size_t)(slash + 1 - cfg) : 0), "config.json");
    struct stat sb;
    if (stat(cfg, &sb) == 0) {
        size_t n;
        char* text = rd_small_file(cfg, 16u << 20, &n);
        int v;
        hf_config_int(text, n, "n_head", cfg, 1, MAX_CHANNELS, &c.NH);
        if (hf_config_int(text, n, "n_inner", cfg, 1, MAX_WIDTH, &v)) c.F = v == 4 * c.C ? 0 : v;  // null: 4C
        if (hf_config_int(text, n, "n_layer", cfg, 1, MAX_LAYERS, &v) && v != c.L)
            fail_at(cfg, "config.json and model.safetensors disagree", "n_layer=%d but the checkpoint has %d blocks", v, c.L);
        if (hf_config_int(text, n, "n_embd", cfg, 1, MAX_CHANNELS, &v) && v != c.C)
            fail_at(cfg, "config.json and model.safetensors disagree", "n_embd=%d but wte.weight has %d columns", v, c.C);
        if (hf_config_int(text, n, "vocab_size", cfg, 1, MAX_VOCAB, &v) && v != c.V)
            fail_at(cfg, "config.json and model.safetensors disagree", "vocab_size=%d but wte.weight has %d rows", v, c.V);
        free(text);
    }
    if (c.L >= 1 && c.C >= 1 && (c.NH < 1 || c.C % c.NH))
        fail_at(path, "put the model's config.json next to the .safetensors file", "cannot tell the number of heads (C=%d)", c.C);
    c.Vp = pad_vocab(c.V);
    check_config(&c, path, "safetensors file (or its config.json)");
    return c;
}

// The shape a Hugging Face file stores layer l's slice of tensor p in: wte its V real rows, Conv1D weights
// (hf_transposed) as (in, out), vectors 1-D.
static int hf_shape(const GPTConfig* c, int p, int64_t shape[2]) {
    size_t rows, cols;
    slice_shape(c, p, &rows, &cols);
    if (!cols) { shape[0] = (int64_t)rows; return 1; }
    shape[0] = (int64_t)(PARAM_TABLE[p].hf_transposed ? cols : rows);
    shape[1] = (int64_t)(PARAM_TABLE[p].hf_transposed ? rows : cols);
    return 2;
}

// ---------------------------------------------------------------------------- Hugging Face Llama and Qwen2
// transformers' LlamaForCausalLM / Qwen2ForCausalLM (and their ForSequenceClassification) layout, against
// ours (llama_spec: q, k, v fused into qkvw's rows, gate and up into fcw's rows; nn.Linear (out, in) as ours,
// so nothing is transposed, and every HF tensor is one contiguous run of rows of one of our slices):
//   model.embed_tokens.weight (V, C)                wte, its first V rows
//   model.layers.N.input_layernorm.weight (C)       ln1w            (RMSNorm)
//   model.layers.N.self_attn.q_proj.weight (C, C)   qkvw rows [0, C)
//                         .k_proj.weight (KVC, C)   qkvw rows [C, C + KVC)       KVC = n_kv_heads * C / NH
//                         .v_proj.weight (KVC, C)   qkvw rows [C + KVC, C + 2 KVC)
//                         .q_proj.bias, .k_proj.bias, .v_proj.bias              qkvb, the same cuts (Qwen2)
//                         .o_proj.weight (C, C)     attprojw
//   model.layers.N.post_attention_layernorm.weight  ln2w
//   model.layers.N.mlp.gate_proj.weight (F, C)      fcw rows [0, F)
//                    .up_proj.weight (F, C)         fcw rows [F, 2F)
//                    .down_proj.weight (C, F)       fcprojw
//   model.norm.weight (C)                           lnfw
//   lm_head.weight (V, C)                           lm_head (untied models only; tied ones use wte)
//   score.weight (K, C)                             cls_w (LlamaForSequenceClassification)
// Which rows of a slice: part 0 all of it, else one block of the fused q|k|v or gate|up rows.
enum { HF_ALL, HF_Q, HF_K, HF_V, HF_GATE, HF_UP };
typedef struct {
    char name[160];
    size_t rows, cols;  // cols = 0: a vector
    float* data;
} HfTensor;

// The rows [*first, *first + *n) that part takes of a fused slice (QKV = C + 2 KVC rows, or 2F).
static void llama_part_rows(const GPTConfig* c, int part, size_t* first, size_t* n) {
    size_t C = (size_t)c->C, KVC = (size_t)(c->n_kv_heads ? c->n_kv_heads : c->NH) * (size_t)(c->C / c->NH), F = (size_t)mlp_width(c);
    size_t at[6] = {0, 0, C, C + KVC, 0, F}, len[6] = {0, C, KVC, KVC, F, F};
    *first = at[part], *n = len[part];
}

// Every tensor of the model in Hugging Face's names, with its shape and where it lives in ours (out: at
// least llama_num_tensors). The one list the reader, the writer and the tests walk.
static int llama_num_tensors(const GPTConfig* c) { return 5 + 12 * c->L; }
static int llama_tensors(const GPTConfig* c, const ParameterTensors* p, HfTensor* out) {
    static const struct { const char* hf; int part; } per_layer[12] = {
        {"input_layernorm.weight", HF_ALL}, {"self_attn.q_proj.weight", HF_Q}, {"self_attn.k_proj.weight", HF_K},
        {"self_attn.v_proj.weight", HF_V}, {"self_attn.q_proj.bias", HF_Q}, {"self_attn.k_proj.bias", HF_K},
        {"self_attn.v_proj.bias", HF_V}, {"self_attn.o_proj.weight", HF_ALL}, {"post_attention_layernorm.weight", HF_ALL},
        {"mlp.gate_proj.weight", HF_GATE}, {"mlp.up_proj.weight", HF_UP}, {"mlp.down_proj.weight", HF_ALL}};
    const int param[12] = {PIDX(ln1w), PIDX(qkvw), PIDX(qkvw), PIDX(qkvw), PIDX(qkvb), PIDX(qkvb), PIDX(qkvb),
                           PIDX(attprojw), PIDX(ln2w), PIDX(fcw), PIDX(fcw), PIDX(fcprojw)};
    int n = 0;
    HfTensor* t = out;
    snprintf(t[n].name, sizeof t[n].name, "model.embed_tokens.weight");
    t[n].rows = (size_t)c->V, t[n].cols = (size_t)c->C, t[n].data = p->wte, n++;
    for (int l = 0; l < c->L; l++)
        for (int k = 0; k < 12; k++) {
            int q = param[k];
            if (q == PIDX(qkvb) && !c->qkv_bias) continue;
            size_t rows, cols, first = 0;
            slice_shape(c, q, &rows, &cols);
            if (per_layer[k].part != HF_ALL) llama_part_rows(c, per_layer[k].part, &first, &rows);
            snprintf(t[n].name, sizeof t[n].name, "model.layers.%d.%s", l, per_layer[k].hf);
            t[n].rows = rows, t[n].cols = cols;
            t[n].data = p->t[q] ? p->t[q] + (size_t)l * slice_numel(c, q) + first * (cols ? cols : 1) : NULL;  // (NULL: names only)
            n++;
        }
    snprintf(t[n].name, sizeof t[n].name, "model.norm.weight");
    t[n].rows = (size_t)c->C, t[n].cols = 0, t[n].data = p->lnfw, n++;
    if (c->untied && !c->num_classes) {  // (a classifier's file has score.weight instead: ...ForSequenceClassification)
        snprintf(t[n].name, sizeof t[n].name, "lm_head.weight");
        t[n].rows = (size_t)c->V, t[n].cols = (size_t)c->C, t[n].data = p->lm_head, n++;
    }
    if (c->num_classes) {
        snprintf(t[n].name, sizeof t[n].name, "score.weight");
        t[n].rows = (size_t)c->num_classes, t[n].cols = (size_t)c->C, t[n].data = p->cls_w, n++;
    }
    return n;
}

// The text of a top-level value in a JSON object, or NULL when the key is absent.
static const char* json_value(const char* text, size_t len, const char* key, const char* path) {
    Json j = json_begin(text, len, path);
    json_expect(&j, '{');
    if (json_peek(&j) == '}') return NULL;
    for (;;) {
        char k[128];
        json_string(&j, k, sizeof k);
        json_expect(&j, ':');
        json_peek(&j);  // past the whitespace
        if (!strcmp(k, key)) return json_here(&j);
        json_skip(&j, 0);
        int d = json_peek(&j);
        if (d == ',') { json_next(&j); continue; }
        if (d == '}') return NULL;
        json_fail(&j, "expected ',' or '}'");
    }
}
// Does the value of key start with `want` (e.g. "true", "\"none\"")?
static int json_is(const char* text, size_t len, const char* key, const char* path, const char* want) {
    const char* v = json_value(text, len, key, path);
    return v && !strncmp(v, want, strlen(want));
}
// Is key absent, null, or an empty object (rank_pattern: {} when every module has rank r)?
static int json_empty(const char* text, size_t len, const char* key, const char* path) {
    const char* v = json_value(text, len, key, path);
    if (!v || !strncmp(v, "null", 4)) return 1;
    if (*v++ != '{') return 0;
    while (*v == ' ' || *v == '\n' || *v == '\r' || *v == '\t') v++;
    return *v == '}';
}

// config.json's fields. A key that is absent or null takes transformers' default (LlamaConfig, Qwen2Config).
// The text of a key's value that is not null, or NULL.
static const char* cfg_value(const char* text, size_t n, const char* key, const char* cfg) {
    const char* v = json_value(text, n, key, cfg);
    return v && strncmp(v, "null", 4) ? v : NULL;
}
// A string field into out; 0 when absent or null.
static int cfg_string(const char* text, size_t n, const char* key, const char* cfg, char* out, size_t cap) {
    const char* v = cfg_value(text, n, key, cfg);
    if (!v) return 0;
    if (*v != '"') fail_at(cfg, "see the model's config.json on the Hugging Face hub", "%s must be a string", key);
    Json j = json_begin(v, n - (size_t)(v - text), cfg);
    json_string(&j, out, cap);
    return 1;
}
static int cfg_bool(const char* text, size_t n, const char* key, const char* cfg, int dflt) {
    const char* v = cfg_value(text, n, key, cfg);
    if (!v) return dflt;
    if (!strncmp(v, "true", 4)) return 1;
    if (!strncmp(v, "false", 5)) return 0;
    fail_at(cfg, "see the model's config.json on the Hugging Face hub", "%s must be true or false", key);
    return 0;
}
// A number field; 0 when absent or null. A value that is neither a number nor null is refused.
static int cfg_number(const char* text, size_t n, const char* key, const char* cfg, double* out) {
    const char* v = cfg_value(text, n, key, cfg);
    if (!v) return 0;
    if (!json_get_number(text, n, key, cfg, out) || !isfinite(*out))
        fail_at(cfg, "see the model's config.json on the Hugging Face hub", "%s must be a number", key);
    return 1;
}
// A whole-number field in [lo, hi]: required (absent: an error naming it) unless dflt >= lo.
static int cfg_int(const char* text, size_t n, const char* key, const char* cfg, int lo, int hi, int dflt) {
    double v;
    if (!cfg_number(text, n, key, cfg, &v)) {
        if (dflt >= lo) return dflt;
        fail_at(cfg, "a Llama / Qwen2 config.json gives hidden_size, intermediate_size, num_attention_heads, "
                "num_hidden_layers and vocab_size", "%s is missing", key);
    }
    if (!(v >= lo && v <= hi) || v != floor(v))
        fail_at(cfg, "config.json's numbers must describe a model this program can build", "%s is %g, expected a whole number in [%d, %d]",
                key, v, lo, hi);
    return (int)v;
}
// A feature this program does not implement: one line naming the key, its value and what is supported.
static void cfg_unsupported(const char* cfg, const char* key, const char* value, const char* supported) {
    fail_at(cfg, "this program implements the Llama / Qwen2 features of SmolLM2 and Qwen2.5: convert or choose another model",
            "%s is %s: not supported (supported: %s)", key, value, supported);
}

// The config of a Llama / Qwen2 folder from its config.json (text, n bytes); model_type is "llama" or "qwen2".
// Shapes are checked against it tensor by tensor by load_hf_llama.
static GPTConfig llama_config_json(const char* text, size_t n, const char* cfg, const char* model_type) {
    GPTConfig c = {0};
    int qwen = !strcmp(model_type, "qwen2");
    char s[64], v[96];
    c.arch = ARCH_LLAMA;
    c.C = cfg_int(text, n, "hidden_size", cfg, 1, MAX_CHANNELS, 0);
    c.F = cfg_int(text, n, "intermediate_size", cfg, 1, MAX_WIDTH, 0);
    c.NH = cfg_int(text, n, "num_attention_heads", cfg, 1, MAX_CHANNELS, 0);
    c.L = cfg_int(text, n, "num_hidden_layers", cfg, 1, MAX_LAYERS, 0);
    c.V = cfg_int(text, n, "vocab_size", cfg, 1, MAX_VOCAB, 0);
    c.n_kv_heads = cfg_int(text, n, "num_key_value_heads", cfg, 1, MAX_CHANNELS, c.NH);
    c.maxT = cfg_int(text, n, "max_position_embeddings", cfg, 1, MAX_POSITIONS, qwen ? 32768 : 2048);
    if (c.C % c.NH || (c.C / c.NH) % 2)
        fail_at(cfg, "RoPE turns pairs of a head's channels: the head size hidden_size / num_attention_heads must be whole and even",
                "hidden_size %d, num_attention_heads %d", c.C, c.NH);
    if (c.NH % c.n_kv_heads)
        fail_at(cfg, "grouped-query attention shares each key/value head among num_attention_heads / num_key_value_heads query heads",
                "num_key_value_heads %d does not divide num_attention_heads %d", c.n_kv_heads, c.NH);
    double d;
    if (cfg_number(text, n, "head_dim", cfg, &d) && d != c.C / c.NH)
        snprintf(v, sizeof v, "%g", d), cfg_unsupported(cfg, "head_dim", v, "hidden_size / num_attention_heads");
    c.norm_eps = 1e-6f;  // LlamaConfig's and Qwen2Config's default
    if (cfg_number(text, n, "rms_norm_eps", cfg, &d)) {
        if (!(d > 0 && d < 1)) fail_at(cfg, "rms_norm_eps is a small positive number (1e-5, 1e-6)", "rms_norm_eps is %g", d);
        c.norm_eps = (float)d;
    }
    c.rope_theta = 10000.0f;
    if (cfg_number(text, n, "rope_theta", cfg, &d)) {
        if (!(d > 1 && d < 1e30)) fail_at(cfg, "rope_theta is RoPE's base (10000, 100000, 1e6)", "rope_theta is %g", d);
        c.rope_theta = (float)d;
    }
    if (cfg_string(text, n, "hidden_act", cfg, s, sizeof s) && strcmp(s, "silu"))
        snprintf(v, sizeof v, "\"%.60s\"", s), cfg_unsupported(cfg, "hidden_act", v, "\"silu\" (SwiGLU)");
    if (cfg_bool(text, n, "mlp_bias", cfg, 0)) cfg_unsupported(cfg, "mlp_bias", "true", "false");
    if (!qwen && cfg_bool(text, n, "attention_bias", cfg, 0))
        cfg_unsupported(cfg, "attention_bias", "true", "false for llama (Qwen2's q/k/v biases: model_type qwen2)");
    if (qwen && cfg_bool(text, n, "use_sliding_window", cfg, 0))
        cfg_unsupported(cfg, "use_sliding_window", "true", "false (full causal attention)");
    const char* moe[] = {"num_experts", "num_local_experts", "n_routed_experts"};
    for (int k = 0; k < 3; k++)
        if (cfg_number(text, n, moe[k], cfg, &d) && d > 1)
            snprintf(v, sizeof v, "%g", d), cfg_unsupported(cfg, moe[k], v, "dense models (no mixture of experts)");
    const char* rs = cfg_value(text, n, "rope_scaling", cfg);
    if (rs) {  // {"rope_type" (or "type"): "linear", "factor": f}; "default" is none
        if (*rs != '{') cfg_unsupported(cfg, "rope_scaling", "not an object", "null, {\"rope_type\": \"linear\", \"factor\": f}");
        Json j = json_begin(rs, n - (size_t)(rs - text), cfg);
        char type[64] = "", k[64];
        double factor = 0;
        json_expect(&j, '{');
        while (json_peek(&j) != '}') {
            json_string(&j, k, sizeof k);
            json_expect(&j, ':');
            if ((!strcmp(k, "type") || !strcmp(k, "rope_type")) && json_peek(&j) == '"') json_string(&j, type, sizeof type);
            else if (!strcmp(k, "factor") && json_peek(&j) != '"' && json_peek(&j) != 'n') factor = json_number(&j);
            else json_skip(&j, 0);
            if (json_peek(&j) == ',') json_next(&j);
            else if (json_peek(&j) != '}') json_fail(&j, "expected ',' or '}'");
        }
        if (!strcmp(type, "linear")) {
            if (!(factor >= 1 && factor < 1e6)) snprintf(v, sizeof v, "linear with factor %g", factor), cfg_unsupported(cfg, "rope_scaling", v, "a factor >= 1");
            c.rope_factor = factor == 1 ? 0.0f : (float)factor;
        } else if (strcmp(type, "default")) {
            snprintf(v, sizeof v, "{\"rope_type\": \"%.40s\"}", type);
            cfg_unsupported(cfg, "rope_scaling", v, "null, \"default\", \"linear\"");
        }
    }
    c.untied = !cfg_bool(text, n, "tie_word_embeddings", cfg, 0);  // transformers' default: untied
    c.qkv_bias = qwen;  // Qwen2Attention: q, k, v with bias, o without
    c.Vp = pad_vocab(c.V);
    if (mlp_width(&c) == 4 * c.C) c.F = 0;  // (F = 0 means 4C, as for GPT-2)
    return c;
}

// A Hugging Face name, or the same without "model." (LlamaModel's own files have no prefix).
static const StTensor* llama_find(const SafeTensors* st, const char* name) {
    const StTensor* t = st_find(st, name);
    if (!t && !strncmp(name, "model.", 6)) t = st_find(st, name + 6);
    return t;
}

// Loads a Llama / Qwen2 model.safetensors (F32, F16, BF16: st_read_f32 widens them exactly) whose config.json
// (text) says model_type llama or qwen2. Every tensor the config needs must be there once with exactly its
// shape, and nothing else (but rotary_emb.inv_freq buffers, and a tied lm_head.weight equal to the embedding).
static void load_hf_llama(GPT* model, SafeTensors* st, const char* path, const char* text, size_t n, const char* cfg,
                          const char* model_type) {
    GPTConfig c = llama_config_json(text, n, cfg, model_type);
    const StTensor* score = st_find(st, "score.weight");  // LlamaForSequenceClassification's head, (K, C)
    if (score) {
        if (score->ndim != 2 || score->shape[1] != c.C || score->shape[0] < 2 || score->shape[0] > MAX_WIDTH)
            fail_at(path, "score.weight must be (K, C) with K >= 2", "score.weight has a bad shape");
        c.num_classes = (int)score->shape[0];
        c.untied = 0;  // a classifier has no LM head: tie_word_embeddings does not matter
    }
    check_config(&c, cfg, "config.json");
    int nt = llama_num_tensors(&c);
    HfTensor* want = (HfTensor*)mallocCheck((size_t)nt * sizeof(HfTensor));
    ParameterTensors none;
    memset(&none, 0, sizeof none);
    nt = llama_tensors(&c, &none, want);  // the names and shapes (no memory yet)
    const StTensor** found = (const StTensor**)callocCheck((size_t)nt, sizeof(StTensor*));
    char* used = (char*)callocCheck((size_t)st->n + 1, 1);
    for (int i = 0; i < nt; i++) {
        const StTensor* t = llama_find(st, want[i].name);
        if (!t)
            fail_at(path, c.untied && !strcmp(want[i].name, "lm_head.weight") ? "tie_word_embeddings is false (transformers' default): the file needs lm_head.weight"
                                                                             : "the checkpoint is incomplete, or config.json is not its config",
                    "missing tensor '%s'", want[i].name);
        int nd = want[i].cols ? 2 : 1;
        if (t->ndim != nd || (uint64_t)t->shape[0] != want[i].rows || (nd == 2 && (uint64_t)t->shape[1] != want[i].cols)) {
            char got[200] = "";
            for (int d = 0, len = 0; d < t->ndim && len < 150; d++)
                len += snprintf(got + len, sizeof got - (size_t)len, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
            fail_at(path, "the checkpoint does not match its config.json", "tensor '%s' has shape [%s], expected [%zu%s%.0zu]", t->name, got,
                    want[i].rows, nd == 2 ? ", " : "", want[i].cols);
        }
        used[t - st->t] = 1, found[i] = t;
    }
    const StTensor* tied = c.untied || c.num_classes ? NULL : st_find(st, "lm_head.weight");  // some tied files repeat it
    if (tied) {
        if (tied->ndim != 2 || tied->shape[0] != c.V || tied->shape[1] != c.C)
            fail_at(path, "lm_head.weight must be (vocab_size, hidden_size)", "tensor 'lm_head.weight' has a bad shape");
        used[tied - st->t] = 1;
    }
    for (int i = 0; i < st->n; i++) {
        const char* s = st->t[i].name;
        size_t k = strlen(s), tail = strlen("rotary_emb.inv_freq");
        if (!used[i] && !(k >= tail && !strcmp(s + k - tail, "rotary_emb.inv_freq")))  // old transformers saved the RoPE frequencies
            fail_at(path, "this loader reads LlamaForCausalLM, Qwen2ForCausalLM and LlamaForSequenceClassification checkpoints",
                    "unexpected tensor '%s'", s);
    }
    free(used);
    check_model_memory(path, (double)num_parameters(&c) * 8);
    gpt_build(model, c);
    nt = llama_tensors(&c, &model->params, want);
    for (int i = 0; i < nt; i++) st_read_f32(st, found[i], want[i].data);
    if (tied) {  // a repeated tied head must be the embedding itself, or the file is two models in one
        float* tmp = (float*)mallocCheck((size_t)c.V * c.C * sizeof(float));
        st_read_f32(st, tied, tmp);
        if (memcmp(tmp, model->params.wte, (size_t)c.V * c.C * sizeof(float)))
            fail_at(path, "set tie_word_embeddings to false in config.json to keep a separate lm_head",
                    "tie_word_embeddings is true but lm_head.weight differs from model.embed_tokens.weight");
        free(tmp);
    }
    free(found);
    free(want);
}

// The base model as a Hugging Face folder: model.safetensors (F32) and config.json. A model with Qwen2's
// q/k/v biases is written as model_type qwen2 (LlamaConfig's attention_bias would add an o_proj bias too),
// else llama; a class head makes it ...ForSequenceClassification (score.weight).
static void fmt_float(char* out, size_t cap, float x) {  // the shortest %g that reads back as the same float
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(out, cap, "%.*g", digits, (double)x);
        if (strtof(out, NULL) == x) return;
    }
}
static void export_hf_llama(const GPT* model, const char* dir) {
    const GPTConfig* c = &model->config;
    int nt = llama_num_tensors(c);
    HfTensor* t = (HfTensor*)mallocCheck((size_t)nt * sizeof(HfTensor));
    StOut* o = (StOut*)callocCheck((size_t)nt, sizeof(StOut));
    nt = llama_tensors(c, &model->params, t);
    for (int i = 0; i < nt; i++) {
        snprintf(o[i].name, sizeof o[i].name, "%s", t[i].name);
        o[i].rows = t[i].rows, o[i].cols = t[i].cols, o[i].data = t[i].data;
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_write(path, o, nt);
    free(o), free(t);
    const char* type = c->qkv_bias ? "qwen2" : "llama";
    const char* arch = c->qkv_bias ? (c->num_classes ? "Qwen2ForSequenceClassification" : "Qwen2ForCausalLM")
                                   : (c->num_classes ? "LlamaForSequenceClassification" : "LlamaForCausalLM");
    char eps[32], theta[32], factor[32];
    fmt_float(eps, sizeof eps, c->norm_eps > 0 ? c->norm_eps : 1e-5f);  // (0 means 1e-5: llama_spec)
    fmt_float(theta, sizeof theta, c->rope_theta);
    fmt_float(factor, sizeof factor, c->rope_factor);
    snprintf(path, sizeof path, "%s/config.json", dir);
    SafeWriter w;
    safe_open(&w, path);
    fprintf(w.f, "{\n  \"model_type\": \"%s\",\n  \"architectures\": [\"%s\"],\n  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n"
            "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n  \"num_hidden_layers\": %d,\n"
            "  \"vocab_size\": %d,\n  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %s,\n  \"rope_theta\": %s,\n",
            type, arch, c->C, mlp_width(c), c->NH, c->n_kv_heads ? c->n_kv_heads : c->NH, c->C / c->NH, c->L, c->V, c->maxT, eps, theta);
    if (c->rope_factor > 0 && c->rope_factor != 1)
        // ("type", not "rope_type": transformers before 4.42 wanted exactly type and factor; later ones copy type to rope_type)
        fprintf(w.f, "  \"rope_scaling\": {\"type\": \"linear\", \"factor\": %s},\n", factor);
    else
        fprintf(w.f, "  \"rope_scaling\": null,\n");
    fprintf(w.f, "  \"tie_word_embeddings\": %s,\n  \"hidden_act\": \"silu\",\n  \"mlp_bias\": false,\n", c->untied && !c->num_classes ? "false" : "true");
    if (c->qkv_bias) fprintf(w.f, "  \"use_sliding_window\": false,\n");
    else fprintf(w.f, "  \"attention_bias\": false,\n");
    if (c->num_classes) fprintf(w.f, "  \"num_labels\": %d,\n  \"pad_token_id\": %d,\n", c->num_classes, c->V - 1);
    fprintf(w.f, "  \"attention_dropout\": 0.0,\n  \"initializer_range\": 0.02,\n  \"torch_dtype\": \"float32\"\n}\n");
    safe_close(&w);
}

// ---------------------------------------------------------------------------- Hugging Face model.safetensors
// GPT-2 (GPT2Model / GPT2LMHeadModel / ...ForSequenceClassification / ...ForTokenClassification), or Llama /
// Qwen2 when the config.json beside it says model_type llama or qwen2 (load_hf_llama).
// The config.json beside a .safetensors file (cap bytes).
static void hf_config_path(const char* path, char* cfg, size_t cap) {
    snprintf(cfg, cap, "%s", path);
    char* slash = strrchr(cfg, '/');
    snprintf(slash ? slash + 1 : cfg, cap - (slash ? (size_t)(slash + 1 - cfg) : 0), "config.json");
}

static void load_hf_safetensors(GPT* model, const char* path) {
    SafeTensors st;
    st_open(&st, path);
    char cfgp[1200], model_type[64] = "";
    hf_config_path(path, cfgp, sizeof cfgp);
    struct stat cb;
    if (stat(cfgp, &cb) == 0) {  // model_type picks the layout: gpt2 (or none: GPT-2, as before), llama, qwen2
        size_t n;
        char* text = rd_small_file(cfgp, 16u << 20, &n);
        cfg_string(text, n, "model_type", cfgp, model_type, sizeof model_type);
        if (!strcmp(model_type, "llama") || !strcmp(model_type, "qwen2")) {
            load_hf_llama(model, &st, path, text, n, cfgp, model_type);
            free(text);
            st_close(&st);
            return;
        }
        free(text);
        if (model_type[0] && strcmp(model_type, "gpt2")) {
            char v[96];
            snprintf(v, sizeof v, "\"%.60s\"", model_type);
            cfg_unsupported(cfgp, "model_type", v, "\"gpt2\", \"llama\", \"qwen2\"");
        }
    }
    if (llama_find(&st, "model.embed_tokens.weight"))
        fail_at(path, "put the model's config.json (model_type llama or qwen2) next to model.safetensors",
                "a Llama-layout checkpoint (model.embed_tokens.weight) needs its config.json%s", model_type[0] ? ", not a gpt2 one" : "");
    GPTConfig c = hf_config(&st, path);
    const StTensor* score = st_find(&st, "score.weight");  // GPT2ForSequenceClassification's head
    if (score) {
        if (score->ndim != 2 || score->shape[1] != c.C || score->shape[0] < 2 || score->shape[0] > MAX_WIDTH)
            fail_at(path, "score.weight must be (K, C) with K >= 2", "score.weight has a bad shape");
        c.num_classes = (int)score->shape[0];
    }
    const StTensor *tw = st_find(&st, "classifier.weight"), *tb = st_find(&st, "classifier.bias");  // GPT2ForTokenClassification
    if (tw || tb) {
        if (!tw || !tb || score || tw->ndim != 2 || tw->shape[1] != c.C || tw->shape[0] < 2 || tw->shape[0] > MAX_WIDTH ||
            tb->ndim != 1 || tb->shape[0] != tw->shape[0])
            fail_at(path, "classifier.weight must be (E, C) and classifier.bias (E), with E >= 2 and no score.weight", "a bad token head");
        c.num_tags = (int)tw->shape[0];
    }
    // Before anything is allocated: every tensor the model needs is there with exactly its shape, and every
    // tensor there is one the model needs (or the attention-mask buffers and the tied lm_head, ignored).
    char* used = (char*)callocCheck((size_t)st.n + 1, 1);
    if (score) used[score - st.t] = 1;
    if (tw) used[tw - st.t] = used[tb - st.t] = 1;
    for (int p = 0; p < NUM_BASE_PARAMS; p++)
        for (int l = 0; l < (param_per_layer(p) ? c.L : 1); l++) {
            char name[128];
            if (param_per_layer(p)) snprintf(name, sizeof name, "h.%d.%s", l, PARAM_TABLE[p].hf);
            else snprintf(name, sizeof name, "%s", PARAM_TABLE[p].hf);
            const StTensor* t = hf_find(&st, name);
            if (!t) fail_at(path, "the checkpoint is incomplete or not GPT-2", "missing tensor '%s'", name);
            if (used[t - st.t]) fail_at(path, "the file is corrupt: each tensor appears once", "tensor '%s' appears twice", name);
            used[t - st.t] = 1;
            int64_t want[2];
            int nd = hf_shape(&c, p, want);
            if (t->ndim != nd || t->shape[0] != want[0] || (nd == 2 && t->shape[1] != want[1])) {
                char got[200] = "", exp[64];
                for (int d = 0, len = 0; d < t->ndim && len < 150; d++)
                    len += snprintf(got + len, sizeof got - (size_t)len, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
                if (nd == 2) snprintf(exp, sizeof exp, "%lld, %lld", (long long)want[0], (long long)want[1]);
                else snprintf(exp, sizeof exp, "%lld", (long long)want[0]);
                fail_at(path, "the checkpoint does not match its config (Conv1D weights are stored (in, out))",
                        "tensor '%s' has shape [%s], expected [%s]", name, got, exp);
            }
        }
    for (int i = 0; i < st.n; i++) {
        const char* b = hf_base_name(st.t[i].name);
        const char* dot = strrchr(b, '.');
        int ignored = !strcmp(b, "lm_head.weight") || (dot && (!strcmp(dot, ".bias") || !strcmp(dot, ".masked_bias")) &&
                                                        strstr(b, ".attn.") && !strstr(b, "c_attn") && !strstr(b, "c_proj"));
        if (!used[i] && !ignored)
            fail_at(path, "this loader reads GPT-2 (GPT2Model / GPT2LMHeadModel) checkpoints", "unexpected tensor '%s'", st.t[i].name);
    }
    free(used);
    check_model_memory(path, (double)num_parameters(&c) * 8);  // the weights, and the conversion buffer at most as large
    gpt_build(model, c);
    if (score) st_read_f32(&st, score, model->params.cls_w);
    if (tw) st_read_f32(&st, tw, model->params.tok_w), st_read_f32(&st, tb, model->params.tok_b);
    for (int p = 0; p < NUM_BASE_PARAMS; p++) {
        int layers = param_per_layer(p) ? c.L : 1;
        size_t per = p == 0 ? (size_t)c.V * c.C : param_numel(&c, p) / layers;  // wte: only the first V rows are stored
        float* tmp = (float*)mallocCheck(per * sizeof(float));
        for (int l = 0; l < layers; l++) {
            char name[128];
            if (param_per_layer(p)) snprintf(name, sizeof name, "h.%d.%s", l, PARAM_TABLE[p].hf);
            else snprintf(name, sizeof name, "%s", PARAM_TABLE[p].hf);
            const StTensor* t = hf_find(&st, name);
            float* dst = model->params.t[p] + (size_t)l * per;
            if (PARAM_TABLE[p].hf_transposed) {  // (in, out) -> (out, in)
                st_read_f32(&st, t, tmp);
                size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1];
                for (size_t r = 0; r < rows; r++)
                    for (size_t k = 0; k < cols; k++) dst[k * rows + r] = tmp[r * cols + k];
            } else {
                st_read_f32(&st, t, dst);
            }
        }
        free(tmp);
    }
    st_close(&st);
}

// ---------------------------------------------------------------------------- Hugging Face GPT-2 and llm.c
// The base model in transformers' layout: model.safetensors (h.N.attn.c_attn.weight etc., the Conv1D matrices
// transposed) and config.json, so GPT2LMHeadModel.from_pretrained(DIR) loads it, or with a class head
// GPT2ForSequenceClassification (score.weight). LoRA must be merged first (export's --merge 1); adapters and
// prefixes have no place in GPT-2's layout.
static void export_hf(const GPT* model, const char* dir) {
    const GPTConfig* c = &model->config;
    if (model->q8_memory)
        failf("export the fp32 model, or use --format gguf --dtype q8_0, which keeps int8 weights",
              "%s: the model's weights are int8; Hugging Face GPT-2 files hold floats", dir);
    make_dirs(dir);
    if (c->arch == ARCH_LLAMA) {
        if (c->num_tags) failf("keep the token head in our format: the Llama export has the LM head or score", "%s: the model has a %d-tag head", dir, c->num_tags);
        export_hf_llama(model, dir);
        return;
    }
    StOut* t = (StOut*)callocCheck((size_t)NUM_BASE_PARAMS * c->L + 3, sizeof(StOut));
    int n = 0;
    for (int p = 0; p < NUM_BASE_PARAMS; p++)
        for (int l = 0; l < (param_per_layer(p) ? c->L : 1); l++, n++) {
            slice_shape(c, p, &t[n].rows, &t[n].cols);
            t[n].data = model->params.t[p] + (size_t)l * slice_numel(c, p);
            t[n].transpose = PARAM_TABLE[p].hf_transposed;
            if (param_per_layer(p)) snprintf(t[n].name, sizeof t[n].name, "h.%d.%s", l, PARAM_TABLE[p].hf);
            else snprintf(t[n].name, sizeof t[n].name, "%s", PARAM_TABLE[p].hf);
        }
    if (c->num_classes) {  // GPT2ForSequenceClassification's head, (K, C) as ours
        snprintf(t[n].name, sizeof t[n].name, "score.weight");
        t[n].rows = (size_t)c->num_classes, t[n].cols = (size_t)c->C, t[n].data = model->params.cls_w;
        n++;
    }
    for (int p = PIDX(tok_w); c->num_tags && p <= PIDX(tok_b); p++, n++) {  // GPT2ForTokenClassification's classifier
        snprintf(t[n].name, sizeof t[n].name, "%s", PARAM_TABLE[p].hf);
        slice_shape(c, p, &t[n].rows, &t[n].cols);
        t[n].data = model->params.t[p];
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_write(path, t, n);
    free(t);
    snprintf(path, sizeof path, "%s/config.json", dir);
    SafeWriter w;
    safe_open(&w, path);
    fprintf(w.f, "{\n  \"model_type\": \"gpt2\",\n  \"architectures\": [\"%s\"],\n  \"n_layer\": %d,\n  \"n_head\": %d,\n"
            "  \"n_embd\": %d,\n  \"n_positions\": %d,\n  \"n_ctx\": %d,\n  \"vocab_size\": %d,\n  \"layer_norm_epsilon\": 1e-05,\n"
            "  \"activation_function\": \"gelu_new\",\n  \"resid_pdrop\": 0.0,\n  \"embd_pdrop\": 0.0,\n  \"attn_pdrop\": 0.0",
            c->num_classes ? "GPT2ForSequenceClassification" : c->num_tags ? "GPT2ForTokenClassification" : "GPT2LMHeadModel", c->L, c->NH, c->C, c->maxT, c->maxT, c->V);
    if (mlp_width(c) != 4 * c->C) fprintf(w.f, ",\n  \"n_inner\": %d", mlp_width(c));  // transformers: null means 4C
    if (head_labels(c)) fprintf(w.f, ",\n  \"num_labels\": %d,\n  \"pad_token_id\": %d", head_labels(c), c->V - 1);
    fprintf(w.f, "\n}\n");
    safe_close(&w);
}

// llm.c's model file: its 256-int header and the 16 GPT-2 tensors in our table order (which is llm.c's).
static void export_llmc(const GPT* model, const char* path) {
    const GPTConfig* c = &model->config;
    if (model->q8_memory)
        failf("export the fp32 model, or use --format gguf --dtype q8_0, which keeps int8 weights",
              "%s: the model's weights are int8; llm.c's file holds fp32", path);
    if (mlp_width(c) != 4 * c->C)
        failf("llm.c's GPT-2 has an MLP of width 4C; --format safetensors (n_inner) or gguf keep another width",
              "%s: the model's MLP width is %d, not 4C = %d", path, mlp_width(c), 4 * c->C);
    SafeWriter w;
    safe_open(&w, path);
    int32_t h[256] = {0};
    h[0] = 20240326, h[1] = 3, h[2] = c->maxT, h[3] = c->V, h[4] = c->L, h[5] = c->NH, h[6] = c->C, h[7] = c->Vp;
    fwrite_check(h, sizeof h, w.f, path);
    fwrite_check(model->params_memory, num_base_parameters(c) * 4, w.f, path);  // the base comes first in memory
    safe_close(&w);
}

// ---------------------------------------------------------------------------- llm.c model files
// llm.c's format: 256 int32 [0]=20240326 [1]=3 (fp32) [2]=maxT [3]=V [4]=L [5]=NH [6]=C [7]=Vp, then every
// parameter as fp32 in this project's table order (which is llm.c's).
#define LLMC_MODEL_MAGIC 20240326

static void load_llmc(GPT* model, const char* path) {
    Reader r = rd_open(path);
    int32_t h[256];
    rd_bytes(&r, h, sizeof h, "the llm.c header");
    if (h[1] == 5) fail_at(path, "use the fp32 file (gpt2_124M.bin), not gpt2_124M_bf16.bin", "llm.c bf16 checkpoints (version 5) are not supported");
    if (h[1] != 3) fail_at(path, "re-export with llm.c's train_gpt2.py", "llm.c model version %d, expected 3 (fp32)", h[1]);
    GPTConfig c = {.maxT = h[2], .V = h[3], .Vp = h[7], .L = h[4], .NH = h[5], .C = h[6]};
    check_config(&c, path, "llm.c header");
    uint64_t nb = num_base_parameters(&c), expect = 1024 + nb * 4;  // no overflow within check_config's limits
    if (r.size != expect)
        fail_at(path, "the file is truncated or the header does not match the data", "expected %llu bytes for this config, found %llu",
                (unsigned long long)expect, (unsigned long long)r.size);
    check_model_memory(path, (double)nb * 4);
    gpt_build(model, c);
    rd_bytes(&r, model->params_memory, nb * 4, "the parameters");
    rd_close(&r);
}

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
// [20] = bytes of the label names at the very end (0: none): a classification model's class names, per class
// id a uint32 length (1 to 255) and that many bytes, so eval/classify can refuse data whose ids mean other
// classes and classify can print the names; a token-classification model's tag names the same way.
// [21] = num_tags, E of the token-classification head (0: none; the head kind is token when it is not 0).
// [22] = architecture (model.h's Arch: 0 GPT-2 decoder,
// 1 encoder; 0 in every file written before it existed) [23] = the encoder's [MASK] token id (0 for GPT-2).
// Multi-task (multitask.c): [24] = tasks (0: a single-task model), [25] = bytes of the task table, which
// follows the label names: per task a uint32 name length (1 to 63), the name, and int32 kind (0 lm, 1 cls),
// k0, nk (its rows of cls_w; the label names section holds all K names, task by task); [26] = 1 when the
// tied LM head runs too (GPTConfig.lm_head_too).
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
    h[21] = c->num_tags;
    h[22] = c->arch;
    h[23] = c->mask_id;
    h[28] = c->n_kv_heads;  // Llama's fields ([28..33]); 0 in every other model
    memcpy(&h[29], &c->rope_theta, 4);
    memcpy(&h[30], &c->norm_eps, 4);
    h[31] = c->untied;
    h[32] = c->qkv_bias;
    memcpy(&h[33], &c->rope_factor, 4);
}

static GPTConfig ckpt_config(const int32_t h[256], const char* path) {
    GPTConfig c = {.maxT = h[3], .V = h[4], .Vp = h[8], .L = h[5], .NH = h[6], .C = h[7], .F = h[18], .lora_r = h[10],
                   .lora_targets = h[11], .adapter_dim = h[13], .prefix_len = h[14], .num_classes = h[15],
                   .lora_first = h[16], .lora_last = h[17], .lm_head_too = h[26], .arch = h[22], .mask_id = h[23], .num_tags = h[21]};
    memcpy(&c.lora_alpha, &h[12], 4);
    c.n_kv_heads = h[28], c.untied = h[31], c.qkv_bias = h[32];
    memcpy(&c.rope_theta, &h[29], 4);
    memcpy(&c.norm_eps, &h[30], 4);
    memcpy(&c.rope_factor, &h[33], 4);
    check_config(&c, path, "checkpoint header");
    if (h[19] != 0 && h[19] != 1) fail_at(path, "the header is corrupt", "int8 flag %d, expected 0 or 1", h[19]);
    if (h[19]) check_q8_config(&c, path);
    if (h[26] != 0 && h[26] != 1) fail_at(path, "the header is corrupt", "LM-head flag %d, expected 0 or 1", h[26]);
    return c;
}

// Checks the magic, version, kind and table size of a header; returns the kind.
static int ckpt_kind(const int32_t h[256], const char* path) {
    if (h[0] != CKPT_MAGIC) fail_at(path, "is this a finetune.c checkpoint?", "magic %d, expected %d", h[0], CKPT_MAGIC);
    if (h[1] != CKPT_VERSION) fail_at(path, "was it written by a newer finetune.c?", "checkpoint version %d, expected %d", h[1], CKPT_VERSION);
    if (h[9] < NUM_BASE_PARAMS || h[9] > NUM_PARAMS)  // fewer: an older table (ckpt_num_tensors checks the rest is empty)
        fail_at(path, "was it written by a newer version of finetune.c?", "checkpoint has %d parameter tensors, expected %d to %d", h[9], NUM_BASE_PARAMS, NUM_PARAMS);
    if (h[2] != CKPT_MODEL && h[2] != CKPT_TRAIN && h[2] != CKPT_ADAPTER)
        fail_at(path, "the header is corrupt", "checkpoint kind %d, expected 1 (model), 2 (training state) or 3 (adapter)", h[2]);
    return h[2];
}

// The label-names section: its size, and writing and reading it (the lengths checked against the section).
static uint32_t ckpt_names_bytes(const GPT* model) {
    if (!model->label_names || !head_labels(&model->config)) return 0;
    uint32_t n = 0;
    for (int k = 0; k < head_labels(&model->config); k++) n += 4 + (uint32_t)strlen(model->label_names[k]);
    return n;
}
static void ckpt_write_names(const GPT* model, FILE* f, const char* path) {
    for (int k = 0; ckpt_names_bytes(model) && k < head_labels(&model->config); k++) {
        uint32_t n = (uint32_t)strlen(model->label_names[k]);
        fwrite_check(&n, 4, f, path);
        fwrite_check(model->label_names[k], n, f, path);
    }
}
static void ckpt_check_names_bytes(const int32_t h[256], const char* path) {
    int32_t K = h[21] ? h[21] : h[15];  // tag names (token head) or class names
    if (h[20] < 0 || h[20] > K * (4 + 255) || (h[20] && h[20] < K * 5))
        fail_at(path, "the header is corrupt", "label-name section of %d bytes for %d classes", h[20], K);
}
static void ckpt_read_names(Reader* r, GPT* model, uint32_t bytes) {
    if (!bytes) return;
    int K = head_labels(&model->config);
    uint64_t end = r->pos + bytes;
    model->label_names = (char(*)[256])callocCheck((size_t)K, 256);
    for (int k = 0; k < K; k++) {
        uint32_t n = rd_u32(r, "the label names");
        if (n < 1 || n > 255 || n > end - r->pos) fail_at(r->path, "the file is corrupt", "label name %d is %u bytes", k, n);
        rd_bytes(r, model->label_names[k], n, "the label names");
        if (memchr(model->label_names[k], 0, n)) fail_at(r->path, "the file is corrupt", "label name %d contains a NUL byte", k);
    }
    if (r->pos != end) fail_at(r->path, "the file is corrupt", "the label names end at byte %llu, the header says %llu",
                               (unsigned long long)r->pos, (unsigned long long)end);
}

// The task table (multi-task models): its size, and writing and reading it, every field checked.
static uint32_t ckpt_tasks_bytes(const GPT* model) {
    uint32_t n = 0;
    for (int t = 0; t < model->num_tasks; t++) n += 4 + (uint32_t)strlen(model->tasks[t].name) + 12;
    return n;
}
static void ckpt_write_tasks(const GPT* model, FILE* f, const char* path) {
    for (int t = 0; t < model->num_tasks; t++) {
        const TaskHead* th = &model->tasks[t];
        int32_t v[4] = {(int32_t)strlen(th->name), th->kind, th->k0, th->nk};
        fwrite_check(&v[0], 4, f, path);
        fwrite_check(th->name, (size_t)v[0], f, path);
        fwrite_check(&v[1], 12, f, path);
    }
}
static void ckpt_check_tasks_bytes(const int32_t h[256], const char* path) {
    if (h[24] < 0 || h[24] > 64 || h[25] < h[24] * 17 || h[25] > h[24] * (16 + 63))
        fail_at(path, "the header is corrupt", "task table of %d bytes for %d tasks", h[25], h[24]);
}
static void ckpt_read_tasks(Reader* r, GPT* model, int n, uint32_t bytes) {
    if (!n) return;
    uint64_t end = r->pos + bytes;
    model->tasks = (TaskHead*)callocCheck((size_t)n, sizeof(TaskHead));
    model->num_tasks = n;
    int K = model->config.num_classes, next = 0;  // the cls tasks' rows tile [0, K) in order
    for (int t = 0; t < n; t++) {
        TaskHead* th = &model->tasks[t];
        uint32_t len = rd_u32(r, "the task table");
        if (len < 1 || len > 63 || len > end - r->pos) fail_at(r->path, "the file is corrupt", "task name %d is %u bytes", t, len);
        rd_bytes(r, th->name, len, "the task table");
        int32_t v[3];
        rd_bytes(r, v, 12, "the task table");
        th->kind = v[0], th->k0 = v[1], th->nk = v[2];
        int ok = memchr(th->name, 0, len) == NULL && (th->kind == 0 ? th->nk == 0 && (model->config.lm_head_too || !K)
                                                                  : th->kind == 1 && th->k0 == next && th->nk >= 2 && th->nk <= K - next);
        if (!ok) fail_at(r->path, "the file is corrupt", "task %d ('%s'): kind %d, classes [%d, +%d) of K=%d", t, th->name, th->kind, th->k0, th->nk, K);
        if (th->kind == 1) next += th->nk;
    }
    if (next != K || r->pos != end)
        fail_at(r->path, "the file is corrupt", "the task table covers %d of K=%d classes and ends at byte %llu, the header says %llu",
                next, K, (unsigned long long)r->pos, (unsigned long long)end);
}

// Which tensors a file of this kind holds.
static int ckpt_holds(int kind, int i) { return kind != CKPT_ADAPTER || !param_is_base(i); }

static void save_checkpoint_kind(const GPT* model, const char* path, const TrainState* state, int kind) {
    SafeWriter w;
    safe_open(&w, path);
    const GPTConfig* c = &model->config;
    int32_t h[256];
    ckpt_header(h, c, kind);
    h[19] = model->q8_memory != NULL;
    h[20] = (int32_t)ckpt_names_bytes(model);
    h[24] = model->num_tasks;
    h[25] = (int32_t)ckpt_tasks_bytes(model);
    h[26] = c->lm_head_too;
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
    ckpt_write_names(model, w.f, path);
    ckpt_write_tasks(model, w.f, path);
    safe_close(&w);
}

static void save_checkpoint(const GPT* model, const char* path, const TrainState* state) {
    save_checkpoint_kind(model, path, state, state ? CKPT_TRAIN : CKPT_MODEL);
}

// Reads the parameter table of an open checkpoint (after the header) and checks it against config c.
// The tensors the file's table lists, h[9]: a file written before the table grew lists fewer, and then the
// tensors it lacks must have no elements under its config (a newer head it cannot have, say).
static int ckpt_num_tensors(const int32_t h[256], const GPTConfig* c, const char* path) {
    for (int i = h[9]; i < NUM_PARAMS; i++)
        if (param_numel(c, i))
            fail_at(path, "the header is corrupt", "its table ends at %d tensors, but %s (%s) has elements under its config", h[9],
                    PARAM_TABLE[i].name, PARAM_TABLE[i].shape);
    return h[9];
}

static void ckpt_read_table(Reader* r, const GPTConfig* c, int kind, int np) {
    for (int i = 0; i < np; i++) {
        char name[17] = {0};
        int64_t n;
        rd_bytes(r, name, 16, "the parameter table");
        rd_bytes(r, &n, 8, "the parameter table");
        int64_t want = ckpt_holds(kind, i) ? (int64_t)param_numel(c, i) : 0;
        if (strcmp(name, PARAM_TABLE[i].name) || n != want)
            fail_at(r->path, "the checkpoint's parameter table does not match this model definition",
                    "tensor %d is '%s' with %lld elements, expected '%s' (%s) with %lld", i, name, (long long)n,
                    PARAM_TABLE[i].name, PARAM_TABLE[i].shape, (long long)want);
    }
}

// Bytes of the tensors a checkpoint of this kind holds (int8 ones as n values and n/32 scales).
static uint64_t ckpt_tensor_bytes(const GPTConfig* c, int kind, int q8) {
    uint64_t n = 0;
    for (int i = 0; i < NUM_PARAMS; i++) {
        if (!ckpt_holds(kind, i)) continue;
        uint64_t k = param_numel(c, i);
        n += q8 && param_quantizable(i) ? k + k / Q8_GROUP * 4 : k * 4;
    }
    return n;
}

// A TrainState read from a file: every field a run could have written.
static void check_train_state(const TrainState* s, const char* path) {
    const char* bad = NULL;
    if (s->step < 0 || s->step > INT32_MAX / 2) bad = "step";
    else if (s->B < 1 || s->B > (1 << 24) || s->T < 1 || s->T > MAX_POSITIONS) bad = "batch shape B, T";
    else if (s->data_epoch > (1ull << 40) || s->data_pos > (1ull << 48)) bad = "data position";
    else if (!isnan(s->best_metric) && !isfinite(s->best_metric)) bad = "best metric";
    else if (s->best_step < 0 || s->best_step > s->step || s->bad_evals < 0 || s->bad_evals > s->step) bad = "early-stopping record";
    if (bad)
        fail_at(path, "the file is corrupt; resume from an earlier copy or start again",
                "training state: %s out of range (step %lld, B %lld, T %lld, epoch %llu, position %llu)", bad,
                (long long)s->step, (long long)s->B, (long long)s->T, (unsigned long long)s->data_epoch,
                (unsigned long long)s->data_pos);
}

// Loads our checkpoint. With state != NULL, it must be a training checkpoint and the optimizer state,
// trainable mask and TrainState are restored too. The whole file is checked against its header (size,
// table, ranges) before the model is built.
static void load_checkpoint(GPT* model, const char* path, TrainState* state) {
    Reader r = rd_open(path);
    int32_t h[256];
    rd_bytes(&r, h, sizeof h, "the checkpoint header");
    int kind = ckpt_kind(h, path);
    if (kind == CKPT_ADAPTER)
        fail_at(path, "load the base model with --model and this file with --adapter", "this is an adapter-only file");
    if (state && kind != CKPT_TRAIN)
        fail_at(path, "--resume needs the run folder's ckpt.bin (a training checkpoint), not model.bin", "this is a model-only checkpoint");
    GPTConfig c = ckpt_config(h, path);
    int np = ckpt_num_tensors(h, &c, path);
    if (state && np != NUM_PARAMS)
        fail_at(path, "resume with the finetune.c that wrote it, or start a new run from its model.bin", "a training checkpoint of an older table (%d tensors)", np);
    ckpt_read_table(&r, &c, kind, np);
    size_t ns = (size_t)np * c.L;
    uint64_t expect = 1024 + (uint64_t)np * 24 + ckpt_tensor_bytes(&c, kind, h[19]), nt = 0;
    if (kind == CKPT_TRAIN) {
        uint64_t at = expect + ns;
        rd_seek(&r, at, "the trainable count");
        int64_t v = (int64_t)rd_u64(&r, "the trainable count");
        if (v < 0 || (uint64_t)v > num_parameters(&c))
            fail_at(path, "the file is corrupt", "trainable count %lld, the model has %zu parameters", (long long)v, num_parameters(&c));
        nt = (uint64_t)v;
        expect = at + 8 + nt * 8 + sizeof(TrainState);
    }
    ckpt_check_names_bytes(h, path);
    ckpt_check_tasks_bytes(h, path);
    expect += (uint64_t)h[20] + (uint64_t)h[25];
    if (r.size != expect)
        fail_at(path, "the file is truncated or was not written completely", "expected %llu bytes, found %llu",
                (unsigned long long)expect, (unsigned long long)r.size);
    check_model_memory(path, (double)num_parameters(&c) * (h[19] ? 5 : 4) + (state ? 16.0 * (double)nt : 0));
    gpt_build(model, c);
    if (h[19]) gpt_alloc_q8(model), gpt_drop_fp32_copies(model);
    rd_seek(&r, 1024 + (uint64_t)np * 24, "the tensors");
    for (int i = 0; i < NUM_PARAMS; i++) {
        size_t n = param_numel(&c, i);
        if (model->q8[i].q) {
            rd_bytes(&r, (int8_t*)model->q8[i].q, n, PARAM_TABLE[i].name);
            rd_bytes(&r, (float*)model->q8[i].d, n / Q8_GROUP * 4, PARAM_TABLE[i].name);
        } else {
            rd_bytes(&r, model->params.t[i], n * 4, PARAM_TABLE[i].name);
        }
    }
    if (state) {
        rd_bytes(&r, model->trainable, ns, "the trainable mask");
        for (size_t i = 0; i < ns; i++)
            if (model->trainable[i] > 1) fail_at(path, "the file is corrupt", "trainable mask byte %zu is %d, expected 0 or 1", i, model->trainable[i]);
        if (h[19])
            for (int i = 0; i < NUM_PARAMS; i++)
                for (int l = 0; l < (param_per_layer(i) ? c.L : 1) && model->q8[i].q; l++)
                    if (model->trainable[(size_t)i * c.L + l]) fail_at(path, "the file is corrupt", "int8 tensor %s is marked trainable", PARAM_TABLE[i].name);
        rd_skip(&r, 8, "the trainable count");
        if (count_trainable(model) != nt)
            fail_at(path, "the file is corrupt", "trainable mask gives %zu floats, file says %llu", count_trainable(model), (unsigned long long)nt);
        gpt_alloc_grads(model);
        model->m_memory = (float*)mallocCheck((size_t)nt * 4 + 4);
        model->v_memory = (float*)mallocCheck((size_t)nt * 4 + 4);
        rd_bytes(&r, model->m_memory, nt * 4, "AdamW m");
        rd_bytes(&r, model->v_memory, nt * 4, "AdamW v");
        rd_bytes(&r, state, sizeof *state, "the training state");
        check_train_state(state, path);
    } else if (kind == CKPT_TRAIN) {  // loaded as a model: the training state is skipped
        rd_seek(&r, expect - (uint64_t)h[20] - (uint64_t)h[25], "the label names");
    }
    ckpt_read_names(&r, model, (uint32_t)h[20]);
    ckpt_read_tasks(&r, model, h[24], (uint32_t)h[25]);
    rd_close(&r);
}

// ---------------------------------------------------------------------------- PEFT LoRA adapters
// Hugging Face PEFT saves a LoRA as adapter_model.safetensors with keys
//   base_model.model.transformer.h.N.attn.c_attn.lora_A.weight   (r, in)     nn.Linear(in, r)
//   base_model.model.transformer.h.N.attn.c_attn.lora_B.weight   (out, r)    nn.Linear(r, out)
// and for a classification model base_model.model.score.weight (modules_to_save = ["score"]). lora_A/lora_B are
// nn.Linear layers even on GPT-2's Conv1D: their layout is ours; fan_in_fan_out = true only tells PEFT to
// transpose B A when it merges into the Conv1D's (in, out) weight. The forward is PEFT's
//   h = Conv1D(x) + (lora_alpha / r) * lora_B(lora_A(dropout(x)))      = our W x + (alpha/r) B A x.
// target_modules is written as a regex, which PEFT matches against the full module name with re.fullmatch:
// a list of names could not tell attn.c_proj from mlp.c_proj (both end in "c_proj"). The regex also holds the
// layer range, since PEFT refuses layers_to_transform together with a regex.
// Llama (model_type llama / qwen2) the same way, with transformers' LlamaForCausalLM names:
//   base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight  (r, C)   ... .lora_B.weight (C, r)
// on q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj (each name is unique within a layer, so
// target_modules is the plain list PEFT users write, with layers_to_transform for a range of layers), and
// fan_in_fan_out false: these are nn.Linear layers, (out, in) as ours.
// The modules LoRA can target: its LORA_* bit, its Hugging Face module (after "h.N." / "layers.N.") and its
// lora_*_a tensor (lora_*_b is the next one). GPT-2 has 4, in table order; Llama 7, in transformers' order.
typedef struct {
    int bit;
    const char* module;
    int a;
} PeftModule;
static int peft_modules(const GPTConfig* c, PeftModule m[7]) {
    const PeftModule gpt2[4] = {{LORA_QKV, "attn.c_attn", PIDX(lora_qkv_a)}, {LORA_PROJ, "attn.c_proj", PIDX(lora_proj_a)},
                                {LORA_FC, "mlp.c_fc", PIDX(lora_fc_a)}, {LORA_FCPROJ, "mlp.c_proj", PIDX(lora_fcproj_a)}};
    const PeftModule llama[7] = {{LORA_Q, "self_attn.q_proj", PIDX(lora_q_a)}, {LORA_K, "self_attn.k_proj", PIDX(lora_k_a)},
                                 {LORA_V, "self_attn.v_proj", PIDX(lora_v_a)}, {LORA_PROJ, "self_attn.o_proj", PIDX(lora_proj_a)},
                                 {LORA_GATE, "mlp.gate_proj", PIDX(lora_gate_a)}, {LORA_UP, "mlp.up_proj", PIDX(lora_up_a)},
                                 {LORA_FCPROJ, "mlp.down_proj", PIDX(lora_fcproj_a)}};
    int llama_arch = c->arch == ARCH_LLAMA;
    memcpy(m, llama_arch ? llama : gpt2, llama_arch ? sizeof llama : sizeof gpt2);
    return llama_arch ? 7 : 4;
}

// Writes DIR/adapter_model.safetensors and DIR/adapter_config.json. lora_dropout only goes into the config.
static void export_peft(const GPT* model, const char* dir, float lora_dropout) {
    const GPTConfig* c = &model->config;
    if (!c->lora_r) failf("train with --method lora, or apply one with --adapter", "%s: the model has no LoRA to export", dir);
    if (c->adapter_dim || c->prefix_len)
        failf("PEFT's LoRA format holds LoRA and the score head only; keep our adapter.bin for these",
              "%s: the model has %s", dir, c->adapter_dim ? "adapters" : "a prefix");
    make_dirs(dir);
    PeftModule mods[7];
    int nm = peft_modules(c, mods), llama_arch = c->arch == ARCH_LLAMA;
    StOut* t = (StOut*)callocCheck((size_t)2 * nm * c->L + 1, sizeof(StOut));
    int n = 0;
    for (int l = c->lora_first; l <= c->lora_last; l++)
        for (int k = 0; k < 2 * nm; k++) {  // A then B of each target
            int p = mods[k / 2].a + k % 2;
            if (!(c->lora_targets & mods[k / 2].bit)) continue;
            slice_shape(c, p, &t[n].rows, &t[n].cols);
            t[n].data = model->params.t[p] + (size_t)l * slice_numel(c, p);
            snprintf(t[n].name, sizeof t[n].name, "base_model.model.%s.%d.%s.lora_%c.weight", llama_arch ? "model.layers" : "transformer.h", l,
                     mods[k / 2].module, "AB"[k % 2]);
            n++;
        }
    if (c->num_classes) {
        snprintf(t[n].name, sizeof t[n].name, "base_model.model.score.weight");
        t[n].rows = (size_t)c->num_classes, t[n].cols = (size_t)c->C, t[n].data = model->params.cls_w;
        n++;
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    st_write(path, t, n);
    free(t);
    char re[2048], layers[2048] = "null";
    size_t len = 0;
    if (llama_arch) {  // target_modules: ["q_proj", "v_proj"]; layers_to_transform: [1, 2] or null (all layers)
        re[len++] = '[';
        for (int k = 0; k < nm; k++)
            if (c->lora_targets & mods[k].bit)
                len += (size_t)snprintf(re + len, sizeof re - len, "%s\"%s\"", len > 1 ? ", " : "", strchr(mods[k].module, '.') + 1);
        snprintf(re + len, sizeof re - len, "]");
        if (c->lora_first > 0 || c->lora_last < c->L - 1) {
            len = (size_t)snprintf(layers, sizeof layers, "[");
            for (int l = c->lora_first; l <= c->lora_last && len < sizeof layers - 16; l++)
                len += (size_t)snprintf(layers + len, sizeof layers - len, "%s%d", l > c->lora_first ? ", " : "", l);
            snprintf(layers + len, sizeof layers - len, "]");
        }
    } else {  // target_modules: (transformer\.)?h\.(1|2|3)\.(attn\.c_attn|mlp\.c_proj), backslashes doubled for JSON
        len = (size_t)snprintf(re, sizeof re, "\"(transformer\\\\.)?h\\\\.(");
        for (int l = c->lora_first; l <= c->lora_last && len < sizeof re - 64; l++)
            len += (size_t)snprintf(re + len, sizeof re - len, "%s%d", l > c->lora_first ? "|" : "", l);
        len += (size_t)snprintf(re + len, sizeof re - len, ")\\\\.(");
        for (int k = 0, first = 1; k < nm; k++) {
            if (!(c->lora_targets & mods[k].bit)) continue;
            const char* mod = mods[k].module;
            const char* dot = strchr(mod, '.');  // "attn.c_attn" -> "attn\\.c_attn"
            len += (size_t)snprintf(re + len, sizeof re - len, "%s%.*s\\\\.%s", first ? "" : "|", (int)(dot - mod), mod, dot + 1);
            first = 0;
        }
        snprintf(re + len, sizeof re - len, ")\"");
    }
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    SafeWriter w;
    safe_open(&w, path);
    fprintf(w.f, "{\n  \"peft_type\": \"LORA\",\n  \"task_type\": \"%s\",\n  \"base_model_name_or_path\": null,\n"
            "  \"r\": %d,\n  \"lora_alpha\": %.9g,\n  \"lora_dropout\": %.9g,\n  \"target_modules\": %s,\n"
            "  \"layers_to_transform\": %s,\n  \"layers_pattern\": %s,\n  \"fan_in_fan_out\": %s,\n  \"bias\": \"none\",\n"
            "  \"modules_to_save\": %s,\n  \"use_rslora\": false,\n  \"use_dora\": false,\n  \"init_lora_weights\": true,\n"
            "  \"rank_pattern\": {},\n  \"alpha_pattern\": {},\n  \"inference_mode\": true\n}\n",
            c->num_classes ? "SEQ_CLS" : "CAUSAL_LM", c->lora_r, c->lora_alpha, lora_dropout, re, layers,
            strcmp(layers, "null") ? "\"layers\"" : "null", llama_arch ? "false" : "true", c->num_classes ? "[\"score\"]" : "null");
    safe_close(&w);
}

// A PEFT adapter is a folder holding adapter_model.safetensors (and adapter_config.json), or that .safetensors
// file itself with adapter_config.json beside it. Fills both paths and returns 1; returns 0 for anything else.
static int peft_paths(const char* path, char st_path[1100], char cfg_path[1100]) {
    snprintf(st_path, 1100, "%s/adapter_model.safetensors", path);
    struct stat sb;
    if (stat(st_path, &sb) == 0) {  // (st_open refuses it if it is not a regular file)
        snprintf(cfg_path, 1100, "%s/adapter_config.json", path);
        return 1;
    }
    unsigned char first[9] = {0};
    FILE* f = not_regular_file(path) ? NULL : fopen(path, "rb");
    int ok = f && fread(first, 1, 9, f) == 9 && first[8] == '{';  // a safetensors header: u64 length, then '{'
    if (f) fclose(f);
    if (!ok) return 0;
    snprintf(st_path, 1100, "%s", path);
    const char* slash = strrchr(path, '/');
    snprintf(cfg_path, 1100, "%.*sadapter_config.json", slash ? (int)(slash - path + 1) : 0, path);
    return 1;
}

// Applies a PEFT LoRA adapter to a plain base model (--adapter DIR). Which modules and layers have LoRA is read
// from the tensors themselves; adapter_config.json gives r and lora_alpha (and must be plain LoRA).
static void load_peft(GPT* model, const char* path) {
    char stp[1100], cfgp[1100];
    if (!peft_paths(path, stp, cfgp)) failf("--adapter takes our adapter.bin or a PEFT adapter folder", "%s: not a PEFT adapter", path);
    GPTConfig c = model->config;
    int L = c.L;
    if (c.lora_r || c.adapter_dim || c.prefix_len)
        failf("apply a PEFT adapter to a plain base model (export merged weights first: --merge 1)",
              "%s: the model already has LoRA, adapters or a prefix", path);
    struct stat sb;
    if (stat(cfgp, &sb) != 0)
        fail_at(path, "a PEFT adapter comes with adapter_config.json next to adapter_model.safetensors", "cannot find %s", cfgp);
    size_t n;
    char* text = rd_small_file(cfgp, 16u << 20, &n);
    double r = 0, alpha = 0;
    if (!json_is(text, n, "peft_type", cfgp, "\"LORA\""))
        failf("only LoRA adapters (peft_type LORA) can be applied", "%s: peft_type is not \"LORA\"", cfgp);
    if (!json_get_number(text, n, "r", cfgp, &r) || !json_get_number(text, n, "lora_alpha", cfgp, &alpha) || !(r >= 1 && r <= MAX_WIDTH) ||
        r != floor(r) || !(alpha > 0 && alpha < 1e30))
        fail_at(cfgp, "adapter_config.json must give a whole r in [1, 2^20] and a finite lora_alpha > 0", "r or lora_alpha missing or out of range");
    if (json_is(text, n, "use_dora", cfgp, "true")) failf("DoRA adds a magnitude vector this model lacks", "%s: use_dora is true", cfgp);
    if (json_value(text, n, "bias", cfgp) && !json_is(text, n, "bias", cfgp, "\"none\""))
        failf("this LoRA trains no biases: export with bias=\"none\"", "%s: bias is not \"none\"", cfgp);
    if (!json_empty(text, n, "rank_pattern", cfgp) || !json_empty(text, n, "alpha_pattern", cfgp))
        failf("this model uses one rank and alpha for every module", "%s: rank_pattern or alpha_pattern is set", cfgp);
    if (json_is(text, n, "use_rslora", cfgp, "true")) alpha *= sqrt(r);  // rsLoRA scales by alpha/sqrt(r): the same as alpha*sqrt(r)/r
    free(text);
    // at[k * L + l]: the tensor of entry k (A, B of module k / 2: peft_modules) in layer l, if present
    PeftModule mods[7];
    int nm = peft_modules(&c, mods), llama_arch = c.arch == ARCH_LLAMA;
    const char* layer_fmt = llama_arch ? "layers.%d.%n" : "h.%d.%n";  // and the name the messages give a layer
    SafeTensors st;
    st_open(&st, stp);
    const StTensor** at = (const StTensor**)callocCheck((size_t)2 * nm * L, sizeof(StTensor*));
    const StTensor* score = NULL;
    for (int i = 0; i < st.n; i++) {
        const char* s = st.t[i].name;
        if (!strncmp(s, "base_model.model.", 17)) s += 17;
        if (llama_arch) s += strncmp(s, "model.", 6) ? 0 : 6;  // "model." is optional
        else s = hf_base_name(s);  // "transformer." is optional
        if (!strcmp(s, "score.weight")) {
            if (score) fail_at(stp, "the file is corrupt: each tensor appears once", "'%s' and '%s' are the same tensor", score->name, st.t[i].name);
            score = &st.t[i];
            continue;
        }
        int l = -1, pos = 0, found = 0;
        if (sscanf(s, layer_fmt, &l, &pos) == 1 && pos > 0 && l >= 0 && l < L)
            for (int k = 0; k < 2 * nm && !found; k++) {
                size_t ml = strlen(mods[k / 2].module);
                if (!strncmp(s + pos, mods[k / 2].module, ml) && !strcmp(s + pos + ml, k % 2 ? ".lora_B.weight" : ".lora_A.weight")) {
                    if (at[k * L + l]) fail_at(stp, "the file is corrupt: each tensor appears once", "'%s' and '%s' are the same tensor", at[k * L + l]->name, st.t[i].name);
                    at[k * L + l] = &st.t[i], found = 1;
                }
            }
        if (!found)
            failf(llama_arch ? "this model takes LoRA on q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj of its layers, and score"
                             : "this model takes LoRA on attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj of its layers, and score",
                  "%s: unexpected tensor '%s'", stp, st.t[i].name);
    }
    int targets = 0, first = L, last = -1;
    for (int k = 0; k < 2 * nm; k++)
        for (int l = 0; l < L; l++)
            if (at[k * L + l]) targets |= mods[k / 2].bit, first = l < first ? l : first, last = l > last ? l : last;
    if (!targets) failf("is this a LoRA adapter?", "%s: no lora_A / lora_B tensors", stp);
    for (int k = 0; k < 2 * nm; k++)  // each target: A and B on every layer first..last, and nowhere else
        for (int l = 0; (targets & mods[k / 2].bit) && l < L; l++)
            if ((at[k * L + l] != NULL) != (l >= first && l <= last))
                failf("this model puts LoRA on the same modules of a contiguous range of layers",
                      "%s: %s%d.%s.lora_%c.weight is %s, but the adapter's LoRA spans layers %d-%d", stp, llama_arch ? "layers." : "h.", l,
                      mods[k / 2].module, "AB"[k % 2], at[k * L + l] ? "present" : "missing", first, last);
    const StTensor* a0 = NULL;
    for (int k = 0; k < 2 * nm && !a0; k += 2) a0 = at[k * L + first];
    int rank = a0->ndim == 2 && a0->shape[0] >= 1 && a0->shape[0] <= MAX_WIDTH ? (int)a0->shape[0] : 0;
    if (rank != (int)r) fail_at(stp, "rank_pattern is not supported", "r = %d in the config, but %s has rank %d", (int)r, a0->name, rank);
    GPTConfig with = c;
    with.lora_r = rank, with.lora_alpha = (float)alpha, with.lora_targets = targets;
    with.lora_first = first, with.lora_last = last;
    if (score) {
        if (score->ndim != 2 || score->shape[1] != c.C || score->shape[0] < 2 || score->shape[0] > MAX_WIDTH)
            fail_at(stp, "score.weight must be (K, C) with K >= 2", "score.weight has a bad shape");
        with.num_classes = (int)score->shape[0];
    }
    check_config(&with, stp, "adapter");
    // every tensor's shape exactly, before the model grows
    for (int k = 0; k < 2 * nm; k++)
        for (int l = first; l <= last; l++) {
            const StTensor* t = at[k * L + l];
            size_t rows, cols;
            slice_shape(&with, mods[k / 2].a + k % 2, &rows, &cols);
            if (t && (t->ndim != 2 || (uint64_t)t->shape[0] != rows || (uint64_t)t->shape[1] != cols))
                fail_at(stp, "every module of the adapter must have rank r, lora_A (r, in) and lora_B (out, r)",
                        "%s has shape [%lld, %lld] (%d-D), expected [%zu, %zu]", t->name, (long long)t->shape[0],
                        (long long)(t->ndim > 1 ? t->shape[1] : 0), t->ndim, rows, cols);
        }
    check_model_memory(stp, (double)num_parameters(&with) * 4);
    float* head = NULL;  // a CAUSAL_LM adapter on a classification base keeps the base's head
    if (!score && c.num_classes) {
        head = (float*)mallocCheck(param_numel(&c, PIDX(cls_w)) * sizeof(float));
        memcpy(head, model->params.cls_w, param_numel(&c, PIDX(cls_w)) * sizeof(float));
    }
    uint64_t rng = 1;
    gpt_set_peft(model, with, &rng);
    if (head) memcpy(model->params.cls_w, head, param_numel(&c, PIDX(cls_w)) * sizeof(float)), free(head);
    for (int k = 0; k < 2 * nm; k++)
        for (int l = first; l <= last; l++) {
            const StTensor* t = at[k * L + l];
            size_t rows, cols;
            slice_shape(&with, mods[k / 2].a + k % 2, &rows, &cols);
            if (t) st_read_f32(&st, t, model->params.t[mods[k / 2].a + k % 2] + (size_t)l * rows * cols);
        }
    if (score) st_read_f32(&st, score, model->params.cls_w);
    free(at);
    st_close(&st);
}

// ---------------------------------------------------------------------------- GGUF (llama.cpp)
// GGUF v3 (ggml's docs/gguf.md), little-endian:
//   "GGUF"  u32 version = 3  u64 n_tensors  u64 n_kv
//   n_kv x      key (string), u32 value type, value                     string = u64 length + bytes, no NUL
//   n_tensors x name (string), u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset into the data section
//   zero padding to general.alignment (default 32), then the data section; each tensor at its (aligned) offset
// ggml lists dimensions innermost first: our (rows, cols) matrix, cols contiguous, is ne = [cols, rows].
// Three of llama.cpp's architectures, named and laid out as its convert_hf_to_gguf.py writes them:
//   gpt2   GPT-2: token_embd, position_embd, blk.N.{attn_norm, attn_qkv, attn_output, ffn_norm, ffn_up,
//          ffn_down}, output_norm (weights and biases). No output.weight: GPT-2's LM head is token_embd (tied),
//          and llama.cpp uses token_embd when output.weight is absent (today's converter writes none for GPT-2;
//          the converters of early 2024 wrote a copy, which the loader accepts).
//   llama  a Llama-style model (LlamaForCausalLM: SmolLM2, TinyLlama, Llama 3): token_embd, blk.N.{attn_norm,
//          attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}, output_norm, and output
//          only when the LM head is untied. Our fused q|k|v rows and gate|up rows become separate tensors, and
//          the rows of attn_q and attn_k are permuted within each head (see "the Q/K permutation" below).
//   qwen2  a Llama-style model with q/k/v biases (Qwen2ForCausalLM): the llama names plus blk.N.attn_{q,k,v}.bias,
//          and no permutation: llama.cpp runs qwen2 with NEOX RoPE, which is Hugging Face's rotate_half.
// Q8_0 (type 8): blocks of 32 consecutive weights of a row, each an fp16 scale d and 32 int8 q, w = q * d. That
// is our int8 format (model.h): an int8 model is written as it is and read back bit for bit. Splitting rows
// and permuting them moves whole rows, so whole blocks: the int8 values and scales are kept exactly.
#define GGUF_VERSION 3
#define GGUF_ALIGN 32
enum { GGML_F32 = 0, GGML_F16 = 1, GGML_Q8_0 = 8 };                                 // tensor types
enum { GGUF_U32 = 4, GGUF_I32 = 5, GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9 };  // metadata value types
enum { LLAMA_FTYPE_ALL_F32 = 0, LLAMA_FTYPE_MOSTLY_Q8_0 = 7 };                      // general.file_type

// One GGUF tensor: rows [row0, row0 + rows) of layer l of parameter p (a vector's elements are rows of one
// weight), its GGUF rows reordered by the Q/K permutation when perm_hs (the head size) is not 0.
typedef struct {
    char name[64];
    int nd;
    uint64_t ne[4];   // ggml order: ne[0] is the contiguous axis; unused ones are 1
    uint32_t type;    // GGML_*
    uint64_t offset;  // in the data section
    int p, l;         // PARAM_TABLE index and layer
    size_t row0;      // the slice's first row in layer l of p
    size_t perm_hs;   // 0, or the head size of the Q/K permutation
} GgufTensor;

static uint64_t gguf_rows(const GgufTensor* t) { return t->nd == 2 ? t->ne[1] : t->ne[0]; }
static uint64_t gguf_cols(const GgufTensor* t) { return t->nd == 2 ? t->ne[0] : 1; }
static uint64_t gguf_nbytes(const GgufTensor* t) {
    uint64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    return t->type == GGML_Q8_0 ? n / Q8_GROUP * (2 + Q8_GROUP) : t->type == GGML_F16 ? 2 * n : 4 * n;
}

// The Q/K permutation. Our RoPE (model.h) is Hugging Face's rotate_half: it rotates the pair (x[i], x[i + hs/2])
// of each head by the angle t * theta^(-2i/hs). llama.cpp's llama architecture uses ggml's "normal" RoPE, which
// rotates the consecutive pair (x[2i], x[2i + 1]) by the same angle. So convert_hf_to_gguf.py reorders the rows of
// q_proj and k_proj inside each head: a head's hs rows, viewed as (2, hs/2), are transposed to (hs/2, 2)
// (torch: w.reshape(n_head, 2, hs/2, C).swapaxes(1, 2)), and GGUF row 2i + s of a head is our row s * hs/2 + i.
// Then llama.cpp's q and k are ours with the same reordering of each head, rotated as ours are; and a dot
// product q.k does not change when both vectors are reordered alike, so the attention is the same. v, o: as
// they are. k has the KV heads' rows (head_count_kv heads of hs rows). hs must be even (RoPE needs pairs).
//   gguf_rope_src(r): the row of ours that GGUF row r holds (the writer gathers with it)
//   gguf_rope_dst(q): the GGUF row that holds our row q, its inverse (the loader gathers with it)
static size_t gguf_rope_src(size_t r, size_t hs) {
    size_t head = r / hs, i = r % hs;  // i = 2 * j + s
    return head * hs + (i % 2) * (hs / 2) + i / 2;
}
static size_t gguf_rope_dst(size_t q, size_t hs) {
    size_t head = q / hs, i = q % hs, half = hs / 2;  // i = s * half + j
    return head * hs + (i % half) * 2 + i / half;
}

// llama.cpp's name of our model's architecture
static const char* gguf_arch(const GPTConfig* c) {
    return c->arch != ARCH_LLAMA ? "gpt2" : c->qkv_bias ? "qwen2" : "llama";
}

// Appends one tensor to the list: name ("blk.L." in front when l >= 0), rows [row0, row0 + rows) of layer l of
// p, cols weights a row (0: a vector). Q8_0 when q8 and p is one of our int8 matrices, else F32.
static void gguf_add(GgufTensor* t, int* n, const char* name, int p, int l, size_t row0, size_t rows, size_t cols,
                     size_t perm_hs, int q8) {
    GgufTensor* g = &t[(*n)++];
    memset(g, 0, sizeof *g);
    if (l >= 0) snprintf(g->name, sizeof g->name, "blk.%d.%s", l, name);
    else snprintf(g->name, sizeof g->name, "%s", name);
    g->nd = cols ? 2 : 1;
    g->ne[0] = cols ? cols : rows, g->ne[1] = cols ? rows : 1, g->ne[2] = g->ne[3] = 1;
    // position_embd stays F32, as in our int8 model: it is added, not multiplied, and small
    g->type = q8 && cols && param_quantizable(p) ? GGML_Q8_0 : GGML_F32;
    g->p = p, g->l = l < 0 ? 0 : l, g->row0 = row0, g->perm_hs = perm_hs;
}
static int gguf_max_tensors(const GPTConfig* c) { return (NUM_BASE_PARAMS + 4) * c->L + 8; }

// The tensors of a model of config c in GGUF, in the order written; t has room for gguf_max_tensors(c).
// permute: llama's Q/K permutation (not for qwen2). Reader and writer both walk this list: the loader checks
// each against the file. Returns the count.
static int gguf_tensors(const GPTConfig* c, int q8, int permute, GgufTensor* t) {
    int n = 0, L = c->L;
    size_t C = (size_t)c->C, V = (size_t)c->V;
    if (c->arch != ARCH_LLAMA) {  // GPT-2: PARAM_TABLE's gguf names, one tensor per parameter and layer
        for (int p = 0; p < NUM_BASE_PARAMS; p++)
            for (int l = 0; l < (param_per_layer(p) ? L : 1); l++) {
                size_t rows, cols;
                slice_shape(c, p, &rows, &cols);
                gguf_add(t, &n, PARAM_TABLE[p].gguf, p, param_per_layer(p) ? l : -1, 0, rows, cols, 0, q8);
            }
        return n;
    }
    size_t hs = C / (size_t)c->NH, KVC = (size_t)kv_heads(c) * hs, F = (size_t)mlp_width(c);
    size_t perm = permute ? hs : 0;
    gguf_add(t, &n, "token_embd.weight", PIDX(wte), -1, 0, V, C, 0, q8);  // the first V of the Vp rows
    for (int l = 0; l < L; l++) {
        gguf_add(t, &n, "attn_norm.weight", PIDX(ln1w), l, 0, C, 0, 0, q8);
        gguf_add(t, &n, "attn_q.weight", PIDX(qkvw), l, 0, C, C, perm, q8);  // rows [0, C) of q|k|v
        gguf_add(t, &n, "attn_k.weight", PIDX(qkvw), l, C, KVC, C, perm, q8);
        gguf_add(t, &n, "attn_v.weight", PIDX(qkvw), l, C + KVC, KVC, C, 0, q8);
        if (c->qkv_bias) {
            gguf_add(t, &n, "attn_q.bias", PIDX(qkvb), l, 0, C, 0, perm, q8);
            gguf_add(t, &n, "attn_k.bias", PIDX(qkvb), l, C, KVC, 0, perm, q8);
            gguf_add(t, &n, "attn_v.bias", PIDX(qkvb), l, C + KVC, KVC, 0, 0, q8);
        }
        gguf_add(t, &n, "attn_output.weight", PIDX(attprojw), l, 0, C, C, 0, q8);
        gguf_add(t, &n, "ffn_norm.weight", PIDX(ln2w), l, 0, C, 0, 0, q8);
        gguf_add(t, &n, "ffn_gate.weight", PIDX(fcw), l, 0, F, C, 0, q8);  // rows [0, F) of gate|up
        gguf_add(t, &n, "ffn_up.weight", PIDX(fcw), l, F, F, C, 0, q8);
        gguf_add(t, &n, "ffn_down.weight", PIDX(fcprojw), l, 0, C, F, 0, q8);
    }
    gguf_add(t, &n, "output_norm.weight", PIDX(lnfw), -1, 0, C, 0, 0, q8);
    if (c->untied) gguf_add(t, &n, "output.weight", PIDX(lm_head), -1, 0, V, C, 0, q8);  // the first V of Vp rows
    return n;
}

// Element offset, in parameter p, of the first weight of GGUF row r of tensor g (its row of ours, found through
// the permutation).
static size_t gguf_src_offset(const GPTConfig* c, const GgufTensor* g, size_t r) {
    size_t row = g->row0 + (g->perm_hs ? gguf_rope_src(r, g->perm_hs) : r);
    return (size_t)g->l * slice_numel(c, g->p) + row * (size_t)gguf_cols(g);
}

// The metadata is assembled in memory first: the header counts its entries.
typedef struct { unsigned char* p; size_t len, cap; } GgufBuf;
static void gguf_put(GgufBuf* b, const void* src, size_t n) {
    if (b->len + n > b->cap) {
        while (b->len + n > b->cap) b->cap = b->cap ? 2 * b->cap : 4096;
        b->p = (unsigned char*)realloc(b->p, b->cap);
        if (!b->p) DIE("out of memory assembling GGUF metadata", "");
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}
static void gguf_put_u32(GgufBuf* b, uint32_t v) { gguf_put(b, &v, 4); }
static void gguf_put_u64(GgufBuf* b, uint64_t v) { gguf_put(b, &v, 8); }
static void gguf_put_str(GgufBuf* b, const void* s, size_t n) { gguf_put_u64(b, n); gguf_put(b, s, n); }
// a key and its value type; the caller writes the value
static void gguf_key(GgufBuf* b, int* nkv, const char* key, uint32_t type) {
    gguf_put_str(b, key, strlen(key));
    gguf_put_u32(b, type);
    (*nkv)++;
}
static void gguf_kv_u32(GgufBuf* b, int* nkv, const char* key, uint32_t v) { gguf_key(b, nkv, key, GGUF_U32); gguf_put_u32(b, v); }
static void gguf_kv_f32(GgufBuf* b, int* nkv, const char* key, float v) { gguf_key(b, nkv, key, GGUF_F32); gguf_put(b, &v, 4); }
static void gguf_kv_bool(GgufBuf* b, int* nkv, const char* key, int v) {
    unsigned char u = (unsigned char)(v != 0);
    gguf_key(b, nkv, key, GGUF_BOOL);
    gguf_put(b, &u, 1);
}
static void gguf_kv_str(GgufBuf* b, int* nkv, const char* key, const char* v) {
    gguf_key(b, nkv, key, GGUF_STRING);
    gguf_put_str(b, v, strlen(v));
}
// "ARCH.suffix" (llama.context_length), the per-architecture keys
static void gguf_kv_arch_u32(GgufBuf* b, int* nkv, const char* arch, const char* suffix, uint32_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    gguf_kv_u32(b, nkv, key, v);
}
static void gguf_kv_arch_f32(GgufBuf* b, int* nkv, const char* arch, const char* suffix, float v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    gguf_kv_f32(b, nkv, key, v);
}

// Appends token bytes as GPT-2's printable string (bytes_to_unicode: byte 0x20 is U+0120 'Ġ', so " the" is
// "Ġthe"), UTF-8 encoded. enc[byte] is the byte's code point (< 0x144: one or two UTF-8 bytes).
static void gguf_put_gpt2_chars(GgufBuf* s, const unsigned char* p, size_t n, const int enc[256]) {
    for (size_t i = 0; i < n; i++) {
        int cp = enc[p[i]];
        unsigned char u[2] = {(unsigned char)(0xC0 | cp >> 6), (unsigned char)(0x80 | (cp & 0x3F))};
        if (cp < 0x80) gguf_put(s, &p[i], 1);
        else gguf_put(s, u, 2);
    }
}

// llama.cpp's name of a tokenizer's pre-tokenizer (tokenizer.ggml.pre), which picks the split regexes it runs
// (llama-vocab.cpp): GPT-2's pattern is "gpt-2"; a tokenizer.json's Digits (each digit alone) then GPT-2's is
// "smollm" (llama.cpp splits \p{N} first, then GPT-2's pattern); Llama 3's pattern is "llama-bpe"; Qwen2's is
// "qwen2". NULL: llama.cpp has none that splits as this tokenizer does.
static const char* gguf_tok_pre(const Tokenizer* t) {
    if (t->kind != TOK_HF) return "gpt-2";  // GPT-2's files, and the BPE trained here, split with GPT-2's pattern
    if (t->num_pretok == 1 && t->pretok[0] == PT_GPT2) return "gpt-2";
    if (t->num_pretok == 2 && t->pretok[0] == PT_DIGITS && t->pretok[1] == PT_GPT2) return "smollm";
    if (t->num_pretok == 1 && t->pretok[0] == PT_LLAMA3) return "llama-bpe";
    if (t->num_pretok == 1 && t->pretok[0] == PT_QWEN2) return "qwen2";
    return NULL;
}

// The id of the special token whose text is s, or -1.
static int gguf_tok_special(const Tokenizer* t, const char* s) {
    for (int id = 0; id < t->vocab_size; id++) {
        size_t n;
        const unsigned char* p = tok_bytes(t, id, &n);
        if ((t->is_special[id] & TOK_SPECIAL) && n == strlen(s) && !memcmp(p, s, n)) return id;
    }
    return -1;
}

// The id of the token whose text is s (an added or special token first, then any token), or -1.
static int gguf_tok_id(const Tokenizer* t, const unsigned char* s, size_t len) {
    for (int pass = 0; pass < 2; pass++)
        for (int id = 0; id < t->vocab_size; id++) {
            size_t n;
            const unsigned char* p = tok_bytes(t, id, &n);
            if ((pass || t->is_special[id]) && n == len && !memcmp(p, s, n)) return id;
        }
    return -1;
}

// What Hugging Face's tokenizer_config.json (beside a tokenizer.json) adds: the chat template, the BOS, EOS and
// padding tokens (a string, or an object with "content"), add_bos_token. Fields absent or null stay -1 / empty.
typedef struct { ByteVec chat_template; int bos, eos, pad, add_bos; } GgufTokConfig;
static void gguf_tok_config(const Tokenizer* tok, const char* tok_path, GgufTokConfig* out) {
    memset(out, 0, sizeof *out);
    out->bos = out->eos = out->pad = out->add_bos = -1;
    char path[1100];
    struct stat sb;
    if (stat(tok_path, &sb) == 0 && S_ISDIR(sb.st_mode)) snprintf(path, sizeof path, "%s/tokenizer_config.json", tok_path);
    else {
        const char* slash = strrchr(tok_path, '/');
        snprintf(path, sizeof path, "%.*stokenizer_config.json", slash ? (int)(slash - tok_path + 1) : 0, tok_path);
    }
    if (stat(path, &sb) != 0) return;  // none: the defaults of gguf_put_tokenizer
    char err[256];
    size_t n;
    unsigned char* text = tok_read_file(path, &n, err, sizeof err);
    if (!text) failf("check the file", "%s", err);
    JsonScan js = {text, n, 0, 1, NULL};
    TokJsonField f[] = {TJF("chat_template"), TJF("bos_token"), TJF("eos_token"), TJF("pad_token"), TJF("add_bos_token")};
    if (tokjson_fields(&js, f, 5)) fail_at(path, "give Hugging Face's tokenizer_config.json (one JSON object)", "line %d: %s", js.line, js.err);
    ByteVec str = {0};
    JsonScan ct = tokjson_at(&js, &f[0]);  // a string (a list of named templates is left out)
    if (f[0].found && jscan_peek(&ct) == '"' && tokjson_str(&js, &f[0], &out->chat_template))
        fail_at(path, "the file is corrupt", "line %d: chat_template is not a JSON string", f[0].line);
    int* ids[3] = {&out->bos, &out->eos, &out->pad};
    for (int k = 1; k <= 3; k++) {
        if (!f[k].found) continue;
        JsonScan at = tokjson_at(&js, &f[k]);
        if (jscan_peek(&at) == 'z') continue;  // null
        if (jscan_peek(&at) == '{') {  // an AddedToken object: its "content"
            TokJsonField cf[] = {TJF("content")};
            if (tokjson_fields(&at, cf, 1) || tokjson_str(&at, &cf[0], &str) || !cf[0].found)
                fail_at(path, "the file is corrupt", "line %d: %s is an object without a \"content\" string", f[k].line, f[k].key);
        } else if (tokjson_str(&js, &f[k], &str)) {
            fail_at(path, "the file is corrupt", "line %d: %s is not a string, an object or null", f[k].line, f[k].key);
        }
        *ids[k - 1] = gguf_tok_id(tok, str.data, str.len);
        if (*ids[k - 1] < 0)
            fail_at(path, "give the tokenizer_config.json of this tokenizer.json", "%s \"%.60s\" is not a token of the tokenizer",
                    f[k].key, (const char*)str.data);
    }
    if (tokjson_bool(&js, &f[4], -1, &out->add_bos)) fail_at(path, "the file is corrupt", "line %d: add_bos_token is not a boolean", f[4].line);
    free(str.data);
    free(text);
}

// The vocabulary in llama.cpp's "gpt2" (byte-level BPE) form, as convert_hf_to_gguf.py writes it: each token's
// string as in encoder.json / tokenizer.json's vocab, its type (1 normal, 3 control = special, 4 user-defined =
// a tokenizer.json's non-special added token, or one of the [PADn] rows a model has beyond its tokenizer), the
// merges as "left right" strings in rank order (vocab.bpe's lines), the pre-tokenizer's name, and BOS / EOS:
// <|endoftext|> (GPT-2, SmolLM2, Qwen2) or <|end_of_text|> (Llama 3) as EOS; BOS is <|begin_of_text|> where the
// tokenizer has it (Llama 3, which also prepends it: add_bos_token), else the EOS token, not prepended.
// Works for the gpt2_bpe folder, dataprep's byte-level BPE files and Hugging Face tokenizer.json alike. A
// tokenizer_config.json beside a tokenizer.json (gguf_tok_config) sets BOS, EOS, the padding token, add_bos_token
// and tokenizer.chat_template as the converter takes them from there (an instruct model's EOS is <|im_end|> or
// <|eot_id|>); without one, none of those is written but BOS / EOS as above.
static void gguf_put_tokenizer(GgufBuf* b, int* nkv, const char* path, int V) {
    Tokenizer tok;
    char err[1024];
    if (tokenizer_load(&tok, path, err, sizeof err))
        failf("--tokenizer takes the gpt2_bpe folder (encoder.json + vocab.bpe), a dataprep tokenizer or a tokenizer.json", "%s", err);
    if (tok.vocab_size > V)
        failf("export with the tokenizer the model was trained with", "%s: the tokenizer has %d tokens, the model only %d",
              path, tok.vocab_size, V);
    const char* pre = gguf_tok_pre(&tok);
    if (!pre)
        failf("export without --tokenizer (llama.cpp then needs the vocabulary from elsewhere)",
              "%s: llama.cpp has no pre-tokenizer that splits text as this tokenizer.json's pre_tokenizer does", path);
    int dec[0x144], enc[256];
    gpt2_byte_decoder(dec);
    for (int cp = 0; cp < 0x144; cp++)
        if (dec[cp] >= 0) enc[dec[cp]] = cp;
    gguf_kv_str(b, nkv, "tokenizer.ggml.model", "gpt2");
    gguf_kv_str(b, nkv, "tokenizer.ggml.pre", pre);
    GgufBuf s = {NULL, 0, 0};
    gguf_key(b, nkv, "tokenizer.ggml.tokens", GGUF_ARRAY);
    gguf_put_u32(b, GGUF_STRING);
    gguf_put_u64(b, (uint64_t)V);
    for (int id = 0; id < V; id++) {
        size_t n = 0;
        const unsigned char* p = id < tok.vocab_size ? tok_bytes(&tok, id, &n) : NULL;
        s.len = 0;
        if (!p) {
            char pad[32];
            gguf_put(&s, pad, (size_t)snprintf(pad, sizeof pad, "[PAD%d]", id));
        } else if (tok.is_special[id]) gguf_put(&s, p, n);  // "<|endoftext|>", an added token: its text as it is
        else gguf_put_gpt2_chars(&s, p, n, enc);
        gguf_put_str(b, s.p, s.len);
    }
    gguf_key(b, nkv, "tokenizer.ggml.token_type", GGUF_ARRAY);
    gguf_put_u32(b, GGUF_I32);
    gguf_put_u64(b, (uint64_t)V);
    for (int id = 0; id < V; id++) {
        int32_t type = id >= tok.vocab_size ? 4 : (tok.is_special[id] & TOK_SPECIAL) ? 3 : tok.is_special[id] ? 4 : 1;
        gguf_put(b, &type, 4);
    }
    gguf_key(b, nkv, "tokenizer.ggml.merges", GGUF_ARRAY);
    gguf_put_u32(b, GGUF_STRING);
    gguf_put_u64(b, (uint64_t)tok.num_merges);
    for (int r = 0; r < tok.num_merges; r++) {
        size_t nl, nr;
        const unsigned char* pl = tok_bytes(&tok, tok.merge_left[r], &nl);
        const unsigned char* pr = tok_bytes(&tok, tok.merge_right[r], &nr);
        s.len = 0;
        gguf_put_gpt2_chars(&s, pl, nl, enc);
        gguf_put(&s, " ", 1);
        gguf_put_gpt2_chars(&s, pr, nr, enc);
        gguf_put_str(b, s.p, s.len);
    }
    GgufTokConfig cfg;
    if (tok.kind == TOK_HF) gguf_tok_config(&tok, path, &cfg);
    else memset(&cfg, 0, sizeof cfg), cfg.bos = cfg.eos = cfg.pad = cfg.add_bos = -1;
    int bos = tok.kind == TOK_HF ? gguf_tok_special(&tok, "<|begin_of_text|>") : -1;
    int add_bos = cfg.add_bos >= 0 ? cfg.add_bos : bos >= 0;
    if (cfg.bos >= 0) bos = cfg.bos;
    int eos = cfg.eos >= 0 ? cfg.eos : tok.eot_id;
    if (eos >= 0 || bos >= 0) {
        gguf_kv_u32(b, nkv, "tokenizer.ggml.bos_token_id", (uint32_t)(bos >= 0 ? bos : eos));
        if (eos >= 0) gguf_kv_u32(b, nkv, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    }
    if (cfg.pad >= 0) gguf_kv_u32(b, nkv, "tokenizer.ggml.padding_token_id", (uint32_t)cfg.pad);
    if (tok.kind == TOK_HF) gguf_kv_bool(b, nkv, "tokenizer.ggml.add_bos_token", add_bos);
    if (cfg.chat_template.len) {
        gguf_key(b, nkv, "tokenizer.chat_template", GGUF_STRING);
        gguf_put_str(b, cfg.chat_template.data, cfg.chat_template.len);
    }
    free(cfg.chat_template.data);
    free(s.p);
    tokenizer_free(&tok);
}

// Writes zeros up to the next multiple of GGUF_ALIGN; *pos is the file position.
static void gguf_pad(FILE* f, const char* path, uint64_t* pos) {
    static const unsigned char zeros[GGUF_ALIGN] = {0};
    size_t n = (size_t)((GGUF_ALIGN - *pos % GGUF_ALIGN) % GGUF_ALIGN);
    fwrite_check(zeros, n, f, path);
    *pos += n;
}

// One tensor's data in its GGUF type, its rows gathered in GGUF order (gguf_src_offset): F32 (int8 weights
// widened, which is exact), or Q8_0 (int8 weights as they are; fp32 ones quantized now by q8_quantize, which
// rounds each scale to fp16 first, so the fp16 in the block is exact either way).
static void gguf_write_tensor(FILE* f, const char* path, const GPT* model, const GgufTensor* g) {
    const GPTConfig* c = &model->config;
    size_t rows = (size_t)gguf_rows(g), cols = (size_t)gguf_cols(g), n = rows * cols;
    const Q8* w8 = model->q8[g->p].q ? &model->q8[g->p] : NULL;
    const float* src = model->params.t[g->p];
    int keep8 = w8 && g->type == GGML_Q8_0;  // int8 weights into Q8_0 blocks: copied, not requantized
    float* x = keep8 ? NULL : (float*)mallocCheck(n * sizeof(float));
    int8_t* q = g->type == GGML_Q8_0 ? (int8_t*)mallocCheck(n) : NULL;
    float* d = g->type == GGML_Q8_0 ? (float*)mallocCheck(n / Q8_GROUP * sizeof(float)) : NULL;
    for (size_t r = 0; r < rows; r++) {
        size_t at = gguf_src_offset(c, g, r);
        if (keep8) {  // cols is a multiple of 32 (export_gguf checks), so at is a block's start
            memcpy(q + r * cols, w8->q + at, cols);
            memcpy(d + r * cols / Q8_GROUP, w8->d + at / Q8_GROUP, cols / Q8_GROUP * sizeof(float));
        } else {
            for (size_t e = 0; e < cols; e++) x[r * cols + e] = src ? src[at + e] : q8_at(w8, at + e);
        }
    }
    if (g->type == GGML_F32) {
        fwrite_check(x, n * 4, f, path);
    } else {
        if (!keep8) q8_quantize(q, d, x, n);
        unsigned char* blocks = (unsigned char*)mallocCheck(n / Q8_GROUP * (2 + Q8_GROUP));
        for (size_t b = 0; b < n / Q8_GROUP; b++) {  // block b: fp16 d, then 32 int8
            uint16_t h = fp16_from_f32(d[b]);
            memcpy(blocks + b * (2 + Q8_GROUP), &h, 2);
            memcpy(blocks + b * (2 + Q8_GROUP) + 2, q + b * Q8_GROUP, Q8_GROUP);
        }
        fwrite_check(blocks, n / Q8_GROUP * (2 + Q8_GROUP), f, path);
        free(blocks);
    }
    free(x), free(q), free(d);
}

// Writes the model as a GGUF file for llama.cpp (gpt2, llama or qwen2: gguf_arch). q8: the matrices that our
// int8 model quantizes (token_embd, the block matrices, output) as Q8_0, the rest F32; else all F32.
// tokenizer: a tokenizer path (llama.cpp needs the vocabulary to run the model) or NULL.
static void export_gguf(const GPT* model, const char* path, int q8, const char* tokenizer) {
    const GPTConfig* c = &model->config;
    const char* arch = gguf_arch(c);
    if (c->num_classes)
        failf("llama.cpp's gpt2 and llama have only the LM head; --format safetensors keeps score.weight",
              "%s: the model has a %d-class head", path, c->num_classes);
    if (c->lora_r || c->adapter_dim || c->prefix_len)
        failf("merge LoRA first (--merge 1); adapters and prefixes have no place in GGUF",
              "%s: the model has LoRA, adapters or a prefix", path);
    int llama = c->arch == ARCH_LLAMA, nkv_heads = kv_heads(c);
    if (llama && (c->C / c->NH) % 2)
        failf("RoPE needs an even head size", "%s: head size %d is odd", path, c->C / c->NH);
    if (llama && !(c->rope_theta > 0))
        failf("set rope_theta (10000 in Llama 2, 500000 in Llama 3)", "%s: rope_theta is %g", path, (double)c->rope_theta);
    int L = c->L, nt, nkv = 0;
    GgufTensor* t = (GgufTensor*)callocCheck((size_t)gguf_max_tensors(c), sizeof(GgufTensor));
    nt = gguf_tensors(c, q8, !strcmp(arch, "llama"), t);
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        if (t[i].type == GGML_Q8_0 && t[i].ne[0] % Q8_GROUP)
            failf("use --dtype f32, or a model whose C and MLP width are multiples of 32",
                  "%s: %s has rows of %llu weights, not a multiple of the Q8_0 block size 32", path, t[i].name,
                  (unsigned long long)t[i].ne[0]);
        t[i].offset = off;
        off += (gguf_nbytes(&t[i]) + GGUF_ALIGN - 1) / GGUF_ALIGN * GGUF_ALIGN;
    }
    GgufBuf kv = {NULL, 0, 0}, info = {NULL, 0, 0};
    char name[256];  // general.name: the file's name without its extension
    const char* base = strrchr(path, '/');
    snprintf(name, sizeof name, "%s", base ? base + 1 : path);
    char* dot = strrchr(name, '.');
    if (dot && dot != name) *dot = 0;
    gguf_kv_str(&kv, &nkv, "general.architecture", arch);
    gguf_kv_str(&kv, &nkv, "general.name", name);
    gguf_kv_u32(&kv, &nkv, "general.file_type", q8 ? LLAMA_FTYPE_MOSTLY_Q8_0 : LLAMA_FTYPE_ALL_F32);
    if (q8) gguf_kv_u32(&kv, &nkv, "general.quantization_version", 2);  // ggml's GGML_QNT_VERSION
    gguf_kv_arch_u32(&kv, &nkv, arch, "context_length", (uint32_t)c->maxT);
    gguf_kv_arch_u32(&kv, &nkv, arch, "embedding_length", (uint32_t)c->C);
    gguf_kv_arch_u32(&kv, &nkv, arch, "feed_forward_length", (uint32_t)mlp_width(c));
    gguf_kv_arch_u32(&kv, &nkv, arch, "block_count", (uint32_t)L);
    gguf_kv_arch_u32(&kv, &nkv, arch, "attention.head_count", (uint32_t)c->NH);
    if (!llama) {
        gguf_kv_arch_f32(&kv, &nkv, arch, "attention.layer_norm_epsilon", 1e-5f);  // layernorm_forward's
    } else {  // the keys convert_hf_to_gguf.py writes for LlamaForCausalLM / Qwen2ForCausalLM
        gguf_kv_arch_u32(&kv, &nkv, arch, "attention.head_count_kv", (uint32_t)nkv_heads);
        gguf_kv_arch_f32(&kv, &nkv, arch, "rope.freq_base", c->rope_theta);
        gguf_kv_arch_f32(&kv, &nkv, arch, "attention.layer_norm_rms_epsilon", c->norm_eps);
        gguf_kv_arch_u32(&kv, &nkv, arch, "rope.dimension_count", (uint32_t)(c->C / c->NH));  // all of each head
        gguf_kv_arch_u32(&kv, &nkv, arch, "vocab_size", (uint32_t)c->V);
        if (c->rope_factor) {  // linear scaling: llama.cpp divides positions by the factor, as we do
            char key[128];
            snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
            gguf_kv_str(&kv, &nkv, key, "linear");
            gguf_kv_arch_f32(&kv, &nkv, arch, "rope.scaling.factor", c->rope_factor);
        }
    }
    if (tokenizer) gguf_put_tokenizer(&kv, &nkv, tokenizer, c->V);
    for (int i = 0; i < nt; i++) {
        gguf_put_str(&info, t[i].name, strlen(t[i].name));
        gguf_put_u32(&info, (uint32_t)t[i].nd);
        for (int d = 0; d < t[i].nd; d++) gguf_put_u64(&info, t[i].ne[d]);
        gguf_put_u32(&info, t[i].type);
        gguf_put_u64(&info, t[i].offset);
    }
    SafeWriter w;
    safe_open(&w, path);
    uint32_t version = GGUF_VERSION;
    uint64_t counts[2] = {(uint64_t)nt, (uint64_t)nkv}, pos = 24 + kv.len + info.len;
    fwrite_check("GGUF", 4, w.f, path);
    fwrite_check(&version, 4, w.f, path);
    fwrite_check(counts, 16, w.f, path);
    fwrite_check(kv.p, kv.len, w.f, path);
    fwrite_check(info.p, info.len, w.f, path);
    gguf_pad(w.f, path, &pos);
    for (int i = 0; i < nt; i++) {
        gguf_write_tensor(w.f, path, model, &t[i]);
        pos += gguf_nbytes(&t[i]);
        gguf_pad(w.f, path, &pos);
    }
    safe_close(&w);
    free(kv.p), free(info.p), free(t);
}

// Reading, through the checked Reader: every length is checked against what is left of the file first.
// A string into out (truncated to cap - 1 bytes, the rest skipped).
static void gguf_str(Reader* r, char* out, size_t cap, const char* what) {
    uint64_t n = rd_u64(r, what);
    rd_span(r, r->pos, n, what);
    size_t keep = n < cap - 1 ? (size_t)n : cap - 1;
    rd_bytes(r, out, keep, what);
    out[keep] = 0;
    rd_skip(r, n - keep, what);
}
// One metadata value of the given type: a number into *num, a string into str (cap bytes); arrays are skipped.
static void gguf_value(Reader* r, uint32_t type, double* num, char* str, size_t cap, int depth) {
    static const int size[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};  // by type; strings and arrays vary
    if (type > 12 || depth > 2) fail_at(r->path, "the file is corrupt or from a newer GGUF", "unknown metadata value type %u", type);
    if (type == GGUF_STRING) {
        gguf_str(r, str, cap, "a metadata string");
        return;
    }
    if (type == GGUF_ARRAY) {
        uint32_t et = rd_u32(r, "a metadata array's type");
        uint64_t n = rd_u64(r, "a metadata array's length");
        if (et > 12) fail_at(r->path, "the file is corrupt", "metadata array of type %u", et);
        // each element takes at least its size (a string or array: its 8-byte length), so n is bounded by the file
        if (n > (r->size - r->pos) / (size[et] ? (uint64_t)size[et] : 8))
            fail_at(r->path, "the file is truncated or corrupt", "unexpected end of file: a metadata array of %llu elements cannot fit in the %llu bytes left",
                    (unsigned long long)n, (unsigned long long)(r->size - r->pos));
        if (size[et]) rd_skip(r, n * (uint64_t)size[et], "a metadata array");
        char tmp[8];
        for (uint64_t i = 0; !size[et] && i < n; i++) gguf_value(r, et, num, tmp, sizeof tmp, depth + 1);
        return;
    }
    unsigned char b[8];
    rd_bytes(r, b, (uint64_t)size[type], "a metadata value");
    uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; float f32; uint64_t u64; int64_t i64; double f64;
    switch (type) {
        case 0: memcpy(&u8, b, 1), *num = u8; break;
        case 1: memcpy(&i8, b, 1), *num = i8; break;
        case 2: memcpy(&u16, b, 2), *num = u16; break;
        case 3: memcpy(&i16, b, 2), *num = i16; break;
        case 4: memcpy(&u32, b, 4), *num = u32; break;
        case 5: memcpy(&i32, b, 4), *num = i32; break;
        case 6: memcpy(&f32, b, 4), *num = f32; break;
        case 7: *num = b[0]; break;  // bool
        case 10: memcpy(&u64, b, 8), *num = (double)u64; break;
        case 11: memcpy(&i64, b, 8), *num = (double)i64; break;
        default: memcpy(&f64, b, 8), *num = f64; break;
    }
}

static const GgufTensor* gguf_find(const GgufTensor* t, uint64_t n, const char* name) {
    for (uint64_t i = 0; i < n; i++)
        if (!strcmp(t[i].name, name)) return &t[i];
    return NULL;
}

// A tensor's raw bytes (malloc'd); load_gguf has checked they lie inside the file.
static unsigned char* gguf_read_raw(Reader* r, const GgufTensor* g, uint64_t data_start) {
    uint64_t nb = gguf_nbytes(g);
    unsigned char* raw = (unsigned char*)mallocCheck((size_t)nb);
    rd_seek(r, data_start + g->offset, g->name);
    rd_bytes(r, raw, nb, g->name);
    return raw;
}

// n weights of type g->type in raw to fp32.
static void gguf_to_f32(const GgufTensor* g, const unsigned char* raw, float* out, size_t n) {
    for (size_t e = 0; e < n; e++) {
        uint16_t h;
        if (g->type == GGML_F32) memcpy(&out[e], raw + 4 * e, 4);
        else if (g->type == GGML_F16) memcpy(&h, raw + 2 * e, 2), out[e] = fp16_to_f32(h);
        else {  // Q8_0: block e/32 holds the fp16 scale, then 32 int8
            const unsigned char* blk = raw + e / Q8_GROUP * (2 + Q8_GROUP);
            memcpy(&h, blk, 2);
            out[e] = (float)(int8_t)blk[2 + e % Q8_GROUP] * fp16_to_f32(h);
        }
    }
}

// The per-architecture metadata the loader reads ("ARCH." in front: gpt2.context_length, llama.vocab_size, ...)
enum { HP_CTX, HP_EMBD, HP_FF, HP_BLOCKS, HP_HEADS, HP_LN_EPS, HP_KV_HEADS, HP_RMS_EPS, HP_ROPE_BASE, HP_ROPE_DIM,
       HP_ROPE_FACTOR, HP_VOCAB, HP_N };
static const char* const GGUF_HP_KEYS[HP_N] = {
    "context_length", "embedding_length", "feed_forward_length", "block_count", "attention.head_count",
    "attention.layer_norm_epsilon", "attention.head_count_kv", "attention.layer_norm_rms_epsilon", "rope.freq_base",
    "rope.dimension_count", "rope.scaling.factor", "vocab_size"};
static const char* const GGUF_ARCHS[3] = {"gpt2", "llama", "qwen2"};

// Fails unless x is a whole number in [lo, hi]; key names it.
static void gguf_check_whole(const char* path, const char* arch, int k, double x, double lo, double hi, const char* hint) {
    if (!(x >= lo && x <= hi) || x != floor(x))
        fail_at(path, hint, "%s.%s is %g: missing, or out of range (a whole number in [%.0f, %.0f])", arch, GGUF_HP_KEYS[k], x, lo, hi);
}

// Stores tensor g's data (raw, in the file's type f->type) into the model: our row q of the slice is GGUF row
// gguf_rope_dst(q) when permuted (the inverse of the writer's gather), else row q. Into an fp32 tensor, or an
// int8 one: Q8_0 blocks copied as they are, float rows quantized (by whole rows: cols is a multiple of 32).
static void gguf_store(GPT* model, const GgufTensor* g, const GgufTensor* f, const unsigned char* raw) {
    const GPTConfig* c = &model->config;
    size_t rows = (size_t)gguf_rows(g), cols = (size_t)gguf_cols(g), n = rows * cols;
    size_t base = (size_t)g->l * slice_numel(c, g->p) + g->row0 * cols;  // our first weight of the slice
    Q8* w8 = model->q8[g->p].q ? &model->q8[g->p] : NULL;
    float* x = w8 && f->type == GGML_Q8_0 ? NULL : (float*)mallocCheck(n * sizeof(float));
    if (x) gguf_to_f32(f, raw, x, n);
    float* ours = w8 ? (x ? (float*)mallocCheck(n * sizeof(float)) : NULL) : model->params.t[g->p] + base;
    for (size_t q = 0; q < rows; q++) {
        size_t r = g->perm_hs ? gguf_rope_dst(q, g->perm_hs) : q;  // the GGUF row holding our row q
        if (x) {
            memcpy(ours + q * cols, x + r * cols, cols * sizeof(float));
            continue;
        }
        for (size_t b = 0; b < cols / Q8_GROUP; b++) {  // Q8_0 into our int8 layout: q and d in separate arrays
            const unsigned char* blk = raw + (r * cols / Q8_GROUP + b) * (2 + Q8_GROUP);
            size_t e = base + q * cols + b * Q8_GROUP;
            uint16_t h;
            memcpy(&h, blk, 2);
            ((float*)w8->d)[e / Q8_GROUP] = fp16_to_f32(h);
            memcpy((int8_t*)w8->q + e, blk + 2, Q8_GROUP);
        }
    }
    if (w8 && x) q8_quantize((int8_t*)w8->q + base, (float*)w8->d + base / Q8_GROUP, ours, n);  // a float matrix in an int8 model
    if (w8) free(ours);
    free(x);
}

// Loads a GGUF file of llama.cpp's gpt2, llama or qwen2 architecture: F32 and F16 tensors as fp32, Q8_0 ones as
// they are (then the model is an int8 model, gpt_alloc_q8, and any of its big matrices stored as floats are
// quantized here). Every size comes from the metadata and is checked before anything is allocated; every tensor's
// shape is checked against it, and its bytes against the file.
static void load_gguf(GPT* model, const char* path) {
    Reader r = rd_open(path);
    char magic[4];
    rd_bytes(&r, magic, 4, "the GGUF magic");
    uint32_t version = rd_u32(&r, "the GGUF version");
    if (memcmp(magic, "GGUF", 4)) fail_at(path, "is this a GGUF file?", "no GGUF magic");
    if (version != 2 && version != 3)  // v2 and v3 share the layout (v3 allows big-endian files)
        fail_at(path, "convert the model again with a current llama.cpp", "GGUF version %u, expected 3", version);
    uint64_t nt = rd_u64(&r, "the tensor count"), nkv = rd_u64(&r, "the metadata count");
    // a tensor's entry takes at least 32 bytes, a metadata entry 13: neither count can exceed the file's size
    if (nt > 100000 || nkv > 100000 || nt > r.size / 32 || nkv > r.size / 13)
        fail_at(path, "the file is corrupt", "%llu tensors, %llu metadata entries in %llu bytes", (unsigned long long)nt,
                (unsigned long long)nkv, (unsigned long long)r.size);
    double hps[3][HP_N], align = GGUF_ALIGN;
    for (int a = 0; a < 3; a++)
        for (int k = 0; k < HP_N; k++) hps[a][k] = NAN;
    char arch[64] = "", key[256], str[64], scaling[3][64] = {"", "", ""};
    for (uint64_t i = 0; i < nkv; i++) {
        gguf_str(&r, key, sizeof key, "a metadata key");
        uint32_t type = rd_u32(&r, "a metadata value type");
        double num = NAN;
        str[0] = 0;
        gguf_value(&r, type, &num, str, sizeof str, 0);
        if (!strcmp(key, "general.architecture")) snprintf(arch, sizeof arch, "%s", str);
        if (!strcmp(key, "general.alignment")) align = num;
        for (int a = 0; a < 3; a++) {
            size_t n = strlen(GGUF_ARCHS[a]);
            if (strncmp(key, GGUF_ARCHS[a], n) || key[n] != '.') continue;
            for (int k = 0; k < HP_N; k++)
                if (!strcmp(key + n + 1, GGUF_HP_KEYS[k])) hps[a][k] = num;
            if (!strcmp(key + n + 1, "rope.scaling.type")) snprintf(scaling[a], sizeof scaling[a], "%s", str);
        }
    }
    int ai = !strcmp(arch, "gpt2") ? 0 : !strcmp(arch, "llama") ? 1 : !strcmp(arch, "qwen2") ? 2 : -1;
    if (ai < 0)
        fail_at(path, "this loader reads llama.cpp's gpt2, llama and qwen2 architectures (as convert_hf_to_gguf.py or ./train export writes them)",
                "general.architecture is '%s', not 'gpt2', 'llama' or 'qwen2'", arch);
    const double* hp = hps[ai];
    const char* hint = ai ? "the file lacks the Llama hyperparameters llama.cpp needs" : "the file lacks GPT-2's hyperparameters";
    for (int k = 0; k <= HP_HEADS; k++) gguf_check_whole(path, arch, k, hp[k], 1, MAX_POSITIONS, hint);
    if (!(align >= 1 && align <= 65536) || align != floor(align) || ((uint64_t)align & ((uint64_t)align - 1)))
        fail_at(path, "the file is corrupt", "general.alignment %g is not a power of two", align);
    GgufTensor* t = (GgufTensor*)callocCheck(nt ? (size_t)nt : 1, sizeof(GgufTensor));
    for (uint64_t i = 0; i < nt; i++) {
        gguf_str(&r, t[i].name, sizeof t[i].name, "a tensor name");
        uint32_t nd = rd_u32(&r, "a tensor's dimension count");
        if (nd < 1 || nd > 4) fail_at(path, "the file is corrupt", "tensor %s has %u dimensions", t[i].name, nd);
        t[i].nd = (int)nd;
        for (int d = 0; d < 4; d++) t[i].ne[d] = d < (int)nd ? rd_u64(&r, "a tensor's shape") : 1;
        t[i].type = rd_u32(&r, "a tensor's type");
        t[i].offset = rd_u64(&r, "a tensor's offset");
        if (gguf_find(t, i, t[i].name)) fail_at(path, "the file is corrupt: each tensor appears once", "tensor '%s' appears twice", t[i].name);
    }
    uint64_t data_start = (r.pos + (uint64_t)align - 1) / (uint64_t)align * (uint64_t)align;
    const GgufTensor* te = gguf_find(t, nt, "token_embd.weight");
    if (!te || te->nd != 2 || te->ne[1] < 1 || te->ne[1] > MAX_VOCAB || te->ne[0] < 1 || te->ne[0] > MAX_CHANNELS)
        fail_at(path, "the file is incomplete", "no token_embd.weight matrix of a size in range");
    GPTConfig c;
    memset(&c, 0, sizeof c);
    c.maxT = (int)hp[HP_CTX], c.C = (int)hp[HP_EMBD], c.F = (int)hp[HP_FF], c.L = (int)hp[HP_BLOCKS], c.NH = (int)hp[HP_HEADS];
    c.V = (int)te->ne[1], c.Vp = pad_vocab(c.V);
    const GgufTensor* out = gguf_find(t, nt, "output.weight");
    if (ai == 0) {
        if (!(fabs(hp[HP_LN_EPS] - 1e-5) <= 1e-9)) fail_at(path, "this model's LayerNorm has eps 1e-5, as GPT-2", "layer_norm_epsilon is %g", hp[HP_LN_EPS]);
        if (c.F == 4 * c.C) c.F = 0;  // GPT-2's default width
    } else {  // llama / qwen2: what llama.cpp reads, with its defaults where a key may be absent
        c.arch = ARCH_LLAMA;
        if (c.C % c.NH || (c.C / c.NH) % 2)
            fail_at(path, "the file is corrupt", "embedding_length %d is not head_count %d times an even head size", c.C, c.NH);
        double kvh = isnan(hp[HP_KV_HEADS]) ? c.NH : hp[HP_KV_HEADS];  // llama.cpp: absent means head_count
        gguf_check_whole(path, arch, HP_KV_HEADS, kvh, 1, c.NH, "the file is corrupt");
        if (c.NH % (int)kvh)
            fail_at(path, "the file is corrupt", "%s.attention.head_count_kv %g does not divide head_count %d", arch, kvh, c.NH);
        c.n_kv_heads = (int)kvh;
        double base = isnan(hp[HP_ROPE_BASE]) ? 10000.0 : hp[HP_ROPE_BASE];  // llama.cpp's default
        double eps = hp[HP_RMS_EPS];
        if (!(base > 0 && base < 1e30)) fail_at(path, "the file is corrupt", "%s.rope.freq_base is %g", arch, base);
        if (!(eps > 0 && eps < 1)) fail_at(path, "the file lacks the RMSNorm epsilon llama.cpp needs", "%s.attention.layer_norm_rms_epsilon is %g: missing, or not in (0, 1)", arch, eps);
        c.rope_theta = (float)base, c.norm_eps = (float)eps;
        if (!isnan(hp[HP_ROPE_DIM]) && hp[HP_ROPE_DIM] != c.C / c.NH)
            fail_at(path, "RoPE on part of each head (partial rotary) is not supported",
                    "%s.rope.dimension_count is %g, the head size %d", arch, hp[HP_ROPE_DIM], c.C / c.NH);
        const char* st = scaling[ai];
        if (*st && strcmp(st, "none") && strcmp(st, "linear"))
            fail_at(path, "supported: no RoPE scaling, or linear", "%s.rope.scaling.type is '%s'", arch, st);
        if (!strcmp(st, "linear")) {
            double fac = hp[HP_ROPE_FACTOR];
            if (!(fac > 0 && fac < 1e6)) fail_at(path, "the file is corrupt", "%s.rope.scaling.factor is %g", arch, fac);
            c.rope_factor = (float)fac;
        }
        if (!isnan(hp[HP_VOCAB]) && hp[HP_VOCAB] != c.V)
            fail_at(path, "the file is corrupt", "%s.vocab_size %g, but token_embd has %d rows", arch, hp[HP_VOCAB], c.V);
        c.untied = out != NULL;
        c.qkv_bias = ai == 2 || gguf_find(t, nt, "blk.0.attn_q.bias") != NULL;  // qwen2's; a llama file may have them too
    }
    check_config(&c, path, "GGUF metadata");
    if (te->ne[0] != (uint64_t)c.C)
        fail_at(path, "the file is corrupt", "embedding_length %d, but token_embd rows of %llu", c.C, (unsigned long long)te->ne[0]);
    // The tensors the config implies, each found in the file before anything is allocated: its shape exactly,
    // its type, and its bytes inside the file (overflow-safe), no two sharing a byte.
    GgufTensor* want = (GgufTensor*)callocCheck((size_t)gguf_max_tensors(&c), sizeof(GgufTensor));
    int nw = gguf_tensors(&c, 0, ai == 1, want);
    int any_q8 = 0;
    Span* sp = (Span*)callocCheck(nt ? (size_t)nt : 1, sizeof(Span));
    unsigned char* used = (unsigned char*)callocCheck(nt ? (size_t)nt : 1, 1);
    for (int i = 0; i < nw; i++) {
        const char* name = want[i].name;
        const GgufTensor* g = gguf_find(t, nt, name);
        if (!g) fail_at(path, ai ? "the file is incomplete" : "the file is incomplete or not a GPT-2 model", "missing tensor '%s'", name);
        uint64_t ne0 = want[i].ne[0], ne1 = want[i].ne[1];
        if (g->ne[0] != ne0 || g->ne[1] != ne1 || g->ne[2] != 1 || g->ne[3] != 1)
            fail_at(path, "the tensor shapes do not match the metadata", "%s has ne = [%llu, %llu, %llu, %llu], expected [%llu, %llu]",
                    name, (unsigned long long)g->ne[0], (unsigned long long)g->ne[1], (unsigned long long)g->ne[2],
                    (unsigned long long)g->ne[3], (unsigned long long)ne0, (unsigned long long)ne1);
        if (g->type != GGML_F32 && g->type != GGML_F16 && g->type != GGML_Q8_0)
            fail_at(path, "requantize to q8_0 (llama-quantize IN OUT q8_0) or convert with --outtype f32",
                    "%s has ggml type %u; this loader reads F32 (0), F16 (1) and Q8_0 (8)", name, g->type);
        if ((g->type == GGML_Q8_0 && ne0 % Q8_GROUP) || g->offset % (uint64_t)align)
            fail_at(path, "the file is corrupt", "%s has a bad Q8_0 row length or offset", name);
        uint64_t at = add_or_fail(data_start, g->offset, path, "a tensor's offset");
        rd_span(&r, at, gguf_nbytes(g), name);  // gguf_nbytes cannot overflow: the shape is the config's
        size_t k = (size_t)(g - t);
        sp[k].begin = at, sp[k].end = at + gguf_nbytes(g), sp[k].name = g->name;
        any_q8 |= g->type == GGML_Q8_0;
        used[k] = 1;
    }
    for (int i = 0; any_q8 && i < nw; i++)  // an int8 model is quantized by whole rows (gguf_store)
        if (param_quantizable(want[i].p) && want[i].nd == 2 && want[i].ne[0] % Q8_GROUP)
            fail_at(path, "the file is corrupt: int8 models need C and the MLP width multiples of 32",
                    "%s has rows of %llu weights beside Q8_0 tensors", want[i].name, (unsigned long long)want[i].ne[0]);
    // GPT-2 files from early-2024 converters carry output.weight, a copy of token_embd
    int out_gpt2 = ai == 0 && out;
    if (out_gpt2) {
        int same = out->type == te->type && out->nd == 2 && out->ne[0] == te->ne[0] && out->ne[1] == te->ne[1] &&
                   out->ne[2] == 1 && out->ne[3] == 1 && out->offset % (uint64_t)align == 0;
        if (!same) fail_at(path, "this GPT-2 ties its LM head to the token embedding", "output.weight differs from token_embd.weight");
        uint64_t at = add_or_fail(data_start, out->offset, path, "a tensor's offset");
        rd_span(&r, at, gguf_nbytes(out), "output.weight");
        sp[out - t].begin = at, sp[out - t].end = at + gguf_nbytes(out), sp[out - t].name = out->name;
        used[out - t] = 1;
    }
    for (uint64_t i = 0; i < nt; i++)
        if (!used[i])
            fail_at(path, !strcmp(t[i].name, "rope_freqs.weight") ? "Llama 3.1's RoPE scaling (rope_freqs) is not supported"
                          : ai ? "this loader reads the tensors of a Llama-style model (as ./train export or convert_hf_to_gguf.py writes them)"
                               : "this loader reads GPT-2's tensors only",
                    "unexpected tensor '%s'", t[i].name);
    check_no_overlap(sp, (size_t)nt, path);
    free(sp);
    if (any_q8) check_q8_config(&c, path);
    check_model_memory(path, (double)num_parameters(&c) * (any_q8 ? 5 : 4));
    gpt_build(model, c);
    if (any_q8) {  // an int8 model, as gpt_quantize makes it; the padded vocabulary rows stay zero
        gpt_alloc_q8(model);
        for (int p = 0; p < NUM_PARAMS; p++)
            if (model->q8[p].q) {
                memset((int8_t*)model->q8[p].q, 0, param_numel(&c, p));
                memset((float*)model->q8[p].d, 0, param_numel(&c, p) / Q8_GROUP * sizeof(float));
            }
    }
    for (int i = 0; i < nw; i++) {
        const GgufTensor* g = gguf_find(t, nt, want[i].name);  // found above
        unsigned char* raw = gguf_read_raw(&r, g, data_start);
        gguf_store(model, &want[i], g, raw);
        free(raw);
    }
    if (out_gpt2) {
        unsigned char* a = gguf_read_raw(&r, te, data_start);
        unsigned char* b = gguf_read_raw(&r, out, data_start);
        int same = !memcmp(a, b, (size_t)gguf_nbytes(te));
        free(a), free(b);
        if (!same) fail_at(path, "this GPT-2 ties its LM head to the token embedding", "output.weight differs from token_embd.weight");
    }
    if (any_q8) gpt_drop_fp32_copies(model);  // the int8 tensors' fp32 places were never needed
    free(used), free(t), free(want);
    rd_close(&r);
}

// ---------------------------------------------------------------------------- any model file
// Applies an adapter-only file (LoRA / adapters / prefix / head) to a loaded base model. The file's base
// config must match the model's; the model is rebuilt with the file's fine-tuning config. A PEFT adapter
// (folder or .safetensors) goes to load_peft instead.
static void load_adapter(GPT* model, const char* path) {
    char stp[1100], cfgp[1100];
    if (peft_paths(path, stp, cfgp)) {  // a Hugging Face PEFT LoRA adapter (export.c)
        load_peft(model, path);
        return;
    }
    Reader r = rd_open(path);
    int32_t h[256];
    rd_bytes(&r, h, sizeof h, "the adapter header");
    if (h[0] != CKPT_MAGIC || ckpt_kind(h, path) != CKPT_ADAPTER)
        fail_at(path, "--adapter takes the adapter.bin that training with --method lora|adapter|prefix writes",
                "not a finetune.c adapter file (magic %d, kind %d)", h[0], h[2]);
    GPTConfig ac = ckpt_config(h, path), mc = model->config;
    if (h[19]) fail_at(path, "the file is corrupt", "an adapter file holds no int8 tensors, but its int8 flag is set");
    if (ac.maxT != mc.maxT || ac.V != mc.V || ac.Vp != mc.Vp || ac.L != mc.L || ac.NH != mc.NH || ac.C != mc.C ||
        mlp_width(&ac) != mlp_width(&mc) || ac.arch != mc.arch || ac.mask_id != mc.mask_id)
        fail_at(path, ac.arch != mc.arch ? "an adapter trained on an encoder only fits that encoder (and a gpt2 one a gpt2 model)"
                                         : "apply an adapter to the base model it was trained on",
                "adapter is for L=%d NH=%d C=%d F=%d V=%d (Vp=%d) maxT=%d %s, the model is L=%d NH=%d C=%d F=%d V=%d (Vp=%d) maxT=%d %s",
                ac.L, ac.NH, ac.C, mlp_width(&ac), ac.V, ac.Vp, ac.maxT, ARCH_NAMES[ac.arch], mc.L, mc.NH, mc.C,
                mlp_width(&mc), mc.V, mc.Vp, mc.maxT, ARCH_NAMES[mc.arch]);
    int np = ckpt_num_tensors(h, &ac, path);
    ckpt_read_table(&r, &ac, CKPT_ADAPTER, np);
    ckpt_check_names_bytes(h, path);
    ckpt_check_tasks_bytes(h, path);
    uint64_t expect = 1024 + (uint64_t)np * 24 + ckpt_tensor_bytes(&ac, CKPT_ADAPTER, 0) + (uint64_t)h[20] + (uint64_t)h[25];
    if (r.size != expect)
        fail_at(path, "the file is truncated", "expected %llu bytes, found %llu", (unsigned long long)expect, (unsigned long long)r.size);
    check_model_memory(path, (double)num_parameters(&ac) * 4);
    uint64_t rng = 1;
    gpt_set_peft(model, ac, &rng);
    for (int i = NUM_BASE_PARAMS; i < NUM_PARAMS; i++)
        if (!param_is_base(i)) rd_bytes(&r, model->params.t[i], (uint64_t)param_numel(&ac, i) * 4, PARAM_TABLE[i].name);
    free(model->label_names);  // the adapter's head brings its own class names
    model->label_names = NULL;
    ckpt_read_names(&r, model, (uint32_t)h[20]);
    ckpt_read_tasks(&r, model, h[24], (uint32_t)h[25]);  // a multi-task adapter's heads (gpt_set_peft emptied the table)
    rd_close(&r);
}

// Loads any supported model file, telling the format by its first bytes: our checkpoint, llm.c's model file,
// a GGUF file (llama.cpp's gpt2, llama or qwen2), or a Hugging Face model.safetensors (a folder holding one also works).
static void load_model(GPT* model, const char* path_in, TrainState* state) {
    if (strlen(path_in) > 1000) failf("use a shorter path", "model path too long (%zu characters)", strlen(path_in));
    char path[1100];
    snprintf(path, sizeof path, "%s", path_in);
    char inside[1100];  // a Hugging Face model folder: read the model.safetensors inside it
    snprintf(inside, sizeof inside, "%s/model.safetensors", path_in);
    struct stat sb;
    if (stat(inside, &sb) == 0) snprintf(path, sizeof path, "%s", inside);
    else {  // a Hugging Face folder in a form this loader does not read: say which
        snprintf(inside, sizeof inside, "%s/model.safetensors.index.json", path_in);
        if (stat(inside, &sb) == 0)
            failf("merge the shards into one model.safetensors (safetensors' save_file of the whole state dict)",
                  "%s: a sharded checkpoint (model.safetensors.index.json); this loader reads one model.safetensors", path_in);
        snprintf(inside, sizeof inside, "%s/pytorch_model.bin", path_in);
        if (stat(inside, &sb) == 0)
            failf("save it as safetensors (model.save_pretrained(DIR, safe_serialization=True))",
                  "%s: a PyTorch pickle (pytorch_model.bin); this loader reads model.safetensors", path_in);
    }
    Reader r = rd_open(path);  // (refuses a folder, FIFO or device)
    int32_t magic = 0;
    unsigned char first[9] = {0};
    if (r.size < 9) fail_at(path, "is this a model file?", "file is too short (%llu bytes) to be a model", (unsigned long long)r.size);
    rd_bytes(&r, first, 9, "the first bytes");
    rd_close(&r);
    memcpy(&magic, first, 4);
    if (magic == CKPT_MAGIC) {
        load_checkpoint(model, path, state);
    } else if (state) {
        fail_at(path, "--resume needs the ckpt.bin that --out DIR writes", "not a finetune.c training checkpoint (magic %d)", magic);
    } else if (magic == LLMC_MODEL_MAGIC) {
        load_llmc(model, path);
    } else if (!memcmp(first, "GGUF", 4)) {
        load_gguf(model, path);
    } else if (first[8] == '{') {
        load_hf_safetensors(model, path);
    } else {
        fail_at(path, "supported: finetune.c checkpoints, llm.c's gpt2_124M.bin, Hugging Face model.safetensors, GGUF (gpt2, llama, qwen2)",
                "unknown model format (first int32 %d, expected %d, %d or a safetensors header)", magic, CKPT_MAGIC, LLMC_MODEL_MAGIC);
    }
}
