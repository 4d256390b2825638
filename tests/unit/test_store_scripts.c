/* test_store_scripts.c -- every Lua script of worker/store/scripts, run on a real redis-server
 * (Debian's, started here on a unix socket in a scratch directory: no network) through the
 * store's client. Each script's KEYS / ARGV / reply as its header comment states, and the names
 * the scripts write are those of the one table worker/store/fields.def. A missing redis-server
 * fails the test. Longer than 900 lines on purpose: one section per script (docs/style.md §9:
 * one test executable per module), and most of the length is the blocks of apply.lua written
 * out field by field; a split would start a second redis-server for the same fixtures. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/mem.h"
#include "tests/harness.h"
#include "worker/store/client.h"
#include "worker/store/names.h"
#include "worker/store/scripts.h"

static struct aw_redis *g_r;
static pid_t g_server;
static char g_dir[] = "/tmp/aw-scripts-XXXXXX";

/* ---- server -------------------------------------------------------------------------------- */

static void stop_server(void)
{
    if (g_server > 0) {
        kill(g_server, SIGKILL);
        waitpid(g_server, NULL, 0);
        g_server = 0;
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", g_dir);
}

static bool start_server(char *url, size_t len)
{
    if (!mkdtemp(g_dir))
        return false;
    char sock[128];
    snprintf(sock, sizeof sock, "%s/redis.sock", g_dir);
    g_server = fork();
    if (g_server == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock,
               "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", g_dir,
               (char *)NULL);
        _exit(127);
    }
    if (g_server < 0)
        return false;
    struct stat st;
    for (int i = 0; i < 100; i++) {
        if (stat(sock, &st) == 0)
            break;
        int status;
        if (waitpid(g_server, &status, WNOHANG) == g_server) {
            g_server = 0;
            return false; /* redis-server missing or failed: the test fails */
        }
        aw_clock_sleep_ms(50, NULL);
    }
    snprintf(url, len, "unix://%s", sock);
    return stat(sock, &st) == 0;
}

/* ---- calls --------------------------------------------------------------------------------- */

#define ARGS_MAX 64

/* Runs one script (keys first, then args, NULL-terminated list) or a command (script < 0).
 * The caller clears *c. */
static enum aw_err call(struct aw_redis_cmd *c, int script, int nkeys, ...)
{
    static const char *argv[ARGS_MAX];
    va_list ap;
    va_start(ap, nkeys);
    int n = 0;
    for (const char *a = va_arg(ap, const char *); a && n < ARGS_MAX; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    memset(c, 0, sizeof *c);
    c->script = script;
    c->nkeys = nkeys;
    c->route = n ? argv[script >= 0 ? 0 : 1 < n ? 1 : 0] : NULL;
    c->argc = n;
    c->argv = argv;
    enum aw_err e = aw_redis_exec(g_r, c, 1);
    return e == AW_OK ? c->err : e;
}

static const char *str(const struct aw_reply *r, size_t i)
{
    if (r->type != AW_REPLY_ARRAY || i >= r->n || r->elem[i].type != AW_REPLY_STR)
        return "";
    return r->elem[i].str;
}

static long long num(const struct aw_reply *r, size_t i)
{
    if (r->type != AW_REPLY_ARRAY || i >= r->n || r->elem[i].type != AW_REPLY_INT)
        return -999;
    return r->elem[i].integer;
}

/* HGET as a string ("" when absent). */
static char *hget(const char *key, const char *field)
{
    struct aw_redis_cmd c;
    enum aw_err e = call(&c, -1, 0, "HGET", key, field, (char *)NULL);
    char *v = aw_strdup(e == AW_OK && c.reply.type == AW_REPLY_STR ? c.reply.str : "");
    aw_redis_cmd_clear(&c);
    return v;
}

static long long intcmd(const char *cmd, const char *key, const char *arg)
{
    struct aw_redis_cmd c;
    enum aw_err e = call(&c, -1, 0, cmd, key, arg, (char *)NULL);
    long long v = e == AW_OK && c.reply.type == AW_REPLY_INT ? c.reply.integer : -999;
    if (e == AW_OK && c.reply.type == AW_REPLY_STR)
        v = strtoll(c.reply.str, NULL, 10);
    aw_redis_cmd_clear(&c);
    return v;
}

/* A small deterministic generator (the same sequence on every run). */
static unsigned rnd(unsigned *seed, unsigned n)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) % n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

#define U "aw:{1}:u:ann@x.io"
#define NOW "1700000000000"
#define ACCT "aw:{1}:acct"
/* apply.lua's fixed arguments in these tests (account 1), then its reply's fields */
#define APPLY_FIXED ACCT, "1", NOW, "2", "60000", "600"
#define A_MIN 0
#define A_CHANGED 2
#define A_STATUS 3 /* of the first change; the next one's is 2 further */
#define A_PENDING 4

/* One change block of apply.lua (its header comment): the action, head and, unless it repeats
 * the previous block's consents and attributes (repeat), those. */
struct blk {
    const char *act; /* "a" | "d" | "u" (anything else: malformed) */
    const char *aud, *email, *ts, *id, *name, *list;
    bool repeat;
    const char *ce, *cs; /* consents ('' none) */
    int np;
    const char *path[4], *value[4];
    bool same_ev, same_nl; /* email and version left out (the previous block's); name and listId
                              left out (the audience's previous block's) */
};

/* Appends block *k's arguments to argv/lens (strings kept in arena, of which *used bytes). */
static int blk_args(const struct blk *k, const char **argv, size_t *lens, char *arena, size_t *used)
{
    int n = 0;
#define PUT(s, l)                                                                                  \
    do {                                                                                           \
        char *d_ = arena + *used;                                                                  \
        memcpy(d_, (s), (l));                                                                      \
        d_[(l)] = '\0';                                                                            \
        *used += (l) + 1;                                                                          \
        argv[n] = d_;                                                                              \
        lens[n++] = (l);                                                                           \
    } while (0)
    char code[8];
    snprintf(code, sizeof code, "%s%s%s", k->act, k->same_ev ? "e" : "", k->same_nl ? "n" : "");
    if (!k->repeat && code[0] >= 'a' && code[0] <= 'z')
        code[0] = (char)(code[0] - 'a' + 'A');
    char head[64];
    snprintf(head, sizeof head, "%s:%s", code, k->aud);
    PUT(head, strlen(head));
    if (!k->same_ev) {
        PUT(k->email, strlen(k->email));
        char ver[64];
        snprintf(ver, sizeof ver, "%s:%s", k->ts, k->id);
        PUT(ver, strlen(ver));
    }
    if (!k->same_nl) {
        PUT(k->name, strlen(k->name));
        PUT(k->list, strlen(k->list));
    }
    if (!k->repeat) {
        PUT(k->ce, strlen(k->ce));
        PUT(k->cs, strlen(k->cs));
        char h[256] = "", x[256] = "";
        size_t hl = 0, xl = 0;
        if (k->np > 0)
            hl = (size_t)snprintf(h, sizeof h, "%d", k->np) + 1;
        for (int j = 0; j < k->np; j++) {
            size_t pl = strlen(k->path[j]), vl = strlen(k->value[j]);
            memcpy(h + hl, k->path[j], pl + 1);
            hl += pl + 1;
            if (j > 0)
                x[xl++] = '\0';
            memcpy(x + xl, k->value[j], vl);
            xl += vl;
        }
        PUT(h, hl);
        PUT(x, xl);
    }
#undef PUT
    return n;
}

