/* job.c -- one stream's batch through Klaviyo, a step at a time (see job.h).
 *
 * Order of the requests of one batch:
 *   audience stream: list (meta listId, else the one found or created by name earlier, else
 *     GET /api/lists by name, else POST /api/lists -- only when there are adds: a batch of
 *     removals never creates a list), adds (bulk import jobs with the list relationship, email
 *     only: the profile stream carries attributes), removals (profile ids from the Redis cache,
 *     else GET /api/profiles by email; then DELETE list relationships).
 *   profile stream: attributes (bulk import jobs without a list), clears of non-property fields
 *     (POST /api/profile-import, one per user), consent subscribe jobs, unsubscribe jobs.
 * then ack: dead letters confirmed by the broker, entries acked with the consent channels
 * Klaviyo accepted (recorded as sent, DESIGN §3).
 *
 * Ambiguity (a request applied but its answer lost): a list creation that failed is looked up
 * by name again before being retried; an import job's id is kept with the batch in Redis, so a
 * new leader polls that job instead of sending the category again; one batch per stream is in
 * flight, and the next starts only after this one's jobs finished. */
#include "worker/flush/job.h"
#include "worker/flush/job_internal.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/flush/accounts.h"
#include "worker/flush/context.h"
#include "worker/flush/ratelimit.h"
#include "worker/ingest/consumer.h"
#include "worker/klaviyo/api.h"
#include "worker/klaviyo/build.h"
#include "worker/klaviyo/client.h"
#include "worker/klaviyo/dryrun.h"
#include "worker/klaviyo/parse.h"
#include "worker/ops/deadletter.h"
#include "worker/ops/metrics.h"
#include "worker/settings.h"
#include "worker/store/account_ops.h"
#include "worker/store/flush_ops.h"
#include "worker/store/store.h"

#define MOD "flush"
#define WAIT_DEFAULT_MS 1000u /* 429 without Retry-After */
#define DLQ_TIMEOUT_MS 10000
/* The leader's memory: one batch weighs at most BATCH_BYTES_MAX (a 10,000-profile import of
 * ~1.6 KB each), all of them at most BATCH_BYTES_BUDGET; a job takes only while there is room. */
#define BATCH_BYTES_MAX (16u << 20)
#define BATCH_BYTES_BUDGET (256u << 20)
/* A membership batch holds at most an import's adds (10,000), and removals up to this many
 * entries in all: they are looked up 100 and deleted 1,000 at a time, so they need not fit in
 * one request, and a removal backlog taken 10,000 at a time paid each batch's last lookups' and
 * deletes' latency before the next could start (one batch in flight per audience). 50,000
 * removals: 500 lookups, 7.5 s of an account's lookup tier at 90 %, ~5 MB in the leader. */
#define MEMBERSHIP_BATCH_MAX 50000u

const char *const aw_job_cat_name[CAT_COUNT] = {"import_add", "import_update", "profile_unset",
                                                "subscribe",  "unsubscribe",   "remove"};

uint64_t aw_job_now_ms(void)
{
    return aw_clock_mono_ms();
}

/* Monotonic seconds with sub-millisecond resolution, for the request duration histogram. */
static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The class label of aw_klaviyo_request_duration_seconds (status 0: no HTTP answer). */
static const char *status_class(long status)
{
    if (status == 0)
        return "transport";
    if (status == 429)
        return "429";
    if (status >= 200 && status < 300)
        return "2xx";
    if (status >= 400 && status < 500)
        return "4xx";
    if (status >= 500 && status < 600)
        return "5xx";
    return "other";
}

const char *aw_job_aud(const struct aw_flush_job *j)
{
    return j->aud_id ? j->aud_id : "(profiles)";
}

const char *aw_job_err_field(const struct aw_klaviyo_response *r, int which)
{
    if (r->errors.n == 0)
        return NULL;
    const struct aw_parse_error *e = &r->errors.items[0];
    return which == 0 ? e->id : which == 1 ? e->code : e->title;
}

