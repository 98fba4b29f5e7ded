#!/usr/bin/env bash
# Side-by-side speed: llmforge vs llama.cpp's llama-bench on the same TinyLlama-1.1B-shaped random GGUF files
# (f32, f16 and the quantised Q8_0, Q4_0, Q4_K_M, Q5_K_M, Q6_K), prompt processing of 128 tokens (pp128) and generation
# of 64 tokens (tg64), 2 threads.
#
#   LLAMA_CPP_SRC=/path/to/llama.cpp bench/bench_vs_llamacpp.sh [REPS]
#   DTYPES="Q4_K_M Q8_0" MODES=mmap bench/bench_vs_llamacpp.sh     # a subset
#
# The quantised files are made from the f16 one by `llmforge quantize`, whose output is byte-identical to
# llama-quantize's (tests/anchor/llamacpp_quantize.sh), so both tools read the same bytes.
# llama.cpp is an anchor, never a dependency: the script builds it from a checkout you give it, outside this
# repository (in $LLAMA_CPP_SRC/build), and nothing of it enters the project. Model files go to $BENCH_DIR
# (default /tmp/llmforge-bench; ~6.6 GB). Run it alone on the machine: other load skews the numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-2}
THREADS=${THREADS:-2}
BENCH_DIR=${BENCH_DIR:-/tmp/llmforge-bench}
source bench/anchor_llamacpp.sh
mkdir -p "$BENCH_DIR"
build_anchor_and_llmforge llama-bench

DTYPES=${DTYPES:-f32 f16 Q8_0 Q4_0 Q4_K_M Q5_K_M Q6_K}
MODES=${MODES:-mmap no-mmap}
for dt in $DTYPES; do
  f="$BENCH_DIR/tinyllama-1.1b-$dt.gguf"
  case $dt in
    f32|f16|bf16) [ -f "$f" ] || build/llmforge init --preset tinyllama-1.1b --dtype "$dt" --seed 1 -o "$f" >&2 ;;
    *) src="$BENCH_DIR/tinyllama-1.1b-f16.gguf"
       [ -f "$src" ] || build/llmforge init --preset tinyllama-1.1b --dtype f16 --seed 1 -o "$src" >&2
       [ -f "$f" ] || build/llmforge quantize "$src" "$f" "$dt" >&2 ;;
  esac
done

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus; $(date -u +%Y-%m-%d)"
echo "llama.cpp: $(git -C "$LLAMA_CPP_SRC" rev-parse --short HEAD 2>/dev/null || echo unknown); llmforge: $(git rev-parse --short HEAD)"
# Both tools map the file by default; "no-mmap" rows read the weights into memory first (llama-bench -mmp 0,
# llmforge --no-mmap). This VM's memory bandwidth drifts by up to ±25 % over minutes, so the whole matrix runs ROUNDS
# times, each pair back to back (llama.cpp, then llmforge, REPS repetitions each): the drift hits both alike, and the
# table gives the median over rounds of each tool's t/s and of the per-round ratios.
ROUNDS=${ROUNDS:-3}
rows=()
for round in $(seq "$ROUNDS"); do
  for dt in $DTYPES; do
    f="$BENCH_DIR/tinyllama-1.1b-$dt.gguf"
    for mode in $MODES; do
      lflag=(); oflag=()
      [ "$mode" = no-mmap ] && { lflag=(-mmp 0); oflag=(--no-mmap); }
      lj=$("$LLAMA_CPP_SRC/build/bin/llama-bench" -m "$f" -t "$THREADS" -p 128 -n 64 -r "$REPS" "${lflag[@]}" -o json 2>/dev/null)
      oj=$(build/llmforge bench -m "$f" -t "$THREADS" -p 128 -n 64 -r "$REPS" "${oflag[@]}" --json 2>/dev/null)
      rows+=("$(/usr/bin/python3 -c 'import json,sys; print(json.dumps([sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])]))' "$dt" "$mode" "$lj" "$oj")")
      echo "round $round/$ROUNDS: $dt $mode done" >&2
    done
  done
done
ROWS=$(printf '%s\n' "${rows[@]}") /usr/bin/python3 - <<'PY'
import json, os, statistics
res = {}
for line in os.environ["ROWS"].splitlines():
    dt, mode, lj, oj = json.loads(line)
    ours = {r["test"]: r["tokens_per_s"] for r in oj["results"]}
    for r in lj:
        test = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
        res.setdefault((dt, mode, test), []).append((r["avg_ts"], ours[test]))
print("| model  | weights | test   |  llama.cpp t/s |   llmforge t/s | ratio (median) | ratios per round |")
print("|--------|---------|--------|----------------|----------------|----------------|------------------|")
allr = []
for (dt, mode, test), v in res.items():
    ratios = [o / l for l, o in v]
    allr += ratios
    per = " ".join(f"{x:.2f}" for x in ratios)
    print(f"| {dt:<6} | {mode:<7} | {test:<6} | {statistics.median(l for l, _ in v):14.2f} | "
          f"{statistics.median(o for _, o in v):14.2f} | {statistics.median(ratios):13.2f}x | {per} |")
print(f"geometric mean of all ratios: {statistics.geometric_mean(allr):.3f}x")
PY
