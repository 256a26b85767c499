// Checks a GGUF file written by `./train export --format gguf` with a reader that is not ours, Hugging Face's
// @huggingface/gguf (npm), against the same model exported as Hugging Face safetensors (decoded here):
//   metadata   architecture, hyperparameters (values and GGUF value types), file type, and the tokenizer
//              against encoder.json / vocab.bpe (a folder) or a tokenizer.json (a file) when given
//   tensors    llama.cpp's names (gpt2, llama or qwen2), shapes (ggml order, innermost first), types, 32-byte
//              aligned offsets that do not overlap and fit in the file
//   data       every tensor decoded from the bytes at the offset the library reports and compared with the
//              safetensors values: F32 bit for bit; Q8_0 within half a step d/2 of each weight, each block's
//              scale d = fp16(max|w| / 127) and its int8 values round(w / d), as Q8_0 is defined
//   llama      attn_q / attn_k against q_proj / k_proj permuted as convert_hf_to_gguf.py's LlamaModel.permute
//              does (reshape (n_head, 2, hs/2, C), swap axes 1 and 2; written here from that description), and,
//              independent of any permutation formula, RoPE itself: for random inputs at two positions, the
//              attention scores of every head computed the Hugging Face way (rotate_half on q_proj, k_proj) equal
//              those computed from the GGUF tensors the llama.cpp way (ggml's normal RoPE on consecutive pairs for
//              llama, NEOX for qwen2), to 1e-9 relative (both in double from the same float32 weights; F32 files)
//
//   cd dev && npm ci                     (once: @huggingface/gguf into dev/node_modules, as package-lock.json says)
//   ./train export --model M --format safetensors --out /tmp/hf
//   ./train export --model M --format gguf [--dtype q8_0] [--tokenizer ../shared/data/gpt2_bpe] --out /tmp/m.gguf
//   node dev/check_gguf.mjs /tmp/m.gguf /tmp/hf [../shared/data/gpt2_bpe | DIR/tokenizer.json]
import fs from "node:fs";
import path from "node:path";
import { gguf, GGMLQuantizationType, GGUFValueType } from "@huggingface/gguf";

const [file, hfDir, tokDir] = process.argv.slice(2);
if (!file || !hfDir) {
  console.error("usage: node dev/check_gguf.mjs FILE.gguf HF_DIR [TOKENIZER_DIR]");
  process.exit(2);
}
let passed = 0, failed = 0;
function check(ok, what) {
  console.log(`${ok ? "[ OK ]" : "[FAIL]"} ${what}`);
  ok ? passed++ : failed++;
}

// safetensors: u64 header length, JSON {name: {dtype, shape, data_offsets}}, then the data
function readSafetensors(p) {
  const buf = fs.readFileSync(p);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
  const out = {};
  for (const [name, e] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    if (e.dtype !== "F32") throw new Error(`${name}: dtype ${e.dtype}, expected F32`);
    const b = buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]);
    out[name] = { shape: e.shape, data: new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) };
  }
  return out;
}

