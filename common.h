// common.h: what every program here shares: the error helpers (one line naming what and where, a hint line,
// exit 1), checked allocation and file I/O, the writer that never leaves a half-written file (SafeWriter), a
// clock, and a small JSON reader.

#pragma once
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L  // O_NOFOLLOW, fsync, lstat, fcntl locks: POSIX, which strict -std=c11 hides
#endif
#include <dirent.h>     // defines: opendir, for a run folder's stale temp files
#include <errno.h>      // defines: errno, for the messages
#include <fcntl.h>      // defines: open's O_EXCL and O_NOFOLLOW, fcntl's record locks
#include <signal.h>     // defines: sigaction, so a signal removes the temp files too
#include <math.h>       // defines: the math every file uses
#include <stdarg.h>     // defines: va_list, for failf
#include <stddef.h>     // defines: size_t, offsetof
#include <stdint.h>     // defines: the fixed-width integers of the file formats
#include <stdio.h>      // defines: FILE and printf
#include <stdlib.h>     // defines: malloc, exit
#include <string.h>     // defines: memcpy, strcmp
#include <sys/stat.h>   // defines: stat, lstat, mkdir (readers refuse a FIFO or a folder instead of hanging on it)
#include <sys/resource.h>  // defines: getrusage, for the peak memory
#include <time.h>       // defines: clock_gettime, nanosleep
#include <unistd.h>     // defines: getpid, unlink, fsync

// ---------------------------------------------------------------------------- temp files open now
// Writers write PATH.tmp.PID.RAND and rename it over PATH when it is complete (SafeWriter, below). The temp
// files open at this moment are listed here, so that an error (fail_at) or SIGINT/SIGTERM/SIGHUP removes them
// before the process ends: nothing half-written is left behind. (kill -9 cannot be caught: a run folder's
// stale temps are removed when the next run takes the folder, see remove_stale_temps.)
#define MAX_OPEN_TEMPS 16
static char open_temps[MAX_OPEN_TEMPS][4400];  // as long as the longest writer path buffer (dataset.h), plus .tmp.PID.RAND

static void temps_add(const char* tmp) {
    for (int i = 0; i < MAX_OPEN_TEMPS; i++)
        if (!open_temps[i][0]) {
            snprintf(open_temps[i], sizeof open_temps[i], "%s", tmp);
            return;
        }
}
static void temps_drop(const char* tmp) {
    for (int i = 0; i < MAX_OPEN_TEMPS; i++)
        if (!strcmp(open_temps[i], tmp)) open_temps[i][0] = 0;
}
static void temps_remove_all(void) {  // async-signal-safe: unlink only
    for (int i = 0; i < MAX_OPEN_TEMPS; i++)
        if (open_temps[i][0]) unlink(open_temps[i]), open_temps[i][0] = 0;
}
static void temps_on_signal(int sig) {
    temps_remove_all();
    signal(sig, SIG_DFL);  // then die of the signal as if there were no handler (the exit status says which)
    raise(sig);
}
// Installed by the first writer, for the signals that still have their default action (a program that
// handles them itself, like a server shutting down gracefully, keeps its handler).
static void temps_catch_signals(void) {
    static int done = 0;
    if (done) return;
    done = 1;
    int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        struct sigaction old, sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = temps_on_signal;
        sigemptyset(&sa.sa_mask);
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL) sigaction(sigs[i], &sa, NULL);
    }
}

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
    temps_remove_all();
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

// ---------------------------------------------------------------------------- writing files safely
// What a writer guarantees (README "Files: what is guaranteed"):
//   - an output never replaces an input of the same process: every file a command reads is registered with
//     protect_input, and an output path that is, or resolves to, one of them is refused;
//   - an output never follows a symlink and never replaces anything but a regular file (a symlinked
//     run/log.jsonl, a device node like /dev/full, a folder): refused, naming the path;
//   - nothing half-written: the data goes to a fresh temp file PATH.tmp.PID.RAND (O_EXCL: never an existing
//     file, never through a symlink), is flushed, synced and closed with every step checked, and only then
//     renamed over PATH; on any error the temp is removed and the old PATH is untouched.
#define MAX_INPUTS 128
static struct { dev_t dev; ino_t ino; char what[1700]; } inputs[MAX_INPUTS];
static int num_inputs = 0;

