/* account_ops.c -- per-account state and Klaviyo-side facts (see account_ops.h). */
#include "worker/store/account_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "worker/store/internal.h"

#define API_KEY_MAX 512
#define LIST_COUNT_TTL "172800" /* two days: the count is per UTC day */

/* What goes into an HTTP header: printable ASCII without spaces, at most API_KEY_MAX bytes. */
static bool api_key_ok(const char *k)
{
    size_t n = 0;
    for (; k && k[n]; n++)
        if ((unsigned char)k[n] <= 0x20 || (unsigned char)k[n] >= 0x7f)
            return false;
    return n > 0 && n <= API_KEY_MAX;
}

enum aw_err aw_store_account_put(struct aw_store *s, const char *account_id, const char *api_key,
                                 uint64_t version_ms)
{
    if (!aw_store_id_ok(account_id) || !api_key_ok(api_key))
        return AW_ERR_INVALID;
    char *key = aw_store_key(account_id, AW_K_ACCOUNT, NULL, NULL);
    char ver[24];
    const char *argv[3] = {key, api_key, aw_store_u64(version_ms, ver)};
    struct aw_redis_cmd c = {
        .script = AW_SCRIPT_ACCOUNT_KEY, .nkeys = 1, .route = key, .argc = 3, .argv = argv};
    enum aw_err e = aw_store_run(s, &c);
    if (e == AW_OK)
        aw_redis_cmd_clear(&c);
    free(key);
    return e;
}

/* Runs account_pause.lua: until "" clears the pause. */
static enum aw_err pause_set(struct aw_store *s, const char *account_id, const char *until,
                             const char *status)
{
    if (!aw_store_id_ok(account_id))
        return AW_ERR_INVALID;
    char *key = aw_store_key(account_id, AW_K_ACCOUNT, NULL, NULL);
    const char *argv[3] = {key, until, status};
    struct aw_redis_cmd c = {
        .script = AW_SCRIPT_ACCOUNT_PAUSE, .nkeys = 1, .route = key, .argc = 3, .argv = argv};
    enum aw_err e = aw_store_run(s, &c);
    if (e == AW_OK)
        aw_redis_cmd_clear(&c);
    free(key);
    return e;
}

enum aw_err aw_store_account_pause(struct aw_store *s, const char *account_id,
                                   uint64_t until_unix_ms, long status)
{
    char until[24], st[24];
    snprintf(st, sizeof st, "%ld", status);
    return pause_set(s, account_id, aw_store_u64(until_unix_ms, until), st);
}

enum aw_err aw_store_account_unpause(struct aw_store *s, const char *account_id)
{
    return pause_set(s, account_id, "", "");
}

enum aw_err aw_store_account_paused(struct aw_store *s, const char *account_id,
                                    uint64_t *until_unix_ms, long *status)
{
    *until_unix_ms = 0;
    *status = 0;
    if (!aw_store_id_ok(account_id))
        return AW_ERR_INVALID;
    char *key = aw_store_key(account_id, AW_K_ACCOUNT, NULL, NULL);
    const char *argv[4] = {"HMGET", key, aw_store_name(AW_F_ACCT_PAUSED_UNTIL),
                           aw_store_name(AW_F_ACCT_PAUSED_STATUS)};
    struct aw_redis_cmd c = {.script = -1, .route = key, .argc = 4, .argv = argv};
    enum aw_err e = aw_store_run(s, &c);
    free(key);
    if (e != AW_OK)
        return e;
    if (c.reply.type == AW_REPLY_ARRAY && c.reply.n == 2) {
        if (c.reply.elem[0].type == AW_REPLY_STR)
            *until_unix_ms = strtoull(c.reply.elem[0].str, NULL, 10);
        if (c.reply.elem[1].type == AW_REPLY_STR)
            *status = strtol(c.reply.elem[1].str, NULL, 10);
    }
    aw_redis_cmd_clear(&c);
    return AW_OK;
}

/* HSETNX / HDEL of the account in {aw:due}:paused; *changed from the integer reply. */
static enum aw_err operator_pause_set(struct aw_store *s, const char *account_id, const char *since,
                                      bool *changed)
{
    *changed = false;
    if (!aw_store_id_ok(account_id))
        return AW_ERR_INVALID;
    const char *key = aw_store_name(AW_K_GLOBAL_PAUSED);
    const char *argv[4] = {since ? "HSETNX" : "HDEL", key, account_id, since};
    struct aw_redis_cmd c = {.script = -1, .route = key, .argc = since ? 4 : 3, .argv = argv};
    enum aw_err e = aw_store_run(s, &c);
    if (e != AW_OK)
        return e;
    *changed = c.reply.type == AW_REPLY_INT && c.reply.integer == 1;
    aw_redis_cmd_clear(&c);
    return AW_OK;
}

enum aw_err aw_store_account_operator_pause(struct aw_store *s, const char *account_id,
                                            uint64_t now_unix_ms, bool *changed)
{
    char since[24];
    return operator_pause_set(s, account_id, aw_store_u64(now_unix_ms, since), changed);
}

