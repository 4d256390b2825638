/* test_metrics.c -- the metrics registry and its Prometheus exposition: after every metric and
 * every labelled family was touched (dead letters of every stage and several reasons, lags,
 * histograms, waits, transitions), the whole text must pass a real parser (`promtool check
 * metrics`, Debian package prometheus: a missing promtool FAILS this test) and a structural
 * check here: each family's HELP and TYPE exactly once and before its samples, its samples
 * together, counters ending in _total, histogram buckets cumulative with +Inf equal to _count.
 * The checks are first shown to reject a broken exposition, so they can fail. Histograms put an
 * observation equal to a bound in that bucket and keep _sum exact; a gauge family is replaced
 * as a whole; labels are sanitised so no free text reaches them; a full family folds into one
 * series and keeps the sum exact; counts from several threads at once are all kept; the
 * process figures are real (resident memory and open descriptors above 0, start time in the
 * past); aw_build_info names the version and revision. */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "common/buf.h"
#include "tests/harness.h"
#include "worker/ops/metrics.h"

#define MAX_FAMILIES 64
#define NAME_MAX_LEN 128

struct family_seen {
    char name[NAME_MAX_LEN];
    int help, type;
    bool counter, histogram;
    bool closed; /* another family started after this one */
};

/* The family a sample name belongs to: itself, or a histogram's name before _bucket, _sum or
 * _count. */
static struct family_seen *family_of(struct family_seen *fam, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(fam[i].name, name) == 0)
            return &fam[i];
    static const char *const suffix[] = {"_bucket", "_sum", "_count"};
    size_t nl = strlen(name);
    for (size_t k = 0; k < 3; k++) {
        size_t sl = strlen(suffix[k]);
        if (nl <= sl || strcmp(name + nl - sl, suffix[k]) != 0)
            continue;
        for (size_t i = 0; i < n; i++)
            if (fam[i].histogram && strlen(fam[i].name) == nl - sl &&
                strncmp(fam[i].name, name, nl - sl) == 0)
                return &fam[i];
    }
    return NULL;
}

/* Structural check of an exposition: returns the number of problems (each printed), and the
 * number of distinct families in *n_families. */
static int check_exposition(const char *text, size_t *n_families)
{
    struct family_seen fam[MAX_FAMILIES];
    size_t n = 0;
    int problems = 0;
    struct family_seen *cur = NULL;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        if (!eol) {
            fprintf(stderr, "exposition: last line has no newline\n");
            return problems + 1;
        }
        char line[512];
        size_t len = (size_t)(eol - p);
        if (len >= sizeof line) {
            fprintf(stderr, "exposition: line too long\n");
            return problems + 1;
        }
        memcpy(line, p, len);
        line[len] = '\0';
        p = eol + 1;

        char name[NAME_MAX_LEN] = "";
        bool is_help = strncmp(line, "# HELP ", 7) == 0;
        bool is_type = strncmp(line, "# TYPE ", 7) == 0;
        const char *rest = NULL;
        if (is_help || is_type) {
            size_t nl = strcspn(line + 7, " ");
            if (nl == 0 || nl >= sizeof name || line[7 + nl] != ' ') {
                fprintf(stderr, "exposition: malformed comment: %s\n", line);
                problems++;
                continue;
            }
            memcpy(name, line + 7, nl);
            name[nl] = '\0';
            rest = line + 7 + nl + 1;
        } else if (line[0] == '#' || line[0] == '\0') {
            fprintf(stderr, "exposition: unexpected line: \"%s\"\n", line);
            problems++;
            continue;
        } else {
            size_t nl = strcspn(line, "{ ");
            if (nl == 0 || nl >= sizeof name) {
                fprintf(stderr, "exposition: malformed sample: %s\n", line);
                problems++;
                continue;
            }
            memcpy(name, line, nl);
            name[nl] = '\0';
        }
        struct family_seen *f = family_of(fam, n, name);
        if (!f) {
            if (n == MAX_FAMILIES) {
                fprintf(stderr, "exposition: too many families\n");
                return problems + 1;
            }
            f = &fam[n++];
            memset(f, 0, sizeof *f);
            snprintf(f->name, sizeof f->name, "%s", name);
        }
        if (f != cur) {
            if (cur)
                cur->closed = true;
            if (f->closed) {
                fprintf(stderr, "exposition: %s appears again after another family\n", name);
                problems++;
            }
            cur = f;
        }
        if (is_help) {
            f->help++;
            if (f->type > 0) {
                fprintf(stderr, "exposition: HELP of %s after its TYPE\n", name);
                problems++;
            }
            if (rest[0] == '\0' || strchr(rest, '\\')) {
                fprintf(stderr, "exposition: HELP of %s empty or escaped\n", name);
                problems++;
            }
        } else if (is_type) {
            f->type++;
            f->counter = strcmp(rest, "counter") == 0;
            f->histogram = strcmp(rest, "histogram") == 0;
            if (!f->counter && !f->histogram && strcmp(rest, "gauge") != 0) {
                fprintf(stderr, "exposition: %s has type %s\n", name, rest);
                problems++;
            }
        } else if (f->type == 0 || f->help == 0) {
            fprintf(stderr, "exposition: sample of %s before its HELP and TYPE\n", name);
            problems++;
        }
    }
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(fam[i].name);
        bool total = nl > 6 && strcmp(fam[i].name + nl - 6, "_total") == 0;
        if (fam[i].help != 1 || fam[i].type != 1) {
            fprintf(stderr, "exposition: %s has %d HELP and %d TYPE lines\n", fam[i].name,
                    fam[i].help, fam[i].type);
            problems++;
        }
        if (fam[i].type == 1 && fam[i].counter != total) {
            fprintf(stderr, "exposition: %s: counters and only counters end in _total\n",
                    fam[i].name);
            problems++;
        }
        if (strncmp(fam[i].name, "aw_", 3) != 0 && strncmp(fam[i].name, "process_", 8) != 0) {
            fprintf(stderr, "exposition: %s lacks the aw_ (or standard process_) prefix\n",
                    fam[i].name);
            problems++;
        }
    }
    *n_families = n;
    return problems;
}

