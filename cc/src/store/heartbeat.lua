-- A workserver's heartbeat. ARGV: P, ws, reported ('1' when the workserver lists
-- the jobs it holds), grace_ms, at, then the job ids it holds.
-- A job leased to it more than grace_ms ago that it does not hold (the answer
-- that leased it never arrived, e.g. its CC died mid-request) goes back to the
-- queue at once, without counting an attempt against anyone.
-- Returns {drain flag (0/1), released} or {-1} for an unknown workserver.
local P, ws, reported, grace = ARGV[1], ARGV[2], ARGV[3] == '1', tonumber(ARGV[4])
local wk = P .. 'ws:' .. ws
if redis.call('EXISTS', wk) == 0 then return {-1} end
local now = now_ms()
redis.call('HSET', wk, 'last_heartbeat', now)
redis.call('ZADD', P .. 'wsbeat', now, ws)
local released = 0
if reported then
  local held = {}
  for i = 6, #ARGV do held[ARGV[i]] = true end
  for _, jid in ipairs(redis.call('SMEMBERS', wk .. ':jobs')) do
    local jk = P .. 'job:' .. jid
    if not held[jid] and hget(jk, 'ws_id') == ws and hget(jk, 'status') == 'leased'
        and now - tonumber(hget(jk, 'leased_at') or now) > grace then
      unlease(P, jid, jk)
      redis.call('HINCRBY', jk, 'attempt', -1)
      redis.call('HSET', jk, 'enqueued_at', now)
      redis.call('RPUSH', job_queue(P, jk), jid)
      local rec = load(P, hget(jk, 'cert_id') or '')
      if rec then
        hist(rec, rec.s, ARGV[5],
          'lease of job ' .. jid .. ' never reached workserver ' .. (hget(wk, 'name') or ws) .. '; queued again')
        save(P, rec)
      end
      released = released + 1
    end
  end
end
return {tonumber(hget(wk, 'draining') or '0'), released}
