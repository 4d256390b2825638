/* aw_flush_test -- driver of tests/integration/test_flush.sh.
 *
 *   aw_flush_test seed <redis-url>       reads changes from stdin, one per line, and applies them
 *                                        with aw_store_apply (max queue 1: due at once):
 *       key <account> <api key>          aw_store_account_put
 *       <account> <audience> <name> add|delete|update <email> [token...]
 *          tokens: phone=<e164>  set:<path>=<json>  unset:<path>  sub:email|sms  unsub:email|sms
 *   aw_flush_test run <redis-url> <klaviyo-url> <brokers> <dlq-topic> <timeout-s>
 *                 [--config FILE] [--ignore-account A]... [--in-flight N]
 *       runs the flusher thread (aw_flusher_start) until no stream of a non-ignored account is
 *       due or in flight, then stops it (lease released); exit 0, or 1 on timeout. --in-flight
 *       is AW_KLAVIYO_MAX_IN_FLIGHT (default 1). */
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/mem.h"
#include "worker/flush/flusher.h"
#include "worker/ingest/account.h"
#include "worker/ingest/config_file.h"
#include "worker/ops/metrics.h"
#include "worker/settings.h"
#include "worker/store/account_ops.h"
#include "worker/store/change.h"
#include "worker/store/flush_ops.h"
#include "worker/store/ingest_ops.h"
#include "worker/store/store.h"

static int seed(const char *url)
{
    struct aw_store_config cfg = {.url = url, .flush_max_queue = 1, .flush_max_age_ms = 3600000};
    char err[256];
    struct aw_store *s = aw_store_new(&cfg, err, sizeof err);
    if (!s) {
        fprintf(stderr, "store: %s\n", err);
        return 2;
    }
    char line[4096];
    uint64_t base = aw_clock_unix_ms();
    unsigned n = 0;
    int rc = 0;
    while (fgets(line, sizeof line, stdin)) {
        char *save = NULL, *tok[64];
        size_t nt = 0;
        for (char *t = strtok_r(line, " \t\r\n", &save); t && nt < 64;
             t = strtok_r(NULL, " \t\r\n", &save))
            tok[nt++] = t;
        if (nt == 0 || tok[0][0] == '#')
            continue;
        if (strcmp(tok[0], "key") == 0 && nt == 3) {
            if (aw_store_account_put(s, tok[1], tok[2], aw_clock_unix_ms()) != AW_OK) {
                fprintf(stderr, "account_put failed\n");
                rc = 1;
            }
            continue;
        }
        if (nt < 5) {
            fprintf(stderr, "bad line\n");
            rc = 1;
            continue;
        }
        struct aw_change c;
        memset(&c, 0, sizeof c);
        c.account_id = aw_strdup(tok[0]);
        c.audience_id = aw_strdup(tok[1]);
        c.audience_name = aw_strdup(tok[2]);
        for (char *p = c.audience_name; *p; p++)
            if (*p == '_')
                *p = ' ';
        c.action = strcmp(tok[3], "add") == 0      ? AW_CHANGE_ADD
                   : strcmp(tok[3], "delete") == 0 ? AW_CHANGE_DELETE
                                                   : AW_CHANGE_ATTRIBUTE_UPDATE;
        c.email = aw_strdup(tok[4]);
        char id[32];
        snprintf(id, sizeof id, "ev-%u", n);
        c.event_id = aw_strdup(id);
        c.version_ms = base + n;
        n++;
        c.attrs = aw_calloc(nt, sizeof *c.attrs);
        c.consents = aw_calloc(2, sizeof *c.consents);
        for (size_t i = 5; i < nt; i++) {
            char *t = tok[i];
            if (strncmp(t, "phone=", 6) == 0) {
                c.phone_e164 = aw_strdup(t + 6);
            } else if (strncmp(t, "set:", 4) == 0 && strchr(t, '=')) {
                char *eq = strchr(t, '=');
                c.attrs[c.n_attrs].path = aw_strndup(t + 4, (size_t)(eq - t - 4));
                c.attrs[c.n_attrs++].value_json = aw_strdup(eq + 1);
            } else if (strncmp(t, "unset:", 6) == 0) {
                c.attrs[c.n_attrs++].path = aw_strdup(t + 6);
            } else if (strncmp(t, "sub:", 4) == 0 || strncmp(t, "unsub:", 6) == 0) {
                bool sub = t[0] == 's';
                const char *ch = strchr(t, ':') + 1;
                struct aw_change_consent *k = &c.consents[c.n_consents++];
                k->channel = strcmp(ch, "sms") == 0 ? AW_CHANNEL_SMS : AW_CHANNEL_EMAIL;
                k->subscribe = sub;
                /* the consent's own timestamp is its version: later lines are newer */
                k->has_consented_at = true;
                k->consented_at_unix_ms = c.version_ms - 60000;
            }
        }
        /* attrs sorted by path (change.h) */
        for (size_t a = 1; a < c.n_attrs; a++)
            for (size_t b = a; b > 0 && strcmp(c.attrs[b - 1].path, c.attrs[b].path) > 0; b--) {
                struct aw_change_attr tmp = c.attrs[b];
                c.attrs[b] = c.attrs[b - 1];
                c.attrs[b - 1] = tmp;
            }
        struct aw_store_result res;
        if (aw_store_apply(s, &c, aw_clock_unix_ms(), &res) != AW_OK) {
            fprintf(stderr, "apply failed: %s\n", aw_store_errstr(s));
            rc = 1;
        }
        aw_change_clear(&c);
    }
    aw_store_free(s);
    return rc;
}

static atomic_int g_stop; /* never set by a signal here: the run ends on its own */

