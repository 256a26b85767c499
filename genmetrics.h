// genmetrics.h: metrics for generated text, and `eval --generate` on SFT data.
//
//   corpus BLEU   as sacreBLEU computes it (Post, 2018; sacrebleu.metrics.BLEU): the 13a tokenizer (mteval-v13a,
//                 WMT's), n-gram counts 1..4 clipped per sentence by the reference's counts and summed over the
//                 corpus, the brevity penalty on the summed lengths, score = BP * geometric mean of the four
//                 precisions, on sacreBLEU's 0-100 scale. Its smooth_method options: none, exp, floor, add-k.
//   ROUGE-L F     as Google's rouge-score package computes it (rouge_scorer.RougeScorer(["rougeL"])): its
//                 tokenizer (lowercase, every run of characters other than a-z 0-9 is a space), no stemming,
//                 LCS precision/recall/F1 per sentence; the corpus figure is the plain mean of the F1s, on
//                 rouge-score's 0-1 scale.
//   eval_generate for each SFT example: generate a response from its prompt (KV cache), decode it, score it
//                 against the reference response; write DIR/generations.jsonl.
//
// Both metrics work on bytes (UTF-8 in, no decoding needed): every pattern the two tokenizers use is ASCII,
// and a byte of a multi-byte character never equals an ASCII one, so a match on bytes is a match on
// characters. dev/check_genmetrics.py holds both to the Python packages; test_gpt.c to hand-computed cases
// and to the packages' own published test values.

#pragma once
#include "infer.h"      // defines: Sampler, generate_with (and model.h's GPT)
#include "dataset.h"    // defines: Dataset, Example, dataset_open, dataset_get
#include "tokenizer.c"  // defines: Tokenizer, tokenizer_decode
#include "flags.h"      // defines: Args, flag_given (gen_eval_opts)

// ---------------------------------------------------------------------------- whitespace, as Python's str.split()
// Python splits on the characters str.isspace() accepts: ASCII \t \n \v \f \r, the separators 0x1C-0x1F,
// space, and the Unicode White_Space characters U+0085 U+00A0 U+1680 U+2000-U+200A U+2028 U+2029 U+202F
// U+205F U+3000. Returns the byte length of the whitespace character at p (p < end), or 0.
static size_t gm_space_len(const unsigned char* p, const unsigned char* end) {
    unsigned char c = p[0];
    if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20)) return 1;
    size_t n = (size_t)(end - p);
    if (c == 0xC2 && n >= 2 && (p[1] == 0x85 || p[1] == 0xA0)) return 2;
    if (n < 3) return 0;
    if (c == 0xE1 && p[1] == 0x9A && p[2] == 0x80) return 3;                                      // U+1680
    if (c == 0xE2 && p[1] == 0x80 && (p[2] <= 0x8A || p[2] == 0xA8 || p[2] == 0xA9 || p[2] == 0xAF)) return 3;  // U+2000-200A, 2028, 2029, 202F
    if (c == 0xE2 && p[1] == 0x81 && p[2] == 0x9F) return 3;                                      // U+205F
    if (c == 0xE3 && p[1] == 0x80 && p[2] == 0x80) return 3;                                      // U+3000
    return 0;
}

// Splits s[0..n) at whitespace runs: appends each token's offset and length (into s) to *off / *len.
// Python: s.split(). Returns the number of tokens.
static size_t gm_split(const unsigned char* s, size_t n, IntVec* off, IntVec* len) {
    const unsigned char *p = s, *end = s + n;
    size_t count = 0;
    while (p < end) {
        size_t w;
        while (p < end && (w = gm_space_len(p, end))) p += w;
        if (p == end) break;
        const unsigned char* start = p;
        while (p < end && !gm_space_len(p, end)) p++;
        intvec_push(off, (int)(start - s));
        intvec_push(len, (int)(p - start));
        count++;
    }
    return count;
}

