// report.c: what a run tells a person: classification metrics (precision, recall, F1), SFT exact match,
// error analysis (DIR/errors.md), SVG plots, and the run report (DIR/report.md).

#pragma once
#include "infer.h"      // defines: generate (exact match)
#include "loader.c"     // defines: DataLoader, Batch, EvalResult
#include "tokenizer.c"  // defines: Tokenizer (errors.md decodes examples)

// ---------------------------------------------------------------------------- classification metrics
// From a confusion matrix cm[gold * K + predicted]: per-class precision tp/(tp+fp), recall tp/(tp+fn) and
// F1 = 2PR/(P+R), each 0 where its denominator is 0 (scikit-learn's zero_division=0); macro F1 is their
// plain mean; micro F1 pools the counts, which for single-label classification equals accuracy.
typedef struct {
    double accuracy, macro_f1, micro_f1;
    double precision[64], recall[64], f1[64];  // per class (K <= 64 reported)
    size_t support[64];                         // gold examples per class
} ClsMetrics;

static ClsMetrics cls_metrics(const size_t* cm, int K) {
    ClsMetrics r;
    memset(&r, 0, sizeof r);
    size_t total = 0, correct = 0;
    for (int g = 0; g < K; g++)
        for (int p = 0; p < K; p++) {
            total += cm[(size_t)g * K + p];
            if (g == p) correct += cm[(size_t)g * K + p];
        }
    for (int k = 0; k < K && k < 64; k++) {
        size_t tp = cm[(size_t)k * K + k], fp = 0, fn = 0;
        for (int o = 0; o < K; o++) {
            if (o == k) continue;
            fp += cm[(size_t)o * K + k];
            fn += cm[(size_t)k * K + o];
        }
        r.support[k] = tp + fn;
        r.precision[k] = tp + fp ? (double)tp / (tp + fp) : 0.0;
        r.recall[k] = tp + fn ? (double)tp / (tp + fn) : 0.0;
        double pr = r.precision[k] + r.recall[k];
        r.f1[k] = pr > 0 ? 2.0 * r.precision[k] * r.recall[k] / pr : 0.0;
        r.macro_f1 += r.f1[k] / K;
    }
    r.accuracy = total ? (double)correct / total : 0.0;
    r.micro_f1 = r.accuracy;  // pooled tp / (tp + (fp + fn)/2), and sum fp = sum fn = total - correct
    return r;
}

// SFT: the share of examples whose greedy continuation of the prompt reproduces the reference response
// exactly (all of its tokens). Up to max_examples examples (all when <= 0), in file order.
static double sft_exact_match(GPT* model, const char* path, int max_examples, size_t* n_out) {
    Dataset ds;
    char err[512];
    if (dataset_open(&ds, path, err, sizeof err) != 0) failf(NULL, "%s", err);
    size_t n = ds.count, hits = 0, done = 0;
    if (max_examples > 0 && (size_t)max_examples < n) n = (size_t)max_examples;
    Sampler greedy;
    sampler_init(&greedy, model->config.V, 0.0f, 0, 1.0f, -1, 1);
    int maxT = model->config.maxT;
    int* ids = (int*)mallocCheck((size_t)maxT * 2 * sizeof(int));
    int* out = (int*)mallocCheck((size_t)maxT * 2 * sizeof(int));
    for (size_t e = 0; e < n; e++) {
        Example ex;
        if (dataset_get(&ds, e, &ex) != 0) failf("run dataprep again", "%s: example %zu is corrupt", path, e);
        int np = ex.label, nr = (int)ex.n - ex.label;
        if (np < 1 || nr < 1 || (int)ex.n > maxT) continue;  // no prompt, no response, or too long for the model
        for (size_t i = 0; i < ex.n; i++) ids[i] = dataset_id(ex.ids, ds.bytes_per_token, i);
        int len = generate(model, &greedy, ids, np, nr, out);
        int ok = len == (int)ex.n;
        for (int i = np; ok && i < len; i++) ok = out[i] == ids[i];
        hits += ok;
        done++;
    }
    free(ids);
    free(out);
    sampler_free(&greedy);
    dataset_close(&ds);
    if (n_out) *n_out = done;
    return done ? (double)hits / done : NAN;
}

// ---------------------------------------------------------------------------- error analysis
// For a classification dataset: every example's prediction, then DIR/errors.md with accuracy by class and
// by length, and the misclassified examples, most confident mistakes first (decoded when --tokenizer is
// given). Label names come from PREFIX_labels.txt beside PREFIX_{train,val,test}.ds when it exists.
typedef struct {
    size_t index;  // example number in the file
    int gold, pred, len;
    float conf;    // probability of the predicted class
} Prediction;

