// Runs a GGUF file written by `./train export --format gguf` in llama.cpp itself (the prebuilt CPU library that
// the npm package node-llama-cpp ships) and compares it with ours:
//   logits     llama.cpp's raw logits at every position of the batches `./train eval --dump-logits` wrote, against
//              ours in that file (F32 KV cache and no flash attention, so both sides are float32 throughout)
//   tokenizer  (optional) llama.cpp's tokenization of a text, with the vocabulary and tokenizer.ggml.pre we wrote,
//              against the ids of `./dataprep encode` (tokenizer.c) for the same text
// This is the check that the Q/K permutation, the split tensors, the keys and the tokenizer keys mean to llama.cpp
// what they mean to us. The model must carry its tokenizer (--tokenizer at export), or llama.cpp will not load it.
//
//   npm install --prefix /work/node_modules_llamacpp node-llama-cpp@3.22.1      (once, outside the repository:
//                                       ~700 MB with its prebuilt binaries; its install script is not needed)
//   ./train export --model M --format gguf --tokenizer DIR/tokenizer.json --out /tmp/m.gguf
//   ./train eval --model /tmp/m.gguf --data val.bin --batch 1 --seq 64 --max-batches 2 --dump-logits /tmp/ours.bin
//   ./dataprep encode --tokenizer DIR/tokenizer.json < text.txt > /tmp/ids.txt                     (optional)
//   NODE_LLAMA_CPP=/work/node_modules_llamacpp/node_modules/node-llama-cpp \
//     node dev/check_llamacpp.mjs /tmp/m.gguf /tmp/ours.bin [text.txt /tmp/ids.txt]     (ours.bin "-": no logits)
// The logits must agree to 1e-5 of their largest magnitude: float32 sums in another order differ by a few ulps of
// the largest terms (seen: 4.8e-6 on logits up to 8.6, 5.5e-7 relative); a wrong permutation is off by O(1)
// (seen: 3.7 with the permutation left out). Q8_0 files: llama.cpp also quantizes the activations to Q8_0 before
// each matmul and we do not, so an int8 model differs by ~1e-2 there; the script reports it and judges only the
// argmax (must agree at 95% of the positions or more).
import fs from "node:fs";
import path from "node:path";

const [file, dump, textFile, idsFile] = process.argv.slice(2);
if (!file || !dump) {
  console.error("usage: node dev/check_llamacpp.mjs FILE.gguf LOGITS_DUMP [TEXT IDS]");
  process.exit(2);
}
const lib = process.env.NODE_LLAMA_CPP ? path.join(process.env.NODE_LLAMA_CPP, "dist/index.js") : "node-llama-cpp";
const { getLlama, LlamaLogLevel } = await import(lib);
let passed = 0, failed = 0;
function check(ok, what) {
  console.log(`${ok ? "[ OK ]" : "[FAIL]"} ${what}`);
  ok ? passed++ : failed++;
}

// the dump: int32 [magic "OXLG", version 1, kind (0 LM), batches, B, T, V, 0], then per batch the inputs (B*T int32)
// and the logits (B*T*V float32)
// ("-": no logits, the tokenizer check only)
const buf = dump === "-" ? Buffer.from(new Int32Array([0x474c584f, 1, 0, 0, 1, 1, 1, 0]).buffer) : fs.readFileSync(dump);
const i32 = (off, n) => Array.from(new Int32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + off + 4 * n)));
const [magic, version, kind, nb, B, T, V] = i32(0, 7);
if (magic !== 0x474c584f || version !== 1 || kind !== 0) throw new Error(`${dump}: not an LM logits dump of ./train eval --dump-logits`);

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: path.resolve(file) });
const ctx = await model.createContext({
  contextSize: T, batchSize: T, sequences: 1, flashAttention: false,
  experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",  // F16 by default: ~1e-3 off
});
const seq = ctx.getSequence();
let off = 32, worst = 0, scale = 0, agree = 0, n = 0;
for (let b = 0; b < nb; b++) {
  const x = i32(off, B * T);
  off += 4 * B * T;
  const ours = new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + off + 4 * B * T * V));
  off += 4 * B * T * V;
  for (let r = 0; r < B; r++) {
    await seq.clearHistory();
    const out = await seq.controlledEvaluate(x.slice(r * T, (r + 1) * T).map((t) => [t, { generateNext: { logits: true } }]));
    for (let t = 0; t < T; t++) {
      const lg = new Float32Array(V), o = ours.subarray((r * T + t) * V, (r * T + t + 1) * V);
      for (const [id, value] of out[t].next.logits) lg[id] = value;  // a Map token -> logit
      let am = 0, bm = 0;
      for (let v = 0; v < V; v++) {
        worst = Math.max(worst, Math.abs(lg[v] - o[v])), scale = Math.max(scale, Math.abs(o[v]));
        if (o[v] > o[am]) am = v;
        if (lg[v] > lg[bm]) bm = v;
      }
      agree += am === bm, n++;
    }
  }
}
const meta = model.fileInfo.metadata, isQ8 = meta.general.file_type === 7;  // LLAMA_FTYPE_MOSTLY_Q8_0
const what = `llama.cpp (${meta.general.architecture}, ${isQ8 ? "Q8_0" : "F32"}) on ${n} positions of ${nb} batch(es): max |logit difference| = ` +
  `${worst.toExponential(2)} (largest |logit| ${scale.toFixed(2)}), argmax agrees at ${agree}/${n}`;
if (n && isQ8) check(agree >= 0.95 * n, what + " (Q8_0: activations quantized by llama.cpp only; argmax judged)");
else if (n) check(worst <= 1e-5 * scale && agree === n, what);

if (textFile && idsFile) {
  const text = fs.readFileSync(textFile, "utf8");
  const want = fs.readFileSync(idsFile, "utf8").trim().split(/\s+/).map(Number);
  const got = Array.from(model.tokenize(text, false));  // no BOS, special tokens as plain text: as dataprep encode
  let first = -1;
  for (let i = 0; i < Math.max(got.length, want.length) && first < 0; i++) if (got[i] !== want[i]) first = i;
  check(first < 0, `llama.cpp's tokenizer from the GGUF keys (tokenizer.ggml.pre ${JSON.stringify(meta.tokenizer?.ggml?.pre)}): ` +
    `${got.length} ids for ${text.length} characters, ours ${want.length}` + (first < 0 ? ", all equal" : `, first difference at ${first}: ${got[first]} vs ${want[first]}`));
}
await model.dispose();
console.log(`check_llamacpp: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
