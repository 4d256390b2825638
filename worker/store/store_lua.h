/* store_lua.h -- the server-side Lua scripts of the Redis store, as C string constants.
 * Included only by worker/store.c. Every script runs atomically on the keys of one audience
 * (all share the hash tag {<acct>:<aud>}), or on the due index keys (aw:due and {aw:due}:seq
 * share the slot of "aw:due"). Key layout and semantics: .local/redis-keys.md.
 *
 * Conventions: scripts validate everything before their first write (Redis does not roll back a
 * script that fails half-way); errors are returned as "INVALID ..." (bad input) or
 * "NOTLEADER ..." (fencing). Lua compares strings with strcoll(), so versions and ids are compared
 * byte by byte in aw_bytecmp instead. */
#ifndef AW_WORKER_STORE_LUA_H
#define AW_WORKER_STORE_LUA_H

/* The Lua sources keep their own layout: one Lua line per C string. */
// clang-format off

/* Shared helpers, prepended to the apply, audience and flush scripts by store.c (pedantic C
 * limits string literals to 4095 bytes, so the sources are joined at load time). */
#define AW_LUA_PRELUDE \
    "local function aw_bytecmp(a, b)\n" \
    "  if a == b then return 0 end\n" \
    "  local n = math.min(#a, #b)\n" \
    "  for i = 1, n do\n" \
    "    local x, y = string.byte(a, i), string.byte(b, i)\n" \
    "    if x ~= y then if x < y then return -1 else return 1 end end\n" \
    "  end\n" \
    "  if #a < #b then return -1 else return 1 end\n" \
    "end\n" \
    /* decimal strings without sign: compare by value, any length */ \
    "local function aw_numcmp(a, b)\n" \
    "  a = string.match(a, '^0*(%d+)$') or '0'\n" \
    "  b = string.match(b, '^0*(%d+)$') or '0'\n" \
    "  if #a ~= #b then if #a < #b then return -1 else return 1 end end\n" \
    "  return aw_bytecmp(a, b)\n" \
    "end\n" \
    /* (ms, id) against a stored '<ms>|<id>' (or nil = older than everything) */ \
    "local function aw_vercmp(ms, id, stored)\n" \
    "  if not stored then return 1 end\n" \
    "  local sep = string.find(stored, '|', 1, true)\n" \
    "  if not sep then return 1 end\n" \
    "  local c = aw_numcmp(ms, string.sub(stored, 1, sep - 1))\n" \
    "  if c ~= 0 then return c end\n" \
    "  return aw_bytecmp(id, string.sub(stored, sep + 1))\n" \
    "end\n" \
    /* merges the older decoded change p under the newer n (n is modified and returned) */ \
    "local function aw_merge(p, n)\n" \
    "  local nact = n.act\n" \
    "  if nact == 'attribute_update' and p.act ~= nil then n.act = p.act end\n" \
    "  if nact ~= 'delete' then\n" \
    "    local a = {}\n" \
    "    if type(p.attrs) == 'table' then for k, v in pairs(p.attrs) do a[k] = v end end\n" \
    "    if type(n.attrs) == 'table' then for k, v in pairs(n.attrs) do a[k] = v end end\n" \
    "    n.attrs = a\n" \
    "  end\n" \
    "  if type(p.consent) == 'table' then\n" \
    "    local c = {}\n" \
    "    for k, v in pairs(p.consent) do c[k] = v end\n" \
    "    if type(n.consent) == 'table' then for k, v in pairs(n.consent) do c[k] = v end end\n" \
    "    if next(c) ~= nil then n.consent = c end\n" \
    "  end\n" \
    "  if n.name == nil then n.name = p.name end\n" \
    "  if n.list == nil then n.list = p.list end\n" \
    "  return n\n" \
    "end\n" \
    /* due score of the audience: -1 = nothing to do, 0 = now, else unix ms */ \
    "local function aw_due(pending, meta, inflight, now, maxq, maxage)\n" \
    "  if redis.call('EXISTS', inflight) == 1 then return 0 end\n" \
    "  local n = redis.call('HLEN', pending)\n" \
    "  if n == 0 then return -1 end\n" \
    "  local m = redis.call('HMGET', meta, 'last_upload_ms', 'first_pending_ms', 'drain')\n" \
    "  if n >= maxq or m[3] then return 0 end\n" \
    "  local base = tonumber(m[1] or m[2]) or now\n" \
    "  return base + maxage\n" \
    "end\n" \
    "local function aw_seq(meta, bump)\n" \
    "  if bump then return redis.call('HINCRBY', meta, 'due_seq', 1) end\n" \
    "  return tonumber(redis.call('HGET', meta, 'due_seq') or '0')\n" \
    "end\n"