struct aw_flush_job *aw_flush_job_new(struct aw_flush_ctx *ctx, const char *account_id,
                                      const char *audience_id)
{
    struct aw_flush_job *j = aw_calloc(1, sizeof *j);
    j->acct_id = aw_strdup(account_id);
    j->aud_id = audience_id ? aw_strdup(audience_id) : NULL;
    j->acct = aw_flush_accounts_get(ctx->accounts, account_id);
    j->batch_bytes = &ctx->batch_bytes;
    j->phase = PH_TAKE;
    j->run.next_at = aw_job_now_ms();
    j->resume_cat = -1;
    aw_backoff_init(&j->run.bo, ctx->s->klaviyo.retry_base_ms, ctx->s->klaviyo.retry_max_ms,
                    aw_clock_unix_ms() ^ (uint64_t)(uintptr_t)j);
    aw_backoff_init(&j->side.bo, ctx->s->klaviyo.retry_base_ms, ctx->s->klaviyo.retry_max_ms,
                    aw_clock_unix_ms() ^ (uint64_t)(uintptr_t)&j->side);
    return j;
}

void aw_flush_job_free(struct aw_flush_job *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->n && j->del_id; i++)
        free(j->del_id[i]);
    free(j->gone);
    free(j->accepted);
    free(j->del_id);
    free(j->looked_up);
    free(j->claimed);
    free(j->removed);
    for (int c = 0; c < CAT_COUNT; c++)
        free(j->cat[c]);
    for (size_t i = 0; i < j->n_dl; i++) {
        free(j->dl[i].env);
        free(j->dl[i].reason);
    }
    free(j->dl);
    aw_dlq_set_free(j->dl_set);
    free(j->job_id);
    free(j->job_items);
    free(j->err_cursor);
    free(j->orphan_cursor);
    free(j->list_id);
    *j->batch_bytes -= j->t.bytes;
    aw_metrics_set(AW_M_FLUSH_BATCH_BYTES, (int64_t)*j->batch_bytes);
    aw_store_taken_clear(&j->t);
    free(j->acct_id);
    free(j->aud_id);
    free(j);
}

/* The side track is open (job_internal.h): an audience batch whose list is known, still on its
 * imports (its own removal stage comes after them), with removals to send. */
static bool side_open(const struct aw_flush_job *j)
{
    return j->aud_id && j->list_id && !j->relist && !j->release && j->cur < CAT_DEL &&
           (j->phase == PH_SEND || j->phase == PH_JOB_POLL || j->phase == PH_JOB_ERRORS) &&
           j->ncat[CAT_DEL] > 0;
}

/* Side requests ready now, counted up to most (the Redis id cache not read yet: one). */
static size_t side_ready(const struct aw_flush_job *j, uint64_t now, size_t most)
{
    if (!side_open(j) || j->side.next_at > now)
        return 0;
    return j->cache_checked ? aw_job_removal_fan_out(j, most) : 1;
}

uint64_t aw_flush_job_next_at(const struct aw_flush_job *j)
{
    uint64_t at = j->run_busy ? UINT64_MAX : j->run.next_at;
    if (j->side.next_at < at && side_ready(j, j->side.next_at, 1) > 0)
        at = j->side.next_at;
    return at;
}

uint64_t aw_flush_job_run_at(const struct aw_flush_job *j)
{
    return j->run_busy || j->phase == PH_REMOVALS ? UINT64_MAX : j->run.next_at;
}

const char *aw_flush_job_account(const struct aw_flush_job *j)
{
    return j->acct_id;
}

const char *aw_flush_job_audience(const struct aw_flush_job *j)
{
    return j->aud_id;
}

void aw_job_retry_later(struct aw_flush_job *j, struct aw_job_track *t, const char *what,
                        const char *detail)
{
    uint64_t d = aw_backoff_next_ms(&t->bo);
    t->next_at = aw_job_now_ms() + d;
    aw_metrics_count(AW_MF_FLUSH_STEP_FAILURES, what, NULL);
    if (t->bo.attempt <= 1)
        AW_LOG_WARN(MOD, "flush step failed, retrying",
                    "account=%s audience=%s step=%s detail=\"%s\" retry_in_ms=%" PRIu64, j->acct_id,
                    aw_job_aud(j), what, detail ? detail : "", d);
    else
        AW_LOG_DEBUG(MOD, "flush step failed, retrying",
                     "account=%s audience=%s step=%s attempt=%u retry_in_ms=%" PRIu64, j->acct_id,
                     aw_job_aud(j), what, t->bo.attempt, d);
}

static void produce(struct aw_flush_ctx *ctx, struct aw_flush_job *j, const struct dl *d)
{
    char key[300];
    int kn = snprintf(key, sizeof key, "%s:%s", j->acct_id, j->aud_id ? j->aud_id : "");
    if (!j->dl_set)
        j->dl_set = aw_dlq_set_new();
    if (aw_dlq_produce(ctx->dlq, j->dl_set, key, kn > 0 ? (size_t)kn : 0, d->env, strlen(d->env),
                       d->reason, "flush", "klaviyo", -1, -1) == AW_OK)
        j->dl_produced++;
    else
        AW_LOG_WARN(MOD, "dead-letter produce failed (retried before ack)",
                    "account=%s audience=%s reason=%s", j->acct_id, aw_job_aud(j), d->reason);
}

