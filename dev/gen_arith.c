// gen_arith.c: the demo's synthetic corpus, a tiny language of arithmetic problems, byte-level (token id =
// byte value, V = 256) so no tokenizer is needed. Written twice:
//   PREFIX_train.bin, PREFIX_val.bin   token files: the problems as running text (language modelling)
//   PREFIX_train.ds,  PREFIX_val.ds    SFT example files (dataset.h): prompt "71+57=", response "821\n",
//                                      the loss taken on the response only
//
//   ./gen_arith OP N SEED PREFIX
//   ./gen_arith check N SEED FILE.tsv   a classification task for fine-tuning: is the sum right, too low or
//                                       too high? ("label<TAB>text" rows, a header, a third of each class)
//
// OP is + or -. Each line is "aa+bb=ccc\n": a, b in [0, 99] written with two digits (for -, a >= b), and the
// answer written least-significant digit first, zero padded (3 digits for +, 2 for -). Reversed answers are
// the order you add by hand: each digit then depends only on digits already seen plus a carry, which a
// small GPT learns in minutes (minGPT's adder does the same). Example: 71+57=128 is written "71+57=821".
// A fixed pseudo-random tenth of all (a, b) pairs goes to val, so validation problems never appear in
// training: val loss measures whether the model learned the arithmetic, not whether it memorised lines.
#define _POSIX_C_SOURCE 200809L
#include "../dataset.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state;
static uint32_t next_u32(void) {  // xorshift64*, as in model.h
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

// Writes bytes as a finetune.c token file: 256 int32 header (magic 20261128, version 1, 2 bytes per token,
// vocab 256, count), then uint16 ids.
static int write_tokens(const char* path, const char* text, size_t n) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE* f = fopen(tmp, "wb");
    if (!f) { fprintf(stderr, "error: cannot write %s\nhint: check the folder exists\n", path); return 1; }
    int32_t h[256] = {20261128, 1, 2, 256, (int32_t)(n & 0xffffffffu), (int32_t)(n >> 32)};
    fwrite(h, sizeof h, 1, f);
    for (size_t i = 0; i < n; i++) {
        uint16_t t = (unsigned char)text[i];
        fwrite(&t, 2, 1, f);
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) { fprintf(stderr, "error: writing %s failed\n", path); return 1; }
    return 0;
}

// Writes every "prompt=answer\n" line of text as an SFT example: loss mask on the answer and the newline.
static int write_sft(const char* path, const char* text, size_t n) {
    DsWriter w;
    char err[512];
    if (ds_writer_open(&w, path, EXAMPLES_MAGIC, DS_SFT, 256, 0, err, sizeof err)) { fprintf(stderr, "error: %s\n", err); return 1; }
    int ids[64];
    unsigned char mask[64];
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] != '\n') continue;
        int len = (int)(i + 1 - start), prompt = 0;
        if (len > 64) { start = i + 1; continue; }
        for (int k = 0; k < len; k++) {
            ids[k] = (unsigned char)text[start + k];
            if (text[start + k] == '=' && !prompt) prompt = k + 1;
        }
        for (int k = 0; k < len; k++) mask[k] = k >= prompt;
        ds_write_example(&w, ids, (size_t)len, prompt, mask);
        start = i + 1;
    }
    if (ds_writer_close(&w, err, sizeof err)) { fprintf(stderr, "error: %s\n", err); return 1; }
    return 0;
}

// Rows like "right<TAB>71+57=821": the sum as the pretraining text writes it (answer reversed), with the
// true answer, or one moved down or up by 1 to 30. Telling them apart takes the arithmetic the base learned.
static int write_check(const char* path, long n) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE* f = fopen(tmp, "w");
    if (!f) { fprintf(stderr, "error: cannot write %s\nhint: check the folder exists\n", path); return 1; }
    static const char* names[3] = {"right", "too_low", "too_high"};
    fprintf(f, "label\ttext\n");
    for (long i = 0; i < n; i++) {
        int a = next_u32() % 100, b = next_u32() % 100, label = (int)(next_u32() % 3), c = a + b;
        int shown = c + (label == 0 ? 0 : (label == 1 ? -1 : 1) * (1 + (int)(next_u32() % 30)));
        if (shown < 0 || shown > 198) { i--; continue; }  // not writable in 3 digits as a sum: draw again
        fprintf(f, "%s\t%02d+%02d=", names[label], a, b);
        for (int d = 0; d < 3; d++, shown /= 10) fputc('0' + shown % 10, f);
        fputc('\n', f);
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) { fprintf(stderr, "error: writing %s failed\n", path); return 1; }
    printf("%s: %ld rows\n", path, n);
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 5 && !strcmp(argv[1], "check")) {
        rng_state = (uint64_t)atoll(argv[3]) * 2654435761u + 1;
        return write_check(argv[4], atol(argv[2]));
    }
    if (argc != 5 || (strcmp(argv[1], "+") && strcmp(argv[1], "-"))) {
        fprintf(stderr, "usage: %s +|- N SEED PREFIX   or   %s check N SEED FILE.tsv\n", argv[0], argv[0]);
        return 1;
    }
    char op = argv[1][0];
    long n = atol(argv[2]);
    rng_state = (uint64_t)atoll(argv[3]) * 2654435761u + 1;
    size_t cap = (size_t)n * 12 + 16, ntr = 0, nva = 0;
    char* tr = malloc(cap);
    char* va = malloc(cap);
    for (long i = 0; i < n; i++) {
        int a = next_u32() % 100, b = next_u32() % 100;
        if (op == '-' && a < b) { int t = a; a = b; b = t; }
        int c = op == '+' ? a + b : a - b;
        int held_out = (a * 7919 + b * 104729) % 10 == 0;  // a fixed pseudo-random tenth of all problems
        char* dst = held_out ? va : tr;
        size_t* len = held_out ? &nva : &ntr;
        int digits = op == '+' ? 3 : 2;
        *len += (size_t)sprintf(dst + *len, "%02d%c%02d=", a, op, b);
        for (int d = 0; d < digits; d++, c /= 10) dst[(*len)++] = (char)('0' + c % 10);
        dst[(*len)++] = '\n';
    }
    char path[1024];
    snprintf(path, sizeof path, "%s_train.bin", argv[4]);
    if (write_tokens(path, tr, ntr)) return 1;
    snprintf(path, sizeof path, "%s_val.bin", argv[4]);
    if (write_tokens(path, va, nva)) return 1;
    snprintf(path, sizeof path, "%s_train.ds", argv[4]);
    if (write_sft(path, tr, ntr)) return 1;
    snprintf(path, sizeof path, "%s_val.ds", argv[4]);
    if (write_sft(path, va, nva)) return 1;
    // a few problems from each split, for the demo's samples
    snprintf(path, sizeof path, "%s_examples.txt", argv[4]);
    FILE* ex = fopen(path, "w");
    if (!ex) { fprintf(stderr, "error: cannot write %s\n", path); return 1; }
    const char* src[2] = {tr, va};
    for (int s = 0; s < 2; s++) {
        const char* p = src[s];
        for (int k = 0; k < 3; k++) {
            const char* nl = strchr(p, '\n');
            if (!nl) break;
            fprintf(ex, "%s %.*s\n", s ? "val" : "train", (int)(nl - p), p);
            p = nl + 1;
        }
    }
    fclose(ex);
    printf("%s: %zu train bytes, %zu val bytes (problems like \"%.*s\")\n", argv[4], ntr, nva, (int)(strchr(tr, '\n') - tr), tr);
    free(tr);
    free(va);
    return 0;
}
