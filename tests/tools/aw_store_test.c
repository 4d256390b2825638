/* aw_store_test.c -- integration test of the store (worker/store/) against a real redis-server:
 * the C API over the scripts (changes, subscription messages, both kinds of stream, batches,
 * the due indexes, lease, accounts), the profile facets shared by all audiences of an account
 * (DESIGN §1, §3), retention, and faults (NOSCRIPT, a stopped server, kill and restart).
 * Longer than 900 lines on purpose: it is one driver over one scratch server whose sections
 * (membership, batches, due, retention, summary, pipeline, accounts, lease, faults) share its
 * helpers (mk, apply, take, ack_all, pcount); splitting it would copy those or add a header.
 * Run by tests/integration/test_store.sh, which sets:
 *   AW_TEST_REDIS_URL       redis://127.0.0.1:<port>/0 of a scratch server (flushed here)
 *   AW_TEST_REDIS_UNIX_URL  the same server over its unix socket
 *   AW_TEST_CTL_DIR         directory for fault requests: this program creates <name> and waits
 *                           for <name>.done, the script performs it (kill9 = SIGKILL redis,
 *                           restart = start it again, stop = SIGSTOP, cont = SIGCONT).
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
#include "worker/store/account_ops.h"
#include "worker/store/change.h"
#include "worker/store/flush_ops.h"
#include "worker/store/ingest_ops.h"
#include "worker/store/lease.h"
#include "worker/store/status.h"
#include "worker/store/store.h"
#include "worker/store/summary.h"

#define T0 UINT64_C(1700000000000)    /* injected "now" */
#define MAX_AGE_MS UINT64_C(57600000) /* 16 h */
#define MAX_QUEUE 5
#define RETENTION_S 600

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

static struct aw_store_stream_info info(struct aw_store *s, const char *acct, const char *aud)
{
    struct aw_store_stream_info in;
    AW_CHECK_MSG(aw_store_stream_info(s, acct, aud, &in) == AW_OK, "%s", aw_store_errstr(s));
    return in;
}

static int64_t pcount(struct aw_store *s, const char *acct, const char *aud)
{
    struct aw_store_stream_info in = info(s, acct, aud);
    int64_t n = in.pending;
    aw_store_stream_info_clear(&in);
    return n;
}

static int64_t due(struct aw_store *s, const char *acct, const char *aud)
{
    struct aw_store_stream_info in = info(s, acct, aud);
    int64_t n = in.due_unix_ms;
    aw_store_stream_info_clear(&in);
    return n;
}

/* Seeds n membership changes of (acct, aud) in one pipeline, emails <prefix><i>@x.io, in that
 * order: change i removes when i % period < removals, else adds. */
static void seed_membership(struct aw_store *s, const char *acct, const char *aud,
                            const char *prefix, int n, int period, int removals)
{
    struct aw_store_batch *b = aw_store_batch_new();
    struct aw_change c;
    for (int i = 0; i < n; i++) {
        char email[32];
        snprintf(email, sizeof email, "%s%d@x.io", prefix, i);
        mk(&c, acct, aud, email, 100, "e",
           i % period < removals ? AW_CHANGE_DELETE : AW_CHANGE_ADD);
        AW_CHECK_INT_EQ(aw_store_batch_add_apply(b, &c, NULL), AW_OK);
        aw_change_clear(&c);
    }
    AW_CHECK_INT_EQ(aw_store_batch_exec(s, b, T0), AW_OK);
    aw_store_batch_free(b);
}

/* Takes a batch (must succeed) and returns it. */
static struct aw_store_taken take(struct aw_store *s, const char *acct, const char *aud,
                                  uint64_t epoch, size_t max, uint64_t now)
{
    struct aw_store_taken t;
    enum aw_err e = aw_store_flush_take(s, acct, aud, epoch, max, max, SIZE_MAX, now, &t);
    AW_CHECK_MSG(e == AW_OK, "take %s/%s: %s (%s)", acct, aud ? aud : "profiles", aw_err_str(e),
                 aw_store_errstr(s));
    return t;
}

/* Acks every entry of t, accepting `accepted` channels for each. */
static enum aw_store_batch_status ack_all(struct aw_store *s, const char *acct, const char *aud,
                                          uint64_t epoch, const struct aw_store_taken *t,
                                          const char *accepted, uint64_t now)
{
    const char **emails = aw_calloc(t->n + 1, sizeof *emails);
    const char **acc = aw_calloc(t->n + 1, sizeof *acc);
    for (size_t i = 0; i < t->n; i++) {
        emails[i] = t->entries[i].email;
        acc[i] = accepted;
    }
    enum aw_store_batch_status st = AW_STORE_BATCH_GONE;
    enum aw_err e =
        aw_store_flush_ack(s, acct, aud, epoch, t->batch_id, emails, acc, t->n, now, &st);
    AW_CHECK_MSG(e == AW_OK, "ack: %s (%s)", aw_err_str(e), aw_store_errstr(s));
    free(emails);
    free(acc);
    return st;
}

static const struct aw_store_entry *entry(const struct aw_store_taken *t, const char *email)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->entries[i].email, email) == 0)
            return &t->entries[i];
    return NULL;
}

static const char *attr_get(const struct aw_change *c, const char *path)
{
    for (size_t i = 0; i < c->n_attrs; i++)
        if (strcmp(c->attrs[i].path, path) == 0)
            return c->attrs[i].value_json ? c->attrs[i].value_json : "null";
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
                                  .flush_max_age_ms = MAX_AGE_MS,
                                  .retention_s = RETENTION_S};
    struct aw_store *s = aw_store_new(&cfg, err, sizeof err);
    AW_CHECK_MSG(s != NULL, "aw_store_new: %s", err);
    return s;
}

