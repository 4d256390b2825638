/* summary.c -- the store in three numbers (see summary.h). */
#include "worker/store/summary.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "worker/store/internal.h"
#include "worker/store/status.h"

#define CHUNK 256 /* streams (or accounts) per pipeline */

static uint64_t u64_of(const struct aw_reply *r)
{
    if (r->type == AW_REPLY_INT)
        return r->integer > 0 ? (uint64_t)r->integer : 0;
    if (r->type == AW_REPLY_STR)
        return strtoull(r->str, NULL, 10);
    return 0;
}

/* Meta keys of every stream of accts[0..n), appended to *metas (at most max in all). */
static enum aw_err stream_metas(struct aw_store *s, char **accts, size_t n, char ***metas,
                                size_t *nm, size_t *cap, size_t max, bool *truncated)
{
    char **keys = aw_calloc(n ? n : 1, sizeof *keys);
    const char **argv = aw_calloc(2 * (n ? n : 1), sizeof *argv);
    struct aw_redis_cmd *c = aw_calloc(n ? n : 1, sizeof *c);
    for (size_t i = 0; i < n; i++) {
        keys[i] = aw_store_key(accts[i], AW_K_AUDIENCES, NULL, NULL);
        argv[2 * i] = "SMEMBERS";
        argv[2 * i + 1] = keys[i];
        c[i] =
            (struct aw_redis_cmd){.script = -1, .route = keys[i], .argc = 2, .argv = &argv[2 * i]};
    }
    enum aw_err e = aw_redis_exec(s->r, c, n);
    for (size_t i = 0; i < n && e == AW_OK; i++) {
        e = c[i].err;
        if (e == AW_OK && c[i].reply.type != AW_REPLY_ARRAY)
            e = AW_ERR_PROTOCOL;
        for (size_t k = 0; e == AW_OK && k <= c[i].reply.n; k++) {
            const char *aud = k < c[i].reply.n ? c[i].reply.elem[k].str : NULL;
            if (k < c[i].reply.n &&
                (c[i].reply.elem[k].type != AW_REPLY_STR || !aw_store_id_ok(aud)))
                continue;
            if (*nm >= max) {
                *truncated = true;
                break;
            }
            if (*nm == *cap) {
                *cap = *cap ? *cap * 2 : 64;
                *metas = aw_realloc(*metas, *cap * sizeof **metas);
            }
            /* k == n: the account's profile stream */
            (*metas)[(*nm)++] = aud ? aw_store_key(accts[i], AW_K_AUDIENCE, aud, NULL)
                                    : aw_store_key(accts[i], AW_K_PROFILES, NULL, NULL);
        }
    }
    for (size_t i = 0; i < n; i++) {
        aw_redis_cmd_clear(&c[i]);
        free(keys[i]);
    }
    free(c);
    free(argv);
    free(keys);
    return e;
}

/* Adds the counts of metas[0..n) to out. */
static enum aw_err count_streams(struct aw_store *s, char **metas, size_t n,
                                 struct aw_store_summary *out)
{
    char **tails = aw_calloc(2 * n, sizeof *tails);
    const char **argv = aw_calloc(8 * n, sizeof *argv);
    struct aw_redis_cmd *c = aw_calloc(3 * n, sizeof *c);
    for (size_t i = 0; i < n; i++) {
        size_t ml = strlen(metas[i]) + 8;
        tails[2 * i] = aw_malloc(ml);
        tails[2 * i + 1] = aw_malloc(ml);
        snprintf(tails[2 * i], ml, "%s%s", metas[i], aw_store_name(AW_K_PENDING));
        snprintf(tails[2 * i + 1], ml, "%s%s", metas[i], aw_store_name(AW_K_INFLIGHT));
        const char **a = &argv[8 * i];
        a[0] = "HLEN", a[1] = tails[2 * i];
        a[2] = "HLEN", a[3] = tails[2 * i + 1];
        a[4] = "HGET", a[5] = metas[i], a[6] = aw_store_name(AW_F_META_FIRST_PENDING);
        c[3 * i] = (struct aw_redis_cmd){.script = -1, .route = metas[i], .argc = 2, .argv = a};
        c[3 * i + 1] =
            (struct aw_redis_cmd){.script = -1, .route = metas[i], .argc = 2, .argv = a + 2};
        c[3 * i + 2] =
            (struct aw_redis_cmd){.script = -1, .route = metas[i], .argc = 3, .argv = a + 4};
    }
    enum aw_err e = aw_redis_exec(s->r, c, 3 * n);
    for (size_t i = 0; i < n && e == AW_OK; i++) {
        for (int k = 0; k < 3 && e == AW_OK; k++)
            e = c[3 * i + k].err;
        if (e != AW_OK)
            break;
        uint64_t pending = u64_of(&c[3 * i].reply), first = u64_of(&c[3 * i + 2].reply);
        out->pending += pending;
        out->inflight += u64_of(&c[3 * i + 1].reply);
        if (pending > 0 && first > 0 && (out->oldest_unix_ms == 0 || first < out->oldest_unix_ms))
            out->oldest_unix_ms = first;
        out->streams++;
    }
    for (size_t i = 0; i < 3 * n; i++)
        aw_redis_cmd_clear(&c[i]);
    for (size_t i = 0; i < 2 * n; i++)
        free(tails[i]);
    free(c);
    free(argv);
    free(tails);
    return e;
}

enum aw_err aw_store_summary(struct aw_store *s, size_t max_streams, struct aw_store_summary *out)
{
    memset(out, 0, sizeof *out);
    char **accts = NULL, **metas = NULL;
    size_t na = 0, nm = 0, cap = 0;
    enum aw_err e = aw_store_accounts(s, &accts, &na);
    for (size_t i = 0; e == AW_OK && i < na && !out->truncated; i += CHUNK)
        e = stream_metas(s, accts + i, na - i < CHUNK ? na - i : CHUNK, &metas, &nm, &cap,
                         max_streams, &out->truncated);
    for (size_t i = 0; e == AW_OK && i < nm; i += CHUNK)
        e = count_streams(s, metas + i, nm - i < CHUNK ? nm - i : CHUNK, out);
    aw_store_strings_free(accts, na);
    aw_store_strings_free(metas, nm);
    return e;
}
