// onnx.c: ONNX export (./train export --format onnx --out DIR writes DIR/model.onnx, and for an LM also
// DIR/decoder_with_past_model.onnx, the decoder with a KV cache), written by hand: the protobuf wire format,
// the few ONNX messages a model file needs, and the GPT-2 forward of model.h as an ONNX graph of standard
// operators (opset 17), with the LM head or the classification head. Also the logits dump
// (./train eval --dump-logits FILE) that dev/onnx/check.sh compares ONNX Runtime's outputs with.
//
// The file (onnx.proto, ModelProto) is a protobuf message; this is all of protobuf it takes:
//   a message is a sequence of fields, each a key varint (field number << 3 | wire type) and a value:
//   wire type 0 a varint (7 bits a byte, low first, high bit = more follows; int64 as its two's complement),
//   5 four little-endian bytes (float), 2 a varint length and that many bytes (strings, bytes, sub-messages).
//   Repeated fields are the field written again; field order does not matter.
// The messages and fields used (numbers from onnx.proto):
//   ModelProto      1 ir_version  2 producer_name  6 doc_string  7 graph  8 opset_import
//   OperatorSetId   1 domain  2 version
//   GraphProto      1 node  2 name  5 initializer  11 input  12 output
//   NodeProto       1 input  2 output  3 name  4 op_type  5 attribute
//   AttributeProto  1 name  2 f  3 i  8 ints  20 type (1 FLOAT, 2 INT, 7 INTS)
//   TensorProto     1 dims  2 data_type (1 FLOAT, 7 INT64)  8 name  9 raw_data (little-endian)
//   ValueInfoProto  1 name  2 type;  TypeProto 1 tensor_type;  TypeProto.Tensor 1 elem_type  2 shape
//   TensorShapeProto 1 dim;  Dimension 1 dim_value  2 dim_param (a name: a dynamic axis)
//
// The graph (N = B*T rows; "batch_size" and "sequence_length" are dynamic axes, as Hugging Face Optimum names
// them). Inputs: input_ids (B,T) int64, and with a class head attention_mask (B,T) int64 (1 on real tokens,
// which come first: the head reads position sum(mask) - 1, as cls_forward reads lengths[b] - 1). Output:
// logits (B,T,V) for the LM head (the padded vocabulary rows are left out), (B,K) for the class head.
//   x = Gather(wte, input_ids) + Slice(wpe, P, P+T)         encoder_forward (P = 0 but in the decoder)
//   per layer: LayerNormalization(eps 1e-5), Gemm(transB=1) with our (out, in) weights, the heads by Reshape
//   and Transpose, MatMul(q, k^T) * 1/sqrt(hs), Where(key after query, -inf), Softmax, MatMul(att, v),
//   Gemm, Add; LayerNormalization, Gemm, GELU (tanh form, from Mul/Add/Tanh: Gelu is opset 20), Gemm, Add
//   final LayerNormalization, then Gemm(lnf, wte, transB=1) (the tied LM head) or GatherND of the pooled
//   row and Gemm(row, cls_w, transB=1)
// The causal mask is built from Range(0, T) inside the graph, so no axis is fixed by the export.
// The decoder adds past_key_values.N.key/value inputs (batch_size, NH, past_sequence_length, hs) and
// present.N.key/value outputs (batch_size, NH, past_sequence_length + sequence_length, hs), Hugging Face
// Optimum's names and axes: keys and values of earlier tokens in, the same with these T appended out.
// Weights are stored once in each file (wte serves the embedding and the LM head), under our table's names
// (h.N.qkvw).
// Kept valid C++ as well (train.cu includes train.c): casts on malloc, no compound literals.

#pragma once
#include "loader.c"    // defines: GPT, DataLoader, batch_forward (the logits dump)

// ---------------------------------------------------------------------------- protobuf wire format
enum { PB_VARINT = 0, PB_I32 = 5, PB_LEN = 2 };

