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
# Both tools read the files through the same page cache; llmforge writes them in 2 MiB blocks, so the cache holds them
# in 2 MiB folios (mapped with huge-page entries) — a file left by an older llmforge, written in small pieces, decoded
# both tools' f32 at about half the speed (BENCHMARKS.md, 2026-12-06): delete $BENCH_DIR's files to re-create them.
# llama.cpp is an anchor, never a dependency: the script builds it from a checkout you give it, outside this
# repository (in $LLAMA_CPP_SRC/build), and nothing of it enters the project. Model files go to $BENCH_DIR
# (default /tmp/llmforge-bench; ~6.6 GB). Run it alone on the machine: other load skews the numbers. Decoding cells
# also state the bytes of weights read per second, as a share of the machine's read bandwidth (bench/read_bandwidth.cpp).
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
echo "llama.cpp: $(git -C "$LLAMA_CPP_SRC" rev-parse --short HEAD 2>/dev/null || echo "${LLAMA_CPP_COMMIT:-unknown (not a git checkout: LLAMA_CPP_COMMIT names it)}"); llmforge: $(git rev-parse --short HEAD)"
# Both tools map the file by default; "no-mmap" rows read the weights into memory first (llama-bench -mmp 0,
# llmforge --no-mmap). This VM's memory bandwidth drifts by up to ±25 % over minutes, so the whole matrix runs ROUNDS
# times, each pair back to back (REPS repetitions each): the drift hits both alike, and the table gives the median over
# rounds of each tool's t/s and of the per-round ratios. The pair's order alternates (odd rounds llama.cpp first, even
# rounds llmforge first): on 2026-12-05 the tool that ran second decoded the 4.4 GB f32 file slower round after round
# (this script, llama.cpp always first: f32 tg64 0.71x; tg32 alternated by hand over 6 rounds: 1.09x).
ROUNDS=${ROUNDS:-3}
# the machine's read bandwidth (bench/read_bandwidth.cpp, THREADS threads), measured before and after the rounds:
# decoding's bytes per token over it give each tg cell's share
g++ -O3 -march=native -pthread bench/read_bandwidth.cpp -o "$BENCH_DIR/read_bandwidth"
bw_before=$("$BENCH_DIR/read_bandwidth" "$THREADS")
# bytes of weights a decoding step reads: every tensor but the token embeddings (of which it reads one row), from
# `llmforge info --json` and each type's bytes per block / values per block (ggml's layouts)
steps=()
for dt in $DTYPES; do
  steps+=("$dt $(build/llmforge info "$BENCH_DIR/tinyllama-1.1b-$dt.gguf" --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
BLOCK = {"f32": (4, 1), "f16": (2, 1), "bf16": (2, 1), "q4_0": (18, 32), "q4_1": (20, 32), "q5_0": (22, 32), "q5_1": (24, 32),
         "q8_0": (34, 32), "q2_k": (84, 256), "q3_k": (110, 256), "q4_k": (144, 256), "q5_k": (176, 256), "q6_k": (210, 256),
         "iq4_nl": (18, 32), "iq4_xs": (136, 256)}
total = 0
for t in json.load(sys.stdin)["tensors"]:
    if t["name"] != "token_embd.weight":
        n = 1
        for d in t["shape"]:
            n *= d
        b, e = BLOCK[t["type"].lower()]
        total += n // e * b
print(total)')")
done
# each pair's JSON is kept in a file as it comes (a failure in the table below loses no measurement)
rows_file="$BENCH_DIR/bench_vs_llamacpp.rows.jsonl"
: > "$rows_file"
for round in $(seq "$ROUNDS"); do
  for dt in $DTYPES; do
    f="$BENCH_DIR/tinyllama-1.1b-$dt.gguf"
    for mode in $MODES; do
      lflag=(); oflag=()
      [ "$mode" = no-mmap ] && { lflag=(-mmp 0); oflag=(--no-mmap); }
      run_llama() { "$LLAMA_CPP_SRC/build/bin/llama-bench" -m "$f" -t "$THREADS" -p 128 -n 64 -r "$REPS" "${lflag[@]}" -o json 2>/dev/null; }
      run_ours() { build/llmforge bench -m "$f" -t "$THREADS" -p 128 -n 64 -r "$REPS" "${oflag[@]}" --json 2>/dev/null; }
      if [ $((round % 2)) = 1 ]; then lj=$(run_llama); oj=$(run_ours); else oj=$(run_ours); lj=$(run_llama); fi
      /usr/bin/python3 -c 'import json,sys; print(json.dumps([sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])]))' "$dt" "$mode" "$lj" "$oj" >> "$rows_file"
      echo "round $round/$ROUNDS: $dt $mode done" >&2
    done
  done
done
bw_after=$("$BENCH_DIR/read_bandwidth" "$THREADS")
THREADS="$THREADS" STEPS=$(printf '%s\n' "${steps[@]}") BW="$bw_before $bw_after" ROWS_FILE="$rows_file" /usr/bin/python3 - <<'PY'
import json, os, statistics
step_bytes = {dt: int(b) for dt, b in (line.split() for line in os.environ["STEPS"].splitlines())}
bw = [float(x) for x in os.environ["BW"].split()]
bw_max = max(bw)
print(f"machine read bandwidth ({os.environ.get('THREADS', '2')} threads, bench/read_bandwidth.cpp): {bw[0]:.1f} GB/s before the rounds, "
      f"{bw[1]:.1f} after; decoding's shares below are of {bw_max:.1f}")
res = {}
for line in open(os.environ["ROWS_FILE"]):
    dt, mode, lj, oj = json.loads(line)
    ours = {r["test"]: r["tokens_per_s"] for r in oj["results"]}
    for r in lj:
        test = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
        res.setdefault((dt, mode, test), []).append((r["avg_ts"], ours[test]))
print("| model  | weights | test   |  llama.cpp t/s |   llmforge t/s | ratio (median) | ratios per round | decoding GB/s, share of the read bandwidth: llama.cpp / llmforge |")
print("|--------|---------|--------|----------------|----------------|----------------|------------------|------|")
allr = []
for (dt, mode, test), v in res.items():
    ratios = [o / l for l, o in v]
    allr += ratios
    per = " ".join(f"{x:.2f}" for x in ratios)
    lm, om = statistics.median(l for l, _ in v), statistics.median(o for _, o in v)
    share = ""
    if test.startswith("tg"):
        lg, og = lm * step_bytes[dt] / 1e9, om * step_bytes[dt] / 1e9
        share = f"{lg:.1f} ({100 * lg / bw_max:.0f} %) / {og:.1f} ({100 * og / bw_max:.0f} %)"
    print(f"| {dt:<6} | {mode:<7} | {test:<6} | {lm:14.2f} | {om:14.2f} | {statistics.median(ratios):13.2f}x | {per} | {share} |")
print(f"geometric mean of all ratios: {statistics.geometric_mean(allr):.3f}x")
PY
