'use strict';

// CAPS lab: the VENDOR (a store), socket.io-client 4, namespace /caps.
//
// The store sends an order to be picked up every few seconds, hears when a driver has it in
// transit, and thanks the driver for every delivery. Each message the hub pushes to us stays in
// our queue on the hub until we send `received` for it, so deliveries made while the vendor was
// offline are not lost: on connect we ask for them with `getAll`.
//
//   node vendor.js [store] [--orders N] [--wait-for N] [--every MS]
//
//   store          the store's name (default: $STORE, else acme-widgets)
//   --orders N     send N orders, then stop sending (default: keep sending)
//   --wait-for N   exit once N deliveries were thanked for (default: the --orders count);
//                  `--orders 0 --wait-for 3` only catches up on 3 deliveries it missed
//   --every MS     time between two orders (default 3000)
//
// The hub: $QUEUEHUB_URL (default http://127.0.0.1:3001, the lab's hub port).

const { io } = require('socket.io-client');

const HUB = process.env.QUEUEHUB_URL || 'http://127.0.0.1:3001';
const options = readOptions(process.argv.slice(2));
const store = options.store || process.env.STORE || 'acme-widgets';

const socket = io(`${HUB}/caps`);

let ordersSent = 0;
let orderTimer = null;
const thanked = new Set(); // message ids of deliveries we already thanked for
const inTransit = new Set(); // message ids of in-transit notices we already printed
let answersPending = 0; // `received`s the hub has not confirmed yet
let catchUpsDone = 0; // `getAll`s the hub has finished since we (re)connected

socket.on('connect', () => {
  console.log(`${store}: connected to the hub at ${HUB}/caps`);

  // Our queue on the hub is named after the store. Joining it makes this socket receive our
  // messages live, and anything that waited for us while we were away is kept for us.
  socket.emit('join', store);

  // Ask for what we missed. The hub answers each getAll after it sent the last message.
  catchUpsDone = 0;
  socket.emit('getAll', { clientId: store, event: 'in-transit' }, caughtUp);
  socket.emit('getAll', { clientId: store, event: 'delivered' }, caughtUp);

  if (orderTimer === null && options.orders !== 0) {
    orderTimer = setInterval(sendOrder, options.every);
    sendOrder();
  }
});

socket.on('connect_error', (error) => {
  console.log(`${store}: cannot reach the hub at ${HUB}/caps (${error.message}), retrying`);
});

socket.on('disconnect', (reason) => {
  console.log(`${store}: disconnected (${reason})`);
});

socket.on('in-transit', (payload) => {
  if (!inTransit.has(payload.messageId)) {
    inTransit.add(payload.messageId);
    console.log(`${store}: order ${payload.orderId} is in transit`);
  }
  acknowledge('in-transit', payload);
});

socket.on('delivered', (payload) => {
  // Delivery is at-least-once: a message can come live and again in a catch-up.
  if (!thanked.has(payload.messageId)) {
    thanked.add(payload.messageId);
    // Orders delivered through the API (POST /delivery/{store}/{code}) carry a code instead.
    console.log(`Thank you for delivering ${payload.orderId || payload.code}`);
  }
  acknowledge('delivered', payload);
});

// `received` tells the hub we have the message: it is removed from our queue for good.
function acknowledge(event, payload) {
  answersPending += 1;
  socket.emit('received', { clientId: store, event, messageId: payload.messageId }, () => {
    answersPending -= 1;
    exitIfDone();
  });
}

function caughtUp(answer) {
  catchUpsDone += 1;
  console.log(`${store}: caught up (${answer.count} message(s) re-sent)`);
  exitIfDone();
}

function sendOrder() {
  const order = {
    store,
    orderId: `${store}-${Date.now().toString(36)}-${ordersSent + 1}`,
    customer: pick(CUSTOMERS),
    address: pick(ADDRESSES),
  };
  console.log(`${store}: order ${order.orderId} for ${order.customer} is ready for pickup`);
  socket.emit('pickup', order);
  ordersSent += 1;
  if (options.orders !== undefined && ordersSent >= options.orders) {
    clearInterval(orderTimer);
  }
}

function exitIfDone() {
  const waitFor = options.waitFor !== undefined ? options.waitFor : options.orders;
  if (waitFor === undefined) return; // run forever
  if (thanked.size < waitFor || answersPending > 0 || catchUpsDone < 2) return;
  console.log(`${store}: ${thanked.size} deliveries thanked for, bye`);
  clearInterval(orderTimer);
  socket.disconnect();
  process.exit(0);
}

const CUSTOMERS = ['Ada Lovelace', 'Grace Hopper', 'Alan Turing', 'Katherine Johnson', 'Linus Pauling'];
const ADDRESSES = ['1 Main St, Seattle, WA', '22 Pine St, Portland, OR', '7 Elm Ave, Boise, ID'];

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function readOptions(args) {
  const result = { every: 3000 };
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i];
    const number = () => {
      const value = Number(args[(i += 1)]);
      if (!Number.isInteger(value) || value < 0) usage(`${arg} needs a whole number`);
      return value;
    };
    if (arg === '--orders') result.orders = number();
    else if (arg === '--wait-for') result.waitFor = number();
    else if (arg === '--every') result.every = number();
    else if (arg.startsWith('--')) usage(`unknown flag ${arg}`);
    else result.store = arg;
  }
  return result;
}

function usage(problem) {
  console.error(`vendor.js: ${problem}`);
  console.error('usage: node vendor.js [store] [--orders N] [--wait-for N] [--every MS]');
  process.exit(2);
}
