/* metrics.c -- the metrics registry (see metrics.h): the one table of names, help texts and
 * types, atomic values, the labelled series (counters, gauges, histograms), build and process
 * figures, and the text exposition. */
#include "worker/ops/metrics.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/mem.h"

/* Set by CMake for this file only (the project version; the git revision at configure time). */
#ifndef AW_VERSION
#define AW_VERSION "unknown"
#endif
#ifndef AW_REVISION
#define AW_REVISION "unknown"
#endif

static const struct {
    const char *name;
    const char *help;
    bool gauge;
    unsigned per_unit; /* stored value / per_unit = exposed value (ms counted, seconds shown) */
} defs[AW_M__COUNT] = {
    [AW_M_RECORDS_CONSUMED] = {"aw_records_consumed_total", "Kafka records polled", false, 1},
    [AW_M_RECORDS_DONE] = {"aw_records_done_total", "Kafka records whose offset was stored", false,
                           1},
    [AW_M_RECORDS_REWOUND] = {"aw_records_rewound_total",
                              "Kafka records re-read after a transient failure", false, 1},
    [AW_M_AUDIENCE_UPDATES] = {"aw_audience_updates_total",
                               "Audience subscription messages applied", false, 1},
    [AW_M_STORE_ERRORS] = {"aw_store_errors_total", "Redis failures", false, 1},
    [AW_M_KLAVIYO_REQUESTS] = {"aw_klaviyo_requests_total", "HTTP requests sent to Klaviyo", false,
                               1},
    [AW_M_KLAVIYO_RATE_LIMITED] = {"aw_klaviyo_rate_limited_total", "Klaviyo 429 answers", false,
                                   1},
    [AW_M_KLAVIYO_ERRORS] = {"aw_klaviyo_errors_total", "Klaviyo transport errors and 5xx answers",
                             false, 1},
    [AW_M_PROFILES_UPLOADED] = {"aw_profiles_uploaded_total", "Profiles imported into lists", false,
                                1},
    [AW_M_PROFILES_REMOVED] = {"aw_profiles_removed_total", "Profiles removed from lists", false,
                               1},
    [AW_M_FLUSHES] = {"aw_flushes_total", "Audience flushes completed", false, 1},
    [AW_M_PARTITIONS_ASSIGNED] = {"aw_partitions_assigned",
                                  "Kafka partitions assigned to this replica", true, 1},
    [AW_M_LEADER] = {"aw_leader", "1 while this replica holds the leader lease", true, 1},
    [AW_M_STORE_UP] = {"aw_store_up", "1 while the last Redis operation succeeded", true, 1},
    [AW_M_ACCOUNTS_PAUSED] = {"aw_accounts_paused", "Accounts paused after a 401/403 from Klaviyo",
                              true, 1},
    [AW_M_DUE_AUDIENCES] = {"aw_due_audiences",
                            "Accounts with a stream due for a flush at the leader's last scan",
                            true, 1},
    [AW_M_FLUSH_BATCH_BYTES] = {"aw_flush_batch_bytes",
                                "Bytes of the batches the leader holds in memory (bounded: "
                                "docs/flush.md)",
                                true, 1},
    [AW_M_FLUSH_JOBS] = {"aw_flush_jobs",
                         "Stream flushes (audiences, account profiles) the leader is working on",
                         true, 1},
    [AW_M_KLAVIYO_IN_FLIGHT] = {"aw_klaviyo_requests_in_flight",
                                "Requests to Klaviyo on the wire now (at most "
                                "AW_KLAVIYO_MAX_IN_FLIGHT; each audience one at a time)",
                                true, 1},
    [AW_M_STORE_FULL] = {"aw_store_full",
                         "1 while Redis refuses ingest's writes for memory: ingest paused until "
                         "the leader drains",
                         true, 1},
    [AW_M_PENDING_CHANGES] = {"aw_pending_changes",
                              "Changes waiting in Redis for a flush, every stream of every account "
                              "(the leader reads it every 15 s; 0 elsewhere)",
                              true, 1},
    [AW_M_INFLIGHT_CHANGES] = {"aw_inflight_changes",
                               "Changes of the batches being uploaded (the leader reads it every "
                               "15 s; 0 elsewhere)",
                               true, 1},
    [AW_M_OLDEST_PENDING_AGE_MS] = {"aw_oldest_pending_age_seconds",
                                    "Age of the oldest pending change (its stream's first pending "
                                    "time; the leader reads it every 15 s; 0 when none or "
                                    "elsewhere)",
                                    true, 1000},
    [AW_M_KLAVIYO_JOB_FAILED] = {"aw_klaviyo_job_failed_records_total",
                                 "Records Klaviyo's bulk import jobs reported failed (each is "
                                 "dead-lettered with its import error)",
                                 false, 1},
    [AW_M_KLAVIYO_RETRY_AFTER_MS] = {"aw_klaviyo_retry_after_seconds_total",
                                     "Seconds Klaviyo's 429 answers asked to wait (Retry-After, "
                                     "or the default wait when absent)",
                                     false, 1000},
};