/* Apply one change.
 * KEYS: 1 pending, 2 ver, 3 meta, 4 inflight, 5 fver.
 * ARGV: 1 encoded change, 2 email, 3 version ms, 4 lower-case event id, 5 now ms, 6 max queue,
 *       7 max age ms, 8 account id, 9 audience id, 10 audience name or '', 11 list id or ''.
 * A change has up to three facets, each versioned on its own in fver ('m:'/'a:'/'c:<ch>:' +
 * email): membership (add/delete), attributes (add/attribute_update: attrs, phone, external id,
 * source) and consent per channel. A facet applies only when the change is newer than the last
 * change that set that facet, so an older add arriving after a newer attribute_update still
 * decides membership, and an attribute_update never hides a removal. A delete supersedes the
 * attributes older than it (removal only: they are dropped and stay stale).
 * Returns {status, pending count, due score, due seq}; status applied|stale|disabled. */
#define AW_LUA_APPLY \
    "local pending, ver, meta, inflight, fver = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]\n" \
    "local enc, email, ts, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n" \
    "local now, maxq, maxage = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])\n" \
    "if not string.match(ts, '^%d+$') or email == '' or not now or not maxq or not maxage then\n" \
    "  return redis.error_reply('INVALID apply arguments')\n" \
    "end\n" \
    "local function reply(status, bump)\n" \
    "  local s = aw_seq(meta, bump)\n" \
    "  return {status, redis.call('HLEN', pending), aw_due(pending, meta, inflight, now, maxq, maxage), s}\n" \
    "end\n" \
    "local m = redis.call('HMGET', meta, 'state', 'disabled_version', 'cfg_version')\n" \
    "if m[1] == 'disabled' and aw_numcmp(m[2] or '0', ts) >= 0 then return reply('disabled', false) end\n" \
    "local newest = redis.call('HGET', ver, email)\n" \
    "if aw_vercmp(ts, id, newest) == 0 then return reply('stale', false) end\n" \
    "local ok, nn = pcall(cjson.decode, enc)\n" \
    "if not ok or type(nn) ~= 'table' then return redis.error_reply('INVALID change encoding') end\n" \
    "local v, act = ts .. '|' .. id, nn.act\n" \
    "local fm = (act == 'add' or act == 'delete') and aw_vercmp(ts, id, redis.call('HGET', fver, 'm:' .. email)) > 0\n" \
    "local aver = redis.call('HGET', fver, 'a:' .. email)\n" \
    "local fa = act ~= 'delete' and aw_vercmp(ts, id, aver) > 0\n" \
    "local fc, anyc = {}, false\n" \
    "if type(nn.consent) == 'table' then\n" \
    "  for ch, val in pairs(nn.consent) do\n" \
    "    if aw_vercmp(ts, id, redis.call('HGET', fver, 'c:' .. ch .. ':' .. email)) > 0 then\n" \
    "      fc[ch] = val\n" \
    "      anyc = true\n" \
    "    end\n" \
    "  end\n" \
    "end\n" \
    "if not fm and not fa and not anyc then return reply('stale', false) end\n" \
    "local p = nil\n" \
    "local cur = redis.call('HGET', pending, email)\n" \
    "if cur then\n" \
    "  local okp, dp = pcall(cjson.decode, cur)\n" \
    "  if okp and type(dp) == 'table' then p = dp end\n" \
    "end\n" \
    "if not p then\n" \
    "  if redis.call('HLEN', pending) == 0 then redis.call('HSET', meta, 'first_pending_ms', ARGV[5]) end\n" \
    "  p = {v = nn.v, acct = nn.acct, aud = nn.aud, email = nn.email, id = nn.id, ts = nn.ts,\n" \
    "       act = 'attribute_update', drops = 0}\n" \
    "end\n" \
    "if type(p.attrs) ~= 'table' then p.attrs = {} end\n" \
    "if fm then\n" \
    "  if act == 'delete' and aw_vercmp(ts, id, aver) > 0 then\n" \
    "    p.attrs = {}\n" \
    "    redis.call('HSET', fver, 'a:' .. email, v)\n" \
    "  end\n" \
    "  p.act = act\n" \
    "  redis.call('HSET', fver, 'm:' .. email, v)\n" \
    "end\n" \
    "if fa then\n" \
    "  if type(nn.attrs) == 'table' then for k, val in pairs(nn.attrs) do p.attrs[k] = val end end\n" \
    "  p.phone, p.xid, p.src, p.drops = nn.phone, nn.xid, nn.src, nn.drops or 0\n" \
    "  redis.call('HSET', fver, 'a:' .. email, v)\n" \
    "end\n" \
    "if anyc then\n" \
    "  if type(p.consent) ~= 'table' then p.consent = {} end\n" \
    "  for ch, val in pairs(fc) do\n" \
    "    p.consent[ch] = val\n" \
    "    redis.call('HSET', fver, 'c:' .. ch .. ':' .. email, v)\n" \
    "  end\n" \
    "end\n" \
    "if aw_vercmp(ts, id, newest) > 0 then\n" \
    "  p.id, p.ts = nn.id, nn.ts\n" \
    "  if nn.name ~= nil then p.name = nn.name end\n" \
    "  if nn.list ~= nil then p.list = nn.list end\n" \
    "  redis.call('HSET', ver, email, v)\n" \
    "end\n" \
    "redis.call('HSET', pending, email, cjson.encode(p))\n" \
    "redis.call('HSET', meta, 'account_id', ARGV[8], 'audience_id', ARGV[9])\n" \
    "if m[1] ~= 'active' then redis.call('HSET', meta, 'state', 'active') end\n" \
    "if (ARGV[10] ~= '' or ARGV[11] ~= '') and aw_vercmp(ts, id, m[3] or false) > 0 then\n" \
    "  redis.call('HSET', meta, 'cfg_version', v)\n" \
    "  if ARGV[10] ~= '' then redis.call('HSET', meta, 'name', ARGV[10]) end\n" \
    "  if ARGV[11] ~= '' then redis.call('HSET', meta, 'list_id', ARGV[11]) end\n" \
    "end\n" \
    "return reply('applied', true)\n"

