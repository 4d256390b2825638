/* summary.h -- the whole store in three numbers, for the leader's gauges (aw_pending_changes,
 * aw_inflight_changes, aw_oldest_pending_age_seconds). Reads only, pipelined per node: two
 * rounds for the accounts' audience sets, then three commands per stream. Owner thread of the
 * store only. */
#ifndef AW_WORKER_STORE_SUMMARY_H
#define AW_WORKER_STORE_SUMMARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct aw_store;

struct aw_store_summary {
    uint64_t pending;        /* changes waiting in every stream */
    uint64_t inflight;       /* changes of the batches being uploaded */
    uint64_t oldest_unix_ms; /* first_pending_ms of the oldest stream with pending changes,
                                0 when none */
    size_t streams;          /* streams read */
    bool truncated;          /* more than max_streams: the figures cover the first ones */
};

/* Reads every account's streams (audiences and the profile stream), at most max_streams. */
enum aw_err aw_store_summary(struct aw_store *s, size_t max_streams, struct aw_store_summary *out);

#endif
