#!/usr/bin/env python3
"""Report card of a pretrain run: validation perplexity of the model beside a unigram model's on the same tokens.

The unigram model is the token frequencies of the training split (add-one smoothed); it is scored on the exact tokens
the run's validation used (the first eval_batches windows of seq_len tokens of the validation split, predicting each
next token) and on the whole validation split.
Usage: scripts/run_report.py RUN_DIR DATA_DIR [--json]
"""
import glob
import json
import math
import os
import struct
import sys

import numpy as np


def shard(path):
    with open(path, "rb") as f:
        b = f.read()
    assert b[:4] == b"LFTK", path
    width = struct.unpack("<I", b[8:12])[0]
    n = struct.unpack("<Q", b[16:24])[0]
    return np.frombuffer(b[24:24 + n * width], dtype=np.uint16 if width == 2 else np.int32).astype(np.int64)


def main():
    run, data = sys.argv[1], sys.argv[2]
    meta = json.load(open(os.path.join(data, "data.json")))
    state = json.load(open(os.path.join(run, "checkpoint", "state.json")))
    hp = state["hparams"]
    V = meta["vocab_size"]
    counts = np.zeros(V, dtype=np.float64)
    for p in sorted(glob.glob(os.path.join(data, "train_*.bin"))):
        counts += np.bincount(shard(p), minlength=V)
    logp = np.log((counts + 1) / (counts.sum() + V))
    val = shard(os.path.join(data, "val_000.bin"))
    T = hp["seq_len"]
    metrics = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
    evals = [m for m in metrics if "val_loss" in m]
    # the run's validation windows: the first eval_batches windows, targets = tokens 1..T of each
    eval_batches = int(os.environ.get("EVAL_BATCHES", "32"))
    targets = np.concatenate([val[i * T + 1:i * T + T + 1] for i in range(min(eval_batches, (len(val) - 1) // T))])
    uni_same = -logp[targets].mean()
    uni_all = -logp[val[1:]].mean()
    last = evals[-1]
    first = evals[0]
    out = {
        "steps": state["step"], "params": hp["n_params"], "tokens_seen": state["step"] * hp["batch_size"] * hp["seq_len"] * hp["grad_accum"],
        "train_tokens": meta["tokens_train"], "val_tokens": meta["tokens_val"],
        "model_val_loss": last["val_loss"], "model_val_ppl": math.exp(last["val_loss"]),
        "first_val_ppl": math.exp(first["val_loss"]), "first_val_step": first["step"],
        "unigram_val_loss_same_windows": float(uni_same), "unigram_val_ppl_same_windows": float(math.exp(uni_same)),
        "unigram_val_ppl_whole_split": float(math.exp(uni_all)),
        "mean_tokens_per_s": float(np.mean([m["tokens_per_s"] for m in metrics])),
    }
    if "--json" in sys.argv:
        print(json.dumps(out, indent=1))
    else:
        for k, v in out.items():
            print(f"{k:32s} {v:.4f}" if isinstance(v, float) else f"{k:32s} {v}")


if __name__ == "__main__":
    main()
