#!/usr/bin/env bash
# The library as a user gets it: `cmake --install` into a temporary prefix, the example of docs/library.md
# (examples/complete.cpp) built against it with find_package(llmforge), run on a small random model; its streamed text
# must be what `llmforge generate` prints for the same greedy completion, and it must not link MPI.
#   check_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=${1:?usage: check_install.sh BUILD_DIR SOURCE_DIR}
src=${2:?usage: check_install.sh BUILD_DIR SOURCE_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/include/llmforge/llmforge.h"
test -f "$work/prefix/lib/cmake/llmforge/llmforgeConfigVersion.cmake"
cmake -S "$src/examples" -B "$work/ex" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release > "$work/configure.log"
cmake --build "$work/ex" > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
if ldd "$work/ex/complete" | grep -i mpi; then echo "FAIL: the inference-only example links MPI"; exit 1; fi
"$build/llmforge" init --preset llama-tiny --seed 3 -o "$work/m.gguf" 2> /dev/null
out=$("$work/ex/complete" "$work/m.gguf" "Once upon a time" 16)
want=$("$build/llmforge" generate -m "$work/m.gguf" -p "Once upon a time" -n 16 --temp 0 2> /dev/null)
text=${out%$'\n'\[*}
if [ "$text" != "$want" ]; then
  printf 'FAIL: the example printed\n%s\nbut llmforge generate printed\n%s\n' "$text" "$want"; exit 1
fi
grep -q "16 generated, stop: length" <<< "$out" || { echo "FAIL: no summary line: $out"; exit 1; }
"$work/ex/complete" "$work/missing.gguf" "x" 2> "$work/err" && { echo "FAIL: a missing model did not fail"; exit 1; }
grep -q "does not exist" "$work/err" || { echo "FAIL: $(cat "$work/err")"; exit 1; }
echo "installed library: example built with find_package(llmforge), no MPI linked, output = llmforge generate's"
