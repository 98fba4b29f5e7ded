// Answers from documents in the server: POST /v1/retrieve (scores, the grounded prompt, OpenAI-shaped errors), and the
// web chat's "use documents" switch in a real browser (Playwright drives Debian's Chromium): the answer's [n] citations
// link to the sources, whose text — HTML included — is shown as text and never run.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { BIN, tmpdir, makeModel, startServer, stopServer, haveChromium, launchChromium } from './server_util.mjs';

const dir = tmpdir('ragweb');
const shots = process.env.LLMFORGE_TEST_OUT || path.join(dir, 'screenshots');
fs.mkdirSync(shots, { recursive: true });

// a small corpus; one passage carries markup that must stay text in the page
const corpus = path.join(dir, 'corpus');
fs.mkdirSync(corpus, { recursive: true });
fs.writeFileSync(path.join(corpus, 'kettles.md'), '# Kettles\n\n## Descaling\n\nLimescale builds up in a kettle with hard water. Vinegar dissolves ' +
  'limescale; rinse the kettle twice afterwards.\n\n## Switching off\n\nA bimetal strip bends in the steam and switches the kettle off.\n');
fs.writeFileSync(path.join(corpus, 'markup.txt'), 'Limescale trap: <img src=x onerror="window.__pwned=1"> and ' +
  '<script>window.__pwned=2</script> are shown as text in a kettle answer.\n');
fs.writeFileSync(path.join(corpus, 'bread.md'), '# Bread\n\nBread dough is flour, water, salt and yeast. Bake it in a hot oven.\n');
// other topics, so that the kettle's words are rare enough for BM25 to weigh them
for (const [name, text] of [['bicycles', 'A chain needs oil every few hundred kilometres.'], ['gardens', 'Water a garden in the morning.'],
  ['compost', 'Compost needs green waste, brown waste and air.'], ['tyres', 'Check tyre pressure every week with a gauge.'],
  ['paint', 'Let the first coat of paint dry before the second.'], ['knots', 'A reef knot joins two ropes of equal thickness.']])
  fs.writeFileSync(path.join(corpus, name + '.txt'), text + '\n');
const kb = path.join(dir, 'kb');
execFileSync(BIN, ['rag', 'index', corpus, '-o', kb, '-q'], { stdio: 'pipe' });
const model = makeModel(dir, { preset: 'llama-tiny', seed: 3, name: 'tiny', ctx: 2048 });

let server, plain, browser;
test.before(async () => {
  server = await startServer(['-m', model, '--rag', kb, '--min-bm25', '0.1', '--no-access-log']);
  plain = await startServer(['-m', model, '--no-access-log']);
  if (haveChromium) {
    browser = await launchChromium();
  }
});
test.after(async () => {
  if (browser) await browser.close();
  if (server) await stopServer(server);
  if (plain) await stopServer(plain);
});

