-- Complete leased jobs, one or many per call (each on its own: one that is lost or
-- mismatched changes nothing and does not stop the others).
-- ARGV: P, now_ms, at, success map ("add:downloadable,regen:downloadable,delete:deleted"),
-- bucket key, bucket ttl, then per job: jid, lease, ws, du, vu, download_url,
-- verify_url, signature_url, sha256, key fingerprint, credential_url, the PDF
-- signing certificate's SHA-256 ('' for none).
-- Returns three strings per job: 'ok', the new state, the workserver's name; or
-- 'published', the list, the workserver's name for a status list's publication
-- (its result has no uuids or URLs: the list's place is the workserver's layout); or 'lost',
-- '', ''; or 'corrupt', what is wrong, ''; or 'mismatch', du, vu when an add or regen reports other uuids than the
-- job's own (nothing changes then): a workserver publishes where the job says,
-- never where it likes.
local P, now_ms, at, map, bucket, bucket_ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local targets = {}
for a, s in string.gmatch(map, '(%w+):(%w+)') do targets[a] = s end

local done_by = {}

-- A status list published as it was when leased (`sver`): recorded, and queued
-- again when it changed since.
local function status_published(jid, jk, ws)
  local list, sver = hget(jk, 'list') or '0', tonumber(hget(jk, 'sver') or '0') or 0
  local base = P .. 'status:' .. list
  redis.call('ZREM', P .. 'leases', jid)
  redis.call('SREM', P .. 'ws:' .. ws .. ':jobs', jid)
  redis.call('DEL', jk)
  if redis.call('GET', base .. ':job') == jid then redis.call('DEL', base .. ':job') end
  if sver >= (tonumber(redis.call('HGET', base .. ':pub', 'ver') or '0') or 0) then
    redis.call('HSET', base .. ':pub', 'ver', sver, 'at', at, 'ms', now_ms)
  end
  if (tonumber(redis.call('GET', base .. ':ver') or '0') or 0) > sver then status_enqueue(P, list, now_ms) end
  -- Not counted in the workserver's completed jobs (certificates).
  return 'published', list, hget(P .. 'ws:' .. ws, 'name') or ws
end

local function complete_one(jid, lease, ws, rdu, rvu, durl, vurl, surl, sha, fp, curl, pfp)
  if not fenced(P, jid, lease, ws) then return 'lost', '', '' end
  local jk = P .. 'job:' .. jid
  if hget(jk, 'kind') == 'status' then return status_published(jid, jk, ws) end
  -- Everything of the job this script needs, in one read.
  local j = redis.call('HMGET', jk, 'cert_id', 'action', 'download_uuid', 'verify_uuid',
    'previous_verify_uuid', 'callback_url', 'callback_key', 'callback_host', 'drawn_version', 'attempt', 'si', 'requested_at')
  local cid, action = j[1], j[2]
  local target = targets[action]
  if action ~= 'delete' then
    local du, vu = j[3] or '', j[4] or ''
    if du == '' or rdu ~= du or rvu ~= vu then return 'mismatch', du, vu end
  end
  local rec = load(P, cid)
  if not rec then
    return 'corrupt', 'certificate ' .. tostring(cid) .. ' of job ' .. jid .. ' has no record', ''
  end
  local cur = rec.s
  local replaced = j[5] or ''
  local cb_url, cb_key, cb_host = j[6] or nil, j[7] or nil, j[8] or nil
  -- The version of the template that drew it (set at lease; '' when unpinned).
  local drawn_version = j[9] or ''
  redis.call('ZREM', P .. 'leases', jid)
  redis.call('SREM', P .. 'ws:' .. ws .. ':jobs', jid)
  done_by[ws] = (done_by[ws] or 0) + 1
  redis.call('DEL', jk)
  local detail
  -- The public verification record of every version (GET /verify/{verify_uuid}):
  -- valid when published, superseded when a regen replaces it, revoked on delete.
  if action == 'delete' then
    local cv = current_version(rec)
    detail = 'removed download_uuid=' .. ((cv and cv.d ~= '' and cv.d) or '-')
    if rec.c then rec.g = 1 end
    rec.sha, rec.t, rec.tv = nil, nil, nil
    for _, v in ipairs(rec.vs or {}) do
      v.st, v.ra, v.u = 'r', at, nil
      status_revoke(P, v.si, now_ms)
    end
  else
    rec.vs = rec.vs or {}
    if replaced ~= '' and replaced ~= rvu then
      for _, v in ipairs(rec.vs) do
        if v.v == replaced then
          v.st, v.sa, v.u = 's', at, (v.ra and at) or nil
          -- A replaced version's credential no longer holds.
          status_revoke(P, v.si, now_ms)
        end
      end
    end
    -- With the template this version was drawn with (the job's, pinned at submit),
    -- and the version the workserver that leased it has. What it printed is the
    -- learner fields as they are now. Its publication time is the history entry's
    -- that names it (record.lua hist).
    -- A version published again under its own uuids (a republish) stays one
    -- version; its publication time stays its first history entry's.
    local k
    for i, v in ipairs(rec.vs) do
      if v.v == rvu and v.d == rdu then k = i end
    end
    local ver = (k and rec.vs[k]) or {v = rvu, d = rdu}
    ver.k = key_ref(P, fp)
    ver.pk = key_ref(P, pfp)
    ver.si = tonumber(j[11] or '')
    -- When its request was accepted, which its signatures state: a republish
    -- signs with the same time, so it publishes the same bytes (submit.lua).
    if not ver.rq then ver.rq = tonumber(j[12] or '') end
    set_urls(P, ver, durl, vurl, surl, curl)
    if not k then
      rec.vs[#rec.vs + 1] = ver
      k = #rec.vs
    end
    rec.c, rec.g = k, nil
    rec.sha = (sha ~= '' and sha) or nil
    rec.t = (rec.f.template ~= '' and rec.f.template) or nil
    rec.tv = (drawn_version ~= '' and drawn_version) or nil
    detail = k
    if rvu ~= '' then redis.call('SET', P .. 'v:' .. rvu, cid) end
  end
  rec.s, rec.u, rec.j, rec.e = target, at, nil, nil
  rec.a = tonumber(j[10] or '0') or 0
  hist(rec, target, at, detail)
  move_state(P, cid, cur, target)
  save(P, rec)
  queue_callback(P, jid, cb_url, cb_key, cb_host, rec, action, target, now_ms, at)
  return 'ok', target, ws
end

local out = {}
local n = 0
for i = 7, #ARGV, 12 do
  local a, b, c = complete_one(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4],
    ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8], ARGV[i + 9], ARGV[i + 10], ARGV[i + 11])
  if a == 'ok' then n = n + 1 end
  table.insert(out, a)
  table.insert(out, b)
  table.insert(out, c)
end
-- Per workserver and per bucket once per call, not per job.
local names = {}
for ws, k in pairs(done_by) do
  redis.call('HINCRBY', P .. 'ws:' .. ws, 'completed', k)
  names[ws] = hget(P .. 'ws:' .. ws, 'name') or ws
end
for i = 1, #out, 3 do
  if out[i] == 'ok' then out[i + 2] = names[out[i + 2]] end
end
if n > 0 then
  redis.call('INCRBY', bucket, n)
  redis.call('EXPIRE', bucket, tonumber(bucket_ttl))
end
return out
