-- Re-queue (or end in error) jobs whose lease expired. Safe to run from several CCs
-- at once: a job is taken out of the lease set in the same atomic step.
-- ARGV: P, now_ms, max_attempts, at, limit. Returns the number of jobs handled.
local P, now_ms, max_attempts, at, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local expired = redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', now_ms, 'LIMIT', 0, limit)
for _, jid in ipairs(expired) do
  local jk = P .. 'job:' .. jid
  local ws = hget(jk, 'ws_id') or '?'
  local name = hget(P .. 'ws:' .. ws, 'name') or ws
  local reason = 'lease expired: workserver ' .. name .. ' neither finished nor extended the job within lease_ttl_s'
  if redis.call('EXISTS', jk) == 1 then
    attempt_failed(P, jid, reason, true, max_attempts, now_ms, at)
  else
    redis.call('ZREM', P .. 'leases', jid)
  end
end
return #expired
