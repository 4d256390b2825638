-- account_key.lua -- the API key the newest messages of an account carry (SECRET: never logged).
--
-- KEYS[1]  the account hash aw:{<account>}:acct
-- ARGV     1 the key, 2 the version of the message that carried it (timestamp_ms)
-- Reply    1 when the key changed (a pause for a refused key ends: the leader tries the new
--          one at once), 0 when it was already stored or an equal or newer message's key is
--
-- The newest message wins, so a lagging replica (or a redelivery) never writes an old key
-- back. Two keys of the same version: the greater one, so every replica agrees.
local ver = tonumber(ARGV[2])
if ARGV[1] == '' or not ver or ver < 0 then return redis.error_reply('INVALID key or version') end
local cur = redis.call('HMGET', KEYS[1], F_ACCT_API_KEY, F_ACCT_API_KEY_VERSION)
if cur[1] == ARGV[1] then
  if ver > (tonumber(cur[2]) or -1) then redis.call('HSET', KEYS[1], F_ACCT_API_KEY_VERSION, ARGV[2]) end
  return 0
end
local have = tonumber(cur[2]) or -1
if cur[1] and (have > ver or (have == ver and cur[1] > ARGV[1])) then return 0 end
redis.call('HSET', KEYS[1], F_ACCT_API_KEY, ARGV[1], F_ACCT_API_KEY_VERSION, ARGV[2])
redis.call('HDEL', KEYS[1], F_ACCT_PAUSED_UNTIL, F_ACCT_PAUSED_STATUS)
return 1
