#include "worker/flush/leader.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void random_token(char out[AW_LEADER_TOKEN_LEN + 1])
{
    unsigned char raw[AW_LEADER_TOKEN_LEN / 2];
    bool ok = false;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ok = read(fd, raw, sizeof raw) == (ssize_t)sizeof raw;
        close(fd);
    }
    if (!ok) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x =
            (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
        for (size_t i = 0; i < sizeof raw; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            raw[i] = (unsigned char)x;
        }
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

void aw_leader_init(struct aw_leader *l, uint64_t ttl_ms)
{
    memset(l, 0, sizeof *l);
    random_token(l->token);
    l->ttl_ms = ttl_ms < 300 ? 300 : ttl_ms;
    l->margin_ms = l->ttl_ms / 5;
    l->renew_every_ms = l->ttl_ms / 3;
    l->retry_every_ms = l->ttl_ms / 3;
}

void aw_leader_set_holder(struct aw_leader *l, const char *holder)
{
    char random[AW_LEADER_TOKEN_LEN + 1];
    const char *r = strrchr(l->token, '/');
    snprintf(random, sizeof random, "%.*s", AW_LEADER_TOKEN_LEN, r ? r + 1 : l->token);
    snprintf(l->token, sizeof l->token, "%.*s/%s", AW_LEADER_HOLDER_MAX, holder, random);
}

bool aw_leader_is_held(const struct aw_leader *l, uint64_t now_ms)
{
    return l->held && now_ms < l->valid_until_ms;
}

enum aw_leader_op aw_leader_next(const struct aw_leader *l, uint64_t now_ms)
{
    if (now_ms < l->next_due_ms)
        return AW_LEADER_OP_NONE;
    return aw_leader_is_held(l, now_ms) ? AW_LEADER_OP_RENEW : AW_LEADER_OP_ACQUIRE;
}

bool aw_leader_on_result(struct aw_leader *l, enum aw_leader_op op, uint64_t sent_ms,
                         enum aw_err err, bool granted, uint64_t epoch, uint64_t now_ms)
{
    bool was = aw_leader_is_held(l, now_ms);
    if (op == AW_LEADER_OP_NONE)
        return false;
    if (err == AW_OK && granted) {
        if (op == AW_LEADER_OP_ACQUIRE || !l->held) {
            l->gained++;
            l->epoch = epoch;
        }
        l->held = true;
        /* Counted from when the request left, not when the answer came back: Redis may have
         * started the TTL any time after sent_ms. */
        l->valid_until_ms = sent_ms + l->ttl_ms - l->margin_ms;
        l->next_due_ms = sent_ms + l->renew_every_ms;
    } else if (err == AW_OK) {
        /* Redis answered: someone else holds it (or our token expired there). */
        l->held = false;
        l->next_due_ms = now_ms + l->retry_every_ms;
    } else {
        /* No answer: keep what we have until it expires by our clock, retry soon. */
        l->next_due_ms = now_ms + (l->renew_every_ms / 4 ? l->renew_every_ms / 4 : 1);
        if (!aw_leader_is_held(l, now_ms))
            l->held = false;
    }
    return was != aw_leader_is_held(l, now_ms);
}

void aw_leader_drop(struct aw_leader *l, uint64_t now_ms)
{
    l->held = false;
    l->valid_until_ms = 0;
    l->next_due_ms = now_ms + l->retry_every_ms;
}
