#!/usr/bin/env bash
# A dense retriever for the man-page set, trained from scratch by llmforge on this machine, and BM25, dense and hybrid
# measured on the set's held-out half (docs/rag.md, "Training an embedding model"). The held-out questions are read
# only by the last command.
#   1. the sets (scripts/rag_eval_sets.py) and a BM25 index of the man pages (their NAME lines not indexed);
#   2. a random bert-tiny with BERT's WordPiece vocabulary (the golden bert-bge one), context 256, mean pooling;
#   3. embed train on pairs from scripts/rag_man_pairs.py: inverse cloze pairs of the index's chunks and the train half's
#      questions (6 epochs), then more cloze pairs with each page's first DESCRIPTION sentence (2 epochs);
#   4. embed train on the train half with BM25-mined positives and hard negatives plus fresh --ict pairs (2 + 3 epochs);
#   5. the index's vectors by that model, then rag eval --mode bm25,dense,hybrid on the held-out half.
# About 55 minutes on 2 cores.
#   scripts/rag_man_embed.sh [WORKDIR]     (default: rag-man; LLMFORGE_GOLDEN: the golden data, for the vocabulary)
set -euo pipefail
source "$(dirname "$0")/rag_env.sh"   # root, bin, vocab
w=${1:-rag-man}
mkdir -p "$w"
cd "$w"
[ -f sets/man/test.jsonl ] || /usr/bin/python3 "$root/scripts/rag_eval_sets.py" sets
"$bin" rag index sets/man/corpus -o mankb -q
"$bin" init --preset bert-tiny --tokenizer "$vocab" -c 256 -o start.gguf 2>/dev/null
/usr/bin/python3 "$root/scripts/rag_man_pairs.py" mankb sets/man/train.jsonl pairs1.jsonl --per-chunk 3 --seed 1
/usr/bin/python3 "$root/scripts/rag_man_pairs.py" mankb sets/man/train.jsonl pairs2.jsonl --per-chunk 6 --seed 7 --lead
common=(-b 64 --max-tokens 128 --max-query-tokens 48)
"$bin" embed train -m start.gguf --pooling mean --pairs pairs1.jsonl --epochs 6 --lr 1e-3 "${common[@]}" -o stage1.gguf
"$bin" embed train -m stage1.gguf --pairs pairs2.jsonl --epochs 2 --lr 5e-4 "${common[@]}" -o stage2.gguf
"$bin" embed train -m stage2.gguf --kb mankb --qa sets/man/train.jsonl --hard-negatives 1 --ict 3 -s 3 --epochs 2 --lr 3e-4 "${common[@]}" \
  -o stage3.gguf
"$bin" embed train -m stage3.gguf --kb mankb --qa sets/man/train.jsonl --hard-negatives 2 --ict 3 -s 4 --epochs 3 --lr 3e-4 "${common[@]}" \
  -o man-embed.gguf
"$bin" rag index sets/man/corpus -o mankb --embed-model man-embed.gguf -q
"$bin" rag eval mankb --qa sets/man/test.jsonl --mode bm25,dense,hybrid
