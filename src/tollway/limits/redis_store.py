"""Limits in Redis: two Lua scripts, so every replica sees one atomic view of each key.

Keys of one API key share the hash tag ``{key_id}`` (Redis Cluster keeps them on one
slot).  Time comes from Redis' own clock (``TIME``), so replicas with skewed clocks still
agree on the window.  Per key:

``tw:{k}:spend:<period>``  settled spend this period (nano-USD); seeded from the ledger
``tw:{k}:resv``            reservations: zset id -> expiry (ms), hash id -> amount, total
``tw:{k}:rpm``             request log of the last minute (zset id -> ms)
``tw:{k}:tpm``             token log of the last minute: zset id -> ms, hash id -> tokens, total
``tw:{k}:resv:gone``       reservations that expired unsettled in the last day (zset id -> ms)

Reservations expire after their TTL, so a crashed replica's holds free themselves; an
expired one is remembered for a day, so a settlement that lands late still counts, once.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from tollway.limits.periods import Period
from tollway.limits.store import GONE_TTL_MS, WINDOW_MS, AdmitRequest, AdmitResult, Hold

_PRUNE = """
local function prune(zkey, hkey, tkey, upto, gone, now)
  local stale = redis.call('ZRANGEBYSCORE', zkey, '-inf', upto)
  if #stale == 0 then return end
  local freed = 0
  for _, m in ipairs(stale) do
    freed = freed + tonumber(redis.call('HGET', hkey, m) or '0')
    redis.call('HDEL', hkey, m)
    -- An expired reservation is remembered, so its settlement still counts if it comes late.
    if gone then redis.call('ZADD', gone, now, m) end
  end
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', upto)
  redis.call('DECRBY', tkey, freed)
end
"""

# KEYS: spend, resv zset, resv hash, resv total, rpm zset, tpm zset, tpm hash, tpm total, gone zset
# ARGV: hold id, limit (-1: none), amount, rpm (0: none), tpm (0: none), tokens, resv ttl ms,
#       counter ttl s, window ms, gone ttl ms
_ADMIT = _PRUNE + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, limit, amount = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local rpm, tpm, tokens = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local window = tonumber(ARGV[9])
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - window)
  if redis.call('ZCARD', KEYS[5]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
    return {1, tonumber(oldest[2]) + window - now, 0}
  end
end
if tpm > 0 then
  prune(KEYS[6], KEYS[7], KEYS[8], now - window, false, now)
  local used = tonumber(redis.call('GET', KEYS[8]) or '0')
  if used + tokens > tpm then
    local oldest = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
    local wait = window
    if #oldest > 0 then wait = tonumber(oldest[2]) + window - now end
    return {2, wait, 0}
  end
end
local remaining = -1
if limit >= 0 then
  local settled = redis.call('GET', KEYS[1])
  if not settled then return {-1, 0, 0} end
  prune(KEYS[2], KEYS[3], KEYS[4], now, KEYS[9], now)
  local gone_ttl = tonumber(ARGV[10])
  redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', now - gone_ttl)
  if redis.call('ZCARD', KEYS[9]) > 0 then redis.call('PEXPIRE', KEYS[9], gone_ttl) end
  remaining = limit - tonumber(settled) - tonumber(redis.call('GET', KEYS[4]) or '0')
  if amount > remaining then return {3, 0, remaining} end
  local ttl = tonumber(ARGV[7])
  redis.call('ZADD', KEYS[2], now + ttl, id)
  redis.call('HSET', KEYS[3], id, amount)
  redis.call('INCRBY', KEYS[4], amount)
  -- The reservation keys outlive their entries: an expired reservation must pass through
  -- prune() (which remembers it) rather than vanish with its key.
  for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], ttl + tonumber(ARGV[10])) end
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[8]))
end
if rpm > 0 then
  redis.call('ZADD', KEYS[5], now, id)
  redis.call('PEXPIRE', KEYS[5], window)
end
if tpm > 0 then
  redis.call('ZADD', KEYS[6], now, id)
  redis.call('HSET', KEYS[7], id, tokens)
  redis.call('INCRBY', KEYS[8], tokens)
  for i = 6, 8 do redis.call('PEXPIRE', KEYS[i], window) end
end
return {0, 0, remaining}
"""

