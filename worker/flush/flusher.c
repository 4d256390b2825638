/* flush.c -- the flusher thread: leader lease, then per due audience one in-flight batch turned
 * into Klaviyo requests (DESIGN.md §5, STYLE.md §5). How it works: .local/flush-notes.md.
 *
 * Scheduling: every audience being flushed is a small state machine (struct job) with a
 * next_at time. A pass runs at most one request for each runnable job, so a rate-limited,
 * backing-off or paused account only postpones its own jobs; the thread sleeps only when no job
 * is runnable (at most tick_ms, stop-aware). Requests are synchronous (bounded by the Klaviyo
 * timeout); the lease is driven between steps and rechecked before every request. */
#include "worker/flush/flusher.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/backoff.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/ingest/account.h"
#include "worker/store/change.h"
#include "worker/ingest/consumer.h"
#include "worker/ops/deadletter.h"
#include "worker/klaviyo/client.h"
#include "worker/flush/leader.h"
#include "worker/ops/metrics.h"
#include "worker/klaviyo/payload.h"
#include "worker/flush/ratelimit.h"
#include "worker/settings.h"
#include "worker/store/store.h"

#define MOD "flush"
#define PAUSE_MS 60000u       /* a paused account (401/403/410) is retried after this */
#define WAIT_DEFAULT_MS 1000u /* 429 without Retry-After */
#define DUE_SCAN_MAX 512u     /* audiences listed per scan of the due index */
#define MAX_JOBS 512u         /* audiences worked at once */
#define DLQ_TIMEOUT_MS 10000
#define FILTER_MAX_BYTES 6000u /* any(email,[...]) text per lookup (bounds the URL) */
#define ID_CACHE_BUCKETS 4096u
#define ID_CACHE_MAX 100000u /* email -> profile id entries kept (then cleared) */
#define RATE_SCALE_PCT 90u   /* headroom under Klaviyo's published limits */

/* ---- Email -> Klaviyo profile id cache (memory, per account; cleared when full) ------------ */

struct id_entry {
    char *account_id;
    char *email;
    char *id;
    struct id_entry *next;
};

struct id_cache {
    struct id_entry *b[ID_CACHE_BUCKETS];
    size_t n;
};

static size_t id_hash(const char *acct, const char *email)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = acct; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0xffu) * 1099511628211ull;
    for (const char *p = email; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch >= 'A' && ch <= 'Z')
            ch = (unsigned char)(ch - 'A' + 'a');
        h = (h ^ ch) * 1099511628211ull;
    }
    return (size_t)(h % ID_CACHE_BUCKETS);
}

static void id_cache_clear(struct id_cache *c)
{
    for (size_t i = 0; i < ID_CACHE_BUCKETS; i++) {
        struct id_entry *e = c->b[i];
        while (e) {
            struct id_entry *next = e->next;
            free(e->account_id);
            free(e->email);
            free(e->id);
            free(e);
            e = next;
        }
        c->b[i] = NULL;
    }
    c->n = 0;
}

static const char *id_cache_get(const struct id_cache *c, const char *acct, const char *email)
{
    for (const struct id_entry *e = c->b[id_hash(acct, email)]; e; e = e->next)
        if (strcmp(e->account_id, acct) == 0 && strcasecmp(e->email, email) == 0)
            return e->id;
    return NULL;
}

static void id_cache_put(struct id_cache *c, const char *acct, const char *email, const char *id)
{
    size_t h = id_hash(acct, email);
    for (struct id_entry *e = c->b[h]; e; e = e->next) {
        if (strcmp(e->account_id, acct) == 0 && strcasecmp(e->email, email) == 0) {
            free(e->id);
            e->id = aw_strdup(id);
            return;
        }
    }
    if (c->n >= ID_CACHE_MAX)
        id_cache_clear(c);
    struct id_entry *e = aw_calloc(1, sizeof *e);
    e->account_id = aw_strdup(acct);
    e->email = aw_strdup(email);
    e->id = aw_strdup(id);
    e->next = c->b[h];
    c->b[h] = e;
    c->n++;
}

/* ---- State ---------------------------------------------------------------------------------- */

struct acct {
    char *id;
    char *api_key; /* secret, owned; NULL until loaded (or none anywhere) */
    bool loaded;   /* key and Retry-After block read in this tenure */
    bool paused;
    uint64_t paused_until; /* mono ms */
    uint64_t last_pause_log;
    unsigned pause_count; /* refusals since the last ERROR line */
};

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

struct job {
    char *acct_id;
    char *aud_id;
    size_t acct; /* index into f->accts */
    enum phase phase;
    uint64_t next_at; /* mono ms */
    uint64_t started_ms;
    struct aw_backoff bo;
    struct aw_store_taken t;
    struct aw_change *ch; /* decoded entries (zeroed when undecodable) */
    size_t n;
    bool *gone;    /* dead-lettered: skipped by every later request */
    char **del_id; /* removals: Klaviyo profile id per entry, owned, or NULL */
    bool *looked_up;
    char *list_id;
    bool list_auto;         /* found/created by name (meta klaviyo_list_id) */
    size_t *cat[CAT_COUNT]; /* entry indexes per category */
    size_t ncat[CAT_COUNT];
    int cur;           /* current category */
    size_t pos;        /* next item of the current category (or of rm) */
    char *job_id;      /* bulk import job being polled */
    size_t *job_items; /* entries of the last request (job body order) */
    size_t n_job_items;
    char *err_cursor;
    size_t *rm; /* removals with a profile id */
    size_t n_rm;
    struct dl *dl; /* dead letters produced for this batch (kept until ack) */
    size_t n_dl, cap_dl;
    bool relist; /* list re-resolved in the middle of a category: continue there */
    size_t n_uploaded, n_removed, n_not_found;
};

struct aw_flusher {
    const struct aw_settings *s;
    const struct aw_account_config *accounts;
    const atomic_int *stop;
    struct aw_store *store;
    struct aw_klaviyo *k;
    struct aw_ratelimit *rl;
    struct aw_dlq *dlq;
    const char **extra;
    struct aw_leader leader;
    bool was_held;
    uint64_t next_scan;
    struct acct *accts;
    size_t n_accts, cap_accts;
    size_t n_paused;
    struct job **jobs;
    size_t n_jobs, cap_jobs;
    struct id_cache ids;
    pthread_t thread;
    bool started;
};

/* ---- Small helpers -------------------------------------------------------------------------- */

/* Percent-encodes everything but RFC 3986 unreserved characters (the simulator form-decodes
 * '+', and Klaviyo filters contain quotes, commas and brackets). */
static void url_encode(struct aw_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            char ch = (char)*p;
            (void)aw_buf_append(b, &ch, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            (void)aw_buf_append(b, e, 3);
        }
    }
}

