/* flush_ops.c -- due streams and batches for the leader (see flush_ops.h). */
#include "worker/store/flush_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "common/text.h"
#include "worker/store/internal.h"

#define CHUNK 1000u      /* entries moved or acked per script call (bounded blocking) */
#define CHUNK_FIRST 100u /* entries of a batch's first take call, before their weight is known */
#define READ_PAGE 1000u  /* in-flight entries read per page on resume */

/* ---- Due ----------------------------------------------------------------------------------- */

static enum aw_err zrange_due(struct aw_store *s, const char *key, uint64_t now, size_t max,
                              struct aw_redis_cmd *c)
{
    char nows[24], maxs[24];
    const char *argv[8] = {"ZRANGEBYSCORE", key,     "-inf", aw_store_u64(now, nows),
                           "WITHSCORES",    "LIMIT", "0",    aw_store_u64(max, maxs)};
    memset(c, 0, sizeof *c);
    c->script = -1;
    c->route = key;
    c->argc = 8;
    c->argv = argv;
    enum aw_err e = aw_store_run(s, c);
    if (e == AW_OK && (c->reply.type != AW_REPLY_ARRAY || c->reply.n % 2 != 0)) {
        aw_redis_cmd_clear(c);
        snprintf(s->err, sizeof s->err, "ZRANGEBYSCORE: unexpected reply");
        return AW_ERR_PROTOCOL;
    }
    return e;
}

enum aw_err aw_store_due_accounts(struct aw_store *s, uint64_t now_unix_ms, size_t max, char ***out,
                                  size_t *n)
{
    *out = NULL;
    *n = 0;
    struct aw_redis_cmd c;
    enum aw_err e = zrange_due(s, aw_store_name(AW_K_GLOBAL_DUE), now_unix_ms, max, &c);
    if (e != AW_OK)
        return e;
    size_t m = c.reply.n / 2;
    char **ids = aw_calloc(m ? m : 1, sizeof *ids);
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        const struct aw_reply *id = &c.reply.elem[2 * i];
        if (id->type == AW_REPLY_STR && aw_store_id_ok(id->str))
            ids[k++] = aw_strdup(id->str);
    }
    aw_redis_cmd_clear(&c);
    *out = ids;
    *n = k;
    return AW_OK;
}

void aw_store_streams_free(struct aw_store_stream *st, size_t n)
{
    for (size_t i = 0; i < n && st; i++)
        free(st[i].audience_id);
    free(st);
}

enum aw_err aw_store_due_streams(struct aw_store *s, const char *account_id, uint64_t now_unix_ms,
                                 size_t max, struct aw_store_stream **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!aw_store_id_ok(account_id))
        return AW_ERR_INVALID;
    char *key = aw_store_key(account_id, AW_K_DUE, NULL, NULL);
    const char *pname = aw_store_name(AW_F_DUE_PROFILES);
    const char *zargv[3] = {"ZSCORE", key, pname};
    struct aw_redis_cmd z = {.script = -1, .route = key, .argc = 3, .argv = zargv};
    enum aw_err e = aw_store_run(s, &z);
    bool profiles_due = e == AW_OK && z.reply.type == AW_REPLY_STR &&
                        strtoull(z.reply.str, NULL, 10) <= now_unix_ms;
    aw_redis_cmd_clear(&z);
    struct aw_redis_cmd c;
    if (e == AW_OK)
        e = zrange_due(s, key, now_unix_ms, max, &c);
    free(key);
    if (e != AW_OK)
        return e;
    size_t m = c.reply.n / 2;
    struct aw_store_stream *st = aw_calloc(m + 1, sizeof *st);
    size_t k = 0;
    if (profiles_due && max > 0)
        st[k++].audience_id = NULL; /* due_unix_ms: 0, now */
    const char *aprefix = aw_store_name(AW_F_DUE_AUDIENCE);
    size_t plen = strlen(aprefix);
    for (size_t i = 0; i < m && k < max; i++) {
        const struct aw_reply *mem = &c.reply.elem[2 * i], *sc = &c.reply.elem[2 * i + 1];
        if (mem->type != AW_REPLY_STR || sc->type != AW_REPLY_STR)
            continue;
        if (strcmp(mem->str, pname) == 0) {
            if (profiles_due)
                continue; /* listed first already */
            st[k].audience_id = NULL;
        } else if (strncmp(mem->str, aprefix, plen) == 0 && aw_store_id_ok(mem->str + plen)) {
            st[k].audience_id = aw_strdup(mem->str + plen);
        } else {
            continue;
        }
        st[k].due_unix_ms = strtoll(sc->str, NULL, 10);
        k++;
    }
    aw_redis_cmd_clear(&c);
    *out = st;
    *n = k;
    return AW_OK;
}

