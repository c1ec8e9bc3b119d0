-- Re-queue (or end in error) jobs whose lease expired, and the jobs of workservers
-- that stopped sending heartbeats (dead: killed, crashed, cut off), which would
-- otherwise wait for their whole lease. Both count as failed attempts. Forget
-- workservers not heard from for forget_ms. Safe to run from several CCs at once:
-- a job is taken out of the lease set in the same atomic step. Times are Redis's.
-- ARGV: P, max_attempts, at, limit, dead_ms, forget_ms, what the LMS is told when a
-- workserver is lost. Returns the number of jobs handled.
local P, max_attempts, at, limit = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local dead_ms, forget_ms, lost = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local function lost_fault(detail) return fault(detail, lost, 'workserver_lost') end
local now = now_ms()
local handled = 0
local expired = redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', now, 'LIMIT', 0, limit)
for _, jid in ipairs(expired) do
  local jk = P .. 'job:' .. jid
  local ws = hget(jk, 'ws_id') or '?'
  local name = hget(P .. 'ws:' .. ws, 'name') or ws
  local reason = 'lease expired: workserver ' .. name .. ' neither finished nor extended the job within lease_ttl_s'
  if redis.call('EXISTS', jk) == 1 then
    attempt_failed(P, jid, lost_fault(reason), true, max_attempts, now, at)
  else
    redis.call('ZREM', P .. 'leases', jid)
  end
end
handled = #expired
for _, ws in ipairs(redis.call('ZRANGEBYSCORE', P .. 'wsbeat', '-inf', now - dead_ms, 'LIMIT', 0, limit)) do
  local wk = P .. 'ws:' .. ws
  local last = tonumber(hget(wk, 'last_heartbeat') or '0')
  if redis.call('EXISTS', wk) == 0 or now - last > forget_ms then
    drop_ws(P, ws, now, lost_fault('workserver ' .. (hget(wk, 'name') or ws) .. ' was forgotten after no heartbeat'), max_attempts, at)
  elseif redis.call('SCARD', wk .. ':jobs') > 0 then
    local name = hget(wk, 'name') or ws
    handled = handled + release_ws_jobs(P, ws, now,
      lost_fault('workserver ' .. name .. ' stopped sending heartbeats (dead or cut off) while holding this job'), max_attempts, at)
  end
end
-- Status lists due for publication with none queued: changed but not published
-- (a publication failed for good, STATUS_RETRY_MS ago), or not published for
-- STATUS_REFRESH_MS. Few: one list holds STATUS_SIZE certificates.
for _, list in ipairs(redis.call('SMEMBERS', P .. 'status:lists')) do
  local base = P .. 'status:' .. list
  if redis.call('EXISTS', base .. ':job') == 0 then
    local ver = tonumber(redis.call('GET', base .. ':ver') or '0') or 0
    local pub = redis.call('HMGET', base .. ':pub', 'ver', 'ms')
    local retry = tonumber(redis.call('GET', base .. ':retry') or '0') or 0
    local stale = now - (tonumber(pub[2] or '0') or 0) >= STATUS_REFRESH_MS
    if (ver > (tonumber(pub[1] or '0') or 0) or stale) and now >= retry then
      status_enqueue(P, list, now)
    end
  end
end
return handled