enum kind { COUNTER, GAUGE, HISTOGRAM };

#define MAX_BUCKETS 12
/* Klaviyo answers in tens of milliseconds to seconds; the client's total timeout bounds them. */
static const double request_buckets[] = {.025, .05, .1, .25, .5, 1, 2.5, 5, 10};
/* A batch spans several requests, an import job's polling and the rate limiter's waits. */
static const double flush_buckets[] = {.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};

/* cap: series kept per family, the "other" one included. Bounded label sets: stages and
 * reasons are fixed words of the code, actions 3, partitions those of the subscribed topics,
 * endpoints the 13 rows of the API table (× 6 classes), steps the flush steps. */
static const struct {
    const char *name;
    const char *help;
    enum kind kind;
    int n_labels;
    const char *label[2];
    size_t cap;
    bool keep_case; /* first label keeps upper case (Kafka topic names) */
    const double *buckets;
    size_t n_buckets;
} family_defs[AW_MF__COUNT] = {
    [AW_MF_DEAD_LETTERS] = {"aw_dead_letters_total",
                            "Dead-letter records produced, by stage (decode, map, flush) and "
                            "reason",
                            COUNTER,
                            2,
                            {"stage", "reason"},
                            192,
                            false,
                            NULL,
                            0},
    [AW_MF_STORE_REFUSED] = {"aw_store_refused_total",
                             "Store operations Redis refused for their data, by stage and reason",
                             COUNTER,
                             2,
                             {"stage", "reason"},
                             32,
                             false,
                             NULL,
                             0},
    [AW_MF_CHANGES_APPLIED] = {"aw_changes_applied_total",
                               "Changes written to the pending store, by action (add, delete, "
                               "attribute_update)",
                               COUNTER,
                               1,
                               {"action", NULL},
                               8,
                               false,
                               NULL,
                               0},
    [AW_MF_CHANGES_STALE] = {"aw_changes_stale_total",
                             "Changes ignored as older than the stored version, by action",
                             COUNTER,
                             1,
                             {"action", NULL},
                             8,
                             false,
                             NULL,
                             0},
    [AW_MF_CONSUMER_LAG] = {"aw_consumer_lag",
                            "Messages between each assigned partition's high watermark and the "
                            "group's committed offset, or its log start while nothing is committed "
                            "(librdkafka statistics)",
                            GAUGE,
                            2,
                            {"topic", "partition"},
                            256,
                            true,
                            NULL,
                            0},
    [AW_MF_KLAVIYO_RATE_LIMIT_WAIT] = {"aw_klaviyo_rate_limit_wait_seconds_total",
                                       "Seconds requests were held back by the client-side rate "
                                       "limiter, by endpoint (operation name)",
                                       COUNTER,
                                       1,
                                       {"endpoint", NULL},
                                       16,
                                       false,
                                       NULL,
                                       0},
    [AW_MF_LEADER_TRANSITIONS] = {"aw_leader_transitions_total",
                                  "Leader lease transitions of this replica, to leader or "
                                  "follower",
                                  COUNTER,
                                  1,
                                  {"to", NULL},
                                  3,
                                  false,
                                  NULL,
                                  0},
    [AW_MF_FLUSH_STEP_FAILURES] = {"aw_flush_step_failures_total",
                                   "Flush steps that failed and were retried with backoff, by step",
                                   COUNTER,
                                   1,
                                   {"step", NULL},
                                   32,
                                   false,
                                   NULL,
                                   0},
    [AW_MF_KLAVIYO_REQUEST_DURATION] = {"aw_klaviyo_request_duration_seconds",
                                        "Klaviyo request durations, by endpoint (operation name) "
                                        "and class (2xx, 4xx, 429, 5xx, transport, other)",
                                        HISTOGRAM,
                                        2,
                                        {"endpoint", "class"},
                                        96,
                                        false,
                                        request_buckets,
                                        sizeof request_buckets / sizeof request_buckets[0]},
    [AW_MF_KLAVIYO_JOBS] = {"aw_klaviyo_jobs_total",
                            "Klaviyo bulk import jobs polled to their end, by result (complete, "
                            "failed_records, cancelled, not_found)",
                            COUNTER,
                            1,
                            {"result", NULL},
                            4,
                            false,
                            NULL,
                            0},
    [AW_MF_FLUSH_DURATION] = {"aw_flush_duration_seconds",
                              "Duration of one flushed batch, from take to ack",
                              HISTOGRAM,
                              0,
                              {NULL, NULL},
                              1,
                              false,
                              flush_buckets,
                              sizeof flush_buckets / sizeof flush_buckets[0]},
};

