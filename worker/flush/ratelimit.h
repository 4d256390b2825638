/* ratelimit.h -- client-side rate limiting per (account, endpoint). Klaviyo limits each
 * account per operation (x-klaviyo-ratelimit: burst per second, steady per minute; numbers from
 * the API table, worker/klaviyo/api.h), so every endpoint gets its own windows: job polls never
 * eat the import budget. On top of our own count the limiter takes what responses say
 * (RateLimit-Remaining / RateLimit-Reset): other integrations share the account's quota, so
 * it never sends more than the server says remain before the reset. Retry-After blocks stop
 * the whole account (docs/design.md §5). Pure: the caller passes now_ms (monotonic); no I/O. Not
 * thread-safe: the flusher's lanes use it under the flusher's lock. */
#ifndef AW_FLUSH_RATELIMIT_H
#define AW_FLUSH_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "worker/klaviyo/api.h"

struct aw_ratelimit;

/* New limiter running at scale_pct of the published limits (headroom, e.g. 90; 0 or > 100 =
 * 100). A limit scaled below 1 stays 1. Free with aw_ratelimit_free. */
struct aw_ratelimit *aw_ratelimit_new(unsigned scale_pct);
/* NULL is a no-op. */
void aw_ratelimit_free(struct aw_ratelimit *rl);

/* What aw_ratelimit_acquire would answer now, without taking the slot: 0 when one is free. */
uint64_t aw_ratelimit_wait(struct aw_ratelimit *rl, const char *account,
                           enum aw_api_endpoint endpoint_id, uint64_t now_ms);

/* Takes one request slot of (account, endpoint) when available: returns 0 and counts the
 * request. Otherwise returns how many ms to wait before a slot may be free (nothing counted):
 * the longest of the account's Retry-After block, the endpoint's burst and steady windows and
 * the server's last word (aw_ratelimit_observe). account is copied. */
uint64_t aw_ratelimit_acquire(struct aw_ratelimit *rl, const char *account,
                              enum aw_api_endpoint endpoint, uint64_t now_ms);

/* Records the answer to a request acquire let through, and what it said: `remaining` requests
 * may still be sent in the next `reset_s` seconds (RateLimit-Remaining / RateLimit-Reset, as
 * struct aw_klaviyo_response carries them; negative = header absent: only the request's end is
 * counted). Until the reset, acquire lets at most `remaining` more requests through, whatever
 * our own windows allow, less the endpoint's other requests still on the wire (acquired, not yet
 * observed: the server counts them once they arrive); a later observation replaces an earlier
 * one. reset_s is capped at a day. Call it once per request acquire let through. */
void aw_ratelimit_observe(struct aw_ratelimit *rl, const char *account,
                          enum aw_api_endpoint endpoint, long remaining, long reset_s,
                          uint64_t now_ms);

/* Blocks every request of account (all endpoints) until until_ms (a 429's Retry-After). A
 * later block never shortens an earlier one. */
void aw_ratelimit_block(struct aw_ratelimit *rl, const char *account, uint64_t until_ms);

/* ms until account's Retry-After block ends (0 when none). */
uint64_t aw_ratelimit_blocked_for(const struct aw_ratelimit *rl, const char *account,
                                  uint64_t now_ms);

#endif
