// serve.c: `./train serve`, the model behind an HTTP/1.1 server written directly on POSIX sockets.
//
//   ./train serve --model run/model.bin --tokenizer ../shared/data/gpt2_bpe --port 8080
//   curl -s localhost:8080/v1/completions -d '{"prompt": "Hello", "max_tokens": 20, "temperature": 0}'
//
// Endpoints: POST /v1/completions (OpenAI-style; "stream": true sends server-sent events), POST /v1/classify,
// GET /health, GET /metrics (Prometheus text format). From the bottom up:
//   the HTTP parser   http_parse: a pure function over a byte buffer (fuzzed by dev/fuzz/fuzz_http.c)
//   the JSON writer   jw_*: strings escaped, invalid UTF-8 as U+FFFD, non-finite numbers as null
//   the requests      parse_completion / parse_classify: the JSON body to a checked request, or a 400 message
//   the model thread  run_completion / run_classify: tokenizer, KV-cache generation and the class head
//   the metrics       counters, a latency histogram per endpoint, the /metrics text
//   connections       serve_connection: read with a timeout, parse, answer, keep-alive and pipelining
//   cmd_serve         the listening socket, the accept loop, the bounded queue, graceful shutdown
//
// Threads. The main thread accepts connections into a bounded queue (--queue; when it is full the new
// connection gets 503 at once). --workers connection threads take connections from it and do the I/O and
// parsing. Everything that touches the model goes to ONE model thread, in arrival order (a FIFO of jobs):
// the model is compute-bound and each decode step's matrix-vector products already spread over every core
// with OpenMP, so two requests running side by side would share the same cores (no more tokens/s in total),
// each would need its own activations (gpt_forward keeps them in the GPT), and several OpenMP teams would
// spin against each other. One thread also keeps a single OpenMP team, and a FIFO keeps p99 latency fair.
// #included by train.c after cmd_classify (it uses class_names and classify_rows, which classify shares).
#pragma once
#include <arpa/inet.h>    // defines: inet_pton, inet_ntop, htons
#include <netinet/in.h>   // defines: sockaddr_in
#include <netinet/tcp.h>  // defines: TCP_NODELAY
#include <poll.h>         // defines: poll (read timeouts, the accept loop)
#include <pthread.h>      // defines: pthread_create, mutexes, condition variables
#include <signal.h>       // defines: sigaction (SIGINT/SIGTERM: graceful shutdown)
#include <sys/socket.h>   // defines: socket, bind, listen, accept, send, recv
#include <sys/time.h>     // defines: struct timeval (SO_SNDTIMEO)
#include <time.h>         // defines: time, gmtime_r (the access log's timestamps)
#include <unistd.h>       // defines: close, pipe, write
#include "infer.h"        // defines: gpt_prefill, gpt_decode_step, Sampler, sample_next
#include "setup.c"        // defines: Args, model_from_args
#include "tokenizer.c"    // defines: Tokenizer, tokenizer_encode, tok_bytes

// ---------------------------------------------------------------------------- HTTP/1.1 requests: the parser
// RFC 9112, the parts a JSON API needs: request line, header fields, a Content-Length body. Chunked request
// bodies (Transfer-Encoding) are refused with 501; every client used here (curl -d, http.client with a
// body) sends Content-Length.
#define HTTP_MAX_HEAD 8192  // request line and header fields together; longer: 431

typedef struct {
    char method[16];      // "GET", "POST", ...
    char path[256];       // the target up to '?' (a query string is ignored)
    int minor;            // HTTP/1.minor, 0 or 1
    int keep_alive;       // HTTP/1.1: yes unless "Connection: close"; HTTP/1.0: only with "Connection: keep-alive"
    int expect_continue;  // "Expect: 100-continue": the client waits for "100 Continue" before its body
    size_t head_len;      // bytes of the request line, the fields and the empty line; 0 until all are in
    size_t body_len;      // Content-Length (0 when absent)
} HttpRequest;

// lit (lower case) equals s[0..n) ignoring ASCII case
static int ascii_ieq(const char* s, size_t n, const char* lit) {
    if (strlen(lit) != n) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != lit[i]) return 0;
    }
    return 1;
}
// a character of an RFC 9110 token (header names)
static int http_tchar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

