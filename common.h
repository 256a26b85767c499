// common.h: what every program here shares: the error helpers (one line naming what and where, a hint line,
// exit 1), checked allocation and file I/O, the writer that never leaves a half-written file (SafeWriter), a
// clock, and a small JSON reader.

#pragma once
#include <errno.h>      // defines: errno, for the messages
#include <math.h>       // defines: the math every file uses
#include <stdarg.h>     // defines: va_list, for failf
#include <stddef.h>     // defines: size_t, offsetof
#include <stdint.h>     // defines: the fixed-width integers of the file formats
#include <stdio.h>      // defines: FILE and printf
#include <stdlib.h>     // defines: malloc, exit
#include <string.h>     // defines: memcpy, strcmp
#include <sys/resource.h>  // defines: getrusage, for the peak memory
#include <sys/stat.h>     // defines: stat, so that readers refuse a FIFO or a folder instead of hanging on it
#include <time.h>       // defines: clock_gettime, nanosleep
#include <unistd.h>     // defines: getpid, for temp names

// ---------------------------------------------------------------------------- errors
// The one error helper. Every failure ends here: "WHERE: error: WHAT" (or "error: WHAT" when there is no
// place to name), then "hint: HINT", exit 1. WHERE is a file, a file:line of the input (a dataset row, a
// tokenizer file), or, for the errors only a programmer can cause (DIE), the source file:line.
static int dist_rank_for_errors = 0;  // set by dist_init (dist.h)
static void (*fail_hook)(void) = NULL;  // dev/fuzz/ sets it to longjmp back instead of exiting; NULL elsewhere
static void fail_at(const char* where, const char* hint, const char* fmt, ...) {
    if (dist_rank_for_errors > 0) {  // under MPI: let rank 0 report an error every rank hits (it takes all
        struct timespec ts = {0, 300000000};  // processes down first), so it is printed once
        nanosleep(&ts, NULL);
    }
    va_list ap;
    va_start(ap, fmt);
    if (where && where[0]) fprintf(stderr, "%s: ", where);
    fprintf(stderr, "error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (hint && hint[0]) fprintf(stderr, "hint: %s\n", hint);
    if (fail_hook) fail_hook();
    exit(1);  // under MPI, dist.h's exit handler takes every other process down too
}
// A user's error whose message names the file or flag itself: failf(hint, "%s: ...", path, ...).
#define failf(hint, ...) fail_at(NULL, hint, __VA_ARGS__)

// A programmer's error (or out of memory): names the source line.
static void die(const char* file, int line, const char* what, const char* hint) {
    char where[256];
    snprintf(where, sizeof where, "%s:%d", file, line);
    fail_at(where, hint, "%s", what);
}
#define DIE(what, hint) die(__FILE__, __LINE__, what, hint)

static void* malloc_check(size_t size, const char* file, int line) {
    void* p = malloc(size ? size : 1);
    if (!p) {
        char msg[128];
        snprintf(msg, sizeof msg, "out of memory asking for %zu bytes", size);
        die(file, line, msg, "use a smaller --batch/--seq or a smaller model");
    }
    return p;
}
#define mallocCheck(size) malloc_check(size, __FILE__, __LINE__)

static void* calloc_check(size_t n, size_t size, const char* file, int line) {
    void* p = malloc_check(n * size, file, line);
    memset(p, 0, n * size);
    return p;
}
#define callocCheck(n, size) calloc_check(n, size, __FILE__, __LINE__)

static void* realloc_check(void* p, size_t size, const char* file, int line) {
    p = realloc(p, size ? size : 1);
    if (!p) die(file, line, "out of memory", "the input is too large for this machine's memory");
    return p;
}
#define reallocCheck(p, size) realloc_check(p, size, __FILE__, __LINE__)

// ---------------------------------------------------------------------------- growable arrays
// of ids and of bytes (a ByteVec keeps a 0 after its bytes, so its data is also a C string)
typedef struct { int* data; size_t len, cap; } IntVec;
typedef struct { unsigned char* data; size_t len, cap; } ByteVec;

static void intvec_push(IntVec* v, int x) {
    if (v->len == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 256;
        v->data = (int*)reallocCheck(v->data, v->cap * sizeof(int));
    }
    v->data[v->len++] = x;
}
static void bytevec_append(ByteVec* v, const void* p, size_t n) {
    if (v->len + n + 1 > v->cap) {  // +1 keeps room for a terminating 0
        while (v->len + n + 1 > v->cap) v->cap = v->cap ? 2 * v->cap : 256;
        v->data = (unsigned char*)reallocCheck(v->data, v->cap);
    }
    if (n) memcpy(v->data + v->len, p, n);
    v->len += n;
    v->data[v->len] = 0;
}
static void bytevec_push(ByteVec* v, unsigned char c) { bytevec_append(v, &c, 1); }

// appends the UTF-8 encoding of cp (< 0x110000) to out
static void utf8_encode(ByteVec* out, uint32_t cp) {
    unsigned char b[4]; size_t n;
    if (cp < 0x80) { b[0] = (unsigned char)cp; n = 1; }
    else if (cp < 0x800) { b[0] = 0xC0 | (cp >> 6); b[1] = 0x80 | (cp & 0x3F); n = 2; }
    else if (cp < 0x10000) { b[0] = 0xE0 | (cp >> 12); b[1] = 0x80 | ((cp >> 6) & 0x3F); b[2] = 0x80 | (cp & 0x3F); n = 3; }
    else { b[0] = 0xF0 | (cp >> 18); b[1] = 0x80 | ((cp >> 12) & 0x3F); b[2] = 0x80 | ((cp >> 6) & 0x3F); b[3] = 0x80 | (cp & 0x3F); n = 4; }
    bytevec_append(out, b, n);
}

// formats an error message into err (truncating if needed), for readers that report instead of exiting
static void tok_errf(char* err, size_t errlen, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

// ---------------------------------------------------------------------------- file helpers
// 1 when path exists and is not a regular file (a folder, a FIFO, a device): opening a FIFO to read blocks
// until someone writes to it, so readers ask first.
static int not_regular_file(const char* path) {
    struct stat st;
    return stat(path, &st) == 0 && !S_ISREG(st.st_mode);
}

static FILE* fopen_check(const char* path, const char* mode) {
    if (mode[0] == 'r' && not_regular_file(path))
        failf("give the path of a file (not a folder, FIFO or device)", "%s: not a regular file", path);
    FILE* f = fopen(path, mode);
    if (!f) failf(mode[0] == 'r' ? "check the path" : "check that the folder exists and is writable",
                  "cannot open %s for %s: %s", path, mode[0] == 'r' ? "reading" : "writing", strerror(errno));
    return f;
}

// Reads exactly n bytes or dies naming the file and what was being read.
static void fread_check(void* dst, size_t n, FILE* f, const char* path, const char* what) {
    if (fread(dst, 1, n, f) != n)
        failf("the file is truncated or not in the expected format", "%s: unexpected end of file reading %s", path, what);
}

static void fwrite_check(const void* src, size_t n, FILE* f, const char* path) {
    if (fwrite(src, 1, n, f) != n) failf("check free disk space", "%s: write failed: %s", path, strerror(errno));
}

static long long file_size(FILE* f) {
    long pos = ftell(f);
    fseek(f, 0, SEEK_END);
    long long n = ftell(f);
    fseek(f, pos, SEEK_SET);
    return n;
}

// Nothing half-written is left behind: writers write PATH.tmp, then rename it over PATH when complete.
typedef struct {
    FILE* f;
    char path[1280], tmp[1320];  // longer than every path buffer of the callers, with room for .tmpPID
} SafeWriter;

static void safe_open(SafeWriter* w, const char* path) {
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp%d", path, (int)getpid());
    w->f = fopen(w->tmp, "wb");
    if (!w->f) failf("check that the folder exists and is writable", "cannot write %s: %s", path, strerror(errno));
}

static void safe_close(SafeWriter* w) {
    if (fclose(w->f) != 0 || rename(w->tmp, w->path) != 0) {
        remove(w->tmp);
        failf("check free disk space and permissions", "could not finish writing %s: %s", w->path, strerror(errno));
    }
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;  // Linux reports KiB
}

static void format_duration(char* out, size_t cap, double s) {
    if (s < 60) snprintf(out, cap, "%.0fs", s);
    else if (s < 3600) snprintf(out, cap, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(out, cap, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

// ---------------------------------------------------------------------------- JSON: the one reader
// Enough JSON to read encoder.json, JSONL rows and Alpaca files without building a tree: the caller
// walks the text with these functions. Each returns 0 on success, -1 with js->err set on error;
// js->line is the 1-based line of js->pos, for "file:line:" messages.

typedef struct { const unsigned char* s; size_t n, pos; int line; const char* err; } JsonScan;

static void jscan_ws(JsonScan* js) {
    while (js->pos < js->n) {
        unsigned char c = js->s[js->pos];
        if (c == '\n') js->line++;
        else if (c != ' ' && c != '\t' && c != '\r') break;
        js->pos++;
    }
}
static int jscan_fail(JsonScan* js, const char* what) { js->err = what; return -1; }
static int jscan_expect(JsonScan* js, char c) {
    jscan_ws(js);
    if (js->pos >= js->n || js->s[js->pos] != (unsigned char)c) {
        static char msg[64];  // static: the message outlives this call (not thread-safe, fine here)
        tok_errf(msg, sizeof msg, "expected '%c'", c);
        return jscan_fail(js, msg);
    }
    js->pos++;
    return 0;
}
static int jscan_hex4(JsonScan* js, uint32_t* out) {
    if (js->pos + 4 > js->n) return jscan_fail(js, "truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = js->s[js->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') v |= (c | 0x20) - 'a' + 10;
        else return jscan_fail(js, "bad hex digit in \\u escape");
    }
    *out = v;
    return 0;
}
// reads a string value into out (replacing its content), decoding escapes to UTF-8.
// A lone UTF-16 surrogate (\ud800 without its pair) becomes U+FFFD.
static int jscan_string(JsonScan* js, ByteVec* out) {
    out->len = 0;
    bytevec_append(out, "", 0);
    if (jscan_expect(js, '"')) return jscan_fail(js, "expected a string");
    while (1) {
        size_t start = js->pos;  // copy runs of plain bytes at once
        while (js->pos < js->n && js->s[js->pos] != '"' && js->s[js->pos] != '\\' && js->s[js->pos] >= 0x20) js->pos++;
        bytevec_append(out, js->s + start, js->pos - start);
        if (js->pos >= js->n) return jscan_fail(js, "unterminated string");
        unsigned char c = js->s[js->pos++];
        if (c == '"') return 0;
        if (c != '\\') return jscan_fail(js, "raw control character in string (newlines must be written \\n)");
        if (js->pos >= js->n) return jscan_fail(js, "unterminated string");
        c = js->s[js->pos++];
        switch (c) {
            case '"': case '\\': case '/': bytevec_push(out, c); break;
            case 'b': bytevec_push(out, '\b'); break;
            case 'f': bytevec_push(out, '\f'); break;
            case 'n': bytevec_push(out, '\n'); break;
            case 'r': bytevec_push(out, '\r'); break;
            case 't': bytevec_push(out, '\t'); break;
            case 'u': {
                uint32_t u;
                if (jscan_hex4(js, &u)) return -1;
                if (u >= 0xD800 && u <= 0xDBFF && js->pos + 6 <= js->n && js->s[js->pos] == '\\' && js->s[js->pos + 1] == 'u') {
                    size_t save = js->pos;
                    uint32_t lo;
                    js->pos += 2;
                    if (jscan_hex4(js, &lo)) return -1;
                    if (lo >= 0xDC00 && lo <= 0xDFFF) u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                    else js->pos = save;  // not a pair: decode the second escape on its own
                }
                if (u >= 0xD800 && u <= 0xDFFF) u = 0xFFFD;
                utf8_encode(out, u);
                break;
            }
            default: return jscan_fail(js, "unknown escape in string");
        }
    }
}
static int jscan_number(JsonScan* js, double* out) {
    jscan_ws(js);
    size_t start = js->pos;
    while (js->pos < js->n && js->s[js->pos] && strchr("+-0123456789.eE", js->s[js->pos])) js->pos++;
    size_t len = js->pos - start;
    if (len == 0 || len > 63) return jscan_fail(js, "expected a number");
    char buf[64];
    memcpy(buf, js->s + start, len);
    buf[len] = 0;
    char* end;
    *out = strtod(buf, &end);
    if (*end) return jscan_fail(js, "malformed number");
    return 0;
}
// type of the next value: '"', '{', '[', 'n' (number), 't'/'f' (bool), 'z' (null), 0 at end/garbage
static int jscan_peek(JsonScan* js) {
    jscan_ws(js);
    if (js->pos >= js->n) return 0;
    unsigned char c = js->s[js->pos];
    if (c == '"' || c == '{' || c == '[') return c;
    if (c == '-' || (c >= '0' && c <= '9')) return 'n';
    if (c == 't' || c == 'f') return c;
    if (c == 'n') return 'z';
    return 0;
}
static int jscan_literal(JsonScan* js, const char* word) {
    size_t n = strlen(word);
    if (js->pos + n > js->n || memcmp(js->s + js->pos, word, n) != 0) return jscan_fail(js, "unexpected character");
    js->pos += n;
    return 0;
}
// skips one value of any type; depth guards against stack overflow on [[[[[[...
static int jscan_skip(JsonScan* js, int depth) {
    if (depth > 200) return jscan_fail(js, "nested too deeply");
    ByteVec tmp = {0};
    int rc = 0;
    switch (jscan_peek(js)) {
        case '"': rc = jscan_string(js, &tmp); break;
        case 'n': { double d; rc = jscan_number(js, &d); break; }
        case 't': rc = jscan_literal(js, "true"); break;
        case 'f': rc = jscan_literal(js, "false"); break;
        case 'z': rc = jscan_literal(js, "null"); break;
        case '{': case '[': {
            char close = js->s[js->pos] == '{' ? '}' : ']';
            int is_obj = close == '}';
            js->pos++;
            jscan_ws(js);
            if (js->pos < js->n && js->s[js->pos] == (unsigned char)close) { js->pos++; break; }
            while (1) {
                if (is_obj) {
                    if ((rc = jscan_string(js, &tmp))) break;
                    if ((rc = jscan_expect(js, ':'))) break;
                }
                if ((rc = jscan_skip(js, depth + 1))) break;
                jscan_ws(js);
                if (js->pos < js->n && js->s[js->pos] == ',') { js->pos++; continue; }
                if ((rc = jscan_expect(js, close))) break;
                break;
            }
            break;
        }
        default: rc = jscan_fail(js, js->pos >= js->n ? "unexpected end of input" : "unexpected character");
    }
    free(tmp.data);
    return rc;
}


// The same scanner for readers that stop at the first error (safetensors headers, config.json, PEFT files):
// each json_* call either succeeds or exits naming the file, the line and what was wrong.
typedef struct {
    JsonScan js;
    const char* path;  // for error messages
} Json;

static Json json_begin(const char* text, size_t len, const char* path) {
    Json j = {{(const unsigned char*)text, len, 0, 1, NULL}, path};
    return j;
}
static void json_fail(Json* j, const char* what) {
    fail_at(j->path, "the file is not valid JSON of the expected shape", "line %d: JSON: %s", j->js.line, what);
}
static void json_check(Json* j, int rc) {
    if (rc) json_fail(j, j->js.err);
}
// The next character after whitespace, -1 at the end.
static int json_peek(Json* j) {
    jscan_ws(&j->js);
    return j->js.pos < j->js.n ? j->js.s[j->js.pos] : -1;
}
static void json_next(Json* j) { j->js.pos++; }                                        // steps over one character
static const char* json_here(const Json* j) { return (const char*)j->js.s + j->js.pos; }  // where the scan is
static void json_expect(Json* j, char c) { json_check(j, jscan_expect(&j->js, c)); }
// Reads a string into out (truncated to cap-1 bytes), escapes decoded to UTF-8.
static void json_string(Json* j, char* out, size_t cap) {
    ByteVec v = {0};
    int rc = jscan_string(&j->js, &v);
    if (rc) free(v.data);
    json_check(j, rc);
    if (cap) snprintf(out, cap, "%s", (const char*)v.data);
    free(v.data);
}
static double json_number(Json* j) {
    double v;
    json_check(j, jscan_number(&j->js, &v));
    return v;
}
static void json_skip(Json* j, int depth) { json_check(j, jscan_skip(&j->js, depth)); }

// Finds a top-level numeric key in a JSON object text; returns 1 and sets *out when present.
static int json_get_number(const char* text, size_t len, const char* key, const char* path, double* out) {
    Json j = json_begin(text, len, path);
    json_expect(&j, '{');
    if (json_peek(&j) == '}') return 0;
    for (;;) {
        char k[128];
        json_string(&j, k, sizeof k);
        json_expect(&j, ':');
        int c = json_peek(&j);
        if (!strcmp(k, key) && (c == '-' || (c >= '0' && c <= '9'))) {
            *out = json_number(&j);
            return 1;
        }
        json_skip(&j, 0);
        int d = json_peek(&j);
        if (d == ',') { json_next(&j); continue; }
        if (d == '}') return 0;
        json_fail(&j, "expected ',' or '}'");
    }
}
