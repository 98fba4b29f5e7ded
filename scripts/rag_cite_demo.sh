#!/usr/bin/env bash
# Cited answers on the Python FAQ, end to end (docs/rag.md, "Cited answers, measured"): a small chat model that
# llmforge pre-trains and fine-tunes to answer from numbered sources with [n] citations, measured on the held-out half
# of the FAQ set with hybrid retrieval. Every model is made here from scratch; the held-out questions are read only by
# the last command.
#   1. the sets (scripts/rag_eval_sets.py) and the FAQ index; the rest of the Python documentation (its HTML pages
#      without the FAQ pages) as text, through a second index's chunks;
#   2. a byte-level BPE of 8,192 tokens and a LLaMA (llama-small's blocks, 10.7M parameters) pre-trained on that text,
#      2,048-token sequences (room for three FAQ passages and an answer), 800 steps of 4 (6.6M tokens, about
#      2.5 epochs), bf16 products;
#   3. a dense retriever for hybrid mode: a random bert-tiny (BERT's WordPiece vocabulary, the golden bert-bge one),
#      inverse-cloze pairs of the documentation's chunks, then the FAQ's train questions with a BM25 hard negative and
#      cloze pairs of the FAQ index; the FAQ index embedded by it;
#   4. rag sft-data on the train questions (hybrid, 3 sources; four seeds place a gold passage that retrieval missed
#      at different positions), sft of the pre-trained model on them;
#   5. rag eval --mode bm25,hybrid -m on the held-out questions: retrieval figures, citation precision, the share of
#      answers citing a gold source, ROUGE-L; then the citation precision split by whether a gold passage was among
#      the sources the model read (scripts/rag_cite_report.py);
#   6. choosing without the held-out questions: the train questions split in two (by a bit of the hash that split the
#      set), the FAQ stage of step 3 repeated on one part only, and on the other part (scripts/rag_select_fusion.py)
#      the convex fusion's alpha of the best MRR@10 and, for BM25 and for that fusion, the smallest --min-lead at which
#      85 % of the questions still answered have a gold first document; then rag eval on the held-out questions with
#      them: hybrid with convex fusion, and both modes declining the questions whose first document does not stand out.
# The FAQ index's analyzer: $ANALYZER (default english; plain gives docs/rag.md's first table).
# About 100 minutes on 2 cores (the pre-training is most of it; the fine-tuning a third). Stages already done are skipped.
#   scripts/rag_cite_demo.sh [WORKDIR]     (default: rag-cite; LLMFORGE_GOLDEN: the golden data, for the vocabulary)
set -euo pipefail
source "$(dirname "$0")/rag_env.sh"   # root, bin, vocab
html=$(ls -d /usr/share/doc/python3*/html 2>/dev/null | head -1)
[ -n "$html" ] || { echo "no Python documentation (scripts/setup.sh --corpus installs python3-doc)" >&2; exit 1; }
w=${1:-rag-cite}
mkdir -p "$w"
cd "$w"

