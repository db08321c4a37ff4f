/*
 * compare_runs — what sets compared runs apart: the config keys that were
 * chosen differently (in a run's own config file, GET /jobs/{id}'s
 * config_keys, or as a swept parameter) and the short names built from
 * them ("lr=3e-3 · warmup_stable_decay") that the Compare view's legend,
 * tooltips and table use.  Keys nobody set (defaults and what follows from
 * them, like schedule.decay_steps) are left out even when their values
 * differ: they differ because a set key does, which is already shown.
 */
import {flatten, paramFormatter} from './common.js';

/* The keys set differently: {keys, flat (each job's config flattened), fmt (key → formatter)}. */
export function differingKeys(jobs, swept = []) {
  const flat = jobs.map((j) => flatten(j.config));
  const chosen = new Set(swept);
  jobs.forEach((j, i) => {
    /* without config_keys (a config.yaml that cannot be read) every key counts */
    for (const k of Array.isArray(j.config_keys) ? j.config_keys : Object.keys(flat[i])) chosen.add(k);
    for (const k of Object.keys(j.params || {})) chosen.add(k);
  });
  chosen.delete('name');
  const keys = [...chosen].filter((k) => new Set(flat.map((f) => JSON.stringify(f[k]))).size > 1);
  keys.sort((a, b) => (swept.includes(b) - swept.includes(a)) || a.localeCompare(b));
  const fmt = Object.fromEntries(keys.map((k) => [k, paramFormatter(flat.map((f) => f[k]))]));
  return {keys, flat, fmt};
}

/* A run's name by what differs: "lr=3e-3 · cosine" (a "type" key shows
 * its value alone); '' when nothing does. */
export function diffName(flatOne, keys, fmt) {
  return keys.map((k) => {
    const last = k.split('.').pop();
    const v = flatOne[k];
    return last === 'type' && typeof v === 'string' ? v : last + '=' + fmt[k](v);
  }).join(' · ');
}

/* The label of a run in legends and tooltips: what differs, then the id. */
export function runLabel(job, diff) {
  if (diff) return diff + ' (' + job.id + ')';
  return job.name && job.name !== job.id ? job.name + ' (' + job.id + ')' : job.id;
}
