// Writes ref/tokenizer_gpt2_vectors.txt: GPT-2 token ids computed by an independent implementation,
// the npm package gpt-3-encoder (a JavaScript port of OpenAI's encoder.py). test_dataprep.c checks
// tokenizer.c against every line. The package is NOT part of this repository; install it elsewhere:
//
//   mkdir -p /tmp/jsenc && (cd /tmp/jsenc && npm install gpt-3-encoder@1.1.4)
//   node dev/tokenizer_vectors.js /tmp/jsenc/node_modules/gpt-3-encoder > ref/tokenizer_gpt2_vectors.txt
//
// Output format, one test per line:   name <TAB> input as hex bytes <TAB> ids separated by spaces
// plus one line "#file <TAB> path <TAB> byte count <TAB> token count <TAB> FNV-1a 64 of the ids"
// for Tiny Shakespeare (committing its 338,025 ids would be 2 MB).
//
// Invalid UTF-8 cannot go through the package's encode(), which takes a JavaScript string. For those
// inputs we call the package's own regex and bpe() (reached by loading Encoder.js with two lines
// appended that export them) after mapping each invalid byte to a private-use character U+E000+byte:
// it is then one "other" character for the regex ([^\s\p{L}\p{N}]), exactly the rule tokenizer.c
// uses, and is turned back into its raw byte before BPE. For valid inputs we check that this path
// gives the same ids as encode().
//
// Known difference, kept out of the vectors: JavaScript's \s includes U+FEFF and not U+0085; OpenAI's
// Python `regex` and tiktoken (and tokenizer.c) use the Unicode White_Space property, the reverse.
'use strict';
const fs = require('fs');
const path = require('path');
const Module = require('module');

const pkg = process.argv[2] || '/tmp/jsenc/node_modules/gpt-3-encoder';
const dataDir = process.argv[3] || path.join(__dirname, '..', '..', 'shared', 'data');
const encFile = path.join(pkg, 'Encoder.js');
const m = new Module(encFile, module);
m.filename = encFile;
m.paths = Module._nodeModulePaths(pkg);
m._compile(fs.readFileSync(encFile, 'utf8') +
    '\nmodule.exports.__internals = { bpe, byte_encoder, encoder, pat };\n', encFile);
const { encode } = m.exports;
const { bpe, byte_encoder, encoder, pat } = m.exports.__internals;

// strict UTF-8 decoding; an invalid byte becomes U+E000+byte (see above)
function decodeBytes(buf) {
  let s = '';
  for (let i = 0; i < buf.length;) {
    const b = buf[i];
    let need = -1, lo = 0x80, hi = 0xBF, cp = 0;
    if (b < 0x80) { s += String.fromCodePoint(b); i++; continue; }
    if (b >= 0xC2 && b <= 0xDF) { need = 1; cp = b & 0x1F; }
    else if (b >= 0xE0 && b <= 0xEF) { need = 2; cp = b & 0x0F; if (b === 0xE0) lo = 0xA0; if (b === 0xED) hi = 0x9F; }
    else if (b >= 0xF0 && b <= 0xF4) { need = 3; cp = b & 0x07; if (b === 0xF0) lo = 0x90; if (b === 0xF4) hi = 0x8F; }
    let ok = need > 0 && i + need < buf.length;
    for (let k = 1; ok && k <= need; k++) {
      const x = buf[i + k];
      if (x < (k === 1 ? lo : 0x80) || x > (k === 1 ? hi : 0xBF)) ok = false;
      else cp = (cp << 6) | (x & 0x3F);
    }
    if (ok) { s += String.fromCodePoint(cp); i += need + 1; }
    else { s += String.fromCodePoint(0xE000 + b); i++; }
  }
  return s;
}
function encodeBytes(buf) {
  const ids = [];
  for (const match of decodeBytes(buf).matchAll(pat)) {
    const bytes = [];
    for (const ch of match[0]) {
      const cp = ch.codePointAt(0);
      if (cp >= 0xE000 && cp <= 0xE0FF) bytes.push(cp - 0xE000);
      else bytes.push(...Buffer.from(ch, 'utf8'));
    }
    const word = bytes.map(x => byte_encoder[x]).join('');
    for (const t of bpe(word).split(' ')) ids.push(encoder[t]);
  }
  return ids;
}

