#!/usr/bin/env python3
"""The table of scripts/qlora_demo.sh: for each base (f16, Q4_K_M) and seed, the held-out answers' exact match, corpus
BLEU-4 (NLTK, whitespace tokens, no smoothing) with a 95 % bootstrap interval over the questions (1,000 resamples), BLEU-1,
the "WORD: …" form and the ended-its-turn rate, the final validation loss of the fine-tuning, and its peak memory.
Reads OUT/eval-all-BASE-sSEED.json (scripts/sft_eval.py --samples N: every answer kept).
Usage: scripts/qlora_report.py [OUT]   (default runs/qlora-demo)"""
import json
import os
import random
import sys
import warnings

from nltk.translate.bleu_score import corpus_bleu

warnings.filterwarnings("ignore")  # resamples with no 4-gram in common score 0, as NLTK warns

out = sys.argv[1] if len(sys.argv) > 1 else "runs/qlora-demo"
rows = []
for base in ("f16", "Q4_K_M"):
    for seed in (1, 2):
        path = os.path.join(out, f"eval-all-{base}-s{seed}.json")
        if not os.path.exists(path):
            continue
        r = json.load(open(path))
        s = r["samples"]
        refs = [[x["reference"].split()] for x in s]
        hyps = [x["answer"].split() for x in s]
        rng = random.Random(0)
        boots = []
        for _ in range(1000):
            idx = [rng.randrange(len(s)) for _ in s]
            boots.append(100 * corpus_bleu([refs[i] for i in idx], [hyps[i] for i in idx]))
        boots.sort()
        metrics = [json.loads(l) for l in open(os.path.join(out, f"sft-{base}-s{seed}", "metrics.jsonl"))]
        val = [m["val_loss"] for m in metrics if "val_loss" in m]
        rss = open(os.path.join(out, f"sft-{base}-s{seed}.time")).read().split()
        rows.append((base, seed, r, boots[25], boots[974], val[-1] if val else float("nan"), int(rss[0]) / 1024))
print("| base | seed | exact match | BLEU-4 (95 % bootstrap) | BLEU-1 | \"WORD: …\" form | ended its turn | final val. loss | peak memory |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for base, seed, r, lo, hi, val, mib in rows:
    n = r["questions"]
    print(f"| {base} | {seed} | {round(r['exact_match'] * n)} / {n} | {r['bleu4']:.2f} ({lo:.2f}–{hi:.2f}) | {r['bleu1']:.1f} | "
          f"{100 * r['format']:.0f} % | {100 * r['ended_turn']:.0f} % | {val:.3f} | {mib:.0f} MiB |")
by = {}
for base, seed, r, *_ in rows:
    by.setdefault(base, []).append(r["bleu4"])
if len(by.get("f16", [])) == 2 and by.get("Q4_K_M"):
    f = by["f16"]
    print(f"\nf16 seeds differ by {abs(f[0] - f[1]):.2f} BLEU-4; Q4_K_M mean {sum(by['Q4_K_M']) / len(by['Q4_K_M']):.2f} vs f16 mean {sum(f) / 2:.2f}")
