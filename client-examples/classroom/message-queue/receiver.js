'use strict';

// The message-queue demo's RECEIVER (socket.io-client 4, namespace /messages): asks for its
// messages (`get-messages {clientId}`), prints each `messages` event (the sender's own
// object) and answers `received` with that same object, which removes it.
//
//   node receiver.js CLIENT [--expect N]     exit once N messages were received (default 0:
//                                            once caught up and quiet for a moment)

const { io } = require('socket.io-client');

const HUB = process.env.QUEUEHUB_URL || 'http://127.0.0.1:3002';
const clientId = process.argv[2];
const i = process.argv.indexOf('--expect');
const expect = i < 0 ? 0 : Number(process.argv[i + 1]);
const socket = io(`${HUB}/messages`);
let received = 0;
let caughtUp = false;

socket.on('messages', (message) => {
  console.log(`RECEIVER: got ${message.messageId}: ${message.text}`);
  socket.emit('received', message, (answer) => {
    if (answer.removed) received += 1;
    done();
  });
});
socket.emit('get-messages', { clientId }, (answer) => {
  console.log(`RECEIVER: caught up (${answer.count})`);
  caughtUp = true;
  if (expect === 0) setTimeout(done, 500);
  else done();
});

function done() {
  if (!caughtUp || received < expect) return;
  console.log(`RECEIVER: ${received} received, bye`);
  socket.close();
  process.exit(0);
}
