/* flusher.c -- the flusher: the leader lease, then the scheduler of due streams and the request
 * lanes that run them (see flusher.h, DESIGN §5). What one stream's batch goes through: job.c.
 *
 * Scheduling: the global due index lists accounts whose earliest stream is due; each account's
 * own index lists its due streams. A stream being flushed is a job with a next_at time; the
 * scheduler hands each runnable job to an idle lane, which runs one step of it (at most one
 * request), so a rate-limited, backing-off or paused account only postpones its own jobs. Jobs
 * are capped per account, so no account can fill the leader; the due accounts are listed from a
 * rotating offset and idle lanes are given jobs from a rotating offset, so every due account is
 * served however many wait.
 *
 * Lanes: AW_KLAVIYO_MAX_IN_FLIGHT threads, each with its own curl handle. Everything (scheduler,
 * lease, store, rate limits, accounts, steps) runs under one lock, which a lane lets go of only
 * while its request is on the wire: the flush logic stays the sequential code it was, and only
 * the waits for Klaviyo (100-300 ms each) overlap. A job's steps run in one lane at a time, so
 * each audience's writes stay in order, except a batch's removals: profile lookups by email
 * (reads, which one batch may need hundreds of) and list relationship deletes (which commute),
 * for other users than the batch's imports (one entry per email in a batch). All lanes but one
 * may work on disjoint removals of one job at once, in its removal stage or beside its imports
 * while those wait for a rate-limit slot or a job poll (aw_flush_job_fan_out). Each dispatch
 * gives every runnable job without a lane one first, then a job with removals ready as many
 * more as it has requests ready, so other jobs get the lanes as they come back; removal work
 * leaves a few lanes to the phases' steps about to come due (lanes_reserved). The
 * rate limiter counts requests on the wire. The scheduler drives the lease between steps and every
 * request is bounded by the lease's validity (aw_klaviyo_set_deadline). */
#include "worker/flush/flusher.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/flush/accounts.h"
#include "worker/flush/context.h"
#include "worker/flush/job.h"
#include "worker/flush/ratelimit.h"
#include "worker/ingest/consumer.h"
#include "worker/klaviyo/client.h"
#include "worker/klaviyo/dryrun.h"
#include "worker/ops/health.h"
#include "worker/ops/metrics.h"
#include "worker/settings.h"
#include "worker/store/account_ops.h"
#include "worker/store/flush_ops.h"
#include "worker/store/lease.h"
#include "worker/store/status.h"
#include "worker/store/store.h"
#include "worker/store/summary.h"

#define MOD "flush"
#define DUE_ACCOUNTS_MAX 256u /* accounts listed per scan (from a rotating offset) */
#define DUE_STREAMS_MAX 64u   /* streams listed per account per scan */
#define JOBS_PER_ACCOUNT 32u  /* streams of one account worked at once */
#define JOBS_MAX 4096u        /* streams worked at once */
#define DLQ_TIMEOUT_MS 10000
#define RATE_SCALE_PCT 90u      /* headroom under Klaviyo's published limits */
#define SUMMARY_EVERY_MS 15000u /* the leader's pending / in-flight / oldest gauges */
#define SUMMARY_STREAMS_MAX 200000u
#define BOARD_KEEP_MS 60000u /* an account's job listing, kept while its jobs may poll it */

#define WAIT_MAX_MS 100u /* the scheduler looks at the stop flag at least this often */
/* Lanes kept from removal work for the phases' steps due within RESERVE_AHEAD_MS (about one
 * Klaviyo answer: a lane given to a lookup now is back only then), at most 1/RESERVE_PART of
 * them. Without it, a hundred audiences' lookups (67/s tier) filled every lane for a latency
 * each, and the imports, whose 9/s slots bind the drain, found no lane when their slot came:
 * the mix benchmark's second import went out 0.3 s late. */
#define RESERVE_AHEAD_MS 300u
#define RESERVE_PART 4u