// ---------------------------------------------------------------------------- sacreBLEU's 13a tokenizer
// sacrebleu/tokenizers/tokenizer_13a.py then tokenizer_re.py, step for step:
//   line.rstrip(); drop "<skipped>"; "-\n" -> ""; "\n" -> " "; if '&' in line: &quot; &amp; &lt; &gt; -> " & < >
//   (in that order, each over the whole line); then on " " + line + " " four regex substitutions:
//     1. ([\{-\~\[-\` -\&\(-\+\:-\@\/])  -> " \1 "   every ASCII punctuation mark except ' , - . (and space)
//     2. ([^0-9])([\.,])               -> "\1 \2 "  a period or comma not after a digit
//     3. ([\.,])([^0-9])               -> " \1 \2"  a period or comma not before a digit
//     4. ([0-9])(-)                    -> "\1 \2 "  a dash after a digit
//   and finally ' '.join(line.split()). Each substitution scans left to right and does not overlap its matches
//   (Python's re.sub): after a two-character match the scan resumes after both characters.

// Replaces every occurrence of pat (m bytes) in v by rep (k bytes), left to right, non-overlapping (str.replace).
static void gm_replace_all(ByteVec* v, const char* pat, const char* rep) {
    size_t m = strlen(pat), k = strlen(rep);
    if (v->len < m) return;
    ByteVec out = {0};
    bytevec_append(&out, "", 0);
    size_t i = 0;
    while (i < v->len) {
        if (i + m <= v->len && !memcmp(v->data + i, pat, m)) bytevec_append(&out, rep, k), i += m;
        else bytevec_push(&out, v->data[i++]);
    }
    free(v->data);
    *v = out;
}

