/* store.c -- hiredis adapter: connection, aggregation scripts, due index (see store.h). */
#include "worker/store/store.h"
#include "worker/settings.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/text.h"
#include "worker/store/change.h"
#include "worker/store/store_lua.h"

#define MOD "store"
#define ID_MAX 128 /* account / audience id */
#define EVENT_ID_MAX 512
#define EMAIL_MAX 512
#define OP_MAX_STR 16 /* KEYS + ARGV of one script call */

enum script {
    SCRIPT_APPLY = 0,
    SCRIPT_AUDIENCE,
    SCRIPT_DUE,
    SCRIPT_LEASE,
    SCRIPT_FLUSH,
    SCRIPT_ACCOUNT_BLOCK,
    SCRIPT_COUNT
};

static const char *const script_src[SCRIPT_COUNT] = {
    AW_LUA_APPLY, AW_LUA_AUDIENCE, AW_LUA_DUE, AW_LUA_LEASE, AW_LUA_FLUSH, AW_LUA_ACCOUNT_BLOCK};
static const bool script_prelude[SCRIPT_COUNT] = {true, true, false, false, true, false};
static const char *const script_name[SCRIPT_COUNT] = {"apply", "audience", "due",
                                                      "lease", "flush",    "account_block"};

#define DUE_KEY "aw:due"
#define DUE_SEQ_KEY "{aw:due}:seq" /* same slot as "aw:due": hash tag = the whole name */
#define AUDIENCES_KEY "aw:audiences"
#define LEASE_KEY "aw:{leader}:lease"
#define EPOCH_KEY "aw:{leader}:epoch"

struct aw_store {
    struct aw_store_url url;
    uint64_t connect_timeout_ms;
    uint64_t command_timeout_ms;
    int64_t max_queue;
    uint64_t max_age_ms;
    redisContext *c;
    char sha[SCRIPT_COUNT][41];
    char err[256];
};

/* ---- URL ----------------------------------------------------------------------------------- */

static void set_err(char *errbuf, size_t errlen, const char *msg)
{
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", msg);
}

/* Percent-decodes s[0..n) into out (size outlen). False when malformed, %00 or too long. */
static bool pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
    char *d = aw_text_pct_decode(s, n);
    bool ok = d && strlen(d) < outlen;
    if (ok)
        memcpy(out, d, strlen(d) + 1);
    free(d);
    return ok;
}

