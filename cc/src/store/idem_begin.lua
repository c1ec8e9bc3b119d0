-- Start a request under an Idempotency-Key (batches; single submits do it inside
-- submit.lua). ARGV: key, request hash, pending ttl (s).
-- Returns {'new'}, {'mismatch'}, {'pending'} or {'done', stored answer}.
local k, h, ttl = ARGV[1], ARGV[2], ARGV[3]
local cur = redis.call('HMGET', k, 'hash', 'state', 'answer')
if not cur[1] then
  redis.call('HSET', k, 'hash', h, 'state', 'pending')
  redis.call('EXPIRE', k, tonumber(ttl))
  return {'new'}
end
if cur[1] ~= h then return {'mismatch'} end
if cur[2] == 'done' then return {'done', cur[3]} end
return {'pending'}
