// Shared by the chat (/) and the arena (/arena): the API key, the two languages, Markdown rendered safely, and a
// reader for server-sent events. No framework; the only libraries are marked, DOMPurify and KaTeX (Debian's
// packages, embedded in the llmforge binary and served from /vendor/).
'use strict';

// ---- the API key (when the server wants one): kept by the 401 page's form in localStorage
function apiHeaders() {
  const h = { 'Content-Type': 'application/json' };
  const k = localStorage.getItem('llmforge_key');
  if (k) h.Authorization = 'Bearer ' + k;
  return h;
}

// ---- English and Chinese
const STRINGS = {
  en: {
    chat: 'Chat', arena: 'Arena', model: 'Model', settings: 'Settings', system: 'System prompt',
    systemPh: 'You are a helpful assistant.', temperature: 'Temperature', topP: 'Top-p', maxTokens: 'Max tokens',
    seed: 'Seed', seedPh: 'random', newChat: 'New chat', send: 'Send', stop: 'Stop', inputPh: 'Message llmforge… (Enter sends, Shift+Enter: new line)',
    you: 'You', assistant: 'Assistant', stopped: 'stopped', error: 'Error', tokens: 'tokens', copy: 'Copy', copied: 'Copied',
    arenaIntro: 'Ask one question. Two anonymous models answer side by side; vote for the better answer, then see who they were.',
    arenaPh: 'Your question for both models…', battle: 'Ask both', modelA: 'Model A', modelB: 'Model B',
    aBetter: 'A is better', bBetter: 'B is better', tie: 'Tie', bothBad: 'Both are bad', thanks: 'Thank you! A was {a}, B was {b}.',
    leaderboard: 'Leaderboard', rank: 'Rank', rating: 'Rating', interval: '95% interval', battles: 'Battles', wins: 'Wins',
    losses: 'Losses', ties: 'Ties', votes: '{n} votes', noVotes: 'No votes yet.', arenaOff: 'The arena needs two or more models (llmforge serve -m A -m B).',
    incomplete: 'An answer did not finish: this battle cannot be voted on.',
    dropped: '{n} earlier messages were left out: they no longer fit in the model\'s context ({ctx} tokens).',
    droppedTitle: 'No longer sent to the model: the context is full',
    clamped: 'Max tokens {want} → {got}: the model\'s context is {ctx} tokens and the conversation uses {used}.',
    tooLong: 'This message is {n} tokens with the chat template, more than the model\'s context of {ctx} tokens.',
    vote: '{n} vote', tooFewVotes: 'Too few votes for an interval yet',
    useDocs: 'Use documents', useDocsTitle: 'Answer from the server\'s document index ({name}: {n} passages), citing the sources',
    sources: 'Sources', noSources: 'No passage of the documents is relevant to this question, so there is nothing to answer from.',
    notCited: 'not cited',
  },
  zh: {
    chat: '聊天', arena: '竞技场', model: '模型', settings: '设置', system: '系统提示词',
    systemPh: '你是一个乐于助人的助手。', temperature: '温度', topP: 'Top-p', maxTokens: '最大令牌数',
    seed: '随机种子', seedPh: '随机', newChat: '新对话', send: '发送', stop: '停止', inputPh: '给 llmforge 发消息…（回车发送，Shift+回车换行）',
    you: '你', assistant: '助手', stopped: '已停止', error: '错误', tokens: '个令牌', copy: '复制', copied: '已复制',
    arenaIntro: '提一个问题，两个匿名模型并排回答；投票选出更好的回答，然后揭晓它们是谁。',
    arenaPh: '给两个模型的问题…', battle: '同时提问', modelA: '模型 A', modelB: '模型 B',
    aBetter: 'A 更好', bBetter: 'B 更好', tie: '平局', bothBad: '都不好', thanks: '谢谢！A 是 {a}，B 是 {b}。',
    leaderboard: '排行榜', rank: '名次', rating: '评分', interval: '95% 区间', battles: '对战', wins: '胜',
    losses: '负', ties: '平', votes: '共 {n} 票', noVotes: '还没有投票。', arenaOff: '竞技场需要两个或更多模型（llmforge serve -m A -m B）。',
    incomplete: '有一个回答没有完成：这场对战不能投票。',
    dropped: '较早的 {n} 条消息没有发送：它们已放不进模型的上下文（{ctx} 个令牌）。',
    droppedTitle: '不再发送给模型：上下文已满',
    clamped: '最大令牌数 {want} → {got}：模型的上下文为 {ctx} 个令牌，对话已占用 {used} 个。',
    tooLong: '这条消息连同聊天模板共 {n} 个令牌，超过了模型的上下文（{ctx} 个令牌）。',
    vote: '共 {n} 票', tooFewVotes: '票数太少，还算不出区间',
    useDocs: '使用文档', useDocsTitle: '根据服务器的文档索引（{name}：{n} 个段落）回答，并注明出处',
    sources: '来源', noSources: '文档中没有与这个问题相关的段落，无从回答。',
    notCited: '未引用',
  },
};
let LANG = localStorage.getItem('llmforge_lang') || ((navigator.language || '').startsWith('zh') ? 'zh' : 'en');
function t(key, vars) {
  let s = (STRINGS[LANG] && STRINGS[LANG][key]) || STRINGS.en[key] || key;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.replace('{' + k + '}', v);
  return s;
}
function applyLanguage() {
  document.documentElement.lang = LANG === 'zh' ? 'zh-CN' : 'en';
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-ph]')) el.placeholder = t(el.dataset.i18nPh);
  const b = document.getElementById('lang');
  if (b) b.textContent = LANG === 'zh' ? 'English' : '中文';
}
function setupLanguage(onChange) {
  applyLanguage();
  const b = document.getElementById('lang');
  if (b) b.addEventListener('click', () => {
    LANG = LANG === 'zh' ? 'en' : 'zh';
    localStorage.setItem('llmforge_lang', LANG);
    applyLanguage();
    if (onChange) onChange();
  });
}

