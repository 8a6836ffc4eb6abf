// A player (the browser-like client): it wants building scores. A cached score is answered at
// once; on a miss it publishes a `build` job to the background queue and waits for the result,
// which a worker publishes to the player's OWN queue, so it is pushed to the player live (and
// would wait in its inbox if the player were offline).
//
//   node player.js <name> <level> [level...]     (QUEUEHUB_URL, CACHE_DIR)
'use strict';

const { io } = require('socket.io-client');
const cache = require('./cache');
const { QUEUE } = require('./worker');

function startPlayer(name, { url, cacheDir }) {
  const store = cache.open(cacheDir);
  const clientId = `player-${name}`;
  const socket = io(url, { auth: { clientId } });
  const waiting = new Map(); // key -> resolve
  const stats = { hits: 0, misses: 0 };

  socket.on('built', async (message) => {
    const { key } = message.payload;
    await socket.emitWithAck('received', { clientId, id: message.id });
    const resolve = waiting.get(key);
    if (resolve) {
      waiting.delete(key);
      resolve(message.payload);
    }
  });

  const ready = new Promise((resolve) => {
    socket.on('connect', async () => {
      await socket.emitWithAck('subscribe', { clientId, queue: clientId });
      resolve();
    });
  });

  async function ask(key) {
    await ready;
    const cached = store.get(key);
    if (cached) {
      stats.hits += 1;
      return { ...cached, cached: true };
    }
    stats.misses += 1;
    const result = new Promise((resolve) => waiting.set(key, resolve));
    const reply = await socket.emitWithAck('publish', {
      queue: QUEUE,
      event: 'build',
      payload: { key, replyTo: clientId },
    });
    if (!reply.ok) throw new Error(`publish refused: ${reply.error.code}`);
    return { ...(await result), cached: false };
  }

  return { ask, stats, socket, clientId };
}

module.exports = { startPlayer };

if (require.main === module) {
  const [name = 'ada', ...levels] = process.argv.slice(2);
  const player = startPlayer(name, {
    url: process.env.QUEUEHUB_URL || 'http://127.0.0.1:3000',
    cacheDir: process.env.CACHE_DIR || require('path').join(require('os').tmpdir(), 'queuehub-cache'),
  });
  (async () => {
    for (const level of levels.length ? levels : ['1', '2']) {
      const result = await player.ask(level);
      console.log(`level ${level}: score ${result.score} (${result.cached ? 'cache hit' : `built by ${result.by}`})`);
    }
    player.socket.close();
  })();
}
