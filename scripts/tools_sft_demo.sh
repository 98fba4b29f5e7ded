#!/usr/bin/env bash
# Teaches a small model to call tools by itself (tool_choice "auto"), end to end on CPU:
#   synthetic conversations (scripts/tools_sft_data.py: weather and arithmetic questions answered by Hermes-style
#   <tool_call>s and the tool's result, and small talk answered plainly) → a 1,024-token byte-level BPE tokenizer
#   trained on them → a random llama-tiny model with that vocabulary → llmforge sft (the lines carry "tools", rendered
#   by llmforge's ChatML template) → llmforge serve, and 60 held-out questions through /v1/chat/completions with the
#   tools and tool_choice "auto": does the model call the right tool with the right arguments, or answer plainly, and
#   does it finish the loop once the tool's result comes back?
#
#   scripts/tools_sft_demo.sh [OUT_DIR] [EPOCHS]        (3 epochs: about 15 minutes on 2 cores; 8: about 45)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/tools-demo}
EPOCHS=${2:-3}
BIN=${LLMFORGE:-build/llmforge}
mkdir -p "$OUT"
python3 scripts/tools_sft_data.py "$OUT/data.jsonl" "$OUT/held.jsonl" 3000
python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
with open(f"{out}/text.txt", "w", encoding="utf-8") as f:
    first = None
    for line in open(f"{out}/data.jsonl", encoding="utf-8"):
        j = json.loads(line)
        first = first or j
        for m in j["messages"]:
            f.write((m.get("content") or "") + "\n")
            for c in m.get("tool_calls", []):
                f.write(json.dumps(c["function"]) + "\n")
    for _ in range(200):
        for t in first["tools"]:
            f.write(json.dumps(t, ensure_ascii=False) + "\n")
EOF
"$BIN" chat-template show --template chatml >> "$OUT/text.txt"
"$BIN" tokenizer train --input "$OUT/text.txt" --vocab-size 1024 -o "$OUT/tok.json" -q
"$BIN" init --preset llama-tiny --tokenizer "$OUT/tok.json" -c 512 --seed 1 -o "$OUT/base.gguf"
[ -f "$OUT/run/model.gguf" ] ||
  "$BIN" sft -m "$OUT/base.gguf" --data "$OUT/data.jsonl" -o "$OUT/run" --epochs "$EPOCHS" --lr 3e-3 --min-lr 3e-4 --warmup 30 -b 16 --eval-every 100
"$BIN" serve -m "$OUT/run/model.gguf" --port 0 -c 512 --parallel 4 2> "$OUT/serve.log" &
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q 'listening on' "$OUT/serve.log" && break; sleep 0.2; done
url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$OUT/serve.log" | head -1)
python3 - "$url" "$OUT/held.jsonl" "$OUT/data.jsonl" <<'EOF'
import json, sys, urllib.request
url, held, data = sys.argv[1], sys.argv[2], sys.argv[3]
tools = json.loads(open(data).readline())["tools"]
def chat(messages):
    body = {"model": "model", "messages": messages, "tools": tools, "tool_choice": "auto", "max_tokens": 80, "temperature": 0}
    req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))["choices"][0]
right = wrong_tool = bad_args = plain_ok = plain_called = finished = looped = 0
n = 0
for line in open(held):
    q = json.loads(line)
    n += 1
    msgs = [{"role": "user", "content": q["prompt"]}]
    ch = chat(msgs)
    calls = ch["message"].get("tool_calls") or []
    if q["expect"] == "talk":
        if calls: plain_called += 1
        else: plain_ok += 1
        continue
    if not calls or ch["finish_reason"] != "tool_calls":
        wrong_tool += 1
        continue
    c = calls[0]["function"]
    args = json.loads(c["arguments"])
    if c["name"] != q["expect"]:
        wrong_tool += 1
        continue
    value = args.get("city") if c["name"] == "get_weather" else args.get("expression")
    if value is None or value not in q["prompt"]:
        bad_args += 1
        continue
    right += 1
    # the loop: the result goes back, the model answers in words
    result = {"temperature": 21, "conditions": "sunny"} if c["name"] == "get_weather" else {"value": 42}
    msgs += [ch["message"], {"role": "tool", "tool_call_id": calls[0]["id"], "content": json.dumps(result)}]
    final = chat(msgs)
    looped += 1
    if final["finish_reason"] == "stop" and not final["message"].get("tool_calls") and final["message"]["content"]:
        finished += 1
tool_qs = n - plain_ok - plain_called
print(f"held-out questions: {n}; needing a tool: {tool_qs}")
print(f"  right tool, right arguments: {right}/{tool_qs}; wrong or no tool: {wrong_tool}; wrong arguments: {bad_args}")
print(f"  small talk answered without a call: {plain_ok}/{plain_ok + plain_called}")
print(f"  after the tool's result, a final answer in words: {finished}/{looped}")
EOF
