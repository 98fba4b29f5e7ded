// The web chat (/) and the arena (/arena) in a real browser: Playwright (playwright-core from npm) drives Debian's
// Chromium headless against `llmforge serve`. Screenshots go to $LLMFORGE_TEST_OUT (default: a temporary folder).
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { tmpdir, makeModel, startServer, stopServer, parseMetrics, haveChromium, launchChromium } from './server_util.mjs';

const dir = tmpdir('web');
const shots = process.env.LLMFORGE_TEST_OUT || path.join(dir, 'screenshots');
fs.mkdirSync(shots, { recursive: true });

let server, browser;
const small = haveChromium ? makeModel(dir, { preset: 'llama-small', seed: 1, name: 'small' }) : null;
const tinyA = haveChromium ? makeModel(dir, { seed: 1, name: 'tinyA' }) : null;
const tinyB = haveChromium ? makeModel(dir, { seed: 2, name: 'tinyB' }) : null;
const arenaDb = path.join(dir, 'arena.db');

test.before(async () => {
  if (!haveChromium) return;
  // the chat's model first (the page selects it); the arena draws two of the three
  server = await startServer(['-m', small, '-m', tinyA, '-m', tinyB, '-a', 'small', '-a', 'tiny-a', '-a', 'tiny-b', '-c', '4096', '--parallel', '2',
    '--arena-db', arenaDb, '--no-access-log']);
  browser = await launchChromium();
});
test.after(async () => {
  if (browser) await browser.close();
  if (server) await stopServer(server);
});

async function newPage() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(m.text()); });
  return page;
}
async function metrics() {
  return parseMetrics(await (await fetch(server.url + '/metrics')).text());
}
const lastAssistant = (page) => page.locator('.msg.assistant').last();

test('chat: tokens stream in, the answer finishes, multi-turn keeps the history', { skip: !haveChromium && 'no /usr/bin/chromium (scripts/setup.sh installs it)' }, async () => {
  const page = await newPage();
  await page.goto(server.url + '/');
  await page.waitForFunction(() => document.querySelectorAll('#model option').length === 3);
  assert.equal(await page.locator('#model').inputValue(), 'small');
  await page.fill('#system', 'You are terse.');
  await page.fill('#max-tokens', '200');
  await page.fill('#seed', '5');
  // watch the answer grow: the content's text length at every change while it streams
  await page.evaluate(() => {
    window.__lengths = [];
    new MutationObserver(() => {
      const c = document.querySelector('.msg.assistant:last-child .content');
      if (c && c.closest('.msg').dataset.state === 'streaming') window.__lengths.push(c.textContent.length);
    }).observe(document.getElementById('messages'), { childList: true, subtree: true, characterData: true });
  });
  await page.fill('#input', 'Tell me a story.');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('.msg.assistant')?.dataset.state === 'done', null, { timeout: 60000 });
  const lengths = await page.evaluate(() => window.__lengths);
  const distinct = new Set(lengths.filter((n) => n > 0));
  assert.ok(distinct.size >= 3, `the answer appeared in ${distinct.size} steps (${lengths.slice(0, 20)})`);
  const chunks = Number(await lastAssistant(page).getAttribute('data-chunks'));
  assert.ok(chunks >= 5, `${chunks} content chunks`);
  assert.match(await lastAssistant(page).locator('.meta').textContent(), /tok\/s/);
  // what the browser sent: the same request through the API gives the same number of tokens (seed 5)
  const api = await (await fetch(server.url + '/v1/chat/completions', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'small', messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Tell me a story.' }],
      max_tokens: 200, seed: 5, temperature: 0.7, top_p: 0.95 }),
  })).json();
  assert.match(await lastAssistant(page).locator('.meta').textContent(), new RegExp(`^${api.usage.completion_tokens} `));
  // second turn: sent with the first turn in the history
  const sent = page.waitForRequest((r) => r.url().endsWith('/v1/chat/completions'));
  await page.fill('#input', '你好，世界');
  await page.click('#send');
  const body = JSON.parse((await sent).postData());
  assert.deepEqual(body.messages.map((m) => m.role), ['system', 'user', 'assistant', 'user']);
  assert.equal(body.messages[3].content, '你好，世界');
  assert.equal(body.stream, true);
  await page.waitForFunction(() => [...document.querySelectorAll('.msg.assistant')].every((m) => m.dataset.state === 'done'), null, { timeout: 60000 });
  assert.equal((await page.locator('.msg.user').last().locator('.content').textContent()).trim(), '你好，世界');
  // the interface in Chinese
  await page.click('#lang');
  assert.equal(await page.locator('#send').textContent(), '发送');
  assert.equal(await page.locator('.msg.user .who').first().textContent(), '你');
  await page.screenshot({ path: path.join(shots, 'chat-stream.png') });
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('chat: the stop button ends the stream and the server frees the slot', { skip: !haveChromium && 'no chromium' }, async () => {
  const page = await newPage();
  await page.goto(server.url + '/');
  await page.waitForFunction(() => document.querySelectorAll('#model option').length === 3);
  await page.fill('#max-tokens', '4000');
  await page.fill('#seed', '3');
  const before = await metrics();
  await page.fill('#input', 'Write a very long story.');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => Number(document.querySelector('.msg.assistant')?.dataset.chunks || 0) >= 5, null, { timeout: 30000 });
  assert.equal(await page.locator('#stop').isVisible(), true);
  await page.click('#stop');
  await page.waitForFunction(() => document.querySelector('.msg.assistant').dataset.state === 'stopped');
  const n = (await lastAssistant(page).locator('.content').textContent()).length;
  assert.equal(await page.locator('#send').isVisible(), true);
  assert.match(await lastAssistant(page).locator('.meta').textContent(), /stopped/);
  // the server noticed the disconnect: the job was cancelled and no slot stays busy
  let m;
  for (let i = 0; i < 100; ++i) {
    m = await metrics();
    if (m['llmforge_slots_busy{model="small"}'] === 0 && m['llmforge_jobs_total{model="small",outcome="cancelled"}'] > (before['llmforge_jobs_total{model="small",outcome="cancelled"}'] || 0)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(m['llmforge_slots_busy{model="small"}'], 0);
  assert.ok(m['llmforge_jobs_total{model="small",outcome="cancelled"}'] > (before['llmforge_jobs_total{model="small",outcome="cancelled"}'] || 0), 'a cancelled job');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await lastAssistant(page).locator('.content').textContent()).length, n, 'no text after stop');
  await page.screenshot({ path: path.join(shots, 'chat-stopped.png') });
  await page.close();
});