/* A job and whether a lane runs its step. */
struct slot {
    struct aw_flush_job *j;
    unsigned busy;     /* lanes running a step of it (more than one: removals, fan_out) */
    unsigned starting; /* of those, given a step not started yet (nothing claimed) */
    bool run_starting; /* of those, one given for the phases' step */
    bool over;         /* a step ended it: the scheduler frees it once no lane runs it */
};

struct lane {
    struct aw_flusher *f;
    struct aw_klaviyo *k;
    struct slot *slot; /* given by the scheduler; NULL while idle */
    bool removal;      /* given for removal work (not the job's phases' step) */
    pthread_t thread;
    bool started;
};

struct aw_flusher {
    struct aw_flush_ctx ctx;
    struct aw_store *summary_store; /* summarize()'s own connection (used without the lock) */
    const atomic_int *stop;
    const char **extra;
    bool was_held;
    uint64_t next_scan;
    uint64_t next_summary;
    size_t scan_offset;
    size_t lane_offset; /* where the next dispatch starts among the jobs */
    struct slot **jobs;
    size_t n_jobs, cap_jobs;
    char **ended; /* accounts whose job ended since the last turn: their streams are looked at */
    size_t n_ended, cap_ended; /* again at once, so a backlog's next batch waits no tick */
    struct lane *lanes;
    size_t n_lanes;
    pthread_mutex_t mu;
    pthread_cond_t lane_cv;  /* a lane was given a job, or quit is set */
    pthread_cond_t sched_cv; /* a lane finished a step */
    bool quit;               /* lanes end */
    pthread_t thread;
    bool started;
};

static uint64_t now_ms(void)
{
    return aw_clock_mono_ms();
}

static void summary_gauges(uint64_t pending, uint64_t inflight, uint64_t oldest_age_ms)
{
    aw_metrics_set(AW_M_PENDING_CHANGES, (int64_t)pending);
    aw_metrics_set(AW_M_INFLIGHT_CHANGES, (int64_t)inflight);
    aw_metrics_set(AW_M_OLDEST_PENDING_AGE_MS, (int64_t)oldest_age_ms);
}

/* The leader's view of the whole store, for alerts on backlog and age (one pipelined read of
 * every stream every SUMMARY_EVERY_MS; about three commands per audience). Runs without the
 * flusher's lock, on a connection of its own: on a store of 100,000s of streams it takes
 * seconds, during which the lanes go on. */
static void summarize(struct aw_flusher *f)
{
    f->next_summary = now_ms() + SUMMARY_EVERY_MS;
    struct aw_store_summary sum;
    pthread_mutex_unlock(&f->mu);
    enum aw_err e = aw_store_summary(f->summary_store, SUMMARY_STREAMS_MAX, &sum);
    pthread_mutex_lock(&f->mu);
    if (e != AW_OK) {
        aw_metrics_add(AW_M_STORE_ERRORS, 1);
        AW_LOG_WARN(MOD, "cannot read the store's summary", "detail=\"%s\"",
                    aw_store_errstr(f->summary_store));
        return;
    }
    uint64_t now = aw_clock_unix_ms();
    summary_gauges(sum.pending, sum.inflight,
                   sum.oldest_unix_ms && sum.oldest_unix_ms < now ? now - sum.oldest_unix_ms : 0);
    if (sum.truncated)
        AW_LOG_WARN(MOD, "store summary covers only the first streams", "streams=%zu", sum.streams);
}

static void remove_job(struct aw_flusher *f, size_t i)
{
    aw_flush_job_free(f->jobs[i]->j);
    free(f->jobs[i]);
    f->jobs[i] = f->jobs[--f->n_jobs];
}

static size_t lanes_busy(const struct aw_flusher *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_lanes; i++)
        n += f->lanes[i].slot != NULL;
    return n;
}

/* Waits (lock held) until no lane runs a step: each ends within its request's bound. */
static void wait_lanes_idle(struct aw_flusher *f)
{
    while (lanes_busy(f) > 0)
        pthread_cond_wait(&f->sched_cv, &f->mu);
}

/* Forgets every in-memory job (lease lost or stopping) once the lanes are idle: batches stay in
 * Redis and the next leader resumes them. */