/* Keeps envelope env (owned) with the job until its batch is acked, produces and counts it. */
static void keep_and_produce(struct aw_flush_ctx *ctx, struct aw_flush_job *j, char *env,
                             const char *reason)
{
    aw_grow((void **)&j->dl, &j->cap_dl, j->n_dl + 1, sizeof *j->dl);
    j->dl[j->n_dl].env = env;
    j->dl[j->n_dl].reason = aw_strdup(reason);
    produce(ctx, j, &j->dl[j->n_dl]);
    j->n_dl++;
    aw_metrics_count(AW_MF_DEAD_LETTERS, "flush", reason);
}

/* Dead-letters entry idx once (stage "flush"); the envelope is kept until the batch is acked so
 * it can be produced again if the broker did not confirm it. */
void aw_job_dead_letter(struct aw_flush_ctx *ctx, struct aw_flush_job *j, size_t idx,
                        const char *reason, const char *kid, const char *kcode, const char *ktitle)
{
    if (j->gone[idx])
        return;
    j->gone[idx] = true;
    struct aw_store_entry *e = &j->t.entries[idx];
    struct aw_change minimal;
    const struct aw_change *c = &e->change;
    if (e->bad) { /* the record did not decode: what is known of it */
        memset(&minimal, 0, sizeof minimal);
        minimal.account_id = j->acct_id;
        minimal.audience_id = j->aud_id;
        minimal.email = e->email;
        minimal.event_id = (char *)"";
        minimal.action = AW_CHANGE_ATTRIBUTE_UPDATE;
        c = &minimal;
    }
    char *env = NULL;
    if (aw_deadletter_change(c, "flush", reason, kid, kcode, ktitle, &env) != AW_OK)
        env = aw_strdup("{}");
    keep_and_produce(ctx, j, env, reason);
    AW_LOG_INFO(MOD, "record dead-lettered",
                "account=%s audience=%s reason=%s klaviyo_id=%s klaviyo_code=%s", j->acct_id,
                aw_job_aud(j), reason, kid ? kid : "", kcode ? kcode : "");
}

void aw_job_dead_letter_unmatched(struct aw_flush_ctx *ctx, struct aw_flush_job *j, const char *kid,
                                  const char *kcode, const char *ktitle)
{
    const char *reason = "klaviyo_import_error_unmatched";
    char *env = NULL;
    if (aw_deadletter_unmatched(j->acct_id, j->aud_id, j->job_id, kid, kcode, ktitle, &env) !=
        AW_OK)
        env = aw_strdup("{}");
    keep_and_produce(ctx, j, env, reason);
    AW_LOG_ERROR(MOD, "import error names no record of the job: dead-lettered",
                 "account=%s audience=%s klaviyo_id=%s klaviyo_code=%s", j->acct_id, aw_job_aud(j),
                 kid ? kid : "", kcode ? kcode : "");
}

void aw_flush_job_reproduce(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    /* a new set: late reports of the old one never confirm the new records */
    aw_dlq_set_free(j->dl_set);
    j->dl_set = NULL;
    j->dl_produced = 0;
    for (size_t d = 0; d < j->n_dl; d++)
        produce(ctx, j, &j->dl[d]);
}

/* Removes gone entries from cat c at or after pos. */
void aw_job_compact(struct aw_flush_job *j, int c)
{
    size_t w = j->pos;
    for (size_t r = j->pos; r < j->ncat[c]; r++)
        if (!j->gone[j->cat[c][r]])
            j->cat[c][w++] = j->cat[c][r];
    j->ncat[c] = w;
}

size_t aw_job_live(const struct aw_flush_job *j, int c)
{
    size_t n = 0;
    for (size_t i = 0; i < j->ncat[c]; i++)
        n += !j->gone[j->cat[c][i]];
    return n;
}

/* Moves to the first category at or after `from` that has work; ACK when none. */
void aw_job_next_stage(struct aw_flush_job *j, int from)
{
    j->run.split_limit = 0;
    for (int c = from; c < CAT_COUNT; c++) {
        if (aw_job_live(j, c) == 0)
            continue;
        j->cur = c;
        j->pos = 0;
        j->phase = c == CAT_DEL ? PH_REMOVALS : PH_SEND;
        return;
    }
    j->cur = CAT_COUNT;
    j->phase = PH_ACK;
}