/* ---- tests ------------------------------------------------------------------------------- */

/* Membership of one (audience, user): newest version wins, ties by the lower-case id. */
static void test_membership(struct aw_store *s)
{
    struct aw_change c;
    struct aw_store_result r;
    mk(&c, "1", "10", "a@x.io", 1000, "ev-b", AW_CHANGE_ADD);
    aw_test_attr(&c, "first_name", "\"Ann\"");
    c.phone_e164 = aw_strdup("+14155550100");
    AW_CHECK_INT_EQ(apply(s, &c, T0, &r), AW_STORE_APPLIED);
    AW_CHECK_INT_EQ(r.pending, 1);
    AW_CHECK_INT_EQ(r.due_unix_ms, (int64_t)(T0 + MAX_AGE_MS)); /* the account's earliest */
    struct aw_store_stream_info in = info(s, "1", "10");
    AW_CHECK_STR_EQ(in.state, "active");
    AW_CHECK_STR_EQ(in.name, "Audience Name");
    AW_CHECK_INT_EQ(in.first_pending_ms, (int64_t)T0);
    aw_store_stream_info_clear(&in);
    AW_CHECK_INT_EQ(pcount(s, "1", NULL), 1); /* the profile stream got the attributes */

    /* older redelivery, equal version and id, equal version with a smaller id: stale */
    mk(&c, "1", "10", "a@x.io", 999, "ev-z", AW_CHANGE_DELETE);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 1, NULL), AW_STORE_STALE);
    mk(&c, "1", "10", "a@x.io", 1000, "EV-B", AW_CHANGE_DELETE);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 2, NULL), AW_STORE_STALE);
    mk(&c, "1", "10", "a@x.io", 1000, "EV-A", AW_CHANGE_DELETE);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 3, NULL), AW_STORE_STALE);
    /* tie broken by the greater lower-case id: "EV-C" -> "ev-c" > "ev-b" */
    mk(&c, "1", "10", "a@x.io", 1000, "EV-C", AW_CHANGE_DELETE);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 4, NULL), AW_STORE_APPLIED);
    /* versions compare as numbers, not text ("999" vs "1001" would be reversed as text) */
    mk(&c, "1", "10", "a@x.io", 1001, "a", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 5, NULL), AW_STORE_APPLIED);
    mk(&c, "1", "10", "a@x.io", 999, "zzz", AW_CHANGE_DELETE);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 6, NULL), AW_STORE_STALE);
    AW_CHECK_INT_EQ(pcount(s, "1", "10"), 1); /* one entry per user, last change wins */

    struct aw_store_taken t = take(s, "1", "10", 1, 100, T0 + 10);
    AW_CHECK_INT_EQ(t.status, AW_STORE_BATCH_TAKEN);
    AW_CHECK_INT_EQ(t.n, 1);
    const struct aw_store_entry *e = entry(&t, "a@x.io");
    AW_CHECK(e != NULL && !e->bad && !e->dropped);
    if (e) {
        AW_CHECK_INT_EQ(e->change.action, AW_CHANGE_ADD);
        AW_CHECK_INT_EQ(e->change.version_ms, 1001);
        AW_CHECK_STR_EQ(e->change.event_id, "a");
        AW_CHECK_INT_EQ(e->change.n_attrs, 0); /* attributes travel in the profile stream */
    }
    AW_CHECK_STR_EQ(t.name, "Audience Name");
    AW_CHECK_INT_EQ(ack_all(s, "1", "10", 1, &t, NULL, T0 + 20), AW_STORE_BATCH_DONE);
    aw_store_taken_clear(&t);
    /* a redelivery of what was flushed stays stale (the version outlives the flush) */
    mk(&c, "1", "10", "a@x.io", 1001, "a", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 30, NULL), AW_STORE_STALE);
    AW_CHECK_INT_EQ(pcount(s, "1", "10"), 0);
}

/* DESIGN §1: the profile is shared by the account's audiences. A consent given in a message of
 * a slow audience and an opt-out given later in a message of a busy one: whatever the order of
 * arrival, the profile ends with the opt-out and the newer attributes, and an old consent
 * repeated after an unsubscribe sends nothing. */
