// gen_arith.c: the demo's synthetic corpus, a tiny language of arithmetic problems, byte-level (token id =
// byte value, V = 256) so no tokenizer is needed. Written twice:
//   PREFIX_train.bin, PREFIX_val.bin   token files: the problems as running text (language modelling)
//   PREFIX_train.ds,  PREFIX_val.ds    SFT example files (dataset.h): prompt "71+57=", response "821\n",
//                                      the loss taken on the response only
//
//   ./gen_arith OP N SEED PREFIX
//   ./gen_arith check N SEED FILE.tsv   a classification task for fine-tuning: is the sum right, too low or
//                                       too high? ("label<TAB>text" rows, a header, a third of each class)
//   ./gen_arith check-splits            self-test (run by `make test`): the held-out split is random over
//                                       (a, b) pairs; one [ OK ]/[FAIL] line per check, non-zero exit on any
//
// OP is + or -. Each line is "aa+bb=ccc\n": a, b in [0, 99] written with two digits (for -, a >= b), and the
// answer written least-significant digit first, zero padded (3 digits for +, 2 for -). Reversed answers are
// the order you add by hand: each digit then depends only on digits already seen plus a carry, which a
// small GPT learns in minutes (minGPT's adder does the same). Example: 71+57=128 is written "71+57=821".
// A fixed pseudo-random tenth of all (a, b) pairs goes to val (held_out below, the same for every SEED), so
// validation problems never appear in training: val loss measures whether the model learned the arithmetic,
// not whether it memorised lines.
#define _POSIX_C_SOURCE 200809L
#include "../dataset.h"
#include "../test_report.h"
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

// Is the problem (a, b) in val? The pair's index a*100 + b goes through splitmix64's finaliser, which mixes
// every input bit into every output bit, and the low decimal digit of the result picks a tenth of the pairs
// at random: every last digit of the answer and every carry pattern lands in both splits (check-splits tests
// it). A linear rule is not random in this sense: the old (a*7919 + b*104729) % 10 == 0 has both multipliers
// 9 mod 10, so it is a + b = 0 (mod 10), and every val sum ended in 0, a digit no train answer started with.
static int held_out(int a, int b) {
    uint64_t z = (uint64_t)(a * 100 + b) + 0x9E3779B97F4A7C15ull;  // the constant: an arbitrary fixed key
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return z % 10 == 0;
}

