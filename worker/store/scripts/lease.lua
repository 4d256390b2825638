#!lua flags=allow-oom
-- lease.lua -- the leader lease (DESIGN §5).
--
-- KEYS     1 aw:{leader}:lease, 2 aw:{leader}:epoch
-- ARGV     1 'acquire' | 'renew' | 'release', 2 token (the replica's random string), 3 ttl ms
-- Reply    {held 0|1, epoch}
--
-- acquire: set if absent (a new tenure: epoch incremented) or extend when the token already
-- holds it (same epoch); renew and release act only when the token matches.
local op, token, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
if token == '' or not ttl or ttl < 1 or KEYS[1] ~= K_LEASE or KEYS[2] ~= K_EPOCH then
  return redis.error_reply('INVALID lease arguments')
end
local cur = redis.call('GET', KEYS[1])
local epoch = tonumber(redis.call('GET', KEYS[2]) or '0')
if op == 'acquire' then
  if not cur then
    redis.call('SET', KEYS[1], token, 'PX', ttl)
    return {1, redis.call('INCR', KEYS[2])}
  end
  if cur == token then redis.call('PEXPIRE', KEYS[1], ttl) return {1, epoch} end
  return {0, epoch}
elseif op == 'renew' then
  if cur == token then redis.call('PEXPIRE', KEYS[1], ttl) return {1, epoch} end
  return {0, epoch}
elseif op == 'release' then
  if cur == token then redis.call('DEL', KEYS[1]) end
  return {0, epoch}
end
return redis.error_reply('INVALID lease op')
