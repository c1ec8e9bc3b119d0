-- Extend a lease. ARGV: P, jid, lease, ws, exp_ms. Returns 1, or 0 when the lease was lost.
local P, jid, lease, ws, exp = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if not fenced(P, jid, lease, ws) then return 0 end
redis.call('HSET', P .. 'job:' .. jid, 'lease_exp', exp)
redis.call('ZADD', P .. 'leases', exp, jid)
return 1
