-- Complete a leased job. ARGV: P, jid, lease, ws, now_ms, at, success map
-- ("add:downloadable,regen:downloadable,delete:deleted"), du, vu, download_url,
-- verify_url, signature_url, sha256, bucket key, bucket ttl.
-- Returns {'ok', new_state} or {'lost', ''}.
local P, jid, lease, ws, now_ms, at, map = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if not fenced(P, jid, lease, ws) then return {'lost', ''} end
local jk = P .. 'job:' .. jid
local cid = hget(jk, 'cert_id')
local action = hget(jk, 'action')
local target
for a, s in string.gmatch(map, '(%w+):(%w+)') do
  if a == action then target = s end
end
local ck = P .. 'cert:' .. cid
local cur = hget(ck, 'state')
redis.call('ZREM', P .. 'leases', jid)
redis.call('SREM', P .. 'ws:' .. ws .. ':jobs', jid)
redis.call('HINCRBY', P .. 'ws:' .. ws, 'completed', 1)
redis.call('DEL', jk)
local detail
if action == 'delete' then
  redis.call('HDEL', ck, 'download_url', 'verify_url', 'signature_url', 'sha256')
  detail = 'removed download_uuid=' .. (hget(ck, 'download_uuid') or '-')
else
  redis.call('HSET', ck, 'download_uuid', ARGV[8], 'verify_uuid', ARGV[9], 'download_url', ARGV[10],
    'verify_url', ARGV[11], 'signature_url', ARGV[12], 'sha256', ARGV[13])
  detail = 'published download_uuid=' .. ARGV[8] .. ' verify_uuid=' .. ARGV[9]
end
redis.call('HSET', ck, 'state', target, 'updated_at', at)
redis.call('HDEL', ck, 'job_id', 'error_reason')
history(P, cid, target, at, detail)
move_state(P, cid, cur, target)
redis.call('INCR', ARGV[14])
redis.call('EXPIRE', ARGV[14], tonumber(ARGV[15]))
return {'ok', target}