static void abandon_all(struct aw_flusher *f, const char *why)
{
    wait_lanes_idle(f);
    if (f->n_jobs)
        AW_LOG_INFO(MOD, "abandoning in-memory flushes", "count=%zu reason=%s", f->n_jobs, why);
    while (f->n_jobs)
        remove_job(f, f->n_jobs - 1);
    aw_metrics_set(AW_M_FLUSH_JOBS, 0);
}

/* Frees the jobs whose last step ended them, noting their accounts (once each). */
static void reap(struct aw_flusher *f)
{
    for (size_t i = 0; i < f->n_jobs;) {
        if (f->jobs[i]->busy == 0 && f->jobs[i]->over) {
            const char *acct = aw_flush_job_account(f->jobs[i]->j);
            bool noted = false;
            for (size_t k = 0; k < f->n_ended && !noted; k++)
                noted = strcmp(f->ended[k], acct) == 0;
            if (!noted) {
                aw_grow((void **)&f->ended, &f->cap_ended, f->n_ended + 1, sizeof *f->ended);
                f->ended[f->n_ended++] = aw_strdup(acct);
            }
            remove_job(f, i);
        } else {
            i++;
        }
    }
}

static void ended_clear(struct aw_flusher *f)
{
    for (size_t k = 0; k < f->n_ended; k++)
        free(f->ended[k]);
    f->n_ended = 0;
}

static void lease_drive(struct aw_flusher *f)
{
    struct aw_flush_ctx *ctx = &f->ctx;
    uint64_t now = now_ms();
    enum aw_leader_op op = aw_leader_next(&ctx->leader, now);
    if (op != AW_LEADER_OP_NONE) {
        bool granted = false;
        uint64_t epoch = 0;
        uint64_t ttl = ctx->leader.ttl_ms;
        enum aw_err e =
            op == AW_LEADER_OP_ACQUIRE
                ? aw_store_lease_acquire(ctx->store, ctx->leader.token, ttl, &granted, &epoch)
                : aw_store_lease_renew(ctx->store, ctx->leader.token, ttl, &granted, &epoch);
        if (e != AW_OK)
            aw_metrics_add(AW_M_STORE_ERRORS, 1);
        aw_metrics_set(AW_M_STORE_UP, e == AW_OK);
        (void)aw_leader_on_result(&ctx->leader, op, now, e, granted, epoch, now_ms());
    }
    bool held = aw_leader_is_held(&ctx->leader, now_ms());
    if (held && !f->was_held) {
        AW_LOG_INFO(MOD, "leader lease gained", "epoch=%" PRIu64 " instance=%s", ctx->leader.epoch,
                    ctx->s->process.instance_id ? ctx->s->process.instance_id : "");
        aw_flush_accounts_unload(ctx->accounts); /* re-read keys and a predecessor's blocks */
        f->next_scan = 0;
        f->next_summary = 0;
        aw_metrics_count(AW_MF_LEADER_TRANSITIONS, "leader", NULL);
    } else if (!held && f->was_held) {
        AW_LOG_WARN(MOD, "leader lease lost", "epoch=%" PRIu64, ctx->leader.epoch);
        aw_metrics_count(AW_MF_LEADER_TRANSITIONS, "follower", NULL);
        abandon_all(f, "lease_lost");
        summary_gauges(0, 0, 0); /* the new leader reports them */
    }
    f->was_held = held;
    aw_metrics_set(AW_M_LEADER, held);
}

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Jobs of the account; whether one works that stream. */
static size_t jobs_of(const struct aw_flusher *f, const char *acct, const char *aud, bool *has)
{
    size_t n = 0;
    *has = false;
    for (size_t i = 0; i < f->n_jobs; i++) {
        if (strcmp(aw_flush_job_account(f->jobs[i]->j), acct) != 0)
            continue;
        n++;
        if (same(aw_flush_job_audience(f->jobs[i]->j), aud))
            *has = true;
    }
    return n;
}

