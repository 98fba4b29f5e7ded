#!/usr/bin/env python3
"""`llmforge embed train` (contrastive training of embedding models) against PyTorch autograd.

A random BERT (test_bert_torch.make_bert: random weights, biases and LayerNorms) is written as a Hugging Face
directory and converted to GGUF. A batch of (query, positive, negatives) token lists of different lengths — so that
llmforge's single padded pass must mask the padding — goes to `embed train --steps 0 --grads-out`, which writes the
gradients of the InfoNCE loss of that batch. The reference computes, in double, every text on its own (no padding at
all) with BERT's definition, pools ([CLS] or the mean), L2-normalises, and takes
    loss = mean_i −log softmax_j(e(q_i) · e(d_j) / τ)_i     (d: the positives, then the negatives)
then autograd's gradients of every weight. Checked: the loss, and every tensor's gradient to ≤ 1e-5 relative
(max |ours − reference| / max |reference|), for both poolings; then a few real steps lower the loss, the trained GGUF
embeds, and bad input (a malformed line, a token outside the vocabulary, no pairs) is one error line.

Run: /usr/bin/python3 tests/reference/test_embed_train_torch.py --bin build/llmforge [--golden DIR]
"""
import collections
import json
import os
import sqlite3
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import gguf_raw  # noqa: E402
from test_bert_torch import args_and_vocab, make_bert, model_dir, reference  # noqa: E402

RESULTS = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


# GGUF tensor names (llama.cpp's BERT) → Hugging Face BertModel names
def hf_name(g):
    top = {"token_embd.weight": "embeddings.word_embeddings.weight", "position_embd.weight": "embeddings.position_embeddings.weight",
           "token_types.weight": "embeddings.token_type_embeddings.weight", "token_embd_norm.weight": "embeddings.LayerNorm.weight",
           "token_embd_norm.bias": "embeddings.LayerNorm.bias"}
    if g in top:
        return top[g]
    _, l, short, kind = g.split(".")
    m = {"attn_q": "attention.self.query", "attn_k": "attention.self.key", "attn_v": "attention.self.value",
         "attn_output": "attention.output.dense", "attn_output_norm": "attention.output.LayerNorm", "ffn_up": "intermediate.dense",
         "ffn_down": "output.dense", "layer_output_norm": "output.LayerNorm"}[short]
    return f"encoder.layer.{l}.{m}.{kind}"


def info_nce(w, cfg, queries, passages, tau, pooling):
    q = torch.stack([reference(w, cfg, x, pooling) for x in queries])  # BERT's forward pass on each text alone, pooled, normalised
    p = torch.stack([reference(w, cfg, x, pooling) for x in passages])
    s = q @ p.T / tau
    return torch.nn.functional.cross_entropy(s, torch.arange(len(queries)))


def read_gguf(path):
    _, tensors = gguf_raw.read(path)
    return {name: np.frombuffer(data, dtype=np.float32).reshape(list(reversed(ne))).astype(np.float64) for name, ne, typ, data in tensors}


