/*
 * Compare view (#/compare?ids=a,b,c or #/compare?experiment=ID): runs side
 * by side, the way schedules are judged.  Three charts — loss (train solid,
 * eval dashed, one colour per run), learning rate, grad norm — each with
 * its own log-scale switch, all smoothed with the job page's debiased EMA
 * (charts.js emaState; lr is the schedule itself and is drawn exact), over
 * step, tokens (tokens_per_step × step), wall time or steps since the fork.
 * Runs are named by what sets them apart (compare_runs.js) in the legend
 * above the charts and in tooltips, which list every run at the hovered x.
 * A fork's start is marked on every chart.  Running jobs' curves grow over
 * the page's SSE stream (live.js) as the job page's do: the histories are
 * fetched once the stream is registered, live points are appended to the
 * same arrays, and a reset refetches.  The table gives the results first
 * (final loss, best eval loss and its step, steps, wall time), then the
 * keys set differently.
 *
 * A law (#compare?…&law=ID, or picked above the charts) adds to the loss
 * chart each run's curve as that fitted law predicts it from the run's own
 * config (POST /laws/ID/predict {"jobs": [...]}), in the run's colour with
 * long dashes, so a run can be judged against what its schedule should give.
 */
import {h, fill, setText, fmtNum, fmtInt, fmtDuration, stateBadge} from '../dom.js';
import {get} from '../api.js';
import * as live from '../live.js';
import {lineChart, colour, emaState, nearestIndex} from '../charts.js';
import {differingKeys, diffName, runLabel} from './compare_runs.js';
import {lawOptions, predict} from './laws.js';

const CURVE_MAX = 2000;
const MAX_IDS = 16;
const SERIES = ['loss', 'eval_loss', 'lr', 'grad_norm'];
const SMOOTHED = new Set(['loss', 'eval_loss', 'grad_norm']);
const CHARTS = [
  {key: 'loss', title: 'loss', note: 'solid train · dashed eval · long dashes: the law', series: ['loss', 'eval_loss']},
  {key: 'lr', title: 'learning rate', note: '', series: ['lr']},
  {key: 'grad_norm', title: 'grad norm', note: '', series: ['grad_norm']},
];
const CHART_OF = {loss: 'loss', eval_loss: 'loss', lr: 'lr', grad_norm: 'grad_norm'};
const X_MODES = [['step', 'step'], ['tokens', 'tokens'], ['time', 'wall time'], ['fork', 'steps since fork']];

