#!lua flags=allow-oom
-- batch_set.lua -- the leader records a fact about a stream's in-flight batch: the Klaviyo job
-- it created (DESIGN §5: a new leader polls that job instead of sending the batch again), or
-- when it is about to send a consent job (the next batch's consent waits for it to settle) or
-- a bulk import (an answer lost may leave a job running: the batch's ack waits for it).
--
-- KEYS[1]  the stream's meta hash (see take.lua)
-- ARGV     1 leader epoch, 2 batch id, 3 field (META_JOB_ID | META_CONSENT_SENT |
--          META_IMPORT_SENT), 4 value
--          ('' deletes)
-- Reply    1 when written, 0 when that batch is no longer in flight
-- Errors   NOTLEADER when a newer epoch stamped the batch.
local epoch, bid, field = tonumber(ARGV[1]), ARGV[2], ARGV[3]
if not epoch or bid == ''
   or (field ~= F_META_JOB_ID and field ~= F_META_CONSENT_SENT and field ~= F_META_IMPORT_SENT) then
  return redis.error_reply('INVALID batch_set arguments')
end
local m = redis.call('HMGET', KEYS[1], F_META_BATCH_ID, F_META_BATCH_EPOCH)
if m[2] and tonumber(m[2]) > epoch then
  return redis.error_reply('NOTLEADER batch fenced by a newer epoch')
end
if m[1] ~= bid then return 0 end
if ARGV[4] == '' then redis.call('HDEL', KEYS[1], field)
else redis.call('HSET', KEYS[1], field, ARGV[4]) end
return 1
