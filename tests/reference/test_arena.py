#!/usr/bin/env python3
"""The arena's leaderboard and export against independent references.

  1. `llmforge arena leaderboard --json` on votes drawn from known strengths equals the maximum-likelihood
     Bradley–Terry ratings PyTorch finds for the same penalised objective (float64 L-BFGS on
     -Σ[s·log σ(θa−θb) + (1−s)·log σ(θb−θa)] + λ/2·Σθ², s = 1, 0 or ½ for a tie / both bad), to 1e-3 Elo points.
  2. Its 95 % bootstrap intervals have the width the observed Fisher information predicts (±1.96·SE from the inverse
     Hessian PyTorch computes, restricted to Σθ = 0 where the ridge keeps every fit), within 35 %, contain the estimate, and the ranking recovers the true order.
  3. `llmforge arena export` writes one {"prompt","chosen","rejected"} line per decisive vote with the winner's answer
     as "chosen" (ties and both-bad left out, or marked with --ties); the file is written atomically.
  4. Bad input: a missing file, a file that is not SQLite: one-line error, non-zero exit.
The votes are written with Python's sqlite3 into the schema the server creates (src/server/arena.cpp).
"""
import argparse
import json
import math
import os
import random
import sqlite3
import subprocess
import sys
import tempfile

import torch

RESULTS = {"passed": 0, "failed": 0}
L2 = 0.01  # BradleyTerryOptions::l2
SCALE = 400.0 / math.log(10.0)


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


