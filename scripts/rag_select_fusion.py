#!/usr/bin/env python3
"""Choose hybrid retrieval's fusion weight and a declining threshold on validation questions, never on the held-out
ones.

  rag_select_fusion.py --bin build/llmforge --kb KB --qa val.jsonl [--mode hybrid|bm25] [-k 3] [--precision 0.85]

For --mode hybrid: `rag eval --fusion convex --alpha A` for A = 0, 0.1, …, 1 on the questions; the alpha of the best
MRR@10 (the smallest where several tie). Then, with that alpha (or BM25 alone for --mode bm25), each question's first
k hits as `rag query` returns them: the first document's lead (rag::lead: (s1 − s2) / s1 against the first hit of
another document) and whether it is a gold document. The threshold is the smallest of 0, 0.05, …, 0.5 at which the
questions whose lead reaches it have a gold first document at least --precision of the time (`rag ask` and `rag eval`
decline the others with --min-lead).

Prints the table to stderr and one JSON object to stdout: {"mode", "alpha", "mrr_at_10", "min_lead", "answered",
"precision_at_1", "questions"} (min_lead null when no threshold reaches --precision).
"""
import argparse
import json
import subprocess
import sys


def run(*args):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])}…: exit {r.returncode}: {r.stderr.strip()[-400:]}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--kb", required=True)
    ap.add_argument("--qa", required=True)
    ap.add_argument("--mode", default="hybrid", choices=["hybrid", "bm25"])
    ap.add_argument("-k", type=int, default=3)
    ap.add_argument("--precision", type=float, default=0.85)
    a = ap.parse_args()

    fusion, alpha, mrr = [], None, None
    if a.mode == "hybrid":
        best = None
        for i in range(11):
            al = i / 10
            r = json.loads(run(a.bin, "rag", "eval", a.kb, "--qa", a.qa, "--mode", "hybrid", "--fusion", "convex", "--alpha", str(al),
                               "--bootstrap", "0", "--json", "-q"))
            m = r["modes"]["hybrid"]["mrr_at_10"]["mean"]
            print(f"alpha {al:.1f}: MRR@10 {m:.4f}", file=sys.stderr)
            if best is None or m > best[1] + 1e-12:
                best = (al, m)
        alpha, mrr = best
        fusion = ["--fusion", "convex", "--alpha", str(alpha)]
    else:
        r = json.loads(run(a.bin, "rag", "eval", a.kb, "--qa", a.qa, "--mode", "bm25", "--bootstrap", "0", "--json", "-q"))
        mrr = r["modes"]["bm25"]["mrr_at_10"]["mean"]

    rows = []
    for line in open(a.qa, encoding="utf-8"):
        q = json.loads(line)
        hits = json.loads(run(a.bin, "rag", "query", a.kb, q["question"], "--mode", a.mode, *fusion, "-k", str(a.k), "--json"))["hits"]
        lead = 0.0
        if hits and hits[0]["score"]:
            lead = 1.0
            for h in hits[1:]:
                if h["source"] != hits[0]["source"]:
                    lead = (hits[0]["score"] - h["score"]) / abs(hits[0]["score"])
                    break
        gold = q["gold"] if isinstance(q["gold"], list) else [q["gold"]]
        first = hits[0]["source"] if hits else ""
        rows.append((lead, any(first == g or first.endswith("/" + g) for g in gold)))

    chosen = None
    for i in range(11):
        t = i / 20
        s = [ok for lead, ok in rows if lead >= t]
        p = sum(s) / len(s) if s else 0.0
        print(f"min-lead {t:.2f}: {len(s)} of {len(rows)} answered, a gold first document {p:.3f}", file=sys.stderr)
        if chosen is None and s and p >= a.precision:
            chosen = (t, len(s), p)
    out = {"mode": a.mode, "alpha": alpha, "mrr_at_10": mrr, "questions": len(rows), "min_lead": chosen[0] if chosen else None,
           "answered": chosen[1] if chosen else None, "precision_at_1": chosen[2] if chosen else None}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
