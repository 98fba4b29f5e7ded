#!/usr/bin/env bash
# Memory of fine-tuning: full SFT (weights, gradients and AdamW state for every parameter) against LoRA (frozen f32
# weights; gradients and AdamW state for the adapters only), same model, data and batch. The model: GPT-2 124M's shape
# (12 layers, d_model 768) with the 8192-token fortunes tokenizer, written by `pretrain --steps 1`; the data: 400
# generated one-turn conversations. Prints peak resident memory of each and the ratio.
# Usage: bench/bench_lora_memory.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-3}
work=bench/work/lora
mkdir -p "$work"
bin=build/llmforge
[ -x "$bin" ] || { echo "build llmforge first" >&2; exit 2; }
train=bench/work/train
if [ ! -s "$train/data/data.json" ]; then
  mkdir -p "$train"
  scripts/fortunes_text.sh "$train/text.txt"
  $bin tokenizer train --input "$train/text.txt" --vocab-size 8192 -o "$train/tok.json" -q >/dev/null
  $bin prepare --input "$train/text.txt" --tokenizer "$train/tok.json" -o "$train/data" -q >/dev/null
fi
if [ ! -s "$work/base/model.gguf" ]; then
  $bin pretrain --preset gpt2 --data "$train/data" -o "$work/base" --steps 1 --batch-size 1 --seq-len 128 --eval-every 0 --save-every 0 -q >/dev/null 2>&1
fi
python3 bench/one_turn_chats.py "$work/chats.jsonl"
run() {  # name, extra args → peak MiB
  rm -rf "$work/$1"
  /usr/bin/time -f "%M" -o "$work/$1.rss" $bin sft -m "$work/base/model.gguf" --data "$work/chats.jsonl" -o "$work/$1" --steps "$steps" \
    --batch-size 4 --seq-len 128 --eval-every 0 --save-every 0 -q -t 2 "${@:2}" >/dev/null 2>&1
  python3 -c "print(round($(cat "$work/$1.rss")/1024))"
}
full=$(run full)
lora=$(run lora --lora-rank 8 --lora-targets all)
params=$($bin info "$work/base/model.gguf" 2>/dev/null | grep -i -m1 "param" || true)
echo "model: $params"
echo "peak memory, full fine-tuning: $full MiB"
echo "peak memory, LoRA rank 8 on every matrix: $lora MiB"
python3 -c "print(f'LoRA / full: {$lora/$full:.2f}x')"
