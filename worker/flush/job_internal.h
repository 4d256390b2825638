/* job_internal.h -- what the files of one stream's job share (private to worker/flush/job*.c):
 * the job's state and the steps' common helpers. job.c: lifecycle, requests, take, ack;
 * job_list.c: the audience's list; job_upload.c: imports, clears, consent, bulk jobs;
 * job_remove.c: removals. Under the flusher's lock (context.h). */
#ifndef AW_WORKER_FLUSH_JOB_INTERNAL_H
#define AW_WORKER_FLUSH_JOB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/backoff.h"
#include "worker/flush/job.h"
#include "worker/klaviyo/api.h"
#include "worker/store/flush_ops.h"

struct aw_flush_ctx;
struct aw_klaviyo_response;

#define AW_JOB_CHANNEL_EMAIL 1u
#define AW_JOB_CHANNEL_SMS 2u

/* Kinds of work in a batch, in the order they are sent. */
enum cat {
    CAT_ADD = AW_FLUSH_KIND_ADD,
    CAT_UPD = AW_FLUSH_KIND_UPDATE,
    CAT_UNSET = AW_FLUSH_KIND_UNSET,
    CAT_SUB = AW_FLUSH_KIND_SUBSCRIBE,
    CAT_UNSUB = AW_FLUSH_KIND_UNSUBSCRIBE,
    CAT_DEL = AW_FLUSH_KIND_REMOVE,
    CAT_COUNT = AW_FLUSH_KIND_COUNT
};
extern const char *const aw_job_cat_name[CAT_COUNT];

enum phase {
    PH_TAKE = 0,    /* take (or resume) the in-flight batch */
    PH_LIST,        /* resolve the list id (meta, else find by name) */
    PH_LIST_CREATE, /* POST /api/lists */
    PH_SEND,        /* one request of category cur from pos */
    PH_JOB_POLL,    /* poll the bulk import job */
    PH_JOB_ERRORS,  /* read its import-errors pages */
    PH_REMOVALS,    /* removals: profile ids by email, DELETE relationships as they come */
    PH_ACK          /* dead letters confirmed, then ack */
};

/* When a line of the job's work runs next, how it backs off and how large its requests may be.
 * A job has two: `run`, its phases in order, and `side`, the removals of an audience batch sent
 * while `run` waits for its import (a rate-limit slot, a job poll): the two touch disjoint users
 * (a batch holds one entry per email) and different endpoints, so neither waits for the other
 * (aw_flush_job_step). */
struct aw_job_track {
    uint64_t next_at; /* mono ms */
    struct aw_backoff bo;
    size_t split_limit; /* 0, or the most items per request while a request Klaviyo refused whole
                           (400/413 naming no record) is sent in halves */
};

struct dl {
    char *env;    /* envelope, owned */
    char *reason; /* owned */
};

struct aw_flush_job {
    struct aw_klaviyo *k; /* the client of the lane running the job's step */
    char *acct_id;
    char *aud_id; /* NULL: the account's profile stream */
    struct aw_flush_account *acct;
    size_t *batch_bytes; /* the flusher's total, which this job's batch counts in */
    bool release;        /* the account is paused: give the batch back (it stays in Redis) */
    enum phase phase;
    struct aw_job_track run;  /* the phases */
    struct aw_job_track side; /* removals beside the imports */
    bool run_busy;            /* a lane runs a step of `run` now */
    uint64_t started_ms;
    struct aw_store_taken t;
    size_t n;
    bool *gone;         /* dead-lettered or done without a request: skipped from now on */
    unsigned *accepted; /* consent channels Klaviyo accepted (CHANNEL_*) */
    char **del_id;      /* removals: Klaviyo profile id per entry, owned, or NULL */
    bool *looked_up;
    bool *claimed;           /* removals: in a lookup or delete on the wire now (fan-out) */
    bool *removed;           /* removals: deleted from the list (or it had none) */
    size_t fanned_in_flight; /* lookups or deletes of this job on the wire (several lanes) */
    char *list_id;
    bool list_auto;         /* found/created by name (meta klaviyo_list_id) */
    size_t *cat[CAT_COUNT]; /* entry indexes per category */
    size_t ncat[CAT_COUNT];
    int cur;                  /* current category */
    size_t pos;               /* next item of the current category (or of rm) */
    char *job_id;             /* bulk import job being polled */
    unsigned polls;           /* status polls of it so far (the poll interval grows) */
    uint64_t status_after_ms; /* mono ms: a listing of the account's jobs sent before this says
                                 nothing new of it (it did not exist, or was seen running) */
    bool poll_own;            /* the listing did not reach back to it: its own GET from now on */
    size_t *job_items;        /* entries of that job (body order) */
    size_t n_job_items;
    char *err_cursor;
    int resume_cat;            /* a predecessor's import job: its category, or -1 */
    size_t resume_items;       /* ... how many entries it held */
    bool cache_checked;        /* removals: the Redis id cache was read */
    bool consent_checked;      /* the previous consent job of the account has settled */
    uint64_t import_sent_ms;   /* unix ms of the batch's last bulk import POST (also in Redis) */
    bool orphan_possible;      /* an import POST's answer was lost (or a predecessor's may have
                                  been): an unknown job may still run; the ack waits for it */
    uint64_t orphan_since;     /* mono ms the ack began waiting for such jobs */
    char *orphan_cursor;       /* page of the unfinished-jobs listing being read */
    struct dl *dl;             /* dead letters produced for this batch (kept until ack) */
    struct aw_dlq_set *dl_set; /* their deliveries, confirmed before the ack */
    size_t dl_produced;        /* of them, accepted by the producer into dl_set */
    size_t n_dl, cap_dl;
    bool relist; /* list re-resolved in the middle of a category: continue there */
    size_t n_uploaded, n_removed, n_not_found, n_dropped;
};

