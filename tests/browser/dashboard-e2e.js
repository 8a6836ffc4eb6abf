#!/usr/bin/env node
/*
 * End-to-end test of queuehub's live dashboard in a real, headless browser.
 *
 *   node dashboard-e2e.js http://127.0.0.1:3000 [--transport websocket|polling] [--screenshot PATH]
 *   node dashboard-e2e.js http://127.0.0.1:3001 --api-key KEY [--transport websocket|polling]
 *
 * Launches Debian's chromium (/usr/bin/chromium) through playwright-core, opens /dashboard,
 * and drives queuehub from the side the way a classroom would: a socket.io-client subscriber
 * (namespace "/"), publishes over HTTP, acks over HTTP, and the page's own publish form. Every
 * check waits at most 10 s for the page to show the expected state in its DOM.
 *
 * The page talks to queuehub through the official socket.io browser client it serves
 * (/dashboard/vendor/socket.io.min.js). With --transport T the page is opened as
 * /dashboard?transport=T, which keeps that client to one transport (a WebSocket, or HTTP
 * long-polling), and the run checks from the browser's network traffic that only that
 * transport carried the session. Without it the client's default is checked: long-polling
 * first, then the upgrade to a WebSocket. Open-mode runs also check the page's default in a
 * second tab, and that every queue card has a rate chart whose lines move after publishes
 * and acks.
 *
 * With --api-key KEY the server is in secured mode (started with --api-key KEY) and the run
 * checks how the page gets its key instead: it asks for one, refuses a wrong one, goes live
 * with the right one (typed, or in the address as /dashboard#key=KEY), and its publish form
 * sends it.
 *
 * With --screenshot PATH it also sets up a small scene (a few queues, clients online and
 * offline, some messages pending or waiting) and saves a 1280x800 screenshot of the page.
 *
 * Exit status 0 only when every check passed; the last line is
 * "dashboard e2e: N passed, M failed".
 */
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');
const { io } = require('socket.io-client');

const WAIT_MS = 10_000; // every wait is bounded by this
const RUN_LIMIT_MS = 180_000; // the whole run, as a last resort
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// ---- arguments ----------------------------------------------------------------------------

function usage(message) {
  if (message) console.error('dashboard-e2e: ' + message);
  console.error('usage: node dashboard-e2e.js SERVER_URL [--transport websocket|polling] [--screenshot PATH] [--api-key KEY]');
  process.exit(2);
}

const argv = process.argv.slice(2);
let base = null;
let screenshotPath = null;
let apiKey = null;
let transport = null; // null: the client's default (polling, upgraded to a WebSocket)
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--transport') {
    transport = argv[++i];
    if (transport !== 'websocket' && transport !== 'polling') usage('--transport is websocket or polling');
  } else if (argv[i] === '--api-key') {
    apiKey = argv[++i];
    if (!apiKey) usage('--api-key needs a key');
  } else if (argv[i] === '--screenshot') {
    screenshotPath = argv[++i];
    if (!screenshotPath) usage('--screenshot needs a path');
  } else if (argv[i].startsWith('--screenshot=')) {
    screenshotPath = argv[i].slice('--screenshot='.length);
  } else if (!base) {
    base = argv[i];
  } else {
    usage('unexpected argument ' + argv[i]);
  }
}
if (!base) usage('no server URL');
base = base.replace(/\/+$/, '');
if (screenshotPath) screenshotPath = path.resolve(screenshotPath);
// The page under test: /dashboard, kept to one transport when asked.
const PAGE = base + '/dashboard' + (transport ? '?transport=' + transport : '');
console.log(`dashboard e2e: ${apiKey ? 'secured' : 'open'} mode, transport ${transport || 'default (polling, then upgrade)'}`);

// Names unique to this run, so a reused server does not confuse the checks.
const run = Math.random().toString(36).slice(2, 6);
const QUEUE = 'e2e-orders-' + run;
const CLIENT = 'e2e-store-' + run;
const FORM_QUEUE = 'e2e-form-' + run;

// ---- tiny test runner ---------------------------------------------------------------------

let passed = 0;
let failed = 0;
let running = ''; // the check under way, for messages about what the browser saw meanwhile

