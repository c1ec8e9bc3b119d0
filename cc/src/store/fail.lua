-- A workserver reports a failed attempt. ARGV: P, jid, lease, ws, reason for operators,
-- reason for the LMS, the LMS's error code, retryable ('1'/'0'), max_attempts, now_ms, at.
-- Returns 'requeued', 'error' or 'lost'.
local P, jid, lease, ws = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if not fenced(P, jid, lease, ws) then return 'lost' end
return attempt_failed(P, jid, fault(ARGV[5], ARGV[6], ARGV[7]), ARGV[8] == '1', tonumber(ARGV[9]), ARGV[10], ARGV[11])