/* ---- Batches ------------------------------------------------------------------------------- */

void aw_store_taken_clear(struct aw_store_taken *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->entries[i].email);
        aw_change_clear(&t->entries[i].change);
    }
    free(t->entries);
    free(t->batch_id);
    free(t->name);
    free(t->list_id);
    free(t->klaviyo_list_id);
    free(t->job_id);
    memset(t, 0, sizeof *t);
}

/* Keys and fixed arguments of one stream. */
struct stream {
    const char *acct;
    const char *aud; /* NULL: profiles */
    char *meta;      /* owned key */
    char *member;    /* owned due member */
};

static bool stream_init(struct stream *st, const char *acct, const char *aud)
{
    memset(st, 0, sizeof *st);
    if (!aw_store_id_ok(acct) || (aud && !aw_store_id_ok(aud)))
        return false;
    st->acct = acct;
    st->aud = aud;
    st->meta = aud ? aw_store_key(acct, AW_K_AUDIENCE, aud, NULL)
                   : aw_store_key(acct, AW_K_PROFILES, NULL, NULL);
    st->member = aw_store_stream_member(aud);
    return true;
}

static void stream_free(struct stream *st)
{
    free(st->meta);
    free(st->member);
}

/* The emails of a batch read with HSCAN, which may return an entry twice: an open-addressing
 * set of indices into t->entries (1-based; 0 empty), at most half full. */
struct seen {
    size_t *slot;
    size_t cap;
};

/* True when t already holds email; else notes index t->n for it (the entry about to be added). */
static bool seen_before(struct seen *sn, const struct aw_store_taken *t, const char *email,
                        size_t len)
{
    if (2 * (t->n + 1) > sn->cap) {
        size_t cap = sn->cap ? 2 * sn->cap : 1024;
        size_t *slot = aw_calloc(cap, sizeof *slot);
        for (size_t i = 0; i < t->n; i++) {
            const char *e = t->entries[i].email;
            size_t h = (size_t)aw_text_hash(e, strlen(e)) & (cap - 1);
            while (slot[h])
                h = (h + 1) & (cap - 1);
            slot[h] = i + 1;
        }
        free(sn->slot);
        sn->slot = slot;
        sn->cap = cap;
    }
    size_t h = (size_t)aw_text_hash(email, len) & (sn->cap - 1);
    for (; sn->slot[h]; h = (h + 1) & (sn->cap - 1)) {
        const char *e = t->entries[sn->slot[h] - 1].email;
        if (strlen(e) == len && memcmp(e, email, len) == 0)
            return true;
    }
    sn->slot[h] = t->n + 1;
    return false;
}

/* Appends (email, record) pairs of rp from index i on; sn (NULL when rp cannot repeat an email
 * already taken) drops repeats. */
static enum aw_err add_entries(struct aw_store *s, const struct stream *st,
                               const struct aw_reply *rp, size_t i, struct aw_store_taken *t,
                               uint64_t disabled_version, struct seen *sn)
{
    if ((rp->n - i) % 2 != 0)
        goto bad;
    size_t add = (rp->n - i) / 2;
    t->entries = aw_realloc(t->entries, (t->n + add + 1) * sizeof *t->entries);
    for (; i + 1 < rp->n; i += 2) {
        const struct aw_reply *em = &rp->elem[i], *rec = &rp->elem[i + 1];
        if (em->type != AW_REPLY_STR || rec->type != AW_REPLY_ARRAY || rec->n % 2 != 0)
            goto bad;
        if (sn && seen_before(sn, t, em->str, em->len))
            continue; /* HSCAN may repeat an entry */
        struct aw_store_entry *e = &t->entries[t->n];
        memset(e, 0, sizeof *e);
        e->email = aw_strndup(em->str, em->len);
        t->n++;
        t->bytes += sizeof *e + em->len + 1;
        size_t nf = rec->n / 2;
        struct aw_change_field *f = aw_calloc(nf ? nf : 1, sizeof *f);
        bool ok = true;
        for (size_t k = 0; k < nf; k++) {
            const struct aw_reply *nm = &rec->elem[2 * k], *val = &rec->elem[2 * k + 1];
            if (nm->type != AW_REPLY_STR || val->type != AW_REPLY_STR) {
                ok = false;
                break;
            }
            f[k] = (struct aw_change_field){nm->str, nm->len, val->str, val->len};
            t->bytes += nm->len + val->len + 2;
        }
        e->bad = !ok || strlen(e->email) != em->len ||
                 aw_change_record_decode(st->acct, st->aud, e->email, f, nf, &e->change) != AW_OK;
        free(f);
        if (!e->bad && st->aud && disabled_version && e->change.version_ms <= disabled_version)
            e->dropped = true;
    }
    return AW_OK;
bad:
    snprintf(s->err, sizeof s->err, "take: unexpected entry shape");
    return AW_ERR_PROTOCOL;
}

