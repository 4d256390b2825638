/* aw_store_test.c -- integration test of worker/store.c against a real redis-server.
 * Run by tests/integration/test_store.sh, which sets:
 *   AW_TEST_REDIS_URL   redis://127.0.0.1:<port>/0 of a scratch server (flushed here)
 *   AW_TEST_CTL_DIR     directory for fault requests: this program creates <name> and waits for
 *                       <name>.done, the script performs it (kill9 = SIGKILL redis,
 *                       restart = start it again, stop = SIGSTOP, cont = SIGCONT).
 * Exits non-zero when a check fails. */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/mem.h"
#include "tests/change_builder.h"
#include "tests/harness.h"
#include "worker/store/change.h"
#include "worker/store/store.h"

#define T0 UINT64_C(1700000000000)    /* injected "now" */
#define MAX_AGE_MS UINT64_C(57600000) /* 16 h */
#define MAX_QUEUE 5

static const char *g_url;

/* ---- helpers ----------------------------------------------------------------------------- */

/* Runs redis-cli against the test server; returns its first output line in out (may be NULL). */
static int rcli(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int rcli(char *out, size_t outlen, const char *fmt, ...)
{
    char args[1024], cmd[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "redis-cli -u '%s' %s 2>&1", g_url, args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[1024] = "";
    if (!fgets(line, sizeof line, p))
        line[0] = '\0';
    char sink[256];
    while (fgets(sink, sizeof sink, p))
        ;
    int rc = pclose(p);
    line[strcspn(line, "\r\n")] = '\0';
    if (out)
        snprintf(out, outlen, "%s", line);
    return rc;
}

static void mk(struct aw_change *c, const char *acct, const char *aud, const char *email,
               uint64_t ts, const char *id, enum aw_change_action act)
{
    memset(c, 0, sizeof *c);
    c->account_id = aw_strdup(acct);
    c->audience_id = aw_strdup(aud);
    c->audience_name = aw_strdup("Audience Name");
    c->event_id = aw_strdup(id);
    c->version_ms = ts;
    c->action = act;
    c->email = aw_strdup(email);
}

/* Adds an attribute (value NULL = unset); keeps paths sorted by insertion order of the test. */

/* Applies and clears c; returns the status (or -1 on error, reported as a failed check). */
static int apply(struct aw_store *s, struct aw_change *c, uint64_t now, struct aw_store_result *r)
{
    struct aw_store_result tmp;
    if (!r)
        r = &tmp;
    enum aw_err e = aw_store_apply(s, c, now, r);
    aw_change_clear(c);
    AW_CHECK_MSG(e == AW_OK, "apply: %s (%s)", aw_err_str(e), aw_store_errstr(s));
    return e == AW_OK ? (int)r->status : -1;
}

/* Decoded pending change of a user; false when there is none. */
static bool pending(struct aw_store *s, const char *acct, const char *aud, const char *email,
                    struct aw_change *out)
{
    char *text = NULL;
    memset(out, 0, sizeof *out);
    enum aw_err e = aw_store_pending_get(s, acct, aud, email, &text);
    AW_CHECK_INT_EQ(e, AW_OK);
    if (!text)
        return false;
    e = aw_change_decode(text, strlen(text), out);
    AW_CHECK_MSG(e == AW_OK, "decode pending: %s", text);
    free(text);
    return e == AW_OK;
}

static const char *attr_get(const struct aw_change *c, const char *path, bool *found)
{
    *found = false;
    for (size_t i = 0; i < c->n_attrs; i++) {
        if (strcmp(c->attrs[i].path, path) == 0) {
            *found = true;
            return c->attrs[i].value_json;
        }
    }
    return NULL;
}

static const struct aw_change_consent *consent_get(const struct aw_change *c,
                                                   enum aw_change_channel ch)
{
    for (size_t i = 0; i < c->n_consents; i++)
        if (c->consents[i].channel == ch)
            return &c->consents[i];
    return NULL;
}

static int64_t pcount(struct aw_store *s, const char *acct, const char *aud)
{
    int64_t n = -1;
    AW_CHECK_INT_EQ(aw_store_pending_count(s, acct, aud, &n), AW_OK);
    return n;
}

static int64_t due(struct aw_store *s, const char *acct, const char *aud)
{
    int64_t d = -2;
    AW_CHECK_INT_EQ(aw_store_due_score(s, acct, aud, &d), AW_OK);
    return d;
}

static char *meta(struct aw_store *s, const char *acct, const char *aud, const char *field)
{
    char *v = NULL;
    AW_CHECK_INT_EQ(aw_store_meta_get(s, acct, aud, field, &v), AW_OK);
    return v;
}

static void check_meta(struct aw_store *s, const char *acct, const char *aud, const char *field,
                       const char *want)
{
    char *v = meta(s, acct, aud, field);
    AW_CHECK_STR_EQ(v, want);
    free(v);
}

/* Asks the test script to do something to redis and waits until it is done. */
static bool ctl(const char *what)
{
    const char *dir = getenv("AW_TEST_CTL_DIR");
    AW_CHECK_MSG(dir != NULL, "AW_TEST_CTL_DIR not set");
    if (!dir)
        return false;
    char req[512], done[600];
    snprintf(req, sizeof req, "%s/%s", dir, what);
    snprintf(done, sizeof done, "%s.done", req);
    FILE *f = fopen(req, "w");
    AW_CHECK(f != NULL);
    if (!f)
        return false;
    fclose(f);
    struct stat st;
    for (int i = 0; i < 300; i++) {
        if (stat(done, &st) == 0) {
            unlink(done);
            return true;
        }
        aw_clock_sleep_ms(100, NULL);
    }
    AW_CHECK_MSG(false, "script did not perform %s within 30 s", what);
    return false;
}

static struct aw_store *new_store(uint64_t cmd_timeout_ms)
{
    char err[256] = "";
    struct aw_store_config cfg = {.url = g_url,
                                  .connect_timeout_ms = 1000,
                                  .command_timeout_ms = cmd_timeout_ms,
                                  .flush_max_queue = MAX_QUEUE,
                                  .flush_max_age_ms = MAX_AGE_MS};
    struct aw_store *s = aw_store_new(&cfg, err, sizeof err);
    AW_CHECK_MSG(s != NULL, "aw_store_new: %s", err);
    return s;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_url(void)
{
    struct aw_store_url u;
    char err[128];
    AW_CHECK_INT_EQ(aw_store_url_parse("redis://127.0.0.1:6380/2", &u, err, sizeof err), AW_OK);
    AW_CHECK_STR_EQ(u.host, "127.0.0.1");
    AW_CHECK_INT_EQ(u.port, 6380);
    AW_CHECK_INT_EQ(u.db, 2);
    AW_CHECK_STR_EQ(u.password, "");
    AW_CHECK_INT_EQ(aw_store_url_parse("redis://:p%40ss@redis.svc", &u, err, sizeof err), AW_OK);
    AW_CHECK_STR_EQ(u.host, "redis.svc");
    AW_CHECK_INT_EQ(u.port, 6379);
    AW_CHECK_STR_EQ(u.password, "p@ss");
    AW_CHECK_STR_EQ(u.user, "");
    AW_CHECK_INT_EQ(aw_store_url_parse("redis://worker:pw@[::1]:7000/", &u, err, sizeof err),
                    AW_OK);
    AW_CHECK_STR_EQ(u.host, "::1");
    AW_CHECK_STR_EQ(u.user, "worker");
    AW_CHECK_STR_EQ(u.password, "pw");
    AW_CHECK_INT_EQ(u.port, 7000);
    AW_CHECK_INT_EQ(u.db, 0);
    /* unix sockets, as settings.c accepts them */
    AW_CHECK_INT_EQ(aw_store_url_parse("unix:///run/redis/redis.sock", &u, err, sizeof err), AW_OK);
    AW_CHECK(u.is_unix);
    AW_CHECK_STR_EQ(u.host, "/run/redis/redis.sock");
    AW_CHECK_INT_EQ(u.db, 0);
    AW_CHECK_INT_EQ(aw_store_url_parse("unix://w:s%2Fcret@/tmp/r.sock?db=3", &u, err, sizeof err),
                    AW_OK);
    AW_CHECK(u.is_unix);
    AW_CHECK_STR_EQ(u.host, "/tmp/r.sock");
    AW_CHECK_STR_EQ(u.user, "w");
    AW_CHECK_STR_EQ(u.password, "s/cret");
    AW_CHECK_INT_EQ(u.db, 3);
    AW_CHECK_INT_EQ(aw_store_url_parse("redis://h", &u, err, sizeof err), AW_OK);
    AW_CHECK(!u.is_unix);
    const char *bad_unix[] = {"unix://", "unix://relative.sock", "unix:///s?x=1", "unix:///s#f",
                              "unix://:%zz@/s"};
    for (size_t i = 0; i < sizeof bad_unix / sizeof bad_unix[0]; i++)
        AW_CHECK_MSG(aw_store_url_parse(bad_unix[i], &u, err, sizeof err) == AW_ERR_CONFIG, "%s",
                     bad_unix[i]);
    const char *bad[] = {"http://x",        "rediss://x:1",    "redis://",
                         "redis://h:0",     "redis://h:70000", "redis://h:1/x",
                         "redis://h/1?a=b", "redis://:%zz@h",  "redis://[::1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        AW_CHECK_MSG(aw_store_url_parse(bad[i], &u, err, sizeof err) == AW_ERR_CONFIG, "%s",
                     bad[i]);
        AW_CHECK(strstr(err, "zz") == NULL); /* reasons never echo the secret */
    }
}

static void test_apply_and_versions(struct aw_store *s)
{
    struct aw_change c, p;
    struct aw_store_result r;
    bool f;

    /* add */
    mk(&c, "1", "10", "a@x.io", 1000, "ev-b", AW_CHANGE_ADD);
    aw_test_attr(&c, "first_name", "\"Ann\"");
    c.phone_e164 = aw_strdup("+14155550100");
    AW_CHECK_INT_EQ(apply(s, &c, T0, &r), AW_STORE_APPLIED);
    AW_CHECK_INT_EQ(r.pending, 1);
    AW_CHECK_INT_EQ(r.due_unix_ms, (int64_t)(T0 + MAX_AGE_MS));
    AW_CHECK(pending(s, "1", "10", "a@x.io", &p));
    AW_CHECK_INT_EQ(p.action, AW_CHANGE_ADD);
    AW_CHECK_STR_EQ(attr_get(&p, "first_name", &f), "\"Ann\"");
    AW_CHECK_STR_EQ(p.phone_e164, "+14155550100");
    AW_CHECK_STR_EQ(p.event_id, "ev-b");
    aw_change_clear(&p);
    check_meta(s, "1", "10", "state", "active");
    check_meta(s, "1", "10", "name", "Audience Name");
    check_meta(s, "1", "10", "account_id", "1");

    char *before = NULL, *after = NULL;
    AW_CHECK_INT_EQ(aw_store_pending_get(s, "1", "10", "a@x.io", &before), AW_OK);

    /* older redelivery ignored */
    mk(&c, "1", "10", "a@x.io", 999, "ev-z", AW_CHANGE_DELETE);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 1, &r), AW_STORE_STALE);
    AW_CHECK_INT_EQ(r.pending, 1);
    /* equal version and id: idempotent */
    mk(&c, "1", "10", "a@x.io", 1000, "EV-B", AW_CHANGE_DELETE);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 2, NULL), AW_STORE_STALE);
    /* equal version, smaller lower-case id ("ev-a" < "ev-b") */
    mk(&c, "1", "10", "a@x.io", 1000, "EV-A", AW_CHANGE_DELETE);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 3, NULL), AW_STORE_STALE);
    AW_CHECK_INT_EQ(aw_store_pending_get(s, "1", "10", "a@x.io", &after), AW_OK);
    AW_CHECK_STR_EQ(before, after);
    free(after);
    after = NULL;

    /* tie broken by the greater lower-case id: "EV-C" -> "ev-c" > "ev-b" */
    mk(&c, "1", "10", "a@x.io", 1000, "EV-C", AW_CHANGE_ATTRIBUTE_UPDATE);
    aw_test_attr(&c, "last_name", "\"Lee\"");
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 4, NULL), AW_STORE_APPLIED);
    AW_CHECK(pending(s, "1", "10", "a@x.io", &p));
    AW_CHECK_INT_EQ(p.action, AW_CHANGE_ADD); /* attribute_update keeps the pending add */
    AW_CHECK_STR_EQ(attr_get(&p, "first_name", &f), "\"Ann\"");
    AW_CHECK_STR_EQ(attr_get(&p, "last_name", &f), "\"Lee\"");
    AW_CHECK_STR_EQ(p.event_id, "EV-C");
    AW_CHECK_INT_EQ(p.version_ms, 1000);
    aw_change_clear(&p);
    /* a larger version always beats any id */
    mk(&c, "1", "10", "a@x.io", 1001, "a", AW_CHANGE_ATTRIBUTE_UPDATE);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 5, NULL), AW_STORE_APPLIED);
    /* versions compare as numbers, not text ("999" vs "1001" would be reversed as text) */
    mk(&c, "1", "10", "a@x.io", 999, "zzz", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 6, NULL), AW_STORE_STALE);
    free(before);
}

