// libFuzzer harness for the parsers of tokenizer.c and dataprep.c. The first input byte picks the target:
//   0 our tokenizer file format (tokenizer_parse), then encode/decode with what was loaded
//   1 CSV records (next_record, RFC 4180)     2 TSV records
//   3 JSONL rows (json_object_fields) and any JSON value (jscan_skip)
//   4 GPT-2 encode then decode: must give the input back, ids in range
// Build and run from the repo root (GPT-2 files are read from ../shared/data/gpt2_bpe):
//   bash dev/fuzz/run.sh [seconds per target]
// A crash input lands in dev/fuzz/crashes/; copy it to dev/fuzz/regress/dataprep/ and it is replayed by
// `./fuzz_dataprep dev/fuzz/regress/dataprep/*` (run.sh does that first). The readers have their own
// harness: readers.h, fuzz_readers.c, replay.c.
#define DATAPREP_NO_MAIN
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include "../../dataprep.c"

static Tokenizer g_gpt2;
static int g_loaded;

int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
    if (size < 1) return 0;
    int target = data[0] % 5;
    const unsigned char* s = data + 1;
    size_t n = size - 1;
    if (target == 0) {
        Tokenizer t;
        char err[512];
        if (tokenizer_parse(&t, s, n, "fuzz", err, sizeof err) == 0) {
            IntVec ids = {0};
            ByteVec back = {0};
            tokenizer_encode(&t, "hello <|endoftext|> w\xC3\xB6rld", 24, 1, &ids);
            tokenizer_decode(&t, ids.data, ids.len, &back, NULL);
            free(ids.data); free(back.data);
            tokenizer_free(&t);
        }
    } else if (target == 1 || target == 2) {
        Fields fs = {0};
        size_t pos = 0, start;
        const char* err;
        while (1) {
            size_t before = pos;
            int rc = next_record(s, n, &pos, target == 1, &fs, &start, &err);
            if (rc == 0) break;
            if (pos <= before) abort();  // must always make progress
        }
        for (int k = 0; k < fs.cap; k++) free(fs.f[k].data);
        free(fs.f);
    } else if (target == 3) {
        ColSpec cols = {{"text", "label", "input"}, {0, 0, 1}, 3};
        for (size_t i = 0; i < n;) {
            size_t e = line_end(s, n, i);
            JsonScan js = {s, e, i, 1, NULL};
            Row r = {{0}, {0}, 1};
            int found[MAX_COLS];
            json_object_fields(&js, &cols, &r, found);
            row_free(&r);
            i = e;
        }
        JsonScan js = {s, n, 0, 1, NULL};
        jscan_skip(&js, 0);
    } else {
        if (!g_loaded) { tokenizer_load_or_die(&g_gpt2, "../shared/data/gpt2_bpe"); g_loaded = 1; }
        IntVec ids = {0};
        ByteVec back = {0};
        tokenizer_encode(&g_gpt2, s, n, data[0] & 8, &ids);
        for (size_t i = 0; i < ids.len; i++) if (ids.data[i] < 0 || ids.data[i] >= g_gpt2.vocab_size) abort();
        tokenizer_decode(&g_gpt2, ids.data, ids.len, &back, NULL);
        if (back.len != n || (n && memcmp(back.data, s, n))) abort();
        free(ids.data); free(back.data);
    }
    return 0;
}
