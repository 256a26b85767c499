// flags.h: the command line: Args (every flag's value), --help, and parse_args.

#pragma once
#include "model.h"  // defines: Schedule (--schedule)

// ---------------------------------------------------------------------------- command line
static int g_argc;     // the command line, kept for DIR/command.txt (the config a run used)
static char** g_argv;

typedef struct {
    const char* cmd;            // "train", "eval", "sample" or "bench"
    const char* model;          // --model
    const char* init;           // --init L,NH,C
    int vocab, max_seq;         // --vocab, --max-seq (for --init)
    const char* train, *val;    // --train, --val
    const char* data;           // --data (eval)
    int B, T, steps;
    float lr, min_lr_frac, weight_decay, beta1, beta2, eps, grad_clip;
    int warmup;
    Schedule schedule;
    uint64_t seed;
    const char* log, *out, *resume;
    int eval_every, val_batches, save_every, shuffle, print_every;
    const char* tokens;         // --tokens (sample)
    int gen_steps, top_k, stop_token, stop_set;  // stop_set: --stop was given (else the tokenizer's <|endoftext|>)
    float temperature, top_p;
    const char* input, *labels;  // classify: --input FILE|- and --labels a,b,...|FILE
    int max_batches;            // eval
    int stop_at;                // stop (as if interrupted) after this step, writing the checkpoint
    // fine-tuning
    const char* method;         // full | lora | adapter | prefix
    const char* task;           // lm | cls | sft (checked against the data)
    int lora_rank, adapter_dim, prefix_len, classes, accum, early_stop, zero;
    float epochs;
    const char* metric, *test, *tokenizer;
    const char* prompt;  // sample: prompt text (needs --tokenizer)
    const char* format;  // export: safetensors | llmc | peft | gguf
    const char* dtype;   // export gguf: f32 | q8_0 (default: q8_0 for an int8 model, else f32)
    int merge;           // export: fold LoRA into the weights first
    const char* prune;   // prune: unstructured | layer | heads | neurons
    float sparsity;      // prune: fraction of the block-matrix weights to remove, in [0, 1)
    int keep_sparsity;   // train: put a pruned model's zeros back after every step
    int exact_match;  // eval on SFT data: greedy-generate the responses of this many examples (-1 = all)
    float lora_alpha, layer_decay, label_smoothing, lora_dropout, dropout;
    const char* lora_targets, *lora_layers, *freeze, *unfreeze, *class_weights, *adapter;
} Args;

