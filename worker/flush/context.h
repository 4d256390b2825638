/* context.h -- what the flusher's modules share (private to worker/flush/): the flusher's
 * handles. Locking: the flusher's scheduler and its request lanes (flusher.c) run job steps and
 * everything here only while holding *mu; a lane lets go of it only while its own request is on
 * the wire (aw_job_send), so all flush logic stays sequential and only the waits for Klaviyo
 * overlap. */
#ifndef AW_WORKER_FLUSH_CONTEXT_H
#define AW_WORKER_FLUSH_CONTEXT_H

#include <pthread.h>
#include <stdatomic.h>

#include "worker/flush/leader.h"

struct aw_settings;
struct aw_config_file;
struct aw_store;
struct aw_dryrun;
struct aw_ratelimit;
struct aw_dlq;
struct aw_flush_accounts;

struct aw_flush_ctx {
    const struct aw_settings *s;
    const struct aw_config_file *config; /* AW_CONFIG_FILE, may be NULL */
    struct aw_store *store;
    struct aw_dryrun *dry; /* AW_DRY_RUN: writes recorded here, never sent; NULL otherwise */
    struct aw_ratelimit *rl;
    struct aw_dlq *dlq;
    struct aw_flush_accounts *accounts;
    struct aw_leader leader;
    size_t batch_bytes;  /* bytes of the batches the jobs hold (aw_flush_batch_bytes) */
    pthread_mutex_t *mu; /* the flusher's lock (above); NULL: one thread, no lock */
    size_t in_flight;    /* requests on the wire (aw_klaviyo_requests_in_flight) */
    atomic_int answered; /* lanes holding an answer they have not yet taken the lock to handle:
                            no request is sent meanwhile (a 429 among them blocks the account) */
};

#endif
