-- Put dead letters back in the delivery schedule with a fresh attempt budget.
-- ARGV: P, now_ms, then the callback ids (none: every dead letter).
-- Returns {replayed count, ids that are not dead letters...} as strings.
local P, now_ms = ARGV[1], ARGV[2]
local n = 0
local out = {''}
local function replay(id)
  if redis.call('ZREM', P .. 'callbacks:dead', id) == 1 then
    local cb = P .. 'cb:' .. id
    redis.call('HSET', cb, 'attempts', 0)
    redis.call('HDEL', cb, 'dead_at', 'claim')
    redis.call('ZADD', P .. 'callbacks', now_ms, id)
    n = n + 1
  else
    table.insert(out, id)
  end
end
if #ARGV > 2 then
  for i = 3, #ARGV do replay(ARGV[i]) end
else
  for _, id in ipairs(redis.call('ZRANGE', P .. 'callbacks:dead', 0, -1)) do replay(id) end
end
out[1] = tostring(n)
return out
