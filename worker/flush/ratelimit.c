/* ratelimit.c -- per (account, endpoint) windows plus the server's word (see ratelimit.h). */
#include "worker/flush/ratelimit.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

#define MAX_RESET_S 86400L /* a RateLimit-Reset beyond a day is not believed */

/* Sliding-window log: a ring of the send times of the last `limit` requests. A request may go
 * when the oldest of them left the window, which guarantees at most `limit` requests in ANY
 * window -- a token bucket would allow up to twice the steady limit in the first minute.
 *
 * The burst window also paces: requests at least span / limit apart. Klaviyo's windows are
 * fixed; a burst of `limit` requests sent at once, then the next burst one span later, puts
 * both bursts into one of the server's windows as soon as a few of the first arrive a few ms
 * late (measured: 429s on the 10/s job polls with the simulator under load). Paced, a server
 * window holds at most limit + 1 of them unless arrivals are late by more than the spacing.
 * Only where that one request is all the headroom there is (endpoint()).
 *
 * The pace is a schedule, not a distance from the last send: a request sent a few ms after its
 * slot (the lane's wake, the lock) leaves the next slot where it was, so lateness does not add
 * up over a drain (3 ms a request made 100 imports at 9/s end 0.3 s late); only a request later
 * than PACE_SLACK_MS moves the schedule, and two requests are never less than gap - slack apart
 * (over the 100 ms an arrival may be late, still one request). */
#define PACE_SLACK_MS 10u

struct window {
    uint64_t *times; /* ring of limit entries, 0 = unused; times are stored +1 */
    uint32_t limit;
    uint32_t head; /* index of the oldest entry */
    uint64_t span_ms;
    uint64_t gap_ms;  /* paced: the schedule's step (0: no pacing) */
    uint64_t next_ms; /* paced: the next request's slot, stored +1 (0: none yet) */
};

struct endpoint_state {
    bool used; /* windows allocated */
    struct window burst;
    struct window steady;
    bool observed; /* the server's last word is in force until observed_until_ms */
    uint64_t observed_until_ms;
    uint64_t observed_left; /* requests the server still allows before observed_until_ms */
    uint32_t in_flight;     /* acquired, answer not yet observed */
};

struct account {
    char *id;
    uint64_t blocked_until_ms; /* Retry-After, all endpoints */
    struct endpoint_state ep[AW_API_ENDPOINT_COUNT];
};

struct aw_ratelimit {
    struct account *a;
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
        free(rl->a[i].id);
        for (int e = 0; e < AW_API_ENDPOINT_COUNT; e++) {
            free(rl->a[i].ep[e].burst.times);
            free(rl->a[i].ep[e].steady.times);
        }
    }
    free(rl->a);
    free(rl);
}

static void window_init(struct window *w, uint64_t limit, uint64_t span_ms, bool paced)
{
    w->limit = limit ? (uint32_t)limit : 1;
    w->times = aw_calloc(w->limit, sizeof *w->times);
    w->head = 0;
    w->span_ms = span_ms;
    w->gap_ms = paced ? span_ms / w->limit : 0;
    w->next_ms = 0;
}

/* ms until one more request fits in the window (0 = now). */
static uint64_t window_wait(const struct window *w, uint64_t now)
{
    uint64_t oldest = w->times[w->head];
    uint64_t free_at = oldest ? oldest - 1 + w->span_ms : 0;
    if (w->next_ms && w->next_ms - 1 > free_at)
        free_at = w->next_ms - 1;
    return free_at > now ? free_at - now : 0;
}

static void window_take(struct window *w, uint64_t now)
{
    w->times[w->head] = now + 1;
    w->head = (w->head + 1) % w->limit;
    if (w->gap_ms) {
        uint64_t slot = w->next_ms ? w->next_ms - 1 : now;
        uint64_t next = slot + w->gap_ms;
        uint64_t least = now + (w->gap_ms > PACE_SLACK_MS ? w->gap_ms - PACE_SLACK_MS : 0);
        w->next_ms = (next > least ? next : least) + 1;
    }
}

static struct account *find(const struct aw_ratelimit *rl, const char *id)
{
    for (size_t i = 0; i < rl->n; i++)
        if (strcmp(rl->a[i].id, id) == 0)
            return &rl->a[i];
    return NULL;
}

static struct account *find_or_add(struct aw_ratelimit *rl, const char *id)
{
    struct account *a = find(rl, id);
    if (a)
        return a;
    aw_grow((void **)&rl->a, &rl->cap, rl->n + 1, sizeof *rl->a);
    a = &rl->a[rl->n++];
    memset(a, 0, sizeof *a);
    a->id = aw_strdup(id);
    return a;
}

