/*
 * Laws views (#/laws, #/law/ID): the loss-curve laws fitted on this daemon
 * (POST /laws, man traind(8) "LOSS-CURVE LAWS").  The list has a form that
 * fits a new one to jobs (it needs the token: a fit is CPU work and writes
 * the law).  A law's page shows its parameters and its fit: the error
 * figures per curve (R², mean, worst and final relative error, and the
 * same for leave-one-out: each curve predicted by the law fitted without
 * it), and a chart per curve with the observed points solid and the law's
 * curve dashed (its leave-one-out curve dotted) over the whole schedule.
 *
 * Also the helpers the editor, Compare and the experiment page share:
 * lawOptions (a <select> of the laws) and predict (POST /laws/ID/predict).
 */
import {h, fill, setText, fmtNum, fmtInt, fmtTime} from '../dom.js';
import {get, post, postOpen} from '../api.js';
import {lineChart, colour, fade} from '../charts.js';

const LAW_NAMES = {mpl: 'multi-power law', momentum: 'momentum (annealing) law'};

export function lawName(kind) { return LAW_NAMES[kind] || kind; }

/* Fills select with the laws (newest first) after a first option; resolves
 * with the list.  keep: the value to keep selected when it is still there. */
export async function lawOptions(select, first, keep) {
  let list = [];
  try { list = await get('/laws'); } catch (e) { list = []; }
  fill(select, h('option', {value: ''}, first),
    list.map((l) => h('option', {value: l.id, selected: l.id === keep}, `${l.name || l.id} (${l.law}, ${l.metric})`)));
  return list;
}

/* POST /laws/ID/predict of body (YAML, or an object sent as JSON): {status, body}. */
export function predict(lawId, body, max = 200) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return postOpen('/laws/' + encodeURIComponent(lawId) + '/predict?max=' + max, text);
}

function pct(v) { return typeof v === 'number' && Number.isFinite(v) ? (100 * v).toFixed(2) + '%' : '—'; }

export function renderList(root) {
  const body = h('tbody', {id: 'laws-body'});
  const jobsIn = h('input', {type: 'text', id: 'law-jobs', placeholder: 'job ids, comma separated (or an experiment id below)'});
  const expIn = h('input', {type: 'text', id: 'law-experiment', placeholder: 'experiment id'});
  const kindSel = h('select', {id: 'law-kind'}, h('option', {value: 'mpl'}, 'multi-power law (mpl)'),
    h('option', {value: 'momentum'}, 'momentum law'));
  const metricSel = h('select', {id: 'law-metric'}, ['loss_avg', 'loss', 'eval_loss'].map((m) => h('option', {value: m}, m)));
  const msg = h('div', {class: 'small', id: 'law-fit-msg'});
  const btn = h('button', {class: 'btn primary', id: 'law-fit', type: 'submit'}, 'Fit');
  const form = h('form', {class: 'card law-form', onsubmit: async (e) => {
    e.preventDefault();
    const req = {law: kindSel.value, metric: metricSel.value};
    const ids = jobsIn.value.split(',').map((s) => s.trim()).filter(Boolean);
    if (ids.length) req.jobs = ids;
    if (expIn.value.trim()) req.experiment = expIn.value.trim();
    btn.disabled = true;
    msg.className = 'small';
    setText(msg, 'fitting…');
    try {
      const r = await post('/laws', JSON.stringify(req), {'Content-Type': 'application/json'});
      if (r.status === 201 && r.body.id) { location.hash = '#/law/' + encodeURIComponent(r.body.id); return; }
      msg.className = 'small error';
      const errs = (r.body && r.body.errors) || [];
      setText(msg, errs.length > 1 ? errs.map((x) => (x.path ? x.path + ': ' : '') + x.message).join('; ')
        : (r.body && r.body.error) || 'HTTP ' + r.status);
    } catch (err) {
      msg.className = 'small error';
      setText(msg, err.message);
    } finally { btn.disabled = false; }
  }}, h('h2', null, 'Fit a law'),
  h('div', {class: 'row'}, jobsIn, expIn),
  h('div', {class: 'row'}, h('label', null, 'law ', kindSel), h('label', null, 'metric ', metricSel), btn), msg,
  h('p', {class: 'muted small'}, 'A law holds for one model, data, batch size and peak lr: fit it to runs that differ in their schedule only.'));

  fill(root, h('div', {class: 'toolbar'}, h('h1', null, 'Loss-curve laws')),
    h('div', {class: 'card flush'}, h('table', {class: 'grid'},
      h('thead', null, h('tr', null, h('th', null, 'name'), h('th', null, 'law'), h('th', null, 'metric'),
        h('th', {class: 'num'}, 'curves'), h('th', {class: 'num'}, 'R²'), h('th', {class: 'num'}, 'mean err'),
        h('th', {class: 'num'}, 'worst err'), h('th', {class: 'num'}, 'LOO mean err'), h('th', null, 'fitted'))), body)),
    form);
  get('/laws').then((list) => {
    fill(body, list.length ? list.map((l) => {
      const s = l.summary || {};
      return h('tr', {dataset: {id: l.id}},
        h('td', null, h('a', {href: '#/law/' + encodeURIComponent(l.id)}, l.name || l.id)),
        h('td', null, l.law), h('td', null, l.metric || ''), h('td', {class: 'num'}, fmtInt((l.jobs || []).length)),
        h('td', {class: 'num'}, fmtNum(s.r2)), h('td', {class: 'num'}, pct(s.pred_err)), h('td', {class: 'num'}, pct(s.worst_err)),
        h('td', {class: 'num'}, pct(s.loo_pred_err)), h('td', null, l.created ? fmtTime(l.created) : ''));
    }) : h('tr', {class: 'empty'}, h('td', {colspan: 9}, 'No laws yet: fit one below.')));
  }).catch((e) => fill(body, h('tr', null, h('td', {colspan: 9, class: 'error'}, e.message))));
}

