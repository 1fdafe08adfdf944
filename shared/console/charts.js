// The status page's charts, drawn as SVG by the page itself (no chart library): each is
// a figure with its caption, a legend, the drawing, a sentence saying what it shows (the
// drawing's text alternative, which screen readers read for it), and the numbers as a
// table behind a disclosure.

import { h } from './dom.js';
import { t, number, currentLang } from './i18n.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 480;
const H = 170;
const PAD = { left: 40, right: 8, top: 12, bottom: 22 };

/** An SVG element; attributes as `h` takes them, children nodes or text. */
function s(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null && value !== false) el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A round top for the y axis: 1, 2 or 5 times a power of ten, at least `max`. */
function niceTop(max) {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 5, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}

function clock(iso) {
  return new Intl.DateTimeFormat(currentLang() === 'ja' ? 'ja-JP' : 'en-GB', {
    hour: '2-digit', minute: '2-digit',
  }).format(new Date(iso));
}

/**
 * One chart. `spec`: `id`, `title`, `series` ([{key, label, cls, kind}]: values read from
 * each bucket; `kind` `bars` (stacked) or `line`; `checked`: only buckets with a room
 * check have a value), `reference` ({value, label}: a dashed line, e.g. the gap
 * threshold), `summary` (the sentence), over `history` ({bucketSecs, buckets}).
 */
