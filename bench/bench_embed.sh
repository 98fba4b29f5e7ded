#!/usr/bin/env bash
# Sentence embeddings per second: llmforge embed against llama.cpp's llama-embedding on the same GGUF and texts.
# The model: `llmforge init --preset bge-small` (BAAI/bge-small-en-v1.5's shape: 12 layers, 384 wide, 33M parameters)
# with the golden bert-bge WordPiece vocabulary, f32 and f16; the texts: N lines of Debian's fortunes (10–60 words).
# llama-embedding runs with -b 512 -ub 512 (one batch the size of the context: its fastest setting measured here —
# -b 2048 packs more texts into one batch and ran 2.9x slower; a batch smaller than a text aborts).
#   LLAMA_EMBEDDING=/path/to/llama-embedding bench/bench_embed.sh [N] [THREADS]       (defaults 200 2)
set -euo pipefail
cd "$(dirname "$0")/.."
LLAMA=${LLAMA_EMBEDDING:?set LLAMA_EMBEDDING to the llama-embedding binary of llama.cpp}
BIN=${LLMFORGE_BIN:-build/llmforge}
N=${1:-200}
T=${2:-2}
GOLDEN=${LLMFORGE_GOLDEN:-../shared/golden}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$N" > "$work/texts.txt" <<'PY'
import glob, re, sys
n = int(sys.argv[1])
out = []
for f in sorted(glob.glob("/usr/share/games/fortunes/*")):
    if not re.fullmatch(r"[a-z-]+", f.rsplit("/", 1)[1]):
        continue
    for e in open(f, encoding="utf-8", errors="replace").read().split("\n%\n"):
        t = " ".join(e.split())
        if 10 <= len(t.split()) <= 60:
            out.append(t)
print("\n".join(out[:n]))
PY
# texts per second: lines of FILE over the seconds from START to END
rate() { awk -v n="$(wc -l < "$1")" -v a="$2" -v b="$3" 'BEGIN { printf "%.2f", n / (b - a) }'; }
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cpus; $(date -u +%Y-%m-%d); llmforge $(git rev-parse --short HEAD)"
echo "texts: $(wc -l < "$work/texts.txt") lines of fortunes, $T threads"
for dt in f32 f16; do
  "$BIN" init --preset bge-small --tokenizer "$GOLDEN/vocab/ggml-vocab-bert-bge.gguf" --dtype $dt -o "$work/bge-$dt.gguf" 2>/dev/null
  s=$(date +%s.%N); "$BIN" embed -m "$work/bge-$dt.gguf" -f "$work/texts.txt" -t "$T" > "$work/ours.txt" 2>/dev/null; e=$(date +%s.%N)
  ours=$(rate "$work/ours.txt" "$s" "$e")
  s=$(date +%s.%N); "$LLAMA" -m "$work/bge-$dt.gguf" -f "$work/texts.txt" -t "$T" -c 512 -b 512 -ub 512 --pooling cls --embd-output-format array > "$work/theirs.txt" 2>/dev/null; e=$(date +%s.%N)
  theirs=$(rate "$work/texts.txt" "$s" "$e")
  python3 - "$dt" "$ours" "$theirs" "$work/ours.txt" "$work/theirs.txt" <<'PY'
import json, sys
dt, ours, theirs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
a = [json.loads(l) for l in open(sys.argv[4]) if l.strip()]
b = json.loads(open(sys.argv[5]).read().strip())
diff = max(abs(x - y) for u, v in zip(a, b) for x, y in zip(u, v))
print(f"{dt}: llmforge {ours:.1f} texts/s, llama-embedding {theirs:.1f} texts/s, ratio {ours / theirs:.2f}x; {len(a)} vs {len(b)} vectors, max |diff| {diff:.1e}")
PY
done
