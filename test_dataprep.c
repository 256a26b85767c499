// test_dataprep: tests of tokenizer.c, dataset.h and the dataprep program.
//   make test_dataprep && ./test_dataprep        (from the repo root; needs ../shared/data and ./dataprep)
// One line per check, [ OK ] or [FAIL], then "dataprep: N passed, M failed"; exit 1 on any failure.
// The GPT-2 ids come from an independent implementation (npm gpt-3-encoder, see
// dev/tokenizer_vectors.js) and are committed in ref/tokenizer_gpt2_vectors.txt.
#define DATAPREP_NO_MAIN
// the cmd_* functions of dataprep.c are unused here (the tests run ./dataprep for those)
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include "dataprep.c"

#define DATA "../shared/data"
#define GPT2 DATA "/gpt2_bpe"
#define TMP "test_tmp/dataprep"

static int g_pass, g_fail;
static void check(int ok, const char* fmt, ...) {
    va_list ap;
    printf(ok ? "[ OK ] " : "[FAIL] ");
    va_start(ap, fmt); vprintf(fmt, ap); va_end(ap);
    printf("\n");
    fflush(stdout);
    if (ok) g_pass++; else g_fail++;
}

// runs a shell command with stdout/stderr to TMP/out.txt, TMP/err.txt; returns its exit status
static int run(const char* fmt, ...) {
    char cmd[8192], full[8400];
    va_list ap;
    va_start(ap, fmt); vsnprintf(cmd, sizeof cmd, fmt, ap); va_end(ap);
    snprintf(full, sizeof full, "%s >" TMP "/out.txt 2>" TMP "/err.txt", cmd);
    int rc = system(full);
    return rc == 0 ? 0 : (rc == -1 ? -1 : (rc & 0xff00 ? (rc >> 8) & 0xff : rc));
}
static char* slurp(const char* path, size_t* n) {
    char err[256];
    size_t m;
    unsigned char* s = tok_read_file(path, n ? n : &m, err, sizeof err);
    return (char*)s;
}
static int file_contains(const char* path, const char* needle) {
    char* s = slurp(path, NULL);
    int ok = s && strstr(s, needle) != NULL;
    free(s);
    return ok;
}
static void write_text(const char* path, const char* text) {
    FILE* f = fopen(path, "wb");
    if (!f) { printf("cannot write %s\n", path); exit(1); }
    fputs(text, f);
    fclose(f);
}
// cuts the next line out of *p (in place); NULL at the end
static char* next_line(char** p) {
    if (!*p || !**p) return NULL;
    char* line = *p;
    char* nl = strchr(line, '\n');
    if (nl) { *nl = 0; *p = nl + 1; } else *p = line + strlen(line);
    return line;
}
static int hexval(int c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }
static int same_ids(const IntVec* a, const IntVec* b) { return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len * sizeof(int)) == 0); }
// the error message dataprep printed: first line of stderr
static const char* err_line(void) {
    static char buf[512];
    char* s = slurp(TMP "/err.txt", NULL);
    buf[0] = 0;
    if (s) { size_t k = strcspn(s, "\n"); snprintf(buf, sizeof buf, "%.*s", (int)(k < 300 ? k : 300), s); free(s); }
    return buf;
}

// ---------------------------------------------------------------------------- tokenizer

static void test_unicode_tables(void) {
    int agree = 1;
    for (uint32_t c = 0; c < 128; c++) {  // the ASCII fast path must give the table's answer
        int table = UCLASS_OTHER;
        for (int k = 0; k < UNICODE_NUM_RANGES; k++) if (c >= unicode_ranges[k].lo && c <= unicode_ranges[k].hi) table = unicode_ranges[k].cls;
        if (table != unicode_class(c)) agree = 0;
    }
    check(agree, "unicode: ASCII fast path agrees with the generated table for all 128 code points");
    check(unicode_class(0xE9) == UCLASS_LETTER && unicode_class(0x4E2D) == UCLASS_LETTER && unicode_class(0xD55C) == UCLASS_LETTER &&
          unicode_class(0x661) == UCLASS_NUMBER && unicode_class(0xBD) == UCLASS_NUMBER && unicode_class(0x216B) == UCLASS_NUMBER &&
          unicode_class(0x3000) == UCLASS_SPACE && unicode_class(0x85) == UCLASS_SPACE && unicode_class(0xFEFF) == UCLASS_OTHER &&
          unicode_class(0x1F600) == UCLASS_OTHER && unicode_class(0x301) == UCLASS_OTHER && unicode_class(0x10FFFF) == UCLASS_OTHER,
          "unicode: e-acute, CJK, Hangul are L; Arabic 1, 1/2, Roman XII are N; U+3000, U+0085 are space; U+FEFF, emoji, combining mark are other");
    const unsigned char bad[] = {0xC0, 0xAF, 0xED, 0xA0, 0x80, 0xF4, 0x90, 0x80, 0x80, 0xE4, 0xBD};
    uint32_t cp;
    int all_single = 1;
    for (size_t i = 0; i < sizeof bad; i++) if (utf8_decode(bad, sizeof bad, i, &cp) != 1 || cp != TOK_INVALID_CP) all_single = 0;
    check(all_single, "utf8: overlong, surrogate, > U+10FFFF and truncated sequences decode as single invalid bytes");
}

static void test_pretokenizer(void) {
    const char* text = "Hello  world's  \n\n 123abc!! ";
    // the 2-space run before "world" keeps its last space for " world"; so does "  \n\n " before "123"
    const char* want[] = {"Hello", " ", " world", "'s", "  \n\n", " 123", "abc", "!!", " "};
    size_t n = strlen(text), k = 0;
    int ok = 1;
    for (size_t i = 0; i < n; k++) {
        size_t e = pretok_next((const unsigned char*)text, n, i);
        if (k >= 9 || strlen(want[k]) != e - i || memcmp(want[k], text + i, e - i)) ok = 0;
        i = e;
    }
    check(ok && k == 9, "pretokenize: \"Hello  world's  \\n\\n 123abc!! \" splits like GPT-2's regex (%zu pieces)", k);
}