static void test_merge(struct aw_store *s)
{
    struct aw_change c, p;
    bool f;

    /* add -> delete collapses to a removal; pending attrs dropped, consent kept */
    mk(&c, "1", "11", "b@x.io", 2000, "e1", AW_CHANGE_ADD);
    aw_test_attr(&c, "first_name", "\"Bo\"");
    aw_test_attr(&c, "properties.tier", "\"gold\"");
    aw_test_consent(&c, AW_CHANNEL_EMAIL, true, 1999);
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    mk(&c, "1", "11", "b@x.io", 2001, "e2", AW_CHANGE_DELETE);
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    AW_CHECK(pending(s, "1", "11", "b@x.io", &p));
    AW_CHECK_INT_EQ(p.action, AW_CHANGE_DELETE);
    AW_CHECK_INT_EQ(p.n_attrs, 0);
    const struct aw_change_consent *cs = consent_get(&p, AW_CHANNEL_EMAIL);
    AW_CHECK(cs != NULL && cs->subscribe && cs->consented_at_unix_ms == 1999);
    aw_change_clear(&p);
    AW_CHECK_INT_EQ(pcount(s, "1", "11"), 1);

    /* delete -> add becomes add; attrs merged per path, newer wins; consent per channel */
    mk(&c, "1", "11", "b@x.io", 2002, "e3", AW_CHANGE_ADD);
    aw_test_attr(&c, "first_name", "\"Bob\"");
    aw_test_consent(&c, AW_CHANNEL_SMS, false, 0);
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    mk(&c, "1", "11", "b@x.io", 2003, "e4", AW_CHANGE_ATTRIBUTE_UPDATE);
    aw_test_attr(&c, "first_name", "\"Robert\"");
    aw_test_attr(&c, "properties.tier", NULL); /* unset */
    aw_test_attr(&c, "properties.n", "[1,2]");
    aw_test_consent(&c, AW_CHANNEL_EMAIL, false, 0);
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    AW_CHECK(pending(s, "1", "11", "b@x.io", &p));
    AW_CHECK_INT_EQ(p.action, AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(p.n_attrs, 3);
    AW_CHECK_STR_EQ(attr_get(&p, "first_name", &f), "\"Robert\"");
    AW_CHECK(attr_get(&p, "properties.tier", &f) == NULL && f); /* present as unset */
    AW_CHECK_STR_EQ(attr_get(&p, "properties.n", &f), "[1,2]");
    cs = consent_get(&p, AW_CHANNEL_EMAIL);
    AW_CHECK(cs != NULL && !cs->subscribe && !cs->has_consented_at);
    cs = consent_get(&p, AW_CHANNEL_SMS);
    AW_CHECK(cs != NULL && !cs->subscribe);
    AW_CHECK_STR_EQ(p.audience_name, "Audience Name");
    aw_change_clear(&p);

    /* newer delete over pending delete stays delete; attribute_update over a pending delete keeps
     * the delete */
    mk(&c, "1", "11", "b@x.io", 2004, "e5", AW_CHANGE_DELETE);
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    mk(&c, "1", "11", "b@x.io", 2005, "e6", AW_CHANGE_ATTRIBUTE_UPDATE);
    aw_test_attr(&c, "title", "\"CEO\"");
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    AW_CHECK(pending(s, "1", "11", "b@x.io", &p));
    AW_CHECK_INT_EQ(p.action, AW_CHANGE_DELETE);
    aw_change_clear(&p);

    /* attribute_update with nothing pending stays attribute_update */
    mk(&c, "1", "11", "c@x.io", 3000, "e7", AW_CHANGE_ATTRIBUTE_UPDATE);
    aw_test_attr(&c, "title", "\"CTO\"");
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    AW_CHECK(pending(s, "1", "11", "c@x.io", &p));
    AW_CHECK_INT_EQ(p.action, AW_CHANGE_ATTRIBUTE_UPDATE);
    aw_change_clear(&p);

    /* non-ASCII text survives the Lua round trip */
    mk(&c, "1", "11", "c@x.io", 3001, "e8", AW_CHANGE_ATTRIBUTE_UPDATE);
    aw_test_attr(&c, "first_name", "\"Zo\xc3\xab \\\"Q\\\" \\/ \\u0001\"");
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    AW_CHECK(pending(s, "1", "11", "c@x.io", &p));
    AW_CHECK_STR_EQ(attr_get(&p, "first_name", &f), "\"Zo\xc3\xab \\\"Q\\\" \\/ \\u0001\"");
    AW_CHECK_STR_EQ(attr_get(&p, "title", &f), "\"CTO\"");
    aw_change_clear(&p);
}

/* Membership, attributes and consent are versioned separately: an older change still decides
 * the facets no newer change has set (DESIGN.md §1 invariant under any arrival order). */
static void test_facets(struct aw_store *s)
{
    struct aw_change c, p;
    bool f;

    /* attribute_update (t=3000) first, then an OLDER delete (t=2000): the removal applies
     * (nothing newer decided membership), the newer attributes stay. */
    mk(&c, "1", "15", "f@x.io", 3000, "u", AW_CHANGE_ATTRIBUTE_UPDATE);
    aw_test_attr(&c, "last_name", "\"New\"");
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    mk(&c, "1", "15", "f@x.io", 2000, "d", AW_CHANGE_DELETE);
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    AW_CHECK(pending(s, "1", "15", "f@x.io", &p));
    AW_CHECK_INT_EQ(p.action, AW_CHANGE_DELETE);
    AW_CHECK_STR_EQ(attr_get(&p, "last_name", &f), "\"New\"");
    AW_CHECK_INT_EQ(p.version_ms, 3000); /* the entry keeps the newest version and id */
    aw_change_clear(&p);
    /* an even older add: membership stale (the delete is newer), attributes stale (t=3000) */
    mk(&c, "1", "15", "f@x.io", 1000, "a", AW_CHANGE_ADD);
    aw_test_attr(&c, "last_name", "\"Old\"");
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_STALE);

    /* attribute_update (t=3000) flushed away, then an older add (t=2500): it still adds the user;
     * its attributes are older than the update's, so they are not sent. */
    mk(&c, "1", "16", "g@x.io", 3000, "u", AW_CHANGE_ATTRIBUTE_UPDATE);
    aw_test_attr(&c, "first_name", "\"Newer\"");
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    rcli(NULL, 0, "DEL 'aw:{1:16}:pending'"); /* as if flushed */
    mk(&c, "1", "16", "g@x.io", 2500, "a", AW_CHANGE_ADD);
    aw_test_attr(&c, "first_name", "\"Older\"");
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    AW_CHECK(pending(s, "1", "16", "g@x.io", &p));
    AW_CHECK_INT_EQ(p.action, AW_CHANGE_ADD);
    attr_get(&p, "first_name", &f);
    AW_CHECK(!f);
    aw_change_clear(&p);

    /* a delete (t=2000) supersedes older attributes: an attribute_update at t=1500 arriving
     * later is stale; one at t=2100 is sent with the removal. */
    mk(&c, "1", "17", "h@x.io", 2000, "d", AW_CHANGE_DELETE);
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    mk(&c, "1", "17", "h@x.io", 1500, "u1", AW_CHANGE_ATTRIBUTE_UPDATE);
    aw_test_attr(&c, "title", "\"old\"");
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_STALE);
    mk(&c, "1", "17", "h@x.io", 2100, "u2", AW_CHANGE_ATTRIBUTE_UPDATE);
    aw_test_attr(&c, "title", "\"new\"");
    aw_test_consent(&c, AW_CHANNEL_EMAIL, false, 0);
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    AW_CHECK(pending(s, "1", "17", "h@x.io", &p));
    AW_CHECK_INT_EQ(p.action, AW_CHANGE_DELETE);
    AW_CHECK_STR_EQ(attr_get(&p, "title", &f), "\"new\"");
    aw_change_clear(&p);
    /* consent per channel: an older message's email consent is stale, its SMS consent is not */
    mk(&c, "1", "17", "h@x.io", 1800, "c", AW_CHANGE_DELETE);
    aw_test_consent(&c, AW_CHANNEL_EMAIL, true, 1700);
    aw_test_consent(&c, AW_CHANNEL_SMS, true, 1700);
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    AW_CHECK(pending(s, "1", "17", "h@x.io", &p));
    const struct aw_change_consent *ce = consent_get(&p, AW_CHANNEL_EMAIL);
    const struct aw_change_consent *cs = consent_get(&p, AW_CHANNEL_SMS);
    AW_CHECK(ce && !ce->subscribe);
    AW_CHECK(cs && cs->subscribe);
    aw_change_clear(&p);
}

