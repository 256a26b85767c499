// multitask.c: multi-task training. One trunk, several heads: every --task KIND:TRAIN[:VAL] is a task with its
// own data, loss weight and head, the trunk (and any LoRA / adapters / prefix) shared by all of them.
//
//   ./train --model base.bin --task cls:sst2_train.ds:sst2_val.ds --task cls:sms_train.ds:sms_val.ds
//           --task lm:text_train.bin --task-weights 1,1,0.5 --task-sampling temperature --task-temp 2
//
// The heads: the model has one classification head cls_w whose K rows are every cls task's classes, task by
// task (task i owns rows [k0_i, k0_i + K_i)); a batch of task i takes its softmax over those rows only, so
// task i's logits and gradients are exactly those of a K_i-class head of its own (model.h runs the slice
// cls_w + k0 * C as a (K_i, C) head). An lm task runs the tied LM head (wte) instead. Everything else (AdamW,
// decay groups, freezing, checkpoints) sees one parameter block, as for a single task.
// The schedule: each optimizer step trains ONE task, drawn by the sampler (as MT-DNN samples a task per
// mini-batch), and its loss is multiplied by the task's weight; gradient accumulation then works within the
// task exactly as for single-task training. The draw for step s is a hash of (--seed, s), so the sequence of
// tasks is the same on every MPI rank and after --resume (where each task's loader is replayed to where the
// interrupted run left it).
// Sampling (n_i = task i's training batches per epoch): proportional p_i = n_i / sum n; temperature
// p_i ~ n_i^(1/T) (T5, Raffel et al. 2020, "temperature-scaled mixing"; mT5 uses alpha = 1/T = 0.3): T = 1 is proportional,
// large T is uniform, so small tasks are seen more often than their size alone would give.
// Checkpoints keep the task table (formats.c: header [24..26]); eval, classify, sample and export choose a
// task with --task-head NAME, and ./train extract writes one task's single-task model.
// Adding a kind (token classification, say): a row in TASK_KINDS and its case in tasks_use_head.

#pragma once
#include "setup.c"   // defines: Args, flag_index, check_range, parse_float_arg, loader.c (DataLoader, evaluate)
#include "report.c"  // defines: Series, series_add, cls_metrics, svg_curves_n

// ---------------------------------------------------------------------------- task specs
// The kinds a --task may name, and the data file each needs (loader.c's DataKind tells a file's kind).
static const struct {
    const char* name;
    DataKind data;
    const char* file;  // what the file must be, for the error message
} TASK_KINDS[] = {
    {"lm", DATA_LM, "a token file (./dataprep text, or llm.c's .bin)"},
    {"cls", DATA_CLS, "a classification example file (./dataprep cls)"},
};
#define NUM_TASK_KINDS ((int)(sizeof TASK_KINDS / sizeof TASK_KINDS[0]))
#define MAX_TASKS 16

typedef struct {
    char name[64];
    int kind;                 // index into TASK_KINDS (== the DataKind of its files)
    char train[1024], val[1024];  // val[0] == 0: no validation data
    float weight;             // the loss of its steps is multiplied by this
    double p;                 // its sampling probability
    int classes;              // cls: K_i, the training file's label count
    DataLoader dl;            // its training batches
    long long steps;          // optimizer steps it has trained (resumed steps included)
    double last_loss;         // its last step's loss (NaN: none yet)
    EvalResult val_result;    // its last validation (count 0: none)
    double val_f1;            // macro F1 of that validation (cls)
    Series val_curve;         // validation loss by step (DIR/curves_tasks.svg)
} Task;

typedef struct {
    int n;                    // 0: single-task training
    Task t[MAX_TASKS];
    uint64_t seed;            // the draws' seed (--seed)
    int current;              // the task of the step being trained
} TaskSet;

// "sst2" from "data/sst2_train.ds": the file name without folder, extension and a trailing _train.
static void task_default_name(char* name, size_t cap, const char* path) {
    const char* base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(name, cap, "%s", base);
    char* dot = strrchr(name, '.');
    if (dot && dot != name) *dot = 0;
    size_t n = strlen(name);
    if (n > 6 && !strcmp(name + n - 6, "_train")) name[n - 6] = 0;
}

