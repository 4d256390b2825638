/* aw_memory_test.c -- the store's memory bound (issue "Store v2", item 5): what is kept per user
 * expires after the retention once flushed, and Redis's memory returns to where it was once a
 * backlog is drained and the retention has passed. Run by tests/integration/test_memory.sh with
 * AW_TEST_REDIS_URL (a scratch redis-server, flushed here).
 *
 * The retention is set to 2 s through struct aw_store_config (AW_STATE_RETENTION_S cannot go
 * below 60 s). Steps:
 *  1. warm-up: a few users of the account and its audiences are applied, drained and expire,
 *     so the keys that live as long as the account (its meta, due index, audience set, the
 *     global due keys) exist before the baseline; then the baseline: used_memory and the key set;
 *  2. USERS users, each added to two audiences with attributes and consent (a backlog), pending:
 *     their state does not expire;
 *  3. everything taken and acked (the leader's part), after which each user's state has a TTL
 *     of at most the retention, and is gone once it passed;
 *  4. used_memory back to the baseline within TOLERANCE_B and the same key set.
 *
 * The tolerance: used_memory counts, besides the data, the tables of the keyspace and expires
 * dicts (sized in powers of two, shrunk by Redis's cron below 10 % fill, which the settle loop
 * waits for), this program's INFO connection's buffers, and allocator size classes of the
 * account's own hashes whose numbers changed (batch sequence, upload time). Those are a few KB
 * at most, whatever the backlog; anything left per user (>= 8 bytes each for 4000 users) exceeds
 * 32 KiB. Prints the figures (bytes per pending change). Exits non-zero when a check fails. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/mem.h"
#include "tests/change_builder.h"
#include "tests/harness.h"
#include "worker/store/change.h"
#include "worker/store/client.h"
#include "worker/store/flush_ops.h"
#include "worker/store/ingest_ops.h"
#include "worker/store/store.h"

#define ACCT "903"
#define USERS 4000
#define RETENTION_S 2
#define TOLERANCE_B (32 * 1024)

static const char *g_url;
static struct aw_redis *g_r; /* INFO / KEYS / TTL, one small connection for the whole run */

/* ---- plain commands ---------------------------------------------------------------------- */

static bool cmd(struct aw_redis_cmd *c, int argc, const char **argv)
{
    memset(c, 0, sizeof *c);
    c->script = -1;
    c->route = argc > 1 ? argv[1] : NULL;
    c->argc = argc;
    c->argv = argv;
    enum aw_err e = aw_redis_exec(g_r, c, 1);
    if (e != AW_OK || c->err != AW_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], aw_redis_errstr(g_r));
        aw_redis_cmd_clear(c);
        return false;
    }
    return true;
}

static long long int_cmd(const char *a0, const char *a1)
{
    const char *argv[2] = {a0, a1};
    struct aw_redis_cmd c;
    if (!cmd(&c, a1 ? 2 : 1, argv))
        return -999;
    long long v = c.reply.type == AW_REPLY_INT ? c.reply.integer : -999;
    aw_redis_cmd_clear(&c);
    return v;
}

/* A field of INFO memory ("used_memory", ...); -1 when missing. */
static long long info_memory(const char *field)
{
    const char *argv[2] = {"INFO", "memory"};
    struct aw_redis_cmd c;
    if (!cmd(&c, 2, argv))
        return -1;
    char pat[64];
    snprintf(pat, sizeof pat, "\n%s:", field);
    long long v = -1;
    const char *p = c.reply.type == AW_REPLY_STR ? strstr(c.reply.str, pat) : NULL;
    if (p)
        v = strtoll(p + strlen(pat), NULL, 10);
    aw_redis_cmd_clear(&c);
    return v;
}

static long long used_memory(void)
{
    return info_memory("used_memory");
}