static char *str_or_null(const struct aw_reply *r)
{
    return r->type == AW_REPLY_STR && r->len ? aw_strndup(r->str, r->len) : NULL;
}

/* Reads the stream's meta the flusher needs. */
static enum aw_err read_meta(struct aw_store *s, const struct stream *st, struct aw_store_taken *t)
{
    const char *argv[6] = {"HMGET",
                           st->meta,
                           aw_store_name(AW_F_META_NAME),
                           aw_store_name(AW_F_META_LIST_ID),
                           aw_store_name(AW_F_META_KLAVIYO_LIST_ID),
                           aw_store_name(AW_F_META_JOB_ID)};
    struct aw_redis_cmd c = {.script = -1, .route = st->meta, .argc = 6, .argv = argv};
    enum aw_err e = aw_store_run(s, &c);
    if (e != AW_OK)
        return e;
    if (c.reply.type != AW_REPLY_ARRAY || c.reply.n != 4) {
        aw_redis_cmd_clear(&c);
        snprintf(s->err, sizeof s->err, "HMGET meta: unexpected reply");
        return AW_ERR_PROTOCOL;
    }
    t->name = str_or_null(&c.reply.elem[0]);
    t->list_id = str_or_null(&c.reply.elem[1]);
    t->klaviyo_list_id = str_or_null(&c.reply.elem[2]);
    t->job_id = str_or_null(&c.reply.elem[3]);
    aw_redis_cmd_clear(&c);
    return AW_OK;
}

/* Reads the whole in-flight batch, a page at a time. */
static enum aw_err read_inflight(struct aw_store *s, const struct stream *st,
                                 struct aw_store_taken *t, uint64_t disabled_version)
{
    char cursor[32] = "0", page[24];
    aw_store_u64(READ_PAGE, page);
    const char *stream_arg = st->member;
    struct seen sn = {NULL, 0};
    enum aw_err e = AW_OK;
    do {
        const char *argv[5] = {st->meta, st->acct, stream_arg, cursor, page};
        struct aw_redis_cmd c = {
            .script = AW_SCRIPT_READ, .nkeys = 1, .route = st->meta, .argc = 5, .argv = argv};
        e = aw_store_run(s, &c);
        if (e != AW_OK)
            break;
        if (c.reply.type != AW_REPLY_ARRAY || c.reply.n < 1 ||
            c.reply.elem[0].type != AW_REPLY_STR || c.reply.elem[0].len >= sizeof cursor) {
            aw_redis_cmd_clear(&c);
            snprintf(s->err, sizeof s->err, "read: unexpected reply");
            e = AW_ERR_PROTOCOL;
            break;
        }
        memcpy(cursor, c.reply.elem[0].str, c.reply.elem[0].len + 1);
        e = add_entries(s, st, &c.reply, 1, t, disabled_version, &sn);
        aw_redis_cmd_clear(&c);
    } while (e == AW_OK && strcmp(cursor, "0") != 0);
    free(sn.slot);
    return e;
}

/* Entries the next take call may move: CHUNK_FIRST first (the entries' weight is unknown), then
 * what the average entry so far says fits in the bytes left, within [1, CHUNK]. */
static size_t take_chunk(const struct aw_store_taken *t, size_t max_bytes)
{
    if (t->n == 0)
        return CHUNK_FIRST;
    size_t avg = t->bytes / t->n + 1;
    size_t room = max_bytes > t->bytes ? (max_bytes - t->bytes) / avg : 0;
    return room < 1 ? 1 : room > CHUNK ? CHUNK : room;
}

