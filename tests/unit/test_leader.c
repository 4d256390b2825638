/* test_leader.c -- the lease state machine with an injected clock: acquire, renew, expiry by the
 * local clock when Redis stops answering (counted from the send time), loss on refusal, epochs,
 * the holder's name in the token. */
#include <string.h>

#include "tests/harness.h"
#include "worker/flush/leader.h"

int main(void)
{
    struct aw_leader l, other;
    aw_leader_init(&l, 3000);
    aw_leader_init(&other, 3000);
    AW_CHECK_INT_EQ(strlen(l.token), AW_LEADER_TOKEN_LEN);
    AW_CHECK(strcmp(l.token, other.token) != 0);
    /* Named: "<holder>/<the same random part>" (status shows the holder); renaming keeps it. */
    char random[AW_LEADER_TOKEN_LEN + 1];
    memcpy(random, other.token, sizeof random);
    aw_leader_set_holder(&other, "pod-a");
    AW_CHECK_INT_EQ(strlen(other.token), 6 + AW_LEADER_TOKEN_LEN);
    AW_CHECK(strncmp(other.token, "pod-a/", 6) == 0 && strcmp(other.token + 6, random) == 0);
    aw_leader_set_holder(&other, "pod-b");
    AW_CHECK(strncmp(other.token, "pod-b/", 6) == 0 && strcmp(other.token + 6, random) == 0);

    uint64_t now = 1000;
    AW_CHECK_INT_EQ(aw_leader_next(&l, now), AW_LEADER_OP_ACQUIRE);
    AW_CHECK(!aw_leader_is_held(&l, now));
    /* Acquired: sent at 1000, answered at 1200 -> valid until 1000 + 3000 - 600. */
    AW_CHECK(aw_leader_on_result(&l, AW_LEADER_OP_ACQUIRE, 1000, AW_OK, true, 7, 1200));
    AW_CHECK(aw_leader_is_held(&l, 1200));
    AW_CHECK_INT_EQ(l.epoch, 7);
    AW_CHECK_INT_EQ(l.valid_until_ms, 3400);
    AW_CHECK_INT_EQ(aw_leader_next(&l, 1500), AW_LEADER_OP_NONE);
    AW_CHECK_INT_EQ(aw_leader_next(&l, 2000), AW_LEADER_OP_RENEW);
    /* Renewed: sent at 2000, answered late at 2900. Validity extends from the send time (Redis
     * may have restarted the TTL as early as 2000), same epoch. */
    const uint64_t renew_sent = 2000;
    AW_CHECK(!aw_leader_on_result(&l, AW_LEADER_OP_RENEW, renew_sent, AW_OK, true, 7, 2900));
    AW_CHECK_INT_EQ(l.valid_until_ms, 4400);
    AW_CHECK_INT_EQ(l.epoch, 7);
    /* The margin: by our clock the lease ends strictly before Redis can expire it (no earlier
     * than renew_sent + ttl), so another replica can never acquire it while we still act on it,
     * and the next renewal is due before that end. */
    AW_CHECK(l.margin_ms > 0);
    AW_CHECK(l.valid_until_ms > renew_sent);
    AW_CHECK_MSG(l.valid_until_ms - renew_sent < l.ttl_ms,
                 "lease valid %llu ms after the renew was sent, ttl %llu ms",
                 (unsigned long long)(l.valid_until_ms - renew_sent), (unsigned long long)l.ttl_ms);
    AW_CHECK(l.next_due_ms < l.valid_until_ms);

    /* Redis stops answering: renewals fail, the lease stays until 4400 by our clock, then it is
     * lost whether or not Redis ever answers -- within the TTL of the last successful renew. */
    AW_CHECK(!aw_leader_on_result(&l, AW_LEADER_OP_RENEW, 3000, AW_ERR_IO, false, 0, 3100));
    AW_CHECK_INT_EQ(l.valid_until_ms, 4400); /* a failed renew never extends */
    AW_CHECK(aw_leader_is_held(&l, l.valid_until_ms - 1));
    AW_CHECK(!aw_leader_is_held(&l, l.valid_until_ms));
    AW_CHECK(!aw_leader_is_held(&l, renew_sent + l.ttl_ms - 1)); /* before Redis can expire it */
    AW_CHECK_INT_EQ(aw_leader_next(&l, 4500), AW_LEADER_OP_ACQUIRE);

    /* Refused: someone else holds it. */
    AW_CHECK(!aw_leader_on_result(&l, AW_LEADER_OP_ACQUIRE, 4500, AW_OK, false, 0, 4510));
    AW_CHECK(!aw_leader_is_held(&l, 4510));
    AW_CHECK_INT_EQ(aw_leader_next(&l, 4600), AW_LEADER_OP_NONE);
    AW_CHECK_INT_EQ(aw_leader_next(&l, 4510 + 1000), AW_LEADER_OP_ACQUIRE);

    /* A renewal refused while held (token replaced) drops the lease at once. */
    AW_CHECK(aw_leader_on_result(&other, AW_LEADER_OP_ACQUIRE, 5000, AW_OK, true, 8, 5001));
    AW_CHECK(aw_leader_on_result(&other, AW_LEADER_OP_RENEW, 6000, AW_OK, false, 0, 6001));
    AW_CHECK(!aw_leader_is_held(&other, 6001));
    /* Re-acquire: a new tenure with the store's new epoch. */
    AW_CHECK(aw_leader_on_result(&other, AW_LEADER_OP_ACQUIRE, 7000, AW_OK, true, 9, 7001));
    AW_CHECK_INT_EQ(other.epoch, 9);
    AW_CHECK_INT_EQ(other.gained, 2);
    aw_leader_drop(&other, 7100);
    AW_CHECK(!aw_leader_is_held(&other, 7100));
    return aw_test_done();
}