async function check(name, fn) {
  const started = Date.now();
  running = name;
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
    return true;
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${String((err && err.message) || err).split('\n')[0]}`);
    return false;
  }
}

function finish(code) {
  console.log(`dashboard e2e: ${passed} passed, ${failed} failed`);
  process.exit(code === undefined ? (failed > 0 || passed === 0 ? 1 : 0) : code);
}

// ---- HTTP and socket.io helpers -----------------------------------------------------------

async function http(method, route, body) {
  const headers = body === undefined ? {} : { 'content-type': 'application/json' };
  if (apiKey) headers.authorization = 'Bearer ' + apiKey;
  const response = await fetch(base + route, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch (err) {
    /* leave null */
  }
  return { status: response.status, json, text };
}

const q = encodeURIComponent;

async function publish(queue, event, payload) {
  const r = await http('POST', `/v1/queues/${q(queue)}/messages`, { event, payload });
  if (r.status !== 201 || !r.json || !r.json.id) {
    throw new Error(`publish to ${queue}: HTTP ${r.status} ${r.text}`);
  }
  return r.json;
}

async function ack(queue, client, ids) {
  const r = await http('POST', `/v1/queues/${q(queue)}/clients/${q(client)}/acks`, { ids });
  if (r.status !== 200) throw new Error(`ack: HTTP ${r.status} ${r.text}`);
  return r.json;
}

const sockets = [];

// A socket.io-client 4 subscriber (namespace "/"), like the Node client example.
// With { auth: true } it names its client at connect (so the feed can say who connected).
async function subscriber(clientId, queue, { auth = false } = {}) {
  const socket = io(base, {
    transports: ['websocket'],
    reconnection: false,
    timeout: WAIT_MS,
    auth: auth ? { clientId } : undefined,
  });
  sockets.push(socket);
  socket.received = [];
  socket.onAny((event, envelope) => socket.received.push({ event, envelope }));
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  const answer = await socket.timeout(WAIT_MS).emitWithAck('subscribe', { clientId, queue });
  if (!answer || answer.ok !== true) throw new Error('subscribe refused: ' + JSON.stringify(answer));
  return socket;
}

function closeSocket(socket) {
  socket.disconnect();
  const at = sockets.indexOf(socket);
  if (at !== -1) sockets.splice(at, 1);
}

// ---- DOM waits ----------------------------------------------------------------------------

let page;

// Waits until fn(arg), run in the page, returns something truthy; the message says what we
// waited for and what the page showed instead.
async function waitFor(what, fn, arg, describe) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 50 });
  } catch (err) {
    let seen = '';
    if (describe) {
      try {
        seen = ' (page shows: ' + (await page.evaluate(describe, arg)) + ')';
      } catch (e) {
        /* the page is gone */
      }
    }
    throw new Error(`waited ${WAIT_MS / 1000} s for ${what}${seen}`);
  }
}

// The number shown for a client's pending count in a queue's card, or null.
function pendingShown([queue, client]) {
  const card = document.querySelector(`[data-queue="${CSS.escape(queue)}"]`);
  const row = card && card.querySelector(`[data-client="${CSS.escape(client)}"]`);
  const num = row && row.querySelector('.pending');
  return num ? num.textContent.trim() + ' / data-value ' + num.dataset.value : 'no such client row';
}

async function waitPending(queue, client, n) {
  await waitFor(
    `${client}'s pending count in ${queue} to show ${n}`,
    ([queue, client, n]) => {
      const card = document.querySelector(`[data-queue="${CSS.escape(queue)}"]`);
      const row = card && card.querySelector(`[data-client="${CSS.escape(client)}"]`);
      const num = row && row.querySelector('.pending');
      return num && num.textContent.trim() === String(n) && num.dataset.value === String(n);
    },
    [queue, client, n],
    pendingShown,
  );
}

async function waitConnected(queue, client, connected) {
  await waitFor(
    `${client} in ${queue} to show ${connected ? 'online' : 'offline'}`,
    ([queue, client, connected]) => {
      const card = document.querySelector(`[data-queue="${CSS.escape(queue)}"]`);
      const row = card && card.querySelector(`[data-client="${CSS.escape(client)}"]`);
      const badge = row && row.querySelector('.badge');
      return row && row.dataset.connected === String(connected) &&
        badge.textContent.toLowerCase().includes(connected ? 'online' : 'offline');
    },
    [queue, client, connected],
    ([queue, client]) => {
      const row = document.querySelector(`[data-queue="${CSS.escape(queue)}"] [data-client="${CSS.escape(client)}"]`);
      return row ? `data-connected=${row.dataset.connected}, badge "${row.querySelector('.badge').textContent}"` : 'no such client row';
    },
  );
}

