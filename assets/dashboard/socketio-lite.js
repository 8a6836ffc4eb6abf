/*
 * socketio-lite.js: a minimal socket.io client for the browser, written to be read.
 *
 * The official socket.io client does much more (HTTP long-polling, binary attachments,
 * multiplexing, ...). This one speaks just enough of the protocol for queuehub's dashboard:
 * a WebSocket, one namespace, JSON events, heartbeats and reconnection. Under 400 lines, so
 * you can see every byte that goes over the wire.
 *
 *   const socket = liteSocket('/dashboard');
 *   socket.on('connect', () => console.log('connected as', socket.id));
 *   socket.on('snapshot', (state) => console.log(state));
 *   socket.on('disconnect', (reason) => console.log('lost it:', reason));
 *   socket.emit('hello', { some: 'data' }, (answer) => console.log('acked with', answer));
 *
 * ---------------------------------------------------------------------------------------
 * THE PROTOCOL IN TWO LAYERS
 *
 * 1. Engine.IO (version 4) is the transport layer. We open one WebSocket to
 *
 *      ws://<host>/socket.io/?EIO=4&transport=websocket
 *
 *    and every WebSocket text frame is one Engine.IO packet: a single digit (the packet
 *    type) followed by its data.
 *
 *      0  open     server -> client, right after the WebSocket opens:
 *                  0{"sid":"...","upgrades":[],"pingInterval":25000,"pingTimeout":20000,...}
 *      1  close    either side: the session is over
 *      2  ping     server -> client every pingInterval ms ("are you there?")
 *      3  pong     client -> server, the answer to a ping
 *      4  message  either side: the rest of the frame is a socket.io packet (layer 2)
 *      5  upgrade, 6 noop: only used when switching from long-polling; not needed here
 *
 *    Heartbeat: if the client hears no ping for pingInterval + pingTimeout ms, the connection
 *    is dead (a laptop went to sleep, a proxy dropped it...) even if the WebSocket looks open.
 *
 * 2. socket.io (protocol version 5) rides inside Engine.IO "message" packets. A packet is
 *
 *      <type>[<namespace>,][<ack id>][<JSON data>]
 *
 *      0  CONNECT        client -> server "40/dashboard,"  (join the namespace)
 *                        or "40/dashboard,{"apiKey":"..."}"  (with an auth payload)
 *                        server -> client "40/dashboard,{"sid":"..."}"  (you are in)
 *      1  DISCONNECT     either side: leave the namespace
 *      2  EVENT          "42/dashboard,["snapshot",{...}]": an event name and its arguments
 *                        "42/dashboard,7["ping",1]": the same, asking for an answer with id 7
 *      3  ACK            "43/dashboard,7[{"ok":true}]": the answer to the event with id 7
 *      4  CONNECT_ERROR  "44/dashboard,{"message":"..."}": the server refused the CONNECT
 *      5, 6              BINARY_EVENT, BINARY_ACK: events carrying binary data (not supported)
 *
 *    The namespace part is left out for the main namespace "/", so "42["hi"]" is an event
 *    on "/". The leading "4" in all the examples above is the Engine.IO "message" type.
 * ---------------------------------------------------------------------------------------
 */
