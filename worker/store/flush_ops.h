/* flush_ops.h -- the leader's store operations: which streams are due, and their batches
 * (worker/store/scripts/take.lua, read.lua, ack.lua, batch_set.lua). Two kinds of stream per
 * account: one per audience (membership: add / delete, DESIGN §3) and one for the account's
 * profiles (attributes and consent, shared by all its audiences, DESIGN §1). Each has at most
 * one batch in flight; a batch moves out of pending in bounded chunks and ends with ack.
 * Owner thread of the store only. */
#ifndef AW_WORKER_STORE_FLUSH_OPS_H
#define AW_WORKER_STORE_FLUSH_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "worker/store/change.h"

struct aw_store;

/* Accounts with a stream due at now_unix_ms, earliest first, at most max: caller-owned array of
 * caller-owned ids in *out (free each, then the array), count in *n. */
enum aw_err aw_store_due_accounts(struct aw_store *s, uint64_t now_unix_ms, size_t max, char ***out,
                                  size_t *n);

/* One stream of an account. */
struct aw_store_stream {
    char *audience_id;   /* owned; NULL: the account's profile stream */
    int64_t due_unix_ms; /* 0 = now */
};

/* The account's streams due at now_unix_ms, earliest first, at most max, into *out (caller
 * frees with aw_store_streams_free), count in *n. The profile stream, when due, comes first
 * whatever its place: it carries the attributes and consent of every audience's users, and
 * among streams due now (score 0) its name sorts after every audience's. */
enum aw_err aw_store_due_streams(struct aw_store *s, const char *account_id, uint64_t now_unix_ms,
                                 size_t max, struct aw_store_stream **out, size_t *n);
void aw_store_streams_free(struct aw_store_stream *st, size_t n);

enum aw_store_batch_status {
    AW_STORE_BATCH_EMPTY = 0, /* take: nothing pending */
    AW_STORE_BATCH_TAKEN,     /* take: a new in-flight batch */
    AW_STORE_BATCH_RESUMED,   /* take: the batch already in flight, now stamped with our epoch */
    AW_STORE_BATCH_DONE,      /* ack: the batch is over */
    AW_STORE_BATCH_GONE,      /* ack: that batch no longer exists (acked before, or taken over) */
    AW_STORE_BATCH_PARTIAL    /* ack: entries not named are still in flight */
};

/* One user of a batch. */
struct aw_store_entry {
    char *email;             /* owned */
    struct aw_change change; /* decoded record (zeroed when bad) */
    bool bad;                /* the record did not decode: dead-letter it */
    bool dropped;            /* membership changed at or before the audience's removal: ack it
                                without sending (DESIGN §3) */
};

/* A batch taken for upload. Owned by the caller; release with aw_store_taken_clear. */
struct aw_store_taken {
    enum aw_store_batch_status status;
    char *batch_id;                 /* owned; "<epoch>-<n>"; NULL when empty */
    struct aw_store_entry *entries; /* owned array */
    size_t n;
    bool disabled;         /* the audience is removed (entries are all dropped) */
    char *name;            /* owned audience name (list name), or NULL */
    char *list_id;         /* owned connection listId, or NULL */
    char *klaviyo_list_id; /* owned list found or created by name earlier, or NULL */
    char *job_id;          /* owned Klaviyo job recorded for this batch, or NULL */
    size_t bytes;          /* what the entries weighed in Redis's replies (memory budget) */
};

void aw_store_taken_clear(struct aw_store_taken *t);

/* Takes a batch of a stream (audience_id NULL: the account's profile stream): the one already
 * in flight (RESUMED: a new leader re-drives its predecessor's batch), or up to max_items
 * pending users moved into a new one (TAKEN), of them at most max_adds adds (audience streams:
 * the batch ends before the next add beyond it), a bounded chunk per script call, stopping once
 * the entries weigh max_bytes (the chunks shrink to the room left, so a batch exceeds it by at
 * most one entry). Taking an
 * audience batch makes the account's profile stream due now (its users' attributes and consent
 * go out with it). Fencing: a batch stamped by a newer epoch → AW_ERR_NOT_LEADER. Updates the
 * due indexes. *out is overwritten (caller clears). Errors: AW_ERR_IO, AW_ERR_FULL,
 * AW_ERR_NOT_LEADER, AW_ERR_INVALID, AW_ERR_PROTOCOL. */
