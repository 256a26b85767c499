// dataprep: from files you already have to datasets that `train` reads.
//
//   dataprep encode --tokenizer PATH            UTF-8 on stdin -> ids separated by spaces on stdout
//   dataprep decode --tokenizer PATH            ids on stdin -> UTF-8 on stdout
//   dataprep text   --tokenizer PATH --out PREFIX FILES...    language modelling token files
//   dataprep cls    --tokenizer PATH --out PREFIX FILE         classification examples (TSV/CSV/JSONL)
//   dataprep sft    --tokenizer PATH --out PREFIX FILE         instruction tuning examples (Alpaca JSON/JSONL, or
//                                                               chats with --template chatml)
//   dataprep tok    --tokenizer PATH --out PREFIX --train F [--val F] [--test F]   CoNLL token tags (NER)
//   dataprep train-tokenizer --vocab-size V --out FILE FILES...   train a byte-level BPE
//
// PATH is the gpt2_bpe folder (encoder.json + vocab.bpe), a file written by train-tokenizer, or the
// word "bytes". Run `dataprep` alone for every option. The file formats are described in dataset.h.
// Every run prints a summary (and writes it to PREFIX_summary.txt): counts per split, length
// percentiles, labels, what was truncated, dropped or de-duplicated, and vocabulary coverage.
#define _POSIX_C_SOURCE 200809L  // for getline, mmap, clock_gettime (strict -std=c11 hides them)
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <time.h>

#include "tokenizer.c"
#include "dataset.h"
#include "spans.h"    // defines: tag_is_bio (the BIO scheme dataprep tok checks)

// ---------------------------------------------------------------------------- errors and helpers

// Errors go through common.h's fail_at: "where: error: what", then "hint: ...". where is "file:line", a file or a
// command.

static void usage(void) {
    fprintf(stderr,
        "usage: dataprep COMMAND [options]\n"
        "  encode --tokenizer PATH [--allow-special] [--add-token STR]... [--bench]   stdin text -> ids\n"
        "  decode --tokenizer PATH [--add-token STR]...                               stdin ids -> text\n"
        "  text   --tokenizer PATH --out PREFIX [options] FILES...   -> PREFIX_{train,val,test}.bin\n"
        "         --docs file|line|blank   what one document is (default file); <|endoftext|> goes between\n"
        "         --chunk-lines N          split documents into chunks of N lines for the split (default 0: whole)\n"
        "         --format ours|llmc       token file format (default ours, see dataset.h)\n"
        "  cls    --tokenizer PATH --out PREFIX [options] FILE | --train F --val F [--test F]\n"
        "         -> PREFIX_{train,val,test}.ds + PREFIX_labels.txt\n"
        "         --input-format tsv|csv|jsonl (default from the file name)  --no-header\n"
        "         --text-col NAME|INDEX (default text)  --label-col NAME|INDEX (default label)\n"
        "         --labels A,B,...  fix the label ids (other labels are bad rows)\n"
        "         --max-len N (default 1024)  --append-eot  --keep-duplicates  --oversample\n"
        "  sft    --tokenizer PATH --out PREFIX [options] FILE        Alpaca JSON array or JSONL\n"
        "         -> PREFIX_{train,val,test}.ds with a loss mask on the response only\n"
        "         --max-len N (default 1024)  --template alpaca|plain|chatml\n"
        "         chatml: also {\"messages\": [{\"role\", \"content\"}, ...]} rows; loss on assistant turns only\n"
        "         --system TEXT   chatml: a system message for conversations without one (default none)\n"
        "  tok    --tokenizer PATH --out PREFIX --train F [--val F] [--test F]   CoNLL WORD<TAB>TAG, BIO tags\n"
        "         -> PREFIX_{train,val,test}.ds (token labels: a word's first token carries its tag) + PREFIX_tags.txt\n"
        "         --max-len N (default 1024)\n"
        "  train-tokenizer --vocab-size V --out FILE [--verbose] FILES...   byte-level BPE (V=257: bytes only)\n"
        "common: --split TRAIN/VAL/TEST (default 80/10/10)  --seed N (default 1337)  --skip-bad\n"
        "        --encoding utf-8|latin-1   input text: checked UTF-8 (default), or Latin-1 converted to UTF-8\n"
        "        --augment N --aug-ops del,swap,ins,syn,mask --aug-p P --synonyms FILE   (cls train split only)\n");
    exit(EXIT_FAILURE);
}

// ---------------------------------------------------------------------------- text files: UTF-8 or nothing
// Every text input must be UTF-8: bytes that are not (a Latin-1 corpus like MR, TREC or SUBJ) would silently
// become byte tokens the model never sees in real UTF-8 text. So an invalid sequence stops dataprep with
// FILE:LINE; --encoding latin-1 converts the whole file (each byte is its own code point U+0000-U+00FF);
// --skip-bad drops the lines that are not UTF-8, counted in the summary.
static struct { const char* encoding; int skip_bad; size_t lines_skipped, files_converted; char first[600]; } g_text = {"utf-8", 0, 0, 0, ""};

// Length of the valid UTF-8 sequence at s (1-4), or 0 if it is not one: overlong forms, surrogates and code
// points past U+10FFFF are invalid (RFC 3629).
static int utf8_valid_at(const unsigned char* s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!len || (size_t)len > n) return 0;
    for (int k = 1; k < len; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0;   // overlong 3-byte
    if (c == 0xED && s[1] > 0x9F) return 0;   // U+D800-U+DFFF, the surrogates
    if (c == 0xF0 && s[1] < 0x90) return 0;   // overlong 4-byte
    if (c == 0xF4 && s[1] > 0x8F) return 0;   // past U+10FFFF
    return len;
}

// Checks (or converts, or filters) a file's text in place or into a new buffer; returns the text to use.
static unsigned char* text_as_utf8(const char* path, unsigned char* s, size_t* n) {
    if (!strcmp(g_text.encoding, "latin-1")) {
        ByteVec v = {0};
        for (size_t i = 0; i < *n; i++) {
            if (s[i] < 0x80) bytevec_append(&v, s + i, 1);
            else utf8_encode(&v, s[i]);
        }
        free(s);
        *n = v.len;
        g_text.files_converted++;
        return v.data ? v.data : (unsigned char*)callocCheck(1, 1);
    }
    size_t line = 1, w = 0, line_start_w = 0;
    int line_bad = 0;
    for (size_t i = 0; i < *n;) {
        int len = utf8_valid_at(s + i, *n - i);
        if (!len) {
            if (!g_text.skip_bad)
                fail_at(path, "the file is not UTF-8: if it is Latin-1 (ISO 8859-1), pass --encoding latin-1 to convert it; "
                              "or --skip-bad to drop such lines (counted)",
                        "line %zu: byte 0x%02X at column %zu is not valid UTF-8", line, s[i], w - line_start_w + 1);
            if (!line_bad && !g_text.first[0]) snprintf(g_text.first, sizeof g_text.first, "%s:%zu", path, line);
            line_bad = 1;
            i++;
            continue;
        }
        for (int k = 0; k < len; k++) s[w++] = s[i++];
        if (s[w - 1] == '\n') {  // end of a line: keep it, or drop it if it had an invalid byte
            if (line_bad) w = line_start_w, g_text.lines_skipped++;
            line_start_w = w, line_bad = 0, line++;
        }
    }
    if (line_bad) w = line_start_w, g_text.lines_skipped++;
    *n = w;
    return s;
}

static unsigned char* read_file_or_die(const char* path, size_t* n) {
    char err[4300];
    unsigned char* s = tok_read_file(path, n, err, sizeof err);
    if (!s) fail_at(path, "check the path; data lives in ../shared/data/ (see its README.md)", "cannot read this file");
    return text_as_utf8(path, s, n);
}
static unsigned char* read_stdin(size_t* n) {
    ByteVec v = {0};
    unsigned char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, stdin)) > 0) bytevec_append(&v, buf, got);
    bytevec_append(&v, "", 0);
    *n = v.len;
    return v.data;
}

// a seeded random number generator (splitmix64): same seed, same splits, on every machine
static uint64_t rng_next(uint64_t* s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static size_t rng_below(uint64_t* s, size_t n) { return (size_t)((rng_next(s) >> 11) * (1.0 / 9007199254740992.0) * n); }
static double rng_uniform(uint64_t* s) { return (rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }
static void shuffle(size_t* a, size_t n, uint64_t* rng) {  // Fisher-Yates
    for (size_t i = n; i > 1; i--) { size_t j = rng_below(rng, i); size_t t = a[i - 1]; a[i - 1] = a[j]; a[j] = t; }
}
static int cmp_size(const void* a, const void* b) { size_t x = *(const size_t*)a, y = *(const size_t*)b; return x < y ? -1 : x > y; }
static int cmp_int(const void* a, const void* b) { int x = *(const int*)a, y = *(const int*)b; return x < y ? -1 : x > y; }

// ---------------------------------------------------------------------------- options

typedef struct {
    const char* tokenizer;
    const char* out;
    const char* add_tokens[64]; int num_add_tokens;
    int allow_special, bench;
    double split[3];         // train / val / test ratios
    uint64_t seed;
    int skip_bad;
    const char* encoding;    // "utf-8" (checked) or "latin-1" (converted)
    // text
    const char* docs;        // "file", "line", "blank"
    int chunk_lines;
    const char* format;      // "ours" or "llmc"
    // cls / sft
    const char* input_format;
    const char* text_col; const char* label_col;
    int no_header;
    const char* labels;
    int max_len, append_eot, keep_duplicates, oversample;
    const char* given[3];    // --train --val --test files
    const char* template_name;
    const char* system_msg;  // sft --template chatml: --system TEXT, NULL = none
    // augmentation
    int augment; const char* aug_ops; double aug_p; const char* synonyms;
    // train-tokenizer
    int vocab_size, verbose;
    const char* files[1024]; int num_files;
    const char* seen[128]; int num_seen;  // the options given, for "does not apply to this command"
} Options;

// A whole integer in [lo, hi], or a one-line error naming the option and the range.
static long long opt_int(const char* name, const char* v, long long lo, long long hi) {
    char* e;
    errno = 0;
    long long x = strtoll(v, &e, 10);
    if (e == v || *e || errno == ERANGE || x < lo || x > hi)
        fail_at(name, "run dataprep without arguments to see every option", "\"%s\" is not an integer in [%lld, %lld]", v, lo, hi);
    return x;
}
static double opt_float(const char* name, const char* v, double lo, double hi) {
    char* e;
    double x = strtod(v, &e);
    if (e == v || *e || !(x >= lo && x <= hi))
        fail_at(name, "run dataprep without arguments to see every option", "\"%s\" is not a number in [%g, %g]", v, lo, hi);
    return x;
}

static void parse_split(const char* s, double r[3]) {
    if (sscanf(s, "%lf/%lf/%lf", &r[0], &r[1], &r[2]) != 3 || r[0] < 0 || r[1] < 0 || r[2] < 0 || r[0] + r[1] + r[2] <= 0)
        fail_at("--split", "write three non-negative numbers like 80/10/10 (train/val/test)", "cannot read \"%s\"", s);
    double t = r[0] + r[1] + r[2];
    for (int k = 0; k < 3; k++) r[k] /= t;
}

static void parse_options(int argc, char** argv, Options* o) {
    memset(o, 0, sizeof *o);
    o->split[0] = 0.8; o->split[1] = 0.1; o->split[2] = 0.1;
    o->seed = 1337; o->docs = "file"; o->format = "ours"; o->text_col = "text"; o->label_col = "label";
    o->encoding = "utf-8";
    int split_given = 0;
    o->max_len = 1024; o->template_name = "alpaca"; o->aug_p = 0.1; o->aug_ops = "del,swap,ins,syn";
    for (int i = 2; i < argc; i++) {
        const char* a = argv[i];
        #define ARG(name) (strcmp(a, name) == 0 && (i + 1 < argc || (fail_at(name, "give it a value", "missing value"), 0)))
        if (ARG("--tokenizer")) o->tokenizer = argv[++i];
        else if (ARG("--out")) o->out = argv[++i];
        else if (ARG("--add-token")) { if (o->num_add_tokens == 64) fail_at(a, NULL, "at most 64 added tokens"); o->add_tokens[o->num_add_tokens++] = argv[++i]; }
        else if (strcmp(a, "--allow-special") == 0) o->allow_special = 1;
        else if (strcmp(a, "--bench") == 0) o->bench = 1;
        else if (ARG("--split")) parse_split(argv[++i], o->split), split_given = 1;
        else if (ARG("--seed")) o->seed = (uint64_t)opt_int(a, argv[++i], 0, INT64_MAX);
        else if (strcmp(a, "--skip-bad") == 0) o->skip_bad = 1;
        else if (ARG("--encoding")) o->encoding = argv[++i];
        else if (ARG("--docs")) o->docs = argv[++i];
        else if (ARG("--chunk-lines")) o->chunk_lines = (int)opt_int(a, argv[++i], 0, 1000000000);
        else if (ARG("--format")) o->format = argv[++i];
        else if (ARG("--input-format")) o->input_format = argv[++i];
        else if (ARG("--text-col")) o->text_col = argv[++i];
        else if (ARG("--label-col")) o->label_col = argv[++i];
        else if (strcmp(a, "--no-header") == 0) o->no_header = 1;
        else if (ARG("--labels")) o->labels = argv[++i];
        else if (ARG("--max-len")) o->max_len = (int)opt_int(a, argv[++i], 0, 1000000000);
        else if (strcmp(a, "--append-eot") == 0) o->append_eot = 1;
        else if (strcmp(a, "--keep-duplicates") == 0) o->keep_duplicates = 1;
        else if (strcmp(a, "--oversample") == 0) o->oversample = 1;
        else if (ARG("--train")) o->given[0] = argv[++i];
        else if (ARG("--val")) o->given[1] = argv[++i];
        else if (ARG("--test")) o->given[2] = argv[++i];
        else if (ARG("--template")) o->template_name = argv[++i];
        else if (ARG("--system")) o->system_msg = argv[++i];
        else if (ARG("--augment")) o->augment = (int)opt_int(a, argv[++i], 0, 1000);
        else if (ARG("--aug-ops")) o->aug_ops = argv[++i];
        else if (ARG("--aug-p")) o->aug_p = opt_float(a, argv[++i], 0.0, 1.0);
        else if (ARG("--synonyms")) o->synonyms = argv[++i];
        else if (ARG("--vocab-size")) o->vocab_size = (int)opt_int(a, argv[++i], 0, 4194304);
        else if (strcmp(a, "--verbose") == 0) o->verbose = 1;
        else if (a[0] == '-' && a[1] == '-') fail_at(a, "run dataprep without arguments to see every option", "unknown option");
        else { if (o->num_files == 1024) fail_at(a, NULL, "at most 1024 input files"); o->files[o->num_files++] = a; }
        if (a[0] == '-' && a[1] == '-' && o->num_seen < 128) o->seen[o->num_seen++] = a;
        #undef ARG
    }
    if (strcmp(o->docs, "file") && strcmp(o->docs, "line") && strcmp(o->docs, "blank"))
        fail_at("--docs", "use file, line or blank", "unknown value \"%s\"", o->docs);
    if (strcmp(o->format, "ours") && strcmp(o->format, "llmc")) fail_at("--format", "use ours or llmc", "unknown value \"%s\"", o->format);
    if (strcmp(o->encoding, "utf-8") && strcmp(o->encoding, "latin-1"))
        fail_at("--encoding", "use utf-8 (the default: invalid bytes are an error) or latin-1 (ISO 8859-1, converted to UTF-8)", "unknown value \"%s\"", o->encoding);
    int given = o->given[0] || o->given[1] || o->given[2];
    if (given && split_given)  // the files given are the splits: a ratio would be silently ignored
        fail_at("--split", "with --train/--val/--test the splits are those files: drop --split, or give one FILE to split",
                "cannot apply with --train/--val/--test");
}

static void load_tokenizer(Tokenizer* t, const Options* o) {
    if (!o->tokenizer) fail_at("--tokenizer", "pass --tokenizer ../shared/data/gpt2_bpe (or a trained tokenizer file, or bytes)", "missing");
    tokenizer_load_or_die(t, o->tokenizer);
    for (int k = 0; k < o->num_add_tokens; k++) tokenizer_add_special(t, o->add_tokens[k]);
}

// ---------------------------------------------------------------------------- the summary report
// printed to stdout and written to PREFIX_summary.txt

static SafeWriter g_report;  // g_report.f is NULL until report_open
static void report(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt); vprintf(fmt, ap); va_end(ap);
    if (g_report.f) { va_start(ap, fmt); vfprintf(g_report.f, fmt, ap); va_end(ap); }
}
static void report_open(const char* prefix) {
    char path[4200];
    snprintf(path, sizeof path, "%s_summary.txt", prefix);
    safe_open(&g_report, path);  // a temp file until report_close; removed if dataprep fails before that
}
static void report_close(void) {
    if (!g_report.f) return;
    if (g_text.lines_skipped) report("lines not UTF-8, skipped (--skip-bad): %zu  first: %s\n", g_text.lines_skipped, g_text.first);
    if (g_text.files_converted) report("converted from Latin-1 (--encoding latin-1): %zu file(s)\n", g_text.files_converted);
    safe_close(&g_report);
    g_report.f = NULL;
    printf("wrote %s\n", g_report.path);
}
// lengths: p50 / p90 / p99 / max (sorts a copy)
static void report_lengths(const char* what, const size_t* len, size_t n) {
    if (n == 0) { report("  %-10s none\n", what); return; }
    size_t* s = mallocCheck(n * sizeof(size_t));
    memcpy(s, len, n * sizeof(size_t));
    qsort(s, n, sizeof(size_t), cmp_size);
    report("  %-10s min %zu  p50 %zu  p90 %zu  p99 %zu  max %zu\n", what, s[0], s[(n - 1) / 2], s[(size_t)(0.9 * (n - 1))], s[(size_t)(0.99 * (n - 1))], s[n - 1]);
    free(s);
}
// distinct ids used, out of V
static void report_coverage(const unsigned char* seen, int V) {
    int used = 0;
    for (int i = 0; i < V; i++) used += seen[i];
    report("vocabulary coverage: %d of %d token ids appear (%.1f%%)\n", used, V, 100.0 * used / V);
}

static void write_or_die(DsWriter* w) {
    char err[4300] = "";
    if (ds_writer_close(w, err, sizeof err)) fail_at(w->path, "is the disk full, or the folder not writable?", "%s", err);
    printf("wrote %s\n", w->path);
}
static void open_or_die(DsWriter* w, const char* path, int magic, int kind, int V, int K) {
    char err[4300] = "";
    if (ds_writer_open(w, path, magic, kind, V, K, err, sizeof err))
        fail_at(path, "does the folder of --out exist, and is it writable?", "%s", err);
}
static const char* split_name[3] = {"train", "val", "test"};

// assigns n units to splits with the given ratios: exact counts (rounded), seeded shuffle
static void assign_splits(unsigned char* split_of, size_t n, const double r[3], uint64_t* rng) {
    size_t* idx = mallocCheck((n ? n : 1) * sizeof(size_t));
    for (size_t i = 0; i < n; i++) idx[i] = i;
    shuffle(idx, n, rng);
    size_t nval = (size_t)floor(n * r[1] + 0.5), ntest = (size_t)floor(n * r[2] + 0.5);
    if (nval + ntest > n) ntest = n - nval;
    size_t ntrain = n - nval - ntest;
    for (size_t k = 0; k < n; k++) split_of[idx[k]] = k < ntrain ? 0 : k < ntrain + nval ? 1 : 2;
    free(idx);
}

// ---------------------------------------------------------------------------- encode / decode

static int cmd_encode(const Options* o) {
    Tokenizer t;
    load_tokenizer(&t, o);
    size_t n;
    unsigned char* text = read_stdin(&n);
    IntVec ids = {0};
    double t0 = now_seconds();
    tokenizer_encode(&t, text, n, o->allow_special, &ids);
    double dt = now_seconds() - t0;
    // print through one buffer: printf per id would dominate the run time
    ByteVec out = {0};
    char num[16];
    for (size_t i = 0; i < ids.len; i++) {
        int k = snprintf(num, sizeof num, i ? " %d" : "%d", ids.data[i]);
        bytevec_append(&out, num, (size_t)k);
    }
    bytevec_push(&out, '\n');
    if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0) fail_at("stdout", NULL, "write failed");
    if (o->bench) fprintf(stderr, "encode: %zu bytes -> %zu tokens in %.1f ms (%.2f MB/s)\n", n, ids.len, dt * 1e3, n / 1e6 / (dt > 0 ? dt : 1e-9));
    free(out.data); free(ids.data); free(text); tokenizer_free(&t);
    return 0;
}

