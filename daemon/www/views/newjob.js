/*
 * New job view (#/new): a config editor that validates as you type (POST
 * /validate, debounced; nothing is queued) with each error shown beside its
 * line, a preview of the lr schedule (POST /schedule, one curve per
 * distinct schedule of a sweep, their legend below the plot and folded
 * when there are many; marked stale while the text does not validate), and
 * Submit (POST /jobs for a run config, POST /experiments for a sweep
 * file).  Validation and preview need no token (they write nothing); every
 * write carries it, and it is asked for on opening when this browser has
 * none, since Submit will need it.
 *
 * Beside the lr preview, the loss a fitted law predicts for the schedule
 * being typed (POST /laws/ID/predict, no token: it writes nothing), under
 * the law picked in its card (GET /laws; the choice is kept in this
 * browser), one curve per trial of a sweep, redrawn whenever the text
 * validates again.
 *
 * "Find lr" runs the LR range test of the config being typed (POST
 * /lr-find, a short job the daemon runs in a process of its own; it needs
 * the token, since it trains) and draws its curve, the smoothed loss
 * against a log lr axis, with the suggested (valley) and steepest lr marked.
 */
import {h, fill, setText, fmtInt} from '../dom.js';
import {post, postOpen, getToken, askToken} from '../api.js';
import {lineChart, colour, logTick} from '../charts.js';
import {lawOptions, predict, lawName} from './laws.js';

const DRAFT_KEY = 'traind.draft';
const LAW_KEY = 'traind.predict-law';   /* the law the editor predicts with */
const SKIPPED_KEY = 'traind.token-skipped';   /* sessionStorage: the dialog was cancelled once */
const DEBOUNCE_MS = 350;
const LEGEND_OPEN_MAX = 6;   /* more schedules than this: their legend starts folded */

const TEMPLATES = {
  'MLP, cosine': `name: mlp-cosine
seed: 1
model: {type: mlp, input_dim: 32, hidden: [64, 64], output_dim: 8, activation: gelu}
data: {kind: synthetic, batch_size: 32, eval_fraction: 0.1}
optimizer: {type: adamw, lr: 1.0e-3, weight_decay: 0.01, grad_clip: 1.0}
schedule: {type: cosine, warmup_steps: 100, total_steps: 2000, min_lr_ratio: 0.1}
train: {log_every: 10, eval_every: 200, checkpoint_every: 500}
`,
  'Sweep: lr × schedule': `name: lr-sweep
seed: 1
model: {type: mlp, input_dim: 16, hidden: [32], output_dim: 4}
data: {kind: synthetic, batch_size: 32, eval_fraction: 0.1}
optimizer: {type: adamw, lr: 1.0e-3}
schedule: {type: cosine, warmup_steps: 50, total_steps: 1000, decay_ratio: 0.2}
train: {log_every: 10, eval_every: 100}
sweep:
  method: grid
  metric: eval_loss
  parameters:
    optimizer.lr: [3.0e-4, 1.0e-3, 3.0e-3]
    schedule.type: [cosine, linear, warmup_stable_decay]
`,
};

