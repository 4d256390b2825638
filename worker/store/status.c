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

static enum aw_err members(struct aw_store *s, const char *key, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const char *argv[2] = {"SMEMBERS", key};
    struct aw_redis_cmd c = {.script = -1, .route = key, .argc = 2, .argv = argv};
    enum aw_err e = aw_store_run(s, &c);
    if (e != AW_OK)
        return e;
    if (c.reply.type != AW_REPLY_ARRAY) {
        aw_redis_cmd_clear(&c);
        return AW_ERR_PROTOCOL;
    }
    char **v = aw_calloc(c.reply.n ? c.reply.n : 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < c.reply.n; i++)
        if (c.reply.elem[i].type == AW_REPLY_STR && aw_store_id_ok(c.reply.elem[i].str))
            v[k++] = aw_strdup(c.reply.elem[i].str);
    aw_redis_cmd_clear(&c);
    qsort(v, k, sizeof *v, str_cmp);
    *out = v;
    *n = k;
    return AW_OK;
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

enum aw_err aw_store_stream_info(struct aw_store *s, const char *account_id,
                                 const char *audience_id, struct aw_store_stream_info *out)
{
    memset(out, 0, sizeof *out);
    if (!aw_store_id_ok(account_id) || (audience_id && !aw_store_id_ok(audience_id)))
        return AW_ERR_INVALID;
    char *meta = audience_id ? aw_store_key(account_id, AW_K_AUDIENCE, audience_id, NULL)
                             : aw_store_key(account_id, AW_K_PROFILES, NULL, NULL);
    size_t ml = strlen(meta);
    char *pending = aw_malloc(ml + 8), *inflight = aw_malloc(ml + 8);
    snprintf(pending, ml + 8, "%s%s", meta, aw_store_name(AW_K_PENDING));
    snprintf(inflight, ml + 8, "%s%s", meta, aw_store_name(AW_K_INFLIGHT));
    char *due = aw_store_key(account_id, AW_K_DUE, NULL, NULL);
    char *member = aw_store_stream_member(audience_id);
    const char *hlen_p[2] = {"HLEN", pending}, *hlen_f[2] = {"HLEN", inflight};
    const char *zscore[3] = {"ZSCORE", due, member};
    const char *hmget[10] = {"HMGET",
                             meta,
                             aw_store_name(AW_F_META_FIRST_PENDING),
                             aw_store_name(AW_F_META_LAST_UPLOAD),
                             aw_store_name(AW_F_META_BATCH_STARTED),
                             aw_store_name(AW_F_META_NAME),
                             aw_store_name(AW_F_META_STATE),
                             aw_store_name(AW_F_META_LIST_ID),
                             aw_store_name(AW_F_META_KLAVIYO_LIST_ID),
                             aw_store_name(AW_F_META_BATCH_ID)};
    struct aw_redis_cmd c[4] = {{.script = -1, .route = meta, .argc = 2, .argv = hlen_p},
                                {.script = -1, .route = meta, .argc = 2, .argv = hlen_f},
                                {.script = -1, .route = meta, .argc = 3, .argv = zscore},
                                {.script = -1, .route = meta, .argc = 10, .argv = hmget}};
    enum aw_err e = aw_redis_exec(s->r, c, 4);
    for (int i = 0; i < 4 && e == AW_OK; i++)
        e = c[i].err;
    if (e == AW_OK && (c[3].reply.type != AW_REPLY_ARRAY || c[3].reply.n != 8))
        e = AW_ERR_PROTOCOL;
    if (e == AW_OK) {
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
    }
    for (int i = 0; i < 4; i++)
        aw_redis_cmd_clear(&c[i]);
    free(meta);
    free(pending);
    free(inflight);
    free(due);
    free(member);
    return aw_store_fail(s, e);
}
