-- The catalogues submissions are checked against: those of the live workservers
-- (heard from within alive_ms, not draining), newest registration first, each
-- once; when none is live, the newest registration's (`catalog:current`), so that
-- a cluster whose workservers are all restarting still checks what it accepts.
-- ARGV: P, alive_ms. Returns a list of digests.
local P, alive_ms = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
local live = {}
for _, ws in ipairs(redis.call('SMEMBERS', P .. 'workservers')) do
  local h = redis.call('HMGET', P .. 'ws:' .. ws, 'catalog', 'registered_ms')
  if h[1] and h[1] ~= '' and serving(P, ws, now, alive_ms) then
    live[#live + 1] = {digest = h[1], at = tonumber(h[2] or '0') or 0}
  end
end
table.sort(live, function(a, b) return a.at > b.at end)
local out, seen = {}, {}
for _, l in ipairs(live) do
  if not seen[l.digest] then
    seen[l.digest] = true
    out[#out + 1] = l.digest
  end
end
if #out == 0 then
  local current = redis.call('GET', P .. 'catalog:current')
  if current then out[1] = current end
end
return out