static void test_gpt2_vectors(Tokenizer* t) {
    char* s = slurp("ref/tokenizer_gpt2_vectors.txt", NULL);
    if (!s) { check(0, "gpt2 vectors: cannot read ref/tokenizer_gpt2_vectors.txt (run from the repo root)"); return; }
    int named = 0, named_ok = 0, rnd = 0, rnd_ok = 0, rb = 0, rb_ok = 0, rt_ok = 1, shown = 0;
    char* cursor = s;
    long long file_bytes = -1, file_tokens = -1;
    char file_hash[32] = "";
    for (char* line; (line = next_line(&cursor)) != NULL;) {
        if (strncmp(line, "#file\t", 6) == 0) {
            char name[256];
            sscanf(line + 6, "%255s %lld %lld %31s", name, &file_bytes, &file_tokens, file_hash);
            continue;
        }
        if (line[0] == '#') continue;
        char* tab1 = strchr(line, '\t');
        char* tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        if (!tab2) continue;
        *tab1 = 0; *tab2 = 0;
        const char* name = line; const char* hex = tab1 + 1; const char* idstr = tab2 + 1;
        ByteVec in = {0};
        for (size_t i = 0; hex[i] && hex[i + 1]; i += 2) bytevec_push(&in, (unsigned char)(hexval(hex[i]) * 16 + hexval(hex[i + 1])));
        IntVec want = {0}, got = {0};
        for (const char* p = idstr; *p;) { char* e; long v = strtol(p, &e, 10); if (e == p) break; intvec_push(&want, (int)v); p = e; }
        tokenizer_encode(t, in.data, in.len, 0, &got);
        int ok = same_ids(&want, &got);
        ByteVec back = {0};
        tokenizer_decode(t, got.data, got.len, &back, NULL);
        if (back.len != in.len || (in.len && memcmp(back.data, in.data, in.len))) rt_ok = 0;
        if (strncmp(name, "random_bytes_", 13) == 0) { rb++; rb_ok += ok; }
        else if (strncmp(name, "random_", 7) == 0) { rnd++; rnd_ok += ok; }
        else { named++; named_ok += ok; check(ok, "gpt2 vs gpt-3-encoder: %-26s %3zu bytes -> %3zu ids", name, in.len, want.len); }
        if (!ok && shown++ < 5) {
            printf("       %s: want", name);
            for (size_t i = 0; i < want.len && i < 20; i++) printf(" %d", want.data[i]);
            printf("\n       %s: got ", name);
            for (size_t i = 0; i < got.len && i < 20; i++) printf(" %d", got.data[i]);
            printf("\n");
        }
        free(in.data); free(want.data); free(got.data); free(back.data);
    }
    free(s);
    check(rnd > 0 && rnd_ok == rnd, "gpt2 vs gpt-3-encoder: %d/%d random mixed-script strings", rnd_ok, rnd);
    check(rb > 0 && rb_ok == rb, "gpt2 vs gpt-3-encoder: %d/%d random byte strings (mostly invalid UTF-8)", rb_ok, rb);
    check(rt_ok, "gpt2: decode(encode(x)) == x for every test string, invalid UTF-8 included");
    // all of Tiny Shakespeare: count and FNV-1a 64 of the ids, against the JS encoder
    size_t n;
    char* text = slurp(DATA "/tinyshakespeare/input.txt", &n);
    if (!text) { check(0, "tinyshakespeare: cannot read " DATA "/tinyshakespeare/input.txt"); return; }
    IntVec ids = {0};
    tokenizer_encode(t, text, n, 0, &ids);
    uint64_t h = 14695981039346656037ULL;  // FNV-1a 64 offset basis
    for (size_t i = 0; i < ids.len; i++) for (int k = 0; k < 4; k++) { h ^= (ids.data[i] >> (8 * k)) & 0xFF; h *= 1099511628211ULL; }
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)h);
    check(ids.len == 338025 && (long long)ids.len == file_tokens && strcmp(hash, file_hash) == 0,
          "tinyshakespeare: %zu tokens (want 338025), ids hash %s (gpt-3-encoder: %s)", ids.len, hash, file_hash);
    ByteVec back = {0};
    tokenizer_decode(t, ids.data, ids.len, &back, NULL);
    check(back.len == n && memcmp(back.data, text, n) == 0, "tinyshakespeare: decode(encode(text)) == text, %zu bytes", n);
    free(back.data); free(ids.data); free(text);
}

static void test_special_tokens(Tokenizer* t) {
    IntVec a = {0}, b = {0};
    const char* s = "a<|endoftext|>b";
    tokenizer_encode(t, s, strlen(s), 0, &a);
    tokenizer_encode(t, s, strlen(s), 1, &b);
    check(a.len == 9 && b.len == 3 && b.data[1] == 50256, "special: <|endoftext|> is text by default (%zu ids), 50256 with allow_special (%zu ids)", a.len, b.len);
    Tokenizer t2;
    tokenizer_load_or_die(&t2, GPT2);
    int sep = tokenizer_add_special(&t2, "<|sep|>");
    int again = tokenizer_add_special(&t2, "<|sep|>");
    a.len = 0;
    tokenizer_encode(&t2, "x<|sep|>y", 9, 1, &a);
    ByteVec d = {0};
    tokenizer_decode(&t2, a.data, a.len, &d, NULL);
    check(sep == 50257 && again == sep && t2.vocab_size == 50258 && a.len == 3 && a.data[1] == sep && d.len == 9 && memcmp(d.data, "x<|sep|>y", 9) == 0,
          "special: add_special(\"<|sep|>\") -> id %d, V=%d, encodes and decodes", sep, t2.vocab_size);
    free(a.data); free(b.data); free(d.data);
    tokenizer_free(&t2);
}

static void test_invalid_utf8_fuzz(Tokenizer* t) {
    uint64_t rng = 42;
    int ok = 1;
    unsigned char buf[256];
    IntVec ids = {0};
    ByteVec back = {0};
    for (int iter = 0; iter < 3000 && ok; iter++) {
        size_t n = rng_below(&rng, sizeof buf);
        for (size_t i = 0; i < n; i++) buf[i] = rng_below(&rng, 4) ? (unsigned char)rng_next(&rng) : (unsigned char)" \n'e"[rng_below(&rng, 4)];
        ids.len = 0; back.len = 0;
        tokenizer_encode(t, buf, n, iter & 1, &ids);
        for (size_t i = 0; i < ids.len; i++) if (ids.data[i] < 0 || ids.data[i] >= t->vocab_size) ok = 0;
        tokenizer_decode(t, ids.data, ids.len, &back, NULL);
        if (back.len != n || (n && memcmp(back.data, buf, n))) ok = 0;
    }
    check(ok, "gpt2: 3000 random byte strings encode to valid ids and decode back exactly");
    free(ids.data); free(back.data);
}

