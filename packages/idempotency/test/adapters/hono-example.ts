/**
 * The Hono example of the README, verbatim between the region markers (hono-example.test.ts
 * checks that the README still shows it): an app whose authentication middleware sets the
 * account, and one idempotent route.
 */
import type { SqliteStore } from '@ticksupply/idempotency/stores/sqlite'

// #region readme
import { Hono } from 'hono'
import type { Context } from 'hono'
import { createIdempotencyEngine } from '@ticksupply/idempotency'
import { withIdempotency } from '@ticksupply/idempotency/fetch'

type Env = { Variables: { account: string } }

export function createOrderApp(store: SqliteStore, insertOrder: (body: unknown) => object) {
  const engine = createIdempotencyEngine({ store })
  const app = new Hono<Env>()

  // Authentication first: keys belong to the account.
  app.use(async (c, next) => {
    const account = c.req.header('x-account')
    if (account === undefined) return c.json({ error: { code: 'unauthenticated' } }, 401)
    c.set('account', account)
    return next()
  })

  // The wrapped handler gets the Request and Hono's context; it runs once per key.
  const createOrder = withIdempotency(
    async (request: Request, c: Context<Env>) => c.json(insertOrder(await request.json()), 201),
    { engine, scope: (_request, c) => c.get('account') },
  )
  app.post('/orders', (c) => createOrder(c.req.raw, c))
  return app
}
// #endregion readme
