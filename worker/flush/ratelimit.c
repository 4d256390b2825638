#include "worker/flush/ratelimit.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

/* Sliding-window logs: a ring of the send times of the last `limit` requests. A request may go
 * when the oldest of them left the window, which guarantees at most `limit` requests in ANY
 * window -- a token bucket would allow up to twice the steady limit in the first minute. */
struct window {
    uint64_t *times; /* ring of limit entries, 0 = unused */
    uint32_t limit;
    uint32_t head; /* index of the oldest entry */
    uint64_t span_ms;
};

struct entry {
    char *account;
    struct aw_ratelimit_tier tier; /* {0,0} = the account's Retry-After record */
    struct window burst;
    struct window steady;
    uint64_t blocked_until_ms;
};

struct aw_ratelimit {
    struct entry *e;
    size_t n, cap;
    unsigned scale_pct;
};

struct aw_ratelimit *aw_ratelimit_new(unsigned scale_pct)
{
    struct aw_ratelimit *rl = aw_calloc(1, sizeof *rl);
    rl->scale_pct = scale_pct == 0 || scale_pct > 100 ? 100 : scale_pct;
    return rl;
}

void aw_ratelimit_free(struct aw_ratelimit *rl)
{
    if (!rl)
        return;
    for (size_t i = 0; i < rl->n; i++) {
        free(rl->e[i].account);
        free(rl->e[i].burst.times);
        free(rl->e[i].steady.times);
    }
    free(rl->e);
    free(rl);
}

static void window_init(struct window *w, uint64_t limit, uint64_t span_ms)
{
    w->limit = limit ? (uint32_t)limit : 1;
    w->times = aw_calloc(w->limit, sizeof *w->times);
    w->head = 0;
    w->span_ms = span_ms;
}

/* ms until one more request fits in the window (0 = now). Times are stored +1 so that 0 can
 * mean "unused" even at now_ms == 0. */
static uint64_t window_wait(const struct window *w, uint64_t now)
{
    uint64_t oldest = w->times[w->head];
    if (oldest == 0)
        return 0;
    uint64_t free_at = oldest - 1 + w->span_ms;
    return free_at > now ? free_at - now : 0;
}

static void window_take(struct window *w, uint64_t now)
{
    w->times[w->head] = now + 1;
    w->head = (w->head + 1) % w->limit;
}

static bool is_block_tier(struct aw_ratelimit_tier t)
{
    return t.burst_per_s == 0 && t.steady_per_min == 0;
}

static struct entry *find(struct aw_ratelimit *rl, const char *account,
                          struct aw_ratelimit_tier tier, bool create)
{
    for (size_t i = 0; i < rl->n; i++) {
        struct entry *e = &rl->e[i];
        if (e->tier.burst_per_s == tier.burst_per_s &&
            e->tier.steady_per_min == tier.steady_per_min && strcmp(e->account, account) == 0)
            return e;
    }
    if (!create)
        return NULL;
    aw_grow((void **)&rl->e, &rl->cap, rl->n + 1, sizeof *rl->e);
    struct entry *e = &rl->e[rl->n++];
    memset(e, 0, sizeof *e);
    e->account = aw_strdup(account);
    e->tier = tier;
    if (!is_block_tier(tier)) {
        window_init(&e->burst, (uint64_t)tier.burst_per_s * rl->scale_pct / 100u, 1000u);
        window_init(&e->steady, (uint64_t)tier.steady_per_min * rl->scale_pct / 100u, 60000u);
    }
    return e;
}

uint64_t aw_ratelimit_blocked_for(const struct aw_ratelimit *rl, const char *account,
                                  uint64_t now_ms)
{
    for (size_t i = 0; i < rl->n; i++) {
        const struct entry *e = &rl->e[i];
        if (is_block_tier(e->tier) && strcmp(e->account, account) == 0)
            return e->blocked_until_ms > now_ms ? e->blocked_until_ms - now_ms : 0;
    }
    return 0;
}

void aw_ratelimit_block(struct aw_ratelimit *rl, const char *account, uint64_t until_ms)
{
    struct entry *e = find(rl, account, (struct aw_ratelimit_tier){0, 0}, true);
    if (until_ms > e->blocked_until_ms)
        e->blocked_until_ms = until_ms;
}

uint64_t aw_ratelimit_acquire(struct aw_ratelimit *rl, const char *account,
                              struct aw_ratelimit_tier tier, uint64_t now_ms)
{
    uint64_t blocked = aw_ratelimit_blocked_for(rl, account, now_ms);
    if (blocked)
        return blocked;
    if (is_block_tier(tier))
        tier = AW_RATELIMIT_TIER_M; /* unknown tier: assume the stricter common one */
    struct entry *e = find(rl, account, tier, true);
    uint64_t w1 = window_wait(&e->burst, now_ms), w2 = window_wait(&e->steady, now_ms);
    if (w1 || w2)
        return w1 > w2 ? w1 : w2;
    window_take(&e->burst, now_ms);
    window_take(&e->steady, now_ms);
    return 0;
}
