#!/usr/bin/env python3
"""Supervised fine-tuning against PyTorch and Jinja2: the assistant-only mask and the masked loss.

For a byte-level BPE tokenizer trained here (with ChatML's special tokens) and random GPT-2 and LLaMA (GQA) models:
  1. `llmforge chat-template encode` renders a multi-turn conversation with a system prompt exactly as Jinja2
     (Debian's python3-jinja2) renders ChatML, and its mask covers exactly the assistant contents and their
     <|im_end|>\\n — nothing of the system or user turns or of the role headers;
  2. the loss and every gradient of a padded batch of two conversations, with the targets masked that way, equal a
     PyTorch implementation (cross-entropy with ignore_index) to 1e-4 relative;
  3. changing the words of a user turn that no assistant turn follows changes no gradient at all (bit for bit): the
     loss takes nothing from masked positions; changing a user turn that an answer follows does change them.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import jinja2
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_torch_parity as P  # noqa: E402
import test_torch_train as TT  # noqa: E402

CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def conv(final_user):
    return [{"role": "system", "content": "Short."},
            {"role": "user", "content": "Cat?"},
            {"role": "assistant", "content": "A pet."},
            {"role": "user", "content": "Dog?"},
            {"role": "assistant", "content": "Loyal."},
            {"role": "user", "content": final_user}]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tok = os.path.join(tmp, "tokenizer.json")
        subprocess.run([args.bin, "tokenizer", "train", "--input", "/usr/share/common-licenses/GPL-3", "--vocab-size", "301", "-o", tok, "-q"],
                       check=True, capture_output=True)
        for name, maker in (("gpt2", P.make_gpt2), ("llama-gqa", P.make_llama)):
            cfg, w, forward = maker(7)
            d = P.write_model_dir(os.path.join(tmp, name), cfg, w, tokenizer=tok)

            def encode(messages):
                out = subprocess.run([args.bin, "chat-template", "encode", "-m", d, "--messages", json.dumps(messages)],
                                     check=True, capture_output=True, text=True).stdout
                return json.loads(out)

            a = conv("Bye now.")
            ea = encode(a)
            text = "".join(ea["pieces"])
            want = jinja2.Environment().from_string(CHATML).render(messages=a, add_generation_prompt=False)
            TT.check(f"{name}: the tokens spell the Jinja2 rendering of ChatML", text == want, repr(text[:80]))
            trained = "".join(p for p, t in zip(ea["pieces"], ea["trained"]) if t)
            want_trained = "".join(m["content"] + "<|im_end|>\n" for m in a if m["role"] == "assistant")
            TT.check(f"{name}: the mask covers exactly the assistant turns and their end-of-turn tokens", trained == want_trained, repr(trained))

            b = [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi!"}]
            eb = encode(b)

            def batch(encs):
                T = max(len(e["ids"]) for e in encs) - 1
                inputs, targets = [], []
                for e in encs:
                    ids, tr = e["ids"], e["trained"]
                    row_in = ids[:-1] + [0] * (T - (len(ids) - 1))
                    row_tg = [ids[t + 1] if tr[t + 1] else -1 for t in range(len(ids) - 1)] + [-1] * (T - (len(ids) - 1))
                    inputs.append(row_in)
                    targets.append(row_tg)
                return inputs, targets

            def grads(inputs, targets, tag):
                path = os.path.join(tmp, f"{name}-{tag}.json")
                with open(path, "w") as f:
                    json.dump({"inputs": inputs, "targets": targets}, f)
                gd = os.path.join(tmp, f"{name}-{tag}-grads")
                r = subprocess.run([args.bin, "train-steps", "-m", d, "--batch-file", path, "--steps", "0", "--grads-out", gd, "-t", "2"],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    raise RuntimeError("train-steps failed: " + r.stderr)
                return json.loads(r.stdout)["losses"][0], TT.read_safetensors(os.path.join(gd, "model.safetensors"))

            inputs, targets = batch([ea, eb])
            loss, g = grads(inputs, targets, "a")
            w64 = {k: v.to(torch.float64).clone().requires_grad_(True) for k, v in w.items()}
            ref = TT.reference_loss(w64, cfg, forward, inputs, targets)
            ref.backward()
            e = abs(loss - ref.item()) / abs(ref.item())
            TT.check(f"{name}: masked SFT loss vs PyTorch", e <= 1e-4, f"ours {loss:.6f}, torch {ref.item():.6f}, rel {e:.1e}")
            worst = max(TT.rel(g[k], p.grad.numpy()) for k, p in w64.items())
            TT.check(f"{name}: gradients of all {len(w64)} parameters vs PyTorch", worst <= 1e-4, f"worst rel err {worst:.1e}")

            # a different last user turn (same token count): nothing it touches is in the loss, so no gradient moves
            base = "Bye now."
            for alt in (base[:i] + c + base[i + 1:] for i in range(len(base)) for c in "abcdefghijklmnopqrstuvwxyz"):
                ec = encode(conv(alt))
                if len(ec["ids"]) == len(ea["ids"]) and ec["ids"] != ea["ids"]:
                    break
            else:
                TT.check(f"{name}: found an equally long final user turn", False)
                continue
            _, gc = grads(*batch([ec, eb]), "c")
            same = all(np.array_equal(g[k], gc[k]) for k in g)
            TT.check(f"{name}: changing the final user turn changes no gradient (bitwise)", same)
            # control: a user turn that an answer follows does influence the gradients (through attention)
            early = conv("Bye now.")
            early[1]["content"] = "Rat?"
            ee = encode(early)
            _, ge = grads(*batch([ee, eb]), "e")
            TT.check(f"{name}: changing an earlier user turn does change gradients (control)", not all(np.array_equal(g[k], ge[k]) for k in g))

        # bad examples: reported with file and line; skip counts them, fail stops at the first
        data = os.path.join(tmp, "chats.jsonl")
        lines = [json.dumps({"messages": conv("ok") + [{"role": "assistant", "content": "Bye."}]})] * 30
        lines[3] = "{not json"
        lines[5] = json.dumps({"messages": [{"role": "user", "content": "no answer"}]})
        lines[7] = json.dumps({"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "y"}]})
        lines[9] = json.dumps({"messages": [{"role": "user", "content": "long " * 200}, {"role": "assistant", "content": "y"}]})
        lines[11] = json.dumps({"messages": [{"role": "user", "content": "boom"}, {"role": "assistant", "content": "y"}]})
        tpl = os.path.join(tmp, "strict.jinja")  # ChatML that refuses one word: a template that fails to render
        with open(tpl, "w") as f:
            f.write("{% for m in messages %}{% if m.content == 'boom' %}{{ raise_exception('no boom here') }}{% endif %}"
                    "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
        with open(data, "w") as f:
            f.write("\n".join(lines) + "\n")
        d = os.path.join(tmp, "gpt2")
        r = subprocess.run([args.bin, "sft", "-m", d, "--data", data, "-o", os.path.join(tmp, "ft"), "--steps", "2", "--batch-size", "2",
                            "--eval-every", "0", "-q", "-t", "2", "--template", tpl], capture_output=True, text=True)
        TT.check("sft skips bad examples and says so", r.returncode == 0 and "5 skipped" in r.stdout
                 and all(f"chats.jsonl:{n}:" in r.stderr for n in (4, 6, 8, 10, 12)), r.stdout.strip() + " | " + r.stderr.strip()[-300:])
        TT.check("sft reports why: not JSON, no assistant turn, unknown role, longer than the context, the template raised",
                 all(s in r.stderr for s in ("not a JSON object", "no assistant turn", "unknown role 'wizard'", "more than the context",
                                             "no boom here")), r.stderr[-600:])
        # the tuned model carries its chat template: GGUF tokenizer.chat_template ↔ safetensors tokenizer_config.json
        hf, back = os.path.join(tmp, "ft-hf"), os.path.join(tmp, "ft-back.gguf")
        subprocess.run([args.bin, "convert", os.path.join(tmp, "ft", "model.gguf"), hf], check=True, capture_output=True)
        subprocess.run([args.bin, "convert", hf, back], check=True, capture_output=True)
        want_tpl = open(tpl).read()
        got_tpl = json.load(open(os.path.join(hf, "tokenizer_config.json"))).get("chat_template")
        msgs = json.dumps([{"role": "user", "content": "hi"}])
        a = subprocess.run([args.bin, "chat-template", "render", "--template", back, "--messages", msgs], capture_output=True, text=True).stdout
        b = subprocess.run([args.bin, "chat-template", "render", "--template", tpl, "--messages", msgs], capture_output=True, text=True).stdout
        TT.check("the chat template travels with the model (GGUF → safetensors → GGUF)", got_tpl == want_tpl and a == b and a != "", repr(a))
        r = subprocess.run([args.bin, "sft", "-m", d, "--data", data, "-o", os.path.join(tmp, "ft2"), "--steps", "2", "--on-bad-example", "fail", "-q"],
                           capture_output=True, text=True)
        TT.check("sft --on-bad-example fail stops with the file and line", r.returncode == 2 and "chats.jsonl:4: not a JSON object" in r.stderr,
                 r.stderr.strip())
        # resume: 2N steps in one go equal N steps, then --resume to 2N (same losses bit for bit, same threads)
        def losses(run):
            return [json.loads(l)["loss"] for l in open(os.path.join(run, "metrics.jsonl"))]
        common = ["sft", "-m", d, "--data", data, "--batch-size", "2", "--eval-every", "0", "--save-every", "3", "-q", "-t", "2", "--template", tpl]
        for lora in ([], ["--lora-rank", "4"]):
            one, two = os.path.join(tmp, "one" + str(len(lora))), os.path.join(tmp, "two" + str(len(lora)))
            subprocess.run([args.bin, *common, "-o", one, "--steps", "12", *lora], check=True, capture_output=True)
            subprocess.run([args.bin, *common, "-o", two, "--steps", "6", *lora], check=True, capture_output=True)
            subprocess.run([args.bin, *common, "-o", two, "--steps", "12", "--resume", *lora], check=True, capture_output=True)
            a, b = losses(one), losses(two)
            TT.check(f"sft{' --lora-rank 4' if lora else ''}: 12 steps = 6 steps + --resume to 12 (bitwise)", len(a) == 12 and a == b, f"{a[-1]} vs {b[-1]}")
        # --precision bf16 chooses bf16 or f32 products at the start (by measurement; pinned here by LLMFORGE_BF16_CHOICE) and the
        # checkpoint keeps the choice: a run started in bf16 and resumed where f32 would be chosen continues in bf16, bit for bit
        env = lambda choice: dict(os.environ, LLMFORGE_BF16_CHOICE=choice)
        one, two, f32 = os.path.join(tmp, "bf-one"), os.path.join(tmp, "bf-two"), os.path.join(tmp, "bf-f32")
        subprocess.run([args.bin, *common, "-o", one, "--steps", "12", "--precision", "bf16"], check=True, capture_output=True, env=env("bf16"))
        subprocess.run([args.bin, *common, "-o", f32, "--steps", "12", "--precision", "bf16"], check=True, capture_output=True, env=env("f32"))
        subprocess.run([args.bin, *common, "-o", two, "--steps", "6", "--precision", "bf16"], check=True, capture_output=True, env=env("bf16"))
        subprocess.run([args.bin, *common, "-o", two, "--steps", "12", "--precision", "bf16", "--resume"], check=True, capture_output=True, env=env("f32"))
        a, b, c = losses(one), losses(two), losses(f32)
        TT.check("--precision bf16: the products' choice is kept by the checkpoint (6 + --resume 6 = 12 in bf16, bitwise; f32 differs)",
                 len(a) == 12 and a == b and a != c, f"{a[-1]} vs {b[-1]} (f32: {c[-1]})")

        # chat over a pipe: one message per line, commands, the conversation saved as OpenAI messages
        saved = os.path.join(tmp, "conv.json")
        r = subprocess.run([args.bin, "chat", "-m", d, "-n", "4", "--temp", "0", "--system", "Short."], input=f"Cat?\n/reset\nDog?\n/save {saved}\n",
                           capture_output=True, text=True)
        ok = r.returncode == 0 and os.path.exists(saved)
        msgs = json.load(open(saved))["messages"] if ok else []
        TT.check("chat over a pipe: /reset, /save write the conversation", ok and [m["role"] for m in msgs] == ["system", "user", "assistant"]
                 and msgs[1]["content"] == "Dog?" and len(r.stdout.splitlines()) == 2, r.stderr[-300:])
        r = subprocess.run([args.bin, "chat", "-m", d, "-n", "4"], input="x" * 2000 + "\n", capture_output=True, text=True)
        TT.check("chat: a message longer than the context is an error", r.returncode == 2 and "too long for the context" in r.stderr, r.stderr.strip())
    print(f"{TT.RESULTS['passed']} passed, {TT.RESULTS['failed']} failed")
    sys.exit(1 if TT.RESULTS["failed"] else 0)


if __name__ == "__main__":
    main()
