#!/usr/bin/env bash
# llmforge perplexity against llama-perplexity on the same machine: the same numbers (every printed chunk value and
# the final line, compared as text) and the time each takes.
#
#   bench/bench_perplexity.sh LLAMA_PERPLEXITY [MODEL.gguf] [TEXT] [extra flags for both, e.g. "-c 512 --chunks 4"]
#
# LLAMA_PERPLEXITY: llama.cpp's llama-perplexity binary (build it from github.com/ggerganov/llama.cpp outside the
# project; the golden files came from commit c392e50, build 4748). Default model: a random-weight TinyLlama-1.1B
# (f32) made with `llmforge init`; default text: the first 20,000 bytes of Debian's GPL-3 licence text.
# Run it alone on the machine: it measures wall-clock time.
set -euo pipefail
LLAMA=${1:?give the path of llama-perplexity}
BIN=${LLMFORGE_BIN:-build/llmforge}
WORK=${BENCH_DIR:-/tmp/llmforge-bench-ppl}
mkdir -p "$WORK"
MODEL=${2:-$WORK/tinyllama-f32.gguf}
TEXT=${3:-$WORK/gpl3.txt}
EXTRA=${4:--c 512 --chunks 4}
if [ ! -f "$MODEL" ]; then "$BIN" init --preset tinyllama-1.1b --dtype f32 -o "$MODEL" >&2; fi
if [ ! -f "$TEXT" ]; then head -c 20000 /usr/share/common-licenses/GPL-3 > "$TEXT"; fi
THREADS=${THREADS:-$(nproc)}
echo "model $MODEL, text $TEXT, flags: $EXTRA -t $THREADS ($(date -u +%F), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
# shellcheck disable=SC2086
run() {  # prints seconds; output to $WORK/$1.out
    local name=$1; shift
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc
}
# warm the page cache once for both
cat "$MODEL" > /dev/null
# shellcheck disable=SC2086
T_LLAMA=$(run llama "$LLAMA" -m "$MODEL" -f "$TEXT" $EXTRA -t "$THREADS")
# shellcheck disable=SC2086
T_OURS=$(run ours "$BIN" perplexity -m "$MODEL" -f "$TEXT" $EXTRA -t "$THREADS")
values() { cat "$@" | grep -o -E '\[[0-9]+\][0-9.]+,|Final estimate: .*' | tr -d '\n'; }
L=$(values "$WORK/llama.out" "$WORK/llama.err")
O=$(values "$WORK/ours.out")
echo "llama-perplexity:              ${T_LLAMA} s  $(grep -h -o 'Final estimate.*' "$WORK/llama.out" "$WORK/llama.err" | head -1)"
echo "llmforge perplexity:           ${T_OURS} s  $(grep -o 'Final estimate.*' "$WORK/ours.out")"
if [ "$L" = "$O" ]; then echo "same printed values: yes"; else echo "same printed values: NO"; echo "  llama: ${L:0:200}"; echo "  ours:  ${O:0:200}"; fi
echo "speed ratio (llama time / ours): $(echo "scale=2; $T_LLAMA / $T_OURS" | bc)x"