static bool parse_int_range(const char *s, size_t n, long lo, long hi, long *out)
{
    char tmp[16];
    if (n == 0 || n >= sizeof tmp)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    errno = 0;
    char *end = NULL;
    long v = strtol(tmp, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Credentials of a URL's userinfo p[0..len): "user:password", ":password" or "password". */
static bool parse_userinfo(const char *p, size_t len, struct aw_store_url *out, char *errbuf,
                           size_t errlen)
{
    const char *colon = memchr(p, ':', len);
    size_t user_len = colon ? (size_t)(colon - p) : len;
    if (!pct_decode(p, user_len, out->user, sizeof out->user)) {
        set_err(errbuf, errlen, "bad user in URL");
        return false;
    }
    if (colon) {
        if (!pct_decode(colon + 1, len - user_len - 1, out->password, sizeof out->password)) {
            set_err(errbuf, errlen, "bad password in URL (percent-encoding or length)");
            return false;
        }
    } else {
        /* redis://secret@host: a lone userinfo is the password (redis-cli convention) */
        memcpy(out->password, out->user, sizeof out->password);
        out->user[0] = '\0';
    }
    return true;
}

/* unix://[[user]:password@]/socket/path[?db=N], p after the scheme. */
static enum aw_err parse_unix_url(const char *p, struct aw_store_url *out, char *errbuf,
                                  size_t errlen)
{
    out->is_unix = true;
    out->port = 0;
    const char *path = p;
    if (*p != '/') {
        const char *at = strstr(p, "@/");
        if (!at) {
            set_err(errbuf, errlen, "unix:// URL needs an absolute socket path");
            return AW_ERR_CONFIG;
        }
        if (!parse_userinfo(p, (size_t)(at - p), out, errbuf, errlen))
            return AW_ERR_CONFIG;
        path = at + 1;
    }
    size_t path_len = strcspn(path, "?#");
    if (path_len < 2 || path_len >= sizeof out->host) {
        set_err(errbuf, errlen, "missing or too long socket path");
        return AW_ERR_CONFIG;
    }
    memcpy(out->host, path, path_len);
    out->host[path_len] = '\0';
    const char *q = path + path_len;
    if (*q == '#') {
        set_err(errbuf, errlen, "URL fragment not supported");
        return AW_ERR_CONFIG;
    }
    if (*q == '?') {
        long v;
        if (strncmp(q + 1, "db=", 3) != 0 ||
            !parse_int_range(q + 4, strlen(q + 4), 0, 1000000, &v)) {
            set_err(errbuf, errlen, "bad URL query (only db=N)");
            return AW_ERR_CONFIG;
        }
        out->db = (int)v;
    }
    return AW_OK;
}

enum aw_err aw_store_url_parse(const char *url, struct aw_store_url *out, char *errbuf,
                               size_t errlen)
{
    static const char scheme[] = "redis://";
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (url && strncmp(url, "unix://", 7) == 0)
        return parse_unix_url(url + 7, out, errbuf, errlen);
    if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0) {
        set_err(errbuf, errlen,
                url && strncmp(url, "rediss://", 9) == 0 ? "TLS (rediss://) is not supported"
                                                         : "URL must start with redis://");
        return AW_ERR_CONFIG;
    }
    const char *p = url + sizeof scheme - 1;
    size_t authority_len = strcspn(p, "/?#");
    if (p[authority_len] == '?' || p[authority_len] == '#') {
        set_err(errbuf, errlen, "URL query/fragment not supported");
        return AW_ERR_CONFIG;
    }
    /* userinfo: up to the last '@' of the authority (passwords may contain '@' only encoded,
     * but be lenient) */
    const char *at = NULL;
    for (size_t i = 0; i < authority_len; i++)
        if (p[i] == '@')
            at = p + i;
    const char *host = p;
    if (at) {
        if (!parse_userinfo(p, (size_t)(at - p), out, errbuf, errlen))
            return AW_ERR_CONFIG;
        host = at + 1;
    }
    const char *hend = p + authority_len;
    const char *port = NULL;
    size_t host_len;
    if (*host == '[') {
        const char *rb = memchr(host, ']', (size_t)(hend - host));
        if (!rb) {
            set_err(errbuf, errlen, "unterminated [ in URL host");
            return AW_ERR_CONFIG;
        }
        host_len = (size_t)(rb - host - 1);
        if (rb + 1 < hend) {
            if (rb[1] != ':') {
                set_err(errbuf, errlen, "bad URL host");
                return AW_ERR_CONFIG;
            }
            port = rb + 2;
        }
        host++;
    } else {
        const char *colon = memchr(host, ':', (size_t)(hend - host));
        host_len = colon ? (size_t)(colon - host) : (size_t)(hend - host);
        if (colon)
            port = colon + 1;
    }
    if (host_len == 0 || host_len >= sizeof out->host) {
        set_err(errbuf, errlen, "missing or too long URL host");
        return AW_ERR_CONFIG;
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    if (port) {
        long v;
        if (!parse_int_range(port, (size_t)(hend - port), 1, 65535, &v)) {
            set_err(errbuf, errlen, "bad URL port");
            return AW_ERR_CONFIG;
        }
        out->port = (int)v;
    }
    if (*hend == '/' && hend[1] != '\0') {
        long v;
        if (!parse_int_range(hend + 1, strlen(hend + 1), 0, 1000000, &v)) {
            set_err(errbuf, errlen, "bad URL database number");
            return AW_ERR_CONFIG;
        }
        out->db = (int)v;
    }
    return AW_OK;
}

/* ---- Connection ---------------------------------------------------------------------------- */

static void errf(struct aw_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void errf(struct aw_store *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
}

static struct timeval ms_to_tv(uint64_t ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

/* The connection is dead (NULL reply or c->err): keep the reason, free it. */
static enum aw_err drop(struct aw_store *s, const char *what)
{
    if (s->c) {
        errf(s, "%s: %s", what, s->c->errstr[0] ? s->c->errstr : "connection lost");
        redisFree(s->c);
        s->c = NULL;
    } else {
        errf(s, "%s: not connected", what);
    }
    AW_LOG_WARN(MOD, "redis connection lost", "host=%s port=%d reason=\"%s\"", s->url.host,
                s->url.port, s->err);
    return AW_ERR_IO;
}

/* Redis error replies that mean "try again later" rather than "this input is bad". */
static bool is_transient_reply(const redisReply *r)
{
    static const char *const prefixes[] = {"OOM",        "BUSY",     "LOADING",     "READONLY",
                                           "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS",
                                           "MOVED",      "ASK"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t n = strlen(prefixes[i]);
        if (r->len >= n && strncmp(r->str, prefixes[i], n) == 0)
            return true;
    }
    return false;
}

static bool is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->len >= 8 && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* Maps an error reply (never NULL) to an error code and keeps a short reason (server texts
 * never contain our data: scripts return fixed messages). */
static enum aw_err reply_err(struct aw_store *s, const redisReply *r, const char *what)
{
    errf(s, "%s: %.*s", what, r->len > 160 ? 160 : (int)r->len, r->str);
    if (r->len >= 7 && strncmp(r->str, "INVALID", 7) == 0)
        return AW_ERR_INVALID;
    if (r->len >= 9 && strncmp(r->str, "NOTLEADER", 9) == 0)
        return AW_ERR_NOT_LEADER;
    if (is_transient_reply(r))
        return AW_ERR_IO;
    return AW_ERR_PROTOCOL;
}

/* One command on the live connection. *out is the reply (caller frees) unless an error code is
 * returned; error replies are converted (and freed). */
static enum aw_err command(struct aw_store *s, int argc, const char **argv, const size_t *lens,
                           const char *what, redisReply **out)
{
    *out = NULL;
    redisReply *r = redisCommandArgv(s->c, argc, argv, lens);
    if (!r || s->c->err) {
        if (r)
            freeReplyObject(r);
        return drop(s, what);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        enum aw_err e = reply_err(s, r, what);
        freeReplyObject(r);
        return e;
    }
    *out = r;
    return AW_OK;
}

static enum aw_err load_scripts(struct aw_store *s)
{
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        struct aw_buf src;
        aw_buf_init(&src, 0);
        if (script_prelude[i])
            (void)aw_buf_append_str(&src, AW_LUA_PRELUDE);
        (void)aw_buf_append_str(&src, script_src[i]);
        const char *argv[3] = {"SCRIPT", "LOAD", src.data};
        size_t lens[3] = {6, 4, src.len};
        redisReply *r;
        enum aw_err e = command(s, 3, argv, lens, "SCRIPT LOAD", &r);
        aw_buf_free(&src);
        if (e != AW_OK) {
            AW_LOG_ERROR(MOD, "script load failed", "script=%s err=%s", script_name[i],
                         aw_err_str(e));
            return e == AW_ERR_IO ? e : AW_ERR_PROTOCOL;
        }
        if (r->type != REDIS_REPLY_STRING || r->len != 40) {
            freeReplyObject(r);
            errf(s, "SCRIPT LOAD: unexpected reply");
            return AW_ERR_PROTOCOL;
        }
        memcpy(s->sha[i], r->str, 40);
        s->sha[i][40] = '\0';
        freeReplyObject(r);
    }
    return AW_OK;
}

static enum aw_err ensure_connected(struct aw_store *s)
{
    if (s->c)
        return AW_OK;
    redisContext *c =
        s->url.is_unix
            ? redisConnectUnixWithTimeout(s->url.host, ms_to_tv(s->connect_timeout_ms))
            : redisConnectWithTimeout(s->url.host, s->url.port, ms_to_tv(s->connect_timeout_ms));
    if (!c) {
        errf(s, "connect: cannot allocate context");
        return AW_ERR_IO;
    }
    if (c->err) {
        errf(s, "connect %s:%d: %s", s->url.host, s->url.port, c->errstr);
        redisFree(c);
        return AW_ERR_IO;
    }
    if (redisSetTimeout(c, ms_to_tv(s->command_timeout_ms)) != REDIS_OK) {
        errf(s, "set timeout: %s", c->errstr);
        redisFree(c);
        return AW_ERR_IO;
    }
    s->c = c;
    redisReply *r;
    enum aw_err e;
    if (s->url.password[0]) {
        const char *argv[3] = {"AUTH", s->url.user, s->url.password};
        size_t lens[3] = {4, strlen(s->url.user), strlen(s->url.password)};
        if (s->url.user[0])
            e = command(s, 3, argv, lens, "AUTH", &r);
        else {
            argv[1] = s->url.password;
            lens[1] = lens[2];
            e = command(s, 2, argv, lens, "AUTH", &r);
        }
        if (e != AW_OK)
            goto fail;
        freeReplyObject(r);
    }
    if (s->url.db) {
        char db[16];
        snprintf(db, sizeof db, "%d", s->url.db);
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, strlen(db)};
        e = command(s, 2, argv, lens, "SELECT", &r);
        if (e != AW_OK)
            goto fail;
        freeReplyObject(r);
    }
    e = load_scripts(s);
    if (e != AW_OK)
        goto fail;
    AW_LOG_INFO(MOD, "redis connected", "host=%s port=%d db=%d", s->url.host, s->url.port,
                s->url.db);
    return AW_OK;
fail:
    if (s->c) {
        redisFree(s->c);
        s->c = NULL;
    }
    /* a refused AUTH/SELECT is a setup fault; the caller keeps retrying anyway */
    return e == AW_ERR_IO ? AW_ERR_IO : AW_ERR_CONFIG;
}

void aw_store_config_from_settings(const struct aw_settings *s, struct aw_store_config *out)
{
    memset(out, 0, sizeof *out);
    out->url = s->redis.url;
    out->connect_timeout_ms = s->redis.connect_timeout_ms;
    out->command_timeout_ms = s->redis.timeout_ms;
    out->flush_max_queue = (int64_t)s->flush.max_queue;
    out->flush_max_age_ms = s->flush.max_age_s * 1000u;
}

struct aw_store *aw_store_new(const struct aw_store_config *cfg, char *errbuf, size_t errlen)
{
    struct aw_store_url url;
    if (aw_store_url_parse(cfg->url, &url, errbuf, errlen) != AW_OK)
        return NULL;
    if (cfg->flush_max_queue < 1) {
        set_err(errbuf, errlen, "flush_max_queue must be >= 1");
        return NULL;
    }
    struct aw_store *s = aw_calloc(1, sizeof *s);
    s->url = url;
    s->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 2000;
    s->command_timeout_ms = cfg->command_timeout_ms ? cfg->command_timeout_ms : 5000;
    s->max_queue = cfg->flush_max_queue;
    s->max_age_ms = cfg->flush_max_age_ms;
    return s;
}

void aw_store_free(struct aw_store *s)
{
    if (!s)
        return;
    if (s->c)
        redisFree(s->c);
    /* the password lives in the struct: do not leave it in freed memory */
    memset(&s->url, 0, sizeof s->url);
    free(s);
}

const char *aw_store_errstr(const struct aw_store *s)
{
    return s->err;
}

bool aw_store_is_connected(const struct aw_store *s)
{
    return s->c != NULL;
}

enum aw_err aw_store_ping(struct aw_store *s)
{
    enum aw_err e = ensure_connected(s);
    if (e != AW_OK)
        return e;
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    redisReply *r;
    e = command(s, 1, argv, lens, "PING", &r);
    if (e == AW_OK)
        freeReplyObject(r);
    return e;
}

/* ---- Keys and validation ------------------------------------------------------------------- */

static bool id_ok(const char *id)
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

static bool text_ok(const char *t, size_t max)
{
    return t && t[0] && strlen(t) <= max;
}

/* "aw:{<acct>:<aud>}:<suffix>" (caller-owned). */
static char *aud_key(const char *acct, const char *aud, const char *suffix)
{
    size_t n = strlen(acct) + strlen(aud) + strlen(suffix) + 8;
    char *k = aw_malloc(n);
    int w = snprintf(k, n, "aw:{%s:%s}:%s", acct, aud, suffix);
    AW_ASSERT(w > 0 && (size_t)w < n);
    return k;
}

static char *member_of(const char *acct, const char *aud)
{
    size_t n = strlen(acct) + strlen(aud) + 2;
    char *m = aw_malloc(n);
    int w = snprintf(m, n, "%s:%s", acct, aud);
    AW_ASSERT(w > 0 && (size_t)w < n);
    return m;
}

static char *lower_dup(const char *s)
{
    char *d = aw_strdup(s);
    for (char *p = d; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return d;
}

static char *u64_dup(uint64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    return aw_strdup(tmp);
}

/* ---- Batches ------------------------------------------------------------------------------ */

struct op {
    enum script script;
    int nkeys;
    int nstr;              /* KEYS + ARGV */
    char *str[OP_MAX_STR]; /* owned, except the three exec slots */
    int exec_slot;         /* index of ARGV "now"; "max queue", "max age" follow */
    size_t aud;            /* index into batch auds */
    bool ran;              /* the script answered (phase 1) */
    int64_t seq;
    struct aw_store_result res;
};

struct aud {
    char *member;  /* "A:U", owned */
    bool touched;  /* some op of this exec ran */
    int64_t seq;   /* highest due seq seen */
    int64_t score; /* score of that seq */
};

struct aw_store_batch {
    struct op *ops;
    size_t n, cap;
    struct aud *auds;
    size_t naud, capaud;
    char now_s[24], maxq_s[24], maxage_s[24];
};

struct aw_store_batch *aw_store_batch_new(void)
{
    return aw_calloc(1, sizeof(struct aw_store_batch));
}

static void op_clear(struct op *o)
{
    for (int i = 0; i < o->nstr; i++)
        if (i < o->exec_slot || i > o->exec_slot + 2)
            free(o->str[i]);
    memset(o, 0, sizeof *o);
}

void aw_store_batch_reset(struct aw_store_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        op_clear(&b->ops[i]);
    for (size_t i = 0; i < b->naud; i++)
        free(b->auds[i].member);
    b->n = 0;
    b->naud = 0;
}

void aw_store_batch_free(struct aw_store_batch *b)
{
    if (!b)
        return;
    aw_store_batch_reset(b);
    free(b->ops);
    free(b->auds);
    free(b);
}

size_t aw_store_batch_count(const struct aw_store_batch *b)
{
    return b->n;
}

const struct aw_store_result *aw_store_batch_result(const struct aw_store_batch *b, size_t i)
{
    AW_ASSERT(i < b->n);
    return &b->ops[i].res;
}

static size_t aud_index(struct aw_store_batch *b, const char *acct, const char *aud)
{
    char *m = member_of(acct, aud);
    for (size_t i = 0; i < b->naud; i++) {
        if (strcmp(b->auds[i].member, m) == 0) {
            free(m);
            return i;
        }
    }
    aw_grow((void **)&b->auds, &b->capaud, b->naud + 1, sizeof *b->auds);
    memset(&b->auds[b->naud], 0, sizeof b->auds[b->naud]);
    b->auds[b->naud].member = m;
    return b->naud++;
}

static struct op *op_push(struct aw_store_batch *b, enum script sc, const char *acct,
                          const char *aud, size_t *index)
{
    aw_grow((void **)&b->ops, &b->cap, b->n + 1, sizeof *b->ops);
    struct op *o = &b->ops[b->n];
    memset(o, 0, sizeof *o);
    o->script = sc;
    o->aud = aud_index(b, acct, aud);
    o->res.err = AW_ERR_IO;
    if (index)
        *index = b->n;
    b->n++;
    return o;
}

static void op_add(struct op *o, char *owned)
{
    AW_ASSERT(o->nstr < OP_MAX_STR);
    o->str[o->nstr++] = owned;
}

/* Reserves the three per-exec ARGV slots (now, max queue, max age). */
static void op_add_exec_slots(struct op *o)
{
    o->exec_slot = o->nstr;
    for (int i = 0; i < 3; i++)
        op_add(o, NULL);
}

enum aw_err aw_store_batch_add_apply(struct aw_store_batch *b, const struct aw_change *c,
                                     size_t *index)
{
    if (!id_ok(c->account_id) || !id_ok(c->audience_id) || !text_ok(c->event_id, EVENT_ID_MAX) ||
        !text_ok(c->email, EMAIL_MAX))
        return AW_ERR_INVALID;
    char *enc = NULL;
    if (aw_change_encode(c, &enc) != AW_OK || !enc) {
        free(enc);
        return AW_ERR_INVALID;
    }
    struct op *o = op_push(b, SCRIPT_APPLY, c->account_id, c->audience_id, index);
    o->nkeys = 5;
    op_add(o, aud_key(c->account_id, c->audience_id, "pending"));
    op_add(o, aud_key(c->account_id, c->audience_id, "ver"));
    op_add(o, aud_key(c->account_id, c->audience_id, "meta"));
    op_add(o, aud_key(c->account_id, c->audience_id, "inflight"));
    op_add(o, aud_key(c->account_id, c->audience_id, "fver"));
    op_add(o, enc);
    op_add(o, aw_strdup(c->email));
    op_add(o, u64_dup(c->version_ms));
    op_add(o, lower_dup(c->event_id));
    op_add_exec_slots(o);
    op_add(o, aw_strdup(c->account_id));
    op_add(o, aw_strdup(c->audience_id));
    op_add(o, aw_strdup(c->audience_name ? c->audience_name : ""));
    op_add(o, aw_strdup(c->list_id ? c->list_id : ""));
    return AW_OK;
}

static enum aw_err add_audience(struct aw_store_batch *b, const char *op, const char *acct,
                                const char *aud, const char *name, const char *list_id,
                                uint64_t version_ms, const char *event_id, size_t *index)
{
    if (!id_ok(acct) || !id_ok(aud) || !text_ok(event_id, EVENT_ID_MAX))
        return AW_ERR_INVALID;
    struct op *o = op_push(b, SCRIPT_AUDIENCE, acct, aud, index);
    o->nkeys = 3;
    op_add(o, aud_key(acct, aud, "pending"));
    op_add(o, aud_key(acct, aud, "meta"));
    op_add(o, aud_key(acct, aud, "inflight"));
    op_add(o, aw_strdup(op));
    op_add(o, u64_dup(version_ms));
    op_add(o, lower_dup(event_id));
    op_add_exec_slots(o);
    op_add(o, aw_strdup(acct));
    op_add(o, aw_strdup(aud));
    op_add(o, aw_strdup(name ? name : ""));
    op_add(o, aw_strdup(list_id ? list_id : ""));
    return AW_OK;
}

enum aw_err aw_store_batch_add_upsert(struct aw_store_batch *b, const char *account_id,
                                      const char *audience_id, const char *name,
                                      const char *list_id, uint64_t version_ms,
                                      const char *event_id, size_t *index)
{
    return add_audience(b, "upsert", account_id, audience_id, name, list_id, version_ms, event_id,
                        index);
}

enum aw_err aw_store_batch_add_remove(struct aw_store_batch *b, const char *account_id,
                                      const char *audience_id, uint64_t version_ms,
                                      const char *event_id, size_t *index)
{
    return add_audience(b, "remove", account_id, audience_id, NULL, NULL, version_ms, event_id,
                        index);
}

/* Appends EVALSHA for op o to the output buffer. */
static enum aw_err append_op(struct aw_store *s, const struct op *o)
{
    const char *argv[OP_MAX_STR + 3];
    size_t lens[OP_MAX_STR + 3];
    char nkeys[8];
    snprintf(nkeys, sizeof nkeys, "%d", o->nkeys);
    argv[0] = "EVALSHA";
    argv[1] = s->sha[o->script];
    argv[2] = nkeys;
    for (int i = 0; i < o->nstr; i++)
        argv[3 + i] = o->str[i];
    for (int i = 0; i < o->nstr + 3; i++)
        lens[i] = strlen(argv[i]);
    if (redisAppendCommandArgv(s->c, o->nstr + 3, argv, lens) != REDIS_OK)
        return drop(s, "append");
    return AW_OK;
}

static bool int_elem(const redisReply *r, size_t i, int64_t *out)
{
    if (i >= r->elements || r->element[i]->type != REDIS_REPLY_INTEGER)
        return false;
    *out = (int64_t)r->element[i]->integer;
    return true;
}

/* Parses {status, pending, score, seq} into o. */
static void parse_op_reply(struct aw_store *s, struct op *o, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        o->res.err = reply_err(s, r, script_name[o->script]);
        return;
    }
    const redisReply *st = r->type == REDIS_REPLY_ARRAY && r->elements >= 4 ? r->element[0] : NULL;
    if (!st || (st->type != REDIS_REPLY_STRING && st->type != REDIS_REPLY_STATUS) ||
        !int_elem(r, 1, &o->res.pending) || !int_elem(r, 2, &o->res.due_unix_ms) ||
        !int_elem(r, 3, &o->seq)) {
        errf(s, "%s: unexpected reply shape", script_name[o->script]);
        o->res.err = AW_ERR_PROTOCOL;
        return;
    }
    if (strcmp(st->str, "applied") == 0)
        o->res.status = AW_STORE_APPLIED;
    else if (strcmp(st->str, "stale") == 0)
        o->res.status = AW_STORE_STALE;
    else if (strcmp(st->str, "disabled") == 0)
        o->res.status = AW_STORE_DISABLED;
    else {
        errf(s, "%s: unknown status", script_name[o->script]);
        o->res.err = AW_ERR_PROTOCOL;
        return;
    }
    o->ran = true;
}

/* Phase 1: every op whose result is still unknown (ran == false, err == AW_ERR_IO) and
 * (retry_only == false or it got NOSCRIPT) is pipelined, then all replies read. Sets
 * *noscript when some op must be retried after reloading scripts. */
static enum aw_err run_ops(struct aw_store *s, struct aw_store_batch *b, bool *retry_flags,
                           bool retry_only, bool *noscript)
{
    *noscript = false;
    size_t sent = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct op *o = &b->ops[i];
        if (retry_only && !retry_flags[i])
            continue;
        if (!retry_only && o->res.err != AW_ERR_IO)
            continue;
        retry_flags[i] = false;
        enum aw_err e = append_op(s, o);
        if (e != AW_OK)
            return e;
        retry_flags[i] = true; /* "sent" marker until its reply is read */
        sent++;
    }
    for (size_t i = 0; i < b->n && sent > 0; i++) {
        if (!retry_flags[i])
            continue;
        struct op *o = &b->ops[i];
        void *rv = NULL;
        if (redisGetReply(s->c, &rv) != REDIS_OK || !rv) {
            if (rv)
                freeReplyObject(rv);
            return drop(s, "pipeline read");
        }
        redisReply *r = rv;
        sent--;
        if (is_noscript(r)) {
            *noscript = true; /* stays flagged for the retry */
        } else {
            retry_flags[i] = false;
            parse_op_reply(s, o, r);
        }
        freeReplyObject(r);
    }
    return AW_OK;
}

/* Phase 2: one SADD + due update per audience touched by this exec. */
static enum aw_err update_due(struct aw_store *s, struct aw_store_batch *b)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        bool noscript = false;
        size_t sent = 0;
        for (size_t a = 0; a < b->naud; a++) {
            struct aud *au = &b->auds[a];
            if (!au->touched)
                continue;
            char score[24], seq[24];
            snprintf(score, sizeof score, "%" PRId64, au->score);
            snprintf(seq, sizeof seq, "%" PRId64, au->seq);
            const char *sadd[3] = {"SADD", AUDIENCES_KEY, au->member};
            size_t sadd_len[3] = {4, strlen(AUDIENCES_KEY), strlen(au->member)};
            const char *ev[8] = {"EVALSHA",   s->sha[SCRIPT_DUE], "2",   DUE_KEY,
                                 DUE_SEQ_KEY, au->member,         score, seq};
            size_t ev_len[8];
            for (int i = 0; i < 8; i++)
                ev_len[i] = strlen(ev[i]);
            if (redisAppendCommandArgv(s->c, 3, sadd, sadd_len) != REDIS_OK ||
                redisAppendCommandArgv(s->c, 8, ev, ev_len) != REDIS_OK)
                return drop(s, "append");
            sent += 2;
        }
        enum aw_err first = AW_OK;
        for (; sent > 0; sent--) {
            void *rv = NULL;
            if (redisGetReply(s->c, &rv) != REDIS_OK || !rv) {
                if (rv)
                    freeReplyObject(rv);
                return drop(s, "due update read");
            }
            redisReply *r = rv;
            if (is_noscript(r))
                noscript = true;
            else if (r->type == REDIS_REPLY_ERROR && first == AW_OK)
                first = reply_err(s, r, "due update");
            freeReplyObject(r);
        }
        if (!noscript)
            return first == AW_OK ? AW_OK : AW_ERR_IO;
        enum aw_err e = load_scripts(s);
        if (e != AW_OK)
            return e == AW_ERR_IO ? e : drop(s, "script reload");
    }
    errf(s, "due update: NOSCRIPT after reload");
    return AW_ERR_IO;
}

