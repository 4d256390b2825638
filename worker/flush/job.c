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

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
#define CHANNEL_EMAIL 1u
#define CHANNEL_SMS 2u

/* Kinds of work in a batch, in the order they are sent. */
enum cat { CAT_ADD = 0, CAT_UPD, CAT_UNSET, CAT_SUB, CAT_UNSUB, CAT_DEL, CAT_COUNT };
static const char *const cat_name[CAT_COUNT] = {"import_add", "import_update", "profile_unset",
                                                "subscribe",  "unsubscribe",   "remove"};

enum phase {
    PH_TAKE = 0,    /* take (or resume) the in-flight batch */
    PH_LIST,        /* resolve the list id (meta, else find by name) */
    PH_LIST_CREATE, /* POST /api/lists */
    PH_SEND,        /* one request of category cur from pos */
    PH_JOB_POLL,    /* poll the bulk import job */
    PH_JOB_ERRORS,  /* read its import-errors pages */
    PH_LOOKUP,      /* removals: profile ids by email */
    PH_REMOVE,      /* removals: DELETE relationships */
    PH_ACK          /* dead letters confirmed, then ack */
};

struct dl {
    char *env;    /* envelope, owned */
    char *reason; /* owned */
};

struct aw_flush_job {
    char *acct_id;
    char *aud_id; /* NULL: the account's profile stream */
    struct aw_flush_account *acct;
    enum phase phase;
    uint64_t next_at; /* mono ms */
    uint64_t started_ms;
    struct aw_backoff bo;
    struct aw_store_taken t;
    size_t n;
    bool *gone;         /* dead-lettered or done without a request: skipped from now on */
    unsigned *accepted; /* consent channels Klaviyo accepted (CHANNEL_*) */
    char **del_id;      /* removals: Klaviyo profile id per entry, owned, or NULL */
    bool *looked_up;
    char *list_id;
    bool list_auto;         /* found/created by name (meta klaviyo_list_id) */
    size_t *cat[CAT_COUNT]; /* entry indexes per category */
    size_t ncat[CAT_COUNT];
    int cur;           /* current category */
    size_t pos;        /* next item of the current category (or of rm) */
    char *job_id;      /* bulk import job being polled */
    size_t *job_items; /* entries of that job (body order) */
    size_t n_job_items;
    char *err_cursor;
    int resume_cat;      /* a predecessor's import job: its category, or -1 */
    size_t resume_items; /* ... how many entries it held */
    bool cache_checked;  /* removals: the Redis id cache was read */
    size_t *rm;          /* removals with a profile id */
    size_t n_rm;
    struct dl *dl; /* dead letters produced for this batch (kept until ack) */
    size_t n_dl, cap_dl;
    bool relist; /* list re-resolved in the middle of a category: continue there */
    size_t n_uploaded, n_removed, n_not_found, n_dropped;
};

static uint64_t now_ms(void)
{
    return aw_clock_mono_ms();
}

static const char *aud_or_profiles(const struct aw_flush_job *j)
{
    return j->aud_id ? j->aud_id : "(profiles)";
}

static const char *err_field(const struct aw_klaviyo_response *r, int which)
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
    j->phase = PH_TAKE;
    j->next_at = now_ms();
    j->resume_cat = -1;
    aw_backoff_init(&j->bo, ctx->s->klaviyo.retry_base_ms, ctx->s->klaviyo.retry_max_ms,
                    aw_clock_unix_ms() ^ (uint64_t)(uintptr_t)j);
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
    for (int c = 0; c < CAT_COUNT; c++)
        free(j->cat[c]);
    for (size_t i = 0; i < j->n_dl; i++) {
        free(j->dl[i].env);
        free(j->dl[i].reason);
    }
    free(j->dl);
    free(j->rm);
    free(j->job_id);
    free(j->job_items);
    free(j->err_cursor);
    free(j->list_id);
    aw_store_taken_clear(&j->t);
    free(j->acct_id);
    free(j->aud_id);
    free(j);
}

uint64_t aw_flush_job_next_at(const struct aw_flush_job *j)
{
    return j->next_at;
}

const char *aw_flush_job_account(const struct aw_flush_job *j)
{
    return j->acct_id;
}

const char *aw_flush_job_audience(const struct aw_flush_job *j)
{
    return j->aud_id;
}

static void retry_later(struct aw_flush_job *j, const char *what, const char *detail)
{
    uint64_t d = aw_backoff_next_ms(&j->bo);
    j->next_at = now_ms() + d;
    if (j->bo.attempt <= 1)
        AW_LOG_WARN(MOD, "flush step failed, retrying",
                    "account=%s audience=%s step=%s detail=\"%s\" retry_in_ms=%" PRIu64, j->acct_id,
                    aud_or_profiles(j), what, detail ? detail : "", d);
    else
        AW_LOG_DEBUG(MOD, "flush step failed, retrying",
                     "account=%s audience=%s step=%s attempt=%u retry_in_ms=%" PRIu64, j->acct_id,
                     aud_or_profiles(j), what, j->bo.attempt, d);
}

static void produce(struct aw_flush_ctx *ctx, const struct aw_flush_job *j, const struct dl *d)
{
    char key[300];
    int kn = snprintf(key, sizeof key, "%s:%s", j->acct_id, j->aud_id ? j->aud_id : "");
    if (aw_dlq_produce(ctx->dlq, key, kn > 0 ? (size_t)kn : 0, d->env, strlen(d->env), d->reason,
                       "flush", "klaviyo", -1, -1) != AW_OK)
        AW_LOG_WARN(MOD, "dead-letter produce failed (retried before ack)",
                    "account=%s audience=%s reason=%s", j->acct_id, aud_or_profiles(j), d->reason);
}

