// Soak test on loopback: SOAK_REQUESTS (default 2000) requests from 16 concurrent clients, of which ≥ 20 % are
// malformed (bad JSON, wrong types, invalid UTF-8, huge numbers, empty messages) and ≥ 10 % disconnect mid-stream.
// The server must stay up, answer every malformed request 400 in OpenAI's error shape, answer every valid request
// exactly (greedy output equal to the same request made alone), return every KV slot to idle (/metrics) and keep its
// memory bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import { tmpdir, makeModel, startServer, stopServer, parseMetrics } from './server_util.mjs';

const N = Number(process.env.SOAK_REQUESTS || 2000);
const CONCURRENCY = 16;

function rss(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return Number(m[1]) / 1024;
}

// One raw HTTP request. abortAfterData: destroy the socket once the first body bytes arrive (a client going away).
function request(port, path, body, { method = 'POST', abortAfterData = false, abortAfterMs = 0, onFirstData = null } = {}) {
  return new Promise((resolve) => {
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(body ?? '');
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': buf.length } }, (res) => {
      const parts = [];
      res.on('data', (d) => {
        if (onFirstData && parts.length === 0) onFirstData();
        parts.push(d);
        if (abortAfterData) { req.destroy(); resolve({ status: res.statusCode, aborted: true }); }
      });
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts).toString('utf8') }));
      res.on('error', () => resolve({ status: res.statusCode, aborted: true }));
    });
    req.on('error', (e) => resolve({ error: e.message, aborted: abortAfterData || abortAfterMs > 0 }));
    if (abortAfterMs) setTimeout(() => { req.destroy(); resolve({ aborted: true }); }, abortAfterMs);
    req.end(buf);
  });
}

const prompts = Array.from({ length: 12 }, (_, i) => `Tell me story number ${i} about a cat${i % 3 ? ' and a dog' : ''}.`);
const valid = (i, stream) => JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: prompts[i % prompts.length] }],
  max_tokens: 6 + (i % 5), temperature: 0, ignore_eos: true, stream });

const malformed = [
  () => '{"model": "tiny", "messages": [',                                     // truncated JSON
  () => 'not json at all',
  () => '',
  () => '[]',                                                                  // not an object
  () => JSON.stringify({ model: 'tiny', messages: 'hello' }),                  // wrong type
  () => JSON.stringify({ model: 'tiny', messages: [] }),                       // empty messages
  () => JSON.stringify({ model: 'tiny', messages: [{ role: 'user' }] }),       // no content
  () => JSON.stringify({ model: 'tiny', messages: [{ role: 'wizard', content: 'x' }] }),
  () => JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], temperature: 'warm' }),
  () => JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], temperature: 1e308 }),
  () => '{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1e400}',          // overflows a double
  () => '{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 99999999999999999999999}',
  () => JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], n: 2 ** 40 }),
  () => JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], max_tokens: -5 }),
  () => JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], stop: [1, 2] }),
  () => Buffer.concat([Buffer.from('{"model": "tiny", "messages": [{"role": "user", "content": "bad '), Buffer.from([0xff, 0xfe, 0xc3]),
    Buffer.from('"}]}')]),                                                     // invalid UTF-8
  () => JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'x'.repeat(5000) }] }),   // longer than the context
];