# KEYS: spend, resv zset, resv hash, resv total, tpm zset, tpm hash, tpm total, gone zset
# ARGV: hold id, cost, tokens (-1: no TPM), has reservation (1/0), counter ttl s
#
# Idempotent: the cost is added only by the settlement that removes the hold's reservation
# (or its "gone" mark, if it expired first), so a retried or replayed settlement counts once.
_SETTLE = """
local id = ARGV[1]
if ARGV[4] == '1' then
  local settles = false
  local amount = redis.call('HGET', KEYS[3], id)
  if amount then
    redis.call('HDEL', KEYS[3], id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('DECRBY', KEYS[4], amount)
    settles = true
  elseif redis.call('ZREM', KEYS[8], id) == 1 then
    settles = true
  end
  local cost = tonumber(ARGV[2])
  -- A missing counter is re-seeded from the ledger, which will hold this cost.
  if settles and cost > 0 and redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('INCRBY', KEYS[1], cost)
    redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
  end
end
local tokens = tonumber(ARGV[3])
if tokens >= 0 then
  local old = redis.call('HGET', KEYS[6], id)
  if old then
    redis.call('HSET', KEYS[6], id, tokens)
    redis.call('INCRBY', KEYS[7], tokens - tonumber(old))
  end
end
return 0
"""


def _keys(key_id: str, period_id: str) -> dict[str, str]:
    base = "tw:{" + key_id + "}"
    return {"spend": f"{base}:spend:{period_id}", "rz": f"{base}:resv", "rh": f"{base}:resv:amount",
            "rt": f"{base}:resv:total", "rpm": f"{base}:rpm", "tz": f"{base}:tpm",
            "th": f"{base}:tpm:tokens", "tt": f"{base}:tpm:total", "gone": f"{base}:resv:gone"}


_OUTCOMES = {0: "ok", 1: "rpm", 2: "tpm", 3: "credits", -1: "seed"}


class RedisLimitStore:
    """Limits shared by every replica that points at the same Redis."""

    def __init__(self, url: str, *, timeout_s: float, max_connections: int) -> None:
        # A blocking pool: under load a request waits (up to the timeout) for a free
        # connection instead of failing with "too many connections".
        pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout_s,
                                               socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self.redis: Redis = Redis.from_pool(pool)
        self._admit = self.redis.register_script(_ADMIT)
        self._settle = self.redis.register_script(_SETTLE)

    async def admit(self, req: AdmitRequest) -> AdmitResult:
        k = _keys(req.key_id, req.period.id)
        args: list[Any] = [req.hold_id, -1 if req.limit_nano is None else req.limit_nano,
                           req.reserve_nano, req.rpm or 0, req.tpm or 0, req.tokens,
                           req.reservation_ttl_ms, req.counter_ttl_s, WINDOW_MS, GONE_TTL_MS]
        code, wait, remaining = await self._admit(
            keys=[k["spend"], k["rz"], k["rh"], k["rt"], k["rpm"], k["tz"], k["th"], k["tt"], k["gone"]],
            args=args)
        return AdmitResult(_OUTCOMES[int(code)], max(int(wait), 0), int(remaining))

    async def seed(self, key_id: str, period: Period, spent_nano: int, ttl_s: int) -> None:
        await self.redis.set(_keys(key_id, period.id)["spend"], spent_nano, nx=True, ex=ttl_s)

    async def settle(self, hold: Hold, cost_nano: int, tokens: int) -> None:
        k = _keys(hold.key_id, hold.period_id)
        await self._settle(
            keys=[k["spend"], k["rz"], k["rh"], k["rt"], k["tz"], k["th"], k["tt"], k["gone"]],
            args=[hold.hold_id, cost_nano, tokens if hold.tokens is not None else -1,
                  1 if hold.reserved_nano is not None else 0, hold.counter_ttl_s])

    async def close(self) -> None:
        await self.redis.aclose()
