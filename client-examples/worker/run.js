// The whole story in one command, against a running queuehub (QUEUEHUB_URL, default
// http://127.0.0.1:3000): two workers share the background queue, three players ask for
// overlapping building levels, and the checks below say what happened.
//
//   npm ci && node run.js
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { startWorker } = require('./worker');
const { startPlayer } = require('./player');

const url = process.env.QUEUEHUB_URL || 'http://127.0.0.1:3000';
const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'queuehub-worker-example-'));
const TIMEOUT_MS = 20_000;

let passed = 0;
let failed = 0;
function check(ok, what) {
  if (ok) passed += 1;
  else failed += 1;
  console.log(`${ok ? 'ok  ' : 'FAIL'}  ${what}`);
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function main() {
  const workers = [
    startWorker('worker-1', { url, cacheDir, log: console.log }),
    startWorker('worker-2', { url, cacheDir, log: console.log }),
  ];
  // Give both workers time to join before the first job.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const [ada, bob, cy] = ['ada', 'bob', 'cy'].map((name) => startPlayer(`${name}-${process.pid}`, { url, cacheDir }));

  // Ada asks for three levels at once: three jobs, shared by the two workers.
  const first = await withTimeout(Promise.all(['1', '2', '3'].map((k) => ada.ask(k))), 'ada');
  check(first.every((r) => !r.cached && typeof r.score === 'number'), 'ada: three misses, three results pushed back to her queue');
  // Bob and Cy ask later: what was built is cached.
  const second = await withTimeout(Promise.all(['2', '3', '4'].map((k) => bob.ask(k))), 'bob');
  check(second.filter((r) => r.cached).length === 2, 'bob: levels 2 and 3 are cache hits, level 4 is built');
  const third = await withTimeout(Promise.all(['1', '4', '5'].map((k) => cy.ask(k))), 'cy');
  check(third.filter((r) => r.cached).length === 2, 'cy: levels 1 and 4 are cache hits, level 5 is built');

  const built = workers.flatMap((w) => w.computed);
  check(built.length === 5 && new Set(built).size === 5, `each of the 5 levels was built exactly once (${built.join(', ')})`);
  check(workers.every((w) => w.computed.length > 0), `both workers took jobs (${workers.map((w) => `${w.name}: ${w.computed.length}`).join(', ')})`);
  check([ada, bob, cy].every((p) => p.stats.hits + p.stats.misses === 3), 'every player got all three answers');

  // Nothing is left behind: no job waits, no result waits in a player's inbox.
  const stats = await (await fetch(`${url}/v1/queues/bg_building`)).json();
  const pending = stats.subscribers.reduce((sum, s) => sum + s.pending, 0);
  check(pending === 0 && stats.waiting === 0, `the background queue is empty (pending ${pending}, waiting ${stats.waiting})`);

  for (const s of [...workers, ada, bob, cy]) s.socket.close();
}

main()
  .catch((err) => {
    failed += 1;
    console.log(`FAIL  ${err.message}`);
  })
  .finally(() => {
    fs.rmSync(cacheDir, { recursive: true, force: true });
    console.log(`worker example: ${passed} passed, ${failed} failed`);
    process.exit(failed === 0 ? 0 : 1);
  });
