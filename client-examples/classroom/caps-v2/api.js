'use strict';

// The 2.x lab's Express API as a hub client (clientID `api`): a delivery scanned by hand is
// `delivered {clientID: "api", payload: {store, code}}`; the hub sends it to `store`.
//
//   node api.js STORE CODE

const { Queue, HUB } = require('./queue');

const [store, code] = process.argv.slice(2);
const api = new Queue('api', HUB);
api.trigger('delivered', { store, code }, (answer) => {
  console.log(`API: delivery ${code} for ${store} -> queue ${answer.queue}`);
  api.close();
  process.exit(answer.queue === store ? 0 : 1);
});
