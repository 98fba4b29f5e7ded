#!/usr/bin/env python3
"""Reward-model training and DPO end to end, on preference pairs whose preferred side can be checked.

A byte-level BPE tokenizer (trained here with ChatML's tokens) and a small random LLaMA model; pairs are generated:
the prompt names a colour, the chosen answer repeats it with a word of praise ("blue is lovely"), the rejected one
with a word of blame ("blue is awful"), words drawn from two lists, so that a model can learn the preference and a
held-out split can show it.
  1. `llmforge reward train` raises held-out pairwise accuracy from chance to ≥ 0.9; `llmforge reward score` on the
     held-out file gives the same accuracy the training run reported, and ranks a fresh praise answer above a
     fresh blame answer.
  2. `llmforge dpo` raises the held-out implicit-reward accuracy (β·log π/ref ranks chosen over rejected) to ≥ 0.9 and
     the held-out log-likelihood ranking above the starting model's; reference log-probabilities are cached in
     OUT/reference_logps.json; with --rpo-alpha 1 the chosen answers' held-out NLL ends lower than plain DPO's.
  3. `--resume`: N steps, then N more from the checkpoint, give the losses of 2N steps in one go (reward model).
  4. Bad input: lines with missing fields, identical chosen/rejected, non-JSON are skipped and counted (default) or
     stop the run with FILE:LINE (--on-bad-example fail); a reward score on a model without a head is a clear error.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_torch_parity as P  # noqa: E402
import test_torch_train as TT  # noqa: E402

COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white", "brown", "pink", "grey", "gold"]
GOOD = ["lovely", "great", "fine", "nice", "good", "pleasant"]
BAD = ["awful", "bad", "ugly", "poor", "nasty", "dreadful"]


def pairs(rng, n):
    out = []
    for _ in range(n):
        c = rng.choice(COLOURS)
        out.append({"prompt": f"Tell me about {c}.", "chosen": f"{c} is {rng.choice(GOOD)}.", "rejected": f"{c} is {rng.choice(BAD)}."})
    return out


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")


def run(args, *cmd, check=True):
    r = subprocess.run([args.bin, *cmd], capture_output=True, text=True, errors="replace")
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    return r


def metrics(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as tmp:
        tok = os.path.join(tmp, "tokenizer.json")
        run(args, "tokenizer", "train", "--input", "/usr/share/common-licenses/GPL-3", "--vocab-size", "301", "-o", tok, "-q")
        cfg, w, _ = P.make_llama(3)
        model = P.write_model_dir(os.path.join(tmp, "base"), cfg, w, tokenizer=tok)
        train, val = os.path.join(tmp, "train.jsonl"), os.path.join(tmp, "val.jsonl")
        write_jsonl(train, pairs(rng, 160))
        write_jsonl(val, pairs(rng, 48))
        common = ["--data", train, "--val", val, "--batch-size", "8", "--eval-every", "20", "-t", "2", "-q",
                  "--warmup", "5", "--schedule", "constant", "--seed", "3"]

        # ---- 1. the reward model
        rm = os.path.join(tmp, "rm")
        r = run(args, "reward", "train", "-m", model, "-o", rm, "--steps", "60", "--lr", "3e-3", "--json", *common)
        rep = json.loads(r.stdout)
        TT.check("reward model: held-out pairwise accuracy rises from chance to ≥ 0.9",
                 rep["val_accuracy_end"] >= 0.9 and rep["val_accuracy_start"] <= 0.8,
                 f"{rep['val_accuracy_start']:.3f} -> {rep['val_accuracy_end']:.3f}")
        s = json.loads(run(args, "reward", "score", "-m", os.path.join(rm, "model.gguf"), "--data", val, "--json", "-t", "2").stdout)
        TT.check("reward score: the held-out accuracy equals the training run's", abs(s["accuracy"] - rep["val_accuracy_end"]) < 1e-9,
                 f"score {s['accuracy']:.4f}, training {rep['val_accuracy_end']:.4f}, 95% CI {s['ci95'][0]:.3f}–{s['ci95'][1]:.3f}")
        good = float(run(args, "reward", "score", "-m", os.path.join(rm, "model.gguf"), "-p", "Tell me about teal.", "-r", "teal is pleasant.").stdout)
        bad = float(run(args, "reward", "score", "-m", os.path.join(rm, "model.gguf"), "-p", "Tell me about teal.", "-r", "teal is nasty.").stdout)
        TT.check("reward score: a new praise answer scores above a new blame answer", good > bad, f"{good:.3f} vs {bad:.3f}")
        m = metrics(os.path.join(rm, "metrics.jsonl"))
        TT.check("reward model: metrics carry loss, accuracy and validation", all("accuracy" in x for x in m) and any("val_accuracy" in x for x in m))

        # ---- 3. resume: 30 + 30 steps == 60 steps
        rr = os.path.join(tmp, "rm-resume")
        run(args, "reward", "train", "-m", model, "-o", rr, "--steps", "60", "--lr", "3e-3", *common, "--save-every", "30")
        m_full = [x["loss"] for x in metrics(os.path.join(rr, "metrics.jsonl"))]
        rr2 = os.path.join(tmp, "rm-split")
        # a run stopped after 30 steps: the same schedule (constant lr), steps capped by a first invocation of 30
        run(args, "reward", "train", "-m", model, "-o", rr2, "--steps", "30", "--lr", "3e-3", *common, "--save-every", "30")
        run(args, "reward", "train", "-m", model, "-o", rr2, "--steps", "60", "--lr", "3e-3", *common, "--save-every", "30", "--resume")
        m_split = [x["loss"] for x in metrics(os.path.join(rr2, "metrics.jsonl"))]
        TT.check("reward model: 30 steps + --resume 30 give the losses of 60 in one go", m_full == m_split,
                 f"{len(m_full)} vs {len(m_split)} steps; last {m_full[-1]:.6f} vs {m_split[-1]:.6f}")

        # ---- 2. DPO
        dp = os.path.join(tmp, "dpo")
        r = run(args, "dpo", "-m", model, "-o", dp, "--steps", "60", "--lr", "2e-3", "--beta", "0.5", "--json", *common)
        rep = json.loads(r.stdout)
        TT.check("DPO: held-out implicit-reward accuracy ≥ 0.9 (0 before: π = ref)", rep["val_accuracy_end"] >= 0.9,
                 f"{rep['val_accuracy_start']:.3f} -> {rep['val_accuracy_end']:.3f}")
        TT.check("DPO: held-out log-likelihood ranking above the starting model's",
                 rep["val_logp_accuracy_end"] > rep["val_logp_accuracy_start"],
                 f"{rep['val_logp_accuracy_start']:.3f} -> {rep['val_logp_accuracy_end']:.3f}")
        cache = json.load(open(os.path.join(dp, "reference_logps.json")))
        TT.check("DPO: reference log-probabilities cached for every pair", len(cache["train"]) == 160 and len(cache["val"]) == 48)
        # RPO: the same run with α · (per-token NLL of the chosen answers) added holds the chosen answers' likelihood up
        dr = os.path.join(tmp, "dpo-rpo")
        r = run(args, "dpo", "-m", model, "-o", dr, "--steps", "60", "--lr", "2e-3", "--beta", "0.5", "--rpo-alpha", "1", "--json", *common)
        rep_r = json.loads(r.stdout)
        nll = {k: [x["val_chosen_nll"] for x in metrics(os.path.join(d, "metrics.jsonl")) if "val_chosen_nll" in x] for k, d in (("dpo", dp), ("rpo", dr))}
        TT.check("DPO --rpo-alpha 1: held-out chosen answers’ NLL ends below plain DPO’s and falls from step 20 to 60; accuracy still ≥ 0.9",
                 nll["rpo"][-1] < nll["dpo"][-1] and nll["rpo"][-1] < nll["rpo"][0] and rep_r["val_accuracy_end"] >= 0.9,
                 f"NLL per token: DPO {nll['dpo'][0]:.3f} -> {nll['dpo'][-1]:.3f}, RPO {nll['rpo'][0]:.3f} -> {nll['rpo'][-1]:.3f}")

        # ---- 4. bad input
        badf = os.path.join(tmp, "bad.jsonl")
        rows = pairs(rng, 20) + ['{"prompt": "x", "chosen": "y"}', '{"prompt": "x", "chosen": "same", "rejected": "same"}', "not json",
                                 '{"prompt": 3, "chosen": "a", "rejected": "b"}']
        write_jsonl(badf, rows)
        r = run(args, "reward", "train", "-m", model, "-o", os.path.join(tmp, "rb"), "--data", badf, "--steps", "1", "-q", "-t", "2", "--json")
        TT.check("bad pairs are skipped and counted", json.loads(r.stdout)["skipped"] == 4 and "missing \"rejected\"" in r.stderr
                 and "identical" in r.stderr, r.stderr.strip().splitlines()[0] if r.stderr.strip() else "")
        r = run(args, "dpo", "-m", model, "-o", os.path.join(tmp, "db"), "--data", badf, "--steps", "1", "-q", "--on-bad-example", "fail", check=False)
        TT.check("--on-bad-example fail stops with the file and line", r.returncode != 0 and "bad.jsonl:21" in r.stderr and "Traceback" not in r.stderr,
                 r.stderr.strip()[-160:])
        r = run(args, "reward", "score", "-m", model, "-p", "a", "-r", "b", check=False)
        TT.check("reward score on a model without a head: a clear error", r.returncode != 0 and "not a reward model" in r.stderr, r.stderr.strip()[-120:])

        # ---- 5. GRPO with a verifier program; RLHF (PPO) with the reward model trained above
        prompts = os.path.join(tmp, "prompts.jsonl")
        write_jsonl(prompts, [{"prompt": f"Tell me about {c}.", "colour": c} for c in COLOURS])
        ver = os.path.join(tmp, "verifier.py")
        with open(ver, "w") as f:  # the share of the answer's characters that are letters of the colour's name
            f.write("import json, sys\nd = json.load(sys.stdin)\na = d['answer']\nprint(sum(ch in d['colour'] for ch in a) / max(1, len(a)))\n")
        g = ["--prompts", prompts, "--verifier", f"/usr/bin/python3 {ver}", "--batch-size", "3", "--group", "3", "--n-predict", "8",
             "--lr", "1e-3", "-t", "2", "-q", "--seed", "2", "--save-every", "2", "--beta", "0.05"]
        ga, gb = os.path.join(tmp, "grpo-a"), os.path.join(tmp, "grpo-b")
        r = run(args, "grpo", "-m", model, "-o", ga, "--steps", "4", "--json", *g)
        rep = json.loads(r.stdout)
        m = metrics(os.path.join(ga, "metrics.jsonl"))
        TT.check("GRPO: runs, logs reward, KL, clip fraction per step, writes the model",
                 rep["steps"] == 4 and len(m) == 4 and all(k in m[0] for k in ("reward", "kl", "clip_fraction", "entropy", "loss"))
                 and os.path.exists(os.path.join(ga, "model.gguf")), json.dumps(m[-1])[:160])
        # held-out evaluation: greedy answers and rewards per prompt in OUT/eval-*.jsonl; the paired change is their mean difference
        ge = os.path.join(tmp, "grpo-eval")
        r = run(args, "grpo", "-m", model, "-o", ge, "--steps", "2", "--eval", prompts, "--json", *g)
        rep = json.loads(r.stdout)
        ev = {t: [json.loads(x) for x in open(os.path.join(ge, f"eval-{t}.jsonl"))] for t in ("start", "end")}
        before, after = [x["reward"] for x in ev["start"]], [x["reward"] for x in ev["end"]]
        change = sum(b - a for a, b in zip(before, after)) / len(before)
        TT.check("GRPO --eval: answers and rewards per held-out prompt on file; the means and the paired change agree with them",
                 len(before) == len(after) == len(COLOURS) and all("answer" in x and "colour" in x for x in ev["end"])
                 and abs(rep["eval_start"][0] - sum(before) / len(before)) < 1e-9 and abs(rep["eval_end"][0] - sum(after) / len(after)) < 1e-9
                 and abs(rep["eval_change"][0] - change) < 1e-9 and rep["eval_change"][1] <= change <= rep["eval_change"][2],
                 f"change {rep['eval_change']}")
        # --eval-samples: G sampled answers per prompt beside the greedy one, each scored by the verifier (recomputed here)
        es = os.path.join(tmp, "grpo-samples")
        r = run(args, "grpo", "-m", model, "-o", es, "--eval", prompts, "--eval-only", "--eval-samples", "3", "--json", *g)
        rep = json.loads(r.stdout)
        ev = [json.loads(x) for x in open(os.path.join(es, "eval-model.jsonl"))]
        score = lambda c, a: sum(ch in c for ch in a) / max(1, len(a))  # noqa: E731  (the verifier's formula)
        samples = [(x["colour"], y) for x in ev for y in x.get("samples", [])]
        best = [max(y["reward"] for y in x["samples"]) for x in ev]
        TT.check("--eval-samples 3: three scored samples per held-out prompt on file; their mean and best-of-3 are the reported ones",
                 len(ev) == len(COLOURS) and len(samples) == 3 * len(COLOURS) and all(abs(y["reward"] - score(c, y["answer"])) < 1e-6 for c, y in samples)
                 and abs(rep["eval_sample_mean"] - sum(y["reward"] for _, y in samples) / len(samples)) < 1e-9
                 and abs(rep["eval_best_of"] - sum(best) / len(best)) < 1e-9 and len({y["answer"] for _, y in samples}) > 1,
                 f"sampled mean {rep['eval_sample_mean']:.3f}, best of 3 {rep['eval_best_of']:.3f}")
        # --grammar: every roll-out follows it — greedy evaluation answers and sampled ones alike — and one training
        # step runs on such roll-outs
        eg = os.path.join(tmp, "grpo-grammar")
        r = run(args, "grpo", "-m", model, "-o", eg, "--eval", prompts, "--steps", "1", "--eval-samples", "3", "--json",
                "--grammar", 'root ::= [a-z]{1,6} " " [0-9]', *g)
        answers = [y for x in (json.loads(x) for x in open(os.path.join(eg, "eval-end.jsonl"))) for y in [x["answer"]] + [s["answer"] for s in x["samples"]]]
        TT.check("GRPO --grammar: every evaluation answer, greedy or sampled, matches the grammar",
                 len(answers) == 4 * len(COLOURS) and all(re.fullmatch(r"[a-z]{1,6} [0-9]", a) for a in answers),
                 f"{answers[:6]}")
        r = run(args, "grpo", "-m", model, "-o", os.path.join(tmp, "grpo-grammar-bad"), "--steps", "1", "--grammar", "root ::= x", *g, check=False)
        TT.check("GRPO --grammar that does not compile: exit 2 with the reason", r.returncode == 2 and "undefined rule 'x'" in r.stderr, r.stderr.strip()[-160:])
        run(args, "grpo", "-m", model, "-o", gb, "--steps", "2", *g)
        run(args, "grpo", "-m", model, "-o", gb, "--steps", "4", "--resume", *g)
        mb = metrics(os.path.join(gb, "metrics.jsonl"))
        TT.check("GRPO: 2 steps + --resume 2 give the roll-outs and losses of 4 in one go",
                 [(x["reward"], x["loss"]) for x in m] == [(x["reward"], x["loss"]) for x in mb], f"{len(m)} vs {len(mb)}")
        pp = ["--prompts", prompts, "--reward-model", os.path.join(rm, "model.gguf"), "--batch-size", "4", "--n-predict", "8", "--lr", "1e-4",
              "-t", "2", "-q", "--seed", "2", "--save-every", "2", "--beta", "0.1", "--kl", "k3"]
        pa, pb = os.path.join(tmp, "ppo-a"), os.path.join(tmp, "ppo-b")
        r = run(args, "rlhf", "-m", model, "-o", pa, "--steps", "4", "--json", *pp)
        m = metrics(os.path.join(pa, "metrics.jsonl"))
        TT.check("RLHF (PPO): logs reward, KL, β, entropy, clip fraction, value loss",
                 len(m) == 4 and all(k in m[-1] for k in ("reward", "kl", "beta", "entropy", "clip_fraction", "value_loss", "policy_loss")),
                 json.dumps(m[-1])[:160])
        TT.check("RLHF: the first step's KL to the reference is 0 (the policy starts as the reference)", abs(m[0]["kl"]) < 1e-6, f"{m[0]['kl']:.2e}")
        run(args, "rlhf", "-m", model, "-o", pb, "--steps", "2", *pp)
        run(args, "rlhf", "-m", model, "-o", pb, "--steps", "4", "--resume", *pp)
        mb = metrics(os.path.join(pb, "metrics.jsonl"))
        TT.check("RLHF: 2 steps + --resume 2 (value head and β in the checkpoint) give the losses of 4 in one go",
                 [(x["reward"], x["loss"]) for x in m] == [(x["reward"], x["loss"]) for x in mb])
        final = run(args, "info", "--all", os.path.join(pa, "model.gguf")).stdout
        ckpt = run(args, "info", "--all", os.path.join(pa, "checkpoint", "model.gguf")).stdout
        TT.check("RLHF: the checkpoint keeps the value head, the final model has none (llama.cpp loads it as a plain model)",
                 "cls.value.weight" in ckpt and "cls." not in final)

        # LoRA for each: adapters only; the reference of RLHF/GRPO is the base with the adapters off (KL 0 at step 1)
        r = run(args, "dpo", "-m", model, "-o", os.path.join(tmp, "dpo-lora"), "--steps", "3", "--lora-rank", "4", "--json", *common)
        r2 = run(args, "reward", "train", "-m", model, "-o", os.path.join(tmp, "rm-lora"), "--steps", "3", "--lora-rank", "4", "--merge", *common)
        run(args, "rlhf", "-m", model, "-o", os.path.join(tmp, "ppo-lora"), "--steps", "2", "--lora-rank", "4", *pp)
        ml = metrics(os.path.join(tmp, "ppo-lora", "metrics.jsonl"))
        TT.check("LoRA: dpo, reward train and rlhf train adapters; RLHF's reference is the base (KL 0 at step 1, > 0 after)",
                 os.path.exists(os.path.join(tmp, "dpo-lora", "adapter.gguf")) and os.path.exists(os.path.join(tmp, "rm-lora", "model.gguf"))
                 and os.path.exists(os.path.join(tmp, "ppo-lora", "adapter.gguf")) and abs(ml[0]["kl"]) < 1e-6 and ml[1]["kl"] != 0,
                 f"kl {ml[0]['kl']:.2e}, {ml[1]['kl']:.2e}")
        s = json.loads(run(args, "reward", "score", "-m", os.path.join(tmp, "rm-lora", "model.gguf"), "--data", val, "--json", "-t", "2").stdout)
        TT.check("LoRA reward model: the merged model keeps its head and scores", 0 <= s["accuracy"] <= 1 and len(s["rewards"]) == 48)

        svg = os.path.join(tmp, "curves.svg")
        run(args, "plot", pa, ga, "--y", "reward,kl", "--labels", "ppo,grpo", "-o", svg)
        text = open(svg).read()
        TT.check("plot: one panel per key, one line per run", text.startswith("<svg") and text.count("<polyline") == 4 and ">ppo<" in text)
        r = run(args, "plot", pa, "--y", "nothing_here", "-o", svg, check=False)
        TT.check("plot: a key no run has is a clear error", r.returncode != 0 and "none of the runs" in r.stderr)

        # ---- 6. verifiers that crash, hang or print garbage: skipped and counted, the run survives
        bad_ver = os.path.join(tmp, "bad.py")
        with open(bad_ver, "w") as f:
            f.write("import json, sys, time\nd = json.load(sys.stdin)\nc = d['colour']\n"
                    "if c in ('red', 'blue'): sys.exit(3)\n"
                    "if c in ('green', 'yellow'): time.sleep(30)\n"
                    "if c in ('purple', 'orange'): print('about seven'); sys.exit(0)\n"
                    "if c == 'black': print('nan'); sys.exit(0)\n"
                    "print(len(d['answer']) % 3)\n")
        r = run(args, "grpo", "-m", model, "-o", os.path.join(tmp, "grpo-bad"), "--steps", "3", "--json", "--prompts", prompts,
                "--verifier", f"/usr/bin/python3 {bad_ver}", "--verifier-timeout", "0.5", "--batch-size", "12", "--group", "2",
                "--n-predict", "4", "--lr", "1e-3", "-t", "2", "-q", "--seed", "2", check=False)
        ok = r.returncode == 0
        rep = json.loads(r.stdout) if ok else {}
        TT.check("bad verifiers: timed-out, crashed and garbage answers are skipped and counted; the run finishes",
                 ok and rep["steps"] == 3 and rep["skipped_rewards"] > 0 and "timed out" in r.stderr and "failed (exit status 3)" in r.stderr
                 and "no number" in r.stderr, (r.stderr.strip().splitlines() or [""])[-1][:200])
        # ---- 7. verifiers kept running (--verifier-lines): one JSON object per line in, one number per line out
        lines_ver, starts = os.path.join(tmp, "lines.py"), os.path.join(tmp, "starts.txt")
        with open(lines_ver, "w") as f:  # the verifier of section 5, as a line filter that notes each start
            f.write(f"import json, sys\nopen({starts!r}, 'a').write('start\\n')\n"
                    "for line in sys.stdin:\n    d = json.loads(line)\n    a = d['answer']\n"
                    "    print(sum(ch in d['colour'] for ch in a) / max(1, len(a)), flush=True)\n")
        gl = [x if x != f"/usr/bin/python3 {ver}" else f"/usr/bin/python3 {lines_ver}" for x in g]
        run(args, "grpo", "-m", model, "-o", os.path.join(tmp, "grpo-lines"), "--steps", "4", "--verifier-lines", *gl)
        ml, m = metrics(os.path.join(tmp, "grpo-lines", "metrics.jsonl")), metrics(os.path.join(ga, "metrics.jsonl"))
        n_starts = open(starts).read().count("start")
        TT.check("--verifier-lines: the same rewards and losses as one program per answer, from 2 programs started once (not 36)",
                 [(x["reward"], x["loss"]) for x in m] == [(x["reward"], x["loss"]) for x in ml] and n_starts == 2, f"{n_starts} starts")
        bad_lines = os.path.join(tmp, "bad_lines.py")
        with open(bad_lines, "w") as f:
            f.write(f"import json, sys, time\nopen({starts!r}, 'a').write('again\\n')\n"
                    "for line in sys.stdin:\n    c = json.loads(line)['colour']\n"
                    "    if c == 'red': sys.exit(3)\n"
                    "    if c == 'green': time.sleep(30)\n"
                    "    print('about seven' if c == 'purple' else 'nan' if c == 'black' else 0.5, flush=True)\n")
        r = run(args, "grpo", "-m", model, "-o", os.path.join(tmp, "grpo-bad-lines"), "--steps", "2", "--json", "--prompts", prompts,
                "--verifier", f"/usr/bin/python3 {bad_lines}", "--verifier-lines", "--verifier-timeout", "0.5", "--batch-size", "12", "--group", "2",
                "--n-predict", "4", "--lr", "1e-3", "-t", "2", "-q", "--seed", "2", check=False)
        ok = r.returncode == 0
        rep = json.loads(r.stdout) if ok else {}
        restarts = open(starts).read().count("again")
        # 2 steps × 2 answers each for red (exits) and green (hangs): 8 answers lost with their program, restarted for the next
        TT.check("--verifier-lines with a program that exits, hangs or prints garbage: those answers skipped and counted, the program "
                 "restarted only after it exited or was killed", ok and rep["steps"] == 2 and rep["skipped_rewards"] == 16
                 and "timed out" in r.stderr and "failed (exit status 3)" in r.stderr and "no number" in r.stderr and 2 <= restarts <= 2 + 8,
                 f"{restarts} starts; " + (r.stderr.strip().splitlines() or [""])[-1][:160])
        r = run(args, "grpo", "-m", model, "-o", os.path.join(tmp, "grpo-x"), "--steps", "1", "--prompts", prompts, "--verifier", "exit 1", "-q", check=False)
        TT.check("a verifier that always fails: each step says no answer got a reward, no crash", r.returncode == 0 and "no update" in r.stderr,
                 r.stderr.strip()[-160:])
        r = run(args, "rlhf", "-m", model, "-o", os.path.join(tmp, "r-x"), "--prompts", prompts, "-q", check=False)
        TT.check("rlhf without a reward: a clear error", r.returncode != 0 and "--reward-model or --verifier" in r.stderr, r.stderr.strip()[-120:])
    print(f"{TT.RESULTS['passed']} passed, {TT.RESULTS['failed']} failed")
    return 1 if TT.RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
