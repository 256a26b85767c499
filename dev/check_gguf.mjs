// Checks a GGUF file written by `./train export --format gguf` with a reader that is not ours, Hugging Face's
// @huggingface/gguf (npm), against the same model exported as Hugging Face safetensors (decoded here):
//   metadata   architecture, hyperparameters (values and GGUF value types), file type, and the tokenizer
//              against encoder.json / vocab.bpe when their folder is given
//   tensors    llama.cpp's gpt2 names, shapes (ggml order, innermost first), types, 32-byte aligned offsets
//              that do not overlap and fit in the file
//   data       every tensor decoded from the bytes at the offset the library reports and compared with the
//              safetensors values: F32 bit for bit; Q8_0 within half a step d/2 of each weight, each block's
//              scale d = fp16(max|w| / 127) and its int8 values round(w / d), as Q8_0 is defined
//
//   cd dev && npm ci                     (once: @huggingface/gguf into dev/node_modules, as package-lock.json says)
//   ./train export --model M --format safetensors --out /tmp/hf
//   ./train export --model M --format gguf [--dtype q8_0] [--tokenizer ../shared/data/gpt2_bpe] --out /tmp/m.gguf
//   node dev/check_gguf.mjs /tmp/m.gguf /tmp/hf [../shared/data/gpt2_bpe]
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
const L = cfg.n_layer, C = cfg.n_embd, F = cfg.n_inner ?? 4 * C, V = cfg.vocab_size;
// gguf name -> [HF name, stored as Conv1D (in, out)?]
const expected = new Map([
  ["token_embd.weight", ["wte.weight", false]], ["position_embd.weight", ["wpe.weight", false]],
  ["output_norm.weight", ["ln_f.weight", false]], ["output_norm.bias", ["ln_f.bias", false]],
]);
const PER_LAYER = [
  ["attn_norm.weight", "ln_1.weight", false], ["attn_norm.bias", "ln_1.bias", false],
  ["attn_qkv.weight", "attn.c_attn.weight", true], ["attn_qkv.bias", "attn.c_attn.bias", false],
  ["attn_output.weight", "attn.c_proj.weight", true], ["attn_output.bias", "attn.c_proj.bias", false],
  ["ffn_norm.weight", "ln_2.weight", false], ["ffn_norm.bias", "ln_2.bias", false],
  ["ffn_up.weight", "mlp.c_fc.weight", true], ["ffn_up.bias", "mlp.c_fc.bias", false],
  ["ffn_down.weight", "mlp.c_proj.weight", true], ["ffn_down.bias", "mlp.c_proj.bias", false],
];
for (let l = 0; l < L; l++) for (const [g, h, tr] of PER_LAYER) expected.set(`blk.${l}.${g}`, [`h.${l}.${h}`, tr]);
const QUANTIZED = /^(token_embd|blk\.\d+\.(attn_qkv|attn_output|ffn_up|ffn_down))\.weight$/;  // what our int8 model quantizes

// ---------------------------------------------------------------------------- metadata
const { metadata, typedMetadata: tm, tensorInfos, tensorDataOffset } = await gguf(path.resolve(file), {
  allowLocalFile: true,
  typedMetadata: true,
});
const kv = (key, type, value, approx = false) => {
  const e = tm[key];
  const ok = e !== undefined && e.type === type && (approx ? Math.abs(e.value - value) <= 1e-12 : e.value === value);
  check(ok, `${key} = ${e ? e.value : "missing"} (type ${e ? GGUFValueType[e.type] : "-"}), expected ${value} (${GGUFValueType[type]})`);
};
kv("general.architecture", GGUFValueType.STRING, "gpt2");
kv("gpt2.context_length", GGUFValueType.UINT32, cfg.n_positions);
kv("gpt2.embedding_length", GGUFValueType.UINT32, C);
kv("gpt2.feed_forward_length", GGUFValueType.UINT32, F);
kv("gpt2.block_count", GGUFValueType.UINT32, L);
kv("gpt2.attention.head_count", GGUFValueType.UINT32, cfg.n_head);
kv("gpt2.attention.layer_norm_epsilon", GGUFValueType.FLOAT32, Math.fround(1e-5), true);
const ftype = metadata["general.file_type"];
check(tm["general.file_type"]?.type === GGUFValueType.UINT32 && (ftype === 0 || ftype === 7),
  `general.file_type = ${ftype} (0: all F32, 7: mostly Q8_0)`);
const alignment = Number(metadata["general.alignment"] ?? 32);
check(metadata.version === 3 && alignment === 32, `GGUF version ${metadata.version}, alignment ${alignment}`);