// IEEE half precision: decode, and round a float32 value to the nearest half (ties to even)
function fp16ToNumber(h) {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
const roundHalfEven = (v) => (Math.abs(v % 1) === 0.5 ? 2 * Math.round(v / 2) : Math.round(v));
function roundToFp16(x) {
  const a = Math.abs(x);
  if (a === 0) return 0;
  const e = Math.max(Math.floor(Math.log2(a)), -14);  // below 2^-14 the half grid is 2^-24 (subnormals)
  const ulp = 2 ** (e - 10);
  return Math.sign(x) * roundHalfEven(a / ulp) * ulp;
}

// ---------------------------------------------------------------------------- the reference: the HF export
const cfg = JSON.parse(fs.readFileSync(path.join(hfDir, "config.json"), "utf8"));
const ref = readSafetensors(path.join(hfDir, "model.safetensors"));
const { metadata, typedMetadata: tm, tensorInfos, tensorDataOffset } = await gguf(path.resolve(file), {
  allowLocalFile: true,
  typedMetadata: true,
});
const arch = metadata["general.architecture"];
const isLlama = cfg.model_type === "llama" || cfg.model_type === "qwen2";
// gpt2: GPT2LMHeadModel's config; llama / qwen2: LlamaForCausalLM's and Qwen2ForCausalLM's
const L = isLlama ? cfg.num_hidden_layers : cfg.n_layer, C = isLlama ? cfg.hidden_size : cfg.n_embd;
const F = isLlama ? cfg.intermediate_size : cfg.n_inner ?? 4 * C, V = cfg.vocab_size;
const NH = isLlama ? cfg.num_attention_heads : cfg.n_head, NKV = isLlama ? cfg.num_key_value_heads ?? NH : NH, hs = C / NH;
// gguf name -> [HF name, stored as Conv1D (in, out)?, heads of the Q/K permutation (0: none)]
const expected = new Map();
let QUANTIZED;  // what our int8 model quantizes
if (!isLlama) {
  for (const [g, h] of [["token_embd.weight", "wte.weight"], ["position_embd.weight", "wpe.weight"],
    ["output_norm.weight", "ln_f.weight"], ["output_norm.bias", "ln_f.bias"]]) expected.set(g, [h, false, 0]);
  const PER_LAYER = [
    ["attn_norm.weight", "ln_1.weight", false], ["attn_norm.bias", "ln_1.bias", false],
    ["attn_qkv.weight", "attn.c_attn.weight", true], ["attn_qkv.bias", "attn.c_attn.bias", false],
    ["attn_output.weight", "attn.c_proj.weight", true], ["attn_output.bias", "attn.c_proj.bias", false],
    ["ffn_norm.weight", "ln_2.weight", false], ["ffn_norm.bias", "ln_2.bias", false],
    ["ffn_up.weight", "mlp.c_fc.weight", true], ["ffn_up.bias", "mlp.c_fc.bias", false],
    ["ffn_down.weight", "mlp.c_proj.weight", true], ["ffn_down.bias", "mlp.c_proj.bias", false],
  ];
  for (let l = 0; l < L; l++) for (const [g, h, tr] of PER_LAYER) expected.set(`blk.${l}.${g}`, [`h.${l}.${h}`, tr, 0]);
  QUANTIZED = /^(token_embd|blk\.\d+\.(attn_qkv|attn_output|ffn_up|ffn_down))\.weight$/;
} else {
  // llama permutes q and k (ggml's normal RoPE); qwen2 runs NEOX RoPE, Hugging Face's own, and keeps them
  const perm = arch === "llama";
  expected.set("token_embd.weight", ["model.embed_tokens.weight", false, 0]);
  expected.set("output_norm.weight", ["model.norm.weight", false, 0]);
  if (ref["lm_head.weight"]) expected.set("output.weight", ["lm_head.weight", false, 0]);
  const PER_LAYER = [
    ["attn_norm.weight", "input_layernorm.weight", 0], ["attn_q.weight", "self_attn.q_proj.weight", perm ? NH : 0],
    ["attn_k.weight", "self_attn.k_proj.weight", perm ? NKV : 0], ["attn_v.weight", "self_attn.v_proj.weight", 0],
    ["attn_output.weight", "self_attn.o_proj.weight", 0], ["ffn_norm.weight", "post_attention_layernorm.weight", 0],
    ["ffn_gate.weight", "mlp.gate_proj.weight", 0], ["ffn_up.weight", "mlp.up_proj.weight", 0],
    ["ffn_down.weight", "mlp.down_proj.weight", 0],
    ["attn_q.bias", "self_attn.q_proj.bias", perm ? NH : 0], ["attn_k.bias", "self_attn.k_proj.bias", perm ? NKV : 0],
    ["attn_v.bias", "self_attn.v_proj.bias", 0],
  ];
  for (let l = 0; l < L; l++)
    for (const [g, h, ph] of PER_LAYER)
      if (ref[`model.layers.${l}.${h}`]) expected.set(`blk.${l}.${g}`, [`model.layers.${l}.${h}`, false, ph]);
  QUANTIZED = /^(token_embd|output|blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down))\.weight$/;
}

// convert_hf_to_gguf.py's permute, from its description: w (rows, ...) viewed as (n_head, 2, rows/n_head/2, cols),
// axes 1 and 2 swapped, flattened back. Element [h][j][s][c] of the result is [h][s][j][c] of w.
function permuteRows(data, rows, cols, nHead) {
  const half = rows / nHead / 2, out = new Float32Array(data.length);
  for (let h = 0; h < nHead; h++)
    for (let j = 0; j < half; j++)
      for (let s = 0; s < 2; s++)
        for (let c = 0; c < cols; c++)
          out[((h * half + j) * 2 + s) * cols + c] = data[((h * 2 + s) * half + j) * cols + c];
  return out;
}

