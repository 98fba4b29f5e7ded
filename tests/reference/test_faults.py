#!/usr/bin/env python3
"""Storage under faults: a full disk (ENOSPC) and kill -9 at random points while llmforge writes a pre-training
checkpoint, a quantised model and a converted model, while `rag index` updates its SQLite database and while the
server stores arena votes; and a read-only output directory. A full disk comes from tests/fault/enospc_shim.c (LD_PRELOAD:
writes under one directory fail with ENOSPC after a random number of bytes). After each fault the previous state must
be intact — the checkpoint's run resumes and gives the uninterrupted run's loss at every step, bit for bit; an output
file is its old bytes or its new bytes, never anything else — the error must be one line naming the path and the
cause, and, once the command has run again, no temporary file may be left.

Run: /usr/bin/python3 tests/reference/test_faults.py --bin build/llmforge [--trials 20 (5 under ASan)]
"""
import argparse
import glob
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.request
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fortunes  # noqa: E402
from serve_util import Served  # noqa: E402

RESULTS = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def losses(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return {j["step"]: j["loss"] for j in map(json.loads, f)}


def temporaries(root):
    return [p for p in glob.glob(os.path.join(root, "**", "*"), recursive=True) if ".tmp" in os.path.basename(p)]


def kill_after(cmd, seconds, env=None):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    time.sleep(seconds)
    p.send_signal(signal.SIGKILL)
    p.wait()
    return p.returncode


def arena_votes(directory):
    """(integrity ok, the set of battles voted) of the arena database in `directory`."""
    db = sqlite3.connect(os.path.join(directory, "arena.db"))
    try:
        ok = db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return ok, {r[0] for r in db.execute("SELECT battle FROM votes")}
    finally:
        db.close()


class Server(Served):
    """`llmforge serve` with two models and an arena database in `directory`; url is None if it did not start."""

    def __init__(self, bin_, models, directory, env=None):
        args = ["--no-access-log", "-t", "1", "--arena-db", os.path.join(directory, "arena.db")]
        for m in models:
            args += ["-m", m]
        super().__init__(bin_, args, env)

    def vote_on(self, battle):
        status, text = self.post("/arena/api/vote", {"battle": battle, "winner": "a"})
        try:
            return status, json.loads(text)
        except ValueError:
            return status, {}

    def vote(self):
        """A battle (to its end), then a vote on it: (status, battle id, answer body)."""
        status, text = self.post("/arena/api/battle", {"prompt": "Say something.", "max_tokens": 3})
        m = re.search(r'"battle":"([^"]+)"', text)
        if status != 200 or not m:
            return status, None, {"battle": text[-200:]}
        s2, body = self.vote_on(m.group(1))
        return s2, m.group(1), body

    def healthy(self):
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=10) as r:
                return r.status == 200
        except OSError:
            return False

    def kill_during_votes(self, seconds, acked, attempted):
        """Votes in a loop; kill -9 after `seconds`; fills `acked` (answered 200) and `attempted` (sent)."""
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                try:
                    status, text = self.post("/arena/api/battle", {"prompt": "Say something.", "max_tokens": 3}, timeout=10)
                    m = re.search(r'"battle":"([^"]+)"', text)
                    if status != 200 or not m:
                        continue
                    attempted.add(m.group(1))
                    if self.vote_on(m.group(1))[0] == 200:
                        acked.add(m.group(1))
                except Exception:  # the server was killed mid-answer (connection refused, reset, cut short)
                    return

        t = threading.Thread(target=loop)
        t.start()
        time.sleep(seconds)
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()
        stop.set()
        t.join()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    # 20 random points per fault and command; under AddressSanitizer (about 5x slower: scripts/test.sh --sanitize) 5,
    # the same paths in a quarter of the time
    ap.add_argument("--trials", type=int, default=5 if os.environ.get("ASAN_OPTIONS") else 20)
    a = ap.parse_args()
    bin_, N = os.path.abspath(a.bin), a.trials
    rng = random.Random(2026)
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        shim = os.path.join(tmp, "enospc.so")
        subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", shim, os.path.join(here, "..", "fault", "enospc_shim.c"), "-ldl"], check=True)

        def full_disk(directory, after):
            env = dict(os.environ)
            env.update({"LD_PRELOAD": shim, "FAULT_DIR": os.path.realpath(directory), "FAULT_ENOSPC_AFTER": str(after)})
            if env.get("ASAN_OPTIONS"):  # an ASan build: the shim is preloaded ahead of ASan's runtime, on purpose
                env["ASAN_OPTIONS"] += ":verify_asan_link_order=0"
            return env

        # ---- data and a run to start from
        text, tok, data = fortunes.tokenizer_and_data(bin_, tmp, 400, ("fortunes", "literature", "science", "wisdom"))
        train = [bin_, "pretrain", "--preset", "llama-tiny", "--layers", "2", "--d-model", "64", "--heads", "4", "--kv-heads", "2", "--d-ff", "128",
                 "--data", data, "-b", "4", "--seq-len", "32", "--lr", "3e-3", "--warmup", "2", "--eval-every", "1000", "-t", "2", "-q"]
        start = os.path.join(tmp, "start")
        subprocess.run(train + ["--steps", "4", "--save-every", "2", "-o", start], check=True, capture_output=True)
        ref = os.path.join(tmp, "ref")
        shutil.copytree(start, ref)
        subprocess.run(train + ["--steps", "12", "--save-every", "2", "-o", ref, "--resume"], check=True, capture_output=True)
        want = losses(ref)
        ck_bytes = sum(os.path.getsize(p) for p in glob.glob(os.path.join(start, "checkpoint", "*")))

        def recovers(run):
            """Resumes without faults to step 12: the uninterrupted run's loss at every step; no temporaries left."""
            r = subprocess.run(train + ["--steps", "12", "--save-every", "2", "-o", run, "--resume"], capture_output=True, text=True)
            got = losses(run) if r.returncode == 0 else {}
            same = all(repr(got.get(s)) == repr(want[s]) for s in want)
            left = temporaries(run)
            return r.returncode == 0 and same and not left, f"exit {r.returncode}, same losses {same}, temporaries {left}: {r.stderr[-200:]}"

        # ---- pretrain checkpoints under a full disk
        bad, msgs = [], set()
        for i in range(N):
            run = os.path.join(tmp, f"enospc-{i}")
            shutil.copytree(start, run)
            after = rng.randrange(0, 3 * ck_bytes)
            r = subprocess.run(train + ["--steps", "12", "--save-every", "2", "-o", run, "--resume"], capture_output=True, text=True,
                               env=full_disk(run, after))
            err = r.stderr.strip().splitlines()
            if r.returncode != 0:
                errs = [l for l in err if l.startswith("llmforge: error: ")]
                if not (len(errs) == 1 and errs[0] == err[-1] and "No space left on device" in errs[0] and run in errs[0]):
                    bad.append((i, after, "error: " + " | ".join(err)[-300:]))
                msgs.add(err[-1].split(": ")[2][:60] if err and err[-1].count(": ") >= 2 else "")
            left = temporaries(run)
            if left:
                bad.append((i, after, f"temporaries after the failure: {left}"))
            ok, detail = recovers(run)
            if not ok:
                bad.append((i, after, "recovery: " + detail))
        check(f"pretrain under a full disk at {N} random points: one-line error naming the path and ENOSPC, no temporaries, the last "
              "checkpoint resumes to the uninterrupted run's losses bit for bit", not bad, str(bad[:2]) if bad else f"{len(msgs)} kinds of message")

        # ---- pretrain killed (-9) at random moments while it checkpoints every step
        t0 = time.monotonic()
        probe = os.path.join(tmp, "probe")
        shutil.copytree(start, probe)
        subprocess.run(train + ["--steps", "12", "--save-every", "1", "-o", probe, "--resume"], check=True, capture_output=True)
        span = time.monotonic() - t0
        bad = []
        for i in range(N):
            run = os.path.join(tmp, f"kill-{i}")
            shutil.copytree(start, run)
            kill_after(train + ["--steps", "12", "--save-every", "1", "-o", run, "--resume"], rng.uniform(0.05, span))
            ok, detail = recovers(run)
            if not ok:
                bad.append((i, detail))
        check(f"pretrain killed -9 at {N} random moments (checkpointing every step): the last checkpoint resumes to the uninterrupted run's "
              "losses bit for bit; the resumed run leaves no temporaries", not bad, str(bad[:2]) if bad else f"over {span:.1f} s")

        # ---- quantize and convert: the output is its old bytes or its new bytes, never a part
        src = os.path.join(tmp, "src.gguf")
        subprocess.run([bin_, "init", "--preset", "llama-small", "-o", src], check=True, capture_output=True)  # 24M parameters
        for what, make_old, make_new in (
                ("quantize", lambda out: [bin_, "quantize", src, out, "Q4_0"], lambda out: [bin_, "quantize", src, out, "Q8_0"]),
                ("convert", lambda out: [bin_, "convert", src, out, "--dtype", "bf16"], lambda out: [bin_, "convert", src, out, "--dtype", "f16"])):
            outdir = os.path.join(tmp, what)
            os.makedirs(outdir)
            out = os.path.join(outdir, "model.gguf")
            subprocess.run(make_new(out), check=True, capture_output=True)
            new_hash, new_size = sha(out), os.path.getsize(out)
            t0 = time.monotonic()
            subprocess.run(make_old(out), check=True, capture_output=True)
            span = time.monotonic() - t0
            old_hash = sha(out)
            bad = []
            for i in range(N):
                after = rng.randrange(0, new_size)
                r = subprocess.run(make_new(out), capture_output=True, text=True, env=full_disk(outdir, after))
                err = r.stderr.strip().splitlines()
                if r.returncode == 0 or not (err and "No space left on device" in err[-1] and out in err[-1]):
                    bad.append((i, after, "exit %d: %s" % (r.returncode, err[-1][-160:] if err else "")))
                if sha(out) != old_hash:
                    bad.append((i, after, "the old output changed"))
                if temporaries(outdir):
                    bad.append((i, after, f"temporaries {temporaries(outdir)}"))
            check(f"{what} under a full disk at {N} random points: one-line error naming the output and ENOSPC; the old output intact; no "
                  "temporaries", not bad, str(bad[:2]) if bad else f"{new_size} bytes to write")
            bad, seen = [], set()
            for i in range(N):
                subprocess.run(make_old(out), check=True, capture_output=True)
                kill_after(make_new(out), rng.uniform(0.0, span * 1.2))
                h = sha(out)
                seen.add("old" if h == old_hash else "new" if h == new_hash else "other")
                if h not in (old_hash, new_hash):
                    bad.append((i, "the output is neither the old nor the new file"))
                r = subprocess.run(make_new(out), capture_output=True, text=True)  # run again: it completes, and cleans up
                if r.returncode != 0 or sha(out) != new_hash or temporaries(outdir):
                    bad.append((i, f"rerun: exit {r.returncode}, temporaries {temporaries(outdir)}"))
            check(f"{what} killed -9 at {N} random moments: the output is always the whole old or the whole new file; run again, it completes "
                  "and no temporaries are left", not bad, str(bad[:2]) if bad else f"seen: {sorted(seen)}")

        # ---- rag index (SQLite): brought up to date under a full disk or killed at random points; the index always
        # opens, passes SQLite's integrity check and answers; run again, it equals an index built without faults
        corpus_a, corpus_b = os.path.join(tmp, "corpus-a"), os.path.join(tmp, "corpus-b")
        os.makedirs(corpus_a)
        paras = [p.strip() for p in open(text, encoding="utf-8", errors="replace").read().split("\n\n") if len(p.strip()) > 80]
        for k in range(30):
            with open(os.path.join(corpus_a, f"doc{k}.txt"), "w") as f:
                f.write("\n\n".join(paras[k * 40:(k + 1) * 40]))
        shutil.copytree(corpus_a, corpus_b)
        for k in range(30, 40):
            with open(os.path.join(corpus_b, f"doc{k}.txt"), "w") as f:
                f.write("\n\n".join(paras[k * 40:(k + 1) * 40]))
        for k in range(5):
            with open(os.path.join(corpus_b, f"doc{k}.txt"), "a") as f:
                f.write("\n\nAn added paragraph about the sea, the wind and the sailing ships of old.\n")
        base = os.path.join(tmp, "kb-base")
        subprocess.run([bin_, "rag", "index", corpus_a, "-o", base, "-q"], check=True, capture_output=True)
        queries = ["the sea and the wind", "love and money", "a computer program"]

        def answers(kb):
            out = []
            for q in queries:
                r = subprocess.run([bin_, "rag", "query", kb, q, "-k", "20", "--json"], capture_output=True, text=True)
                if r.returncode != 0:
                    return None
                out.append([(h["source"].split("/")[-1], round(h["score"], 6)) for h in json.loads(r.stdout)["hits"]])
            return out

        def intact(kb):
            db = sqlite3.connect(os.path.join(kb, "index.sqlite"))
            try:
                return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            finally:
                db.close()

        clean = os.path.join(tmp, "kb-clean")
        shutil.copytree(base, clean)
        t0 = time.monotonic()
        subprocess.run([bin_, "rag", "index", corpus_b, "-o", clean, "-q"], check=True, capture_output=True)
        span = time.monotonic() - t0
        want_kb = answers(clean)
        grow = max(1, os.path.getsize(os.path.join(clean, "index.sqlite")) - os.path.getsize(os.path.join(base, "index.sqlite")))
        for mode in ("full disk", "kill -9"):
            bad, failed = [], 0
            for i in range(N):
                kb = os.path.join(tmp, f"kb-{mode[0]}-{i}")
                shutil.copytree(base, kb)
                if mode == "full disk":
                    r = subprocess.run([bin_, "rag", "index", corpus_b, "-o", kb, "-q"], capture_output=True, text=True,
                                       env=full_disk(kb, rng.randrange(0, grow)))
                    err = [l for l in r.stderr.strip().splitlines() if l.startswith("llmforge: error: ")]
                    if r.returncode != 0:
                        failed += 1
                        if not (len(err) == 1 and ("full" in err[0] or "No space" in err[0]) and kb in err[0]):
                            bad.append((i, "error: " + r.stderr.strip()[-200:]))
                else:
                    kill_after([bin_, "rag", "index", corpus_b, "-o", kb, "-q"], rng.uniform(0.0, span * 1.2))
                if not intact(kb) or answers(kb) is None:
                    bad.append((i, "the index does not open, fails its integrity check or does not answer"))
                r = subprocess.run([bin_, "rag", "index", corpus_b, "-o", kb, "-q"], capture_output=True, text=True)
                if r.returncode != 0 or answers(kb) != want_kb or temporaries(kb):
                    bad.append((i, f"rerun: exit {r.returncode}, same answers {answers(kb) == want_kb}, temporaries {temporaries(kb)}"))
            check(f"rag index under {mode} at {N} random points: the index stays intact and answers; run again, it answers as one built "
                  "without faults, no temporaries", not bad, str(bad[:2]) if bad else (f"{failed} of {N} runs stopped by the full disk"
                                                                                       if mode == "full disk" else f"over {span:.2f} s"))

        # ---- rag index's dense graph (hnswlib's file): a full disk while it is written is an error, not a short file
        emb = os.path.join(tmp, "emb.gguf")
        subprocess.run([bin_, "init", "--preset", "bert-tiny", "-o", emb], check=True, capture_output=True)
        kb = os.path.join(tmp, "kb-dense")
        subprocess.run([bin_, "rag", "index", corpus_a, "-o", kb, "--embed-model", emb, "-q"], check=True, capture_output=True)
        graphs = sorted(glob.glob(os.path.join(kb, "dense-*.hnsw")))
        env = full_disk(os.path.join(kb, "dense-"), 1000)  # only the graph files: the database writes go through
        r = subprocess.run([bin_, "rag", "index", corpus_b, "-o", kb, "--embed-model", emb, "-q"], capture_output=True, text=True, env=env)
        err = [l for l in r.stderr.strip().splitlines() if l.startswith("llmforge: error: ")]
        bm = subprocess.run([bin_, "rag", "query", kb, queries[0], "--json"], capture_output=True, text=True)
        same_graph = sorted(glob.glob(os.path.join(kb, "dense-*.hnsw"))) == graphs and all(sha(g) for g in graphs)
        r2 = subprocess.run([bin_, "rag", "index", corpus_b, "-o", kb, "--embed-model", emb, "-q"], capture_output=True, text=True)
        de = subprocess.run([bin_, "rag", "query", kb, queries[0], "--mode", "dense", "--json"], capture_output=True, text=True)
        check("rag index --embed-model under a full disk while the graph file is written: one line naming it; the previous graph kept, BM25 "
              "answers; run again, dense search answers and no temporaries", r.returncode != 0 and len(err) == 1 and "dense-" in err[0]
              and "were written" in err[0] and same_graph and bm.returncode == 0 and r2.returncode == 0 and de.returncode == 0
              and json.loads(de.stdout or "{}").get("hits") and not temporaries(kb),
              f"{err[0] if err else r.stderr[-200:]}; graph kept {same_graph}, BM25 exit {bm.returncode}, rerun exit {r2.returncode} "
              f"{r2.stderr[-150:]}, dense exit {de.returncode} {de.stdout[:120]} {de.stderr[-150:]}, temporaries {temporaries(kb)}")

        # ---- arena voting: the server's SQLite database under a full disk and kill -9
        models = [os.path.join(tmp, f"arena-{k}.gguf") for k in "ab"]
        for k, m in enumerate(models):
            subprocess.run([bin_, "init", "--preset", "llama-tiny", "--seed", str(k + 1), "-o", m], check=True, capture_output=True)
        base = os.path.join(tmp, "arena-base")
        os.makedirs(base)
        srv = Server(bin_, models, base)
        base_votes = {srv.vote()[1] for _ in range(4)}
        srv.stop()
        for mode in ("full disk", "kill -9"):
            bad, refused, acked_all = [], 0, 0
            for i in range(N):
                d = os.path.join(tmp, f"arena-{mode[0]}-{i}")
                shutil.copytree(base, d)
                acked, attempted = set(), set()
                if mode == "full disk":
                    srv = Server(bin_, models, d, env=full_disk(d, rng.randrange(0, 60000)))
                    if srv.url is None:  # the full disk stopped the start: one line naming the database
                        err = [l for l in srv.err.splitlines() if l.startswith("llmforge: error: ")]
                        if not (len(err) == 1 and d in err[0] and ("full" in err[0] or "No space" in err[0])):
                            bad.append((i, "start: " + srv.err[-200:]))
                    else:
                        retry = None
                        for _ in range(6):
                            status, battle, body = srv.vote()
                            attempted.add(battle)
                            if status == 200:
                                acked.add(battle)
                            elif status == 503 and body.get("error", {}).get("code") == "vote_not_stored":
                                refused += 1
                                retry = retry or battle
                            else:
                                bad.append((i, f"vote answered {status} {body}"))
                        if retry and srv.vote_on(retry)[0] != 503:  # still refused (the disk is still full), not "already voted"
                            bad.append((i, "a refused vote could not be sent again"))
                        if not srv.healthy():
                            bad.append((i, "the server stopped answering"))
                        if retry and "database or disk is full" not in srv.log():
                            bad.append((i, "the refusal is not logged with its cause: " + srv.log()[-200:]))
                        srv.stop()
                else:
                    srv = Server(bin_, models, d)
                    srv.kill_during_votes(rng.uniform(0.1, 2.0), acked, attempted)
                ok, votes = arena_votes(d)
                if not ok or not (base_votes | acked) <= votes <= (base_votes | attempted):
                    bad.append((i, f"integrity {ok}; {len(votes)} votes, {len(base_votes)} before + {len(acked)} acknowledged of {len(attempted)}"))
                srv = Server(bin_, models, d)  # restarted without faults: it opens the database and takes a vote
                status, battle, _ = srv.vote() if srv.url else (0, None, None)
                srv.stop()
                ok2, votes2 = arena_votes(d)
                if status != 200 or not ok2 or votes2 != votes | {battle} or temporaries(d) or glob.glob(os.path.join(d, "*-journal")):
                    bad.append((i, f"restart: vote {status}, integrity {ok2}, temporaries {temporaries(d)}: {srv.err[-200:]}"))
                acked_all += len(acked)
            check(f"arena voting under {mode} at {N} random points: the database passes its integrity check and holds every vote "
                  "acknowledged (and none refused); refused votes are 503 vote_not_stored and can be sent again; restarted, the server takes "
                  "votes", not bad, str(bad[:2]) if bad else f"{acked_all} votes acknowledged, {refused} refused")

        # ---- a read-only output directory (the shim's read-only mode: it stops root too): refused, nothing changed
        for what, cmd in (("quantize", make_new), ("pretrain", None)):
            ro = os.path.join(tmp, "readonly-" + what)
            if cmd:
                os.makedirs(ro)
                target = os.path.join(ro, "model.gguf")
                shutil.copy(os.path.join(tmp, "quantize", "model.gguf"), target)
                before = sha(target)
                args = [bin_, "quantize", src, target, "Q8_0"]
            else:
                shutil.copytree(start, ro)
                target = os.path.join(ro, "checkpoint", "model.gguf")
                before = sha(target)
                args = train + ["--steps", "12", "--save-every", "2", "-o", ro, "--resume"]
            env = full_disk(ro, 1 << 60)
            env["FAULT_READONLY"] = "1"
            r = subprocess.run(args, capture_output=True, text=True, env=env)
            err = [l for l in r.stderr.strip().splitlines() if l.startswith("llmforge: error: ")]
            check(f"{what} into a read-only directory: one error line naming the path and the cause, non-zero exit; what was there is intact",
                  r.returncode != 0 and len(err) == 1 and ro in err[0] and "Read-only file system" in err[0] and sha(target) == before
                  and not temporaries(ro), err[0] if err else r.stderr[-200:])

    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    raise SystemExit(1 if RESULTS["failed"] else 0)


if __name__ == "__main__":
    main()
