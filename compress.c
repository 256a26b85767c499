// Model compression, the deployment end of the workflow: int8 quantization and magnitude pruning.
// #included by train.c (it uses its loaders, evaluate and checkpoint writer); the int8 kernels are model.h's.
//
//   ./train quantize --model M --out M8 [--data VAL]     fp32 -> int8 (Q8_0) checkpoint, quality before/after
//   ./train prune --model M --prune MODE --sparsity S --out P [--data VAL]
//       MODE unstructured: the smallest |w| over all block matrices together (one global threshold)
//            layer:        the same fraction of each layer's each matrix
//            heads:        whole attention heads, lowest weight norm first, the same number in every layer
//            neurons:      whole MLP neurons (a row of fcw and a column of fcprojw), the same number in
//                          every layer; the model really shrinks (F = 4C -> fewer), so files get smaller
// Prunable: the block matrices qkvw, attprojw, fcw, fcprojw. The embeddings stay (wte is also the LM head;
// zeroing token rows removes tokens, not redundancy). A short fine-tune afterwards recovers quality; with
// --keep-sparsity 1 training puts the pruned zeros back after every step, so the sparsity survives it.
#pragma once
#include "loader.c"  // defines: evaluate (quality before and after)
#include "setup.c"   // defines: model_from_args, Args, save_checkpoint

// Zeros and total over the prunable matrices: the sparsity actually reached.
static double prunable_sparsity(const GPT* model, size_t* nonzero_out) {
    size_t zeros = 0, total = 0;
    for (int k = 0; k < num_prunable(); k++) {
        const float* w = model->params.t[prunable_param(k)];
        size_t n = param_numel(&model->config, prunable_param(k));
        for (size_t j = 0; j < n; j++) zeros += w[j] == 0.0f;
        total += n;
    }
    if (nonzero_out) *nonzero_out = total - zeros;
    return total ? (double)zeros / total : 0.0;
}

// The k-th smallest of x[0..n) (0-based), by quickselect with a three-way partition; x is reordered.
static float kth_smallest(float* x, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float p = x[lo + (hi - lo) / 2], t;
        size_t lt = lo, i = lo, gt = hi + 1;  // x[lo, lt) < p, x[lt, i) == p, x[gt, hi] > p
        while (i < gt) {
            if (x[i] < p) t = x[lt], x[lt++] = x[i], x[i++] = t;
            else if (x[i] > p) t = x[--gt], x[gt] = x[i], x[i] = t;
            else i++;
        }
        if (k < lt) hi = lt - 1;
        else if (k >= gt) lo = gt;
        else return p;
    }
    return x[lo];
}

// Unstructured magnitude pruning: zero every weight with |w| below the threshold that removes a fraction s of
// the weights in the group. The groups are all prunable matrices together (global) or each layer's slice of
// each matrix (per layer). Weights tied with the threshold go too, so the reached sparsity can be a hair above s.
static void prune_unstructured(GPT* model, float s, int per_layer) {
    const GPTConfig* c = &model->config;
    size_t total = 0;
    for (int k = 0; k < num_prunable(); k++) total += param_numel(c, prunable_param(k));
    float* mag = (float*)mallocCheck(total * sizeof(float));
    int groups = per_layer ? num_prunable() * c->L : 1;
    for (int g = 0; g < groups; g++) {
        size_t n = 0;  // gather the group's magnitudes
        for (int k = 0; k < num_prunable(); k++) {
            int i = prunable_param(k);
            size_t sn = slice_numel(c, i);
            for (int l = 0; l < c->L; l++) {
                if (per_layer && (g != k * c->L + l)) continue;
                const float* w = model->params.t[i] + (size_t)l * sn;
                for (size_t j = 0; j < sn; j++) mag[n++] = fabsf(w[j]);
            }
        }
        size_t drop = (size_t)((double)s * n);
        if (drop == 0) continue;
        float thr = kth_smallest(mag, n, drop - 1);  // the largest magnitude that is dropped
        for (int k = 0; k < num_prunable(); k++) {
            int i = prunable_param(k);
            size_t sn = slice_numel(c, i);
            for (int l = 0; l < c->L; l++) {
                if (per_layer && (g != k * c->L + l)) continue;
                float* w = model->params.t[i] + (size_t)l * sn;
                for (size_t j = 0; j < sn; j++)
                    if (fabsf(w[j]) <= thr) w[j] = 0.0f;
            }
        }
    }
    free(mag);
}