static void free_secret(char *p)
{
    if (p) {
        memset(p, 0, strlen(p));
        free(p);
    }
}

static const char *err_field(const struct aw_klaviyo_response *r, int which)
{
    if (r->errors.n == 0)
        return NULL;
    const struct aw_payload_error *e = &r->errors.items[0];
    return which == 0 ? e->id : which == 1 ? e->code : e->title;
}

/* ---- Accounts ------------------------------------------------------------------------------- */

static size_t acct_index(struct aw_flusher *f, const char *id)
{
    for (size_t i = 0; i < f->n_accts; i++)
        if (strcmp(f->accts[i].id, id) == 0)
            return i;
    aw_grow((void **)&f->accts, &f->cap_accts, f->n_accts + 1, sizeof *f->accts);
    struct acct *a = &f->accts[f->n_accts];
    memset(a, 0, sizeof *a);
    a->id = aw_strdup(id);
    return f->n_accts++;
}

/* Reads the account's key (config file first, else the one the messages carried) and any
 * Retry-After block a previous leader stored. AW_ERR_IO when Redis failed. */
static enum aw_err acct_load(struct aw_flusher *f, struct acct *a)
{
    if (a->loaded)
        return AW_OK;
    char *key = NULL;
    if (f->accounts) {
        struct aw_account acc;
        aw_account_resolve(f->accounts, a->id, NULL, 0, &acc);
        if (acc.api_key)
            key = aw_strdup(acc.api_key);
        aw_account_clear(&acc);
    }
    char *stored = NULL;
    uint64_t block = 0;
    enum aw_err e = aw_store_account_get(f->store, a->id, key ? NULL : &stored, &block);
    if (e != AW_OK) {
        free_secret(key);
        return e;
    }
    if (!key)
        key = stored;
    free_secret(a->api_key);
    a->api_key = key;
    uint64_t now_unix = aw_clock_unix_ms();
    if (block > now_unix)
        aw_ratelimit_block(f->rl, a->id, aw_clock_mono_ms() + (block - now_unix));
    a->loaded = true;
    return AW_OK;
}

static void acct_pause(struct aw_flusher *f, struct acct *a, long status, const char *reason)
{
    uint64_t now = aw_clock_mono_ms();
    a->paused_until = now + PAUSE_MS;
    a->loaded = false; /* re-read the key: a new one may have arrived meanwhile */
    a->pause_count++;
    if (!a->paused) {
        a->paused = true;
        f->n_paused++;
        aw_metrics_set(AW_M_ACCOUNTS_PAUSED, (int64_t)f->n_paused);
    }
    if (a->last_pause_log == 0 || now - a->last_pause_log >= PAUSE_MS) {
        AW_LOG_ERROR(MOD, "account paused: Klaviyo refused its API key (data kept)",
                     "account=%s status=%ld reason=%s refusals=%u retry_in_ms=%u", a->id, status,
                     reason, a->pause_count, PAUSE_MS);
        a->last_pause_log = now;
        a->pause_count = 0;
    }
}

static void acct_resume(struct aw_flusher *f, struct acct *a)
{
    if (!a->paused)
        return;
    a->paused = false;
    a->paused_until = 0;
    a->last_pause_log = 0;
    f->n_paused--;
    aw_metrics_set(AW_M_ACCOUNTS_PAUSED, (int64_t)f->n_paused);
    AW_LOG_INFO(MOD, "account resumed", "account=%s", a->id);
}

/* ---- Jobs ----------------------------------------------------------------------------------- */

static void job_free(struct job *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->n; i++) {
        aw_change_clear(&j->ch[i]);
        if (j->del_id)
            free(j->del_id[i]);
    }
    free(j->ch);
    free(j->gone);
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

/* Forgets every in-memory job (lease lost or stopping): in-flight batches stay in Redis and
 * the next leader resumes them. */
static void abandon_all(struct aw_flusher *f, const char *why)
{
    if (f->n_jobs)
        AW_LOG_INFO(MOD, "abandoning in-memory flushes", "count=%zu reason=%s", f->n_jobs, why);
    for (size_t i = 0; i < f->n_jobs; i++)
        job_free(f->jobs[i]);
    f->n_jobs = 0;
}

static uint64_t now_ms(void)
{
    return aw_clock_mono_ms();
}

static void retry_later(struct job *j, const char *what, const char *detail)
{
    uint64_t d = aw_backoff_next_ms(&j->bo);
    j->next_at = now_ms() + d;
    if (j->bo.attempt <= 1)
        AW_LOG_WARN(MOD, "flush step failed, retrying",
                    "account=%s audience=%s step=%s "
                    "detail=\"%s\" retry_in_ms=%" PRIu64,
                    j->acct_id, j->aud_id, what, detail ? detail : "", d);
    else
        AW_LOG_DEBUG(MOD, "flush step failed, retrying",
                     "account=%s audience=%s step=%s "
                     "attempt=%u retry_in_ms=%" PRIu64,
                     j->acct_id, j->aud_id, what, j->bo.attempt, d);
}

/* Dead-letters entry idx of j (stage "flush") once; the envelope is kept until the batch is
 * acked so it can be produced again if the broker did not confirm it. */
static void dead_letter(struct aw_flusher *f, struct job *j, size_t idx, const char *reason,
                        const char *kid, const char *kcode, const char *ktitle)
{
    if (j->gone[idx])
        return;
    j->gone[idx] = true;
    char *env = NULL;
    if (!j->ch[idx].email ||
        aw_deadletter_change(&j->ch[idx], "flush", reason, kid, kcode, ktitle, &env) != AW_OK)
        env = aw_strdup(j->t.changes[idx]); /* undecodable entry: its stored text */
    aw_grow((void **)&j->dl, &j->cap_dl, j->n_dl + 1, sizeof *j->dl);
    j->dl[j->n_dl].env = env;
    j->dl[j->n_dl].reason = aw_strdup(reason);
    j->n_dl++;
    char key[300];
    int kn = snprintf(key, sizeof key, "%s:%s", j->acct_id, j->aud_id);
    if (aw_dlq_produce(f->dlq, key, kn > 0 ? (size_t)kn : 0, env, strlen(env), reason, "flush",
                       "klaviyo", -1, -1) != AW_OK)
        AW_LOG_WARN(MOD, "dead-letter produce failed (retried before ack)",
                    "account=%s "
                    "audience=%s reason=%s",
                    j->acct_id, j->aud_id, reason);
    aw_metrics_count(AW_MF_DEAD_LETTERS, "flush", reason);
    AW_LOG_INFO(MOD, "record dead-lettered",
                "account=%s audience=%s reason=%s klaviyo_id=%s "
                "klaviyo_code=%s",
                j->acct_id, j->aud_id, reason, kid ? kid : "", kcode ? kcode : "");
}

