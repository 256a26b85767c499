// dev/check_chatml.mjs: checks `dataprep sft --template chatml` against Hugging Face's own code: the real chat
// template strings of SmolLM2-Instruct and Qwen2.5-Instruct rendered by @huggingface/jinja (the Jinja engine of
// transformers.js), and the text tokenized by @huggingface/tokenizers (tokenizers.js). Not part of `make test`.
//
//   mkdir -p /work/node_modules_chatml && cd /work/node_modules_chatml && npm install @huggingface/jinja@0.5.11 @huggingface/tokenizers@0.2.0
//   make dataprep && node dev/check_chatml.mjs /work/node_modules_chatml            (from the repo root)
//   node dev/check_chatml.mjs /work/node_modules_chatml --print-ids   (the ids test_dataprep.c compares with)
//
// For each tokenizer (ref/tokjson_smol.json with SmolLM2's template, ref/tokjson_qwen2.json with Qwen2.5's) it
// writes a few conversations, runs ./dataprep sft --template chatml --system DEFAULT (the template's own default
// system message, so the texts must agree), reads the .ds file and checks, per conversation:
//   1. text: our ids decoded == the template's rendering (add_generation_prompt false);
//   2. ids: our ids == tokenizers.js's encoding of that rendering (special tokens recognized, no BOS added);
//   3. mask: computed here from character spans, independently of dataprep.c: a token is trained iff one of its
//      characters lies in an assistant message's content + "<|im_end|>\n" (TRL's {% generation %} block of
//      trl/chat_templates/qwen2_5_training.jinja, less the header's "\n", see dataprep.c).
// Prints one line per check and exits 1 on any mismatch.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { pathToFileURL } from "node:url";
import path from "node:path";

const modules = process.argv[2];
if (!modules) { console.error("usage: node dev/check_chatml.mjs NODE_MODULES_PARENT [--print-ids]"); process.exit(2); }
const printIds = process.argv.includes("--print-ids");
const load = (name) => import(pathToFileURL(path.join(modules, "node_modules", name, "package.json")).href.replace(/package\.json$/, "") + JSON.parse(readFileSync(path.join(modules, "node_modules", name, "package.json"))).module);
const { Template } = await load("@huggingface/jinja");
const { Tokenizer } = await load("@huggingface/tokenizers");

// The templates as their tokenizer_config.json files give them (chat_template), the no-tools part for Qwen2.5.
const SMOL = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
const QWEN = `{%- if messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
{%- else %}
    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
`;
const CASES = [
  { tok: "ref/tokjson_smol.json", template: SMOL, system: "You are a helpful AI assistant named SmolLM, trained by Hugging Face" },
  { tok: "ref/tokjson_qwen2.json", template: QWEN, system: "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." },
];
const CHATS = [
  [{ role: "system", content: "You are terse." }, { role: "user", content: "Hi there" }, { role: "assistant", content: "Hello!" },
   { role: "user", content: "What is 2+2?" }, { role: "assistant", content: "4, of course." }],
  [{ role: "user", content: "No system message here." }, { role: "assistant", content: "Then the default one is used." }],
  [{ role: "user", content: "Spaces  and\ttabs\n\nand lines" }, { role: "assistant", content: "\n\nA reply that starts with newlines" },
   { role: "user", content: " lead space" }, { role: "assistant", content: " lead space too " }],
  [{ role: "user", content: "Unicode: café, naïve, 日本語, emoji 🙂" }, { role: "assistant", content: "" }, { role: "user", content: "again?" },
   { role: "assistant", content: "ünïcödé 123456 ok" }],
  [{ role: "user", content: "Hi" }, { role: "assistant", content: "\n\nOK" }],  // Qwen2: "assistant\n" + "\n\n" -> one token, trained
];

const tmp = "test_tmp/check_chatml";
mkdirSync(tmp, { recursive: true });
writeFileSync(`${tmp}/chats.jsonl`, CHATS.map((m) => JSON.stringify({ messages: m })).join("\n") + "\n");