static int cmd_decode(const Options* o) {
    Tokenizer t;
    load_tokenizer(&t, o);
    size_t n;
    unsigned char* text = read_stdin(&n);
    IntVec ids = {0};
    int line = 1;
    for (size_t i = 0; i < n;) {
        if (isspace(text[i])) { line += text[i] == '\n'; i++; continue; }
        size_t j = i;
        while (j < n && !isspace(text[j])) j++;
        char buf[32];
        size_t len = j - i < sizeof buf - 1 ? j - i : sizeof buf - 1;
        memcpy(buf, text + i, len);
        buf[len] = 0;
        char* end;
        errno = 0;
        long v = strtol(buf, &end, 10);
        char where[64];
        snprintf(where, sizeof where, "stdin:%d", line);
        if (*end || j - i >= sizeof buf - 1 || errno) fail_at(where, "decode reads token ids separated by spaces or newlines", "\"%s\" is not a token id", buf);
        if (v < 0 || v >= t.vocab_size) fail_at(where, "was it encoded with another tokenizer?", "token id %ld is outside this tokenizer's vocabulary [0, %d)", v, t.vocab_size);
        intvec_push(&ids, (int)v);
        i = j;
    }
    ByteVec out = {0};
    tokenizer_decode(&t, ids.data, ids.len, &out, NULL);
    if ((out.len && fwrite(out.data, 1, out.len, stdout) != out.len) || fflush(stdout) != 0) fail_at("stdout", NULL, "write failed");
    free(out.data); free(ids.data); free(text); tokenizer_free(&t);
    return 0;
}

// ---------------------------------------------------------------------------- text: LM token files

// a unit of splitting: a document, or a chunk of lines of one
typedef struct { const unsigned char* p; size_t n; size_t doc, chunk; } Unit;
typedef struct { Unit* data; size_t len, cap; } UnitVec;
static void unit_push(UnitVec* v, Unit u) {
    if (v->len == v->cap) { v->cap = v->cap ? 2 * v->cap : 1024; v->data = reallocCheck(v->data, v->cap * sizeof(Unit)); }
    v->data[v->len++] = u;
}
// end of the line starting at i (just after its '\n', or n)
static size_t line_end(const unsigned char* s, size_t n, size_t i) {
    const unsigned char* nl = memchr(s + i, '\n', n - i);
    return nl ? (size_t)(nl - s) + 1 : n;
}
static int is_blank_line(const unsigned char* s, size_t a, size_t b) {
    for (size_t i = a; i < b; i++) if (!isspace(s[i])) return 0;
    return 1;
}
// adds one document's units (chunks of chunk_lines lines, or the whole document)
static void add_document(UnitVec* units, const unsigned char* p, size_t n, size_t doc, int chunk_lines) {
    if (n == 0) return;
    if (chunk_lines <= 0) { unit_push(units, (Unit){p, n, doc, 0}); return; }
    size_t chunk = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        for (int k = 0; k < chunk_lines && j < n; k++) j = line_end(p, n, j);
        unit_push(units, (Unit){p + i, j - i, doc, chunk++});
        i = j;
    }
}

static int cmd_text(const Options* o) {
    if (!o->out) fail_at("text", "pass --out PREFIX, e.g. --out data/tiny (writes data/tiny_train.bin, ...)", "missing --out");
    if (o->num_files == 0) fail_at("text", "name one or more text files after the options", "no input files");
    Tokenizer t;
    load_tokenizer(&t, o);
    if (t.eot_id < 0) fail_at(o->tokenizer, "this tokenizer has no <|endoftext|>; add it with --add-token '<|endoftext|>'", "no end-of-text token");
    report_open(o->out);
    // read every file and cut it into documents, then units
    unsigned char** texts = mallocCheck(o->num_files * sizeof(unsigned char*));
    UnitVec units = {0};
    size_t ndocs = 0, total_bytes = 0;
    for (int f = 0; f < o->num_files; f++) {
        size_t n;
        texts[f] = read_file_or_die(o->files[f], &n);
        total_bytes += n;
        const unsigned char* s = texts[f];
        if (strcmp(o->docs, "file") == 0) {
            if (n) add_document(&units, s, n, ndocs++, o->chunk_lines);
        } else if (strcmp(o->docs, "line") == 0) {  // each non-empty line; its '\n' is dropped
            for (size_t i = 0; i < n;) {
                size_t e = line_end(s, n, i), len = e - i - (e > i && s[e - 1] == '\n');
                if (len && s[i + len - 1] == '\r') len--;
                if (len && !is_blank_line(s, i, i + len)) add_document(&units, s + i, len, ndocs++, 0);
                i = e;
            }
        } else {  // blank: documents separated by one or more blank lines
            size_t start = 0;
            for (size_t i = 0; i <= n;) {
                size_t e = i < n ? line_end(s, n, i) : n;
                if (i == n || is_blank_line(s, i, e)) {
                    if (i > start) add_document(&units, s + start, i - start, ndocs++, o->chunk_lines);
                    start = e;
                    if (i == n) break;
                }
                i = e;
            }
        }
    }
    if (total_bytes == 0 || units.len == 0) fail_at(o->files[0], "the input files are empty (or only blank lines)", "no text to encode");
    uint64_t rng = o->seed;
    unsigned char* split_of = mallocCheck(units.len);
    assign_splits(split_of, units.len, o->split, &rng);
    size_t per_split_units[3] = {0};
    for (size_t u = 0; u < units.len; u++) per_split_units[split_of[u]]++;
    for (int k = 0; k < 3; k++) if (o->split[k] > 0 && per_split_units[k] == 0)
        fail_at(o->files[0], "split by line chunks: --chunk-lines 100 (or --docs line / blank), or change --split",
             "the %s split got no text: only %zu unit(s) to split", split_name[k], units.len);
    // encode unit by unit into the three writers
    DsWriter w[3];
    int llmc = strcmp(o->format, "llmc") == 0;
    char path[4200];
    for (int k = 0; k < 3; k++) if (o->split[k] > 0) {
        snprintf(path, sizeof path, "%s_%s.bin", o->out, split_name[k]);
        open_or_die(&w[k], path, llmc ? LLMC_MAGIC : TOKENS_MAGIC, 0, t.vocab_size, 0);
    }
    size_t last_doc[3], last_chunk[3], docs_in[3] = {0};
    int have_last[3] = {0};
    size_t* doc_tokens = mallocCheck(ndocs * sizeof(size_t));
    memset(doc_tokens, 0, ndocs * sizeof(size_t));
    unsigned char* seen = mallocCheck((size_t)t.vocab_size);
    memset(seen, 0, (size_t)t.vocab_size);
    IntVec ids = {0};
    double t0 = now_seconds();
    for (size_t u = 0; u < units.len; u++) {
        int k = split_of[u];
        Unit* un = &units.data[u];
        ids.len = 0;
        // <|endoftext|> before every unit that does not continue the previous one in this split
        int continues = have_last[k] && last_doc[k] == un->doc && last_chunk[k] + 1 == un->chunk;
        if (!continues) { intvec_push(&ids, t.eot_id); docs_in[k]++; }
        tokenizer_encode(&t, un->p, un->n, o->allow_special, &ids);
        ds_write_tokens(&w[k], ids.data, ids.len);
        doc_tokens[un->doc] += ids.len - !continues;
        for (size_t i = 0; i < ids.len; i++) seen[ids.data[i]] = 1;
        have_last[k] = 1; last_doc[k] = un->doc; last_chunk[k] = un->chunk;
    }
    double dt = now_seconds() - t0;
    report("dataprep text: %d file(s), %zu bytes, %zu documents (--docs %s), %zu units (--chunk-lines %d), seed %llu\n",
           o->num_files, total_bytes, ndocs, o->docs, units.len, o->chunk_lines, (unsigned long long)o->seed);
    report("tokenizer: %s (V=%d, <|endoftext|>=%d), format %s\n", o->tokenizer, t.vocab_size, t.eot_id, o->format);
    uint64_t total = 0;
    for (int k = 0; k < 3; k++) {
        if (o->split[k] <= 0) { report("  %-5s (ratio 0, not written)\n", split_name[k]); continue; }
        report("  %-5s %10llu tokens  %6zu units  %6zu <|endoftext|>-separated runs\n", split_name[k], (unsigned long long)w[k].count, per_split_units[k], docs_in[k]);
        total += w[k].count;
    }
    report("encoded in %.2f s (%.2f MB/s); %.3f tokens per byte\n", dt, total_bytes / 1e6 / (dt > 0 ? dt : 1e-9), (double)total / total_bytes);
    report_lengths("doc tokens", doc_tokens, ndocs);
    report_coverage(seen, t.vocab_size);
    for (int k = 0; k < 3; k++) if (o->split[k] > 0) write_or_die(&w[k]);
    report_close();
    for (int f = 0; f < o->num_files; f++) free(texts[f]);
    free(texts); free(units.data); free(split_of); free(doc_tokens); free(seen); free(ids.data); tokenizer_free(&t);
    return 0;
}

