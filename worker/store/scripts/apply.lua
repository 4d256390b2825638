-- apply.lua -- applies one change of one user of one audience (DESIGN §1, §3, §4).
--
-- KEYS[1]  the user's hash aw:{<account>}:u:<email> (routing: every key touched carries the
--          account's tag, so the script is atomic on one shard)
-- ARGV     1 account id, 2 audience id, 3 email (normalised), 4 timestamp_ms, 5 lower-case
--          message id, 6 now (unix ms), 7 AW_FLUSH_MAX_QUEUE, 8 max age ms, 9 retention s,
--          10 audience name or '', 11 listId or '', 12 action 'a' add | 'd' delete |
--          'u' attribute_update, 13 email consent '<ts>:<1|0>' or '', 14 sms consent or '',
--          15.. attribute pairs: path, JSON value ('null' unsets)
-- Reply    {status, audience pending count, account earliest due, due seq, changed}
--          status 'applied' | 'stale' (nothing newer) | 'disabled' (audience removed at or
--          after this change); changed = 1 when the account's earliest due moved.
--
-- Facets are versioned on their own: membership per (audience, user) by the message version;
-- each attribute path per (account, user) by the message version; each consent channel per
-- (account, user) by the consent's own timestamp. A facet changes only when the change is newer
-- than what set it last, so no arrival order, redelivery or audience can make a user regress.
-- Membership goes to the audience's stream; attributes and consent to the account's profile
-- stream, which sends only what changed (d:<path>) and consent newer than what Klaviyo accepted.
local ukey = KEYS[1]
local acct, aud, email, ts, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now, maxq, maxage, retention = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]),
                                     tonumber(ARGV[9])
local act, consent = ARGV[12], {email = ARGV[13], sms = ARGV[14]}
if acct == '' or aud == '' or email == '' or not is_decimal(ts) or not now or not maxq
   or maxq < 1 or not maxage or not retention or retention < 1
   or (act ~= 'a' and act ~= 'd' and act ~= 'u') or (#ARGV - 14) % 2 ~= 0
   or ukey ~= acct_key(acct, K_USER .. email) then
  return redis.error_reply('INVALID apply arguments')
end
for ch, c in pairs(consent) do
  if c ~= '' and not string.match(c, '^%d+:[01]$') then
    return redis.error_reply('INVALID consent ' .. ch)
  end
end
for i = 15, #ARGV, 2 do
  if ARGV[i] == '' then return redis.error_reply('INVALID empty attribute path') end
end

local meta = acct_key(acct, K_AUDIENCE .. aud)
local due = acct_key(acct, K_DUE)
local m = redis.call('HMGET', meta, F_META_STATE, F_META_DISABLED_VERSION, F_META_CFG_VERSION,
                     F_META_ACCOUNT_ID)
local function reply(status)
  local min, seq, changed = account_due(acct)
  return {status, redis.call('HLEN', meta .. K_PENDING), min, seq, changed}
end
-- An audience removed at or after this change drops it (DESIGN §3: remove drops pending).
if m[2] and numcmp(m[2], ts) >= 0 then return reply('disabled') end

local v = ts .. ':' .. id
local applied, new_aud, new_prof, dirty = false, false, false, false

if act ~= 'u' then
  local mf = F_USER_MEMBERSHIP .. aud
  if vercmp(ts, id, redis.call('HGET', ukey, mf)) > 0 then
    redis.call('HSET', ukey, mf, v)
    new_aud = pend(meta, email, act .. v, ukey, ARGV[6], retention)
    applied = true
  end
end

if act ~= 'd' then
  -- attributes, 100 at a time (Lua's unpack has a limit)
  for base = 15, #ARGV, 200 do
    local last = math.min(base + 199, #ARGV)
    local vf = {}
    for i = base, last, 2 do vf[#vf + 1] = F_USER_ATTR_VERSION .. ARGV[i] end
    local cur = redis.call('HMGET', ukey, unpack(vf))
    local sets = {}
    for k = 1, #cur do
      if vercmp(ts, id, cur[k]) > 0 then
        local path = ARGV[base + 2 * (k - 1)]
        sets[#sets + 1] = F_USER_ATTR .. path
        sets[#sets + 1] = ARGV[base + 2 * (k - 1) + 1]
        sets[#sets + 1] = vf[k]
        sets[#sets + 1] = v
        sets[#sets + 1] = F_USER_DIRTY .. path
        sets[#sets + 1] = '1'
      end
    end
    if #sets > 0 then
      redis.call('HSET', ukey, unpack(sets))
      dirty = true
    end
  end
end

for ch, c in pairs(consent) do
  if c ~= '' then
    local cf = F_USER_CONSENT .. ch
    if consentcmp(c, redis.call('HGET', ukey, cf)) > 0 then
      redis.call('HSET', ukey, cf, c)
      dirty = true
    end
  end
end

if dirty then
  applied = true
  local pm = acct_key(acct, K_PROFILES)
  new_prof = pend(pm, email, '1', ukey, ARGV[6], retention)
  if new_prof then set_due(due, F_DUE_PROFILES, stream_due(pm, now, maxq, maxage)) end
end
if not applied then return reply('stale') end

if not m[4] then
  redis.call('HSET', meta, F_META_ACCOUNT_ID, acct, F_META_AUDIENCE_ID, aud)
  redis.call('SADD', acct_key(acct, K_AUDIENCES), aud)
end
if m[1] ~= 'active' then redis.call('HSET', meta, F_META_STATE, 'active') end
if (ARGV[10] ~= '' or ARGV[11] ~= '') and vercmp(ts, id, m[3]) > 0 then
  redis.call('HSET', meta, F_META_CFG_VERSION, v)
  if ARGV[10] ~= '' then redis.call('HSET', meta, F_META_NAME, ARGV[10]) end
  if ARGV[11] ~= '' then redis.call('HSET', meta, F_META_LIST_ID, ARGV[11]) end
end
if new_aud or m[1] ~= 'active' then
  set_due(due, F_DUE_AUDIENCE .. aud, stream_due(meta, now, maxq, maxage))
end
return reply('applied')
