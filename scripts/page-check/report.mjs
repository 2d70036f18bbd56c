#!/usr/bin/env node
// Headless check of a Veloc Pulse model-evaluation report (a static HTML file).
//
//   node report.mjs REPORT.html SCREENSHOT.png [CHART...]
//
// Opens REPORT.html (a local file) in the system Chromium (never a downloaded
// one: CHROMIUM or /usr/bin/chromium). Each chart is a
// <figure data-chart="NAME"><svg>...</svg><figcaption>...</figcaption></figure>;
// the expected names are roc, pr, calibration, bands, lift, gains, importance,
// or the CHART arguments when given. For each expected chart the figure must
// exist and hold an svg at least 51 x 51 px with at least 5 drawn elements
// (path, polyline, polygon, line, rect, circle) and at least one non-empty
// text element. Takes a full-page screenshot and prints a JSON summary.
// Exits 1 on any console error, page error, failed request, request to
// anything but file: or data: (the report must be self-contained: such
// requests are also blocked), missing or undrawn chart, any [data-chart]
// figure whose svg draws nothing, or timeout; 0 otherwise; 2 on bad usage.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { launch, startRun } from './harness.mjs';

const DEFAULT_CHARTS = ['roc', 'pr', 'calibration', 'bands', 'lift', 'gains', 'importance'];
const LOAD_TIMEOUT_MS = 30_000;
const DRAW_TIMEOUT_MS = 10_000;
const HARD_TIMEOUT_MS = 60_000;
const MIN_SIZE_PX = 50;
const MIN_DRAWN = 5;
const MIN_TEXTS = 1;
const DRAWN_SELECTOR = 'path, polyline, polygon, line, rect, circle';
// Shapes inside these are templates, not drawn by themselves.
const NOT_DRAWN_INSIDE = 'defs, clipPath, mask, marker, pattern, symbol';

const [report, screenshot, ...chartArgs] = process.argv.slice(2);
if (!report || !screenshot || chartArgs.some((c) => !c.trim())) {
  console.error('usage: node report.mjs REPORT.html SCREENSHOT.png [CHART...]');
  process.exit(2);
}
const expected = chartArgs.length ? chartArgs : DEFAULT_CHARTS;
const isLocal = (u) => /^(file|data):/i.test(u);

const summary = {
  report, url: null, errors: [], expected, charts: [], extra: [], screenshot: null, duration_s: 0,
};
let collecting = true;
let context = null;
const { profile, finish } = startRun(summary, { profilePrefix: 'pulse-report-check-', hardTimeoutMs: HARD_TIMEOUT_MS });

// Every [data-chart] figure, in page order, measured.
const readCharts = (page) => page.evaluate(({ drawnSel, notDrawnInside }) => {
  const drawnIn = (svg) => [...svg.querySelectorAll(drawnSel)].filter((el) => !el.closest(notDrawnInside)).length;
  const textsIn = (svg) => [...svg.querySelectorAll('text')]
    .filter((el) => !el.closest(notDrawnInside) && (el.textContent || '').trim()).length;
  return [...document.querySelectorAll('figure[data-chart]')].map((fig) => {
    // Outermost svgs of the figure (an svg nested in another belongs to it).
    const svgs = [...fig.querySelectorAll('svg')].filter((s) => !s.parentElement || !s.parentElement.closest('svg'));
    const first = svgs[0];
    const box = first ? first.getBoundingClientRect() : null;
    return {
      name: fig.getAttribute('data-chart'),
      svgs: svgs.length,
      width: box ? Math.round(box.width * 10) / 10 : null,
      height: box ? Math.round(box.height * 10) / 10 : null,
      drawn: first ? drawnIn(first) : null,
      texts: first ? textsIn(first) : null,
      svg_drawn: svgs.map(drawnIn),
    };
  });
}, { drawnSel: DRAWN_SELECTOR, notDrawnInside: NOT_DRAWN_INSIDE });

