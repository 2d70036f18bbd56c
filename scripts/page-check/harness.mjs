// What check.mjs and report.mjs share: a throwaway Chromium profile, the
// JSON summary printed on exit (with the run's duration), a hard timeout
// against a hung browser, and the launch of the system Chromium (never a
// downloaded one: CHROMIUM or /usr/bin/chromium).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

/** Starts a run: `summary` is printed by `finish(code)`, which exits. */
export function startRun(summary, { profilePrefix, hardTimeoutMs }) {
  const started = Date.now();
  const profile = mkdtempSync(join(tmpdir(), profilePrefix));
  function finish(code) {
    summary.duration_s = Math.round((Date.now() - started) / 100) / 10;
    console.log(JSON.stringify(summary, null, 2));
    try { rmSync(profile, { recursive: true, force: true }); } catch { /* best effort */ }
    process.exit(code);
  }
  // A last resort against a hung browser: report and leave.
  const hardStop = setTimeout(() => {
    summary.errors.push(`hard timeout after ${hardTimeoutMs / 1000} s`);
    finish(1);
  }, hardTimeoutMs);
  hardStop.unref();
  return { profile, finish };
}

/** Headless system Chromium on `profile`: its context and first page. */
export async function launch(profile) {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1440, height: 1000 },
  });
  const page = context.pages()[0] || await context.newPage();
  return { context, page };
}