/* Histogram check: for every series of every histogram (name + labels without le), the
 * buckets come in increasing le order ending with +Inf, their counts never decrease, +Inf
 * equals _count, and _sum is there. Returns the number of problems (each printed). */
#define MAX_HIST 160
struct hist_seen {
    char key[256]; /* base name, '|', labels without le */
    double last_le;
    double last_count;
    bool inf, has_count, has_sum;
    double inf_count, count;
};

static struct hist_seen *hist_find(struct hist_seen *h, size_t *n, const char *key, bool add)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(h[i].key, key) == 0)
            return &h[i];
    if (!add || *n == MAX_HIST)
        return NULL;
    struct hist_seen *e = &h[(*n)++];
    memset(e, 0, sizeof *e);
    snprintf(e->key, sizeof e->key, "%s", key);
    e->last_le = -INFINITY;
    return e;
}

static int check_histograms(const char *text)
{
    static struct hist_seen h[MAX_HIST];
    size_t n = 0;
    int problems = 0;
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[512];
        if (len >= sizeof line)
            return problems + 1;
        memcpy(line, p, len);
        line[len] = '\0';
        p += len + (eol ? 1 : 0);
        if (line[0] == '#')
            continue;
        size_t nl = strcspn(line, "{ ");
        char name[NAME_MAX_LEN];
        if (nl >= sizeof name)
            continue;
        memcpy(name, line, nl);
        name[nl] = '\0';
        const char *labels = line[nl] == '{' ? line + nl + 1 : "";
        const char *close = strrchr(line, '}');
        const char *value = strrchr(line, ' ');
        if (!value)
            continue;
        double v = strtod(value + 1, NULL);
        char key[256];
        const char *kind = NULL;
        size_t base = 0;
        static const char *const suffix[] = {"_bucket", "_sum", "_count"};
        for (int k = 0; k < 3 && !kind; k++) {
            size_t sl = strlen(suffix[k]);
            if (nl > sl && strcmp(name + nl - sl, suffix[k]) == 0) {
                kind = suffix[k];
                base = nl - sl;
            }
        }
        if (!kind)
            continue;
        if (strcmp(kind, "_bucket") == 0) {
            const char *le = strstr(labels, "le=\"");
            if (!le || !close) {
                fprintf(stderr, "histogram: bucket without le: %s\n", line);
                problems++;
                continue;
            }
            /* labels before le (without the separating comma) */
            size_t ll = (size_t)(le - labels);
            if (ll > 0 && labels[ll - 1] == ',')
                ll--;
            snprintf(key, sizeof key, "%.*s|%.*s", (int)base, name, (int)ll, labels);
            struct hist_seen *e = hist_find(h, &n, key, true);
            if (!e)
                return problems + 1;
            bool inf = strncmp(le + 4, "+Inf\"", 5) == 0;
            double bound = inf ? INFINITY : strtod(le + 4, NULL);
            if (e->inf || !(bound > e->last_le)) {
                fprintf(stderr, "histogram: %s: le not increasing or after +Inf\n", key);
                problems++;
            }
            if (v < e->last_count) {
                fprintf(stderr, "histogram: %s: buckets not cumulative at le=%g\n", key, bound);
                problems++;
            }
            e->last_le = bound;
            e->last_count = v;
            if (inf) {
                e->inf = true;
                e->inf_count = v;
            }
        } else {
            size_t ll = close && labels[0] ? (size_t)(close - labels) : 0;
            snprintf(key, sizeof key, "%.*s|%.*s", (int)base, name, (int)ll, labels);
            struct hist_seen *e = hist_find(h, &n, key, false);
            if (!e) {
                fprintf(stderr, "histogram: %s%s before or without buckets\n", key, kind);
                problems++;
                continue;
            }
            if (strcmp(kind, "_count") == 0) {
                e->has_count = true;
                e->count = v;
            } else {
                e->has_sum = true;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!h[i].inf || !h[i].has_count || !h[i].has_sum) {
            fprintf(stderr, "histogram: %s lacks +Inf, _count or _sum\n", h[i].key);
            problems++;
        } else if (h[i].inf_count != h[i].count) {
            fprintf(stderr, "histogram: %s: +Inf %g != _count %g\n", h[i].key, h[i].inf_count,
                    h[i].count);
            problems++;
        }
    }
    return problems;
}