static atomic_llong values[AW_M__COUNT];
static atomic_llong family_totals[AW_MF__COUNT];

/* At least the sum of the caps above (636). */
#define MAX_SERIES 1024
#define LABEL_MAX 64
struct series {
    char a[LABEL_MAX];
    char b[LABEL_MAX];
    double value;                 /* counter, gauge; histogram: sum of observations */
    uint64_t count;               /* histogram: observations */
    uint64_t bucket[MAX_BUCKETS]; /* histogram: observations in (le[i-1], le[i]] */
};
/* Each family owns the slots [first[f], first[f] + cap) of the pool, n_of[f] of them used. */
static struct series pool[MAX_SERIES];
static size_t n_of[AW_MF__COUNT];
static pthread_mutex_t series_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t first_slot(enum aw_metric_family f)
{
    size_t off = 0;
    for (int i = 0; i < (int)f; i++)
        off += family_defs[i].cap;
    AW_ASSERT(off + family_defs[f].cap <= MAX_SERIES);
    AW_ASSERT(family_defs[f].n_buckets <= MAX_BUCKETS);
    return off;
}

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

/* Label values are restricted to [a-z0-9_.-] (upper case kept when keep_case) so the
 * exposition never needs escaping and no free text (which might carry personal data) can slip
 * into a label. */
static void copy_label(char *dst, const char *src, bool keep_case)
{
    size_t j = 0;
    for (const char *p = src ? src : ""; *p && j + 1 < LABEL_MAX; p++) {
        char c = *p;
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
        if (c >= 'A' && c <= 'Z') {
            if (!keep_case)
                c = (char)(c - 'A' + 'a');
            ok = true;
        }
        dst[j++] = ok ? c : '_';
    }
    dst[j] = '\0';
}

/* The series (a, b) of f, created when new; a full family gives its "other" series (the last
 * slot is kept for it). Called with series_lock held. */
static struct series *series_get(enum aw_metric_family f, const char *a, const char *b)
{
    char sa[LABEL_MAX] = "", sb[LABEL_MAX] = "";
    int nl = family_defs[f].n_labels;
    if (nl > 0)
        copy_label(sa, a, family_defs[f].keep_case);
    if (nl > 1)
        copy_label(sb, b, false);
    struct series *s = &pool[first_slot(f)];
    for (bool folded = false;; folded = true) {
        for (size_t i = 0; i < n_of[f]; i++)
            if (strcmp(s[i].a, sa) == 0 && strcmp(s[i].b, sb) == 0)
                return &s[i];
        if (folded || n_of[f] + 1 < family_defs[f].cap) {
            AW_ASSERT(n_of[f] < family_defs[f].cap);
            struct series *n = &s[n_of[f]++];
            memset(n, 0, sizeof *n);
            memcpy(n->a, sa, sizeof sa);
            memcpy(n->b, sb, sizeof sb);
            return n;
        }
        /* Family full: fold into its series whose labels are all "other". */
        memcpy(sa, nl > 0 ? "other" : "", nl > 0 ? 6 : 1);
        memcpy(sb, nl > 1 ? "other" : "", nl > 1 ? 6 : 1);
    }
}

void aw_metrics_count(enum aw_metric_family f, const char *a, const char *b)
{
    AW_ASSERT(f >= 0 && f < AW_MF__COUNT && family_defs[f].kind == COUNTER);
    atomic_fetch_add(&family_totals[f], 1);
    pthread_mutex_lock(&series_lock);
    series_get(f, a, b)->value += 1;
    pthread_mutex_unlock(&series_lock);
}

void aw_metrics_family_add(enum aw_metric_family f, const char *a, const char *b, double v)
{
    AW_ASSERT(f >= 0 && f < AW_MF__COUNT && family_defs[f].kind == COUNTER);
    if (!isfinite(v) || v < 0)
        return;
    pthread_mutex_lock(&series_lock);
    series_get(f, a, b)->value += v;
    pthread_mutex_unlock(&series_lock);
}