static void test_stale_after_flush(struct aw_store *s)
{
    struct aw_change c;
    mk(&c, "1", "12", "d@x.io", 5000, "e1", AW_CHANGE_DELETE);
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    /* simulated flush: the pending entry leaves (the version record stays) */
    AW_CHECK_INT_EQ(rcli(NULL, 0, "HDEL 'aw:{1:12}:pending' d@x.io"), 0);
    AW_CHECK_INT_EQ(pcount(s, "1", "12"), 0);
    mk(&c, "1", "12", "d@x.io", 4000, "e0", AW_CHANGE_ADD); /* older add redelivered */
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_STALE);
    AW_CHECK_INT_EQ(pcount(s, "1", "12"), 0);
    mk(&c, "1", "12", "d@x.io", 5000, "e1", AW_CHANGE_DELETE); /* the flushed one again */
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_STALE);
    AW_CHECK_INT_EQ(pcount(s, "1", "12"), 0);
}

static void test_audience_state(struct aw_store *s)
{
    struct aw_change c;
    struct aw_store_result r;
    char *v;

    AW_CHECK_INT_EQ(aw_store_audience_upsert(s, "2", "20", "Buyers", "LstA", 100, "s1", T0, &r),
                    AW_OK);
    AW_CHECK_INT_EQ(r.status, AW_STORE_APPLIED);
    check_meta(s, "2", "20", "list_id", "LstA");
    check_meta(s, "2", "20", "name", "Buyers");
    AW_CHECK_INT_EQ(aw_store_audience_upsert(s, "2", "20", "Old", "LstOld", 99, "s0", T0, &r),
                    AW_OK);
    AW_CHECK_INT_EQ(r.status, AW_STORE_STALE);
    check_meta(s, "2", "20", "name", "Buyers");

    for (int i = 0; i < 3; i++) {
        char email[32];
        snprintf(email, sizeof email, "u%d@x.io", i);
        mk(&c, "2", "20", email, 1000 + (uint64_t)i, "m", AW_CHANGE_ADD);
        AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    }
    AW_CHECK_INT_EQ(pcount(s, "2", "20"), 3);
    AW_CHECK(due(s, "2", "20") > 0);

    /* remove: pending dropped, out of the due index, older changes ignored */
    AW_CHECK_INT_EQ(aw_store_audience_remove(s, "2", "20", 2000, "s2", T0, &r), AW_OK);
    AW_CHECK_INT_EQ(r.status, AW_STORE_APPLIED);
    AW_CHECK_INT_EQ(r.pending, 0);
    AW_CHECK_INT_EQ(r.due_unix_ms, -1);
    AW_CHECK_INT_EQ(pcount(s, "2", "20"), 0);
    AW_CHECK_INT_EQ(due(s, "2", "20"), -1);
    check_meta(s, "2", "20", "state", "disabled");
    check_meta(s, "2", "20", "disabled_version", "2000");
    check_meta(s, "2", "20", "list_id", "LstA"); /* the list is kept */
    mk(&c, "2", "20", "u9@x.io", 1500, "m", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(apply(s, &c, T0, &r), AW_STORE_DISABLED);
    AW_CHECK_INT_EQ(r.pending, 0);
    mk(&c, "2", "20", "u9@x.io", 2000, "zz", AW_CHANGE_ADD); /* same ms as the remove */
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_DISABLED);
    AW_CHECK_INT_EQ(aw_store_audience_remove(s, "2", "20", 2000, "s2", T0, &r), AW_OK);
    AW_CHECK_INT_EQ(r.status, AW_STORE_STALE);
    /* a stale upsert does not re-enable */
    AW_CHECK_INT_EQ(aw_store_audience_upsert(s, "2", "20", "Buyers", "LstA", 1999, "s9", T0, &r),
                    AW_OK);
    AW_CHECK_INT_EQ(r.status, AW_STORE_STALE);
    check_meta(s, "2", "20", "state", "disabled");

    /* a newer membership change re-activates */
    mk(&c, "2", "20", "u9@x.io", 2001, "m", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 10, &r), AW_STORE_APPLIED);
    AW_CHECK_INT_EQ(r.pending, 1);
    check_meta(s, "2", "20", "state", "active");
    AW_CHECK_INT_EQ(due(s, "2", "20"), (int64_t)(T0 + 10 + MAX_AGE_MS));
    v = meta(s, "2", "20", "first_pending_ms");
    AW_CHECK(v != NULL && strtoull(v, NULL, 10) == T0 + 10);
    free(v);

    /* a newer upsert without listId clears it (find/create by name again) */
    AW_CHECK_INT_EQ(aw_store_audience_upsert(s, "2", "20", "Buyers 2", NULL, 3000, "s3", T0, &r),
                    AW_OK);
    AW_CHECK_INT_EQ(r.status, AW_STORE_APPLIED);
    v = meta(s, "2", "20", "list_id");
    AW_CHECK(v == NULL);
    free(v);
    check_meta(s, "2", "20", "name", "Buyers 2");

    /* remove then re-add by subscription at the same ms with a greater id */
    AW_CHECK_INT_EQ(aw_store_audience_remove(s, "2", "21", 100, "a", T0, &r), AW_OK);
    AW_CHECK_INT_EQ(aw_store_audience_upsert(s, "2", "21", "X", NULL, 100, "b", T0, &r), AW_OK);
    AW_CHECK_INT_EQ(r.status, AW_STORE_APPLIED);
    check_meta(s, "2", "21", "state", "active");

    /* invalid ids are refused before reaching Redis */
    AW_CHECK_INT_EQ(aw_store_audience_upsert(s, "2:3", "21", "X", NULL, 1, "b", T0, &r),
                    AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_store_audience_remove(s, "2", "2}1", 1, "b", T0, &r), AW_ERR_INVALID);
    mk(&c, "2", "", "q@x.io", 1, "b", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(aw_store_apply(s, &c, T0, &r), AW_ERR_INVALID);
    aw_change_clear(&c);
}

