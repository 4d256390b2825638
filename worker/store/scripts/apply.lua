-- apply.lua -- applies changes of one account, in order: each one user of one audience
-- (DESIGN §1, §3, §4). The client sends a pipeline's consecutive changes of an account in one
-- call, so the reads of a user, a stream and the due indexes are paid once per call, not once
-- per change.
--
-- KEYS[1]  the account's hash aw:{<account>}:acct (routing: every key touched carries the
--          account's tag, so the script is atomic on one shard)
-- ARGV     1 account id, 2 now (unix ms), 3 AW_FLUSH_MAX_QUEUE, 4 max age ms, 5 retention s,
--          then one block per change:
--            n (attribute pairs in the block; -1: no consent nor pairs here, they are those
--            of the previous block), audience id, email (normalised), timestamp_ms,
--            lower-case message id, audience name or '', listId or '', action 'a' add |
--            'd' delete | 'u' attribute_update, [email consent '<ts>:<1|0>' or '',
--            sms consent or '', n pairs: path, JSON value ('null' unsets)]
-- Reply    {account earliest due, due seq, changed, status, pending, status, pending, ...}:
--          changed = 1 when the account's earliest due moved; then per change its status
--          'applied' | 'stale' (nothing newer) | 'disabled' (audience removed at or after the
--          change) | 'invalid' (malformed: nothing of it written) and the audience's pending
--          count after it.
--
-- Facets are versioned on their own: membership per (audience, user) by the message version;
-- each attribute path per (account, user) by the message version; each consent channel per
-- (account, user) by the consent's own timestamp. A facet changes only when the change is newer
-- than what set it last, so no arrival order, redelivery or audience can make a user regress.
-- Membership goes to the audience's stream; attributes and consent to the account's profile
-- stream, which sends only what changed (the paths its pending entry lists, NUL-separated: the
-- C side never sends a NUL) and consent newer than what Klaviyo accepted.
--
-- The changes are applied in order; consecutive changes of one user (the audiences of a
-- profile) are a run: its user hash is read once at the start and written once at the end.
-- The streams' pending entries and meta are read before the first change and written after
-- the last. The outcome is that of applying the changes one call each. Redis's Lua interpreter
-- is slow (a function call costs as much as six to eight table accesses, a table that grows is
-- rehashed at every power of two), so the loops inline their work and reuse scratch tables
-- (bench/bench_store.sh measures it).
local acct = ARGV[1]
local now, maxq, maxage, retention = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
                                     tonumber(ARGV[5])
if acct == '' or not now or not maxq or maxq < 1 or not maxage or not retention
   or retention < 1 or KEYS[1] ~= acct_key(acct, K_ACCOUNT) then
  return redis.error_reply('INVALID apply arguments')
end
local nargv = #ARGV
local match = string.match

-- ---- 1. the blocks: their framing, which are malformed, the keys they need (no I/O) --------
local bad = {} -- change number -> true when malformed (nothing of it is written)
local streams, stream_list = {}, {} -- audience id ('' = profiles) -> stream
local function stream(aud)
  local meta = aud == '' and acct_key(acct, K_PROFILES) or acct_key(acct, K_AUDIENCE .. aud)
  local st = {meta = meta, member = aud == '' and F_DUE_PROFILES or F_DUE_AUDIENCE .. aud,
              emails = {}, ne = 0, seen = {}, has = {}, entries = {}, elist = {}, newq = {},
              mw = {}, mwlist = {}, due = false, n = 0}
  streams[aud] = st
  stream_list[#stream_list + 1] = st
  return st
end
local profiles = stream('')
local pseen, pemails = profiles.seen, profiles.emails

local i, k, pbad = 6, 0, false
while i <= nargv do
  local n = tonumber(ARGV[i])
  if not n or n < -1 or n % 1 ~= 0 or i + 7 > nargv or (n == -1 and k == 0)
     or (n >= 0 and i + 9 + 2 * n > nargv) then
    return redis.error_reply('INVALID apply block at argument ' .. i)
  end
  k = k + 1
  local b = i
  if n >= 0 then
    -- this block's consents and pairs (the next blocks may refer to them)
    local ce, cs = ARGV[b + 8], ARGV[b + 9]
    pbad = (ce ~= '' and not match(ce, '^%d+:[01]$')) or (cs ~= '' and not match(cs, '^%d+:[01]$'))
    for j = b + 10, b + 8 + 2 * n, 2 do
      if ARGV[j] == '' then pbad = true end
    end
    i = b + 10 + 2 * n
  else
    i = b + 8
  end
  local aud, email, ts, act = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 7]
  local nok = pbad or aud == '' or email == '' or #ts > 19 or not match(ts, '^%d+$')
              or (act ~= 'a' and act ~= 'd' and act ~= 'u')
  if nok then
    bad[k] = true
  else
    local st = streams[aud] or stream(aud)
    if act ~= 'u' and not st.seen[email] then
      st.seen[email] = true
      st.ne = st.ne + 1
      st.emails[st.ne] = email
    end
    if not pseen[email] then
      pseen[email] = true
      profiles.ne = profiles.ne + 1
      pemails[profiles.ne] = email
    end
  end