def main():
    a, vocab = args_and_vocab()
    if not vocab:
        return 0
    torch.set_default_dtype(torch.float64)
    g = torch.Generator().manual_seed(5)
    rand_ids = lambda n: [101] + torch.randint(1000, 30000, (n - 2,), generator=g).tolist() + [102]
    tau = 0.05
    with tempfile.TemporaryDirectory() as tmp:
        d = model_dir(a.bin, vocab, tmp, "bert")
        cfg, w0 = make_bert(d)
        # three pairs (queries and passages of different lengths: padding in one pass), two hard negatives
        queries = [rand_ids(n) for n in (5, 9, 7)]
        positives = [rand_ids(n) for n in (20, 13, 31)]
        negatives = [[rand_ids(17)], [], [rand_ids(11)]]
        pairs = os.path.join(tmp, "pairs.jsonl")
        with open(pairs, "w") as f:
            for q, p, n in zip(queries, positives, negatives):
                f.write(json.dumps({"query": q, "positive": p, "negatives": n}) + "\n")
        passages = positives + [x for n in negatives for x in n]
        for pooling in ("mean", "cls"):
            if pooling == "cls":
                os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
                json.dump({"word_embedding_dimension": cfg["hidden_size"], "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False},
                          open(os.path.join(d, "1_Pooling", "config.json"), "w"))
            gguf = os.path.join(tmp, f"bert-{pooling}.gguf")
            subprocess.run([a.bin, "convert", d, gguf], check=True, capture_output=True)
            grads = os.path.join(tmp, f"grads-{pooling}.gguf")
            r = subprocess.run([a.bin, "embed", "train", "-m", gguf, "--pairs", pairs, "--steps", "0", "--grads-out", grads,
                                "--temp", str(tau), "--json", "-q", "-t", "2"], capture_output=True, text=True)
            if r.returncode != 0:
                check(f"embed train --grads-out ({pooling})", False, r.stderr.strip()[-300:])
                continue
            ours_loss = json.loads(r.stdout)["first_loss"]
            w = {k: v.clone().requires_grad_(True) for k, v in w0.items()}
            loss = info_nce(w, cfg, queries, passages, tau, pooling)
            loss.backward()
            check(f"{pooling} pooling: the InfoNCE loss equals PyTorch's", abs(ours_loss - loss.item()) <= 1e-5 * max(1.0, abs(loss.item())),
                  f"{ours_loss:.8f} vs {loss.item():.8f}")
            ours = read_gguf(grads)
            worst, worst_name, missing = 0.0, "", []
            for name, gv in ours.items():
                hn = hf_name(name)
                ref = w[hn].grad
                if ref is None:
                    missing.append(name)
                    continue
                ref = ref.numpy()
                # relative to the tensor's largest gradient; the key bias's true gradient is 0 (a softmax does not
                # change when every score of a row moves by q · b_k), so it is measured against the largest
                # gradient of its layer's key weight instead
                scale = np.abs(ref).max()
                if name.endswith("attn_k.bias"):
                    scale = np.abs(w[hn.replace(".bias", ".weight")].grad.numpy()).max()
                rel = float(np.abs(gv.reshape(ref.shape) - ref).max() / max(scale, 1e-30))
                print(f"    {name}: {rel:.2e}") if os.environ.get("VERBOSE") else None
                if rel > worst:
                    worst, worst_name = rel, name
            check(f"{pooling} pooling: every weight's gradient equals autograd's (≤ 1e-5 relative, {len(ours)} tensors)",
                  not missing and len(ours) == 5 + 16 * cfg["num_hidden_layers"] and worst <= 1e-5,
                  f"worst {worst:.2e} at {worst_name}" + (f"; no reference for {missing}" if missing else ""))

        # real steps: the loss falls, and the trained model embeds
        out = os.path.join(tmp, "trained.gguf")
        r = subprocess.run([a.bin, "embed", "train", "-m", os.path.join(tmp, "bert-mean.gguf"), "--pairs", pairs, "--steps", "20", "--lr", "1e-3",
                            "--warmup", "0", "--temp", str(tau), "-o", out, "--json", "-q", "-t", "2"], capture_output=True, text=True)
        res = json.loads(r.stdout) if r.returncode == 0 else {}
        check("20 steps on the batch lower its loss", r.returncode == 0 and res["last_epoch_loss"] < 0.5 * res["first_loss"],
              f"{res.get('first_loss')} → {res.get('last_epoch_loss')}" if res else r.stderr.strip()[-200:])
        ej = os.path.join(tmp, "ids.jsonl")
        open(ej, "w").write("".join(json.dumps({"ids": x}) + "\n" for x in queries + positives))
        r = subprocess.run([a.bin, "embed", "-m", out, "-f", ej, "--jsonl"], capture_output=True, text=True)
        e = np.array([json.loads(l) for l in r.stdout.split("\n") if l])
        ok = r.returncode == 0 and e.shape == (6, cfg["hidden_size"])
        if ok:  # each trained query is closest to its own positive
            sims = e[:3] @ e[3:].T
            ok = all(int(np.argmax(sims[i])) == i for i in range(3))
        check("the trained GGUF embeds, each query closest to its own positive", ok, r.stderr.strip()[-200:])

        # --headings: a pair per section heading of an index, as many as this count from the index's own table
        docs = os.path.join(tmp, "docs")
        os.makedirs(docs)
        open(os.path.join(docs, "a.md"), "w").write("# Kettles\n\n## Boiling water\n\nA kettle boils water.\n\n## Module contents\n\n"
                                                    "Kettle things.\n\n## Descaling the kettle\n\nUse vinegar now and then.\n")
        open(os.path.join(docs, "b.md"), "w").write("# Bread\n\n## Module contents\n\nBread things.\n\n## Baking the loaf\n\nBake it hot.\n\n"
                                                    "### Oven\n\nPreheat it well.\n")
        kb = os.path.join(tmp, "kb")
        subprocess.run([a.bin, "rag", "index", docs, "-o", kb, "-q"], check=True, capture_output=True)
        db = sqlite3.connect(f"file:{os.path.join(kb, 'index.sqlite')}?mode=ro", uri=True)
        paths = {h for (h,) in db.execute("SELECT DISTINCT heading FROM chunks WHERE heading != ''")}
        db.close()
        last = lambda p: p.split(" > ")[-1]
        ends = collections.Counter(last(p) for p in paths)
        expect = sum(1 for p in paths if ends[last(p)] == 1 and len(last(p).split()) >= 2)
        r = subprocess.run([a.bin, "embed", "train", "-m", os.path.join(tmp, "bert-mean.gguf"), "--kb", kb, "--headings", "--steps", "1", "-b", "2",
                            "-o", os.path.join(tmp, "headings.gguf"), "--json", "-q", "-t", "2"], capture_output=True, text=True)
        res = json.loads(r.stdout) if r.returncode == 0 else {}
        check(f"--headings: one pair per heading of two words or more that ends one path ({expect} of {len(paths)} paths)",
              expect == 3 and res.get("heading_pairs") == expect and res.get("pairs") == expect, r.stderr.strip()[-200:] or str(res))
        r = subprocess.run([a.bin, "embed", "train", "-m", os.path.join(tmp, "bert-mean.gguf"), "--pairs", pairs, "--headings", "-o",
                            os.path.join(tmp, "x.gguf"), "-q"], capture_output=True, text=True)
        check("--headings without --kb: exit 2, one line", r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr.strip())

        # bad input: one error line, exit 2
        bad = os.path.join(tmp, "bad.jsonl")
        for content, what in (("{not json\n", "a malformed line"), (json.dumps({"query": [101, 99999999], "positive": [101]}) + "\n", "a token outside the vocabulary"),
                              ("\n", "no pairs"), (json.dumps({"query": "x"}) + "\n", "no positive")):
            open(bad, "w").write(content)
            r = subprocess.run([a.bin, "embed", "train", "-m", os.path.join(tmp, "bert-mean.gguf"), "--pairs", bad, "-o", os.path.join(tmp, "x.gguf"), "-q"],
                               capture_output=True, text=True)
            errors = [l for l in r.stderr.splitlines() if "error" in l]
            check(f"embed train, {what}: exit 2, one error line, nothing written", r.returncode == 2 and len(errors) == 1 and not os.path.exists(os.path.join(tmp, "x.gguf")),
                  " | ".join(errors))
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
