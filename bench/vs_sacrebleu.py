#!/usr/bin/python3
"""llmforge bleu against sacreBLEU itself: the same scores (to 1e-9) and the time each takes, on real text.

sacreBLEU is not a Debian package, so it is not a dependency of llmforge; this script runs it from a source
checkout you point it at (e.g. the snapshot of github.com/mjpost/sacrebleu), with Debian's python3-regex.

  bench/vs_sacrebleu.py --bin build/llmforge --sacrebleu /path/to/sacrebleu-checkout [--lines 20000]

The text: lines of Debian's fortunes (English) and fortunes-zh (Chinese), as references; the hypotheses are seeded
perturbations of them (words dropped, swapped, replaced, case changed), a second reference another perturbation.
Every metric and option combination below is scored by both; corpus scores must agree to 1e-9 and so must the
sentence-level scores of the first 300 lines. Timings: wall-clock of the CLI run vs sacreBLEU's API call (both
single-threaded, input already on disk / in memory).
"""
import argparse
import glob
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time


ZH_FILES = ("chinese", "song100", "tang300")  # the files of Debian's fortunes-zh


def fortunes(chinese, limit):
    lines = []
    for path in sorted(glob.glob("/usr/share/games/fortunes/*")):
        base = os.path.basename(path)
        if path.endswith(".dat") or os.path.isdir(path) or (base in ZH_FILES) != chinese:
            continue
        try:
            text = open(path, encoding="utf-8").read()
        except UnicodeDecodeError:
            continue
        for para in text.split("\n%\n"):
            line = " ".join(para.split())
            if "\x1b" in line:  # terminal escapes in some Chinese fortunes
                continue
            if (chinese and len(line) >= 4) or (not chinese and 3 <= len(line.split()) <= 60):
                lines.append(line)
    random.Random(1).shuffle(lines)
    return lines[:limit]


def perturb(rng, line):
    words = line.split()
    vocab = ["the", "a", "of", "and", "to", "is", "in", "it", "that", "was", "\u201cquoted\u201d", "3.14", "well-known", "—"]
    out = []
    for w in words:
        r = rng.random()
        if r < 0.08:
            continue
        if r < 0.16:
            out.append(rng.choice(vocab))
        elif r < 0.2:
            out.append(w.upper())
        else:
            out.append(w)
    if len(out) > 3 and rng.random() < 0.5:
        i = rng.randrange(len(out) - 2)
        out[i], out[i + 1] = out[i + 1], out[i]
    if len(out) > 6 and rng.random() < 0.3:  # a block moved (exercises TER's shifts)
        i = rng.randrange(len(out) - 4)
        block = out[i:i + 3]
        del out[i:i + 3]
        j = rng.randrange(len(out) + 1)
        out[j:j] = block
    return " ".join(out)


