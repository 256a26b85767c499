// Runs an exported model.onnx in ONNX Runtime (npm onnxruntime-node, CPU) on the inputs of a logits dump
// (./train eval --dump-logits FILE; onnx.c documents its layout) and compares the logits with ours.
//   node dev/onnx/check_ort.js DIR/model.onnx DUMP [NAME]
//   node dev/onnx/check_ort.js DIR/decoder_with_past_model.onnx DUMP [NAME]
// The decoder (a model with past_key_values.N.key/value inputs) is run as generation runs it: the first half
// of each batch's tokens with an empty cache (past length 0), then the rest one token per call, each call
// feeding the previous one's present.N.key/value back as the past. Its logits, gathered over the calls,
// must equal the full forward's.
// onnxruntime-node is found through NODE_PATH (or ORT_NODE_MODULE, the package's folder); install it outside
// the repository: npm install --prefix /work/node_onnx --ignore-scripts onnxruntime-node.
// The measure is test_report.h's check_tensor: |ort - ours| <= 1e-4 (|ours| + rms(ours)) for every logit,
// rms over the dump (the floor keeps logits that cancel to ~0 from being judged on digits fp32 cannot have).
// Prints one line and exits 1 on any mismatch.
"use strict";
const fs = require("fs");
const TOL = 1e-4;
const [modelPath, dumpPath, name = "logits"] = process.argv.slice(2);
if (!modelPath || !dumpPath) {
    console.error("usage: node dev/onnx/check_ort.js DIR/model.onnx DUMP [NAME]");
    process.exit(2);
}
const ort = require(process.env.ORT_NODE_MODULE || "onnxruntime-node");

function readDump(path) {
    const buf = fs.readFileSync(path);
    const h = new Int32Array(buf.buffer, buf.byteOffset, 8);
    if (h[0] !== 0x474c584f || h[1] !== 1) throw new Error(`${path}: not a version-1 logits dump (magic ${h[0]})`);
    const [cls, nb, B, T, W] = [h[2] === 1, h[3], h[4], h[5], h[6]];
    const batches = [];
    let off = 32;
    const ints = (n) => { const a = new Int32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + off + 4 * n)); off += 4 * n; return a; };
    const floats = (n) => { const a = new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + off + 4 * n)); off += 4 * n; return a; };
    for (let i = 0; i < nb; i++) {
        const x = ints(B * T), len = cls ? ints(B) : null, logits = floats(cls ? B * W : B * T * W);
        batches.push({ x, len, logits });
    }
    if (off !== buf.length) throw new Error(`${path}: ${buf.length - off} bytes left after ${nb} batches`);
    return { cls, B, T, W, batches };
}

// The decoder's logits (B,T,V) for batch b, a call at a time: ceil(T/2) tokens, then one by one.
async function runCached(session, d, b) {
    const meta = session.inputMetadata.find((m) => m.name === "past_key_values.0.key");
    const [NH, hs] = [meta.shape[1], meta.shape[3]];
    const layers = session.inputNames.filter((n) => /^past_key_values\.\d+\.key$/.test(n)).length;
    let past = {};
    for (let l = 0; l < layers; l++)
        for (const kv of ["key", "value"]) past[`past_key_values.${l}.${kv}`] = new ort.Tensor("float32", new Float32Array(0), [d.B, NH, 0, hs]);
    const logits = new Float32Array(d.B * d.T * d.W);
    for (let t0 = 0, n = Math.ceil(d.T / 2); t0 < d.T; t0 += n, n = 1) {
        const ids = new BigInt64Array(d.B * n);
        for (let r = 0; r < d.B; r++) for (let j = 0; j < n; j++) ids[r * n + j] = BigInt(b.x[r * d.T + t0 + j]);
        const out = await session.run({ input_ids: new ort.Tensor("int64", ids, [d.B, n]), ...past });
        const want = [d.B, NH, t0 + n, hs].join();
        if (out["present.0.key"].dims.join() !== want) throw new Error(`present.0.key is ${out["present.0.key"].dims}, expected ${want}`);
        for (let r = 0; r < d.B; r++)
            for (let j = 0; j < n; j++)
                logits.set(out.logits.data.subarray((r * n + j) * d.W, (r * n + j + 1) * d.W), (r * d.T + t0 + j) * d.W);
        past = {};
        for (let l = 0; l < layers; l++)
            for (const kv of ["key", "value"]) past[`past_key_values.${l}.${kv}`] = out[`present.${l}.${kv}`];
    }
    return { dims: [d.B, d.T, d.W], data: logits };
}

async function main() {
    const d = readDump(dumpPath);
    const session = await ort.InferenceSession.create(modelPath);
    let ss = 0, n = 0;
    for (const b of d.batches) for (const v of b.logits) ss += v * v, n++;
    const rms = Math.sqrt(ss / n);
    let maxd = 0, worst = 0, bad = null;
    const cached = session.inputNames.includes("past_key_values.0.key");
    if (cached && d.cls) throw new Error("a decoder with a KV cache is an LM: give it an LM dump");
    for (const [bi, b] of d.batches.entries()) {
        const feeds = { input_ids: new ort.Tensor("int64", BigInt64Array.from(b.x, BigInt), [d.B, d.T]) };
        if (d.cls) {
            const m = new BigInt64Array(d.B * d.T);
            for (let r = 0; r < d.B; r++) for (let t = 0; t < b.len[r]; t++) m[r * d.T + t] = 1n;
            feeds.attention_mask = new ort.Tensor("int64", m, [d.B, d.T]);
        }
        const out = cached ? await runCached(session, d, b) : (await session.run(feeds)).logits;
        const want = d.cls ? [d.B, d.W] : [d.B, d.T, d.W];
        if (out.dims.join() !== want.join()) throw new Error(`logits shape ${out.dims} from ONNX Runtime, ours ${want}`);
        for (let i = 0; i < b.logits.length; i++) {
            const diff = Math.abs(out.data[i] - b.logits[i]), rel = diff / (Math.abs(b.logits[i]) + rms);
            if (!(diff <= TOL * (Math.abs(b.logits[i]) + rms)) && !bad) bad = { bi, i, ort: out.data[i], ours: b.logits[i] };
            if (diff > maxd || Number.isNaN(diff)) maxd = diff;
            if (rel > worst || Number.isNaN(rel)) worst = rel;
        }
    }
    const what = `${name}: ${d.cls ? "class" : "LM"} logits${cached ? " through the KV cache" : ""}, ${d.batches.length} batch(es) of B=${d.B} T=${d.T}, n=${n}`;
    if (bad) {
        console.log(`[FAIL] ${what}  max|d|=${maxd.toExponential(1)}  worst rel=${worst.toExponential(1)}  tol=${TOL}  ` +
                    `first bad: batch ${bad.bi} @${bad.i} ort=${bad.ort} ours=${bad.ours}`);
        process.exit(1);
    }
    console.log(`[ OK ] ${what}  max|d|=${maxd.toExponential(1)}  worst rel=${worst.toExponential(1)}  tol=${TOL}  (ONNX Runtime ${ort.env.versions?.common ?? ""})`);
}
main().catch((e) => { console.error(`check_ort: error: ${e.message}`); process.exit(1); });