async function waitQueueNumber(queue, field, n) {
  await waitFor(
    `${queue}'s ${field} count to show ${n}`,
    ([queue, field, n]) => {
      const num = document.querySelector(`[data-queue="${CSS.escape(queue)}"] .num.${field}`);
      return num && num.textContent.trim() === String(n) && num.dataset.value === String(n);
    },
    [queue, field, n],
    ([queue, field]) => {
      const num = document.querySelector(`[data-queue="${CSS.escape(queue)}"] .num.${field}`);
      return num ? num.textContent : 'no such queue card';
    },
  );
}

// ---- transports and the official client ---------------------------------------------------

// Records a page's Engine.IO traffic: the WebSockets it opens and its long-polling requests to
// /socket.io/, and the answer to its request for the vendored client.
function watchTraffic(tab) {
  const traffic = { websockets: [], polls: [], bundle: null };
  tab.on('websocket', (ws) => {
    if (ws.url().includes('/socket.io/')) traffic.websockets.push(ws.url());
  });
  tab.on('request', (request) => {
    const url = request.url();
    if (url.includes('/socket.io/') && url.includes('transport=polling')) traffic.polls.push(url);
  });
  tab.on('response', (response) => {
    if (response.url().endsWith('/dashboard/vendor/socket.io.min.js')) traffic.bundle = response.status();
  });
  return traffic;
}

const connState = () => `#conn=${document.querySelector('#conn')?.dataset.state}, ` +
  `transport=${document.querySelector('#conn')?.dataset.transport}, ` +
  `ready=${document.querySelector('#queues')?.dataset.ready}`;

// Checks that `tab` is live through the official socket.io client over `expected` (websocket,
// polling, or null: the default, polling upgraded to a WebSocket), both as the page says
// (#conn data-transport) and as the browser's traffic shows.
async function checkTransport(tab, traffic, expected) {
  const final = expected || 'websocket';
  try {
    await tab.waitForFunction(
      (final) => document.querySelector('#conn')?.dataset.state === 'live' &&
        document.querySelector('#conn')?.dataset.transport === final,
      final, { timeout: WAIT_MS, polling: 50 });
  } catch (err) {
    throw new Error(`waited ${WAIT_MS / 1000} s for live over ${final} (page shows: ${await tab.evaluate(connState).catch(() => '?')})`);
  }
  if (traffic.bundle !== 200) throw new Error('/dashboard/vendor/socket.io.min.js answered ' + traffic.bundle);
  // The vendored bundle: its header names socket.io and the version; it defines io() with the
  // Manager and Socket classes; the hand-written client is gone.
  const client = await tab.evaluate(async () => ({
    io: typeof window.io === 'function' && typeof window.io.Manager === 'function' &&
      typeof window.io.Socket === 'function',
    header: (await (await fetch('/dashboard/vendor/socket.io.min.js')).text()).split('\n', 2)[1],
    lite: typeof window.liteSocket,
  }));
  if (!client.io || !/^ \* Socket\.IO v4\.\d+\.\d+$/.test(client.header || '') || client.lite !== 'undefined') {
    throw new Error('not the official socket.io client: ' + JSON.stringify(client));
  }
  const engine = [...traffic.websockets, ...traffic.polls];
  if (engine.some((url) => !url.includes('EIO=4'))) throw new Error('not Engine.IO 4: ' + engine.join(' '));
  const seen = `${traffic.polls.length} polling requests, ${traffic.websockets.length} WebSockets`;
  if (expected === 'websocket' && (traffic.polls.length > 0 || traffic.websockets.length === 0)) {
    throw new Error('expected a WebSocket only, saw ' + seen);
  }
  if (expected === 'polling') {
    // An upgrade would come within milliseconds of the handshake; give it a second anyway.
    await new Promise((r) => setTimeout(r, 1000));
    const now = await tab.evaluate(() => document.querySelector('#conn')?.dataset.transport);
    if (traffic.polls.length < 2 || traffic.websockets.length > 0 || now !== 'polling') {
      throw new Error(`expected long-polling only, saw ${seen} and data-transport=${now}`);
    }
  }
  if (!expected && (traffic.polls.length === 0 || traffic.websockets.length === 0)) {
    throw new Error('expected long-polling upgraded to a WebSocket, saw ' + seen);
  }
}

// ---- rate charts --------------------------------------------------------------------------

