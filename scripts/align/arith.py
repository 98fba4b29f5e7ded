#!/usr/bin/env python3
"""Programmatically generated arithmetic problems for the GRPO and DPO demonstrations (and their verifier).

Two kinds: sums "What is A + B?" -> "A + B = C." and comparisons "Which is larger, A or B?" -> "B is larger."
(A, B in 0..MAX-1 for sums, 0..CMP_MAX-1 and A != B for comparisons).

  arith.py data OUT_DIR [--sft N] [--rl N] [--eval N] [--corpus N] [--max M] [--cmp-max M] [--corpus-max M]
                [--kinds sum,max] [--seed S]
      OUT_DIR/eval.jsonl    held-out prompts {"prompt", "kind", "a", "b"}: no (kind, A, B) of them appears in any
                            other file
      OUT_DIR/eval-KIND.jsonl  the same split by kind (with two kinds)
      OUT_DIR/sft.jsonl     conversations for supervised fine-tuning
      OUT_DIR/rl.jsonl      prompts for GRPO
      OUT_DIR/corpus.txt    (with --corpus N) N problems with their answers as plain text, one per line: "What is A +
                            B? A + B = C." (operands below --corpus-max, held-out problems excluded) — for training a
                            tokenizer and pre-training a model from scratch
  arith.py pairs OUT_DIR [--train N] [--seed S]
      OUT_DIR/pairs-train.jsonl, pairs-eval.jsonl: preference pairs {"prompt", "chosen", "rejected"}: the right answer
      against a plausible wrong one (a sum off by one or ten or with a carry forgotten; the smaller number); the eval
      pairs are the problems of eval.jsonl
  arith.py onpolicy EVAL_FILE -o PAIRS
      on-policy preference pairs from a model's own answers: EVAL_FILE is what `llmforge grpo --eval-only
      --eval-samples G` wrote (each problem with its greedy answer and G sampled ones, each with the verifier's reward);
      per problem the rejected answer is the greedy one when it is wrong, else the commonest wrong sample, and the
      chosen one is the commonest right sample, else the right answer written out; problems with no wrong answer
      give no pair (the counts go to stderr)
  arith.py verify         the verifier: reads {"prompt", "answer", "kind", "a", "b"} lines on stdin, prints for each 1
                          when the last number in the answer is A + B (sums) or the larger of A and B (comparisons),
                          else 0 (works one answer per run and with --verifier-lines)
"""
import argparse
import json
import os
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
    """One JSON object per line (one per run, or many with llmforge's --verifier-lines): one 0/1 line each."""
    for line in sys.stdin:
        if not line.strip():
            continue
        d = json.loads(line)
        nums = re.findall(r"-?\d+", d["answer"])
        print(1 if nums and int(nums[-1]) == truth(d.get("kind", "sum"), int(d["a"]), int(d["b"])) else 0, flush=True)


def problem_pool(rng, kinds, his):
    """Every distinct problem when there are few (at most 10000 per kind), else 10000 distinct random ones per kind."""
    pools = []
    for kind in kinds:
        hi = his[kind]
        if hi * hi <= 10000:
            pool = [(kind, a, b) for a in range(hi) for b in range(hi) if kind == "sum" or a != b]
        else:
            seen = set()
            while len(seen) < 10000:
                a, b = rng.randrange(hi), rng.randrange(hi)
                if kind == "sum" or a != b:
                    seen.add((kind, a, b))
            pool = sorted(seen)
        rng.shuffle(pool)
        pools.append(pool)
    return pools