static void protect_one(const struct stat* st, const char* what, const char* path) {
    if (num_inputs == MAX_INPUTS) return;
    inputs[num_inputs].dev = st->st_dev, inputs[num_inputs].ino = st->st_ino;
    snprintf(inputs[num_inputs].what, sizeof inputs[num_inputs].what, "%s %s", what, path);
    num_inputs++;
}
// path is read by this command: no output may be it. A folder (a Hugging Face model or PEFT folder, a
// tokenizer folder) protects the files in it. what names the input in errors ("--train").
static void protect_input(const char* path, const char* what) {
    struct stat st;
    if (!path || stat(path, &st) != 0) return;  // not there: its reader says so
    if (!S_ISDIR(st.st_mode)) {
        protect_one(&st, what, path);
        return;
    }
    DIR* d = opendir(path);
    struct dirent* e;
    while (d && (e = readdir(d))) {
        char p[1600];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) protect_one(&st, what, p);
    }
    if (d) closedir(d);
}

// Refuses an output path that is a symlink, anything but a regular file, or (after resolving links) an input.
// A stream (streaming = 1: a log written as it goes, never renamed over) may also be a character device or a
// FIFO (--access-log /dev/null): writing into one replaces nothing.
static void check_output(const char* path, int streaming) {
    struct stat st;
    if (lstat(path, &st) != 0) return;  // does not exist yet: fine
    if (S_ISLNK(st.st_mode))
        fail_at(path, "remove the link, or write somewhere else", "is a symbolic link: outputs are never written through a link");
    if (streaming && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))) return;
    if (!S_ISREG(st.st_mode))
        fail_at(path, "give the path of a regular file (or a new one)", "is %s, not a regular file: refusing to replace it",
                S_ISDIR(st.st_mode) ? "a folder" : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "a special file");
    for (int i = 0; i < num_inputs; i++)
        if (inputs[i].dev == st.st_dev && inputs[i].ino == st.st_ino)
            fail_at(path, "choose an output path that is not one of the command's inputs", "is the input %s: writing it would destroy it", inputs[i].what);
}
static void check_output_path(const char* path) { check_output(path, 0); }

// A fresh temp file beside path, created with O_EXCL | O_NOFOLLOW (never an existing file or a link); its name
// goes into tmp and onto the list that errors and signals clean up. Returns the open stream.
static FILE* open_temp_beside(const char* path, char* tmp, size_t cap) {
    static uint64_t counter = 0;
    temps_catch_signals();
    for (int attempt = 0; attempt < 100; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t z = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (++counter * 0x9E3779B97F4A7C15ull) ^ (uint64_t)getpid() << 20;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull, z = (z ^ (z >> 27)) * 0x94D049BB133111EBull, z ^= z >> 31;  // splitmix64
        if ((size_t)snprintf(tmp, cap, "%s.tmp.%d.%08x", path, (int)getpid(), (unsigned)z) >= cap)
            fail_at(path, "use a shorter path", "the output path is too long");
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644);
        if (fd >= 0) {
            temps_add(tmp);
            FILE* f = fdopen(fd, "wb");
            if (!f) close(fd), unlink(tmp), temps_drop(tmp), fail_at(path, NULL, "cannot write: %s", strerror(errno));
            return f;
        }
        if (errno != EEXIST)
            fail_at(path, "check that the folder exists and is writable", "cannot write: %s", strerror(errno));
    }
    fail_at(path, NULL, "could not create a temp file beside it");
    return NULL;
}

// Flushes, syncs and closes f, then renames tmp over path; any failure removes tmp and names path.
// FINETUNE_CRASH_BEFORE_RENAME=TEXT (for dev/crash_test.sh only): the process kills itself with SIGKILL after
// writing a file whose path contains TEXT, just before the rename, as a power cut at the worst moment would.
static void finish_temp(FILE* f, const char* tmp, const char* path) {
    int bad = ferror(f) != 0;
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0 && errno != EINVAL;  // EINVAL: a file system without sync; nothing to wait for
    int err = errno;
    bad |= fclose(f) != 0;
    if (bad) err = errno ? errno : err;
    const char* crash = getenv("FINETUNE_CRASH_BEFORE_RENAME");
    if (!bad && crash && crash[0] && strstr(path, crash)) raise(SIGKILL);
    if (!bad && rename(tmp, path) != 0) bad = 1, err = errno;
    if (bad) {
        unlink(tmp);
        temps_drop(tmp);
        fail_at(path, "check free disk space and permissions", "could not finish writing: %s", strerror(err));
    }
    temps_drop(tmp);
}

// A writer that never leaves a half-written file: safe_open, write to w.f, safe_close.
typedef struct {
    FILE* f;
    char path[1280], tmp[1320];  // longer than every path buffer of the callers, with room for .tmp.PID.RAND
} SafeWriter;