static int gm_is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int gm_is_period_comma(unsigned char c) { return c == '.' || c == ','; }
// the class of substitution 1: { | } ~  [ \ ] ^ _ `  space ! " # $ % &  ( ) * +  : ; < = > ? @  /
static int gm_is_13a_punct(unsigned char c) {
    return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') || (c >= '(' && c <= '+') ||
           (c >= ':' && c <= '@') || c == '/';
}

// One pass of a two-character substitution: where first(c0) and second(c1) match at i, write c0 c1 with the
// spaces given (before c0, between, after c1), then resume at i + 2.
static void gm_sub_pair(ByteVec* v, int (*first)(unsigned char), int (*second)(unsigned char), const char* before,
                        const char* between, const char* after) {
    ByteVec out = {0};
    bytevec_append(&out, "", 0);
    size_t i = 0;
    while (i < v->len) {
        if (i + 1 < v->len && first(v->data[i]) && second(v->data[i + 1])) {
            bytevec_append(&out, before, strlen(before));
            bytevec_push(&out, v->data[i]);
            bytevec_append(&out, between, strlen(between));
            bytevec_push(&out, v->data[i + 1]);
            bytevec_append(&out, after, strlen(after));
            i += 2;
        } else {
            bytevec_push(&out, v->data[i++]);
        }
    }
    free(v->data);
    *v = out;
}
static int gm_not_digit(unsigned char c) { return !gm_is_digit(c); }
static int gm_is_dash(unsigned char c) { return c == '-'; }

// Tokenizes s[0..n) as sacreBLEU's 13a does; out gets the tokens joined by single spaces (replacing its content).
static void bleu_tokenize_13a(const char* s, size_t n, ByteVec* out) {
    const unsigned char* u = (const unsigned char*)s;
    while (n > 0) {  // rstrip(): trailing whitespace, ASCII or a multi-byte space
        size_t k = 0;
        for (size_t back = 1; back <= 3 && back <= n && !k; back++)
            if (gm_space_len(u + n - back, u + n) == back) k = back;
        if (!k) break;
        n -= k;
    }
    ByteVec v = {0};
    bytevec_append(&v, " ", 1);
    bytevec_append(&v, s, n);
    gm_replace_all(&v, "<skipped>", "");
    gm_replace_all(&v, "-\n", "");
    gm_replace_all(&v, "\n", " ");
    if (memchr(v.data, '&', v.len)) {
        gm_replace_all(&v, "&quot;", "\"");
        gm_replace_all(&v, "&amp;", "&");
        gm_replace_all(&v, "&lt;", "<");
        gm_replace_all(&v, "&gt;", ">");
    }
    bytevec_append(&v, " ", 1);
    ByteVec w = {0};  // substitution 1: one character at a time, no overlap question
    bytevec_append(&w, "", 0);
    for (size_t i = 0; i < v.len; i++) {
        if (gm_is_13a_punct(v.data[i])) {
            unsigned char t[3] = {' ', v.data[i], ' '};
            bytevec_append(&w, t, 3);
        } else {
            bytevec_push(&w, v.data[i]);
        }
    }
    free(v.data);
    gm_sub_pair(&w, gm_not_digit, gm_is_period_comma, "", " ", " ");  // 2. \1 \2_
    gm_sub_pair(&w, gm_is_period_comma, gm_not_digit, " ", " ", "");  // 3. _\1 \2
    gm_sub_pair(&w, gm_is_digit, gm_is_dash, "", " ", " ");           // 4. \1 \2_
    IntVec off = {0}, len = {0};
    size_t m = gm_split(w.data, w.len, &off, &len);
    out->len = 0;
    bytevec_append(out, "", 0);
    for (size_t i = 0; i < m; i++) {
        if (i) bytevec_push(out, ' ');
        bytevec_append(out, w.data + off.data[i], (size_t)len.data[i]);
    }
    free(w.data), free(off.data), free(len.data);
}

// ---------------------------------------------------------------------------- corpus BLEU
// Sufficient statistics, summed over the corpus (sacreBLEU's per-segment stats, added up):
//   correct[n-1] = sum over sentences of sum over distinct hypothesis n-grams g of min(count_hyp(g), max_r count_ref_r(g))
//   total[n-1]   = sum over sentences of max(0, hyp_len - n + 1)
//   sys_len      = sum of hypothesis lengths, ref_len = sum of the reference lengths closest to each hypothesis's
//                  (with several references; a tie goes to the shorter), in tokens after tokenization
// Then (BLEU.compute_bleu): BP = 1 if sys_len >= ref_len else exp(1 - ref_len / sys_len) (0 if sys_len = 0);
// p_n = 100 correct_n / total_n; score = BP * exp(sum_n log p_n / N). With no match at any order the score is 0.
// Smoothing, for an order with correct_n = 0 (none: log 0 = -inf, so the score is 0):
//   exp:   the k-th such order gets p_n = 100 / (2^k total_n)                (NIST's, mteval-v13a's)
//   floor: p_n = 100 * value / total_n (value 0.1 by default)
//   add-k: every order n >= 2 gets correct_n += value, total_n += value (value 1 by default), before the above
// An order with total_n = 0 (every hypothesis shorter than n) ends the loop: it and the orders above keep
// p_n = 0, so the score is 0 unless effective_order, which averages over the orders before it only.
#define BLEU_MAX_ORDER 8
typedef enum { BLEU_SMOOTH_NONE, BLEU_SMOOTH_EXP, BLEU_SMOOTH_FLOOR, BLEU_SMOOTH_ADD_K } BleuSmooth;
typedef struct {
    int max_order;        // N, 1..BLEU_MAX_ORDER (sacreBLEU's max_ngram_order, 4)
    BleuSmooth smooth;    // smooth_method
    double smooth_value;  // for floor and add-k; NAN: sacreBLEU's default (0.1, 1)
    int effective_order;  // sacreBLEU's effective_order (off for corpus BLEU)
    int tokenize_13a;     // 1: the 13a tokenizer (sacreBLEU's default); 0: tokenize='none' (split on whitespace)
} BleuOpts;
typedef struct {
    double correct[BLEU_MAX_ORDER], total[BLEU_MAX_ORDER];  // doubles: add-k adds a real value
    double precisions[BLEU_MAX_ORDER];                      // percent
    double sys_len, ref_len, bp, score;                     // score on 0-100
    size_t sentences;
} BleuStats;

// sacreBLEU's corpus_bleu defaults, except smoothing: this project's default is none, sacreBLEU's is exp
// (the two differ only when some order has no match at all in the whole corpus).
static BleuOpts bleu_opts_default(void) {
    BleuOpts o = {4, BLEU_SMOOTH_NONE, NAN, 0, 1};
    return o;
}

// "none" | "exp" | "floor" | "add-k" -> *out; returns 0, or -1 for another name.
static int bleu_smooth_parse(const char* s, BleuSmooth* out) {
    static const char* const names[] = {"none", "exp", "floor", "add-k"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) { *out = (BleuSmooth)i; return 0; }
    return -1;
}

// A tokenized sentence as token ids: tokens equal as strings get the same id. All sentences of one segment
// (the hypothesis and its references) share one table, so ids compare across them.
typedef struct {
    ByteVec text;         // the tokenized sentences, one after another
    IntVec off, len;      // every token's place in text
    IntVec id;            // every token's id
} GmTokens;

// Appends the tokens of s[0..n) (13a-tokenized or not) to t; returns how many.
static size_t gm_tokens_add(GmTokens* t, const char* s, size_t n, int tok13a) {
    ByteVec tk = {0};
    if (tok13a) bleu_tokenize_13a(s, n, &tk);
    else bytevec_append(&tk, s, n);
    size_t base = t->text.len, first = t->off.len;
    bytevec_append(&t->text, tk.data, tk.len);
    bytevec_push(&t->text, ' ');
    size_t m = gm_split(t->text.data + base, tk.len, &t->off, &t->len);
    for (size_t i = first; i < t->off.len; i++) t->off.data[i] += (int)base;
    for (size_t i = first; i < t->off.len; i++) {  // id: the first earlier token with the same bytes, else new
        int id = (int)i;
        for (size_t j = 0; j < i && id == (int)i; j++)
            if (t->len.data[j] == t->len.data[i] && !memcmp(t->text.data + t->off.data[j], t->text.data + t->off.data[i], (size_t)t->len.data[i]))
                id = t->id.data[j];
        intvec_push(&t->id, id);
    }
    free(tk.data);
    return m;
}
static void gm_tokens_free(GmTokens* t) { free(t->text.data), free(t->off.data), free(t->len.data), free(t->id.data); }

// How often the n-gram a[0..n) occurs in b[0..m).
static size_t gm_count_ngram(const int* a, int n, const int* b, size_t m) {
    size_t c = 0;
    for (size_t i = 0; i + (size_t)n <= m; i++) c += !memcmp(a, b + i, (size_t)n * sizeof(int));
    return c;
}

// Adds one segment: hypothesis hyp and its R references (each NUL-terminated) to the corpus statistics.
// Counting is by the definition (for each distinct hypothesis n-gram, count it everywhere): O(len^2) per
// segment, a few milliseconds for the longest responses here; sacreBLEU uses Counters instead.
static void bleu_add(BleuStats* st, const char* hyp, const char* const* refs, int R, const BleuOpts* o) {
    GmTokens t = {0};
    size_t hl = gm_tokens_add(&t, hyp, strlen(hyp), o->tokenize_13a);
    size_t* rl = (size_t*)mallocCheck((size_t)(R > 0 ? R : 1) * sizeof(size_t));
    for (int r = 0; r < R; r++) rl[r] = gm_tokens_add(&t, refs[r], strlen(refs[r]), o->tokenize_13a);
    const int* h = t.id.data;  // the hypothesis's ids, then each reference's
    size_t closest = R ? rl[0] : 0;
    for (int r = 1; r < R; r++) {  // the reference length closest to the hypothesis's; a tie goes to the shorter
        size_t d = rl[r] > hl ? rl[r] - hl : hl - rl[r], dc = closest > hl ? closest - hl : hl - closest;
        if (d < dc || (d == dc && rl[r] < closest)) closest = rl[r];
    }
    for (int n = 1; n <= o->max_order; n++) {
        if (hl < (size_t)n) continue;
        st->total[n - 1] += (double)(hl - n + 1);
        for (size_t i = 0; i + n <= hl; i++) {
            int seen = 0;  // count each distinct n-gram once, at its first occurrence
            for (size_t j = 0; j < i && !seen; j++) seen = !memcmp(h + i, h + j, (size_t)n * sizeof(int));
            if (seen) continue;
            size_t ch = gm_count_ngram(h + i, n, h, hl), cr = 0;
            const int* ref = h + hl;
            for (int r = 0; r < R; r++) {
                size_t c = gm_count_ngram(h + i, n, ref, rl[r]);
                if (c > cr) cr = c;
                ref += rl[r];
            }
            st->correct[n - 1] += (double)(ch < cr ? ch : cr);
        }
    }
    st->sys_len += (double)hl;
    st->ref_len += (double)closest;
    st->sentences++;
    free(rl);
    gm_tokens_free(&t);
}

// The score from the summed statistics (sacreBLEU's BLEU.compute_bleu, line for line); fills precisions, bp, score.
static void bleu_compute(BleuStats* st, const BleuOpts* o) {
    int N = o->max_order;
    double value = isnan(o->smooth_value) ? (o->smooth == BLEU_SMOOTH_FLOOR ? 0.1 : 1.0) : o->smooth_value;
    st->bp = st->sys_len < st->ref_len ? (st->sys_len > 0 ? exp(1.0 - st->ref_len / st->sys_len) : 0.0) : 1.0;
    for (int n = 0; n < N; n++) st->precisions[n] = 0.0;
    st->score = 0.0;
    int any = 0;
    for (int n = 0; n < N; n++) any |= st->correct[n] != 0;
    if (!any) return;  // no match at any order: 0, whatever the smoothing (sacreBLEU #141)
    double smooth_mteval = 1.0;
    int eff = N;
    double c[BLEU_MAX_ORDER], t[BLEU_MAX_ORDER];
    memcpy(c, st->correct, sizeof c), memcpy(t, st->total, sizeof t);
    for (int n = 1; n <= N; n++) {
        if (o->smooth == BLEU_SMOOTH_ADD_K && n > 1) c[n - 1] += value, t[n - 1] += value;
        if (t[n - 1] == 0) break;
        if (o->effective_order) eff = n;
        if (c[n - 1] == 0) {
            if (o->smooth == BLEU_SMOOTH_EXP) smooth_mteval *= 2, st->precisions[n - 1] = 100.0 / (smooth_mteval * t[n - 1]);
            else if (o->smooth == BLEU_SMOOTH_FLOOR) st->precisions[n - 1] = 100.0 * value / t[n - 1];
        } else {
            st->precisions[n - 1] = 100.0 * c[n - 1] / t[n - 1];
        }
    }
    double logsum = 0.0;
    for (int n = 0; n < eff; n++) {
        if (st->precisions[n] == 0.0) return;  // log 0: sacreBLEU's my_log gives -9999999999, exp of it is 0
        logsum += log(st->precisions[n]);
    }
    st->score = st->bp * exp(logsum / eff);
}

// Corpus BLEU of n hypotheses against R reference streams: refs[r * n + i] is reference r of hypothesis i
// (sacreBLEU's corpus_bleu(hyps, [refs_0, refs_1, ...]) layout).
static BleuStats bleu_corpus(const char* const* hyps, const char* const* refs, size_t n, int R, const BleuOpts* o) {
    BleuStats st;
    memset(&st, 0, sizeof st);
    const char** mine = (const char**)mallocCheck((size_t)(R > 0 ? R : 1) * sizeof(char*));
    for (size_t i = 0; i < n; i++) {
        for (int r = 0; r < R; r++) mine[r] = refs[(size_t)r * n + i];
        bleu_add(&st, hyps[i], mine, R, o);
    }
    free(mine);
    bleu_compute(&st, o);
    return st;
}

// ---------------------------------------------------------------------------- ROUGE-L
// rouge-score's tokenize.tokenize(text, stemmer=None): text.lower(); re.sub(r"[^a-z0-9]+", " ", text); split;
// keep tokens matching ^[a-z0-9]+$. On bytes: ASCII letters lowered, ASCII letters and digits kept, every other
// byte a separator. Two non-ASCII characters lower to ASCII in Python and so make a token there: U+0130
// (Turkish dotted I, lower() = "i" + U+0307) gives an "i", U+212A (Kelvin sign) a "k"; they do here too.
// Appends each token to t (ids shared as in GmTokens); returns how many.
static size_t rouge_tokens_add(GmTokens* t, const char* s, size_t n) {
    ByteVec low = {0};
    bytevec_append(&low, "", 0);
    const unsigned char* u = (const unsigned char*)s;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = u[i];
        if (c >= 'A' && c <= 'Z') bytevec_push(&low, (unsigned char)(c - 'A' + 'a'));
        else if ((c >= 'a' && c <= 'z') || gm_is_digit(c)) bytevec_push(&low, c);
        else if (c == 0xC4 && i + 1 < n && u[i + 1] == 0xB0) bytevec_append(&low, "i ", 2), i++;  // U+0130: "i" + a non-alphanumeric
        else if (c == 0xE2 && i + 2 < n && u[i + 1] == 0x84 && u[i + 2] == 0xAA) bytevec_push(&low, 'k'), i += 2;  // U+212A
        else bytevec_push(&low, ' ');
    }
    size_t m = gm_tokens_add(t, (const char*)low.data, low.len, 0);
    free(low.data);
    return m;
}

