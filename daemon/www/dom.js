/*
 * dom — builds elements without ever parsing HTML.  Every string a caller
 * passes (job names, errors, config values: all untrusted) becomes a text
 * node; attributes are set one by one with setAttribute, event handlers
 * only from functions.  No innerHTML anywhere in the dashboard.
 */

/* h('td', {class: 'num', onclick: fn}, 'text', childNode, [more...]) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'value') el.value = v;
      else if (k === 'checked') el.checked = !!v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/* Replaces el's children with the given ones. */
export function fill(el, ...children) {
  while (el.firstChild) el.removeChild(el.firstChild);
  append(el, children);
  return el;
}

export function setText(el, s) {
  el.textContent = s === undefined || s === null ? '' : String(s);
}

/* ---- number and time formatting ---- */

export function fmtNum(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (typeof v !== 'number') return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2);
  return Number(v.toPrecision(digits)).toString();
}

export function fmtInt(v) {
  return v === null || v === undefined ? '—' : Number(v).toLocaleString('en-US');
}

export function fmtDuration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '—';
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + 's';
  const m = Math.floor(s / 60), sec = s % 60;
  if (m < 60) return m + 'm ' + String(sec).padStart(2, '0') + 's';
  const hr = Math.floor(m / 60);
  return hr + 'h ' + String(m % 60).padStart(2, '0') + 'm';
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

export function stateBadge(state) {
  return h('span', {class: 'badge st-' + (state || 'unknown')}, state || '?');
}

export function progressBar(step, total) {
  const f = total > 0 ? Math.min(1, Math.max(0, (step || 0) / total)) : 0;
  const bar = h('div', {class: 'progress', role: 'progressbar', 'aria-valuenow': Math.round(f * 100)},
                h('div', {class: 'progress-fill'}));
  bar.firstChild.style.width = (f * 100).toFixed(1) + '%';
  return bar;
}

export function updateProgress(bar, step, total) {
  const f = total > 0 ? Math.min(1, Math.max(0, (step || 0) / total)) : 0;
  bar.firstChild.style.width = (f * 100).toFixed(1) + '%';
  bar.setAttribute('aria-valuenow', Math.round(f * 100));
}
