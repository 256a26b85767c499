// Greedy generation with the exported KV-cache decoder in ONNX Runtime, as `./train sample --temperature 0`
// generates: the prompt in one call with an empty cache, then one token per call, feeding present.N.key/value
// back as past_key_values.N.key/value. Prints the prompt and the new ids on one line, as ./train sample does.
//   node dev/onnx/generate.js DIR/decoder_with_past_model.onnx "ids" N
// onnxruntime-node through NODE_PATH (or ORT_NODE_MODULE); see dev/onnx/check.sh.
"use strict";
const ort = require(process.env.ORT_NODE_MODULE || "onnxruntime-node");
const [path, prompt, steps] = process.argv.slice(2);
if (!path || !prompt || !steps) {
    console.error('usage: node dev/onnx/generate.js DIR/decoder_with_past_model.onnx "ids" N');
    process.exit(2);
}
async function main() {
    const s = await ort.InferenceSession.create(path);
    const meta = s.inputMetadata.find((m) => m.name === "past_key_values.0.key");
    if (!meta) throw new Error(`${path} has no past_key_values inputs: give the decoder_with_past_model.onnx`);
    const layers = s.inputNames.filter((n) => /^past_key_values\.\d+\.key$/.test(n)).length;
    let past = {};
    for (let l = 0; l < layers; l++)
        for (const kv of ["key", "value"])
            past[`past_key_values.${l}.${kv}`] = new ort.Tensor("float32", new Float32Array(0), [1, meta.shape[1], 0, meta.shape[3]]);
    const ids = prompt.trim().split(/\s+/).map(Number);
    let feed = ids.slice();
    for (let i = 0; i < Number(steps); i++) {
        const out = await s.run({ input_ids: new ort.Tensor("int64", BigInt64Array.from(feed, BigInt), [1, feed.length]), ...past });
        const V = out.logits.dims[2], last = out.logits.data.subarray((feed.length - 1) * V, feed.length * V);
        let best = 0;  // argmax, the first of equal maxima (as infer.h's greedy sampler)
        for (let v = 1; v < V; v++) if (last[v] > last[best]) best = v;
        ids.push(best);
        feed = [best];
        for (let l = 0; l < layers; l++)
            for (const kv of ["key", "value"]) past[`past_key_values.${l}.${kv}`] = out[`present.${l}.${kv}`];
    }
    console.log(ids.join(" "));
}
main().catch((e) => { console.error(`generate: error: ${e.message}`); process.exit(1); });
