#!/usr/bin/env python3
"""Synthetic tool-calling conversations for teaching a small model the Hermes call format (llmforge sft with "tools").

Three kinds, all generated here from word lists in this file: a weather question (the assistant calls get_weather with
the city, the tool answers, the assistant reports it), an arithmetic question (calculate with the expression), and small
talk (a plain answer, no call). Every line: {"tools": [...], "messages": [...]} (the OpenAI form; arguments as JSON
strings, as the API carries them). Held-out prompts go to a second file for the demo's check.

    tools_sft_data.py OUT.jsonl HELDOUT.jsonl [N]
"""
import json
import random
import sys

CITIES = ["Paris", "Oslo", "Lima", "Cairo", "Delhi", "Tokyo", "Rome", "Quito", "Dakar", "Hanoi", "Perth", "Bern", "Riga",
          "Kyiv", "Seoul", "Accra", "Doha", "Turin", "Leeds", "Porto", "Lyon", "Graz", "Nice", "Bonn", "Cork", "Omsk"]
WEATHER_Q = ["What is the weather in {c}?", "How warm is it in {c} today?", "Weather in {c}, please.", "Is it raining in {c}?",
             "Tell me the weather for {c}.", "{c} weather?"]
CALC_Q = ["What is {e}?", "Compute {e}.", "How much is {e}?", "Calculate {e} for me.", "{e} = ?"]
TALK = [("Hello!", "Hello! How can I help?"), ("Thanks.", "You are welcome."), ("Who are you?", "A small assistant that can use tools."),
        ("Good night.", "Good night!"), ("Tell me a joke.", "I only know weather and sums, sorry."), ("Bye.", "Goodbye!"),
        ("How are you?", "Fine, thank you."), ("What can you do?", "I can look up the weather and do arithmetic.")]
CONDITIONS = ["sunny", "cloudy", "rainy", "windy", "snowy"]
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "calculate", "description": "Evaluate an arithmetic expression",
     "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}},
]


def expression(rng):
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    op = rng.choice(["+", "-", "*"])
    return f"{a}{op}{b}", eval(f"{a}{op}{b}")  # noqa: S307 - our own two-number expression


def conversation(rng, i):
    kind = rng.choice(["weather", "weather", "calc", "calc", "talk"])
    call_id = f"call_{i:06d}"
    if kind == "talk":
        q, a = rng.choice(TALK)
        return {"tools": TOOLS, "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}, q
    if kind == "weather":
        c = rng.choice(CITIES)
        q = rng.choice(WEATHER_Q).format(c=c)
        t, cond = rng.randint(-10, 35), rng.choice(CONDITIONS)
        name, args, result, answer = "get_weather", {"city": c}, {"temperature": t, "conditions": cond}, f"It is {t} degrees and {cond} in {c}."
    else:
        e, v = expression(rng)
        q = rng.choice(CALC_Q).format(e=e)
        name, args, result, answer = "calculate", {"expression": e}, {"value": v}, f"{e} = {v}."
    msgs = [{"role": "user", "content": q},
            {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function",
                                                                  "function": {"name": name, "arguments": json.dumps(args)}}]},
            {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)},
            {"role": "assistant", "content": answer}]
    return {"tools": TOOLS, "messages": msgs}, q


def main():
    out, held = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
    rng = random.Random(1)
    with open(out, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps(conversation(rng, i)[0]) + "\n")
    rng = random.Random(2)
    with open(held, "w", encoding="utf-8") as f:
        for i in range(60):
            conv, q = conversation(rng, 10**6 + i)
            kind = "talk" if len(conv["messages"]) == 2 else conv["messages"][1]["tool_calls"][0]["function"]["name"]
            f.write(json.dumps({"prompt": q, "expect": kind}) + "\n")


if __name__ == "__main__":
    main()