static struct endpoint_state *endpoint(struct aw_ratelimit *rl, struct account *a,
                                       enum aw_api_endpoint e)
{
    struct endpoint_state *s = &a->ep[e];
    if (!s->used) {
        const struct aw_api_op *op = aw_api_get(e);
        uint64_t burst = (uint64_t)op->burst_per_s * rl->scale_pct / 100u;
        /* paced where our headroom is under two requests a second (the 10/s and 3/s tiers);
         * at 75/s the 8 spare absorb late arrivals, and a removal batch's lookups, which many
         * lanes send at once, are not held apart */
        window_init(&s->burst, burst, 1000u, op->burst_per_s < burst + 2);
        window_init(&s->steady, (uint64_t)op->steady_per_min * rl->scale_pct / 100u, 60000u, false);
        s->used = true;
    }
    return s;
}

uint64_t aw_ratelimit_blocked_for(const struct aw_ratelimit *rl, const char *account,
                                  uint64_t now_ms)
{
    const struct account *a = find(rl, account);
    return a && a->blocked_until_ms > now_ms ? a->blocked_until_ms - now_ms : 0;
}

void aw_ratelimit_block(struct aw_ratelimit *rl, const char *account, uint64_t until_ms)
{
    struct account *a = find_or_add(rl, account);
    if (until_ms > a->blocked_until_ms)
        a->blocked_until_ms = until_ms;
}

void aw_ratelimit_observe(struct aw_ratelimit *rl, const char *account,
                          enum aw_api_endpoint endpoint_id, long remaining, long reset_s,
                          uint64_t now_ms)
{
    struct endpoint_state *s = endpoint(rl, find_or_add(rl, account), endpoint_id);
    if (s->in_flight > 0)
        s->in_flight--;
    if (remaining < 0 || reset_s < 0)
        return; /* header absent or unreadable: our own windows decide */
    /* requests still on the wire are not in the server's count yet, but were counted here */
    remaining = (uint64_t)remaining > s->in_flight ? remaining - (long)s->in_flight : 0;
    if (reset_s > MAX_RESET_S)
        reset_s = MAX_RESET_S;
    uint64_t until = now_ms + (uint64_t)reset_s * 1000u;
    /* Answers of one window arrive out of order when requests overlap (each waits its own
     * latency after the server counted it): an older answer's larger count never raises what
     * a newer one allowed. Reset is in whole seconds, so one window's answers end within 1 s of
     * each other; a later end is the next window. */
    if (s->observed && until <= s->observed_until_ms + 1000u && now_ms < s->observed_until_ms &&
        (uint64_t)remaining > s->observed_left)
        remaining = (long)s->observed_left;
    s->observed = true;
    s->observed_until_ms = until;
    s->observed_left = (uint64_t)remaining;
}

/* ms until (a, s) has a slot: the account's block, both windows, the server's last word. */
static uint64_t slot_wait(const struct account *a, const struct endpoint_state *s, uint64_t now_ms)
{
    uint64_t wait = a->blocked_until_ms > now_ms ? a->blocked_until_ms - now_ms : 0;
    uint64_t w = window_wait(&s->burst, now_ms);
    if (w > wait)
        wait = w;
    w = window_wait(&s->steady, now_ms);
    if (w > wait)
        wait = w;
    /* once the server's window reset, its count no longer binds */
    if (s->observed && now_ms < s->observed_until_ms && s->observed_left == 0 &&
        s->observed_until_ms - now_ms > wait)
        wait = s->observed_until_ms - now_ms;
    return wait;
}

uint64_t aw_ratelimit_wait(struct aw_ratelimit *rl, const char *account,
                           enum aw_api_endpoint endpoint_id, uint64_t now_ms)
{
    struct account *a = find_or_add(rl, account);
    return slot_wait(a, endpoint(rl, a, endpoint_id), now_ms);
}

uint64_t aw_ratelimit_acquire(struct aw_ratelimit *rl, const char *account,
                              enum aw_api_endpoint endpoint_id, uint64_t now_ms)
{
    struct account *a = find_or_add(rl, account);
    struct endpoint_state *s = endpoint(rl, a, endpoint_id);
    uint64_t wait = slot_wait(a, s, now_ms);
    if (s->observed && now_ms >= s->observed_until_ms)
        s->observed = false;
    if (wait)
        return wait;
    window_take(&s->burst, now_ms);
    window_take(&s->steady, now_ms);
    s->in_flight++;
    if (s->observed)
        s->observed_left--;
    return 0;
}
