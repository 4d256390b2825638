#include "worker/ops/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

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
    [AW_M_DEAD_LETTERS] = {"aw_dead_letters_total", "Dead-letter records produced", false},
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
                            "Audiences due for a flush at the leader's last scan (at most 512)",
                            true},
    [AW_M_FLUSH_JOBS] = {"aw_flush_jobs", "Audience flushes the leader is working on", true},
};

static atomic_llong values[AW_M__COUNT];

#define MAX_SERIES 256
#define LABEL_MAX 64
struct series {
    char family[LABEL_MAX];
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

void aw_metrics_reason(const char *family, const char *stage, const char *reason)
{
    char f[LABEL_MAX], s[LABEL_MAX], r[LABEL_MAX];
    copy_label(f, family);
    copy_label(s, stage);
    copy_label(r, reason);
    pthread_mutex_lock(&series_lock);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n_series; i++) {
            if (strcmp(series[i].family, f) == 0 && strcmp(series[i].stage, s) == 0 &&
                strcmp(series[i].reason, r) == 0) {
                series[i].count++;
                pthread_mutex_unlock(&series_lock);
                return;
            }
        }
        if (n_series < MAX_SERIES - 1 || (n_series < MAX_SERIES && strcmp(r, "other") == 0)) {
            memcpy(series[n_series].family, f, sizeof f);
            memcpy(series[n_series].stage, s, sizeof s);
            memcpy(series[n_series].reason, r, sizeof r);
            series[n_series].count = 1;
            n_series++;
            pthread_mutex_unlock(&series_lock);
            return;
        }
        memcpy(r, "other", 6); /* table full: fold into one series */
    }
    pthread_mutex_unlock(&series_lock);
}

void aw_metrics_render(struct aw_buf *out)
{
    for (int i = 0; i < AW_M__COUNT; i++) {
        aw_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", defs[i].name, defs[i].help,
                       defs[i].name, defs[i].gauge ? "gauge" : "counter", defs[i].name,
                       (long long)atomic_load(&values[i]));
    }
    pthread_mutex_lock(&series_lock);
    /* One block per family (first-seen order): TYPE line, then all its samples together, as
     * the exposition format requires. */
    for (size_t i = 0; i < n_series; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(series[j].family, series[i].family) == 0;
        if (seen)
            continue;
        aw_buf_appendf(out, "# TYPE aw_%s_total counter\n", series[i].family);
        for (size_t j = i; j < n_series; j++)
            if (strcmp(series[j].family, series[i].family) == 0)
                aw_buf_appendf(out, "aw_%s_total{stage=\"%s\",reason=\"%s\"} %llu\n",
                               series[j].family, series[j].stage, series[j].reason,
                               (unsigned long long)series[j].count);
    }
    pthread_mutex_unlock(&series_lock);
}

void aw_metrics_reset(void)
{
    for (int i = 0; i < AW_M__COUNT; i++)
        atomic_store(&values[i], 0);
    pthread_mutex_lock(&series_lock);
    n_series = 0;
    pthread_mutex_unlock(&series_lock);
}
