/* health.c -- liveness heartbeats and readiness conditions (see health.h). */
#include "worker/ops/health.h"

#include <stdatomic.h>
#include <stddef.h>

#include "common/clock.h"

static const char *const part_name[AW_HEALTH_PART_COUNT] = {"ingest", "flusher"};
static const char *const cond_name[AW_HEALTH_COND_COUNT] = {"serving", "redis", "kafka_group"};

static atomic_uint_fast64_t bound_ms[AW_HEALTH_PART_COUNT]; /* 0: not registered */
static atomic_uint_fast64_t last_ms[AW_HEALTH_PART_COUNT];
static atomic_bool cond[AW_HEALTH_COND_COUNT];

void aw_health_register(enum aw_health_part p, uint64_t stall_after_ms)
{
    atomic_store(&last_ms[p], aw_clock_mono_ms());
    atomic_store(&bound_ms[p], stall_after_ms ? stall_after_ms : 1);
}

void aw_health_beat(enum aw_health_part p)
{
    atomic_store(&last_ms[p], aw_clock_mono_ms());
}

void aw_health_set(enum aw_health_cond c, bool ok)
{
    atomic_store(&cond[c], ok);
}

bool aw_health_live(uint64_t now_ms, const char **stalled)
{
    for (int p = 0; p < AW_HEALTH_PART_COUNT; p++) {
        uint64_t bound = atomic_load(&bound_ms[p]);
        uint64_t last = atomic_load(&last_ms[p]);
        if (bound && now_ms > last && now_ms - last > bound) {
            if (stalled)
                *stalled = part_name[p];
            return false;
        }
    }
    return true;
}

bool aw_health_ready(const char **missing)
{
    for (int c = 0; c < AW_HEALTH_COND_COUNT; c++) {
        if (!atomic_load(&cond[c])) {
            if (missing)
                *missing = cond_name[c];
            return false;
        }
    }
    return true;
}

void aw_health_reset(void)
{
    for (int p = 0; p < AW_HEALTH_PART_COUNT; p++) {
        atomic_store(&bound_ms[p], 0);
        atomic_store(&last_ms[p], 0);
    }
    for (int c = 0; c < AW_HEALTH_COND_COUNT; c++)
        atomic_store(&cond[c], false);
}