end

-- ---- 2. reads: each stream's meta and pending entries -------------------------------------
for q = 1, #stream_list do
  local st = stream_list[q]
  if st ~= profiles then
    st.m = redis.call('HMGET', st.meta, F_META_STATE, F_META_DISABLED_VERSION,
                      F_META_CFG_VERSION, F_META_ACCOUNT_ID)
  end
  st.n = redis.call('HLEN', st.meta .. K_PENDING)
  if st.n > 0 and st.ne > 0 then
    -- has[email]: the entry pending (false: none)
    for j = 1, st.ne, 500 do
      local last = math.min(j + 499, st.ne)
      local r = redis.call('HMGET', st.meta .. K_PENDING, unpack(st.emails, j, last))
      for x = j, last do st.has[st.emails[x]] = r[x - j + 1] end
    end
  end
end

-- ---- 3. the changes, in order, run by run -----------------------------------------------
local function mset(st, f, v)
  if st.mw[f] == nil then st.mwlist[#st.mwlist + 1] = f end
  st.mw[f] = v
end

-- The run: its user (email; nil between runs), key, references before it and added by it,
-- whether the hash existed. Scratch tables, reused by every run (gen tells which run a value
-- belongs to): VV/VG the user hash (field -> value, when VG[field] == gen), W the fields to
-- write (wn used), D the paths changed for the user's profile entry (dn used; DS[path] == gen
-- when listed; dinit once the entry pending was merged in).
local ru, rkey, rpc, rrefs, rold = nil, nil, 0, 0, false
local gen, VV, VG, W, wn, D, dn, DS, dinit = 0, {}, {}, {}, 0, {}, 0, {}, false