/* Dead-letters entry idx once (stage "flush"); the envelope is kept until the batch is acked so
 * it can be produced again if the broker did not confirm it. */
static void dead_letter(struct aw_flush_ctx *ctx, struct aw_flush_job *j, size_t idx,
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
    aw_grow((void **)&j->dl, &j->cap_dl, j->n_dl + 1, sizeof *j->dl);
    j->dl[j->n_dl].env = env;
    j->dl[j->n_dl].reason = aw_strdup(reason);
    produce(ctx, j, &j->dl[j->n_dl]);
    j->n_dl++;
    aw_metrics_count(AW_MF_DEAD_LETTERS, "flush", reason);
    AW_LOG_INFO(MOD, "record dead-lettered",
                "account=%s audience=%s reason=%s klaviyo_id=%s klaviyo_code=%s", j->acct_id,
                aud_or_profiles(j), reason, kid ? kid : "", kcode ? kcode : "");
}

void aw_flush_job_reproduce(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    for (size_t d = 0; d < j->n_dl; d++)
        produce(ctx, j, &j->dl[d]);
}

/* Removes gone entries from cat c at or after pos. */
static void compact(struct aw_flush_job *j, int c)
{
    size_t w = j->pos;
    for (size_t r = j->pos; r < j->ncat[c]; r++)
        if (!j->gone[j->cat[c][r]])
            j->cat[c][w++] = j->cat[c][r];
    j->ncat[c] = w;
}

static size_t live(const struct aw_flush_job *j, int c)
{
    size_t n = 0;
    for (size_t i = 0; i < j->ncat[c]; i++)
        n += !j->gone[j->cat[c][i]];
    return n;
}

/* Moves to the first category at or after `from` that has work; ACK when none. */
static void next_stage(struct aw_flush_job *j, int from)
{
    for (int c = from; c < CAT_COUNT; c++) {
        if (live(j, c) == 0)
            continue;
        j->cur = c;
        j->pos = 0;
        j->phase = c == CAT_DEL ? PH_LOOKUP : PH_SEND;
        return;
    }
    j->cur = CAT_COUNT;
    j->phase = PH_ACK;
}

/* After the list is known (or cannot be): continue where the job stood. */
static void after_list(struct aw_flush_job *j)
{
    j->next_at = now_ms();
    if (j->relist) {
        j->relist = false;
        j->phase = PH_SEND; /* same category and position (gone entries are skipped) */
        return;
    }
    next_stage(j, j->cur);
}

/* Dead-letters every live entry of the list-dependent categories (no list can be resolved). */
static void drop_list_work(struct aw_flush_ctx *ctx, struct aw_flush_job *j, const char *reason,
                           const struct aw_klaviyo_response *r)
{
    static const int cats[2] = {CAT_ADD, CAT_DEL};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < j->ncat[cats[k]]; i++)
            dead_letter(ctx, j, j->cat[cats[k]][i], reason, r ? err_field(r, 0) : NULL,
                        r ? err_field(r, 1) : NULL, r ? err_field(r, 2) : NULL);
}

/* ---- Requests ------------------------------------------------------------------------------- */

enum sent { SENT = 0, NOT_SENT };

/* Sends one request unless the lease is gone, the account is paused or has no key, or the
 * rate limit says wait (then j->next_at is set and NOT_SENT returned). resp is always
 * initialised. */
static enum sent send_req(struct aw_flush_ctx *ctx, struct aw_flush_job *j, enum aw_api_endpoint ep,
                          const char *path, const char *body, struct aw_klaviyo_response *resp)
{
    const struct aw_api_op *op = aw_api_get(ep);
    memset(resp, 0, sizeof *resp);
    uint64_t now = now_ms();
    if (!aw_leader_is_held(&ctx->leader, now)) {
        j->next_at = now + ctx->s->flush.tick_ms;
        return NOT_SENT;
    }
    struct aw_flush_account *a = j->acct;
    if (aw_flush_account_is_paused(a, now)) {
        j->next_at = a->paused_until;
        return NOT_SENT;
    }
    if (aw_flush_account_load(ctx, a) != AW_OK) {
        retry_later(j, "account_load", aw_store_errstr(ctx->store));
        return NOT_SENT;
    }
    if (!a->api_key) {
        aw_flush_account_pause(ctx, a, 0, "missing_api_key");
        j->next_at = a->paused_until;
        return NOT_SENT;
    }
    uint64_t w = aw_ratelimit_acquire(ctx->rl, a->id, ep, now);
    if (w > 0) {
        j->next_at = now + w;
        return NOT_SENT;
    }
    aw_metrics_add(AW_M_KLAVIYO_REQUESTS, 1);
    (void)aw_klaviyo_request(ctx->k, a->api_key, op->method, path, body, body ? strlen(body) : 0,
                             resp);
    /* the server's count also holds what other integrations of the account spent */
    aw_ratelimit_observe(ctx->rl, a->id, ep, resp->ratelimit_remaining, resp->ratelimit_reset_s,
                         now_ms());
    if (resp->status == 429)
        aw_metrics_add(AW_M_KLAVIYO_RATE_LIMITED, 1);
    if (resp->status == 0 || resp->status >= 500)
        aw_metrics_add(AW_M_KLAVIYO_ERRORS, 1);
    AW_LOG_DEBUG(MOD, "klaviyo request", "account=%s audience=%s op=%s status=%ld action=%s",
                 j->acct_id, aud_or_profiles(j), op->name, resp->status,
                 aw_klaviyo_action_str(resp->action));
    return SENT;
}

/* WAIT / RETRY / PAUSE: schedules j and returns true. DONE: resets the backoff, resumes a
 * paused account, returns false. Other actions: false (the caller decides). */
