'use strict';

// The `Queue` class the socket.io-2 CAPS lab's clients share, as the lab wrote it: every
// event carries `{clientID: <this client's own id>, payload}`. `clientID` names the SENDER.
// Against `queuehub --preset caps-v2` it runs unchanged.

const io = require('socket.io-client');

class Queue {
  constructor(clientID, hub) {
    this.clientID = clientID;
    this.socket = io.connect(hub);
  }

  // Subscribe to one event of our own queue, and listen for it.
  subscribe(event, callback) {
    this.socket.emit('subscribe', { event, clientID: this.clientID });
    this.socket.on(event, callback);
  }

  // Emit an app event; the hub routes it (the optional `ack` runs once it is stored).
  trigger(event, payload, ack) {
    this.socket.emit(event, { clientID: this.clientID, payload }, ack);
  }

  // Ask for everything of `event` we have not acknowledged.
  getAll(event, done) {
    this.socket.emit('getall', { event, clientID: this.clientID }, done);
  }

  // Tell the hub we have a message: it leaves our queue.
  received(event, messageID, done) {
    this.socket.emit('received', { event, messageID, clientID: this.clientID }, done);
  }

  close() {
    this.socket.close();
  }
}

module.exports = { Queue, HUB: process.env.QUEUEHUB_URL || 'http://127.0.0.1:3001' };
