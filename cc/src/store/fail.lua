-- A workserver reports a failed attempt. ARGV: P, jid, lease, ws, reason, retryable ('1'/'0'),
-- max_attempts, now_ms, at. Returns 'requeued', 'error' or 'lost'.
local P, jid, lease, ws = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if not fenced(P, jid, lease, ws) then return 'lost' end
return attempt_failed(P, jid, ARGV[5], ARGV[6] == '1', tonumber(ARGV[7]), ARGV[8], ARGV[9])
