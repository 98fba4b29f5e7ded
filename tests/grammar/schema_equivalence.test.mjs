// JSON Schema → GBNF (llmforge grammar --json-schema) against llama.cpp and against an independent validator, ajv
// (tests/npm; JSON.parse, then the schema, formats from ajv-formats).
//
// 1. llama.cpp's json-schema-to-grammar cases (llamacpp_json_schema.json: llama.cpp c392e50's
//    tests/test-json-schema-to-grammar.cpp as data): the GBNF text is llama.cpp's, or, for the cases listed in
//    DIFFERS, a different grammar on purpose (llama.cpp's admits text that is not valid JSON there).
// 2. The same accepted strings on generated samples: random sentences of llama.cpp's grammar and of ours, each judged
//    by both grammars and by ajv. Every sentence of ours is valid; ours accepts a sentence of llama.cpp's exactly when
//    ajv does; where ajv rejects one, llama.cpp's grammar is the one at fault (only in the DIFFERS cases).
// 3. The JSON-schema cases of llama.cpp's tests/test-grammar-integration.cpp (llamacpp_integration.json): the same
//    accept/reject verdicts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireNpm, BIN, tmpdir } from '../e2e/server_util.mjs';

const Ajv = requireNpm('ajv').default;
const addFormats = requireNpm('ajv-formats').default;
const here = path.dirname(fileURLToPath(import.meta.url));
const SAMPLES = 24;

// The cases whose grammar text differs from llama.cpp's, and why.
const DIFFERS = {
  'regexp quote': 'the pattern ^"$ matches the string of one \'"\', whose JSON is "\\"" (llama.cpp: """)',
  regexp: "'.' is any character but line breaks, as JSON text: '\"' and '\\' escaped, no raw control characters",
  'required + additional props': 'other keys never start with a raw \\ or control character (llama.cpp: [^"a] char*)',
  'optional + additional props': 'the same',
  'required + optional + additional props': 'the same',
  'optional props with empty name': 'the same',
  'optional props with nested names': 'the same',
  'optional props with common prefix': 'the same',
  'exotic formats': 'dates: each month with its days, February to the 28th (llama.cpp: any month to the 31st)',
  'max -5': 'no leading zero after the minus sign (llama.cpp: "-" ([0-4] [0-9]{1,15} | ...) takes "-08")',
};

const dir = tmpdir('schema');
let fileNo = 0;
function put(text) {
  const f = path.join(dir, `f${fileNo++}`);
  fs.writeFileSync(f, text);
  return f;
}
function run(args) {
  return execFileSync(BIN, ['grammar', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
}
function samples(grammarFile, seed) {
  return run([grammarFile, '--sample', String(SAMPLES), '--seed', String(seed)]).trim().split('\n').map((l) => JSON.parse(l));
}
function verdicts(grammarFile, texts) {
  const out = run([grammarFile, '-f', put(texts.map((t) => JSON.stringify(t)).join('\n') + '\n'), '--lines']);
  return out.trim().split('\n').map((v) => v === 'true');
}
function validator(schema) {
  const ajv = new Ajv({ strict: false, allErrors: false });
  addFormats(ajv);
  const check = ajv.compile(schema);
  return (text) => {
    let value;
    try {
      value = JSON.parse(text);
    } catch {
      return false;
    }
    return check(value);
  };
}

const schemaCases = JSON.parse(fs.readFileSync(path.join(here, 'llamacpp_json_schema.json'), 'utf8')).cases;

test('llama.cpp json-schema-to-grammar cases: same text, or a stated difference', () => {
  let same = 0;
  for (const c of schemaCases) {
    const args = ['--json-schema', c.schema, '--gbnf'];
    if (c.status === 'failure') {
      assert.throws(() => run(args), `${c.name}: should be refused`);
      continue;
    }
    const ours = run(args);
    if (DIFFERS[c.name]) {
      assert.notEqual(ours.trim(), c.grammar.trim(), `${c.name}: listed as different but equal`);
    } else {
      assert.equal(ours.trim(), c.grammar.trim(), c.name);
      same++;
    }
  }
  assert.equal(same, schemaCases.filter((c) => c.status === 'success').length - Object.keys(DIFFERS).length);
  assert.ok(same >= 50);
});

test('llama.cpp json-schema-to-grammar cases: the same accepted strings on samples, judged by ajv', () => {
  let judged = 0;
  let llamaInvalid = 0;
  for (const [i, c] of schemaCases.entries()) {
    if (c.status !== 'success') continue;
    const valid = validator(JSON.parse(c.schema));
    const oursFile = put(run(['--json-schema', c.schema, '--gbnf']));
    const theirsFile = put(c.grammar);
    const fromOurs = samples(oursFile, 1000 + i);
    const fromTheirs = samples(theirsFile, 2000 + i);
    const all = [...fromOurs, ...fromTheirs];
    const vo = verdicts(oursFile, all);
    const vt = verdicts(theirsFile, all);
    all.forEach((s, k) => {
      const ok = valid(s);
      const label = `${c.name}: ${JSON.stringify(s)}`;
      if (k < fromOurs.length) {
        assert.ok(vo[k], `${label}: our sample, refused by our grammar`);
        assert.ok(ok, `${label}: our sample is not valid for the schema`);
        if (!DIFFERS[c.name]) assert.ok(vt[k], `${label}: our sample, refused by llama.cpp's grammar`);
      } else {
        assert.ok(vt[k], `${label}: llama.cpp's sample, refused by its own grammar`);
        assert.equal(vo[k], ok, `${label}: ours says ${vo[k]}, ajv says ${ok}`);
        if (!ok) {
          assert.ok(DIFFERS[c.name], `${label}: llama.cpp's grammar made an invalid sentence in a case not listed`);
          llamaInvalid++;
        }
      }
      judged++;
    });
  }
  assert.ok(judged >= 2 * SAMPLES * 60, `${judged} sentences judged`);
  console.log(`# ${judged} sentences judged; ${llamaInvalid} of llama.cpp's were invalid JSON or broke the schema`);
});

test("llama.cpp test-grammar-integration schema cases: the same verdicts", () => {
  const data = JSON.parse(fs.readFileSync(path.join(here, 'llamacpp_integration.json'), 'utf8'));
  let n = 0;
  for (const c of data.cases) {
    if (!c.schema) continue;
    const texts = [...c.accept, ...c.reject];
    // llama.cpp drops keywords it cannot enforce ("uniqueItems" in "required props"); so does --lenient
    const got = run(['--json-schema', c.schema, '--lenient', '-f', put(texts.map((t) => JSON.stringify(t)).join('\n') + '\n'), '--lines'])
      .trim().split('\n').map((v) => v === 'true');
    texts.forEach((t, k) => assert.equal(got[k], k < c.accept.length, `${c.name}: ${JSON.stringify(t)}`));
    n++;
  }
  assert.ok(n >= 30, `${n} schema cases`);
  // without --lenient, that keyword is refused by name
  const product = data.cases.find((c) => c.name === 'required props');
  assert.throws(() => run(['--json-schema', product.schema, '--gbnf']), (e) => /unsupported keyword 'uniqueItems' \(at \/properties\/tags\)/.test(e.stderr));
});
