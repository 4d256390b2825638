#!lua flags=allow-oom
-- profile_id.lua -- caches (or forgets) a user's Klaviyo profile id, learnt by a removal lookup.
--
-- KEYS[1]  the user's hash aw:{<account>}:u:<email>
-- ARGV     1 profile id ('' forgets it: Klaviyo answered 404)
-- Reply    1 when written, 0 when the user has no state (expired: nothing is cached for it, so
--          the cache never outlives the user's retention)
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '' then redis.call('HDEL', KEYS[1], F_USER_PROFILE_ID)
else redis.call('HSET', KEYS[1], F_USER_PROFILE_ID, ARGV[1]) end
return 1
