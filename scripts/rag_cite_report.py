#!/usr/bin/env python3
"""Where cited answers go wrong: the reader or the retriever (scripts/rag_cite_demo.sh, docs/rag.md).

Reads what `llmforge rag eval --json -m MODEL --answers-out ANSWERS` wrote and, for each mode, splits the citation
precision by whether a passage of a gold document was among the sources the model read: with one there, a citation
says how well the model picks its source; without, no citation can be right, so the share of such questions bounds the
precision a model that always cites can reach. Also: how often the model cites source [1], and the gold source's
position when it was there.
    scripts/rag_cite_report.py EVAL.json ANSWERS.jsonl [--json]
"""
import collections
import json
import sys


def is_gold(source, gold):
    golds = gold if isinstance(gold, list) else [gold]
    return any(source == g or source.endswith("/" + g) for g in golds)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    ev = json.load(open(args[0]))
    rows = [json.loads(line) for line in open(args[1])]
    report = {}
    for mode, m in ev["modes"].items():
        rs = [r for r in rows if r["mode"] == mode]
        split = {True: [0, 0, 0], False: [0, 0, 0]}  # gold among the sources → [questions, citations, gold citations]
        cite_first = citing = 0
        gold_pos = collections.Counter()
        for r in rs:
            srcs = r["sources"]
            pos = [i + 1 for i, s in enumerate(srcs) if is_gold(s, r["gold"])]
            there = bool(pos)
            if there:
                gold_pos[pos[0]] += 1
            split[there][0] += 1
            cited = r["cited"] if r["answered"] else []
            if cited:
                citing += 1
                cite_first += 1 in cited
            for n in cited:
                split[there][1] += 1
                split[there][2] += 1 <= n <= len(srcs) and is_gold(srcs[n - 1], r["gold"])
        a = m.get("answers", {})
        report[mode] = {
            "questions": len(rs),
            "mrr_at_10": m["mrr_at_10"]["mean"],
            "recall_at_k": m["recall_at_k"]["mean"],
            "citation_precision": a.get("citation_precision"),
            "gold_cited": a.get("gold_cited"),
            "rouge_l": a.get("rouge_l"),
            "gold_among_sources": split[True][0],
            "gold_absent": split[False][0],
            "precision_bound": split[True][0] / len(rs) if rs else 0.0,
            "precision_gold_there": split[True][2] / split[True][1] if split[True][1] else None,
            "citations_gold_there": split[True][1],
            "citations_gold_absent": split[False][1],
            "answers_citing_source_1": cite_first / citing if citing else None,
            "gold_position": dict(sorted(gold_pos.items())),
        }
    if "--json" in sys.argv:
        print(json.dumps(report, indent=1))
        return
    for mode, r in report.items():
        f = lambda e: f"{e['mean']:.4f} [{e['lo']:.4f}, {e['hi']:.4f}]" if e else "-"
        print(f"{mode}: {r['questions']} questions; MRR@10 {r['mrr_at_10']:.4f}, recall@k {r['recall_at_k']:.4f}")
        print(f"  citation precision {f(r['citation_precision'])}; a gold source cited {f(r['gold_cited'])}; ROUGE-L {f(r['rouge_l'])}")
        print(f"  a gold passage among the sources read: {r['gold_among_sources']} questions (positions {r['gold_position']}),"
              f" absent: {r['gold_absent']} (so a model that always cites reaches at most {r['precision_bound']:.4f})")
        pg = r["precision_gold_there"]
        print(f"  citation precision where a gold passage was there: "
              f"{'-' if pg is None else f'{pg:.4f}'} of {r['citations_gold_there']} citations;"
              f" {r['citations_gold_absent']} citations where none was")
        c1 = r["answers_citing_source_1"]
        print(f"  answers citing source [1]: {'-' if c1 is None else f'{c1:.4f}'}")


if __name__ == "__main__":
    main()