static size_t pb_varint_size(uint64_t v) {
    size_t n = 1;
    for (; v >= 0x80; v >>= 7) n++;
    return n;
}
static void pb_varint(ByteVec* b, uint64_t v) {
    unsigned char t[10];
    size_t n = 0;
    for (; v >= 0x80; v >>= 7) t[n++] = (unsigned char)(v | 0x80);
    t[n++] = (unsigned char)v;
    bytevec_append(b, t, n);
}
static void pb_key(ByteVec* b, int field, int wire) { pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }
static void pb_int(ByteVec* b, int field, int64_t v) {  // int32, int64, enum: negatives take 10 bytes
    pb_key(b, field, PB_VARINT);
    pb_varint(b, (uint64_t)v);
}
static void pb_float(ByteVec* b, int field, float v) {
    pb_key(b, field, PB_I32);
    bytevec_append(b, &v, 4);
}
static void pb_bytes(ByteVec* b, int field, const void* p, size_t n) {
    pb_key(b, field, PB_LEN);
    pb_varint(b, n);
    bytevec_append(b, p, n);
}
static void pb_str(ByteVec* b, int field, const char* s) { pb_bytes(b, field, s, strlen(s)); }
static void pb_msg(ByteVec* b, int field, const ByteVec* m) { pb_bytes(b, field, m->data, m->len); }

// ---------------------------------------------------------------------------- the graph builder
enum { ONNX_FLOAT = 1, ONNX_INT64 = 7 };
#define ONNX_OPSET 17  // LayerNormalization is opset 17
#define ONNX_IR 8      // the IR version of ONNX 1.12, the release that introduced opset 17

// An initializer: a weight (pointing into the model, not copied) or a small constant (its values in own).
typedef struct {
    char name[64];
    int dtype, nd;
    int64_t dims[4];
    const float* weight;  // NULL for a constant
    size_t nbytes;
    int64_t own[4];       // a constant's values: up to 4 int64, or one float in the first 4 bytes
} OnnxInit;
static const void* onnx_init_data(const OnnxInit* t) { return t->weight ? (const void*)t->weight : (const void*)t->own; }

typedef struct {
    ByteVec nodes;   // GraphProto field 1 entries, already encoded
    OnnxInit* init;
    int ninit, nnodes;
    char** names;    // every value name the graph made (freed with it)
    int nnames;
} OnnxGraph;

// A new value name, printf-style; it lives as long as the graph.
static const char* onnx_name(OnnxGraph* g, const char* fmt, ...) {
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g->names = (char**)reallocCheck(g->names, (size_t)(g->nnames + 1) * sizeof(char*));
    char* s = (char*)mallocCheck(strlen(buf) + 1);
    memcpy(s, buf, strlen(buf) + 1);
    return g->names[g->nnames++] = s;
}

