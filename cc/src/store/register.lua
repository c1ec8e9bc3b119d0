-- Register a workserver. A previous registration under the same name is dropped:
-- its token stops working and its leases go back to the queue, counted as failed
-- attempts (that process restarted or was replaced without deregistering, maybe
-- killed by the very job it held) unless it is the same process registering again.
-- Two live processes configured with the same name are detected: a process whose
-- own registration was replaced by a process that is still alive (heartbeats) is
-- refused instead of knocking the other out in turn; the name is marked in status.
-- ARGV: P, name, ws, token_hash, capacity, version, at, instance, peer address,
-- max_attempts, alive_ms (a workserver heard from within this is alive), what the LMS
-- is told when a workserver is lost, whether it publishes status lists ('1'/'0'), its
-- catalogue's digest ('' = none sent) and JSON, then template/version pairs of the catalogue.
-- Returns {'ok', released} or {'conflict', other instance's address, its registered_at}.
local P, name, ws, th, cap, version, at = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local inst, addr, max_attempts, alive_ms = ARGV[8], ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11])
local lost, status_lists, digest, catalog = ARGV[12], ARGV[13], ARGV[14], ARGV[15]
local now = now_ms()
local released = 0
local replaced_instance = ''
local old = redis.call('GET', P .. 'wsname:' .. name)
if old then
  local ok = P .. 'ws:' .. old
  local old_inst = hget(ok, 'instance') or ''
  local alive = now - tonumber(hget(ok, 'last_heartbeat') or '0') <= alive_ms
  if inst ~= '' and old_inst ~= '' and old_inst ~= inst and alive and hget(ok, 'replaced_instance') == inst then
    -- `old` took this name from us while we were running, and it is alive too.
    local msg = 'two workservers run under the name ' .. name .. ': ' .. (hget(ok, 'registered_from') or '?') ..
      ' and ' .. addr .. ' (give each its own name in ws.conf)'
    redis.call('HSET', ok, 'name_conflict', msg)
    record_error(P, at, '', '', msg)
    return {'conflict', hget(ok, 'registered_from') or '', hget(ok, 'registered_at') or ''}
  end
  local reason = nil
  if old_inst == '' or old_inst ~= inst then
    reason = fault('workserver ' .. name .. ' registered again (restarted without deregistering: crashed or killed?) while holding this job',
      lost, 'workserver_lost')
    replaced_instance = old_inst
  end
  released = drop_ws(P, old, now, reason, max_attempts, at)
end
-- Its catalogue (content-addressed, shared by workservers with equal templates);
-- `catalog:current` is the newest registration's, used while no workserver is alive.
if digest ~= '' then
  redis.call('SET', P .. 'catalog:' .. digest, catalog)
  redis.call('SET', P .. 'catalog:current', digest)
  for i = 16, #ARGV, 2 do
    redis.call('HSET', P .. 'ws:' .. ws .. ':tpl', ARGV[i], ARGV[i + 1])
    redis.call('SADD', P .. 'tplws:' .. ARGV[i] .. '@' .. ARGV[i + 1], ws)
  end
end
redis.call('HSET', P .. 'ws:' .. ws, 'catalog', digest, 'registered_ms', now, 'ws_id', ws, 'name', name, 'token_hash', th, 'capacity', cap,
  'version', version, 'registered_at', at, 'last_heartbeat', now, 'completed', 0, 'failed', 0, 'draining', 0,
  'instance', inst, 'replaced_instance', replaced_instance, 'registered_from', addr,
  'status_lists', status_lists)
redis.call('SET', P .. 'tok:' .. th, ws)
redis.call('SET', P .. 'wsname:' .. name, ws)
redis.call('SADD', P .. 'workservers', ws)
redis.call('ZADD', P .. 'wsbeat', now, ws)
return {'ok', released}
