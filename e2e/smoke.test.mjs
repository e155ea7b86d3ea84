import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launch, newPage, screenshot } from './lib/browser.mjs';
import { startServer } from './lib/server.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('home page loads with htmx and no console errors', async () => {
  const page = await newPage(browser);
  const res = await page.goto(`${server.url}/`, { waitUntil: 'load' });
  assert.equal(res.status(), 200);
  assert.match(await page.title(), /PulseGuardian/);

  await page.waitForFunction(() => typeof window.htmx !== 'undefined');
  assert.equal(await page.evaluate(() => window.htmx.version), '2.0.11');

  const cssLoaded = await page.evaluate(() =>
    [...document.styleSheets].some((s) => s.href && s.href.endsWith('/assets/app.css')));
  assert.ok(cssLoaded, 'app.css is linked and loaded');

  await screenshot(page, 'home');
  assert.deepEqual(page.consoleErrors, []);
  await page.context().close();
});

test('/healthz says ok', async () => {
  const res = await fetch(`${server.url}/healthz`);
  assert.equal(res.status, 200);
  assert.equal((await res.text()).trim(), 'ok');
});
