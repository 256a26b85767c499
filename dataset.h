// dataset.h: the binary files that `dataprep` writes and `train` reads, with a writer and a
// memory-mapped reader for each. Plain C11 + POSIX mmap; all numbers little-endian.
//
// ---------------------------------------------------------------------------- 1. LM token files (.bin)
// A stream of token ids for language modelling (dataprep text).
//   header: 256 int32 (1024 bytes)
//     [0] 20261128 (TOKENS_MAGIC)      [1] 1 (version)
//     [2] bytes per token: 2 (uint16, when every id < 65536) or 4 (uint32)
//     [3] vocab size V of the tokenizer that made it (0 if unknown)
//     [4] token count, low 32 bits     [5] token count, high 32 bits      [6..255] 0
//   then the tokens. Documents are separated by the tokenizer's <|endoftext|> (50256 for GPT-2),
//   which also starts the file, as in llm.c: [eot] doc1 [eot] doc2 ...
// `dataprep text --format llmc` writes llm.c's format instead: header [0] 20240520, [1] 1,
// [2] token count (int32), rest 0; then uint16 tokens.
//
// ---------------------------------------------------------------------------- 2. example files (.ds)
// A list of examples for classification (dataprep cls), supervised fine-tuning (dataprep sft) or token
// classification (dataprep tok: named-entity recognition).
//   header: 256 int32 (1024 bytes)
//     [0] 20261129 (EXAMPLES_MAGIC)    [1] 1 (version)
//     [2] kind: 1 = classification (DS_CLS), 2 = SFT with a loss mask (DS_SFT), 3 = token labels (DS_TOK)
//     [3] vocab size V                 [4] bytes per token: 2 (uint16) or 4 (uint32)
//     [5] number of labels K (classification; tags for DS_TOK, at most 255; 0 for SFT)
//     [6] longest example, in tokens
//     [7] example count N, low 32 bits [8] high 32 bits
//     [9] total tokens, low 32 bits   [10] high 32 bits
//     [11] offset of the index (bytes from the start of the file), low 32 bits  [12] high 32 bits
//     [13] offset of the label names (0: none), low 32 bits  [14] high 32 bits
//     [15..255] 0
//   then N records, each starting at a multiple of 4 bytes:
//     uint32 n          number of tokens
//     int32  label      classification: class id in [0, K); SFT: number of prompt tokens; DS_TOK: number
//                       of words W (each word is one or more tokens)
//     n tokens          (bytes per token each)
//     n uint8 mask      SFT only: mask[i] = 1 if the loss is taken when predicting ids[i] from
//                       ids[0..i) (the response and its closing <|endoftext|>), else 0 (the prompt)
//     n uint8 tags      DS_TOK only: tags[i] = the tag id (< K) of the word whose FIRST token is ids[i], or
//                       255 (DS_TAG_NONE, read as -1: no loss) for a word's later tokens. So the W words
//                       start where the tag is not 255: tags[0] always is one, and exactly W are.
//     0-3 zero bytes    padding to a multiple of 4
//   then the index: N+1 uint64 byte offsets, record i is [index[i], index[i+1]).
//   The index is at the end so the writer can stream records without knowing N in advance.
//   then (classification and DS_TOK, when [13],[14] are not 0) the label (tag) names: for each class id 0..K-1, uint32 length
//   (1 to 255) and that many bytes of UTF-8, then 0-3 zero bytes of padding at the end. So a file says
//   which class each id is, and train/eval/classify can refuse data whose ids mean other classes.
//   (Files written before have no names: [13],[14] are 0.) The names are also in PREFIX_labels.txt, one
//   line per class: id, name, train count, class weight N/(K*count).
//
// Reading: dataset_open() maps the file with mmap, so the operating system pages in only what is
// touched: a dataset larger than RAM works, and random access (shuffling) costs no copying.
// Writers write to a fresh temp file beside PATH (common.h: PATH.tmp.PID.RAND, removed on any error) and
// rename it over PATH at the end, so a crash never leaves a half-written file under the real name.
#ifndef DATASET_H
#define DATASET_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common.h"  // defines: the writers' temp files and output checks (open_temp_beside, finish_temp)