// The kind of a data file, as loader_init would see it (-1 with err set when it cannot be opened).
static int task_file_kind(const char* path, char* err, size_t cap) {
    Dataset ds;
    if (dataset_open(&ds, path, err, cap) != 0) return -1;
    int kind = ds.magic != EXAMPLES_MAGIC ? DATA_LM : ds.kind == DS_CLS ? DATA_CLS : DATA_SFT;
    dataset_close(&ds);
    return kind;
}

static const char* const DATA_KIND_WORDS[] = {"a token file (lm)", "a classification file (cls)", "an SFT file (sft)"};

// One spec "[NAME=]KIND:TRAIN[:VAL]" into t, its files checked against the kind before any work starts.
static void task_parse_spec(Task* t, const char* spec) {
    const char* s = spec;
    const char* eq = strchr(s, '=');
    const char* colon = strchr(s, ':');
    if (eq && (!colon || eq < colon)) {  // NAME=
        if (eq == s || eq - s > 63) failf("a task name is 1 to 63 characters, e.g. --task sst2=cls:sst2_train.ds", "--task '%s': bad name", spec);
        snprintf(t->name, sizeof t->name, "%.*s", (int)(eq - s), s);
        s = eq + 1;
        colon = strchr(s, ':');
    }
    if (!colon) failf("write KIND:TRAIN[:VAL], e.g. --task cls:sst2_train.ds:sst2_val.ds", "--task '%s' has no file", spec);
    t->kind = -1;
    for (int k = 0; k < NUM_TASK_KINDS; k++)
        if ((size_t)(colon - s) == strlen(TASK_KINDS[k].name) && !strncmp(s, TASK_KINDS[k].name, (size_t)(colon - s))) t->kind = k;
    if (t->kind < 0) failf("task kinds: lm (token files), cls (classification files)", "--task '%s': unknown kind '%.*s'", spec, (int)(colon - s), s);
    const char* files = colon + 1;
    const char* second = strchr(files, ':');
    size_t ntrain = second ? (size_t)(second - files) : strlen(files);
    if (!ntrain || ntrain >= sizeof t->train || (second && (!second[1] || strlen(second + 1) >= sizeof t->val)))
        failf("write KIND:TRAIN[:VAL]", "--task '%s': empty or too long file name", spec);
    snprintf(t->train, sizeof t->train, "%.*s", (int)ntrain, files);
    if (second) snprintf(t->val, sizeof t->val, "%s", second + 1);
    if (!t->name[0]) task_default_name(t->name, sizeof t->name, t->train);
    for (int f = 0; f < 2; f++) {
        const char* path = f ? t->val : t->train;
        if (!path[0]) continue;
        char err[512];
        int kind = task_file_kind(path, err, sizeof err);
        if (kind < 0) failf("datasets come from ./dataprep (text, cls) or llm.c's data scripts", "--task '%s': %s", spec, err);
        if (kind != (int)TASK_KINDS[t->kind].data)
            fail_at(path, "the kind before the first ':' says what the file must be: lm a token file, cls a classification file",
                    "--task %s:... needs %s, but this is %s", TASK_KINDS[t->kind].name, TASK_KINDS[t->kind].file, DATA_KIND_WORDS[kind]);
    }
}

// Whether argv holds any multi-task spec (a --task value with a ':'): check_flags_apply's --val checks use it.
static int tasks_given(const Args* a, int with_val) {
    for (int i = 1; i + 1 < a->argc; i++)
        if (!strcmp(a->argv[i], "--task") && strchr(a->argv[i + 1], ':')) {
            const char* v = strchr(strchr(a->argv[i + 1], ':') + 1, ':');
            if (!with_val || (v && v[1])) return 1;
        }
    return 0;
}

