// train.c: the trainer's commands and main. The training loop (prepare the run, one optimizer step, evaluate
// and track the best, log, checkpoint, finish) over a Backend that does the arithmetic (the CPU's here,
// train.cu's on a GPU), then eval, sample, classify, serve (serve.c), sweep, export and bench, the command table
// and main.
// Everything they use is in the files included below; README.md's file table says which file holds what.
//
//   ./train --init 4,4,128 --vocab 256 --train data_train.bin --val data_val.bin --steps 500 --out run
//   ./train eval --model run/model.bin --data data_val.bin
//   ./train sample --model run/model.bin --tokens "12 43 7"
//   ./train classify --model run/best.bin --tokenizer bytes < lines.txt
//
// test_gpt.c #includes this file with TESTING defined, which leaves out main(); train.cu does the same.
#define _POSIX_C_SOURCE 200809L  // for getpid, clock_gettime

#include <sys/stat.h>  // defines: mkdir (the sweep's folders)
#include <sys/wait.h>  // defines: waitpid (the sweep runs ./train)
#include "compress.c"  // defines: cmd_quantize, cmd_prune
#include "card.c"      // defines: sha256, write_model_card, write_export_card (DIR/README.md)
#include "continual.c" // defines: Replay, replay_mix (rehearsal), Ewc, ewc_fisher, ewc_add_grad (EWC)
#include "report.c"    // defines: metrics, error analysis, plots, write_report
#include "tokcls.c"    // defines: tok_score (entity P/R/F1, token accuracy, errors.md of a token-classification model)
#include "setup.c"     // defines: Args, parse_args, model_from_args, setup_finetuning
#include "onnx.c"      // defines: export_onnx, dump_logits
#include "multitask.c" // defines: TaskSet, tasks_parse, tasks_step_loader, tasks_validate, tasks_select (multi-task)
#include "genmetrics.h" // defines: bleu_corpus, rouge_l, eval_generate (eval --generate)

// ---------------------------------------------------------------------------- the training loop
// One training run, as a student would step through it:
//   run_prepare   the model (loaded, grown, given its method's tensors and trainable set), the data, every
//                 check that can fail before any work, the run folder and the lines that describe the run
//   run_train     the loop: one optimizer step, then evaluate and track the best model, log, checkpoint
//   run_finish    the final files, the test evaluation of the best model, the report
// The arithmetic of a step goes through a Backend: the CPU's (below) or the GPU's (train.cu), so both devices
// run this same loop, with the same logs, checkpoints and report.
static const char* const KIND_NAMES[] = {"lm", "cls", "sft", "tok"};

typedef struct {
    const Args* a;
    GPT model;               // the model (on the GPU: the host copy that checkpoints are written from)
    TrainState state;        // what a checkpoint saves besides the model: step, RNG, data position, best so far
    DataLoader dl;           // reads global batches of N*B rows; this rank trains on rows r*B .. r*B+B-1
    Batch* micro;            // (accum) this rank's micro-batches of the current step
    Batch global;            // the global batch the loader reads (N*B rows)
    size_t zlo, zhi;         // ZeRO-1: this rank's range of the packed trainable floats
    size_t ntrain;           // trainable parameters
    int steps, first;        // the last step, and the one this invocation started at (> 0 on resume)
    int higher_better;       // --metric: accuracy and f1 grow, val_loss shrinks
    int stopped_early;
    uint8_t* pruned;         // --keep-sparsity: 1 where a prunable weight was zero at the start
    float* best;             // the best parameters so far (by --metric on --val), when --early-stop or --test
    FILE* log;               // the JSONL log, or NULL
    char log_path[1100];
    int lock_fd;             // DIR/.lock, held while the run lives (common.h lock_folder)
    Series train_curve, val_curve;
    AdamWConfig opt;
    double t_start, t_steps, last_loss;
    Replay replay;           // --replay: rows of the earlier data mixed into every batch (replay.rows 0: off)
    Ewc ewc;                 // --ewc: the penalty's F and theta* (ewc.lambda 0: off)
    TaskSet tasks;           // multi-task: the --task KIND:TRAIN[:VAL] specs, their loaders and results (tasks.n 0: off)
} Run;

// What a step needs from the device that does its arithmetic. ctx is the device's model.
typedef struct {
    void* ctx;
    void (*zero_grad)(void* ctx);
    // forward and backward of one micro-batch, its loss weighted by share (of the step's targets); returns
    // the batch's mean loss
    float (*forward_backward)(void* ctx, DataKind kind, const Batch* b, float share, uint64_t dropout_seed);
    // after the micro-batches: sum gradients over ranks, clip, AdamW (r->opt, at step t, 1-based); returns the
    // gradient norm before clipping
    float (*update)(void* ctx, Run* r, int t);
    EvalResult (*evaluate)(void* ctx, const GPT* host, const char* path, int B, int T, int max_batches);
    void (*to_host)(void* ctx, GPT* host);  // copy weights and AdamW state into host (CPU: they are there)
    // what this device cannot do with these flags and this model (NULL: everything asked is supported)
    const char* (*unsupported)(const Args* a, const GPT* model);
} Backend;

// ---------------------------------------------------------------------------- the CPU backend
static void cpu_zero_grad(void* ctx) { gpt_zero_grad((GPT*)ctx); }

static float cpu_forward_backward(void* ctx, DataKind kind, const Batch* b, float share, uint64_t dropout_seed) {
    GPT* model = (GPT*)ctx;
    model->training = 1;  // dropout on, with this micro-batch's seed (masks are recomputed from it in backward)
    model->dropout_seed = dropout_seed;
    batch_run(model, kind, b);
    model->loss_scale = share;
    if (isfinite(model->mean_loss)) gpt_backward(model);
    model->loss_scale = 1.0f;
    model->training = 0;
    return model->mean_loss;
}

static float cpu_update(void* ctx, Run* r, int t) {
    GPT* model = (GPT*)ctx;
    if (dist_world > 1) dist_sum_floats(model->grads_memory, model->num_trainable);  // each rank's gradient is
    // its share of the global mean: summed, they are the gradient of the global batch
    float norm = gpt_clip_grad_norm(model, r->a->grad_clip);
    gpt_adamw_update_range(model, &r->opt, t, r->zlo, r->zhi);
    if (r->a->zero) {  // every rank updated its shard; gather the updated parameters everywhere. The gradient
        // buffer is free until the next backward, so it carries them (packed) instead of a second copy.
        gpt_pack_trainable(model, model->grads_memory, 1);
        dist_allgather_ranges(model->grads_memory, model->num_trainable);
        gpt_pack_trainable(model, model->grads_memory, 0);
    }
    return norm;
}

static EvalResult cpu_evaluate(void* ctx, const GPT* host, const char* path, int B, int T, int max_batches) {
    (void)host;
    return evaluate((GPT*)ctx, path, B, T, max_batches);
}
static void cpu_to_host(void* ctx, GPT* host) { (void)ctx, (void)host; }

static Backend cpu_backend(GPT* model) {
    Backend b = {model, cpu_zero_grad, cpu_forward_backward, cpu_update, cpu_evaluate, cpu_to_host, NULL};
    return b;
}

// ---------------------------------------------------------------------------- preparing a run
// The model and the data, checked against each other and the flags.
static void run_load(Run* r, const Args* a) {
    uint64_t rng = a->seed ? a->seed : 1;
    model_from_args(&r->model, a, &r->state, &rng);
    GPT* model = &r->model;
    const char* train = r->tasks.n ? r->tasks.t[0].train : a->train;  // multi-task: r->dl reads task 0's file
    if (!train) failf("give --train FILE (a dataset from ./dataprep)", "no training data");
    if (a->T > model->config.maxT) failf("use a smaller --seq", "--seq %d is longer than the model's maxT=%d", a->T, model->config.maxT);
    if (a->resume && (r->state.B != a->B || r->state.T != a->T))
        failf("resume with the same --batch and --seq as the original run", "%s: the run used B=%lld T=%lld, flags say B=%d T=%d",
              a->resume, (long long)r->state.B, (long long)r->state.T, a->B, a->T);
    if (!a->resume) r->state.rng = rng;
    DataLoader* dl = &r->dl;
    loader_init(dl, train, a->B * dist_world, a->T, a->shuffle, a->seed ^ 0x9E3779B97F4A7C15ull);
    if (a->task && !r->tasks.n && strcmp(a->task, KIND_NAMES[dl->kind]))
        failf("--task must match the data: token files are lm, dataprep cls files cls, dataprep sft files sft",
              "--task %s but %s is a %s dataset", a->task, a->train, KIND_NAMES[dl->kind]);
    if (a->resume) {  // put the loader back where the interrupted run left it
        dl->rng = r->state.data_epoch_rng;
        loader_make_order(dl);
        dl->epoch = r->state.data_epoch;
        dl->rng = r->state.data_next_rng;
        dl->pos = r->state.data_pos;
    } else {
        if (dl->ds.vocab_size > model->config.V && model->q8_memory)
            failf("add the tokens to the fp32 model (train it once on this data), then quantize",
                  "%s has %d token ids but the int8 model only %d", train, dl->ds.vocab_size, model->config.V);
        if (dl->ds.vocab_size > model->config.V) {  // the data has tokens the model does not (dataprep --add-token)
            printf("growing the vocabulary from %d to %d for %s: the new embedding rows start as the mean of the others\n",
                   model->config.V, dl->ds.vocab_size, train);
            gpt_grow_vocab(model, dl->ds.vocab_size);
        }
        if (r->tasks.n) tasks_setup_head(&r->tasks, model, &rng);  // K = every cls task's classes
        setup_finetuning(model, a, dl, &rng);
    }
    if (r->tasks.n) {  // each task's files against its own head
        tasks_attach(&r->tasks, model, a->resume != NULL);
        tasks_open(&r->tasks, model, a, a->B * dist_world);
        if (a->resume) tasks_fast_forward(&r->tasks, (long long)r->state.step, a->accum, a->B * dist_world, a->T, model->config.V);
    }
    if (!r->tasks.n && (dl->kind == DATA_CLS || dl->kind == DATA_TOK) && !model->label_names && head_labels(&model->config) == dl->ds.num_labels)
        model->label_names = loader_label_names(dl);  // the head's classes are the training data's
    if (!r->tasks.n) check_data_matches_model(dl, model);
    const char* other[2] = {a->val, a->test};  // validation and test files: the same checks, before any work
    for (int k = 0; k < 2; k++) {
        if (!other[k]) continue;
        DataLoader vl;
        loader_init(&vl, other[k], a->B, a->T, 0, 1);
        check_data_matches_model(&vl, model);
        if (k == 0 && vl.kind != dl->kind) failf("give validation data of the same kind as --train", "%s and %s are different kinds of dataset", a->train, a->val);
        loader_free(&vl);
    }
    if (model->q8_memory && !strcmp(a->method, "full"))
        failf("int8 weights are frozen: train LoRA on the int8 base (--method lora), or fine-tune the fp32 model",
              "%s is an int8 model and --method is full", a->model ? a->model : "the model");
}

// The recipe around the model: sparsity mask, LR scales, losses, the step count, early stopping.
static void run_recipe(Run* r, const Args* a) {
    GPT* model = &r->model;
    const GPTConfig* c = &model->config;
    if (a->keep_sparsity) {  // where the prunable matrices are zero now, they stay zero
        size_t n = 0, j = 0;
        for (int i = 0; i < NUM_PARAMS; i++) n += PARAM_TABLE[i].prunable ? param_numel(c, i) : 0;
        r->pruned = (uint8_t*)mallocCheck(n);
        for (int i = 0; i < NUM_PARAMS; i++) {  // the prunable tensors in table order, one mask byte a weight
            if (!PARAM_TABLE[i].prunable) continue;
            const float* w = model->params.t[i];
            for (size_t e = 0, ne = param_numel(c, i); e < ne; e++) r->pruned[j++] = w[e] == 0.0f;
        }
    }
    set_layer_decay(model, a->layer_decay);
    model->label_smoothing = a->label_smoothing;
    model->lora_dropout = a->lora_dropout;
    model->dropout = a->dropout;
    if (a->class_weights) {
        if (!c->num_classes) failf("class weights are for classification data", "--class-weights given for a %s dataset", KIND_NAMES[r->dl.kind]);
        model->class_weights = parse_class_weights(a->class_weights, &r->dl, c->num_classes);
    }
    size_t epoch = r->tasks.n ? (size_t)tasks_num_batches(&r->tasks) : r->dl.num_batches;  // multi-task: every task's batches
    r->steps = a->epochs > 0 ? (int)ceil(a->epochs * epoch / a->accum) : a->steps;
    r->higher_better = strcmp(a->metric, "val_loss") != 0;  // the metric must exist for this task, and needs --val
    if (r->higher_better && !head_labels(c))
        failf("accuracy and f1 are classification metrics; use --metric val_loss", "--metric %s for a %s dataset", a->metric, KIND_NAMES[r->dl.kind]);
    if ((a->early_stop || a->test) && !a->val && !tasks_first_val(&r->tasks)) failf("give --val FILE to choose the best model on", "--early-stop/--test need validation data");
    r->opt = adamw_config(a);
}