/* Runs `promtool check metrics` on text; returns its exit status (127: not found). */
static int promtool_check(const char *text)
{
    FILE *p = popen("promtool check metrics 2>&1", "w");
    if (!p)
        return 127;
    fputs(text, p);
    int st = pclose(p);
    if (st == -1 || !WIFEXITED(st))
        return 126;
    return WEXITSTATUS(st);
}

/* aw_build_info and the six process_* families. */
#define EXTRA_FAMILIES 7

static char *render(void)
{
    struct aw_buf b;
    aw_buf_init(&b, 0);
    aw_metrics_render(&b);
    return aw_buf_take(&b);
}

/* The checks themselves reject a broken exposition: the duplicate TYPE line a second
 * registration of one name used to produce, samples split around another family, a missing
 * HELP and a counter without _total. */
static void test_checks_can_fail(void)
{
    static const struct {
        const char *text;
        bool promtool_rejects; /* promtool's parser merges a family split by another one */
    } broken[] = {
        {"# HELP aw_a_total x\n# TYPE aw_a_total counter\naw_a_total 1\n"
         "# TYPE aw_a_total counter\naw_a_total{stage=\"decode\",reason=\"x\"} 1\n",
         true},
        {"# HELP aw_a_total x\n# TYPE aw_a_total counter\naw_a_total{reason=\"x\"} 1\n"
         "# HELP aw_up x\n# TYPE aw_up gauge\naw_up 1\naw_a_total{reason=\"y\"} 1\n",
         false},
        {"# TYPE aw_a_total counter\naw_a_total 1\n", true},
        {"# HELP aw_a x\n# TYPE aw_a counter\naw_a 1\n", true},
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        size_t n = 0;
        AW_CHECK_MSG(check_exposition(broken[i].text, &n) > 0, "C check accepts broken case %zu",
                     i);
        int rc = promtool_check(broken[i].text);
        AW_CHECK_MSG(rc != 127, "promtool not found: install Debian's prometheus package "
                                "(scripts/install-deps.sh)");
        if (broken[i].promtool_rejects)
            AW_CHECK_MSG(rc != 0, "promtool accepts broken case %zu", i);
    }
    /* Histograms: buckets not cumulative, +Inf different from _count, no +Inf, no _sum. */
    static const char *const bad_hist[] = {
        "aw_h_bucket{le=\"1\"} 3\naw_h_bucket{le=\"2\"} 2\naw_h_bucket{le=\"+Inf\"} 3\n"
        "aw_h_sum 4\naw_h_count 3\n",
        "aw_h_bucket{e=\"a\",le=\"1\"} 1\naw_h_bucket{e=\"a\",le=\"+Inf\"} 2\n"
        "aw_h_sum{e=\"a\"} 4\naw_h_count{e=\"a\"} 3\n",
        "aw_h_bucket{le=\"1\"} 1\naw_h_sum 1\naw_h_count 1\n",
        "aw_h_bucket{le=\"1\"} 1\naw_h_bucket{le=\"+Inf\"} 1\naw_h_count 1\n",
    };
    for (size_t i = 0; i < sizeof bad_hist / sizeof bad_hist[0]; i++)
        AW_CHECK_MSG(check_histograms(bad_hist[i]) > 0, "histogram check accepts case %zu", i);
    AW_CHECK_INT_EQ(check_histograms("aw_h_bucket{le=\"1\"} 1\naw_h_bucket{le=\"+Inf\"} 2\n"
                                     "aw_h_sum 4.5\naw_h_count 2\n"),
                    0);
}