static void cross_audience(struct aw_store *s, const char *acct, bool busy_first)
{
    struct aw_change old, newer;
    mk(&old, acct, "20", "u@x.io", 1000, "m1", AW_CHANGE_ADD);
    aw_test_attr(&old, "first_name", "\"Old\"");
    aw_test_attr(&old, "last_name", "\"Kept\"");
    aw_test_consent(&old, AW_CHANNEL_EMAIL, true, 1000);
    mk(&newer, acct, "21", "u@x.io", 2000, "m2", AW_CHANGE_ADD);
    aw_test_attr(&newer, "first_name", "\"New\"");
    aw_test_consent(&newer, AW_CHANNEL_EMAIL, false, 2000);
    if (busy_first) {
        AW_CHECK_INT_EQ(apply(s, &newer, T0, NULL), AW_STORE_APPLIED);
        AW_CHECK_INT_EQ(apply(s, &old, T0, NULL), AW_STORE_APPLIED); /* membership of 20 */
    } else {
        AW_CHECK_INT_EQ(apply(s, &old, T0, NULL), AW_STORE_APPLIED);
        AW_CHECK_INT_EQ(apply(s, &newer, T0, NULL), AW_STORE_APPLIED);
    }
    struct aw_store_taken t = take(s, acct, NULL, 1, 100, T0 + 1);
    AW_CHECK_INT_EQ(t.n, 1);
    const struct aw_store_entry *e = entry(&t, "u@x.io");
    AW_CHECK(e != NULL);
    if (e) {
        AW_CHECK_STR_EQ(attr_get(&e->change, "first_name"), "\"New\"");
        AW_CHECK_STR_EQ(attr_get(&e->change, "last_name"), "\"Kept\"");
        const struct aw_change_consent *cs = consent_get(&e->change, AW_CHANNEL_EMAIL);
        AW_CHECK(cs != NULL && !cs->subscribe && cs->consented_at_unix_ms == 2000);
        AW_CHECK_INT_EQ(e->change.version_ms, 2000);
    }
    AW_CHECK_INT_EQ(ack_all(s, acct, NULL, 1, &t, "email", T0 + 2), AW_STORE_BATCH_DONE);
    aw_store_taken_clear(&t);

    /* the slow audience's old consent arrives again (redelivery, or a new message carrying the
     * same consent state): nothing to send */
    mk(&old, acct, "20", "u@x.io", 3000, "m3", AW_CHANGE_ATTRIBUTE_UPDATE);
    aw_test_consent(&old, AW_CHANNEL_EMAIL, true, 1000);
    AW_CHECK_INT_EQ(apply(s, &old, T0 + 3, NULL), AW_STORE_STALE);
    AW_CHECK_INT_EQ(pcount(s, acct, NULL), 0);
    /* the same consent as sent, with its own timestamp unchanged: nothing either */
    mk(&old, acct, "21", "u@x.io", 3001, "m4", AW_CHANGE_ATTRIBUTE_UPDATE);
    aw_test_consent(&old, AW_CHANNEL_EMAIL, false, 2000);
    AW_CHECK_INT_EQ(apply(s, &old, T0 + 3, NULL), AW_STORE_STALE);
    /* a newer consent is sent */
    mk(&old, acct, "20", "u@x.io", 3002, "m5", AW_CHANGE_ATTRIBUTE_UPDATE);
    aw_test_consent(&old, AW_CHANNEL_EMAIL, true, 2500);
    AW_CHECK_INT_EQ(apply(s, &old, T0 + 4, NULL), AW_STORE_APPLIED);
    t = take(s, acct, NULL, 1, 100, T0 + 5);
    AW_CHECK_INT_EQ(t.n, 1);
    if (t.n == 1) {
        const struct aw_change_consent *cs = consent_get(&t.entries[0].change, AW_CHANNEL_EMAIL);
        AW_CHECK(cs != NULL && cs->subscribe && cs->consented_at_unix_ms == 2500);
        AW_CHECK_INT_EQ(t.entries[0].change.n_attrs, 0); /* attributes unchanged: not resent */
    }
    /* Klaviyo refused it (dead-lettered): not recorded as sent, so it is sent again later */
    AW_CHECK_INT_EQ(ack_all(s, acct, NULL, 1, &t, NULL, T0 + 6), AW_STORE_BATCH_DONE);
    aw_store_taken_clear(&t);
    mk(&old, acct, "20", "u@x.io", 3003, "m6", AW_CHANGE_ATTRIBUTE_UPDATE);
    aw_test_attr(&old, "title", "\"T\"");
    AW_CHECK_INT_EQ(apply(s, &old, T0 + 7, NULL), AW_STORE_APPLIED);
    t = take(s, acct, NULL, 1, 100, T0 + 8);
    AW_CHECK(t.n == 1 && consent_get(&t.entries[0].change, AW_CHANNEL_EMAIL) != NULL);
    AW_CHECK_INT_EQ(ack_all(s, acct, NULL, 1, &t, "email", T0 + 9), AW_STORE_BATCH_DONE);
    aw_store_taken_clear(&t);
}

static void test_cross_audience(struct aw_store *s)
{
    cross_audience(s, "2", true);
    cross_audience(s, "3", false);
}

