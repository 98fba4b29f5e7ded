#!/usr/bin/env python3
"""Cross-encoders (rerankers) against a PyTorch reference.

A random BertForSequenceClassification with one label — BERT (test_bert_torch.make_bert's random weights, biases and
norms), its pooler (dense + tanh on [CLS]) and a one-output classifier — is written as a Hugging Face directory. The
reference reads a pair the way transformers' BERT tokenizer frames it: [CLS] query [SEP] passage [SEP], segment 0 up to
the first [SEP] and 1 after it; score = classifier(tanh(pooler(h_[CLS]))), the forward pass written here with each
token's own segment embedding.

Checked: `llmforge rerank` on the directory and on the GGUF made from it equals the reference (≤ 1e-4) for pairs of
several lengths, a passage longer than the context cut as documented; the GGUF is llama.cpp's rank pooling (type 4,
cls / cls.output tensors); GGUF → directory gives the same scores; `rag query --rerank` orders BM25's first chunks by
the reference's scores of (question, passage); `serve --rerank` answers POST /v1/rerank (and /rerank) with the
reference's scores, best first, in Jina's / Cohere's shape, and refuses bad requests OpenAI-style; an embedding model
refuses to rerank and a reranker to embed (or to be served with -m).

Run: /usr/bin/python3 tests/reference/test_reranker_torch.py --bin build/llmforge [--golden DIR]
"""
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_bert_torch import RESULTS, check, args_and_vocab, make_bert, model_dir, write_safetensors  # noqa: E402
import gguf_raw  # noqa: E402