// Length of the longest common subsequence of a[0..m) and b[0..n): the dynamic programme of rouge-score's
// _lcs_table, keeping two rows of it. row[j] = LCS(a[0..i), b[0..j)).
static size_t lcs_length(const int* a, size_t m, const int* b, size_t n) {
    size_t* prev = (size_t*)callocCheck(n + 1, sizeof(size_t));
    size_t* cur = (size_t*)callocCheck(n + 1, sizeof(size_t));
    for (size_t i = 1; i <= m; i++) {
        for (size_t j = 1; j <= n; j++)
            cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : (prev[j] > cur[j - 1] ? prev[j] : cur[j - 1]);
        size_t* s = prev; prev = cur; cur = s;
    }
    size_t r = prev[n];
    free(prev), free(cur);
    return r;
}

typedef struct { double precision, recall, f; } RougeScore;

// ROUGE-L of one prediction against one target (rouge_scorer._score_lcs): P = LCS/|prediction|,
// R = LCS/|target|, F = 2PR/(P+R) (0 when P+R = 0); all 0 when either has no token.
static RougeScore rouge_l(const char* target, const char* prediction) {
    GmTokens t = {0};
    size_t nt = rouge_tokens_add(&t, target, strlen(target));
    size_t np = rouge_tokens_add(&t, prediction, strlen(prediction));
    RougeScore s = {0, 0, 0};
    if (nt && np) {
        size_t l = lcs_length(t.id.data, nt, t.id.data + nt, np);
        s.precision = (double)l / np, s.recall = (double)l / nt;
        s.f = s.precision + s.recall > 0 ? 2 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
    }
    gm_tokens_free(&t);
    return s;
}

