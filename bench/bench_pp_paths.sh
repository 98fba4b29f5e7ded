#!/usr/bin/env bash
# f16 prompt processing (128 tokens): llmforge's register-tiled row kernel (LLMFORGE_SEQ_MAX_ROWS=128, the default)
# against its packed GEMM (=64), from the mapped file and with --no-mmap, then llama-bench both ways; ROUNDS rounds
# in turn, so that this VM's drift hits every contender alike. Run alone on the machine.
#   LLAMA_CPP_SRC=/path/to/llama.cpp [MODEL=tinyllama-1.1b-f16.gguf] [ROUNDS=3] bench/bench_pp_paths.sh
set -euo pipefail
cd "$(dirname "$0")/.."
M=${MODEL:-/tmp/llmforge-bench/tinyllama-1.1b-f16.gguf}
[ -s "$M" ] || build/llmforge init --preset tinyllama-1.1b --dtype f16 --seed 1 -o "$M"
LB="${LLAMA_CPP_SRC:?set LLAMA_CPP_SRC to a llama.cpp checkout built in build/}/build/bin/llama-bench"
ts() { python3 -c "import sys,json; d=json.load(sys.stdin); print(round((d['results'][0]['tokens_per_s'] if isinstance(d, dict) else d[0]['avg_ts']), 2))"; }
for r in $(seq "${ROUNDS:-3}"); do
  for thr in 128 64; do
    for mm in "" "--no-mmap"; do
      echo "round $r threshold $thr ${mm:-mmap}: $(LLMFORGE_SEQ_MAX_ROWS=$thr build/llmforge bench -m "$M" -t 2 -p 128 -n 0 -r 3 $mm --json 2>/dev/null | ts) t/s"
    done
  done
  echo "round $r llama.cpp mmap: $("$LB" -m "$M" -t 2 -p 128 -n 0 -r 3 -o json 2>/dev/null | ts)  no-mmap: $("$LB" -m "$M" -t 2 -p 128 -n 0 -r 3 -mmp 0 -o json 2>/dev/null | ts)"
done
