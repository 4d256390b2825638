#!lua flags=allow-oom
-- list_count.lua -- counts the account's POST /api/lists calls of a UTC day (Klaviyo allows 150;
-- the leader counts one before creating a list and takes it back when the call failed).
--
-- KEYS[1]  aw:{<account>}:lc:<unix day>
-- ARGV     1 delta (+1 / -1), 2 time to live (s)
-- Reply    the count after the change
--
-- allow-oom: the leader creates a list before the first flush of an audience, and that flush is
-- how a full Redis gets room again (see lib.lua).
local delta, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
if not delta or delta % 1 ~= 0 or not ttl or ttl < 1 then
  return redis.error_reply('INVALID list count arguments')
end
local n = redis.call('INCRBY', KEYS[1], delta)
redis.call('EXPIRE', KEYS[1], ttl)
return n
