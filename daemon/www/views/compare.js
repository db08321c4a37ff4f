/*
 * Compare view (#/compare?ids=a,b,c or #/compare?experiment=ID): the jobs'
 * loss and lr curves overlaid, one colour each with a legend, and a table
 * of the config keys whose values differ with each job's final loss and
 * best eval loss (GET /compare).  Curves are each job's own thinned
 * history (GET /jobs/{id}/metrics?max=), so eval points sit at their steps.
 */
import {h, fill, setText, fmtNum, fmtInt, stateBadge} from '../dom.js';
import {get} from '../api.js';
import {lineChart, colour} from '../charts.js';
import {flatten, paramText} from './common.js';

const CURVE_MAX = 2000;
const MAX_IDS = 16;

export function render(root, params) {
  const charts = [];
  const expId = params.get('experiment');
  const idsParam = (params.get('ids') || '').split(',').map((s) => s.trim()).filter(Boolean);
  const idsInput = h('input', {type: 'text', id: 'compare-ids', placeholder: 'job ids, comma separated', value: idsParam.join(',')});
  const expSel = h('select', {id: 'compare-experiment'}, h('option', {value: ''}, 'or a whole experiment…'));
  const status = h('div', {class: 'muted small', id: 'compare-status'});
  const table = h('table', {class: 'grid', id: 'compare-table'});
  const logY = h('input', {type: 'checkbox', id: 'compare-log-y', onchange: () => {
    if (charts[0]) { charts[0].options.scales.y.type = logY.checked ? 'logarithmic' : 'linear'; charts[0].update('none'); }
  }});

  fill(root,
    h('div', {class: 'toolbar'}, h('h1', null, 'Compare'),
      h('form', {class: 'inline', onsubmit: (e) => { e.preventDefault(); location.hash = '#/compare?ids=' + idsInput.value.split(',').map((s) => encodeURIComponent(s.trim())).filter(Boolean).join(','); }},
        idsInput, h('button', {class: 'btn', type: 'submit'}, 'Compare')),
      expSel, h('span', {class: 'spacer'}), h('label', null, logY, ' log y')),
    status,
    h('div', {class: 'charts two'},
      h('div', {class: 'card chart-card'}, h('div', {class: 'chart-title'}, 'loss (train)'),
        h('div', {class: 'chart-wrap tall'}, h('canvas', {id: 'compare-loss'}))),
      h('div', {class: 'card chart-card'}, h('div', {class: 'chart-title'}, 'learning rate'),
        h('div', {class: 'chart-wrap tall'}, h('canvas', {id: 'compare-lr'})))),
    h('div', {class: 'card flush'}, table));

  expSel.addEventListener('change', () => { if (expSel.value) location.hash = '#/compare?experiment=' + encodeURIComponent(expSel.value); });
  get('/experiments').then((list) => {
    for (const e of list) expSel.appendChild(h('option', {value: e.id, selected: e.id === expId}, (e.name || e.id) + ` (${e.n_trials} trials)`));
  }).catch(() => {});

  (async () => {
    let ids = idsParam;
    let exp = null;
    if (expId) {
      try { exp = await get('/experiments/' + encodeURIComponent(expId)); } catch (e) { setText(status, 'No such experiment: ' + expId); return; }
      ids = exp.trials.map((t) => t.job).filter(Boolean);
    }
    if (!ids.length) { setText(status, 'Pick jobs on the Jobs page (the checkboxes), type their ids, or choose an experiment.'); return; }
    if (ids.length > MAX_IDS) { setText(status, `Showing the first ${MAX_IDS} of ${ids.length} jobs.`); ids = ids.slice(0, MAX_IDS); }
    let jobs, histories, cmp;
    try {
      [jobs, histories, cmp] = await Promise.all([
        Promise.all(ids.map((id) => get('/jobs/' + encodeURIComponent(id)))),
        Promise.all(ids.map((id) => get('/jobs/' + encodeURIComponent(id) + '/metrics?max=' + CURVE_MAX))),
        get('/compare?max=2&ids=' + ids.map(encodeURIComponent).join(',')),
      ]);
    } catch (e) { setText(status, 'Could not load: ' + e.message); return; }
    if (exp) setText(status, `Experiment ${exp.name || exp.id}: ${ids.length} trials, metric ${exp.metric}.`);

    const label = (j) => j.name && j.name !== j.id ? j.name + ' (' + j.id + ')' : j.id;
    const series = (key) => histories.map((hs, i) => ({
      label: label(jobs[i]), borderColor: colour(i), backgroundColor: colour(i), borderWidth: 1.6,
      data: hs.points.filter((p) => typeof p[key] === 'number').map((p) => ({x: p.step, y: p[key]})),
    }));
    charts.push(lineChart(document.getElementById('compare-loss'), series('loss'), {xTitle: 'step'}));
    charts.push(lineChart(document.getElementById('compare-lr'), series('lr'), {xTitle: 'step'}));

    /* the config keys that differ (the experiment's params first) */
    const flat = jobs.map((j) => flatten(j.config));
    const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))]
      .filter((k) => k !== 'name' && new Set(flat.map((f) => JSON.stringify(f[k]))).size > 1);
    const swept = exp ? Object.keys((exp.trials[0] || {}).params || {}) : [];
    keys.sort((a, b) => (swept.includes(b) - swept.includes(a)) || a.localeCompare(b));
    const byId = new Map((cmp.jobs || []).map((c) => [c.id, c]));
    fill(table,
      h('thead', null, h('tr', null, h('th', null, ''), h('th', null, 'job'), h('th', null, 'state'),
        keys.map((k) => h('th', {class: 'param'}, k)),
        h('th', {class: 'num'}, 'steps'), h('th', {class: 'num'}, 'final loss'), h('th', {class: 'num'}, 'best eval loss'),
        h('th', {class: 'num'}, 'at step'))),
      h('tbody', {id: 'compare-body'}, jobs.map((j, i) => {
        const c = byId.get(j.id) || {};
        const sw = h('span', {class: 'swatch'});
        sw.style.background = colour(i);
        return h('tr', {dataset: {id: j.id}}, h('td', null, sw),
          h('td', null, h('a', {href: '#/job/' + encodeURIComponent(j.id)}, label(j))), h('td', null, stateBadge(j.state)),
          keys.map((k) => h('td', {class: 'param mono'}, paramText(flat[i][k]))),
          h('td', {class: 'num'}, fmtInt(j.step)), h('td', {class: 'num'}, fmtNum(c.final_loss)),
          h('td', {class: 'num'}, fmtNum(c.best_eval_loss)), h('td', {class: 'num'}, fmtInt(c.best_eval_step)));
      })));
    window.traindCompareView = {ids, points: histories.map((hs) => hs.points.length)};
  })();

  return () => { for (const c of charts) c.destroy(); delete window.traindCompareView; };
}