if (tokDir) {
  const enc = JSON.parse(fs.readFileSync(path.join(tokDir, "encoder.json"), "utf8"));
  const byId = [];
  for (const [s, id] of Object.entries(enc)) byId[id] = s;
  const merges = fs.readFileSync(path.join(tokDir, "vocab.bpe"), "utf8").split("\n").filter((l, i) => l && !(i === 0 && l.startsWith("#version")));
  const toks = metadata["tokenizer.ggml.tokens"], types = metadata["tokenizer.ggml.token_type"];
  let bad = 0, badType = 0;
  for (let i = 0; i < V; i++) {
    const want = i < byId.length ? byId[i] : `[PAD${i}]`;
    if (toks[i] !== want) bad++;
    if (types[i] !== (want === "<|endoftext|>" ? 3 : i < byId.length ? 1 : 4)) badType++;
  }
  kv("tokenizer.ggml.model", GGUFValueType.STRING, "gpt2");
  check(toks.length === V && bad === 0 && tm["tokenizer.ggml.tokens"].subType === GGUFValueType.STRING,
    `tokenizer.ggml.tokens: ${toks.length} strings, ${bad} differ from encoder.json (token 262 is ${JSON.stringify(toks[262])})`);
  check(types.length === V && badType === 0 && tm["tokenizer.ggml.token_type"].subType === GGUFValueType.INT32,
    `tokenizer.ggml.token_type: ${badType} wrong of ${types.length} (INT32; <|endoftext|> 3 = control, others 1)`);
  const gm = metadata["tokenizer.ggml.merges"];
  check(gm.length === merges.length && gm.every((m, i) => m === merges[i]),
    `tokenizer.ggml.merges: ${gm.length} strings equal to vocab.bpe's ${merges.length} lines (first ${JSON.stringify(gm[0])})`);
  kv("tokenizer.ggml.bos_token_id", GGUFValueType.UINT32, enc["<|endoftext|>"]);
  kv("tokenizer.ggml.eos_token_id", GGUFValueType.UINT32, enc["<|endoftext|>"]);
}

// ---------------------------------------------------------------------------- tensors
const names = tensorInfos.map((t) => t.name);
const missing = [...expected.keys()].filter((n) => !names.includes(n));
const extra = names.filter((n) => !expected.has(n));
check(missing.length === 0 && extra.length === 0 && names.length === expected.size,
  `${names.length} tensors, llama.cpp's gpt2 names (missing: ${missing.join(" ") || "none"}, unexpected: ${extra.join(" ") || "none"})`);
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

let f32Max = 0, f32N = 0, q8N = 0, q8Worst = 0, q8MaxAbs = 0, dBad = 0, qBad = 0, ties = 0, shapeBad = [], typeBad = [];
for (const t of tensorInfos) {
  if (!expected.has(t.name)) continue;
  const [hfName, tr] = expected.get(t.name);
  const r = ref[hfName];
  // ggml ne, innermost first: an nn.Linear (out, in) matrix is [in, out]; HF's Conv1D stores (in, out), so its
  // shape is ne as it is; wte (V, C) and wpe (maxT, C) are [C, V] and [C, maxT]; vectors [n]
  const ne = r.shape.length === 1 ? [r.shape[0]] : tr ? [r.shape[0], r.shape[1]] : [r.shape[1], r.shape[0]];
  if (t.n_dims !== ne.length || t.shape.some((d, i) => Number(d) !== ne[i])) { shapeBad.push(t.name); continue; }
  const wantQ8 = ftype === 7 && QUANTIZED.test(t.name);
  if (t.dtype !== (wantQ8 ? GGMLQuantizationType.Q8_0 : GGMLQuantizationType.F32)) { typeBad.push(t.name); continue; }
  const ne0 = ne[0], ne1 = ne.length > 1 ? ne[1] : 1, n = ne0 * ne1;
  const want = new Float32Array(n);  // the reference in ggml order: element (row i1, column i0) at i1 * ne0 + i0
  for (let i1 = 0; i1 < ne1; i1++)
    for (let i0 = 0; i0 < ne0; i0++) want[i1 * ne0 + i0] = tr ? r.data[i0 * ne1 + i1] : r.data[i1 * ne0 + i0];
  const at = Number(tensorDataOffset + t.offset);
  if (t.dtype === GGMLQuantizationType.F32) {
    const got = new Float32Array(bytes.buffer.slice(bytes.byteOffset + at, bytes.byteOffset + at + 4 * n));
    for (let e = 0; e < n; e++) f32Max = Math.max(f32Max, Math.abs(got[e] - want[e]));
    f32N += n;
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
check(typeBad.length === 0, `types: ${ftype === 7 ? "Q8_0 for token_embd and the block matrices, F32 for the rest" : "all F32"} (wrong: ${typeBad.join(" ") || "none"})`);
check(f32Max === 0, `F32 data: ${f32N} values decoded, max |gguf - safetensors| = ${f32Max}`);
if (q8N)
  check(q8Worst <= 1 + 1e-6 && dBad === 0 && qBad === 0,
    `Q8_0 data: ${q8N} values, max |q d - w| = ${q8MaxAbs.toExponential(2)} = ${q8Worst.toFixed(4)} of d/2; ` +
    `scales equal to fp16(max|w|/127) in all but ${dBad} of ${q8N / 32} blocks; int8 = round(w/d) in all but ${qBad} (${ties} near-ties not judged)`);
console.log(`check_gguf: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
