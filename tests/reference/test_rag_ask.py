#!/usr/bin/env python3
"""Grounded answers: `llmforge rag ask`, `rag eval --model` and `rag sft-data`, checked from the outside.

A small Markdown corpus written here is indexed; a random llama-tiny (llmforge init) is the chat model, so the tests
constrain its answers with GBNF grammars where an answer's content matters. Checked against what this script computes
itself from `rag query --json`:

  1. rag ask's sources are the retrieved hits whose BM25 reaches --min-bm25, in rank order, and its prompt is the
     documented rendering of them ("Sources:", "[n] title > heading", the text, then "Question: ...").
  2. A forced answer "... [2]." is read as citing source 2 (the JSON marks it; the text output prints only it, with a
     snippet from its text).
  3. A small context drops the lowest-ranked sources until the prompt and the answer's room fit.
  4. No relevant passage (no shared words, or a threshold nothing reaches; or, with --min-lead, no document standing
     out from the next — the lead recomputed from rag query's ranking): no answer, a sentence saying so, exit 0.
     Invalid UTF-8 and a missing model: one-line errors, non-zero exit.
  5. rag eval --model: citation precision and ROUGE-L (rouge-score's definitions with NLTK's Porter stemmer, from
     test_eval.py) recomputed from the answers it writes with --answers-out.
  6. rag sft-data: each conversation's user turn is the rendering of the retrieved sources (the gold passage put in
     where retrieval missed it), the assistant turn the gold answer citing the gold source at each paragraph's end;
     `sft` trains on the file. With --missed abstain the missed ones keep the retrieved sources and decline; --shuffle
     reorders each question's sources; --cite-first opens each answer with its citation; --cloze adds conversations from the index's own chunks (a sentence asked, its
     chunk without it cited among other documents' chunks), --cloze-abstain leaves the chunk out and declines.

Run: /usr/bin/python3 tests/reference/test_rag_ask.py --bin build/llmforge
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_eval import rouge_l, rs_tokens  # noqa: E402  (rouge-score's definitions, NLTK's stemmer)

RESULTS = {"passed": 0, "failed": 0}
CTX = 420  # a context that holds some of the sources, not all


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


def run(bin_, *args):
    return subprocess.run([bin_, *map(str, args)], capture_output=True, text=True, errors="replace")


DOCS = {
    "kettles.md": "# Kettles\n\n## Boiling water\n\nA kettle boils water by heating an element under the water. Most electric kettles "
                  "switch off by themselves when the water boils, because a bimetal strip bends in the steam.\n\n## Descaling\n\n"
                  "Hard water leaves limescale inside a kettle. Vinegar or citric acid dissolves the limescale; rinse the kettle "
                  "twice afterwards.\n",
    "bicycles.md": "# Bicycles\n\n## Tyres\n\nA bicycle tyre loses pressure slowly through the rubber itself. Check the pressure "
                   "every week with a gauge; the right pressure is printed on the side of the tyre.\n\n## Chains\n\nA chain "
                   "needs oil every few hundred kilometres. Wipe the old oil off first, then put one drop on each link.\n",
    "gardens.md": "# Gardens\n\n## Watering\n\nWater a garden in the morning, when less of the water evaporates. Deep watering "
                  "once a week makes roots grow down.\n\n## Compost\n\nCompost needs green waste, brown waste, water and air. "
                  "Turn the heap every few weeks so that it does not smell.\n",
    "bread.md": "# Bread\n\n## Dough\n\nBread dough is flour, water, salt and yeast. Knead the dough until it is smooth, then let "
                "it rise until it doubles.\n\n## Baking\n\nBake bread in a hot oven. The loaf is done when it sounds hollow "
                "when tapped underneath.\n",
}

QA = [
    {"question": "How often should a bicycle chain get oil?", "gold": "bicycles.md",
     "answer": "Every few hundred kilometres.\n\nWipe off the old oil, then oil each link."},
    {"question": "What removes limescale from a kettle?", "gold": "kettles.md", "answer": "Vinegar or citric acid dissolves it."},
    {"question": "When should I water the garden?", "gold": "gardens.md", "answer": "In the morning, when less water evaporates."},
    {"question": "How do I know the bread is baked?", "gold": "bread.md", "answer": "It sounds hollow when tapped underneath."},
    {"question": "Why does a kettle switch off when the water boils?", "gold": "kettles.md",
     "answer": "A bimetal strip bends in the steam and switches it off."},
]


def render(question, hits):
    """The documented prompt: rag::grounded_prompt."""
    s = "Sources:\n"
    for i, h in enumerate(hits):
        t, hd = h["title"], h["heading"]
        label = t if not hd else hd if (not t or hd.startswith(t)) else t + " > " + hd
        s += f"\n[{i + 1}] {label}\n" + h["text"].rstrip(" \n\r\t") + "\n"
    return s + "\nQuestion: " + question


def cite(answer, n):
    """rag::cite_answer: " [n]" at the end of each blank-line separated paragraph."""
    parts = re.split(r"(\n\n+)", answer)
    out = ""
    for p in parts:
        if p.startswith("\n\n"):
            out += p
            continue
        body = p.rstrip(" \n\r\t")
        out += body + (f" [{n}]" if body else "") + p[len(body):]
    return out


def query(bin_, kb, q, k=5):
    r = run(bin_, "rag", "query", kb, q, "-k", k, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["hits"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    b = args.bin
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus")
        os.makedirs(corpus)
        for name, text in DOCS.items():
            with open(os.path.join(corpus, name), "w") as f:
                f.write(text)
        kb = os.path.join(tmp, "kb")
        r = run(b, "rag", "index", corpus, "-o", kb, "-q")
        assert r.returncode == 0, r.stderr
        model = os.path.join(tmp, "chat.gguf")
        r = run(b, "init", "--preset", "llama-tiny", "-c", "2048", "-o", model)
        assert r.returncode == 0, r.stderr
        common = ["-m", model, "-t", "1", "-n", "16"]

        # 1. sources = relevant hits in rank order; the prompt is their rendering
        q = "How do I remove limescale from the kettle with vinegar?"
        hits = query(b, kb, q)
        min_bm25 = sorted(h["score"] for h in hits)[len(hits) // 2]  # a threshold that leaves some out
        relevant = [h for h in hits if h["bm25"] >= min_bm25]
        r = run(b, "rag", "ask", kb, q, *common, "--min-bm25", min_bm25, "--json")
        a = json.loads(r.stdout) if r.returncode == 0 else {}
        check("rag ask --json runs", r.returncode == 0, r.stderr.strip()[-300:])
        check("the sources are the hits reaching --min-bm25, in rank order",
              [s["chunk"] for s in a.get("sources", [])] == [h["chunk"] for h in relevant] and 0 < len(relevant) < len(hits),
              f"{len(relevant)} of {len(hits)}")
        check("the prompt is the numbered sources then the question", a.get("prompt") == render(q, relevant))
        check("each source carries its BM25 score and a snippet from its text",
              all(abs(s["bm25"] - h["bm25"]) < 1e-9 and s["snippet"].rstrip("…")[:20] in " ".join(h["text"].split())
                  for s, h in zip(a.get("sources", []), relevant)))

        # 2. a forced answer citing source 2
        g = 'root ::= "Use vinegar [2]."'
        r = run(b, "rag", "ask", kb, q, *common, "--min-bm25", 0, "--grammar", g, "--json")
        a = json.loads(r.stdout) if r.returncode == 0 else {}
        check("a grammar-forced answer is the answer", a.get("answer") == "Use vinegar [2].", r.stderr.strip()[-200:])
        check("…and it cites source 2 only", a.get("cited") == [2] and [s["cited"] for s in a["sources"]][:3] == [False, True, False])
        r = run(b, "rag", "ask", kb, q, *common, "--min-bm25", 0, "--grammar", g)
        tail = r.stdout.split("Sources:")[-1]
        src2 = a["sources"][1]
        check("the text output streams the answer, then lists the cited source with its snippet",
              r.returncode == 0 and r.stdout.startswith("Use vinegar [2].") and "\n[2] " in tail and "\n[1] " not in tail
              and src2["snippet"] in tail, r.stdout[-300:])

        # 3. a small context keeps the best sources that fit
        r = run(b, "rag", "ask", kb, q, "-m", model, "-t", "1", "-n", 16, "--min-bm25", 0, "-c", CTX, "--json")
        a = json.loads(r.stdout) if r.returncode == 0 else {}
        n_src = len(a.get("sources", []))
        check(f"a {CTX}-token context drops the lowest-ranked sources",
              r.returncode == 0 and a["dropped_sources"] > 0 and n_src + a["dropped_sources"] == len(hits)
              and [s["chunk"] for s in a["sources"]] == [h["chunk"] for h in hits[:n_src]], r.stderr.strip()[-300:])
        check("…and the prompt leaves the answer its room", r.returncode == 0 and a["prompt_tokens"] + 16 <= CTX,
              f"{a.get('prompt_tokens')} prompt tokens")

        # 4. nothing relevant; bad input
        r = run(b, "rag", "ask", kb, "zebra quantum xylophone", *common, "--json")
        a = json.loads(r.stdout) if r.returncode == 0 else {}
        check("a question no passage shares a word with gets no answer (exit 0)",
              r.returncode == 0 and a.get("answered") is False and a.get("answer") is None and a.get("sources") == [])
        r = run(b, "rag", "ask", kb, q, *common, "--min-bm25", 1e9)
        check("below the threshold: a sentence saying nothing is relevant enough",
              r.returncode == 0 and "relevant enough" in r.stdout and "Sources:" not in r.stdout, r.stdout.strip())
        # --min-lead: the first hit's lead over the first hit of another document, recomputed from rag query's ranking
        top = query(b, kb, q)
        s1 = top[0]["score"]
        s2 = next((h["score"] for h in top[1:] if h["source"] != top[0]["source"]), None)
        lead = (s1 - s2) / abs(s1) if s2 is not None else 1.0
        above = run(b, "rag", "ask", kb, q, *common, "--min-bm25", 0, "--min-lead", f"{lead * 0.99:.6f}", "--json")
        below = run(b, "rag", "ask", kb, q, *common, "--min-bm25", 0, "--min-lead", f"{min(1.0, lead * 1.01 + 1e-6):.6f}", "--json")
        ja = json.loads(above.stdout) if above.returncode == 0 else {}
        jb = json.loads(below.stdout) if below.returncode == 0 else {}
        text = run(b, "rag", "ask", kb, q, *common, "--min-lead", 1)
        check("--min-lead: the ranking's lead recomputed; answered just above it, declined just below, saying why",
              0 < lead < 1 and abs(ja.get("lead", -1) - lead) < 1e-9 and ja.get("answered") is True and jb.get("answered") is False
              and jb.get("sources") == [] and text.returncode == 0 and "stands out" in text.stdout,
              f"lead {lead:.4f}, {ja.get('lead')}; {text.stdout.strip()[:120]}")
        r = subprocess.run([b.encode(), b"rag", b"ask", kb.encode(), b"bad \xff utf8", b"-m", model.encode()], capture_output=True)
        err = r.stderr.decode("utf-8", "replace").strip()
        check("invalid UTF-8: one line, non-zero exit", r.returncode != 0 and "UTF-8" in err and len(err.splitlines()) == 1, err)
        r = run(b, "rag", "ask", kb, q, "-m", os.path.join(tmp, "missing.gguf"))
        check("a missing model: one line, non-zero exit", r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr.strip())

        # 5. rag eval --model: citation precision and ROUGE-L recomputed from the written answers
        qa_path = os.path.join(tmp, "qa.jsonl")
        with open(qa_path, "w") as f:
            for item in QA:
                f.write(json.dumps(item) + "\n")
        out_path = os.path.join(tmp, "answers.jsonl")
        r = run(b, "rag", "eval", kb, "--qa", qa_path, "-m", model, "-t", 1, "-n", 64, "--min-bm25", 0.5, "--grammar", 'root ::= "It is in the source [1]."',
                "--answers-out", out_path, "--json", "-q", "--bootstrap", 0)
        res = json.loads(r.stdout)["modes"]["bm25"]["answers"] if r.returncode == 0 else {}
        check("rag eval --model runs", r.returncode == 0, r.stderr.strip()[-300:])
        rows = [json.loads(x) for x in open(out_path)] if os.path.exists(out_path) else []
        good = cited = 0
        rl = []
        for row, item in zip(rows, QA):
            if row["answered"]:
                for n in row["cited"]:
                    cited += 1
                    good += row["sources"][n - 1].endswith("/" + item["gold"])
            pred = re.sub(r"\s*\[\d+(?:\s*,\s*\d+)*\]", "", row["answer"]) if row["answered"] else None
            rl.append(rouge_l(rs_tokens(item["answer"], True), rs_tokens(pred, True))[2] if pred is not None else 0.0)
        check("one answer line per question", len(rows) == len(QA) and all(row["answer"] == "It is in the source [1]." for row in rows if row["answered"]))
        check("citation precision = cited gold sources / cited sources", cited > 0 and abs(res["citation_precision"]["mean"] - good / cited) < 1e-12,
              f"{res.get('citation_precision')} vs {good}/{cited}")
        check("ROUGE-L = rouge-score's (stemmed) mean over the questions", abs(res["rouge_l"]["mean"] - sum(rl) / len(rl)) < 1e-12,
              f"{res['rouge_l']['mean']} vs {sum(rl) / len(rl)}")

        # 6. rag sft-data, on the questions and one whose words all point away from its gold document (retrieval misses it)
        sft_qa = QA + [{"question": "How often should a bicycle chain get oil, and a kettle?", "gold": "gardens.md",
                        "answer": "Water it in the morning."}]
        sft_qa_path = os.path.join(tmp, "sft-qa.jsonl")
        with open(sft_qa_path, "w") as f:
            f.writelines(json.dumps(x) + "\n" for x in sft_qa)
        sft_path = os.path.join(tmp, "sft.jsonl")
        r = run(b, "rag", "sft-data", kb, "--qa", sft_qa_path, "-o", sft_path, "-k", 2, "--min-bm25", 0, "--json", "-q")
        check("rag sft-data runs", r.returncode == 0, r.stderr.strip()[-300:])
        convs = [json.loads(x)["messages"] for x in open(sft_path)] if r.returncode == 0 else []
        ok, put_in = len(convs) == len(sft_qa), 0
        for m, item in zip(convs, sft_qa):
            hits = query(b, kb, item["question"], 2)
            user, asst = m[1]["content"], m[2]["content"]
            marks = set(re.findall(r"\[(\d+)\]", asst))
            n = int(marks.pop()) if len(marks) == 1 else 0
            blocks = re.split(r"\n\n\[\d+\] ", user.split("\n\nQuestion: ")[0])[1:]
            gold_pos = [i for i, h in enumerate(hits) if h["source"].endswith("/" + item["gold"])]
            if gold_pos:  # retrieval found it: exactly the retrieved sources, citing the best-ranked gold one
                ok &= user == render(item["question"], hits) and n == gold_pos[0] + 1
            else:  # put in: two sources, the cited one from the gold document
                put_in += 1
                ok &= len(blocks) == 2 and n in (1, 2) and item["gold"].split(".")[0].capitalize() in blocks[n - 1]
            ok &= m[0]["role"] == "system" and m[2]["content"] == cite(item["answer"], n) and user.endswith("Question: " + item["question"])
        check("each conversation: the rendered sources, the gold answer citing the gold source per paragraph", ok and put_in == 1,
              f"{put_in} put in")
        # --missed abstain: where retrieval missed the gold passage, the retrieved sources stay and the answer declines
        abst_path = os.path.join(tmp, "sft-abstain.jsonl")
        r = run(b, "rag", "sft-data", kb, "--qa", sft_qa_path, "-o", abst_path, "-k", 2, "--min-bm25", 0, "--missed", "abstain",
                "--abstain-text", "Not in the sources.", "--json", "-q")
        counts = json.loads(r.stdout) if r.returncode == 0 else {}
        abst = [json.loads(x)["messages"] for x in open(abst_path)] if r.returncode == 0 else []
        ok, missed = len(abst) == len(sft_qa), 0
        for m, full, item in zip(abst, convs, sft_qa):
            hits = query(b, kb, item["question"], 2)
            if any(h["source"].endswith("/" + item["gold"]) for h in hits):
                ok &= m == full
            else:
                missed += 1
                ok &= m[1]["content"] == render(item["question"], hits) and m[2]["content"] == "Not in the sources."
        check("--missed abstain: the same conversations where retrieval found the gold passage, the retrieved sources and "
              "the declining answer where it did not", ok and missed > 0 and counts.get("abstained") == missed,
              f"{missed} missed, {counts}")
        # --shuffle: the same sources in another order, the answer citing the gold one where it landed
        shuf_path = os.path.join(tmp, "sft-shuffled.jsonl")
        r = run(b, "rag", "sft-data", kb, "--qa", sft_qa_path, "-o", shuf_path, "-k", 3, "--min-bm25", 0, "--shuffle", "-s", 5, "--json", "-q")
        plain_path = os.path.join(tmp, "sft-3.jsonl")
        r2 = run(b, "rag", "sft-data", kb, "--qa", sft_qa_path, "-o", plain_path, "-k", 3, "--min-bm25", 0, "-s", 5, "--json", "-q")
        ok = r.returncode == 0 and r2.returncode == 0
        moved = 0
        for line, pline, item in zip(open(shuf_path) if ok else [], open(plain_path) if ok else [], sft_qa):
            m, p = json.loads(line)["messages"], json.loads(pline)["messages"]
            blocks = re.split(r"\n\n\[\d+\] ", m[1]["content"].split("\n\nQuestion: ")[0])[1:]
            pblocks = re.split(r"\n\n\[\d+\] ", p[1]["content"].split("\n\nQuestion: ")[0])[1:]
            n = int(set(re.findall(r"\[(\d+)\]", m[2]["content"])).pop())
            pn = int(set(re.findall(r"\[(\d+)\]", p[2]["content"])).pop())
            ok &= sorted(blocks) == sorted(pblocks) and blocks[n - 1] == pblocks[pn - 1] and m[2]["content"] == cite(item["answer"], n)
            moved += blocks != pblocks
        check("--shuffle: each question's sources reordered, the answer citing the gold source at its new number", ok and moved > 0,
              f"{moved} of {len(sft_qa)} reordered")

        # --cite-first: the same conversations, each answer opened by its citation instead of closing each paragraph
        first_path = os.path.join(tmp, "sft-first.jsonl")
        r = run(b, "rag", "sft-data", kb, "--qa", sft_qa_path, "-o", first_path, "-k", 2, "--min-bm25", 0, "--cite-first", "-q")
        first = [json.loads(x)["messages"] for x in open(first_path)] if r.returncode == 0 else []
        ok = len(first) == len(convs)
        for m, full, item in zip(first, convs, sft_qa):
            n = int(set(re.findall(r"\[(\d+)\]", full[2]["content"])).pop())
            ok &= m[:2] == full[:2] and m[2]["content"] == f"[{n}] " + item["answer"].lstrip()
        check("--cite-first: the same sources, the answer opened by \"[n] \"", ok)

        # --cloze: a sentence of a chunk is the question; the chunk without it, put among other documents' chunks that
        # BM25 ranks best for the sentence (none holding the sentence), is the cited source and the answer
        cloze_path = os.path.join(tmp, "sft-cloze.jsonl")
        r = run(b, "rag", "sft-data", kb, "--qa", sft_qa_path, "-o", cloze_path, "-k", 3, "--min-bm25", 0, "--cloze", 100, "-s", 7, "--json", "-q")
        counts = json.loads(r.stdout) if r.returncode == 0 else {}
        rows = [json.loads(x)["messages"] for x in open(cloze_path)] if r.returncode == 0 else []
        chunks = {}
        for name in DOCS:  # every chunk, from queries that reach each document
            for h in query(b, kb, " ".join(re.findall(r"[A-Za-z]+", DOCS[name])[:40]), 20):
                chunks[h["text"]] = h
        ok, n_cloze = len(rows) == len(sft_qa) + counts.get("cloze", -1), 0
        for m in rows[len(sft_qa):]:
            n_cloze += 1
            q = m[1]["content"].split("\n\nQuestion: ")[1]
            owner = [h for t, h in chunks.items() if q in t]
            if len(owner) != 1:
                ok = False
                continue
            gold = dict(owner[0])
            gold["text"] = re.sub(re.escape(q) + r"\s*", "", gold["text"], count=1)  # the sentence and the space after it
            others = [h for h in query(b, kb, q, 20) if h["source"] != gold["source"] and q not in h["text"]][:2]
            n = int(set(re.findall(r"\[(\d+)\]", m[2]["content"])).pop())
            srcs = others[:n - 1] + [gold] + others[n - 1:]
            ok &= m[1]["content"] == render(q, srcs) and m[2]["content"] == cite(gold["text"], n)
        # eligible chunks: two sentences or more, one of 4 to 64 words; the test corpus's every section has them
        check("--cloze: each chunk's sentence asked, its chunk without it cited among other documents' best BM25 chunks",
              ok and n_cloze == len(chunks) and counts.get("cloze_abstained") == 0, f"{n_cloze} cloze conversations of {len(chunks)} chunks, {counts}")
        r = run(b, "rag", "sft-data", kb, "--qa", sft_qa_path, "-o", cloze_path, "-k", 3, "--min-bm25", 0, "--cloze", 3, "--cloze-abstain", 1,
                "--abstain-text", "Not in the sources.", "-s", 7, "--json", "-q")
        counts = json.loads(r.stdout) if r.returncode == 0 else {}
        rows = [json.loads(x)["messages"] for x in open(cloze_path)][len(sft_qa):] if r.returncode == 0 else []
        ok = len(rows) == 3 and counts.get("cloze_abstained") == 3
        for m in rows:
            q = m[1]["content"].split("\n\nQuestion: ")[1]
            hits = query(b, kb, q, 20)
            src = [h for h in hits if q in h["text"]][0]["source"]
            others = [h for h in hits if h["source"] != src and q not in h["text"]][:3]
            ok &= m[1]["content"] == render(q, others) and m[2]["content"] == "Not in the sources."
        check("--cloze-abstain 1: the chunk left out, other documents' chunks as sources, the declining answer", ok, str(counts))
        r = run(b, "rag", "sft-data", kb, "--qa", sft_qa_path, "-o", cloze_path, "--cloze", 3, "--cloze-abstain", 1.5)
        check("--cloze-abstain outside [0, 1]: refused", r.returncode != 0 and "cloze-abstain" in r.stderr, r.stderr.strip()[-200:])

        tpl = os.path.join(tmp, "chatml.jinja")  # the tiny model's vocabulary has no ChatML tokens: the template as text
        with open(tpl, "w") as f:
            f.write("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
        r = run(b, "sft", "-m", model, "--template", tpl, "--data", sft_path, "-o", os.path.join(tmp, "ft"), "--steps", 2, "--batch-size", 2, "-q", "-t", 1)
        check("sft trains on it", r.returncode == 0, r.stderr.strip()[-300:])

    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    sys.exit(1 if RESULTS["failed"] else 0)


if __name__ == "__main__":
    main()
