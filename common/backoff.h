/* backoff.h -- capped exponential backoff with full jitter. Plain data, one owner. */
#ifndef AW_COMMON_BACKOFF_H
#define AW_COMMON_BACKOFF_H

#include <stdint.h>

struct aw_backoff {
    uint64_t base_ms; /* first delay ceiling */
    uint64_t max_ms;  /* cap of the delay ceiling */
    uint32_t attempt; /* failures since the last reset */
    uint64_t seed;    /* PRNG state (xorshift); 0 is replaced by a fixed non-zero value */
};

/* Initialises with the given base and cap. */
void aw_backoff_init(struct aw_backoff *b, uint64_t base_ms, uint64_t max_ms, uint64_t seed);

/* Delay to wait before the next attempt: uniform in [ceiling/2, ceiling] where
 * ceiling = min(max, base * 2^attempt); increments attempt. */
uint64_t aw_backoff_next_ms(struct aw_backoff *b);

/* Forgets failures (after a success). */
void aw_backoff_reset(struct aw_backoff *b);

#endif
