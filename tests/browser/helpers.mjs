// Shared set-up of the browser suite: the environment it needs, Debian's Chromium through
// playwright-core (never a downloaded browser), screenshots, polling without fixed sleeps, and
// the public API (Authorization: Bearer) for what the dashboard does not do itself (emitting
// events).

import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

import { chromium } from 'playwright-core';

const REQUIRED = ['VELLUM_BASE_URL', 'VELLUM_API_KEY', 'VELLUM_ADMIN_EMAIL', 'VELLUM_ADMIN_PASSWORD', 'VELLUM_SCREENSHOT_DIR'];

/** Reads the suite's environment, or throws naming every missing variable. */
export function environment() {
  const missing = REQUIRED.filter((name) => !process.env[name]);
  if (missing.length) {
    throw new Error(
      `the browser suite needs ${missing.join(', ')}: VELLUM_BASE_URL (http://127.0.0.1:PORT of a running vellum serve), ` +
        'VELLUM_API_KEY (an sk_… key of that server), VELLUM_ADMIN_EMAIL and VELLUM_ADMIN_PASSWORD (an operator of that server) ' +
        'and VELLUM_SCREENSHOT_DIR (where to save screenshots)',
    );
  }
  return {
    baseUrl: process.env.VELLUM_BASE_URL.replace(/\/+$/, ''),
    apiKey: process.env.VELLUM_API_KEY,
    email: process.env.VELLUM_ADMIN_EMAIL,
    password: process.env.VELLUM_ADMIN_PASSWORD,
    screenshotDir: path.resolve(process.env.VELLUM_SCREENSHOT_DIR),
  };
}

export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches Debian's Chromium (or VELLUM_CHROMIUM); fails clearly when it is not installed. */
export async function launchBrowser() {
  const executablePath = process.env.VELLUM_CHROMIUM || '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    throw new Error(
      `no Chromium at ${executablePath}: install Debian's package (apt-get install -y chromium) or set VELLUM_CHROMIUM ` +
        'to a Chromium binary; this suite never downloads a browser',
    );
  }
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS });
}

/**
 * Watches a page for what must never happen: uncaught exceptions, and Content-Security-Policy
 * violations (an inline script, style or handler the policy refused). `problems()` lists them.
 */
export function watchPage(page) {
  const seen = [];
  page.on('pageerror', (error) => seen.push(`uncaught exception: ${error.message}`));
  page.on('console', (message) => {
    const text = message.text();
    if (/Content Security Policy|Refused to (apply|execute|load)/i.test(text)) seen.push(`CSP violation: ${text}`);
  });
  return {
    problems: () => seen.splice(0),
  };
}

/** Lists the form controls of the page that have no label (for people using a screen reader). */
export async function unlabelledControls(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea')]
      .filter((control) => control.type !== 'hidden')
      .filter((control) => !(control.labels && control.labels.length) && !control.getAttribute('aria-label') && !control.getAttribute('aria-labelledby'))
      .map((control) => control.outerHTML.slice(0, 120)),
  );
}

/** Saves a PNG screenshot `<name>.png` in the screenshot directory. */
export async function screenshot(page, name, options = {}) {
  const dir = environment().screenshotDir;
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`);
  await page.screenshot({ path: file, type: 'png', ...options });
  return file;
}

/**
 * Polls `check` until it returns a truthy value (which is returned) or the deadline passes (then
 * throws with `message` and the last value or error).
 */
export async function eventually(check, { timeout = 15000, interval = 100, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeout} ms waiting for ${message} (last: ${detail})`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/** Calls the public API with a Bearer key; answers {status, body}. */
export async function publicApi(method, apiPath, body, { apiKey = environment().apiKey } = {}) {
  const { baseUrl } = environment();
  const init = { method, headers: { Authorization: `Bearer ${apiKey}` } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`${baseUrl}${apiPath}`, init);
  const text = await response.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, body: parsed };
}

/** Calls the public API and throws unless the status is the expected one. */
export async function publicApiOk(method, apiPath, body, expected = [200, 201]) {
  const answer = await publicApi(method, apiPath, body);
  if (!expected.includes(answer.status)) {
    throw new Error(`${method} ${apiPath} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  }
  return answer.body;
}

/** A suffix that makes names of this run unique on a shared server. */
export function uniqueSuffix() {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}