(function (global) {
  'use strict';

  // Engine.IO packet types (first character of every WebSocket frame).
  const EIO = { OPEN: '0', CLOSE: '1', PING: '2', PONG: '3', MESSAGE: '4', UPGRADE: '5', NOOP: '6' };

  // socket.io packet types (first character after the Engine.IO "4").
  const SIO = { CONNECT: 0, DISCONNECT: 1, EVENT: 2, ACK: 3, CONNECT_ERROR: 4, BINARY_EVENT: 5, BINARY_ACK: 6 };

  // Event names this library emits itself; a server event with one of these names would be
  // confusing, so socket.io forbids them (and so does queuehub).
  const LOCAL_EVENTS = ['connect', 'connect_error', 'disconnect', 'reconnect_attempt'];

  /**
   * Opens a socket.io connection to `namespace` (e.g. '/dashboard') and keeps it open:
   * after a drop it reconnects with exponential backoff (0.5 s, 1 s, 2 s, ... at most 10 s).
   *
   * options.auth         a function returning the auth payload for the CONNECT packet (an
   *                      object, or null for none); called at every (re)connect, so a new
   *                      credential takes effect on the next attempt
   * options.url          server base URL (default: the page's own origin)
   * options.path         socket.io path (default '/socket.io/')
   * options.minDelay     first reconnect delay in ms (default 500)
   * options.maxDelay     longest reconnect delay in ms (default 10000)
   */
  function liteSocket(namespace, options) {
    options = options || {};
    namespace = namespace || '/';
    if (namespace[0] !== '/') namespace = '/' + namespace;

    const minDelay = options.minDelay || 500;
    const maxDelay = options.maxDelay || 10000;

    const handlers = new Map(); // event name -> [functions]
    const pendingAcks = new Map(); // ack id -> callback, for emit(..., callback)
    let nextAckId = 0;
    let sendBuffer = []; // events emitted while offline, sent after the next connect

    let ws = null; // the current WebSocket
    let heartbeat = null; // timer that fires if the server goes quiet
    let reconnectTimer = null;
    let attempts = 0; // failed attempts since the last successful connect
    let closedByUser = false;

    const socket = {
      id: null, // the namespace session id the server gave us
      connected: false,
      on: on,
      off: off,
      emit: emit,
      close: close,
      connect: connect,
    };

    // ---- the WebSocket URL --------------------------------------------------------------

    function engineUrl() {
      const base = new URL(options.url || global.location.href);
      const scheme = base.protocol === 'https:' ? 'wss:' : 'ws:';
      const path = options.path || '/socket.io/';
      return scheme + '//' + base.host + path + '?EIO=4&transport=websocket';
    }

    // ---- the namespace part of a socket.io packet ----------------------------------------

    // "40/dashboard," for our namespace, "40" for the main one.
    function nsPrefix() {
      return namespace === '/' ? '' : namespace + ',';
    }

    // ---- connecting ---------------------------------------------------------------------

    function open() {
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
      let socketWs;
      try {
        socketWs = new WebSocket(engineUrl());
      } catch (err) {
        fire('connect_error', err);
        scheduleReconnect();
        return;
      }
      ws = socketWs;

      ws.onmessage = function (frame) {
        if (ws !== socketWs) return; // a frame from an old, abandoned WebSocket
        if (typeof frame.data !== 'string') return; // binary frames: not supported here
        try {
          onEnginePacket(frame.data);
        } catch (err) {
          console.warn('socketio-lite: bad frame', frame.data, err);
        }
      };

      ws.onclose = function (event) {
        if (ws !== socketWs) return;
        lost('transport close' + (event.code ? ' (' + event.code + ')' : ''));
      };

      // An error is always followed by a close event, which does the work.
      ws.onerror = function () {};
    }

    // One Engine.IO packet arrived.
    function onEnginePacket(data) {
      const type = data[0];
      const rest = data.slice(1);

      if (type === EIO.OPEN) {
        // The handshake: remember the heartbeat timing, then join our namespace.
        const handshake = JSON.parse(rest);
        socket.pingWindow = handshake.pingInterval + handshake.pingTimeout;
        resetHeartbeat();
        const auth = options.auth ? options.auth() : null;
        send(SIO.CONNECT, auth ? JSON.stringify(auth) : ''); // "40/dashboard," + auth
      } else if (type === EIO.PING) {
        // The server checks we are alive: answer at once. Hearing from it also proves the
        // server is alive, so the heartbeat timer starts again.
        resetHeartbeat();
        ws.send(EIO.PONG);
      } else if (type === EIO.MESSAGE) {
        onSocketIoPacket(rest);
      } else if (type === EIO.CLOSE) {
        lost('server closed the session');
      }
      // UPGRADE and NOOP only matter for long-polling; ignore them.
    }

    // If no ping arrives within pingInterval + pingTimeout, the connection is dead.
    function resetHeartbeat() {
      clearTimeout(heartbeat);
      heartbeat = setTimeout(function () {
        lost('ping timeout');
      }, socket.pingWindow || 45000);
    }

    // ---- reading socket.io packets ------------------------------------------------------

    // Splits "2/dashboard,7[...]" into {type: 2, nsp: "/dashboard", id: 7, data: [...]}.
    function decode(text) {
      const packet = { type: Number(text[0]), nsp: '/', id: null, data: undefined };
      let i = 1;
      if (packet.type === SIO.BINARY_EVENT || packet.type === SIO.BINARY_ACK) {
        return packet; // "51-/dashboard,...": needs binary frames, which we do not handle
      }
      if (text[i] === '/') {
        const comma = text.indexOf(',', i);
        packet.nsp = comma === -1 ? text.slice(i) : text.slice(i, comma);
        i = comma === -1 ? text.length : comma + 1;
      }
      let digits = '';
      while (i < text.length && text[i] >= '0' && text[i] <= '9') digits += text[i++];
      if (digits) packet.id = Number(digits);
      if (i < text.length) packet.data = JSON.parse(text.slice(i));
      return packet;
    }

    function onSocketIoPacket(text) {
      let packet;
      try {
        packet = decode(text);
      } catch (err) {
        console.warn('socketio-lite: could not parse packet', text, err);
        return;
      }
      if (packet.nsp !== namespace) return; // for another namespace on the same connection

      switch (packet.type) {
        case SIO.CONNECT: // we are in the namespace: {"sid": "..."}
          socket.id = packet.data && packet.data.sid;
          socket.connected = true;
          attempts = 0;
          fire('connect');
          flushBuffer();
          break;
        case SIO.CONNECT_ERROR: // the server refused us: {"message": "..."}
          fire('connect_error', new Error((packet.data && packet.data.message) || 'connect refused'));
          dropTransport();
          scheduleReconnect();
          break;
        case SIO.EVENT: {
          // data is ["event name", arg1, arg2, ...]
          const args = Array.isArray(packet.data) ? packet.data : [];
          const name = args.shift();
          if (packet.id !== null) args.push(ackSender(packet.id)); // the server wants an answer
          if (LOCAL_EVENTS.indexOf(name) === -1) fire.apply(null, [name].concat(args));
          break;
        }
        case SIO.ACK: {
          // The answer to one of our emits: data is [arg1, ...]
          const callback = pendingAcks.get(packet.id);
          pendingAcks.delete(packet.id);
          if (callback) callback.apply(null, packet.data || []);
          break;
        }
        case SIO.DISCONNECT: // the server threw us out of the namespace
          lost('io server disconnect');
          break;
        default:
          console.warn('socketio-lite: unsupported packet type', packet.type);
      }
    }

    // A function that, when the app calls it, sends ACK <id> back to the server.
    function ackSender(id) {
      let sent = false;
      return function () {
        if (sent) return;
        sent = true;
        send(SIO.ACK, String(id) + JSON.stringify(Array.prototype.slice.call(arguments)));
      };
    }

    // ---- writing socket.io packets ------------------------------------------------------

    // "4" (Engine.IO message) + type + "/namespace," + body.
    function send(type, body) {
      if (ws && ws.readyState === WebSocket.OPEN) {
        ws.send(EIO.MESSAGE + type + nsPrefix() + body);
      }
    }

    /** emit('event', arg1, arg2, ..., [callback]): send an event; a callback asks for an ack. */
    function emit(name) {
      const args = Array.prototype.slice.call(arguments, 1);
      let id = '';
      if (typeof args[args.length - 1] === 'function') {
        id = String(nextAckId++);
        pendingAcks.set(Number(id), args.pop());
      }
      const body = id + JSON.stringify([name].concat(args));
      if (socket.connected) send(SIO.EVENT, body);
      else sendBuffer.push(body); // like socket.io: sent once (re)connected
      return socket;
    }

    function flushBuffer() {
      const waiting = sendBuffer;
      sendBuffer = [];
      waiting.forEach(function (body) {
        send(SIO.EVENT, body);
      });
    }

    // ---- losing the connection, and getting it back -------------------------------------

    function dropTransport() {
      clearTimeout(heartbeat);
      const old = ws;
      ws = null; // so its late events are ignored
      if (old) {
        try {
          old.close();
        } catch (err) {
          /* already closed */
        }
      }
    }

    function lost(reason) {
      const wasConnected = socket.connected;
      socket.connected = false;
      socket.id = null;
      dropTransport();
      // Acks of this connection will never come: the server forgot them.
      pendingAcks.clear();
      if (wasConnected) fire('disconnect', reason);
      else if (!closedByUser) fire('connect_error', new Error(reason));
      scheduleReconnect();
    }

    // Exponential backoff with jitter, so a whole classroom does not reconnect in lockstep
    // after the server restarts.
    function scheduleReconnect() {
      if (closedByUser || reconnectTimer) return;
      const base = Math.min(maxDelay, minDelay * Math.pow(2, attempts));
      const delay = Math.round(base * (0.75 + Math.random() * 0.5));
      attempts += 1;
      fire('reconnect_attempt', { attempt: attempts, delay: delay });
      reconnectTimer = setTimeout(function () {
        reconnectTimer = null;
        open();
      }, delay);
    }

    /** Leaves the namespace and stops reconnecting. */
    function close() {
      closedByUser = true;
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
      if (socket.connected) send(SIO.DISCONNECT, ''); // "41/dashboard,"
      const wasConnected = socket.connected;
      socket.connected = false;
      dropTransport();
      if (wasConnected) fire('disconnect', 'io client disconnect');
      return socket;
    }

    /** Starts connecting again after close(), with the backoff reset. */
    function connect() {
      if (ws || socket.connected) return socket;
      closedByUser = false;
      attempts = 0;
      open();
      return socket;
    }

    // ---- event handlers -----------------------------------------------------------------

    function on(name, fn) {
      if (!handlers.has(name)) handlers.set(name, []);
      handlers.get(name).push(fn);
      return socket;
    }

    function off(name, fn) {
      const list = handlers.get(name) || [];
      const at = list.indexOf(fn);
      if (at !== -1) list.splice(at, 1);
      return socket;
    }

    function fire(name) {
      const args = Array.prototype.slice.call(arguments, 1);
      (handlers.get(name) || []).slice().forEach(function (fn) {
        try {
          fn.apply(socket, args);
        } catch (err) {
          console.error('socketio-lite: handler for "' + name + '" failed', err);
        }
      });
    }

    // Start after the caller had a chance to register its handlers (the same tick).
    setTimeout(open, 0);
    return socket;
  }

  global.liteSocket = liteSocket;
})(typeof window !== 'undefined' ? window : globalThis);