enum aw_err aw_store_flush_take(struct aw_store *s, const char *account_id, const char *audience_id,
                                uint64_t epoch, size_t max_items, size_t max_adds, size_t max_bytes,
                                uint64_t now_unix_ms, struct aw_store_taken *out)
{
    memset(out, 0, sizeof *out);
    struct stream st;
    if (max_items == 0 || max_adds == 0 || max_bytes == 0 ||
        !stream_init(&st, account_id, audience_id))
        return AW_ERR_INVALID;
    char ep[24], mx[24], ch[24], now[24], ad[24];
    size_t adds = 0; /* adds taken so far */
    aw_store_u64(epoch, ep);
    aw_store_u64(max_items, mx);
    aw_store_u64(now_unix_ms, now);
    char *bid = aw_strdup("");
    enum aw_err e = AW_OK;
    for (;;) {
        aw_store_u64(take_chunk(out, max_bytes), ch);
        aw_store_u64(max_adds - adds, ad);
        const char *argv[12] = {
            st.meta,        account_id,   st.member,        ep, bid, mx, ch, now,
            s->max_queue_s, s->max_age_s, s->retention_s_s, ad};
        struct aw_redis_cmd c = {
            .script = AW_SCRIPT_TAKE, .nkeys = 1, .route = st.meta, .argc = 12, .argv = argv};
        e = aw_store_run_due(s, &c, account_id, 3);
        if (e != AW_OK)
            break;
        const struct aw_reply *rp = &c.reply;
        if (rp->n < 8 || rp->elem[0].type != AW_REPLY_STR || rp->elem[1].type != AW_REPLY_STR ||
            rp->elem[2].type != AW_REPLY_INT || rp->elem[6].type != AW_REPLY_STR ||
            rp->elem[7].type != AW_REPLY_STR) {
            aw_redis_cmd_clear(&c);
            snprintf(s->err, sizeof s->err, "take: unexpected reply shape");
            e = AW_ERR_PROTOCOL;
            break;
        }
        const char *status = rp->elem[0].str;
        bool more = rp->elem[2].integer != 0;
        out->disabled = strcmp(rp->elem[6].str, "disabled") == 0;
        uint64_t dv = strtoull(rp->elem[7].str, NULL, 10);
        free(bid);
        bid = aw_strndup(rp->elem[1].str, rp->elem[1].len);
        if (strcmp(status, "resumed") == 0) {
            out->status = AW_STORE_BATCH_RESUMED;
            aw_redis_cmd_clear(&c);
            e = read_inflight(s, &st, out, dv);
            break;
        }
        if (strcmp(status, "taken") == 0) {
            out->status = AW_STORE_BATCH_TAKEN;
            size_t before = out->n;
            e = add_entries(s, &st, rp, 8, out, dv, NULL); /* LTRIM and HDEL: no repeats */
            aw_redis_cmd_clear(&c);
            for (size_t i = before; audience_id && i < out->n; i++)
                adds += out->entries[i].change.action != AW_CHANGE_DELETE;
            if (e != AW_OK || !more || out->n >= max_items || adds >= max_adds ||
                out->bytes >= max_bytes)
                break;
            continue;
        }
        aw_redis_cmd_clear(&c);
        /* "empty", or "gone" while filling (an audience removal cannot end a batch, so this is
         * another leader's doing: the fencing check comes first) */
        if (out->status != AW_STORE_BATCH_TAKEN)
            out->status = AW_STORE_BATCH_EMPTY;
        break;
    }
    if (e == AW_OK && out->status != AW_STORE_BATCH_EMPTY) {
        out->batch_id = bid;
        bid = NULL;
        e = read_meta(s, &st, out);
    }
    free(bid);
    stream_free(&st);
    if (e != AW_OK)
        aw_store_taken_clear(out);
    return e;
}