enum aw_err aw_store_batch_exec(struct aw_store *s, struct aw_store_batch *b, uint64_t now_unix_ms)
{
    snprintf(b->now_s, sizeof b->now_s, "%" PRIu64, now_unix_ms);
    snprintf(b->maxq_s, sizeof b->maxq_s, "%" PRId64, s->max_queue);
    snprintf(b->maxage_s, sizeof b->maxage_s, "%" PRIu64, s->max_age_ms);
    for (size_t i = 0; i < b->n; i++) {
        struct op *o = &b->ops[i];
        o->str[o->exec_slot] = b->now_s;
        o->str[o->exec_slot + 1] = b->maxq_s;
        o->str[o->exec_slot + 2] = b->maxage_s;
        o->ran = false;
        o->seq = -1;
        memset(&o->res, 0, sizeof o->res);
        o->res.err = AW_ERR_IO;
    }
    for (size_t a = 0; a < b->naud; a++) {
        b->auds[a].touched = false;
        b->auds[a].seq = -1;
    }
    if (b->n == 0)
        return AW_OK;
    enum aw_err e = ensure_connected(s);
    if (e != AW_OK)
        return e == AW_ERR_CONFIG ? AW_ERR_IO : e;

    bool *flags = aw_calloc(b->n, sizeof *flags);
    bool noscript = false;
    e = run_ops(s, b, flags, false, &noscript);
    if (e == AW_OK && noscript) {
        AW_LOG_WARN(MOD, "scripts missing on server, reloading", "ops=%zu", b->n);
        e = load_scripts(s);
        if (e == AW_OK)
            e = run_ops(s, b, flags, true, &noscript);
        if (e == AW_OK && noscript) {
            errf(s, "NOSCRIPT after reload");
            e = AW_ERR_IO;
        }
    }
    free(flags);
    if (e != AW_OK) {
        for (size_t i = 0; i < b->n; i++)
            if (b->ops[i].ran)
                b->ops[i].res.err = AW_ERR_IO; /* done, but the due index is not: redo */
        return AW_ERR_IO;
    }
    for (size_t i = 0; i < b->n; i++) {
        struct op *o = &b->ops[i];
        if (!o->ran)
            continue;
        struct aud *au = &b->auds[o->aud];
        au->touched = true;
        if (o->seq >= au->seq) {
            au->seq = o->seq;
            au->score = o->res.due_unix_ms;
        }
    }
    e = update_due(s, b);
    for (size_t i = 0; i < b->n; i++) {
        struct op *o = &b->ops[i];
        if (o->ran)
            o->res.err = e == AW_OK ? AW_OK : AW_ERR_IO;
    }
    return e == AW_OK ? AW_OK : AW_ERR_IO;
}

