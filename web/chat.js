// The chat page: multi-turn conversation with one model, streamed through /v1/chat/completions.
'use strict';

const $ = (id) => document.getElementById(id);
const turns = [];      // {role, content, div} of the finished turns
let keptFrom = 0;      // turns before this index no longer fit in the model's context: they are not sent any more
let controller = null;   // the running request's AbortController
let docsInfo = null;     // the server's document index (GET /v1/retrieve), when it has one

// The server's document index, if it serves one: the "use documents" switch appears.
async function loadDocs() {
  try {
    const r = await fetch('/v1/retrieve', { headers: apiHeaders() });
    if (!r.ok) return;
    const info = await r.json();
    if (!info.available) return;
    docsInfo = info;
    $('docs-row').hidden = false;
    $('docs-row').title = t('useDocsTitle', { name: docsInfo.name, n: docsInfo.chunks });
  } catch (e) { /* no index: no switch */ }
}

// Citation marks "[n]", "[n, m]" in the rendered answer become links to the sources (outside code); returns the
// numbers cited.
function linkCitations(el, sources, box) {
  const cited = new Set();
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  const nodes = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) if (!n.parentElement.closest('code, pre, a')) nodes.push(n);
  const re = /\[(\d+(?:\s*,\s*\d+)*)\]/g;
  for (const node of nodes) {
    const text = node.nodeValue;
    if (!re.test(text)) continue;
    re.lastIndex = 0;
    const frag = document.createDocumentFragment();
    let at = 0;
    for (const m of text.matchAll(re)) {
      const nums = m[1].split(',').map((x) => parseInt(x, 10)).filter((k) => k >= 1 && k <= sources.length);
      if (!nums.length) continue;
      frag.append(text.slice(at, m.index));
      for (const k of nums) {
        cited.add(k);
        const a = document.createElement('a');
        a.className = 'cite';
        a.href = '#';
        a.dataset.n = String(k);
        a.textContent = '[' + k + ']';
        a.addEventListener('click', (e) => {
          e.preventDefault();
          const s = box.querySelector(`.source[data-n="${k}"]`);
          for (const o of box.querySelectorAll('.source.highlight')) o.classList.remove('highlight');
          s.classList.add('highlight');
          s.querySelector('.text').hidden = false;
          s.scrollIntoView({ block: 'nearest' });
        });
        frag.append(a);
      }
      at = m.index + m[0].length;
    }
    frag.append(text.slice(at));
    node.replaceWith(frag);
  }
  return cited;
}

// The sources under an answer: number, where it is from, a snippet; the whole passage when its citation is clicked.
// Everything is set as text: a passage's markup is shown, never run.
function renderSources(box, sources, cited) {
  box.innerHTML = '';
  const h = document.createElement('strong');
  h.textContent = t('sources');
  box.append(h);
  for (const s of sources) {
    const d = document.createElement('div');
    d.className = 'source' + (cited.has(s.n) ? ' cited' : ' uncited');
    d.dataset.n = String(s.n);
    const head = document.createElement('div');
    head.textContent = `[${s.n}] ${s.label}` + (cited.has(s.n) ? '' : ` (${t('notCited')})`);
    const where = document.createElement('div');
    where.className = 'where';
    where.textContent = s.source;
    const snip = document.createElement('div');
    snip.className = 'snippet';
    snip.textContent = s.snippet;
    const full = document.createElement('div');
    full.className = 'text';
    full.hidden = true;
    full.textContent = s.text;
    d.append(head, where, snip, full);
    box.append(d);
  }
}

