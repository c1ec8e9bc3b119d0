-- A workserver leaves. ARGV: P, ws. Returns the number of released jobs, or -1 if unknown.
-- Its jobs go back to the queue without counting an attempt.
local P, ws = ARGV[1], ARGV[2]
if redis.call('EXISTS', P .. 'ws:' .. ws) == 0 then return -1 end
return drop_ws(P, ws, now_ms())