// Draws n problems (from the rng, seeded by the caller) and appends each as a line to the train or the val
// text, as held_out says. tr and va must hold n * 12 bytes; *ntr and *nva are their lengths on return.
static void generate(char op, long n, char* tr, size_t* ntr, char* va, size_t* nva) {
    *ntr = *nva = 0;
    for (long i = 0; i < n; i++) {
        int a = next_u32() % 100, b = next_u32() % 100;
        if (op == '-' && a < b) { int t = a; a = b; b = t; }
        int c = op == '+' ? a + b : a - b;
        int val = held_out(a, b);
        char* dst = val ? va : tr;
        size_t* len = val ? nva : ntr;
        int digits = op == '+' ? 3 : 2;
        *len += (size_t)sprintf(dst + *len, "%02d%c%02d=", a, op, b);
        for (int d = 0; d < digits; d++, c /= 10) dst[(*len)++] = (char)('0' + c % 10);
        dst[(*len)++] = '\n';
    }
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
// The pairs are drawn from all 10,000, not kept out of the pretraining val split: this task is what the
// pretraining is for, so knowing sums from it is the transfer the demo shows, not a leak (dataprep keeps its
// own test split apart from its train split). Drawing only from the ~1,000 held-out pairs would make about a
// third of the ~1,000 "right" rows duplicates (a pair has one right answer). And the demo's held-out exact
// match shows the base adds unseen pairs as well as seen ones, so rows on held-out pairs ask nothing it lacks.
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

// check-splits: generates the demo's corpus in memory (same generate() and held_out() that write the files,
// SEED 1, 60000 problems, as dev/demo.sh does) and checks, for + and for -, that the val split is a random
// tenth of the (a, b) pairs: every line sits in the split held_out() names (so no problem is in both), the
// held-out share of all pairs is 8-12%, each answer digit takes every value it can in both splits (digit 1 is
// the last digit of the result), and each carry pattern appears in both. The old rule fails the digit check.
static void check_split_text(char op, const char* text, size_t n, int want_val, long* lines, long* misplaced,
                             int seen_digit[3][10], int seen_carry[4]) {
    for (size_t i = 0; i < n;) {
        int a, b, k;
        char o;
        if (sscanf(text + i, "%2d%c%2d=%n", &a, &o, &b, &k) != 3 || o != op) { (*misplaced)++; break; }
        const char* ans = text + i + k;
        int digits = op == '+' ? 3 : 2;
        for (int d = 0; d < digits; d++) seen_digit[d][ans[d] - '0'] = 1;
        // + : carry out of the units (a%10 + b%10 >= 10) and out of the tens (a + b >= 100): 4 patterns.
        // - : a >= b, so only the units can borrow (a%10 < b%10): 2 patterns.
        int carry = op == '+' ? (a % 10 + b % 10 >= 10) + 2 * (a + b >= 100) : (a % 10 < b % 10);
        seen_carry[carry] = 1;
        if (held_out(a, b) != want_val) (*misplaced)++;
        (*lines)++;
        i += (size_t)k + (size_t)digits + 1;
    }
}

static void list_missing(char* buf, size_t cap, const int* seen, int n, const char* const* names) {
    size_t len = 0;
    buf[0] = 0;
    for (int v = 0; v < n && len + 24 < cap; v++)
        if (!seen[v]) len += (size_t)snprintf(buf + len, cap - len, " %s", names[v]);
    if (len == 0) snprintf(buf, cap, " none");
}

static int check_splits(void) {
    static const char* digit_names[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    static const char* carry_names[2][4] = {{"no borrow", "units borrow"},
                                            {"no carry", "units carry", "tens carry", "units+tens carry"}};
    const long n = 60000;
    for (int opi = 0; opi < 2; opi++) {
        char op = "+-"[opi];
        int digits = op == '+' ? 3 : 2, ncarry = op == '+' ? 4 : 2;
        rng_state = 1ull * 2654435761u + 1;  // SEED 1, as in main
        char* text[2] = {malloc((size_t)n * 12 + 16), malloc((size_t)n * 12 + 16)};
        size_t len[2];
        generate(op, n, text[0], &len[0], text[1], &len[1]);
        long lines[2] = {0, 0}, misplaced = 0;
        int seen_digit[2][3][10] = {{{0}}}, seen_carry[2][4] = {{0}};
        for (int s = 0; s < 2; s++)
            check_split_text(op, text[s], len[s], s, &lines[s], &misplaced, seen_digit[s], seen_carry[s]);
        report(misplaced == 0 && lines[0] + lines[1] == n,
               "%c: %ld lines, %ld train + %ld val, every one in the split held_out() names (%ld misplaced)", op,
               n, lines[0], lines[1], misplaced);

        int pairs = 0, held = 0;
        for (int a = 0; a < 100; a++)
            for (int b = 0; b < 100; b++)
                if (op == '+' || a >= b) { pairs++; held += held_out(a, b); }
        double share = (double)held / pairs;
        report(share >= 0.08 && share <= 0.12, "%c: %d of %d pairs held out (%.1f%%), want 8-12%%", op, held, pairs,
               100.0 * share);
        // the same share within each class of pairs (last digit of the result, carry pattern): with 505 to 3025
        // pairs a class, 5% from a tenth is at least 3.7 standard deviations, so a random split all but never
        // fails it; a split that favours some digits or carries does
        int cls_pairs[14] = {0}, cls_held[14] = {0};
        for (int a = 0; a < 100; a++)
            for (int b = 0; b < 100; b++) {
                if (op == '-' && a < b) continue;
                int c = op == '+' ? a + b : a - b;
                int carry = op == '+' ? (a % 10 + b % 10 >= 10) + 2 * (a + b >= 100) : (a % 10 < b % 10);
                int cls[2] = {c % 10, 10 + carry};
                for (int k = 0; k < 2; k++) { cls_pairs[cls[k]]++; cls_held[cls[k]] += held_out(a, b); }
            }
        double lo = 1, hi = 0;
        for (int k = 0; k < 10 + ncarry; k++) {
            double f = (double)cls_held[k] / cls_pairs[k];
            lo = f < lo ? f : lo;
            hi = f > hi ? f : hi;
        }
        report(lo >= 0.05 && hi <= 0.15,
               "%c: held-out share within each last digit of the result and each carry pattern: %.1f-%.1f%%, want "
               "5-15%%", op, 100.0 * lo, 100.0 * hi);

        for (int d = 0; d < digits; d++) {
            int nvalues = d == 2 ? 2 : 10;  // the hundreds digit of a sum of two 2-digit numbers is 0 or 1
            char miss[2][64];
            int ok = 1;
            for (int s = 0; s < 2; s++) {
                list_missing(miss[s], sizeof miss[s], seen_digit[s][d], nvalues, digit_names);
                ok &= !strcmp(miss[s], " none");
            }
            if (ok)
                report(1, "%c: answer digit %d (%s) takes all %d values in train and in val", op, d + 1,
                       d == 0 ? "units, written first" : (d == 1 ? "tens" : "hundreds"), nvalues);
            else
                report(0, "%c: answer digit %d misses values: train lacks {%s }, val lacks {%s }", op, d + 1, miss[0],
                       miss[1]);
        }

        char miss[2][128];
        int ok = 1;
        for (int s = 0; s < 2; s++) {
            list_missing(miss[s], sizeof miss[s], seen_carry[s], ncarry, carry_names[op == '+']);
            ok &= !strcmp(miss[s], " none");
        }
        if (ok) report(1, "%c: all %d carry patterns appear in train and in val", op, ncarry);
        else report(0, "%c: carry patterns missing: train lacks {%s }, val lacks {%s }", op, miss[0], miss[1]);
        free(text[0]);
        free(text[1]);
    }
    printf("gen_arith: %d passed, %d failed\n", checks_passed, checks_failed);
    return checks_failed != 0;
}

int main(int argc, char** argv) {
    if (argc == 2 && !strcmp(argv[1], "check-splits")) return check_splits();
    if (argc == 5 && !strcmp(argv[1], "check")) {
        rng_state = (uint64_t)atoll(argv[3]) * 2654435761u + 1;
        return write_check(argv[4], atol(argv[2]));
    }
    if (argc != 5 || (strcmp(argv[1], "+") && strcmp(argv[1], "-"))) {
        fprintf(stderr, "usage: %s +|- N SEED PREFIX   or   %s check N SEED FILE.tsv   or   %s check-splits\n",
                argv[0], argv[0], argv[0]);
        return 1;
    }
    char op = argv[1][0];
    long n = atol(argv[2]);
    rng_state = (uint64_t)atoll(argv[3]) * 2654435761u + 1;
    size_t cap = (size_t)n * 12 + 16, ntr = 0, nva = 0;
    char* tr = malloc(cap);
    char* va = malloc(cap);
    generate(op, n, tr, &ntr, va, &nva);
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