static void test_whole_exposition(void)
{
    aw_metrics_reset();
    /* every plain metric */
    for (int m = 0; m < AW_M__COUNT; m++)
        aw_metrics_add((enum aw_metric)m, (uint64_t)m + 1);
    aw_metrics_set(AW_M_LEADER, 1);
    aw_metrics_set(AW_M_STORE_UP, 1);
    aw_metrics_set(AW_M_PARTITIONS_ASSIGNED, 4);
    AW_CHECK_INT_EQ(aw_metrics_get(AW_M_RECORDS_CONSUMED), 1);
    aw_metrics_add(AW_M_RECORDS_CONSUMED, 4);
    AW_CHECK_INT_EQ(aw_metrics_get(AW_M_RECORDS_CONSUMED), 5);
    AW_CHECK_INT_EQ(aw_metrics_get(AW_M_PARTITIONS_ASSIGNED), 4);
    /* dead letters of every stage, several reasons, in interleaved order */
    aw_metrics_count(AW_MF_DEAD_LETTERS, "decode", "not_json");
    aw_metrics_count(AW_MF_DEAD_LETTERS, "map", "hashed_email");
    aw_metrics_count(AW_MF_STORE_REFUSED, "aggregate", "invalid");
    aw_metrics_count(AW_MF_DEAD_LETTERS, "flush", "klaviyo_import_error");
    aw_metrics_count(AW_MF_DEAD_LETTERS, "decode", "not_json");
    aw_metrics_count(AW_MF_DEAD_LETTERS, "decode", "missing_field");
    aw_metrics_count(AW_MF_DEAD_LETTERS, "map", "invalid_email");
    aw_metrics_count(AW_MF_DEAD_LETTERS, "flush", "klaviyo_rejected");
    aw_metrics_count(AW_MF_DEAD_LETTERS, "map", "Bad Reason \"x\"@y.com\n");
    AW_CHECK_INT_EQ(aw_metrics_family_total(AW_MF_DEAD_LETTERS), 8);
    AW_CHECK_INT_EQ(aw_metrics_family_total(AW_MF_STORE_REFUSED), 1);
    /* every other family */
    aw_metrics_count(AW_MF_CHANGES_APPLIED, "add", NULL);
    aw_metrics_count(AW_MF_CHANGES_APPLIED, "attribute_update", NULL);
    aw_metrics_count(AW_MF_CHANGES_APPLIED, "add", NULL);
    aw_metrics_count(AW_MF_CHANGES_STALE, "delete", NULL);
    const struct aw_metric_sample lag[] = {
        {"mparticle.audience", "0", 12}, {"mparticle.audience", "1", 0}, {"Other.Topic", "3", 4}};
    aw_metrics_family_replace(AW_MF_CONSUMER_LAG, lag, 3);
    aw_metrics_family_add(AW_MF_KLAVIYO_RATE_LIMIT_WAIT, "bulk_import_profiles", NULL, 1.5);
    aw_metrics_family_add(AW_MF_KLAVIYO_RATE_LIMIT_WAIT, "bulk_import_profiles", NULL, 0.25);
    aw_metrics_family_add(AW_MF_KLAVIYO_RATE_LIMIT_WAIT, "get_lists", NULL, 2);
    aw_metrics_count(AW_MF_LEADER_TRANSITIONS, "leader", NULL);
    aw_metrics_count(AW_MF_LEADER_TRANSITIONS, "follower", NULL);
    aw_metrics_count(AW_MF_FLUSH_STEP_FAILURES, "take", NULL);
    aw_metrics_observe(AW_MF_KLAVIYO_REQUEST_DURATION, "bulk_import_profiles", "2xx", 0.03);
    aw_metrics_observe(AW_MF_KLAVIYO_REQUEST_DURATION, "bulk_import_profiles", "429", 0.2);
    aw_metrics_observe(AW_MF_KLAVIYO_REQUEST_DURATION, "get_lists", "transport", 30);
    aw_metrics_observe(AW_MF_FLUSH_DURATION, NULL, NULL, 2);
    aw_metrics_add(AW_M_KLAVIYO_RETRY_AFTER_MS, 1500 - (AW_M_KLAVIYO_RETRY_AFTER_MS + 1));

    char *t = render();
    AW_CHECK(strstr(t, "# TYPE aw_records_consumed_total counter\naw_records_consumed_total 5\n"));
    AW_CHECK(strstr(t, "# TYPE aw_leader gauge\naw_leader 1\n"));
    AW_CHECK(strstr(t, "aw_dead_letters_total{stage=\"decode\",reason=\"not_json\"} 2\n"));
    AW_CHECK(strstr(t, "aw_dead_letters_total{stage=\"decode\",reason=\"missing_field\"} 1\n"));
    AW_CHECK(strstr(t, "aw_dead_letters_total{stage=\"map\",reason=\"hashed_email\"} 1\n"));
    AW_CHECK(strstr(t, "aw_dead_letters_total{stage=\"flush\",reason=\"klaviyo_rejected\"} 1\n"));
    AW_CHECK(strstr(t, "aw_store_refused_total{stage=\"aggregate\",reason=\"invalid\"} 1\n"));
    AW_CHECK(strstr(t, "aw_changes_applied_total{action=\"add\"} 2\n"));
    AW_CHECK(strstr(t, "aw_changes_applied_total{action=\"attribute_update\"} 1\n"));
    AW_CHECK(strstr(t, "aw_changes_stale_total{action=\"delete\"} 1\n"));
    AW_CHECK(strstr(t, "aw_consumer_lag{topic=\"mparticle.audience\",partition=\"0\"} 12\n"));
    /* topic names keep their case */
    AW_CHECK(strstr(t, "aw_consumer_lag{topic=\"Other.Topic\",partition=\"3\"} 4\n"));
    AW_CHECK(strstr(t,
                    "aw_klaviyo_rate_limit_wait_seconds_total{endpoint=\"bulk_import_profiles\"} "
                    "1.75\n"));
    AW_CHECK(strstr(t, "aw_leader_transitions_total{to=\"follower\"} 1\n"));
    AW_CHECK(strstr(t, "aw_flush_step_failures_total{step=\"take\"} 1\n"));
    AW_CHECK(strstr(t, "aw_klaviyo_retry_after_seconds_total 1.5\n"));
    AW_CHECK(strstr(t, "# TYPE aw_klaviyo_request_duration_seconds histogram\n"));
    AW_CHECK(strstr(t, "aw_klaviyo_request_duration_seconds_bucket{endpoint=\"get_lists\","
                       "class=\"transport\",le=\"10\"} 0\n"));
    AW_CHECK(strstr(t, "aw_klaviyo_request_duration_seconds_bucket{endpoint=\"get_lists\","
                       "class=\"transport\",le=\"+Inf\"} 1\n"));
    AW_CHECK(strstr(t, "aw_flush_duration_seconds_bucket{le=\"2.5\"} 1\n"));
    AW_CHECK(strstr(t, "aw_flush_duration_seconds_count 1\n"));
    AW_CHECK(strstr(t, "aw_flush_duration_seconds_sum 2\n"));
    AW_CHECK(strstr(t, "\naw_build_info{version=\""));
    AW_CHECK(strstr(t, "\nprocess_resident_memory_bytes "));
    AW_CHECK_INT_EQ(check_histograms(t), 0);
    /* Free text is reduced to [a-z0-9_.-]: no quote, '@' or newline inside a label. */
    AW_CHECK(strstr(t, "reason=\"bad_reason__x__y.com_\"} 1\n"));
    /* No family of the old per-call names. */
    AW_CHECK(strstr(t, "dead_letters_by_reason") == NULL);

    size_t n_families = 0;
    AW_CHECK_INT_EQ(check_exposition(t, &n_families), 0);
    AW_CHECK_INT_EQ(n_families, AW_M__COUNT + AW_MF__COUNT + EXTRA_FAMILIES);
    int rc = promtool_check(t);
    AW_CHECK_MSG(
        rc != 127,
        "promtool not found: install Debian's prometheus package (scripts/install-deps.sh)");
    AW_CHECK_MSG(rc == 0, "promtool check metrics exit %d on:\n%s", rc, t);
    free(t);

    /* A fresh registry (no labelled series yet) is a valid exposition too. */
    aw_metrics_reset();
    t = render();
    AW_CHECK_INT_EQ(check_exposition(t, &n_families), 0);
    AW_CHECK_INT_EQ(n_families, AW_M__COUNT + AW_MF__COUNT + EXTRA_FAMILIES);
    AW_CHECK_INT_EQ(promtool_check(t), 0);
    free(t);
}

