/* accounts.h -- the flusher's view of each account: its API key (the config file's, else the
 * one the messages carried, from Redis), a predecessor's Retry-After block, and whether it is
 * paused because Klaviyo refused its key (401/403/410) or because an operator paused it. A paused
 * account only delays its own streams and gives its batches back; a refused one is retried
 * after a pause and resumes on the first accepted request, an operator's pause lasts until
 * `aw-worker resume`. Flusher
 * thread only. */
#ifndef AW_WORKER_FLUSH_ACCOUNTS_H
#define AW_WORKER_FLUSH_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "worker/klaviyo/parse.h"

struct aw_flush_ctx;

#define AW_FLUSH_PAUSE_MS 60000u /* a paused account is tried again after this */

/* The account's bulk import jobs as its last listing showed them (GET
 * /api/profile-bulk-import-jobs, newest first, one page): one request answers the status polls
 * of every job of the account it holds (job_upload.c). */
struct aw_flush_job_board {
    struct aw_parse_import_jobs jobs; /* the listing's page (no cursor kept) */
    uint64_t sent_ms;                 /* monotonic ms that listing was sent; 0: none */
    unsigned busy;                    /* listings on the wire */
    uint64_t busy_sent_ms;            /* the newest of them was sent then */
};

struct aw_flush_account {
    char *id;                /* owned */
    char *api_key;           /* SECRET, owned; NULL until loaded (or none anywhere) */
    bool loaded;             /* key and Retry-After block read in this tenure */
    bool paused;             /* Klaviyo refused the key (401/403/410) or none anywhere */
    bool operator_paused;    /* `aw-worker pause`: only `aw-worker resume` ends it */
    bool operator_listed;    /* scratch of aw_flush_accounts_set_operator_paused */
    uint64_t paused_until;   /* monotonic ms */
    uint64_t last_pause_log; /* monotonic ms */
    unsigned pause_count;    /* refusals since the last ERROR line */
    struct aw_flush_job_board board;
};

struct aw_flush_accounts;

struct aw_flush_accounts *aw_flush_accounts_new(void);
/* Frees every account (wiping keys). NULL is a no-op. */
void aw_flush_accounts_free(struct aw_flush_accounts *a);

/* The account id (created on first use; borrowed pointer valid until free). */
struct aw_flush_account *aw_flush_accounts_get(struct aw_flush_accounts *a, const char *id);

/* Frees the job boards whose listing was sent before keep_ms ago (no job waits on them). */
void aw_flush_accounts_trim_boards(struct aw_flush_accounts *a, uint64_t now_ms, uint64_t keep_ms);

/* Forgets every loaded key (a new tenure reads keys and blocks again). */
void aw_flush_accounts_unload(struct aw_flush_accounts *a);

/* Paused accounts right now (either way; the aw_accounts_paused gauge). */
size_t aw_flush_accounts_paused(const struct aw_flush_accounts *a);

/* The accounts an operator paused, as Redis holds them (ids[0..n), borrowed): those become
 * operator-paused, every other account stops being. Logs each change once. */
void aw_flush_accounts_set_operator_paused(struct aw_flush_accounts *a, char *const *ids, size_t n);

/* Reads the account's key (config file first, else the stored one) and a stored Retry-After
 * block (into the limiter) unless already loaded. AW_ERR_IO when Redis failed. */
enum aw_err aw_flush_account_load(struct aw_flush_ctx *ctx, struct aw_flush_account *acc);

/* Klaviyo refused the key (status; 0 = no key anywhere): paused for AW_FLUSH_PAUSE_MS, key
 * re-read before the retry; one ERROR line per pause period with the refusal count. */
void aw_flush_account_pause(struct aw_flush_ctx *ctx, struct aw_flush_account *acc, long status,
                            const char *reason);

/* The key was accepted: the account is no longer paused. */
void aw_flush_account_resume(struct aw_flush_ctx *ctx, struct aw_flush_account *acc);

/* True while paused at now (monotonic ms), checking Redis: a Klaviyo pause cleared there (a new
 * key arrived with a message) ends at once; an operator's pause holds until resumed. For the
 * scheduler (one Redis read per paused account). */
bool aw_flush_account_check_pause(struct aw_flush_ctx *ctx, struct aw_flush_account *acc,
                                  uint64_t now_ms);

/* True while paused at now (monotonic ms): by an operator, or by Klaviyo's refusal. */
bool aw_flush_account_is_paused(const struct aw_flush_account *acc, uint64_t now_ms);

#endif
