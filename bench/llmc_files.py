#!/usr/bin/env python3
"""Writes the inputs llm.c's CPU trainer (train_gpt2.c) reads, for bench_llmc.sh — our own files, in llm.c's formats:
  gpt2_124M.bin: int32 header[256] = {20240326, 3, maxT, V, L, NH, C, Vp}, then the f32 parameters in llm.c's order
                 (wte, wpe, ln1w, ln1b, qkvw, qkvb, attprojw, attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb, lnfw, lnfb),
                 random: N(0, 0.02) matrices and embeddings, norms 1, biases 0;
  dev/data/tinyshakespeare/tiny_shakespeare_{train,val}.bin: int32 header[256] = {20240520, 1, ntok}, then uint16 tokens
                 (taken from an llmforge token shard, GPT-2 vocabulary).
Usage: llmc_files.py OUT_DIR SHARD.bin
"""
import os, struct, sys
import numpy as np

out, shard = sys.argv[1], sys.argv[2]
maxT, V, L, NH, C, Vp = 1024, 50257, 12, 12, 768, 50304
rng = np.random.default_rng(0)
sizes = [Vp * C, maxT * C, L * C, L * C, L * 3 * C * C, L * 3 * C, L * C * C, L * C, L * C, L * C, L * 4 * C * C, L * 4 * C, L * C * 4 * C, L * C, C, C]
kinds = ["w", "w", "one", "zero", "w", "zero", "w", "zero", "one", "zero", "w", "zero", "w", "zero", "one", "zero"]
with open(os.path.join(out, "gpt2_124M.bin"), "wb") as f:
    hdr = np.zeros(256, dtype=np.int32)
    hdr[:8] = [20240326, 3, maxT, V, L, NH, C, Vp]
    f.write(hdr.tobytes())
    for n, k in zip(sizes, kinds):
        if k == "w":
            a = (rng.standard_normal(n, dtype=np.float32) * 0.02)
        else:
            a = np.full(n, 1.0 if k == "one" else 0.0, dtype=np.float32)
        f.write(a.astype(np.float32).tobytes())
with open(shard, "rb") as f:
    b = f.read()
assert b[:4] == b"LFTK" and struct.unpack("<I", b[8:12])[0] == 2
n = struct.unpack("<Q", b[16:24])[0]
toks = np.frombuffer(b[24:24 + 2 * n], dtype=np.uint16)
d = os.path.join(out, "dev/data/tinyshakespeare")
os.makedirs(d, exist_ok=True)
for name, t in (("train", toks[: int(n * 0.9)]), ("val", toks[int(n * 0.9):])):
    hdr = np.zeros(256, dtype=np.int32)
    hdr[:3] = [20240520, 1, len(t)]
    with open(os.path.join(d, f"tiny_shakespeare_{name}.bin"), "wb") as f:
        f.write(hdr.tobytes())
        f.write(t.tobytes())
print(f"wrote gpt2_124M.bin ({sum(sizes)} parameters) and {n} tokens")
