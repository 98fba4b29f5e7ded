// The server under hostile clients, on loopback only, bounded in count and time (about a minute): slowloris headers
// and bodies, oversized headers, request-smuggling attempts, pipelined requests, 1,000 idle connections, connection
// limits (per address and in all: the attackers bind 127.0.0.x source addresses, all on loopback), path traversal
// on the static files, API keys, and the arena's battle expiry.
// Throughout, a well-behaved client (127.0.0.1) keeps asking the same greedy question: every answer must be 200 and
// equal to the one it got before the attacks. The server's resident size is measured before and after; it may not
// grow by more than RSS_MARGIN_MB.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { tmpdir, makeModel, startServer, stopServer } from './server_util.mjs';

const RSS_MARGIN_MB = 48;
const KEY = 'sk-hostile-test-0123456789abcdef';
const dir = tmpdir('hostile');
const web = path.join(dir, 'web');
const SECRET = 'TOP-SECRET-7f3a9c';
let server;

function rss(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return Number(m[1]) / 1024;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A raw exchange: connects (from `from`), writes `data` (a string, or a list of [delayMs, string] pieces), and
// collects what comes back until the server closes or `timeoutMs` passes.
function raw(data, { from = '127.0.0.1', timeoutMs = 8000 } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect({ host: '127.0.0.1', port: server.port, localAddress: from });
    const parts = [];
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const text = Buffer.concat(parts).toString('latin1');
      const bodies = [];
      resolve({ text, statuses: responses(text, bodies), bodies, closed, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('data', (d) => parts.push(d));
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
    sock.on('connect', async () => {
      if (typeof data === 'string') return sock.write(data);
      for (const [delay, piece] of data) {
        if (delay) await sleep(delay);
        if (done || sock.destroyed) return;
        sock.write(piece);
      }
    });
  });
}

// The statuses of the responses in `text`, read one after another (Content-Length or chunked bodies); their
// Content-Length bodies (UTF-8) into `bodies`.
function responses(text, bodies = []) {
  const out = [];
  let at = 0;
  while (at < text.length) {
    const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*\r\n/.exec(text.slice(at));
    if (!m) break;
    const end = text.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    out.push(Number(m[1]));
    const head = text.slice(at, end);
    at = end + 4;
    const len = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (len) {
      bodies.push(Buffer.from(text.slice(at, at + Number(len[1])), 'latin1').toString('utf8'));
      at += Number(len[1]);
      continue;
    }
    if (!/\r\ntransfer-encoding: *chunked/i.test(head)) break;
    for (;;) {  // chunks
      const eol = text.indexOf('\r\n', at);
      if (eol < 0) return out;
      const n = parseInt(text.slice(at, eol), 16);
      at = eol + 2 + n + 2;
      if (n === 0) break;
    }
  }
  return out;
}

const chatBody = JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'Tell me about the sea.' }], max_tokens: 8, temperature: 0, ignore_eos: true });

async function ask(key = KEY) {
  const r = await fetch(server.url + '/v1/chat/completions', {
    method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` }, body: chatBody });
  const j = await r.json();
  return { status: r.status, text: r.status === 200 ? j.choices[0].message.content : JSON.stringify(j) };
}

// The well-behaved client: asks again and again until stopped; every answer recorded.
function goodClient() {
  const answers = [];
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      try { answers.push(await ask()); } catch (e) { answers.push({ status: 0, text: String(e) }); }
      await sleep(100);
    }
  })();
  return { answers, stop: async () => { stop = true; await loop; } };
}

let baseline, rssBefore, good;

before(async () => {
  fs.mkdirSync(path.join(web, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(web, 'index.html'), '<!doctype html><title>ok</title>');
  fs.writeFileSync(path.join(web, 'sub', 'page.html'), 'sub page');
  fs.writeFileSync(path.join(web, '.env'), SECRET);
  fs.writeFileSync(path.join(dir, 'secret.txt'), SECRET);
  fs.symlinkSync(path.join(dir, 'secret.txt'), path.join(web, 'link.html'));
  const a = makeModel(dir, { name: 'tiny', seed: 1 });
  const b = makeModel(dir, { name: 'other', seed: 2 });
  server = await startServer(['-m', a, '-m', b, '--api-key', KEY, '--web-dir', web, '--arena-db', path.join(dir, 'arena.db'), '--arena-battle-ttl', '3',
    '--header-timeout', '2', '--body-timeout', '2', '--idle-timeout', '60', '--max-connections', '1500', '--max-connections-per-ip', '300',
    '--max-header-bytes', '8192', '--max-headers', '50', '--no-access-log', '-t', '1']);
  baseline = await ask();
  assert.equal(baseline.status, 200, baseline.text);
  for (let i = 0; i < 5; ++i) assert.deepEqual(await ask(), baseline);  // warm: the allocator's pools in place
  rssBefore = rss(server.proc.pid);
  good = goodClient();
});

after(async () => {
  if (server) await stopServer(server);
});

test('API keys: a wrong key of the right length, a prefix, none: 401', async () => {
  for (const k of [KEY.slice(0, -1) + 'x', KEY.slice(0, 10), KEY + 'x', ''])
    assert.equal((await ask(k)).status, 401, k);
});

test('slowloris: a header or a body trickled a byte at a time is answered 408 and closed within the timeout', async () => {
  const trickle = (head, n) => [[0, head], ...Array.from({ length: n }, () => [400, 'a'])];
  const headers = Array.from({ length: 20 }, () => raw(trickle('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ', 40), { from: '127.0.0.3' }));
  const bodies = Array.from({ length: 20 }, () =>
    raw(trickle(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n`, 40),
      { from: '127.0.0.3' }));
  for (const r of await Promise.all([...headers, ...bodies])) {
    assert.deepEqual(r.statuses, [408], r.text);
    assert.ok(r.closed, 'the connection is closed');
    assert.ok(r.ms < 2000 + 5500, `closed after ${r.ms} ms`);  // timeout + the 5 s the server drains an answered client
  }
  // a client that connects and sends nothing is not answered: it holds a connection until --idle-timeout (below)
});