static bool handle_common(struct aw_flush_ctx *ctx, struct aw_flush_job *j, const char *step,
                          const struct aw_klaviyo_response *r)
{
    struct aw_flush_account *a = j->acct;
    uint64_t now = now_ms();
    switch (r->action) {
    case AW_KLAVIYO_WAIT: {
        uint64_t ra = r->has_retry_after ? r->retry_after_ms : WAIT_DEFAULT_MS;
        if (ra == 0)
            ra = WAIT_DEFAULT_MS / 4;
        aw_ratelimit_block(ctx->rl, a->id, now + ra);
        if (aw_store_account_block(ctx->store, a->id, aw_clock_unix_ms() + ra) != AW_OK)
            AW_LOG_WARN(MOD, "cannot store Retry-After block", "account=%s detail=\"%s\"", a->id,
                        aw_store_errstr(ctx->store));
        AW_LOG_DEBUG(MOD, "rate limited by Klaviyo", "account=%s step=%s retry_after_ms=%" PRIu64,
                     a->id, step, ra);
        j->next_at = now + ra;
        return true;
    }
    case AW_KLAVIYO_RETRY: {
        char detail[300];
        snprintf(detail, sizeof detail, "status=%ld %s", r->status, r->transport_error);
        retry_later(j, step, detail);
        return true;
    }
    case AW_KLAVIYO_PAUSE:
        aw_flush_account_pause(ctx, a, r->status, "refused");
        j->next_at = a->paused_until;
        return true;
    case AW_KLAVIYO_DONE:
        aw_backoff_reset(&j->bo);
        aw_flush_account_resume(ctx, a);
        return false;
    default:
        aw_flush_account_resume(ctx, a); /* the key was accepted */
        return false;
    }
}

/* ---- Take ----------------------------------------------------------------------------------- */

