// A background worker: one of the sockets of client `builders` on queue `bg_building`, in work
// mode. queuehub gives each job to ONE worker with room (prefetch 1: one job at a time), and
// gives it to another worker if this one does not ack within ackTimeoutMs; after maxDeliveries
// tries the job moves to `bg_building.dead`.
//
//   node worker.js [name]        (QUEUEHUB_URL, CACHE_DIR)
'use strict';

const { io } = require('socket.io-client');
const cache = require('./cache');

const QUEUE = 'bg_building';
const CLIENT = 'builders';

// The expensive part: the score of a building level, computed slowly on purpose.
async function computeScore(level) {
  await new Promise((resolve) => setTimeout(resolve, 300));
  let score = 0;
  for (let i = 1; i <= Number(level) * 1000; i += 1) score = (score + i * i) % 1_000_003;
  return score;
}

function startWorker(name, { url, cacheDir, log = console.log }) {
  const store = cache.open(cacheDir);
  const socket = io(url, { auth: { clientId: CLIENT } });
  const computed = [];

  socket.on('connect', async () => {
    const reply = await socket.emitWithAck('subscribe', {
      clientId: CLIENT,
      queue: QUEUE,
      mode: 'work',
      prefetch: 1,
      ackTimeoutMs: 10_000,
      maxDeliveries: 3,
    });
    if (!reply.ok) log(`${name}: subscribe refused: ${reply.error.code}`);
  });

  // Each job arrives as a `build` event with the envelope; `payload` is what the player asked.
  socket.on('build', async (job) => {
    const { key, replyTo } = job.payload;
    log(`${name}: building ${key} for ${replyTo} (attempt ${job.attempt})`);
    const score = await computeScore(key);
    store.put(key, { key, score, by: name });
    computed.push(key);
    // The push channel back: publish the result to the player's own queue...
    const published = await socket.emitWithAck('publish', {
      queue: replyTo,
      event: 'built',
      payload: { key, score, by: name },
    });
    if (!published.ok) log(`${name}: could not publish the result: ${published.error.code}`);
    // ...then ack the job, so it is not given to another worker.
    await socket.emitWithAck('received', { clientId: CLIENT, id: job.id });
  });

  return { socket, computed, name };
}

module.exports = { startWorker, QUEUE };

if (require.main === module) {
  const name = process.argv[2] || `worker-${process.pid}`;
  startWorker(name, {
    url: process.env.QUEUEHUB_URL || 'http://127.0.0.1:3000',
    cacheDir: process.env.CACHE_DIR || require('path').join(require('os').tmpdir(), 'queuehub-cache'),
  });
  console.log(`${name} waiting for jobs on ${QUEUE} (Ctrl-C to stop)`);
}
