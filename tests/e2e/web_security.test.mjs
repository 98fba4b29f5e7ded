// The web pages' file serving: no URL reaches a file outside the pages, whether they are the embedded copy or a
// folder given with --web-dir (symbolic links included); security headers on the pages. Raw HTTP over a socket, so
// the paths arrive exactly as written (a client library would normalise "..").
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { tmpdir, makeModel, startServer, stopServer } from './server_util.mjs';

const dir = tmpdir('websec');
const model = makeModel(dir);
const web = path.join(dir, 'web');
fs.mkdirSync(path.join(web, 'sub'), { recursive: true });
fs.writeFileSync(path.join(web, 'index.html'), '<!doctype html><p>from the folder</p>');
fs.writeFileSync(path.join(web, 'sub', 'a.js'), 'console.log(1)');
fs.writeFileSync(path.join(web, '.hidden'), 'hidden');
const secret = path.join(dir, 'secret.txt');
fs.writeFileSync(secret, 'TOP-SECRET');
fs.symlinkSync(secret, path.join(web, 'leak.txt'));
fs.symlinkSync('/etc', path.join(web, 'etc'));

function raw(port, target) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    s.on('connect', () => s.write(`GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`));
    s.on('data', (d) => { data += d.toString('latin1'); });
    s.on('end', () => resolve({ status: Number(data.split(' ')[1]), text: data }));
    s.on('error', reject);
  });
}

const escapes = [
  '/../etc/passwd', '/../../../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd', '/..%2f..%2f..%2fetc%2fpasswd',
  '/vendor/../../../../etc/passwd', '/vendor/katex/fonts/..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd', '//etc/passwd', '/%2fetc%2fpasswd',
  '/..\\..\\etc\\passwd', '/%5c..%5c..%5cetc%5cpasswd', '/index.html%00.js', '/.%2e/.%2e/etc/passwd', '/%252e%252e/etc/passwd',
  '/etc/passwd', '/proc/self/environ', '/secret.txt', '/../secret.txt', '/%2e%2e/secret.txt', '/leak.txt', '/etc/hostname', '/.hidden', '/sub/../../secret.txt',
];

test('embedded pages: no path escapes; security headers', async () => {
  const s = await startServer(['-m', model, '--no-access-log']);
  try {
    for (const p of escapes) {
      const r = await raw(s.port, p);
      assert.ok(r.status === 404 || r.status === 400, `${p}: ${r.status}`);
      assert.doesNotMatch(r.text, /root:|TOP-SECRET|LLMFORGE_BIN/, p);
    }
    const r = await fetch(s.url + '/');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-security-policy'), /script-src 'self';/);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(r.headers.get('x-frame-options'), 'DENY');
    assert.match(await r.text(), /<script src="\/chat\.js"/);
    for (const [p, type] of [['/arena', /text\/html/], ['/common.js', /javascript/], ['/style.css', /text\/css/], ['/vendor/katex/katex.min.css', /text\/css/],
      ['/vendor/purify.min.js', /javascript/], ['/favicon.svg', /svg/]]) {
      const x = await fetch(s.url + p);
      assert.equal(x.status, 200, p);
      assert.match(x.headers.get('content-type'), type, p);
    }
    // other methods on a page
    assert.equal((await fetch(s.url + '/', { method: 'POST', body: 'x' })).status, 405);
    // one model: no arena
    const b = await fetch(s.url + '/arena/api/battle', { method: 'POST', body: '{"prompt": "hi"}' });
    assert.equal(b.status, 404);
    assert.equal((await b.json()).error.code, 'arena_off');
  } finally {
    await stopServer(s);
  }
});

test('--no-web: no pages, no arena; the API still answers', async () => {
  const s = await startServer(['-m', model, '--no-access-log', '--no-web']);
  try {
    for (const p of ['/', '/arena', '/chat.js', '/arena/api/leaderboard']) assert.equal((await fetch(s.url + p)).status, 404, p);
    assert.equal((await fetch(s.url + '/v1/models')).status, 200);
  } finally {
    await stopServer(s);
  }
});

test('--web-dir: files come from the folder, symbolic links out of it and hidden files are refused', async () => {
  const s = await startServer(['-m', model, '--no-access-log', '--web-dir', web]);
  try {
    assert.match((await raw(s.port, '/')).text, /from the folder/);
    assert.match((await raw(s.port, '/sub/a.js')).text, /console\.log/);
    for (const p of [...escapes, '/etc/passwd', '/etc/', '/leak.txt', '/sub/', '/sub/..', '/sub/%2e%2e/leak.txt']) {
      const r = await raw(s.port, p);
      assert.ok(r.status === 404 || r.status === 400, `${p}: ${r.status}`);
      assert.doesNotMatch(r.text, /root:|TOP-SECRET|hidden$/, p);
    }
  } finally {
    await stopServer(s);
  }
  // a folder that is not there: a clear error at start
  await assert.rejects(startServer(['-m', model, '--web-dir', path.join(dir, 'nope')]), /--web-dir .*not a folder/);
});
