#!/usr/bin/env python3
"""PyTorch parity: random-weight GPT-2, LLaMA (with grouped-query attention), Llama 3 (scaled RoPE), Qwen 2 (q, k, v
biases, tied output; also with YaRN), Qwen 3 (QK-norm, heads wider than hidden_size / heads), Mistral (sliding window) and Gemma 2
(post-norms, soft-capping, GeGLU, alternating windows, scaled embeddings) models written as Hugging Face
safetensors, run by a plain PyTorch implementation (float64) and by llmforge; logits must agree to 1e-4 relative error.

Also checks: token-by-token decoding through the KV cache equals one batched pass; the same model converted to GGUF
(f32, f16, bf16: Hugging Face's rotate_half RoPE layout permuted to GGUF's) and to llama2.c gives the same logits
(the f16/bf16 files against PyTorch run on the same rounded weights); and a prompt longer than the batch size.

Run: /usr/bin/python3 tests/reference/test_torch_parity.py --bin build/llmforge
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

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))

RESULTS = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


def write_safetensors(path, tensors):
    """tensors: dict name -> torch tensor (float32). Written by hand: 8-byte header length, JSON header, raw data."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_model_dir(d, cfg, w, tokenizer=None):
    """A Hugging Face model directory: model.safetensors, config.json and, if given, a copy of tokenizer.json."""
    os.makedirs(d)
    write_safetensors(os.path.join(d, "model.safetensors"), w)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    if tokenizer:
        with open(tokenizer) as src, open(os.path.join(d, "tokenizer.json"), "w") as dst:
            dst.write(src.read())
    return d


# ----------------------------------------------------------------------------------------- reference models
def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def causal_attention(q, k, v, window=None, scale=None, softcap=None):
    """q: (H, T, d), k/v: (H, T, d) -> (T, H*d). softmax(Q K^T / sqrt(d_k) + mask) V; with a sliding window, query i
    sees keys j with i - window < j <= i (transformers' sliding_window_causal mask: kv_idx > q_idx - window).
    scale: the scores' factor instead of 1/sqrt(d_k); softcap: scores s -> softcap * tanh(s / softcap) (Gemma 2)."""
    T, d = q.shape[1], q.shape[2]
    scores = q @ k.transpose(1, 2) * (scale if scale is not None else 1 / d ** 0.5)
    if softcap:
        scores = softcap * torch.tanh(scores / softcap)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    if window:
        mask |= torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-window)
    scores = scores.masked_fill(mask, float("-inf"))
    y = torch.softmax(scores, dim=-1) @ v
    return y.transpose(0, 1).reshape(T, -1)


# The activations entering each weight product are rounded to this dtype first (None: not rounded). llmforge, as
# llama.cpp (its vec_dot_type), multiplies f16 weights by activations rounded to f16 — in decoding and in prompts of up
# to 128 rows.
ACT_ROUND = None


def set_act_round(dtype):
    global ACT_ROUND
    ACT_ROUND = dtype


def mm(a, b):
    if ACT_ROUND is not None:
        a = a.to(ACT_ROUND).to(a.dtype)
    return a @ b


def gpt2_forward(w, cfg, tokens, hidden=False):
    C, H = cfg["n_embd"], cfg["n_head"]
    d = C // H
    T = len(tokens)
    x = w["wte.weight"][tokens] + w["wpe.weight"][:T]
    for l in range(cfg["n_layer"]):
        p = f"h.{l}."
        h = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], cfg["layer_norm_epsilon"])
        qkv = mm(h, w[p + "attn.c_attn.weight"]) + w[p + "attn.c_attn.bias"]  # Conv1D: x @ W, W is [in, out]
        q, k, v = qkv.split(C, dim=1)
        q, k, v = (t.reshape(T, H, d).transpose(0, 1) for t in (q, k, v))
        y = causal_attention(q, k, v)
        x = x + mm(y, w[p + "attn.c_proj.weight"]) + w[p + "attn.c_proj.bias"]
        h = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], cfg["layer_norm_epsilon"])
        h = torch.nn.functional.gelu(mm(h, w[p + "mlp.c_fc.weight"]) + w[p + "mlp.c_fc.bias"], approximate="tanh")
        x = x + mm(h, w[p + "mlp.c_proj.weight"]) + w[p + "mlp.c_proj.bias"]
    x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], cfg["layer_norm_epsilon"])
    return (mm(x, w["wte.weight"].T), x) if hidden else mm(x, w["wte.weight"].T)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def proj(w, h, name):
    """h Wᵀ (+ b where the checkpoint has a bias: Qwen 2's q, k, v)"""
    y = mm(h, w[name + ".weight"].T)
    return y + w[name + ".bias"] if name + ".bias" in w else y


