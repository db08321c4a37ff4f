/*
 * Experiment view (#/experiment/ID, and #/experiments for the list): the
 * leaderboard (trials best first by the experiment's metric, with their
 * parameter values), the early-stopping decisions, and a scatter of the
 * metric against each swept parameter (a log axis for lr and for numeric
 * parameters spanning more than a factor of 20; categories for strings).
 * An experiment with sweep.predict ({law: ID}) also shows each trial's
 * real curve (solid, the law's metric) beside the curve that law predicts
 * from the trial's config (dashed, same colour): POST /laws/ID/predict
 * {"jobs": [...]} once per set of trial jobs, the real curves refetched at
 * most every PREDICT_REFRESH_MS while trials run.
 */
import {h, fill, setText, fmtNum, fmtInt, fmtTime, stateBadge} from '../dom.js';
import {get} from '../api.js';
import * as live from '../live.js';
import {scatterChart, paddedRange, lineChart, colour} from '../charts.js';
import {predict} from './laws.js';
import {paramText, paramFormatter} from './common.js';

/* How a trial's state looks on the scatters (colour, point style). */
const STATE_STYLE = {
  succeeded: ['#1a73e8', 'circle'], running: ['#188038', 'rectRot'], queued: ['#b06000', 'rect'],
  stopped: ['#9aa0a6', 'triangle'], failed: ['#d93025', 'crossRot'], cancelled: ['#5f6368', 'crossRot'], rejected: ['#d93025', 'crossRot'],
};

const PREDICT_MAX_TRIALS = 16;
const PREDICT_REFRESH_MS = 5000;

export function renderList(root) {
  const body = h('tbody', {id: 'experiments-body'});
  fill(root, h('div', {class: 'toolbar'}, h('h1', null, 'Experiments'), h('span', {class: 'spacer'}),
    h('a', {class: 'btn primary', href: '#/new'}, '+ New experiment')),
    h('div', {class: 'card flush'}, h('table', {class: 'grid'},
      h('thead', null, h('tr', null, h('th', null, 'name'), h('th', null, 'state'), h('th', null, 'method'),
        h('th', null, 'metric'), h('th', {class: 'num'}, 'trials'), h('th', null, 'done'), h('th', null, 'best'),
        h('th', null, 'submitted'))), body)));
  const load = () => get('/experiments').then((list) => {
    fill(body, list.length ? list.map((e) => h('tr', {dataset: {id: e.id}},
      h('td', null, h('a', {href: '#/experiment/' + encodeURIComponent(e.id)}, e.name || e.id)),
      h('td', null, stateBadge(e.state)), h('td', null, e.method || ''), h('td', null, e.metric || ''),
      h('td', {class: 'num'}, fmtInt(e.n_trials)),
      h('td', null, e.counts ? `${e.counts.succeeded} ok · ${e.counts.stopped || 0} stopped · ${e.counts.running} running · ${e.counts.queued + (e.counts.waiting || 0)} waiting` : ''),
      h('td', null, e.best ? [h('a', {href: '#/job/' + encodeURIComponent(e.best.job)}, e.best.job), ' ', fmtNum(e.best.metric)] : '—'),
      h('td', null, fmtTime(e.submitted_at))))
      : h('tr', {class: 'empty'}, h('td', {colspan: 8}, 'No experiments yet.')));
  }).catch((e) => fill(body, h('tr', null, h('td', {colspan: 8, class: 'error'}, e.message))));
  let timer = null;
  const unsub = live.subscribe((type) => {
    if (type === 'experiment' || type === 'reset') { clearTimeout(timer); timer = setTimeout(load, 200); }
  });
  live.connect(null);
  load();
  return () => { unsub(); clearTimeout(timer); };
}

function isLogParam(name, values) {
  if (/(^|\.)lr$|learning_rate|weight_decay|(^|\.)eps$/.test(name)) return values.every((v) => v > 0);
  const pos = values.filter((v) => v > 0);
  return pos.length === values.length && pos.length > 1 && Math.max(...pos) / Math.min(...pos) > 20;
}

