'use strict';

// The 2.x CAPS VENDOR (clientID = its store): orders pickups and thanks the driver for each
// delivery to its store, including those made while it was offline (`getall`).
//
//   node vendor.js STORE [--orders N] [--wait-for N]

const { Queue, HUB } = require('./queue');

const store = process.argv[2];
const orders = flag('--orders') || 0;
const waitFor = flag('--wait-for') || 0;
const vendor = new Queue(store, HUB);
const thanked = new Set(); // messageIDs already thanked for
let stored = 0;
let caughtUp = false;
let acking = 0; // acks sent and not answered yet: leaving before would lose them

vendor.subscribe('in-transit', (message) => {
  console.log(`VENDOR: ${message.payload.orderId} is in transit`);
  ack('in-transit', message.messageID);
});
vendor.subscribe('delivered', (message) => {
  const what = message.payload.orderId || message.payload.code;
  if (!thanked.has(message.messageID)) {
    thanked.add(message.messageID);
    console.log(`VENDOR: Thank you for delivering ${what}`);
  }
  ack('delivered', message.messageID);
});
vendor.getAll('in-transit');
vendor.getAll('delivered', (answer) => {
  console.log(`VENDOR: caught up (${answer.count})`);
  caughtUp = true;
  done();
});
for (let n = 1; n <= orders; n += 1) {
  const order = {
    store,
    orderId: `${store}-${process.pid}-${n}`,
    customer: 'Grace Hopper',
    address: '22 Pine St',
  };
  vendor.trigger('pickup', order, () => {
    stored += 1;
    console.log(`VENDOR: order ${order.orderId} is ready for pickup`);
    done();
  });
}

function ack(event, messageID) {
  acking += 1;
  vendor.received(event, messageID, () => {
    acking -= 1;
    done();
  });
}

function done() {
  if (!caughtUp || acking > 0 || stored < orders || thanked.size < waitFor) return;
  console.log(`VENDOR: ${thanked.size} thanked, bye`);
  vendor.close();
  process.exit(0);
}

function flag(name) {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : Number(process.argv[i + 1]);
}
