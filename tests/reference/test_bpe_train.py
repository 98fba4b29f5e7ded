#!/usr/bin/env python3
"""llmforge's incremental BPE trainer against a plain, independent one that recounts every pair after every merge.

Both use the same rule: merge the most frequent adjacent pair; on a tie, the pair of smaller ids. The text is ASCII
(fortunes) and the pattern one Python's `re` reads exactly as PCRE2 does, so pre-tokens are identical. The merges must
be identical, in order."""
import argparse, json, os, re, subprocess, sys, tempfile
from collections import Counter

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--merges", type=int, default=300)
a = ap.parse_args()

src = "/usr/share/games/fortunes"
text = ""
for name in sorted(os.listdir(src)):
    p = os.path.join(src, name)
    if "." in name or not os.path.isfile(p) or name in ("chinese", "song100", "tang300"):
        continue
    t = open(p, "rb").read().decode("utf-8", "ignore")
    text += "".join(ch for ch in t if ord(ch) < 128)
    if len(text) > 300_000:
        break
text = text[:300_000]
assert len(text) > 100_000, "fortunes not installed?"
pattern = r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+"

# --- the plain trainer
words = Counter(m.group(0) for m in re.finditer(pattern, text))
seqs = {w: tuple(w.encode()) for w in words}
want = []
next_id = 256
for _ in range(a.merges):
    pairs = Counter()
    for w, c in words.items():
        s = seqs[w]
        for i in range(len(s) - 1):
            pairs[(s[i], s[i + 1])] += c
    if not pairs:
        break
    best = max(pairs.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))
    if best[1] < 2:
        break
    (x, y), _ = best
    want.append((x, y))
    for w in words:
        s, out, i = seqs[w], [], 0
        while i < len(s):
            if i + 1 < len(s) and s[i] == x and s[i + 1] == y:
                out.append(next_id); i += 2
            else:
                out.append(s[i]); i += 1
        seqs[w] = tuple(out)
    next_id += 1

# --- llmforge
with tempfile.TemporaryDirectory() as d:
    inp = os.path.join(d, "text.txt")
    open(inp, "w").write(text)
    out = os.path.join(d, "tok.json")
    subprocess.run([a.bin, "tokenizer", "train", "--input", inp, "--vocab-size", str(256 + a.merges), "--pattern", pattern,
                    "--no-default-specials", "-o", out, "-q", "-t", "2"], check=True, stdout=subprocess.DEVNULL)
    tj = json.load(open(out))
vocab = tj["model"]["vocab"]
got = []
for m in tj["model"]["merges"]:
    l, r = m.split(" ")
    got.append((vocab[l], vocab[r]))
ok = got == want
print(f"{len(want)} merges from {len(text)} bytes: {'identical' if ok else 'DIFFERENT'}")
if not ok:
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            print(f"first difference at merge {i}: llmforge {g}, plain {w}")
            break
    sys.exit(1)
