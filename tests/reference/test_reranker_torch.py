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
the reference's scores of (question, passage); `embed train` on the reranker (each query against every passage of
the batch, InfoNCE over the pairs' scores) gives the loss and every gradient of PyTorch autograd, in one pass of the
pairs and in passes of 4, and a few epochs rank each question's own passage first; `serve --rerank` answers POST /v1/rerank (and /rerank) with the
reference's scores, best first, in Jina's / Cohere's shape, and refuses bad requests OpenAI-style; an embedding model
refuses to rerank and a reranker to embed (or to be served with -m).

Run: /usr/bin/python3 tests/reference/test_reranker_torch.py --bin build/llmforge [--golden DIR]
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_bert_torch import RESULTS, check, args_and_vocab, make_bert, model_dir, write_safetensors  # noqa: E402
import gguf_raw  # noqa: E402
from serve_util import Served  # noqa: E402


def score(w, cfg, ids, types):
    return float(score_t(w, cfg, ids, types))


def score_t(w, cfg, ids, types):
    """score() as a tensor (differentiable in w)."""
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
    return lin(pooled, "classifier")[0]


def pair(q, p, ctx):
    """[CLS] q [SEP] p [SEP] cut to ctx as llmforge documents it (the passage first; the query to half if needed)."""
    room = ctx - 3
    if len(q) > room // 2 and len(q) + len(p) > room:
        q = q[:max(room // 2, room - len(p))]
    if len(q) + len(p) > room:
        p = p[:room - len(q)]
    ids = [101] + q + [102] + p + [102]
    return ids, [0] * (len(q) + 2) + [1] * (len(p) + 1)


def serve_rerank(bin_, emb, reranker, query, passages, refs, pair_lengths):
    """serve -m EMB --rerank RERANKER: POST /v1/rerank's scores are the reference's, best first, in Jina's/Cohere's shape."""
    srv = Served(bin_, ["-m", emb, "--rerank", reranker, "--no-access-log", "--no-web", "-t", "1"])
    post = srv.post_json
    try:
        check("serve --rerank starts", srv.url is not None, srv.err[-200:])
        if not srv.url:
            return
        docs = list(passages)
        docs[1] = {"text": passages[1]}  # Jina's and Cohere's object form
        st, out = post("/v1/rerank", {"model": "ce", "query": query, "documents": docs, "top_n": 3, "return_documents": True})
        best = sorted(range(len(refs)), key=lambda i: -refs[i])[:3]
        res = out.get("results", []) if st == 200 else []
        check("POST /v1/rerank: the reference's scores (≤ 1e-4), the top 3 best first, each with its document and the usage in tokens",
              [x["index"] for x in res] == best and all(abs(x["relevance_score"] - refs[x["index"]]) <= 1e-4 for x in res)
              and all(x["document"]["text"] == passages[x["index"]] for x in res) and out.get("model") == "ce" and out.get("object") == "list"
              and out.get("usage", {}).get("total_tokens") == sum(pair_lengths),
              f"{st} {[(x['index'], x['relevance_score']) for x in res]} vs {[(i, refs[i]) for i in best]}, usage {out.get('usage')} vs {sum(pair_lengths)}")
        st, out = post("/rerank", {"query": query, "documents": passages[:2]})
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
        got = [post("/v1/rerank", b) for b, _, _ in bad]
        check("bad rerank requests: OpenAI-shaped errors with the right status and code",
              all(st == want and out.get("error", {}).get("code") == code for (st, out), (_, want, code) in zip(got, bad)),
              str([(st, out.get("error", {}).get("code")) for st, out in got]))
        st, out = post("/v1/embeddings", {"model": "emb", "input": "still serving"})
        check("the -m model is served beside it", st == 200 and len(out["data"][0]["embedding"]) > 0, str(st))
    finally:
        srv.stop()
    r = subprocess.run([bin_, "serve", "-m", reranker, "--port", "0"], capture_output=True, text=True, timeout=60)
    check("serve -m RERANKER: one line pointing to --rerank, exit 2", r.returncode == 2 and [l for l in r.stderr.splitlines() if "error" in l] == [r.stderr.strip().splitlines()[-1]] and "--rerank" in r.stderr,
          r.stderr.strip()[-200:])


GGUF_TO_HF_HEAD = {"cls.weight": "pooler.dense.weight", "cls.bias": "pooler.dense.bias", "cls.output.weight": "classifier.weight",
                   "cls.output.bias": "classifier.bias"}


def train_check(bin_, gguf, w, cfg, ids_of, tmp):
    """embed train on a reranker: the loss and every gradient (head included) equal PyTorch autograd of
    mean_i −log softmax_j(score(q_i, d_j))_i over the batch's positives then negatives, whatever the pairs per pass;
    a few steps rank each training question's own passage first."""
    from test_embed_train_torch import hf_name, read_gguf
    queries = ["how do I descale a kettle?", "when should I water the garden?", "what makes bread rise?"]
    positives = ["Vinegar dissolves limescale in a kettle.", "Water the garden early in the morning, before the heat.", "Yeast makes dough rise."]
    negatives = [["Oil the chain of a bike."], ["A reef knot joins two ropes.", "Let the paint dry overnight."], []]
    pairs = os.path.join(tmp, "ce-pairs.jsonl")
    with open(pairs, "w") as f:
        for q, p, n in zip(queries, positives, negatives):
            f.write(json.dumps({"query": q, "positive": p, "negatives": n}) + "\n")
    params = {k: v.clone().requires_grad_(True) for k, v in w.items()}
    qi = [ids_of(q) for q in queries]
    di = [ids_of(p) for p in positives] + [ids_of(n) for ns in negatives for n in ns]
    S = torch.stack([torch.stack([torch.as_tensor(score_t(params, cfg, *pair(q, d, 128))) for d in di]) for q in qi])
    loss = torch.nn.functional.cross_entropy(S, torch.arange(len(qi)))
    loss.backward()
    ref = {k: v.grad for k, v in params.items()}
    # PyTorch's own float32 computation of the same gradients, for the float32 noise floor: the scores of a random
    # model are close together, and ∂loss/∂s sums to 0 over each row, so the gradients cancel heavily
    p32 = {k: v.float().clone().requires_grad_(True) for k, v in w.items()}
    torch.nn.functional.cross_entropy(torch.stack([torch.stack([score_t(p32, cfg, *pair(q, d, 128)) for d in di]) for q in qi]),
                                      torch.arange(len(qi))).backward()
    for pb in (64, 4):  # 15 pairs: one pass, and four passes of at most 4
        grads = os.path.join(tmp, f"ce-grads-{pb}.gguf")
        r = subprocess.run([bin_, "embed", "train", "-m", gguf, "--pairs", pairs, "--steps", "0", "--grads-out", grads, "-b", "3", "--pair-batch",
                            str(pb), "--json", "-q", "-t", "2"], capture_output=True, text=True)
        if r.returncode != 0:
            check(f"embed train on a reranker --grads-out (pairs per pass {pb})", False, r.stderr.strip()[-300:])
            continue
        got_loss = json.loads(r.stdout)["first_loss"]
        ours = read_gguf(grads)
        worst, worst_name, floor = 0.0, "", 0.0
        for g, v in ours.items():
            hf = GGUF_TO_HF_HEAD.get(g) or hf_name(g)
            rv = ref[hf].numpy()
            if g == "token_types.weight":
                rv = rv[:v.shape[0]]
            # relative to the tensor's largest gradient. Two true gradients are 0, because a softmax does not change when
            # every score of a row moves by the same amount: the key bias's (q · b_k) and the score's own bias (b_out);
            # each is measured against its weight's largest gradient instead
            scale = np.abs(rv).max()
            if g.endswith("attn_k.bias") or g == "cls.output.bias":
                scale = np.abs(ref[hf.replace(".bias", ".weight")].numpy()).max()
            rel = float(np.abs(v.reshape(rv.shape) - rv).max() / max(scale, 1e-30))
            floor = max(floor, float(np.abs(p32[hf].grad.double().numpy() - ref[hf].numpy()).max() / max(scale, 1e-30)))
            print(f"    {g}: {rel:.2e} (max |grad| {scale:.2e})") if os.environ.get("VERBOSE") else None
            if rel > worst:
                worst, worst_name = rel, g
        check(f"embed train on a reranker (pairs per pass {pb}): the loss and every gradient, the head's included, equal PyTorch autograd "
              "in double to within float32's noise (≤ 1e-5 relative, or no worse than PyTorch's own float32 gradients)",
              abs(got_loss - float(loss)) <= 1e-5 * abs(float(loss)) and worst <= max(1e-5, floor) and len(ours) == len(ref),
              f"loss {got_loss:.8f} vs {float(loss):.8f}; worst {worst:.2e} ({worst_name}), PyTorch float32's {floor:.2e}; {len(ours)} tensors, "
              f"reference {len(ref)}")
    trained = os.path.join(tmp, "ce-trained.gguf")
    r = subprocess.run([bin_, "embed", "train", "-m", gguf, "--pairs", pairs, "-b", "3", "--epochs", "30", "--lr", "1e-3", "--warmup", "0",
                        "-o", trained, "--json", "-q", "-t", "2"], capture_output=True, text=True)
    res = json.loads(r.stdout) if r.returncode == 0 else {}
    firsts = []
    for q, p in zip(queries, positives):
        rr = subprocess.run([bin_, "rerank", "-m", trained, q, *positives, "--json"], capture_output=True, text=True)
        firsts.append(json.loads(rr.stdout)["results"][0]["index"] if rr.returncode == 0 else -1)
    check("embed train on a reranker: 30 epochs lower the loss, and the trained reranker puts each question's own passage first",
          res.get("last_epoch_loss", 9) < res.get("first_loss", 0) and firsts == [0, 1, 2],
          f"{res.get('first_loss')} → {res.get('last_epoch_loss')}, first passages {firsts} {r.stderr.strip()[-200:]}")


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
        train_check(a.bin, gguf, w, cfg, ids_of, tmp)
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