// ---------------------------------------------------------------------------- reading rows: TSV, CSV, JSONL, JSON
// A reader returns, for every record, the values of the columns asked for (by name or index),
// with the line the record starts on. A bad record (wrong column count, unbalanced quotes,
// invalid JSON, missing field) either stops the program with "file:line: what" or, with
// --skip-bad, is counted and skipped.

#define MAX_COLS 4
typedef struct { char* v[MAX_COLS]; size_t len[MAX_COLS]; int line; } Row;
typedef struct { Row* data; size_t len, cap; } RowVec;
typedef struct { const char* spec[MAX_COLS]; int optional[MAX_COLS]; int ncols; } ColSpec;  // names or indices

typedef struct { int skip_bad; size_t bad; char first_bad[512]; } BadRows;

static void bad_row(BadRows* b, const char* file, int line, const char* hint, const char* fmt, ...) {
    char what[400], where[4200];
    va_list ap;
    va_start(ap, fmt); vsnprintf(what, sizeof what, fmt, ap); va_end(ap);
    snprintf(where, sizeof where, "%s:%d", file, line);
    if (!b->skip_bad) fail_at(where, hint, "%s", what);
    if (b->bad++ == 0) snprintf(b->first_bad, sizeof b->first_bad, "%.200s: %.300s", where, what);
}

static void row_push(RowVec* rows, Row r) {
    if (rows->len == rows->cap) { rows->cap = rows->cap ? 2 * rows->cap : 1024; rows->data = reallocCheck(rows->data, rows->cap * sizeof(Row)); }
    rows->data[rows->len++] = r;
}
static void row_free(Row* r) { for (int c = 0; c < MAX_COLS; c++) free(r->v[c]); }
static char* dup_bytes(const void* p, size_t n) {
    char* s = mallocCheck(n + 1);
    if (n) memcpy(s, p, n);
    s[n] = 0;
    return s;
}
static int is_index(const char* s) { if (!*s) return 0; for (; *s; s++) if (!isdigit((unsigned char)*s)) return 0; return 1; }

// one record of fields (TSV or CSV)
typedef struct { ByteVec* f; int nf, cap; } Fields;
static ByteVec* fields_add(Fields* fs) {
    if (fs->nf == fs->cap) {
        fs->cap = fs->cap ? 2 * fs->cap : 16;
        fs->f = reallocCheck(fs->f, (size_t)fs->cap * sizeof(ByteVec));
        for (int k = fs->nf; k < fs->cap; k++) fs->f[k] = (ByteVec){0};
    }
    ByteVec* b = &fs->f[fs->nf++];
    b->len = 0;
    bytevec_append(b, "", 0);
    return b;
}