static void test_due(struct aw_store *s)
{
    struct aw_change c;
    struct aw_store_result r;
    /* by age: oldest pending change + max age while below the count threshold */
    for (int i = 0; i < MAX_QUEUE - 1; i++) {
        char email[32];
        snprintf(email, sizeof email, "q%d@x.io", i);
        mk(&c, "3", "30", email, 100, "e", AW_CHANGE_ADD);
        AW_CHECK_INT_EQ(apply(s, &c, T0 + (uint64_t)i * 1000, &r), AW_STORE_APPLIED);
        AW_CHECK_INT_EQ(r.due_unix_ms, (int64_t)(T0 + MAX_AGE_MS));
        AW_CHECK_INT_EQ(due(s, "3", "30"), (int64_t)(T0 + MAX_AGE_MS));
    }
    char **list = NULL;
    size_t n = 0;
    AW_CHECK_INT_EQ(aw_store_due_list(s, T0 + MAX_AGE_MS - 1, 100, &list, &n), AW_OK);
    for (size_t i = 0; i < n; i++) {
        AW_CHECK(strcmp(list[i], "3:30") != 0);
        free(list[i]);
    }
    free(list);
    AW_CHECK_INT_EQ(aw_store_due_list(s, T0 + MAX_AGE_MS, 100, &list, &n), AW_OK);
    bool seen = false;
    for (size_t i = 0; i < n; i++) {
        seen = seen || strcmp(list[i], "3:30") == 0;
        free(list[i]);
    }
    free(list);
    AW_CHECK(seen);

    /* by count: the MAX_QUEUE-th pending user makes it due now (score 0) */
    mk(&c, "3", "30", "q-last@x.io", 100, "e", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 9000, &r), AW_STORE_APPLIED);
    AW_CHECK_INT_EQ(r.pending, MAX_QUEUE);
    AW_CHECK_INT_EQ(r.due_unix_ms, 0);
    AW_CHECK_INT_EQ(due(s, "3", "30"), 0);

    /* after an upload the age counts from last_upload_ms */
    mk(&c, "3", "31", "z@x.io", 100, "e", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(rcli(NULL, 0, "HSET 'aw:{3:31}:meta' last_upload_ms %" PRIu64, T0 - 5000), 0);
    AW_CHECK_INT_EQ(apply(s, &c, T0, &r), AW_STORE_APPLIED);
    AW_CHECK_INT_EQ(r.due_unix_ms, (int64_t)(T0 - 5000 + MAX_AGE_MS));
    AW_CHECK_INT_EQ(due(s, "3", "31"), (int64_t)(T0 - 5000 + MAX_AGE_MS));

    /* a late due-index write from an older state never overwrites a newer one: the seq guard */
    char out[64];
    AW_CHECK_INT_EQ(rcli(out, sizeof out, "HGET '{aw:due}:seq' 3:30"), 0);
    long long seq = strtoll(out, NULL, 10);
    AW_CHECK(seq >= MAX_QUEUE);
    AW_CHECK_INT_EQ(rcli(out, sizeof out, "HGET 'aw:{3:30}:meta' due_seq"), 0);
    AW_CHECK_INT_EQ(strtoll(out, NULL, 10), seq);
    AW_CHECK_INT_EQ(rcli(out, sizeof out, "SISMEMBER aw:audiences 3:30"), 0);
    AW_CHECK_STR_EQ(out, "1");
}