static OnnxInit* onnx_add_init(OnnxGraph* g, const char* name, int dtype, int nd, const int64_t* dims) {
    g->init = (OnnxInit*)reallocCheck(g->init, (size_t)(g->ninit + 1) * sizeof(OnnxInit));
    OnnxInit* t = &g->init[g->ninit++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype, t->nd = nd;
    for (int d = 0; d < nd; d++) t->dims[d] = dims[d];
    return t;
}
// A weight: n floats of the model's memory, with shape dims (1-D or 2-D).
static const char* onnx_weight(OnnxGraph* g, const char* name, const float* data, int64_t d0, int64_t d1) {
    int64_t dims[2] = {d0, d1};
    OnnxInit* t = onnx_add_init(g, name, ONNX_FLOAT, d1 ? 2 : 1, dims);
    t->weight = data;
    t->nbytes = (size_t)d0 * (size_t)(d1 ? d1 : 1) * sizeof(float);
    return onnx_name(g, "%s", name);
}
// A constant: n (<= 4) int64 values, 1-D (vec = 1) or a scalar (vec = 0, n = 1).
static const char* onnx_i64(OnnxGraph* g, const char* name, int vec, int n, const int64_t* v) {
    int64_t dims[1] = {n};
    OnnxInit* t = onnx_add_init(g, name, ONNX_INT64, vec ? 1 : 0, dims);
    memcpy(t->own, v, (size_t)n * sizeof(int64_t));
    t->nbytes = (size_t)n * sizeof(int64_t);
    return onnx_name(g, "%s", name);
}
static const char* onnx_f32(OnnxGraph* g, const char* name, float v) {  // a float scalar
    OnnxInit* t = onnx_add_init(g, name, ONNX_FLOAT, 0, NULL);
    memcpy(t->own, &v, 4);
    t->nbytes = 4;
    return onnx_name(g, "%s", name);
}

// Attributes, appended to a node's attribute list (NodeProto field 5).
static void onnx_attr_int(ByteVec* a, const char* name, int64_t v) {
    ByteVec m = {NULL, 0, 0};
    pb_str(&m, 1, name);
    pb_int(&m, 3, v);
    pb_int(&m, 20, 2);  // INT
    pb_msg(a, 5, &m);
    free(m.data);
}
static void onnx_attr_float(ByteVec* a, const char* name, float v) {
    ByteVec m = {NULL, 0, 0};
    pb_str(&m, 1, name);
    pb_float(&m, 2, v);
    pb_int(&m, 20, 1);  // FLOAT
    pb_msg(a, 5, &m);
    free(m.data);
}
static void onnx_attr_ints(ByteVec* a, const char* name, int n, const int64_t* v) {
    ByteVec m = {NULL, 0, 0};
    pb_str(&m, 1, name);
    for (int i = 0; i < n; i++) pb_int(&m, 8, v[i]);
    pb_int(&m, 20, 7);  // INTS
    pb_msg(a, 5, &m);
    free(m.data);
}

// One node with one output, named out; inputs are the names after attrs, up to a NULL. attrs: encoded
// attributes (the onnx_attr_* helpers) or NULL; freed here. Returns out.
static const char* onnx_node(OnnxGraph* g, const char* op, const char* out, ByteVec* attrs, ...) {
    ByteVec m = {NULL, 0, 0};
    va_list ap;
    va_start(ap, attrs);
    for (const char* in; (in = va_arg(ap, const char*)) != NULL;) pb_str(&m, 1, in);
    va_end(ap);
    pb_str(&m, 2, out);
    pb_str(&m, 3, out);  // the node is named after its output (unique, and readable in Netron)
    pb_str(&m, 4, op);
    if (attrs) {
        bytevec_append(&m, attrs->data, attrs->len);
        free(attrs->data);
    }
    pb_msg(&g->nodes, 1, &m);
    free(m.data);
    g->nnodes++;
    return out;
}
#define OP(op, out, ...) onnx_node(g, op, out, NULL, __VA_ARGS__, (const char*)NULL)
#define OPA(op, out, attrs, ...) onnx_node(g, op, out, attrs, __VA_ARGS__, (const char*)NULL)

// A graph input or output (ValueInfoProto) of element type dtype; each dim a number, or a name (a dynamic
// axis) where dim_names[d] is not NULL.
static void onnx_value_info(ByteVec* out, int field, const char* name, int dtype, int nd, const int64_t* dims,
                            const char* const* dim_names) {
    ByteVec shape = {NULL, 0, 0}, tensor = {NULL, 0, 0}, type = {NULL, 0, 0}, vi = {NULL, 0, 0};
    for (int d = 0; d < nd; d++) {
        ByteVec dim = {NULL, 0, 0};
        if (dim_names[d]) pb_str(&dim, 2, dim_names[d]);
        else pb_int(&dim, 1, dims[d]);
        pb_msg(&shape, 1, &dim);
        free(dim.data);
    }
    pb_int(&tensor, 1, dtype);
    pb_msg(&tensor, 2, &shape);
    pb_msg(&type, 1, &tensor);
    pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &type);
    pb_msg(out, field, &vi);
    free(shape.data), free(tensor.data), free(type.data), free(vi.data);
}

// The TensorProto of an initializer up to its raw_data (dims, data_type, name), and the whole message's size.
static void onnx_tensor_head(ByteVec* h, const OnnxInit* t) {
    for (int d = 0; d < t->nd; d++) pb_int(h, 1, t->dims[d]);
    pb_int(h, 2, t->dtype);
    pb_str(h, 8, t->name);
}
static size_t onnx_tensor_size(const OnnxInit* t, size_t head) {
    return head + 1 + pb_varint_size(t->nbytes) + t->nbytes;  // + raw_data's key, length and bytes
}