static bool ignored(const char *account, char **ign, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(account, ign[i]) == 0)
            return true;
    return false;
}

static int run(int argc, char **argv)
{
    const char *redis = argv[2], *klaviyo = argv[3], *brokers = argv[4], *topic = argv[5];
    long timeout_s = strtol(argv[6], NULL, 10);
    const char *config = NULL;
    char *ign[16];
    size_t n_ign = 0;
    unsigned long in_flight = 1;
    for (int i = 7; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--config") == 0)
            config = argv[i + 1];
        else if (strcmp(argv[i], "--in-flight") == 0)
            in_flight = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--ignore-account") == 0 && n_ign < 16)
            ign[n_ign++] = argv[i + 1];
    }
    char err[2048];
    struct aw_config_file *accounts = NULL;
    if (config && aw_config_file_load(config, NULL, NULL, &accounts, err, sizeof err) != AW_OK) {
        fprintf(stderr, "config: %s\n", err);
        return 2;
    }
    struct aw_settings st;
    memset(&st, 0, sizeof st);
    st.redis.url = (char *)redis;
    st.redis.connect_timeout_ms = 2000;
    st.redis.timeout_ms = 5000;
    st.klaviyo.base_url = (char *)klaviyo;
    st.klaviyo.revision = (char *)"2026-07-15";
    st.klaviyo.connect_timeout_ms = 2000;
    st.klaviyo.timeout_ms = 10000;
    st.klaviyo.retry_base_ms = 100;
    st.klaviyo.retry_max_ms = 2000;
    st.klaviyo.job_poll_ms = 150;
    st.klaviyo.max_in_flight = in_flight;
    st.flush.max_queue = 1;
    st.flush.max_age_s = 3600;
    st.flush.tick_ms = 100;
    st.leader.enabled = true;
    st.leader.lease_ttl_ms = 3000;
    st.kafka.brokers = (char *)brokers;
    st.kafka.dlq_topic = (char *)topic;
    st.process.instance_id = (char *)"aw-flush-test";

    struct aw_store_config sc = {.url = redis, .flush_max_queue = 1, .flush_max_age_ms = 3600000};
    struct aw_store *s = aw_store_new(&sc, err, sizeof err);
    struct aw_flusher *f = aw_flusher_start(&st, accounts, &g_stop, err, sizeof err);
    if (!f || !s) {
        fprintf(stderr, "start: %s\n", err);
        aw_store_free(s);
        aw_config_file_free(accounts);
        return 2;
    }
    uint64_t deadline = aw_clock_mono_ms() + (uint64_t)timeout_s * 1000u;
    int rc = 1;
    int quiet = 0;
    while (aw_clock_mono_ms() < deadline) {
        aw_clock_sleep_ms(200, NULL);
        char **due = NULL;
        size_t n = 0;
        if (aw_store_due_accounts(s, aw_clock_unix_ms() + 3600000u, 1000, &due, &n) != AW_OK)
            continue;
        size_t busy = 0;
        for (size_t i = 0; i < n; i++) {
            if (!ignored(due[i], ign, n_ign))
                busy++;
            free(due[i]);
        }
        free(due);
        quiet = busy == 0 ? quiet + 1 : 0;
        if (quiet >= 3) { /* stable for 0.6 s */
            rc = 0;
            break;
        }
    }
    /* what the leader still holds once every non-ignored stream is done (paused accounts give
     * their batches back) */
    long long held_jobs = aw_metrics_get(AW_M_FLUSH_JOBS);
    long long held_bytes = aw_metrics_get(AW_M_FLUSH_BATCH_BYTES);
    atomic_store(&g_stop, 1);
    aw_flusher_join(f);
    printf(
        "leader=%lld requests=%lld rate_limited=%lld errors=%lld uploaded=%lld removed=%lld "
        "flushes=%lld dead_letters=%lld paused=%lld held_jobs=%lld held_bytes=%lld "
        "jobs=%lld job_failed_records=%lld backlog=%lld oldest_age_ms=%lld\n",
        (long long)aw_metrics_get(AW_M_LEADER), (long long)aw_metrics_get(AW_M_KLAVIYO_REQUESTS),
        (long long)aw_metrics_get(AW_M_KLAVIYO_RATE_LIMITED),
        (long long)aw_metrics_get(AW_M_KLAVIYO_ERRORS),
        (long long)aw_metrics_get(AW_M_PROFILES_UPLOADED),
        (long long)aw_metrics_get(AW_M_PROFILES_REMOVED), (long long)aw_metrics_get(AW_M_FLUSHES),
        (long long)aw_metrics_family_total(AW_MF_DEAD_LETTERS),
        (long long)aw_metrics_get(AW_M_ACCOUNTS_PAUSED), held_jobs, held_bytes,
        (long long)aw_metrics_family_total(AW_MF_KLAVIYO_JOBS),
        (long long)aw_metrics_get(AW_M_KLAVIYO_JOB_FAILED),
        (long long)(aw_metrics_get(AW_M_PENDING_CHANGES) + aw_metrics_get(AW_M_INFLIGHT_CHANGES)),
        (long long)aw_metrics_get(AW_M_OLDEST_PENDING_AGE_MS));
    if (rc != 0)
        fprintf(stderr, "timeout: audiences still due or in flight\n");
    aw_store_free(s);
    aw_config_file_free(accounts);
    return rc;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && strcmp(argv[1], "seed") == 0)
        return seed(argv[2]);
    if (argc >= 7 && strcmp(argv[1], "run") == 0)
        return run(argc, argv);
    fprintf(stderr, "usage: see the header of tests/tools/aw_flush_test.c\n");
    return 2;
}
