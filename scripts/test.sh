#!/usr/bin/env bash
# The test suite: installs dependencies, builds, runs every test (GoogleTest + PyTorch/npm reference checks) via CTest.
#   scripts/test.sh              Release build in build/ (about 17 minutes on 2 cores)
#   scripts/test.sh --sanitize   the same under AddressSanitizer + UndefinedBehaviorSanitizer (clang), in build-asan/
#   scripts/test.sh --tsan       the same under ThreadSanitizer, in build-tsan/
#   scripts/test.sh --all        what CI runs: the Release suite, then the ASan + UBSan suite, then every fuzzer
#                                (scripts/fuzz.sh) replaying its seeds and regression inputs and fuzzing FUZZ_SECONDS
#                                (default 30) each, libFuzzer's seed fixed (FUZZ_SEED, default 1); each stage's time
#                                is printed. The README's test command: CI runs it (.ci/run)
# Golden data is read from $LLMFORGE_GOLDEN (default: ../shared/golden beside the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."

suite() {  # MODE (release | sanitize | tsan): build and run the CTest suite
  local build=build flags=(-DCMAKE_BUILD_TYPE=Release)
  case "$1" in
    sanitize)  # clang, as the fuzzers: it compiles a sanitized build in a third of GCC's time
      build=build-asan
      export CC=clang CXX=clang++
      flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLMFORGE_SANITIZE=ON)
      export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ;;
    tsan)
      build=build-tsan
      flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLMFORGE_TSAN=ON)
      export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ;;
  esac
  cmake -S . -B "$build" "${flags[@]}"
  cmake --build "$build" -j"$(nproc)"
  ctest --test-dir "$build" --output-on-failure -j"$(nproc)"
  unset ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS CC CXX
}

stage() {  # NAME COMMAND...: runs it and prints its time
  local name=$1 t0=$SECONDS
  shift
  "$@"
  local s=$((SECONDS - t0))
  timings+=("$(printf '%-28s %3dm%02ds' "$name" $((s / 60)) $((s % 60)))")
}

timings=()
scripts/setup.sh
case "${1:-}" in
  --sanitize) suite sanitize ;;
  --tsan) suite tsan ;;
  --all)
    stage "Release suite" suite release
    stage "ASan + UBSan suite" suite sanitize
    stage "fuzzers (${FUZZ_SECONDS:-30} s each)" env FUZZ_SEED="${FUZZ_SEED:-1}" scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
    echo "test.sh --all: every stage passed"
    printf '  %s\n' "${timings[@]}" "$(printf '%-28s %3dm%02ds' total $((SECONDS / 60)) $((SECONDS % 60)))" ;;
  "") suite release ;;
  *) echo "usage: scripts/test.sh [--sanitize | --tsan | --all]" >&2; exit 2 ;;
esac