enum aw_err aw_store_account_operator_resume(struct aw_store *s, const char *account_id,
                                             bool *changed)
{
    return operator_pause_set(s, account_id, NULL, changed);
}

struct paused_pair {
    char *id;
    uint64_t since;
};

static int pair_cmp(const void *a, const void *b)
{
    return strcmp(((const struct paused_pair *)a)->id, ((const struct paused_pair *)b)->id);
}

enum aw_err aw_store_operator_paused(struct aw_store *s, char ***ids, uint64_t **since_unix_ms,
                                     size_t *n)
{
    *ids = NULL;
    *since_unix_ms = NULL;
    *n = 0;
    const char *key = aw_store_name(AW_K_GLOBAL_PAUSED);
    const char *argv[2] = {"HGETALL", key};
    struct aw_redis_cmd c = {.script = -1, .route = key, .argc = 2, .argv = argv};
    enum aw_err e = aw_store_run(s, &c);
    if (e != AW_OK)
        return e;
    if (c.reply.type != AW_REPLY_ARRAY || c.reply.n % 2 != 0) {
        aw_redis_cmd_clear(&c);
        snprintf(s->err, sizeof s->err, "HGETALL paused: unexpected reply");
        return AW_ERR_PROTOCOL;
    }
    size_t m = c.reply.n / 2, k = 0;
    struct paused_pair *p = aw_calloc(m ? m : 1, sizeof *p);
    for (size_t i = 0; i < m; i++) {
        const struct aw_reply *id = &c.reply.elem[2 * i], *v = &c.reply.elem[2 * i + 1];
        if (id->type != AW_REPLY_STR || !aw_store_id_ok(id->str))
            continue;
        p[k].id = aw_strdup(id->str);
        p[k++].since = v->type == AW_REPLY_STR ? strtoull(v->str, NULL, 10) : 0;
    }
    aw_redis_cmd_clear(&c);
    qsort(p, k, sizeof *p, pair_cmp);
    *ids = aw_calloc(k ? k : 1, sizeof **ids);
    *since_unix_ms = aw_calloc(k ? k : 1, sizeof **since_unix_ms);
    for (size_t i = 0; i < k; i++) {
        (*ids)[i] = p[i].id;
        (*since_unix_ms)[i] = p[i].since;
    }
    free(p);
    *n = k;
    return AW_OK;
}

enum aw_err aw_store_account_get(struct aw_store *s, const char *account_id, char **api_key,
                                 uint64_t *block_until_unix_ms)
{
    if (api_key)
        *api_key = NULL;
    if (block_until_unix_ms)
        *block_until_unix_ms = 0;
    if (!aw_store_id_ok(account_id))
        return AW_ERR_INVALID;
    char *key = aw_store_key(account_id, AW_K_ACCOUNT, NULL, NULL);
    const char *argv[4] = {"HMGET", key, aw_store_name(AW_F_ACCT_API_KEY),
                           aw_store_name(AW_F_ACCT_BLOCK_UNTIL)};
    struct aw_redis_cmd c = {.script = -1, .route = key, .argc = 4, .argv = argv};
    enum aw_err e = aw_store_run(s, &c);
    free(key);
    if (e != AW_OK)
        return e;
    if (c.reply.type != AW_REPLY_ARRAY || c.reply.n != 2) {
        aw_redis_cmd_clear(&c);
        snprintf(s->err, sizeof s->err, "HMGET account: unexpected reply");
        return AW_ERR_PROTOCOL;
    }
    struct aw_reply *k = &c.reply.elem[0], *b = &c.reply.elem[1];
    if (api_key && k->type == AW_REPLY_STR && k->len > 0)
        *api_key = aw_strndup(k->str, k->len);
    if (block_until_unix_ms && b->type == AW_REPLY_STR)
        *block_until_unix_ms = strtoull(b->str, NULL, 10);
    if (k->type == AW_REPLY_STR && k->str)
        memset(k->str, 0, k->len); /* the reply held the key: wipe it before freeing */
    aw_redis_cmd_clear(&c);
    return AW_OK;
}

enum aw_err aw_store_account_block(struct aw_store *s, const char *account_id,
                                   uint64_t until_unix_ms)
{
    if (!aw_store_id_ok(account_id))
        return AW_ERR_INVALID;
    char *key = aw_store_key(account_id, AW_K_ACCOUNT, NULL, NULL);
    char until[24];
    const char *argv[2] = {key, aw_store_u64(until_unix_ms, until)};
    struct aw_redis_cmd c = {
        .script = AW_SCRIPT_BLOCK, .nkeys = 1, .route = key, .argc = 2, .argv = argv};
    enum aw_err e = aw_store_run(s, &c);
    if (e == AW_OK)
        aw_redis_cmd_clear(&c);
    free(key);
    return e;
}

