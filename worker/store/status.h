/* status.h -- read-only views of the store for `aw-worker status`, /status and tests: accounts,
 * their audiences and each stream's counts and times. Reads are pipelined; nothing here writes.
 * Owner thread of the store only. */
#ifndef AW_WORKER_STORE_STATUS_H
#define AW_WORKER_STORE_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct aw_store;

/* Every account the store has seen, sorted: caller-owned array of caller-owned strings. */
enum aw_err aw_store_accounts(struct aw_store *s, char ***out, size_t *n);

/* The audiences of one account, sorted (same ownership). */
enum aw_err aw_store_audiences(struct aw_store *s, const char *account_id, char ***out, size_t *n);

/* One stream (an audience, or the account's profiles when audience_id is NULL). Strings owned
 * (aw_store_stream_info_clear); -1 / NULL when unset. */
struct aw_store_stream_info {
    int64_t pending;          /* entries waiting */
    int64_t inflight;         /* entries of the batch being uploaded */
    int64_t due_unix_ms;      /* -1 not due, 0 now */
    int64_t first_pending_ms; /* unix ms */
    int64_t last_upload_ms;   /* unix ms */
    int64_t batch_started_ms; /* unix ms, when a batch is in flight */
    char *name;
    char *state; /* "active" | "disabled" */
    char *list_id;
    char *klaviyo_list_id;
    char *batch_id;
};

enum aw_err aw_store_stream_info(struct aw_store *s, const char *account_id,
                                 const char *audience_id, struct aw_store_stream_info *out);
void aw_store_stream_info_clear(struct aw_store_stream_info *info);

/* A stream named by account and audience (NULL: the account's profile stream); borrowed. */
struct aw_store_stream_ref {
    const char *account_id;
    const char *audience_id;
};

/* The streams refs[0..n), whatever their accounts, read in pipelines of up to 1,000 streams (one
 * round trip each): out[i] for refs[i] (out holds n; each cleared with
 * aw_store_stream_info_clear; all cleared on error). */
enum aw_err aw_store_streams_info(struct aw_store *s, const struct aw_store_stream_ref *refs,
                                  size_t n, struct aw_store_stream_info *out);

/* What `status` shows of an account besides its streams. */
struct aw_store_account_view {
    char **audiences; /* sorted, owned (aw_store_account_view_clear) */
    size_t n_audiences;
    uint64_t paused_until_ms; /* Klaviyo's pause (aw_store_account_paused), 0 when none */
    long paused_status;
};

/* accounts[0..n) (borrowed) in one pipeline: out[i] for accounts[i] (out holds n; all cleared
 * on error). */
enum aw_err aw_store_accounts_view(struct aw_store *s, const char *const *accounts, size_t n,
                                   struct aw_store_account_view *out);
void aw_store_account_view_clear(struct aw_store_account_view *v);

/* Frees an array of strings returned above. */
void aw_store_strings_free(char **v, size_t n);

#endif
