/* leader.h -- the leader lease state machine (pure: takes now_ms and store results, does no
 * I/O; docs/style.md §5). The store holds the lease (random token, TTL, fencing epoch); this module
 * decides when to acquire or renew and whether the lease still counts as held. The lease is
 * lost once TTL minus a safety margin has passed since the last successful acquire/renew was
 * SENT, whether or not Redis answers. Flusher thread. */
#ifndef AW_WORKER_LEADER_H
#define AW_WORKER_LEADER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

#define AW_LEADER_TOKEN_LEN 32   /* hex characters of the random part */
#define AW_LEADER_HOLDER_MAX 128 /* bytes of the holder's name before it (AW_INSTANCE_ID) */

enum aw_leader_op {
    AW_LEADER_OP_NONE = 0, /* nothing to do before next_due_ms */
    AW_LEADER_OP_ACQUIRE,  /* try SET NX PX ttl with our token */
    AW_LEADER_OP_RENEW     /* compare-and-extend with our token */
};

struct aw_leader {
    char token[AW_LEADER_HOLDER_MAX + 1 + AW_LEADER_TOKEN_LEN + 1]; /* ["<holder>/"]<random> */
    uint64_t ttl_ms;
    uint64_t margin_ms;      /* the lease counts as lost at sent + ttl - margin */
    uint64_t renew_every_ms; /* renew this often while held (ttl / 3) */
    uint64_t retry_every_ms; /* acquire attempts while not held */
    bool held;
    uint64_t valid_until_ms; /* monotonic; meaningful when held */
    uint64_t epoch;          /* fencing epoch of the current tenure */
    uint64_t next_due_ms;    /* when the next op is due */
    uint64_t gained;         /* tenures gained (for logs/metrics) */
};

/* Initialises with a random token (from /dev/urandom, falling back to time and pid), ttl_ms
 * (>= 300) and the derived margin (ttl/5), renew (ttl/3) and retry (ttl/3) periods. */
void aw_leader_init(struct aw_leader *l, uint64_t ttl_ms);

/* Names the holder in the token ("<holder>/<random>", so `aw-worker status` shows which replica
 * leads); holder (AW_INSTANCE_ID) is cut at AW_LEADER_HOLDER_MAX bytes and must hold no '/'.
 * Before the first acquire. */
void aw_leader_set_holder(struct aw_leader *l, const char *holder);

/* The operation due at now_ms (NONE until next_due_ms). */
enum aw_leader_op aw_leader_next(const struct aw_leader *l, uint64_t now_ms);

/* Feeds the result of an op sent at sent_ms: err is the store result; granted says whether the
 * lease is ours (acquired / renewed); epoch is the fencing epoch the store returned when granted.
 * Returns true when the held state changed (gained or lost), for logging. */
bool aw_leader_on_result(struct aw_leader *l, enum aw_leader_op op, uint64_t sent_ms,
                         enum aw_err err, bool granted, uint64_t epoch, uint64_t now_ms);

/* True while the lease is held and has not expired by the local clock. */
bool aw_leader_is_held(const struct aw_leader *l, uint64_t now_ms);

/* Forgets the lease (after a release or on shutdown). */
void aw_leader_drop(struct aw_leader *l, uint64_t now_ms);

#endif