/* ---- Single operations --------------------------------------------------------------------- */

static enum aw_err exec_single(struct aw_store *s, struct aw_store_batch *b, enum aw_err added,
                               uint64_t now_unix_ms, struct aw_store_result *out)
{
    enum aw_err e = added;
    if (e == AW_OK) {
        e = aw_store_batch_exec(s, b, now_unix_ms);
        const struct aw_store_result *r = aw_store_batch_result(b, 0);
        if (out)
            *out = *r;
        if (e == AW_OK)
            e = r->err;
    } else if (out) {
        memset(out, 0, sizeof *out);
        out->err = e;
    }
    aw_store_batch_free(b);
    return e;
}

enum aw_err aw_store_apply(struct aw_store *s, const struct aw_change *c, uint64_t now_unix_ms,
                           struct aw_store_result *out)
{
    struct aw_store_batch *b = aw_store_batch_new();
    return exec_single(s, b, aw_store_batch_add_apply(b, c, NULL), now_unix_ms, out);
}

enum aw_err aw_store_audience_upsert(struct aw_store *s, const char *account_id,
                                     const char *audience_id, const char *name, const char *list_id,
                                     uint64_t version_ms, const char *event_id,
                                     uint64_t now_unix_ms, struct aw_store_result *out)
{
    struct aw_store_batch *b = aw_store_batch_new();
    enum aw_err e = aw_store_batch_add_upsert(b, account_id, audience_id, name, list_id, version_ms,
                                              event_id, NULL);
    return exec_single(s, b, e, now_unix_ms, out);
}

