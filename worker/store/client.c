/* client.c -- hiredis adapter: one Redis or a Redis Cluster, pipelines routed by slot, scripts
 * loaded per node (see client.h). The only file that includes hiredis.h. */
#include "worker/store/client.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/redis_url.h"
#include "worker/store/scripts.h" /* generated: enum aw_script, aw_script_src[] */

#define MOD "store"
#define SLOTS 16384
#define ROUNDS 10       /* pipeline rounds per exec: first try + redirections / NOSCRIPT / waits */
#define WAIT_FIRST_MS 2 /* first wait before resending a command a migrating slot refused */
#define WAIT_MAX_MS 100 /* longest such wait (all of them: ~0.4 s, then AW_ERR_IO) */
#define PROBE_SUFFIX "}:~migrating"      /* see probe_key() */
#define PROBE_MAX 320                    /* a probe key: account ids are <= 128 bytes */
#define ARGV_MAX (AW_REDIS_ARGS_MAX + 4) /* EVALSHA sha numkeys + args + the probe */
#define REPLY_DEPTH 4 /* deepest reply copied (scripts return arrays of arrays) */
#define CANDIDATES_MAX (2 * AW_REDIS_URL_NODES_MAX)

enum mode { MODE_UNKNOWN = 0, MODE_SINGLE, MODE_CLUSTER };

struct node {
    char host[AW_HOSTPORT_HOST_MAX];
    uint16_t port;
    redisContext *c;
    bool loaded; /* the scripts are loaded on this connection's server */
};

struct aw_redis {
    struct aw_redis_url url;
    uint64_t connect_ms, command_ms;
    enum mode mode;
    bool map_stale;
    int hint_node; /* node a MOVED named (it serves that slot now): asked first on refresh */
    struct node *nodes;
    size_t n_nodes, cap_nodes;
    int16_t slot_node[SLOTS]; /* node index serving each slot, -1 unknown */
    char sha[AW_SCRIPT_COUNT][41];
    char err[256];
};

/* Per-command state of one exec. */
struct track {
    int ask_node; /* >= 0: send ASKING + the command to this node next round */
    bool retry;   /* redirected or NOSCRIPT: send again next round */
    bool sent;    /* in the current round's pipeline */
    bool asked;   /* ASKING was sent before it this round */
    bool wait;    /* its slot is migrating: send it again after a short wait */
};

static void errf(struct aw_redis *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void errf(struct aw_redis *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
}

/* ---- Slots ---------------------------------------------------------------------------------- */

/* CRC16-CCITT (XModem), the function of the Redis Cluster specification. */
static uint16_t crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint16_t)(unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

/* The part of a key that is hashed: the text between the first '{' and the next '}' when that
 * is not empty, else the whole key (the Redis Cluster specification). */
static const char *hashed_part(const char *key, size_t len, size_t *part_len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1) {
            *part_len = (size_t)(close - open - 1);
            return open + 1;
        }
    }
    *part_len = len;
    return key;
}

unsigned aw_redis_key_slot(const char *key, size_t len)
{
    size_t n;
    const char *part = hashed_part(key, len, &n);
    return crc16(part, n) & (SLOTS - 1);
}

/* ---- Replies -------------------------------------------------------------------------------- */

static void reply_free(struct aw_reply *rp)
{
    if (rp->type == AW_REPLY_ARRAY) {
        for (size_t i = 0; i < rp->n; i++)
            reply_free(&rp->elem[i]);
        free(rp->elem);
    }
    free(rp->str);
    memset(rp, 0, sizeof *rp);
}

