#!/usr/bin/env node
// End-to-end smoke test of a running queuehub, from a Node socket.io-client 4 client.
//
//   QUEUEHUB_URL=http://127.0.0.1:3000 node smoke.js
//
// Three checks, each on its own fresh queue and client (names are unique per run):
//   a) mailbox:   3 messages published over HTTP to a queue nobody subscribes to wait; the
//                 first subscriber takes them, getAll re-sends all 3 in order, acking each
//                 leaves the client's pending count at 0.
//   b) live push: while subscribed, a message published over HTTP arrives at once as a
//                 socket.io event named after its event, carrying the full envelope.
//   c) catch-up:  subscribed, then offline; 2 messages published meanwhile; after reconnecting,
//                 getAll returns exactly those 2; acking them empties the inbox (peek is empty).
// Every wait is bounded. Prints `node smoke: N passed, M failed` and exits 1 on any failure.
'use strict';

const assert = require('node:assert/strict');
const { io } = require('socket.io-client');

const BASE = (process.env.QUEUEHUB_URL || 'http://127.0.0.1:3000').replace(/\/+$/, '');
const TIMEOUT_MS = Number(process.env.SMOKE_TIMEOUT_MS || 10_000);
const RUN = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
const ENVELOPE_FIELDS = ['id', 'queue', 'event', 'payload', 'clientId', 'publishedAt', 'source', 'attempt'];

// ---------------------------------------------------------------------------------------------
// helpers

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function http(method, path, body) {
  const init = { method, signal: AbortSignal.timeout(TIMEOUT_MS), headers: {} };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(BASE + path, init);
  } catch (err) {
    throw new Error(`${method} ${path}: request failed: ${err.cause ? err.cause.message : err.message}`);
  }
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    throw new Error(`${method} ${path}: HTTP ${res.status}, body is not JSON: ${text.slice(0, 200)}`);
  }
  return { status: res.status, body: json };
}