/* Produces again every kept envelope of every job (after an unconfirmed wait). */
static void reproduce_all(struct aw_flusher *f)
{
    for (size_t i = 0; i < f->n_jobs; i++) {
        struct job *j = f->jobs[i];
        char key[300];
        int kn = snprintf(key, sizeof key, "%s:%s", j->acct_id, j->aud_id);
        for (size_t d = 0; d < j->n_dl; d++)
            (void)aw_dlq_produce(f->dlq, key, kn > 0 ? (size_t)kn : 0, j->dl[d].env,
                                 strlen(j->dl[d].env), j->dl[d].reason, "flush", "klaviyo", -1, -1);
    }
}

/* Removes gone entries from cat c at or after pos. */
static void compact(struct job *j, int c)
{
    size_t w = j->pos;
    for (size_t r = j->pos; r < j->ncat[c]; r++)
        if (!j->gone[j->cat[c][r]])
            j->cat[c][w++] = j->cat[c][r];
    j->ncat[c] = w;
}

/* Moves to the first category at or after `from` that has work; ACK when none. */
static void next_stage(struct job *j, int from)
{
    for (int c = from; c < CAT_COUNT; c++) {
        size_t live = 0;
        for (size_t i = 0; i < j->ncat[c]; i++)
            if (!j->gone[j->cat[c][i]])
                live++;
        if (live == 0)
            continue;
        j->cur = c;
        j->pos = 0;
        j->phase = c == CAT_DEL ? PH_LOOKUP : PH_SEND;
        return;
    }
    j->cur = CAT_COUNT;
    j->phase = PH_ACK;
}

static bool needs_list(const struct job *j)
{
    for (int c = 0; c < CAT_COUNT; c++) {
        if (c != CAT_ADD && c != CAT_DEL)
            continue;
        for (size_t i = 0; i < j->ncat[c]; i++)
            if (!j->gone[j->cat[c][i]])
                return true;
    }
    return false;
}

/* After the list is known (or cannot be): continue where the job stood. */
static void after_list(struct job *j)
{
    if (j->relist) {
        j->relist = false;
        j->phase = PH_SEND; /* same category and position (gone entries are skipped) */
        return;
    }
    next_stage(j, j->cur);
}

/* Dead-letters every live entry of the list-dependent categories (no list can be resolved). */
static void drop_list_work(struct aw_flusher *f, struct job *j, const char *reason,
                           const struct aw_klaviyo_response *r)
{
    static const int cats[2] = {CAT_ADD, CAT_DEL};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < j->ncat[cats[k]]; i++)
            dead_letter(f, j, j->cat[cats[k]][i], reason, r ? err_field(r, 0) : NULL,
                        r ? err_field(r, 1) : NULL, r ? err_field(r, 2) : NULL);
}

/* ---- Requests ------------------------------------------------------------------------------- */

enum sent { SENT = 0, NOT_SENT };

/* Sends one request for j unless the lease is gone, the account is paused or has no key, or
 * the rate limit says wait (then j->next_at is set and NOT_SENT returned). resp is always
 * initialised. */
static enum sent send_req(struct aw_flusher *f, struct job *j, struct aw_ratelimit_tier tier,
                          enum aw_klaviyo_method m, const char *path, const char *body,
                          struct aw_klaviyo_response *resp)
{
    memset(resp, 0, sizeof *resp);
    uint64_t now = now_ms();
    if (!aw_leader_is_held(&f->leader, now)) {
        j->next_at = now + f->s->flush.tick_ms;
        return NOT_SENT;
    }
    struct acct *a = &f->accts[j->acct];
    if (a->paused && a->paused_until > now) {
        j->next_at = a->paused_until;
        return NOT_SENT;
    }
    if (acct_load(f, a) != AW_OK) {
        retry_later(j, "account_load", aw_store_errstr(f->store));
        return NOT_SENT;
    }
    if (!a->api_key) {
        acct_pause(f, a, 0, "missing_api_key");
        j->next_at = a->paused_until;
        return NOT_SENT;
    }
    uint64_t w = aw_ratelimit_acquire(f->rl, a->id, tier, now);
    if (w > 0) {
        j->next_at = now + w;
        return NOT_SENT;
    }
    aw_metrics_add(AW_M_KLAVIYO_REQUESTS, 1);
    (void)aw_klaviyo_request(f->k, a->api_key, m, path, body, body ? strlen(body) : 0, resp);
    if (resp->status == 429)
        aw_metrics_add(AW_M_KLAVIYO_RATE_LIMITED, 1);
    if (resp->status == 0 || resp->status >= 500)
        aw_metrics_add(AW_M_KLAVIYO_ERRORS, 1);
    AW_LOG_DEBUG(MOD, "klaviyo request", "account=%s audience=%s step=%s status=%ld action=%s",
                 j->acct_id, j->aud_id, cat_name[j->cur < CAT_COUNT ? j->cur : 0], resp->status,
                 aw_klaviyo_action_str(resp->action));
    return SENT;
}

/* WAIT / RETRY / PAUSE: schedules j and returns true. DONE: resets the backoff, resumes a
 * paused account, returns false. Other actions: false (the caller decides). */
