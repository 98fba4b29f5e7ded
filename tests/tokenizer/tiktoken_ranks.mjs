// Writes a tiktoken rank file ("base64 rank" per line) from the npm tiktoken package's compact ranks.
// As a module: writeTiktokenRanks(name, outPath); as a script: node tiktoken_ranks.mjs NAME OUT
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const npmDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../npm');

export function writeTiktokenRanks(name, out) {
  const j = JSON.parse(fs.readFileSync(path.join(npmDir, `node_modules/tiktoken/encoders/${name}.json`), 'utf8'));
  const lines = [];
  for (const row of j.bpe_ranks.split('\n')) {  // "! OFFSET tok tok ...": tokens ranked from OFFSET on
    if (!row) continue;
    const [, offset, ...toks] = row.split(' ');
    toks.forEach((t, i) => lines.push(`${t} ${Number(offset) + i}`));
  }
  fs.writeFileSync(out, lines.join('\n') + '\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [name, out] = process.argv.slice(2);
  if (!name || !out) { console.error('usage: tiktoken_ranks.mjs NAME OUT'); process.exit(2); }
  writeTiktokenRanks(name, out);
}
