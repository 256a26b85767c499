// flags.h: the command line. One table (FLAGS) lists every flag once: its name, its type, the Args field it
// sets, its default, the --help group and the help text. Defaults, parsing, `./train --help` and the README's
// flag table (`./train --help-markdown`) are all made from it, so they cannot disagree (test_gpt.c checks the
// README against it).

#pragma once
#include "model.h"  // defines: Schedule (--schedule), and common.h's failf

// ---------------------------------------------------------------------------- Args: every flag's value
typedef struct {
    const char* cmd;            // the command: train (default), eval, sample, ... (train.c's command table)
    int argc;                   // the whole command line, for DIR/command.txt and DIR/report.md
    char** argv;
    int help, help_markdown;    // --help, --help-markdown
    const char* model;          // --model
    const char* init;           // --init L,NH,C
    int vocab, max_seq;         // --vocab, --max-seq (for --init)
    const char* arch;           // --arch gpt2|encoder|llama (for --init; model.h's ARCH_NAMES)
    int kv_heads, mlp_width;    // --kv-heads, --mlp-width (for --init)
    float rope_theta, norm_eps; // --rope-theta, --norm-eps (for --init --arch llama)
    int untied, qkv_bias;       // --untied, --qkv-bias (for --init --arch llama)
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
    int gen_steps, top_k, stop_token;
    float temperature, top_p;
    const char* input, *labels;  // classify: --input FILE|- and --labels a,b,...|FILE
    int max_batches;            // eval
    int stop_at;                // stop (as if interrupted) after this step, writing the checkpoint
    // fine-tuning
    const char* method;         // full | lora | adapter | prefix
    const char* task;           // lm | cls | sft (checked against the data), or a multi-task spec KIND:TRAIN[:VAL] (multitask.c reads every one)
    const char* task_weights, *task_sampling, *task_head;  // multi-task: loss weights, proportional | temperature, the head eval/classify use
    float task_temp;            // multi-task: temperature T of --task-sampling temperature
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
    const char* dump_logits;  // eval: write the inputs and our logits here (onnx.c's dump_logits)
    const char* replay, *fisher;  // continual.c: --replay OLD (rehearsal), --fisher FILE (EWC's F and theta*)
    float replay_frac, ewc;       // --replay-frac F, --ewc LAMBDA (0 = off)
    int fisher_examples;          // ./train fisher: examples to estimate F on (0 = all)
    const char* host, *access_log;            // serve: the address to listen on, the JSONL access log
    int port, workers, queue, max_body;       // serve: port (0: any free one), connection threads, queue bound, body limit
    float timeout;                            // serve: seconds a read or a write may wait
    int exact_match;     // eval on SFT data: greedy-generate the responses of this many examples (-1 = all)
    int generate, max_new_tokens;  // eval on SFT data: generate N responses (-1 = all), BLEU and ROUGE-L (genmetrics.h)
    const char* bleu_smooth;       // none | exp | floor | add-k
    float lora_alpha, layer_decay, label_smoothing, lora_dropout, dropout;
    const char* lora_targets, *lora_layers, *freeze, *unfreeze, *class_weights, *adapter;
    const char* grid;    // sweep: "flag=v1,v2 flag=..."
    int random_points;   // sweep: run this many points drawn from the grid (0 = all)
    uint8_t given[112];   // given[i]: flag FLAGS[i] was on the command line (not just its default)
} Args;

// ---------------------------------------------------------------------------- the flag table
typedef enum { FLAG_SWITCH, FLAG_INT, FLAG_FLOAT, FLAG_U64, FLAG_STRING, FLAG_SCHEDULE } FlagType;

typedef struct {
    const char* name;     // "--batch"
    const char* value;    // what the value looks like in the help ("B"); NULL for a switch (no value)
    FlagType type;
    size_t field;         // offsetof(Args, ...)
    const char* def;      // the default, as it would be typed (parsed like a typed value); NULL: none
    const char* group;    // the --help section
    const char* range;    // numbers: the values allowed, "[lo,hi]" with ( ) for open ends; the parser refuses others
    const char* help;
} Flag;

