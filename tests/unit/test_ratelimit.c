/* test_ratelimit.c -- sliding-window limits per (account, tier): never more than the burst in
 * any second or the steady limit in any minute, yet running at the limit; Retry-After blocks
 * one account only. Simulated clock. */
#include <stdlib.h>

#include "tests/harness.h"
#include "worker/flush/ratelimit.h"

/* Drives one account as fast as the limiter allows for duration_ms; returns send times. */
static size_t drive(struct aw_ratelimit *rl, const char *acct, struct aw_ratelimit_tier t,
                    uint64_t start, uint64_t duration_ms, uint64_t *times, size_t max)
{
    size_t n = 0;
    uint64_t now = start;
    while (now < start + duration_ms && n < max) {
        uint64_t wait = aw_ratelimit_acquire(rl, acct, t, now);
        if (wait == 0)
            times[n++] = now;
        else
            now += wait;
    }
    return n;
}

static size_t max_in_window(const uint64_t *times, size_t n, uint64_t span)
{
    size_t best = 0, lo = 0;
    for (size_t hi = 0; hi < n; hi++) {
        while (times[hi] - times[lo] >= span)
            lo++;
        if (hi - lo + 1 > best)
            best = hi - lo + 1;
    }
    return best;
}

int main(void)
{
    enum { MAX = 20000 };
    uint64_t *times = calloc(MAX, sizeof *times);
    struct aw_ratelimit *rl = aw_ratelimit_new(100);

    /* Tier M: 10/s, 150/min, over 3 minutes. */
    size_t n = drive(rl, "acct-a", AW_RATELIMIT_TIER_M, 1000, 180000, times, MAX);
    AW_CHECK_MSG(max_in_window(times, n, 1000) <= 10, "burst %zu", max_in_window(times, n, 1000));
    AW_CHECK_MSG(max_in_window(times, n, 60000) <= 150, "steady %zu",
                 max_in_window(times, n, 60000));
    AW_CHECK_MSG(n == 450, "at the limit: %zu requests in 3 min", n); /* exactly 3 x 150 */

    /* Tier L on another account is independent of account A's exhausted windows. */
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "acct-b", AW_RATELIMIT_TIER_M, 181000), 0);
    n = drive(rl, "acct-b", AW_RATELIMIT_TIER_L, 181000, 60000, times, MAX);
    AW_CHECK(max_in_window(times, n, 1000) <= 75);
    AW_CHECK_INT_EQ(n, 750);

    /* Retry-After blocks every tier of that account, and only that account. */
    aw_ratelimit_block(rl, "acct-c", 500000);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "acct-c", AW_RATELIMIT_TIER_L, 400000), 100000);
    AW_CHECK_INT_EQ(aw_ratelimit_blocked_for(rl, "acct-c", 450000), 50000);
    aw_ratelimit_block(rl, "acct-c", 450000); /* never shortens */
    AW_CHECK_INT_EQ(aw_ratelimit_blocked_for(rl, "acct-c", 450000), 50000);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "acct-d", AW_RATELIMIT_TIER_L, 400000), 0);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "acct-c", AW_RATELIMIT_TIER_L, 500000), 0);
    aw_ratelimit_free(rl);

    /* Headroom: 90 % of the published limits. */
    rl = aw_ratelimit_new(90);
    n = drive(rl, "acct-a", AW_RATELIMIT_TIER_M, 0, 60000, times, MAX);
    AW_CHECK_INT_EQ(n, 135);
    AW_CHECK(max_in_window(times, n, 1000) <= 9);
    aw_ratelimit_free(rl);
    free(times);
    return aw_test_done();
}
