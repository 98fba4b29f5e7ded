#!/usr/bin/env bash
# The WordNet fine-tuning of docs/sft-wordnet with LoRA, on an f16 base and on its Q4_K_M quantisation (QLoRA), two seeds
# each, scored on the same held-out words:
#   1. pre-training as in scripts/sft_demo.sh, with dimensions that are multiples of 256 (so that Q4_K_M is made of
#      K-quants, not of the fallback types): 6 layers, d_model 256, d_ff 1024, the 8,192-token BPE, f32 products;
#   2. the model written in f16 (`convert --dtype f16`) and quantised from it to Q4_K_M (`quantize`, byte-identical to
#      llama-quantize);
#   3. `sft --lora-rank 16 --lora-targets all` on each base (one epoch of the 37,240 training conversations), seeds 1 and 2;
#   4. the first 400 held-out questions asked with each adapter beside its own base (`chat --lora`, greedy): exact match,
#      BLEU (NLTK), format, ended-its-turn rate — scripts/sft_eval.py.
# Everything lands in $OUT (default runs/qlora-demo); rerunning skips finished stages. Needs scripts/setup.sh --corpus.
# PRETRAIN_STEPS (default 2400) and SFT_EPOCHS (default 1) scale it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/qlora-demo}
bin=build/llmforge
mkdir -p "$out"
source scripts/english_data.sh
english_data "$out" "$bin"
if [ ! -s "$out/pretrain/model.gguf" ]; then
  resume=(); [ -d "$out/pretrain/checkpoint" ] && resume=(--resume)
  $bin pretrain --preset gpt2-tiny --layers 6 --d-model 256 --heads 4 --d-ff 1024 --data "$out/data" -o "$out/pretrain" \
    --steps "${PRETRAIN_STEPS:-2400}" --batch-size 8 --seq-len 256 --lr 1e-3 --min-lr 1e-4 --warmup 60 \
    --eval-every 200 --eval-batches 32 --save-every 200 --seed 1 -t 2 "${resume[@]}"
fi
[ -s "$out/base-f16.gguf" ] || $bin convert "$out/pretrain/model.gguf" "$out/base-f16.gguf" --dtype f16
[ -s "$out/base-Q4_K_M.gguf" ] || $bin quantize "$out/base-f16.gguf" "$out/base-Q4_K_M.gguf" Q4_K_M --json > "$out/quantize-report.json"
[ -s "$out/wordnet/train.jsonl" ] || python3 scripts/wordnet_chats.py "$out/wordnet" > "$out/wordnet-report.json"
for base in f16 Q4_K_M; do
  for seed in 1 2; do
    run="$out/sft-$base-s$seed"
    if [ ! -s "$run/adapter.gguf" ]; then
      resume=(); [ -d "$run/checkpoint" ] && resume=(--resume)
      /usr/bin/time -f "%M %e" -o "$run.time" $bin sft -m "$out/base-$base.gguf" --data "$out/wordnet/train.jsonl" -o "$run" \
        --epochs "${SFT_EPOCHS:-1}" --batch-size 16 --seq-len 256 --lr 2e-3 --min-lr 2e-4 --warmup 50 --lora-rank 16 --lora-targets all \
        --eval-every 500 --eval-batches 100 --save-every 500 --seed "$seed" -t 2 "${resume[@]}"
    fi
    [ -s "$out/eval-$base-s$seed.json" ] || /usr/bin/python3 scripts/sft_eval.py --bin $bin -m "$out/base-$base.gguf" --lora "$run/adapter.gguf" \
      --data "$out/wordnet/test.jsonl" -n 400 --json "$out/eval-$base-s$seed.json"
  done
done
