#!/usr/bin/env bash
# Encoding speed on all of Tiny Shakespeare: tokenizer.c (./dataprep encode --bench) against the npm
# package gpt-3-encoder (OpenAI's encoder.py ported to JavaScript), side by side in one run.
# Both time the encode work only (tokenizer files already loaded), starting with an empty cache.
#   make dataprep && bash dev/bench_tokenizer.sh [--whole] [path/to/node_modules/gpt-3-encoder]
# JS is timed calling encode() once per line (its fair BPE speed). With --whole it is also timed
# encoding the whole file in one call, as a user would call it: that takes about 6 minutes, because
# encode() appends with Array.concat and so copies the whole id list for every piece (quadratic).
# The package is not part of the repo: mkdir -p /tmp/jsenc && (cd /tmp/jsenc && npm install gpt-3-encoder@1.1.4)
#
# Hugging Face tokenizer.json (Qwen3's and Llama 3's, as dev/tokenizer_json_vectors.js copies them into
# HFTOK_DIR) against Hugging Face's own JavaScript tokenizer, @huggingface/tokenizers, on the same file:
#   bash dev/bench_tokenizer.sh --hf [HFTOK_DIR] [NODE_MODULES]   (defaults /work/hftok_full, /work/node_modules_hftok/node_modules)
# tokenizer.c encodes the whole file in one call, best of 3 from a cold cache. JS (add_special_tokens off,
# after a warm-up call for its JIT) is timed once on the whole file in one call (the token counts must
# agree), and once calling encode() once per line (Llama 3: faster than one call; Qwen3: no faster). JS is
# slow here (about 0.1-0.5 MB/s), so the run takes about a minute and a half on a busy 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--hf" ]; then
  HFDIR=${2:-/work/hftok_full}
  NM=${3:-/work/node_modules_hftok/node_modules}
  TEXT=../shared/data/tinyshakespeare/input.txt
  [ -x ./dataprep ] || { echo "bench_tokenizer.sh: ./dataprep not built; hint: make dataprep" >&2; exit 1; }
  [ -d "$NM/@huggingface/tokenizers" ] || { echo "bench_tokenizer.sh: $NM/@huggingface/tokenizers not found; hint: see dev/tokenizer_json_vectors.js" >&2; exit 1; }
  echo "Tiny Shakespeare, $(wc -c < "$TEXT") bytes, encode work only, on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores:"
  for m in qwen3 llama3; do
    best=0; n_c=0
    for i in 1 2 3; do
      line=$(./dataprep encode --tokenizer "$HFDIR/$m" --bench < "$TEXT" 2>&1 >/dev/null)
      mbs=$(echo "$line" | sed -E 's/.*\(([0-9.]+) MB\/s\).*/\1/')
      n_c=$(echo "$line" | sed -E 's/.*-> ([0-9]+) tokens.*/\1/')
      best=$(python3 -c "print(max($best, $mbs))")
    done
    read -r n_js mbs_js lines_js <<< "$(node -e '
      const { Tokenizer } = require(process.argv[1] + "/@huggingface/tokenizers");
      const fs = require("fs");
      const t = new Tokenizer(JSON.parse(fs.readFileSync(process.argv[2], "utf8")), {});
      const text = fs.readFileSync(process.argv[3], "utf8");
      t.encode(text.slice(0, 100000), { add_special_tokens: false });  // warm-up (JIT)
      const mb = Buffer.byteLength(text) / 1e6, lines = text.split(/(?<=\n)/);
      let t0 = process.hrtime.bigint();
      const n = t.encode(text, { add_special_tokens: false }).ids.length;
      const whole = mb / (Number(process.hrtime.bigint() - t0) / 1e9);
      let best = 0;
      for (let i = 0; i < 1; i++) {
        t0 = process.hrtime.bigint();
        for (const l of lines) t.encode(l, { add_special_tokens: false });
        best = Math.max(best, mb / (Number(process.hrtime.bigint() - t0) / 1e9));
      }
      console.log(n, whole.toPrecision(3), best.toPrecision(3));
    ' "$NM" "$HFDIR/$m/tokenizer.json" "$TEXT")"
    [ "$n_c" = "$n_js" ] || { echo "$m: token counts differ ($n_c vs $n_js)!" >&2; exit 1; }
    printf '  %-6s tokenizer.c %s tokens %s MB/s | @huggingface/tokenizers (node %s): one call %s MB/s, per line %s MB/s | %sx the per-line speed\n' \
      "$m" "$n_c" "$best" "$(node --version)" "$mbs_js" "$lines_js" "$(python3 -c "print(f'{$best / $lines_js:.1f}')")"
  done
  exit 0
fi
WHOLE=0
if [ "${1:-}" = "--whole" ]; then WHOLE=1; shift; fi
PKG=${1:-/tmp/jsenc/node_modules/gpt-3-encoder}
DATA=../shared/data
TEXT=$DATA/tinyshakespeare/input.txt
[ -x ./dataprep ] || { echo "bench_tokenizer.sh: ./dataprep not built; hint: make dataprep" >&2; exit 1; }
[ -d "$PKG" ] || { echo "bench_tokenizer.sh: $PKG not found; hint: npm install gpt-3-encoder in /tmp/jsenc" >&2; exit 1; }
best_c=0; c_tokens=0
for i in 1 2 3 4 5; do
  line=$(./dataprep encode --tokenizer $DATA/gpt2_bpe --bench < "$TEXT" 2>&1 >/dev/null)
  mbs=$(echo "$line" | sed -E 's/.*\(([0-9.]+) MB\/s\).*/\1/')
  c_tokens=$(echo "$line" | sed -E 's/.*-> ([0-9]+) tokens.*/\1/')
  best_c=$(python3 -c "print(max($best_c, $mbs))")
done
js() {  # $1 = lines | whole
  node -e '
    const e = require(process.argv[1]);
    const text = require("fs").readFileSync(process.argv[2], "utf8");
    const bytes = Buffer.byteLength(text);
    const pieces = process.argv[3] === "lines" ? text.split(/(?<=\n)/) : [text];
    let n = 0;
    const t0 = process.hrtime.bigint();
    for (const p of pieces) n += e.encode(p).length;
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(n, (bytes / 1e6 / dt).toPrecision(3), dt.toFixed(1));
  ' "$PKG" "$TEXT" "$1"
}
read -r jl_tokens jl_mbs jl_s <<< "$(js lines)"
echo "Tiny Shakespeare, $(wc -c < "$TEXT") bytes, encode work only, cold cache:"
echo "  tokenizer.c, whole file in one call:      $c_tokens tokens  $best_c MB/s (best of 5 runs)"
echo "  gpt-3-encoder $(node --version), one call per line: $jl_tokens tokens  $jl_mbs MB/s ($jl_s s)"
echo "  speed-up against per-line JS: $(python3 -c "print(f'{$best_c / $jl_mbs:.0f}x')")"
if [ $WHOLE = 1 ]; then
  read -r jw_tokens jw_mbs jw_s <<< "$(js whole)"
  echo "  gpt-3-encoder, whole file in one call:    $jw_tokens tokens  $jw_mbs MB/s ($jw_s s)"
  [ "$c_tokens" = "$jw_tokens" ] || { echo "token counts differ!" >&2; exit 1; }
fi
