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