// On resume, the log keeps the steps the checkpoint covers and drops the rest: a run killed after logging
// step N but before checkpointing it redoes step N, which must not appear twice (nor the end-of-run lines of
// a run that is being continued).
static void trim_log(const char* path, long long last_step) {
    FILE* f = fopen(path, "rb");
    if (!f) return;  // no log yet: nothing to keep
    SafeWriter w;
    safe_open(&w, path);
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        long long step;
        if (sscanf(line, "{\"step\": %lld", &step) == 1 && step <= last_step) fputs(line, w.f);
    }
    fclose(f);
    safe_close(&w);
}

// On resume, the flags that differ from the ones the run was started with (the first line of
// DIR/command.txt) are named, so a resume with another run's flags, or a changed --lr, is never silent.
// Flags that only steer the continuation (--resume, --stop-at, --steps, --print-every) are not compared.
static void compare_resume_flags(const Args* a, const char* dir) {
    char path[1100], line[8192];
    snprintf(path, sizeof path, "%s/command.txt", dir);
    FILE* f = fopen(path, "r");
    if (!f) return;
    int got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!got) return;
    line[strcspn(line, "\n")] = 0;
    char* words[512];
    int n = 0;
    for (char* w = strtok(line, " "); w && n < 512; w = strtok(NULL, " ")) words[n++] = w;
    static const char* const skip[] = {"--resume", "--stop-at", "--steps", "--print-every"};
    for (int i = 0; i < NUM_FLAGS; i++) {
        const Flag* fl = &FLAGS[i];
        int skipped = 0;
        for (int k = 0; k < 4; k++) skipped |= !strcmp(fl->name, skip[k]);
        if (skipped || !strcmp(fl->group, "help")) continue;
        const char *then = NULL, *now = NULL;
        for (int k = 1; k < n; k++)
            if (!strcmp(words[k], fl->name)) then = fl->value ? (k + 1 < n ? words[k + 1] : "") : "1";
        for (int k = 1; k < a->argc; k++)
            if (!strcmp(a->argv[k], fl->name)) now = fl->value ? (k + 1 < a->argc ? a->argv[k + 1] : "") : "1";
        if ((then || now) && (!then || !now || strcmp(then, now)))
            printf("note: resuming with %s %s; the run in %s was started with %s %s\n", fl->name, now ? now : "(default)", dir,
                   fl->name, then ? then : "(default)");
    }
}

// The run folder: created if missing, locked for this run's life (a second run into it stops with the first
// one's pid), temp files of a killed run removed; the log opened (trimmed, then appended, on resume); the
// command line saved.
static void run_folder(Run* r, const Args* a) {
    r->lock_fd = -1;
    if (dist_rank != 0) return;
    if (a->out) {
        make_dirs(a->out);
        r->lock_fd = lock_folder(a->out, "wait for that run to finish, or give this one another --out");
        remove_stale_temps(a->out);
    }
    if (a->resume) compare_resume_flags(a, a->resume);
    if (a->out && !a->log) snprintf(r->log_path, sizeof r->log_path, "%s/log.jsonl", a->out);  // the run folder's log
    else if (a->log) snprintf(r->log_path, sizeof r->log_path, "%s", a->log);
    if (r->log_path[0]) {
        if (a->resume) trim_log(r->log_path, (long long)r->state.step);
        r->log = open_stream_output(r->log_path, a->resume != NULL);
    }
    if (a->out && a->argv) {  // the config this run used: its command line
        char path[1100];
        snprintf(path, sizeof path, "%s/command.txt", a->out);
        FILE* f = open_stream_output(path, a->resume != NULL);
        for (int i = 0; i < a->argc; i++) fprintf(f, "%s%s", a->argv[i], i + 1 < a->argc ? " " : "\n");
        check_stream(f, path);
        if (fclose(f) != 0) fail_at(path, "check free disk space", "write failed");
    }
}

// Whether other work holds the cores our threads need: fewer than `threads` of the `ncpu` cores are free of
// other runnable tasks. Then spinning OpenMP threads (libgomp's default wait policy) fight the other processes
// at every barrier: on this project's 2-core machine a 2-thread step ran 6-8x slower under load ~8 than with
// OMP_WAIT_POLICY=passive, and 1.4x slower beside one busy process (README "Two threads under load"); on an
// idle machine passive cost 4.5%, so the policy stays the user's choice and the run only says so.
static int machine_busy(int others_running, long ncpu, int threads) {
    return threads > 1 && others_running > 0 && ncpu - others_running < threads;
}
// The default thread count (OMP_NUM_THREADS unset): the cores other work leaves free, at least 1. One thread
// per free core never waits at a barrier for a descheduled twin, so a default run on a busy machine is no slower
// than OMP_NUM_THREADS=1 (on the 2-core machine beside one busy process: 1 thread, not 2 fighting for one core).
static int default_threads(int others_running, long ncpu, int threads) {
    if (!machine_busy(others_running, ncpu, threads)) return threads;
    return ncpu - others_running < 1 ? 1 : (int)(ncpu - others_running);
}
// Runnable tasks that are not ours, now: /proc/loadavg's "running/total" field minus this process's threads in
// state R (/proc/self/task/*/stat), the least of 3 samples 10 ms apart (Linux; -1 where /proc is absent).
static int others_running(void) {
    int least = -1;
    for (int k = 0; k < 3; k++) {
        FILE* f = fopen("/proc/loadavg", "r");
        int running = 0, ours = 0;
        if (!f) return -1;
        int ok = fscanf(f, "%*f %*f %*f %d", &running) == 1;
        fclose(f);
        DIR* d = ok ? opendir("/proc/self/task") : NULL;
        if (!d) return -1;
        struct dirent* e;
        while ((e = readdir(d)) != NULL) {
            char path[64], buf[512];
            if (e->d_name[0] == '.') continue;
            snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", e->d_name);
            FILE* t = fopen(path, "r");
            size_t n = t ? fread(buf, 1, sizeof buf - 1, t) : 0;
            if (t) fclose(t);
            buf[n] = 0;
            const char* paren = strrchr(buf, ')');  // the state follows the command name in parentheses
            ours += paren && paren[1] == ' ' && paren[2] == 'R';
        }
        closedir(d);
        int others = running - ours > 0 ? running - ours : 0;
        if (least < 0 || others < least) least = others;
        struct timespec pause = {0, 10000000L};  // 10 ms
        if (k < 2) nanosleep(&pause, NULL);
    }
    return least;
}

#ifdef _OPENMP
// Set by main when the default thread count was lowered for a busy machine (printed with the threads line).
static char threads_note[160];
#endif

static void run_describe(const Run* r, const Args* a) {
    const GPT* model = &r->model;
    const GPTConfig* c = &model->config;
    printf("model: L=%d NH=%d C=%d V=%d (Vp=%d) maxT=%d, %zu parameters", c->L, c->NH, c->C, c->V, c->Vp, c->maxT,
           model->num_parameters);
    if (c->lora_r) printf(", LoRA r=%d alpha=%g on layers %d-%d", c->lora_r, c->lora_alpha, c->lora_first, c->lora_last);
    if (c->adapter_dim) printf(", adapters A=%d", c->adapter_dim);
    if (c->prefix_len) printf(", prefix P=%d", c->prefix_len);
    if (c->num_classes) printf(", %d-class head", c->num_classes);
    if (c->arch == ARCH_ENCODER) printf(", encoder (bidirectional; [MASK] = [CLS] = id %d)", c->mask_id);
    if (is_llama(c))
        printf(", llama (%d KV heads, MLP %d, RoPE theta %g%s, RMSNorm eps %g%s%s)", kv_heads(c), mlp_width(c), (double)c->rope_theta,
               c->rope_factor > 1.0f ? " linear-scaled" : "", (double)c->norm_eps, c->untied ? ", untied head" : "", c->qkv_bias ? ", q/k/v biases" : "");
    printf("\ntrainable: %zu parameters (%.2f%%), method %s\n", r->ntrain, 100.0 * r->ntrain / model->num_parameters, a->method);
    if (r->tasks.n) tasks_describe(&r->tasks);
    else printf("data: %s (%s), %zu %s, %zu batches of B=%d x T=%d per epoch\n", a->train, KIND_NAMES[r->dl.kind], r->dl.num_items,
                r->dl.kind == DATA_LM ? "windows" : "examples", r->dl.num_batches, a->B * dist_world, a->T);
    if (r->dl.num_cut && !r->tasks.n)  // (multi-task: per task, above)
        printf("data: %zu of %zu examples are longer than --seq %d and are cut to their first %d tokens (the longest has %d)\n",
               r->dl.num_cut, r->dl.num_items, a->T, a->T, r->dl.ds.max_len);
    if (dist_world > 1)
        printf("ranks: %d, each B=%d; AdamW state per rank %.1f MB (%s; %.1f MB in all)\n", dist_world, a->B,
               2.0 * 4 * (a->zero ? (double)(dist_hi(r->ntrain) - dist_lo(r->ntrain)) : (double)r->ntrain) / 1e6,
               a->zero ? "ZeRO-1: a 1/N shard" : "a full copy on each rank", 2.0 * 4 * r->ntrain / 1e6);
#ifdef _OPENMP
    printf("threads: %d (OpenMP)%s\n", omp_get_max_threads(), threads_note);
    int others = omp_get_max_threads() > 1 && !getenv("OMP_WAIT_POLICY") ? others_running() : -1;
    if (machine_busy(others, sysconf(_SC_NPROCESSORS_ONLN), omp_get_max_threads()))
        printf("threads: %d other task%s running on %ld cores: OMP_WAIT_POLICY=passive (or fewer OMP_NUM_THREADS) can make "
               "this run several times faster (README \"Two threads under load\")\n", others, others == 1 ? " is" : "s are",
               sysconf(_SC_NPROCESSORS_ONLN));
#else
    printf("threads: 1 (built without OpenMP)\n");
#endif
}

// Batches, gradients, the ZeRO shard of AdamW's state, and the best model so far on resume.
static void run_buffers(Run* r, const Args* a) {
    GPT* model = &r->model;
    r->micro = (Batch*)mallocCheck((size_t)a->accum * sizeof(Batch));
    for (int k = 0; k < a->accum; k++) batch_alloc(&r->micro[k], a->B, a->T);
    batch_alloc(&r->global, a->B * dist_world, a->T);
    if (!model->grads_memory) gpt_alloc_grads(model);
    r->zlo = a->zero ? dist_lo(model->num_trainable) : 0;
    r->zhi = a->zero ? dist_hi(model->num_trainable) : model->num_trainable;
    if (a->zero && model->m_memory) {  // resumed: keep just this rank's shard of the optimizer state
        size_t n = r->zhi - r->zlo;
        float* m = (float*)mallocCheck((n + 1) * sizeof(float));
        float* v = (float*)mallocCheck((n + 1) * sizeof(float));
        memcpy(m, model->m_memory + r->zlo, n * sizeof(float));
        memcpy(v, model->v_memory + r->zlo, n * sizeof(float));
        free(model->m_memory), free(model->v_memory);
        model->m_memory = m, model->v_memory = v;
    }
    if (a->early_stop || a->test) r->best = (float*)mallocCheck(model->num_parameters * sizeof(float));
    if (!a->resume) r->state.best_metric = NAN;
    if (r->best && a->resume && isfinite(r->state.best_metric)) {  // the best model so far was saved next to the checkpoint
        char path[1100];
        snprintf(path, sizeof path, "%s/best.bin", a->resume);
        GPT bm;
        load_model(&bm, path, NULL);
        if (bm.num_parameters != model->num_parameters) failf(NULL, "%s does not match the checkpoint", path);
        memcpy(r->best, bm.params_memory, model->num_parameters * sizeof(float));
        gpt_free(&bm);
    }
}

