'use strict';

// CAPS lab: the DRIVER, socket.io-client 4, namespace /caps.
//
// Every `pickup` order a vendor sends lands in the driver's queue on the hub. The driver picks
// it up, tells the hub it has it (`received`, which removes it from the driver's queue), says
// the order is `in-transit`, and a moment later that it is `delivered`. The hub routes those
// two to the queue of the order's store, where the vendor finds them even if it was offline.
//
//   node driver.js [--count N] [--delay MS]
//
//   --count N    exit after delivering N orders (default: keep driving)
//   --delay MS   time to drive to the store and on to the customer (default 1000)
//
// The hub: $QUEUEHUB_URL (default http://127.0.0.1:3001, the lab's hub port).

const { io } = require('socket.io-client');

const HUB = process.env.QUEUEHUB_URL || 'http://127.0.0.1:3001';
const options = readOptions(process.argv.slice(2));

const socket = io(`${HUB}/caps`);

const pickedUp = new Set(); // message ids of pickups we already took
let delivered = 0;

socket.on('connect', () => {
  console.log(`DRIVER: connected to the hub at ${HUB}/caps`);
  // Pickups posted while no driver was around wait in the driver's queue: ask for them.
  // (getAll also makes this socket the driver's, so new pickups arrive live afterwards.)
  socket.emit('getAll', { clientId: 'driver', event: 'pickup' }, (answer) => {
    console.log(`DRIVER: caught up (${answer.count} pickup(s) waiting)`);
  });
});

socket.on('connect_error', (error) => {
  console.log(`DRIVER: cannot reach the hub at ${HUB}/caps (${error.message}), retrying`);
});

socket.on('pickup', (payload) => {
  // Delivery is at-least-once: the same pickup can come live and again in a catch-up.
  if (pickedUp.has(payload.messageId)) return;
  pickedUp.add(payload.messageId);

  const order = payload.payload; // the order the vendor sent: {store, orderId, customer, address}
  console.log(`DRIVER: picked up ${payload.orderId} from ${payload.store}`);

  setTimeout(() => {
    socket.emit('received', { clientId: 'driver', event: 'pickup', messageId: payload.messageId });
    socket.emit('in-transit', order);
    console.log(`DRIVER: ${order.orderId} is in transit`);

    setTimeout(() => {
      // The hub answers once the message is stored for the store's vendor.
      socket.emit('delivered', order, () => {
        console.log(`DRIVER: delivered ${order.orderId}`);
        delivered += 1;
        if (options.count !== undefined && delivered >= options.count) {
          console.log(`DRIVER: ${delivered} order(s) delivered, bye`);
          socket.disconnect();
          process.exit(0);
        }
      });
    }, options.delay);
  }, options.delay);
});

function readOptions(args) {
  const result = { delay: 1000 };
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i];
    const value = Number(args[i + 1]);
    i += 1;
    if (!Number.isInteger(value) || value < 0) usage(`${arg} needs a whole number`);
    if (arg === '--count') result.count = value;
    else if (arg === '--delay') result.delay = value;
    else usage(`unknown argument ${arg}`);
  }
  return result;
}

function usage(problem) {
  console.error(`driver.js: ${problem}`);
  console.error('usage: node driver.js [--count N] [--delay MS]');
  process.exit(2);
}
