#!/usr/bin/env python3
"""Instruction data from a real dictionary: WordNet 3.0 (Debian's wordnet-base) turned into one-turn conversations
"What does WORD mean?" → "WORD: DEFINITION." (the first sense's gloss up to its examples), one per headword.
Writes TRAIN.jsonl and TEST.jsonl (every 50th headword, in a fixed order, is held out).

Usage: scripts/wordnet_chats.py OUT_DIR [--max N]"""
import argparse
import json
import os
import random

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--max", type=int, default=40000, help="most conversations in all (default 40000)")
ap.add_argument("--wordnet", default="/usr/share/wordnet")
args = ap.parse_args()

defs = {}
for pos in ("noun", "verb", "adj", "adv"):
    with open(os.path.join(args.wordnet, "data." + pos), encoding="latin-1") as f:
        for line in f:
            if line.startswith("  ") or "|" not in line:  # the licence header
                continue
            head, gloss = line.split("|", 1)
            fields = head.split()
            n_words = int(fields[3], 16)
            words = [fields[4 + 2 * i].replace("_", " ") for i in range(n_words)]
            definition = gloss.strip().split(";")[0].strip().strip('"').strip()
            if not definition or len(definition) > 120:
                continue
            for w in words:
                w = w.split("(")[0]  # adjective markers such as (a), (p)
                if w.isascii() and w.replace(" ", "").replace("-", "").isalpha() and len(w) >= 3 and w.lower() == w and w not in defs:
                    defs[w] = definition
words = sorted(defs)
random.Random(1).shuffle(words)
words = words[:args.max]
os.makedirs(args.out, exist_ok=True)
n_train = n_test = 0
with open(os.path.join(args.out, "train.jsonl"), "w") as tr, open(os.path.join(args.out, "test.jsonl"), "w") as te:
    for i, w in enumerate(words):
        conv = {"messages": [{"role": "user", "content": f"What does {w} mean?"}, {"role": "assistant", "content": f"{w}: {defs[w]}."}]}
        if i % 50 == 0:
            te.write(json.dumps(conv) + "\n")
            n_test += 1
        else:
            tr.write(json.dumps(conv) + "\n")
            n_train += 1
print(json.dumps({"headwords": len(defs), "train": n_train, "test": n_test}))
