#!/usr/bin/env bash
# Each architecture family against llama.cpp: a small random model of the family (`llmforge init --preset PRESET`, then
# every bias and norm weight set to random values so that they matter), written as GGUF by llmforge and read by
# llama.cpp's llama-perplexity; llmforge perplexity (ggml arithmetic) must print the same values to the digit.
#
#   LLAMA_PERPLEXITY=/path/to/llama.cpp/build/bin/llama-perplexity tests/anchor/llamacpp_families.sh [PRESET...]
#
# Default presets: llama-tiny, llama3-tiny (Llama 3's RoPE scaling: llama.cpp reads its rope_freqs tensor), qwen2-tiny,
# mistral-tiny (written as a "llama" GGUF, as llama.cpp's converter writes Mistral; that snapshot has no sliding window
# for it, so the context here, 128, is the preset's window: within it both attend to every earlier position),
# gemma2-tiny (a context of 256, twice its window: llama.cpp masks Gemma 2's windowed layers), and qwen2-tiny+yarn
# (Qwen 2.5's YaRN rope_scaling added to its config.json: factor 4 over 32 original positions, attention_factor 1.2;
# llama.cpp reads rope.scaling.type, factor, original_context_length and attn_factor from the GGUF).
#
# llama.cpp is an anchor built outside the project from the public snapshot ggerganov/llama.cpp (c392e50, the goldens'
# commit); nothing of it enters the project. Not part of the default test suite (CI has no llama.cpp build).
set -euo pipefail
cd "$(dirname "$0")/../.."
LLAMA=${LLAMA_PERPLEXITY:?set LLAMA_PERPLEXITY to the llama-perplexity binary of llama.cpp}
BIN=${LLMFORGE_BIN:-build/llmforge}
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(llama-tiny llama3-tiny qwen2-tiny mistral-tiny gemma2-tiny qwen2-tiny+yarn)
ctx_of() { case $1 in gemma2-tiny) echo 256 ;; *) echo 128 ;; esac; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c 30000 /usr/share/common-licenses/GPL-3 > "$work/text.txt"
status=0
for fam in "${presets[@]}"; do
  "$BIN" init --preset "${fam%+yarn}" --dtype f32 --seed 5 -o "$work/$fam-init.gguf" 2>/dev/null
  "$BIN" convert "$work/$fam-init.gguf" "$work/$fam-hf" 2>/dev/null
  if [ "$fam" != "${fam%+yarn}" ]; then
    /usr/bin/python3 - "$work/$fam-hf/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["rope_scaling"] = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32, "attention_factor": 1.2}
json.dump(c, open(sys.argv[1], "w"))
PY
  fi
  # random norms and biases (init leaves them at 1 and 0)
  /usr/bin/python3 - "$work/$fam-hf/model.safetensors" <<'PY'
import json, struct, sys
import numpy as np
path = sys.argv[1]
with open(path, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = bytearray(f.read())
rng = np.random.default_rng(11)
for name, e in header.items():
    if name == "__metadata__" or e["dtype"] != "F32" or len(e["shape"]) != 1:
        continue
    b, end = e["data_offsets"]
    k = (end - b) // 4
    v = (1.0 + 0.2 * rng.standard_normal(k)) if "norm" in name or "ln_" in name else 0.2 * rng.standard_normal(k)
    data[b:end] = v.astype(np.float32).tobytes()
with open(path, "r+b") as f:
    f.seek(8 + n)
    f.write(data)
PY
  "$BIN" convert "$work/$fam-hf" "$work/$fam.gguf" 2>/dev/null
  ctx=$(ctx_of "$fam")
  "$LLAMA" -m "$work/$fam.gguf" -f "$work/text.txt" -c "$ctx" --chunks 8 -t 2 > "$work/llama.out" 2> "$work/llama.err" || {
    echo "$fam: llama-perplexity failed: $(grep -m1 -i error "$work/llama.err")"; status=1; continue; }
  "$BIN" perplexity -m "$work/$fam.gguf" -f "$work/text.txt" -c "$ctx" --chunks 8 -t 2 > "$work/ours.out" 2> /dev/null
  values() { cat "$@" | grep -o -E '\[[0-9]+\][0-9.]+,|Final estimate: .*' | tr -d '\n'; }
  L=$(values "$work/llama.out" "$work/llama.err")
  O=$(values "$work/ours.out")
  if [ -n "$L" ] && [ "$L" = "$O" ]; then
    echo "$fam: same printed values as llama-perplexity: $(grep -o 'Final estimate.*' "$work/ours.out")"
  else
    echo "$fam: DIFFERENT: llama.cpp ${L:0:160} | llmforge ${O:0:160}"; status=1
  fi
done
exit $status
