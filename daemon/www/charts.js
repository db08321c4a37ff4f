/*
 * charts — Chart.js (the global Chart, Debian's libjs-chart.js 3.9.1) set
 * up for long training curves: {x, y} data with parsing off, animation off,
 * LTTB decimation, so a 200,000-point history draws in well under a second;
 * points appended live go into the same arrays (appendPoints) without a
 * refetch.  Also TensorBoard's debiased exponential moving average, the
 * colour palette every view shares, a tooltip mode that lists every run at
 * the hovered x, and dashed x markers (fork points).
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

/* A tick label.  Given the axis's ticks, one format for all of them: when
 * any needs an exponent every nonzero one gets it (1e-4, 1e-3, 1e-2, not
 * 1.0e-4, 1.0e-3, 0.01). */
function fmtTick(v, i, ticks) {
  const big = (x) => x !== 0 && (Math.abs(x) >= 1e4 || Math.abs(x) < 1e-2);
  if (v === 0) return '0';
  if (ticks ? ticks.some((t) => big(t.value)) : big(v)) {
    const [m, e] = Number(v).toExponential().split('e');
    return Number(Number(m).toPrecision(2)) + 'e' + Number(e);
  }
  return Number(v.toPrecision(3)).toString();
}

/* On a log axis: labels at 1, 2 and 5 of each decade only. */
export function logTick(v, i, ticks) {
  const m = v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9));
  return [1, 2, 5].some((x) => Math.abs(m - x) < 1e-6) ? fmtTick(v, i, ticks) : '';
}

/* The index of the point of sorted-by-x pts nearest to x (-1: none). */
export function nearestIndex(pts, x, key = 'x') {
  let lo = 0, hi = pts.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (pts[mid][key] < x) lo = mid + 1; else hi = mid;
  }
  return lo > 0 && Math.abs(pts[lo - 1][key] - x) <= Math.abs(pts[lo][key] - x) ? lo - 1 : lo;
}

/* Tooltip mode 'eachRun': one item per visible dataset (except those
 * marked hideInTooltip), its point nearest to the pointer's x, so a tooltip
 * lists every run even when their steps are logged on different grids
 * (Chart.js's 'index' mode needs equal grids, 'nearest' gives one run).
 * The chart keeps the hovered x as chart.$hoverX for label callbacks,
 * which look the value up in the dataset's undecimated .source. */
Chart.Interaction.modes.eachRun = function (chart, e) {
  const pos = Chart.helpers.getRelativePosition(e, chart);
  const area = chart.chartArea;
  if (!area || pos.x < area.left || pos.x > area.right || pos.y < area.top || pos.y > area.bottom) return [];
  chart.$hoverX = chart.scales.x.getValueForPixel(pos.x);
  const items = [];
  chart.data.datasets.forEach((ds, i) => {
    if (ds.hideInTooltip || !chart.isDatasetVisible(i)) return;
    const els = chart.getDatasetMeta(i).data;
    const k = nearestIndex(els, pos.x);
    if (k >= 0 && els[k] && !els[k].skip) items.push({element: els[k], datasetIndex: i, index: k});
  });
  return items;
};

/* Dashed vertical lines at given x values, labelled at the top (the
 * Compare view's fork points): options.plugins.xMarks.marks = [{x, colour, label}]. */
const xMarks = {
  id: 'xMarks',
  afterDatasetsDraw(chart, args, opts) {
    const marks = (opts && opts.marks) || [];
    const {ctx, chartArea: a, scales: {x: xs}} = chart;
    for (const m of marks) {
      const px = xs.getPixelForValue(m.x);
      if (!Number.isFinite(px) || px < a.left - 0.5 || px > a.right + 0.5) continue;
      ctx.save();
      ctx.strokeStyle = m.colour || '#555';
      ctx.setLineDash([3, 3]);
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(px, a.top);
      ctx.lineTo(px, a.bottom);
      ctx.stroke();
      if (m.label) {
        ctx.setLineDash([]);
        ctx.fillStyle = m.colour || '#555';
        ctx.font = '10px ' + Chart.defaults.font.family;
        ctx.textAlign = px > (a.left + a.right) / 2 ? 'right' : 'left';
        ctx.fillText(m.label, px + (ctx.textAlign === 'left' ? 3 : -3), a.top + 10);
      }
      ctx.restore();
    }
  },
};
Chart.register(xMarks);

/* Switches a chart's y axis between linear and log (1-2-5 tick labels). */
export function setLogY(chart, on) {
  const y = chart.options.scales.y;
  y.type = on ? 'logarithmic' : 'linear';
  y.ticks.callback = on ? logTick : undefined;
}