test('oversized headers: too many bytes, too many fields, a huge request line: 431', async () => {
  const big = `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(9000)}\r\n\r\n`;
  const many = `GET /health HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 60 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`;
  const line = `GET /${'p'.repeat(9000)} HTTP/1.1\r\nHost: x\r\n\r\n`;
  for (const req of [big, many, line]) {
    const r = await raw(req);
    assert.deepEqual(r.statuses, [431], r.text.slice(0, 300));
    assert.match(r.text, /"code":"header_too_large"/);
  }
  const endless = await raw([[0, 'GET /health HTTP/1.1\r\n'], ...Array.from({ length: 30 }, () => [0, `X-Pad: ${'z'.repeat(1000)}\r\n`])]);
  assert.deepEqual(endless.statuses, [431]);
});

test('request smuggling: ambiguous lengths are refused, and nothing after them is read as a request', async () => {
  const smuggled = 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
  const attempts = [
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${smuggled}`,
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello${smuggled}`,
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello${smuggled}`,
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${smuggled}`,
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled}`,
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n${smuggled}`,
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n${smuggled}`,
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello${smuggled}`,
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello${smuggled}`,
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello${smuggled}`,
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n${smuggled}`,
    `POST /v1/chat/completions HTTP/1.1\nHost: x\nContent-Length: 5\n\nhello${smuggled}`,
    `GET /health HTTP/1.1\r\nHost: x\r\nX-Bad\0Name: v\r\n\r\n${smuggled}`,
  ];
  for (const a of attempts) {
    const r = await raw(a);
    assert.deepEqual(r.statuses, [400], JSON.stringify(a) + ' → ' + r.text.slice(0, 200));
    assert.ok(r.closed, 'closed after the 400');
    assert.match(r.text, /"code":"bad_request"/);
  }
  // A folded field (obs-fold) is unfolded before it is read (RFC 9112 §5.2 allows this or a 400): the header says
  // chunked, the body is the empty chunked one, and what follows is read as the next request — one reading only.
  const folded = await raw(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n${smuggled}`);
  assert.deepEqual(folded.statuses, [401, 200], folded.text.slice(0, 300));
  // well-formed chunked is still read: one request, then the next on the same connection
  const chunked = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n` +
    `${chatBody.length.toString(16)}\r\n${chatBody}\r\n0\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;
  const r = await raw(chunked, { timeoutMs: 60000 });
  assert.deepEqual(r.statuses, [200, 200], r.text.slice(0, 400));
  assert.equal(JSON.parse(r.bodies[0]).choices[0].message.content, baseline.text, 'the chunked request has the same answer');
});

