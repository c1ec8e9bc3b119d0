-- Start a request under an Idempotency-Key (batches; single submits do it inside
-- submit.lua). ARGV: key, request hash, pending ttl (s).
-- Returns {'new'}, {'mismatch'}, {'pending'} or {'done', deflated answer, plain answer}
-- (answers stored before they were deflated are plain).
local k, h, ttl = ARGV[1], ARGV[2], ARGV[3]
local cur = redis.call('HMGET', k, 'hash', 'state', 'answer_z', 'answer')
if not cur[1] then
  redis.call('HSET', k, 'hash', h, 'state', 'pending')
  redis.call('EXPIRE', k, tonumber(ttl))
  return {'new'}
end
if cur[1] ~= h then return {'mismatch'} end
if cur[2] == 'done' then return {'done', cur[3] or '', cur[4] or ''} end
return {'pending'}