def run(bin_, *args):
    p = subprocess.run([bin_, *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def make_db(path, votes):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE votes (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, battle TEXT NOT NULL UNIQUE, "
               "prompt TEXT NOT NULL, model_a TEXT NOT NULL, model_b TEXT NOT NULL, answer_a TEXT NOT NULL, answer_b TEXT NOT NULL, "
               "winner TEXT NOT NULL CHECK (winner IN ('a', 'b', 'tie', 'bothbad')))")
    db.executemany("INSERT INTO votes (time, battle, prompt, model_a, model_b, answer_a, answer_b, winner) VALUES (?,?,?,?,?,?,?,?)", votes)
    db.commit()
    db.close()


def draw_votes(strength, n, seed):
    rng = random.Random(seed)
    names = list(strength)
    votes = []
    for k in range(n):
        a, b = rng.sample(names, 2)
        p = 1 / (1 + math.exp(-(strength[a] - strength[b])))
        u = rng.random()
        w = "tie" if u < 0.08 else "bothbad" if u < 0.12 else ("a" if rng.random() < p else "b")
        votes.append((1700000000 + k, f"battle-{seed}-{k}", f"prompt {k} 你好", a, b, f"answer {k} by {a}", f"answer {k} by {b}", w))
    return votes


def torch_bt(votes, names):
    idx = {m: i for i, m in enumerate(names)}
    a = torch.tensor([idx[v[3]] for v in votes])
    b = torch.tensor([idx[v[4]] for v in votes])
    s = torch.tensor([1.0 if v[7] == "a" else 0.0 if v[7] == "b" else 0.5 for v in votes], dtype=torch.float64)

    def loss_of(th):
        d = th[a] - th[b]
        return -(s * torch.nn.functional.logsigmoid(d) + (1 - s) * torch.nn.functional.logsigmoid(-d)).sum() + L2 / 2 * (th * th).sum()

    th = torch.zeros(len(names), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([th], lr=1, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        l = loss_of(th)
        l.backward()
        return l

    opt.step(closure)
    theta = th.detach()
    hess = torch.autograd.functional.hessian(loss_of, theta)
    # the ridge keeps Σθ = 0 in every fit (bootstrap ones too): the estimate's covariance lives in that subspace
    k = len(names)
    proj = torch.eye(k, dtype=torch.float64) - torch.full((k, k), 1.0 / k, dtype=torch.float64)
    se = torch.sqrt(torch.diagonal(proj @ torch.linalg.inv(hess) @ proj))
    return {m: (1000 + SCALE * theta[i].item(), SCALE * se[i].item()) for i, m in enumerate(names)}


def test_leaderboard(bin_, tmp):
    strength = {"alpha": 1.2, "beta": 0.5, "gamma": 0.0, "delta": -0.8, "epsilon": -1.5}
    votes = draw_votes(strength, 1500, seed=7)
    db = os.path.join(tmp, "a.db")
    make_db(db, votes)
    rc, out, err = run(bin_, "arena", "leaderboard", "--db", db, "--json", "--bootstrap", "0")
    check("leaderboard runs", rc == 0, err.strip())
    ours = {r["model"]: r for r in json.loads(out)["models"]}
    ref = torch_bt(votes, sorted(strength))
    diff = max(abs(ours[m]["rating"] - ref[m][0]) for m in strength)
    check("Bradley–Terry ratings = PyTorch L-BFGS on the same objective", diff < 1e-3, f"max |Δ| = {diff:.2e} Elo")
    order = [r["model"] for r in json.loads(out)["models"]]
    check("ranking recovers the true order", order == sorted(strength, key=lambda m: -strength[m]), str(order))
    counts_ok = all(ours[m]["battles"] == sum(1 for v in votes if m in (v[3], v[4])) for m in strength)
    ties_ok = all(ours[m]["ties"] == sum(1 for v in votes if m in (v[3], v[4]) and v[7] in ("tie", "bothbad")) for m in strength)
    check("battle and tie counts", counts_ok and ties_ok)

    rc, out, err = run(bin_, "arena", "leaderboard", "--db", db, "--json", "--bootstrap", "1000", "--seed", "3")
    boot = {r["model"]: r for r in json.loads(out)["models"]}
    ratios = []
    for m in strength:
        half = (boot[m]["ci_high"] - boot[m]["ci_low"]) / 2
        ratios.append(half / (1.96 * ref[m][1]))
    check("bootstrap 95% half-widths ≈ 1.96·SE from PyTorch's inverse Hessian", all(0.65 < r < 1.35 for r in ratios),
          " ".join(f"{r:.2f}" for r in ratios))
    check("intervals contain the estimate", all(boot[m]["ci_low"] < boot[m]["rating"] < boot[m]["ci_high"] for m in strength))
    rc2, out2, _ = run(bin_, "arena", "leaderboard", "--db", db, "--json", "--bootstrap", "1000", "--seed", "3")
    check("same seed, same intervals", out2 == out)
    rc, out, err = run(bin_, "arena", "leaderboard", "--db", db)
    check("table output", rc == 0 and "alpha" in out and "95% interval" in out and out.strip().endswith("1500 votes"), out[-200:])


def test_export(bin_, tmp):
    votes = draw_votes({"x": 0.3, "y": 0.0, "z": -0.2}, 200, seed=11)
    db = os.path.join(tmp, "e.db")
    make_db(db, votes)
    dest = os.path.join(tmp, "prefs.jsonl")
    rc, out, err = run(bin_, "arena", "export", "--db", db, "-o", dest)
    check("export runs", rc == 0, err.strip())
    lines = [json.loads(l) for l in open(dest, encoding="utf-8")]
    decisive = [v for v in votes if v[7] in ("a", "b")]
    check("one line per decisive vote", len(lines) == len(decisive), f"{len(lines)} vs {len(decisive)}")
    ok = all(l["prompt"] == v[2] and l["chosen"] == (v[5] if v[7] == "a" else v[6]) and l["rejected"] == (v[6] if v[7] == "a" else v[5])
             and l["chosen_model"] == (v[3] if v[7] == "a" else v[4]) for l, v in zip(lines, decisive))
    check("chosen = the winner's answer, rejected = the loser's, prompt kept (UTF-8)", ok)
    check("no temporary file left", sorted(os.listdir(tmp)).count("prefs.jsonl") == 1 and not any(".tmp." in f for f in os.listdir(tmp)))
    rc, out, err = run(bin_, "arena", "export", "--db", db, "--ties")
    all_lines = [json.loads(l) for l in out.splitlines()]
    check("--ties writes every vote, ties marked", len(all_lines) == len(votes) and sum(1 for l in all_lines if l.get("tie")) == len(votes) - len(decisive))


def test_bad_input(bin_, tmp):
    rc, out, err = run(bin_, "arena", "export", "--db", os.path.join(tmp, "missing.db"))
    check("missing file: clear error", rc != 0 and "no such file" in err and len(err.strip().splitlines()) == 1, err.strip())
    junk = os.path.join(tmp, "junk.db")
    with open(junk, "wb") as f:
        f.write(bytes((i * 37) & 0xFF for i in range(8192)))
    rc, out, err = run(bin_, "arena", "leaderboard", "--db", junk)
    check("not a database: clear error", rc != 0 and "arena database" in err and len(err.strip().splitlines()) == 1, err.strip())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        test_leaderboard(args.bin, tmp)
        test_export(args.bin, tmp)
        test_bad_input(args.bin, tmp)
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
