// Shared by the end-to-end tests: start `llmforge serve` on a free port and stop it.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const requireNpm = createRequire(path.join(here, '..', 'npm', 'package.json'));
export const BIN = process.env.LLMFORGE_BIN || path.join(here, '..', '..', 'build', 'llmforge');

// A fresh directory under the system's temporary one, removed when the test process exits (LLMFORGE_KEEP_TMP=1 keeps
// it, to look at after a failure).
const made = [];
process.on('exit', () => {
  if (process.env.LLMFORGE_KEEP_TMP) return;
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});
export function tmpdir(name) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `llmforge-${name}-`));
  made.push(d);
  return d;
}

// A small random LLaMA-shaped model (byte-fallback vocabulary), made with `llmforge init`.
export function makeModel(dir, { preset = 'llama-tiny', seed = 1, dtype = 'f32', name = 'tiny', ctx = 0 } = {}) {
  const file = path.join(dir, `${name}.gguf`);
  execFileSync(BIN, ['init', '--preset', preset, '--seed', String(seed), '--dtype', dtype, '-c', String(ctx), '-o', file], { stdio: 'pipe' });
  return file;
}

// Starts the server; resolves with { url, port, proc, log() } once it listens.
export function startServer(args, { timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    // Under AddressSanitizer (a --sanitize build), a small quarantine keeps the resident size meaningful.
    const env = { ...process.env };
    if (env.ASAN_OPTIONS) env.ASAN_OPTIONS += ':quarantine_size_mb=8';
    const proc = spawn(BIN, ['serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let err = '';
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${err}`)), timeoutMs);
    proc.stderr.on('data', (d) => {
      err += d.toString();
      const m = err.match(/listening on http:\/\/([\d.]+):(\d+)/);
      if (m && !proc.started) {
        proc.started = true;
        clearTimeout(timer);
        resolve({ url: `http://${m[1]}:${m[2]}`, port: Number(m[2]), proc, log: () => err });
      }
    });
    proc.on('exit', (code) => {
      if (!proc.started) {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code}:\n${err}`));
      }
    });
  });
}

export function stopServer(s, signal = 'SIGTERM') {
  return new Promise((resolve) => {
    if (s.proc.exitCode !== null) return resolve(s.proc.exitCode);
    s.proc.on('exit', (code, sig) => resolve(code ?? sig));
    s.proc.kill(signal);
  });
}

// Debian's Chromium (CHROMIUM overrides the path), whether it is installed, and a headless launch of it by Playwright.
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const haveChromium = fs.existsSync(CHROMIUM);
export function launchChromium() {
  const { chromium } = requireNpm('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// Parses Prometheus text into { 'name{labels}': value }.
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}
