/* test_consumer.c -- the consumer's statistics reader (aw_consumer_stats_apply) on a real
 * librdkafka statistics document: tests/data/rdkafka/consumer_stats_2.0.2.json was emitted by
 * librdkafka 2.0.2's stats_cb in a consumer of group aw-workers on the dev broker
 * (tests/tools/aw_devbroker --brokers 2 --topic mparticle.audience:4), 40 records produced, 25
 * of them stored and committed. There partition 0 and 2 are fully committed (lag 0),
 * partition 1 lags 5, partition 3 has no committed offset yet (consumer_lag -1: its lag is
 * then everything since the log start, hi_offset 10 - lo_offset 0) and the internal partition
 * -1 is not desired. The gauge aw_consumer_lag{topic,partition} must hold
 * exactly the known lags, be replaced as a whole by the next document, and stay unchanged on an
 * unreadable one. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "tests/harness.h"
#include "worker/ingest/consumer.h"
#include "worker/ops/metrics.h"

#define LAG(p) "aw_consumer_lag{topic=\"mparticle.audience\",partition=\"" p "\"} "

static char *render(void)
{
    struct aw_buf b;
    aw_buf_init(&b, 0);
    aw_metrics_render(&b);
    return aw_buf_take(&b);
}

/* Number of aw_consumer_lag samples in the exposition. */
static int lag_samples(const char *t)
{
    int n = 0;
    for (const char *p = strstr(t, "\naw_consumer_lag{"); p;
         p = strstr(p + 1, "\naw_consumer_lag{"))
        n++;
    return n;
}

static char *load_fixture(size_t *len)
{
    char path[1024];
    aw_test_src_path(path, sizeof path, "tests/data/rdkafka/consumer_stats_2.0.2.json");
    char *doc = aw_test_read_file(path, len);
    AW_CHECK_MSG(doc != NULL, "cannot read %s", path);
    return doc;
}

static void test_fixture(void)
{
    aw_metrics_reset();
    size_t len = 0;
    char *doc = load_fixture(&len);
    if (!doc)
        return;
    AW_CHECK_INT_EQ(aw_consumer_stats_apply(doc, len), AW_OK);
    char *t = render();
    AW_CHECK(strstr(t, "# TYPE aw_consumer_lag gauge\n"));
    AW_CHECK(strstr(t, LAG("0") "0\n"));
    AW_CHECK(strstr(t, LAG("1") "5\n"));
    AW_CHECK(strstr(t, LAG("2") "0\n"));
    AW_CHECK(strstr(t, LAG("3") "10\n"));   /* nothing committed: hi - lo */
    AW_CHECK(strstr(t, LAG("-1")) == NULL); /* librdkafka's internal partition */
    AW_CHECK_INT_EQ(lag_samples(t), 4);
    free(t);

    /* The next document replaces the whole set: partition 1 drained, partition 2 revoked
     * (desired false), partition 3 committed with lag 7. */
    json_error_t jerr;
    json_t *root = json_loadb(doc, len, 0, &jerr);
    AW_CHECK(root != NULL);
    json_t *parts = json_object_get(
        json_object_get(json_object_get(root, "topics"), "mparticle.audience"), "partitions");
    AW_CHECK(json_is_object(parts));
    json_object_set_new(json_object_get(parts, "1"), "consumer_lag", json_integer(0));
    json_object_set_new(json_object_get(parts, "2"), "desired", json_false());
    json_object_set_new(json_object_get(parts, "3"), "consumer_lag", json_integer(7));
    char *next = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    AW_CHECK_INT_EQ(aw_consumer_stats_apply(next, strlen(next)), AW_OK);
    free(next);
    t = render();
    AW_CHECK(strstr(t, LAG("0") "0\n"));
    AW_CHECK(strstr(t, LAG("1") "0\n"));
    AW_CHECK(strstr(t, LAG("2")) == NULL);
    AW_CHECK(strstr(t, LAG("3") "7\n"));
    AW_CHECK_INT_EQ(lag_samples(t), 3);
    free(t);

    /* Unreadable documents leave the gauge as it was. */
    static const char *bad[] = {"", "not json", "[]", "{\"topics\": 3}", "{\"name\": \"x\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        AW_CHECK_MSG(aw_consumer_stats_apply(bad[i], strlen(bad[i])) == AW_ERR_INVALID,
                     "accepted bad document %zu", i);
    t = render();
    AW_CHECK(strstr(t, LAG("3") "7\n"));
    AW_CHECK_INT_EQ(lag_samples(t), 3);
    free(t);

    /* A document without partitions (nothing assigned) empties the gauge. */
    const char *none = "{\"topics\": {}}";
    AW_CHECK_INT_EQ(aw_consumer_stats_apply(none, strlen(none)), AW_OK);
    t = render();
    AW_CHECK_INT_EQ(lag_samples(t), 0);
    AW_CHECK(strstr(t, "# TYPE aw_consumer_lag gauge\n"));
    free(t);
    free(doc);
}

int main(void)
{
    test_fixture();
    return aw_test_done();
}
