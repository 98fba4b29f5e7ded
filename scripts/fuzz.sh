#!/usr/bin/env bash
# Fuzzing (docs/security.md, fuzz/README.md): builds the libFuzzer targets (fuzz/) with clang under ASan + UBSan in
# build-fuzz/, makes their seed corpora (fuzz/make_seeds.cpp, plus the golden chat templates and stories260K when
# $LLMFORGE_GOLDEN has them), replays the seeds and every kept regression input (fuzz/regressions/TARGET/), then fuzzes
# each target for SECONDS, as many at once as there are cores.
#   scripts/fuzz.sh [SECONDS] [TARGET...]   SECONDS per target (default 60; 0: replay only); TARGETs: all by default
# A finding (crash-*, leak-*, timeout-*, oom-*) is written to build-fuzz/findings/TARGET/ and makes the exit non-zero.
# The corpus each run grows is kept in build-fuzz/corpus/TARGET/ (a later run goes on from it); the totals of the run
# are printed and written to build-fuzz/fuzz-summary.tsv. FUZZ_SEED=N fixes libFuzzer's random seed (CI's short runs:
# scripts/test.sh --all sets 1: a local run with the same seed makes the same mutations in the same order).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
secs="${1:-60}"
if [ $# -gt 0 ]; then shift; fi
build=build-fuzz
if ! command -v clang++ >/dev/null; then scripts/setup.sh; fi
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLMFORGE_FUZZ=ON -DLLMFORGE_BUILD_TESTS=OFF -DLLMFORGE_MPI=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzzers
all=$(sed -n 's/^set(LLMFORGE_FUZZERS \(.*\))$/\1/p' fuzz/CMakeLists.txt | head -1)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then read -r -a targets <<< "$all"; fi

# seeds: made by llmforge itself, and the golden files of the test suite where they are
rm -rf "$build/seeds"
"$build/fuzz/fuzz_make_seeds" "$build/seeds" "$root"
golden="${LLMFORGE_GOLDEN:-$root/../shared/golden}"
if [ -d "$golden/chat-templates" ]; then
  for f in "$golden"/chat-templates/*.jinja; do cp "$f" "$build/seeds/jinja/golden-$(basename "$f")"; done
fi
if [ -f "$golden/stories260K/stories260K.gguf" ]; then
  cp "$golden/stories260K/stories260K.gguf" "$build/seeds/gguf/stories260K.gguf"
  { cat "$golden/stories260K/stories260K.bin"; printf '\n#####\n'; cat "$golden/stories260K/tok512.bin"; } > "$build/seeds/llama2c/stories260K"
fi

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
summary="$build/fuzz-summary.tsv"
printf 'target\tseconds\texecutions\tcoverage\tfeatures\tcorpus\tfindings\n' > "$summary"
status=0

run_one() {  # TARGET: replay, then fuzz; the log in build-fuzz/logs/TARGET.log
  local t=$1 bin="$build/fuzz/fuzz_$1" log="$build/logs/$1.log"
  mkdir -p "$build/corpus/$t" "$build/findings/$t" "$build/logs"
  local replay=()
  for d in "$build/seeds/$t" "fuzz/regressions/$t"; do
    [ -d "$d" ] && while IFS= read -r -d '' f; do replay+=("$f"); done < <(find "$d" -type f -print0)
  done
  : > "$log"
  if [ ${#replay[@]} -gt 0 ] && ! "$bin" -rss_limit_mb=2048 -timeout=30 "${replay[@]}" >> "$log" 2>&1; then
    echo "fuzz $t: a seed or regression input fails (see $log)" >&2
    return 1
  fi
  if [ "$secs" -gt 0 ]; then
    local max_len=$(( $(find "$build/seeds/$t" -type f -printf '%s\n' | sort -n | tail -1) + 4096 ))
    "$bin" "$build/corpus/$t" "$build/seeds/$t" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 -max_len="$max_len" \
      -artifact_prefix="$build/findings/$t/" -print_final_stats=1 -print_pcs=0 ${FUZZ_SEED:+-seed="$FUZZ_SEED"} >> "$log" 2>&1 || return 1
  fi
}

pids=(); names=()
finish() {  # waits for the oldest running target
  local pid=${pids[0]} t=${names[0]}
  pids=("${pids[@]:1}"); names=("${names[@]:1}")
  if ! wait "$pid"; then status=1; echo "fuzz $t: FAILED (log: $build/logs/$t.log)" >&2; tail -n 30 "$build/logs/$t.log" >&2 || true; fi
  local log="$build/logs/$t.log"
  local execs cov ft corpus findings
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$( (grep -o 'cov: [0-9]*' "$log" || true) | tail -1 | cut -d' ' -f2)
  ft=$( (grep -o 'ft: [0-9]*' "$log" || true) | tail -1 | cut -d' ' -f2)
  corpus=$(find "$build/corpus/$t" -type f | wc -l)
  findings=$(find "$build/findings/$t" -type f | wc -l)
  if [ "$findings" -gt 0 ]; then status=1; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$secs" "${execs:-0}" "${cov:-0}" "${ft:-0}" "$corpus" "$findings" >> "$summary"
  echo "fuzz $t: ${execs:-0} executions, coverage ${cov:-?} edges, ${ft:-?} features, corpus $corpus, findings $findings" >&2
}
for t in "${targets[@]}"; do
  [ -x "$build/fuzz/fuzz_$t" ] || { echo "fuzz: no target '$t' (targets: $all)" >&2; exit 2; }
  run_one "$t" & pids+=($!); names+=("$t")
  if [ ${#pids[@]} -ge "$(nproc)" ]; then finish; fi
done
while [ ${#pids[@]} -gt 0 ]; do finish; done
awk -F'\t' '{ printf "%-15s %8s %12s %9s %9s %7s %9s\n", $1, $2, $3, $4, $5, $6, $7 }' "$summary"
exit $status
