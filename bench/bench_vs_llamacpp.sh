#!/usr/bin/env bash
# Side-by-side speed: llmforge vs llama.cpp's llama-bench on the same TinyLlama-1.1B-shaped random GGUF files
# (f32 and f16), prompt processing of 128 tokens (pp128) and generation of 64 tokens (tg64), 2 threads.
#
#   LLAMA_CPP_SRC=/path/to/llama.cpp bench/bench_vs_llamacpp.sh [REPS]
#
# llama.cpp is an anchor, never a dependency: the script builds it from a checkout you give it, outside this
# repository (in $LLAMA_CPP_SRC/build), and nothing of it enters the project. Model files go to $BENCH_DIR
# (default /tmp/llmforge-bench; ~6.6 GB). Run it alone on the machine: other load skews the numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-3}
THREADS=${THREADS:-2}
BENCH_DIR=${BENCH_DIR:-/tmp/llmforge-bench}
: "${LLAMA_CPP_SRC:?set LLAMA_CPP_SRC to a llama.cpp checkout}"
mkdir -p "$BENCH_DIR"

if [ ! -x "$LLAMA_CPP_SRC/build/bin/llama-bench" ]; then
  echo "building llama.cpp in $LLAMA_CPP_SRC/build ..." >&2
  cmake -S "$LLAMA_CPP_SRC" -B "$LLAMA_CPP_SRC/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=ON >&2
  cmake --build "$LLAMA_CPP_SRC/build" -j"$(nproc)" --target llama-bench >&2
fi
[ -x build/llmforge ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >&2 && cmake --build build -j"$(nproc)" >&2; }

for dt in f32 f16; do
  f="$BENCH_DIR/tinyllama-1.1b-$dt.gguf"
  [ -f "$f" ] || build/llmforge init --preset tinyllama-1.1b --dtype "$dt" --seed 1 -o "$f" >&2
done

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus; $(date -u +%Y-%m-%d)"
echo "llama.cpp: $(git -C "$LLAMA_CPP_SRC" rev-parse --short HEAD 2>/dev/null || echo unknown); llmforge: $(git rev-parse --short HEAD)"
# Both tools map the file by default; "no-mmap" rows read the weights into memory first (llama-bench -mmp 0,
# llmforge --no-mmap). Each pair runs back to back, so drift of the machine hits both alike.
printf '| %-6s | %-7s | %-6s | %14s | %14s | %7s |\n' model weights test "llama.cpp t/s" "llmforge t/s" ratio
printf '|--------|---------|--------|----------------|----------------|---------|\n'
for dt in f32 f16; do
  f="$BENCH_DIR/tinyllama-1.1b-$dt.gguf"
  for mode in mmap no-mmap; do
    lflag=(); oflag=()
    [ "$mode" = no-mmap ] && { lflag=(-mmp 0); oflag=(--no-mmap); }
    lj=$("$LLAMA_CPP_SRC/build/bin/llama-bench" -m "$f" -t "$THREADS" -p 128 -n 64 -r "$REPS" "${lflag[@]}" -o json 2>/dev/null)
    oj=$(build/llmforge bench -m "$f" -t "$THREADS" -p 128 -n 64 -r "$REPS" "${oflag[@]}" --json 2>/dev/null)
    /usr/bin/python3 - "$dt" "$mode" "$lj" "$oj" <<'PY'
import json, sys
dt, mode, lj, oj = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
ours = {r["test"]: r["tokens_per_s"] for r in oj["results"]}
for r in lj:
    test = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
    l, o = r["avg_ts"], ours[test]
    print(f"| {dt:<6} | {mode:<7} | {test:<6} | {l:14.2f} | {o:14.2f} | {o / l:6.2f}x |")
PY
  done
done
