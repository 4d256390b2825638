/* ratelimit.h -- client-side rate limiting per (account, endpoint tier) from the spec's
 * x-klaviyo-ratelimit (burst per second, steady per minute), so a steady backlog runs at the
 * limit without provoking 429s, plus Retry-After blocks (DESIGN.md §5). Pure: the caller passes
 * now_ms (monotonic). One instance per thread (the flusher's). */
#ifndef AW_WORKER_RATELIMIT_H
#define AW_WORKER_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

struct aw_ratelimit;

/* An endpoint tier: at most burst_per_s requests in any second and steady_per_min in any
 * minute. Tiers are compared by value, so two endpoints with the same limits share buckets
 * (conservative when Klaviyo counts them separately). */
struct aw_ratelimit_tier {
    uint32_t burst_per_s;
    uint32_t steady_per_min;
};

/* Klaviyo's tiers for the operations the worker uses (revision 2026-07-15 spec):
 * lists create/relationships, bulk import jobs (POST, GET, import-errors): 10/s, 150/m;
 * GET profiles/lists, subscription bulk jobs: 75/s, 750/m. */
#define AW_RATELIMIT_TIER_M ((struct aw_ratelimit_tier){10, 150})
#define AW_RATELIMIT_TIER_L ((struct aw_ratelimit_tier){75, 750})

/* scale_pct < 100 runs below the published limits (headroom), e.g. 90. */
struct aw_ratelimit *aw_ratelimit_new(unsigned scale_pct);
void aw_ratelimit_free(struct aw_ratelimit *rl);

/* Takes one request slot for (account, tier) when available: returns 0 and consumes it.
 * Otherwise returns how many ms to wait before a slot may be free (nothing consumed). Also
 * honours a Retry-After block set for the account. */
uint64_t aw_ratelimit_acquire(struct aw_ratelimit *rl, const char *account,
                              struct aw_ratelimit_tier tier, uint64_t now_ms);

/* Blocks every request of account (all tiers) until until_ms (a 429's Retry-After). A later
 * block never shortens an earlier one. */
void aw_ratelimit_block(struct aw_ratelimit *rl, const char *account, uint64_t until_ms);

/* ms until account's Retry-After block ends (0 when none). */
uint64_t aw_ratelimit_blocked_for(const struct aw_ratelimit *rl, const char *account,
                                  uint64_t now_ms);

#endif