enum aw_err aw_store_audience_remove(struct aw_store *s, const char *account_id,
                                     const char *audience_id, uint64_t version_ms,
                                     const char *event_id, uint64_t now_unix_ms,
                                     struct aw_store_result *out)
{
    struct aw_store_batch *b = aw_store_batch_new();
    enum aw_err e =
        aw_store_batch_add_remove(b, account_id, audience_id, version_ms, event_id, NULL);
    return exec_single(s, b, e, now_unix_ms, out);
}

/* ---- Read helpers -------------------------------------------------------------------------- */

/* Runs a read command (connecting first). */
static enum aw_err read_cmd(struct aw_store *s, int argc, const char **argv, const char *what,
                            redisReply **out)
{
    size_t lens[8];
    AW_ASSERT(argc <= 8);
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    enum aw_err e = ensure_connected(s);
    if (e != AW_OK)
        return e == AW_ERR_CONFIG ? AW_ERR_IO : e;
    return command(s, argc, argv, lens, what, out);
}

static enum aw_err string_reply(struct aw_store *s, redisReply *r, char **out)
{
    enum aw_err e = AW_OK;
    *out = NULL;
    if (r->type == REDIS_REPLY_STRING)
        *out = aw_strndup(r->str, r->len);
    else if (r->type != REDIS_REPLY_NIL) {
        errf(s, "unexpected reply type %d", r->type);
        e = AW_ERR_PROTOCOL;
    }
    freeReplyObject(r);
    return e;
}

