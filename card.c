// card.c: versioning what is deployed. Every run folder gets DIR/README.md, a model card in Hugging Face's
// form (YAML front matter, then Markdown): the base model, the method and its hyperparameters, every data file
// with its size and SHA-256, the final metrics, the exact command, the date and the machine. `./train export`
// carries the card next to the exported files (safetensors and peft folders), with an Export section added.
// SHA-256 (FIPS 180-4) is implemented here, so a card's hashes can be checked with `sha256sum FILE`.

#pragma once
#include <sys/utsname.h>  // defines: uname, for the machine line
#include "flags.h"        // defines: Args
#include "report.c"       // defines: RunSummary, cls_metrics

// ---------------------------------------------------------------------------- SHA-256 (FIPS 180-4)
// The message is padded with a 1 bit, zeros, and its length in bits (64-bit big-endian) to a multiple of
// 512 bits; each 64-byte block is expanded to 64 words and mixed into the 8-word state by 64 rounds.
typedef struct {
    uint32_t h[8];            // the state
    uint64_t len;             // bytes hashed so far
    unsigned char buf[64];    // a partial block
    size_t nbuf;
} Sha256;

static const uint32_t SHA256_K[64] = {  // the first 32 bits of the fractional parts of the cube roots of the first 64 primes
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t sha256_rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_init(Sha256* s) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);  // the square roots of the first 8 primes, likewise
    s->len = 0;
    s->nbuf = 0;
}

static void sha256_block(Sha256* s, const unsigned char* p) {
    uint32_t w[64];
    for (int t = 0; t < 16; t++) w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 | (uint32_t)p[4 * t + 2] << 8 | p[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = sha256_rotr(w[t - 15], 7) ^ sha256_rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);   // sigma0
        uint32_t s1 = sha256_rotr(w[t - 2], 17) ^ sha256_rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);    // sigma1
        w[t] = s1 + w[t - 7] + s0 + w[t - 16];
    }
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (int t = 0; t < 64; t++) {
        uint32_t S1 = sha256_rotr(e, 6) ^ sha256_rotr(e, 11) ^ sha256_rotr(e, 25);  // Sigma1
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + S1 + ch + SHA256_K[t] + w[t];
        uint32_t S0 = sha256_rotr(a, 2) ^ sha256_rotr(a, 13) ^ sha256_rotr(a, 22);  // Sigma0
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + maj;
        h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d, s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha256_update(Sha256* s, const void* data, size_t n) {
    const unsigned char* p = (const unsigned char*)data;
    s->len += n;
    while (n > 0) {
        if (s->nbuf == 0 && n >= 64) {  // whole blocks straight from the input
            sha256_block(s, p);
            p += 64, n -= 64;
            continue;
        }
        size_t k = 64 - s->nbuf < n ? 64 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, k);
        s->nbuf += k, p += k, n -= k;
        if (s->nbuf == 64) sha256_block(s, s->buf), s->nbuf = 0;
    }
}

// The digest as 64 lowercase hex digits (and a terminating 0).
static void sha256_final(Sha256* s, char hex[65]) {
    uint64_t bits = s->len * 8;
    unsigned char pad[72] = {0x80};  // 0x80, zeros to 56 mod 64, then the length
    size_t np = (s->nbuf < 56 ? 56 : 120) - s->nbuf;
    for (int k = 0; k < 8; k++) pad[np + k] = (unsigned char)(bits >> (56 - 8 * k));
    sha256_update(s, pad, np + 8);
    for (int i = 0; i < 8; i++) snprintf(hex + 8 * i, 9, "%08x", s->h[i]);
}

static void sha256_hex(const void* data, size_t n, char hex[65]) {
    Sha256 s;
    sha256_init(&s);
    sha256_update(&s, data, n);
    sha256_final(&s, hex);
}

// The SHA-256 of a file and its size; returns -1 (hex "unreadable") when it cannot be read.
static int sha256_file(const char* path, char hex[65], long long* size) {
    snprintf(hex, 65, "unreadable");
    *size = -1;
    FILE* f = fopen(path, "rb");
    if (!f) return -1;
    Sha256 s;
    sha256_init(&s);
    unsigned char* buf = (unsigned char*)mallocCheck(1 << 20);
    size_t n;
    long long total = 0;
    while ((n = fread(buf, 1, 1 << 20, f)) > 0) sha256_update(&s, buf, n), total += (long long)n;
    int bad = ferror(f);
    fclose(f);
    free(buf);
    if (bad) return -1;
    sha256_final(&s, hex);
    *size = total;
    return 0;
}