// ---- Markdown, safely: raw HTML in the text is shown as text, math goes through KaTeX (which never emits script),
// and the whole result through DOMPurify. Code spans and blocks keep their dollar signs.
function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}
let mdRenderer = null;
function renderMath(tex, display) {
  if (!window.katex) return '<code>' + escapeHtml(tex) + '</code>';
  return window.katex.renderToString(tex, { displayMode: display, throwOnError: false, trust: false, output: 'htmlAndMathml' });
}
function extractMath(text, maths) {
  const put = (html) => '@@MATH' + (maths.push(html) - 1) + '@@';
  return text
    .replace(/\$\$([\s\S]+?)\$\$/g, (_, m) => put(renderMath(m, true)))
    .replace(/\\\[([\s\S]+?)\\\]/g, (_, m) => put(renderMath(m, true)))
    .replace(/\\\(([\s\S]+?)\\\)/g, (_, m) => put(renderMath(m, false)))
    .replace(/\$(?![\s$])([^$\n]+?)(?<![\s\\])\$(?!\d)/g, (_, m) => put(renderMath(m, false)));
}
function renderMarkdown(src) {
  if (!window.marked || !window.DOMPurify) return '<p>' + escapeHtml(src).replace(/\n/g, '<br>') + '</p>';
  if (!mdRenderer) {
    mdRenderer = new window.marked.Renderer();
    mdRenderer.html = (html) => escapeHtml(typeof html === 'string' ? html : html.text || '');
    // links only to the web or this page; no images (a model's answer must not make the browser fetch a URL)
    const link = mdRenderer.link.bind(mdRenderer);
    mdRenderer.link = (href, title, text) => (/^(https?:|mailto:|#)/i.test(href || '') ? link(href, title, text) : text);
    mdRenderer.image = (href, title, text) => escapeHtml(text || '');
  }
  const maths = [];
  // code (fenced, possibly still open while streaming, or inline) is left alone; math is taken out of the rest
  const parts = src.split(/(```[\s\S]*?(?:```|$)|~~~[\s\S]*?(?:~~~|$)|`[^`\n]+`)/g);
  const text = parts.map((p, i) => (i % 2 ? p : extractMath(p, maths))).join('');
  let html = window.marked.parse(text, { gfm: true, breaks: true, mangle: false, headerIds: false, renderer: mdRenderer });
  html = html.replace(/@@MATH(\d+)@@/g, (_, i) => maths[Number(i)] || '');
  return window.DOMPurify.sanitize(html, { FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'iframe'] });
}
// Renders into an element and adds a copy button to each code block.
function renderInto(el, src) {
  el.innerHTML = renderMarkdown(src);
  for (const pre of el.querySelectorAll('pre')) {
    const b = document.createElement('button');
    b.className = 'copy';
    b.type = 'button';
    b.textContent = t('copy');
    b.addEventListener('click', () => {
      const code = pre.querySelector('code');
      navigator.clipboard && navigator.clipboard.writeText(code ? code.textContent : pre.textContent);
      b.textContent = t('copied');
    });
    pre.appendChild(b);
  }
}

// ---- server-sent events from a fetch() response: yields each "data:" payload parsed (stops at [DONE])
async function* readEvents(response) {
  const reader = response.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      for (const line of block.split('\n')) {
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') return;
        try { yield JSON.parse(data); } catch (e) { /* not JSON: skip */ }
      }
    }
  }
}

// The message of an error answer (OpenAI's shape) or of a failed fetch.
async function errorMessage(response) {
  try {
    const j = await response.json();
    return (j.error && j.error.message) || response.statusText;
  } catch (e) {
    return response.status + ' ' + response.statusText;
  }
}