export function render(root) {
  let timer = null, seq = 0, lastOk = null, chart = null, lrChart = null, lawChart = null, lastBody = null;
  /* the view was left: an answer still due must not draw (its canvas is
   * gone, and a Chart.js chart made on none throws at its first update) */
  let gone = false;
  const text = h('textarea', {id: 'editor', spellcheck: 'false', autocomplete: 'off', wrap: 'off',
    'aria-label': 'run config (YAML)'});
  text.value = localStorage.getItem(DRAFT_KEY) || TEMPLATES['MLP, cosine'];
  const gutter = h('div', {class: 'ed-gutter', id: 'ed-gutter'});
  const msgs = h('div', {class: 'ed-msgs', id: 'ed-msgs'});
  const verdict = h('div', {class: 'verdict', id: 'verdict'});
  const errList = h('ul', {class: 'errlist', id: 'error-list'});
  const submitBtn = h('button', {class: 'btn primary', id: 'submit', onclick: submit}, 'Submit');
  const submitMsg = h('div', {id: 'submit-msg', class: 'small'});
  const tmplSel = h('select', {id: 'template', onchange: () => {
    if (!tmplSel.value) return;
    text.value = TEMPLATES[tmplSel.value];
    tmplSel.value = '';
    changed();
  }}, h('option', {value: ''}, 'start from a template…'), Object.keys(TEMPLATES).map((k) => h('option', {value: k}, k)));
  const schedNote = h('div', {class: 'muted small', id: 'schedule-note'});
  const schedLegend = h('div', {id: 'schedule-legend'});
  const stale = h('div', {class: 'stale-note', id: 'schedule-stale', hidden: true},
    'stale: the config does not validate; this is the last valid one');
  const schedCard = h('div', {class: 'card chart-card', id: 'schedule-card'}, h('div', {class: 'chart-title'}, 'lr schedule', stale),
    h('div', {class: 'chart-wrap'}, h('canvas', {id: 'schedule-chart'})), schedNote, schedLegend);

  const lawSel = h('select', {id: 'predict-law', onchange: () => {
    localStorage.setItem(LAW_KEY, lawSel.value);
    if (lastBody !== null) predictLoss(lastBody, seq);
    else fill(lawNote, lawSel.value ? 'waiting for a valid config…' : '');
  }});
  const lawNote = h('div', {class: 'muted small', id: 'predict-note'});
  const lawWrap = h('div', {class: 'chart-wrap', hidden: true}, h('canvas', {id: 'predict-chart'}));
  const lawCard = h('div', {class: 'card chart-card', id: 'predict-card'},
    h('div', {class: 'chart-title'}, 'predicted loss ', lawSel), lawWrap, lawNote);
  lawOptions(lawSel, 'no law (fit one on the Laws page)', localStorage.getItem(LAW_KEY) || '').then((list) => {
    if (!list.length) setText(lawNote, 'No law is fitted on this daemon yet: fit one to finished runs on the Laws page, then pick it here.');
    else if (lawSel.value && lastBody !== null) predictLoss(lastBody, seq);
  });

  const lrBtn = h('button', {class: 'btn', id: 'find-lr', onclick: findLr,
    title: 'LR range test: train a short exponential lr sweep (1e-7 to 10) of this config and plot its loss'}, 'Find lr');
  const lrNote = h('div', {class: 'small', id: 'lrfind-note'},
    'The LR range test of this config: a short run with the lr growing from 1e-7 to 10.');
  const lrLimit = h('div', {class: 'muted small', id: 'lrfind-limit'},
    'For pre-training it brackets the peak lr; the best peak still depends on the schedule and the horizon.');
  const lrWrap = h('div', {class: 'chart-wrap', hidden: true}, h('canvas', {id: 'lrfind-chart'}));
  const lrCard = h('div', {class: 'card chart-card', id: 'lrfind-card'},
    h('div', {class: 'chart-title'}, 'lr range test ', lrBtn), lrNote, lrWrap, lrLimit);

  fill(root,
    h('div', {class: 'toolbar'}, h('h1', null, 'New job or experiment'), tmplSel, h('span', {class: 'spacer'}), submitBtn),
    h('div', {class: 'editor-layout'},
      h('div', {class: 'card flush editor-card'},
        h('div', {class: 'editor'}, gutter, text, msgs)),
      h('div', {class: 'side'},
        h('div', {class: 'card'}, h('h2', null, 'Validation'), verdict, errList, submitMsg),
        schedCard, lawCard, lrCard)));

  function setStale(on) {
    stale.hidden = !on || !chart;    /* nothing drawn yet: nothing to call stale */
    schedCard.classList.toggle('stale', on && !!chart);
  }

  const LINE_PX = 20;
  function layout(errors) {
    const n = text.value.split('\n').length;
    const byLine = new Map();
    for (const e of errors || []) {
      const l = Math.min(Math.max(1, e.line || 1), n);
      if (!byLine.has(l)) byLine.set(l, []);
      byLine.get(l).push(e);
    }
    fill(gutter, Array.from({length: n}, (_, i) => h('div', {class: 'ln' + (byLine.has(i + 1) ? ' bad' : ''), dataset: {line: i + 1}}, String(i + 1))));
    fill(msgs, [...byLine.entries()].map(([l, es]) => {
      const m = h('div', {class: 'ed-msg', dataset: {line: l}, title: es.map((e) => e.message).join('\n')},
        '◀ ' + es.map((e) => (e.column ? `col ${e.column}: ` : '') + e.message).join(' · '));
      m.style.top = ((l - 1) * LINE_PX + 8) + 'px';
      return m;
    }));
    sync();
  }
  function sync() {
    gutter.scrollTop = text.scrollTop;
    msgs.style.transform = `translateY(${-text.scrollTop}px)`;
  }
  text.addEventListener('scroll', sync);

  function changed() {
    localStorage.setItem(DRAFT_KEY, text.value);
    layout([]);
    setText(verdict, 'checking…');
    verdict.className = 'verdict';
    clearTimeout(timer);
    timer = setTimeout(validate, DEBOUNCE_MS);
  }
  text.addEventListener('input', changed);
  text.addEventListener('keydown', (e) => {
    if (e.key === 'Tab') {   /* two spaces, not a focus change */
      e.preventDefault();
      const s = text.selectionStart;
      text.setRangeText('  ', s, text.selectionEnd, 'end');
      changed();
    }
  });

  async function validate() {
    const my = ++seq;
    const body = text.value;
    let r;
    try { r = await postOpen('/validate', body); } catch (e) { setText(verdict, e.message); setStale(true); return; }
    if (my !== seq) return;            /* a newer edit is being checked */
    if (r.status === 429) {            /* over the daemon's write rate: try again shortly */
      setText(verdict, 'the daemon asks to slow down; checking again in a second…');
      clearTimeout(timer);
      timer = setTimeout(validate, 1000);
      return;
    }
    const errs = (r.body && r.body.errors) || [];
    layout(errs);
    fill(errList, errs.map((e) => h('li', null, h('span', {class: 'mono'}, `${e.line || '?'}:${e.column || '?'}`), ' ',
      e.path ? h('span', {class: 'mono muted'}, e.path + ' ') : null, e.message)));
    if (r.status === 200 && r.body.ok) {
      lastOk = true;
      verdict.className = 'verdict ok';
      setText(verdict, r.body.kind === 'experiment' ? experimentVerdict(r.body) : `✓ a valid run config: ${fmtInt(r.body.total_steps)} steps`);
      preview(body, my);
      lastBody = body;
      predictLoss(body, my);
    } else {
      lastOk = false;
      setStale(true);
      verdict.className = 'verdict bad';
      setText(verdict, r.status === 422 ? `✗ ${errs.length} problem${errs.length === 1 ? '' : 's'}`
        : `✗ ${(r.body && r.body.error) || 'HTTP ' + r.status}`);
    }
  }

  async function preview(body, my) {
    let r;
    try { r = await postOpen('/schedule?max=400', body); } catch (e) { return; }
    if (my !== seq || r.status !== 200) { if (r.status !== 200) setText(schedNote, (r.body && r.body.error) || ''); return; }
    const curves = r.body.curves || [];
    const datasets = curves.map((c, i) => ({label: c.label, borderColor: colour(i), backgroundColor: colour(i), borderWidth: 1.6,
      data: c.points.map(([x, y]) => ({x, y}))}));
    if (chart) chart.destroy();
    /* the legend is HTML below the plot, so many schedules never squeeze it */
    chart = lineChart(document.getElementById('schedule-chart'), datasets, {xTitle: 'step', legend: false});
    setStale(false);
    const steps = [...new Set(curves.map((c) => c.total_steps))];
    setText(schedNote, curves.length > 1 ? `${curves.length} distinct schedules, ${steps.map(fmtInt).join(' / ')} steps per trial` : '');
    drawLegend(curves);
    window.traindSchedule = curves.map((c) => ({label: c.label, points: c.points.length}));
  }

  /* The picked law's loss curves of the text (it validated as my). */
  async function predictLoss(body, my) {
    if (!lawSel.value) { lawWrap.hidden = true; return; }
    let r;
    try { r = await predict(lawSel.value, body, 300); } catch (e) { setText(lawNote, e.message); return; }
    if (my !== seq) return;
    if (r.status === 429) { setTimeout(() => { if (my === seq) predictLoss(body, my); }, 1000); return; }
    if (r.status !== 200) { lawNote.className = 'small error'; setText(lawNote, (r.body && r.body.error) || 'HTTP ' + r.status); return; }
    const curves = r.body.curves || [];
    const drawn = curves.filter((c) => c.points && c.points.length);
    const datasets = drawn.map((c, i) => ({label: c.label, borderColor: colour(i), backgroundColor: colour(i), borderWidth: 1.6,
      borderDash: [6, 4], data: c.points.map(([x, y]) => ({x, y}))}));
    if (lawChart) lawChart.destroy();
    lawWrap.hidden = false;
    lawChart = lineChart(document.getElementById('predict-chart'), datasets, {xTitle: 'step', yTitle: 'loss (predicted)', legend: false});
    const bad = curves.filter((c) => c.error);
    const finals = drawn.map((c) => c.final).filter((v) => typeof v === 'number');
    lawNote.className = 'muted small';
    setText(lawNote, `${lawName(r.body.kind)} ${r.body.law}: ` +
      (drawn.length === 1 ? `final loss ${Number(finals[0]).toPrecision(4)}` :
        drawn.length ? `${drawn.length} trials, final loss ${Math.min(...finals).toPrecision(4)} to ${Math.max(...finals).toPrecision(4)}` : 'nothing to draw') +
      (bad.length ? ` · ${bad.length} not predicted: ${bad[0].error}` : '') + (r.body.truncated ? ' · the first 64 trials only' : '') +
      '. A law holds for the model, data, batch size and peak lr it was fitted on.');
    window.traindPredict = {law: r.body.law, curves: drawn.length, points: drawn.map((c) => c.points.length),
      dashed: lawChart.data.datasets.every((d) => Array.isArray(d.borderDash)), finals};
  }

  /* POST /lr-find of the text as it is: the curve (log x), the suggestion
   * and the steepest point marked. */
  async function findLr() {
    lrBtn.disabled = true;
    lrNote.className = 'small';
    setText(lrNote, 'running the lr range test…');
    let r;
    try {
      r = await post('/lr-find', text.value);
    } catch (e) {
      lrNote.className = 'small error';
      setText(lrNote, e.message);
      lrBtn.disabled = false;
      return;
    }
    lrBtn.disabled = false;
    if (gone) return;
    if (r.status !== 200) {
      const errs = (r.body && r.body.errors) || [];
      lrNote.className = 'small error';
      setText(lrNote, errs.length ? `✗ the config: ${errs.map((e) => (e.line ? e.line + ': ' : '') + e.message).join('; ')}`
        : `✗ ${(r.body && r.body.error) || 'HTTP ' + r.status}`);
      return;
    }
    drawLr(r.body);
  }

  function drawLr(b) {
    const pts = (b.points || []).map(([x, y]) => ({x, y}));
    const mark = (i) => (i >= 0 && i < pts.length ? [pts[i]] : []);
    const datasets = [
      {label: 'smoothed loss', data: pts, borderColor: colour(0), backgroundColor: colour(0), borderWidth: 1.6},
      {label: 'suggestion (valley)', data: mark(b.suggestion_index), showLine: false, pointRadius: 6, pointHoverRadius: 7,
       borderColor: colour(3), backgroundColor: colour(3)},
      {label: 'steepest', data: mark(b.steepest_index), showLine: false, pointRadius: 5, pointHoverRadius: 6,
       pointStyle: 'triangle', borderColor: colour(2), backgroundColor: colour(2)},
    ];
    if (lrChart) lrChart.destroy();
    lrWrap.hidden = false;
    const marks = b.suggestion != null ? [{x: b.suggestion, colour: colour(3), label: 'suggested ' + fmtLr(b.suggestion)}] : [];
    lrChart = lineChart(document.getElementById('lrfind-chart'), datasets, {xTitle: 'lr', yTitle: 'loss (smoothed)', marks});
    lrChart.options.scales.x.type = 'logarithmic';
    lrChart.options.scales.x.ticks.callback = logTick;
    lrChart.update('none');
    const why = {diverged: 'stopped when the loss passed 4× its best', not_finite: 'stopped at a NaN loss',
      stopped: 'stopped early', steps: 'every step trained'}[b.stopped] || b.stopped;
    lrNote.className = 'small';
    fill(lrNote,
      h('span', {id: 'lrfind-suggestion', class: 'mono'}, b.suggestion != null ? 'suggested lr ' + fmtLr(b.suggestion) : 'no suggestion (too few points)'),
      b.steepest != null ? h('span', {class: 'mono muted'}, ' · steepest ' + fmtLr(b.steepest)) : null,
      h('span', {class: 'muted'}, ` · ${pts.length} of ${b.steps} steps, ${why}`));
    window.traindLrFind = {points: pts.length, suggestion: b.suggestion, steepest: b.steepest,
      xType: lrChart.scales.x.type, marked: lrChart.data.datasets[1].data.length};
  }

  function fmtLr(v) { return Number(v).toExponential(2); }

  /* One entry per curve: a swatch, its swept values; click to hide it. */
  function drawLegend(curves) {
    if (curves.length < 2) { fill(schedLegend); return; }
    const items = h('ul', {class: 'sched-legend'}, curves.map((c, i) => {
      const sw = h('span', {class: 'swatch'});
      sw.style.background = colour(i);
      const li = h('li', {title: c.label, onclick: () => {
        chart.setDatasetVisibility(i, !chart.isDatasetVisible(i));
        li.classList.toggle('off', !chart.isDatasetVisible(i));
        chart.update('none');
      }}, sw, ' ', c.label);
      return li;
    }));
    fill(schedLegend, h('details', {open: curves.length <= LEGEND_OPEN_MAX},
      h('summary', null, `legend (${curves.length} schedules)`), items));
  }

  /* Steps per trial (what one run is), and the sum (what it costs). */
  function experimentVerdict(b) {
    const per = b.trial_steps || {};
    const each = per.min === per.max ? fmtInt(per.max) : `${fmtInt(per.min)} to ${fmtInt(per.max)}`;
    return `✓ a valid experiment: ${fmtInt(b.trials)} trials of ${each} steps each (${fmtInt(b.total_steps)} steps in all)`;
  }

  async function submit() {
    submitBtn.disabled = true;
    setText(submitMsg, 'submitting…');
    submitMsg.className = 'small';
    try {
      const isSweep = /^sweep\s*:/m.test(text.value);
      const r = await post(isSweep ? '/experiments' : '/jobs', text.value, {'Idempotency-Key': 'web-' + Date.now() + '-' + Math.random().toString(36).slice(2)});
      if ((r.status === 201 || r.status === 200 || r.status === 202) && r.body.id) {
        localStorage.removeItem(DRAFT_KEY);
        location.hash = (isSweep ? '#/experiment/' : '#/job/') + encodeURIComponent(r.body.id);
        return;
      }
      submitMsg.className = 'small error';
      setText(submitMsg, (r.body && r.body.error) || ('HTTP ' + r.status));
      if (r.body && r.body.errors) layout(r.body.errors);
    } catch (e) {
      submitMsg.className = 'small error';
      setText(submitMsg, e.message);
    } finally {
      submitBtn.disabled = false;
    }
  }

  layout([]);
  /* Submit will need the token: ask for it once, before anything else
   * (the dialog is modal); without one, checks and preview work anyway. */
  (async () => {
    if (!getToken() && !sessionStorage.getItem(SKIPPED_KEY)) {
      const t = await askToken('Submitting needs the daemon\'s API token (the contents of <spool>/api.token). ' +
        'Validation and the schedule preview work without it. It is kept in this browser\'s localStorage and sent as an Authorization header.');
      if (!t) sessionStorage.setItem(SKIPPED_KEY, '1');
    }
    validate();
  })();
  return () => {
    gone = true;
    seq++;   /* every answer in flight is now a stale one (my !== seq) */
    clearTimeout(timer);
    for (const c of [chart, lrChart, lawChart]) if (c) c.destroy();
    chart = lrChart = lawChart = null;
  };
}