enum aw_err aw_store_flush_ack(struct aw_store *s, const char *account_id, const char *audience_id,
                               uint64_t epoch, const char *batch_id, const char *const *emails,
                               const char *const *accepted, size_t n, uint64_t now_unix_ms,
                               enum aw_store_batch_status *status)
{
    if (status)
        *status = AW_STORE_BATCH_GONE;
    struct stream st;
    if (!batch_id || !batch_id[0] || !stream_init(&st, account_id, audience_id))
        return AW_ERR_INVALID;
    char ep[24], now[24];
    aw_store_u64(epoch, ep);
    aw_store_u64(now_unix_ms, now);
    const char **argv = aw_calloc(9 + 2 * CHUNK, sizeof *argv);
    enum aw_err e = AW_OK;
    size_t pos = 0;
    do {
        size_t m = n - pos < CHUNK ? n - pos : CHUNK;
        const char *fixed[9] = {st.meta,        account_id,   st.member,       ep, batch_id, now,
                                s->max_queue_s, s->max_age_s, s->retention_s_s};
        memcpy(argv, fixed, sizeof fixed);
        for (size_t k = 0; k < m; k++) {
            argv[9 + 2 * k] = emails[pos + k];
            argv[10 + 2 * k] = accepted && accepted[pos + k] ? accepted[pos + k] : "";
        }
        struct aw_redis_cmd c = {.script = AW_SCRIPT_ACK,
                                 .nkeys = 1,
                                 .route = st.meta,
                                 .argc = (int)(9 + 2 * m),
                                 .argv = argv};
        e = aw_store_run_due(s, &c, account_id, 2);
        if (e != AW_OK)
            break;
        const struct aw_reply *rp = &c.reply;
        if (rp->n < 5 || rp->elem[0].type != AW_REPLY_STR) {
            aw_redis_cmd_clear(&c);
            snprintf(s->err, sizeof s->err, "ack: unexpected reply shape");
            e = AW_ERR_PROTOCOL;
            break;
        }
        bool gone = strcmp(rp->elem[0].str, "gone") == 0;
        bool acked = strcmp(rp->elem[0].str, "acked") == 0;
        aw_redis_cmd_clear(&c);
        if (gone)
            break;
        if (acked) {
            if (status)
                *status = AW_STORE_BATCH_DONE;
            break;
        }
        pos += m;
        if (status)
            *status = AW_STORE_BATCH_PARTIAL;
    } while (pos < n);
    free(argv);
    stream_free(&st);
    return e;
}

/* batch_set.lua: field of the stream's meta = value ("" deletes), if batch_id is in flight. */
static enum aw_err batch_set(struct aw_store *s, const char *account_id, const char *audience_id,
                             uint64_t epoch, const char *batch_id, enum aw_store_name field,
                             const char *value, bool *written)
{
    if (written)
        *written = false;
    struct stream st;
    if (!batch_id || !batch_id[0] || strlen(value) > 256 ||
        !stream_init(&st, account_id, audience_id))
        return AW_ERR_INVALID;
    char ep[24];
    const char *argv[5] = {st.meta, aw_store_u64(epoch, ep), batch_id, aw_store_name(field), value};
    struct aw_redis_cmd c = {
        .script = AW_SCRIPT_BATCH_SET, .nkeys = 1, .route = st.meta, .argc = 5, .argv = argv};
    enum aw_err e = aw_store_run(s, &c);
    if (e == AW_OK) {
        if (written)
            *written = c.reply.type == AW_REPLY_INT && c.reply.integer == 1;
        aw_redis_cmd_clear(&c);
    }
    stream_free(&st);
    return e;
}

enum aw_err aw_store_flush_set_job(struct aw_store *s, const char *account_id,
                                   const char *audience_id, uint64_t epoch, const char *batch_id,
                                   const char *job_id, bool *written)
{
    return batch_set(s, account_id, audience_id, epoch, batch_id, AW_F_META_JOB_ID,
                     job_id ? job_id : "", written);
}

static enum aw_store_name sent_field(enum aw_store_sent what)
{
    return what == AW_STORE_SENT_CONSENT ? AW_F_META_CONSENT_SENT : AW_F_META_IMPORT_SENT;
}

enum aw_err aw_store_flush_mark_sent(struct aw_store *s, const char *account_id,
                                     const char *audience_id, enum aw_store_sent what,
                                     uint64_t epoch, const char *batch_id, uint64_t unix_ms,
                                     bool *written)
{
    char v[24];
    return batch_set(s, account_id, audience_id, epoch, batch_id, sent_field(what),
                     aw_store_u64(unix_ms, v), written);
}

