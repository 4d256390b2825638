-- account_key.lua -- the API key the newest messages of an account carry (SECRET: never logged).
--
-- KEYS[1]  the account hash aw:{<account>}:acct
-- ARGV     1 the key
-- Reply    1 when the key changed (a pause for a refused key ends: the leader tries the new
--          one at once), 0 when it was already stored
if ARGV[1] == '' then return redis.error_reply('INVALID empty key') end
if redis.call('HGET', KEYS[1], F_ACCT_API_KEY) == ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], F_ACCT_API_KEY, ARGV[1])
redis.call('HDEL', KEYS[1], F_ACCT_PAUSED_UNTIL, F_ACCT_PAUSED_STATUS)
return 1