/* Starts jobs for the due streams of one account (skipped while it is paused). */
static void scan_account(struct aw_flusher *f, const char *acct, uint64_t now_unix)
{
    struct aw_flush_ctx *ctx = &f->ctx;
    if (aw_flush_account_check_pause(ctx, aw_flush_accounts_get(ctx->accounts, acct), now_ms()))
        return;
    struct aw_store_stream *st = NULL;
    size_t n = 0;
    if (aw_store_due_streams(ctx->store, acct, now_unix, DUE_STREAMS_MAX, &st, &n) != AW_OK) {
        aw_metrics_add(AW_M_STORE_ERRORS, 1);
        return;
    }
    for (size_t i = 0; i < n && f->n_jobs < JOBS_MAX; i++) {
        bool has;
        /* the profile stream (listed first when due) is never kept out by the account's
         * audiences: it carries their users' attributes and consent */
        if (jobs_of(f, acct, st[i].audience_id, &has) >= JOBS_PER_ACCOUNT && st[i].audience_id)
            break;
        if (has)
            continue;
        aw_grow((void **)&f->jobs, &f->cap_jobs, f->n_jobs + 1, sizeof *f->jobs);
        struct slot *sl = aw_calloc(1, sizeof *sl);
        sl->j = aw_flush_job_new(ctx, acct, st[i].audience_id);
        f->jobs[f->n_jobs++] = sl;
    }
    aw_store_streams_free(st, n);
}

/* The accounts operators paused (one read per scan): they get no jobs, and their running jobs
 * give their batches back at their next step. On a Redis error the last known set stays. */
static void read_operator_pauses(struct aw_flusher *f)
{
    char **ids = NULL;
    uint64_t *since = NULL;
    size_t n = 0;
    if (aw_store_operator_paused(f->ctx.store, &ids, &since, &n) != AW_OK) {
        aw_metrics_add(AW_M_STORE_ERRORS, 1);
        return;
    }
    aw_flush_accounts_set_operator_paused(f->ctx.accounts, ids, n);
    aw_store_strings_free(ids, n);
    free(since);
}

/* Lists due accounts (a stream with a batch in flight stays due, so a new leader resumes its
 * predecessor's batches first) and starts jobs for their due streams. */
static void scan(struct aw_flusher *f)
{
    struct aw_flush_ctx *ctx = &f->ctx;
    f->next_scan = now_ms() + ctx->s->flush.tick_ms;
    uint64_t now_unix = aw_clock_unix_ms();
    char **accts = NULL;
    size_t n = 0;
    /* from a rotating offset: accounts that cannot progress never hide the others */
    if (aw_store_due_accounts(ctx->store, now_unix, f->scan_offset + DUE_ACCOUNTS_MAX, &accts,
                              &n) != AW_OK) {
        aw_metrics_add(AW_M_STORE_ERRORS, 1);
        AW_LOG_WARN(MOD, "cannot list due accounts", "detail=\"%s\"", aw_store_errstr(ctx->store));
        return;
    }
    read_operator_pauses(f);
    size_t from = f->scan_offset < n ? f->scan_offset : 0;
    for (size_t i = from; i < n; i++)
        scan_account(f, accts[i], now_unix);
    f->scan_offset = n >= f->scan_offset + DUE_ACCOUNTS_MAX ? f->scan_offset + DUE_ACCOUNTS_MAX : 0;
    for (size_t i = 0; i < n; i++)
        free(accts[i]);
    free(accts);
    aw_metrics_set(AW_M_DUE_AUDIENCES, (int64_t)n);
    aw_metrics_set(AW_M_FLUSH_JOBS, (int64_t)f->n_jobs);
}

/* How many more lanes sl could use now: one if none runs it, more for the requests a removal
 * batch has ready beyond the steps given and not started; a job never holds every lane (one is
 * always left to other jobs). */
static size_t lanes_wanted(const struct aw_flusher *f, const struct slot *sl)
{
    size_t cap = f->n_lanes > 1 ? f->n_lanes - 1 : 1;
    if (sl->busy >= cap)
        return 0;
    size_t want = sl->busy == 0 ? 1 : 0;
    size_t ready = aw_flush_job_fan_out(sl->j, cap - sl->busy + sl->starting);
    if (ready > sl->starting + want)
        want = ready - sl->starting;
    return want < cap - sl->busy ? want : cap - sl->busy;
}