void aw_metrics_observe(enum aw_metric_family f, const char *a, const char *b, double v)
{
    AW_ASSERT(f >= 0 && f < AW_MF__COUNT && family_defs[f].kind == HISTOGRAM);
    if (!isfinite(v) || v < 0)
        return;
    atomic_fetch_add(&family_totals[f], 1);
    size_t k = 0; /* first bucket holding v; n_buckets = only +Inf */
    while (k < family_defs[f].n_buckets && v > family_defs[f].buckets[k])
        k++;
    pthread_mutex_lock(&series_lock);
    struct series *s = series_get(f, a, b);
    s->value += v;
    s->count++;
    if (k < family_defs[f].n_buckets)
        s->bucket[k]++;
    pthread_mutex_unlock(&series_lock);
}

void aw_metrics_family_replace(enum aw_metric_family f, const struct aw_metric_sample *samples,
                               size_t n)
{
    AW_ASSERT(f >= 0 && f < AW_MF__COUNT && family_defs[f].kind == GAUGE);
    pthread_mutex_lock(&series_lock);
    n_of[f] = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(samples[i].value))
            series_get(f, samples[i].a, samples[i].b)->value += samples[i].value;
    pthread_mutex_unlock(&series_lock);
}

int64_t aw_metrics_family_total(enum aw_metric_family f)
{
    AW_ASSERT(f >= 0 && f < AW_MF__COUNT);
    return atomic_load(&family_totals[f]);
}

/* Integral values as integers (counts stay exact and readable), others with 15 digits. */
static void append_value(struct aw_buf *out, double v)
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        aw_buf_appendf(out, "%.0f", v);
    else
        aw_buf_appendf(out, "%.15g", v);
}

/* "{a="x",b="y"" without the closing brace (a histogram adds le); "" without labels. */
static void append_labels(struct aw_buf *out, enum aw_metric_family f, const struct series *s)
{
    for (int i = 0; i < family_defs[f].n_labels; i++)
        aw_buf_appendf(out, "%s%s=\"%s\"", i == 0 ? "{" : ",", family_defs[f].label[i],
                       i == 0 ? s->a : s->b);
}

static void render_series(struct aw_buf *out, enum aw_metric_family f, const struct series *s)
{
    const char *name = family_defs[f].name;
    bool labelled = family_defs[f].n_labels > 0;
    if (family_defs[f].kind != HISTOGRAM) {
        aw_buf_append_str(out, name);
        append_labels(out, f, s);
        aw_buf_append_str(out, labelled ? "} " : " ");
        append_value(out, s->value);
        aw_buf_append_str(out, "\n");
        return;
    }
    /* Buckets are cumulative; +Inf equals _count. */
    uint64_t cum = 0;
    for (size_t k = 0; k <= family_defs[f].n_buckets; k++) {
        bool inf = k == family_defs[f].n_buckets;
        cum = inf ? s->count : cum + s->bucket[k];
        aw_buf_appendf(out, "%s_bucket", name);
        append_labels(out, f, s);
        if (inf)
            aw_buf_appendf(out, "%sle=\"+Inf\"} %llu\n", labelled ? "," : "{",
                           (unsigned long long)cum);
        else
            aw_buf_appendf(out, "%sle=\"%g\"} %llu\n", labelled ? "," : "{",
                           family_defs[f].buckets[k], (unsigned long long)cum);
    }
    aw_buf_appendf(out, "%s_sum", name);
    append_labels(out, f, s);
    aw_buf_append_str(out, labelled ? "} " : " ");
    append_value(out, s->value);
    aw_buf_appendf(out, "\n%s_count", name);
    append_labels(out, f, s);
    aw_buf_appendf(out, "%s %llu\n", labelled ? "}" : "", (unsigned long long)s->count);
}

/* ---- Process figures (the names every Prometheus client library exports) ------------------ */

/* Reads up to max-1 bytes of a /proc file into buf; false when it cannot be read. */
static bool read_small(const char *path, char *buf, size_t max)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return false;
    size_t n = fread(buf, 1, max - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return n > 0;
}

/* Fields of /proc/self/stat (proc(5)), numbered from 1, after the command name, which may hold
 * spaces and parentheses: field 3 starts after its last ')'. */
struct proc_stat {
    unsigned long long utime, stime, starttime, vsize, rss; /* fields 14, 15, 22, 23, 24 */
};

