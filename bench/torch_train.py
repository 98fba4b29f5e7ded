#!/usr/bin/env python3
"""The anchor side of bench_train.sh: a GPT-2-style model trained in PyTorch (Debian's python3-torch, fp32, OpenBLAS)
with AdamW on random tokens; prints {"tokens_per_s", "gflops", "peak_rss_mib"} as JSON. Timing skips warm-up steps.
Usage: OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_train.py --vocab 8192 --ctx 256 --layers 6 --heads 6 --d 384 --batch 8
"""
import argparse, json, math, resource, time
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
for k, v in (("vocab", 8192), ("ctx", 256), ("layers", 6), ("heads", 6), ("d", 384), ("batch", 8), ("steps", 10), ("warmup", 3)):
    ap.add_argument("--" + k, type=int, default=v)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)


class Block(nn.Module):
    def __init__(s, d, h):
        super().__init__()
        s.h = h
        s.ln1, s.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        s.qkv, s.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        s.fc, s.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(s, x):
        B, T, C = x.shape
        q, k, v = s.qkv(s.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, s.h, C // s.h).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // s.h)
        att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf")).softmax(-1)
        x = x + s.proj((att @ v).transpose(1, 2).reshape(B, T, C))
        return x + s.out(F.gelu(s.fc(s.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(s):
        super().__init__()
        s.wte, s.wpe = nn.Embedding(a.vocab, a.d), nn.Embedding(a.ctx, a.d)
        s.blocks = nn.ModuleList(Block(a.d, a.heads) for _ in range(a.layers))
        s.ln = nn.LayerNorm(a.d)

    def forward(s, idx, tgt):
        x = s.wte(idx) + s.wpe(torch.arange(idx.shape[1]))
        for b in s.blocks:
            x = b(x)
        logits = s.ln(x) @ s.wte.weight.T
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))


m = GPT()
opt = torch.optim.AdamW(m.parameters(), lr=3e-4, weight_decay=0.1)
data = torch.randint(0, a.vocab, (a.steps + a.warmup, a.batch, a.ctx + 1))
t0 = None
for i in range(a.steps + a.warmup):
    if i == a.warmup:
        t0 = time.time()
    opt.zero_grad(set_to_none=True)
    loss = m(data[i, :, :-1], data[i, :, 1:])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
dt = time.time() - t0
tps = a.steps * a.batch * a.ctx / dt
L, d, V, T = a.layers, a.d, a.vocab, a.ctx
flops_per_token = 6 * (12 * L * d * d + V * d) + 12 * L * T * d  # weights fwd+bwd, plus attention scores and mixing
print(json.dumps({"tokens_per_s": tps, "gflops": tps * flops_per_token / 1e9, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "loss": loss.item(), "params": sum(p.numel() for p in m.parameters())}))
