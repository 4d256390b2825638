#include "common/backoff.h"

void aw_backoff_init(struct aw_backoff *b, uint64_t base_ms, uint64_t max_ms, uint64_t seed)
{
    b->base_ms = base_ms ? base_ms : 1;
    b->max_ms = max_ms < b->base_ms ? b->base_ms : max_ms;
    b->attempt = 0;
    b->seed = seed ? seed : 0x9E3779B97F4A7C15ull;
}

static uint64_t next_rand(struct aw_backoff *b)
{
    uint64_t x = b->seed;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b->seed = x;
    return x;
}

uint64_t aw_backoff_next_ms(struct aw_backoff *b)
{
    uint64_t ceiling = b->base_ms;
    for (uint32_t i = 0; i < b->attempt && ceiling < b->max_ms; i++)
        ceiling *= 2;
    if (ceiling > b->max_ms)
        ceiling = b->max_ms;
    if (b->attempt < UINT32_MAX)
        b->attempt++;
    uint64_t half = ceiling / 2;
    /* Equal jitter: never below half the ceiling, so a storm of retries still spreads out. */
    return half + next_rand(b) % (ceiling - half + 1);
}

void aw_backoff_reset(struct aw_backoff *b)
{
    b->attempt = 0;
}
