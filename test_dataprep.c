// test_dataprep: tests of tokenizer.c, dataset.h and the dataprep program.
//   make test_dataprep && ./test_dataprep        (from the repo root; needs ../shared/data, ./dataprep and, for the
//   chatml end-to-end checks, ./train)
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

// ---------------------------------------------------------------------------- tokenizer.json
// ref/tokjson_*.json are small tokenizer.json files cut out of Qwen3's, and ref/tokjson_vectors.txt the ids
// Hugging Face's own JavaScript tokenizer (@huggingface/tokenizers) gives for them (dev/tokenizer_json_vectors.js).

// loads ref/tokjson_full_vectors.txt-style lines of one variant and mode, checks each; returns how many failed
static int tokjson_run_vectors(Tokenizer* t, const char* file, const char* variant, char mode, int* named, int* named_ok,
                               int* rnd, int* rnd_ok, int* rt_ok) {
    char* s = slurp(file, NULL);
    if (!s) { check(0, "tokenizer.json: cannot read %s (run from the repo root)", file); return 1; }
    int shown = 0, bad = 0;
    *named = *named_ok = *rnd = *rnd_ok = 0; *rt_ok = 1;
    char* cursor = s;
    for (char* line; (line = next_line(&cursor)) != NULL;) {
        if (line[0] == '#') continue;
        char* f[5];
        int k = 0;
        for (char* p = line; k < 5; k++) { f[k] = p; char* tab = strchr(p, '\t'); if (!tab) { k++; break; } *tab = 0; p = tab + 1; }
        if (k < 5 || strcmp(f[0], variant) || f[1][0] != mode) continue;
        ByteVec in = {0};
        bytevec_append(&in, "", 0);
        for (size_t i = 0; f[3][i] && f[3][i + 1]; i += 2) bytevec_push(&in, (unsigned char)(hexval(f[3][i]) * 16 + hexval(f[3][i + 1])));
        IntVec want = {0}, got = {0};
        for (const char* p = f[4]; *p;) { char* e; long v = strtol(p, &e, 10); if (e == p) break; intvec_push(&want, (int)v); p = e; }
        tokenizer_encode(t, in.data, in.len, mode == 'S', &got);
        int ok = same_ids(&want, &got);
        // decode(encode(x)) == x, or NFC(x) when the tokenizer normalizes
        ByteVec back = {0}, norm = {0};
        tokenizer_decode(t, got.data, got.len, &back, NULL);
        if (t->normalizer == TOK_NORM_NFC) nfc_normalize(in.data, in.len, &norm);
        else bytevec_append(&norm, in.data, in.len);
        if (back.len != norm.len || (norm.len && memcmp(back.data, norm.data, norm.len))) *rt_ok = 0;
        if (strncmp(f[2], "random_", 7) == 0) { (*rnd)++; *rnd_ok += ok; } else { (*named)++; *named_ok += ok; }
        if (!ok) {
            bad++;
            if (shown++ < 4) {
                printf("       %s %c %s: want", variant, mode, f[2]);
                for (size_t i = 0; i < want.len && i < 24; i++) printf(" %d", want.data[i]);
                printf("\n       %s %c %s: got ", variant, mode, f[2]);
                for (size_t i = 0; i < got.len && i < 24; i++) printf(" %d", got.data[i]);
                printf("\n");
            }
        }
        free(in.data); free(want.data); free(got.data); free(back.data); free(norm.data);
    }
    free(s);
    return bad;
}

static void test_tokjson_vectors(void) {
    // V, merges and end-of-text id of each small file (dev/tokenizer_json_vectors.js printed N = 1831 tokens,
    // 1575 merges; then 26 added tokens for qwen2, 6 for llama3, 3 before them for smol, 1 for gpt2)
    struct { const char* v; int V, merges, eot, modes; } vs[] = {
        {"qwen2", 1857, 1575, 1831, 2}, {"llama3", 1837, 1575, 1832, 1}, {"smol", 1834, 1575, 0, 2}, {"gpt2", 1832, 1575, 1831, 1},
    };
    for (size_t k = 0; k < sizeof vs / sizeof vs[0]; k++) {
        char path[256], err[1024];
        snprintf(path, sizeof path, "ref/tokjson_%s.json", vs[k].v);
        Tokenizer t;
        if (tokenizer_load(&t, path, err, sizeof err) != 0) { check(0, "tokenizer.json %s: cannot load: %s", vs[k].v, err); continue; }
        check(t.kind == TOK_HF && t.vocab_size == vs[k].V && t.num_merges == vs[k].merges && t.eot_id == vs[k].eot,
              "tokenizer.json %-6s: loaded V=%d, %d merges, end of text %d", vs[k].v, t.vocab_size, t.num_merges, t.eot_id);
        for (int m = 0; m < vs[k].modes; m++) {
            char mode = m ? 'O' : 'S';
            int named, named_ok, rnd, rnd_ok, rt_ok;
            tokjson_run_vectors(&t, "ref/tokjson_vectors.txt", vs[k].v, mode, &named, &named_ok, &rnd, &rnd_ok, &rt_ok);
            check(named > 50 && rnd >= 150 && named_ok == named && rnd_ok == rnd,
                  "tokenizer.json %-6s %s: %d/%d named and %d/%d random strings as @huggingface/tokenizers encodes them",
                  vs[k].v, mode == 'S' ? "(added tokens matched)   " : "(special tokens as text)", named_ok, named, rnd_ok, rnd);
            check(rt_ok, "tokenizer.json %-6s %c: decode(encode(x)) == %s for every string", vs[k].v, mode, t.normalizer ? "NFC(x)" : "x");
        }
        if (k == 0) {  // dataprep --add-token on a tokenizer.json: one more special id at V, matched with allow_special
            int V = t.vocab_size, sep = tokenizer_add_special(&t, "<|sep|>");
            IntVec ids = {0};
            tokenizer_encode(&t, "a<|sep|>b", 9, 1, &ids);
            int saved = tokenizer_save(&t, TMP "/hf.tok", err, sizeof err);
            check(sep == V && t.vocab_size == V + 1 && ids.len == 3 && ids.data[1] == sep && saved != 0 && strstr(err, "used as it is"),
                  "tokenizer.json: add_special(\"<|sep|>\") -> id %d = old V, encodes; saving in our format is refused", sep);
            free(ids.data);
        }
        tokenizer_free(&t);
    }
}