/* A family keeps its cap of series (192 for dead letters); further ones fold into
 * {stage="other",reason="other"} of their family, so the family's series still add up to its
 * total. */
static void test_folding(void)
{
    aw_metrics_reset();
    char r[32];
    for (int i = 0; i < 300; i++) {
        snprintf(r, sizeof r, "r%d", i);
        aw_metrics_count(AW_MF_DEAD_LETTERS, "decode", r);
    }
    aw_metrics_count(AW_MF_STORE_REFUSED, "aggregate", "late");
    AW_CHECK_INT_EQ(aw_metrics_family_total(AW_MF_DEAD_LETTERS), 300);
    char *t = render();
    AW_CHECK(strstr(t, "aw_dead_letters_total{stage=\"other\",reason=\"other\"}"));
    /* Caps are per family: a flood of one leaves another's series alone. */
    AW_CHECK(strstr(t, "aw_store_refused_total{stage=\"aggregate\",reason=\"late\"} 1\n"));
    long long sum = 0;
    for (const char *p = strstr(t, "\naw_dead_letters_total{"); p;
         p = strstr(p + 1, "\naw_dead_letters_total{")) {
        const char *close = strstr(p, "} ");
        AW_CHECK(close != NULL);
        if (close)
            sum += strtoll(close + 2, NULL, 10);
    }
    AW_CHECK_INT_EQ(sum, 300);
    size_t n_families = 0;
    AW_CHECK_INT_EQ(check_exposition(t, &n_families), 0);
    AW_CHECK_INT_EQ(promtool_check(t), 0);
    free(t);
}

