/* account_ops.h -- per-account state in Redis (hash aw:{<account>}:acct, fields.def ACCT_*) and
 * the Klaviyo-side facts the leader keeps there: the API key the messages carried, a 429's
 * Retry-After block, the daily count of list creations, the list found or created by name,
 * cached profile ids. Owner thread of the store only. */
#ifndef AW_WORKER_STORE_ACCOUNT_OPS_H
#define AW_WORKER_STORE_ACCOUNT_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct aw_store;

/* Stores api_key (borrowed; SECRET, never logged) as the account's key, for the leader (the
 * config file's key wins over it there), unless a message of an equal or newer version_ms
 * carried another one (a lagging replica never writes an old key back; equal versions: the
 * greater key); a different key than the stored one ends a pause (the leader tries it at once;
 * account_key.lua). AW_ERR_INVALID for a bad id or a key that is empty, oversize (> 512 bytes)
 * or not printable ASCII without spaces (it goes into an HTTP header); AW_ERR_IO on transport
 * failure. */
enum aw_err aw_store_account_put(struct aw_store *s, const char *account_id, const char *api_key,
                                 uint64_t version_ms);

/* The leader paused the account (Klaviyo refused its key with status, 0 = no key anywhere)
 * until until_unix_ms; or (unpause) it resumed. Kept in Redis so every replica's `status` and
 * the next leader see it. */
enum aw_err aw_store_account_pause(struct aw_store *s, const char *account_id,
                                   uint64_t until_unix_ms, long status);
enum aw_err aw_store_account_unpause(struct aw_store *s, const char *account_id);

/* The account's pause as Redis holds it: *until_unix_ms 0 when not paused. */
enum aw_err aw_store_account_paused(struct aw_store *s, const char *account_id,
                                    uint64_t *until_unix_ms, long *status);

/* An operator paused (`aw-worker pause`) or resumed the account: a field of the global hash
 * {aw:due}:paused (account -> the unix ms it was paused; a second pause keeps the first time).
 * Distinct from Klaviyo's refusal above: neither a new key nor an accepted request ends it,
 * only resume. *changed false when it already was (resp. was not) paused. */
enum aw_err aw_store_account_operator_pause(struct aw_store *s, const char *account_id,
                                            uint64_t now_unix_ms, bool *changed);
enum aw_err aw_store_account_operator_resume(struct aw_store *s, const char *account_id,
                                             bool *changed);

/* Every account an operator paused, sorted: caller-owned arrays *ids (of caller-owned strings,
 * aw_store_strings_free) and *since_unix_ms (free), *n entries. One read (the leader, each
 * scan). */
enum aw_err aw_store_operator_paused(struct aw_store *s, char ***ids, uint64_t **since_unix_ms,
                                     size_t *n);

/* Reads the account: *api_key (caller-owned, wipe and free; NULL when none stored) and
 * *block_until_unix_ms (0 when none). Either out pointer may be NULL. */
enum aw_err aw_store_account_get(struct aw_store *s, const char *account_id, char **api_key,
                                 uint64_t *block_until_unix_ms);

/* Records a Retry-After block until until_unix_ms; never shortens a later one (block.lua). */
enum aw_err aw_store_account_block(struct aw_store *s, const char *account_id,
                                   uint64_t until_unix_ms);

/* Adds delta (+1 before a POST /api/lists, -1 to give it back when it was not sent) to the
 * account's count for the UTC day of now_unix_ms; *count is the day's count after it. The
 * counter expires after two days. */
enum aw_err aw_store_account_count_list_create(struct aw_store *s, const char *account_id,
                                               uint64_t now_unix_ms, int64_t delta, int64_t *count);

/* Sets (value non-NULL) or deletes the audience's list found or created by name
 * (META_KLAVIYO_LIST_ID). Strings borrowed. */
enum aw_err aw_store_audience_list_set(struct aw_store *s, const char *account_id,
                                       const char *audience_id, const char *list_id);

/* Cached Klaviyo profile ids of emails[0..n) (one pipeline): ids[i] caller-owned or NULL. */
enum aw_err aw_store_profile_ids_get(struct aw_store *s, const char *account_id,
                                     const char *const *emails, size_t n, char **ids);

/* Caches (id non-NULL) or forgets (NULL: Klaviyo answered 404) one user's profile id. Only
 * users with state keep one, so the cache expires with the user (profile_id.lua). */
enum aw_err aw_store_profile_id_set(struct aw_store *s, const char *account_id, const char *email,
                                    const char *id);

/* aw_store_profile_id_set for emails[0..n) and ids[0..n) (one pipeline). Strings borrowed. */
enum aw_err aw_store_profile_ids_set(struct aw_store *s, const char *account_id,
                                     const char *const *emails, const char *const *ids, size_t n);

#endif
