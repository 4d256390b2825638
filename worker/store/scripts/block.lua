#!lua flags=allow-oom
-- block.lua -- a 429's Retry-After for an account, kept so a new leader honours it.
--
-- KEYS[1]  the account hash aw:{<account>}:acct
-- ARGV     1 blocked until (unix ms)
-- Reply    the block in force (the later of the stored and the given one)
local v = tonumber(ARGV[1])
if not v then return redis.error_reply('INVALID block time') end
local cur = tonumber(redis.call('HGET', KEYS[1], F_ACCT_BLOCK_UNTIL) or '0') or 0
if v > cur then
  redis.call('HSET', KEYS[1], F_ACCT_BLOCK_UNTIL, ARGV[1])
  return v
end
return cur