/* apply.lua on account acct (KEYS[1] acct_key) with n blocks. The caller clears *c. */
static enum aw_err apply_blocks(struct aw_redis_cmd *c, const char *acct_key, const char *acct,
                                const struct blk *k, int n)
{
    static const char *argv[6 + 10 * 160];
    static size_t lens[6 + 10 * 160];
    static char arena[160 * 1024];
    size_t used = 0;
    const char *fixed[6] = {acct_key, acct, NOW, "2", "60000", "600"};
    int argc = 0;
    for (int i = 0; i < 6; i++) {
        argv[argc] = fixed[i];
        lens[argc++] = strlen(fixed[i]);
    }
    for (int i = 0; i < n; i++)
        argc += blk_args(&k[i], argv + argc, lens + argc, arena, &used);
    memset(c, 0, sizeof *c);
    c->script = AW_SCRIPT_APPLY;
    c->nkeys = 1;
    c->route = acct_key;
    c->argc = argc;
    c->argv = argv;
    c->lens = lens;
    enum aw_err e = aw_redis_exec(g_r, c, 1);
    return e == AW_OK ? c->err : e;
}

/* apply.lua with one change of ann@x.io to audience aud (one attribute pair, none when path is
 * ""). */
static enum aw_err apply(struct aw_redis_cmd *c, const char *aud, const char *ts, const char *id,
                         const char *act, const char *ce, const char *path, const char *value)
{
    struct blk k = {act, aud, "ann@x.io",    ts,     id,      "Aud", "",   false,
                    ce,  "",  *path ? 1 : 0, {path}, {value}, false, false};
    return apply_blocks(c, ACCT, "1", &k, 1);
}

/* The value (JSON text) of attribute path in user hash key ("" when none; caller frees); its
 * version into ver (when not NULL, "" when none). The attributes field's format:
 * attr_state in worker/store/scripts/lib.lua. */
static char *attr_get(const char *key, const char *path, char *ver, size_t ver_len)
{
    struct aw_redis_cmd c;
    char *out = aw_strdup("");
    if (ver)
        snprintf(ver, ver_len, "%s", "");
    if (call(&c, -1, 0, "HGET", key, aw_store_name(AW_F_USER_ATTRS), (char *)NULL) != AW_OK ||
        c.reply.type != AW_REPLY_STR) {
        aw_redis_cmd_clear(&c);
        return out;
    }
    const char *s = c.reply.str, *end = s + c.reply.len;
    long n = strtol(s, NULL, 10);
    const char *p = s + strlen(s) + 1;
    long at = -1;
    for (long j = 0; j < n && p < end; j++) {
        if (at < 0 && strcmp(p, path) == 0)
            at = j;
        p += strlen(p) + 1;
    }
    const char *v1 = NULL;
    if (p < end && *p != '\0') { /* one version for all */
        v1 = p;
        p += strlen(p) + 1;
    } else {
        p++;
        for (long j = 0; j < n && p < end; j++) {
            if (j == at && ver)
                snprintf(ver, ver_len, "%s", p);
            p += strlen(p) + 1;
        }
    }
    if (v1 && at >= 0 && ver)
        snprintf(ver, ver_len, "%s", v1);
    for (long j = 0; j < n && p <= end; j++) {
        const char *e = memchr(p, '\0', (size_t)(end - p));
        size_t l = e ? (size_t)(e - p) : (size_t)(end - p);
        if (j == at) {
            free(out);
            out = aw_malloc(l + 1);
            memcpy(out, p, l);
            out[l] = '\0';
        }
        p += l + 1;
    }
    aw_redis_cmd_clear(&c);
    return out;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_apply(void)
{
    struct aw_redis_cmd c;
    AW_CHECK_INT_EQ(apply(&c, "10", "1000", "e1", "a", "1000:1", "first_name", "\"Jo\""), AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, A_STATUS), "applied");
    AW_CHECK_INT_EQ(num(&c.reply, A_PENDING), 1);                   /* pending of audience 10 */
    AW_CHECK_INT_EQ(num(&c.reply, A_MIN), 1700000000000LL + 60000); /* now + max age */
    AW_CHECK_INT_EQ(num(&c.reply, A_CHANGED), 1); /* the account's earliest due moved */
    aw_redis_cmd_clear(&c);
    /* the same change again: stale, nothing written */
    AW_CHECK_INT_EQ(apply(&c, "10", "1000", "e1", "a", "1000:1", "first_name", "\"Jo\""), AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, A_STATUS), "stale");
    aw_redis_cmd_clear(&c);
    /* an older change of another audience: membership applies there, the older attribute and
     * consent do not regress the profile */
    AW_CHECK_INT_EQ(apply(&c, "11", "900", "e0", "a", "900:0", "first_name", "\"Old\""), AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, A_STATUS), "applied");
    aw_redis_cmd_clear(&c);
    char *v = attr_get(U, "first_name", NULL, 0);
    AW_CHECK_STR_EQ(v, "\"Jo\"");
    free(v);
    v = hget(U, "c:email");
    AW_CHECK_STR_EQ(v, "1000:1");
    free(v);
    /* tie on the timestamp: the greater message id wins (bytes, not locale) */
    AW_CHECK_INT_EQ(apply(&c, "10", "1000", "e2", "u", "", "first_name", "\"Tie\""), AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, A_STATUS), "applied");
    aw_redis_cmd_clear(&c);
    v = attr_get(U, "first_name", NULL, 0);
    AW_CHECK_STR_EQ(v, "\"Tie\"");
    free(v);
    /* every field the script wrote is a USER_* name of the table */
    struct aw_redis_cmd k;
    AW_CHECK_INT_EQ(call(&k, -1, 0, "HKEYS", U, (char *)NULL), AW_OK);
    static const enum aw_store_name known[] = {AW_F_USER_MEMBERSHIP, AW_F_USER_ATTRS,
                                               AW_F_USER_CONSENT,    AW_F_USER_CONSENT_SENT,
                                               AW_F_USER_REFS,       AW_F_USER_PROFILE_ID};
    for (size_t i = 0; i < k.reply.n; i++) {
        bool ok = false;
        for (size_t j = 0; j < sizeof known / sizeof known[0]; j++)
            ok = ok || aw_store_name_is_prefix(known[j], k.reply.elem[i].str, k.reply.elem[i].len);
        AW_CHECK_MSG(ok, "field %s is not in fields.def", k.reply.elem[i].str);
    }
    aw_redis_cmd_clear(&k);
    /* referenced by two audience entries and the profile entry: no expiry */
    AW_CHECK_INT_EQ(intcmd("HGET", U, "pc"), 3);
    AW_CHECK_INT_EQ(intcmd("TTL", U, NULL), -1);
    /* refused arguments never write: the whole call, or the one malformed change */
    struct blk k0 = {"a", "10", "ann@x.io", "1", "e", "",    "",   false,
                     "",  "",   0,          {0}, {0}, false, false};
    AW_CHECK_INT_EQ(apply_blocks(&c, "aw:{2}:acct", "1", &k0, 1),
                    AW_ERR_INVALID); /* KEYS[1] is not this account's key */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_APPLY, 1, APPLY_FIXED, "X:10", "ann@x.io", "1:e", "", "", "",
                         "", "", "", (char *)NULL),
                    AW_ERR_INVALID); /* a block's action is unknown: its framing is unknown */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_APPLY, 1, APPLY_FIXED, "A10", "ann@x.io", "1:e", "", "", "",
                         "", "", "", (char *)NULL),
                    AW_ERR_INVALID); /* no audience after the code */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_APPLY, 1, APPLY_FIXED, "A:10", "ann@x.io", "1:e", "", "", "",
                         "", "", (char *)NULL),
                    AW_ERR_INVALID); /* a block cut short */
    AW_CHECK_INT_EQ(
        call(&c, AW_SCRIPT_APPLY, 1, APPLY_FIXED, "Ae:10", "", "", "", "", "", "", (char *)NULL),
        AW_ERR_INVALID); /* the first block has no previous one */
    k0.ce = "yes";
    AW_CHECK_INT_EQ(apply_blocks(&c, ACCT, "1", &k0, 1), AW_OK); /* malformed consent */
    AW_CHECK_STR_EQ(str(&c.reply, A_STATUS), "invalid");
    aw_redis_cmd_clear(&c);
    /* malformed attributes: paths without their count, values of another count, an empty path,
     * a version that is not one */
    static const char *const bad[][2] = {{"first_name", "1"}, {"2\0a\0b", "\"x\""}};
    for (size_t i = 0; i < 2; i++) {
        const char *a[] = {APPLY_FIXED, "U:10", "ann@x.io", "1:e",     "",
                           "",          "",     "",         bad[i][0], bad[i][1]};
        size_t l[15];
        for (size_t j = 0; j < 15; j++)
            l[j] = j < sizeof a / sizeof a[0] ? strlen(a[j]) : 0;
        l[13] = i == 0 ? 10 : 6; /* "2\0a\0b\0": two paths, one value */
        c = (struct aw_redis_cmd){
            .script = AW_SCRIPT_APPLY, .nkeys = 1, .route = ACCT, .argc = 15, .argv = a, .lens = l};
        AW_CHECK_INT_EQ(aw_redis_exec(g_r, &c, 1), AW_OK);
        AW_CHECK_STR_EQ(str(&c.reply, A_STATUS), "invalid");
        aw_redis_cmd_clear(&c);
    }
    struct blk k1 = {"a", "10", "ann@x.io", "1",  "e",   "",    "",   false,
                     "",  "",   1,          {""}, {"1"}, false, false};
    AW_CHECK_INT_EQ(apply_blocks(&c, ACCT, "1", &k1, 1), AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, A_STATUS), "invalid");
    aw_redis_cmd_clear(&c);
    k1 = (struct blk){"a", "10", "ann@x.io", "x1", "e", "",    "",   false,
                      "",  "",   0,          {0},  {0}, false, false};
    AW_CHECK_INT_EQ(apply_blocks(&c, ACCT, "1", &k1, 1), AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, A_STATUS), "invalid");
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(intcmd("HGET", U, "pc"), 3);
}

