#!lua flags=allow-oom
-- take.lua -- the leader takes a batch of one stream for upload: an audience's membership
-- stream or the account's profile stream (DESIGN §4, §5).
--
-- KEYS[1]  the stream's meta hash: aw:{<account>}:a:<audience> or aw:{<account>}:p
-- ARGV     1 account id, 2 stream ('a:<audience>' | 'p'), 3 leader epoch, 4 batch id ('' to
--          start a batch or resume the one in flight, else the batch being filled), 5 most
--          entries in a batch, 6 most entries moved by this call (<= 1000), 7 now (unix ms),
--          8 AW_FLUSH_MAX_QUEUE, 9 max age ms, 10 retention s, 11 (optional, membership
--          streams) most adds this call may still move: the batch stops before the next add
--          beyond it (a batch's removals are not sent as imports, so they need not fit in one)
-- Reply    {status, batch id, more, account earliest due, due seq, changed, state,
--           disabled version, email, record, email, record, ...}
--          status 'taken' (entries moved now; more = 1 when the caller should call again with
--          the batch id to fill it further) | 'resumed' (a batch was in flight: read it with
--          read.lua) | 'empty' (nothing pending) | 'gone' (that batch id no longer fills).
--          A record is a flat list of fields (fields.def REC_*): membership {act, ts};
--          profile {a:<path>, value, ..., i:<path>, value, ..., c:<channel>, consent, ...}.
-- Errors   NOTLEADER when a newer epoch stamped the batch (fencing).
--
-- At most one batch per stream is in flight. Each call moves a bounded number of entries, so
-- no call blocks Redis for long whatever the backlog. Membership entries at or before the
-- audience's removal are dropped here. A profile entry (the paths changed since the last take)
-- becomes a snapshot of those attributes plus consent newer than what Klaviyo accepted; the
-- snapshot is kept in flight, so a new leader resends exactly the same.
local meta = KEYS[1]
local acct, stream, epoch, bid = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local max, chunk = tonumber(ARGV[5]), tonumber(ARGV[6])
local now, maxq, maxage, retention = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]),
                                     tonumber(ARGV[10])
local adds_room = tonumber(ARGV[11] or '') or max
local profile = stream == F_DUE_PROFILES
local expect = profile and acct_key(acct, K_PROFILES)
               or acct_key(acct, K_AUDIENCE .. string.sub(stream, #F_DUE_AUDIENCE + 1))
if acct == '' or not epoch or not max or max < 1 or not chunk or chunk < 1 or chunk > 1000
   or not now or not maxq or maxq < 1 or not maxage or not retention or meta ~= expect
   or (not profile and string.sub(stream, 1, #F_DUE_AUDIENCE) ~= F_DUE_AUDIENCE) then
  return redis.error_reply('INVALID take arguments')
end
local pending, queue, inflight = meta .. K_PENDING, meta .. K_QUEUE, meta .. K_INFLIGHT
local due = acct_key(acct, K_DUE)
local m = redis.call('HMGET', meta, F_META_BATCH_ID, F_META_BATCH_EPOCH, F_META_STATE,
                     F_META_DISABLED_VERSION)
if m[2] and tonumber(m[2]) > epoch then
  return redis.error_reply('NOTLEADER batch fenced by a newer epoch')
end
local function reply(status, id, more, items)
  set_due(due, stream, stream_due(meta, now, maxq, maxage))
  local min, seq, changed = account_due(acct)
  local r = {status, id or '', more and 1 or 0, min, seq, changed, m[3] or '', m[4] or ''}
  if items then for i = 1, #items do r[#r + 1] = items[i] end end
  return r
end

if bid == '' then
  if redis.call('EXISTS', inflight) == 1 then
    redis.call('HSET', meta, F_META_BATCH_EPOCH, ARGV[3])
    return reply('resumed', m[1], false)
  end
  if redis.call('HLEN', pending) == 0 then
    redis.call('HDEL', meta, F_META_DRAIN)
    return reply('empty')
  end
  bid = ARGV[3] .. '-' .. redis.call('HINCRBY', meta, F_META_BATCH_SEQ, 1)
  redis.call('HSET', meta, F_META_BATCH_ID, bid, F_META_BATCH_EPOCH, ARGV[3],
             F_META_BATCH_STARTED, ARGV[7])
  redis.call('HDEL', meta, F_META_JOB_ID)
  m[1] = bid
elseif m[1] ~= bid then
  return reply('gone', bid, false)
end

local room = max - redis.call('HLEN', inflight)
local items = {}
local adds_full = false -- stopped before an add with no room left for it
if room > 0 then
  local emails = redis.call('LRANGE', queue, 0, math.min(room, chunk) - 1)
  local used = 0
  for _, email in ipairs(emails) do
    local e = redis.call('HGET', pending, email)
    if e and not profile and string.sub(e, 1, 1) == 'a' then
      if adds_room < 1 then
        adds_full = true
        break
      end
      adds_room = adds_room - 1
    end
    used = used + 1
    if e then
      redis.call('HDEL', pending, email)
      local ukey = acct_key(acct, K_USER .. email)
      local rec
      if profile then
        rec = snapshot(ukey, e)
        if #rec > 0 then redis.call('HSET', inflight, email, cmsgpack.pack(rec)) end
      else
        if m[4] and numcmp(m[4], string.match(e, '^.(%d+)') or '0') >= 0 then
          rec = {} -- changed before the audience was removed: dropped
        else
          redis.call('HSET', inflight, email, e)
          rec = membership_record(e)
        end
      end
      if #rec > 0 then
        items[#items + 1] = email
        items[#items + 1] = rec
      else
        user_ref(ukey, -1, retention)
      end
    end
  end
  if used > 0 then redis.call('LTRIM', queue, used, -1) end
end

local left = redis.call('HLEN', pending)
if left > 0 then redis.call('HSET', meta, F_META_DRAIN, '1')
else redis.call('HDEL', meta, F_META_DRAIN) end
local n = redis.call('HLEN', inflight)
if n == 0 and left == 0 then
  -- everything taken was dropped: no batch
  redis.call('HDEL', meta, F_META_BATCH_ID, F_META_BATCH_EPOCH, F_META_BATCH_STARTED)
  return reply('empty')
end
-- The users of an audience batch get their attributes and consent with it: the account's
-- profile stream is due now.
if not profile then
  local pm = acct_key(acct, K_PROFILES)
  if redis.call('HLEN', pm .. K_PENDING) > 0 then
    redis.call('HSET', pm, F_META_DRAIN, '1')
    set_due(due, F_DUE_PROFILES, 0)
  end
end
return reply('taken', bid, n < max and left > 0 and not adds_full, items)