// A queue's chart as the page draws it: the counts in its window and its two lines.
function chartShown(queue) {
  const chart = document.querySelector(`[data-queue="${CSS.escape(queue)}"] svg.rate-chart`);
  if (!chart) return null;
  const line = (kind) => chart.querySelector('.line-' + kind)?.getAttribute('points') || '';
  const height = chart.viewBox.baseVal.height;
  // The highest point of a line, as a share of the chart's height (0: flat at the bottom).
  const peak = (kind) => Math.max(0, ...line(kind).split(' ').filter(Boolean)
    .map((xy) => (height - 2 - Number(xy.split(',')[1])) / (height - 4)));
  return {
    published: Number(chart.dataset.published),
    acked: Number(chart.dataset.acked),
    publishedLine: line('published'),
    ackedLine: line('acked'),
    publishedPeak: peak('published'),
    ackedPeak: peak('acked'),
    points: line('published').split(' ').filter(Boolean).length,
  };
}

async function chartOf(queue) {
  return page.evaluate(chartShown, queue);
}

// Waits until the chart of `queue` counts at least `n` more of `kind` than `before` did, and
// that line has moved and stands above the bottom.
async function waitChartMoved(queue, kind, before, n) {
  await waitFor(
    `${queue}'s chart to count ${n} more ${kind} and its ${kind} line to move`,
    ([queue, kind, before, n, shown]) => {
      const now = new Function('return ' + shown)()(queue);
      return now && now[kind] >= before[kind] + n && now[kind + 'Line'] !== before[kind + 'Line'] &&
        now[kind + 'Peak'] > 0.05;
    },
    [queue, kind, before, n, chartShown.toString()],
    ([queue, , , , shown]) => {
      const now = new Function('return ' + shown)()(queue);
      if (!now) return 'no chart';
      return `published ${now.published} (peak ${now.publishedPeak.toFixed(2)}), acked ${now.acked} (peak ${now.ackedPeak.toFixed(2)})`;
    },
  );
}

// ---- HTTP errors --------------------------------------------------------------------------

// Every HTTP error answer the browser got, in every tab, is a failure of "no errors in the
// page", except the 422 the form test provokes, and one harmless race of the official client:
// when the server refuses a namespace (a missing or wrong key), the client closes its session,
// and over long-polling its next poll is already under way and gets 400 "Session ID unknown".
// That is allowed only for a session whose connect was refused (a CONNECT_ERROR in a poll).
const httpErrors = []; // promises of functions returning a message, or null when allowed
const refusedSessions = new Set();