#define F_(name, value, type, field, def, group, range, help) {name, value, type, offsetof(Args, field), def, group, range, help}
static const Flag FLAGS[] = {
    F_("--help", NULL, FLAG_SWITCH, help, NULL, "help", NULL, "print this help"),
    F_("--help-markdown", NULL, FLAG_SWITCH, help_markdown, NULL, "help", NULL, "print the flag table as Markdown (the README's table)"),
    // model
    F_("--model", "FILE", FLAG_STRING, model, NULL, "model", NULL, "load a model: finetune.c checkpoint, llm.c gpt2_124M.bin, HF model.safetensors or its folder (GPT-2, Llama, Qwen2), or a GGUF file of llama.cpp's gpt2, llama or qwen2 (F32, F16 or Q8_0; Q8_0 loads as int8)"),
    F_("--init", "L,NH,C", FLAG_STRING, init, NULL, "model", NULL, "random GPT-2-style init with L layers, NH heads, C channels"),
    F_("--vocab", "V", FLAG_INT, vocab, "50257", "model", "[1,4194304]", "vocabulary size for --init"),
    F_("--max-seq", "N", FLAG_INT, max_seq, "1024", "model", "[1,1048576]", "positions (maxT) for --init"),
    F_("--arch", "A", FLAG_STRING, arch, "gpt2", "model", NULL, "for --init: gpt2 (causal decoder), encoder (bidirectional, BERT-style: masked-LM pretraining, [MASK] = id --vocab, the class head on position 0) or llama (RMSNorm, RoPE, grouped-query attention, SwiGLU: Llama, SmolLM2, Qwen2)"),
    F_("--kv-heads", "N", FLAG_INT, kv_heads, "0", "model", "[0,1024]", "for --init --arch llama: key/value heads (grouped-query attention; must divide NH); 0: NH"),
    F_("--mlp-width", "F", FLAG_INT, mlp_width, "0", "model", "[0,1048576]", "for --init: the MLP's hidden width (Llama's intermediate_size); 0: 4C"),
    F_("--rope-theta", "X", FLAG_FLOAT, rope_theta, "10000", "model", "(0,1e12]", "for --init --arch llama: the RoPE base (HF rope_theta)"),
    F_("--norm-eps", "E", FLAG_FLOAT, norm_eps, "1e-5", "model", "(0,1]", "for --init --arch llama: the RMSNorm epsilon (HF rms_norm_eps)"),
    F_("--untied", "0|1", FLAG_INT, untied, "0", "model", "[0,1]", "for --init --arch llama: 1 = a separate LM head (lm_head), 0 = tied to the embedding"),
    F_("--qkv-bias", "0|1", FLAG_INT, qkv_bias, "0", "model", "[0,1]", "for --init --arch llama: 1 = q, k, v projections with biases (Qwen2)"),
    F_("--adapter", "FILE", FLAG_STRING, adapter, NULL, "model", NULL, "apply an adapter.bin (LoRA / adapters / prefix / head) to the model, or a Hugging Face PEFT LoRA adapter (its folder or adapter_model.safetensors)"),
    // data
    F_("--train", "FILE", FLAG_STRING, train, NULL, "data", NULL, "token file (LM), classification, SFT or token-label (NER) example file (from ./dataprep; the kind of file sets the task)"),
    F_("--val", "FILE", FLAG_STRING, val, NULL, "data", NULL, "validation data of the same kind"),
    F_("--task", "T", FLAG_STRING, task, NULL, "data", NULL, "lm|cls|sft|tok: check that the data is of this kind (default: take it from the data); or KIND:TRAIN[:VAL], repeated, for multi-task training (README \"Multi-task training\")"),
    F_("--batch", "B", FLAG_INT, B, "4", "data", "[1,65536]", "sequences per micro-batch (per rank under MPI)"),
    F_("--accum", "K", FLAG_INT, accum, "1", "data", "[1,65536]", "gradient accumulation: K micro-batches per optimizer step"),
    F_("--seq", "T", FLAG_INT, T, "64", "data", "[1,1048576]", "tokens per sequence; examples are truncated or padded to it"),
    F_("--shuffle", "0|1", FLAG_INT, shuffle, "1", "data", "[0,1]", "visit windows / examples in a seeded random order each epoch (0: in file order, as llm.c's loader)"),
    // fine-tuning method
    F_("--method", "M", FLAG_STRING, method, "full", "method", NULL, "full|lora|adapter|prefix"),
    F_("--lora-rank", "r", FLAG_INT, lora_rank, "8", "method", "[1,65536]", "LoRA rank"),
    F_("--lora-alpha", "a", FLAG_FLOAT, lora_alpha, "16", "method", "(0,1e6]", "LoRA scale is alpha/r"),
    F_("--lora-targets", "LIST", FLAG_STRING, lora_targets, "qkv,proj", "method", NULL, "comma list of qkv,proj,fc,fcproj"),
    F_("--lora-layers", "A-B", FLAG_STRING, lora_layers, NULL, "method", NULL, "layers that get LoRA (default all)"),
    F_("--lora-dropout", "P", FLAG_FLOAT, lora_dropout, "0", "method", "[0,1)", "dropout on the LoRA input while training"),
    F_("--adapter-dim", "A", FLAG_INT, adapter_dim, "16", "method", "[1,65536]", "adapter bottleneck width"),
    F_("--prefix-len", "P", FLAG_INT, prefix_len, "10", "method", "[1,65536]", "prefix-tuning positions per layer"),
    F_("--freeze", "LIST", FLAG_STRING, freeze, NULL, "method", NULL, "freeze: embeddings, head, final-ln, first:K, blocks:A-B, base (all GPT-2 weights)"),
    F_("--unfreeze", "LIST", FLAG_STRING, unfreeze, NULL, "method", NULL, "the same items, applied after --freeze (e.g. --freeze base --unfreeze blocks:10-11)"),
    F_("--layer-decay", "D", FLAG_FLOAT, layer_decay, "1", "method", "(0,1]", "layer-wise LR decay: block l gets lr*D^(L-1-l), embeddings lr*D^L"),
    F_("--classes", "K", FLAG_INT, classes, NULL, "method", "[1,65536]", "classes of the classification head (default: the dataset's label count)"),
    F_("--class-weights", "W", FLAG_STRING, class_weights, NULL, "method", NULL, "comma list of K loss weights, or 'auto' = N/(K*count_k) from the training data"),
    F_("--label-smoothing", "E", FLAG_FLOAT, label_smoothing, "0", "method", "[0,1)", "classification label smoothing"),
    // optimization
    F_("--steps", "N", FLAG_INT, steps, "100", "optimization", "[0,1000000000]", "optimizer steps"),
    F_("--epochs", "E", FLAG_FLOAT, epochs, NULL, "optimization", "[0,1e6]", "train for E passes over the data instead (sets --steps; fractions allowed)"),
    F_("--lr", "X", FLAG_FLOAT, lr, "3e-4", "optimization", "[0,1000]", "peak learning rate"),
    F_("--schedule", "S", FLAG_SCHEDULE, schedule, "cosine", "optimization", NULL, "constant|cosine|linear decay after warmup"),
    F_("--warmup", "N", FLAG_INT, warmup, "0", "optimization", "[0,1000000000]", "linear warmup steps"),
    F_("--min-lr-frac", "F", FLAG_FLOAT, min_lr_frac, "0.1", "optimization", "[0,1]", "decay ends at lr*F at the last step"),
    F_("--weight-decay", "W", FLAG_FLOAT, weight_decay, "0.1", "optimization", "[0,1e3]", "AdamW decoupled weight decay, on matrices only (not biases, LayerNorm)"),
    F_("--beta1", "B1", FLAG_FLOAT, beta1, "0.9", "optimization", "[0,1)", "AdamW beta1"),
    F_("--beta2", "B2", FLAG_FLOAT, beta2, "0.95", "optimization", "[0,1)", "AdamW beta2"),
    F_("--eps", "E", FLAG_FLOAT, eps, "1e-8", "optimization", "(0,1]", "AdamW epsilon"),
    F_("--grad-clip", "G", FLAG_FLOAT, grad_clip, "1.0", "optimization", "[0,1e9]", "clip the global gradient norm to G, 0 = off"),
    F_("--dropout", "P", FLAG_FLOAT, dropout, "0", "optimization", "[0,1)", "dropout on embeddings, attention probabilities and residual branches while training (GPT-2's embd/attn/resid_pdrop)"),
    F_("--seed", "S", FLAG_U64, seed, "1337", "optimization", NULL, "seed for init, data order, dropout and sampling"),
    // monitoring and output
    F_("--eval-every", "N", FLAG_INT, eval_every, "0", "output", "[0,1000000000]", "validation every N steps and at the end, 0 = only at the end"),
    F_("--val-batches", "N", FLAG_INT, val_batches, "20", "output", "[0,1000000000]", "batches per validation (0 = all)"),
    F_("--early-stop", "N", FLAG_INT, early_stop, "0", "output", "[0,1000000]", "stop after N validations without improvement of --metric; DIR/best.bin keeps the best"),
    F_("--metric", "M", FLAG_STRING, metric, "val_loss", "output", NULL, "val_loss | accuracy | f1 (macro F1; entity F1 for token labels): what --early-stop, best.bin and the sweep watch"),
    F_("--test", "FILE", FLAG_STRING, test, NULL, "output", NULL, "evaluate the best model (by --metric) on this data once, at the end; for classification also DIR/errors.md and DIR/confusion_test.svg, for token labels entity scores and DIR/errors.md"),
    F_("--tokenizer", "PATH", FLAG_STRING, tokenizer, NULL, "output", NULL, "the gpt2_bpe folder, a dataprep tokenizer, or a Hugging Face tokenizer.json (or a folder with one): decodes DIR/errors.md, and is needed by sample --prompt and classify"),
    F_("--print-every", "N", FLAG_INT, print_every, "1", "output", "[0,1000000000]", "console line (step, loss, lr, grad norm, tokens/s, ETA) every N steps"),
    F_("--log", "FILE", FLAG_STRING, log, NULL, "output", NULL, "JSONL, one line per step: step, loss (before the update), lr, grad_norm, tokens_per_s, and val_loss (val_accuracy) on eval steps"),
    F_("--out", "DIR", FLAG_STRING, out, NULL, "output", NULL, "the run folder: DIR/model.bin (last), DIR/best.bin (best on --val), DIR/ckpt.bin (resumable state), DIR/adapter.bin (fine-tuning tensors only), DIR/log.jsonl (unless --log), DIR/command.txt, DIR/curves.svg, DIR/report.md; export and quantize/prune: the output path"),
    F_("--save-every", "N", FLAG_INT, save_every, "0", "output", "[0,1000000000]", "also write DIR/ckpt.bin every N steps (0 = only at the end)"),
    F_("--resume", "DIR", FLAG_STRING, resume, NULL, "output", NULL, "continue from DIR/ckpt.bin with the same flags; reproduces the uninterrupted run"),
    F_("--stop-at", "N", FLAG_INT, stop_at, NULL, "output", "[0,1000000000]", "stop after step N as if interrupted (writes DIR/ckpt.bin; continue with --resume)"),
    // multi-task (multitask.c)
    F_("--task-weights", "W1,W2", FLAG_STRING, task_weights, NULL, "multitask", "(0,1e6]", "loss weight of each --task KIND:TRAIN[:VAL], in order, each in (0,1e6] (default: all 1)"),
    F_("--task-sampling", "S", FLAG_STRING, task_sampling, "proportional", "multitask", NULL, "proportional|temperature: each step trains one task, drawn with p_i ~ n_i (batches per epoch) or n_i^(1/T)"),
    F_("--task-temp", "T", FLAG_FLOAT, task_temp, "2", "multitask", "[1,1000]", "the temperature of --task-sampling temperature (1 = proportional, large = uniform)"),
    F_("--task-head", "NAME", FLAG_STRING, task_head, NULL, "multitask", NULL, "eval, classify, sample, export, extract: the task of a multi-task model to run (its head and class names)"),
    // distributed
    F_("--zero", "0|1", FLAG_INT, zero, "0", "distributed", "[0,1]", "1: shard AdamW state over the MPI ranks (ZeRO stage 1)"),
    // eval
    F_("--data", "FILE", FLAG_STRING, data, NULL, "eval", NULL, "the dataset to evaluate (eval, quantize and prune: the before/after table)"),
    F_("--max-batches", "N", FLAG_INT, max_batches, "0", "eval", "[0,1000000000]", "evaluate at most N batches (0 = all)"),
    F_("--exact-match", "N", FLAG_INT, exact_match, "0", "eval", "[-1,1000000000]", "on SFT data, also greedy-generate N responses (-1: all) and report the share reproduced exactly"),
    F_("--generate", "N", FLAG_INT, generate, "0", "eval", "[-1,1000000000]", "on SFT data, also generate the responses of N examples (-1: all) from their prompts (greedy unless --temperature, --top-k or --top-p is given; seeded by --seed) and report corpus BLEU-4 (sacreBLEU's, 13a tokenization, 0-100) and mean ROUGE-L F (rouge-score's, 0-1) against the reference responses; needs --tokenizer; with --out DIR also DIR/generations.jsonl"),
    F_("--max-new-tokens", "N", FLAG_INT, max_new_tokens, "128", "eval", "[1,10000000]", "--generate: new tokens per response at most (it stops earlier after <|endoftext|>, or --stop)"),
    F_("--bleu-smooth", "M", FLAG_STRING, bleu_smooth, "none", "eval", NULL, "--generate's BLEU smoothing, sacreBLEU's smooth_method: none|exp|floor|add-k (sacreBLEU's own default is exp; the two differ only when an n-gram order has no match in the whole corpus)"),
    F_("--dump-logits", "FILE", FLAG_STRING, dump_logits, NULL, "eval", NULL, "also write the inputs and the logits of the evaluated batches (float32, full batches; onnx.c documents the layout), for checking an ONNX export against"),
    // sample
    F_("--tokens", "IDS", FLAG_STRING, tokens, NULL, "sample", NULL, "the prompt as space-separated token ids"),
    F_("--prompt", "TEXT", FLAG_STRING, prompt, NULL, "sample", NULL, "the prompt as text (needs --tokenizer)"),
    F_("--gen", "N", FLAG_INT, gen_steps, "64", "sample", "[0,10000000]", "tokens to generate"),
    F_("--temperature", "X", FLAG_FLOAT, temperature, "1.0", "sample", "[0,100]", "sampling temperature (0 = greedy)"),
    F_("--top-k", "K", FLAG_INT, top_k, "0", "sample", "[0,4194304]", "keep the K most likely tokens (0 = off)"),
    F_("--top-p", "P", FLAG_FLOAT, top_p, "1.0", "sample", "(0,1]", "then the smallest set of them whose probability reaches P (1.0 = off)"),
    F_("--stop", "ID", FLAG_INT, stop_token, "-1", "sample", "[-1,4194303]", "stop after this token (default: the tokenizer's <|endoftext|>, 50256 for GPT-2; -1 = never)"),
    // classify
    F_("--input", "FILE", FLAG_STRING, input, "-", "classify", NULL, "lines of text to classify (- = stdin)"),
    F_("--labels", "NAMES", FLAG_STRING, labels, NULL, "classify", NULL, "class names: a,b,... or dataprep's PREFIX_labels.txt"),
    // export
    F_("--format", "F", FLAG_STRING, format, NULL, "export", NULL, "safetensors|llmc|peft|gguf|onnx"),
    F_("--dtype", "D", FLAG_STRING, dtype, NULL, "export", NULL, "gguf: f32|q8_0 (default q8_0 for an int8 model, else f32)"),
    F_("--merge", "0|1", FLAG_INT, merge, "0", "export", "[0,1]", "fold LoRA into the weights first (W += alpha/r B A)"),
    // compression
    F_("--prune", "MODE", FLAG_STRING, prune, NULL, "compress", NULL, "prune: unstructured|layer|heads|neurons"),
    F_("--sparsity", "S", FLAG_FLOAT, sparsity, "0", "compress", "[0,1)", "prune: fraction of the block-matrix weights to remove, in [0, 1)"),
    F_("--keep-sparsity", "0|1", FLAG_INT, keep_sparsity, "0", "compress", "[0,1]", "train: put a pruned model's zeros back after every step"),
    // continual learning (continual.c)
    F_("--replay", "FILE", FLAG_STRING, replay, NULL, "continual", NULL, "rehearsal: replace a seeded share of every batch's rows by rows of this earlier data (same task kind), e.g. --replay a_train.bin --replay-frac 0.2"),
    F_("--replay-frac", "F", FLAG_FLOAT, replay_frac, "0.2", "continual", "(0,1]", "the share of each batch's rows taken from --replay: round(F * rows) rows, exactly, every batch (e.g. --replay a_train.bin --replay-frac 0.25)"),
    F_("--ewc", "LAMBDA", FLAG_FLOAT, ewc, "0", "continual", "[0,1e12]", "EWC: add (LAMBDA/2) sum_i F_i (theta_i - theta*_i)^2 to the loss, F and theta* from --fisher (0 = off), e.g. --ewc 1e4 --fisher run_a/model.fisher"),
    F_("--fisher", "FILE", FLAG_STRING, fisher, NULL, "continual", NULL, "the Fisher file for --ewc, written by ./train fisher --model A.bin --data a_train.bin --out A.fisher"),
    F_("--fisher-examples", "N", FLAG_INT, fisher_examples, "1000", "continual", "[0,1000000000]", "fisher: estimate F on the first N examples (LM: windows of --seq + 1 tokens) of --data (0 = all), e.g. ./train fisher --model run_a/model.bin --data a_train.bin --fisher-examples 500 --out run_a/model.fisher"),
    // serve
    F_("--host", "ADDR", FLAG_STRING, host, "127.0.0.1", "serve", NULL, "IPv4 address to listen on (0.0.0.0: every interface)"),
    F_("--port", "N", FLAG_INT, port, "8080", "serve", "[0,65535]", "TCP port (0: any free port; the chosen one is printed)"),
    F_("--workers", "N", FLAG_INT, workers, "8", "serve", "[1,1024]", "connection threads (reading, parsing, writing; one model thread runs the model)"),
    F_("--queue", "N", FLAG_INT, queue, "64", "serve", "[1,65536]", "connections waiting for a worker; one more gets 503"),
    F_("--max-body", "BYTES", FLAG_INT, max_body, "1048576", "serve", "[1,1073741824]", "largest request body; larger gets 413"),
    F_("--timeout", "S", FLAG_FLOAT, timeout, "10", "serve", "(0,86400]", "seconds a read or a write may wait (a request that does not arrive in time gets 408)"),
    F_("--access-log", "FILE", FLAG_STRING, access_log, "-", "serve", NULL, "one JSONL line per request (time, endpoint, status, latency, tokens); - = stderr"),
    // sweep
    F_("--grid", "AXES", FLAG_STRING, grid, NULL, "sweep", NULL, "\"flag=v1,v2 flag=v1,v2\": one run per point of the grid"),
    F_("--random", "N", FLAG_INT, random_points, "0", "sweep", "[0,1000000]", "run N points drawn from the grid (seeded by --seed; 0 = all)"),
};
#undef F_
#define NUM_FLAGS ((int)(sizeof FLAGS / sizeof FLAGS[0]))
_Static_assert(sizeof FLAGS / sizeof FLAGS[0] <= sizeof(((Args*)0)->given), "Args.given needs a slot per flag");

