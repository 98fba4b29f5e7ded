#!/usr/bin/env bash
# Distillation, measured (docs/distillation.md): a ~9M-parameter student distilled from a 63M-parameter teacher that
# llmforge pre-trained, against the same student trained on the data alone — the same shape, data, steps, tokens,
# learning-rate schedule and seeds, two seeds each. Then, on held-out text: perplexity, KL(teacher ‖ student) per token,
# and WordNet multiple-choice accuracy (scripts/wordnet_mc.py, 95 % intervals); curves.svg plots validation loss.
# KINDS adds runs of other kinds: "cached" (the teacher's top-32 from `llmforge distill-cache` over the STEPS × 8
# windows the run trains on, spread over the data, built once) and "gkd" (on-policy: --on-policy 0.5, the student
# continues half the batches itself from their first 128 tokens).
#   TEACHER  the teacher (default runs/quant-table/pretrain/model.gguf, made by scripts/quant_table.sh)
#   DATA     its prepared shards (default runs/quant-table/data); HELDOUT: held-out text (runs/quant-table/corpus/heldout_en.txt)
#   OUT (runs/distill), STEPS (500), LOSS (forward-kl), TEMP (1), ALPHA (0.5), SEEDS ("1 2"), KINDS ("plain distill")
# Rerunning skips finished runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/llmforge
teacher=${TEACHER:-runs/quant-table/pretrain/model.gguf}
data=${DATA:-runs/quant-table/data}
heldout=${HELDOUT:-runs/quant-table/corpus/heldout_en.txt}
out=${OUT:-runs/distill}
steps=${STEPS:-500}
seeds=${SEEDS:-1 2}
kinds=${KINDS:-plain distill}
mkdir -p "$out"
shape=(--preset llama-tiny --layers 6 --d-model 256 --heads 4 --kv-heads 4 --d-ff 768)
common=(--data "$data" --steps "$steps" -b 8 --seq-len 256 --lr 1e-3 --min-lr 1e-4 --warmup 30 --eval-every 50 --eval-batches 16
        --save-every 100 -t 2)
for seed in $seeds; do
  for kind in $kinds; do
    run=$out/$kind-s$seed
    [ -s "$run/model.gguf" ] && continue
    resume=(); [ -d "$run/checkpoint" ] && resume=(--resume)
    extra=()
    if [ $kind = cached ]; then
      cache=$out/teacher-top32.cache
      [ -s "$cache" ] || $bin distill-cache --teacher "$teacher" --data "$data" --seq-len 256 --top-k 32 --temp "${TEMP:-1}" \
        --max-windows $((steps * 8)) -t 2 -o "$cache"
      extra=(--teacher-cache "$cache")
    fi
    [ $kind = gkd ] && extra=(--on-policy 0.5 --gen-tokens 128)
    if [ $kind = plain ]; then
      $bin pretrain "${shape[@]}" "${common[@]}" -s "$seed" -o "$run" "${resume[@]}"
    else
      $bin distill --teacher "$teacher" "${shape[@]}" "${common[@]}" -s "$seed" -o "$run" --loss "${LOSS:-forward-kl}" \
        --temp "${TEMP:-1}" --alpha "${ALPHA:-0.5}" "${extra[@]}" "${resume[@]}"
    fi
  done
done
# WordNet multiple choice: the held-out headwords' definitions, four choices each
if [ ! -s "$out/wn_mc.jsonl" ]; then
  python3 scripts/wordnet_chats.py "$out/wordnet" >/dev/null && python3 scripts/wordnet_mc.py "$out/wordnet/test.jsonl" "$out/wn_mc.jsonl"
fi
for m in "$teacher" $(for s in $seeds; do for k in $kinds; do echo "$out/$k-s$s/model.gguf"; done; done); do
  name=$(basename "$(dirname "$m")"); [ "$m" = "$teacher" ] && name=teacher
  [ -s "$out/$name.ppl.json" ] || $bin perplexity -m "$m" -f "$heldout" -c 256 --chunks 64 --kl-base "$teacher" --json -t 2 > "$out/$name.ppl.json"
  [ -s "$out/$name.wn.json" ] || $bin eval -m "$m" --task "$out/wn_mc.jsonl" --json -t 2 > "$out/$name.wn.json"
done
$bin plot $(for s in $seeds; do for k in $kinds; do echo "$out/$k-s$s"; done; done) --y val_loss val_kl --smooth 1 -o "$out/curves.svg" \
  --labels $(for s in $seeds; do for k in $kinds; do echo "$k-s$s"; done; done | paste -sd, -)
python3 - "$out" "$kinds" $seeds <<'EOF'
import json, sys
out, kinds, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
print(f"{'model':<12} {'held-out ppl':>14} {'KL(teacher ‖ ·)':>16} {'same top':>9} {'WordNet MC acc (95 % CI)':>26} {'val loss':>9}")
for name in ["teacher"] + [f"{k}-s{s}" for s in seeds for k in kinds]:
    p = json.load(open(f"{out}/{name}.ppl.json")); w = json.load(open(f"{out}/{name}.wn.json"))["multiple_choice"]
    kl = p["kl_divergence"]
    val = "" if name == "teacher" else f"{[l for l in map(json.loads, open(f'{out}/{name}/metrics.jsonl')) if 'val_loss' in l][-1]['val_loss']:.4f}"
    print(f"{name:<12} {p['ppl']:>8.2f} ± {p['ppl_err']:<4.2f} {kl['mean']:>9.4f} ± {kl['err']:<5.4f} {100 * kl['same_top']:>8.1f}% "
          f"{w['acc']:>8.4f} ({w['acc_ci95'][0]:.3f}–{w['acc_ci95'][1]:.3f}) {val:>9}")
EOF