function watchHttpErrors(response) {
  const request = response.request();
  const url = response.url();
  const status = response.status();
  const during = running;
  const sid = (/[?&]sid=([^&]+)/.exec(url) || [])[1];
  const poll = url.includes('/socket.io/') && url.includes('transport=polling') && request.method() === 'GET';
  if (poll && status === 200 && sid) {
    httpErrors.push(response.text().then((body) => {
      if (/(^|\x1e)44\/dashboard,/.test(body)) refusedSessions.add(sid);
      return () => null;
    }, () => () => null));
    return;
  }
  if (status < 400) return;
  if (status === 422 && request.method() === 'POST' && /\/v1\/queues\//.test(url)) return;
  const message = `HTTP ${status} for ${request.method()} ${url} (during "${during}")`;
  httpErrors.push(response.text().catch(() => '').then((body) => () => {
    if (!(poll && status === 400 && /Session ID unknown/.test(body) && refusedSessions.has(sid))) return message;
    allowedRaces++;
    return null;
  }));
}
let allowedRaces = 0;

async function noErrors(pageErrors) {
  const http = (await Promise.all(httpErrors)).map((message) => message()).filter(Boolean);
  if (allowedRaces) console.log(`     (allowed ${allowedRaces} poll(s) of a refused session answered "Session ID unknown")`);
  const all = pageErrors.concat(http);
  if (all.length) throw new Error(all.join(' | '));
}

// ---- the run ------------------------------------------------------------------------------

let context = null;
let userDataDir = null;

async function cleanup() {
  for (const socket of sockets.splice(0)) socket.disconnect();
  if (context) await context.close().catch(() => {});
  context = null;
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  userDataDir = null;
}

const watchdog = setTimeout(async () => {
  console.log(`FAIL the whole run took longer than ${RUN_LIMIT_MS / 1000} s`);
  failed++;
  await cleanup().catch(() => {});
  finish(1);
}, RUN_LIMIT_MS);

async function main() {
  const pageErrors = [];

  const launched = await check('chromium starts', async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}`);
    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qh-dashboard-e2e-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 800 },
      timeout: 30_000,
    });
    page = context.pages()[0] || (await context.newPage());
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      // Chromium logs every HTTP error answer without its address; those are reported with
      // theirs below.
      if (msg.type() === 'error' && !/^Failed to load resource: the server responded/.test(msg.text())) {
        pageErrors.push('console: ' + msg.text());
      }
    });
    context.on('response', watchHttpErrors);
  });
  if (!launched) return;
  if (apiKey) return securedMode(pageErrors);

  const traffic = watchTraffic(page);
  const loaded = await check('the page loads and goes live', async () => {
    const response = await page.goto(PAGE, { timeout: WAIT_MS });
    if (!response || response.status() !== 200) {
      throw new Error('GET /dashboard answered ' + (response && response.status()));
    }
    if (!(await page.$('#conn')) || !(await page.$('#queues'))) {
      throw new Error('/dashboard is not the current page (no #conn or #queues): was the ' +
        'binary built before assets/dashboard/ changed? Rebuild it.');
    }
    await waitFor(
      'the connection indicator to say live and a first snapshot',
      () => document.querySelector('#conn')?.dataset.state === 'live' &&
        document.querySelector('#queues')?.dataset.ready === 'true',
      null,
      () => `#conn=${document.querySelector('#conn')?.dataset.state}, ready=${document.querySelector('#queues')?.dataset.ready}, ` +
        `socket.io client loaded: ${typeof window.io === 'function'}`,
    );
  });
  if (!loaded) return;

  await check(`the official socket.io client carries the session over ${transport || 'polling, upgraded to a WebSocket'}`,
    () => checkTransport(page, traffic, transport));

  if (transport) {
    await check('without ?transport the page starts on long-polling and upgrades to a WebSocket', async () => {
      const tab = await context.newPage();
      tab.on('pageerror', (err) => pageErrors.push(err.message));
      try {
        const tabTraffic = watchTraffic(tab);
        await tab.goto(base + '/dashboard', { timeout: WAIT_MS });
        await checkTransport(tab, tabTraffic, null);
      } finally {
        await tab.close();
      }
    });
  }

  let sub = null;
  await check('a socket.io subscriber appears online with 0 pending', async () => {
    sub = await subscriber(CLIENT, QUEUE);
    await waitConnected(QUEUE, CLIENT, true);
    await waitPending(QUEUE, CLIENT, 0);
  });

  let receipt = null;
  await check('an HTTP publish shows the client 1 pending', async () => {
    receipt = await publish(QUEUE, 'delivered', { orderId: 1, customer: 'Ada' });
    if (receipt.recipients !== 1) throw new Error('recipients ' + receipt.recipients + ', expected 1');
    await waitPending(QUEUE, CLIENT, 1);
    await waitQueueNumber(QUEUE, 'published', 1);
  });

  await check('the activity feed shows the publish', async () => {
    if (!receipt) throw new Error('nothing was published');
    await waitFor(
      'a "published" feed row for the message',
      ([id, queue]) => {
        const row = document.querySelector(`#feed > li[data-kind="published"][data-id="${CSS.escape(id)}"]`);
        return row && row.dataset.queue === queue && row.textContent.includes(queue) &&
          row.textContent.includes('delivered');
      },
      [receipt.id, QUEUE],
      () => [...document.querySelectorAll('#feed > li')].slice(0, 5).map((li) => li.textContent).join(' | ') || 'an empty feed',
    );
  });

  await check('the subscriber got the message live', async () => {
    const deadline = Date.now() + WAIT_MS;
    while (!sub || !sub.received.some((m) => m.envelope && m.envelope.id === receipt.id)) {
      if (Date.now() > deadline) throw new Error('no delivery of ' + (receipt && receipt.id));
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  await check('an HTTP ack brings the pending count back to 0', async () => {
    const answer = await ack(QUEUE, CLIENT, [receipt.id]);
    if (answer.removed !== 1) throw new Error('ack removed ' + answer.removed);
    await waitPending(QUEUE, CLIENT, 0);
    await waitQueueNumber(QUEUE, 'acked', 1);
    await waitFor(
      'an "acked" feed row for the client',
      (client) => !!document.querySelector(`#feed > li[data-kind="acked"][data-client="${CSS.escape(client)}"]`),
      CLIENT,
    );
  });

  await check("the queue's rate chart moves after publishes (published line) and acks (acked line)", async () => {
    const before = await chartOf(QUEUE);
    if (!before) throw new Error(`no chart in ${QUEUE}'s card`);
    if (before.points !== 60) throw new Error(`the chart has ${before.points} points, expected 60 (5 min of 5 s)`);
    const receipts = [];
    for (let i = 0; i < 3; i++) receipts.push(await publish(QUEUE, 'rate', { i }));
    await waitChartMoved(QUEUE, 'published', before, 3);
    const published = await chartOf(QUEUE);
    // (Its points may shift left at a bucket boundary; its count must not change.)
    if (published.acked !== before.acked) throw new Error('the acked count moved without an ack');
    await ack(QUEUE, CLIENT, receipts.map((r) => r.id));
    await waitChartMoved(QUEUE, 'acked', published, 3);
    await waitPending(QUEUE, CLIENT, 0);
    const rate = await page.evaluate((queue) => Number(document
      .querySelector(`[data-queue="${CSS.escape(queue)}"] .rate-published`)?.textContent), QUEUE);
    if (!(rate >= 4)) throw new Error(`the legend says ${rate} published in the last minute, expected at least 4`);
  });

  await check('the publish form publishes to a subscribed queue (pending 0 -> 1)', async () => {
    await page.fill('#publish-queue', QUEUE);
    await page.fill('#publish-event', 'in-transit');
    await page.fill('#publish-payload', '{"orderId": 2, "via": "form"}');
    await page.click('#publish-submit');
    await waitFor(
      'the form to report success',
      () => document.querySelector('#publish-result')?.dataset.state === 'ok',
      null,
      () => document.querySelector('#publish-result')?.textContent,
    );
    const line = await page.textContent('#publish-result');
    if (!line.includes(QUEUE) || !/1 inbox\b/.test(line)) throw new Error('result line says: ' + line);
    await waitPending(QUEUE, CLIENT, 1);
    const id = await page.getAttribute('#publish-result', 'data-id');
    if (!sub.received.length || !id) throw new Error('no id on the result line');
  });

  await check('the publish form creates a queue whose message waits (waiting 1)', async () => {
    await page.fill('#publish-queue', FORM_QUEUE);
    await page.fill('#publish-event', 'pickup');
    await page.fill('#publish-payload', '{"orderId": 3}');
    await page.press('#publish-payload', 'Tab');
    await page.click('#publish-submit');
    await waitQueueNumber(FORM_QUEUE, 'waiting', 1);
    const line = await page.textContent('#publish-result');
    if (!/waits/.test(line)) throw new Error('result line says: ' + line);
  });

  await check('the publish form reports bad JSON and server errors', async () => {
    await page.fill('#publish-queue', FORM_QUEUE);
    await page.fill('#publish-event', 'pickup');
    await page.fill('#publish-payload', '{oops');
    await page.click('#publish-submit');
    await waitFor('a JSON error line',
      () => document.querySelector('#publish-result')?.dataset.state === 'error' &&
        /JSON/.test(document.querySelector('#publish-result').textContent));
    // "connect" is an event name socket.io reserves: queuehub answers 422 invalid_name.
    await page.fill('#publish-event', 'connect');
    await page.fill('#publish-payload', '{}');
    await page.click('#publish-submit');
    await waitFor('an invalid_name error line',
      () => document.querySelector('#publish-result')?.dataset.state === 'error' &&
        /invalid_name/.test(document.querySelector('#publish-result').textContent),
      null,
      () => document.querySelector('#publish-result')?.textContent);
    await waitQueueNumber(FORM_QUEUE, 'waiting', 1); // nothing was published
  });

  await check('queues that appear later (in deltas) get cards in name order', async () => {
    const names = ['zz', 'aa', 'mm'].map((prefix) => 'e2e-' + prefix + '-' + run);
    for (const name of names) await publish(name, 'tick', null);
    for (const name of names) await waitQueueNumber(name, 'waiting', 1);
    const shown = await page.$$eval('#queues > [data-queue]', (cards) => cards.map((c) => c.dataset.queue));
    const sorted = shown.slice().sort(new Intl.Collator('en').compare);
    if (shown.join('\n') !== sorted.join('\n')) throw new Error('cards out of order: ' + shown.join(', '));
    const total = await page.$eval('#total-queues', (n) => Number(n.dataset.value));
    if (total !== shown.length) throw new Error(`total-queues says ${total}, ${shown.length} cards`);
    // A queue that first appears in a delta counts the publish that created it.
    for (const name of names) await waitChartMoved(name, 'published', { published: 0, publishedLine: '' }, 1);
  });

  await check('every queue card has its own rate chart (published and acked lines, 60 points)', async () => {
    const charts = await page.$$eval('#queues > [data-queue]', (cards) => cards.map((card) => ({
      queue: card.dataset.queue,
      charts: card.querySelectorAll('svg.rate-chart').length,
      lines: card.querySelectorAll('svg.rate-chart polyline.line-published, svg.rate-chart polyline.line-acked').length,
      points: (card.querySelector('svg.rate-chart .line-published')?.getAttribute('points') || '').trim().split(/\s+/).length,
    })));
    if (charts.length < 5) throw new Error('only ' + charts.length + ' cards');
    const bad = charts.filter((c) => c.charts !== 1 || c.lines !== 2 || c.points !== 60);
    if (bad.length) throw new Error('cards without a proper chart: ' + JSON.stringify(bad));
  });

  await check('a subscriber that disconnects shows offline, keeping its pending count', async () => {
    closeSocket(sub);
    await waitConnected(QUEUE, CLIENT, false);
    await waitPending(QUEUE, CLIENT, 1);
    // The subscriber named its client in `subscribe`, not at connect: the server reports "a
    // socket" disconnected and the page names the client from the next snapshot.
    await waitFor(
      'a "disconnected" feed row naming the client',
      (client) => [...document.querySelectorAll('#feed > li[data-kind="disconnected"]')]
        .some((li) => li.textContent.includes(client)),
      CLIENT,
      () => [...document.querySelectorAll('#feed > li')].slice(0, 5).map((li) => li.textContent).join(' | '),
    );
  });

  await check('the feed is newest first and capped at 50 rows', async () => {
    const burst = [];
    for (let i = 0; i < 30; i++) burst.push(publish(FORM_QUEUE, 'burst', { i }));
    const receipts = await Promise.all(burst);
    for (let i = 0; i < 30; i++) await publish(FORM_QUEUE, 'burst', { i: 30 + i });
    await waitQueueNumber(FORM_QUEUE, 'waiting', 61);
    const rows = await page.$$eval('#feed > li', (lis) => lis.length);
    if (rows > 50) throw new Error(rows + ' rows in the feed');
    const last = await publish(FORM_QUEUE, 'last-one', null);
    await waitFor('the newest publish at the top of the feed',
      (id) => document.querySelector('#feed > li')?.dataset.id === id, last.id,
      () => document.querySelector('#feed > li')?.textContent);
    if (receipts.length !== 30) throw new Error('burst failed');
  });

  await check('no errors in the page', () => noErrors(pageErrors));

  if (screenshotPath) {
    await check('screenshot of a busy classroom', async () => {
      await scene();
      await new Promise((r) => setTimeout(r, 1500)); // let the flashes fade
      fs.mkdirSync(path.dirname(screenshotPath), { recursive: true });
      await page.screenshot({ path: screenshotPath, fullPage: false });
      console.log('     saved ' + screenshotPath);
    });
  }
}

// Secured mode: the page has to get the API key before it can connect or publish.
async function securedMode(pageErrors) {
  const state = () => `#conn=${document.querySelector('#conn')?.dataset.state}, ` +
    `key form hidden=${document.querySelector('#key-form')?.hidden}, ` +
    `key error=${document.querySelector('#key-error')?.textContent}`;

  const traffic = watchTraffic(page);
  const asked = await check('without a key the page asks for one and shows no data', async () => {
    await publish(QUEUE, 'created', { n: 1 });
    const response = await page.goto(PAGE, { timeout: WAIT_MS });
    if (!response || response.status() !== 200) {
      throw new Error('GET /dashboard answered ' + (response && response.status()));
    }
    await waitFor('the locked state and the key form',
      () => document.querySelector('#conn')?.dataset.state === 'locked' &&
        document.querySelector('#key-form')?.hidden === false,
      null, state);
    if (await page.$('[data-queue]')) throw new Error('queue cards shown without a key');
  });
  if (!asked) return;

  await check('a wrong key is refused and the page stays locked', async () => {
    await page.fill('#key-input', 'not-the-key');
    await page.click('#key-form button');
    await waitFor("the server's refusal under the key form",
      () => /not valid/.test(document.querySelector('#key-error')?.textContent || '') &&
        document.querySelector('#conn')?.dataset.state === 'locked' &&
        document.querySelector('#key-form')?.hidden === false,
      null, state);
    if (await page.$('[data-queue]')) throw new Error('queue cards shown with a wrong key');
  });

  await check('the right key makes it live, with the queues', async () => {
    await page.fill('#key-input', apiKey);
    await page.click('#key-form button');
    await waitFor(`live, with a card for ${QUEUE}`,
      (queue) => document.querySelector('#conn')?.dataset.state === 'live' &&
        document.querySelector('#key-form')?.hidden === true &&
        !!document.querySelector(`[data-queue="${CSS.escape(queue)}"]`),
      QUEUE, state);
    await waitQueueNumber(QUEUE, 'waiting', 1);
  });

  await check(`with the key, the official socket.io client carries the session over ${transport || 'polling, upgraded to a WebSocket'}`,
    () => checkTransport(page, traffic, transport));

  await check('the publish form sends the key (201, waiting 1 -> 2)', async () => {
    await page.fill('#publish-queue', QUEUE);
    await page.fill('#publish-event', 'created');
    await page.fill('#publish-payload', '{"n": 2}');
    await page.click('#publish-submit');
    await waitFor('the form to report success',
      () => document.querySelector('#publish-result')?.dataset.state === 'ok',
      null, () => document.querySelector('#publish-result')?.textContent);
    await waitQueueNumber(QUEUE, 'waiting', 2);
  });

  await check('/dashboard#key=KEY in a new tab goes live and takes the key out of the address', async () => {
    const tab = await context.newPage();
    tab.on('pageerror', (err) => pageErrors.push(err.message));
    try {
      const tabTraffic = watchTraffic(tab);
      await tab.goto(PAGE + '#key=' + encodeURIComponent(apiKey), { timeout: WAIT_MS });
      await tab.waitForFunction(
        () => document.querySelector('#conn')?.dataset.state === 'live' &&
          document.querySelector('#queues')?.dataset.ready === 'true',
        null, { timeout: WAIT_MS, polling: 50 });
      if (tab.url().includes('key=')) throw new Error('the key is still in the address: ' + tab.url());
      await checkTransport(tab, tabTraffic, transport);
    } finally {
      await tab.close();
    }
  });

  await check('no errors in the page', () => noErrors(pageErrors));
}

// A few queues with clients online and offline and messages pending or waiting, like the
// CAPS lab in the middle of a session.
async function scene() {
  const order = (n, store) => ({ store, orderId: 'A' + n, customer: 'Ada Lovelace', address: 'Leeds' });
  // Messages for a queue nobody subscribes to yet wait there.
  for (let n = 1; n <= 4; n++) await publish('orders', 'created', order(n, 'nobody-yet'));
  // A store that was online and went away, with deliveries piling up.
  closeSocket(await subscriber('1-800-flowers', '1-800-flowers', { auth: true }));
  for (let n = 1; n <= 3; n++) await publish('1-800-flowers', 'delivered', order(n, '1-800-flowers'));
  // A work queue with one worker online and one offline.
  closeSocket(await subscriber('worker-2', 'bg_building', { auth: true }));
  await subscriber('worker-1', 'bg_building', { auth: true });
  for (let n = 1; n <= 2; n++) await publish('bg_building', 'build', { job: n });
  // The driver online with two sockets, all its pickups acked.
  await subscriber('driver', 'driver', { auth: true });
  await subscriber('driver', 'driver', { auth: true });
  const pickups = [];
  for (let n = 1; n <= 4; n++) pickups.push(await publish('driver', 'pickup', order(n, 'acme-widgets')));
  await ack('driver', 'driver', pickups.map((r) => r.id));
  // A store comes online, gets an order in transit and acks it...
  await subscriber('acme-widgets', 'acme-widgets', { auth: true });
  const inTransit = await publish('acme-widgets', 'in-transit', order(1, 'acme-widgets'));
  await ack('acme-widgets', 'acme-widgets', [inTransit.id]);
  // ...and the teacher publishes its delivery through the page's own form: it stays pending.
  await page.fill('#publish-queue', 'acme-widgets');
  await page.fill('#publish-event', 'delivered');
  await page.fill('#publish-payload', '{"orderId": "A1", "customer": "Ada"}');
  await page.click('#publish-submit');
  await waitFor('the form to report success',
    () => document.querySelector('#publish-result')?.dataset.state === 'ok');
  // Activity arrives in order, so once the form's publish is in the feed the page has seen
  // everything before it (the snapshot follows within 250 ms).
  const id = await page.getAttribute('#publish-result', 'data-id');
  await waitFor('the form\'s publish in the feed',
    (id) => document.querySelector('#feed > li')?.dataset.id === id, id);
  await waitConnected('acme-widgets', 'acme-widgets', true);
  await waitConnected('1-800-flowers', '1-800-flowers', false);
}

main()
  .catch((err) => {
    failed++;
    console.log('FAIL unexpected: ' + ((err && err.stack) || err));
  })
  .finally(async () => {
    clearTimeout(watchdog);
    await cleanup().catch(() => {});
    finish();
  });
