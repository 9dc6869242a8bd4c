/**
 * The store contract (../store-contract.ts) on every store, from one table: each row opens a
 * store on its real backend with the manual clock the contract drives.
 */
import { expect } from 'vitest'
import type { ManualClock, StoreTransaction } from '@ticksupply/idempotency'
import type { StoreUnderTest } from '../store-contract.js'
import { runStoreContract } from '../store-contract.js'
import { killClaimHolders, openTemporaryPostgres } from '../support/postgres.js'
import { openTemporaryRedis } from '../support/redis.js'
import { openTemporarySqlite } from '../support/sqlite.js'

const STORES: readonly {
  readonly name: string
  readonly open: (clock: ManualClock) => Promise<StoreUnderTest<StoreTransaction>>
}[] = [
  {
    // Claims end with the process: their death is staged with processes in sqlite.test.ts.
    name: 'SQLite',
    open: (clock) => Promise.resolve({ ...openTemporarySqlite(clock), clock }),
  },
  ...[true, false].map((durableClaims) => ({
    name: durableClaims ? 'PostgreSQL' : 'PostgreSQL, claims committed without their fsync',
    async open(clock: ManualClock): Promise<StoreUnderTest<StoreTransaction>> {
      const holder = await openTemporaryPostgres({ clock, durableClaims })
      const peers: Awaited<ReturnType<typeof openTemporaryPostgres>>[] = []
      return {
        store: holder.store,
        clock,
        // The holder's database session ends as in a crash; a peer instance takes over.
        async killHolder() {
          const peer = await openTemporaryPostgres({
            clock,
            table: holder.table,
            channel: holder.channel,
            durableClaims,
          })
          peers.push(peer)
          expect(await killClaimHolders(peer.pool, holder.table)).toBe(1)
          return peer.store
        },
        async close() {
          for (const peer of peers) await peer.close()
          await holder.close()
        },
      }
    },
  })),
  {
    // Claims are leases: the contract's lease rows take them over with the manual clock.
    name: 'Redis',
    async open(clock) {
      const opened = await openTemporaryRedis({ clock })
      return { store: opened.store, clock, close: opened.close }
    },
  },
]

for (const { name, open } of STORES) runStoreContract(name, open)
