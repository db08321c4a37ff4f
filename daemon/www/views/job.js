/*
 * Job view (#/job/ID): the job's loss (train and eval), lr and grad_norm
 * against step or wall time, log or linear y, TensorBoard-style smoothing,
 * values on hover; its errors, config, checkpoints, log tail and a Cancel
 * button.  A rejected job has no parsed config: its card shows the YAML
 * that was refused (GET /jobs/ID/config), beside the errors that locate
 * it.  History is fetched once, thinned by the daemon (max=); live
 * points from GET /events?job=ID are appended to the same arrays (points
 * that arrive before the history are held, then those the history already
 * has are dropped by step), so the page never asks for the history twice.
 */
import {h, fill, setText, fmtNum, fmtInt, fmtDuration, fmtTime, stateBadge, progressBar, updateProgress} from '../dom.js';
import {get, post} from '../api.js';
import * as live from '../live.js';
import {lineChart, emaState, colour, fade} from '../charts.js';
import {configText} from './common.js';

export const HISTORY_MAX = 2000;
const SERIES = ['loss', 'eval_loss', 'lr', 'grad_norm'];

export function render(root, params, id) {
  const t0 = performance.now();
  let job = null;
  let points = [];            /* raw metrics points, ascending step */
  let pending = [];           /* live points that came before the history */
  let haveHistory = false;
  let xMode = localStorage.getItem('traind.xmode') || 'step';
  let logY = localStorage.getItem('traind.logy') === '1';
  let weight = Number(localStorage.getItem('traind.smoothing') || '0.6');
  let charts = {};
  let gone = false;   /* the view was left: a frame or a fetch still due must not touch its charts */
  let ema = {};
  let dirty = false;
  let lastCkptStep = null;
  let drawn = false;
  let statsDirty = false, prevPt = null;           /* the history is fetched and drawn */
  const arrivals = new Map();  /* step → Date.now() when its live point came (the SSE delay figure) */

  const title = h('h1', {id: 'job-title'});
  const badge = h('span');
  const cancelBtn = h('button', {class: 'btn danger', id: 'cancel-job', onclick: cancel}, 'Cancel');
  const cancelMsg = h('span', {class: 'muted small', id: 'cancel-msg'});
  const bar = progressBar(0, 1);
  const stats = h('div', {class: 'stats', id: 'job-stats'});
  const errorsBox = h('div', {id: 'job-errors'});
  const ckptBody = h('tbody', {id: 'ckpt-body'});
  const configPre = h('pre', {class: 'config', id: 'job-config'});
  const configTitle = h('h2', {id: 'job-config-title'}, 'Config');
  let refusedShown = false;
  const logPre = h('pre', {class: 'log', id: 'job-log'});
  const timing = h('div', {class: 'muted small', id: 'draw-timing'});

  const xSel = h('select', {id: 'x-mode', onchange: () => { xMode = xSel.value; localStorage.setItem('traind.xmode', xMode); rebuild(); }},
    h('option', {value: 'step', selected: xMode === 'step'}, 'step'),
    h('option', {value: 'time', selected: xMode === 'time'}, 'wall time (s)'));
  const yLog = h('input', {type: 'checkbox', id: 'log-y', checked: logY, onchange: () => {
    logY = yLog.checked; localStorage.setItem('traind.logy', logY ? '1' : '0');
    for (const k of ['loss', 'grad_norm']) if (charts[k]) { charts[k].options.scales.y.type = logY ? 'logarithmic' : 'linear'; charts[k].update('none'); }
  }});
  const smoothVal = h('span', {class: 'mono', id: 'smoothing-value'}, weight.toFixed(2));
  const slider = h('input', {type: 'range', id: 'smoothing', min: '0', max: '0.99', step: '0.01', value: String(weight)});
  slider.addEventListener('input', () => {
    weight = Number(slider.value);
    setText(smoothVal, weight.toFixed(2));
    localStorage.setItem('traind.smoothing', String(weight));
    rebuild();
  });

  const chartBox = (key, label) => h('div', {class: 'card chart-card'},
    h('div', {class: 'chart-title'}, label, h('span', {class: 'muted small count', id: 'count-' + key})),
    h('div', {class: 'chart-wrap'}, h('canvas', {id: 'chart-' + key})));

  fill(root,
    h('div', {class: 'toolbar'},
      h('a', {href: '#/jobs', class: 'back'}, '← Jobs'), title, badge, h('span', {class: 'spacer'}), cancelMsg, cancelBtn),
    h('div', {class: 'card'}, bar, stats),
    errorsBox,
    h('div', {class: 'controls card'},
      h('label', null, 'x axis ', xSel),
      h('label', null, yLog, ' log y (loss, grad norm)'),
      h('label', {class: 'slider'}, 'smoothing ', slider, smoothVal),
      h('span', {class: 'spacer'}), timing),
    h('div', {class: 'charts'},
      chartBox('loss', 'loss'), chartBox('lr', 'learning rate'), chartBox('grad_norm', 'grad norm')),
    h('div', {class: 'two-col'},
      h('div', {class: 'card'}, configTitle, configPre),
      h('div', null,
        h('div', {class: 'card'}, h('h2', null, 'Checkpoints'),
          h('table', {class: 'grid', id: 'ckpt-table'},
            h('thead', null, h('tr', null, h('th', {class: 'num'}, 'step'), h('th', {class: 'num'}, 'bytes'),
              h('th', null, 'time'), h('th', null, ''))), ckptBody)),
        h('div', {class: 'card'}, h('h2', null, 'Worker log (end)'), logPre))));

  function showJob(j) {
    const prevState = job && job.state;
    job = Object.assign(job || {}, j);
    setText(title, job.name || job.id);
    document.title = (job.name || job.id) + ' · traind';
    fill(badge, stateBadge(job.state));
    updateProgress(bar, job.step, job.total_steps);
    const active = job.state === 'queued' || job.state === 'running';
    cancelBtn.hidden = !active;
    const stat = (k, v, idAttr) => h('div', {class: 'stat'}, h('div', {class: 'stat-k'}, k), h('div', {class: 'stat-v', id: idAttr}, v));
    fill(stats,
      stat('step', fmtInt(job.step) + ' / ' + fmtInt(job.total_steps), 'stat-step'),
      stat('lr', fmtNum(job.lr)), stat('loss', fmtNum(job.loss)), stat('eval loss', fmtNum(job.eval_loss)),
      stat('grad norm', fmtNum(job.grad_norm)), stat('steps/s', fmtNum(job.steps_per_s, 3)),
      stat('ETA', job.state === 'running' ? fmtDuration(job.eta_s) : '—'),
      stat('submitted', fmtTime(job.submitted_at)), stat('finished', fmtTime(job.finished_at)),
      job.experiment ? stat('experiment', h('a', {href: '#/experiment/' + encodeURIComponent(job.experiment)}, job.experiment)) : null,
      job.parent ? stat('forked from', h('a', {href: '#/job/' + encodeURIComponent(job.parent)}, job.parent + ' @ ' + job.forked_at)) : null,
      job.restarts ? stat('restarts', String(job.restarts)) : null);
    const errs = Array.isArray(job.errors) ? job.errors : [];
    fill(errorsBox, errs.length ? h('div', {class: 'card errors'}, h('h2', null, 'Errors'),
      h('ul', null, errs.map((e) => h('li', {class: 'mono'}, typeof e === 'string' ? e
        : [(e.path || '') + (e.line ? `:${e.line}:${e.column || 0}` : ''), ' ', e.message || JSON.stringify(e)])))) : null);
    if (j.config) setText(configPre, configText(j.config));
    else if (job.state === 'rejected' && !refusedShown) { refusedShown = true; loadRefused(); }
    if (job.checkpoint_step !== lastCkptStep) { lastCkptStep = job.checkpoint_step; loadCheckpoints(); }
    if (prevState && prevState !== job.state) loadLog();
  }

  async function cancel() {
    cancelBtn.disabled = true;
    setText(cancelMsg, 'cancelling…');
    try {
      const r = await post('/jobs/' + encodeURIComponent(id) + '/cancel', '');
      setText(cancelMsg, r.status === 202 ? 'cancel requested' : (r.body && r.body.error) || ('HTTP ' + r.status));
      /* the state change comes over the stream; a few reads in case it is down */
      if (r.status === 202) for (const ms of [0, 500, 1500, 4000]) setTimeout(() => { if (!ended()) refreshJob(); }, ms);
    } catch (e) {
      setText(cancelMsg, e.message);
    }
    cancelBtn.disabled = false;
  }

  /* the text as submitted: the errors' line:column point into it */
  async function loadRefused() {
    setText(configTitle, 'Refused config (as submitted)');
    try {
      const text = await get('/jobs/' + encodeURIComponent(id) + '/config');
      setText(configPre, typeof text === 'string' ? text : JSON.stringify(text));
    } catch (e) { setText(configPre, e.message); }
  }

  function ended() { return job && !['queued', 'running'].includes(job.state); }

  async function loadCheckpoints() {
    try {
      const list = await get('/jobs/' + encodeURIComponent(id) + '/checkpoints');
      fill(ckptBody, list.length ? list.map((c) => h('tr', null, h('td', {class: 'num'}, fmtInt(c.step)),
        h('td', {class: 'num'}, fmtInt(c.bytes)), h('td', null, fmtTime(c.time)), h('td', null, c.latest ? 'latest' : '')))
        : h('tr', {class: 'empty'}, h('td', {colspan: 4}, 'none yet')));
    } catch (e) { fill(ckptBody, h('tr', null, h('td', {colspan: 4}, e.message))); }
  }

  async function loadLog() {
    try {
      const text = await get('/jobs/' + encodeURIComponent(id) + '/log');
      const lines = String(text).split('\n');
      setText(logPre, lines.slice(-40).join('\n') || '(empty)');
    } catch (e) { setText(logPre, e.status === 404 ? '(no log yet)' : e.message); }
  }

  async function refreshJob() {
    try { showJob(await get('/jobs/' + encodeURIComponent(id))); } catch (e) { /* shown on the next event */ }
  }

  /* ---- series ---- */

  function xOf(p) { return xMode === 'time' ? p.time : p.step; }

  /* The arrays given to Chart.js as data: kept here, because with
   * decimation on a dataset's .data answers the decimated copy. */
  let arrs = null;

  function makeCharts() {
    const xTitle = xMode === 'time' ? 'wall time (s)' : 'step';
    const ds = (label, c, data, smoothed, hidden) => ({
      label, data, borderColor: smoothed ? c : fade(c, 0.3), backgroundColor: c,
      borderWidth: smoothed ? 1.8 : 1, hidden, hideInLegend: !smoothed, order: smoothed ? 0 : 1,
    });
    const raw = weight === 0;
    charts.loss = lineChart(document.getElementById('chart-loss'), [
      ds('train loss (raw)', colour(1), arrs.loss[0], false, raw), ds('train loss', colour(1), arrs.loss[1], true, false),
      ds('eval loss (raw)', colour(0), arrs.eval_loss[0], false, raw), ds('eval loss', colour(0), arrs.eval_loss[1], true, false),
    ], {xTitle, logY});
    charts.lr = lineChart(document.getElementById('chart-lr'), [ds('lr', colour(2), arrs.lr[1], true, false)], {xTitle, legend: false});
    charts.grad_norm = lineChart(document.getElementById('chart-grad_norm'), [
      ds('grad norm (raw)', colour(4), arrs.grad_norm[0], false, raw), ds('grad norm', colour(4), arrs.grad_norm[1], true, false)],
      {xTitle, logY, legend: false});
  }

  function targets() { return arrs; }

  function pushPoints(list) {
    const t = targets();
    for (const p of list) {
      const x = xOf(p);
      if (!Number.isFinite(x)) continue;
      for (const k of SERIES) {
        const y = p[k];
        if (typeof y !== 'number' || !Number.isFinite(y)) continue;
        const [rawArr, smArr] = t[k];
        if (rawArr) { rawArr.push({x, y}); smArr.push({x, y: ema[k].push(y)}); }
        else smArr.push({x, y});
      }
    }
  }

  function counts() {
    const t = targets();
    const c = {loss: t.loss[1].length, eval_loss: t.eval_loss[1].length, lr: t.lr[1].length, grad_norm: t.grad_norm[1].length};
    setText(document.getElementById('count-loss'), ` ${fmtInt(c.loss)} train · ${fmtInt(c.eval_loss)} eval points`);
    setText(document.getElementById('count-lr'), ` ${fmtInt(c.lr)} points`);
    setText(document.getElementById('count-grad_norm'), ` ${fmtInt(c.grad_norm)} points`);
    return c;
  }

  /* Rebuilds every dataset from points (x mode or smoothing changed). */
  function rebuild() {
    if (!haveHistory || gone) return;
    for (const c of Object.values(charts)) c.destroy();
    charts = {};
    /* the data first: each chart then draws once, as it is made */
    arrs = {loss: [[], []], eval_loss: [[], []], lr: [null, []], grad_norm: [[], []]};
    ema = {loss: emaState(weight), eval_loss: emaState(weight), grad_norm: emaState(weight)};
    pushPoints(points);
    makeCharts();
    counts();
  }

  function flush() {
    dirty = false;
    if (gone) return;
    if (statsDirty) { statsDirty = false; showJob({}); }
    for (const c of Object.values(charts)) c.update('none');
    counts();
  }

  function addLive(p) {
    if (!haveHistory) { pending.push(p); return; }
    const last = points.length ? points[points.length - 1].step : -Infinity;
    if (!(p.step > last)) return;      /* the history has it already (or a repeat) */
    arrivals.set(p.step, Date.now());
    if (arrivals.size > 10000) arrivals.delete(arrivals.keys().next().value);
    points.push(p);
    pushPoints([p]);
    if (job && p.step > (job.step || 0)) {
      /* the header follows the points (job events come on state changes) */
      for (const k of ['step', 'lr', 'loss', 'grad_norm', 'eval_loss']) if (typeof p[k] === 'number') job[k] = p[k];
      if (prevPt && p.time > prevPt.time) {
        const rate = (p.step - prevPt.step) / (p.time - prevPt.time);
        job.steps_per_s = job.steps_per_s ? 0.8 * job.steps_per_s + 0.2 * rate : rate;
        if (job.total_steps) job.eta_s = (job.total_steps - p.step) / job.steps_per_s;
      }
      statsDirty = true;
    }
    if (typeof p.time === 'number') prevPt = p;
    if (!dirty) { dirty = true; requestAnimationFrame(flush); }
  }

  async function loadHistory() {
    const tf = performance.now();
    let doc;
    try {
      doc = await get('/jobs/' + encodeURIComponent(id) + '/metrics?max=' + HISTORY_MAX);
    } catch (e) {
      setText(timing, 'no metrics: ' + e.message);
      return;
    }
    const tFetched = performance.now();
    points = doc.points || [];
    haveHistory = true;
    const held = pending;
    pending = [];
    rebuild();
    for (const p of held) addLive(p);
    if (held.length) flush();
    if (gapSeen && !filling) reload(false);   /* points were left out while it loaded */
    await new Promise((r) => requestAnimationFrame(() => r()));
    const tDrawn = performance.now();
    drawn = true;
    const tm = {id, points: points.length, fetch_ms: tFetched - tf, draw_ms: tDrawn - tFetched, total_ms: tDrawn - t0};
    window.traindTimings = Object.assign(window.traindTimings || {}, {job: tm});
    setText(timing, `${fmtInt(points.length)} points fetched in ${tm.fetch_ms.toFixed(0)} ms, drawn in ${tm.draw_ms.toFixed(0)} ms`);
  }

  /* After a reset: the job again, and only the points after the last one
   * held (GET /metrics?after=), so the history is never fetched twice.
   * Without refresh, only those points: the daemon coalesced some of the
   * job's live points away (a point event's coalesced_after).  One fill
   * runs at a time; a reset or a gap seen meanwhile makes it go round again. */
  let filling = null, fillAgain = false, refreshAgain = false, gapSeen = false;
  function reload(refresh = true) {
    fillAgain = true;
    if (refresh) refreshAgain = true;
    if (!filling) filling = runFill().finally(() => { filling = null; });
    return filling;
  }

  async function runFill() {
    /* hold live points from now: one appended before the gap is filled
     * would move "the last step" past the gap */
    haveHistory = false;
    while (fillAgain || gapSeen) {
      fillAgain = gapSeen = false;
      if (refreshAgain) { refreshAgain = false; await refreshJob(); }
      if (!points.length) return loadHistory();
      try {
        for (;;) {
          const last = points[points.length - 1].step;
          const doc = await get(`/jobs/${encodeURIComponent(id)}/metrics?after=${last}&limit=10000`);
          const fresh = (doc.points || []).filter((p) => p.step > last);
          points.push(...fresh);
          pushPoints(fresh);
          if (!fresh.length || doc.next_since === null || doc.next_since === undefined) break;
        }
      } catch (e) { /* the stream goes on; shown points stay */ }
    }
    haveHistory = true;
    const held = pending;
    pending = [];
    for (const p of held) addLive(p);
    flush();
  }

  const unsub = live.subscribe((type, data) => {
    if (type === 'reset') return reload();
    if (type === 'job' && data && data.id === id) return showJob(data);
    if (type === 'point' && data && data.job === id && data.point) {
      if (typeof data.coalesced_after === 'number') {
        /* points before this one were left out of the stream: fetch them,
         * then this one (held meanwhile) */
        const last = points.length ? points[points.length - 1].step : -Infinity;
        if (!haveHistory) gapSeen = true;
        else if (data.point.step > last) { pending.push(data.point); return reload(false); }
      }
      return addLive(data.point);
    }
  });
  live.connect(id);

  (async () => {
    try {
      showJob(await get('/jobs/' + encodeURIComponent(id)));
    } catch (e) {
      fill(root, h('div', {class: 'card error'}, e.status === 404 ? 'No such job: ' + id : 'Could not load the job: ' + e.message));
      return;
    }
    loadLog();
    await live.ready();      /* the stream is registered: no point can fall between it and the history */
    await loadHistory();
  })();

  /* For the browser tests: the steps the page holds and its series' lengths. */
  window.traindJobView = {
    id, steps: () => points.map((p) => p.step),
    arrivals: () => Object.fromEntries(arrivals),
    counts: () => (drawn && charts.loss ? counts() : null),
  };

  return () => {
    gone = true;
    unsub();
    for (const c of Object.values(charts)) c.destroy();
    charts = {};
    delete window.traindJobView;
  };
}
