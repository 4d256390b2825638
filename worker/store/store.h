/* store.h -- the Redis store (hiredis adapter): connection management, the atomic aggregation
 * of changes per (audience, user), audience subscription state and the due index.
 * Key layout and the exact merge rules: .local/redis-keys.md (README section).
 *
 * Threads: a struct aw_store is one connection and belongs to one thread (the consumer loop
 * and the flusher each create their own). No function here is thread-safe on the same store.
 *
 * Connection: aw_store_new only parses the URL; every call connects lazily when there is no
 * live connection (connect timeout, AUTH, SELECT, command timeout, SCRIPT LOAD). A transport
 * failure (NULL reply, c->err, timeout) frees the connection and returns AW_ERR_IO; the next call
 * tries to reconnect once. Backoff between attempts is the CALLER's job (the consumer seeks back
 * and backs off anyway; a second backoff here would only add latency).
 *
 * SIGPIPE: hiredis writes with write(2); a peer that closed the socket raises SIGPIPE. The
 * process must ignore SIGPIPE (main.c does `signal(SIGPIPE, SIG_IGN)` before creating stores).
 *
 * Never logs emails, keys' values or passwords. */
#ifndef AW_WORKER_STORE_H
#define AW_WORKER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct aw_change;
struct aw_store;
struct aw_store_batch;

/* Parsed `AW_REDIS_URL`: redis://[[user]:password@]host[:port][/db]. Plain data. */
#define AW_STORE_HOST_MAX 256
#define AW_STORE_SECRET_MAX 512
struct aw_store_url {
    bool is_unix;                       /* unix:// URL: host holds the socket path */
    char host[AW_STORE_HOST_MAX];       /* name or IPv4/IPv6 literal (brackets removed) */
    int port;                           /* default 6379 */
    char user[AW_STORE_SECRET_MAX];     /* ACL user ("" = AUTH with password only) */
    char password[AW_STORE_SECRET_MAX]; /* "" = no AUTH; %XX escapes decoded */
    int db;                             /* SELECT index, default 0 */
};

/* Parses a redis://[[user]:password@]host[:port][/db] or
 * unix://[[user]:password@]/socket/path[?db=N] URL (the forms settings.c accepts) into *out.
 * AW_ERR_CONFIG with a reason in errbuf (never containing the password) when malformed. Pure; any
 * thread. */
enum aw_err aw_store_url_parse(const char *url, struct aw_store_url *out, char *errbuf,
                               size_t errlen);

/* Store settings (plain data, borrowed during aw_store_new only). */
struct aw_store_config {
    const char *url;             /* AW_REDIS_URL */
    uint64_t connect_timeout_ms; /* 0 = 2000 */
    uint64_t command_timeout_ms; /* 0 = 5000; applies to every read/write on the socket */
    int64_t flush_max_queue;     /* AW_FLUSH_MAX_QUEUE: pending count that makes an audience
                                    due now (>= 1) */
    uint64_t flush_max_age_ms;   /* AW_FLUSH_MAX_AGE_S * 1000 */
};

struct aw_settings;

/* Fills *out from the process settings (AW_REDIS_*, AW_FLUSH_*); strings are borrowed from s.
 * Any thread. */
void aw_store_config_from_settings(const struct aw_settings *s, struct aw_store_config *out);

/* Creates a store (no connection yet). NULL with a reason in errbuf when the config is invalid.
 * Caller owns the result (aw_store_free). Any thread; the store then belongs to that thread. */
struct aw_store *aw_store_new(const struct aw_store_config *cfg, char *errbuf, size_t errlen);

/* Closes the connection and frees the store. NULL is a no-op. */
void aw_store_free(struct aw_store *s);

/* Detail of the last failure (borrowed until the next call on s; "" when none). */
const char *aw_store_errstr(const struct aw_store *s);

/* Connects if needed and sends PING. AW_OK, AW_ERR_IO (unreachable), AW_ERR_CONFIG (AUTH/SELECT
 * refused). For readiness checks. */
enum aw_err aw_store_ping(struct aw_store *s);

/* True when the store holds a live connection (no I/O). */
bool aw_store_is_connected(const struct aw_store *s);

/* ---- Aggregation ------------------------------------------------------------------------- */

