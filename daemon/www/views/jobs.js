/*
 * Jobs view (#/jobs?state=S&q=TEXT): every job, newest first, a page of 50
 * at a time through GET /jobs?limit=&after= (the Link header's cursor), so
 * 1,000 or 100,000 jobs cost one small page each.  Filter by state (sent to
 * the daemon), search by name or id (q=, the daemon's too).
 * Rows move live: 'job' events update their cells in place.
 */
import {h, fill, setText, fmtNum, fmtInt, fmtDuration, stateBadge, progressBar, updateProgress} from '../dom.js';
import {get, nextAfter} from '../api.js';
import * as live from '../live.js';

const PAGE = 50;
const STATES = ['', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'rejected'];

export function render(root, params) {
  const state = params.get('state') || '';
  const q = params.get('q') || '';
  let cursors = [null];      /* the 'after' of each page visited; the last is the current page's */
  let next = null;
  const rows = new Map();    /* job id → {tr, cells...} */
  const selected = new Set();

  const stateSel = h('select', {id: 'state-filter', onchange: () => go({state: stateSel.value})},
    STATES.map((s) => h('option', {value: s, selected: s === state}, s || 'all states')));
  const search = h('input', {type: 'search', id: 'job-search', placeholder: 'search by name', value: q});
  let searchTimer = null;
  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => go({q: search.value}), 250);
  });
  const compareBtn = h('button', {class: 'btn', id: 'compare-selected', disabled: true,
    onclick: () => { location.hash = '#/compare?ids=' + [...selected].map(encodeURIComponent).join(','); }},
    'Compare selected');
  const tbody = h('tbody', {id: 'jobs-body'});
  const prevBtn = h('button', {class: 'btn', id: 'page-prev', onclick: () => { cursors.pop(); load(); }}, '← Newer');
  const nextBtn = h('button', {class: 'btn', id: 'page-next', onclick: () => { cursors.push(next); load(); }}, 'Older →');
  const pageInfo = h('span', {class: 'muted', id: 'page-info'});

  fill(root,
    h('div', {class: 'toolbar'},
      h('h1', null, 'Jobs'), stateSel, search, h('span', {class: 'spacer'}), compareBtn,
      h('a', {class: 'btn primary', href: '#/new'}, '+ New job')),
    h('div', {class: 'card flush'},
      h('table', {class: 'grid jobs', id: 'jobs-table'},
        h('thead', null, h('tr', null,
          h('th', {class: 'check'}), h('th', null, 'name'), h('th', null, 'state'), h('th', {class: 'prog'}, 'progress'),
          h('th', {class: 'num'}, 'step / total'), h('th', {class: 'num'}, 'lr'), h('th', {class: 'num'}, 'loss'),
          h('th', {class: 'num'}, 'eval loss'), h('th', {class: 'num'}, 'steps/s'), h('th', {class: 'num'}, 'ETA'),
          h('th', null, 'experiment'))),
        tbody)),
    h('div', {class: 'pager'}, prevBtn, pageInfo, nextBtn));

  function go(change) {
    const p = new URLSearchParams({state, q});
    for (const [k, v] of Object.entries(change)) p.set(k, v);
    for (const k of [...p.keys()]) if (!p.get(k)) p.delete(k);
    const s = p.toString();
    location.hash = '#/jobs' + (s ? '?' + s : '');
  }

  function matches(job) {
    if (state && job.state !== state) return false;
    return !q || String(job.name || job.id).toLowerCase().includes(q.toLowerCase())
               || String(job.id).toLowerCase().includes(q.toLowerCase());
  }

  function setCells(r, job) {
    r.job = Object.assign(r.job || {}, job);
    const j = r.job;
    fill(r.state, stateBadge(j.state));
    updateProgress(r.bar, j.step, j.total_steps);
    setText(r.step, fmtInt(j.step) + ' / ' + fmtInt(j.total_steps));
    setText(r.lr, fmtNum(j.lr));
    setText(r.loss, fmtNum(j.loss));
    setText(r.evalLoss, fmtNum(j.eval_loss));
    setText(r.sps, fmtNum(j.steps_per_s, 3));
    setText(r.eta, j.state === 'running' ? fmtDuration(j.eta_s) : '—');
    r.tr.dataset.state = j.state;
    r.tr.dataset.step = j.step;
  }

  function row(job) {
    const r = {};
    const cb = h('input', {type: 'checkbox', class: 'pick', 'aria-label': 'select for compare', onchange: () => {
      if (cb.checked) selected.add(job.id); else selected.delete(job.id);
      compareBtn.disabled = selected.size < 1;
      setText(compareBtn, selected.size ? `Compare ${selected.size} selected` : 'Compare selected');
    }});
    const name = h('a', {href: '#/job/' + encodeURIComponent(job.id), class: 'job-name'}, job.name || job.id);
    const exp = job.experiment
      ? h('a', {href: '#/experiment/' + encodeURIComponent(job.experiment)}, job.experiment) : '';
    r.state = h('td');
    r.bar = progressBar(job.step, job.total_steps);
    r.step = h('td', {class: 'num'});
    r.lr = h('td', {class: 'num'});
    r.loss = h('td', {class: 'num'});
    r.evalLoss = h('td', {class: 'num'});
    r.sps = h('td', {class: 'num'});
    r.eta = h('td', {class: 'num'});
    r.tr = h('tr', {dataset: {id: job.id}},
      h('td', {class: 'check'}, cb),
      h('td', null, name, job.name && job.name !== job.id ? h('div', {class: 'muted small'}, job.id) : null),
      r.state, h('td', {class: 'prog'}, r.bar), r.step, r.lr, r.loss, r.evalLoss, r.sps, r.eta, h('td', null, exp));
    setCells(r, job);
    return r;
  }

  /* A page of 50 through the daemon's filters (state=, q= on name or id). */
  async function load() {
    let jobs;
    try {
      const p = new URLSearchParams({limit: String(PAGE)});
      const after = cursors[cursors.length - 1];
      if (after) p.set('after', after);
      if (state) p.set('state', state);
      if (q) p.set('q', q);
      const res = await get('/jobs?' + p, {withHeaders: true});
      next = nextAfter(res.headers);
      jobs = res.body;
    } catch (e) {
      fill(tbody, h('tr', null, h('td', {colspan: 11, class: 'error'}, 'Could not list jobs: ' + e.message)));
      return;
    }
    rows.clear();
    fill(tbody, jobs.map((j) => { const r = row(j); rows.set(j.id, r); return r.tr; }));
    if (!jobs.length) tbody.appendChild(h('tr', {class: 'empty'}, h('td', {colspan: 11}, 'No jobs' + (state || q ? ' match.' : ' yet.'))));
    prevBtn.disabled = cursors.length <= 1;
    nextBtn.disabled = !next;
    setText(pageInfo, `page ${cursors.length} · ${jobs.length} shown`);
  }

  /* A metrics point moves its row: step, lr, losses, and steps/s and ETA
   * from the points' own times (an EMA of the rate between points).
   * Rows are redrawn once per frame however fast points come. */
  const dirtyRows = new Set();
  let frame = 0;
  function onPoint(jobId, p) {
    const r = rows.get(jobId);
    if (!r || typeof p.step !== 'number' || p.step <= (r.job.step || 0)) return;
    const upd = {step: p.step};
    for (const k of ['lr', 'loss', 'grad_norm', 'eval_loss']) if (typeof p[k] === 'number') upd[k] = p[k];
    if (r.lastPt && typeof p.time === 'number' && p.time > r.lastPt.time) {
      const rate = (p.step - r.lastPt.step) / (p.time - r.lastPt.time);
      r.rate = r.rate ? 0.8 * r.rate + 0.2 * rate : rate;
      upd.steps_per_s = r.rate;
      if (r.job.total_steps) upd.eta_s = (r.job.total_steps - p.step) / r.rate;
    }
    if (typeof p.time === 'number') r.lastPt = {step: p.step, time: p.time};
    Object.assign(r.job, upd);
    dirtyRows.add(r);
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; for (const d of dirtyRows) setCells(d, {}); dirtyRows.clear(); });
  }

  const unsub = live.subscribe((type, data) => {
    if (type === 'reset') return load();
    if (type === 'point' && data && data.point) return onPoint(data.job, data.point);
    if (type !== 'job' || !data || !data.id) return;
    const r = rows.get(data.id);
    if (r) return setCells(r, data);
    /* a new job: shown at the top of the first page when it matches */
    if (cursors.length === 1 && matches(data)) {
      const nr = row(data);
      rows.set(data.id, nr);
      const empty = tbody.querySelector('tr.empty');
      if (empty) empty.remove();
      tbody.insertBefore(nr.tr, tbody.firstChild);
    }
  });
  live.connect(null);
  live.ready().then(load);    /* rows fetched once the stream can no longer miss their changes */
  return () => { unsub(); clearTimeout(searchTimer); if (frame) cancelAnimationFrame(frame); };
}