async function publish(queue, event, payload) {
  const path = `/v1/queues/${encodeURIComponent(queue)}/messages`;
  const res = await http('POST', path, { event, payload });
  assert.equal(res.status, 201, `POST ${path} answered ${res.status}: ${JSON.stringify(res.body)}`);
  assert.equal(typeof res.body.id, 'string', `publish response has no id: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.queue, queue, 'publish response names another queue');
  assert.equal(res.body.event, event, 'publish response names another event');
  return res.body;
}

async function queueStats(queue) {
  const res = await http('GET', `/v1/queues/${encodeURIComponent(queue)}`);
  assert.equal(res.status, 200, `GET /v1/queues/${queue} answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body;
}

function subscriberOf(stats, clientId) {
  const sub = (stats.subscribers || []).find((s) => s.clientId === clientId);
  assert.ok(sub, `client ${clientId} is not listed among the subscribers of ${stats.queue}: ${JSON.stringify(stats)}`);
  return sub;
}

async function peek(queue, clientId) {
  const path = `/v1/queues/${encodeURIComponent(queue)}/clients/${encodeURIComponent(clientId)}/messages?limit=100`;
  const res = await http('GET', path);
  assert.equal(res.status, 200, `GET ${path} answered ${res.status}: ${JSON.stringify(res.body)}`);
  assert.ok(Array.isArray(res.body.messages), `peek response has no messages array: ${JSON.stringify(res.body)}`);
  return res.body.messages;
}

async function waitUntil(predicate, what) {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${TIMEOUT_MS} ms waiting for ${what}`);
    await sleep(100);
  }
}

// A socket.io client that records every envelope it receives, in arrival order.
class Client {
  constructor(clientId) {
    this.clientId = clientId;
    this.received = [];
    this.waiters = [];
    this.errors = [];
    this.socket = io(BASE, {
      auth: { clientId },
      forceNew: true,
      autoConnect: false,
      reconnection: false,
      timeout: TIMEOUT_MS,
    });
    this.socket.onAny((event, arg) => {
      if (event === 'mq:error') {
        this.errors.push(arg);
        return;
      }
      this.received.push({ event, envelope: arg });
      this.waiters = this.waiters.filter((w) => !w());
    });
  }

  connect() {
    const socket = this.socket;
    if (socket.connected) return Promise.resolve();
    const connected = new Promise((resolve, reject) => {
      const onConnect = () => { socket.off('connect_error', onError); resolve(); };
      const onError = (err) => { socket.off('connect', onConnect); reject(new Error(`connect_error: ${err.message}`)); };
      socket.once('connect', onConnect);
      socket.once('connect_error', onError);
    });
    socket.connect();
    return withTimeout(connected, TIMEOUT_MS, `socket.io connect to ${BASE}`);
  }

  disconnect() {
    this.socket.disconnect();
  }

  // Emits with an ack callback and insists on {ok: true}.
  async call(event, data) {
    let reply;
    try {
      reply = await this.socket.timeout(TIMEOUT_MS).emitWithAck(event, data);
    } catch (err) {
      throw new Error(`no ack for '${event}' within ${TIMEOUT_MS} ms (${err.message})`);
    }
    if (!reply || reply.ok !== true) {
      throw new Error(`'${event}' ${JSON.stringify(data)} was refused: ${JSON.stringify(reply)}`);
    }
    return reply;
  }

  // Resolves once `count` envelopes satisfying `filter` have arrived (counting from `from`).
  waitForEnvelopes(count, filter, what, from = 0) {
    const matching = () => this.received.slice(from).filter(filter);
    const done = new Promise((resolve) => {
      const check = () => {
        const found = matching();
        if (found.length >= count) {
          resolve(found);
          return true;
        }
        return false;
      };
      if (!check()) this.waiters.push(check);
    });
    return withTimeout(done, TIMEOUT_MS, what);
  }

  close() {
    this.socket.removeAllListeners();
    this.socket.offAny();
    this.socket.disconnect();
  }
}

function checkEnvelope(event, envelope, expected) {
  assert.ok(envelope && typeof envelope === 'object', `event '${event}' carried no envelope object: ${JSON.stringify(envelope)}`);
  for (const field of ENVELOPE_FIELDS) {
    assert.ok(field in envelope, `envelope lacks '${field}': ${JSON.stringify(envelope)}`);
  }
  assert.equal(event, envelope.event, 'the socket.io event name differs from envelope.event');
  assert.equal(envelope.id, expected.id, 'envelope id');
  assert.equal(envelope.queue, expected.queue, 'envelope queue');
  assert.equal(envelope.event, expected.event, 'envelope event');
  assert.deepEqual(envelope.payload, expected.payload, 'envelope payload');
  assert.equal(envelope.clientId, expected.clientId, 'envelope clientId');
  assert.equal(envelope.publishedAt, expected.publishedAt, 'envelope publishedAt');
  assert.ok(!Number.isNaN(Date.parse(envelope.publishedAt)), `publishedAt is not a timestamp: ${envelope.publishedAt}`);
  assert.equal(envelope.source, 'http', 'envelope source of an HTTP publish');
  assert.ok(Number.isInteger(envelope.attempt) && envelope.attempt >= 1, `attempt should be a positive integer, got ${envelope.attempt}`);
}

async function cleanup(queue, clientId) {
  // Best effort: drop the test subscription so repeated runs leave no subscribers behind.
  try {
    await http('DELETE', `/v1/queues/${encodeURIComponent(queue)}/clients/${encodeURIComponent(clientId)}`);
  } catch {
    // ignore
  }
}

// ---------------------------------------------------------------------------------------------
// checks

async function checkMailbox() {
  const queue = `smoke-node-mailbox-${RUN}`;
  const clientId = `smoke-node-a-${RUN}`;
  const event = 'delivered';
  const client = new Client(clientId);
  try {
    // Nobody subscribes yet: the messages wait in the queue.
    const published = [];
    for (let n = 1; n <= 3; n++) {
      const payload = { orderId: `order-${n}`, n, run: RUN };
      const res = await publish(queue, event, payload);
      assert.equal(res.recipients, 0, `publish #${n} to a queue without subscribers reached ${res.recipients} recipient(s)`);
      published.push({ ...res, payload, clientId });
    }
    const before = await queueStats(queue);
    assert.equal(before.waiting, 3, `queue should hold 3 waiting messages, stats: ${JSON.stringify(before)}`);

    // The first subscriber takes them all.
    await client.connect();
    const sub = await client.call('subscribe', { clientId, queue });
    assert.equal(sub.pending, 3, `subscribe should report 3 pending, got ${JSON.stringify(sub)}`);

    const from = client.received.length;
    const all = await client.call('getAll', { clientId, queue });
    assert.equal(all.count, 3, `getAll count should be 3, got ${JSON.stringify(all)}`);
    const got = await client.waitForEnvelopes(3, (m) => m.envelope && m.envelope.queue === queue, 'the 3 catch-up messages', from);
    assert.equal(got.length, 3, `getAll re-sent ${got.length} messages, expected 3`);
    assert.deepEqual(got.map((m) => m.envelope.id), published.map((p) => p.id), 'catch-up is not in publish order');
    got.forEach((m, i) => checkEnvelope(m.event, m.envelope, published[i]));

    for (const p of published) {
      const ack = await client.call('received', { clientId, id: p.id, queue });
      assert.equal(ack.removed, true, `received ${p.id} should remove it, got ${JSON.stringify(ack)}`);
    }
    const after = await queueStats(queue);
    const mine = subscriberOf(after, clientId);
    assert.equal(mine.pending, 0, `pending should be 0 after acking everything, stats: ${JSON.stringify(after)}`);
    assert.equal(after.waiting, 0, `nothing should wait in the queue any more, stats: ${JSON.stringify(after)}`);
    assert.deepEqual(client.errors, [], 'unexpected mq:error events');
  } finally {
    client.close();
    await cleanup(queue, clientId);
  }
}

