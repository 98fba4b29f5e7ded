#!/usr/bin/env python3
"""BERT encoders (embedding models) against a PyTorch reference.

A random BERT is made here in PyTorch — random weights, biases and LayerNorm weights, so every term counts — and
written as a Hugging Face directory (config.json for BertModel, model.safetensors, the golden bert-bge WordPiece
vocabulary as tokenizer.json). The reference forward pass is written here from BERT's definition (Devlin et al. 2018):
x = LN(E_tok + E_pos + E_type[0]); per layer x = LN(x + Attn(x)), x = LN(x + GELU_erf(x W_i + b_i) W_o + b_o), with
bidirectional attention; the sentence embedding is [CLS]'s hidden state or the mean over the tokens, L2-normalised.

Checked: `llmforge embed` on the directory, and on the GGUF `llmforge convert` makes of it, equals the reference
(≤ 1e-4, both poolings) for texts of several lengths (up to the whole context); a long text beyond the context is
refused with one line; training commands refuse an encoder.

Run: /usr/bin/python3 tests/reference/test_bert_torch.py --bin build/llmforge [--golden DIR]
"""
import argparse
import json
import math
import os
import struct
import shutil
import subprocess
import sys
import tempfile

import torch

RESULTS = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        data = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def reference(w, cfg, ids, pooling):
    C, H, L, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"], cfg["layer_norm_eps"]
    d = C // H
    n = len(ids)
    ln = lambda x, p: torch.nn.functional.layer_norm(x, (C,), w[p + ".weight"], w[p + ".bias"], eps)
    lin = lambda x, p: x @ w[p + ".weight"].T + w[p + ".bias"]
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] + w["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, "embeddings.LayerNorm")
    for l in range(L):
        p = f"encoder.layer.{l}."
        q = lin(x, p + "attention.self.query").view(n, H, d).transpose(0, 1)
        k = lin(x, p + "attention.self.key").view(n, H, d).transpose(0, 1)
        v = lin(x, p + "attention.self.value").view(n, H, d).transpose(0, 1)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), dim=-1)  # no mask: bidirectional
        o = (att @ v).transpose(0, 1).reshape(n, C)
        x = ln(x + lin(o, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        h = torch.nn.functional.gelu(lin(x, p + "intermediate.dense"))  # the exact (erf) GELU
        x = ln(x + lin(h, p + "output.dense"), p + "output.LayerNorm")
    e = x[0] if pooling == "cls" else x.mean(0)
    return e / e.norm()


def make_bert(d, seed=0):
    """A random BERT (float32 weights, random biases and norms) written into directory d as BertModel's config.json
    and model.safetensors; returns the config and the weights (in double, exactly the float32 values)."""
    torch.manual_seed(seed)
    cfg = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 256, "max_position_embeddings": 128, "vocab_size": 30522, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
           "hidden_act": "gelu", "position_embedding_type": "absolute", "pad_token_id": 0}
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    C, F = cfg["hidden_size"], cfg["intermediate_size"]
    w = {"embeddings.word_embeddings.weight": torch.randn(30522, C) * 0.5,
         "embeddings.position_embeddings.weight": torch.randn(128, C) * 0.5,
         "embeddings.token_type_embeddings.weight": torch.randn(2, C) * 0.5}
    norm = lambda p: w.update({p + ".weight": 1 + 0.2 * torch.randn(C), p + ".bias": 0.2 * torch.randn(C)})
    dense = lambda p, o, i: w.update({p + ".weight": torch.randn(o, i) / math.sqrt(i), p + ".bias": 0.2 * torch.randn(o)})
    norm("embeddings.LayerNorm")
    for l in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        for m in ("query", "key", "value"):
            dense(p + "attention.self." + m, C, C)
        dense(p + "attention.output.dense", C, C)
        norm(p + "attention.output.LayerNorm")
        dense(p + "intermediate.dense", F, C)
        dense(p + "output.dense", C, F)
        norm(p + "output.LayerNorm")
    w["pooler.dense.weight"], w["pooler.dense.bias"] = torch.randn(C, C), torch.randn(C)  # present in real files, unused
    write_safetensors(os.path.join(d, "model.safetensors"), {k: v.float() for k, v in w.items()})
    return cfg, {k: v.float().double() for k, v in w.items()}


def model_dir(bin_, vocab, parent, name):
    """A new directory parent/name holding the vocabulary as tokenizer.json (what a Hugging Face model directory needs
    beside its config.json and weights); returns its path."""
    d = os.path.join(parent, name)
    os.makedirs(d)
    subprocess.run([bin_, "tokenizer", "convert", vocab, os.path.join(d, "tokenizer.json")], check=True, capture_output=True)
    return d


def args_and_vocab():
    """The tests' command line (--bin, --golden) and the golden bert-bge vocabulary's path (None, said, when absent)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--golden", default=os.environ.get("LLMFORGE_GOLDEN", os.path.join(os.path.dirname(__file__), "../../../shared/golden")))
    a = ap.parse_args()
    vocab = os.path.join(a.golden, "vocab", "ggml-vocab-bert-bge.gguf")
    if not os.path.exists(vocab):
        print(f"SKIP: no golden data at {a.golden}")
        return a, None
    return a, vocab


def main():
    a, vocab = args_and_vocab()
    if not vocab:
        return 0
    torch.set_default_dtype(torch.float64)  # the reference in double: differences are llmforge's float32 rounding
    with tempfile.TemporaryDirectory() as tmp:
        d = model_dir(a.bin, vocab, tmp, "bert")
        cfg, w = make_bert(d)
        gguf = os.path.join(tmp, "bert.gguf")
        r = subprocess.run([a.bin, "convert", d, gguf], capture_output=True, text=True)
        check("convert: the Hugging Face directory to GGUF", r.returncode == 0, r.stderr.strip()[-200:])

        texts = ["Hello world", "The quick brown fox jumps over the lazy dog.", "Ünïcödé, 中文 and emoji 🦙 mixed!",
                 "retrieval " * 120 + "end"]  # the last: 123 tokens of the context's 128
        lines = "\n".join(json.dumps({"text": t}) for t in texts) + "\n"
        tj = os.path.join(tmp, "texts.jsonl")
        open(tj, "w").write(lines)
        ids = [json.loads(l) for l in subprocess.run([a.bin, "tokenize", "--tokenizer", os.path.join(d, "tokenizer.json"), "-f", tj, "--jsonl"],
                                                     check=True, capture_output=True, text=True).stdout.split("\n") if l]
        check("[CLS] … [SEP] around every text", all(x[0] == 101 and x[-1] == 102 for x in ids), str([len(x) for x in ids]))
        # sentence-transformers' 1_Pooling/config.json says [CLS]: the directory's default pooling (and the GGUF's, made
        # from it) is then [CLS]; without it, the mean
        os.makedirs(os.path.join(d, "1_Pooling"))
        json.dump({"word_embedding_dimension": 64, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False},
                  open(os.path.join(d, "1_Pooling", "config.json"), "w"))
        gguf_cls = os.path.join(tmp, "bert-cls.gguf")
        subprocess.run([a.bin, "convert", d, gguf_cls], check=True, capture_output=True)
        for model, what in ((d, "directory with 1_Pooling"), (gguf_cls, "GGUF converted from it")):
            r = subprocess.run([a.bin, "embed", "-m", model, "-f", tj, "--jsonl"], capture_output=True, text=True)
            got = [torch.tensor(json.loads(l)) for l in r.stdout.split("\n") if l]
            err = max((float((g - reference(w, cfg, x, "cls")).abs().max()) for g, x in zip(got, ids)), default=1.0)
            check(f"{what}: [CLS] pooling by default", r.returncode == 0 and len(got) == len(texts) and err <= 1e-4, f"max |diff| {err:.2e}")
        # modules.json names the Pooling module's directory (here not 1_Pooling); a module llmforge does not apply is refused
        d2 = os.path.join(tmp, "st-modules")
        shutil.copytree(d, d2)
        shutil.rmtree(os.path.join(d2, "1_Pooling"))
        os.makedirs(os.path.join(d2, "pool"))
        json.dump({"word_embedding_dimension": 64, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False},
                  open(os.path.join(d2, "pool", "config.json"), "w"))
        mods = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "pool", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
        json.dump(mods, open(os.path.join(d2, "modules.json"), "w"))
        r = subprocess.run([a.bin, "embed", "-m", d2, "-f", tj, "--jsonl"], capture_output=True, text=True)
        got = [torch.tensor(json.loads(l)) for l in r.stdout.split("\n") if l]
        err = max((float((g - reference(w, cfg, x, "cls")).abs().max()) for g, x in zip(got, ids)), default=1.0)
        check("modules.json: the Pooling module's directory says [CLS], and the directory embeds so",
              r.returncode == 0 and len(got) == len(texts) and err <= 1e-4, f"max |diff| {err:.2e} {r.stderr.strip()[-200:]}")
        json.dump(mods + [{"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}],
                  open(os.path.join(d2, "modules.json"), "w"))
        r = subprocess.run([a.bin, "embed", "-m", d2, "hello"], capture_output=True, text=True)
        errors = [l for l in r.stderr.splitlines() if "error" in l]
        check("modules.json with a Dense module: exit 2, one line naming it", r.returncode == 2 and len(errors) == 1
              and "'3_Dense' (sentence_transformers.models.Dense) is not supported" in errors[0], " | ".join(errors))
        for model, what in ((d, "Hugging Face directory"), (gguf, "GGUF")):
            for pooling in ("cls", "mean"):
                r = subprocess.run([a.bin, "embed", "-m", model, "-f", tj, "--jsonl", "--pooling", pooling, "-t", "2"], capture_output=True, text=True)
                if r.returncode != 0:
                    check(f"embed {what} ({pooling})", False, r.stderr.strip()[-300:])
                    continue
                got = [torch.tensor(json.loads(l)) for l in r.stdout.split("\n") if l]
                err = max(float((g - reference(w, cfg, x, pooling)).abs().max()) for g, x in zip(got, ids))
                check(f"embed {what}, {pooling} pooling, equals PyTorch (≤ 1e-4)", len(got) == len(texts) and err <= 1e-4, f"max |diff| {err:.2e}")
        # too long for the context: one line, exit 2
        long = os.path.join(tmp, "long.txt")
        open(long, "w").write("word " * 300 + "\n")
        r = subprocess.run([a.bin, "embed", "-m", gguf, "-f", long], capture_output=True, text=True)
        errors = [l for l in r.stderr.splitlines() if "error" in l]
        check("a text longer than the context: exit 2, one error line", r.returncode == 2 and len(errors) == 1 and "context" in errors[0],
              " | ".join(errors))
        # GGUF ([CLS]) → Hugging Face directory → GGUF keeps the pooling (1_Pooling/config.json written and read)
        back = os.path.join(tmp, "back")
        subprocess.run([a.bin, "convert", gguf_cls, back], check=True, capture_output=True)
        pool_cfg = json.load(open(os.path.join(back, "1_Pooling", "config.json")))
        back_mods = json.load(open(os.path.join(back, "modules.json")))
        r = subprocess.run([a.bin, "embed", "-m", back, "-f", tj, "--jsonl"], capture_output=True, text=True)
        got = [torch.tensor(json.loads(l)) for l in r.stdout.split("\n") if l]
        err = max((float((g - reference(w, cfg, x, "cls")).abs().max()) for g, x in zip(got, ids)), default=1.0)
        check("GGUF → Hugging Face directory: modules.json lists Transformer, 1_Pooling, Normalize; 1_Pooling/config.json says [CLS], and the directory embeds so",
              pool_cfg.get("pooling_mode_cls_token") is True and not pool_cfg.get("pooling_mode_mean_tokens") and len(got) == len(texts) and err <= 1e-4
              and [(x["path"], x["type"].split(".")[-1]) for x in back_mods] == [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")],
              f"max |diff| {err:.2e}")
        r = subprocess.run([a.bin, "generate", "-m", gguf, "-p", "hello", "-n", "2"], capture_output=True, text=True)
        check("generate refuses an encoder, saying why", r.returncode == 2 and "encoder" in r.stderr, r.stderr.strip()[-160:])
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