// The real Qwen3 and Llama 3 tokenizer.json files (not in the repo): run when HFTOK_DIR holds qwen3/ and llama3/
static void test_tokjson_full(void) {
    const char* dir = getenv("HFTOK_DIR");
    if (!dir || !*dir) {
        printf("[SKIP] tokenizer.json full Qwen3 / Llama 3 files: HFTOK_DIR is not set (see dev/tokenizer_json_vectors.js)\n");
        return;
    }
    char* vec = slurp("ref/tokjson_full_vectors.txt", NULL);
    const char* names[] = {"qwen3", "llama3"};
    for (int k = 0; k < 2; k++) {
        char path[4096], err[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        Tokenizer t;
        double t0 = now_seconds();
        if (tokenizer_load(&t, path, err, sizeof err) != 0) { check(0, "tokenizer.json %s: cannot load: %s", names[k], err); continue; }
        double dt = now_seconds() - t0;
        int named, named_ok, rnd, rnd_ok, rt_ok;
        tokjson_run_vectors(&t, "ref/tokjson_full_vectors.txt", names[k], 'S', &named, &named_ok, &rnd, &rnd_ok, &rt_ok);
        check(named > 50 && rnd >= 300 && named_ok == named && rnd_ok == rnd && rt_ok,
              "tokenizer.json full %-6s (V=%d, loaded in %.2f s): %d/%d named, %d/%d random strings, round trips", names[k], t.vocab_size, dt,
              named_ok, named, rnd_ok, rnd);
        // all of Tiny Shakespeare: count and FNV-1a 64 of the ids against the JS tokenizer's
        char want_hash[32] = "";
        long long want_n = -1;
        char key[64];
        snprintf(key, sizeof key, "#file\t%s\t", names[k]);
        const char* line = vec ? strstr(vec, key) : NULL;
        if (line) sscanf(line + strlen(key), "%*s %*d %lld %31s", &want_n, want_hash);
        size_t n;
        char* text = slurp(DATA "/tinyshakespeare/input.txt", &n);
        if (!text) { check(0, "tinyshakespeare: cannot read it"); tokenizer_free(&t); continue; }
        IntVec ids = {0};
        t0 = now_seconds();
        tokenizer_encode(&t, text, n, 1, &ids);
        dt = now_seconds() - t0;
        uint64_t h = 14695981039346656037ULL;
        for (size_t i = 0; i < ids.len; i++) for (int b = 0; b < 4; b++) { h ^= (ids.data[i] >> (8 * b)) & 0xFF; h *= 1099511628211ULL; }
        char hash[32];
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)h);
        check((long long)ids.len == want_n && !strcmp(hash, want_hash), "tokenizer.json full %-6s: Tiny Shakespeare %zu ids hash %s (JS: %lld, %s), %.1f MB/s",
              names[k], ids.len, hash, want_n, want_hash, n / 1e6 / dt);
        free(ids.data); free(text);
        tokenizer_free(&t);
    }
    free(vec);
}

// Builds a tokenizer.json with the 256 byte tokens (ids 0..255), "ab" (256) and the merge "a b", with parts replaceable.
static void tokjson_build(ByteVec* out, const char* model_type, const char* model_extra, const char* vocab_extra, const char* merges,
                          const char* added, const char* normalizer, const char* pretok, const char* decoder) {
    int dec[0x144], enc[256];
    gpt2_byte_decoder(dec);
    for (int c = 0; c < 0x144; c++) if (dec[c] >= 0) enc[dec[c]] = c;
    out->len = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "{\"version\": \"1.0\", \"added_tokens\": %s, \"normalizer\": %s, \"pre_tokenizer\": %s, \"decoder\": %s,\n"
             " \"model\": {\"type\": \"%s\"%s, \"vocab\": {", added, normalizer, pretok, decoder, model_type, model_extra);
    bytevec_append(out, buf, strlen(buf));
    for (int b = 0; b < 256; b++) {
        bytevec_append(out, b ? ", \"" : "\"", b ? 3 : 1);
        if (enc[b] == '"' || enc[b] == '\\') bytevec_push(out, '\\');
        utf8_encode(out, (uint32_t)enc[b]);
        snprintf(buf, sizeof buf, "\": %d", b);
        bytevec_append(out, buf, strlen(buf));
    }
    snprintf(buf, sizeof buf, ", \"ab\": 256%s}, \"merges\": %s}}\n", vocab_extra, merges);
    bytevec_append(out, buf, strlen(buf));
}

