-- Mark a workserver as draining (it leases nothing more; its heartbeat reply says
-- drain). ARGV: P, ws. Returns its name, or '' for an unknown workserver.
local wk = ARGV[1] .. 'ws:' .. ARGV[2]
if redis.call('EXISTS', wk) == 0 then return '' end
redis.call('HSET', wk, 'draining', 1)
return redis.call('HGET', wk, 'name') or ARGV[2]