/* The value of the sample line that starts with prefix (name and labels), or NAN. */
static double sample(const char *t, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (const char *p = t; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, prefix, pl) == 0 && p[pl] == ' ')
            return strtod(p + pl + 1, NULL);
    return NAN;
}

/* Buckets are cumulative over the fixed bounds; a value equal to a bound counts in that
 * bucket (le = less or equal); one beyond the last bound only in +Inf; _sum is the exact sum and
 * _count the number of observations; negative and non-finite values are not observations. */
static void test_histogram(void)
{
    aw_metrics_reset();
    static const double obs[] = {0.01, 0.025, 0.026, 0.1, 0.7, 1, 9.99, 10, 11, 120};
    double sum = 0;
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) {
        aw_metrics_observe(AW_MF_KLAVIYO_REQUEST_DURATION, "get_lists", "2xx", obs[i]);
        sum += obs[i];
    }
    aw_metrics_observe(AW_MF_KLAVIYO_REQUEST_DURATION, "get_lists", "2xx", -1);
    aw_metrics_observe(AW_MF_KLAVIYO_REQUEST_DURATION, "get_lists", "2xx", NAN);
    aw_metrics_observe(AW_MF_KLAVIYO_REQUEST_DURATION, "get_lists", "2xx", INFINITY);
    aw_metrics_observe(AW_MF_KLAVIYO_REQUEST_DURATION, "get_lists", "5xx", 0.3);
    AW_CHECK_INT_EQ(aw_metrics_family_total(AW_MF_KLAVIYO_REQUEST_DURATION), 11);
    char *t = render();
    static const struct {
        const char *le;
        int want;
    } rows[] = {{"0.025", 2}, {"0.05", 3}, {"0.1", 4}, {"0.25", 4}, {"0.5", 4},
                {"1", 6},     {"2.5", 6},  {"5", 6},   {"10", 8},   {"+Inf", 10}};
    char prefix[256];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        snprintf(prefix, sizeof prefix,
                 "aw_klaviyo_request_duration_seconds_bucket{endpoint=\"get_lists\",class=\"2xx\","
                 "le=\"%s\"}",
                 rows[i].le);
        double v = sample(t, prefix);
        AW_CHECK_MSG(v == rows[i].want, "%s = %g, want %d", prefix, v, rows[i].want);
    }
    double count = sample(t, "aw_klaviyo_request_duration_seconds_count{endpoint=\"get_lists\","
                             "class=\"2xx\"}");
    double got_sum = sample(t, "aw_klaviyo_request_duration_seconds_sum{endpoint=\"get_lists\","
                               "class=\"2xx\"}");
    AW_CHECK(count == 10);
    AW_CHECK_MSG(fabs(got_sum - sum) < 1e-9, "_sum %g, want %g", got_sum, sum);
    AW_CHECK(sample(t, "aw_klaviyo_request_duration_seconds_bucket{endpoint=\"get_lists\","
                       "class=\"5xx\",le=\"0.25\"}") == 0);
    AW_CHECK(sample(t, "aw_klaviyo_request_duration_seconds_bucket{endpoint=\"get_lists\","
                       "class=\"5xx\",le=\"0.5\"}") == 1);
    AW_CHECK_INT_EQ(check_histograms(t), 0);
    size_t n_families = 0;
    AW_CHECK_INT_EQ(check_exposition(t, &n_families), 0);
    AW_CHECK_INT_EQ(promtool_check(t), 0);
    free(t);
}

