/**
 * The end of a shutdown, over real HTTP on loopback: Node's `close()` closes only the
 * connections idle when it is called, so a keep-alive connection whose answer was still being
 * written when the shutdown began would hold the server open for as long as its client keeps
 * it. `closeConnections` closes such connections as they go idle, and cuts what is still open
 * when the grace period is over.
 */
import { Agent, createServer, get } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { closeConnections } from '../src/http/shutdown.js'

interface Started {
  server: Server
  port: number
  /** The answers whose handlers have written their head and wait to be ended. */
  waiting: ServerResponse[]
}

const agents: Agent[] = []
afterEach(() => {
  for (const agent of agents.splice(0)) agent.destroy()
})

async function startHalfAnsweringServer(): Promise<Started> {
  const waiting: ServerResponse[] = []
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/plain' })
    response.write('first part, ')
    waiting.push(response)
  })
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening))
  return { server, port: (server.address() as AddressInfo).port, waiting }
}

/** A GET on a keep-alive agent: the client keeps its connection for as long as it is open. */
function keptAliveGet(port: number): {
  body: Promise<string>
  socketClosed: Promise<void>
  started: Promise<void>
} {
  const agent = new Agent({ keepAlive: true })
  agents.push(agent)
  let started!: () => void
  let socketClosed!: () => void
  const startedPromise = new Promise<void>((resolve) => (started = resolve))
  const closedPromise = new Promise<void>((resolve) => (socketClosed = resolve))
  const body = new Promise<string>((resolve, reject) => {
    const request = get({ host: '127.0.0.1', port, agent }, (response: IncomingMessage) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        text += chunk
        started()
      })
      response.on('end', () => {
        resolve(text)
      })
      response.on('error', reject)
      response.on('aborted', () => {
        reject(new Error('answer cut'))
      })
    })
    request.on('socket', (socket) => socket.once('close', socketClosed))
    request.on('error', reject)
  })
  return { body, socketClosed: closedPromise, started: startedPromise }
}

function closeOf(server: Server): Promise<void> {
  return new Promise((closed) => {
    server.close(() => {
      closed()
    })
  })
}

describe('closing the connections at the end of a shutdown', () => {
  it('closes a kept-alive connection that goes idle after the close began, and the close ends', async () => {
    const { server, port, waiting } = await startHalfAnsweringServer()
    const client = keptAliveGet(port)
    await client.started
    const closed = closeOf(server)
    // The answer ends after close() has closed the connections idle at the time.
    waiting[0]!.end('last part')
    expect(await client.body).toBe('first part, last part')
    // Far longer than the test's own timeout: only closing the idle connection ends the close.
    await closeConnections(server, closed, 10 * 60_000)
    await client.socketClosed
    expect(server.listening).toBe(false)
  })

  it('cuts a connection whose answer is still unfinished when the time is up', async () => {
    const { server, port } = await startHalfAnsweringServer()
    const client = keptAliveGet(port)
    await client.started
    const closed = closeOf(server)
    await closeConnections(server, closed, 200)
    await expect(client.body).rejects.toThrow()
    await client.socketClosed
    expect(server.listening).toBe(false)
  })
})