/* After the list is known (or cannot be): continue where the job stood. */
void aw_job_after_list(struct aw_flush_job *j)
{
    j->run.next_at = aw_job_now_ms();
    if (j->relist) {
        j->relist = false;
        j->phase = PH_SEND; /* same category and position (gone entries are skipped) */
        return;
    }
    aw_job_next_stage(j, j->cur);
}

/* Dead-letters every live entry of the list-dependent categories (no list can be resolved). */
void aw_job_drop_list_work(struct aw_flush_ctx *ctx, struct aw_flush_job *j, const char *reason,
                           const struct aw_klaviyo_response *r)
{
    static const int cats[2] = {CAT_ADD, CAT_DEL};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < j->ncat[cats[k]]; i++)
            aw_job_dead_letter(ctx, j, j->cat[cats[k]][i], reason,
                               r ? aw_job_err_field(r, 0) : NULL, r ? aw_job_err_field(r, 1) : NULL,
                               r ? aw_job_err_field(r, 2) : NULL);
}

/* ---- Requests ------------------------------------------------------------------------------- */

/* Sends one request unless the lease is gone, the account is paused or has no key, or the
 * rate limit says wait (then t->next_at is set and NOT_SENT returned). resp is always
 * initialised. */
enum sent aw_job_send(struct aw_flush_ctx *ctx, struct aw_flush_job *j, struct aw_job_track *t,
                      enum aw_api_endpoint ep, const char *path, const char *body,
                      struct aw_klaviyo_response *resp)
{
    const struct aw_api_op *op = aw_api_get(ep);
    struct aw_klaviyo *k = j->k; /* this lane's: another lane may run a lookup of j meanwhile */
    memset(resp, 0, sizeof *resp);
    /* An answer that arrived is handled before anything else is sent: were it a 429, the
     * account's Retry-After must hold from the moment it arrived (lanes, context.h). */
    while (ctx->mu && atomic_load(&ctx->answered) > 0) {
        pthread_mutex_unlock(ctx->mu);
        sched_yield();
        pthread_mutex_lock(ctx->mu);
    }
    uint64_t now = aw_job_now_ms();
    if (!aw_leader_is_held(&ctx->leader, now)) {
        t->next_at = now + ctx->s->flush.tick_ms;
        return NOT_SENT;
    }
    struct aw_flush_account *a = j->acct;
    if (aw_flush_account_is_paused(a, now)) {
        j->release = true; /* its memory goes back; the scan resumes it after the pause */
        t->next_at = now;
        return NOT_SENT;
    }
    if (aw_flush_account_load(ctx, a) != AW_OK) {
        aw_job_retry_later(j, t, "account_load", aw_store_errstr(ctx->store));
        return NOT_SENT;
    }
    if (!a->api_key) {
        aw_flush_account_pause(ctx, a, 0, "missing_api_key");
        j->release = true;
        t->next_at = now;
        return NOT_SENT;
    }
    if (ctx->dry && aw_dryrun_intercepts(ep, path)) {
        /* AW_DRY_RUN: recorded and answered locally, never sent, no rate limit spent */
        if (aw_dryrun_answer(ctx->dry, a->id, ep, path, body, resp) != AW_OK)
            AW_LOG_WARN(MOD, "dry run: cannot write AW_DRY_RUN_FILE", "account=%s audience=%s",
                        j->acct_id, aw_job_aud(j));
        return SENT;
    }
    uint64_t w = aw_ratelimit_acquire(ctx->rl, a->id, ep, now);
    if (w > 0) {
        /* the job runs again at next_at: the wait is what the limiter costs this request */
        aw_metrics_family_add(AW_MF_KLAVIYO_RATE_LIMIT_WAIT, op->name, NULL, (double)w / 1000.0);
        t->next_at = now + w;
        return NOT_SENT;
    }
    aw_metrics_add(AW_M_KLAVIYO_REQUESTS, 1);
    aw_klaviyo_set_deadline(k, ctx->leader.valid_until_ms);
    /* The wait for Klaviyo is the one thing lanes do side by side: the flusher's lock is let go
     * for it (context.h). The key is copied first: a reload may replace a->api_key meanwhile. */
    char *key = aw_strdup(a->api_key);
    aw_metrics_set(AW_M_KLAVIYO_IN_FLIGHT, (int64_t)++ctx->in_flight);
    if (ctx->mu)
        pthread_mutex_unlock(ctx->mu);
    double t0 = mono_s();
    (void)aw_klaviyo_request(k, key, op->method, path, body, body ? strlen(body) : 0, resp);
    double took = mono_s() - t0;
    if (ctx->mu) {
        atomic_fetch_add(&ctx->answered, 1);
        pthread_mutex_lock(ctx->mu);
        atomic_fetch_sub(&ctx->answered, 1); /* handled before this step lets go of the lock */
    }
    aw_metrics_set(AW_M_KLAVIYO_IN_FLIGHT, (int64_t)--ctx->in_flight);
    memset(key, 0, strlen(key));
    free(key);
    aw_metrics_observe(AW_MF_KLAVIYO_REQUEST_DURATION, op->name, status_class(resp->status), took);
    /* the server's count also holds what other integrations of the account spent */
    aw_ratelimit_observe(ctx->rl, a->id, ep, resp->ratelimit_remaining, resp->ratelimit_reset_s,
                         aw_job_now_ms());
    if (resp->status == 429)
        aw_metrics_add(AW_M_KLAVIYO_RATE_LIMITED, 1);
    if (resp->status == 0 || resp->status >= 500)
        aw_metrics_add(AW_M_KLAVIYO_ERRORS, 1);
    AW_LOG_DEBUG(MOD, "klaviyo request", "account=%s audience=%s op=%s status=%ld action=%s",
                 j->acct_id, aw_job_aud(j), op->name, resp->status,
                 aw_klaviyo_action_str(resp->action));
    return SENT;
}

