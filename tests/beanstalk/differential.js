#!/usr/bin/env node
// Differential test of queuehub's beanstalk door with Node clients (jackd and fivebeans from
// npm): the same scenarios against a fresh Debian beanstalkd and a fresh queuehub, every result
// compared (job ids by their order of appearance, errors by their reply word). The Python
// twin, differential.py, covers more commands and bad input; this one checks two more client
// libraries' framing and a worker pool.
//
//   npm ci && node differential.js --queuehub ../../target/debug/queuehub [--beanstalkd PATH] [--show]
'use strict'

const { spawn, execFileSync } = require('child_process')
const fs = require('fs')
const net = require('net')
const os = require('os')
const path = require('path')
const FiveBeans = require('fivebeans').client
const Jackd = require('jackd')

function arg (name, fallback) {
  const at = process.argv.indexOf(name)
  return at >= 0 ? process.argv[at + 1] : fallback
}

function freePort () {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

async function waitPort (port) {
  for (let n = 0; n < 300; n++) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.end(); resolve(true) })
      socket.on('error', () => resolve(false))
    })
    if (ok) return
    await sleep(50)
  }
  throw new Error(`nothing listens on ${port}`)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

class Transcript {
  constructor () { this.steps = []; this.ids = new Map() }
  job (id) {
    if (!this.ids.has(String(id))) this.ids.set(String(id), `#${this.ids.size + 1}`)
    return this.ids.get(String(id))
  }

  note (step, value) { this.steps.push([step, value]) }
  // Runs one client call; records what it returned or the reply word it failed with.
  async call (step, fn, shape = (v) => v) {
    try {
      const value = await fn()
      this.note(step, shape(value))
      return value
    } catch (err) {
      this.note(step, `error ${String(err.message).split(/\s/)[0]}`)
      return null
    }
  }
}

const jobShape = (t) => (job) => job && `job ${t.job(job.id)} ${Buffer.from(job.payload).toString()}`
const idShape = (t) => (id) => `inserted ${t.job(id)}`
const stateOf = (yaml) => (/state: (\w+)/.exec(yaml) || [])[1]

async function client (port) {
  const c = new Jackd()
  await c.connect({ host: '127.0.0.1', port })
  return c
}

// A producer, a worker: priorities, delays, release, bury and kick, errors.
async function workerLifecycle (port, t) {
  const producer = await client(port)
  await t.call('use jobs', () => producer.use('jobs'))
  for (const [pri, body] of [[10, 'ten'], [1, 'one'], [5, 'five']]) {
    await t.call(`put pri ${pri}`, () => producer.put(body, { priority: pri, delay: 0, ttr: 60 }), idShape(t))
  }
  const worker = await client(port)
  await t.call('watch jobs', () => worker.watch('jobs'))
  await t.call('ignore default', () => worker.ignore('default'))
  await t.call('ignore jobs, the last one', () => worker.ignore('jobs'))
  const first = await t.call('reserve', () => worker.reserve(), jobShape(t))
  await t.call('release it with a delay of 1 s', () => worker.release(first.id, { priority: 1, delay: 1 }))
  await t.call('stats-job: delayed', () => worker.statsJob(first.id), stateOf)
  const second = await t.call('reserve: the next by priority', () => worker.reserve(), jobShape(t))
  await t.call('bury it', () => worker.bury(second.id, 0))
  await t.call('peek-buried (in the used tube)', async () => { await worker.use('jobs'); return worker.peekBuried() }, jobShape(t))
  await t.call('kick-job it', () => worker.kickJob(second.id))
  const third = await t.call('reserve', () => worker.reserve(), jobShape(t))
  await t.call('delete', () => worker.delete(third.id))
  await t.call('delete again', () => worker.delete(third.id))
  const fourth = await t.call('reserve-with-timeout 5: the released job once due', () => worker.reserveWithTimeout(5), jobShape(t))
  await t.call('touch', () => worker.touch(fourth.id))
  await t.call('delete', () => worker.delete(fourth.id))
  const fifth = await t.call('reserve', () => worker.reserve(), jobShape(t))
  await t.call('delete', () => worker.delete(fifth.id))
  await t.call('reserve-with-timeout 0 on an empty tube', () => worker.reserveWithTimeout(0), jobShape(t))
  await t.call('peek-ready on an empty tube', () => worker.peekReady(), jobShape(t))
  await t.call('a Buffer body (jackd sends it as JSON)', () => producer.put(Buffer.from([0xff, 0, 0x0d, 0x0a, 0xfe]), { ttr: 60 }), idShape(t))
  await t.call('comes back byte for byte', async () => {
    const job = await worker.reserve()
    await worker.delete(job.id)
    return Buffer.from(job.payload).toString('hex')
  })
  await producer.disconnect()
  await worker.disconnect()
}

// Three workers share a tube: every job is done once.
async function workerPool (port, t) {
  const producer = await client(port)
  await producer.use('pool')
  const bodies = Array.from({ length: 30 }, (_, n) => `job-${String(n).padStart(2, '0')}`)
  for (const body of bodies) await producer.put(body, { ttr: 60 })
  const done = []
  const work = async () => {
    const worker = await client(port)
    await worker.watch('pool')
    await worker.ignore('default')
    for (;;) {
      let job
      try { job = await worker.reserveWithTimeout(1) } catch (err) { break }
      done.push(Buffer.from(job.payload).toString())
      await worker.delete(job.id)
    }
    await worker.disconnect()
  }
  await Promise.all([work(), work(), work()])
  t.note('every job done once', JSON.stringify(done.sort()) === JSON.stringify(bodies))
  t.note('jobs done', done.length)
  await producer.disconnect()
}

