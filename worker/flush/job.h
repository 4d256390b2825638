/* job.h -- one stream's batch on its way to Klaviyo: a small state machine the flusher runs a
 * step at a time (DESIGN §5). A stream is an audience (membership: list resolved or created,
 * adds imported into the list, removals looked up and deleted from it) or an account's
 * profiles (attributes imported, non-property fields cleared, consent subscribed and
 * unsubscribed). Each step sends at most one request, so a rate-limited, backing-off or paused
 * account only postpones its own jobs. Under the flusher's lock (context.h). */
#ifndef AW_WORKER_FLUSH_JOB_H
#define AW_WORKER_FLUSH_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aw_flush_ctx;
struct aw_flush_job;
struct aw_change;
struct aw_klaviyo;

/* The kinds of request a batch sends, in the order it sends them. */
enum aw_flush_kind {
    AW_FLUSH_KIND_ADD = 0,     /* audience: bulk import with the list relationship */
    AW_FLUSH_KIND_UPDATE,      /* profiles: bulk import without a list (attributes) */
    AW_FLUSH_KIND_UNSET,       /* profiles: profile-import clearing non-property fields */
    AW_FLUSH_KIND_SUBSCRIBE,   /* profiles: subscription bulk create job */
    AW_FLUSH_KIND_UNSUBSCRIBE, /* profiles: subscription bulk delete job */
    AW_FLUSH_KIND_REMOVE,      /* audience: lookup, then DELETE list relationships */
    AW_FLUSH_KIND_COUNT
};

/* The kinds (bit 1u << kind) of request pending change c goes into, for an audience stream
 * (audience true: add or remove) or the profile stream. Pure; any thread (`aw-worker preview`
 * shows the same requests). */
unsigned aw_flush_change_kinds(const struct aw_change *c, bool audience);

/* A job for the stream of account_id: audience_id, or the account's profiles when NULL.
 * Strings copied. It starts by taking (or resuming) the stream's batch. */
struct aw_flush_job *aw_flush_job_new(struct aw_flush_ctx *ctx, const char *account_id,
                                      const char *audience_id);

/* Frees the job; its batch stays in Redis (a new leader resumes it). NULL is a no-op. */
void aw_flush_job_free(struct aw_flush_job *j);

/* The client (a request lane's curl handle) the job's next step sends its request with. */
void aw_flush_job_set_client(struct aw_flush_job *j, struct aw_klaviyo *k);

/* Runs the next step. True when the job is over (batch acked, nothing to take, or fenced). */
bool aw_flush_job_step(struct aw_flush_ctx *ctx, struct aw_flush_job *j);

/* How many steps of j may run in lanes at once now, beside those already on the wire, counted
 * up to most: the requests a removal batch has ready (lookups by email of a page each, and full
 * list relationship deletes: reads, and deletes that commute; each step claims its own emails
 * or ids), in its removal stage or beside its imports (then plus the imports' own step when it
 * is due and no lane runs it). 0 for every other step, which runs in one lane at a time. */
size_t aw_flush_job_fan_out(const struct aw_flush_job *j, size_t most);

/* Monotonic ms at which the job wants its next step (UINT64_MAX: only the step a lane runs). */
uint64_t aw_flush_job_next_at(const struct aw_flush_job *j);

/* Monotonic ms at which the job's phases want their next step, not counting removal work (its
 * removal stage, the side track): UINT64_MAX while a lane runs it or in the removal stage. */
uint64_t aw_flush_job_run_at(const struct aw_flush_job *j);

const char *aw_flush_job_account(const struct aw_flush_job *j);
const char *aw_flush_job_audience(const struct aw_flush_job *j); /* NULL: profiles */

/* Produces again every dead letter the job keeps (after the broker did not confirm them). */
void aw_flush_job_reproduce(struct aw_flush_ctx *ctx, struct aw_flush_job *j);

#endif