/* Copies a non-error hiredis reply (depth-limited: our scripts nest arrays twice at most). */
static bool reply_copy(const redisReply *in, struct aw_reply *out, int depth)
{
    memset(out, 0, sizeof *out);
    switch (in->type) {
    case REDIS_REPLY_NIL:
        out->type = AW_REPLY_NIL;
        return true;
    case REDIS_REPLY_INTEGER:
        out->type = AW_REPLY_INT;
        out->integer = in->integer;
        return true;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        out->type = AW_REPLY_STR;
        out->str = aw_malloc(in->len + 1);
        memcpy(out->str, in->str, in->len);
        out->str[in->len] = '\0';
        out->len = in->len;
        return true;
    case REDIS_REPLY_ARRAY:
        if (depth >= REPLY_DEPTH)
            return false;
        out->type = AW_REPLY_ARRAY;
        out->elem = aw_calloc(in->elements ? in->elements : 1, sizeof *out->elem);
        out->n = in->elements;
        for (size_t i = 0; i < in->elements; i++)
            if (!reply_copy(in->element[i], &out->elem[i], depth + 1))
                return false;
        return true;
    default:
        return false;
    }
}

void aw_redis_cmd_clear(struct aw_redis_cmd *cmd)
{
    reply_free(&cmd->reply);
}

static bool has_prefix(const redisReply *rp, const char *p)
{
    size_t n = strlen(p);
    return rp->len >= n && strncmp(rp->str, p, n) == 0;
}

/* Error reply → code. Server error texts never hold our data (scripts return fixed texts). */
static enum aw_err error_code(struct aw_redis *r, const redisReply *rp)
{
    static const char *const transient[] = {"TRYAGAIN", "LOADING", "BUSY", "NOREPLICAS"};
    /* the cluster changed under us (failover, a slot without a master, a replica where the
     * master was): transient, and the slot map is asked again before the next command */
    static const char *const moved_on[] = {"CLUSTERDOWN", "MASTERDOWN", "READONLY",
                                           "ERR Script attempted to access a non local key"};
    errf(r, "%.*s", rp->len > 160 ? 160 : (int)rp->len, rp->str);
    if (has_prefix(rp, "INVALID"))
        return AW_ERR_INVALID;
    if (has_prefix(rp, "NOTLEADER"))
        return AW_ERR_NOT_LEADER;
    if (has_prefix(rp, "OOM"))
        return AW_ERR_FULL;
    for (size_t i = 0; i < sizeof transient / sizeof transient[0]; i++)
        if (has_prefix(rp, transient[i]))
            return AW_ERR_IO;
    for (size_t i = 0; i < sizeof moved_on / sizeof moved_on[0]; i++) {
        if (has_prefix(rp, moved_on[i])) {
            if (r->mode == MODE_CLUSTER)
                r->map_stale = true;
            return AW_ERR_IO;
        }
    }
    /* A script that failed on an error reply of a command it called ("ERR Error running
     * script ... OOM command not allowed ...") */
    if (strstr(rp->str, "OOM command not allowed"))
        return AW_ERR_FULL;
    return AW_ERR_PROTOCOL;
}

/* ---- Nodes and connections ----------------------------------------------------------------- */