/* The attributes field: each path keeps its own version across changes carrying other paths;
 * one version is stored while all share it; an older change never regresses a path. */
static void test_apply_attrs(void)
{
    const char *K = "aw:{5}:acct", *C = "aw:{5}:u:cat@x.io";
    struct aw_redis_cmd c;
    struct {
        const char *ts, *id;
        int np;
        const char *p[3], *x[3];
        const char *status;
    } steps[] = {
        {"1000", "a", 1, {"first_name"}, {"\"A\""}, "applied"},
        /* a new path and a newer value: merged */
        {"1500", "b", 2, {"first_name", "last_name"}, {"\"B\"", "\"L\""}, "applied"},
        /* older: last_name stays, title is new */
        {"1200", "c", 2, {"last_name", "title"}, {"\"Old\"", "\"T\""}, "applied"},
        /* older than every path: stale */
        {"1100", "d", 2, {"last_name", "title"}, {"\"X\"", "\"Y\""}, "stale"},
        /* every path newer: one version again */
        {"1600", "e", 3, {"first_name", "last_name", "title"}, {"1", "2", "3"}, "applied"},
        /* the same paths, older (the header compared whole): stale; newer: replaced whole */
        {"1550", "f", 3, {"first_name", "last_name", "title"}, {"7", "8", "9"}, "stale"},
        {"1700", "g", 3, {"first_name", "last_name", "title"}, {"4", "5", "null"}, "applied"},
        /* a tie on the timestamp: the greater id wins, path by path */
        {"1700", "a", 1, {"title"}, {"\"lower id\""}, "stale"},
        {"1700", "h", 1, {"title"}, {"\"higher id\""}, "applied"},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        struct blk k = {"u", "50", "cat@x.io",  steps[i].ts, steps[i].id, "",    "",   false,
                        "",  "",   steps[i].np, {0},         {0},         false, false};
        for (int j = 0; j < steps[i].np; j++) {
            k.path[j] = steps[i].p[j];
            k.value[j] = steps[i].x[j];
        }
        AW_CHECK_INT_EQ(apply_blocks(&c, K, "5", &k, 1), AW_OK);
        AW_CHECK_MSG(strcmp(str(&c.reply, A_STATUS), steps[i].status) == 0, "step %zu: %s", i,
                     str(&c.reply, A_STATUS));
        aw_redis_cmd_clear(&c);
        char ver[64];
        char *v = attr_get(C, "first_name", ver, sizeof ver);
        if (i == 2) { /* three paths at two versions */
            AW_CHECK_STR_EQ(v, "\"B\"");
            AW_CHECK_STR_EQ(ver, "1500:b");
            free(v);
            v = attr_get(C, "last_name", ver, sizeof ver);
            AW_CHECK_STR_EQ(v, "\"L\"");
            AW_CHECK_STR_EQ(ver, "1500:b");
            free(v);
            v = attr_get(C, "title", ver, sizeof ver);
            AW_CHECK_STR_EQ(v, "\"T\"");
            AW_CHECK_STR_EQ(ver, "1200:c");
        } else if (i == 6) {
            AW_CHECK_STR_EQ(v, "4");
            AW_CHECK_STR_EQ(ver, "1700:g");
            /* one version for all */
            static const char want[] = "3\0first_name\0last_name\0title\0"
                                       "1700:g\0"
                                       "4\0"
                                       "5\0"
                                       "null";
            struct aw_redis_cmd a;
            AW_CHECK_INT_EQ(
                call(&a, -1, 0, "HGET", C, aw_store_name(AW_F_USER_ATTRS), (char *)NULL), AW_OK);
            AW_CHECK(a.reply.type == AW_REPLY_STR && a.reply.len == sizeof want - 1 &&
                     memcmp(a.reply.str, want, sizeof want - 1) == 0);
            aw_redis_cmd_clear(&a);
            free(v);
            v = attr_get(C, "title", ver, sizeof ver);
            AW_CHECK_STR_EQ(v, "null");
        } else if (i == 8) {
            free(v);
            v = attr_get(C, "title", ver, sizeof ver);
            AW_CHECK_STR_EQ(v, "\"higher id\"");
            AW_CHECK_STR_EQ(ver, "1700:h");
        }
        free(v);
    }
    /* the profile entry lists each path once, in the order they first changed */
    struct aw_redis_cmd e;
    AW_CHECK_INT_EQ(call(&e, -1, 0, "HGET", "aw:{5}:p:p", "cat@x.io", (char *)NULL), AW_OK);
    AW_CHECK(e.reply.type == AW_REPLY_STR && e.reply.len == 26 &&
             memcmp(e.reply.str, "first_name\0last_name\0title", 26) == 0);
    aw_redis_cmd_clear(&e);
    /* the pending hash was created as a hash table, and without the field that made it one */
    AW_CHECK_INT_EQ(call(&e, -1, 0, "OBJECT", "ENCODING", "aw:{5}:p:p", (char *)NULL), AW_OK);
    AW_CHECK_STR_EQ(e.reply.type == AW_REPLY_STR ? e.reply.str : "", "hashtable");
    aw_redis_cmd_clear(&e);
    AW_CHECK_INT_EQ(intcmd("HLEN", "aw:{5}:p:p", NULL), 1);
    AW_CHECK_INT_EQ(intcmd("HEXISTS", "aw:{5}:p:p", ""), 0);
}

/* A user written before the attributes field (a:<path>, v:<path>): apply folds those into it and
 * deletes them; take reads them while the user has not changed since. */
