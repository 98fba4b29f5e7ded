// The official `openai` npm client, unchanged but for its base URL, against `llmforge serve`: chat completions
// (plain, streamed with usage, logprobs, n > 1), completions, models, embeddings, and every error case surfacing as
// the client's typed error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tmpdir, makeModel, startServer, stopServer, parseMetrics, requireNpm, BIN } from './server_util.mjs';

const OpenAI = requireNpm('openai').OpenAI;
const KEY = 'sk-test-123456789';
let srv, client, dir, model;

before(async () => {
  dir = tmpdir('openai');
  model = makeModel(dir, { name: 'tiny' });
  srv = await startServer(['-m', model, '--parallel', '4', '-c', '256', '--api-key', KEY, '--api-key', 'second-key', '--max-body', '65536']);
  client = new OpenAI({ apiKey: KEY, baseURL: `${srv.url}/v1`, maxRetries: 0 });
});

after(async () => {
  const code = await stopServer(srv);
  assert.equal(code, 0, `server exit status ${code}\n${srv.log()}`);
});

const hello = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello there!' }];

test('the server says it falls back to ChatML for a model without a chat template', () => {
  assert.match(srv.log(), /tiny\.gguf has no chat template; \/v1\/chat\/completions uses ChatML/);
});

test('models list', async () => {
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id);
  assert.deepEqual(ids, ['tiny']);
  assert.equal(page.data[0].object, 'model');
  const one = await client.models.retrieve('tiny');
  assert.equal(one.id, 'tiny');
});

test('chat completion: greedy, usage, deterministic', async () => {
  const r = await client.chat.completions.create({ model: 'tiny', messages: hello, max_tokens: 12, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['length', 'stop'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 12);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  const again = await client.chat.completions.create({ model: 'tiny', messages: hello, max_tokens: 12, temperature: 0 });
  assert.equal(again.choices[0].message.content, r.choices[0].message.content);
  // max_completion_tokens is the newer name of max_tokens
  const m = await client.chat.completions.create({ model: 'tiny', messages: hello, max_completion_tokens: 3, temperature: 0, ignore_eos: true });
  assert.equal(m.usage.completion_tokens, 3);
  assert.equal(m.choices[0].finish_reason, 'length');
});

test('streaming chat with usage equals the plain answer', async () => {
  const plain = await client.chat.completions.create({ model: 'tiny', messages: hello, max_tokens: 20, temperature: 0, ignore_eos: true });
  const stream = await client.chat.completions.create({
    model: 'tiny', messages: hello, max_tokens: 20, temperature: 0, ignore_eos: true, stream: true, stream_options: { include_usage: true },
  });
  let text = '', chunks = 0, finish = null, usage = null, role = null;
  for await (const c of stream) {
    assert.equal(c.object, 'chat.completion.chunk');
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) {
      if (ch.delta.role) role = ch.delta.role;
      if (ch.delta.content) { text += ch.delta.content; chunks++; }
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assert.equal(role, 'assistant');
  assert.ok(chunks >= 2, 'the answer came in several chunks');
  assert.equal(text, plain.choices[0].message.content);
  assert.equal(finish, 'length');
  assert.deepEqual(usage, plain.usage);
});

test('logprobs and top_logprobs', async () => {
  const r = await client.chat.completions.create({
    model: 'tiny', messages: hello, max_tokens: 6, temperature: 0, ignore_eos: true, logprobs: true, top_logprobs: 3,
  });
  const lp = r.choices[0].logprobs.content;
  assert.equal(lp.length, r.usage.completion_tokens);
  for (const e of lp) {
    assert.ok(e.logprob <= 0);
    assert.equal(e.top_logprobs.length, 3);
    assert.ok(e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob && e.top_logprobs[1].logprob >= e.top_logprobs[2].logprob);
    // greedy: the chosen token is the most likely one
    assert.equal(e.token, e.top_logprobs[0].token);
    assert.ok(Math.abs(e.logprob - e.top_logprobs[0].logprob) < 1e-6);
    assert.ok(Array.isArray(e.bytes) && e.bytes.length >= 1);
    const mass = e.top_logprobs.reduce((s, t) => s + Math.exp(t.logprob), 0);
    assert.ok(mass <= 1 + 1e-5);
  }
  assert.equal(Buffer.from(lp.flatMap((e) => e.bytes)).toString('utf8').length > 0, true);
});

test('n > 1 choices with a seed are reproducible', async () => {
  const req = { model: 'tiny', messages: hello, max_tokens: 8, temperature: 1.0, n: 3, seed: 42, ignore_eos: true };
  const a = await client.chat.completions.create(req);
  const b = await client.chat.completions.create(req);
  assert.deepEqual(a.choices.map((c) => c.index), [0, 1, 2]);
  assert.deepEqual(a.choices.map((c) => c.message.content), b.choices.map((c) => c.message.content));
  assert.equal(a.usage.completion_tokens, 24);
  assert.ok(new Set(a.choices.map((c) => c.message.content)).size > 1, 'different choices');
});

test('completions', async () => {
  const r = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 5, temperature: 0, ignore_eos: true });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 5);
  const s = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 5, temperature: 0, ignore_eos: true, stream: true });
  let text = '';
  for await (const c of s) text += c.choices[0]?.text ?? '';
  assert.equal(text, r.choices[0].text);
  const two = await client.completions.create({ model: 'tiny', prompt: ['a b c', 'x y z'], max_tokens: 2, temperature: 0, ignore_eos: true, logprobs: 2 });
  assert.deepEqual(two.choices.map((c) => c.index), [0, 1]);
  assert.equal(two.choices[0].logprobs.tokens.length, 2);
  assert.equal(Object.keys(two.choices[0].logprobs.top_logprobs[0]).length <= 2, true);
});

