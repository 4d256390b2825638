/* lease.c -- the leader lease (see lease.h). */
#include "worker/store/lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "worker/store/internal.h"

static enum aw_err lease_op(struct aw_store *s, const char *op, const char *token, uint64_t ttl_ms,
                            bool *held, uint64_t *epoch)
{
    if (held)
        *held = false;
    if (!token || !token[0] || strlen(token) > 256)
        return AW_ERR_INVALID;
    char ttl[24];
    const char *argv[5] = {aw_store_name(AW_K_LEASE), aw_store_name(AW_K_EPOCH), op, token,
                           aw_store_u64(ttl_ms ? ttl_ms : 1, ttl)};
    struct aw_redis_cmd c = {
        .script = AW_SCRIPT_LEASE, .nkeys = 2, .route = argv[0], .argc = 5, .argv = argv};
    enum aw_err e = aw_store_run(s, &c);
    if (e != AW_OK)
        return e;
    const struct aw_reply *rp = &c.reply;
    if (rp->type != AW_REPLY_ARRAY || rp->n != 2 || rp->elem[0].type != AW_REPLY_INT ||
        rp->elem[1].type != AW_REPLY_INT || rp->elem[1].integer < 0) {
        aw_redis_cmd_clear(&c);
        snprintf(s->err, sizeof s->err, "lease: unexpected reply shape");
        return AW_ERR_PROTOCOL;
    }
    if (held)
        *held = rp->elem[0].integer == 1;
    if (epoch)
        *epoch = (uint64_t)rp->elem[1].integer;
    aw_redis_cmd_clear(&c);
    return AW_OK;
}

enum aw_err aw_store_lease_acquire(struct aw_store *s, const char *token, uint64_t ttl_ms,
                                   bool *held, uint64_t *epoch)
{
    return lease_op(s, "acquire", token, ttl_ms, held, epoch);
}

enum aw_err aw_store_lease_renew(struct aw_store *s, const char *token, uint64_t ttl_ms, bool *held,
                                 uint64_t *epoch)
{
    return lease_op(s, "renew", token, ttl_ms, held, epoch);
}

enum aw_err aw_store_lease_release(struct aw_store *s, const char *token)
{
    return lease_op(s, "release", token, 1, NULL, NULL);
}

enum aw_err aw_store_lease_info(struct aw_store *s, int64_t *ttl_ms, uint64_t *epoch, char **holder)
{
    *ttl_ms = -1;
    *epoch = 0;
    if (holder)
        *holder = NULL;
    const char *pttl[2] = {"PTTL", aw_store_name(AW_K_LEASE)};
    const char *get[2] = {"GET", aw_store_name(AW_K_EPOCH)};
    const char *tok[2] = {"GET", aw_store_name(AW_K_LEASE)};
    struct aw_redis_cmd c[3] = {{.script = -1, .route = pttl[1], .argc = 2, .argv = pttl},
                                {.script = -1, .route = get[1], .argc = 2, .argv = get},
                                {.script = -1, .route = tok[1], .argc = 2, .argv = tok}};
    enum aw_err e = aw_redis_exec(s->r, c, 3);
    for (int i = 0; i < 3 && e == AW_OK; i++)
        e = c[i].err;
    if (e == AW_OK) {
        if (c[0].reply.type == AW_REPLY_INT)
            *ttl_ms = c[0].reply.integer < 0 ? -1 : c[0].reply.integer;
        if (c[1].reply.type == AW_REPLY_STR)
            *epoch = strtoull(c[1].reply.str, NULL, 10);
        const char *slash = c[2].reply.type == AW_REPLY_STR ? strrchr(c[2].reply.str, '/') : NULL;
        if (holder && slash && slash > c[2].reply.str)
            *holder = aw_strndup(c[2].reply.str, (size_t)(slash - c[2].reply.str));
    }
    for (int i = 0; i < 3; i++)
        aw_redis_cmd_clear(&c[i]);
    return aw_store_fail(s, e);
}
