#!/usr/bin/env python3
"""`llmforge rag index` under interruption: kill -9 and SIGINT in the middle of re-indexing leave the previous index
queryable and consistent, and the next run finishes the job.

Corpus: the Python documentation's HTML pages (Debian's python3-doc), version 1; version 2 changes every page (a
paragraph added) and adds and deletes some. Clean indexes of both versions give each file's chunk count. After an
interrupted v1 → v2 run: SQLite's integrity check and FTS5's (the full-text index matches the chunks) pass, every file
in the index has exactly its v1 or its v2 chunks, `rag query` answers; a second run completes and equals the clean v2
index chunk for chunk.

Run: /usr/bin/python3 tests/reference/test_rag_robust.py --bin build/llmforge
"""
import argparse
import glob
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

RESULTS = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


def per_file(db, root):
    """path relative to the corpus root → sorted list of (doc source, chunk text)."""
    con = sqlite3.connect(db)
    out = {}
    for path, source, text in con.execute("SELECT f.path, d.source, c.text FROM files f JOIN docs d ON d.file_id = f.id "
                                          "JOIN chunks c ON c.doc_id = d.id"):
        out.setdefault(os.path.relpath(path, root), []).append((os.path.relpath(source, root), text))
    for v in out.values():
        v.sort()
    con.close()
    return out


def integrity(db):
    con = sqlite3.connect(db)
    ok = con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    try:
        con.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES('integrity-check', 1)")
    except sqlite3.DatabaseError as e:
        ok = False
        print("  FTS5 integrity-check:", e)
    orphans = con.execute("SELECT COUNT(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM docs)").fetchone()[0]
    orphans += con.execute("SELECT COUNT(*) FROM docs WHERE file_id NOT IN (SELECT id FROM files)").fetchone()[0]
    con.close()
    return ok and orphans == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    a = ap.parse_args()
    docs = sorted(glob.glob("/usr/share/doc/python3*/html/library"))
    if not docs:
        print("FAIL the Python documentation is missing: scripts/setup.sh installs python3-doc")
        return 1
    src = docs[-1]
    rnd = random.Random(int(os.environ.get("SEED", "0")) or None)
    with tempfile.TemporaryDirectory() as tmp:
        v1, v2, work = (os.path.join(tmp, d) for d in ("v1", "v2", "work"))
        shutil.copytree(src, v1)
        shutil.copytree(src, v2)
        pages = sorted(glob.glob(os.path.join(v2, "*.html")))
        for p in pages:
            with open(p, encoding="utf-8") as f:
                t = f.read()
            with open(p, "w", encoding="utf-8") as f:
                f.write(t.replace("</h1>", "</h1><p>Revised page: " + os.path.basename(p) + " second edition.</p>", 1))
        for p in pages[:20]:
            os.remove(p)
        for i in range(20):
            with open(os.path.join(v2, f"new{i}.md"), "w") as f:
                f.write(f"# New page {i}\n\nA page added in version two, number {i}.\n")
        clean = {}
        for name, d in (("v1", v1), ("v2", v2)):
            kb = os.path.join(tmp, "clean-" + name)
            # the inputs as positionals, and after --input (the spelling): the runs below compare an index
            # made the first way with v2's made the second
            inputs = [d] if name == "v1" else ["--input", d]
            subprocess.run([a.bin, "rag", "index", *inputs, "-o", kb, "-q"], check=True, capture_output=True)
            clean[name] = per_file(os.path.join(kb, "index.sqlite"), d)
        check("clean indexes differ in every page", sum(clean["v1"].get(k) != v for k, v in clean["v2"].items()) > 200)

        for sig in (signal.SIGKILL, signal.SIGINT, signal.SIGKILL):
            # The index of v1 in place, then re-indexing it as v2, interrupted.
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(v1, work)
            kb = os.path.join(tmp, "kb")
            shutil.rmtree(kb, ignore_errors=True)
            subprocess.run([a.bin, "rag", "index", work, "-o", kb, "-q"], check=True, capture_output=True)
            shutil.rmtree(work)
            shutil.copytree(v2, work)
            p = subprocess.Popen([a.bin, "rag", "index", work, "-o", kb, "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(rnd.uniform(0.3, 1.5) * (3 if os.environ.get("ASAN_OPTIONS") else 1))  # (ASan starts and runs slower)
            p.send_signal(sig)
            _, err = p.communicate()
            name = "kill -9" if sig == signal.SIGKILL else "SIGINT"
            if p.returncode == 0:
                check(f"{name}: the run was interrupted", False, "it finished first")
                continue
            if sig == signal.SIGINT:
                check("SIGINT: exit 1 with one line saying so", p.returncode == 1 and b"interrupted" in err, err.decode().strip()[-120:])
            db = os.path.join(kb, "index.sqlite")
            check(f"{name}: SQLite and FTS5 integrity checks pass", integrity(db))
            got = per_file(db, work)
            mixed = [k for k, v in got.items() if v != clean["v1"].get(k) and v != clean["v2"].get(k)]
            newer = sum(v == clean["v2"].get(k) and v != clean["v1"].get(k) for k, v in got.items())
            check(f"{name}: every file is whole, as v1 or as v2", not mixed,
                  f"{len(got)} files, {newer} already v2" + (f"; torn: {mixed[:3]}" if mixed else ""))
            q = subprocess.run([a.bin, "rag", "query", kb, "regular expression", "--json"], capture_output=True, text=True)
            check(f"{name}: the index answers queries", q.returncode == 0 and len(json.loads(q.stdout)["hits"]) == 5)
            r = subprocess.run([a.bin, "rag", "index", work, "-o", kb, "--json", "-q"], capture_output=True, text=True)
            stats = json.loads(r.stdout) if r.returncode == 0 else {}
            check(f"{name}: the next run completes and equals a clean index of v2", r.returncode == 0 and per_file(db, work) == clean["v2"],
                  f"{stats.get('changed')} changed, {stats.get('unchanged')} unchanged, {stats.get('added')} added, {stats.get('removed')} removed")
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
