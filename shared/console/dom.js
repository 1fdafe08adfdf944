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
 * Chatwork's markup made readable as plain text: `[To:1]Name` becomes `To Name`,
 * `[info][title]T[/title]...[/info]` becomes `【T】...`, quotes become `> ` lines, other
 * tags are dropped. The result is still only text.
 */
export function readableMarkup(body) {
  let text = String(body || '');
  text = text.replace(/\[To:\d+\]/g, '→ ');
  text = text.replace(/\[rp aid=\d+ to=[\d-]+\]/g, '↩ ');
  text = text.replace(/\[title\]([\s\S]*?)\[\/title\]/g, '【$1】\n');
  text = text.replace(/\[hr\]/g, '\n────────\n');
  text = text.replace(/\[qt\]\[qtmeta[^\]]*\]([\s\S]*?)\[\/qt\]/g, (_, quoted) =>
    quoted.trim().split('\n').map((line) => `> ${line}`).join('\n') + '\n');
  text = text.replace(/\[(?:picon|piconname):\d+\]/g, '');
  text = text.replace(/\[\/?(?:info|code|qt|task|download|preview|toall)(?::[^\]]*)?(?: [^\]]*)?\]/g, '');
  return text.trim();
}