enum aw_err aw_store_flush_take(struct aw_store *s, const char *account_id, const char *audience_id,
                                uint64_t epoch, size_t max_items, size_t max_adds, size_t max_bytes,
                                uint64_t now_unix_ms, struct aw_store_taken *out);

/* Ends entries of the in-flight batch batch_id (all of them, in chunks of 1000): emails[i] is
 * done (sent, dead-lettered or dropped); accepted[i] (NULL, or NULL array) names the consent
 * channels Klaviyo accepted for it ("email", "sms", "email,sms"), recorded as sent. Once the
 * batch is empty it is over: last upload = now, due recomputed. *status DONE, PARTIAL or GONE. */
enum aw_err aw_store_flush_ack(struct aw_store *s, const char *account_id, const char *audience_id,
                               uint64_t epoch, const char *batch_id, const char *const *emails,
                               const char *const *accepted, size_t n, uint64_t now_unix_ms,
                               enum aw_store_batch_status *status);

/* The operator's `aw-worker flush` (due_now.lua): the stream (audience_id NULL: the account's
 * profile stream) is due now and drained until nothing is pending; the leader takes it at its
 * next scan. Writes the global due index after. *due false when nothing is pending or in flight
 * (nothing to flush); *pending, *inflight its counts. AW_ERR_INVALID for a bad id or a stream
 * the store does not know (nothing written); AW_ERR_IO, AW_ERR_PROTOCOL. */
enum aw_err aw_store_flush_due_now(struct aw_store *s, const char *account_id,
                                   const char *audience_id, uint64_t now_unix_ms, bool *due,
                                   int64_t *pending, int64_t *inflight);

/* Read-only (peek.lua, a no-writes script): what the next take of the stream would hold -- the
 * batch in flight (status RESUMED), else the first max_items (1..1000) pending entries made
 * into the records take would make (TAKEN), else EMPTY -- with the stream's name and list ids.
 * Nothing moves: pending stays pending. *out is overwritten (caller clears). */
enum aw_err aw_store_flush_peek(struct aw_store *s, const char *account_id, const char *audience_id,
                                size_t max_items, struct aw_store_taken *out);

/* Records (job_id) or forgets (NULL) the Klaviyo bulk job of the in-flight batch, so a new
 * leader polls it instead of sending the batch again (DESIGN §5). AW_ERR_NOT_LEADER when
 * fenced; *written false when that batch is no longer in flight. */
enum aw_err aw_store_flush_set_job(struct aw_store *s, const char *account_id,
                                   const char *audience_id, uint64_t epoch, const char *batch_id,
                                   const char *job_id, bool *written);

/* What the leader records *before* sending it, in the stream's meta (batch_set.lua). */
enum aw_store_sent {
    AW_STORE_SENT_CONSENT, /* profile stream: a consent job (Klaviyo gives no id to poll: the
                              next batch's consent waits for it to settle) */
    AW_STORE_SENT_IMPORT   /* a bulk import of the in-flight batch (an answer lost can leave an
                              unknown job running: the batch's ack waits for it) */
};

/* Records that batch_id of the stream sends `what` at unix_ms. Fenced like
 * aw_store_flush_set_job (AW_ERR_NOT_LEADER; *written false when the batch is not in flight). */
enum aw_err aw_store_flush_mark_sent(struct aw_store *s, const char *account_id,
                                     const char *audience_id, enum aw_store_sent what,
                                     uint64_t epoch, const char *batch_id, uint64_t unix_ms,
                                     bool *written);

/* When `what` was last recorded for the stream (unix ms), 0 when never. */
enum aw_err aw_store_flush_sent_at(struct aw_store *s, const char *account_id,
                                   const char *audience_id, enum aw_store_sent what,
                                   uint64_t *unix_ms);

#endif