/* Batches: chunks, resume, fencing, partial and repeated acks, drain, job ids. */
static void test_batches(struct aw_store *s)
{
    struct aw_change c;
    enum { N = 2500 };
    seed_membership(s, "7", "70", "f", N, 5, 1); /* every fifth a removal */
    AW_CHECK_INT_EQ(due(s, "7", "70"), 0);       /* over the queue threshold: due now */

    /* a batch of 2,000 moves in chunks of at most 1,000 per script call */
    struct aw_store_taken t = take(s, "7", "70", 5, 2000, T0 + 100);
    AW_CHECK_INT_EQ(t.status, AW_STORE_BATCH_TAKEN);
    AW_CHECK_INT_EQ(t.n, 2000);
    AW_CHECK_INT_EQ(pcount(s, "7", "70"), 500);
    size_t dels = 0;
    for (size_t i = 0; i < t.n; i++)
        dels += t.entries[i].change.action == AW_CHANGE_DELETE;
    AW_CHECK_INT_EQ(dels, 400);
    char *bid = aw_strdup(t.batch_id);
    /* the job id is kept with the batch */
    bool written = false;
    AW_CHECK_INT_EQ(aw_store_flush_set_job(s, "7", "70", 5, bid, "0:1600:JOB-1", &written), AW_OK);
    AW_CHECK(written);
    aw_store_taken_clear(&t);

    /* a user in flight changes: the new change waits in pending for the next batch */
    mk(&c, "7", "70", "f1@x.io", 200, "e", AW_CHANGE_DELETE);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 150, NULL), AW_STORE_APPLIED);
    AW_CHECK_INT_EQ(pcount(s, "7", "70"), 501);

    /* a new leader (epoch 6) resumes the whole batch, paged, with its job id */
    t = take(s, "7", "70", 6, 2000, T0 + 200);
    AW_CHECK_INT_EQ(t.status, AW_STORE_BATCH_RESUMED);
    AW_CHECK_INT_EQ(t.n, 2000);
    AW_CHECK_STR_EQ(t.batch_id, bid);
    AW_CHECK_STR_EQ(t.job_id, "0:1600:JOB-1");
    /* the old leader can no longer take or end it */
    struct aw_store_taken old;
    AW_CHECK_INT_EQ(aw_store_flush_take(s, "7", "70", 5, 2000, 2000, SIZE_MAX, T0 + 250, &old),
                    AW_ERR_NOT_LEADER);
    enum aw_store_batch_status st;
    const char *one[1] = {"f2@x.io"};
    AW_CHECK_INT_EQ(aw_store_flush_ack(s, "7", "70", 5, bid, one, NULL, 1, T0 + 250, &st),
                    AW_ERR_NOT_LEADER);
    /* partial ack, then the rest */
    AW_CHECK_INT_EQ(aw_store_flush_ack(s, "7", "70", 6, bid, one, NULL, 1, T0 + 300, &st), AW_OK);
    AW_CHECK_INT_EQ(st, AW_STORE_BATCH_PARTIAL);
    AW_CHECK_INT_EQ(ack_all(s, "7", "70", 6, &t, NULL, T0 + 300), AW_STORE_BATCH_DONE);
    AW_CHECK_INT_EQ(ack_all(s, "7", "70", 6, &t, NULL, T0 + 300), AW_STORE_BATCH_GONE);
    aw_store_taken_clear(&t);
    free(bid);
    struct aw_store_stream_info in = info(s, "7", "70");
    AW_CHECK_INT_EQ(in.last_upload_ms, (int64_t)(T0 + 300));
    AW_CHECK_INT_EQ(in.due_unix_ms, 0); /* leftovers of a due audience stay due (drain) */
    AW_CHECK(in.batch_id == NULL);
    aw_store_stream_info_clear(&in);

    /* drain the rest: the newer change of f1 is there */
    t = take(s, "7", "70", 6, 10000, T0 + 400);
    AW_CHECK_INT_EQ(t.n, 501);
    const struct aw_store_entry *e = entry(&t, "f1@x.io");
    AW_CHECK(e && e->change.action == AW_CHANGE_DELETE && e->change.version_ms == 200);
    AW_CHECK_INT_EQ(ack_all(s, "7", "70", 6, &t, NULL, T0 + 500), AW_STORE_BATCH_DONE);
    aw_store_taken_clear(&t);
    AW_CHECK_INT_EQ(due(s, "7", "70"), -1);
    t = take(s, "7", "70", 6, 100, T0 + 600);
    AW_CHECK_INT_EQ(t.status, AW_STORE_BATCH_EMPTY);
    aw_store_taken_clear(&t);
    /* the next change after an upload is due max_age after that upload */
    mk(&c, "7", "70", "new@x.io", 400, "e", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(apply(s, &c, T0 + 900, NULL), AW_STORE_APPLIED);
    AW_CHECK_INT_EQ(due(s, "7", "70"), (int64_t)(T0 + 500 + MAX_AGE_MS));
}

/* A batch is bounded in bytes as well as in count: the take stops once its entries weigh the
 * bound, overshooting by at most one entry; the rest waits for the next batch. */
static void test_batch_bytes(struct aw_store *s)
{
    enum { N = 600 };
    seed_membership(s, "7", "72", "w", N, 1, 0); /* adds */
    const size_t bound = 20000;
    struct aw_store_taken t;
    AW_CHECK_INT_EQ(aw_store_flush_take(s, "7", "72", 5, 10000, 10000, bound, T0 + 100, &t), AW_OK);
    AW_CHECK_INT_EQ(t.status, AW_STORE_BATCH_TAKEN);
    AW_CHECK(t.n > 0 && t.n < N);
    size_t per = t.bytes / t.n;
    AW_CHECK_MSG(t.bytes >= bound && t.bytes < bound + 2 * per, "%zu bytes in %zu entries", t.bytes,
                 t.n);
    size_t first = t.n;
    AW_CHECK_INT_EQ(pcount(s, "7", "72"), N - first);
    AW_CHECK_INT_EQ(ack_all(s, "7", "72", 5, &t, NULL, T0 + 200), AW_STORE_BATCH_DONE);
    aw_store_taken_clear(&t);
    t = take(s, "7", "72", 5, 10000, T0 + 300);
    AW_CHECK_INT_EQ(t.n, N - first);
    AW_CHECK_INT_EQ(ack_all(s, "7", "72", 5, &t, NULL, T0 + 400), AW_STORE_BATCH_DONE);
    aw_store_taken_clear(&t);
}

/* A membership batch holds at most max_adds adds but more entries in all: it ends right before
 * the first add beyond the cap (removals before it come along), and that add leads the next. */
