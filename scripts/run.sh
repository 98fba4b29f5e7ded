#!/usr/bin/env bash
# The main job, from a fresh machine, in about ten minutes: install dependencies and real English text (Debian's
# fortunes), build, train a byte-level BPE tokenizer on the text, clean/deduplicate/tokenise it into shards, pre-train
# a small GPT-2-style model by next-token prediction (progress bars, validation perplexity, a loss plot), and generate
# from it. Everything lands in models/quickstart/.
#   scripts/run.sh            the whole slice
#   STEPS=600 scripts/run.sh  train longer
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
bin=build/llmforge
out=models/quickstart
mkdir -p "$out"

# 1. real text: Debian's English fortune collection (quotes, jokes, literature), one document per fortune
[ -s "$out/text.txt" ] || scripts/fortunes_text.sh "$out/text.txt"
echo "text: $(du -h "$out/text.txt" | cut -f1) of English from Debian's fortunes" >&2

# 2. a tokenizer trained on it (GPT-4's pre-tokeniser pattern, chat special tokens)
[ -s "$out/tokenizer.json" ] || $bin tokenizer train --input "$out/text.txt" --vocab-size 4096 -o "$out/tokenizer.json"

# 3. clean, deduplicate, tokenise into shards with a validation split
[ -s "$out/data/data.json" ] || $bin prepare --input "$out/text.txt" --tokenizer "$out/tokenizer.json" -o "$out/data" --val-fraction 0.02

# 4. pre-train (resumes if interrupted: run the script again)
resume=""
[ -f "$out/run/checkpoint/state.json" ] && resume="--resume"
[ -f "$out/run/model.gguf" ] || $bin pretrain --preset gpt2-tiny --layers 4 --d-model 256 --heads 4 --d-ff 1024 \
  --data "$out/data" -o "$out/run" --steps "${STEPS:-300}" --batch-size 8 --seq-len 128 --lr 2e-3 --min-lr 2e-4 --warmup 30 \
  --eval-every 50 --eval-batches 16 --save-every 50 --sample-every 150 --sample-prompt "The " $resume

# 5. generate
echo "loss curve: $out/run/loss.svg   metrics: $out/run/metrics.jsonl" >&2
$bin generate -m "$out/run/model.gguf" -p "The meaning of life is" -n 60 --temp 0.8 --seed 1
