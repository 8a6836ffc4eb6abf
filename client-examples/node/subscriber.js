#!/usr/bin/env node
// A queuehub subscriber: connects as a durable client, subscribes to one queue, pulls every
// message it missed while it was offline (getAll), then keeps receiving messages live.
// Every message is logged and acknowledged with `received`, which removes it from the
// client's inbox on the server. Acks are batched: the messages that arrive together (a
// catch-up, a burst) are acknowledged with one `received {ids: [...]}`.
//
//   node subscriber.js [clientId] [queue]
//
// Environment: QUEUEHUB_URL (default http://127.0.0.1:3000), CLIENT_ID (default acme-widgets),
// QUEUE (default: the client id). Command-line arguments win over the environment.
'use strict';

const { io } = require('socket.io-client');

const url = process.env.QUEUEHUB_URL || 'http://127.0.0.1:3000';
const clientId = process.argv[2] || process.env.CLIENT_ID || 'acme-widgets';
const queue = process.argv[3] || process.env.QUEUE || clientId;
const ACK_TIMEOUT_MS = 10_000;
const MAX_IDS_PER_ACK = 1000; // the server's batch limit

// Delivery is at-least-once: a message can arrive live and again in a catch-up. Remember the
// ids already handled (a bounded window is plenty) and acknowledge duplicates without logging.
const seen = new Set();
function remember(id) {
  seen.add(id);
  if (seen.size > 10_000) seen.delete(seen.values().next().value);
}

// `auth.clientId` ties the socket to the client, so later events may omit clientId; we send it
// anyway so the example reads the same as a client that does not use auth.
const socket = io(url, { auth: { clientId } });

function log(...args) {
  console.log(new Date().toISOString(), ...args);
}

async function call(event, data) {
  const reply = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, data);
  if (!reply || reply.ok !== true) {
    const err = (reply && reply.error) || { code: 'no_reply', message: JSON.stringify(reply) };
    throw new Error(`${event} failed: ${err.code}: ${err.message}`);
  }
  return reply;
}

function isEnvelope(value) {
  return value !== null && typeof value === 'object' && typeof value.id === 'string'
    && typeof value.queue === 'string' && typeof value.event === 'string';
}

// Messages arrive as socket.io events named after the message's event (`delivered`,
// `pickup`, ...), so listen to every event and pick out the envelopes.
socket.onAny(async (event, envelope) => {
  if (event === 'mq:error') {
    log('server error:', JSON.stringify(envelope));
    return;
  }
  if (!isEnvelope(envelope)) return;
  const duplicate = seen.has(envelope.id);
  remember(envelope.id);
  if (!duplicate) {
    log(`${envelope.queue} <- ${event} id=${envelope.id} attempt=${envelope.attempt}`,
      `source=${envelope.source} publishedAt=${envelope.publishedAt}`,
      `payload=${JSON.stringify(envelope.payload)}`);
  }
  ack(envelope.id);
});

// The ids waiting to be acknowledged; flushed once the messages that arrived together have
// been handled (after this turn of the event loop).
let toAck = [];
function ack(id) {
  toAck.push(id);
  if (toAck.length === 1) setImmediate(flushAcks);
}

async function flushAcks() {
  const ids = toAck;
  toAck = [];
  for (let i = 0; i < ids.length; i += MAX_IDS_PER_ACK) {
    const batch = ids.slice(i, i + MAX_IDS_PER_ACK);
    try {
      const reply = await call('received', { clientId, ids: batch });
      log(`   acked ${batch.length} message(s) (removed: ${reply.removed})`);
    } catch (err) {
      // Not acked: the messages stay in the inbox and come back with the next getAll.
      log(`   could not ack ${batch.length} message(s): ${err.message}`);
    }
  }
}

// Runs on the first connect and after every reconnect: subscribing again is harmless (the
// subscription is durable), and getAll fetches whatever arrived while we were away.
socket.on('connect', async () => {
  log(`connected to ${url} as ${clientId} (socket ${socket.id})`);
  try {
    const sub = await call('subscribe', { clientId, queue });
    log(`subscribed to ${sub.queues.join(', ')}: ${sub.pending} message(s) waiting`);
    const all = await call('getAll', { clientId, queue });
    log(`catch-up done: ${all.count} message(s) re-sent; now listening live (Ctrl-C to stop)`);
  } catch (err) {
    log(err.message);
  }
});

socket.on('connect_error', (err) => log(`cannot connect to ${url}: ${err.message} (retrying)`));
socket.on('disconnect', (reason) => log(`disconnected: ${reason}`));

function stop() {
  log('bye');
  socket.close();
  process.exit(0);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
