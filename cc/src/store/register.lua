-- Register a workserver. A previous registration under the same name is dropped:
-- its token stops working and its leases go back to the queue.
-- ARGV: P, name, ws, token_hash, capacity, version, now_ms, at. Returns the number of released jobs.
local P, name, ws, th, cap, version, now_ms, at = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local released = 0
local old = redis.call('GET', P .. 'wsname:' .. name)
if old then released = drop_ws(P, old, now_ms) end
redis.call('HSET', P .. 'ws:' .. ws, 'ws_id', ws, 'name', name, 'token_hash', th, 'capacity', cap,
  'version', version, 'registered_at', at, 'last_heartbeat', now_ms, 'completed', 0, 'failed', 0, 'draining', 0)
redis.call('SET', P .. 'tok:' .. th, ws)
redis.call('SET', P .. 'wsname:' .. name, ws)
redis.call('SADD', P .. 'workservers', ws)
return released
