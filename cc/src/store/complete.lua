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
local ck = P .. 'cert:' .. cid
local cur = hget(ck, 'state')
local replaced = j[5] or ''
local cb_url, cb_key, cb_host = j[6] or nil, j[7] or nil, j[8] or nil
local versions = ck .. ':versions'
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
  redis.call('HDEL', ck, 'download_url', 'verify_url', 'signature_url', 'sha256', 'drawn_template', 'drawn_template_version')
  detail = 'removed download_uuid=' .. (hget(ck, 'download_uuid') or '-')
  for _, v in ipairs(redis.call('SMEMBERS', versions)) do
    redis.call('HSET', P .. 'verify:' .. v, 'status', 'revoked', 'revoked_at', at, 'updated_at', at)
  end
else
  local c = redis.call('HMGET', ck, 'template', 'name', 'course_id', 'course_name', 'org', 'issued_date')
  -- With the template this version was drawn with (the job's, pinned at submit),
  -- and the version the workserver that leased it has.
  redis.call('HSET', ck, 'download_uuid', ARGV[8], 'verify_uuid', ARGV[9], 'download_url', ARGV[10],
    'verify_url', ARGV[11], 'signature_url', ARGV[12], 'sha256', ARGV[13],
    'drawn_template', c[1] or '', 'drawn_template_version', drawn_version)
  detail = 'published download_uuid=' .. ARGV[8] .. ' verify_uuid=' .. ARGV[9]
  if ARGV[9] ~= '' then
    local vk = P .. 'verify:' .. ARGV[9]
    redis.call('HSET', vk, 'cert_id', cid, 'status', 'valid', 'published_at', at, 'updated_at', at,
      'verify_url', ARGV[11], 'download_url', ARGV[10], 'signature_url', ARGV[12],
      'key_fingerprint', ARGV[16] or '', 'name', c[2] or '', 'course_id', c[3] or '',
      'course_name', c[4] or '', 'org', c[5] or '', 'issued_date', c[6] or '')
    redis.call('SADD', versions, ARGV[9])
  end
  if replaced ~= '' and replaced ~= ARGV[9] then
    redis.call('HSET', P .. 'verify:' .. replaced, 'status', 'superseded', 'superseded_at', at,
      'superseded_by', ARGV[9], 'updated_at', at)
  end
end
redis.call('HSET', ck, 'state', target, 'updated_at', at)
redis.call('HDEL', ck, 'job_id', 'error_reason', 'error_code', 'error_detail')
history(P, cid, target, at, detail)
move_state(P, cid, cur, target)
queue_callback(P, jid, cb_url, cb_key, cb_host, cid, action, target, now_ms, at)
redis.call('INCR', ARGV[14])
redis.call('EXPIRE', ARGV[14], tonumber(ARGV[15]))
return {'ok', target, hget(P .. 'ws:' .. ws, 'name') or ws}
