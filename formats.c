// formats.c: every model file format, each reader next to its writer, and load_model, which tells them apart
// by their first bytes.
//
//   format                 written by                 read by                   files
//   finetune.c checkpoint  save_checkpoint(_kind)     load_checkpoint, load_adapter   model.bin, ckpt.bin, adapter.bin
//   Hugging Face GPT-2     export_hf                  load_hf_safetensors       model.safetensors + config.json
//   llm.c                  export_llmc                load_llmc                 gpt2_124M.bin's layout
//   PEFT LoRA adapter      export_peft                load_peft (--adapter)     adapter_model.safetensors + adapter_config.json
//   GGUF v3 (llama.cpp)    export_gguf                load_gguf (--model)       one .gguf, architecture gpt2, F32 or Q8_0
//
// Every file is written through SafeWriter (PATH.tmp, renamed when complete). Numbers are written in the
// host's byte order, which all these formats define as little-endian: x86 and ARM, not big-endian machines.
// Kept valid C++ as well (train.cu compiles it as C++): casts on malloc, no compound literals.

#pragma once
#include <sys/stat.h>     // defines: mkdir (export folders)
#include "model.h"        // defines: GPT, the parameter table, the int8 layout
#include "tokenizer.c"    // defines: Tokenizer (GGUF files carry the vocabulary)

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
            }
            json_next(&j);
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
                        if (json_peek(&j) == ',') json_next(&j);
                    }
                    json_next(&j);
                    if (is_shape) t->ndim = n, have |= 2;
                    else if (n == 2) have |= 4;
                } else {
                    json_skip(&j, 0);
                }
                if (json_peek(&j) == ',') json_next(&j);
            }
            json_next(&j);
            if (have != 7) failf("is this a safetensors file?", "%s: tensor '%s' lacks dtype, shape or data_offsets", path, key);
            size_t es = st_dtype_size(t->dtype);
            uint64_t numel = 1;
            for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)t->shape[d];
            if (!es) failf("supported: F32, F16, BF16, I32", "%s: tensor '%s' has unsupported dtype %s", path, key, t->dtype);
            if (t->end < t->begin || t->end > data_len || t->end - t->begin != numel * es)
                failf("the file is truncated or corrupt", "%s: tensor '%s' offsets [%llu, %llu] do not match its shape or the file size",
                      path, key, (unsigned long long)t->begin, (unsigned long long)t->end);
        }
        if (json_peek(&j) == ',') json_next(&j);
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
    char cfg[1200];
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
    mkdir(dir, 0755);
    StOut* t = (StOut*)callocCheck((size_t)NUM_BASE_PARAMS * c->L + 1, sizeof(StOut));
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
            c->num_classes ? "GPT2ForSequenceClassification" : "GPT2LMHeadModel", c->L, c->NH, c->C, c->maxT, c->maxT, c->V);
    if (mlp_width(c) != 4 * c->C) fprintf(w.f, ",\n  \"n_inner\": %d", mlp_width(c));  // transformers: null means 4C
    if (c->num_classes) fprintf(w.f, ",\n  \"num_labels\": %d,\n  \"pad_token_id\": %d", c->num_classes, c->V - 1);
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
// Our four LoRA targets in table order: target k is bit 1 << k (LORA_QKV, LORA_PROJ, LORA_FC, LORA_FCPROJ),
// with tensors lora_*_a = PIDX(lora_qkv_a) + 2k and lora_*_b = + 2k + 1. Its module is the hf name minus
// ".lora_A.weight".
static void peft_module(int k, char* out, size_t cap) {
    const char* hf = PARAM_TABLE[PIDX(lora_qkv_a) + 2 * k].hf;
    snprintf(out, cap, "%.*s", (int)(strlen(hf) - strlen(".lora_A.weight")), hf);
}

