#!/usr/bin/env python3
"""llmforge imatrix against PyTorch: for a random LLaMA-shaped (grouped-query attention) and a GPT-2-shaped model, the
importance matrix — per weight matrix of the blocks, the mean over the calibration tokens of each input column's
square, stored as llama-imatrix stores it (values · ncall, ncall = forward passes) — must equal the squares of the
inputs that the float64 PyTorch reference forward passes feed each projection, to 1e-4 relative.

Run: /usr/bin/python3 tests/reference/test_imatrix_torch.py --bin build/llmforge
"""
import argparse
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_torch_parity as P  # noqa: E402

RESULTS = {"passed": 0, "failed": 0}
# Hugging Face projection → GGUF tensor name (the file names llmforge's tensors)
LLAMA = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
         "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
GPT2 = {"attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


def read_imatrix(path):
    b = open(path, "rb").read()
    off = 0

    def i32():
        nonlocal off
        v = struct.unpack_from("<i", b, off)[0]
        off += 4
        return v

    entries = {}
    for _ in range(i32()):
        n = i32()
        name = b[off:off + n].decode()
        off += n
        ncall, nval = i32(), i32()
        entries[name] = (ncall, np.frombuffer(b, dtype=np.float32, count=nval, offset=off).astype(np.float64))
        off += 4 * nval
    chunks = i32()
    return entries, chunks


def gguf_name(hf_weight, table):
    # "model.layers.3.mlp.down_proj.weight" / "h.3.mlp.c_proj.weight" → "blk.3.ffn_down.weight"
    parts = hf_weight.split(".")
    i = 2 if parts[0] == "model" else 1
    layer, rest = parts[i], ".".join(parts[i + 1:-1])
    return f"blk.{layer}.{table[rest]}.weight" if rest in table else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(5)
    ctx, chunks = 24, 3
    with tempfile.TemporaryDirectory() as tmp:
        for name, maker, table in (("llama-gqa", P.make_llama, LLAMA), ("gpt2", P.make_gpt2, GPT2)):
            cfg, w, forward = maker(3)
            d = P.write_model_dir(os.path.join(tmp, name), cfg, w)
            w64 = {k: v.to(torch.float64) for k, v in w.items()}
            tokens = rng.integers(0, 301, size=ctx * chunks + 5).tolist()  # 5 left over: not a whole chunk
            out = os.path.join(tmp, name + ".imatrix")
            subprocess.run([args.bin, "imatrix", "-m", d, "--tokens", ",".join(map(str, tokens)), "-c", str(ctx), "-o", out, "--cache-type", "f32"],
                           check=True, capture_output=True)
            entries, n_chunks = read_imatrix(out)
            check(f"{name}: {chunks} chunks recorded", n_chunks == chunks, f"{n_chunks}")
            # the reference: every projection's input, squared and summed per column, over each chunk's forward pass
            by_ptr = {v.data_ptr(): k for k, v in w64.items()}
            sums, rows = {}, {}
            orig = P.mm

            def mm(a, b):
                # b is W (GPT-2's Conv1D, [in, out]) or Wᵀ (a view of W [out, in]): the same storage as the weight
                k = by_ptr.get(b.data_ptr())
                g = gguf_name(k, table) if k else None
                if g:
                    sums[g] = sums.get(g, 0) + (a.detach().numpy() ** 2).sum(0)
                    rows[g] = rows.get(g, 0) + a.shape[0]
                return orig(a, b)

            P.mm = mm
            try:
                for c in range(chunks):
                    forward(w64, cfg, tokens[c * ctx:(c + 1) * ctx])
            finally:
                P.mm = orig
            check(f"{name}: one entry per block matrix", set(entries) == set(sums), f"{sorted(set(entries) ^ set(sums))[:4]}")
            worst = 0.0
            for g, (ncall, v) in entries.items():
                if g not in sums:
                    continue
                ref = sums[g] / rows[g]
                worst = max(worst, float(np.abs(v / ncall - ref).max() / np.abs(ref).max()))
                if ncall != chunks:
                    check(f"{name}: {g} ncall", False, f"{ncall} != {chunks}")
            check(f"{name}: mean squares of every matrix's inputs vs PyTorch", worst <= 1e-4, f"max rel err {worst:.2e}")
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
