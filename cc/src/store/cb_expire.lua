-- Remove dead-letter callbacks that died more than age_ms ago (Redis's clock), at
-- most `limit` per call. ARGV: P, age_ms, limit. Returns how many were removed.
local P, age_ms, limit = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local dead = P .. 'callbacks:dead'
local ids = redis.call('ZRANGEBYSCORE', dead, '-inf', now_ms() - age_ms, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  redis.call('DEL', P .. 'cb:' .. id)
  redis.call('ZREM', dead, id)
end
return #ids
