#!/usr/bin/env python3
"""Dense and hybrid retrieval (rag index --embed-model, rag query --mode dense|hybrid) against independent
computations.

A random BERT (test_bert_torch.make_bert, mean pooling) embeds the chunks of a real corpus (Debian's Python
documentation: the FAQ set of scripts/rag_eval_sets.py, plus a few Markdown files of our own for the incremental
checks). The reference reads the chunks straight from the index's SQLite database, builds each chunk's text as the
index documents it (title, headings, text), embeds it with PyTorch (BERT's definition, the tokens cut to the model's
128 positions as llmforge cuts them), and ranks by cosine similarity. Checked:
  - exact dense search (--exact): the same chunks in the same order, scores to 1e-5;
  - the HNSW graph: recall@10 ≥ 0.98 against the exact ranking;
  - hybrid: reciprocal-rank fusion (k = 60) of the BM25 ranking and the reference's dense ranking, recomputed here;
  - hybrid, convex fusion (TM2C2): (1 − α)·BM25/max + α·(cos + 1)/(max + 1) over the union of the two top-10 lists,
    recomputed from test_rag_bm25's own BM25 and the reference's similarities — the order, the fused scores, and each
    hit's BM25 and similarity (also for chunks only one ranking found);
  - incremental: changing one file embeds only its chunks; deleting one removes its vectors;
  - kill -9 while embedding: BM25 still answers, dense says the vectors are out of date (one line, exit 2) until the
    next run completes; a dense query on an index without vectors, likewise; an empty query: no hits.

Run: /usr/bin/python3 tests/reference/test_rag_dense.py --bin build/llmforge [--golden DIR]
"""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from test_bert_torch import args_and_vocab, make_bert, model_dir, reference  # noqa: E402
from test_rag_bm25 import Bm25  # noqa: E402
from serve_util import Served  # noqa: E402

RESULTS = {"passed": 0, "failed": 0}
QUERIES = ["How do I read a file line by line?", "Why is Python slow?", "How can I create a stand-alone binary?", "What is a lambda?",
           "How do I copy an object?", "Why are default values shared between objects?", "How do I make a GUI?", "Is there a debugger?",
           "How do I share global variables across modules?", "What is the difference between a list and a tuple?", "How to sort a dict",
           "Can I use threads?", "How do I convert a string to a number?", "unicode errors when printing", "memory leak in extension module",
           "why does my loop variable stay in scope", "generate random numbers", "delete a file", "run a subprocess and capture output",
           "why can't I use an assignment in an expression", "exceptions are slow?", "how are dictionaries implemented",
           "what is the GIL", "how do I write a function with output parameters", "ternary conditional operator",
           "why are floating point calculations inaccurate", "how do I check if an object is an instance of a class", "singleton",
           "how do I find the current module name", "circular imports"]


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


def run(*args, ok=True):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if ok and r.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])}…: exit {r.returncode}: {r.stderr.strip()[-400:]}")
    return r


def passage_text(title, heading, text):  # as the index documents a chunk (rag::passage_text)
    s = title + "\n" if title and not heading.startswith(title) else ""
    return s + (heading + "\n" if heading else "") + text


def serve_fusion(bin_, model, kb):
    """serve --rag KB --fusion convex --alpha 0.7: POST /v1/retrieve fuses as rag query does (its default, and rrf or
    another alpha where the request says so); a bad fusion or alpha is a 400 naming the parameter."""
    srv = Served(bin_, ["-m", model, "--rag", kb, "--rag-mode", "hybrid", "--fusion", "convex", "--alpha", "0.7", "--no-access-log", "--no-web",
                        "-t", "1"])
    try:
        check("serve --rag --fusion convex starts", srv.url is not None, srv.err[-200:])
        if not srv.url:
            return
        info = srv.get_json("/v1/retrieve")
        same, detail = info.get("default_fusion") == "convex" and info.get("default_alpha") == 0.7, ""
        q = "How do I copy an object?"
        for body, args in (({}, ["--fusion", "convex", "--alpha", "0.7"]), ({"fusion": "rrf"}, ["--fusion", "rrf"]),
                           ({"alpha": 0.2}, ["--fusion", "convex", "--alpha", "0.2"])):
            st, out = srv.post_json("/v1/retrieve", {"query": q, "k": 5, **body})
            want = json.loads(run(bin_, "rag", "query", kb, q, "--mode", "hybrid", "-k", "5", "--json", *args).stdout)
            got = [(d["chunk"], round(d["score"], 12)) for d in out.get("data", [])]
            if st != 200 or got != [(h["chunk"], round(h["score"], 12)) for h in want["hits"]] or out.get("fusion") != want.get("fusion"):
                same, detail = False, f"{body}: {st} {got} vs {[h['chunk'] for h in want['hits']]}"
        check("POST /v1/retrieve: the server's fusion by default, the request's fusion and alpha otherwise, as rag query ranks", same, detail)
        errs = []
        for body, param in (({"fusion": "max"}, "fusion"), ({"fusion": 1}, "fusion"), ({"alpha": 1.5}, "alpha"), ({"alpha": "x"}, "alpha")):
            st, out = srv.post_json("/v1/retrieve", {"query": q, **body})
            errs.append(st == 400 and out.get("error", {}).get("param") == param)
        check("POST /v1/retrieve: an unknown fusion, an alpha outside [0, 1] or not a number: 400 naming the parameter", all(errs), str(errs))
    finally:
        srv.stop()