// Sorts (score, index) pairs ascending by score.
typedef struct { double score; int index; } Scored;
static int cmp_scored(const void* a, const void* b) {
    double x = ((const Scored*)a)->score, y = ((const Scored*)b)->score;
    return x < y ? -1 : x > y;
}

// Structured: removes `drop` heads in every layer. A head's score is the norm of everything it reads and
// writes: its q, k, v rows of qkvw and its columns of attprojw. Its v rows, v bias and output columns are
// zeroed, so it adds nothing to the residual (q and k too, for a clean zero). The tensors keep their shape:
// GPT-2's layout ties the head width to C / n_head, so a model with fewer heads per layer is not a GPT-2
// any loader reads; the zeros are structured (whole blocks) rather than scattered.
// Llama with grouped-query attention: a head's k and v rows are shared with its group, so only its own q rows
// and output columns score and are zeroed (the zero output columns alone already remove what it adds).
static void prune_heads(GPT* model, int drop) {
    const GPTConfig* c = &model->config;
    int C = c->C, NH = c->NH, hs = C / NH, QKV = qkv_width(c), parts = is_llama(c) ? 1 : 3;
    Scored* sc = (Scored*)mallocCheck((size_t)NH * sizeof(Scored));
    for (int l = 0; l < c->L; l++) {
        float* qkvw = model->params.qkvw + (size_t)l * QKV * C;
        float* qkvb = param_numel(c, PIDX(qkvb)) ? model->params.qkvb + (size_t)l * QKV : NULL;
        float* pw = model->params.attprojw + (size_t)l * C * C;
        for (int h = 0; h < NH; h++) {
            double s = 0.0;
            for (int part = 0; part < parts; part++)
                for (int r = part * C + h * hs; r < part * C + (h + 1) * hs; r++)
                    for (int i = 0; i < C; i++) s += (double)qkvw[(size_t)r * C + i] * qkvw[(size_t)r * C + i];
            for (int o = 0; o < C; o++)
                for (int i = h * hs; i < (h + 1) * hs; i++) s += (double)pw[(size_t)o * C + i] * pw[(size_t)o * C + i];
            sc[h].score = sqrt(s), sc[h].index = h;
        }
        qsort(sc, (size_t)NH, sizeof *sc, cmp_scored);
        for (int d = 0; d < drop; d++) {
            int h = sc[d].index;
            for (int part = 0; part < parts; part++)
                for (int r = part * C + h * hs; r < part * C + (h + 1) * hs; r++) {
                    memset(qkvw + (size_t)r * C, 0, (size_t)C * sizeof(float));
                    if (qkvb) qkvb[r] = 0.0f;
                }
            for (int o = 0; o < C; o++) memset(pw + (size_t)o * C + h * hs, 0, (size_t)hs * sizeof(float));
        }
    }
    free(sc);
}

