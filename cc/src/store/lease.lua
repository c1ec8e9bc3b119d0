-- Lease up to N queued jobs to a workserver, never more than its registered
-- capacity minus what it already holds.
-- ARGV: P, ws, n, ttl_ms, then n lease secrets.
-- Returns {'ok', exp_ms, job...} where each job is {jid, lease_id, attempt, action, du, vu,
-- previous du, previous vu, cert hash as flat field/value pairs...}, or {'unknown_ws'}. A
-- draining workserver gets no jobs. Expiry is on Redis's clock.
local P, ws, n, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local wk = P .. 'ws:' .. ws
if redis.call('EXISTS', wk) == 0 then return {'unknown_ws'} end
local now = now_ms()
local exp = now + ttl
local out = {'ok', exp}
if hget(wk, 'draining') == '1' then return out end
local free = tonumber(hget(wk, 'capacity') or '0') - redis.call('SCARD', wk .. ':jobs')
if free < n then n = free end
for i = 1, n do
  local jid = redis.call('RPOP', P .. 'queue')
  if not jid then break end
  local jk = P .. 'job:' .. jid
  if redis.call('EXISTS', jk) == 1 and hget(jk, 'status') == 'queued' then
    local lease = jid .. '.' .. ARGV[4 + i]
    local attempt = redis.call('HINCRBY', jk, 'attempt', 1)
    redis.call('HSET', jk, 'status', 'leased', 'lease_id', lease, 'lease_exp', exp, 'ws_id', ws, 'leased_at', now)
    redis.call('ZADD', P .. 'leases', exp, jid)
    redis.call('SADD', wk .. ':jobs', jid)
    local cid = hget(jk, 'cert_id')
    local ck = P .. 'cert:' .. cid
    redis.call('HSET', ck, 'attempts', attempt)
    local job = {jid, lease, tostring(attempt), hget(jk, 'action'), hget(jk, 'download_uuid') or '',
      hget(jk, 'verify_uuid') or '', hget(jk, 'previous_download_uuid') or '',
      hget(jk, 'previous_verify_uuid') or ''}
    local fields = redis.call('HGETALL', ck)
    for _, v in ipairs(fields) do job[#job + 1] = v end
    out[#out + 1] = job
  end
end
return out