// Writes the ModelProto to path. The weights go straight from the model's memory to the file: the graph's
// length prefix is computed first from the sizes, so nothing the size of the model is built in memory.
static void onnx_write(OnnxGraph* g, const ByteVec* io, const char* doc, const char* path) {
    ByteVec head = {NULL, 0, 0}, graph = {NULL, 0, 0}, opset = {NULL, 0, 0};
    bytevec_append(&graph, g->nodes.data, g->nodes.len);
    pb_str(&graph, 2, "finetune_c_gpt2");
    bytevec_append(&graph, io->data, io->len);
    uint64_t glen = graph.len;
    ByteVec* th = (ByteVec*)callocCheck((size_t)g->ninit, sizeof(ByteVec));
    for (int i = 0; i < g->ninit; i++) {
        onnx_tensor_head(&th[i], &g->init[i]);
        size_t n = onnx_tensor_size(&g->init[i], th[i].len);
        glen += 1 + pb_varint_size(n) + n;
    }
    if (glen >= (1ull << 31))
        failf("protobuf messages are limited to 2 GiB (ONNX's external-data files are not written here)",
              "%s: the model is %.2f GB", path, glen / 1e9);
    pb_int(&head, 1, ONNX_IR);
    pb_str(&head, 2, "finetune.c");
    pb_str(&head, 6, doc);
    pb_str(&opset, 1, "");
    pb_int(&opset, 2, ONNX_OPSET);
    pb_msg(&head, 8, &opset);
    pb_key(&head, 7, PB_LEN);
    pb_varint(&head, glen);
    SafeWriter w;
    safe_open(&w, path);
    fwrite_check(head.data, head.len, w.f, path);
    fwrite_check(graph.data, graph.len, w.f, path);
    for (int i = 0; i < g->ninit; i++) {
        const OnnxInit* t = &g->init[i];
        ByteVec k = {NULL, 0, 0};
        pb_key(&k, 5, PB_LEN);
        pb_varint(&k, onnx_tensor_size(t, th[i].len));
        bytevec_append(&k, th[i].data, th[i].len);
        pb_key(&k, 9, PB_LEN);
        pb_varint(&k, t->nbytes);
        fwrite_check(k.data, k.len, w.f, path);
        fwrite_check(onnx_init_data(t), t->nbytes, w.f, path);
        free(k.data), free(th[i].data);
    }
    safe_close(&w);
    free(th), free(head.data), free(graph.data), free(opset.data);
}

static void onnx_graph_free(OnnxGraph* g) {
    for (int i = 0; i < g->nnames; i++) free(g->names[i]);
    free(g->names), free(g->init), free(g->nodes.data);
    memset(g, 0, sizeof *g);
}

// ---------------------------------------------------------------------------- GPT-2 as an ONNX graph
// y = gelu(x) as gelu_forward computes it, 0.5 x (1 + tanh(s (x + 0.044715 x^3))), the same products in
// the same order ((0.044715 x) x) x. (Opset 20's Gelu(approximate="tanh") is one node; 17 has none.)
static const char* onnx_gelu(OnnxGraph* g, const char* x, const char* pre, const char* cube_k, const char* s,
                             const char* one, const char* half) {
    const char* a = OP("Mul", onnx_name(g, "%s.gelu.kx", pre), x, cube_k);
    a = OP("Mul", onnx_name(g, "%s.gelu.kx2", pre), a, x);
    a = OP("Mul", onnx_name(g, "%s.gelu.kx3", pre), a, x);
    const char* u = OP("Add", onnx_name(g, "%s.gelu.inner", pre), x, a);
    u = OP("Mul", onnx_name(g, "%s.gelu.u", pre), u, s);
    const char* th = OP("Tanh", onnx_name(g, "%s.gelu.tanh", pre), u);
    th = OP("Add", onnx_name(g, "%s.gelu.1p", pre), th, one);
    const char* hx = OP("Mul", onnx_name(g, "%s.gelu.halfx", pre), x, half);
    return OP("Mul", onnx_name(g, "%s.gelu", pre), hx, th);
}

static const char* onnx_layernorm(OnnxGraph* g, const char* out, const char* x, const char* w, const char* b) {
    ByteVec at = {NULL, 0, 0};
    onnx_attr_int(&at, "axis", -1);
    onnx_attr_float(&at, "epsilon", 1e-5f);  // layernorm_forward's
    return OPA("LayerNormalization", out, &at, x, w, b);
}
// out(N,OC) = x(N,IN) @ W^T + b with W stored (OC, IN) as ours: Gemm(transB = 1). b may be NULL.
static const char* onnx_linear(OnnxGraph* g, const char* out, const char* x, const char* w, const char* b) {
    ByteVec at = {NULL, 0, 0};
    onnx_attr_int(&at, "transB", 1);
    return b ? OPA("Gemm", out, &at, x, w, b) : OPA("Gemm", out, &at, x, w);
}
static const char* onnx_transpose(OnnxGraph* g, const char* out, const char* x, int n, const int64_t* perm) {
    ByteVec at = {NULL, 0, 0};
    onnx_attr_ints(&at, "perm", n, perm);
    return OPA("Transpose", out, &at, x);
}