// The help sections, in --help order.
static const char* const FLAG_GROUPS[][2] = {
    {"model", "model (one of --model, --init, --resume)"}, {"data", "data (from ./dataprep)"},
    {"method", "fine-tuning method"}, {"optimization", "optimization"}, {"output", "monitoring and output"},
    {"multitask", "multi-task training (several --task KIND:TRAIN[:VAL], one trunk, a head per task)"},
    {"distributed", "distributed (make mpi, mpirun -np N: --batch is per rank, the global batch N*B)"},
    {"eval", "eval"}, {"sample", "sample"}, {"classify", "classify"}, {"export", "export"},
    {"compress", "quantize and prune"}, {"continual", "continual learning (rehearsal, EWC)"}, {"sweep", "sweep"}, {"serve", "serve"}, {"help", "help"},
};

static int flag_index(const char* name) {
    for (int i = 0; i < NUM_FLAGS; i++)
        if (!strcmp(FLAGS[i].name, name)) return i;
    return -1;
}
// Whether a flag was given on the command line (not only defaulted).
static int flag_given(const Args* a, const char* name) {
    int i = flag_index(name);
    return i >= 0 && a->given[i];
}

// ---------------------------------------------------------------------------- parsing
// A number is refused unless all of it parses (no trailing text), it fits its type (no silent truncation of
// --batch 4294967298 to 2), and it lies in the flag's range; the error names the flag, the value and the range.
static long long parse_integer(const char* flag, const char* v) {
    char* e;
    errno = 0;
    long long x = strtoll(v, &e, 10);
    if (*e || e == v) failf("see ./train --help", "%s expects an integer, got '%s'", flag, v);
    if (errno == ERANGE) failf("see ./train --help", "%s %s is out of range", flag, v);
    return x;
}
static int parse_int_arg(const char* flag, const char* v) {
    long long x = parse_integer(flag, v);
    if (x < INT32_MIN || x > INT32_MAX) failf("see ./train --help", "%s %s is out of range", flag, v);
    return (int)x;
}
static float parse_float_arg(const char* flag, const char* v) {
    char* e;
    errno = 0;
    double x = strtod(v, &e);
    if (*e || e == v || !isfinite(x) || fabs(x) > 3.4e38) failf("see ./train --help", "%s expects a number, got '%s'", flag, v);
    return (float)x;
}
static uint64_t parse_u64_arg(const char* flag, const char* v) {
    char* e;
    errno = 0;
    unsigned long long x = strtoull(v, &e, 10);
    if (*e || e == v || v[0] == '-' || errno == ERANGE) failf("see ./train --help", "%s expects an integer in [0, 2^64), got '%s'", flag, v);
    return (uint64_t)x;
}

