/* lease.h -- the leader lease in Redis (worker/store/scripts/lease.lua, DESIGN §5): a random
 * token with a TTL, acquired only if absent, renewed and released only by its holder, with a
 * fencing epoch that grows with every new tenure. leader.c decides when to call these and when
 * the lease counts as lost. Owner thread of the store only. */
#ifndef AW_WORKER_STORE_LEASE_H
#define AW_WORKER_STORE_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

struct aw_store;

/* acquire: sets the lease to token if absent (a new epoch) or extends it when token already
 * holds it (same epoch). renew: extends only when token holds it. release: deletes only when
 * token holds it. *held tells whether token holds the lease after the call, *epoch the current
 * epoch (either may be NULL). token: caller's random string (borrowed, 1..256 bytes).
 * AW_ERR_IO on transport failure: the caller's clock decides when the lease counts as lost. */
enum aw_err aw_store_lease_acquire(struct aw_store *s, const char *token, uint64_t ttl_ms,
                                   bool *held, uint64_t *epoch);
enum aw_err aw_store_lease_renew(struct aw_store *s, const char *token, uint64_t ttl_ms, bool *held,
                                 uint64_t *epoch);
enum aw_err aw_store_lease_release(struct aw_store *s, const char *token);

/* Remaining TTL of the lease (*ttl_ms -1 when nobody holds it), the current epoch and, when
 * holder is not NULL, the holder's name (the token's part before '/', caller-owned; NULL when
 * nobody holds it or the token names nobody). One pipeline. */
enum aw_err aw_store_lease_info(struct aw_store *s, int64_t *ttl_ms, uint64_t *epoch,
                                char **holder);

#endif
