-- Shared helpers, prepended to every script that needs them (see store/scripts.rs).
-- Key schema: see store/mod.rs; every key starts with the prefix passed as P.

local function hget(key, field)
  local v = redis.call('HGET', key, field)
  if v == false then return nil end
  return v
end

-- Redis's own clock in ms: every lease expiry and heartbeat is on this one
-- clock, so CCs whose clocks disagree never expire each other's live leases.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The queue a job waits in: `queue:{template}@{version}` when it was pinned to a
-- template version at submit (listed in `tqueues` while it may hold jobs), else
-- `queue` (deletes, and jobs submitted before any workserver sent a catalogue).
local function job_queue(P, jk)
  if hget(jk, 'kind') == 'status' then return P .. 'squeue' end
  local tq = hget(jk, 'tq')
  if tq and tq ~= '' then
    redis.call('SADD', P .. 'tqueues', tq)
    return P .. 'queue:' .. tq
  end
  return P .. 'queue'
end

-- Bitstring Status Lists (W3C Recommendation): every published version's credential
-- has its own index in one list, whose bit set means revoked. A list has
-- STATUS_SIZE entries (16 KiB, the spec's minimum, for herd privacy); the global
-- index g is list floor(g / STATUS_SIZE), position g % STATUS_SIZE. Keys per list n:
-- `status:{n}:alloc` (the positions given out), `:count`, `:bits` (revoked), `:ver`
-- (counts its changes), `:job` (its publication job, at most one), `:pub` (the
-- version last published, when), `:retry` (when to try again after a publication
-- failed for good); `status:open` the list positions come from, `status:lists`.
local STATUS_SIZE = 131072
-- A published list is published again after this long even when unchanged, so a
-- write that landed late (a stalled storage request of a lost lease) is undone.
local STATUS_REFRESH_MS = 3600000
local STATUS_RETRY_MS = 60000

-- Queue the publication of list n unless one is queued or running.
local function status_enqueue(P, n, now_ms)
  local sk = P .. 'status:' .. n .. ':job'
  if redis.call('EXISTS', sk) == 1 then return end
  local seq = redis.call('INCR', P .. 'status:seq')
  local jid = string.sub(redis.sha1hex(P .. 'status list ' .. n .. ' publication ' .. seq), 1, 32)
  redis.call('SET', sk, jid)
  redis.call('DEL', P .. 'status:' .. n .. ':retry')
  redis.call('HSET', P .. 'job:' .. jid, 'kind', 'status', 'list', n, 'attempt', 0, 'status', 'queued',
    'enqueued_at', now_ms)
  redis.call('LPUSH', P .. 'squeue', jid)
end

-- List n changed (a bit was set, or it was first used): publish it again.
local function status_touch(P, n, now_ms)
  redis.call('INCR', P .. 'status:' .. n .. ':ver')
  redis.call('SADD', P .. 'status:lists', n)
  status_enqueue(P, n, now_ms)
end

-- A fresh global index for a new version's credential, never given before. `rnd`
-- (from the CC) picks the position, so positions say nothing of the order of issue;
-- a taken one gives the next free one.
local function status_alloc(P, rnd, now_ms)
  local n = tonumber(redis.call('GET', P .. 'status:open') or '0')
  if tonumber(redis.call('GET', P .. 'status:' .. n .. ':count') or '0') >= STATUS_SIZE then
    n = n + 1
    redis.call('SET', P .. 'status:open', n)
  end
  local ak = P .. 'status:' .. n .. ':alloc'
  local pos = (tonumber(rnd) or 0) % STATUS_SIZE
  if redis.call('GETBIT', ak, pos) == 1 then
    -- From its byte on (past the string's end counts as free), else from the start.
    local p = redis.call('BITPOS', ak, 0, math.floor(pos / 8))
    if p < 0 or p >= STATUS_SIZE then p = redis.call('BITPOS', ak, 0) end
    pos = p
  end
  redis.call('SETBIT', ak, pos, 1)
  if redis.call('INCR', P .. 'status:' .. n .. ':count') == 1 then status_touch(P, n, now_ms) end
  return n * STATUS_SIZE + pos
end

-- Revoke the credential of global index g (nil: a version issued before status lists).
local function status_revoke(P, g, now_ms)
  g = tonumber(g)
  if not g then return end
  local n = math.floor(g / STATUS_SIZE)
  if redis.call('SETBIT', P .. 'status:' .. n .. ':bits', g % STATUS_SIZE, 1) == 0 then
    status_touch(P, n, now_ms)
  end
end

-- Whether workserver `ws` takes jobs: heard from within alive_ms (on Redis's clock,
-- `now`) and not draining. The one rule for "live" of the catalogue and queue scripts.
local function serving(P, ws, now, alive_ms)
  local beat = redis.call('ZSCORE', P .. 'wsbeat', ws)
  return beat and now - tonumber(beat) <= alive_ms
    and redis.call('HGET', P .. 'ws:' .. ws, 'draining') ~= '1'
end

-- Count the certificate in its new state (status counters and the per-state
-- listing index). `downloadable`, the state nearly every certificate ends in, has
-- no index of its own: listing it walks every certificate with a filter, which
-- finds one on nearly every step (store/listing.rs).
local UNINDEXED = {downloadable = true}
local function move_state(P, cid, from, to)
  if from then
    redis.call('HINCRBY', P .. 'states', from, -1)
    if not UNINDEXED[from] then redis.call('ZREM', P .. 'bystate:' .. from, cid) end
  end
  redis.call('HINCRBY', P .. 'states', to, 1)
  if not UNINDEXED[to] then redis.call('ZADD', P .. 'bystate:' .. to, 0, cid) end
end

-- A certificate (its record `rec`) reached a final state through job `jid`: when
-- its request named a callback_url, schedule the callback (its id is the job id)
-- with what the certificate now says.
-- `host` names the destination for the per-host delivery limit (jobs queued before
-- it was recorded have none: their URL stands in for it).
local function queue_callback(P, jid, url, key, host, rec, action, state, now_ms, at)
  if not url or url == '' then return end
  local cb = P .. 'cb:' .. jid
  if not host or host == '' then host = url end
  redis.call('HSET', cb, 'callback_id', jid, 'url', url, 'key', key or '', 'host', host, 'cert_id', rec.id,
    'course_id', fval(rec.f, 'course_id'), 'username', fval(rec.f, 'username'),
    'action', action, 'state', state, 'at', at, 'attempts', 0, 'created_at', now_ms)
  local cv = current_version(rec)
  local extra = {}
  if cv then
    extra.download_uuid, extra.verify_uuid = cv.d, cv.v
    if not rec.g then
      local _
      extra.download_url, extra.verify_url, _, extra.credential_url = version_urls(P, cv)
    end
  end
  if rec.e then extra.error_reason, extra.error_code = rec.e.r, rec.e.c end
  for _, f in ipairs({'download_url', 'verify_url', 'credential_url', 'download_uuid', 'verify_uuid',
                     'error_reason', 'error_code'}) do
    local v = extra[f]
    if v and v ~= '' and v ~= cjson.null then redis.call('HSET', cb, f, v) end
  end
  redis.call('ZADD', P .. 'callbacks', now_ms, jid)
end

local function record_error(P, at, cid, jid, reason)
  redis.call('LPUSH', P .. 'errors', cjson.encode({at = at, cert_id = cid, job_id = jid, reason = reason}))
  redis.call('LTRIM', P .. 'errors', 0, 49)
end

-- Take a leased job away from its workserver's bookkeeping.
local function unlease(P, jid, jk)
  local ws = hget(jk, 'ws_id')
  redis.call('ZREM', P .. 'leases', jid)
  if ws then redis.call('SREM', P .. 'ws:' .. ws .. ':jobs', jid) end
  redis.call('HDEL', jk, 'lease_id', 'lease_exp', 'ws_id')
  redis.call('HSET', jk, 'status', 'queued')
  return ws
end

-- Why an attempt failed: `detail` for operators (recent errors), `public` for the
-- LMS (the certificate, its history, its callback) and the LMS's `code`
-- (common/src/failure.rs).
local function fault(detail, public, code)
  return {detail = detail, public = public, code = code}
end

-- A job attempt ended without success (`f` from fault()). Re-queue it while
-- attempts remain (and the failure is retryable), else end the certificate in
-- `error` with the reason. Returns 'requeued' or 'error'.
local function attempt_failed(P, jid, f, retryable, max_attempts, now_ms, at)
  local jk = P .. 'job:' .. jid
  local cid = hget(jk, 'cert_id')
  local attempt = tonumber(hget(jk, 'attempt') or '0')
  local ws = unlease(P, jid, jk)
  if ws then redis.call('HINCRBY', P .. 'ws:' .. ws, 'failed', 1) end
  if hget(jk, 'kind') == 'status' then
    -- A status list's publication: again while attempts remain, else after
    -- STATUS_RETRY_MS (reap.lua); the list stays as last published meanwhile.
    local n = hget(jk, 'list') or '?'
    record_error(P, at, '', jid, 'publishing status list ' .. n .. ': ' .. f.detail)
    if retryable and attempt < max_attempts then
      redis.call('HSET', jk, 'enqueued_at', now_ms)
      redis.call('LPUSH', P .. 'squeue', jid)
      return 'requeued'
    end
    redis.call('DEL', jk)
    if redis.call('GET', P .. 'status:' .. n .. ':job') == jid then
      redis.call('DEL', P .. 'status:' .. n .. ':job')
    end
    redis.call('SET', P .. 'status:' .. n .. ':retry', tonumber(now_ms) + STATUS_RETRY_MS)
    return 'error'
  end
  local rec = load(P, cid)
  if not rec then
    -- The certificate's record is gone (removed behind our back): nothing to retry for.
    redis.call('DEL', jk)
    record_error(P, at, cid, jid, f.detail)
    return 'error'
  end
  local state = rec.s
  record_error(P, at, cid, jid, f.detail)
  if retryable and attempt < max_attempts then
    redis.call('HSET', jk, 'enqueued_at', now_ms)
    redis.call('LPUSH', job_queue(P, jk), jid)
    hist(rec, state, at, 'attempt ' .. attempt .. ' failed, retrying: ' .. f.public)
    rec.u = at
    save(P, rec)
    return 'requeued'
  end
  local action, cb_url, cb_key = hget(jk, 'action'), hget(jk, 'callback_url'), hget(jk, 'callback_key')
  local cb_host = hget(jk, 'callback_host')
  redis.call('DEL', jk)
  rec.s, rec.u, rec.j, rec.a = 'error', at, nil, attempt
  rec.e = {r = f.public, c = f.code, d = f.detail}
  hist(rec, 'error', at, f.public)
  move_state(P, cid, state, 'error')
  save(P, rec)
  queue_callback(P, jid, cb_url, cb_key, cb_host, rec, action, 'error', now_ms, at)
  return 'error'
end

-- Put every job a workserver holds back at the head of the queue. With
-- `reason` nil the attempt is not counted (the workserver left cleanly: the job
-- did not fail); else (a fault()) it counts as a failed attempt with that reason (the
-- workserver died or restarted while holding it, which a job that crashes its
-- workserver must not escape: it ends in error after max_attempts).
-- Returns the number of jobs handled.
local function release_ws_jobs(P, ws, now_ms, reason, max_attempts, at)
  local jobs = redis.call('SMEMBERS', P .. 'ws:' .. ws .. ':jobs')
  local n = 0
  for _, jid in ipairs(jobs) do
    local jk = P .. 'job:' .. jid
    if hget(jk, 'status') == 'leased' and hget(jk, 'ws_id') == ws then
      n = n + 1
      if reason then
        attempt_failed(P, jid, reason, true, max_attempts, now_ms, at)
      else
        unlease(P, jid, jk)
        redis.call('HINCRBY', jk, 'attempt', -1)
        redis.call('HSET', jk, 'enqueued_at', now_ms)
        redis.call('RPUSH', job_queue(P, jk), jid)
      end
    end
  end
  redis.call('DEL', P .. 'ws:' .. ws .. ':jobs')
  return n
end

-- Forget a workserver: its jobs go back to the queue (counted as failed attempts
-- when `reason` is given, see release_ws_jobs), its token stops working.
local function drop_ws(P, ws, now_ms, reason, max_attempts, at)
  local wk = P .. 'ws:' .. ws
  local released = release_ws_jobs(P, ws, now_ms, reason, max_attempts, at)
  local th = hget(wk, 'token_hash')
  if th then redis.call('DEL', P .. 'tok:' .. th) end
  local name = hget(wk, 'name')
  if name and redis.call('GET', P .. 'wsname:' .. name) == ws then
    redis.call('DEL', P .. 'wsname:' .. name)
  end
  -- Its catalogue no longer counts: its template versions lose a workserver,
  -- and the catalogue itself goes when no other workserver registered it.
  local tpl = redis.call('HGETALL', wk .. ':tpl')
  for i = 1, #tpl, 2 do
    redis.call('SREM', P .. 'tplws:' .. tpl[i] .. '@' .. tpl[i + 1], ws)
  end
  redis.call('DEL', wk .. ':tpl')
  local digest = hget(wk, 'catalog')
  if digest and digest ~= '' and redis.call('GET', P .. 'catalog:current') ~= digest then
    local shared = false
    for _, other in ipairs(redis.call('SMEMBERS', P .. 'workservers')) do
      if other ~= ws and redis.call('HGET', P .. 'ws:' .. other, 'catalog') == digest then shared = true end
    end
    if not shared then redis.call('DEL', P .. 'catalog:' .. digest) end
  end
  redis.call('DEL', wk)
  redis.call('SREM', P .. 'workservers', ws)
  redis.call('ZREM', P .. 'wsbeat', ws)
  return released
end

-- Check that `lease` is the current lease of its job and belongs to `ws`.
local function fenced(P, jid, lease, ws)
  local h = redis.call('HMGET', P .. 'job:' .. jid, 'status', 'lease_id', 'ws_id')
  return h[1] == 'leased' and h[2] == lease and h[3] == ws
end