static struct timeval tv_ms(uint64_t ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

static void node_close(struct node *nd)
{
    if (nd->c) {
        redisFree(nd->c);
        nd->c = NULL;
    }
    nd->loaded = false;
}

/* The connection to nd died (NULL reply, c->err): keep the reason, close it. */
static void node_lost(struct aw_redis *r, struct node *nd, const char *what)
{
    errf(r, "%s %s:%u: %s", what, nd->host, (unsigned)nd->port,
         nd->c && nd->c->errstr[0] ? nd->c->errstr : "connection lost");
    AW_LOG_WARN(MOD, "redis connection lost", "host=%s port=%u reason=\"%s\"", nd->host,
                (unsigned)nd->port, r->err);
    node_close(nd);
    if (r->mode == MODE_CLUSTER)
        r->map_stale = true; /* a failover may have moved its slots */
}

static int node_find(const struct aw_redis *r, const char *host, uint16_t port)
{
    for (size_t i = 0; i < r->n_nodes; i++)
        if (r->nodes[i].port == port && strcmp(r->nodes[i].host, host) == 0)
            return (int)i;
    return -1;
}

static int node_add(struct aw_redis *r, const char *host, uint16_t port)
{
    int i = node_find(r, host, port);
    if (i >= 0)
        return i;
    aw_grow((void **)&r->nodes, &r->cap_nodes, r->n_nodes + 1, sizeof *r->nodes);
    struct node *nd = &r->nodes[r->n_nodes];
    memset(nd, 0, sizeof *nd);
    snprintf(nd->host, sizeof nd->host, "%s", host);
    nd->port = port;
    return (int)r->n_nodes++;
}

/* One synchronous command on nd (connected). *out: the reply (caller frees) unless an error
 * code is returned; error replies are converted. */
static enum aw_err node_cmd(struct aw_redis *r, struct node *nd, int argc, const char **argv,
                            const size_t *lens, redisReply **out)
{
    *out = NULL;
    redisReply *rp = redisCommandArgv(nd->c, argc, argv, lens);
    if (!rp || nd->c->err) {
        if (rp)
            freeReplyObject(rp);
        node_lost(r, nd, argv[0]);
        return AW_ERR_IO;
    }
    if (rp->type == REDIS_REPLY_ERROR) {
        enum aw_err e = error_code(r, rp);
        freeReplyObject(rp);
        return e;
    }
    *out = rp;
    return AW_OK;
}

static enum aw_err load_scripts(struct aw_redis *r, struct node *nd)
{
    for (int i = 0; i < AW_SCRIPT_COUNT; i++) {
        const char *argv[3] = {"SCRIPT", "LOAD", aw_script_src[i]};
        size_t lens[3] = {6, 4, strlen(aw_script_src[i])};
        redisReply *rp;
        enum aw_err e = node_cmd(r, nd, 3, argv, lens, &rp);
        if (e != AW_OK) {
            AW_LOG_ERROR(MOD, "script load failed", "script=%s err=%s detail=\"%s\"",
                         aw_script_name[i], aw_err_str(e), r->err);
            return e == AW_ERR_IO ? e : AW_ERR_PROTOCOL;
        }
        bool ok = rp->type == REDIS_REPLY_STRING && rp->len == 40;
        if (ok)
            memcpy(r->sha[i], rp->str, 41);
        freeReplyObject(rp);
        if (!ok) {
            errf(r, "SCRIPT LOAD: unexpected reply");
            return AW_ERR_PROTOCOL;
        }
        r->sha[i][40] = '\0';
    }
    return AW_OK;
}

/* Connects nd if needed: timeouts, AUTH, SELECT (db != 0), scripts. AW_ERR_CONFIG when the
 * server refused AUTH or SELECT (a setup fault), AW_ERR_IO otherwise. */
static enum aw_err node_connect(struct aw_redis *r, struct node *nd)
{
    if (nd->c) {
        if (nd->loaded)
            return AW_OK;
        /* NOSCRIPT: the server lost its script cache (restart without persistence of it,
         * SCRIPT FLUSH, failover to a replica that never saw SCRIPT LOAD) */
        AW_LOG_WARN(MOD, "scripts missing on server, reloading", "host=%s port=%u", nd->host,
                    (unsigned)nd->port);
        enum aw_err e = load_scripts(r, nd);
        nd->loaded = e == AW_OK;
        return e == AW_ERR_IO ? e : e == AW_OK ? AW_OK : AW_ERR_CONFIG;
    }
    redisContext *c = r->url.is_unix
                          ? redisConnectUnixWithTimeout(nd->host, tv_ms(r->connect_ms))
                          : redisConnectWithTimeout(nd->host, nd->port, tv_ms(r->connect_ms));
    if (!c) {
        errf(r, "connect: cannot allocate a context");
        return AW_ERR_IO;
    }
    if (c->err || redisSetTimeout(c, tv_ms(r->command_ms)) != REDIS_OK) {
        errf(r, "connect %s:%u: %s", nd->host, (unsigned)nd->port, c->errstr);
        redisFree(c);
        return AW_ERR_IO;
    }
    nd->c = c;
    redisReply *rp;
    enum aw_err e = AW_OK;
    if (r->url.password[0]) {
        const char *argv[3] = {"AUTH", r->url.user, r->url.password};
        size_t lens[3] = {4, strlen(r->url.user), strlen(r->url.password)};
        if (r->url.user[0]) {
            e = node_cmd(r, nd, 3, argv, lens, &rp);
        } else {
            argv[1] = r->url.password;
            lens[1] = lens[2];
            e = node_cmd(r, nd, 2, argv, lens, &rp);
        }
        if (e == AW_OK)
            freeReplyObject(rp);
    }
    if (e == AW_OK && r->url.db) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->url.db);
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, strlen(db)};
        e = node_cmd(r, nd, 2, argv, lens, &rp);
        if (e == AW_OK)
            freeReplyObject(rp);
    }
    if (e == AW_OK)
        e = load_scripts(r, nd);
    nd->loaded = e == AW_OK;
    if (e != AW_OK) {
        node_close(nd);
        return e == AW_ERR_IO ? AW_ERR_IO : AW_ERR_CONFIG;
    }
    AW_LOG_INFO(MOD, "redis connected", "host=%s port=%u db=%d", nd->host, (unsigned)nd->port,
                r->url.db);
    return AW_OK;
}

