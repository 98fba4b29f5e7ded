#!/usr/bin/env python3
"""Training pairs for an embedding model of the man-page set, from an index built by `llmforge rag index` (its SQLite
database) and the set's train half — the pair files of the first two stages of scripts/rag_man_embed.sh.

  - inverse cloze pairs: from every chunk, up to N of its sentences (5 to 40 words; a regular-expression splitter
    at . ! ?) each as a query, the chunk without it as the positive (with it in a tenth of the pairs);
  - with --lead: each page's first DESCRIPTION sentence as a query for the page's first chunk without it (twice) —
    the sentence that most often paraphrases what the page is for, as the (unindexed) NAME line does;
  - the train half's questions (NAME lines), each with its page's first chunk, three times.
The held-out questions are never read. Seeded; the pairs are shuffled; JSONL {"query", "positive"} for
`llmforge embed train --pairs`.

  scripts/rag_man_pairs.py INDEX_DIR TRAIN_QA OUT [--per-chunk N (3)] [--seed S (1)] [--lead]
"""
import argparse
import json
import random
import re
import sqlite3

SENT = re.compile(r"(?<=[.!?])\s+")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("index")
    ap.add_argument("qa")
    ap.add_argument("out")
    ap.add_argument("--per-chunk", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lead", action="store_true")
    a = ap.parse_args()
    random.seed(a.seed)
    db = sqlite3.connect(a.index + "/index.sqlite")
    pages = {}  # doc id → (source, [chunk texts in order])
    for doc, source, text in db.execute("SELECT c.doc_id, d.source, c.text FROM chunks c JOIN docs d ON d.id = c.doc_id ORDER BY c.doc_id, c.ord"):
        pages.setdefault(doc, (source, []))[1].append(text)
    pairs = []
    for source, texts in pages.values():
        for t in texts:
            flat = " ".join(t.split())
            sents = [s for s in SENT.split(flat) if 5 <= len(s.split()) <= 40]
            random.shuffle(sents)
            for s in sents[:a.per_chunk]:
                pairs.append({"query": s, "positive": flat.replace(s, " ") if random.random() < 0.9 else flat})
    n_ict, n_lead = len(pairs), 0
    if a.lead:
        for source, texts in pages.values():
            full = " ".join(" ".join(t.split()) for t in texts)
            at = full.find("DESCRIPTION ")
            if at < 0:
                continue
            s1 = SENT.split(full[at + len("DESCRIPTION "):], maxsplit=1)[0]
            if not 4 <= len(s1.split()) <= 40:
                continue
            first = " ".join(texts[0].split())
            for _ in range(2):
                pairs.append({"query": s1, "positive": first.replace(s1, " ") if s1 in first else first})
                n_lead += 1
    by_name = {source.split("/")[-1]: texts for source, texts in pages.values()}
    n_qa = 0
    for line in open(a.qa):
        q = json.loads(line)
        texts = by_name.get(q["gold"])
        if texts is None:
            continue
        for _ in range(3):
            pairs.append({"query": q["question"], "positive": " ".join(texts[0].split())})
            n_qa += 1
    random.shuffle(pairs)
    with open(a.out, "w") as f:
        for p in pairs:
            f.write(json.dumps(p) + "\n")
    print(f"{a.out}: {len(pairs)} pairs ({n_ict} inverse cloze, {n_lead} DESCRIPTION leads, {n_qa} from the train half)")


if __name__ == "__main__":
    main()
