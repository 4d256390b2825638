/* job_upload.c -- imports (membership into the list; attributes without it), clears of
 * non-property fields, consent jobs, and the bulk jobs they start: polled, their import errors
 * read and matched to records (see job.c). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/flush/accounts.h"
#include "worker/flush/context.h"
#include "worker/flush/job_internal.h"
#include "worker/flush/ratelimit.h"
#include "worker/klaviyo/api.h"
#include "worker/klaviyo/build.h"
#include "worker/klaviyo/client.h"
#include "worker/klaviyo/dryrun.h"
#include "worker/klaviyo/parse.h"
#include "worker/ops/metrics.h"
#include "worker/settings.h"
#include "worker/store/account_ops.h"
#include "worker/store/flush_ops.h"
#include "worker/store/store.h"

#define MOD "flush"
#define BOARD_WAIT_MS 20u /* a poll waiting for the account's listing on the wire looks again */

/* Consent channels of c that a (un)subscribe body carries (SMS needs a phone, as build.c). */
static unsigned consent_channels(const struct aw_change *c, bool subscribe)
{
    unsigned m = 0;
    for (size_t i = 0; i < c->n_consents; i++) {
        const struct aw_change_consent *cs = &c->consents[i];
        if (cs->subscribe != subscribe)
            continue;
        if (cs->channel == AW_CHANNEL_EMAIL)
            m |= AW_JOB_CHANNEL_EMAIL;
        else if (c->phone_e164)
            m |= AW_JOB_CHANNEL_SMS;
    }
    return m;
}

/* Delay before the next status poll of the job being polled: AW_KLAVIYO_JOB_POLL_MS, growing by
 * half each time the job is still running, up to 4 times it (a 10,000-profile job can run for a
 * minute at Klaviyo; polling it every 2 s spends the account's job-poll quota for nothing). */
static uint64_t poll_delay(const struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    uint64_t d = ctx->s->klaviyo.job_poll_ms;
    for (unsigned i = 0; i < j->polls && d < 4 * ctx->s->klaviyo.job_poll_ms; i++)
        d += d / 2;
    if (d > 4 * ctx->s->klaviyo.job_poll_ms)
        d = 4 * ctx->s->klaviyo.job_poll_ms;
    j->polls++;
    return d;
}

/* j polls the job in job_id from now: it exists at Klaviyo by now (its import was answered, or
 * a predecessor recorded it), so only listings sent from now on say anything of it. */
static void start_polling(struct aw_flush_job *j)
{
    j->phase = PH_JOB_POLL;
    j->polls = 0;
    j->status_after_ms = aw_job_now_ms();
    j->poll_own = false;
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
    start_polling(j);
    j->run.next_at = aw_job_now_ms();
    AW_LOG_INFO(MOD, "polling the import job of the resumed batch",
                "account=%s audience=%s records=%zu", j->acct_id, aw_job_aud(j), j->n_job_items);
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
                    "account=%s audience=%s detail=\"%s\"", j->acct_id, aw_job_aud(j),
                    aw_store_errstr(ctx->store));
}

/* Records in the stream's meta, before the request, that this batch sends `what` at unix_ms
 * (the profile stream's for consent). True when recorded; false: j is scheduled again (store
 * error) or released (fenced, or the batch is no longer this leader's). */
static bool mark_sent(struct aw_flush_ctx *ctx, struct aw_flush_job *j, enum aw_store_sent what,
                      uint64_t unix_ms)
{
    bool written = false;
    enum aw_err e = aw_store_flush_mark_sent(ctx->store, j->acct_id,
                                             what == AW_STORE_SENT_CONSENT ? NULL : j->aud_id, what,
                                             ctx->leader.epoch, j->t.batch_id, unix_ms, &written);
    if (e == AW_OK && written)
        return true;
    if (e == AW_ERR_NOT_LEADER || e == AW_OK) {
        AW_LOG_WARN(MOD, "batch fenced by a newer leader", "account=%s audience=%s", j->acct_id,
                    aw_job_aud(j));
        j->release = true;
        j->run.next_at = aw_job_now_ms();
        return false;
    }
    aw_metrics_add(AW_M_STORE_ERRORS, 1);
    aw_job_retry_later(j, &j->run,
                       what == AW_STORE_SENT_CONSENT ? "consent_record" : "import_record",
                       aw_store_errstr(ctx->store));
    return false;
}

