// setup.c: from the flags to a model ready to train: load or initialise it (model_from_args), add the
// fine-tuning method's tensors, freeze what the flags freeze, layer-wise LR decay and class weights.

#pragma once
#include "flags.h"    // defines: Args
#include "formats.c"  // defines: load_model, load_adapter, TrainState
#include "loader.c"   // defines: DataLoader

// Builds the model the flags ask for: --resume DIR, --model FILE or --init L,NH,C; then --adapter FILE.
static void model_from_args(GPT* model, const Args* a, TrainState* state, uint64_t* rng) {
    if (a->resume) {
        char path[1024];
        snprintf(path, sizeof path, "%s/ckpt.bin", a->resume);
        load_model(model, path, state);
        return;  // the checkpoint holds the fine-tuning tensors and the trainable set already
    } else if (a->model) {
        load_model(model, a->model, NULL);
    } else if (a->init) {
        GPTConfig c = {.maxT = a->max_seq, .V = a->vocab};
        long v[3];
        char* e = (char*)a->init;
        for (int k = 0; k < 3; k++) {  // three integers, each in range before any product is formed
            const char* s = e;
            errno = 0;
            v[k] = strtol(s, &e, 10);
            if (e == s || errno || *e != (k < 2 ? ',' : 0)) v[k] = -1;
            else if (k < 2) e++;
            if (v[k] < 0) break;
        }
        if (v[0] < 1 || v[0] > 1024 || v[1] < 1 || v[1] > 1024 || v[2] < 1 || v[2] > 65536 || v[2] % v[1])
            failf("for example --init 12,12,768 (GPT-2 124M): L and NH in [1, 1024], C in [1, 65536], C divisible by NH",
                  "bad --init '%s'", a->init);
        c.L = (int)v[0], c.NH = (int)v[1], c.C = (int)v[2];
        if (c.V < 2) failf(NULL, "--vocab must be at least 2");
        if (!strcmp(a->arch, ARCH_NAMES[ARCH_ENCODER])) c.arch = ARCH_ENCODER, c.mask_id = c.V++;  // [MASK]: one id after the text's
        c.F = a->mlp_width == 4 * c.C ? 0 : a->mlp_width;
        if (!strcmp(a->arch, ARCH_NAMES[ARCH_LLAMA])) {
            c.arch = ARCH_LLAMA, c.rope_theta = a->rope_theta, c.norm_eps = a->norm_eps, c.untied = a->untied, c.qkv_bias = a->qkv_bias;
            c.n_kv_heads = a->kv_heads && a->kv_heads != c.NH ? a->kv_heads : 0;
            if (kv_heads(&c) > c.NH || c.NH % kv_heads(&c))
                failf("the query heads are shared out evenly: NKV divides NH (SmolLM2-135M: 9 heads, 3 KV heads)",
                      "--kv-heads %d with %d heads", a->kv_heads, c.NH);
            if ((c.C / c.NH) % 2) failf("RoPE turns channel pairs: use an even head size C/NH", "--init %s has head size %d", a->init, c.C / c.NH);
        } else {
            const char* llama_only[] = {"--kv-heads", "--rope-theta", "--norm-eps", "--untied", "--qkv-bias"};
            for (int k = 0; k < 5; k++)
                if (flag_given(a, llama_only[k])) failf("add --arch llama", "%s is for Llama-style models; --arch is %s", llama_only[k], a->arch);
        }
        c.Vp = pad_vocab(c.V);
        double bytes = 4.0 * (double)num_parameters(&c);  // the weights alone; training needs about 4x this
        if (bytes > 64e9)
            failf("choose a smaller --init, --vocab or --max-seq", "--init %s with --vocab %d --max-seq %d has %.3g parameters (%.0f GB of fp32 weights)",
                  a->init, c.V, c.maxT, bytes / 4, bytes / 1e9);
        gpt_build(model, c);
        gpt_init_random(model, rng);
    } else {
        failf("give --model FILE, --init L,NH,C or --resume DIR", "no model to %s", a->cmd);
    }
    if (a->adapter) load_adapter(model, a->adapter);
}

// Parses "A-B" (or "A") into a layer range within [0, L).
static void parse_layer_range(const char* s, int L, int* lo, int* hi, const char* flag) {
    int n = sscanf(s, "%d-%d", lo, hi);
    if (n == 1) *hi = *lo;
    if (n < 1 || *lo < 0 || *hi < *lo || *hi >= L)
        failf("layers are numbered 0..L-1", "%s '%s' is outside the model's layers 0-%d", flag, s, L - 1);
}

