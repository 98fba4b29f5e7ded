#!/usr/bin/env python3
"""The alignment losses against PyTorch: for random GPT-2 and LLaMA (grouped-query attention) models and fixed
roll-outs, the Bradley–Terry reward-model loss, DPO, PPO (clipped policy ratio + clipped value loss, with the KL
penalty in the per-token rewards and GAE) and GRPO (group-normalised advantages, clipped ratio, k3 KL to the
reference) must equal a plain PyTorch implementation's (float64 autograd), loss and the gradient of every parameter
(the scalar head's included), to 1e-4 relative — `llmforge align-loss` runs one forward/backward pass of each.

The PyTorch side is written from the papers' formulas (Ouyang et al. 2022, Rafailov et al. 2023, Shao et al. 2024)
and TRL's conventions (masked whitening with the unbiased variance, std + 1e-4 in GRPO), independently of the C++.

Run: /usr/bin/python3 tests/reference/test_align.py --bin build/llmforge
"""
import argparse
import json
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


def make_batch(rng, V, rows, T):
    """Rows of prompt + response padded to T positions: inputs, targets (−1 outside the response), last positions."""
    inputs, targets, last = [], [], []
    for _ in range(rows):
        length = int(rng.integers(T // 2, T + 1))  # tokens in the row (≤ T inputs + 1)
        prompt = int(rng.integers(2, length // 2 + 1))
        seq = rng.integers(1, V, size=length + 1)
        inp = list(seq[:-1]) + [0] * (T - length)
        tgt = [int(seq[t + 1]) if t >= prompt - 1 and t < length else -1 for t in range(T)]
        inputs.append([int(x) for x in inp])
        targets.append(tgt)
        last.append(length - 1)
    return inputs, targets, last


def torch_pass(w, cfg, forward, inputs, targets, head=None, temperature=1.0):
    """Per-position log p(target) [B, T] (0 where masked) of softmax(logits / temperature), and head outputs [B, T]
    (if a head (W, b) is given)."""
    logps, values = [], []
    for row, tg in zip(inputs, targets):
        logits, h = forward(w, cfg, row, hidden=True)
        lp = F.log_softmax(logits / temperature, dim=-1)
        t = torch.tensor(tg)
        logps.append(torch.where(t >= 0, lp.gather(1, t.clamp(min=0)[:, None])[:, 0], torch.zeros((), dtype=lp.dtype)))
        if head is not None:
            values.append(h @ head[0][0] + head[1][0])
    return torch.stack(logps), (torch.stack(values) if head is not None else None)


def run_ours(binary, model, spec, tmp, tag):
    path = os.path.join(tmp, f"{tag}.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    gdir = os.path.join(tmp, f"{tag}-grads")
    r = subprocess.run([binary, "align-loss", "-m", model, "--spec", path, "--grads-out", gdir, "-t", "2"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"align-loss failed: {r.stderr.strip()}")
    return json.loads(r.stdout), read_safetensors(os.path.join(gdir, "model.safetensors"))


def compare(name, ours, ours_g, loss, w64, head=None):
    e = abs(ours["loss"] - loss.item()) / max(abs(loss.item()), 1e-12)
    check(f"{name}: loss vs PyTorch", e <= 1e-4, f"ours {ours['loss']:.7f}, torch {loss.item():.7f}, rel {e:.1e}")
    worst, worst_name, nonzero = 0.0, "", 0
    for k, p in w64.items():
        g = p.grad.numpy() if p.grad is not None else np.zeros(p.shape)
        nonzero += int(np.abs(g).max() > 0)
        r = rel(ours_g[k], g) if np.abs(g).max() > 0 else float(np.abs(ours_g[k]).max())
        if r > worst:
            worst, worst_name = r, k
    if head is not None:
        for key, t in (("cls.output.weight", head[0]), ("cls.output.bias", head[1])):
            r = rel(np.array(ours["grad:" + key]).reshape(t.shape), t.grad.numpy())
            if r > worst:
                worst, worst_name = r, key
    check(f"{name}: gradients of all {len(w64)} parameters{' and the head' if head is not None else ''} vs PyTorch",
          worst <= 1e-4 and nonzero > len(w64) // 2, f"worst rel err {worst:.1e} ({worst_name}); {nonzero} non-zero")


def fresh(w):
    return {k: v.to(torch.float64).clone().requires_grad_(True) for k, v in w.items()}


def head_from(ours):
    W = torch.tensor(ours["cls.output.weight"], dtype=torch.float64).reshape(1, -1).requires_grad_(True)
    b = torch.tensor(ours["cls.output.bias"], dtype=torch.float64).reshape(1).requires_grad_(True)
    return W, b


def masked_whiten(x, m):
    mean = (x * m).sum() / m.sum()
    var = (((x - mean) ** 2) * m).sum() / m.sum()
    var = var * m.sum() / (m.sum() - 1)  # unbiased
    return (x - mean) * torch.rsqrt(var + 1e-8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(2024)
    with tempfile.TemporaryDirectory() as tmp:
        for name, maker, kl, agg, tau in (("gpt2", P.make_gpt2, "k1", "sequence", 1.0), ("llama-gqa", P.make_llama, "k3", "token", 0.7)):
            cfg, w, forward = maker(5)
            V = cfg["vocab_size"]
            d = P.write_model_dir(os.path.join(tmp, name), cfg, w)

            # ---- reward model: Bradley–Terry with centring, reward read at each row's last token
            inputs, targets, last = make_batch(rng, V, 6, 20)
            none = [[-1] * len(r) for r in targets]
            pairs = [[0, 1], [2, 3], [5, 4]]
            spec = {"kind": "bt", "inputs": inputs, "targets": none, "last": last, "pairs": pairs, "center": 0.01, "head_seed": 3, "head_std": 0.5}
            ours, og = run_ours(args.bin, d, spec, tmp, f"{name}-bt")
            w64, hd = fresh(w), head_from(ours)
            _, val = torch_pass(w64, cfg, forward, inputs, none, hd)
            r = torch.stack([val[i, last[i]] for i in range(len(inputs))])
            rc, rr = r[[p[0] for p in pairs]], r[[p[1] for p in pairs]]
            loss = -F.logsigmoid(rc - rr).mean() + 0.01 * ((rc + rr) ** 2).mean()
            loss.backward()
            compare(f"{name} Bradley–Terry", ours, og, loss, w64, hd)

            # ---- DPO: sequence log-probabilities of the responses against cached reference ones; then with RPO's
            #      α · mean(−log π(y⁺)/|y⁺|) term on the chosen answers
            inputs, targets, last = make_batch(rng, V, 6, 20)
            with torch.no_grad():
                lp0, _ = torch_pass(fresh(w), cfg, forward, inputs, targets)
            ref = (lp0.sum(1) + torch.tensor(rng.normal(0, 1.0, size=6))).tolist()
            pairs = [[0, 1], [3, 2], [4, 5]]
            for beta, ls, alpha in ((0.5, 0.1, 0.0), (0.3, 0.0, 1.0)):
                spec = {"kind": "dpo", "inputs": inputs, "targets": targets, "pairs": pairs, "ref_logp": ref, "beta": beta,
                        "label_smoothing": ls, "rpo_alpha": alpha}
                ours, og = run_ours(args.bin, d, spec, tmp, f"{name}-dpo-{alpha}")
                w64 = fresh(w)
                lp, _ = torch_pass(w64, cfg, forward, inputs, targets)
                seq = lp.sum(1)
                ntok = (torch.tensor(targets) >= 0).sum(1).to(torch.float64)
                reft = torch.tensor(ref, dtype=torch.float64)
                c, rj = [p[0] for p in pairs], [p[1] for p in pairs]
                h = beta * ((seq[c] - reft[c]) - (seq[rj] - reft[rj]))
                loss = (-(1 - ls) * F.logsigmoid(h) - ls * F.logsigmoid(-h)).mean() + alpha * (-seq[c] / ntok[c]).mean()
                loss.backward()
                compare(f"{name} DPO (β {beta}, label smoothing {ls}, RPO α {alpha})", ours, og, loss, w64)

            # ---- PPO: KL-penalised per-token rewards, GAE, whitened advantages, clipped ratio and value losses
            inputs, targets, last = make_batch(rng, V, 4, 20)
            mask = torch.tensor(targets) >= 0
            with torch.no_grad():
                lp0, _ = torch_pass(fresh(w), cfg, forward, inputs, targets)
            B, T = lp0.shape
            old = torch.where(mask, lp0 + torch.tensor(rng.normal(0, 0.25, size=(B, T))), torch.zeros(()))
            reflp = torch.where(mask, lp0 + torch.tensor(rng.normal(0, 0.5, size=(B, T))), torch.zeros(()))
            old_v = torch.where(mask, torch.tensor(rng.normal(0, 0.5, size=(B, T))), torch.zeros(()))
            scores = rng.normal(0, 1.0, size=B).tolist()
            pc = dict(beta=0.1, gamma=0.99, lam=0.9, clip=0.2, vclip=0.2, vf=0.1)
            spec = {"kind": "ppo", "inputs": inputs, "targets": targets, "old_logp": old.tolist(), "ref_logp": reflp.tolist(),
                    "old_values": old_v.tolist(), "scores": scores, "beta": pc["beta"], "kl": kl, "gamma": pc["gamma"], "lambda": pc["lam"],
                    "clip": pc["clip"], "value_clip": pc["vclip"], "vf_coef": pc["vf"], "whiten": True, "head_seed": 9, "head_std": 0.3}
            ours, og = run_ours(args.bin, d, spec, tmp, f"{name}-ppo")
            # targets of the roll-out (no gradient)
            lr = old - reflp
            klt = lr if kl == "k1" else torch.expm1(-lr) + lr
            rewards = torch.where(mask, -pc["beta"] * klt, torch.zeros(()))
            adv = torch.zeros(B, T, dtype=torch.float64)
            for b in range(B):
                pos = [t for t in range(T) if mask[b, t]]
                rewards[b, pos[-1]] += scores[b]
                nv, na = 0.0, 0.0
                for t in reversed(pos):
                    delta = rewards[b, t] + pc["gamma"] * nv - old_v[b, t]
                    na = delta + pc["gamma"] * pc["lam"] * na
                    nv = old_v[b, t]
                    adv[b, t] = na
            returns = adv + old_v
            advw = masked_whiten(adv, mask.double())
            e_adv = float((torch.tensor(ours["advantages"]).reshape(B, T) - torch.where(mask, advw, torch.zeros(()))).abs().max())
            e_ret = float((torch.tensor(ours["returns"]).reshape(B, T) - torch.where(mask, returns, torch.zeros(()))).abs().max())
            check(f"{name} PPO ({kl}): whitened GAE advantages and returns vs PyTorch", e_adv <= 1e-4 and e_ret <= 1e-4,
                  f"max abs err {e_adv:.1e}, {e_ret:.1e}")
            w64, hd = fresh(w), head_from(ours)
            lp, val = torch_pass(w64, cfg, forward, inputs, targets, hd)
            m = mask.double()
            ratio = torch.exp(lp - old)
            pg = torch.maximum(-advw * ratio, -advw * torch.clamp(ratio, 1 - pc["clip"], 1 + pc["clip"]))
            pg_loss = (pg * m).sum() / m.sum()
            vc = torch.clamp(val, old_v - pc["vclip"], old_v + pc["vclip"])
            vf = 0.5 * torch.maximum((val - returns) ** 2, (vc - returns) ** 2)
            vf_loss = (vf * m).sum() / m.sum()
            loss = pg_loss + pc["vf"] * vf_loss
            clipped = float(((pg > -advw * ratio).double() * m).sum() / m.sum())
            loss.backward()
            compare(f"{name} PPO ({kl} KL penalty; {clipped:.0%} of ratios clipped)", ours, og, loss, w64, hd)

            # ---- GRPO: groups of G answers per prompt, group-normalised advantages, clipped ratio, k3 KL
            G = 3
            inputs, targets, last = make_batch(rng, V, 2 * G, 20)
            mask = torch.tensor(targets) >= 0
            with torch.no_grad():
                lp0, _ = torch_pass(fresh(w), cfg, forward, inputs, targets, temperature=tau)
            B, T = lp0.shape
            old = torch.where(mask, lp0 + torch.tensor(rng.normal(0, 0.25, size=(B, T))), torch.zeros(()))
            reflp = torch.where(mask, lp0 + torch.tensor(rng.normal(0, 0.3, size=(B, T))), torch.zeros(()))
            rewards = rng.normal(0, 1.0, size=B).tolist()
            gc = dict(clip_low=0.2, clip_high=0.28, beta=0.04)
            spec = {"kind": "grpo", "inputs": inputs, "targets": targets, "old_logp": old.tolist(), "ref_logp": reflp.tolist(), "rewards": rewards,
                    "group": G, "clip_low": gc["clip_low"], "clip_high": gc["clip_high"], "beta": gc["beta"], "scale_rewards": True, "aggregate": agg,
                    "temperature": tau}
            ours, og = run_ours(args.bin, d, spec, tmp, f"{name}-grpo")
            rw = torch.tensor(rewards, dtype=torch.float64).reshape(-1, G)
            A = ((rw - rw.mean(1, keepdim=True)) / (rw.std(1, keepdim=True) + 1e-4)).reshape(-1)
            e_a = float((torch.tensor(ours["advantages"]) - A).abs().max())
            check(f"{name} GRPO: group-normalised advantages vs PyTorch", e_a <= 1e-6, f"max abs err {e_a:.1e}")
            w64 = fresh(w)
            lp, _ = torch_pass(w64, cfg, forward, inputs, targets, temperature=tau)
            m = mask.double()
            ratio = torch.exp(lp - old)
            per = -torch.minimum(ratio * A[:, None], torch.clamp(ratio, 1 - gc["clip_low"], 1 + gc["clip_high"]) * A[:, None])
            dd = reflp - lp
            per = per + gc["beta"] * (torch.exp(dd) - dd - 1)
            if agg == "sequence":
                loss = ((per * m).sum(1) / m.sum(1)).mean()
            else:
                loss = (per * m).sum() / m.sum()
            loss.backward()
            compare(f"{name} GRPO ({agg} mean, clip {gc['clip_low']}/{gc['clip_high']}, β {gc['beta']}, temperature {tau})", ours, og, loss, w64)
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
