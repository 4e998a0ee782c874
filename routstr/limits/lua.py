"""The Lua scripts the Redis limiter runs: each is one atomic round trip (EVALSHA).

Per API key, two keys sharing a hash tag (one cluster slot):

* ``<prefix>:{<key_id>}:w`` — hash ``mw`` minute window number, ``mc`` requests in it, ``hw`` hour window
  number, ``ht`` tokens in it. A new window overwrites the old counter, so nothing piles up; the key
  expires a minute after its hour window ends.
* ``<prefix>:{<key_id>}:s`` — sorted set of in-flight request slots, member = slot id, score = expiry
  (unix ms). Expired members are dropped before counting, so a slot whose process died frees itself
  after the slot TTL; live holders push their expiry forward (``REFRESH``). The key expires with its
  last slot.

ARGV[1] is the time in unix ms, or -1 to use the Redis server's clock (one clock for the whole fleet).
(Reading TIME before writing needs script effects replication: the default since Redis 5.)
Return values are integers: ``{code, requests counted in the minute window, now in ms}`` where code is
0 allowed, 1 requests/minute, 2 tokens/hour, 3 concurrency.
"""

from __future__ import annotations

_NOW = """
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# ARGV: now, requests/minute, tokens/hour, concurrent, slot id, slot TTL ms
ACQUIRE = (
    _NOW
    + """
local rpm, tph, conc = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local mwin, hwin = math.floor(now / 60000), math.floor(now / 3600000)
local h = redis.call('HMGET', KEYS[1], 'mw', 'mc', 'hw', 'ht')
local mc, ht = 0, 0
if tonumber(h[1]) == mwin then mc = tonumber(h[2]) or 0 end
if tonumber(h[3]) == hwin then ht = tonumber(h[4]) or 0 end
if tph > 0 and ht >= tph then return {2, mc, now} end
if rpm > 0 and mc >= rpm then return {1, mc, now} end
if conc > 0 then
  local ttl = tonumber(ARGV[6])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= conc then return {3, mc, now} end
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ttl)
end
mc = mc + 1
redis.call('HSET', KEYS[1], 'mw', mwin, 'mc', mc, 'hw', hwin, 'ht', ht)
redis.call('PEXPIRE', KEYS[1], (hwin + 1) * 3600000 - now + 60000)
return {0, mc, now}
"""
)

# ARGV: now, tokens used, slot id ('' when the request held none)
RELEASE = (
    _NOW
    + """
if ARGV[3] ~= '' then redis.call('ZREM', KEYS[2], ARGV[3]) end
local tokens = tonumber(ARGV[2])
if tokens > 0 then
  local hwin = math.floor(now / 3600000)
  local h = redis.call('HMGET', KEYS[1], 'hw', 'ht')
  local ht = 0
  if tonumber(h[1]) == hwin then ht = tonumber(h[2]) or 0 end
  redis.call('HSET', KEYS[1], 'hw', hwin, 'ht', ht + tokens)
  redis.call('PEXPIRE', KEYS[1], (hwin + 1) * 3600000 - now + 60000)
end
return 0
"""
)

# ARGV: now, slot TTL ms, slot ids... — pushes the expiry of slots still held (XX: never re-adds one)
REFRESH = (
    _NOW
    + """
local ttl = tonumber(ARGV[2])
local args = {}
for i = 3, #ARGV do
  args[#args + 1] = now + ttl
  args[#args + 1] = ARGV[i]
end
if #args > 0 then
  redis.call('ZADD', KEYS[2], 'XX', unpack(args))
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 0
"""
)