// ---------------------------------------------------------------------------- the card's pieces
// A YAML string in double quotes: \ and " escaped, control characters dropped (a path never has them).
static void yaml_str(FILE* f, const char* s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
    fputc('"', f);
}

// The date (UTC, ISO 8601) and the machine: OS, CPU model, logical CPUs, threads.
static void card_when_where(FILE* f) {
    char date[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    struct utsname u;
    char os[200] = "unknown";
    if (uname(&u) == 0) snprintf(os, sizeof os, "%s %s %s", u.sysname, u.release, u.machine);
    char cpu[160] = "unknown CPU", line[512];
    FILE* c = fopen("/proc/cpuinfo", "r");
    while (c && fgets(line, sizeof line, c)) {
        char* v = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && v) {
            snprintf(cpu, sizeof cpu, "%s", v + 2);
            cpu[strcspn(cpu, "\n")] = 0;
            break;
        }
    }
    if (c) fclose(c);
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    fprintf(f, "- date: %s\n- machine: %s, %ld logical CPUs, %d threads; %s\n", date, cpu, sysconf(_SC_NPROCESSORS_ONLN), threads, os);
}

// One row of the files table: role, path, size, SHA-256 (skipped when path is NULL).
static void card_file_row(FILE* f, const char* role, const char* path) {
    if (!path) return;
    char hex[65];
    long long size;
    sha256_file(path, hex, &size);
    fprintf(f, "| %s | `%s` | %lld | `%s` |\n", role, path, size, hex);
}

static void card_command(FILE* f, int argc, char** argv) {
    fprintf(f, "```\n");
    for (int i = 0; i < argc; i++) {
        const char* s = argv[i];
        int plain = s[0] != 0;  // quoted for the shell when it has anything but these
        for (const char* p = s; *p; p++) plain &= strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+@%", *p) != NULL;
        if (plain) fprintf(f, "%s", s);
        else {
            fputc('\'', f);
            for (const char* p = s; *p; p++) *p == '\'' ? fprintf(f, "'\\''") : fputc(*p, f);
            fputc('\'', f);
        }
        fputc(i + 1 < argc ? ' ' : '\n', f);
    }
    fprintf(f, "```\n");
}