static enum aw_err int_reply(struct aw_store *s, redisReply *r, const char *what, int64_t *out)
{
    enum aw_err e = AW_OK;
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = (int64_t)r->integer;
    } else {
        errf(s, "%s: unexpected reply type %d", what, r->type);
        e = AW_ERR_PROTOCOL;
    }
    freeReplyObject(r);
    return e;
}

enum aw_err aw_store_pending_get(struct aw_store *s, const char *account_id,
                                 const char *audience_id, const char *email, char **out)
{
    *out = NULL;
    if (!id_ok(account_id) || !id_ok(audience_id) || !text_ok(email, EMAIL_MAX))
        return AW_ERR_INVALID;
    char *key = aud_key(account_id, audience_id, "pending");
    const char *argv[3] = {"HGET", key, email};
    redisReply *r;
    enum aw_err e = read_cmd(s, 3, argv, "HGET pending", &r);
    free(key);
    return e == AW_OK ? string_reply(s, r, out) : e;
}

/* HLEN of one of the audience's hashes ("pending", "inflight"). */
static enum aw_err audience_hlen(struct aw_store *s, const char *account_id,
                                 const char *audience_id, const char *suffix, int64_t *out)
{
    *out = 0;
    if (!id_ok(account_id) || !id_ok(audience_id))
        return AW_ERR_INVALID;
    char *key = aud_key(account_id, audience_id, suffix);
    const char *argv[2] = {"HLEN", key};
    redisReply *r;
    enum aw_err e = read_cmd(s, 2, argv, "HLEN", &r);
    free(key);
    return e == AW_OK ? int_reply(s, r, "HLEN", out) : e;
}

enum aw_err aw_store_pending_count(struct aw_store *s, const char *account_id,
                                   const char *audience_id, int64_t *out)
{
    return audience_hlen(s, account_id, audience_id, "pending", out);
}

enum aw_err aw_store_meta_get(struct aw_store *s, const char *account_id, const char *audience_id,
                              const char *field, char **out)
{
    *out = NULL;
    if (!id_ok(account_id) || !id_ok(audience_id) || !text_ok(field, 64))
        return AW_ERR_INVALID;
    char *key = aud_key(account_id, audience_id, "meta");
    const char *argv[3] = {"HGET", key, field};
    redisReply *r;
    enum aw_err e = read_cmd(s, 3, argv, "HGET meta", &r);
    free(key);
    return e == AW_OK ? string_reply(s, r, out) : e;
}

enum aw_err aw_store_due_list(struct aw_store *s, uint64_t now_unix_ms, size_t max, char ***out,
                              size_t *n)
{
    *out = NULL;
    *n = 0;
    char now[24], lim[24];
    snprintf(now, sizeof now, "%" PRIu64, now_unix_ms);
    snprintf(lim, sizeof lim, "%zu", max);
    const char *argv[7] = {"ZRANGEBYSCORE", DUE_KEY, "-inf", now, "LIMIT", "0", lim};
    redisReply *r;
    enum aw_err e = read_cmd(s, 7, argv, "ZRANGEBYSCORE", &r);
    if (e != AW_OK)
        return e;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        errf(s, "ZRANGEBYSCORE: unexpected reply");
        return AW_ERR_PROTOCOL;
    }
    char **list = aw_calloc(r->elements ? r->elements : 1, sizeof *list);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *el = r->element[i];
        list[i] = el->type == REDIS_REPLY_STRING ? aw_strndup(el->str, el->len) : aw_strdup("");
    }
    *n = r->elements;
    *out = list;
    freeReplyObject(r);
    return AW_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

enum aw_err aw_store_audience_list(struct aw_store *s, size_t max, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const char *argv[2] = {"SMEMBERS", "aw:audiences"};
    redisReply *r;
    enum aw_err e = read_cmd(s, 2, argv, "SMEMBERS audiences", &r);
    if (e != AW_OK)
        return e;
    if (r->type != REDIS_REPLY_ARRAY) {
        errf(s, "SMEMBERS audiences: unexpected reply type %d", r->type);
        freeReplyObject(r);
        return AW_ERR_PROTOCOL;
    }
    char **items = aw_calloc(r->elements ? r->elements : 1, sizeof *items);
    size_t k = 0;
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            items[k++] = aw_strndup(r->element[i]->str, r->element[i]->len);
    freeReplyObject(r);
    qsort(items, k, sizeof *items, cmp_str);
    for (size_t i = max; i < k; i++)
        free(items[i]);
    *out = items;
    *n = k < max ? k : max;
    return AW_OK;
}

enum aw_err aw_store_inflight_count(struct aw_store *s, const char *account_id,
                                    const char *audience_id, int64_t *out)
{
    return audience_hlen(s, account_id, audience_id, "inflight", out);
}

enum aw_err aw_store_lease_info(struct aw_store *s, int64_t *ttl_ms, uint64_t *epoch)
{
    *ttl_ms = -2;
    *epoch = 0;
    const char *pttl[2] = {"PTTL", "aw:{leader}:lease"};
    redisReply *r;
    enum aw_err e = read_cmd(s, 2, pttl, "PTTL lease", &r);
    if (e == AW_OK)
        e = int_reply(s, r, "PTTL lease", ttl_ms);
    if (e != AW_OK)
        return e;
    const char *get[2] = {"GET", "aw:{leader}:epoch"};
    e = read_cmd(s, 2, get, "GET epoch", &r);
    char *text = NULL;
    if (e == AW_OK)
        e = string_reply(s, r, &text);
    if (e == AW_OK && text) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(text, &end, 10);
        if (errno || end == text || *end)
            e = AW_ERR_PROTOCOL;
        else
            *epoch = v;
    }
    free(text);
    return e;
}

enum aw_err aw_store_due_score(struct aw_store *s, const char *account_id, const char *audience_id,
                               int64_t *out)
{
    *out = -1;
    if (!id_ok(account_id) || !id_ok(audience_id))
        return AW_ERR_INVALID;
    char *m = member_of(account_id, audience_id);
    const char *argv[3] = {"ZSCORE", DUE_KEY, m};
    redisReply *r;
    enum aw_err e = read_cmd(s, 3, argv, "ZSCORE", &r);
    free(m);
    if (e != AW_OK)
        return e;
    if (r->type == REDIS_REPLY_STRING) {
        errno = 0;
        char *end = NULL;
        double v = strtod(r->str, &end);
        if (errno || end == r->str)
            e = AW_ERR_PROTOCOL;
        else
            *out = (int64_t)v;
    } else if (r->type != REDIS_REPLY_NIL) {
        e = AW_ERR_PROTOCOL;
    }
    freeReplyObject(r);
    return e;
}

/* ---- Lease and flush batches ---------------------------------------------------------------- */

/* One EVALSHA (argv without the EVALSHA/sha/numkeys prefix), reloading scripts once on NOSCRIPT.
 * Error replies are converted; *out is the reply on AW_OK. */
