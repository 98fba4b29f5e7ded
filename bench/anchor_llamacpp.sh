# Sourced by the benchmarks that run llama.cpp beside llmforge: builds llama.cpp's TARGET (default llama-bench) in
# $LLAMA_CPP_SRC/build — a checkout outside this repository: an anchor, never a dependency — and llmforge if missing.
: "${LLAMA_CPP_SRC:?set LLAMA_CPP_SRC to a llama.cpp checkout}"
build_anchor_and_llmforge() {
  local target=${1:-llama-bench}
  if [ ! -x "$LLAMA_CPP_SRC/build/bin/$target" ]; then
    echo "building llama.cpp's $target in $LLAMA_CPP_SRC/build ..." >&2
    cmake -S "$LLAMA_CPP_SRC" -B "$LLAMA_CPP_SRC/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=ON >&2
    cmake --build "$LLAMA_CPP_SRC/build" -j"$(nproc)" --target "$target" >&2
  fi
  [ -x "${LLMFORGE:-build/llmforge}" ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >&2 && cmake --build build -j"$(nproc)" --target llmforge_cli >&2; }
}

# llama-cli's log on stdin → "tokens/s tokens": eval runs / (eval time + sampling time), from its llama_perf lines.
llama_cli_rate() {
    python3 -c '
import re, sys
t = sys.stdin.read()
s = float(re.search(r"sampling time =\s*([0-9.]+) ms", t).group(1))
m = re.search(r"\beval time =\s*([0-9.]+) ms /\s*([0-9]+) runs", t)
e, runs = float(m.group(1)), int(m.group(2))
print("%.2f %d" % (1000.0 * runs / (e + s), runs + 1))'
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