// ---------------------------------------------------------------------------- DIR/README.md of a run
// Written at the end of every run with --out (after model.bin and report.md), atomically (SafeWriter).
// kind: the task (lm, cls, sft).
static void write_model_card(const GPT* model, size_t ntrain, const RunSummary* r, const Args* a, const char* kind) {
    const GPTConfig* c = &model->config;
    int K = c->num_classes;
    char path[1100], base[1100];
    snprintf(path, sizeof path, "%s/README.md", r->out);
    if (a->resume) snprintf(base, sizeof base, "%s/ckpt.bin", a->resume);
    else snprintf(base, sizeof base, "%s", a->model ? a->model : "");
    const EvalResult* te = r->test_result;
    SafeWriter w;
    safe_open(&w, path);
    FILE* f = w.f;
    // front matter: the keys the Hugging Face Hub reads (https://huggingface.co/docs/hub/model-cards)
    fprintf(f, "---\n");
    if (base[0]) fprintf(f, "base_model: "), yaml_str(f, base), fprintf(f, "\n");
    fprintf(f, "library_name: finetune.c\nlicense: unknown  # the base model's and the data's licenses apply; fill in\n");
    fprintf(f, "tags:\n- finetune.c\n- gpt2\n- %s\n- %s\n", a->method, kind);
    if (a->replay || a->ewc > 0.0f) fprintf(f, "- continual-learning\n");
    fprintf(f, "datasets:\n");
    const char* files[5] = {a->train, a->val, a->test, a->replay, NULL};
    for (int i = 0; i < 4; i++) {  // each file once (the same file may serve twice)
        int seen = !files[i];
        for (int j = 0; j < i && !seen; j++) seen = files[j] && !strcmp(files[i], files[j]);
        if (!seen) fprintf(f, "- "), yaml_str(f, files[i]), fprintf(f, "\n");
    }
    if (!a->train) fprintf(f, "- \"\"\n");
    fprintf(f, "metrics:\n- loss\n- %s\n", K ? "accuracy" : "perplexity");
    if (te) {  // model-index: the test result, as the Hub's evaluation widget reads it
        fprintf(f, "model-index:\n- name: "), yaml_str(f, r->out), fprintf(f, "\n  results:\n  - task:\n      type: %s\n",
                                                                              K ? "text-classification" : "text-generation");
        fprintf(f, "    dataset:\n      name: "), yaml_str(f, a->test), fprintf(f, "\n      type: "), yaml_str(f, a->test);
        fprintf(f, "\n      split: test\n    metrics:\n    - type: loss\n      value: %.6f\n", te->loss);
        if (K) fprintf(f, "    - type: accuracy\n      value: %.6f\n    - type: f1\n      name: macro F1\n      value: %.6f\n",
                       te->accuracy, cls_metrics(te->confusion, K).macro_f1);
        else fprintf(f, "    - type: perplexity\n      value: %.4f\n", exp(te->loss));
    }
    fprintf(f, "---\n\n# %s\n\n", r->out);
    fprintf(f, "A GPT-2-style model (L=%d, NH=%d, C=%d, V=%d, maxT=%d; %zu parameters) %s with "
               "finetune.c (`./train`).\n\n", c->L, c->NH, c->C, c->V, c->maxT, model->num_parameters,
            base[0] ? "fine-tuned" : "trained from a random initialisation");
    fprintf(f, "## Method\n\n| | |\n|---|---|\n| base model | %s%s%s |\n", base[0] ? "`" : "", base[0] ? base : "none (--init)", base[0] ? "`" : "");
    fprintf(f, "| method | %s", a->method);
    if (c->lora_r) fprintf(f, ": LoRA r=%d, alpha=%g, targets %s, layers %d-%d, dropout %g", c->lora_r, c->lora_alpha, a->lora_targets,
                           c->lora_first, c->lora_last, a->lora_dropout);
    if (c->adapter_dim) fprintf(f, ": adapters, bottleneck %d", c->adapter_dim);
    if (c->prefix_len) fprintf(f, ": prefix, %d positions", c->prefix_len);
    if (K) fprintf(f, ", %d-class head", K);
    fprintf(f, " |\n| trainable | %zu of %zu parameters (%.2f%%)%s%s |\n", ntrain, model->num_parameters, 100.0 * ntrain / model->num_parameters,
            a->freeze ? ", --freeze " : "", a->freeze ? a->freeze : "");
    fprintf(f, "| steps | %lld%s |\n| batch | %d x %d tokens, accumulation %d |\n", r->steps, r->stopped_early ? " (stopped early)" : "",
            r->B, r->T, r->accum);
    static const char* const sched[] = {"constant", "cosine", "linear"};
    fprintf(f, "| optimizer | AdamW lr %g (%s, warmup %d, to %g x lr), betas %g/%g, eps %g, weight decay %g, grad clip %g |\n",
            a->lr, sched[a->schedule], a->warmup, a->min_lr_frac, a->beta1, a->beta2, a->eps, a->weight_decay, a->grad_clip);
    fprintf(f, "| regularisation | dropout %g, label smoothing %g, layer decay %g |\n| seed | %llu |\n", a->dropout,
            a->label_smoothing, a->layer_decay, (unsigned long long)a->seed);
    if (a->replay) fprintf(f, "| rehearsal | %g of every batch's rows from `%s` |\n", a->replay_frac, a->replay);
    if (a->ewc > 0.0f) fprintf(f, "| EWC | lambda %g, Fisher `%s` |\n", a->ewc, a->fisher);
    fprintf(f, "\n## Files (SHA-256: check with `sha256sum FILE`)\n\n| role | file | bytes | sha256 |\n|---|---|---|---|\n");
    card_file_row(f, "base model", base[0] ? base : NULL);
    card_file_row(f, "adapter applied", a->adapter);
    card_file_row(f, "train", a->train);
    card_file_row(f, "validation", a->val);
    card_file_row(f, "test", a->test);
    card_file_row(f, "replay", a->replay);
    card_file_row(f, "Fisher (EWC)", a->ewc > 0.0f ? a->fisher : NULL);
    char own[1100];
    snprintf(own, sizeof own, "%s/model.bin", r->out);
    card_file_row(f, "this model (last)", own);
    if (a->val) {
        snprintf(own, sizeof own, "%s/best.bin", r->out);
        card_file_row(f, "this model (best on validation)", own);
    }
    fprintf(f, "\n## Results\n\n| | |\n|---|---|\n| last train loss | %.4f |\n", r->last_loss);
    if (r->val && isfinite(r->best_metric))
        fprintf(f, "| best validation %s | %.4f at step %lld |\n", r->metric, r->best_metric, r->best_step);
    if (te && !K) fprintf(f, "| test loss | %.4f (perplexity %.2f, %zu targets) |\n", te->loss, exp(te->loss), te->count);
    if (te && K)
        fprintf(f, "| test accuracy | %.4f (macro F1 %.4f, loss %.4f, %zu examples) |\n", te->accuracy,
                cls_metrics(te->confusion, K).macro_f1, te->loss, te->count);
    if (!te) fprintf(f, "| test | not evaluated (no --test) |\n");
    fprintf(f, "\n## How it was made\n\n");
    card_command(f, a->argc, a->argv);
    card_when_where(f);
    fprintf(f, "- %.1f s, %.1f ms/step, %.0f tokens/s, peak memory %.0f MB; details in `report.md`\n", r->seconds, r->ms_per_step,
            r->tokens_per_s, r->peak_mb);
    fprintf(f, "\n## License\n\nUnknown: the licenses of the base model and of the data above apply. Fill this in.\n");
    safe_close(&w);
}