// The corpus ROUGE-L F: the mean of the per-sentence F1s (rouge-score scores sentence by sentence; Hugging
// Face's evaluate reports the same mean with use_aggregator=False, a bootstrap estimate of it otherwise).
static double rouge_l_corpus(const char* const* targets, const char* const* predictions, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += rouge_l(targets[i], predictions[i]).f;
    return n ? s / n : NAN;
}

// ---------------------------------------------------------------------------- JSON strings
// Writes s[0..n) as a JSON string: " \ and control characters escaped, valid UTF-8 kept, each byte of an
// invalid sequence (a character split by the max-new-tokens cut, say) as U+FFFD.
static void gm_json_string(FILE* f, const unsigned char* s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c), i++;
        else if (c == '\n') fputs("\\n", f), i++;
        else if (c == '\t') fputs("\\t", f), i++;
        else if (c < 0x20 || c == 0x7F) fprintf(f, "\\u%04x", c), i++;
        else if (c < 0x80) fputc(c, f), i++;
        else {  // a multi-byte sequence: its length from the lead byte, then check it (no overlong, surrogate, > U+10FFFF)
            size_t k = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
            uint32_t cp = k == 2 ? c & 0x1F : k == 3 ? c & 0x0F : c & 0x07;
            int ok = k && i + k <= n;
            for (size_t j = 1; ok && j < k; j++) ok = (s[i + j] & 0xC0) == 0x80, cp = cp << 6 | (s[i + j] & 0x3F);
            ok = ok && !(k == 3 && cp < 0x800) && !(k == 4 && (cp < 0x10000 || cp > 0x10FFFF)) && !(cp >= 0xD800 && cp <= 0xDFFF);
            if (ok) fwrite(s + i, 1, k, f), i += k;
            else fputs("\\ufffd", f), i++;
        }
    }
    fputc('"', f);
}