static void print_help(void) {
    printf(
        "finetune.c trainer\n"
        "usage: ./train [train] [flags]  |  ./train eval [flags]  |  ./train sample [flags]  |  ./train classify [flags]  |  ./train bench [flags]\n\n"
        "model (one of):\n"
        "  --model FILE        load a model: finetune.c checkpoint, llm.c gpt2_124M.bin, HF model.safetensors (or its\n"
        "                      folder), or a GGUF file of llama.cpp's gpt2 (F32, F16 or Q8_0; Q8_0 loads as int8)\n"
        "  --init L,NH,C       random GPT-2-style init with L layers, NH heads, C channels\n"
        "  --vocab V           vocabulary size for --init (default 50257)\n"
        "  --max-seq N         positions (maxT) for --init (default 1024)\n"
        "  --adapter FILE      apply an adapter.bin (LoRA / adapters / prefix / head) to the model, or a Hugging\n"
        "                      Face PEFT LoRA adapter (its folder or adapter_model.safetensors)\n"
        "data (from ./dataprep; the kind of file sets the task):\n"
        "  --train FILE        token file (LM), classification or SFT example file\n"
        "  --val FILE          validation data of the same kind (optional)\n"
        "  --task T            lm|cls|sft: check that the data is of this kind (default: take it from the data)\n"
        "  --batch B           sequences per micro-batch (default 4)\n"
        "  --accum K           gradient accumulation: K micro-batches per optimizer step (default 1)\n"
        "  --seq T             tokens per sequence (default 64); examples are truncated or padded to it\n"
        "  --shuffle 0|1       visit windows / examples in a seeded random order each epoch (default 1)\n"
        "fine-tuning method:\n"
        "  --method M          full|lora|adapter|prefix (default full)\n"
        "  --lora-rank r       LoRA rank (default 8)\n"
        "  --lora-alpha a      LoRA scale is alpha/r (default 16)\n"
        "  --lora-targets L    comma list of qkv,proj,fc,fcproj (default qkv,proj)\n"
        "  --lora-layers A-B   layers that get LoRA (default all)\n"
        "  --lora-dropout P    dropout on the LoRA input while training (default 0)\n"
        "  --adapter-dim A     adapter bottleneck (default 16)\n"
        "  --prefix-len P      prefix-tuning positions per layer (default 10)\n"
        "  --freeze LIST       freeze: embeddings, head, final-ln, first:K, blocks:A-B, base (all GPT-2 weights)\n"
        "  --unfreeze LIST     the same items, applied after --freeze (e.g. --freeze base --unfreeze blocks:10-11)\n"
        "  --layer-decay D     layer-wise LR decay: block l gets lr*D^(L-1-l), embeddings lr*D^L (default 1)\n"
        "  --classes K         classes of the classification head (default: the dataset's label count)\n"
        "  --class-weights W   comma list of K loss weights, or 'auto' = N/(K*count_k) from the training data\n"
        "  --label-smoothing E classification label smoothing (default 0)\n"
        "optimization:\n"
        "  --steps N           optimizer steps (default 100)\n"
        "  --epochs E          train for E passes over the data instead (sets --steps; fractions allowed)\n"
        "  --lr X              peak learning rate (default 3e-4)\n"
        "  --schedule S        constant|cosine|linear (default cosine)\n"
        "  --warmup N          linear warmup steps (default 0)\n"
        "  --min-lr-frac F     decay to lr*F at the last step (default 0.1)\n"
        "  --weight-decay W    AdamW decoupled weight decay on matrices (default 0.1)\n"
        "  --beta1 B1 --beta2 B2 --eps E   AdamW (defaults 0.9, 0.95, 1e-8)\n"
        "  --grad-clip G       clip the global gradient norm to G, 0 = off (default 1.0)\n"
        "  --dropout P         dropout on embeddings, attention probabilities and residual branches while\n"
        "                      training (GPT-2's embd/attn/resid_pdrop; default 0)\n"
        "  --seed S            seed for init and data order (default 1337)\n"
        "monitoring and output:\n"
        "  --eval-every N      validation every N steps and at the end, 0 = only at the end (default 0)\n"
        "  --val-batches N     batches per validation (default 20; 0 = all)\n"
        "  --early-stop N      stop after N validations without improvement of --metric; DIR/best.bin keeps the best\n"
        "  --metric M          val_loss | accuracy | f1 (macro F1): what --early-stop watches (default val_loss)\n"
        "  --test FILE         evaluate the best model (by --metric) on this data once, at the end; for\n"
        "                      classification also DIR/errors.md (accuracy by class and length, worst mistakes)\n"
        "  --tokenizer PATH    decode example text in DIR/errors.md (the gpt2_bpe folder or a dataprep tokenizer)\n"
        "  --print-every N     console line every N steps (default 1)\n"
        "  --log FILE          JSONL: step, loss, lr, grad_norm, tokens_per_s, val_loss (and val_accuracy) on eval steps\n"
        "  --out DIR           the run folder: DIR/model.bin (last), DIR/best.bin (best on --val), DIR/ckpt.bin\n"
        "                      (resumable state), DIR/adapter.bin (lora/adapter/prefix/head tensors only),\n"
        "                      DIR/log.jsonl (unless --log), DIR/command.txt, DIR/curves.svg\n"
        "  --save-every N      also write DIR/ckpt.bin every N steps (default 0 = only at the end)\n"
        "  --resume DIR        continue from DIR/ckpt.bin with the same flags; reproduces the uninterrupted run\n"
        "  --stop-at N         stop after step N as if interrupted (writes DIR/ckpt.bin; continue with --resume)\n"
        "distributed (build with make mpi, run with mpirun -np N): --batch is per rank, the global batch N*B\n"
        "  --zero 0|1          1: shard AdamW state over the ranks (ZeRO stage 1) (default 0)\n"
        "eval:   ./train eval --model FILE --data FILE [--adapter FILE --batch B --seq T --max-batches N]\n"
        "        prints one JSON line: loss and ppl (LM, SFT), or loss, accuracy, macro/micro F1, per-class\n"
        "        precision/recall/F1 and the confusion matrix [gold][predicted] (classification)\n"
        "        --exact-match N: on SFT data, also greedy-generate N responses (-1: all) and report the share\n"
        "        reproduced exactly\n"
        "sample: ./train sample --model FILE --tokens \"ids\" [--gen N (64) --temperature X (1.0; 0 = greedy)\n"
        "        --top-k K (0 = off) --top-p P (1.0 = off) --stop ID --seed S]  prints the prompt and generated\n"
        "        token ids; or, as text, ./train sample --model FILE --tokenizer PATH --prompt \"text\" [...]\n"
        "        Uses a KV cache (tokens/s on stderr). --stop defaults to the tokenizer's <|endoftext|> (50256\n"
        "        for GPT-2), -1 without a tokenizer. Past maxT tokens the context slides by maxT/2 at a time.\n"
        "classify: ./train classify --model FILE --tokenizer PATH [--input FILE (default - = stdin)\n"
        "        --labels a,b,...|PREFIX_labels.txt --batch B]  a classification model on each line of text:\n"
        "        prints label<TAB>probability<TAB>text; empty lines skipped, lines over maxT tokens truncated\n"
        "sweep:  ./train sweep --grid \"lr=1e-3,3e-3 lora-rank=4,8\" --out DIR [--random N --test FILE] <train flags>\n"
        "        one run per grid point in DIR/run_NNN, resumable; the best on --val (--metric) is evaluated on\n"
        "        --test; DIR/results.csv and DIR/results.md\n"
        "export: ./train export --model FILE [--adapter FILE] --format safetensors|llmc|peft|gguf --out PATH [--merge 1]\n"
        "        safetensors: PATH/model.safetensors + PATH/config.json in Hugging Face GPT-2 layout (score.weight for\n"
        "        a class head); llmc: llm.c's model file. --merge 1 folds LoRA into the weights first\n"
        "        peft: the LoRA itself (unmerged) as a Hugging Face PEFT adapter: PATH/adapter_model.safetensors +\n"
        "        PATH/adapter_config.json (score.weight too for a class head); load it back with --adapter PATH\n"
        "        gguf: PATH.gguf for llama.cpp (architecture gpt2) [--dtype f32|q8_0] [--tokenizer DIR]: q8_0 stores\n"
        "        the matrices as int8 (C and the MLP width must be multiples of 32; default for an int8 model);\n"
        "        --tokenizer ../shared/data/gpt2_bpe puts the vocabulary in (llama.cpp needs it to run the model)\n"
        "bench:  ./train bench --init 12,12,768 [--method lora ... --batch 4 --seq 64 --steps 5]  timed training\n"
        "        steps on random tokens (1 warmup step first); one JSON line with ms/step, tokens/s, GFLOP/s\n");
}

