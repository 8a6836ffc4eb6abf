'use strict';

// The rooms-style CAPS VENDOR (socket.io-client 4, namespace /caps): joins its store's room,
// orders pickups, and thanks the driver for each `delivered` (its argument is the order).
// It never asks for what it missed and never acknowledges: `--preset caps-rooms` does both.
//
//   node vendor.js STORE [--orders N] [--wait-for N]

const { io } = require('socket.io-client');

const HUB = process.env.QUEUEHUB_URL || 'http://127.0.0.1:3002';
const store = process.argv[2];
const orders = flag('--orders') || 0;
const waitFor = flag('--wait-for') || 0;
const socket = io(`${HUB}/caps`);
let thanked = 0;
let stored = 0;

socket.emit('join', { storeName: store });
socket.on('join', (payload) => console.log(`VENDOR: ${payload.storeName} joined`));
socket.on('delivered', (order) => {
  thanked += 1;
  console.log(`VENDOR: Thank you for delivering ${order.orderId}`);
  done();
});
for (let n = 1; n <= orders; n += 1) {
  const order = { store, orderId: `${store}-${process.pid}-${n}`, customer: 'Ada', address: '1 Main St' };
  socket.emit('pickup', order, () => {
    stored += 1;
    console.log(`VENDOR: order ${order.orderId} is ready for pickup`);
    done();
  });
}
done();

function done() {
  if (stored < orders || thanked < waitFor) return;
  console.log(`VENDOR: ${thanked} thanked, bye`);
  socket.close();
  process.exit(0);
}

function flag(name) {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : Number(process.argv[i + 1]);
}
