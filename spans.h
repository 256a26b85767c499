// spans.h: entity spans from BIO tags, and the entity-level scores of named-entity recognition.
//
// A sentence is a list of words, each with one tag: "O" (outside any entity), "B-X" (begins an entity of
// type X) or "I-X" (inside one). The entities are read off the tags as conlleval (CoNLL 2000's scorer) and
// seqeval's default mode do, so that broken sequences count the way the published figures count them:
//   an entity starts at B-X, and also at an I-X that follows O, the sentence start, or a tag of another type
//   (an I- without a B-, as IOB1 data and untrained models write);
//   it goes on over the I-X that follow, and ends before O, before any B-, and before an I-Y of another type.
// So "B-per I-loc" is two entities (per, loc) and "O I-per I-per" one (per, words 1-2).
// Scores: an entity is correct only when a predicted entity has exactly its start, end and type. Micro
// precision = correct / predicted, recall = correct / gold, F1 = 2PR / (P + R) over all entities, and the
// same per type; 0 where the denominator is 0 (seqeval's zero_division default, with its warning left out).
// Token accuracy is separate: the share of tagged words whose predicted tag equals the gold tag.
#pragma once
#include <stdlib.h>  // defines: calloc, free
#include <string.h>  // defines: strcmp, strncmp, strlen
#include "common.h"  // defines: callocCheck

// ---------------------------------------------------------------------------- tags and types
// What one tag name says: its prefix and its entity type (an index into TagSet.types; -1 for O).
typedef struct { char bio; int type; } TagInfo;  // bio: 'B', 'I' or 'O'

// The tags of a head or a dataset (K names, in their id order) and the entity types they mention, in order
// of their first appearance in the tag list.
typedef struct {
    int K, ntypes;
    TagInfo* tag;            // (K)
    char (*types)[256];      // (ntypes) type names, e.g. "person"
} TagSet;

// Checks one tag name: "O", or "B-X" / "I-X" with a non-empty X. Returns 1 if it is BIO, 0 if not.
static int tag_is_bio(const char* name) {
    if (!strcmp(name, "O")) return 1;
    return (name[0] == 'B' || name[0] == 'I') && name[1] == '-' && name[2] != 0;
}

// Builds the tag set of K names. Returns 0, or the index + 1 of the first name that is not BIO.
static int tagset_init(TagSet* ts, const char (*names)[256], int K) {
    memset(ts, 0, sizeof *ts);
    ts->K = K;
    ts->tag = (TagInfo*)callocCheck((size_t)(K ? K : 1), sizeof(TagInfo));
    ts->types = (char(*)[256])callocCheck((size_t)(K ? K : 1), 256);
    for (int k = 0; k < K; k++) {
        if (!tag_is_bio(names[k])) return k + 1;
        ts->tag[k].bio = names[k][0];
        ts->tag[k].type = -1;
        if (names[k][0] == 'O') continue;
        const char* x = names[k] + 2;
        int t = 0;
        while (t < ts->ntypes && strcmp(ts->types[t], x)) t++;
        if (t == ts->ntypes) snprintf(ts->types[ts->ntypes++], 256, "%s", x);
        ts->tag[k].type = t;
    }
    return 0;
}
static void tagset_free(TagSet* ts) {
    free(ts->tag);
    free(ts->types);
    memset(ts, 0, sizeof *ts);
}

// ---------------------------------------------------------------------------- spans
// One entity: words [start, end) of type `type`.
typedef struct { int start, end, type; } Entity;

// The entities of a sentence of n words with tag ids tags[0..n) (ids into ts). out has room for n spans
// (there are at most n). Returns the number of entities, in sentence order.
static int spans_from_tags(Entity* out, const int* tags, int n, const TagSet* ts) {
    int count = 0, open = 0;  // open: an entity is running, out[count-1]
    for (int i = 0; i < n; i++) {
        TagInfo t = ts->tag[tags[i]];
        int continues = open && t.bio == 'I' && t.type == out[count - 1].type;
        if (open && !continues) out[count - 1].end = i, open = 0;  // O, B-, or I- of another type ends it
        if (t.bio == 'B' || (t.bio == 'I' && !continues)) {          // B-X, or an I-X that nothing carries
            out[count].start = i, out[count].type = t.type, out[count].end = n;
            count++, open = 1;
        }
    }
    return count;  // a span still open ends with the sentence (end = n, set when it started)
}

// ---------------------------------------------------------------------------- scores
typedef struct {
    int ntypes;
    size_t *gold, *pred, *correct;  // (ntypes) entity counts per type
    size_t tok_correct, tok_total;  // words whose predicted tag is the gold tag, of all words
} SpanCounts;

static void span_counts_init(SpanCounts* s, int ntypes) {
    memset(s, 0, sizeof *s);
    s->ntypes = ntypes;
    s->gold = (size_t*)callocCheck((size_t)(ntypes ? ntypes : 1), sizeof(size_t));
    s->pred = (size_t*)callocCheck((size_t)(ntypes ? ntypes : 1), sizeof(size_t));
    s->correct = (size_t*)callocCheck((size_t)(ntypes ? ntypes : 1), sizeof(size_t));
}
static void span_counts_free(SpanCounts* s) {
    free(s->gold), free(s->pred), free(s->correct);
    memset(s, 0, sizeof *s);
}

// Adds one sentence of n words: gold and predicted tag ids. Returns 1 if its predicted entities differ from
// the gold ones (errors.md lists those sentences), else 0. scratch: room for 2n spans.
static int span_counts_add(SpanCounts* s, const int* gold, const int* pred, int n, const TagSet* ts, Entity* scratch) {
    Entity *g = scratch, *p = scratch + n;
    int ng = spans_from_tags(g, gold, n, ts), np = spans_from_tags(p, pred, n, ts), matched = 0;
    for (int i = 0; i < n; i++) s->tok_correct += gold[i] == pred[i];
    s->tok_total += (size_t)n;
    for (int i = 0; i < ng; i++) s->gold[g[i].type]++;
    for (int j = 0; j < np; j++) s->pred[p[j].type]++;
    // both lists are in sentence order and spans of one list do not overlap: one merge pass finds the exact matches
    for (int i = 0, j = 0; i < ng && j < np;) {
        if (g[i].start == p[j].start && g[i].end == p[j].end && g[i].type == p[j].type) s->correct[g[i].type]++, matched++, i++, j++;
        else if (g[i].start < p[j].start || (g[i].start == p[j].start && g[i].end < p[j].end)) i++;
        else j++;
    }
    return matched != ng || matched != np;
}

typedef struct { double precision, recall, f1; size_t gold, pred, correct; } PRF;

static PRF prf_of(size_t correct, size_t pred, size_t gold) {
    PRF r = {pred ? (double)correct / pred : 0.0, gold ? (double)correct / gold : 0.0, 0.0, gold, pred, correct};
    r.f1 = r.precision + r.recall > 0.0 ? 2.0 * r.precision * r.recall / (r.precision + r.recall) : 0.0;
    return r;
}
// type t's scores, or t = -1: the micro average over all entities
static PRF span_prf(const SpanCounts* s, int t) {
    if (t >= 0) return prf_of(s->correct[t], s->pred[t], s->gold[t]);
    size_t c = 0, p = 0, g = 0;
    for (int k = 0; k < s->ntypes; k++) c += s->correct[k], p += s->pred[k], g += s->gold[k];
    return prf_of(c, p, g);
}