static void run_prepare(Run* r, const Args* a, const Backend* be) {
    memset(r, 0, sizeof *r);
    r->a = a;
    tasks_parse(&r->tasks, a);  // before any work: the specs, their files' kinds, the weights
    if (r->tasks.n && be->zero_grad != cpu_zero_grad)
        failf("use ./train for multi-task training (same flags, same files)", "--task KIND:TRAIN is not supported on this device yet");
    run_load(r, a);
    run_recipe(r, a);
    if (a->replay) replay_open(&r->replay, a->replay, a->replay_frac, &r->dl, &r->model, a->seed ^ 0x5265706C6179ull);
    if (a->ewc > 0.0f || a->fisher) ewc_open(&r->ewc, &r->model, a->fisher, a->ewc);
    if (a->ewc > 0.0f && be->zero_grad != cpu_zero_grad)  // the penalty's gradient is added to the host's gradients
        failf("use ./train for EWC (same flags, same files)", "--ewc is not supported on this device yet");
    const char* missing = be->unsupported ? be->unsupported(a, &r->model) : NULL;
    if (missing)
        failf("use ./train for this (same flags, same files): this device does not have it yet", "%s is not supported here", missing);
    run_folder(r, a);
    r->ntrain = count_trainable(&r->model);
    run_describe(r, a);
    run_buffers(r, a);
}

// ---------------------------------------------------------------------------- one step
// Gradient accumulation: fetch the K micro-batches, then forward/backward each with its loss weighted by its
// share of all K batches' targets (over all ranks), so the summed gradient is exactly that of their mean loss
// (one batch of K*B), up to fp32 rounding. Returns that mean loss; *norm is the gradient norm.
static double train_step(Run* r, const Backend* be, int step, float* norm) {
    const Args* a = r->a;
    GPT* model = &r->model;
    size_t BT = (size_t)a->B * a->T, r0 = (size_t)dist_rank * a->B;  // this rank's rows of the global batch
    double total = 0.0, loss = 0.0;
    DataLoader* dl = r->tasks.n ? tasks_step_loader(&r->tasks, model, step) : &r->dl;  // multi-task: the step's task and head
    double weight = r->tasks.n ? tasks_weight(&r->tasks) : 1.0;  // its loss weight
    for (int k = 0; k < a->accum; k++) {
        Batch* g = &r->global;
        loader_next(dl, g->x, g->y, g->len, g->lab, model->config.V);
        if (r->replay.rows) replay_mix(&r->replay, g, (uint64_t)step * a->accum + k, model->config.V);  // batch's index
        memcpy(r->micro[k].x, g->x + r0 * a->T, BT * sizeof(int));
        memcpy(r->micro[k].y, g->y + r0 * a->T, BT * sizeof(int));
        memcpy(r->micro[k].len, g->len + r0, (size_t)a->B * sizeof(int));
        memcpy(r->micro[k].lab, g->lab + r0, (size_t)a->B * sizeof(int));
        total += batch_denominator(model, dl->kind, &r->micro[k]);
    }
    dist_sum_doubles(&total, 1);  // targets over all ranks' micro-batches: the global mean's denominator
    if (total <= 0.0) failf("check the data: every target of this batch is masked", "step %d: the batch has no targets", step + 1);
    be->zero_grad(be->ctx);
    for (int k = 0; k < a->accum; k++) {
        double share = batch_denominator(model, dl->kind, &r->micro[k]) / total;
        if (share == 0.0) continue;
        // a dropout seed drawn from the saved RNG (so resume reproduces it), different on every rank
        uint64_t seed = ((uint64_t)random_u32(&r->state.rng) << 32 | random_u32(&r->state.rng)) ^ (uint64_t)dist_rank * 0x9E3779B97F4A7C15ull;
        float l = be->forward_backward(be->ctx, dl->kind, &r->micro[k], (float)(share * weight), seed);
        if (!isfinite(l)) failf("lower --lr, or check the data", "step %d: loss is %f", step + 1, l);
        loss += share * l;
    }
    if (dist_world > 1) dist_sum_doubles(&loss, 1);
    if (r->tasks.n) r->tasks.t[r->tasks.current].last_loss = loss;
    if (r->ewc.lambda > 0.0f && dist_rank == 0) ewc_add_grad(&r->ewc, model);  // before clipping (continual.c)
    r->opt.lr = lr_at(step, a->lr, a->warmup, r->steps, a->schedule, a->min_lr_frac);
    *norm = be->update(be->ctx, r, step + 1);
    if (r->pruned) {  // AdamW moved pruned weights off zero (momentum, decay of others): put them back
        size_t j = 0;
        for (int i = 0; i < NUM_PARAMS; i++) {  // the mask's order: see run_recipe
            if (!PARAM_TABLE[i].prunable) continue;
            float* w = model->params.t[i];
            for (size_t e = 0, ne = param_numel(&model->config, i); e < ne; e++, j++)
                if (r->pruned[j]) w[e] = 0.0f;
        }
    }
    return loss;
}

// ---------------------------------------------------------------------------- evaluate, track the best, log, save
// Validation after a step: the metric, and whether it is the best so far (then DIR/best.bin is written).
static int run_validate(Run* r, const Backend* be, int step, EvalResult* val, double* metric) {
    const Args* a = r->a;
    GPT* model = &r->model;
    if (r->tasks.n) {  // every task on its own validation data; the metric is their mean (multitask.c)
        *val = tasks_validate(&r->tasks, model, a->B, a->T, a->val_batches, a->metric, step + 1, metric);
    } else {
        *val = be->evaluate(be->ctx, model, a->val, a->B, a->T, a->val_batches);
        *metric = val->loss;
        if (!strcmp(a->metric, "accuracy")) *metric = val->accuracy;
        if (!strcmp(a->metric, "f1") && model->config.num_classes) *metric = cls_metrics(val->confusion, model->config.num_classes).macro_f1;
        if (!strcmp(a->metric, "f1") && model->config.num_tags) {  // entity F1 (a second pass over the validation file)
            TokScore ts = tok_score(model, a->val, a->B, a->T, NULL, NULL);
            *metric = span_prf(&ts.counts, -1).f1;
            tok_score_free(&ts);
        }
    }
    series_add(&r->val_curve, step + 1, val->loss);
    free(val->confusion);
    val->confusion = NULL;
    int improved = !isfinite(r->state.best_metric) || (r->higher_better ? *metric > r->state.best_metric : *metric < r->state.best_metric);
    if (!improved) {
        r->state.bad_evals++;
        return 0;
    }
    r->state.best_metric = *metric;
    r->state.best_step = step + 1;
    r->state.bad_evals = 0;
    be->to_host(be->ctx, model);
    if (r->best) memcpy(r->best, model->params_memory, model->num_parameters * sizeof(float));
    if (a->out && dist_rank == 0) {
        char path[1100];
        snprintf(path, sizeof path, "%s/best.bin", a->out);
        save_checkpoint(model, path, NULL);
    }
    return 1;
}

// The console line (with a progress bar and ETA) and the JSONL record of a step.
static void run_log(Run* r, int step, double loss, float norm, double tok_s, const EvalResult* val, double metric, int improved) {
    const Args* a = r->a;
    int is_eval = val != NULL, K = head_labels(&r->model.config), done = step + 1 - r->first;
    if (step + 1 == r->steps || (a->print_every > 0 && (step + 1) % a->print_every == 0) || is_eval) {
        char eta[32];
        format_duration(eta, sizeof eta, r->t_steps / done * (r->steps - step - 1));
        char bar[21];  // 20 cells, one per 5% of the steps
        for (int k = 0; k < 20; k++) bar[k] = k < 20 * (step + 1) / r->steps ? '#' : '.';
        bar[20] = 0;
        printf("step %5d/%d [%s] | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | eta %s", step + 1, r->steps, bar, loss,
               r->opt.lr, norm, tok_s, eta);
        if (is_eval) printf(" | val %.4f", val->loss);
        if (is_eval && K) printf(" acc %.4f", val->accuracy);
        if (is_eval && r->best) printf("%s", improved ? " (best)" : "");
        if (r->tasks.n) printf(" | %s", r->tasks.t[r->tasks.current].name);
        printf("\n");
        if (is_eval && r->tasks.n) tasks_print_val(&r->tasks);
        fflush(stdout);
    }
    if (!r->log) return;
    fprintf(r->log, "{\"step\": %d, \"loss\": %.8f, \"lr\": %.6e, \"grad_norm\": %.6f, \"tokens_per_s\": %.1f", step + 1,
            loss, r->opt.lr, norm, tok_s);
    if (is_eval) fprintf(r->log, ", \"val_loss\": %.6f", val->loss);
    if (is_eval && K) fprintf(r->log, ", \"val_accuracy\": %.6f", val->accuracy);
    if (is_eval && !strcmp(a->metric, "f1")) fprintf(r->log, ", \"val_f1\": %.6f", metric);
    if (r->tasks.n) tasks_log(&r->tasks, r->log, is_eval);
    fprintf(r->log, "}\n");
    check_stream(r->log, r->log_path);
}

// DIR/ckpt.bin: the model, AdamW's state (gathered from the ranks' shards under ZeRO-1) and the TrainState.
static void run_checkpoint(Run* r, const Backend* be) {
    const Args* a = r->a;
    GPT* model = &r->model;
    be->to_host(be->ctx, model);
    float *m_shard = model->m_memory, *v_shard = model->v_memory;
    if (a->zero) {  // rank 0 writes the whole optimizer state: gather the shards first
        float* m_full = dist_rank == 0 ? (float*)mallocCheck(model->num_trainable * sizeof(float) + 4) : NULL;
        float* v_full = dist_rank == 0 ? (float*)mallocCheck(model->num_trainable * sizeof(float) + 4) : NULL;
        dist_gather_to_root(m_full, m_shard, model->num_trainable);
        dist_gather_to_root(v_full, v_shard, model->num_trainable);
        model->m_memory = m_full, model->v_memory = v_full;
    }
    r->state.B = a->B;
    r->state.T = a->T;
    r->state.data_epoch = r->dl.epoch;
    r->state.data_epoch_rng = r->dl.epoch_rng;
    r->state.data_next_rng = r->dl.rng;
    r->state.data_pos = r->dl.pos;
    char path[1100];
    snprintf(path, sizeof path, "%s/ckpt.bin", a->out);
    if (dist_rank == 0) save_checkpoint(model, path, &r->state);
    if (a->zero) {
        free(model->m_memory), free(model->v_memory);
        model->m_memory = m_shard, model->v_memory = v_shard;
    }
}

// ---------------------------------------------------------------------------- the loop
static void run_train(Run* r, const Backend* be) {
    const Args* a = r->a;
    r->t_start = now_seconds();
    r->first = (int)r->state.step;
    r->last_loss = NAN;
    for (int step = r->first; step < r->steps; step++) {
        double t0 = now_seconds();
        float norm;
        double loss = train_step(r, be, step, &norm);
        double dt = now_seconds() - t0, tok_s = (double)a->B * a->T * a->accum * dist_world / dt;  // all ranks' tokens
        r->t_steps += dt;
        series_add(&r->train_curve, step + 1, loss);
        r->last_loss = loss;
        int is_eval = (a->val || tasks_first_val(&r->tasks)) && ((a->eval_every > 0 && (step + 1) % a->eval_every == 0) || step + 1 == r->steps);
        EvalResult val;
        double metric = NAN;
        int improved = is_eval ? run_validate(r, be, step, &val, &metric) : 0;
        run_log(r, step, loss, norm, tok_s, is_eval ? &val : NULL, metric, improved);
        r->state.step = step + 1;
        int stop_now = step + 1 == a->stop_at;
        if (a->early_stop && r->state.bad_evals >= a->early_stop) {
            printf("early stop: no improvement of %s in %d evaluations; best %.6f at step %lld\n", a->metric, a->early_stop,
                   r->state.best_metric, (long long)r->state.best_step);
            r->stopped_early = 1;
        }
        if (a->out && (stop_now || r->stopped_early || step + 1 == r->steps || (a->save_every > 0 && (step + 1) % a->save_every == 0)))
            run_checkpoint(r, be);
        if (stop_now) printf("stopping after step %d as asked (--stop-at); continue with --resume\n", step + 1);
        if (stop_now || r->stopped_early) break;
    }
}

