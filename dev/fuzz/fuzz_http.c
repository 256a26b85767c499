// libFuzzer harness for serve.c's request side: the HTTP parser and the JSON request readers. The first
// input byte picks the target:
//   0 http_parse over the bytes, then again over what follows a complete request (pipelining); every
//     result must be 0, a length within the buffer (= head + body) or a listed status
//   1 parse_completion on the bytes as a body     2 parse_classify on the bytes as a body
//   3 jw_str on the bytes: the output must be valid UTF-8 with no raw control byte, and read back by
//     common.h's jscan_string
// Build and run from the repo root:  bash dev/fuzz/run_http.sh [seconds]
// A crash input lands in dev/fuzz/crashes/; keep it in dev/fuzz/regress/http/, which test_serve replays.
#define TESTING
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include "../../train.c"

static int status_ok(long rc, size_t n) {
    return rc == 0 || (rc > 0 && (size_t)rc <= n) || rc == -400 || rc == -411 || rc == -413 || rc == -414 || rc == -431 ||
           rc == -501 || rc == -505;
}

int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
    if (size < 1) return 0;
    int target = data[0] % 4;
    // the rest of the input in its own allocation, so that ASan sees any read past its end
    size_t n = size - 1;
    char* s = (char*)malloc(n ? n : 1);
    memcpy(s, data + 1, n);
    if (target == 0) {
        size_t off = 0;
        for (int k = 0; k < 8 && off <= n; k++) {
            HttpRequest r;
            long rc = http_parse(s + off, n - off, 1 << 16, &r);
            if (!status_ok(rc, n - off)) abort();
            if (rc > 0 && (r.head_len + r.body_len != (size_t)rc || strlen(r.path) >= sizeof r.path || strlen(r.method) >= sizeof r.method)) abort();
            if (rc <= 0) break;
            off += (size_t)rc;
        }
    } else if (target == 1) {
        static Args a;
        static int init;
        if (!init) a = parse_args(1, (char*[]){"train", NULL}), init = 1;
        CompletionReq q;
        char err[512];
        if (parse_completion(s, n, &a, &q, err, sizeof err) == 0 && !q.has_text && !q.has_ids) abort();
        completion_req_free(&q);
    } else if (target == 2) {
        ClassifyReq q;
        char err[512];
        if (parse_classify(s, n, &q, err, sizeof err) == 0 && q.n < 1) abort();
        classify_req_free(&q);
    } else {
        ByteVec o = {0}, back = {0};
        jw_str(&o, s, n);
        for (size_t i = 0; i < o.len;) {
            size_t len = utf8_valid_len(o.data + i, o.len - i);
            if (!len || o.data[i] < 0x20) abort();
            i += len;
        }
        JsonScan js = {o.data, o.len, 0, 1, NULL};
        if (jscan_string(&js, &back) || js.pos != o.len) abort();
        free(o.data), free(back.data);
    }
    free(s);
    return 0;
}
