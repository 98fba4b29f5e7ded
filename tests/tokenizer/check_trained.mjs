// A tokenizer llmforge trained must load in an independent implementation and give the same ids.
// Trains a vocabulary on the reference corpus (tokref fixture), encodes every sample with llmforge and with
// @huggingface/tokenizers (pure-JS tokenizer.json implementation), and compares them id for id; also checks the JS
// decode gives the text back.  Usage: node check_trained.mjs LLMFORGE_BIN TOKREF_DIR VOCAB_SIZE PATTERN
// or, for a tokenizer already trained:  node check_trained.mjs LLMFORGE_BIN TOKREF_DIR --tokenizer FILE
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.resolve(here, '../npm/package.json'));
const { Tokenizer } = require('@huggingface/tokenizers');
const [bin, dir, vocabSize, pattern] = process.argv.slice(2);
const samples = fs.readFileSync(path.join(dir, 'samples.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l).text);
// train on the even samples, test on all (held-out odd ones included)
let tokPath;
if (vocabSize === '--tokenizer') {
  tokPath = pattern;
} else {
  const train = path.join(dir, `train_${pattern}.txt`);
  fs.writeFileSync(train, samples.filter((_, i) => i % 2 === 0).join(''));
  tokPath = path.join(dir, `trained_${pattern}_${vocabSize}.json`);
  execFileSync(bin, ['tokenizer', 'train', '--input', train, '--vocab-size', vocabSize, '--pattern', pattern, '-o', tokPath, '-q'], { stdio: ['ignore', 'inherit', 'inherit'] });
}
const ours = execFileSync(bin, ['tokenize', '--tokenizer', tokPath, '-f', path.join(dir, 'samples.jsonl'), '--jsonl', '--parse-special', '-t', '2'],
  { maxBuffer: 1 << 30 }).toString().split('\n').filter(Boolean).map((l) => JSON.parse(l));

const json = JSON.parse(fs.readFileSync(tokPath, 'utf8'));
const tok = new Tokenizer(json, { clean_up_tokenization_spaces: false });
let bad = 0, tokens = 0;
for (let i = 0; i < samples.length; ++i) {
  const ids = tok.encode(samples[i], { add_special_tokens: false }).ids;
  tokens += ids.length;
  const same = ids.length === ours[i].length && ids.every((x, k) => x === ours[i][k]);
  if (!same && ++bad <= 3) {
    let k = 0;
    while (k < ids.length && ids[k] === ours[i][k]) ++k;
    console.error(`sample ${i}: first difference at token ${k}: ours ${ours[i].slice(k, k + 6)} vs tokenizers.js ${ids.slice(k, k + 6)}`);
  }
  if (tok.decode(ids) !== samples[i] && ++bad <= 3) console.error(`sample ${i}: tokenizers.js decode does not give the text back`);
}
if (json.model.merges.length < 100) { console.error('too few merges learned'); process.exit(1); }
console.log(`${path.basename(tokPath)}: ${samples.length} samples, ${tokens} tokens, ${bad ? bad + ' MISMATCHES' : 'all equal'} (llmforge vs @huggingface/tokenizers)`);
process.exit(bad ? 1 : 0);