/* Subscription jobs give no job id to poll (DESIGN §5): Klaviyo runs them asynchronously and
 * their order is unknown until both ran, so a user's consent and a later opposite one must never
 * be queued at Klaviyo together. Inside one batch a (user, channel) has one value, and the
 * account's profile batches go one at a time; so the batch's first consent request waits until
 * AW_KLAVIYO_CONSENT_SETTLE_MS after the account's previous consent job. Each consent request is
 * recorded in Redis *before* it is sent (a lost answer or a new leader still counts it). True:
 * send now; false: j is scheduled (or released when fenced). */
static bool consent_ready(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    if (!j->consent_checked) {
        uint64_t last = 0, settle = ctx->s->klaviyo.consent_settle_ms;
        if (aw_store_flush_sent_at(ctx->store, j->acct_id, NULL, AW_STORE_SENT_CONSENT, &last) !=
            AW_OK) {
            aw_metrics_add(AW_M_STORE_ERRORS, 1);
            aw_job_retry_later(j, &j->run, "consent_settle", aw_store_errstr(ctx->store));
            return false;
        }
        j->consent_checked = true;
        uint64_t now = aw_clock_unix_ms();
        if (last + settle > now) {
            uint64_t wait = last + settle - now;
            j->run.next_at =
                aw_job_now_ms() + (wait < settle ? wait : settle); /* clocks may differ */
            AW_LOG_DEBUG(MOD, "consent waits for the previous consent job to settle",
                         "account=%s wait_ms=%" PRIu64, j->acct_id, wait);
            return false;
        }
    }
    return mark_sent(ctx, j, AW_STORE_SENT_CONSENT, aw_clock_unix_ms());
}

/* ---- Imports whose answer was lost ------------------------------------------------------------
 * A bulk import that Klaviyo applied but whose answer was lost (timeout, dropped connection, 5xx
 * after apply) leaves a job the leader does not know; the import is sent again (the same
 * entries: a second job with the same content). The unknown job may still be queued when the
 * next batch of the stream removes a user or changes an attribute, and re-apply the older state
 * when it runs. So such a batch is acked only once no import job of the account that was
 * created up to the batch's last import POST (plus a margin for clock skew) is still queued or
 * processing (GET /api/profile-bulk-import-jobs, filtered by status): the next batch of the
 * stream is taken only after that ack. The wait is bounded (ORPHAN_WAIT_MAX_MS, then a WARN and
 * the ack), and other integrations' jobs of that window are waited for too (conservative). */
#define ORPHAN_SKEW_MS 60000u
#define ORPHAN_WAIT_MAX_MS (3600u * 1000u)

/* Records the import POST before it is sent (a new leader then knows one may have been lost).
 * False: j is scheduled (store error) or released (fenced). */
static bool mark_import(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    uint64_t now = aw_clock_unix_ms();
    if (!mark_sent(ctx, j, AW_STORE_SENT_IMPORT, now))
        return false;
    j->import_sent_ms = now;
    return true;
}

void aw_job_resume_imports(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    uint64_t sent = 0;
    if (aw_store_flush_sent_at(ctx->store, j->acct_id, j->aud_id, AW_STORE_SENT_IMPORT, &sent) !=
        AW_OK) {
        sent = aw_clock_unix_ms(); /* unknown: assume an import was just sent */
        aw_metrics_add(AW_M_STORE_ERRORS, 1);
    }
    if (sent > 0) {
        j->import_sent_ms = sent;
        j->orphan_possible = true;
    }
}