/* ---- Topology ------------------------------------------------------------------------------ */

/* Reads a CLUSTER SLOTS reply into the slot map. host "" means the node that answered. False
 * when the reply is malformed or assigns no slot at all (a node not yet part of the cluster,
 * or restarted without its configuration: another node may know better). */
static bool apply_slots(struct aw_redis *r, const redisReply *rp, const struct node *from)
{
    if (rp->type != REDIS_REPLY_ARRAY)
        return false;
    for (size_t s = 0; s < SLOTS; s++)
        r->slot_node[s] = -1;
    for (size_t i = 0; i < rp->elements; i++) {
        const redisReply *e = rp->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2)
            return false;
        const redisReply *master = e->element[2];
        if (master->element[0]->type != REDIS_REPLY_STRING ||
            master->element[1]->type != REDIS_REPLY_INTEGER)
            return false;
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        long long port = master->element[1]->integer;
        if (lo < 0 || hi >= SLOTS || lo > hi || port < 1 || port > 65535)
            return false;
        const char *host = master->element[0]->len ? master->element[0]->str : from->host;
        int idx = node_add(r, host, (uint16_t)port);
        for (long long s = lo; s <= hi; s++)
            r->slot_node[s] = (int16_t)idx;
    }
    return rp->elements > 0;
}

struct candidate {
    char host[AW_HOSTPORT_HOST_MAX];
    uint16_t port;
};

static void candidate_add(struct candidate *cand, size_t *nc, const char *host, uint16_t port)
{
    for (size_t i = 0; i < *nc; i++)
        if (cand[i].port == port && strcmp(cand[i].host, host) == 0)
            return;
    if (*nc == CANDIDATES_MAX)
        return;
    snprintf(cand[*nc].host, sizeof cand[*nc].host, "%s", host);
    cand[(*nc)++].port = port;
}

/* Learns whether the server is a cluster and, if so, its slot map. Asks, in this order, the
 * node a MOVED named (it knows it serves that slot, whatever the others have heard yet), the
 * connected nodes (no connect), the other known nodes, then the URL's seeds: a node that went
 * away costs a connect timeout only after the live ones failed. AW_ERR_IO when none answered. */
