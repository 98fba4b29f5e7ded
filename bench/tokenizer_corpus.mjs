// Assembles the tokenizer training corpus from real text installed by Debian and npm packages (scripts/setup.sh
// --corpus), and holds out every 25th 1 MB block of each source for measuring compression.
//   English: GCIDE (Webster 1913, dict-gcide), the Linux kernel documentation (linux-doc-6.1, RST),
//            Debian's package documentation (*.txt, *.md), fortunes
//   Chinese: classical poems (npm chinese-poetry), the kernel documentation's zh_CN translation, fortunes-zh
// Writes OUT/train_en.txt, OUT/train_zh.txt, OUT/heldout_en.txt, OUT/heldout_zh.txt.
// Usage: node bench/tokenizer_corpus.mjs OUT_DIR [ENGLISH_MB] [CHINESE_MB]
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
const enMB = Number(process.argv[3] || 60), zhMB = Number(process.argv[4] || 50);
fs.mkdirSync(out, { recursive: true });

const walk = (dir, re) => {
  const res = [];
  const go = (d) => {
    let ents = [];
    try { ents = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    ents.sort((a, b) => a.name.localeCompare(b.name));
    for (const e of ents) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) go(p); else if (e.isFile() && re.test(p)) res.push(p);
    }
  };
  go(dir);
  return res;
};
const read = (p) => { try { const b = fs.readFileSync(p); return (p.endsWith('.gz') || p.endsWith('.dz') ? zlib.gunzipSync(b) : b).toString('utf8'); } catch { return ''; } };

// Streams sources into train/held-out files, 1 MB blocks cut at newlines, every 25th block held out.
function emit(lang, sources, budgetMB) {
  const train = fs.openSync(path.join(out, `train_${lang}.txt`), 'w');
  const held = fs.openSync(path.join(out, `heldout_${lang}.txt`), 'w');
  let block = '', n = 0, total = 0;
  const budget = budgetMB * 1e6;
  const limit = lang === 'zh' ? 350_000 : 1_000_000;  // characters: about 1 MB either way
  const flush = () => {
    let cut = block.length;
    if (block.length > limit) {
      const nl = block.indexOf('\n', limit);
      if (nl >= 0) cut = nl + 1;
    }
    const buf = Buffer.from(block.slice(0, cut));
    fs.writeSync(++n % 25 === 0 ? held : train, buf);
    total += buf.length;
    block = block.slice(cut);
  };
  outer: for (const src of sources) {
    for (const text of src()) {
      block += text.endsWith('\n') ? text : text + '\n';
      while (block.length > limit) {
        flush();
        if (total >= budget) break outer;
      }
    }
  }
  while (block && total < budget) flush();
  fs.closeSync(train); fs.closeSync(held);
  console.error(`tokenizer_corpus: ${lang}: ${(total / 1e6).toFixed(1)} MB in ${n} blocks`);
}

const kdoc = '/usr/share/doc/linux-doc-6.1/Documentation';
emit('en', [
  function* () { yield read('/usr/share/dictd/gcide.dict.dz'); },
  function* () { for (const f of walk(kdoc, /\.rst\.gz$/)) if (!f.includes('/translations/')) yield read(f); },
  function* () { for (const f of walk('/usr/share/doc', /\.(txt|md)$/)) yield read(f); },
  function* () { for (const f of walk('/usr/share/games/fortunes', /\/[a-z-]+$/)) if (!/chinese|song100|tang300/.test(f)) yield read(f); },
], enMB);

const poetry = path.resolve(here, '../tests/npm/node_modules/chinese-poetry/dist');
emit('zh', [
  function* () { for (const f of walk(kdoc + '/translations/zh_CN', /\.rst\.gz$/)) yield read(f); },
  function* () { for (const f of ['chinese.u8', 'tang300.u8', 'song100.u8']) yield read('/usr/share/games/fortunes/' + f); },
  function* () {
    for (const f of walk(poetry, /\.json$/)) {
      let j;
      try { j = JSON.parse(fs.readFileSync(f, 'utf8')); } catch { continue; }
      if (!Array.isArray(j)) continue;
      let s = '';
      for (const p of j) {
        if (!p || typeof p !== 'object') continue;
        const body = p.paragraphs || p.content || p.para || [];
        s += [p.title || p.rhythmic || p.chapter || '', p.author || '', ...(Array.isArray(body) ? body : [String(body)])].join('\n') + '\n\n';
      }
      yield s;
    }
  },
], zhMB);