def data(out, n_sft, n_rl, n_eval, n_corpus, his, corpus_his, kinds, seed):
    os.makedirs(out, exist_ok=True)
    rng = random.Random(seed)
    pools = problem_pool(rng, kinds, his)
    per = [n_eval // len(kinds) + (1 if i < n_eval % len(kinds) else 0) for i in range(len(kinds))]
    ev = [p for pool, k in zip(pools, per) for p in pool[:k]]
    held = set(ev)

    def draw(tops=his):  # a random problem of a random kind that is not held out
        while True:
            kind = rng.choice(kinds)
            a, b = rng.randrange(tops[kind]), rng.randrange(tops[kind])
            if (kind, a, b) not in held and (kind == "sum" or a != b):
                return kind, a, b

    with open(os.path.join(out, "eval.jsonl"), "w") as f:
        for k, a, b in ev:
            f.write(json.dumps({"prompt": question(k, a, b), "kind": k, "a": a, "b": b}) + "\n")
    if len(kinds) > 1:  # the same held-out problems by kind
        for kind in kinds:
            with open(os.path.join(out, f"eval-{kind}.jsonl"), "w") as f:
                for k, a, b in ev:
                    if k == kind:
                        f.write(json.dumps({"prompt": question(k, a, b), "kind": k, "a": a, "b": b}) + "\n")
    with open(os.path.join(out, "sft.jsonl"), "w") as f:
        for _ in range(n_sft):
            k, a, b = draw()
            f.write(json.dumps({"messages": [{"role": "user", "content": question(k, a, b)},
                                             {"role": "assistant", "content": answer(k, a, b)}]}) + "\n")
    with open(os.path.join(out, "rl.jsonl"), "w") as f:
        for _ in range(n_rl):
            k, a, b = draw()
            f.write(json.dumps({"prompt": question(k, a, b), "kind": k, "a": a, "b": b}) + "\n")
    if n_corpus:
        with open(os.path.join(out, "corpus.txt"), "w") as f:
            for _ in range(n_corpus):
                k, a, b = draw(corpus_his)
                f.write(f"{question(k, a, b)} {answer(k, a, b)}\n")


def wrong(kind, a, b, rng):
    if kind == "max":
        return min(a, b)  # the smaller one
    c = a + b
    forgot_carry = int("".join(str((int(x) + int(y)) % 10) for x, y in zip(f"{a:09d}", f"{b:09d}")))
    for w in rng.sample([c + 1, c - 1, c + 10, c - 10, forgot_carry, c + 2], 6):
        if w != c and w >= 0:
            return w
    return c + 1


def pairs(out, n_train, seed):
    rng = random.Random(seed)
    rl = [json.loads(x) for x in open(os.path.join(out, "rl.jsonl"))]
    ev = [json.loads(x) for x in open(os.path.join(out, "eval.jsonl"))]
    for name, rows in (("pairs-train.jsonl", rl[:n_train]), ("pairs-eval.jsonl", ev)):
        with open(os.path.join(out, name), "w") as f:
            for r in rows:
                k, a, b = r["kind"], r["a"], r["b"]
                f.write(json.dumps({"prompt": r["prompt"], "chosen": answer(k, a, b), "rejected": answer(k, a, b, wrong(k, a, b, rng))}) + "\n")


def onpolicy(path, out):
    n = own = gold = none = 0
    with open(out, "w") as f:
        for line in open(path):
            r = json.loads(line)
            n += 1
            k, a, b = r["kind"], r["a"], r["b"]
            answers = [(r["answer"], r["reward"])] + [(s["answer"], s["reward"]) for s in r.get("samples", [])]
            right = [t for t, w in answers[1:] if w == 1]
            wrong_ = [t for t, w in answers[1:] if w == 0]
            if answers[0][1] == 0:
                rejected = answers[0][0]
            elif wrong_:
                rejected = max(sorted(set(wrong_)), key=wrong_.count)
            else:
                none += 1
                continue
            if right:
                chosen = max(sorted(set(right)), key=right.count)
                own += 1
            else:
                chosen = answer(k, a, b)
                gold += 1
            f.write(json.dumps({"prompt": r["prompt"], "chosen": chosen, "rejected": rejected, "kind": k}) + "\n")
    print(f"arith.py onpolicy: {n} problems: {own + gold} pairs ({own} with the model's own right answer, {gold} with the "
          f"right answer written out), {none} without a wrong answer", file=sys.stderr)


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "verify":
        return verify()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data")
    d.add_argument("out")
    d.add_argument("--sft", type=int, default=20000)
    d.add_argument("--rl", type=int, default=20000)
    d.add_argument("--eval", type=int, default=500)
    d.add_argument("--corpus", type=int, default=0)
    d.add_argument("--max", type=int, default=100, help="operands of sums are 0..MAX-1")
    d.add_argument("--cmp-max", type=int, default=1000, help="operands of comparisons are 0..CMP_MAX-1")
    d.add_argument("--corpus-max", type=int, default=0, help="operands of the corpus's sums are 0..CORPUS_MAX-1 (default: --max)")
    d.add_argument("--kinds", default="sum,max")
    d.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("pairs")
    p.add_argument("out")
    p.add_argument("--train", type=int, default=4000)
    p.add_argument("--seed", type=int, default=2)
    o = sub.add_parser("onpolicy")
    o.add_argument("eval_file")
    o.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    if a.cmd == "onpolicy":
        return onpolicy(a.eval_file, a.out)
    if a.cmd == "data":
        kinds = a.kinds.split(",")
        if not kinds or any(k not in ("sum", "max") for k in kinds):
            sys.exit("arith.py: --kinds takes sum and/or max")
        his = {"sum": a.max, "max": a.cmp_max}
        return data(a.out, a.sft, a.rl, a.eval, a.corpus, his, {"sum": a.corpus_max or a.max, "max": a.cmp_max}, kinds, a.seed)
    return pairs(a.out, a.train, a.seed)


if __name__ == "__main__":
    main()