// Every --task KIND:TRAIN[:VAL] of the command line (the flag table keeps only the last value of a flag, so
// they are read from argv), --task-weights, and the flags that cannot go with them. All before any work.
static void tasks_parse(TaskSet* ts, const Args* a) {
    memset(ts, 0, sizeof *ts);
    ts->seed = a->seed;
    int plain = 0;
    for (int i = 1; i + 1 < a->argc; i++) {
        if (strcmp(a->argv[i], "--task")) continue;
        const char* v = a->argv[++i];
        if (!strchr(v, ':')) { plain = 1; continue; }
        if (ts->n == MAX_TASKS) failf("merge some tasks' data", "more than %d --task specs", MAX_TASKS);
        Task* t = &ts->t[ts->n++];
        task_parse_spec(t, v);
        t->weight = 1.0f;
        t->last_loss = NAN;
        protect_input(t->train, "--task");  // no output of this run may replace its data
        if (t->val[0]) protect_input(t->val, "--task");
        for (int k = 0; k + 1 < ts->n; k++)
            if (!strcmp(ts->t[k].name, t->name))
                failf("name them: --task NAME=KIND:TRAIN[:VAL]", "two tasks are called '%s'", t->name);
    }
    if (!ts->n) {
        static const char* const mt_flags[] = {"--task-weights", "--task-sampling", "--task-temp"};
        for (int k = 0; k < 3; k++)
            if (flag_given(a, mt_flags[k])) failf("give the tasks: --task KIND:TRAIN[:VAL] (repeated)", "%s is for multi-task training", mt_flags[k]);
        return;
    }
    if (plain) failf("give every task as KIND:TRAIN[:VAL]", "--task lm|cls|sft checks --train's kind; it cannot be mixed with multi-task specs");
    static const char* const refused[][2] = {{"--train", "give the data as --task KIND:TRAIN[:VAL]"}, {"--val", "give each task's validation file as --task KIND:TRAIN:VAL"},
        {"--test", "evaluate each task's test file after training: ./train eval --task-head NAME --data FILE"},
        {"--class-weights", "class weights are not per task yet: leave them out"}, {"--replay", "rehearsal of a multi-task run is not supported yet"}};
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++)
        if (flag_given(a, refused[k][0])) failf(refused[k][1], "%s cannot be used with --task KIND:TRAIN specs", refused[k][0]);
    if (a->task_weights) {
        const Flag* f = &FLAGS[flag_index("--task-weights")];
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", a->task_weights);
        int k = 0;
        for (char* s = strtok(buf, ","); s; s = strtok(NULL, ",")) {
            float w = parse_float_arg("--task-weights", s);
            check_range(f, w, s);
            if (k < ts->n) ts->t[k].weight = w;
            k++;
        }
        if (k != ts->n) failf("give one weight per --task, in order", "--task-weights has %d values for %d tasks", k, ts->n);
    }
}

// ---------------------------------------------------------------------------- heads
// Points the model's next forward at task t's head.
static void tasks_use_head(GPT* model, int t) {
    const TaskHead* th = &model->tasks[t];
    model->head_lm = th->kind == DATA_LM;
    model->head_k0 = th->nk ? th->k0 : 0;
    model->head_nk = th->nk;
}

// The class head for the tasks (not on resume, where the checkpoint has it): K = the sum of every cls task's
// classes, and the LM head kept running where there is an lm task. Before setup_finetuning, which then adds
// the method's tensors to this config.
static void tasks_setup_head(TaskSet* ts, GPT* model, uint64_t* rng) {
    GPTConfig c = model->config;
    if (c.num_classes || model->num_tasks)
        failf("start multi-task training from a base model (an LM), or resume the multi-task run",
              "the model already has a %d-class head", c.num_classes);
    int K = 0, lm = 0;
    for (int i = 0; i < ts->n; i++) {
        Task* t = &ts->t[i];
        if (t->kind == DATA_CLS) {
            Dataset ds;
            char err[512];
            if (dataset_open(&ds, t->train, err, sizeof err) != 0) failf(NULL, "%s", err);
            t->classes = ds.num_labels;
            dataset_close(&ds);
            if (t->classes < 2) fail_at(t->train, "classification needs at least 2 classes", "%d labels", t->classes);
            K += t->classes;
        } else {
            lm = 1;
        }
    }
    c.num_classes = K;
    c.lm_head_too = lm && K;
    if (memcmp(&c, &model->config, sizeof c)) gpt_set_peft(model, c, rng);
}

