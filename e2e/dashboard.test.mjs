// The dashboard end to end: sign in by email link, create a RabbitMQ account, publish
// to its queue over AMQP, watch the live gauge cross the warning size without a reload,
// delete the queue through its confirmation, and find it all in the audit log and its
// exports. Needs the services of scripts/services (RabbitMQ with management, SMTP sink).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import amqp from 'amqplib';
import { launch, newPage, screenshot } from './lib/browser.mjs';
import { startServer } from './lib/server.mjs';

const MGMT = (process.env.RABBIT_MANAGEMENT_URL ?? 'http://127.0.0.1:15672').replace(/\/+(api\/?)?$/, '');
const MGMT_AUTH = `Basic ${Buffer.from(`${process.env.RABBIT_USER ?? 'guest'}:${process.env.RABBIT_PASSWORD ?? 'guest'}`).toString('base64')}`;
const AMQP_HOST = process.env.E2E_AMQP_HOST ?? '127.0.0.1:5672';
const MAIL_DIR = process.env.E2E_MAIL_DIR ?? '/tmp/pulseguardian-mail';

const rnd = randomBytes(5).toString('hex');
const VHOST = `pg-e2e-${rnd}`;
const ADMIN = `e2e-${rnd}@example.com`;
const ACCOUNT = `e2e${rnd}`;
const PASSWORD = `Pw-${randomBytes(12).toString('hex')}`; // 27 characters
const QUEUE = `queue/${ACCOUNT}/jobs`;
// The contract grants write on `queue/<account>/...` and `exchange/<account>/...` only,
// not on the default exchange: messages reach the queue through the account's exchange.
const EXCHANGE = `exchange/${ACCOUNT}/jobs`;
const QUEUE_PATH = `/queues/${encodeURIComponent(VHOST)}/${encodeURIComponent(QUEUE)}`;
const GROWING = `queue/${ACCOUNT}/growing`;
const KINDS = ['QueueWarned', 'QueueDeletedByUser', 'AccountCreated', 'UserSignedIn'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function mgmt(method, apiPath, body) {
  const res = await fetch(`${MGMT}/api${apiPath}`, {
    method,
    headers: { authorization: MGMT_AUTH, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  return res;
}

async function mgmtOk(method, apiPath, body) {
  const res = await mgmt(method, apiPath, body);
  if (!res.ok) throw new Error(`${method} ${apiPath}: ${res.status} ${await res.text()}`);
  return res;
}

/** Polls `fn` until it returns a truthy value or the deadline passes. */
async function until(what, ms, fn, every = 200) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(every);
  }
}

function decodeQuotedPrintable(s) {
  const bytes = Buffer.from(s.replace(/=\r?\n/g, ''), 'latin1');
  const out = [];
  for (let i = 0; i < bytes.length; i++) {
    const hex = bytes.subarray(i + 1, i + 3).toString('latin1');
    if (bytes[i] === 0x3d && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      out.push(parseInt(hex, 16));
      i += 2;
    } else {
      out.push(bytes[i]);
    }
  }
  return Buffer.from(out).toString('utf8');
}

/** The newest message to `to` in the SMTP sink's directory, stored after `sinceNs`. */
async function newestMailTo(to, sinceNs) {
  const names = (await readdir(MAIL_DIR)).filter((n) => /^\d+-\d+\.eml$/.test(n));
  const stamped = names
    .map((n) => ({ n, ns: BigInt(n.split('-')[0]) }))
    .filter((m) => m.ns >= sinceNs)
    .sort((a, b) => (a.ns < b.ns ? 1 : a.ns > b.ns ? -1 : 0));
  for (const { n } of stamped) {
    const base = path.join(MAIL_DIR, n.slice(0, -'.eml'.length));
    const meta = JSON.parse(await readFile(`${base}.json`, 'utf8'));
    if (!meta.rcpt_tos?.some((r) => r.toLowerCase() === to.toLowerCase())) continue;
    return readFile(`${base}.eml`, 'utf8');
  }
  return null;
}

function mailBody(raw) {
  const split = raw.search(/\r?\n\r?\n/);
  const headers = raw.slice(0, split);
  const body = raw.slice(split).replace(/^\r?\n\r?\n/, '');
  return /content-transfer-encoding:\s*quoted-printable/i.test(headers) ? decodeQuotedPrintable(body) : body;
}

const SERVER_ENV = {
  RABBIT_VHOSTS: VHOST,
  WARN_QUEUE_SIZE: '5',
  DEL_QUEUE_SIZE: '50',
  GUARDIAN_SCHEDULE: '*/1 * * * * *',
  SMTP_URL: 'smtp://127.0.0.1:2525',
  ADMIN_EMAILS: ADMIN,
};

let server;
let firstTmp;
let browser;
let page;
let conn;
let channel;

before(async () => {
  await mgmtOk('PUT', `/vhosts/${encodeURIComponent(VHOST)}`, { description: 'PulseGuardian e2e' });
  await mgmtOk('PUT', `/permissions/${encodeURIComponent(VHOST)}/guest`, { configure: '.*', write: '.*', read: '.*' });
  server = await startServer({ env: SERVER_ENV, keepTmp: true });
  firstTmp = server.tmpdir;
  browser = await launch();
  page = await newPage(browser, { viewport: { width: 1280, height: 900 } });
});

after(async () => {
  await channel?.close().catch(() => {});
  await conn?.close().catch(() => {});
  await page?.context().close().catch(() => {});
  await browser?.close();
  const code = await server?.stop();
  if (server && code !== 0 && code !== null) console.error(`server exited with ${code}\n${server.stderr().slice(-4000)}`);
  if (firstTmp) await rm(firstTmp, { recursive: true, force: true });
  await mgmt('DELETE', `/vhosts/${encodeURIComponent(VHOST)}`).catch(() => {});
  await mgmt('DELETE', `/users/${encodeURIComponent(ACCOUNT)}`).catch(() => {});
});

// A channel or connection error (say, ACCESS_REFUSED) fails the step instead of hanging it.
let amqpFailed;
const amqpError = new Promise((_, reject) => { amqpFailed = reject; });
amqpError.catch(() => {});

async function amqpDo(what, promise) {
  let timer;
  try {
    return await Promise.race([
      promise,
      amqpError,
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`AMQP: ${what} took over 10 s`)), 10_000); }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function publish(n, from) {
  for (let i = 0; i < n; i++) {
    channel.publish(EXCHANGE, 'job', Buffer.from(JSON.stringify({ job: from + i })), { persistent: true });
  }
  await amqpDo('confirming the messages', channel.waitForConfirms());
}

function queueRow() {
  return page.locator('#queue-list tbody tr', { has: page.locator(`a[href="${QUEUE_PATH}"]`) });
}

function noConsoleErrors(where) {
  assert.deepEqual(page.consoleErrors, [], `console errors ${where}`);
}

test('dashboard: sign in, account, live gauge, delete, audit', { timeout: 120_000 }, async (t) => {
  let failed = false;
  const step = async (name, fn) => {
    if (failed) return t.test(name, { skip: 'an earlier step failed' }, () => {});
    let ok = false;
    await t.test(name, async () => {
      await fn();
      ok = true;
    });
    if (!ok) failed = true;
  };

  await step('sign in by email link', async () => {
    const res = await page.goto(`${server.url}/signin`);
    assert.equal(res.status(), 200);
    await page.fill('input[name="email"]', ADMIN);
    assert.ok(await page.locator('form[action="/auth/email"] input[type="hidden"][name="csrf"]').count(), 'csrf field');
    await screenshot(page, 'signin-form');
    const sinceNs = BigInt(Date.now() - 2000) * 1_000_000n;
    await Promise.all([page.waitForURL(`${server.url}/auth/email`), page.click('button:has-text("Email me a sign-in link")')]);
    await page.getByRole('heading', { name: 'Check your email' }).waitFor();

    const raw = await until(`a sign-in email to ${ADMIN} in ${MAIL_DIR}`, 10_000, () => newestMailTo(ADMIN, sinceNs));
    assert.match(raw, /^Subject: PulseGuardian sign-in link\r?$/m);
    const body = mailBody(raw);
    const esc = server.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const link = body.match(new RegExp(`${esc}/auth/email/[A-Za-z0-9_\\-.~%]+`))?.[0];
    assert.ok(link, `a sign-in link in:\n${body}`);

    // Opening the link asks to confirm (a GET signs nobody in); the button does.
    await page.goto(link);
    await page.getByText(`You are signing in as ${ADMIN}`).waitFor();
    await Promise.all([page.waitForURL(`${server.url}/queues`), page.click('button:has-text("Sign in")')]);
    assert.equal(new URL(page.url()).pathname, '/queues');
    await page.locator(`.nav-user .user-email:has-text("${ADMIN}")`).waitFor();
    await page.locator('.nav-user .badge:has-text("admin")').waitFor();
    await screenshot(page, 'signin');
    noConsoleErrors('after sign-in');
  });

  await step('create an account', async () => {
    await page.goto(`${server.url}/accounts`);
    const form = page.locator('section#create form');
    assert.equal((await form.locator('textarea[name="owners"]').inputValue()).trim(), ADMIN, 'owners prefilled');
    await form.locator('input[name="name"]').fill(ACCOUNT);
    await form.locator('input[name="password"]').fill(PASSWORD);
    await form.locator('input[name="password_confirm"]').fill(PASSWORD);
    await Promise.all([page.waitForURL(/\/accounts\?done=/), form.locator('button[type="submit"]').click()]);
    await page.locator(`p.flash.ok:has-text("The account ${ACCOUNT} was created.")`).waitFor();
    await page.locator(`article#account-${ACCOUNT}`).waitFor();
    await screenshot(page, 'accounts');
    noConsoleErrors('on /accounts');

    const perms = await (await mgmtOk('GET', `/users/${encodeURIComponent(ACCOUNT)}/permissions`)).json();
    assert.deepEqual(perms.map((p) => p.vhost), [VHOST], 'permissions on the guarded vhost only');
  });

  await step('publish 2 messages as the account', async () => {
    const url = `amqp://${encodeURIComponent(ACCOUNT)}:${encodeURIComponent(PASSWORD)}@${AMQP_HOST}/${encodeURIComponent(VHOST)}`;
    conn = await amqpDo('connecting', amqp.connect(url));
    conn.on('error', amqpFailed);
    channel = await amqpDo('opening a channel', conn.createConfirmChannel());
    channel.on('error', amqpFailed);
    await amqpDo(`declaring ${QUEUE}`, channel.assertQueue(QUEUE, { durable: true }));
    await amqpDo(`declaring ${EXCHANGE}`, channel.assertExchange(EXCHANGE, 'topic', { durable: false, autoDelete: true }));
    await amqpDo('binding the queue', channel.bindQueue(QUEUE, EXCHANGE, '#'));
    await publish(2, 0);
  });

  await step('the live gauge crosses the warning size without a reload', async () => {
    await page.goto(`${server.url}/queues`);
    // The guardian (every second) sees the new queue; the table refreshes every 5 s.
    const row = queueRow();
    const gaugeFill = row.locator('svg.gauge rect.fill');
    await row.waitFor({ timeout: 20_000 });
    await until('the gauge to read 2 messages', 20_000, async () =>
      (await row.locator('svg.gauge').getAttribute('aria-label')) === '2 messages');
    assert.match(await gaugeFill.getAttribute('class'), /(^|\s)ok(\s|$)/);
    assert.equal(await row.locator('.badge:has-text("over warning")').count(), 0);
    const overview = page.locator('#overview');
    assert.match(await overview.innerText(), /0 over the warning size/);
    assert.match(await overview.innerText(), /broker reachable/);
    noConsoleErrors('on /queues before the warning');

    await page.evaluate(() => { window.__marker = 1; });
    const t0 = Date.now();
    await publish(8, 2);
    await until('the gauge to show over-warn and the badge "over warning"', 20_000, async () =>
      /(^|\s)over-warn(\s|$)/.test((await gaugeFill.getAttribute('class')) ?? '')
      && (await row.locator('.badge:has-text("over warning")').count()) === 1, 250);
    t.diagnostic(`over-warn shown ${((Date.now() - t0) / 1000).toFixed(1)} s after publishing`);
    assert.equal(await row.locator('svg.gauge').getAttribute('aria-label'), '10 messages');
    // The overview line refreshed with the table, and its figure filters the list.
    await until('the overview to count the queue over the warning size', 10_000, async () =>
      /1 over the warning size/.test(await page.locator('#overview').innerText()), 250);
    assert.equal(await page.locator('#overview a[href="/queues?over=on"]').count(), 1);
    assert.equal(await page.evaluate(() => window.__marker), 1, 'the page was not reloaded');
    assert.equal(new URL(page.url()).pathname, '/queues');
    await screenshot(page, 'queues');
    noConsoleErrors('on /queues after the warning');
  });

  await step('the queue page shows QueueWarned; delete through the confirmation', async () => {
    await page.locator(`#queue-list a[href="${QUEUE_PATH}"]`).click();
    await page.waitForURL(`${server.url}${QUEUE_PATH}`);
    await page.locator('h1.queue-name', { hasText: QUEUE }).waitFor();
    await page.locator('#queue-live svg.gauge').waitFor();
    await page.locator('svg.chart').first().waitFor();
    await page.locator('ol.history li strong', { hasText: 'QueueWarned' }).first().waitFor();
    await screenshot(page, 'queue');
    noConsoleErrors('on the queue page');

    const form = page.locator('form[action$="/delete"]');
    await form.locator('input[name="confirm"]').check();
    const dialogs = [];
    page.once('dialog', (d) => {
      dialogs.push(d.message());
      d.accept();
    });
    await form.getByRole('button', { name: 'Delete queue' }).click();
    await page.locator('p.flash.ok', { hasText: `The queue ${QUEUE} was deleted.` }).waitFor({ timeout: 15_000 });
    assert.equal(dialogs.length, 1, 'a confirm() dialog was shown');
    assert.match(dialogs[0], /Delete the queue/);
    assert.equal(new URL(page.url()).pathname, '/queues');

    const res = await mgmt('GET', `/queues/${encodeURIComponent(VHOST)}/${encodeURIComponent(QUEUE)}`);
    assert.equal(res.status, 404, 'the queue is gone from RabbitMQ');
    await screenshot(page, 'deleted');
    noConsoleErrors('after deleting the queue');

    // The live table drops the deleted queue at its next refresh, still without a reload.
    await page.evaluate(() => { window.__marker = 2; });
    await until('the deleted queue to leave the live table', 15_000, async () => (await queueRow().count()) === 0, 250);
    assert.equal(await page.evaluate(() => window.__marker), 2, 'the page was not reloaded');
    noConsoleErrors('after the table refreshed');
  });

  await step('the audit log lists the events and exports them', async () => {
    const res = await page.goto(`${server.url}/audit`);
    assert.equal(res.status(), 200);
    await page.locator('ol.audit li.event').first().waitFor();
    const kinds = await page.locator('ol.audit li.event details summary strong').allTextContents();
    for (const k of KINDS) assert.ok(kinds.includes(k), `${k} listed on /audit (got ${[...new Set(kinds)].join(', ')})`);
    assert.ok(await page.locator('p.card.chain .badge').count(), 'a hash chain badge');
    t.diagnostic(`chain badge: ${(await page.locator('p.card.chain').textContent()).replace(/\s+/g, ' ').trim()}`);
    await screenshot(page, 'audit');
    noConsoleErrors('on /audit');

    const csvHref = await page.getByRole('link', { name: 'CSV', exact: true }).getAttribute('href');
    const ndHref = await page.getByRole('link', { name: 'NDJSON', exact: true }).getAttribute('href');
    assert.match(csvHref, /^\/audit\/export\?.*format=csv/);
    assert.match(ndHref, /^\/audit\/export\?.*format=ndjson/);

    const csv = await page.request.get(new URL(csvHref, page.url()).href);
    assert.equal(csv.status(), 200);
    assert.match(csv.headers()['content-type'], /^text\/csv/);
    const csvText = await csv.text();
    for (const k of KINDS) assert.ok(csvText.includes(k), `${k} in the CSV export`);

    const nd = await page.request.get(new URL(ndHref, page.url()).href);
    assert.equal(nd.status(), 200);
    assert.match(nd.headers()['content-type'], /ndjson/);
    const events = (await nd.text()).split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
    assert.ok(events.length >= KINDS.length);
    for (const e of events) {
      assert.equal(typeof e.kind, 'string');
      for (const f of ['seq', 'id', 'stream', 'version', 'schema', 'actor', 'occurred_at', 'payload', 'hash', 'prev_hash']) {
        assert.ok(f in e, `exported event has ${f}: ${JSON.stringify(e)}`);
      }
    }
    const exported = new Set(events.map((e) => e.kind));
    for (const k of KINDS) assert.ok(exported.has(k), `${k} in the NDJSON export`);
    const seqs = events.map((e) => e.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'oldest first');
    noConsoleErrors('after the exports');
  });

  await step('a gauge forecasts the deletion from the samples of the last minutes', async () => {
    // The account's exchange went with the deleted queue (auto-delete): declared again.
    await amqpDo(`declaring ${EXCHANGE}`, channel.assertExchange(EXCHANGE, 'topic', { durable: false, autoDelete: true }));
    await amqpDo(`declaring ${GROWING}`, channel.assertQueue(GROWING, { durable: true }));
    await amqpDo('binding it', channel.bindQueue(GROWING, EXCHANGE, '#'));
    await publish(20, 100);
    // The guardian before this one recorded the queue growing by 2 a minute over the
    // last ten minutes (written here as it would have written them); the next guardian
    // forecasts from them at once.
    const first = server;
    await first.stop();
    const db = `${firstTmp}/pg.db`;
    const minute = Math.floor(Date.now() / 60_000) * 60;
    const rows = Array.from({ length: 10 }, (_, i) => [VHOST, GROWING, minute - 60 * (i + 1), 18 - 2 * i]);
    execFileSync('python3', ['-c', `
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.executemany("INSERT INTO samples (vhost, name, at, messages, ready, unacked, consumers) VALUES (?, ?, ?, ?, ?, 0, 0)",
               [(v, n, at, m, m) for v, n, at, m in json.loads(sys.argv[2])])
db.commit()
`, db, JSON.stringify(rows)]);
    server = await startServer({ env: { ...SERVER_ENV, DATABASE_URL: `sqlite://${db}?mode=rwc` } });
    const growingPath = `/queues/${encodeURIComponent(VHOST)}/${encodeURIComponent(GROWING)}`;
    await page.goto(`${server.url}/queues`);
    const row = page.locator('#queue-list tbody tr', { has: page.locator(`a[href="${growingPath}"]`) });
    await until('the gauge to forecast the deletion', 20_000, async () =>
      /deleted in about 1\d min at \+[12]\.\d\/min/.test(await row.locator('small.forecast').textContent()), 250)
      .catch(async (e) => {
        throw new Error(`${e.message}; on ${page.url()} the row reads: ${await row.textContent({ timeout: 1000 }).catch(() => '(no row)')}`);
      });
    await until('the overview to count it at risk', 10_000, async () =>
      /1 at risk/.test(await page.locator('#overview').innerText()), 250);
    assert.equal(await page.locator('#overview a[href="/queues?needs=at-risk"]').count(), 1);
    await page.locator(`#queue-list a[href="${growingPath}"]`).click();
    await page.locator('svg.chart polyline.projection').first().waitFor({ state: 'attached', timeout: 10_000 });
    await screenshot(page, 'forecast');
    noConsoleErrors('with a forecast');
  });
});
