#!/usr/bin/env bash
# Speculative decoding, side by side: single-stream greedy decoding of a target model alone and with a draft, by
# llmforge (`generate`, `generate --draft`) and by llama.cpp (llama-cli alone, llama-speculative-simple or llama-speculative with the draft)
# on the same GGUF files, 2 threads, the same prompts, all N tokens (--ignore-eos in every command).
#
#   LLAMA_CPP_SRC=/path/to/llama.cpp bench/bench_speculative.sh TARGET.gguf DRAFT.gguf [PROMPTS.txt]
#
# PROMPTS: one prompt per line (default: four fixed English openings). N tokens each (128), ROUNDS rounds (3), each
# cell the median over rounds of the mean over prompts; DRAFT_MAX (16) and DRAFT_MIN_P (0.75, llama.cpp's default)
# for both tools. SPEC_TOOL: llama.cpp's speculative program (llama-speculative-simple, or llama-speculative: the
# tree-drafting example, one sequence here). llama.cpp is an anchor, never a dependency: built outside this repository
# (bench/anchor_llamacpp.sh).
# Run it alone on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
target=$1 draft=$2 prompts=${3:-}
N=${N:-128}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
DRAFT_MAX=${DRAFT_MAX:-16}
DRAFT_MIN_P=${DRAFT_MIN_P:-0.75}
source bench/anchor_llamacpp.sh
SPEC_TOOL=${SPEC_TOOL:-llama-speculative-simple}
case $SPEC_TOOL in llama-speculative-simple|llama-speculative) ;; *) echo "SPEC_TOOL must be llama-speculative-simple or llama-speculative" >&2; exit 2;; esac
build_anchor_and_llmforge "$SPEC_TOOL"
build_anchor_and_llmforge llama-cli
bin=${LLMFORGE:-build/llmforge}
L=$LLAMA_CPP_SRC/build/bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$prompts" ]; then
  prompts=$tmp/prompts.txt
  printf '%s\n' "The history of the" "In the beginning of the" "A computer program is" "The river flows through" > "$prompts"
fi
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus; $(date -u +%Y-%m-%d)"
echo "llama.cpp: $(git -C "$LLAMA_CPP_SRC" rev-parse --short HEAD 2>/dev/null || echo "${LLAMA_CPP_COMMIT:-unknown}"); llmforge: $(git rev-parse --short HEAD)"
echo "target $target; draft $draft; $N tokens greedy per prompt, $(wc -l < "$prompts") prompts, $THREADS threads, draft-max $DRAFT_MAX, draft-min-p $DRAFT_MIN_P"
cells=(ours_plain ours_spec llama_plain llama_spec)
for c in "${cells[@]}"; do : > "$tmp/$c"; done
: > "$tmp/ours_acc"; : > "$tmp/llama_acc"
for round in $(seq "$ROUNDS"); do
  sums=(0 0 0 0); n=0
  while IFS= read -r p; do
    [ -n "$p" ] || continue
    n=$((n + 1))
    a=$($bin generate -m "$target" -p "$p" -n "$N" --temp 0 --ignore-eos -t "$THREADS" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["timings"]["gen_tokens_per_s"])')
    j=$($bin generate -m "$target" --draft "$draft" -p "$p" -n "$N" --temp 0 --ignore-eos -t "$THREADS" --draft-max "$DRAFT_MAX" --draft-min-p "$DRAFT_MIN_P" --json 2>/dev/null)
    b=$(echo "$j" | python3 -c 'import json,sys; print(json.load(sys.stdin)["timings"]["gen_tokens_per_s"])')
    echo "$j" | python3 -c 'import json,sys; s=json.load(sys.stdin)["speculative"]; print(s["accepted"], s["drafted"])' >> "$tmp/ours_acc"
    c=$("$L/llama-cli" -m "$target" -p "$p" -n "$N" --temp 0 --ignore-eos -t "$THREADS" -no-cnv --no-warmup 2>&1 < /dev/null | llama_cli_rate | cut -d' ' -f1)
    out=$("$L/$SPEC_TOOL" -m "$target" -md "$draft" -p "$p" -n "$N" --temp 0 --ignore-eos -t "$THREADS" --draft-max "$DRAFT_MAX" \
          --draft-p-min "$DRAFT_MIN_P" 2>&1 < /dev/null)
    d=$(echo "$out" | sed -n 's/.*decoded *[0-9]* tokens in *[0-9.]* seconds, speed: *\([0-9.]*\) t\/s.*/\1/p' | tail -1)
    echo "$out" | awk '/n_drafted *=/ {d=$3} /n_accept *=/ {a=$3} END {print a, d}' >> "$tmp/llama_acc"
    sums=($(python3 -c "print(${sums[0]}+$a, ${sums[1]}+$b, ${sums[2]}+$c, ${sums[3]}+$d)"))
  done < "$prompts"
  for i in 0 1 2 3; do python3 -c "print(${sums[$i]} / $n)" >> "$tmp/${cells[$i]}"; done
done
med() { tr '\n' ' ' < "$1" | median; }
op=$(med "$tmp/ours_plain"); os=$(med "$tmp/ours_spec"); lp=$(med "$tmp/llama_plain"); ls_=$(med "$tmp/llama_spec")
acc() { awk '{a+=$1; d+=$2} END {printf "%.1f %% (%d of %d)", d ? 100*a/d : 0, a, d}' "$1"; }
printf '%-34s %10s\n' "single-stream greedy decode" "tokens/s"
printf '%-34s %10.2f\n' "llmforge, target alone" "$op" "llmforge, with the draft" "$os" "llama.cpp llama-cli, target alone" "$lp" \
  "llama.cpp $SPEC_TOOL" "$ls_"
echo "acceptance: llmforge $(acc "$tmp/ours_acc"); llama.cpp $(acc "$tmp/llama_acc")"
python3 -c "print('ratios: llmforge with/without the draft %.2fx; llmforge vs $SPEC_TOOL %.2fx; llama.cpp with/without %.2fx' % ($os/$op, $os/$ls_, $ls_/$lp))"
