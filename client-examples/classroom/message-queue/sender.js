'use strict';

// The message-queue demo's SENDER (socket.io-client 4, namespace /messages): emits
// `message {messageId, text, clientId}` for each id given; the same id twice is one message.
//
//   node sender.js CLIENT ID...

const { io } = require('socket.io-client');

const HUB = process.env.QUEUEHUB_URL || 'http://127.0.0.1:3002';
const [clientId, ...ids] = process.argv.slice(2);
const socket = io(`${HUB}/messages`);
let stored = 0;

for (const id of ids) {
  const message = { messageId: Number(id), text: `message number ${id}`, clientId };
  socket.emit('message', message, (answer) => {
    console.log(`SENDER: ${id} -> ${answer.queue} (${answer.ok ? 'stored' : answer.error.code})`);
    stored += 1;
    if (stored === ids.length) {
      socket.close();
      process.exit(0);
    }
  });
}