enum aw_store_status {
    AW_STORE_APPLIED = 0, /* state changed */
    AW_STORE_STALE,       /* equal or older than what was applied before: nothing changed */
    AW_STORE_DISABLED     /* audience removed at or after this version: nothing changed */
};

/* Outcome of one operation. */
struct aw_store_result {
    enum aw_err err;             /* AW_OK: the op and its due-index update are acknowledged.
                                    AW_ERR_INVALID: the op was refused (bad input; permanent).
                                    AW_ERR_IO: unknown/not done (retry it, it is idempotent).
                                    AW_ERR_PROTOCOL: unexpected reply (retry later). */
    enum aw_store_status status; /* valid when err == AW_OK */
    int64_t pending;             /* pending users of the audience after the op */
    int64_t due_unix_ms;         /* due score after the op: -1 none, 0 now, else unix ms */
};

/* Applies one change atomically (one script): see the merge rules in .local/redis-keys.md.
 * c is borrowed. now_unix_ms is the wall clock (first_pending_ms, due scores).
 * Errors as struct aw_store_result.err (also copied into *out). Owner thread only. */
enum aw_err aw_store_apply(struct aw_store *s, const struct aw_change *c, uint64_t now_unix_ms,
                           struct aw_store_result *out);

/* Audience subscription add/update: sets name (if non-NULL) and list_id (NULL clears it: the
 * list is then found/created by name) and state active. Versioned by (version_ms, event_id)
 * against earlier subscription messages; older or equal → AW_STORE_STALE. Strings borrowed. */
enum aw_err aw_store_audience_upsert(struct aw_store *s, const char *account_id,
                                     const char *audience_id, const char *name, const char *list_id,
                                     uint64_t version_ms, const char *event_id,
                                     uint64_t now_unix_ms, struct aw_store_result *out);

/* Audience subscription remove: state disabled, disabled_version = version_ms, pending and
 * in-flight changes dropped, removed from the due index. The Klaviyo list is untouched and the
 * per-user versions are kept. Versioned like upsert. */
enum aw_err aw_store_audience_remove(struct aw_store *s, const char *account_id,
                                     const char *audience_id, uint64_t version_ms,
                                     const char *event_id, uint64_t now_unix_ms,
                                     struct aw_store_result *out);

/* ---- Batches: many operations in one pipeline ------------------------------------------- */

/* Creates an empty batch. Caller owns it (aw_store_batch_free). A batch is reusable after
 * aw_store_batch_reset. Not tied to a store. */
struct aw_store_batch *aw_store_batch_new(void);
void aw_store_batch_free(struct aw_store_batch *b);
void aw_store_batch_reset(struct aw_store_batch *b);

/* Appends an operation; returns its index in *index (may be NULL). c and strings are copied.
 * AW_ERR_INVALID (nothing appended) when ids are empty, too long or contain ':', '{', '}',
 * whitespace or control characters, or the change cannot be encoded. */
enum aw_err aw_store_batch_add_apply(struct aw_store_batch *b, const struct aw_change *c,
                                     size_t *index);
enum aw_err aw_store_batch_add_upsert(struct aw_store_batch *b, const char *account_id,
                                      const char *audience_id, const char *name,
                                      const char *list_id, uint64_t version_ms,
                                      const char *event_id, size_t *index);
enum aw_err aw_store_batch_add_remove(struct aw_store_batch *b, const char *account_id,
                                      const char *audience_id, uint64_t version_ms,
                                      const char *event_id, size_t *index);

/* Number of operations in the batch. */
size_t aw_store_batch_count(const struct aw_store_batch *b);

/* Runs every operation in order with two round trips (all scripts pipelined, then one due-index
 * update per audience pipelined). Returns AW_OK when Redis answered everything (individual ops
 * may still carry AW_ERR_INVALID / AW_ERR_PROTOCOL), AW_ERR_IO when the connection failed
 * (ops not confirmed carry AW_ERR_IO). NOSCRIPT (script cache flushed) → scripts reloaded and
 * the affected ops retried once. Owner thread only.
 * Order caveat: ops run in pipeline order, but an op that failed transiently (or got NOSCRIPT
 * while another client reloaded the scripts) is retried after later ops ran; for the same user
 * the retried older change is then "stale" and dropped, as if it had arrived late. */
