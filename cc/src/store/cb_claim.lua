-- Claim callbacks that are due for delivery, at most `per_host` in flight on this
-- CC per destination host. A claimed callback is pushed to `claim_until` in the
-- schedule and marked with this dispatcher's token, so another CC does not send it
-- at the same time; if this CC dies, it becomes due again then.
-- A due callback whose host has no room is parked in `callbacks:wait:{host}` (out
-- of the schedule, no attempt counted, no slot taken), so the callbacks behind it
-- are reached; parked ones are claimed first, oldest first, as soon as a CC has
-- room for their host.
-- ARGV: P, now_ms, limit, claim_until_ms, token, per_host, scan (due entries looked
-- at most), then pairs host, deliveries this CC has in flight to it.
-- Returns {number parked, then one flat HGETALL per claimed callback...}.
local P, now_ms, limit, until_ms, token = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local per_host, scan = tonumber(ARGV[6]), tonumber(ARGV[7])
local busy = {}
for i = 8, #ARGV - 1, 2 do busy[ARGV[i]] = tonumber(ARGV[i + 1]) end
local sched, waiting = P .. 'callbacks', P .. 'callbacks:waiting'
local out = {0}
local claimed, parked = 0, 0

local function room(h) return per_host - (busy[h] or 0) end

local function claim(id, cb, h)
  redis.call('ZADD', sched, until_ms, id)
  redis.call('HSET', cb, 'claim', token, 'host', h)
  redis.call('HINCRBY', cb, 'attempts', 1)
  busy[h] = (busy[h] or 0) + 1
  claimed = claimed + 1
  table.insert(out, redis.call('HGETALL', cb))
end

-- Parked callbacks first: they were due before anything still in the schedule.
for _, h in ipairs(redis.call('SMEMBERS', waiting)) do
  if claimed >= limit then break end
  local wk = P .. 'callbacks:wait:' .. h
  local n = math.min(room(h), limit - claimed)
  if n > 0 then
    for _, id in ipairs(redis.call('ZRANGE', wk, 0, n - 1)) do
      redis.call('ZREM', wk, id)
      local cb = P .. 'cb:' .. id
      if redis.call('EXISTS', cb) == 1 then claim(id, cb, h) end
    end
  end
  if redis.call('EXISTS', wk) == 0 then redis.call('SREM', waiting, h) end
end

if claimed < limit then
  local due = redis.call('ZRANGEBYSCORE', sched, '-inf', now_ms, 'WITHSCORES', 'LIMIT', 0, scan)
  for i = 1, #due, 2 do
    if claimed >= limit then break end
    local id, score = due[i], due[i + 1]
    local cb = P .. 'cb:' .. id
    if redis.call('EXISTS', cb) == 0 then
      redis.call('ZREM', sched, id)
    else
      local h = hget(cb, 'host') or hget(cb, 'url') or ''
      if room(h) > 0 then
        claim(id, cb, h)
      else
        redis.call('ZREM', sched, id)
        redis.call('ZADD', P .. 'callbacks:wait:' .. h, score, id)
        redis.call('SADD', waiting, h)
        parked = parked + 1
      end
    end
  end
end
out[1] = parked
return out
