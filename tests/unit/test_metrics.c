/* test_metrics.c -- counters, gauges and the Prometheus exposition (families grouped, labels
 * sanitised so no free text reaches a label). */
#include <string.h>

#include "common/buf.h"
#include "tests/harness.h"
#include "worker/ops/metrics.h"

int main(void)
{
    aw_metrics_reset();
    aw_metrics_add(AW_M_RECORDS_CONSUMED, 3);
    aw_metrics_add(AW_M_RECORDS_CONSUMED, 2);
    aw_metrics_set(AW_M_LEADER, 1);
    AW_CHECK_INT_EQ(aw_metrics_get(AW_M_RECORDS_CONSUMED), 5);
    aw_metrics_reason("dead_letters", "decode", "not_json");
    aw_metrics_reason("dead_letters", "map", "hashed_email");
    aw_metrics_reason("dead_letters", "decode", "not_json");
    aw_metrics_reason("klaviyo_status", "flush", "429");
    aw_metrics_reason("dead_letters", "map", "Bad Reason \"x\"@y.com\n");

    struct aw_buf b;
    aw_buf_init(&b, 0);
    aw_metrics_render(&b);
    const char *t = b.data;
    AW_CHECK(strstr(t, "# TYPE aw_records_consumed_total counter\naw_records_consumed_total 5\n"));
    AW_CHECK(strstr(t, "# TYPE aw_leader gauge\naw_leader 1\n"));
    AW_CHECK(strstr(t, "aw_dead_letters_total{stage=\"decode\",reason=\"not_json\"} 2\n"));
    AW_CHECK(strstr(t, "aw_dead_letters_total{stage=\"map\",reason=\"hashed_email\"} 1\n"));
    /* Free text is reduced to [a-z0-9_.-]: no quote, '@' or newline inside a label. */
    AW_CHECK(strstr(t, "reason=\"bad_reason__x__y.com_\"} 1\n"));
    /* Samples of one family stay together after its TYPE line. */
    const char *fam = strstr(t, "# TYPE aw_dead_letters_total counter\n");
    const char *other = strstr(t, "# TYPE aw_klaviyo_status_total counter\n");
    AW_CHECK(fam && other);
    if (fam && other) {
        const char *last_dl = NULL;
        for (const char *p = strstr(t, "aw_dead_letters_total{"); p;
             p = strstr(p + 1, "aw_dead_letters_total{"))
            last_dl = p;
        AW_CHECK(last_dl && last_dl < other);
    }
    /* The table holds 256 series; further ones fold into reason="other". */
    char r[32];
    for (int i = 0; i < 300; i++) {
        snprintf(r, sizeof r, "r%d", i);
        aw_metrics_reason("many", "s", r);
    }
    aw_buf_reset(&b);
    aw_metrics_render(&b);
    AW_CHECK(strstr(b.data, "aw_many_total{stage=\"s\",reason=\"other\"}"));
    aw_buf_free(&b);
    return aw_test_done();
}
