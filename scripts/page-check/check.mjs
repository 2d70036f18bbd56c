#!/usr/bin/env node
// Headless check of the Veloc Pulse live page.
//
//   node check.mjs URL SCREENSHOT.png
//
// Opens URL in the system Chromium (never a downloaded one: CHROMIUM or
// /usr/bin/chromium), waits until every headline tile ([data-kpi]) shows a
// value, waits a few seconds, checks that at least two tiles changed (the
// page is live), takes a full-page screenshot and prints a JSON summary.
// Exits 1 on any console error, page error, failed request, missing tile,
// unchanged values or timeout; 0 otherwise.
//
// PAGE_CHECK_MIN_CHANGED (default 2) sets how many tiles must change (0 for
// an instance that has caught up and is idle); PAGE_CHECK_EXPECT names a
// text the page must show (for example the scale-out line of the
// operations panel).

import { launch, startRun } from './harness.mjs';

const EXPECTED_TILES = [
  'deposits_amount', 'deposits_count', 'ftd_count', 'signups', 'active_1d', 'active_7d',
  'active_30d', 'net_deposits', 'events_per_s', 'events_read',
];
const FILL_TIMEOUT_MS = 30_000;
const CHANGE_WAIT_MS = 4_000;
const MIN_CHANGED = Number(process.env.PAGE_CHECK_MIN_CHANGED ?? 2);
const EXPECT = process.env.PAGE_CHECK_EXPECT || '';
const HARD_TIMEOUT_MS = 90_000;
const PLACEHOLDERS = ['', '—', '…', '-', '...'];

const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error('usage: node check.mjs URL SCREENSHOT.png');
  process.exit(2);
}

const summary = { url, errors: [], tiles_before: {}, tiles_after: {}, changed: [], screenshot: null, duration_s: 0 };
let collecting = true;
let context = null;
const { profile, finish } = startRun(summary, { profilePrefix: 'pulse-page-check-', hardTimeoutMs: HARD_TIMEOUT_MS });

const readTiles = (page) => page.evaluate(() => {
  const out = {};
  for (const el of document.querySelectorAll('[data-kpi]')) {
    out[el.getAttribute('data-kpi')] = (el.textContent || '').replace(/\s+/g, ' ').trim();
  }
  return out;
});

try {
  let page;
  ({ context, page } = await launch(profile));

  page.on('console', (msg) => {
    if (!collecting) return;
    const text = msg.text();
    // Errors, and the page's own warnings about data it could not draw.
    if (msg.type() === 'error' || (msg.type() === 'warning' && text.startsWith('[pulse]'))) {
      summary.errors.push(`console ${msg.type()}: ${text}`);
    }
  });
  page.on('pageerror', (err) => { if (collecting) summary.errors.push(`page error: ${err.message}`); });
  page.on('requestfailed', (req) => {
    if (collecting) summary.errors.push(`request failed: ${req.method()} ${req.url()}: ${req.failure()?.errorText ?? '?'}`);
  });
  page.on('response', (res) => {
    if (collecting && res.status() >= 400) summary.errors.push(`HTTP ${res.status()}: ${res.request().method()} ${res.url()}`);
  });

  const nav = await page.goto(url, { waitUntil: 'load', timeout: FILL_TIMEOUT_MS });
  if (!nav || !nav.ok()) summary.errors.push(`page answered ${nav ? nav.status() : 'nothing'}`);

  try {
    await page.waitForFunction(({ expected, placeholders }) => {
      const els = [...document.querySelectorAll('[data-kpi]')];
      if (!els.length) return false;
      const names = new Set(els.map((e) => e.getAttribute('data-kpi')));
      if (!expected.every((n) => names.has(n))) return false;
      return els.every((e) => !placeholders.includes((e.textContent || '').replace(/\s+/g, ' ').trim()));
    }, { expected: EXPECTED_TILES, placeholders: PLACEHOLDERS }, { timeout: FILL_TIMEOUT_MS, polling: 250 });
  } catch {
    const tiles = await readTiles(page).catch(() => ({}));
    summary.tiles_before = tiles;
    const missing = EXPECTED_TILES.filter((n) => !(n in tiles));
    const empty = Object.entries(tiles).filter(([, t]) => PLACEHOLDERS.includes(t)).map(([n]) => n);
    summary.errors.push(`timeout after ${FILL_TIMEOUT_MS / 1000} s waiting for tiles` +
      (missing.length ? `; missing: ${missing.join(', ')}` : '') + (empty.length ? `; empty: ${empty.join(', ')}` : ''));
    throw new Error('tiles did not fill');
  }

  summary.tiles_before = await readTiles(page);
  await page.waitForTimeout(CHANGE_WAIT_MS);
  summary.tiles_after = await readTiles(page);
  summary.changed = Object.keys(summary.tiles_after).filter((k) => summary.tiles_after[k] !== summary.tiles_before[k]);
  if (summary.changed.length < MIN_CHANGED) {
    summary.errors.push(`only ${summary.changed.length} tile(s) changed in ${CHANGE_WAIT_MS / 1000} s; expected at least ${MIN_CHANGED}`);
  }

  if (EXPECT) {
    try {
      await page.waitForFunction((t) => document.body.innerText.includes(t), EXPECT, { timeout: FILL_TIMEOUT_MS, polling: 250 });
      summary.expected_text = EXPECT;
    } catch {
      summary.errors.push(`the page never showed "${EXPECT}"`);
    }
  }

  // The churn-risk panel shows the model's bands and the alerts panel lists alerts.
  try {
    await page.waitForFunction(() => {
      const text = (id) => ((document.getElementById(id) || {}).innerText || '');
      return text('p-churn').includes('at high or critical risk') && document.querySelectorAll('#p-alerts .alerts > *').length > 0;
    }, null, { timeout: FILL_TIMEOUT_MS, polling: 250 });
    summary.churn_panel = 'bands shown';
    summary.alerts_listed = await page.evaluate(() => document.querySelectorAll('#p-alerts .alerts > *').length);
  } catch {
    summary.errors.push('the churn panel shows no bands or the alerts panel lists no alerts');
  }

  await page.screenshot({ path: screenshot, fullPage: true });
  summary.screenshot = screenshot;
} catch (err) {
  if (err && err.message !== 'tiles did not fill') {
    // Playwright appends a call log (with terminal colours): keep the first line.
    const first = String(err.message || err).replace(/\x1b\[[0-9;]*m/g, '').split('\n')[0];
    summary.errors.push(`check failed: ${first}`);
  }
} finally {
  // In-flight polls are aborted when the browser closes: not the page's fault.
  collecting = false;
  if (context) await context.close().catch(() => {});
}
finish(summary.errors.length ? 1 : 0);
