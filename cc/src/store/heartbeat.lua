-- ARGV: P, ws, now_ms. Returns -1 for an unknown workserver, else the drain flag (0/1).
local P, ws, now_ms = ARGV[1], ARGV[2], ARGV[3]
local wk = P .. 'ws:' .. ws
if redis.call('EXISTS', wk) == 0 then return -1 end
redis.call('HSET', wk, 'last_heartbeat', now_ms)
return tonumber(hget(wk, 'draining') or '0')
