-- Record requested actions on certificates and queue their jobs. One call handles
-- one request (POST /v1/certificates) or a chunk of a batch; each request is atomic.
-- ARGV: P, now_ms, at, idempotency ttl (s), then one group per request:
--   cid, jid, action, pending_state, allowed_from (comma list), allowed_absent ('1'/'0'),
--   new_download_uuid, new_verify_uuid, callback_url, callback_key, callback_host,
--   template queue ('{template}@{version}' the job is pinned to, '' = the plain queue),
--   idempotency key ('' = none), request hash, a random number (the position of
--   the new version's status list entry, lib.lua status_alloc), n, then n
--   field/value pairs for the certificate (an empty value deletes the field).
-- Returns four strings per request: outcome ('ok' | 'illegal' | 'idem_mismatch'),
-- state (the pending state for ok, the current one for illegal), job id, and
-- '1' when an Idempotency-Key matched an earlier request (its answer is repeated,
-- nothing new is done), else '0'.
local P, now_ms, at, idem_ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local out = {}

local function submit_one(cid, jid, action, pending, allowed, allowed_absent, du, vu, cb_url, cb_key, cb_host, tq, rnd, f0, f1)
  local rec = load(P, cid)
  local cur = rec and rec.s
  if cur == nil then
    if allowed_absent ~= '1' then return 'illegal', '' end
  else
    local ok = false
    for s in string.gmatch(allowed, '[^,]+') do
      if s == cur then ok = true end
    end
    if not ok then return 'illegal', cur end
  end
  -- The published version: what a delete removes and what a regen replaces.
  local pdu, pvu = '', ''
  local cv = rec and current_version(rec)
  if action == 'delete' then
    du = (cv and cv.d) or ''
    vu = (cv and cv.v) or ''
  end
  -- A regen under the published version's own uuids republishes that version (as
  -- `testamur reconcile --apply` asks when its files are gone): nothing to remove.
  local republish = action == 'regen' and cv and cv.d == du and cv.v == vu
  if action == 'regen' and not republish then
    pdu = (cv and cv.d) or ''
    pvu = (cv and cv.v) or ''
  end
  if not rec then rec = {id = cid, f = {}} end
  if f1 >= f0 then
    local nf = {}
    for k, v in pairs(rec.f) do nf[k] = v end
    for i = f0, f1, 2 do
      if ARGV[i + 1] == '' then nf[ARGV[i]] = nil else nf[ARGV[i]] = ARGV[i + 1] end
    end
    -- The published versions keep what they printed.
    keep_printed(rec, nf)
    rec.f = nf
  end
  rec.s, rec.u, rec.j, rec.a, rec.e = pending, at, jid, 0, nil
  if cur == nil then
    -- Listing indexes (GET /v1/certificates): every certificate, and per course.
    redis.call('ZADD', P .. 'certs', 0, cid)
    redis.call('ZADD', P .. 'course:' .. fval(rec.f, 'course_id'), 0, cid)
  end
  if republish then
    hist(rec, pending, at, 'republish requested (the published files were missing)')
  else
    hist(rec, pending, at, action .. ' requested')
  end
  move_state(P, cid, cur, pending)
  save(P, rec)
  local jk = P .. 'job:' .. jid
  -- Empty fields are left out (the scripts read a missing field as empty).
  -- requested_at stays for every attempt (enqueued_at moves on a requeue): the
  -- time the workserver signs with, so that every attempt signs the same bytes;
  -- a republished version keeps its first request's (complete.lua `rq`), so its
  -- signatures and credential come out the same as the files it replaces.
  local requested_at = (republish and cv.rq) or now_ms
  redis.call('HSET', jk, 'cert_id', cid, 'action', action, 'attempt', 0, 'status', 'queued',
    'enqueued_at', now_ms, 'requested_at', requested_at)
  if du ~= '' then redis.call('HSET', jk, 'download_uuid', du, 'verify_uuid', vu) end
  -- The status list index of the version this job publishes: given here, once,
  -- so that every attempt issues the same credential; a republished version
  -- keeps its own.
  if action ~= 'delete' then
    local si = republish and cv.si
    if not si then si = status_alloc(P, rnd, now_ms) end
    redis.call('HSET', jk, 'si', si)
  end
  if pdu ~= '' then redis.call('HSET', jk, 'previous_download_uuid', pdu, 'previous_verify_uuid', pvu) end
  if cb_url ~= '' then
    redis.call('HSET', jk, 'callback_url', cb_url, 'callback_key', cb_key, 'callback_host', cb_host)
  end
  if tq ~= '' then redis.call('HSET', jk, 'tq', tq) end
  local queue = P .. 'queue'
  if tq ~= '' then
    redis.call('SADD', P .. 'tqueues', tq)
    queue = P .. 'queue:' .. tq
  end
  redis.call('LPUSH', queue, jid)
  return 'ok', pending
end

local i = 5
while i <= #ARGV do
  local cid, jid, action, pending = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local allowed, absent, du, vu = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  local cb_url, cb_key, cb_host, tq = ARGV[i + 8], ARGV[i + 9], ARGV[i + 10], ARGV[i + 11]
  local ikey, ihash, rnd = ARGV[i + 12], ARGV[i + 13], ARGV[i + 14]
  local n = tonumber(ARGV[i + 15])
  local f0 = i + 16
  i = f0 + 2 * n
  local replayed = false
  local ik = P .. 'idem:' .. ikey
  if ikey ~= '' then
    local prev = redis.call('HMGET', ik, 'hash', 'outcome', 'state', 'job_id')
    if prev[1] then
      replayed = true
      if prev[1] ~= ihash then
        table.insert(out, 'idem_mismatch'); table.insert(out, ''); table.insert(out, ''); table.insert(out, '1')
      else
        table.insert(out, prev[2]); table.insert(out, prev[3]); table.insert(out, prev[4]); table.insert(out, '1')
      end
    end
  end
  if not replayed then
    local outcome, state = submit_one(cid, jid, action, pending, allowed, absent, du, vu, cb_url, cb_key, cb_host, tq, rnd, f0, i - 1)
    local rjid = ''
    if outcome == 'ok' then rjid = jid end
    table.insert(out, outcome); table.insert(out, state); table.insert(out, rjid); table.insert(out, '0')
    if ikey ~= '' then
      redis.call('HSET', ik, 'hash', ihash, 'outcome', outcome, 'state', state, 'job_id', rjid)
      redis.call('EXPIRE', ik, tonumber(idem_ttl))
    end
  end
end
return out
