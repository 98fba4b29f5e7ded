// The arena page: one prompt, two anonymous answers streamed side by side (/arena/api/battle), a vote
// (/arena/api/vote), and the Bradley–Terry leaderboard (/arena/api/leaderboard).
'use strict';

const $ = (id) => document.getElementById(id);
let battle = null;
let board = null;

function drawBoard() {
  const tbody = $('leaderboard').querySelector('tbody');
  tbody.innerHTML = '';
  if (!board) return;
  board.models.forEach((m, i) => {
    const tr = document.createElement('tr');
    // a bootstrap over one or two battles resamples the same votes: its "interval" has no width and means nothing
    const known = m.battles >= 2 && m.ci_high - m.ci_low >= 1;
    const cells = [i + 1, m.model, m.rating.toFixed(0), known ? `${m.ci_low.toFixed(0)} – ${m.ci_high.toFixed(0)}` : '—', m.battles, m.wins, m.losses, m.ties];
    cells.forEach((c, k) => {
      const td = document.createElement('td');
      td.textContent = String(c);
      if (k === 3 && !known) td.title = t('tooFewVotes');
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
  });
  $('vote-count').textContent = board.votes ? t(board.votes === 1 ? 'vote' : 'votes', { n: board.votes }) : t('noVotes');
  $('vote-count').dataset.votes = String(board.votes);
}

async function loadBoard() {
  const r = await fetch('/arena/api/leaderboard', { headers: apiHeaders() });
  if (!r.ok) {
    $('vote-count').textContent = r.status === 404 ? t('arenaOff') : await errorMessage(r);
    return;
  }
  board = await r.json();
  if (board.served && board.served.length < 2) $('vote-count').textContent = t('arenaOff');
  drawBoard();
}

async function ask(prompt) {
  battle = null;
  $('votes').hidden = true;
  $('reveal').textContent = '';
  $('battle').disabled = true;
  const text = { a: '', b: '' };
  const el = { a: $('side-a').querySelector('.content'), b: $('side-b').querySelector('.content') };
  for (const s of ['a', 'b']) { el[s].innerHTML = ''; el[s].classList.add('cursor'); $('side-' + s).dataset.state = 'streaming'; }
  let pending = false;
  const draw = () => { pending = false; renderInto(el.a, text.a); renderInto(el.b, text.b); };
  try {
    const r = await fetch('/arena/api/battle', { method: 'POST', headers: apiHeaders(), body: JSON.stringify({ prompt }) });
    if (!r.ok) throw new Error(await errorMessage(r));
    let id = null, complete = false;
    for await (const ev of readEvents(r)) {
      if (ev.type === 'battle') id = ev.battle;
      else if (ev.type === 'token') {
        text[ev.side] += ev.text;
        if (!pending) { pending = true; requestAnimationFrame(draw); }
      } else if (ev.type === 'error') throw new Error(ev.message);
      else if (ev.type === 'done') complete = ev.complete;
    }
    draw();
    if (!complete) throw new Error(t('incomplete'));
    battle = id;
    $('votes').hidden = false;
  } catch (e) {
    draw();
    $('reveal').textContent = t('error') + ': ' + e.message;
  } finally {
    for (const s of ['a', 'b']) { el[s].classList.remove('cursor'); $('side-' + s).dataset.state = 'done'; }
    $('battle').disabled = false;
  }
}

async function vote(winner) {
  if (!battle) return;
  const id = battle;
  battle = null;
  $('votes').hidden = true;
  const r = await fetch('/arena/api/vote', { method: 'POST', headers: apiHeaders(), body: JSON.stringify({ battle: id, winner }) });
  if (!r.ok) {
    $('reveal').textContent = t('error') + ': ' + await errorMessage(r);
    return;
  }
  const j = await r.json();
  $('reveal').textContent = t('thanks', { a: j.model_a, b: j.model_b });
  await loadBoard();
}

document.addEventListener('DOMContentLoaded', () => {
  setupLanguage(drawBoard);
  $('arena-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const p = $('arena-prompt').value;
    if (p.trim()) ask(p);
  });
  $('arena-prompt').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); $('arena-form').requestSubmit(); }
  });
  for (const b of $('votes').querySelectorAll('button')) b.addEventListener('click', () => vote(b.dataset.winner));
  loadBoard();
});