static void categorize(struct aw_flush_job *j)
{
    for (int c = 0; c < CAT_COUNT; c++)
        j->cat[c] = aw_calloc(j->n ? j->n : 1, sizeof *j->cat[c]);
    for (size_t i = 0; i < j->n; i++) {
        if (j->gone[i])
            continue;
        const struct aw_change *c = &j->t.entries[i].change;
        if (j->aud_id) {
            enum cat k = c->action == AW_CHANGE_DELETE ? CAT_DEL : CAT_ADD;
            j->cat[k][j->ncat[k]++] = i;
            continue;
        }
        if (c->n_attrs > 0 || c->ids_changed)
            j->cat[CAT_UPD][j->ncat[CAT_UPD]++] = i;
        if (aw_build_needs_profile_import(c))
            j->cat[CAT_UNSET][j->ncat[CAT_UNSET]++] = i;
        if (aw_build_has_subscribe(c))
            j->cat[CAT_SUB][j->ncat[CAT_SUB]++] = i;
        if (aw_build_has_unsubscribe(c))
            j->cat[CAT_UNSUB][j->ncat[CAT_UNSUB]++] = i;
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
    enum aw_err e =
        aw_store_flush_take(ctx->store, j->acct_id, j->aud_id, ctx->leader.epoch,
                            aw_api_get(AW_API_IMPORT_CREATE)->max_items, aw_clock_unix_ms(), &j->t);
    if (e == AW_ERR_NOT_LEADER) {
        AW_LOG_WARN(MOD, "batch fenced by a newer leader", "account=%s audience=%s", j->acct_id,
                    aud_or_profiles(j));
        return true;
    }
    if (e != AW_OK) {
        aw_metrics_add(AW_M_STORE_ERRORS, 1);
        retry_later(j, "take", aw_store_errstr(ctx->store));
        return false;
    }
    if (j->t.status == AW_STORE_BATCH_EMPTY)
        return true;
    j->n = j->t.n;
    size_t n1 = j->n ? j->n : 1;
    j->gone = aw_calloc(n1, sizeof *j->gone);
    j->accepted = aw_calloc(n1, sizeof *j->accepted);
    j->del_id = aw_calloc(n1, sizeof *j->del_id);
    j->looked_up = aw_calloc(n1, sizeof *j->looked_up);
    j->job_items = aw_calloc(n1, sizeof *j->job_items);
    j->rm = aw_calloc(n1, sizeof *j->rm);
    j->started_ms = now_ms();
    for (size_t i = 0; i < j->n; i++) {
        if (j->t.entries[i].bad) {
            dead_letter(ctx, j, i, "undecodable_pending", NULL, NULL, NULL);
        } else if (j->t.entries[i].dropped) {
            j->gone[i] = true; /* changed before its audience was removed */
            j->n_dropped++;
        }
    }
    categorize(j);
    if (j->t.status == AW_STORE_BATCH_RESUMED)
        parse_resume_job(j);
    AW_LOG_INFO(
        MOD, j->t.status == AW_STORE_BATCH_RESUMED ? "resuming in-flight batch" : "flushing batch",
        "account=%s audience=%s batch=%s records=%zu adds=%zu updates=%zu removes=%zu "
        "subscribes=%zu unsubscribes=%zu dropped=%zu",
        j->acct_id, aud_or_profiles(j), j->t.batch_id, j->n, j->ncat[CAT_ADD], j->ncat[CAT_UPD],
        j->ncat[CAT_DEL], j->ncat[CAT_SUB], j->ncat[CAT_UNSUB], j->n_dropped);
    j->cur = CAT_ADD;
    j->pos = 0;
    if (j->aud_id && (live(j, CAT_ADD) || live(j, CAT_DEL)))
        j->phase = PH_LIST;
    else
        next_stage(j, CAT_ADD);
    j->next_at = now_ms();
    return false;
}

/* ---- List ----------------------------------------------------------------------------------- */

static void set_list(struct aw_flush_ctx *ctx, struct aw_flush_job *j, const char *id)
{
    free(j->list_id);
    j->list_id = aw_strdup(id);
    j->list_auto = true;
    if (aw_store_audience_list_set(ctx->store, j->acct_id, j->aud_id, id) != AW_OK)
        AW_LOG_WARN(MOD, "cannot remember list id (found again next time)",
                    "account=%s audience=%s detail=\"%s\"", j->acct_id, j->aud_id,
                    aw_store_errstr(ctx->store));
}

/* No list of that name and nothing to add: removals hold (nobody is in a missing list). */
static void removals_without_list(struct aw_flush_job *j)
{
    for (size_t k = 0; k < j->ncat[CAT_DEL]; k++) {
        size_t i = j->cat[CAT_DEL][k];
        if (!j->gone[i]) {
            j->gone[i] = true;
            j->n_not_found++;
        }
    }
    AW_LOG_INFO(MOD, "no list yet: removals hold without a request", "account=%s audience=%s",
                j->acct_id, j->aud_id);
    after_list(j);
}

static void step_list(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    if (!j->list_id && j->t.list_id && j->t.list_id[0]) {
        j->list_id = aw_strdup(j->t.list_id);
        j->list_auto = false;
    } else if (!j->list_id && j->t.klaviyo_list_id && j->t.klaviyo_list_id[0] && !j->relist) {
        j->list_id = aw_strdup(j->t.klaviyo_list_id);
        j->list_auto = true;
    }
    if (j->list_id) {
        after_list(j);
        return;
    }
    const char *name = j->t.name;
    char *filter = NULL;
    if (!name || !name[0] || aw_build_list_name_filter(name, &filter) != AW_OK) {
        drop_list_work(ctx, j, name && name[0] ? "invalid_list_name" : "no_list_name", NULL);
        after_list(j);
        return;
    }
    char *path = NULL;
    struct aw_api_query q = {.filter = filter};
    enum aw_err pe = aw_api_path_build(AW_API_GET_LISTS, NULL, &q, &path);
    free(filter);
    if (pe != AW_OK) {
        drop_list_work(ctx, j, "invalid_list_name", NULL);
        after_list(j);
        return;
    }
    struct aw_klaviyo_response r;
    if (send_req(ctx, j, AW_API_GET_LISTS, path, NULL, &r) == SENT &&
        !handle_common(ctx, j, "list_find", &r)) {
        struct aw_parse_page page;
        memset(&page, 0, sizeof page);
        if (r.action != AW_KLAVIYO_DONE) {
            drop_list_work(ctx, j, "klaviyo_list_lookup_rejected", &r);
            after_list(j);
        } else if (aw_parse_lists_page(r.body, r.body_len, &page) != AW_OK) {
            retry_later(j, "list_find", "unexpected response body");
        } else {
            const char *found = NULL;
            for (size_t i = 0; i < page.n && !found; i++)
                if (page.items[i].value && strcmp(page.items[i].value, name) == 0)
                    found = page.items[i].id;
            if (found) {
                set_list(ctx, j, found);
                AW_LOG_INFO(MOD, "list found by name", "account=%s audience=%s list=%s", j->acct_id,
                            j->aud_id, found);
                after_list(j);
            } else if (live(j, CAT_ADD) == 0) {
                removals_without_list(j);
            } else {
                j->phase = PH_LIST_CREATE;
                j->next_at = now_ms();
            }
        }
        aw_parse_page_clear(&page);
    }
    aw_klaviyo_response_clear(&r);
    free(path);
}

static void step_list_create(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    const char *name = j->t.name;
    char *body = NULL;
    if (!name || !name[0] || aw_build_create_list(name, &body) != AW_OK) {
        drop_list_work(ctx, j, name && name[0] ? "invalid_list_name" : "no_list_name", NULL);
        after_list(j);
        return;
    }
    int64_t count = 0;
    enum aw_err e =
        aw_store_account_count_list_create(ctx->store, j->acct_id, aw_clock_unix_ms(), 1, &count);
    uint32_t daily = aw_api_get(AW_API_CREATE_LIST)->daily;
    if (e != AW_OK) {
        retry_later(j, "list_create_count", aw_store_errstr(ctx->store));
    } else if (count > (int64_t)daily) {
        AW_LOG_WARN(MOD, "daily list creation limit reached; waiting",
                    "account=%s audience=%s limit=%u", j->acct_id, j->aud_id, (unsigned)daily);
        j->next_at = now_ms() + 3600000u; /* the counter is per UTC day */
    } else {
        struct aw_klaviyo_response r;
        char *path = NULL;
        enum aw_err pe = aw_api_path_build(AW_API_CREATE_LIST, NULL, NULL, &path);
        AW_ASSERT(pe == AW_OK); /* fixed template */
        enum sent sent = send_req(ctx, j, AW_API_CREATE_LIST, path, body, &r);
        free(path);
        if (sent != SENT) {
            /* Not sent (rate limit, pause, lease): give the day's slot back. A failure here
             * only over-counts, the safe direction. */
            int64_t ignored;
            if (aw_store_account_count_list_create(ctx->store, j->acct_id, aw_clock_unix_ms(), -1,
                                                   &ignored) != AW_OK)
                aw_metrics_add(AW_M_STORE_ERRORS, 1);
        } else if (handle_common(ctx, j, "list_create", &r)) {
            /* Retried later: the request may have been applied although its answer was lost
             * (Klaviyo allows two lists of one name), so look it up by name first. */
            if (r.action == AW_KLAVIYO_RETRY)
                j->phase = PH_LIST;
        } else {
            char *id = NULL;
            if (r.action == AW_KLAVIYO_CONFLICT) {
                j->phase = PH_LIST; /* created meanwhile: find it */
                j->next_at = now_ms();
            } else if (r.action != AW_KLAVIYO_DONE) {
                drop_list_work(ctx, j, "klaviyo_list_create_rejected", &r);
                after_list(j);
            } else if (aw_parse_resource_id(r.body, r.body_len, "list", &id) != AW_OK) {
                j->phase = PH_LIST; /* created, but which id? find it by name */
                retry_later(j, "list_create", "unexpected response body");
            } else {
                set_list(ctx, j, id);
                AW_LOG_INFO(MOD, "list created", "account=%s audience=%s list=%s", j->acct_id,
                            j->aud_id, id);
                after_list(j);
            }
            free(id);
        }
        aw_klaviyo_response_clear(&r);
    }
    free(body);
}

/* ---- Imports, clears, consent --------------------------------------------------------------- */

/* Consent channels of c that a (un)subscribe body carries (SMS needs a phone, as build.c). */
static unsigned consent_channels(const struct aw_change *c, bool subscribe)
{
    unsigned m = 0;
    for (size_t i = 0; i < c->n_consents; i++) {
        const struct aw_change_consent *cs = &c->consents[i];
        if (cs->subscribe != subscribe)
            continue;
        if (cs->channel == AW_CHANNEL_EMAIL)
            m |= CHANNEL_EMAIL;
        else if (c->phone_e164)
            m |= CHANNEL_SMS;
    }
    return m;
}

/* Handles a 4xx that is not WAIT/PAUSE for the request holding items[pos..pos+n). */
static void refuse_items(struct aw_flush_ctx *ctx, struct aw_flush_job *j, const size_t *items,
                         size_t n, const struct aw_klaviyo_response *r)
{
    if (r->action == AW_KLAVIYO_DROP_RECORDS) {
        size_t dropped = 0;
        for (size_t k = 0; k < r->errors.n; k++) {
            const struct aw_parse_error *e = &r->errors.items[k];
            if (e->has_index && e->index < n && !j->gone[items[j->pos + e->index]]) {
                dead_letter(ctx, j, items[j->pos + e->index], "klaviyo_invalid_record", e->id,
                            e->code, e->title);
                dropped++;
            }
        }
        if (dropped > 0)
            return; /* the rest is sent again without them */
    }
    const char *reason = r->action == AW_KLAVIYO_NOT_FOUND  ? "klaviyo_not_found"
                         : r->action == AW_KLAVIYO_CONFLICT ? "klaviyo_conflict"
                                                            : "klaviyo_rejected";
    AW_LOG_WARN(MOD, "Klaviyo refused a request",
                "account=%s audience=%s step=%s status=%ld klaviyo_id=%s klaviyo_code=%s "
                "records=%zu",
                j->acct_id, aud_or_profiles(j), cat_name[j->cur], r->status,
                err_field(r, 0) ? err_field(r, 0) : "", err_field(r, 1) ? err_field(r, 1) : "", n);
    for (size_t i = 0; i < n; i++)
        dead_letter(ctx, j, items[j->pos + i], reason, err_field(r, 0), err_field(r, 1),
                    err_field(r, 2));
    j->pos += n;
}

/* Polls a predecessor's import job instead of sending its category again, when that one job
 * held the whole category. */
static bool adopt_resumed_job(struct aw_flush_ctx *ctx, struct aw_flush_job *j, int c)
{
    if (j->resume_cat != c || j->pos != 0 || j->resume_items != j->ncat[c])
        return false;
    (void)ctx;
    j->resume_cat = -1;
    memcpy(j->job_items, j->cat[c], j->ncat[c] * sizeof *j->job_items);
    j->n_job_items = j->ncat[c];
    j->pos = j->ncat[c];
    j->phase = PH_JOB_POLL;
    j->next_at = now_ms();
    AW_LOG_INFO(MOD, "polling the import job of the resumed batch",
                "account=%s audience=%s records=%zu", j->acct_id, aud_or_profiles(j),
                j->n_job_items);
    return true;
}

static void record_job(struct aw_flush_ctx *ctx, struct aw_flush_job *j, int c, size_t items)
{
    char rec[320];
    snprintf(rec, sizeof rec, "%d:%zu:%s", c, items, j->job_id);
    bool written = false;
    enum aw_err e = aw_store_flush_set_job(ctx->store, j->acct_id, j->aud_id, ctx->leader.epoch,
                                           j->t.batch_id, rec, &written);
    if (e != AW_OK)
        AW_LOG_WARN(MOD, "cannot record the import job (a new leader would resend)",
                    "account=%s audience=%s detail=\"%s\"", j->acct_id, aud_or_profiles(j),
                    aw_store_errstr(ctx->store));
}

static void step_send(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    int c = j->cur;
    compact(j, c);
    if (j->pos >= j->ncat[c]) {
        next_stage(j, c + 1);
        return;
    }
    if ((c == CAT_ADD || c == CAT_UPD) && adopt_resumed_job(ctx, j, c))
        return;
    size_t m = j->ncat[c] - j->pos;
    const struct aw_change **arr = aw_calloc(m, sizeof *arr);
    for (size_t i = 0; i < m; i++)
        arr[i] = &j->t.entries[j->cat[c][j->pos + i]].change;
    char *body = NULL;
    size_t consumed = 0;
    enum aw_err e;
    enum aw_api_endpoint ep;
    switch (c) {
    case CAT_ADD:
    case CAT_UPD:
        e = aw_build_import(arr, m, c == CAT_ADD ? j->list_id : NULL, 0, 0, &body, &consumed);
        ep = AW_API_IMPORT_CREATE;
        break;
    case CAT_UNSET:
        e = aw_build_profile_import(arr[0], &body);
        consumed = e == AW_OK ? 1 : 0;
        ep = AW_API_PROFILE_IMPORT;
        break;
    case CAT_SUB:
        e = aw_build_subscribe(arr, m, 0, &body, &consumed);
        ep = AW_API_SUBSCRIBE;
        break;
    default:
        e = aw_build_unsubscribe(arr, m, 0, &body, &consumed);
        ep = AW_API_UNSUBSCRIBE;
        break;
    }
    free(arr);
    if (e != AW_OK || consumed == 0) {
        dead_letter(ctx, j, j->cat[c][j->pos], "unsendable", NULL, NULL, NULL);
        free(body);
        j->next_at = now_ms();
        return;
    }
    char *path = NULL;
    enum aw_err pe = aw_api_path_build(ep, NULL, NULL, &path);
    AW_ASSERT(pe == AW_OK); /* fixed template */
    struct aw_klaviyo_response r;
    if (send_req(ctx, j, ep, path, body, &r) == SENT && !handle_common(ctx, j, cat_name[c], &r)) {
        j->next_at = now_ms();
        if (r.action == AW_KLAVIYO_DONE) {
            if (c == CAT_ADD || c == CAT_UPD) {
                struct aw_parse_import_job job;
                memset(&job, 0, sizeof job);
                if (aw_parse_import_job(r.body, r.body_len, &job) != AW_OK) {
                    retry_later(j, cat_name[c], "unexpected response body");
                } else {
                    free(j->job_id);
                    j->job_id = aw_strdup(job.id);
                    memcpy(j->job_items, &j->cat[c][j->pos], consumed * sizeof *j->job_items);
                    j->n_job_items = consumed;
                    if (j->pos == 0 && consumed == j->ncat[c])
                        record_job(ctx, j, c, consumed);
                    j->pos += consumed;
                    j->phase = PH_JOB_POLL;
                    j->next_at = now_ms() + ctx->s->klaviyo.job_poll_ms;
                }
                aw_parse_import_job_clear(&job);
            } else {
                if (c == CAT_SUB || c == CAT_UNSUB)
                    for (size_t i = 0; i < consumed; i++) {
                        size_t idx = j->cat[c][j->pos + i];
                        j->accepted[idx] |=
                            consent_channels(&j->t.entries[idx].change, c == CAT_SUB);
                    }
                j->pos += consumed;
            }
        } else if (r.action == AW_KLAVIYO_NOT_FOUND && c == CAT_ADD && j->list_auto) {
            /* the list we found or created is gone: find or create it again */
            AW_LOG_WARN(MOD, "list not found; resolving it again", "account=%s audience=%s",
                        j->acct_id, j->aud_id);
            (void)aw_store_audience_list_set(ctx->store, j->acct_id, j->aud_id, NULL);
            free(j->list_id);
            j->list_id = NULL;
            j->relist = true;
            j->phase = PH_LIST;
        } else {
            refuse_items(ctx, j, j->cat[c], consumed, &r);
        }
    }
    aw_klaviyo_response_clear(&r);
    free(path);
    free(body);
}

/* Sends the previous job's items again (job cancelled or vanished). */
static void resend_job(struct aw_flush_job *j, const char *why)
{
    AW_LOG_WARN(MOD, "bulk import job did not finish; sending its records again",
                "account=%s audience=%s reason=%s records=%zu", j->acct_id, aud_or_profiles(j), why,
                j->n_job_items);
    j->pos -= j->n_job_items; /* those items sit right before pos (compaction keeps them) */
    j->n_job_items = 0;
    j->phase = PH_SEND;
    j->next_at = now_ms();
}

static void step_job_poll(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    char *path = NULL;
    if (aw_api_path_build(AW_API_IMPORT_GET_JOB, j->job_id, NULL, &path) != AW_OK) {
        resend_job(j, "job_id_unusable");
        return;
    }
    struct aw_klaviyo_response r;
    if (send_req(ctx, j, AW_API_IMPORT_GET_JOB, path, NULL, &r) == SENT &&
        !handle_common(ctx, j, "import_job_poll", &r)) {
        struct aw_parse_import_job job;
        memset(&job, 0, sizeof job);
        if (r.action == AW_KLAVIYO_NOT_FOUND) {
            resend_job(j, "job_not_found");
        } else if (r.action != AW_KLAVIYO_DONE ||
                   aw_parse_import_job(r.body, r.body_len, &job) != AW_OK) {
            retry_later(j, "import_job_poll", "unexpected response");
        } else if (!aw_parse_job_is_done(job.status)) {
            j->next_at = now_ms() + ctx->s->klaviyo.job_poll_ms;
        } else if (job.status == AW_PARSE_JOB_CANCELLED) {
            resend_job(j, "job_cancelled");
        } else {
            uint64_t ok = job.completed_count > 0 ? (uint64_t)job.completed_count : 0;
            aw_metrics_add(AW_M_PROFILES_UPLOADED, ok);
            j->n_uploaded += ok;
            if (job.failed_count > 0) {
                free(j->err_cursor);
                j->err_cursor = NULL;
                j->phase = PH_JOB_ERRORS;
            } else {
                j->phase = PH_SEND;
            }
            j->next_at = now_ms();
        }
        aw_parse_import_job_clear(&job);
    }
    aw_klaviyo_response_clear(&r);
    free(path);
}

/* The entry an import error names: by the email of its original payload first (stable), by
 * the record pointer second. SIZE_MAX when neither matches. */
static size_t import_error_entry(const struct aw_flush_job *j, const struct aw_parse_error *e)
{
    for (size_t i = 0; e->email && i < j->n_job_items; i++)
        if (strcasecmp(j->t.entries[j->job_items[i]].email, e->email) == 0)
            return j->job_items[i];
    if (e->has_index && e->index < j->n_job_items)
        return j->job_items[e->index];
    return SIZE_MAX;
}

static void step_job_errors(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    char *path = NULL;
    struct aw_api_query q = {.page_size = aw_api_get(AW_API_IMPORT_ERRORS)->page_size_max,
                             .cursor = j->err_cursor};
    if (aw_api_path_build(AW_API_IMPORT_ERRORS, j->job_id, &q, &path) != AW_OK) {
        retry_later(j, "import_errors", "unusable job id or cursor");
        return;
    }
    struct aw_klaviyo_response r;
    if (send_req(ctx, j, AW_API_IMPORT_ERRORS, path, NULL, &r) == SENT &&
        !handle_common(ctx, j, "import_errors", &r)) {
        struct aw_parse_errors errs;
        memset(&errs, 0, sizeof errs);
        if (r.action != AW_KLAVIYO_DONE ||
            aw_parse_import_errors(r.body, r.body_len, &errs) != AW_OK) {
            retry_later(j, "import_errors", "unexpected response");
        } else {
            for (size_t k = 0; k < errs.n; k++) {
                const struct aw_parse_error *e = &errs.items[k];
                size_t idx = import_error_entry(j, e);
                if (idx != SIZE_MAX) {
                    dead_letter(ctx, j, idx, "klaviyo_import_error", e->id, e->code, e->title);
                } else {
                    AW_LOG_ERROR(MOD, "import error names no record of the job",
                                 "account=%s audience=%s klaviyo_id=%s klaviyo_code=%s", j->acct_id,
                                 aud_or_profiles(j), e->id, e->code);
                }
            }
            free(j->err_cursor);
            j->err_cursor = errs.next_cursor ? aw_strdup(errs.next_cursor) : NULL;
            if (!j->err_cursor)
                j->phase = PH_SEND;
            j->next_at = now_ms();
        }
        aw_parse_errors_clear(&errs);
    }
    aw_klaviyo_response_clear(&r);
    free(path);
}

/* ---- Removals ------------------------------------------------------------------------------- */

/* Ids from the Redis cache for the removals not looked up yet. */
static void lookup_cached(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    const size_t *del = j->cat[CAT_DEL];
    size_t nd = j->ncat[CAT_DEL];
    const char **emails = aw_calloc(nd ? nd : 1, sizeof *emails);
    size_t *idx = aw_calloc(nd ? nd : 1, sizeof *idx);
    size_t ne = 0;
    for (size_t k = 0; k < nd; k++)
        if (!j->gone[del[k]] && !j->looked_up[del[k]] && !j->del_id[del[k]]) {
            idx[ne] = del[k];
            emails[ne++] = j->t.entries[del[k]].email;
        }
    char **ids = aw_calloc(ne ? ne : 1, sizeof *ids);
    if (ne && aw_store_profile_ids_get(ctx->store, j->acct_id, emails, ne, ids) == AW_OK)
        for (size_t k = 0; k < ne; k++)
            if (ids[k]) {
                j->del_id[idx[k]] = ids[k];
                j->looked_up[idx[k]] = true;
                ids[k] = NULL;
            }
    for (size_t k = 0; k < ne; k++)
        free(ids[k]);
    free(ids);
    free(idx);
    free(emails);
}

static void step_lookup(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    if (!j->cache_checked) {
        lookup_cached(ctx, j);
        j->cache_checked = true;
    }
    const size_t *del = j->cat[CAT_DEL];
    size_t nd = j->ncat[CAT_DEL];
    const char **emails = aw_calloc(nd ? nd : 1, sizeof *emails);
    size_t ne = 0;
    for (size_t k = 0; k < nd; k++) {
        size_t i = del[k];
        if (j->gone[i] || j->looked_up[i])
            continue;
        j->job_items[ne] = i;
        emails[ne++] = j->t.entries[i].email;
    }
    if (ne == 0) {
        free(emails);
        j->n_rm = 0;
        for (size_t k = 0; k < nd; k++)
            if (!j->gone[del[k]] && j->del_id[del[k]])
                j->rm[j->n_rm++] = del[k];
        j->phase = PH_REMOVE;
        j->pos = 0;
        j->next_at = now_ms();
        return;
    }
    char *filter = NULL;
    size_t consumed = 0;
    enum aw_err e = aw_build_email_filter(emails, ne, 0, 0, &filter, &consumed);
    free(emails);
    if (e != AW_OK || consumed == 0) {
        dead_letter(ctx, j, j->job_items[0], "unsendable", NULL, NULL, NULL);
        free(filter);
        j->next_at = now_ms();
        return;
    }
    char *path = NULL;
    struct aw_api_query q = {.filter = filter,
                             .page_size = aw_api_get(AW_API_GET_PROFILES)->page_size_max};
    enum aw_err pe = aw_api_path_build(AW_API_GET_PROFILES, NULL, &q, &path);
    free(filter);
    if (pe != AW_OK) {
        dead_letter(ctx, j, j->job_items[0], "unsendable", NULL, NULL, NULL);
        j->next_at = now_ms();
        return;
    }
    struct aw_klaviyo_response r;
    if (send_req(ctx, j, AW_API_GET_PROFILES, path, NULL, &r) == SENT &&
        !handle_common(ctx, j, "profile_lookup", &r)) {
        struct aw_parse_page page;
        memset(&page, 0, sizeof page);
        j->next_at = now_ms();
        if (r.action != AW_KLAVIYO_DONE) {
            for (size_t k = 0; k < consumed; k++)
                dead_letter(ctx, j, j->job_items[k], "klaviyo_lookup_rejected", err_field(&r, 0),
                            err_field(&r, 1), err_field(&r, 2));
        } else if (aw_parse_profiles_page(r.body, r.body_len, &page) != AW_OK) {
            retry_later(j, "profile_lookup", "unexpected response body");
        } else {
            for (size_t p = 0; p < page.n; p++) {
                if (!page.items[p].value)
                    continue;
                for (size_t k = 0; k < consumed; k++) {
                    size_t i = j->job_items[k];
                    const char *email = j->t.entries[i].email;
                    if (strcasecmp(email, page.items[p].value) == 0 && !j->del_id[i]) {
                        j->del_id[i] = aw_strdup(page.items[p].id);
                        if (aw_store_profile_id_set(ctx->store, j->acct_id, email,
                                                    page.items[p].id) != AW_OK)
                            aw_metrics_add(AW_M_STORE_ERRORS, 1);
                    }
                }
            }
            for (size_t k = 0; k < consumed; k++) {
                size_t i = j->job_items[k];
                j->looked_up[i] = true;
                if (!j->del_id[i])
                    j->n_not_found++; /* no such profile: not in the list either, done */
            }
        }
        aw_parse_page_clear(&page);
    }
    aw_klaviyo_response_clear(&r);
    free(path);
}

static void step_remove(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    size_t w = j->pos;
    for (size_t k = j->pos; k < j->n_rm; k++)
        if (!j->gone[j->rm[k]])
            j->rm[w++] = j->rm[k];
    j->n_rm = w;
    if (j->pos >= j->n_rm) {
        next_stage(j, CAT_DEL + 1);
        return;
    }
    size_t m = j->n_rm - j->pos;
    const char **ids = aw_calloc(m, sizeof *ids);
    for (size_t k = 0; k < m; k++)
        ids[k] = j->del_id[j->rm[j->pos + k]];
    char *body = NULL;
    size_t consumed = 0;
    enum aw_err e = aw_build_list_members(ids, m, 0, &body, &consumed);
    free(ids);
    char *path = NULL;
    if (e == AW_OK && consumed > 0)
        e = aw_api_path_build(AW_API_LIST_REMOVE_PROFILES, j->list_id, NULL, &path);
    if (e != AW_OK || consumed == 0) {
        dead_letter(ctx, j, j->rm[j->pos], "unsendable", NULL, NULL, NULL);
        free(body);
        j->next_at = now_ms();
        return;
    }
    struct aw_klaviyo_response r;
    if (send_req(ctx, j, AW_API_LIST_REMOVE_PROFILES, path, body, &r) == SENT &&
        !handle_common(ctx, j, "remove", &r)) {
        j->next_at = now_ms();
        if (r.action == AW_KLAVIYO_DONE) {
            aw_metrics_add(AW_M_PROFILES_REMOVED, consumed);
            j->n_removed += consumed;
            j->pos += consumed;
        } else if (r.action == AW_KLAVIYO_NOT_FOUND) {
            /* no such list: nobody is a member of it, so the removal holds */
            if (j->list_auto)
                (void)aw_store_audience_list_set(ctx->store, j->acct_id, j->aud_id, NULL);
            j->n_not_found += consumed;
            j->pos += consumed;
        } else {
            refuse_items(ctx, j, j->rm, consumed, &r);
        }
    }
    aw_klaviyo_response_clear(&r);
    free(path);
    free(body);
}

/* ---- Ack ------------------------------------------------------------------------------------ */

static const char *channels_str(unsigned m)
{
    switch (m & (CHANNEL_EMAIL | CHANNEL_SMS)) {
    case CHANNEL_EMAIL:
        return "email";
    case CHANNEL_SMS:
        return "sms";
    case CHANNEL_EMAIL | CHANNEL_SMS:
        return "email,sms";
    default:
        return "";
    }
}

/* Returns true when the job is finished. */
static bool step_ack(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    if (j->n_dl > 0 && aw_dlq_pending(ctx->dlq) > 0) {
        enum aw_err e = aw_dlq_wait(ctx->dlq, DLQ_TIMEOUT_MS);
        if (e != AW_OK) {
            aw_flush_job_reproduce(ctx, j);
            retry_later(j, "dead_letter_wait", aw_err_str(e));
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
        retry_later(j, "ack", aw_store_errstr(ctx->store));
        return false;
    }
    aw_metrics_add(AW_M_FLUSHES, 1);
    AW_LOG_INFO(MOD, "stream flushed",
                "account=%s audience=%s batch=%s records=%zu uploaded=%zu removed=%zu "
                "not_found=%zu dropped=%zu dead_lettered=%zu ms=%" PRIu64 "%s",
                j->acct_id, aud_or_profiles(j), j->t.batch_id, j->n, j->n_uploaded, j->n_removed,
                j->n_not_found, j->n_dropped, j->n_dl, now_ms() - j->started_ms,
                st == AW_STORE_BATCH_GONE ? " gone=1" : "");
    return true;
}

bool aw_flush_job_step(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    switch (j->phase) {
    case PH_TAKE:
        return step_take(ctx, j);
    case PH_LIST:
        step_list(ctx, j);
        return false;
    case PH_LIST_CREATE:
        step_list_create(ctx, j);
        return false;
    case PH_SEND:
        step_send(ctx, j);
        return false;
    case PH_JOB_POLL:
        step_job_poll(ctx, j);
        return false;
    case PH_JOB_ERRORS:
        step_job_errors(ctx, j);
        return false;
    case PH_LOOKUP:
        step_lookup(ctx, j);
        return false;
    case PH_REMOVE:
        step_remove(ctx, j);
        return false;
    case PH_ACK:
        return step_ack(ctx, j);
    }
    return true;
}
