/* bench_ingest.c -- throughput of the ingest path, each figure as a ratio against a baseline
 * measured in the same run (absolute times vary with the machine; ratios much less):
 *
 *  1. decode + settings + map of one membership message (3 profiles x 2 audiences, attributes,
 *     phone, consent) vs. the baseline of only parsing the same bytes with json_loadb: how much
 *     the full validation and mapping costs over bare JSON parsing.
 *  2. (with AW_BENCH_REDIS_URL) writing N changes to Redis through one pipelined batch vs. the
 *     baseline of one EVALSHA round trip per change: what pipelining buys.
 *
 * Usage: bench_ingest [messages] ; bench/run.sh starts a scratch redis-server for part 2. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/phone/phone.h"
#include "worker/ingest/account.h"
#include "worker/ingest/event.h"
#include "worker/ingest/map.h"
#include "worker/store/change.h"
#include "worker/store/ingest_ops.h"
#include "worker/store/store.h"

int main(int argc, char **argv);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *message(int n)
{
    char *buf = malloc(8192);
    int len = snprintf(
        buf, 8192,
        "{\"type\":\"audience_membership_change_request\",\"id\":\"bench-%d\",\"timestamp_ms\":%"
        "lld,"
        "\"firehose_version\":\"3.2.0\",\"account\":{\"account_id\":42,\"account_settings\":"
        "{\"apiKey\":\"pk_bench\",\"alternateIdentifier\":\"customer\"}},\"user_profiles\":[",
        n, 1714592744000LL + n);
    for (int p = 0; p < 3; p++) {
        len += snprintf(
            buf + len, 8192 - (size_t)len,
            "%s{\"mpid\":\"%d\",\"user_identities\":[{\"type\":\"email\",\"encoding\":\"raw\","
            "\"value\":\" User%d.%d@Example.COM \"},{\"type\":\"customer\",\"encoding\":\"raw\","
            "\"value\":\"c-%d\"},{\"type\":\"mobile_number\",\"encoding\":\"raw\",\"value\":"
            "\"020 7946 %04d\"}],\"consent_state\":{\"gdpr\":{\"marketing\":{\"consented\":true,"
            "\"timestamp_unixtime_ms\":1714592000000}}},\"audiences\":["
            "{\"audience_id\":7,\"audience_name\":\"Bench\",\"action\":\"add\","
            "\"audience_subscription_settings\":{\"consentMapping\":\"[{\\\"map\\\":"
            "\\\"marketing\\\","
            "\\\"value\\\":\\\"email_marketing\\\"}]\"},\"user_attributes\":["
            "{\"key\":\"$FirstName\",\"value\":\"Ann\",\"action\":\"upsert\"},"
            "{\"key\":\"$Country\",\"value\":\"GB\",\"action\":\"upsert\"},"
            "{\"key\":\"$City\",\"value\":\"London\",\"action\":\"upsert\"},"
            "{\"key\":\"tier\",\"value\":\"gold\",\"action\":\"upsert\"},"
            "{\"key\":\"tags\",\"list_value\":[\"a\",\"b\"],\"action\":\"upsert\"}]},"
            "{\"audience_id\":8,\"audience_name\":\"Other\",\"action\":\"delete\"}]}",
            p ? "," : "", n * 3 + p, n, p, n, (n * 3 + p) % 10000);
    }
    snprintf(buf + len, 8192 - (size_t)len, "]}");
    return buf;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000; /* bench input size, not external data */
    if (n < 100)
        n = 100;
    if (aw_phone_init() != AW_OK)
        return 1;
    char **msgs = calloc((size_t)n, sizeof *msgs);
    for (int i = 0; i < n; i++)
        msgs[i] = message(i);

    /* Baseline: bare JSON parse. */
    double t0 = now_s();
    size_t sink = 0;
    for (int i = 0; i < n; i++) {
        json_t *j = json_loadb(msgs[i], strlen(msgs[i]), 0, NULL);
        sink += json_object_size(j);
        json_decref(j);
    }
    double parse_s = now_s() - t0;

    /* Ours: decode + validate + account settings + map (+ phone). */
    size_t changes = 0;
    struct aw_change *keep = calloc(2000, sizeof *keep);
    size_t n_keep = 0;
    t0 = now_s();
    for (int i = 0; i < n; i++) {
        struct aw_event ev;
        enum aw_event_reason reason;
        struct aw_account acct;
        struct aw_map_result res;
        if (aw_event_decode(msgs[i], strlen(msgs[i]), &ev, &reason, NULL, 0) != AW_OK)
            return 1;
        aw_account_resolve(NULL, ev.account_id, ev.account_settings, ev.n_account_settings, &acct);
        if (aw_map_event(&ev, &acct, &res) != AW_OK)
            return 1;
        changes += res.n_changes;
        for (size_t k = 0; k < res.n_changes && n_keep < 2000; k++)
            aw_change_copy(&keep[n_keep++], &res.changes[k]);
        aw_map_result_clear(&res);
        aw_account_clear(&acct);
        aw_event_clear(&ev);
    }
    double map_s = now_s() - t0;
    printf("messages                          %d (%zu changes, %zu bytes each)\n", n, changes,
           strlen(msgs[0]));
    printf("baseline json_loadb only          %.0f msg/s\n", n / parse_s);
    printf("decode+settings+map               %.0f msg/s  (%.0f changes/s)\n", n / map_s,
           (double)changes / map_s);
    printf("ratio map/parse time              %.2fx  (full pipeline cost vs bare JSON parse)\n",
           map_s / parse_s);

    const char *url = getenv("AW_BENCH_REDIS_URL");
    if (url && *url) {
        char err[256];
        struct aw_store_config sc = {
            .url = url, .flush_max_queue = 1000000000, .flush_max_age_ms = 3600000};
        struct aw_store *st = aw_store_new(&sc, err, sizeof err);
        if (!st || aw_store_ping(st) != AW_OK) {
            fprintf(stderr, "redis: %s\n", st ? aw_store_errstr(st) : err);
            return 1;
        }
        /* Baseline: one round trip per change (versions bumped so every apply does work). */
        struct aw_store_result r;
        t0 = now_s();
        for (size_t k = 0; k < n_keep; k++) {
            keep[k].version_ms += 1000000;
            if (aw_store_apply(st, &keep[k], 1714592744000ull, &r) != AW_OK)
                return 1;
        }
        double single_s = now_s() - t0;
        struct aw_store_batch *b = aw_store_batch_new();
        t0 = now_s();
        for (size_t k = 0; k < n_keep; k++) {
            keep[k].version_ms += 1000000;
            aw_store_batch_add_apply(b, &keep[k], NULL);
            if (aw_store_batch_count(b) == 500 || k + 1 == n_keep) {
                if (aw_store_batch_exec(st, b, 1714592744000ull) != AW_OK)
                    return 1;
                aw_store_batch_reset(b);
            }
        }
        double batch_s = now_s() - t0;
        printf("redis apply, one round trip each  %.0f changes/s\n", (double)n_keep / single_s);
        printf("redis apply, pipelined by 500     %.0f changes/s\n", (double)n_keep / batch_s);
        printf("ratio single/pipelined time       %.2fx  (what batching the Kafka poll buys)\n",
               single_s / batch_s);
        aw_store_batch_free(b);
        aw_store_free(st);
    }
    for (size_t k = 0; k < n_keep; k++)
        aw_change_clear(&keep[k]);
    free(keep);
    for (int i = 0; i < n; i++)
        free(msgs[i]);
    free(msgs);
    return sink == 0;
}
