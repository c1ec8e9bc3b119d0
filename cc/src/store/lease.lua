-- Lease up to N queued jobs to a workserver, never more than its registered
-- capacity minus what it already holds.
-- ARGV: P, ws, n, ttl_ms, alive_ms, then n lease secrets.
-- Returns {'ok', exp_ms, job...} where each job is {jid, lease_id, attempt, action, du, vu,
-- previous du, previous vu, cert_id, the certificate's record (JSON, record.lua),
-- requested_at, status list index}, or a status list's publication {jid, lease_id,
-- attempt, 'status', list, its version, its bits (raw bytes)}; or
-- {'unknown_ws'}. A
-- draining workserver gets no jobs. Expiry is on Redis's clock.
--
-- Which jobs a workserver may take: those of the plain queue, and of each template
-- queue `queue:{template}@{version}` whose template it has in that version. A queue
-- of another version of one of its templates that no live, non-draining workserver
-- has any more (a rolling update went past it) is taken too: those jobs are drawn
-- by the template's current version instead of waiting forever.
local P, ws, n, ttl, alive_ms = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local wk = P .. 'ws:' .. ws
if redis.call('EXISTS', wk) == 0 then return {'unknown_ws'} end
local now = now_ms()
local exp = now + ttl
local out = {'ok', exp}
if hget(wk, 'draining') == '1' then return out end
local free = tonumber(hget(wk, 'capacity') or '0') - redis.call('SCARD', wk .. ':jobs')
if free < n then n = free end
if n <= 0 then return out end

-- Does a live workserver that is not draining have this template version?
local function served(tq)
  for _, other in ipairs(redis.call('SMEMBERS', P .. 'tplws:' .. tq)) do
    if serving(P, other, now, alive_ms) then return true end
  end
  return false
end

-- The queues this workserver may lease from, with the version it draws each in. A
-- registration made before template versions existed (no `catalog` field: a CC was
-- upgraded under a running workserver) takes from every queue, as it did then.
local legacy = redis.call('HEXISTS', wk, 'catalog') == 0
local sources = {{key = P .. 'queue', tq = ''}}
for _, tq in ipairs(redis.call('SMEMBERS', P .. 'tqueues')) do
  local key = P .. 'queue:' .. tq
  if redis.call('LLEN', key) == 0 then
    redis.call('SREM', P .. 'tqueues', tq)
  else
    local template, version = string.match(tq, '^(.*)@([^@]*)$')
    local mine = template and hget(wk .. ':tpl', template)
    if legacy then
      sources[#sources + 1] = {key = key, tq = tq}
    elseif mine and (mine == version or not served(tq)) then
      sources[#sources + 1] = {key = key, tq = tq, version = mine}
    end
  end
end

-- Oldest first across the queues: each round takes from the queue whose next job
-- was queued earliest.
local function next_source()
  local open = {}
  for _, s in ipairs(sources) do
    if not s.done then open[#open + 1] = s end
  end
  if #open <= 1 then return open[1] end
  local best, best_at = nil, nil
  for _, s in ipairs(open) do
    local jid = redis.call('LINDEX', s.key, -1)
    if not jid then
      s.done = true
    else
      local at = tonumber(redis.call('HGET', P .. 'job:' .. jid, 'enqueued_at') or '0') or 0
      if not best_at or at < best_at then best, best_at = s, at end
    end
  end
  return best
end

local leased = 0
-- Lease queued job `jid` to this workserver (the next lease secret): its attempt,
-- lease and expiry, in the lease set and the workserver's jobs. Returns the lease
-- id and the attempt.
local function take(jid, jk)
  leased = leased + 1
  local lease = jid .. '.' .. ARGV[5 + leased]
  local attempt = redis.call('HINCRBY', jk, 'attempt', 1)
  redis.call('HSET', jk, 'status', 'leased', 'lease_id', lease, 'lease_exp', exp, 'ws_id', ws, 'leased_at', now)
  redis.call('ZADD', P .. 'leases', exp, jid)
  redis.call('SADD', wk .. ':jobs', jid)
  return lease, tostring(attempt)
end

-- Status lists' publications first (a revocation is urgent), to the workservers
-- that said they publish them (capabilities.status_lists).
if hget(wk, 'status_lists') == '1' then
  while leased < n do
    local jid = redis.call('RPOP', P .. 'squeue')
    if not jid then break end
    local jk = P .. 'job:' .. jid
    if redis.call('HGET', jk, 'status') == 'queued' then
      local lease, attempt = take(jid, jk)
      local list = hget(jk, 'list') or '0'
      local base = P .. 'status:' .. list
      -- The list as it is now: its version is what the completion records.
      local ver = redis.call('GET', base .. ':ver') or '0'
      redis.call('HSET', jk, 'sver', ver)
      out[#out + 1] = {jid, lease, attempt, 'status', list, ver, redis.call('GET', base .. ':bits') or ''}
    end
  end
end
while leased < n do
  local s = next_source()
  if not s then break end
  local jid = redis.call('RPOP', s.key)
  local jk = jid and (P .. 'job:' .. jid)
  if not jid then
    s.done = true
  elseif redis.call('HGET', jk, 'status') == 'queued' then
    local lease, attempt = take(jid, jk)
    -- The version that will draw it, recorded with the certificate on completion.
    if s.version then redis.call('HSET', jk, 'drawn_version', s.version) else redis.call('HDEL', jk, 'drawn_version') end
    local j = redis.call('HMGET', jk, 'cert_id', 'action', 'download_uuid', 'verify_uuid',
      'previous_download_uuid', 'previous_verify_uuid', 'requested_at', 'si')
    -- The certificate's record as stored (the CC takes the learner fields from
    -- it): read, not decoded here. Its attempts are the job's while it is pending.
    local raw = load_stored(P, j[1]) or ''
    out[#out + 1] = {jid, lease, attempt, j[2], j[3] or '', j[4] or '', j[5] or '', j[6] or '', j[1], raw, j[7] or '', j[8] or ''}
  end
end
return out