// The page's Markdown rendering, fed a known answer: the API's reply is replaced (page.route) by a stream with a code
// block, a table, math, and HTML/script/javascript: links that must not run.
test('chat: Markdown renders code, tables and math; nothing injects script', { skip: !haveChromium && 'no chromium' }, async () => {
  const page = await newPage();
  const answer = "Here is code:\n\n```python\ndef add(a, b):\n    return a + b  # $not math$\n```\n\n| token | p |\n|---|---|\n| the | 0.5 |\n| a | 0.25 |\n\n" +
    'Attention: $\\mathrm{softmax}(QK^T/\\sqrt{d_k})V$ and\n\n$$E[r_\\phi(x,y)] - \\beta\\,\\mathrm{KL}$$\n\n' +
    '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> [click](javascript:window.__pwned=3) ' +
    '<a href="javascript:window.__pwned=4">x</a> <svg onload="window.__pwned=5"></svg> <iframe src="javascript:window.__pwned=6"></iframe>';
  const pieces = answer.match(/[\s\S]{1,17}/g);
  await page.route('**/v1/chat/completions', (route) => {
    let body = '';
    for (const p of pieces) body += 'data: ' + JSON.stringify({ choices: [{ index: 0, delta: { content: p }, finish_reason: null }] }) + '\n\n';
    body += 'data: ' + JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }) + '\n\ndata: [DONE]\n\n';
    route.fulfill({ status: 200, contentType: 'text/event-stream', body });
  });
  await page.goto(server.url + '/');
  await page.waitForFunction(() => document.querySelectorAll('#model option').length === 3);
  await page.fill('#input', '<img src=y onerror="window.__pwned=7"> **bold** <b>not bold</b>');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('.msg.assistant')?.dataset.state === 'done');
  const a = lastAssistant(page).locator('.content');
  assert.match(await a.locator('pre code').textContent(), /def add\(a, b\):\n {4}return a \+ b {2}# \$not math\$/);
  assert.equal(await a.locator('pre code.language-python').count(), 1);
  assert.deepEqual(await a.locator('table th').allTextContents(), ['token', 'p']);
  assert.deepEqual(await a.locator('table td').allTextContents(), ['the', '0.5', 'a', '0.25']);
  assert.equal(await a.locator('.katex').count(), 2);
  assert.equal(await a.locator('.katex-display').count(), 1);
  assert.match(await a.locator('.katex').first().textContent(), /softmax\(QKT\/dk/);  // KaTeX's HTML: letters in spans
  assert.ok((await a.locator('.katex .sqrt').count()) >= 1, 'a square root');
  // the HTML is shown as text, not made into elements
  for (const sel of ['img', 'script', 'iframe', 'a[href^="javascript"]']) assert.equal(await page.locator('#messages ' + sel).count(), 0, sel);
  // (KaTeX draws the square root as an SVG: allowed, but no element may carry an event handler)
  assert.deepEqual(await page.evaluate(() => [...document.querySelectorAll('#messages *')].flatMap((e) => [...e.attributes].map((x) => x.name))
    .filter((n) => n.startsWith('on'))), []);
  assert.match(await a.textContent(), /<img src=x onerror=/);
  const u = page.locator('.msg.user .content');
  assert.equal(await u.locator('strong').textContent(), 'bold');
  assert.equal(await u.locator('b').count(), 0);
  assert.match(await u.textContent(), /<b>not bold<\/b>/);
  await page.waitForTimeout(200);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  await page.screenshot({ path: path.join(shots, 'chat-markdown.png'), fullPage: true });
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('chat against a 128-token context: max tokens clamped, the oldest turns left out, every message answered', { skip: !haveChromium && 'no chromium' }, async () => {
  const small = await startServer(['-m', tinyA, '-c', '128', '--parallel', '1', '--no-access-log']);
  const page = await newPage();
  try {
    await page.goto(small.url + '/');
    await page.waitForFunction(() => document.querySelectorAll('#model option').length === 1);
    assert.equal(await page.locator('#max-tokens').inputValue(), '512');  // the page's default, more than the whole context
    const ask = async (text, n) => {
      await page.fill('#input', text);
      await page.keyboard.press('Enter');
      await page.waitForFunction((k) => {
        const m = document.querySelectorAll('.msg.assistant');
        return m.length === k && ['done', 'error'].includes(m[k - 1].dataset.state);
      }, n, { timeout: 60000 });
      return lastAssistant(page);
    };
    const first = await ask('Hello there! How are you today?', 1);
    assert.equal(await first.getAttribute('data-state'), 'done', await first.textContent());
    const note = await first.locator('.note').textContent();
    assert.match(note, /Max tokens 512 → \d+: the model's context is 128 tokens/);
    assert.ok(Number(await first.getAttribute('data-max-tokens')) < 128);
    // the answers fill the context: later messages go through with the oldest turns left out, and the page says so
    let dropped = false;
    for (let i = 2; i <= 5; ++i) {
      const a = await ask(`Message number ${i}: tell me more about that.`, i);
      assert.equal(await a.getAttribute('data-state'), 'done', `message ${i}: ${await a.textContent()}`);
      if (/earlier messages were left out/.test(await a.locator('.note').textContent())) dropped = true;
    }
    assert.ok(dropped, 'the page said it left out earlier messages');
    assert.ok(await page.locator('.msg.dropped').count() >= 2, 'the left-out messages are marked');
    assert.equal(await page.locator('.msg.error').count(), 0);
    await page.screenshot({ path: path.join(shots, 'chat-small-context.png'), fullPage: true });
    assert.deepEqual(page.errors, []);
  } finally {
    await page.close();
    await stopServer(small);
  }
});

test('arena: two anonymous answers, a vote, the leaderboard changes', { skip: !haveChromium && 'no chromium' }, async () => {
  const page = await newPage();
  await page.goto(server.url + '/arena');
  await page.waitForFunction(() => document.getElementById('vote-count').textContent !== '');
  assert.equal(await page.locator('#leaderboard tbody tr').count(), 0);
  const seen = new Set();
  for (let round = 0; round < 3; ++round) {
    await page.fill('#arena-prompt', round === 1 ? '用一句话解释注意力机制。' : 'Explain attention in one sentence.');
    await page.click('#battle');
    await page.waitForSelector('#votes:not([hidden])', { timeout: 60000 });
    const a = await page.locator('#side-a .content').textContent(), b = await page.locator('#side-b .content').textContent();
    assert.ok(a.length > 0 || b.length > 0, 'answers shown');
    await page.click(`#votes button[data-winner="${['a', 'b', 'tie'][round]}"]`);
    await page.waitForFunction((n) => document.getElementById('vote-count').dataset.votes === String(n), round + 1);
    if (round === 0) {  // one vote: "1 vote", and no interval of zero width ("1340 – 1340") for models with one battle
      assert.equal(await page.locator('#vote-count').textContent(), '1 vote');
      for (const cell of await page.locator('#leaderboard tbody tr td:nth-child(4)').allTextContents()) assert.equal(cell, '—');
    }
    const reveal = await page.locator('#reveal').textContent();
    const m = reveal.match(/A was (\S+), B was (\S+)\./);
    assert.ok(m, reveal);
    assert.notEqual(m[1], m[2]);
    seen.add(m[1]).add(m[2]);
  }
  const rows = await page.locator('#leaderboard tbody tr').count();
  assert.equal(rows, seen.size);
  const battles = (await page.locator('#leaderboard tbody tr td:nth-child(5)').allTextContents()).map(Number);
  assert.equal(battles.reduce((x, y) => x + y, 0), 6, 'three battles, two models each');
  await page.screenshot({ path: path.join(shots, 'arena.png'), fullPage: true });
  // the votes are in SQLite and export as preference pairs
  const { execFileSync } = await import('node:child_process');
  const out = execFileSync(process.env.LLMFORGE_BIN, ['arena', 'export', '--db', arenaDb], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const pairs = out.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(pairs.length, 2, 'two decisive votes (the tie is left out)');
  for (const p of pairs) for (const k of ['prompt', 'chosen', 'rejected']) assert.equal(typeof p[k], 'string');
  assert.equal(pairs[1].prompt, '用一句话解释注意力机制。');
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('with --api-key: the 401 page takes the key, then the chat works', { skip: !haveChromium && 'no chromium' }, async () => {
  const keyed = await startServer(['-m', tinyA, '--api-key', 'sk-web-test', '--no-access-log']);
  const page = await newPage();
  try {
    const r = await page.goto(keyed.url + '/');
    assert.equal(r.status(), 401);
    assert.equal(await page.locator('#messages').count(), 0, 'nothing of the app before the key');
    await page.fill('#k', 'sk-web-test');
    await Promise.all([page.waitForNavigation(), page.click('button')]);
    await page.waitForFunction(() => document.querySelectorAll('#model option').length === 1);
    await page.fill('#max-tokens', '20');
    await page.fill('#input', 'Hello');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('.msg.assistant')?.dataset.state === 'done', null, { timeout: 30000 });
    assert.ok(Number(await lastAssistant(page).getAttribute('data-chunks')) >= 1);
    // a wrong key stored: the API answers 401 and the page says so
    await page.evaluate(() => localStorage.setItem('llmforge_key', 'sk-wrong'));
    await page.fill('#input', 'Again');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelectorAll('.msg.assistant')[1]?.dataset.state === 'error');
    assert.match(await lastAssistant(page).textContent(), /Incorrect API key/);
  } finally {
    // (the page errors seen: the 401 answers themselves)
    await page.close();
    await stopServer(keyed);
  }
});

test('arena API: bad input gets OpenAI-shaped errors', { skip: !haveChromium && 'no chromium' }, async () => {
  const post = (p, body) => fetch(server.url + p, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
  const err = async (r, status, code) => {
    assert.equal(r.status, status);
    const j = await r.json();
    assert.equal(typeof j.error.message, 'string');
    if (code) assert.equal(j.error.code, code);
  };
  await err(await post('/arena/api/battle', '{"prompt": '), 400);
  await err(await post('/arena/api/battle', '{}'), 400, 'missing_required_parameter');
  await err(await post('/arena/api/battle', '{"prompt": 42}'), 400, 'invalid_type');
  await err(await post('/arena/api/battle', '{"prompt": "   "}'), 400, 'invalid_value');
  await err(await post('/arena/api/battle', JSON.stringify({ prompt: 'word '.repeat(5000) })), 400, 'context_length_exceeded');
  await err(await post('/arena/api/battle', JSON.stringify({ prompt: 'hi', temperature: 9 })), 400, 'decimal_above_max_value');
  await err(await post('/arena/api/vote', JSON.stringify({ battle: 'battle-nope', winner: 'a' })), 404, 'battle_not_found');
  await err(await post('/arena/api/vote', JSON.stringify({ battle: 'battle-nope', winner: 'left' })), 400, 'invalid_value');
  await err(await post('/arena/api/vote', JSON.stringify({ winner: 'a' })), 400, 'missing_required_parameter');
  await err(await fetch(server.url + '/arena/api/vote'), 405);
  // a battle whose client went away before the end cannot be voted on
  const ac = new AbortController();
  const r = await fetch(server.url + '/arena/api/battle', { method: 'POST', body: JSON.stringify({ prompt: 'Tell a long story', max_tokens: 3000 }), signal: ac.signal });
  const reader = r.body.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  const id = first.match(/"battle":"([^"]+)"/)[1];
  ac.abort();
  await new Promise((res) => setTimeout(res, 300));
  await err(await post('/arena/api/vote', JSON.stringify({ battle: id, winner: 'a' })), 400, 'battle_incomplete');
  const m = parseMetrics(await (await fetch(server.url + '/metrics')).text());
  for (const name of ['small', 'tiny-a', 'tiny-b']) assert.equal(m[`llmforge_slots_busy{model="${name}"}`], 0, name);
});