def rope_inv_freq(cfg, d):
    """RoPE's inverse frequencies θ^(−2j/d), with transformers' rope_scaling: linear (all divided by the factor),
    Llama 3's (long wavelengths divided by the factor, short ones kept, a smooth blend between) or YaRN (Peng et al.
    2023: pairs turning more than beta_fast times over the original context kept, fewer than beta_slow times divided by
    the factor, a linear ramp between, its ends rounded outwards)."""
    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv_freq
    kind = rs.get("rope_type", rs.get("type"))
    if kind == "linear":
        return inv_freq / rs["factor"]
    if kind == "yarn":
        orig = rs.get("original_max_position_embeddings", cfg["max_position_embeddings"])
        corr = lambda beta: d * math.log(orig / (beta * 2 * math.pi)) / (2 * math.log(cfg["rope_theta"]))
        low, high = max(math.floor(corr(rs.get("beta_fast", 32))), 0), min(math.ceil(corr(rs.get("beta_slow", 1))), d - 1)
        ramp = ((torch.arange(d // 2, dtype=torch.float64) - low) / max(high - low, 0.001)).clamp(0, 1)
        keep = 1 - ramp  # the share of the unscaled frequency
        return inv_freq / rs["factor"] * (1 - keep) + inv_freq * keep
    assert kind == "llama3", kind
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / low, old / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, scaled)


def rope_tables(cfg, d, T):
    """cos and sin (1, T, d) of rotate_half's layout; YaRN multiplies both by its attention factor (attention_factor,
    or 1 + 0.1 ln factor)."""
    inv_freq = rope_inv_freq(cfg, d)
    freqs = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    rs = cfg.get("rope_scaling") or {}
    m = 1.0
    if rs.get("rope_type", rs.get("type")) == "yarn":
        m = rs.get("attention_factor") or 0.1 * math.log(rs["factor"]) + 1
    return emb.cos()[None] * m, emb.sin()[None] * m


def llama_forward(w, cfg, tokens, hidden=False):
    """LLaMA's block and the families built on it (Qwen 2: biases on q, k, v; tied output where lm_head is absent;
    Qwen 3: head_dim apart from hidden_size / heads, each head's q and k RMS-normalised before RoPE; Mistral: attention
    within a sliding window)."""
    C, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim") or C // H
    T = len(tokens)
    eps = cfg["rms_norm_eps"]
    window = cfg.get("sliding_window") if cfg["model_type"] == "mistral" else None
    cos, sin = rope_tables(cfg, d, T)  # (1, T, d)
    x = w["model.embed_tokens.weight"][tokens]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = proj(w, h, p + "self_attn.q_proj").reshape(T, H, d).transpose(0, 1)
        k = proj(w, h, p + "self_attn.k_proj").reshape(T, KV, d).transpose(0, 1)
        v = proj(w, h, p + "self_attn.v_proj").reshape(T, KV, d).transpose(0, 1)
        if p + "self_attn.q_norm.weight" in w:  # QK-norm: RMSNorm over each head's d values
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=0)  # grouped-query attention: each KV head serves H/KV query heads
        v = v.repeat_interleave(H // KV, dim=0)
        x = x + mm(causal_attention(q, k, v, window), w[p + "self_attn.o_proj.weight"].T)
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = torch.nn.functional.silu(mm(h, w[p + "mlp.gate_proj.weight"].T))
        x = x + mm(g * mm(h, w[p + "mlp.up_proj.weight"].T), w[p + "mlp.down_proj.weight"].T)
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["model.embed_tokens.weight"]
    return (mm(x, head.T), x) if hidden else mm(x, head.T)


def gemma2_forward(w, cfg, tokens, hidden=False):
    """Gemma 2 (transformers' modeling_gemma2.py, written from its equations): embeddings times sqrt(hidden_size);
    RMSNorm multiplying by (1 + w) before and after each sub-layer; RoPE (rotate_half); scores scaled by
    query_pre_attn_scalar^-1/2 and soft-capped; even layers within the sliding window, odd ones global; GeGLU
    (tanh GELU); the output tied, its logits soft-capped."""
    C, H, KV, d = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    T = len(tokens)
    eps = cfg["rms_norm_eps"]
    norm = lambda x, name: rms_norm(x, 1 + w[name], eps)
    cos, sin = rope_tables(cfg, d, T)
    x = w["model.embed_tokens.weight"][tokens] * C ** 0.5
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = norm(x, p + "input_layernorm.weight")
        q = proj(w, h, p + "self_attn.q_proj").reshape(T, H, d).transpose(0, 1)
        k = proj(w, h, p + "self_attn.k_proj").reshape(T, KV, d).transpose(0, 1)
        v = proj(w, h, p + "self_attn.v_proj").reshape(T, KV, d).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=0)
        v = v.repeat_interleave(H // KV, dim=0)
        window = cfg["sliding_window"] if l % 2 == 0 else None
        y = causal_attention(q, k, v, window, cfg["query_pre_attn_scalar"] ** -0.5, cfg["attn_logit_softcapping"])
        x = x + norm(mm(y, w[p + "self_attn.o_proj.weight"].T), p + "post_attention_layernorm.weight")
        h = norm(x, p + "pre_feedforward_layernorm.weight")
        g = torch.nn.functional.gelu(mm(h, w[p + "mlp.gate_proj.weight"].T), approximate="tanh")
        y = mm(g * mm(h, w[p + "mlp.up_proj.weight"].T), w[p + "mlp.down_proj.weight"].T)
        x = x + norm(y, p + "post_feedforward_layernorm.weight")
    x = norm(x, "model.norm.weight")
    z = mm(x, w["model.embed_tokens.weight"].T)
    cap = cfg["final_logit_softcapping"]
    if cap:
        z = cap * torch.tanh(z / cap)
    return (z, x) if hidden else z


# ----------------------------------------------------------------------------------------- random models
def make_gpt2(seed):
    g = torch.Generator().manual_seed(seed)
    cfg = {"model_type": "gpt2", "n_embd": 64, "n_layer": 3, "n_head": 4, "n_positions": 96, "vocab_size": 301,
           "layer_norm_epsilon": 1e-5, "n_inner": 256}
    C, F, V = 64, 256, 301
    r = lambda *s, std=0.1: torch.randn(*s, generator=g) * std
    w = {"wte.weight": r(V, C, std=0.3), "wpe.weight": r(96, C, std=0.1), "ln_f.weight": 1 + r(C), "ln_f.bias": r(C)}
    for l in range(3):
        p = f"h.{l}."
        w.update({p + "ln_1.weight": 1 + r(C), p + "ln_1.bias": r(C), p + "attn.c_attn.weight": r(C, 3 * C),
                  p + "attn.c_attn.bias": r(3 * C), p + "attn.c_proj.weight": r(C, C), p + "attn.c_proj.bias": r(C),
                  p + "ln_2.weight": 1 + r(C), p + "ln_2.bias": r(C), p + "mlp.c_fc.weight": r(C, F),
                  p + "mlp.c_fc.bias": r(F), p + "mlp.c_proj.weight": r(F, C), p + "mlp.c_proj.bias": r(C)})
    return cfg, w, gpt2_forward


def make_llama(seed, C=64, F=160, V=301, H=8, KV=2, L=3, std=0.1, ctx=96):
    """A LLaMA with GQA (the shape and the matrices' std as given; the embedding's std 0.3)."""
    g = torch.Generator().manual_seed(seed)
    cfg = {"model_type": "llama", "hidden_size": C, "intermediate_size": F, "num_hidden_layers": L,
           "num_attention_heads": H, "num_key_value_heads": KV, "max_position_embeddings": ctx, "vocab_size": V,
           "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False}
    d = C // H
    r = lambda *s, std=std: torch.randn(*s, generator=g) * std
    w = {"model.embed_tokens.weight": r(V, C, std=0.3), "model.norm.weight": 1 + r(C), "lm_head.weight": r(V, C)}
    for l in range(L):
        p = f"model.layers.{l}."
        w.update({p + "input_layernorm.weight": 1 + r(C), p + "self_attn.q_proj.weight": r(C, C),
                  p + "self_attn.k_proj.weight": r(KV * d, C), p + "self_attn.v_proj.weight": r(KV * d, C),
                  p + "self_attn.o_proj.weight": r(C, C), p + "post_attention_layernorm.weight": 1 + r(C),
                  p + "mlp.gate_proj.weight": r(F, C), p + "mlp.up_proj.weight": r(F, C), p + "mlp.down_proj.weight": r(C, F)})
    return cfg, w, llama_forward


def make_llama3(seed):
    """Llama 3.x: Llama 3's RoPE scaling (an original context of 32 positions, so that every kind of pair — kept,
    blended, divided — occurs in 16-dim heads at these lengths) and, as 3.2's 1B and 3B, the output tied."""
    cfg, w, forward = make_llama(seed)
    cfg.update({"rope_theta": 10000.0, "tie_word_embeddings": True, "max_position_embeddings": 256,
                "num_attention_heads": 4, "num_key_value_heads": 2,
                "rope_scaling": {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                 "original_max_position_embeddings": 32}})
    del w["lm_head.weight"]
    C, H, KV = cfg["hidden_size"], 4, 2
    d = C // H
    g = torch.Generator().manual_seed(seed + 1)
    for l in range(cfg["num_hidden_layers"]):  # k, v for 2 KV heads of 16 dims
        p = f"model.layers.{l}."
        w[p + "self_attn.k_proj.weight"] = torch.randn(KV * d, C, generator=g) * 0.1
        w[p + "self_attn.v_proj.weight"] = torch.randn(KV * d, C, generator=g) * 0.1
    return cfg, w, forward


def make_qwen2(seed):
    """Qwen 2 / 2.5: biases on q, k, v; the output tied to the token embedding (as the 0.5B–3B checkpoints)."""
    g = torch.Generator().manual_seed(seed)
    C, F, V, H, KV, L = 64, 160, 301, 8, 2, 3
    cfg = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": C, "intermediate_size": F,
           "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": KV, "max_position_embeddings": 96,
           "vocab_size": V, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True, "hidden_act": "silu",
           "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": L, "attention_dropout": 0.0}
    d = C // H
    r = lambda *s, std=0.1: torch.randn(*s, generator=g) * std
    w = {"model.embed_tokens.weight": r(V, C, std=0.3), "model.norm.weight": 1 + r(C)}
    for l in range(L):
        p = f"model.layers.{l}."
        w.update({p + "input_layernorm.weight": 1 + r(C), p + "self_attn.q_proj.weight": r(C, C), p + "self_attn.q_proj.bias": r(C),
                  p + "self_attn.k_proj.weight": r(KV * d, C), p + "self_attn.k_proj.bias": r(KV * d),
                  p + "self_attn.v_proj.weight": r(KV * d, C), p + "self_attn.v_proj.bias": r(KV * d),
                  p + "self_attn.o_proj.weight": r(C, C), p + "post_attention_layernorm.weight": 1 + r(C),
                  p + "mlp.gate_proj.weight": r(F, C), p + "mlp.up_proj.weight": r(F, C), p + "mlp.down_proj.weight": r(C, F)})
    return cfg, w, llama_forward


def make_qwen3(seed):
    """Qwen 3: no biases, 32-wide heads (queries twice the model's width, as Qwen3-0.6B's), QK-norm, tied output."""
    g = torch.Generator().manual_seed(seed)
    C, F, V, H, KV, L, d = 64, 160, 301, 4, 2, 3, 32
    cfg = {"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "hidden_size": C, "intermediate_size": F,
           "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": KV, "head_dim": d,
           "max_position_embeddings": 96, "vocab_size": V, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
           "tie_word_embeddings": True, "hidden_act": "silu", "attention_bias": False, "use_sliding_window": False,
           "sliding_window": None, "max_window_layers": L, "attention_dropout": 0.0}
    r = lambda *s, std=0.1: torch.randn(*s, generator=g) * std
    w = {"model.embed_tokens.weight": r(V, C, std=0.3), "model.norm.weight": 1 + r(C)}
    for l in range(L):
        p = f"model.layers.{l}."
        w.update({p + "input_layernorm.weight": 1 + r(C), p + "self_attn.q_proj.weight": r(H * d, C),
                  p + "self_attn.k_proj.weight": r(KV * d, C), p + "self_attn.v_proj.weight": r(KV * d, C),
                  p + "self_attn.q_norm.weight": 1 + r(d), p + "self_attn.k_norm.weight": 1 + r(d),
                  p + "self_attn.o_proj.weight": r(C, H * d), p + "post_attention_layernorm.weight": 1 + r(C),
                  p + "mlp.gate_proj.weight": r(F, C), p + "mlp.up_proj.weight": r(F, C), p + "mlp.down_proj.weight": r(C, F)})
    return cfg, w, llama_forward


def make_qwen2_yarn(seed):
    """Qwen 2.5 with YaRN as its model card says to enable it (rope_scaling type "yarn", a factor of 4 over an original
    context of 64 positions here, so that 16-wide heads have kept, blended and divided pairs), and an explicit
    attention_factor of 1.25 (instead of 1 + 0.1 ln 4)."""
    cfg, w, forward = make_qwen2(seed)
    C, H, KV = cfg["hidden_size"], 4, 2
    d = C // H
    cfg.update({"num_attention_heads": H, "num_key_value_heads": KV, "rope_theta": 10000.0, "max_position_embeddings": 256,
                "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64, "attention_factor": 1.25}})
    g = torch.Generator().manual_seed(seed + 1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        for n in ("k_proj", "v_proj"):
            w[p + f"self_attn.{n}.weight"] = torch.randn(KV * d, C, generator=g) * 0.1
            w[p + f"self_attn.{n}.bias"] = torch.randn(KV * d, generator=g) * 0.1
    return cfg, w, forward


def make_mistral(seed):
    """Mistral: LLaMA's block attending within a sliding window of 12 positions (prompts of 24 and 40 tokens reach
    past it, 7 do not)."""
    cfg, w, forward = make_llama(seed)
    cfg.update({"model_type": "mistral", "architectures": ["MistralForCausalLM"], "sliding_window": 12, "head_dim": 8,
                "rms_norm_eps": 1e-5, "hidden_act": "silu"})
    return cfg, w, forward


def make_gemma2(seed):
    """Gemma 2: 32-wide heads (the queries twice the model's width), a window of 12 positions on layers 0 and 2, scores
    scaled by 1/sqrt(24) and soft-capped at 2, logits at 3 (small caps, so that tanh bends the random model's values),
    norm weights around 0 (Gemma multiplies by 1 + w)."""
    g = torch.Generator().manual_seed(seed)
    C, F, V, H, KV, L, d = 64, 160, 301, 4, 2, 3, 32
    cfg = {"model_type": "gemma2", "architectures": ["Gemma2ForCausalLM"], "hidden_size": C, "intermediate_size": F,
           "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": KV, "head_dim": d,
           "max_position_embeddings": 96, "vocab_size": V, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
           "hidden_activation": "gelu_pytorch_tanh", "hidden_act": "gelu_pytorch_tanh", "attention_bias": False,
           "query_pre_attn_scalar": 24, "attn_logit_softcapping": 2.0, "final_logit_softcapping": 3.0,
           "sliding_window": 12, "cache_implementation": "hybrid", "tie_word_embeddings": True, "attention_dropout": 0.0}
    r = lambda *s, std=0.1: torch.randn(*s, generator=g) * std
    w = {"model.embed_tokens.weight": r(V, C, std=0.05), "model.norm.weight": r(C)}
    for l in range(L):
        p = f"model.layers.{l}."
        w.update({p + "input_layernorm.weight": r(C), p + "self_attn.q_proj.weight": r(H * d, C, std=0.2),
                  p + "self_attn.k_proj.weight": r(KV * d, C, std=0.2), p + "self_attn.v_proj.weight": r(KV * d, C),
                  p + "self_attn.o_proj.weight": r(C, H * d), p + "post_attention_layernorm.weight": r(C),
                  p + "pre_feedforward_layernorm.weight": r(C), p + "mlp.gate_proj.weight": r(F, C),
                  p + "mlp.up_proj.weight": r(F, C), p + "mlp.down_proj.weight": r(C, F),
                  p + "post_feedforward_layernorm.weight": r(C)})
    return cfg, w, gemma2_forward


# ----------------------------------------------------------------------------------------- llmforge
def llmforge_logits(binary, model, tokens, *extra):
    cmd = [binary, "logits", "-m", model, "--tokens", ",".join(map(str, tokens)), "--cache-type", "f32", *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [list(map(float, line.split()[1:])) for line in out.strip().split("\n")]
    return np.array(rows, dtype=np.float64)


def d_head(cfg):
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def rel_err(ours, ref):
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def rounded(w, dtype):
    return {k: v.to(dtype).to(torch.float64) for k, v in w.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(1234)
    with tempfile.TemporaryDirectory() as tmp:
        for name, maker in (("gpt2", make_gpt2), ("llama-gqa", make_llama), ("llama3", make_llama3), ("qwen2", make_qwen2),
                            ("qwen2-yarn", make_qwen2_yarn), ("qwen3", make_qwen3), ("mistral", make_mistral), ("gemma2", make_gemma2)):
            cfg, w, forward = maker(7)
            d = write_model_dir(os.path.join(tmp, name), cfg, w)
            w64 = {k: v.to(torch.float64) for k, v in w.items()}
            for T in (1, 7, 40):
                tokens = rng.integers(0, 301, size=T).tolist()
                ref = forward(w64, cfg, tokens).numpy()
                ours = llmforge_logits(args.bin, d, tokens)
                e = rel_err(ours, ref)
                check(f"{name} safetensors T={T} vs PyTorch", e <= 1e-4, f"rel err {e:.2e}")
                if T == 40:  # the AVX2 and portable kernels, forced through LLMFORGE_ISA
                    for isa in ("avx2", "scalar"):
                        env = dict(os.environ, LLMFORGE_ISA=isa)
                        cmd = [args.bin, "logits", "-m", d, "--tokens", ",".join(map(str, tokens)), "--cache-type", "f32"]
                        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
                        got = np.array([list(map(float, l.split()[1:])) for l in out.strip().split("\n")])
                        e = rel_err(got, ref)
                        check(f"{name} T={T} with LLMFORGE_ISA={isa} vs PyTorch", e <= 1e-4, f"rel err {e:.2e}")
                if T == 40:  # --no-mmap: the f32 matrices whose rows are a multiple of 32 repacked into panels
                    cmd = [args.bin, "logits", "-m", d, "--tokens", ",".join(map(str, tokens)), "--cache-type", "f32", "--no-mmap"]
                    run = subprocess.run(cmd, check=True, capture_output=True, text=True)
                    got = np.array([list(map(float, l.split()[1:])) for l in run.stdout.strip().split("\n")])
                    e = rel_err(got, ref)
                    check(f"{name} T={T} --no-mmap (repacked matrices) vs PyTorch", e <= 1e-4 and "repacked" in run.stderr,
                          f"rel err {e:.2e}; {run.stderr.strip().splitlines()[-1]}")
                    inc = llmforge_logits(args.bin, d, tokens, "--no-mmap", "--incremental")
                    e2 = float(np.abs(inc - got).max())
                    check(f"{name} --no-mmap KV-cache decoding == batched pass T={T}", e2 <= 1e-5, f"max abs diff {e2:.2e}")
                if T > 1:
                    inc = llmforge_logits(args.bin, d, tokens, "--incremental")
                    e2 = float(np.abs(inc - ours).max())
                    check(f"{name} KV-cache decoding == batched pass T={T}", e2 <= 1e-5, f"max abs diff {e2:.2e}")
                    small = llmforge_logits(args.bin, d, tokens, "-b", "3")
                    e3 = rel_err(small, ref)
                    check(f"{name} prompt in batches of 3, T={T}", e3 <= 1e-4, f"rel err {e3:.2e}")
                if name == "gemma2" and T == 40:
                    # each feature of the block matters here: the reference without it is far away
                    for what, change in (("the sliding window", dict(sliding_window=None)),
                                         ("the scores' soft-cap", dict(attn_logit_softcapping=None)),
                                         ("the logits' soft-cap", dict(final_logit_softcapping=None)),
                                         ("query_pre_attn_scalar", dict(query_pre_attn_scalar=d_head(cfg)))):
                        e0 = rel_err(ours, forward(w64, dict(cfg, **change), tokens).numpy())
                        check(f"gemma2 T=40: {what} changes the logits", e0 > 1e-3, f"rel err without it {e0:.2e}")
                if name == "qwen2-yarn" and T == 40:  # the scaling matters: without it, or without its attention factor
                    for what, rs in (("YaRN", None), ("its attention factor", dict(cfg["rope_scaling"], attention_factor=None))):
                        e0 = rel_err(ours, forward(w64, dict(cfg, rope_scaling=rs), tokens).numpy())
                        check(f"qwen2-yarn T=40: {what} changes the logits", e0 > 1e-3, f"rel err without it {e0:.2e}")
                if name == "mistral" and T == 40:
                    # the window matters here: without it the reference is far away
                    e0 = rel_err(ours, forward(w64, dict(cfg, sliding_window=None), tokens).numpy())
                    check("mistral T=40: the sliding window changes the logits", e0 > 1e-2, f"rel err without it {e0:.2e}")
                    # token by token through a KV cache of 12 cells only (a ring: batches of 1, window 12)
                    ring = llmforge_logits(args.bin, d, tokens, "--incremental", "-b", "1")
                    e4 = float(np.abs(ring - ours).max())
                    check("mistral KV-cache decoding in a 12-cell ring == batched pass T=40", e4 <= 1e-5, f"max abs diff {e4:.2e}")
            tokens = rng.integers(0, 301, size=24).tolist()
            ref = forward(w64, cfg, tokens).numpy()
            for dt, tdt in (("f32", None), ("f16", torch.float16), ("bf16", torch.bfloat16)):
                g = os.path.join(tmp, f"{name}-{dt}.gguf")
                subprocess.run([args.bin, "convert", d, g, "--dtype", dt], check=True, capture_output=True)
                r = ref
                if tdt is not None:  # PyTorch on the same rounded matrices (norms and biases stay f32 in GGUF)
                    wr = {k: (v.to(tdt).to(torch.float64) if v.dim() == 2 else v.to(torch.float64)) for k, v in w.items()}
                    set_act_round(tdt)  # activations rounded as ours (and llama.cpp's) are (24 tokens: the register-tiled path)
                    r = forward(wr, cfg, tokens).numpy()
                    set_act_round(None)
                ours = llmforge_logits(args.bin, g, tokens)
                e = rel_err(ours, r)
                # f16: the activations are rounded to f16 on both sides, but a value that float32 (here) and float64
                # (PyTorch) put on either side of an f16 rounding boundary rounds apart, worth 2^-11 of that element.
                # The first position agrees exactly; from the second or third on, attention's float32 arithmetic differs
                # enough (~1e-6) for such flips to happen somewhere: 3–6e-4 measured, hence 1e-3 for f16.
                # bf16: the same flips, at 8× f16's unit in the last place: up to 2.4e-3 measured over 12 prompts of 24
                # tokens (Qwen 2 and Qwen 3 models; most prompts flip nothing and agree to ~1e-7), hence 5e-3.
                tol = 1e-3 if dt == "f16" else 5e-3 if dt == "bf16" else 1e-4
                check(f"{name} converted to GGUF {dt} vs PyTorch", e <= tol, f"rel err {e:.2e}")
                if tdt is not None:  # and the rounding is what makes the difference: without it PyTorch is further away
                    e0 = rel_err(ours, forward(wr, cfg, tokens).numpy())
                    check(f"{name} {dt}: closer to PyTorch rounding the activations the same way than to PyTorch without", e < e0, f"{e:.2e} < {e0:.2e}")
            # GGUF -> safetensors -> logits (the inverse RoPE permutation and Conv1D transposition)
            back = os.path.join(tmp, f"{name}-back")
            subprocess.run([args.bin, "convert", os.path.join(tmp, f"{name}-f32.gguf"), back], check=True, capture_output=True)
            e = rel_err(llmforge_logits(args.bin, back, tokens), ref)
            check(f"{name} GGUF -> safetensors round trip vs PyTorch", e <= 1e-4, f"rel err {e:.2e}")
            if name == "llama-gqa":  # (llama2.c's format has no RoPE scaling)
                b = os.path.join(tmp, "l2c", "model.bin")
                os.makedirs(os.path.dirname(b))
                subprocess.run([args.bin, "convert", d, b], check=True, capture_output=True)
                e = rel_err(llmforge_logits(args.bin, b, tokens), ref)
                check(f"{name} converted to llama2.c .bin vs PyTorch", e <= 1e-4, f"rel err {e:.2e}")
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
