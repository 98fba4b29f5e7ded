#!/usr/bin/env bash
# Decoding beside a CPU hog: how far each tool's generation speed falls when another process keeps cores busy.
# llmforge bench and llama.cpp's llama-bench decode (tg) with -t THREADS (default 2) on the same files, first on an idle
# machine, then with HOGS busy-loop processes (default 1) running beside them; each tool's "kept" figure is
# hog t/s ÷ idle t/s, and the last column compares them (llmforge kept ÷ llama.cpp kept: ≥ 1 means we degrade no
# worse). Models: the real stories260K (thousands of tokens/s: a decoding step is dozens of tiny parallel regions,
# the worst case for a thread pool) and a TinyLlama-1.1B-shaped f16 file (memory-bound, ~20 tokens/s).
#
#   LLAMA_CPP_SRC=/path/to/llama.cpp bench/bench_contention.sh      (LLMFORGE=path/to/llmforge: another build)
#
# llama.cpp is an anchor, never a dependency: built outside this repository as in bench_vs_llamacpp.sh. ROUNDS (3)
# alternates idle and loaded measurements so drift hits both; the table gives medians over rounds. Run it alone.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
HOGS=${HOGS:-1}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-5}
BENCH_DIR=${BENCH_DIR:-/tmp/llmforge-bench}
GOLDEN=${LLMFORGE_GOLDEN:-../shared/golden}
LLMFORGE=${LLMFORGE:-build/llmforge}
source bench/anchor_llamacpp.sh
mkdir -p "$BENCH_DIR"
build_anchor_and_llmforge llama-bench
tl="$BENCH_DIR/tinyllama-1.1b-f16.gguf"
[ -f "$tl" ] || "$LLMFORGE" init --preset tinyllama-1.1b --dtype f16 --seed 1 -o "$tl" >&2
models=("$GOLDEN/stories260K/stories260K.gguf:256" "$tl:32")

hog_pids=()
start_hogs() { for _ in $(seq "$HOGS"); do sh -c 'while :; do :; done' & hog_pids+=($!); done; sleep 0.5; }
stop_hogs() { for p in "${hog_pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait "${hog_pids[@]}" 2>/dev/null || true; hog_pids=(); }
trap stop_hogs EXIT

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus; $(date -u +%Y-%m-%d); -t $THREADS, $HOGS busy process(es) beside"
echo "llama.cpp: $(git -C "$LLAMA_CPP_SRC" rev-parse --short HEAD 2>/dev/null || echo unknown); llmforge: $(git rev-parse --short HEAD)"
rows=()
for round in $(seq "$ROUNDS"); do
  for spec in "${models[@]}"; do
    f=${spec%:*}; n=${spec##*:}
    for load in idle hog; do
      [ "$load" = hog ] && start_hogs
      lj=$("$LLAMA_CPP_SRC/build/bin/llama-bench" -m "$f" -t "$THREADS" -p 0 -n "$n" -r "$REPS" -o json 2>/dev/null)
      oj=$("$LLMFORGE" bench -m "$f" -t "$THREADS" -p 0 -n "$n" -r "$REPS" --json 2>/dev/null)
      [ "$load" = hog ] && stop_hogs
      rows+=("$(/usr/bin/python3 -c 'import json,sys; print(json.dumps([sys.argv[1], sys.argv[2], json.loads(sys.argv[3])[0]["avg_ts"], json.loads(sys.argv[4])["results"][0]["tokens_per_s"]]))' "$(basename "$f")" "$load" "$lj" "$oj")")
      echo "round $round/$ROUNDS: $(basename "$f") $load done" >&2
    done
  done
done
ROWS=$(printf '%s\n' "${rows[@]}") /usr/bin/python3 - <<'PY'
import json, os, statistics
res = {}
for line in os.environ["ROWS"].splitlines():
    model, load, l, o = json.loads(line)
    res.setdefault(model, {}).setdefault(load, []).append((l, o))
print("| model | llama.cpp idle t/s | llama.cpp with hog | kept | llmforge idle t/s | llmforge with hog | kept | llmforge kept ÷ llama.cpp kept |")
print("|-------|-------------------:|-------------------:|-----:|------------------:|------------------:|-----:|-------------------------------:|")
for model, d in res.items():
    li = statistics.median(l for l, _ in d["idle"]); lh = statistics.median(l for l, _ in d["hog"])
    oi = statistics.median(o for _, o in d["idle"]); oh = statistics.median(o for _, o in d["hog"])
    print(f"| {model} | {li:.1f} | {lh:.1f} | {lh/li:.2f} | {oi:.1f} | {oh:.1f} | {oh/oi:.2f} | {(oh/oi)/(lh/li):.2f}x |")
    for load in ("idle", "hog"):
        print(f"|   per round, {load}: llama.cpp " + " ".join(f"{l:.1f}" for l, _ in d[load]) + "; llmforge " + " ".join(f"{o:.1f}" for _, o in d[load]) + " | | | | | | | |")
PY