# 1. sets, the FAQ index, the rest of the documentation as text
[ -f sets/faq/test.jsonl ] || /usr/bin/python3 "$root/scripts/rag_eval_sets.py" sets --man-pages 0
[ -d faqkb ] || "$bin" rag index sets/faq/corpus -o faqkb --analyzer "${ANALYZER:-english}" -q
if [ ! -s pydocs.jsonl ]; then
  inputs=()
  for p in "$html"/*; do
    case "$(basename "$p")" in faq|_sources|_static|_images|_downloads|genindex*|py-modindex.html|search.html) ;; *) inputs+=("$p") ;; esac
  done
  "$bin" rag index "${inputs[@]}" -o pydockb -q
  /usr/bin/python3 - pydockb/index.sqlite pydocs.jsonl <<'EOF'
import json, sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
with open(sys.argv[2] + ".tmp", "w") as out:
    for (text,) in db.execute("SELECT text FROM chunks ORDER BY id"):
        out.write(json.dumps({"text": text}) + "\n")
import os; os.replace(sys.argv[2] + ".tmp", sys.argv[2])
EOF
fi

# 2. tokenizer and pre-training
[ -s tok8k.json ] || "$bin" tokenizer train --input pydocs.jsonl --vocab-size 8192 -o tok8k.json -q
[ -s data/data.json ] || "$bin" prepare --input pydocs.jsonl --tokenizer tok8k.json -o data -q
if [ ! -s pre/model.gguf ]; then
  resume=(); [ -d pre/checkpoint ] && resume=(--resume)
  "$bin" pretrain --preset llama-small --data data -o pre --steps 800 -b 4 --seq-len 2048 --lr 1e-3 --min-lr 1e-4 \
    --warmup 50 --precision bf16 --eval-every 100 --eval-batches 16 --save-every 100 --seed 1 -t 2 "${resume[@]}"
fi

# 3. the dense retriever, and the FAQ index's vectors
common=(-b 64 --max-tokens 128 --max-query-tokens 48)
[ -s emb0.gguf ] || "$bin" init --preset bert-tiny --tokenizer "$vocab" -c 256 -o emb0.gguf 2>/dev/null
[ -s emb1.gguf ] || "$bin" embed train -m emb0.gguf --pooling mean --kb pydockb --ict 3 -s 1 --epochs 2 --lr 1e-3 "${common[@]}" -o emb1.gguf
[ -s faq-embed.gguf ] || "$bin" embed train -m emb1.gguf --kb faqkb --qa sets/faq/train.jsonl --hard-negatives 1 --ict 2 -s 2 \
  --epochs 4 --lr 3e-4 "${common[@]}" -o faq-embed.gguf
"$bin" rag index sets/faq/corpus -o faqkb --embed-model faq-embed.gguf -q

# 4. the fine-tuning conversations and the fine-tuned model
if [ ! -s sft.jsonl ]; then
  for s in 1 2 3 4; do "$bin" rag sft-data faqkb --qa sets/faq/train.jsonl --mode hybrid -k 3 -s $s -o sft-$s.jsonl -q; done
  cat sft-1.jsonl sft-2.jsonl sft-3.jsonl sft-4.jsonl > sft.jsonl.tmp && mv sft.jsonl.tmp sft.jsonl
fi
if [ ! -s cite/model.gguf ]; then
  resume=(); [ -d cite/checkpoint ] && resume=(--resume)
  "$bin" sft -m pre/model.gguf --data sft.jsonl -o cite --epochs 6 -b 4 --seq-len 2048 --lr 3e-4 --min-lr 3e-5 --warmup 20 \
    --precision bf16 --eval-every 50 --save-every 100 --seed 1 -t 2 "${resume[@]}"
fi

# 5. the held-out questions
"$bin" rag eval faqkb --qa sets/faq/test.jsonl --mode bm25,hybrid -k 3 -m cite/model.gguf -n 320 -s 1 \
  --answers-out answers.jsonl --json > eval.json
/usr/bin/python3 "$root/scripts/rag_cite_report.py" eval.json answers.jsonl

# 6. the fusion weight and the declining thresholds, chosen on a validation part of the train questions
if [ ! -s select-hybrid.json ]; then
  /usr/bin/python3 - sets/faq/train.jsonl fit.jsonl val.jsonl <<'PY'
import json, sys, zlib
fit, val = [], []
for line in open(sys.argv[1], encoding="utf-8"):
    q = json.loads(line)
    (val if (zlib.crc32(q["question"].encode()) >> 1) % 2 else fit).append(line)  # (bit 0 split train from held-out)
open(sys.argv[2], "w", encoding="utf-8").writelines(fit)
open(sys.argv[3], "w", encoding="utf-8").writelines(val)
PY
  [ -s faq-fit.gguf ] || "$bin" embed train -m emb1.gguf --kb faqkb --qa fit.jsonl --hard-negatives 1 --ict 2 -s 2 \
    --epochs 4 --lr 3e-4 "${common[@]}" -o faq-fit.gguf
  rm -rf fitkb && cp -r faqkb fitkb
  "$bin" rag index sets/faq/corpus -o fitkb --embed-model faq-fit.gguf -q
  /usr/bin/python3 "$root/scripts/rag_select_fusion.py" --bin "$bin" --kb fitkb --qa val.jsonl --mode bm25 -k 3 > select-bm25.json
  /usr/bin/python3 "$root/scripts/rag_select_fusion.py" --bin "$bin" --kb fitkb --qa val.jsonl --mode hybrid -k 3 > select-hybrid.json.tmp
  mv select-hybrid.json.tmp select-hybrid.json
fi
pick() { /usr/bin/python3 -c 'import json,sys; v = json.load(open(sys.argv[1]))[sys.argv[2]]; print(0 if v is None else v)' "$@"; }
alpha=$(pick select-hybrid.json alpha)
echo "chosen on the validation questions: alpha $alpha; min-lead BM25 $(pick select-bm25.json min_lead), hybrid $(pick select-hybrid.json min_lead)"
"$bin" rag eval faqkb --qa sets/faq/test.jsonl --mode hybrid --fusion convex --alpha "$alpha" -k 3 -m cite/model.gguf -n 320 -s 1 \
  --answers-out answers-convex.jsonl --json -q > eval-convex.json
/usr/bin/python3 "$root/scripts/rag_cite_report.py" eval-convex.json answers-convex.jsonl
for m in bm25 hybrid; do
  "$bin" rag eval faqkb --qa sets/faq/test.jsonl --mode $m --fusion convex --alpha "$alpha" -k 3 -m cite/model.gguf -n 320 -s 1 \
    --min-lead "$(pick select-$m.json min_lead)" --answers-out "answers-lead-$m.jsonl" --json -q > "eval-lead-$m.json"
  /usr/bin/python3 "$root/scripts/rag_cite_report.py" "eval-lead-$m.json" "answers-lead-$m.jsonl"
done
