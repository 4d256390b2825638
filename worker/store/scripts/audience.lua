-- audience.lua -- an audience subscription message: connected or changed ('upsert') or
-- disconnected ('remove') (DESIGN §1, §3).
--
-- KEYS[1]  the audience's meta hash aw:{<account>}:a:<audience>
-- ARGV     1 account id, 2 audience id, 3 'upsert' | 'remove', 4 timestamp_ms, 5 lower-case
--          message id, 6 now (unix ms), 7 AW_FLUSH_MAX_QUEUE, 8 max age ms, 9 audience name or '',
--          10 listId or '' (upsert: '' clears it, the list is then found or created by name)
-- Reply    {status, pending count, account earliest due, due seq, changed};
--          status 'applied' | 'stale' (not newer than the last subscription message)
--
-- remove: the audience is disabled as of this version; its pending and in-flight entries at or
-- before it are dropped by take, a chunk at a time (a removal never blocks Redis however many
-- changes wait); the Klaviyo list is kept; the users' versions are kept (retention).
local meta = KEYS[1]
local acct, aud, op, ts, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now, maxq, maxage = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
if acct == '' or aud == '' or (op ~= 'upsert' and op ~= 'remove') or not is_decimal(ts)
   or not now or not maxq or maxq < 1 or not maxage
   or meta ~= acct_key(acct, K_AUDIENCE .. aud) then
  return redis.error_reply('INVALID audience arguments')
end
local due = acct_key(acct, K_DUE)
local function reply(status)
  local min, seq, changed = account_due(acct)
  return {status, redis.call('HLEN', meta .. K_PENDING), min, seq, changed}
end
local m = redis.call('HMGET', meta, F_META_SUB_VERSION, F_META_CFG_VERSION, F_META_ACCOUNT_ID)
if vercmp(ts, id, m[1]) <= 0 then return reply('stale') end
local v = ts .. ':' .. id
redis.call('HSET', meta, F_META_SUB_VERSION, v, F_META_ACCOUNT_ID, acct, F_META_AUDIENCE_ID, aud)
if not m[3] then redis.call('SADD', acct_key(acct, K_AUDIENCES), aud) end
if op == 'remove' then
  redis.call('HSET', meta, F_META_STATE, 'disabled', F_META_DISABLED_VERSION, ts)
else
  -- newer than every remove (each remove set sub_version), so it re-enables
  redis.call('HSET', meta, F_META_STATE, 'active')
  if vercmp(ts, id, m[2]) > 0 then
    redis.call('HSET', meta, F_META_CFG_VERSION, v)
    if ARGV[9] ~= '' then redis.call('HSET', meta, F_META_NAME, ARGV[9]) end
    if ARGV[10] ~= '' then redis.call('HSET', meta, F_META_LIST_ID, ARGV[10])
    else redis.call('HDEL', meta, F_META_LIST_ID) end
  end
end
set_due(due, F_DUE_AUDIENCE .. aud, stream_due(meta, now, maxq, maxage))
return reply('applied')
