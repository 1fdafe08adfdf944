// Signing in. The token lives in sessionStorage only (gone with the tab), and never in a
// URL sent to a server: the local runner hands it over in the fragment (`#token=...`),
// which browsers do not send, and the page removes it from the address bar at once.
// With an identity provider configured, OAuth 2.0 authorization code with PKCE (S256):
// the code that comes back in the query is worth nothing without the verifier that
// stayed in this tab.

const TOKEN_KEY = 'cwsync.token';
const PKCE_KEY = 'cwsync.pkce';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value.trim());
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** Takes a token from `#token=...` and clears it from the address bar. */
export function takeFragmentToken() {
  const hash = location.hash.slice(1);
  if (!hash.startsWith('token=')) return false;
  const params = new URLSearchParams(hash);
  const value = params.get('token');
  history.replaceState(null, '', location.pathname + '#/sync');
  if (value) {
    setToken(value);
    return true;
  }
  return false;
}

function base64url(bytes) {
  let text = '';
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString() {
  const bytes = new Uint8Array(32);
  crypto.getRandomValues(bytes);
  return base64url(bytes);
}

async function endpoints(oauth) {
  if (oauth.authorizationEndpoint && oauth.tokenEndpoint) {
    return { authorize: oauth.authorizationEndpoint, token: oauth.tokenEndpoint };
  }
  const response = await fetch(`${oauth.issuer}/.well-known/openid-configuration`);
  if (!response.ok) throw new Error(`discovery answered ${response.status}`);
  const doc = await response.json();
  return {
    authorize: oauth.authorizationEndpoint || doc.authorization_endpoint,
    token: oauth.tokenEndpoint || doc.token_endpoint,
  };
}

function redirectUri() {
  return `${location.origin}/`;
}

/** Sends the browser to the identity provider. */
export async function beginOAuth(oauth) {
  const { authorize } = await endpoints(oauth);
  const verifier = randomString();
  const state = randomString();
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state }));
  const url = new URL(authorize);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('client_id', oauth.clientId);
  url.searchParams.set('redirect_uri', redirectUri());
  url.searchParams.set('scope', oauth.scopes);
  url.searchParams.set('state', state);
  url.searchParams.set('code_challenge', base64url(digest));
  url.searchParams.set('code_challenge_method', 'S256');
  location.assign(url.href);
}

/**
 * Finishes a sign-in when the provider sent the browser back with `?code=&state=`:
 * exchanges the code for tokens and clears the query. `false` when there was none.
 */
export async function completeOAuth(oauth) {
  const query = new URLSearchParams(location.search);
  const code = query.get('code');
  const error = query.get('error');
  if (!code && !error) return false;
  history.replaceState(null, '', location.pathname + '#/sync');
  const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || 'null');
  sessionStorage.removeItem(PKCE_KEY);
  if (error) throw new Error(error);
  if (!oauth || !saved || saved.state !== query.get('state')) {
    throw new Error('the sign-in answer does not match this tab');
  }
  const { token: tokenUrl } = await endpoints(oauth);
  const response = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri(),
      client_id: oauth.clientId,
      code_verifier: saved.verifier,
    }),
  });
  if (!response.ok) throw new Error(`the token endpoint answered ${response.status}`);
  const tokens = await response.json();
  const value = tokens.access_token || tokens.id_token;
  if (!value) throw new Error('the token endpoint sent no token');
  setToken(value);
  return true;
}
