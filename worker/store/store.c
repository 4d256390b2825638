/* store.c -- the store handle and what its modules share (see store.h, internal.h). */
#include "worker/store/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "worker/settings.h"
#include "worker/store/internal.h"

#define ID_MAX 128

void aw_store_config_from_settings(const struct aw_settings *s, struct aw_store_config *out)
{
    memset(out, 0, sizeof *out);
    out->url = s->redis.url;
    out->connect_timeout_ms = s->redis.connect_timeout_ms;
    out->command_timeout_ms = s->redis.timeout_ms;
    out->flush_max_queue = (int64_t)s->flush.max_queue;
    out->flush_max_age_ms = s->flush.max_age_s * 1000u;
    out->retention_s = s->flush.retention_s;
}

struct aw_store *aw_store_new(const struct aw_store_config *cfg, char *errbuf, size_t errlen)
{
    if (cfg->flush_max_queue < 1) {
        snprintf(errbuf, errlen, "flush_max_queue must be >= 1");
        return NULL;
    }
    struct aw_redis *r =
        aw_redis_new(cfg->url, cfg->connect_timeout_ms, cfg->command_timeout_ms, errbuf, errlen);
    if (!r)
        return NULL;
    struct aw_store *s = aw_calloc(1, sizeof *s);
    s->r = r;
    s->max_queue = cfg->flush_max_queue;
    s->max_age_ms = cfg->flush_max_age_ms;
    s->retention_s = cfg->retention_s ? cfg->retention_s : AW_STORE_RETENTION_DEFAULT_S;
    aw_store_i64(s->max_queue, s->max_queue_s);
    aw_store_u64(s->max_age_ms, s->max_age_s);
    aw_store_u64(s->retention_s, s->retention_s_s);
    return s;
}

void aw_store_free(struct aw_store *s)
{
    if (!s)
        return;
    aw_redis_free(s->r);
    free(s);
}

const char *aw_store_errstr(const struct aw_store *s)
{
    return s->err;
}

bool aw_store_is_connected(const struct aw_store *s)
{
    return aw_redis_is_connected(s->r);
}

bool aw_store_is_cluster(const struct aw_store *s)
{
    return aw_redis_is_cluster(s->r);
}

enum aw_err aw_store_ping(struct aw_store *s)
{
    return aw_store_fail(s, aw_redis_ping(s->r));
}

bool aw_store_id_ok(const char *id)
{
    if (!id || !id[0])
        return false;
    size_t n = strlen(id);
    if (n > ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)id[i];
        if (ch <= 0x20 || ch == 0x7f || ch == ':' || ch == '{' || ch == '}')
            return false;
    }
    return true;
}

/* ---- Shared by the modules ------------------------------------------------------------------ */

char *aw_store_key(const char *acct, enum aw_store_name name, const char *id, const char *tail)
{
    const char *nm = aw_store_name(name);
    size_t n = strlen(acct) + strlen(nm) + (id ? strlen(id) : 0) + (tail ? strlen(tail) : 0) + 8;
    char *k = aw_malloc(n);
    int w = snprintf(k, n, "aw:{%s}:%s%s%s", acct, nm, id ? id : "", tail ? tail : "");
    AW_ASSERT(w > 0 && (size_t)w < n);
    return k;
}

char *aw_store_stream_member(const char *aud)
{
    if (!aud)
        return aw_strdup(aw_store_name(AW_F_DUE_PROFILES));
    const char *p = aw_store_name(AW_F_DUE_AUDIENCE);
    size_t n = strlen(p) + strlen(aud) + 1;
    char *m = aw_malloc(n);
    snprintf(m, n, "%s%s", p, aud);
    return m;
}

char *aw_store_u64(uint64_t v, char *buf)
{
    /* what "%" PRIu64 writes, without printf: it runs for every change of every batch */
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = digits[n - 1 - i];
    buf[n] = '\0';
    return buf;
}

char *aw_store_i64(int64_t v, char *buf)
{
    snprintf(buf, 24, "%" PRId64, v);
    return buf;
}

enum aw_err aw_store_fail(struct aw_store *s, enum aw_err e)
{
    if (e != AW_OK)
        snprintf(s->err, sizeof s->err, "%s", aw_redis_errstr(s->r));
    return e;
}

bool aw_store_due_fields(const struct aw_reply *rp, size_t i, int64_t *min, int64_t *seq,
                         bool *changed)
{
    if (rp->type != AW_REPLY_ARRAY || rp->n < i + 3)
        return false;
    const struct aw_reply *a = &rp->elem[i], *b = &rp->elem[i + 1], *c = &rp->elem[i + 2];
    if (a->type != AW_REPLY_INT || b->type != AW_REPLY_INT || c->type != AW_REPLY_INT)
        return false;
    *min = a->integer;
    *seq = b->integer;
    *changed = c->integer != 0;
    return true;
}

void aw_store_due_cmd(const char *acct, int64_t min, int64_t seq, struct aw_store_due_buf *buf,
                      struct aw_redis_cmd *cmd)
{
    buf->argv[0] = aw_store_name(AW_K_GLOBAL_DUE);
    buf->argv[1] = aw_store_name(AW_K_GLOBAL_DUE_SEQ);
    buf->argv[2] = aw_store_name(AW_K_GLOBAL_ACCOUNTS);
    buf->argv[3] = acct;
    buf->argv[4] = aw_store_i64(min, buf->score);
    buf->argv[5] = aw_store_i64(seq, buf->seq);
    memset(cmd, 0, sizeof *cmd);
    cmd->script = AW_SCRIPT_DUE;
    cmd->nkeys = 3;
    cmd->route = buf->argv[0];
    cmd->argc = 6;
    cmd->argv = buf->argv;
}

enum aw_err aw_store_run(struct aw_store *s, struct aw_redis_cmd *cmd)
{
    enum aw_err e = aw_redis_exec(s->r, cmd, 1);
    if (e == AW_OK)
        e = cmd->err;
    if (e != AW_OK)
        aw_redis_cmd_clear(cmd);
    return aw_store_fail(s, e);
}

enum aw_err aw_store_run_due(struct aw_store *s, struct aw_redis_cmd *cmd, const char *acct,
                             size_t due_index)
{
    enum aw_err e = aw_store_run(s, cmd);
    if (e != AW_OK)
        return e;
    int64_t min, seq;
    bool changed;
    if (!aw_store_due_fields(&cmd->reply, due_index, &min, &seq, &changed)) {
        aw_redis_cmd_clear(cmd);
        snprintf(s->err, sizeof s->err, "%s: unexpected reply shape",
                 cmd->script >= 0 ? aw_script_name[cmd->script] : "command");
        return AW_ERR_PROTOCOL;
    }
    struct aw_store_due_buf buf;
    struct aw_redis_cmd due;
    aw_store_due_cmd(acct, min, seq, &buf, &due);
    e = aw_store_run(s, &due);
    aw_redis_cmd_clear(&due);
    if (e != AW_OK)
        aw_redis_cmd_clear(cmd);
    return e;
}