// Writes DIR/adapter_model.safetensors and DIR/adapter_config.json. lora_dropout only goes into the config.
static void export_peft(const GPT* model, const char* dir, float lora_dropout) {
    const GPTConfig* c = &model->config;
    if (!c->lora_r) failf("train with --method lora, or apply one with --adapter", "%s: the model has no LoRA to export", dir);
    if (c->adapter_dim || c->prefix_len)
        failf("PEFT's LoRA format holds LoRA and the score head only; keep our adapter.bin for these",
              "%s: the model has %s", dir, c->adapter_dim ? "adapters" : "a prefix");
    mkdir(dir, 0755);
    StOut* t = (StOut*)callocCheck((size_t)8 * c->L + 1, sizeof(StOut));
    int n = 0;
    for (int l = c->lora_first; l <= c->lora_last; l++)
        for (int k = 0; k < 8; k++) {  // A then B of each target
            int p = PIDX(lora_qkv_a) + k;
            if (!(c->lora_targets & (1 << k / 2))) continue;
            slice_shape(c, p, &t[n].rows, &t[n].cols);
            t[n].data = model->params.t[p] + (size_t)l * slice_numel(c, p);
            snprintf(t[n].name, sizeof t[n].name, "base_model.model.transformer.h.%d.%s", l, PARAM_TABLE[p].hf);
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
    // target_modules: (transformer\.)?h\.(1|2|3)\.(attn\.c_attn|mlp\.c_proj), backslashes doubled for JSON
    char re[2048], mod[32];
    size_t len = (size_t)snprintf(re, sizeof re, "(transformer\\\\.)?h\\\\.(");
    for (int l = c->lora_first; l <= c->lora_last && len < sizeof re - 64; l++)
        len += (size_t)snprintf(re + len, sizeof re - len, "%s%d", l > c->lora_first ? "|" : "", l);
    len += (size_t)snprintf(re + len, sizeof re - len, ")\\\\.(");
    for (int k = 0, first = 1; k < 4; k++) {
        if (!(c->lora_targets & (1 << k))) continue;
        peft_module(k, mod, sizeof mod);
        char* dot = strchr(mod, '.');  // "attn.c_attn" -> "attn\\.c_attn"
        len += (size_t)snprintf(re + len, sizeof re - len, "%s%.*s\\\\.%s", first ? "" : "|", (int)(dot - mod), mod, dot + 1);
        first = 0;
    }
    snprintf(re + len, sizeof re - len, ")");
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    SafeWriter w;
    safe_open(&w, path);
    fprintf(w.f, "{\n  \"peft_type\": \"LORA\",\n  \"task_type\": \"%s\",\n  \"base_model_name_or_path\": null,\n"
            "  \"r\": %d,\n  \"lora_alpha\": %.9g,\n  \"lora_dropout\": %.9g,\n  \"target_modules\": \"%s\",\n"
            "  \"layers_to_transform\": null,\n  \"layers_pattern\": null,\n  \"fan_in_fan_out\": true,\n  \"bias\": \"none\",\n"
            "  \"modules_to_save\": %s,\n  \"use_rslora\": false,\n  \"use_dora\": false,\n  \"init_lora_weights\": true,\n"
            "  \"rank_pattern\": {},\n  \"alpha_pattern\": {},\n  \"inference_mode\": true\n}\n",
            c->num_classes ? "SEQ_CLS" : "CAUSAL_LM", c->lora_r, c->lora_alpha, lora_dropout, re,
            c->num_classes ? "[\"score\"]" : "null");
    safe_close(&w);
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

// A PEFT adapter is a folder holding adapter_model.safetensors (and adapter_config.json), or that .safetensors
// file itself with adapter_config.json beside it. Fills both paths and returns 1; returns 0 for anything else.
static int peft_paths(const char* path, char st_path[1100], char cfg_path[1100]) {
    snprintf(st_path, 1100, "%s/adapter_model.safetensors", path);
    FILE* f = fopen(st_path, "rb");
    if (f) {
        fclose(f);
        snprintf(cfg_path, 1100, "%s/adapter_config.json", path);
        return 1;
    }
    unsigned char first[9] = {0};
    f = fopen(path, "rb");
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
    FILE* f = fopen(cfgp, "rb");
    if (!f) failf("a PEFT adapter comes with adapter_config.json next to adapter_model.safetensors", "%s: cannot open %s", path, cfgp);
    size_t n = (size_t)file_size(f);
    char* text = (char*)mallocCheck(n + 1);
    fread_check(text, n, f, cfgp, "adapter_config.json");
    fclose(f);
    double r = 0, alpha = 0;
    if (!json_is(text, n, "peft_type", cfgp, "\"LORA\""))
        failf("only LoRA adapters (peft_type LORA) can be applied", "%s: peft_type is not \"LORA\"", cfgp);
    if (!json_get_number(text, n, "r", cfgp, &r) || !json_get_number(text, n, "lora_alpha", cfgp, &alpha) || r < 1 || alpha <= 0)
        failf("adapter_config.json must give r >= 1 and lora_alpha > 0", "%s: r or lora_alpha missing or out of range", cfgp);
    if (json_is(text, n, "use_dora", cfgp, "true")) failf("DoRA adds a magnitude vector this model lacks", "%s: use_dora is true", cfgp);
    if (json_value(text, n, "bias", cfgp) && !json_is(text, n, "bias", cfgp, "\"none\""))
        failf("this LoRA trains no biases: export with bias=\"none\"", "%s: bias is not \"none\"", cfgp);
    if (!json_empty(text, n, "rank_pattern", cfgp) || !json_empty(text, n, "alpha_pattern", cfgp))
        failf("this model uses one rank and alpha for every module", "%s: rank_pattern or alpha_pattern is set", cfgp);
    if (json_is(text, n, "use_rslora", cfgp, "true")) alpha *= sqrt(r);  // rsLoRA scales by alpha/sqrt(r): the same as alpha*sqrt(r)/r
    free(text);
    // at[k * L + l]: the tensor of LoRA table entry k (lora_qkv_a ... lora_fcproj_b) in layer l, if present
    SafeTensors st;
    st_open(&st, stp);
    const StTensor** at = (const StTensor**)callocCheck((size_t)8 * L, sizeof(StTensor*));
    const StTensor* score = NULL;
    for (int i = 0; i < st.n; i++) {
        const char* s = st.t[i].name;
        if (!strncmp(s, "base_model.model.", 17)) s += 17;
        s = hf_base_name(s);  // "transformer." is optional
        if (!strcmp(s, "score.weight")) { score = &st.t[i]; continue; }
        int l = -1, pos = 0, found = 0;
        if (sscanf(s, "h.%d.%n", &l, &pos) == 1 && pos > 0 && l >= 0 && l < L)
            for (int k = 0; k < 8 && !found; k++)
                if (!strcmp(s + pos, PARAM_TABLE[PIDX(lora_qkv_a) + k].hf)) at[k * L + l] = &st.t[i], found = 1;
        if (!found)
            failf("this model takes LoRA on attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj of its layers, and score",
                  "%s: unexpected tensor '%s'", stp, st.t[i].name);
    }
    int targets = 0, first = L, last = -1;
    for (int k = 0; k < 8; k++)
        for (int l = 0; l < L; l++)
            if (at[k * L + l]) targets |= 1 << k / 2, first = l < first ? l : first, last = l > last ? l : last;
    if (!targets) failf("is this a LoRA adapter?", "%s: no lora_A / lora_B tensors", stp);
    for (int k = 0; k < 8; k++)  // each target: A and B on every layer first..last, and nowhere else
        for (int l = 0; ((targets >> k / 2) & 1) && l < L; l++)
            if ((at[k * L + l] != NULL) != (l >= first && l <= last))
                failf("this model puts LoRA on the same modules of a contiguous range of layers",
                      "%s: h.%d.%s is %s, but the adapter's LoRA spans layers %d-%d", stp, l,
                      PARAM_TABLE[PIDX(lora_qkv_a) + k].hf, at[k * L + l] ? "present" : "missing", first, last);
    const StTensor* a0 = NULL;
    for (int k = 0; k < 8 && !a0; k += 2) a0 = at[k * L + first];
    int rank = a0->ndim == 2 ? (int)a0->shape[0] : 0;
    if (rank != (int)r) failf("rank_pattern is not supported", "%s: r = %d in the config, but %s has rank %d", stp, (int)r, a0->name, rank);
    GPTConfig with = c;
    with.lora_r = rank, with.lora_alpha = (float)alpha, with.lora_targets = targets;
    with.lora_first = first, with.lora_last = last;
    if (score) {
        if (score->ndim != 2 || score->shape[1] != c.C || score->shape[0] < 2)
            failf("score.weight must be (K, C) with K >= 2", "%s: score.weight has a bad shape", stp);
        with.num_classes = (int)score->shape[0];
    }
    float* head = NULL;  // a CAUSAL_LM adapter on a classification base keeps the base's head
    if (!score && c.num_classes) {
        head = (float*)mallocCheck(param_numel(&c, PIDX(cls_w)) * sizeof(float));
        memcpy(head, model->params.cls_w, param_numel(&c, PIDX(cls_w)) * sizeof(float));
    }
    uint64_t rng = 1;
    gpt_set_peft(model, with, &rng);
    if (head) memcpy(model->params.cls_w, head, param_numel(&c, PIDX(cls_w)) * sizeof(float)), free(head);
    for (int k = 0; k < 8; k++)
        for (int l = first; l <= last; l++) {
            const StTensor* t = at[k * L + l];
            int p = PIDX(lora_qkv_a) + k;
            size_t rows, cols;
            slice_shape(&with, p, &rows, &cols);
            if (!t) continue;
            if (t->ndim != 2 || (size_t)t->shape[0] != rows || (size_t)t->shape[1] != cols)
                failf("every module of the adapter must have rank r", "%s: %s has shape [%lld, %lld], expected [%zu, %zu]",
                      stp, t->name, (long long)t->shape[0], (long long)(t->ndim > 1 ? t->shape[1] : 0), rows, cols);
            st_read_f32(&st, t, model->params.t[p] + (size_t)l * rows * cols);
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
// Names and metadata are llama.cpp's "gpt2" architecture, as its convert_hf_to_gguf.py writes GPT-2: token_embd,
// position_embd, blk.N.{attn_norm, attn_qkv, attn_output, ffn_norm, ffn_up, ffn_down}, output_norm (weights
// and biases). No output.weight: GPT-2's LM head is token_embd (tied), and llama.cpp uses token_embd when
// output.weight is absent (today's converter writes none for GPT-2; the converters of early 2024 wrote a copy).
// Q8_0 (type 8): blocks of 32 consecutive weights of a row, each an fp16 scale d and 32 int8 q, w = q * d. That
// is our int8 format (model.h): an int8 model is written as it is and read back bit for bit.
#define GGUF_VERSION 3
#define GGUF_ALIGN 32
enum { GGML_F32 = 0, GGML_F16 = 1, GGML_Q8_0 = 8 };                                 // tensor types
enum { GGUF_U32 = 4, GGUF_I32 = 5, GGUF_F32 = 6, GGUF_STRING = 8, GGUF_ARRAY = 9 };  // metadata value types
enum { LLAMA_FTYPE_ALL_F32 = 0, LLAMA_FTYPE_MOSTLY_Q8_0 = 7 };                      // general.file_type

// llama.cpp's names of our 16 GPT-2 tensors, in PARAM_TABLE order (per-layer ones get "blk.N.")

typedef struct {
    char name[64];
    int nd;
    uint64_t ne[4];   // ggml order: ne[0] is the contiguous axis; unused ones are 1
    uint32_t type;    // GGML_*
    uint64_t offset;  // in the data section
    int p, l;         // writer: PARAM_TABLE index and layer
} GgufTensor;

static uint64_t gguf_nbytes(const GgufTensor* t) {
    uint64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    return t->type == GGML_Q8_0 ? n / Q8_GROUP * (2 + Q8_GROUP) : t->type == GGML_F16 ? 2 * n : 4 * n;
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
static void gguf_kv_str(GgufBuf* b, int* nkv, const char* key, const char* v) {
    gguf_key(b, nkv, key, GGUF_STRING);
    gguf_put_str(b, v, strlen(v));
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

// The vocabulary in llama.cpp's "gpt2" (byte-level BPE) form, as convert_hf_to_gguf.py writes it: each token's
// string as in encoder.json, its type (1 normal, 3 control = special, 4 user-defined = the [PADn] rows a model has
// beyond its tokenizer), the merges as "left right" strings in rank order (vocab.bpe's lines), and <|endoftext|>
// as BOS and EOS. Works for the gpt2_bpe folder and for dataprep's byte-level BPE files alike.
static void gguf_put_tokenizer(GgufBuf* b, int* nkv, const char* path, int V) {
    Tokenizer tok;
    char err[1024];
    if (tokenizer_load(&tok, path, err, sizeof err))
        failf("--tokenizer takes the gpt2_bpe folder (encoder.json + vocab.bpe) or a dataprep tokenizer", "%s", err);
    if (tok.vocab_size > V)
        failf("export with the tokenizer the model was trained with", "%s: the tokenizer has %d tokens, the model only %d",
              path, tok.vocab_size, V);
    int dec[0x144], enc[256];
    gpt2_byte_decoder(dec);
    for (int cp = 0; cp < 0x144; cp++)
        if (dec[cp] >= 0) enc[dec[cp]] = cp;
    gguf_kv_str(b, nkv, "tokenizer.ggml.model", "gpt2");
    gguf_kv_str(b, nkv, "tokenizer.ggml.pre", "gpt-2");  // the pre-tokenizer regex: GPT-2's, as tokenizer.c's
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
        } else if (tok.is_special[id]) gguf_put(&s, p, n);  // "<|endoftext|>" as it is
        else gguf_put_gpt2_chars(&s, p, n, enc);
        gguf_put_str(b, s.p, s.len);
    }
    gguf_key(b, nkv, "tokenizer.ggml.token_type", GGUF_ARRAY);
    gguf_put_u32(b, GGUF_I32);
    gguf_put_u64(b, (uint64_t)V);
    for (int id = 0; id < V; id++) {
        int32_t type = id >= tok.vocab_size ? 4 : tok.is_special[id] ? 3 : 1;
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
    if (tok.eot_id >= 0) {
        gguf_kv_u32(b, nkv, "tokenizer.ggml.bos_token_id", (uint32_t)tok.eot_id);
        gguf_kv_u32(b, nkv, "tokenizer.ggml.eos_token_id", (uint32_t)tok.eot_id);
    }
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

// One tensor's data in its GGUF type: F32 (int8 weights widened, which is exact), or Q8_0 (int8 weights as they
// are; fp32 ones quantized now by q8_quantize, which rounds each scale to fp16 first, so the fp16 in the block is
// exact either way).
static void gguf_write_tensor(FILE* f, const char* path, const GPT* model, const GgufTensor* g) {
    size_t n = (size_t)(g->ne[0] * g->ne[1]), off = (size_t)g->l * slice_numel(&model->config, g->p);
    const Q8* w8 = model->q8[g->p].q ? &model->q8[g->p] : NULL;
    const float* src = model->params.t[g->p] ? model->params.t[g->p] + off : NULL;
    if (g->type == GGML_F32) {
        float* tmp = src ? NULL : (float*)mallocCheck(n * sizeof(float));
        for (size_t e = 0; tmp && e < n; e++) tmp[e] = q8_at(w8, off + e);
        fwrite_check(src ? src : tmp, n * 4, f, path);
        free(tmp);
        return;
    }
    int8_t* qt = w8 ? NULL : (int8_t*)mallocCheck(n);
    float* dt = w8 ? NULL : (float*)mallocCheck(n / Q8_GROUP * sizeof(float));
    if (!w8) q8_quantize(qt, dt, src, n);
    const int8_t* q = w8 ? w8->q + off : qt;
    const float* d = w8 ? w8->d + off / Q8_GROUP : dt;
    unsigned char* blocks = (unsigned char*)mallocCheck(n / Q8_GROUP * (2 + Q8_GROUP));
    for (size_t b = 0; b < n / Q8_GROUP; b++) {  // block b: fp16 d, then 32 int8
        uint16_t h = fp16_from_f32(d[b]);
        memcpy(blocks + b * (2 + Q8_GROUP), &h, 2);
        memcpy(blocks + b * (2 + Q8_GROUP) + 2, q + b * Q8_GROUP, Q8_GROUP);
    }
    fwrite_check(blocks, n / Q8_GROUP * (2 + Q8_GROUP), f, path);
    free(blocks), free(qt), free(dt);
}

// Writes the model as a GGUF file for llama.cpp. q8: the matrices that our int8 model quantizes (token_embd and
// the four projections) as Q8_0, the rest F32; else all F32. tokenizer: a tokenizer path (llama.cpp needs the
// vocabulary to run the model) or NULL.
static void export_gguf(const GPT* model, const char* path, int q8, const char* tokenizer) {
    const GPTConfig* c = &model->config;
    if (c->num_classes)
        failf("llama.cpp's gpt2 has only the LM head; --format safetensors keeps score.weight",
              "%s: the model has a %d-class head", path, c->num_classes);
    if (c->lora_r || c->adapter_dim || c->prefix_len)
        failf("merge LoRA first (--merge 1); adapters and prefixes have no place in GGUF's gpt2",
              "%s: the model has LoRA, adapters or a prefix", path);
    int L = c->L, nt = 0, nkv = 0;
    GgufTensor* t = (GgufTensor*)callocCheck((size_t)NUM_BASE_PARAMS * L, sizeof(GgufTensor));
    uint64_t off = 0;
    for (int p = 0; p < NUM_BASE_PARAMS; p++)
        for (int l = 0; l < (param_per_layer(p) ? L : 1); l++) {
            GgufTensor* g = &t[nt++];
            size_t rows, cols;
            slice_shape(c, p, &rows, &cols);
            if (param_per_layer(p)) snprintf(g->name, sizeof g->name, "blk.%d.%s", l, PARAM_TABLE[p].gguf);
            else snprintf(g->name, sizeof g->name, "%s", PARAM_TABLE[p].gguf);
            g->nd = cols ? 2 : 1;
            g->ne[0] = cols ? cols : rows, g->ne[1] = cols ? rows : 1, g->ne[2] = g->ne[3] = 1;
            // position_embd stays F32, as in our int8 model: it is added, not multiplied, and small
            g->type = q8 && param_quantizable(p) ? GGML_Q8_0 : GGML_F32;
            if (g->type == GGML_Q8_0 && g->ne[0] % Q8_GROUP)
                failf("use --dtype f32, or a model whose C and MLP width are multiples of 32",
                      "%s: %s has rows of %llu weights, not a multiple of the Q8_0 block size 32", path, g->name,
                      (unsigned long long)g->ne[0]);
            g->p = p, g->l = l, g->offset = off;
            off += (gguf_nbytes(g) + GGUF_ALIGN - 1) / GGUF_ALIGN * GGUF_ALIGN;
        }
    GgufBuf kv = {NULL, 0, 0}, info = {NULL, 0, 0};
    char name[256];  // general.name: the file's name without its extension
    const char* base = strrchr(path, '/');
    snprintf(name, sizeof name, "%s", base ? base + 1 : path);
    if (strrchr(name, '.') && strrchr(name, '.') != name) *strrchr(name, '.') = 0;
    gguf_kv_str(&kv, &nkv, "general.architecture", "gpt2");
    gguf_kv_str(&kv, &nkv, "general.name", name);
    gguf_kv_u32(&kv, &nkv, "general.file_type", q8 ? LLAMA_FTYPE_MOSTLY_Q8_0 : LLAMA_FTYPE_ALL_F32);
    if (q8) gguf_kv_u32(&kv, &nkv, "general.quantization_version", 2);  // ggml's GGML_QNT_VERSION
    gguf_kv_u32(&kv, &nkv, "gpt2.context_length", (uint32_t)c->maxT);
    gguf_kv_u32(&kv, &nkv, "gpt2.embedding_length", (uint32_t)c->C);
    gguf_kv_u32(&kv, &nkv, "gpt2.feed_forward_length", (uint32_t)mlp_width(c));
    gguf_kv_u32(&kv, &nkv, "gpt2.block_count", (uint32_t)L);
    gguf_kv_u32(&kv, &nkv, "gpt2.attention.head_count", (uint32_t)c->NH);
    float eps = 1e-5f;  // layernorm_forward's
    gguf_key(&kv, &nkv, "gpt2.attention.layer_norm_epsilon", GGUF_F32);
    gguf_put(&kv, &eps, 4);
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

// Reading. Short reads die through fread_check ("unexpected end of file reading ...").
static uint32_t gguf_u32(FILE* f, const char* path, const char* what) {
    uint32_t v;
    fread_check(&v, 4, f, path, what);
    return v;
}
static uint64_t gguf_u64(FILE* f, const char* path, const char* what) {
    uint64_t v;
    fread_check(&v, 8, f, path, what);
    return v;
}
// A string into out (truncated to cap - 1 bytes, the rest skipped).
static void gguf_str(FILE* f, const char* path, char* out, size_t cap, const char* what) {
    uint64_t n = gguf_u64(f, path, what);
    if (n > (1u << 30)) failf("the file is corrupt", "%s: %s of %llu bytes", path, what, (unsigned long long)n);
    size_t keep = n < cap - 1 ? (size_t)n : cap - 1;
    fread_check(out, keep, f, path, what);
    out[keep] = 0;
    if (n > keep) fseek(f, (long)(n - keep), SEEK_CUR);  // past the end: the next read reports it
}
// One metadata value of the given type: a number into *num, a string into str (cap bytes); arrays are skipped.
static void gguf_value(FILE* f, const char* path, uint32_t type, double* num, char* str, size_t cap, int depth) {
    static const int size[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};  // by type; strings and arrays vary
    if (type > 12 || depth > 2) failf("the file is corrupt or from a newer GGUF", "%s: unknown metadata value type %u", path, type);
    if (type == GGUF_STRING) {
        gguf_str(f, path, str, cap, "a metadata string");
        return;
    }
    if (type == GGUF_ARRAY) {
        uint32_t et = gguf_u32(f, path, "a metadata array's type");
        uint64_t n = gguf_u64(f, path, "a metadata array's length");
        if (et > 12 || n > (1ull << 32)) failf("the file is corrupt", "%s: metadata array of type %u, length %llu", path, et, (unsigned long long)n);
        if (size[et]) fseek(f, (long)(n * (uint64_t)size[et]), SEEK_CUR);
        char tmp[8];
        for (uint64_t i = 0; !size[et] && i < n; i++) gguf_value(f, path, et, num, tmp, sizeof tmp, depth + 1);
        return;
    }
    unsigned char b[8];
    fread_check(b, (size_t)size[type], f, path, "a metadata value");
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

// A tensor's raw bytes (malloc'd), after checking they lie inside the file.
static unsigned char* gguf_read_raw(FILE* f, const char* path, const GgufTensor* g, uint64_t data_start, long long fsize) {
    uint64_t nb = gguf_nbytes(g);
    if (g->offset > (uint64_t)fsize || nb > (uint64_t)fsize || data_start + g->offset + nb > (uint64_t)fsize)  // no wrap-around
        failf("the file is truncated or corrupt", "%s: tensor %s needs bytes up to %llu but the file has %lld: truncated?",
              path, g->name, (unsigned long long)(data_start + g->offset + nb), fsize);
    unsigned char* raw = (unsigned char*)mallocCheck((size_t)nb);
    fseek(f, (long)(data_start + g->offset), SEEK_SET);
    fread_check(raw, (size_t)nb, f, path, g->name);
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

// Loads a GGUF file of llama.cpp's gpt2 architecture: F32 and F16 tensors as fp32, Q8_0 ones as they are (then
// the model is an int8 model, gpt_alloc_q8, and any of its big matrices stored as floats are quantized here).
static void load_gguf(GPT* model, const char* path) {
    FILE* f = fopen_check(path, "rb");
    long long fsize = file_size(f);
    char magic[4];
    fread_check(magic, 4, f, path, "the GGUF magic");
    uint32_t version = gguf_u32(f, path, "the GGUF version");
    if (memcmp(magic, "GGUF", 4)) failf("is this a GGUF file?", "%s: no GGUF magic", path);
    if (version != 2 && version != 3)  // v2 and v3 share the layout (v3 allows big-endian files)
        failf("convert the model again with a current llama.cpp", "%s: GGUF version %u, expected 3", path, version);
    uint64_t nt = gguf_u64(f, path, "the tensor count"), nkv = gguf_u64(f, path, "the metadata count");
    if (nt > 100000 || nkv > 100000)
        failf("the file is corrupt", "%s: %llu tensors, %llu metadata entries", path, (unsigned long long)nt, (unsigned long long)nkv);
    static const char* hp_keys[6] = {"gpt2.context_length", "gpt2.embedding_length", "gpt2.feed_forward_length",
                                     "gpt2.block_count", "gpt2.attention.head_count", "gpt2.attention.layer_norm_epsilon"};
    double hp[6] = {NAN, NAN, NAN, NAN, NAN, NAN}, align = GGUF_ALIGN;
    char arch[64] = "", key[256], str[64];
    for (uint64_t i = 0; i < nkv; i++) {
        gguf_str(f, path, key, sizeof key, "a metadata key");
        uint32_t type = gguf_u32(f, path, "a metadata value type");
        double num = NAN;
        str[0] = 0;
        gguf_value(f, path, type, &num, str, sizeof str, 0);
        if (!strcmp(key, "general.architecture")) snprintf(arch, sizeof arch, "%s", str);
        if (!strcmp(key, "general.alignment")) align = num;
        for (int k = 0; k < 6; k++)
            if (!strcmp(key, hp_keys[k])) hp[k] = num;
    }
    if (strcmp(arch, "gpt2"))
        failf("this loader reads llama.cpp's gpt2 architecture (GPT-2 as convert_hf_to_gguf.py or ./train export writes it)",
              "%s: general.architecture is '%s', not 'gpt2'", path, arch);
    for (int k = 0; k < 6; k++)
        if (!(hp[k] > 0 && hp[k] < (1 << 24)))
            failf("the file lacks GPT-2's hyperparameters", "%s: %s is missing or out of range", path, hp_keys[k]);
    if (fabs(hp[5] - 1e-5) > 1e-9) failf("this model's LayerNorm has eps 1e-5, as GPT-2", "%s: layer_norm_epsilon is %g", path, hp[5]);
    if (!(align >= 1 && align <= 65536) || ((uint64_t)align & ((uint64_t)align - 1)))
        failf("the file is corrupt", "%s: general.alignment %g is not a power of two", path, align);
    GgufTensor* t = (GgufTensor*)callocCheck(nt ? (size_t)nt : 1, sizeof(GgufTensor));
    for (uint64_t i = 0; i < nt; i++) {
        gguf_str(f, path, t[i].name, sizeof t[i].name, "a tensor name");
        uint32_t nd = gguf_u32(f, path, "a tensor's dimension count");
        if (nd < 1 || nd > 4) failf("the file is corrupt", "%s: tensor %s has %u dimensions", path, t[i].name, nd);
        t[i].nd = (int)nd;
        for (int d = 0; d < 4; d++) t[i].ne[d] = d < (int)nd ? gguf_u64(f, path, "a tensor's shape") : 1;
        t[i].type = gguf_u32(f, path, "a tensor's type");
        t[i].offset = gguf_u64(f, path, "a tensor's offset");
    }
    uint64_t data_start = ((uint64_t)ftell(f) + (uint64_t)align - 1) / (uint64_t)align * (uint64_t)align;
    const GgufTensor* te = gguf_find(t, nt, "token_embd.weight");
    if (!te || te->nd != 2 || te->ne[1] < 1 || te->ne[1] > (1 << 24))
        failf("the file is incomplete or not GPT-2", "%s: no token_embd.weight matrix", path);
    GPTConfig c;
    memset(&c, 0, sizeof c);
    c.maxT = (int)hp[0], c.C = (int)hp[1], c.F = (int)hp[2], c.L = (int)hp[3], c.NH = (int)hp[4];
    c.V = (int)te->ne[1], c.Vp = pad_vocab(c.V);
    if (c.F == 4 * c.C) c.F = 0;  // GPT-2's default width
    if (c.C % c.NH || te->ne[0] != (uint64_t)c.C)
        failf("the file is corrupt", "%s: embedding_length %d, head_count %d, token_embd rows of %llu do not fit", path, c.C,
              c.NH, (unsigned long long)te->ne[0]);
    if ((double)num_base_parameters(&c) > 2.0 * (double)fsize)  // before allocating: even Q8_0 takes ~1 byte a weight
        failf("the file is truncated or its metadata is wrong", "%s: %lld bytes cannot hold the %zu weights the metadata describes",
              path, fsize, num_base_parameters(&c));
    gpt_build(model, c);
    int any_q8 = 0;
    for (uint64_t i = 0; i < nt; i++) any_q8 |= t[i].type == GGML_Q8_0;
    if (any_q8) {  // an int8 model, as gpt_quantize makes it; wte's padded rows stay zero
        gpt_alloc_q8(model);
        memset((int8_t*)model->q8[PIDX(wte)].q, 0, param_numel(&c, PIDX(wte)));
        memset((float*)model->q8[PIDX(wte)].d, 0, param_numel(&c, PIDX(wte)) / Q8_GROUP * sizeof(float));
    }
    unsigned char* used = (unsigned char*)callocCheck(nt ? (size_t)nt : 1, 1);
    for (int p = 0; p < NUM_BASE_PARAMS; p++)
        for (int l = 0; l < (param_per_layer(p) ? c.L : 1); l++) {
            char name[80];
            if (param_per_layer(p)) snprintf(name, sizeof name, "blk.%d.%s", l, PARAM_TABLE[p].gguf);
            else snprintf(name, sizeof name, "%s", PARAM_TABLE[p].gguf);
            const GgufTensor* g = gguf_find(t, nt, name);
            if (!g) failf("the file is incomplete or not a GPT-2 model", "%s: missing tensor '%s'", path, name);
            size_t rows, cols;
            slice_shape(&c, p, &rows, &cols);
            uint64_t ne0 = cols ? cols : rows, ne1 = cols ? rows : 1;
            if (g->ne[0] != ne0 || g->ne[1] != ne1 || g->ne[2] != 1 || g->ne[3] != 1)
                failf("the tensor shapes do not match the metadata", "%s: %s has ne = [%llu, %llu], expected [%llu, %llu]", path,
                      name, (unsigned long long)g->ne[0], (unsigned long long)g->ne[1], (unsigned long long)ne0, (unsigned long long)ne1);
            if (g->type != GGML_F32 && g->type != GGML_F16 && g->type != GGML_Q8_0)
                failf("requantize to q8_0 (llama-quantize IN OUT q8_0) or convert with --outtype f32",
                      "%s: %s has ggml type %u; this loader reads F32 (0), F16 (1) and Q8_0 (8)", path, name, g->type);
            if ((g->type == GGML_Q8_0 && ne0 % Q8_GROUP) || g->offset % (uint64_t)align)
                failf("the file is corrupt", "%s: %s has a bad Q8_0 row length or offset", path, name);
            unsigned char* raw = gguf_read_raw(f, path, g, data_start, fsize);
            size_t n = rows * (cols ? cols : 1), off = (size_t)l * slice_numel(&c, p);
            if (!model->q8[p].q) {
                gguf_to_f32(g, raw, model->params.t[p] + off, n);
            } else if (g->type == GGML_Q8_0) {  // our int8 layout: q and d in separate arrays
                int8_t* q = (int8_t*)model->q8[p].q + off;
                float* d = (float*)model->q8[p].d + off / Q8_GROUP;
                for (size_t b = 0; b < n / Q8_GROUP; b++) {
                    uint16_t h;
                    memcpy(&h, raw + b * (2 + Q8_GROUP), 2);
                    d[b] = fp16_to_f32(h);
                    memcpy(q + b * Q8_GROUP, raw + b * (2 + Q8_GROUP) + 2, Q8_GROUP);
                }
            } else {  // a float matrix in an int8 model: quantize it (the whole slice, wte's zero padding included)
                float* tmp = (float*)callocCheck(slice_numel(&c, p), sizeof(float));
                gguf_to_f32(g, raw, tmp, n);
                q8_quantize((int8_t*)model->q8[p].q + off, (float*)model->q8[p].d + off / Q8_GROUP, tmp, slice_numel(&c, p));
                free(tmp);
            }
            free(raw);
            used[g - t] = 1;
        }
    const GgufTensor* out = gguf_find(t, nt, "output.weight");  // a copy of token_embd, if there at all
    if (out) {
        int same = out->type == te->type && out->nd == 2 && out->ne[0] == te->ne[0] && out->ne[1] == te->ne[1];
        if (same) {
            unsigned char* a = gguf_read_raw(f, path, te, data_start, fsize);
            unsigned char* b = gguf_read_raw(f, path, out, data_start, fsize);
            same = !memcmp(a, b, (size_t)gguf_nbytes(te));
            free(a), free(b);
        }
        if (!same) failf("this GPT-2 ties its LM head to the token embedding", "%s: output.weight differs from token_embd.weight", path);
        used[out - t] = 1;
    }
    for (uint64_t i = 0; i < nt; i++)
        if (!used[i]) failf("this loader reads GPT-2's tensors only", "%s: unexpected tensor '%s'", path, t[i].name);
    if (any_q8) gpt_drop_fp32_copies(model);  // the int8 tensors' fp32 places were never needed
    free(used), free(t);
    fclose(f);
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
    if (strlen(path_in) > 1000) failf("use a shorter path", "model path too long (%zu characters)", strlen(path_in));
    char path[1100];
    snprintf(path, sizeof path, "%s", path_in);
    char inside[1100];  // a Hugging Face model folder: read the model.safetensors inside it
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