async function checkLivePush() {
  const queue = `smoke-node-live-${RUN}`;
  const clientId = `smoke-node-b-${RUN}`;
  const event = 'in-transit';
  const client = new Client(clientId);
  try {
    await client.connect();
    const sub = await client.call('subscribe', { clientId, queue });
    assert.equal(sub.pending, 0, `a fresh subscription should have nothing pending, got ${JSON.stringify(sub)}`);
    assert.deepEqual(sub.queues, [queue], 'subscribe ack should list the queue');

    // Listen for the socket.io event named after the message's event, as an application would.
    const arrived = new Promise((resolve) => client.socket.once(event, (envelope) => resolve(envelope)));
    const payload = { store: 'acme-widgets', orderId: `live-${RUN}`, items: [1, 2, 3], note: 'héllo ✓' };
    const res = await publish(queue, event, payload);
    assert.equal(res.recipients, 1, `publish to a subscribed queue should have 1 recipient, got ${res.recipients}`);
    const envelope = await withTimeout(arrived, TIMEOUT_MS, `live '${event}' event`);
    checkEnvelope(event, envelope, { ...res, payload, clientId });
    assert.equal(envelope.attempt, 1, 'a first live delivery is attempt 1');

    const ack = await client.call('received', { clientId, id: res.id });
    assert.equal(ack.removed, true, `received should remove the message, got ${JSON.stringify(ack)}`);
    const again = await client.call('received', { clientId, id: res.id });
    assert.equal(again.removed, false, `a repeated ack should answer removed: false, got ${JSON.stringify(again)}`);
    assert.deepEqual(await peek(queue, clientId), [], 'the inbox should be empty after the ack');
    assert.deepEqual(client.errors, [], 'unexpected mq:error events');
  } finally {
    client.close();
    await cleanup(queue, clientId);
  }
}