// ---------------------------------------------------------------------------- metadata
const kv = (key, type, value, approx = false) => {
  const e = tm[key];
  const ok = e !== undefined && e.type === type && (approx ? Math.abs(e.value - value) <= 1e-12 : e.value === value);
  check(ok, `${key} = ${e ? e.value : "missing"} (type ${e ? GGUFValueType[e.type] : "-"}), expected ${value} (${GGUFValueType[type]})`);
};
if (!isLlama) {
  kv("general.architecture", GGUFValueType.STRING, "gpt2");
  kv("gpt2.context_length", GGUFValueType.UINT32, cfg.n_positions);
  kv("gpt2.embedding_length", GGUFValueType.UINT32, C);
  kv("gpt2.feed_forward_length", GGUFValueType.UINT32, F);
  kv("gpt2.block_count", GGUFValueType.UINT32, L);
  kv("gpt2.attention.head_count", GGUFValueType.UINT32, cfg.n_head);
  kv("gpt2.attention.layer_norm_epsilon", GGUFValueType.FLOAT32, Math.fround(1e-5), true);
} else {  // the keys convert_hf_to_gguf.py writes for LlamaForCausalLM / Qwen2ForCausalLM
  const A = cfg.model_type === "qwen2" || ref["model.layers.0.self_attn.q_proj.bias"] ? "qwen2" : "llama";
  kv("general.architecture", GGUFValueType.STRING, A);
  kv(`${A}.context_length`, GGUFValueType.UINT32, cfg.max_position_embeddings);
  kv(`${A}.embedding_length`, GGUFValueType.UINT32, C);
  kv(`${A}.feed_forward_length`, GGUFValueType.UINT32, F);
  kv(`${A}.block_count`, GGUFValueType.UINT32, L);
  kv(`${A}.attention.head_count`, GGUFValueType.UINT32, NH);
  kv(`${A}.attention.head_count_kv`, GGUFValueType.UINT32, NKV);
  kv(`${A}.rope.freq_base`, GGUFValueType.FLOAT32, Math.fround(cfg.rope_theta ?? 10000));
  kv(`${A}.attention.layer_norm_rms_epsilon`, GGUFValueType.FLOAT32, Math.fround(cfg.rms_norm_eps));
  kv(`${A}.rope.dimension_count`, GGUFValueType.UINT32, hs);
  kv(`${A}.vocab_size`, GGUFValueType.UINT32, V);
  if (cfg.rope_scaling) {
    kv(`${A}.rope.scaling.type`, GGUFValueType.STRING, cfg.rope_scaling.type ?? cfg.rope_scaling.rope_type);
    kv(`${A}.rope.scaling.factor`, GGUFValueType.FLOAT32, Math.fround(cfg.rope_scaling.factor));
  } else check(tm[`${A}.rope.scaling.type`] === undefined, `no ${A}.rope.scaling.type (config.json has no rope_scaling)`);
}
const ftype = metadata["general.file_type"];
check(tm["general.file_type"]?.type === GGUFValueType.UINT32 && (ftype === 0 || ftype === 7),
  `general.file_type = ${ftype} (0: all F32, 7: mostly Q8_0)`);
const alignment = Number(metadata["general.alignment"] ?? 32);
check(metadata.version === 3 && alignment === 32, `GGUF version ${metadata.version}, alignment ${alignment}`);

