#!/usr/bin/env python3
"""The trainer against PyTorch, as llm.c's test_gpt2 does: for random GPT-2, LLaMA (grouped-query attention), Llama 3,
Qwen 2 (also with YaRN), Qwen 3, Mistral and Gemma 2 models, the loss must equal PyTorch autograd's (float64) to 1e-4 relative and the gradient of every
parameter to 1e-5; after 10 AdamW steps (torch.optim.AdamW, weight decay on matrices only, cosine schedule with warm-up,
clip_grad_norm_) the parameters must still agree to 1e-4.

Run: /usr/bin/python3 tests/reference/test_torch_train.py --bin build/llmforge
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_torch_parity as P  # noqa: E402  (the reference models and the safetensors writer)

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
RESULTS = {"passed": 0, "failed": 0}
EMBEDDINGS = {"wte.weight", "wpe.weight", "model.embed_tokens.weight"}


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(info["shape"]).astype(np.float64)
    return out


def rel(ours, ref):
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-30))


def reference_loss(w, cfg, forward, inputs, targets):
    logits = torch.stack([forward(w, cfg, row) for row in inputs])  # [B, T, V]
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.tensor(targets).reshape(-1), ignore_index=-1)


def lr_at(step, lr_max, lr_min, warmup, total):
    if warmup > 0 and step < warmup:
        return lr_max * (step + 1) / warmup
    prog = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * prog))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(4321)
    B, T, STEPS = 3, 24, 10
    # ε = 1e-6 rather than 1e-8: GPT-2's key bias has an analytically zero gradient (softmax ignores a constant added to
    # every score), so both sides hold only rounding noise there (~1e-9 in f32, ~1e-17 in f64), and Adam's m/√v turns
    # noise of either size into a full ±lr step of random sign. A larger ε damps steps driven by pure noise and leaves
    # every real gradient's step as it is.
    opt = dict(lr=1e-3, min_lr=1e-4, warmup=3, wd=0.1, clip=1.0, beta1=0.9, beta2=0.95, eps=1e-6)
    with tempfile.TemporaryDirectory() as tmp:
        for name, maker in (("gpt2", P.make_gpt2), ("llama-gqa", P.make_llama), ("llama3", P.make_llama3), ("qwen2", P.make_qwen2),
                            ("qwen2-yarn", P.make_qwen2_yarn), ("qwen3", P.make_qwen3), ("mistral", P.make_mistral), ("gemma2", P.make_gemma2)):
            cfg, w, forward = maker(11)
            V = cfg["vocab_size"]
            d = P.write_model_dir(os.path.join(tmp, name), cfg, w)
            inputs = rng.integers(0, V, size=(B, T)).tolist()
            targets = rng.integers(0, V, size=(B, T))
            targets[0, :3] = -1  # ignored positions
            targets = targets.tolist()
            batch = os.path.join(tmp, f"{name}-batch.json")
            with open(batch, "w") as f:
                json.dump({"inputs": inputs, "targets": targets}, f)

            # ---- loss and gradients of one step
            grads_dir = os.path.join(tmp, f"{name}-grads")
            out = subprocess.run([args.bin, "train-steps", "-m", d, "--batch-file", batch, "--steps", "0", "--grads-out", grads_dir, "-t", "2"],
                                 check=True, capture_output=True, text=True).stdout
            ours_loss = json.loads(out)["losses"][0]
            w64 = {k: v.to(torch.float64).clone().requires_grad_(True) for k, v in w.items()}
            loss = reference_loss(w64, cfg, forward, inputs, targets)
            loss.backward()
            e = abs(ours_loss - loss.item()) / abs(loss.item())
            check(f"{name} loss vs PyTorch", e <= 1e-4, f"ours {ours_loss:.6f}, torch {loss.item():.6f}, rel {e:.1e}")
            ours_g = read_safetensors(os.path.join(grads_dir, "model.safetensors"))
            worst, worst_name = 0.0, ""
            for k, p in w64.items():
                if k not in ours_g:
                    check(f"{name} gradient of {k} present", False)
                    continue
                r = rel(ours_g[k], p.grad.numpy())
                if r > worst:
                    worst, worst_name = r, k
            check(f"{name} gradients of all {len(w64)} parameters vs PyTorch", worst <= 1e-5, f"worst rel err {worst:.1e} ({worst_name})")
            # activation checkpointing (--recompute): the blocks run again in the backward pass — the same bits
            rc_dir = os.path.join(tmp, f"{name}-grads-recompute")
            out_rc = subprocess.run([args.bin, "train-steps", "-m", d, "--batch-file", batch, "--steps", "0", "--grads-out", rc_dir, "--recompute",
                                     "-t", "2"], check=True, capture_output=True, text=True).stdout
            with open(os.path.join(grads_dir, "model.safetensors"), "rb") as f1, open(os.path.join(rc_dir, "model.safetensors"), "rb") as f2:
                same = f1.read() == f2.read()
            check(f"{name} --recompute: loss and gradients bit-identical", same and json.loads(out_rc)["losses"][0] == ours_loss)
            # the same model as GGUF (LLaMA: RoPE pairs interleaved, rows permuted), gradients written back as HF
            g = os.path.join(tmp, f"{name}.gguf")
            subprocess.run([args.bin, "convert", d, g], check=True, capture_output=True)
            gg = os.path.join(tmp, f"{name}-gguf-grads")
            subprocess.run([args.bin, "train-steps", "-m", g, "--batch-file", batch, "--steps", "0", "--grads-out", gg, "-t", "2"],
                           check=True, capture_output=True)
            ours_g = read_safetensors(os.path.join(gg, "model.safetensors"))
            worst = max(rel(ours_g[k], p.grad.numpy()) for k, p in w64.items())
            check(f"{name} from GGUF: gradients vs PyTorch", worst <= 1e-5, f"worst rel err {worst:.1e}")

            # ---- 10 AdamW steps with clipping and a cosine schedule
            final_dir = os.path.join(tmp, f"{name}-final")
            out = subprocess.run([args.bin, "train-steps", "-m", d, "--batch-file", batch, "--steps", str(STEPS), "--lr", str(opt["lr"]),
                                  "--min-lr", str(opt["min_lr"]), "--schedule", "cosine", "--warmup", str(opt["warmup"]),
                                  "--wd", str(opt["wd"]), "--clip-grad", str(opt["clip"]), "--beta1", str(opt["beta1"]),
                                  "--beta2", str(opt["beta2"]), "--eps", str(opt["eps"]), "-o", final_dir, "-t", "2"],
                                 check=True, capture_output=True, text=True).stdout
            ours_losses = json.loads(out)["losses"]
            w64 = {k: v.to(torch.float64).clone().requires_grad_(True) for k, v in w.items()}
            decay = [p for k, p in w64.items() if p.dim() == 2 and k not in EMBEDDINGS]
            no_decay = [p for k, p in w64.items() if not (p.dim() == 2 and k not in EMBEDDINGS)]
            o = torch.optim.AdamW([{"params": decay, "weight_decay": opt["wd"]}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=opt["lr"], betas=(opt["beta1"], opt["beta2"]), eps=opt["eps"])
            ref_losses = []
            for s in range(STEPS):
                o.zero_grad()
                loss = reference_loss(w64, cfg, forward, inputs, targets)
                ref_losses.append(loss.item())
                loss.backward()
                torch.nn.utils.clip_grad_norm_(list(w64.values()), opt["clip"])
                for g in o.param_groups:
                    g["lr"] = lr_at(s, opt["lr"], opt["min_lr"], opt["warmup"], STEPS)
                o.step()
            le = max(abs(a - b) / abs(b) for a, b in zip(ours_losses, ref_losses))
            check(f"{name} losses over {STEPS} AdamW steps vs PyTorch", le <= 1e-4,
                  f"worst rel {le:.1e}; {ref_losses[0]:.4f} -> {ref_losses[-1]:.4f}")
            ours_p = read_safetensors(os.path.join(final_dir, "model.safetensors"))
            worst, worst_name = 0.0, ""
            for k, p in w64.items():
                r = rel(ours_p[k], p.detach().numpy())
                if r > worst:
                    worst, worst_name = r, k
            check(f"{name} parameters after {STEPS} AdamW steps vs PyTorch", worst <= 1e-4, f"worst rel err {worst:.1e} ({worst_name})")
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
