import type { RedisCommander, RedisSubscriberClient } from './redis-connection.js'

export interface SettleChannelOptions {
  readonly commander: RedisCommander
  readonly channel: string
  /** Messages from this instance start with it: its own waiters were woken without them. */
  readonly origin: string
  /** The subscriber connection's client name (CLIENT SETNAME), for operators. */
  readonly name: string
  /** Wakes the waiters of one record (by record id). */
  readonly wake: (id: string) => void
  /** Wakes every waiter of this instance, so that each looks at its record again. */
  readonly wakeAll: () => void
  /** While the subscription is down, how often every waiter is woken to look again. */
  readonly fallbackPollMs: number
  /** Called each time the subscription drops, with why. */
  readonly onDown: (cause: unknown) => void
}

export interface SettleChannel {
  /** Whether completions of other instances reach this one's waiters at once right now. */
  readonly subscribed: boolean
  stop(): void
}

/**
 * Completions published by any instance, heard on a connection of their own (a subscribed
 * connection can run no other command). When that connection drops, nothing is heard until it
 * is back, so meanwhile every waiter is woken every `fallbackPollMs` to look at its record
 * itself; and once it is back, every waiter is woken once more, for what was published while
 * nobody listened. The client reconnects and subscribes again by itself.
 */
export async function startSettleChannel(options: SettleChannelOptions): Promise<SettleChannel> {
  const { channel, origin, wake, wakeAll } = options
  const subscriber: RedisSubscriberClient = await options.commander.subscriber(options.name)
  // Down from the moment the connection drops (the client reconnects at once, so a look on a
  // timer could miss a short drop, and the publications lost in it); up again on 'ready',
  // which node-redis emits once it has subscribed anew.
  let connected = false
  let subscribed = true
  let poll: ReturnType<typeof setInterval> | undefined
  const down = (cause: unknown) => {
    if (!connected || !subscribed) return
    subscribed = false
    options.onDown(cause)
    poll = setInterval(wakeAll, options.fallbackPollMs)
    poll.unref()
  }
  const up = () => {
    if (subscribed) return
    subscribed = true
    clearInterval(poll)
    poll = undefined
    wakeAll()
  }
  // Without a listener an 'error' event would throw: a dropped connection is expected here.
  subscriber.on('error', down)
  subscriber.on('reconnecting', () => {
    down(new Error('reconnecting'))
  })
  subscriber.on('end', () => {
    down(new Error('the connection ended'))
  })
  subscriber.on('ready', up)
  await subscriber.connect()
  await subscriber.subscribe(channel, (message) => {
    if (message.startsWith(origin)) return
    const space = message.indexOf(' ')
    if (space > 0) wake(message.slice(space + 1))
  })
  connected = true
  return {
    get subscribed() {
      return subscribed
    },
    stop() {
      connected = false
      clearInterval(poll)
      subscriber.destroy()
    },
  }
}
