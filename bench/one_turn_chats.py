#!/usr/bin/env python3
"""400 generated one-turn conversations ({"messages": [...]} lines) for the fine-tuning memory benchmarks.
Usage: bench/one_turn_chats.py OUT.jsonl"""
import json
import random
import sys

random.seed(0)
words = "river stone cloud lamp bread horse garden winter letter window".split()
with open(sys.argv[1], "w") as f:
    for i in range(400):
        w = random.choice(words)
        f.write(json.dumps({"messages": [{"role": "user", "content": f"What is a {w}?"},
                                         {"role": "assistant", "content": f"A {w} is a thing people know."}]}) + "\n")