try {
  const path = resolve(report);
  if (!existsSync(path)) {
    summary.errors.push(`no such file: ${path}`);
    throw new Error('no report');
  }
  summary.url = pathToFileURL(path).href;

  let page;
  ({ context, page } = await launch(profile));

  // The report must be self-contained: note and block anything not file: or data:.
  const external = new Set();
  await context.route((u) => !isLocal(u.href), (route) => route.abort('blockedbyclient'));
  context.on('request', (req) => {
    if (!collecting || isLocal(req.url())) return;
    external.add(req.url());
    summary.errors.push(`non-local request (blocked): ${req.method()} ${req.url()}`);
  });
  context.on('requestfailed', (req) => {
    // The blocked non-local requests are already reported.
    if (collecting && !external.has(req.url())) {
      summary.errors.push(`request failed: ${req.method()} ${req.url()}: ${req.failure()?.errorText ?? '?'}`);
    }
  });
  context.on('response', (res) => {
    if (collecting && res.status() >= 400) summary.errors.push(`HTTP ${res.status()}: ${res.request().method()} ${res.url()}`);
  });
  page.on('websocket', (ws) => { if (collecting) summary.errors.push(`non-local request: websocket ${ws.url()}`); });
  page.on('console', (msg) => {
    if (collecting && msg.type() === 'error') summary.errors.push(`console error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => { if (collecting) summary.errors.push(`page error: ${err.message}`); });

  await page.goto(summary.url, { waitUntil: 'load', timeout: LOAD_TIMEOUT_MS });

  // Charts drawn by a script may come a little after load: give them a moment.
  await page.waitForFunction(({ names, drawnSel }) => {
    const figs = [...document.querySelectorAll('figure[data-chart]')];
    return names.every((n) => figs.some((f) => {
      const svg = f.getAttribute('data-chart') === n && f.querySelector('svg');
      return svg && svg.querySelector(drawnSel);
    }));
  }, { names: expected, drawnSel: DRAWN_SELECTOR }, { timeout: DRAW_TIMEOUT_MS, polling: 250 }).catch(() => {});
  await page.evaluate(() => document.fonts.ready.then(() => new Promise((r) => requestAnimationFrame(() => r()))));

  const found = await readCharts(page);
  for (const name of expected) {
    const figs = found.filter((f) => f.name === name);
    const fig = figs[0];
    if (!fig) {
      summary.charts.push({ name, ok: false, width: null, height: null, drawn: null, texts: null });
      summary.errors.push(`chart ${name}: no <figure data-chart="${name}">`);
      continue;
    }
    const { width, height, drawn, texts } = fig;
    const problems = [];
    if (figs.length > 1) problems.push(`${figs.length} figures with this name`);
    if (!fig.svgs) {
      problems.push('no svg');
    } else {
      if (!(width > MIN_SIZE_PX && height > MIN_SIZE_PX)) problems.push(`svg is ${width} x ${height} px, must exceed ${MIN_SIZE_PX} x ${MIN_SIZE_PX}`);
      if (drawn < MIN_DRAWN) problems.push(`${drawn} drawn element(s), need at least ${MIN_DRAWN}`);
      if (texts < MIN_TEXTS) problems.push('no text element (axis labels)');
    }
    summary.charts.push({ name, ok: !problems.length, width, height, drawn, texts });
    for (const p of problems) summary.errors.push(`chart ${name}: ${p}`);
  }
  // Any chart, expected or not, whose svg drew nothing.
  for (const fig of found) {
    if (fig.svg_drawn.some((n) => n === 0)) summary.errors.push(`chart ${fig.name}: an svg with nothing drawn`);
  }
  summary.extra = [...new Set(found.map((f) => f.name).filter((n) => !expected.includes(n)))];

  await page.screenshot({ path: screenshot, fullPage: true });
  summary.screenshot = screenshot;
} catch (err) {
  if (err && err.message !== 'no report') {
    // Playwright appends a call log (with terminal colours): keep the first line.
    const first = String(err.message || err).replace(/\x1b\[[0-9;]*m/g, '').split('\n')[0];
    summary.errors.push(`check failed: ${first}`);
  }
} finally {
  collecting = false;
  if (context) await context.close().catch(() => {});
}
finish(summary.errors.length ? 1 : 0);
