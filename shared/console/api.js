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

/** `path?k=v&...` without the unset values. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') query.set(k, v);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}