// Parses the request at the start of buf[0..n). Returns its whole length (head + body, > 0) once it is
// complete; 0 when more bytes are needed (r->head_len is already set when only the body is missing); or
// -status when no more bytes could make it valid: 400 malformed, 411 a POST without Content-Length, 413 a
// body over max_body, 414 a target over 255 bytes, 431 a head over HTTP_MAX_HEAD, 501 Transfer-Encoding,
// 505 an HTTP version other than 1.0 or 1.1. Pure: reads only buf[0..n), writes only *r.
// Lines end in CRLF; a bare LF is also accepted (RFC 9112 section 2.2 allows a recipient to).
static long http_parse(const char* buf, size_t n, size_t max_body, HttpRequest* r) {
    memset(r, 0, sizeof *r);
    size_t lim = n < HTTP_MAX_HEAD ? n : HTTP_MAX_HEAD, end = 0;  // end: just after the empty line
    for (size_t i = 1; i < lim && !end; i++)
        if (buf[i] == '\n' && (buf[i - 1] == '\n' || (i >= 2 && buf[i - 1] == '\r' && buf[i - 2] == '\n'))) end = i + 1;
    if (!end) return n >= HTTP_MAX_HEAD ? -431 : 0;
    // the request line: METHOD SP TARGET SP HTTP/1.x
    size_t p = 0, le = 0;
    while (buf[le] != '\n') le++;
    size_t line_end = le > 0 && buf[le - 1] == '\r' ? le - 1 : le;
    size_t m = 0;
    while (p < line_end && buf[p] >= 'A' && buf[p] <= 'Z' && m < sizeof r->method - 1) r->method[m++] = buf[p++];
    if (m == 0 || p >= line_end || buf[p] != ' ') return -400;
    p++;
    size_t t0 = p;
    while (p < line_end && (unsigned char)buf[p] > ' ' && (unsigned char)buf[p] < 0x7f) p++;
    size_t tlen = p - t0;
    if (tlen == 0 || p >= line_end || buf[p] != ' ') return -400;
    if (buf[t0] != '/' && !(tlen == 1 && buf[t0] == '*')) return -400;
    size_t plen = 0;  // the path: the target up to '?'
    while (plen < tlen && buf[t0 + plen] != '?') plen++;
    if (plen >= sizeof r->path) return -414;
    memcpy(r->path, buf + t0, plen);
    r->path[plen] = 0;
    p++;
    size_t vlen = line_end - p;
    if (vlen < 5 || memcmp(buf + p, "HTTP/", 5)) return -400;
    if (vlen == 8 && !memcmp(buf + p, "HTTP/1.", 7) && (buf[p + 7] == '0' || buf[p + 7] == '1')) r->minor = buf[p + 7] - '0';
    else return -505;
    r->keep_alive = r->minor == 1;
    // the header fields: NAME ":" OWS VALUE OWS
    int have_cl = 0, chunked = 0, conn_close = 0, conn_keep = 0;
    unsigned long long cl = 0;
    for (p = le + 1; p < end; p = le + 1) {
        le = p;
        while (buf[le] != '\n') le++;
        line_end = le > p && buf[le - 1] == '\r' ? le - 1 : le;
        if (line_end == p) break;  // the empty line
        size_t k = p;
        while (k < line_end && http_tchar((unsigned char)buf[k])) k++;
        if (k == p || k >= line_end || buf[k] != ':') return -400;  // also obs-fold (a line starting with a space)
        const char* name = buf + p;
        size_t nlen = k - p, v = k + 1, ve = line_end;
        while (v < ve && (buf[v] == ' ' || buf[v] == '\t')) v++;
        while (ve > v && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t')) ve--;
        for (size_t i = v; i < ve; i++)
            if (((unsigned char)buf[i] < 0x20 && buf[i] != '\t') || buf[i] == 0x7f) return -400;
        const char* val = buf + v;
        size_t vl = ve - v;
        if (ascii_ieq(name, nlen, "content-length")) {
            unsigned long long x = 0;
            if (vl == 0) return -400;
            for (size_t i = 0; i < vl; i++) {
                if (val[i] < '0' || val[i] > '9') return -400;
                if (x > 1000000000000ull) return -413;  // far over any limit: stop before it overflows
                x = x * 10 + (unsigned)(val[i] - '0');
            }
            if (have_cl && x != cl) return -400;  // two different lengths: request smuggling territory
            have_cl = 1, cl = x;
        } else if (ascii_ieq(name, nlen, "transfer-encoding")) {
            chunked = 1;
        } else if (ascii_ieq(name, nlen, "connection")) {
            for (size_t i = 0; i < vl;) {  // a comma list of options
                size_t j = i;
                while (j < vl && val[j] != ',') j++;
                size_t a = i, b = j;
                while (a < b && (val[a] == ' ' || val[a] == '\t')) a++;
                while (b > a && (val[b - 1] == ' ' || val[b - 1] == '\t')) b--;
                if (ascii_ieq(val + a, b - a, "close")) conn_close = 1;
                if (ascii_ieq(val + a, b - a, "keep-alive")) conn_keep = 1;
                i = j + 1;
            }
        } else if (ascii_ieq(name, nlen, "expect")) {
            if (ascii_ieq(val, vl, "100-continue")) r->expect_continue = 1;
        }
    }
    if (conn_keep) r->keep_alive = 1;
    if (conn_close) r->keep_alive = 0;
    if (chunked) return -501;
    if (!have_cl && (!strcmp(r->method, "POST") || !strcmp(r->method, "PUT"))) return -411;
    if (cl > max_body) return -413;
    r->head_len = end;
    r->body_len = (size_t)cl;
    return n - end >= cl ? (long)(end + cl) : 0;
}

static const char* http_reason(int status) {
    switch (status) {
        case 100: return "Continue";
        case 200: return "OK";
        case 400: return "Bad Request";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 411: return "Length Required";
        case 413: return "Content Too Large";
        case 414: return "URI Too Long";
        case 431: return "Request Header Fields Too Large";
        case 501: return "Not Implemented";
        case 503: return "Service Unavailable";
        case 505: return "HTTP Version Not Supported";
        default: return "Internal Server Error";
    }
}

// ---------------------------------------------------------------------------- JSON out
// Responses are built into a ByteVec. Text from the model may be any bytes: valid UTF-8 passes through,
// each invalid byte becomes U+FFFD, so the output is always valid JSON; numbers that are not finite are
// written as null (JSON has no NaN or Infinity).
static void jw_raw(ByteVec* o, const char* s) { bytevec_append(o, s, strlen(s)); }
static void jw_fmt(ByteVec* o, const char* fmt, ...) {
    char b[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    bytevec_append(o, b, n < 0 ? 0 : (size_t)n < sizeof b ? (size_t)n : sizeof b - 1);
}
static void jw_num(ByteVec* o, double x) {
    if (isfinite(x)) jw_fmt(o, "%.9g", x);  // 9 significant digits: a float survives the round trip
    else jw_raw(o, "null");
}
// The length (1-4) of the well-formed UTF-8 sequence at s[0..n), or 0 when it is not one (RFC 3629:
// no overlong forms, no surrogates, nothing past U+10FFFF).
static size_t utf8_valid_len(const unsigned char* s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!len || len > n) return 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return len;
}
static void jw_str(ByteVec* o, const void* data, size_t n) {
    const unsigned char* s = (const unsigned char*)data;
    bytevec_push(o, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            bytevec_push(o, '\\'), bytevec_push(o, c), i++;
        } else if (c < 0x20) {
            const char* e = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
            if (e) jw_raw(o, e);
            else jw_fmt(o, "\\u%04x", c);
            i++;
        } else {
            size_t len = utf8_valid_len(s + i, n - i);
            if (len) bytevec_append(o, s + i, len), i += len;
            else jw_raw(o, "\xEF\xBF\xBD"), i++;  // U+FFFD
        }
    }
    bytevec_push(o, '"');
}
static void jw_cstr(ByteVec* o, const char* s) { jw_str(o, s, strlen(s)); }

// The end of the longest prefix of s[0..n) that does not end inside a UTF-8 sequence still being completed
// (a streamed token may end in the middle of a character; its last bytes wait for the next token).
static size_t utf8_safe_end(const unsigned char* s, size_t n) {
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = s[n - back];
        if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back for its lead
        size_t need = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
        return need > back ? n - back : n;
    }
    return n;
}

// ---------------------------------------------------------------------------- requests: JSON body to a checked request
#define SERVE_MAX_STOP 4     // stop strings per request, as OpenAI allows
#define SERVE_MAX_STOP_LEN 64
#define SERVE_MAX_TEXTS 1024

typedef struct {
    ByteVec text;               // "prompt" as text (needs --tokenizer) ...
    IntVec ids;                 // ... or as token ids
    int has_text, has_ids, has_seed;
    int max_tokens, top_k, stream;
    float temperature, top_p;
    uint64_t seed;
    ByteVec stop[SERVE_MAX_STOP];
    int nstop;
} CompletionReq;

typedef struct {
    ByteVec* texts;             // "texts": the strings to classify
    int n;
} ClassifyReq;

static void completion_req_free(CompletionReq* q) {
    free(q->text.data), free(q->ids.data);
    for (int i = 0; i < SERVE_MAX_STOP; i++) free(q->stop[i].data);
    memset(q, 0, sizeof *q);
}
static void classify_req_free(ClassifyReq* q) {
    for (int i = 0; i < q->n; i++) free(q->texts[i].data);
    free(q->texts);
    memset(q, 0, sizeof *q);
}