async function checkReconnectCatchUp() {
  const queue = `smoke-node-reconnect-${RUN}`;
  const clientId = `smoke-node-c-${RUN}`;
  const event = 'delivered';
  const client = new Client(clientId);
  try {
    await client.connect();
    await client.call('subscribe', { clientId, queue });
    client.disconnect();
    await waitUntil(async () => !subscriberOf(await queueStats(queue), clientId).connected,
      'the server to see the client offline');

    const published = [];
    for (let n = 1; n <= 2; n++) {
      const payload = { n, run: RUN, while: 'offline' };
      const res = await publish(queue, event, payload);
      assert.equal(res.recipients, 1, `publish #${n} should be stored for the offline subscriber, recipients = ${res.recipients}`);
      published.push({ ...res, payload, clientId });
    }
    assert.equal(client.received.length, 0, 'an offline client received messages');
    assert.equal(subscriberOf(await queueStats(queue), clientId).pending, 2, 'pending should be 2 while offline');

    // Same socket object reconnects (a new socket.io session); the subscription is durable.
    await client.connect();
    const all = await client.call('getAll', { clientId });
    assert.equal(all.count, 2, `getAll after reconnect should re-send exactly 2, got ${JSON.stringify(all)}`);
    const got = await client.waitForEnvelopes(2, () => true, 'the 2 messages published while offline');
    await sleep(200); // anything extra would show up here
    assert.equal(client.received.length, 2, `expected exactly 2 messages, got ${client.received.length}: ${JSON.stringify(client.received)}`);
    assert.deepEqual(got.map((m) => m.envelope.id), published.map((p) => p.id), 'catch-up returned other messages or another order');
    got.forEach((m, i) => checkEnvelope(m.event, m.envelope, published[i]));

    const ack = await client.call('received', { clientId, ids: published.map((p) => p.id) });
    assert.equal(ack.removed, 2, `acking both should remove them, got ${JSON.stringify(ack)}`);
    assert.deepEqual(await peek(queue, clientId), [], 'the inbox should be empty after acking');
    assert.equal(subscriberOf(await queueStats(queue), clientId).pending, 0, 'pending should be 0 after acking');
    assert.deepEqual(client.errors, [], 'unexpected mq:error events');
  } finally {
    client.close();
    await cleanup(queue, clientId);
  }
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const checks = [
    ['a) mailbox: publish before subscribe, getAll in order, ack all', checkMailbox],
    ['b) live push: HTTP publish arrives live with the envelope', checkLivePush],
    ['c) offline: disconnect, publish 2, reconnect, getAll exactly 2, ack, inbox empty', checkReconnectCatchUp],
  ];
  console.log(`node smoke against ${BASE} (run ${RUN})`);
  let passed = 0;
  let failed = 0;
  let reachable = true;
  try {
    const health = await http('GET', '/healthz');
    if (health.status !== 200) throw new Error(`GET /healthz answered ${health.status}`);
  } catch (err) {
    console.log(`FAIL  queuehub is not reachable at ${BASE}: ${err.message}`);
    reachable = false;
  }
  for (const [name, check] of checks) {
    if (!reachable) {
      failed++;
      console.log(`FAIL  ${name}: skipped, server unreachable`);
      continue;
    }
    const started = Date.now();
    try {
      // Each check gets a hard ceiling on top of its own bounded waits.
      await withTimeout(check(), 6 * TIMEOUT_MS, `check '${name}'`);
      passed++;
      console.log(`ok    ${name} (${Date.now() - started} ms)`);
    } catch (err) {
      failed++;
      console.log(`FAIL  ${name}: ${err.message}`);
    }
  }
  console.log(`node smoke: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((err) => {
  console.log(`node smoke: internal error: ${err && err.stack ? err.stack : err}`);
  console.log('node smoke: 0 passed, 3 failed');
  process.exit(1);
});
