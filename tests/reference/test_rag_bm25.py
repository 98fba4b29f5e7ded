#!/usr/bin/env python3
"""BM25 of `llmforge rag query` against an independent computation, on real corpora.

Corpus: the Python documentation's HTML pages (Debian's python3-doc: English) and Debian's fortunes-zh (Tang and Song
poems, Chinese sayings with English words mixed in), indexed by `llmforge rag index`.

The reference reads every chunk's words from the index (chunks.terms: the tokenisation is llmforge's) and computes
BM25 itself — Robertson's formula as SQLite FTS5 defines it: k1 = 1.2, b = 0.75,
idf = ln((N − n + 0.5) / (n + 0.5)) floored at 1e-6, score = Σ idf · tf·(k1+1) / (tf + k1·(1 − b + b·dl/avgdl)) over
the query's distinct words — and ranks all chunks. Checked for every query: the same number of hits, and at every rank
llmforge's score equals the reference's score at that rank and the reference's score of llmforge's chunk (≤ 1e-6
relative), so the rankings agree up to exact ties. The tokenisation itself is checked independently where that is
simple: for every chunk without CJK text, its words are the letter-and-digit runs of its NFKC case folding.

Chinese: a line of a poem, as the query, finds the chunk that holds it. Mixed Chinese and English queries too.

The English analyzer (`rag index --analyzer english`): every chunk's terms are its plain words without the stopwords
listed here and each word of ASCII letters stemmed by NLTK's PorterStemmer (Debian python3-nltk, the independent
stemmer); BM25 over those terms equals the reference as above; a query of stopwords only finds nothing. The stop
analyzer's terms are the plain words without the stopwords.

Run: /usr/bin/python3 tests/reference/test_rag_bm25.py --bin build/llmforge
"""
import argparse
import glob
import html.parser
import json
import math
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unicodedata
from collections import Counter, defaultdict

from nltk.stem.porter import PorterStemmer

RESULTS = {"passed": 0, "failed": 0}
K1, B = 1.2, 0.75
# The English analyzer's stopwords (src/rag/segment.cpp, english_stopwords()), as the specification of what it drops.
STOPWORDS = set("""a an the i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his himself she
her hers herself it its itself they them their theirs themselves this that these those what which who whom whose when where
why how am is are was were be been being have has had having do does did doing done can could may might must shall should
will would and or but if then than so nor not no of at by for with about against between into through during before after
above below to from in on there here such just also very too""".split())


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


class Headings(html.parser.HTMLParser):
    """The text of <h3> elements (the Python FAQ's questions)."""

    def __init__(self):
        super().__init__()
        self.depth, self.buf, self.out = 0, "", []

    def handle_starttag(self, tag, attrs):
        if tag == "h3":
            self.depth, self.buf = 1, ""

    def handle_endtag(self, tag):
        if tag == "h3" and self.depth:
            self.depth = 0
            self.out.append(self.buf.replace("¶", "").strip())

    def handle_data(self, data):
        if self.depth:
            self.buf += data


class Bm25:
    def __init__(self, db):
        con = sqlite3.connect(db)
        self.terms = {}
        self.postings = defaultdict(dict)  # word → {chunk: tf}
        total = 0
        for cid, terms in con.execute("SELECT id, terms FROM chunks"):
            w = terms.split(" ") if terms else []
            self.terms[cid] = w
            total += len(w)
            for t, n in Counter(w).items():
                self.postings[t][cid] = n
        self.n = len(self.terms)
        self.avgdl = total / self.n
        con.close()

    def rank(self, words):
        scores = defaultdict(float)
        for t in sorted(set(words)):
            p = self.postings.get(t, {})
            if not p:
                continue
            idf = math.log((self.n - len(p) + 0.5) / (len(p) + 0.5))
            if idf <= 0:
                idf = 1e-6
            for cid, tf in p.items():
                dl = len(self.terms[cid])
                scores[cid] += idf * (tf * (K1 + 1)) / (tf + K1 * (1 - B + B * dl / self.avgdl))
        return sorted(scores.items(), key=lambda x: (-x[1], x[0]))