test('constrained output: response_format json_object and a GBNF grammar; a bad grammar is a 400', async () => {
  // a random model sampled at temperature 1: every answer that ends parses as a JSON object all the same
  let complete = 0, cut = 0;
  for (const stream of [false, true]) {
    const req = { model: 'tiny', messages: hello, max_tokens: 160, temperature: 1.0, n: 4, seed: 7, response_format: { type: 'json_object' } };
    const texts = ['', '', '', ''], finish = [];
    if (stream) {
      for await (const c of await client.chat.completions.create({ ...req, stream: true }))
        for (const ch of c.choices) {
          texts[ch.index] += ch.delta.content ?? '';
          if (ch.finish_reason) finish[ch.index] = ch.finish_reason;
        }
    } else {
      const r = await client.chat.completions.create(req);
      for (const ch of r.choices) { texts[ch.index] = ch.message.content; finish[ch.index] = ch.finish_reason; }
    }
    for (let i = 0; i < 4; i++) {
      if (finish[i] === 'length') { cut++; continue; }  // cut off by max_tokens: counted apart
      assert.equal(finish[i], 'stop');
      const v = JSON.parse(texts[i]);
      assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), texts[i]);
      complete++;
    }
  }
  assert.ok(complete >= 2, `${complete} complete answers, ${cut} cut off`);
  // llama.cpp's 'grammar' field (GBNF), on the completions endpoint: the answer ends when the grammar does
  for (const seed of [1, 2, 3]) {
    const g = await client.completions.create({ model: 'tiny', prompt: 'Once', max_tokens: 40, temperature: 1, seed, grammar: 'root ::= ("yes" | "no") " " [0-9]{2}' });
    assert.match(g.choices[0].text, /^(yes|no) [0-9]{2}$/);
    assert.equal(g.choices[0].finish_reason, 'stop');
  }
  // a grammar that does not compile: 400 with the reason
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: hello, grammar: 'root ::= num' }),
    (e) => e instanceof OpenAI.BadRequestError && /undefined rule 'num'/.test(e.message) && e.param === 'grammar');
});