/* True when the page lists a job created at or before the cutoff (unix ms). */
static bool page_has_older_job(const struct aw_parse_page *pg, uint64_t cutoff)
{
    for (size_t i = 0; i < pg->n; i++) {
        uint64_t created = 0;
        if (!pg->items[i].value || !aw_clock_parse_iso8601(pg->items[i].value, &created) ||
            created <= cutoff)
            return true; /* an unreadable date counts as old: wait for it */
    }
    return false;
}

bool aw_job_orphans_settled(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    if (!j->orphan_possible)
        return true;
    uint64_t now = aw_job_now_ms();
    if (j->orphan_since == 0)
        j->orphan_since = now;
    if (now - j->orphan_since > ORPHAN_WAIT_MAX_MS) {
        AW_LOG_WARN(MOD, "import jobs still unfinished after the bound: acking the batch",
                    "account=%s audience=%s waited_s=%" PRIu64, j->acct_id, aw_job_aud(j),
                    (now - j->orphan_since) / 1000);
        j->orphan_possible = false;
        return true;
    }
    struct aw_api_query q = {.filter = "any(status,[\"queued\",\"processing\"])",
                             .page_size = aw_api_get(AW_API_IMPORT_LIST_JOBS)->page_size_max,
                             .cursor = j->orphan_cursor};
    char *path = NULL;
    if (aw_api_path_build(AW_API_IMPORT_LIST_JOBS, NULL, &q, &path) != AW_OK) {
        aw_job_retry_later(j, &j->run, "import_jobs_list", "unusable cursor");
        free(j->orphan_cursor);
        j->orphan_cursor = NULL;
        return false;
    }
    struct aw_klaviyo_response r;
    bool settled = false;
    if (aw_job_send(ctx, j, &j->run, AW_API_IMPORT_LIST_JOBS, path, NULL, &r) == SENT &&
        !aw_job_handle_common(ctx, j, &j->run, "import_jobs_list", &r)) {
        struct aw_parse_page pg;
        if (r.action != AW_KLAVIYO_DONE ||
            aw_parse_import_jobs_page(r.body, r.body_len, &pg) != AW_OK) {
            aw_job_retry_later(j, &j->run, "import_jobs_list", "unexpected response");
        } else {
            free(j->orphan_cursor);
            j->orphan_cursor = NULL;
            if (page_has_older_job(&pg, j->import_sent_ms + ORPHAN_SKEW_MS)) {
                AW_LOG_DEBUG(MOD, "waiting for import jobs that may hold this batch",
                             "account=%s audience=%s", j->acct_id, aw_job_aud(j));
                j->run.next_at = now + ctx->s->klaviyo.job_poll_ms;
            } else if (pg.next_cursor) {
                j->orphan_cursor = pg.next_cursor;
                pg.next_cursor = NULL;
                j->run.next_at = now;
            } else {
                j->orphan_possible = false;
                settled = true;
            }
            aw_parse_page_clear(&pg);
        }
    }
    aw_klaviyo_response_clear(&r);
    free(path);
    return settled;
}

