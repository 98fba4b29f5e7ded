#!/usr/bin/env bash
# The article's first two training stages on real data, end to end (about 45 minutes on 2 cores):
#   1. pre-training: a 13.9M-parameter GPT-2-style model on ~57 MB of English from Debian packages (GCIDE, the kernel
#      documentation, package documentation, fortunes), bf16 matrix products;
#   2. supervised fine-tuning on WordNet definitions as conversations ("What does WORD mean?" → "WORD: DEFINITION.");
#   3. held-out questions asked before and after tuning: exact match, BLEU, format, ended-its-turn rate.
# Everything lands in $OUT (default runs/sft-demo); rerunning skips finished stages. Needs scripts/setup.sh --corpus.
# PRETRAIN_STEPS (default 2400) and SFT_EPOCHS (default 1) scale it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/sft-demo}
bin=build/llmforge
mkdir -p "$out"
source scripts/english_data.sh
english_data "$out" "$bin"
if [ ! -s "$out/pretrain/model.gguf" ]; then
  resume=(); [ -d "$out/pretrain/checkpoint" ] && resume=(--resume)
  $bin pretrain --preset gpt2-tiny --layers 6 --d-model 384 --heads 6 --d-ff 1536 --data "$out/data" -o "$out/pretrain" \
    --steps "${PRETRAIN_STEPS:-2400}" --batch-size 8 --seq-len 256 --lr 1e-3 --min-lr 1e-4 --warmup 60 --precision bf16 \
    --eval-every 200 --eval-batches 32 --save-every 200 --seed 1 -t 2 "${resume[@]}"
fi
[ -s "$out/wordnet/train.jsonl" ] || python3 scripts/wordnet_chats.py "$out/wordnet" > "$out/wordnet-report.json"
if [ ! -s "$out/sft/model.gguf" ]; then
  resume=(); [ -d "$out/sft/checkpoint" ] && resume=(--resume)
  $bin sft -m "$out/pretrain/model.gguf" --data "$out/wordnet/train.jsonl" -o "$out/sft" --epochs "${SFT_EPOCHS:-1}" \
    --batch-size 16 --seq-len 256 --lr 5e-4 --min-lr 5e-5 --warmup 50 --precision bf16 --eval-every 200 --eval-batches 200 \
    --save-every 200 --seed 1 -t 2 "${resume[@]}"
fi
/usr/bin/python3 scripts/sft_eval.py --bin $bin -m "$out/pretrain/model.gguf" --data "$out/wordnet/test.jsonl" -n 200 --json "$out/eval-before.json"
/usr/bin/python3 scripts/sft_eval.py --bin $bin -m "$out/sft/model.gguf" --data "$out/wordnet/test.jsonl" -n 200 --json "$out/eval-after.json"
