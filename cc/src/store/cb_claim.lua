-- Claim callbacks that are due for delivery. A claimed callback is pushed to
-- `claim_until` in the schedule and marked with this dispatcher's token, so another
-- CC does not send it at the same time; if this CC dies, it becomes due again then.
-- ARGV: P, now_ms, limit, claim_until_ms, token. Returns one flat HGETALL per callback.
local P, now_ms, limit, until_ms, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ids = redis.call('ZRANGEBYSCORE', P .. 'callbacks', '-inf', now_ms, 'LIMIT', 0, limit)
local out = {}
for _, id in ipairs(ids) do
  local cb = P .. 'cb:' .. id
  if redis.call('EXISTS', cb) == 1 then
    redis.call('ZADD', P .. 'callbacks', until_ms, id)
    redis.call('HSET', cb, 'claim', token)
    redis.call('HINCRBY', cb, 'attempts', 1)
    table.insert(out, redis.call('HGETALL', cb))
  else
    redis.call('ZREM', P .. 'callbacks', id)
  end
end
return out
