#!/usr/bin/env python3
"""The compute account of `llmforge info --train-tokens`: its arithmetic recomputed here from the presets' shapes, and
the published GPT-3 figures reproduced under their own stated assumptions.

- Brown et al. 2020 ("Language Models are Few-Shot Learners", Table D.1): GPT-3 175B, 300B tokens, 3.14e23 training
  FLOPs = 3.64e3 PF-days, counting 6·N·D and leaving attention out (their Appendix D).
- Patterson et al. 2021 ("Carbon Emissions and Large Neural Network Training", Table 4): 10,000 V100s for 14.8 days
  (405 processor-years), 24.6 TFLOPS achieved of 125, 330 W per processor with its host share, PUE 1.10, 429 gCO₂e/kWh:
  1,287 MWh and 552 t CO₂e.
- Lambda's estimate (Chuan Li, 2020): 28 TFLOPS per V100 at $1.50 per GPU-hour: 355 GPU-years, $4.6M.

Run: /usr/bin/python3 tests/reference/test_compute.py --bin build/llmforge
"""
import argparse
import json
import subprocess

RESULTS = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


def close(a, b, rel):
    return abs(a - b) <= rel * abs(b)


def info(bin_, *args):
    r = subprocess.run([bin_, "info", *args, "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"llmforge info {' '.join(args)} failed: {r.stderr}")
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    bin_ = ap.parse_args().bin

    # ---- GPT-3 175B: GPT-2's block at d 12288, 96 layers, context 2048, vocabulary 50257, tied output head
    L, d, V, T, D = 96, 12288, 50257, 2048, 300e9
    N = L * (3 * d * d + d * d + 4 * d * d + 4 * d * d) + V * d  # QKV, output, MLP up and down; the tied head
    patterson = ["--gpu", "v100", "--mfu", str(24.6 / 125), "--gpu-power", "330", "--pue", "1.1", "--carbon", "429", "--gpus", "10000"]
    j = info(bin_, "--preset", "gpt3-175b", "--train-tokens", "300e9", "--dense-only", *patterson)
    c = j["compute"]
    check("GPT-3: N is the matrices (12·L·d² and the tied head), not the position lookup", c["matmul_params"] == N,
          f"{c['matmul_params']:.6g} vs {N:.6g}")
    check("GPT-3: 6·N·D, exactly", close(c["flops"]["dense_6ND"], 6 * N * D, 1e-12) and c["flops"]["total"] == c["flops"]["dense_6ND"],
          f"{c['flops']['total']:.5g}")
    check("GPT-3: the paper's 3.14e23 FLOPs and 3.64e3 PF-days", close(c["flops"]["total"], 3.14e23, 0.002) and close(c["flops"]["pf_days"], 3640, 0.005),
          f"{c['flops']['total']:.4g} FLOPs, {c['flops']['pf_days']:.4g} PF-days")
    e = c["estimate"]
    gpu_hours = 6 * N * D / (24.6e12 * 3600)
    check("GPU-hours = FLOPs / (peak · MFU) / 3600", close(e["gpu_hours"], gpu_hours, 1e-9), f"{e['gpu_hours']:.6g}")
    check("energy = GPU-hours · W · PUE; CO₂ = energy · intensity; wall time = GPU-hours / GPUs",
          close(e["energy_mwh"], gpu_hours * 330 * 1.1 / 1e6, 1e-9) and close(e["co2_tonnes"], gpu_hours * 330 * 1.1 / 1e3 * 429 / 1e6, 1e-9)
          and close(e["wall_hours"], gpu_hours / 10000, 1e-9))
    check("Patterson et al.'s GPT-3: 405 processor-years, 14.8 days on 10,000 V100s", close(e["gpu_hours"] / (24 * 365), 405, 0.005)
          and close(e["wall_days"], 14.8, 0.005), f"{e['gpu_hours'] / (24 * 365):.4g} GPU-years, {e['wall_days']:.4g} days")
    check("Patterson et al.'s GPT-3: 1,287 MWh and 552 t CO₂e", close(e["energy_mwh"], 1287, 0.002) and close(e["co2_tonnes"], 552, 0.002),
          f"{e['energy_mwh']:.5g} MWh, {e['co2_tonnes']:.4g} t")
    j = info(bin_, "--preset", "gpt3-175b", "--train-tokens", "300e9", "--dense-only", "--gpu", "v100", "--mfu", str(28 / 125), "--price", "1.5")
    e = j["compute"]["estimate"]
    check("Lambda's GPT-3: 355 GPU-years, $4.6M at 28 TFLOPS and $1.50 per GPU-hour", close(e["gpu_hours"] / (24 * 365), 355, 0.005)
          and 4.6e6 <= e["cost_usd"] < 4.7e6, f"{e['gpu_hours'] / (24 * 365):.4g} GPU-years, ${e['cost_usd'] / 1e6:.3f}M")
    j = info(bin_, "--preset", "gpt3-175b", "--train-tokens", "300e9", "--gpu", "v100")
    c = j["compute"]
    att = 12 * L * d * T * D
    check("with attention: + 12·L·d_attn·T·D (PaLM's count, all T keys)", close(c["flops"]["attention"], att, 1e-12)
          and close(c["flops"]["total"], 6 * N * D + att, 1e-12), f"{c['flops']['attention']:.5g}, total {c['flops']['total']:.5g}")
    check("the datasheet defaults: V100 125 TFLOPS, 300 W; MFU 0.4, PUE 1.1, 429 g/kWh",
          c["gpu"]["peak_tflops"] == 125 and c["gpu"]["power_w"] == 300 and c["assumptions"] == {"mfu": 0.4, "pue": 1.1, "carbon_g_per_kwh": 429})

    # ---- other block descriptions: grouped-query attention with an untied head (TinyLlama), sliding windows on
    # every other layer (Gemma 2), an encoder without a head (BGE-small)
    for name in ("tinyllama-1.1b", "gemma2-2b", "bge-small"):
        j = info(bin_, "--preset", name, "--train-tokens", "1e9", "--seq-len", "0")  # Gemma 2: 8192 tokens, windows of 4096
        C, F, Lh, H, Hkv, hd, Vv = j["n_embd"], j["n_ff"], j["n_layer"], j["n_head"], j["n_head_kv"], j["head_dim"], j["n_vocab"]
        Q, KV = H * hd, Hkv * hd
        gated = "SwiGLU" in j["block"] or "GeGLU" in j["block"]
        per_layer = C * Q + 2 * C * KV + Q * C + (3 if gated else 2) * C * F
        head = 0 if j["architecture"] == "bert" else Vv * C  # tied or not, the output projection multiplies; an encoder has none
        n = Lh * per_layer + head
        Tq = j["compute"]["seq_len"]
        keys = [min(Tq, j["sliding_window"]) if j.get("sliding_window") and (l % j.get("sliding_window_pattern", 1) < j.get("sliding_window_pattern", 1) - 1
                                                                        or j.get("sliding_window_pattern", 1) <= 1) else Tq for l in range(Lh)]
        att = sum(12 * Q * k for k in keys) * 1e9
        c = j["compute"]
        check(f"{name}: N and the attention FLOPs recomputed from its shapes", c["matmul_params"] == n and close(c["flops"]["dense_6ND"], 6 * n * 1e9, 1e-12)
              and close(c["flops"]["attention"], att, 1e-12), f"N {c['matmul_params']:.6g} vs {n:.6g}; attention {c['flops']['attention']:.5g} vs {att:.5g}")

    # ---- bad input: one line, exit 2
    for args, needle in ((["--preset", "gpt2", "--train-tokens", "1e9", "--gpu", "b9000"], "unknown GPU 'b9000'"),
                         (["--preset", "gpt2", "--train-tokens", "1e9", "--mfu", "0"], "--mfu"),
                         (["--preset", "gpt2", "--train-tokens", "-3"], "--train-tokens"),
                         (["--preset", "gpt2", "--train-tokens", "1e9", "--pue", "0.5"], "--pue")):
        r = subprocess.run([bin_, "info", *args], capture_output=True, text=True)
        check(f"bad input {' '.join(args[2:])}: one line, exit 2", r.returncode == 2 and r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr.strip())

    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    raise SystemExit(1 if RESULTS["failed"] else 0)


if __name__ == "__main__":
    main()
