#!/usr/bin/env python3
"""Distillation and speculative decoding end to end on real text (Debian's fortunes): a small teacher pre-trained by
llmforge, `llmforge distill` into a fresh student and into a layer-pruned copy of it (the run's metrics, kill -9 and
--resume bit for bit), then `generate --draft` with the distilled student: greedy output equal to the teacher's own on
100 prompts, the acceptance rate reported. Bad input: data in another tokenizer, a draft with another vocabulary.

Run: /usr/bin/python3 tests/reference/test_distill_run.py --bin build/llmforge
"""
import argparse
import json
import os
import signal
import subprocess
import tempfile
import time

RESULTS = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


def metrics(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return {j["step"]: j for j in map(json.loads, f)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    bin_ = ap.parse_args().bin
    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "text.txt")
        with open(text, "w") as f:
            for name in ("fortunes", "literature", "science", "wisdom", "people", "work", "humorists"):
                p = "/usr/share/games/fortunes/" + name
                if os.path.exists(p):
                    f.write(open(p, encoding="utf-8", errors="replace").read().replace("\n%\n", "\n\n"))
        tok, data = os.path.join(tmp, "tok.json"), os.path.join(tmp, "data")
        subprocess.run([bin_, "tokenizer", "train", "--input", text, "--vocab-size", "600", "-o", tok, "-q"], check=True, capture_output=True)
        subprocess.run([bin_, "prepare", "--input", text, "--tokenizer", tok, "-o", data, "--val-fraction", "0.05", "-q"], check=True, capture_output=True)
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
        run = os.path.join(tmp, "killed")
        p = subprocess.Popen(base + ["-o", run], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        path = os.path.join(run, "metrics.jsonl")
        while p.poll() is None and (not os.path.exists(path) or sum(1 for _ in open(path)) < 17):
            time.sleep(0.01)
        p.send_signal(signal.SIGKILL)
        p.wait()
        r = subprocess.run(base + ["-o", run, "--resume"], capture_output=True, text=True)
        got = metrics(run) if r.returncode == 0 else {}
        want = metrics(fresh)
        same = sorted(got) == sorted(want) and all(repr(got[s]["loss"]) == repr(want[s]["loss"]) for s in want)
        check("distill: kill -9 + --resume gives the same loss at every step, bit for bit", same, r.stderr[-300:])

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