static void print_memory(const char *when)
{
    printf("%-10s used_memory %lld = overhead %lld (clients %lld, scripts %lld) + dataset %lld\n",
           when, info_memory("used_memory"), info_memory("used_memory_overhead"),
           info_memory("mem_clients_normal"), info_memory("used_memory_scripts"),
           info_memory("used_memory_dataset"));
}

/* used_memory once Redis's cron has shrunk what it shrinks: three readings in a row within
 * 256 bytes (at most 10 s). */
static long long settled_memory(void)
{
    long long last = used_memory(), v = last;
    int same = 0;
    for (int i = 0; i < 50 && same < 3; i++) {
        aw_clock_sleep_ms(200, NULL);
        v = used_memory();
        same = llabs(v - last) <= 256 ? same + 1 : 0;
        last = v;
    }
    return v;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every key, sorted, one per line (caller frees). */
static char *key_set(void)
{
    const char *argv[2] = {"KEYS", "*"};
    struct aw_redis_cmd c;
    if (!cmd(&c, 2, argv))
        return aw_strdup("?");
    char **k = aw_calloc(c.reply.n + 1, sizeof *k);
    size_t len = 1;
    for (size_t i = 0; i < c.reply.n; i++) {
        k[i] = c.reply.elem[i].str;
        len += c.reply.elem[i].len + 1;
    }
    qsort(k, c.reply.n, sizeof *k, cmp_str);
    char *out = aw_malloc(len), *p = out;
    for (size_t i = 0; i < c.reply.n; i++)
        p += snprintf(p, len - (size_t)(p - out), "%s\n", k[i]);
    *p = '\0';
    free(k);
    aw_redis_cmd_clear(&c);
    return out;
}

/* Users' hashes left (aw:{ACCT}:u:*). */
static long long user_keys(void)
{
    char *all = key_set();
    long long n = 0;
    for (const char *p = strstr(all, "aw:{" ACCT "}:u:"); p; p = strstr(p + 1, "aw:{" ACCT "}:u:"))
        n++;
    free(all);
    return n;
}

/* ---- the store's side ---------------------------------------------------------------------- */

static struct aw_store *store(void)
{
    char err[256];
    struct aw_store_config sc = {.url = g_url,
                                 .flush_max_queue = 1000000000,
                                 .flush_max_age_ms = 3600000,
                                 .retention_s = RETENTION_S};
    struct aw_store *s = aw_store_new(&sc, err, sizeof err);
    AW_CHECK_MSG(s != NULL, "%s", err);
    if (!s)
        exit(aw_test_done());
    return s;
}

/* Users [from, to) join audiences 1 and 2 with two attributes and email consent; returns the
 * changes applied. */
static size_t ingest(struct aw_store *s, int from, int to, uint64_t version)
{
    struct aw_store_batch *b = aw_store_batch_new();
    size_t applied = 0;
    for (int u = from; u < to; u++) {
        for (int a = 1; a <= 2; a++) {
            struct aw_change c;
            memset(&c, 0, sizeof c);
            char email[64], id[32], last[32];
            snprintf(email, sizeof email, "user%d@example.com", u);
            snprintf(id, sizeof id, "m-%d", u);
            snprintf(last, sizeof last, "\"Number %d\"", u);
            c.account_id = aw_strdup(ACCT);
            c.audience_id = aw_strdup(a == 1 ? "1" : "2");
            c.audience_name = aw_strdup(a == 1 ? "Memory One" : "Memory Two");
            c.event_id = aw_strdup(id);
            c.version_ms = version + (uint64_t)u;
            c.action = AW_CHANGE_ADD;
            c.email = aw_strdup(email);
            aw_test_attr(&c, "first_name", "\"Ann\"");
            aw_test_attr(&c, "last_name", last);
            aw_test_consent(&c, AW_CHANNEL_EMAIL, true, 1690000000000);
            AW_CHECK_INT_EQ(aw_store_batch_add_apply(b, &c, NULL), AW_OK);
            aw_change_clear(&c);
        }
        if (aw_store_batch_count(b) >= 500 || u + 1 == to) {
            AW_CHECK_INT_EQ(aw_store_batch_exec(s, b, aw_clock_unix_ms()), AW_OK);
            for (size_t i = 0; i < aw_store_batch_count(b); i++) {
                const struct aw_store_result *r = aw_store_batch_result(b, i);
                AW_CHECK_INT_EQ(r->err, AW_OK);
                applied += r->err == AW_OK && r->status == AW_STORE_APPLIED;
            }
            aw_store_batch_reset(b);
        }
    }
    aw_store_batch_free(b);
    return applied;
}

/* The leader's part: every batch of the stream taken and acked (email consent accepted).
 * Returns the entries acked. */
static size_t drain(struct aw_store *s, const char *aud)
{
    size_t n = 0;
    for (int round = 0; round < 100; round++) {
        struct aw_store_taken t;
        enum aw_err e =
            aw_store_flush_take(s, ACCT, aud, 1, 1000, 1000, SIZE_MAX, aw_clock_unix_ms(), &t);
        AW_CHECK_MSG(e == AW_OK, "take: %s (%s)", aw_err_str(e), aw_store_errstr(s));
        if (e != AW_OK || t.status == AW_STORE_BATCH_EMPTY) {
            aw_store_taken_clear(&t);
            return n;
        }
        const char **emails = aw_calloc(t.n + 1, sizeof *emails);
        const char **accepted = aw_calloc(t.n + 1, sizeof *accepted);
        for (size_t i = 0; i < t.n; i++) {
            emails[i] = t.entries[i].email;
            accepted[i] = "email";
        }
        enum aw_store_batch_status st;
        e = aw_store_flush_ack(s, ACCT, aud, 1, t.batch_id, emails, accepted, t.n,
                               aw_clock_unix_ms(), &st);
        AW_CHECK_MSG(e == AW_OK && st == AW_STORE_BATCH_DONE, "ack: %s status %d", aw_err_str(e),
                     (int)st);
        n += t.n;
        free(emails);
        free(accepted);
        aw_store_taken_clear(&t);
    }
    AW_CHECK_MSG(false, "stream %s not drained after 100 batches", aud ? aud : "profiles");
    return n;
}

static size_t drain_all(struct aw_store *s)
{
    return drain(s, "1") + drain(s, "2") + drain(s, NULL);
}

/* Waits (at most 30 s) until no user hash is left; returns the seconds it took. */
static double wait_users_gone(void)
{
    uint64_t t0 = aw_clock_mono_ms();
    while (user_keys() > 0 && aw_clock_mono_ms() - t0 < 30000)
        aw_clock_sleep_ms(100, NULL);
    return (double)(aw_clock_mono_ms() - t0) / 1000.0;
}

/* One backlog: USERS users pending (checked: their state is kept), drained (their state
 * expires within the retention), gone. Returns used_memory while pending; *drain_s, *gone_s
 * get the times. */
static long long cycle(int round, int users, double *drain_s, double *gone_s)
{
    struct aw_store *s = store();
    AW_CHECK_INT_EQ(ingest(s, 0, users, 100000 * (uint64_t)round), 2 * (size_t)users);
    aw_store_free(s); /* (its connection's buffers are not the data) */
    long long m = settled_memory();
    AW_CHECK_INT_EQ(int_cmd("TTL", "aw:{" ACCT "}:u:user7@example.com"), -1); /* kept */
    AW_CHECK_INT_EQ(user_keys(), users);
    s = store();
    uint64_t t0 = aw_clock_mono_ms();
    AW_CHECK_INT_EQ(drain_all(s), 3 * (size_t)users);
    aw_store_free(s);
    *drain_s = (double)(aw_clock_mono_ms() - t0) / 1000.0;
    char last[64];
    snprintf(last, sizeof last, "aw:{" ACCT "}:u:user%d@example.com", users - 1);
    long long ttl = int_cmd("TTL", last);
    AW_CHECK_MSG(ttl >= 1 && ttl <= RETENTION_S, "TTL after the last ack %lld", ttl);
    *gone_s = wait_users_gone();
    AW_CHECK_INT_EQ(user_keys(), 0);
    return m;
}

int main(void)
{
    g_url = getenv("AW_TEST_REDIS_URL");
    if (!g_url || !*g_url) {
        fprintf(stderr, "AW_TEST_REDIS_URL is not set\n");
        return 2;
    }
    char err[256];
    g_r = aw_redis_new(g_url, 2000, 10000, err, sizeof err);
    AW_CHECK_MSG(g_r != NULL, "%s", err);
    if (!g_r)
        return aw_test_done();
    const char *flush[1] = {"FLUSHALL"};
    struct aw_redis_cmd c;
    if (cmd(&c, 1, flush))
        aw_redis_cmd_clear(&c);
    struct aw_store *s = store();
    AW_CHECK_INT_EQ(aw_store_ping(s), AW_OK); /* loads the scripts */
    aw_store_free(s);
    long long m_empty = settled_memory();
    print_memory("empty");

    /* 1. a small backlog: the account's own keys appear, and Redis's own buffers grow on the
     *    first script calls (by a few hundred KB, whatever the backlog: see 2) */
    double drain_s, gone_s;
    (void)cycle(1, 10, &drain_s, &gone_s);
    long long m_small = settled_memory();
    char *keys_small = key_set();
    /* 2. a backlog: its script calls take more arguments, nothing else may stay */
    (void)cycle(2, USERS, &drain_s, &gone_s);
    long long m0 = settled_memory();
    char *keys0 = key_set();
    print_memory("baseline");
    AW_CHECK_MSG(strcmp(keys_small, keys0) == 0, "keys after 10 users:\n%s\nafter %d:\n%s",
                 keys_small, USERS, keys0);
    AW_CHECK_MSG(m0 - m_small <= 2 * TOLERANCE_B,
                 "a backlog of %d users left %lld bytes more "
                 "than one of 10",
                 USERS, m0 - m_small);

    /* 3. the same backlog again, measured */
    long long m1 = cycle(3, USERS, &drain_s, &gone_s);
    printf("empty (scripts loaded)              %lld bytes\n", m_empty);
    printf("after a backlog of 10 users         %lld bytes (%+lld: the account's keys, Redis's "
           "buffers)\n",
           m_small, m_small - m_empty);
    printf("after a backlog of %d users       %lld bytes (%+lld: larger argument arrays) = "
           "baseline\n",
           USERS, m0, m0 - m_small);
    printf("with %d pending changes           %lld bytes (+%lld, %lld bytes per change)\n",
           2 * USERS, m1, m1 - m0, (m1 - m0) / (2 * USERS));
    printf("drained in %.1f s; every user's state gone %.1f s later (retention %d s)\n", drain_s,
           gone_s, RETENTION_S);

    /* 4. memory and keys back to the baseline */
    long long m2 = settled_memory();
    char *keys2 = key_set();
    print_memory("after");
    AW_CHECK_MSG(strcmp(keys0, keys2) == 0, "keys before:\n%s\nkeys after:\n%s", keys0, keys2);
    printf("after drain + retention             %lld bytes (%+lld against the baseline; "
           "tolerance %d)\n",
           m2, m2 - m0, TOLERANCE_B);
    AW_CHECK_MSG(llabs(m2 - m0) <= TOLERANCE_B, "used_memory %lld, baseline %lld", m2, m0);
    AW_CHECK_MSG(m1 - m0 > 50 * TOLERANCE_B, "the backlog grew used_memory by only %lld", m1 - m0);
    free(keys_small);
    free(keys0);
    free(keys2);
    aw_redis_free(g_r);
    return aw_test_done();
}