function addMessage(role, text) {
  const div = document.createElement('div');
  div.className = 'msg ' + role;
  div.dataset.role = role;
  const who = document.createElement('div');
  who.className = 'who';
  who.dataset.i18n = role === 'user' ? 'you' : 'assistant';
  who.textContent = t(who.dataset.i18n);
  const content = document.createElement('div');
  content.className = 'content';
  const note = document.createElement('div');
  note.className = 'note';
  note.hidden = true;
  const meta = document.createElement('div');
  meta.className = 'meta';
  div.append(who, content, note, meta);
  $('messages').appendChild(div);
  if (role === 'user') renderInto(content, text);
  div.scrollIntoView({ block: 'end' });
  return div;
}

function setBusy(busy) {
  $('send').hidden = busy;
  $('stop').hidden = !busy;
  $('input').disabled = false;
}

async function loadModels() {
  try {
    const r = await fetch('/v1/models', { headers: apiHeaders() });
    if (!r.ok) throw new Error(await errorMessage(r));
    const j = await r.json();
    const sel = $('model');
    sel.innerHTML = '';
    for (const m of j.data) {
      const o = document.createElement('option');
      o.value = o.textContent = m.id;
      sel.appendChild(o);
    }
  } catch (e) {
    const div = addMessage('assistant', '');
    div.classList.add('error');
    div.querySelector('.content').textContent = t('error') + ': ' + e.message;
  }
}

// Fits the conversation into the model's context, as the command-line chat does: counts its tokens with the server's
// template (POST /tokenize), leaves out the oldest exchanges while the prompt and room for an answer do not fit, and
// clamps max tokens to what the context leaves. Returns the messages to send, max_tokens and what it changed.
async function fitContext(model, sys, user, wantMax, signal) {
  let first = keptFrom;
  for (;;) {
    const messages = [];
    if (sys) messages.push({ role: 'system', content: sys });
    for (const m of turns.slice(first)) messages.push({ role: m.role, content: m.content });
    messages.push(user);
    const r = await fetch('/tokenize', { method: 'POST', headers: apiHeaders(), body: JSON.stringify({ model, messages }), signal });
    if (!r.ok) throw new Error(await errorMessage(r));
    const { count, max_model_len: ctx } = await r.json();
    const reserve = wantMax > 0 ? Math.min(wantMax, Math.floor(ctx / 2)) : Math.min(Math.floor(ctx / 4), 256);
    if (count + reserve <= ctx || (first >= turns.length && count < ctx)) {
      const room = ctx - count;
      return { messages, maxTokens: wantMax > 0 ? Math.min(wantMax, room) : room, first, count, ctx };
    }
    if (first >= turns.length) throw new Error(t('tooLong', { n: count, ctx }));
    first += 2;  // the oldest exchange: a user turn and its answer
  }
}