static void test_apply_legacy_attrs(void)
{
    const char *K = "aw:{6}:acct", *O = "aw:{6}:u:old@x.io", *T = "aw:{6}:u:tk@x.io";
    struct aw_redis_cmd c;
    AW_CHECK_INT_EQ(call(&c, -1, 0, "HSET", O, "a:first_name", "\"Old\"", "v:first_name", "1000:a",
                         "a:last_name", "\"L\"", "v:last_name", "2000:b", "m:60", "900:z",
                         (char *)NULL),
                    AW_OK);
    aw_redis_cmd_clear(&c);
    struct blk k = {"u",
                    "60",
                    "old@x.io",
                    "1500",
                    "c",
                    "",
                    "",
                    false,
                    "",
                    "",
                    2,
                    {"first_name", "last_name"},
                    {"\"New\"", "\"Older\""},
                    false,
                    false};
    AW_CHECK_INT_EQ(apply_blocks(&c, K, "6", &k, 1), AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, A_STATUS), "applied");
    aw_redis_cmd_clear(&c);
    char ver[64];
    char *v = attr_get(O, "first_name", ver, sizeof ver);
    AW_CHECK_STR_EQ(v, "\"New\"");
    AW_CHECK_STR_EQ(ver, "1500:c");
    free(v);
    v = attr_get(O, "last_name", ver, sizeof ver); /* newer in the old fields: kept */
    AW_CHECK_STR_EQ(v, "\"L\"");
    AW_CHECK_STR_EQ(ver, "2000:b");
    free(v);
    AW_CHECK_INT_EQ(intcmd("HEXISTS", O, "a:first_name"), 0);
    AW_CHECK_INT_EQ(intcmd("HEXISTS", O, "v:last_name"), 0);
    AW_CHECK_INT_EQ(intcmd("HEXISTS", O, "m:60"), 1);
    /* the profile entry lists only the path that changed */
    v = hget("aw:{6}:p:p", "old@x.io");
    AW_CHECK_STR_EQ(v, "first_name");
    free(v);
    /* take: a profile entry of a user in the old fields */
    AW_CHECK_INT_EQ(call(&c, -1, 0, "DEL", "aw:{6}:p:p", "aw:{6}:p:q", (char *)NULL), AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, -1, 0, "HSET", T, "a:first_name", "\"T\"", "v:first_name", "1000:a",
                         "a:phone_number", "+441234", "v:phone_number", "1000:a", "pc", "1",
                         (char *)NULL),
                    AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, -1, 0, "HSET", "aw:{6}:p:p", "tk@x.io", "first_name", (char *)NULL),
                    AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, -1, 0, "RPUSH", "aw:{6}:p:q", "tk@x.io", (char *)NULL), AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_TAKE, 1, "aw:{6}:p", "6", "p", "1", "", "10000", "1000", NOW,
                         "2", "60000", "600", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "taken");
    AW_CHECK_STR_EQ(str(&c.reply, 8), "tk@x.io");
    const struct aw_reply *rec = c.reply.n > 9 ? &c.reply.elem[9] : NULL;
    bool attr = false, phone = false, ver_ok = false;
    for (size_t i = 0; rec && i + 1 < rec->n; i += 2) {
        const char *f = rec->elem[i].str, *val = rec->elem[i + 1].str;
        if (strcmp(f, "a:first_name") == 0)
            attr = strcmp(val, "\"T\"") == 0;
        else if (strcmp(f, "i:phone_number") == 0)
            phone = strcmp(val, "+441234") == 0;
        else if (strcmp(f, "ver") == 0)
            ver_ok = strcmp(val, "1000:a") == 0;
        else
            AW_CHECK_MSG(false, "unexpected record field %s", f);
    }
    AW_CHECK(attr && phone && ver_ok);
    aw_redis_cmd_clear(&c);
}

/* Several changes in one call behave as one call each, in order. */
static void test_apply_many(void)
{
    const char *B = "aw:{1}:u:bob@x.io";
    struct aw_redis_cmd c;
    const struct blk k[] = {
        /* audience 20: add with an attribute and consent */
        {"a",
         "20",
         "bob@x.io",
         "3000",
         "m1",
         "Aud",
         "",
         false,
         "3000:1",
         "",
         1,
         {"first_name"},
         {"\"Bo\""},
         false,
         false},
        /* audience 21, same message: the previous block's consent and pairs */
        {"a", "21", "bob@x.io", "3000", "m1", "Aud2", "", true, "", "", 0, {0}, {0}, true, false},
        /* malformed (no email): refused alone */
        {"a", "20", "", "3000", "m1", "", "", false, "", "", 0, {0}, {0}, false, false},
        /* the first change again: stale within the same call */
        {"a",
         "20",
         "bob@x.io",
         "3000",
         "m1",
         "Aud",
         "",
         false,
         "3000:1",
         "",
         1,
         {"first_name"},
         {"\"Bo\""},
         false,
         false},
        /* a newer delete from audience 20 */
        {"d", "20", "bob@x.io", "3001", "m2", "", "", false, "", "", 0, {0}, {0}, false, false}};
    AW_CHECK_INT_EQ(apply_blocks(&c, ACCT, "1", k, 5), AW_OK);
    AW_CHECK_INT_EQ(c.reply.n, 3 + 2 * 5);
    AW_CHECK_STR_EQ(str(&c.reply, A_STATUS), "applied");
    AW_CHECK_INT_EQ(num(&c.reply, A_PENDING), 1); /* pending in audience 20 */
    AW_CHECK_STR_EQ(str(&c.reply, A_STATUS + 2), "applied");
    AW_CHECK_INT_EQ(num(&c.reply, A_PENDING + 2), 1);
    AW_CHECK_STR_EQ(str(&c.reply, A_STATUS + 4), "invalid");
    AW_CHECK_STR_EQ(str(&c.reply, A_STATUS + 6), "stale");
    AW_CHECK_INT_EQ(num(&c.reply, A_PENDING + 6), 1);
    AW_CHECK_STR_EQ(str(&c.reply, A_STATUS + 8), "applied");
    AW_CHECK_INT_EQ(num(&c.reply, A_PENDING + 8), 1);
    aw_redis_cmd_clear(&c);
    char *v = hget("aw:{1}:a:20:p", "bob@x.io");
    AW_CHECK_STR_EQ(v, "d3001:m2"); /* the last change of the user wins */
    free(v);
    char ver[64];
    v = attr_get(B, "first_name", ver, sizeof ver);
    AW_CHECK_STR_EQ(v, "\"Bo\"");
    AW_CHECK_STR_EQ(ver, "3000:m1");
    free(v);
    v = hget("aw:{1}:a:21", "name");
    AW_CHECK_STR_EQ(v, "Aud2");
    free(v);
    v = hget("aw:{1}:p:p", "bob@x.io"); /* the paths changed, each once */
    AW_CHECK_STR_EQ(v, "first_name");
    free(v);
    /* two audience entries and one profile entry, each queued once */
    AW_CHECK_INT_EQ(intcmd("HGET", B, "pc"), 3);
    AW_CHECK_INT_EQ(intcmd("TTL", B, NULL), -1);
    AW_CHECK_INT_EQ(intcmd("LLEN", "aw:{1}:a:20:q", NULL), 1);
    AW_CHECK_INT_EQ(intcmd("LLEN", "aw:{1}:a:21:q", NULL), 1);
    AW_CHECK_INT_EQ(intcmd("SISMEMBER", "aw:{1}:auds", "21"), 1);
    AW_CHECK_INT_EQ(intcmd("ZSCORE", "aw:{1}:due", "a:21"), 1700000000000LL + 60000);
    /* a later call adds its paths to the entry pending */
    const struct blk k2 = {"u",
                           "21",
                           "bob@x.io",
                           "3003",
                           "m4",
                           "",
                           "",
                           false,
                           "",
                           "",
                           2,
                           {"first_name", "last_name"},
                           {"\"B\"", "\"C\""},
                           false,
                           false};
    AW_CHECK_INT_EQ(apply_blocks(&c, ACCT, "1", &k2, 1), AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, A_STATUS), "applied");
    aw_redis_cmd_clear(&c);
    struct aw_redis_cmd e;
    AW_CHECK_INT_EQ(call(&e, -1, 0, "HGET", "aw:{1}:p:p", "bob@x.io", (char *)NULL), AW_OK);
    AW_CHECK(e.reply.type == AW_REPLY_STR && e.reply.len == 20 &&
             memcmp(e.reply.str, "first_name\0last_name", 20) == 0);
    aw_redis_cmd_clear(&e);
    /* leave the account as test_take_read_ack expects it */
    const struct blk k3 = {"d", "20", "bob@x.io", "3002", "m3", "",    "",   false,
                           "",  "",   0,          {0},    {0},  false, false};
    AW_CHECK_INT_EQ(apply_blocks(&c, ACCT, "1", &k3, 1), AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, -1, 0, "DEL", "aw:{1}:a:20", "aw:{1}:a:20:p", "aw:{1}:a:20:q",
                         "aw:{1}:a:21", "aw:{1}:a:21:p", "aw:{1}:a:21:q", B, (char *)NULL),
                    AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, -1, 0, "HDEL", "aw:{1}:p:p", "bob@x.io", (char *)NULL), AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, -1, 0, "LREM", "aw:{1}:p:q", "0", "bob@x.io", (char *)NULL), AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, -1, 0, "ZREM", "aw:{1}:due", "a:20", "a:21", (char *)NULL), AW_OK);
    aw_redis_cmd_clear(&c);
}