def score(w, cfg, ids, types):
    C, H, L, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"], cfg["layer_norm_eps"]
    d, n = C // H, len(ids)
    ln = lambda x, p: torch.nn.functional.layer_norm(x, (C,), w[p + ".weight"], w[p + ".bias"], eps)
    lin = lambda x, p: x @ w[p + ".weight"].T + w[p + ".bias"]
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] + w["embeddings.token_type_embeddings.weight"][types]
    x = ln(x, "embeddings.LayerNorm")
    for l in range(L):
        p = f"encoder.layer.{l}."
        q, k, v = (lin(x, p + "attention.self." + m).view(n, H, d).transpose(0, 1) for m in ("query", "key", "value"))
        o = (torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), dim=-1) @ v).transpose(0, 1).reshape(n, C)
        x = ln(x + lin(o, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        x = ln(x + lin(torch.nn.functional.gelu(lin(x, p + "intermediate.dense")), p + "output.dense"), p + "output.LayerNorm")
    pooled = torch.tanh(lin(x[0], "pooler.dense"))
    return float(lin(pooled, "classifier")[0])


def pair(q, p, ctx):
    """[CLS] q [SEP] p [SEP] cut to ctx as llmforge documents it (the passage first; the query to half if needed)."""
    room = ctx - 3
    if len(q) > room // 2 and len(q) + len(p) > room:
        q = q[:max(room // 2, room - len(p))]
    if len(q) + len(p) > room:
        p = p[:room - len(q)]
    ids = [101] + q + [102] + p + [102]
    return ids, [0] * (len(q) + 2) + [1] * (len(p) + 1)


def post(url, body):
    """(status, JSON answer) of a POST."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def serve_rerank(bin_, emb, reranker, query, passages, refs, pair_lengths):
    """serve -m EMB --rerank RERANKER: POST /v1/rerank's scores are the reference's, best first, in Jina's/Cohere's shape."""
    srv = subprocess.Popen([bin_, "serve", "-m", emb, "--rerank", reranker, "--port", "0", "--no-access-log", "--no-web", "-t", "1"],
                           stderr=subprocess.PIPE, text=True)
    url = None
    try:
        for line in srv.stderr:
            m = re.search(r"listening on (http://[\d.]+:\d+)", line)
            if m:
                url = m.group(1)
                break
        threading.Thread(target=lambda: srv.stderr.read(), daemon=True).start()
        check("serve --rerank starts", url is not None)
        if not url:
            return
        docs = list(passages)
        docs[1] = {"text": passages[1]}  # Jina's and Cohere's object form
        st, out = post(url + "/v1/rerank", {"model": "ce", "query": query, "documents": docs, "top_n": 3, "return_documents": True})
        best = sorted(range(len(refs)), key=lambda i: -refs[i])[:3]
        res = out.get("results", []) if st == 200 else []
        check("POST /v1/rerank: the reference's scores (≤ 1e-4), the top 3 best first, each with its document and the usage in tokens",
              [x["index"] for x in res] == best and all(abs(x["relevance_score"] - refs[x["index"]]) <= 1e-4 for x in res)
              and all(x["document"]["text"] == passages[x["index"]] for x in res) and out.get("model") == "ce" and out.get("object") == "list"
              and out.get("usage", {}).get("total_tokens") == sum(pair_lengths),
              f"{st} {[(x['index'], x['relevance_score']) for x in res]} vs {[(i, refs[i]) for i in best]}, usage {out.get('usage')} vs {sum(pair_lengths)}")
        st, out = post(url + "/rerank", {"query": query, "documents": passages[:2]})
        res = out.get("results", []) if st == 200 else []
        check("POST /rerank without a model: every document, no texts unless asked",
              sorted(x["index"] for x in res) == [0, 1] and all("document" not in x for x in res), f"{st} {json.dumps(out)[:200]}")
        bad = [({"model": "other", "query": "q", "documents": ["d"]}, 404, "model_not_found"),
               ({"query": "q", "documents": []}, 400, "empty_array"),
               ({"query": "q", "documents": ["d", 7]}, 400, "invalid_type"),
               ({"documents": ["d"]}, 400, "missing_required_parameter"),
               ({"query": "", "documents": ["d"]}, 400, "invalid_value"),
               ({"query": "q", "documents": ["d"], "top_n": 0}, 400, "integer_below_min_value"),
               ({"query": "q", "documents": ["d"] * 1001}, 400, "array_above_max_length"),
               ({"query": "q", "documents": ["d"], "rank_fields": ["x"]}, 400, "unknown_parameter")]
        got = [post(url + "/v1/rerank", b) for b, _, _ in bad]
        check("bad rerank requests: OpenAI-shaped errors with the right status and code",
              all(st == want and out.get("error", {}).get("code") == code for (st, out), (_, want, code) in zip(got, bad)),
              str([(st, out.get("error", {}).get("code")) for st, out in got]))
        st, out = post(url + "/v1/embeddings", {"model": "emb", "input": "still serving"})
        check("the -m model is served beside it", st == 200 and len(out["data"][0]["embedding"]) > 0, str(st))
    finally:
        srv.terminate()
        srv.wait(timeout=30)
    r = subprocess.run([bin_, "serve", "-m", reranker, "--port", "0"], capture_output=True, text=True, timeout=60)
    check("serve -m RERANKER: one line pointing to --rerank, exit 2", r.returncode == 2 and [l for l in r.stderr.splitlines() if "error" in l] == [r.stderr.strip().splitlines()[-1]] and "--rerank" in r.stderr,
          r.stderr.strip()[-200:])


def main():
    a, vocab = args_and_vocab()
    if not vocab:
        return 0
    torch.set_default_dtype(torch.float64)
    with tempfile.TemporaryDirectory() as tmp:
        d = model_dir(a.bin, vocab, tmp, "ce")
        tok = os.path.join(d, "tokenizer.json")
        cfg, w = make_bert(d, seed=3)
        torch.manual_seed(4)
        C = cfg["hidden_size"]
        w["classifier.weight"], w["classifier.bias"] = (torch.randn(1, C) / math.sqrt(C)).float().double(), (0.3 * torch.randn(1)).float().double()
        cfg.update({"architectures": ["BertForSequenceClassification"], "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}})
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
        # a sequence-classification checkpoint names the encoder bert.*, the head classifier.*
        write_safetensors(os.path.join(d, "model.safetensors"),
                          {(k if k.startswith("classifier") else "bert." + k): v.float() for k, v in w.items()})
        gguf = os.path.join(tmp, "ce.gguf")
        r = subprocess.run([a.bin, "convert", d, gguf], capture_output=True, text=True)
        check("convert: the BertForSequenceClassification directory to GGUF", r.returncode == 0, r.stderr.strip()[-200:])
        meta, tensors = gguf_raw.read(gguf)
        names = {t[0]: t[1] for t in tensors}
        check("the GGUF is llama.cpp's rank pooling: type 4, cls [C, C] and cls.output [1, C] with biases",
              meta.get("bert.pooling_type") == 4 and names.get("cls.weight") == [C, C] and names.get("cls.output.weight") == [C, 1]
              and "cls.bias" in names and "cls.output.bias" in names, f"{meta.get('bert.pooling_type')}, {names.get('cls.output.weight')}")

        query = "how do I descale a kettle?"
        passages = ["Vinegar dissolves limescale in a kettle.", "Bake bread in a hot oven.", "Ünïcödé 中文 kettle 🦙",
                    "limescale " * 200 + "end"]  # the last is cut to the context (128)
        def ids_of(text):
            r = subprocess.run([a.bin, "tokenize", "--tokenizer", tok, text, "--ids"], capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit("tokenize failed: " + r.stderr)
            ids = json.loads(r.stdout)
            assert ids[0] == 101 and ids[-1] == 102, ids[:3]
            return ids[1:-1]  # without [CLS] … [SEP]
        qi = ids_of(query)
        refs = [score(w, cfg, *pair(qi, ids_of(p), 128)) for p in passages]
        for model, what in ((d, "Hugging Face directory"), (gguf, "GGUF")):
            r = subprocess.run([a.bin, "rerank", "-m", model, query, *passages, "--json", "-t", "2"], capture_output=True, text=True)
            got = {x["index"]: x["score"] for x in json.loads(r.stdout)["results"]} if r.returncode == 0 else {}
            err = max((abs(got[i] - refs[i]) for i in range(len(refs))), default=1.0) if len(got) == len(refs) else 1.0
            order = [x["index"] for x in json.loads(r.stdout)["results"]] if r.returncode == 0 else []
            check(f"rerank {what}: scores equal PyTorch (≤ 1e-4), best first", err <= 1e-4 and order == sorted(range(len(refs)), key=lambda i: -refs[i]),
                  f"max |diff| {err:.2e}" + ("" if r.returncode == 0 else " " + r.stderr.strip()[-200:]))
        back = os.path.join(tmp, "back")
        subprocess.run([a.bin, "convert", gguf, back], check=True, capture_output=True)
        r = subprocess.run([a.bin, "rerank", "-m", back, query, *passages, "--json"], capture_output=True, text=True)
        got = {x["index"]: x["score"] for x in json.loads(r.stdout)["results"]} if r.returncode == 0 else {}
        hf = json.load(open(os.path.join(back, "config.json")))
        check("GGUF → directory: BertForSequenceClassification with one label, the same scores",
              hf.get("architectures") == ["BertForSequenceClassification"] and len(hf.get("id2label", {})) == 1
              and len(got) == len(refs) and max(abs(got[i] - refs[i]) for i in range(len(refs))) <= 1e-4)

        # rag query --rerank: BM25's first 6 chunks, reordered by the reference's scores
        corpus = os.path.join(tmp, "corpus")
        os.makedirs(corpus)
        notes = {"kettle": "Descale a kettle with vinegar.", "kettle2": "A kettle switches off when the water boils.",
                 "bread": "Bread dough rises with yeast.", "bike": "Oil the chain of a bike.", "garden": "Water the garden in the morning.",
                 "kettle3": "Limescale makes a kettle slow.", "paint": "Let paint dry.", "knots": "A reef knot joins ropes."}
        for name, text in notes.items():
            open(os.path.join(corpus, name + ".txt"), "w").write(text + "\n")
        kb = os.path.join(tmp, "kb")
        subprocess.run([a.bin, "rag", "index", corpus, "-o", kb, "-q"], check=True, capture_output=True)
        q = "kettle limescale vinegar water"
        base = json.loads(subprocess.run([a.bin, "rag", "query", kb, q, "-k", "6", "--json"], check=True, capture_output=True, text=True).stdout)["hits"]
        r = subprocess.run([a.bin, "rag", "query", kb, q, "-k", "3", "--rerank", gguf, "--rerank-top", "6", "--json"], capture_output=True, text=True)
        hits = json.loads(r.stdout)["hits"] if r.returncode == 0 else []

        def passage_text(h):
            s = h["title"] + "\n" if h["title"] and not h["heading"].startswith(h["title"]) else ""
            return s + (h["heading"] + "\n" if h["heading"] else "") + h["text"]
        ref = sorted(((score(w, cfg, *pair(qi := ids_of(q), ids_of(passage_text(h)), 128)), h["chunk"]) for h in base), key=lambda x: -x[0])
        check("rag query --rerank: the first 6 BM25 chunks ordered by the reference's scores, 3 kept",
              [h["chunk"] for h in hits] == [c for _, c in ref[:3]] and all(abs(h["score"] - s) <= 1e-4 for h, (s, _) in zip(hits, ref))
              and all(h["retrieval_rank"] >= 1 for h in hits), r.stderr.strip()[-200:])
        emb = os.path.join(tmp, "emb.gguf")
        subprocess.run([a.bin, "init", "--preset", "bert-tiny", "--tokenizer", vocab, "-o", emb], check=True, capture_output=True)
        serve_rerank(a.bin, emb, gguf, query, passages, refs, [len(pair(ids_of(query), ids_of(p), 128)[0]) for p in passages])
        # the wrong kind of model, each way
        r1 = subprocess.run([a.bin, "rerank", "-m", emb, "q", "p"], capture_output=True, text=True)
        r2 = subprocess.run([a.bin, "embed", "-m", gguf, "hello"], capture_output=True, text=True)
        check("an embedding model refuses to rerank, a reranker to embed (one line, exit 2)",
              r1.returncode == 2 and "not a reranker" in r1.stderr and r2.returncode == 2 and "reranker" in r2.stderr,
              (r1.stderr.strip() + " | " + r2.stderr.strip())[-300:])
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
