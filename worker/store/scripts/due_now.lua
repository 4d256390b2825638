#!lua flags=allow-oom
-- due_now.lua -- an operator asks for a stream's flush now (`aw-worker flush`): the stream is
-- drained (due now until nothing is pending), as if it had reached AW_FLUSH_MAX_QUEUE; the
-- leader takes it at its next scan.
--
-- KEYS[1]  the stream's meta hash: aw:{<account>}:a:<audience> or aw:{<account>}:p
-- ARGV     1 account id, 2 stream ('a:<audience>' | 'p'), 3 now (unix ms), 4 AW_FLUSH_MAX_QUEUE,
--          5 max age ms
-- Reply    {status, account earliest due, due seq, changed, pending, in flight}
--          status 'due' (due now) | 'empty' (nothing pending or in flight: nothing to flush)
-- Errors   INVALID for bad arguments or a stream the store does not know (nothing written).
--
-- allow-oom: flushing is how a full Redis gets room again (see lib.lua).
local meta = KEYS[1]
local acct, stream = ARGV[1], ARGV[2]
local now, maxq, maxage = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local profile = stream == F_DUE_PROFILES
local expect = profile and acct_key(acct, K_PROFILES)
               or acct_key(acct, K_AUDIENCE .. string.sub(stream, #F_DUE_AUDIENCE + 1))
if acct == '' or not now or not maxq or maxq < 1 or not maxage or meta ~= expect
   or (not profile and string.sub(stream, 1, #F_DUE_AUDIENCE) ~= F_DUE_AUDIENCE) then
  return redis.error_reply('INVALID due_now arguments')
end
if redis.call('EXISTS', meta) == 0 then return redis.error_reply('INVALID no such stream') end
local pending = redis.call('HLEN', meta .. K_PENDING)
local inflight = redis.call('HLEN', meta .. K_INFLIGHT)
if pending > 0 then redis.call('HSET', meta, F_META_DRAIN, '1') end
local score = stream_due(meta, now, maxq, maxage)
set_due(acct_key(acct, K_DUE), stream, score)
local min, seq, changed = account_due(acct)
return {score == 0 and 'due' or 'empty', min, seq, changed, pending, inflight}