// After setup_finetuning (whose rebuilds start from an empty table): the task table and every class name,
// task by task. On resume the checkpoint's table must be the one the flags describe.
static void tasks_attach(TaskSet* ts, GPT* model, int resumed) {
    if (resumed) {
        int ok = model->num_tasks == ts->n;
        for (int i = 0; ok && i < ts->n; i++)
            ok = !strcmp(model->tasks[i].name, ts->t[i].name) && model->tasks[i].kind == ts->t[i].kind;
        if (!ok) failf("resume with the same --task specs, in the same order", "the checkpoint's tasks are not the ones on the command line");
        for (int i = 0; i < ts->n; i++) ts->t[i].classes = model->tasks[i].nk;
        return;
    }
    int K = model->config.num_classes, k0 = 0;
    model->tasks = (TaskHead*)callocCheck((size_t)ts->n, sizeof(TaskHead));
    model->num_tasks = ts->n;
    if (K) model->label_names = (char(*)[256])callocCheck((size_t)K, 256);
    for (int i = 0; i < ts->n; i++) {
        TaskHead* th = &model->tasks[i];
        snprintf(th->name, sizeof th->name, "%s", ts->t[i].name);
        th->kind = ts->t[i].kind;
        if (th->kind != DATA_CLS) continue;
        th->k0 = k0, th->nk = ts->t[i].classes;
        DataLoader dl;
        loader_init(&dl, ts->t[i].train, 1, 1 << 30, 0, 1);  // (T: no example counts as cut)
        char(*names)[256] = loader_label_names(&dl);
        for (int k = 0; k < th->nk; k++)  // a file without names: the class ids
            if (names) snprintf(model->label_names[k0 + k], 256, "%s", names[k]);
            else snprintf(model->label_names[k0 + k], 256, "%d", k);
        free(names);
        loader_free(&dl);
        k0 += th->nk;
    }
}

// ---------------------------------------------------------------------------- data and sampling
// Task t's training batches: the first task shuffles with the single-task seed, so one task is a plain run.
static uint64_t task_loader_seed(uint64_t seed, int t) { return (seed ^ 0x9E3779B97F4A7C15ull) + (uint64_t)t * 0x632BE59BD9B4E019ull; }

// Opens every task's loader (global batches of B * ranks rows), checks its files against its head, and sets
// the sampling probabilities.
static void tasks_open(TaskSet* ts, GPT* model, const Args* a, int B_global) {
    double z = 0.0;
    int temperature = !strcmp(a->task_sampling, "temperature");
    for (int i = 0; i < ts->n; i++) {
        Task* t = &ts->t[i];
        loader_init(&t->dl, t->train, B_global, a->T, a->shuffle, task_loader_seed(a->seed, i));
        tasks_use_head(model, i);
        check_data_matches_model(&t->dl, model);
        if (t->val[0]) {
            DataLoader vl;
            loader_init(&vl, t->val, a->B, a->T, 0, 1);
            check_data_matches_model(&vl, model);
            loader_free(&vl);
        }
        t->p = temperature ? pow((double)t->dl.num_batches, 1.0 / a->task_temp) : (double)t->dl.num_batches;
        z += t->p;
    }
    for (int i = 0; i < ts->n; i++) ts->t[i].p /= z;
}