enum aw_err aw_store_batch_exec(struct aw_store *s, struct aw_store_batch *b, uint64_t now_unix_ms);

/* Result of operation i after exec (borrowed until the next add/reset/exec). i < count. */
const struct aw_store_result *aw_store_batch_result(const struct aw_store_batch *b, size_t i);

/* ---- Read helpers (tests, /status, leader) ---------------------------------------------- */

/* The pending encoded change of one user into *out (caller-owned, free()); *out = NULL when none.
 * AW_ERR_IO on transport failure. */
enum aw_err aw_store_pending_get(struct aw_store *s, const char *account_id,
                                 const char *audience_id, const char *email, char **out);

/* Number of pending users of the audience. */
enum aw_err aw_store_pending_count(struct aw_store *s, const char *account_id,
                                   const char *audience_id, int64_t *out);

/* Copy of one meta field (see .local/redis-keys.md) into *out (caller-owned; NULL when unset). */
enum aw_err aw_store_meta_get(struct aw_store *s, const char *account_id, const char *audience_id,
                              const char *field, char **out);

/* Audiences due at now_unix_ms (score <= now), earliest first, at most max: an array of
 * caller-owned "<account>:<audience>" strings in *out (free each, then the array), count in *n. */
enum aw_err aw_store_due_list(struct aw_store *s, uint64_t now_unix_ms, size_t max, char ***out,
                              size_t *n);

/* Due score of one audience into *out (-1 when not in the index). */
enum aw_err aw_store_due_score(struct aw_store *s, const char *account_id, const char *audience_id,
                               int64_t *out);

/* Audiences the store has seen (aw:audiences), sorted, at most max: an array of caller-owned
 * "<account>:<audience>" strings in *out (free each, then the array), count in *n. */
enum aw_err aw_store_audience_list(struct aw_store *s, size_t max, char ***out, size_t *n);

/* Entries of the audience's in-flight batch (0 when none). */
enum aw_err aw_store_inflight_count(struct aw_store *s, const char *account_id,
                                    const char *audience_id, int64_t *out);

/* The leader lease as Redis holds it: *ttl_ms the remaining time (-2 when nobody holds it) and
 * *epoch the current fencing epoch. For the admin status command. */
enum aw_err aw_store_lease_info(struct aw_store *s, int64_t *ttl_ms, uint64_t *epoch);

/* ---- Leader lease and flush batches (DESIGN.md §5) -------------------------------------- */

/* Lease on aw:{leader}:lease. acquire: takes the lease when free (incrementing the fencing epoch)
 * or extends it when token already holds it (same epoch). renew: extends only when token holds it.
 * release: deletes only when token holds it. *held tells whether token holds the lease after the
 * call, *epoch the current fencing epoch (may be NULL). Atomic on the server (one script each).
 * token: caller's random string (borrowed). AW_ERR_IO on transport failure: the caller's lease
 * clock decides when the lease counts as lost (leader.c). */
enum aw_err aw_store_lease_acquire(struct aw_store *s, const char *token, uint64_t ttl_ms,
                                   bool *held, uint64_t *epoch);
enum aw_err aw_store_lease_renew(struct aw_store *s, const char *token, uint64_t ttl_ms, bool *held,
                                 uint64_t *epoch);
enum aw_err aw_store_lease_release(struct aw_store *s, const char *token);

enum aw_store_batch_status {
    AW_STORE_BATCH_EMPTY = 0, /* take: nothing pending (audience left the due index) */
    AW_STORE_BATCH_TAKEN,     /* take: a new in-flight batch */
    AW_STORE_BATCH_RESUMED,   /* take: the leftover in-flight batch, now stamped with our epoch */
    AW_STORE_BATCH_DONE,      /* ack/requeue: done */
    AW_STORE_BATCH_GONE       /* ack/requeue: that batch no longer exists (audience removed, or
                                 already acked): nothing to do */
};

/* A batch taken for upload. Owned by the caller; release with aw_store_taken_clear. */
struct aw_store_taken {
    enum aw_store_batch_status status;
    char *batch_id;      /* owned; "<epoch>-<n>", "" when empty */
    size_t n;            /* entries */
    char **emails;       /* owned array of owned strings (the users) */
    char **changes;      /* owned array of owned encoded changes (aw_change_decode) */
    int64_t pending;     /* still pending after the take */
    int64_t due_unix_ms; /* due score after the take (0 while a batch is in flight) */
};

