/* test_ratelimit.c -- sliding-window limits per (account, endpoint): never more than the burst
 * in any second or the steady limit in any minute, yet running at the limit; every endpoint has
 * its own windows (job polls do not eat the import budget); what the server says remains
 * (RateLimit-Remaining / -Reset) is never exceeded; Retry-After blocks one account only.
 * Simulated clock. */
#include <stdlib.h>

#include "tests/harness.h"
#include "worker/flush/ratelimit.h"

/* Drives one (account, endpoint) as fast as the limiter allows for duration_ms; returns the
 * number of requests and their send times. */
static size_t drive(struct aw_ratelimit *rl, const char *acct, enum aw_api_endpoint e,
                    uint64_t start, uint64_t duration_ms, uint64_t *times, size_t max)
{
    size_t n = 0;
    uint64_t now = start;
    while (now < start + duration_ms && n < max) {
        uint64_t wait = aw_ratelimit_acquire(rl, acct, e, now);
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

enum { MAX = 20000 };

static void test_windows(uint64_t *times)
{
    struct aw_ratelimit *rl = aw_ratelimit_new(100);
    const struct aw_api_op *imp = aw_api_get(AW_API_IMPORT_CREATE);
    const struct aw_api_op *get = aw_api_get(AW_API_GET_PROFILES);
    AW_CHECK(imp->burst_per_s == 10 && imp->steady_per_min == 150); /* the figures below */

    /* bulk import: 10/s, 150/min, over 3 minutes */
    size_t n = drive(rl, "acct-a", AW_API_IMPORT_CREATE, 1000, 180000, times, MAX);
    AW_CHECK_MSG(max_in_window(times, n, 1000) <= imp->burst_per_s, "burst %zu",
                 max_in_window(times, n, 1000));
    AW_CHECK_MSG(max_in_window(times, n, 60000) <= imp->steady_per_min, "steady %zu",
                 max_in_window(times, n, 60000));
    AW_CHECK_MSG(n == 3 * imp->steady_per_min, "at the limit: %zu requests in 3 min", n);

    /* another account is independent of account A's exhausted windows */
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "acct-b", AW_API_IMPORT_CREATE, 181000), 0);
    n = drive(rl, "acct-b", AW_API_GET_PROFILES, 181000, 60000, times, MAX);
    AW_CHECK(max_in_window(times, n, 1000) <= get->burst_per_s);
    AW_CHECK_INT_EQ(n, get->steady_per_min);

    /* Retry-After blocks every endpoint of that account, and only that account */
    aw_ratelimit_block(rl, "acct-c", 500000);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "acct-c", AW_API_GET_PROFILES, 400000), 100000);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "acct-c", AW_API_IMPORT_GET_JOB, 400000), 100000);
    AW_CHECK_INT_EQ(aw_ratelimit_blocked_for(rl, "acct-c", 450000), 50000);
    aw_ratelimit_block(rl, "acct-c", 450000); /* never shortens */
    AW_CHECK_INT_EQ(aw_ratelimit_blocked_for(rl, "acct-c", 450000), 50000);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "acct-d", AW_API_GET_PROFILES, 400000), 0);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "acct-c", AW_API_GET_PROFILES, 500000), 0);
    AW_CHECK_INT_EQ(aw_ratelimit_blocked_for(rl, "acct-unknown", 0), 0);
    aw_ratelimit_free(rl);

    /* headroom: 90 % of the published limits */
    rl = aw_ratelimit_new(90);
    n = drive(rl, "acct-a", AW_API_IMPORT_CREATE, 0, 60000, times, MAX);
    AW_CHECK_INT_EQ(n, 135);
    AW_CHECK(max_in_window(times, n, 1000) <= 9);
    /* paced: two requests at least 1000 / 9 ms apart, so that Klaviyo's fixed 1 s windows
     * (here at every phase) see at most the published 10 even when every other request
     * arrives 100 ms late; bursts sent at once would put up to 18 into one of them */
    size_t gap_min = SIZE_MAX, fixed_max = 0;
    for (size_t i = 1; i < n; i++)
        if (times[i] - times[i - 1] < gap_min)
            gap_min = (size_t)(times[i] - times[i - 1]);
    for (uint64_t phase = 0; phase < 1000; phase += 50) {
        size_t count[64] = {0};
        for (size_t i = 0; i < n; i++) {
            uint64_t arrival = times[i] + (i % 2 ? 100u : 0u) + phase;
            if (arrival / 1000 < 64 && ++count[arrival / 1000] > fixed_max)
                fixed_max = count[arrival / 1000];
        }
    }
    AW_CHECK_MSG(gap_min >= 1000 / 9, "two requests %zu ms apart", gap_min);
    AW_CHECK_MSG(fixed_max <= 10, "%zu in one fixed window", fixed_max);
    aw_ratelimit_free(rl);
    /* the pace is a schedule: requests each sent 4 ms after their slot (a lane's wake) do not
     * push the next slots back; 20 of them end where 20 on time would (19 steps of 111 ms) plus
     * the last one's 4 ms and, twice, the burst window's own wait: the 10th and the 19th go
     * 1 s after the 1st and the 10th actually went (5 ms each), not 111 ms x 9 = 999 ms;
     * measured from the last send instead, it was 19 x 115 */
    rl = aw_ratelimit_new(90);
    uint64_t now = 0, late = 4;
    for (size_t i = 0; i < 20; i++) {
        uint64_t wait;
        while ((wait = aw_ratelimit_acquire(rl, "acct-a", AW_API_IMPORT_CREATE, now)) != 0)
            now += wait + late;
        times[i] = now;
    }
    AW_CHECK_MSG(times[19] <= 19 * (1000 / 9) + late + 2 * (late + 1), "20th request at %llu ms",
                 (unsigned long long)times[19]);
    /* one sent 50 ms late moves the schedule: the next is still a gap less the slack after it */
    AW_CHECK_INT_EQ(aw_ratelimit_wait(rl, "acct-a", AW_API_IMPORT_CREATE, times[19]),
                    times[19] - late + 1000 / 9 - times[19]);
    now = times[19] - late + 1000 / 9 + 50;
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "acct-a", AW_API_IMPORT_CREATE, now), 0);
    AW_CHECK_INT_EQ(aw_ratelimit_wait(rl, "acct-a", AW_API_IMPORT_CREATE, now), 1000 / 9 - 10);
    /* at 75/s the headroom is 8 a second: no pacing, a removal batch's lookups go at once */
    n = drive(rl, "acct-a", AW_API_GET_PROFILES, 0, 1000, times, MAX);
    AW_CHECK_INT_EQ(n, 67);
    AW_CHECK_INT_EQ(times[n - 1], 0);
    aw_ratelimit_free(rl);
}