static void test_tokjson_errors(void) {
    const char* BL = "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}";
    const char* AT = "[{\"id\": 257, \"content\": \"<|endoftext|>\", \"special\": true, \"normalized\": false}]";
    struct { const char *type, *mextra, *vextra, *merges, *added, *norm, *pre, *dec, *expect; } cases[] = {
        {"WordPiece", "", "", "[]", AT, "null", BL, "null", "model.type is \"WordPiece\"; only \"BPE\""},
        {"Unigram", "", "", "[]", AT, "null", BL, "null", "model.type is \"Unigram\""},
        {"BPE", ", \"byte_fallback\": true", "", "[\"a b\"]", AT, "null", BL, "null", "byte_fallback: true"},
        {"BPE", ", \"dropout\": 0.1", "", "[\"a b\"]", AT, "null", BL, "null", "BPE dropout is not supported"},
        {"BPE", ", \"continuing_subword_prefix\": \"##\"", "", "[\"a b\"]", AT, "null", BL, "null", "continuing_subword_prefix is \"##\""},
        {"BPE", "", "", "[\"a b\"]", AT, "null", "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\s+|\\\\w+\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}", "null",
         "Split pattern \\s+|\\w+ is not one we implement"},
        {"BPE", "", "", "[\"a b\"]", AT, "null", "{\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Isolated\"}", "null", "String pattern"},
        {"BPE", "", "", "[\"a b\"]", AT, "null", "{\"type\": \"Metaspace\", \"replacement\": \"_\"}", "null", "pre_tokenizer type \"Metaspace\""},
        {"BPE", "", "", "[\"a b\"]", AT, "null", "{\"type\": \"ByteLevel\", \"add_prefix_space\": true}", "null", "add_prefix_space: true"},
        {"BPE", "", "", "[\"a b\"]", AT, "null", "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"ByteLevel\"}, {\"type\": \"Digits\"}]}", "null", "after ByteLevel"},
        {"BPE", "", "", "[\"a b\"]", AT, "null", "null", "null", "no ByteLevel step"},
        {"BPE", "", "", "[\"a b\"]", AT, "{\"type\": \"NFKC\"}", BL, "null", "normalizer type \"NFKC\""},
        {"BPE", "", "", "[\"a b\"]", AT, "null", BL, "{\"type\": \"WordPiece\"}", "decoder type \"WordPiece\""},
        {"BPE", "", "", "[\"a c\"]", AT, "null", BL, "null", "merge 0 (\"a\" + \"c\"): the merged token is not in model.vocab"},
        {"BPE", "", "", "[\"a  b\"]", AT, "null", BL, "null", "not two tokens separated by one space"},
        {"BPE", "", "", "[[\"a\", \"b\"], [\"a\", \"b\"]]", AT, "null", BL, "null", "repeats an earlier pair"},
        {"BPE", "", ", \"x y\": 258", "[\"a b\"]", AT, "null", BL, "null", "not made of byte-level"},
        {"BPE", "", ", \"abc\": 256", "[\"a b\"]", AT, "null", BL, "null", "id 256 is used twice"},
        {"BPE", "", ", \"ba\": 9999999", "[\"a b\"]", AT, "null", BL, "null", "without gaps"},
        {"BPE", "", ", \"ba\": 1e30", "[\"a b\"]", AT, "null", BL, "null", "not an integer in [0, 2^24)"},
        {"BPE", "", "", "[\"a b\"]", "[{\"id\": 257, \"content\": \"<m>\", \"lstrip\": true}]", "null", BL, "null", "has lstrip: true"},
        {"BPE", "", "", "[\"a b\"]", "[{\"id\": 257, \"content\": \"\"}]", "null", BL, "null", "no \"content\" string"},
        {"BPE", "", "", "[\"a b\"]", "[{\"id\": 256, \"content\": \"<a>\"}, {\"id\": 256, \"content\": \"<b>\"}]", "null", BL, "null", "id 256 is used twice"},
        {"BPE", "", "", "[\"a b\"]", "[{\"id\": 300, \"content\": \"<a>\"}]", "null", BL, "null", "without gaps"},
    };
    int n = (int)(sizeof cases / sizeof cases[0]), ok = 1;
    ByteVec j = {0};
    for (int k = 0; k < n; k++) {
        tokjson_build(&j, cases[k].type, cases[k].mextra, cases[k].vextra, cases[k].merges, cases[k].added, cases[k].norm, cases[k].pre, cases[k].dec);
        Tokenizer t;
        char err[1024] = "";
        int rc = tokenizer_parse_hf(&t, j.data, j.len, "x/tokenizer.json", err, sizeof err);
        if (rc == 0) { ok = 0; tokenizer_free(&t); printf("       case %d accepted (want \"%s\")\n", k, cases[k].expect); }
        else if (!strstr(err, cases[k].expect) || strchr(err, '\n') || strncmp(err, "x/tokenizer.json:", 17)) {
            ok = 0; printf("       case %d: message \"%s\" lacks \"%s\"\n", k, err, cases[k].expect);
        }
    }
    check(ok, "tokenizer.json: %d unsupported or malformed files refused, each with one \"file:line: what\" line", n);
    // the same builder with nothing wrong loads and encodes (so the refusals above are about the one change each)
    tokjson_build(&j, "BPE", "", "", "[\"a b\"]", AT, "{\"type\": \"NFC\"}", BL, "{\"type\": \"ByteLevel\"}");
    Tokenizer t;
    char err[1024] = "";
    int rc = tokenizer_parse_hf(&t, j.data, j.len, "x/tokenizer.json", err, sizeof err);
    IntVec ids = {0};
    if (rc == 0) tokenizer_encode(&t, "ab<|endoftext|>b", 16, 1, &ids);
    check(rc == 0 && t.vocab_size == 258 && t.eot_id == 257 && ids.len == 3 && ids.data[0] == 256 && ids.data[1] == 257 && ids.data[2] == 'b',
          "tokenizer.json: the builder's valid file loads (V=%d) and encodes \"ab<|endoftext|>b\" as 256 257 98 %s", rc ? 0 : t.vocab_size, err);
    if (rc == 0) tokenizer_free(&t);
    // added tokens that start at the same place: the longest wins (Hugging Face's aho-corasick is LeftmostLongest);
    // one that is not special is matched even when special tokens are text
    ByteVec j2 = {0};
    tokjson_build(&j2, "BPE", "", "", "[\"a b\"]", "[{\"id\": 257, \"content\": \"<x>\", \"special\": true}, {\"id\": 258, \"content\": \"<x>y\"}]",
                  "null", BL, "null");
    rc = tokenizer_parse_hf(&t, j2.data, j2.len, "x/tokenizer.json", err, sizeof err);
    IntVec i1 = {0}, i2 = {0};
    if (rc == 0) tokenizer_encode(&t, "c<x>yb<x>", 9, 1, &i1), tokenizer_encode(&t, "c<x>yb<x>", 9, 0, &i2);
    check(rc == 0 && i1.len == 4 && i1.data[0] == 'c' && i1.data[1] == 258 && i1.data[2] == 'b' && i1.data[3] == 257 &&
          i2.len == 6 && i2.data[1] == 258 && i2.data[3] == '<',
          "tokenizer.json: overlapping added tokens: the longest at the leftmost place wins; a non-special one is matched without allow_special");
    if (rc == 0) tokenizer_free(&t);
    free(j2.data); free(i1.data); free(i2.data);
    // every prefix of a valid file is refused cleanly (truncated downloads)
    int trunc_ok = 1;
    for (size_t cut = 0; cut + 1 < j.len; cut += 7) {
        Tokenizer u;
        char e2[1024] = "";
        if (tokenizer_parse_hf(&u, j.data, cut, "x", e2, sizeof e2) == 0) { trunc_ok = 0; tokenizer_free(&u); }
        else if (!e2[0]) trunc_ok = 0;
    }
    check(trunc_ok, "tokenizer.json: every 7th prefix of a valid %zu-byte file is refused with a message", j.len);
    // through ./dataprep: a WordPiece tokenizer.json is refused in one line naming the type; a folder holding a
    // tokenizer.json (as a Hugging Face model folder does) loads it
    tokjson_build(&j, "WordPiece", "", "", "[]", AT, "null", BL, "null");
    FILE* f = fopen(TMP "/wordpiece.json", "wb");
    if (f) fwrite(j.data, 1, j.len, f), fclose(f);
    int rc1 = run("printf 'Hello world' | ./dataprep encode --tokenizer " TMP "/wordpiece.json");
    const char* e1 = err_line();
    int refused = rc1 != 0 && strstr(e1, TMP "/wordpiece.json:2: model.type is \"WordPiece\"") != NULL;
    check(refused, "tokenizer.json: dataprep refuses model.type WordPiece, exit %d: %s", rc1, e1);
    int rc2 = run("mkdir -p " TMP "/hfmodel && cp ref/tokjson_qwen2.json " TMP "/hfmodel/tokenizer.json && "
                  "printf 'Hello world' | ./dataprep encode --tokenizer " TMP "/hfmodel");
    char want[64] = "?";  // what the library gives with the file itself
    Tokenizer q;
    IntVec qi = {0};
    if (tokenizer_load(&q, "ref/tokjson_qwen2.json", err, sizeof err) == 0) {
        tokenizer_encode(&q, "Hello world", 11, 0, &qi);
        if (qi.len == 2) snprintf(want, sizeof want, "%d %d", qi.data[0], qi.data[1]);
        tokenizer_free(&q);
    }
    free(qi.data);
    check(rc2 == 0 && file_contains(TMP "/out.txt", want), "tokenizer.json: dataprep encode --tokenizer FOLDER (with tokenizer.json): \"Hello world\" -> %s", want);
    free(j.data); free(ids.data);
}