// ---------------------------------------------------------------------------- the card of an export
// OUT/README.md next to an exported folder's files: the card of the run folder the model (or the adapter)
// came from, when it has one (a README.md that is a finetune.c card), else a minimal one; then an Export
// section with the exported files' sizes and SHA-256.
static void write_export_card(const Args* a, const char* const* files, int nfiles) {
    const char* src = a->adapter ? a->adapter : a->model;
    char model_path[1100], dir[1100], card[1200], out[1200];
    if (a->resume) snprintf(model_path, sizeof model_path, "%s/ckpt.bin", a->resume);
    else snprintf(model_path, sizeof model_path, "%s", src ? src : "");
    snprintf(dir, sizeof dir, "%s", model_path);
    char* slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    snprintf(card, sizeof card, "%s/README.md", dir);
    size_t n = 0;
    char* text = NULL;
    FILE* f = fopen(card, "rb");
    if (f) {
        long long sz = file_size(f);
        text = (char*)mallocCheck((size_t)(sz > 0 ? sz : 0) + 1);
        n = fread(text, 1, (size_t)(sz > 0 ? sz : 0), f);
        text[n] = 0;
        fclose(f);
        if (strncmp(text, "---\n", 4) || !strstr(text, "\nlibrary_name: finetune.c\n")) free(text), text = NULL, n = 0;  // not ours
    }
    snprintf(out, sizeof out, "%s/README.md", a->out);
    SafeWriter w;
    safe_open(&w, out);
    if (text) {
        fwrite_check(text, n, w.f, out);
        if (n && text[n - 1] != '\n') fputc('\n', w.f);
    } else {
        fprintf(w.f, "---\nlibrary_name: finetune.c\nlicense: unknown  # fill in\ntags:\n- finetune.c\n- gpt2\n---\n\n# %s\n\n", a->out);
        fprintf(w.f, "Exported from `%s`, which came with no model card (it is not in a run folder with a README.md).\n", model_path);
    }
    fprintf(w.f, "\n## Export\n\nformat **%s**%s, from:\n\n| role | file | bytes | sha256 |\n|---|---|---|---|\n", a->format,
            a->merge ? " (LoRA merged into the weights)" : "");
    card_file_row(w.f, "model", a->resume ? model_path : a->model);
    card_file_row(w.f, "adapter", a->adapter);
    fprintf(w.f, "\nexported files:\n\n| file | bytes | sha256 |\n|---|---|---|\n");
    for (int i = 0; i < nfiles; i++) {
        char p[1300], hex[65];
        long long size;
        snprintf(p, sizeof p, "%s/%s", a->out, files[i]);
        sha256_file(p, hex, &size);
        fprintf(w.f, "| `%s` | %lld | `%s` |\n", files[i], size, hex);
    }
    fprintf(w.f, "\n");
    card_command(w.f, a->argc, a->argv);
    card_when_where(w.f);
    safe_close(&w);
    free(text);
}
