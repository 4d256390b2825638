/* health.h -- what /healthz and /readyz answer, process-wide (atomics; any thread).
 *
 * Liveness: every part that registered (the ingest loop, the flusher) beats at least once per
 * its bound; a part that stopped making progress (stuck in a call, a dead thread) makes the
 * process not live, so Kubernetes restarts it. Readiness: serving (not shutting down), Redis
 * answered, and the consumer joined its group. */
#ifndef AW_WORKER_OPS_HEALTH_H
#define AW_WORKER_OPS_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

enum aw_health_part { AW_HEALTH_INGEST = 0, AW_HEALTH_FLUSHER, AW_HEALTH_PART_COUNT };
enum aw_health_cond {
    AW_HEALTH_SERVING = 0,
    AW_HEALTH_STORE,
    AW_HEALTH_JOINED,
    AW_HEALTH_COND_COUNT
};

/* The part beats from now on and is stalled when a beat is older than stall_after_ms. */
void aw_health_register(enum aw_health_part p, uint64_t stall_after_ms);

/* The part made progress now (monotonic clock). */
void aw_health_beat(enum aw_health_part p);

/* Sets one readiness condition. */
void aw_health_set(enum aw_health_cond c, bool ok);

/* True when every registered part beat within its bound at now_ms; else false with the first
 * stalled part's name ("ingest", "flusher") in *stalled. */
bool aw_health_live(uint64_t now_ms, const char **stalled);

/* True when every readiness condition holds; else false with the first missing one's name
 * ("serving", "redis", "kafka_group") in *missing. */
bool aw_health_ready(const char **missing);

/* Forgets everything (tests). */
void aw_health_reset(void);

#endif