test('structured output: chat.completions.parse with a zod schema returns parsed objects; bad schemas are 400s', async () => {
  const { zodResponseFormat } = requireNpm('openai/helpers/zod');
  const { z } = requireNpm('zod');
  const Weather = z.object({
    city: z.string().max(12),
    temperature: z.number().min(-50).max(60),
    unit: z.enum(['celsius', 'fahrenheit']),
    tags: z.array(z.string().max(6)).max(3),
    note: z.string().max(8).nullable(),
  });
  let parsed = 0, cut = 0;
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    try {
      const r = await client.chat.completions.parse({
        model: 'tiny', messages: hello, max_tokens: 160, temperature: 1, seed, response_format: zodResponseFormat(Weather, 'weather'),
      });
      const w = r.choices[0].message.parsed;  // the client ran Weather.parse on it: a type error would have thrown
      // (maxLength counts code points, as JSON Schema does)
      assert.equal(r.choices[0].finish_reason, 'stop');
      assert.ok([...w.city].length <= 12 && w.temperature >= -50 && w.temperature <= 60 && ['celsius', 'fahrenheit'].includes(w.unit), JSON.stringify(w));
      assert.deepEqual(Object.keys(w), ['city', 'temperature', 'unit', 'tags', 'note']);
      parsed++;
    } catch (e) {
      if (!(e instanceof requireNpm('openai/error').LengthFinishReasonError)) throw e;
      cut++;  // cut off by max_tokens: the client refuses to parse it
    }
  }
  assert.ok(parsed >= 3, `${parsed} parsed, ${cut} cut off`);
  console.log(`# zod: ${parsed} parsed, ${cut} cut off at max_tokens`);
  const schemaFormat = (schema, strict) => ({ type: 'json_schema', json_schema: { name: 'thing', strict, schema } });
  // a pattern with a back-reference, an unresolvable $ref: 400 naming the reason and the parameter
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: hello,
    response_format: schemaFormat({ type: 'object', properties: { a: { type: 'string', pattern: '^(a)\\1$' } } }, true) }),
    (e) => e instanceof OpenAI.BadRequestError && /back-references are not supported/.test(e.message) && e.param === 'response_format.json_schema.schema');
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: hello, response_format: schemaFormat({ $ref: '#/$defs/nothing' }, true) }),
    (e) => e instanceof OpenAI.BadRequestError && /points at nothing/.test(e.message));
  // strict: a keyword no grammar enforces is refused by name; not strict: dropped, and the request is served
  const unique = { type: 'array', items: { type: 'integer', minimum: 0, maximum: 9 }, maxItems: 3, uniqueItems: true };
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: hello, response_format: schemaFormat(unique, true) }),
    (e) => e instanceof OpenAI.BadRequestError && /unsupported keyword 'uniqueItems'/.test(e.message));
  const loose = await client.chat.completions.create({ model: 'tiny', messages: hello, max_tokens: 150, temperature: 0, response_format: schemaFormat(unique, false) });
  if (loose.choices[0].finish_reason === 'stop') assert.ok(Array.isArray(JSON.parse(loose.choices[0].message.content)));
  // malformed response_format objects
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: hello, response_format: { type: 'json_schema' } }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'response_format.json_schema');
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: hello, response_format: { type: 'json_schema', json_schema: { name: 'a b', schema: {} } } }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'response_format.json_schema.name');
});