/* How many lanes to keep from removal work now (RESERVE_AHEAD_MS): one per job whose phases'
 * step is due within it, at most 1/RESERVE_PART of the lanes. */
static size_t lanes_reserved(const struct aw_flusher *f, uint64_t now)
{
    size_t most = f->n_lanes / RESERVE_PART, soon = 0;
    for (size_t i = 0; i < f->n_jobs && soon < most; i++)
        if (!f->jobs[i]->over && aw_flush_job_run_at(f->jobs[i]->j) <= now + RESERVE_AHEAD_MS)
            soon++;
    return soon;
}

/* Gives runnable jobs to idle lanes from a rotating offset: first one lane to every job that
 * has none, then the further lanes removal batches can use; removal work gets no lane beyond
 * those lanes_reserved() keeps for the phases' steps (*held is then set). True when a runnable
 * job is left without the lanes it wants (a lane's end wakes the scheduler). */
static bool dispatch(struct aw_flusher *f, uint64_t now, bool *held)
{
    size_t lane = 0, given = 0, removal_busy = 0;
    for (size_t i = 0; i < f->n_lanes; i++)
        removal_busy += f->lanes[i].slot && f->lanes[i].removal;
    size_t removal_cap = f->n_lanes - lanes_reserved(f, now);
    bool left = false;
    *held = false;
    size_t n = f->n_jobs;
    for (int pass = 0; pass < 2 && !left; pass++) {
        for (size_t k = 0; k < n && !left; k++) {
            struct slot *sl = f->jobs[(f->lane_offset + k) % n];
            if (sl->over || aw_flush_job_next_at(sl->j) > now || (pass == 0 && sl->busy > 0))
                continue;
            for (size_t want = lanes_wanted(f, sl); want > 0; want--) {
                bool removal = sl->run_starting || aw_flush_job_run_at(sl->j) > now;
                if (removal && removal_busy >= removal_cap) {
                    *held = true;
                    break;
                }
                while (lane < f->n_lanes && f->lanes[lane].slot)
                    lane++;
                if (lane == f->n_lanes) {
                    left = true;
                    if (pass == 0) /* the next turn starts with it */
                        f->lane_offset = (f->lane_offset + k) % n;
                    break;
                }
                sl->busy++;
                sl->starting++;
                if (removal)
                    removal_busy++;
                else
                    sl->run_starting = true;
                f->lanes[lane].slot = sl;
                f->lanes[lane].removal = removal;
                given++;
            }
        }
    }
    if (!left && n)
        f->lane_offset = (f->lane_offset + 1) % n;
    if (given)
        pthread_cond_broadcast(&f->lane_cv);
    return left;
}

/* Waits (lock held) up to ms, or until a lane ends a step. */
static void wait_ms(struct aw_flusher *f, uint64_t ms)
{
    if (ms > WAIT_MAX_MS)
        ms = WAIT_MAX_MS;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000u);
    ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&f->sched_cv, &f->mu, &ts);
}

