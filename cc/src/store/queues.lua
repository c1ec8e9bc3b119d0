-- The queues at a glance (status, dashboard, metrics): jobs waiting in all of
-- them, when the longest-waiting was queued, and the template queues no live,
-- non-draining workserver can lease from (none has the template in any version:
-- those jobs wait until one that has it registers).
-- ARGV: P, alive_ms. Returns {depth, oldest enqueued_at ms or '', then pairs of
-- '{template}@{version}', jobs}.
local P, alive_ms = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
local keys = {P .. 'queue'}
local tqs = redis.call('SMEMBERS', P .. 'tqueues')
for _, tq in ipairs(tqs) do keys[#keys + 1] = P .. 'queue:' .. tq end
local depth, oldest = 0, nil
local lens = {}
for i, k in ipairs(keys) do
  local n = redis.call('LLEN', k)
  lens[i] = n
  depth = depth + n
  if n > 0 then
    local at = tonumber(redis.call('HGET', P .. 'job:' .. redis.call('LINDEX', k, -1), 'enqueued_at') or '')
    if at and (not oldest or at < oldest) then oldest = at end
  end
end
local live = {}
for _, ws in ipairs(redis.call('SMEMBERS', P .. 'workservers')) do
  if serving(P, ws, now, alive_ms) then live[#live + 1] = ws end
end
local out = {depth, oldest and tostring(oldest) or ''}
for i, tq in ipairs(tqs) do
  local n = lens[i + 1]
  if n > 0 then
    local template = string.match(tq, '^(.*)@[^@]*$') or tq
    local can = false
    for _, ws in ipairs(live) do
      if redis.call('HEXISTS', P .. 'ws:' .. ws .. ':tpl', template) == 1 then can = true; break end
    end
    if not can then
      out[#out + 1] = tq
      out[#out + 1] = n
    end
  end
end
return out