/* Klaviyo limits per endpoint: exhausting the imports leaves job polls, import errors and list
 * creation their own budgets (under the old shared tiers, polls ate the import budget). */
static void test_endpoints_independent(uint64_t *times)
{
    struct aw_ratelimit *rl = aw_ratelimit_new(90);
    size_t n = drive(rl, "acct", AW_API_IMPORT_CREATE, 0, 60000, times, MAX);
    AW_CHECK_INT_EQ(n, 135);
    AW_CHECK(aw_ratelimit_acquire(rl, "acct", AW_API_IMPORT_CREATE, 59999) > 0); /* exhausted */
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "acct", AW_API_IMPORT_GET_JOB, 59999), 0);
    n = drive(rl, "acct", AW_API_IMPORT_GET_JOB, 60000, 59999, times, MAX);
    AW_CHECK_INT_EQ(n, 134); /* 135 in any minute, one of them taken at 59999 */
    n = drive(rl, "acct", AW_API_IMPORT_ERRORS, 60000, 60000, times, MAX);
    AW_CHECK_INT_EQ(n, 135);
    n = drive(rl, "acct", AW_API_CREATE_LIST, 60000, 1000, times, MAX);
    AW_CHECK_INT_EQ(n, 9); /* its own burst */
    /* removals and adds to a list are two operations, each with its own window */
    n = drive(rl, "acct", AW_API_LIST_REMOVE_PROFILES, 60000, 1000, times, MAX);
    AW_CHECK_INT_EQ(n, 9);
    n = drive(rl, "acct", AW_API_LIST_ADD_PROFILES, 60000, 1000, times, MAX);
    AW_CHECK_INT_EQ(n, 9);
    aw_ratelimit_free(rl);
}

