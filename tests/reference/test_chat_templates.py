#!/usr/bin/env python3
"""Chat templates against Jinja2 itself (Debian's python3-jinja2), configured as Hugging Face transformers configures it
for apply_chat_template: an ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the loopcontrols
extension, raise_exception() raising a TemplateError, and tojson as json.dumps(ensure_ascii=False, ...). Every real
template in golden/chat-templates renders several conversations — multi-turn with a system prompt, without one, with
tool definitions, tool calls and tool results, with quotes and non-ASCII text — with and without the generation
prompt; `llmforge chat-template render` must give the same text, or fail where Jinja fails with the same error class."""
import atexit
import shutil
import argparse
import json
import os
import subprocess
import sys
import tempfile

import jinja2
import jinja2.ext
import jinja2.sandbox

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--golden", default=os.environ.get("LLMFORGE_GOLDEN", os.path.join(os.path.dirname(__file__), "../../../shared/golden")))
args = ap.parse_args()
tdir = os.path.join(args.golden, "chat-templates")
if not os.path.isdir(tdir):
    print(f"SKIP: golden chat templates not found at {tdir} (set LLMFORGE_GOLDEN)")
    sys.exit(0)


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception

weather = {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"},
                                                          "unit": {"type": "string", "enum": ["C", "F"]}}, "required": ["city"]}}}
conversations = {
    "system_multiturn": {"messages": [
        {"role": "system", "content": "You are a terse assistant. Answer in one line."},
        {"role": "user", "content": "What is a large language model?"},
        {"role": "assistant", "content": "A neural network trained to predict the next token."},
        {"role": "user", "content": "And \"RLHF\" — what's that?"}]},
    "no_system": {"messages": [
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "你好！有什么可以帮你？"},
        {"role": "user", "content": "Translate 'dog' into French.\nOne word."},
        {"role": "assistant", "content": "chien"}]},
    "tools": {"tools": [weather], "messages": [
        {"role": "system", "content": "Use tools when needed."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function",
                                                             "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}}]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temp\": 21}"},
        {"role": "assistant", "content": "It is 21 °C in Paris."},
        {"role": "user", "content": "Thanks"}]},
    "single_user": {"messages": [{"role": "user", "content": "Say <b>hi</b> & bye"}]},
}

# llmforge's own ChatML template (with tools: listed in a system turn, Hermes-style calls, <tool_response> results),
# rendered by Jinja2 from the source `chat-template show` prints
own_dir = tempfile.mkdtemp(prefix="llmforge-chatml-")
atexit.register(shutil.rmtree, own_dir, ignore_errors=True)
own = os.path.join(own_dir, "llmforge-chatml.jinja")
with open(own, "w", encoding="utf-8") as f:
    f.write(subprocess.run([args.bin, "chat-template", "show", "--template", "chatml"], capture_output=True, text=True, check=True).stdout)
templates = sorted(os.path.join(tdir, f) for f in os.listdir(tdir) if f.endswith(".jinja")) + [own]

fails, checked, agreed_errors = 0, 0, 0
for path in templates:
    fname = os.path.basename(path)
    src = open(path, encoding="utf-8").read()
    tpl = env.from_string(src)
    for cname, conv in conversations.items():
        for gen in (False, True):
            ctx = {"tools": conv.get("tools"), "documents": None, "bos_token": "<s>", "eos_token": "</s>", "date_string": "28 Nov 2026"}
            try:
                want, want_err = tpl.render(messages=conv["messages"], add_generation_prompt=gen, **ctx), None
            except Exception as e:  # noqa: BLE001 - any Jinja/Python error is an expected failure
                want, want_err = None, type(e).__name__
            cmd = [args.bin, "chat-template", "render", "--template", path, "--messages", json.dumps(conv["messages"]), "--context", json.dumps(ctx), "--json"]
            if gen:
                cmd.append("--add-generation-prompt")
            r = subprocess.run(cmd, capture_output=True, text=True)
            checked += 1
            where = f"{fname} / {cname} / gen={gen}"
            if want_err:
                if r.returncode == 0:
                    print(f"FAIL {where}: Jinja raised {want_err}, llmforge rendered")
                    fails += 1
                elif want_err not in r.stderr and not (want_err == "TemplateError" and "TemplateError" in r.stderr):
                    print(f"FAIL {where}: Jinja raised {want_err}, llmforge: {r.stderr.strip()}")
                    fails += 1
                else:
                    agreed_errors += 1
                continue
            if r.returncode != 0:
                print(f"FAIL {where}: llmforge failed: {r.stderr.strip()}")
                fails += 1
                continue
            got = json.loads(r.stdout)["text"]
            if got != want:
                i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]), min(len(got), len(want)))
                print(f"FAIL {where}: differs at char {i}:\n  jinja2:   {want[max(0, i - 60):i + 60]!r}\n  llmforge: {got[max(0, i - 60):i + 60]!r}")
                fails += 1
print(f"{checked} renderings checked against Jinja2 {jinja2.__version__}: {checked - fails} agree ({agreed_errors} raise in both), {fails} differ")
sys.exit(1 if fails else 0)
