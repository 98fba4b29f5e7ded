// WordPiece (BERT's uncased tokenizer) against an independent implementation. llmforge writes the golden bert-bge
// vocabulary (llama.cpp's GGUF) as a Hugging Face tokenizer.json; @huggingface/tokenizers (the pure-JS tokenizer.json
// engine) loads it. Checked: llama.cpp's test vectors (Hugging Face's ids) through tokenizers.js, with [CLS] and [SEP]
// from the post-processor; then real text in many scripts (English fortunes, Chinese poems, Japanese and Korean emoji
// names, accents, combining marks, control and format characters, over-long words) gives the same ids from llmforge
// (reading the GGUF, and reading its tokenizer.json back) as from tokenizers.js.
// Usage: node check_wordpiece_hf.mjs LLMFORGE_BIN GOLDEN_DIR WORK_DIR
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const npmDir = path.resolve(here, '../npm');
const require = createRequire(path.join(npmDir, 'package.json'));
const { Tokenizer } = require('@huggingface/tokenizers');
const [bin, goldenArg, work] = process.argv.slice(2);
const golden = process.env.LLMFORGE_GOLDEN || goldenArg;
const gguf = path.join(golden, 'vocab', 'ggml-vocab-bert-bge.gguf');
if (!fs.existsSync(gguf)) {
  console.log(`SKIP: no golden data at ${golden}`);
  process.exit(0);
}
fs.mkdirSync(work, { recursive: true });
let failures = 0;
const fail = (msg) => { if (++failures <= 10) console.error(msg); };
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

const tj = path.join(work, 'tokenizer.json');
execFileSync(bin, ['tokenizer', 'convert', gguf, tj], { stdio: ['ignore', 'ignore', 'inherit'] });
const json = JSON.parse(fs.readFileSync(tj, 'utf8'));
if (json.model.type !== 'WordPiece') fail(`not a WordPiece model: ${json.model.type}`);
const tok = new Tokenizer(json, JSON.parse(fs.readFileSync(path.join(work, 'tokenizer_config.json'), 'utf8')));

// llmforge's ids for many texts at once: `tokenize --jsonl`, without [CLS]/[SEP], and recognising special tokens
// written in the text (as Hugging Face always does).
const llmforge = (tokenizer, texts, name) => {
  const jsonl = path.join(work, `${name}.jsonl`);
  fs.writeFileSync(jsonl, texts.map((t) => JSON.stringify({ text: t })).join('\n') + '\n');
  return execFileSync(bin, ['tokenize', '--tokenizer', tokenizer, '-f', jsonl, '--jsonl', '--no-bos', '--parse-special'], { maxBuffer: 1 << 28 })
    .toString().split('\n').filter(Boolean).map((l) => JSON.parse(l));
};

// 1. llama.cpp's test vectors.
const inputs = fs.readFileSync(`${gguf}.inp`, 'utf8').split('\n__ggml_vocab_test__\n');
if (inputs[inputs.length - 1] === '') inputs.pop();
const want = fs.readFileSync(`${gguf}.out`, 'utf8').split('\n').filter((_, i, a) => i < a.length - 1 || a[i] !== '');
const back = llmforge(tj, inputs, 'vectors');
for (let i = 0; i < inputs.length; i++) {
  const expected = want[i].trim() === '' ? [] : want[i].trim().split(/\s+/).map(Number);
  const js = tok.encode(inputs[i], { add_special_tokens: false }).ids;
  if (!same(js, expected)) fail(`vector #${i} ${JSON.stringify(inputs[i])}: tokenizers.js ${js} vs Hugging Face ${expected}`);
  const full = tok.encode(inputs[i]).ids;
  if (full[0] !== 101 || full[full.length - 1] !== 102 || !same(full.slice(1, -1), expected)) fail(`vector #${i}: [CLS]/[SEP] not added: ${full}`);
  if (!same(back[i], expected)) fail(`vector #${i}: llmforge reading the tokenizer.json back gives ${back[i]} vs ${expected}`);
}
console.log(`${inputs.length} test vectors through tokenizer.json`);

// 2. Real text in many scripts, and the corner cases of BERT's normalisation.
const readIf = (p) => { try { return fs.readFileSync(p, 'utf8'); } catch { return ''; } };
const lines = [];
const fortunes = fs.readdirSync('/usr/share/games/fortunes').filter((f) => /^[a-z-]+$/.test(f)).slice(0, 12);
for (const f of fortunes) lines.push(...readIf(`/usr/share/games/fortunes/${f}`).split('\n%\n').slice(0, 150));
for (const f of ['chinese.u8', 'tang300.u8']) lines.push(...readIf(`/usr/share/games/fortunes/${f}`).split('\n%\n').slice(0, 150));
for (const lang of ['ja', 'ko', 'zh']) {
  const data = JSON.parse(fs.readFileSync(path.join(npmDir, `node_modules/emojibase-data/${lang}/data.json`), 'utf8'));
  for (const e of data.slice(0, 300)) lines.push(`${e.emoji} ${e.label}: ${(e.tags || []).join('、')}`);
}
lines.push(
  'Café naïve résumé Ångström façade Zürich São Paulo Đà Nẵng', 'İstanbul ıi ß Straße ΣΊΣΥΦΟΣ ς', 'ﬁnance ﬂow Ⅻ ① ＡＢＣ１２３',
  'e\u0301 a\u0308 n\u0303 combining marks', 'हिन्दी भाषा की लिपि', 'العربية لغة جميلة', 'ภาษาไทยไม่มีช่องว่าง', '한국어 문장입니다',
  'zero\u200bwidth\u200djoiner\ufeffbom\u00adsoft', 'tab\tnew\nline\rcr\u000bvt\u000cff\u0085nel\u00a0nbsp\u3000ideo',
  'nul\u0000byte and \ufffd replacement', 'a'.repeat(100), 'b'.repeat(101), 'x'.repeat(50) + 'é'.repeat(60),
  'unbelievably antidisestablishmentarianism pneumonoultramicroscopic', '$100 + 5% = <tag> [x] {y} ~z^ `q` |p| \\ _u_',
  '«quotes» „German“ “smart” ‘single’ — dash … ellipsis • bullet', '数学公式：E=mc²，温度25℃', '🦙🦙 llama.cpp 🤗 emoji👩‍👩‍👧',
  'MiXeD CaSe WoRdS and ALLCAPS', '[CLS] [SEP] [MASK] [UNK] literal brackets', '');
const texts = lines.filter((t) => t !== undefined);
const fromGguf = llmforge(gguf, texts, 'texts-gguf');
const fromJson = llmforge(tj, texts, 'texts-json');
let tokens = 0;
for (let i = 0; i < texts.length; i++) {
  const js = tok.encode(texts[i], { add_special_tokens: false }).ids;
  tokens += js.length;
  if (!same(fromGguf[i], js)) fail(`text #${i} ${JSON.stringify(texts[i].slice(0, 80))}:\n  llmforge     ${fromGguf[i].slice(0, 40)}\n  tokenizers.js ${js.slice(0, 40)}`);
  if (!same(fromJson[i], fromGguf[i])) fail(`text #${i}: llmforge gives other ids from the tokenizer.json than from the GGUF`);
}
console.log(`${texts.length} texts, ${tokens} tokens: ${failures ? failures + ' MISMATCHES' : 'llmforge equals tokenizers.js on every one'}`);
process.exit(failures ? 1 : 0);