// NFC on the examples of UAX #15 and Python's unicodedata.normalize("NFC", ...) (values checked with it)
static void test_nfc(void) {
    struct { const char *in, *out; } c[] = {
        {"e\xCC\x81", "\xC3\xA9"},                                  // e + U+0301 -> U+00E9
        {"\xE2\x84\xAB", "\xC3\x85"},                               // U+212B ANGSTROM SIGN -> U+00C5 (a singleton)
        {"A\xCC\x8A", "\xC3\x85"},                                  // A + ring
        {"q\xCC\x87\xCC\xA3", "q\xCC\xA3\xCC\x87"},                 // reorder: dot below (220) before dot above (230)
        {"\xE1\xBA\x9B\xCC\xA3", "\xE1\xBA\x9B\xCC\xA3"},           // U+1E9B U+0323 stays (UAX #15's example)
        {"\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x81"},   // Hangul jamo L V T -> U+AC01
        {"\xEA\xB0\x80\xE1\x86\xA8", "\xEA\xB0\x81"},               // LV + T -> LVT
        {"o\xCC\x88\xCC\x81", "\xC3\xB6\xCC\x81"},                  // o + diaeresis + acute: o-diaeresis, then acute stays
        {"\xCC\x81" "a", "\xCC\x81" "a"},                           // a leading mark has no starter
        {"a\xFF\xCC\x81", "a\xFF\xCC\x81"},                         // an invalid byte blocks composition and stays
        {"\xE0\xAD\x87\xE0\xAC\xBE", "\xE0\xAD\x8B"},               // Oriya U+0B47 + U+0B3E -> U+0B4B (two starters)
        {"\xE0\xA4\xA8\xE0\xA4\xBC", "\xE0\xA4\xA9"},               // na + nukta -> U+0929
        {"\xE0\xA5\x98", "\xE0\xA4\x95\xE0\xA4\xBC"},               // U+0958 (qa) is excluded: it decomposes and stays so
    };
    int ok = 1;
    ByteVec o = {0};
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        nfc_normalize((const unsigned char*)c[k].in, strlen(c[k].in), &o);
        if (o.len != strlen(c[k].out) || memcmp(o.data, c[k].out, o.len)) { ok = 0; printf("       nfc case %zu differs\n", k); }
    }
    check(ok, "NFC: %zu cases (composition, singletons, reordering, Hangul, exclusions, invalid bytes)", sizeof c / sizeof c[0]);
    // Digits splits on every \p{N} (Rust's char::is_numeric), not only on ASCII digits as tokenizers.js does
    const unsigned char* d = (const unsigned char*)"x\xC2\xBD" "2ab\xD9\xA3";  // x ½ 2 a b ٣
    size_t e1 = pretok_next_digits(d, 9, 0, 1), e2 = pretok_next_digits(d, 9, e1, 1), e3 = pretok_next_digits(d, 9, e2, 1);
    size_t e4 = pretok_next_digits(d, 9, e3, 1), r1 = pretok_next_digits(d, 9, 1, 0);
    check(e1 == 1 && e2 == 3 && e3 == 4 && e4 == 6 && r1 == 4, "Digits: \"x½2ab٣\" -> x | ½ | 2 | ab | ٣ (individual), ½2 one run (contiguous)");
    // Llama 3's pattern piece by piece, worked out by hand from the regex (the full-file test holds it to the JS
    // tokenizer; these catch what the small vocab cannot show, e.g. "'Sall" split as "'S" "all")
    struct { const char *in, *want; int digits; } pc[] = {
        {"'Sall 'REally it'\xC5\xBFtar", "'S|all| '|REally| it|'\xC5\xBF|tar", 3},
        {"12345 1234567", "123|45| |123|456|7", 3},
        {"12345", "1|2|3|4|5", 1},
        {"x  \n\n  y", "x|  \n\n| | y", 3},
        {"!!\n\nok\r\n", "!!\n\n|ok|\r\n", 3},
        {"\tword (word \xE3\x80\x80x", "\tword| (|word| |\xE3\x80\x80x", 3},
    };
    int pok = 1;
    for (size_t k = 0; k < sizeof pc / sizeof pc[0]; k++) {
        ByteVec got = {0};
        const unsigned char* in = (const unsigned char*)pc[k].in;
        size_t n = strlen(pc[k].in);
        for (size_t i = 0; i < n;) {
            size_t e = pretok_next_llama3(in, n, i, pc[k].digits);
            if (i) bytevec_push(&got, '|');
            bytevec_append(&got, in + i, e - i);
            i = e;
        }
        if (strcmp((char*)got.data, pc[k].want)) { pok = 0; printf("       llama3 pieces of case %zu: %s\n", k, got.data); }
        free(got.data);
    }
    check(pok, "Llama 3 / Qwen2 pattern: %zu strings split into the pieces the regex gives", sizeof pc / sizeof pc[0]);
    free(o.data);
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
    // a record both missing a field and followed by junk is one bad row, and the good row before it stays
    write_text(TMP "/junk.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": \"y\"}\n{\"text\": \"c\"} junk\n"
                                  "{\"text\": \"e\", \"label\": \"x\"}\n{\"text\": \"f\", \"label\": \"y\"}\n");
    rc = run("./dataprep cls --tokenizer bytes --out " TMP "/junk --skip-bad --split 100/0/0 " TMP "/junk.jsonl");
    ok = rc == 0 && dataset_open(&ds, TMP "/junk_train.ds", err, sizeof err) == 0;
    check(ok && ds.count == 4 && file_contains(TMP "/junk_summary.txt", "bad rows skipped: 1  first: " TMP "/junk.jsonl:3: missing field"),
          "cli cls: --skip-bad, a record missing a field with junk after it: 1 bad row, the 4 good ones kept (%d)", ok ? (int)ds.count : -1);
    if (ok) dataset_close(&ds);
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