/* WAIT / RETRY / PAUSE: schedules j and returns true. DONE: resets the backoff, resumes a
 * paused account, returns false. Other actions: false (the caller decides). */
bool aw_job_handle_common(struct aw_flush_ctx *ctx, struct aw_flush_job *j, struct aw_job_track *t,
                          const char *step, const struct aw_klaviyo_response *r)
{
    struct aw_flush_account *a = j->acct;
    uint64_t now = aw_job_now_ms();
    switch (r->action) {
    case AW_KLAVIYO_WAIT: {
        uint64_t ra = r->has_retry_after ? r->retry_after_ms : WAIT_DEFAULT_MS;
        if (ra == 0)
            ra = WAIT_DEFAULT_MS / 4;
        aw_metrics_add(AW_M_KLAVIYO_RETRY_AFTER_MS, ra);
        aw_ratelimit_block(ctx->rl, a->id, now + ra);
        if (aw_store_account_block(ctx->store, a->id, aw_clock_unix_ms() + ra) != AW_OK)
            AW_LOG_WARN(MOD, "cannot store Retry-After block", "account=%s detail=\"%s\"", a->id,
                        aw_store_errstr(ctx->store));
        AW_LOG_DEBUG(MOD, "rate limited by Klaviyo", "account=%s step=%s retry_after_ms=%" PRIu64,
                     a->id, step, ra);
        t->next_at = now + ra;
        return true;
    }
    case AW_KLAVIYO_RETRY: {
        char detail[300];
        snprintf(detail, sizeof detail, "status=%ld %s", r->status, r->transport_error);
        aw_job_retry_later(j, t, step, detail);
        return true;
    }
    case AW_KLAVIYO_PAUSE:
        aw_flush_account_pause(ctx, a, r->status, "refused");
        j->release = true;
        t->next_at = aw_job_now_ms();
        return true;
    case AW_KLAVIYO_DONE:
        aw_backoff_reset(&t->bo);
        aw_flush_account_resume(ctx, a);
        return false;
    default:
        aw_flush_account_resume(ctx, a); /* the key was accepted */
        return false;
    }
}

/* ---- Take ----------------------------------------------------------------------------------- */

unsigned aw_flush_change_kinds(const struct aw_change *c, bool audience)
{
    if (audience)
        return 1u << (c->action == AW_CHANGE_DELETE ? CAT_DEL : CAT_ADD);
    unsigned m = 0;
    if (c->n_attrs > 0 || c->ids_changed)
        m |= 1u << CAT_UPD;
    if (aw_build_needs_profile_import(c))
        m |= 1u << CAT_UNSET;
    if (aw_build_has_subscribe(c))
        m |= 1u << CAT_SUB;
    if (aw_build_has_unsubscribe(c))
        m |= 1u << CAT_UNSUB;
    return m;
}

