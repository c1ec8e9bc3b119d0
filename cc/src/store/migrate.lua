-- Migrate certificates written in the earlier format into records (record.lua).
-- ARGV: P, mode, ids...: mode 'cert' takes cert ids, 'verify' verify uuids (the
-- certificate that published each). Returns, per id, the certificate's record
-- (JSON) or '' when there is none; mode 'bulk' takes cert ids and returns how many
-- were moved (testamur migrate). Safe to run from several CCs at once, and again:
-- each certificate moves in one atomic step, and one already moved is only read.
local P, mode = ARGV[1], ARGV[2]
local out = {}
if mode == 'bulk' then
  local n = 0
  for i = 3, #ARGV do
    if redis.call('EXISTS', cert_key(P, ARGV[i])) == 0 and migrate_cert(P, ARGV[i]) then n = n + 1 end
  end
  return n
end
for i = 3, #ARGV do
  local cid = ARGV[i]
  if mode == 'verify' then
    cid = redis.call('GET', P .. 'v:' .. ARGV[i])
    if not cid then cid = redis.call('HGET', P .. 'verify:' .. ARGV[i], 'cert_id') end
  end
  local rec = cid and load(P, cid)
  if rec then out[#out + 1] = cjson.encode(rec) else out[#out + 1] = '' end
end
return out
