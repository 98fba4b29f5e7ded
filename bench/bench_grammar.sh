#!/usr/bin/env bash
# What a grammar costs per generated token: llmforge generate and llama.cpp's llama-cli, each with and without the same
# GBNF grammar, on the same TinyLlama-1.1B-shaped random GGUF (Q4_0: fast decoding, so the grammar's share shows;
# a 32,000-token SentencePiece vocabulary), temperature 1, 64 tokens, 2 threads, in one run.
#
#   LLAMA_CPP_SRC=/path/to/llama.cpp bench/bench_grammar.sh [ROUNDS]
#
# Two grammars: "json", any JSON object (most tokens allowed inside strings: llama.cpp's sampler checks the token it
# drew first and keeps it when the grammar allows it), and "digits", a list of numbers (most tokens refused: the drawn
# token rarely passes, so llama.cpp filters every candidate). llmforge computes the whole token mask every step from
# its per-position cache. Rates: llmforge's generated tokens per second as `generate --json` reports them (sampling
# included); llama.cpp's eval runs / (eval time + sampling time) from llama_perf. The ratio that matters is each
# tool's own constrained / unconstrained rate. llama.cpp is built outside the project (see anchor_llamacpp.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
N=${N:-64}
BENCH_DIR=${BENCH_DIR:-/tmp/llmforge-bench}
source bench/anchor_llamacpp.sh
build_anchor_and_llmforge llama-cli
model="$BENCH_DIR/tinyllama-1.1b-Q4_0.gguf"
if [ ! -f "$model" ]; then
  mkdir -p "$BENCH_DIR"
  [ -f "$BENCH_DIR/tinyllama-1.1b-f16.gguf" ] || build/llmforge init --preset tinyllama-1.1b --dtype f16 --seed 1 -o "$BENCH_DIR/tinyllama-1.1b-f16.gguf" >&2
  build/llmforge quantize "$BENCH_DIR/tinyllama-1.1b-f16.gguf" "$model" Q4_0 >&2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# at least 40 members / 60 numbers: neither grammar can be complete within the 64 tokens, so every run makes 64
cat > "$work/json.gbnf" <<'EOF'
root ::= "{" ws member ( "," ws member ){40,} "}"
value ::= object | array | string | number | "true" | "false" | "null"
object ::= "{" ws ( member ( "," ws member )* )? "}"
member ::= string ws ":" ws value ws
array ::= "[" ws ( value ws ( "," ws value ws )* )? "]"
string ::= "\"" ( [^"\\\x00-\x1f] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ) )* "\""
number ::= "-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?
ws ::= ( " " | "\n" ) [ \t]{0,20} |
EOF
cat > "$work/digits.gbnf" <<'EOF'
root ::= "[" num ( "," " "? num ){60,} "]"
num ::= "-"? [0-9]{1,4}
EOF

ours() {  # grammar file or "" → tokens per second
  local g=()
  [ -n "$1" ] && g=(--grammar-file "$1")
  build/llmforge generate -m "$model" -p "Numbers:" -n "$N" --temp 1 --seed 1 -t 2 "${g[@]}" --json 2>/dev/null |
    python3 -c 'import json,sys; j=json.load(sys.stdin); print("%.2f %d" % (j["timings"]["gen_tokens_per_s"], len(j["tokens"])))'
}
theirs() {
  local g=()
  [ -n "$1" ] && g=(--grammar-file "$1")
  "$LLAMA_CPP_SRC/build/bin/llama-cli" -m "$model" -no-cnv -p "Numbers:" -n "$N" --temp 1 --seed 1 -t 2 "${g[@]}" </dev/null 2>&1 >/dev/null |
    llama_cli_rate
}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus; $(date -u +%Y-%m-%d)"
echo "llama.cpp: $(git -C "$LLAMA_CPP_SRC" rev-parse --short HEAD 2>/dev/null || echo "${LLAMA_CPP_COMMIT:-unknown}"); llmforge: $(git rev-parse --short HEAD)"
echo "model: $(basename "$model"), $N tokens, temperature 1, 2 threads; tokens/s (tokens made), $ROUNDS rounds"
declare -A rate
for r in $(seq "$ROUNDS"); do
  for g in none json digits; do
    f=""
    [ "$g" != none ] && f="$work/$g.gbnf"
    read -r a na < <(theirs "$f")
    read -r b nb < <(ours "$f")
    rate[llama,$g]+="$a "
    rate[ours,$g]+="$b "
    printf 'round %d %-7s llama.cpp %7.2f t/s (%d tokens)   llmforge %7.2f t/s (%d tokens)\n' "$r" "$g" "$a" "$na" "$b" "$nb"
  done
done
printf '\n%-8s %-28s %-28s\n' grammar "llama.cpp t/s (vs none)" "llmforge t/s (vs none)"
ln=$(echo "${rate[llama,none]}" | median)
on=$(echo "${rate[ours,none]}" | median)
for g in none json digits; do
  l=$(echo "${rate[llama,$g]}" | median)
  o=$(echo "${rate[ours,$g]}" | median)
  printf '%-8s %-28s %-28s\n' "$g" "$(awk -v a="$l" -v b="$ln" 'BEGIN {printf "%.2f (%.3fx)", a, a / b}')" \
    "$(awk -v a="$o" -v b="$on" 'BEGIN {printf "%.2f (%.3fx)", a, a / b}')"
done