// the .ds reader (dataset.h: 256 int32 header, then records n, label, ids, mask, padding; the index at the end)
function readDs(file) {
  const b = readFileSync(file);
  const h = (i) => b.readInt32LE(4 * i);
  if (h(0) !== 20261129 || h(2) !== 2) throw new Error(`${file}: not an SFT .ds file`);
  const bpt = h(4), count = h(7), indexAt = h(11);
  const out = [];
  for (let e = 0; e < count; e++) {
    let off = Number(b.readBigUInt64LE(indexAt + 8 * e));
    const n = b.readUInt32LE(off), label = b.readInt32LE(off + 4);
    off += 8;
    const ids = [], mask = [];
    for (let i = 0; i < n; i++) ids.push(bpt === 2 ? b.readUInt16LE(off + 2 * i) : b.readUInt32LE(off + 4 * i));
    off += bpt * n;
    for (let i = 0; i < n; i++) mask.push(b[off + i]);
    out.push({ ids, mask, label });
  }
  return out;
}

// The mask from byte spans of the rendered text (see the header). A token's bytes: byte-level BPE writes each byte as
// one character of the vocabulary string, so a vocabulary token of k characters is k bytes; an added token is its
// content in UTF-8. Bytes, not characters: a character split over two tokens puts a content byte in both.
function spanMask(text, msgs, ids, tokenBytes) {
  const spans = [];
  let at = 0;
  const bytes = (s) => Buffer.byteLength(s, "utf8");
  for (const m of msgs) {
    const head = `<|im_start|>${m.role}\n`;
    const start = text.indexOf(head + m.content + "<|im_end|>\n", at);
    if (start < 0) throw new Error("message not found in the rendering");
    const c0 = start + head.length, c1 = c0 + m.content.length + "<|im_end|>\n".length;
    if (m.role === "assistant") spans.push([bytes(text.slice(0, c0)), bytes(text.slice(0, c1))]);
    at = c1;
  }
  const mask = [];
  let pos = 0;
  for (const id of ids) {
    const a = pos, z = pos + tokenBytes(id);
    mask.push(spans.some(([s, e]) => a < e && z > s) ? 1 : 0);
    pos = z;
  }
  if (pos !== bytes(text)) throw new Error("token bytes do not cover the rendering");
  return mask;
}

let pass = 0, fail = 0;
const check = (ok, what) => { console.log(`${ok ? "[ OK ]" : "[FAIL]"} ${what}`); ok ? pass++ : fail++; };
for (const c of CASES) {
  const json = JSON.parse(readFileSync(c.tok, "utf8"));
  const tk = new Tokenizer(json, {});
  const name = path.basename(c.tok, ".json");
  const prefix = `${tmp}/${name}`;
  execFileSync("./dataprep", ["sft", "--tokenizer", c.tok, "--template", "chatml", "--system", c.system, "--split", "100/0/0",
                              "--keep-duplicates", "--out", prefix, `${tmp}/chats.jsonl`], { stdio: ["ignore", "ignore", "inherit"] });
  const ds = readDs(`${prefix}_train.ds`);
  check(ds.length === CHATS.length, `${name}: ${ds.length} examples for ${CHATS.length} conversations`);
  const tpl = new Template(c.template);
  const vocabText = new Map(Object.entries(json.model.vocab).map(([s, id]) => [id, [...s].length]));
  for (const a of json.added_tokens) vocabText.set(a.id, Buffer.byteLength(a.content, "utf8"));
  const tokenBytes = (id) => vocabText.get(id);
  CHATS.forEach((msgs, i) => {
    const text = tpl.render({ messages: msgs, add_generation_prompt: false });
    const ours = ds[i];
    const decoded = tk.decode(ours.ids, { skip_special_tokens: false });
    check(decoded === text, `${name} chat ${i}: text of our ids == the template's rendering (${text.length} chars)`);
    const ref = tk.encode(text, { add_special_tokens: false }).ids;
    const same = ref.length === ours.ids.length && ref.every((x, k) => x === ours.ids[k]);
    check(same, `${name} chat ${i}: our ${ours.ids.length} ids == tokenizers.js's ${ref.length}`);
    if (!same) console.log(`  ours ${ours.ids.join(" ")}\n  ref  ${ref.join(" ")}`);
    const want = spanMask(text, [...(msgs[0].role === "system" ? [] : [{ role: "system", content: c.system }]), ...msgs], ref, tokenBytes);
    const sameMask = want.length === ours.mask.length && want.every((x, k) => x === ours.mask[k]);
    check(sameMask, `${name} chat ${i}: loss mask == assistant content + <|im_end|>\\n by character spans (${want.filter((x) => x).length} trained)`);
    if (!sameMask) console.log(`  ours ${ours.mask.join("")}\n  want ${want.join("")}`);
    if (printIds) console.log(`  ids ${ours.ids.join(", ")}\n  mask ${ours.mask.join("")}  label ${ours.label}`);
  });
}
console.log(`check_chatml: ${pass} passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