static bool read_proc_stat(struct proc_stat *ps)
{
    char buf[1024];
    if (!read_small("/proc/self/stat", buf, sizeof buf))
        return false;
    const char *p = strrchr(buf, ')');
    if (!p)
        return false;
    p++;
    unsigned long long v[25] = {0};
    for (int field = 3; field <= 24; field++) {
        while (*p == ' ')
            p++;
        if (!*p)
            return false;
        char *end = NULL;
        if (field >= 14) {
            v[field] = strtoull(p, &end, 10);
            if (end == p)
                return false;
            p = end;
        } else {
            p += strcspn(p, " ");
        }
    }
    ps->utime = v[14];
    ps->stime = v[15];
    ps->starttime = v[22];
    ps->vsize = v[23];
    ps->rss = v[24];
    return true;
}

/* Boot time in seconds since the epoch (/proc/stat "btime"); 0 when unknown. */
static unsigned long long boot_time_s(void)
{
    char buf[8192];
    if (!read_small("/proc/stat", buf, sizeof buf))
        return 0;
    const char *p = strstr(buf, "\nbtime ");
    return p ? strtoull(p + 7, NULL, 10) : 0;
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    for (const struct dirent *e = readdir(d); e; e = readdir(d))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static void header(struct aw_buf *out, const char *name, const char *help, const char *type)
{
    aw_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_process(struct aw_buf *out)
{
    struct proc_stat ps = {0, 0, 0, 0, 0};
    bool have = read_proc_stat(&ps);
    long tick = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    header(out, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds",
           "counter");
    if (have && tick > 0)
        aw_buf_appendf(out, "process_cpu_seconds_total %.2f\n",
                       (double)(ps.utime + ps.stime) / (double)tick);
    header(out, "process_resident_memory_bytes", "Resident memory size in bytes", "gauge");
    if (have && page > 0)
        aw_buf_appendf(out, "process_resident_memory_bytes %llu\n", ps.rss * (unsigned long)page);
    header(out, "process_virtual_memory_bytes", "Virtual memory size in bytes", "gauge");
    if (have)
        aw_buf_appendf(out, "process_virtual_memory_bytes %llu\n", ps.vsize);
    header(out, "process_open_fds", "Number of open file descriptors", "gauge");
    long fds = open_fds();
    if (fds >= 0)
        aw_buf_appendf(out, "process_open_fds %ld\n", fds);
    header(out, "process_max_fds", "Maximum number of open file descriptors", "gauge");
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        aw_buf_appendf(out, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    header(out, "process_start_time_seconds",
           "Start time of the process since unix epoch in seconds", "gauge");
    unsigned long long boot = boot_time_s();
    if (have && tick > 0 && boot > 0)
        aw_buf_appendf(out, "process_start_time_seconds %.2f\n",
                       (double)boot + (double)ps.starttime / (double)tick);
}

void aw_metrics_render(struct aw_buf *out)
{
    for (int i = 0; i < AW_M__COUNT; i++) {
        header(out, defs[i].name, defs[i].help, defs[i].gauge ? "gauge" : "counter");
        long long v = atomic_load(&values[i]);
        if (defs[i].per_unit == 1)
            aw_buf_appendf(out, "%s %lld\n", defs[i].name, v);
        else {
            aw_buf_appendf(out, "%s ", defs[i].name);
            append_value(out, (double)v / defs[i].per_unit);
            aw_buf_append_str(out, "\n");
        }
    }
    /* Each family once: HELP and TYPE, then all its samples together (none before its first
     * event), as the exposition format requires. */
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&series_lock);
    for (int f = 0; f < AW_MF__COUNT; f++) {
        header(out, family_defs[f].name, family_defs[f].help, kinds[family_defs[f].kind]);
        const struct series *s = &pool[first_slot((enum aw_metric_family)f)];
        for (size_t j = 0; j < n_of[f]; j++)
            render_series(out, (enum aw_metric_family)f, &s[j]);
    }
    pthread_mutex_unlock(&series_lock);
    char version[LABEL_MAX], revision[LABEL_MAX];
    copy_label(version, AW_VERSION, true);
    copy_label(revision, AW_REVISION, true);
    header(out, "aw_build_info", "Always 1: the version and git revision of this build", "gauge");
    aw_buf_appendf(out, "aw_build_info{version=\"%s\",revision=\"%s\"} 1\n", version, revision);
    render_process(out);
}

void aw_metrics_reset(void)
{
    for (int i = 0; i < AW_M__COUNT; i++)
        atomic_store(&values[i], 0);
    for (int f = 0; f < AW_MF__COUNT; f++)
        atomic_store(&family_totals[f], 0);
    pthread_mutex_lock(&series_lock);
    for (int f = 0; f < AW_MF__COUNT; f++)
        n_of[f] = 0;
    pthread_mutex_unlock(&series_lock);
}