/* A gauge family is replaced as a whole (a revoked partition's series goes away); samples
 * beyond the family's cap add up in its "other" series, so the total lag stays right. */
static void test_replace(void)
{
    aw_metrics_reset();
    const struct aw_metric_sample a[] = {{"t", "0", 5}, {"t", "1", 6}};
    aw_metrics_family_replace(AW_MF_CONSUMER_LAG, a, 2);
    const struct aw_metric_sample b[] = {{"t", "1", 0}};
    aw_metrics_family_replace(AW_MF_CONSUMER_LAG, b, 1);
    char *t = render();
    AW_CHECK(strstr(t, "aw_consumer_lag{topic=\"t\",partition=\"0\"}") == NULL);
    AW_CHECK(sample(t, "aw_consumer_lag{topic=\"t\",partition=\"1\"}") == 0);
    free(t);

    enum { N = 600 };
    static struct aw_metric_sample many[N];
    static char parts[N][8];
    for (int i = 0; i < N; i++) {
        snprintf(parts[i], sizeof parts[i], "%d", i);
        many[i].a = "t";
        many[i].b = parts[i];
        many[i].value = 1;
    }
    aw_metrics_family_replace(AW_MF_CONSUMER_LAG, many, N);
    t = render();
    double total = 0;
    int series = 0;
    for (const char *p = strstr(t, "\naw_consumer_lag{"); p;
         p = strstr(p + 1, "\naw_consumer_lag{")) {
        total += strtod(strstr(p, "} ") + 2, NULL);
        series++;
    }
    AW_CHECK(total == N);
    AW_CHECK_MSG(series < N && series > 1, "%d series", series);
    AW_CHECK(sample(t, "aw_consumer_lag{topic=\"other\",partition=\"other\"}") == N - series + 1);
    AW_CHECK_INT_EQ(promtool_check(t), 0);
    free(t);
}

/* The process figures are this process's: memory resident, descriptors open (one more after
 * opening a file), CPU time spent, started in the past day; the build info names the version
 * CMake passes and a revision (a git hash or "unknown"). */