if (tokDir) {
  // the vocabulary as llama.cpp's "gpt2" tokenizer wants it: byId[i] = [string, token_type]
  const byId = [];
  let merges, pre, eosId, bosId, addBos;
  if (tokDir.endsWith(".json")) {  // a Hugging Face tokenizer.json (byte-level BPE)
    const tj = JSON.parse(fs.readFileSync(tokDir, "utf8"));
    for (const [s, id] of Object.entries(tj.model.vocab)) byId[id] = [s, 1];
    for (const a of tj.added_tokens) byId[a.id] = [a.content, a.special ? 3 : 4];  // control / user-defined
    merges = tj.model.merges.map((m) => (Array.isArray(m) ? m.join(" ") : m));
    // tokenizer.ggml.pre: which of llama.cpp's pre-tokenizers splits as this pre_tokenizer does
    const steps = tj.pre_tokenizer.type === "Sequence" ? tj.pre_tokenizer.pretokenizers : [tj.pre_tokenizer];
    const names = steps.map((p) => p.type === "Split" ? (p.pattern.Regex.includes("\\p{N}{1,3}") ? "llama3" : "qwen2")
      : p.type === "Digits" ? "digits" : p.type === "ByteLevel" && p.use_regex ? "gpt2" : "").filter((x) => x).join("+");
    pre = { "gpt2": "gpt-2", "digits+gpt2": "smollm", "llama3": "llama-bpe", "qwen2": "qwen2" }[names];
    const find = (s) => tj.added_tokens.find((a) => a.content === s)?.id;
    eosId = find("<|endoftext|>") ?? find("<|end_of_text|>");
    bosId = find("<|begin_of_text|>") ?? eosId;
    addBos = find("<|begin_of_text|>") !== undefined;
  } else {  // GPT-2's encoder.json + vocab.bpe
    const enc = JSON.parse(fs.readFileSync(path.join(tokDir, "encoder.json"), "utf8"));
    for (const [s, id] of Object.entries(enc)) byId[id] = [s, s === "<|endoftext|>" ? 3 : 1];
    merges = fs.readFileSync(path.join(tokDir, "vocab.bpe"), "utf8").split("\n").filter((l, i) => l && !(i === 0 && l.startsWith("#version")));
    pre = "gpt-2", eosId = bosId = enc["<|endoftext|>"];
  }
  const toks = metadata["tokenizer.ggml.tokens"], types = metadata["tokenizer.ggml.token_type"];
  let bad = 0, badType = 0;
  for (let i = 0; i < V; i++) {
    const [want, wantType] = i < byId.length ? byId[i] : [`[PAD${i}]`, 4];
    if (toks[i] !== want) bad++;
    if (types[i] !== wantType) badType++;
  }
  kv("tokenizer.ggml.model", GGUFValueType.STRING, "gpt2");
  kv("tokenizer.ggml.pre", GGUFValueType.STRING, pre);
  check(toks.length === V && bad === 0 && tm["tokenizer.ggml.tokens"].subType === GGUFValueType.STRING,
    `tokenizer.ggml.tokens: ${toks.length} strings, ${bad} differ from the tokenizer's (token 262 is ${JSON.stringify(toks[262])})`);
  check(types.length === V && badType === 0 && tm["tokenizer.ggml.token_type"].subType === GGUFValueType.INT32,
    `tokenizer.ggml.token_type: ${badType} wrong of ${types.length} (INT32; special 3 = control, other added and [PAD] 4, others 1)`);
  const gm = metadata["tokenizer.ggml.merges"];
  check(gm.length === merges.length && gm.every((m, i) => m === merges[i]),
    `tokenizer.ggml.merges: ${gm.length} strings equal to the tokenizer's ${merges.length} merges (first ${JSON.stringify(gm[0])})`);
  kv("tokenizer.ggml.bos_token_id", GGUFValueType.UINT32, bosId);
  kv("tokenizer.ggml.eos_token_id", GGUFValueType.UINT32, eosId);
  if (addBos !== undefined) kv("tokenizer.ggml.add_bos_token", GGUFValueType.BOOL, addBos);
}
// ---------------------------------------------------------------------------- tensors
const names = tensorInfos.map((t) => t.name);
const missing = [...expected.keys()].filter((n) => !names.includes(n));
const extra = names.filter((n) => !expected.has(n));
check(missing.length === 0 && extra.length === 0 && names.length === expected.size,
  `${names.length} tensors, llama.cpp's ${arch} names (missing: ${missing.join(" ") || "none"}, unexpected: ${extra.join(" ") || "none"})`);
const bytes = fs.readFileSync(file);
const nbytes = (t, n) => (t.dtype === GGMLQuantizationType.Q8_0 ? (n / 32) * 34 : 4 * n);
let layoutOk = Number(tensorDataOffset) % alignment === 0, end = 0;
for (const t of [...tensorInfos].sort((a, b) => Number(a.offset - b.offset))) {
  const n = t.shape.reduce((a, b) => a * Number(b), 1), off = Number(t.offset);
  layoutOk &&= off % alignment === 0 && off >= end;
  end = off + nbytes(t, n);
}
check(layoutOk && Number(tensorDataOffset) + end <= bytes.length,
  `data at ${tensorDataOffset} (32-aligned), every tensor 32-aligned, none overlapping, the last ending at ${Number(tensorDataOffset) + end} of ${bytes.length} bytes`);