// Builds the forward of a GPT-2 model (fp32, no LoRA left unmerged, no adapters or prefix) into g, and its
// inputs and outputs into io (GraphProto fields 11 and 12).
// kv = 1 (LM head only): the decoder with a KV cache, as infer.h's prefill and decode steps. Extra inputs
// past_key_values.N.key/value (B,NH,P,hs) hold the keys and values of the P tokens before these T (P may be
// 0: the first call), the tokens sit at positions P..P+T-1, every query attends to the P past keys and the
// causal part of its own T, and outputs present.N.key/value (B,NH,P+T,hs) are the cache for the next call.
static void onnx_build_gpt2(OnnxGraph* g, ByteVec* io, const GPT* model, int kv) {
    const GPTConfig* c = &model->config;
    const ParameterTensors* p = &model->params;
    int64_t C = c->C, NH = c->NH, hs = C / NH, F = mlp_width(c), V = c->V, K = c->num_classes;
    const char* BT_names[3] = {"batch_size", "sequence_length", NULL};
    int64_t dims[3] = {0, 0, 0};
    onnx_value_info(io, 11, "input_ids", ONNX_INT64, 2, dims, BT_names);
    if (K) onnx_value_info(io, 11, "attention_mask", ONNX_INT64, 2, dims, BT_names);
    const char* past_names[4] = {"batch_size", NULL, "past_sequence_length", NULL};
    int64_t past_dims[4] = {0, NH, 0, hs};
    for (int l = 0; kv && l < c->L; l++) {
        onnx_value_info(io, 11, onnx_name(g, "past_key_values.%d.key", l), ONNX_FLOAT, 4, past_dims, past_names);
        onnx_value_info(io, 11, onnx_name(g, "past_key_values.%d.value", l), ONNX_FLOAT, 4, past_dims, past_names);
    }

    // constants
    int64_t v0 = 0, v1 = 1, v2 = 2, vm1C[2] = {-1, C}, vheads[3] = {3, NH, hs};
    const char *i0 = onnx_i64(g, "const.0", 0, 1, &v0), *i1 = onnx_i64(g, "const.1", 0, 1, &v1);
    const char* i2 = onnx_i64(g, "const.2", 0, 1, &v2);
    const char* vec0 = onnx_i64(g, "const.[0]", 1, 1, &v0);
    const char* vec1 = onnx_i64(g, "const.[1]", 1, 1, &v1);
    const char* rows_C = onnx_i64(g, "const.[-1,C]", 1, 2, vm1C);
    const char* heads = onnx_i64(g, "const.[3,NH,hs]", 1, 3, vheads);
    const char* neg_inf = onnx_f32(g, "const.-inf", -INFINITY);
    const char* att_scale = onnx_f32(g, "const.1/sqrt(hs)", 1.0f / sqrtf((float)hs));  // attention_forward's
    const char* gk = onnx_f32(g, "const.0.044715", 0.044715f);
    const char* gs = onnx_f32(g, "const.sqrt(2/pi)", GELU_SCALE);
    const char* one = onnx_f32(g, "const.1f", 1.0f);
    const char* half = onnx_f32(g, "const.0.5f", 0.5f);

    // the batch's shape, read from input_ids at run time
    const char* shape_in = OP("Shape", "shape.BT", "input_ids");              // [B, T]
    const char* T0 = OP("Gather", "shape.T", shape_in, i1);                  // T, a scalar
    const char* T1 = OP("Gather", "shape.[T]", shape_in, vec1);              // [T]
    ByteVec at = {NULL, 0, 0};
    onnx_attr_int(&at, "axis", 0);
    const char* shape_qkv = OPA("Concat", "shape.[B,T,3,NH,hs]", &at, shape_in, heads);
    // positions P..P+T-1: P = 0, or with a cache the past's length, read from past_key_values.0.key
    const char *P0 = i0, *P1 = vec0, *PT0 = T0, *PT1 = T1;
    if (kv) {
        const char* shape_past = OP("Shape", "shape.past", "past_key_values.0.key");  // [B, NH, P, hs]
        P0 = OP("Gather", "shape.P", shape_past, i2);
        P1 = OP("Gather", "shape.[P]", shape_past, onnx_i64(g, "const.[2]", 1, 1, &v2));
        PT0 = OP("Add", "shape.P+T", P0, T0);
        PT1 = OP("Add", "shape.[P+T]", P1, T1);
    }

    // embeddings: x = wte[input_ids] + wpe[P:P+T], then rows (N, C)
    const char* wte = onnx_weight(g, "wte", p->wte, V, C);  // the first V rows: the padding is never looked up
    const char* wpe = onnx_weight(g, "wpe", p->wpe, c->maxT, C);
    const char* tok = OP("Gather", "tok_emb", wte, "input_ids");             // (B,T,C)
    const char* pos = OP("Slice", "pos_emb", wpe, P1, PT1, vec0);            // (T,C)
    const char* x = OP("Add", "embedded", tok, pos);
    x = OP("Reshape", "encoded", x, rows_C);                                 // (N,C)

    // the causal mask: future[t, j] = key j comes after query t (at position P + t), (T,P+T); masked scores
    // become -inf, and exp(-inf) = 0 exactly, as attention_forward leaves them out
    const char* qpos = OP("Range", "mask.query_pos", P0, PT0, i1);
    const char* kpos = kv ? OP("Range", "mask.key_pos", i0, PT0, i1) : qpos;
    const char* row = OP("Unsqueeze", "mask.query", qpos, vec1);             // (T,1)
    const char* col = OP("Unsqueeze", "mask.key", kpos, vec0);               // (1,P+T)
    const char* future = OP("Greater", "mask.future", col, row);

    for (int l = 0; l < c->L; l++) {
        char pre[16];
        snprintf(pre, sizeof pre, "h.%d", l);
        const char* w_ln1 = onnx_weight(g, onnx_name(g, "%s.ln1w", pre), p->ln1w + l * C, C, 0);
        const char* b_ln1 = onnx_weight(g, onnx_name(g, "%s.ln1b", pre), p->ln1b + l * C, C, 0);
        const char* w_qkv = onnx_weight(g, onnx_name(g, "%s.qkvw", pre), p->qkvw + l * 3 * C * C, 3 * C, C);
        const char* b_qkv = onnx_weight(g, onnx_name(g, "%s.qkvb", pre), p->qkvb + l * 3 * C, 3 * C, 0);
        const char* w_ap = onnx_weight(g, onnx_name(g, "%s.attprojw", pre), p->attprojw + l * C * C, C, C);
        const char* b_ap = onnx_weight(g, onnx_name(g, "%s.attprojb", pre), p->attprojb + l * C, C, 0);
        const char* w_ln2 = onnx_weight(g, onnx_name(g, "%s.ln2w", pre), p->ln2w + l * C, C, 0);
        const char* b_ln2 = onnx_weight(g, onnx_name(g, "%s.ln2b", pre), p->ln2b + l * C, C, 0);
        const char* w_fc = onnx_weight(g, onnx_name(g, "%s.fcw", pre), p->fcw + l * F * C, F, C);
        const char* b_fc = onnx_weight(g, onnx_name(g, "%s.fcb", pre), p->fcb + l * F, F, 0);
        const char* w_fp = onnx_weight(g, onnx_name(g, "%s.fcprojw", pre), p->fcprojw + l * C * F, C, F);
        const char* b_fp = onnx_weight(g, onnx_name(g, "%s.fcprojb", pre), p->fcprojb + l * C, C, 0);

        const char* ln1 = onnx_layernorm(g, onnx_name(g, "%s.ln1", pre), x, w_ln1, b_ln1);
        const char* qkv = onnx_linear(g, onnx_name(g, "%s.qkv", pre), ln1, w_qkv, b_qkv);        // (N,3C)
        qkv = OP("Reshape", onnx_name(g, "%s.qkv5", pre), qkv, shape_qkv);                    // (B,T,3,NH,hs)
        int64_t perm_qkv[5] = {2, 0, 3, 1, 4}, perm_kt[4] = {0, 1, 3, 2}, perm_y[4] = {0, 2, 1, 3};
        qkv = onnx_transpose(g, onnx_name(g, "%s.qkv_heads", pre), qkv, 5, perm_qkv);         // (3,B,NH,T,hs)
        const char* q = OP("Gather", onnx_name(g, "%s.q", pre), qkv, i0);                     // (B,NH,T,hs)
        const char* k = OP("Gather", onnx_name(g, "%s.k", pre), qkv, i1);
        const char* v = OP("Gather", onnx_name(g, "%s.v", pre), qkv, i2);
        if (kv) {  // the cache: past keys and values first, then these T, (B,NH,P+T,hs)
            ByteVec a2 = {NULL, 0, 0}, a3 = {NULL, 0, 0};
            onnx_attr_int(&a2, "axis", 2);
            onnx_attr_int(&a3, "axis", 2);
            k = OPA("Concat", onnx_name(g, "present.%d.key", l), &a2, onnx_name(g, "past_key_values.%d.key", l), k);
            v = OPA("Concat", onnx_name(g, "present.%d.value", l), &a3, onnx_name(g, "past_key_values.%d.value", l), v);
        }
        const char* kt = onnx_transpose(g, onnx_name(g, "%s.kT", pre), k, 4, perm_kt);         // (B,NH,hs,P+T)
        const char* s = OP("MatMul", onnx_name(g, "%s.qk", pre), q, kt);                      // (B,NH,T,P+T)
        s = OP("Mul", onnx_name(g, "%s.scores", pre), s, att_scale);
        s = OP("Where", onnx_name(g, "%s.masked", pre), future, neg_inf, s);
        ByteVec sm = {NULL, 0, 0};
        onnx_attr_int(&sm, "axis", -1);
        const char* att = OPA("Softmax", onnx_name(g, "%s.att", pre), &sm, s);
        const char* y = OP("MatMul", onnx_name(g, "%s.atty_heads", pre), att, v);             // (B,NH,T,hs)
        y = onnx_transpose(g, onnx_name(g, "%s.atty_bt", pre), y, 4, perm_y);                 // (B,T,NH,hs)
        y = OP("Reshape", onnx_name(g, "%s.atty", pre), y, rows_C);                           // (N,C)
        const char* o = onnx_linear(g, onnx_name(g, "%s.attproj", pre), y, w_ap, b_ap);
        x = OP("Add", onnx_name(g, "%s.residual2", pre), x, o);
        const char* ln2 = onnx_layernorm(g, onnx_name(g, "%s.ln2", pre), x, w_ln2, b_ln2);
        const char* h = onnx_linear(g, onnx_name(g, "%s.fch", pre), ln2, w_fc, b_fc);          // (N,F)
        h = onnx_gelu(g, h, pre, gk, gs, one, half);
        const char* m = onnx_linear(g, onnx_name(g, "%s.fcproj", pre), h, w_fp, b_fp);
        x = OP("Add", onnx_name(g, "%s.residual3", pre), x, m);
    }
    const char* w_lnf = onnx_weight(g, "lnfw", p->lnfw, C, 0);
    const char* b_lnf = onnx_weight(g, "lnfb", p->lnfb, C, 0);
    const char* lnf = onnx_layernorm(g, "lnf", x, w_lnf, b_lnf);                               // (N,C)
    if (!K) {  // tied LM head: logits = lnf @ wte^T, back to (B,T,V)
        int64_t vV = V;
        const char* lg = onnx_linear(g, "logits_rows", lnf, wte, NULL);                        // (N,V)
        ByteVec ca = {NULL, 0, 0};
        onnx_attr_int(&ca, "axis", 0);
        const char* shape_out = OPA("Concat", "shape.[B,T,V]", &ca, shape_in, onnx_i64(g, "const.[V]", 1, 1, &vV));
        OP("Reshape", "logits", lg, shape_out);
        const char* out_names[3] = {"batch_size", "sequence_length", NULL};
        int64_t od[3] = {0, 0, V};
        onnx_value_info(io, 12, "logits", ONNX_FLOAT, 3, od, out_names);
        const char* present_names[4] = {"batch_size", NULL, "past_sequence_length + sequence_length", NULL};
        for (int l = 0; kv && l < c->L; l++) {
            onnx_value_info(io, 12, onnx_name(g, "present.%d.key", l), ONNX_FLOAT, 4, past_dims, present_names);
            onnx_value_info(io, 12, onnx_name(g, "present.%d.value", l), ONNX_FLOAT, 4, past_dims, present_names);
        }
    } else {  // class head on the last real token: row sum(mask) - 1 of each sequence, as cls_forward
        ByteVec ca = {NULL, 0, 0};
        onnx_attr_int(&ca, "axis", 0);
        const char* shape_btc = OPA("Concat", "shape.[B,T,C]", &ca, shape_in, onnx_i64(g, "const.[C]", 1, 1, &C));
        const char* hid = OP("Reshape", "lnf_btc", lnf, shape_btc);                            // (B,T,C)
        ByteVec ra = {NULL, 0, 0};
        onnx_attr_int(&ra, "keepdims", 1);
        const char* len = OPA("ReduceSum", "cls.length", &ra, "attention_mask", vec1);         // (B,1)
        const char* last = OP("Sub", "cls.last", len, i1);
        ByteVec ga = {NULL, 0, 0};
        onnx_attr_int(&ga, "batch_dims", 1);
        const char* pooled = OPA("GatherND", "cls.pooled", &ga, hid, last);                    // (B,C)
        const char* w_cls = onnx_weight(g, "cls_w", p->cls_w, K, C);
        onnx_linear(g, "logits", pooled, w_cls, NULL);                                         // (B,K)
        const char* out_names[2] = {"batch_size", NULL};
        int64_t od[2] = {0, K};
        onnx_value_info(io, 12, "logits", ONNX_FLOAT, 2, od, out_names);
    }
}
#undef OP
#undef OPA