static void test_bytes_and_training(void) {
    Tokenizer b;
    tokenizer_init_bytes(&b);
    IntVec ids = {0};
    tokenizer_encode(&b, "h\xC3\xA9!", 4, 0, &ids);
    check(b.vocab_size == 257 && b.eot_id == 256 && ids.len == 4 && ids.data[1] == 0xC3 && ids.data[2] == 0xA9,
          "bytes tokenizer: V=257, <|endoftext|>=256, ids are the bytes");
    tokenizer_free(&b);
    size_t n;
    char* text = slurp(DATA "/tinyshakespeare/input.txt", &n);
    if (!text) { check(0, "train bpe: no input"); return; }
    size_t m = n < 200000 ? n : 200000;
    Tokenizer t, t2, t3;
    double t0 = now_seconds();
    tokenizer_train_bpe(&t, (unsigned char*)text, m, 512, 0);
    double dt = now_seconds() - t0;
    ids.len = 0;
    tokenizer_encode(&t, text, m, 0, &ids);
    ByteVec back = {0};
    tokenizer_decode(&t, ids.data, ids.len, &back, NULL);
    check(t.vocab_size == 512 && t.num_merges == 255 && t.eot_id == 511 && back.len == m && memcmp(back.data, text, m) == 0,
          "train bpe: V=512 on 200 KB of Shakespeare in %.2f s, round trip exact", dt);
    // 255 merges on English give about 2 bytes per token (1.99 seen); 1.8 leaves room for small changes
    check(ids.len * 1.8 < m, "train bpe: compresses to %.2f bytes per token (> 1.8)", (double)m / ids.len);
    char err[512];
    int saved = tokenizer_save(&t, TMP "/shakes512.tok", err, sizeof err) == 0;
    int loaded = saved && tokenizer_load(&t2, TMP "/shakes512.tok", err, sizeof err) == 0;
    IntVec ids2 = {0};
    if (loaded) tokenizer_encode(&t2, text, n, 0, &ids2);
    IntVec ids3 = {0};
    tokenizer_encode(&t, text, n, 0, &ids3);
    check(loaded && same_ids(&ids2, &ids3) && t2.vocab_size == t.vocab_size && t2.eot_id == t.eot_id,
          "train bpe: save + load gives the same tokenizer (%zu ids on the whole file)", ids3.len);
    tokenizer_train_bpe(&t3, (unsigned char*)text, m, 512, 0);
    check(t3.num_merges == t.num_merges && memcmp(t3.merge_left, t.merge_left, 255 * sizeof(int)) == 0 && memcmp(t3.merge_right, t.merge_right, 255 * sizeof(int)) == 0,
          "train bpe: training twice gives the same merges (deterministic tie-breaking)");
    if (loaded) tokenizer_free(&t2);
    tokenizer_free(&t); tokenizer_free(&t3);
    free(ids.data); free(ids2.data); free(ids3.data); free(back.data); free(text);
}

static void test_tokenizer_file_errors(void) {
    struct { const char* text; const char* expect; } cases[] = {
        {"hello\n", ":1: not a finetune.c tokenizer file"},
        {"finetune.c tokenizer 9\ntype bpe\nmerges 0\nspecials 0\n", "version 9"},
        {"finetune.c tokenizer 1\ntype bpe\nmerges 1\n300 5\nspecials 0\n", ":4: merge 0 uses id 300"},
        {"finetune.c tokenizer 1\ntype bpe\nmerges 2\n104 101\n", ":5: expected merge 1"},
        {"finetune.c tokenizer 1\ntype bpe\nmerges 1\n104 101\nspecials 1\n", "expected special token 0"},
        {"finetune.c tokenizer 1\ntype bpe\nmerges 2\n104 101\n104 101\nspecials 0\n", "repeats an earlier pair"},
    };
    int ok = 1;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        Tokenizer t;
        char err[512] = "";
        int rc = tokenizer_parse(&t, (const unsigned char*)cases[k].text, strlen(cases[k].text), "x.tok", err, sizeof err);
        if (rc == 0) { ok = 0; tokenizer_free(&t); printf("       accepted: %s\n", cases[k].text); }
        else if (!strstr(err, cases[k].expect)) { ok = 0; printf("       message \"%s\" lacks \"%s\"\n", err, cases[k].expect); }
    }
    check(ok, "tokenizer file: 6 malformed files rejected with file:line messages");
    char err[512];
    Tokenizer t;
    check(tokenizer_load(&t, TMP "/no_such_dir/x", err, sizeof err) != 0 && strstr(err, "no such file"), "tokenizer: a missing PATH says \"%s\"", err);
}

// ---------------------------------------------------------------------------- dataset.h

static void test_dataset_files(void) {
    char err[512] = "";
    DsWriter w;
    int ids[5] = {1, 50256, 65535, 3, 0};
    int ok = ds_writer_open(&w, TMP "/t16.bin", TOKENS_MAGIC, 0, 50257, 0, err, sizeof err) == 0;
    ds_write_tokens(&w, ids, 5);
    ok = ok && ds_writer_close(&w, err, sizeof err) == 0;
    Dataset ds;
    ok = ok && dataset_open(&ds, TMP "/t16.bin", err, sizeof err) == 0;
    check(ok && ds.magic == TOKENS_MAGIC && ds.bytes_per_token == 2 && ds.vocab_size == 50257 && ds.count == 5 &&
          dataset_token(&ds, 1) == 50256 && dataset_token(&ds, 2) == 65535 && ds.size == 1024 + 10,
          "dataset: LM token file, uint16, header and tokens read back %s", err);
    if (ok) dataset_close(&ds);
    int big[2] = {70000, 5};
    ok = ds_writer_open(&w, TMP "/t32.bin", TOKENS_MAGIC, 0, 100000, 0, err, sizeof err) == 0;
    ds_write_tokens(&w, big, 2);
    ok = ok && ds_writer_close(&w, err, sizeof err) == 0 && dataset_open(&ds, TMP "/t32.bin", err, sizeof err) == 0;
    check(ok && ds.bytes_per_token == 4 && dataset_token(&ds, 0) == 70000 && ds.count == 2, "dataset: LM token file, uint32 when V > 65536");
    if (ok) dataset_close(&ds);
    ok = ds_writer_open(&w, TMP "/llmc.bin", LLMC_MAGIC, 0, 50257, 0, err, sizeof err) == 0;
    ds_write_tokens(&w, ids, 5);
    ok = ok && ds_writer_close(&w, err, sizeof err) == 0 && dataset_open(&ds, TMP "/llmc.bin", err, sizeof err) == 0;
    check(ok && ds.magic == LLMC_MAGIC && ds.count == 5 && dataset_token(&ds, 4) == 0, "dataset: llm.c token file (20240520) written and read");
    if (ok) dataset_close(&ds);
    // example files
    int e1[3] = {10, 20, 30}, e2[1] = {7};
    unsigned char m1[3] = {0, 1, 1};
    ok = ds_writer_open(&w, TMP "/sft.ds", EXAMPLES_MAGIC, DS_SFT, 50257, 0, err, sizeof err) == 0;
    ds_write_example(&w, e1, 3, 1, m1);
    unsigned char m2[1] = {1};
    ds_write_example(&w, e2, 1, 0, m2);
    ok = ok && ds_writer_close(&w, err, sizeof err) == 0 && dataset_open(&ds, TMP "/sft.ds", err, sizeof err) == 0;
    Example ex, ex2;
    ok = ok && dataset_get(&ds, 0, &ex) == 0 && dataset_get(&ds, 1, &ex2) == 0;
    check(ok && ds.kind == DS_SFT && ds.count == 2 && ds.total_tokens == 4 && ds.max_len == 3 && ex.n == 3 && ex.label == 1 &&
          dataset_id(ex.ids, 2, 2) == 30 && ex.mask[0] == 0 && ex.mask[2] == 1 && ex2.n == 1 && dataset_id(ex2.ids, 2, 0) == 7 &&
          dataset_get(&ds, 2, &ex) != 0, "dataset: SFT example file: records, masks, index, out-of-range get refused");
    if (ok) dataset_close(&ds);
    // damaged files
    write_text(TMP "/junk.bin", "not a dataset");
    check(dataset_open(&ds, TMP "/junk.bin", err, sizeof err) != 0 && strstr(err, "smaller than the 1024-byte header"), "dataset: short file refused: %s", err);
    FILE* f = fopen(TMP "/t16.bin", "r+b");
    if (f) { fputc(0x11, f); fclose(f); }
    check(dataset_open(&ds, TMP "/t16.bin", err, sizeof err) != 0 && strstr(err, "magic number"), "dataset: wrong magic refused: %s", err);
    // a truncated token file: header says more than is there
    ok = ds_writer_open(&w, TMP "/trunc.bin", TOKENS_MAGIC, 0, 50257, 0, err, sizeof err) == 0;
    ds_write_tokens(&w, ids, 5);
    ok = ok && ds_writer_close(&w, err, sizeof err) == 0;
    size_t n;
    char* s = slurp(TMP "/trunc.bin", &n);
    f = fopen(TMP "/trunc.bin", "wb");
    if (f && s) { fwrite(s, 1, n - 4, f); fclose(f); }
    free(s);
    check(dataset_open(&ds, TMP "/trunc.bin", err, sizeof err) != 0 && strstr(err, "truncated"), "dataset: truncated token file refused: %s", err);
}