/* Audience subscription add/update (upsert) or remove.
 * KEYS: 1 pending, 2 meta, 3 inflight.
 * ARGV: 1 'upsert'|'remove', 2 version ms, 3 lower-case event id, 4 now ms, 5 max queue,
 *       6 max age ms, 7 account id, 8 audience id, 9 name or '', 10 list id or ''.
 * Returns {status, pending count, due score, due seq}; status applied|stale. */
#define AW_LUA_AUDIENCE \
    "local pending, meta, inflight = KEYS[1], KEYS[2], KEYS[3]\n" \
    "local op, ts, id = ARGV[1], ARGV[2], ARGV[3]\n" \
    "local now, maxq, maxage = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])\n" \
    "if (op ~= 'upsert' and op ~= 'remove') or not string.match(ts, '^%d+$') or not now\n" \
    "   or not maxq or not maxage then\n" \
    "  return redis.error_reply('INVALID audience arguments')\n" \
    "end\n" \
    "local function reply(status, bump)\n" \
    "  local s = aw_seq(meta, bump)\n" \
    "  return {status, redis.call('HLEN', pending), aw_due(pending, meta, inflight, now, maxq, maxage), s}\n" \
    "end\n" \
    "local m = redis.call('HMGET', meta, 'sub_version', 'cfg_version')\n" \
    "if aw_vercmp(ts, id, m[1] or false) <= 0 then return reply('stale', false) end\n" \
    "redis.call('HSET', meta, 'sub_version', ts .. '|' .. id, 'account_id', ARGV[7], 'audience_id', ARGV[8])\n" \
    "if op == 'remove' then\n" \
    "  redis.call('HSET', meta, 'state', 'disabled', 'disabled_version', ts)\n" \
    "  redis.call('DEL', pending, inflight)\n" \
    "  redis.call('HDEL', meta, 'first_pending_ms', 'drain', 'batch_id', 'batch_epoch', 'batch_started_ms')\n" \
    "  return reply('applied', true)\n" \
    "end\n" \
    /* newer than every remove (each remove set sub_version), so it re-enables */ \
    "redis.call('HSET', meta, 'state', 'active')\n" \
    "if aw_vercmp(ts, id, m[2] or false) > 0 then\n" \
    "  redis.call('HSET', meta, 'cfg_version', ts .. '|' .. id)\n" \
    "  if ARGV[9] ~= '' then redis.call('HSET', meta, 'name', ARGV[9]) end\n" \
    "  if ARGV[10] ~= '' then redis.call('HSET', meta, 'list_id', ARGV[10])\n" \
    "  else redis.call('HDEL', meta, 'list_id') end\n" \
    "end\n" \
    "return reply('applied', false)\n"

