#!/usr/bin/env python3
"""A checkable reward for definitions: how much of WordNet's gloss an answer gives.

  gloss_reward.py prompts CONVERSATIONS.jsonl > prompts.jsonl
      WordNet conversations ("What does WORD mean?" -> "WORD: GLOSS.", scripts/wordnet_chats.py) to prompts
      {"prompt", "word", "gloss"} for llmforge grpo/rlhf
  gloss_reward.py         the verifier: reads {"prompt", "answer", "gloss", ...} on stdin and prints the F1 of the
                          content words (lower-cased, a small stop list removed) of the answer's definition — the text
                          after its first colon — against the gloss's, 0 … 1
"""
import json
import re
import sys

STOP = set("a an the of or and to in on for with by as at from that which who is are be it its this any some".split())


def words(t):
    return [w for w in re.findall(r"[a-z]+", t.lower()) if w not in STOP]


def f1(answer, gloss):
    a, g = words(answer), words(gloss)
    if not a or not g:
        return 0.0
    ga = {}
    for w in g:
        ga[w] = ga.get(w, 0) + 1
    common = 0
    for w in a:
        if ga.get(w, 0) > 0:
            common += 1
            ga[w] -= 1
    if common == 0:
        return 0.0
    p, r = common / len(a), common / len(g)
    return 2 * p * r / (p + r)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "prompts":
        for line in open(sys.argv[2]):
            m = json.loads(line)["messages"]
            word, _, gloss = m[1]["content"].partition(": ")
            print(json.dumps({"prompt": m[0]["content"], "word": word, "gloss": gloss.rstrip(".")}))
        return
    if len(sys.argv) > 1:
        sys.exit(__doc__)
    for line in sys.stdin:  # one JSON object per line (one per run, or many with --verifier-lines)
        if not line.strip():
            continue
        d = json.loads(line)
        ans = d["answer"]
        definition = ans.split(":", 1)[1] if ":" in ans else ans
        print(f"{f1(definition, d['gloss']):.6f}", flush=True)


if __name__ == "__main__":
    main()