/* ---- apply: one call of many changes == one call each ----------------------------------- */

/* The state of account acct as sorted text lines "<key with {X}> <type> <canonical content>"
 * (hash fields sorted; dseq left out: a call of many changes bumps it once). Caller frees. */
static char *dump_account(const char *acct)
{
    char pat[64];
    snprintf(pat, sizeof pat, "aw:{%s}:*", acct);
    struct aw_redis_cmd k;
    if (call(&k, -1, 0, "KEYS", pat, (char *)NULL) != AW_OK)
        return aw_strdup("");
    char **lines = aw_calloc(k.reply.n + 1, sizeof *lines);
    for (size_t i = 0; i < k.reply.n; i++) {
        const char *key = k.reply.elem[i].str;
        struct aw_buf b;
        aw_buf_init(&b, 0);
        const char *tail = strchr(key, '}');
        (void)aw_buf_appendf(&b, "aw:{X%s", tail ? tail : "");
        struct aw_redis_cmd t, v;
        (void)call(&t, -1, 0, "TYPE", key, (char *)NULL);
        const char *type = t.reply.type == AW_REPLY_STR ? t.reply.str : "?";
        (void)aw_buf_appendf(&b, " %s", type);
        if (strcmp(type, "hash") == 0) {
            (void)call(&v, -1, 0, "HGETALL", key, (char *)NULL);
            size_t n = v.reply.n / 2;
            char **f = aw_calloc(n + 1, sizeof *f);
            for (size_t j = 0; j < n; j++) {
                /* (a profile entry holds NULs: shown as '|') */
                const struct aw_reply *fv = &v.reply.elem[2 * j + 1];
                char *val = aw_malloc(fv->len + 1);
                memcpy(val, fv->str, fv->len);
                val[fv->len] = '\0';
                for (size_t q = 0; q < fv->len; q++)
                    val[q] = val[q] ? val[q] : '|';
                size_t fl = v.reply.elem[2 * j].len + fv->len + 2;
                f[j] = aw_malloc(fl);
                bool is_acct = strcmp(v.reply.elem[2 * j].str, "account_id") == 0;
                snprintf(f[j], fl, "%s=%s", v.reply.elem[2 * j].str, is_acct ? "X" : val);
                free(val);
            }
            qsort(f, n, sizeof *f, cmp_str);
            for (size_t j = 0; j < n; j++) {
                if (strncmp(f[j], "dseq=", 5) != 0)
                    (void)aw_buf_appendf(&b, " %s", f[j]);
                free(f[j]);
            }
            free(f);
        } else {
            if (strcmp(type, "list") == 0)
                (void)call(&v, -1, 0, "LRANGE", key, "0", "-1", (char *)NULL);
            else if (strcmp(type, "zset") == 0)
                (void)call(&v, -1, 0, "ZRANGE", key, "0", "-1", "WITHSCORES", (char *)NULL);
            else if (strcmp(type, "set") == 0)
                (void)call(&v, -1, 0, "SORT", key, "ALPHA", (char *)NULL);
            else
                (void)call(&v, -1, 0, "GET", key, (char *)NULL);
            for (size_t j = 0; v.reply.type == AW_REPLY_ARRAY && j < v.reply.n; j++)
                (void)aw_buf_appendf(&b, " %s", v.reply.elem[j].str ? v.reply.elem[j].str : "nil");
            if (v.reply.type == AW_REPLY_STR)
                (void)aw_buf_appendf(&b, " %s", v.reply.str);
        }
        aw_redis_cmd_clear(&v);
        aw_redis_cmd_clear(&t);
        lines[i] = aw_buf_take(&b);
    }
    qsort(lines, k.reply.n, sizeof *lines, cmp_str);
    struct aw_buf all;
    aw_buf_init(&all, 0);
    for (size_t i = 0; i < k.reply.n; i++) {
        (void)aw_buf_appendf(&all, "%s\n", lines[i]);
        free(lines[i]);
    }
    free(lines);
    aw_redis_cmd_clear(&k);
    char *out = all.len ? aw_buf_take(&all) : aw_strdup("");
    aw_buf_free(&all);
    return out;
}

/* Random changes (few users, audiences, versions: ties, redeliveries, out of order; consents,
 * deletes, attribute-only updates, blocks repeating the previous one's pairs, malformed ones,
 * a removed audience) go to account acct_a in one apply call and to acct_b one call each: the
 * replies and the resulting states must be the same. */
static void apply_many_equals_single(unsigned seed, const char *acct_a, const char *acct_b)
{
    enum { CHANGES = 150 };
    static const char *const emails[] = {"p@x.io", "q@x.io", "r@x.io", "s@x.io"};
    static const char *const paths[] = {"first_name", "last_name", "phone_number"};
    static const char *const ids[] = {"a", "b", "c"};
    static const char *const acts[] = {"a", "a", "d", "u"};
    static char text[CHANGES][8][24];
    static struct blk k[CHANGES];
    for (int c = 0; c < CHANGES; c++) {
        struct blk *b = &k[c];
        memset(b, 0, sizeof *b);
        b->repeat = c > 0 && rnd(&seed, 3) == 0 && !k[c - 1].repeat;
        snprintf(text[c][0], 24, "%u", 1 + rnd(&seed, 3));
        b->aud = text[c][0];
        b->email = rnd(&seed, 40) == 0 ? "" : emails[rnd(&seed, 4)];
        snprintf(text[c][1], 24, "%u", 1000 + rnd(&seed, 6));
        b->ts = text[c][1];
        b->id = ids[rnd(&seed, 3)];
        b->name = rnd(&seed, 2) ? "Name" : "";
        b->list = "";
        b->act = acts[rnd(&seed, 4)];
        b->ce = b->cs = "";
        /* blocks leaving out the email and version, or the name and listId */
        if (c > 0 && rnd(&seed, 3) == 0) {
            b->email = k[c - 1].email;
            b->ts = k[c - 1].ts;
            b->id = k[c - 1].id;
            b->same_ev = true;
        }
        for (int p = c - 1; p >= 0; p--) {
            if (strcmp(k[p].aud, b->aud) == 0) {
                b->same_nl = strcmp(k[p].name, b->name) == 0 && rnd(&seed, 2) == 0;
                break;
            }
        }
        if (!b->repeat) {
            b->np = (int)rnd(&seed, 4);
            if (rnd(&seed, 3) == 0) {
                unsigned cts = 900 + rnd(&seed, 5);
                snprintf(text[c][2], 24, "%u:%u", cts, rnd(&seed, 2));
                b->ce = text[c][2];
            }
            b->cs = rnd(&seed, 4) == 0 ? "950:1" : "";
            for (int j = 0; j < b->np; j++) {
                b->path[j] = paths[(j + c) % 3];
                snprintf(text[c][3 + j], 24, "\"v%u\"", rnd(&seed, 5));
                b->value[j] = text[c][3 + j];
            }
        }
    }
    char key[2][32], acct_key[2][32];
    const char *acct[2] = {acct_a, acct_b};
    for (int x = 0; x < 2; x++) {
        snprintf(key[x], sizeof key[x], "aw:{%s}:a:3", acct[x]);
        snprintf(acct_key[x], sizeof acct_key[x], "aw:{%s}:acct", acct[x]);
    }
    const char *rm[2][12] = {
        {key[0], acct_a, "3", "remove", "1002", "r", NOW, "2", "60000", "", ""},
        {key[1], acct_b, "3", "remove", "1002", "r", NOW, "2", "60000", "", ""}};
    for (int x = 0; x < 2; x++) {
        struct aw_redis_cmd c = {
            .script = AW_SCRIPT_AUDIENCE, .nkeys = 1, .route = rm[x][0], .argc = 11, .argv = rm[x]};
        AW_CHECK_INT_EQ(aw_redis_exec(g_r, &c, 1), AW_OK);
        aw_redis_cmd_clear(&c);
    }
    /* acct_a: every change in one call */
    struct aw_redis_cmd many;
    AW_CHECK_INT_EQ(apply_blocks(&many, acct_key[0], acct_a, k, CHANGES), AW_OK);
    AW_CHECK_INT_EQ(many.reply.n, 3 + 2 * CHANGES);
    /* acct_b: one call each; a block repeating the previous one's profile gets it written out */
    int last = 0, statuses[4] = {0};
    for (int c = 0; c < CHANGES && many.reply.n == 3 + 2 * CHANGES; c++) {
        struct blk one = k[c];
        one.same_ev = one.same_nl = false;
        if (one.repeat) {
            one.repeat = false;
            one.ce = k[last].ce;
            one.cs = k[last].cs;
            one.np = k[last].np;
            memcpy(one.path, k[last].path, sizeof one.path);
            memcpy(one.value, k[last].value, sizeof one.value);
        } else {
            last = c;
        }
        struct aw_redis_cmd s1;
        AW_CHECK_INT_EQ(apply_blocks(&s1, acct_key[1], acct_b, &one, 1), AW_OK);
        const char *want = str(&many.reply, 3 + 2 * (size_t)c);
        AW_CHECK_MSG(strcmp(str(&s1.reply, 3), want) == 0, "change %d: %s alone, %s in one call", c,
                     str(&s1.reply, 3), want);
        AW_CHECK_MSG(num(&s1.reply, 4) == num(&many.reply, 4 + 2 * (size_t)c),
                     "change %d: pending %lld alone, %lld in one call", c, num(&s1.reply, 4),
                     num(&many.reply, 4 + 2 * (size_t)c));
        statuses[strcmp(want, "applied") == 0    ? 0
                 : strcmp(want, "stale") == 0    ? 1
                 : strcmp(want, "disabled") == 0 ? 2
                                                 : 3]++;
        aw_redis_cmd_clear(&s1);
    }
    /* the sequence exercises every outcome */
    AW_CHECK(statuses[0] > 0 && statuses[1] > 0 && statuses[2] > 0 && statuses[3] > 0);
    aw_redis_cmd_clear(&many);
    char *a = dump_account(acct_a), *b = dump_account(acct_b);
    AW_CHECK(strlen(a) > 200);
    AW_CHECK_MSG(strcmp(a, b) == 0, "one call:\n%s\none call each:\n%s", a, b);
    free(a);
    free(b);
}

