-- Record the outcome of one delivery attempt, if this dispatcher still holds the claim.
-- ARGV: P, id, token, outcome ('delivered' | 'retry' | 'dead'), score (next attempt
-- for retry, now for dead), last error, at. Returns 1, or 0 when the claim was lost.
local P, id, token, outcome, score, err, at = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local cb = P .. 'cb:' .. id
if redis.call('HGET', cb, 'claim') ~= token then return 0 end
redis.call('HDEL', cb, 'claim')
if outcome == 'delivered' then
  redis.call('DEL', cb)
  redis.call('ZREM', P .. 'callbacks', id)
elseif outcome == 'retry' then
  redis.call('HSET', cb, 'last_error', err)
  redis.call('ZADD', P .. 'callbacks', score, id)
else
  redis.call('HSET', cb, 'last_error', err, 'dead_at', at)
  redis.call('ZREM', P .. 'callbacks', id)
  redis.call('ZADD', P .. 'callbacks:dead', score, id)
end
return 1
