// Load generator for OpenAI-compatible servers: C concurrent clients, each sending R streaming /v1/completions
// requests one after the other (greedy, ignore_eos, max_tokens T), for every C in a list. Prints one JSON line per C:
// aggregate generated tokens/s (all tokens / wall time), time to first token p50/p99, inter-token latency p50/p99
// (gaps between successive streamed tokens), and the texts (to compare greedy outputs across loads).
//
//   node bench/server_load.mjs URL MODEL "1,2,4,8,16,32" [REQUESTS_PER_CLIENT] [MAX_TOKENS]
import http from 'node:http';

const [url, model, levels = '1,2,4,8,16,32', reqs = '2', maxTokens = '64'] = process.argv.slice(2);
const { hostname, port } = new URL(url);
const R = Number(reqs), T = Number(maxTokens);
const prompts = Array.from({ length: 64 }, (_, i) => `Request ${i}: once upon a time there was a little ${['cat', 'dog', 'bird', 'fish'][i % 4]} who`);

function stream(prompt) {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ model, prompt, max_tokens: T, temperature: 0, ignore_eos: true, stream: true, cache_prompt: false });
    const t0 = process.hrtime.bigint();
    const times = [];
    let text = '', buf = '';
    const req = http.request({ hostname, port, path: '/v1/completions', method: 'POST', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      if (res.statusCode !== 200) { reject(new Error(`HTTP ${res.statusCode}`)); res.resume(); return; }
      res.setEncoding('utf8');
      res.on('data', (d) => {
        buf += d;
        let k;
        while ((k = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, k);
          buf = buf.slice(k + 2);
          if (!ev.startsWith('data: ') || ev.startsWith('data: [DONE]')) continue;
          const c = JSON.parse(ev.slice(6));
          const piece = c.choices?.[0]?.text ?? c.content ?? '';
          if (piece !== '' || c.choices?.[0]?.finish_reason == null) times.push(Number(process.hrtime.bigint() - t0) / 1e9);
          text += piece;
        }
      });
      res.on('end', () => resolve({ times, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const pct = (a, p) => {
  if (!a.length) return NaN;
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))];
};

for (const C of levels.split(',').map(Number)) {
  const ttft = [], itl = [], texts = {};
  let tokens = 0;
  const t0 = Date.now();
  await Promise.all(Array.from({ length: C }, async (_, c) => {
    for (let r = 0; r < R; r++) {
      const p = (c * R + r) % prompts.length;
      const { times, text } = await stream(prompts[p]);
      texts[p] = text;
      tokens += T;  // ignore_eos: every request generates exactly T tokens
      if (times.length) ttft.push(times[0]);
      for (let i = 1; i < times.length; i++) itl.push(times[i] - times[i - 1]);
    }
  }));
  const wall = (Date.now() - t0) / 1000;
  console.log(JSON.stringify({ clients: C, requests: C * R, tokens, wall_s: wall, tokens_per_s: tokens / wall,
    ttft_p50: pct(ttft, 50), ttft_p99: pct(ttft, 99), itl_p50: pct(itl, 50), itl_p99: pct(itl, 99), texts }));
}