static void test_apply_many_equals_single(void)
{
    apply_many_equals_single(12345, "acA", "acB");
    apply_many_equals_single(777, "acC", "acD");
    apply_many_equals_single(4242, "acE", "acF");
}

static void test_take_read_ack(void)
{
    struct aw_redis_cmd c;
    /* audience 10: one entry, taken in one chunk; the profile stream becomes due now */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_TAKE, 1, "aw:{1}:a:10", "1", "a:10", "3", "", "10000",
                         "1000", NOW, "2", "60000", "600", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "taken");
    AW_CHECK_STR_EQ(str(&c.reply, 1), "3-1");
    AW_CHECK_INT_EQ(num(&c.reply, 2), 0); /* nothing more to fill */
    AW_CHECK_INT_EQ(num(&c.reply, 3), 0); /* account due now (batch in flight) */
    AW_CHECK_STR_EQ(str(&c.reply, 6), "active");
    AW_CHECK_STR_EQ(str(&c.reply, 8), "ann@x.io");
    const struct aw_reply *rec = c.reply.n > 9 ? &c.reply.elem[9] : NULL;
    AW_CHECK(rec && rec->type == AW_REPLY_ARRAY && rec->n == 4);
    if (rec && rec->n == 4) {
        AW_CHECK_STR_EQ(rec->elem[0].str, aw_store_name(AW_F_REC_ACTION));
        AW_CHECK_STR_EQ(rec->elem[1].str, "add");
        AW_CHECK_STR_EQ(rec->elem[2].str, aw_store_name(AW_F_REC_VERSION));
        AW_CHECK_STR_EQ(rec->elem[3].str, "1000:e1");
    }
    aw_redis_cmd_clear(&c);
    char *v = hget("aw:{1}:p", "drain");
    AW_CHECK_STR_EQ(v, "1");
    free(v);
    /* taking again resumes; read.lua pages the in-flight batch */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_TAKE, 1, "aw:{1}:a:10", "1", "a:10", "4", "", "10000",
                         "1000", NOW, "2", "60000", "600", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "resumed");
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(
        call(&c, AW_SCRIPT_READ, 1, "aw:{1}:a:10", "1", "a:10", "0", "100", (char *)NULL), AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "0");
    AW_CHECK_STR_EQ(str(&c.reply, 1), "ann@x.io");
    aw_redis_cmd_clear(&c);
    /* fenced: the batch now carries epoch 4 */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_ACK, 1, "aw:{1}:a:10", "1", "a:10", "3", "3-1", NOW, "2",
                         "60000", "600", "ann@x.io", "", (char *)NULL),
                    AW_ERR_NOT_LEADER);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_ACK, 1, "aw:{1}:a:10", "1", "a:10", "4", "3-1", NOW, "2",
                         "60000", "600", "ann@x.io", "", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "acked");
    AW_CHECK_INT_EQ(num(&c.reply, 1), 0);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(intcmd("HGET", U, "pc"), 2);

    /* the profile stream: a snapshot of what changed and of the consent not sent yet */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_TAKE, 1, "aw:{1}:p", "1", "p", "4", "", "10000", "1000", NOW,
                         "2", "60000", "600", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "taken");
    rec = c.reply.n > 9 ? &c.reply.elem[9] : NULL;
    bool attr = false, consent = false, ver = false;
    for (size_t i = 0; rec && i + 1 < rec->n; i += 2) {
        const char *f = rec->elem[i].str, *val = rec->elem[i + 1].str;
        if (strcmp(f, "a:first_name") == 0)
            attr = strcmp(val, "\"Tie\"") == 0;
        else if (strcmp(f, "c:email") == 0)
            consent = strcmp(val, "1000:1") == 0;
        else if (strcmp(f, "ver") == 0)
            ver = strcmp(val, "1000:e2") == 0;
        else
            AW_CHECK_MSG(false, "unexpected record field %s", f);
    }
    AW_CHECK(attr && consent && ver);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(intcmd("HEXISTS", "aw:{1}:p:p", "ann@x.io"), 0); /* taken */
    /* Klaviyo accepted the email consent: recorded as sent */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_ACK, 1, "aw:{1}:p", "1", "p", "4", "4-1", NOW, "2", "60000",
                         "600", "ann@x.io", "email", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "acked");
    aw_redis_cmd_clear(&c);
    v = hget(U, "s:email");
    AW_CHECK_STR_EQ(v, "1000:1");
    free(v);
    /* the same consent again is not newer than what was sent: no profile entry */
    AW_CHECK_INT_EQ(apply(&c, "10", "2000", "e9", "u", "1000:1", "", ""), AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, A_STATUS), "stale");
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(intcmd("HLEN", "aw:{1}:p:p", NULL), 0);
}

