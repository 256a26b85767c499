#!/usr/bin/env python3
"""Holds genmetrics.h to the Python packages it follows: sacreBLEU (corpus BLEU, the 13a tokenizer, every
smooth_method, sentence BLEU) and Google's rouge-score (ROUGE-L precision, recall and F, no stemming).

    python3 dev/check_genmetrics.py [--n 2000] [--seed 1] [--jsonl runs/alpaca_sft/gen_sft/generations.jsonl ...]

Needs `pip install sacrebleu rouge-score` (both are pure Python). A dev check, not part of `make test`: the
metrics' tests in make test are test_gpt.c's (hand-computed cases and the packages' own published values).

It compiles a small C driver (written to a temporary folder) that includes genmetrics.h, feeds the same
hypothesis/reference pairs to it and to the packages, and compares
  - the 13a tokenization of every string, exactly;
  - corpus BLEU with each smooth_method (none, exp, floor, add-k), with one and with two references, and its
    counts, totals and lengths: the score to 1e-9 (both compute in doubles from the same integer counts);
  - sentence BLEU (sacreBLEU's sentence_score: exp smoothing, effective order) of every pair, to 1e-9;
  - ROUGE-L precision, recall and F of every pair, to 1e-12, and their corpus mean.
The pairs: random strings built to hit the tokenizers' corners (punctuation next to digits, entities, "-\\n",
Unicode spaces, the two non-ASCII characters Python lowercases to ASCII, upper case, empty strings), real
sentences (the Alpaca sample's responses and GLUE SST-2 dev sentences) against perturbed copies of themselves
(words dropped, swapped, repeated, case changed), and any generations.jsonl files given (reference against
generation, as eval --generate scored them). Prints one line per comparison and exits 1 on any mismatch.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

try:
    from sacrebleu.metrics import BLEU
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    from rouge_score import rouge_scorer
except ImportError as e:
    sys.exit(f"check_genmetrics: {e}; install the references with: pip install sacrebleu rouge-score")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The driver reads: N R, then N hypotheses and R*N references (reference r of hypothesis i at r*N + i), each as
# "<byte length>\n<bytes>\n"; writes one JSON object per line.
DRIVER = r'''
#include "genmetrics.h"
static char* read_str(FILE* f) {
    size_t n;
    if (fscanf(f, "%zu", &n) != 1 || fgetc(f) != '\n') { fprintf(stderr, "driver: bad input\n"); exit(2); }
    char* s = (char*)mallocCheck(n + 1);
    if (fread(s, 1, n, f) != n || fgetc(f) != '\n') { fprintf(stderr, "driver: short input\n"); exit(2); }
    s[n] = 0;
    return s;
}
static void put_stats(const char* name, const BleuStats* st, int N) {
    printf("{\"kind\": \"%s\", \"score\": %.17g, \"bp\": %.17g, \"sys_len\": %.0f, \"ref_len\": %.0f, \"counts\": [", name,
           st->score, st->bp, st->sys_len, st->ref_len);
    for (int k = 0; k < N; k++) printf("%s%.0f", k ? ", " : "", st->correct[k]);
    printf("], \"totals\": [");
    for (int k = 0; k < N; k++) printf("%s%.0f", k ? ", " : "", st->total[k]);
    printf("]}\n");
}
int main(void) {
    size_t n; int R;
    if (scanf("%zu %d\n", &n, &R) != 2) return 2;
    char** h = (char**)mallocCheck((n ? n : 1) * sizeof(char*));
    char** r = (char**)mallocCheck((n * R ? n * R : 1) * sizeof(char*));
    for (size_t i = 0; i < n; i++) h[i] = read_str(stdin);
    for (size_t i = 0; i < n * (size_t)R; i++) r[i] = read_str(stdin);
    ByteVec t = {0};
    for (size_t i = 0; i < n; i++) {
        bleu_tokenize_13a(h[i], strlen(h[i]), &t);
        printf("{\"kind\": \"tok\", \"text\": ");
        gm_json_string(stdout, t.data, t.len);
        printf("}\n");
    }
    static const char* const names[] = {"none", "exp", "floor", "add-k"};
    for (int s = 0; s < 4; s++) {
        BleuOpts o = bleu_opts_default();
        o.smooth = (BleuSmooth)s;
        BleuStats st = bleu_corpus((const char* const*)h, (const char* const*)r, n, R, &o);
        put_stats(names[s], &st, 4);
    }
    BleuOpts sent = bleu_opts_default();
    sent.smooth = BLEU_SMOOTH_EXP, sent.effective_order = 1;
    for (size_t i = 0; i < n; i++) {
        const char* refs[8];
        for (int k = 0; k < R && k < 8; k++) refs[k] = r[(size_t)k * n + i];
        BleuStats st = bleu_corpus((const char* const*)&h[i], refs, 1, R, &sent);
        RougeScore q = rouge_l(r[i], h[i]);
        printf("{\"kind\": \"pair\", \"sentence_bleu\": %.17g, \"p\": %.17g, \"r\": %.17g, \"f\": %.17g}\n", st.score,
               q.precision, q.recall, q.f);
    }
    return 0;
}
'''


def build_driver(tmp):
    src = os.path.join(tmp, "gm_driver.c")
    exe = os.path.join(tmp, "gm_driver")
    with open(src, "w") as f:
        f.write(DRIVER)
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-O2", "-std=c11", "-I", ROOT, "-o", exe, src, "-lm"], check=True)
    return exe


def run_driver(exe, hyps, refs):
    """refs: a list of R reference streams, each a list of len(hyps) strings."""
    data = bytearray(f"{len(hyps)} {len(refs)}\n".encode())
    for s in hyps + [x for stream in refs for x in stream]:
        b = s.encode("utf-8")
        data += f"{len(b)}\n".encode() + b + b"\n"
    out = subprocess.run([exe], input=bytes(data), stdout=subprocess.PIPE, check=True).stdout.decode("utf-8")
    return [json.loads(line) for line in out.splitlines()]


# ---------------------------------------------------------------------------- the pairs
PIECES = ["the", "The", "cat", "CAT", "sat", "on", "mat", "a", "dog", "3.14", "5,000", "1-2", "a-b", "don't", "U.S.",
          "e.g.", "(x)", "$5", "100%", "&quot;", "&amp;", "&lt;", "&gt;", "<skipped>", "-\n", "\n", ".", ",", "..", "!",
          "?", ";", ":", "\"", "'", "[", "]", "{", "}", "|", "~", "`", "^", "_", "@", "#", "*", "+", "=", "/", "\\",
          "zahăr", "ţara", "Ärger", "naïve", "日本", "İstanbul", "5\u212a", "\u00a0", "\u3000", "\u2028", "\x1c", "\t",
          "  ", "x.y", "9.", ".9", "9,", ",9", "9-", "-9", "--", "end-", "é.", "ü,"]


def random_sentence(rng):
    n = rng.choice([0, 1, 2, 3, 4, 5, 8, 12, 20, 40])
    out = []
    for _ in range(n):
        out.append(rng.choice(PIECES))
        out.append(rng.choice([" ", " ", " ", "", "  "]))
    return "".join(out)


def perturb(s, rng):
    words = s.split(" ")
    out = []
    for w in words:
        r = rng.random()
        if r < 0.15:
            continue                      # dropped
        if r < 0.25:
            out.extend([w, w])            # repeated
        elif r < 0.3:
            out.append(w.upper())
        else:
            out.append(w)
    for _ in range(len(out) // 10):       # a few swaps
        i, j = rng.randrange(len(out)), rng.randrange(len(out))
        out[i], out[j] = out[j], out[i]
    return " ".join(out)


def real_sentences(rng, limit):
    found = []
    alpaca = os.path.join(ROOT, "..", "shared", "data", "alpaca_demo", "alpaca_en_demo.json")
    if os.path.exists(alpaca):
        with open(alpaca, encoding="utf-8") as f:
            found += [row["output"] for row in json.load(f)]
    sst2 = os.path.join(ROOT, "..", "shared", "data", "sst2", "glue", "dev.tsv")
    if os.path.exists(sst2):
        with open(sst2, encoding="utf-8") as f:
            found += [line.split("\t")[0] for line in f.read().splitlines()[1:]]
    rng.shuffle(found)
    return found[:limit]


# ---------------------------------------------------------------------------- the comparison
failures = 0


def check(ok, what):
    global failures
    print(("[ OK ] " if ok else "[FAIL] ") + what)
    failures += not ok


def compare(name, exe, hyps, refs):
    ours = run_driver(exe, hyps, refs)
    tok = Tokenizer13a()
    toks = [o for o in ours if o["kind"] == "tok"]
    bad = [i for i, (h, o) in enumerate(zip(hyps, toks)) if tok(h.rstrip()) != o["text"]]
    check(not bad, f"{name}: 13a tokenization of {len(hyps)} strings" +
          (f"; first bad {hyps[bad[0]]!r}: sacreBLEU {tok(hyps[bad[0]].rstrip())!r}, ours {toks[bad[0]]['text']!r}" if bad else ""))
    for o in ours:
        if o["kind"] in ("none", "exp", "floor", "add-k"):
            ref = BLEU(smooth_method=o["kind"]).corpus_score(hyps, refs)
            # sacreBLEU's add-k adds k to its counts and totals in place, so those are compared unsmoothed only
            same_counts = o["kind"] == "add-k" or (list(ref.counts) == [round(c) for c in o["counts"]] and
                                                   list(ref.totals) == [round(t) for t in o["totals"]])
            ok = abs(ref.score - o["score"]) <= 1e-9 and ref.sys_len == o["sys_len"] and ref.ref_len == o["ref_len"] and same_counts
            check(ok, f"{name}: corpus BLEU smooth {o['kind']}: sacreBLEU {ref.score:.12f}, ours {o['score']:.12f} "
                      f"(|d| {abs(ref.score - o['score']):.1e}; lengths {ref.sys_len}/{ref.ref_len}, counts {ref.counts})")
    pairs = [o for o in ours if o["kind"] == "pair"]
    sent = BLEU(smooth_method="exp", effective_order=True)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    worst_b = worst_r = 0.0
    bad_b = bad_r = None
    for i, o in enumerate(pairs):
        b = sent.sentence_score(hyps[i], [stream[i] for stream in refs]).score
        q = scorer.score(refs[0][i], hyps[i])["rougeL"]
        db = abs(b - o["sentence_bleu"])
        dr = max(abs(q.precision - o["p"]), abs(q.recall - o["r"]), abs(q.fmeasure - o["f"]))
        if db > worst_b:
            worst_b = db
        if dr > worst_r:
            worst_r = dr
        if db > 1e-9 and bad_b is None:
            bad_b = (i, b, o["sentence_bleu"])
        if dr > 1e-12 and bad_r is None:
            bad_r = (i, q, o)
    check(bad_b is None, f"{name}: sentence BLEU of {len(pairs)} pairs, worst |d| {worst_b:.1e}" +
          (f"; first bad #{bad_b[0]}: sacreBLEU {bad_b[1]}, ours {bad_b[2]}" if bad_b else ""))
    mean_ref = sum(scorer.score(refs[0][i], hyps[i])["rougeL"].fmeasure for i in range(len(hyps))) / max(len(hyps), 1)
    mean_ours = sum(o["f"] for o in pairs) / max(len(pairs), 1)
    check(bad_r is None and abs(mean_ref - mean_ours) <= 1e-12,
          f"{name}: ROUGE-L P/R/F of {len(pairs)} pairs, worst |d| {worst_r:.1e}, corpus mean {mean_ref:.9f} / ours {mean_ours:.9f}" +
          (f"; first bad #{bad_r[0]} {hyps[bad_r[0]]!r}" if bad_r else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="random pairs (default 2000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jsonl", nargs="*", default=[], help="eval --generate's generations.jsonl files to rescore")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_driver(tmp)
        hyps = [random_sentence(rng) for _ in range(args.n)]
        refs = [[random_sentence(rng) for _ in range(args.n)]]
        compare("random, 1 reference", exe, hyps, refs)
        # random hypotheses near their references, so that higher orders match too, and a second reference stream
        near = [perturb(r, rng) for r in refs[0]]
        compare("random perturbed, 2 references", exe, near, [refs[0], [perturb(r, rng) for r in refs[0]]])
        real = real_sentences(rng, args.n)
        if real:
            compare(f"real sentences (Alpaca responses, SST-2 dev) perturbed", exe, [perturb(s, rng) for s in real], [real])
        else:
            print("note: ../shared/data not found, no real sentences")
        for path in args.jsonl:
            with open(path, encoding="utf-8") as f:
                rows = [json.loads(line) for line in f]
            compare(f"{path}", exe, [r["generation"] for r in rows], [[r["reference"] for r in rows]])
    print(f"check_genmetrics: {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
