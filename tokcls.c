// tokcls.c: a token-classification model scored on a token-label file (dataprep tok): entity-level precision,
// recall and F1 (spans.h: exact span and type, micro over entities, and per type) and token accuracy, plus
// errors.md, the sentences whose predicted entities differ from the gold ones, with both marked.
// Words are the positions that carry a tag (the first token of each word, dataset.h); a word's predicted tag
// is the argmax of the head's logits at that position, as Hugging Face's run_ner.py scores the first subword.

#pragma once
#include "loader.c"     // defines: DataLoader, Batch, batch_forward (the model on a batch)
#include "spans.h"      // defines: TagSet, spans_from_tags, SpanCounts, span_prf
#include "tokenizer.c"  // defines: Tokenizer, tokenizer_decode (errors.md shows the words)

typedef struct {
    SpanCounts counts;
    TagSet tags;
    size_t sentences, wrong;  // sentences scored, and those whose entities are not exactly the gold ones
} TokScore;

// One word's text: its tokens [a, b) decoded (or their ids without a tokenizer), '|' and newlines replaced.
static void tok_word_text(ByteVec* out, const Example* ex, int bpt, size_t a, size_t b, Tokenizer* tok) {
    int ids[64] = {0};
    size_t n = b - a < 64 ? b - a : 64;
    for (size_t j = 0; j < n; j++) ids[j] = dataset_id(ex->ids, bpt, a + j);
    ByteVec bytes = {0};
    if (tok && tokenizer_decode(tok, ids, n, &bytes, NULL) == 0) {
        size_t s = bytes.len && bytes.data[0] == ' ' ? 1 : 0;  // the leading space dataprep tok added
        for (size_t j = s; j < bytes.len; j++) {
            unsigned char ch = bytes.data[j];
            ch = ch == '|' ? '/' : (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' : ch;
            bytevec_append(out, &ch, 1);
        }
    } else {
        char num[16];
        for (size_t j = 0; j < n; j++) bytevec_append(out, num, (size_t)snprintf(num, sizeof num, "%s%d", j ? "+" : "#", ids[j]));
    }
    free(bytes.data);
}

// A sentence with its entities in brackets, [words]type, for errors.md.
static void tok_marked(ByteVec* out, const Example* ex, int bpt, const size_t* word_pos, int nw, size_t n_tokens,
                       const Entity* sp, int ns, const TagSet* ts, Tokenizer* tok) {
    for (int i = 0, s = 0; i < nw; i++) {
        if (i) bytevec_append(out, " ", 1);
        if (s < ns && sp[s].start == i) bytevec_append(out, "[", 1);
        tok_word_text(out, ex, bpt, word_pos[i], i + 1 < nw ? word_pos[i + 1] : n_tokens, tok);
        if (s < ns && sp[s].end == i + 1) {
            bytevec_append(out, "]", 1);
            bytevec_append(out, ts->types[sp[s].type], strlen(ts->types[sp[s].type]));
            s++;
        }
    }
}

// Scores the model on every sentence of a DS_TOK file (cut to T tokens: words past T are not scored).
// errors_path: also write errors.md there (NULL: do not); tokenizer_path: to show words (NULL: token ids).
static TokScore tok_score(GPT* model, const char* path, int B, int T, const char* errors_path, const char* tokenizer_path) {
    TokScore sc;
    memset(&sc, 0, sizeof sc);
    DataLoader dl;
    loader_init(&dl, path, B, T, 0, 1);
    check_data_matches_model(&dl, model);
    dl.pad_tail = 1;
    int E = model->config.num_tags;
    char(*names)[256] = model->label_names ? model->label_names : loader_label_names(&dl);
    if (!names) fail_at(path, "prepare it again with ./dataprep tok (it stores the tag names)", "no tag names in the model or the file");
    int bad = tagset_init(&sc.tags, (const char(*)[256])names, E);
    if (bad) fail_at(path, "entity scores need BIO tags: O, B-TYPE, I-TYPE", "tag %d '%s' is not BIO", bad - 1, names[bad - 1]);
    span_counts_init(&sc.counts, sc.tags.ntypes);
    Tokenizer tok;
    if (errors_path && tokenizer_path) tokenizer_load_or_die(&tok, tokenizer_path);
    SafeWriter w = {0};
    if (errors_path) {
        safe_open(&w, errors_path);
        fprintf(w.f, "# Errors: %s\n\nSentences whose predicted entities are not exactly the gold ones (at most 300). "
                     "Entities in brackets, `[words]type`.\n\n| # | sentence | gold | predicted |\n|---|---|---|---|\n", path);
    }
    int *gold = (int*)mallocCheck((size_t)T * sizeof(int)), *pred = (int*)mallocCheck((size_t)T * sizeof(int));
    size_t* word_pos = (size_t*)mallocCheck((size_t)T * sizeof(size_t));
    Entity* sp = (Entity*)mallocCheck((size_t)2 * T * sizeof(Entity));
    Batch b;
    batch_alloc(&b, B, T);
    size_t nb = (dl.num_items + B - 1) / B, shown = 0;
    ByteVec line = {0};
    for (size_t i = 0; i < nb; i++) {
        batch_forward(model, &dl, &b);
        for (int e = 0; e < B && sc.sentences < dl.num_items; e++) {
            int nw = 0;
            for (int t = 0; t < T; t++) {
                int y = b.y[(size_t)e * T + t];
                if (y < 0) continue;
                const float* lg = model->acts.tok_logits + ((size_t)e * T + t) * E;
                int best = 0;
                for (int k = 1; k < E; k++) if (lg[k] > lg[best]) best = k;
                gold[nw] = y, pred[nw] = best, word_pos[nw] = (size_t)t;
                nw++;
            }
            size_t index = i * (size_t)B + (size_t)e;
            sc.sentences++;
            if (!span_counts_add(&sc.counts, gold, pred, nw, &sc.tags, sp)) continue;
            sc.wrong++;
            if (!errors_path || shown >= 300) continue;
            Example ex;
            if (dataset_get(&dl.ds, index, &ex) != 0) continue;
            size_t n_tokens = ex.n < (size_t)T ? ex.n : (size_t)T;
            line.len = 0;
            int ng = spans_from_tags(sp, gold, nw, &sc.tags);
            tok_marked(&line, &ex, dl.ds.bytes_per_token, word_pos, nw, n_tokens, sp, ng, &sc.tags, tokenizer_path ? &tok : NULL);
            bytevec_append(&line, " | ", 3);
            int np = spans_from_tags(sp, pred, nw, &sc.tags);
            tok_marked(&line, &ex, dl.ds.bytes_per_token, word_pos, nw, n_tokens, sp, np, &sc.tags, tokenizer_path ? &tok : NULL);
            fprintf(w.f, "| %zu | %zu | %.*s |\n", ++shown, index, (int)line.len, (const char*)line.data);
        }
    }
    if (errors_path) {
        PRF all = span_prf(&sc.counts, -1);
        fprintf(w.f, "\n%zu of %zu sentences have wrong entities. Entity precision %.4f recall %.4f F1 %.4f (%zu gold, %zu predicted, "
                     "%zu correct); token accuracy %.4f.\n", sc.wrong, sc.sentences, all.precision, all.recall, all.f1, all.gold,
                all.pred, all.correct, sc.counts.tok_total ? (double)sc.counts.tok_correct / sc.counts.tok_total : 0.0);
        safe_close(&w);
        if (tokenizer_path) tokenizer_free(&tok);
    }
    if (names != model->label_names) free(names);
    free(gold), free(pred), free(word_pos), free(sp), free(line.data);
    batch_free(&b);
    loader_free(&dl);
    return sc;
}
static void tok_score_free(TokScore* s) {
    span_counts_free(&s->counts);
    tagset_free(&s->tags);
}

// The scores as JSON fields (no braces): precision, recall, f1, token_accuracy, entities, and per type.
static void tok_score_json(FILE* f, const TokScore* s) {
    PRF all = span_prf(&s->counts, -1);
    fprintf(f, "\"entity_precision\": %.6f, \"entity_recall\": %.6f, \"entity_f1\": %.6f, \"token_accuracy\": %.6f, "
               "\"gold_entities\": %zu, \"predicted_entities\": %zu, \"sentences\": %zu, \"per_type\": [",
            all.precision, all.recall, all.f1, s->counts.tok_total ? (double)s->counts.tok_correct / s->counts.tok_total : 0.0,
            all.gold, all.pred, s->sentences);
    for (int t = 0; t < s->tags.ntypes; t++) {
        PRF p = span_prf(&s->counts, t);
        fprintf(f, "%s{\"type\": \"%s\", \"precision\": %.6f, \"recall\": %.6f, \"f1\": %.6f, \"support\": %zu}", t ? ", " : "",
                s->tags.types[t], p.precision, p.recall, p.f1, p.gold);
    }
    fprintf(f, "]");
}