static void safe_open(SafeWriter* w, const char* path) {
    if ((size_t)snprintf(w->path, sizeof w->path, "%s", path) >= sizeof w->path) fail_at(path, "use a shorter path", "the output path is too long");
    check_output_path(path);
    w->f = open_temp_beside(path, w->tmp, sizeof w->tmp);
}

static void safe_close(SafeWriter* w) { finish_temp(w->f, w->tmp, w->path); }

// A file written as it goes (a run's log.jsonl, command.txt): the same path checks as SafeWriter, opened
// without following a link, truncated (append = 0) or appended to. Each write must still be checked.
static FILE* open_stream_output(const char* path, int append) {
    check_output(path, 1);
    int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | (append ? O_APPEND : O_TRUNC), 0644);
    if (fd < 0) fail_at(path, "check that the folder exists and is writable", "cannot open for writing: %s", strerror(errno));
    FILE* f = fdopen(fd, append ? "ab" : "wb");
    if (!f) fail_at(path, NULL, "cannot open for writing: %s", strerror(errno));
    return f;
}
// Dies naming path if anything written to f since the last check failed (a full disk, an I/O error).
static void check_stream(FILE* f, const char* path) {
    if (ferror(f) || fflush(f) != 0) fail_at(path, "check free disk space", "write failed: %s", strerror(errno));
}

// mkdir -p: path and every missing parent, 0755. A part that exists and is not a folder is an error.
static void make_dirs(const char* path) {
    char p[1280];
    if ((size_t)snprintf(p, sizeof p, "%s", path) >= sizeof p) fail_at(path, "use a shorter path", "the folder path is too long");
    for (char* s = p + 1;; s++) {
        if (*s != '/' && *s) continue;
        char c = *s;
        *s = 0;
        struct stat st;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) fail_at(p, "check the path and its permissions", "cannot create the folder: %s", strerror(errno));
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) fail_at(p, "choose another path", "exists and is not a folder");
        *s = c;
        if (!c) break;
    }
}

// Whether name is one of our temp names: BASE.tmp.PID.RAND (8 hex digits), or BASE.tmpPID of older versions.
static int is_temp_name(const char* name) {
    const char* t = strstr(name, ".tmp");
    if (!t || t == name) return 0;
    const char* s = t + 4;
    if (*s == '.') {  // .tmp.PID.RAND
        const char* d = ++s;
        while (*s >= '0' && *s <= '9') s++;
        if (s == d || *s++ != '.') return 0;
        int n = 0;
        for (; (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'); s++) n++;
        return n == 8 && !*s;
    }
    const char* d = s;
    while (*s >= '0' && *s <= '9') s++;
    return s > d && !*s;
}

// A run folder's temp files left by a run that was killed (kill -9, a power cut) while writing: removed by the
// next run to lock the folder, which is then the only process that can be writing there.
static void remove_stale_temps(const char* dir) {
    DIR* d = opendir(dir);
    if (!d) return;
    struct dirent* e;
    while ((e = readdir(d))) {
        if (!is_temp_name(e->d_name)) continue;
        char path[1600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && unlink(path) == 0)
            printf("removed %s (a temp file left by an interrupted run)\n", path);
    }
    closedir(d);
}

// The lock that keeps two runs out of one folder (or two dataprep runs off one output prefix): DIR/.lock, an fcntl write lock held for the process's life
// (the kernel releases it when the process ends, even by kill -9, so a lock never goes stale); the file holds
// the owner's pid for the error message. Returns the descriptor, which must stay open.
static int lock_path(const char* path, const char* where, const char* what, const char* hint) {
    check_output_path(path);
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0644);
    if (fd < 0) fail_at(where, "check that the folder is writable", "cannot create the lock file %s: %s", path, strerror(errno));
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK, fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = 0;
        int pid = atoi(buf);
        if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) pid = (int)fl.l_pid;
        fail_at(where, hint, "%s is in use by another process (pid %d)", what, pid);
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) fail_at(path, "check free disk space", "cannot write the lock file");
    return fd;
}
static int lock_folder(const char* dir, const char* hint) {
    char path[1300];
    snprintf(path, sizeof path, "%s/.lock", dir);
    return lock_path(path, dir, "the folder", hint);
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

// JSON has no NaN or infinity: a number that is not finite is written as null.
static void print_json_number(FILE* f, double x, int decimals) {
    if (isfinite(x)) fprintf(f, "%.*f", decimals, x);
    else fputs("null", f);
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
