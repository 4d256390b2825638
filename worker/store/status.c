/* status.c -- read-only views of the store (see status.h). */
#include "worker/store/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "worker/store/internal.h"

void aw_store_strings_free(char **v, size_t n)
{
    for (size_t i = 0; i < n && v; i++)
        free(v[i]);
    free(v);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The valid ids of an SMEMBERS reply, sorted, into *out (caller-owned) and *n. */
static enum aw_err ids_of(const struct aw_reply *r, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (r->type != AW_REPLY_ARRAY)
        return AW_ERR_PROTOCOL;
    char **v = aw_calloc(r->n ? r->n : 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->elem[i].type == AW_REPLY_STR && aw_store_id_ok(r->elem[i].str))
            v[k++] = aw_strdup(r->elem[i].str);
    qsort(v, k, sizeof *v, str_cmp);
    *out = v;
    *n = k;
    return AW_OK;
}

static enum aw_err members(struct aw_store *s, const char *key, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const char *argv[2] = {"SMEMBERS", key};
    struct aw_redis_cmd c = {.script = -1, .route = key, .argc = 2, .argv = argv};
    enum aw_err e = aw_store_run(s, &c);
    if (e != AW_OK)
        return e;
    e = ids_of(&c.reply, out, n);
    aw_redis_cmd_clear(&c);
    return e;
}

enum aw_err aw_store_accounts(struct aw_store *s, char ***out, size_t *n)
{
    return members(s, aw_store_name(AW_K_GLOBAL_ACCOUNTS), out, n);
}

enum aw_err aw_store_audiences(struct aw_store *s, const char *account_id, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!aw_store_id_ok(account_id))
        return AW_ERR_INVALID;
    char *key = aw_store_key(account_id, AW_K_AUDIENCES, NULL, NULL);
    enum aw_err e = members(s, key, out, n);
    free(key);
    return e;
}

void aw_store_account_view_clear(struct aw_store_account_view *v)
{
    aw_store_strings_free(v->audiences, v->n_audiences);
    memset(v, 0, sizeof *v);
}

enum aw_err aw_store_accounts_view(struct aw_store *s, const char *const *accounts, size_t n,
                                   struct aw_store_account_view *out)
{
    memset(out, 0, n * sizeof *out);
    for (size_t i = 0; i < n; i++)
        if (!aw_store_id_ok(accounts[i]))
            return AW_ERR_INVALID;
    if (n == 0)
        return AW_OK;
    char **keys = aw_calloc(2 * n, sizeof *keys);
    const char **argv = aw_calloc(6 * n, sizeof *argv);
    struct aw_redis_cmd *c = aw_calloc(2 * n, sizeof *c);
    for (size_t i = 0; i < n; i++) {
        keys[2 * i] = aw_store_key(accounts[i], AW_K_AUDIENCES, NULL, NULL);
        keys[2 * i + 1] = aw_store_key(accounts[i], AW_K_ACCOUNT, NULL, NULL);
        const char **a = &argv[6 * i];
        a[0] = "SMEMBERS";
        a[1] = keys[2 * i];
        a[2] = "HMGET";
        a[3] = keys[2 * i + 1];
        a[4] = aw_store_name(AW_F_ACCT_PAUSED_UNTIL);
        a[5] = aw_store_name(AW_F_ACCT_PAUSED_STATUS);
        c[2 * i] = (struct aw_redis_cmd){.script = -1, .route = a[1], .argc = 2, .argv = a};
        c[2 * i + 1] = (struct aw_redis_cmd){.script = -1, .route = a[3], .argc = 4, .argv = a + 2};
    }
    enum aw_err e = aw_redis_exec(s->r, c, 2 * n);
    for (size_t i = 0; i < n && e == AW_OK; i++) {
        e = c[2 * i].err != AW_OK ? c[2 * i].err : c[2 * i + 1].err;
        if (e == AW_OK)
            e = ids_of(&c[2 * i].reply, &out[i].audiences, &out[i].n_audiences);
        const struct aw_reply *p = &c[2 * i + 1].reply;
        if (e == AW_OK && (p->type != AW_REPLY_ARRAY || p->n != 2))
            e = AW_ERR_PROTOCOL;
        if (e == AW_OK && p->elem[0].type == AW_REPLY_STR)
            out[i].paused_until_ms = strtoull(p->elem[0].str, NULL, 10);
        if (e == AW_OK && p->elem[1].type == AW_REPLY_STR)
            out[i].paused_status = strtol(p->elem[1].str, NULL, 10);
    }
    for (size_t i = 0; i < 2 * n; i++) {
        aw_redis_cmd_clear(&c[i]);
        free(keys[i]);
    }
    for (size_t i = 0; i < n && e != AW_OK; i++)
        aw_store_account_view_clear(&out[i]);
    free(c);
    free(argv);
    free(keys);
    return aw_store_fail(s, e);
}

void aw_store_stream_info_clear(struct aw_store_stream_info *info)
{
    free(info->name);
    free(info->state);
    free(info->list_id);
    free(info->klaviyo_list_id);
    free(info->batch_id);
    memset(info, 0, sizeof *info);
}

static int64_t int_of(const struct aw_reply *r)
{
    if (r->type == AW_REPLY_INT)
        return r->integer;
    if (r->type == AW_REPLY_STR)
        return strtoll(r->str, NULL, 10);
    return -1;
}

static char *str_of(const struct aw_reply *r)
{
    return r->type == AW_REPLY_STR ? aw_strndup(r->str, r->len) : NULL;
}

/* The keys and the four reads of one stream (owned keys freed by stream_cmds_free). */
struct stream_cmds {
    char *meta, *pending, *inflight, *due, *member;
    const char *hlen_p[2], *hlen_f[2], *zscore[3], *hmget[10];
};

