#!/usr/bin/env bash
# The quality table of docs/quantization.md: a 63M-parameter LLaMA-style model pre-trained by llmforge on the English
# corpus, quantised to every type and mix, and scored on held-out text by llmforge and by llama.cpp on the same files.
#   1. corpus, tokenizer and shards as in scripts/qlora_demo.sh (Debian's English text, an 8,192-token BPE);
#   2. pre-training (PRETRAIN_STEPS, default 700): 8 layers, d_model 768, 12 heads (4 KV heads), d_ff 2048 — every
#      dimension a multiple of 256, so each type's blocks and K-quant super-blocks tile the rows;
#   3. the model written in f16, an importance matrix of it on training text (`llmforge imatrix`), and `llmforge quantize`
#      to each type and mix, plus Q4_K_M and Q3_K_M with the importance matrix;
#   4. on held-out text (CHUNKS chunks of CTX tokens, llama-perplexity's scoring: the second half of each chunk): the
#      perplexity and the KL divergence to the f16 model per token (`perplexity --kl-base`: mean, 99th percentile,
#      same top token), file size and bits per weight;
#   5. where LLAMA_CPP_BIN names a directory with llama-perplexity (built from the public ggerganov/llama.cpp outside the
#      project), the same with `--kl-divergence-base` / `--kl-divergence`; then scripts/quant_report.py writes
#      $OUT/report.md and $OUT/ppl_vs_bpw.svg.
# Everything lands in $OUT (default runs/quant-table); rerunning skips finished stages. Needs scripts/setup.sh --corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/quant-table}
bin=build/llmforge
chunks=${CHUNKS:-64}
ctx=${CTX:-256}
llama=${LLAMA_CPP_BIN:-}
types="Q8_0 Q6_K Q5_K_M Q5_K_S Q5_1 Q5_0 Q4_K_M Q4_K_S Q4_1 Q4_0 IQ4_NL IQ4_XS Q3_K_L Q3_K_M Q3_K_S Q2_K"
mkdir -p "$out"
source scripts/english_data.sh
english_data "$out" "$bin"
if [ ! -s "$out/pretrain/model.gguf" ]; then
  resume=(); [ -d "$out/pretrain/checkpoint" ] && resume=(--resume)
  $bin pretrain --preset llama-small --layers 8 --d-model 768 --heads 12 --kv-heads 4 --d-ff 2048 --data "$out/data" -o "$out/pretrain" \
    --steps "${PRETRAIN_STEPS:-700}" -b 8 --seq-len 256 --lr 1e-3 --min-lr 1e-4 --warmup 40 --eval-every 100 --eval-batches 32 \
    --save-every 100 --precision bf16 --seed 1 -t 2 "${resume[@]}"
fi
q=$out/models
mkdir -p "$q" "$out/scores"
[ -s "$q/f16.gguf" ] || $bin convert "$out/pretrain/model.gguf" "$q/f16.gguf" --dtype f16
heldout=$out/corpus/heldout_en.txt
# calibration: the first 2 MB of the training text (never the held-out text)
[ -s "$out/imatrix-text.txt" ] || head -c 2000000 "$out/corpus/train_en.txt" > "$out/imatrix-text.txt"
[ -s "$out/imatrix.dat" ] || $bin imatrix -m "$q/f16.gguf" -f "$out/imatrix-text.txt" -o "$out/imatrix.dat" -c "$ctx" --chunks 200
for t in $types; do
  [ -s "$q/$t.gguf" ] || $bin quantize "$q/f16.gguf" "$q/$t.gguf" "$t" --json > "$out/scores/$t.quantize.json"
done
for t in Q4_K_M Q3_K_M; do
  [ -s "$q/$t-imatrix.gguf" ] || $bin quantize "$q/f16.gguf" "$q/$t-imatrix.gguf" "$t" --imatrix "$out/imatrix.dat" --json > "$out/scores/$t-imatrix.quantize.json"
done
names="f16 $types Q4_K_M-imatrix Q3_K_M-imatrix"
for t in $names; do
  s=$out/scores/$t.llmforge.json
  [ -s "$s" ] || { $bin perplexity -m "$q/$t.gguf" -f "$heldout" -c "$ctx" --chunks "$chunks" --kl-base "$q/f16.gguf" --json > "$s.tmp" && mv "$s.tmp" "$s"; }
done
if [ -n "$llama" ]; then
  [ -s "$out/scores/f16.llama.txt" ] ||
    { "$llama/llama-perplexity" -m "$q/f16.gguf" -f "$heldout" -c "$ctx" --chunks "$chunks" -t 2 --kl-divergence-base "$out/f16.kld" \
        > "$out/scores/f16.llama.tmp" 2>&1 && mv "$out/scores/f16.llama.tmp" "$out/scores/f16.llama.txt"; }
  for t in $names; do
    [ "$t" = f16 ] && continue
    s=$out/scores/$t.llama.txt
    [ -s "$s" ] || { "$llama/llama-perplexity" -m "$q/$t.gguf" -c "$ctx" -t 2 --kl-divergence-base "$out/f16.kld" --kl-divergence \
                       > "$s.tmp" 2>&1 && mv "$s.tmp" "$s"; }
  done
fi
python3 scripts/quant_report.py "$out" > "$out/report.md"
echo "wrote $out/report.md and $out/ppl_vs_bpw.svg" >&2
