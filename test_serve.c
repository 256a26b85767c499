// test_serve.c: tests of `./train serve` (serve.c). First the pure parts: the HTTP parser on hand-made
// requests (good, split at every byte, pipelined, oversize, bad Content-Length, chunked, malformed), the
// crash inputs kept in dev/fuzz/regress/http/, a short seeded mutation fuzz, the JSON writer and the
// request readers. Then real servers (`./train serve --port 0` on 127.0.0.1, tiny models made with
// --init, or written here) talked to over sockets: greedy completions (plain, streamed, stop strings)
// against `./train sample`, classify against `./train classify`, /health, /metrics, every 4xx, pipelining,
// split requests, 100-continue, 503 when the queue is full, 408, concurrent clients, the access log and a
// graceful SIGTERM. One line per check; exit 1 on any failure.
#define TESTING
#include "train.c"
#include <dirent.h>  // defines: opendir, readdir (the regress inputs)
#include "test_report.h"

// ---------------------------------------------------------------------------- the parser
static long parse_str(const char* s, size_t max_body, HttpRequest* r) { return http_parse(s, strlen(s), max_body, r); }

static void test_parser(void) {
    printf("-- the HTTP parser (http_parse, a pure function over a buffer)\n");
    HttpRequest r;
    const char* get = "GET /health?x=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t\r\n\r\n";
    long n = parse_str(get, 100, &r);
    report(n == (long)strlen(get) && !strcmp(r.method, "GET") && !strcmp(r.path, "/health") && r.minor == 1 && r.keep_alive && r.body_len == 0,
           "GET: whole length %ld, method %s, path %s (query dropped), HTTP/1.%d, keep-alive %d", n, r.method, r.path, r.minor, r.keep_alive);
    const char* post = "POST /v1/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"prompt\":\"\"}";
    size_t plen = strlen(post);
    n = parse_str(post, 100, &r);
    report(n == (long)plen && r.body_len == 13 && r.head_len == plen - 13 && !memcmp(post + r.head_len, "{\"prompt\"", 9),
           "POST: length %ld = head %zu + body %zu", n, r.head_len, r.body_len);
    int split_ok = 1;  // every proper prefix is incomplete (0), never an error and never complete
    for (size_t k = 0; k < plen; k++)
        if (http_parse(post, k, 100, &r) != 0) split_ok = 0;
    report(split_ok, "split across reads: all %zu proper prefixes of the POST ask for more bytes", plen);
    n = http_parse(post, plen - 5, 100, &r);
    report(n == 0 && r.head_len == plen - 13, "a complete head with half a body: 0, head_len %zu known (for 100-continue)", r.head_len);
    char two[512];
    snprintf(two, sizeof two, "%s%s", post, get);
    long n1 = parse_str(two, 100, &r), n2 = parse_str(two + (n1 > 0 ? n1 : 0), 100, &r);
    report(n1 == (long)plen && n2 == (long)strlen(get) && !strcmp(r.path, "/health"), "pipelined POST then GET: %ld then %ld bytes", n1, n2);
    struct { const char* req; long want; const char* what; } cases[] = {
        {"POST /v1/completions HTTP/1.1\r\nContent-Length: 101\r\n\r\n", -413, "body over the limit (101 > 100)"},
        {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", -413, "Content-Length that would overflow"},
        {"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", -400, "Content-Length: abc"},
        {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", -400, "Content-Length: -1"},
        {"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n", -400, "empty Content-Length"},
        {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", -400, "two different Content-Lengths"},
        {"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab", 59, "the same Content-Length twice"},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", -501, "chunked body"},
        {"POST / HTTP/1.1\r\nHost: a\r\n\r\n", -411, "POST without Content-Length"},
        {"GET / HTTP/2.0\r\n\r\n", -505, "HTTP/2.0"},
        {"GET / HTTP/1.10\r\n\r\n", -505, "HTTP/1.10"},
        {"GET /\r\n\r\n", -400, "no version (HTTP/0.9)"},
        {"get / HTTP/1.1\r\n\r\n", -400, "lower-case method"},
        {"GET  / HTTP/1.1\r\n\r\n", -400, "two spaces"},
        {"GET health HTTP/1.1\r\n\r\n", -400, "target without /"},
        {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", -400, "space before the colon"},
        {"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", -400, "obs-fold continuation line"},
        {"GET / HTTP/1.1\r\nX: a\x01" "b\r\n\r\n", -400, "control byte in a value"},
        {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", -400, "field without a colon"},
        {"\r\nGET / HTTP/1.1\r\n\r\n", -400, "empty line before the request line"},
        {"GET / HTTP/1.1\nHost: a\n\n", 24, "bare LF line ends"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        n = parse_str(cases[i].req, 100, &r);
        report(n == cases[i].want, "%s: %ld (want %ld)", cases[i].what, n, cases[i].want);
    }
    char big[HTTP_MAX_HEAD + 64];
    snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX: ");
    memset(big + strlen(big), 'a', sizeof big - strlen(big) - 1);
    big[sizeof big - 1] = 0;
    report(parse_str(big, 100, &r) == -431, "a head over %d bytes without its end: 431", HTTP_MAX_HEAD);
    report(http_parse(big, 100, 100, &r) == 0, "the same, only 100 bytes in: waits for more");
    char path[400] = "GET /";
    memset(path + 5, 'p', 300);
    snprintf(path + 305, sizeof path - 305, " HTTP/1.1\r\n\r\n");
    report(parse_str(path, 100, &r) == -414, "a 301-byte path: 414");
    parse_str("GET / HTTP/1.1\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", 100, &r);
    int ka1 = r.keep_alive;
    parse_str("GET / HTTP/1.0\r\n\r\n", 100, &r);
    int ka2 = r.keep_alive;
    parse_str("GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n", 100, &r);
    int ka3 = r.keep_alive;
    report(!ka1 && !ka2 && ka3, "keep-alive: 1.1 + close -> %d, 1.0 -> %d, 1.0 + keep-alive -> %d", ka1, ka2, ka3);
    parse_str("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n", 100, &r);
    report(r.expect_continue && r.head_len > 0, "Expect: 100-continue noticed");
}

// A parse result must be 0, a full length within the buffer, or one of the documented statuses.
static int parse_result_ok(long rc, size_t n) {
    return rc == 0 || (rc > 0 && (size_t)rc <= n) || rc == -400 || rc == -411 || rc == -413 || rc == -414 || rc == -431 ||
           rc == -501 || rc == -505;
}

// The fuzzer's crash inputs (dev/fuzz/regress/http/), each parsed whole and at every prefix.
static void test_regress(void) {
    printf("-- the fuzzer's kept inputs and a seeded mutation fuzz\n");
    DIR* d = opendir("dev/fuzz/regress/http");
    int files = 0, ok = 1;
    struct dirent* e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[600];
        snprintf(p, sizeof p, "dev/fuzz/regress/http/%s", e->d_name);
        FILE* f = fopen(p, "rb");
        if (!f) continue;
        char* buf = (char*)mallocCheck(1 << 16);
        size_t n = fread(buf, 1, 1 << 16, f);
        fclose(f);
        HttpRequest r;
        for (size_t k = 0; k <= n; k++)
            if (!parse_result_ok(http_parse(buf, k, 1 << 20, &r), k)) ok = 0, printf("   bad result on %s at %zu bytes\n", p, k);
        free(buf);
        files++;
    }
    if (d) closedir(d);
    report(d && files > 0 && ok, "%d kept inputs in dev/fuzz/regress/http parse to valid results at every prefix", files);
    // mutations of good requests: random byte flips, insertions of CR/LF/:/space/digits, truncations
    const char* seeds[] = {"POST /v1/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n{\"a\":1234}",
                           "GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"};
    uint64_t rng = 12345;
    char buf[512];
    int bad = 0;
    for (int it = 0; it < 200000; it++) {
        const char* s = seeds[it & 1];
        size_t n = strlen(s);
        memcpy(buf, s, n);
        int muts = 1 + (int)(random_u32(&rng) % 4);
        for (int m = 0; m < muts; m++) {
            size_t pos = random_u32(&rng) % n;
            const char pool[] = "\r\n: 0123456789\t\x00\x7f\xff-";
            switch (random_u32(&rng) % 3) {
                case 0: buf[pos] = (char)random_u32(&rng); break;
                case 1: if (n < sizeof buf - 1) { memmove(buf + pos + 1, buf + pos, n - pos); buf[pos] = pool[random_u32(&rng) % (sizeof pool - 1)]; n++; } break;
                default: n = pos + 1; break;
            }
        }
        HttpRequest r;
        if (!parse_result_ok(http_parse(buf, n, 64, &r), n)) bad++;
    }
    report(bad == 0, "200000 mutated requests: every result is 0, a length within the buffer or a listed status (%d bad)", bad);
}

// ---------------------------------------------------------------------------- JSON out and requests in
static void test_json(void) {
    printf("-- the JSON writer and the request readers\n");
    ByteVec o = {0};
    jw_str(&o, "a\"b\\c\n\x01\xC3\xA9\xC3\x28\xED\xA0\x80z", 15);
    const char* want = "\"a\\\"b\\\\c\\n\\u0001\xC3\xA9\xEF\xBF\xBD(\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz\"";
    report(!strcmp((char*)o.data, want), "jw_str: quotes, backslash, control bytes escaped; valid UTF-8 kept; a broken pair and a surrogate become U+FFFD: %s", o.data);
    o.len = 0;
    jw_num(&o, NAN), jw_raw(&o, ","), jw_num(&o, INFINITY), jw_raw(&o, ","), jw_num(&o, -INFINITY), jw_raw(&o, ","), jw_num(&o, 0.25);
    report(!strcmp((char*)o.data, "null,null,null,0.25"), "jw_num: NaN and +-Inf are written as null: %s", o.data);
    free(o.data);
    const unsigned char u[] = {'a', 0xE2, 0x82, 0xAC, 0xE2, 0x82};
    report(utf8_safe_end(u, 6) == 4 && utf8_safe_end(u, 4) == 4 && utf8_safe_end(u, 5) == 4 && utf8_safe_end(u, 1) == 1,
           "utf8_safe_end holds back a character still being completed");
    Args a = parse_args(1, (char*[]){"train", NULL});
    struct { const char* body; int ok; const char* need; } cases[] = {
        {"{\"prompt\": \"hi\", \"max_tokens\": 5, \"temperature\": 0, \"top_p\": 0.5, \"stop\": [\"a\", \"b\"], \"stream\": true, \"model\": \"x\"}", 1, NULL},
        {"{\"prompt\": [1, 2, 3], \"stop\": \"\\n\", \"seed\": 9}", 1, NULL},
        {"{\"prompt\": \"hi\", \"temperature\": null}", 1, NULL},
        {"{\"max_tokens\": 5}", 0, "missing field \"prompt\""},
        {"{\"prompt\": 5}", 0, "\"prompt\" must be"},
        {"{\"prompt\": [1, -2]}", 0, "prompt[]"},
        {"{\"prompt\": [1.5]}", 0, "prompt[]"},
        {"{\"prompt\": \"hi\", \"max_tokens\": \"5\"}", 0, "max_tokens"},
        {"{\"prompt\": \"hi\", \"max_tokens\": 1e999}", 0, "max_tokens"},
        {"{\"prompt\": \"hi\", \"temperature\": -1}", 0, "temperature"},
        {"{\"prompt\": \"hi\", \"top_p\": 0}", 0, "top_p"},
        {"{\"prompt\": \"hi\", \"stream\": 1}", 0, "stream"},
        {"{\"prompt\": \"hi\", \"stop\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}", 0, "stop"},
        {"{\"prompt\": \"hi\", \"stop\": \"\"}", 0, "stop"},
        {"{\"prompt\": \"hi\"} x", 0, "text after the object"},
        {"{\"prompt\": \"hi\",}", 0, "malformed JSON"},
        {"{\"prompt\": \"hi", 0, "malformed JSON"},
        {"[\"prompt\"]", 0, "JSON object"},
        {"", 0, "JSON object"},
        {"{\"prompt\": \"\\ud800\\u0041\", \"x\": [[[[{}]]]]}", 1, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CompletionReq q;
        char err[512] = "";
        int rc = parse_completion(cases[i].body, strlen(cases[i].body), &a, &q, err, sizeof err);
        int ok = cases[i].ok ? rc == 0 : rc != 0 && strstr(err, cases[i].need) != NULL;
        report(ok, "completion body %s -> %s", cases[i].body, rc ? err : "ok");
        completion_req_free(&q);
    }
    CompletionReq q;
    char err[512];
    parse_completion(cases[0].body, strlen(cases[0].body), &a, &q, err, sizeof err);
    report(q.has_text && !strcmp((char*)q.text.data, "hi") && q.max_tokens == 5 && q.temperature == 0.0f && q.top_p == 0.5f && q.nstop == 2 && q.stream,
           "the fields are read: prompt, max_tokens, temperature, top_p, stop, stream");
    completion_req_free(&q);
    parse_completion("{\"prompt\":[7]}", 14, &a, &q, err, sizeof err);
    report(q.has_ids && q.ids.len == 1 && q.max_tokens == a.gen_steps && q.temperature == a.temperature,
           "defaults come from the flags: max_tokens = --gen %d, temperature = --temperature %g", a.gen_steps, a.temperature);
    completion_req_free(&q);
    ClassifyReq k;
    const char* kb = "{\"texts\": [\"a\", \"b c\"]}";
    int rc = parse_classify(kb, strlen(kb), &k, err, sizeof err);
    report(rc == 0 && k.n == 2 && !strcmp((char*)k.texts[1].data, "b c"), "classify body: 2 texts read");
    classify_req_free(&k);
    rc = parse_classify("{\"texts\": [1]}", 14, &k, err, sizeof err);
    report(rc != 0 && strstr(err, "texts"), "classify body with a number in texts: %s", err);
    classify_req_free(&k);
    rc = parse_classify("{\"texts\": []}", 13, &k, err, sizeof err);
    report(rc != 0 && strstr(err, "texts"), "classify body with no texts: %s", err);
    classify_req_free(&k);
}

// ---------------------------------------------------------------------------- a client and server processes
static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
typedef struct {
    pid_t pid;
    int port;
    char err_path[128];
} ServerProc;

// Starts ./train serve with these flags and --port 0; reads the port from its first line of stdout.
static int server_start(ServerProc* sp, const char* flags, const char* name) {
    char cmd[2048];
    snprintf(sp->err_path, sizeof sp->err_path, "test_tmp/serve_%s.err", name);
    // one OpenMP thread: the tiny models here are all overhead at 2 threads on a busy machine, and the
    // answers must not depend on the thread count anyway (./train sample and classify run with the default)
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 exec ./train serve --port 0 %s", flags);
    int pfd[2];
    if (pipe(pfd)) return -1;
    fflush(stdout);
    sp->pid = fork();
    if (sp->pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        if (!freopen(sp->err_path, "w", stderr)) _exit(127);
        execl("/bin/sh", "sh", "-c", cmd, (char*)NULL);  // "exec": ./train replaces sh, so SIGTERM reaches it
        _exit(127);
    }
    close(pfd[1]);
    FILE* f = fdopen(pfd[0], "r");
    char line[512] = "";
    sp->port = 0;
    if (fgets(line, sizeof line, f)) {
        const char* c = strstr(line, "127.0.0.1:");
        if (c) sp->port = atoi(c + 10);
    }
    fclose(f);
    return sp->port > 0 ? 0 : -1;
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    struct timeval tv = {20, 0};  // no test may hang: every read gives up after 20 s
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr*)&addr, sizeof addr)) {
        close(fd);
        return -1;
    }
    return fd;
}
// Reads until the server closes the connection; returns the bytes read (0-terminated in *out).
static size_t read_all(int fd, ByteVec* out) {
    out->len = 0;
    bytevec_append(out, "", 0);
    char b[4096];
    ssize_t n;
    while ((n = recv(fd, b, sizeof b, 0)) > 0) bytevec_append(out, b, (size_t)n);
    return out->len;
}
// Sends raw bytes on a new connection and reads the whole answer (requests say Connection: close).
static int http_raw(int port, const void* req, size_t n, ByteVec* resp) {
    int fd = connect_to(port);
    if (fd < 0) return -1;
    send_all(fd, req, n);
    read_all(fd, resp);
    close(fd);
    int status = 0;
    if (resp->len > 12) sscanf((char*)resp->data, "HTTP/1.1 %d", &status);
    return status;
}
static int http_req(int port, const char* method, const char* path, const char* body, ByteVec* resp) {
    ByteVec req = {0};
    jw_fmt(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n", method, path);
    if (body) jw_fmt(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n", strlen(body));
    jw_raw(&req, "\r\n");
    if (body) jw_raw(&req, body);
    int status = http_raw(port, req.data, req.len, resp);
    free(req.data);
    return status;
}
static const char* body_of(const ByteVec* resp) {
    const char* b = strstr((const char*)resp->data, "\r\n\r\n");
    return b ? b + 4 : "";
}
// The ints of the first "key":[...] array after s; returns how many (at most cap).
static int json_ints(const char* s, const char* key, int* out, int cap) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\":[", key);
    const char* p = strstr(s, k);
    if (!p) return -1;
    p += strlen(k);
    int n = 0;
    while (*p && *p != ']') {
        char* e;
        long v = strtol(p, &e, 10);
        if (e == p) return -1;
        if (n < cap) out[n] = (int)v;
        n++;
        p = *e == ',' ? e + 1 : e;
    }
    return n;
}
// The raw (still escaped) contents of the first "key":"..." string after s, appended to out.
static int json_raw_string(const char* s, const char* key, ByteVec* out) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\":\"", key);
    const char* p = strstr(s, k);
    if (!p) return -1;
    p += strlen(k);
    const char* q = p;
    while (*q && *q != '"') q += *q == '\\' ? 2 : 1;
    bytevec_append(out, p, (size_t)(q - p));
    return 0;
}
// Runs a command, returns its stdout (and its exit status in *rc).
static size_t run_capture(const char* cmd, ByteVec* out, int* rc) {
    out->len = 0;
    bytevec_append(out, "", 0);
    FILE* p = popen(cmd, "r");
    char b[4096];
    size_t n;
    while ((n = fread(b, 1, sizeof b, p)) > 0) bytevec_append(out, b, n);
    *rc = pclose(p);
    return out->len;
}
// SIGTERM, then the exit status (-1 if it did not stop within 30 s) and how long it took.
static int server_stop(ServerProc* sp, double* seconds) {
    double t0 = now_seconds();
    kill(sp->pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 3000; i++) {
        if (waitpid(sp->pid, &status, WNOHANG) == sp->pid) {
            if (seconds) *seconds = now_seconds() - t0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        sleep_ms(10);
    }
    kill(sp->pid, SIGKILL);
    waitpid(sp->pid, &status, 0);
    return -1;
}
static int file_contains(const char* path, const char* needle) {
    FILE* f = fopen(path, "r");
    if (!f) return 0;
    char line[2048];
    int found = 0;
    while (fgets(line, sizeof line, f)) if (strstr(line, needle)) found = 1;
    fclose(f);
    return found;
}

// ---------------------------------------------------------------------------- completions against ./train sample
#define LM_INIT "--init 2,2,32 --vocab 256 --max-seq 24 --seed 7"  // maxT 24: a 30-token completion slides the window

static void test_completions(void) {
    printf("-- completions: greedy answers against ./train sample, streaming, stop strings, 4xx, /health, /metrics\n");
    ServerProc sp;
    unlink("test_tmp/serve_access.jsonl");  // the server appends: start each run clean
    if (server_start(&sp, LM_INIT " --tokenizer bytes --workers 3 --queue 8 --max-body 4096 --timeout 5 --access-log test_tmp/serve_access.jsonl", "lm")) {
        report(0, "./train serve started and printed its port");
        return;
    }
    report(1, "./train serve started on 127.0.0.1:%d (--port 0)", sp.port);
    int requests = 0, tokens_total = 0;
    ByteVec resp = {0}, out = {0}, s1 = {0}, s2 = {0};
    // ./train sample, greedy, the same weights (--init with the same --seed), prompt "Hello" as ids
    int rc;
    run_capture("./train sample " LM_INIT " --tokens \"72 101 108 108 111\" --gen 30 --temperature 0 2>/dev/null", &out, &rc);
    int want[64], nw = 0;
    for (char* p = (char*)out.data; *p && nw < 64;) {
        char* e;
        long v = strtol(p, &e, 10);
        if (e == p) break;
        want[nw++] = (int)v;
        p = e;
    }
    report(rc == 0 && nw == 35, "./train sample printed the prompt and 30 greedy ids (%d ids)", nw);
    int got[64];
    int st = http_req(sp.port, "POST", "/v1/completions", "{\"prompt\": [72, 101, 108, 108, 111], \"max_tokens\": 30, \"temperature\": 0}", &resp);
    requests++;
    int ng = json_ints(body_of(&resp), "tokens", got, 64);
    tokens_total += ng > 0 ? ng : 0;
    report(st == 200 && ng == 30 && nw == 35 && !memcmp(got, want + 5, 30 * sizeof(int)) && strstr(body_of(&resp), "\"finish_reason\":\"length\""),
           "prompt as ids: the 30 greedy tokens equal ./train sample's, finish_reason length (status %d, %d tokens)", st, ng);
    // sampled (temperature 1) without a seed: the server's sampler starts where ./train sample's does, so the
    // 30 tokens are sample's too; sampling turns any change in the logits (e.g. of the window sliding) into
    // other tokens, which greedy decoding of a random model may not
    run_capture("./train sample " LM_INIT " --tokens \"72 101 108 108 111\" --gen 30 --temperature 1 2>/dev/null", &out, &rc);
    int wants[64], nws = 0;
    for (char* p = (char*)out.data; *p && nws < 64;) {
        char* e;
        long v = strtol(p, &e, 10);
        if (e == p) break;
        wants[nws++] = (int)v;
        p = e;
    }
    st = http_req(sp.port, "POST", "/v1/completions", "{\"prompt\": [72, 101, 108, 108, 111], \"max_tokens\": 30, \"temperature\": 1}", &resp);
    requests++;
    ng = json_ints(body_of(&resp), "tokens", got, 64);
    tokens_total += ng > 0 ? ng : 0;
    report(st == 200 && ng == 30 && nws == 35 && !memcmp(got, wants + 5, 30 * sizeof(int)),
           "sampled at temperature 1, past maxT: the 30 tokens of ./train sample --temperature 1 (the same seed)");
    // from here on sampled at temperature 1 (default seed), since a random model's greedy text is one byte repeated
    st = http_req(sp.port, "POST", "/v1/completions", "{\"prompt\": \"Hello\", \"max_tokens\": 30, \"temperature\": 1}", &resp);
    requests++;
    ng = json_ints(body_of(&resp), "tokens", got, 64);
    tokens_total += ng > 0 ? ng : 0;
    report(st == 200 && ng == 30 && !memcmp(got, wants + 5, 30 * sizeof(int)), "prompt as text (byte tokenizer): the same 30 sampled tokens");
    // the text: ./train sample --prompt prints the decoded ids; the server's "text" is the same bytes, JSON-escaped
    run_capture("./train sample " LM_INIT " --tokenizer bytes --prompt Hello --gen 30 --temperature 1 2>/dev/null", &out, &rc);
    ByteVec esc = {0};
    if (out.len >= 6) jw_str(&esc, out.data + 5, out.len - 6);  // without "Hello" and the final newline
    s1.len = 0;
    json_raw_string(body_of(&resp), "text", &s1);
    report(rc == 0 && esc.len >= 2 && s1.len == esc.len - 2 && !memcmp(s1.data, esc.data + 1, s1.len),
           "its text equals ./train sample --prompt's output, JSON-escaped (%zu bytes)", s1.len);
    // streamed: the tokens of all events, in order, are the same; so is the text
    st = http_req(sp.port, "POST", "/v1/completions", "{\"prompt\": \"Hello\", \"max_tokens\": 30, \"temperature\": 1, \"stream\": true}", &resp);
    requests++;
    int stoks[64], ns = 0, events = 0, done = 0;
    s2.len = 0;
    for (const char* p = body_of(&resp); (p = strstr(p, "data: ")); p += 6) {
        if (!strncmp(p, "data: [DONE]", 12)) { done = 1; break; }
        events++;
        int t[64], k = json_ints(p, "tokens", t, 64);
        for (int i = 0; i < k && ns < 64; i++) stoks[ns++] = t[i];
        json_raw_string(p, "text", &s2);
    }
    tokens_total += ns;
    report(st == 200 && strstr((char*)resp.data, "text/event-stream") && done && events == 31 && ns == 30 && !memcmp(stoks, wants + 5, 30 * sizeof(int)) &&
           s2.len == s1.len && !memcmp(s2.data, s1.data, s1.len),
           "stream: %d events (30 tokens + the finish) then [DONE]; the same tokens and text", events);
    // a stop string: two bytes from the middle of the greedy text; the answer is the text before them
    if (out.len > 20) {
        ByteVec body = {0}, expect = {0};
        const unsigned char* g = out.data + 5;  // the completion's bytes
        size_t cut = 0;  // the first ASCII byte after the first that occurs nowhere before it: the text must stop
        for (size_t j = 1; j + 1 < out.len - 5 && !cut; j++)  // there (ASCII: JSON carries any other byte as U+FFFD)
            if (g[j] < 0x80 && !memchr(g, g[j], j)) cut = j;
        jw_raw(&body, "{\"prompt\": \"Hello\", \"max_tokens\": 30, \"temperature\": 1, \"stop\": [\"zzzz\", ");
        jw_str(&body, g + cut, 1);
        jw_raw(&body, "]}");
        jw_str(&expect, g, cut);
        st = http_req(sp.port, "POST", "/v1/completions", (char*)body.data, &resp);
        requests++;
        s1.len = 0;
        json_raw_string(body_of(&resp), "text", &s1);
        ng = json_ints(body_of(&resp), "tokens", got, 64);
        tokens_total += ng > 0 ? ng : 0;
        report(st == 200 && cut > 0 && s1.len == expect.len - 2 && !memcmp(s1.data, expect.data + 1, s1.len) && strstr(body_of(&resp), "\"finish_reason\":\"stop\""),
               "stop string: the text ends before it (%zu bytes), finish_reason stop", cut);
        free(body.data), free(expect.data);
    }
    // sampling is seeded: the same seed twice gives the same tokens
    const char* sampled = "{\"prompt\": \"Hi\", \"max_tokens\": 20, \"temperature\": 1.0, \"top_p\": 0.9, \"seed\": 5}";
    st = http_req(sp.port, "POST", "/v1/completions", sampled, &resp);
    int a1[32], a2[32], na1 = json_ints(body_of(&resp), "tokens", a1, 32);
    int st2 = http_req(sp.port, "POST", "/v1/completions", sampled, &resp);
    int na2 = json_ints(body_of(&resp), "tokens", a2, 32);
    requests += 2, tokens_total += (na1 > 0 ? na1 : 0) + (na2 > 0 ? na2 : 0);
    report(st == 200 && st2 == 200 && na1 == 20 && na1 == na2 && !memcmp(a1, a2, 20 * sizeof(int)), "sampling with a seed is repeatable");
    // /health
    st = http_req(sp.port, "GET", "/health", NULL, &resp);
    requests++;
    report(st == 200 && strstr(body_of(&resp), "\"status\":\"ok\"") && strstr(body_of(&resp), "\"context\":24"), "/health: %s", body_of(&resp));
    // bad requests: each a 4xx with a JSON error, and the server lives on
    char big[5000];
    memset(big, ' ', sizeof big);
    memcpy(big, "{\"prompt\":\"a\"", 13);
    big[sizeof big - 2] = '}', big[sizeof big - 1] = 0;
    char long_prompt[256] = "{\"prompt\": [1";
    for (int i = 1; i < 25; i++) strcat(long_prompt, ",1");
    strcat(long_prompt, "]}");
    struct { const char* method; const char* path; const char* body; int want; const char* need; } bad[] = {
        {"POST", "/v1/completions", "{\"prompt\": \"Hello\", ", 400, "malformed JSON"},
        {"POST", "/v1/completions", "{\"max_tokens\": 3}", 400, "missing field"},
        {"POST", "/v1/completions", "{\"prompt\": \"a\", \"temperature\": \"hot\"}", 400, "temperature"},
        {"POST", "/v1/completions", long_prompt, 400, "more than the model's context of 24"},
        {"POST", "/v1/completions", "{\"prompt\": [300]}", 400, "out of the model's vocabulary"},
        {"POST", "/v1/completions", "{\"prompt\": \"\"}", 400, "empty"},
        {"POST", "/v1/completions", big, 413, "--max-body"},
        {"POST", "/v1/classify", "{\"texts\": [\"a\"]}", 400, "LM head"},
        {"GET", "/v1/completions", NULL, 405, "use POST"},
        {"POST", "/health", "{}", 405, "use GET"},
        {"GET", "/nowhere", NULL, 404, "no such endpoint"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st = http_req(sp.port, bad[i].method, bad[i].path, bad[i].body, &resp);
        requests++;
        report(st == bad[i].want && strstr(body_of(&resp), "{\"error\":{\"message\":") && strstr(body_of(&resp), bad[i].need),
               "%s %s (%s%.40s): %d %s", bad[i].method, bad[i].path, bad[i].body ? "body " : "", bad[i].body ? bad[i].body : "", st, body_of(&resp));
    }
    struct { const char* raw; int want; } rawbad[] = {
        {"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501},
        {"POST /v1/completions HTTP/1.1\r\nHost: a\r\n\r\n", 411},
        {"HELLO\r\n\r\n", 400},
        {"GET / HTTP/3.0\r\n\r\n", 505},
    };
    for (size_t i = 0; i < sizeof rawbad / sizeof rawbad[0]; i++) {
        st = http_raw(sp.port, rawbad[i].raw, strlen(rawbad[i].raw), &resp);
        requests++;
        report(st == rawbad[i].want && strstr(body_of(&resp), "{\"error\":"), "raw %.30s...: %d", rawbad[i].raw, st);
    }
    // pipelining: three requests in one write on one keep-alive connection, three answers in order
    const char* pipe3 = "GET /health HTTP/1.1\r\nHost: a\r\n\r\n"
                        "POST /v1/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 46\r\n\r\n{\"prompt\":[72],\"max_tokens\":2,\"temperature\":0}"
                        "GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    st = http_raw(sp.port, pipe3, strlen(pipe3), &resp);
    requests += 3, tokens_total += 2;
    int n200 = 0;
    for (const char* p = (char*)resp.data; (p = strstr(p, "HTTP/1.1 200 OK")); p++) n200++;
    const char* c1 = strstr((char*)resp.data, "text_completion");
    report(n200 == 3 && c1 && strstr(c1, "\"status\":\"ok\""), "pipelined: 3 requests in one write, 3 answers in order (%d x 200)", n200);
    // one request split over three writes, 50 ms apart; and Expect: 100-continue
    {
        const char* parts[] = {"POST /v1/comp", "letions HTTP/1.1\r\nContent-Length: 46\r\nConnection: close\r\n\r\n{\"prompt\":",
                               "[72],\"max_tokens\":2,\"temperature\":0}"};
        int fd = connect_to(sp.port);
        for (int i = 0; i < 3; i++) send_all(fd, parts[i], strlen(parts[i])), sleep_ms(50);
        read_all(fd, &resp);
        close(fd);
        requests++, tokens_total += 2;
        report(strstr((char*)resp.data, "HTTP/1.1 200") && strstr((char*)resp.data, "text_completion"), "a request split over 3 writes: 200");
        fd = connect_to(sp.port);
        const char* head = "POST /v1/completions HTTP/1.1\r\nContent-Length: 46\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n";
        send_all(fd, head, strlen(head));
        char b[64] = "";
        ssize_t k = recv(fd, b, sizeof b - 1, 0);
        b[k > 0 ? k : 0] = 0;
        send_all(fd, "{\"prompt\":[72],\"max_tokens\":2,\"temperature\":0}", 46);
        read_all(fd, &resp);
        close(fd);
        requests++, tokens_total += 2;
        report(!strncmp(b, "HTTP/1.1 100 Continue\r\n\r\n", 25) && strstr((char*)resp.data, "HTTP/1.1 200"),
               "Expect: 100-continue: 100 first, then the body, then 200");
    }
    // concurrent clients: 4 processes x 8 greedy completions each; every answer is the greedy one
    {
        pid_t kids[4];
        for (int c = 0; c < 4; c++) {
            fflush(stdout);
            if ((kids[c] = fork()) == 0) {
                ByteVec r = {0};
                int okc = 1;
                for (int i = 0; i < 8; i++) {
                    int t[64];
                    int s_ = http_req(sp.port, "POST", "/v1/completions", "{\"prompt\": [72, 101, 108, 108, 111], \"max_tokens\": 30, \"temperature\": 0}", &r);
                    if (s_ != 200 || json_ints(body_of(&r), "tokens", t, 64) != 30 || memcmp(t, want + 5, 30 * sizeof(int))) okc = 0;
                }
                _exit(okc ? 0 : 1);
            }
        }
        int all = 1;
        for (int c = 0; c < 4; c++) {
            int status;
            waitpid(kids[c], &status, 0);
            if (!WIFEXITED(status) || WEXITSTATUS(status)) all = 0;
        }
        requests += 32, tokens_total += 32 * 30;
        report(all, "4 concurrent clients x 8 requests: all 32 answered 200 with the greedy tokens");
    }
    // /metrics: the format, and the counts of what this test sent
    st = http_req(sp.port, "GET", "/metrics", NULL, &resp);
    const char* m = body_of(&resp);
    int lines_ok = 1, nlines = 0;
    unsigned long long total = 0, gen = 0, last_bucket = 0, inf = 0, count = 0;
    int monotone = 1;
    for (const char* p = m; *p;) {
        const char* e = strchr(p, '\n');
        if (!e) { lines_ok = 0; break; }
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(e - p), p);
        p = e + 1;
        nlines++;
        if (line[0] == '#') {
            if (strncmp(line, "# HELP serve_", 13) && strncmp(line, "# TYPE serve_", 13)) lines_ok = 0;
            continue;
        }
        char name[256];  // NAME or NAME{labels}, a space, a number
        double v;
        if (sscanf(line, "%255s %lf", name, &v) != 2 || strncmp(name, "serve_", 6)) lines_ok = 0;
        unsigned long long u = (unsigned long long)v;
        if (!strncmp(name, "serve_requests_total{", 21)) total += u;
        if (!strcmp(name, "serve_tokens_generated_total")) gen = u;
        if (strstr(name, "_bucket{endpoint=\"/v1/completions\"")) {
            if (u < last_bucket) monotone = 0;
            last_bucket = u;
            if (strstr(name, "+Inf")) inf = u;
        }
        if (!strcmp(name, "serve_request_duration_seconds_count{endpoint=\"/v1/completions\"}")) count = u;
    }
    report(st == 200 && strstr((char*)resp.data, "Content-Type: text/plain; version=0.0.4") && lines_ok && nlines > 40,
           "/metrics: %d lines, each # HELP/# TYPE or 'serve_name{labels} value'", nlines);
    report(total == (unsigned long long)requests && gen == (unsigned long long)tokens_total && monotone && inf == count && count > 0,
           "/metrics counts: %llu requests (sent %d), %llu tokens generated (received %d), completions histogram cumulative, +Inf = count = %llu",
           total, requests, gen, tokens_total, count);
    // SIGTERM while a long generation is running: it finishes, then the server exits 0
    int fd = connect_to(sp.port);
    const char* longreq = "POST /v1/completions HTTP/1.1\r\nContent-Length: 48\r\nConnection: close\r\n\r\n{\"prompt\":[72],\"max_tokens\":400,\"temperature\":0}";
    send_all(fd, longreq, strlen(longreq));
    int idle = connect_to(sp.port);  // and an idle keep-alive connection, which must not hold the shutdown
    const char* h = "GET /health HTTP/1.1\r\nHost: a\r\n\r\n";
    send_all(idle, h, strlen(h));
    char hb[512];
    ssize_t hk = recv(idle, hb, sizeof hb - 1, 0);
    sleep_ms(100);
    double secs = 0;
    int code = server_stop(&sp, &secs);
    read_all(fd, &resp);
    close(fd), close(idle);
    ng = json_ints(body_of(&resp), "tokens", got, 0);
    report(hk > 0 && strstr((char*)resp.data, "HTTP/1.1 200") && ng == 400 && code == 0 && file_contains(sp.err_path, "stopped cleanly"),
           "SIGTERM during a 400-token request: it is answered in full (%d tokens), exit %d after %.2f s, \"stopped cleanly\"", ng, code, secs);
    // the access log: one JSON line per request answered, with its fields
    FILE* f = fopen("test_tmp/serve_access.jsonl", "r");
    int nlog = 0, fields = 1;
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        nlog++;
        if (line[0] != '{' || !strstr(line, "\"time\":\"20") || !strstr(line, "\"endpoint\":\"") || !strstr(line, "\"status\":") ||
            !strstr(line, "\"latency_ms\":") || !strstr(line, "\"tokens\":"))
            fields = 0;
    }
    if (f) fclose(f);
    report(nlog == requests + 3 && fields, "access log: %d JSONL lines (time, endpoint, status, latency_ms, tokens) for %d requests", nlog, requests + 3);
    free(resp.data), free(out.data), free(s1.data), free(s2.data), free(esc.data);
}

// ---------------------------------------------------------------------------- the queue bound and timeouts
static void test_queue(void) {
    printf("-- the queue bound (503) and the read timeout (408): 1 worker, queue 1\n");
    ServerProc sp;
    if (server_start(&sp, LM_INIT " --workers 1 --queue 1 --timeout 1 --access-log -", "queue")) {
        report(0, "./train serve --workers 1 --queue 1 started");
        return;
    }
    ByteVec resp = {0};
    int a = connect_to(sp.port);  // the worker takes A and waits for the rest of its request
    send_all(a, "GET /health HTTP/1.1\r\n", 22);
    sleep_ms(300);
    int b = connect_to(sp.port);  // B waits in the queue (1 place)
    sleep_ms(300);
    int c = connect_to(sp.port);  // C finds the queue full
    send_all(c, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n", 33);
    read_all(c, &resp);
    close(c);
    report(strstr((char*)resp.data, "HTTP/1.1 503") && strstr(body_of(&resp), "queue is full"), "a third connection while one is served and one waits: 503 %s", body_of(&resp));
    send_all(a, "Host: a\r\n\r\n", 11);  // A completes: answered, and closed since B waits
    read_all(a, &resp);
    close(a);
    report(strstr((char*)resp.data, "HTTP/1.1 200") && strstr((char*)resp.data, "Connection: close"), "the served connection is answered (and closed, since another waits)");
    send_all(b, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n", 33);
    read_all(b, &resp);
    close(b);
    report(strstr((char*)resp.data, "HTTP/1.1 200") != NULL, "the queued connection is then answered: not dropped");
    int d = connect_to(sp.port);  // half a request, then silence: 408 after --timeout 1
    send_all(d, "POST /v1/completions HTTP/1.1\r\nContent-Length: 10\r\n\r\n{\"pro", 57);
    double t0 = now_seconds();
    read_all(d, &resp);
    close(d);
    double dt = now_seconds() - t0;
    report(strstr((char*)resp.data, "HTTP/1.1 408") && dt > 0.8 && dt < 3.0, "half a request, then nothing: 408 after %.2f s (--timeout 1)", dt);
    ByteVec m = {0};
    http_req(sp.port, "GET", "/metrics", NULL, &m);
    report(strstr(body_of(&m), "serve_rejected_total 1\n") != NULL, "/metrics counts the rejected connection");
    free(m.data);
    double secs;
    int code = server_stop(&sp, &secs);
    report(code == 0, "SIGTERM: exit %d after %.2f s", code, secs);
    free(resp.data);
}

// ---------------------------------------------------------------------------- classification against ./train classify
static void test_classify(void) {
    printf("-- classify: labels and probabilities against ./train classify\n");
    GPTConfig c = {.maxT = 16, .V = 257, .Vp = 320, .L = 2, .NH = 2, .C = 32, .num_classes = 3};  // the byte tokenizer's vocabulary
    uint64_t rng = 42;
    GPT m;
    gpt_build(&m, c);
    gpt_init_random(&m, &rng);
    for (size_t i = 0; i < param_numel(&c, PIDX(cls_w)); i++) m.params.cls_w[i] = 0.5f * (random_f32(&rng) - 0.5f);  // a head that does something
    save_checkpoint(&m, "test_tmp/serve_cls.bin", NULL);
    gpt_free(&m);
    const char* texts[] = {"good film", "terrible, really bad", "it was fine I guess", "a", "this line is longer than sixteen bytes, so it is truncated"};
    int nt = 5;
    FILE* f = fopen("test_tmp/serve_lines.txt", "w");
    for (int i = 0; i < nt; i++) fprintf(f, "%s\n", texts[i]);
    fclose(f);
    ByteVec out = {0}, resp = {0};
    int rc;
    run_capture("./train classify --model test_tmp/serve_cls.bin --tokenizer bytes --labels neg,neu,pos --batch 3 --input test_tmp/serve_lines.txt 2>/dev/null", &out, &rc);
    ServerProc sp;
    if (server_start(&sp, "--model test_tmp/serve_cls.bin --tokenizer bytes --labels neg,neu,pos --batch 3 --access-log /dev/null", "cls")) {
        report(0, "./train serve with a classifier started");
        return;
    }
    ByteVec body = {0};
    jw_raw(&body, "{\"texts\": [");
    for (int i = 0; i < nt; i++) jw_raw(&body, i ? ", " : ""), jw_cstr(&body, texts[i]);
    jw_raw(&body, "]}");
    int st = http_req(sp.port, "POST", "/v1/classify", (char*)body.data, &resp);
    const char* p = body_of(&resp);
    int same = rc == 0, n = 0;
    char cli_label[5][64] = {{0}};
    double cli_prob[5] = {0};
    char* line = (char*)out.data;
    for (int i = 0; i < nt && same; i++) {  // classify prints label<TAB>%.4f<TAB>text
        char* label = cli_label[i];
        char prob[32];
        if (sscanf(line, "%63[^\t]\t%31[^\t]", label, prob) != 2) { same = 0; break; }
        cli_prob[i] = atof(prob);
        line = strchr(line, '\n') + 1;
        char want[128];
        snprintf(want, sizeof want, "\"index\":%d,\"label\":\"%s\"", i, label);
        const char* r = strstr(p, want);
        double pr = -1;
        if (r) sscanf(strstr(r, "\"probability\":") + 14, "%lf", &pr);
        char mine[32];
        snprintf(mine, sizeof mine, "%.4f", pr);
        if (!r || strcmp(mine, prob)) same = 0, printf("   text %d: ./train classify %s %s, serve %s\n", i, label, prob, mine);
        n++;
    }
    report(st == 200 && same && n == nt && strstr(p, "\"truncated\":true") && strstr(p, "\"labels\":[\"neg\",\"neu\",\"pos\"]"),
           "%d texts (batches of 3, one over maxT): the labels and probabilities (%%.4f) of ./train classify", n);
    // concurrent clients, one text each: the model thread batches the requests that wait together, so these
    // run in other batches than classify's; padding and batch-mates change nothing but rounding (a row's
    // sums do not mix with other rows'), so each answer is classify's label, and its probability within the
    // 5e-5 of classify's 4 printed decimals (+1e-5)
    {
        pid_t kids[4];
        for (int c = 0; c < 4; c++) {
            fflush(stdout);
            if ((kids[c] = fork()) == 0) {
                ByteVec r = {0}, b = {0};
                int okc = 1;
                for (int i = 0; i < 6; i++) {
                    int t = (c + i) % nt;
                    b.len = 0;
                    jw_raw(&b, "{\"texts\": [");
                    jw_cstr(&b, texts[t]);
                    jw_raw(&b, "]}");
                    char want[96];
                    snprintf(want, sizeof want, "\"label\":\"%s\"", cli_label[t]);
                    const char* q = http_req(sp.port, "POST", "/v1/classify", (char*)b.data, &r) == 200 ? strstr(body_of(&r), want) : NULL;
                    double pr = q && strstr(q, "\"probability\":") ? atof(strstr(q, "\"probability\":") + 14) : -1;
                    if (!q || fabs(pr - cli_prob[t]) > 6e-5) okc = 0;
                }
                _exit(okc ? 0 : 1);
            }
        }
        int all = 1;
        for (int c = 0; c < 4; c++) {
            int status;
            waitpid(kids[c], &status, 0);
            if (!WIFEXITED(status) || WEXITSTATUS(status)) all = 0;
        }
        ByteVec m = {0};
        http_req(sp.port, "GET", "/metrics", NULL, &m);
        report(all && strstr(body_of(&m), "serve_texts_classified_total 29\n"), "4 concurrent clients x 6 one-text requests, batched together: each is classify's label and probability; 29 texts counted");
        free(m.data);
    }
    st = http_req(sp.port, "POST", "/v1/classify", "{\"texts\": [\"ok\", \"\"]}", &resp);
    report(st == 400 && strstr(body_of(&resp), "texts[1] is empty"), "an empty text: 400 %s", body_of(&resp));
    st = http_req(sp.port, "POST", "/v1/completions", "{\"prompt\": \"hi\"}", &resp);
    report(st == 400 && strstr(body_of(&resp), "class head"), "a completion on a classifier: 400");
    st = http_req(sp.port, "GET", "/health", NULL, &resp);
    report(st == 200 && strstr(body_of(&resp), "\"task\":\"classify\""), "/health says classify");
    double secs;
    report(server_stop(&sp, &secs) == 0, "SIGTERM: exit 0 after %.2f s", secs);
    free(out.data), free(resp.data), free(body.data);
}

int main(void) {
    mkdir("test_tmp", 0755);
    signal(SIGPIPE, SIG_IGN);
    test_parser();
    test_regress();
    test_json();
    test_completions();
    test_queue();
    test_classify();
    printf("serve: %d/%d checks passed -> %s\n", checks_passed, checks_passed + checks_failed, checks_failed ? "FAIL" : "OK");
    return checks_failed ? 1 : 0;
}
