/* metrics.c -- the metrics registry (see metrics.h): the one table of names, help texts and
 * types, atomic values, the labelled series, and the text exposition. */
#include "worker/ops/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "common/mem.h"

static const struct {
    const char *name;
    const char *help;
    bool gauge;
} defs[AW_M__COUNT] = {
    [AW_M_RECORDS_CONSUMED] = {"aw_records_consumed_total", "Kafka records polled", false},
    [AW_M_RECORDS_DONE] = {"aw_records_done_total", "Kafka records whose offset was stored", false},
    [AW_M_RECORDS_REWOUND] = {"aw_records_rewound_total",
                              "Kafka records re-read after a transient failure", false},
    [AW_M_CHANGES_APPLIED] = {"aw_changes_applied_total", "Changes written to the pending store",
                              false},
    [AW_M_CHANGES_STALE] = {"aw_changes_stale_total",
                            "Changes ignored as older than the stored version", false},
    [AW_M_AUDIENCE_UPDATES] = {"aw_audience_updates_total",
                               "Audience subscription messages applied", false},
    [AW_M_STORE_ERRORS] = {"aw_store_errors_total", "Redis failures", false},
    [AW_M_KLAVIYO_REQUESTS] = {"aw_klaviyo_requests_total", "HTTP requests sent to Klaviyo", false},
    [AW_M_KLAVIYO_RATE_LIMITED] = {"aw_klaviyo_rate_limited_total", "Klaviyo 429 answers", false},
    [AW_M_KLAVIYO_ERRORS] = {"aw_klaviyo_errors_total", "Klaviyo transport errors and 5xx answers",
                             false},
    [AW_M_PROFILES_UPLOADED] = {"aw_profiles_uploaded_total", "Profiles imported into lists",
                                false},
    [AW_M_PROFILES_REMOVED] = {"aw_profiles_removed_total", "Profiles removed from lists", false},
    [AW_M_FLUSHES] = {"aw_flushes_total", "Audience flushes completed", false},
    [AW_M_PARTITIONS_ASSIGNED] = {"aw_partitions_assigned",
                                  "Kafka partitions assigned to this replica", true},
    [AW_M_LEADER] = {"aw_leader", "1 while this replica holds the leader lease", true},
    [AW_M_STORE_UP] = {"aw_store_up", "1 while the last Redis operation succeeded", true},
    [AW_M_ACCOUNTS_PAUSED] = {"aw_accounts_paused", "Accounts paused after a 401/403 from Klaviyo",
                              true},
    [AW_M_DUE_AUDIENCES] = {"aw_due_audiences",
                            "Accounts with a stream due for a flush at the leader's last scan",
                            true},
    [AW_M_FLUSH_BATCH_BYTES] = {"aw_flush_batch_bytes",
                                "Bytes of the batches the leader holds in memory (bounded: "
                                "docs/flush.md)",
                                true},
    [AW_M_FLUSH_JOBS] = {"aw_flush_jobs",
                         "Stream flushes (audiences, account profiles) the leader is working on",
                         true},
    [AW_M_STORE_FULL] = {"aw_store_full",
                         "1 while Redis refuses ingest's writes for memory: ingest paused until "
                         "the leader drains",
                         true},
};

static const struct {
    const char *name;
    const char *help;
} family_defs[AW_MF__COUNT] = {
    [AW_MF_DEAD_LETTERS] = {"aw_dead_letters_total",
                            "Dead-letter records produced, by stage (decode, map, flush) and "
                            "reason"},
    [AW_MF_STORE_REFUSED] = {"aw_store_refused_total",
                             "Store operations Redis refused for their data, by stage and reason"},
};

static atomic_llong values[AW_M__COUNT];
static atomic_llong family_totals[AW_MF__COUNT];

#define MAX_SERIES 256
#define LABEL_MAX 64
struct series {
    enum aw_metric_family family;
    char stage[LABEL_MAX];
    char reason[LABEL_MAX];
    uint64_t count;
};
static struct series series[MAX_SERIES];
static size_t n_series;
static pthread_mutex_t series_lock = PTHREAD_MUTEX_INITIALIZER;