// ---------------------------------------------------------------------------- eval --generate on SFT data
// For each of the first max_examples examples of an SFT dataset (dataprep sft: prompt ids, then the response
// ids ending in <|endoftext|> unless truncated): generate up to max_new tokens from the prompt with
// generate_with (the KV cache), stopping after the stop token; decode the new tokens (without the stop
// token) and the reference response (without its <|endoftext|>); score all pairs with corpus BLEU and mean
// ROUGE-L F. The references are the dataset's response tokens, so a response dataprep cut at --max-len is
// scored against its cut reference.
typedef struct {
    const char* data;        // the SFT dataset
    const char* tokenizer;   // the tokenizer to decode with (the model's)
    const char* out_dir;     // DIR/generations.jsonl, or NULL for none
    int max_examples;        // -1: all
    int max_new;             // new tokens per response, at most
    float temperature;       // 0: greedy
    int top_k;
    float top_p;
    int stop_given, stop;    // stop after token `stop` if stop_given, else after the tokenizer's <|endoftext|>
    uint64_t seed;           // the sampler's
    BleuOpts bleu;
} GenEvalOpts;
typedef struct {
    BleuStats bleu;
    double rouge_l;          // mean ROUGE-L F, 0-1
    size_t examples, stopped, new_tokens;
    double seconds;          // generating, all examples
} GenEvalResult;

