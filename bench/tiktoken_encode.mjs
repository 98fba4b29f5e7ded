// The anchor side of bench_tokenizer.sh: npm tiktoken (Rust compiled to WASM) encoding a file with cl100k_base,
// in 1 thread, or in N worker threads each encoding one part (split at newlines exactly as `llmforge tokenize
// --count -t N` does). Prints {"tokens", "bytes", "seconds", "mb_per_s"}; timing excludes loading.
// Usage: node bench/tiktoken_encode.mjs FILE THREADS
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.resolve(here, '../tests/npm/package.json'));

if (isMainThread) {
  const [file, threadsArg] = process.argv.slice(2);
  const threads = Number(threadsArg || 1);
  const buf = fs.readFileSync(file);
  // split at the first newline at or after k/n of the bytes, like llmforge's split_parts
  const parts = [];
  let start = 0;
  for (let k = 1; k < threads && start < buf.length; ++k) {
    let cut = Math.max(start, Math.floor(buf.length * k / threads));
    cut = buf.indexOf(10, cut);
    if (cut < 0) break;
    parts.push(buf.subarray(start, cut + 1).toString('utf8'));
    start = cut + 1;
  }
  parts.push(buf.subarray(start).toString('utf8'));
  const workers = parts.map((text) => new Worker(fileURLToPath(import.meta.url), { workerData: { text } }));
  let ready = 0, done = 0, tokens = 0, t0 = 0;
  for (const w of workers) {
    w.on('message', (m) => {
      if (m.ready && ++ready === workers.length) { t0 = performance.now(); for (const x of workers) x.postMessage('go'); }
      if (m.tokens !== undefined) {
        tokens += m.tokens;
        if (++done === workers.length) {
          const s = (performance.now() - t0) / 1000;
          console.log(JSON.stringify({ tokens, bytes: buf.length, parts: parts.length, threads, seconds: s, mb_per_s: buf.length / 1e6 / s }));
          for (const x of workers) x.terminate();
        }
      }
    });
  }
} else {
  const { get_encoding } = require('tiktoken');
  const enc = get_encoding('cl100k_base');
  enc.encode_ordinary('warm up the encoder once');
  parentPort.postMessage({ ready: true });
  parentPort.once('message', () => {
    const ids = enc.encode_ordinary(workerData.text);
    parentPort.postMessage({ tokens: ids.length });
  });
}
