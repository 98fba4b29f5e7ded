#!/usr/bin/env python3
"""llmforge's GBNF engine against llama.cpp's: every grammar in the llama.cpp snapshot's grammars/ must parse, and on
texts near each grammar's edge (our own seed texts and seeded random edits of them: characters deleted, inserted,
replaced, the text cut short) `llmforge grammar FILE -f TEXT` must give llama-gbnf-validator's verdict every time.

  LLAMA_CPP_SRC=/path/to/llama.cpp LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin tests/anchor/llamacpp_grammars.py

llama.cpp is an anchor built outside the project from the public snapshot ggerganov/llama.cpp (c392e50, target
llama-gbnf-validator); nothing of it enters the project. Not part of the default test suite (CI has no llama.cpp).
"""
import glob
import os
import random
import subprocess
import sys
import tempfile

SRC = os.environ.get("LLAMA_CPP_SRC") or sys.exit("set LLAMA_CPP_SRC to the llama.cpp snapshot")
LBIN = os.environ.get("LLAMA_CPP_BIN") or sys.exit("set LLAMA_CPP_BIN to llama.cpp's build/bin")
BIN = os.environ.get("LLMFORGE_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "llmforge"))
EDITS = int(os.environ.get("EDITS", "40"))

# Seed texts (ours): valid sentences of each grammar, and near misses.
SEEDS = {
    "arithmetic": ["1+2=3\n", "(a + b)*c= 10\n", "x=y\nz_1=(4/2)\n", "1+=2\n"],
    "c": ["int main(){return 0;}", "float f(int x){while(x<10){x=x+1;}return x;}", "char c(){ /* a */ c(1, 2); }"],
    "chess": ["1. e4 e5\n2. Nf3 Nc6\n", "1. d4 Nf6\n2. c4 e6\n3. Nc3 Bb4+\n", "1. e4 e5\n2. O-O O-O-O\n"],
    "english": ["Hello, world! 42 times.", "It's (almost) done: yes.\nNext line", "two  spaces"],
    "japanese": ["こんにちは 世界。", "カタカナ、ひらがな", "日本語 text"],
    "json": ['{"a": [1, 2.5e3, true, null], "b": {"c": "d\\n\\u00e9"}}', '{"x": -0.5, "y": []}', '["only", "an", "array"]'],
    "json_arr": ['[\n{"x": 1},\n"y"]', '[\n1,\n2\n]', '[]'],
    "list": ["- one\n- two\n", "- a b c\n", "- x\n-y\n"],
}
POOL = list(" \n\t\"{}[](),.:;-+*/=0123456789abcxyzNOBKQR#_\\éこ一ア、")


def edits(seed, rng):
    out = [seed, seed[:0]]
    for _ in range(EDITS):
        s = list(seed)
        kind = rng.randrange(4)
        i = rng.randrange(len(s) + 1)
        if kind == 0 and s:
            del s[min(i, len(s) - 1)]
        elif kind == 1:
            s.insert(i, rng.choice(POOL))
        elif kind == 2 and s:
            s[min(i, len(s) - 1)] = rng.choice(POOL)
        else:
            s = s[:i]
        out.append("".join(s))
    return out


def main():
    rng = random.Random(7)
    files = sorted(glob.glob(os.path.join(SRC, "grammars", "*.gbnf")))
    if not files:
        sys.exit(f"no grammars in {SRC}/grammars")
    failed = total = valid = 0
    with tempfile.TemporaryDirectory() as tmp:
        text_path = os.path.join(tmp, "text.txt")
        for f in files:
            name = os.path.splitext(os.path.basename(f))[0]
            r = subprocess.run([BIN, "grammar", f], capture_output=True, text=True, errors="replace")
            if r.returncode != 0:
                print(f"FAIL {name}: does not parse: {r.stderr.strip()}")
                failed += 1
                continue
            texts = []
            for seed in SEEDS.get(name, ["a"]):
                texts += edits(seed, rng)
            agree = 0
            for t in dict.fromkeys(texts):
                with open(text_path, "w", encoding="utf-8") as fh:
                    fh.write(t)
                theirs = subprocess.run([os.path.join(LBIN, "llama-gbnf-validator"), f, text_path], capture_output=True, text=True, errors="replace")
                if "Input string is valid" in theirs.stdout:
                    their = True
                elif "Input string is invalid" in theirs.stdout:
                    their = False
                else:
                    print(f"FAIL {name}: llama-gbnf-validator said neither: {theirs.stdout[:200]!r} {theirs.stderr[-200:]!r}")
                    failed += 1
                    continue
                ours = subprocess.run([BIN, "grammar", f, "-f", text_path], capture_output=True, text=True, errors="replace")
                if ours.returncode not in (0, 1):
                    print(f"FAIL {name}: llmforge exit {ours.returncode}: {ours.stderr.strip()}")
                    failed += 1
                    continue
                total += 1
                valid += their
                if (ours.returncode == 0) != their:
                    failed += 1
                    print(f"FAIL {name}: {t!r}: llama.cpp says {'valid' if their else 'invalid'}, llmforge {ours.stderr.strip() or 'valid'}")
                else:
                    agree += 1
            print(f"{name}: parses; same verdict on {agree} texts")
    print(f"{len(files)} grammars, {total} texts ({valid} valid by llama.cpp), {failed} failures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