/* Frees what *t owns and zeroes it. Safe on a zeroed struct. */
void aw_store_taken_clear(struct aw_store_taken *t);

/* Takes the audience's in-flight batch, or moves up to max_items pending users into a new one.
 * At most one in-flight batch per audience: changes arriving meanwhile stay pending (merged only
 * with newer pending changes) and go into the next batch, which the leader starts only after
 * this one is acked. Fencing: a batch stamped by a newer epoch → AW_ERR_NOT_LEADER; an older
 * epoch's batch is adopted (re-drive after a leader change). Updates the due index.
 * *out is overwritten (caller clears). Errors: AW_ERR_IO, AW_ERR_NOT_LEADER, AW_ERR_INVALID,
 * AW_ERR_PROTOCOL. */
enum aw_err aw_store_flush_take(struct aw_store *s, const char *account_id, const char *audience_id,
                                uint64_t epoch, size_t max_items, uint64_t now_unix_ms,
                                struct aw_store_taken *out);

/* Ends an in-flight batch after upload: deletes it, sets last_upload_ms = now and recomputes the
 * due score (still due while a drain has leftovers). *status DONE or GONE. Errors as take. */
enum aw_err aw_store_flush_ack(struct aw_store *s, const char *account_id, const char *audience_id,
                               uint64_t epoch, const char *batch_id, uint64_t now_unix_ms,
                               enum aw_store_batch_status *status);

/* Gives an in-flight batch back: each entry is merged under the user's newer pending change (if
 * any) and the batch deleted; last_upload_ms unchanged. *status DONE or GONE. Errors as take. */
enum aw_err aw_store_flush_requeue(struct aw_store *s, const char *account_id,
                                   const char *audience_id, uint64_t epoch, const char *batch_id,
                                   uint64_t now_unix_ms, enum aw_store_batch_status *status);

/* ---- Accounts and Klaviyo-side state (flusher; ingest writes the API key) ------------------
 * Per-account hash aw:{acct:<A>}:account (own hash tag: account keys never join an audience
 * script): `api_key` (SECRET: the key the newest messages carried; the config file's key wins
 * over it in the flusher), `block_until_ms` (unix ms until which a 429's Retry-After blocks the
 * account, so a new leader honours its predecessor's wait). Daily create-list counter:
 * aw:{acct:<A>}:lists_created:<unix day> (INCR, expires after 2 days). */

/* Stores api_key (borrowed; never logged) as the account's key. AW_ERR_INVALID for a bad id or
 * an empty/oversize (> 512 bytes) key; AW_ERR_IO on transport failure. Owner thread only. */
enum aw_err aw_store_account_put(struct aw_store *s, const char *account_id, const char *api_key);

/* Reads the account: *api_key (caller-owned, wipe and free; NULL when none stored) and
 * *block_until_unix_ms (0 when none). Either out pointer may be NULL. Errors as put. */
enum aw_err aw_store_account_get(struct aw_store *s, const char *account_id, char **api_key,
                                 uint64_t *block_until_unix_ms);

/* Records a Retry-After block of the account until until_unix_ms; never shortens a later one
 * already stored (one script). Errors as put. */
enum aw_err aw_store_account_block(struct aw_store *s, const char *account_id,
                                   uint64_t until_unix_ms);

/* Adds delta (+1 before a POST /api/lists, -1 to give it back when the request was not sent)
 * to the account's count for the UTC day of now_unix_ms; *count is the day's count after it.
 * Errors as put. */
enum aw_err aw_store_account_count_list_create(struct aw_store *s, const char *account_id,
                                               uint64_t now_unix_ms, int64_t delta, int64_t *count);

/* Sets (value non-NULL) or deletes (value NULL) a flusher-owned meta field of an audience.
 * Only fields starting with "klaviyo_" are accepted (the scripts own the others):
 * `klaviyo_list_id` = the list the flusher found or created by name. AW_ERR_INVALID otherwise.
 * Strings borrowed. Owner thread only. */
enum aw_err aw_store_meta_set(struct aw_store *s, const char *account_id, const char *audience_id,
                              const char *field, const char *value);

#endif