export function render(root, params, id) {
  const charts = [];
  let gone = false;   /* the view was left: a fetch still due must not draw */
  const title = h('h1', {id: 'exp-title'});
  const badge = h('span');
  const summary = h('div', {class: 'stats', id: 'exp-stats'});
  const board = h('table', {class: 'grid', id: 'leaderboard'});
  const decisions = h('div', {id: 'decisions'});
  const scatters = h('div', {class: 'charts scatter', id: 'scatters'});
  const predictSec = h('div', {id: 'exp-predict'});
  let predChart = null, predKey = '', predCurves = new Map(), lawMetric = 'loss_avg', lastReal = 0, realTimer = null;
  fill(root,
    h('div', {class: 'toolbar'}, h('a', {href: '#/experiments', class: 'back'}, '← Experiments'), title, badge,
      h('span', {class: 'spacer'}), h('a', {class: 'btn', href: '#/compare?experiment=' + encodeURIComponent(id)}, 'Compare all trials')),
    h('div', {class: 'card'}, summary),
    h('h2', {class: 'section'}, 'Leaderboard'), h('div', {class: 'card flush'}, board), predictSec,
    h('h2', {class: 'section'}, 'Metric against each swept parameter'),
    h('p', {class: 'muted small', id: 'scatter-note'}, 'A point per trial, shaped by its state; "@N": its metric was taken at step N, ' +
      'short of the longest trial (a rung it stopped at, or where it is now).'), scatters,
    h('h2', {class: 'section'}, 'Early-stopping decisions'), decisions);

  function draw(exp) {
    if (gone) return;
    for (const c of charts.splice(0)) c.destroy();
    setText(title, exp.name || exp.id);
    document.title = (exp.name || exp.id) + ' · traind';
    fill(badge, stateBadge(exp.state));
    const c = exp.counts || {};
    const stat = (k, v) => h('div', {class: 'stat', dataset: {stat: k}}, h('div', {class: 'stat-k'}, k), h('div', {class: 'stat-v'}, v));
    /* every trial in one of these (counts has every job state, and waiting) */
    fill(summary, stat('method', exp.method || '—'), stat('metric', exp.metric || '—'), stat('trials', fmtInt(exp.n_trials)),
      stat('succeeded', fmtInt(c.succeeded || 0)), stat('stopped', fmtInt(c.stopped || 0)), stat('running', fmtInt(c.running || 0)),
      stat('queued', fmtInt((c.queued || 0) + (c.waiting || 0))),
      stat('failed', fmtInt((c.failed || 0) + (c.rejected || 0))), stat('cancelled', fmtInt(c.cancelled || 0)),
      stat('best', exp.best ? exp.best.job + ' · ' + fmtNum(exp.best.metric) : '—'), stat('submitted', fmtTime(exp.submitted_at)));

    const trials = exp.trials || [];
    const keys = [...new Set(trials.flatMap((t) => Object.keys(t.params || {})))];
    const fmt = Object.fromEntries(keys.map((k) => [k, paramFormatter(trials.map((t) => (t.params || {})[k]))]));
    fill(board,
      h('thead', null, h('tr', null, h('th', {class: 'num'}, '#'), h('th', null, 'job'), h('th', null, 'state'),
        h('th', {class: 'num'}, 'step'), h('th', {class: 'num'}, exp.metric || 'metric'),
        keys.map((k) => h('th', {class: 'param'}, k)))),
      h('tbody', {id: 'leaderboard-body'}, trials.map((t, i) => h('tr', {dataset: {job: t.job || ''}},
        h('td', {class: 'num'}, String(i + 1)),
        h('td', null, t.job ? h('a', {href: '#/job/' + encodeURIComponent(t.job)}, t.job) : '(not yet)'),
        h('td', null, stateBadge(t.state)), h('td', {class: 'num'}, fmtInt(t.step)),
        h('td', {class: 'num metric'}, fmtNum(t.metric)),
        keys.map((k) => h('td', {class: 'param mono'}, fmt[k]((t.params || {})[k])))))));

    drawPredicted(exp);

    const dec = exp.decisions || [];
    fill(decisions, dec.length
      ? h('div', {class: 'card flush'}, h('table', {class: 'grid', id: 'decisions-table'},
          h('thead', null, h('tr', null, [...new Set(dec.flatMap((d) => Object.keys(d)))].map((k) => h('th', null, k)))),
          h('tbody', null, dec.map((d) => h('tr', null, [...new Set(dec.flatMap((x) => Object.keys(x)))]
            .map((k) => h('td', {class: 'mono'}, typeof d[k] === 'object' ? JSON.stringify(d[k]) : paramText(d[k]))))))))
      : h('div', {class: 'card muted', id: 'no-decisions'}, exp.early_stop ? 'No trial stopped early yet.' : 'This experiment has no early stopping: every trial runs to its end.'));

    /* one scatter per swept parameter: a point per scored trial, styled by
     * its state, labelled with the step its metric was taken at when that
     * is short of the longest trial's (a rung: not comparable as is) */
    const scored = trials.filter((t) => typeof t.metric === 'number');
    const longest = Math.max(0, ...scored.map((t) => t.step || 0));
    const rungs = ((exp.early_stop || {}).rungs || []).map((r) => r.step);
    const atText = (t) => {
      const r = rungs.indexOf(t.step);
      return r >= 0 && t.step < longest ? `rung ${r} (step ${fmtInt(t.step)})` : `step ${fmtInt(t.step)}`;
    };
    const metrics = scored.map((t) => t.metric);
    const logY = metrics.length > 1 && metrics.every((m) => m > 0) && Math.max(...metrics) / Math.min(...metrics) > 20;
    fill(scatters, keys.length ? null : h('div', {class: 'card muted'}, 'No swept parameters.'));
    keys.forEach((k, ki) => {
      const canvas = h('canvas', {id: 'scatter-' + ki});
      scatters.appendChild(h('div', {class: 'card chart-card'}, h('div', {class: 'chart-title'}, exp.metric + ' vs ' + k),
        h('div', {class: 'chart-wrap'}, canvas)));
      const vals = scored.map((t) => t.params[k]);
      const numeric = vals.every((v) => typeof v === 'number');
      const logX = numeric && isLogParam(k, vals);
      const categories = numeric ? null : [...new Set(trials.map((t) => String(t.params[k])))];
      const states = [...new Set(scored.map((t) => t.state))];
      const datasets = states.map((st) => {
        const [c, style] = STATE_STYLE[st] || ['#7f7f7f', 'circle'];
        return {label: st, pointStyle: style, backgroundColor: c, borderColor: c, radius: st === 'stopped' ? 6 : 5,
          data: scored.filter((t) => t.state === st).map((t) => ({
            x: numeric ? t.params[k] : categories.indexOf(String(t.params[k])), y: t.metric, label: t.job,
            note: t.step < longest ? '@' + fmtInt(t.step) : '', trial: t}))};
      });
      charts.push(scatterChart(canvas, datasets, {
        xTitle: k + (logX ? ' (log)' : ''), yTitle: exp.metric, categories, logX, logY, legend: true, notes: true,
        x: numeric ? paddedRange(vals, logX) : undefined, y: paddedRange(metrics, logY),
        label: (item) => {
          const t = item.raw.trial;
          return ` ${t.job} (${t.state}): ${exp.metric} ${fmtNum(t.metric)} at ${atText(t)}; ${k}=${fmt[k](t.params[k])}`;
        },
      }));
    });
  }

  /* sweep.predict: each trial's real curve (solid) and the law's (dashed). */
  async function drawPredicted(exp) {
    const lawId = exp.predict && exp.predict.law;
    if (!lawId) { fill(predictSec); return; }
    const trials = (exp.trials || []).filter((t) => t.job).sort((a, b) => a.trial - b.trial).slice(0, PREDICT_MAX_TRIALS);
    const key = lawId + ':' + trials.map((t) => t.job).join(',');
    if (!trials.length) {
      fill(predictSec, h('h2', {class: 'section'}, 'Predicted by law ' + lawId), h('div', {class: 'card muted', id: 'exp-predict-note'}, 'No trial has a job yet.'));
      return;
    }
    if (key !== predKey) {
      predKey = key;
      predCurves = new Map();
      try {
        const laws = await get('/laws');
        const law = laws.find((l) => l.id === lawId);
        if (law && law.metric) lawMetric = law.metric;
        const r = await predict(lawId, {jobs: trials.map((t) => t.job)}, 300);
        if (r.status === 200) for (const c of r.body.curves || []) if (!c.error) predCurves.set(c.job, c.points);
      } catch (e) { /* drawn without the law's curves */ }
      lastReal = 0;
    }
    const now = Date.now();
    if (now - lastReal < PREDICT_REFRESH_MS && predChart) {   /* running trials: their real curves later */
      clearTimeout(realTimer);
      realTimer = setTimeout(() => drawPredicted(exp), PREDICT_REFRESH_MS - (now - lastReal));
      return;
    }
    lastReal = now;
    let hist;
    try {
      hist = await Promise.all(trials.map((t) => get('/jobs/' + encodeURIComponent(t.job) + '/metrics?max=500')));
    } catch (e) { return; }
    if (gone) return;
    const datasets = [];
    trials.forEach((t, i) => {
      const col = colour(i), name = `#${t.trial + 1} ${t.job}`;
      const real = (hist[i].points || []).filter((p) => typeof p[lawMetric] === 'number').map((p) => ({x: p.step, y: p[lawMetric]}));
      datasets.push({label: name, data: real, borderColor: col, backgroundColor: col, borderWidth: 1.6});
      const pred = predCurves.get(t.job);
      if (pred) datasets.push({label: name + ' · law', data: pred.map(([x, y]) => ({x, y})), borderColor: col, backgroundColor: col,
        borderWidth: 1.3, borderDash: [10, 5], law: true});
    });
    const canvas = h('canvas', {id: 'exp-predict-chart'});
    if (predChart) predChart.destroy();
    fill(predictSec, h('h2', {class: 'section'}, 'Real (solid) and predicted (dashed) ' + lawMetric),
      h('p', {class: 'muted small', id: 'exp-predict-note'}, `Each trial's curve as law ${lawId} predicts it from the trial's config (sweep.predict)` +
        ((exp.trials || []).filter((t) => t.job).length > PREDICT_MAX_TRIALS ? `; the first ${PREDICT_MAX_TRIALS} trials.` : '.')),
      h('div', {class: 'card chart-card'}, h('div', {class: 'chart-wrap tall'}, canvas)));
    predChart = lineChart(canvas, datasets, {xTitle: 'step', yTitle: lawMetric});
    window.traindExpPredict = {law: lawId, trials: trials.length, predicted: datasets.filter((d) => d.law).length,
      real: datasets.filter((d) => !d.law).map((d) => d.data.length)};
  }

  const load = () => get('/experiments/' + encodeURIComponent(id)).then(draw)
    .catch((e) => fill(root, h('div', {class: 'card error'}, e.status === 404 ? 'No such experiment: ' + id : e.message)));
  let timer = null;
  const later = () => { clearTimeout(timer); timer = setTimeout(load, 300); };
  const unsub = live.subscribe((type, data) => {
    if (type === 'reset') return later();
    if (type === 'experiment' && data && data.id === id) return later();
    if (type === 'job' && data && data.experiment === id) return later();
  });
  live.connect(null);
  load();
  return () => {
    gone = true;
    unsub(); clearTimeout(timer); clearTimeout(realTimer);
    for (const c of charts.splice(0)) c.destroy();
    if (predChart) predChart.destroy();
    predChart = null;
  };
}
