/*
 * charts — Chart.js (the global Chart, Debian's libjs-chart.js 3.9.1) set
 * up for long training curves: {x, y} data with parsing off, animation off,
 * LTTB decimation, so a 200,000-point history draws in well under a second;
 * points appended live go into the same arrays (appendPoints) without a
 * refetch.  Also TensorBoard's debiased exponential moving average and the
 * colour palette every view shares.
 */

export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
                        '#17becf', '#bcbd22', '#7f7f7f', '#393b79', '#ad494a'];

export function colour(i) { return PALETTE[i % PALETTE.length]; }

export function fade(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

/* TensorBoard's smoothing: an EMA debiased by 1 - w^n (n = finite values
 * seen), so the curve starts at the first value rather than near zero.
 * State-carrying so live points extend it: s = emaState(); s.push(y). */
export function emaState(weight) {
  let last = 0, n = 0;
  return {
    weight,
    push(y) {
      if (!Number.isFinite(y)) return y;
      last = last * weight + (1 - weight) * y;
      n++;
      return weight === 0 ? y : last / (1 - Math.pow(weight, n));
    },
  };
}

export function smooth(points, weight) {
  const s = emaState(weight);
  return points.map((p) => ({x: p.x, y: s.push(p.y)}));
}

Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
Chart.defaults.font.size = 11;
Chart.defaults.color = '#5f6368';

function fmtTick(v) {
  const a = Math.abs(v);
  if (v === 0) return '0';
  if (a >= 1e4 || a < 1e-2) return Number(v).toExponential(1);
  return Number(v.toPrecision(3)).toString();
}

/* On a log axis: labels at 1, 2 and 5 of each decade only. */
function logTick(v) {
  const m = v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9));
  return [1, 2, 5].some((x) => Math.abs(m - x) < 1e-6) ? fmtTick(v) : '';
}

/* A line chart over numeric x.  opts: {xTitle, yTitle, logY, legend}. */
export function lineChart(canvas, datasets, opts = {}) {
  return new Chart(canvas, {
    type: 'line',
    data: {datasets},
    options: {
      parsing: false,
      normalized: true,
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      spanGaps: true,
      interaction: {mode: 'nearest', axis: 'x', intersect: false},
      elements: {point: {radius: 0, hitRadius: 4, hoverRadius: 3}, line: {borderWidth: 1.5, tension: 0}},
      scales: {
        x: {type: 'linear', title: {display: !!opts.xTitle, text: opts.xTitle || ''},
            ticks: {maxTicksLimit: 8}, grid: {color: '#eee'}},
        y: {type: opts.logY ? 'logarithmic' : 'linear', title: {display: !!opts.yTitle, text: opts.yTitle || ''},
            ticks: {maxTicksLimit: 6}, grid: {color: '#eee'}},
      },
      plugins: {
        decimation: {enabled: true, algorithm: 'lttb', samples: 800, threshold: 1000},
        legend: {display: opts.legend !== false, position: 'bottom',
                 labels: {boxWidth: 12, boxHeight: 2, filter: (item, data) => !data.datasets[item.datasetIndex].hideInLegend}},
        tooltip: {
          filter: (item) => !item.dataset.hideInTooltip,
          callbacks: {
            title: (items) => items.length ? (opts.xTitle || 'x') + ' ' + fmtTick(items[0].parsed.x) : '',
            label: (item) => ' ' + item.dataset.label + ': ' + Number(item.parsed.y).toPrecision(5),
          },
        },
      },
    },
  });
}

export function scatterChart(canvas, datasets, opts = {}) {
  return new Chart(canvas, {
    type: 'scatter',
    data: {datasets},
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
      scales: {
        x: opts.categories
          ? {type: 'category', labels: opts.categories, offset: true, title: {display: true, text: opts.xTitle}}
          : {type: opts.logX ? 'logarithmic' : 'linear', title: {display: true, text: opts.xTitle}, ticks: {callback: opts.logX ? logTick : fmtTick}},
        y: {type: opts.logY ? 'logarithmic' : 'linear', title: {display: true, text: opts.yTitle}, ticks: {callback: opts.logY ? logTick : fmtTick}},
      },
      elements: {point: {radius: 5, hoverRadius: 7}},
      plugins: {
        legend: {display: false},
        tooltip: {callbacks: {label: (item) => ' ' + (item.raw.label || '') + ': ' + Number(item.parsed.y).toPrecision(5)}},
      },
    },
  });
}