def run(bin_, *args):
    r = subprocess.run([bin_, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"llmforge {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    a = ap.parse_args()
    docs = sorted(glob.glob("/usr/share/doc/python3*/html/faq"))
    if not docs:
        print("FAIL the Python documentation is missing: scripts/setup.sh installs python3-doc")
        return 1
    html_root = os.path.dirname(docs[-1])
    fortunes = "/usr/share/games/fortunes"
    if not os.path.exists(f"{fortunes}/tang300.u8"):
        print("FAIL fortunes-zh is missing: scripts/setup.sh installs it")
        return 1
    rnd = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus")
        for sub in ("faq", "tutorial", "howto", "library"):
            shutil.copytree(os.path.join(html_root, sub), os.path.join(corpus, sub))
        os.makedirs(os.path.join(corpus, "zh"))
        for name in ("tang300", "song100", "chinese"):
            # fortune files: entries between '%' lines, with ANSI colour codes around titles and authors
            text = open(f"{fortunes}/{name}.u8", encoding="utf-8").read()
            text = re.sub(r"\x1b\[[0-9;]*m", "", text).replace("\n%\n", "\n\n")
            open(os.path.join(corpus, "zh", name + ".txt"), "w", encoding="utf-8").write(text)
        kb = os.environ.get("KEEP_KB") or os.path.join(tmp, "kb")
        stats = json.loads(run(a.bin, "rag", "index", corpus, "-o", kb, "--json", "-q"))
        check("index built", stats["chunks"] > 1000 and not stats["skipped"], f"{stats['files']} files, {stats['chunks']} chunks")
        ref = Bm25(os.path.join(kb, "index.sqlite"))

        # The tokenisation, where an independent one is simple — text without the scripts ICU segments by dictionary
        # (Han, kana, Thai, …) and without format characters: the maximal runs of letters, marks and digits (Unicode
        # categories L, M, N) of the NFKC case-folded text.
        con = sqlite3.connect(os.path.join(kb, "index.sqlite"))
        plain_n, ascii_n, bad = 0, 0, []
        dictionary = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
        for cid, heading, text, terms in con.execute("SELECT id, heading, text, terms FROM chunks"):
            s = heading + "\n" + text
            if dictionary.search(s) or any(unicodedata.category(c) == "Cf" for c in s):
                continue
            plain_n += 1
            ascii_n += s.isascii()
            folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", s).casefold())
            runs = "".join(c if unicodedata.category(c)[0] in "LMN" else " " for c in folded).split()
            if runs != (terms.split(" ") if terms else []):
                bad.append(cid)
        check("words of text without CJK: the letter-and-digit runs of its NFKC case folding", plain_n > 3000 and not bad,
              f"{plain_n} chunks ({ascii_n} ASCII), {len(bad)} differ{': ' + str(bad[:5]) if bad else ''}")

        # Queries: the FAQ's questions, poem lines, mixed Chinese and English, single rare and common words.
        questions = []
        for f in sorted(glob.glob(os.path.join(html_root, "faq", "*.html"))):
            h = Headings()
            h.feed(open(f, encoding="utf-8").read())
            questions += h.out
        english = rnd.sample(questions, 25)
        lines = []
        for name in ("tang300", "song100"):
            for line in open(os.path.join(corpus, "zh", name + ".txt"), encoding="utf-8"):
                line = line.strip()
                if re.fullmatch(r"[\u4e00-\u9fff]{5,7}，[\u4e00-\u9fff]{5,7}。", line):
                    lines.append(line)
        chinese = rnd.sample(lines, 25)
        mixed = ["Debian 贡献者", "Python 的文件", "自由软件 free software", "GNU 项目", "用 Python 读取 file"]
        other = ["the", "of and to", "lambda", "asyncio event loop", "zzzzqqq", "printf"]
        worst, compared = 0.0, 0
        mismatches = []
        for q in english + chinese + mixed + other:
            out = json.loads(run(a.bin, "rag", "query", kb, q, "-k", "10", "--json"))
            want = ref.rank(out["terms"])
            by_id = dict(want)
            hits = out["hits"]
            ok = len(hits) == min(10, len(want))
            for i, h in enumerate(hits):
                for r in (want[i][1], by_id.get(h["chunk"], float("nan"))):
                    err = abs(h["score"] - r) / max(1.0, abs(r))
                    worst = max(worst, err) if err == err else float("inf")
                    ok = ok and err <= 1e-6
                compared += 1
            if not ok:
                mismatches.append(q)
        check("BM25 scores and rankings equal the reference (≤ 1e-6 relative)", not mismatches,
              f"{len(english + chinese + mixed + other)} queries, {compared} ranked chunks, worst {worst:.2e}"
              + (f"; differ: {mismatches[:3]}" if mismatches else ""))

        # The English analyzer, on the English part of the corpus: the terms of each chunk from the plain index's, and BM25.
        kb_en = os.path.join(tmp, "kb-en")
        run(a.bin, "rag", "index", *(os.path.join(corpus, d) for d in ("faq", "tutorial", "howto")), "-o", kb_en, "--analyzer", "english", "-q")
        plain = {(src, ord_): t for src, ord_, t in con.execute("SELECT d.source, c.ord, c.terms FROM chunks c JOIN docs d ON d.id = c.doc_id")}
        stem = PorterStemmer().stem
        con_en = sqlite3.connect(os.path.join(kb_en, "index.sqlite"))
        n_en, bad, stemmed = 0, [], 0
        for src, ord_, terms in con_en.execute("SELECT d.source, c.ord, c.terms FROM chunks c JOIN docs d ON d.id = c.doc_id"):
            n_en += 1
            want = [stem(w) if re.fullmatch(r"[a-z]+", w) else w for w in (plain[(src, ord_)] or "").split() if w not in STOPWORDS]
            stemmed += sum(w != x for w, x in zip(want, (plain[(src, ord_)] or "").split()))
            if want != (terms.split(" ") if terms else []):
                bad.append((src, ord_))
        con_en.close()
        check("english analyzer: each chunk's terms are its words without stopwords, Porter-stemmed as NLTK stems them",
              n_en > 500 and not bad, f"{n_en} chunks, {len(bad)} differ{': ' + str(bad[:3]) if bad else ''}")
        kb_stop = os.path.join(tmp, "kb-stop")
        run(a.bin, "rag", "index", os.path.join(corpus, "faq"), "-o", kb_stop, "--analyzer", "stop", "-q")
        con_stop = sqlite3.connect(os.path.join(kb_stop, "index.sqlite"))
        rows = list(con_stop.execute("SELECT d.source, c.ord, c.terms FROM chunks c JOIN docs d ON d.id = c.doc_id"))
        bad = [(src, o) for src, o, t in rows if [w for w in (plain[(src, o)] or "").split() if w not in STOPWORDS] != (t.split(" ") if t else [])]
        con_stop.close()
        check("stop analyzer: each chunk's terms are its words without stopwords", len(rows) > 50 and not bad, f"{len(rows)} chunks, {len(bad)} differ")
        ref_en = Bm25(os.path.join(kb_en, "index.sqlite"))
        mismatches, compared = [], 0
        for q in english + ["reading files line by line", "What is a lambda?", "printf"]:
            out = json.loads(run(a.bin, "rag", "query", kb_en, q, "-k", "10", "--json"))
            want = ref_en.rank(out["terms"])
            ok = out["analyzer"] == "english" and len(out["hits"]) == min(10, len(want)) and not set(out["terms"]) & STOPWORDS
            for i, h in enumerate(out["hits"]):
                ok = ok and abs(h["score"] - want[i][1]) <= 1e-6 * max(1.0, abs(want[i][1]))
                compared += 1
            if not ok:
                mismatches.append(q)
        check("english analyzer: BM25 scores and rankings equal the reference", not mismatches,
              f"{len(english) + 3} queries, {compared} ranked chunks" + (f"; differ: {mismatches[:3]}" if mismatches else ""))
        same = [json.loads(run(a.bin, "rag", "query", kb_en, q, "--json"))["terms"] for q in ("reading files", "How do I read a file?")]
        only_stop = json.loads(run(a.bin, "rag", "query", kb_en, "what is it", "--json"))
        check("english analyzer: inflections meet, stopwords alone find nothing",
              sorted(same[0]) == sorted(same[1]) == ["file", "read"] and only_stop["hits"] == [] and only_stop["terms"] == [],
              f"{same}, {only_stop['terms']}")

        # Chinese retrieval: the poem line as the query finds the chunk that holds it.
        top1 = top5 = 0
        for q in chinese:
            hits = json.loads(run(a.bin, "rag", "query", kb, q, "-k", "5", "--json"))["hits"]
            ranks = [i for i, h in enumerate(hits) if q in h["text"]]
            top1 += bool(ranks) and ranks[0] == 0
            top5 += bool(ranks)
        check("Chinese: a poem line finds its chunk (top 5 every time, top 1 in ≥ 90 %)", top5 == len(chinese) and top1 >= 0.9 * len(chinese),
              f"top 1: {top1}/{len(chinese)}, top 5: {top5}/{len(chinese)}")
        # Mixed: the Chinese sayings mention Debian; the query in both scripts finds such a chunk first.
        hits = json.loads(run(a.bin, "rag", "query", kb, "Debian 贡献者", "-k", "1", "--json"))["hits"]
        check("mixed Chinese and English query", hits and "Debian" in hits[0]["text"] and "贡献者" in hits[0]["text"],
              hits[0]["text"][:60].replace("\n", " ") if hits else "no hit")
        # A query in a language the index lacks, and one without words: no hits, exit status 0.
        for q in ("Привет мир", "？！。", ""):
            out = json.loads(run(a.bin, "rag", "query", kb, q, "--json"))
            check(f"no hits for {q!r}", out["hits"] == [])
        # rag eval: recall@k, MRR@10 and nDCG@10 recomputed here from `rag query`'s chunk rankings (documents at the rank
        # of their best chunk), on the FAQ evaluation set (scripts/rag_eval_sets.py).
        sets = os.path.join(tmp, "sets")
        subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "rag_eval_sets.py"), sets, "--man-pages", "0"],
                       check=True, capture_output=True)
        faq_kb = os.path.join(tmp, "faq-kb")
        run(a.bin, "rag", "index", os.path.join(sets, "faq", "corpus"), "-o", faq_kb, "-q")
        qa = [json.loads(l) for l in open(os.path.join(sets, "faq", "test.jsonl"), encoding="utf-8")]
        got = json.loads(run(a.bin, "rag", "eval", faq_kb, "--qa", os.path.join(sets, "faq", "test.jsonl"), "-k", "5", "--json", "-q"))["modes"]["bm25"]
        rec, rr, nd = [], [], []
        for q in qa:
            hits = json.loads(run(a.bin, "rag", "query", faq_kb, q["question"], "-k", "80", "--json"))["hits"]
            docs = []
            for h in hits:
                if h["source"] not in docs:
                    docs.append(h["source"])
            ranks = [i + 1 for i, d in enumerate(docs[:10]) if d.endswith("/" + q["gold"])]
            rec.append(sum(r <= 5 for r in ranks))
            rr.append(1 / min(ranks) if ranks else 0.0)
            nd.append(sum(1 / math.log2(r + 1) for r in ranks))  # one gold document: the ideal DCG is 1
        want = {"recall_at_k": sum(rec) / len(qa), "mrr_at_10": sum(rr) / len(qa), "ndcg_at_10": sum(nd) / len(qa)}
        ok = all(abs(got[k]["mean"] - v) < 1e-12 and got[k]["lo"] <= got[k]["mean"] <= got[k]["hi"] and got[k]["hi"] - got[k]["lo"] > 0.01
                 for k, v in want.items())
        check("rag eval: recall@5, MRR@10, nDCG@10 equal a recomputation; the bootstrap intervals hold the means", ok,
              ", ".join(f"{k} {got[k]['mean']:.4f} [{got[k]['lo']:.4f}, {got[k]['hi']:.4f}] (here {v:.4f})" for k, v in want.items()))
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