// Applies one --freeze / --unfreeze list: embeddings, head, final-ln, first:K, blocks:A-B, base.
static void apply_freeze_list(GPT* model, const char* list, int on, const char* flag) {
    const GPTConfig* c = &model->config;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    for (char* item = strtok(buf, ","); item; item = strtok(NULL, ",")) {
        int lo = 0, hi = -1;
        if (!strcmp(item, "embeddings")) {  // wte is also the LM head (tied): freezing it freezes the head
            gpt_set_trainable(model, PIDX(wte), -1, on);
            gpt_set_trainable(model, PIDX(wpe), -1, on);
        } else if (!strcmp(item, "head")) {  // the LM head is wte (tied); a class head is cls_w
            gpt_set_trainable(model, c->num_classes ? PIDX(cls_w) : c->num_tags ? PIDX(tok_w)
                                     : param_numel(c, PIDX(lm_head)) ? PIDX(lm_head) : PIDX(wte), -1, on);
            if (c->num_tags) gpt_set_trainable(model, PIDX(tok_b), -1, on);
        } else if (!strcmp(item, "final-ln")) {
            gpt_set_trainable(model, PIDX(lnfw), -1, on);
            gpt_set_trainable(model, PIDX(lnfb), -1, on);
        } else if (!strcmp(item, "base")) {
            for (int i = 0; i < NUM_PARAMS; i++) if (param_is_base(i)) gpt_set_trainable(model, i, -1, on);
        } else if (!strncmp(item, "first:", 6)) {
            int k = atoi(item + 6);
            if (k < 1 || k > c->L) failf("first:K takes 1 <= K <= L", "%s item '%s' with L=%d", flag, item, c->L);
            lo = 0, hi = k - 1;
        } else if (!strncmp(item, "blocks:", 7)) {
            parse_layer_range(item + 7, c->L, &lo, &hi, flag);
        } else {
            failf("items: embeddings, head, final-ln, first:K, blocks:A-B, base", "%s: unknown item '%s'", flag, item);
        }
        for (int l = lo; l <= hi; l++)  // every per-layer base tensor of those blocks
            for (int i = 0; i < NUM_BASE_PARAMS; i++)
                if (param_per_layer(i)) gpt_set_trainable(model, i, l, on);
    }
}

// Sets up the fine-tuning the flags ask for on a freshly loaded model (not on resume, where the checkpoint
// already holds it): the head for the data, the method's tensors, the trainable set, and LR scales.
static void setup_finetuning(GPT* model, const Args* a, const DataLoader* dl, uint64_t* rng) {
    GPTConfig c = model->config;
    int peft = strcmp(a->method, "full") != 0;
    if (dl->kind == DATA_CLS && !c.num_classes) {
        c.num_classes = a->classes ? a->classes : dl->ds.num_labels;
        if (c.num_classes < 2) failf("classification needs at least 2 classes", "--classes %d (dataset %s has %d labels)", c.num_classes, dl->path, dl->ds.num_labels);
    }
    if (dl->kind == DATA_TOK && !c.num_tags) {  // a token-classification head with the training file's tags
        if (c.num_classes) failf("start token classification from an LM model", "%s has a %d-class head", dl->path, c.num_classes);
        c.num_tags = dl->ds.num_labels;
    }
    if (!strcmp(a->method, "lora")) {  // a rank above C is no longer low-rank: the update B A is then any C x C matrix
        if (a->lora_rank > c.C) failf("typical ranks are 4-64", "--lora-rank %d is larger than the model's width C = %d", a->lora_rank, c.C);
        c.lora_r = a->lora_rank;
        c.lora_alpha = a->lora_alpha;
        c.lora_targets = 0;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", a->lora_targets);
        // GPT-2: its four matrices by our names. Llama: PEFT's module names (q_proj or q, ...), and our names
        // mean the same matrices there (qkv = q,k,v; proj = o; fc = gate,up; fcproj = down).
        int llama = is_llama(&c);
        const char* hint = llama ? "targets: q, k, v, o, gate, up, down (or qkv, proj, fc, fcproj)" : "targets: qkv, proj, fc, fcproj";
        static const struct { const char *name, *peft; int gpt2, llama; } T[] = {
            {"qkv", NULL, LORA_QKV, LORA_Q | LORA_K | LORA_V}, {"proj", NULL, LORA_PROJ, LORA_PROJ},
            {"fc", NULL, LORA_FC, LORA_GATE | LORA_UP},         {"fcproj", NULL, LORA_FCPROJ, LORA_FCPROJ},
            {"q", "q_proj", 0, LORA_Q},   {"k", "k_proj", 0, LORA_K},   {"v", "v_proj", 0, LORA_V},
            {"o", "o_proj", 0, LORA_PROJ}, {"gate", "gate_proj", 0, LORA_GATE}, {"up", "up_proj", 0, LORA_UP},
            {"down", "down_proj", 0, LORA_FCPROJ},
        };
        for (char* s = strtok(buf, ","); s; s = strtok(NULL, ",")) {
            int k = 0, n = (int)(sizeof T / sizeof T[0]);
            while (k < n && strcmp(s, T[k].name) && !(T[k].peft && !strcmp(s, T[k].peft))) k++;
            int bits = k == n ? 0 : llama ? T[k].llama : T[k].gpt2;
            if (!bits && k < n) failf(hint, "--lora-targets '%s' is a Llama module; this is a %s model", s, ARCH_NAMES[c.arch]);
            if (!bits) failf(hint, "unknown --lora-targets name '%s'", s);
            c.lora_targets |= bits;
        }
        if (!c.lora_targets) failf(hint, "--lora-targets '%s' names no target", a->lora_targets);
        c.lora_first = 0;
        c.lora_last = c.L - 1;
        if (a->lora_layers) parse_layer_range(a->lora_layers, c.L, &c.lora_first, &c.lora_last, "--lora-layers");
    }
    if (!strcmp(a->method, "adapter")) {  // a bottleneck is narrower than the stream it reads (Houlsby et al.: C/16-ish)
        if (a->adapter_dim > c.C) failf("typical widths are C/64 to C/4", "--adapter-dim %d is wider than the model's width C = %d", a->adapter_dim, c.C);
        c.adapter_dim = a->adapter_dim;
    }
    if (!strcmp(a->method, "prefix")) {
        if (a->prefix_len > c.maxT) failf("typical prefixes are 10-100 positions", "--prefix-len %d is longer than the model's context maxT = %d", a->prefix_len, c.maxT);
        c.prefix_len = a->prefix_len;
    }
    if (memcmp(&c, &model->config, sizeof c)) gpt_set_peft(model, c, rng);
    if (peft) apply_freeze_list(model, "base", 0, "--method");  // parameter-efficient: the base is frozen
    if (c.num_classes || c.num_tags)  // an untied LM head (Llama) is not used by a class or tag head: frozen, so no decay shrinks it
        gpt_set_trainable(model, PIDX(lm_head), -1, 0);
    for (int l = 0; l < c.L; l++)  // LoRA outside its layer range stays zero and frozen
        if (l < c.lora_first || l > c.lora_last)
            for (int i = 0; i < NUM_PARAMS; i++)
                if (!strncmp(PARAM_TABLE[i].name, "lora_", 5)) gpt_set_trainable(model, i, l, 0);
    if (a->freeze) apply_freeze_list(model, a->freeze, 0, "--freeze");
    if (a->unfreeze) apply_freeze_list(model, a->unfreeze, 1, "--unfreeze");
}

