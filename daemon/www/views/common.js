/*
 * common — helpers the views share: a job's config printed as YAML (for
 * reading, never parsed back), configs flattened to dotted keys (to list
 * what differs between jobs), and the value formatting of parameters.
 */

function scalar(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return /^[\w.\/+-][\w .\/+-]*$/.test(v) && !/^(true|false|null|[-+]?[\d.]+(e[-+]?\d+)?)$/i.test(v) ? v : JSON.stringify(v);
  return String(v);
}

export function configText(cfg, indent = '') {
  const out = [];
  for (const [k, v] of Object.entries(cfg || {})) {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      out.push(indent + k + ':');
      out.push(configText(v, indent + '  '));
    } else if (Array.isArray(v)) {
      if (v.every((x) => x === null || typeof x !== 'object')) out.push(indent + k + ': [' + v.map(scalar).join(', ') + ']');
      else out.push(indent + k + ': ' + JSON.stringify(v));
    } else {
      out.push(indent + k + ': ' + scalar(v));
    }
  }
  return out.filter((s) => s !== '').join('\n');
}

export function flatten(obj, prefix = '', out = {}) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? prefix + '.' + k : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) flatten(v, key, out);
    else out[key] = Array.isArray(v) ? JSON.stringify(v) : v;
  }
  return out;
}

export function paramText(v) {
  if (typeof v === 'number') return Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(1) : String(Number(v.toPrecision(6)));
  return v === null || v === undefined ? '—' : String(v);
}

/* A number in short exponent form: 0.003 → 3e-3, 2.5e-4 → 2.5e-4. */
export function shortExp(v) {
  const [m, e] = v.toExponential().split('e');
  return Number(Number(m).toPrecision(3)) + 'e' + Number(e);
}

/* One format for a whole column of parameter values: when any number in it
 * needs an exponent (|v| < 1e-2 or >= 1e5) every nonzero number gets one,
 * so an lr column reads 1e-4, 1e-3, 1e-2 rather than 1.0e-4, 0.001, 0.01. */
export function paramFormatter(values) {
  const nums = values.filter((v) => typeof v === 'number' && v !== 0 && Number.isFinite(v));
  const exp = nums.some((v) => Math.abs(v) < 1e-2 || Math.abs(v) >= 1e5);
  return (v) => (typeof v !== 'number' ? paramText(v) : exp && v !== 0 ? shortExp(v) : String(Number(v.toPrecision(6))));
}
