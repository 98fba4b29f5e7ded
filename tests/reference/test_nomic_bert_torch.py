#!/usr/bin/env python3
"""nomic-bert encoders (Nomic Embed's architecture) against a PyTorch reference.

A random NomicBertModel is made here in PyTorch — random weights and LayerNorm weights and biases — and written as a
Hugging Face directory (nomic-ai's config.json fields and tensor names, the golden bert-bge WordPiece vocabulary as
tokenizer.json). The reference forward pass is written here from the architecture's definition (Nussbaum et al. 2024;
nomic-ai's modeling code): x = LN(E_tok + E_type[0]) with no position embedding; per layer, q, k, v from one fused
projection, rotary positions on q and k (base 1000, the two halves of each head paired: rotate_half), bidirectional
attention, x = LN(x + Attn W_o), x = LN(x + (SiLU(x W_fc12) ⊙ x W_fc11) W_fc2), no biases on the projections; the
sentence embedding is the mean over the tokens, L2-normalised.

Checked: `llmforge embed` on the directory and on the GGUF `llmforge convert` makes of it equals the reference
(≤ 1e-4) for texts of several lengths; the GGUF is llama.cpp's "nomic-bert" (names and keys); GGUF → directory → the
same embeddings; `init --preset nomic-bert-tiny` makes a model that embeds; `embed train` trains one (loss falls).

Run: /usr/bin/python3 tests/reference/test_nomic_bert_torch.py --bin build/llmforge [--golden DIR]
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_bert_torch import RESULTS, check, args_and_vocab, model_dir, write_safetensors  # noqa: E402
import gguf_raw  # noqa: E402

def rotate(x, base):
    """Rotary positions, half-split pairs (i, i + d/2): x·cos + rotate_half(x)·sin; x is [heads, n, d]."""
    n, d = x.shape[1], x.shape[2]
    inv = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)           # [d/2]
    ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None, :]          # [n, d/2]
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def reference(w, cfg, ids):
    C, H, L, eps = cfg["n_embd"], cfg["n_head"], cfg["n_layer"], cfg["layer_norm_epsilon"]
    d = C // H
    n = len(ids)
    ln = lambda x, p: torch.nn.functional.layer_norm(x, (C,), w[p + ".weight"], w[p + ".bias"], eps)
    lin = lambda x, p: x @ w[p + ".weight"].T
    x = ln(w["embeddings.word_embeddings.weight"][ids] + w["embeddings.token_type_embeddings.weight"][0], "emb_ln")
    for l in range(L):
        p = f"encoder.layers.{l}."
        qkv = lin(x, p + "attn.Wqkv")
        q, k, v = (qkv[:, i * C:(i + 1) * C].view(n, H, d).transpose(0, 1) for i in range(3))
        q, k = rotate(q, cfg["rotary_emb_base"]), rotate(k, cfg["rotary_emb_base"])
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), dim=-1)  # bidirectional: no mask
        o = (att @ v).transpose(0, 1).reshape(n, C)
        x = ln(x + lin(o, p + "attn.out_proj"), p + "norm1")
        h = torch.nn.functional.silu(lin(x, p + "mlp.fc12")) * lin(x, p + "mlp.fc11")
        x = ln(x + lin(h, p + "mlp.fc2"), p + "norm2")
    e = x.mean(0)
    return e / e.norm()


def make_nomic(d, seed=0):
    torch.manual_seed(seed)
    cfg = {"architectures": ["NomicBertModel"], "model_type": "nomic_bert", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_inner": 96,
           "n_positions": 128, "vocab_size": 30522, "type_vocab_size": 2, "layer_norm_epsilon": 1e-12, "rotary_emb_base": 1000,
           "rotary_emb_fraction": 1.0, "activation_function": "swiglu", "qkv_proj_bias": False, "mlp_fc1_bias": False,
           "mlp_fc2_bias": False, "prenorm": False, "causal": False, "pad_token_id": 0}
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    C, F = cfg["n_embd"], cfg["n_inner"]
    w = {"embeddings.word_embeddings.weight": torch.randn(30522, C) * 0.5, "embeddings.token_type_embeddings.weight": torch.randn(2, C) * 0.5}
    norm = lambda p: w.update({p + ".weight": 1 + 0.2 * torch.randn(C), p + ".bias": 0.2 * torch.randn(C)})
    dense = lambda p, o, i: w.update({p + ".weight": torch.randn(o, i) / math.sqrt(i)})
    norm("emb_ln")
    for l in range(cfg["n_layer"]):
        p = f"encoder.layers.{l}."
        dense(p + "attn.Wqkv", 3 * C, C)
        dense(p + "attn.out_proj", C, C)
        norm(p + "norm1")
        dense(p + "mlp.fc11", F, C)
        dense(p + "mlp.fc12", F, C)
        dense(p + "mlp.fc2", C, F)
        norm(p + "norm2")
    write_safetensors(os.path.join(d, "model.safetensors"), {k: v.float() for k, v in w.items()})
    return cfg, {k: v.float().double() for k, v in w.items()}


def embed(bin_, model, texts_file, *extra):
    r = subprocess.run([bin_, "embed", "-m", model, "-f", texts_file, "--jsonl", "-t", "2", *extra], capture_output=True, text=True)
    return r, [torch.tensor(json.loads(l), dtype=torch.float64) for l in r.stdout.split("\n") if l]


def main():
    a, vocab = args_and_vocab()
    if not vocab:
        return 0
    torch.set_default_dtype(torch.float64)
    with tempfile.TemporaryDirectory() as tmp:
        d = model_dir(a.bin, vocab, tmp, "nomic")
        cfg, w = make_nomic(d)
        gguf = os.path.join(tmp, "nomic.gguf")
        r = subprocess.run([a.bin, "convert", d, gguf], capture_output=True, text=True)
        check("convert: the NomicBertModel directory to GGUF", r.returncode == 0, r.stderr.strip()[-200:])
        meta, tensors = gguf_raw.read(gguf)
        names = {t[0] for t in tensors}
        check("the GGUF is llama.cpp's nomic-bert: its architecture, keys and tensor names",
              meta.get("general.architecture") == "nomic-bert" and meta.get("nomic-bert.rope.freq_base") == 1000.0
              and meta.get("nomic-bert.pooling_type") == 1 and meta.get("nomic-bert.attention.causal") is False
              and {"token_embd.weight", "token_types.weight", "token_embd_norm.weight", "token_embd_norm.bias", "blk.0.attn_qkv.weight",
                   "blk.0.attn_output.weight", "blk.0.attn_output_norm.bias", "blk.0.ffn_up.weight", "blk.0.ffn_gate.weight",
                   "blk.0.ffn_down.weight", "blk.1.layer_output_norm.weight"} <= names and not any("bias" in n and "norm" not in n for n in names),
              f"{meta.get('general.architecture')}, {len(names)} tensors")

        texts = ["Hello world", "The quick brown fox jumps over the lazy dog.", "Ünïcödé, 中文 and emoji 🦙 mixed!", "retrieval " * 120 + "end"]
        tj = os.path.join(tmp, "texts.jsonl")
        open(tj, "w").write("\n".join(json.dumps({"text": t}) for t in texts) + "\n")
        ids = [json.loads(l) for l in subprocess.run([a.bin, "tokenize", "--tokenizer", os.path.join(d, "tokenizer.json"), "-f", tj, "--jsonl"],
                                                     check=True, capture_output=True, text=True).stdout.split("\n") if l]
        refs = [reference(w, cfg, x) for x in ids]
        for model, what in ((d, "Hugging Face directory"), (gguf, "GGUF")):
            r, got = embed(a.bin, model, tj)
            err = max((float((g - e).abs().max()) for g, e in zip(got, refs)), default=1.0) if len(got) == len(refs) else 1.0
            check(f"embed {what}: equals PyTorch (≤ 1e-4; {len(ids[-1])} tokens the longest)", r.returncode == 0 and err <= 1e-4,
                  f"max |diff| {err:.2e}" + ("" if r.returncode == 0 else " " + r.stderr.strip()[-200:]))
        # without RoPE the texts' embeddings would not depend on word order: a check that positions count
        r, got = embed(a.bin, gguf, tj)
        swapped = os.path.join(tmp, "swapped.jsonl")
        open(swapped, "w").write(json.dumps({"text": "world Hello"}) + "\n")
        r2, got2 = embed(a.bin, gguf, swapped)
        check("word order changes the embedding (rotary positions)", r2.returncode == 0 and float((got2[0] - got[0]).abs().max()) > 1e-3)
        back = os.path.join(tmp, "back")
        subprocess.run([a.bin, "convert", gguf, back], check=True, capture_output=True)
        r, got = embed(a.bin, back, tj)
        err = max((float((g - e).abs().max()) for g, e in zip(got, refs)), default=1.0) if len(got) == len(refs) else 1.0
        hf = json.load(open(os.path.join(back, "config.json")))
        check("GGUF → Hugging Face directory: nomic_bert's config and the same embeddings",
              hf.get("model_type") == "nomic_bert" and hf.get("rotary_emb_base") == 1000 and r.returncode == 0 and err <= 1e-4, f"max |diff| {err:.2e}")
        # the preset and training
        tiny = os.path.join(tmp, "tiny.gguf")
        r = subprocess.run([a.bin, "init", "--preset", "nomic-bert-tiny", "--tokenizer", vocab, "-o", tiny], capture_output=True, text=True)
        r2, got = embed(a.bin, tiny, tj) if r.returncode == 0 else (r, [])
        check("init --preset nomic-bert-tiny embeds", r.returncode == 0 and r2.returncode == 0 and len(got) == len(texts)
              and all(abs(float(g.norm()) - 1) < 1e-5 for g in got))
        pairs = os.path.join(tmp, "pairs.jsonl")
        with open(pairs, "w") as f:
            for i, (q, p) in enumerate([("kettle limescale", "vinegar dissolves limescale in a kettle"), ("bread oven", "bake the bread in a hot oven"),
                                        ("bicycle chain", "oil the bicycle chain every month"), ("garden water", "water the garden in the morning")]):
                f.write(json.dumps({"query": q, "positive": p}) + "\n")
        r = subprocess.run([a.bin, "embed", "train", "-m", tiny, "--pairs", pairs, "-o", os.path.join(tmp, "t.gguf"), "--steps", "30", "-b", "4",
                            "--lr", "1e-3", "--json", "-q"], capture_output=True, text=True)
        res = json.loads(r.stdout) if r.returncode == 0 else {}
        check("embed train trains a nomic-bert (the loss falls)", r.returncode == 0 and res["last_epoch_loss"] < 0.5 * res["first_loss"],
              f"{res.get('first_loss')} → {res.get('last_epoch_loss')}" if res else r.stderr.strip()[-200:])
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
