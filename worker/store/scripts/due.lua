#!lua flags=allow-oom
-- due.lua -- the global due index: one entry per account, its earliest due stream.
--
-- KEYS     1 aw:due, 2 {aw:due}:seq, 3 {aw:due}:accounts (one slot: the hash tag is 'aw:due')
-- ARGV     1 account id, 2 score (-1 = nothing due: remove), 3 the account's due seq
-- Reply    1 when written, 0 when an equal-or-newer seq was there already
--
-- The per-account index lives in the account's slot and is updated atomically by every
-- script; this global one is another slot, so clients write it after the account script, in
-- any order and possibly twice: the seq makes it converge to the newest account state.
local acct, score, seq = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if acct == '' or not score or not seq or KEYS[1] ~= K_GLOBAL_DUE
   or KEYS[2] ~= K_GLOBAL_DUE_SEQ or KEYS[3] ~= K_GLOBAL_ACCOUNTS then
  return redis.error_reply('INVALID due arguments')
end
redis.call('SADD', KEYS[3], acct)
local cur = tonumber(redis.call('HGET', KEYS[2], acct) or '-1')
if seq < cur then return 0 end
redis.call('HSET', KEYS[2], acct, ARGV[3])
if score < 0 then redis.call('ZREM', KEYS[1], acct)
else redis.call('ZADD', KEYS[1], score, acct) end
return 1
