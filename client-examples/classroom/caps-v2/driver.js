'use strict';

// The 2.x CAPS DRIVER (clientID `driver`): picks up each order, reports it `in-transit`, then
// `delivered`. Both carry the order as `payload`; the hub sends them to the order's store.
//
//   node driver.js [--count N]     exit after N deliveries (default: keep driving)

const { Queue, HUB } = require('./queue');

const count = flag('--count');
const driver = new Queue('driver', HUB);
const seen = new Set(); // messageIDs already handled: delivery is at-least-once
let delivered = 0;

driver.subscribe('pickup', (message) => {
  driver.received('pickup', message.messageID);
  if (seen.has(message.messageID)) return;
  seen.add(message.messageID);
  const order = message.payload;
  console.log(`DRIVER: picked up ${order.orderId}`);
  driver.trigger('in-transit', order);
  driver.trigger('delivered', order, () => {
    delivered += 1;
    console.log(`DRIVER: delivered ${order.orderId}`);
    if (count !== undefined && delivered >= count) bye();
  });
});
driver.getAll('pickup', (answer) => console.log(`DRIVER: caught up (${answer.count})`));
if (count === 0) driver.getAll('pickup', bye);

function bye() {
  console.log(`DRIVER: ${delivered} delivered, bye`);
  driver.close();
  process.exit(0);
}

function flag(name) {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : Number(process.argv[i + 1]);
}