static void test_pipeline(struct aw_store *s)
{
    struct aw_store_batch *b = aw_store_batch_new();
    struct aw_change c;
    enum { N = 1000 };
    for (int i = 0; i < N; i++) {
        char email[32], aud[8];
        int user = i % 500; /* the second half redelivers the first half */
        snprintf(email, sizeof email, "p%d@x.io", user);
        snprintf(aud, sizeof aud, "4%d", user % 3);
        mk(&c, "4", aud, email, 7000 + (uint64_t)user, "ev", AW_CHANGE_ADD);
        aw_test_attr(&c, "properties.i", "1");
        size_t idx = 99999;
        AW_CHECK_INT_EQ(aw_store_batch_add_apply(b, &c, &idx), AW_OK);
        AW_CHECK_INT_EQ(idx, i);
        aw_change_clear(&c);
    }
    /* one op refused at add time does not take a slot */
    mk(&c, "4", "4{0", "x@x.io", 1, "ev", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(aw_store_batch_add_apply(b, &c, NULL), AW_ERR_INVALID);
    aw_change_clear(&c);
    AW_CHECK_INT_EQ(aw_store_batch_count(b), N);

    uint64_t t = aw_clock_mono_ms();
    enum aw_err e = aw_store_batch_exec(s, b, T0);
    t = aw_clock_mono_ms() - t;
    printf("pipeline: %d applies in %" PRIu64 " ms\n", N, t);
    AW_CHECK_MSG(e == AW_OK, "%s", aw_store_errstr(s));
    int applied = 0, stale = 0;
    for (int i = 0; i < N; i++) {
        const struct aw_store_result *r = aw_store_batch_result(b, (size_t)i);
        AW_CHECK_INT_EQ(r->err, AW_OK);
        if (r->status == AW_STORE_APPLIED)
            applied++;
        if (r->status == AW_STORE_STALE)
            stale++;
        AW_CHECK_INT_EQ(r->status, i < 500 ? AW_STORE_APPLIED : AW_STORE_STALE);
    }
    AW_CHECK_INT_EQ(applied, 500);
    AW_CHECK_INT_EQ(stale, 500);
    AW_CHECK_INT_EQ(pcount(s, "4", "40") + pcount(s, "4", "41") + pcount(s, "4", "42"), 500);
    AW_CHECK_INT_EQ(due(s, "4", "40"), 0); /* 167 >= MAX_QUEUE */

    /* re-running the whole batch is idempotent */
    AW_CHECK_INT_EQ(aw_store_batch_exec(s, b, T0 + 1), AW_OK);
    for (int i = 0; i < N; i++)
        AW_CHECK_INT_EQ(aw_store_batch_result(b, (size_t)i)->status, AW_STORE_STALE);

    /* mixed batch: subscription ops and applies in order */
    aw_store_batch_reset(b);
    AW_CHECK_INT_EQ(aw_store_batch_add_remove(b, "4", "41", 9000, "r", NULL), AW_OK);
    mk(&c, "4", "41", "late@x.io", 8000, "ev", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(aw_store_batch_add_apply(b, &c, NULL), AW_OK);
    aw_change_clear(&c);
    mk(&c, "4", "42", "late@x.io", 8000, "ev", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(aw_store_batch_add_apply(b, &c, NULL), AW_OK);
    aw_change_clear(&c);
    AW_CHECK_INT_EQ(aw_store_batch_exec(s, b, T0), AW_OK);
    AW_CHECK_INT_EQ(aw_store_batch_result(b, 0)->status, AW_STORE_APPLIED);
    AW_CHECK_INT_EQ(aw_store_batch_result(b, 1)->status, AW_STORE_DISABLED);
    AW_CHECK_INT_EQ(aw_store_batch_result(b, 2)->status, AW_STORE_APPLIED);
    AW_CHECK_INT_EQ(due(s, "4", "41"), -1);
    aw_store_batch_free(b);
}

static void test_lease(struct aw_store *s)
{
    bool held = false;
    uint64_t e1 = 0, e2 = 0, e = 0;
    AW_CHECK_INT_EQ(aw_store_lease_acquire(s, "tok-a", 60000, &held, &e1), AW_OK);
    AW_CHECK(held);
    AW_CHECK(e1 >= 1);
    AW_CHECK_INT_EQ(aw_store_lease_acquire(s, "tok-a", 60000, &held, &e), AW_OK);
    AW_CHECK(held);
    AW_CHECK_INT_EQ(e, e1); /* re-acquire by the holder keeps the epoch */
    AW_CHECK_INT_EQ(aw_store_lease_acquire(s, "tok-b", 60000, &held, &e), AW_OK);
    AW_CHECK(!held);
    AW_CHECK_INT_EQ(aw_store_lease_renew(s, "tok-b", 60000, &held, &e), AW_OK);
    AW_CHECK(!held);
    AW_CHECK_INT_EQ(aw_store_lease_release(s, "tok-b"), AW_OK); /* not ours: no effect */
    AW_CHECK_INT_EQ(aw_store_lease_renew(s, "tok-a", 60000, &held, &e), AW_OK);
    AW_CHECK(held);
    AW_CHECK_INT_EQ(aw_store_lease_release(s, "tok-a"), AW_OK);
    AW_CHECK_INT_EQ(aw_store_lease_renew(s, "tok-a", 60000, &held, &e), AW_OK);
    AW_CHECK(!held);
    AW_CHECK_INT_EQ(aw_store_lease_acquire(s, "tok-b", 150, &held, &e2), AW_OK);
    AW_CHECK(held);
    AW_CHECK_INT_EQ(e2, e1 + 1);
    /* expiry: the TTL passes without renew, another candidate takes over with a new epoch */
    aw_clock_sleep_ms(300, NULL);
    AW_CHECK_INT_EQ(aw_store_lease_renew(s, "tok-b", 150, &held, &e), AW_OK);
    AW_CHECK(!held);
    AW_CHECK_INT_EQ(aw_store_lease_acquire(s, "tok-c", 60000, &held, &e), AW_OK);
    AW_CHECK(held);
    AW_CHECK_INT_EQ(e, e2 + 1);
    AW_CHECK_INT_EQ(aw_store_lease_release(s, "tok-c"), AW_OK);
    AW_CHECK_INT_EQ(aw_store_lease_acquire(s, "", 1000, &held, &e), AW_ERR_INVALID);
}

static void test_flush(struct aw_store *s)
{
    struct aw_change c, p;
    struct aw_store_taken t;
    enum aw_store_batch_status st;
    bool f;
    for (int i = 0; i < 7; i++) {
        char email[32];
        snprintf(email, sizeof email, "f%d@x.io", i);
        mk(&c, "7", "70", email, 100, "e", AW_CHANGE_ADD);
        aw_test_attr(&c, "first_name", "\"A\"");
        AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    }
    /* take 3 of 7 */
    AW_CHECK_INT_EQ(aw_store_flush_take(s, "7", "70", 5, 3, T0 + 100, &t), AW_OK);
    AW_CHECK_INT_EQ(t.status, AW_STORE_BATCH_TAKEN);
    AW_CHECK_INT_EQ(t.n, 3);
    AW_CHECK_INT_EQ(t.pending, 4);
    AW_CHECK_INT_EQ(t.due_unix_ms, 0);
    AW_CHECK_INT_EQ(pcount(s, "7", "70"), 4);
    char *bid = aw_strdup(t.batch_id);
    char *moved = aw_strdup(t.emails[0]);
    for (size_t i = 0; i < t.n; i++) {
        struct aw_change d;
        AW_CHECK_INT_EQ(aw_change_decode(t.changes[i], strlen(t.changes[i]), &d), AW_OK);
        AW_CHECK_STR_EQ(d.email, t.emails[i]);
        aw_change_clear(&d);
    }
    aw_store_taken_clear(&t);
    /* a second take returns the same in-flight batch (at most one per audience) */
    AW_CHECK_INT_EQ(aw_store_flush_take(s, "7", "70", 5, 3, T0 + 100, &t), AW_OK);
    AW_CHECK_INT_EQ(t.status, AW_STORE_BATCH_RESUMED);
    AW_CHECK_STR_EQ(t.batch_id, bid);
    AW_CHECK_INT_EQ(t.n, 3);
    aw_store_taken_clear(&t);

    /* a user in flight changes: the new change waits in pending, alone */
    mk(&c, "7", "70", moved, 200, "e", AW_CHANGE_ATTRIBUTE_UPDATE);
    aw_test_attr(&c, "last_name", "\"B\"");
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 150, NULL), AW_STORE_APPLIED);
    AW_CHECK(pending(s, "7", "70", moved, &p));
    AW_CHECK_INT_EQ(p.action, AW_CHANGE_ATTRIBUTE_UPDATE);
    AW_CHECK(attr_get(&p, "first_name", &f) == NULL && !f);
    aw_change_clear(&p);
    AW_CHECK_INT_EQ(pcount(s, "7", "70"), 5);
    /* an older redelivery of the in-flight change is still stale */
    mk(&c, "7", "70", moved, 100, "e", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 150, NULL), AW_STORE_STALE);

    /* fencing: a new leader (epoch 6) adopts the batch; the old one (5) can no longer end it */
    AW_CHECK_INT_EQ(aw_store_flush_take(s, "7", "70", 6, 3, T0 + 200, &t), AW_OK);
    AW_CHECK_INT_EQ(t.status, AW_STORE_BATCH_RESUMED);
    aw_store_taken_clear(&t);
    AW_CHECK_INT_EQ(aw_store_flush_ack(s, "7", "70", 5, bid, T0 + 250, &st), AW_ERR_NOT_LEADER);
    AW_CHECK_INT_EQ(aw_store_flush_take(s, "7", "70", 5, 3, T0 + 250, &t), AW_ERR_NOT_LEADER);
    aw_store_taken_clear(&t);

    /* ack: in-flight gone, last upload recorded, still due (drain: leftovers pending) */
    AW_CHECK_INT_EQ(aw_store_flush_ack(s, "7", "70", 6, bid, T0 + 300, &st), AW_OK);
    AW_CHECK_INT_EQ(st, AW_STORE_BATCH_DONE);
    check_meta(s, "7", "70", "last_upload_ms", "1700000000300");
    AW_CHECK_INT_EQ(due(s, "7", "70"), 0);
    AW_CHECK_INT_EQ(aw_store_flush_ack(s, "7", "70", 6, bid, T0 + 300, &st), AW_OK);
    AW_CHECK_INT_EQ(st, AW_STORE_BATCH_GONE); /* a repeated ack is harmless */
    free(bid);

    /* take the rest, then requeue: the batch merges back under newer pending changes */
    AW_CHECK_INT_EQ(aw_store_flush_take(s, "7", "70", 6, 100, T0 + 400, &t), AW_OK);
    AW_CHECK_INT_EQ(t.status, AW_STORE_BATCH_TAKEN);
    AW_CHECK_INT_EQ(t.n, 5);
    AW_CHECK_INT_EQ(t.pending, 0);
    bid = aw_strdup(t.batch_id);
    aw_store_taken_clear(&t);
    mk(&c, "7", "70", moved, 300, "e", AW_CHANGE_ATTRIBUTE_UPDATE);
    aw_test_attr(&c, "title", "\"T\"");
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 450, NULL), AW_STORE_APPLIED);
    AW_CHECK_INT_EQ(aw_store_flush_requeue(s, "7", "70", 6, bid, T0 + 500, &st), AW_OK);
    AW_CHECK_INT_EQ(st, AW_STORE_BATCH_DONE);
    free(bid);
    AW_CHECK_INT_EQ(pcount(s, "7", "70"), 5);
    AW_CHECK(pending(s, "7", "70", moved, &p));
    AW_CHECK_INT_EQ(p.action, AW_CHANGE_ATTRIBUTE_UPDATE);
    AW_CHECK_STR_EQ(attr_get(&p, "last_name", &f), "\"B\"");
    AW_CHECK_STR_EQ(attr_get(&p, "title", &f), "\"T\"");
    AW_CHECK_INT_EQ(p.version_ms, 300);
    aw_change_clear(&p);
    free(moved);

    /* drain completely, ack: nothing pending, the audience leaves the due index */
    AW_CHECK_INT_EQ(aw_store_flush_take(s, "7", "70", 6, 100, T0 + 600, &t), AW_OK);
    AW_CHECK_INT_EQ(t.n, 5);
    AW_CHECK_INT_EQ(aw_store_flush_ack(s, "7", "70", 6, t.batch_id, T0 + 700, &st), AW_OK);
    aw_store_taken_clear(&t);
    AW_CHECK_INT_EQ(pcount(s, "7", "70"), 0);
    AW_CHECK_INT_EQ(due(s, "7", "70"), -1);
    AW_CHECK_INT_EQ(aw_store_flush_take(s, "7", "70", 6, 100, T0 + 800, &t), AW_OK);
    AW_CHECK_INT_EQ(t.status, AW_STORE_BATCH_EMPTY);
    aw_store_taken_clear(&t);
    /* the next change after an upload is due max_age after that upload */
    mk(&c, "7", "70", "new@x.io", 400, "e", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 900, NULL), AW_STORE_APPLIED);
    AW_CHECK_INT_EQ(due(s, "7", "70"), (int64_t)(T0 + 700 + MAX_AGE_MS));
    /* a removed audience's in-flight batch is dropped; its ack reports GONE */
    AW_CHECK_INT_EQ(aw_store_flush_take(s, "7", "70", 6, 100, T0 + 1000, &t), AW_OK);
    AW_CHECK_INT_EQ(aw_store_audience_remove(s, "7", "70", 500, "r", T0 + 1000, NULL), AW_OK);
    AW_CHECK_INT_EQ(aw_store_flush_ack(s, "7", "70", 6, t.batch_id, T0 + 1100, &st), AW_OK);
    AW_CHECK_INT_EQ(st, AW_STORE_BATCH_GONE);
    aw_store_taken_clear(&t);
    AW_CHECK_INT_EQ(due(s, "7", "70"), -1);
}