static int cmp_conf_desc(const void* a, const void* b) {
    float x = ((const Prediction*)a)->conf, y = ((const Prediction*)b)->conf;
    return x < y ? 1 : x > y ? -1 : 0;
}

// Reads label names (second tab-separated column of dataprep's PREFIX_labels.txt) from f, and closes it.
static void read_label_file(FILE* f, char names[][64], int K) {
    char line[512];
    while (fgets(line, sizeof line, f)) {
        int id;
        char name[64];
        if (line[0] != '#' && sscanf(line, "%d\t%63[^\t\n]", &id, name) == 2 && id >= 0 && id < K) snprintf(names[id], 64, "%s", name);
    }
    fclose(f);
}
// Label names from the labels file next to a dataset, if any; else the class ids.
static void read_label_names(const char* data_path, char names[][64], int K) {
    for (int k = 0; k < K; k++) snprintf(names[k], 64, "%d", k);
    char path[1100];
    snprintf(path, sizeof path, "%s", data_path);
    char* u = strrchr(path, '_');
    if (!u) return;
    snprintf(u, sizeof path - (size_t)(u - path), "_labels.txt");
    FILE* f = fopen(path, "r");
    if (f) read_label_file(f, names, K);
}

static void error_analysis(GPT* model, const char* data_path, int B, int T, const char* out_path, const char* tokenizer_path) {
    int K = model->config.num_classes;
    DataLoader dl;
    loader_init(&dl, data_path, B, T, 0, 1);
    dl.pad_tail = 1;
    size_t nb = (dl.num_items + B - 1) / B, np = 0;
    Prediction* pr = (Prediction*)mallocCheck(dl.num_items * sizeof(Prediction));
    Batch b;
    batch_alloc(&b, B, T);
    for (size_t i = 0; i < nb; i++) {
        batch_forward(model, &dl, &b);
        for (int e = 0; e < B && np < dl.num_items; e++) {
            if (b.lab[e] < 0) continue;
            const float* p = model->acts.cls_probs + (size_t)e * K;
            int best = 0;
            for (int k = 1; k < K; k++) if (p[k] > p[best]) best = k;
            pr[np] = (Prediction){np, b.lab[e], best, b.len[e], p[best]};
            np++;
        }
    }
    char names[64][64];
    read_label_names(data_path, names, K < 64 ? K : 64);
    Tokenizer tok;
    int have_tok = 0;
    if (tokenizer_path) {
        tokenizer_load_or_die(&tok, tokenizer_path);
        have_tok = 1;
    }
    SafeWriter w;
    safe_open(&w, out_path);
    size_t correct = 0;
    for (size_t i = 0; i < np; i++) correct += pr[i].gold == pr[i].pred;
    fprintf(w.f, "# Error analysis: %s\n\n%zu examples, %zu correct (accuracy %.4f)\n\n", data_path, np, correct,
            np ? (double)correct / np : 0.0);
    fprintf(w.f, "## Accuracy by class\n\n| class | examples | correct | accuracy |\n|---|---|---|---|\n");
    for (int k = 0; k < K && k < 64; k++) {
        size_t n = 0, c = 0;
        for (size_t i = 0; i < np; i++) if (pr[i].gold == k) n++, c += pr[i].pred == k;
        fprintf(w.f, "| %s | %zu | %zu | %.4f |\n", names[k], n, c, n ? (double)c / n : 0.0);
    }
    fprintf(w.f, "\n## Accuracy by length (tokens, after truncation to %d)\n\n| length | examples | accuracy |\n|---|---|---|\n", T);
    const int edges[] = {0, 16, 32, 64, 128, 256, 1 << 30};
    for (int bkt = 0; bkt + 1 < (int)(sizeof edges / sizeof edges[0]); bkt++) {
        size_t n = 0, c = 0;
        for (size_t i = 0; i < np; i++)
            if (pr[i].len > edges[bkt] && pr[i].len <= edges[bkt + 1]) n++, c += pr[i].gold == pr[i].pred;
        if (!n) continue;
        if (edges[bkt + 1] == 1 << 30) fprintf(w.f, "| > %d | %zu | %.4f |\n", edges[bkt], n, (double)c / n);
        else fprintf(w.f, "| %d-%d | %zu | %.4f |\n", edges[bkt] + 1, edges[bkt + 1], n, (double)c / n);
    }
    qsort(pr, np, sizeof *pr, cmp_conf_desc);
    fprintf(w.f, "\n## Misclassified, most confident first\n\n| # | example | gold | predicted | confidence | text |\n|---|---|---|---|---|---|\n");
    int shown = 0;
    for (size_t i = 0; i < np && shown < 200; i++) {
        if (pr[i].gold == pr[i].pred) continue;
        Example ex;
        char text[400] = "";
        if (dataset_get(&dl.ds, pr[i].index, &ex) == 0) {
            size_t n = ex.n < 128 ? ex.n : 128;
            if (have_tok) {
                ByteVec bytes = {0};
                int ids[128];
                for (size_t j = 0; j < n; j++) ids[j] = dataset_id(ex.ids, dl.ds.bytes_per_token, j);
                if (tokenizer_decode(&tok, ids, n, &bytes, NULL) == 0) {
                    size_t k = 0;
                    for (size_t j = 0; j < bytes.len && k + 2 < sizeof text; j++) {
                        unsigned char ch = bytes.data[j];
                        text[k++] = ch == '|' ? '/' : (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' : (char)ch;
                    }
                    text[k] = 0;
                }
                free(bytes.data);
            } else {  // ids, when no tokenizer was given
                size_t k = 0;
                for (size_t j = 0; j < n && k + 12 < sizeof text; j++)
                    k += (size_t)snprintf(text + k, sizeof text - k, "%d ", dataset_id(ex.ids, dl.ds.bytes_per_token, j));
            }
        }
        fprintf(w.f, "| %d | %zu | %s | %s | %.3f | %s |\n", ++shown, pr[i].index, names[pr[i].gold], names[pr[i].pred],
                pr[i].conf, text);
    }
    safe_close(&w);
    if (have_tok) tokenizer_free(&tok);
    batch_free(&b);
    loader_free(&dl);
    free(pr);
}

// ---------------------------------------------------------------------------- plots (SVG)
// Written by the program itself so a user opens them in a browser; no Python needed.
typedef struct {
    double* x;
    double* y;
    size_t n, cap;
} Series;

static void series_add(Series* s, double x, double y) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->x = (double*)realloc(s->x, s->cap * sizeof(double));
        s->y = (double*)realloc(s->y, s->cap * sizeof(double));
        if (!s->x || !s->y) DIE("out of memory", "");
    }
    s->x[s->n] = x;
    s->y[s->n++] = y;
}

