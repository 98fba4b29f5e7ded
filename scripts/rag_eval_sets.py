#!/usr/bin/env python3
"""Retrieval evaluation sets from real documents whose structure gives the gold answer, without hand labelling.

FAQ: the Python documentation's FAQ pages (Debian's python3-doc). Each question heading (h2 or h3 ending in '?') is a
query; the answer under it (up to the next question or category heading) is the gold passage. The corpus holds the answers only — the question headings are not
indexed — as one JSONL line each, so a question's gold document is "faq.jsonl#LINE".

Man pages: section 1 of the manual pages installed (man-db renders them; every 4th page by name, up to --man-pages).
The page's one-line NAME description is the query ("list directory contents"); the page without its NAME section is
the gold document, one JSONL line each.

The questions are split into a train half and a held-out half by a hash of the question (stable across runs and
machines). Written:
    OUT/faq/corpus/faq.jsonl     {"title": page — section, "text": the answer}
    OUT/faq/train.jsonl          {"question", "gold": "faq.jsonl#N", "answer"}
    OUT/faq/test.jsonl           the same for the held-out half
    OUT/man/corpus/man.jsonl, OUT/man/train.jsonl, OUT/man/test.jsonl    likewise for the man pages

    scripts/rag_eval_sets.py OUT [--man-pages N]     (N: 1500; 0 skips the man pages)
"""
import glob
import re
import shutil
import subprocess
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


def write_split(root, items):
    halves = {"train": [], "test": []}
    for it in items:
        halves["test" if zlib.crc32(it["question"].encode()) % 2 else "train"].append(it)
    for name, rows in halves.items():
        with open(os.path.join(root, f"{name}.jsonl"), "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return halves


def man_set(out, limit):
    """Section 1 man pages rendered as text: the NAME description is the query, the rest of the page the document."""
    pages = sorted(glob.glob("/usr/share/man/man1/*.1.gz"))[::4][:limit]
    if not pages or shutil.which("man") is None:
        print("man: skipped (no man-db or no section-1 pages installed)")
        return
    root = os.path.join(out, "man")
    os.makedirs(os.path.join(root, "corpus"), exist_ok=True)
    corpus, items, seen = [], [], set()
    env = dict(os.environ, MANWIDTH="100", LC_ALL="C.UTF-8")
    for p in pages:
        r = subprocess.run(["man", "--no-hyphenation", "--no-justification", "-l", p], capture_output=True, env=env)
        if r.returncode != 0:
            continue
        text = re.sub(r".\x08", "", r.stdout.decode("utf-8", "replace"))  # overstrike (bold, underline)
        lines = text.split("\n")
        heads = [i for i, l in enumerate(lines) if re.fullmatch(r"[A-Z][A-Z /-]+", l.strip()) and not l.startswith(" ")]
        if not heads or lines[heads[0]].strip() != "NAME" or len(heads) < 2:
            continue
        name = " ".join(l.strip() for l in lines[heads[0] + 1:heads[1]]).strip()
        m = re.match(r"(.+?)\s+[-\u2010\u2212\u2013]\s+(.+)", name)
        if not m or len(m.group(2)) < 12:
            continue
        question = m.group(2).strip()
        body = "\n".join(lines[heads[1]:-2]).strip()  # from the section after NAME; the footer line dropped
        if len(body) < 200 or question.lower() in seen:
            continue
        seen.add(question.lower())
        corpus.append({"title": os.path.basename(p)[:-5], "text": body})
        items.append({"question": question, "gold": f"man.jsonl#{len(corpus)}"})
    with open(os.path.join(root, "corpus", "man.jsonl"), "w", encoding="utf-8") as f:
        for c in corpus:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    halves = write_split(root, items)
    print(f"man: {len(corpus)} pages of {len(pages)} rendered; {len(halves['train'])} train and {len(halves['test'])} held-out questions")


def main():
    out = sys.argv[1]
    man_pages = int(sys.argv[sys.argv.index("--man-pages") + 1]) if "--man-pages" in sys.argv else 1500
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
    halves = write_split(root, items)
    print(f"faq: {len(corpus)} answers from {len(pages) - 1} pages; {len(halves['train'])} train and {len(halves['test'])} held-out questions")
    if man_pages > 0:
        man_set(out, man_pages)


if __name__ == "__main__":
    main()
