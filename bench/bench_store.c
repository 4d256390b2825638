/* bench_store.c -- one driver, built from two trees, that writes the same input into Redis:
 *
 *   bench_store store [messages] [accounts] [pass]   the tree's own store (aw_store_batch_*)
 *   bench_store bare  [messages] [accounts] [pass]   a one-line HSET script per change (v2 only)
 *
 * The input is generated here, so both trees see the same bytes: `messages` audience membership
 * messages (default 2400, i.e. 14,400 changes), each with 3 profiles (email, phone, customer id,
 * email consent) x 2 audiences ("add", 7 attributes each), spread over `accounts` accounts
 * (default 5). `pass` > 0 sends the same users again with newer versions and one attribute
 * changed (the update path). Each tree decodes and maps the messages with its own code (not
 * timed), then the changes go to Redis in pipelines of 500 messages (AW_CONSUMER_BATCH_MAX's
 * default), as the consumer loop sends them.
 *
 * It prints `key=value` lines (changes, applied, stale, wall_s, profile_json_bytes); the Redis
 * CPU and memory it cost are read from INFO by bench/bench_store.sh around the run, so the same
 * figures come out of both trees. "bare" is the baseline of the cheapest script Redis can run
 * per change: EVALSHA of `return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])`, one per
 * change, on one connection, into as many user keys as the store writes (one per account and
 * email), pipelined the same way.
 *
 * The tree is recognised by its headers: worker/store/ingest_ops.h (v2) or worker/store.h (v1,
 * git revision ac6d0a8). AW_BENCH_REDIS_URL names the Redis (required). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/phone/phone.h"

#if defined(__has_include)
#if __has_include("worker/store/ingest_ops.h")
#define BENCH_V2 1
#endif
#endif

#ifdef BENCH_V2
#include "worker/ingest/account.h"
#include "worker/ingest/event.h"
#include "worker/ingest/map.h"
#include "worker/store/change.h"
#include "worker/store/client.h"
#include "worker/store/ingest_ops.h"
#include "worker/store/store.h"
#else
#include "worker/account.h"
#include "worker/change.h"
#include "worker/event.h"
#include "worker/map.h"
#include "worker/store.h"
#endif

#define MSGS_PER_PIPELINE 500
#define PROFILES 3
#define NOW_UNIX_MS 1714592744000ull

int main(int argc, char **argv);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Message n of a pass; *profile_bytes gets the JSON size of its user_profiles[] elements. */
static char *message(int n, int accounts, int pass, size_t *profile_bytes)
{
    json_t *profiles = json_array();
    for (int p = 0; p < PROFILES; p++) {
        int u = n * PROFILES + p;
        char email[64], phone[32], cust[32], last[32], score[16];
        snprintf(email, sizeof email, " User%d@Example.COM ", u);
        snprintf(phone, sizeof phone, "020 7946 %04d", u % 10000);
        snprintf(cust, sizeof cust, "c-%d", u);
        snprintf(last, sizeof last, "Number %d", u);
        snprintf(score, sizeof score, "%d", (u * 7 + pass) % 1000);
        json_t *attrs = json_pack(
            "[{s:s,s:s,s:s},{s:s,s:s,s:s},{s:s,s:s,s:s},{s:s,s:s,s:s},{s:s,s:s,s:s},"
            "{s:s,s:s,s:s},{s:s,s:[s,s],s:s}]",
            "key", "$FirstName", "value", "Ann", "action", "upsert", "key", "$LastName", "value",
            last, "action", "upsert", "key", "$Country", "value", "GB", "action", "upsert", "key",
            "$City", "value", "London", "action", "upsert", "key", "tier", "value",
            pass % 2 ? "silver" : "gold", "action", "upsert", "key", "score", "value", score,
            "action", "upsert", "key", "tags", "list_value", "a", "b", "action", "upsert");
        json_t *auds = json_array();
        for (int a = 0; a < 2; a++) {
            json_array_append_new(
                auds, json_pack("{s:i,s:s,s:s,s:{s:s},s:O}", "audience_id", 7 + a * 10 + n % 2,
                                "audience_name", a ? "Other" : "Bench", "action", "add",
                                "audience_subscription_settings", "consentMapping",
                                "[{\"map\":\"marketing\",\"value\":\"email_marketing\"}]",
                                "user_attributes", attrs));
        }
        json_decref(attrs);
        json_t *prof = json_pack(
            "{s:s,s:[{s:s,s:s,s:s},{s:s,s:s,s:s},{s:s,s:s,s:s}],s:{s:{s:{s:b,s:I}}},s:o}", "mpid",
            cust, "user_identities", "type", "email", "encoding", "raw", "value", email, "type",
            "customer", "encoding", "raw", "value", cust, "type", "mobile_number", "encoding",
            "raw", "value", phone, "consent_state", "gdpr", "marketing", "consented", 1,
            "timestamp_unixtime_ms", (json_int_t)1714592000000LL, "audiences", auds);
        char *pj = json_dumps(prof, JSON_COMPACT);
        *profile_bytes += strlen(pj);
        free(pj);
        json_array_append_new(profiles, prof);
    }
    char id[48], acct[24];
    snprintf(id, sizeof id, "bench-%d-%d", pass, n);
    snprintf(acct, sizeof acct, "%d", 4200 + n % accounts);
    json_t *msg = json_pack(
        "{s:s,s:s,s:I,s:s,s:{s:s,s:{s:s,s:s}},s:o}", "type", "audience_membership_change_request",
        "id", id, "timestamp_ms", (json_int_t)(1714592744000LL + pass * 10000000LL + n),
        "firehose_version", "3.2.0", "account", "account_id", acct, "account_settings", "apiKey",
        "pk_bench", "alternateIdentifier", "customer", "user_profiles", profiles);
    char *s = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    return s;
}