static enum aw_err eval_script(struct aw_store *s, enum script sc, int nkeys, int argc,
                               const char **args, redisReply **out)
{
    const char *argv[20];
    size_t lens[20];
    char nk[8];
    AW_ASSERT(argc + 3 <= 20);
    *out = NULL;
    enum aw_err e = ensure_connected(s);
    if (e != AW_OK)
        return e == AW_ERR_CONFIG ? AW_ERR_IO : e;
    snprintf(nk, sizeof nk, "%d", nkeys);
    for (int attempt = 0; attempt < 2; attempt++) {
        argv[0] = "EVALSHA";
        argv[1] = s->sha[sc];
        argv[2] = nk;
        for (int i = 0; i < argc; i++)
            argv[3 + i] = args[i];
        for (int i = 0; i < argc + 3; i++)
            lens[i] = strlen(argv[i]);
        redisReply *r = redisCommandArgv(s->c, argc + 3, argv, lens);
        if (!r || s->c->err) {
            if (r)
                freeReplyObject(r);
            return drop(s, script_name[sc]);
        }
        if (is_noscript(r)) {
            freeReplyObject(r);
            AW_LOG_WARN(MOD, "scripts missing on server, reloading", "script=%s", script_name[sc]);
            e = load_scripts(s);
            if (e != AW_OK)
                return e == AW_ERR_IO ? e : drop(s, "script reload");
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            e = reply_err(s, r, script_name[sc]);
            freeReplyObject(r);
            return e;
        }
        *out = r;
        return AW_OK;
    }
    errf(s, "%s: NOSCRIPT after reload", script_name[sc]);
    return AW_ERR_IO;
}

static enum aw_err lease_op(struct aw_store *s, const char *op, const char *token, uint64_t ttl_ms,
                            bool *held, uint64_t *epoch)
{
    if (held)
        *held = false;
    if (!token || !token[0] || strlen(token) > 256)
        return AW_ERR_INVALID;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%" PRIu64, ttl_ms ? ttl_ms : 1);
    const char *args[5] = {LEASE_KEY, EPOCH_KEY, op, token, ttl};
    redisReply *r;
    enum aw_err e = eval_script(s, SCRIPT_LEASE, 2, 5, args, &r);
    if (e != AW_OK)
        return e;
    int64_t h, ep;
    if (r->type != REDIS_REPLY_ARRAY || !int_elem(r, 0, &h) || !int_elem(r, 1, &ep) || ep < 0) {
        freeReplyObject(r);
        errf(s, "lease: unexpected reply shape");
        return AW_ERR_PROTOCOL;
    }
    freeReplyObject(r);
    if (held)
        *held = h == 1;
    if (epoch)
        *epoch = (uint64_t)ep;
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

void aw_store_taken_clear(struct aw_store_taken *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->emails[i]);
        free(t->changes[i]);
    }
    free(t->emails);
    free(t->changes);
    free(t->batch_id);
    memset(t, 0, sizeof *t);
}

/* Writes the due score of one audience (ordered by seq); AW_OK when acknowledged. */
static enum aw_err due_write(struct aw_store *s, const char *member, int64_t score, int64_t seq)
{
    char sc[24], sq[24];
    snprintf(sc, sizeof sc, "%" PRId64, score);
    snprintf(sq, sizeof sq, "%" PRId64, seq);
    const char *args[5] = {DUE_KEY, DUE_SEQ_KEY, member, sc, sq};
    redisReply *r;
    enum aw_err e = eval_script(s, SCRIPT_DUE, 2, 5, args, &r);
    if (e == AW_OK)
        freeReplyObject(r);
    return e;
}

/* Runs the flush script; on success *out is the reply (caller frees), already checked for the
 * {status, pending, due, seq, batch id, ...} shape, and the due index is updated. */
static enum aw_err flush_op(struct aw_store *s, const char *op, const char *acct, const char *aud,
                            uint64_t epoch, const char *batch_id, size_t max_items,
                            uint64_t now_unix_ms, redisReply **out)
{
    *out = NULL;
    if (!id_ok(acct) || !id_ok(aud) || !batch_id || strlen(batch_id) > 64)
        return AW_ERR_INVALID;
    char ep[24], mx[24], now[24], mq[24], ma[24];
    snprintf(ep, sizeof ep, "%" PRIu64, epoch);
    snprintf(mx, sizeof mx, "%zu", max_items);
    snprintf(now, sizeof now, "%" PRIu64, now_unix_ms);
    snprintf(mq, sizeof mq, "%" PRId64, s->max_queue);
    snprintf(ma, sizeof ma, "%" PRIu64, s->max_age_ms);
    char *kp = aud_key(acct, aud, "pending"), *km = aud_key(acct, aud, "meta"),
         *ki = aud_key(acct, aud, "inflight");
    const char *args[10] = {kp, km, ki, op, ep, batch_id, mx, now, mq, ma};
    redisReply *r;
    enum aw_err e = eval_script(s, SCRIPT_FLUSH, 3, 10, args, &r);
    free(kp);
    free(km);
    free(ki);
    if (e != AW_OK)
        return e;
    int64_t pend, due, seq;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 5 || (r->elements - 5) % 2 != 0 ||
        r->element[0]->type != REDIS_REPLY_STRING || !int_elem(r, 1, &pend) ||
        !int_elem(r, 2, &due) || !int_elem(r, 3, &seq) ||
        r->element[4]->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        errf(s, "flush %s: unexpected reply shape", op);
        return AW_ERR_PROTOCOL;
    }
    char *member = member_of(acct, aud);
    e = due_write(s, member, due, seq);
    free(member);
    if (e != AW_OK) {
        freeReplyObject(r);
        return e;
    }
    *out = r;
    return AW_OK;
}

enum aw_err aw_store_flush_take(struct aw_store *s, const char *account_id, const char *audience_id,
                                uint64_t epoch, size_t max_items, uint64_t now_unix_ms,
                                struct aw_store_taken *out)
{
    memset(out, 0, sizeof *out);
    if (max_items == 0)
        return AW_ERR_INVALID;
    redisReply *r;
    enum aw_err e =
        flush_op(s, "take", account_id, audience_id, epoch, "", max_items, now_unix_ms, &r);
    if (e != AW_OK)
        return e;
    const char *st = r->element[0]->str;
    if (strcmp(st, "taken") == 0)
        out->status = AW_STORE_BATCH_TAKEN;
    else if (strcmp(st, "resumed") == 0)
        out->status = AW_STORE_BATCH_RESUMED;
    else
        out->status = AW_STORE_BATCH_EMPTY;
    out->pending = (int64_t)r->element[1]->integer;
    out->due_unix_ms = (int64_t)r->element[2]->integer;
    out->batch_id = aw_strndup(r->element[4]->str, r->element[4]->len);
    size_t n = (r->elements - 5) / 2;
    out->emails = aw_calloc(n ? n : 1, sizeof *out->emails);
    out->changes = aw_calloc(n ? n : 1, sizeof *out->changes);
    for (size_t i = 0; i < n; i++) {
        const redisReply *f = r->element[5 + 2 * i], *v = r->element[6 + 2 * i];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            aw_store_taken_clear(out);
            errf(s, "flush take: unexpected item type");
            return AW_ERR_PROTOCOL;
        }
        out->emails[i] = aw_strndup(f->str, f->len);
        out->changes[i] = aw_strndup(v->str, v->len);
        out->n = i + 1;
    }
    freeReplyObject(r);
    return AW_OK;
}