test('pipelined requests are answered in order on one connection', async () => {
  const auth = `Authorization: Bearer ${KEY}\r\n`;
  const post = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(chatBody)}\r\n\r\n${chatBody}`;
  const r = await raw(`GET /health HTTP/1.1\r\nHost: x\r\n\r\n${post}GET /v1/models HTTP/1.1\r\nHost: x\r\n${auth}\r\n` +
    `GET /nope HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`, { timeoutMs: 60000 });
  assert.deepEqual(r.statuses, [200, 200, 200, 404], r.text.slice(0, 400));
  const at = (s) => r.text.indexOf(s);
  assert.ok(at('"status":"ok"') < at('chat.completion') && at('chat.completion') < at('"object":"list"'), 'in order');
});

test('path traversal on static files: encoded, double-encoded, backslash, NUL, hidden, symlink', async () => {
  const auth = `Authorization: Bearer ${KEY}\r\n`;
  const ok = await raw(`GET /sub/page.html HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`);
  assert.deepEqual(ok.statuses, [200]);
  const variants = ['/../secret.txt', '/%2e%2e/secret.txt', '/%2E%2E%2Fsecret.txt', '/%252e%252e/secret.txt', '/%252e%252e%252fsecret.txt',
    '/..%2fsecret.txt', '/..%5csecret.txt', '/..\\secret.txt', '/%2e%2e%5csecret.txt', '/sub/../../secret.txt', '/sub/%2e%2e/%2e%2e/secret.txt',
    '/.env', '/%2eenv', '/sub/..%2f.env', '/index.html%00.png', '/%00../secret.txt', '/..%00/secret.txt', '/link.html', '//etc/passwd',
    '/%2fetc%2fpasswd', '/..%c0%afsecret.txt', '/..%252fsecret.txt', '/.%2e/secret.txt', `/${'../'.repeat(20)}etc/passwd`];
  for (const v of variants) {
    const r = await raw(`GET ${v} HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`);
    assert.equal(r.statuses.length, 1, v);
    assert.ok([400, 404].includes(r.statuses[0]), `${v} → ${r.statuses[0]}`);
    assert.ok(!r.text.includes(SECRET) && !r.text.includes('root:'), `${v} leaked`);
  }
});

test('1,000 idle connections, connection limits per address and in all; the good client is served throughout', async () => {
  const open = (from) => new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: server.port, localAddress: from });
    s.got = '';
    s.on('data', (d) => { s.got += d.toString('latin1'); });
    s.on('error', () => {});
    s.on('connect', () => resolve(s));
    s.on('close', () => { s.closedAt = Date.now(); resolve(s); });
  });
  const idle = [];
  for (let k = 0; k < 4; ++k)
    for (let i = 0; i < 250; ++i) idle.push(await open(`127.0.0.${10 + k}`));
  await sleep(1500);
  assert.equal(idle.filter((s) => s.got || s.closedAt).length, 0, 'the 1,000 idle connections are kept');
  const during = await ask();
  assert.deepEqual(during, baseline, 'a request while 1,000 connections are idle');
  // per address: 300 allowed from 127.0.0.20, the next 20 refused with 503
  const perIp = [];
  for (let i = 0; i < 320; ++i) perIp.push(await open('127.0.0.20'));
  await sleep(1500);
  const refused = perIp.filter((s) => s.got.startsWith('HTTP/1.1 503'));
  assert.equal(refused.length, 20, 'exactly the connections over --max-connections-per-ip are refused');
  assert.match(refused[0].got, /"code":"too_many_connections"/);
  assert.ok(refused.every((s) => s.closedAt), 'and closed');
  // in all: 1,000 + 300 open; 250 more from another address pass the total of 1,500 (the good client's own
  // connection may hold one or two of them)
  const total = [];
  for (let i = 0; i < 250; ++i) total.push(await open('127.0.0.21'));
  await sleep(1500);
  const over = total.filter((s) => s.got.startsWith('HTTP/1.1 503')).length;
  assert.ok(over >= 50 && over <= 53, `${over} refused over --max-connections`);
  for (const s of [...idle, ...perIp, ...total]) s.destroy();
  await sleep(1000);
  assert.deepEqual(await ask(), baseline, 'after the connections are gone');
});

test('arena: a battle expires after --arena-battle-ttl; one vote per battle', async () => {
  const battle = async () => {
    const r = await fetch(server.url + '/arena/api/battle', { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ prompt: 'Say something.', max_tokens: 4 }) });
    assert.equal(r.status, 200);
    const id = (await r.text()).match(/"battle":"([^"]+)"/)[1];
    return id;
  };
  const vote = (id) => fetch(server.url + '/arena/api/vote', { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ battle: id, winner: 'a' }) });
  const fresh = await battle();
  assert.equal((await vote(fresh)).status, 200);
  assert.equal((await vote(fresh)).status, 409, 'a second vote on the same battle');
  const old = await battle();
  await sleep(3300);
  const r = await vote(old);
  assert.equal(r.status, 404);
  assert.match(await r.text(), /battle_not_found/);
});

test('the good client was answered the same throughout, and memory stayed bounded', async () => {
  await good.stop();
  assert.ok(good.answers.length >= 20, `${good.answers.length} answers`);
  for (const a of good.answers) assert.deepEqual(a, baseline);
  for (let i = 0; i < 5; ++i) await ask();
  const after = rss(server.proc.pid);
  console.log(`# good client: ${good.answers.length} answers, all equal; RSS ${rssBefore.toFixed(1)} → ${after.toFixed(1)} MiB (margin ${RSS_MARGIN_MB})`);
  assert.ok(after - rssBefore < RSS_MARGIN_MB, `RSS grew from ${rssBefore.toFixed(1)} to ${after.toFixed(1)} MiB`);
});
