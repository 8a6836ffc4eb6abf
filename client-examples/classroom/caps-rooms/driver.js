'use strict';

// The rooms-style CAPS DRIVER (socket.io-client 4, namespace /caps): joins the store's room,
// prints who else joins, picks up each order, reports `in-transit` (which goes nowhere) and
// `delivered` (which goes to the others in the room: the vendor).
//
//   node driver.js STORE [--count N]     exit after N deliveries

const { io } = require('socket.io-client');

const HUB = process.env.QUEUEHUB_URL || 'http://127.0.0.1:3002';
const store = process.argv[2];
const count = flag('--count');
const socket = io(`${HUB}/caps`);
let delivered = 0;

socket.emit('join', { storeName: store });
socket.on('join', (payload) => console.log(`DRIVER: ${payload.storeName} joined`));
socket.on('pickup', (order) => {
  console.log(`DRIVER: picked up ${order.orderId}`);
  socket.emit('in-transit', order);
  socket.emit('delivered', order, () => {
    delivered += 1;
    console.log(`DRIVER: delivered ${order.orderId}`);
    if (count !== undefined && delivered >= count) {
      console.log(`DRIVER: ${delivered} delivered, bye`);
      socket.close();
      process.exit(0);
    }
  });
});

function flag(name) {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : Number(process.argv[i + 1]);
}