// ---------------------------------------------------------------------------- CSV parser

static void test_csv_parser(void) {
    const char* csv = "a,b\r\n\"x, \"\"quoted\"\"\",\"multi\nline\"\n,empty first\n";
    Fields fs = {0};
    size_t pos = 0, start;
    const char* err = NULL;
    size_t n = strlen(csv);
    int r1 = next_record((const unsigned char*)csv, n, &pos, 1, &fs, &start, &err);
    int ok = r1 == 1 && fs.nf == 2 && strcmp((char*)fs.f[0].data, "a") == 0 && strcmp((char*)fs.f[1].data, "b") == 0;
    int r2 = next_record((const unsigned char*)csv, n, &pos, 1, &fs, &start, &err);
    ok = ok && r2 == 1 && fs.nf == 2 && strcmp((char*)fs.f[0].data, "x, \"quoted\"") == 0 && strcmp((char*)fs.f[1].data, "multi\nline") == 0;
    int r3 = next_record((const unsigned char*)csv, n, &pos, 1, &fs, &start, &err);
    ok = ok && r3 == 1 && fs.nf == 2 && fs.f[0].len == 0 && strcmp((char*)fs.f[1].data, "empty first") == 0;
    ok = ok && next_record((const unsigned char*)csv, n, &pos, 1, &fs, &start, &err) == 0;
    check(ok, "csv: RFC 4180 quoting: commas, doubled quotes and newlines inside quotes, CRLF, empty fields");
    const char* bad1 = "\"never closed,1\n";
    pos = 0;
    int b1 = next_record((const unsigned char*)bad1, strlen(bad1), &pos, 1, &fs, &start, &err);
    const char* bad2 = "ab\"c,1\n";
    pos = 0;
    const char* err2 = NULL;
    int b2 = next_record((const unsigned char*)bad2, strlen(bad2), &pos, 1, &fs, &start, &err2);
    check(b1 == -1 && strstr(err, "unbalanced") && b2 == -1 && strstr(err2, "unquoted"), "csv: unbalanced quotes and a stray quote are errors");
    for (int k = 0; k < fs.cap; k++) free(fs.f[k].data);
    free(fs.f);
}

// ---------------------------------------------------------------------------- the dataprep program