// Refuses x unless it is in range ("[lo,hi]", "(lo,hi]", ...).
static void check_range(const Flag* f, double x, const char* v) {
    if (!f->range) return;
    double lo, hi;
    char open, close;
    if (sscanf(f->range, "%c%lf,%lf%c", &open, &lo, &hi, &close) != 4) DIE("bad range in the flag table", f->name);
    int ok = (open == '(' ? x > lo : x >= lo) && (close == ')' ? x < hi : x <= hi);
    if (!ok) {
        char lo_s[32], hi_s[32];
        snprintf(lo_s, sizeof lo_s, "%.15g", lo);
        snprintf(hi_s, sizeof hi_s, "%.15g", hi);
        failf("see ./train --help", "%s %s must be in %c%s, %s%c", f->name, v, open, lo_s, hi_s, close);
    }
}

// Sets flag f's field from its text value v (a default or what was typed).
static void flag_set(Args* a, const Flag* f, const char* v) {
    char* p = (char*)a + f->field;
    switch (f->type) {
        case FLAG_SWITCH: *(int*)p = 1; break;
        case FLAG_INT: check_range(f, (double)parse_integer(f->name, v), v), *(int*)p = parse_int_arg(f->name, v); break;
        case FLAG_FLOAT: *(float*)p = parse_float_arg(f->name, v), check_range(f, *(float*)p, v); break;
        case FLAG_U64: *(uint64_t*)p = parse_u64_arg(f->name, v); break;
        case FLAG_STRING:
            if (!v[0]) failf("leave the flag out to get its default", "%s needs a value, got an empty string", f->name);
            *(const char**)p = v;
            break;
        case FLAG_SCHEDULE:
            if (!strcmp(v, "constant")) *(Schedule*)p = SCHED_CONSTANT;
            else if (!strcmp(v, "cosine")) *(Schedule*)p = SCHED_COSINE;
            else if (!strcmp(v, "linear")) *(Schedule*)p = SCHED_LINEAR;
            else failf("use constant, cosine or linear", "unknown --schedule '%s'", v);
            break;
    }
}