void aw_job_step_send(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    int c = j->cur;
    aw_job_compact(j, c);
    if (j->pos >= j->ncat[c]) {
        aw_job_next_stage(j, c + 1);
        return;
    }
    if ((c == CAT_ADD || c == CAT_UPD) && adopt_resumed_job(ctx, j, c))
        return;
    if ((c == CAT_SUB || c == CAT_UNSUB) && !consent_ready(ctx, j))
        return;
    if ((c == CAT_ADD || c == CAT_UPD) && !mark_import(ctx, j))
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
        e = aw_build_import(arr, m, c == CAT_ADD ? j->list_id : NULL, j->run.split_limit, 0, &body,
                            &consumed);
        ep = AW_API_IMPORT_CREATE;
        break;
    case CAT_UNSET:
        e = aw_build_profile_import(arr[0], &body);
        consumed = e == AW_OK ? 1 : 0;
        ep = AW_API_PROFILE_IMPORT;
        break;
    case CAT_SUB:
        e = aw_build_subscribe(arr, m, j->run.split_limit, &body, &consumed);
        ep = AW_API_SUBSCRIBE;
        break;
    default:
        e = aw_build_unsubscribe(arr, m, j->run.split_limit, &body, &consumed);
        ep = AW_API_UNSUBSCRIBE;
        break;
    }
    free(arr);
    if (e != AW_OK || consumed == 0) {
        aw_job_dead_letter(ctx, j, j->cat[c][j->pos], "unsendable", NULL, NULL, NULL);
        free(body);
        j->run.next_at = aw_job_now_ms();
        return;
    }
    char *path = NULL;
    enum aw_err pe = aw_api_path_build(ep, NULL, NULL, &path);
    AW_ASSERT(pe == AW_OK); /* fixed template */
    struct aw_klaviyo_response r;
    enum sent sent = aw_job_send(ctx, j, &j->run, ep, path, body, &r);
    if (sent == SENT && (c == CAT_ADD || c == CAT_UPD) && r.action == AW_KLAVIYO_RETRY)
        j->orphan_possible = true; /* Klaviyo may have started a job we will never hear of */
    if (sent == SENT && !aw_job_handle_common(ctx, j, &j->run, aw_job_cat_name[c], &r)) {
        j->run.next_at = aw_job_now_ms();
        if (r.action == AW_KLAVIYO_DONE) {
            j->run.split_limit = 0;
            if (c == CAT_ADD || c == CAT_UPD) {
                struct aw_parse_import_job job;
                memset(&job, 0, sizeof job);
                if (aw_parse_import_job(r.body, r.body_len, &job) != AW_OK) {
                    aw_job_retry_later(j, &j->run, aw_job_cat_name[c], "unexpected response body");
                } else {
                    free(j->job_id);
                    j->job_id = aw_strdup(job.id);
                    memcpy(j->job_items, &j->cat[c][j->pos], consumed * sizeof *j->job_items);
                    j->n_job_items = consumed;
                    if (j->pos == 0 && consumed == j->ncat[c])
                        record_job(ctx, j, c, consumed);
                    j->pos += consumed;
                    start_polling(j);
                    j->run.next_at = aw_job_now_ms() + poll_delay(ctx, j);
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
            if (aw_job_refuse_items(ctx, j, &j->run, j->cur, &j->cat[c][j->pos], consumed, &r))
                j->pos += consumed;
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
                "account=%s audience=%s reason=%s records=%zu", j->acct_id, aw_job_aud(j), why,
                j->n_job_items);
    j->pos -= j->n_job_items; /* those items sit right before pos (compaction keeps them) */
    j->n_job_items = 0;
    j->phase = PH_SEND;
    j->run.next_at = aw_job_now_ms();
}

/* What a status of the job being polled (its own GET or the account's listing) means for it:
 * poll again later, send its records again (cancelled), or go on (to its import errors). */
static void job_status(struct aw_flush_ctx *ctx, struct aw_flush_job *j,
                       const struct aw_parse_import_job *job)
{
    if (!aw_parse_job_is_done(job->status)) {
        j->run.next_at = aw_job_now_ms() + poll_delay(ctx, j);
        return;
    }
    if (job->status == AW_PARSE_JOB_CANCELLED) {
        aw_metrics_count(AW_MF_KLAVIYO_JOBS, "cancelled", NULL);
        resend_job(j, "job_cancelled");
        return;
    }
    uint64_t ok = job->completed_count > 0 ? (uint64_t)job->completed_count : 0;
    aw_metrics_add(AW_M_PROFILES_UPLOADED, ok);
    j->n_uploaded += ok;
    aw_metrics_count(AW_MF_KLAVIYO_JOBS, job->failed_count > 0 ? "failed_records" : "complete",
                     NULL);
    if (job->failed_count > 0) {
        aw_metrics_add(AW_M_KLAVIYO_JOB_FAILED, (uint64_t)job->failed_count);
        free(j->err_cursor);
        j->err_cursor = NULL;
        j->phase = PH_JOB_ERRORS;
    } else {
        j->phase = PH_SEND;
    }
    j->run.next_at = aw_job_now_ms();
}

/* The job's status from the account's board when a listing sent after status_after_ms holds
 * it: true when applied. */
static bool board_status(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    const struct aw_flush_job_board *b = &j->acct->board;
    if (!b->sent_ms || b->sent_ms < j->status_after_ms)
        return false;
    for (size_t i = 0; i < b->jobs.n; i++) {
        if (strcmp(b->jobs.items[i].id, j->job_id) == 0) {
            j->status_after_ms = b->sent_ms + 1; /* the next look needs a newer listing */
            job_status(ctx, j, &b->jobs.items[i]);
            return true;
        }
    }
    /* newer than the job, yet without it: more of the account's jobs came after it than one
     * page holds, and later listings reach back no further */
    j->poll_own = true;
    j->run.next_at = aw_job_now_ms();
    return true;
}

/* Lists the account's newest import jobs (one page) into its board, for every job of the
 * account polling now. */
static void list_jobs(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    struct aw_flush_job_board *b = &j->acct->board;
    struct aw_api_query q = {.newest_first = true,
                             .page_size = aw_api_get(AW_API_IMPORT_LIST_JOBS)->page_size_max};
    char *path = NULL;
    enum aw_err pe = aw_api_path_build(AW_API_IMPORT_LIST_JOBS, NULL, &q, &path);
    AW_ASSERT(pe == AW_OK); /* fixed query */
    uint64_t sent_ms = aw_job_now_ms();
    b->busy++;
    b->busy_sent_ms = sent_ms;
    struct aw_klaviyo_response r;
    if (aw_job_send(ctx, j, &j->run, AW_API_IMPORT_LIST_JOBS, path, NULL, &r) == SENT &&
        !aw_job_handle_common(ctx, j, &j->run, "import_jobs_poll", &r)) {
        struct aw_parse_import_jobs page;
        if (r.action == AW_KLAVIYO_DONE &&
            aw_parse_import_jobs(r.body, r.body_len, &page) == AW_OK) {
            if (sent_ms >= b->sent_ms) { /* an older listing answering late changes nothing */
                aw_parse_import_jobs_clear(&b->jobs);
                b->jobs = page;
                free(b->jobs.next_cursor);
                b->jobs.next_cursor = NULL;
                b->sent_ms = sent_ms;
            } else {
                aw_parse_import_jobs_clear(&page);
            }
            if (!board_status(ctx, j))
                j->run.next_at = aw_job_now_ms();
        } else {
            /* the job's own GET answers instead (the listing is only a shortcut) */
            j->poll_own = true;
            j->run.next_at = aw_job_now_ms();
        }
    }
    if (--b->busy == 0)
        b->busy_sent_ms = 0;
    aw_klaviyo_response_clear(&r);
    free(path);
}

/* Status polls go through the account's listing of its newest jobs where they can: one
 * request per poll interval answers every job of the account, where GET .../{job_id} answers
 * one, on a tier (9/s at our margin) as tight as the imports': a drain of 100 imports then
 * ended with 100 polls trailing the last import by their own pacing. True when the poll is
 * handled here (status applied, listing sent, or a wait scheduled); false: the job's own GET
 * now. Jobs this process answered itself (AW_DRY_RUN) and jobs the listing does not reach are
 * polled by their own GET. */
static bool poll_through_board(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    if (j->poll_own || strncmp(j->job_id, AW_DRYRUN_ID_PREFIX, strlen(AW_DRYRUN_ID_PREFIX)) == 0)
        return false;
    if (board_status(ctx, j))
        return true;
    const struct aw_flush_job_board *b = &j->acct->board;
    uint64_t now = aw_job_now_ms();
    if (b->busy && b->busy_sent_ms >= j->status_after_ms) {
        j->run.next_at = now + BOARD_WAIT_MS; /* a listing on the wire answers for it */
        return true;
    }
    uint64_t wl = aw_ratelimit_wait(ctx->rl, j->acct_id, AW_API_IMPORT_LIST_JOBS, now);
    if (wl == 0) {
        list_jobs(ctx, j);
        return true;
    }
    uint64_t wg = aw_ratelimit_wait(ctx->rl, j->acct_id, AW_API_IMPORT_GET_JOB, now);
    if (wg == 0)
        return false;
    j->run.next_at = now + (wl < wg ? wl : wg);
    return true;
}

void aw_job_step_poll(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    if (poll_through_board(ctx, j))
        return;
    char *path = NULL;
    if (aw_api_path_build(AW_API_IMPORT_GET_JOB, j->job_id, NULL, &path) != AW_OK) {
        resend_job(j, "job_id_unusable");
        return;
    }
    struct aw_klaviyo_response r;
    if (aw_job_send(ctx, j, &j->run, AW_API_IMPORT_GET_JOB, path, NULL, &r) == SENT &&
        !aw_job_handle_common(ctx, j, &j->run, "import_job_poll", &r)) {
        struct aw_parse_import_job job;
        memset(&job, 0, sizeof job);
        if (r.action == AW_KLAVIYO_NOT_FOUND) {
            aw_metrics_count(AW_MF_KLAVIYO_JOBS, "not_found", NULL);
            resend_job(j, "job_not_found");
        } else if (r.action != AW_KLAVIYO_DONE ||
                   aw_parse_import_job(r.body, r.body_len, &job) != AW_OK) {
            aw_job_retry_later(j, &j->run, "import_job_poll", "unexpected response");
        } else {
            job_status(ctx, j, &job);
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

void aw_job_step_errors(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    char *path = NULL;
    struct aw_api_query q = {.page_size = aw_api_get(AW_API_IMPORT_ERRORS)->page_size_max,
                             .cursor = j->err_cursor};
    if (aw_api_path_build(AW_API_IMPORT_ERRORS, j->job_id, &q, &path) != AW_OK) {
        aw_job_retry_later(j, &j->run, "import_errors", "unusable job id or cursor");
        return;
    }
    struct aw_klaviyo_response r;
    if (aw_job_send(ctx, j, &j->run, AW_API_IMPORT_ERRORS, path, NULL, &r) == SENT &&
        !aw_job_handle_common(ctx, j, &j->run, "import_errors", &r)) {
        struct aw_parse_errors errs;
        memset(&errs, 0, sizeof errs);
        if (r.action != AW_KLAVIYO_DONE ||
            aw_parse_import_errors(r.body, r.body_len, &errs) != AW_OK) {
            aw_job_retry_later(j, &j->run, "import_errors", "unexpected response");
        } else {
            for (size_t k = 0; k < errs.n; k++) {
                const struct aw_parse_error *e = &errs.items[k];
                size_t idx = import_error_entry(j, e);
                if (idx != SIZE_MAX) {
                    aw_job_dead_letter(ctx, j, idx, "klaviyo_import_error", e->id, e->code,
                                       e->title);
                } else {
                    aw_job_dead_letter_unmatched(ctx, j, e->id, e->code, e->title);
                }
            }
            free(j->err_cursor);
            j->err_cursor = errs.next_cursor ? aw_strdup(errs.next_cursor) : NULL;
            if (!j->err_cursor)
                j->phase = PH_SEND;
            j->run.next_at = aw_job_now_ms();
        }
        aw_parse_errors_clear(&errs);
    }
    aw_klaviyo_response_clear(&r);
    free(path);
}