// ---- the test strings
const cases = [
  ['empty', ''],
  ['ascii', 'Hello world! This is a test.'],
  ['ascii_punct', 'a+b=c; x*(y-z)/2 >= 3? {ok} [no] <html> #tag @user $5 %d ^_^ ~tilde `code` \\ |pipe|'],
  ['contractions', "I'm sure you'll see they've said it's what we'd do, don't you're"],
  ['contractions_upper', "DON'T YOU'LL I'M IT'S"],
  ['apostrophe_edges', "'s 'sup ''' 'ok' rock'n'roll '"],
  ['digits', '0 1 12 123 1234 12345 123456 3.14159 1,000,000 2024-01-01 007'],
  ['spaces', 'a  b   c    d     e'],
  ['leading_trailing_spaces', '   leading and trailing   '],
  ['only_spaces', '     '],
  ['newlines', 'line one\nline two\n\nline four\n\n\n'],
  ['crlf', 'windows\r\nline\r\n\r\nend'],
  ['tabs', '\tindented\t\ttext\t'],
  ['mixed_whitespace', ' \n \t\n  x \n\n y\t \n'],
  ['accents', 'café naïve résumé Ångström Straße façade jalapeño'],
  ['combining_marks', 'cafe\u0301 n\u0303 a\u0308\u0308'],
  ['cjk', '你好，世界！日本語のテキスト。한국어 텍스트'],
  ['emoji', '😀 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ a😀b'],
  ['greek_cyrillic', 'Γειά σου Κόσμε Привет мир'],
  ['arabic_hebrew_hindi', 'مرحبا بالعالم שלום עולם नमस्ते दुनिया'],
  ['unicode_numbers', '½ ² ³ Ⅻ ٣ ४ ①②'],
  ['unicode_spaces', 'a\u00a0b\u2009c\u3000d\u2028e\u202f f\u00a0 g'],
  ['special_token_text', 'end<|endoftext|>start <|endoftext|> x'],
  ['long_word', 'Pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism'],
  ['repeated_chars', 'aaaaaaaaaaaaaaaaaaaa !!!!!!!!!! ---------- ..........'],
  ['code', 'def f(x):\n    return x**2  # square\n\nif __name__ == "__main__":\n    print(f(3))\n'],
  ['url_email', 'https://example.com/path?q=1&r=2 user.name+tag@mail.example.org'],
  ['shakespeare', 'First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n'],
  ['control_chars', 'a\u0000b\u0001c\u001fd\u007f'],
  ['four_byte', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 𐍈'],
];
// invalid UTF-8, given as bytes
const invalid = [
  ['invalid_lone_continuation', [0x61, 0x80, 0x62]],
  ['invalid_bad_lead', [0xFF, 0xFE, 0x20, 0x68, 0x69]],
  ['invalid_truncated', [0x68, 0xC3]],
  ['invalid_truncated_3', [0x20, 0xE4, 0xBD, 0x20, 0x78]],
  ['invalid_overlong', [0xC0, 0xAF, 0xE0, 0x80, 0xAF, 0x41]],
  ['invalid_surrogate', [0xED, 0xA0, 0x80, 0x20, 0x61]],
  ['invalid_above_max', [0xF4, 0x90, 0x80, 0x80, 0x20, 0x31]],
  ['invalid_mixed', [0x48, 0x69, 0x20, 0xC3, 0xA9, 0x80, 0x20, 0xF0, 0x9F, 0x98, 0x20, 0x6F, 0x6B, 0x21]],
  ['invalid_after_space', [0x20, 0x80, 0x81, 0x20, 0x20, 0xFE]],
];
// random strings from a pool that mixes every class, seeded (mulberry32) so the file is reproducible
function mulberry32(a) {
  return function () {
    a |= 0; a = (a + 0x6D2B79F5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32(20261128);
const pool = [..."aeiouAEIOU xyzXYZ  \n\n\t'sdtmlrve0123456789.,!?;:-_()\"'@#"] .concat(
  [...'éüñçÅßøœ你好世界日本한국😀👍🏽€£¥½²Ⅻ٣\u00a0\u2009\u3000\u0301ΑΩЖж']);
for (let k = 0; k < 200; k++) {
  const len = 1 + Math.floor(rand() * 40);
  let s = '';
  for (let i = 0; i < len; i++) s += pool[Math.floor(rand() * pool.length)];
  cases.push([`random_${k}`, s]);
}
for (let k = 0; k < 50; k++) {  // random bytes: mostly invalid UTF-8
  const len = 1 + Math.floor(rand() * 24);
  const b = [];
  for (let i = 0; i < len; i++) b.push(rand() < 0.5 ? 0x20 + Math.floor(rand() * 95) : Math.floor(rand() * 256));
  invalid.push([`random_bytes_${k}`, b]);
}

const out = [];
out.push('# GPT-2 token ids from the npm package gpt-3-encoder@' +
  JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')).version +
  '; generated by dev/tokenizer_vectors.js, do not edit');
out.push('# name\tinput (hex bytes)\tids');
for (const [name, s] of cases) {
  if (/[\u0085\ufeff]/.test(s)) throw new Error(`${name}: avoid U+0085 and U+FEFF (see header)`);
  const ids = encode(s);
  const buf = Buffer.from(s, 'utf8');
  const ids2 = encodeBytes(buf);
  if (ids.join(' ') !== ids2.join(' ')) throw new Error(`${name}: byte path disagrees with encode()`);
  out.push(`${name}\t${buf.toString('hex')}\t${ids.join(' ')}`);
}
for (const [name, bytes] of invalid) {
  const buf = Buffer.from(bytes);
  out.push(`${name}\t${buf.toString('hex')}\t${encodeBytes(buf).join(' ')}`);
}
// Tiny Shakespeare: count and a 64-bit FNV-1a over the ids as little-endian uint32
const tsPath = path.join(dataDir, 'tinyshakespeare', 'input.txt');
if (fs.existsSync(tsPath)) {
  const text = fs.readFileSync(tsPath, 'utf8');
  const ids = encode(text);
  let h = 0xcbf29ce484222325n;
  const P = 0x100000001b3n, M = (1n << 64n) - 1n;
  for (const id of ids) for (let k = 0; k < 4; k++) { h ^= BigInt((id >>> (8 * k)) & 0xFF); h = (h * P) & M; }
  out.push(`#file\ttinyshakespeare/input.txt\t${Buffer.byteLength(text)}\t${ids.length}\t${h.toString(16).padStart(16, '0')}`);
}
process.stdout.write(out.join('\n') + '\n');