// Structured: keeps `keep` MLP neurons in every layer and rebuilds the model with F = keep. Neuron j of a
// layer is row j of fcw, fcb[j] and column j of fcprojw; its score is ||fcw[j,:]|| * ||fcprojw[:,j]|| (how
// much it can read times how much it can write). Kept neurons stay in their original order. Llama: neuron j
// reads with two rows, gate j and up j (rows j and F + j of fcw), both in its score and both kept.
static void prune_neurons(GPT* model, int keep) {
    GPTConfig c = model->config, cn = c;
    int C = c.C, F = mlp_width(&c), llama = is_llama(&c), FU = llama ? 2 * F : F;
    cn.F = keep;
    GPT m;
    gpt_build(&m, cn);
    for (int i = 0; i < NUM_PARAMS; i++)
        if (i != PIDX(fcw) && i != PIDX(fcb) && i != PIDX(fcprojw))
            memcpy(m.params.t[i], model->params.t[i], param_numel(&c, i) * sizeof(float));
    Scored* sc = (Scored*)mallocCheck((size_t)F * sizeof(Scored));
    int* kept = (int*)mallocCheck((size_t)keep * sizeof(int));
    for (int l = 0; l < c.L; l++) {
        const float* fcw = model->params.fcw + (size_t)l * FU * C;
        const float* fcb = llama ? NULL : model->params.fcb + (size_t)l * F;
        const float* pw = model->params.fcprojw + (size_t)l * C * F;
        for (int j = 0; j < F; j++) {
            double a = 0.0, b = 0.0;
            for (int i = 0; i < C; i++) a += (double)fcw[(size_t)j * C + i] * fcw[(size_t)j * C + i];
            for (int i = 0; i < C && llama; i++) a += (double)fcw[(size_t)(F + j) * C + i] * fcw[(size_t)(F + j) * C + i];
            for (int o = 0; o < C; o++) b += (double)pw[(size_t)o * F + j] * pw[(size_t)o * F + j];
            sc[j].score = -sqrt(a * b), sc[j].index = j;  // negated: the largest come first
        }
        qsort(sc, (size_t)F, sizeof *sc, cmp_scored);
        for (int k = 0; k < keep; k++) kept[k] = sc[k].index;
        for (int k = 1; k < keep; k++)  // back to the original order (insertion sort: keep is small)
            for (int q = k; q > 0 && kept[q - 1] > kept[q]; q--) { int t = kept[q]; kept[q] = kept[q - 1]; kept[q - 1] = t; }
        float* nfcw = m.params.fcw + (size_t)l * (llama ? 2 : 1) * keep * C;
        float* nfcb = m.params.fcb + (size_t)l * keep;
        float* npw = m.params.fcprojw + (size_t)l * C * keep;
        for (int k = 0; k < keep; k++) {
            memcpy(nfcw + (size_t)k * C, fcw + (size_t)kept[k] * C, (size_t)C * sizeof(float));
            if (llama) memcpy(nfcw + (size_t)(keep + k) * C, fcw + (size_t)(F + kept[k]) * C, (size_t)C * sizeof(float));
            else nfcb[k] = fcb[kept[k]];
            for (int o = 0; o < C; o++) npw[(size_t)o * keep + k] = pw[(size_t)o * F + kept[k]];
        }
    }
    free(sc);
    free(kept);
    gpt_free(model);
    *model = m;
}

// A model's quality on --data (loss, and accuracy for a class head; NaN without --data), how long that
// evaluation took, and the size of its file.
typedef struct { double loss, acc, seconds; long long bytes; } Quality;
static Quality measure(GPT* model, const Args* a, const char* file) {
    Quality q = {NAN, NAN, 0.0, 0};
    double t0 = now_seconds();
    if (a->data) {
        EvalResult r = evaluate(model, a->data, a->B, a->T, a->max_batches);
        q.loss = r.loss;
        if (model->config.num_classes) q.acc = r.accuracy, free(r.confusion);
    }
    q.seconds = now_seconds() - t0;
    FILE* f = fopen_check(file, "rb");
    q.bytes = file_size(f);
    fclose(f);
    return q;
}

// The before/after table both commands print.
static void print_quality_table(const char* name0, const Quality* q0, const char* name1, const Quality* q1) {
    printf("| model            |      file    | val loss | accuracy | eval ms |\n");
    printf("|------------------|--------------|----------|----------|---------|\n");
    const char* names[2] = {name0, name1};
    const Quality* qs[2] = {q0, q1};
    for (int i = 0; i < 2; i++) {
        char l[16] = "-", c[16] = "-";
        if (!isnan(qs[i]->loss)) snprintf(l, sizeof l, "%.4f", qs[i]->loss);
        if (!isnan(qs[i]->acc)) snprintf(c, sizeof c, "%.4f", qs[i]->acc);
        printf("| %-16s | %9.2f MB | %8s | %8s | %7.0f |\n", names[i], qs[i]->bytes / 1e6, l, c, qs[i]->seconds * 1e3);
    }
}

static void require_plain(const GPT* model, const char* what) {
    const GPTConfig* c = &model->config;
    if (c->lora_r) failf("merge LoRA first: ./train export ... or train without it", "%s: the model has unmerged LoRA", what);
    if (model->q8_memory) failf("start from the fp32 model", "%s: the model is already int8", what);
}

