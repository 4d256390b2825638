/* context.h -- what the flusher's modules share (private to worker/flush/): the flusher
 * thread's own handles. Everything here belongs to the flusher thread. */
#ifndef AW_WORKER_FLUSH_CONTEXT_H
#define AW_WORKER_FLUSH_CONTEXT_H

#include "worker/flush/leader.h"

struct aw_settings;
struct aw_config_file;
struct aw_store;
struct aw_klaviyo;
struct aw_dryrun;
struct aw_ratelimit;
struct aw_dlq;
struct aw_flush_accounts;

struct aw_flush_ctx {
    const struct aw_settings *s;
    const struct aw_config_file *config; /* AW_CONFIG_FILE, may be NULL */
    struct aw_store *store;
    struct aw_klaviyo *k;
    struct aw_dryrun *dry; /* AW_DRY_RUN: writes recorded here, never sent; NULL otherwise */
    struct aw_ratelimit *rl;
    struct aw_dlq *dlq;
    struct aw_flush_accounts *accounts;
    struct aw_leader leader;
    size_t batch_bytes; /* bytes of the batches the jobs hold (aw_flush_batch_bytes) */
};

#endif
