-- A workserver leaves. ARGV: P, ws, now_ms. Returns the number of released jobs, or -1 if unknown.
local P, ws, now_ms = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', P .. 'ws:' .. ws) == 0 then return -1 end
return drop_ws(P, ws, now_ms)