/* Maps every message; changes of message i are (*out)[first[i] .. first[i + 1]). */
static size_t map_all(char **msgs, int n, struct aw_change **out, size_t *first)
{
    size_t cap = (size_t)n * PROFILES * 2, k = 0;
    struct aw_change *ch = calloc(cap, sizeof *ch);
    for (int i = 0; i < n; i++) {
        first[i] = k;
        struct aw_event ev;
        enum aw_event_reason reason;
        struct aw_account acct;
        struct aw_map_result res;
        if (aw_event_decode(msgs[i], strlen(msgs[i]), &ev, &reason, NULL, 0) != AW_OK) {
            fprintf(stderr, "message %d does not decode (reason %d)\n", i, (int)reason);
            exit(1);
        }
        aw_account_resolve(NULL, ev.account_id, ev.account_settings, ev.n_account_settings, &acct);
        if (aw_map_event(&ev, &acct, &res) != AW_OK) {
            fprintf(stderr, "message %d does not map\n", i);
            exit(1);
        }
        for (size_t j = 0; j < res.n_changes; j++) {
            if (k == cap) {
                cap *= 2;
                ch = realloc(ch, cap * sizeof *ch);
            }
            aw_change_copy(&ch[k++], &res.changes[j]);
        }
        aw_map_result_clear(&res);
        aw_account_clear(&acct);
        aw_event_clear(&ev);
    }
    first[n] = k;
    *out = ch;
    return k;
}

static int run_store(const char *url, struct aw_change *ch, const size_t *first, int n)
{
    char err[256];
    struct aw_store_config sc = {
        .url = url, .flush_max_queue = 1000000000, .flush_max_age_ms = 3600000};
    struct aw_store *st = aw_store_new(&sc, err, sizeof err);
    if (!st || aw_store_ping(st) != AW_OK) {
        fprintf(stderr, "redis: %s\n", st ? aw_store_errstr(st) : err);
        return 1;
    }
    struct aw_store_batch *b = aw_store_batch_new();
    size_t applied = 0, stale = 0, other = 0;
    double t0 = now_s();
    for (int i = 0; i < n; i += MSGS_PER_PIPELINE) {
        int end = i + MSGS_PER_PIPELINE < n ? i + MSGS_PER_PIPELINE : n;
        aw_store_batch_reset(b);
        for (size_t k = first[i]; k < first[end]; k++) {
            if (aw_store_batch_add_apply(b, &ch[k], NULL) != AW_OK) {
                fprintf(stderr, "change %zu refused by the batch\n", k);
                return 1;
            }
        }
        if (aw_store_batch_exec(st, b, NOW_UNIX_MS) != AW_OK) {
            fprintf(stderr, "exec: %s\n", aw_store_errstr(st));
            return 1;
        }
        for (size_t k = 0; k < aw_store_batch_count(b); k++) {
            const struct aw_store_result *r = aw_store_batch_result(b, k);
            if (r->err != AW_OK)
                other++;
            else if (r->status == AW_STORE_APPLIED)
                applied++;
            else
                stale++;
        }
    }
    double wall = now_s() - t0;
    printf("applied=%zu\nstale=%zu\nfailed=%zu\nwall_s=%.6f\n", applied, stale, other, wall);
    aw_store_batch_free(b);
    aw_store_free(st);
    return other != 0;
}

