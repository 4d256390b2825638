/* ingest_ops.h -- the consumer loop's store operations: changes and audience subscription
 * messages, many per pipeline (worker/store/scripts/apply.lua, audience.lua). Rules: DESIGN §1,
 * §3, §4 and docs/redis.md. Owner thread of the store only. */
#ifndef AW_WORKER_STORE_INGEST_OPS_H
#define AW_WORKER_STORE_INGEST_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct aw_change;
struct aw_store;
struct aw_store_batch;

enum aw_store_status {
    AW_STORE_APPLIED = 0, /* state changed */
    AW_STORE_STALE,       /* nothing newer than what was applied before: nothing changed */
    AW_STORE_DISABLED     /* audience removed at or after this version: nothing changed */
};

/* Outcome of one operation. */
struct aw_store_result {
    enum aw_err err;             /* AW_OK: the op and the due index are acknowledged.
                                    AW_ERR_INVALID: the op was refused (bad input; permanent).
                                    AW_ERR_FULL: Redis is out of memory (retry later).
                                    AW_ERR_IO: unknown/not done (retry it, it is idempotent).
                                    AW_ERR_PROTOCOL: unexpected reply (retry later). */
    enum aw_store_status status; /* valid when err == AW_OK */
    int64_t pending;             /* pending users of the audience after the op */
    int64_t due_unix_ms;         /* the account's earliest due after the script call that ran
                                    the op (an account's consecutive changes share one): -1
                                    none, 0 now */
};

/* Creates an empty batch; caller owns it. Reusable after aw_store_batch_reset. */
struct aw_store_batch *aw_store_batch_new(void);
void aw_store_batch_free(struct aw_store_batch *b);
void aw_store_batch_reset(struct aw_store_batch *b);

/* Appends an operation; its index into *index (may be NULL). c and strings are copied.
 * AW_ERR_INVALID (nothing appended) when ids are empty, too long or contain ':', '{', '}',
 * whitespace or control characters, or the email / message id is empty or over 512 bytes. */
enum aw_err aw_store_batch_add_apply(struct aw_store_batch *b, const struct aw_change *c,
                                     size_t *index);
/* Subscription add/update: name (NULL: unchanged), list_id (NULL clears it: found or created by
 * name), state active. Versioned against earlier subscription messages. */
enum aw_err aw_store_batch_add_upsert(struct aw_store_batch *b, const char *account_id,
                                      const char *audience_id, const char *name,
                                      const char *list_id, uint64_t version_ms,
                                      const char *event_id, size_t *index);
/* Subscription remove: the audience is disabled as of version_ms; its pending changes at or
 * before it are dropped (by the leader, a bounded chunk at a time); the list is kept. */
enum aw_err aw_store_batch_add_remove(struct aw_store_batch *b, const char *account_id,
                                      const char *audience_id, uint64_t version_ms,
                                      const char *event_id, size_t *index);

size_t aw_store_batch_count(const struct aw_store_batch *b);

/* Estimated bytes the batch sends (for sizing pipelines by bytes). */
size_t aw_store_batch_bytes(const struct aw_store_batch *b);

/* Runs every operation with two round trips: all scripts pipelined (routed per node on a
 * cluster; an account's consecutive changes go in one apply.lua call, up to 1,000 changes or
 * AW_REDIS_ARGS_MAX arguments, which costs Redis far less than a call each), then one global
 * due-index write per account whose earliest due may have moved.
 * Returns AW_OK when Redis answered everything (ops may still carry AW_ERR_INVALID or
 * AW_ERR_FULL), AW_ERR_IO when some op is unknown (it carries AW_ERR_IO). Order: ops of one
 * account run in order; an op retried after a redirection runs after later ones, which the
 * versions make harmless (an older change arriving late is stale). */
enum aw_err aw_store_batch_exec(struct aw_store *s, struct aw_store_batch *b, uint64_t now_unix_ms);

/* Result of operation i after exec (borrowed until the next add/reset/exec). i < count. */
const struct aw_store_result *aw_store_batch_result(const struct aw_store_batch *b, size_t i);

/* One operation on its own (tests, tools): add + exec; *out gets its result (may be NULL). */
enum aw_err aw_store_apply(struct aw_store *s, const struct aw_change *c, uint64_t now_unix_ms,
                           struct aw_store_result *out);
enum aw_err aw_store_audience_upsert(struct aw_store *s, const char *account_id,
                                     const char *audience_id, const char *name, const char *list_id,
                                     uint64_t version_ms, const char *event_id,
                                     uint64_t now_unix_ms, struct aw_store_result *out);
enum aw_err aw_store_audience_remove(struct aw_store *s, const char *account_id,
                                     const char *audience_id, uint64_t version_ms,
                                     const char *event_id, uint64_t now_unix_ms,
                                     struct aw_store_result *out);

#endif
