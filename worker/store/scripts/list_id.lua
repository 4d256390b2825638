#!lua flags=allow-oom
-- list_id.lua -- records (or forgets) the Klaviyo list an audience stream uploads to, found or
-- created by name.
--
-- KEYS[1]  the audience's meta hash aw:{<account>}:a:<audience>
-- ARGV     1 list id ('' forgets it: the list is gone)
-- Reply    1
--
-- allow-oom: recorded during a flush, which is how a full Redis gets room again (see lib.lua).
if ARGV[1] == '' then redis.call('HDEL', KEYS[1], F_META_KLAVIYO_LIST_ID)
else redis.call('HSET', KEYS[1], F_META_KLAVIYO_LIST_ID, ARGV[1]) end
return 1