static enum aw_err discover(struct aw_redis *r)
{
    struct candidate cand[CANDIDATES_MAX];
    size_t nc = 0;
    if (r->hint_node >= 0 && (size_t)r->hint_node < r->n_nodes)
        candidate_add(cand, &nc, r->nodes[r->hint_node].host, r->nodes[r->hint_node].port);
    r->hint_node = -1;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < r->n_nodes; i++)
            if ((r->nodes[i].c != NULL) == (pass == 0))
                candidate_add(cand, &nc, r->nodes[i].host, r->nodes[i].port);
    for (size_t i = 0; i < r->url.n_nodes; i++)
        candidate_add(cand, &nc, r->url.nodes[i].host, r->url.nodes[i].port);
    enum aw_err last = AW_ERR_IO;
    for (size_t i = 0; i < nc; i++) {
        int idx = node_add(r, cand[i].host, cand[i].port);
        struct node *nd = &r->nodes[idx];
        enum aw_err e = node_connect(r, nd);
        if (e != AW_OK) {
            last = e;
            continue;
        }
        if (r->url.is_unix) {
            r->mode = MODE_SINGLE;
        } else {
            const char *argv[2] = {"CLUSTER", "SLOTS"};
            size_t lens[2] = {7, 5};
            redisReply *rp;
            e = node_cmd(r, nd, 2, argv, lens, &rp);
            if (e == AW_ERR_IO) {
                last = e;
                continue;
            }
            if (e != AW_OK) {
                r->mode = MODE_SINGLE; /* "ERR This instance has cluster support disabled" */
            } else {
                struct node from = *nd;
                bool ok = apply_slots(r, rp, &from);
                freeReplyObject(rp);
                if (!ok) {
                    errf(r, "CLUSTER SLOTS %s:%u: malformed or no slot assigned", from.host,
                         (unsigned)from.port); /* apply_slots may have moved r->nodes */
                    last = AW_ERR_IO;
                    continue;
                }
                if (r->mode != MODE_CLUSTER)
                    AW_LOG_INFO(MOD, "redis cluster detected", "nodes=%zu", r->n_nodes);
                r->mode = MODE_CLUSTER;
                r->map_stale = false;
                return AW_OK;
            }
        }
        /* one Redis: every slot on this node */
        for (size_t s = 0; s < SLOTS; s++)
            r->slot_node[s] = (int16_t)idx;
        r->map_stale = false;
        return AW_OK;
    }
    return last;
}

static enum aw_err ensure_topology(struct aw_redis *r)
{
    if (r->mode != MODE_UNKNOWN && !r->map_stale)
        return AW_OK;
    enum aw_err e = discover(r);
    if (e != AW_OK && r->mode != MODE_UNKNOWN)
        r->map_stale = true;
    return e;
}

/* ---- Public -------------------------------------------------------------------------------- */

struct aw_redis *aw_redis_new(const char *url, uint64_t connect_timeout_ms,
                              uint64_t command_timeout_ms, char *errbuf, size_t errlen)
{
    struct aw_redis_url u;
    if (aw_redis_url_parse(url, &u, errbuf, errlen) != AW_OK)
        return NULL;
    struct aw_redis *r = aw_calloc(1, sizeof *r);
    r->url = u;
    aw_redis_url_wipe(&u);
    r->connect_ms = connect_timeout_ms ? connect_timeout_ms : 2000;
    r->command_ms = command_timeout_ms ? command_timeout_ms : 5000;
    r->hint_node = -1;
    for (size_t s = 0; s < SLOTS; s++)
        r->slot_node[s] = -1;
    return r;
}

void aw_redis_free(struct aw_redis *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_nodes; i++)
        node_close(&r->nodes[i]);
    free(r->nodes);
    aw_redis_url_wipe(&r->url);
    free(r);
}

const char *aw_redis_errstr(const struct aw_redis *r)
{
    return r->err;
}

bool aw_redis_is_connected(const struct aw_redis *r)
{
    for (size_t i = 0; i < r->n_nodes; i++)
        if (r->nodes[i].c)
            return true;
    return false;
}

bool aw_redis_is_cluster(const struct aw_redis *r)
{
    return r->mode == MODE_CLUSTER;
}

