#!/usr/bin/env bash
# The ANN library for the retrieval index, by measurement: hnswlib against FAISS (HNSW and IVF-Flat) and exact search,
# on the same clustered unit vectors, queries one at a time on T threads (bench/ann_choice.cpp says how).
#   bench/bench_ann.sh [N] [D] [T] [SPREAD_LO SPREAD_HI]   (defaults 100000 384 2 0.35 0.9; ANN_QUICK=1: M 16 only)
# Needs libhnswlib-dev, libfaiss-dev, libopenblas-dev (scripts/setup.sh --bench).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${TMPDIR:-/tmp}/llmforge-ann-choice
g++ -O3 -march=native -fopenmp -std=c++17 -DNDEBUG bench/ann_choice.cpp -o "$out" -lfaiss -lopenblas -llapack -lgomp -lpthread
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cpus; $(date -u +%Y-%m-%d)"
"$out" "${1:-100000}" "${2:-384}" "${3:-2}" "${4:-0.35}" "${5:-0.9}"