static void *lane_main(void *arg)
{
    struct lane *l = arg;
    struct aw_flusher *f = l->f;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!l->slot && !f->quit)
            pthread_cond_wait(&f->lane_cv, &f->mu);
        if (!l->slot)
            break;
        struct slot *sl = l->slot;
        sl->starting--;
        if (!l->removal)
            sl->run_starting = false;
        /* The job may have moved on since this lane was given it (another lane's answer came
         * first): the job's step runs only what is due and not taken (aw_flush_job_step), and
         * an ended job not at all. */
        if (!sl->over) {
            aw_flush_job_set_client(sl->j, l->k);
            if (aw_flush_job_step(&f->ctx, sl->j))
                sl->over = true;
        }
        aw_health_beat(AW_HEALTH_FLUSHER);
        sl->busy--;
        l->slot = NULL;
        pthread_cond_broadcast(&f->sched_cv);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static void run(struct aw_flusher *f)
{
    struct aw_flush_ctx *ctx = &f->ctx;
    pthread_mutex_lock(&f->mu);
    while (!atomic_load(f->stop)) {
        aw_health_beat(AW_HEALTH_FLUSHER);
        reap(f);
        lease_drive(f);
        uint64_t now = now_ms();
        if (!f->was_held) {
            wait_ms(f, ctx->leader.next_due_ms > now ? ctx->leader.next_due_ms - now : 0);
            continue;
        }
        if (now >= f->next_scan) {
            scan(f);
        } else {
            /* a stream whose batch just ended and that is still due (a backlog) goes on now */
            for (size_t k = 0; k < f->n_ended; k++)
                scan_account(f, f->ended[k], aw_clock_unix_ms());
        }
        ended_clear(f);
        if (now >= f->next_summary) {
            summarize(f);
            aw_flush_accounts_trim_boards(ctx->accounts, now_ms(), BOARD_KEEP_MS);
        }
        bool held;
        bool left = dispatch(f, now_ms(), &held);
        now = now_ms();
        uint64_t wake = f->next_scan;
        if (ctx->leader.next_due_ms < wake)
            wake = ctx->leader.next_due_ms;
        for (size_t i = 0; i < f->n_jobs && !left; i++) {
            const struct slot *sl = f->jobs[i];
            if (sl->over)
                continue;
            /* a job with a lane may want another one later (a removal's rate-limit slot, a
             * side removal beside its import); one due already waits for its lane's end, and
             * removal work held back by the reserve for a lane's end or its phases' step */
            uint64_t at = aw_flush_job_next_at(sl->j);
            if (held && at <= now)
                at = aw_flush_job_run_at(sl->j);
            if ((sl->busy == 0 || at > now) && at < wake)
                wake = at;
        }
        /* a job left without a lane: a lane's end wakes the scheduler */
        if (left || wake > now)
            wait_ms(f, left ? WAIT_MAX_MS : wake - now);
    }
    abandon_all(f, "stopping");
    if (f->was_held || ctx->leader.held) {
        if (aw_store_lease_release(ctx->store, ctx->leader.token) == AW_OK)
            AW_LOG_INFO(MOD, "leader lease released", "epoch=%" PRIu64, ctx->leader.epoch);
        else
            AW_LOG_WARN(MOD, "cannot release the lease (it expires by itself)", "detail=\"%s\"",
                        aw_store_errstr(ctx->store));
    }
    aw_leader_drop(&ctx->leader, now_ms());
    if (f->was_held)
        aw_metrics_count(AW_MF_LEADER_TRANSITIONS, "follower", NULL);
    f->was_held = false;
    aw_metrics_set(AW_M_LEADER, 0);
    f->quit = true;
    pthread_cond_broadcast(&f->lane_cv);
    pthread_mutex_unlock(&f->mu);
    (void)aw_dlq_flush(ctx->dlq, DLQ_TIMEOUT_MS);
}

static void *thread_main(void *arg)
{
    run(arg);
    return NULL;
}