static void test_cli(void) {
    FILE* probe = fopen("./dataprep", "rb");
    if (!probe) { check(0, "cli: ./dataprep not found (hint: make dataprep)"); return; }
    fclose(probe);
    Dataset ds;
    char err[512];
    // encode / decode
    write_text(TMP "/in.txt", "Hello world! It's caf\xC3\xA9 \xFF\n");
    int rc = run("./dataprep encode --tokenizer " GPT2 " < " TMP "/in.txt");
    check(rc == 0 && file_contains(TMP "/out.txt", "15496 995 0 632 338 40304 220 187 198"), "cli: encode prints GPT-2 ids");
    rc = run("./dataprep encode --tokenizer " GPT2 " < " TMP "/in.txt | ./dataprep decode --tokenizer " GPT2 " > " TMP "/back.txt; cmp " TMP "/back.txt " TMP "/in.txt");
    check(rc == 0, "cli: encode | decode gives the input back byte for byte (invalid UTF-8 included)");
    rc = run("echo 12 abc | ./dataprep decode --tokenizer " GPT2);
    check(rc != 0 && strstr(err_line(), "stdin:1: error:"), "cli: decode of a non-number fails: %s", err_line());
    rc = run("echo hi | ./dataprep encode --tokenizer " TMP "/missing_tokenizer");
    check(rc != 0 && strstr(err_line(), "no such file"), "cli: missing tokenizer: %s", err_line());
    // text
    rc = run("./dataprep text --tokenizer " GPT2 " --out " TMP "/ts --split 100/0/0 " DATA "/tinyshakespeare/input.txt");
    int ok = rc == 0 && dataset_open(&ds, TMP "/ts_train.bin", err, sizeof err) == 0;
    check(ok && ds.count == 338026 && dataset_token(&ds, 0) == 50256 && dataset_token(&ds, 1) == 5962,
          "cli text: Tiny Shakespeare as one document = <|endoftext|> + 338,025 tokens (%llu)", ok ? (unsigned long long)ds.count : 0ULL);
    if (ok) dataset_close(&ds);
    rc = run("./dataprep text --tokenizer " GPT2 " --out " TMP "/ts --chunk-lines 100 --seed 7 " DATA "/tinyshakespeare/input.txt");
    uint64_t c[3] = {0};
    ok = rc == 0;
    for (int k = 0; k < 3 && ok; k++) {
        char p[256];
        snprintf(p, sizeof p, TMP "/ts_%s.bin", split_name[k]);
        ok = dataset_open(&ds, p, err, sizeof err) == 0 && ds.magic == TOKENS_MAGIC && ds.bytes_per_token == 2 && ds.vocab_size == 50257;
        if (ok) { c[k] = ds.count; dataset_close(&ds); }
    }
    double frac = ok ? (double)c[1] / (c[0] + c[1] + c[2]) : 0;
    check(ok && frac > 0.08 && frac < 0.12, "cli text: --chunk-lines 100 splits 80/10/10: %llu/%llu/%llu tokens", (unsigned long long)c[0], (unsigned long long)c[1], (unsigned long long)c[2]);
    rc = run("cp " TMP "/ts_val.bin " TMP "/ts_val_first.bin && ./dataprep text --tokenizer " GPT2 " --out " TMP "/ts --chunk-lines 100 --seed 7 " DATA "/tinyshakespeare/input.txt && cmp " TMP "/ts_val.bin " TMP "/ts_val_first.bin");
    check(rc == 0, "cli text: same seed, same files byte for byte");
    rc = run("./dataprep text --tokenizer " GPT2 " --out " TMP "/st --docs line --format llmc " DATA "/tinystories/tiny_stories.txt");
    ok = rc == 0 && dataset_open(&ds, TMP "/st_train.bin", err, sizeof err) == 0;
    check(ok && ds.magic == LLMC_MAGIC && file_contains(TMP "/st_summary.txt", "5758 documents"), "cli text: TinyStories, --docs line (5758 non-empty lines: stories hold paragraphs), llm.c format, summary written");
    if (ok) dataset_close(&ds);
    rc = run("./dataprep text --tokenizer " GPT2 " --out " TMP "/one " DATA "/tinyshakespeare/input.txt");
    check(rc != 0 && strstr(err_line(), "got no text"), "cli text: one document cannot be split 80/10/10: %s", err_line());
    write_text(TMP "/empty.txt", "");
    rc = run("./dataprep text --tokenizer " GPT2 " --out " TMP "/e " TMP "/empty.txt");
    check(rc != 0 && strstr(err_line(), "no text"), "cli text: empty input: %s", err_line());
    write_text(TMP "/in8.txt", "Hello world! It's caf\xC3\xA9.\n");
    rc = run("./dataprep text --tokenizer " GPT2 " --out " TMP "/new/sub/x --split 100/0/0 " TMP "/in8.txt");
    check(rc == 0 && access(TMP "/new/sub/x_train.bin", F_OK) == 0, "cli text: --out PREFIX in a missing folder creates it (rc %d)", rc);
    rc = run("./dataprep text --tokenizer " GPT2 " --out " TMP "/in8.txt/x --split 100/0/0 " TMP "/in8.txt");
    check(rc != 0 && strstr(err_line(), "exists and is not a folder"), "cli text: unwritable output: %s", err_line());
    rc = run("./dataprep text --tokenizer " GPT2 " --out " TMP "/in8.txt_x --split 100/0/0 " TMP "/in8.txt");
    check(rc == 0, "cli text: an output beside the input is fine (rc %d)", rc);
    // text that is not UTF-8: an error naming file:line, --encoding latin-1 converts, --skip-bad drops and counts
    write_text(TMP "/latin1.txt", "good line\nun caf\xE9 noir\nlast line\n");
    rc = run("./dataprep text --tokenizer bytes --out " TMP "/l1 --split 100/0/0 " TMP "/latin1.txt");
    check(rc != 0 && strstr(err_line(), "latin1.txt: error: line 2: byte 0xE9 at column 7 is not valid UTF-8"), "cli text: Latin-1 input stops at file:line: %s", err_line());
    rc = run("./dataprep text --tokenizer bytes --encoding latin-1 --out " TMP "/l1 --split 100/0/0 " TMP "/latin1.txt");
    ok = rc == 0 && dataset_open(&ds, TMP "/l1_train.bin", err, sizeof err) == 0;
    check(ok && ds.count == 1 + 34 && dataset_token(&ds, 17) == 0xC3 && dataset_token(&ds, 18) == 0xA9,
          "cli text: --encoding latin-1 turns byte E9 into U+00E9 (C3 A9): %llu tokens", ok ? (unsigned long long)ds.count : 0ull);
    if (ok) dataset_close(&ds);
    rc = run("./dataprep text --tokenizer bytes --skip-bad --out " TMP "/l1s --split 100/0/0 " TMP "/latin1.txt");
    ok = rc == 0 && dataset_open(&ds, TMP "/l1s_train.bin", err, sizeof err) == 0;
    check(ok && ds.count == 1 + 20 && file_contains(TMP "/l1s_summary.txt", "lines not UTF-8, skipped (--skip-bad): 1  first: " TMP "/latin1.txt:2"),
          "cli text: --skip-bad drops the Latin-1 line and the summary counts it");
    if (ok) dataset_close(&ds);
    const char* bad_utf8[] = {"\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82", "\x80"};  // overlong, surrogate, > U+10FFFF, cut, lone
    for (int k = 0; k < 5; k++) {
        char text[64];
        snprintf(text, sizeof text, "ok\nx%sy\n", bad_utf8[k]);
        write_text(TMP "/bad8.txt", text);
        rc = run("./dataprep text --tokenizer bytes --out " TMP "/b8 --split 100/0/0 " TMP "/bad8.txt");
        check(rc != 0 && strstr(err_line(), "line 2: byte"), "cli text: invalid UTF-8 form %d refused: %s", k, err_line());
    }
    write_text(TMP "/good8.txt", "\xF0\x9F\x98\x80 \xE2\x82\xAC \xC3\xA9 \xF4\x8F\xBF\xBF\n");  // 4-, 3-, 2-byte forms and U+10FFFF
    rc = run("./dataprep text --tokenizer bytes --out " TMP "/g8 --split 100/0/0 " TMP "/good8.txt");
    check(rc == 0, "cli text: valid 2-, 3- and 4-byte UTF-8 up to U+10FFFF accepted (rc %d)", rc);
    rc = run("./dataprep cls --tokenizer bytes --out " TMP "/sp --split 90/10/0 --train " TMP "/good.csv --test " TMP "/good.csv");
    check(rc != 0 && strstr(err_line(), "--split: error: cannot apply with --train/--val/--test"), "cli cls: --split with --train/--test refused: %s", err_line());
    rc = run("./dataprep text --tokenizer bytes --out " TMP "/n --max-len 99999999999 " TMP "/good8.txt");
    check(rc != 0 && strstr(err_line(), "is not an integer in [0, 1000000000]"), "cli: --max-len out of range refused: %s", err_line());
    write_text(TMP "/one.json", "[{\"instruction\": \"hi there\", \"output\": \"x\"}]");
    rc = run("./dataprep sft --tokenizer bytes --max-len 5 --out " TMP "/sd " TMP "/one.json");
    check(rc == 1 && strstr(err_line(), "every example of the train split was dropped"), "cli sft: every example dropped by --max-len: %s", err_line());
    rc = run("./dataprep text --tokenizer bytes --labels a,b --out " TMP "/n " TMP "/good8.txt");
    check(rc != 0 && strstr(err_line(), "--labels: error: does not apply to dataprep text"), "cli: an option the command does not read is refused: %s", err_line());
    int lk = lock_path(TMP "/lk.lock", TMP "/lk", "the output prefix", NULL);  // as another dataprep writing to lk_*
    rc = run("./dataprep text --tokenizer bytes --out " TMP "/lk " TMP "/good8.txt");
    close(lk);
    check(rc != 0 && strstr(err_line(), "lk: error: the output prefix is in use by another process (pid "), "cli: two runs to one prefix: the second stops: %s", err_line());
    // no summary temp file is left by any of these failures
    rc = run("ls " TMP " | grep -c '[.]tmp' > " TMP "/tmpcount.txt; true");
    check(file_contains(TMP "/tmpcount.txt", "0"), "cli: no temp file left in the output folder after the failures above");
    // cls: SMS spam (no header, label first), stratified split
    rc = run("./dataprep cls --tokenizer " GPT2 " --out " TMP "/sms --no-header --label-col 0 --text-col 1 --input-format tsv " DATA "/sms_spam/SMSSpamCollection");
    ok = rc == 0 && dataset_open(&ds, TMP "/sms_train.ds", err, sizeof err) == 0;
    Example ex;
    int spam = 0;
    if (ok) { for (uint64_t i = 0; i < ds.count; i++) if (dataset_get(&ds, i, &ex) == 0) spam += ex.label == 1; }
    double spam_frac = ok && ds.count ? (double)spam / ds.count : 0;
    check(ok && ds.kind == DS_CLS && ds.num_labels == 2 && file_contains(TMP "/sms_labels.txt", "1\tspam") && spam_frac > 0.11 && spam_frac < 0.15,
          "cli cls: SMS spam -> %llu train examples, spam %.1f%% (stratified), labels file", ok ? (unsigned long long)ds.count : 0ULL, 100 * spam_frac);
    check(file_contains(TMP "/sms_summary.txt", "duplicates removed: 414"), "cli cls: SMS spam duplicates removed and reported (414, as Python's len(set(strip)))");
    if (ok) dataset_close(&ds);
    // cls: SST-2 with given splits
    rc = run("./dataprep cls --tokenizer " GPT2 " --out " TMP "/sst2 --text-col sentence --train " DATA "/sst2/glue/train.tsv --val " DATA "/sst2/glue/dev.tsv --keep-duplicates");
    ok = rc == 0 && dataset_open(&ds, TMP "/sst2_val.ds", err, sizeof err) == 0;
    check(ok && ds.count == 872 && ds.num_labels == 2, "cli cls: SST-2 given splits, dev = %llu examples (want 872)", ok ? (unsigned long long)ds.count : 0ULL);
    if (ok) dataset_close(&ds);
    ok = dataset_open(&ds, TMP "/sst2_train.ds", err, sizeof err) == 0;
    check(ok && ds.count == 67349, "cli cls: SST-2 train = %llu examples with --keep-duplicates (want 67349)", ok ? (unsigned long long)ds.count : 0ULL);
    if (ok) dataset_close(&ds);
    // cls: CSV and JSONL, bad rows
    write_text(TMP "/good.csv", "text,label\n\"great, really\",pos\nawful,neg\n\"so \"\"fine\"\"\",pos\nmeh,neg\nok,pos\nbad,neg\nnice,pos\nugh,neg\nyay,pos\nno,neg\n");
    rc = run("./dataprep cls --tokenizer " GPT2 " --out " TMP "/csv --split 60/20/20 " TMP "/good.csv");
    check(rc == 0 && file_contains(TMP "/csv_labels.txt", "0\tneg\t3") && file_contains(TMP "/csv_labels.txt", "1\tpos\t3"), "cli cls: CSV with quotes, labels sorted, stratified 60/20/20");
    write_text(TMP "/bad.csv", "text,label\nfine,pos\n\"broken,neg\nok,pos\n");
    rc = run("./dataprep cls --tokenizer " GPT2 " --out " TMP "/bad " TMP "/bad.csv");
    check(rc != 0 && strstr(err_line(), "bad.csv:3: error: unbalanced quotes"), "cli cls: unbalanced quotes: %s", err_line());
    write_text(TMP "/bad.tsv", "text\tlabel\nfine\tpos\ntoo\tmany\tcols\nok\tneg\n\tneg\n");
    rc = run("./dataprep cls --tokenizer " GPT2 " --out " TMP "/bad " TMP "/bad.tsv");
    check(rc != 0 && strstr(err_line(), "bad.tsv:3: error: wrong column count: expected 2, found 3"), "cli cls: wrong column count: %s", err_line());
    rc = run("./dataprep cls --tokenizer " GPT2 " --out " TMP "/bad --skip-bad --split 50/50/0 " TMP "/bad.tsv");
    check(rc == 0 && file_contains(TMP "/bad_summary.txt", "bad rows skipped: 2"), "cli cls: --skip-bad skips and counts the bad rows (wrong columns, empty text)");
    write_text(TMP "/bad.jsonl", "{\"text\": \"fine\", \"label\": 1}\n{\"text\": \"broken\", \"label\": }\n");
    rc = run("./dataprep cls --tokenizer " GPT2 " --out " TMP "/bad " TMP "/bad.jsonl");
    check(rc != 0 && strstr(err_line(), "bad.jsonl:2: error: invalid JSON"), "cli cls: invalid JSON: %s", err_line());
    write_text(TMP "/lab.jsonl", "{\"text\": \"fine\", \"label\": \"pos\"}\n{\"text\": \"odd\", \"label\": \"maybe\"}\n");
    rc = run("./dataprep cls --tokenizer " GPT2 " --out " TMP "/bad --labels neg,pos " TMP "/lab.jsonl");
    check(rc != 0 && strstr(err_line(), "lab.jsonl:2: error: unknown label \"maybe\""), "cli cls: unknown label: %s", err_line());
    rc = run("./dataprep cls --tokenizer " GPT2 " --out " TMP "/bad --text-col review " TMP "/good.csv");
    check(rc != 0 && strstr(err_line(), "no column named \"review\""), "cli cls: unknown column: %s", err_line());
    // cls: truncation, oversampling
    rc = run("./dataprep cls --tokenizer " GPT2 " --out " TMP "/trunc --split 60/20/20 --max-len 2 --append-eot " TMP "/good.csv");
    ok = rc == 0 && dataset_open(&ds, TMP "/trunc_train.ds", err, sizeof err) == 0;
    int last_is_eot = ok && dataset_get(&ds, 0, &ex) == 0 && ex.n == 2 && dataset_id(ex.ids, 2, 1) == 50256;
    check(ok && ds.max_len == 2 && last_is_eot && file_contains(TMP "/trunc_summary.txt", "train       6 examples         12 tokens  truncated 4"),
          "cli cls: --max-len 2 --append-eot: examples cut to 1 token + <|endoftext|>, truncations counted");
    if (ok) dataset_close(&ds);
    write_text(TMP "/imb.tsv", "text\tlabel\na\tx\nb\tx\nc\tx\nd\tx\ne\tx\nf\tx\ng\ty\nh\ty\n");
    rc = run("./dataprep cls --tokenizer " GPT2 " --out " TMP "/imb --split 100/0/0 --oversample " TMP "/imb.tsv");
    ok = rc == 0 && dataset_open(&ds, TMP "/imb_train.ds", err, sizeof err) == 0;
    int ny = 0;
    if (ok) { for (uint64_t i = 0; i < ds.count; i++) if (dataset_get(&ds, i, &ex) == 0) ny += ex.label == 1; }
    check(ok && ds.count == 12 && ny == 6 && file_contains(TMP "/imb_summary.txt", "oversampled: 4"),
          "cli cls: --oversample repeats the minority class: 6 x + 2 y -> 6 + 6");
    if (ok) dataset_close(&ds);
    check(file_contains(TMP "/imb_labels.txt", "0\tx\t6\t1.000000"), "cli cls: labels file has counts and class weights N/(K*count)");
    // cls: augmentation touches the training split only
    write_text(TMP "/syn.txt", "great good fine\nawful bad terrible\n");
    rc = run("./dataprep cls --tokenizer " GPT2 " --out " TMP "/aug --split 60/20/20 --augment 3 --aug-ops del,swap,ins,syn,mask --synonyms " TMP "/syn.txt " TMP "/good.csv");
    uint64_t ntrain = 0, nval = 0, ntest = 0;
    int vocab = 0;
    if (rc == 0 && dataset_open(&ds, TMP "/aug_train.ds", err, sizeof err) == 0) { ntrain = ds.count; vocab = ds.vocab_size; dataset_close(&ds); }
    if (rc == 0 && dataset_open(&ds, TMP "/aug_val.ds", err, sizeof err) == 0) { nval = ds.count; dataset_close(&ds); }
    if (rc == 0 && dataset_open(&ds, TMP "/aug_test.ds", err, sizeof err) == 0) { ntest = ds.count; dataset_close(&ds); }
    check(rc == 0 && ntrain == 6 * 4 && nval == 2 && ntest == 2 && vocab == 50258, "cli cls: --augment 3: train 6 -> %llu, val %llu and test %llu untouched, <|mask|> added (V=%d)",
          (unsigned long long)ntrain, (unsigned long long)nval, (unsigned long long)ntest, vocab);
    // sft: Alpaca
    rc = run("./dataprep sft --tokenizer " GPT2 " --out " TMP "/alpaca " DATA "/alpaca_demo/alpaca_en_demo.json");
    ok = rc == 0 && dataset_open(&ds, TMP "/alpaca_train.ds", err, sizeof err) == 0;
    int mask_ok = ok;
    uint64_t total = 0;
    Tokenizer t;
    tokenizer_load_or_die(&t, GPT2);
    ByteVec resp = {0};
    for (uint64_t i = 0; ok && i < ds.count; i++) {
        if (dataset_get(&ds, i, &ex) != 0) { mask_ok = 0; break; }
        for (size_t q = 0; q < ex.n; q++) if (ex.mask[q] != (q >= (size_t)ex.label)) mask_ok = 0;
        if (i == 0) {  // the response decodes to the output and ends with <|endoftext|>
            IntVec r = {0};
            for (size_t q = (size_t)ex.label; q < ex.n; q++) intvec_push(&r, dataset_id(ex.ids, ds.bytes_per_token, q));
            mask_ok = mask_ok && r.len > 0 && r.data[r.len - 1] == 50256;
            tokenizer_decode(&t, r.data, r.len - 1, &resp, NULL);
            free(r.data);
        }
    }
    if (ok) { total = ds.count; dataset_close(&ds); }
    for (int k = 1; k < 3 && ok; k++) {
        char p[256];
        snprintf(p, sizeof p, TMP "/alpaca_%s.ds", split_name[k]);
        if (dataset_open(&ds, p, err, sizeof err) == 0) { total += ds.count; dataset_close(&ds); }
    }
    check(ok && mask_ok && resp.len > 0, "cli sft: Alpaca: loss mask is 0 on every prompt token, 1 on the response + <|endoftext|>");
    check(ok && file_contains(TMP "/alpaca_summary.txt", "999 records read") && total == 985 && file_contains(TMP "/alpaca_summary.txt", "duplicates removed: 14"),
          "cli sft: 999 records, 14 exact duplicates -> %llu examples in 3 splits (want 985)", (unsigned long long)total);
    free(resp.data);
    tokenizer_free(&t);
    write_text(TMP "/bad_sft.json", "[{\"instruction\": \"say hi\", \"output\": \"hi\"}, {\"instruction\": \"x\", \"output\": \"\"}]");
    rc = run("./dataprep sft --tokenizer " GPT2 " --out " TMP "/bad " TMP "/bad_sft.json");
    check(rc != 0 && strstr(err_line(), "bad_sft.json:1: error: empty output"), "cli sft: empty output: %s", err_line());
    rc = run("./dataprep sft --tokenizer " GPT2 " --out " TMP "/short --max-len 40 --split 100/0/0 " DATA "/alpaca_demo/alpaca_en_demo.json");
    ok = rc == 0 && dataset_open(&ds, TMP "/short_train.ds", err, sizeof err) == 0;
    check(ok && ds.max_len == 40 && file_contains(TMP "/short_summary.txt", "truncated 149  dropped 836"), "cli sft: --max-len 40: responses cut to fit, prompts longer than 40 dropped and counted");
    if (ok) dataset_close(&ds);
    rc = run("printf 'a<|sep|>b' | ./dataprep encode --tokenizer " GPT2 " --add-token '<|sep|>' --allow-special");
    check(rc == 0 && file_contains(TMP "/out.txt", "64 50257 65"), "cli: --add-token '<|sep|>' --allow-special maps it to id 50257");
    // train-tokenizer and using the result
    rc = run("./dataprep train-tokenizer --vocab-size 300 --out " TMP "/tiny.tok " TMP "/good.csv && echo 'great, really' | ./dataprep encode --tokenizer " TMP "/tiny.tok");
    check(rc == 0, "cli train-tokenizer: trains, saves, and encode --tokenizer FILE reads it");
    rc = run("./dataprep text --tokenizer bytes --out " TMP "/bytes --split 100/0/0 " TMP "/in8.txt");
    ok = rc == 0 && dataset_open(&ds, TMP "/bytes_train.bin", err, sizeof err) == 0;
    check(ok && ds.vocab_size == 257 && dataset_token(&ds, 0) == 256 && dataset_token(&ds, 1) == 'H', "cli text: --tokenizer bytes, V=257, <|endoftext|>=256");
    if (ok) dataset_close(&ds);
}