// The checks no single flag can make alone (each number's range is in the table): names of methods, metrics, tasks.
static void check_args(const Args* a) {
    if (strcmp(a->metric, "val_loss") && strcmp(a->metric, "accuracy") && strcmp(a->metric, "f1"))
        failf("use val_loss, accuracy or f1 (macro F1)", "unknown --metric '%s'", a->metric);
    if (strcmp(a->method, "full") && strcmp(a->method, "lora") && strcmp(a->method, "adapter") && strcmp(a->method, "prefix"))
        failf("use full, lora, adapter or prefix", "unknown --method '%s'", a->method);
    if (a->task && !strchr(a->task, ':') && strcmp(a->task, "lm") && strcmp(a->task, "cls") && strcmp(a->task, "sft") && strcmp(a->task, "tok"))
        failf("use lm, cls or sft, or KIND:TRAIN[:VAL] for multi-task training", "unknown --task '%s'", a->task);
    if (strcmp(a->task_sampling, "proportional") && strcmp(a->task_sampling, "temperature"))
        failf("use proportional or temperature", "unknown --task-sampling '%s'", a->task_sampling);
    if (strcmp(a->arch, ARCH_NAMES[ARCH_GPT2]) && strcmp(a->arch, ARCH_NAMES[ARCH_ENCODER]) && strcmp(a->arch, ARCH_NAMES[ARCH_LLAMA]))
        failf("use gpt2, encoder or llama", "unknown --arch '%s'", a->arch);
    if (strcmp(a->bleu_smooth, "none") && strcmp(a->bleu_smooth, "exp") && strcmp(a->bleu_smooth, "floor") && strcmp(a->bleu_smooth, "add-k"))
        failf("use none, exp, floor or add-k (sacreBLEU's smooth_method)", "unknown --bleu-smooth '%s'", a->bleu_smooth);
}