/* Due index update, ordered by the audience's due sequence so late or duplicate writers never
 * overwrite a newer state's score. KEYS: 1 aw:due, 2 {aw:due}:seq. ARGV: 1 member "A:U",
 * 2 score (-1 = remove), 3 seq. Returns 1 when written, 0 when an equal-or-newer seq was there. */
#define AW_LUA_DUE \
    "local cur = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')\n" \
    "local seq, score = tonumber(ARGV[3]), tonumber(ARGV[2])\n" \
    "if not seq or not score then return redis.error_reply('INVALID due arguments') end\n" \
    "if seq < cur then return 0 end\n" \
    "redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])\n" \
    "if score < 0 then redis.call('ZREM', KEYS[1], ARGV[1])\n" \
    "else redis.call('ZADD', KEYS[1], score, ARGV[1]) end\n" \
    "return 1\n"

/* Leader lease. KEYS: 1 aw:{leader}:lease, 2 aw:{leader}:epoch.
 * ARGV: 1 'acquire'|'renew'|'release', 2 token, 3 ttl ms.
 * acquire: set if absent (epoch incremented) or already ours (TTL extended, same epoch);
 * renew/release: only when the token matches. Returns {held 0|1, epoch}. */
#define AW_LUA_LEASE \
    "local op, token, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])\n" \
    "if token == '' or not ttl or ttl < 1 then return redis.error_reply('INVALID lease arguments') end\n" \
    "local cur = redis.call('GET', KEYS[1])\n" \
    "local epoch = tonumber(redis.call('GET', KEYS[2]) or '0')\n" \
    "if op == 'acquire' then\n" \
    "  if not cur then\n" \
    "    redis.call('SET', KEYS[1], token, 'PX', ttl)\n" \
    "    return {1, redis.call('INCR', KEYS[2])}\n" \
    "  end\n" \
    "  if cur == token then redis.call('PEXPIRE', KEYS[1], ttl) return {1, epoch} end\n" \
    "  return {0, epoch}\n" \
    "elseif op == 'renew' then\n" \
    "  if cur == token then redis.call('PEXPIRE', KEYS[1], ttl) return {1, epoch} end\n" \
    "  return {0, epoch}\n" \
    "elseif op == 'release' then\n" \
    "  if cur == token then redis.call('DEL', KEYS[1]) end\n" \
    "  return {0, epoch}\n" \
    "end\n" \
    "return redis.error_reply('INVALID lease op')\n"

/* Flush batches of one audience.
 * KEYS: 1 pending, 2 meta, 3 inflight.
 * ARGV: 1 'take'|'ack'|'requeue', 2 epoch, 3 batch id ('' for take), 4 max items, 5 now ms,
 *       6 max queue, 7 max age ms.
 * take: the existing in-flight batch (re-stamped with this epoch: "resumed") or up to max items
 *   moved from pending into a new in-flight batch ("taken"), or "empty".
 * ack: deletes the in-flight batch, last_upload_ms = now. requeue: merges the in-flight entries
 *   back under newer pending ones. Both: "gone" when that batch no longer exists.
 * A batch stamped by a newer epoch → error NOTLEADER.
 * Returns {status, pending count, due score, due seq, batch id, field, value, ...}. */
