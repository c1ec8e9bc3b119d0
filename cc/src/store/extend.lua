-- Extend a lease by ttl_ms from now (Redis's clock). ARGV: P, jid, lease, ws, ttl_ms.
-- Returns the new expiry (ms), or 0 when the lease was lost.
local P, jid, lease, ws, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if not fenced(P, jid, lease, ws) then return 0 end
local exp = now_ms() + ttl
redis.call('HSET', P .. 'job:' .. jid, 'lease_exp', exp)
redis.call('ZADD', P .. 'leases', exp, jid)
return exp