// A line chart of up to 8 series (the first blue, the second orange, ...) with axis labels.
static void svg_curves_n(const char* path, const char* title, const Series* const* ss, const char* const* names, int ns) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    if (ns > 8) ns = 8;
    for (int k = 0; k < ns; k++)
        for (size_t i = 0; ss[k] && i < ss[k]->n; i++) {
            if (!isfinite(ss[k]->y[i])) continue;
            x0 = fmin(x0, ss[k]->x[i]), x1 = fmax(x1, ss[k]->x[i]);
            y0 = fmin(y0, ss[k]->y[i]), y1 = fmax(y1, ss[k]->y[i]);
        }
    if (!isfinite(x0)) return;
    if (x1 == x0) x1 = x0 + 1;
    if (y1 == y0) y1 = y0 + 1;
    SafeWriter w;
    safe_open(&w, path);
    const double W = 640, H = 400, L = 60, R = 20, T = 40, Bm = 50;
    fprintf(w.f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(w.f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"%.0f\" y=\"24\" font-size=\"15\">%s</text>\n", L, title);
    fprintf(w.f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L, H - Bm, W - R, H - Bm);
    fprintf(w.f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L, T, L, H - Bm);
    for (int i = 0; i <= 4; i++) {  // ticks
        double fx = x0 + (x1 - x0) * i / 4, fy = y0 + (y1 - y0) * i / 4;
        double px = L + (W - L - R) * i / 4, py = H - Bm - (H - T - Bm) * i / 4;
        fprintf(w.f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%.0f</text>\n", px, H - Bm + 18, fx);
        fprintf(w.f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">%.3g</text>\n", L - 6, py + 4, fy);
        fprintf(w.f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#ddd\"/>\n", L, py, W - R, py);
    }
    fprintf(w.f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">step</text>\n", (L + W - R) / 2, H - 12);
    const char* colors[8] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
    for (int k = 0; k < ns; k++) {
        if (!ss[k] || !ss[k]->n) continue;
        fprintf(w.f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", colors[k]);
        for (size_t i = 0; i < ss[k]->n; i++)
            if (isfinite(ss[k]->y[i]))
                fprintf(w.f, "%.1f,%.1f ", L + (W - L - R) * (ss[k]->x[i] - x0) / (x1 - x0),
                        H - Bm - (H - T - Bm) * (ss[k]->y[i] - y0) / (y1 - y0));
        fprintf(w.f, "\"/>\n<text x=\"%.0f\" y=\"%d\" fill=\"%s\">%s</text>\n", W - R - 150, 24 + 16 * k, colors[k], names[k]);
    }
    fprintf(w.f, "</svg>\n");
    safe_close(&w);
}
// Train (blue) and validation (orange).
static void svg_curves(const char* path, const char* title, const Series* a, const char* an, const Series* b,
                       const char* bn) {
    const Series* ss[2] = {a, b};
    const char* names[2] = {an, bn};
    svg_curves_n(path, title, ss, names, 2);
}

// The confusion matrix as a heat map: rows gold, columns predicted, counts in the cells.
static void svg_confusion(const char* path, const size_t* cm, int K) {
    SafeWriter w;
    safe_open(&w, path);
    int cell = K <= 10 ? 48 : 480 / K, L = 90, T = 60;
    size_t mx = 1;
    for (int i = 0; i < K * K; i++) mx = cm[i] > mx ? cm[i] : mx;
    fprintf(w.f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n",
            L + K * cell + 20 > 420 ? L + K * cell + 20 : 420, T + K * cell + 20);
    fprintf(w.f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"15\">confusion matrix (rows: gold, columns: predicted)</text>\n");
    for (int g = 0; g < K; g++) {
        fprintf(w.f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">gold %d</text>\n", L - 6, T + g * cell + cell / 2 + 4, g);
        fprintf(w.f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", L + g * cell + cell / 2, T - 6, g);
        for (int p = 0; p < K; p++) {
            size_t v = cm[(size_t)g * K + p];
            int shade = 255 - (int)(200.0 * v / mx);
            fprintf(w.f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,255)\" stroke=\"white\"/>\n",
                    L + p * cell, T + g * cell, cell, cell, shade, shade);
            if (cell >= 24)
                fprintf(w.f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%zu</text>\n", L + p * cell + cell / 2,
                        T + g * cell + cell / 2 + 4, v);
        }
    }
    fprintf(w.f, "</svg>\n");
    safe_close(&w);
}

// ---------------------------------------------------------------------------- the run report
// DIR/report.md: what a person reads after a run. The command, the model and method, how training went, the
// test result of the model chosen on validation (per-class table and confusion matrix for classification),
// and the other files of the run folder.
typedef struct {
    const char* out;            // the run folder
    int argc;                   // the command line
    char** argv;
    const char* method, *metric, *val, *test;  // --method, --metric, and the validation and test files (or NULL)
    int B, T, accum;
    size_t cut, examples;       // training examples longer than T (cut to T), of all (0, 0 for LM data)
    long long steps, best_step;  // steps done in all, and the step of the best validation metric
    double best_metric;         // NaN when never validated
    int steps_done, stopped_early;  // steps done by this invocation (fewer after --resume)
    double seconds, ms_per_step, tokens_per_s, peak_mb, last_loss;
    const EvalResult* test_result;  // NULL when there was no --test
    const char* tasks_md;       // multi-task: the per-task table (multitask.c), else NULL
} RunSummary;

static void write_report(const GPT* model, size_t ntrain, const RunSummary* r) {
    const GPTConfig* c = &model->config;
    char path[1100];
    snprintf(path, sizeof path, "%s/report.md", r->out);
    SafeWriter w;
    safe_open(&w, path);
    FILE* f = w.f;
    fprintf(f, "# Run report: %s\n\n```\n", r->out);
    for (int i = 0; i < r->argc; i++) fprintf(f, "%s%s", r->argv[i], i + 1 < r->argc ? " " : "\n");
    fprintf(f, "```\n\n## Model\n\n| | |\n|---|---|\n");
    fprintf(f, "| shape | L=%d, NH=%d, C=%d, MLP width %d, V=%d, maxT=%d |\n", c->L, c->NH, c->C, mlp_width(c), c->V, c->maxT);
    fprintf(f, "| method | %s", r->method);
    if (c->lora_r) fprintf(f, " (r=%d, alpha=%g, layers %d-%d)", c->lora_r, c->lora_alpha, c->lora_first, c->lora_last);
    if (c->adapter_dim) fprintf(f, " (bottleneck %d)", c->adapter_dim);
    if (c->prefix_len) fprintf(f, " (prefix %d)", c->prefix_len);
    if (model->q8_memory) fprintf(f, " on an int8 base");
    fprintf(f, " |\n| head | %s |\n", c->num_classes ? "classification" : c->num_tags ? "token classification" : c->arch == ARCH_ENCODER ? "masked language model (encoder)" : "language model");
    fprintf(f, "| trainable | %zu of %zu parameters (%.2f%%) |\n\n", ntrain, model->num_parameters,
            100.0 * ntrain / model->num_parameters);
    fprintf(f, "## Training\n\n| | |\n|---|---|\n");
    fprintf(f, "| steps | %lld%s |\n", r->steps, r->stopped_early ? " (stopped early)" : "");
    fprintf(f, "| batch | %d x %d tokens, accumulation %d |\n", r->B, r->T, r->accum);
    if (r->cut) fprintf(f, "| cut by --seq | %zu of %zu training examples are longer than %d tokens and were cut |\n", r->cut, r->examples, r->T);
    fprintf(f, "| time | %.1f s, %.1f ms/step, %.0f tokens/s |\n", r->seconds, r->ms_per_step, r->tokens_per_s);
    fprintf(f, "| peak memory | %.0f MB (resident) |\n", r->peak_mb);
    fprintf(f, "| last train loss | %.4f |\n", r->last_loss);
    if (r->val && isfinite(r->best_metric))
        fprintf(f, "| best validation %s | %.4f at step %lld |\n", r->metric, r->best_metric, r->best_step);
    if (r->test_result) {
        const EvalResult* te = r->test_result;
        fprintf(f, "\n## Test (evaluated once, with the model chosen on validation at step %lld)\n\n", r->best_step);
        if (!c->num_classes) {
            fprintf(f, "loss %.4f, perplexity %.2f over %zu targets\n", te->loss, exp(te->loss), te->count);
        } else {
            int K = c->num_classes;
            ClsMetrics mt = cls_metrics(te->confusion, K);
            char(*names)[64] = (char(*)[64])mallocCheck((size_t)K * 64);
            read_label_names(r->test, names, K);
            fprintf(f, "accuracy **%.4f**, macro F1 %.4f, micro F1 %.4f, loss %.4f over %zu examples\n\n", te->accuracy,
                    mt.macro_f1, mt.micro_f1, te->loss, te->count);
            fprintf(f, "| class | precision | recall | F1 | support |\n|---|---|---|---|---|\n");
            for (int k = 0; k < K && k < 64; k++)
                fprintf(f, "| %s | %.4f | %.4f | %.4f | %zu |\n", names[k], mt.precision[k], mt.recall[k], mt.f1[k], mt.support[k]);
            fprintf(f, "\nConfusion matrix (rows: true class, columns: predicted):\n\n| |");
            for (int p = 0; p < K; p++) fprintf(f, " %s |", names[p]);
            fprintf(f, "\n|---|");
            for (int p = 0; p < K; p++) fprintf(f, "---|");
            fprintf(f, "\n");
            for (int g = 0; g < K; g++) {
                fprintf(f, "| **%s** |", names[g]);
                for (int p = 0; p < K; p++) fprintf(f, " %zu |", te->confusion[(size_t)g * K + p]);
                fprintf(f, "\n");
            }
            free(names);
        }
    }
    if (r->tasks_md) fprintf(f, "\n## Tasks (one trunk, a head per task; the last validation)\n\n%s", r->tasks_md);
    fprintf(f, "\n## Files\n\n- `curves.svg`: train and validation loss\n- `log.jsonl`: every step\n");
    if (r->tasks_md) fprintf(f, "- `curves_tasks.svg`: each task's validation loss\n");
    fprintf(f, "- `model.bin`: the last model; `ckpt.bin`: it with the optimizer state (for --resume)\n");
    if (r->val) fprintf(f, "- `best.bin`: the model chosen on validation\n");
    if (has_finetuning_tensors(c)) fprintf(f, "- `adapter.bin`: the fine-tuning tensors alone (apply with --adapter)\n");
    if (r->test_result && c->num_classes)
        fprintf(f, "- `confusion_test.svg`: the confusion matrix\n- `errors.md`: misclassified test examples, "
                   "most confident first, and accuracy by class and by length\n");
    safe_close(&w);
}
