#!/usr/bin/env bash
# The main job, from a fresh machine: install dependencies, build, make a small model with llmforge itself and
# generate from it. (Until llmforge ships a trained default model, the weights are random: the text is noise, but every
# stage — model file writing, loading, tokenising, the batched prompt pass, KV-cache decoding, sampling — runs for real.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
mkdir -p models
[ -f models/demo.gguf ] || build/llmforge init --preset llama-small --dtype f16 --seed 1 -o models/demo.gguf
build/llmforge info models/demo.gguf | head -20
build/llmforge generate -m models/demo.gguf -p "Once upon a time" -n 48 --temp 0.8 --seed 1