test(`soak: ${N} requests, malformed and disconnecting ones among them`, { timeout: 900000 }, async () => {
  const dir = tmpdir('soak');
  const model = makeModel(dir, { name: 'tiny' });
  const srv = await startServer(['-m', model, '--parallel', '4', '-c', '1600', '--queue', '256', '--no-access-log']);
  try {
    // the answers of lone requests, one per distinct valid request
    const expected = new Map();
    for (let i = 0; i < prompts.length * 5; i++) {
      const key = valid(i, false);
      if (expected.has(key)) continue;
      const r = await request(srv.port, '/v1/chat/completions', key);
      assert.equal(r.status, 200, r.body);
      expected.set(key, JSON.parse(r.body).choices[0].message.content);
    }
    const counts = { valid: 0, stream: 0, malformed: 0, disconnect: 0, early: 0 };
    let rssWarm = 0;
    let next = 0;
    const failures = [];
    async function worker() {
      for (;;) {
        const i = next++;
        if (i >= N) return;
        if (i === 200) rssWarm = rss(srv.proc.pid);
        const kind = i % 10;
        if (kind < 2 || (kind === 9 && i % 20 === 9)) {  // 25 % malformed
          counts.malformed++;
          const body = malformed[i % malformed.length]();
          const r = await request(srv.port, '/v1/chat/completions', body);
          let ok = r.status === 400;
          try { const e = JSON.parse(r.body).error; ok = ok && typeof e.message === 'string' && 'type' in e && 'param' in e && 'code' in e; } catch { ok = false; }
          if (!ok) failures.push(`malformed #${i % malformed.length}: ${r.status} ${r.body}`);
        } else if (kind === 2) {  // 10 % go away once the stream has started
          counts.disconnect++;
          await request(srv.port, '/v1/chat/completions', JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: prompts[i % 12] }],
            max_tokens: 1500, ignore_eos: true, stream: true }), { abortAfterData: true });
        } else if (kind === 3 && i % 20 === 3) {  // 5 % go away before any answer (non-streaming)
          counts.early++;
          await request(srv.port, '/v1/chat/completions', JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: prompts[i % 12] }],
            max_tokens: 1500, ignore_eos: true }), { abortAfterMs: 5 });
        } else {
          const streamIt = kind >= 7;
          streamIt ? counts.stream++ : counts.valid++;
          const body = valid(i, streamIt);
          const r = await request(srv.port, '/v1/chat/completions', body);
          if (r.status !== 200) { failures.push(`valid: ${r.status} ${r.body}`); continue; }
          let text = '';
          if (streamIt) {
            if (!r.body.trimEnd().endsWith('data: [DONE]')) failures.push('stream without [DONE]');
            for (const line of r.body.split('\n')) {
              if (!line.startsWith('data: {')) continue;
              const c = JSON.parse(line.slice(6));
              text += c.choices[0]?.delta?.content ?? '';
            }
          } else {
            text = JSON.parse(r.body).choices[0].message.content;
          }
          const want = expected.get(valid(i, false));
          if (text !== want) failures.push(`request ${i}: ${JSON.stringify(text)} != ${JSON.stringify(want)}`);
        }
      }
    }
    const t0 = Date.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const secs = (Date.now() - t0) / 1000;
    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} failures`);
    assert.ok(counts.malformed >= 0.2 * N, JSON.stringify(counts));
    assert.ok(counts.disconnect >= 0.1 * N, JSON.stringify(counts));
    // every slot idle again, nothing queued or in flight
    let v;
    for (let k = 0; k < 100; k++) {
      v = parseMetrics(await (await fetch(srv.url + '/metrics')).text());
      if (v['llmforge_slots_busy{model="tiny"}'] === 0 && v['llmforge_requests_in_flight'] === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(v['llmforge_slots_busy{model="tiny"}'], 0);
    assert.equal(v['llmforge_queue_length{model="tiny"}'], 0);
    assert.equal(v['llmforge_kv_cache_cells_used{model="tiny"}'], 0);
    assert.equal(v['llmforge_requests_in_flight'], 0);
    // (a disconnected request that would run 1500 tokens must have been cancelled, not run to its end)
    // (every stream that started was a running job; an early leaver may go before its request is complete)
    assert.ok(v['llmforge_jobs_total{model="tiny",outcome="cancelled"}'] >= counts.disconnect,
      `cancelled ${v['llmforge_jobs_total{model="tiny",outcome="cancelled"}']} of ${counts.disconnect + counts.early} disconnected`);
    assert.ok(v['llmforge_generated_tokens_total{model="tiny"}'] < (counts.disconnect + counts.early) * 100 + N * 20, 'disconnected requests stopped early');
    const rssEnd = rss(srv.proc.pid);
    console.log(`soak: ${N} requests in ${secs.toFixed(1)} s: ${JSON.stringify(counts)}; RSS ${rssWarm.toFixed(1)} MiB after 200, ${rssEnd.toFixed(1)} MiB at the end; ` +
      `cancelled jobs ${v['llmforge_jobs_total{model="tiny",outcome="cancelled"}']}`);
    assert.ok(rssEnd - rssWarm < 32, `memory grew from ${rssWarm} to ${rssEnd} MiB`);
    assert.equal((await fetch(srv.url + '/health')).status, 200);
  } finally {
    const code = await stopServer(srv);
    assert.equal(code, 0, srv.log().slice(-2000));
  }
});

// Hundreds of open streams, no thread each: 300 streaming requests at once against 4 slots. While they are open the
// server holds 300 connections with the same handful of threads; every stream then completes.
test('300 concurrent streams on a few threads', { timeout: 300000 }, async () => {
  const dir = tmpdir('streams');
  const model = makeModel(dir, { name: 'tiny' });
  const srv = await startServer(['-m', model, '--parallel', '4', '-c', '128', '--queue', '512', '--max-concurrent', '400', '--no-access-log']);
  try {
    const threadsIdle = Number(fs.readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8').match(/Threads:\s+(\d+)/)[1]);
    const N = 300;
    let maxConns = 0, maxThreads = 0;
    const body = (i) => JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: `stream ${i}` }], max_tokens: 24, temperature: 0,
      ignore_eos: true, stream: true });
    const all = Promise.all(Array.from({ length: N }, (_, i) => request(srv.port, '/v1/chat/completions', body(i))));
    for (let k = 0; k < 40; k++) {
      await new Promise((r) => setTimeout(r, 25));
      const v = parseMetrics(await (await fetch(srv.url + '/metrics')).text());
      maxConns = Math.max(maxConns, v['llmforge_open_connections']);
      maxThreads = Math.max(maxThreads, Number(fs.readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8').match(/Threads:\s+(\d+)/)[1]));
      if (maxConns >= N) break;
    }
    const res = await all;
    const done = res.filter((r) => r.status === 200 && r.body.trimEnd().endsWith('data: [DONE]')).length;
    console.log(`streams: ${N} at once, ${maxConns} connections open at the peak, threads ${threadsIdle} idle / ${maxThreads} at the peak, ${done} completed`);
    assert.equal(done, N);
    assert.ok(maxConns >= 250, `only ${maxConns} connections were open at once`);
    assert.ok(maxThreads <= threadsIdle + 2, `threads grew from ${threadsIdle} to ${maxThreads}`);
  } finally {
    assert.equal(await stopServer(srv), 0);
  }
});

// SIGTERM: the running stream finishes, /health and new requests answer 503 meanwhile, the server exits 0. A per-request timeout ends a long answer.
test('graceful shutdown and per-request timeout', { timeout: 240000 }, async () => {
  const dir = tmpdir('shutdown');
  const model = makeModel(dir, { name: 'tiny' });
  const small = makeModel(dir, { name: 'small', preset: 'llama-small' });
  const srv = await startServer(['-m', small, '--parallel', '2', '-c', '2048', '--timeout', '0.5', '--no-access-log']);
  // 2000 tokens of this model take seconds: the answer ends at the timeout, with what was made so far
  const t0 = Date.now();
  const t = await request(srv.port, '/v1/chat/completions', JSON.stringify({ model: 'small', messages: [{ role: 'user', content: 'go' }],
    max_tokens: 2000, ignore_eos: true, temperature: 0 }));
  const took = (Date.now() - t0) / 1000;
  assert.equal(t.status, 200);
  const tr = JSON.parse(t.body);
  assert.equal(tr.choices[0].finish_reason, 'length');
  assert.ok(tr.usage.completion_tokens > 0 && tr.usage.completion_tokens < 2000, `${tr.usage.completion_tokens} tokens`);
  assert.ok(took < 30, `the answer took ${took} s`);  // generous: the token count above is the real check
  await stopServer(srv);

  // a generous drain time: on a loaded machine the stream may take many seconds, and it must not be cancelled
  // (the small model: its 1500 tokens take seconds, long enough to ask /health while it drains)
  const s2 = await startServer(['-m', small, '--parallel', '2', '-c', '2048', '--shutdown-timeout', '150', '--no-access-log']);
  let streaming;
  const started = new Promise((r) => { streaming = r; });
  const long = request(s2.port, '/v1/chat/completions', JSON.stringify({ model: 'small', messages: [{ role: 'user', content: 'go' }],
    max_tokens: 1500, ignore_eos: true, temperature: 0, stream: true }), { onFirstData: () => streaming() });
  await started;  // the stream runs
  const exited = stopServer(s2);  // SIGTERM while the stream runs
  // draining: the server still answers, /health with 503 and a new request with 503 "shutting_down" (as docs/server.md says)
  let health = null;
  for (let i = 0; i < 100; i++) {
    health = await request(s2.port, '/health', '', { method: 'GET' });
    if (health.status === 503) break;
    await new Promise((res) => setTimeout(res, 20));
  }
  assert.equal(health.status, 503, `health while draining: ${JSON.stringify(health)}`);
  assert.equal(JSON.parse(health.body).status, 'shutting down');
  const refused = await request(s2.port, '/v1/chat/completions', JSON.stringify({ model: 'small', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }));
  assert.equal(refused.status, 503);
  assert.equal(JSON.parse(refused.body).error.code, 'shutting_down');
  const r = await long;
  assert.equal(r.status, 200);
  assert.ok(r.body.trimEnd().endsWith('data: [DONE]'), 'the running stream was finished');
  let tokens = 0;
  for (const line of r.body.split('\n')) if (line.startsWith('data: {') && JSON.parse(line.slice(6)).choices[0]?.finish_reason === 'length') tokens++;
  assert.equal(tokens, 1);
  assert.equal(await exited, 0);
  assert.match(s2.log(), /signal 15: no new requests/);
  const after = await request(s2.port, '/health', '', { method: 'GET' });
  assert.ok(after.error, 'nothing listens after the exit');
});
