/*
 * api — the page's only way to talk to traind: GET and POST over fetch.
 * Writes carry the API token as "Authorization: Bearer" (never a cookie,
 * so no other site can make this browser write); the token is asked for
 * once, kept in localStorage, and asked for again after a 401.  The
 * editor's checks (POST /validate, /schedule) need none (postOpen).
 */
import {h} from './dom.js';

const TOKEN_KEY = 'traind.token';

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || ('HTTP ' + status));
    this.status = status;
    this.body = body;
  }
}

async function parse(res) {
  const type = res.headers.get('Content-Type') || '';
  if (type.includes('json')) return res.json();
  return res.text();
}

/* GET path → parsed JSON; {withHeaders: true} → {body, headers}. */
export async function get(path, opts = {}) {
  const res = await fetch(path, {headers: {Accept: 'application/json'}, cache: 'no-store'});
  const body = await parse(res);
  if (!res.ok) throw new ApiError(res.status, body);
  return opts.withHeaders ? {body, headers: res.headers} : body;
}

export function getToken() {
  try { return localStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
}

export function setToken(t) {
  localStorage.setItem(TOKEN_KEY, t);
  window.dispatchEvent(new Event('traind-token'));
}

let asking = null;

/* Shows the token dialog; resolves with the token entered (or '' on cancel). */
export function askToken(reason) {
  if (asking) return asking;
  asking = new Promise((resolve) => {
    const input = h('input', {type: 'password', id: 'token-input', autocomplete: 'off', spellcheck: 'false',
                              placeholder: 'contents of <spool>/api.token'});
    const close = (val) => {
      overlay.remove();
      asking = null;
      if (val) setToken(val);
      resolve(val);
    };
    const form = h('form', {class: 'modal', onsubmit: (e) => { e.preventDefault(); close(input.value.trim()); }},
      h('h2', null, 'API token'),
      h('p', null, reason || 'Writes (submit, cancel) need the daemon\'s API token. It is kept in this browser\'s localStorage and sent as an Authorization header.'),
      input,
      h('div', {class: 'modal-buttons'},
        h('button', {type: 'button', class: 'btn', onclick: () => close('')}, 'Cancel'),
        h('button', {type: 'submit', class: 'btn primary', id: 'token-save'}, 'Save')));
    const overlay = h('div', {class: 'overlay', id: 'token-dialog'}, form);
    document.body.appendChild(overlay);
    input.value = getToken();
    input.focus();
  });
  return asking;
}

/* POST body (string) to path with the token; asks for one when missing or
 * refused.  Resolves {status, body} for any answer the caller may want to
 * show (2xx, 400, 404, 409, 422...); throws ApiError when no token is given. */
export async function post(path, body, headers = {}) {
  for (let attempt = 0; attempt < 2; attempt++) {
    let token = getToken();
    if (!token) token = await askToken();
    if (!token) throw new ApiError(401, {error: 'no API token given'});
    const res = await fetch(path, {
      method: 'POST', body, cache: 'no-store',
      headers: Object.assign({Authorization: 'Bearer ' + token, 'Content-Type': 'application/yaml'}, headers),
    });
    const parsed = await parse(res);
    if (res.status === 401) {
      await askToken('The daemon refused the token (' + ((parsed && parsed.error) || 401) + '). Enter it again.');
      continue;
    }
    return {status: res.status, body: parsed};
  }
  throw new ApiError(401, {error: 'the API token was refused'});
}

/* POST to a route that needs no token (/validate, /schedule: they write
 * nothing): the token goes along when this browser has one (the daemon
 * then charges the request to the client's own write-rate bucket), and is
 * never asked for.  Resolves {status, body}. */
export async function postOpen(path, body) {
  const token = getToken();
  const headers = {'Content-Type': 'application/yaml'};
  if (token) headers.Authorization = 'Bearer ' + token;
  const res = await fetch(path, {method: 'POST', body, cache: 'no-store', headers});
  return {status: res.status, body: await parse(res)};
}

/* The rel="next" cursor of a Link header ("</jobs?limit=50&after=ID>; rel=\"next\""). */
export function nextAfter(headers) {
  const link = headers.get('Link');
  if (!link) return null;
  const m = /<([^>]*)>\s*;\s*rel="?next"?/.exec(link);
  if (!m) return null;
  const u = new URL(m[1], location.origin);
  return u.searchParams.get('after');
}