static void test_batch_adds(struct aw_store *s)
{
    seed_membership(s, "7", "73", "m", 1500, 3, 2); /* two removals, then an add: 500 adds */
    /* entries 0-601 (the 201st add is 602), 602-1201, 1202-1499 */
    static const size_t want[3] = {602, 600, 298}, want_adds[3] = {200, 200, 100};
    for (int k = 0; k < 3; k++) {
        struct aw_store_taken t;
        AW_CHECK_INT_EQ(
            aw_store_flush_take(s, "7", "73", 5, 10000, 200, SIZE_MAX, T0 + 100 + k, &t), AW_OK);
        size_t adds = 0;
        for (size_t i = 0; i < t.n; i++)
            adds += t.entries[i].change.action == AW_CHANGE_ADD;
        AW_CHECK_MSG(t.n == want[k] && adds == want_adds[k], "batch %d: %zu entries, %zu adds", k,
                     t.n, adds);
        AW_CHECK(entry(&t, k == 0 ? "m0@x.io" : k == 1 ? "m602@x.io" : "m1202@x.io")); /* order */
        AW_CHECK_INT_EQ(ack_all(s, "7", "73", 5, &t, NULL, T0 + 200 + k), AW_STORE_BATCH_DONE);
        aw_store_taken_clear(&t);
    }
    AW_CHECK_INT_EQ(pcount(s, "7", "73"), 0);
}

