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
#include <time.h>       // defines: clock_gettime, nanosleep
#include <unistd.h>     // defines: getpid, for temp names

// ---------------------------------------------------------------------------- error helpers
// Every failure a user can cause ends here: one line naming what and where, one hint line, exit 1.
static void die(const char* file, int line, const char* what, const char* hint) {
    fprintf(stderr, "error: %s (%s:%d)\n", what, file, line);
    if (hint && hint[0]) fprintf(stderr, "hint: %s\n", hint);
    exit(1);  // under MPI, train.c's exit handler takes every other process down too
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

// ---------------------------------------------------------------------------- file helpers
// Formats a message and dies with a hint: the one-line error every bad input gets.
static int dist_rank_for_errors = 0;  // set by dist_init; see failf
static void failf(const char* hint, const char* fmt, ...) {
    if (dist_rank_for_errors > 0) {  // under MPI: let rank 0 report an error every rank hits (it takes all
        struct timespec ts = {0, 300000000};  // processes down first), so it is printed once
        nanosleep(&ts, NULL);
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (hint && hint[0]) fprintf(stderr, "hint: %s\n", hint);
    exit(1);
}

static FILE* fopen_check(const char* path, const char* mode) {
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

// ---------------------------------------------------------------------------- a very small JSON reader
// Enough JSON for safetensors headers and config.json: objects, arrays, strings, numbers, true/false/null.
typedef struct {
    const char* s;
    const char* end;
    const char* path;  // for error messages
} Json;

static void json_fail(Json* j, const char* what) {
    failf("the file is not valid JSON of the expected shape", "%s: JSON: %s (%ld bytes before the end)", j->path, what,
          (long)(j->end - j->s));
}
static void json_ws(Json* j) {
    while (j->s < j->end && (*j->s == ' ' || *j->s == '\n' || *j->s == '\r' || *j->s == '\t')) j->s++;
}
static int json_peek(Json* j) {
    json_ws(j);
    return j->s < j->end ? *j->s : -1;
}
static void json_expect(Json* j, char c) {
    if (json_peek(j) != c) {
        char msg[32];
        snprintf(msg, sizeof msg, "expected '%c'", c);
        json_fail(j, msg);
    }
    j->s++;
}
// Reads a string into out (truncated to cap-1). Escapes are decoded for ASCII; \uXXXX becomes '?'.
static void json_string(Json* j, char* out, size_t cap) {
    json_expect(j, '"');
    size_t n = 0;
    while (j->s < j->end && *j->s != '"') {
        char c = *j->s++;
        if (c == '\\') {
            if (j->s >= j->end) break;
            char e = *j->s++;
            c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
            if (e == 'u') {
                if (j->end - j->s < 4) break;
                j->s += 4;
                c = '?';
            }
        }
        if (n + 1 < cap) out[n++] = c;
    }
    if (j->s >= j->end) json_fail(j, "unterminated string");
    j->s++;
    if (cap) out[n] = 0;
}
static double json_number(Json* j) {
    json_ws(j);
    char buf[64];
    size_t n = 0;
    while (j->s < j->end && n < sizeof buf - 1 && strchr("+-0123456789.eE", *j->s)) buf[n++] = *j->s++;
    buf[n] = 0;
    char* e;
    double v = strtod(buf, &e);
    if (n == 0 || *e) json_fail(j, "bad number");
    return v;
}
static void json_skip(Json* j, int depth) {
    if (depth > 64) json_fail(j, "nested too deeply");
    int c = json_peek(j);
    if (c == '"') {
        char tmp[8];
        json_string(j, tmp, sizeof tmp);
    } else if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->s++;
        if (json_peek(j) == close) { j->s++; return; }
        for (;;) {
            if (c == '{') {
                char tmp[8];
                json_string(j, tmp, sizeof tmp);
                json_expect(j, ':');
            }
            json_skip(j, depth + 1);
            int d = json_peek(j);
            if (d == ',') { j->s++; continue; }
            if (d == close) { j->s++; return; }
            json_fail(j, "expected ',' or a closing bracket");
        }
    } else if (c == 't' || c == 'f' || c == 'n') {
        const char* w = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t n = strlen(w);
        if ((size_t)(j->end - j->s) < n || strncmp(j->s, w, n)) json_fail(j, "bad literal");
        j->s += n;
    } else {
        json_number(j);
    }
}

// Finds a top-level numeric key in a JSON object text; returns 1 and sets *out when present.
static int json_get_number(const char* text, size_t len, const char* key, const char* path, double* out) {
    Json j = {text, text + len, path};
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
        if (d == ',') { j.s++; continue; }
        if (d == '}') return 0;
        json_fail(&j, "expected ',' or '}'");
    }
}
