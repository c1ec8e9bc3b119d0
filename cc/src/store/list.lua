-- One page of certificates from a listing index (a sorted set of cert ids, all
-- score 0, walked in lexical order so a cursor - the last id returned - resumes
-- exactly after it even while certificates are added).
-- ARGV: P, index key (without P), cursor ('' = start), limit, state filter ('' = any),
-- scan budget (ids examined at most). Returns {next_cursor or '', the record (JSON,
-- record.lua) of each certificate...}.
local P, idx, cursor, limit, state, budget = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local key = P .. idx
local min = '-'
if cursor ~= '' then min = '(' .. cursor end
local out = {''}
local state_key = '"s":' .. cjson.encode(state)
local found, scanned, last = 0, 0, ''
while found < limit and scanned < budget do
  local ids = redis.call('ZRANGEBYLEX', key, min, '+', 'LIMIT', 0, math.min(limit - found + 16, budget - scanned))
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    scanned = scanned + 1
    last = id
    local raw = load_stored(P, id)
    -- The record's state without decoding it: `"s":"<state>"` occurs in a stored
    -- record only as its state (a quote inside a value is escaped, and the one
    -- other key `s`, a signature URL, is never a bare state name).
    local match = raw and (state == '' or string.find(raw, state_key, 1, true) ~= nil)
    if match then
      table.insert(out, with_id(id, raw))
      found = found + 1
      if found >= limit then break end
    end
  end
  min = '(' .. last
end
if last ~= '' and #redis.call('ZRANGEBYLEX', key, '(' .. last, '+', 'LIMIT', 0, 1) > 0 then
  out[1] = last
end
return out
