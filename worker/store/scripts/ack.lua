#!lua flags=allow-oom
-- ack.lua -- the leader is done with entries of a stream's in-flight batch (sent, or
-- dead-lettered, or dropped).
--
-- KEYS[1]  the stream's meta hash (see take.lua)
-- ARGV     1 account id, 2 stream, 3 leader epoch, 4 batch id, 5 now (unix ms),
--          6 AW_FLUSH_MAX_QUEUE, 7 max age ms, 8 retention s, 9.. pairs (email, channels
--          Klaviyo accepted for it: '' or 'email' / 'sms' / 'email,sms'); at most 1000 pairs
-- Reply    {status, entries still in flight, account earliest due, due seq, changed}
--          status 'acked' (the batch is over: last upload = now) | 'partial' | 'gone' (no such
--          batch: already acked, or the audience was taken over)
-- Errors   NOTLEADER when a newer epoch stamped the batch.
--
-- For each email: its entry leaves the batch, the consent it carried is recorded as sent for
-- the accepted channels (consent is sent only when newer than this, DESIGN §3), and the user's
-- reference is dropped (its state expires after the retention once nothing names it).
local meta = KEYS[1]
local acct, stream, epoch, bid = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local now, maxq, maxage, retention = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]),
                                     tonumber(ARGV[8])
local profile = stream == F_DUE_PROFILES
local expect = profile and acct_key(acct, K_PROFILES)
               or acct_key(acct, K_AUDIENCE .. string.sub(stream, #F_DUE_AUDIENCE + 1))
if acct == '' or not epoch or bid == '' or not now or not maxq or maxq < 1 or not maxage
   or not retention or meta ~= expect or (#ARGV - 8) % 2 ~= 0 or #ARGV > 8 + 2000 then
  return redis.error_reply('INVALID ack arguments')
end
local inflight, due = meta .. K_INFLIGHT, acct_key(acct, K_DUE)
local m = redis.call('HMGET', meta, F_META_BATCH_ID, F_META_BATCH_EPOCH)
if m[2] and tonumber(m[2]) > epoch then
  return redis.error_reply('NOTLEADER batch fenced by a newer epoch')
end
local function reply(status)
  set_due(due, stream, stream_due(meta, now, maxq, maxage))
  local min, seq, changed = account_due(acct)
  return {status, redis.call('HLEN', inflight), min, seq, changed}
end
if m[1] ~= bid then return reply('gone') end

local cl = #F_REC_CONSENT
for i = 9, #ARGV, 2 do
  local email, accepted = ARGV[i], ARGV[i + 1]
  local e = redis.call('HGET', inflight, email)
  if e then
    redis.call('HDEL', inflight, email)
    local ukey = acct_key(acct, K_USER .. email)
    if profile and accepted ~= '' then
      local rec = cmsgpack.unpack(e)
      for k = 1, #rec, 2 do
        if string.sub(rec[k], 1, cl) == F_REC_CONSENT then
          local ch = string.sub(rec[k], cl + 1)
          if string.find(',' .. accepted .. ',', ',' .. ch .. ',', 1, true) then
            local sf = F_USER_CONSENT_SENT .. ch
            if consentcmp(rec[k + 1], redis.call('HGET', ukey, sf)) > 0 then
              redis.call('HSET', ukey, sf, rec[k + 1])
            end
          end
        end
      end
    end
    user_ref(ukey, -1, retention)
  end
end
if redis.call('HLEN', inflight) > 0 then return reply('partial') end
redis.call('HDEL', meta, F_META_BATCH_ID, F_META_BATCH_EPOCH, F_META_BATCH_STARTED,
           F_META_JOB_ID)
redis.call('HSET', meta, F_META_LAST_UPLOAD, ARGV[5])
if redis.call('HLEN', meta .. K_PENDING) == 0 then redis.call('HDEL', meta, F_META_DRAIN) end
return reply('acked')