// Layer-wise LR decay: per-layer slices of block l get D^(L-1-l); the embeddings D^L; the rest 1.
static void set_layer_decay(GPT* model, float d) {
    int L = model->config.L;
    for (int i = 0; i < NUM_PARAMS; i++)
        for (int l = 0; l < L; l++) {
            float s = 1.0f;
            if (param_per_layer(i)) s = powf(d, (float)(L - 1 - l));
            else if (i == PIDX(wte) || i == PIDX(wpe)) s = powf(d, (float)L);
            model->lr_scale[(size_t)i * L + l] = s;
        }
}

// Class weights: a comma list of K numbers, or "auto" = N / (K * count_k) over the training labels.
static float* parse_class_weights(const char* spec, const DataLoader* dl, int K) {
    float* w = (float*)mallocCheck((size_t)K * sizeof(float));
    if (!strcmp(spec, "auto")) {
        size_t* count = (size_t*)callocCheck((size_t)K, sizeof(size_t));
        for (uint64_t e = 0; e < dl->ds.count; e++) {
            Example ex;
            if (dataset_get(&dl->ds, e, &ex) == 0 && ex.label >= 0 && ex.label < K) count[ex.label]++;
        }
        for (int k = 0; k < K; k++) {
            if (!count[k]) failf("give the weights by hand (--class-weights w1,w2,...)", "--class-weights auto: class %d never occurs in %s", k, dl->path);
            w[k] = (float)dl->ds.count / ((float)K * count[k]);
        }
        free(count);
        return w;
    }
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    int k = 0;
    for (char* s = strtok(buf, ","); s; s = strtok(NULL, ",")) {
        if (k == K) failf(NULL, "--class-weights has more than K=%d values", K);
        w[k++] = parse_float_arg("--class-weights", s);
        if (w[k - 1] < 0.0f) failf(NULL, "--class-weights must not be negative");
    }
    if (k != K) failf(NULL, "--class-weights has %d values, the head has K=%d classes", k, K);
    return w;
}

// AdamW's settings from the flags (the learning rate is set per step by the schedule).
static AdamWConfig adamw_config(const Args* a) {
    AdamWConfig o = {a->lr, a->beta1, a->beta2, a->eps, a->weight_decay};
    return o;
}
