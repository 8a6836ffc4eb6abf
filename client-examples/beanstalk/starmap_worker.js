#!/usr/bin/env node
// A background worker in Node (jackd from npm), unchanged from what runs against beanstalkd:
// the same job as starmap_worker.py. It watches `bg_starmap`, puts each result on
// `fg_websocket` and deletes the job.
//
//   node starmap_worker.js
//
// Environment: QUEUEHUB_BEANSTALK (default 127.0.0.1:11300), WORKER (a name for the logs).
'use strict'

const Jackd = require('jackd')

const [host, port] = (process.env.QUEUEHUB_BEANSTALK || '127.0.0.1:11300').split(':')
const worker = process.env.WORKER || 'node'

function render (sector) {
  return [0, 1, 2].map((n) => (sector * 7 + n * 13) % 100)
}

async function main () {
  const client = new Jackd()
  await client.connect({ host, port: Number(port) })
  await client.watch('bg_starmap')
  await client.ignore('default')
  await client.use('fg_websocket')
  console.log(`${worker}: waiting for jobs on bg_starmap`)
  for (;;) {
    const { id, payload } = await client.reserve()
    const request = JSON.parse(payload.toString())
    const result = {
      player: request.player,
      sector: request.sector,
      stars: render(request.sector),
      by: worker
    }
    await client.put(JSON.stringify(result))
    await client.delete(id)
    console.log(`${worker}: job ${id} done: sector ${request.sector}`)
  }
}

main().catch((err) => {
  console.error(`${worker}: ${err.stack || err}`)
  process.exit(1)
})