#ifdef BENCH_V2
static int run_bare(const char *url, struct aw_change *ch, const size_t *first, int n)
{
    char err[256];
    struct aw_redis *r = aw_redis_new(url, 2000, 5000, err, sizeof err);
    if (!r) {
        fprintf(stderr, "redis: %s\n", err);
        return 1;
    }
    const char *load[3] = {"SCRIPT", "LOAD",
                           "return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])"};
    struct aw_redis_cmd lc = {.script = -1, .argc = 3, .argv = load};
    if (aw_redis_exec(r, &lc, 1) != AW_OK || lc.err != AW_OK || lc.reply.type != AW_REPLY_STR) {
        fprintf(stderr, "SCRIPT LOAD: %s\n", aw_redis_errstr(r));
        return 1;
    }
    char sha[64];
    snprintf(sha, sizeof sha, "%s", lc.reply.str);
    aw_redis_cmd_clear(&lc);

    size_t total = first[n], failed = 0;
    char(*keys)[600] = calloc(total, sizeof *keys);
    char(*fields)[160] = calloc(total, sizeof *fields);
    char(*vals)[64] = calloc(total, sizeof *vals);
    const char **argv = calloc(total * 6, sizeof *argv);
    struct aw_redis_cmd *cmds = calloc(first[n] ? first[n] : 1, sizeof *cmds);
    for (size_t k = 0; k < total; k++) {
        snprintf(keys[k], sizeof keys[k], "bare:{%s}:u:%s", ch[k].account_id, ch[k].email);
        snprintf(fields[k], sizeof fields[k], "m:%s", ch[k].audience_id);
        snprintf(vals[k], sizeof vals[k], "%llu:%s", (unsigned long long)ch[k].version_ms,
                 ch[k].event_id);
        const char **a = &argv[6 * k];
        a[0] = "EVALSHA";
        a[1] = sha;
        a[2] = "1";
        a[3] = keys[k];
        a[4] = fields[k];
        a[5] = vals[k];
    }
    double t0 = now_s();
    for (int i = 0; i < n; i += MSGS_PER_PIPELINE) {
        int end = i + MSGS_PER_PIPELINE < n ? i + MSGS_PER_PIPELINE : n;
        size_t m = first[end] - first[i];
        for (size_t k = 0; k < m; k++) {
            size_t c = first[i] + k;
            cmds[k] = (struct aw_redis_cmd){
                .script = -1, .route = keys[c], .argc = 6, .argv = &argv[6 * c]};
        }
        if (aw_redis_exec(r, cmds, m) != AW_OK) {
            fprintf(stderr, "exec: %s\n", aw_redis_errstr(r));
            return 1;
        }
        for (size_t k = 0; k < m; k++) {
            failed += cmds[k].err != AW_OK;
            aw_redis_cmd_clear(&cmds[k]);
        }
    }
    double wall = now_s() - t0;
    printf("applied=%zu\nstale=0\nfailed=%zu\nwall_s=%.6f\n", total - failed, failed, wall);
    free(cmds);
    free(argv);
    free(vals);
    free(fields);
    free(keys);
    aw_redis_free(r);
    return failed != 0;
}
#endif

int main(int argc, char **argv)
{
    /* bench arguments, not external data */
    const char *mode = argc > 1 ? argv[1] : "store";
    int n = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 2400;
    int accounts = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 5;
    int pass = argc > 4 ? (int)strtol(argv[4], NULL, 10) : 0;
    const char *url = getenv("AW_BENCH_REDIS_URL");
    if (n < 1 || accounts < 1 || pass < 0 || !url || !*url ||
        (strcmp(mode, "store") != 0 && strcmp(mode, "bare") != 0)) {
        fprintf(stderr, "usage: AW_BENCH_REDIS_URL=redis://... bench_store store|bare "
                        "[messages] [accounts] [pass]\n");
        return 2;
    }
    if (aw_phone_init() != AW_OK)
        return 1;
    char **msgs = calloc((size_t)n, sizeof *msgs);
    size_t profile_bytes = 0, msg_bytes = 0;
    for (int i = 0; i < n; i++) {
        msgs[i] = message(i, accounts, pass, &profile_bytes);
        msg_bytes += strlen(msgs[i]);
    }
    size_t *first = calloc((size_t)n + 1, sizeof *first);
    struct aw_change *ch = NULL;
    size_t changes = map_all(msgs, n, &ch, first);
    printf("tree=%s\nmode=%s\nmessages=%d\naccounts=%d\npass=%d\nchanges=%zu\n",
#ifdef BENCH_V2
           "v2",
#else
           "v1",
#endif
           mode, n, accounts, pass, changes);
    printf("message_json_bytes=%.1f\nprofile_json_bytes=%.1f\n", (double)msg_bytes / n,
           (double)profile_bytes / ((double)n * PROFILES));
    fflush(stdout);

    int rc = 2;
    if (strcmp(mode, "store") == 0)
        rc = run_store(url, ch, first, n);
#ifdef BENCH_V2
    else
        rc = run_bare(url, ch, first, n);
#else
    else
        fprintf(stderr, "bare: only built from the v2 tree\n");
#endif
    for (size_t k = 0; k < changes; k++)
        aw_change_clear(&ch[k]);
    free(ch);
    free(first);
    for (int i = 0; i < n; i++)
        free(msgs[i]);
    free(msgs);
    return rc;
}
