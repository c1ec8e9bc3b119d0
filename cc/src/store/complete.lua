-- Complete a leased job. ARGV: P, jid, lease, ws, now_ms, at, success map
-- ("add:downloadable,regen:downloadable,delete:deleted"), du, vu, download_url,
-- verify_url, signature_url, sha256, bucket key, bucket ttl, key fingerprint.
-- Returns {'ok', new_state, workserver name}, {'lost', ''}, or {'mismatch', du, vu} when an
-- add or regen reports other uuids than the job's own (nothing changes then): a
-- workserver publishes where the job says, never where it likes.
local P, jid, lease, ws, now_ms, at, map = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if not fenced(P, jid, lease, ws) then return {'lost', ''} end
local jk = P .. 'job:' .. jid
-- Everything of the job this script needs, in one read.
local j = redis.call('HMGET', jk, 'cert_id', 'action', 'download_uuid', 'verify_uuid',
  'previous_verify_uuid', 'callback_url', 'callback_key', 'callback_host', 'drawn_version')
local cid, action = j[1], j[2]
local target
for a, s in string.gmatch(map, '(%w+):(%w+)') do
  if a == action then target = s end
end
if action ~= 'delete' then
  local du, vu = j[3] or '', j[4] or ''
  if du == '' or ARGV[8] ~= du or ARGV[9] ~= vu then return {'mismatch', du, vu} end
end
local rec = load(P, cid)
if not rec then
  return redis.error_reply('certificate ' .. tostring(cid) .. ' of job ' .. jid .. ' has no record')
end
local cur = rec.s
local replaced = j[5] or ''
local cb_url, cb_key, cb_host = j[6] or nil, j[7] or nil, j[8] or nil
-- The version of the template that drew it (set at lease; '' when unpinned).
local drawn_version = j[9] or ''
redis.call('ZREM', P .. 'leases', jid)
redis.call('SREM', P .. 'ws:' .. ws .. ':jobs', jid)
redis.call('HINCRBY', P .. 'ws:' .. ws, 'completed', 1)
redis.call('DEL', jk)
local detail
-- The public verification record of every version (GET /verify/{verify_uuid}):
-- valid when published, superseded when a regen replaces it, revoked on delete.
if action == 'delete' then
  local cv = current_version(rec)
  detail = 'removed download_uuid=' .. ((cv and cv.d ~= '' and cv.d) or '-')
  if rec.c then rec.g = 1 end
  rec.sha, rec.t, rec.tv = nil, nil, nil
  for _, v in ipairs(rec.vs or {}) do v.st, v.ra, v.u = 'r', at, nil end
else
  rec.vs = rec.vs or {}
  if replaced ~= '' and replaced ~= ARGV[9] then
    for _, v in ipairs(rec.vs) do
      if v.v == replaced then v.st, v.sa, v.u = 's', at, (v.ra and at) or nil end
    end
  end
  -- With the template this version was drawn with (the job's, pinned at submit),
  -- and the version the workserver that leased it has. What it printed is the
  -- learner fields as they are now.
  -- Its publication time is the history entry's that names it (record.lua hist).
  local ver = {v = ARGV[9], d = ARGV[8], k = key_ref(P, ARGV[16])}
  set_urls(P, ver, ARGV[10], ARGV[11], ARGV[12])
  rec.vs[#rec.vs + 1] = ver
  rec.c, rec.g = #rec.vs, nil
  rec.sha = (ARGV[13] ~= '' and ARGV[13]) or nil
  rec.t = (rec.f.template ~= '' and rec.f.template) or nil
  rec.tv = (drawn_version ~= '' and drawn_version) or nil
  detail = #rec.vs
  if ARGV[9] ~= '' then redis.call('SET', P .. 'v:' .. ARGV[9], cid) end
end
rec.s, rec.u, rec.j, rec.e = target, at, nil, nil
hist(rec, target, at, detail)
move_state(P, cid, cur, target)
save(P, rec)
queue_callback(P, jid, cb_url, cb_key, cb_host, rec, action, target, now_ms, at)
redis.call('INCR', ARGV[14])
redis.call('EXPIRE', ARGV[14], tonumber(ARGV[15]))
return {'ok', target, hget(P .. 'ws:' .. ws, 'name') or ws}