const post = (s, body) => fetch(s.url + '/v1/retrieve', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

test('/v1/retrieve: scored chunks, the relevant ones numbered, the prompt rag ask would send', async () => {
  const info = await (await fetch(server.url + '/v1/retrieve')).json();
  assert.equal(info.object, 'index');
  assert.equal(info.available, true);
  assert.equal(info.documents, 9);
  assert.deepEqual(info.modes, ['bm25']);
  const r = await post(server, { query: 'How do I remove limescale from a kettle?', k: 3 });
  assert.equal(r.status, 200);
  const j = await r.json();
  assert.equal(j.object, 'list');
  assert.equal(j.mode, 'bm25');
  assert.ok(j.data.length >= 2 && j.data.length <= 3);
  for (let i = 1; i < j.data.length; ++i) assert.ok(j.data[i - 1].score >= j.data[i].score, 'ranked by score');
  const rel = j.data.filter((d) => d.relevant);
  assert.deepEqual(rel.map((d) => d.n), rel.map((_, i) => i + 1));
  assert.ok(rel.every((d) => d.bm25 >= 0.1 && d.text.length > 0 && d.snippet.length > 0));
  // the prompt: the numbered sources, their texts, then the question
  assert.ok(j.prompt.startsWith('Sources:\n\n[1] ' + rel[0].label + '\n' + rel[0].text.trim()));
  assert.ok(j.prompt.endsWith('\n\nQuestion: How do I remove limescale from a kettle?'));
  assert.match(j.system, /\[n\]/);
  // a higher threshold in the request leaves nothing relevant: no prompt
  const none = await (await post(server, { query: 'limescale', min_bm25: 1e9 })).json();
  assert.equal(none.sources, 0);
  assert.equal(none.prompt, null);
  // min_lead: the first chunk's lead over the first chunk of another document; below it, nothing is relevant
  const d = j.data, other = d.find((x) => x.source !== d[0].source);
  const lead = other ? (d[0].score - other.score) / Math.abs(d[0].score) : 1;
  assert.ok(lead > 0 && lead < 1, `lead ${lead}`);
  assert.ok(Math.abs(j.lead - lead) < 1e-12, `lead ${j.lead} vs ${lead}`);
  const q = { query: 'How do I remove limescale from a kettle?', k: 3 };
  assert.ok((await (await post(server, { ...q, min_lead: lead * 0.99 })).json()).sources > 0);
  const declined = await (await post(server, { ...q, min_lead: Math.min(1, lead * 1.01 + 1e-9) })).json();
  assert.equal(declined.sources, 0);
  assert.equal(declined.prompt, null);
  assert.ok(declined.data.every((x) => !x.relevant && x.n === null));
  // a query sharing no word: no hits, not an error
  const empty = await (await post(server, { query: 'zebra quantum' })).json();
  assert.deepEqual(empty.data, []);
});

test('/v1/retrieve: bad requests get OpenAI-shaped errors', async () => {
  const cases = [
    [{}, 400, 'query'], [{ query: 7 }, 400, 'query'], [{ query: 'x', k: 0 }, 400, 'k'], [{ query: 'x', k: 'five' }, 400, 'k'],
    [{ query: 'x', mode: 'dense' }, 400, 'mode'], [{ query: 'x', mode: 'fuzzy' }, 400, 'mode'], [{ query: 'x', top: 3 }, 400, 'top'], [{ query: 'x', min_lead: 2 }, 400, 'min_lead'],
  ];
  for (const [body, status, param] of cases) {
    const r = await post(server, body);
    assert.equal(r.status, status, JSON.stringify(body));
    const e = (await r.json()).error;
    assert.equal(e.type, 'invalid_request_error');
    assert.equal(e.param, param, JSON.stringify(body));
  }
  const bad = await fetch(server.url + '/v1/retrieve', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"query": ' });
  assert.equal(bad.status, 400);
  assert.equal((await fetch(server.url + '/v1/retrieve', { method: 'DELETE' })).status, 405);
  // a server without --rag has no index
  assert.deepEqual(await (await fetch(plain.url + '/v1/retrieve')).json(), { object: 'index', available: false });
  const r = await post(plain, { query: 'x' });
  assert.equal(r.status, 404);
  assert.equal((await r.json()).error.code, 'no_index');
  // … and without --rerank no reranker (tests/reference/test_reranker_torch.py checks one served)
  const rr = await fetch(plain.url + '/v1/rerank', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"query": "q", "documents": ["d"]}' });
  assert.equal(rr.status, 404);
  assert.equal((await rr.json()).error.code, 'no_reranker');
  assert.equal((await fetch(plain.url + '/v1/rerank', { method: 'GET' })).status, 405);
});

test('web chat: "use documents" answers with clickable citations; a source\'s HTML stays text', { skip: !haveChromium && 'no /usr/bin/chromium (scripts/setup.sh installs it)' }, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  let dialogs = 0;
  page.on('dialog', async (d) => { ++dialogs; await d.dismiss(); });
  // the random model cannot cite by itself: the test adds a grammar (an llmforge extension of chat completions) to the
  // request the page sends, so that the answer cites source 2 and then source 1
  const sentBodies = [];
  await page.route('**/v1/chat/completions', async (route) => {
    const body = JSON.parse(route.request().postData());
    sentBodies.push(body);
    body.grammar = 'root ::= "Use vinegar [2], then rinse [1]."';
    await route.continue({ postData: JSON.stringify(body) });
  });
  await page.goto(server.url + '/');
  await page.waitForSelector('#docs-row:not([hidden])');
  await page.check('#use-docs');
  await page.fill('#input', 'How do I remove limescale from a kettle?');
  await page.keyboard.press('Enter');
  const msg = page.locator('.msg.assistant').last();
  await page.waitForFunction(() => document.querySelector('.msg.assistant:last-child')?.dataset.state === 'done', null, { timeout: 60000 });
  // what the model got: the grounded prompt as the user turn, the grounded instruction as the system prompt
  assert.equal(sentBodies.length, 1);
  const msgs = sentBodies[0].messages;
  assert.equal(msgs[0].role, 'system');
  assert.match(msgs[0].content, /\[n\]/);
  assert.ok(msgs.at(-1).content.startsWith('Sources:\n\n[1] ') && msgs.at(-1).content.endsWith('Question: How do I remove limescale from a kettle?'));
  // the citations are links, in the answer's order; the sources are listed with their snippets
  assert.equal((await msg.locator('.content').textContent()).trim(), 'Use vinegar [2], then rinse [1].');
  assert.deepEqual(await msg.locator('a.cite').allTextContents(), ['[2]', '[1]']);
  const n = Number(await msg.getAttribute('data-sources'));
  assert.ok(n >= 2, `${n} sources`);
  assert.equal(await msg.locator('.sources .source').count(), n);
  assert.equal(await msg.locator('.sources .source.cited').count(), 2);
  // clicking [2] highlights source 2 and shows its whole text
  await msg.locator('a.cite[data-n="2"]').click();
  const s2 = msg.locator('.sources .source[data-n="2"]');
  assert.match(await s2.getAttribute('class'), /highlight/);
  assert.equal(await s2.locator('.text').isVisible(), true);
  // the passage with markup: shown as its literal text, no element made from it, nothing run
  const markup = msg.locator('.sources .source', { hasText: 'Limescale trap' });
  assert.equal(await markup.count(), 1, 'the passage with markup is among the sources');
  await markup.locator('.snippet').waitFor();
  assert.match(await markup.textContent(), /<img src=x onerror="window.__pwned=1">/);
  assert.match(await markup.textContent(), /<script>window.__pwned=2<\/script>/);
  assert.equal(await msg.locator('.sources img, .sources script').count(), 0);
  await page.waitForTimeout(200);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal(dialogs, 0);
  await page.screenshot({ path: path.join(shots, 'rag-citations.png'), fullPage: true });

  // nothing relevant: the page says so and asks the model nothing
  await page.fill('#input', 'zebra quantum xylophone');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelectorAll('.msg.assistant').length === 2 &&
    document.querySelector('.msg.assistant:last-child').dataset.state === 'done', null, { timeout: 30000 });
  assert.match(await page.locator('.msg.assistant').last().locator('.content').textContent(), /No passage of the documents is relevant/);
  assert.equal(sentBodies.length, 1, 'no completion was requested');
  // the switch off: a plain answer, no sources
  await page.uncheck('#use-docs');
  await page.fill('#input', 'Hello');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelectorAll('.msg.assistant').length === 3 &&
    document.querySelector('.msg.assistant:last-child').dataset.state === 'done', null, { timeout: 60000 });
  assert.equal(sentBodies.length, 2);
  assert.equal(sentBodies[1].messages.at(-1).content, 'Hello');
  assert.equal(await page.locator('.msg.assistant').last().locator('.sources .source').count(), 0);
  assert.deepEqual(errors, []);
  await page.close();
});

test('web chat without --rag: no switch', { skip: !haveChromium && 'no chromium' }, async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(plain.url + '/');
  await page.waitForFunction(() => document.querySelectorAll('#model option').length === 1);
  await page.waitForTimeout(300);
  assert.equal(await page.locator('#docs-row').isHidden(), true);
  assert.deepEqual(errors, []);
  await page.close();
});
