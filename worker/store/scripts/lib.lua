-- lib.lua -- helpers prepended to every script of worker/store/scripts (after the names of
-- worker/store/fields.def, which the build turns into `local K_* / F_*` lines).
--
-- Conventions: a script validates its arguments before its first write (Redis does not roll
-- back a script that fails half-way); errors are "INVALID ..." (bad input, permanent) or
-- "NOTLEADER ..." (fencing). Lua compares strings with strcoll(), which depends on the server's
-- locale, so versions are compared byte by byte here, never with < on strings.
--
-- A full Redis (maxmemory, noeviction) refuses a script's first write that may grow memory
-- (OOM) and with it the whole call. That is how ingest pauses (apply.lua, audience.lua). The
-- leader's scripts (take, ack, batch_set, block, profile_id, lease) and the global due write
-- start with `#!lua flags=allow-oom`: draining frees memory and must never need it first.

-- -1, 0, 1 comparing two strings byte by byte.
local function bytecmp(a, b)
  if a == b then return 0 end
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then if x < y then return -1 else return 1 end end
  end
  if #a < #b then return -1 else return 1 end
end

-- Decimal strings without sign or leading zeros (as the C side writes them), any length.
local function numcmp(a, b)
  if #a ~= #b then if #a < #b then return -1 else return 1 end end
  if a == b then return 0 end
  -- up to 15 digits a double holds the value exactly (timestamps in ms have 13)
  if #a <= 15 then
    local x, y = tonumber(a), tonumber(b)
    if x and y then if x < y then return -1 else return 1 end end
  end
  return bytecmp(a, b)
end

-- A version is '<timestamp_ms>:<lower-case message id>' (DESIGN §3: the newer timestamp wins,
-- ties go to the greater id). Compares ts, id against a stored version (false = none: older).
local function vercmp(ts, id, stored)
  if not stored then return 1 end
  local sep = string.find(stored, ':', 1, true)
  if not sep then return 1 end
  local c = numcmp(ts, string.sub(stored, 1, sep - 1))
  if c ~= 0 then return c end
  return bytecmp(id, string.sub(stored, sep + 1))
end

-- Compares two stored versions.
local function vercmp2(a, b)
  local sep = string.find(a, ':', 1, true)
  if not sep then return -1 end
  return vercmp(string.sub(a, 1, sep - 1), string.sub(a, sep + 1), b)
end

-- A consent is '<ts>:<1|0>' (1 subscribe, 0 unsubscribe), versioned by the purpose's own
-- timestamp; at equal timestamps the unsubscribe wins. -1, 0, 1 comparing a with b (false = none).
local function consentcmp(a, b)
  if not b then return a and 1 or 0 end
  if not a then return -1 end
  local sa, sb = string.find(a, ':', 1, true), string.find(b, ':', 1, true)
  if not sa or not sb then return 0 end
  local c = numcmp(string.sub(a, 1, sa - 1), string.sub(b, 1, sb - 1))
  if c ~= 0 then return c end
  local va, vb = string.sub(a, sa + 1), string.sub(b, sb + 1)
  if va == vb then return 0 end
  if va == '0' then return 1 else return -1 end
end

local function is_decimal(s)
  return type(s) == 'string' and string.match(s, '^%d+$') ~= nil and #s <= 19
end

local function fmt(n)
  return string.format('%d', n)
end

-- Key of an account: 'aw:{<account>}:<suffix>'.
local function acct_key(acct, suffix)
  return 'aw:{' .. acct .. '}:' .. suffix
end

-- The due score of one stream: -1 nothing to do, 0 now, else unix ms. A batch in flight keeps
-- the stream due (a new leader resumes it at once); a disabled audience is due while it has
-- entries (they are dropped by take).
local function stream_due(meta, now, maxq, maxage)
  if redis.call('EXISTS', meta .. K_INFLIGHT) == 1 then return 0 end
  local n = redis.call('HLEN', meta .. K_PENDING)
  if n == 0 then return -1 end
  local m = redis.call('HMGET', meta, F_META_DRAIN, F_META_LAST_UPLOAD, F_META_FIRST_PENDING,
                       F_META_STATE)
  if n >= maxq or m[1] or m[4] == 'disabled' then return 0 end
  return (tonumber(m[2] or m[3]) or now) + maxage