// ---------------------------------------------------------------------------- sft --template chatml

// the first example of a .ds file: ids, mask, label; 0 if it cannot be read
static int first_example(const char* path, IntVec* ids, ByteVec* mask, int* label, int* vocab) {
    Dataset ds;
    Example ex;
    char err[512];
    if (dataset_open(&ds, path, err, sizeof err) != 0) return 0;
    int ok = ds.count > 0 && dataset_get(&ds, 0, &ex) == 0;
    ids->len = 0, mask->len = 0;
    for (size_t q = 0; ok && q < ex.n; q++) intvec_push(ids, dataset_id(ex.ids, ds.bytes_per_token, q)), bytevec_push(mask, ex.mask[q]);
    if (ok) *label = ex.label, *vocab = ds.vocab_size;
    dataset_close(&ds);
    return ok;
}
static int same_mask(const ByteVec* m, const char* want) {  // want: '0'/'1' per token
    if (m->len != strlen(want)) return 0;
    for (size_t q = 0; q < m->len; q++) if (m->data[q] != (unsigned char)(want[q] - '0')) return 0;
    return 1;
}
// the text of ids under a tokenizer (special tokens as their text)
static int decodes_to(const char* tok_path, const IntVec* ids, const char* want) {
    Tokenizer t;
    char err[512];
    if (tokenizer_load(&t, tok_path, err, sizeof err) != 0) return 0;
    tokenizer_add_special(&t, "<|im_start|>"), tokenizer_add_special(&t, "<|im_end|>");  // GPT-2: as --add-token did
    ByteVec out = {0};
    bytevec_append(&out, "", 0);
    int ok = tokenizer_decode(&t, ids->data, ids->len, &out, NULL) == 0 && out.len == strlen(want) && memcmp(out.data, want, out.len) == 0;
    if (!ok) printf("  decoded: %.*s\n", (int)out.len, (char*)out.data);
    free(out.data);
    tokenizer_free(&t);
    return ok;
}

