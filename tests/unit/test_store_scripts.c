/* test_store_scripts.c -- every Lua script of worker/store/scripts, run on a real redis-server
 * (Debian's, started here on a unix socket in a scratch directory: no network) through the
 * store's client. Each script's KEYS / ARGV / reply as its header comment states, and the names
 * the scripts write are those of the one table worker/store/fields.def. A missing redis-server
 * fails the test. */
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

#define U "aw:{1}:u:ann@x.io"
#define NOW "1700000000000"

/* apply.lua with the fixed arguments of these tests: account 1, audience aud. */
static enum aw_err apply(struct aw_redis_cmd *c, const char *aud, const char *ts, const char *id,
                         const char *act, const char *ce, const char *path, const char *value)
{
    return call(c, AW_SCRIPT_APPLY, 1, U, "1", aud, "ann@x.io", ts, id, NOW, "2", "60000", "600",
                "Aud", "", act, ce, "", path, value, (char *)NULL);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_apply(void)
{
    struct aw_redis_cmd c;
    AW_CHECK_INT_EQ(apply(&c, "10", "1000", "e1", "a", "1000:1", "first_name", "\"Jo\""), AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "applied");
    AW_CHECK_INT_EQ(num(&c.reply, 1), 1); /* pending of audience 10 */
    AW_CHECK_INT_EQ(num(&c.reply, 2), 61000 + 1699999999999LL - 1699999999999LL + 1700000000000LL -
                                          61000 + 60000); /* now + max age */
    AW_CHECK_INT_EQ(num(&c.reply, 4), 1);                 /* the account's earliest due moved */
    aw_redis_cmd_clear(&c);
    /* the same change again: stale, nothing written */
    AW_CHECK_INT_EQ(apply(&c, "10", "1000", "e1", "a", "1000:1", "first_name", "\"Jo\""), AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "stale");
    aw_redis_cmd_clear(&c);
    /* an older change of another audience: membership applies there, the older attribute and
     * consent do not regress the profile */
    AW_CHECK_INT_EQ(apply(&c, "11", "900", "e0", "a", "900:0", "first_name", "\"Old\""), AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "applied");
    aw_redis_cmd_clear(&c);
    char *v = hget(U, "a:first_name");
    AW_CHECK_STR_EQ(v, "\"Jo\"");
    free(v);
    v = hget(U, "c:email");
    AW_CHECK_STR_EQ(v, "1000:1");
    free(v);
    /* tie on the timestamp: the greater message id wins (bytes, not locale) */
    AW_CHECK_INT_EQ(apply(&c, "10", "1000", "e2", "u", "", "first_name", "\"Tie\""), AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "applied");
    aw_redis_cmd_clear(&c);
    v = hget(U, "a:first_name");
    AW_CHECK_STR_EQ(v, "\"Tie\"");
    free(v);
    /* every field the script wrote is a USER_* name of the table */
    struct aw_redis_cmd k;
    AW_CHECK_INT_EQ(call(&k, -1, 0, "HKEYS", U, (char *)NULL), AW_OK);
    static const enum aw_store_name known[] = {
        AW_F_USER_MEMBERSHIP, AW_F_USER_ATTR,         AW_F_USER_ATTR_VERSION, AW_F_USER_DIRTY,
        AW_F_USER_CONSENT,    AW_F_USER_CONSENT_SENT, AW_F_USER_REFS,         AW_F_USER_PROFILE_ID};
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
    /* refused arguments never write */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_APPLY, 1, "aw:{1}:u:other@x.io", "1", "10", "ann@x.io", "1",
                         "e", NOW, "2", "60000", "600", "", "", "a", "", "", (char *)NULL),
                    AW_ERR_INVALID); /* KEYS[1] is not this user's key */
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_APPLY, 1, U, "1", "10", "ann@x.io", "1", "e", NOW, "2",
                         "60000", "600", "", "", "a", "yes", "", (char *)NULL),
                    AW_ERR_INVALID); /* malformed consent */
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
    AW_CHECK_INT_EQ(intcmd("HEXISTS", U, "d:first_name"), 0); /* taken: no longer dirty */
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
    AW_CHECK_INT_EQ(apply(&c, "10", "2000", "e9", "u", "1000:1", "", ""), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_APPLY, 1, U, "1", "10", "ann@x.io", "2000", "e9", NOW, "2",
                         "60000", "600", "", "", "u", "1000:1", "", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "stale");
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
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_APPLY, 1, U, "1", "11", "ann@x.io", "950", "z", NOW, "2",
                         "60000", "600", "", "", "d", "", "", (char *)NULL),
                    AW_OK);
    AW_CHECK_STR_EQ(str(&c.reply, 0), "disabled");
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
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_ACCOUNT_KEY, 1, "aw:{1}:acct", "pk_a", (char *)NULL), AW_OK);
    AW_CHECK(c.reply.type == AW_REPLY_INT && c.reply.integer == 1);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, -1, 0, "HSET", "aw:{1}:acct", "paused_until_ms", "99", (char *)NULL),
                    AW_OK);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_ACCOUNT_KEY, 1, "aw:{1}:acct", "pk_a", (char *)NULL), AW_OK);
    AW_CHECK(c.reply.type == AW_REPLY_INT && c.reply.integer == 0);
    aw_redis_cmd_clear(&c);
    AW_CHECK_INT_EQ(intcmd("HEXISTS", "aw:{1}:acct", "paused_until_ms"), 1);
    AW_CHECK_INT_EQ(call(&c, AW_SCRIPT_ACCOUNT_KEY, 1, "aw:{1}:acct", "pk_b", (char *)NULL), AW_OK);
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
        test_take_read_ack();
        test_audience_remove();
        test_global();
        aw_redis_free(g_r);
    }
    stop_server();
    return aw_test_done();
}
