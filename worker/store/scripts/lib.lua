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

-- Versions parsed once per script call: version -> its timestamp (false: not a version), its
-- id, the timestamp as a number when it has at most 15 digits (tonumber costs a Lua call as
-- much as ~25 table accesses; a message's version is compared for each of its changes).
local VTS, VID, VNUM = {}, {}, {}
-- The timestamp of version v ('<ts>:<id>', ts decimal of at most 19 digits), false when v is
-- none.
local function vparse(v)
  local ts = VTS[v]
  if ts == nil then
    local id
    ts, id = string.match(v, '^(%d+):(.*)$')
    if not ts or #ts > 19 then ts, id = false, false end
    VTS[v], VID[v], VNUM[v] = ts, id, ts and #ts <= 15 and tonumber(ts)
  end
  return ts
end

-- True when version v (valid: vparse(v)) is newer than the stored version (false = none):
-- vercmp's order, the parse of each version cached.
local function vnewer(v, stored)
  if not stored then return true end
  if stored == v then return false end
  local sts = vparse(stored)
  if not sts then return vercmp(VTS[v], VID[v], stored) > 0 end
  local ts = VTS[v]
  if ts ~= sts then
    if #ts ~= #sts then return #ts > #sts end
    local x, y = VNUM[v], VNUM[stored]
    if x then return x > y end
    return bytecmp(ts, sts) > 0
  end
  return bytecmp(VID[v], VID[stored]) > 0
end

-- How many NULs s holds.
local function nuls(s)
  local n, p = 0, string.find(s, '\0', 1, true)
  while p do
    n = n + 1
    p = string.find(s, '\0', p + 1, true)
  end
  return n
end

-- A user's attributes (field F_USER_ATTRS of the user hash), one string:
--   '<n>\0' then n paths each followed by '\0' (the header), then either the one version of
--   all of them followed by '\0', or '\0' and n versions each followed by '\0'; then the n
--   values separated by '\0' (JSON text; phone_number, external_id, @source plain text).
-- Returns paths, values, versions (arrays) and n.
local function attr_state(s)
  local find, sub = string.find, string.sub
  local t = string.match(s, '^(%d+)%z')
  local n, pos = tonumber(t), #t + 2
  local P, X, V = {}, {}, {}
  for j = 1, n do
    local e = find(s, '\0', pos, true)
    P[j], pos = sub(s, pos, e - 1), e + 1
  end
  if string.byte(s, pos) == 0 then
    pos = pos + 1
    for j = 1, n do
      local e = find(s, '\0', pos, true)
      V[j], pos = sub(s, pos, e - 1), e + 1
    end
  else
    local e = find(s, '\0', pos, true)
    local v = sub(s, pos, e - 1)
    pos = e + 1
    for j = 1, n do V[j] = v end
  end
  for j = 1, n - 1 do
    local e = find(s, '\0', pos, true)
    X[j], pos = sub(s, pos, e - 1), e + 1
  end
  X[n] = sub(s, pos)
  return P, X, V, n
end

-- The text of an attributes state (attr_state's inverse; one version when all share it).
local function attr_state_text(P, X, V, n)
  local same = true
  for j = 2, n do
    if V[j] ~= V[1] then
      same = false
      break
    end
  end
  local h = n .. '\0' .. table.concat(P, '\0', 1, n) .. '\0'
  local x = table.concat(X, '\0', 1, n)
  if same then return h .. V[1] .. '\0' .. x end
  return h .. '\0' .. table.concat(V, '\0', 1, n) .. '\0' .. x
end

-- A consent is '<ts>:<1|0>' (1 subscribe, 0 unsubscribe), versioned by the purpose's own
-- timestamp; at equal timestamps the unsubscribe wins. -1, 0, 1 comparing a with b (false = none).
local function consentcmp(a, b)
  if a == b then return 0 end
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
  -- the attributes: path -> value, path -> version (the first of a path, were it twice)
  local attr, aver = {}, {}
  if vals[F_USER_ATTRS] then
    local P, X, V, n = attr_state(vals[F_USER_ATTRS])
    for j = n, 1, -1 do attr[P[j]], aver[P[j]] = X[j], V[j] end
  else
    -- a user written before the attributes field, not changed since (apply.lua folds them)
    for f, x in pairs(vals) do
      if string.sub(f, 1, #F_USER_ATTR_V1) == F_USER_ATTR_V1 then
        local path = string.sub(f, #F_USER_ATTR_V1 + 1)
        attr[path], aver[path] = x, vals[F_USER_ATTR_VERSION_V1 .. path]
      end
    end
  end
  local rec, dirty, content, newest = {}, {}, false, false
  for path in string.gmatch(changed, '[^%z]+') do
    local val = attr[path]
    if val and not dirty[path] then
      rec[#rec + 1] = F_REC_ATTR .. path
      rec[#rec + 1] = val
      content = true
      local v = aver[path]
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
    local val = attr[p]
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