static int parse_int_arg(const char* flag, const char* v) {
    char* e;
    long x = strtol(v, &e, 10);
    if (*e || e == v) failf("see ./train --help", "%s expects an integer, got '%s'", flag, v);
    return (int)x;
}
static float parse_float_arg(const char* flag, const char* v) {
    char* e;
    float x = strtof(v, &e);
    if (*e || e == v || !isfinite(x)) failf("see ./train --help", "%s expects a number, got '%s'", flag, v);
    return x;
}

static Args parse_args(int argc, char** argv) {
    Args a;  // defaults (assigned one by one: C++, which train.cu compiles this file as, wants no reordering)
    memset(&a, 0, sizeof a);
    a.cmd = "train", a.vocab = 50257, a.max_seq = 1024, a.B = 4, a.T = 64, a.steps = 100, a.lr = 3e-4f;
    a.min_lr_frac = 0.1f, a.weight_decay = 0.1f, a.beta1 = 0.9f, a.beta2 = 0.95f, a.eps = 1e-8f, a.grad_clip = 1.0f;
    a.schedule = SCHED_COSINE, a.seed = 1337, a.val_batches = 20, a.shuffle = 1, a.print_every = 1;
    a.gen_steps = 64, a.top_k = 0, a.stop_token = -1, a.temperature = 1.0f, a.top_p = 1.0f;
    a.method = "full", a.lora_rank = 8, a.lora_alpha = 16.0f, a.lora_targets = "qkv,proj", a.adapter_dim = 16;
    a.prefix_len = 10, a.layer_decay = 1.0f, a.accum = 1, a.metric = "val_loss";
    int i = 1;
    if (argc > 1 && argv[1][0] != '-') {
        a.cmd = argv[1];
        if (strcmp(a.cmd, "train") && strcmp(a.cmd, "eval") && strcmp(a.cmd, "sample") && strcmp(a.cmd, "bench") &&
            strcmp(a.cmd, "export") && strcmp(a.cmd, "classify") && strcmp(a.cmd, "quantize") && strcmp(a.cmd, "prune"))
            failf("commands: train (default), eval, sample, classify, sweep, bench, export, quantize, prune", "unknown command '%s'", a.cmd);
        i = 2;
    }
    for (; i < argc; i++) {
        const char* f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { print_help(); exit(0); }
        if (i + 1 >= argc) failf("see ./train --help", "flag %s needs a value", f);
        const char* v = argv[++i];
        if (!strcmp(f, "--model")) a.model = v;
        else if (!strcmp(f, "--init")) a.init = v;
        else if (!strcmp(f, "--vocab")) a.vocab = parse_int_arg(f, v);
        else if (!strcmp(f, "--max-seq")) a.max_seq = parse_int_arg(f, v);
        else if (!strcmp(f, "--train")) a.train = v;
        else if (!strcmp(f, "--val")) a.val = v;
        else if (!strcmp(f, "--data")) a.data = v;
        else if (!strcmp(f, "--batch")) a.B = parse_int_arg(f, v);
        else if (!strcmp(f, "--seq")) a.T = parse_int_arg(f, v);
        else if (!strcmp(f, "--steps")) a.steps = parse_int_arg(f, v);
        else if (!strcmp(f, "--lr")) a.lr = parse_float_arg(f, v);
        else if (!strcmp(f, "--min-lr-frac")) a.min_lr_frac = parse_float_arg(f, v);
        else if (!strcmp(f, "--weight-decay")) a.weight_decay = parse_float_arg(f, v);
        else if (!strcmp(f, "--beta1")) a.beta1 = parse_float_arg(f, v);
        else if (!strcmp(f, "--beta2")) a.beta2 = parse_float_arg(f, v);
        else if (!strcmp(f, "--eps")) a.eps = parse_float_arg(f, v);
        else if (!strcmp(f, "--grad-clip")) a.grad_clip = parse_float_arg(f, v);
        else if (!strcmp(f, "--warmup")) a.warmup = parse_int_arg(f, v);
        else if (!strcmp(f, "--schedule")) {
            if (!strcmp(v, "constant")) a.schedule = SCHED_CONSTANT;
            else if (!strcmp(v, "cosine")) a.schedule = SCHED_COSINE;
            else if (!strcmp(v, "linear")) a.schedule = SCHED_LINEAR;
            else failf("use constant, cosine or linear", "unknown --schedule '%s'", v);
        } else if (!strcmp(f, "--seed")) a.seed = (uint64_t)strtoull(v, NULL, 10);
        else if (!strcmp(f, "--log")) a.log = v;
        else if (!strcmp(f, "--out")) a.out = v;
        else if (!strcmp(f, "--resume")) a.resume = v;
        else if (!strcmp(f, "--eval-every")) a.eval_every = parse_int_arg(f, v);
        else if (!strcmp(f, "--val-batches")) a.val_batches = parse_int_arg(f, v);
        else if (!strcmp(f, "--save-every")) a.save_every = parse_int_arg(f, v);
        else if (!strcmp(f, "--shuffle")) a.shuffle = parse_int_arg(f, v);
        else if (!strcmp(f, "--print-every")) a.print_every = parse_int_arg(f, v);
        else if (!strcmp(f, "--tokens")) a.tokens = v;
        else if (!strcmp(f, "--gen")) a.gen_steps = parse_int_arg(f, v);
        else if (!strcmp(f, "--top-k")) a.top_k = parse_int_arg(f, v);
        else if (!strcmp(f, "--stop")) a.stop_token = parse_int_arg(f, v), a.stop_set = 1;
        else if (!strcmp(f, "--top-p")) a.top_p = parse_float_arg(f, v);
        else if (!strcmp(f, "--input")) a.input = v;
        else if (!strcmp(f, "--labels")) a.labels = v;
        else if (!strcmp(f, "--temperature")) a.temperature = parse_float_arg(f, v);
        else if (!strcmp(f, "--max-batches")) a.max_batches = parse_int_arg(f, v);
        else if (!strcmp(f, "--stop-at")) a.stop_at = parse_int_arg(f, v);
        else if (!strcmp(f, "--method")) a.method = v;
        else if (!strcmp(f, "--task")) a.task = v;
        else if (!strcmp(f, "--lora-rank")) a.lora_rank = parse_int_arg(f, v);
        else if (!strcmp(f, "--lora-alpha")) a.lora_alpha = parse_float_arg(f, v);
        else if (!strcmp(f, "--lora-targets")) a.lora_targets = v;
        else if (!strcmp(f, "--lora-layers")) a.lora_layers = v;
        else if (!strcmp(f, "--lora-dropout")) a.lora_dropout = parse_float_arg(f, v);
        else if (!strcmp(f, "--dropout")) a.dropout = parse_float_arg(f, v);
        else if (!strcmp(f, "--adapter-dim")) a.adapter_dim = parse_int_arg(f, v);
        else if (!strcmp(f, "--prefix-len")) a.prefix_len = parse_int_arg(f, v);
        else if (!strcmp(f, "--freeze")) a.freeze = v;
        else if (!strcmp(f, "--unfreeze")) a.unfreeze = v;
        else if (!strcmp(f, "--layer-decay")) a.layer_decay = parse_float_arg(f, v);
        else if (!strcmp(f, "--classes")) a.classes = parse_int_arg(f, v);
        else if (!strcmp(f, "--class-weights")) a.class_weights = v;
        else if (!strcmp(f, "--label-smoothing")) a.label_smoothing = parse_float_arg(f, v);
        else if (!strcmp(f, "--adapter")) a.adapter = v;
        else if (!strcmp(f, "--accum")) a.accum = parse_int_arg(f, v);
        else if (!strcmp(f, "--epochs")) a.epochs = parse_float_arg(f, v);
        else if (!strcmp(f, "--zero")) a.zero = parse_int_arg(f, v);
        else if (!strcmp(f, "--early-stop")) a.early_stop = parse_int_arg(f, v);
        else if (!strcmp(f, "--metric")) a.metric = v;
        else if (!strcmp(f, "--test")) a.test = v;
        else if (!strcmp(f, "--tokenizer")) a.tokenizer = v;
        else if (!strcmp(f, "--exact-match")) a.exact_match = parse_int_arg(f, v);
        else if (!strcmp(f, "--prompt")) a.prompt = v;
        else if (!strcmp(f, "--format")) a.format = v;
        else if (!strcmp(f, "--dtype")) a.dtype = v;
        else if (!strcmp(f, "--merge")) a.merge = parse_int_arg(f, v);
        else if (!strcmp(f, "--prune")) a.prune = v;
        else if (!strcmp(f, "--sparsity")) a.sparsity = parse_float_arg(f, v);
        else if (!strcmp(f, "--keep-sparsity")) a.keep_sparsity = parse_int_arg(f, v);
        else failf("see ./train --help for the list of flags", "unknown flag '%s'", f);
    }
    if (a.B < 1 || a.T < 1) failf(NULL, "--batch and --seq must be at least 1 (got %d, %d)", a.B, a.T);
    if (strcmp(a.metric, "val_loss") && strcmp(a.metric, "accuracy") && strcmp(a.metric, "f1"))
        failf("use val_loss, accuracy or f1 (macro F1)", "unknown --metric '%s'", a.metric);
    if (a.early_stop < 0 || a.epochs < 0) failf(NULL, "--early-stop and --epochs must not be negative");
    if (a.zero != 0 && a.zero != 1) failf("0: every rank keeps all AdamW state; 1: ZeRO stage 1 shards it", "--zero %d", a.zero);
    if (a.accum < 1) failf("--accum k runs k micro-batches of --batch B per optimizer step", "--accum %d must be at least 1", a.accum);
    if (a.steps < 0 || a.warmup < 0) failf(NULL, "--steps and --warmup must not be negative");
    if (a.lr < 0.0f || a.weight_decay < 0.0f || a.grad_clip < 0.0f) failf(NULL, "--lr, --weight-decay and --grad-clip must not be negative");
    if (strcmp(a.method, "full") && strcmp(a.method, "lora") && strcmp(a.method, "adapter") && strcmp(a.method, "prefix"))
        failf("use full, lora, adapter or prefix", "unknown --method '%s'", a.method);
    if (a.task && strcmp(a.task, "lm") && strcmp(a.task, "cls") && strcmp(a.task, "sft"))
        failf("use lm, cls or sft", "unknown --task '%s'", a.task);
    if (!strcmp(a.method, "lora") && a.lora_rank < 1) failf("a LoRA rank is at least 1, typically 4-64", "--lora-rank %d", a.lora_rank);
    if (!strcmp(a.method, "lora") && a.lora_alpha <= 0.0f) failf("alpha scales the update (alpha/r); use e.g. 2r", "--lora-alpha %g must be > 0", a.lora_alpha);
    if (!strcmp(a.method, "adapter") && a.adapter_dim < 1) failf(NULL, "--adapter-dim %d must be at least 1", a.adapter_dim);
    if (!strcmp(a.method, "prefix") && a.prefix_len < 1) failf(NULL, "--prefix-len %d must be at least 1", a.prefix_len);
    if (a.layer_decay <= 0.0f || a.layer_decay > 1.0f) failf("typical values are 0.65-0.95", "--layer-decay %g must be in (0, 1]", a.layer_decay);
    if (a.label_smoothing < 0.0f || a.label_smoothing >= 1.0f) failf(NULL, "--label-smoothing %g must be in [0, 1)", a.label_smoothing);
    if (a.dropout < 0.0f || a.dropout >= 1.0f) failf(NULL, "--dropout %g must be in [0, 1)", a.dropout);
    if (a.lora_dropout < 0.0f || a.lora_dropout >= 1.0f) failf(NULL, "--lora-dropout %g must be in [0, 1)", a.lora_dropout);
    if (a.top_p <= 0.0f || a.top_p > 1.0f) failf("e.g. 0.9 samples from the tokens that make up 90% of the probability", "--top-p %g must be in (0, 1]", a.top_p);
    if (a.temperature < 0.0f || a.top_k < 0) failf("--temperature 0 is greedy; --top-k 0 keeps every token", "--temperature and --top-k must not be negative");
    return a;
}