// ---------------------------------------------------------------------------- tok: CoNLL token tags
static void test_tok(void) {
    Dataset ds;
    char err[512];
    // the record: each word encoded as " " + word, its first token carries the tag id, the others 255
    write_text(TMP "/t.conll", "Hello\tB-x\r\nworld\tO\n\t\nNew\tB-loc\nYorkshiremen\tI-loc  \n\n");
    int rc = run("./dataprep tok --tokenizer " GPT2 " --out " TMP "/t --train " TMP "/t.conll");
    int ok = rc == 0 && dataset_open(&ds, TMP "/t_train.ds", err, sizeof err) == 0;
    Tokenizer t;
    ok = ok && tokenizer_load(&t, GPT2, err, sizeof err) == 0;
    int want_ok = 0;
    if (ok) {
        const char* words[4] = {" Hello", " world", " New", " Yorkshiremen"};
        int tags[4] = {1, 3, 0, 2};  // sorted: B-loc B-x I-loc O
        IntVec ids[4] = {{0}};
        for (int k = 0; k < 4; k++) tokenizer_encode(&t, words[k], strlen(words[k]), 0, &ids[k]);
        Example e0, e1;
        char names[4][256];
        want_ok = ds.kind == DS_TOK && ds.count == 2 && ds.num_labels == 4 && dataset_get(&ds, 0, &e0) == 0 && dataset_get(&ds, 1, &e1) == 0 &&
                  dataset_label_names(&ds, TMP "/t_train.ds", names, err, sizeof err) == 4 && !strcmp(names[0], "B-loc") && !strcmp(names[3], "O") &&
                  e0.label == 2 && e1.label == 2 && e0.n == ids[0].len + ids[1].len && e1.n == ids[2].len + ids[3].len && ids[3].len >= 2;
        for (int s = 0; want_ok && s < 2; s++) {
            const Example* e = s ? &e1 : &e0;
            size_t pos = 0;
            for (int k = 2 * s; k < 2 * s + 2; k++)
                for (size_t q = 0; q < ids[k].len; q++, pos++)
                    want_ok &= dataset_id(e->ids, ds.bytes_per_token, pos) == ids[k].data[q] && e->mask[pos] == (q ? DS_TAG_NONE : tags[k]);
        }
        for (int k = 0; k < 4; k++) free(ids[k].data);
        tokenizer_free(&t);
        dataset_close(&ds);
    }
    check(want_ok, "cli tok: words encoded as \" \"+word, first subword tagged, the rest 255; lone-TAB and CRLF lines read; tags sorted with names");
    // a damaged token-label file is refused when opened: a tag byte past K, an untagged first token, a wrong word count
    struct { unsigned char tags[3]; int words; const char* want; } dmg[] = {
        {{0, DS_TAG_NONE, 9}, 2, "tag byte 2 is 9"}, {{DS_TAG_NONE, 1, 2}, 2, "tag byte 0 is 255"}, {{0, 1, DS_TAG_NONE}, 3, "record says 3 words"}};
    for (int k = 0; k < 3; k++) {
        DsWriter w;
        const char* const tn[4] = {"B-a", "I-a", "O", "B-b"};
        int ids3[3] = {5, 6, 7};
        ok = ds_writer_open(&w, TMP "/dmg.ds", EXAMPLES_MAGIC, DS_TOK, 50257, 4, err, sizeof err) == 0;
        ds_writer_set_labels(&w, tn);
        ds_write_example(&w, ids3, 3, dmg[k].words, dmg[k].tags);
        ok = ok && ds_writer_close(&w, err, sizeof err) == 0 && dataset_open(&ds, TMP "/dmg.ds", err, sizeof err) != 0 && strstr(err, dmg[k].want);
        check(ok, "dataset: a damaged token-label record refused: %s", err);
    }
    // WNUT 17: the sentence and entity counts of its SOURCE.md (train separates sentences with a lone TAB)
    rc = run("./dataprep tok --tokenizer " GPT2 " --out " TMP "/wnut --train " DATA "/wnut17/wnut17train.conll --val " DATA
             "/wnut17/emerging.dev.conll --test " DATA "/wnut17/emerging.test.annotated");
    check(rc == 0 && file_contains(TMP "/wnut_summary.txt", "train   3394 sentences") && file_contains(TMP "/wnut_summary.txt", "1975 B- tags") &&
          file_contains(TMP "/wnut_summary.txt", "val     1009 sentences") && file_contains(TMP "/wnut_summary.txt", "836 B- tags") &&
          file_contains(TMP "/wnut_summary.txt", "test    1287 sentences") && file_contains(TMP "/wnut_summary.txt", "1079 B- tags") &&
          file_contains(TMP "/wnut_tags.txt", "12\tO\t59570"),
          "cli tok: WNUT 17 train/dev/test: 3394/1009/1287 sentences, 1975/836/1079 entities, 13 tags (as its SOURCE.md)");
    // bad input: one line each, file:line; --skip-bad skips the sentence and counts it
    struct { const char* text; const char* want; const char* what; } bad[] = {
        {"a\tO\nb\n\n", "b.conll:2: error: a line without a tag", "a line without a tag"},
        {"a\tO\nb\tPER\n\n", "b.conll:2: error: a tag outside the BIO scheme", "a tag outside BIO"},
        {"a\tO\n\n\nb\tO\n", "b.conll:3: error: empty sentence", "an empty sentence (two separator lines)"},
        {"a\tO\nb\tO x\n", "b.conll:2: error: more than two fields", "three fields"},
        {"a\tO\nsupercalifragilistic\tO\n", "b.conll:2: error: the word \"supercalifragilistic\" is", "a word longer than --max-len 3"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        write_text(TMP "/b.conll", bad[k].text);
        rc = run("./dataprep tok --tokenizer " GPT2 " --max-len 3 --out " TMP "/b --train " TMP "/b.conll");
        check(rc == 1 && strstr(err_line(), bad[k].want), "cli tok: bad input, %s: %s", bad[k].what, err_line());
    }
    write_text(TMP "/b.conll", "a\tO\nb\tPER\n\nc\tB-x\n\nd\n\ne\tO\n");
    rc = run("./dataprep tok --tokenizer " GPT2 " --skip-bad --out " TMP "/b --train " TMP "/b.conll");
    ok = rc == 0 && dataset_open(&ds, TMP "/b_train.ds", err, sizeof err) == 0;
    check(ok && ds.count == 2 && file_contains(TMP "/b_summary.txt", "bad lines: 2  first: " TMP "/b.conll:2") &&
          file_contains(TMP "/b_summary.txt", "skipped 2"), "cli tok: --skip-bad: 2 of 4 sentences skipped and counted, the first bad line named");
    if (ok) dataset_close(&ds);
    // dev/test tags outside the training file's set: an error naming the dev file's line
    write_text(TMP "/tr.conll", "a\tB-x\nb\tO\n\n");
    write_text(TMP "/dv.conll", "a\tB-x\n\nb\tB-y\n");
    rc = run("./dataprep tok --tokenizer " GPT2 " --out " TMP "/d --train " TMP "/tr.conll --val " TMP "/dv.conll");
    check(rc == 1 && strstr(err_line(), "dv.conll:3: error: tag \"B-y\" does not appear in the training file"), "cli tok: a dev tag training never saw: %s", err_line());
    rc = run("./dataprep tok --tokenizer " GPT2 " --out " TMP "/d --labels a,b --train " TMP "/tr.conll");
    check(rc == 1 && strstr(err_line(), "does not apply to dataprep tok"), "cli tok: an option of another command refused: %s", err_line());
    rc = run("./dataprep tok --tokenizer " GPT2 " --out " TMP "/d " TMP "/tr.conll");
    check(rc == 1 && strstr(err_line(), "no --train file"), "cli tok: one FILE without --train refused: %s", err_line());
}

int main(void) {
    if (system("rm -rf " TMP " && mkdir -p " TMP) != 0) { printf("cannot create " TMP "\n"); return 1; }
    double t0 = now_seconds();
    test_unicode_tables();
    test_pretokenizer();
    Tokenizer t;
    char err[1024];
    if (tokenizer_load(&t, GPT2, err, sizeof err) != 0) {
        check(0, "gpt2: cannot load: %s (hint: run from the repo root with ../shared/data beside it)", err);
    } else {
        check(t.vocab_size == 50257 && t.eot_id == 50256 && t.num_merges == 50000, "gpt2: loaded V=%d, <|endoftext|>=%d, %d merges", t.vocab_size, t.eot_id, t.num_merges);
        test_gpt2_vectors(&t);
        test_special_tokens(&t);
        test_invalid_utf8_fuzz(&t);
        tokenizer_free(&t);
    }
    test_bytes_and_training();
    test_tokenizer_file_errors();
    test_dataset_files();
    test_csv_parser();
    test_cli();
    test_tok();
    printf("(%.1f s)\n", now_seconds() - t0);
    printf("dataprep: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
