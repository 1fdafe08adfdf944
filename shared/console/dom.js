// Building the page's elements. Every piece of data becomes a text node (textContent);
// no HTML is ever parsed from data, so a room named `<img onerror=...>` shows as text.

/** An element: `h('button', {class: 'x', onclick: f}, 'text', child, ...)`. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      el.className = value;
    } else if (name === 'href') {
      el.setAttribute('href', safeHref(value));
    } else if (name === 'value') {
      el.value = value;
    } else if (name === 'checked' || name === 'disabled' || name === 'hidden' || name === 'selected') {
      el[name] = true;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Only our own hash routes and http(s) links: never `javascript:` or `data:`. */
export function safeHref(value) {
  const text = String(value);
  if (text.startsWith('#')) return text;
  try {
    const url = new URL(text, location.href);
    if (url.protocol === 'https:' || url.protocol === 'http:') return url.href;
  } catch (_) { /* not a URL */ }
  return '#';
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled form control: `field('Name', input)`; the label points at the control. */
let fieldCount = 0;
export function field(label, control) {
  if (!control.id) control.id = `f${++fieldCount}`;
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
}

/** A badge: kind is ok, bad, warn or info. */
export function badge(text, kind) {
  return h('span', { class: `badge ${kind || 'info'}` }, text);
}

/**
 * Chatwork's markup made readable as plain text: `[To:1]Name` becomes `→ Name`,
 * `[info][title]T[/title]...[/info]` becomes `【T】...`, quotes become `> ` lines, other
 * tags are dropped. The result is still only text.
 *
 * Each pass is a hand-written scan, linear in the text's length: a message is anyone's
 * to write, and a backtracking pattern over `[info: ` repeated takes minutes.
 */
export function readableMarkup(body) {
  let text = String(body || '');
  text = replaceTags(text, (s, i) => {
    const end = digitsThen(s, prefixEnd(s, i, '[To:'), ']');
    return end < 0 ? null : [end, '→ '];
  });
  text = replaceTags(text, (s, i) => {
    let at = digitsThen(s, prefixEnd(s, i, '[rp aid='), ' to=');
    if (at < 0) return null;
    const start = at;
    while (at < s.length && (isDigit(s, at) || s[at] === '-')) at++;
    return at > start && s[at] === ']' ? [at + 1, '↩ '] : null;
  });
  const closeTitle = nextIndex('[/title]');
  text = replaceTags(text, (s, i) => {
    const from = prefixEnd(s, i, '[title]');
    if (from < 0) return null;
    const close = closeTitle(s, from);
    return close < 0 ? null : [close + 8, `【${s.slice(from, close)}】\n`];
  });
  text = replaceTags(text, (s, i) => (s.startsWith('[hr]', i) ? [i + 4, '\n────────\n'] : null));
  const closeBracket = nextIndex(']');
  const closeQuote = nextIndex('[/qt]');
  text = replaceTags(text, (s, i) => {
    const meta = prefixEnd(s, i, '[qt][qtmeta');
    if (meta < 0) return null;
    const metaEnd = closeBracket(s, meta);
    if (metaEnd < 0) return null;
    const close = closeQuote(s, metaEnd + 1);
    if (close < 0) return null;
    const quoted = s.slice(metaEnd + 1, close).trim().split('\n').map((line) => `> ${line}`);
    return [close + 5, quoted.join('\n') + '\n'];
  });
  text = replaceTags(text, (s, i) => {
    let from = prefixEnd(s, i, '[piconname:');
    if (from < 0) from = prefixEnd(s, i, '[picon:');
    const end = digitsThen(s, from, ']');
    return end < 0 ? null : [end, ''];
  });
  const closeTag = nextIndex(']');
  text = replaceTags(text, (s, i) => {
    let at = i + 1;
    if (s[at] === '/') at++;
    const name = DROPPED.find((n) => s.startsWith(n, at));
    if (!name) return null;
    at += name.length;
    if (s[at] === ']') return [at + 1, ''];
    if (s[at] !== ':' && s[at] !== ' ') return null;
    const close = closeTag(s, at);
    return close < 0 ? null : [close + 1, ''];
  });
  return text.trim();
}

const DROPPED = ['info', 'code', 'qt', 'task', 'download', 'preview', 'toall'];

/** `text` with each tag `match(text, i)` recognises at a `[` (as `[end, replacement]`) replaced. */
function replaceTags(text, match) {
  const parts = [];
  let copied = 0;
  let at = text.indexOf('[');
  while (at >= 0) {
    const found = match(text, at);
    if (found) {
      parts.push(text.slice(copied, at), found[1]);
      copied = found[0];
      at = text.indexOf('[', copied);
    } else {
      at = text.indexOf('[', at + 1);
    }
  }
  parts.push(text.slice(copied));
  return parts.join('');
}

/**
 * `indexOf(needle, from)` for a scan whose `from` only grows: the last answer stays
 * right until `from` passes it, so the text is searched once, not once per `[`.
 */
function nextIndex(needle) {
  let found = null;
  return (text, from) => {
    if (found === null || (found >= 0 && found < from)) found = text.indexOf(needle, from);
    return found;
  };
}

/** Where `prefix` ends when the text has it at `i`, else -1. */
function prefixEnd(text, i, prefix) {
  return text.startsWith(prefix, i) ? i + prefix.length : -1;
}

/** After one or more digits from `i` and then `after`: where that ends, else -1. */
function digitsThen(text, i, after) {
  if (i < 0) return -1;
  let at = i;
  while (at < text.length && isDigit(text, at)) at++;
  return at > i && text.startsWith(after, at) ? at + after.length : -1;
}

function isDigit(text, i) {
  const c = text.charCodeAt(i);
  return c >= 48 && c <= 57;
}