static void test_audience_remove(void)
{
    struct aw_redis_cmd c;
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_AUDIENCE, 1, "aw:{1}:a:11", "1", "11", "remove", "950", "r",
                         NOW, "2", "60000", "", "", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "applied");
    aw_redis_cmd_clear(&c);
    /* changes at or before the removal are refused */
    const struct blk k = {"d", "11", "ann@x.io", "950", "z", "",    "",   false,
                          "",  "",   0,          {0},   {0}, false, false};
    AW_CHECK_INT_EQ(apply_blocks(&c, ACCT, "1", &k, 1), AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, A_STATUS), "disabled");
    aw_redis_cmd_clear(&c);
    /* the entry pending from before is dropped by take, and the user's reference with it */
    long long before = intcmd("HGET", U, "pc");
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_TAKE, 1, "aw:{1}:a:11", "1", "a:11", "5", "", "10000",
                         "1000", NOW, "2", "60000", "600", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "empty");
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(before, 1); /* only audience 11's entry named the user */
    AW_CHECK_INT_EQ(intcmd("HEXISTS", U, "pc"), 0);
    /* nothing references the user any more: its state expires after the retention */
    long long ttl = intcmd("TTL", U, NULL);
    AW_CHECK_MSG(ttl > 0 && ttl <= 600, "ttl %lld", ttl);
    /* an older subscription message is stale */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_AUDIENCE, 1, "aw:{1}:a:11", "1", "11", "upsert", "940", "r",
                         NOW, "2", "60000", "N", "", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "stale");
    aw_redis_cmd_clear(&c);
}

static void test_global(void)
{
    struct aw_redis_cmd c;
    const char *k[3] = {aw_store_name(AW_K_GLOBAL_DUE), aw_store_name(AW_K_GLOBAL_DUE_SEQ),
                        aw_store_name(AW_K_GLOBAL_ACCOUNTS)};
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_DUE, 3, k[0], k[1], k[2], "1", "500", "7", (char *)NULL),
                    AW_OK);
    AW_CHECK(c.reply.type == AW_REPLY_INT && c.reply.integer == 1);
    aw_redis_cmd_clear(&c);
    /* an older seq never overwrites a newer state's score */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_DUE, 3, k[0], k[1], k[2], "1", "-1", "6", (char *)NULL),
                    AW_OK);
    AW_CHECK(c.reply.type == AW_REPLY_INT && c.reply.integer == 0);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(intcmd("ZSCORE", k[0], "1"), 500);
    AW_CHECK_INT_EQ(intcmd("SISMEMBER", k[2], "1"), 1);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_DUE, 3, k[0], k[1], k[2], "1", "-1", "8", (char *)NULL),
                    AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(intcmd("ZSCORE", k[0], "1"), -999); /* removed */

    /* lease: acquire, a second candidate refused, release by the holder only */
    const char *l[2] = {aw_store_name(AW_K_LEASE), aw_store_name(AW_K_EPOCH)};
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_LEASE, 2, l[0], l[1], "acquire", "a", "60000", (char *)NULL),
                    AW_OK);
    AW_CHECK_INT_EQ(num(&c.reply, 0), 1);
    long long epoch = num(&c.reply, 1);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_LEASE, 2, l[0], l[1], "acquire", "b", "60000", (char *)NULL),
                    AW_OK);
    AW_CHECK_INT_EQ(num(&c.reply, 0), 0);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_LEASE, 2, l[0], l[1], "release", "a", "1", (char *)NULL),
                    AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_LEASE, 2, l[0], l[1], "acquire", "b", "60000", (char *)NULL),
                    AW_OK);
    AW_CHECK_INT_EQ(num(&c.reply, 1), epoch + 1);
    aw_redis_cmd_clear(&c);

    /* block: the later of two Retry-After blocks stays */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_BLOCK, 1, "aw:{1}:acct", "5000", (char *)NULL), AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_BLOCK, 1, "aw:{1}:acct", "4000", (char *)NULL), AW_OK);
    AW_CHECK(c.reply.type == AW_REPLY_INT && c.reply.integer == 5000);
    aw_redis_cmd_clear(&c);

    /* account_key: the same key again changes nothing (a pause stays); a new key ends it */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_ACCOUNT_KEY, 1, "aw:{1}:acct", "pk_a", "10", (char *)NULL),
                    AW_OK);
    AW_CHECK(c.reply.type == AW_REPLY_INT && c.reply.integer == 1);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, -1, 0, "HSET", "aw:{1}:acct", "paused_until_ms", "99", (char *)NULL),
                    AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_ACCOUNT_KEY, 1, "aw:{1}:acct", "pk_a", "10", (char *)NULL),
                    AW_OK);
    AW_CHECK(c.reply.type == AW_REPLY_INT && c.reply.integer == 0);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(intcmd("HEXISTS", "aw:{1}:acct", "paused_until_ms"), 1);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_ACCOUNT_KEY, 1, "aw:{1}:acct", "pk_b", "11", (char *)NULL),
                    AW_OK);
    AW_CHECK(c.reply.type == AW_REPLY_INT && c.reply.integer == 1);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(intcmd("HEXISTS", "aw:{1}:acct", "paused_until_ms"), 0);

    /* batch_set writes only on the batch in flight */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_BATCH_SET, 1, "aw:{1}:a:10", "9", "no-such", "job_id", "j1",
                         (char *)NULL),
                    AW_OK);
    AW_CHECK(c.reply.type == AW_REPLY_INT && c.reply.integer == 0);
    aw_redis_cmd_clear(&c);

    /* profile_id: cached only while the user has state */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_PROFILE_ID, 1, U, "01PROFILE", (char *)NULL), AW_OK);
    AW_CHECK(c.reply.type == AW_REPLY_INT && c.reply.integer == 1);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_PROFILE_ID, 1, "aw:{1}:u:none@x.io", "01X", (char *)NULL),
                    AW_OK);
    AW_CHECK(c.reply.type == AW_REPLY_INT && c.reply.integer == 0);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(intcmd("EXISTS", "aw:{1}:u:none@x.io", NULL), 0);
}

/* A full Redis (maxmemory, noeviction) refuses ingest's scripts (the consumer pauses) but runs
 * the leader's: draining frees memory and must never need it first. */
