#!/usr/bin/env python3
"""Programmatically generated arithmetic problems for the GRPO and DPO demonstrations (and their verifier).

Two kinds, half each: sums "What is A + B?" -> "A + B = C." (A, B in 0..99) and comparisons "Which is larger, A or
B?" -> "B is larger." (A, B in 0..999, A != B).

  arith.py data OUT_DIR [--sft N] [--rl N] [--eval N] [--seed S]
      OUT_DIR/sft.jsonl   conversations for supervised fine-tuning
      OUT_DIR/rl.jsonl    prompts {"prompt", "kind", "a", "b"} for GRPO
      OUT_DIR/eval.jsonl  held-out prompts: no (kind, A, B) of them appears in sft.jsonl or rl.jsonl
  arith.py pairs OUT_DIR [--train N] [--seed S]
      OUT_DIR/pairs-train.jsonl, pairs-eval.jsonl: preference pairs {"prompt", "chosen", "rejected"}: the right answer
      against a plausible wrong one (a sum off by one or ten or with the carry forgotten; the smaller number); the eval
      pairs are the problems of eval.jsonl
  arith.py verify         the verifier: reads {"prompt", "answer", "kind", "a", "b"} on stdin, prints 1 when the last
                          number in the answer is A + B (sums) or the larger of A and B (comparisons), else 0
"""
import json
import random
import re
import sys


def truth(kind, a, b):
    return a + b if kind == "sum" else max(a, b)


def question(kind, a, b):
    return f"What is {a} + {b}?" if kind == "sum" else f"Which is larger, {a} or {b}?"


def answer(kind, a, b, value=None):
    v = truth(kind, a, b) if value is None else value
    return f"{a} + {b} = {v}." if kind == "sum" else f"{v} is larger."


def verify():
    d = json.load(sys.stdin)
    nums = re.findall(r"-?\d+", d["answer"])
    print(1 if nums and int(nums[-1]) == truth(d.get("kind", "sum"), int(d["a"]), int(d["b"])) else 0)


def problems(rng):
    sums = [("sum", a, b) for a in range(100) for b in range(100)]
    cmps = set()
    while len(cmps) < 10000:
        a, b = rng.randrange(1000), rng.randrange(1000)
        if a != b:
            cmps.add(("max", a, b))
    sums = list(sums)
    cmps = sorted(cmps)
    rng.shuffle(sums)
    rng.shuffle(cmps)
    return sums, cmps


def data(out, n_sft, n_rl, n_eval, seed):
    import os
    os.makedirs(out, exist_ok=True)
    rng = random.Random(seed)
    sums, cmps = problems(rng)
    ev = sums[: n_eval // 2] + cmps[: n_eval - n_eval // 2]
    rest = sums[n_eval // 2:] + cmps[n_eval - n_eval // 2:]
    with open(os.path.join(out, "eval.jsonl"), "w") as f:
        for k, a, b in ev:
            f.write(json.dumps({"prompt": question(k, a, b), "kind": k, "a": a, "b": b}) + "\n")
    with open(os.path.join(out, "sft.jsonl"), "w") as f:
        for _ in range(n_sft):
            k, a, b = rng.choice(rest)
            f.write(json.dumps({"messages": [{"role": "user", "content": question(k, a, b)},
                                             {"role": "assistant", "content": answer(k, a, b)}]}) + "\n")
    with open(os.path.join(out, "rl.jsonl"), "w") as f:
        for _ in range(n_rl):
            k, a, b = rng.choice(rest)
            f.write(json.dumps({"prompt": question(k, a, b), "kind": k, "a": a, "b": b}) + "\n")


def wrong(kind, a, b, rng):
    if kind == "max":
        return min(a, b)  # the smaller one
    c = a + b
    forgot_carry = (a % 10 + b % 10) % 10 + 10 * ((a // 10 + b // 10) % 10) + (100 if a // 10 + b // 10 >= 10 else 0)
    for w in rng.sample([c + 1, c - 1, c + 10, c - 10, forgot_carry, c + 2], 6):
        if w != c and w >= 0:
            return w
    return c + 1


def pairs(out, n_train, seed):
    import os
    rng = random.Random(seed)
    rl = [json.loads(x) for x in open(os.path.join(out, "rl.jsonl"))]
    ev = [json.loads(x) for x in open(os.path.join(out, "eval.jsonl"))]
    for name, rows in (("pairs-train.jsonl", rl[:n_train]), ("pairs-eval.jsonl", ev)):
        with open(os.path.join(out, name), "w") as f:
            for r in rows:
                k, a, b = r["kind"], r["a"], r["b"]
                f.write(json.dumps({"prompt": r["prompt"], "chosen": answer(k, a, b), "rejected": answer(k, a, b, wrong(k, a, b, rng))}) + "\n")


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "verify":
        return verify()
    if len(sys.argv) >= 3 and sys.argv[1] == "pairs":
        args = sys.argv[3:]
        opt = {"--train": 4000, "--seed": 2}
        for k, v in zip(args[::2], args[1::2]):
            opt[k] = int(v)
        return pairs(sys.argv[2], opt["--train"], opt["--seed"])
    if len(sys.argv) >= 3 and sys.argv[1] == "data":
        args = sys.argv[3:]
        opt = {"--sft": 20000, "--rl": 20000, "--eval": 500, "--seed": 1}
        for k, v in zip(args[::2], args[1::2]):
            opt[k] = int(v)
        return data(sys.argv[2], opt["--sft"], opt["--rl"], opt["--eval"], opt["--seed"])
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
