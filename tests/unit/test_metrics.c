/* test_metrics.c -- the metrics registry and its Prometheus exposition: after every metric and
 * every labelled family was touched (dead letters of every stage and several reasons), the whole
 * text must pass a real parser (`promtool check metrics`, Debian package prometheus: a missing
 * promtool FAILS this test) and a structural check here: each family's HELP and TYPE exactly
 * once and before its samples, its samples together, counters ending in _total. Both checks are
 * first shown to reject a broken exposition, so they can fail. Labels are sanitised so no free
 * text reaches them; a full series table folds into one series and keeps the sum exact. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/buf.h"
#include "tests/harness.h"
#include "worker/ops/metrics.h"

#define MAX_FAMILIES 64
#define NAME_MAX_LEN 128

struct family_seen {
    char name[NAME_MAX_LEN];
    int help, type;
    bool counter;
    bool closed; /* another family started after this one */
};

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
        struct family_seen *f = NULL;
        for (size_t i = 0; i < n; i++)
            if (strcmp(fam[i].name, name) == 0)
                f = &fam[i];
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
            if (!f->counter && strcmp(rest, "gauge") != 0) {
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
        if (strncmp(fam[i].name, "aw_", 3) != 0) {
            fprintf(stderr, "exposition: %s lacks the aw_ prefix\n", fam[i].name);
            problems++;
        }
    }
    *n_families = n;
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

    char *t = render();
    AW_CHECK(strstr(t, "# TYPE aw_records_consumed_total counter\naw_records_consumed_total 5\n"));
    AW_CHECK(strstr(t, "# TYPE aw_leader gauge\naw_leader 1\n"));
    AW_CHECK(strstr(t, "aw_dead_letters_total{stage=\"decode\",reason=\"not_json\"} 2\n"));
    AW_CHECK(strstr(t, "aw_dead_letters_total{stage=\"decode\",reason=\"missing_field\"} 1\n"));
    AW_CHECK(strstr(t, "aw_dead_letters_total{stage=\"map\",reason=\"hashed_email\"} 1\n"));
    AW_CHECK(strstr(t, "aw_dead_letters_total{stage=\"flush\",reason=\"klaviyo_rejected\"} 1\n"));
    AW_CHECK(strstr(t, "aw_store_refused_total{stage=\"aggregate\",reason=\"invalid\"} 1\n"));
    /* Free text is reduced to [a-z0-9_.-]: no quote, '@' or newline inside a label. */
    AW_CHECK(strstr(t, "reason=\"bad_reason__x__y.com_\"} 1\n"));
    /* No family of the old per-call names. */
    AW_CHECK(strstr(t, "dead_letters_by_reason") == NULL);

    size_t n_families = 0;
    AW_CHECK_INT_EQ(check_exposition(t, &n_families), 0);
    AW_CHECK_INT_EQ(n_families, AW_M__COUNT + AW_MF__COUNT);
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
    AW_CHECK_INT_EQ(n_families, AW_M__COUNT + AW_MF__COUNT);
    AW_CHECK_INT_EQ(promtool_check(t), 0);
    free(t);
}

/* 256 series at most; further ones fold into {stage="other",reason="other"} of their family,
 * so the family's series still add up to its total. */
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
    AW_CHECK(strstr(t, "aw_store_refused_total{stage=\"other\",reason=\"other\"} 1\n"));
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

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* promtool may exit before reading everything */
    test_checks_can_fail();
    test_whole_exposition();
    test_folding();
    return aw_test_done();
}
