#!/usr/bin/env bash
# The retrieval index's ANN library on real embeddings (bench/bench_ann.sh measures it on synthetic clusters): WordNet's
# synset glosses (about 117,000 definitions: wordnet-base) embedded by a 384-wide encoder — the minilm-l6 shape with
# BERT's WordPiece vocabulary, taught by `embed train --ict` on the Python documentation's chunks — through
# `llmforge rag index --embed-model` (the product's own path); 1,000 glosses drawn at random are held out as the
# queries, the rest are the base; then bench/ann_choice.cpp compares hnswlib, FAISS and exact search on them.
#   bench/bench_ann_real.sh [WORKDIR] [THREADS]     (default /tmp/llmforge-ann-real, 2; the model and index are reused)
#   ANN_REAL_LIMIT=N: only the first N glosses (a quick check); ANN_REAL_STEPS=S: ICT training steps (default 150);
#   ANN_REAL_PREPARE=1: stop before the measurement (the vectors made while the machine is busy; measure it idle)
# Needs build/llmforge, scripts/setup.sh --corpus --bench, and the golden bert-bge vocabulary ($LLMFORGE_GOLDEN).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/build/llmforge
work=${1:-/tmp/llmforge-ann-real}
threads=${2:-2}
golden=${LLMFORGE_GOLDEN:-$PWD/../shared/golden}
vocab=$golden/vocab/ggml-vocab-bert-bge.gguf
for f in "$bin" "$vocab" /usr/share/wordnet/data.noun /usr/include/faiss/IndexHNSW.h; do
  [ -e "$f" ] || { echo "bench_ann_real: $f is missing (build first; scripts/setup.sh --corpus --bench)" >&2; exit 2; }
done
mkdir -p "$work"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cpus; $(date -u +%Y-%m-%d)"

# 1. the glosses, one JSON line each (the text after the '|' of every synset line of data.noun/verb/adj/adv)
/usr/bin/python3 - "$work/glosses.jsonl" "${ANN_REAL_LIMIT:-0}" <<'PY'
import json, sys
out, limit, n = open(sys.argv[1], "w"), int(sys.argv[2]), 0
for pos in ("noun", "verb", "adj", "adv"):
    for line in open(f"/usr/share/wordnet/data.{pos}", encoding="utf-8", errors="replace"):
        if line.startswith("  ") or "|" not in line:
            continue  # the licence header
        gloss = line.split("|", 1)[1].strip()
        if gloss and (limit == 0 or n < limit):
            out.write(json.dumps({"text": gloss}) + "\n")
            n += 1
print(f"{n} glosses", file=sys.stderr)
PY

# 2. the encoder: minilm-l6's shape, trained a little by the inverse cloze task on the Python documentation
if [ ! -f "$work/encoder.gguf" ]; then
  t0=$SECONDS
  "$bin" init --preset minilm-l6 --tokenizer "$vocab" -c 128 -o "$work/encoder0.gguf"
  pydoc=$(ls -d /usr/share/doc/python3.*/html | head -1)
  [ -d "$work/pykb" ] || "$bin" rag index "$pydoc" -o "$work/pykb" -q
  "$bin" embed train -m "$work/encoder0.gguf" --kb "$work/pykb" --ict 1 -b 16 --max-tokens 64 --max-query-tokens 32 \
    --steps "${ANN_REAL_STEPS:-150}" --lr 5e-4 -t "$threads" -o "$work/encoder.gguf" -q
  echo "encoder: $((SECONDS - t0)) s"
fi

# 3. every gloss embedded into an index (the product's path)
t0=$SECONDS
"$bin" rag index "$work/glosses.jsonl" -o "$work/kb" --embed-model "$work/encoder.gguf" -t "$threads" -q
echo "rag index (embedding every gloss, HNSW graph): $((SECONDS - t0)) s"

# 4. the vectors out of the index: 1,000 random ones held out as queries, the rest the base
/usr/bin/python3 - "$work" <<'PY'
import random, sqlite3, sys
import numpy as np
work = sys.argv[1]
rows = sqlite3.connect(f"{work}/kb/index.sqlite").execute("SELECT vec FROM embeddings ORDER BY chunk_id").fetchall()
v = np.stack([np.frombuffer(r[0], dtype=np.float32) for r in rows])
norms = np.linalg.norm(v, axis=1)
assert v.shape[1] == 384 and abs(norms - 1).max() < 1e-3, (v.shape, norms.min(), norms.max())
idx = list(range(len(v)))
random.Random(7).shuffle(idx)
q, base = idx[:1000], sorted(idx[1000:])
v[base].tofile(f"{work}/base.f32")
v[q].tofile(f"{work}/queries.f32")
print(f"{len(base)} base vectors, {len(q)} queries, dimension {v.shape[1]}", file=sys.stderr)
PY

# 5. the libraries on them (a benchmark: nothing else should run)
if [ -n "${ANN_REAL_PREPARE:-}" ]; then echo "vectors in $work (base.f32, queries.f32); measurement skipped"; exit 0; fi
ANN_VECTORS="$work/base.f32" ANN_QUERIES="$work/queries.f32" bench/bench_ann.sh 0 384 "$threads"
