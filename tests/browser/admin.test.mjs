// End-to-end test of the admin page: the real instagift binary on
// 127.0.0.1:0 with a fresh database, driven in Debian's headless Chromium.
//
// Logs in, creates a merchant, a location, a product and an option, issues
// a $100 certificate, redeems $40 of it on the point-of-sale screen, and
// reads the $60 balance certificate from the page. Any page JavaScript
// error or console error fails the test. Screenshots of the dashboard and
// the point-of-sale screen go to target/browser/.
//
// Run: node admin.test.mjs (INSTAGIFT_BIN picks the binary; default the
// release build, else the debug build).

import { chromium } from 'playwright-core';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHOTS = join(ROOT, 'target', 'browser');
const PASSWORD = 'browser test password';
const DEADLINE_MS = 180_000;
/** The server process, so a timeout can stop it too. */
let serverProcess = null;

function binary() {
  if (process.env.INSTAGIFT_BIN) return resolve(process.env.INSTAGIFT_BIN);
  for (const profile of ['release', 'debug']) {
    const path = join(ROOT, 'target', profile, 'instagift');
    if (existsSync(path)) return path;
  }
  throw new Error('no instagift binary: run cargo build first');
}

/** Sets the operator password through the CLI, reading it from stdin. */
function setPassword(bin, db) {
  const out = spawnSync(bin, ['--db', db, 'admin', 'set-password'], { input: PASSWORD + '\n', encoding: 'utf8' });
  assert.equal(out.status, 0, 'set-password failed: ' + out.stderr);
}

/** Starts the server; resolves with its base URL from the first stdout line. */
function startServer(bin, db) {
  const child = spawn(bin, ['--db', db, 'serve', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr = [];
  child.stderr.on('data', (d) => stderr.push(d));
  return new Promise((ok, fail) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      const url = (line.match(/http:\/\/\S+/) || [])[0];
      if (url) ok({ child, url, stderr });
      else fail(new Error('no address in the banner: ' + line));
    });
    child.once('exit', (code) => fail(new Error('server exited with ' + code + ': ' + Buffer.concat(stderr))));
  });
}