static enum aw_err flush_end(struct aw_store *s, const char *op, const char *acct, const char *aud,
                             uint64_t epoch, const char *batch_id, uint64_t now_unix_ms,
                             enum aw_store_batch_status *status)
{
    if (status)
        *status = AW_STORE_BATCH_GONE;
    if (!batch_id || !batch_id[0])
        return AW_ERR_INVALID;
    redisReply *r;
    enum aw_err e = flush_op(s, op, acct, aud, epoch, batch_id, 1, now_unix_ms, &r);
    if (e != AW_OK)
        return e;
    if (status)
        *status =
            strcmp(r->element[0]->str, "gone") == 0 ? AW_STORE_BATCH_GONE : AW_STORE_BATCH_DONE;
    freeReplyObject(r);
    return AW_OK;
}

enum aw_err aw_store_flush_ack(struct aw_store *s, const char *account_id, const char *audience_id,
                               uint64_t epoch, const char *batch_id, uint64_t now_unix_ms,
                               enum aw_store_batch_status *status)
{
    return flush_end(s, "ack", account_id, audience_id, epoch, batch_id, now_unix_ms, status);
}

enum aw_err aw_store_flush_requeue(struct aw_store *s, const char *account_id,
                                   const char *audience_id, uint64_t epoch, const char *batch_id,
                                   uint64_t now_unix_ms, enum aw_store_batch_status *status)
{
    return flush_end(s, "requeue", account_id, audience_id, epoch, batch_id, now_unix_ms, status);
}

/* ---- Accounts and Klaviyo-side state ------------------------------------------------------- */

#define API_KEY_MAX 512

/* "aw:{acct:<A>}:<suffix>" (caller-owned). */
static char *acct_key(const char *acct, const char *suffix)
{
    size_t n = strlen(acct) + strlen(suffix) + 16;
    char *k = aw_malloc(n);
    int w = snprintf(k, n, "aw:{acct:%s}:%s", acct, suffix);
    AW_ASSERT(w > 0 && (size_t)w < n);
    return k;
}

enum aw_err aw_store_account_put(struct aw_store *s, const char *account_id, const char *api_key)
{
    if (!id_ok(account_id) || !text_ok(api_key, API_KEY_MAX))
        return AW_ERR_INVALID;
    char *key = acct_key(account_id, "account");
    const char *argv[4] = {"HSET", key, "api_key", api_key};
    redisReply *r;
    enum aw_err e = read_cmd(s, 4, argv, "HSET account", &r);
    free(key);
    if (e == AW_OK)
        freeReplyObject(r);
    return e;
}

enum aw_err aw_store_account_get(struct aw_store *s, const char *account_id, char **api_key,
                                 uint64_t *block_until_unix_ms)
{
    if (api_key)
        *api_key = NULL;
    if (block_until_unix_ms)
        *block_until_unix_ms = 0;
    if (!id_ok(account_id))
        return AW_ERR_INVALID;
    char *key = acct_key(account_id, "account");
    const char *argv[4] = {"HMGET", key, "api_key", "block_until_ms"};
    redisReply *r;
    enum aw_err e = read_cmd(s, 4, argv, "HMGET account", &r);
    free(key);
    if (e != AW_OK)
        return e;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        freeReplyObject(r);
        errf(s, "HMGET account: unexpected reply");
        return AW_ERR_PROTOCOL;
    }
    const redisReply *k = r->element[0], *b = r->element[1];
    if (api_key && k->type == REDIS_REPLY_STRING && k->len > 0)
        *api_key = aw_strndup(k->str, k->len);
    if (block_until_unix_ms && b->type == REDIS_REPLY_STRING) {
        char tmp[24];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(b->len < 23 ? b->len : 23), b->str);
        errno = 0;
        char *end = NULL;
        unsigned long long v = strtoull(tmp, &end, 10);
        if (!errno && end != tmp && *end == '\0')
            *block_until_unix_ms = (uint64_t)v;
    }
    /* the reply held the key: wipe it before freeing */
    if (k->type == REDIS_REPLY_STRING && k->str)
        memset(k->str, 0, k->len);
    freeReplyObject(r);
    return AW_OK;
}

enum aw_err aw_store_account_block(struct aw_store *s, const char *account_id,
                                   uint64_t until_unix_ms)
{
    if (!id_ok(account_id))
        return AW_ERR_INVALID;
    char *key = acct_key(account_id, "account");
    char until[24];
    snprintf(until, sizeof until, "%" PRIu64, until_unix_ms);
    const char *args[2] = {key, until};
    redisReply *r;
    enum aw_err e = eval_script(s, SCRIPT_ACCOUNT_BLOCK, 1, 2, args, &r);
    free(key);
    if (e == AW_OK)
        freeReplyObject(r);
    return e;
}

enum aw_err aw_store_account_count_list_create(struct aw_store *s, const char *account_id,
                                               uint64_t now_unix_ms, int64_t delta, int64_t *count)
{
    *count = 0;
    if (!id_ok(account_id))
        return AW_ERR_INVALID;
    char suffix[48];
    snprintf(suffix, sizeof suffix, "lists_created:%" PRIu64, now_unix_ms / 86400000u);
    char *key = acct_key(account_id, suffix);
    char by[24];
    snprintf(by, sizeof by, "%" PRId64, delta);
    const char *incr[3] = {"INCRBY", key, by};
    redisReply *r;
    enum aw_err e = read_cmd(s, 3, incr, "INCR lists_created", &r);
    if (e == AW_OK)
        e = int_reply(s, r, "INCR lists_created", count);
    if (e == AW_OK) {
        const char *exp[3] = {"EXPIRE", key, "172800"};
        e = read_cmd(s, 3, exp, "EXPIRE lists_created", &r);
        if (e == AW_OK)
            freeReplyObject(r);
    }
    free(key);
    return e;
}

enum aw_err aw_store_meta_set(struct aw_store *s, const char *account_id, const char *audience_id,
                              const char *field, const char *value)
{
    if (!id_ok(account_id) || !id_ok(audience_id) || !text_ok(field, 64) ||
        strncmp(field, "klaviyo_", 8) != 0 || (value && strlen(value) > 1024))
        return AW_ERR_INVALID;
    char *key = aud_key(account_id, audience_id, "meta");
    const char *argv[4] = {value ? "HSET" : "HDEL", key, field, value};
    redisReply *r;
    enum aw_err e = read_cmd(s, value ? 4 : 3, argv, value ? "HSET meta" : "HDEL meta", &r);
    free(key);
    if (e == AW_OK)
        freeReplyObject(r);
    return e;
}