static int cmd_quantize(const Args* a) {
    if (!a->model || !a->out) failf("for example: ./train quantize --model run/model.bin --out run/model_q8.bin", "quantize needs --model and --out");
    GPT model;
    uint64_t rng = 1;
    model_from_args(&model, a, NULL, &rng);
    require_plain(&model, "quantize");
    Quality q0 = measure(&model, a, a->model);
    // the weight error: max |w - q d| over the quantized tensors, relative to the largest |w|
    double maxerr = 0.0, maxw = 0.0;
    for (int i = 0; i < NUM_PARAMS; i++) {
        if (!param_quantizable(i)) continue;
        size_t n = param_numel(&model.config, i);
        int8_t* q = (int8_t*)mallocCheck(n);
        float* d = (float*)mallocCheck(n / Q8_GROUP * sizeof(float) + 4);
        q8_quantize(q, d, model.params.t[i], n);
        for (size_t j = 0; j < n; j++) {
            double w = model.params.t[i][j], e = fabs(w - (double)q[j] * d[j / Q8_GROUP]);
            if (e > maxerr) maxerr = e;
            if (fabs(w) > maxw) maxw = fabs(w);
        }
        free(q);
        free(d);
    }
    gpt_quantize(&model);
    save_checkpoint(&model, a->out, NULL);
    Quality q1 = measure(&model, a, a->out);
    printf("wrote %s: int8 (Q8_0, groups of %d) weights, max |w - q*d| = %.3g (largest |w| %.3g)\n", a->out, Q8_GROUP,
           maxerr, maxw);
    print_quality_table("fp32", &q0, "int8 (Q8_0)", &q1);
    printf("int8 file is %.1f%% of the fp32 file", 100.0 * q1.bytes / q0.bytes);
    if (!isnan(q0.loss)) printf("; val loss changes by %+.2f%% relative", 100.0 * (q1.loss - q0.loss) / q0.loss);
    if (!isnan(q0.acc)) printf(", accuracy by %+.2f points", 100.0 * (q1.acc - q0.acc));
    printf("\n");
    gpt_free(&model);
    return 0;
}

static int cmd_prune(const Args* a) {
    if (!a->model || !a->out || !a->prune)
        failf("for example: ./train prune --model run/model.bin --prune neurons --sparsity 0.5 --out run/pruned.bin",
              "prune needs --model, --prune MODE and --out");
    if (!(a->sparsity >= 0.0f && a->sparsity < 1.0f)) failf("the fraction of weights to remove", "--sparsity %g must be in [0, 1)", a->sparsity);
    int mode = !strcmp(a->prune, "unstructured") ? 0 : !strcmp(a->prune, "layer") ? 1 : !strcmp(a->prune, "heads") ? 2
             : !strcmp(a->prune, "neurons") ? 3 : -1;
    if (mode < 0) failf("modes: unstructured, layer, heads, neurons", "unknown --prune '%s'", a->prune);
    GPT model;
    uint64_t rng = 1;
    model_from_args(&model, a, NULL, &rng);
    require_plain(&model, "prune");
    size_t params0 = num_parameters(&model.config), nz0;
    double sp0 = prunable_sparsity(&model, &nz0);
    Quality q0 = measure(&model, a, a->model);
    const GPTConfig* c = &model.config;
    if (mode <= 1) {
        prune_unstructured(&model, a->sparsity, mode == 1);
    } else if (mode == 2) {
        int drop = (int)(a->sparsity * c->NH);  // whole heads: rounds down
        prune_heads(&model, drop);
        printf("heads: removed %d of %d in every layer\n", drop, c->NH);
    } else {
        int F = mlp_width(c), keep = (int)lrint((1.0 - a->sparsity) * F);
        if (F % 32 == 0 && keep >= 32) keep = (keep + 31) / 32 * 32;  // stays a multiple of 32: int8 and GGUF rows
        if (keep < 1) keep = 1;
        if (keep > F) keep = F;
        if (c->lora_r && (c->lora_targets & (LORA_FC | LORA_FCPROJ | LORA_GATE | LORA_UP)))
            failf("merge LoRA first", "neurons: the model has LoRA on the MLP");
        prune_neurons(&model, keep);
        printf("neurons: kept %d of %d in every layer (F = %d)\n", keep, F, keep);
    }
    size_t nz1;
    prunable_sparsity(&model, &nz1);
    save_checkpoint(&model, a->out, NULL);
    Quality q1 = measure(&model, a, a->out);
    size_t params1 = num_parameters(&model.config);
    // the sparsity reached counts removed neurons too: nonzero block weights left, against the original count
    double total0 = nz0 / (1.0 - sp0 + 1e-300), reached = 1.0 - nz1 / total0;
    printf("wrote %s: block-matrix weights nonzero %zu -> %zu (sparsity %.1f%% -> %.1f%% of the original %.0f), "
           "parameters %zu -> %zu\n", a->out, nz0, nz1, 100 * sp0, 100 * reached, total0, params0, params1);
    char what[64];
    snprintf(what, sizeof what, "%s %.0f%%", a->prune, 100 * a->sparsity);
    print_quality_table("before", &q0, what, &q1);
    gpt_free(&model);
    return 0;
}