def perturb_zh(rng, line):
    chars = list(line)
    out = [c for c in chars if rng.random() > 0.1]
    if len(out) > 4:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    return "".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sacrebleu", required=True, help="a checkout of github.com/mjpost/sacrebleu")
    ap.add_argument("--lines", type=int, default=20000)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="vs_sacrebleu_")
    # sacreBLEU's source, importable without its optional extras (portalocker, colorama, tabulate, lxml)
    src = os.path.join(work, "src")
    shutil.copytree(os.path.join(args.sacrebleu, "sacrebleu"), os.path.join(src, "sacrebleu"))
    if not os.path.exists(os.path.join(src, "sacrebleu", "version.py")):
        open(os.path.join(src, "sacrebleu", "version.py"), "w").write('__version__ = "2.6.0"\n')
    stubs = {"portalocker.py": "", "colorama.py": "class Fore: pass\nclass Style: pass\n", "tabulate.py": "def tabulate(*a, **k): pass\n",
             "lxml/__init__.py": "", "lxml/etree.py": ""}
    for name, body in stubs.items():
        os.makedirs(os.path.dirname(os.path.join(src, name)), exist_ok=True)
        open(os.path.join(src, name), "w").write(body)
    sys.path.insert(0, src)
    from sacrebleu.metrics import BLEU, CHRF, TER  # noqa: E402

    rng = random.Random(7)
    en = fortunes(False, args.lines)
    zh = fortunes(True, args.lines // 4)
    sets = {
        "en": (en, [perturb(rng, l) for l in en], [perturb(rng, l) for l in en]),
        "zh": (zh, [perturb_zh(rng, l) for l in zh], [perturb_zh(rng, l) for l in zh]),
    }
    paths = {}
    for name, (ref, hyp, ref2) in sets.items():
        for kind, lines in (("ref", ref), ("hyp", hyp), ("ref2", ref2)):
            p = os.path.join(work, f"{name}.{kind}")
            open(p, "w", encoding="utf-8").write("\n".join(lines) + "\n")
            paths[(name, kind)] = p

    combos = [
        ("en", "bleu", [], lambda: BLEU()),
        ("en", "bleu", ["--tokenize", "intl"], lambda: BLEU(tokenize="intl")),
        ("en", "bleu", ["--tokenize", "char", "--lowercase"], lambda: BLEU(tokenize="char", lowercase=True)),
        ("en", "bleu", ["--tokenize", "none", "--smooth", "floor"], lambda: BLEU(tokenize="none", smooth_method="floor")),
        ("en", "bleu", ["--smooth", "add-k", "--smooth-value", "2"], lambda: BLEU(smooth_method="add-k", smooth_value=2)),
        ("zh", "bleu", ["--tokenize", "zh"], lambda: BLEU(tokenize="zh")),
        ("en", "chrf", [], lambda: CHRF()),
        ("en", "chrf", ["--chrf-word-order", "2"], lambda: CHRF(word_order=2)),
        ("en", "chrf", ["--chrf-whitespace", "--chrf-lowercase", "--chrf-eps-smoothing"], lambda: CHRF(whitespace=True, lowercase=True, eps_smoothing=True)),
        ("zh", "chrf", [], lambda: CHRF()),
        ("en", "ter", [], lambda: TER()),
        ("en", "ter", ["--ter-normalized", "--ter-case-sensitive"], lambda: TER(normalized=True, case_sensitive=True)),
        ("en", "ter", ["--ter-no-punct"], lambda: TER(no_punct=True)),
        ("zh", "ter", ["--ter-normalized", "--ter-asian-support"], lambda: TER(normalized=True, asian_support=True)),
    ]
    ok = True
    rows = []
    for name, metric, flags, make in combos:
        ref, hyp, ref2 = sets[name]
        for nrefs in (1, 2):
            refs = [ref] if nrefs == 1 else [ref, ref2]
            ref_args = ["--ref", paths[(name, "ref")]] + (["--ref", paths[(name, "ref2")]] if nrefs == 2 else [])
            cmd = [args.bin, "bleu", "--hyp", paths[(name, "hyp")], *ref_args, "-m", metric, "--json", "-w", "6", *flags]
            t0 = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True)
            t_ours = time.perf_counter() - t0
            if out.returncode != 0:
                print("FAIL", cmd, out.stderr)
                ok = False
                continue
            ours = json.loads(out.stdout)
            m = make()
            t0 = time.perf_counter()
            theirs = m.corpus_score(hyp, refs)
            t_theirs = time.perf_counter() - t0
            sig = m.get_signature().format()
            same = abs(ours["score"] - round(theirs.score, 6)) <= 1e-9 and ours["signature"] == sig
            # sentence level, first 300 lines, exact
            n_sent = min(300, len(hyp))
            cmd_s = [args.bin, "bleu", "--hyp", "-", *ref_args, "-m", metric, "--json", "-w", "9", "--sentence-level", *flags]
            # feed the first n_sent hypotheses on stdin; references must have as many lines, so cut them too
            tmp_refs = []
            for k, r in enumerate(refs):
                p = os.path.join(work, f"cut{k}")
                open(p, "w", encoding="utf-8").write("\n".join(r[:n_sent]) + "\n")
                tmp_refs += ["--ref", p]
            cmd_s = [args.bin, "bleu", "--hyp", "-", *tmp_refs, "-m", metric, "--json", "-w", "9", "--sentence-level", *flags]
            out_s = subprocess.run(cmd_s, input="\n".join(hyp[:n_sent]) + "\n", capture_output=True, text=True)
            ours_s = json.loads(out_s.stdout) if out_s.returncode == 0 else []
            if metric == "bleu":
                ms = make()
                ms.effective_order = True
            else:
                ms = make()
            worst = 0.0
            for i, o in enumerate(ours_s if isinstance(ours_s, list) else [ours_s]):
                t = ms.sentence_score(hyp[i], [r[i] for r in refs]).score
                worst = max(worst, abs(o["score"] - round(t, 9)))
            same = same and out_s.returncode == 0 and len(ours_s) == n_sent and worst <= 1e-9
            ok = ok and same
            rows.append((name, metric, " ".join(flags) or "(defaults)", nrefs, ours["score"], theirs.score, worst, t_ours, t_theirs, same))
    print(f"{len(en)} English and {len(zh)} Chinese segments (Debian fortunes / fortunes-zh)")
    print("| text | metric | options | refs | llmforge | sacreBLEU | sentence max |Δ| | llmforge s | sacreBLEU s | speed-up | same |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.6f} | {r[5]:.6f} | {r[6]:.1e} | {r[7]:.2f} | {r[8]:.2f} | {r[8] / r[7]:.1f}x | {'yes' if r[9] else 'NO'} |")
    shutil.rmtree(work)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