static void categorize(struct aw_flush_job *j)
{
    for (int c = 0; c < CAT_COUNT; c++)
        j->cat[c] = aw_calloc(j->n ? j->n : 1, sizeof *j->cat[c]);
    for (size_t i = 0; i < j->n; i++) {
        if (j->gone[i])
            continue;
        unsigned m = aw_flush_change_kinds(&j->t.entries[i].change, j->aud_id != NULL);
        for (int k = 0; k < CAT_COUNT; k++)
            if (m & (1u << k))
                j->cat[k][j->ncat[k]++] = i;
    }
}

/* A predecessor's job id, recorded as "<category>:<entries>:<job id>". */
static void parse_resume_job(struct aw_flush_job *j)
{
    const char *rec = j->t.job_id;
    if (!rec)
        return;
    char *end = NULL;
    long c = strtol(rec, &end, 10);
    if (end == rec || *end != ':' || c < 0 || c >= CAT_COUNT)
        return;
    const char *p = end + 1;
    unsigned long long items = strtoull(p, &end, 10);
    if (end == p || *end != ':' || !end[1])
        return;
    j->resume_cat = (int)c;
    j->resume_items = (size_t)items;
    free(j->job_id);
    j->job_id = aw_strdup(end + 1);
}

static bool step_take(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    /* the leader's memory stays flat: a new batch waits while the others fill the budget */
    if (ctx->batch_bytes >= BATCH_BYTES_BUDGET) {
        j->run.next_at = aw_job_now_ms() + ctx->s->flush.tick_ms;
        return false;
    }
    size_t room = BATCH_BYTES_BUDGET - ctx->batch_bytes;
    size_t imports = aw_api_get(AW_API_IMPORT_CREATE)->max_items;
    enum aw_err e = aw_store_flush_take(ctx->store, j->acct_id, j->aud_id, ctx->leader.epoch,
                                        j->aud_id ? MEMBERSHIP_BATCH_MAX : imports, imports,
                                        room < BATCH_BYTES_MAX ? room : BATCH_BYTES_MAX,
                                        aw_clock_unix_ms(), &j->t);
    if (e == AW_ERR_NOT_LEADER) {
        AW_LOG_WARN(MOD, "batch fenced by a newer leader", "account=%s audience=%s", j->acct_id,
                    aw_job_aud(j));
        return true;
    }
    if (e != AW_OK) {
        aw_metrics_add(AW_M_STORE_ERRORS, 1);
        aw_job_retry_later(j, &j->run, "take", aw_store_errstr(ctx->store));
        return false;
    }
    if (j->t.status == AW_STORE_BATCH_EMPTY)
        return true;
    ctx->batch_bytes += j->t.bytes;
    aw_metrics_set(AW_M_FLUSH_BATCH_BYTES, (int64_t)ctx->batch_bytes);
    j->n = j->t.n;
    size_t n1 = j->n ? j->n : 1;
    j->gone = aw_calloc(n1, sizeof *j->gone);
    j->accepted = aw_calloc(n1, sizeof *j->accepted);
    j->del_id = aw_calloc(n1, sizeof *j->del_id);
    j->looked_up = aw_calloc(n1, sizeof *j->looked_up);
    j->claimed = aw_calloc(n1, sizeof *j->claimed);
    j->removed = aw_calloc(n1, sizeof *j->removed);
    j->job_items = aw_calloc(n1, sizeof *j->job_items);
    j->started_ms = aw_job_now_ms();
    for (size_t i = 0; i < j->n; i++) {
        if (j->t.entries[i].bad) {
            aw_job_dead_letter(ctx, j, i, "undecodable_pending", NULL, NULL, NULL);
        } else if (j->t.entries[i].dropped) {
            j->gone[i] = true; /* changed before its audience was removed */
            j->n_dropped++;
        }
    }
    categorize(j);
    if (j->t.status == AW_STORE_BATCH_RESUMED) {
        parse_resume_job(j);
        aw_job_resume_imports(ctx, j);
    }
    AW_LOG_INFO(
        MOD, j->t.status == AW_STORE_BATCH_RESUMED ? "resuming in-flight batch" : "flushing batch",
        "account=%s audience=%s batch=%s records=%zu adds=%zu updates=%zu removes=%zu "
        "subscribes=%zu unsubscribes=%zu dropped=%zu",
        j->acct_id, aw_job_aud(j), j->t.batch_id, j->n, j->ncat[CAT_ADD], j->ncat[CAT_UPD],
        j->ncat[CAT_DEL], j->ncat[CAT_SUB], j->ncat[CAT_UNSUB], j->n_dropped);
    j->cur = CAT_ADD;
    j->pos = 0;
    if (j->aud_id && (aw_job_live(j, CAT_ADD) || aw_job_live(j, CAT_DEL)))
        j->phase = PH_LIST;
    else
        aw_job_next_stage(j, CAT_ADD);
    j->run.next_at = aw_job_now_ms();
    return false;
}