/* A line chart over numeric x.  opts: {xTitle, yTitle, logY, legend}, and
 * for the Compare view {eachRun (the tooltip mode above), itemSort,
 * tooltipTitle, tooltipLabel, marks (xMarks)}. */
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
      interaction: opts.eachRun ? {mode: 'eachRun', intersect: false} : {mode: 'nearest', axis: 'x', intersect: false},
      elements: {point: {radius: 0, hitRadius: 4, hoverRadius: 3}, line: {borderWidth: 1.5, tension: 0}},
      scales: {
        x: {type: 'linear', title: {display: !!opts.xTitle, text: opts.xTitle || ''},
            ticks: {maxTicksLimit: 8}, grid: {color: '#eee'}},
        y: {type: opts.logY ? 'logarithmic' : 'linear', title: {display: !!opts.yTitle, text: opts.yTitle || ''},
            ticks: {maxTicksLimit: 6, callback: opts.logY ? logTick : undefined}, grid: {color: '#eee'}},
      },
      plugins: {
        xMarks: {marks: opts.marks || []},
        decimation: {enabled: true, algorithm: 'lttb', samples: 800, threshold: 1000},
        legend: {display: opts.legend !== false, position: 'bottom',
                 labels: {boxWidth: 12, boxHeight: 2, filter: (item, data) => !data.datasets[item.datasetIndex].hideInLegend}},
        tooltip: {
          filter: (item) => !item.dataset.hideInTooltip,
          itemSort: opts.itemSort,
          callbacks: {
            title: opts.tooltipTitle || ((items) => items.length ? (opts.xTitle || 'x') + ' ' + fmtTick(items[0].parsed.x) : ''),
            label: opts.tooltipLabel || ((item) => ' ' + item.dataset.label + ': ' + Number(item.parsed.y).toPrecision(5)),
          },
        },
      },
    },
  });
}

/* min/max that leave room around values (a point drawn whole at the edge):
 * a factor on a log axis, 8% of the span on a linear one. */
export function paddedRange(values, log) {
  const v = values.filter((x) => Number.isFinite(x) && (!log || x > 0));
  if (!v.length) return {};
  const lo = Math.min(...v), hi = Math.max(...v);
  if (log) {
    const f = Math.pow(hi / lo, 0.08) * 1.15;
    return {min: lo / f, max: hi * f};
  }
  const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
  return {min: lo - pad, max: hi + pad};
}

/* Text beside each point (its raw.note), e.g. the step a metric was taken at. */
const pointNotes = {
  id: 'pointNotes',
  afterDatasetsDraw(chart, args, opts) {
    if (!opts || !opts.enabled) return;
    const {ctx} = chart;
    ctx.save();
    ctx.font = '10px ' + Chart.defaults.font.family;
    ctx.fillStyle = '#5f6368';
    ctx.textBaseline = 'middle';
    chart.data.datasets.forEach((ds, i) => {
      if (!chart.isDatasetVisible(i)) return;
      chart.getDatasetMeta(i).data.forEach((el, k) => {
        const note = ds.data[k] && ds.data[k].note;
        if (note) ctx.fillText(note, el.x + 8, el.y);
      });
    });
    ctx.restore();
  },
};
Chart.register(pointNotes);

/* A scatter.  opts: {xTitle, yTitle, logX, logY, categories, x: {min, max},
 * y: {min, max}, legend, notes (draw each point's raw.note), label (tooltip line)}. */
export function scatterChart(canvas, datasets, opts = {}) {
  return new Chart(canvas, {
    type: 'scatter',
    data: {datasets},
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
      scales: {
        x: opts.categories
          ? {type: 'category', labels: opts.categories, offset: true, title: {display: true, text: opts.xTitle}}
          : Object.assign({type: opts.logX ? 'logarithmic' : 'linear', title: {display: true, text: opts.xTitle}, ticks: {callback: opts.logX ? logTick : fmtTick}}, opts.x || {}),
        y: Object.assign({type: opts.logY ? 'logarithmic' : 'linear', title: {display: true, text: opts.yTitle}, ticks: {callback: opts.logY ? logTick : fmtTick}}, opts.y || {}),
      },
      elements: {point: {radius: 5, hoverRadius: 7}},
      plugins: {
        pointNotes: {enabled: !!opts.notes},
        legend: {display: !!opts.legend, position: 'bottom', labels: {usePointStyle: true, boxWidth: 8, boxHeight: 8}},
        tooltip: {callbacks: {label: opts.label || ((item) => ' ' + (item.raw.label || '') + ': ' + Number(item.parsed.y).toPrecision(5))}},
      },
    },
  });
}
