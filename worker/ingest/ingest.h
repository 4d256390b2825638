/* ingest.h -- the consumer loop (main thread): poll a batch of Kafka records, decode (event.c),
 * resolve settings (account.c with config_file.c, connection.c), map (map.c), write every change
 * of the batch to Redis in one pipeline (store), dead-letter what is invalid (consumer.c), and
 * store each record's offset only once Redis and the dead-letter topic acknowledged everything
 * the record produced. A transient failure rewinds the partition to the first record not done
 * and backs off: nothing is skipped, and every write is idempotent, so redelivery is harmless. */
#ifndef AW_WORKER_INGEST_H
#define AW_WORKER_INGEST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct aw_consumer;
struct aw_store;
struct aw_config_file;

struct aw_ingest_config {
    struct aw_consumer *consumer;          /* borrowed, main thread */
    struct aw_store *store;                /* borrowed, main thread */
    const struct aw_config_file *accounts; /* borrowed, may be NULL (no AW_CONFIG_FILE) */
    size_t batch_max;                      /* records per poll, >= 1 */
    int poll_timeout_ms;                   /* <= 200 (stop flag latency) */
    uint64_t backoff_base_ms;              /* first wait after a transient failure */
    uint64_t backoff_max_ms;               /* cap, well below max.poll.interval.ms */
    int dlq_timeout_ms;                    /* wait for dead-letter acks per batch */
};

struct aw_ingest;

/* The loop beats /healthz every turn; one turn is bounded by the poll, the Redis timeouts, the
 * dead-letter confirmation (10 s) and a backoff (<= 5 s), far below this. */
#define AW_INGEST_STALL_MS 60000u

/* Creates the loop state (copies cfg; the borrowed handles must outlive it). */
struct aw_ingest *aw_ingest_new(const struct aw_ingest_config *cfg);
void aw_ingest_free(struct aw_ingest *ing);

/* Processes one poll: *n_polled records. AW_OK when every record was done (offset stored),
 * AW_ERR_IO when a transient failure rewound a partition (the caller backs off), AW_ERR_FATAL
 * when a partition could not be rewound to a record not done (nothing later of it is stored;
 * the caller must stop: the group re-reads from the committed offset). Main thread. */
enum aw_err aw_ingest_step(struct aw_ingest *ing, size_t *n_polled);

/* Runs steps until *stop becomes non-zero or the consumer reports a fatal error, backing off
 * (capped, with jitter, stop-aware) after transient failures. AW_OK after a clean stop (the
 * caller then closes the consumer, which commits stored offsets); AW_ERR_FATAL after a fatal
 * Kafka error or a failed rewind. Main thread. */
enum aw_err aw_ingest_run(struct aw_ingest *ing, const atomic_int *stop);

#endif
