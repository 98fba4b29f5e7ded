// SentencePiece-style vocabularies written as Hugging Face tokenizer.json: an independent implementation
// (@huggingface/tokenizers, the pure-JS tokenizer.json engine) must load the file llmforge writes and give the ids
// llama.cpp gives (its test vectors in golden/vocab), BOS included as the post-processor adds it; and llmforge must
// read the file back to the same ids.  Usage: node check_spm_hf.mjs LLMFORGE_BIN GOLDEN_DIR WORK_DIR
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.resolve(here, '../npm/package.json'));
const { Tokenizer } = require('@huggingface/tokenizers');
const [bin, goldenArg, work] = process.argv.slice(2);
const golden = process.env.LLMFORGE_GOLDEN || goldenArg;
if (!fs.existsSync(path.join(golden, 'vocab'))) {
  console.log(`SKIP: no golden data at ${golden}`);
  process.exit(0);
}
fs.mkdirSync(work, { recursive: true });
let failures = 0, checked = 0;
const fail = (msg) => { if (++failures <= 10) console.error(msg); };

for (const name of ['llama-spm', 'phi-3']) {
  const gguf = path.join(golden, 'vocab', `ggml-vocab-${name}.gguf`);
  const dir = path.join(work, name);
  fs.mkdirSync(dir, { recursive: true });
  const tj = path.join(dir, 'tokenizer.json');
  execFileSync(bin, ['tokenizer', 'convert', gguf, tj], { stdio: ['ignore', 'ignore', 'inherit'] });
  const json = JSON.parse(fs.readFileSync(tj, 'utf8'));
  if (json.model.type !== 'BPE' || json.model.byte_fallback !== true) fail(`${name}: not a byte-fallback BPE model`);
  const tok = new Tokenizer(json, JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')));
  const inputs = fs.readFileSync(`${gguf}.inp`, 'utf8').split('\n__ggml_vocab_test__\n');
  if (inputs[inputs.length - 1] === '') inputs.pop();  // the file ends with a separator
  const want = fs.readFileSync(`${gguf}.out`, 'utf8').split('\n').filter((_, i, a) => i < a.length - 1 || a[i] !== '');
  if (inputs.length !== want.length) { fail(`${name}: ${inputs.length} inputs, ${want.length} outputs`); continue; }
  // llmforge reading its own tokenizer.json back
  const jsonl = path.join(dir, 'inputs.jsonl');
  fs.writeFileSync(jsonl, inputs.map((t) => JSON.stringify({ text: t })).join('\n') + '\n');
  const back = execFileSync(bin, ['tokenize', '--tokenizer', tj, '-f', jsonl, '--jsonl', '--no-bos'], { maxBuffer: 1 << 28 })
    .toString().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  for (let i = 0; i < inputs.length; i++) {
    const expected = want[i].trim() === '' ? [] : want[i].trim().split(/\s+/).map(Number);
    const js = tok.encode(inputs[i], { add_special_tokens: false }).ids;
    if (JSON.stringify(js) !== JSON.stringify(expected)) fail(`${name} #${i} ${JSON.stringify(inputs[i])}: tokenizers.js ${js} vs llama.cpp ${expected}`);
    const withBos = tok.encode(inputs[i]).ids;
    if (withBos[0] !== 1 || JSON.stringify(withBos.slice(1)) !== JSON.stringify(expected)) fail(`${name} #${i}: BOS not added by the post-processor: ${withBos}`);
    if (JSON.stringify(back[i]) !== JSON.stringify(expected)) fail(`${name} #${i}: llmforge reading the tokenizer.json back gives ${back[i]} vs ${expected}`);
    checked++;
  }
  console.log(`${name}: ${inputs.length} test strings through tokenizer.json`);
}
console.log(`${checked} strings checked, ${failures ? failures + ' MISMATCHES' : 'all equal to llama.cpp'}`);
process.exit(failures ? 1 : 0);
