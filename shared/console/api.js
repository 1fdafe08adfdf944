// Calls to the JSON API: every call carries the bearer token; an error answer becomes an
// ApiFailure with the API's stable code and message.

import { token } from './auth.js';

export class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let onUnauthorized = () => {};

/** What to do when the API says the token is no good (401). */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const bearer = token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!response.ok) {
    const error = (data && data.error) || {};
    if (response.status === 401) onUnauthorized();
    throw new ApiFailure(response.status, error.code || 'http_error', error.message || `HTTP ${response.status}`);
  }
  return { status: response.status, data };
}

/** Downloads `path` (a stored file's content) with the bearer token and saves it as
 * `filename`: a plain link would carry no token. */
export async function download(path, filename) {
  const headers = {};
  const bearer = token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const response = await fetch(path, { headers, cache: 'no-store' });
  if (!response.ok) {
    let error = {};
    try { error = (await response.json()).error || {}; } catch (_) { /* not JSON */ }
    if (response.status === 401) onUnauthorized();
    throw new ApiFailure(response.status, error.code || 'http_error', error.message || `HTTP ${response.status}`);
  }
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** `path?k=v&...` without the unset values. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') query.set(k, v);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}