end

-- Writes a stream's due score into the account's index.
local function set_due(due, member, score)
  if score < 0 then redis.call('ZREM', due, member)
  else redis.call('ZADD', due, score, member) end
end

-- The account's earliest due (-1 none) and its sequence: bumped whenever the earliest due
-- changes, so the client's writes of it into the global index (another slot) are ordered.
-- Returns min, seq, changed (1 when this call changed it).
local function account_due(acct)
  local r = redis.call('ZRANGE', acct_key(acct, K_DUE), 0, 0, 'WITHSCORES')
  local min = r[2] and tonumber(r[2]) or -1
  local a = acct_key(acct, K_ACCOUNT)
  local cur = redis.call('HMGET', a, F_ACCT_DUE_MIN, F_ACCT_DUE_SEQ)
  local s = fmt(min)
  if cur[1] == s then return min, tonumber(cur[2] or '0'), 0 end
  redis.call('HSET', a, F_ACCT_DUE_MIN, s)
  return min, redis.call('HINCRBY', a, F_ACCT_DUE_SEQ, 1), 1
end

-- One more (+1) or one less (-1) pending or in-flight entry names the user. The user's state
-- lives while it is referenced and expires `retention` seconds after the last reference went.
local function user_ref(ukey, delta, retention)
  local n = redis.call('HINCRBY', ukey, F_USER_REFS, delta)
  if n <= 0 then
    redis.call('HDEL', ukey, F_USER_REFS)
    if redis.call('EXISTS', ukey) == 1 then redis.call('EXPIRE', ukey, retention) end
  elseif n == 1 and delta > 0 then
    redis.call('PERSIST', ukey)
  end
end

-- The record of a membership entry ('a' | 'd' followed by the change's version).
local function membership_record(e)
  return {F_REC_ACTION, string.sub(e, 1, 1) == 'a' and 'add' or 'delete',
          F_REC_VERSION, string.sub(e, 2)}
end

-- The profile stream's snapshot of one user (take.lua; peek.lua shows it without taking): the
-- attributes its entry lists as changed (NUL-separated paths), the identities consent needs,
-- consent newer than the last one Klaviyo accepted. {} when nothing is to be sent.
local function snapshot(ukey, changed)
  local h = redis.call('HGETALL', ukey)
  local vals = {}
  for i = 1, #h, 2 do vals[h[i]] = h[i + 1] end
  local rec, dirty, content, newest = {}, {}, false, false
  for path in string.gmatch(changed, '[^%z]+') do
    local val = vals[F_USER_ATTR .. path]
    if val and not dirty[path] then
      rec[#rec + 1] = F_REC_ATTR .. path
      rec[#rec + 1] = val
      content = true
      local v = vals[F_USER_ATTR_VERSION .. path]
      if v and (not newest or vercmp2(v, newest) > 0) then newest = v end
    end
    dirty[path] = true
  end
  for _, ch in ipairs({'email', 'sms'}) do
    local c = vals[F_USER_CONSENT .. ch]
    if c and consentcmp(c, vals[F_USER_CONSENT_SENT .. ch] or false) > 0 then
      rec[#rec + 1] = F_REC_CONSENT .. ch
      rec[#rec + 1] = c
      content = true
    end
  end
  for _, p in ipairs({F_PATH_PHONE, F_PATH_EXTERNAL_ID, F_PATH_SOURCE}) do
    local val = vals[F_USER_ATTR .. p]
    if val and not dirty[p] then
      rec[#rec + 1] = F_REC_IDENTITY .. p
      rec[#rec + 1] = val
    end
  end
  if not content then return {} end
  if newest then
    rec[#rec + 1] = F_REC_VERSION
    rec[#rec + 1] = newest
  end
  return rec
end
