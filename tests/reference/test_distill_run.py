#!/usr/bin/env python3
"""Distillation and speculative decoding end to end on real text (Debian's fortunes): a small teacher pre-trained by
llmforge, `llmforge distill` into a fresh student and into a layer-pruned copy of it (the run's metrics, kill -9 and
--resume bit for bit), from a Q8_0 teacher, from the teacher's top-k cache (`distill-cache`: its file read back in
numpy against the teacher's logits; k = V trains exactly as the teacher on the fly; hashes refuse another teacher or
data), on-policy (GKD: the student's own samples, resumed bit for bit), then `generate --draft` with the distilled student: greedy output equal to the teacher's own on
100 prompts, the acceptance rate reported. Bad input: data in another tokenizer, a draft with another vocabulary.

Run: /usr/bin/python3 tests/reference/test_distill_run.py --bin build/llmforge
"""
import argparse
import json
import math
import os
import signal
import struct
import subprocess
import tempfile
import time

import numpy as np
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fortunes  # noqa: E402

RESULTS = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


def metrics(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return {j["step"]: j for j in map(json.loads, f)}


def kill_and_resume(cmd, run, after_lines=17):
    """Runs cmd + [-o run], kills it (-9) once its metrics have after_lines lines, resumes it; returns (its metrics or
    {} on failure, the resumed run's stderr)."""
    p = subprocess.Popen(cmd + ["-o", run], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = os.path.join(run, "metrics.jsonl")
    while p.poll() is None and (not os.path.exists(path) or sum(1 for _ in open(path)) < after_lines):
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    r = subprocess.run(cmd + ["-o", run, "--resume"], capture_output=True, text=True)
    return (metrics(run) if r.returncode == 0 else {}), r.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    bin_ = ap.parse_args().bin
    with tempfile.TemporaryDirectory() as tmp:
        text, tok, data = fortunes.tokenizer_and_data(bin_, tmp, 600)
        teacher = os.path.join(tmp, "teacher")
        subprocess.run([bin_, "pretrain", "--preset", "llama-tiny", "--layers", "4", "--d-model", "96", "--heads", "4", "--kv-heads", "2", "--d-ff", "256",
                        "--data", data, "--steps", "150", "-b", "8", "--seq-len", "64", "--lr", "3e-3", "--warmup", "10", "--eval-every", "150",
                        "-t", "2", "-q", "-o", teacher], check=True, capture_output=True)
        tmodel = os.path.join(teacher, "model.gguf")

        # ---- a fresh student: the loss's parts in the metrics, KL to the teacher falling, the compute account
        common = ["--data", data, "--steps", "40", "-b", "8", "--seq-len", "64", "--lr", "3e-3", "--warmup", "5", "--eval-every", "20",
                  "--eval-batches", "8", "--save-every", "7", "-t", "2", "-q"]
        fresh = os.path.join(tmp, "fresh")
        base = [bin_, "distill", "--teacher", tmodel, "--preset", "llama-tiny", "--layers", "1", "--d-model", "64", "--heads", "4", "--kv-heads", "2",
                "--d-ff", "128", "--loss", "jsd", "--beta", "0.5", "--temp", "2", "--alpha", "0.8"] + common
        r = subprocess.run(base + ["-o", fresh], capture_output=True, text=True)
        m = metrics(fresh) if r.returncode == 0 else {}
        ok = r.returncode == 0 and len(m) == 40 and all(k in m[40] for k in ("divergence", "ce", "val_kl", "val_teacher_loss", "flops", "mfu"))
        check("distill: a fresh student trains; each step logs its divergence and cross-entropy, validation the KL to the teacher", ok,
              r.stderr[-300:] if r.returncode else f"loss {m[1]['loss']:.3f} -> {m[40]['loss']:.3f}")
        if ok:
            vals = [m[s] for s in sorted(m) if "val_kl" in m[s]]
            check("distill: KL(teacher ‖ student) on held-out windows falls", vals[-1]["val_kl"] < vals[0]["val_kl"],
                  f"{vals[0]['val_kl']:.4f} -> {vals[-1]['val_kl']:.4f}")
            # α·τ²·D + (1 − α)·CE, as the step's own parts say
            want = 0.8 * 4 * m[40]["divergence"] + 0.2 * m[40]["ce"]
            check("the loss is α·τ²·divergence + (1 − α)·cross-entropy", abs(m[40]["loss"] - want) <= 1e-6 * abs(want), f"{m[40]['loss']:.6f} vs {want:.6f}")
            st = json.load(open(os.path.join(fresh, "checkpoint", "state.json")))
            check("the run's hyper-parameters name the teacher and the loss", st["hparams"].get("teacher") == tmodel and st["hparams"].get("loss") == "jsd")

        # ---- kill -9 mid-run, then --resume: the same loss at every step
        got, err = kill_and_resume(base, os.path.join(tmp, "killed"))
        want = metrics(fresh)
        same = sorted(got) == sorted(want) and all(repr(got[s]["loss"]) == repr(want[s]["loss"]) for s in want)
        check("distill: kill -9 + --resume gives the same loss at every step, bit for bit", same, err[-300:])

        # ---- a layer-pruned copy of the teacher
        pruned = os.path.join(tmp, "pruned")
        r = subprocess.run([bin_, "distill", "--teacher", tmodel, "--keep-layers", "0,3"] + common + ["-o", pruned], capture_output=True, text=True)
        info = json.loads(subprocess.run([bin_, "info", os.path.join(pruned, "model.gguf"), "--json"], capture_output=True, text=True).stdout or "{}") \
            if r.returncode == 0 else {}
        mp = metrics(pruned) if r.returncode == 0 else {}
        start_kl = lambda err: ([json.loads(l.split(": ", 2)[2])["val_kl"] for l in err.splitlines() if l.startswith("llmforge: before training: ")]
                                + [float("inf")])[0]
        fresh_kl = start_kl(subprocess.run([a if a != "40" else "1" for a in base] + ["-o", os.path.join(tmp, "fresh2")], capture_output=True,
                                            text=True).stderr)
        kl0 = start_kl(r.stderr)
        check("distill --keep-layers 0,3: the student is the teacher's blocks 0 and 3, far closer to it than a fresh student at the start",
              info.get("n_layer") == 2 and info.get("n_embd") == 96 and bool(mp) and kl0 < fresh_kl / 4, r.stderr[-300:] if r.returncode else
              f"{info.get('n_layer')} layers; KL to the teacher before training {kl0:.4f} (a fresh student's {fresh_kl:.4f}), after {mp[40]['val_kl']:.4f}")

        # ---- a quantised teacher (Q8_0): read as stored, its distributions close to the f32 teacher's
        q8 = os.path.join(tmp, "teacher-q8_0.gguf")
        subprocess.run([bin_, "quantize", tmodel, q8, "Q8_0"], check=True, capture_output=True)
        rq = subprocess.run([bin_, "distill", "--teacher", q8] + base[4:] + ["-o", os.path.join(tmp, "from-q8")], capture_output=True, text=True)
        mq = metrics(os.path.join(tmp, "from-q8")) if rq.returncode == 0 else {}
        check("distill from a Q8_0 teacher: it trains, the teacher's validation loss within 1 % of the f32 teacher's",
              bool(mq) and abs(mq[40]["val_teacher_loss"] - want[40]["val_teacher_loss"]) <= 0.01 * want[40]["val_teacher_loss"],
              rq.stderr[-300:] if rq.returncode else f"{mq[40]['val_teacher_loss']:.4f} vs {want[40]['val_teacher_loss']:.4f}")

        # ---- the teacher's top-k cache (distill-cache, distill --teacher-cache)
        def read_cache(path):
            b = open(path, "rb").read()
            ver, n = struct.unpack_from("<II", b, 8)
            meta = json.loads(b[16:16 + n])
            ids_at = (16 + n + 63) // 64 * 64
            W, k, T = meta["windows"], meta["top_k"], meta["seq_len"]
            wins = np.frombuffer(b, np.uint64, W, ids_at)
            off = (ids_at + 8 * W + 63) // 64 * 64
            it, ft = ("<u2" if meta["id_bytes"] == 2 else "<u4"), ("<f2" if meta["logp"] == "f16" else "<f4")
            rec = np.dtype({"names": ["ids", "lp", "rest"], "formats": [(it, k), (ft, k), "<f4"],
                            "offsets": [0, k * meta["id_bytes"], k * (meta["id_bytes"] + np.dtype(ft).itemsize)], "itemsize": meta["record_bytes"]})
            r = np.frombuffer(b, rec, W * T, off).reshape(W, T)
            return b[:8], ver, meta, wins, r

        def shard_tokens(d):
            b = open(os.path.join(d, "train_000.bin"), "rb").read()
            width, n = struct.unpack_from("<I", b, 8)[0], struct.unpack_from("<Q", b, 16)[0]
            return np.frombuffer(b, "<u2" if width == 2 else "<u4", n, 24).astype(np.int64)

        k32 = os.path.join(tmp, "k32.cache")
        r = subprocess.run([bin_, "distill-cache", "--teacher", tmodel, "--data", data, "--seq-len", "64", "--top-k", "32", "--max-windows", "300",
                            "-o", k32, "-t", "2", "-q", "--json"], capture_output=True, text=True)
        rep = json.loads(r.stdout) if r.returncode == 0 else {}
        if rep:
            magic, ver, meta, wins, rc = read_cache(k32)
            toks = shard_tokens(data)
            n_win = (len(toks) - 1) // 64
            check("distill-cache: the header names the teacher's and the data's hashes, 300 windows spread evenly over the split",
                  magic == b"LFKDTOPK" and ver == 1 and meta["teacher_hash"] == rep["teacher_hash"] and meta["split_windows"] == n_win
                  and list(wins) == [i * n_win // 300 for i in range(300)] and os.path.getsize(k32) == rep["bytes"], json.dumps(meta)[:200])
            worst_lp, worst_rest, same, mass = 0.0, 0.0, 0, 0.0
            for j in (0, 1, 150, 299):  # the teacher's logits on those windows, from `llmforge logits`, top-32 by numpy
                w = int(wins[j])
                out = subprocess.run([bin_, "logits", "-m", tmodel, "--tokens", ",".join(map(str, toks[w * 64:w * 64 + 64])), "--cache-type", "f32",
                                      "-t", "2"], capture_output=True, text=True, check=True).stdout
                z = np.array([[float(x) for x in l.split()[1:]] for l in out.splitlines() if l.strip()], dtype=np.float64)
                lp = z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) - z.max(-1, keepdims=True)
                for t in range(64):
                    ref = np.argsort(-lp[t], kind="stable")[:32]
                    got = rc[j, t]["ids"].astype(np.int64)
                    same += int(np.array_equal(got, ref))
                    glp = rc[j, t]["lp"].astype(np.float64)
                    worst_lp = max(worst_lp, float(np.max(np.abs(glp - lp[t][got]) / np.abs(lp[t][got]).clip(1e-3))))
                    rest = math.log1p(-min(np.exp(lp[t][got]).sum(), 1 - 1e-12))
                    worst_rest = max(worst_rest, abs(float(rc[j, t]["rest"]) - rest) / abs(rest))
                    mass = max(mass, abs(np.exp(glp).sum() + math.exp(float(rc[j, t]["rest"])) - 1))
            check("distill-cache round trip: each position's top-32 ids equal numpy's top-32 of the teacher's logits, their log-probabilities (f16) and "
                  "the remaining mass log(1 − Σ top-32) match, and the k + 1 masses sum to 1",
                  same >= 0.98 * 256 and worst_lp <= 2e-3 and worst_rest <= 1e-3 and mass <= 2e-3,
                  f"{same}/256 id lists equal, log p rel {worst_lp:.1e}, rest rel {worst_rest:.1e}, |Σ − 1| {mass:.1e}")
        else:
            check("distill-cache runs", False, r.stderr[-300:])

        # k = V in f32: training on the cache is training on the teacher itself (small data: 17 MB of cache)
        small_txt, sdata = os.path.join(tmp, "small.txt"), os.path.join(tmp, "sdata")
        with open(small_txt, "w") as f:
            f.write(open(text, encoding="utf-8").read()[:12000])
        subprocess.run([bin_, "prepare", "--input", small_txt, "--tokenizer", tok, "-o", sdata, "--val-fraction", "0.1", "-q"], check=True, capture_output=True)
        full = os.path.join(tmp, "full.cache")
        subprocess.run([bin_, "distill-cache", "--teacher", tmodel, "--data", sdata, "--seq-len", "64", "--top-k", "600", "--dtype", "f32", "-o", full,
                        "-t", "2", "-q"], check=True, capture_output=True)
        _, _, _, _, rcf = read_cache(full)
        mass = float(np.abs(np.exp(rcf["lp"].astype(np.float64)).sum(-1) - 1).max())
        scommon = ["--data", sdata, "--steps", "12", "-b", "4", "--seq-len", "64", "--lr", "3e-3", "--warmup", "2", "--eval-every", "6", "--eval-batches", "4",
                   "-t", "2", "-q", "--preset", "llama-tiny", "--layers", "1", "--d-model", "64", "--heads", "4", "--kv-heads", "2", "--d-ff", "128",
                   "--loss", "jsd", "--beta", "0.5", "--alpha", "0.8"]
        ra = subprocess.run([bin_, "distill", "--teacher", tmodel] + scommon + ["-o", os.path.join(tmp, "fly")], capture_output=True, text=True)
        rb = subprocess.run([bin_, "distill", "--teacher", tmodel, "--teacher-cache", full] + scommon + ["-o", os.path.join(tmp, "cached")],
                            capture_output=True, text=True)
        ma = metrics(os.path.join(tmp, "fly")) if ra.returncode == 0 else {}
        mb = metrics(os.path.join(tmp, "cached")) if rb.returncode == 0 else {}
        worst = max((abs(ma[s]["loss"] - mb[s]["loss"]) / ma[s]["loss"] for s in ma), default=1.0) if sorted(ma) == sorted(mb) and ma else 1.0
        check("distill --teacher-cache (k = V, f32) trains as the teacher on the fly does: the same loss at all 12 steps, the teacher's FLOPs not counted",
              worst <= 1e-6 and mass <= 1e-5 and bool(mb) and mb[12]["flops"] < ma[12]["flops"] and "val_kl" in mb[12],
              (ra.stderr + rb.stderr)[-300:] if not mb else f"worst rel {worst:.1e}; |Σ p − 1| {mass:.1e}; FLOPs/step {mb[12]['flops']:.3g} vs {ma[12]['flops']:.3g}")
        if rep:
            def without(args, opt):  # args less an option and its value
                i = args.index(opt)
                return args[:i] + args[i + 2:]

            rk = subprocess.run(without(base, "--temp") + ["-o", os.path.join(tmp, "k32-run"), "--teacher-cache", k32], capture_output=True, text=True)
            mk = metrics(os.path.join(tmp, "k32-run")) if rk.returncode == 0 else {}
            st = json.load(open(os.path.join(tmp, "k32-run", "checkpoint", "state.json"))) if mk else {}
            check("distill --teacher-cache (top-32, f16): the student trains on the cached windows, the run names the cache",
                  bool(mk) and mk[40]["val_kl"] < mk[20]["val_kl"] and st["hparams"]["teacher_cache"]["top_k"] == 32,
                  rk.stderr[-300:] if not mk else f"val KL {mk[20]['val_kl']:.4f} -> {mk[40]['val_kl']:.4f}")
            trunc = os.path.join(tmp, "trunc.cache")
            with open(trunc, "wb") as f:
                f.write(open(k32, "rb").read()[:1000000])
            cbase = without(without(base, "--temp"), "--seq-len") + ["-o", os.path.join(tmp, "x0")]
            for name, extra, needle in (("a cache for another teacher (by hash)", ["--teacher-cache", k32, "--seq-len", "64"], "another teacher"),
                                        ("a cache for other data (by hash)", ["--teacher-cache", full, "--seq-len", "64"], "other data"),
                                        ("a cache of another sequence length", ["--teacher-cache", k32, "--seq-len", "32"], "--seq-len 64"),
                                        ("a cache at another temperature", ["--teacher-cache", k32, "--seq-len", "64", "--temp", "2"], "--temp 1"),
                                        ("a truncated cache", ["--teacher-cache", trunc, "--seq-len", "64"], "truncated"),
                                        ("a file that is not a cache", ["--teacher-cache", text, "--seq-len", "64"], "not a teacher cache")):
                cmd = cbase + extra
                if "another teacher" in needle:
                    cmd = [q8 if a == tmodel else a for a in cmd]
                r = subprocess.run(cmd, capture_output=True, text=True)
                err = r.stderr.strip().splitlines()
                check(f"bad input: {name}: one line, exit 2", r.returncode == 2 and err and err[-1].startswith("llmforge: error: ") and needle in err[-1],
                      err[-1] if err else "")

        # ---- on-policy distillation (GKD): half the batches continued by the student itself; kill -9 + --resume exact
        gkd = os.path.join(tmp, "gkd")
        gbase = base + ["--on-policy", "0.5", "--gen-tokens", "24"]
        r = subprocess.run(gbase + ["-o", gkd], capture_output=True, text=True)
        mg = metrics(gkd) if r.returncode == 0 else {}
        on = [s_ for s_ in mg if mg[s_].get("on_policy") == 1.0]
        off = [s_ for s_ in mg if mg[s_].get("on_policy") == 0.0]
        ok = bool(mg) and len(on) + len(off) == 40 and 8 <= len(on) <= 32
        check("distill --on-policy 0.5: about half the steps sample from the student (GKD)", ok, r.stderr[-300:] if not mg else f"{len(on)} of 40 on-policy")
        if ok:
            # no labels on the student's own tokens: the loss is τ²·divergence there, α·τ²·D + (1 − α)·CE elsewhere
            good = all(abs(mg[i]["loss"] - 4 * mg[i]["divergence"]) <= 1e-6 * mg[i]["loss"] and "ce" not in mg[i] for i in on) and \
                all(abs(mg[i]["loss"] - (0.8 * 4 * mg[i]["divergence"] + 0.2 * mg[i]["ce"])) <= 1e-6 * mg[i]["loss"] for i in off)
            check("on-policy steps: the loss is τ²·divergence alone (no labels), off-policy steps mix in the cross-entropy; both learn", good
                  and mg[40]["val_kl"] < mg[20]["val_kl"] and min(mg[i]["flops"] for i in on) > max(mg[i]["flops"] for i in off),
                  f"val KL {mg[20]['val_kl']:.4f} -> {mg[40]['val_kl']:.4f}; FLOPs per step {mg[on[0]]['flops']:.3g} on-policy, {mg[off[0]]['flops']:.3g} off")
            st = json.load(open(os.path.join(gkd, "checkpoint", "state.json")))
            got, err = kill_and_resume(gbase, os.path.join(tmp, "gkd-killed"))
            same = sorted(got) == sorted(mg) and all(repr(got[i]["loss"]) == repr(mg[i]["loss"]) for i in mg)
            check("distill --on-policy: kill -9 + --resume draws the same batches and samples: the same loss at every step, bit for bit",
                  same and st["hparams"]["on_policy"]["lambda"] == 0.5, err[-300:])

        # ---- speculative decoding with the distilled student as the draft: greedy output equals the teacher's own
        draft = os.path.join(pruned, "model.gguf")
        words = open(text, encoding="utf-8", errors="replace").read().split()
        differ, drafted, accepted = [], 0, 0
        for i in range(100):
            prompt = " ".join(words[i * 7:i * 7 + 3])
            plain = subprocess.run([bin_, "generate", "-m", tmodel, "-p", prompt, "-n", "24", "--temp", "0", "--numerics", "batch-invariant", "--json", "-t", "1"],
                                   capture_output=True, text=True)
            spec = subprocess.run([bin_, "generate", "-m", tmodel, "--draft", draft, "-p", prompt, "-n", "24", "--temp", "0", "--draft-max", "4",
                                   "--draft-min-p", "0", "--json", "-t", "1"], capture_output=True, text=True)
            if plain.returncode or spec.returncode:
                differ.append((i, (plain.stderr + spec.stderr)[-200:]))
                continue
            a, b = json.loads(plain.stdout), json.loads(spec.stdout)
            if a["tokens"] != b["tokens"]:
                differ.append((i, prompt))
            drafted += b["speculative"]["drafted"]
            accepted += b["speculative"]["accepted"]
        check("generate --draft, greedy: the same tokens as without a draft on 100 prompts", not differ and drafted > 0,
              f"{len(differ)} differ {differ[:2]}; {accepted} of {drafted} proposals accepted ({100 * accepted / max(drafted, 1):.1f} %)")
        # chat: three turns (the second and third reuse the cache), the same answers with the draft as without
        turns = "".join(" ".join(words[i * 11:i * 11 + 4]) + "\n" for i in range(3))
        chat = lambda extra: subprocess.run([bin_, "chat", "-m", tmodel, "-n", "24", "--temp", "0", "--jsonl", "-t", "1"] + extra, input=turns,
                                            capture_output=True, text=True)
        a, b = chat(["--numerics", "batch-invariant"]), chat(["--draft", draft, "--draft-max", "4", "--draft-min-p", "0"])
        ta = [json.loads(l)["text"] for l in a.stdout.splitlines() if l.strip()]
        tb = [json.loads(l) for l in b.stdout.splitlines() if l.strip()]
        check("chat --draft, greedy: the same three answers as without a draft", a.returncode == 0 and b.returncode == 0 and len(ta) == 3
              and ta == [j["text"] for j in tb] and all("speculative" in j for j in tb), (a.stderr + b.stderr)[-300:] or
              f"acceptance {[round(j['speculative']['acceptance'], 3) for j in tb]}")
        # serve: continuous batching with a draft; concurrent greedy requests answer as a server without the draft does
        import concurrent.futures, socket, urllib.request

        def serve(extra):
            with socket.socket() as sk:
                sk.bind(("127.0.0.1", 0))
                port = sk.getsockname()[1]
            proc = subprocess.Popen([bin_, "serve", "-m", tmodel, "--port", str(port), "--parallel", "4", "-t", "2"] + extra,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                    break
                except Exception:
                    time.sleep(0.05)
            return proc, port

        def complete(port, prompt, **kw):
            body = json.dumps({"model": "model", "prompt": prompt, "max_tokens": 24, "temperature": 0, **kw}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body, {"Content-Type": "application/json"})
            return json.loads(urllib.request.urlopen(req, timeout=60).read())["choices"][0]["text"]

        prompts = [" ".join(words[i * 13:i * 13 + 3]) for i in range(8)]
        plain_srv, p1 = serve([])
        spec_srv, p2 = serve(["--draft", draft, "--draft-max", "4", "--draft-min-p", "0"])
        try:
            want_texts = [complete(p1, q) for q in prompts]
            with concurrent.futures.ThreadPoolExecutor(8) as ex:
                got_texts = list(ex.map(lambda q: complete(p2, q), prompts))
            sampled = complete(p2, prompts[0], temperature=1.0, seed=5, n=2)
            metrics_text = urllib.request.urlopen(f"http://127.0.0.1:{p2}/metrics", timeout=5).read().decode()
        finally:
            for proc in (plain_srv, spec_srv):
                proc.terminate()
                proc.wait()
        val = lambda name: float(next(l.split()[-1] for l in metrics_text.splitlines() if l.startswith(name + "{")))
        prop, acc = val("llmforge_draft_proposed_tokens_total"), val("llmforge_draft_accepted_tokens_total")
        check("serve --draft: 8 concurrent greedy requests answer as the server without a draft; sampling with n = 2 runs",
              got_texts == want_texts and isinstance(sampled, str), f"{sum(a == b for a, b in zip(got_texts, want_texts))} of 8 equal")
        check("serve --draft: /metrics counts the proposed and the accepted tokens", 0 < acc <= prop, f"{acc:.0f} of {prop:.0f} accepted")
        r = subprocess.run([bin_, "generate", "-m", tmodel, "--draft", draft, "-p", "The", "-n", "16", "--temp", "0"], capture_output=True, text=True)
        check("generate --draft reports the acceptance rate", r.returncode == 0 and "proposed tokens accepted" in r.stderr, r.stderr.strip()[-200:])

        # ---- bad input: one line, exit 2
        tok2, data2 = os.path.join(tmp, "tok2.json"), os.path.join(tmp, "data2")
        subprocess.run([bin_, "tokenizer", "train", "--input", text, "--vocab-size", "500", "-o", tok2, "-q"], check=True, capture_output=True)
        subprocess.run([bin_, "prepare", "--input", text, "--tokenizer", tok2, "-o", data2, "-q"], check=True, capture_output=True)
        other = os.path.join(tmp, "other.gguf")
        subprocess.run([bin_, "init", "--preset", "llama-tiny", "--tokenizer", tok2, "-o", other], check=True, capture_output=True)
        for name, cmd, needle in (
                ("data tokenized with another tokenizer than the teacher's",
                 [bin_, "distill", "--teacher", tmodel, "--preset", "llama-tiny", "--data", data2, "-o", os.path.join(tmp, "x1"), "--steps", "2"],
                 "shared tokenizer"),
                ("a student with another vocabulary", [bin_, "distill", "--teacher", tmodel, "--student", other, "--data", data, "-o",
                                                       os.path.join(tmp, "x2"), "--steps", "2", "--seq-len", "64"], "shared tokenizer"),
                ("--keep-layers naming a layer the teacher lacks", [bin_, "distill", "--teacher", tmodel, "--keep-layers", "0,9", "--data", data, "-o",
                                                                    os.path.join(tmp, "x3"), "--steps", "2", "--seq-len", "64"], "layer 9 does not exist"),
                ("a draft with another vocabulary", [bin_, "generate", "-m", tmodel, "--draft", other, "-p", "Hi", "-n", "4"],
                 "must share the target's tokenizer")):
            r = subprocess.run(cmd, capture_output=True, text=True)
            err = r.stderr.strip().splitlines()
            check(f"bad input: {name}: one line, exit 2", r.returncode == 2 and err and err[-1].startswith("llmforge: error: ") and needle in err[-1]
                  and sum(l.startswith("llmforge: error") for l in err) == 1, r.stderr.strip()[-300:])

    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    raise SystemExit(1 if RESULTS["failed"] else 0)


if __name__ == "__main__":
    main()
