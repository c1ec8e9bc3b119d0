-- Mark a workserver as draining (it leases nothing more; its heartbeat reply says
-- drain). ARGV: P, ws. Returns 1, or 0 for an unknown workserver.
local wk = ARGV[1] .. 'ws:' .. ARGV[2]
if redis.call('EXISTS', wk) == 0 then return 0 end
redis.call('HSET', wk, 'draining', 1)
return 1
