#!/usr/bin/env python3
"""The distillation losses against PyTorch: a random GPT-2 teacher and a smaller random LLaMA student (grouped-query
attention) sharing a vocabulary; forward KL, reverse KL and generalised JSD(β), each at temperatures 1 and 2, against
the full teacher distribution and against its top-k (k tokens + the remaining mass), mixed with the hard-label
cross-entropy by α. The loss and the gradient of every student parameter must equal a plain PyTorch implementation's
(float64 autograd) to 1e-5 relative — `llmforge distill-loss` runs one forward/backward pass of each. The top-k rows
(ids, log-probabilities at τ) and the remaining mass are checked against torch.topk and 1 − Σ top-k.

The PyTorch side follows the papers' definitions (Hinton et al. 2015: KL(p_t ‖ p_s) at temperature τ, scaled by τ²;
Agarwal et al. 2024: JSD(β) = β·KL(p ‖ m) + (1 − β)·KL(q ‖ m), m = β·p + (1 − β)·q, TRL's generalized_jsd_loss), with
torch.nn.functional.kl_div for each KL, independently of the C++.

Run: /usr/bin/python3 tests/reference/test_distill_torch.py --bin build/llmforge
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_torch_parity as P  # noqa: E402  (the reference models and the safetensors writer)
from test_torch_train import read_safetensors, rel  # noqa: E402

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
F = torch.nn.functional
RESULTS = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


def kl(log_a, log_b):
    """KL(a ‖ b) per row from log-probabilities: Σ a (log a − log b), as F.kl_div(input=log b, target=log a)."""
    return F.kl_div(log_b, log_a, reduction="none", log_target=True).sum(-1)


def buckets(lp, lq, ids):
    """Teacher and student log-probabilities on the teacher's top-k tokens and the rest (its mass outside them)."""
    V = lp.shape[-1]
    mask = torch.zeros_like(lp, dtype=torch.bool).scatter_(1, ids, True)
    rest = lambda l: torch.logsumexp(l.masked_fill(mask, -math.inf), dim=-1, keepdim=True)
    return torch.cat([lp.gather(1, ids), rest(lp)], 1), torch.cat([lq.gather(1, ids), rest(lq)], 1)


