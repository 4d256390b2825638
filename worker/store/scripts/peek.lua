#!lua flags=no-writes,allow-oom
-- peek.lua -- what the next take of a stream would send, without taking or changing anything
-- (`aw-worker preview`): the batch in flight (a leader would resume it), else the first
-- pending entries in take order, each made into the record take.lua would make of it.
--
-- KEYS[1]  the stream's meta hash (see take.lua)
-- ARGV     1 account id, 2 stream ('a:<audience>' | 'p'), 3 most entries (1..1000)
-- Reply    {status, state, disabled version, email, record, email, record, ...}
--          status 'resumed' (the batch in flight) | 'pending' (what take would move) |
--          'empty'; records as in take.lua. Entries take would drop (changed before the
--          audience's removal) or send nothing for (a profile with nothing new) are left out.
--
-- no-writes: Redis refuses any write here; allow-oom: a full Redis can still be previewed.
local meta = KEYS[1]
local acct, stream, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
local profile = stream == F_DUE_PROFILES
local expect = profile and acct_key(acct, K_PROFILES)
               or acct_key(acct, K_AUDIENCE .. string.sub(stream, #F_DUE_AUDIENCE + 1))
if acct == '' or not max or max < 1 or max > 1000 or meta ~= expect
   or (not profile and string.sub(stream, 1, #F_DUE_AUDIENCE) ~= F_DUE_AUDIENCE) then
  return redis.error_reply('INVALID peek arguments')
end
local m = redis.call('HMGET', meta, F_META_STATE, F_META_DISABLED_VERSION)
local out = {'empty', m[1] or '', m[2] or ''}
local inflight = meta .. K_INFLIGHT
if redis.call('EXISTS', inflight) == 1 then
  out[1] = 'resumed'
  local cursor, n = '0', 0
  repeat
    local r = redis.call('HSCAN', inflight, cursor, 'COUNT', max)
    cursor = r[1]
    for i = 1, #r[2], 2 do
      if n < max then
        out[#out + 1] = r[2][i]
        out[#out + 1] = profile and cmsgpack.unpack(r[2][i + 1]) or membership_record(r[2][i + 1])
        n = n + 1
      end
    end
  until cursor == '0' or n >= max
  return out
end
local pending = meta .. K_PENDING
local seen, n, from = {}, 0, 0
while n < max and from < 10 * max do -- bounded even when the queue holds stale emails
  local emails = redis.call('LRANGE', meta .. K_QUEUE, from, from + max - 1)
  if #emails == 0 then break end
  from = from + #emails
  for _, email in ipairs(emails) do
    local e = not seen[email] and n < max and redis.call('HGET', pending, email)
    seen[email] = true
    if e then
      local rec
      if profile then
        rec = snapshot(acct_key(acct, K_USER .. email), e)
      elseif m[2] and numcmp(m[2], string.match(e, '^.(%d+)') or '0') >= 0 then
        rec = {} -- take drops it
      else
        rec = membership_record(e)
      end
      if #rec > 0 then
        out[#out + 1] = email
        out[#out + 1] = rec
        n = n + 1
      end
    end
  end
end
if n > 0 then out[1] = 'pending' end
return out
