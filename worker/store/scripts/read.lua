-- read.lua -- reads a stream's in-flight batch a page at a time (a new leader resumes it).
--
-- KEYS[1]  the stream's meta hash (see take.lua)
-- ARGV     1 account id, 2 stream ('a:<audience>' | 'p'), 3 HSCAN cursor ('0' to start),
--          4 page size (<= 1000)
-- Reply    {next cursor ('0' at the end), email, record, email, record, ...}; records as in
--          take.lua. HSCAN may return an email twice: the caller keeps the first.
local meta = KEYS[1]
local acct, stream, cursor, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local profile = stream == F_DUE_PROFILES
local expect = profile and acct_key(acct, K_PROFILES)
               or acct_key(acct, K_AUDIENCE .. string.sub(stream, #F_DUE_AUDIENCE + 1))
if acct == '' or not count or count < 1 or count > 1000 or meta ~= expect
   or not string.match(cursor, '^%d+$') then
  return redis.error_reply('INVALID read arguments')
end
local r = redis.call('HSCAN', meta .. K_INFLIGHT, cursor, 'COUNT', count)
local out = {r[1]}
local kv = r[2]
for i = 1, #kv, 2 do
  local rec
  if profile then
    rec = cmsgpack.unpack(kv[i + 1])
  else
    rec = membership_record(kv[i + 1])
  end
  out[#out + 1] = kv[i]
  out[#out + 1] = rec
end
return out
