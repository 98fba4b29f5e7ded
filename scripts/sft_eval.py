#!/usr/bin/env python3
"""Asks a model the held-out questions of a conversation file through `llmforge chat` (greedy, one conversation at a
time: /reset between questions) and scores the answers against the reference answers: exact match, corpus BLEU-4 (NLTK,
whitespace tokens, no smoothing, as sacreBLEU computes corpus BLEU), the share of answers in the trained format
("WORD: ..."), and the share that ended with the end-of-turn token rather than the length limit. BLEU-1 and BLEU-2
are printed too: a small model's definitions share words and pairs with the references long before 4-grams.

Usage: scripts/sft_eval.py --bin build/llmforge -m MODEL --data test.jsonl [-n 200] [--json OUT] [--samples K]"""
import argparse
import json
import subprocess
import sys

from nltk.translate.bleu_score import corpus_bleu

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("-m", "--model", required=True)
ap.add_argument("--data", required=True)
ap.add_argument("-n", type=int, default=200)
ap.add_argument("--max-tokens", type=int, default=64)
ap.add_argument("--json")
ap.add_argument("--lora", help="a LoRA adapter applied beside the model's weights")
ap.add_argument("--samples", type=int, default=8)
args = ap.parse_args()

convs = [json.loads(l) for l in open(args.data) if l.strip()][: args.n]
questions = [c["messages"][0]["content"] for c in convs]
refs = [c["messages"][1]["content"] for c in convs]
stdin = "".join(q + "\n/reset\n" for q in questions)
lora = ["--lora", args.lora] if args.lora else []
r = subprocess.run([args.bin, "chat", "-m", args.model, *lora, "-n", str(args.max_tokens), "--temp", "0", "--jsonl", "-t", "2"], input=stdin,
                   capture_output=True, text=True)
if r.returncode != 0:
    sys.exit("llmforge chat failed: " + r.stderr[-500:])
replies = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
if len(replies) != len(questions):
    sys.exit(f"expected {len(questions)} answers, got {len(replies)}")
answers = [x["text"] for x in replies]
stops = [x["stop_reason"] for x in replies]
exact = sum(a.strip() == ref for a, ref in zip(answers, refs))
fmt = sum(a.strip().startswith(q[len("What does "):-len(" mean?")] + ":") for a, q in zip(answers, questions))
refs_t, hyps_t = [[ref.split()] for ref in refs], [a.split() for a in answers]
bleu = corpus_bleu(refs_t, hyps_t)
bleu1 = corpus_bleu(refs_t, hyps_t, weights=(1, 0, 0, 0))
bleu2 = corpus_bleu(refs_t, hyps_t, weights=(0.5, 0.5, 0, 0))
res = {"model": args.model, "questions": len(questions), "exact_match": exact / len(questions), "bleu4": 100 * bleu, "bleu1": 100 * bleu1, "bleu2": 100 * bleu2,
       "format": fmt / len(questions), "ended_turn": stops.count("eos") / len(questions),
       "samples": [{"question": q, "reference": ref, "answer": a, "stop": st} for q, ref, a, st in list(zip(questions, refs, answers, stops))[: args.samples]]}
print(json.dumps({k: v for k, v in res.items() if k != "samples"}))
if args.json:
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1, ensure_ascii=False)