static GenEvalResult eval_generate(GPT* model, const GenEvalOpts* o) {
    if (model->config.num_classes) failf("generation needs the LM head", "this model has a %d-class head", model->config.num_classes);
    Dataset ds;
    char err[512];
    if (dataset_open(&ds, o->data, err, sizeof err) != 0) failf(NULL, "%s", err);
    if (ds.kind != DS_SFT || ds.magic != EXAMPLES_MAGIC) failf("give an SFT dataset from ./dataprep sft", "--generate compares generated responses with the references: %s is not SFT data", o->data);
    Tokenizer tok;
    tokenizer_load_or_die(&tok, o->tokenizer);
    if (tok.vocab_size > model->config.V) failf("use the tokenizer the model was trained with", "the tokenizer has %d ids, the model %d", tok.vocab_size, model->config.V);
    int stop = o->stop_given ? o->stop : tok.eot_id;
    Sampler sampler;
    sampler_init(&sampler, model->config.V, o->temperature, o->top_k, o->top_p, stop, o->seed);
    size_t n = ds.count;
    if (o->max_examples >= 0 && (size_t)o->max_examples < n) n = (size_t)o->max_examples;
    SafeWriter w = {0};
    char path[1100];
    if (o->out_dir) {
        make_dirs(o->out_dir);
        snprintf(path, sizeof path, "%s/generations.jsonl", o->out_dir);
        safe_open(&w, path);
    }
    char** hyps = (char**)callocCheck(n ? n : 1, sizeof(char*));
    char** refs = (char**)callocCheck(n ? n : 1, sizeof(char*));
    int* ids = NULL;
    int* out = NULL;
    size_t cap = 0, m = 0;
    GenEvalResult r;
    memset(&r, 0, sizeof r);
    double t0 = now_seconds();
    for (size_t e = 0; e < n; e++) {
        Example ex;
        if (dataset_get(&ds, e, &ex) != 0) failf("run dataprep again", "%s: example %zu is corrupt", o->data, e);
        int np = ex.label, nr = (int)ex.n - np;
        if (np < 1) continue;  // no prompt to generate from
        if (ex.n + (size_t)o->max_new > cap) {
            cap = ex.n + (size_t)o->max_new;
            ids = (int*)reallocCheck(ids, cap * sizeof(int));
            out = (int*)reallocCheck(out, cap * sizeof(int));
        }
        for (size_t i = 0; i < ex.n; i++) ids[i] = dataset_id(ex.ids, ds.bytes_per_token, i);
        int len = generate_with(model, &sampler, ids, np, o->max_new, out, NULL, NULL);
        int stopped = len > np && out[len - 1] == stop, ng = len - np - stopped;
        for (int q = 0; q < nr; q++)  // the reference up to its end: <|endoftext|>, or --stop (ChatML: <|im_end|>, its first turn)
            if (ids[np + q] == tok.eot_id || ids[np + q] == stop) { nr = q; break; }
        ByteVec p = {0}, h = {0}, g = {0};
        bytevec_append(&p, "", 0), bytevec_append(&h, "", 0), bytevec_append(&g, "", 0);
        size_t bad;
        if (tokenizer_decode(&tok, ids, (size_t)np, &p, &bad) || tokenizer_decode(&tok, ids + np, (size_t)nr, &g, &bad) ||
            tokenizer_decode(&tok, out + np, (size_t)ng, &h, &bad))
            failf("use the tokenizer the model was trained with", "%s: example %zu has a token the tokenizer does not know", o->data, e);
        hyps[m] = (char*)h.data, refs[m] = (char*)g.data;
        RougeScore rl = rouge_l(refs[m], hyps[m]);
        r.rouge_l += rl.f;
        r.stopped += stopped;
        r.new_tokens += (size_t)(len - np);
        if (o->out_dir) {
            fprintf(w.f, "{\"index\": %zu, \"prompt_tokens\": %d, \"new_tokens\": %d, \"stopped\": %s, \"rouge_l\": %.6f, \"prompt\": ",
                    e, np, len - np, stopped ? "true" : "false", rl.f);
            gm_json_string(w.f, p.data, p.len);
            fputs(", \"reference\": ", w.f);
            gm_json_string(w.f, g.data, g.len);
            fputs(", \"generation\": ", w.f);
            gm_json_string(w.f, h.data, h.len);
            fputs("}\n", w.f);
        }
        free(p.data);
        m++;
    }
    r.seconds = now_seconds() - t0;
    r.examples = m;
    r.bleu = bleu_corpus((const char* const*)hyps, (const char* const*)refs, m, 1, &o->bleu);
    r.rouge_l = m ? r.rouge_l / m : NAN;
    if (o->out_dir) safe_close(&w);
    for (size_t i = 0; i < m; i++) free(hyps[i]), free(refs[i]);
    free(hyps), free(refs), free(ids), free(out);
    sampler_free(&sampler);
    tokenizer_free(&tok);
    dataset_close(&ds);
    return r;
}

