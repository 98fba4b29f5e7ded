#!/usr/bin/env python3
"""LoRA against PyTorch: for random GPT-2 (adapters on every matrix) and LLaMA-GQA (on v, o and the MLP) models with
adapters of rank 4 whose B starts non-zero, the loss and the gradients of every A and B equal PyTorch autograd on
W + (alpha/r)·B·A (float64) to 1e-4 relative. The adapter applied beside the base weights (`logits --lora`) gives the
logits of the merged model (`lora merge`) to 1e-5, and both equal PyTorch's logits of the merged weights.

Adapters are read here from llama.cpp's GGUF adapter layout with a small reader of our own (GGUF v3: header,
key/values, tensor infos, aligned data)."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_torch_parity as P  # noqa: E402
import test_torch_train as TT  # noqa: E402
import gguf_raw  # noqa: E402

def read_gguf(path):
    """Tensors (f32) and metadata of a GGUF file."""
    meta, tensors = gguf_raw.read(path)
    out = {}
    for name, ne, typ, data in tensors:
        assert typ == 0, f"{name}: only f32 tensors expected"
        out[name] = np.frombuffer(data, dtype=np.float32).reshape(list(reversed(ne))).astype(np.float64)
    return meta, out


GPT2_HF = {"attn_qkv": "attn.c_attn", "attn_output": "attn.c_proj", "ffn_up": "mlp.c_fc", "ffn_down": "mlp.c_proj"}
LLAMA_HF = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
            "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def hf_name(arch, gguf_weight):
    _, layer, short, _ = gguf_weight.split(".")
    if arch == "gpt2":
        return f"h.{layer}.{GPT2_HF[short]}.weight", True  # Conv1D: stored [in, out]
    return f"model.layers.{layer}.{LLAMA_HF[short]}.weight", False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(99)
    B, T, R, ALPHA = 2, 20, 4, 8.0
    with tempfile.TemporaryDirectory() as tmp:
        for arch, maker, lora_targets in (("gpt2", P.make_gpt2, ["all"]),
                                     ("llama", P.make_llama, ["attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"])):
            cfg, w, forward = maker(5)
            V = cfg["vocab_size"]
            d = P.write_model_dir(os.path.join(tmp, arch), cfg, w)
            inputs = rng.integers(0, V, size=(B, T)).tolist()
            targets = rng.integers(0, V, size=(B, T))
            targets[1, :4] = -1
            targets = targets.tolist()
            batch = os.path.join(tmp, f"{arch}-batch.json")
            with open(batch, "w") as f:
                json.dump({"inputs": inputs, "targets": targets}, f)
            init, grads = os.path.join(tmp, f"{arch}-init.gguf"), os.path.join(tmp, f"{arch}-grads.gguf")
            out = subprocess.run([args.bin, "train-steps", "-m", d, "--batch-file", batch, "--steps", "0", "--lora-rank", str(R), "--lora-alpha", str(ALPHA),
                                  "--lora-targets", *lora_targets, "--lora-b-std", "0.05", "--lora-init-out", init, "--grads-out", grads, "-t", "2"],
                                 check=True, capture_output=True, text=True).stdout
            ours_loss = json.loads(out)["losses"][0]
            meta, ad = read_gguf(init)
            _, gr = read_gguf(grads)
            TT.check(f"{arch}: adapter metadata (general.type adapter, alpha)", meta.get("general.type") == "adapter" and abs(meta.get("adapter.lora.alpha", 0) - ALPHA) < 1e-6)
            # PyTorch: W' = W + s·B·A with A, B the leaves
            s = ALPHA / R
            w64 = {k: v.to(torch.float64) for k, v in w.items()}
            leaves = {k: torch.tensor(v, requires_grad=True) for k, v in ad.items()}
            merged = dict(w64)
            for k in ad:
                if not k.endswith(".lora_a"):
                    continue
                base = k[:-7]
                name, conv1d = hf_name(arch, base)
                delta = s * leaves[base + ".lora_b"] @ leaves[base + ".lora_a"]  # [out, in]
                merged[name] = w64[name] + (delta.T if conv1d else delta)
            loss = TT.reference_loss(merged, cfg, forward, inputs, targets)
            loss.backward()
            e = abs(ours_loss - loss.item()) / abs(loss.item())
            TT.check(f"{arch}: loss with LoRA vs PyTorch", e <= 1e-4, f"ours {ours_loss:.6f}, torch {loss.item():.6f}")
            worst = max(TT.rel(gr[k], leaves[k].grad.numpy()) for k in ad)
            TT.check(f"{arch}: gradients of all {len(ad)} adapter tensors vs PyTorch", worst <= 1e-4 and set(gr) == set(ad), f"worst rel err {worst:.1e}")

            # beside vs merged vs PyTorch
            toks = ",".join(map(str, inputs[0]))
            merged_path = os.path.join(tmp, f"{arch}-merged.gguf")
            subprocess.run([args.bin, "lora", "merge", "-m", d, "--lora", init, "-o", merged_path, "--dtype", "f32"], check=True, capture_output=True)

            def logits(*extra):
                o = subprocess.run([args.bin, "logits", "--tokens", toks, "--cache-type", "f32", "-t", "2", *extra], check=True, capture_output=True, text=True).stdout
                return np.array([[float(x) for x in line.split()[1:]] for line in o.strip().splitlines()])

            beside = logits("-m", d, "--lora", init)
            merged_l = logits("-m", merged_path)
            diff = float(np.abs(beside - merged_l).max())
            TT.check(f"{arch}: adapter beside the weights = merged model", diff <= 1e-5, f"max |Δ logit| {diff:.1e}")
            with torch.no_grad():
                ref = forward({k: v.detach() for k, v in merged.items()}, cfg, inputs[0]).numpy()
            rl = float(np.abs(beside - ref).max() / np.abs(ref).max())
            TT.check(f"{arch}: logits with the adapter vs PyTorch", rl <= 1e-4, f"rel {rl:.1e}")
    print(f"{TT.RESULTS['passed']} passed, {TT.RESULTS['failed']} failed")
    sys.exit(1 if TT.RESULTS["failed"] else 0)


if __name__ == "__main__":
    main()