void aw_metrics_add(enum aw_metric m, uint64_t n)
{
    atomic_fetch_add(&values[m], (long long)n);
}

void aw_metrics_set(enum aw_metric m, int64_t value)
{
    atomic_store(&values[m], value);
}

int64_t aw_metrics_get(enum aw_metric m)
{
    return atomic_load(&values[m]);
}

/* Label values are restricted to [a-z0-9_.-] so the exposition never needs escaping and no
 * free text (which might carry personal data) can slip into a label. */
static void copy_label(char *dst, const char *src)
{
    size_t j = 0;
    for (const char *p = src ? src : ""; *p && j + 1 < LABEL_MAX; p++) {
        char c = *p;
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
            ok = true;
        }
        dst[j++] = ok ? c : '_';
    }
    dst[j] = '\0';
}

void aw_metrics_count(enum aw_metric_family f, const char *stage, const char *reason)
{
    AW_ASSERT(f >= 0 && f < AW_MF__COUNT);
    atomic_fetch_add(&family_totals[f], 1);
    char s[LABEL_MAX], r[LABEL_MAX];
    copy_label(s, stage);
    copy_label(r, reason);
    pthread_mutex_lock(&series_lock);
    for (bool folded = false;; folded = true) {
        for (size_t i = 0; i < n_series; i++) {
            if (series[i].family == f && strcmp(series[i].stage, s) == 0 &&
                strcmp(series[i].reason, r) == 0) {
                series[i].count++;
                pthread_mutex_unlock(&series_lock);
                return;
            }
        }
        /* The last AW_MF__COUNT slots are kept for the one folded series of each family. */
        if (folded || n_series + AW_MF__COUNT < MAX_SERIES) {
            AW_ASSERT(n_series < MAX_SERIES);
            series[n_series].family = f;
            memcpy(series[n_series].stage, s, sizeof s);
            memcpy(series[n_series].reason, r, sizeof r);
            series[n_series].count = 1;
            n_series++;
            pthread_mutex_unlock(&series_lock);
            return;
        }
        /* Table full: fold into {stage="other",reason="other"} of the family. */
        memcpy(s, "other", 6);
        memcpy(r, "other", 6);
    }
}

int64_t aw_metrics_family_total(enum aw_metric_family f)
{
    AW_ASSERT(f >= 0 && f < AW_MF__COUNT);
    return atomic_load(&family_totals[f]);
}

void aw_metrics_render(struct aw_buf *out)
{
    for (int i = 0; i < AW_M__COUNT; i++) {
        aw_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", defs[i].name, defs[i].help,
                       defs[i].name, defs[i].gauge ? "gauge" : "counter", defs[i].name,
                       (long long)atomic_load(&values[i]));
    }
    /* Each family once: HELP and TYPE, then all its samples together (none before its first
     * event), as the exposition format requires. */
    pthread_mutex_lock(&series_lock);
    for (int f = 0; f < AW_MF__COUNT; f++) {
        aw_buf_appendf(out, "# HELP %s %s\n# TYPE %s counter\n", family_defs[f].name,
                       family_defs[f].help, family_defs[f].name);
        for (size_t j = 0; j < n_series; j++)
            if (series[j].family == (enum aw_metric_family)f)
                aw_buf_appendf(out, "%s{stage=\"%s\",reason=\"%s\"} %llu\n", family_defs[f].name,
                               series[j].stage, series[j].reason,
                               (unsigned long long)series[j].count);
    }
    pthread_mutex_unlock(&series_lock);
}

void aw_metrics_reset(void)
{
    for (int i = 0; i < AW_M__COUNT; i++)
        atomic_store(&values[i], 0);
    for (int f = 0; f < AW_MF__COUNT; f++)
        atomic_store(&family_totals[f], 0);
    pthread_mutex_lock(&series_lock);
    n_series = 0;
    pthread_mutex_unlock(&series_lock);
}
