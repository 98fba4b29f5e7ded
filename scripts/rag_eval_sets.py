#!/usr/bin/env python3
"""Retrieval evaluation sets from real documents whose structure gives the gold answer, without hand labelling.

FAQ: the Python documentation's FAQ pages (Debian's python3-doc). Each question heading (h2 or h3 ending in '?') is a
query; the answer under it (up to the next question or category heading) is the gold passage. The corpus holds the answers only — the question headings are not
indexed — as one JSONL line each, so a question's gold document is "faq.jsonl#LINE".

The questions are split into a train half and a held-out half by a hash of the question (stable across runs and
machines). Written:
    OUT/faq/corpus/faq.jsonl     {"title": page — section, "text": the answer}
    OUT/faq/train.jsonl          {"question", "gold": "faq.jsonl#N", "answer"}
    OUT/faq/test.jsonl           the same for the held-out half

    scripts/rag_eval_sets.py OUT
"""
import glob
import html.parser
import json
import os
import sys
import zlib


class FaqPage(html.parser.HTMLParser):
    """The question (headings ending in '?') and answer sections of a Sphinx FAQ page's main content."""

    SKIP = {"script", "style", "nav", "footer"}
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
    BLOCK = {"p", "pre", "li", "dt", "dd", "blockquote", "tr", "div", "section"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.sections = []  # [h2 heading, question, [paragraphs]]
        self.h2 = ""
        self.heading = None  # the tag of the heading being read
        self.buf = ""
        self.para = ""
        self.depth = 0      # open elements
        self.skip_at = None  # the depth of the element being skipped (navigation, scripts, …)
        self.in_title = False
        self.headerlink = 0
        self.pre = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in self.VOID:
            self.depth += 1
            if self.skip_at is None and (tag in self.SKIP or a.get("role") in ("navigation", "search")):
                self.skip_at = self.depth
        if tag == "title":
            self.in_title = True
        if tag == "a" and "headerlink" in (a.get("class") or "").split():
            self.headerlink += 1
        if tag in ("h1", "h2", "h3", "h4"):
            self.flush()
            self.heading, self.buf = tag, ""
        elif tag in self.BLOCK:
            self.flush()
        if tag == "pre":
            self.pre += 1

    def handle_endtag(self, tag):
        if tag not in self.VOID:
            if self.skip_at == self.depth:
                self.skip_at = None
            self.depth -= 1
        if tag == "title":
            self.in_title = False
        if tag == "a" and self.headerlink:
            self.headerlink -= 1
        if tag == "pre" and self.pre:
            self.pre -= 1
        if tag == self.heading:
            text = " ".join(self.buf.split())
            if tag in ("h2", "h3") and text.endswith("?"):  # a question (design.html asks them at h2, the others at h3)
                self.sections.append([self.h2, text, []])
            elif tag == "h2":  # a category of questions
                self.h2 = text
                self.sections.append(["", "", []])  # ends the previous answer
            elif tag == "h4" and self.sections:  # a sub-heading inside an answer: part of it
                self.sections[-1][2].append(text)
            self.heading = None
        elif tag in self.BLOCK:
            self.flush()

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        if self.skip_at is not None or self.headerlink:
            return
        if self.heading:
            self.buf += data
        else:
            self.para += data

    def flush(self):
        text = self.para.strip("\n") if self.pre else " ".join(self.para.split())
        if text.strip() and self.sections:
            self.sections[-1][2].append(text)
        self.para = ""


def main():
    out = sys.argv[1]
    dirs = sorted(glob.glob("/usr/share/doc/python3.*/html/faq"))
    pages = sorted(glob.glob(os.path.join(dirs[-1], "*.html"))) if dirs else []
    if not pages:
        sys.exit("the Python documentation is missing: scripts/setup.sh installs python3-doc")
    root = os.path.join(out, "faq")
    os.makedirs(os.path.join(root, "corpus"), exist_ok=True)
    corpus, items = [], []
    for p in pages:
        if os.path.basename(p) == "index.html":
            continue
        page = FaqPage()
        page.feed(open(p, encoding="utf-8").read())
        title = page.title.split("—")[0].strip()
        for h2, question, paras in page.sections:
            answer = "\n\n".join(paras).strip()
            if len(answer) < 40 or not question.endswith("?"):
                continue
            corpus.append({"title": f"{title} — {h2}" if h2 else title, "text": answer})
            items.append({"question": question, "gold": f"faq.jsonl#{len(corpus)}", "answer": answer})
    with open(os.path.join(root, "corpus", "faq.jsonl"), "w", encoding="utf-8") as f:
        for c in corpus:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    halves = {"train": [], "test": []}
    for it in items:
        halves["test" if zlib.crc32(it["question"].encode()) % 2 else "train"].append(it)
    for name, rows in halves.items():
        with open(os.path.join(root, f"{name}.jsonl"), "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"faq: {len(corpus)} answers from {len(pages) - 1} pages; {len(halves['train'])} train and {len(halves['test'])} held-out questions")


if __name__ == "__main__":
    main()