/* ---- List ----------------------------------------------------------------------------------- */

/* ---- Imports, clears, consent --------------------------------------------------------------- */

/* Handles a 4xx that is not WAIT/PAUSE for the request holding items[pos..pos+n). */
bool aw_job_refuse_items(struct aw_flush_ctx *ctx, struct aw_flush_job *j, struct aw_job_track *t,
                         int c, const size_t *items, size_t n, const struct aw_klaviyo_response *r)
{
    if (r->action == AW_KLAVIYO_DROP_RECORDS) {
        size_t dropped = 0;
        for (size_t k = 0; k < r->errors.n; k++) {
            const struct aw_parse_error *e = &r->errors.items[k];
            if (e->has_index && e->index < n && !j->gone[items[e->index]]) {
                aw_job_dead_letter(ctx, j, items[e->index], "klaviyo_invalid_record", e->id,
                                   e->code, e->title);
                dropped++;
            }
        }
        if (dropped > 0)
            return false; /* the rest is sent again without them */
    }
    if (aw_job_split(j, t, c, n, r))
        return false;
    const char *reason = r->action == AW_KLAVIYO_NOT_FOUND  ? "klaviyo_not_found"
                         : r->action == AW_KLAVIYO_CONFLICT ? "klaviyo_conflict"
                                                            : "klaviyo_rejected";
    AW_LOG_WARN(MOD, "Klaviyo refused a request",
                "account=%s audience=%s step=%s status=%ld klaviyo_id=%s klaviyo_code=%s "
                "records=%zu",
                j->acct_id, aw_job_aud(j), aw_job_cat_name[c], r->status,
                aw_job_err_field(r, 0) ? aw_job_err_field(r, 0) : "",
                aw_job_err_field(r, 1) ? aw_job_err_field(r, 1) : "", n);
    for (size_t i = 0; i < n; i++)
        aw_job_dead_letter(ctx, j, items[i], reason, aw_job_err_field(r, 0), aw_job_err_field(r, 1),
                           aw_job_err_field(r, 2));
    t->split_limit = 0; /* the bad record is out: full-size requests again */
    return true;
}

bool aw_job_split(struct aw_flush_job *j, struct aw_job_track *t, int c, size_t n,
                  const struct aw_klaviyo_response *r)
{
    if (r->action != AW_KLAVIYO_REJECT || (r->status != 400 && r->status != 413) || n < 2)
        return false;
    t->split_limit = n / 2;
    t->next_at = aw_job_now_ms();
    AW_LOG_INFO(MOD, "request refused whole; sending it in halves to find the bad records",
                "account=%s audience=%s step=%s status=%ld records=%zu half=%zu", j->acct_id,
                aw_job_aud(j), aw_job_cat_name[c], r->status, n, t->split_limit);
    return true;
}

/* ---- Removals ------------------------------------------------------------------------------- */

/* ---- Ack ------------------------------------------------------------------------------------ */

static const char *channels_str(unsigned m)
{
    switch (m & (AW_JOB_CHANNEL_EMAIL | AW_JOB_CHANNEL_SMS)) {
    case AW_JOB_CHANNEL_EMAIL:
        return "email";
    case AW_JOB_CHANNEL_SMS:
        return "sms";
    case AW_JOB_CHANNEL_EMAIL | AW_JOB_CHANNEL_SMS:
        return "email,sms";
    default:
        return "";
    }
}