// ---------------------------------------------------------------------------- finishing a run
// DIR/model.bin, DIR/adapter.bin and DIR/curves.svg.
static void run_save_final(Run* r, const Backend* be) {
    const Args* a = r->a;
    if (!a->out || dist_rank != 0) return;
    be->to_host(be->ctx, &r->model);
    char path[1100];
    snprintf(path, sizeof path, "%s/model.bin", a->out);
    save_checkpoint(&r->model, path, NULL);
    printf("wrote %s/model.bin (last) and %s/ckpt.bin", a->out, a->out);
    if (a->val || tasks_first_val(&r->tasks)) printf(" and %s/best.bin (best %s %.6f, step %lld)", a->out, a->metric, r->state.best_metric, (long long)r->state.best_step);
    if (has_finetuning_tensors(&r->model.config)) {
        snprintf(path, sizeof path, "%s/adapter.bin", a->out);
        save_checkpoint_kind(&r->model, path, NULL, CKPT_ADAPTER);
        printf(" and %s/adapter.bin", a->out);
    }
    snprintf(path, sizeof path, "%s/curves.svg", a->out);
    svg_curves(path, "loss", &r->train_curve, "train loss", &r->val_curve, "val loss");
    printf("\nplot: %s (this run's steps)\n", path);
}

// The test split, evaluated once at the end with the model chosen on validation; for classification also
// the confusion matrix plot and DIR/errors.md.
static EvalResult run_test(Run* r, const Backend* be) {
    const Args* a = r->a;
    GPT* model = &r->model;
    int K = model->config.num_classes;
    memcpy(model->params_memory, r->best, model->num_parameters * sizeof(float));
    EvalResult te = be->evaluate(be->ctx, model, a->test, a->B, a->T, 0);
    printf("test (best by %s, step %lld): loss %.6f", a->metric, (long long)r->state.best_step, te.loss);
    if (K) printf(" accuracy %.6f macro F1 %.6f", te.accuracy, cls_metrics(te.confusion, K).macro_f1);
    printf(" over %zu %s\n", te.count, K ? "examples" : "targets");
    if (model->config.num_tags) {  // entity scores, and DIR/errors.md
        char path[1100];
        snprintf(path, sizeof path, "%s/errors.md", a->out ? a->out : ".");
        TokScore ts = tok_score(model, a->test, a->B, a->T, a->out && dist_rank == 0 ? path : NULL, a->tokenizer);
        PRF all = span_prf(&ts.counts, -1);
        printf("test entities: precision %.6f recall %.6f F1 %.6f (%zu gold, %zu predicted); token accuracy %.6f\n", all.precision,
               all.recall, all.f1, all.gold, all.pred, te.accuracy);
        if (a->out && dist_rank == 0) printf("error analysis: %s\n", path);
        if (r->log) fprintf(r->log, "{\"test_entity_f1\": %.6f, \"test_token_accuracy\": %.6f}\n", all.f1, te.accuracy);
        tok_score_free(&ts);
    }
    if (K && a->out && dist_rank == 0) {
        char path[1100];
        snprintf(path, sizeof path, "%s/confusion_test.svg", a->out);
        svg_confusion(path, te.confusion, K);
        printf("plot: %s\n", path);
        snprintf(path, sizeof path, "%s/errors.md", a->out);
        error_analysis(model, a->test, a->B, a->T, path, a->tokenizer);
        printf("error analysis: %s\n", path);
    }
    if (r->log) {
        fprintf(r->log, "{\"test_loss\": %.6f, \"best_step\": %lld", te.loss, (long long)r->state.best_step);
        if (K) fprintf(r->log, ", \"test_accuracy\": %.6f, \"test_macro_f1\": %.6f", te.accuracy, cls_metrics(te.confusion, K).macro_f1);
        fprintf(r->log, "}\n");
        check_stream(r->log, r->log_path);
    }
    return te;
}

static void run_finish(Run* r, const Backend* be) {
    const Args* a = r->a;
    run_save_final(r, be);
    int n = (int)r->state.step - r->first;
    double ms = n ? 1000.0 * r->t_steps / n : 0.0, tok_s = n ? (double)a->B * a->T * a->accum * dist_world * n / r->t_steps : 0.0;
    printf("done: %d steps in %.1fs, %.1f ms/step, %.0f tokens/s, trainable %zu, peak RSS %.0f MB\n", n,
           now_seconds() - r->t_start, ms, tok_s, r->ntrain, peak_rss_mb());
    EvalResult te = {NAN, NAN, 0, NULL};
    int tested = a->test && (r->state.step == r->steps || r->stopped_early);
    if (tested) te = run_test(r, be);
    if (a->out && dist_rank == 0) {
        static char tasks_md[16384];
        if (r->tasks.n) tasks_report(&r->tasks, &r->model, a->out, tasks_md, sizeof tasks_md);
        const char* val = a->val ? a->val : tasks_first_val(&r->tasks);
        size_t cut = r->tasks.n ? 0 : r->dl.num_cut;  // multi-task: per task, in the task table
        RunSummary rs = {a->out, a->argc, a->argv, a->method, a->metric, val, a->test, a->B, a->T, a->accum, cut, r->dl.num_items,
                         (long long)r->state.step, (long long)r->state.best_step, r->state.best_metric, n, r->stopped_early,
                         now_seconds() - r->t_start, ms, tok_s, peak_rss_mb(), r->last_loss, tested ? &te : NULL,
                         r->tasks.n ? tasks_md : NULL};
        write_report(&r->model, r->ntrain, &rs);
        write_model_card(&r->model, r->ntrain, &rs, a, KIND_NAMES[r->dl.kind]);
        printf("report: %s/report.md, model card: %s/README.md\n", a->out, a->out);
    }
    free(te.confusion);
    if (r->log && (a->val || tasks_first_val(&r->tasks))) {
        fprintf(r->log, "{\"best_%s\": ", a->metric);
        print_json_number(r->log, r->state.best_metric, 8);
        fprintf(r->log, ", \"best_step\": %lld}\n", (long long)r->state.best_step);
        check_stream(r->log, r->log_path);
    }
}

static void run_free(Run* r) {
    if (r->log && fclose(r->log) != 0) fail_at(r->log_path, "check free disk space", "write failed");
    if (r->lock_fd >= 0) close(r->lock_fd);
    free(r->best);
    for (int k = 0; k < r->a->accum; k++) batch_free(&r->micro[k]);
    free(r->micro);
    batch_free(&r->global);
    loader_free(&r->dl);
    free(r->pruned);
    if (r->replay.rows) replay_free(&r->replay);
    ewc_free(&r->ewc);
    tasks_free(&r->tasks);
    free(r->train_curve.x), free(r->train_curve.y), free(r->val_curve.x), free(r->val_curve.y);
    gpt_free(&r->model);
}

static int cmd_train(const Args* a) {
    Run r;
    Backend cpu = cpu_backend(NULL);
    run_prepare(&r, a, &cpu);
    cpu.ctx = &r.model;
    run_train(&r, &cpu);
    run_finish(&r, &cpu);
    run_free(&r);
    return 0;
}

static int cmd_eval(const Args* a) {
    GPT model;
    uint64_t rng = a->seed;
    model_from_args(&model, a, NULL, &rng);
    tasks_select(&model, a->task_head);  // a multi-task model: the task --task-head names
    if (!a->data) failf("give --data FILE (a dataset from ./dataprep)", "nothing to evaluate");
    GenEvalOpts gen = gen_eval_opts(a);  // genmetrics.h: checks the --generate flags before any work
    GenEvalResult gr;
    EvalResult r = evaluate(&model, a->data, a->B, a->T, a->max_batches);
    if (a->generate) gr = eval_generate(&model, &gen);  // genmetrics.h: generate, BLEU, ROUGE-L
    if (a->dump_logits) dump_logits(&model, a->data, a->B, a->T, a->max_batches, a->dump_logits);
    int K = model.config.num_classes;
    if (model.config.num_tags) {  // token classification: entity scores (spans.h) and token accuracy
        TokScore ts = tok_score(&model, a->data, a->B, a->T, NULL, NULL);
        printf("{\"loss\": %.6f, ", r.loss);
        tok_score_json(stdout, &ts);
        printf(", \"tagged_tokens\": %zu}\n", r.count);
        tok_score_free(&ts);
    } else if (K) {
        ClsMetrics mt = cls_metrics(r.confusion, K);
        printf("{\"loss\": %.6f, \"accuracy\": %.6f, \"macro_f1\": %.6f, \"micro_f1\": %.6f, \"examples\": %zu, \"per_class\": [",
               r.loss, r.accuracy, mt.macro_f1, mt.micro_f1, r.count);
        for (int k = 0; k < K && k < 64; k++)
            printf("%s{\"class\": %d, \"precision\": %.6f, \"recall\": %.6f, \"f1\": %.6f, \"support\": %zu}", k ? ", " : "", k,
                   mt.precision[k], mt.recall[k], mt.f1[k], mt.support[k]);
        printf("], \"confusion\": [");
        for (int g = 0; g < K; g++) {
            printf("%s[", g ? ", " : "");
            for (int p = 0; p < K; p++) printf("%s%zu", p ? ", " : "", r.confusion[(size_t)g * K + p]);
            printf("]");
        }
        printf("]}\n");
        free(r.confusion);
    } else {
        printf("{\"loss\": ");
        print_json_number(stdout, r.loss, 6);
        printf(", \"ppl\": ");
        print_json_number(stdout, exp(r.loss), 4);  // exp overflows past loss 709: null, not inf
        printf(", \"tokens\": %zu", r.count);
        Dataset probe;
        char err[512];
        if (a->exact_match && dataset_open(&probe, a->data, err, sizeof err) == 0) {
            int sft = probe.kind == DS_SFT && probe.magic == EXAMPLES_MAGIC;
            dataset_close(&probe);
            if (!sft) failf("exact match compares generated responses: it needs an SFT dataset", "--exact-match on %s", a->data);
            size_t n = 0;
            double em = sft_exact_match(&model, a->data, a->exact_match, &n);
            printf(", \"exact_match\": %.6f, \"generated\": %zu", em, n);
        }
        if (a->generate) gen_eval_print_json(stdout, &gr, &gen.bleu);
        printf("}\n");
    }
    gpt_free(&model);
    return 0;
}

// The class names of a K-class head (classify and serve): labels is "a,b,..." or dataprep's PREFIX_labels.txt;
// without it (NULL) the class ids "0", "1", ... Returns K names of up to 63 bytes, to free.
// The class names --labels gives (a comma list or dataprep's PREFIX_labels.txt), else the class ids.
static char (*labels_flag_names(const char* labels, int K))[64] {
    char(*names)[64] = (char(*)[64])mallocCheck((size_t)K * 64);
    for (int k = 0; k < K; k++) snprintf(names[k], 64, "%d", k);
    if (labels && strchr(labels, ',')) {  // a comma list, one name per class
        int k = 0;
        for (const char* s = labels; *s; k++) {
            size_t m = strcspn(s, ",");
            if (k < K) snprintf(names[k], 64, "%.*s", (int)(m < 63 ? m : 63), s);
            s += m + (s[m] == ',');
        }
        if (k != K) failf("give one name per class, in class-id order", "--labels has %d names, the model's head %d classes", k, K);
    } else if (labels) {
        read_label_file(fopen_check(labels, "r"), names, K);
    }
    return names;
}