/* Subscription messages: versions, remove drops what was pending, a newer message re-enables. */
static void test_audience_state(struct aw_store *s)
{
    struct aw_change c;
    struct aw_store_result r;
    AW_CHECK_INT_EQ(aw_store_audience_upsert(s, "8", "80", "Name A", "LIST1", 100, "s1", T0, &r),
                    AW_OK);
    AW_CHECK_INT_EQ(r.status, AW_STORE_APPLIED);
    AW_CHECK_INT_EQ(aw_store_audience_upsert(s, "8", "80", "Stale", NULL, 90, "s0", T0, &r), AW_OK);
    AW_CHECK_INT_EQ(r.status, AW_STORE_STALE);
    struct aw_store_stream_info in = info(s, "8", "80");
    AW_CHECK_STR_EQ(in.name, "Name A");
    AW_CHECK_STR_EQ(in.list_id, "LIST1");
    aw_store_stream_info_clear(&in);
    for (int i = 0; i < 3; i++) {
        char email[32];
        snprintf(email, sizeof email, "r%d@x.io", i);
        mk(&c, "8", "80", email, 200, "e", AW_CHANGE_ADD);
        AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    }
    /* remove at 300: pending changes at or before it are dropped by the next take */
    AW_CHECK_INT_EQ(aw_store_audience_remove(s, "8", "80", 300, "s2", T0, &r), AW_OK);
    AW_CHECK_INT_EQ(r.status, AW_STORE_APPLIED);
    mk(&c, "8", "80", "late@x.io", 250, "e", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_DISABLED);
    AW_CHECK_INT_EQ(due(s, "8", "80"), 0); /* drop them soon */
    struct aw_store_taken t = take(s, "8", "80", 1, 100, T0 + 1);
    AW_CHECK_INT_EQ(t.status, AW_STORE_BATCH_EMPTY);
    aw_store_taken_clear(&t);
    AW_CHECK_INT_EQ(pcount(s, "8", "80"), 0);
    AW_CHECK_INT_EQ(due(s, "8", "80"), -1);
    in = info(s, "8", "80");
    AW_CHECK_STR_EQ(in.state, "disabled");
    AW_CHECK_STR_EQ(in.list_id, "LIST1"); /* the list is kept */
    aw_store_stream_info_clear(&in);
    /* a newer membership message re-enables it (mParticle reconnected the audience) */
    mk(&c, "8", "80", "back@x.io", 400, "e", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    in = info(s, "8", "80");
    AW_CHECK_STR_EQ(in.state, "active");
    aw_store_stream_info_clear(&in);
    /* upsert without listId clears it: the list is then found by name */
    AW_CHECK_INT_EQ(aw_store_audience_upsert(s, "8", "80", NULL, NULL, 500, "s3", T0, &r), AW_OK);
    in = info(s, "8", "80");
    AW_CHECK(in.list_id == NULL);
    AW_CHECK_STR_EQ(in.name, "Audience Name"); /* set by the newest message that named it */
    aw_store_stream_info_clear(&in);
    /* ids that cannot be part of a key are refused before any I/O */
    AW_CHECK_INT_EQ(aw_store_audience_upsert(s, "8", "8{0}", "x", NULL, 1, "s", T0, &r),
                    AW_ERR_INVALID);
}

/* The due indexes: per account, and the global one of accounts. */
static void test_due(struct aw_store *s)
{
    struct aw_change c;
    mk(&c, "9", "90", "d@x.io", 1, "e", AW_CHANGE_ADD);
    aw_test_attr(&c, "first_name", "\"D\"");
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    char **ids = NULL;
    size_t n = 0;
    AW_CHECK_INT_EQ(aw_store_due_accounts(s, T0 + MAX_AGE_MS - 1, 100, &ids, &n), AW_OK);
    bool nine = false;
    for (size_t i = 0; i < n; i++)
        nine = nine || strcmp(ids[i], "9") == 0;
    AW_CHECK(!nine); /* not due yet */
    aw_store_strings_free(ids, n);
    AW_CHECK_INT_EQ(aw_store_due_accounts(s, T0 + MAX_AGE_MS, 100, &ids, &n), AW_OK);
    for (size_t i = 0; i < n; i++)
        nine = nine || strcmp(ids[i], "9") == 0;
    AW_CHECK(nine);
    aw_store_strings_free(ids, n);
    struct aw_store_stream *st = NULL;
    AW_CHECK_INT_EQ(aw_store_due_streams(s, "9", T0 + MAX_AGE_MS, 10, &st, &n), AW_OK);
    AW_CHECK_INT_EQ(n, 2); /* the audience and the profile stream */
    bool aud = false, prof = false;
    for (size_t i = 0; i < n; i++) {
        aud = aud || (st[i].audience_id && strcmp(st[i].audience_id, "90") == 0);
        prof = prof || !st[i].audience_id;
    }
    AW_CHECK(aud && prof);
    aw_store_streams_free(st, n);
    /* the profile stream comes first even when more audiences are due now (score 0, names
     * sorting before it) than are listed */
    mk(&c, "88", "880", "p@x.io", 1, "e", AW_CHANGE_ADD);
    aw_test_attr(&c, "first_name", "\"P\"");
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    for (int a = 881; a <= 882; a++)
        for (int i = 0; i < 5; i++) {
            char email[32], audience[8];
            snprintf(email, sizeof email, "p%d@x.io", i);
            snprintf(audience, sizeof audience, "%d", a);
            mk(&c, "88", audience, email, 2, "e", AW_CHANGE_DELETE);
            AW_CHECK_INT_EQ(apply(s, &c, T0 + 10, NULL), AW_STORE_APPLIED);
        }
    AW_CHECK_INT_EQ(aw_store_due_streams(s, "88", T0 + MAX_AGE_MS, 2, &st, &n), AW_OK);
    AW_CHECK_INT_EQ(n, 2);
    AW_CHECK(n == 2 && st[0].audience_id == NULL && st[1].audience_id != NULL);
    aw_store_streams_free(st, n);
    /* five entries reach AW_FLUSH_MAX_QUEUE: due now */
    for (int i = 0; i < 4; i++) {
        char email[32];
        snprintf(email, sizeof email, "d%d@x.io", i);
        mk(&c, "9", "90", email, 2, "e", AW_CHANGE_DELETE);
        AW_CHECK_INT_EQ(apply(s, &c, T0 + 10, NULL), AW_STORE_APPLIED);
    }
    AW_CHECK_INT_EQ(due(s, "9", "90"), 0);
    AW_CHECK_INT_EQ(aw_store_due_accounts(s, T0, 100, &ids, &n), AW_OK);
    nine = false;
    for (size_t i = 0; i < n; i++)
        nine = nine || strcmp(ids[i], "9") == 0;
    AW_CHECK(nine);
    aw_store_strings_free(ids, n);
    AW_CHECK_INT_EQ(aw_store_accounts(s, &ids, &n), AW_OK);
    AW_CHECK(n >= 1);
    aw_store_strings_free(ids, n);
    AW_CHECK_INT_EQ(aw_store_audiences(s, "9", &ids, &n), AW_OK);
    AW_CHECK(n == 1 && strcmp(ids[0], "90") == 0);
    aw_store_strings_free(ids, n);
}

/* What is kept per user expires after the retention once nothing pending names it. */
static void test_retention(struct aw_store *s)
{
    char out[64];
    struct aw_change c;
    mk(&c, "11", "110", "ret@x.io", 1, "e", AW_CHANGE_ADD);
    aw_test_attr(&c, "first_name", "\"R\"");
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    rcli(out, sizeof out, "TTL 'aw:{11}:u:ret@x.io'");
    AW_CHECK_STR_EQ(out, "-1"); /* pending: kept */
    struct aw_store_taken t = take(s, "11", "110", 1, 100, T0);
    AW_CHECK_INT_EQ(ack_all(s, "11", "110", 1, &t, NULL, T0), AW_STORE_BATCH_DONE);
    aw_store_taken_clear(&t);
    rcli(out, sizeof out, "TTL 'aw:{11}:u:ret@x.io'");
    AW_CHECK_STR_EQ(out, "-1"); /* the profile entry still names it */
    t = take(s, "11", NULL, 1, 100, T0);
    /* the consent job's time is kept with the profile stream (next batch's settle wait), only
     * by the leader of the batch in flight */
    uint64_t sent = 1;
    bool written = false;
    AW_CHECK_INT_EQ(aw_store_flush_sent_at(s, "11", NULL, AW_STORE_SENT_CONSENT, &sent), AW_OK);
    AW_CHECK_INT_EQ(sent, 0);
    AW_CHECK_INT_EQ(aw_store_flush_mark_sent(s, "11", NULL, AW_STORE_SENT_CONSENT, 1, t.batch_id,
                                             T0 + 7, &written),
                    AW_OK);
    AW_CHECK(written);
    AW_CHECK_INT_EQ(aw_store_flush_mark_sent(s, "11", NULL, AW_STORE_SENT_CONSENT, 1, "other-batch",
                                             T0 + 9, &written),
                    AW_OK);
    AW_CHECK(!written);
    AW_CHECK_INT_EQ(aw_store_flush_mark_sent(s, "11", NULL, AW_STORE_SENT_CONSENT, 0, t.batch_id,
                                             T0 + 9, &written),
                    AW_ERR_NOT_LEADER); /* an older leader than the batch's */
    AW_CHECK_INT_EQ(aw_store_flush_sent_at(s, "11", NULL, AW_STORE_SENT_CONSENT, &sent), AW_OK);
    AW_CHECK_INT_EQ(sent, T0 + 7);
    AW_CHECK_INT_EQ(ack_all(s, "11", NULL, 1, &t, NULL, T0), AW_STORE_BATCH_DONE);
    aw_store_taken_clear(&t);
    rcli(out, sizeof out, "TTL 'aw:{11}:u:ret@x.io'");
    long ttl = strtol(out, NULL, 10);
    AW_CHECK_MSG(ttl > 0 && ttl <= RETENTION_S, "ttl %s", out);
    /* the cached profile id lives and dies with the user */
    AW_CHECK_INT_EQ(aw_store_profile_id_set(s, "11", "ret@x.io", "01KID"), AW_OK);
    const char *emails[2] = {"ret@x.io", "nobody@x.io"};
    char *ids[2];
    AW_CHECK_INT_EQ(aw_store_profile_ids_get(s, "11", emails, 2, ids), AW_OK);
    AW_CHECK_STR_EQ(ids[0], "01KID");
    AW_CHECK(ids[1] == NULL);
    free(ids[0]);
    AW_CHECK_INT_EQ(aw_store_profile_id_set(s, "11", "nobody@x.io", "01X"), AW_OK);
    rcli(out, sizeof out, "EXISTS 'aw:{11}:u:nobody@x.io'");
    AW_CHECK_STR_EQ(out, "0");
    /* a new change brings the user back under reference: no expiry while pending */
    mk(&c, "11", "110", "ret@x.io", 2, "e", AW_CHANGE_DELETE);
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    rcli(out, sizeof out, "TTL 'aw:{11}:u:ret@x.io'");
    AW_CHECK_STR_EQ(out, "-1");
}

/* The leader's gauges: every stream's pending and in-flight counts and the oldest pending. */
static void test_summary(struct aw_store *s)
{
    struct aw_store_summary before, after;
    AW_CHECK_INT_EQ(aw_store_summary(s, SIZE_MAX, &before), AW_OK);
    struct aw_change c;
    mk(&c, "13", "130", "sum1@x.io", 1, "e", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(apply(s, &c, T0 - 5000, NULL), AW_STORE_APPLIED);
    mk(&c, "13", "131", "sum2@x.io", 1, "e", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(apply(s, &c, T0 - 9000, NULL), AW_STORE_APPLIED);
    mk(&c, "13", "131", "sum3@x.io", 1, "e", AW_CHANGE_ADD);
    AW_CHECK_INT_EQ(apply(s, &c, T0, NULL), AW_STORE_APPLIED);
    int64_t added = pcount(s, "13", "130") + pcount(s, "13", "131") + pcount(s, "13", NULL);
    AW_CHECK(added >= 3);
    AW_CHECK_INT_EQ(aw_store_summary(s, SIZE_MAX, &after), AW_OK);
    AW_CHECK_INT_EQ(after.pending - before.pending, (uint64_t)added);
    AW_CHECK_INT_EQ(after.streams - before.streams, 3); /* two audiences and the profiles */
    AW_CHECK(after.oldest_unix_ms != 0 && after.oldest_unix_ms <= T0 - 9000);
    /* a batch taken moves its changes from pending to in flight */
    struct aw_store_taken t = take(s, "13", "131", 1, 100, T0);
    AW_CHECK_INT_EQ(t.n, 2);
    struct aw_store_summary taken;
    AW_CHECK_INT_EQ(aw_store_summary(s, SIZE_MAX, &taken), AW_OK);
    AW_CHECK_INT_EQ(after.pending - taken.pending, 2);
    AW_CHECK_INT_EQ(taken.inflight - after.inflight, 2);
    AW_CHECK_INT_EQ(ack_all(s, "13", "131", 1, &t, NULL, T0), AW_STORE_BATCH_DONE);
    aw_store_taken_clear(&t);
    /* a bound on the streams read is reported */
    AW_CHECK_INT_EQ(aw_store_summary(s, 1, &taken), AW_OK);
    AW_CHECK(taken.truncated && taken.streams == 1);
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
    AW_CHECK(aw_store_batch_bytes(b) > 0);

    AW_CHECK_MSG(aw_store_batch_exec(s, b, T0) == AW_OK, "%s", aw_store_errstr(s));
    int applied = 0, stale = 0;
    for (int i = 0; i < N; i++) {
        const struct aw_store_result *r = aw_store_batch_result(b, (size_t)i);
        AW_CHECK_INT_EQ(r->err, AW_OK);
        applied += r->status == AW_STORE_APPLIED;
        stale += r->status == AW_STORE_STALE;
        AW_CHECK_INT_EQ(r->status, i < 500 ? AW_STORE_APPLIED : AW_STORE_STALE);
    }
    AW_CHECK_INT_EQ(applied, 500);
    AW_CHECK_INT_EQ(stale, 500);
    AW_CHECK_INT_EQ(pcount(s, "4", "40") + pcount(s, "4", "41") + pcount(s, "4", "42"), 500);
    AW_CHECK_INT_EQ(pcount(s, "4", NULL), 500);
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
    aw_store_batch_free(b);
}

/* Accounts: the key the messages carried, Retry-After blocks, the daily list-creation count. */
static void test_accounts(struct aw_store *s)
{
    char *key = NULL;
    uint64_t block = 0;
    AW_CHECK_INT_EQ(aw_store_account_put(s, "12", "pk_test_123", 100), AW_OK);
    AW_CHECK_INT_EQ(aw_store_account_block(s, "12", T0 + 5000), AW_OK);
    AW_CHECK_INT_EQ(aw_store_account_block(s, "12", T0 + 1000), AW_OK); /* never shortened */
    AW_CHECK_INT_EQ(aw_store_account_get(s, "12", &key, &block), AW_OK);
    AW_CHECK_STR_EQ(key, "pk_test_123");
    AW_CHECK_INT_EQ(block, T0 + 5000);
    free(key);
    AW_CHECK_INT_EQ(aw_store_account_put(s, "12", "", 100), AW_ERR_INVALID);
    /* a pause is visible to everyone; the same key again keeps it, a new key ends it */
    uint64_t until = 0;
    long refused = 0;
    AW_CHECK_INT_EQ(aw_store_account_pause(s, "12", T0 + 60000, 401), AW_OK);
    AW_CHECK_INT_EQ(aw_store_account_paused(s, "12", &until, &refused), AW_OK);
    AW_CHECK(until == T0 + 60000 && refused == 401);
    AW_CHECK_INT_EQ(aw_store_account_put(s, "12", "pk_test_123", 100), AW_OK);
    AW_CHECK_INT_EQ(aw_store_account_paused(s, "12", &until, &refused), AW_OK);
    AW_CHECK(until == T0 + 60000);
    AW_CHECK_INT_EQ(aw_store_account_put(s, "12", "pk_test_456", 200), AW_OK);
    AW_CHECK_INT_EQ(aw_store_account_paused(s, "12", &until, &refused), AW_OK);
    AW_CHECK(until == 0);
    AW_CHECK_INT_EQ(aw_store_account_pause(s, "12", T0 + 1, 403), AW_OK);
    AW_CHECK_INT_EQ(aw_store_account_unpause(s, "12"), AW_OK);
    AW_CHECK_INT_EQ(aw_store_account_paused(s, "12", &until, &refused), AW_OK);
    AW_CHECK(until == 0);
    /* the newest message's key wins: an older one (a lagging replica) is not written back; a
     * tie keeps the greater key; a key that cannot go into a header is never stored */
    AW_CHECK_INT_EQ(aw_store_account_put(s, "12", "pk_test_old", 150), AW_OK);
    AW_CHECK_INT_EQ(aw_store_account_get(s, "12", &key, &block), AW_OK);
    AW_CHECK_STR_EQ(key, "pk_test_456");
    free(key);
    AW_CHECK_INT_EQ(aw_store_account_put(s, "12", "pk_test_111", 200), AW_OK);
    AW_CHECK_INT_EQ(aw_store_account_put(s, "12", "pk_test_999", 200), AW_OK);
    AW_CHECK_INT_EQ(aw_store_account_get(s, "12", &key, &block), AW_OK);
    AW_CHECK_STR_EQ(key, "pk_test_999");
    free(key);
    AW_CHECK_INT_EQ(aw_store_account_put(s, "12", "pk_test_456", 201), AW_OK);
    AW_CHECK_INT_EQ(aw_store_account_get(s, "12", &key, &block), AW_OK);
    AW_CHECK_STR_EQ(key, "pk_test_456");
    free(key);
    AW_CHECK_INT_EQ(aw_store_account_put(s, "12", "pk_bad\r\nX-Evil: 1", 300), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_store_account_put(s, "12", "pk bad", 300), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_store_account_get(s, "12", &key, &block), AW_OK);
    AW_CHECK_STR_EQ(key, "pk_test_456");
    free(key);
    int64_t count = 0;
    AW_CHECK_INT_EQ(aw_store_account_count_list_create(s, "12", T0, 1, &count), AW_OK);
    AW_CHECK_INT_EQ(count, 1);
    AW_CHECK_INT_EQ(aw_store_account_count_list_create(s, "12", T0, 1, &count), AW_OK);
    AW_CHECK_INT_EQ(aw_store_account_count_list_create(s, "12", T0, -1, &count), AW_OK);
    AW_CHECK_INT_EQ(count, 1);
    AW_CHECK_INT_EQ(aw_store_account_count_list_create(s, "12", T0 + 86400000, 1, &count), AW_OK);
    AW_CHECK_INT_EQ(count, 1); /* a new UTC day */
    AW_CHECK_INT_EQ(aw_store_audience_list_set(s, "12", "120", "LISTX"), AW_OK);
    struct aw_store_stream_info in = info(s, "12", "120");
    AW_CHECK_STR_EQ(in.klaviyo_list_id, "LISTX");
    aw_store_stream_info_clear(&in);
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
    struct aw_store_result r;
    AW_CHECK_INT_EQ(aw_store_audience_remove(s, "5", "50", 5, "r", T0, &r), AW_OK);
    AW_CHECK_INT_EQ(r.status, AW_STORE_APPLIED);
    bool held = false;
    AW_CHECK_INT_EQ(rcli(out, sizeof out, "SCRIPT FLUSH"), 0);
    AW_CHECK_INT_EQ(aw_store_lease_acquire(s, "tok-n", 1000, &held, NULL), AW_OK);
    AW_CHECK(held);
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
        struct aw_store_stream_info in;
        AW_CHECK_INT_EQ(aw_store_stream_info(s, "6", "60", &in), AW_ERR_IO);
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
            AW_CHECK(!aw_store_is_cluster(us));
            aw_store_free(us);
        }
    }
    char out[64];
    AW_CHECK_INT_EQ(rcli(out, sizeof out, "FLUSHALL"), 0);
    AW_CHECK_STR_EQ(out, "OK");

    struct aw_store *s = new_store(0);
    if (s) {
        AW_CHECK_INT_EQ(aw_store_ping(s), AW_OK);
        test_membership(s);
        test_cross_audience(s);
        test_batches(s);
        test_batch_bytes(s);
        test_batch_adds(s);
        test_audience_state(s);
        test_due(s);
        test_retention(s);
        test_summary(s);
        test_pipeline(s);
        test_accounts(s);
        test_lease(s);
        test_noscript(s);
        aw_store_free(s);
    }
    test_auth_refused();
    test_faults();
    return aw_test_done();
}