// argv: [./train] [COMMAND] [--flag value | --switch]... The command (a first word without "--") is kept in
// cmd and checked by train.c's command table; the flags are checked here.
static Args parse_args(int argc, char** argv) {
    Args a;
    memset(&a, 0, sizeof a);
    a.cmd = "train";
    a.argc = argc, a.argv = argv;
    for (int i = 0; i < NUM_FLAGS; i++)
        if (FLAGS[i].def) flag_set(&a, &FLAGS[i], FLAGS[i].def);
    int i = 1;
    if (argc > 1 && argv[1][0] != '-') a.cmd = argv[1], i = 2;
    for (; i < argc; i++) {
        int k = flag_index(!strcmp(argv[i], "-h") ? "--help" : argv[i]);
        if (k < 0) failf("see ./train --help for the list of flags", "unknown flag '%s'", argv[i]);
        const Flag* f = &FLAGS[k];
        if (f->type != FLAG_SWITCH && i + 1 >= argc) failf("see ./train --help", "flag %s needs a value", f->name);
        flag_set(&a, f, f->type == FLAG_SWITCH ? NULL : argv[++i]);
        a.given[k] = 1;
        if (a.help || a.help_markdown) return a;  // the rest need not parse
    }
    check_args(&a);
    return a;
}

// ---------------------------------------------------------------------------- help
// Every flag of one group, two columns, the help text wrapped at 110 characters.
static void flags_print_group(FILE* out, const char* group) {
    for (int i = 0; i < NUM_FLAGS; i++) {
        const Flag* f = &FLAGS[i];
        if (strcmp(f->group, group)) continue;
        char left[64];
        snprintf(left, sizeof left, "  %s%s%s", f->name, f->value ? " " : "", f->value ? f->value : "");
        char help[600];
        snprintf(help, sizeof help, "%s%s%s%s", f->help, f->def ? " (default " : "", f->def ? f->def : "", f->def ? ")" : "");
        const char* s = help;
        int first = 1;
        while (*s) {  // wrap at a space so each line fits 110 columns after the 24-column left part
            size_t n = strlen(s);
            if (n > 86) {
                n = 86;
                while (n > 0 && s[n] != ' ') n--;
                if (n == 0) n = 86;
            }
            fprintf(out, "%-23s %.*s\n", first ? left : "", (int)n, s);
            first = 0;
            s += n;
            while (*s == ' ') s++;
        }
    }
}