enum aw_err aw_store_account_count_list_create(struct aw_store *s, const char *account_id,
                                               uint64_t now_unix_ms, int64_t delta, int64_t *count)
{
    *count = 0;
    if (!aw_store_id_ok(account_id))
        return AW_ERR_INVALID;
    char day[24], by[24];
    char *key = aw_store_key(account_id, AW_K_LISTS_CREATED,
                             aw_store_u64(now_unix_ms / 86400000u, day), NULL);
    const char *argv[3] = {key, aw_store_i64(delta, by), LIST_COUNT_TTL};
    struct aw_redis_cmd c = {
        .script = AW_SCRIPT_LIST_COUNT, .nkeys = 1, .route = key, .argc = 3, .argv = argv};
    enum aw_err e = aw_store_run(s, &c);
    if (e == AW_OK) {
        if (c.reply.type == AW_REPLY_INT)
            *count = c.reply.integer;
        else {
            snprintf(s->err, sizeof s->err, "list_count: unexpected reply");
            e = AW_ERR_PROTOCOL;
        }
        aw_redis_cmd_clear(&c);
    }
    free(key);
    return e;
}

enum aw_err aw_store_audience_list_set(struct aw_store *s, const char *account_id,
                                       const char *audience_id, const char *list_id)
{
    if (!aw_store_id_ok(account_id) || !aw_store_id_ok(audience_id) ||
        (list_id && strlen(list_id) > 1024))
        return AW_ERR_INVALID;
    char *key = aw_store_key(account_id, AW_K_AUDIENCE, audience_id, NULL);
    const char *argv[2] = {key, list_id ? list_id : ""};
    struct aw_redis_cmd c = {
        .script = AW_SCRIPT_LIST_ID, .nkeys = 1, .route = key, .argc = 2, .argv = argv};
    enum aw_err e = aw_store_run(s, &c);
    if (e == AW_OK)
        aw_redis_cmd_clear(&c);
    free(key);
    return e;
}

enum aw_err aw_store_profile_ids_get(struct aw_store *s, const char *account_id,
                                     const char *const *emails, size_t n, char **ids)
{
    for (size_t i = 0; i < n; i++)
        ids[i] = NULL;
    if (!aw_store_id_ok(account_id))
        return AW_ERR_INVALID;
    if (n == 0)
        return AW_OK;
    char **keys = aw_calloc(n, sizeof *keys);
    const char **argv = aw_calloc(3 * n, sizeof *argv);
    struct aw_redis_cmd *c = aw_calloc(n, sizeof *c);
    for (size_t i = 0; i < n; i++) {
        keys[i] = aw_store_key(account_id, AW_K_USER, emails[i], NULL);
        argv[3 * i] = "HGET";
        argv[3 * i + 1] = keys[i];
        argv[3 * i + 2] = aw_store_name(AW_F_USER_PROFILE_ID);
        c[i] =
            (struct aw_redis_cmd){.script = -1, .route = keys[i], .argc = 3, .argv = &argv[3 * i]};
    }
    enum aw_err e = aw_redis_exec(s->r, c, n);
    for (size_t i = 0; i < n; i++) {
        if (e == AW_OK && c[i].err != AW_OK)
            e = c[i].err;
        if (c[i].err == AW_OK && c[i].reply.type == AW_REPLY_STR && c[i].reply.len)
            ids[i] = aw_strndup(c[i].reply.str, c[i].reply.len);
        aw_redis_cmd_clear(&c[i]);
        free(keys[i]);
    }
    free(c);
    free(argv);
    free(keys);
    return aw_store_fail(s, e);
}

enum aw_err aw_store_profile_ids_set(struct aw_store *s, const char *account_id,
                                     const char *const *emails, const char *const *ids, size_t n)
{
    if (!aw_store_id_ok(account_id))
        return AW_ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        if (!emails[i] || !emails[i][0] || (ids[i] && strlen(ids[i]) > 256))
            return AW_ERR_INVALID;
    if (n == 0)
        return AW_OK;
    char **keys = aw_calloc(n, sizeof *keys);
    const char **argv = aw_calloc(2 * n, sizeof *argv);
    struct aw_redis_cmd *c = aw_calloc(n, sizeof *c);
    for (size_t i = 0; i < n; i++) {
        keys[i] = aw_store_key(account_id, AW_K_USER, emails[i], NULL);
        argv[2 * i] = keys[i];
        argv[2 * i + 1] = ids[i] ? ids[i] : "";
        c[i] = (struct aw_redis_cmd){.script = AW_SCRIPT_PROFILE_ID,
                                     .nkeys = 1,
                                     .route = keys[i],
                                     .argc = 2,
                                     .argv = &argv[2 * i]};
    }
    enum aw_err e = aw_redis_exec(s->r, c, n); /* one pipeline */
    for (size_t i = 0; i < n; i++) {
        if (e == AW_OK && c[i].err != AW_OK)
            e = c[i].err;
        aw_redis_cmd_clear(&c[i]);
        free(keys[i]);
    }
    free(c);
    free(argv);
    free(keys);
    return aw_store_fail(s, e);
}

enum aw_err aw_store_profile_id_set(struct aw_store *s, const char *account_id, const char *email,
                                    const char *id)
{
    return aw_store_profile_ids_set(s, account_id, &email, &id, 1);
}
