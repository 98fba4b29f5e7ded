#!/usr/bin/env python3
"""QLoRA against PyTorch: LoRA adapters trained on a quantised base that stays quantised (its matrices multiplied
through f32 tiles dequantised as they are needed, never widened whole).

For a LLaMA-shaped model (GQA, rows of 256 and 512 values) quantised by `llmforge quantize` to Q4_K_M (Q4_K and Q6_K
matrices, a Q4_K token embedding and a Q6_K output) and to Q8_0, the loss and the gradients of every adapter (rank 4,
B starting non-zero, on v, o and the three MLP projections) from `train-steps` on the quantised file equal PyTorch
autograd (float64) on W + (alpha/r)·B·A with W the dequantised weights, to 1e-5 relative. The dequantised weights are
what `llmforge convert --dtype f32` writes; the dequantisation itself is pinned to ggml's dequantize_row_* by the
QuantsVsGgml test. The merged model (`lora merge` on the quantised base) has the same logits as the adapter beside the
quantised weights read through the f32 path, and PyTorch's logits of the merged weights."""
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
from test_lora import read_gguf, hf_name  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    B, T, R, ALPHA = 2, 24, 4, 8.0
    targets_lora = ["attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
    with tempfile.TemporaryDirectory() as tmp:
        cfg, w, forward = P.make_llama(11, C=256, F=512, V=300, H=4, KV=2, L=2, std=0.05, ctx=64)  # rows of 256 and 512
        V = cfg["vocab_size"]
        src = os.path.join(tmp, "f32")
        P.write_model_dir(src, cfg, w)
        inputs = rng.integers(0, V, size=(B, T)).tolist()
        targets = rng.integers(0, V, size=(B, T))
        targets[0, :3] = -1
        targets = targets.tolist()
        batch = os.path.join(tmp, "batch.json")
        with open(batch, "w") as f:
            json.dump({"inputs": inputs, "targets": targets}, f)
        for qtype, want_types in (("Q4_K_M", {"q4_K", "q6_K"}), ("Q8_0", {"q8_0"})):
            q = os.path.join(tmp, f"{qtype}.gguf")
            subprocess.run([args.bin, "quantize", src, q, qtype, "-t", "2"], check=True, capture_output=True)
            _, qt = gguf_raw.read(q)
            names = {0: "f32", 8: "q8_0", 12: "q4_K", 14: "q6_K"}
            kinds = {names.get(typ, str(typ)) for name, ne, typ, data in qt if len(ne) == 2}
            TT.check(f"{qtype}: the base's matrices are {sorted(want_types)}", kinds == want_types, f"types {sorted(kinds)}")
            deq = os.path.join(tmp, f"{qtype}-deq")
            subprocess.run([args.bin, "convert", q, deq, "--dtype", "f32"], check=True, capture_output=True)
            wq = {k: torch.tensor(v) for k, v in TT.read_safetensors(os.path.join(deq, "model.safetensors")).items()}
            err = max(float((wq[k].double() - w[k].double()).abs().max()) for k in w if k.endswith("proj.weight"))
            TT.check(f"{qtype}: dequantised weights differ from the f32 ones (the base really is quantised)", err > 1e-4, f"max |Δw| {err:.1e}")

            init, grads = os.path.join(tmp, f"{qtype}-init.gguf"), os.path.join(tmp, f"{qtype}-grads.gguf")
            out = subprocess.run([args.bin, "train-steps", "-m", q, "--batch-file", batch, "--steps", "0", "--lora-rank", str(R),
                                  "--lora-alpha", str(ALPHA), "--lora-targets", *targets_lora, "--lora-b-std", "0.05",
                                  "--lora-init-out", init, "--grads-out", grads, "-t", "2"], check=True, capture_output=True, text=True).stdout
            ours_loss = json.loads(out)["losses"][0]
            grads_rc = os.path.join(tmp, f"{qtype}-grads-rc.gguf")
            subprocess.run([args.bin, "train-steps", "-m", q, "--batch-file", batch, "--steps", "0", "--lora-rank", str(R), "--lora-alpha", str(ALPHA),
                            "--lora-targets", *targets_lora, "--lora-b-std", "0.05", "--grads-out", grads_rc, "--recompute", "-t", "2"],
                           check=True, capture_output=True)
            with open(grads, "rb") as f1, open(grads_rc, "rb") as f2:
                TT.check(f"{qtype}: with --recompute the adapters' gradients are bit-identical", f1.read() == f2.read())
            _, ad = read_gguf(init)
            _, gr = read_gguf(grads)
            s = ALPHA / R
            w64 = {k: v.to(torch.float64) for k, v in wq.items()}
            leaves = {k: torch.tensor(v, requires_grad=True) for k, v in ad.items()}
            merged = dict(w64)
            for k in ad:
                if k.endswith(".lora_a"):
                    base = k[:-7]
                    name, _ = hf_name("llama", base)
                    merged[name] = w64[name] + s * leaves[base + ".lora_b"] @ leaves[base + ".lora_a"]
            loss = TT.reference_loss(merged, cfg, forward, inputs, targets)
            loss.backward()
            e = abs(ours_loss - loss.item()) / abs(loss.item())
            TT.check(f"{qtype}: loss with the adapters on the quantised base vs PyTorch", e <= 1e-5, f"ours {ours_loss:.7f}, torch {loss.item():.7f}, rel {e:.1e}")
            worst = max(TT.rel(gr[k], leaves[k].grad.numpy()) for k in ad)
            TT.check(f"{qtype}: gradients of all {len(ad)} adapter tensors vs PyTorch on the dequantised weights", worst <= 1e-5 and set(gr) == set(ad),
                     f"worst rel err {worst:.1e}")

            kept = os.path.join(tmp, f"{qtype}-merged-default.gguf")
            subprocess.run([args.bin, "lora", "merge", "-m", q, "--lora", init, "-o", kept], check=True, capture_output=True)
            _, mt = gguf_raw.read(kept)
            adapted = {k[:-7] for k in ad if k.endswith(".lora_a")}
            ok = all((typ == 1) == (name in adapted) for name, ne, typ, data in mt if len(ne) == 2)
            TT.check(f"{qtype}: merged by default: the adapted matrices f16 (as llama-export-lora), the others as quantised", ok)

            toks = ",".join(map(str, inputs[1]))
            merged_path = os.path.join(tmp, f"{qtype}-merged.gguf")
            subprocess.run([args.bin, "lora", "merge", "-m", q, "--lora", init, "-o", merged_path, "--dtype", "f32"], check=True, capture_output=True)
            o = subprocess.run([args.bin, "logits", "-m", merged_path, "--tokens", toks, "--cache-type", "f32", "-t", "2"], check=True, capture_output=True,
                               text=True).stdout
            ours = np.array([[float(x) for x in line.split()[1:]] for line in o.strip().splitlines()])
            with torch.no_grad():
                ref = forward({k: v.detach() for k, v in merged.items()}, cfg, inputs[1]).numpy()
            rl = float(np.abs(ours - ref).max() / np.abs(ref).max())
            TT.check(f"{qtype}: merged model's logits vs PyTorch", rl <= 1e-5, f"rel {rl:.1e}")
    print(f"{TT.RESULTS['passed']} passed, {TT.RESULTS['failed']} failed")
    sys.exit(1 if TT.RESULTS["failed"] else 0)


if __name__ == "__main__":
    main()