static void test_process_and_build(void)
{
    aw_metrics_reset();
    volatile double spin = 0;
    for (int i = 0; i < 20000000; i++)
        spin = spin + i * 0.5;
    char *t = render();
    double rss = sample(t, "process_resident_memory_bytes");
    double vsz = sample(t, "process_virtual_memory_bytes");
    double fds = sample(t, "process_open_fds");
    double max_fds = sample(t, "process_max_fds");
    double cpu = sample(t, "process_cpu_seconds_total");
    double start = sample(t, "process_start_time_seconds");
    double now = (double)time(NULL);
    AW_CHECK_MSG(rss > 1e5 && vsz >= rss, "rss %g vsz %g", rss, vsz);
    AW_CHECK_MSG(fds >= 3 && (isnan(max_fds) || max_fds >= fds), "fds %g max %g", fds, max_fds);
    AW_CHECK_MSG(cpu > 0, "cpu %g", cpu);
    AW_CHECK_MSG(start > now - 86400 && start <= now + 1, "start %f now %f", start, now);
    free(t);
    FILE *extra = fopen("/proc/self/stat", "r");
    AW_CHECK(extra != NULL);
    t = render();
    AW_CHECK_MSG(sample(t, "process_open_fds") == fds + 1, "fds %g after one more file",
                 sample(t, "process_open_fds"));
    if (extra)
        fclose(extra);
    const char *bi = strstr(t, "\naw_build_info{version=\"");
    AW_CHECK(bi != NULL);
    if (bi) {
        char version[64] = "", revision[64] = "";
        const char *v = bi + strlen("\naw_build_info{version=\"");
        size_t vl = strcspn(v, "\"");
        const char *r = strstr(v, "revision=\"");
        AW_CHECK(r != NULL && vl > 0 && vl < sizeof version);
        if (r && vl < sizeof version) {
            memcpy(version, v, vl);
            r += strlen("revision=\"");
            size_t rl = strcspn(r, "\"");
            if (rl < sizeof revision)
                memcpy(revision, r, rl);
            AW_CHECK(strncmp(r + rl, "\"} 1\n", 5) == 0);
        }
        AW_CHECK_MSG(strspn(version, "0123456789.") == strlen(version) && strchr(version, '.'),
                     "version \"%s\"", version);
        AW_CHECK_MSG(
            strcmp(revision, "unknown") == 0 ||
                (strlen(revision) >= 7 && strspn(revision, "0123456789abcdef") == strlen(revision)),
            "revision \"%s\"", revision);
    }
    free(t);
}

/* The consumer, flusher and HTTP threads use the registry at once: nothing is lost and every
 * exposition rendered meanwhile is well formed. */
#define THREADS 4
#define ROUNDS 20000
static void *hammer(void *arg)
{
    const char *who = arg;
    for (int i = 0; i < ROUNDS; i++) {
        aw_metrics_count(AW_MF_DEAD_LETTERS, "decode", who);
        aw_metrics_observe(AW_MF_KLAVIYO_REQUEST_DURATION, "get_lists", "2xx", 0.01 * (i % 300));
        aw_metrics_family_add(AW_MF_KLAVIYO_RATE_LIMIT_WAIT, "get_lists", NULL, 0.5);
        aw_metrics_add(AW_M_KLAVIYO_REQUESTS, 1);
        if (i % 1000 == 0) {
            const struct aw_metric_sample lag[] = {{"t", "0", i}};
            aw_metrics_family_replace(AW_MF_CONSUMER_LAG, lag, 1);
        }
    }
    return NULL;
}

static void test_threads(void)
{
    aw_metrics_reset();
    pthread_t th[THREADS];
    static const char *const who[THREADS] = {"a", "b", "c", "d"};
    for (int i = 0; i < THREADS; i++)
        AW_CHECK(pthread_create(&th[i], NULL, hammer, (void *)who[i]) == 0);
    int bad = 0;
    for (int r = 0; r < 20; r++) {
        char *t = render();
        size_t n = 0;
        bad += check_exposition(t, &n) + check_histograms(t);
        free(t);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    AW_CHECK_INT_EQ(bad, 0);
    AW_CHECK_INT_EQ(aw_metrics_family_total(AW_MF_DEAD_LETTERS), THREADS * ROUNDS);
    AW_CHECK_INT_EQ(aw_metrics_get(AW_M_KLAVIYO_REQUESTS), THREADS * ROUNDS);
    char *t = render();
    AW_CHECK(sample(t, "aw_dead_letters_total{stage=\"decode\",reason=\"c\"}") == ROUNDS);
    AW_CHECK(sample(t, "aw_klaviyo_request_duration_seconds_count{endpoint=\"get_lists\","
                       "class=\"2xx\"}") == THREADS * ROUNDS);
    AW_CHECK(sample(t, "aw_klaviyo_rate_limit_wait_seconds_total{endpoint=\"get_lists\"}") ==
             THREADS * ROUNDS * 0.5);
    AW_CHECK_INT_EQ(check_histograms(t), 0);
    free(t);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* promtool may exit before reading everything */
    test_checks_can_fail();
    test_whole_exposition();
    test_folding();
    test_histogram();
    test_replace();
    test_process_and_build();
    test_threads();
    return aw_test_done();
}
