// Side-by-side cost of the idempotency layer on one machine, in one run.
//
// Each scenario runs the same Fastify handler (POST /orders -> 201 {"id": uuid}); the server is
// a child process pinned to CPU 0 where taskset exists, autocannon runs here. Rounds interleave
// the scenarios; the table shows medians and ratios to the bare handler.
//
//   node bench/run.mjs [--rounds 3] [--seconds 5] [--connections 50]
import { execFileSync, fork } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '50' },
  },
})
const rounds = Number(values.rounds)
const seconds = Number(values.seconds)
const connections = Number(values.connections)
const body = '{"item":"widget","qty":1}'
const replayKey = randomUUID()

const scenarios = {
  bare: { server: 'bare', method: 'POST', key: () => undefined },
  'unkeyed (plugin on)': { server: 'sqlite', method: 'POST', key: () => undefined },
  'keyed, first request': { server: 'sqlite', method: 'POST', key: () => randomUUID() },
  'keyed, replay': { server: 'sqlite', method: 'POST', key: () => replayKey, prime: true },
  'plain read (GET)': { server: 'sqlite', method: 'GET', key: () => undefined },
}

let pinned = false
try {
  execFileSync('taskset', ['-c', '0', 'true'])
  pinned = true
} catch {
  // No taskset: the server and the load generator share both cores.
}

function startServer(kind) {
  const child = fork(new URL('./server.mjs', import.meta.url), [kind], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    ...(pinned ? { execPath: 'taskset', execArgv: ['-c', '0', process.execPath] } : {}),
  })
  return new Promise((resolve) => {
    child.once('message', (message) => resolve({ child, address: message.address }))
  })
}

const ask = (child, message) =>
  new Promise((resolve) => {
    child.once('message', resolve)
    child.send(message)
  })

function load(address, scenario, durationSeconds) {
  const path = scenario.method === 'GET' ? '/orders/1' : '/orders'
  return autocannon({
    url: address,
    connections,
    duration: durationSeconds,
    requests: [
      {
        method: scenario.method,
        path,
        setupRequest: (request) => {
          const key = scenario.key()
          const headers = { 'content-type': 'application/json' }
          if (key !== undefined) headers['idempotency-key'] = key
          return scenario.method === 'GET'
            ? { ...request, headers: {} }
            : { ...request, headers, body }
        },
      },
    ],
  })
}

const results = Object.fromEntries(Object.keys(scenarios).map((name) => [name, []]))
for (let round = 0; round < rounds; round++) {
  for (const [name, scenario] of Object.entries(scenarios)) {
    const { child, address } = await startServer(scenario.server)
    if (scenario.prime) {
      await fetch(`${address}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': replayKey },
        body,
      })
    }
    await load(address, scenario, 2)
    await ask(child, 'reset')
    const result = await load(address, scenario, seconds)
    const { cpuMicros } = await ask(child, 'cpu')
    child.kill()
    const statuses = result['2xx']
    results[name].push({
      rps: result.requests.average,
      cpuPerRequest: cpuMicros / Math.max(1, result.requests.total),
      non2xx: result.non2xx,
      ok: statuses,
    })
    process.stderr.write(`round ${round + 1} ${name}: ${result.requests.average} req/s\n`)
  }
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}
const bareRps = median(results.bare.map((r) => r.rps))
const bareCpu = median(results.bare.map((r) => r.cpuPerRequest))
const replayRps = median(results['keyed, replay'].map((r) => r.rps))
const readRps = median(results['plain read (GET)'].map((r) => r.rps))

console.log(
  `\nNode ${process.version}, ${connections} connections, ${seconds} s x ${rounds} rounds, server ${pinned ? 'pinned to CPU 0' : 'unpinned'}\n`,
)
console.log(
  '| scenario | req/s (median) | / bare | server CPU us/req | added CPU us/req | non-2xx |',
)
console.log('| --- | ---: | ---: | ---: | ---: | ---: |')
for (const [name, runs] of Object.entries(results)) {
  const rps = median(runs.map((r) => r.rps))
  const cpu = median(runs.map((r) => r.cpuPerRequest))
  const non2xx = runs.reduce((sum, r) => sum + r.non2xx, 0)
  console.log(
    `| ${name} | ${Math.round(rps)} | ${(rps / bareRps).toFixed(2)} | ${cpu.toFixed(1)} | ${(cpu - bareCpu).toFixed(1)} | ${non2xx} |`,
  )
}
console.log(`\nreplay / plain read: ${(replayRps / readRps).toFixed(2)}`)
