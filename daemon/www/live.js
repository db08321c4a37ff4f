/*
 * live — the page's one Server-Sent Events stream (GET /events, ?job=ID for
 * the Job view).  Views subscribe to 'job', 'point', 'experiment' and
 * 'reset' events; a reset (the daemon restarted, or our last event id fell
 * out of its ring) tells them to refetch what they show.  The browser's
 * EventSource reconnects by itself sending Last-Event-ID; when it gives up
 * (closed), or when reconnect() is called, a new stream is opened with
 * ?last_event_id= so the daemon replays what was missed.
 *
 * A page that holds the API token reads the stream with fetch() instead,
 * sending the token as "Authorization: Bearer" (EventSource cannot send a
 * header): the daemon then never lets a token-less stream hold this page's
 * slot (traind(8), GET /events).  That stream reconnects the same way: when
 * it ends, a new one resumes with ?last_event_id=.
 */
import {getToken} from './api.js';

const listeners = new Set();
let es = null;
let filterJob = null;
let lastId = '';
let retryTimer = null;
let statusCb = () => {};
let stats = {opened: 0, events: 0, resets: 0};
let helloWaiters = [];
let helloSeen = false;

function emit(type, data) {
  for (const l of listeners) {
    try { l(type, data); } catch (e) { console.error('live listener', e); }
  }
}

function url() {
  const q = new URLSearchParams();
  if (filterJob) q.set('job', filterJob);
  if (lastId) q.set('last_event_id', lastId);
  const s = q.toString();
  return '/events' + (s ? '?' + s : '');
}

const CLOSED = 2;   /* EventSource.CLOSED, also the fetch stream's */

/* One event of the stream es is on: src is the stream it came from. */
function deliver(src, type, data, id) {
  if (src !== es) return;
  if (id) lastId = id;
  stats.events++;
  let obj = null;
  try { obj = JSON.parse(data); } catch (e) { return; }
  if (type === 'reset') stats.resets++;
  if (type === 'hello') { helloSeen = true; for (const w of helloWaiters.splice(0)) w(true); }
  emit(type, obj);
}

/* The lines of text/event-stream (the HTML standard's parsing: "event:",
 * "data:", "id:", ":" comments, a blank line ends an event) read from a
 * fetch() that carries the token.  Returns an object with readyState and
 * close(), as an EventSource has. */
function fetchSource(u, token, onOpen, onClosed) {
  const ctl = new AbortController();
  const src = {readyState: 0, close() { src.readyState = CLOSED; ctl.abort(); }};
  const ended = () => { if (src.readyState !== CLOSED) { src.readyState = CLOSED; onClosed(src); } };
  (async () => {
    let res;
    try {
      res = await fetch(u, {headers: {Authorization: 'Bearer ' + token, Accept: 'text/event-stream'},
                            cache: 'no-store', signal: ctl.signal});
    } catch (e) { ended(); return; }
    if (!res.ok || !res.body) { ended(); return; }
    src.readyState = 1;
    onOpen(src);
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '', type = '', data = [], id = null;
    try {
      for (;;) {
        const {value, done} = await reader.read();
        if (done || src.readyState === CLOSED) break;
        buf += dec.decode(value, {stream: true});
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          let line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.endsWith('\r')) line = line.slice(0, -1);
          if (line === '') {
            if (data.length) deliver(src, type || 'message', data.join('\n'), id);
            type = ''; data = []; id = null;
            continue;
          }
          if (line[0] === ':') continue;
          const c = line.indexOf(':');
          const field = c < 0 ? line : line.slice(0, c);
          let v = c < 0 ? '' : line.slice(c + 1);
          if (v[0] === ' ') v = v.slice(1);
          if (field === 'event') type = v;
          else if (field === 'data') data.push(v);
          else if (field === 'id') id = v;
        }
      }
    } catch (e) { /* aborted or the connection dropped */ }
    ended();
  })();
  return src;
}

function open() {
  clearTimeout(retryTimer);
  if (es) es.close();
  helloSeen = false;
  stats.opened++;
  statusCb('connecting');
  const token = getToken();
  if (token) {
    es = fetchSource(url(), token,
                     (src) => { if (src === es) statusCb('live'); },
                     (src) => { if (src !== es) return; statusCb('offline'); retryTimer = setTimeout(open, 2000); });
    return;
  }
  const src = new EventSource(url());
  es = src;
  ['hello', 'job', 'point', 'experiment', 'reset'].forEach((type) =>
    src.addEventListener(type, (ev) => deliver(src, type, ev.data, ev.lastEventId)));
  src.onopen = () => { if (src === es) statusCb('live'); };
  src.onerror = () => {
    if (src !== es) return;
    if (src.readyState === CLOSED) {
      statusCb('offline');
      retryTimer = setTimeout(open, 2000);
    } else {
      statusCb('reconnecting');
    }
  };
}

/* A token given (or changed) from now on: the stream is opened again with
 * it, resuming after the last event seen. */
window.addEventListener('traind-token', () => { if (es) open(); });

/* Opens (or re-opens, for another filter) the stream.  A new filter starts
 * from now: the view has just fetched what it shows. */
export function connect(job) {
  const j = job || null;
  if (es && j === filterJob && es.readyState !== CLOSED) return;
  filterJob = j;
  lastId = '';
  open();
}

/* Drops the stream and opens a new one that resumes after the last event
 * seen (what a dropped connection does; also used by the browser tests). */
export function reconnect() {
  open();
}

/* Resolves once the current stream's hello came (the daemon has it
 * registered: what happens from then on reaches us), or false after
 * timeoutMs, so a view fetches what it shows only after it cannot miss
 * a change to it. */
export function ready(timeoutMs = 3000) {
  if (helloSeen) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => { helloWaiters = helloWaiters.filter((w) => w !== done); resolve(false); }, timeoutMs);
    const done = (v) => { clearTimeout(t); resolve(v); };
    helloWaiters.push(done);
  });
}

export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function onStatus(fn) { statusCb = fn; }

export function debugState() {
  return {lastId, filterJob, readyState: es ? es.readyState : -1, withToken: !!(es && !(es instanceof EventSource)), ...stats};
}

/* For the browser tests and the console: window.traindLive.reconnect(). */
window.traindLive = {reconnect, debugState, drop: () => { if (es) es.close(); es = null; statusCb('offline'); }};