let f32Max = 0, f32N = 0, q8N = 0, q8Worst = 0, q8MaxAbs = 0, dBad = 0, qBad = 0, ties = 0, shapeBad = [], typeBad = [], permuted = 0;
const f32Data = new Map();  // the F32 tensors as decoded from the file, for the RoPE check
for (const t of tensorInfos) {
  if (!expected.has(t.name)) continue;
  const [hfName, tr, permHeads] = expected.get(t.name);
  const r = ref[hfName];
  // ggml ne, innermost first: an nn.Linear (out, in) matrix is [in, out]; HF's Conv1D stores (in, out), so its
  // shape is ne as it is; embeddings (V, C) are [C, V]; vectors [n]. HF's embed_tokens and lm_head have V rows.
  const ne = r.shape.length === 1 ? [r.shape[0]] : tr ? [r.shape[0], r.shape[1]] : [r.shape[1], r.shape[0]];
  if (t.n_dims !== ne.length || t.shape.some((d, i) => Number(d) !== ne[i])) { shapeBad.push(t.name); continue; }
  const wantQ8 = ftype === 7 && QUANTIZED.test(t.name);
  if (t.dtype !== (wantQ8 ? GGMLQuantizationType.Q8_0 : GGMLQuantizationType.F32)) { typeBad.push(t.name); continue; }
  const ne0 = ne[0], ne1 = ne.length > 1 ? ne[1] : 1, n = ne0 * ne1;
  let want = new Float32Array(n);  // the reference in ggml order: element (row i1, column i0) at i1 * ne0 + i0
  for (let i1 = 0; i1 < ne1; i1++)
    for (let i0 = 0; i0 < ne0; i0++) want[i1 * ne0 + i0] = tr ? r.data[i0 * ne1 + i1] : r.data[i1 * ne0 + i0];
  if (permHeads) {  // a vector (bias) is rows of one element
    want = permuteRows(want, ne.length > 1 ? ne1 : ne0, ne.length > 1 ? ne0 : 1, permHeads);
    permuted++;
  }
  const at = Number(tensorDataOffset + t.offset);
  if (t.dtype === GGMLQuantizationType.F32) {
    const got = new Float32Array(bytes.buffer.slice(bytes.byteOffset + at, bytes.byteOffset + at + 4 * n));
    for (let e = 0; e < n; e++) f32Max = Math.max(f32Max, Math.abs(got[e] - want[e]));
    f32N += n;
    f32Data.set(t.name, got);
    continue;
  }
  for (let b = 0; b < n / 32; b++) {  // Q8_0 block: fp16 d, then 32 int8 q; w = q * d
    const blk = at + 34 * b, d = fp16ToNumber(bytes.readUInt16LE(blk));
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(want[32 * b + j]));
    if (d !== roundToFp16(Math.fround(amax / 127))) dBad++;
    for (let j = 0; j < 32; j++) {
      const w = want[32 * b + j], q = bytes.readInt8(blk + 2 + j), err = Math.abs(q * d - w);
      q8MaxAbs = Math.max(q8MaxAbs, err);
      if (d > 0) q8Worst = Math.max(q8Worst, err / (d / 2));
      const x = d > 0 ? w / d : 0;
      if (Math.abs(Math.abs(x % 1) - 0.5) < 1e-4) ties++;  // w/d next to a half: float rounding may go either way
      else if (q !== Math.max(-127, Math.min(127, Math.round(x)))) qBad++;
    }
    q8N += 32;
  }
}
check(shapeBad.length === 0, `shapes in ggml order match the safetensors (wrong: ${shapeBad.join(" ") || "none"})`);
check(typeBad.length === 0, `types: ${ftype === 7 ? "Q8_0 for token_embd, output and the block matrices, F32 for the rest" : "all F32"} (wrong: ${typeBad.join(" ") || "none"})`);
check(f32Max === 0, `F32 data: ${f32N} values decoded, max |gguf - safetensors| = ${f32Max}` +
  (isLlama ? ` (${permuted} q/k tensors compared after convert_hf_to_gguf.py's permutation${arch === "qwen2" ? ": none for qwen2" : ""})` : ""));
