#!/usr/bin/env bash
# No regression: this build's llmforge against an older llmforge binary (the one from before a refactoring), side by
# side in one run. Inference: `llmforge bench` on TinyLlama-1.1B-shaped random GGUF files, f32 and f16, mapped and
# read into memory (--no-mmap), prompt processing of 128 tokens and generation of 64 (bench_vs_llamacpp.sh's cells).
# Training: `llmforge pretrain` on bench_train.sh's GPT-2-style model, fp32 and bf16 products, tokens/s over
# TRAIN_STEPS (default 10) steps after 3 warm-up steps. ROUNDS rounds (default 3), the two binaries alternating which goes first; the table gives the
# median over rounds of each binary's figure and of the per-round ratios (new ÷ old). Run alone on the machine.
#
#   git worktree add /tmp/old <commit> && cmake -S /tmp/old -B /tmp/old/build -DLLMFORGE_BUILD_TESTS=OFF &&
#   cmake --build /tmp/old/build --target llmforge_cli
#   bench/bench_vs_old.sh /tmp/old/build/llmforge
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: bench/bench_vs_old.sh OLD_LLMFORGE_BINARY}
new=build/llmforge
[ -x "$old" ] || { echo "bench_vs_old: '$old' is not an executable" >&2; exit 2; }
[ -x "$new" ] || { echo "bench_vs_old: build llmforge first" >&2; exit 2; }
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-2}
THREADS=${THREADS:-2}
BENCH_DIR=${BENCH_DIR:-/tmp/llmforge-bench}
SKIP_TRAIN=${SKIP_TRAIN:-0}
TRAIN_STEPS=${TRAIN_STEPS:-10}  # measured training steps per run (after 3 warm-up steps)
DTYPES=${DTYPES-f32 f16}  # the weight types of the inference cells (f32 decoding is slow: DTYPES=f16 for a quicker run; DTYPES= for training only)
mkdir -p "$BENCH_DIR"
for dt in $DTYPES; do
  f="$BENCH_DIR/tinyllama-1.1b-$dt.gguf"
  [ -f "$f" ] || "$new" init --preset tinyllama-1.1b --dtype "$dt" --seed 1 -o "$f" >&2
done
work=bench/work/train
if [ "$SKIP_TRAIN" != 1 ] && [ ! -s "$work/data/data.json" ]; then
  mkdir -p "$work"
  scripts/fortunes_text.sh "$work/text.txt"
  "$new" tokenizer train --input "$work/text.txt" --vocab-size 8192 -o "$work/tok.json" -q >/dev/null
  "$new" prepare --input "$work/text.txt" --tokenizer "$work/tok.json" -o "$work/data" -q >/dev/null
fi
model=(--preset gpt2-tiny --layers 6 --d-model 384 --heads 6 --d-ff 1536 --batch-size 8 --seq-len 256 -t "$THREADS")
train_tps() {  # binary precision → tokens/s over the steps after 3 warm-up steps
  rm -rf "$work/vs_old_run"
  "$1" pretrain "${model[@]}" --data "$work/data" -o "$work/vs_old_run" --steps $((TRAIN_STEPS + 3)) --eval-every 0 --save-every 0 --warmup 1 \
    --precision "$2" -q >/dev/null
  /usr/bin/python3 -c "
import json
m=[json.loads(l) for l in open('$work/vs_old_run/metrics.jsonl')][3:]
print(len(m)*8*256/sum(8*256/x['tokens_per_s'] for x in m))"
}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus; $(date -u +%Y-%m-%d)"
echo "old: $old ($("$old" --version 2>/dev/null | head -1)); new: $new ($(git rev-parse --short HEAD))"
rows=()
for round in $(seq "$ROUNDS"); do
  order=(old new); [ $((round % 2)) = 0 ] && order=(new old)
  for dt in $DTYPES; do
    f="$BENCH_DIR/tinyllama-1.1b-$dt.gguf"
    for mode in mmap no-mmap; do
      flag=(); [ "$mode" = no-mmap ] && flag=(--no-mmap)
      for who in "${order[@]}"; do
        bin=$old; [ "$who" = new ] && bin=$new
        j=$("$bin" bench -m "$f" -t "$THREADS" -p 128 -n 64 -r "$REPS" "${flag[@]}" --json 2>/dev/null)
        for test in pp128 tg64; do
          v=$(/usr/bin/python3 -c 'import json,sys; print([r["tokens_per_s"] for r in json.loads(sys.argv[1])["results"] if r["test"]==sys.argv[2]][0])' "$j" "$test")
          rows+=("$dt $mode $test $who $v")
        done
      done
      echo "round $round/$ROUNDS: $dt $mode done" >&2
    done
  done
  if [ "$SKIP_TRAIN" != 1 ]; then
    for prec in f32 bf16; do
      for who in "${order[@]}"; do
        bin=$old; [ "$who" = new ] && bin=$new
        rows+=("train $prec pretrain $who $(train_tps "$bin" "$prec")")
      done
      echo "round $round/$ROUNDS: training $prec done" >&2
    done
  fi
done
ROWS=$(printf '%s\n' "${rows[@]}") /usr/bin/python3 - <<'PY'
import os, statistics
from collections import defaultdict
res = defaultdict(lambda: defaultdict(list))
for line in os.environ["ROWS"].splitlines():
    a, b, test, who, v = line.split()
    res[(a, b, test)][who].append(float(v))
print("| cell | old t/s | new t/s | new ÷ old (median) | per round |")
print("|---|---|---|---|---|")
allr = []
for key, d in res.items():
    ratios = [n / o for o, n in zip(d["old"], d["new"])]
    allr += [statistics.median(ratios)]
    print(f"| {' '.join(key)} | {statistics.median(d['old']):.1f} | {statistics.median(d['new']):.1f} | {statistics.median(ratios):.3f} | "
          + " ".join(f"{r:.3f}" for r in ratios) + " |")
verdict = "met" if min(allr) >= 0.98 else "not met"
print(f"\nlowest cell median ratio {min(allr):.3f}; geometric mean {statistics.geometric_mean(allr):.3f} (target every cell ≥ 0.98: {verdict})")
PY