// The names classify and serve print: the model's own (checkpoints keep the names of the data the head was
// trained on), else --labels, else the class ids. --labels that contradict the model's names are an error.
static char (*class_names(const GPT* model, const char* labels, int K))[64] {
    char(*names)[64] = labels_flag_names(labels, K);
    if (!model->label_names) return names;
    for (int k = 0; k < K; k++)
        if (labels && strncmp(names[k], model->label_names[k], 63))
            failf("drop --labels: the model knows its classes", "--labels names class %d '%s', but the model was trained with '%s' there",
                  k, names[k], model->label_names[k]);
    for (int k = 0; k < K; k++) snprintf(names[k], 64, "%.63s", model->label_names[k]);
    return names;
}

// Classifies nb token rows as one padded batch (classify and serve): row b is rows[b*stride ..][0..len[b]),
// T the longest; x is (nb, maxT) scratch. Each row is padded with token 0 after its end: gpt_forward_cls reads
// each row at its own last token, and causal attention keeps the padding after it from changing anything.
// An encoder's rows get [CLS] in front, as its training batches do (loader.c), and are cut back to maxT; its
// head reads position 0 and its attention no key past a row's length.
// Afterwards model->acts.cls_probs holds the (nb, K) probabilities.
static void classify_rows(GPT* model, const int* rows, int stride, const int* len, int nb, int T, int* x) {
    int cls = model->config.arch == ARCH_ENCODER, maxT = model->config.maxT;
    int* n = (int*)mallocCheck((size_t)nb * sizeof(int));
    for (int b = 0; b < nb; b++) n[b] = len[b] + cls < maxT ? len[b] + cls : maxT;
    T = T + cls < maxT ? T + cls : maxT;
    for (int b = 0; b < nb; b++)
        for (int i = 0; i < T; i++)
            x[(size_t)b * T + i] = i < cls ? model->config.mask_id : i < n[b] ? rows[(size_t)b * stride + i - cls] : 0;
    gpt_forward_cls(model, x, n, NULL, nb, T);
    free(n);
}

static int cmd_sample(const Args* a) {
    GPT model;
    uint64_t rng = a->seed ? a->seed : 1;
    model_from_args(&model, a, NULL, &rng);
    tasks_select(&model, a->task_head);
    refuse_encoder_generation(&model, "sample");
    if (model.config.num_classes) failf("sampling needs the LM head", "this model has a %d-class head", model.config.num_classes);
    if (model.config.num_tags) failf("sampling needs the LM head", "this model has a %d-tag token head", model.config.num_tags);
    if (!a->tokens && !a->prompt) failf("give --tokens \"id id ...\", or --prompt \"text\" with --tokenizer", "no prompt");
    if (a->prompt && !a->tokenizer) failf("text needs the tokenizer the model was trained with", "--prompt without --tokenizer");
    int cap = 16, n = 0;
    int* prompt = (int*)mallocCheck((size_t)cap * sizeof(int));
    Tokenizer tok;
    if (a->tokenizer) tokenizer_load_or_die(&tok, a->tokenizer);
    if (a->prompt) {  // text -> ids
        IntVec ids = {0};
        tokenizer_encode(&tok, a->prompt, strlen(a->prompt), 0, &ids);
        for (size_t i = 0; i < ids.len; i++) {
            if (ids.data[i] >= model.config.V)
                failf("use the tokenizer the model was trained with", "prompt token %d out of range [0, %d)", ids.data[i], model.config.V);
            if (n == cap) prompt = (int*)realloc(prompt, (size_t)(cap *= 2) * sizeof(int));
            prompt[n++] = ids.data[i];
        }
        free(ids.data);
    }
    if (!a->prompt) prompt = parse_token_ids(a->tokens, model.config.V, prompt, &n, &cap);
    if (n == 0) failf(NULL, "the prompt is empty");
    if (a->gen_steps < 0) failf(NULL, "--gen %d must not be negative", a->gen_steps);
    if (n > model.config.maxT) fprintf(stderr, "note: the prompt has %d tokens; the model sees its last maxT = %d\n", n, model.config.maxT);
    // stop at <|endoftext|> (50256 in GPT-2) when there is a tokenizer, unless --stop says otherwise
    int stop = flag_given(a, "--stop") ? a->stop_token : a->tokenizer ? tok.eot_id : -1;
    Sampler sampler;
    sampler_init(&sampler, model.config.V, a->temperature, a->top_k, a->top_p, stop, rng);
    int* out = (int*)mallocCheck((size_t)(n + a->gen_steps) * sizeof(int));
    double t0 = now_seconds();
    int len = generate(&model, &sampler, prompt, n, a->gen_steps, out);
    double dt = now_seconds() - t0;
    fprintf(stderr, "sample: %d prompt tokens, %d generated in %.3f s: %.1f tokens/s (KV cache)\n", n, len - n, dt,
            (len - n) / (dt > 0 ? dt : 1e-9));
    if (a->tokenizer) {  // ids -> text, without the stop token
        ByteVec text = {0};
        tokenizer_decode(&tok, out, (size_t)(len > n && out[len - 1] == stop ? len - 1 : len), &text, NULL);
        fwrite(text.data, 1, text.len, stdout);
        printf("\n");
        free(text.data);
        tokenizer_free(&tok);
    } else {
        for (int i = 0; i < len; i++) printf("%d%s", out[i], i + 1 < len ? " " : "\n");
    }
    free(prompt);
    free(out);
    sampler_free(&sampler);
    gpt_free(&model);
    return 0;
}

// ./train classify: each line of text in, its predicted class out, as "label<TAB>probability<TAB>text".
// Lines are read --batch at a time and run as one padded batch: gpt_forward_cls reads each row at its own
// last token, and causal attention keeps the padding after it from changing anything. Empty lines are
// skipped; a line longer than maxT tokens keeps its first maxT, as training truncates examples.
// Label names: --labels a,b,... or dataprep's PREFIX_labels.txt (--labels FILE); without it the class ids.
static int cmd_classify(const Args* a) {
    GPT model;
    uint64_t rng = a->seed ? a->seed : 1;
    model_from_args(&model, a, NULL, &rng);
    tasks_select(&model, a->task_head);
    int K = model.config.num_classes, maxT = model.config.maxT, B = a->B;
    if (!K) failf("classify needs a model with a class head (trained on ./dataprep cls data)", "this model has the LM head");
    if (!a->tokenizer) failf("give the tokenizer the model was trained with", "classify needs --tokenizer");
    char(*names)[64] = class_names(&model, a->labels, K);
    Tokenizer tok;
    tokenizer_load_or_die(&tok, a->tokenizer);
    FILE* in = !a->input || !strcmp(a->input, "-") ? stdin : fopen_check(a->input, "r");
    char** text = (char**)callocCheck((size_t)B, sizeof(char*));  // the batch's lines (getline grows them)
    size_t* text_cap = (size_t*)callocCheck((size_t)B, sizeof(size_t));
    int* rows = (int*)mallocCheck((size_t)B * maxT * sizeof(int));  // each line's ids, maxT apart
    int* x = (int*)mallocCheck((size_t)B * maxT * sizeof(int));     // the batch (nb, T)
    int* len = (int*)mallocCheck((size_t)B * sizeof(int));
    IntVec ids = {0};
    size_t line = 0, done = 0;
    double t0 = now_seconds();
    for (;;) {
        int nb = 0, T = 1;
        while (nb < B && getline(&text[nb], &text_cap[nb], in) >= 0) {
            line++;
            text[nb][strcspn(text[nb], "\r\n")] = 0;
            ids.len = 0;
            tokenizer_encode(&tok, text[nb], strlen(text[nb]), 0, &ids);
            int n = (int)ids.len;
            if (n == 0) continue;  // an empty line
            if (n > maxT) {
                fprintf(stderr, "note: line %zu has %d tokens; classified on its first maxT = %d\n", line, n, maxT);
                n = maxT;
            }
            for (int i = 0; i < n; i++) {
                if (ids.data[i] >= model.config.V)
                    failf("use the tokenizer the model was trained with", "line %zu: token %d out of range [0, %d)", line, ids.data[i], model.config.V);
                rows[(size_t)nb * maxT + i] = ids.data[i];
            }
            len[nb] = n;
            if (n > T) T = n;
            nb++;
        }
        if (!nb) break;
        classify_rows(&model, rows, maxT, len, nb, T, x);
        for (int b = 0; b < nb; b++) {
            const float* p = model.acts.cls_probs + (size_t)b * K;
            int best = 0;
            for (int k = 1; k < K; k++) if (p[k] > p[best]) best = k;
            printf("%s\t%.4f\t%s\n", names[best], p[best], text[b]);
        }
        fflush(stdout);
        done += (size_t)nb;
    }
    double dt = now_seconds() - t0;
    fprintf(stderr, "classify: %zu lines in %.3f s (%.1f lines/s)\n", done, dt, done / (dt > 0 ? dt : 1e-9));
    if (in != stdin) fclose(in);
    for (int b = 0; b < B; b++) free(text[b]);
    free(text), free(text_cap), free(rows), free(x), free(len), free(ids.data), free(names);
    tokenizer_free(&tok);
    gpt_free(&model);
    return 0;
}

#include "serve.c"  // defines: cmd_serve (here, not at the top: it uses class_names and classify_rows above)

// ---------------------------------------------------------------------------- hyperparameter sweep
// ./train sweep --grid "lr=1e-3,3e-3 lora-rank=4,8" --out DIR [--random N] [--test FILE] [--metric M] ...
// runs ./train once per point of the grid (or N points drawn from it, seeded), each with the remaining flags
// plus its own, in DIR/run_NNN/ (its log, stdout, best.bin). A run already finished (DIR/run_NNN/result.txt)
// is not run again, so an interrupted sweep continues where it stopped; a failed run is recorded and the
// sweep goes on. The best run on validation (--metric) is then evaluated on --test, and only that one.
// Results: DIR/results.csv and DIR/results.md.
typedef struct {
    char name[64];
    char* values[32];
    int n;
} GridAxis;

typedef struct {
    const char *grid, *out, *test, *metric, *val, *train;
    int random_n;
    uint64_t seed;
    char* pass[256];        // flags forwarded to every run
    int np;
    GridAxis axes[16];
    int na;
    char* grid_text;        // the --grid value, cut up in place by the axes
    size_t* pts;            // the grid points run (indices into the full grid)
    size_t npts;
    char self[1024];        // the program to run (this one)
    char*** runs;           // each run's argv
    double* results;        // each run's best --metric on --val (NaN: none)
    int* status;            // each run's exit status
    long best;              // the best run, -1 when none finished
    double test_metric;     // the best run's --test result
} Sweep;