if (q8N)
  check(q8Worst <= 1 + 1e-6 && dBad === 0 && qBad === 0,
    `Q8_0 data: ${q8N} values, max |q d - w| = ${q8MaxAbs.toExponential(2)} = ${q8Worst.toFixed(4)} of d/2; ` +
    `scales equal to fp16(max|w|/127) in all but ${dBad} of ${q8N / 32} blocks; int8 = round(w/d) in all but ${qBad} (${ties} near-ties not judged)`);

// ---------------------------------------------------------------------------- RoPE: the scores llama.cpp computes
// For layer 0: x1, x2 random (C); q = W_q x1 (+ b_q), k = W_k x2 (+ b_k) per head; the query at position t, the key at
// position s. Hugging Face: rotate_half pairs (i, i + hs/2). llama.cpp: for llama ggml's normal RoPE, pairs
// (2i, 2i + 1); for qwen2 NEOX, pairs (i, i + hs/2). Angle of pair i: (p / factor) * freq_base^(-2i/hs), factor
// from rope.scaling.factor (linear scaling; llama.cpp's freq_scale = 1/factor). Query head h uses KV head
// h / (NH/NKV) (grouped-query attention). Both sides in double from the same float32 weights: only the order of
// the sums differs, so the scores agree to ~1e-15 relative; 1e-9 is the bound.
if (isLlama && f32Data.has("blk.0.attn_q.weight") && f32Data.has("blk.0.attn_k.weight")) {
  const A = arch, base = metadata[`${A}.rope.freq_base`], factor = metadata[`${A}.rope.scaling.factor`] ?? 1;
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  const x1 = Array.from({ length: C }, rnd), x2 = Array.from({ length: C }, rnd);
  const mv = (w, rows, x, b) => Array.from({ length: rows }, (_, r) => {
    let s = b ? b[r] : 0;
    for (let c = 0; c < C; c++) s += w[r * C + c] * x[c];
    return s;
  });
  const rope = (v, p, pairs) => {  // pairs(i) -> [a, b]: the two elements pair i rotates
    const y = v.slice();
    for (let i = 0; i < hs / 2; i++) {
      const ang = (p / factor) * Math.pow(base, (-2 * i) / hs), c = Math.cos(ang), s = Math.sin(ang), [a, b] = pairs(i);
      y[a] = v[a] * c - v[b] * s;
      y[b] = v[b] * c + v[a] * s;
    }
    return y;
  };
  const half = (i) => [i, i + hs / 2], consecutive = (i) => [2 * i, 2 * i + 1];
  const hf = (n) => ref[`model.layers.0.self_attn.${n}`]?.data;
  const qH = mv(hf("q_proj.weight"), C, x1, hf("q_proj.bias")), kH = mv(hf("k_proj.weight"), NKV * hs, x2, hf("k_proj.bias"));
  const gg = (n) => f32Data.get(`blk.0.${n}`);
  const qG = mv(gg("attn_q.weight"), C, x1, gg("attn_q.bias")), kG = mv(gg("attn_k.weight"), NKV * hs, x2, gg("attn_k.bias"));
  let worst = 0, scale = 0, npairs = 0;
  for (const [t, s] of [[0, 0], [1, 0], [5, 2], [7, 7], [13, 3], [31, 30]])
    for (let h = 0; h < NH; h++) {
      const kh = Math.floor(h / (NH / NKV));
      const head = (v, k) => v.slice(k * hs, (k + 1) * hs);
      const rq = rope(head(qH, h), t, half), rk = rope(head(kH, kh), s, half);
      const gq = rope(head(qG, h), t, arch === "llama" ? consecutive : half), gk = rope(head(kG, kh), s, arch === "llama" ? consecutive : half);
      let a = 0, b = 0;
      for (let i = 0; i < hs; i++) a += rq[i] * rk[i], b += gq[i] * gk[i];
      worst = Math.max(worst, Math.abs(a - b)), scale = Math.max(scale, Math.abs(a)), npairs++;
    }
  check(worst <= 1e-9 * scale, `RoPE scores of layer 0: ${npairs} (head, position pair) scores, Hugging Face rotate_half on ` +
    `q_proj/k_proj vs llama.cpp's ${arch === "llama" ? "normal RoPE (consecutive pairs)" : "NEOX RoPE"} on attn_q/attn_k: ` +
    `max |d| = ${worst.toExponential(2)} (largest score ${scale.toFixed(3)})`);
}
console.log(`check_gguf: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