enum sent { SENT = 0, NOT_SENT };

uint64_t aw_job_now_ms(void);
/* The audience id, or "(profiles)" for the profile stream (log fields). */
const char *aw_job_aud(const struct aw_flush_job *j);
/* id (0), code (1) or title (2) of the answer's first error, or NULL. */
const char *aw_job_err_field(const struct aw_klaviyo_response *r, int which);
/* Backs track t of the job off (capped exponential with jitter); WARN on the first failure. */
void aw_job_retry_later(struct aw_flush_job *j, struct aw_job_track *t, const char *what,
                        const char *detail);
/* Dead-letters entry idx once (stage flush), kept until the batch is acked. */
void aw_job_dead_letter(struct aw_flush_ctx *ctx, struct aw_flush_job *j, size_t idx,
                        const char *reason, const char *kid, const char *kcode, const char *ktitle);
/* Dead-letters an import error that names none of the job's records (stage flush, reason
 * klaviyo_import_error_unmatched, no profile): which record failed is unknown, so the job is not
 * counted a success for it. */
void aw_job_dead_letter_unmatched(struct aw_flush_ctx *ctx, struct aw_flush_job *j, const char *kid,
                                  const char *kcode, const char *ktitle);
/* Removes gone entries of category c from pos on; live entries of c. */
void aw_job_compact(struct aw_flush_job *j, int c);
size_t aw_job_live(const struct aw_flush_job *j, int c);
/* The first category at or after `from` with work (ACK when none). */
void aw_job_next_stage(struct aw_flush_job *j, int from);
/* The list is known (or cannot be): continue where the job stood. */
void aw_job_after_list(struct aw_flush_job *j);
/* Dead-letters every live add and removal (no list can be resolved). */
void aw_job_drop_list_work(struct aw_flush_ctx *ctx, struct aw_flush_job *j, const char *reason,
                           const struct aw_klaviyo_response *r);
/* Sends one request within the lease, the account's pause and rate limits; NOT_SENT schedules
 * track t. resp is always initialised. */
enum sent aw_job_send(struct aw_flush_ctx *ctx, struct aw_flush_job *j, struct aw_job_track *t,
                      enum aw_api_endpoint ep, const char *path, const char *body,
                      struct aw_klaviyo_response *resp);
/* WAIT / RETRY / PAUSE: schedules track t, true. DONE: resets t's backoff, false. Others:
 * false. */
bool aw_job_handle_common(struct aw_flush_ctx *ctx, struct aw_flush_job *j, struct aw_job_track *t,
                          const char *step, const struct aw_klaviyo_response *r);
/* A 400/413 naming no record for a request of n > 1 items: the next requests carry half as
 * many (again and again), so only the bad records end dead-lettered. True when it split. */
bool aw_job_split(struct aw_flush_job *j, struct aw_job_track *t, int c, size_t n,
                  const struct aw_klaviyo_response *r);
/* A 4xx for the request holding items[0..n): named records dead-lettered, halves
 * (aw_job_split), or all of them (then true: the caller moves past the n items). */
bool aw_job_refuse_items(struct aw_flush_ctx *ctx, struct aw_flush_job *j, struct aw_job_track *t,
                         int c, const size_t *items, size_t n, const struct aw_klaviyo_response *r);

/* Before the ack (one request at most): true when no import job the batch may have started
 * unknowingly can still run, else j is scheduled to look again. */
bool aw_job_orphans_settled(struct aw_flush_ctx *ctx, struct aw_flush_job *j);
/* A resumed batch: a predecessor that sent an import may have lost its answer. */
void aw_job_resume_imports(struct aw_flush_ctx *ctx, struct aw_flush_job *j);

/* Steps (one request at most each). */
void aw_job_step_list(struct aw_flush_ctx *ctx, struct aw_flush_job *j);
void aw_job_step_list_create(struct aw_flush_ctx *ctx, struct aw_flush_job *j);
void aw_job_step_send(struct aw_flush_ctx *ctx, struct aw_flush_job *j);
void aw_job_step_poll(struct aw_flush_ctx *ctx, struct aw_flush_job *j);
void aw_job_step_errors(struct aw_flush_ctx *ctx, struct aw_flush_job *j);
void aw_job_step_removals(struct aw_flush_ctx *ctx, struct aw_flush_job *j, struct aw_job_track *t,
                          bool side);
/* The requests j's removals could send at once now (lookups and deletes ready, none claimed),
 * in its removal stage or beside its imports, counted up to most. */
size_t aw_job_removal_fan_out(const struct aw_flush_job *j, size_t most);

#endif