// Runs argv with stdout and stderr to log_path; returns the exit status (-1 if it could not run).
static int run_logged(char** argv, const char* log_path) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        FILE* f = fopen(log_path, "w");
        if (f) {
            dup2(fileno(f), 1);
            dup2(fileno(f), 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The value of "best_<metric>" from a run's JSONL log, NaN if absent.
static double read_best_metric(const char* log_path, const char* metric) {
    FILE* f = fopen(log_path, "r");
    if (!f) return NAN;
    char line[2048], key[64];
    snprintf(key, sizeof key, "\"best_%s\": ", metric);
    double v = NAN;
    while (fgets(line, sizeof line, f)) {
        char* s = strstr(line, key);
        if (s) v = strtod(s + strlen(key), NULL);
    }
    fclose(f);
    return v;
}

// The sweep's own flags, the ones passed on to every run, and the grid: space-separated axes "flag=v1,v2,...".
static void sweep_parse(Sweep* sw, int argc, char** argv) {
    sw->metric = "val_loss";
    sw->seed = 1337;
    for (int i = 2; i < argc; i++) {
        if (i + 1 >= argc) failf("see ./train --help", "flag %s needs a value", argv[i]);
        const char *f = argv[i], *v = argv[i + 1];
        if (!strcmp(f, "--grid")) sw->grid = v;
        else if (!strcmp(f, "--out")) sw->out = v;
        else if (!strcmp(f, "--random")) sw->random_n = parse_int_arg(f, v);
        else if (!strcmp(f, "--test")) sw->test = v;
        else {
            if (!strcmp(f, "--metric")) sw->metric = v;
            if (!strcmp(f, "--seed")) sw->seed = strtoull(v, NULL, 10);
            if (!strcmp(f, "--val")) sw->val = v;
            if (!strcmp(f, "--train")) sw->train = v;
            if (!strcmp(f, "--log") || !strcmp(f, "--resume"))
                failf("each run gets its own log and folder under the sweep's --out", "%s is not allowed in a sweep", f);
            if (sw->np + 2 > 200) failf(NULL, "too many flags");
            sw->pass[sw->np++] = argv[i], sw->pass[sw->np++] = argv[i + 1];
        }
        i++;
    }
    if (!sw->grid || !sw->out)
        failf("for example: ./train sweep --grid \"lr=1e-3,3e-3 lora-rank=4,8\" --out sweep1 --train ... --val ...",
              "sweep needs --grid and --out");
    if (!sw->val) failf("the sweep picks the best run on validation data", "sweep needs --val FILE");
    sw->grid_text = strdup(sw->grid);
    for (char* tok = strtok(sw->grid_text, " "); tok; tok = strtok(NULL, " ")) {
        char* eq = strchr(tok, '=');
        if (!eq || sw->na == 16) failf("axes look like lr=1e-3,3e-3", "bad --grid axis '%s'", tok);
        *eq = 0;
        GridAxis* ax = &sw->axes[sw->na++];
        snprintf(ax->name, sizeof ax->name, "--%s", tok);
        ax->n = 0;
        for (char* s = eq + 1; s && *s && ax->n < 32;) {
            char* comma = strchr(s, ',');
            if (comma) *comma = 0;
            ax->values[ax->n++] = s;
            s = comma ? comma + 1 : NULL;
        }
        if (!ax->n) failf(NULL, "grid axis %s has no values", ax->name);
    }
}

// Axis a's value at grid point idx (the point index read as mixed-radix digits, the last axis fastest).
static const char* sweep_value(const Sweep* sw, size_t idx, int a) {
    for (int k = sw->na - 1; k > a; k--) idx /= (size_t)sw->axes[k].n;
    return sw->axes[a].values[idx % (size_t)sw->axes[a].n];
}

// Which points (all, or random_n drawn without replacement, seeded), and each one's command line, checked
// to parse before any run starts.
static void sweep_plan(Sweep* sw, const char* self) {
    size_t total = 1;
    for (int a = 0; a < sw->na; a++) total *= (size_t)sw->axes[a].n;
    sw->pts = (size_t*)mallocCheck(total * sizeof(size_t));
    for (size_t i = 0; i < total; i++) sw->pts[i] = i;
    sw->npts = total;
    if (sw->random_n > 0 && (size_t)sw->random_n < total) {
        uint64_t r = sw->seed ^ 0xA5A5A5A5ull;
        for (size_t i = 0; i < (size_t)sw->random_n; i++) {
            size_t j = i + random_u32(&r) % (total - i), tmp = sw->pts[i];
            sw->pts[i] = sw->pts[j], sw->pts[j] = tmp;
        }
        sw->npts = (size_t)sw->random_n;
    }
    // each run executes this program again: argv[0], or $FINETUNE_TRAIN when set (a wrapper that runs it under
    // an emulator: qemu-user without binfmt_misc cannot exec the binary argv[0] names, see dev/test_isa.sh)
    const char* prog = getenv("FINETUNE_TRAIN");
    snprintf(sw->self, sizeof sw->self, "%s", prog && prog[0] ? prog : self);
    sw->runs = (char***)mallocCheck(sw->npts * sizeof(char**));
    for (size_t p = 0; p < sw->npts; p++) {
        char** av = (char**)callocCheck((size_t)sw->np + 2 * sw->na + 8, sizeof(char*));
        int k = 0;
        av[k++] = sw->self;
        for (int i = 0; i < sw->np; i++) av[k++] = sw->pass[i];
        for (int a = sw->na - 1; a >= 0; a--) {
            av[k++] = sw->axes[a].name;
            av[k++] = (char*)sweep_value(sw, sw->pts[p], a);
        }
        sw->runs[p] = av;
        Args check = parse_args(k, av);  // an unknown flag or bad value fails here, before any run
        (void)check;
    }
    if (sw->train && strcmp(sw->metric, "val_loss")) {  // a metric the task lacks fails before any run, too
        DataLoader dl;
        loader_init(&dl, sw->train, 1, 1, 0, 1);
        if (dl.kind != DATA_CLS) failf("accuracy and f1 are classification metrics", "--metric %s for a non-classification dataset", sw->metric);
        loader_free(&dl);
    }
}

// Every run in its folder (skipping those finished before), and the best one on validation.
static void sweep_run_all(Sweep* sw) {
    mkdir(sw->out, 0755);
    sw->results = (double*)mallocCheck(sw->npts * sizeof(double));
    sw->status = (int*)mallocCheck(sw->npts * sizeof(int));
    int higher = strcmp(sw->metric, "val_loss") != 0;
    sw->best = -1;
    for (size_t p = 0; p < sw->npts; p++) {
        char dir[1100], log[1200], res[1200], so[1200];
        snprintf(dir, sizeof dir, "%s/run_%03zu", sw->out, p);
        snprintf(log, sizeof log, "%s/log.jsonl", dir);
        snprintf(res, sizeof res, "%s/result.txt", dir);
        snprintf(so, sizeof so, "%s/stdout.txt", dir);
        mkdir(dir, 0755);
        FILE* rf = fopen(res, "r");
        if (rf) {  // finished in an earlier invocation
            if (fscanf(rf, "%d %lf", &sw->status[p], &sw->results[p]) != 2) sw->status[p] = -1, sw->results[p] = NAN;
            fclose(rf);
            printf("run %03zu: done before (%s %.6f)\n", p, sw->metric, sw->results[p]);
        } else {
            char** av = sw->runs[p];
            int k = 0;
            while (av[k]) k++;
            av[k++] = (char*)"--out", av[k++] = dir, av[k++] = (char*)"--log", av[k++] = log;
            printf("run %03zu:", p);
            for (int i = 1 + sw->np; i < k - 4; i++) printf(" %s", av[i]);
            printf(" ... ");
            fflush(stdout);
            sw->status[p] = run_logged(av, so);
            av[k - 4] = NULL;  // dir and log are this iteration's buffers: drop them from the saved argv
            sw->results[p] = sw->status[p] == 0 ? read_best_metric(log, sw->metric) : NAN;
            printf("%s %s %.6f\n", sw->status[p] == 0 ? "ok" : "FAILED (see stdout.txt)", sw->metric, sw->results[p]);
            rf = fopen(res, "w");
            if (rf) fprintf(rf, "%d %.10g\n", sw->status[p], sw->results[p]), fclose(rf);
        }
        double v = sw->results[p];
        if (sw->status[p] == 0 && isfinite(v) && (sw->best < 0 || (higher ? v > sw->results[sw->best] : v < sw->results[sw->best])))
            sw->best = (long)p;
    }
}

// Only the chosen run sees the test set, with that run's --batch and --seq (or the defaults).
static void sweep_test_best(Sweep* sw) {
    sw->test_metric = NAN;
    if (sw->best < 0 || !sw->test) return;
    const char *batch = "4", *seq = "64";
    char** best = sw->runs[sw->best];
    for (int i = 1; best[i] && best[i + 1]; i++) {
        if (!strcmp(best[i], "--batch")) batch = best[i + 1];
        if (!strcmp(best[i], "--seq")) seq = best[i + 1];
    }
    char model[1200], so[1200], line[2048] = "";
    snprintf(model, sizeof model, "%s/run_%03ld/best.bin", sw->out, sw->best);
    snprintf(so, sizeof so, "%s/test.txt", sw->out);
    char* av[] = {sw->self, (char*)"eval", (char*)"--model", model, (char*)"--data", (char*)sw->test, (char*)"--batch",
                  (char*)batch, (char*)"--seq", (char*)seq, NULL};
    int rc = run_logged(av, so);
    FILE* f = fopen(so, "r");
    if (f && fgets(line, sizeof line, f)) {
        const char* key = strcmp(sw->metric, "val_loss") ? "\"accuracy\": " : "\"loss\": ";
        char* s = strstr(line, key);
        if (s) sw->test_metric = strtod(s + strlen(key), NULL);
    }
    if (f) fclose(f);
    if (rc) printf("test evaluation failed, see %s\n", so);
}

// DIR/results.csv (markdown = 0) or DIR/results.md (markdown = 1): one row per run.
static void sweep_write_table(const Sweep* sw, int markdown) {
    char path[1100];
    snprintf(path, sizeof path, "%s/results.%s", sw->out, markdown ? "md" : "csv");
    SafeWriter w;
    safe_open(&w, path);
    const char *lead = markdown ? "| " : "", *sep = markdown ? " | " : ",", *end = markdown ? " |\n" : "\n";
    fprintf(w.f, "%srun", lead);
    for (int a = 0; a < sw->na; a++) fprintf(w.f, "%s%s", sep, sw->axes[a].name + 2);
    fprintf(w.f, markdown ? "%sstatus%sbest %s (val)%stest%s" : "%sstatus%s%s%stest%s", sep, sep, sw->metric, sep, end);
    if (markdown) {
        fprintf(w.f, "|---|");
        for (int a = 0; a < sw->na; a++) fprintf(w.f, "---|");
        fprintf(w.f, "---|---|---|\n");
    }
    for (size_t p = 0; p < sw->npts; p++) {
        fprintf(w.f, "%s%03zu%s", lead, p, markdown && (long)p == sw->best ? " (best)" : "");
        for (int a = 0; a < sw->na; a++) fprintf(w.f, "%s%s", sep, sweep_value(sw, sw->pts[p], a));
        fprintf(w.f, "%s%s%s%.6f%s", sep, sw->status[p] == 0 ? "ok" : "failed", sep, sw->results[p], sep);
        if ((long)p == sw->best && sw->test) fprintf(w.f, "%.6f", sw->test_metric);
        fprintf(w.f, "%s", end);
    }
    safe_close(&w);
}

static int cmd_sweep(int argc, char** argv) {
    Sweep sw;
    memset(&sw, 0, sizeof sw);
    sweep_parse(&sw, argc, argv);
    sweep_plan(&sw, argv[0]);
    sweep_run_all(&sw);
    sweep_test_best(&sw);
    sweep_write_table(&sw, 0);
    sweep_write_table(&sw, 1);
    if (sw.best >= 0) printf("best: run %03ld, %s %.6f%s", sw.best, sw.metric, sw.results[sw.best], sw.test ? "" : "\n");
    if (sw.best >= 0 && sw.test) printf("; test %s %.6f\n", strcmp(sw.metric, "val_loss") ? "accuracy" : "loss", sw.test_metric);
    printf("results: %s/results.csv and %s/results.md\n", sw.out, sw.out);
    free(sw.grid_text), free(sw.pts), free(sw.results), free(sw.status);
    for (size_t p = 0; p < sw.npts; p++) free(sw.runs[p]);
    free(sw.runs);
    return sw.best >= 0 ? 0 : 1;
}

static int cmd_export(const Args* a) {
    GPT model;
    uint64_t rng = 1;
    model_from_args(&model, a, NULL, &rng);
    tasks_select(&model, a->task_head);
    GPTConfig* c = &model.config;
    if (!a->out || !a->format) failf("for example: ./train export --model run/model.bin --format safetensors --out hf_model",
                                     "export needs --format and --out");
    if (c->arch == ARCH_ENCODER)  // each format would read it back as a causal GPT-2: a different function
        failf("keep the encoder in our format (model.bin records the architecture); the export formats are GPT-2 decoders",
              "export --format %s: the model is an encoder", a->format);
    if (is_llama(c) && (!strcmp(a->format, "llmc") || !strcmp(a->format, "onnx")))  // GPT-2-only formats
        failf("a Llama-style model exports as --format safetensors (HF LlamaForCausalLM), peft or gguf (llama.cpp's llama)",
              "export --format %s: the model is a llama; llm.c's file and our ONNX graph are GPT-2", a->format);
    if (c->num_tags && strcmp(a->format, "safetensors"))  // the others have no place for it: refused, not dropped
        failf("--format safetensors keeps the token head (GPT2ForTokenClassification's classifier)", "--format %s: the model has a %d-tag head", a->format, c->num_tags);
    if (!strcmp(a->format, "peft")) {  // the LoRA itself, unmerged
        if (a->merge) failf("peft exports the LoRA tensors themselves; drop --merge", "--merge 1 with --format peft");
        export_peft(&model, a->out, a->lora_dropout);
        const char* files[2] = {"adapter_model.safetensors", "adapter_config.json"};
        write_export_card(a, files, 2);
        printf("wrote %s/adapter_model.safetensors, %s/adapter_config.json and %s/README.md (model card)\n", a->out, a->out, a->out);
        gpt_free(&model);
        return 0;
    }
    if (c->lora_r) {
        if (!a->merge) failf("add --merge 1 to fold LoRA into the weights (W += alpha/r B A)", "the model has LoRA tensors");
        if (model.q8_memory) failf("merge into the fp32 model, then quantize", "LoRA cannot be merged into int8 weights");
        gpt_lora_merge(&model, 1.0f);
        c->lora_r = 0;  // the merged weights alone now compute the same function
    }
    if (c->adapter_dim || c->prefix_len)
        failf("adapters and prefixes have no place in GPT-2's layout; export the base, or keep our format",
              "the model has %s", c->adapter_dim ? "adapters" : "a prefix");
    if (!strcmp(a->format, "safetensors")) {
        export_hf(&model, a->out);
        const char* files[2] = {"model.safetensors", "config.json"};
        write_export_card(a, files, 2);
        printf("wrote %s/model.safetensors, %s/config.json and %s/README.md (model card)\n", a->out, a->out, a->out);
    } else if (!strcmp(a->format, "llmc")) {
        if (c->num_classes) failf("llm.c's format has no classification head; use --format safetensors", "the model has a %d-class head", c->num_classes);
        export_llmc(&model, a->out);
        printf("wrote %s\n", a->out);
    } else if (!strcmp(a->format, "gguf")) {
        const char* dt = a->dtype ? a->dtype : model.q8_memory ? "q8_0" : "f32";
        if (strcmp(dt, "f32") && strcmp(dt, "q8_0")) failf("use --dtype f32 or q8_0", "unknown --dtype '%s'", dt);
        export_gguf(&model, a->out, !strcmp(dt, "q8_0"), a->tokenizer);
        printf("wrote %s (%s%s)\n", a->out, dt, a->tokenizer ? ", with the tokenizer" : ", no tokenizer: llama.cpp needs --tokenizer");
    } else if (!strcmp(a->format, "onnx")) {
        export_onnx(&model, a->out);
        printf("wrote %s/model.onnx%s (opset %d, dynamic batch_size and sequence_length)\n", a->out,
               c->num_classes ? "" : " and decoder_with_past_model.onnx (KV cache)", ONNX_OPSET);
    } else {
        failf("formats: safetensors, llmc, peft, gguf, onnx", "unknown --format '%s'", a->format);
    }
    gpt_free(&model);
    return 0;
}

// ./train fisher: EWC's diagonal Fisher of a model on its task's data, with the weights (continual.c).
static int cmd_fisher(const Args* a) {
    GPT model;
    uint64_t rng = 1;
    model_from_args(&model, a, NULL, &rng);
    if (!a->data || !a->out)
        failf("for example: ./train fisher --model run_a/model.bin --data a_train.bin --out run_a/model.fisher", "fisher needs --data and --out");
    if (a->T > model.config.maxT) failf("use a smaller --seq", "--seq %d is longer than the model's maxT=%d", a->T, model.config.maxT);
    Ewc e;
    ewc_fisher(&e, &model, a->data, a->T, (uint64_t)a->fisher_examples);
    if (dist_rank == 0) ewc_save(&e, &model, a->out);
    double sum = 0.0;
    for (int i = 0; i < NUM_PARAMS; i++)
        for (size_t j = 0, n = e.F[i] ? param_numel(&model.config, i) : 0; j < n; j++) sum += e.F[i][j];
    printf("wrote %s: diagonal Fisher of %zu parameters on %llu examples of %s (T=%d), sum of F %.6e\n", a->out,
           model.num_trainable, (unsigned long long)e.examples, a->data, a->T, sum);
    ewc_free(&e);
    gpt_free(&model);
    return 0;
}

static int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

// Model FLOPs of one training step, by the usual convention (Kaplan et al. / PaLM appendix B): 6 per
// parameter per token for the matmuls (2 forward, 4 backward; the LM head counts, the position embedding
// does not), plus 6 * 2 * L * T * C per token for attention scores and weighted sums (causal masking not
// subtracted). Achieved GFLOP/s = this / step time.
// Full fine-tuning (every weight trained): 6 per parameter per token. train.cu's bench uses this one.
static double train_flops_full(const GPTConfig* c, int B, int T) {
    double n = (double)num_parameters(c) - (double)param_numel(c, PIDX(wpe));
    return 6.0 * n * B * T + 12.0 * c->L * (double)T * c->C * B * T;
}
// Any method: a frozen parameter gets no weight gradient, so it costs 4, not 6 (LoRA: 4 per base weight,
// 6 per adapter weight). The same as train_flops_full when everything trains.
static double train_flops_per_step(const GPT* model, int B, int T) {
    const GPTConfig* c = &model->config;
    // lookups, not products: the position embedding, and an untied model's token embedding (Llama's lm_head
    // is then the product; tied, wte is both, counted once as the LM head)
    double wpe = (double)param_numel(c, PIDX(wpe)) + (param_numel(c, PIDX(lm_head)) ? (double)param_numel(c, PIDX(wte)) : 0.0);
    double n = (double)num_parameters(c) - wpe;
    double ntrain = (double)count_trainable(model) - (model->trainable[(size_t)PIDX(wpe) * c->L] ? wpe : 0.0);
    return (4.0 * n + 2.0 * ntrain) * B * T + 12.0 * c->L * (double)T * c->C * B * T;
}

// The machine's FP32 peak as measured, not as specified: GFLOP/s of a loop that does nothing but
// independent multiply-adds, run for about `seconds` on `threads` threads (OpenMP). 12 accumulators of 16
// floats: with -O3 -march=native each row is one AVX-512 register and the loop body 12 FMA instructions,
// enough independent chains to keep both FMA units busy (latency 4 cycles x 2 units needs at least 8).
// x -> x * m + a converges to 1: no overflow, no denormals. Each thread counts its own rounds until the time
// is up (no barrier between rounds to wait on). The best of 5 tries of seconds/5 each: a peak is what the
// machine can do, and a try that another process interrupted says less about that. The reference for
// "% of peak" in the bench.
#define PEAK_ACC 12
#define PEAK_W 16
static double fma_peak_try(int threads, double seconds) {
    const long iters = 1 << 18;  // one round: 2 * 12 * 16 * 2^18 = 100 MFLOP, ~1 ms
    volatile float sink = 0.0f;  // the results are used, so the loop is not optimised away
    double rounds = 0.0, xsum = 0.0, t0 = now_seconds();
    (void)threads;  // without OpenMP: one thread
#pragma omp parallel num_threads(threads) reduction(+ : rounds, xsum)
    {
        float x[PEAK_ACC][PEAK_W];
        for (int i = 0; i < PEAK_ACC; i++)
            for (int j = 0; j < PEAK_W; j++) x[i][j] = 1e-3f * (float)(i + j);
        do {
            for (long it = 0; it < iters; it++)
                for (int i = 0; i < PEAK_ACC; i++)
                    for (int j = 0; j < PEAK_W; j++) x[i][j] = x[i][j] * 0.999999f + 1e-6f;
            rounds += 1.0;
        } while (now_seconds() - t0 < seconds);
        for (int i = 0; i < PEAK_ACC; i++)
            for (int j = 0; j < PEAK_W; j++) xsum += x[i][j];
    }
    double t1 = now_seconds();
    sink = (float)xsum;
    (void)sink;
    return 2.0 * PEAK_ACC * PEAK_W * (double)iters * rounds / (t1 - t0) / 1e9;
}
static double fma_peak_gflops(int threads, double seconds) {
    double best = 0.0;
    for (int i = 0; i < 5; i++) {
        double g = fma_peak_try(threads, seconds / 5);
        if (g > best) best = g;
    }
    return best;
}

// n token ids drawn uniformly from [0, V), in a new array: the bench's batches.
static int* random_tokens(size_t n, int V, uint64_t* rng) {
    int* x = (int*)mallocCheck(n * sizeof(int));
    for (size_t i = 0; i < n; i++) x[i] = (int)(random_u32(rng) % (uint32_t)V);
    return x;
}

static int cmd_bench(const Args* a) {
    printf("matmul tile: %s\n", gemm_tile);  // which register tile this build's -march got ("matmul" in kernels.h)
    GPT model;
    uint64_t rng = a->seed ? a->seed : 1;
    model_from_args(&model, a, NULL, &rng);
    DataLoader lm = {.kind = DATA_LM};  // random tokens: the LM task
    setup_finetuning(&model, a, &lm, &rng);
    const GPTConfig* c = &model.config;
    size_t BT = (size_t)a->B * a->T;
    int* x = random_tokens(BT, c->V, &rng);  // inputs
    int* y = random_tokens(BT, c->V, &rng);  // targets
    AdamWConfig opt = adamw_config(a);
    double t_total = 0.0, t_fwd = 0.0, t_bwd = 0.0, t_opt = 0.0, cpu0 = 0.0;
    int n = a->steps > 0 ? a->steps : 1;
    double* per_step = (double*)callocCheck(4 * (size_t)n, sizeof(double));  // [what][step]: the 4 times below
    float loss = NAN;
    for (int s = 0; s <= a->steps; s++) {  // step 0 is the warmup: first-touch of every buffer, not timed
        if (s == 1) {
            struct timespec ts;
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
            cpu0 = ts.tv_sec + ts.tv_nsec * 1e-9;
#ifdef KERNEL_TIMERS
            kt_reset();
#endif
        }
        double t0 = now_seconds();
        gpt_forward(&model, x, y, a->B, a->T);
        loss = model.mean_loss;
        double t1 = now_seconds();
        gpt_zero_grad(&model);
        gpt_backward(&model);
        double t2 = now_seconds();
        gpt_clip_grad_norm(&model, a->grad_clip);
        gpt_adamw_update(&model, &opt, s + 1);
        double t3 = now_seconds();
        if (s > 0) {
            t_total += t3 - t0;
            t_fwd += t1 - t0;
            t_bwd += t2 - t1;
            t_opt += t3 - t2;
            double t[4] = {t3 - t0, t1 - t0, t2 - t1, t3 - t2};
            for (int w = 0; w < 4; w++) per_step[(size_t)w * n + s - 1] = 1000.0 * t[w];
        }
    }
    // medians over the timed steps (each part on its own, so they need not add up): a step slowed down by
    // another process on the machine moves the mean, not the median
    for (int w = 0; w < 4; w++) qsort(per_step + (size_t)w * n, (size_t)n, sizeof(double), cmp_double);
    double med[4];
    for (int w = 0; w < 4; w++) {
        const double* v = per_step + (size_t)w * n;
        med[w] = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    }
    free(per_step);
    double ms = med[0];
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    // CPU time the process got over the timed steps / (their wall time x threads): ~1 on an idle machine
    // (waiting OpenMP threads spin, so they count), lower when other processes took the cores: a busy machine
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    double cpu_share = (ts.tv_sec + ts.tv_nsec * 1e-9 - cpu0) / (t_total * threads);
#ifdef KERNEL_TIMERS
    kt_print(a->steps, 1000.0 * t_total / a->steps, 1000.0 * t_opt / a->steps);  // means: the timers sum
#endif
    // the peak, measured right after the steps (same machine state, same load): on 1 thread and on all
    double peak1 = fma_peak_gflops(1, 1.0), peak = threads > 1 ? fma_peak_gflops(threads, 1.0) : peak1;
    double gflops = train_flops_per_step(&model, a->B, a->T) / (ms * 1e6);
    printf("{\"impl\": \"finetune.c\", \"threads\": %d, \"L\": %d, \"C\": %d, \"B\": %d, \"T\": %d, \"ms_per_step\": %.1f, "
           "\"tokens_per_s\": %.1f, \"gflops\": %.1f, \"peak_gflops_1t\": %.1f, \"peak_gflops\": %.1f, "
           "\"frac_of_peak\": %.3f, \"cpu_share\": %.2f, \"peak_rss_mb\": %.0f, \"loss\": %.6f, "
           "\"ms_forward\": %.1f, \"ms_backward\": %.1f, \"ms_optimizer\": %.1f, \"method\": \"%s\", \"trainable\": %zu}\n",
           threads, c->L, c->C, a->B, a->T, ms, BT / (ms / 1000.0), gflops, peak1, peak, gflops / peak, cpu_share,
           peak_rss_mb(), loss, med[1], med[2], med[3], a->method, count_trainable(&model));
    free(x);
    free(y);
    gpt_free(&model);
    return 0;
}

// ---------------------------------------------------------------------------- commands and main
// The one command table: the name typed after ./train, what runs it, and its line in --help.
typedef struct {
    const char* name;
    int (*run)(const Args* a);
    const char* flags;  // the flags it reads: groups of the flag table (flags.h) and single flags
    const char* usage;
} Command;

static int cmd_sweep_args(const Args* a) { return cmd_sweep(a->argc, a->argv); }

// ./train extract: one task of a multi-task model as a single-task model file (multitask.c's tasks_select).
static int cmd_extract(const Args* a) {
    GPT model;
    uint64_t rng = 1;
    model_from_args(&model, a, NULL, &rng);
    if (!a->task_head || !a->out) failf("for example: ./train extract --model mt/model.bin --task-head sst2 --out sst2.bin", "extract needs --task-head and --out");
    tasks_select(&model, a->task_head);
    save_checkpoint(&model, a->out, NULL);
    printf("wrote %s: task %s, %s\n", a->out, a->task_head, model.config.num_classes ? "classification head" : "LM head");
    gpt_free(&model);
    return 0;
}

static const Command COMMANDS[] = {
    {"train", cmd_train, "model data method optimization output distributed continual --keep-sparsity --task-weights --task-sampling --task-temp --resume --seed",
     "./train [train] --model FILE|--init L,NH,C --train FILE [--val FILE --out DIR ...]: fine-tune or pretrain (the default command)"},
    {"eval", cmd_eval, "model --data --batch --seq --max-batches --exact-match --dump-logits --task-head --resume --seed --generate"
             " --max-new-tokens --bleu-smooth --tokenizer --out --temperature --top-k --top-p --stop",
     "./train eval --model FILE --data FILE: one JSON line: loss and ppl (LM, SFT), or loss, accuracy, macro/micro F1,\n"
                       "        per-class precision/recall/F1 and the confusion matrix [gold][predicted] (classification)"},
    {"sample", cmd_sample, "model sample --tokenizer --task-head --resume --seed",
     "./train sample --model FILE --tokens \"ids\" | --tokenizer PATH --prompt \"text\": generate with a KV cache\n"
                           "        (tokens/s on stderr); past maxT tokens the context slides by maxT/2 at a time"},
    {"classify", cmd_classify, "model classify --tokenizer --batch --task-head --resume --seed",
     "./train classify --model FILE --tokenizer PATH [--input FILE --labels ...]: label<TAB>probability<TAB>text\n"
                               "        for each line; empty lines skipped, lines over maxT tokens truncated"},
    {"sweep", cmd_sweep_args, "model data method optimization output distributed continual --keep-sparsity --task-weights --task-sampling --task-temp sweep --resume --seed",
     "./train sweep --grid \"lr=1e-3,3e-3 lora-rank=4,8\" --out DIR [--random N --test FILE] <train flags>:\n"
                              "        one run per grid point in DIR/run_NNN, resumable; the best on --val (--metric) is evaluated on\n"
                              "        --test; DIR/results.csv and DIR/results.md"},
    {"bench", cmd_bench, "model method --batch --seq optimization --resume --seed",
     "./train bench --init 12,12,768 [--method lora ... --batch 4 --seq 64 --steps 5]: timed training steps on\n"
                         "        random tokens (1 warmup step first); one JSON line with ms/step, tokens/s, GFLOP/s"},
    {"export", cmd_export, "model export --out --tokenizer --lora-dropout --task-head --resume --seed",
     "./train export --model FILE [--adapter FILE] --format safetensors|llmc|peft|gguf|onnx --out PATH [--merge 1]:\n"
                           "        safetensors: PATH/model.safetensors + config.json (Hugging Face GPT-2); llmc: llm.c's file;\n"
                           "        peft: the LoRA as PATH/adapter_model.safetensors + adapter_config.json; gguf: PATH.gguf for\n"
                           "        llama.cpp [--dtype f32|q8_0] [--tokenizer DIR, which llama.cpp needs to run it]; onnx: PATH/model.onnx\n"
                           "        (opset 17, fp32, dynamic batch and sequence axes) and for an LM PATH/decoder_with_past_model.onnx\n"
                           "        (past_key_values.N.key/value in, present.N.key/value out: generation with a KV cache)"},
    {"fisher", cmd_fisher, "model --data --seq --fisher-examples --out --resume --seed",
     "./train fisher --model FILE --data FILE --out FILE.fisher [--seq T --fisher-examples N]: EWC's diagonal\n"
                           "        Fisher (mean squared per-example gradient) and the weights, for a later --ewc LAMBDA --fisher FILE"},
    {"quantize", cmd_quantize, "model --out --data --batch --seq --max-batches --resume --seed",
     "./train quantize --model FILE --out FILE [--data FILE]: int8 (Q8_0) weights, size and quality before/after"},
    {"serve", cmd_serve, "model serve sample --tokenizer --labels --batch --resume --seed",
     "./train serve --model FILE [--adapter FILE --tokenizer PATH] [--port 8080 --host 127.0.0.1]: HTTP/1.1 server:\n"
                         "        POST /v1/completions, POST /v1/classify, GET /health, GET /metrics (README \"Serving\")"},
    {"extract", cmd_extract, "model --task-head --out --resume --seed",
     "./train extract --model FILE --task-head NAME --out FILE: one task of a multi-task model (its head and\n"
                            "        class names, the shared trunk) as a single-task model"},
    {"prune", cmd_prune, "model --out --prune --sparsity --data --batch --seq --max-batches --resume --seed",
     "./train prune --model FILE --prune MODE --sparsity S --out FILE [--data FILE]: magnitude pruning"},
};
#define NUM_COMMANDS ((int)(sizeof COMMANDS / sizeof COMMANDS[0]))

static void print_help(void) {
    printf("finetune.c trainer\nusage: ./train COMMAND [flags], COMMAND one of:");
    for (int i = 0; i < NUM_COMMANDS; i++) printf(" %s", COMMANDS[i].name);
    printf("\n\n");
    flags_print_help(stdout);
    printf("\ncommands:\n");
    for (int i = 0; i < NUM_COMMANDS; i++) printf("  %s\n", COMMANDS[i].usage);
}

static const Command* find_command(const char* name) {
    for (int i = 0; i < NUM_COMMANDS; i++)
        if (!strcmp(COMMANDS[i].name, name)) return &COMMANDS[i];
    char list[256] = "";
    for (int i = 0; i < NUM_COMMANDS; i++) snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", COMMANDS[i].name);
    failf(list, "unknown command '%s'", name);
    return NULL;
}

// Whether flag f is one the command reads: its group or its name is a word of cmd->flags.
static int command_reads(const Command* cmd, const Flag* f) {
    const char* s = cmd->flags;
    size_t g = strlen(f->group), n = strlen(f->name);
    for (const char* w = s; *w;) {
        size_t len = strcspn(w, " ");
        if ((len == g && !strncmp(w, f->group, g)) || (len == n && !strncmp(w, f->name, n))) return 1;
        w += len;
        while (*w == ' ') w++;
    }
    return !strcmp(f->group, "help");
}

// A flag that cannot apply says so instead of being ignored: one the command does not read, a method's flag
// given with another method, and the flags that need another flag to mean anything.
static void check_flags_apply(const Command* cmd, const Args* a) {
    for (int i = 0; i < NUM_FLAGS; i++)
        if (a->given[i] && !command_reads(cmd, &FLAGS[i]))
            failf("see the command's line in ./train --help", "%s does not apply to ./train %s", FLAGS[i].name, cmd->name);
    static const char* const method_flags[][2] = {{"--lora-rank", "lora"}, {"--lora-alpha", "lora"}, {"--lora-targets", "lora"},
        {"--lora-layers", "lora"}, {"--adapter-dim", "adapter"}, {"--prefix-len", "prefix"}};
    for (size_t k = 0; k < sizeof method_flags / sizeof method_flags[0]; k++)
        if (flag_given(a, method_flags[k][0]) && strcmp(a->method, method_flags[k][1]))
            failf("add --method that method, or drop the flag", "%s is for --method %s, and --method is %s", method_flags[k][0], method_flags[k][1], a->method);
    if (flag_given(a, "--lora-dropout") && strcmp(a->method, "lora") && strcmp(cmd->name, "export"))
        failf("add --method lora, or drop the flag", "--lora-dropout is for --method lora, and --method is %s", a->method);
    static const char* const init_only[] = {"--arch", "--kv-heads", "--mlp-width", "--rope-theta", "--norm-eps", "--untied", "--qkv-bias"};
    for (int k = 0; k < 7; k++)
        if (flag_given(a, init_only[k]) && !a->init)
            failf("a loaded model keeps the architecture and shape its file records", "%s is for --init (a new model)", init_only[k]);
    if (strcmp(cmd->name, "train")) return;
    if (flag_given(a, "--epochs") && flag_given(a, "--steps")) failf("give one of them", "--epochs sets the step count, and --steps was given too");
    static const char* const need_val[] = {"--eval-every", "--val-batches", "--metric"};
    for (int k = 0; k < 3; k++)
        if (flag_given(a, need_val[k]) && !a->val && !tasks_given(a, 1)) failf("give --val FILE", "%s needs validation data", need_val[k]);
    static const char* const need_out[] = {"--save-every", "--stop-at", "--resume"};
    for (int k = 0; k < 3; k++)
        if (flag_given(a, need_out[k]) && !a->out) failf("give --out DIR (for --resume usually the same DIR)", "%s needs a run folder", need_out[k]);
}

#ifndef TESTING
// Every file the command reads: no output of this process may replace one of them (common.h's writers check).
static void protect_inputs(const Args* a) {
    protect_input(a->model, "--model");
    protect_input(a->adapter, "--adapter");
    protect_input(a->train, "--train");
    protect_input(a->val, "--val");
    protect_input(a->test, "--test");
    protect_input(a->data, "--data");
    protect_input(a->tokenizer, "--tokenizer");
    if (a->input && strcmp(a->input, "-")) protect_input(a->input, "--input");
    if (a->labels) protect_input(a->labels, "--labels");
}

int main(int argc, char** argv) {
    dist_init(&argc, &argv);
    if (dist_rank != 0 && !freopen("/dev/null", "w", stdout)) exit(1);  // one rank speaks
    {  // every rank must run the same command line
        char all[8192] = {0};
        size_t n = 0;
        for (int i = 1; i < argc && n < sizeof all - 1; i++) n += (size_t)snprintf(all + n, sizeof all - n, "%s ", argv[i]);
        dist_check_same(all, strlen(all), "the command line");
    }
    if (argc > 1 && !strcmp(argv[1], "sweep")) {  // the sweep passes its flags on to the runs it starts
        int rc = cmd_sweep(argc, argv);
        dist_finalize();
        return rc;
    }
    Args a = parse_args(argc, argv);
#ifdef _OPENMP
    if (!getenv("OMP_NUM_THREADS") && omp_get_max_threads() > 1) {  // the default: one thread per free core
        int others = others_running(), want = omp_get_max_threads();
        int n = default_threads(others, sysconf(_SC_NPROCESSORS_ONLN), want);
        if (n < want) {
            omp_set_num_threads(n);
            snprintf(threads_note, sizeof threads_note, ", not %d: %d other task%s running on %ld cores (OMP_NUM_THREADS=%d overrides)",
                     want, others, others == 1 ? " is" : "s are", sysconf(_SC_NPROCESSORS_ONLN), want);
        }
    }
#endif
    if (a.help) print_help();
    if (a.help_markdown) flags_print_markdown(stdout);
    int rc = 0;
    if (!a.help && !a.help_markdown) {
        const Command* cmd = find_command(a.cmd);
        check_flags_apply(cmd, &a);
        protect_inputs(&a);
        rc = cmd->run(&a);
    }
    dist_finalize();
    return rc;
}
#endif
