'use strict';

// CAPS lab: the VENDOR the way the socket.io-client 2.x lab wrote it. Namespace "/", events
// `subscribe` / `getall` / `received` carrying `clientID` and `messageID`, and app events
// wrapped as `{clientID, payload: order}`. Runs unchanged against `queuehub --preset caps`.
//
//   node vendor.js [store] [--orders N] [--wait-for N] [--every MS]
//
//   store          the store's name (default: $STORE, else acme-widgets)
//   --orders N     send N orders, then stop sending (default: keep sending)
//   --wait-for N   exit once N deliveries were thanked for (default: the --orders count)
//   --every MS     time between two orders (default 3000)
//
// The hub: $QUEUEHUB_URL (default http://127.0.0.1:3001, the lab's hub port).

const io = require('socket.io-client');

const HUB = process.env.QUEUEHUB_URL || 'http://127.0.0.1:3001';
const options = readOptions(process.argv.slice(2));
const storeName = options.store || process.env.STORE || 'acme-widgets';

const socket = io.connect(HUB);

let ordersSent = 0;
let orderTimer = null;
const thanked = {}; // messageID -> true, for deliveries we already thanked for
let answersPending = 0;
let catchUpsDone = 0;

socket.on('connect', () => {
  console.log(`VENDOR ${storeName}: connected to ${HUB}`);

  // Subscribe to our own queue on the hub, then get everything we missed while offline.
  socket.emit('subscribe', { event: 'delivered', clientID: storeName });
  socket.emit('subscribe', { event: 'in-transit', clientID: storeName });
  catchUpsDone = 0;
  socket.emit('getall', { event: 'delivered', clientID: storeName }, caughtUp);
  // (the older form: the event's name sent as `payload`)
  socket.emit('getall', { clientID: storeName, payload: 'in-transit' }, caughtUp);

  if (orderTimer === null && options.orders !== 0) {
    orderTimer = setInterval(sendOrder, options.every);
    sendOrder();
  }
});

socket.on('in-transit', (message) => {
  console.log(`VENDOR ${storeName}: order ${message.payload.orderId} is in transit`);
  received(message, 'in-transit');
});

socket.on('delivered', (message) => {
  if (!thanked[message.messageID]) {
    thanked[message.messageID] = true;
    console.log(`VENDOR: Thank you for delivering ${message.payload.orderId || message.payload.code}`);
  }
  received(message, 'delivered');
});

function received(message, event) {
  answersPending += 1;
  socket.emit('received', { clientID: storeName, messageID: message.messageID, event }, () => {
    answersPending -= 1;
    exitIfDone();
  });
}

function caughtUp(answer) {
  catchUpsDone += 1;
  console.log(`VENDOR ${storeName}: caught up (${answer.count} message(s) re-sent)`);
  exitIfDone();
}

function sendOrder() {
  const order = {
    store: storeName,
    orderId: `${storeName}-v2-${Date.now().toString(36)}-${ordersSent + 1}`,
    customer: 'Grace Hopper',
    address: '22 Pine St, Portland, OR',
  };
  console.log(`VENDOR ${storeName}: order ${order.orderId} is ready for pickup`);
  socket.emit('pickup', { clientID: storeName, payload: order });
  ordersSent += 1;
  if (options.orders !== undefined && ordersSent >= options.orders) clearInterval(orderTimer);
}

function exitIfDone() {
  const waitFor = options.waitFor !== undefined ? options.waitFor : options.orders;
  if (waitFor === undefined) return;
  const count = Object.keys(thanked).length;
  if (count < waitFor || answersPending > 0 || catchUpsDone < 2) return;
  console.log(`VENDOR ${storeName}: ${count} deliveries thanked for, bye`);
  clearInterval(orderTimer);
  socket.disconnect();
  process.exit(0);
}

function readOptions(args) {
  const result = { every: 3000 };
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i];
    if (!arg.startsWith('--')) {
      result.store = arg;
      continue;
    }
    const value = Number(args[(i += 1)]);
    if (!Number.isInteger(value) || value < 0) usage(`${arg} needs a whole number`);
    if (arg === '--orders') result.orders = value;
    else if (arg === '--wait-for') result.waitFor = value;
    else if (arg === '--every') result.every = value;
    else usage(`unknown flag ${arg}`);
  }
  return result;
}

function usage(problem) {
  console.error(`vendor.js: ${problem}`);
  console.error('usage: node vendor.js [store] [--orders N] [--wait-for N] [--every MS]');
  process.exit(2);
}