-- Adds email to a stream's pending entries (new: queued, the run's user referenced, the
-- stream's first pending time set). Returns true when it was new.
local function pend(st, email, entry)
  if st.entries[email] == nil then st.elist[#st.elist + 1] = email end
  st.entries[email] = entry
  if st.has[email] then return false end
  st.has[email] = entry
  st.newq[#st.newq + 1] = email
  rrefs = rrefs + 1
  if st.n == 0 then mset(st, F_META_FIRST_PENDING, ARGV[2]) end
  st.n = st.n + 1
  return true
end

local function run_start(email)
  gen = gen + 1
  ru, rkey, rrefs, wn, dn, dinit = email, acct_key(acct, K_USER .. email), 0, 0, 0, false
  local h = redis.call('HGETALL', rkey)
  for j = 1, #h, 2 do
    VV[h[j]], VG[h[j]] = h[j + 1], gen
  end
  rold = #h > 0
  rpc = tonumber(VG[F_USER_REFS] == gen and VV[F_USER_REFS] or '0')
end

local function run_end()
  if rrefs > 0 then
    W[wn + 1], W[wn + 2] = F_USER_REFS, fmt(rpc + rrefs)
    wn = wn + 2
  end
  -- a field written twice in this run: HSET keeps the last value
  for j = 1, wn, 400 do redis.call('HSET', rkey, unpack(W, j, math.min(j + 399, wn))) end
  -- referenced again: the state no longer expires (user_ref in lib.lua); a new hash has no TTL
  if rrefs > 0 and rpc <= 0 and rold then redis.call('PERSIST', rkey) end
  if dinit then
    local e = table.concat(D, '\0', 1, dn)
    profiles.entries[ru], profiles.has[ru] = e, e
  end
  ru = nil
end

local reply, nr = {0, 0, 0}, 3
local new_auds = {}
-- The profile facets (consents, pairs) last looked at: the audiences of one profile carry the
-- same, so the next change of that user at that version finds nothing newer in them.
local seen_e, seen_v, seen_ac, seen_a0, seen_attrs = nil, nil, 0, 0, false
local F_EMAIL, F_SMS = F_USER_CONSENT .. 'email', F_USER_CONSENT .. 'sms'
local names = {} -- path -> its fields {a:<path>, v:<path>}
-- the blocks again (validated above): c the change, b its block, ce its consents, pa its pairs
-- (pn of them), as the framing says
local c, b, ce, pa, pn = 0, 6, 0, 0, 0
while b <= nargv do
  local n = tonumber(ARGV[b])
  c = c + 1
  if n >= 0 then ce, pa, pn = b + 8, b + 10, n end
  local nextb = n >= 0 and b + 10 + 2 * n or b + 8
  if bad[c] then
    reply[nr + 1], reply[nr + 2] = 'invalid', 0
  else
    local aud, email, ts, id, act = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 7]
    local st = streams[aud]
    local m = st.m
    local status = 'stale'
    -- An audience removed at or after this change drops it (DESIGN §3: remove drops pending).
    if m[2] and numcmp(m[2], ts) >= 0 then
      status = 'disabled'
    else
      if email ~= ru then
        if ru then run_end() end
        run_start(email)
      end
      local v = ts .. ':' .. id
      local applied, dirty = false, false
      if act ~= 'u' then
        local mf = F_USER_MEMBERSHIP .. aud
        local cur = VG[mf] == gen and VV[mf]
        if not cur or (cur ~= v and vercmp(ts, id, cur) > 0) then
          W[wn + 1], W[wn + 2] = mf, v
          wn = wn + 2
          VV[mf], VG[mf] = v, gen
          if pend(st, email, act .. v) then st.due = true end
          applied = true
        end
      end
      local seen = email == seen_e and v == seen_v and ce == seen_ac and pa == seen_a0
      if act ~= 'd' and not (seen and seen_attrs) then
        local lastc, lastr = v, false -- the attributes of a user mostly share one version
        for j = pa, pa + 2 * pn - 2, 2 do
          local path = ARGV[j]
          local p = names[path]
          if not p then
            p = {F_USER_ATTR .. path, F_USER_ATTR_VERSION .. path}
            names[path] = p
          end
          local vf = p[2]
          local cur = VG[vf] == gen and VV[vf]
          local newer = not cur
          if cur then
            if cur == lastc then
              newer = lastr
            else
              newer = vercmp(ts, id, cur) > 0
              lastc, lastr = cur, newer
            end
          end
          if newer then
            -- (a:<path> is not read back in a run: only the version is kept)
            W[wn + 1], W[wn + 2], W[wn + 3], W[wn + 4] = p[1], ARGV[j + 1], vf, v
            wn = wn + 4
            VV[vf], VG[vf] = v, gen
            if not dinit then
              dinit = true
              local e = profiles.has[email]
              if e then
                for q in string.gmatch(e, '[^%z]+') do
                  if DS[q] ~= gen then
                    DS[q] = gen
                    dn = dn + 1
                    D[dn] = q
                  end
                end
              end
            end
            if DS[path] ~= gen then
              DS[path] = gen
              dn = dn + 1
              D[dn] = path
            end
            dirty = true
          end
        end
      end
      if not seen then
        for ch = 0, 1 do
          local cv = ARGV[ce + ch]
          if cv ~= '' then
            local cf = ch == 0 and F_EMAIL or F_SMS
            if consentcmp(cv, VG[cf] == gen and VV[cf]) > 0 then
              W[wn + 1], W[wn + 2] = cf, cv
              wn = wn + 2
              VV[cf], VG[cf] = cv, gen
              dirty = true
            end
          end
        end
      end
      seen_attrs = (seen and seen_attrs) or act ~= 'd'
      seen_e, seen_v, seen_ac, seen_a0 = email, v, ce, pa
      if dirty then
        applied = true
        if pend(profiles, email, profiles.has[email] or '') then profiles.due = true end
      end
      if applied then
        status = 'applied'
        if not m[4] then
          m[4] = acct
          mset(st, F_META_ACCOUNT_ID, acct)
          mset(st, F_META_AUDIENCE_ID, aud)
          new_auds[#new_auds + 1] = aud
        end
        if m[1] ~= 'active' then
          m[1] = 'active'
          mset(st, F_META_STATE, 'active')
          st.due = true
        end
        local name, list = ARGV[b + 5], ARGV[b + 6]
        if (name ~= '' or list ~= '') and m[3] ~= v and vercmp(ts, id, m[3]) > 0 then
          m[3] = v
          mset(st, F_META_CFG_VERSION, v)
          if name ~= '' then mset(st, F_META_NAME, name) end
          if list ~= '' then mset(st, F_META_LIST_ID, list) end
        end
      end
    end
    reply[nr + 1], reply[nr + 2] = status, st.n
  end
  nr = nr + 2
  b = nextb
end
if ru then run_end() end

-- ---- 4. the streams' writes -------------------------------------------------------------------
local function hset(key, list, map)
  for j = 1, #list, 200 do
    local args = {}
    for q = j, math.min(j + 199, #list) do
      args[#args + 1] = list[q]
      args[#args + 1] = map[list[q]]
    end
    redis.call('HSET', key, unpack(args))
  end
end
local due = acct_key(acct, K_DUE)
for q = 1, #stream_list do
  local st = stream_list[q]
  if #st.elist > 0 then hset(st.meta .. K_PENDING, st.elist, st.entries) end
  for j = 1, #st.newq, 500 do
    redis.call('RPUSH', st.meta .. K_QUEUE, unpack(st.newq, j, math.min(j + 499, #st.newq)))
  end
  if #st.mwlist > 0 then hset(st.meta, st.mwlist, st.mw) end
end
if #new_auds > 0 then redis.call('SADD', acct_key(acct, K_AUDIENCES), unpack(new_auds)) end
for q = 1, #stream_list do
  local st = stream_list[q]
  if st.due then set_due(due, st.member, stream_due(st.meta, now, maxq, maxage)) end
end
reply[1], reply[2], reply[3] = account_due(acct)
return reply