def main():
    a, vocab = args_and_vocab()
    if not vocab:
        return 0
    if not os.path.isdir("/usr/share/doc/python3/html"):
        print("SKIP: Debian's python3-doc is not installed (scripts/setup.sh installs it)")
        return 0
    torch.set_default_dtype(torch.float64)
    with tempfile.TemporaryDirectory() as tmp:
        d = model_dir(a.bin, vocab, tmp, "bert")
        cfg, w = make_bert(d)
        model = os.path.join(tmp, "bert.gguf")
        run(a.bin, "convert", d, model)
        sets = os.path.join(tmp, "sets")
        run(sys.executable, os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "rag_eval_sets.py"), sets, "--man-pages", "0")
        corpus = os.path.join(tmp, "corpus")
        shutil.copytree(os.path.join(sets, "faq", "corpus"), corpus)
        for i in range(3):
            open(os.path.join(corpus, f"note{i}.md"), "w").write(f"# Note {i}\n\nA short note number {i} about reading files and lists.\n\n"
                                                                  f"## Details\n\nSorting a list of {i} tuples by their second item.\n")
        kb = os.path.join(tmp, "kb")
        r = run(a.bin, "rag", "index", corpus, "-o", kb, "--embed-model", model, "--json", "-q", "-t", "2")
        st = json.loads(r.stdout)
        check("rag index --embed-model: a vector for every chunk", st["vectors"] == st["chunks"] == st["embedded"] and st["chunks"] > 150,
              f"{st['chunks']} chunks, {st['vectors']} vectors")

        # the reference: every chunk embedded by PyTorch, from the database's own rows
        db = sqlite3.connect(os.path.join(kb, "index.sqlite"))
        rows = db.execute("SELECT c.id, d.title, c.heading, c.text FROM chunks c JOIN docs d ON d.id = c.doc_id ORDER BY c.id").fetchall()
        db.close()
        texts = [passage_text(t, h, x) for _, t, h, x in rows]
        tj = os.path.join(tmp, "texts.jsonl")
        open(tj, "w").write("".join(json.dumps({"text": t}) + "\n" for t in texts + QUERIES))
        toks = [json.loads(l) for l in run(a.bin, "tokenize", "--tokenizer", os.path.join(d, "tokenizer.json"), "-f", tj, "--jsonl").stdout.split("\n") if l]
        cut = lambda ids: [ids[0]] + ids[1:-1][:126] + [ids[-1]]  # [CLS] body [SEP] in the model's 128 positions
        with torch.no_grad():
            E = torch.stack([reference(w, cfg, cut(x), "mean") for x in toks[:len(texts)]])
            Qv = torch.stack([reference(w, cfg, cut(x), "mean") for x in toks[len(texts):]])
        ids = [r[0] for r in rows]
        exact_ok, worst, recall_hits, recall_total, hybrid_ok, hybrid_detail = True, 0.0, 0, 0, True, ""
        lexical = Bm25(os.path.join(kb, "index.sqlite"))
        convex_ok, convex_detail, convex_worst, one_sided = True, "", 0.0, 0
        for qi, q in enumerate(QUERIES):
            sims = (E @ Qv[qi]).tolist()
            order = sorted(range(len(ids)), key=lambda i: (-sims[i], ids[i]))
            want = [(ids[i], sims[i]) for i in order]
            got = json.loads(run(a.bin, "rag", "query", kb, q, "--mode", "dense", "--exact", "-k", "10", "--json").stdout)["hits"]
            for h, (cid, s) in zip(got, want[:10]):
                worst = max(worst, abs(h["score"] - s))
            # the same chunks in the same order, except where two scores tie within rounding
            if [h["chunk"] for h in got] != [c for c, _ in want[:10]]:
                gap = min(abs(want[i][1] - want[i + 1][1]) for i in range(10))
                if gap > 1e-5:
                    exact_ok = False
            approx = json.loads(run(a.bin, "rag", "query", kb, q, "--mode", "dense", "-k", "10", "--json").stdout)["hits"]
            recall_hits += len({h["chunk"] for h in approx} & {c for c, _ in want[:10]})
            recall_total += 10
            # hybrid = RRF of BM25's ranking and the dense ranking, each to 100 candidates
            lj = json.loads(run(a.bin, "rag", "query", kb, q, "--mode", "bm25", "-k", "100", "--json").stdout)
            lex = lj["hits"]
            fused = {}
            for rank, h in enumerate(lex, 1):
                fused[h["chunk"]] = fused.get(h["chunk"], 0) + 1 / (60 + rank)
            for rank, (cid, _) in enumerate(want[:100], 1):
                fused[cid] = fused.get(cid, 0) + 1 / (60 + rank)
            ref = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
            hyb = json.loads(run(a.bin, "rag", "query", kb, q, "--mode", "hybrid", "--exact", "-k", "10", "--json").stdout)["hits"]
            if [h["chunk"] for h in hyb] != [c for c, _ in ref] or any(abs(h["score"] - s) > 1e-12 for h, (_, s) in zip(hyb, ref)):
                hybrid_ok = False
                hybrid_detail = f"'{q}': {[h['chunk'] for h in hyb]} vs {[c for c, _ in ref]}"
            # convex fusion, α alternating between a BM25-heavy and a dense-heavy weight
            alpha = (0.3, 0.7)[qi % 2]
            bm = dict(lexical.rank(lj["terms"]))
            sim = dict(zip(ids, sims))
            cand = {c for c, _ in lexical.rank(lj["terms"])[:10]} | {c for c, _ in want[:10]}  # 10 deep: many a candidate in one list only
            top_b, top_s = max(bm.get(c, 0.0) for c in cand), max(sim[c] for c in cand)
            fused = {c: (1 - alpha) * (bm.get(c, 0.0) / top_b if top_b > 0 else 0) + alpha * (sim[c] + 1) / (top_s + 1) for c in cand}
            ref = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
            cx = json.loads(run(a.bin, "rag", "query", kb, q, "--mode", "hybrid", "--fusion", "convex", "--alpha", str(alpha), "--candidates", "10",
                                "--exact", "-k", "10", "--json").stdout)
            got = cx["hits"]
            ok = len(got) == len(ref) and cx["fusion"] == {"method": "convex", "alpha": alpha, "candidates": 10}
            for h, (c, sc) in zip(got, ref):
                d = max(abs(h["score"] - fused.get(h["chunk"], float("inf"))), abs(h["score"] - sc), abs(h["bm25"] - bm.get(h["chunk"], 0.0)) / max(1.0, h["bm25"]),
                        abs(h["similarity"] - sim[h["chunk"]]))
                convex_worst = max(convex_worst, d)
                ok = ok and d <= 1e-5
                # a score only the fill gives: BM25 that is not ~0 (its common words' idf is floored to 1e-6), any similarity
                one_sided += (h["bm25_rank"] == 0 and h["bm25"] > 0.1) + (h["dense_rank"] == 0)
            if [h["chunk"] for h in got] != [c for c, _ in ref] and min(abs(ref[i][1] - ref[i + 1][1]) for i in range(len(ref) - 1)) > 1e-5:
                ok = False  # another order, and not by a near tie
            if not ok and convex_ok:
                convex_ok, convex_detail = False, f"'{q}' (alpha {alpha}): {[h['chunk'] for h in got]} vs {[c for c, _ in ref]}"
        check(f"dense, exact search: the reference's chunks in its order, cosine scores to 1e-5 ({len(QUERIES)} queries)",
              exact_ok and worst <= 1e-5, f"max |score diff| {worst:.2e}")
        check("dense, HNSW: recall@10 ≥ 0.98 against exact search", recall_hits / recall_total >= 0.98, f"{recall_hits}/{recall_total}")
        check("hybrid: reciprocal-rank fusion of BM25 and the reference's dense ranking, recomputed", hybrid_ok, hybrid_detail)
        check("hybrid, --fusion convex: the reference's order and scores, every hit's BM25 and similarity computed (≤ 1e-5), "
              "chunks found by one ranking only among them", convex_ok and one_sided > 0,
              f"max diff {convex_worst:.2e}, {one_sided} scores of chunks outside a ranking's candidates" + (f"; {convex_detail}" if convex_detail else ""))

        serve_fusion(a.bin, model, kb)

        # incremental: one changed file embeds only its chunks; a deleted one takes its vectors along
        open(os.path.join(corpus, "note1.md"), "a").write("\n## More\n\nAn added section about copying objects.\n")
        st = json.loads(run(a.bin, "rag", "index", corpus, "-o", kb, "--json", "-q").stdout)  # (the index's own model)
        db = sqlite3.connect(os.path.join(kb, "index.sqlite"))
        n_note1 = db.execute("SELECT COUNT(*) FROM chunks c JOIN docs d ON d.id = c.doc_id WHERE d.source LIKE '%note1.md'").fetchone()[0]
        db.close()
        check("a changed file: only its chunks are embedded again (the index's own model, not named)",
              st["changed"] == 1 and st["embedded"] == n_note1 and st["vectors"] == st["chunks"], f"{st['embedded']} embedded, {n_note1} chunks in the file")
        os.remove(os.path.join(corpus, "note2.md"))
        st = json.loads(run(a.bin, "rag", "index", corpus, "-o", kb, "--json", "-q").stdout)
        got = json.loads(run(a.bin, "rag", "query", kb, "sorting a list of 2 tuples", "--mode", "dense", "-k", "200", "--json").stdout)["hits"]
        check("a deleted file: its vectors leave with its chunks", st["removed"] == 1 and st["vectors"] == st["chunks"] and
              not any(h["source"].endswith("note2.md") for h in got), f"{st['vectors']} vectors, {st['chunks']} chunks")

        # kill -9 while embedding (another model: every chunk again), then the next run completes
        # (a larger random encoder, MiniLM-L6's shape, so that embedding the corpus takes long enough to be cut)
        model2 = os.path.join(tmp, "bert2.gguf")
        run(a.bin, "init", "--preset", "minilm-l6", "--tokenizer", vocab, "-o", model2)
        p = subprocess.Popen([a.bin, "rag", "index", corpus, "-o", kb, "--embed-model", model2, "-t", "1"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        deadline = time.time() + 60
        db = sqlite3.connect(os.path.join(kb, "index.sqlite"))
        while time.time() < deadline and p.poll() is None:  # until some vectors of the new model are committed
            try:
                n = db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
                if 0 < n < st["chunks"] and db.execute("SELECT value FROM meta WHERE key = 'embed_model'").fetchone()[0].endswith("bert2.gguf"):
                    break
            except sqlite3.OperationalError:
                pass
            time.sleep(0.05)
        db.close()
        killed = p.poll() is None
        if killed:
            p.send_signal(signal.SIGKILL)
        p.wait()
        bm = run(a.bin, "rag", "query", kb, "read a file", "--json", ok=False)
        de = run(a.bin, "rag", "query", kb, "read a file", "--mode", "dense", ok=False)
        errors = [l for l in de.stderr.splitlines() if "error" in l]
        check("kill -9 while embedding: BM25 answers; dense says the vectors are out of date (exit 2, one line)",
              killed and bm.returncode == 0 and json.loads(bm.stdout)["hits"] and de.returncode == 2 and len(errors) == 1 and "out of date" in errors[0],
              " | ".join(errors) if killed else "the run ended before it could be killed")
        st = json.loads(run(a.bin, "rag", "index", corpus, "-o", kb, "--json", "-q", "-t", "2").stdout)
        de = run(a.bin, "rag", "query", kb, "read a file", "--mode", "dense", "--json", ok=False)
        check("the next run completes the vectors; dense answers again", de.returncode == 0 and st["vectors"] == st["chunks"] and 0 < st["embedded"] < st["chunks"],
              f"{st['embedded']} embedded now, {st['vectors']} vectors" + de.stderr.strip()[-200:])

        # no vectors; an empty query
        plain = os.path.join(tmp, "plain")
        run(a.bin, "rag", "index", os.path.join(corpus, "note0.md"), "-o", plain, "-q")
        r = run(a.bin, "rag", "query", plain, "read a file", "--mode", "hybrid", ok=False)
        errors = [l for l in r.stderr.splitlines() if "error" in l]
        check("hybrid on an index without vectors: exit 2, one line saying how to build them", r.returncode == 2 and len(errors) == 1 and "--embed-model" in errors[0],
              " | ".join(errors))
        r = run(a.bin, "rag", "query", kb, "  ", "--mode", "dense", "--json", ok=False)
        check("an empty query in dense mode: no hits, exit 0", r.returncode == 0 and json.loads(r.stdout)["hits"] == [], r.stderr.strip()[-200:])
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