// The task of step s: u = a uniform number hashed from (seed, s) (splitmix64), then the first task whose
// cumulative probability passes u. No state, so every rank and every resumed run draws the same tasks.
static int tasks_draw(const TaskSet* ts, uint64_t s) {
    uint64_t z = ts->seed ^ 0x7461736B73ull;  // "tasks"
    z += (s + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    double u = (double)(z >> 11) * 0x1.0p-53, cum = 0.0;
    for (int i = 0; i < ts->n; i++) {
        cum += ts->t[i].p;
        if (u < cum) return i;
    }
    return ts->n - 1;  // u within rounding of 1
}

// Step `step`'s task: the model's head is set to it; returns its loader.
static DataLoader* tasks_step_loader(TaskSet* ts, GPT* model, int step) {
    int t = tasks_draw(ts, (uint64_t)step);
    ts->current = t;
    ts->t[t].steps++;
    tasks_use_head(model, t);
    return &ts->t[t].dl;
}

// On resume: every task's loader moved on by the batches the first `steps` steps took from it (the same draws,
// accum batches a step), so the run continues with the batches the uninterrupted run would have read.
static void tasks_fast_forward(TaskSet* ts, long long steps, int accum, int B_global, int T, int V) {
    Batch b;
    batch_alloc(&b, B_global, T);
    for (long long s = 0; s < steps; s++) {
        Task* t = &ts->t[tasks_draw(ts, (uint64_t)s)];
        t->steps++;
        for (int k = 0; k < accum; k++) loader_next(&t->dl, b.x, b.y, b.len, b.lab, V);
    }
    batch_free(&b);
}

static double tasks_weight(const TaskSet* ts) { return ts->t[ts->current].weight; }
static int tasks_num_batches(const TaskSet* ts) {  // an epoch of every task
    size_t n = 0;
    for (int i = 0; i < ts->n; i++) n += ts->t[i].dl.num_batches;
    return (int)(n < INT32_MAX ? n : INT32_MAX);
}
static const char* tasks_first_val(const TaskSet* ts) {
    for (int i = 0; i < ts->n; i++)
        if (ts->t[i].val[0]) return ts->t[i].val;
    return NULL;
}

// ---------------------------------------------------------------------------- validation
// Every task with validation data, each with its own head. Returns the runs' summary: loss = the mean of the
// tasks' losses weighted by their loss weights (the training objective's mix), accuracy = the mean over cls
// tasks (NaN without one); *metric is --metric of that summary (f1: the mean of the cls tasks' macro F1).
static EvalResult tasks_validate(TaskSet* ts, GPT* model, int B, int T, int max_batches, const char* metric_name,
                                 double step, double* metric) {
    double lw = 0.0, wsum = 0.0, acc = 0.0, f1 = 0.0;
    int ncls = 0;
    size_t count = 0;
    for (int i = 0; i < ts->n; i++) {
        Task* t = &ts->t[i];
        if (!t->val[0]) continue;
        tasks_use_head(model, i);
        t->val_result = evaluate(model, t->val, B, T, max_batches);
        series_add(&t->val_curve, step, t->val_result.loss);
        lw += t->weight * t->val_result.loss, wsum += t->weight;
        count += t->val_result.count;
        if (t->kind == DATA_CLS) {
            t->val_f1 = cls_metrics(t->val_result.confusion, t->classes).macro_f1;
            acc += t->val_result.accuracy, f1 += t->val_f1, ncls++;
        }
        free(t->val_result.confusion);
        t->val_result.confusion = NULL;
    }
    EvalResult r = {lw / wsum, ncls ? acc / ncls : NAN, count, NULL};
    *metric = !strcmp(metric_name, "accuracy") ? r.accuracy : !strcmp(metric_name, "f1") ? (ncls ? f1 / ncls : NAN) : r.loss;
    return r;
}

// ---------------------------------------------------------------------------- log, console, report
// The step's task in the JSONL record, and on validation steps every task's results:
//   "task": "sst2", "tasks": {"sst2": {"val_loss": ..., "val_accuracy": ..., "val_f1": ...}, "text": {...}}
static void tasks_log(const TaskSet* ts, FILE* f, int is_eval) {
    fprintf(f, ", \"task\": \"%s\"", ts->t[ts->current].name);
    if (!is_eval) return;
    fprintf(f, ", \"tasks\": {");
    int first = 1;
    for (int i = 0; i < ts->n; i++) {
        const Task* t = &ts->t[i];
        if (!t->val[0]) continue;
        fprintf(f, "%s\"%s\": {\"val_loss\": %.6f", first ? "" : ", ", t->name, t->val_result.loss);
        if (t->kind == DATA_CLS) fprintf(f, ", \"val_accuracy\": %.6f, \"val_f1\": %.6f", t->val_result.accuracy, t->val_f1);
        fprintf(f, "}");
        first = 0;
    }
    fprintf(f, "}");
}

// The console's validation line: each task's loss (and accuracy).
static void tasks_print_val(const TaskSet* ts) {
    printf("   tasks:");
    for (int i = 0; i < ts->n; i++) {
        const Task* t = &ts->t[i];
        if (!t->val[0]) continue;
        printf(" %s %.4f", t->name, t->val_result.loss);
        if (t->kind == DATA_CLS) printf(" acc %.4f", t->val_result.accuracy);
        printf(";");
    }
    printf("\n");
}

static void tasks_describe(const TaskSet* ts) {
    for (int i = 0; i < ts->n; i++) {
        const Task* t = &ts->t[i];
        printf("task %d: %s (%s) %s%s%s, %zu batches per epoch, weight %g, p %.4f", i, t->name, TASK_KINDS[t->kind].name,
               t->train, t->val[0] ? ", val " : "", t->val, t->dl.num_batches, (double)t->weight, t->p);
        if (t->kind == DATA_CLS) printf(", %d classes", t->classes);
        if (t->dl.num_cut) printf(", %zu of %zu examples cut to --seq", t->dl.num_cut, t->dl.num_items);
        printf("\n");
    }
}

// The report's task table (report.md, "## Tasks"), and DIR/curves_tasks.svg: each task's validation loss.
static void tasks_report(const TaskSet* ts, const GPT* model, const char* out, char* md, size_t cap) {
    size_t n = (size_t)snprintf(md, cap, "| task | kind | classes (rows of cls_w) | weight | p | steps | cut by --seq | val loss | val accuracy | val macro F1 |\n"
                                         "|---|---|---|---|---|---|---|---|---|---|\n");
    const Series* curves[MAX_TASKS];
    const char* names[MAX_TASKS];
    int nc = 0;
    for (int i = 0; i < ts->n && n < cap; i++) {
        const Task* t = &ts->t[i];
        const TaskHead* th = &model->tasks[i];
        char rows[48] = "LM head (wte)", acc[32] = "", f1[32] = "", loss[32] = "";
        if (t->kind == DATA_CLS) snprintf(rows, sizeof rows, "%d (%d-%d)", th->nk, th->k0, th->k0 + th->nk - 1);
        if (t->val_result.count) snprintf(loss, sizeof loss, "%.4f", t->val_result.loss);
        if (t->val_result.count && t->kind == DATA_CLS) snprintf(acc, sizeof acc, "%.4f", t->val_result.accuracy), snprintf(f1, sizeof f1, "%.4f", t->val_f1);
        char cut[48] = "";
        if (t->kind != DATA_LM) snprintf(cut, sizeof cut, "%zu of %zu", t->dl.num_cut, t->dl.num_items);
        n += (size_t)snprintf(md + n, cap - n, "| %s | %s | %s | %g | %.4f | %lld | %s | %s | %s | %s |\n", t->name,
                              TASK_KINDS[t->kind].name, rows, (double)t->weight, t->p, t->steps, cut, loss, acc, f1);
        if (t->val_curve.n) curves[nc] = &t->val_curve, names[nc++] = t->name;
    }
    if (!out || !nc) return;
    char path[1100];
    snprintf(path, sizeof path, "%s/curves_tasks.svg", out);
    svg_curves_n(path, "validation loss per task", curves, names, nc);
}

static void tasks_free(TaskSet* ts) {
    for (int i = 0; i < ts->n; i++) {
        loader_free(&ts->t[i].dl);
        free(ts->t[i].val_curve.x), free(ts->t[i].val_curve.y);
    }
    ts->n = 0;
}

// ---------------------------------------------------------------------------- one task of a multi-task model
// --task-head NAME: makes the model task NAME's single-task model, in place. A cls task keeps its rows of
// cls_w (and their class names) as a K_i-class head; an lm task drops the class head. The trunk and the
// method's tensors are kept. A single-task model without --task-head is left as it is.
static void tasks_select(GPT* model, const char* name) {
    if (!model->num_tasks) {
        if (name) failf("--task-head is for a model trained with several --task KIND:TRAIN", "the model has no tasks (asked for '%s')", name);
        return;
    }
    char list[1024] = "";
    int t = -1;
    for (int i = 0; i < model->num_tasks; i++) {
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", model->tasks[i].name);
        if (name && !strcmp(name, model->tasks[i].name)) t = i;
    }
    if (t < 0 && !name) failf(list, "the model is a multi-task model: choose its task with --task-head NAME");
    if (t < 0) failf(list, "the model has no task '%s': --task-head takes one of its tasks", name);
    if (model->q8_memory) failf("extract the task from the fp32 model, then quantize", "cannot choose a task of an int8 model");
    TaskHead th = model->tasks[t];
    GPTConfig c = model->config;
    c.num_classes = th.nk;
    c.lm_head_too = 0;
    GPT m;
    gpt_build(&m, c);
    for (int i = 0; i < NUM_PARAMS; i++)
        if (i != PIDX(cls_w)) memcpy(m.params.t[i], model->params.t[i], param_numel(&c, i) * sizeof(float));
    memcpy(m.params.cls_w, model->params.cls_w + (size_t)th.k0 * c.C, (size_t)th.nk * c.C * sizeof(float));
    memcpy(m.trainable, model->trainable, (size_t)NUM_PARAMS * c.L);
    memcpy(m.lr_scale, model->lr_scale, (size_t)NUM_PARAMS * c.L * sizeof(float));
    if (th.nk && model->label_names) {
        m.label_names = (char(*)[256])mallocCheck((size_t)th.nk * 256);
        memcpy(m.label_names, model->label_names + th.k0, (size_t)th.nk * 256);
    }
    gpt_free(model);
    *model = m;
}