async function send(text) {
  const user = { role: 'user', content: text };
  const userDiv = addMessage('user', text);
  const div = addMessage('assistant', '');
  const content = div.querySelector('.content');
  const note = div.querySelector('.note');
  const useDocs = docsInfo && $('use-docs').checked;
  let sources = [];
  let sent = user;                          // what the model gets: the question, or the sources and the question
  let sys = $('system').value.trim();
  const box = document.createElement('div');
  box.className = 'sources';
  box.hidden = true;
  div.insertBefore(box, div.querySelector('.meta'));
  div.dataset.state = 'streaming';
  content.classList.add('cursor');
  const model = $('model').value;
  const wantMax = parseInt($('max-tokens').value, 10);

  controller = new AbortController();
  setBusy(true);
  let answer = '', finish = null, usage = null, pending = false, tokens = 0;
  const t0 = performance.now();
  let tFirst = 0;
  const draw = () => {
    pending = false;
    renderInto(content, answer);
    if (sources.length) renderSources(box, sources, linkCitations(content, sources, box));
    div.scrollIntoView({ block: 'end' });
  };
  try {
    if (useDocs) {
      const rr = await fetch('/v1/retrieve', { method: 'POST', headers: apiHeaders(), body: JSON.stringify({ query: text }), signal: controller.signal });
      if (!rr.ok) throw new Error(await errorMessage(rr));
      const found = await rr.json();
      sources = found.data.filter((d) => d.relevant);
      if (!sources.length) {  // nothing to answer from: say so instead of answering
        div.dataset.state = 'done';
        div.dataset.sources = '0';
        content.textContent = t('noSources');
        return;
      }
      div.dataset.sources = String(sources.length);
      box.hidden = false;
      sent = { role: 'user', content: found.prompt };
      if (!sys) sys = found.system;
    }
    const fit = await fitContext(model, sys, sent, wantMax, controller.signal);
    const notes = [];
    if (fit.first > keptFrom) {
      for (const m of turns.slice(keptFrom, fit.first)) { m.div.classList.add('dropped'); m.div.title = t('droppedTitle'); }
      notes.push(t('dropped', { n: fit.first - keptFrom, ctx: fit.ctx }));
      keptFrom = fit.first;
    }
    if (wantMax > 0 && fit.maxTokens < wantMax) notes.push(t('clamped', { want: wantMax, got: fit.maxTokens, ctx: fit.ctx, used: fit.count }));
    if (notes.length) { note.textContent = notes.join(' '); note.hidden = false; }
    div.dataset.maxTokens = String(fit.maxTokens);
    const body = {
      model, messages: fit.messages, stream: true, stream_options: { include_usage: true },
      temperature: Number($('temperature').value), top_p: Number($('top-p').value), max_tokens: fit.maxTokens,
    };
    const seed = $('seed').value.trim();
    if (seed !== '') body.seed = parseInt(seed, 10);
    const r = await fetch('/v1/chat/completions', { method: 'POST', headers: apiHeaders(), body: JSON.stringify(body), signal: controller.signal });
    if (!r.ok) throw new Error(await errorMessage(r));
    for await (const ev of readEvents(r)) {
      if (ev.error) throw new Error(ev.error.message);
      if (ev.usage) usage = ev.usage;
      for (const c of ev.choices || []) {
        if (c.delta && c.delta.content) {
          if (!tFirst) tFirst = performance.now();
          answer += c.delta.content;
          ++tokens;
          div.dataset.chunks = String(tokens);
          if (!pending) { pending = true; requestAnimationFrame(draw); }
        }
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    draw();
    div.dataset.state = 'done';
    turns.push({ ...user, div: userDiv }, { role: 'assistant', content: answer, div });
    const n = usage ? usage.completion_tokens : tokens;
    const secs = (performance.now() - (tFirst || t0)) / 1000;
    div.querySelector('.meta').textContent = `${n} ${t('tokens')} · ${(n / Math.max(secs, 1e-3)).toFixed(1)} tok/s · ${finish || ''}`;
  } catch (e) {
    draw();
    if (e.name === 'AbortError') {
      div.dataset.state = 'stopped';
      div.querySelector('.meta').textContent = t('stopped');
      if (answer) turns.push({ ...user, div: userDiv }, { role: 'assistant', content: answer, div });
    } else {
      div.dataset.state = 'error';
      div.classList.add('error');
      const err = document.createElement('p');
      err.textContent = t('error') + ': ' + e.message;
      content.appendChild(err);
    }
  } finally {
    content.classList.remove('cursor');
    controller = null;
    setBusy(false);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  setupLanguage();
  for (const [id, out] of [['temperature', 'temperature-v'], ['top-p', 'top-p-v']]) {
    $(id).addEventListener('input', () => { $(out).textContent = $(id).value; });
  }
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('input').value;
    if (!text.trim() || controller) return;
    $('input').value = '';
    send(text);
  });
  $('input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $('composer').requestSubmit();
    }
  });
  $('stop').addEventListener('click', () => { if (controller) controller.abort(); });
  $('new-chat').addEventListener('click', () => {
    if (controller) controller.abort();
    turns.length = 0;
    keptFrom = 0;
    $('messages').innerHTML = '';
  });
  loadModels();
  loadDocs();
});