export function chart(spec, history) {
  const { buckets } = history;
  const n = buckets.length;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const value = (b, series) => {
    const v = b[series.key];
    if (v === null || v === undefined || (series.checked && !Number(b.checks))) return null;
    return Number(v);
  };
  const bars = spec.series.filter((x) => x.kind === 'bars');
  const lines = spec.series.filter((x) => x.kind !== 'bars');
  const highest = Math.max(0,
    ...buckets.map((b) => bars.reduce((sum, x) => sum + (value(b, x) ?? 0), 0)),
    ...buckets.flatMap((b) => lines.map((x) => value(b, x) ?? 0)));
  const top = niceTop(Math.max(highest, spec.reference ? spec.reference.value : 0));
  const x = (i) => PAD.left + (n <= 1 ? 0 : (i * plotW) / n);
  const y = (v) => PAD.top + plotH - (v / top) * plotH;
  const slot = n ? plotW / n : plotW;

  const titleId = `${spec.id}-title`;
  const descId = `${spec.id}-desc`;
  const marks = [];
  {
    buckets.forEach((b, i) => {
      let base = 0;
      for (const series of bars) {
        const v = value(b, series) ?? 0;
        if (v > 0) {
          marks.push(s('rect', {
            class: `mark ${series.cls}`, x: (x(i) + slot * 0.1).toFixed(1), width: Math.max(1, slot * 0.8).toFixed(1),
            y: y(base + v).toFixed(1), height: Math.max(0.5, y(base) - y(base + v)).toFixed(1),
            'data-series': series.key,
          }));
        }
        base += v;
      }
    });
  }
  {
    for (const series of lines) {
      // A line through the buckets that have a value (a bucket without a check has none:
      // the line goes straight on to the next one), and a dot on each.
      const points = [];
      buckets.forEach((b, i) => {
        const v = value(b, series);
        if (v !== null) points.push([(x(i) + slot / 2).toFixed(1), y(v).toFixed(1)]);
      });
      if (points.length > 1) {
        marks.push(s('polyline', { class: `line ${series.cls}`, points: points.map((p) => p.join(',')).join(' '), 'data-series': series.key }));
      }
      if (points.length <= 12) {
        for (const [px, py] of points) {
          marks.push(s('circle', { class: `mark ${series.cls}`, cx: px, cy: py, r: 2.5, 'data-series': series.key }));
        }
      }
    }
  }
  const axes = [
    s('line', { class: 'axis', x1: PAD.left, y1: PAD.top + plotH, x2: W - PAD.right, y2: PAD.top + plotH }),
    s('line', { class: 'grid', x1: PAD.left, y1: PAD.top, x2: W - PAD.right, y2: PAD.top }),
    s('text', { class: 'tick', x: PAD.left - 4, y: PAD.top + 4, 'text-anchor': 'end' }, number(top)),
    s('text', { class: 'tick', x: PAD.left - 4, y: PAD.top + plotH, 'text-anchor': 'end' }, '0'),
  ];
  if (n) {
    axes.push(
      s('text', { class: 'tick', x: PAD.left, y: H - 6 }, clock(buckets[0].start)),
      s('text', { class: 'tick', x: W - PAD.right, y: H - 6, 'text-anchor': 'end' }, clock(buckets[n - 1].start)),
    );
  }
  if (spec.reference) {
    const ry = y(spec.reference.value).toFixed(1);
    axes.push(
      s('line', { class: 'reference', x1: PAD.left, y1: ry, x2: W - PAD.right, y2: ry }),
      s('text', { class: 'tick reference-label', x: W - PAD.right - 2, y: Number(ry) - 3, 'text-anchor': 'end' }, spec.reference.label),
    );
  }
  const drawing = s('svg', {
    class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${titleId} ${descId}`,
  },
  s('title', {}, spec.title), s('desc', {}, spec.summary), axes, marks);

  const legend = h('ul', { class: 'legend' }, spec.series.map((series) => h('li', {},
    h('span', { class: `swatch ${series.kind === 'bars' ? '' : 'swatch-line '}${series.cls}`, 'aria-hidden': 'true' }), series.label)));
  // The numbers behind the drawing: the buckets that have any.
  const rows = buckets.filter((b) => spec.series.some((x) => value(b, x) !== null && (x.checked || value(b, x) > 0)));
  const table = h('details', { class: 'chart-table' },
    h('summary', {}, t('charts.asTable')),
    rows.length
      ? h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', {}, t('charts.time')), spec.series.map((x) => h('th', {}, x.label)))),
        h('tbody', {}, rows.map((b) => h('tr', {}, h('td', {}, clock(b.start)),
          spec.series.map((x) => h('td', {}, value(b, x) === null ? '—' : number(value(b, x)))))))))
      : h('p', { class: 'muted' }, t('charts.nothing')));
  return h('figure', { class: 'card chart-card', id: spec.id, 'data-marks': marks.length },
    h('figcaption', { id: titleId }, spec.title),
    legend,
    drawing,
    h('p', { class: 'chart-summary', id: descId }, spec.summary),
    table);
}

const sum = (buckets, key) => buckets.reduce((total, b) => total + Number(b[key] ?? 0), 0);
const most = (buckets, key) => buckets.reduce((top, b) => Math.max(top, Number(b[key] ?? 0)), 0);

/** The status page's five charts of `history` (GET /api/chatwork/status/history). */
export function statusCharts(history) {
  const b = history.buckets;
  const span = t(history.range === 'day' ? 'charts.lastDay' : 'charts.lastHour');
  const checks = sum(b, 'checks');
  const limit = most(b, 'budgetLimit');
  return [
    chart({
      id: 'chart-budget', title: t('charts.budget'),
      series: [{ key: 'budgetUsed', label: t('charts.used'), cls: 's1', checked: true }],
      reference: limit ? { value: limit, label: t('charts.limit', number(limit)) } : null,
      summary: checks
        ? t('charts.budgetSummary', span, number(most(b, 'budgetUsed')), number(limit), number(checks))
        : t('charts.noChecks', span),
    }, history),
    chart({
      id: 'chart-rooms', title: t('charts.rooms'),
      series: [
        { key: 'roomsFetched', label: t('charts.fetched'), cls: 's2', kind: 'bars', checked: true },
        { key: 'roomsDeferred', label: t('charts.deferred'), cls: 's3', kind: 'bars', checked: true },
        { key: 'roomsChanged', label: t('charts.changed'), cls: 's1', checked: true },
      ],
      summary: checks
        ? t('charts.roomsSummary', span, number(sum(b, 'roomsChanged')), number(sum(b, 'roomsFetched')), number(sum(b, 'roomsDeferred')))
        : t('charts.noChecks', span),
    }, history),
    chart({
      id: 'chart-unseen', title: t('charts.unseen'),
      series: [{ key: 'unseenMax', label: t('charts.unseenMax'), cls: 's3', checked: true }],
      reference: { value: 100, label: t('charts.gapLine') },
      summary: checks ? t('charts.unseenSummary', span, number(most(b, 'unseenMax'))) : t('charts.noChecks', span),
    }, history),
    chart({
      id: 'chart-webhooks', title: t('charts.webhooks'),
      series: [
        { key: 'webhookStored', label: t('charts.stored'), cls: 's2', kind: 'bars' },
        { key: 'webhookIgnored', label: t('charts.ignored'), cls: 's4', kind: 'bars' },
        { key: 'webhookRefused', label: t('charts.refused'), cls: 's5', kind: 'bars' },
        { key: 'webhookFailed', label: t('charts.failed'), cls: 's3', kind: 'bars' },
      ],
      summary: t('charts.webhooksSummary', span, number(sum(b, 'webhookStored')), number(sum(b, 'webhookIgnored')),
        number(sum(b, 'webhookRefused')), number(sum(b, 'webhookFailed'))),
    }, history),
    chart({
      id: 'chart-gaps', title: t('charts.gaps'),
      series: [{ key: 'gaps', label: t('charts.gapCount'), cls: 's5', kind: 'bars' }],
      summary: sum(b, 'gaps')
        ? t('charts.gapsSummary', span, number(sum(b, 'gaps')), number(sum(b, 'gapMissed')))
        : t('charts.noGaps', span),
    }, history),
  ];
}