/* The server's RateLimit-Remaining / -Reset: never more than it says before the reset. */
static void test_observe(uint64_t *times)
{
    struct aw_ratelimit *rl = aw_ratelimit_new(90);
    /* another integration used most of the minute: 2 left, reset in 10 s */
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "a", AW_API_IMPORT_CREATE, 1000), 0);
    aw_ratelimit_observe(rl, "a", AW_API_IMPORT_CREATE, 2, 10, 1000);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "a", AW_API_IMPORT_CREATE, 1200), 0);
    /* asking first takes nothing: the same answer, and the slot is still there */
    AW_CHECK_INT_EQ(aw_ratelimit_wait(rl, "a", AW_API_IMPORT_CREATE, 1400), 0);
    AW_CHECK_INT_EQ(aw_ratelimit_wait(rl, "a", AW_API_IMPORT_CREATE, 1400), 0);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "a", AW_API_IMPORT_CREATE, 1400), 0);
    AW_CHECK_INT_EQ(aw_ratelimit_wait(rl, "a", AW_API_IMPORT_CREATE, 1600), 11000 - 1600);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "a", AW_API_IMPORT_CREATE, 1600), 11000 - 1600);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "a", AW_API_IMPORT_CREATE, 10999), 1);
    /* only that (account, endpoint) */
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "a", AW_API_IMPORT_GET_JOB, 1600), 0);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "b", AW_API_IMPORT_CREATE, 1600), 0);
    /* after the reset our own windows decide again */
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "a", AW_API_IMPORT_CREATE, 11000), 0);
    size_t n = drive(rl, "a", AW_API_IMPORT_CREATE, 11000, 1000, times, MAX);
    AW_CHECK_INT_EQ(n, 8); /* 9 per second, one taken at 11000 */

    /* a driven run under an observation sends exactly what remains before the reset */
    aw_ratelimit_observe(rl, "c", AW_API_GET_PROFILES, 5, 30, 100000);
    n = drive(rl, "c", AW_API_GET_PROFILES, 100000, 29999, times, MAX);
    AW_CHECK_INT_EQ(n, 5);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "c", AW_API_GET_PROFILES, 130000), 0);

    /* within one window (its end within 1 s) a larger count never loosens a smaller one: it is
     * an older answer arriving late; the next window's word replaces it */
    aw_ratelimit_observe(rl, "d", AW_API_SUBSCRIBE, 0, 60, 0);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "d", AW_API_SUBSCRIBE, 0), 60000);
    aw_ratelimit_observe(rl, "d", AW_API_SUBSCRIBE, 1, 60, 100);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "d", AW_API_SUBSCRIBE, 100), 60000);
    aw_ratelimit_observe(rl, "d", AW_API_SUBSCRIBE, 1, 60, 2000);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "d", AW_API_SUBSCRIBE, 2000), 0);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "d", AW_API_SUBSCRIBE, 2100), 62000 - 2100);

    /* the server never loosens our limits: plenty remaining, still 9 per second */
    aw_ratelimit_observe(rl, "e", AW_API_IMPORT_CREATE, 100000, 60, 0);
    n = drive(rl, "e", AW_API_IMPORT_CREATE, 0, 1000, times, MAX);
    AW_CHECK_INT_EQ(n, 9);

    /* absent headers (-1) change nothing; a reset of 0 is already over */
    aw_ratelimit_observe(rl, "f", AW_API_IMPORT_CREATE, -1, 30, 0);
    aw_ratelimit_observe(rl, "f", AW_API_IMPORT_CREATE, 0, -1, 0);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "f", AW_API_IMPORT_CREATE, 0), 0);
    aw_ratelimit_observe(rl, "f", AW_API_IMPORT_CREATE, 0, 0, 5000);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "f", AW_API_IMPORT_CREATE, 5000), 0);
    /* an absurd reset is capped at a day */
    aw_ratelimit_observe(rl, "g", AW_API_CREATE_LIST, 0, 10L * 86400L, 0);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "g", AW_API_CREATE_LIST, 0), 86400000);
    /* a Retry-After block longer than the server's reset still wins */
    aw_ratelimit_observe(rl, "h", AW_API_CREATE_LIST, 0, 5, 0);
    aw_ratelimit_block(rl, "h", 9000);
    AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "h", AW_API_CREATE_LIST, 0), 9000);
    /* requests still on the wire are not in the server's count yet: three sent at once, the
     * first answer says 5 remain, so only 5 - 2 more may go before the reset */
    for (int i = 0; i < 3; i++) /* 20 ms apart */
        AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "i", AW_API_GET_PROFILES, 20u * (unsigned)i), 0);
    aw_ratelimit_observe(rl, "i", AW_API_GET_PROFILES, 5, 60, 100);
    n = drive(rl, "i", AW_API_GET_PROFILES, 100, 59000, times, MAX);
    AW_CHECK_INT_EQ(n, 3);
    /* once the window is over, the next one's word replaces it */
    aw_ratelimit_observe(rl, "i", AW_API_GET_PROFILES, -1, -1, 200);
    aw_ratelimit_observe(rl, "i", AW_API_GET_PROFILES, 7, 60, 61000);
    n = drive(rl, "i", AW_API_GET_PROFILES, 61000, 59000, times, MAX);
    AW_CHECK_INT_EQ(n, 4); /* 3 driven requests still unobserved: 7 - 3 */
    /* answers out of order: three on the wire, the newest answer says 5 (3 for us), then an
     * older one says 9: still 3 */
    for (int i = 0; i < 3; i++)
        AW_CHECK_INT_EQ(aw_ratelimit_acquire(rl, "j", AW_API_GET_PROFILES, 20u * (unsigned)i), 0);
    aw_ratelimit_observe(rl, "j", AW_API_GET_PROFILES, 5, 60, 100);
    aw_ratelimit_observe(rl, "j", AW_API_GET_PROFILES, 9, 60, 150);
    n = drive(rl, "j", AW_API_GET_PROFILES, 150, 59000, times, MAX);
    AW_CHECK_INT_EQ(n, 3);
    aw_ratelimit_free(rl);
}

int main(void)
{
    uint64_t *times = calloc(MAX, sizeof *times);
    test_windows(times);
    test_endpoints_independent(times);
    test_observe(times);
    free(times);
    return aw_test_done();
}
