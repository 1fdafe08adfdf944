// The console's entry: signs in (fragment, OAuth return, or a pasted token), learns the
// caller's role from /api/me, draws the navigation and routes `#/<page>` addresses to the
// pages. Each page may return a cleanup (its polling timer), run when the page is left.

import { api, whenUnauthorized } from './api.js';
import * as auth from './auth.js';
import { h, fill, field } from './dom.js';
import { t, setLang, currentLang } from './i18n.js';
import { pages, OAUTH_RETURN } from './pages.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const noticeBox = document.getElementById('notice');
const langSwitch = document.getElementById('lang-switch');
const signOutButton = document.getElementById('sign-out');
const who = document.getElementById('who');

let config = { oauth: null };
let me = null;
let cleanup = null;
let noticeTimer = null;

/** Shows a short message at the top; `bad` for failures. */
function notify(text, bad) {
  clearTimeout(noticeTimer);
  fill(noticeBox, h('div', { class: bad ? 'bad' : 'ok', 'data-notice': bad ? 'bad' : 'ok' }, text));
  noticeTimer = setTimeout(() => noticeBox.replaceChildren(), 8000);
}

function fail(error) {
  notify(t('error.generic', error.message, error.code || error.name || 'error'), true);
}

const SECTIONS = [
  { path: 'sync', label: 'nav.sync', roles: ['admin', 'writer', 'reader'] },
  { path: 'status', label: 'nav.status', roles: ['admin'] },
  { path: 'connections', label: 'nav.connections', roles: ['admin'] },
  { path: 'rooms', label: 'nav.rooms', roles: ['admin'] },
  { path: 'room', roles: ['admin', 'writer', 'reader'], hidden: true },
  { path: 'companies', label: 'nav.companies', roles: ['admin', 'writer', 'reader'] },
  { path: 'jobs', label: 'nav.jobs', roles: ['admin', 'writer', 'reader'] },
  { path: 'schedules', label: 'nav.schedules', roles: ['admin'] },
];

function drawChrome() {
  document.documentElement.lang = currentLang();
  langSwitch.value = currentLang();
  document.getElementById('lang-label').textContent = t('language');
  document.getElementById('skip-link').textContent = t('skip');
  signOutButton.textContent = t('signout');
  signOutButton.hidden = !me;
  who.textContent = me ? t('who', me.userId, t(`role.${me.role}`)) : '';
  const current = location.hash.replace(/^#\/?/, '').split('/')[0] || 'sync';
  fill(nav, me ? SECTIONS.filter((s) => !s.hidden && s.roles.includes(me.role)).map((s) =>
    h('a', { href: `#/${s.path}`, 'aria-current': s.path === current ? 'page' : null, id: `nav-${s.path}` }, t(s.label))) : []);
}

function signInPage() {
  const input = h('input', { type: 'password', autocomplete: 'off', id: 'token-input', size: 40 });
  const form = h('form', {
    class: 'card',
    onsubmit: async (event) => {
      event.preventDefault();
      if (!input.value.trim()) return;
      auth.setToken(input.value);
      await start();
    },
  },
  h('h2', {}, t('signin.paste')),
  h('div', { class: 'row' }, field(t('signin.token'), input), h('button', { type: 'submit', id: 'token-submit' }, t('signin.use'))),
  h('p', { class: 'muted' }, t('signin.hint')));
  const oauth = config.oauth ? h('div', { class: 'card' },
    h('button', { type: 'button', id: 'oauth-sign-in', onclick: () => auth.beginOAuth(config.oauth).catch(fail) }, t('signin.oauth'))) : null;
  fill(main, h('h1', {}, t('signin.title')), oauth, form);
}

async function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  drawChrome();
  if (!me) { signInPage(); return; }
  const parts = location.hash.replace(/^#\/?/, '').split('?')[0].split('/').map(decodeURIComponent);
  const [page, rawId] = parts;
  const id = rawId && rawId.split('?')[0];
  const allowed = SECTIONS.find((s) => s.path === (page || 'sync'));
  const ctx = { me, main, notify, fail, go: (hash) => { location.hash = hash; } };
  const render = pages[page || 'sync'];
  if (!render || (allowed && !allowed.roles.includes(me.role))) {
    location.hash = '#/sync';
    return;
  }
  fill(main, h('p', { class: 'muted' }, t('loading')));
  try {
    cleanup = (await render(ctx, id)) || null;
  } catch (error) {
    fail(error);
  }
  main.focus({ preventScroll: true });
}

async function start() {
  me = null;
  if (auth.token()) {
    try {
      me = (await api('GET', '/api/me')).data;
    } catch (error) {
      auth.signOut();
      fail(error);
    }
  }
  await route();
}

/** Chatwork sent the browser back from its consent page (`/oauth/chatwork?code&state`):
 * keep what it said for the Connections page, and go there. */
function takeChatworkReturn() {
  if (location.pathname !== '/oauth/chatwork') return;
  const query = new URLSearchParams(location.search);
  const said = { state: query.get('state') || '' };
  if (query.get('code')) said.code = query.get('code');
  if (query.get('error')) said.error = query.get('error');
  sessionStorage.setItem(OAUTH_RETURN, JSON.stringify(said));
  history.replaceState(null, '', '/#/connections');
}

async function boot() {
  takeChatworkReturn();
  setLang(currentLang());
  langSwitch.addEventListener('change', () => { setLang(langSwitch.value); noticeBox.replaceChildren(); route(); });
  signOutButton.addEventListener('click', () => { auth.signOut(); me = null; route(); });
  window.addEventListener('hashchange', () => {
    // A console address with a token opened in a tab that is already open.
    if (auth.takeFragmentToken()) start(); else route();
  });
  whenUnauthorized(() => {
    if (!me) return;
    auth.signOut();
    me = null;
    notify(t('signin.expired'), true);
    route();
  });
  auth.takeFragmentToken();
  try {
    config = (await api('GET', '/api/console/config')).data;
  } catch (error) {
    fail(error);
  }
  try {
    await auth.completeOAuth(config.oauth);
  } catch (error) {
    notify(t('signin.failed', error.message), true);
  }
  await start();
}

boot();