#if defined(__GNUC__)
#define DS_API static __attribute__((unused))
#else
#define DS_API static
#endif

#define TOKENS_MAGIC 20261128
#define LLMC_MAGIC 20240520
#define EXAMPLES_MAGIC 20261129
#define DS_VERSION 1
#define DS_HEADER_INTS 256
enum { DS_CLS = 1, DS_SFT = 2, DS_TOK = 3 };
#define DS_TAG_NONE 255  // DS_TOK: a token that carries no tag (a word's second and later tokens)

DS_API void ds_errf(char* err, size_t errlen, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

// the file formats are little-endian; these helpers keep the code correct on any host
DS_API void ds_put_u32(unsigned char* p, uint32_t x) { for (int k = 0; k < 4; k++) p[k] = (unsigned char)(x >> (8 * k)); }
DS_API uint32_t ds_get_u32(const unsigned char* p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
DS_API uint64_t ds_get_u64(const unsigned char* p) { return (uint64_t)ds_get_u32(p) | (uint64_t)ds_get_u32(p + 4) << 32; }

// ---------------------------------------------------------------------------- writer (both kinds)

typedef struct {
    FILE* f;
    char path[4096], tmp[4200];
    int magic;              // TOKENS_MAGIC, LLMC_MAGIC or EXAMPLES_MAGIC
    int kind;               // DS_CLS / DS_SFT for example files
    int vocab_size, bytes_per_token, num_labels, max_len;
    uint64_t count;         // tokens (token files) or examples (example files)
    uint64_t total_tokens;
    uint64_t offset;        // bytes written so far
    uint64_t* index; size_t index_cap;  // record offsets (example files)
    int failed;             // 1: an I/O error; 2: the data does not fit the format (message already set)
    const char* const* label_names;  // classification: K names written after the index (ds_writer_set_labels)
} DsWriter;

// bytes per token needed for vocabulary size V
DS_API int ds_bytes_per_token(int vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

DS_API int ds_writer_open(DsWriter* w, const char* path, int magic, int kind, int vocab_size, int num_labels, char* err, size_t errlen) {
    memset(w, 0, sizeof *w);
    snprintf(w->path, sizeof w->path, "%s", path);
    w->magic = magic; w->kind = kind; w->vocab_size = vocab_size; w->num_labels = num_labels;
    w->bytes_per_token = ds_bytes_per_token(vocab_size);
    if (magic == LLMC_MAGIC && vocab_size > 65536) {
        ds_errf(err, errlen, "%s: llm.c's format stores uint16 tokens, but the vocabulary has %d ids", path, vocab_size);
        return -1;
    }
    if (magic == LLMC_MAGIC) w->bytes_per_token = 2;
    check_output_path(path);  // never through a link, never over an input or a special file
    w->f = open_temp_beside(path, w->tmp, sizeof w->tmp);
    unsigned char zero[DS_HEADER_INTS * 4] = {0};  // header written for real in ds_writer_close
    if (fwrite(zero, 1, sizeof zero, w->f) != sizeof zero) w->failed = 1;
    w->offset = sizeof zero;
    return 0;
}

DS_API void ds_write_raw(DsWriter* w, const void* p, size_t n) {
    if (n && fwrite(p, 1, n, w->f) != n) w->failed = 1;
    w->offset += n;
}
DS_API void ds_write_ids(DsWriter* w, const int* ids, size_t n) {
    unsigned char buf[4096];
    size_t bpt = (size_t)w->bytes_per_token, k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t x = (uint32_t)ids[i];
        for (size_t b = 0; b < bpt; b++) buf[k++] = (unsigned char)(x >> (8 * b));
        if (k + 4 > sizeof buf) { ds_write_raw(w, buf, k); k = 0; }
    }
    ds_write_raw(w, buf, k);
}

// token files: append tokens
DS_API void ds_write_tokens(DsWriter* w, const int* ids, size_t n) {
    ds_write_ids(w, ids, n);
    w->count += n;
    w->total_tokens += n;
}

// example files: append one example. label: class id (DS_CLS), number of prompt tokens (DS_SFT) or words
// (DS_TOK); mask: n bytes for DS_SFT (the loss mask) and DS_TOK (the tags), NULL for DS_CLS.
DS_API void ds_write_example(DsWriter* w, const int* ids, size_t n, int label, const unsigned char* mask) {
    if (w->count + 2 > w->index_cap) {
        w->index_cap = w->index_cap ? 2 * w->index_cap : 1024;
        w->index = (uint64_t*)realloc(w->index, w->index_cap * sizeof(uint64_t));
        if (!w->index) { fprintf(stderr, "%s:%d: out of memory\n", __FILE__, __LINE__); exit(EXIT_FAILURE); }
    }
    w->index[w->count++] = w->offset;
    unsigned char head[8];
    ds_put_u32(head, (uint32_t)n);
    ds_put_u32(head + 4, (uint32_t)label);
    ds_write_raw(w, head, 8);
    ds_write_ids(w, ids, n);
    if (w->kind == DS_SFT || w->kind == DS_TOK) {
        if (!mask) DIE("an SFT or token-label example needs its mask or tag bytes", "pass n bytes to ds_write_example");
        ds_write_raw(w, mask, n);
    }
    static const unsigned char pad[4] = {0};
    ds_write_raw(w, pad, (4 - w->offset % 4) % 4);
    w->total_tokens += n;
    if ((int)n > w->max_len) w->max_len = (int)n;
}

// classification files: the K class names (kept by pointer until ds_writer_close writes them)
DS_API void ds_writer_set_labels(DsWriter* w, const char* const* names) { w->label_names = names; }

// writes the index and the header, closes, renames PATH.tmp to PATH. Returns 0 or -1 (message in err).
DS_API int ds_writer_close(DsWriter* w, char* err, size_t errlen) {
    uint64_t index_off = w->offset;
    if (w->magic == EXAMPLES_MAGIC) {
        if (!w->index) w->index = (uint64_t*)callocCheck(1, sizeof(uint64_t));  // no example was written
        w->index[w->count] = w->offset;  // end of the last record
        for (uint64_t i = 0; i <= w->count; i++) {
            unsigned char b[8];
            ds_put_u32(b, (uint32_t)w->index[i]);
            ds_put_u32(b + 4, (uint32_t)(w->index[i] >> 32));
            ds_write_raw(w, b, 8);
        }
    }
    uint64_t names_off = 0;
    if (w->magic == EXAMPLES_MAGIC && w->label_names) {
        names_off = w->offset;
        for (int k = 0; k < w->num_labels; k++) {
            size_t n = strlen(w->label_names[k]);
            if (n < 1 || n > 255) { ds_errf(err, errlen, "%s: label name %d is %zu bytes, expected 1 to 255", w->path, k, n); w->failed = 2; break; }
            unsigned char b[4];
            ds_put_u32(b, (uint32_t)n);
            ds_write_raw(w, b, 4);
            ds_write_raw(w, w->label_names[k], n);
        }
        static const unsigned char pad[4] = {0};
        ds_write_raw(w, pad, (4 - w->offset % 4) % 4);
    }
    uint32_t h[DS_HEADER_INTS] = {0};
    h[0] = (uint32_t)w->magic;
    h[1] = DS_VERSION;
    if (w->magic == LLMC_MAGIC) {
        if (w->count > 0x7FFFFFFF) { ds_errf(err, errlen, "%s: llm.c's header holds at most 2^31-1 tokens", w->path); w->failed = 2; }
        h[2] = (uint32_t)w->count;
    } else if (w->magic == TOKENS_MAGIC) {
        h[2] = (uint32_t)w->bytes_per_token; h[3] = (uint32_t)w->vocab_size;
        h[4] = (uint32_t)w->count; h[5] = (uint32_t)(w->count >> 32);
    } else {
        h[2] = (uint32_t)w->kind; h[3] = (uint32_t)w->vocab_size; h[4] = (uint32_t)w->bytes_per_token;
        h[5] = (uint32_t)w->num_labels; h[6] = (uint32_t)w->max_len;
        h[7] = (uint32_t)w->count; h[8] = (uint32_t)(w->count >> 32);
        h[9] = (uint32_t)w->total_tokens; h[10] = (uint32_t)(w->total_tokens >> 32);
        h[11] = (uint32_t)index_off; h[12] = (uint32_t)(index_off >> 32);
        h[13] = (uint32_t)names_off; h[14] = (uint32_t)(names_off >> 32);
    }
    unsigned char hb[DS_HEADER_INTS * 4];
    for (int i = 0; i < DS_HEADER_INTS; i++) ds_put_u32(hb + 4 * i, h[i]);
    if (fseek(w->f, 0, SEEK_SET) != 0 || fwrite(hb, 1, sizeof hb, w->f) != sizeof hb) w->failed = 1;
    free(w->index);
    w->index = NULL;
    if (w->failed) {
        fclose(w->f);
        unlink(w->tmp);
        temps_drop(w->tmp);
        if (w->failed != 2) ds_errf(err, errlen, "%s: write failed (disk full, or the folder is not writable?)", w->path);
        return -1;
    }
    finish_temp(w->f, w->tmp, w->path);  // flush, sync, close, rename: any failure is an error naming the path
    return 0;
}

// ---------------------------------------------------------------------------- reader (mmap)

typedef struct {
    const unsigned char* base;  // the whole file, mapped read-only
    size_t size;
    int magic, kind, vocab_size, bytes_per_token, num_labels, max_len;
    uint64_t count;             // tokens (token files) or examples (example files)
    uint64_t total_tokens;
    const unsigned char* data;  // token files: the first token; example files: unused
    const unsigned char* index; // example files: N+1 little-endian uint64 offsets
} Dataset;

// one example, pointing into the mapping (valid until dataset_close)
typedef struct {
    size_t n;                   // tokens
    int label;                  // class id (DS_CLS) or number of prompt tokens (DS_SFT)
    const unsigned char* ids;   // n tokens of ds->bytes_per_token bytes; read with dataset_id()
    const unsigned char* mask;  // DS_SFT: n bytes of 0/1; DS_TOK: n tag bytes (DS_TAG_NONE: none); DS_CLS: NULL
} Example;

DS_API void dataset_close(Dataset* ds) {
    if (ds->base) munmap((void*)ds->base, ds->size);
    memset(ds, 0, sizeof *ds);
}

// token i of a token list with b bytes per token
DS_API int dataset_id(const unsigned char* ids, int bytes_per_token, size_t i) {
    return bytes_per_token == 2 ? (int)(ids[2 * i] | ids[2 * i + 1] << 8) : (int)ds_get_u32(ids + 4 * i);
}

// Every record of an example file, once, when it is opened: the index (in order, inside the records' region,
// no wrap-around), each record's length against its slot, labels (classification: [0, K); SFT: the prompt
// length, at most n), mask bytes (0 or 1), token ids against the vocabulary, and the header's totals. After
// this, dataset_get cannot fail on a record and training cannot die mid-run on a damaged one.
// (Sections after the index, such as a future label-names table located by a header field, are checked by
// their own function here; the records end where the index begins.)
DS_API int ds_check_examples(const Dataset* ds, const char* path, char* err, size_t errlen) {
    const uint64_t records_end = (uint64_t)(ds->index - ds->base), bpt = (uint64_t)ds->bytes_per_token;
    uint64_t prev_end = DS_HEADER_INTS * 4, total = 0, longest = 0;
    for (uint64_t i = 0; i < ds->count; i++) {
        uint64_t a = ds_get_u64(ds->index + 8 * i), b = ds_get_u64(ds->index + 8 * (i + 1));
        if (a != prev_end || b < a || b > records_end || b - a < 8) {
            ds_errf(err, errlen, "%s: example %llu: index entry [%llu, %llu) is out of order or outside the records [1024, %llu) (corrupt file? run dataprep again)",
                    path, (unsigned long long)i, (unsigned long long)a, (unsigned long long)b, (unsigned long long)records_end);
            return -1;
        }
        prev_end = b;
        const unsigned char* r = ds->base + a;
        uint64_t n = ds_get_u32(r);
        int label = (int)ds_get_u32(r + 4);
        uint64_t need = 8 + n * bpt + (ds->kind != DS_CLS ? n : 0);  // n < 2^32: no overflow
        const char* bad = NULL;
        if (n == 0) bad = "is empty";
        else if (need > b - a) bad = "is longer than its slot in the index";
        else if (ds->kind == DS_CLS && (label < 0 || label >= ds->num_labels)) bad = "has a label outside [0, K)";
        else if (ds->kind == DS_SFT && (label < 0 || (uint64_t)label > n)) bad = "has a prompt length outside [0, n]";
        else if (ds->kind == DS_TOK && (label < 1 || (uint64_t)label > n)) bad = "has a word count outside [1, n]";
        if (bad) {
            ds_errf(err, errlen, "%s: example %llu %s (n=%llu tokens, label %d, K=%d) (corrupt file? run dataprep again)", path,
                    (unsigned long long)i, bad, (unsigned long long)n, label, ds->num_labels);
            return -1;
        }
        for (uint64_t k = 0; ds->vocab_size > 0 && k < n; k++) {
            int id = dataset_id(r + 8, ds->bytes_per_token, (size_t)k);
            if (id < 0 || id >= ds->vocab_size) {
                ds_errf(err, errlen, "%s: example %llu: token %llu is id %d, out of range for the file's vocabulary [0, %d) (corrupt file? run dataprep again)",
                        path, (unsigned long long)i, (unsigned long long)k, id, ds->vocab_size);
                return -1;
            }
        }
        const unsigned char* tags = r + 8 + n * bpt;
        uint64_t words = 0;
        for (uint64_t k = 0; ds->kind == DS_TOK && k < n; k++) {
            words += tags[k] != DS_TAG_NONE;
            if ((tags[k] != DS_TAG_NONE && tags[k] >= ds->num_labels) || (k == 0 && tags[k] == DS_TAG_NONE)) {
                ds_errf(err, errlen, "%s: example %llu: tag byte %llu is %d, expected a tag id below K=%d or %d (not on the first token) (corrupt file? run dataprep again)",
                        path, (unsigned long long)i, (unsigned long long)k, tags[k], ds->num_labels, DS_TAG_NONE);
                return -1;
            }
        }
        if (ds->kind == DS_TOK && words != (uint64_t)label) {
            ds_errf(err, errlen, "%s: example %llu: %llu tokens carry a tag but the record says %d words (corrupt file? run dataprep again)",
                    path, (unsigned long long)i, (unsigned long long)words, label);
            return -1;
        }
        for (uint64_t k = 0; ds->kind == DS_SFT && k < n; k++)
            if (r[8 + n * bpt + k] > 1) {
                ds_errf(err, errlen, "%s: example %llu: loss mask byte %llu is %d, expected 0 or 1 (corrupt file? run dataprep again)",
                        path, (unsigned long long)i, (unsigned long long)k, r[8 + n * bpt + k]);
                return -1;
            }
        total += n;
        longest = n > longest ? n : longest;
    }
    if (prev_end != records_end || total != ds->total_tokens || longest != (uint64_t)ds->max_len) {
        ds_errf(err, errlen, "%s: the header says %llu tokens, longest %d, records end at %llu; the records hold %llu, longest %llu, end at %llu (corrupt file? run dataprep again)",
                path, (unsigned long long)ds->total_tokens, ds->max_len, (unsigned long long)records_end,
                (unsigned long long)total, (unsigned long long)longest, (unsigned long long)prev_end);
        return -1;
    }
    return 0;
}

// Opens a token file (ours or llm.c's) or an example file. Returns 0, or -1 with a message in err.
// Every offset in the file is checked against its size here, and every record of an example file validated
// (ds_check_examples), so dataset_get cannot read outside and a damaged record is found now.
DS_API int dataset_open(Dataset* ds, const char* path, char* err, size_t errlen) {
    memset(ds, 0, sizeof *ds);
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {  // a FIFO would block open(); a folder cannot be mapped
        ds_errf(err, errlen, "%s: not a regular file (hint: give the path of a file that dataprep wrote)", path);
        return -1;
    }
    int fd = open(path, O_RDONLY);
    if (fd < 0) { ds_errf(err, errlen, "%s: cannot open (hint: run dataprep first; check the path)", path); return -1; }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < DS_HEADER_INTS * 4) {
        close(fd);
        ds_errf(err, errlen, "%s: %lld bytes, smaller than the 1024-byte header (truncated file?)", path, (long long)st.st_size);
        return -1;
    }
    ds->size = (size_t)st.st_size;
    void* p = mmap(NULL, ds->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);  // the mapping stays valid
    if (p == MAP_FAILED) { ds_errf(err, errlen, "%s: mmap failed", path); ds->size = 0; return -1; }
    ds->base = (const unsigned char*)p;
    const unsigned char* h = ds->base;
    ds->magic = (int)ds_get_u32(h);
    int version = (int)ds_get_u32(h + 4);
    if (ds->magic == LLMC_MAGIC) {
        ds->bytes_per_token = 2;
        ds->count = ds_get_u32(h + 8);
        ds->total_tokens = ds->count;
        ds->data = h + DS_HEADER_INTS * 4;
        if (version != 1) { ds_errf(err, errlen, "%s: llm.c token file version %d, expected 1", path, version); dataset_close(ds); return -1; }
    } else if (ds->magic == TOKENS_MAGIC) {
        ds->bytes_per_token = (int)ds_get_u32(h + 8);
        ds->vocab_size = (int)ds_get_u32(h + 12);
        ds->count = ds_get_u64(h + 16);
        ds->total_tokens = ds->count;
        ds->data = h + DS_HEADER_INTS * 4;
    } else if (ds->magic == EXAMPLES_MAGIC) {
        ds->kind = (int)ds_get_u32(h + 8);
        ds->vocab_size = (int)ds_get_u32(h + 12);
        ds->bytes_per_token = (int)ds_get_u32(h + 16);
        ds->num_labels = (int)ds_get_u32(h + 20);
        ds->max_len = (int)ds_get_u32(h + 24);
        ds->count = ds_get_u64(h + 28);
        ds->total_tokens = ds_get_u64(h + 36);
        uint64_t index_off = ds_get_u64(h + 44);
        if (ds->kind != DS_CLS && ds->kind != DS_SFT && ds->kind != DS_TOK) { ds_errf(err, errlen, "%s: unknown example kind %d (expected 1 = classification, 2 = SFT or 3 = token labels)", path, ds->kind); dataset_close(ds); return -1; }
        if (ds->kind == DS_TOK && (ds->num_labels < 1 || ds->num_labels >= DS_TAG_NONE)) {
            ds_errf(err, errlen, "%s: %d tags in the header, expected 1 to %d (corrupt file? run dataprep again)", path, ds->num_labels, DS_TAG_NONE - 1);
            dataset_close(ds); return -1;
        }
        if (ds->kind == DS_CLS && (ds->num_labels < 1 || ds->num_labels > (1 << 20))) {
            ds_errf(err, errlen, "%s: %d labels in the header, expected 1 to 2^20 (corrupt file? run dataprep again)", path, ds->num_labels);
            dataset_close(ds); return -1;
        }
        if (index_off < DS_HEADER_INTS * 4 || index_off > ds->size || ds->count >= (ds->size - index_off) / 8) {
            ds_errf(err, errlen, "%s: index at byte %llu with %llu entries does not fit in the file's %zu bytes (truncated?)", path,
                    (unsigned long long)index_off, (unsigned long long)ds->count + 1, ds->size);
            dataset_close(ds); return -1;
        }
        ds->index = h + index_off;
    } else {
        ds_errf(err, errlen, "%s: magic number %d, expected %d (token file), %d (example file) or %d (llm.c tokens)",
                path, ds->magic, TOKENS_MAGIC, EXAMPLES_MAGIC, LLMC_MAGIC);
        dataset_close(ds); return -1;
    }
    if (ds->magic != LLMC_MAGIC && version != DS_VERSION) {
        ds_errf(err, errlen, "%s: format version %d, this program reads version %d", path, version, DS_VERSION);
        dataset_close(ds); return -1;
    }
    if (ds->bytes_per_token != 2 && ds->bytes_per_token != 4) {
        ds_errf(err, errlen, "%s: %d bytes per token, expected 2 or 4", path, ds->bytes_per_token);
        dataset_close(ds); return -1;
    }
    if (ds->vocab_size < 0 || ds->vocab_size > (1 << 24) || (ds->bytes_per_token == 2 && ds->vocab_size > 65536)) {
        ds_errf(err, errlen, "%s: vocabulary size %d does not fit %d-byte tokens (at most 2^24)", path, ds->vocab_size, ds->bytes_per_token);
        dataset_close(ds); return -1;
    }
    if (ds->data && (ds->size - DS_HEADER_INTS * 4) / (size_t)ds->bytes_per_token < ds->count) {
        ds_errf(err, errlen, "%s: header says %llu tokens but the file holds only %zu (truncated?)", path,
                (unsigned long long)ds->count, (ds->size - DS_HEADER_INTS * 4) / (size_t)ds->bytes_per_token);
        dataset_close(ds); return -1;
    }
    // Example files are checked record by record now. Token files are not scanned: they can be larger than
    // memory (the mapping pages in only what is read), and the loader checks every token against the
    // model's vocabulary as it reads it, naming the file and the position.
    if (!ds->data && ds_check_examples(ds, path, err, errlen)) {
        dataset_close(ds);
        return -1;
    }
    return 0;
}

// token i of a token file
DS_API int dataset_token(const Dataset* ds, uint64_t i) { return dataset_id(ds->data, ds->bytes_per_token, (size_t)i); }

// example i of an example file. Returns 0, or -1 if the record is damaged (offsets out of range).
DS_API int dataset_get(const Dataset* ds, uint64_t i, Example* ex) {
    if (!ds->index || i >= ds->count) return -1;
    uint64_t a = ds_get_u64(ds->index + 8 * i), b = ds_get_u64(ds->index + 8 * (i + 1));
    if (a < DS_HEADER_INTS * 4 || b < a || b - a < 8 || b > (uint64_t)(ds->index - ds->base)) return -1;  // b - a: no wrap
    const unsigned char* r = ds->base + a;
    ex->n = ds_get_u32(r);
    ex->label = (int)ds_get_u32(r + 4);
    size_t need = 8 + ex->n * (size_t)ds->bytes_per_token + (ds->kind != DS_CLS ? ex->n : 0);
    if (need > b - a) return -1;
    ex->ids = r + 8;
    ex->mask = ds->kind != DS_CLS ? ex->ids + ex->n * (size_t)ds->bytes_per_token : NULL;
    return 0;
}

// The class names of a classification file: names[k] (NUL-terminated, at most 255 bytes) for k < K. Returns
// K, 0 if the file has no names (written before they were stored), or -1 with a message in err if the
// section is damaged. Every length and offset is checked against the file before it is read.
DS_API int dataset_label_names(const Dataset* ds, const char* path, char (*names)[256], char* err, size_t errlen) {
    if (ds->magic != EXAMPLES_MAGIC || (ds->kind != DS_CLS && ds->kind != DS_TOK)) return 0;
    uint64_t off = ds_get_u64(ds->base + 13 * 4);
    if (!off) return 0;
    uint64_t index_end = (uint64_t)(ds->index - ds->base) + 8 * (ds->count + 1);  // dataset_open checked it fits
    if (off < index_end || off > ds->size) {
        ds_errf(err, errlen, "%s: the label names at byte %llu are outside [%llu, %zu] (corrupt file? run dataprep again)", path,
                (unsigned long long)off, (unsigned long long)index_end, ds->size);
        return -1;
    }
    for (int k = 0; k < ds->num_labels; k++) {
        uint64_t n = ds->size - off >= 4 ? ds_get_u32(ds->base + off) : 0;
        if (ds->size - off < 4 || n < 1 || n > 255 || n > ds->size - off - 4) {
            ds_errf(err, errlen, "%s: label name %d at byte %llu is cut off or not 1 to 255 bytes (corrupt file? run dataprep again)", path, k,
                    (unsigned long long)off);
            return -1;
        }
        memcpy(names[k], ds->base + off + 4, (size_t)n);
        names[k][n] = 0;
        if (memchr(names[k], 0, (size_t)n)) {
            ds_errf(err, errlen, "%s: label name %d contains a NUL byte (corrupt file?)", path, k);
            return -1;
        }
        off += 4 + n;
    }
    return ds->num_labels;
}

#endif // DATASET_H