export function render(root, params, id) {
  const charts = [];
  fill(root, h('div', {class: 'card muted'}, 'loading…'));
  get('/laws/' + encodeURIComponent(id)).then((law) => draw(law))
    .catch((e) => fill(root, h('div', {class: 'card error'}, e.status === 404 ? 'No such law: ' + id : e.message)));

  function draw(law) {
    document.title = (law.name || law.id) + ' · traind';
    const s = law.summary || {};
    const stat = (k, v) => h('div', {class: 'stat', dataset: {stat: k}}, h('div', {class: 'stat-k'}, k), h('div', {class: 'stat-v'}, v));
    const params = Object.entries(law.params || {});
    const curves = law.curves || [];
    const rows = curves.map((c, i) => {
      const f = c.fit || {}, l = c.loo || {};
      const sw = h('span', {class: 'swatch'});
      sw.style.background = colour(i);
      return h('tr', {dataset: {job: c.job}}, h('td', null, sw),
        h('td', null, h('a', {href: '#/job/' + encodeURIComponent(c.job)}, c.job)),
        h('td', {class: 'num'}, fmtInt(f.points)), h('td', {class: 'num'}, fmtNum(f.r2)),
        h('td', {class: 'num'}, pct(f.pred_err)), h('td', {class: 'num'}, pct(f.worst_err)), h('td', {class: 'num'}, pct(f.final_err)),
        h('td', {class: 'num loo'}, c.loo ? fmtNum(l.r2) : '—'), h('td', {class: 'num loo'}, c.loo ? pct(l.pred_err) : '—'),
        h('td', {class: 'num loo'}, c.loo ? pct(l.worst_err) : '—'), h('td', {class: 'num loo'}, c.loo ? pct(l.final_err) : '—'));
    });
    const grid = h('div', {class: 'charts law-curves', id: 'law-curves'});
    fill(root,
      h('div', {class: 'toolbar'}, h('a', {href: '#/laws', class: 'back'}, '← Laws'), h('h1', {id: 'law-title'}, law.name || law.id),
        h('span', {class: 'spacer'}),
        curves.length ? h('a', {class: 'btn', href: '#/compare?law=' + encodeURIComponent(law.id) + '&ids=' + curves.map((c) => encodeURIComponent(c.job)).join(',')}, 'Compare with the law') : null),
      h('div', {class: 'card'}, h('div', {class: 'stats', id: 'law-stats'},
        stat('law', lawName(law.law)), stat('metric', law.metric || '—'), stat('curves', fmtInt(curves.length)),
        stat('points', fmtInt(s.points)), stat('R² (mean)', fmtNum(s.r2)), stat('mean err', pct(s.pred_err)),
        stat('worst err', pct(s.worst_err)), stat('final err', pct(s.final_err)),
        stat('LOO mean err', pct(s.loo_pred_err)), stat('LOO worst err', pct(s.loo_worst_err)),
        stat('fitted', law.created ? fmtTime(law.created) : '—'), stat('seconds', fmtNum(s.seconds, 3)))),
      h('div', {class: 'card'}, h('h2', null, 'Parameters'),
        h('table', {class: 'grid params', id: 'law-params'}, h('tbody', null, params.map(([k, v]) =>
          h('tr', null, h('th', {class: 'mono'}, k), h('td', {class: 'num mono'}, fmtNum(v, 6))))))),
      h('h2', {class: 'section'}, 'Fit per curve'),
      h('p', {class: 'muted small'}, 'Errors are relative to the observed loss. LOO: leave-one-out, the curve predicted by the law fitted to the other curves (what a new run of the same setup should expect).'),
      h('div', {class: 'card flush'}, h('table', {class: 'grid', id: 'law-table'},
        h('thead', null, h('tr', null, h('th', null, ''), h('th', null, 'job'), h('th', {class: 'num'}, 'points'),
          h('th', {class: 'num'}, 'R²'), h('th', {class: 'num'}, 'mean err'), h('th', {class: 'num'}, 'worst err'),
          h('th', {class: 'num'}, 'final err'), h('th', {class: 'num loo'}, 'LOO R²'), h('th', {class: 'num loo'}, 'LOO mean'),
          h('th', {class: 'num loo'}, 'LOO worst'), h('th', {class: 'num loo'}, 'LOO final'))),
        h('tbody', {id: 'law-body'}, rows))),
      h('h2', {class: 'section'}, 'Observed (solid) and the law (dashed; dotted: leave-one-out)'), grid);

    curves.forEach((c, i) => {
      const canvas = h('canvas', {id: 'law-chart-' + i});
      grid.appendChild(h('div', {class: 'card chart-card'}, h('div', {class: 'chart-title'}, c.job),
        h('div', {class: 'chart-wrap'}, canvas)));
      const col = colour(i);
      const datasets = [
        {label: 'observed', data: (c.points || []).map(([x, y]) => ({x, y})), borderColor: col, backgroundColor: col, borderWidth: 1.6, pointRadius: 1.5},
        {label: 'law', data: (c.curve || []).map(([x, y]) => ({x, y})), borderColor: fade(col, 0.9), backgroundColor: col, borderWidth: 1.4, borderDash: [6, 4], law: true},
      ];
      if (c.loo_curve && c.loo_curve.length) {
        datasets.push({label: 'leave-one-out', data: c.loo_curve.map(([x, y]) => ({x, y})), borderColor: fade(col, 0.55),
          backgroundColor: col, borderWidth: 1.2, borderDash: [2, 3]});
      }
      charts.push(lineChart(canvas, datasets, {xTitle: 'step', yTitle: law.metric}));
    });
    /* for the browser tests */
    window.traindLawView = {id: law.id, curves: curves.length, charts: charts.length,
      dashed: charts.map((ch) => ch.data.datasets.filter((d) => d.borderDash && d.law).length),
      points: charts.map((ch) => ch.data.datasets[0].data.length)};
  }
  return () => { for (const c of charts) c.destroy(); delete window.traindLawView; };
}