// A JSON number that must be an integer in [lo, hi]; 0 on success, else a message in err.
static int jread_int(JsonScan* js, const char* field, double lo, double hi, double* out, char* err, size_t cap) {
    double x;
    if (jscan_peek(js) != 'n' || jscan_number(js, &x) || !isfinite(x) || x != floor(x) || x < lo || x > hi) {
        snprintf(err, cap, "\"%s\" must be an integer in [%.0f, %.0f]", field, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}
static int jread_float(JsonScan* js, const char* field, double lo, double hi, int lo_open, double* out, char* err, size_t cap) {
    double x;
    if (jscan_peek(js) != 'n' || jscan_number(js, &x) || !isfinite(x) || x < lo || (lo_open && x == lo) || x > hi) {
        snprintf(err, cap, "\"%s\" must be a number in %c%g, %g]", field, lo_open ? '(' : '[', lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

// Walks the members of the JSON object body[0..n), calling member(key, scanner, ctx) for each (which must
// read exactly one value); then requires the end of the text. Returns 0, or -1 with a message in err.
// common.h's scanner keeps its "expected 'x'" message in a static buffer, so callers hold serve's json lock.
typedef int (*JsonMember)(const ByteVec* key, JsonScan* js, void* ctx, char* err, size_t cap);
static int json_walk_object(const char* body, size_t n, JsonMember member, void* ctx, char* err, size_t cap) {
    JsonScan js = {(const unsigned char*)body, n, 0, 1, NULL};
    ByteVec key = {0};
    int rc = -1;
    err[0] = 0;
    if (jscan_peek(&js) != '{') {
        snprintf(err, cap, "the body must be a JSON object");
        goto done;
    }
    js.pos++;
    jscan_ws(&js);
    if (js.pos < js.n && js.s[js.pos] == '}') js.pos++;
    else
        for (;;) {
            if (jscan_string(&js, &key) || jscan_expect(&js, ':')) goto bad;
            if (jscan_peek(&js) == 'z') {  // null: the field's default
                if (jscan_literal(&js, "null")) goto bad;
            } else if (member(&key, &js, ctx, err, cap)) {
                if (!err[0]) goto bad;
                goto done;
            }
            jscan_ws(&js);
            if (js.pos < js.n && js.s[js.pos] == ',') { js.pos++; continue; }
            if (jscan_expect(&js, '}')) goto bad;
            break;
        }
    jscan_ws(&js);
    if (js.pos != js.n) {
        snprintf(err, cap, "malformed JSON at byte %zu: text after the object", js.pos);
        goto done;
    }
    rc = 0;
    goto done;
bad:
    snprintf(err, cap, "malformed JSON at byte %zu: %s", js.pos, js.err ? js.err : "unexpected value");
done:
    free(key.data);
    return rc;
}

#define KEY_IS(k, lit) ((k)->len == strlen(lit) && !memcmp((k)->data, lit, (k)->len))

static int completion_member(const ByteVec* key, JsonScan* js, void* ctx, char* err, size_t cap) {
    CompletionReq* q = (CompletionReq*)ctx;
    double x;
    int c = jscan_peek(js);
    if (KEY_IS(key, "prompt")) {
        if (c == '"') {
            q->has_text = 1, q->has_ids = 0;
            return jscan_string(js, &q->text);
        }
        if (c != '[') { snprintf(err, cap, "\"prompt\" must be a string or an array of token ids"); return -1; }
        q->has_ids = 1, q->has_text = 0, q->ids.len = 0;
        js->pos++;
        jscan_ws(js);
        if (js->pos < js->n && js->s[js->pos] == ']') { js->pos++; return 0; }
        for (;;) {
            if (jread_int(js, "prompt[]", 0, 2147483647.0, &x, err, cap)) return -1;
            intvec_push(&q->ids, (int)x);
            jscan_ws(js);
            if (js->pos < js->n && js->s[js->pos] == ',') { js->pos++; continue; }
            return jscan_expect(js, ']');
        }
    }
    if (KEY_IS(key, "max_tokens")) {
        if (jread_int(js, "max_tokens", 0, 1 << 20, &x, err, cap)) return -1;
        q->max_tokens = (int)x;
        return 0;
    }
    if (KEY_IS(key, "top_k")) {
        if (jread_int(js, "top_k", 0, 1 << 30, &x, err, cap)) return -1;
        q->top_k = (int)x;
        return 0;
    }
    if (KEY_IS(key, "seed")) {
        if (jread_int(js, "seed", 0, 9007199254740992.0, &x, err, cap)) return -1;  // 2^53: exact in a double
        q->seed = (uint64_t)x, q->has_seed = 1;
        return 0;
    }
    if (KEY_IS(key, "temperature")) {
        if (jread_float(js, "temperature", 0, 100, 0, &x, err, cap)) return -1;
        q->temperature = (float)x;
        return 0;
    }
    if (KEY_IS(key, "top_p")) {
        if (jread_float(js, "top_p", 0, 1, 1, &x, err, cap)) return -1;
        q->top_p = (float)x;
        return 0;
    }
    if (KEY_IS(key, "stream")) {
        if (c != 't' && c != 'f') { snprintf(err, cap, "\"stream\" must be true or false"); return -1; }
        q->stream = c == 't';
        return jscan_literal(js, c == 't' ? "true" : "false");
    }
    if (KEY_IS(key, "stop")) {  // a string or an array of up to 4
        int arr = c == '[';
        if (arr) js->pos++, jscan_ws(js);
        if (arr && js->pos < js->n && js->s[js->pos] == ']') { js->pos++; return 0; }
        for (;;) {
            if (jscan_peek(js) != '"' || q->nstop == SERVE_MAX_STOP) {
                snprintf(err, cap, "\"stop\" must be a string or an array of up to %d strings", SERVE_MAX_STOP);
                return -1;
            }
            ByteVec* s = &q->stop[q->nstop];
            if (jscan_string(js, s)) return -1;
            if (s->len == 0 || s->len > SERVE_MAX_STOP_LEN) {
                snprintf(err, cap, "each \"stop\" string must have 1 to %d bytes", SERVE_MAX_STOP_LEN);
                return -1;
            }
            q->nstop++;
            if (!arr) return 0;
            jscan_ws(js);
            if (js->pos < js->n && js->s[js->pos] == ',') { js->pos++; continue; }
            return jscan_expect(js, ']');
        }
    }
    return jscan_skip(js, 0);  // other fields ("model", "n", ...) are accepted and ignored
}

// The body of POST /v1/completions. Defaults come from the flags (--gen, --temperature, --top-k, --top-p;
// without "seed", the server's sampler seed). Returns 0, or -1 with the message for a 400 in err.
static int parse_completion(const char* body, size_t n, const Args* a, CompletionReq* q, char* err, size_t cap) {
    memset(q, 0, sizeof *q);
    q->max_tokens = a->gen_steps, q->temperature = a->temperature, q->top_k = a->top_k, q->top_p = a->top_p;
    if (json_walk_object(body, n, completion_member, q, err, cap)) return -1;
    if (!q->has_text && !q->has_ids) { snprintf(err, cap, "missing field \"prompt\" (a string, or an array of token ids)"); return -1; }
    return 0;
}

static int classify_member(const ByteVec* key, JsonScan* js, void* ctx, char* err, size_t cap) {
    ClassifyReq* q = (ClassifyReq*)ctx;
    if (!KEY_IS(key, "texts")) return jscan_skip(js, 0);
    if (jscan_peek(js) != '[' || q->texts) { snprintf(err, cap, "\"texts\" must be one array of strings"); return -1; }
    q->texts = (ByteVec*)callocCheck(SERVE_MAX_TEXTS, sizeof(ByteVec));
    js->pos++;
    jscan_ws(js);
    if (js->pos < js->n && js->s[js->pos] == ']') { js->pos++; return 0; }
    for (;;) {
        if (jscan_peek(js) != '"' || q->n == SERVE_MAX_TEXTS) {
            snprintf(err, cap, "\"texts\" must be an array of up to %d strings", SERVE_MAX_TEXTS);
            return -1;
        }
        if (jscan_string(js, &q->texts[q->n++])) return -1;
        jscan_ws(js);
        if (js->pos < js->n && js->s[js->pos] == ',') { js->pos++; continue; }
        return jscan_expect(js, ']');
    }
}

// The body of POST /v1/classify: {"texts": ["...", ...]}. Returns 0, or -1 with the message for a 400 in err.
static int parse_classify(const char* body, size_t n, ClassifyReq* q, char* err, size_t cap) {
    memset(q, 0, sizeof *q);
    if (json_walk_object(body, n, classify_member, q, err, cap)) return -1;
    if (!q->texts || q->n == 0) { snprintf(err, cap, "missing field \"texts\" (a non-empty array of strings)"); return -1; }
    return 0;
}

// ---------------------------------------------------------------------------- the server's state
enum { EP_HEALTH, EP_METRICS, EP_COMPLETIONS, EP_CLASSIFY, EP_OTHER, NUM_EP };
static const char* const EP_NAMES[NUM_EP] = {"/health", "/metrics", "/v1/completions", "/v1/classify", "other"};
static const double LAT_BUCKETS[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define NUM_LAT_BUCKETS ((int)(sizeof LAT_BUCKETS / sizeof LAT_BUCKETS[0]))

typedef struct Job Job;
struct Job {                // one request for the model thread
    int endpoint;           // EP_COMPLETIONS or EP_CLASSIFY
    CompletionReq cr;
    ClassifyReq kr;
    int fd;                 // the client: a streamed completion writes its events there itself
    int status;             // the answer: status, JSON body (unless streamed)
    ByteVec body;
    int streamed;           // the model thread sent the whole response (server-sent events)
    int prompt_tokens, tokens;  // for the log and the metrics
    int done;
    Job* next;
};

typedef struct {
    const Args* a;
    GPT model;
    Tokenizer tok;
    int has_tok, stop_token, K;
    uint64_t sample_seed;  // the sampler's seed when a request gives none: ./train sample's, for the same flags
    char (*names)[64];     // (K) class names
    char model_name[256];
    int listen_fd;
    double timeout;        // seconds
    size_t max_body;
    pthread_mutex_t mu;    // guards the two queues, the jobs' done flags and the metrics
    pthread_cond_t conn_cv, job_cv, done_cv;
    int* conns;            // accepted connections waiting for a worker: a ring of --queue
    int conn_head, conn_count;
    Job *job_head, *job_tail;
    int jobs_waiting, model_exit;
    pthread_mutex_t json_mu, log_mu;
    FILE* log;
    uint64_t next_id;
    // metrics (under mu)
    uint64_t requests[NUM_EP], errors[NUM_EP], lat_count[NUM_EP][NUM_LAT_BUCKETS + 1], rejected;
    double lat_sum[NUM_EP];
    uint64_t tokens_generated, prompt_tokens, texts_classified;
    double gen_seconds;
} Server;

// Set by the signal handler, read by every thread: through atomic loads and stores (a plain or volatile
// variable shared between threads is a data race, which ThreadSanitizer reports); lock-free, so also safe in
// a signal handler. GCC's __atomic builtins rather than C11's _Atomic, which C++ (train.cu) does not have.
// The wake pipe gets the accept loop out of poll().
static volatile sig_atomic_t serve_stop_flag = 0;
static int serve_wake_fd = -1;
static int serve_stopping(void) { return __atomic_load_n(&serve_stop_flag, __ATOMIC_SEQ_CST) != 0; }
static void serve_on_signal(int sig) {
    (void)sig;
    __atomic_store_n(&serve_stop_flag, 1, __ATOMIC_SEQ_CST);
    if (serve_wake_fd >= 0) {
        char c = 1;
        ssize_t w = write(serve_wake_fd, &c, 1);  // write is async-signal-safe
        (void)w;
    }
}

// ---------------------------------------------------------------------------- sockets: sending with a timeout
// Sends all of data; SO_SNDTIMEO (--timeout) bounds each wait. Returns 0, or -1 when the client is gone.
static int send_all(int fd, const void* data, size_t n) {
    const char* p = (const char*)data;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

// The status line and header fields. content_length < 0: the body runs until the connection closes (SSE).
static void http_head(ByteVec* out, int status, const char* content_type, long content_length, int keep_alive, const char* extra) {
    jw_fmt(out, "HTTP/1.1 %d %s\r\nServer: finetune.c\r\nContent-Type: %s\r\n", status, http_reason(status), content_type);
    if (content_length >= 0) jw_fmt(out, "Content-Length: %ld\r\n", content_length);
    jw_raw(out, keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
    if (extra) jw_raw(out, extra);
    jw_raw(out, "\r\n");
}
static void json_error_body(ByteVec* out, int status, const char* message) {
    out->len = 0;
    jw_raw(out, "{\"error\":{\"message\":");
    jw_cstr(out, message);
    jw_fmt(out, ",\"type\":\"%s\",\"code\":%d}}", status == 503 ? "server_busy" : status >= 500 ? "server_error" : "invalid_request_error", status);
}
// Sends a whole response. Returns 0, or -1 when the client is gone.
static int send_response(int fd, int status, const char* content_type, const ByteVec* body, int keep_alive, const char* extra) {
    ByteVec head = {0};
    http_head(&head, status, content_type, (long)body->len, keep_alive, extra);
    bytevec_append(&head, body->data, body->len);
    int rc = send_all(fd, head.data, head.len);
    free(head.data);
    return rc;
}

// ---------------------------------------------------------------------------- the model thread: completions
typedef struct {
    Server* s;
    Job* j;
    ByteVec text;     // the completion's text so far (cut at a stop string)
    IntVec toks;      // its token ids, the stop token included
    size_t sent;      // bytes of text already streamed
    size_t hold;      // the longest stop string - 1: bytes a stream holds back, as they may begin one
    const char* finish;
    int client_gone;
    char id[48];
    long created;
} GenState;

// One server-sent event: a text_completion chunk with the text bytes [from, to) and the given tokens.
static int stream_event(GenState* g, size_t from, size_t to, const int* toks, int ntok, const char* finish) {
    ByteVec e = {0};
    jw_raw(&e, "data: {\"id\":");
    jw_cstr(&e, g->id);
    jw_fmt(&e, ",\"object\":\"text_completion\",\"created\":%ld,\"model\":", g->created);
    jw_cstr(&e, g->s->model_name);
    jw_raw(&e, ",\"choices\":[{\"index\":0,\"text\":");
    jw_str(&e, g->text.data + from, to - from);
    jw_raw(&e, ",\"tokens\":[");
    for (int i = 0; i < ntok; i++) jw_fmt(&e, "%s%d", i ? "," : "", toks[i]);
    jw_raw(&e, "],\"logprobs\":null,\"finish_reason\":");
    if (finish) jw_cstr(&e, finish);
    else jw_raw(&e, "null");
    jw_raw(&e, "}]");
    if (finish) jw_fmt(&e, ",\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}",
                       g->j->prompt_tokens, (int)g->toks.len, g->j->prompt_tokens + (int)g->toks.len);
    jw_raw(&e, "}\n\n");
    int rc = g->client_gone ? -1 : send_all(g->j->fd, e.data, e.len);
    free(e.data);
    if (rc) g->client_gone = 1;
    return rc;
}

// Called after each generated token; returns 0 to stop generating (a stop string, or the client left).
static int on_token(void* ctx, int token) {
    GenState* g = (GenState*)ctx;
    Server* s = g->s;
    const CompletionReq* q = &g->j->cr;
    intvec_push(&g->toks, token);
    if (token == s->stop_token) {  // generation stops after it; its text (<|endoftext|>) is not shown
        g->finish = "stop";
        return 0;
    }
    size_t before = g->text.len;
    if (s->has_tok) {
        size_t m;
        const unsigned char* b = tok_bytes(&s->tok, token, &m);
        bytevec_append(&g->text, b, m);
    }
    for (int k = 0; k < q->nstop; k++) {  // a stop string ends the text (it is not included), as in OpenAI's API
        size_t m = q->stop[k].len, from = before + 1 > m ? before + 1 - m : 0;
        for (size_t i = from; i + m <= g->text.len; i++)
            if (!memcmp(g->text.data + i, q->stop[k].data, m)) {
                g->text.len = i;
                g->finish = "stop";
                return 0;
            }
    }
    if (q->stream) {
        size_t safe = g->text.len > g->hold ? g->text.len - g->hold : 0;
        safe = utf8_safe_end(g->text.data, safe);
        if (safe < g->sent) safe = g->sent;
        if (stream_event(g, g->sent, safe, &token, 1, NULL)) return 0;
        g->sent = safe;
    }
    return 1;
}

static void job_error(Job* j, int status, const char* fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    j->status = status;
    json_error_body(&j->body, status, msg);
}

static void run_completion(Server* s, Job* j) {
    const CompletionReq* q = &j->cr;
    GPT* model = &s->model;
    int V = model->config.V, maxT = model->config.maxT;
    if (model->config.num_classes) {
        job_error(j, 400, "this model has a %d-class head: use /v1/classify", model->config.num_classes);
        return;
    }
    if (q->has_text && !s->has_tok) {
        job_error(j, 400, "the server has no --tokenizer: give the prompt as an array of token ids");
        return;
    }
    if (q->nstop && !s->has_tok) {
        job_error(j, 400, "stop strings need the server's --tokenizer");
        return;
    }
    IntVec ids = {0};
    if (q->has_text) tokenizer_encode(&s->tok, q->text.data, q->text.len, 0, &ids);
    else
        for (size_t i = 0; i < q->ids.len; i++) intvec_push(&ids, q->ids.data[i]);
    for (size_t i = 0; i < ids.len; i++)
        if (ids.data[i] >= V) {
            job_error(j, 400, "prompt token %d is out of the model's vocabulary [0, %d)", ids.data[i], V);
            free(ids.data);
            return;
        }
    int n = (int)ids.len;
    j->prompt_tokens = n;
    if (n == 0 || n > maxT) {
        if (n == 0) job_error(j, 400, "the prompt is empty");
        else job_error(j, 400, "the prompt has %d tokens, more than the model's context of %d", n, maxT);
        free(ids.data);
        return;
    }
    GenState g = {0};
    g.s = s, g.j = j, g.finish = "length";
    for (int k = 0; k < q->nstop; k++)
        if (q->stop[k].len - 1 > g.hold) g.hold = q->stop[k].len - 1;
    snprintf(g.id, sizeof g.id, "cmpl-%llu", (unsigned long long)s->next_id++);
    g.created = (long)time(NULL);
    if (q->stream) {  // the head now, then one event per token; the body ends when the connection closes
        ByteVec head = {0};
        http_head(&head, 200, "text/event-stream", -1, 0, "Cache-Control: no-cache\r\n");
        if (send_all(j->fd, head.data, head.len)) g.client_gone = 1;
        free(head.data);
        j->streamed = 1;
    }
    Sampler sampler;
    sampler_init(&sampler, V, q->temperature, q->top_k, q->top_p, s->stop_token, q->has_seed ? q->seed : s->sample_seed);
    int* out = (int*)mallocCheck((size_t)(n + q->max_tokens) * sizeof(int));
    double t0 = now_seconds();
    if (!g.client_gone) generate_with(model, &sampler, ids.data, n, q->max_tokens, out, on_token, &g);  // on_token streams, checks stop strings
    double dt = now_seconds() - t0;
    j->tokens = (int)g.toks.len;
    j->status = 200;
    if (q->stream) {
        stream_event(&g, g.sent, g.text.len, NULL, 0, g.finish);
        if (!g.client_gone && send_all(j->fd, "data: [DONE]\n\n", 14)) g.client_gone = 1;
    } else {
        ByteVec* b = &j->body;
        b->len = 0;
        jw_raw(b, "{\"id\":");
        jw_cstr(b, g.id);
        jw_fmt(b, ",\"object\":\"text_completion\",\"created\":%ld,\"model\":", g.created);
        jw_cstr(b, s->model_name);
        jw_raw(b, ",\"choices\":[{\"index\":0,\"text\":");
        jw_str(b, g.text.data, g.text.len);
        jw_raw(b, ",\"tokens\":[");
        for (size_t i = 0; i < g.toks.len; i++) jw_fmt(b, "%s%d", i ? "," : "", g.toks.data[i]);
        jw_raw(b, "],\"logprobs\":null,\"finish_reason\":");
        jw_cstr(b, g.finish);
        jw_fmt(b, "}],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d},\"timing\":{\"seconds\":",
               n, j->tokens, n + j->tokens);
        jw_num(b, dt);
        jw_raw(b, ",\"tokens_per_s\":");
        jw_num(b, dt > 0 ? j->tokens / dt : NAN);  // NaN (no time measured) is written as null
        jw_raw(b, "}}");
    }
    pthread_mutex_lock(&s->mu);
    s->tokens_generated += (uint64_t)j->tokens;
    s->prompt_tokens += (uint64_t)n;
    s->gen_seconds += dt;
    pthread_mutex_unlock(&s->mu);
    free(out), free(ids.data), free(g.text.data), free(g.toks.data);
    sampler_free(&sampler);
}

// ---------------------------------------------------------------------------- the model thread: classification
// The texts of every classify request waiting together (nj jobs) run --batch at a time as padded batches
// (classify_rows), as `./train classify` runs its lines: one request's texts alone in the queue are batched
// exactly as classify would batch the same lines, and give the same probabilities bit for bit. Batching
// the requests that wait together turns 8 clients' single texts into a few batched forward passes (matrix
// products over several rows) instead of 8 passes over one row each. A text over maxT tokens keeps its first
// maxT, as classify and training do ("truncated": true says so).
#define SERVE_MAX_CLS_JOBS 64  // requests merged into one run at most

static void run_classify(Server* s, Job** jobs, int nj) {
    GPT* model = &s->model;
    int K = model->config.num_classes, maxT = model->config.maxT, V = model->config.V, B = s->a->B;
    int total = 0;
    for (int q = 0; q < nj; q++) total += jobs[q]->kr.n;
    int* rows = (int*)mallocCheck((size_t)total * maxT * sizeof(int));  // each text's ids, maxT apart
    int* len = (int*)mallocCheck((size_t)total * sizeof(int));
    int* full = (int*)mallocCheck((size_t)total * sizeof(int));         // its length before truncation
    int* first = (int*)mallocCheck((size_t)nj * sizeof(int));           // job q's texts: rows first[q] ..
    IntVec ids = {0};
    int nrows = 0;
    for (int q = 0; q < nj; q++) {  // every text of a job is checked before any work; a bad job gets its 400
        Job* j = jobs[q];
        const ClassifyReq* r = &j->kr;
        first[q] = -1;
        if (!K) { job_error(j, 400, "this model has the LM head: use /v1/completions"); continue; }
        if (!s->has_tok) { job_error(j, 400, "classification needs the server's --tokenizer"); continue; }
        int start = nrows, ntok = 0, bad = 0;
        for (int i = 0; i < r->n && !bad; i++) {
            ids.len = 0;
            tokenizer_encode(&s->tok, r->texts[i].data, r->texts[i].len, 0, &ids);
            int n = (int)ids.len < maxT ? (int)ids.len : maxT, oov = -1;
            for (int t = 0; t < n; t++) {
                if (ids.data[t] >= V) oov = ids.data[t];
                rows[(size_t)nrows * maxT + t] = ids.data[t];
            }
            if (n == 0) job_error(j, 400, "texts[%d] is empty", i), bad = 1;
            else if (oov >= 0) job_error(j, 400, "texts[%d]: token %d is out of the model's vocabulary [0, %d)", i, oov, V), bad = 1;
            full[nrows] = (int)ids.len, len[nrows] = n, ntok += n, nrows++;
        }
        if (bad) { nrows = start; continue; }
        first[q] = start;
        j->prompt_tokens = ntok;
    }
    float* probs = (float*)mallocCheck((size_t)(nrows ? nrows : 1) * K * sizeof(float));
    int* x = (int*)mallocCheck((size_t)B * maxT * sizeof(int));
    for (int b0 = 0; b0 < nrows; b0 += B) {
        int nb = nrows - b0 < B ? nrows - b0 : B, T = 1;
        for (int b = 0; b < nb; b++) T = len[b0 + b] > T ? len[b0 + b] : T;
        classify_rows(model, rows + (size_t)b0 * maxT, maxT, len + b0, nb, T, x);
        memcpy(probs + (size_t)b0 * K, model->acts.cls_probs, (size_t)nb * K * sizeof(float));
    }
    for (int q = 0; q < nj; q++) {
        if (first[q] < 0) continue;
        Job* j = jobs[q];
        ByteVec* o = &j->body;
        o->len = 0;
        jw_raw(o, "{\"object\":\"classification\",\"model\":");
        jw_cstr(o, s->model_name);
        jw_raw(o, ",\"labels\":[");
        for (int k = 0; k < K; k++) jw_raw(o, k ? "," : ""), jw_cstr(o, s->names[k]);
        jw_raw(o, "],\"results\":[");
        for (int i = 0; i < j->kr.n; i++) {
            int row = first[q] + i;
            const float* p = probs + (size_t)row * K;
            int best = 0;
            for (int k = 1; k < K; k++) if (p[k] > p[best]) best = k;
            jw_fmt(o, "%s{\"index\":%d,\"label\":", i ? "," : "", i);
            jw_cstr(o, s->names[best]);
            jw_fmt(o, ",\"label_id\":%d,\"probability\":", best);
            jw_num(o, p[best]);
            jw_raw(o, ",\"probabilities\":[");
            for (int k = 0; k < K; k++) jw_raw(o, k ? "," : ""), jw_num(o, p[k]);
            jw_fmt(o, "],\"tokens\":%d,\"truncated\":%s}", len[row], full[row] > maxT ? "true" : "false");
        }
        jw_fmt(o, "],\"usage\":{\"prompt_tokens\":%d}}", j->prompt_tokens);
        j->status = 200;
        pthread_mutex_lock(&s->mu);
        s->texts_classified += (uint64_t)j->kr.n;
        s->prompt_tokens += (uint64_t)j->prompt_tokens;
        pthread_mutex_unlock(&s->mu);
    }
    free(rows), free(len), free(full), free(first), free(ids.data), free(probs), free(x);
}

// Runs the jobs in arrival order until model_exit is set and the queue is empty. A classify job takes the
// classify jobs queued right behind it along (run_classify batches their texts together).
static void* model_thread(void* arg) {
    Server* s = (Server*)arg;
    Job* run[SERVE_MAX_CLS_JOBS];
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->job_head && !s->model_exit) pthread_cond_wait(&s->job_cv, &s->mu);
        if (!s->job_head) break;
        int n = 0;
        do {
            Job* j = s->job_head;
            s->job_head = j->next;
            if (!s->job_head) s->job_tail = NULL;
            s->jobs_waiting--;
            run[n++] = j;
        } while (run[0]->endpoint == EP_CLASSIFY && n < SERVE_MAX_CLS_JOBS && s->job_head && s->job_head->endpoint == EP_CLASSIFY);
        pthread_mutex_unlock(&s->mu);
        if (run[0]->endpoint == EP_COMPLETIONS) run_completion(s, run[0]);
        else run_classify(s, run, n);
        pthread_mutex_lock(&s->mu);
        for (int i = 0; i < n; i++) run[i]->done = 1;
        pthread_cond_broadcast(&s->done_cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

// Hands a job to the model thread and waits for it.
static void model_run(Server* s, Job* j) {
    pthread_mutex_lock(&s->mu);
    j->next = NULL;
    if (s->job_tail) s->job_tail->next = j;
    else s->job_head = j;
    s->job_tail = j;
    s->jobs_waiting++;
    pthread_cond_signal(&s->job_cv);
    while (!j->done) pthread_cond_wait(&s->done_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

// ---------------------------------------------------------------------------- metrics and the access log
static int endpoint_of(const char* path) {
    for (int e = 0; e < EP_OTHER; e++)
        if (!strcmp(path, EP_NAMES[e])) return e;
    return EP_OTHER;
}

static void metrics_record(Server* s, int ep, int status, double seconds) {
    pthread_mutex_lock(&s->mu);
    s->requests[ep]++;
    if (status >= 400) s->errors[ep]++;
    int b = 0;
    while (b < NUM_LAT_BUCKETS && seconds > LAT_BUCKETS[b]) b++;
    s->lat_count[ep][b]++;
    s->lat_sum[ep] += seconds;
    pthread_mutex_unlock(&s->mu);
}

// GET /metrics: Prometheus text exposition format 0.0.4 (# HELP, # TYPE, then samples; histogram buckets
// are cumulative and end in le="+Inf").
static void metrics_text(Server* s, ByteVec* o) {
    pthread_mutex_lock(&s->mu);
    jw_raw(o, "# HELP serve_requests_total Requests answered, by endpoint.\n# TYPE serve_requests_total counter\n");
    for (int e = 0; e < NUM_EP; e++) jw_fmt(o, "serve_requests_total{endpoint=\"%s\"} %llu\n", EP_NAMES[e], (unsigned long long)s->requests[e]);
    jw_raw(o, "# HELP serve_errors_total Requests answered with a 4xx or 5xx status, by endpoint.\n# TYPE serve_errors_total counter\n");
    for (int e = 0; e < NUM_EP; e++) jw_fmt(o, "serve_errors_total{endpoint=\"%s\"} %llu\n", EP_NAMES[e], (unsigned long long)s->errors[e]);
    jw_raw(o, "# HELP serve_rejected_total Connections refused with 503 because the queue was full.\n# TYPE serve_rejected_total counter\n");
    jw_fmt(o, "serve_rejected_total %llu\n", (unsigned long long)s->rejected);
    jw_raw(o, "# HELP serve_request_duration_seconds Time from a complete request to the end of its response.\n"
              "# TYPE serve_request_duration_seconds histogram\n");
    for (int e = 0; e < NUM_EP; e++) {
        uint64_t cum = 0;
        for (int b = 0; b <= NUM_LAT_BUCKETS; b++) {
            cum += s->lat_count[e][b];
            if (b < NUM_LAT_BUCKETS) jw_fmt(o, "serve_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n", EP_NAMES[e], LAT_BUCKETS[b], (unsigned long long)cum);
            else jw_fmt(o, "serve_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n", EP_NAMES[e], (unsigned long long)cum);
        }
        jw_fmt(o, "serve_request_duration_seconds_sum{endpoint=\"%s\"} %.6f\n", EP_NAMES[e], s->lat_sum[e]);
        jw_fmt(o, "serve_request_duration_seconds_count{endpoint=\"%s\"} %llu\n", EP_NAMES[e], (unsigned long long)cum);
    }
    jw_raw(o, "# HELP serve_tokens_generated_total Tokens generated by /v1/completions.\n# TYPE serve_tokens_generated_total counter\n");
    jw_fmt(o, "serve_tokens_generated_total %llu\n", (unsigned long long)s->tokens_generated);
    jw_raw(o, "# HELP serve_prompt_tokens_total Prompt and classified tokens read by the model.\n# TYPE serve_prompt_tokens_total counter\n");
    jw_fmt(o, "serve_prompt_tokens_total %llu\n", (unsigned long long)s->prompt_tokens);
    jw_raw(o, "# HELP serve_texts_classified_total Texts classified by /v1/classify.\n# TYPE serve_texts_classified_total counter\n");
    jw_fmt(o, "serve_texts_classified_total %llu\n", (unsigned long long)s->texts_classified);
    jw_raw(o, "# HELP serve_generation_seconds_total Time the model spent generating.\n# TYPE serve_generation_seconds_total counter\n");
    jw_fmt(o, "serve_generation_seconds_total %.6f\n", s->gen_seconds);
    jw_raw(o, "# HELP serve_tokens_per_second Generated tokens per second of generation time, since the start.\n# TYPE serve_tokens_per_second gauge\n");
    jw_fmt(o, "serve_tokens_per_second %.3f\n", s->gen_seconds > 0 ? s->tokens_generated / s->gen_seconds : 0.0);
    jw_raw(o, "# HELP serve_queue_depth Connections waiting for a worker plus requests waiting for the model.\n# TYPE serve_queue_depth gauge\n");
    jw_fmt(o, "serve_queue_depth %d\n", s->conn_count + s->jobs_waiting);
    pthread_mutex_unlock(&s->mu);
}

// One JSONL line per request: time (UTC, ms), method, endpoint (the path), status, latency, tokens.
static void access_log(Server* s, const char* method, const char* path, int status, double seconds, int prompt_tokens, int tokens) {
    if (!s->log) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    ByteVec o = {0};
    jw_fmt(&o, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"method\":", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    jw_cstr(&o, method);
    jw_raw(&o, ",\"endpoint\":");
    jw_cstr(&o, path);
    jw_fmt(&o, ",\"status\":%d,\"latency_ms\":%.3f,\"prompt_tokens\":%d,\"tokens\":%d}\n", status, seconds * 1e3, prompt_tokens, tokens);
    pthread_mutex_lock(&s->log_mu);
    fwrite(o.data, 1, o.len, s->log);
    fflush(s->log);
    pthread_mutex_unlock(&s->log_mu);
    free(o.data);
}

// ---------------------------------------------------------------------------- one request, one connection
// Answers one parsed request. keep_alive: whether the connection stays open after it. Returns 0 when the
// connection may go on, -1 when it must close (streamed, or the client is gone).
static int handle_request(Server* s, int fd, const char* buf, const HttpRequest* r, int keep_alive) {
    double t0 = now_seconds();
    int ep = endpoint_of(r->path), status = 200, prompt_tokens = 0, tokens = 0, rc = 0;
    const char* ctype = "application/json";
    const char* extra = NULL;
    ByteVec body = {0};
    int is_get = !strcmp(r->method, "GET"), is_post = !strcmp(r->method, "POST");
    if (ep == EP_OTHER) {
        status = 404;
        json_error_body(&body, 404, "no such endpoint: try POST /v1/completions, POST /v1/classify, GET /health, GET /metrics");
    } else if ((ep == EP_HEALTH || ep == EP_METRICS) ? !is_get : !is_post) {
        status = 405;
        extra = ep == EP_HEALTH || ep == EP_METRICS ? "Allow: GET\r\n" : "Allow: POST\r\n";
        json_error_body(&body, 405, ep == EP_HEALTH || ep == EP_METRICS ? "use GET" : "use POST");
    } else if (ep == EP_HEALTH) {
        pthread_mutex_lock(&s->mu);
        int depth = s->conn_count + s->jobs_waiting;
        pthread_mutex_unlock(&s->mu);
        jw_raw(&body, "{\"status\":\"ok\",\"model\":");
        jw_cstr(&body, s->model_name);
        jw_fmt(&body, ",\"task\":\"%s\",\"vocab\":%d,\"context\":%d,\"queue_depth\":%d}", s->K ? "classify" : "completions",
               s->model.config.V, s->model.config.maxT, depth);
    } else if (ep == EP_METRICS) {
        ctype = "text/plain; version=0.0.4";
        metrics_text(s, &body);
    } else {
        Job j;
        memset(&j, 0, sizeof j);
        j.endpoint = ep, j.fd = fd;
        char err[512];
        const char* b = buf + r->head_len;
        pthread_mutex_lock(&s->json_mu);
        int bad = ep == EP_COMPLETIONS ? parse_completion(b, r->body_len, s->a, &j.cr, err, sizeof err)
                                       : parse_classify(b, r->body_len, &j.kr, err, sizeof err);
        pthread_mutex_unlock(&s->json_mu);
        if (bad) {
            status = 400;
            json_error_body(&body, 400, err);
        } else {
            model_run(s, &j);
            status = j.status, prompt_tokens = j.prompt_tokens, tokens = j.tokens;
            body = j.body;  // the job's body is now ours to free
            if (j.streamed) rc = -1;  // the model thread sent it all; the connection closes
        }
        completion_req_free(&j.cr);
        classify_req_free(&j.kr);
    }
    if (rc == 0 && send_response(fd, status, ctype, &body, keep_alive, extra)) rc = -1;
    if (rc == 0 && !keep_alive) rc = -1;
    double dt = now_seconds() - t0;
    metrics_record(s, ep, status, dt);
    access_log(s, r->method, r->path, status, dt, prompt_tokens, tokens);
    free(body.data);
    return rc;
}

// Closes after an error reply without losing it: a close() with unread bytes in the socket makes TCP send a
// reset, which can destroy the reply before the client reads it; so shut the sending side, and read what
// the client still sends (for up to `seconds`) first.
static void lingering_close(int fd, double seconds) {
    shutdown(fd, SHUT_WR);
    char junk[4096];
    double t_end = now_seconds() + seconds;
    for (;;) {
        struct pollfd pf = {fd, POLLIN, 0};
        int ms = (int)((t_end - now_seconds()) * 1e3);
        if (ms <= 0 || poll(&pf, 1, ms) <= 0) break;
        if (recv(fd, junk, sizeof junk, 0) <= 0) break;
    }
    close(fd);
}

static void reply_error(Server* s, int fd, const char* method, const char* path, int status, const char* msg) {
    ByteVec body = {0};
    json_error_body(&body, status, msg);
    send_response(fd, status, "application/json", &body, 0, NULL);
    free(body.data);
    metrics_record(s, endpoint_of(path), status, 0.0);
    access_log(s, method, path, status, 0.0, 0, 0);
}

// Serves the requests of one connection: keep-alive and pipelined requests, in order, until the client
// closes, a read times out (408 when a request was half sent), an error ends it, or the server stops.
// When other connections wait in the queue the connection closes after its current answer, so that a few
// idle keep-alive clients cannot hold every worker.
static void serve_connection(Server* s, int fd) {
    size_t cap = HTTP_MAX_HEAD + s->max_body, len = 0;
    char* buf = (char*)mallocCheck(cap);
    int served = 0, sent_continue = 0;
    double deadline = now_seconds() + s->timeout;
    for (;;) {
        HttpRequest r;
        long rc = http_parse(buf, len, s->max_body, &r);
        if (rc < 0) {
            int status = (int)-rc;
            const char* msg = status == 411 ? "a POST needs a Content-Length" : status == 413 ? "the body is over --max-body"
                            : status == 431 ? "the request head is over 8192 bytes" : status == 501 ? "Transfer-Encoding (chunked bodies) is not supported: send Content-Length"
                            : status == 505 ? "only HTTP/1.0 and HTTP/1.1" : status == 414 ? "the path is over 255 bytes" : "malformed HTTP request";
            reply_error(s, fd, r.method[0] ? r.method : "-", r.path[0] ? r.path : "-", status, msg);
            free(buf);
            lingering_close(fd, 1.0);
            return;
        }
        if (rc > 0) {
            pthread_mutex_lock(&s->mu);
            int others_wait = s->conn_count > 0;
            pthread_mutex_unlock(&s->mu);
            int keep = r.keep_alive && !serve_stopping() && !others_wait;
            if (handle_request(s, fd, buf, &r, keep)) break;
            memmove(buf, buf + rc, len - (size_t)rc);
            len -= (size_t)rc;
            served++, sent_continue = 0;
            deadline = now_seconds() + s->timeout;
            continue;
        }
        if (r.head_len && r.expect_continue && !sent_continue) {  // the head is in; the client waits to send its body
            if (send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25)) break;
            sent_continue = 1;
        }
        // wait for more bytes: in slices, so that a stopping server closes idle connections promptly
        double now = now_seconds();
        if (serve_stopping() && len == 0) {  // stopping: an idle connection closes; a new one gets half a second
            if (served > 0) break;
            if (deadline > now + 0.5) deadline = now + 0.5;
        }
        double left = deadline - now;
        if (left <= 0) {
            if (len > 0) {
                reply_error(s, fd, r.method[0] ? r.method : "-", r.path[0] ? r.path : "-", 408, "the request did not arrive within --timeout");
                free(buf);
                lingering_close(fd, 1.0);
                return;
            }
            break;  // an idle connection: close it quietly
        }
        struct pollfd pf = {fd, POLLIN, 0};
        int ms = left < 0.1 ? (int)(left * 1e3) + 1 : 100;
        int pr = poll(&pf, 1, ms);
        if (pr < 0 && errno != EINTR) break;
        if (pr <= 0) continue;
        ssize_t got = recv(fd, buf + len, cap - len, 0);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (got <= 0) break;  // closed by the client (a half-sent request is lost with it: nothing to answer)
        len += (size_t)got;
    }
    free(buf);
    close(fd);
}

static void* worker_thread(void* arg) {
    Server* s = (Server*)arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->conn_count && !serve_stopping()) pthread_cond_wait(&s->conn_cv, &s->mu);
        if (!s->conn_count) {  // stopping, and every accepted connection has been taken
            pthread_mutex_unlock(&s->mu);
            return NULL;
        }
        int fd = s->conns[s->conn_head];
        s->conn_head = (s->conn_head + 1) % s->a->queue;
        s->conn_count--;
        pthread_mutex_unlock(&s->mu);
        serve_connection(s, fd);
    }
}

// ---------------------------------------------------------------------------- ./train serve
static int cmd_serve(const Args* a) {
    if (a->port < 0 || a->port > 65535) failf("a TCP port is 0..65535 (0: any free port)", "--port %d", a->port);
    if (a->workers < 1 || a->workers > 1024) failf(NULL, "--workers %d must be in 1..1024", a->workers);
    if (a->queue < 1) failf(NULL, "--queue %d must be at least 1", a->queue);
    if (a->max_body < 1) failf(NULL, "--max-body %d must be at least 1", a->max_body);
    if (!(a->timeout > 0)) failf(NULL, "--timeout %g must be positive", a->timeout);
    if (a->B < 1) failf(NULL, "--batch %d must be at least 1", a->B);
    Server* s = (Server*)callocCheck(1, sizeof(Server));
    s->a = a;
    s->timeout = a->timeout;
    s->max_body = (size_t)a->max_body;
    uint64_t rng = a->seed ? a->seed : 1;
    model_from_args(&s->model, a, NULL, &rng);
    s->sample_seed = rng;  // as cmd_sample seeds its sampler: what --init drew is behind it
    if (s->model.num_tasks)
        failf("serve one task: ./train extract --model FILE --task-head NAME --out task.bin, then serve task.bin",
              "a multi-task model (%d tasks) cannot be served as it is", s->model.num_tasks);
    if (s->model.config.num_tags)
        failf("tag text with ./train eval (entity scores) or keep a token model out of serve for now",
              "serve has no endpoint for a token-classification head (%d tags)", s->model.config.num_tags);
    s->K = s->model.config.num_classes;
    if (!s->K) refuse_encoder_generation(&s->model, "serving an LM head (/v1/completions)");
    if (a->tokenizer) tokenizer_load_or_die(&s->tok, a->tokenizer), s->has_tok = 1;
    if (s->K && !s->has_tok) failf("give the tokenizer the model was trained with", "serving a classifier needs --tokenizer");
    if (s->K) s->names = class_names(&s->model, a->labels, s->K);
    s->stop_token = flag_given(a, "--stop") ? a->stop_token : s->has_tok ? s->tok.eot_id : -1;  // as sample
    snprintf(s->model_name, sizeof s->model_name, "%s", a->model ? a->model : a->init ? a->init : "model");
    s->log = !strcmp(a->access_log, "-") ? stderr : open_stream_output(a->access_log, 1);
    // the listening socket
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)a->port);
    const char* host = strcmp(a->host, "localhost") ? a->host : "127.0.0.1";
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) failf("give a numeric IPv4 address (or localhost), e.g. 127.0.0.1 or 0.0.0.0", "--host '%s'", a->host);
    s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    if (s->listen_fd < 0) failf(NULL, "socket: %s", strerror(errno));
    setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s->listen_fd, (struct sockaddr*)&addr, sizeof addr) || listen(s->listen_fd, 128))
        failf("is another server on that port? --port 0 picks a free one", "cannot listen on %s:%d: %s", a->host, a->port, strerror(errno));
    socklen_t alen = sizeof addr;
    getsockname(s->listen_fd, (struct sockaddr*)&addr, &alen);
    int port = ntohs(addr.sin_port);
    // signals: SIGINT/SIGTERM stop the server gracefully; a client that hangs up must not kill it (SIGPIPE)
    int wake[2];
    if (pipe(wake)) failf(NULL, "pipe: %s", strerror(errno));
    __atomic_store_n(&serve_stop_flag, 0, __ATOMIC_SEQ_CST);
    serve_wake_fd = wake[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = serve_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    // the threads
    pthread_mutex_init(&s->mu, NULL), pthread_mutex_init(&s->json_mu, NULL), pthread_mutex_init(&s->log_mu, NULL);
    pthread_cond_init(&s->conn_cv, NULL), pthread_cond_init(&s->job_cv, NULL), pthread_cond_init(&s->done_cv, NULL);
    s->conns = (int*)mallocCheck((size_t)a->queue * sizeof(int));
    pthread_t model_tid, *workers = (pthread_t*)mallocCheck((size_t)a->workers * sizeof(pthread_t));
    if (pthread_create(&model_tid, NULL, model_thread, s)) failf(NULL, "cannot start the model thread");
    for (int i = 0; i < a->workers; i++)
        if (pthread_create(&workers[i], NULL, worker_thread, s)) failf("try fewer --workers", "cannot start worker %d", i);
    printf("serve: listening on http://%s:%d (model %s, %s, context %d; %d workers, queue %d)\n", host, port, s->model_name,
           s->K ? "classify" : "completions", s->model.config.maxT, a->workers, a->queue);
    fflush(stdout);
    // the accept loop: a connection joins the queue, or gets 503 when the queue is full
    struct timeval tv = {(time_t)a->timeout, (suseconds_t)((a->timeout - (time_t)a->timeout) * 1e6)};
    uint64_t accepted = 0;
    while (!serve_stopping()) {
        struct pollfd pf[2] = {{s->listen_fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
        if (poll(pf, 2, -1) < 0) continue;  // EINTR: a signal; the loop condition decides
        if (!(pf[0].revents & POLLIN)) continue;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0) continue;
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // small responses and SSE events go out at once
        accepted++;
        pthread_mutex_lock(&s->mu);
        int full = s->conn_count == a->queue;
        if (!full) {
            s->conns[(s->conn_head + s->conn_count) % a->queue] = fd;
            s->conn_count++;
            pthread_cond_signal(&s->conn_cv);
        } else {
            s->rejected++;
        }
        pthread_mutex_unlock(&s->mu);
        if (full) {  // answered here, without reading the request: the queue bound is what protects the server
            reply_error(s, fd, "-", "-", 503, "the server's queue is full; retry later");
            lingering_close(fd, 0.05);  // short: this thread must get back to accepting
        }
    }
    // graceful shutdown: no new connections; the accepted ones get their requests answered
    fprintf(stderr, "serve: stopping (signal); finishing the requests in progress\n");
    close(s->listen_fd);
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->conn_cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < a->workers; i++) pthread_join(workers[i], NULL);
    pthread_mutex_lock(&s->mu);
    s->model_exit = 1;
    pthread_cond_signal(&s->job_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(model_tid, NULL);
    uint64_t answered = 0;
    for (int e = 0; e < NUM_EP; e++) answered += s->requests[e];
    fprintf(stderr, "serve: stopped cleanly: %llu connections, %llu requests answered, %llu rejected (503), %llu tokens generated\n",
            (unsigned long long)accepted, (unsigned long long)answered, (unsigned long long)s->rejected, (unsigned long long)s->tokens_generated);
    serve_wake_fd = -1;
    close(wake[0]), close(wake[1]);
    if (s->log != stderr) fclose(s->log);
    free(workers), free(s->conns), free(s->names);
    if (s->has_tok) tokenizer_free(&s->tok);
    gpt_free(&s->model);
    free(s);
    return 0;
}
