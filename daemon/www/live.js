/*
 * live — the page's one Server-Sent Events stream (GET /events, ?job=ID for
 * the Job view).  Views subscribe to 'job', 'point', 'experiment' and
 * 'reset' events; a reset (the daemon restarted, or our last event id fell
 * out of its ring) tells them to refetch what they show.  The browser's
 * EventSource reconnects by itself sending Last-Event-ID; when it gives up
 * (closed), or when reconnect() is called, a new stream is opened with
 * ?last_event_id= so the daemon replays what was missed.
 */

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

function open() {
  clearTimeout(retryTimer);
  if (es) es.close();
  const src = new EventSource(url());
  es = src;
  helloSeen = false;
  stats.opened++;
  statusCb('connecting');
  const on = (type) => src.addEventListener(type, (ev) => {
    if (src !== es) return;
    if (ev.lastEventId) lastId = ev.lastEventId;
    stats.events++;
    let data = null;
    try { data = JSON.parse(ev.data); } catch (e) { return; }
    if (type === 'reset') stats.resets++;
    if (type === 'hello') { helloSeen = true; for (const w of helloWaiters.splice(0)) w(true); }
    emit(type, data);
  });
  ['hello', 'job', 'point', 'experiment', 'reset'].forEach(on);
  src.onopen = () => { if (src === es) statusCb('live'); };
  src.onerror = () => {
    if (src !== es) return;
    if (src.readyState === EventSource.CLOSED) {
      statusCb('offline');
      retryTimer = setTimeout(open, 2000);
    } else {
      statusCb('reconnecting');
    }
  };
}

/* Opens (or re-opens, for another filter) the stream.  A new filter starts
 * from now: the view has just fetched what it shows. */
export function connect(job) {
  const j = job || null;
  if (es && j === filterJob && es.readyState !== EventSource.CLOSED) return;
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
  return {lastId, filterJob, readyState: es ? es.readyState : -1, ...stats};
}

/* For the browser tests and the console: window.traindLive.reconnect(). */
window.traindLive = {reconnect, debugState, drop: () => { if (es) es.close(); es = null; statusCb('offline'); }};
