#!lua flags=allow-oom
-- account_pause.lua -- records (or clears) that Klaviyo refused an account's API key: the
-- leader skips the account until then, and `status` shows it.
--
-- KEYS[1]  the account hash aw:{<account>}:acct
-- ARGV     1 paused until, unix ms ('' clears the pause)  2 the refusal's HTTP status
-- Reply    1
--
-- allow-oom: written during a flush, which is how a full Redis gets room again (see lib.lua).
if ARGV[1] == '' then
    redis.call('HDEL', KEYS[1], F_ACCT_PAUSED_UNTIL, F_ACCT_PAUSED_STATUS)
else
    redis.call('HSET', KEYS[1], F_ACCT_PAUSED_UNTIL, ARGV[1], F_ACCT_PAUSED_STATUS, ARGV[2])
end
return 1