static bool handle_common(struct aw_flusher *f, struct job *j, const char *step,
                          const struct aw_klaviyo_response *r)
{
    struct acct *a = &f->accts[j->acct];
    uint64_t now = now_ms();
    switch (r->action) {
    case AW_KLAVIYO_WAIT: {
        uint64_t ra = r->has_retry_after ? r->retry_after_ms : WAIT_DEFAULT_MS;
        if (ra == 0)
            ra = WAIT_DEFAULT_MS / 4;
        aw_ratelimit_block(f->rl, a->id, now + ra);
        if (aw_store_account_block(f->store, a->id, aw_clock_unix_ms() + ra) != AW_OK)
            AW_LOG_WARN(MOD, "cannot store Retry-After block", "account=%s detail=\"%s\"", a->id,
                        aw_store_errstr(f->store));
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
        acct_pause(f, a, r->status, "refused");
        j->next_at = a->paused_until;
        return true;
    case AW_KLAVIYO_DONE:
        aw_backoff_reset(&j->bo);
        acct_resume(f, a);
        return false;
    default:
        acct_resume(f, a); /* the key was accepted */
        return false;
    }
}

/* ---- Steps ---------------------------------------------------------------------------------- */

static void categorize(struct job *j)
{
    for (int c = 0; c < CAT_COUNT; c++)
        j->cat[c] = aw_calloc(j->n ? j->n : 1, sizeof *j->cat[c]);
    for (size_t i = 0; i < j->n; i++) {
        if (j->gone[i])
            continue;
        const struct aw_change *c = &j->ch[i];
        /* A removal may carry attributes newer than itself (store.c versions membership and
         * attributes separately): they are sent as a profile update, then the removal. */
        if (c->action == AW_CHANGE_DELETE)
            j->cat[CAT_DEL][j->ncat[CAT_DEL]++] = i;
        if (c->action == AW_CHANGE_ADD)
            j->cat[CAT_ADD][j->ncat[CAT_ADD]++] = i;
        else if (c->n_attrs > 0 || c->phone_e164 || c->external_id)
            j->cat[CAT_UPD][j->ncat[CAT_UPD]++] = i;
        if (aw_payload_needs_profile_import(c))
            j->cat[CAT_UNSET][j->ncat[CAT_UNSET]++] = i;
        if (aw_payload_has_subscribe(c))
            j->cat[CAT_SUB][j->ncat[CAT_SUB]++] = i;
        if (aw_payload_has_unsubscribe(c))
            j->cat[CAT_UNSUB][j->ncat[CAT_UNSUB]++] = i;
    }
}

/* Returns true when the job is finished (removed by the caller). */
static bool step_take(struct aw_flusher *f, struct job *j)
{
    enum aw_err e = aw_store_flush_take(f->store, j->acct_id, j->aud_id, f->leader.epoch,
                                        AW_PAYLOAD_IMPORT_MAX_PROFILES, aw_clock_unix_ms(), &j->t);
    if (e == AW_ERR_NOT_LEADER) {
        AW_LOG_WARN(MOD, "batch fenced by a newer leader", "account=%s audience=%s", j->acct_id,
                    j->aud_id);
        return true;
    }
    if (e != AW_OK) {
        aw_metrics_add(AW_M_STORE_ERRORS, 1);
        retry_later(j, "take", aw_store_errstr(f->store));
        return false;
    }
    if (j->t.status == AW_STORE_BATCH_EMPTY)
        return true;
    j->n = j->t.n;
    j->ch = aw_calloc(j->n ? j->n : 1, sizeof *j->ch);
    j->gone = aw_calloc(j->n ? j->n : 1, sizeof *j->gone);
    j->del_id = aw_calloc(j->n ? j->n : 1, sizeof *j->del_id);
    j->looked_up = aw_calloc(j->n ? j->n : 1, sizeof *j->looked_up);
    j->job_items = aw_calloc(j->n ? j->n : 1, sizeof *j->job_items);
    j->rm = aw_calloc(j->n ? j->n : 1, sizeof *j->rm);
    j->started_ms = now_ms();
    for (size_t i = 0; i < j->n; i++)
        if (aw_change_decode(j->t.changes[i], strlen(j->t.changes[i]), &j->ch[i]) != AW_OK) {
            memset(&j->ch[i], 0, sizeof j->ch[i]);
            dead_letter(f, j, i, "undecodable_pending", NULL, NULL, NULL);
        }
    categorize(j);
    AW_LOG_INFO(
        MOD, j->t.status == AW_STORE_BATCH_RESUMED ? "resuming in-flight batch" : "flushing batch",
        "account=%s audience=%s batch=%s records=%zu adds=%zu updates=%zu removes=%zu "
        "subscribes=%zu unsubscribes=%zu pending_after=%" PRId64,
        j->acct_id, j->aud_id, j->t.batch_id, j->n, j->ncat[CAT_ADD], j->ncat[CAT_UPD],
        j->ncat[CAT_DEL], j->ncat[CAT_SUB], j->ncat[CAT_UNSUB], j->t.pending);
    j->cur = CAT_ADD;
    j->pos = 0;
    if (needs_list(j)) {
        j->phase = PH_LIST;
    } else {
        next_stage(j, CAT_ADD);
    }
    j->next_at = now_ms();
    return false;
}

/* The list name: meta `name`, else the newest name the entries carried. Caller frees. */
static char *list_name(struct aw_flusher *f, struct job *j)
{
    char *name = NULL;
    if (aw_store_meta_get(f->store, j->acct_id, j->aud_id, "name", &name) == AW_OK && name &&
        name[0])
        return name;
    free(name);
    const struct aw_change *best = NULL;
    for (size_t i = 0; i < j->n; i++)
        if (j->ch[i].audience_name && j->ch[i].audience_name[0] &&
            (!best || j->ch[i].version_ms > best->version_ms))
            best = &j->ch[i];
    return best ? aw_strdup(best->audience_name) : NULL;
}

static void set_list(struct aw_flusher *f, struct job *j, const char *id)
{
    free(j->list_id);
    j->list_id = aw_strdup(id);
    j->list_auto = true;
    if (aw_store_meta_set(f->store, j->acct_id, j->aud_id, "klaviyo_list_id", id) != AW_OK)
        AW_LOG_WARN(MOD, "cannot remember list id (found again next time)",
                    "account=%s audience=%s detail=\"%s\"", j->acct_id, j->aud_id,
                    aw_store_errstr(f->store));
}

static void step_list(struct aw_flusher *f, struct job *j)
{
    if (!j->list_id) {
        char *id = NULL;
        enum aw_err e = aw_store_meta_get(f->store, j->acct_id, j->aud_id, "list_id", &id);
        if (e == AW_OK && id && id[0]) {
            j->list_id = id;
            j->list_auto = false;
        } else {
            free(id);
            id = NULL;
            if (e == AW_OK)
                e = aw_store_meta_get(f->store, j->acct_id, j->aud_id, "klaviyo_list_id", &id);
            if (e == AW_OK && id && id[0]) {
                j->list_id = id;
                j->list_auto = true;
            } else {
                free(id);
            }
        }
        if (e != AW_OK) {
            retry_later(j, "list_meta", aw_store_errstr(f->store));
            return;
        }
    }
    if (j->list_id) {
        after_list(j);
        return;
    }
    char *name = list_name(f, j);
    char *filter = NULL;
    if (!name || aw_payload_build_list_name_filter(name, &filter) != AW_OK) {
        drop_list_work(f, j, name ? "invalid_list_name" : "no_list_name", NULL);
        free(name);
        after_list(j);
        return;
    }
    struct aw_buf path;
    aw_buf_init(&path, 0);
    (void)aw_buf_append_str(&path, "/api/lists?filter=");
    url_encode(&path, filter);
    free(filter);
    struct aw_klaviyo_response r;
    if (send_req(f, j, AW_RATELIMIT_TIER_L, AW_KLAVIYO_GET, path.data, NULL, &r) == SENT &&
        !handle_common(f, j, "list_find", &r)) {
        struct aw_payload_page page;
        memset(&page, 0, sizeof page);
        if (r.action != AW_KLAVIYO_DONE) {
            drop_list_work(f, j, "klaviyo_list_lookup_rejected", &r);
            after_list(j);
        } else if (aw_payload_parse_lists_page(r.body, r.body_len, &page) != AW_OK) {
            retry_later(j, "list_find", "unexpected response body");
        } else {
            const char *found = NULL;
            for (size_t i = 0; i < page.n && !found; i++)
                if (page.items[i].value && strcmp(page.items[i].value, name) == 0)
                    found = page.items[i].id;
            if (found) {
                set_list(f, j, found);
                AW_LOG_INFO(MOD, "list found by name", "account=%s audience=%s list=%s", j->acct_id,
                            j->aud_id, found);
                after_list(j);
            } else {
                j->phase = PH_LIST_CREATE;
            }
            j->next_at = now_ms();
        }
        aw_payload_page_clear(&page);
    }
    aw_klaviyo_response_clear(&r);
    aw_buf_free(&path);
    free(name);
}

static void step_list_create(struct aw_flusher *f, struct job *j)
{
    char *name = list_name(f, j);
    char *body = NULL;
    if (!name || aw_payload_build_create_list(name, &body) != AW_OK) {
        drop_list_work(f, j, name ? "invalid_list_name" : "no_list_name", NULL);
        free(name);
        after_list(j);
        return;
    }
    int64_t count = 0;
    enum aw_err e =
        aw_store_account_count_list_create(f->store, j->acct_id, aw_clock_unix_ms(), 1, &count);
    if (e != AW_OK) {
        retry_later(j, "list_create_count", aw_store_errstr(f->store));
    } else if (count > (int64_t)AW_KLAVIYO_RL_CREATE_LIST_DAILY) {
        AW_LOG_WARN(MOD, "daily list creation limit reached; waiting",
                    "account=%s audience=%s "
                    "limit=%u",
                    j->acct_id, j->aud_id, AW_KLAVIYO_RL_CREATE_LIST_DAILY);
        j->next_at = now_ms() + 3600000u; /* the counter is per UTC day */
    } else {
        struct aw_klaviyo_response r;
        enum sent sent =
            send_req(f, j, AW_RATELIMIT_TIER_M, AW_KLAVIYO_POST, "/api/lists", body, &r);
        if (sent != SENT) {
            /* Not sent (rate limit, pause, lease): give the day's slot back. A failure here only
             * over-counts, the safe direction. */
            int64_t ignored;
            if (aw_store_account_count_list_create(f->store, j->acct_id, aw_clock_unix_ms(), -1,
                                                   &ignored) != AW_OK)
                aw_metrics_add(AW_M_STORE_ERRORS, 1);
        } else if (!handle_common(f, j, "list_create", &r)) {
            char *id = NULL;
            if (r.action == AW_KLAVIYO_CONFLICT) {
                j->phase = PH_LIST; /* created meanwhile: find it */
            } else if (r.action != AW_KLAVIYO_DONE) {
                drop_list_work(f, j, "klaviyo_list_create_rejected", &r);
                after_list(j);
            } else if (aw_payload_parse_resource_id(r.body, r.body_len, "list", &id) != AW_OK) {
                retry_later(j, "list_create", "unexpected response body");
            } else {
                set_list(f, j, id);
                AW_LOG_INFO(MOD, "list created", "account=%s audience=%s list=%s", j->acct_id,
                            j->aud_id, id);
                after_list(j);
            }
            free(id);
            if (j->phase != PH_LIST_CREATE || r.action == AW_KLAVIYO_CONFLICT)
                j->next_at = now_ms();
        }
        aw_klaviyo_response_clear(&r);
    }
    free(body);
    free(name);
}

/* Handles a 4xx that is not WAIT/PAUSE for the request holding items cat[cur][pos..pos+n). */
static void refuse_items(struct aw_flusher *f, struct job *j, size_t n,
                         const struct aw_klaviyo_response *r)
{
    const size_t *items = j->cur == CAT_DEL ? j->rm : j->cat[j->cur];
    if (r->action == AW_KLAVIYO_DROP_RECORDS) {
        size_t dropped = 0;
        for (size_t k = 0; k < r->errors.n; k++) {
            const struct aw_payload_error *e = &r->errors.items[k];
            if (e->has_index && e->index < n && !j->gone[items[j->pos + e->index]]) {
                dead_letter(f, j, items[j->pos + e->index], "klaviyo_invalid_record", e->id,
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
                "account=%s audience=%s step=%s status=%ld "
                "klaviyo_id=%s klaviyo_code=%s records=%zu",
                j->acct_id, j->aud_id, cat_name[j->cur], r->status,
                err_field(r, 0) ? err_field(r, 0) : "", err_field(r, 1) ? err_field(r, 1) : "", n);
    for (size_t i = 0; i < n; i++)
        dead_letter(f, j, items[j->pos + i], reason, err_field(r, 0), err_field(r, 1),
                    err_field(r, 2));
    j->pos += n;
}

static void step_send(struct aw_flusher *f, struct job *j)
{
    int c = j->cur;
    compact(j, c);
    if (j->pos >= j->ncat[c]) {
        next_stage(j, c + 1);
        return;
    }
    size_t m = j->ncat[c] - j->pos;
    const struct aw_change **arr = aw_calloc(m, sizeof *arr);
    for (size_t i = 0; i < m; i++)
        arr[i] = &j->ch[j->cat[c][j->pos + i]];
    char *body = NULL;
    size_t consumed = 0;
    enum aw_err e;
    const char *path;
    struct aw_ratelimit_tier tier = AW_RATELIMIT_TIER_L;
    switch (c) {
    case CAT_ADD:
    case CAT_UPD:
        e = aw_payload_build_import(arr, m, c == CAT_ADD ? j->list_id : NULL, 0, 0, &body,
                                    &consumed);
        path = "/api/profile-bulk-import-jobs";
        tier = AW_RATELIMIT_TIER_M;
        break;
    case CAT_UNSET:
        e = aw_payload_build_profile_import(arr[0], &body);
        consumed = e == AW_OK ? 1 : 0;
        path = "/api/profile-import";
        break;
    case CAT_SUB:
        e = aw_payload_build_subscribe(arr, m, 0, &body, &consumed);
        path = "/api/profile-subscription-bulk-create-jobs";
        break;
    default:
        e = aw_payload_build_unsubscribe(arr, m, 0, &body, &consumed);
        path = "/api/profile-subscription-bulk-delete-jobs";
        break;
    }
    free(arr);
    if (e != AW_OK || consumed == 0) {
        dead_letter(f, j, j->cat[c][j->pos], "unsendable", NULL, NULL, NULL);
        free(body);
        j->next_at = now_ms();
        return;
    }
    struct aw_klaviyo_response r;
    if (send_req(f, j, tier, AW_KLAVIYO_POST, path, body, &r) == SENT &&
        !handle_common(f, j, cat_name[c], &r)) {
        j->next_at = now_ms();
        if (r.action == AW_KLAVIYO_DONE) {
            if (c == CAT_ADD || c == CAT_UPD) {
                struct aw_payload_import_job job;
                memset(&job, 0, sizeof job);
                if (aw_payload_parse_import_job(r.body, r.body_len, &job) != AW_OK) {
                    retry_later(j, cat_name[c], "unexpected response body");
                } else {
                    free(j->job_id);
                    j->job_id = aw_strdup(job.id);
                    memcpy(j->job_items, &j->cat[c][j->pos], consumed * sizeof *j->job_items);
                    j->n_job_items = consumed;
                    j->pos += consumed;
                    j->phase = PH_JOB_POLL;
                    j->next_at = now_ms() + f->s->klaviyo.job_poll_ms;
                }
                aw_payload_import_job_clear(&job);
            } else {
                j->pos += consumed;
            }
        } else if (r.action == AW_KLAVIYO_NOT_FOUND && c == CAT_ADD && j->list_auto) {
            /* the list we found or created is gone: find or create it again */
            AW_LOG_WARN(MOD, "list not found; resolving it again", "account=%s audience=%s",
                        j->acct_id, j->aud_id);
            (void)aw_store_meta_set(f->store, j->acct_id, j->aud_id, "klaviyo_list_id", NULL);
            free(j->list_id);
            j->list_id = NULL;
            j->relist = true;
            j->phase = PH_LIST;
        } else {
            refuse_items(f, j, consumed, &r);
        }
    }
    aw_klaviyo_response_clear(&r);
    free(body);
}

/* Sends the previous job's items again (job cancelled or vanished). */
static void resend_job(struct job *j, const char *why)
{
    AW_LOG_WARN(MOD, "bulk import job did not finish; sending its records again",
                "account=%s audience=%s reason=%s records=%zu", j->acct_id, j->aud_id, why,
                j->n_job_items);
    j->pos -= j->n_job_items; /* those items sit right before pos (compaction keeps them) */
    j->n_job_items = 0;
    j->phase = PH_SEND;
    j->next_at = now_ms();
}

static void step_job_poll(struct aw_flusher *f, struct job *j)
{
    struct aw_buf path;
    aw_buf_init(&path, 0);
    (void)aw_buf_append_str(&path, "/api/profile-bulk-import-jobs/");
    url_encode(&path, j->job_id);
    struct aw_klaviyo_response r;
    if (send_req(f, j, AW_RATELIMIT_TIER_M, AW_KLAVIYO_GET, path.data, NULL, &r) == SENT &&
        !handle_common(f, j, "import_job_poll", &r)) {
        struct aw_payload_import_job job;
        memset(&job, 0, sizeof job);
        if (r.action == AW_KLAVIYO_NOT_FOUND) {
            resend_job(j, "job_not_found");
        } else if (r.action != AW_KLAVIYO_DONE ||
                   aw_payload_parse_import_job(r.body, r.body_len, &job) != AW_OK) {
            retry_later(j, "import_job_poll", "unexpected response");
        } else if (!aw_payload_job_is_done(job.status)) {
            j->next_at = now_ms() + f->s->klaviyo.job_poll_ms;
        } else if (job.status == AW_PAYLOAD_JOB_CANCELLED) {
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
        aw_payload_import_job_clear(&job);
    }
    aw_klaviyo_response_clear(&r);
    aw_buf_free(&path);
}

static void step_job_errors(struct aw_flusher *f, struct job *j)
{
    struct aw_buf path;
    aw_buf_init(&path, 0);
    (void)aw_buf_append_str(&path, "/api/profile-bulk-import-jobs/");
    url_encode(&path, j->job_id);
    (void)aw_buf_append_str(&path, "/import-errors?page%5Bsize%5D=100");
    if (j->err_cursor) {
        (void)aw_buf_append_str(&path, "&page%5Bcursor%5D=");
        url_encode(&path, j->err_cursor);
    }
    struct aw_klaviyo_response r;
    if (send_req(f, j, AW_RATELIMIT_TIER_M, AW_KLAVIYO_GET, path.data, NULL, &r) == SENT &&
        !handle_common(f, j, "import_errors", &r)) {
        struct aw_payload_errors errs;
        memset(&errs, 0, sizeof errs);
        if (r.action != AW_KLAVIYO_DONE ||
            aw_payload_parse_import_errors(r.body, r.body_len, &errs) != AW_OK) {
            retry_later(j, "import_errors", "unexpected response");
        } else {
            for (size_t k = 0; k < errs.n; k++) {
                const struct aw_payload_error *e = &errs.items[k];
                size_t idx = SIZE_MAX;
                if (e->has_index && e->index < j->n_job_items)
                    idx = j->job_items[e->index];
                for (size_t i = 0; idx == SIZE_MAX && e->email && i < j->n_job_items; i++)
                    if (j->ch[j->job_items[i]].email &&
                        strcasecmp(j->ch[j->job_items[i]].email, e->email) == 0)
                        idx = j->job_items[i];
                if (idx != SIZE_MAX)
                    dead_letter(f, j, idx, "klaviyo_import_error", e->id, e->code, e->title);
            }
            free(j->err_cursor);
            j->err_cursor = errs.next_cursor ? aw_strdup(errs.next_cursor) : NULL;
            if (!j->err_cursor)
                j->phase = PH_SEND;
            j->next_at = now_ms();
        }
        aw_payload_errors_clear(&errs);
    }
    aw_klaviyo_response_clear(&r);
    aw_buf_free(&path);
}

static void step_lookup(struct aw_flusher *f, struct job *j)
{
    const size_t *del = j->cat[CAT_DEL];
    size_t nd = j->ncat[CAT_DEL];
    const char **emails = aw_calloc(nd ? nd : 1, sizeof *emails);
    size_t ne = 0;
    for (size_t k = 0; k < nd; k++) {
        size_t i = del[k];
        if (j->gone[i] || j->looked_up[i])
            continue;
        const char *id = id_cache_get(&f->ids, j->acct_id, j->ch[i].email);
        if (id) {
            free(j->del_id[i]);
            j->del_id[i] = aw_strdup(id);
            j->looked_up[i] = true;
            continue;
        }
        j->job_items[ne] = i;
        emails[ne++] = j->ch[i].email;
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
    enum aw_err e =
        aw_payload_build_email_filter(emails, ne, 0, FILTER_MAX_BYTES, &filter, &consumed);
    free(emails);
    if (e != AW_OK || consumed == 0) {
        dead_letter(f, j, j->job_items[0], "unsendable", NULL, NULL, NULL);
        free(filter);
        j->next_at = now_ms();
        return;
    }
    struct aw_buf path;
    aw_buf_init(&path, 0);
    (void)aw_buf_append_str(&path, "/api/profiles?filter=");
    url_encode(&path, filter);
    (void)aw_buf_append_str(&path, "&page%5Bsize%5D=100");
    free(filter);
    struct aw_klaviyo_response r;
    if (send_req(f, j, AW_RATELIMIT_TIER_L, AW_KLAVIYO_GET, path.data, NULL, &r) == SENT &&
        !handle_common(f, j, "profile_lookup", &r)) {
        struct aw_payload_page page;
        memset(&page, 0, sizeof page);
        j->next_at = now_ms();
        if (r.action != AW_KLAVIYO_DONE) {
            for (size_t k = 0; k < consumed; k++)
                dead_letter(f, j, j->job_items[k], "klaviyo_lookup_rejected", err_field(&r, 0),
                            err_field(&r, 1), err_field(&r, 2));
        } else if (aw_payload_parse_profiles_page(r.body, r.body_len, &page) != AW_OK) {
            retry_later(j, "profile_lookup", "unexpected response body");
        } else {
            for (size_t p = 0; p < page.n; p++) {
                if (!page.items[p].value)
                    continue;
                for (size_t k = 0; k < consumed; k++) {
                    size_t i = j->job_items[k];
                    if (strcasecmp(j->ch[i].email, page.items[p].value) == 0 && !j->del_id[i]) {
                        j->del_id[i] = aw_strdup(page.items[p].id);
                        id_cache_put(&f->ids, j->acct_id, j->ch[i].email, page.items[p].id);
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
        aw_payload_page_clear(&page);
    }
    aw_klaviyo_response_clear(&r);
    aw_buf_free(&path);
}

static void step_remove(struct aw_flusher *f, struct job *j)
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
    enum aw_err e = aw_payload_build_list_members(ids, m, 0, &body, &consumed);
    free(ids);
    if (e != AW_OK || consumed == 0) {
        dead_letter(f, j, j->rm[j->pos], "unsendable", NULL, NULL, NULL);
        free(body);
        j->next_at = now_ms();
        return;
    }
    struct aw_buf path;
    aw_buf_init(&path, 0);
    (void)aw_buf_append_str(&path, "/api/lists/");
    url_encode(&path, j->list_id);
    (void)aw_buf_append_str(&path, "/relationships/profiles");
    struct aw_klaviyo_response r;
    if (send_req(f, j, AW_RATELIMIT_TIER_M, AW_KLAVIYO_DELETE, path.data, body, &r) == SENT &&
        !handle_common(f, j, "remove", &r)) {
        j->next_at = now_ms();
        if (r.action == AW_KLAVIYO_DONE) {
            aw_metrics_add(AW_M_PROFILES_REMOVED, consumed);
            j->n_removed += consumed;
            j->pos += consumed;
        } else if (r.action == AW_KLAVIYO_NOT_FOUND) {
            /* no such list: nobody is a member of it, so the removal holds */
            if (j->list_auto)
                (void)aw_store_meta_set(f->store, j->acct_id, j->aud_id, "klaviyo_list_id", NULL);
            j->n_not_found += consumed;
            j->pos += consumed;
        } else {
            refuse_items(f, j, consumed, &r);
        }
    }
    aw_klaviyo_response_clear(&r);
    aw_buf_free(&path);
    free(body);
}

/* Returns true when the job is finished. */
static bool step_ack(struct aw_flusher *f, struct job *j)
{
    if (j->n_dl > 0 && aw_dlq_pending(f->dlq) > 0) {
        enum aw_err e = aw_dlq_wait(f->dlq, DLQ_TIMEOUT_MS);
        if (e != AW_OK) {
            reproduce_all(f);
            retry_later(j, "dead_letter_wait", aw_err_str(e));
            return false;
        }
    }
    enum aw_store_batch_status st;
    enum aw_err e = aw_store_flush_ack(f->store, j->acct_id, j->aud_id, f->leader.epoch,
                                       j->t.batch_id, aw_clock_unix_ms(), &st);
    if (e == AW_ERR_NOT_LEADER)
        return true;
    if (e != AW_OK) {
        aw_metrics_add(AW_M_STORE_ERRORS, 1);
        retry_later(j, "ack", aw_store_errstr(f->store));
        return false;
    }
    aw_metrics_add(AW_M_FLUSHES, 1);
    AW_LOG_INFO(MOD, "audience flushed",
                "account=%s audience=%s batch=%s records=%zu "
                "uploaded=%zu removed=%zu not_found=%zu dead_lettered=%zu ms=%" PRIu64 "%s",
                j->acct_id, j->aud_id, j->t.batch_id, j->n, j->n_uploaded, j->n_removed,
                j->n_not_found, j->n_dl, now_ms() - j->started_ms,
                st == AW_STORE_BATCH_GONE ? " gone=1" : "");
    return true;
}

static bool job_step(struct aw_flusher *f, struct job *j)
{
    switch (j->phase) {
    case PH_TAKE:
        return step_take(f, j);
    case PH_LIST:
        step_list(f, j);
        return false;
    case PH_LIST_CREATE:
        step_list_create(f, j);
        return false;
    case PH_SEND:
        step_send(f, j);
        return false;
    case PH_JOB_POLL:
        step_job_poll(f, j);
        return false;
    case PH_JOB_ERRORS:
        step_job_errors(f, j);
        return false;
    case PH_LOOKUP:
        step_lookup(f, j);
        return false;
    case PH_REMOVE:
        step_remove(f, j);
        return false;
    case PH_ACK:
        return step_ack(f, j);
    }
    return true;
}

/* ---- Lease and loop ------------------------------------------------------------------------- */

static void lease_drive(struct aw_flusher *f)
{
    uint64_t now = now_ms();
    enum aw_leader_op op = aw_leader_next(&f->leader, now);
    if (op != AW_LEADER_OP_NONE) {
        bool granted = false;
        uint64_t epoch = 0;
        uint64_t ttl = f->leader.ttl_ms;
        enum aw_err e =
            op == AW_LEADER_OP_ACQUIRE
                ? aw_store_lease_acquire(f->store, f->leader.token, ttl, &granted, &epoch)
                : aw_store_lease_renew(f->store, f->leader.token, ttl, &granted, &epoch);
        if (e != AW_OK)
            aw_metrics_add(AW_M_STORE_ERRORS, 1);
        aw_metrics_set(AW_M_STORE_UP, e == AW_OK);
        (void)aw_leader_on_result(&f->leader, op, now, e, granted, epoch, now_ms());
    }
    bool held = aw_leader_is_held(&f->leader, now_ms());
    if (held && !f->was_held) {
        AW_LOG_INFO(MOD, "leader lease gained", "epoch=%" PRIu64 " instance=%s", f->leader.epoch,
                    f->s->process.instance_id ? f->s->process.instance_id : "");
        for (size_t i = 0; i < f->n_accts; i++)
            f->accts[i].loaded = false; /* re-read keys and a predecessor's Retry-After */
        f->next_scan = 0;
    } else if (!held && f->was_held) {
        AW_LOG_WARN(MOD, "leader lease lost", "epoch=%" PRIu64, f->leader.epoch);
        abandon_all(f, "lease_lost");
    }
    f->was_held = held;
    aw_metrics_set(AW_M_LEADER, held);
}

static bool has_job(const struct aw_flusher *f, const char *acct, const char *aud)
{
    for (size_t i = 0; i < f->n_jobs; i++)
        if (strcmp(f->jobs[i]->acct_id, acct) == 0 && strcmp(f->jobs[i]->aud_id, aud) == 0)
            return true;
    return false;
}

/* Lists due audiences (in-flight ones have score 0, so a new leader re-drives them first) and
 * starts a job for each one not being worked on. */
static void scan(struct aw_flusher *f)
{
    char **due = NULL;
    size_t n = 0;
    f->next_scan = now_ms() + f->s->flush.tick_ms;
    if (aw_store_due_list(f->store, aw_clock_unix_ms(), DUE_SCAN_MAX, &due, &n) != AW_OK) {
        aw_metrics_add(AW_M_STORE_ERRORS, 1);
        AW_LOG_WARN(MOD, "cannot list due audiences", "detail=\"%s\"", aw_store_errstr(f->store));
        return;
    }
    aw_metrics_set(AW_M_DUE_AUDIENCES, (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        char *colon = strchr(due[i], ':');
        if (colon && f->n_jobs < MAX_JOBS) {
            *colon = '\0';
            const char *acct = due[i], *aud = colon + 1;
            if (acct[0] && aud[0] && !has_job(f, acct, aud)) {
                struct job *j = aw_calloc(1, sizeof *j);
                j->acct_id = aw_strdup(acct);
                j->aud_id = aw_strdup(aud);
                j->acct = acct_index(f, acct);
                j->phase = PH_TAKE;
                j->next_at = now_ms();
                aw_backoff_init(&j->bo, f->s->klaviyo.retry_base_ms, f->s->klaviyo.retry_max_ms,
                                aw_clock_unix_ms() ^ (uint64_t)(uintptr_t)j);
                aw_grow((void **)&f->jobs, &f->cap_jobs, f->n_jobs + 1, sizeof *f->jobs);
                f->jobs[f->n_jobs++] = j;
            }
        }
        free(due[i]);
    }
    free(due);
    aw_metrics_set(AW_M_FLUSH_JOBS, (int64_t)f->n_jobs);
}

static void run(struct aw_flusher *f)
{
    const atomic_int *stop = f->stop;
    uint64_t tick = f->s->flush.tick_ms ? f->s->flush.tick_ms : 1000;
    while (!*f->stop) {
        lease_drive(f);
        uint64_t now = now_ms();
        if (!f->was_held) {
            uint64_t wait = f->leader.next_due_ms > now ? f->leader.next_due_ms - now : 0;
            aw_clock_sleep_ms(wait < tick ? wait : tick, stop);
            continue;
        }
        if (now >= f->next_scan)
            scan(f);
        bool ran = false;
        for (size_t i = 0; i < f->n_jobs && !*f->stop;) {
            struct job *j = f->jobs[i];
            if (j->next_at > now_ms()) {
                i++;
                continue;
            }
            bool done = job_step(f, j);
            ran = true;
            if (done) {
                job_free(j);
                f->jobs[i] = f->jobs[--f->n_jobs];
            } else {
                i++;
            }
            lease_drive(f);
            if (!f->was_held)
                break;
        }
        if (ran || *f->stop)
            continue;
        now = now_ms();
        uint64_t wake = f->next_scan;
        if (f->leader.next_due_ms < wake)
            wake = f->leader.next_due_ms;
        for (size_t i = 0; i < f->n_jobs; i++)
            if (f->jobs[i]->next_at < wake)
                wake = f->jobs[i]->next_at;
        if (wake > now)
            aw_clock_sleep_ms(wake - now < tick ? wake - now : tick, stop);
    }
    abandon_all(f, "stopping");
    if (f->was_held || f->leader.held) {
        if (aw_store_lease_release(f->store, f->leader.token) == AW_OK)
            AW_LOG_INFO(MOD, "leader lease released", "epoch=%" PRIu64, f->leader.epoch);
        else
            AW_LOG_WARN(MOD, "cannot release the lease (it expires by itself)", "detail=\"%s\"",
                        aw_store_errstr(f->store));
    }
    aw_leader_drop(&f->leader, now_ms());
    f->was_held = false;
    aw_metrics_set(AW_M_LEADER, 0);
    if (aw_dlq_pending(f->dlq) > 0)
        (void)aw_dlq_wait(f->dlq, DLQ_TIMEOUT_MS);
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
    abandon_all(f, "freeing");
    free(f->jobs);
    for (size_t i = 0; i < f->n_accts; i++) {
        free(f->accts[i].id);
        free_secret(f->accts[i].api_key);
    }
    free(f->accts);
    id_cache_clear(&f->ids);
    aw_dlq_free(f->dlq);
    aw_ratelimit_free(f->rl);
    aw_klaviyo_free(f->k);
    aw_store_free(f->store);
    free(f->extra);
    free(f);
}

struct aw_flusher *aw_flusher_start(const struct aw_settings *s,
                                    const struct aw_account_config *accounts,
                                    const atomic_int *stop, char *errbuf, size_t errlen)
{
    struct aw_flusher *f = aw_calloc(1, sizeof *f);
    f->s = s;
    f->accounts = accounts;
    f->stop = stop;
    char err[512];
    struct aw_store_config sc;
    aw_store_config_from_settings(s, &sc);
    f->store = aw_store_new(&sc, err, sizeof err);
    if (!f->store) {
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
    f->k = aw_klaviyo_new(&kc, err, sizeof err);
    if (!f->k) {
        snprintf(errbuf, errlen, "flusher klaviyo client: %s", err);
        goto fail;
    }
    f->rl = aw_ratelimit_new(RATE_SCALE_PCT);
    size_t n_extra = s->kafka.extra.n_entries;
    f->extra = aw_calloc(2 * n_extra + 1, sizeof *f->extra);
    for (size_t i = 0; i < n_extra; i++) {
        f->extra[2 * i] = s->kafka.extra.entries[i].key;
        f->extra[2 * i + 1] = s->kafka.extra.entries[i].value;
    }
    f->dlq = aw_dlq_new(s->kafka.brokers, s->kafka.dlq_topic, f->extra, n_extra,
                        s->process.instance_id, err, sizeof err);
    if (!f->dlq) {
        snprintf(errbuf, errlen, "flusher dead-letter producer: %s", err);
        goto fail;
    }
    aw_leader_init(&f->leader, s->leader.lease_ttl_ms);
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