static void stream_cmds_init(struct stream_cmds *k, const char *acct, const char *aud,
                             struct aw_redis_cmd c[4])
{
    k->meta = aud ? aw_store_key(acct, AW_K_AUDIENCE, aud, NULL)
                  : aw_store_key(acct, AW_K_PROFILES, NULL, NULL);
    size_t ml = strlen(k->meta);
    k->pending = aw_malloc(ml + 8);
    k->inflight = aw_malloc(ml + 8);
    snprintf(k->pending, ml + 8, "%s%s", k->meta, aw_store_name(AW_K_PENDING));
    snprintf(k->inflight, ml + 8, "%s%s", k->meta, aw_store_name(AW_K_INFLIGHT));
    k->due = aw_store_key(acct, AW_K_DUE, NULL, NULL);
    k->member = aw_store_stream_member(aud);
    k->hlen_p[0] = k->hlen_f[0] = "HLEN";
    k->hlen_p[1] = k->pending;
    k->hlen_f[1] = k->inflight;
    k->zscore[0] = "ZSCORE";
    k->zscore[1] = k->due;
    k->zscore[2] = k->member;
    const char *hmget[10] = {"HMGET",
                             k->meta,
                             aw_store_name(AW_F_META_FIRST_PENDING),
                             aw_store_name(AW_F_META_LAST_UPLOAD),
                             aw_store_name(AW_F_META_BATCH_STARTED),
                             aw_store_name(AW_F_META_NAME),
                             aw_store_name(AW_F_META_STATE),
                             aw_store_name(AW_F_META_LIST_ID),
                             aw_store_name(AW_F_META_KLAVIYO_LIST_ID),
                             aw_store_name(AW_F_META_BATCH_ID)};
    memcpy(k->hmget, hmget, sizeof hmget);
    c[0] = (struct aw_redis_cmd){.script = -1, .route = k->meta, .argc = 2, .argv = k->hlen_p};
    c[1] = (struct aw_redis_cmd){.script = -1, .route = k->meta, .argc = 2, .argv = k->hlen_f};
    c[2] = (struct aw_redis_cmd){.script = -1, .route = k->meta, .argc = 3, .argv = k->zscore};
    c[3] = (struct aw_redis_cmd){.script = -1, .route = k->meta, .argc = 10, .argv = k->hmget};
}

static void stream_cmds_free(struct stream_cmds *k)
{
    free(k->meta);
    free(k->pending);
    free(k->inflight);
    free(k->due);
    free(k->member);
}

/* Fills *out from the four replies of one stream. */
static enum aw_err stream_info_of(struct aw_redis_cmd c[4], struct aw_store_stream_info *out)
{
    for (int i = 0; i < 4; i++)
        if (c[i].err != AW_OK)
            return c[i].err;
    if (c[3].reply.type != AW_REPLY_ARRAY || c[3].reply.n != 8)
        return AW_ERR_PROTOCOL;
    out->pending = int_of(&c[0].reply);
    out->inflight = int_of(&c[1].reply);
    out->due_unix_ms = c[2].reply.type == AW_REPLY_NIL ? -1 : int_of(&c[2].reply);
    const struct aw_reply *m = c[3].reply.elem;
    out->first_pending_ms = int_of(&m[0]);
    out->last_upload_ms = int_of(&m[1]);
    out->batch_started_ms = int_of(&m[2]);
    out->name = str_of(&m[3]);
    out->state = str_of(&m[4]);
    out->list_id = str_of(&m[5]);
    out->klaviyo_list_id = str_of(&m[6]);
    out->batch_id = str_of(&m[7]);
    return AW_OK;
}

#define STREAMS_PER_PIPELINE 1000u /* 4 reads each */

enum aw_err aw_store_streams_info(struct aw_store *s, const struct aw_store_stream_ref *refs,
                                  size_t n, struct aw_store_stream_info *out)
{
    memset(out, 0, n * sizeof *out);
    for (size_t i = 0; i < n; i++)
        if (!aw_store_id_ok(refs[i].account_id) ||
            (refs[i].audience_id && !aw_store_id_ok(refs[i].audience_id)))
            return AW_ERR_INVALID;
    size_t per = n < STREAMS_PER_PIPELINE ? n : STREAMS_PER_PIPELINE;
    struct stream_cmds *k = aw_calloc(per + 1, sizeof *k);
    struct aw_redis_cmd *c = aw_calloc(4 * per + 1, sizeof *c);
    enum aw_err e = AW_OK;
    for (size_t from = 0; from < n && e == AW_OK; from += per) {
        size_t m = n - from < per ? n - from : per;
        for (size_t i = 0; i < m; i++)
            stream_cmds_init(&k[i], refs[from + i].account_id, refs[from + i].audience_id,
                             &c[4 * i]);
        e = aw_redis_exec(s->r, c, 4 * m);
        for (size_t i = 0; i < m && e == AW_OK; i++)
            e = stream_info_of(&c[4 * i], &out[from + i]);
        for (size_t i = 0; i < m; i++) {
            for (int q = 0; q < 4; q++)
                aw_redis_cmd_clear(&c[4 * i + q]);
            stream_cmds_free(&k[i]);
        }
    }
    for (size_t i = 0; i < n && e != AW_OK; i++)
        aw_store_stream_info_clear(&out[i]);
    free(c);
    free(k);
    return aw_store_fail(s, e);
}

enum aw_err aw_store_stream_info(struct aw_store *s, const char *account_id,
                                 const char *audience_id, struct aw_store_stream_info *out)
{
    struct aw_store_stream_ref ref = {account_id, audience_id};
    return aw_store_streams_info(s, &ref, 1, out);
}