export function render(root, params) {
  const expId = params.get('experiment');
  const idsParam = (params.get('ids') || '').split(',').map((s) => s.trim()).filter(Boolean);
  let runs = [];              /* {job, points, colour, diff, label, hidden, ema, arrs, best, bestStep} */
  let byId = new Map();
  let table = {keys: [], flat: [], fmt: {}};
  let charts = {};
  let haveHistory = false;
  let pending = [];           /* [job id, point]: live points that came before the histories */
  let dirty = false, tableDirty = false;
  let xMode = 'step';
  let weight = Number(localStorage.getItem('traind.smoothing') || '0.6');
  const logOn = {loss: false, lr: false, grad_norm: false};
  let gone = false;
  let lawId = params.get('law') || '';
  let lawNote = '';

  const idsInput = h('input', {type: 'text', id: 'compare-ids', placeholder: 'job ids, comma separated', value: idsParam.join(',')});
  const expSel = h('select', {id: 'compare-experiment'}, h('option', {value: ''}, 'or a whole experiment…'));
  const status = h('div', {class: 'muted small', id: 'compare-status'});
  const legend = h('div', {class: 'run-legend', id: 'compare-legend'});
  const tableEl = h('table', {class: 'grid', id: 'compare-table'});
  const xSel = h('select', {id: 'compare-x', onchange: () => { xMode = xSel.value; rebuild(); }},
    X_MODES.map(([v, t]) => h('option', {value: v}, t)));
  const lawSel = h('select', {id: 'compare-law', onchange: () => { lawId = lawSel.value; loadLaw().then(rebuild); }});
  lawOptions(lawSel, 'no law', lawId);
  const smoothVal = h('span', {class: 'mono', id: 'compare-smoothing-value'}, weight.toFixed(2));
  const slider = h('input', {type: 'range', id: 'compare-smoothing', min: '0', max: '0.99', step: '0.01', value: String(weight)});
  slider.addEventListener('input', () => {
    weight = Number(slider.value);
    setText(smoothVal, weight.toFixed(2));
    localStorage.setItem('traind.smoothing', String(weight));   /* the job page's setting too */
    rebuild();
  });

  const chartCard = (c) => {
    const box = h('input', {type: 'checkbox', id: 'compare-log-' + c.key, onchange: () => { logOn[c.key] = box.checked; rebuild(); }});
    return h('div', {class: 'card chart-card'},
      h('div', {class: 'chart-title'}, h('span', null, c.title, c.note ? h('span', {class: 'muted small note'}, ' ' + c.note) : null),
        h('label', {class: 'small muted log-toggle'}, box, ' log')),
      h('div', {class: 'chart-wrap tall'}, h('canvas', {id: 'compare-' + c.key})));
  };

  fill(root,
    h('div', {class: 'toolbar'}, h('h1', null, 'Compare'),
      h('form', {class: 'inline', onsubmit: (e) => { e.preventDefault(); location.hash = '#/compare?ids=' + idsInput.value.split(',').map((s) => encodeURIComponent(s.trim())).filter(Boolean).join(','); }},
        idsInput, h('button', {class: 'btn', type: 'submit'}, 'Compare')),
      expSel),
    status,
    h('div', {class: 'controls card'},
      h('label', null, 'x axis ', xSel),
      h('label', {class: 'slider'}, 'smoothing ', slider, smoothVal),
      h('label', null, 'predicted by ', lawSel)),
    legend,
    h('div', {class: 'charts three'}, CHARTS.map(chartCard)),
    h('div', {class: 'card flush', id: 'compare-table-card'}, tableEl));

  expSel.addEventListener('change', () => { if (expSel.value) location.hash = '#/compare?experiment=' + encodeURIComponent(expSel.value); });
  get('/experiments').then((list) => {
    for (const e of list) expSel.appendChild(h('option', {value: e.id, selected: e.id === expId}, (e.name || e.id) + ` (${e.n_trials} trials)`));
  }).catch(() => {});

  /* ---- x axes ---- */

  /* The step a run's relative axis counts from: its own fork step, or for a
   * parent the fork step of a compared fork of it, else 0. */
  function forkStep(run) {
    if (typeof run.job.forked_at === 'number') return run.job.forked_at;
    const child = runs.find((r) => r.job.parent === run.job.id && typeof r.job.forked_at === 'number');
    return child ? child.job.forked_at : 0;
  }

  function xOf(run, p) {
    if (xMode === 'tokens') return run.job.tokens_per_step > 0 ? p.step * run.job.tokens_per_step : NaN;
    if (xMode === 'time') return p.time;
    if (xMode === 'fork') return p.step - forkStep(run);
    return p.step;
  }

  function xTitle() { return X_MODES.find(([v]) => v === xMode)[1] + (xMode === 'time' ? ' (s)' : ''); }

  function xText(x) {
    if (xMode === 'time') return 'wall time ' + fmtDuration(x);
    return xTitle() + ' ' + fmtNum(Math.round(x), 6);
  }

  /* Where each fork starts, on the current x axis. */
  function forkMarks() {
    const marks = [];
    for (const r of runs) {
      if (!r.job.parent || typeof r.job.forked_at !== 'number') continue;
      const at = r.job.forked_at;
      const p = r.points[nearestIndex(r.points, at, 'step')];
      const x = xMode === 'fork' ? 0 : xMode === 'time' ? (p ? p.time : NaN) : xMode === 'tokens' ? at * (r.job.tokens_per_step || NaN) : at;
      if (Number.isFinite(x)) marks.push({x, colour: r.colour, label: `fork of ${r.job.parent} @ ${fmtInt(at)}`, run: r.job.id});
    }
    return marks;
  }

  /* ---- series ---- */

  function resetSeries(run) {
    run.ema = {loss: emaState(weight), eval_loss: emaState(weight), grad_norm: emaState(weight)};
    run.arrs = {loss: [], eval_loss: [], lr: [], grad_norm: [], law: []};
    /* the law's curve: exact (not smoothed), on the step-based axes only */
    for (const [step, y] of (lawId && run.law) || []) {
      const x = xMode === 'time' ? NaN : xOf(run, {step});
      if (Number.isFinite(x) && (!logOn.loss || y > 0)) run.arrs.law.push({x, y, step});
    }
  }

  /* The picked law's prediction of every run (its own config), into run.law. */
  async function loadLaw() {
    lawNote = '';
    for (const r of runs) r.law = null;
    if (!lawId || !runs.length) return;
    let r;
    try { r = await predict(lawId, {jobs: runs.map((x) => x.job.id)}, 500); } catch (e) { lawNote = 'The law: ' + e.message; return; }
    if (r.status !== 200) { lawNote = `The law ${lawId}: ${(r.body && r.body.error) || 'HTTP ' + r.status}.`; return; }
    const bad = [];
    for (const c of r.body.curves || []) {
      const run = byId.get(c.job);
      if (!run) continue;
      if (c.error) bad.push(`${c.job} (${c.error})`); else run.law = c.points;
    }
    lawNote = `Dashed long: the ${r.body.kind} law ${lawId}` + (xMode === 'time' ? ' (not on the wall-time axis)' : '') + '.' +
      (bad.length ? ' Not predicted: ' + bad.join(', ') + '.' : '');
  }

  function pushPoint(run, p) {
    const x = xOf(run, p);
    if (!Number.isFinite(x)) return;
    for (const s of SERIES) {
      const y = p[s];
      if (typeof y !== 'number' || !Number.isFinite(y)) continue;
      const v = SMOOTHED.has(s) ? run.ema[s].push(y) : y;
      if (logOn[CHART_OF[s]] && !(v > 0)) continue;     /* no place on a log axis */
      run.arrs[s].push({x, y: v, step: p.step});
    }
  }

  /* What a table row shows that points change. */
  function takeSummary(run, p) {
    if (typeof p.loss === 'number') run.finalLoss = p.loss;
    if (typeof p.eval_loss === 'number' && !(p.eval_loss >= run.best)) { run.best = p.eval_loss; run.bestStep = p.step; }
    if (typeof p.time === 'number') run.wall = p.time;
    if (p.step > (run.job.step || 0)) run.job.step = p.step;
  }

  function valueAt(ds, x) {
    const k = nearestIndex(ds.source, x);
    return k < 0 ? null : ds.source[k];
  }

  function tooltipLabel(item) {
    const ds = item.dataset, chart = item.chart, run = runs[ds.run];
    const pt = valueAt(ds, chart.$hoverX);
    if (!pt) return '';
    /* two lines (the name, then the values) keep the box narrow enough for the chart */
    let s = `   ${fmtNum(pt.y, 5)}`;
    const ei = chart.data.datasets.findIndex((d) => d.run === ds.run && d.eval);
    if (ei >= 0 && chart.isDatasetVisible(ei)) {
      const e = valueAt(chart.data.datasets[ei], chart.$hoverX);
      if (e) s += ` · eval ${fmtNum(e.y, 5)} (step ${fmtInt(e.step)})`;
    }
    return [` ${run.label}`, s + `  step ${fmtInt(pt.step)}`];
  }

  function makeCharts() {
    const marks = forkMarks();
    for (const c of CHARTS) {
      const datasets = [];
      if (c.key === 'loss') {
        runs.forEach((run, i) => {
          if (!run.arrs.law.length) return;
          datasets.push({label: run.label + ' · law', run: i, series: 'law', law: true, data: run.arrs.law, source: run.arrs.law,
            hidden: run.hidden, borderColor: run.colour, backgroundColor: run.colour, borderWidth: 1.3,
            borderDash: [10, 5], pointRadius: 0, hideInTooltip: true});
        });
      }
      for (const s of c.series) {
        runs.forEach((run, i) => {
          const ev = s === 'eval_loss';
          datasets.push({
            label: ev ? run.label + ' · eval' : run.label, run: i, series: s, eval: ev,
            data: run.arrs[s], source: run.arrs[s], hidden: run.hidden,
            borderColor: run.colour, backgroundColor: run.colour, borderWidth: ev ? 1.4 : 1.6,
            borderDash: ev ? [6, 4] : undefined, pointRadius: ev ? 1.5 : 0, hideInTooltip: ev,
          });
        });
      }
      charts[c.key] = lineChart(document.getElementById('compare-' + c.key), datasets, {
        xTitle: xTitle(), logY: logOn[c.key], legend: false, eachRun: true, marks,
        tooltipTitle: (items) => (items.length ? xText(items[0].chart.$hoverX) : ''),
        tooltipLabel,
        itemSort: (a, b) => ((valueAt(a.dataset, a.chart.$hoverX) || {}).y ?? 0) - ((valueAt(b.dataset, b.chart.$hoverX) || {}).y ?? 0),
      });
    }
  }

  /* Every dataset again from the points (x axis, smoothing or a log switch changed). */
  function rebuild() {
    if (!haveHistory) return;
    for (const c of Object.values(charts)) c.destroy();
    charts = {};
    for (const run of runs) {
      resetSeries(run);
      for (const p of run.points) pushPoint(run, p);
    }
    makeCharts();
    setText(status, statusText());
  }

  function statusText() {
    const parts = [];
    if (xMode === 'tokens') {
      const none = runs.filter((r) => !(r.job.tokens_per_step > 0)).map((r) => r.job.id);
      if (none.length) parts.push(`Not on the tokens axis (no tokens_per_step: only GPT runs count tokens): ${none.join(', ')}.`);
    }
    return [baseStatus, lawNote, ...parts].filter(Boolean).join(' ');
  }
  let baseStatus = '';

  /* ---- legend and table ---- */

  function drawLegend() {
    fill(legend, runs.map((run, i) => {
      const sw = h('span', {class: 'swatch'});
      sw.style.background = run.colour;
      const b = h('button', {type: 'button', class: 'legend-item' + (run.hidden ? ' off' : ''), dataset: {run: String(i), id: run.job.id},
        title: run.label + ' — click to hide or show', onclick: () => toggleRun(i)},
      sw, h('span', {class: 'diff'}, run.diff || run.job.name || run.job.id), run.diff ? h('span', {class: 'muted id'}, run.job.id) : null);
      return b;
    }));
  }

  function toggleRun(i) {
    runs[i].hidden = !runs[i].hidden;
    for (const c of Object.values(charts)) {
      c.data.datasets.forEach((d, di) => { if (d.run === i) c.setDatasetVisibility(di, !runs[i].hidden); });
      c.update('none');
    }
    drawLegend();
  }

  function drawTable() {
    const {keys, flat, fmt} = table;
    fill(tableEl,
      h('thead', null, h('tr', null, h('th', null, ''), h('th', null, 'run'), h('th', null, 'state'),
        h('th', {class: 'num'}, 'final loss'), h('th', {class: 'num'}, 'best eval loss'), h('th', {class: 'num'}, 'at step'),
        h('th', {class: 'num'}, 'steps'), h('th', {class: 'num'}, 'wall time'),
        keys.map((k) => h('th', {class: 'param', title: k}, k)))),
      h('tbody', {id: 'compare-body'}, runs.map((run, i) => {
        const j = run.job;
        const sw = h('span', {class: 'swatch'});
        sw.style.background = run.colour;
        const name = j.name && j.name !== j.id ? j.name + ' (' + j.id + ')' : j.id;
        return h('tr', {dataset: {id: j.id}}, h('td', null, sw),
          h('td', {class: 'run'}, h('a', {href: '#/job/' + encodeURIComponent(j.id), title: name}, name)),
          h('td', null, stateBadge(j.state)),
          h('td', {class: 'num'}, fmtNum(run.finalLoss)), h('td', {class: 'num metric'}, fmtNum(run.best)),
          h('td', {class: 'num'}, fmtInt(run.bestStep)),
          h('td', {class: 'num'}, fmtInt(j.step) + (j.total_steps ? ' / ' + fmtInt(j.total_steps) : '')),
          h('td', {class: 'num'}, typeof run.wall === 'number' && run.wall < 10 ? run.wall.toFixed(1) + 's' : fmtDuration(run.wall)),
          keys.map((k) => h('td', {class: 'param mono', title: k}, fmt[k](flat[i][k]))));
      })));
  }

  /* ---- live ---- */

  function flush() {
    dirty = false;
    if (gone) return;
    for (const c of Object.values(charts)) c.update('none');
    if (tableDirty) { tableDirty = false; drawTable(); }
  }

  function schedule() {
    if (!dirty) { dirty = true; requestAnimationFrame(flush); }
  }

  function addLive(id, p) {
    const run = byId.get(id);
    if (!run) return;
    if (!haveHistory) { pending.push([id, p]); return; }
    const last = run.points.length ? run.points[run.points.length - 1].step : -Infinity;
    if (!(p.step > last)) return;      /* the history has it already */
    run.points.push(p);
    pushPoint(run, p);
    takeSummary(run, p);
    tableDirty = true;
    schedule();
  }

  const unsub = live.subscribe((type, data) => {
    if (type === 'reset') return load();
    if (type === 'job' && data && byId.has(data.id)) {
      const run = byId.get(data.id);
      const step = run.job.step;
      Object.assign(run.job, data, {step: Math.max(step || 0, data.step || 0)});
      tableDirty = true;
      return schedule();
    }
    if (type === 'point' && data && data.point) return addLive(data.job, data.point);
  });
  live.connect(null);

  /* ---- loading ---- */

  async function load() {
    haveHistory = false;
    let ids = idsParam;
    let exp = null;
    if (expId) {
      try { exp = await get('/experiments/' + encodeURIComponent(expId)); } catch (e) { setText(status, 'No such experiment: ' + expId); return; }
      ids = exp.trials.map((t) => t.job).filter(Boolean);
    }
    if (!ids.length) { setText(status, 'Pick jobs on the Jobs page (the checkboxes), type their ids, or choose an experiment.'); return; }
    baseStatus = '';
    if (ids.length > MAX_IDS) { baseStatus = `Showing the first ${MAX_IDS} of ${ids.length} jobs.`; ids = ids.slice(0, MAX_IDS); }
    await live.ready();      /* the stream is registered: no point falls between it and the histories */
    let jobs, histories, cmp;
    try {
      [jobs, histories, cmp] = await Promise.all([
        Promise.all(ids.map((id) => get('/jobs/' + encodeURIComponent(id)))),
        Promise.all(ids.map((id) => get('/jobs/' + encodeURIComponent(id) + '/metrics?max=' + CURVE_MAX))),
        get('/compare?max=2&ids=' + ids.map(encodeURIComponent).join(',')),
      ]);
    } catch (e) { setText(status, 'Could not load: ' + e.message); return; }
    if (gone) return;
    if (exp) baseStatus = `Experiment ${exp.name || exp.id}: ${ids.length} trials, metric ${exp.metric}. ` + baseStatus;

    const swept = exp ? [...new Set(exp.trials.flatMap((t) => Object.keys(t.params || {})))] : [];
    table = differingKeys(jobs, swept);
    const summary = new Map((cmp.jobs || []).map((c) => [c.id, c]));
    const wasHidden = new Set(runs.filter((r) => r.hidden).map((r) => r.job.id));
    runs = jobs.map((job, i) => {
      const c = summary.get(job.id) || {};
      const points = histories[i].points || [];
      const diff = diffName(table.flat[i], table.keys, table.fmt);
      const last = points[points.length - 1];
      return {job, points, colour: colour(i), diff, label: runLabel(job, diff), hidden: wasHidden.has(job.id),
              finalLoss: c.final_loss, best: c.best_eval_loss ?? NaN, bestStep: c.best_eval_step,
              wall: last && typeof last.time === 'number' ? last.time : null};
    });
    byId = new Map(runs.map((r) => [r.job.id, r]));

    const anyTokens = runs.some((r) => r.job.tokens_per_step > 0);
    const anyFork = runs.some((r) => r.job.parent);
    for (const o of xSel.options) {
      o.disabled = (o.value === 'tokens' && !anyTokens) || (o.value === 'fork' && !anyFork);
      o.title = o.value === 'tokens' && !anyTokens ? 'none of these runs counts tokens (tokens_per_step is 0 but for GPT models)'
        : o.value === 'fork' && !anyFork ? 'none of these runs is a fork' : '';
    }
    if (xSel.selectedOptions[0] && xSel.selectedOptions[0].disabled) { xMode = 'step'; xSel.value = 'step'; }

    await loadLaw();
    if (gone) return;
    haveHistory = true;
    rebuild();
    const held = pending;
    pending = [];
    for (const [id, p] of held) addLive(id, p);
    drawLegend();
    drawTable();
  }

  load();

  /* For the browser tests: what each run holds and how it is named. */
  window.traindCompareView = {
    ids: () => runs.map((r) => r.job.id),
    points: () => runs.map((r) => r.points.length),
    labels: () => runs.map((r) => r.label),
    marks: () => forkMarks(),
    law: () => ({id: lawId, curves: charts.loss ? charts.loss.data.datasets.filter((d) => d.law).map((d) => ({
      run: runs[d.run].job.id, points: d.data.length, dashed: Array.isArray(d.borderDash), colour: d.borderColor})) : []}),
  };

  return () => {
    gone = true;
    unsub();
    for (const c of Object.values(charts)) c.destroy();
    delete window.traindCompareView;
  };
}
