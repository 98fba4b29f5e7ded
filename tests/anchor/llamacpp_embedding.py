#!/usr/bin/env python3
"""llmforge's BERT and nomic-bert embeddings against llama.cpp's llama-embedding and PyTorch, on one GGUF each.

The random BERT of tests/reference/test_bert_torch.py (random biases and norms, the golden bert-bge WordPiece
vocabulary) is written as a Hugging Face directory and converted to GGUF by llmforge; llama.cpp's llama-embedding reads
that GGUF. For each text and pooling ([CLS], mean), normalised embeddings from llama-embedding, `llmforge embed`
(default arithmetic: BERT's exact GELU, as PyTorch) and `llmforge embed --ggml-arithmetic` (llama.cpp's f16-table
GELU) are compared with each other and with the PyTorch reference. The random nomic-bert of
tests/reference/test_nomic_bert_torch.py (RoPE, SwiGLU: no GELU, so one arithmetic) likewise, mean pooling.

  LLAMA_EMBEDDING=/path/to/llama.cpp/build/bin/llama-embedding tests/anchor/llamacpp_embedding.py [--bin build/llmforge]

llama.cpp is an anchor built outside the project from the public snapshot ggerganov/llama.cpp (c392e50); nothing of it
enters the project. Not part of the default test suite (CI has no llama.cpp build).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
import torch  # noqa: E402
from test_bert_torch import make_bert, model_dir, reference  # noqa: E402
import test_nomic_bert_torch as nomic  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/llmforge")
    ap.add_argument("--golden", default=os.environ.get("LLMFORGE_GOLDEN", os.path.join(os.path.dirname(__file__), "../../../shared/golden")))
    a = ap.parse_args()
    llama = os.environ.get("LLAMA_EMBEDDING")
    if not llama:
        sys.exit("set LLAMA_EMBEDDING to llama.cpp's llama-embedding binary")
    torch.set_default_dtype(torch.float64)
    texts = ["Hello world", "The quick brown fox jumps over the lazy dog.", "retrieval augmented generation with citations " * 8]
    worst = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = model_dir(a.bin, os.path.join(a.golden, "vocab", "ggml-vocab-bert-bge.gguf"), tmp, "bert")
        cfg, w = make_bert(d)
        gguf = os.path.join(tmp, "bert.gguf")
        subprocess.run([a.bin, "convert", d, gguf], check=True, capture_output=True)
        for pooling in ("cls", "mean"):
            for t in texts:
                ids = json.loads(subprocess.run([a.bin, "tokenize", "-m", gguf, t, "--ids"], check=True, capture_output=True, text=True).stdout)
                ref = reference(w, cfg, ids, pooling)
                r = subprocess.run([llama, "-m", gguf, "-p", t, "--pooling", pooling, "--embd-normalize", "2", "--embd-output-format", "array",
                                    "-t", "2", "-c", "128", "-b", "128", "-ub", "128"], capture_output=True, text=True)
                if r.returncode != 0:
                    sys.exit("llama-embedding failed: " + r.stderr[-500:])
                lc = torch.tensor(json.loads(r.stdout.strip())[0])
                ours = {}
                for mode, extra in (("fast", []), ("ggml", ["--ggml-arithmetic"])):
                    out = subprocess.run([a.bin, "embed", "-m", gguf, t, "--pooling", pooling, *extra], check=True, capture_output=True, text=True).stdout
                    ours[mode] = torch.tensor(json.loads(out))
                pairs = {"llmforge vs PyTorch": (ours["fast"], ref), "llama.cpp vs PyTorch": (lc, ref),
                         "llmforge (ggml arithmetic) vs llama.cpp": (ours["ggml"], lc), "llmforge vs llama.cpp": (ours["fast"], lc)}
                for k, (x, y) in pairs.items():
                    worst[k] = max(worst.get(k, 0.0), float((x - y).abs().max()))
        d = model_dir(a.bin, os.path.join(a.golden, "vocab", "ggml-vocab-bert-bge.gguf"), tmp, "nomic")
        cfg, w = nomic.make_nomic(d)
        gguf = os.path.join(tmp, "nomic.gguf")
        subprocess.run([a.bin, "convert", d, gguf], check=True, capture_output=True)
        for t in texts:
            ids = json.loads(subprocess.run([a.bin, "tokenize", "-m", gguf, t, "--ids"], check=True, capture_output=True, text=True).stdout)
            ref = nomic.reference(w, cfg, ids)
            r = subprocess.run([llama, "-m", gguf, "-p", t, "--pooling", "mean", "--embd-normalize", "2", "--embd-output-format", "array",
                                "-t", "2", "-c", "128", "-b", "128", "-ub", "128"], capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit("llama-embedding failed: " + r.stderr[-500:])
            lc = torch.tensor(json.loads(r.stdout.strip())[0])
            ours = torch.tensor(json.loads(subprocess.run([a.bin, "embed", "-m", gguf, t], check=True, capture_output=True, text=True).stdout))
            for k, (x, y) in {"nomic-bert: llmforge vs PyTorch": (ours, ref), "nomic-bert: llama.cpp vs PyTorch": (lc, ref),
                              "nomic-bert: llmforge vs llama.cpp": (ours, lc)}.items():
                worst[k] = max(worst.get(k, 0.0), float((x - y).abs().max()))
    for k, v in worst.items():
        print(f"{k:42s} max |diff| {v:.2e}")
    ok = worst["llmforge vs PyTorch"] <= 1e-4 and worst["llmforge (ggml arithmetic) vs llama.cpp"] <= 1e-4
    ok = ok and worst["nomic-bert: llmforge vs PyTorch"] <= 1e-4 and worst["nomic-bert: llmforge vs llama.cpp"] <= 1e-4
    print("PASS" if ok else "FAIL", "llmforge equals PyTorch and (in ggml arithmetic) llama.cpp to 1e-4, BERT and nomic-bert")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
