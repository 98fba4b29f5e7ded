#!/usr/bin/env python3
"""Where an importance matrix's gain goes: for one mix quantised without and with an imatrix, compare the error each
block matrix makes on the layer's own output with the KL divergence of the whole model to its f16 original.

For every weight matrix W of the blocks (ΔW = dequantised − f16, C = E[x xᵀ] of the matrix's inputs, collected on the
held-out chunks from the f16 model):
  diag  = Σ_j ‖ΔW[:, j]‖² · C_jj       the objective the imatrix weights (llama-imatrix stores C_jj)
  full  = tr(ΔW C ΔWᵀ)                 the mean squared error of the matrix's output
Then the mean KL divergence per token (second half of each chunk, as llama-perplexity scores it) of:
  the file; the file's block matrices alone (embeddings and output left f16); its embeddings/output alone; and the
  plain file's block errors scaled by s (ΔW → s·ΔW), which shows how the KL follows the error's size.

Inputs: the f16 model and both quantised files written as f32 safetensors (`llmforge convert --dtype f32 X.gguf
X.safetensors`), and token ids of held-out text (`llmforge tokenize -m f16.gguf -f heldout.txt --ids`).
Run: /usr/bin/python3 scripts/imatrix_effect.py --f16 f16.safetensors --plain Q3_K_M.safetensors \
       --imatrix Q3_K_M-imatrix.safetensors --config config.json --ids heldout.ids --chunks 64 --ctx 256
LLaMA-family models only (the reference forward of tests/reference/test_torch_parity.py).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import test_torch_parity as P  # noqa: E402


def read_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        if v["dtype"] != "F32":
            sys.exit(f"imatrix_effect: {path}: {k} is {v['dtype']}; write the files with `llmforge convert --dtype f32`")
        s, e = v["data_offsets"]
        a = np.frombuffer(b[8 + n + s:8 + n + e], dtype=np.float32).reshape(v["shape"])
        out[k] = torch.from_numpy(a.astype(np.float64))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--f16", required=True)
    ap.add_argument("--plain", required=True)
    ap.add_argument("--imatrix", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--chunks", type=int, default=64)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--scale", type=float, default=0.92)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.load(open(a.config))
    ids = json.loads(open(a.ids).read())
    T = a.ctx
    chunks = [ids[i * T:(i + 1) * T] for i in range(a.chunks)]
    if len(chunks[-1]) < T:
        sys.exit(f"imatrix_effect: {a.ids} holds {len(ids)} tokens, fewer than {a.chunks} chunks of {T}")
    F, A, B = read_safetensors(a.f16), read_safetensors(a.plain), read_safetensors(a.imatrix)
    is_block = lambda k: ".layers." in k and "norm" not in k  # noqa: E731

    # inputs' second moments of every block matrix, from the f16 model
    by_ptr = {v.data_ptr(): k for k, v in F.items()}
    C, rows, orig = {}, {}, P.mm

    def mm(x, w):
        k = by_ptr.get(w.data_ptr())
        if k and is_block(k):
            C[k] = C.get(k, 0) + (x.T @ x).numpy()
            rows[k] = rows.get(k, 0) + x.shape[0]
        return orig(x, w)

    base = []
    P.mm = mm
    try:
        for c in chunks:
            base.append(torch.log_softmax(P.llama_forward(F, cfg, c)[T // 2:], -1))
    finally:
        P.mm = orig

    print(f"{'matrix':44s} {'diag: imatrix/plain':>20s} {'full: imatrix/plain':>20s}")
    tot = np.zeros(4)
    for k in sorted(C, key=lambda s: (int(s.split(".")[2]), s)):
        Cm = C[k] / rows[k]
        da, db = (A[k] - F[k]).numpy(), (B[k] - F[k]).numpy()
        d = np.diag(Cm)
        e = [((da ** 2) * d).sum(), ((db ** 2) * d).sum(), np.einsum("ij,jk,ik->", da, Cm, da), np.einsum("ij,jk,ik->", db, Cm, db)]
        tot += e
        print(f"{k:44s} {e[1] / e[0]:20.3f} {e[3] / e[2]:20.3f}")
    print(f"{'all block matrices':44s} {tot[1] / tot[0]:20.3f} {tot[3] / tot[2]:20.3f}")

    def kl(w):
        s, n = 0.0, 0
        for c, lp in zip(chunks, base):
            lq = torch.log_softmax(P.llama_forward(w, cfg, c)[T // 2:], -1)
            s += float((lp.exp() * (lp - lq)).sum())
            n += lp.shape[0]
        return s / n

    def blocks(S, s=1.0):
        return {k: (F[k] + s * (S[k] - F[k]) if is_block(k) else F[k]) for k in F}

    print(f"mean KL divergence to f16 per token, {a.chunks} chunks of {T} (second halves):")
    for name, w in (("plain file", A), ("imatrix file", B),
                    ("plain: block matrices only", blocks(A)), ("imatrix: block matrices only", blocks(B)),
                    ("embeddings and output only", {k: (F[k] if is_block(k) else A[k]) for k in F}),
                    (f"plain: block errors x {a.scale}", blocks(A, a.scale))):
        print(f"  {name:36s} {kl(w):.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