// fivebeans, the callback client: its commands, its YAML parsing, its error words.
async function fivebeansSession (port, t) {
  const c = new FiveBeans('127.0.0.1', port)
  await new Promise((resolve, reject) => { c.on('connect', resolve).on('error', reject).connect() })
  // Calls `command` with `args`; resolves with the callback's values after the error.
  const send = (command, ...args) => new Promise((resolve, reject) => {
    c[command](...args, (err, ...values) => err ? reject(new Error(String(err))) : resolve(values))
  })
  const call = (step, command, ...args) => t.call(step, () => send(command, ...args))
  const job = ([id, body]) => [t.job(id), String(body)]
  // A stats reply as fivebeans parses it, on fields whose values both servers share.
  const fields = (...names) => ([yaml]) => names.map((name) => yaml[name])
  // Reserves (or peeks) with `command`; records the job; returns its real id.
  const take = async (step, command, ...args) => {
    const got = await t.call(step, () => send(command, ...args))
    t.steps[t.steps.length - 1][1] = got && job(got)
    return got && got[0]
  }
  await call('use', 'use', 'fg_websocket')
  for (const [pri, delay, body] of [[10, 0, 'render the captcha'], [1, 0, 'two'], [5, 1, 'later']]) {
    await t.call(`put ${body}`, () => send('put', pri, delay, 60, body), ([id]) => t.job(id))
  }
  await call('watch', 'watch', 'fg_websocket')
  await call('ignore default', 'ignore', 'default')
  await call('list-tubes-watched', 'list_tubes_watched')
  await call('list-tube-used', 'list_tube_used')
  await take('peek-ready: the lower priority', 'peek_ready')
  const id = await take('reserve', 'reserve')
  await t.call('stats-job', () => send('stats_job', id), fields('state', 'pri', 'tube', 'reserves', 'ttr'))
  await call('touch', 'touch', id)
  await call('release with priority 3', 'release', id, 3, 0)
  await take('reserve it again', 'reserve_with_timeout', 2)
  await call('bury with priority 7', 'bury', id, 7)
  await take('peek-buried', 'peek_buried')
  await call('kick-job', 'kick_job', id)
  await call('kick: the delayed job', 'kick', 10)
  await t.call('stats-tube', () => send('stats_tube', 'fg_websocket'),
    fields('name', 'current-jobs-ready', 'current-jobs-urgent', 'total-jobs', 'current-watching'))
  for (const which of ['first', 'second', 'third']) {
    const got = await take(`reserve the ${which}`, 'reserve_with_timeout', 3)
    if (got) await call(`delete the ${which}`, 'destroy', got)
  }
  await call('delete a deleted job', 'destroy', id)
  await call('reserve-with-timeout 0 on an empty tube', 'reserve_with_timeout', 0)
  await call('peek an unknown job', 'peek', 424242)
  await call('pause-tube', 'pause_tube', 'fg_websocket', 1)
  await t.call('stats', () => send('stats'),
    fields('total-jobs', 'cmd-put', 'cmd-delete', 'cmd-reserve-with-timeout', 'current-tubes', 'hostname', 'platform'))
  c.end()
}

const SCENARIOS = [workerLifecycle, workerPool, fivebeansSession]

async function run (argv, port, scenario) {
  const server = spawn(argv[0], argv.slice(1), { stdio: 'ignore' })
  const t = new Transcript()
  // A client left waiting for a reply that never comes is a difference too, not a hang.
  let timer
  const limit = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error('the scenario did not end within 60 s')), 60000)
  })
  try {
    await waitPort(port)
    await Promise.race([scenario(port, t), limit])
  } catch (err) {
    t.note('scenario raised', String(err && err.message))
  } finally {
    clearTimeout(timer)
    server.kill('SIGTERM')
    await new Promise((resolve) => server.once('exit', resolve))
  }
  return t.steps
}

async function main () {
  const queuehub = path.resolve(arg('--queuehub'))
  const beanstalkd = arg('--beanstalkd', execFileSync('sh', ['-c', 'command -v beanstalkd']).toString().trim())
  let failures = 0
  for (const scenario of SCENARIOS) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qh-diff-'))
    const [bport, qport, hport] = [await freePort(), await freePort(), await freePort()]
    const want = await run([beanstalkd, '-l', '127.0.0.1', '-p', String(bport)], bport, scenario)
    const got = await run([queuehub, '--listen', `127.0.0.1:${hport}`, '--beanstalk-listen', `127.0.0.1:${qport}`, '--data-dir', path.join(tmp, 'data')], qport, scenario)
    fs.rmSync(tmp, { recursive: true, force: true })
    const same = JSON.stringify(want) === JSON.stringify(got)
    console.log(`${same ? 'ok  ' : 'DIFF'} ${scenario.name} (${want.length} results)`)
    if (!same) failures++
    if (!same || process.argv.includes('--show')) {
      for (let n = 0; n < Math.max(want.length, got.length); n++) {
        const [w, g] = [want[n] || ['-', '-'], got[n] || ['-', '-']]
        const mark = JSON.stringify(w) === JSON.stringify(g) ? '  ' : '!!'
        console.log(`  ${mark} ${w[0]}\n       beanstalkd: ${JSON.stringify(w[1])}\n       queuehub:   ${JSON.stringify(g[1])}`)
      }
    }
  }
  if (failures) {
    console.log(`${failures} scenario(s) differ`)
    process.exit(1)
  }
  console.log('every result matched')
}

main().catch((err) => { console.error(err); process.exit(1) })