test('tools: required and named choices always give valid calls; a two-tool loop completes, streamed and not', async () => {
  const Ajv = requireNpm('ajv').default;
  const tools = [
    { type: 'function', function: { name: 'get_weather', description: 'Current weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 20 }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
        required: ['city', 'unit'], additionalProperties: false } } },
    { type: 'function', function: { name: 'calculate', description: 'Evaluate an arithmetic expression',
      parameters: { type: 'object', properties: { expression: { type: 'string', pattern: '^[0-9+*/ ()-]{1,24}$' } }, required: ['expression'],
        additionalProperties: false } } },
  ];
  const ajv = new Ajv({ strict: false });
  const check = Object.fromEntries(tools.map((t) => [t.function.name, ajv.compile(t.function.parameters)]));
  const ask = [{ role: 'user', content: 'What is the weather in Paris, and what is 6*7?' }];
  // the tool definitions make a long prompt for a byte-level model: a model and server with a longer context
  const toolSrv = await startServer(['-m', makeModel(dir, { name: 'tools', ctx: 2048 }), '-c', '2048', '--api-key', KEY]);
  const client = new OpenAI({ apiKey: KEY, baseURL: `${toolSrv.url}/v1`, maxRetries: 0 });
  try {
  const validCall = (call) => {
    assert.equal(call.type, 'function');
    assert.match(call.id, /^(call_[A-Za-z0-9]{24}|[A-Za-z0-9]{9})$/);
    assert.ok(check[call.function.name], `unknown tool ${call.function.name}`);
    const args = JSON.parse(call.function.arguments);
    assert.ok(check[call.function.name](args), `${call.function.name}(${call.function.arguments}): ${JSON.stringify(check[call.function.name].errors)}`);
    return args;
  };
  // "required": whatever the (random) model, the answer is calls with valid arguments, or cut off by max_tokens
  let calls = 0, cut = 0;
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const r = await client.chat.completions.create({ model: 'tools', messages: ask, tools, tool_choice: 'required', max_tokens: 400, temperature: 1, seed });
    const ch = r.choices[0];
    if (ch.finish_reason === 'length') { cut++; continue; }
    assert.equal(ch.finish_reason, 'tool_calls');
    assert.ok(ch.message.tool_calls.length >= 1);
    ch.message.tool_calls.forEach(validCall);
    calls++;
  }
  assert.ok(calls >= 3, `${calls} answers with calls, ${cut} cut off`);
  // "auto": free text until the model begins a call, which then follows the schemas (a random model rarely begins one;
  // whatever it writes, a call it makes is valid)
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({ model: 'tools', messages: ask, tools, max_tokens: 60, temperature: 1, seed });
    const ch = r.choices[0];
    assert.ok(['stop', 'length', 'tool_calls'].includes(ch.finish_reason));
    if (ch.finish_reason === 'tool_calls') ch.message.tool_calls.forEach(validCall);
    else assert.equal(typeof ch.message.content, 'string');
  }
  // a named function
  const named = await client.chat.completions.create({ model: 'tools', messages: ask, tools, max_tokens: 120, temperature: 1, seed: 9,
    tool_choice: { type: 'function', function: { name: 'calculate' } }, parallel_tool_calls: false });
  if (named.choices[0].finish_reason !== 'length') {
    assert.equal(named.choices[0].message.tool_calls.length, 1);
    assert.equal(named.choices[0].message.tool_calls[0].function.name, 'calculate');
    validCall(named.choices[0].message.tool_calls[0]);
  }
  // the loop: the model calls, the application runs the tools, the results go back as role "tool", the model answers
  const run = (call) => {
    const a = JSON.parse(call.function.arguments);
    return call.function.name === 'get_weather' ? JSON.stringify({ city: a.city, temperature: 21, unit: a.unit }) : JSON.stringify({ value: 42 });
  };
  for (const stream of [false, true]) {
    const req = { model: 'tools', messages: ask, tools, tool_choice: 'required', parallel_tool_calls: false, max_tokens: 300, temperature: 0 };
    let message;
    if (stream) {
      const acc = { role: 'assistant', content: '', tool_calls: [] };
      let finish;
      for await (const c of await client.chat.completions.create({ ...req, stream: true })) {
        const d = c.choices[0]?.delta ?? {};
        if (d.content) acc.content += d.content;
        for (const t of d.tool_calls ?? []) {
          acc.tool_calls[t.index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } };
          const slot = acc.tool_calls[t.index];
          if (t.id) slot.id = t.id;
          if (t.function?.name) slot.function.name = t.function.name;
          if (t.function?.arguments) slot.function.arguments += t.function.arguments;
        }
        if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
      }
      assert.equal(finish, 'tool_calls');
      message = acc;
      // greedy: the streamed calls are the plain answer's
      const plain = (await client.chat.completions.create(req)).choices[0].message;
      assert.deepEqual(acc.tool_calls.map((t) => [t.function.name, t.function.arguments]), plain.tool_calls.map((t) => [t.function.name, t.function.arguments]));
    } else {
      const r = await client.chat.completions.create(req);
      assert.equal(r.choices[0].finish_reason, 'tool_calls');
      message = r.choices[0].message;
    }
    message.tool_calls.forEach(validCall);
    const messages = [...ask, message, ...message.tool_calls.map((t) => ({ role: 'tool', tool_call_id: t.id, content: run(t) }))];
    const final = await client.chat.completions.create({ model: 'tools', messages, tools, max_tokens: 24, temperature: 0, stream: false });
    assert.ok(['stop', 'length', 'tool_calls'].includes(final.choices[0].finish_reason));
    // the calls and the results reach the template: the prompt grows by them (vLLM's /tokenize renders it)
    const count = async (ms) => (await (await fetch(`${toolSrv.url}/tokenize`, { method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` }, body: JSON.stringify({ model: 'tools', messages: ms }) })).json()).count;
    const bare = [...ask, { role: 'assistant', content: '' }];
    assert.ok(await count(messages) >= await count(bare) + message.tool_calls[0].function.arguments.length / 2,
      `the tool calls and results are in the prompt: ${await count(messages)} vs ${await count(bare)} tokens`);
    const none = await client.chat.completions.create({ model: 'tools', messages, tools, tool_choice: 'none', max_tokens: 24, temperature: 0 });
    assert.equal(typeof none.choices[0].message.content, 'string');
    assert.equal(none.choices[0].message.tool_calls, undefined);
  }
  // real templates (the golden folder): Llama 3.1 ({"name", "parameters"}), Mistral Nemo ([TOOL_CALLS], 9-character
  // ids it checks), Qwen 2.5 and Hermes 3 (<tool_call>): a forced call parsed, and its result accepted back
  const golden = process.env.LLMFORGE_GOLDEN || path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'shared', 'golden');
  const tdir = path.join(golden, 'chat-templates');
  if (fs.existsSync(tdir)) {
    for (const t of ['meta-llama-Llama-3.1-8B-Instruct', 'mistralai-Mistral-Nemo-Instruct-2407', 'Qwen-Qwen2.5-7B-Instruct', 'NousResearch-Hermes-3-Llama-3.1-8B-tool_use']) {
      const s2 = await startServer(['-m', makeModel(dir, { name: 'tools', ctx: 2048 }), '-c', '2048', '--template', path.join(tdir, `${t}.jinja`)]);
      try {
        const c2 = new OpenAI({ apiKey: 'none', baseURL: `${s2.url}/v1`, maxRetries: 0 });
        const r = await c2.chat.completions.create({ model: 'tools', messages: ask, tools, tool_choice: 'required', parallel_tool_calls: false,
          max_tokens: 300, temperature: 1, seed: 5 });
        if (r.choices[0].finish_reason === 'length') continue;
        assert.equal(r.choices[0].finish_reason, 'tool_calls', t);
        const m = r.choices[0].message;
        m.tool_calls.forEach(validCall);
        if (t.startsWith('mistralai')) assert.match(m.tool_calls[0].id, /^[A-Za-z0-9]{9}$/);
        const back = await c2.chat.completions.create({ model: 'tools', tools, max_tokens: 8, temperature: 0,
          messages: [...ask, m, { role: 'tool', tool_call_id: m.tool_calls[0].id, content: run(m.tool_calls[0]) }] });
        assert.ok(['stop', 'length', 'tool_calls'].includes(back.choices[0].finish_reason), t);
      } finally {
        assert.equal(await stopServer(s2), 0);
      }
    }
  } else {
    console.log(`# golden chat templates not found at ${tdir}: real-template tool calls not checked (set LLMFORGE_GOLDEN)`);
  }
  // bad tool requests: 400s naming the parameter
  await assert.rejects(client.chat.completions.create({ model: 'tools', messages: ask, tools, tool_choice: { type: 'function', function: { name: 'nope' } } }),
    (e) => e instanceof OpenAI.BadRequestError && /'nope', which is not among the tools/.test(e.message) && e.param === 'tool_choice');
  await assert.rejects(client.chat.completions.create({ model: 'tools', messages: ask, tools: [{ type: 'function', function: { name: 'bad name' } }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'tools');
  await assert.rejects(client.chat.completions.create({ model: 'tools', messages: ask, tool_choice: 'required' }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'tool_choice');
  await assert.rejects(client.chat.completions.create({ model: 'tools', tools, messages: [...ask, { role: 'tool', content: '1' }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages[1].tool_call_id');
  await assert.rejects(client.chat.completions.create({ model: 'tools', tools,
    messages: [...ask, { role: 'assistant', content: null, tool_calls: [{ id: 'a', type: 'function', function: { name: 'calculate' } }] }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages[1].tool_calls[0].function.arguments');
  } finally {
    assert.equal(await stopServer(toolSrv), 0);
  }
});

test('embeddings: base64 (the client default) and float agree, unit length', async () => {
  const a = await client.embeddings.create({ model: 'tiny', input: ['the cat sat', 'on the mat'] });
  assert.equal(a.data.length, 2);
  assert.equal(a.data[0].embedding.length, 64);
  const norm = Math.sqrt(a.data[0].embedding.reduce((s, v) => s + v * v, 0));
  assert.ok(Math.abs(norm - 1) < 1e-5);
  const f = await client.embeddings.create({ model: 'tiny', input: 'the cat sat', encoding_format: 'float' });
  for (let i = 0; i < 64; i++) assert.ok(Math.abs(f.data[0].embedding[i] - a.data[0].embedding[i]) < 1e-7);
  assert.ok(a.usage.prompt_tokens > 0);
  assert.notDeepEqual(a.data[0].embedding, a.data[1].embedding);
});

test('an encoder (BERT with the bge WordPiece vocabulary) serves embeddings equal to `llmforge embed`; completions are a 400', async (t) => {
  const golden = process.env.LLMFORGE_GOLDEN || path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'shared', 'golden');
  const vocab = path.join(golden, 'vocab', 'ggml-vocab-bert-bge.gguf');
  if (!fs.existsSync(vocab)) { t.skip(`no golden data at ${golden}`); return; }
  const bert = path.join(dir, 'bert.gguf');
  execFileSync(BIN, ['init', '--preset', 'bert-tiny', '--tokenizer', vocab, '--seed', '3', '-o', bert], { stdio: 'ignore' });
  const s = await startServer(['-m', bert, '--parallel', '2']);
  try {
    const c = new OpenAI({ apiKey: 'none', baseURL: `${s.url}/v1`, maxRetries: 0 });
    const texts = ['Retrieval finds the passages.', 'An encoder reads the whole text at once.'];
    const r = await c.embeddings.create({ model: 'bert', input: texts });
    const f = await c.embeddings.create({ model: 'bert', input: texts, encoding_format: 'float' });
    const cli = execFileSync(BIN, ['embed', '-m', bert, ...texts], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim().split('\n').map(JSON.parse);
    assert.equal(r.data.length, 2);
    for (let k = 0; k < 2; k++) {
      assert.equal(r.data[k].embedding.length, 128);
      for (let i = 0; i < 128; i++) {
        assert.ok(Math.abs(r.data[k].embedding[i] - cli[k][i]) < 1e-6, `text ${k} dim ${i}: ${r.data[k].embedding[i]} vs ${cli[k][i]}`);
        assert.ok(Math.abs(f.data[k].embedding[i] - cli[k][i]) < 1e-6);
      }
    }
    assert.ok(r.usage.prompt_tokens > 4);
    await assert.rejects(c.chat.completions.create({ model: 'bert', messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e instanceof OpenAI.BadRequestError && /encoder/.test(e.message));
  } finally {
    assert.equal(await stopServer(s), 0);
  }
});

test('logit_bias: -100 bans a token, +100 forces one, streamed alike; fields we would ignore are 400', async () => {
  // the greedy continuation's token ids, from the CLI on the same model and prompt (the completions endpoint adds BOS too)
  const prompt = 'Once upon a time';
  const gen = JSON.parse(execFileSync(BIN, ['generate', '-m', model, '-p', prompt, '-n', '3', '--temp', '0', '--json'], { stdio: ['ignore', 'pipe', 'ignore'] }));
  const first = gen.tokens[0];
  const plain = await client.completions.create({ model: 'tiny', prompt, max_tokens: 3, temperature: 0, logprobs: 1 });
  const banned = await client.completions.create({ model: 'tiny', prompt, max_tokens: 3, temperature: 0, logprobs: 1, logit_bias: { [first]: -100 } });
  assert.notEqual(banned.choices[0].logprobs.tokens[0], plain.choices[0].logprobs.tokens[0], 'the banned token came first anyway');
  assert.equal(banned.choices[0].logprobs.tokens.length, 3);
  // +100 on one token: every token is that one (chat too)
  const forced = await client.chat.completions.create({
    model: 'tiny', messages: hello, max_tokens: 5, temperature: 0.8, seed: 3, ignore_eos: true, logprobs: true, logit_bias: { 300: 100 },
  });
  const toks = forced.choices[0].logprobs.content.map((c) => c.token);
  assert.equal(toks.length, 5);
  assert.ok(toks.every((t) => t === toks[0]), JSON.stringify(toks));
  const free = await client.chat.completions.create({ model: 'tiny', messages: hello, max_tokens: 5, temperature: 0, ignore_eos: true });
  assert.notEqual(forced.choices[0].message.content, free.choices[0].message.content);
  // streaming honours it too: the streamed text equals the plain biased answer
  const bias = { [first]: -100, 301: 5 };
  const once = await client.chat.completions.create({ model: 'tiny', messages: hello, max_tokens: 8, temperature: 0, ignore_eos: true, logit_bias: bias });
  const stream = await client.chat.completions.create({ model: 'tiny', messages: hello, max_tokens: 8, temperature: 0, ignore_eos: true, logit_bias: bias, stream: true });
  let text = '';
  for await (const c of stream) for (const ch of c.choices) text += ch.delta.content || '';
  assert.equal(text, once.choices[0].message.content);
  // bad logit_bias values
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: hello, logit_bias: { 999999: 1 } }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'logit_bias' && /Invalid key/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: hello, logit_bias: { 5: 101 } }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'logit_bias');
  // a field of llama.cpp's server that we do not implement yet, and an unknown one: 400, never silently ignored
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: hello, mirostat: 2 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'mirostat' && e.code === 'unsupported_parameter');
  // llama.cpp's json_schema field: the answer follows it; a bad one is a 400 naming it
  const js = await client.completions.create({ model: 'tiny', prompt, max_tokens: 100, temperature: 1, seed: 3,
    json_schema: { type: 'object', properties: { n: { type: 'integer', minimum: 0, maximum: 99 } }, required: ['n'], additionalProperties: false } });
  if (js.choices[0].finish_reason === 'stop') assert.ok(JSON.parse(js.choices[0].text).n <= 99, js.choices[0].text);
  await assert.rejects(client.completions.create({ model: 'tiny', prompt, json_schema: { type: 'kaboom' } }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'json_schema' && /unrecognized schema/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: hello, frobnicate: 1 }),
    (e) => e instanceof OpenAI.BadRequestError && /Unrecognized request argument supplied: frobnicate/.test(e.message) && e.param === 'frobnicate');
  await assert.rejects(client.embeddings.create({ model: 'tiny', input: 'x', temperature: 0 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature');
  // fields that cannot change the answer are accepted
  const u = await client.chat.completions.create({ model: 'tiny', messages: hello, max_tokens: 2, user: 'u-1', metadata: { a: 'b' }, store: false });
  assert.equal(u.object, 'chat.completion');
});

test('errors surface as the typed errors of the client', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'nope', messages: hello }), (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found');
  await assert.rejects(client.chat.completions.create({ model: 'tiny' }), (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages');
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: [] }), (e) => e instanceof OpenAI.BadRequestError);
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: hello, max_tokens: 100000 }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded');
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: hello, temperature: 'hot' }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'invalid_type' && e.param === 'temperature');
  const wrong = new OpenAI({ apiKey: 'sk-wrong', baseURL: `${srv.url}/v1`, maxRetries: 0 });
  await assert.rejects(wrong.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  const second = new OpenAI({ apiKey: 'second-key', baseURL: `${srv.url}/v1`, maxRetries: 0 });
  assert.equal((await second.models.list()).data.length, 1);
  // a body over --max-body: 413, which the client reports as a plain APIError with that status
  const big = 'word '.repeat(20000);
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: big }] }),
    (e) => e instanceof OpenAI.APIError && e.status === 413 && !(e instanceof OpenAI.BadRequestError));
  // malformed JSON: the client's own fetch, with the body broken on the way
  const broken = new OpenAI({
    apiKey: KEY, baseURL: `${srv.url}/v1`, maxRetries: 0,
    fetch: (url, init) => fetch(url, { ...init, body: '{"model": "tiny", "messages": [' }),
  });
  await assert.rejects(broken.chat.completions.create({ model: 'tiny', messages: hello }), (e) => e instanceof OpenAI.BadRequestError && /JSON/.test(e.message));
});

test('authentication on every endpoint but /health; metrics', async () => {
  const api = ['/v1/models', '/v1/models/tiny', '/metrics', '/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/arena/api/battle',
    '/arena/api/vote', '/arena/api/leaderboard', '/v1/nope'];
  for (const p of api) {
    const post = /completions|embeddings|battle|vote/.test(p);
    const r = await fetch(srv.url + p, { method: post ? 'POST' : 'GET', body: post ? '{}' : undefined });
    assert.equal(r.status, 401, p);
    const body = await r.json();
    assert.equal(body.error.code, 'invalid_api_key');
  }
  // the web pages: 401 too, with a page that asks for the key (and shows nothing of the app)
  for (const p of ['/', '/arena', '/chat.js', '/vendor/marked.min.js', '/nope']) {
    const r = await fetch(srv.url + p);
    assert.equal(r.status, 401, p);
    assert.match(r.headers.get('content-type'), /text\/html/);
    const html = await r.text();
    assert.match(html, /API key/);
    assert.doesNotMatch(html, /chat\.js|renderMarkdown/);
  }
  // with the key: as a Bearer header, or in the cookie the 401 page's form sets (pages only, not the API)
  assert.equal((await fetch(srv.url + '/', { headers: { Authorization: `Bearer ${KEY}` } })).status, 200);
  const page = await fetch(srv.url + '/chat.js', { headers: { Cookie: `other=1; llmforge_key=${encodeURIComponent(KEY)}` } });
  assert.equal(page.status, 200);
  assert.match(await page.text(), /chat\/completions/);
  assert.equal((await fetch(srv.url + '/', { headers: { Cookie: 'llmforge_key=wrong' } })).status, 401);
  assert.equal((await fetch(srv.url + '/v1/models', { headers: { Cookie: `llmforge_key=${encodeURIComponent(KEY)}` } })).status, 401);
  assert.equal((await fetch(srv.url + '/health')).status, 200);
  const m = await fetch(srv.url + '/metrics', { headers: { Authorization: `Bearer ${KEY}` } });
  assert.equal(m.status, 200);
  const v = parseMetrics(await m.text());
  assert.equal(v['llmforge_slots_busy{model="tiny"}'], 0);
  assert.equal(v['llmforge_slots_total{model="tiny"}'], 4);
  assert.equal(v['llmforge_kv_cache_cells_used{model="tiny"}'], 0);
  assert.ok(v['llmforge_generated_tokens_total{model="tiny"}'] > 50);
  assert.ok(v['llmforge_requests_total{endpoint="/v1/chat/completions",status="200"}'] >= 8);
  assert.ok(v['llmforge_requests_total{endpoint="/v1/chat/completions",status="400"}'] >= 4);
  assert.ok(v['llmforge_time_to_first_token_seconds_count{model="tiny"}'] >= 8);
});