enum aw_err aw_store_flush_sent_at(struct aw_store *s, const char *account_id,
                                   const char *audience_id, enum aw_store_sent what,
                                   uint64_t *unix_ms)
{
    *unix_ms = 0;
    struct stream st;
    if (!stream_init(&st, account_id, audience_id))
        return AW_ERR_INVALID;
    const char *argv[3] = {"HGET", st.meta, aw_store_name(sent_field(what))};
    struct aw_redis_cmd c = {.script = -1, .route = st.meta, .argc = 3, .argv = argv};
    enum aw_err e = aw_store_run(s, &c);
    if (e == AW_OK) {
        if (c.reply.type == AW_REPLY_STR)
            *unix_ms = strtoull(c.reply.str, NULL, 10);
        else if (c.reply.type != AW_REPLY_NIL)
            e = AW_ERR_PROTOCOL;
        aw_redis_cmd_clear(&c);
    }
    stream_free(&st);
    return e;
}

enum aw_err aw_store_flush_due_now(struct aw_store *s, const char *account_id,
                                   const char *audience_id, uint64_t now_unix_ms, bool *due,
                                   int64_t *pending, int64_t *inflight)
{
    *due = false;
    *pending = *inflight = 0;
    struct stream st;
    if (!stream_init(&st, account_id, audience_id))
        return AW_ERR_INVALID;
    char now[24];
    const char *argv[6] = {st.meta,        account_id,  st.member, aw_store_u64(now_unix_ms, now),
                           s->max_queue_s, s->max_age_s};
    struct aw_redis_cmd c = {
        .script = AW_SCRIPT_DUE_NOW, .nkeys = 1, .route = st.meta, .argc = 6, .argv = argv};
    enum aw_err e = aw_store_run_due(s, &c, account_id, 1);
    if (e == AW_OK) {
        const struct aw_reply *rp = &c.reply;
        if (rp->n == 6 && rp->elem[0].type == AW_REPLY_STR && rp->elem[4].type == AW_REPLY_INT &&
            rp->elem[5].type == AW_REPLY_INT) {
            *due = strcmp(rp->elem[0].str, "due") == 0;
            *pending = rp->elem[4].integer;
            *inflight = rp->elem[5].integer;
        } else {
            snprintf(s->err, sizeof s->err, "due_now: unexpected reply shape");
            e = AW_ERR_PROTOCOL;
        }
        aw_redis_cmd_clear(&c);
    }
    stream_free(&st);
    return e;
}

enum aw_err aw_store_flush_peek(struct aw_store *s, const char *account_id, const char *audience_id,
                                size_t max_items, struct aw_store_taken *out)
{
    memset(out, 0, sizeof *out);
    struct stream st;
    if (max_items == 0 || max_items > CHUNK || !stream_init(&st, account_id, audience_id))
        return AW_ERR_INVALID;
    char mx[24];
    const char *argv[4] = {st.meta, account_id, st.member, aw_store_u64(max_items, mx)};
    struct aw_redis_cmd c = {
        .script = AW_SCRIPT_PEEK, .nkeys = 1, .route = st.meta, .argc = 4, .argv = argv};
    enum aw_err e = aw_store_run(s, &c);
    if (e == AW_OK) {
        const struct aw_reply *rp = &c.reply;
        if (rp->type != AW_REPLY_ARRAY || rp->n < 3 || rp->elem[0].type != AW_REPLY_STR ||
            rp->elem[1].type != AW_REPLY_STR || rp->elem[2].type != AW_REPLY_STR) {
            snprintf(s->err, sizeof s->err, "peek: unexpected reply shape");
            e = AW_ERR_PROTOCOL;
        } else {
            const char *status = rp->elem[0].str;
            out->status = strcmp(status, "resumed") == 0   ? AW_STORE_BATCH_RESUMED
                          : strcmp(status, "pending") == 0 ? AW_STORE_BATCH_TAKEN
                                                           : AW_STORE_BATCH_EMPTY;
            out->disabled = strcmp(rp->elem[1].str, "disabled") == 0;
            struct seen sn = {NULL, 0}; /* a batch in flight is read with HSCAN */
            e = add_entries(s, &st, rp, 3, out, strtoull(rp->elem[2].str, NULL, 10), &sn);
            free(sn.slot);
        }
        aw_redis_cmd_clear(&c);
    }
    if (e == AW_OK)
        e = read_meta(s, &st, out);
    stream_free(&st);
    if (e != AW_OK)
        aw_store_taken_clear(out);
    return e;
}