// Reads the next TSV or CSV record at or after *pos (empty lines are skipped). Returns 1 with the
// fields, 0 at the end, -1 on a malformed record (message in *err). *start is where the record
// begins; *pos moves past the record (past the rest of its line after an error, so it can be skipped).
// TSV: fields split at tabs, no quoting (as GLUE's files). CSV: RFC 4180: fields split at commas,
// a field in double quotes may hold commas, newlines and "" (one quote); a record ends at LF or CRLF.
static int next_record(const unsigned char* s, size_t n, size_t* pos, int csv, Fields* fs, size_t* start, const char** err) {
    fs->nf = 0;
    size_t i = *pos;
    while (i < n && (s[i] == '\n' || (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n'))) i++;
    *start = i;
    if (i >= n) { *pos = n; return 0; }
    ByteVec* f = fields_add(fs);
    #define AT_EOL(i) (s[i] == '\n' || (s[i] == '\r' && (i) + 1 < n && s[(i) + 1] == '\n'))
    if (!csv) {
        for (; i < n && !AT_EOL(i); i++) {
            if (s[i] == '\t') f = fields_add(fs);
            else bytevec_push(f, s[i]);
        }
    } else {
        while (1) {
            if (i < n && s[i] == '"') {  // quoted field
                i++;
                while (1) {
                    if (i >= n) { *err = "unbalanced quotes: a quoted field is never closed"; *pos = n; return -1; }
                    if (s[i] == '"') {
                        if (i + 1 < n && s[i + 1] == '"') { bytevec_push(f, '"'); i += 2; continue; }
                        i++;
                        break;
                    }
                    bytevec_push(f, s[i++]);
                }
                if (i < n && s[i] != ',' && !AT_EOL(i)) {
                    *err = "text after a closing quote (a quote inside a quoted field must be doubled: \"\")";
                    *pos = line_end(s, n, i);
                    return -1;
                }
            } else {  // plain field
                while (i < n && s[i] != ',' && !AT_EOL(i)) {
                    if (s[i] == '"') {
                        *err = "quote inside an unquoted field (RFC 4180: quote the whole field and double inner quotes)";
                        *pos = line_end(s, n, i);
                        return -1;
                    }
                    bytevec_push(f, s[i++]);
                }
            }
            if (i < n && s[i] == ',') { i++; f = fields_add(fs); continue; }
            break;
        }
    }
    #undef AT_EOL
    if (i < n && s[i] == '\r') i++;
    if (i < n && s[i] == '\n') i++;
    *pos = i;
    return 1;
}

// counts the newlines in s[*from .. to) into *line and moves *from to to
static void count_lines(const unsigned char* s, size_t* from, size_t to, int* line) {
    for (; *from < to; (*from)++) *line += s[*from] == '\n';
}

// JSON value of a field as text: strings as they are, numbers and booleans written out
static int json_field_text(JsonScan* js, ByteVec* out) {
    int type = jscan_peek(js);
    if (type == '"') return jscan_string(js, out);
    out->len = 0;
    bytevec_append(out, "", 0);
    size_t start = js->pos;
    if (type == 'n') { double d; if (jscan_number(js, &d)) return -1; }
    else if (type == 't' || type == 'f') { if (jscan_literal(js, type == 't' ? "true" : "false")) return -1; }
    else return jscan_fail(js, "a field must be a string, number or boolean");
    bytevec_append(out, js->s + start, js->pos - start);
    return 0;
}

// reads one JSON object, keeping the fields named in cols. Returns 0 or -1 (js->err set).
static int json_object_fields(JsonScan* js, const ColSpec* cols, Row* r, int* found) {
    ByteVec key = {0}, val = {0};
    int rc = 0;
    for (int c = 0; c < cols->ncols; c++) found[c] = 0;
    if (jscan_expect(js, '{')) { rc = jscan_fail(js, "expected a JSON object {...}"); goto done; }
    jscan_ws(js);
    if (js->pos < js->n && js->s[js->pos] == '}') { js->pos++; goto done; }
    while (1) {
        if ((rc = jscan_string(js, &key)) || (rc = jscan_expect(js, ':'))) goto done;
        int want = -1;
        for (int c = 0; c < cols->ncols; c++) if (strcmp((char*)key.data, cols->spec[c]) == 0) want = c;
        if (want >= 0) {
            if ((rc = json_field_text(js, &val))) goto done;
            free(r->v[want]);
            r->v[want] = dup_bytes(val.data, val.len);
            r->len[want] = val.len;
            found[want] = 1;
        } else if ((rc = jscan_skip(js, 0))) goto done;
        jscan_ws(js);
        if (js->pos < js->n && js->s[js->pos] == ',') { js->pos++; continue; }
        rc = jscan_expect(js, '}');
        break;
    }
done:
    free(key.data); free(val.data);
    return rc;
}

static const char* guess_format(const char* path, const char* given) {
    if (given) {
        if (strcmp(given, "tsv") && strcmp(given, "csv") && strcmp(given, "jsonl") && strcmp(given, "json"))
            fail_at("--input-format", "use tsv, csv, jsonl or json", "unknown value \"%s\"", given);
        return given;
    }
    const char* dot = strrchr(path, '.');
    if (dot && strcmp(dot, ".csv") == 0) return "csv";
    if (dot && (strcmp(dot, ".jsonl") == 0 || strcmp(dot, ".json") == 0)) return "jsonl";  // also reads a JSON array
    return "tsv";
}

// one JSON object into a row; missing optional fields become ""
static void json_row(JsonScan* js, const char* path, const ColSpec* cols, BadRows* bad, RowVec* rows, int* ok) {
    Row r = {{0}, {0}, js->line};
    int found[MAX_COLS];
    *ok = 1;
    if (json_object_fields(js, cols, &r, found)) {
        bad_row(bad, path, js->line, "each record must be one JSON object; check quotes, commas and brackets", "invalid JSON: %s", js->err);
        row_free(&r);
        *ok = 0;
        return;
    }
    for (int c = 0; c < cols->ncols; c++) if (!found[c]) {
        if (cols->optional[c]) { r.v[c] = dup_bytes("", 0); continue; }
        bad_row(bad, path, r.line, "every record needs this field (choose the field names with the --*-col options)", "missing field \"%s\"", cols->spec[c]);
        row_free(&r);
        return;
    }
    row_push(rows, r);
}

// reads all records of a file into rows (the values of the wanted columns); *records counts every
// record seen, good or bad
static void read_rows(const char* path, const char* format, const ColSpec* cols, int no_header, BadRows* bad, RowVec* rows, size_t* records) {
    size_t n;
    unsigned char* s = read_file_or_die(path, &n);
    *records = 0;
    size_t bom = n >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF ? 3 : 0;  // UTF-8 byte order mark
    if (n == bom) fail_at(path, "the file is empty; check the path", "no rows");
    if (strcmp(format, "jsonl") == 0 || strcmp(format, "json") == 0) {
        for (int c = 0; c < cols->ncols; c++) if (is_index(cols->spec[c]))
            fail_at(cols->spec[c], "JSON fields are chosen by name, e.g. --text-col text", "a column index cannot select a JSON field");
        JsonScan js = {s, n, bom, 1, NULL};
        jscan_ws(&js);
        if (js.pos < n && s[js.pos] == '[') {  // a JSON array of objects (Alpaca's files)
            js.pos++;
            jscan_ws(&js);
            if (js.pos < n && s[js.pos] == ']') js.pos++;
            else while (1) {
                int ok;
                (*records)++;
                json_row(&js, path, cols, bad, rows, &ok);
                if (!ok) { bad_row(bad, path, js.line, NULL, "cannot find the next record after invalid JSON; the rest of the file is skipped"); break; }
                jscan_ws(&js);
                if (js.pos < n && s[js.pos] == ',') { js.pos++; continue; }
                if (js.pos < n && s[js.pos] == ']') { js.pos++; break; }
                bad_row(bad, path, js.line, "objects in a JSON array are separated by commas", "invalid JSON: expected ',' or ']'");
                break;
            }
        } else {  // JSONL: one object per line
            int line = 1;
            for (size_t i = bom; i < n; line++) {
                size_t e = line_end(s, n, i);
                if (!is_blank_line(s, i, e)) {
                    JsonScan one = {s, e, i, line, NULL};
                    int ok;
                    size_t before = rows->len;
                    (*records)++;
                    json_row(&one, path, cols, bad, rows, &ok);
                    jscan_ws(&one);
                    int pushed = rows->len > before;  // a record missing a field was reported and not kept
                    if (pushed && one.pos < e) bad_row(bad, path, line, "JSONL holds exactly one JSON object per line", "invalid JSON: text after the object");
                    if (pushed && one.pos < e && bad->skip_bad) row_free(&rows->data[--rows->len]);
                }
                i = e;
            }
        }
        free(s);
        return;
    }
    int csv = strcmp(format, "csv") == 0;
    Fields fs = {0};
    size_t pos = bom, counted = 0, start;
    int line = 1, idx[MAX_COLS], ncols = -1;
    const char* err = NULL;
    for (int c = 0; c < cols->ncols; c++) idx[c] = is_index(cols->spec[c]) ? atoi(cols->spec[c]) : -1;
    if (!no_header) {  // the header row names the columns
        int rc = next_record(s, n, &pos, csv, &fs, &start, &err);
        if (rc <= 0) fail_at(path, "the first row must be a header (or pass --no-header)", "%s", rc == 0 ? "no header row" : err);
        ncols = fs.nf;
        for (int c = 0; c < cols->ncols; c++) {
            if (idx[c] >= 0) continue;
            for (int k = 0; k < fs.nf; k++) if (strcmp((char*)fs.f[k].data, cols->spec[c]) == 0) idx[c] = k;
            if (idx[c] < 0) {
                char names[512] = "";
                for (int k = 0; k < fs.nf && strlen(names) < 400; k++) { strcat(names, k ? ", " : ""); strncat(names, (char*)fs.f[k].data, 60); }
                fail_at(path, "pick columns with --text-col / --label-col: a name from the header, or an index from 0",
                     "no column named \"%s\" in the header (columns: %s)", cols->spec[c], names);
            }
        }
    } else {
        for (int c = 0; c < cols->ncols; c++) if (idx[c] < 0)
            fail_at(cols->spec[c], "without a header, choose columns by index, e.g. --label-col 0 --text-col 1", "a column name needs a header row");
    }
    while (1) {
        int rc = next_record(s, n, &pos, csv, &fs, &start, &err);
        if (rc == 0) break;
        count_lines(s, &counted, start, &line);  // line = where this record starts
        (*records)++;
        if (rc < 0) { bad_row(bad, path, line, "fix the quoting, or pass --skip-bad to skip such rows", "%s", err); continue; }
        if (ncols < 0) ncols = fs.nf;  // no header: the first record sets the column count
        if (fs.nf != ncols) {
            bad_row(bad, path, line, "every row needs as many columns as the header (a stray tab or comma?)", "wrong column count: expected %d, found %d", ncols, fs.nf);
            continue;
        }
        Row r = {{0}, {0}, line};
        int ok = 1;
        for (int c = 0; c < cols->ncols && ok; c++) {
            if (idx[c] >= fs.nf) { bad_row(bad, path, line, "column indices count from 0", "column %d does not exist (rows have %d)", idx[c], fs.nf); ok = 0; break; }
            r.v[c] = dup_bytes(fs.f[idx[c]].data, fs.f[idx[c]].len);
            r.len[c] = fs.f[idx[c]].len;
        }
        if (ok) row_push(rows, r); else row_free(&r);
    }
    for (int k = 0; k < fs.cap; k++) free(fs.f[k].data);
    free(fs.f);
    free(s);
}

// ---------------------------------------------------------------------------- labels

typedef struct { char** names; int count; int fixed; } LabelMap;

static int label_find(const LabelMap* m, const char* name) {
    for (int k = 0; k < m->count; k++) if (strcmp(m->names[k], name) == 0) return k;
    return -1;
}
static void label_add(LabelMap* m, const char* name) {
    if (label_find(m, name) >= 0) return;
    if (m->count >= 10000) fail_at("labels", "is --label-col the text column by mistake?", "more than 10000 distinct labels");
    m->names = reallocCheck(m->names, (size_t)(m->count + 1) * sizeof(char*));
    m->names[m->count++] = dup_bytes(name, strlen(name));
}
static int all_integers(const LabelMap* m) {
    for (int k = 0; k < m->count; k++) {
        const char* s = m->names[k];
        if (*s == '-') s++;
        if (!is_index(s) || strlen(s) > 9) return 0;
    }
    return 1;
}
static int cmp_label_num(const void* a, const void* b) { return cmp_int(&(int){atoi(*(char* const*)a)}, &(int){atoi(*(char* const*)b)}); }
static int cmp_label_str(const void* a, const void* b) { return strcmp(*(char* const*)a, *(char* const*)b); }

// trims ASCII whitespace at both ends, in place
static size_t trim(char* s, size_t n) {
    size_t a = 0;
    while (a < n && isspace((unsigned char)s[a])) a++;
    while (n > a && isspace((unsigned char)s[n - 1])) n--;
    memmove(s, s + a, n - a);
    s[n - a] = 0;
    return n - a;
}

// ---------------------------------------------------------------------------- augmentation (EDA)
// Easy Data Augmentation (Wei & Zou, 2019) on whitespace-separated words, plus token masking:
//   del   delete each word with probability p (at least one word stays)
//   swap  swap two random words, n = max(1, p * words) times
//   ins   insert a synonym of a random word at a random place, n times (a random word of the
//         sentence when no synonym file is given or the words have none)
//   syn   replace n random words that have synonyms by one of them
//   mask  replace each token by <|mask|> with probability p (after tokenizing)
// Each augmented copy applies one operation chosen at random. Only the training split is ever
// augmented; validation and test data stay as they are. Seeded like everything else.

enum { AUG_DEL, AUG_SWAP, AUG_INS, AUG_SYN, AUG_MASK, AUG_NUM };
static const char* aug_name[AUG_NUM] = {"del", "swap", "ins", "syn", "mask"};

typedef struct {
    int enabled[AUG_NUM]; int ops[AUG_NUM]; int nops;
    double p;
    StrMap syn_index;         // lower-cased word -> first entry in syn_list
    int* syn_next;            // linked list over entries of the same word
    char** syn_word;          // entry -> a synonym
    int num_syn;
    unsigned char* syn_text;  // the synonym file (words point into it)
    int mask_id;
    size_t made[AUG_NUM];
} Augmenter;

// synonym file: one group per line, words separated by commas or whitespace; every word of a
// group is a synonym of the others. Lines starting with # are comments. Matching is by lower case.
static void aug_load_synonyms(Augmenter* a, const char* path) {
    size_t n;
    a->syn_text = read_file_or_die(path, &n);
    for (size_t i = 0; i < n; i++) a->syn_text[i] = (unsigned char)tolower(a->syn_text[i]);
    strmap_init(&a->syn_index, 1024);
    char* words[256];
    for (size_t i = 0; i < n;) {
        size_t e = line_end(a->syn_text, n, i);
        int nw = 0;
        if (a->syn_text[i] != '#') {
            for (size_t k = i; k < e;) {
                while (k < e && (isspace(a->syn_text[k]) || a->syn_text[k] == ',')) a->syn_text[k++] = 0;
                if (k < e && nw < 256) words[nw++] = (char*)a->syn_text + k;
                while (k < e && !isspace(a->syn_text[k]) && a->syn_text[k] != ',') k++;
            }
        }
        if (e > i) a->syn_text[e - 1] = a->syn_text[e - 1] == '\n' ? 0 : a->syn_text[e - 1];
        for (int x = 0; x < nw; x++) for (int y = 0; y < nw; y++) if (x != y) {
            a->syn_next = reallocCheck(a->syn_next, (size_t)(a->num_syn + 1) * sizeof(int));
            a->syn_word = reallocCheck(a->syn_word, (size_t)(a->num_syn + 1) * sizeof(char*));
            const unsigned char* w = (const unsigned char*)words[x];
            int head = strmap_get(&a->syn_index, w, strlen(words[x]));
            a->syn_next[a->num_syn] = head;
            a->syn_word[a->num_syn] = words[y];
            strmap_put(&a->syn_index, w, strlen(words[x]), a->num_syn);
            a->num_syn++;
        }
        i = e;
    }
    if (a->num_syn == 0) fail_at(path, "write groups of synonyms, one group per line: good, fine, nice", "no synonyms found");
}
// a random synonym of word (NULL if none)
static const char* aug_synonym(Augmenter* a, const char* word, uint64_t* rng) {
    if (!a->syn_index.slots) return NULL;
    char low[256];
    size_t n = strlen(word);
    if (n >= sizeof low) return NULL;
    for (size_t i = 0; i <= n; i++) low[i] = (char)tolower((unsigned char)word[i]);
    int e = strmap_get(&a->syn_index, (const unsigned char*)low, n), count = 0;
    for (int k = e; k >= 0; k = a->syn_next[k]) count++;
    if (count == 0) return NULL;
    int pick = (int)rng_below(rng, (size_t)count);
    for (int k = e; k >= 0; k = a->syn_next[k]) if (pick-- == 0) return a->syn_word[k];
    return NULL;
}

// applies word-level operation op to text; the result goes to out
static void aug_words(Augmenter* a, int op, const char* text, ByteVec* out, uint64_t* rng) {
    // split into words (pointers into a copy)
    char* copy = dup_bytes(text, strlen(text));
    const char** w = NULL;
    size_t nw = 0, cap = 0;
    for (char* p = strtok(copy, " \t\n\r"); p; p = strtok(NULL, " \t\n\r")) {
        if (nw + 2 > cap) { cap = cap ? 2 * cap : 64; w = reallocCheck(w, cap * sizeof(char*)); }
        w[nw++] = p;
    }
    size_t changes = (size_t)(a->p * nw + 0.5);
    if (changes < 1) changes = 1;
    if (op == AUG_DEL && nw > 1) {
        size_t j = 0;
        for (size_t i = 0; i < nw; i++) if (rng_uniform(rng) >= a->p) w[j++] = w[i];
        if (j == 0) { w[0] = w[rng_below(rng, nw)]; j = 1; }
        nw = j;
    } else if (op == AUG_SWAP && nw > 1) {
        for (size_t k = 0; k < changes; k++) {
            size_t i = rng_below(rng, nw), j = rng_below(rng, nw);
            const char* t = w[i]; w[i] = w[j]; w[j] = t;
        }
    } else if (op == AUG_INS && nw > 0) {
        for (size_t k = 0; k < changes; k++) {
            const char* word = w[rng_below(rng, nw)];
            const char* s = aug_synonym(a, word, rng);
            if (!s) s = word;
            if (nw + 2 > cap) { cap = 2 * cap; w = reallocCheck(w, cap * sizeof(char*)); }
            size_t at = rng_below(rng, nw + 1);
            memmove(w + at + 1, w + at, (nw - at) * sizeof(char*));
            w[at] = s;
            nw++;
        }
    } else if (op == AUG_SYN && nw > 0) {
        size_t* order = mallocCheck(nw * sizeof(size_t));
        for (size_t i = 0; i < nw; i++) order[i] = i;
        shuffle(order, nw, rng);
        for (size_t i = 0, done = 0; i < nw && done < changes; i++) {
            const char* s = aug_synonym(a, w[order[i]], rng);
            if (s) { w[order[i]] = s; done++; }
        }
        free(order);
    }
    out->len = 0;
    bytevec_append(out, "", 0);
    for (size_t i = 0; i < nw; i++) {
        if (i) bytevec_push(out, ' ');
        bytevec_append(out, w[i], strlen(w[i]));
    }
    free(w);
    free(copy);
}

static void aug_init(Augmenter* a, const Options* o, Tokenizer* t) {
    memset(a, 0, sizeof *a);
    a->p = o->aug_p;
    a->mask_id = -1;
    if (o->augment <= 0) return;
    char ops[256];
    snprintf(ops, sizeof ops, "%s", o->aug_ops);
    for (char* p = strtok(ops, ","); p; p = strtok(NULL, ",")) {
        int k = 0;
        while (k < AUG_NUM && strcmp(p, aug_name[k])) k++;
        if (k == AUG_NUM) fail_at("--aug-ops", "choose from del,swap,ins,syn,mask", "unknown operation \"%s\"", p);
        if (!a->enabled[k]) { a->enabled[k] = 1; a->ops[a->nops++] = k; }
    }
    if (a->nops == 0) fail_at("--aug-ops", "choose from del,swap,ins,syn,mask", "no operations");
    if (a->enabled[AUG_SYN] && !o->synonyms) fail_at("--aug-ops", "syn needs --synonyms FILE (or drop syn from --aug-ops)", "no synonym file");
    if (o->synonyms) aug_load_synonyms(a, o->synonyms);
    if (a->enabled[AUG_MASK]) a->mask_id = tokenizer_add_special(t, "<|mask|>");
    if (!(a->p > 0 && a->p <= 1)) fail_at("--aug-p", "a probability in (0, 1], e.g. 0.1", "got %g", a->p);
}
static void aug_free(Augmenter* a) {
    free(a->syn_index.slots); free(a->syn_next); free(a->syn_word); free(a->syn_text);
}

// ---------------------------------------------------------------------------- cls: classification

typedef struct { Row* row; int label; int split; } ClsItem;

// drops rows with empty text or label, and (with --labels) unknown labels
static size_t clean_cls_rows(const char* path, RowVec* rows, LabelMap* labels, BadRows* bad) {
    size_t j = 0;
    for (size_t i = 0; i < rows->len; i++) {
        Row* r = &rows->data[i];
        r->len[0] = trim(r->v[0], r->len[0]);
        r->len[1] = trim(r->v[1], r->len[1]);
        int ok = 1;
        if (r->len[0] == 0) { bad_row(bad, path, r->line, "every example needs text; remove the row or pass --skip-bad", "empty text"); ok = 0; }
        else if (r->len[1] == 0) { bad_row(bad, path, r->line, "every example needs a label; remove the row or pass --skip-bad", "empty label"); ok = 0; }
        else if (labels->fixed && label_find(labels, r->v[1]) < 0) {
            bad_row(bad, path, r->line, "add it to --labels, or pass --skip-bad", "unknown label \"%.60s\"", r->v[1]); ok = 0;
        }
        if (ok) rows->data[j++] = *r; else row_free(r);
    }
    size_t dropped = rows->len - j;
    rows->len = j;
    return dropped;
}

// where cls examples go, and the statistics kept about them
typedef struct {
    Tokenizer* t; DsWriter* w; IntVec* ids; unsigned char* seen;
    size_t** lens; size_t* count; size_t* tokens; size_t* truncated; size_t* per_label;  // per split
    int K; size_t max_len; int append_eot, allow_special; uint64_t* rng; int mask_id;
} ClsOut;

// one example into split k: encode, truncate (keeping room for <|endoftext|> with --append-eot),
// mask tokens with probability mask_p (augmentation), write, count
static void cls_emit(ClsOut* c, const void* text, size_t n, int label, int k, double mask_p) {
    IntVec* ids = c->ids;
    ids->len = 0;
    tokenizer_encode(c->t, text, n, c->allow_special, ids);
    size_t room = c->append_eot ? c->max_len - 1 : c->max_len;
    if (ids->len > room) { ids->len = room; c->truncated[k]++; }
    if (mask_p > 0) for (size_t q = 0; q < ids->len; q++) if (rng_uniform(c->rng) < mask_p) ids->data[q] = c->mask_id;
    if (c->append_eot) intvec_push(ids, c->t->eot_id);
    ds_write_example(&c->w[k], ids->data, ids->len, label, NULL);
    for (size_t q = 0; q < ids->len; q++) c->seen[ids->data[q]] = 1;
    c->lens[k][c->count[k]++] = ids->len;
    c->tokens[k] += ids->len;
    c->per_label[(size_t)k * c->K + label]++;
}

// Items, de-duplicated by exact text within each source (the first is kept); counts the duplicates, those
// with a different label, and val/test texts also in train (leaks). seen_text[k] is source k's text index.
static size_t cls_items(RowVec rows[3], const LabelMap* labels, int keep_duplicates, StrMap seen_text[3], ClsItem* items,
                        size_t* dups, size_t* conflicts, size_t* leaks) {
    size_t nitems = 0;
    for (int k = 0; k < 3; k++) {
        strmap_init(&seen_text[k], rows[k].len);
        for (size_t i = 0; i < rows[k].len; i++) {
            Row* r = &rows[k].data[i];
            int label = label_find(labels, r->v[1]);
            int prev = strmap_get(&seen_text[k], (unsigned char*)r->v[0], r->len[0]);
            if (prev >= 0 && !keep_duplicates) {
                (*dups)++;
                if (items[prev].label != label) (*conflicts)++;
                continue;
            }
            if (k > 0 && strmap_get(&seen_text[0], (unsigned char*)r->v[0], r->len[0]) >= 0) (*leaks)++;
            strmap_put(&seen_text[k], (unsigned char*)r->v[0], r->len[0], (int)nitems);
            items[nitems++] = (ClsItem){r, label, k};
        }
    }
    return nitems;
}

// Stratified split of a single file: each label's items are shuffled and cut by the ratios.
static void cls_stratify(ClsItem* items, size_t nitems, int K, const double split[3], uint64_t* rng) {
    for (int c = 0; c < K; c++) {
        size_t m = 0;
        for (size_t i = 0; i < nitems; i++) m += items[i].label == c;
        size_t* which = mallocCheck((m ? m : 1) * sizeof(size_t));
        unsigned char* sp = mallocCheck(m ? m : 1);
        m = 0;
        for (size_t i = 0; i < nitems; i++) if (items[i].label == c) which[m++] = i;
        assign_splits(sp, m, split, rng);
        for (size_t i = 0; i < m; i++) items[which[i]].split = sp[i];
        free(which); free(sp);
    }
}

// Oversampling: random training examples of each smaller class are repeated until it matches the largest.
// Returns how many were added.
static size_t cls_oversample(ClsOut* out, ClsItem* items, size_t nitems, int K, size_t** lens, uint64_t* rng) {
    size_t largest = 0, added = 0;
    for (int c = 0; c < K; c++) if (out->per_label[c] > largest) largest = out->per_label[c];
    size_t* pool = mallocCheck((nitems + 1) * sizeof(size_t));
    for (int c = 0; c < K; c++) {
        size_t m = 0;
        for (size_t i = 0; i < nitems; i++) if (items[i].split == 0 && items[i].label == c) pool[m++] = i;
        if (m == 0) continue;
        while (out->per_label[c] < largest) {
            ClsItem* it = &items[pool[rng_below(rng, m)]];
            lens[0] = reallocCheck(lens[0], (out->count[0] + 1) * sizeof(size_t));
            cls_emit(out, it->row->v[0], it->row->len[0], c, 0, 0.0);
            added++;
        }
    }
    free(pool);
    return added;
}

// PREFIX_labels.txt: the label map with training counts and class weights N/(K*count) (1.0 everywhere when
// balanced). path gets its name.
static void cls_write_labels(const char* prefix, const LabelMap* labels, const size_t* per_label, size_t ntrain,
                             char* path, size_t cap) {
    int K = labels->count;
    snprintf(path, cap, "%s_labels.txt", prefix);
    SafeWriter w;
    safe_open(&w, path);
    FILE* f = w.f;
    fprintf(f, "# id\tname\ttrain_count\tclass_weight (N/(K*count); pass to train as class weights)\n");
    for (int c = 0; c < K; c++) {
        size_t nc = per_label[c];
        fprintf(f, "%d\t%s\t%zu\t%.6f\n", c, labels->names[c], nc, nc ? (double)ntrain / ((double)K * nc) : 0.0);
    }
    safe_close(&w);
}

static int cmd_cls(const Options* o) {
    if (!o->out) fail_at("cls", "pass --out PREFIX, e.g. --out data/sst2", "missing --out");
    int given = o->given[0] || o->given[1] || o->given[2];
    if (given && o->num_files) fail_at("cls", "give either one FILE to split, or --train/--val/--test files, not both", "both given");
    if (!given && o->num_files != 1) fail_at("cls", "give one input FILE (or --train F --val F [--test F])", "%d input files", o->num_files);
    if (given && !o->given[0]) fail_at("cls", "--val/--test need a --train file too", "no --train file");
    Tokenizer t;
    load_tokenizer(&t, o);
    Augmenter aug;
    aug_init(&aug, o, &t);
    report_open(o->out);
    ColSpec cols = {{o->text_col, o->label_col}, {0, 0}, 2};
    BadRows bad = {o->skip_bad, 0, ""};
    LabelMap labels = {0};
    if (o->labels) {
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", o->labels);
        for (char* p = strtok(buf, ","); p; p = strtok(NULL, ",")) label_add(&labels, p);
        labels.fixed = 1;
    }
    // read: one file, or the given splits
    RowVec rows[3] = {{0}};
    size_t records = 0, rec;
    const char* src[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 3; k++) {
        const char* path = given ? o->given[k] : (k == 0 ? o->files[0] : NULL);
        if (!path) continue;
        src[k] = path;
        read_rows(path, guess_format(path, o->input_format), &cols, o->no_header, &bad, &rows[k], &rec);
        records += rec;
        clean_cls_rows(path, &rows[k], &labels, &bad);  // empty text/label and unknown labels count as bad rows
    }
    if (rows[0].len == 0) fail_at(src[0], "check --text-col/--label-col and the file format", "no usable rows");
    // label map: sorted (numerically when all labels are integers) unless --labels fixed the order
    if (!labels.fixed) {
        for (int k = 0; k < 3; k++) for (size_t i = 0; i < rows[k].len; i++) label_add(&labels, rows[k].data[i].v[1]);
        qsort(labels.names, (size_t)labels.count, sizeof(char*), all_integers(&labels) ? cmp_label_num : cmp_label_str);
    }
    int K = labels.count;
    if (K < 2) report("warning: only %d distinct label(s); is --label-col right?\n", K);
    ClsItem* items = mallocCheck((rows[0].len + rows[1].len + rows[2].len + 1) * sizeof(ClsItem));
    StrMap seen_text[3];
    size_t dups = 0, conflicts = 0, leaks = 0;
    size_t nitems = cls_items(rows, &labels, o->keep_duplicates, seen_text, items, &dups, &conflicts, &leaks);
    // stratified split of a single file: each label's items are shuffled and cut by the ratios
    uint64_t rng = o->seed;
    if (!given) cls_stratify(items, nitems, K, o->split, &rng);
    // encode and write
    DsWriter w[3];
    int have[3] = {0};
    char path[4200];
    size_t count[3] = {0}, truncated[3] = {0}, tokens[3] = {0}, oversampled = 0;
    size_t* per_label = mallocCheck((size_t)(3 * K + 1) * sizeof(size_t));
    memset(per_label, 0, (size_t)(3 * K + 1) * sizeof(size_t));
    for (size_t i = 0; i < nitems; i++) have[items[i].split] = 1;
    for (int k = 0; k < 3; k++) if (have[k]) {
        snprintf(path, sizeof path, "%s_%s.ds", o->out, split_name[k]);
        open_or_die(&w[k], path, EXAMPLES_MAGIC, DS_CLS, t.vocab_size, K);
        ds_writer_set_labels(&w[k], (const char* const*)labels.names);  // each file says what its ids mean
    }
    size_t** lens = mallocCheck(3 * sizeof(size_t*));
    for (int k = 0; k < 3; k++) lens[k] = mallocCheck((nitems * (1 + (size_t)o->augment) + 1) * sizeof(size_t));
    unsigned char* seen = mallocCheck((size_t)t.vocab_size);
    memset(seen, 0, (size_t)t.vocab_size);
    IntVec ids = {0};
    ByteVec augtext = {0};
    size_t max_len = o->max_len > 0 ? (size_t)o->max_len : (size_t)-1;
    ClsOut out = {&t, &w[0], &ids, seen, lens, count, tokens, truncated, per_label, K, max_len, o->append_eot, o->allow_special, &rng, aug.mask_id};
    if (o->append_eot && t.eot_id < 0) fail_at(o->tokenizer, "add it with --add-token '<|endoftext|>'", "--append-eot: this tokenizer has no <|endoftext|>");
    for (size_t i = 0; i < nitems; i++) {
        ClsItem* it = &items[i];
        cls_emit(&out, it->row->v[0], it->row->len[0], it->label, it->split, 0.0);
        if (it->split == 0) for (int c = 0; c < o->augment; c++) {  // augmented copies: training split only
            int op = aug.ops[rng_below(&rng, (size_t)aug.nops)];
            aug.made[op]++;
            if (op == AUG_MASK) { cls_emit(&out, it->row->v[0], it->row->len[0], it->label, 0, aug.p); continue; }
            aug_words(&aug, op, it->row->v[0], &augtext, &rng);
            cls_emit(&out, augtext.data, augtext.len, it->label, 0, 0.0);
        }
    }
    // oversampling: repeat random training examples of each smaller class until it matches the largest
    if (o->oversample) oversampled = cls_oversample(&out, items, nitems, K, lens, &rng);
    // the report
    report("dataprep cls: %zu records read from %s%s%s%s%s\n", records, src[0], src[1] ? ", " : "", src[1] ? src[1] : "", src[2] ? ", " : "", src[2] ? src[2] : "");
    report("tokenizer: %s (V=%d)  max-len %d%s  seed %llu  %s\n", o->tokenizer, t.vocab_size, o->max_len, o->append_eot ? " (+<|endoftext|>)" : "",
           (unsigned long long)o->seed, given ? "splits as given" : "stratified split");
    report("bad rows skipped: %zu%s%s\n", bad.bad, bad.bad ? "  first: " : "", bad.first_bad);
    report("duplicates removed: %zu (%zu with a different label)%s   val/test texts also in train: %zu\n", dups, conflicts, o->keep_duplicates ? " [--keep-duplicates]" : "", leaks);
    for (int k = 0; k < 3; k++) {
        if (!have[k]) { report("  %-5s none\n", split_name[k]); continue; }
        report("  %-5s %7zu examples  %9zu tokens  truncated %zu\n", split_name[k], count[k], tokens[k], truncated[k]);
        report_lengths("  tokens", lens[k], count[k]);
        report("    labels:");
        for (int c = 0; c < K; c++) report(" %s=%zu (%.1f%%)", labels.names[c], per_label[(size_t)k * K + c], 100.0 * per_label[(size_t)k * K + c] / (count[k] ? count[k] : 1));
        report("\n");
    }
    if (o->oversample) report("oversampled: %zu extra training examples (minority classes repeated up to the largest)\n", oversampled);
    if (o->augment) {
        report("augmented: %d copies per training example, p=%.2f:", o->augment, aug.p);
        for (int k = 0; k < AUG_NUM; k++) if (aug.enabled[k]) report(" %s=%zu", aug_name[k], aug.made[k]);
        report("\n");
    }
    report_coverage(seen, t.vocab_size);
    // label map with training counts and class weights N/(K*count) (1.0 everywhere when balanced)
    cls_write_labels(o->out, &labels, per_label, count[0], path, sizeof path);
    for (int k = 0; k < 3; k++) if (have[k]) write_or_die(&w[k]);
    printf("wrote %s\n", path);
    report_close();
    for (int k = 0; k < 3; k++) { for (size_t i = 0; i < rows[k].len; i++) row_free(&rows[k].data[i]); free(rows[k].data); free(seen_text[k].slots); free(lens[k]); }
    for (int c = 0; c < labels.count; c++) free(labels.names[c]);
    free(labels.names); free(items); free(per_label); free(lens); free(seen); free(ids.data); free(augtext.data);
    aug_free(&aug);
    tokenizer_free(&t);
    return 0;
}

// ---------------------------------------------------------------------------- sft: instruction tuning
// Each record has instruction, input (may be empty or missing) and output. The prompt is built
// from a template, the response is the output followed by <|endoftext|>. The prompt and the
// response are tokenized separately, so the boundary is exact: the loss mask is 0 on every prompt
// token and 1 on every response token, and the trainer learns only to produce the response.

static const char* ALPACA_WITH_INPUT =
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\n%s\n\n### Input:\n%s\n\n### Response:\n";
static const char* ALPACA_NO_INPUT =
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\n%s\n\n### Response:\n";
static const char* PLAIN_WITH_INPUT = "### Instruction:\n%s\n\n### Input:\n%s\n\n### Response:\n";
static const char* PLAIN_NO_INPUT = "### Instruction:\n%s\n\n### Response:\n";

static void build_prompt(ByteVec* out, const char* tmpl, const char* a, const char* b) {
    out->len = 0;
    bytevec_append(out, "", 0);
    int which = 0;
    for (const char* p = tmpl; *p; p++) {  // only %s, filled in order
        if (p[0] == '%' && p[1] == 's') { const char* s = which++ ? b : a; bytevec_append(out, s, strlen(s)); p++; }
        else bytevec_push(out, (unsigned char)*p);
    }
}

// ---------------------------------------------------------------------------- sft --template chatml: conversations
// ChatML, the chat format of SmolLM2-Instruct and Qwen2.5-Instruct. We follow the chat_template of
// HuggingFaceTB/SmolLM2-135M-Instruct (its tokenizer_config.json), with add_generation_prompt false, which writes
// each message as
//     <|im_start|>{role}\n{content}<|im_end|>\n
// and nothing else (no BOS, no <|endoftext|>, content not trimmed). Qwen2.5-Instruct's template writes the same
// text for every conversation accepted here; where the two differ:
//   - the default system message, which both insert when the first message is not a system one: SmolLM2's is
//     "You are a helpful AI assistant named SmolLM, trained by Hugging Face", Qwen2.5's "You are Qwen, created by
//     Alibaba Cloud. You are a helpful assistant.". We insert none unless --system TEXT is given; then TEXT is the
//     system message of every conversation that has none (pass a model's own default to get its template's text);
//   - both would also render a system message that is not first; we refuse one (a likely mistake in the data);
//   - Qwen2.5's tools / tool_calls branches: not supported (roles are system, user and assistant).
// Records (JSONL, or a JSON array): {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]},
// multi-turn, or Alpaca's {"instruction", "input", "output"}: a user turn (the instruction, then "\n\n" and the
// input when there is one) and an assistant turn (the output).
// The loss mask is TRL's assistant_only_loss with its Qwen2.5 training template (trl/chat_templates/
// qwen2_5_training.jinja), whose {% generation %} block holds '\n' + content + '<|im_end|>\n': trained are each
// assistant message's content tokens, its <|im_end|> and the "\n" after it. Not trained: system and user messages
// and the header "<|im_start|>assistant\n", including the header's "\n" that TRL's block starts with (a prompt always
// ends with it: add_generation_prompt writes it, so there is nothing to learn there).
// Token boundaries are Hugging Face's: added tokens split the text first, so "{role}\n{content}" is encoded as one
// piece between <|im_start|> and <|im_end|>, and each "\n" after <|im_end|> alone. A token holding bytes of both the
// header and the content (Qwen2's pattern joins "\n\n" when a content starts with "\n") is trained, as Hugging Face's
// assistant mask marks every token with a character inside the generation block.
// An example's label (the "prompt length" of dataset.h) is the number of tokens before its first trained token.

enum { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT, ROLE_NUM };
static const char* const role_name[ROLE_NUM] = {"system", "user", "assistant"};
typedef struct { int role; char* text; size_t len; } ChatMsg;
typedef struct { ChatMsg* msg; int n, cap; int line, alpaca; } Chat;   // line: where the record starts
typedef struct { Chat* data; size_t len, cap; } ChatVec;

static void chat_add(Chat* c, int role, const void* text, size_t len) {
    if (c->n == c->cap) { c->cap = c->cap ? 2 * c->cap : 4; c->msg = reallocCheck(c->msg, (size_t)c->cap * sizeof(ChatMsg)); }
    c->msg[c->n++] = (ChatMsg){role, dup_bytes(text, len), len};
}
static void chat_free(Chat* c) {
    for (int i = 0; i < c->n; i++) free(c->msg[i].text);
    free(c->msg);
    c->msg = NULL, c->n = c->cap = 0;
}

// The first thing wrong with a record that is valid JSON, and the line it is on. Later problems are not kept.
typedef struct { char what[300]; const char* hint; int line; } ChatProblem;
static void chat_problem(ChatProblem* p, int line, const char* hint, const char* fmt, ...) {
    if (p->what[0]) return;
    va_list ap;
    va_start(ap, fmt); vsnprintf(p->what, sizeof p->what, fmt, ap); va_end(ap);
    p->hint = hint, p->line = line;
}
static const char* json_type_name(int peek) {
    return peek == '{' ? "an object" : peek == '[' ? "an array" : peek == 'n' ? "a number" : peek == 't' || peek == 'f' ? "a boolean" : peek == 'z' ? "null" : "not a value";
}
static const char* const CHAT_HINT_MSG = "write \"messages\": [{\"role\": \"user\", \"content\": \"...\"}, {\"role\": \"assistant\", \"content\": \"...\"}]; "
                                         "or pass --skip-bad to skip such records (counted)";

// "messages": [{"role": ..., "content": ...}, ...] -> c. A problem (not a JSON error) goes to p and the value is
// skipped, so reading goes on. Returns 0, or -1 on invalid JSON (js->err).
static int chat_messages(JsonScan* js, Chat* c, ChatProblem* p) {
    int type = jscan_peek(js);
    if (type != '[') { chat_problem(p, js->line, CHAT_HINT_MSG, "\"messages\" is %s, not an array", json_type_name(type)); return jscan_skip(js, 0); }
    js->pos++;
    jscan_ws(js);
    if (js->pos < js->n && js->s[js->pos] == ']') { js->pos++; return 0; }
    ByteVec key = {0}, role = {0}, content = {0};
    int rc = 0;
    for (int i = 0;; i++) {
        type = jscan_peek(js);
        int line = js->line;
        if (type != '{') {
            chat_problem(p, line, CHAT_HINT_MSG, "messages[%d] is %s, not an object {\"role\": ..., \"content\": ...}", i, json_type_name(type));
            if ((rc = jscan_skip(js, 0))) break;
        } else {
            js->pos++;
            int have[2] = {0, 0};  // role, content
            jscan_ws(js);
            if (js->pos < js->n && js->s[js->pos] == '}') js->pos++;
            else for (;;) {
                if ((rc = jscan_string(js, &key)) || (rc = jscan_expect(js, ':'))) goto done;
                int k = !strcmp((char*)key.data, "role") ? 0 : !strcmp((char*)key.data, "content") ? 1 : -1;
                type = jscan_peek(js);
                if (k >= 0 && type == '"') { rc = jscan_string(js, k ? &content : &role); have[k] = 1; }
                else {
                    if (k == 0) chat_problem(p, js->line, CHAT_HINT_MSG, "messages[%d].role is %s, not a string", i, json_type_name(type));
                    if (k == 1) chat_problem(p, js->line, "every content must be a string (lists of parts, tool calls and null are not supported); "
                                             "or pass --skip-bad to skip such records (counted)", "messages[%d].content is %s, not a string", i, json_type_name(type));
                    if (k >= 0) have[k] = -1;
                    rc = jscan_skip(js, 0);
                }
                if (rc) goto done;
                jscan_ws(js);
                if (js->pos < js->n && js->s[js->pos] == ',') { js->pos++; continue; }
                if ((rc = jscan_expect(js, '}'))) goto done;
                break;
            }
            int r = -1;
            for (int q = 0; have[0] == 1 && q < ROLE_NUM; q++) if (!strcmp((char*)role.data, role_name[q])) r = q;
            if (!have[0] || !have[1]) chat_problem(p, line, CHAT_HINT_MSG, "messages[%d] has no \"%s\"", i, have[0] ? "content" : "role");
            else if (have[0] == 1 && r < 0)
                chat_problem(p, line, "roles are system, user and assistant (ChatML as SmolLM2 and Qwen2.5 write it); or pass --skip-bad to skip such records (counted)",
                             "messages[%d].role is \"%.60s\", not system, user or assistant", i, (char*)role.data);
            else if (r == ROLE_SYSTEM && i > 0)
                chat_problem(p, line, "only the first message may be the system message; or pass --skip-bad to skip such records (counted)",
                             "messages[%d] is a system message after the first message", i);
            else if (r >= 0 && have[1] == 1) chat_add(c, r, content.data, content.len);
        }
        jscan_ws(js);
        if (js->pos < js->n && js->s[js->pos] == ',') { js->pos++; continue; }
        rc = jscan_expect(js, ']');
        break;
    }
done:
    free(key.data); free(role.data); free(content.data);
    return rc;
}

// One record, a chat or an Alpaca row, into c (c->n = 0 and p set when something is wrong with it). Returns 0, or
// -1 on invalid JSON (js->err).
static int chat_record(JsonScan* js, Chat* c, ChatProblem* p) {
    memset(c, 0, sizeof *c);
    jscan_ws(js);
    c->line = js->line;
    if (jscan_expect(js, '{')) return jscan_fail(js, "expected a JSON object {...}");
    static const char* const alpaca_key[3] = {"instruction", "input", "output"};
    ByteVec key = {0}, alp[3] = {{0}, {0}, {0}};
    int found[3] = {0, 0, 0}, have_messages = 0, rc = 0;
    jscan_ws(js);
    if (js->pos < js->n && js->s[js->pos] == '}') js->pos++;
    else for (;;) {
        if ((rc = jscan_string(js, &key)) || (rc = jscan_expect(js, ':'))) goto done;
        int k = -1;
        for (int q = 0; q < 3; q++) if (!strcmp((char*)key.data, alpaca_key[q])) k = q;
        if (!strcmp((char*)key.data, "messages")) { have_messages = 1; rc = chat_messages(js, c, p); }
        else if (k >= 0) { rc = json_field_text(js, &alp[k]); found[k] = 1; }  // as the Alpaca reader: strings, numbers, booleans
        else rc = jscan_skip(js, 0);
        if (rc) goto done;
        jscan_ws(js);
        if (js->pos < js->n && js->s[js->pos] == ',') { js->pos++; continue; }
        rc = jscan_expect(js, '}');
        break;
    }
    if (have_messages) {
        int assistant = 0;
        for (int i = 0; i < c->n; i++) assistant += c->msg[i].role == ROLE_ASSISTANT;
        if (!p->what[0] && !assistant)
            chat_problem(p, c->line, "the loss is taken on assistant turns only: give each conversation at least one; or pass --skip-bad to skip such records (counted)",
                         c->n ? "no assistant turn: nothing to learn" : "\"messages\" is empty: nothing to learn");
    } else if (!found[0] || !found[2]) {
        chat_problem(p, c->line, "a record is {\"messages\": [...]} (a chat) or has \"instruction\" and \"output\" (Alpaca; \"input\" is optional)",
                     found[0] || found[2] ? "missing field \"%s\"" : "neither \"messages\" nor \"instruction\"/\"output\"", found[0] ? "output" : "instruction");
    } else if (alp[0].len == 0 || is_blank_line(alp[0].data, 0, alp[0].len)) {
        chat_problem(p, c->line, "every record needs an instruction; pass --skip-bad to skip it", "empty instruction");
    } else if (alp[2].len == 0 || is_blank_line(alp[2].data, 0, alp[2].len)) {
        chat_problem(p, c->line, "every record needs an output to learn; pass --skip-bad to skip it", "empty output");
    } else {  // Alpaca: one user turn, one assistant turn
        ByteVec user = {0};
        bytevec_append(&user, alp[0].data, alp[0].len);
        if (found[1] && alp[1].len && !is_blank_line(alp[1].data, 0, alp[1].len)) { bytevec_append(&user, "\n\n", 2); bytevec_append(&user, alp[1].data, alp[1].len); }
        chat_add(c, ROLE_USER, user.data, user.len);
        chat_add(c, ROLE_ASSISTANT, alp[2].data, alp[2].len);
        c->alpaca = 1;
        free(user.data);
    }
done:
    if (p->what[0]) chat_free(c);
    free(key.data);
    for (int q = 0; q < 3; q++) free(alp[q].data);
    return rc;
}

// one record into chats (if it is good); returns 1 if it was added, 0 if not, -1 on invalid JSON
static int chat_one(JsonScan* js, const char* path, BadRows* bad, ChatVec* chats) {
    Chat c;
    ChatProblem p = {"", NULL, 0};
    if (chat_record(js, &c, &p)) {
        chat_free(&c);
        bad_row(bad, path, js->line, "each record must be one JSON object; check quotes, commas and brackets", "invalid JSON: %s", js->err);
        return -1;
    }
    if (p.what[0]) { bad_row(bad, path, p.line, p.hint, "%s", p.what); return 0; }
    if (chats->len == chats->cap) { chats->cap = chats->cap ? 2 * chats->cap : 1024; chats->data = reallocCheck(chats->data, chats->cap * sizeof(Chat)); }
    chats->data[chats->len++] = c;
    return 1;
}

// every record of a JSONL file or a JSON array; *records counts them all, good or bad
static void read_chats(const char* path, BadRows* bad, ChatVec* chats, size_t* records) {
    size_t n;
    unsigned char* s = read_file_or_die(path, &n);
    *records = 0;
    size_t bom = n >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF ? 3 : 0;
    if (n == bom) fail_at(path, "the file is empty; check the path", "no rows");
    JsonScan js = {s, n, bom, 1, NULL};
    jscan_ws(&js);
    if (js.pos < n && s[js.pos] == '[') {  // a JSON array of records
        js.pos++;
        jscan_ws(&js);
        if (js.pos < n && s[js.pos] == ']') js.pos++;
        else while (1) {
            (*records)++;
            if (chat_one(&js, path, bad, chats) < 0) { bad_row(bad, path, js.line, NULL, "cannot find the next record after invalid JSON; the rest of the file is skipped"); break; }
            jscan_ws(&js);
            if (js.pos < n && s[js.pos] == ',') { js.pos++; continue; }
            if (js.pos < n && s[js.pos] == ']') { js.pos++; break; }
            bad_row(bad, path, js.line, "records in a JSON array are separated by commas", "invalid JSON: expected ',' or ']'");
            break;
        }
    } else {  // JSONL: one record per line
        int line = 1;
        for (size_t i = bom; i < n; line++) {
            size_t e = line_end(s, n, i);
            if (!is_blank_line(s, i, e)) {
                JsonScan one = {s, e, i, line, NULL};
                (*records)++;
                int added = chat_one(&one, path, bad, chats);
                jscan_ws(&one);
                if (added >= 0 && one.pos < e) {
                    bad_row(bad, path, line, "JSONL holds exactly one JSON object per line", "invalid JSON: text after the object");
                    if (added) chat_free(&chats->data[--chats->len]);
                }
            }
            i = e;
        }
    }
    free(s);
}

// the id of an added or special token with exactly this text, -1 if the tokenizer has none
static int tok_find_special(Tokenizer* t, const char* text) {
    const IntVec* added = tok_added_ids(t);
    size_t n = strlen(text);
    for (size_t k = 0; k < added->len; k++) {
        size_t m;
        const unsigned char* p = tok_bytes(t, added->data[k], &m);
        if (m == n && memcmp(p, text, n) == 0) return added->data[k];
    }
    return -1;
}

// Appends one message, <|im_start|>{role}\n{content}<|im_end|>\n, to ids, and its loss mask to mask: 1 on an
// assistant message's content, <|im_end|> and "\n", 0 elsewhere. Returns the number of tokens marked 1.
static size_t chatml_append(Tokenizer* t, const int im[2], int role, const char* text, size_t len, int allow_special,
                            ByteVec* piece, IntVec* ids, ByteVec* mask) {
    int train = role == ROLE_ASSISTANT;
    size_t trained = 0;
    intvec_push(ids, im[0]), bytevec_push(mask, 0);
    piece->len = 0;
    bytevec_append(piece, role_name[role], strlen(role_name[role]));
    bytevec_push(piece, '\n');
    size_t header = piece->len, at = 0, q = ids->len;
    bytevec_append(piece, text, len);
    tokenizer_encode(t, piece->data, piece->len, allow_special, ids);  // one piece, as between two added tokens in HF
    for (; q < ids->len; q++) {  // bytes [0, header) are "{role}\n": a token ending past them holds content
        size_t m;
        tok_bytes(t, ids->data[q], &m);
        at += m;
        int on = train && at > header;
        bytevec_push(mask, (unsigned char)on), trained += on;
    }
    intvec_push(ids, im[1]), bytevec_push(mask, (unsigned char)train), trained += train;
    q = ids->len;
    tokenizer_encode(t, "\n", 1, 0, ids);
    for (; q < ids->len; q++) bytevec_push(mask, (unsigned char)train), trained += train;
    return trained;
}

static int cmd_sft_chatml(const Options* o) {
    if (o->input_format && strcmp(o->input_format, "jsonl") && strcmp(o->input_format, "json"))
        fail_at("--input-format", "--template chatml reads JSON records (JSONL, or a JSON array): drop --input-format", "cannot read \"%s\"", o->input_format);
    Tokenizer t;
    load_tokenizer(&t, o);
    int im[2] = {tok_find_special(&t, "<|im_start|>"), tok_find_special(&t, "<|im_end|>")};
    if (im[0] < 0 || im[1] < 0)
        fail_at(o->tokenizer, "pass --add-token '<|im_start|>' --add-token '<|im_end|>' (train then grows the model's vocabulary by "
                "their rows), or use a tokenizer.json that has them (SmolLM2, Qwen2.5)",
                "no %s token: ChatML needs <|im_start|> and <|im_end|> as single tokens", im[0] < 0 ? "<|im_start|>" : "<|im_end|>");
    report_open(o->out);
    BadRows bad = {o->skip_bad, 0, ""};
    ChatVec chats = {0};
    size_t records;
    read_chats(o->files[0], &bad, &chats, &records);
    // de-duplicate (whole conversations, roles included)
    StrMap seen_rec;
    strmap_init(&seen_rec, chats.len);
    ByteVec key = {0};
    unsigned char** keys = mallocCheck((chats.len + 1) * sizeof(unsigned char*));
    size_t nkeys = 0, dups = 0, j = 0, alpaca_rows = 0, messages = 0, assistant_turns = 0, systems_added = 0;
    for (size_t i = 0; i < chats.len; i++) {
        Chat* c = &chats.data[i];
        int keep = 1;
        if (!o->keep_duplicates) {
            key.len = 0;
            for (int m = 0; m < c->n; m++) { bytevec_push(&key, (unsigned char)('0' + c->msg[m].role)); bytevec_append(&key, c->msg[m].text, c->msg[m].len); bytevec_push(&key, 0x1F); }
            if (strmap_get(&seen_rec, key.data, key.len) >= 0) dups++, keep = 0;
            else {
                keys[nkeys] = (unsigned char*)dup_bytes(key.data, key.len);
                strmap_put(&seen_rec, keys[nkeys], key.len, 1);
                nkeys++;
            }
        }
        if (keep) chats.data[j++] = *c; else chat_free(c);
    }
    chats.len = j;
    if (chats.len == 0) fail_at(o->files[0], "records are {\"messages\": [{\"role\": ..., \"content\": ...}, ...]} or Alpaca's instruction/input/output", "no usable records");
    uint64_t rng = o->seed;
    unsigned char* split_of = mallocCheck(chats.len);
    assign_splits(split_of, chats.len, o->split, &rng);
    DsWriter w[3];
    int have[3] = {0};
    char path[4200];
    for (size_t i = 0; i < chats.len; i++) have[split_of[i]] = 1;
    for (int k = 0; k < 3; k++) if (have[k]) {
        snprintf(path, sizeof path, "%s_%s.ds", o->out, split_name[k]);
        open_or_die(&w[k], path, EXAMPLES_MAGIC, DS_SFT, t.vocab_size, 0);
    }
    size_t count[3] = {0}, tokens[3] = {0}, trained_tokens[3] = {0}, truncated[3] = {0}, dropped[3] = {0};
    size_t* lens[3];
    size_t* plens[3];
    for (int k = 0; k < 3; k++) { lens[k] = mallocCheck((chats.len + 1) * sizeof(size_t)); plens[k] = mallocCheck((chats.len + 1) * sizeof(size_t)); }
    unsigned char* seen = mallocCheck((size_t)t.vocab_size);
    memset(seen, 0, (size_t)t.vocab_size);
    IntVec ids = {0};
    ByteVec piece = {0}, mask = {0};
    size_t max_len = o->max_len > 0 ? (size_t)o->max_len : (size_t)-1;
    for (size_t i = 0; i < chats.len; i++) {
        Chat* c = &chats.data[i];
        int k = split_of[i];
        alpaca_rows += c->alpaca, messages += (size_t)c->n;
        ids.len = 0, mask.len = 0;
        if (o->system_msg && c->msg[0].role != ROLE_SYSTEM) {  // as the templates' default system message
            chatml_append(&t, im, ROLE_SYSTEM, o->system_msg, strlen(o->system_msg), o->allow_special, &piece, &ids, &mask);
            systems_added++;
        }
        for (int m = 0; m < c->n; m++) {
            chatml_append(&t, im, c->msg[m].role, c->msg[m].text, c->msg[m].len, o->allow_special, &piece, &ids, &mask);
            assistant_turns += c->msg[m].role == ROLE_ASSISTANT;
        }
        size_t np = 0;  // tokens before the first trained one (there is one: every assistant turn trains its <|im_end|>)
        while (np < ids.len && !mask.data[np]) np++;
        if (np >= max_len) { dropped[k]++; continue; }  // no room for even one trained token
        if (ids.len > max_len) { ids.len = max_len; truncated[k]++; }
        size_t trained = 0;
        for (size_t q = 0; q < ids.len; q++) trained += mask.data[q], seen[ids.data[q]] = 1;
        ds_write_example(&w[k], ids.data, ids.len, (int)np, mask.data);
        lens[k][count[k]] = ids.len; plens[k][count[k]] = np; count[k]++;
        tokens[k] += ids.len; trained_tokens[k] += trained;
    }
    report("dataprep sft: %zu records read from %s: %zu conversations, %zu of them Alpaca rows; template chatml; seed %llu\n",
           records, o->files[0], chats.len, alpaca_rows, (unsigned long long)o->seed);
    report("tokenizer: %s (V=%d, <|im_start|>=%d, <|im_end|>=%d)  max-len %d\n", o->tokenizer, t.vocab_size, im[0], im[1], o->max_len);
    report("messages: %zu, %zu of them assistant turns (trained on: content, <|im_end|>, \"\\n\")  system message (--system) added to %zu\n",
           messages, assistant_turns, systems_added);
    report("bad rows skipped: %zu%s%s   duplicates removed: %zu\n", bad.bad, bad.bad ? "  first: " : "", bad.first_bad, dups);
    for (int k = 0; k < 3; k++) {
        if (!have[k]) { report("  %-5s none\n", split_name[k]); continue; }
        report("  %-5s %6zu examples  %8zu tokens (%zu in assistant turns, trained on)  truncated %zu  dropped %zu (first assistant turn at or past max-len)\n",
               split_name[k], count[k], tokens[k], trained_tokens[k], truncated[k], dropped[k]);
        report_lengths("  total", lens[k], count[k]);
        report_lengths("  before", plens[k], count[k]);
    }
    report_coverage(seen, t.vocab_size);
    for (int k = 0; k < 3; k++)
        if (have[k] && !count[k])
            fail_at(o->files[0], "raise --max-len (the first assistant turn must start before it)",
                    "every example of the %s split was dropped: %zu conversation(s) with --max-len %d tokens or more before the first assistant turn",
                    split_name[k], dropped[k], o->max_len);
    for (int k = 0; k < 3; k++) if (have[k]) write_or_die(&w[k]);
    report_close();
    for (size_t i = 0; i < chats.len; i++) chat_free(&chats.data[i]);
    for (size_t i = 0; i < nkeys; i++) free(keys[i]);
    for (int k = 0; k < 3; k++) free(lens[k]), free(plens[k]);
    free(chats.data); free(keys); free(seen_rec.slots); free(key.data); free(split_of); free(seen); free(ids.data); free(piece.data); free(mask.data);
    tokenizer_free(&t);
    return 0;
}

static int cmd_sft(const Options* o) {
    if (!o->out) fail_at("sft", "pass --out PREFIX, e.g. --out data/alpaca", "missing --out");
    if (o->num_files != 1) fail_at("sft", "give one Alpaca-style JSON or JSONL file", "%d input files", o->num_files);
    if (strcmp(o->template_name, "chatml") == 0) return cmd_sft_chatml(o);
    if (o->system_msg) fail_at("--system", "a system message is part of --template chatml only", "does not apply to --template %s", o->template_name);
    int alpaca = strcmp(o->template_name, "alpaca") == 0;
    if (!alpaca && strcmp(o->template_name, "plain")) fail_at("--template", "use alpaca, plain or chatml", "unknown template \"%s\"", o->template_name);
    Tokenizer t;
    load_tokenizer(&t, o);
    report_open(o->out);
    ColSpec cols = {{"instruction", "input", "output"}, {0, 1, 0}, 3};
    BadRows bad = {o->skip_bad, 0, ""};
    RowVec rows = {0};
    size_t records;
    const char* fmt = o->input_format ? o->input_format : "jsonl";
    read_rows(o->files[0], guess_format(o->files[0], fmt), &cols, 1, &bad, &rows, &records);
    // validate and de-duplicate
    StrMap seen_rec;
    strmap_init(&seen_rec, rows.len);
    ByteVec key = {0};
    unsigned char** keys = mallocCheck((rows.len + 1) * sizeof(unsigned char*));
    size_t nkeys = 0, dups = 0, j = 0;
    for (size_t i = 0; i < rows.len; i++) {
        Row* r = &rows.data[i];
        int ok = 1;
        if (r->len[0] == 0 || is_blank_line((unsigned char*)r->v[0], 0, r->len[0])) {
            bad_row(&bad, o->files[0], r->line, "every record needs an instruction; pass --skip-bad to skip it", "empty instruction"); ok = 0;
        } else if (r->len[2] == 0 || is_blank_line((unsigned char*)r->v[2], 0, r->len[2])) {
            bad_row(&bad, o->files[0], r->line, "every record needs an output to learn; pass --skip-bad to skip it", "empty output"); ok = 0;
        }
        if (ok && !o->keep_duplicates) {
            key.len = 0;
            for (int c = 0; c < 3; c++) { bytevec_append(&key, r->v[c], strlen(r->v[c])); bytevec_push(&key, 0x1F); }
            if (strmap_get(&seen_rec, key.data, key.len) >= 0) { dups++; ok = 0; }
            else {
                keys[nkeys] = (unsigned char*)dup_bytes(key.data, key.len);
                strmap_put(&seen_rec, keys[nkeys], key.len, 1);
                nkeys++;
            }
        }
        if (ok) rows.data[j++] = *r; else row_free(r);
    }
    rows.len = j;
    if (rows.len == 0) fail_at(o->files[0], "records need \"instruction\" and \"output\" fields (\"input\" is optional)", "no usable records");
    uint64_t rng = o->seed;
    unsigned char* split_of = mallocCheck(rows.len);
    assign_splits(split_of, rows.len, o->split, &rng);
    DsWriter w[3];
    int have[3] = {0};
    char path[4200];
    for (size_t i = 0; i < rows.len; i++) have[split_of[i]] = 1;
    for (int k = 0; k < 3; k++) if (have[k]) {
        snprintf(path, sizeof path, "%s_%s.ds", o->out, split_name[k]);
        open_or_die(&w[k], path, EXAMPLES_MAGIC, DS_SFT, t.vocab_size, 0);
    }
    size_t count[3] = {0}, tokens[3] = {0}, resp_tokens[3] = {0}, truncated[3] = {0}, dropped[3] = {0}, with_input = 0;
    size_t* lens[3];
    size_t* plens[3];
    for (int k = 0; k < 3; k++) { lens[k] = mallocCheck((rows.len + 1) * sizeof(size_t)); plens[k] = mallocCheck((rows.len + 1) * sizeof(size_t)); }
    unsigned char* seen = mallocCheck((size_t)t.vocab_size);
    memset(seen, 0, (size_t)t.vocab_size);
    IntVec ids = {0};
    ByteVec prompt = {0}, mask = {0};
    size_t max_len = o->max_len > 0 ? (size_t)o->max_len : (size_t)-1;
    for (size_t i = 0; i < rows.len; i++) {
        Row* r = &rows.data[i];
        int k = split_of[i];
        int has_input = r->len[1] > 0 && !is_blank_line((unsigned char*)r->v[1], 0, r->len[1]);
        with_input += has_input;
        build_prompt(&prompt, has_input ? (alpaca ? ALPACA_WITH_INPUT : PLAIN_WITH_INPUT) : (alpaca ? ALPACA_NO_INPUT : PLAIN_NO_INPUT), r->v[0], r->v[1]);
        ids.len = 0;
        tokenizer_encode(&t, prompt.data, prompt.len, o->allow_special, &ids);
        size_t np = ids.len;
        tokenizer_encode(&t, r->v[2], r->len[2], o->allow_special, &ids);
        if (t.eot_id >= 0) intvec_push(&ids, t.eot_id);
        if (np >= max_len) { dropped[k]++; continue; }  // no room for even one response token
        if (ids.len > max_len) { ids.len = max_len; truncated[k]++; }
        mask.len = 0;
        for (size_t q = 0; q < ids.len; q++) bytevec_push(&mask, q >= np);
        ds_write_example(&w[k], ids.data, ids.len, (int)np, mask.data);
        for (size_t q = 0; q < ids.len; q++) seen[ids.data[q]] = 1;
        lens[k][count[k]] = ids.len; plens[k][count[k]] = np; count[k]++;
        tokens[k] += ids.len; resp_tokens[k] += ids.len - np;
    }
    report("dataprep sft: %zu records read from %s, %zu with an input field; template %s; seed %llu\n",
           records, o->files[0], with_input, o->template_name, (unsigned long long)o->seed);
    report("tokenizer: %s (V=%d)  max-len %d\n", o->tokenizer, t.vocab_size, o->max_len);
    report("bad rows skipped: %zu%s%s   duplicates removed: %zu\n", bad.bad, bad.bad ? "  first: " : "", bad.first_bad, dups);
    for (int k = 0; k < 3; k++) {
        if (!have[k]) { report("  %-5s none\n", split_name[k]); continue; }
        report("  %-5s %6zu examples  %8zu tokens (%zu in responses, trained on)  truncated %zu  dropped %zu (prompt >= max-len)\n",
               split_name[k], count[k], tokens[k], resp_tokens[k], truncated[k], dropped[k]);
        report_lengths("  total", lens[k], count[k]);
        report_lengths("  prompt", plens[k], count[k]);
    }
    report_coverage(seen, t.vocab_size);
    for (int k = 0; k < 3; k++)  // a split with nothing left in it is a mistake to stop at, not an empty file
        if (have[k] && !count[k])
            fail_at(o->files[0], "raise --max-len (every prompt must leave room for at least one response token)",
                    "every example of the %s split was dropped: %zu prompt(s) of --max-len %d tokens or more", split_name[k], dropped[k], o->max_len);
    for (int k = 0; k < 3; k++) if (have[k]) write_or_die(&w[k]);
    report_close();
    for (size_t i = 0; i < rows.len; i++) row_free(&rows.data[i]);
    for (size_t i = 0; i < nkeys; i++) free(keys[i]);
    for (int k = 0; k < 3; k++) { free(lens[k]); free(plens[k]); }
    free(keys); free(rows.data); free(seen_rec.slots); free(key.data); free(split_of); free(seen);
    free(ids.data); free(prompt.data); free(mask.data);
    tokenizer_free(&t);
    return 0;
}

// ---------------------------------------------------------------------------- tok: token classification (NER)
// CoNLL files: one "WORD<TAB>TAG" per line, sentences separated by blank or whitespace-only lines (WNUT 17's
// training file separates them with a lone TAB), "-DOCSTART-" lines ignored. Tags are BIO / IOB2: "O", "B-X",
// "I-X" (spans.h says how entities are read off them). The training file fixes the tag set (sorted by name,
// ids 0..K-1); a tag in --val/--test that training never saw is an error naming file:line.
// Each word is encoded on its own, as " " + WORD: a leading space, as Hugging Face's GPT-2 tokenizer does with
// is_split_into_words=True and add_prefix_space=True, so every word (the first too) is tokenized as it would
// be mid-sentence and no subword spans two words. The first subword of a word carries the word's tag, the
// others DS_TAG_NONE (-1 in training: no loss), as Hugging Face's token-classification recipe does with
// label_all_tokens=False. Bad input (a line without a tag, a tag outside BIO, an empty sentence between two
// separator lines, a word longer than --max-len tokens): a one-line error naming file:line, or with --skip-bad
// the sentence is skipped and counted. A sentence longer than --max-len tokens is cut after its last whole
// word that fits, counted in the summary.

typedef struct { const char* word; const char* tag; int line; } TokWord;
typedef struct { size_t first, n; int line; } TokSent;  // words [first, first + n) of its file, from line `line`
typedef struct { unsigned char* text; TokWord* w; size_t nw, capw; TokSent* s; size_t ns, caps; size_t bad_sents; } ConllFile;

static void conll_push_word(ConllFile* f, TokWord w) {
    if (f->nw == f->capw) { f->capw = f->capw ? 2 * f->capw : 4096; f->w = reallocCheck(f->w, f->capw * sizeof(TokWord)); }
    f->w[f->nw++] = w;
}
static void conll_end_sentence(ConllFile* f, size_t first, int line, int bad) {
    if (bad) { f->nw = first; f->bad_sents++; return; }  // --skip-bad: the whole sentence goes
    if (f->nw == first) return;
    if (f->ns == f->caps) { f->caps = f->caps ? 2 * f->caps : 1024; f->s = reallocCheck(f->s, f->caps * sizeof(TokSent)); }
    f->s[f->ns++] = (TokSent){first, f->nw - first, line};
}

// Reads one CoNLL file into sentences; bad lines stop here (or mark their sentence, with --skip-bad).
static void conll_read(ConllFile* f, const char* path, BadRows* bad) {
    memset(f, 0, sizeof *f);
    size_t n;
    f->text = read_file_or_die(path, &n);
    unsigned char* s = f->text;
    size_t first = 0;
    int line = 0, start_line = 0, sent_bad = 0, prev_sep = 0, pending_empty = 0;
    const char* hint_line = "each line is WORD<TAB>TAG (tags O, B-TYPE, I-TYPE); fix the line or pass --skip-bad";
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && s[e] != '\n') e++;
        line++;
        size_t end = e;
        while (end > i && (s[end - 1] == '\r' || s[end - 1] == ' ' || s[end - 1] == '\t')) end--;  // trailing white space
        int blank = 1;
        for (size_t k = i; k < end; k++) if (s[k] != ' ' && s[k] != '\t') blank = 0;
        size_t next = e < n ? e + 1 : n;
        if (blank || (end - i >= 10 && !memcmp(s + i, "-DOCSTART-", 10))) {  // a separator ends the sentence
            if (blank && prev_sep && f->ns + f->bad_sents > 0 && !pending_empty) pending_empty = line;
            conll_end_sentence(f, first, start_line, sent_bad);
            first = f->nw, sent_bad = 0, prev_sep = blank;
            i = next;
            continue;
        }
        if (pending_empty) {  // two separators in a row, with words after them: a sentence with no words
            bad_row(bad, path, pending_empty, "sentences are separated by ONE blank line; remove the extra one or pass --skip-bad",
                    "empty sentence (a second separator line in a row)");
            f->bad_sents++;
            pending_empty = 0;
        }
        if (f->nw == first) start_line = line;
        prev_sep = 0;
        char shown[64];  // the line as it was, for a message
        snprintf(shown, sizeof shown, "%.*s", (int)(end - i < 60 ? end - i : 60), (const char*)s + i);
        s[end] = 0;  // the line as a string (its newline, or a trailing blank, is overwritten)
        char* word = (char*)s + i;
        char* tab = strchr(word, '\t');
        const char* what = NULL;
        if (!tab) what = "a line without a tag (no TAB)";
        else {
            *tab = 0;
            char* tag = tab + 1;
            if (!*word) what = "a line without a word (it starts with a TAB)";
            else if (strchr(tag, '\t') || strchr(tag, ' ')) what = "more than two fields (expected WORD<TAB>TAG)";
            else if (!tag_is_bio(tag)) what = "a tag outside the BIO scheme (expected O, B-TYPE or I-TYPE)";
            else conll_push_word(f, (TokWord){word, tag, line});
        }
        if (what) {
            bad_row(bad, path, line, hint_line, "%s: \"%s\"", what, shown);
            sent_bad = 1;
        }
        i = next;
    }
    conll_end_sentence(f, first, start_line, sent_bad);
}
static void conll_free(ConllFile* f) { free(f->text); free(f->w); free(f->s); memset(f, 0, sizeof *f); }

static int tag_index(char** names, int K, const char* tag) {
    for (int k = 0; k < K; k++) if (!strcmp(names[k], tag)) return k;
    return -1;
}

static int cmd_tok(const Options* o) {
    if (!o->out) fail_at("tok", "pass --out PREFIX, e.g. --out data/wnut17", "missing --out");
    if (o->num_files || !o->given[0])
        fail_at("tok", "give the splits as files: --train F [--val F] [--test F] (CoNLL: WORD<TAB>TAG lines)", "no --train file");
    Tokenizer t;
    load_tokenizer(&t, o);
    report_open(o->out);
    BadRows bad = {o->skip_bad, 0, ""};
    ConllFile files[3];
    for (int k = 0; k < 3; k++) {
        if (o->given[k]) conll_read(&files[k], o->given[k], &bad);
        else memset(&files[k], 0, sizeof files[k]);
    }
    if (files[0].ns == 0) fail_at(o->given[0], "is it a CoNLL file (WORD<TAB>TAG lines)?", "no usable sentences");
    // the tag set: the training file's tags, sorted by name (so O is last, after the B- and I- tags)
    LabelMap tags = {0};
    for (size_t i = 0; i < files[0].nw; i++) label_add(&tags, files[0].w[i].tag);
    qsort(tags.names, (size_t)tags.count, sizeof(char*), cmp_label_str);
    int K = tags.count;
    if (K >= DS_TAG_NONE) fail_at(o->given[0], "a .ds file holds at most 254 tags", "%d distinct tags", K);
    size_t max_len = o->max_len > 0 ? (size_t)o->max_len : (size_t)-1;
    DsWriter w[3];
    char path[4200];
    size_t count[3] = {0}, words[3] = {0}, tokens[3] = {0}, cut[3] = {0}, cut_words[3] = {0}, entities[3] = {0}, skipped[3] = {0};
    size_t* per_tag = callocCheck((size_t)3 * K, sizeof(size_t));
    size_t* lens[3];
    unsigned char* seen = callocCheck((size_t)t.vocab_size, 1);
    IntVec ids = {0}, word_ids = {0};
    ByteVec buf = {0}, tagbytes = {0};
    for (int k = 0; k < 3; k++) {
        lens[k] = mallocCheck((files[k].ns + 1) * sizeof(size_t));
        if (!o->given[k]) continue;
        snprintf(path, sizeof path, "%s_%s.ds", o->out, split_name[k]);
        open_or_die(&w[k], path, EXAMPLES_MAGIC, DS_TOK, t.vocab_size, K);
        ds_writer_set_labels(&w[k], (const char* const*)tags.names);
        for (size_t si = 0; si < files[k].ns; si++) {
            const TokSent* st = &files[k].s[si];
            ids.len = 0, tagbytes.len = 0;
            size_t nw = 0;
            int ok = 1;
            for (size_t j = 0; j < st->n && ok; j++) {
                const TokWord* wd = &files[k].w[st->first + j];
                int tag = tag_index(tags.names, K, wd->tag);
                if (tag < 0) {
                    bad_row(&bad, o->given[k], wd->line, "the training file fixes the tag set: fix the tag, or pass --skip-bad",
                            "tag \"%.60s\" does not appear in the training file %.200s", wd->tag, o->given[0]);
                    ok = 0;
                    break;
                }
                buf.len = 0;
                bytevec_append(&buf, " ", 1);
                bytevec_append(&buf, wd->word, strlen(wd->word));
                word_ids.len = 0;
                tokenizer_encode(&t, buf.data, buf.len, o->allow_special, &word_ids);
                if (word_ids.len > max_len) {
                    bad_row(&bad, o->given[k], wd->line, "raise --max-len, or fix the word, or pass --skip-bad",
                            "the word \"%.40s\" is %zu tokens, longer than --max-len %d", wd->word, word_ids.len, o->max_len);
                    ok = 0;
                    break;
                }
                if (ids.len + word_ids.len > max_len) {  // the sentence is cut after its last whole word
                    cut[k]++;
                    cut_words[k] += st->n - j;
                    break;
                }
                for (size_t q = 0; q < word_ids.len; q++) {
                    intvec_push(&ids, word_ids.data[q]);
                    unsigned char b = q == 0 ? (unsigned char)tag : DS_TAG_NONE;
                    bytevec_append(&tagbytes, &b, 1);
                }
                nw++;
            }
            if (!ok) { skipped[k]++; continue; }
            if (nw == 0) { skipped[k]++; continue; }  // (cannot happen: a word has >= 1 token and fits)
            ds_write_example(&w[k], ids.data, ids.len, (int)nw, tagbytes.data);
            for (size_t q = 0; q < ids.len; q++) {
                seen[ids.data[q]] = 1;
                if (tagbytes.data[q] != DS_TAG_NONE) {
                    per_tag[(size_t)k * K + tagbytes.data[q]]++;
                    entities[k] += tags.names[tagbytes.data[q]][0] == 'B';
                }
            }
            lens[k][count[k]++] = ids.len;
            words[k] += nw;
            tokens[k] += ids.len;
        }
    }
    report("dataprep tok: %s%s%s%s%s\n", o->given[0], o->given[1] ? ", " : "", o->given[1] ? o->given[1] : "",
           o->given[2] ? ", " : "", o->given[2] ? o->given[2] : "");
    report("tokenizer: %s (V=%d)  max-len %d  each word encoded as \" \" + word; its first token carries the tag\n",
           o->tokenizer, t.vocab_size, o->max_len);
    report("bad lines: %zu%s%s\n", bad.bad, bad.bad ? "  first: " : "", bad.first_bad);
    report("tags (%d, from %s):", K, o->given[0]);
    for (int c = 0; c < K; c++) report(" %s", tags.names[c]);
    report("\n");
    for (int k = 0; k < 3; k++) {
        if (!o->given[k]) { report("  %-5s none\n", split_name[k]); continue; }
        report("  %-5s %6zu sentences  %7zu words  %8zu tokens  %zu B- tags (entities)  skipped %zu  cut %zu (%zu words dropped)\n",
               split_name[k], count[k], words[k], tokens[k], entities[k], skipped[k] + files[k].bad_sents, cut[k], cut_words[k]);
        report_lengths("  tokens", lens[k], count[k]);
        report("    tags:");
        for (int c = 0; c < K; c++) report(" %s=%zu", tags.names[c], per_tag[(size_t)k * K + c]);
        report("\n");
    }
    report_coverage(seen, t.vocab_size);
    snprintf(path, sizeof path, "%s_tags.txt", o->out);
    SafeWriter tw;
    safe_open(&tw, path);
    fprintf(tw.f, "# id\tname\ttrain_count (words)\n");
    for (int c = 0; c < K; c++) fprintf(tw.f, "%d\t%s\t%zu\n", c, tags.names[c], per_tag[c]);
    safe_close(&tw);
    for (int k = 0; k < 3; k++) if (o->given[k]) write_or_die(&w[k]);
    printf("wrote %s\n", path);
    report_close();
    for (int k = 0; k < 3; k++) conll_free(&files[k]), free(lens[k]);
    for (int c = 0; c < K; c++) free(tags.names[c]);
    free(tags.names); free(per_tag); free(seen); free(ids.data); free(word_ids.data); free(buf.data); free(tagbytes.data);
    tokenizer_free(&t);
    return 0;
}

// ---------------------------------------------------------------------------- train-tokenizer

static int cmd_train_tokenizer(const Options* o) {
    if (!o->out) fail_at("train-tokenizer", "pass --out FILE, e.g. --out data/tiny.tok", "missing --out");
    if (o->num_files == 0) fail_at("train-tokenizer", "name the text files to learn from", "no input files");
    if (o->vocab_size < 257 || o->vocab_size > 1000000)
        fail_at("--vocab-size", "257 is the byte tokenizer (256 bytes + <|endoftext|>); e.g. 512 or 4096 for a BPE", "must be in [257, 1000000], got %d", o->vocab_size);
    ByteVec all = {0};
    for (int f = 0; f < o->num_files; f++) {
        size_t n;
        unsigned char* s = read_file_or_die(o->files[f], &n);
        bytevec_append(&all, s, n);
        free(s);
    }
    if (all.len == 0) fail_at(o->files[0], "the input files are empty", "no text to learn from");
    Tokenizer t;
    double t0 = now_seconds();
    if (o->vocab_size == 257) tokenizer_init_bytes(&t);
    else tokenizer_train_bpe(&t, all.data, all.len, o->vocab_size, o->verbose);
    double dt = now_seconds() - t0;
    char err[4400];
    if (tokenizer_save(&t, o->out, err, sizeof err)) fail_at(o->out, "does the folder exist, and is it writable?", "%s", err);
    IntVec ids = {0};
    tokenizer_encode(&t, all.data, all.len, 0, &ids);
    printf("trained a %s tokenizer on %zu bytes in %.2f s: V=%d (%d merges), %zu tokens (%.2f bytes per token)\n",
           t.kind == TOK_BYTES ? "byte" : "BPE", all.len, dt, t.vocab_size, t.num_merges, ids.len, (double)all.len / (ids.len ? ids.len : 1));
    if (t.vocab_size < o->vocab_size) printf("note: stopped at V=%d: no pair occurs in the text any more\n", t.vocab_size);
    printf("wrote %s\n", o->out);
    free(ids.data); free(all.data);
    tokenizer_free(&t);
    return 0;
}

// The options each command reads; any other given is an error rather than silently ignored. The options
// that read files (--encoding, --skip-bad) apply to every command that reads text files.
static void check_options_apply(const char* cmd, const Options* o) {
    static const char* const uses[][2] = {
        {"encode", "--tokenizer --add-token --allow-special --bench"},
        {"decode", "--tokenizer --add-token"},
        {"text", "--tokenizer --out --add-token --allow-special --split --seed --docs --chunk-lines --format --skip-bad --encoding"},
        {"cls", "--tokenizer --out --add-token --allow-special --split --seed --skip-bad --encoding --input-format --no-header "
                "--text-col --label-col --labels --max-len --append-eot --keep-duplicates --oversample --train --val --test "
                "--augment --aug-ops --aug-p --synonyms"},
        {"sft", "--tokenizer --out --add-token --allow-special --split --seed --skip-bad --encoding --input-format --max-len "
                "--template --keep-duplicates --system"},
        {"tok", "--tokenizer --out --add-token --allow-special --skip-bad --encoding --max-len --train --val --test"},
        {"train-tokenizer", "--vocab-size --out --verbose --skip-bad --encoding"},
    };
    for (size_t c = 0; c < sizeof uses / sizeof uses[0]; c++) {
        if (strcmp(cmd, uses[c][0])) continue;
        for (int i = 0; i < o->num_seen; i++) {
            const char* w = strstr(uses[c][1], o->seen[i]);
            size_t n = strlen(o->seen[i]);
            while (w && !((w == uses[c][1] || w[-1] == ' ') && (w[n] == ' ' || !w[n]))) w = strstr(w + 1, o->seen[i]);
            if (!w) fail_at(o->seen[i], "run dataprep without arguments to see which options each command takes", "does not apply to dataprep %s", cmd);
        }
    }
}

// ---------------------------------------------------------------------------- main

#ifndef DATAPREP_NO_MAIN
int main(int argc, char** argv) {
    if (argc < 2) usage();
    Options o;
    parse_options(argc, argv, &o);
    const char* cmd = argv[1];
    check_options_apply(cmd, &o);
    g_text.encoding = o.encoding, g_text.skip_bad = o.skip_bad;
    // what this run reads, so no output can replace it (common.h's writers refuse), and --out's folder
    for (int i = 0; i < o.num_files; i++) protect_input(o.files[i], "input");
    for (int i = 0; i < 3; i++) protect_input(o.given[i], "input");
    protect_input(o.tokenizer, "--tokenizer");
    protect_input(o.labels, "--labels");
    protect_input(o.synonyms, "--synonyms");
    const char* slash = o.out ? strrchr(o.out, '/') : NULL;
    if (slash && slash > o.out) {  // PREFIX's folder is created when missing, as llm.c and Hugging Face do
        char dir[4200];
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - o.out), o.out);
        make_dirs(dir);
    }
    if (o.out && (!strcmp(cmd, "text") || !strcmp(cmd, "cls") || !strcmp(cmd, "sft") || !strcmp(cmd, "tok"))) {  // one writer per prefix:
        char lock[4300];  // two runs at once would mix their splits (each file whole, but from either run)
        snprintf(lock, sizeof lock, "%s.lock", o.out);
        lock_path(lock, o.out, "the output prefix", "wait for the other dataprep to finish, or choose another --out");
    }
    if (strcmp(cmd, "encode") == 0) return cmd_encode(&o);
    if (strcmp(cmd, "decode") == 0) return cmd_decode(&o);
    if (strcmp(cmd, "text") == 0) return cmd_text(&o);
    if (strcmp(cmd, "cls") == 0) return cmd_cls(&o);
    if (strcmp(cmd, "sft") == 0) return cmd_sft(&o);
    if (strcmp(cmd, "tok") == 0) return cmd_tok(&o);
    if (strcmp(cmd, "train-tokenizer") == 0) return cmd_train_tokenizer(&o);
    fprintf(stderr, "dataprep: unknown command \"%s\"\n", cmd);
    usage();
    return 1;
}
#endif