static void flusher_free(struct aw_flusher *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->quit = true;
    pthread_cond_broadcast(&f->lane_cv);
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < f->n_lanes; i++) {
        if (f->lanes[i].started)
            pthread_join(f->lanes[i].thread, NULL);
        aw_klaviyo_free(f->lanes[i].k);
    }
    free(f->lanes);
    while (f->n_jobs) /* the lanes are gone */
        remove_job(f, f->n_jobs - 1);
    free(f->jobs);
    ended_clear(f);
    free(f->ended);
    aw_flush_accounts_free(f->ctx.accounts);
    aw_dlq_free(f->ctx.dlq);
    aw_ratelimit_free(f->ctx.rl);
    aw_dryrun_free(f->ctx.dry);
    aw_store_free(f->ctx.store);
    aw_store_free(f->summary_store);
    free(f->extra);
    pthread_cond_destroy(&f->lane_cv);
    pthread_cond_destroy(&f->sched_cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

struct aw_flusher *aw_flusher_start(const struct aw_settings *s,
                                    const struct aw_config_file *accounts, const atomic_int *stop,
                                    char *errbuf, size_t errlen)
{
    struct aw_flusher *f = aw_calloc(1, sizeof *f);
    struct aw_flush_ctx *ctx = &f->ctx;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->lane_cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* wait_ms counts on the monotonic clock */
    pthread_cond_init(&f->sched_cv, &ca);
    pthread_condattr_destroy(&ca);
    ctx->mu = &f->mu;
    ctx->s = s;
    ctx->config = accounts;
    ctx->accounts = aw_flush_accounts_new();
    f->stop = stop;
    char err[512];
    struct aw_store_config sc;
    aw_store_config_from_settings(s, &sc);
    ctx->store = aw_store_new(&sc, err, sizeof err);
    if (ctx->store)
        f->summary_store = aw_store_new(&sc, err, sizeof err);
    if (!ctx->store || !f->summary_store) {
        snprintf(errbuf, errlen, "flusher store: %s", err);
        goto fail;
    }
    struct aw_klaviyo_config kc = {
        .base_url = s->klaviyo.base_url,
        .revision = s->klaviyo.revision,
        .ca_file = s->klaviyo.ca_file,
        .connect_timeout_ms = (long)s->klaviyo.connect_timeout_ms,
        .timeout_ms = (long)s->klaviyo.timeout_ms,
    };
    f->n_lanes = s->klaviyo.max_in_flight ? (size_t)s->klaviyo.max_in_flight : 1;
    f->lanes = aw_calloc(f->n_lanes, sizeof *f->lanes);
    for (size_t i = 0; i < f->n_lanes; i++) {
        f->lanes[i].f = f;
        f->lanes[i].k = aw_klaviyo_new(&kc, err, sizeof err);
        if (!f->lanes[i].k) {
            snprintf(errbuf, errlen, "flusher klaviyo client: %s", err);
            goto fail;
        }
    }
    if (s->klaviyo.dry_run) {
        ctx->dry = aw_dryrun_new(s->klaviyo.dry_run_file, err, sizeof err);
        if (!ctx->dry) {
            snprintf(errbuf, errlen, "flusher: %s", err);
            goto fail;
        }
        AW_LOG_WARN(MOD, "dry run: writes to Klaviyo are recorded, never sent (AW_DRY_RUN)", "%s",
                    "");
    }
    ctx->rl = aw_ratelimit_new(RATE_SCALE_PCT);
    size_t n_extra = s->kafka.extra.n_entries;
    f->extra = aw_calloc(2 * n_extra + 1, sizeof *f->extra);
    for (size_t i = 0; i < n_extra; i++) {
        f->extra[2 * i] = s->kafka.extra.entries[i].key;
        f->extra[2 * i + 1] = s->kafka.extra.entries[i].value;
    }
    ctx->dlq = aw_dlq_new(s->kafka.brokers, s->kafka.dlq_topic, f->extra, n_extra,
                          s->process.instance_id, err, sizeof err);
    if (!ctx->dlq) {
        snprintf(errbuf, errlen, "flusher dead-letter producer: %s", err);
        goto fail;
    }
    aw_leader_init(&ctx->leader, s->leader.lease_ttl_ms);
    if (s->process.instance_id) /* `aw-worker status` names the holder */
        aw_leader_set_holder(&ctx->leader, s->process.instance_id);
    /* one turn of the loop: a step per runnable job, each at most one request (bounded by the
     * Klaviyo timeout) and a few Redis calls */
    aw_health_register(AW_HEALTH_FLUSHER, 3 * s->klaviyo.timeout_ms + 60000u);
    for (size_t i = 0; i < f->n_lanes; i++) {
        if (pthread_create(&f->lanes[i].thread, NULL, lane_main, &f->lanes[i]) != 0) {
            snprintf(errbuf, errlen, "flusher: cannot create request lane %zu", i);
            goto fail;
        }
        f->lanes[i].started = true;
    }
    if (pthread_create(&f->thread, NULL, thread_main, f) != 0) {
        snprintf(errbuf, errlen, "flusher: cannot create the thread");
        goto fail;
    }
    f->started = true;
    return f;

fail:
    flusher_free(f);
    return NULL;
}

void aw_flusher_join(struct aw_flusher *f)
{
    if (!f)
        return;
    if (f->started)
        pthread_join(f->thread, NULL);
    flusher_free(f);
}
