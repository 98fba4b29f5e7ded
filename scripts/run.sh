#!/usr/bin/env bash
# The main job, from a fresh machine: install dependencies and real English text (the King James Bible, Debian's
# bible-kjv), build, train a byte-level BPE tokenizer on it, clean/deduplicate/tokenise it into shards, pre-train a
# small LLaMA-style model by next-token prediction (progress bar, validation perplexity against a unigram baseline, a
# loss plot), and show what it learned: a sample from the untrained model beside one from the trained model.
# Everything lands in models/quickstart/.
#   scripts/run.sh            the whole slice (about 5 minutes of training on 2 cores)
#   STEPS=1500 scripts/run.sh train longer (run it again after an interruption: training resumes)
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
scripts/setup.sh >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >&2
cmake --build build -j"$(nproc)" --target llmforge_cli >&2
bin=build/llmforge
out=models/quickstart
mkdir -p "$out"

# 1. real text: the King James Bible, one chapter per document, one verse per line (4 MB)
[ -s "$out/kjv.txt" ] || scripts/kjv_text.sh "$out/kjv.txt"
echo "text: $(du -h "$out/kjv.txt" | cut -f1) of English from Debian's bible-kjv" >&2

# 2. a tokenizer trained on it (GPT-4's pre-tokeniser pattern, chat special tokens), 4096 tokens
[ -s "$out/tokenizer.json" ] || $bin tokenizer train --input "$out/kjv.txt" --vocab-size 4096 -o "$out/tokenizer.json" >&2

# 3. clean, deduplicate, tokenise into shards, 2 % of the chapters held out for validation
[ -s "$out/data/data.json" ] || $bin prepare --input "$out/kjv.txt" --tokenizer "$out/tokenizer.json" -o "$out/data" --val-fraction 0.02 >&2

# 4. pre-train a 5.5M-parameter LLaMA-style model (RMSNorm, RoPE, SwiGLU); resumes if interrupted
resume=""
[ -f "$out/run/checkpoint/state.json" ] && resume="--resume"
if [ ! -f "$out/run/model.gguf" ]; then
  $bin pretrain --preset llama-small --layers 4 --d-model 256 --heads 4 --kv-heads 4 --d-ff 768 \
    --data "$out/data" -o "$out/run" --steps "${STEPS:-500}" -b 16 --seq-len 128 --lr 2e-3 --min-lr 2e-4 --warmup 30 \
    --eval-every 100 --eval-batches 32 --save-every 100 --sample-every 250 --sample-prompt "And the LORD said" $resume \
    | tee "$out/result.txt" >&2
fi

# 5. what it learned
first_sample() { awk '/^--- step /{n++} n==1 && !/^--- step /' "$1"; }
last_sample() { awk '/^--- step /{buf=""; next} {buf = buf $0 "\n"} END {printf "%s", buf}' "$1"; }
cat <<EOF

== what the model learned ($(( ($(date +%s) - t0) / 60 )) min $(( ($(date +%s) - t0) % 60 )) s in all) ==
$(cat "$out/result.txt")

before training (step 0), prompted with "And the LORD said":
$(first_sample "$out/run/samples.txt")

after training ($(grep -c '^--- step' "$out/run/samples.txt") samples in $out/run/samples.txt; the last):
$(last_sample "$out/run/samples.txt")

loss curve: $out/run/loss.svg   metrics: $out/run/metrics.jsonl   model: $out/run/model.gguf
more text: $bin generate -m $out/run/model.gguf -p "And it came to pass" -n 80 --temp 0.8
EOF
