#!/usr/bin/env python3
"""Quantised KV caches (--cache-type-k / --cache-type-v, llama.cpp's names) against a PyTorch reference (float64) that
stores keys and values the way ggml's CPU backend does: q8_0 with its x86 rounding (d = amax/127 kept in f16, values
x·127/amax rounded to nearest even), q4_0 with its reference quantiser (d = the value of largest magnitude / −8 in f16,
values ⌊x/d + 8.5⌋ capped at 15); where the keys are a block type, each query head is itself quantised to q8_0 (ggml's
vec_dot partner) and the scores are the blocks' products; where they are f16, query and keys are rounded to f16, and
f16 values take attention weights rounded to f16. A LLaMA-shaped model (GQA, 32-dim heads, one block per head) runs
40 tokens as one prompt and one token at a time; the logits must equal the reference's to 5e-4 relative (a value that lands on a
rounding boundary may round the other way from float64 inputs: most cases agree to 1e-6), while the
quantisation moves them at least ten times further from the unquantised model's (so the check can fail)."""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_torch_parity as P  # noqa: E402
import test_torch_train as TT  # noqa: E402

F32 = np.float32


def f16(x):
    return np.asarray(x, dtype=F32).astype(np.float16).astype(np.float64)


def q8_0(x):
    """Rows of 32 values (float32) → dequantised as ggml's x86 quantize_row_q8_0 stores them."""
    x = np.asarray(x, dtype=F32).reshape(-1, 32)
    amax = np.abs(x).max(axis=1, keepdims=True)
    d = amax / F32(127)
    with np.errstate(divide="ignore"):
        idv = np.where(amax != 0, F32(127) / amax, F32(0)).astype(F32)
    q = np.rint((x * idv).astype(F32))
    return (q * f16(d)).reshape(-1)


def q4_0(x):
    """Rows of 32 values → dequantised as quantize_row_q4_0_ref stores them."""
    x = np.asarray(x, dtype=F32).reshape(-1, 32)
    idx = np.abs(x).argmax(axis=1)
    mx = x[np.arange(len(x)), idx][:, None]
    d = (mx / F32(-8)).astype(F32)
    with np.errstate(divide="ignore"):
        idv = np.where(d != 0, F32(1) / d, F32(0)).astype(F32)
    q = np.minimum(15, np.trunc((x * idv).astype(F32) + F32(8.5)).astype(np.int64))
    return ((q - 8) * f16(d)).reshape(-1)


STORE = {"f16": f16, "q8_0": q8_0, "q4_0": q4_0}


