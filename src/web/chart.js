// chart.js — bar charts drawn on <canvas>, no library.
//
// `drawBars` draws vertical bars (a time series); `drawHBars` draws labelled horizontal bars
// (a ranking). Both scale for the device's pixel ratio, read their colours from CSS custom
// properties (so the stylesheet owns the look), and give the canvas a text alternative
// through `aria-label`, since a picture alone tells a screen reader nothing.

/** Colours and font from the page's CSS (`--chart-bar`, `--chart-axis`, `--chart-text`). */
function theme(canvas) {
  const css = getComputedStyle(canvas);
  const get = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  return {
    bar: get('--chart-bar', '#3b6fd8'),
    axis: get('--chart-axis', '#c8ccd4'),
    text: get('--chart-text', '#444'),
    font: `12px ${css.fontFamily || 'sans-serif'}`,
  };
}

/** Sizes the canvas backing store to its CSS box times the pixel ratio; returns a 2D context in CSS pixels. */
function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth));
  const height = Math.max(1, Math.round(canvas.clientHeight));
  if (canvas.width !== width * ratio || canvas.height !== height * ratio) {
    canvas.width = width * ratio;
    canvas.height = height * ratio;
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return { ctx, width, height };
}

/** A "nice" axis maximum: 1, 2, 5 × 10^n at or above `value` (at least 1). */
export function niceMax(value) {
  if (!(value > 0)) return 1;
  const pow = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * pow >= value) return step * pow;
  return 10 * pow;
}

/**
 * Counts events per minute over the last `minutes` minutes, oldest bucket first.
 * @param {{t: number}[]} times event times in ms
 */
export function perMinute(times, now = Date.now(), minutes = 60) {
  const buckets = new Array(minutes).fill(0);
  const end = Math.floor(now / 60_000) + 1; // the current minute is the last bucket
  for (const { t } of times) {
    const i = minutes - (end - Math.floor(t / 60_000));
    if (i >= 0 && i < minutes) buckets[i] += 1;
  }
  return buckets;
}

/**
 * Vertical bars, e.g. events per minute.
 * @param {HTMLCanvasElement} canvas
 * @param {number[]} values oldest first
 * @param {{ label: string, xStart?: string, xEnd?: string }} opts texts for the axis ends
 */
export function drawBars(canvas, values, { label, xStart = '', xEnd = '' }) {
  const { ctx, width, height } = prepare(canvas);
  const t = theme(canvas);
  const max = niceMax(Math.max(0, ...values));
  const pad = { left: 28, right: 6, top: 8, bottom: 20 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;

  ctx.font = t.font;
  ctx.fillStyle = t.text;
  ctx.textBaseline = 'middle';
  ctx.textAlign = 'right';
  ctx.fillText(String(max), pad.left - 4, pad.top);
  ctx.fillText('0', pad.left - 4, pad.top + plotH);
  ctx.textBaseline = 'top';
  ctx.textAlign = 'left';
  ctx.fillText(xStart, pad.left, pad.top + plotH + 4);
  ctx.textAlign = 'right';
  ctx.fillText(xEnd, width - pad.right, pad.top + plotH + 4);

  ctx.strokeStyle = t.axis;
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(pad.left + 0.5, pad.top);
  ctx.lineTo(pad.left + 0.5, pad.top + plotH + 0.5);
  ctx.lineTo(width - pad.right, pad.top + plotH + 0.5);
  ctx.stroke();

  const slot = plotW / Math.max(1, values.length);
  const barW = Math.max(1, slot * 0.75);
  ctx.fillStyle = t.bar;
  values.forEach((v, i) => {
    if (!v) return;
    const h = (v / max) * plotH;
    ctx.fillRect(pad.left + i * slot + (slot - barW) / 2, pad.top + plotH - h, barW, h);
  });

  const total = values.reduce((a, b) => a + b, 0);
  const busiest = Math.max(0, ...values);
  canvas.setAttribute('aria-label', `${label}: ${total} in total, at most ${busiest} in one minute.`);
}

/**
 * Horizontal labelled bars, e.g. reservations per business.
 * @param {HTMLCanvasElement} canvas
 * @param {{ label: string, value: number }[]} rows top to bottom
 * @param {{ label: string, empty?: string }} opts
 */
export function drawHBars(canvas, rows, { label, empty = 'No data yet' }) {
  const { ctx, width, height } = prepare(canvas);
  const t = theme(canvas);
  ctx.font = t.font;
  ctx.textBaseline = 'middle';
  if (!rows.length) {
    ctx.fillStyle = t.text;
    ctx.textAlign = 'center';
    ctx.fillText(empty, width / 2, height / 2);
    canvas.setAttribute('aria-label', `${label}: ${empty}.`);
    return;
  }
  const max = niceMax(Math.max(0, ...rows.map((r) => r.value)));
  const labelW = Math.min(140, Math.round(width * 0.4));
  const valueW = 34;
  const rowH = height / rows.length;
  const barH = Math.max(4, Math.min(18, rowH * 0.6));
  rows.forEach((row, i) => {
    const y = i * rowH + rowH / 2;
    ctx.fillStyle = t.text;
    ctx.textAlign = 'right';
    ctx.fillText(ellipsize(ctx, row.label, labelW - 8), labelW - 8, y);
    const w = (row.value / max) * (width - labelW - valueW);
    ctx.fillStyle = t.bar;
    ctx.fillRect(labelW, y - barH / 2, Math.max(row.value ? 2 : 0, w), barH);
    ctx.fillStyle = t.text;
    ctx.textAlign = 'left';
    ctx.fillText(String(row.value), labelW + w + 4, y);
  });
  const summary = rows.map((r) => `${r.label} ${r.value}`).join(', ');
  canvas.setAttribute('aria-label', `${label}: ${summary}.`);
}

/** Shortens `text` with an ellipsis to fit `maxWidth` pixels. */
function ellipsize(ctx, text, maxWidth) {
  if (ctx.measureText(text).width <= maxWidth) return text;
  let s = text;
  while (s.length > 1 && ctx.measureText(`${s}…`).width > maxWidth) s = s.slice(0, -1);
  return `${s}…`;
}