static void test_chatml(void) {
    IntVec ids = {0};
    ByteVec mask = {0};
    int label = -1, vocab = 0, rc;
    // A two-turn conversation with a system message. The ids are tokenizers.js's encoding of @huggingface/jinja's
    // rendering of SmolLM2-Instruct's chat template (node dev/check_chatml.mjs /work/node_modules_chatml --print-ids,
    // chat 0, ref/tokjson_smol.json: <|im_start|>=1, <|im_end|>=2, "\n"=201). The mask: 1 on each assistant
    // content, its <|im_end|> and the "\n" after it; 0 on system, user and "<|im_start|>assistant\n".
    write_text(TMP "/chat.jsonl",
        "{\"messages\": [{\"role\": \"system\", \"content\": \"You are terse.\"}, {\"role\": \"user\", \"content\": \"Hi there\"}, "
        "{\"role\": \"assistant\", \"content\": \"Hello!\"}, {\"role\": \"user\", \"content\": \"What is 2+2?\"}, "
        "{\"role\": \"assistant\", \"content\": \"4, of course.\"}]}\n");
    static const int want_smol[] = {1, 85, 615, 201, 59, 286, 528, 262, 264, 328, 16, 2, 201,            // system
                                    1, 875, 201, 1449, 1055, 2, 201,                                     // user
                                    1, 1630, 201, 1415, 3, 2, 201,                                       // assistant
                                    1, 875, 201, 57, 74, 269, 377, 223, 20, 13, 20, 33, 2, 201,          // user
                                    1, 1630, 201, 22, 14, 318, 275, 416, 328, 16, 2, 201};               // assistant
    static const char* mask_smol = "0000000000000" "0000000" "000111100000000000000000111111111";
    rc = run("./dataprep sft --tokenizer ref/tokjson_smol.json --template chatml --split 100/0/0 --out " TMP "/chat " TMP "/chat.jsonl");
    int ok = rc == 0 && first_example(TMP "/chat_train.ds", &ids, &mask, &label, &vocab);
    IntVec want = {(int*)want_smol, sizeof want_smol / sizeof want_smol[0], 0};
    check(ok && same_ids(&ids, &want), "chatml: SmolLM2 tokenizer, system + two turns: the %zu ids of Hugging Face's template + tokenizer (got %zu)", want.len, ids.len);
    check(ok && same_mask(&mask, mask_smol) && label == 23, "chatml: loss mask on the two assistant contents + <|im_end|>\\n only (13 of 53), label = 23 tokens before the first");
    check(ok && decodes_to("ref/tokjson_smol.json", &ids, "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
                           "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4, of course.<|im_end|>\n"),
          "chatml: the ids decode to <|im_start|>{role}\\n{content}<|im_end|>\\n per message, nothing else");
    // Qwen2's pattern joins the header's "\n" with a content's leading "\n\n" into one token (1261): it is trained,
    // as Hugging Face's assistant mask marks every token with a character of the assistant block (same source as above,
    // chat 4, without the default system message).
    write_text(TMP "/chatq.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"\\n\\nOK\"}]}\n");
    static const int want_qwen[] = {1832, 872, 198, 1446, 1833, 198, 1832, 1627, 1261, 46, 42, 1833, 198};
    rc = run("./dataprep sft --tokenizer ref/tokjson_qwen2.json --template chatml --split 100/0/0 --out " TMP "/chatq " TMP "/chatq.jsonl");
    ok = rc == 0 && first_example(TMP "/chatq_train.ds", &ids, &mask, &label, &vocab);
    want = (IntVec){(int*)want_qwen, sizeof want_qwen / sizeof want_qwen[0], 0};
    check(ok && same_ids(&ids, &want) && same_mask(&mask, "0000000011111") && label == 8,
          "chatml: Qwen2 tokenizer: \"assistant\\n\" + \"\\n\\nOK\" -> the token \"\\n\\n\\n\" spans header and content and is trained");
    // --system: added where a conversation has none, as the templates' default system message
    rc = run("./dataprep sft --tokenizer ref/tokjson_qwen2.json --template chatml --split 100/0/0 --system 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' "
             "--out " TMP "/chatqs " TMP "/chatq.jsonl");
    ok = rc == 0 && first_example(TMP "/chatqs_train.ds", &ids, &mask, &label, &vocab);
    check(ok && decodes_to("ref/tokjson_qwen2.json", &ids, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                           "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n\n\nOK<|im_end|>\n") && ids.len == 52 && label == 47 &&
          file_contains(TMP "/chatqs_summary.txt", "system message (--system) added to 1"),
          "chatml: --system TEXT goes first where there is no system message: Qwen2.5's default gives its template's 52 ids");
    rc = run("./dataprep sft --tokenizer ref/tokjson_smol.json --template chatml --split 100/0/0 --system 'Other.' --out " TMP "/chat2 " TMP "/chat.jsonl");
    ok = rc == 0 && first_example(TMP "/chat2_train.ds", &ids, &mask, &label, &vocab);
    want = (IntVec){(int*)want_smol, sizeof want_smol / sizeof want_smol[0], 0};
    check(ok && same_ids(&ids, &want) && file_contains(TMP "/chat2_summary.txt", "added to 0"), "chatml: --system leaves a conversation that has a system message as it is");
    rc = run("./dataprep sft --tokenizer ref/tokjson_smol.json --system 'x' --out " TMP "/chat3 " TMP "/chat.jsonl");
    check(rc == 1 && strstr(err_line(), "--system: error: does not apply to --template alpaca"), "chatml: --system without --template chatml refused: %s", err_line());
    // Alpaca rows under chatml: a user turn (instruction, "\n\n", input) and an assistant turn (output); a JSON array
    write_text(TMP "/chata.json", "[{\"instruction\": \"Add them\", \"input\": \"2 and 2\", \"output\": \"4\"},\n {\"instruction\": \"Say hi\", \"input\": \"\", \"output\": \"hi\"}]");
    rc = run("./dataprep sft --tokenizer ref/tokjson_smol.json --template chatml --split 100/0/0 --out " TMP "/chata " TMP "/chata.json");
    ok = rc == 0 && first_example(TMP "/chata_train.ds", &ids, &mask, &label, &vocab);
    size_t trained = 0;
    for (size_t q = 0; q < mask.len; q++) trained += mask.data[q];
    // trained: "4" (one token: the tokenizer splits digits), <|im_end|>, "\n"
    check(ok && decodes_to("ref/tokjson_smol.json", &ids, "<|im_start|>user\nAdd them\n\n2 and 2<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n") &&
          trained == 3 && mask.len == ids.len && mask.data[ids.len - 3] && !mask.data[ids.len - 4] && label == (int)ids.len - 3 &&
          file_contains(TMP "/chata_summary.txt", "2 records read") && file_contains(TMP "/chata_summary.txt", "2 conversations, 2 of them Alpaca rows"),
          "chatml: Alpaca rows -> user \"instruction\\n\\ninput\", assistant \"output\"; trained: 4<|im_end|>\\n (3 tokens)");
    // a tokenizer without the ChatML tokens: refused with the --add-token hint; with it, V grows by 2
    rc = run("./dataprep sft --tokenizer " GPT2 " --template chatml --out " TMP "/chatg " TMP "/chat.jsonl");
    check(rc == 1 && strstr(err_line(), "error: no <|im_start|> token") && file_contains(TMP "/err.txt", "hint: pass --add-token '<|im_start|>' --add-token '<|im_end|>'"),
          "chatml: GPT-2 vocabulary has no <|im_start|>: one-line error with the --add-token hint");
    rc = run("./dataprep sft --tokenizer " GPT2 " --add-token '<|im_start|>' --add-token '<|im_end|>' --template chatml --split 100/0/0 --out " TMP "/chatg " TMP "/chat.jsonl");
    ok = rc == 0 && first_example(TMP "/chatg_train.ds", &ids, &mask, &label, &vocab);
    check(ok && vocab == 50259 && ids.len > 0 && ids.data[0] == 50257 && ids.data[ids.len - 2] == 50258 && ids.data[ids.len - 1] == 198 &&
          decodes_to(GPT2, &ids, "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
                     "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4, of course.<|im_end|>\n"),
          "chatml: GPT-2 + --add-token: <|im_start|>=50257, <|im_end|>=50258, V=%d (want 50259)", vocab);
    // bad records: each a one-line error naming file:line, with a hint
    static const struct { const char* line; const char* want; } bad[] = {
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"bot\", \"content\": \"b\"}]}", "messages[1].role is \"bot\", not system, user or assistant"},
        {"{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"a\"}]}", "no assistant turn: nothing to learn"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": 42}]}", "messages[1].content is a number, not a string"},
        {"{\"messages\": {\"role\": \"user\", \"content\": \"a\"}}", "\"messages\" is an object, not an array"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}",
         "messages[1] is a system message after the first message"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}]}, {\"role\": \"assistant\", \"content\": \"b\"}]}", "messages[0].content is an array, not a string"},
        {"{\"messages\": [{\"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}", "messages[0] has no \"role\""},
        {"{\"messages\": []}", "\"messages\" is empty: nothing to learn"},
        {"{\"text\": \"a\"}", "neither \"messages\" nor \"instruction\"/\"output\""},
    };
    const char* good = "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}\n";
    int nbad = (int)(sizeof bad / sizeof bad[0]);
    ByteVec all = {0};
    bytevec_append(&all, good, strlen(good));
    for (int k = 0; k < nbad; k++) {
        char text[1024];
        snprintf(text, sizeof text, "%s%s\n", good, bad[k].line);  // the bad record on line 2
        write_text(TMP "/chatbad.jsonl", text);
        remove(TMP "/chatbad_train.ds");  // (only a broken check writes it)
        rc = run("./dataprep sft --tokenizer ref/tokjson_smol.json --template chatml --out " TMP "/chatbad " TMP "/chatbad.jsonl");
        char want_line[600];
        snprintf(want_line, sizeof want_line, "chatbad.jsonl:2: error: %s", bad[k].want);
        check(rc == 1 && strstr(err_line(), want_line) && file_contains(TMP "/err.txt", "\nhint: ") && access(TMP "/chatbad_train.ds", F_OK) != 0,
              "chatml bad input %d: %s", k, err_line());
        bytevec_append(&all, bad[k].line, strlen(bad[k].line)), bytevec_push(&all, '\n');
    }
    // a JSON array over several lines: the line of the offending message
    write_text(TMP "/chatbad.json", "[\n{\"messages\": [\n  {\"role\": \"user\", \"content\": \"a\"},\n  {\"role\": \"assistant\", \"content\": null}\n]}\n]\n");
    rc = run("./dataprep sft --tokenizer ref/tokjson_smol.json --template chatml --out " TMP "/chatbad " TMP "/chatbad.json");
    check(rc == 1 && strstr(err_line(), "chatbad.json:4: error: messages[1].content is null, not a string"), "chatml bad input in a JSON array: the message's line: %s", err_line());
    // --skip-bad: every bad record skipped and counted, the good ones kept
    const char* junk = "{\"messages\": [{\"role\": \"user\", \"content\": \"e\"}, {\"role\": \"assistant\", \"content\": \"f\"}]} junk\n";
    bytevec_append(&all, junk, strlen(junk));  // text after the object: skipped
    const char* good2 = "{\"messages\": [{\"role\": \"user\", \"content\": \"c\"}, {\"role\": \"assistant\", \"content\": \"d\"}]}\n";
    bytevec_append(&all, good2, strlen(good2));
    bytevec_push(&all, 0);
    write_text(TMP "/chatbad.jsonl", (char*)all.data);
    rc = run("./dataprep sft --tokenizer ref/tokjson_smol.json --template chatml --skip-bad --split 100/0/0 --out " TMP "/chatskip " TMP "/chatbad.jsonl");
    char want_count[128];
    snprintf(want_count, sizeof want_count, "bad rows skipped: %d  first: " TMP "/chatbad.jsonl:2: messages[1].role is \"bot\"", nbad + 1);
    Dataset ds;
    char err[512];
    ok = rc == 0 && dataset_open(&ds, TMP "/chatskip_train.ds", err, sizeof err) == 0;
    check(ok && ds.count == 2 && file_contains(TMP "/chatskip_summary.txt", want_count) && file_contains(TMP "/chatskip_summary.txt", "12 records read"),
          "chatml --skip-bad: %d bad records skipped and counted, the 2 good ones kept (%llu)", nbad + 1, ok ? (unsigned long long)ds.count : 0ULL);
    if (ok) dataset_close(&ds);
    free(all.data);
    // --max-len: as Alpaca: cut to fit when the first assistant turn starts before it, else dropped (counted)
    write_text(TMP "/chatlen.jsonl",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"a long answer that does not fit\"}]}\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"a question far too long to leave room for the answer\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"c\"}, {\"role\": \"assistant\", \"content\": \"d\"}]}\n");
    rc = run("./dataprep sft --tokenizer ref/tokjson_smol.json --template chatml --split 100/0/0 --max-len 16 --out " TMP "/chatlen " TMP "/chatlen.jsonl");
    ok = rc == 0 && dataset_open(&ds, TMP "/chatlen_train.ds", err, sizeof err) == 0;
    check(ok && ds.count == 2 && ds.max_len == 16 && file_contains(TMP "/chatlen_summary.txt", "truncated 1  dropped 1"),
          "chatml --max-len 16: the long answer cut to 16 tokens, the long question dropped, both counted");
    if (ok) dataset_close(&ds);
    // ./train on it. The GPT-2 + --add-token file: train grows the model's vocabulary by the two ChatML rows.
    rc = run("./train --init 1,2,32 --vocab 50257 --max-seq 64 --train " TMP "/chatg_train.ds --batch 1 --seq 64 --steps 2 --print-every 0 --out " TMP "/chatg_run");
    check(rc == 0 && file_contains(TMP "/out.txt", "growing the vocabulary from 50257 to 50259") && file_contains(TMP "/out.txt", "(sft)"),
          "chatml + ./train: an SFT file; --add-token's <|im_start|>, <|im_end|> grow the model's vocabulary 50257 -> 50259");
    // End to end: five two-turn conversations whose first answer is always "the cat sat on the mat."; a 1-layer model
    // learns them (100 steps, seeded), then eval --generate --stop <|im_end|> (2) from each prompt (everything before
    // the first assistant content) reproduces that turn: BLEU 100, ROUGE-L 1, all 5 stopped at <|im_end|>, and the
    // reference is the first turn without its <|im_end|> (not the rest of the conversation).
    ByteVec conv = {0};
    static const char* const qs[] = {"ab", "cd", "ef", "gh", "ij"};
    for (int k = 0; k < 5; k++) {
        char line[512];
        snprintf(line, sizeof line, "{\"messages\": [{\"role\": \"system\", \"content\": \"Answer.\"}, {\"role\": \"user\", \"content\": \"Q: %s\"}, "
                 "{\"role\": \"assistant\", \"content\": \"the cat sat on the mat.\"}, {\"role\": \"user\", \"content\": \"More?\"}, "
                 "{\"role\": \"assistant\", \"content\": \"No.\"}]}\n", qs[k]);
        bytevec_append(&conv, line, strlen(line));
    }
    bytevec_push(&conv, 0);
    write_text(TMP "/chate2e.jsonl", (char*)conv.data);
    free(conv.data);
    rc = run("./dataprep sft --tokenizer ref/tokjson_smol.json --template chatml --split 100/0/0 --out " TMP "/chate2e " TMP "/chate2e.jsonl && "
             "./train --init 1,2,32 --vocab 1834 --max-seq 64 --train " TMP "/chate2e_train.ds --batch 5 --seq 64 --steps 100 --lr 1e-2 "
             "--print-every 0 --out " TMP "/chate2e_run && ./train eval --model " TMP "/chate2e_run/model.bin --data " TMP "/chate2e_train.ds "
             "--batch 5 --seq 64 --generate -1 --max-new-tokens 20 --stop 2 --tokenizer ref/tokjson_smol.json --out " TMP "/chate2e_run");
    char* gens = slurp(TMP "/chate2e_run/generations.jsonl", NULL);
    int refs = 0, prompts = 0;
    for (char* g = gens; g && (g = strstr(g, "\"reference\": \"the cat sat on the mat.\", ")); g++) refs++;
    for (char* g = gens; g && (g = strstr(g, "<|im_start|>assistant\\n\", \"reference\"")); g++) prompts++;
    free(gens);
    check(rc == 0 && file_contains(TMP "/out.txt", "\"bleu\": 100.0000") && file_contains(TMP "/out.txt", "\"rouge_l\": 1.000000") &&
          file_contains(TMP "/out.txt", "\"gen_stopped\": 5") && refs == 5 && prompts == 5,
          "chatml + ./train + eval --generate --stop 2: prompts end in <|im_start|>assistant\\n, references are the first turn (%d, %d of 5), BLEU 100", refs, prompts);
    free(ids.data), free(mask.data);
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
    test_nfc();
    test_tokjson_vectors();
    test_tokjson_errors();
    test_tokjson_full();
    test_dataset_files();
    test_csv_parser();
    test_cli();
    test_tok();
    test_chatml();
    printf("(%.1f s)\n", now_seconds() - t0);
    printf("dataprep: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