def quantised_forward(w, cfg, tokens, kt, vt):
    C, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = C // H
    T = len(tokens)
    eps = cfg["rms_norm_eps"]
    cos, sin = P.rope_tables(cfg, d, T)
    x = w["model.embed_tokens.weight"][tokens]
    st = lambda f, t: torch.tensor(f(t.numpy()).reshape(t.shape))
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = P.rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = P.proj(w, h, p + "self_attn.q_proj").reshape(T, H, d).transpose(0, 1)
        k = P.proj(w, h, p + "self_attn.k_proj").reshape(T, KV, d).transpose(0, 1)
        v = P.proj(w, h, p + "self_attn.v_proj").reshape(T, KV, d).transpose(0, 1)
        q = q * cos + P.rotate_half(q) * sin
        k = k * cos + P.rotate_half(k) * sin
        if kt is not None:  # the cache's keys; the queries as the keys' product takes them
            k = st(STORE[kt], k.contiguous())
            q = st(f16 if kt == "f16" else q8_0, q.contiguous())
        if vt is not None:
            v = st(STORE[vt], v.contiguous())
        k = k.repeat_interleave(H // KV, dim=0)
        v = v.repeat_interleave(H // KV, dim=0)
        scores = q @ k.transpose(1, 2) / d ** 0.5
        scores = scores.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1), float("-inf"))
        att = torch.softmax(scores, dim=-1)
        if vt == "f16":
            att = torch.tensor(f16(att.numpy()))
        y = (att @ v).transpose(0, 1).reshape(T, -1)
        x = x + y @ w[p + "self_attn.o_proj.weight"].T
        h = P.rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = torch.nn.functional.silu(h @ w[p + "mlp.gate_proj.weight"].T)
        x = x + (g * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
    x = P.rms_norm(x, w["model.norm.weight"], eps)
    return x @ w["lm_head.weight"].T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(3)
    C, F, V, H, KV, L = 128, 256, 301, 4, 2, 2
    cfg = {"model_type": "llama", "hidden_size": C, "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": H,
           "num_key_value_heads": KV, "max_position_embeddings": 64, "vocab_size": V, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
           "tie_word_embeddings": False}
    r = lambda *s, std=0.15: torch.randn(*s, generator=g) * std
    w = {"model.embed_tokens.weight": r(V, C, std=0.5), "model.norm.weight": 1 + r(C), "lm_head.weight": r(V, C)}
    for l in range(L):
        p = f"model.layers.{l}."
        w.update({p + "input_layernorm.weight": 1 + r(C), p + "self_attn.q_proj.weight": r(C, C, std=0.3),
                  p + "self_attn.k_proj.weight": r(KV * 32, C, std=0.3), p + "self_attn.v_proj.weight": r(KV * 32, C),
                  p + "self_attn.o_proj.weight": r(C, C), p + "post_attention_layernorm.weight": 1 + r(C),
                  p + "mlp.gate_proj.weight": r(F, C), p + "mlp.up_proj.weight": r(F, C), p + "mlp.down_proj.weight": r(C, F)})
    w64 = {k: v.to(torch.float64) for k, v in w.items()}
    tokens = np.random.default_rng(5).integers(0, V, size=40).tolist()
    toks = ",".join(map(str, tokens))
    with tempfile.TemporaryDirectory() as tmp:
        d = P.write_model_dir(os.path.join(tmp, "m"), cfg, w)
        with torch.no_grad():
            plain = quantised_forward(w64, cfg, tokens, None, None).numpy()
        for kt, vt in (("q8_0", "q8_0"), ("q4_0", "q4_0"), ("q8_0", "q4_0"), ("f16", "q8_0"), ("q4_0", "f16")):
            with torch.no_grad():
                ref = quantised_forward(w64, cfg, tokens, kt, vt).numpy()
            moved = float(np.abs(ref - plain).max() / np.abs(plain).max())
            for mode in ([], ["--incremental"]):
                o = subprocess.run([args.bin, "logits", "-m", d, "--tokens", toks, "--cache-type-k", kt, "--cache-type-v", vt, "-t", "2", *mode],
                                   check=True, capture_output=True, text=True).stdout
                ours = np.array([[float(x) for x in line.split()[1:]] for line in o.strip().splitlines()])
                e = float(np.abs(ours - ref).max() / np.abs(ref).max())
                how = "one token at a time" if mode else "one prompt"
                TT.check(f"K {kt}, V {vt}, {how}: logits vs PyTorch with the same cache", e <= 5e-4 and moved >= 10 * 5e-4,
                         f"rel {e:.1e}; the quantisation moved them {moved:.1e}")
        bad = subprocess.run([args.bin, "logits", "-m", d, "--tokens", toks, "--cache-type-k", "q4_k"], capture_output=True, text=True)
        TT.check("a cache type llama.cpp's cache does not take: one line, exit 2",
                 bad.returncode == 2 and [l for l in bad.stderr.splitlines() if "error" in l] == [bad.stderr.strip().splitlines()[-1]]
                 and "q4_k" in bad.stderr, bad.stderr.strip().splitlines()[-1])
    print(f"{TT.RESULTS['passed']} passed, {TT.RESULTS['failed']} failed")
    sys.exit(1 if TT.RESULTS["failed"] else 0)


if __name__ == "__main__":
    main()