def reference(zs, zt, targets, loss, tau, beta, alpha, k):
    m = targets >= 0
    lq, lp = F.log_softmax(zs / tau, -1), F.log_softmax(zt / tau, -1)
    if k:
        ids = torch.topk(zt, k, dim=-1).indices
        lp, lq = buckets(lp, lq, ids)
    if loss == "forward-kl":
        d = kl(lp, lq)
    elif loss == "reverse-kl":
        d = kl(lq, lp)
    else:
        mix = torch.logsumexp(torch.stack([lp + math.log(beta), lq + math.log(1 - beta)]), dim=0)
        d = beta * kl(lp, mix) + (1 - beta) * kl(lq, mix)
    div = d[m].mean()
    ce = F.cross_entropy(zs, targets, ignore_index=-1)
    return alpha * tau * tau * div + (1 - alpha) * ce, div, ce


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        tcfg, tw, tforward = P.make_gpt2(11)
        scfg, sw, sforward = P.make_llama(12, C=32, F=64, H=4, KV=2, L=2)
        teacher = P.write_model_dir(os.path.join(tmp, "teacher"), tcfg, tw)
        student = P.write_model_dir(os.path.join(tmp, "student"), scfg, sw)
        V, B, T = 301, 3, 24
        inputs = rng.integers(1, V, size=(B, T)).tolist()
        targets = rng.integers(1, V, size=(B, T))
        targets[:, :5] = -1  # a prompt: not trained on
        targets[2, 20:] = -1
        targets = targets.tolist()
        t64 = {k: v.to(torch.float64) for k, v in tw.items()}
        with torch.no_grad():
            zt = torch.cat([tforward(t64, tcfg, row) for row in inputs])  # [B·T, V]
        tg = torch.tensor(targets).reshape(-1)
        for loss, beta in (("forward-kl", 0.5), ("reverse-kl", 0.5), ("jsd", 0.3)):
            for tau in (1.0, 2.0):
                for k in (0, 20):
                    spec = {"inputs": inputs, "targets": targets, "loss": loss, "temperature": tau, "beta": beta, "alpha": 0.7, "top_k": k}
                    tag = f"{loss}-t{tau:g}-k{k}"
                    path = os.path.join(tmp, tag + ".json")
                    with open(path, "w") as f:
                        json.dump(spec, f)
                    gdir = os.path.join(tmp, tag + "-grads")
                    r = subprocess.run([args.bin, "distill-loss", "-m", student, "--teacher", teacher, "--spec", path, "--grads-out", gdir, "-t", "2"],
                                       capture_output=True, text=True)
                    if r.returncode != 0:
                        check(f"{tag}: distill-loss runs", False, r.stderr.strip())
                        continue
                    ours = json.loads(r.stdout)
                    og = read_safetensors(os.path.join(gdir, "model.safetensors"))
                    w64 = {n: v.to(torch.float64).clone().requires_grad_(True) for n, v in sw.items()}
                    zs = torch.cat([sforward(w64, scfg, row) for row in inputs])
                    L, div, ce = reference(zs, zt, tg, loss, tau, beta, 0.7, k)
                    L.backward()
                    e = abs(ours["loss"] - L.item()) / abs(L.item())
                    ed = abs(ours["divergence"] - div.item()) / max(abs(div.item()), 1e-12)
                    name = f"{loss}{f'(β {beta})' if loss == 'jsd' else ''}, τ {tau:g}, {'top-' + str(k) if k else 'full teacher'}"
                    check(f"{name}: loss vs PyTorch", e <= 1e-5 and ed <= 1e-5,
                          f"loss {ours['loss']:.7f} vs {L.item():.7f} (rel {e:.1e}); divergence rel {ed:.1e}")
                    worst, worst_name = 0.0, ""
                    for n, p in w64.items():
                        rr = rel(og[n], p.grad.numpy())
                        if rr > worst:
                            worst, worst_name = rr, n
                    check(f"{name}: gradients of all {len(w64)} student parameters vs PyTorch", worst <= 1e-5, f"worst rel {worst:.1e} ({worst_name})")
                    if k:
                        ids = torch.topk(zt, k, dim=-1)
                        lp = F.log_softmax(zt / tau, -1)
                        same_ids = np.array_equal(np.array(ours["top_ids"]).reshape(-1, k), ids.indices.numpy())
                        lp_err = rel(np.array(ours["top_logp"]).reshape(-1, k), lp.gather(1, ids.indices).numpy())
                        rest = torch.log1p(-lp.gather(1, ids.indices).exp().sum(-1))  # log(1 − Σ top-k p)
                        rest_err = float(np.abs(np.array(ours["log_rest"]) - rest.numpy()).max() / np.abs(rest.numpy()).max())
                        check(f"{name}: the teacher's top-{k} ids and log-probabilities, and log(1 − Σ top-k) as the remaining mass",
                              same_ids and lp_err <= 1e-5 and rest_err <= 1e-5, f"ids {'equal' if same_ids else 'differ'}, log p rel {lp_err:.1e}, rest rel {rest_err:.1e}")

        # ---- bad input: a teacher with another vocabulary
        ocfg, ow, _ = P.make_llama(13, C=32, F=64, H=4, KV=2, L=1, V=300)
        other = P.write_model_dir(os.path.join(tmp, "other"), ocfg, ow)
        r = subprocess.run([args.bin, "distill-loss", "-m", student, "--teacher", other, "--spec", path], capture_output=True, text=True)
        check("a teacher with another vocabulary: one line, exit 2, naming the shared tokenizer", r.returncode == 2 and r.stderr.count("\n") == 1
              and "shared tokenizer" in r.stderr, r.stderr.strip())

    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    raise SystemExit(1 if RESULTS["failed"] else 0)


if __name__ == "__main__":
    main()