// The result as the fields eval adds to its JSON line (", \"bleu\": ..." up to the last field, no braces).
static void gen_eval_print_json(FILE* f, const GenEvalResult* r, const BleuOpts* o) {
    static const char* const smooth[] = {"none", "exp", "floor", "add-k"};
    fprintf(f, ", \"bleu\": ");
    print_json_number(f, r->examples ? r->bleu.score : NAN, 4);
    fprintf(f, ", \"bleu_precisions\": [");
    for (int k = 0; k < o->max_order; k++) fprintf(f, "%s%.4f", k ? ", " : "", r->bleu.precisions[k]);
    fprintf(f, "], \"bleu_bp\": %.6f, \"hyp_len\": %.0f, \"ref_len\": %.0f, \"bleu_smooth\": \"%s\", \"rouge_l\": ",
            r->bleu.bp, r->bleu.sys_len, r->bleu.ref_len, smooth[o->smooth]);
    print_json_number(f, r->rouge_l, 6);
    fprintf(f, ", \"gen_examples\": %zu, \"gen_stopped\": %zu, \"gen_tokens\": %zu, \"gen_seconds\": %.3f",
            r->examples, r->stopped, r->new_tokens, r->seconds);
}

// eval's flags -> GenEvalOpts. Sampling flags make it sample (--temperature, default 1, with --top-k/--top-p);
// without them it is greedy. The generation flags without --generate are an error, not ignored.
static GenEvalOpts gen_eval_opts(const Args* a) {
    static const char* const needs_generate[] = {"--max-new-tokens", "--bleu-smooth", "--tokenizer", "--out", "--temperature", "--top-k", "--top-p", "--stop"};
    for (size_t k = 0; k < sizeof needs_generate / sizeof needs_generate[0]; k++)
        if (!a->generate && flag_given(a, needs_generate[k])) failf("add --generate N (-1: every example)", "%s is for eval --generate", needs_generate[k]);
    if (a->generate && !a->tokenizer) failf("give --tokenizer PATH (the model's)", "--generate decodes the responses to score them");
    int sampled = flag_given(a, "--temperature") || flag_given(a, "--top-k") || flag_given(a, "--top-p");
    GenEvalOpts g = {a->data, a->tokenizer, a->out, a->generate, a->max_new_tokens, sampled ? a->temperature : 0.0f,
                     a->top_k, a->top_p, flag_given(a, "--stop"), a->stop_token, a->seed ? a->seed : 1, bleu_opts_default()};
    if (bleu_smooth_parse(a->bleu_smooth, &g.bleu.smooth)) failf("use none, exp, floor or add-k", "unknown --bleu-smooth '%s'", a->bleu_smooth);
    return g;
}