/* Returns true when the job is finished. */
static bool step_ack(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    if (!aw_job_orphans_settled(ctx, j))
        return false;
    if (j->n_dl > 0) {
        /* every dead letter of this batch confirmed (a failed or missing produce counts as
         * unconfirmed), else they are produced again and the ack waits */
        enum aw_err e =
            j->dl_set ? aw_dlq_set_wait(ctx->dlq, j->dl_set, DLQ_TIMEOUT_MS) : AW_ERR_IO;
        if (e == AW_OK && j->dl_produced < j->n_dl)
            e = AW_ERR_IO;
        if (e != AW_OK) {
            aw_flush_job_reproduce(ctx, j);
            aw_job_retry_later(j, &j->run, "dead_letter_wait", aw_err_str(e));
            return false;
        }
    }
    const char **emails = aw_calloc(j->n ? j->n : 1, sizeof *emails);
    const char **accepted = aw_calloc(j->n ? j->n : 1, sizeof *accepted);
    for (size_t i = 0; i < j->n; i++) {
        emails[i] = j->t.entries[i].email;
        accepted[i] = j->gone[i] ? "" : channels_str(j->accepted[i]);
    }
    enum aw_store_batch_status st;
    enum aw_err e =
        aw_store_flush_ack(ctx->store, j->acct_id, j->aud_id, ctx->leader.epoch, j->t.batch_id,
                           emails, accepted, j->n, aw_clock_unix_ms(), &st);
    free(emails);
    free(accepted);
    if (e == AW_ERR_NOT_LEADER)
        return true;
    if (e != AW_OK) {
        aw_metrics_add(AW_M_STORE_ERRORS, 1);
        aw_job_retry_later(j, &j->run, "ack", aw_store_errstr(ctx->store));
        return false;
    }
    aw_metrics_add(AW_M_FLUSHES, 1);
    aw_metrics_observe(AW_MF_FLUSH_DURATION, NULL, NULL,
                       (double)(aw_job_now_ms() - j->started_ms) / 1000.0);
    AW_LOG_INFO(MOD, "stream flushed",
                "account=%s audience=%s batch=%s records=%zu uploaded=%zu removed=%zu "
                "not_found=%zu dropped=%zu dead_lettered=%zu ms=%" PRIu64 "%s",
                j->acct_id, aw_job_aud(j), j->t.batch_id, j->n, j->n_uploaded, j->n_removed,
                j->n_not_found, j->n_dropped, j->n_dl, aw_job_now_ms() - j->started_ms,
                st == AW_STORE_BATCH_GONE ? " gone=1" : "");
    return true;
}

void aw_flush_job_set_client(struct aw_flush_job *j, struct aw_klaviyo *k)
{
    j->k = k;
}

size_t aw_flush_job_fan_out(const struct aw_flush_job *j, size_t most)
{
    if (j->release)
        return 0;
    uint64_t now = aw_job_now_ms();
    if (j->phase == PH_REMOVALS)
        return j->cache_checked && j->run.next_at <= now ? aw_job_removal_fan_out(j, most) : 0;
    size_t n = side_ready(j, now, most);
    if (n > 0 && !j->run_busy && j->run.next_at <= now)
        n++; /* and the phases' own step */
    return n;
}

/* One step of the job's phases (run track). */
static bool run_step(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    switch (j->phase) {
    case PH_TAKE:
        return step_take(ctx, j);
    case PH_LIST:
        aw_job_step_list(ctx, j);
        return false;
    case PH_LIST_CREATE:
        aw_job_step_list_create(ctx, j);
        return false;
    case PH_SEND:
        aw_job_step_send(ctx, j);
        return false;
    case PH_JOB_POLL:
        aw_job_step_poll(ctx, j);
        return false;
    case PH_JOB_ERRORS:
        aw_job_step_errors(ctx, j);
        return false;
    case PH_REMOVALS:
        aw_job_step_removals(ctx, j, &j->run, false);
        return false;
    case PH_ACK:
        return step_ack(ctx, j);
    }
    return true;
}

/* What a lane given j runs: a removal stage's requests side by side (fan-out); otherwise the
 * phases' step in one lane at a time, and in the other lanes, while that step waits or is on
 * the wire, the batch's removals on the side track. Nothing when neither is due (another lane
 * took the work first). */
bool aw_flush_job_step(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    if (j->release) { /* between two requests: a new leader could resume here just as well */
        AW_LOG_DEBUG(MOD, "paused account: batch left in Redis", "account=%s audience=%s",
                     j->acct_id, aw_job_aud(j));
        return true;
    }
    uint64_t now = aw_job_now_ms();
    if (j->phase == PH_REMOVALS) {
        if (j->run.next_at <= now)
            aw_job_step_removals(ctx, j, &j->run, false);
        return false;
    }
    if (!j->run_busy && j->run.next_at <= now) {
        j->run_busy = true;
        bool over = run_step(ctx, j);
        j->run_busy = false;
        return over;
    }
    if (side_ready(j, now, 1) > 0)
        aw_job_step_removals(ctx, j, &j->side, true);
    return false;
}
