import { createHash } from 'node:crypto'

/**
 * The Lua scripts of the Redis store. Each one runs atomically on the server: it reads the
 * record, decides, and writes, with nothing in between. That is why the claim decides in Lua
 * rather than through `decideClaim`: in Redis the read and the write of a claim can only be one
 * step inside a script, so the script carries its own copy of the decision table, kept line for
 * line the same as `decideClaim`'s (the tests run both against one table).
 *
 * A record is one hash at KEYS[1]:
 *
 * | field    | meaning                                                              |
 * | -------- | -------------------------------------------------------------------- |
 * | `st`     | `p` in progress, `c` completed                                       |
 * | `fp`     | the request's fingerprint                                            |
 * | `exp`    | when the record expires (ms, on the script's clock)                  |
 * | `tok`    | the claim's token (in progress only)                                 |
 * | `lease`  | when the claim's lease ends (ms, on the script's clock; in progress)  |
 * | `status`, `hdr` (JSON), `body` (bytes), `rid` | the stored response (completed only) |
 *
 * The key's native TTL ends at `exp`, or at the lease's end while a live claim outlasts it, so
 * Redis deletes records by itself when they expire. Every script takes ARGV[1]: a test clock's
 * time in ms, or `''` for the server's own clock (`TIME`), never the calling instance's.
 */
export interface RedisScript {
  readonly name: string
  readonly source: string
  readonly sha1: string
}

// Shared by every script: the clock, and the native TTL on that clock.
const PRELUDE = `
-- Now, in ms: the test clock's time when one is given, else the server's clock.
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Ends the key's life at \`at\` on that clock. On the server's clock PEXPIREAT is exact; a test
-- clock is not the clock Redis expires keys on, so the same remaining duration instead. A time
-- already past deletes the key, as Redis would.
local function expire_at(key, at)
  if at <= now then
    redis.call('DEL', key)
  elseif ARGV[1] == '' then
    redis.call('PEXPIREAT', key, at)
  else
    redis.call('PEXPIRE', key, at - now)
  end
end

-- Whether a record's claim is held by a live holder: in progress, and its lease not lapsed.
local function is_held(st, lease)
  return st == 'p' and tonumber(lease) > now
end

-- Whether a record is gone for every purpose: expired, and no live holder runs under it.
local function is_dead(st, exp, lease)
  return tonumber(exp) <= now and not is_held(st, lease)
end
`

function script(name: string, body: string): RedisScript {
  const source = `${PRELUDE}\n${body}`
  return { name, source, sha1: createHash('sha1').update(source).digest('hex') }
}

/**
 * ARGV: now, fingerprint, token, leaseMs, ttlMs.
 * Returns `{kind, now, ...}`: `{'claimed', now, exp}`, `{'takeover', now, exp}`,
 * `{'replay', now, exp, status, hdr, body, rid}`, `{'mismatch', now}`, `{'in_progress', now}`.
 */
export const CLAIM_SCRIPT = script(
  'claim',
  `
local key = KEYS[1]
local fingerprint, token = ARGV[2], ARGV[3]
local lease_ends = now + tonumber(ARGV[4])
local r = redis.call('HMGET', key, 'st', 'fp', 'exp', 'lease')
local st, fp, exp, lease = r[1], r[2], r[3], r[4]

-- The decision, as decideClaim has it:
-- 1. no record: fresh;  2. expired and no live holder: fresh (the old record is replaced);
if not st or is_dead(st, exp, lease) then
  local expires = now + tonumber(ARGV[5])
  redis.call('DEL', key)
  redis.call('HSET', key, 'st', 'p', 'fp', fingerprint, 'tok', token,
             'lease', lease_ends, 'exp', expires)
  expire_at(key, math.max(expires, lease_ends))
  return {'claimed', now, expires}
end
-- 3. another fingerprint: mismatch, whatever the state;
if fp ~= fingerprint then
  return {'mismatch', now}
end
-- 4. completed: replay;
if st == 'c' then
  local s = redis.call('HMGET', key, 'status', 'hdr', 'body', 'rid')
  return {'replay', now, tonumber(exp), s[1], s[2], s[3], s[4]}
end
-- 5. held by a live holder: in progress; else its lease lapsed: take it over, with the
--    record's expiry unchanged (the native TTL only grows, to cover the new lease).
if is_held(st, lease) then
  return {'in_progress', now}
end
redis.call('HSET', key, 'tok', token, 'lease', lease_ends)
expire_at(key, math.max(tonumber(exp), lease_ends))
return {'takeover', now, tonumber(exp)}
`,
)

/** ARGV: now, token, leaseMs. Returns `{1, now}` when the lease was extended, else `{0, now}`. */
export const RENEW_SCRIPT = script(
  'renew',
  `
local key = KEYS[1]
local r = redis.call('HMGET', key, 'st', 'tok', 'exp', 'lease')
local st, tok, exp, lease = r[1], r[2], r[3], r[4]
-- Compare-and-set on the token; a dead record is not anyone's to renew.
if st ~= 'p' or tok ~= ARGV[2] or is_dead(st, exp, lease) then
  return {0, now}
end
local lease_ends = now + tonumber(ARGV[3])
redis.call('HSET', key, 'lease', lease_ends)
expire_at(key, math.max(tonumber(exp), lease_ends))
return {1, now}
`,
)

/**
 * ARGV: now, token, status, headers JSON, body, request id, channel, message.
 * Returns `{1, fingerprint, exp, now}` when completed, else `{0}`.
 */
export const COMPLETE_SCRIPT = script(
  'complete',
  `
local key = KEYS[1]
local r = redis.call('HMGET', key, 'st', 'tok', 'exp', 'lease', 'fp')
local st, tok, exp, lease, fp = r[1], r[2], r[3], r[4], r[5]
-- Compare-and-set on the token: a request whose claim was taken over matches nothing.
if st ~= 'p' or tok ~= ARGV[2] or is_dead(st, exp, lease) then
  return {0}
end
redis.call('HSET', key, 'st', 'c', 'status', ARGV[3], 'hdr', ARGV[4], 'body', ARGV[5],
           'rid', ARGV[6])
redis.call('HDEL', key, 'tok', 'lease')
-- The record keeps the expiry of its first claim.
expire_at(key, tonumber(exp))
-- Waiters on every instance wake now; the message names the sender and the record.
redis.call('PUBLISH', ARGV[7], ARGV[8])
return {1, fp, tonumber(exp), now}
`,
)

/** ARGV: now, token, channel, message. Returns 1 when the claim was given back, else 0. */
export const RELEASE_SCRIPT = script(
  'release',
  `
local key = KEYS[1]
local r = redis.call('HMGET', key, 'st', 'tok', 'exp', 'lease')
local st, tok, exp, lease = r[1], r[2], r[3], r[4]
if st ~= 'p' or tok ~= ARGV[2] then
  return 0
end
redis.call('DEL', key)
-- A dead record that still carried the token was gone already: deleted, but not a release.
if is_dead(st, exp, lease) then
  return 0
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
`,
)

/** ARGV: now. Deletes the record if it expired and no live holder runs under it; returns 1 if so. */
export const PURGE_SCRIPT = script(
  'purge',
  `
local key = KEYS[1]
local r = redis.call('HMGET', key, 'st', 'exp', 'lease')
if not r[1] or not is_dead(r[1], r[2], r[3]) then
  return 0
end
redis.call('DEL', key)
return 1
`,
)
