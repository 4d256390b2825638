/* store.h -- the Redis store: the handle every store operation takes. Operations are grouped by
 * who calls them: ingest_ops.h (the consumer loop), flush_ops.h (the leader), lease.h,
 * account_ops.h, status.h (admin and tests). Key layout and rules: docs/redis.md, and the one
 * table of names worker/store/fields.def.
 *
 * Threads: a struct aw_store is one client (one connection per Redis node) and belongs to one
 * thread; the consumer loop and the flusher each create their own.
 *
 * Connection: lazy, on the first operation (connect timeout, AUTH, SELECT, SCRIPT LOAD); a
 * transport failure returns AW_ERR_IO and the next call reconnects. Backoff between attempts
 * is the caller's job. One Redis or a Redis Cluster (detected from the server).
 *
 * Never logs emails, API keys or passwords. */
#ifndef AW_WORKER_STORE_STORE_H
#define AW_WORKER_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct aw_store;
struct aw_settings;

/* Store settings (plain data, borrowed during aw_store_new only). */
struct aw_store_config {
    const char *url;             /* AW_REDIS_URL (common/redis_url.h) */
    uint64_t connect_timeout_ms; /* 0 = 2000 */
    uint64_t command_timeout_ms; /* 0 = 5000; applies to every read/write on the socket */
    int64_t flush_max_queue;     /* AW_FLUSH_MAX_QUEUE: pending entries that make a stream due
                                    now (>= 1) */
    uint64_t flush_max_age_ms;   /* AW_FLUSH_MAX_AGE_S * 1000 */
    uint64_t retention_s;        /* AW_STATE_RETENTION_S; 0 = 604800 (7 days) */
};

#define AW_STORE_RETENTION_DEFAULT_S 604800u

/* Fills *out from the process settings (AW_REDIS_*, AW_FLUSH_*, AW_STATE_RETENTION_S); strings
 * are borrowed from s. Any thread. */
void aw_store_config_from_settings(const struct aw_settings *s, struct aw_store_config *out);

/* Creates a store (no connection yet). NULL with a reason in errbuf when the config is invalid.
 * Caller owns the result (aw_store_free). */
struct aw_store *aw_store_new(const struct aw_store_config *cfg, char *errbuf, size_t errlen);

/* Closes the connections and frees the store. NULL is a no-op. */
void aw_store_free(struct aw_store *s);

/* Detail of the last failure (borrowed until the next call on s; "" when none). */
const char *aw_store_errstr(const struct aw_store *s);

/* Connects if needed and sends PING. AW_OK, AW_ERR_IO (unreachable), AW_ERR_CONFIG (AUTH/SELECT
 * refused). For readiness checks. */
enum aw_err aw_store_ping(struct aw_store *s);

/* True when the store holds a live connection (no I/O). */
bool aw_store_is_connected(const struct aw_store *s);

/* True when the server is a Redis Cluster (known after the first operation; no I/O). */
bool aw_store_is_cluster(const struct aw_store *s);

/* True when id can be part of a key: 1..128 bytes, no ':', '{', '}', whitespace or controls
 * (account and audience ids; mParticle's are decimal). Pure. */
bool aw_store_id_ok(const char *id);

#endif