async function main() {
  const bin = binary();
  const dir = mkdtempSync(join(tmpdir(), 'instagift-browser-'));
  const db = join(dir, 'test.db');
  mkdirSync(SHOTS, { recursive: true });
  setPassword(bin, db);
  const server = await startServer(bin, db);
  serverProcess = server.child;
  const problems = [];
  const context = await chromium.launchPersistentContext(join(dir, 'chromium-profile'), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
  });
  const page = context.pages()[0] || (await context.newPage());
  try {
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push('console error: ' + m.text());
    });

    // Log in.
    await page.goto(server.url + '/admin/');
    await page.fill('#login-password', PASSWORD);
    await page.click('#login-submit');
    await page.waitForSelector('h1:has-text("Dashboard")');

    // A merchant, then on its page a location, a product and an option.
    await page.click('#nav a[href="#/merchants"]');
    await page.fill('#merchant-name', 'Tuscan Kitchen');
    await page.fill('#merchant-tz', 'America/New_York');
    await page.click('#merchant-create button[type="submit"]');
    await page.waitForSelector('h1:has-text("Tuscan Kitchen")');
    await page.fill('#location-name', 'Tuscan Kitchen Downtown');
    await page.fill('#location-address1', '1 Main St');
    await page.fill('#location-city', 'Boston');
    await page.click('#location-create button[type="submit"]');
    await page.waitForSelector('td:has-text("1 Main St")');
    await page.fill('#product-tagline', 'Dinner for two');
    await page.click('#product-create button[type="submit"]');
    await page.waitForSelector('.product-card h3:has-text("Dinner for two")');
    const optionForm = page.locator('form.option-create').first();
    await optionForm.locator('[name="face_value"]').fill('100.00');
    await optionForm.locator('[name="price"]').fill('80');
    await optionForm.locator('button[type="submit"]').click();
    await page.waitForSelector('.product-card td:has-text("$100.00")');

    // Issue one certificate to print at the counter.
    await page.click('#nav a[href="#/issue"]');
    await page.waitForSelector('#issue-form');
    await page.click('#issue-form button[type="submit"]');
    const code = (await page.locator('#issue-result a.mono').first().textContent()).trim();
    assert.match(code, /^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/, 'claim code shown after issue');

    // Point of sale: look it up (typed in lower case without dashes), redeem $40.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.click('#nav a[href="#/pos"]');
    await page.fill('#pos-code', code.replace(/-/g, '').toLowerCase());
    await page.click('#pos-lookup');
    await page.waitForSelector('#pos-value');
    assert.equal((await page.textContent('#pos-value')).trim(), '$100.00');
    await page.fill('#pos-amount', '40.00');
    await page.click('#pos-redeem');
    await page.waitForSelector('#pos-balance-amount');
    const redeemed = (await page.textContent('#pos-redeemed-amount')).trim();
    const balance = (await page.textContent('#pos-balance-amount')).trim();
    const balanceCode = (await page.textContent('#pos-balance-code')).trim();
    assert.equal(redeemed, '$40.00', 'redeemed amount on the receipt');
    assert.equal(balance, '$60.00', 'balance certificate amount on the page');
    assert.notEqual(balanceCode, code, 'the balance has its own claim code');
    await page.waitForFunction(() => {
      const img = document.querySelector('#pos-receipt img.qr');
      return img && img.complete && img.naturalWidth > 0;
    });
    await page.screenshot({ path: join(SHOTS, 'pos.png'), fullPage: true });

    // The printable balance certificate carries the amount and the code.
    await page.click('#pos-print-balance');
    await page.waitForSelector('.cert-card');
    assert.equal((await page.textContent('.cert-card .amount')).trim(), '$60.00');
    assert.equal((await page.textContent('.cert-card .code')).trim(), balanceCode);

    // The dashboard: outstanding liability is the balance, $60.00.
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.click('#nav a[href="#/dashboard"]');
    await page.waitForSelector('[data-total-open="USD"]');
    assert.equal((await page.textContent('[data-total-open="USD"]')).trim(), '$60.00');
    await page.screenshot({ path: join(SHOTS, 'dashboard.png'), fullPage: true });

    // Money entry is exact: no float rounding.
    const cents = await page.evaluate(() => ['0.29', '1.10', '19.99', '1,234.56', '.5'].map(window.instagiftAdmin.parseMoney));
    assert.deepEqual(cents, [29, 110, 1999, 123456, 50]);

    assert.deepEqual(problems, [], 'JavaScript errors on the page');
    console.log('browser test passed: redeemed ' + redeemed + ', balance ' + balance + ' (' + balanceCode + ')');
    console.log('screenshots: ' + join(SHOTS, 'dashboard.png') + ', ' + join(SHOTS, 'pos.png'));
  } catch (e) {
    // Leave the evidence for whoever reads the failure.
    await page.screenshot({ path: join(SHOTS, 'failure.png'), fullPage: true }).catch(() => {});
    if (problems.length) console.error('JavaScript problems on the page:\n  ' + problems.join('\n  '));
    console.error('server log (last lines):\n' + Buffer.concat(server.stderr).toString().split('\n').slice(-15).join('\n'));
    throw e;
  } finally {
    await context.close().catch(() => {});
    server.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

const timer = setTimeout(() => {
  console.error('browser test FAILED: timed out after ' + DEADLINE_MS / 1000 + ' s');
  if (serverProcess) serverProcess.kill('SIGKILL');
  console.log('browser: 0 passed, 1 failed');
  process.exit(1);
}, DEADLINE_MS);

main().then(
  () => {
    clearTimeout(timer);
    console.log('browser: 1 passed, 0 failed');
    process.exit(0);
  },
  (e) => {
    clearTimeout(timer);
    console.error('browser test FAILED:', e && e.stack ? e.stack : e);
    console.log('browser: 0 passed, 1 failed');
    process.exit(1);
  },
);