#define AW_LUA_FLUSH \
    "local pending, meta, inflight = KEYS[1], KEYS[2], KEYS[3]\n" \
    "local op, epoch, bid, max = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])\n" \
    "local now, maxq, maxage = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])\n" \
    "if not epoch or not max or max < 1 or not now or not maxq or not maxage then\n" \
    "  return redis.error_reply('INVALID flush arguments')\n" \
    "end\n" \
    "local m = redis.call('HMGET', meta, 'batch_id', 'batch_epoch', 'state')\n" \
    "local function reply(status, bump, id, items)\n" \
    "  local s = aw_seq(meta, bump)\n" \
    "  local r = {status, redis.call('HLEN', pending), aw_due(pending, meta, inflight, now, maxq, maxage), s, id or ''}\n" \
    "  if items then for i = 1, #items do r[#r + 1] = items[i] end end\n" \
    "  return r\n" \
    "end\n" \
    "if m[2] and tonumber(m[2]) > epoch then return redis.error_reply('NOTLEADER batch fenced by a newer epoch') end\n" \
    "if op == 'take' then\n" \
    "  if redis.call('EXISTS', inflight) == 1 then\n" \
    "    redis.call('HSET', meta, 'batch_epoch', ARGV[2])\n" \
    "    return reply('resumed', false, m[1], redis.call('HGETALL', inflight))\n" \
    "  end\n" \
    "  local items, seen, n, cursor = {}, {}, 0, '0'\n" \
    "  if m[3] ~= 'disabled' then\n" \
    "    repeat\n" \
    "      local r = redis.call('HSCAN', pending, cursor, 'COUNT', math.max(max, 10))\n" \
    "      cursor = r[1]\n" \
    "      local kv = r[2]\n" \
    "      for i = 1, #kv, 2 do\n" \
    "        if n < max and not seen[kv[i]] then\n" \
    "          seen[kv[i]] = true\n" \
    "          n = n + 1\n" \
    "          items[#items + 1] = kv[i]\n" \
    "          items[#items + 1] = kv[i + 1]\n" \
    "        end\n" \
    "      end\n" \
    "    until cursor == '0' or n >= max\n" \
    "  end\n" \
    "  if n == 0 then\n" \
    "    redis.call('HDEL', meta, 'drain')\n" \
    "    return reply('empty', true)\n" \
    "  end\n" \
    "  for i = 1, #items, 2 do\n" \
    "    redis.call('HSET', inflight, items[i], items[i + 1])\n" \
    "    redis.call('HDEL', pending, items[i])\n" \
    "  end\n" \
    "  local id = ARGV[2] .. '-' .. redis.call('HINCRBY', meta, 'batch_seq', 1)\n" \
    "  redis.call('HSET', meta, 'batch_id', id, 'batch_epoch', ARGV[2], 'batch_started_ms', ARGV[5])\n" \
    /* a due audience is drained completely: leftovers stay due until pending is empty */ \
    "  if redis.call('HLEN', pending) > 0 then redis.call('HSET', meta, 'drain', '1')\n" \
    "  else redis.call('HDEL', meta, 'drain') end\n" \
    "  return reply('taken', true, id, items)\n" \
    "end\n" \
    "if op ~= 'ack' and op ~= 'requeue' then return redis.error_reply('INVALID flush op') end\n" \
    "if m[1] ~= bid or redis.call('EXISTS', inflight) == 0 then return reply('gone', false, bid) end\n" \
    "if op == 'ack' then\n" \
    "  redis.call('DEL', inflight)\n" \
    "  redis.call('HSET', meta, 'last_upload_ms', ARGV[5])\n" \
    "else\n" \
    "  local kv = redis.call('HGETALL', inflight)\n" \
    "  if redis.call('HLEN', pending) == 0 and not redis.call('HGET', meta, 'first_pending_ms') then\n" \
    "    redis.call('HSET', meta, 'first_pending_ms', ARGV[5])\n" \
    "  end\n" \
    "  for i = 1, #kv, 2 do\n" \
    "    local cur = redis.call('HGET', pending, kv[i])\n" \
    "    local out = kv[i + 1]\n" \
    "    if cur then\n" \
    "      local okp, p = pcall(cjson.decode, kv[i + 1])\n" \
    "      local okn, nn = pcall(cjson.decode, cur)\n" \
    "      if okp and okn and type(p) == 'table' and type(nn) == 'table' then\n" \
    "        out = cjson.encode(aw_merge(p, nn))\n" \
    "      else out = cur end\n" \
    "    end\n" \
    "    redis.call('HSET', pending, kv[i], out)\n" \
    "  end\n" \
    "  redis.call('DEL', inflight)\n" \
    "end\n" \
    "redis.call('HDEL', meta, 'batch_id', 'batch_epoch', 'batch_started_ms')\n" \
    "if redis.call('HLEN', pending) == 0 then redis.call('HDEL', meta, 'drain', 'first_pending_ms') end\n" \
    "return reply(op == 'ack' and 'acked' or 'requeued', true, bid)\n"

/* Account block: KEYS 1 account hash; ARGV 1 until ms. Keeps the later of the stored and the
 * given block. Returns the block in force. */
#define AW_LUA_ACCOUNT_BLOCK \
    "local cur = tonumber(redis.call('HGET', KEYS[1], 'block_until_ms') or '0') or 0\n" \
    "local v = tonumber(ARGV[1])\n" \
    "if not v then return redis.error_reply('INVALID block time') end\n" \
    "if v > cur then redis.call('HSET', KEYS[1], 'block_until_ms', ARGV[1]) return v end\n" \
    "return cur\n"

// clang-format on

#endif