static void test_noscript(struct aw_store *s)
{
    struct aw_change c;
    char out[64];
    AW_CHECK_INT_EQ(rcli(out, sizeof out, "SCRIPT FLUSH"), 0);
    AW_CHECK_STR_EQ(out, "OK");
    mk(&c, "5", "50", "n@x.io", 1, "e", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    AW_CHECK_INT_EQ(pcount(s, "5", "50"), 1);
    /* the due script was flushed too and is reloaded in the same exec */
    AW_CHECK_INT_EQ(rcli(out, sizeof out, "SCRIPT FLUSH"), 0);
    AW_CHECK_INT_EQ(aw_store_audience_remove(s, "5", "50", 5, "r", T0, NULL), AW_OK);
    AW_CHECK_INT_EQ(pcount(s, "5", "50"), 0);
    bool held = false;
    AW_CHECK_INT_EQ(rcli(out, sizeof out, "SCRIPT FLUSH"), 0);
    AW_CHECK_INT_EQ(aw_store_lease_acquire(s, "tok-n", 1000, &held, NULL), AW_OK);
    AW_CHECK(held);
}

static void test_faults(void)
{
    struct aw_store *s = new_store(800);
    if (!s)
        return;
    struct aw_change c;
    struct aw_store_result r;
    mk(&c, "6", "60", "f@x.io", 1, "e", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    AW_CHECK(aw_store_is_connected(s));

    /* unresponsive server: the command timeout fires and the call reports AW_ERR_IO */
    if (ctl("stop")) {
        uint64_t t = aw_clock_mono_ms();
        mk(&c, "6", "60", "f@x.io", 2, "e", AW_CHANGE_ADD);
        enum aw_err e = aw_store_apply(s, &c, T0, &r);
        aw_change_clear(&c);
        t = aw_clock_mono_ms() - t;
        AW_CHECK_INT_EQ(e, AW_ERR_IO);
        AW_CHECK_INT_EQ(r.err, AW_ERR_IO);
        AW_CHECK_MSG(t >= 700 && t < 5000, "timeout took %" PRIu64 " ms", t);
        AW_CHECK(!aw_store_is_connected(s));
        ctl("cont");
        /* the paused command may or may not have run once the server resumes: either way the
         * retry is idempotent and lands exactly once */
        mk(&c, "6", "60", "f@x.io", 2, "e", AW_CHANGE_ADD);
        int st = apply(s, &c, T0, NULL);
        AW_CHECK(st == AW_STORE_APPLIED || st == AW_STORE_STALE);
        AW_CHECK_INT_EQ(pcount(s, "6", "60"), 1);
    }

    /* server killed mid-use: AW_ERR_IO, then reconnect after restart */
    if (ctl("kill9")) {
        mk(&c, "6", "60", "g@x.io", 3, "e", AW_CHANGE_ADD);
        AW_CHECK_INT_EQ(aw_store_apply(s, &c, T0, &r), AW_ERR_IO);
        aw_change_clear(&c);
        AW_CHECK(!aw_store_is_connected(s));
        AW_CHECK(aw_store_errstr(s)[0] != '\0');
        AW_CHECK(strstr(aw_store_errstr(s), "g@x.io") == NULL);
        /* still down: reconnect fails fast with AW_ERR_IO */
        AW_CHECK_INT_EQ(aw_store_ping(s), AW_ERR_IO);
        int64_t n;
        AW_CHECK_INT_EQ(aw_store_pending_count(s, "6", "60", &n), AW_ERR_IO);
        struct aw_store_batch *b = aw_store_batch_new();
        mk(&c, "6", "60", "g@x.io", 3, "e", AW_CHANGE_ADD);
        AW_CHECK_INT_EQ(aw_store_batch_add_apply(b, &c, NULL), AW_OK);
        aw_change_clear(&c);
        AW_CHECK_INT_EQ(aw_store_batch_exec(s, b, T0), AW_ERR_IO);
        AW_CHECK_INT_EQ(aw_store_batch_result(b, 0)->err, AW_ERR_IO);
        if (ctl("restart")) {
            /* a fresh server (no persistence): scripts are loaded again on reconnect */
            AW_CHECK_INT_EQ(aw_store_batch_exec(s, b, T0), AW_OK);
            AW_CHECK_INT_EQ(aw_store_batch_result(b, 0)->err, AW_OK);
            AW_CHECK_INT_EQ(aw_store_batch_result(b, 0)->status, AW_STORE_APPLIED);
            AW_CHECK(aw_store_is_connected(s));
            AW_CHECK_INT_EQ(pcount(s, "6", "60"), 1);
        }
        aw_store_batch_free(b);
    }
    aw_store_free(s);
}

static void test_auth_refused(void)
{
    /* a password the server does not expect: AUTH fails, reported as a config problem */
    char url[600];
    const char *hostport = strstr(g_url, "://");
    AW_CHECK(hostport != NULL);
    if (!hostport)
        return;
    snprintf(url, sizeof url, "redis://:wrong-secret@%s", hostport + 3);
    struct aw_store_config cfg = {.url = url, .flush_max_queue = 1, .flush_max_age_ms = 1};
    char err[256];
    struct aw_store *s = aw_store_new(&cfg, err, sizeof err);
    AW_CHECK(s != NULL);
    if (!s)
        return;
    AW_CHECK_INT_EQ(aw_store_ping(s), AW_ERR_CONFIG);
    AW_CHECK(strstr(aw_store_errstr(s), "wrong-secret") == NULL);
    AW_CHECK(!aw_store_is_connected(s));
    aw_store_free(s);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as main.c does: hiredis writes to sockets with write(2) */
    g_url = getenv("AW_TEST_REDIS_URL");
    if (!g_url) {
        fprintf(stderr, "AW_TEST_REDIS_URL not set\n");
        return 2;
    }
    test_url();
    /* The same server over its unix socket (test_store.sh starts it with one). */
    const char *unix_url = getenv("AW_TEST_REDIS_UNIX_URL");
    AW_CHECK_MSG(unix_url != NULL, "AW_TEST_REDIS_UNIX_URL not set");
    if (unix_url) {
        char uerr[256];
        struct aw_store_config uc = {
            .url = unix_url, .flush_max_queue = 5, .flush_max_age_ms = MAX_AGE_MS};
        struct aw_store *us = aw_store_new(&uc, uerr, sizeof uerr);
        AW_CHECK(us != NULL);
        if (us) {
            AW_CHECK_MSG(aw_store_ping(us) == AW_OK, "unix ping: %s", aw_store_errstr(us));
            aw_store_free(us);
        }
    }
    char out[64];
    AW_CHECK_INT_EQ(rcli(out, sizeof out, "FLUSHALL"), 0);
    AW_CHECK_STR_EQ(out, "OK");

    struct aw_store *s = new_store(0);
    if (s) {
        AW_CHECK_INT_EQ(aw_store_ping(s), AW_OK);
        test_apply_and_versions(s);
        test_merge(s);
        test_facets(s);
        test_stale_after_flush(s);
        test_audience_state(s);
        test_due(s);
        test_pipeline(s);
        test_lease(s);
        test_flush(s);
        test_noscript(s);
        aw_store_free(s);
    }
    test_auth_refused();
    test_faults();
    return aw_test_done();
}
