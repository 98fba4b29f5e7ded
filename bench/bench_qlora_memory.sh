#!/usr/bin/env bash
# Memory of QLoRA: LoRA fine-tuning (`sft --lora-rank 8 --lora-targets all`) on a Q4_K_M base, which stays quantised and
# memory-mapped (its matrices widened to f32 a tile at a time as they are multiplied), against the same LoRA on the f16
# base (read as f16 the same way), same model, data, batch and steps. The model: TinyLlama 1.1B's shape with random
# weights (`llmforge init --preset tinyllama-1.1b --dtype f16`), quantised by `llmforge quantize` (byte-identical to
# llama-quantize); the data: 400 generated one-turn conversations in TinyLlama's chat format. Prints the peak resident
# memory of each (/usr/bin/time), the ratio, and the wall time of the run, for each batch size, without and with
# activation checkpointing (--recompute).
# Usage: bench/bench_qlora_memory.sh [STEPS]   (BENCH_DIR: where the model files go, default /tmp/llmforge-bench;
# BATCHES: batch sizes, default "1 4 8")
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-2}
bin=build/llmforge
[ -x "$bin" ] || { echo "build llmforge first" >&2; exit 2; }
dir=${BENCH_DIR:-/tmp/llmforge-bench}
work=bench/work/qlora
mkdir -p "$dir" "$work"
f16="$dir/tinyllama-1.1b-f16.gguf"
q4="$dir/tinyllama-1.1b-Q4_K_M.gguf"
[ -f "$f16" ] || $bin init --preset tinyllama-1.1b --dtype f16 --seed 1 -o "$f16" >&2
[ -f "$q4" ] || $bin quantize "$f16" "$q4" Q4_K_M >&2
python3 bench/one_turn_chats.py "$work/chats.jsonl"
cat > "$work/zephyr.jinja" <<'EOF'
{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}
EOF
run() {  # model, batch, seq, extra → "peak_MiB seconds"
  rm -rf "$work/out"
  /usr/bin/time -f "%M %e" -o "$work/time.txt" $bin sft -m "$1" --template "$work/zephyr.jinja" --data "$work/chats.jsonl" -o "$work/out" \
    --steps "$steps" --batch-size "$2" --seq-len "$3" --eval-every 0 --save-every 0 -q -t 2 --lora-rank 8 --lora-targets all "${@:4}" >/dev/null 2>&1
  read -r kb s < "$work/time.txt"
  echo "$((kb / 1024)) $s"
}
echo "model: TinyLlama 1.1B shape; LoRA rank 8 on every matrix; $steps steps; 2 threads; conversations of ~45 tokens"
printf '%-22s %18s %18s %8s\n' "batch (sequences)" "f16 base (MiB, s)" "Q4_K_M (MiB, s)" "ratio"
for b in ${BATCHES:-1 4 8}; do
  for rc in "" --recompute; do
    read -r m16 s16 < <(run "$f16" "$b" 256 $rc)
    read -r mq sq < <(run "$q4" "$b" 256 $rc)
    printf '%-22s %11s %6s %11s %6s %8s\n' "$b ${rc:-}" "$m16" "$s16" "$mq" "$sq" "$(python3 -c "print(f'{$mq/$m16:.3f}x')")"
  done
done
