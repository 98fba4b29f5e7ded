#!/usr/bin/env python3
"""A multiple-choice task from a real dictionary: pick the right WordNet definition of a word among four.

Reads the held-out conversations written by scripts/wordnet_chats.py (TEST.jsonl: "What does WORD mean?" →
"WORD: DEFINITION."; none of these words is in the SFT training set) and writes one llmforge eval item per word:

  {"id": "wn-0", "context": "What does ascot mean?\\n", "choices": ["ascot: …", "ascot: …", "ascot: …", "ascot: …"], "answer": 2}

The three wrong choices are the definitions of three other held-out words (drawn with a fixed seed), written after the
same headword, so that only the definition tells them apart. The right one's position is drawn too.

Usage: scripts/wordnet_mc.py TEST.jsonl OUT.jsonl [--choices 4] [--seed 1]"""
import argparse
import json
import random

ap = argparse.ArgumentParser()
ap.add_argument("test")
ap.add_argument("out")
ap.add_argument("--choices", type=int, default=4)
ap.add_argument("--seed", type=int, default=1)
args = ap.parse_args()

pairs = []
with open(args.test, encoding="utf-8") as f:
    for line in f:
        msgs = json.loads(line)["messages"]
        word = msgs[0]["content"][len("What does "):-len(" mean?")]
        answer = msgs[1]["content"]
        definition = answer[len(word) + 2:].rstrip(".")
        pairs.append((word, definition))
rng = random.Random(args.seed)
n = 0
with open(args.out, "w", encoding="utf-8") as out:
    for i, (word, definition) in enumerate(pairs):
        others = [d for j, (_, d) in enumerate(pairs) if j != i and d != definition]
        wrong = rng.sample(others, args.choices - 1)
        answer = rng.randrange(args.choices)
        defs = wrong[:answer] + [definition] + wrong[answer:]
        item = {"id": f"wn-{i}", "context": f"What does {word} mean?\n", "choices": [f"{word}: {d}." for d in defs], "answer": answer}
        out.write(json.dumps(item, ensure_ascii=False) + "\n")
        n += 1
print(json.dumps({"items": n, "choices": args.choices}))
