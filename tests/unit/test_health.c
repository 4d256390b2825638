/* test_health.c -- liveness and readiness (worker/ops/health.c): a part that stops beating
 * makes the process not live, naming the part; readiness needs every condition; a part that
 * never registered is not waited for. */
#include <string.h>

#include "common/clock.h"
#include "tests/harness.h"
#include "worker/ops/health.h"

int main(void)
{
    const char *why = NULL;
    aw_health_reset();
    AW_CHECK(aw_health_live(aw_clock_mono_ms() + 1000000, &why)); /* nothing registered */
    aw_health_register(AW_HEALTH_INGEST, 1000);
    uint64_t t = aw_clock_mono_ms();
    AW_CHECK(aw_health_live(t + 500, &why));
    AW_CHECK(!aw_health_live(t + 5000, &why));
    AW_CHECK_STR_EQ(why, "ingest");
    aw_health_beat(AW_HEALTH_INGEST);
    AW_CHECK(aw_health_live(aw_clock_mono_ms() + 500, &why));
    aw_health_register(AW_HEALTH_FLUSHER, 100);
    AW_CHECK(!aw_health_live(aw_clock_mono_ms() + 300, &why));
    AW_CHECK_STR_EQ(why, "flusher");

    AW_CHECK(!aw_health_ready(&why));
    AW_CHECK_STR_EQ(why, "serving");
    aw_health_set(AW_HEALTH_SERVING, true);
    aw_health_set(AW_HEALTH_STORE, true);
    AW_CHECK(!aw_health_ready(&why));
    AW_CHECK_STR_EQ(why, "kafka_group");
    aw_health_set(AW_HEALTH_JOINED, true);
    AW_CHECK(aw_health_ready(&why));
    aw_health_set(AW_HEALTH_STORE, false);
    AW_CHECK(!aw_health_ready(&why));
    AW_CHECK_STR_EQ(why, "redis");
    return aw_test_done();
}