// Writes DIR/model.onnx and, for the LM head, DIR/decoder_with_past_model.onnx (the KV-cache decoder, named
// as Hugging Face Optimum names its file; it stores the weights again). The caller has merged LoRA and
// refused adapters and prefixes (cmd_export).
static void export_onnx(const GPT* model, const char* dir) {
    const GPTConfig* c = &model->config;
    if (model->q8_memory)
        failf("export the fp32 model (before ./train quantize); the ONNX graph is fp32",
              "%s: the model's weights are int8", dir);
    if (c->lora_r || c->adapter_dim || c->prefix_len)
        failf("merge LoRA first (--merge 1); adapters and prefixes are not in the exported graph",
              "%s: the model has LoRA, adapters or a prefix", dir);
    make_dirs(dir);  // with its parents, as the other exports
    for (int kv = 0; kv <= (c->num_classes ? 0 : 1); kv++) {
        OnnxGraph g;
        memset(&g, 0, sizeof g);
        ByteVec io = {NULL, 0, 0};
        onnx_build_gpt2(&g, &io, model, kv);
        char doc[256], path[1100];
        snprintf(doc, sizeof doc, "GPT-2 from finetune.c: L=%d NH=%d C=%d F=%d V=%d maxT=%d, %s%s", c->L, c->NH, c->C,
                 mlp_width(c), c->V, c->maxT, c->num_classes ? "classification head" : "LM head (tied to wte)",
                 kv ? ", with past_key_values inputs and present outputs (a KV cache)" : "");
        snprintf(path, sizeof path, "%s/%s", dir, kv ? "decoder_with_past_model.onnx" : "model.onnx");
        onnx_write(&g, &io, doc, path);
        free(io.data);
        onnx_graph_free(&g);
    }
}