static void test_full_redis(void)
{
    struct aw_redis_cmd c;
    const char *acct = "aw:{9}:acct";
    const struct blk kf[] = {
        {"a",
         "90",
         "full@x.io",
         "1000",
         "e1",
         "Aud",
         "",
         false,
         "",
         "",
         1,
         {"first_name"},
         {"\"F\""},
         false,
         false},
        {"a", "90", "other@x.io", "1000", "e2", "", "", false, "", "", 0, {0}, {0}, false, false}};
    AW_CHECK_INT_EQ(apply_blocks(&c, acct, "9", &kf[0], 1), AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, -1, 0, "CONFIG", "SET", "maxmemory", "1", (char *)NULL), AW_OK);
    aw_redis_cmd_clear(&c);
    /* ingest: refused, nothing written */
    AW_CHECK_INT_EQ(apply_blocks(&c, acct, "9", &kf[1], 1), AW_ERR_FULL);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_AUDIENCE, 1, "aw:{9}:a:91", "9", "91", "upsert", "1", "s",
                         NOW, "2", "60000", "N", "", (char *)NULL),
                    AW_ERR_FULL);
    AW_CHECK_INT_EQ(intcmd("EXISTS", "aw:{9}:u:other@x.io", NULL), 0);
    /* the leader: lease, take, job id, ack, 429 block, profile id, global due */
    const char *l[2] = {aw_store_name(AW_K_LEASE), aw_store_name(AW_K_EPOCH)};
    AW_CHECK_INT_EQ(
        call(&c, AW_SCRIPT_LEASE, 2, l[0], l[1], "acquire", "full", "60000", (char *)NULL), AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_TAKE, 1, "aw:{9}:a:90", "9", "a:90", "7", "", "10000",
                         "1000", NOW, "2", "60000", "600", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "taken");
    char bid[32];
    snprintf(bid, sizeof bid, "%s", str(&c.reply, 1));
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(
        call(&c, AW_SCRIPT_BATCH_SET, 1, "aw:{9}:a:90", "7", bid, "job_id", "j9", (char *)NULL),
        AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_ACK, 1, "aw:{9}:a:90", "9", "a:90", "7", bid, NOW, "2",
                         "60000", "600", "full@x.io", "", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "acked");
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_TAKE, 1, "aw:{9}:p", "9", "p", "7", "", "10000", "1000", NOW,
                         "2", "60000", "600", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "taken");
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_BLOCK, 1, acct, "5000", (char *)NULL), AW_OK);
    aw_redis_cmd_clear(&c);
    /* a list created for the first flush of an audience: counted, then recorded */
    AW_CHECK_INT_EQ(
        call(&c, AW_SCRIPT_LIST_COUNT, 1, "aw:{9}:lc:19700", "1", "172800", (char *)NULL), AW_OK);
    AW_CHECK(c.reply.type == AW_REPLY_INT && c.reply.integer == 1);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(
        call(&c, AW_SCRIPT_LIST_COUNT, 1, "aw:{9}:lc:19700", "-1", "172800", (char *)NULL), AW_OK);
    AW_CHECK(c.reply.type == AW_REPLY_INT && c.reply.integer == 0);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(intcmd("TTL", "aw:{9}:lc:19700", NULL), 172800);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_LIST_ID, 1, "aw:{9}:a:90", "L9", (char *)NULL), AW_OK);
    aw_redis_cmd_clear(&c);
    char *v = hget("aw:{9}:a:90", "klaviyo_list_id");
    AW_CHECK_STR_EQ(v, "L9");
    free(v);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_LIST_ID, 1, "aw:{9}:a:90", "", (char *)NULL), AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(intcmd("HEXISTS", "aw:{9}:a:90", "klaviyo_list_id"), 0);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_LIST_COUNT, 1, "aw:{9}:lc:19700", "x", "1", (char *)NULL),
                    AW_ERR_INVALID);
    /* Klaviyo refused the key (401): the pause is recorded and cleared on a full Redis too */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_ACCOUNT_PAUSE, 1, acct, "123456", "401", (char *)NULL),
                    AW_OK);
    aw_redis_cmd_clear(&c);
    v = hget(acct, "paused_status");
    AW_CHECK_STR_EQ(v, "401");
    free(v);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_ACCOUNT_PAUSE, 1, acct, "", "", (char *)NULL), AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(intcmd("HEXISTS", acct, "paused_until_ms"), 0);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_PROFILE_ID, 1, "aw:{9}:u:full@x.io", "01FULL", (char *)NULL),
                    AW_OK);
    aw_redis_cmd_clear(&c);
    const char *k[3] = {aw_store_name(AW_K_GLOBAL_DUE), aw_store_name(AW_K_GLOBAL_DUE_SEQ),
                        aw_store_name(AW_K_GLOBAL_ACCOUNTS)};
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_DUE, 3, k[0], k[1], k[2], "9", "0", "99", (char *)NULL),
                    AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, -1, 0, "CONFIG", "SET", "maxmemory", "0", (char *)NULL), AW_OK);
    aw_redis_cmd_clear(&c);
}

/* due_now.lua (`aw-worker flush`) and peek.lua (`aw-worker preview`) on audience 30. */
static void test_due_now_and_peek(void)
{
    struct aw_redis_cmd c;
    /* a stream the store does not know: refused, nothing written */
    AW_CHECK_INT_EQ(
        call(&c, AW_SCRIPT_DUE_NOW, 1, "aw:{1}:a:30", "1", "a:30", NOW, "2", "60000", (char *)NULL),
        AW_ERR_INVALID);
    AW_CHECK_INT_EQ(intcmd("EXISTS", "aw:{1}:a:30", NULL), 0);
    /* one pending add: below AW_FLUSH_MAX_QUEUE (2), so due only after the max age */
    AW_CHECK_INT_EQ(apply(&c, "30", "5000", "f1", "a", "", "first_name", "\"Ann\""), AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, A_STATUS), "applied");
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(intcmd("ZSCORE", "aw:{1}:due", "a:30"), 1700000000000LL + 60000);
    /* peek: the entry as take would make it, and nothing moves */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_PEEK, 1, "aw:{1}:a:30", "1", "a:30", "10", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "pending");
    AW_CHECK_STR_EQ(str(&c.reply, 1), "active");
    AW_CHECK_STR_EQ(str(&c.reply, 3), "ann@x.io");
    const struct aw_reply *rec = c.reply.n > 4 ? &c.reply.elem[4] : NULL;
    AW_CHECK(rec && rec->type == AW_REPLY_ARRAY && rec->n == 4);
    if (rec && rec->n == 4) {
        AW_CHECK_STR_EQ(rec->elem[1].str, "add");
        AW_CHECK_STR_EQ(rec->elem[3].str, "5000:f1");
    }
    AW_CHECK_INT_EQ((long long)c.reply.n, 5);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(intcmd("HLEN", "aw:{1}:a:30:p", NULL), 1);
    AW_CHECK_INT_EQ(intcmd("LLEN", "aw:{1}:a:30:q", NULL), 1);
    AW_CHECK_INT_EQ(intcmd("EXISTS", "aw:{1}:a:30:f", NULL), 0);
    AW_CHECK_INT_EQ(intcmd("HEXISTS", "aw:{1}:a:30", "drain"), 0);
    /* the profile stream's entry is the snapshot take would send */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_PEEK, 1, "aw:{1}:p", "1", "p", "1000", (char *)NULL), AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "pending");
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_PEEK, 1, "aw:{1}:a:30", "1", "a:30", "1001", (char *)NULL),
                    AW_ERR_INVALID);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_PEEK, 1, "aw:{1}:a:30", "1", "a:31", "10", (char *)NULL),
                    AW_ERR_INVALID);
    /* flush now: due now (drained), the account's earliest due follows */
    AW_CHECK_INT_EQ(
        call(&c, AW_SCRIPT_DUE_NOW, 1, "aw:{1}:a:30", "1", "a:30", NOW, "2", "60000", (char *)NULL),
        AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "due");
    AW_CHECK_INT_EQ(num(&c.reply, 1), 0); /* account earliest due: now */
    AW_CHECK_INT_EQ(num(&c.reply, 4), 1); /* pending */
    AW_CHECK_INT_EQ(num(&c.reply, 5), 0); /* in flight */
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(intcmd("ZSCORE", "aw:{1}:due", "a:30"), 0);
    char *v = hget("aw:{1}:a:30", "drain");
    AW_CHECK_STR_EQ(v, "1");
    free(v);
    /* taken whole, the drain ends; asking again finds nothing to flush but the batch in flight */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_TAKE, 1, "aw:{1}:a:30", "1", "a:30", "9", "", "10000",
                         "1000", NOW, "2", "60000", "600", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "taken");
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_PEEK, 1, "aw:{1}:a:30", "1", "a:30", "10", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "resumed");
    AW_CHECK_STR_EQ(str(&c.reply, 3), "ann@x.io");
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_ACK, 1, "aw:{1}:a:30", "1", "a:30", "9", "9-1", NOW, "2",
                         "60000", "600", "ann@x.io", "", (char *)NULL),
                    AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(
        call(&c, AW_SCRIPT_DUE_NOW, 1, "aw:{1}:a:30", "1", "a:30", NOW, "2", "60000", (char *)NULL),
        AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "empty");
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(intcmd("ZSCORE", "aw:{1}:due", "a:30"), -999);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_PEEK, 1, "aw:{1}:a:30", "1", "a:30", "10", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "empty");
    aw_redis_cmd_clear(&c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    char url[256], err[256];
    bool up = start_server(url, sizeof url);
    AW_CHECK_MSG(up, "cannot start redis-server (is it installed?): %s", strerror(errno));
    if (!up) {
        stop_server();
        return aw_test_done();
    }
    g_r = aw_redis_new(url, 2000, 5000, err, sizeof err);
    AW_CHECK_MSG(g_r != NULL, "%s", err);
    if (g_r) {
        AW_CHECK_INT_EQ(aw_redis_ping(g_r), AW_OK);
        test_apply();
        test_apply_attrs();
        test_apply_legacy_attrs();
        test_apply_many();
        test_apply_many_equals_single();
        test_take_read_ack();
        test_audience_remove();
        test_global();
        test_due_now_and_peek();
        test_full_redis();
        aw_redis_free(g_r);
    }
    stop_server();
    return aw_test_done();
}