enum aw_err aw_redis_ping(struct aw_redis *r)
{
    const char *argv[1] = {"PING"};
    struct aw_redis_cmd c = {.script = -1, .argc = 1, .argv = argv};
    enum aw_err e = aw_redis_exec(r, &c, 1);
    if (e == AW_OK)
        e = c.err;
    aw_redis_cmd_clear(&c);
    return e;
}

/* Node a command goes to this round (-1: none known). */
static int route(const struct aw_redis *r, const struct aw_redis_cmd *c, const struct track *t)
{
    if (t->ask_node >= 0)
        return t->ask_node;
    if (!c->route)
        return r->n_nodes ? r->slot_node[0] >= 0 ? r->slot_node[0] : 0 : -1;
    return r->slot_node[aw_redis_key_slot(c->route, strlen(c->route))];
}

/* A key that is never written, in the slot of route: "aw:{<hashed part of route>}:~migrating".
 * Cluster mode declares it as one more key of every script call. Redis checks the declared keys
 * of a command against a slot being migrated before running it: a missing key there makes the
 * source answer TRYAGAIN (or ASK when every key is missing) and the importing node TRYAGAIN
 * even after ASKING. So a script never runs while its slot migrates, whereas with KEYS[1] alone
 * it would run on the source until it touched a key already moved (or one it creates) and stop
 * there half done ("Script attempted to access a non local key"), or run after ASK on the
 * importing node where the keys not moved yet look absent (and create copies that later stop
 * the migration with "Target key exists"). The scripts build their other key names from the
 * account's tag, so no declared key could cover them. False (no probe) when route hashes in a
 * way the probe cannot copy, or is too long. */
static bool probe_key(const char *route, char *out, size_t outlen, size_t *len)
{
    size_t rl = strlen(route), n;
    const char *part = hashed_part(route, rl, &n);
    int w = snprintf(out, outlen, "aw:{%.*s" PROBE_SUFFIX, (int)n, part);
    if (w < 0 || (size_t)w >= outlen)
        return false;
    *len = (size_t)w;
    return aw_redis_key_slot(out, *len) == aw_redis_key_slot(route, rl);
}

static bool append_cmd(struct aw_redis *r, struct node *nd, const struct aw_redis_cmd *c,
                       const char **argv, size_t *lens)
{
    int k = 0;
    char nk[12], probe[PROBE_MAX];
    size_t probe_len = 0;
    bool with_probe = c->script >= 0 && r->mode == MODE_CLUSTER && c->route &&
                      probe_key(c->route, probe, sizeof probe, &probe_len);
    if (c->script >= 0) {
        snprintf(nk, sizeof nk, "%d", c->nkeys + (with_probe ? 1 : 0));
        argv[k] = "EVALSHA";
        lens[k++] = 7;
        argv[k] = r->sha[c->script];
        lens[k++] = 40;
        argv[k] = nk;
        lens[k++] = strlen(nk);
    }
    for (int i = 0; i < c->argc; i++) {
        if (with_probe && i == c->nkeys) {
            argv[k] = probe;
            lens[k++] = probe_len;
        }
        argv[k] = c->argv[i];
        lens[k] = c->lens ? c->lens[i] : strlen(c->argv[i]);
        k++;
    }
    if (with_probe && c->argc == c->nkeys) {
        argv[k] = probe;
        lens[k++] = probe_len;
    }
    return redisAppendCommandArgv(nd->c, k, argv, lens) == REDIS_OK;
}

/* Reads "<MOVED|ASK> <slot> <host>:<port>" (the host may be an IPv6 literal: the port follows
 * the last ':'). Returns the index of that node (added when new) and the slot, or -1. */
static int parse_redirect(struct aw_redis *r, const redisReply *rp, long *slot)
{
    const char *sp = memchr(rp->str, ' ', rp->len);
    if (!sp)
        return -1;
    char *end;
    *slot = strtol(sp + 1, &end, 10);
    if (end == sp + 1 || *end != ' ' || *slot < 0 || *slot >= SLOTS)
        return -1;
    const char *addr = end + 1;
    const char *colon = strrchr(addr, ':');
    size_t hlen = colon ? (size_t)(colon - addr) : 0;
    if (!colon || hlen == 0 || hlen >= AW_HOSTPORT_HOST_MAX)
        return -1;
    char host[AW_HOSTPORT_HOST_MAX];
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
        return -1;
    return node_add(r, host, (uint16_t)port);
}