// ---------------------------------------------------------------------------- the logits dump
// ./train eval --dump-logits FILE: what ONNX Runtime must reproduce. Little-endian, int32 header
//   [magic "OXLG", version 1, kind (0 LM, 1 classification), batches, B, T, width (V or K), 0]
// then per batch: the inputs (B*T int32), for classification the lengths (B int32), and the logits as
// float32: (B,T,V) for the LM head (the padded vocabulary columns left out), (B,K) for the class head.
// The batches are the dataset's first ones in file order, as eval reads them (full batches only).
#define LOGITS_MAGIC 0x474C584F  // "OXLG"
static void dump_logits(GPT* model, const char* data, int B, int T, int max_batches, const char* path) {
    DataLoader dl;
    loader_init(&dl, data, B, T, 0, 1);
    check_data_matches_model(&dl, model);
    if (dl.kind == DATA_SFT) failf("use a token file (LM) or a classification file", "--dump-logits: %s is SFT data", data);
    size_t nb = dl.num_batches;
    if (max_batches > 0 && (size_t)max_batches < nb) nb = (size_t)max_batches;
    int K = model->config.num_classes, V = model->config.V, Vp = model->config.Vp;
    int32_t h[8] = {LOGITS_MAGIC, 1, K ? 1 : 0, (int32_t)nb, B, T, K ? K : V, 0};
    SafeWriter w;
    safe_open(&w, path);
    fwrite_check(h, sizeof h, w.f, path);
    Batch b;
    batch_alloc(&b, B, T);
    for (size_t i = 0; i < nb; i++) {
        batch_forward(model, &dl, &b);
        fwrite_check(b.x, (size_t)B * T * sizeof(int32_t), w.f, path);
        if (K) {
            fwrite_check(b.len, (size_t)B * sizeof(int32_t), w.f, path);
            fwrite_check(model->acts.cls_logits, (size_t)B * K * sizeof(float), w.f, path);
        } else {
            for (size_t r = 0; r < (size_t)B * T; r++)
                fwrite_check(model->acts.logits + r * Vp, (size_t)V * sizeof(float), w.f, path);
        }
    }
    batch_free(&b);
    loader_free(&dl);
    safe_close(&w);
}