static void flags_print_help(FILE* out) {
    for (size_t g = 0; g < sizeof FLAG_GROUPS / sizeof FLAG_GROUPS[0]; g++) {
        fprintf(out, "%s:\n", FLAG_GROUPS[g][1]);
        flags_print_group(out, FLAG_GROUPS[g][0]);
    }
}

// Text in a Markdown table cell: a | would end the cell, so it is escaped (also inside `code`, as GitHub reads it).
static void markdown_cell(FILE* out, const char* s) {
    for (; *s; s++) {
        if (*s == '|') fputc('\\', out);
        fputc(*s, out);
    }
}

// The flag table as Markdown: the README's table is this output, pasted (test_gpt.c checks that they agree).
static void flags_print_markdown(FILE* out) {
    fprintf(out, "| flag | default | what it does |\n| --- | --- | --- |\n");
    for (size_t g = 0; g < sizeof FLAG_GROUPS / sizeof FLAG_GROUPS[0]; g++) {
        fprintf(out, "| **%s** | | |\n", FLAG_GROUPS[g][1]);
        for (int i = 0; i < NUM_FLAGS; i++) {
            const Flag* f = &FLAGS[i];
            if (strcmp(f->group, FLAG_GROUPS[g][0])) continue;
            fprintf(out, "| `%s%s", f->name, f->value ? " " : "");
            markdown_cell(out, f->value ? f->value : "");
            fprintf(out, "` | ");
            markdown_cell(out, f->def ? f->def : "");
            fprintf(out, " | ");
            markdown_cell(out, f->help);
            fprintf(out, " |\n");
        }
    }
}