/* Handles one reply of command c (tracked by t) from node nd. */
static void on_reply(struct aw_redis *r, struct node *nd, struct aw_redis_cmd *c, struct track *t,
                     const redisReply *rp)
{
    t->ask_node = -1;
    if (rp->type != REDIS_REPLY_ERROR) {
        if (reply_copy(rp, &c->reply, 0)) {
            c->err = AW_OK;
        } else {
            reply_free(&c->reply);
            errf(r, "unexpected reply shape");
            c->err = AW_ERR_PROTOCOL;
        }
        return;
    }
    if (has_prefix(rp, "NOSCRIPT")) {
        t->retry = true;
        nd->loaded = false; /* reloaded before the next round's commands */
        return;
    }
    if (has_prefix(rp, "MOVED ") || has_prefix(rp, "ASK ")) {
        /* "MOVED <slot> <host>:<port>" / "ASK <slot> <host>:<port>" */
        long slot = -1;
        int idx = parse_redirect(r, rp, &slot);
        if (idx < 0) {
            errf(r, "malformed redirection");
            c->err = AW_ERR_PROTOCOL;
            return;
        }
        t->retry = true;
        if (rp->str[0] == 'M') {
            /* the slot moved for good: this node serves it now, the rest of the map is asked
             * again (from that node first) before the next round */
            r->map_stale = true;
            r->slot_node[slot] = (int16_t)idx;
            r->hint_node = idx;
        } else if (c->script >= 0) {
            /* the slot is migrating: a script waits until it is done (see probe_key) */
            errf(r, "slot %ld migrating", slot);
            t->wait = true;
        } else {
            t->ask_node = idx; /* one plain command on one key: ASKING, then the command */
        }
        return;
    }
    if (has_prefix(rp, "TRYAGAIN")) {
        /* a script (or a command of several keys) on a slot being migrated: again shortly */
        errf(r, "%.*s", rp->len > 160 ? 160 : (int)rp->len, rp->str);
        t->retry = true;
        t->wait = true;
        return;
    }
    c->err = error_code(r, rp);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* One pipeline round: every command flagged retry is sent to its node; replies are read. */
static void run_round(struct aw_redis *r, struct aw_redis_cmd *cmds, struct track *tr, size_t n,
                      const char **argv, size_t *lens)
{
    for (size_t ni = 0; ni < r->n_nodes; ni++) {
        struct node *nd = &r->nodes[ni];
        bool any = false;
        for (size_t i = 0; i < n && !any; i++)
            any = tr[i].retry && !tr[i].wait && route(r, &cmds[i], &tr[i]) == (int)ni;
        if (!any)
            continue;
        enum aw_err ce = node_connect(r, nd);
        bool ok = ce == AW_OK;
        if (!ok && r->mode == MODE_CLUSTER)
            r->map_stale = true; /* the node went away: a failover may have moved its slots */
        for (size_t i = 0; i < n; i++) {
            struct track *t = &tr[i];
            t->sent = false;
            if (!t->retry || t->wait || route(r, &cmds[i], t) != (int)ni)
                continue;
            t->retry = false;
            if (!ok) {
                cmds[i].err = ce == AW_ERR_CONFIG ? AW_ERR_IO : ce;
                t->ask_node = -1;
                continue;
            }
            t->asked = t->ask_node >= 0;
            if (t->asked) {
                const char *ask[1] = {"ASKING"};
                size_t al[1] = {6};
                ok = redisAppendCommandArgv(nd->c, 1, ask, al) == REDIS_OK;
            }
            if (ok)
                ok = append_cmd(r, nd, &cmds[i], argv, lens);
            if (!ok) {
                node_lost(r, nd, "append");
                cmds[i].err = AW_ERR_IO;
                break;
            }
            t->sent = true;
        }
        for (size_t i = 0; i < n; i++) {
            struct track *t = &tr[i];
            if (!t->sent)
                continue;
            t->sent = false;
            if (!nd->c) {
                cmds[i].err = AW_ERR_IO;
                continue;
            }
            void *v = NULL;
            if (t->asked) {
                if (redisGetReply(nd->c, &v) != REDIS_OK || !v) {
                    node_lost(r, nd, "pipeline read");
                    cmds[i].err = AW_ERR_IO;
                    continue;
                }
                freeReplyObject(v);
                v = NULL;
            }
            if (redisGetReply(nd->c, &v) != REDIS_OK || !v) {
                if (v)
                    freeReplyObject(v);
                node_lost(r, nd, "pipeline read");
                cmds[i].err = AW_ERR_IO;
                continue;
            }
            on_reply(r, nd, &cmds[i], t, v);
            freeReplyObject(v);
            nd = &r->nodes[ni]; /* a redirection to a new node may have moved r->nodes */
        }
    }
}

enum aw_err aw_redis_exec(struct aw_redis *r, struct aw_redis_cmd *cmds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        AW_ASSERT(cmds[i].argc >= 0 && cmds[i].argc <= AW_REDIS_ARGS_MAX);
        reply_free(&cmds[i].reply);
        cmds[i].err = AW_ERR_IO;
    }
    if (n == 0)
        return AW_OK;
    struct track *tr = aw_calloc(n, sizeof *tr);
    const char **argv = aw_calloc(ARGV_MAX, sizeof *argv);
    size_t *lens = aw_calloc(ARGV_MAX, sizeof *lens);
    for (size_t i = 0; i < n; i++) {
        tr[i].ask_node = -1;
        tr[i].retry = true;
    }
    enum aw_err topo = AW_OK;
    unsigned wait_ms = WAIT_FIRST_MS;
    for (int round = 0; round < ROUNDS; round++) {
        topo = ensure_topology(r);
        if (topo != AW_OK)
            break;
        for (size_t i = 0; i < n; i++)
            if (tr[i].retry && route(r, &cmds[i], &tr[i]) < 0)
                r->map_stale = true; /* a slot nobody serves: ask the cluster again */
        if (r->map_stale && ensure_topology(r) != AW_OK)
            break;
        for (size_t i = 0; i < n; i++)
            if (tr[i].retry && route(r, &cmds[i], &tr[i]) < 0) {
                tr[i].retry = false; /* still unserved: CLUSTERDOWN for that slot */
                errf(r, "slot not served by any node");
            }
        run_round(r, cmds, tr, n, argv, lens);
        bool again = false, waiting = false;
        for (size_t i = 0; i < n; i++) {
            again = again || tr[i].retry;
            waiting = waiting || tr[i].wait;
        }
        if (!again || round == ROUNDS - 1)
            break;
        if (waiting) {
            /* a slot of ours is migrating (milliseconds per slot): wait, then send again */
            sleep_ms(wait_ms);
            wait_ms = wait_ms * 2 > WAIT_MAX_MS ? WAIT_MAX_MS : wait_ms * 2;
            for (size_t i = 0; i < n; i++)
                tr[i].wait = false;
        }
    }
    bool all = true;
    for (size_t i = 0; i < n; i++) {
        /* a server that refuses our AUTH or SELECT is a setup fault: say so */
        if (topo == AW_ERR_CONFIG && cmds[i].err == AW_ERR_IO)
            cmds[i].err = AW_ERR_CONFIG;
        all = all && cmds[i].err != AW_ERR_IO && cmds[i].err != AW_ERR_CONFIG;
    }
    free(tr);
    free(argv);
    free(lens);
    return all ? AW_OK : topo == AW_ERR_CONFIG ? AW_ERR_CONFIG : AW_ERR_IO;
}
