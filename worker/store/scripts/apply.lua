-- apply.lua -- applies changes of one account, in order: each one user of one audience
-- (DESIGN §1, §3, §4). The client sends a pipeline's consecutive changes of an account in one
-- call, so the reads of a user, a stream and the due indexes are paid once per call, not once
-- per change.
--
-- KEYS[1]  the account's hash aw:{<account>}:acct (routing: every key touched carries the
--          account's tag, so the script is atomic on one shard)
-- ARGV     1 account id, 2 now (unix ms), 3 AW_FLUSH_MAX_QUEUE, 4 max age ms, 5 retention s,
--          then one block per change:
--            '<code>:<audience id>', the code: the action 'a' add | 'd' delete | 'u'
--            attribute_update, in upper case when the block's consents and attributes follow,
--            in lower case when they are those of the previous block; then 'e' when the email
--            and version are left out (those of the previous block), then 'n' when the name
--            and listId are left out (those of the audience's previous block in the call):
--            e.g. 'A:7', 'aen:17', 'Un:7';
--            [email (normalised), version '<timestamp_ms>:<lower-case message id>' unless
--            'e'], [audience name or '', listId or '' unless 'n'],
--            [upper case only: email consent '<ts>:<1|0>' or '', sms consent or '',
--            paths H = '<n>\0<path>\0...<path>\0' ('' when none), values '<value>\0...<value>'
--            (n JSON values in the paths' order, 'null' unsets; '' when none)]
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
-- C side never sends a NUL inside a path or value) and consent newer than what Klaviyo accepted.
--
-- A user's attributes are one field (F_USER_ATTRS, lib.lua attr_state): its paths, one version
-- when they all share it, and the values. A change whose paths are those stored, all older
-- (the usual update), or a user without attributes, is written as the client sent it, without
-- looking at a path; other changes merge path by path.
--
-- The changes are applied in order; consecutive changes of one user (the audiences of a
-- profile) are a run: its user hash is read once at the start and written once at the end.
-- The streams' pending entries and meta are read before the first change and written after
-- the last. The outcome is that of applying the changes one call each. Redis's Lua interpreter
-- is slow (callgrind on redis-server 7.0: an argument costs ~1,500 instructions, a redis.call
-- ~3,600 plus ~1,900 per element of its reply (an HGETALL of 5 fields ~21,000), a call of a
-- string function ~1,000, a pattern match ~150 per byte, tonumber ~1,900), so the common paths
-- compare whole strings (interned: equal strings are one object), parse each version once per
-- call, call few functions and leave out of the arguments what a previous block carries
-- (bench/bench_store.sh measures it).
local acct = ARGV[1]
local now, maxq, maxage, retention = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
                                     tonumber(ARGV[5])
if acct == '' or not now or not maxq or maxq < 1 or not maxage or not retention
   or retention < 1 or KEYS[1] ~= acct_key(acct, K_ACCOUNT) then
  return redis.error_reply('INVALID apply arguments')
end
local nargv = #ARGV
local match, find, sub = string.match, string.find, string.sub

-- ---- 1. the blocks: their framing, which are malformed, the keys they need (no I/O) --------
-- code -> action; its own consents and attributes follow; email and version left out; name
-- and listId left out
local ACT, OWN, SAME_EV, SAME_NL = {}, {}, {}, {}
for _, a in ipairs({'a', 'd', 'u'}) do
  for _, c in ipairs({a, string.upper(a)}) do
    for _, e in ipairs({'', 'e'}) do
      for _, n in ipairs({'', 'n'}) do
        local code = c .. e .. n
        ACT[code], OWN[code], SAME_EV[code], SAME_NL[code] = a, c ~= a, e ~= '', n ~= ''
      end
    end
  end
end
-- per change: action ('a' | 'd' | 'u'; false: malformed), stream, email, version, {name,
-- listId}, the index of its consents and attributes
local CACT, CST, CEM, CV, CNL, CP = {}, {}, {}, {}, {}, {}
local lastnl = {} -- audience id -> the name and listId of its last block: {name, list}
-- '<code>:<audience>' -> {action, own, same email and version, same name and listId, audience}
-- (false: malformed), decoded once per call
local CODES = {}
local streams, stream_list = {}, {} -- audience id ('' = profiles) -> stream
local function stream(aud)
  local meta = aud == '' and acct_key(acct, K_PROFILES) or acct_key(acct, K_AUDIENCE .. aud)
  local st = {meta = meta, member = aud == '' and F_DUE_PROFILES or F_DUE_AUDIENCE .. aud,
              mf = F_USER_MEMBERSHIP .. aud, aud = aud,
              emails = {}, ne = 0, has = {}, entries = {}, elist = {}, newq = {},
              mw = {}, mwlist = {}, due = false, n = 0}
  streams[aud] = st
  stream_list[#stream_list + 1] = st
  return st
end
local profiles = stream('')
local porig = {} -- the profile entries pending before the call
local pemails = profiles.emails

-- Consents and paths checked once per call: string -> true (or the paths' count) when well
-- formed, false when not.
local cons_ok, paths_n, paths_list = {[''] = true}, {}, {}
local function consent_ok(c)
  local ok = cons_ok[c]
  if ok == nil then
    ok = match(c, '^%d+:[01]$') ~= nil
    cons_ok[c] = ok
  end
  return ok
end
-- H: '<n>\0<path>\0...' with n non-empty paths; its list of paths (NUL-separated) kept too.
local function paths_ok(h)
  local n = paths_n[h]
  if n == nil then
    local t = match(h, '^(%d+)%z')
    n = t and tonumber(t)
    if n and (n < 1 or nuls(h) ~= n + 1 or sub(h, -1) ~= '\0' or find(h, '\0\0', 1, true)) then
      n = nil
    end
    n = n or false
    paths_n[h] = n
    if n then paths_list[h] = sub(h, #t + 2, -2) end
  end
  return n
end

local i, k, pbad, pa, email, v = 6, 0, false, 0, '', ''
while i <= nargv do
  local a = ARGV[i]
  local d = CODES[a]
  if d == nil then
    local p = find(a, ':', 1, true)
    local c = p and sub(a, 1, p - 1)
    d = c and ACT[c] and {ACT[c], OWN[c], SAME_EV[c], SAME_NL[c], sub(a, p + 1)} or false
    CODES[a] = d
  end
  if not d then return redis.error_reply('INVALID apply block at argument ' .. i) end
  local act, own, ev, nl, aud = d[1], d[2], d[3], d[4], d[5]
  local last = i + (ev and 0 or 2) + (nl and 0 or 2) + (own and 4 or 0)
  if last > nargv or (k == 0 and (not own or ev)) or (nl and not lastnl[aud]) then
    return redis.error_reply('INVALID apply block at argument ' .. i)
  end
  k = k + 1
  i = i + 1
  if not ev then
    email, v = ARGV[i], ARGV[i + 1]
    i = i + 2
  end
  local anl = lastnl[aud]
  if not nl then
    if not anl or anl[1] ~= ARGV[i] or anl[2] ~= ARGV[i + 1] then
      anl = {ARGV[i], ARGV[i + 1]}
      lastnl[aud] = anl
    end
    i = i + 2
  end
  CEM[k], CV[k], CNL[k] = email, v, anl
  if own then
    -- this block's consents and attributes (the next blocks may refer to them)
    pa = i
    local ce, cs, h, vl = ARGV[pa], ARGV[pa + 1], ARGV[pa + 2], ARGV[pa + 3]
    local ok = cons_ok[ce]
    if ok == nil then ok = consent_ok(ce) end
    pbad = not ok
    ok = cons_ok[cs]
    if ok == nil then ok = consent_ok(cs) end
    pbad = pbad or not ok
    if h == '' then
      pbad = pbad or vl ~= ''
    else
      local n = paths_n[h]
      if n == nil then n = paths_ok(h) end
      if not n then
        pbad = true
      else
        -- n values: n - 1 NULs (counted up to n)
        local q, c = find(vl, '\0', 1, true), 0
        while q and c < n do
          c = c + 1
          q = find(vl, '\0', q + 1, true)
        end
        pbad = pbad or c ~= n - 1
      end
    end
    i = i + 4
  end
  CP[k] = pa
  local vts = VTS[v]
  if vts == nil then vts = vparse(v) end
  if pbad or aud == '' or email == '' or not vts then
    CACT[k] = false
  else
    CACT[k] = act
    local st = streams[aud] or stream(aud)
    CST[k] = st
    -- the emails whose entries phase 2 reads (a repeated one is read again: consecutive
    -- repeats, the audiences of one profile, are left out)
    if act ~= 'u' and st.emails[st.ne] ~= email then
      st.ne = st.ne + 1
      st.emails[st.ne] = email
    end
    if pemails[profiles.ne] ~= email then
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
  st.n0 = st.n
  if st.n > 0 and st.ne > 0 then
    -- has[email]: the entry pending (false: none)
    for j = 1, st.ne, 500 do
      local last = math.min(j + 499, st.ne)
      local r = redis.call('HMGET', st.meta .. K_PENDING, unpack(st.emails, j, last))
      for x = j, last do st.has[st.emails[x]] = r[x - j + 1] end
      if st == profiles then -- (an entry the call leaves as it was is not written again)
        for x = j, last do porig[st.emails[x]] = r[x - j + 1] end
      end
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
-- write (wn used). dent: the user's profile entry once a path of the run was dirtied (the
-- paths, NUL-separated: the entry pending first, then those dirtied, each once; nil: none).
local ru, rkey, rrefs, rold, rlegacy = nil, nil, 0, false, nil
local UKEY = acct_key(acct, K_USER) -- a user's key less its email
local gen, VV, VG, W, wn, dent = 0, {}, {}, {}, 0, nil

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
  ru, rkey, rrefs, wn, dent = email, UKEY .. email, 0, 0, nil
  local h = redis.call('HGETALL', rkey)
  for j = 1, #h, 2 do
    local f = h[j]
    VV[f], VG[f] = h[j + 1], gen
  end
  rold = #h > 0
  rlegacy = nil
  if rold and VG[F_USER_ATTRS] ~= gen then
    -- a user written before the attributes field (a:<path> values, v:<path> versions): folded
    -- into it, the old fields deleted at the end of the run
    local P, X, V, n = {}, {}, {}, 0
    for j = 1, #h, 2 do
      local f = h[j]
      if find(f, F_USER_ATTR_V1, 1, true) == 1 then
        local path = sub(f, #F_USER_ATTR_V1 + 1)
        local vf = F_USER_ATTR_VERSION_V1 .. path
        n = n + 1
        P[n], X[n] = path, h[j + 1]
        V[n] = VG[vf] == gen and VV[vf] or '0:'
        rlegacy = rlegacy or {}
        rlegacy[#rlegacy + 1], rlegacy[#rlegacy + 2] = f, vf
      end
    end
    if n > 0 then
      local at = attr_state_text(P, X, V, n)
      VV[F_USER_ATTRS], VG[F_USER_ATTRS] = at, gen
      W[wn + 1], W[wn + 2] = F_USER_ATTRS, at
      wn = wn + 2
    end
  end
end

local function run_end()
  local rpc = 1
  if rrefs > 0 then
    rpc = tonumber(VG[F_USER_REFS] == gen and VV[F_USER_REFS] or '0')
    W[wn + 1], W[wn + 2] = F_USER_REFS, fmt(rpc + rrefs)
    wn = wn + 2
  end
  -- a field written twice in this run: HSET keeps the last value
  if wn > 0 and wn <= 400 then
    redis.call('HSET', rkey, unpack(W, 1, wn))
  else
    for j = 1, wn, 400 do redis.call('HSET', rkey, unpack(W, j, math.min(j + 399, wn))) end
  end
  -- referenced again: the state no longer expires (user_ref in lib.lua); a new hash has no TTL
  if rrefs > 0 and rpc <= 0 and rold then redis.call('PERSIST', rkey) end
  if rlegacy then redis.call('HDEL', rkey, unpack(rlegacy)) end
  if dent then profiles.entries[ru], profiles.has[ru] = dent, dent end
  ru = nil
end

-- The paths list (NUL-separated) dirtied for the run's user; ps: a list of paths, or nil for
-- every path of pl.
local function dirty(email, pl, ps)
  if not dent then dent = profiles.has[email] or '' end
  if ps == nil then
    if dent == '' then dent = pl return end
    if dent == pl then return end
    ps = {}
    for p in string.gmatch(pl, '[^%z]+') do ps[#ps + 1] = p end
  end
  local set, out = {}, {}
  for p in string.gmatch(dent, '[^%z]+') do
    if not set[p] then set[p] = true out[#out + 1] = p end
  end
  for j = 1, #ps do
    local p = ps[j]
    if not set[p] then set[p] = true out[#out + 1] = p end
  end
  dent = table.concat(out, '\0')
end

-- The attributes state cur (false: none) with the change's paths h and values vl at version v,
-- path by path: the new state and the paths that applied, or nil when none did.
local function merge(cur, h, vl, v)
  local P, X, V, n0 = {}, {}, {}, 0
  if cur then P, X, V, n0 = attr_state(cur) end
  local idx = {}
  for j = n0, 1, -1 do idx[P[j]] = j end -- (the first of a path, were it twice)
  local cp, cx = attr_state(h .. v .. '\0' .. vl)
  local done = {}
  for j = 1, #cp do
    local p = cp[j]
    local q = idx[p]
    if not q then
      n0 = n0 + 1
      P[n0], X[n0], V[n0], idx[p] = p, cx[j], v, n0
      done[#done + 1] = p
    elseif vnewer(v, V[q]) then
      X[q], V[q] = cx[j], v
      done[#done + 1] = p
    end
  end
  if #done == 0 then return nil end
  return attr_state_text(P, X, V, n0), done
end

local reply, nr = {0, 0, 0}, 3
local ENT_A, ENT_D = {}, {} -- version -> the pending entry of an add, of a delete
local new_auds = {}
-- The profile facets (consents, attributes) last looked at: the audiences of one profile carry
-- the same, so the next change of that user at that version finds nothing newer in them.
local seen_e, seen_v, seen_pa, seen_attrs = nil, nil, 0, false
local F_EMAIL, F_SMS = F_USER_CONSENT .. 'email', F_USER_CONSENT .. 'sms'
for c = 1, k do
  local act = CACT[c]
  if not act then
    reply[nr + 1], reply[nr + 2] = 'invalid', 0
  else
    local st, email, v = CST[c], CEM[c], CV[c]
    local pa = CP[c]
    local m = st.m
    local status = 'stale'
    -- An audience removed at or after this change drops it (DESIGN §3: remove drops pending).
    if m[2] and numcmp(m[2], vparse(v)) >= 0 then
      status = 'disabled'
    else
      if email ~= ru then
        if ru then run_end() end
        run_start(email)
      end
      local applied, dirtied = false, false
      if act ~= 'u' then
        local mf = st.mf
        local cur = VG[mf] == gen and VV[mf]
        if cur ~= v and vnewer(v, cur) then
          W[wn + 1], W[wn + 2] = mf, v
          wn = wn + 2
          VV[mf], VG[mf] = v, gen
          local ents = act == 'a' and ENT_A or ENT_D -- the entry: 'a' | 'd' and the version
          local e = ents[v]
          if not e then
            e = act .. v
            ents[v] = e
          end
          -- (pend inlined: an entry pending already, the usual update, is only replaced)
          local en = st.entries
          if en[email] == nil then st.elist[#st.elist + 1] = email end
          en[email] = e
          if not st.has[email] and pend(st, email, e) then st.due = true end
          applied = true
        end
      end
      local seen = email == seen_e and v == seen_v and pa == seen_pa
      if act ~= 'd' and not (seen and seen_attrs) then
        local h = ARGV[pa + 2]
        if h ~= '' then
          local vl = ARGV[pa + 3]
          local cur = VG[F_USER_ATTRS] == gen and VV[F_USER_ATTRS]
          local new, done
          if not cur then
            new = h .. v .. '\0' .. vl
          else
            -- the same paths (the header), all at one version (not '\0' after the header)
            local q = find(cur, h, 1, true) == 1 and find(cur, '\0', #h + 1, true)
            if q and q > #h + 1 then
              -- all newer, or none
              if vnewer(v, sub(cur, #h + 1, q - 1)) then new = h .. v .. '\0' .. vl end
            else
              new, done = merge(cur, h, vl, v)
            end
          end
          if new then
            W[wn + 1], W[wn + 2] = F_USER_ATTRS, new
            wn = wn + 2
            VV[F_USER_ATTRS], VG[F_USER_ATTRS] = new, gen
            local pl = paths_list[h]
            if not dent then dent = profiles.has[email] or '' end
            if done == nil and (dent == '' or dent == pl) then
              dent = pl
            else
              dirty(email, pl, done)
            end
            dirtied = true
          end
        end
      end
      if not seen then
        for ch = 0, 1 do
          local cv = ARGV[pa + ch]
          if cv ~= '' then
            local cf = ch == 0 and F_EMAIL or F_SMS
            local sc = VG[cf] == gen and VV[cf]
            if cv ~= sc and consentcmp(cv, sc) > 0 then
              W[wn + 1], W[wn + 2] = cf, cv
              wn = wn + 2
              VV[cf], VG[cf] = cv, gen
              dirtied = true
            end
          end
        end
      end
      seen_attrs = (seen and seen_attrs) or act ~= 'd'
      seen_e, seen_v, seen_pa = email, v, pa
      if dirtied then
        applied = true
        if pend(profiles, email, profiles.has[email] or '') then profiles.due = true end
      end
      if applied then
        status = 'applied'
        if not m[4] then
          m[4] = acct
          mset(st, F_META_ACCOUNT_ID, acct)
          mset(st, F_META_AUDIENCE_ID, st.aud)
          new_auds[#new_auds + 1] = st.aud
        end
        if m[1] ~= 'active' then
          m[1] = 'active'
          mset(st, F_META_STATE, 'active')
          st.due = true
        end
        local nl = CNL[c]
        local name, list = nl[1], nl[2]
        if (name ~= '' or list ~= '') and m[3] ~= v and vnewer(v, m[3]) then
          -- (written once, in phase 4: the last of each wins, as one write each would)
          m[3] = v
          st.cfgv = v
          if name ~= '' then st.cfgn = name end
          if list ~= '' then st.cfgl = list end
        end
      end
    end
    reply[nr + 1], reply[nr + 2] = status, st.n
  end
  nr = nr + 2
end
if ru then run_end() end

-- ---- 4. the streams' writes -------------------------------------------------------------------
-- HSET key of the fields list with their values in map, but those equal in orig (or nil).
local function hset(key, list, map, orig)
  local args, n = {}, 0
  for q = 1, #list do
    local f = list[q]
    local x = map[f]
    if not orig or orig[f] ~= x then
      args[n + 1], args[n + 2] = f, x
      n = n + 2
      if n == 400 then
        redis.call('HSET', key, unpack(args, 1, n))
        n = 0
      end
    end
  end
  if n > 0 then redis.call('HSET', key, unpack(args, 1, n)) end
end
-- A pending hash is created as a hash table: a field longer than hash-max-listpack-value (64
-- by default) converts it and goes again (a hash table never turns back into a listpack). A
-- listpack's lookup or insert scans every entry (up to hash-max-listpack-entries, 512 by
-- default: ~27,000 instructions at 500 emails), a hash table's hashes the email once.
local BIG = string.rep('-', 1024)
local due = acct_key(acct, K_DUE)
for q = 1, #stream_list do
  local st = stream_list[q]
  if #st.elist > 0 then
    local pk = st.meta .. K_PENDING
    if st.n0 == 0 then redis.call('HSET', pk, '', BIG) end -- ('' is never an email)
    hset(pk, st.elist, st.entries, st == profiles and porig)
    if st.n0 == 0 then redis.call('HDEL', pk, '') end
  end
  for j = 1, #st.newq, 500 do
    redis.call('RPUSH', st.meta .. K_QUEUE, unpack(st.newq, j, math.min(j + 499, #st.newq)))
  end
  if st.cfgv then
    mset(st, F_META_CFG_VERSION, st.cfgv)
    if st.cfgn then mset(st, F_META_NAME, st.cfgn) end
    if st.cfgl then mset(st, F_META_LIST_ID, st.cfgl) end
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
