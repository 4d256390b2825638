/* admin_status.c -- `aw-worker status [--json] [--watch [SECONDS]]` (see admin.c's help): a
 * snapshot of Redis (the lease, operator and Klaviyo pauses, every stream's counts; pipelined:
 * a few round trips plus one per 1,000 streams, whatever the number of accounts), printed as
 * logfmt lines or JSON, and with --watch redrawn with each stream's drain rate and the time left
 * at that rate. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/ops/admin_internal.h"
#include "worker/settings.h"
#include "worker/store/account_ops.h"
#include "worker/store/lease.h"
#include "worker/store/status.h"
#include "worker/store/store.h"

struct row {
    const char *acct; /* borrowed from the snapshot's account */
    char *aud;        /* owned; NULL: the profile stream */
    struct aw_store_stream_info in;
    bool has_rate;
    double rate; /* changes/s drained since the previous frame (negative: growing) */
};

struct account {
    char *id;
    bool op_paused;
    uint64_t op_since_ms;
    uint64_t k_until_ms; /* Klaviyo's pause, 0 when none */
    long k_status;
};

struct snapshot {
    uint64_t now_ms; /* unix */
    int64_t ttl_ms;
    uint64_t epoch;
    char *holder; /* AW_INSTANCE_ID of the lease holder, or NULL */
    struct account *accts;
    size_t n_accts;
    struct row *rows;
    size_t n_rows;
};

static void snapshot_clear(struct snapshot *sn)
{
    for (size_t i = 0; i < sn->n_accts; i++)
        free(sn->accts[i].id);
    for (size_t i = 0; i < sn->n_rows; i++) {
        free(sn->rows[i].aud);
        aw_store_stream_info_clear(&sn->rows[i].in);
    }
    free(sn->accts);
    free(sn->rows);
    free(sn->holder);
    memset(sn, 0, sizeof *sn);
}

/* Every account's audiences and Klaviyo pause (one pipeline), then every stream (pipelines of
 * up to 1,000 streams): audiences sorted, then the profile stream, account by account. */
static enum aw_err read_streams(struct aw_store *st, struct snapshot *sn)
{
    const char **ids = aw_calloc(sn->n_accts + 1, sizeof *ids);
    for (size_t k = 0; k < sn->n_accts; k++)
        ids[k] = sn->accts[k].id;
    struct aw_store_account_view *v = aw_calloc(sn->n_accts + 1, sizeof *v);
    enum aw_err e = aw_store_accounts_view(st, ids, sn->n_accts, v);
    size_t n = 0;
    for (size_t k = 0; k < sn->n_accts && e == AW_OK; k++) {
        struct account *a = &sn->accts[k];
        a->k_until_ms = v[k].paused_until_ms > sn->now_ms ? v[k].paused_until_ms : 0;
        a->k_status = v[k].paused_status;
        n += v[k].n_audiences + 1;
    }
    struct aw_store_stream_ref *refs = aw_calloc(n + 1, sizeof *refs);
    sn->rows = aw_calloc(n + 1, sizeof *sn->rows);
    for (size_t k = 0; k < sn->n_accts && e == AW_OK; k++)
        for (size_t i = 0; i <= v[k].n_audiences; i++) {
            struct row *r = &sn->rows[sn->n_rows];
            r->acct = sn->accts[k].id;
            r->aud = i < v[k].n_audiences ? aw_strdup(v[k].audiences[i]) : NULL;
            refs[sn->n_rows++] = (struct aw_store_stream_ref){r->acct, r->aud};
        }
    struct aw_store_stream_info *in = aw_calloc(n + 1, sizeof *in);
    if (e == AW_OK)
        e = aw_store_streams_info(st, refs, sn->n_rows, in);
    for (size_t i = 0; i < sn->n_rows && e == AW_OK; i++)
        sn->rows[i].in = in[i];
    for (size_t k = 0; k < sn->n_accts; k++)
        aw_store_account_view_clear(&v[k]);
    free(in);
    free(refs);
    free(v);
    free(ids);
    return e;
}

static enum aw_err read_snapshot(struct aw_store *st, struct snapshot *sn)
{
    memset(sn, 0, sizeof *sn);
    sn->now_ms = aw_clock_unix_ms();
    char **accts = NULL, **paused = NULL;
    uint64_t *since = NULL;
    size_t n = 0, np = 0;
    if (aw_store_lease_info(st, &sn->ttl_ms, &sn->epoch, &sn->holder) != AW_OK ||
        aw_store_accounts(st, &accts, &n) != AW_OK ||
        aw_store_operator_paused(st, &paused, &since, &np) != AW_OK) {
        aw_store_strings_free(accts, n);
        return AW_ERR_IO;
    }
    /* accounts seen, plus any an operator paused before its first data (both sorted) */
    sn->accts = aw_calloc(n + np + 1, sizeof *sn->accts);
    size_t i = 0, j = 0;
    while (i < n || j < np) {
        int c = i >= n ? 1 : j >= np ? -1 : strcmp(accts[i], paused[j]);
        struct account *a = &sn->accts[sn->n_accts++];
        a->id = aw_strdup(c <= 0 ? accts[i] : paused[j]);
        if (c >= 0) {
            a->op_paused = true;
            a->op_since_ms = since[j++];
        }
        if (c <= 0)
            i++;
    }
    aw_store_strings_free(accts, n);
    aw_store_strings_free(paused, np);
    free(since);
    return read_streams(st, sn);
}

/* ---- Drain rate ------------------------------------------------------------------------------ */

static int64_t backlog(const struct row *r)
{
    return (r->in.pending > 0 ? r->in.pending : 0) + (r->in.inflight > 0 ? r->in.inflight : 0);
}

static bool same_stream(const struct row *a, const struct row *b)
{
    return strcmp(a->acct, b->acct) == 0 &&
           ((!a->aud && !b->aud) || (a->aud && b->aud && strcmp(a->aud, b->aud) == 0));
}

/* Each stream's rate from the previous frame (same stream, dt > 0). */
static void rates(struct snapshot *cur, const struct snapshot *prev)
{
    double dt = prev ? (double)(cur->now_ms - prev->now_ms) / 1000.0 : 0;
    for (size_t i = 0; i < cur->n_rows && dt > 0; i++)
        for (size_t k = 0; k < prev->n_rows; k++)
            if (same_stream(&cur->rows[i], &prev->rows[k])) {
                cur->rows[i].has_rate = true;
                cur->rows[i].rate = (double)(backlog(&prev->rows[k]) - backlog(&cur->rows[i])) / dt;
                break;
            }
}

/* Seconds left at rate, or -1 when it does not drain. */
static int64_t eta_s(int64_t left, double rate)
{
    if (left == 0)
        return 0;
    return rate > 0 ? (int64_t)((double)left / rate + 0.999) : -1;
}

/* ---- Text ------------------------------------------------------------------------------------ */

static void print_account(const struct snapshot *sn, const struct account *a)
{
    if (a->op_paused)
        printf("account account=%s paused=true reason=operator since_ms=%llu\n", a->id,
               (unsigned long long)a->op_since_ms);
    if (a->k_until_ms)
        printf("account account=%s paused=true refused_status=%ld retry_in_s=%llu "
               "reason=klaviyo\n",
               a->id, a->k_status, (unsigned long long)((a->k_until_ms - sn->now_ms) / 1000u));
}

static void print_row(const struct snapshot *sn, const struct row *r, bool watch)
{
    const struct aw_store_stream_info *in = &r->in;
    char qname[300], due_in[32], last[24] = "never", oldest[24] = "none";
    if (in->due_unix_ms < 0)
        snprintf(due_in, sizeof due_in, "none");
    else if ((uint64_t)in->due_unix_ms <= sn->now_ms)
        snprintf(due_in, sizeof due_in, "now");
    else
        snprintf(due_in, sizeof due_in, "%llus",
                 (unsigned long long)(((uint64_t)in->due_unix_ms - sn->now_ms) / 1000u));
    if (in->last_upload_ms >= 0)
        snprintf(last, sizeof last, "%lld", (long long)in->last_upload_ms);
    if (in->pending > 0 && in->first_pending_ms >= 0)
        snprintf(oldest, sizeof oldest, "%lld", (long long)in->first_pending_ms);
    if (r->aud)
        printf("audience account=%s audience=%s name=%s state=%s pending=%lld inflight=%lld "
               "due=%s last_upload_ms=%s list_id=%s oldest_pending_ms=%s",
               r->acct, r->aud, aw_log_quote(qname, sizeof qname, in->name ? in->name : ""),
               in->state ? in->state : "active", (long long)in->pending, (long long)in->inflight,
               due_in, last,
               in->list_id           ? in->list_id
               : in->klaviyo_list_id ? in->klaviyo_list_id
                                     : "none",
               oldest);
    else
        printf("profiles account=%s pending=%lld inflight=%lld due=%s last_upload_ms=%s "
               "oldest_pending_ms=%s",
               r->acct, (long long)in->pending, (long long)in->inflight, due_in, last, oldest);
    if (watch && r->has_rate) {
        int64_t eta = eta_s(backlog(r), r->rate);
        printf(" rate_per_s=%.1f eta_s=", r->rate);
        if (eta < 0)
            printf("none");
        else
            printf("%lld", (long long)eta);
    }
    putchar('\n');
}

static void print_text(const struct snapshot *sn, bool watch)
{
    if (watch && isatty(STDOUT_FILENO))
        fputs("\033[H\033[2J", stdout); /* redraw in place on a terminal */
    printf("lease held=%s holder=%s ttl_ms=%lld epoch=%llu accounts=%zu\n",
           sn->ttl_ms >= 0 ? "true" : "false", sn->holder ? sn->holder : "none",
           (long long)(sn->ttl_ms >= 0 ? sn->ttl_ms : 0), (unsigned long long)sn->epoch,
           sn->n_accts);
    int64_t total = 0;
    double rate = 0;
    bool has_rate = false;
    for (size_t k = 0; k < sn->n_accts; k++) {
        print_account(sn, &sn->accts[k]);
        for (size_t i = 0; i < sn->n_rows; i++) {
            const struct row *r = &sn->rows[i];
            if (r->acct != sn->accts[k].id)
                continue;
            print_row(sn, r, watch);
            total += backlog(r);
            rate += r->rate;
            has_rate = has_rate || r->has_rate;
        }
    }
    if (watch) {
        printf("total time_ms=%llu backlog=%lld", (unsigned long long)sn->now_ms, (long long)total);
        if (has_rate) {
            int64_t eta = eta_s(total, rate);
            printf(" rate_per_s=%.1f eta_s=", rate);
            if (eta < 0)
                printf("none");
            else
                printf("%lld", (long long)eta);
        }
        printf("\n\n");
    }
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static json_t *opt_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

static void add_rate(json_t *o, bool has, double rate, int64_t left)
{
    if (!has)
        return;
    json_object_set_new(o, "rate_per_s", json_real(rate));
    json_object_set_new(o, "eta_s", aw_admin_json_opt_int(eta_s(left, rate)));
}

static json_t *row_json(const struct snapshot *sn, const struct row *r)
{
    const struct aw_store_stream_info *in = &r->in;
    json_t *o = json_object();
    if (r->aud) {
        json_object_set_new(o, "audience", json_string(r->aud));
        json_object_set_new(o, "name", opt_str(in->name));
        json_object_set_new(o, "state", json_string(in->state ? in->state : "active"));
        json_object_set_new(o, "list_id", opt_str(in->list_id ? in->list_id : in->klaviyo_list_id));
    }
    json_object_set_new(o, "pending", json_integer(in->pending));
    json_object_set_new(o, "inflight", json_integer(in->inflight));
    json_object_set_new(o, "oldest_pending_ms",
                        aw_admin_json_opt_int(in->pending > 0 ? in->first_pending_ms : -1));
    json_object_set_new(o, "due_ms", aw_admin_json_opt_int(in->due_unix_ms));
    json_object_set_new(
        o, "due_now",
        json_boolean(in->due_unix_ms >= 0 && (uint64_t)in->due_unix_ms <= sn->now_ms));
    json_object_set_new(o, "last_upload_ms", aw_admin_json_opt_int(in->last_upload_ms));
    add_rate(o, r->has_rate, r->rate, backlog(r));
    return o;
}

static json_t *account_json(const struct snapshot *sn, const struct account *a)
{
    json_t *pauses = json_array(), *auds = json_array(), *profiles = json_null();
    if (a->op_paused)
        json_array_append_new(pauses, json_pack("{s:s,s:I}", "reason", "operator", "since_ms",
                                                (json_int_t)a->op_since_ms));
    if (a->k_until_ms)
        json_array_append_new(pauses,
                              json_pack("{s:s,s:i,s:I}", "reason", "klaviyo", "refused_status",
                                        (int)a->k_status, "until_ms", (json_int_t)a->k_until_ms));
    for (size_t i = 0; i < sn->n_rows; i++) {
        const struct row *r = &sn->rows[i];
        if (r->acct != a->id)
            continue;
        if (r->aud)
            json_array_append_new(auds, row_json(sn, r));
        else {
            json_decref(profiles);
            profiles = row_json(sn, r);
        }
    }
    return json_pack("{s:s,s:b,s:o,s:o,s:o}", "account", a->id, "paused",
                     a->op_paused || a->k_until_ms, "pauses", pauses, "audiences", auds, "profiles",
                     profiles);
}

static int print_json(const struct snapshot *sn, bool watch)
{
    json_t *accts = json_array();
    int64_t total = 0;
    double rate = 0;
    bool has_rate = false;
    for (size_t k = 0; k < sn->n_accts; k++)
        json_array_append_new(accts, account_json(sn, &sn->accts[k]));
    for (size_t i = 0; i < sn->n_rows; i++) {
        total += backlog(&sn->rows[i]);
        rate += sn->rows[i].rate;
        has_rate = has_rate || sn->rows[i].has_rate;
    }
    json_t *totals = json_pack("{s:I}", "backlog", (json_int_t)total);
    add_rate(totals, watch && has_rate, rate, total);
    return aw_admin_print_json(json_pack(
        "{s:I,s:{s:b,s:o,s:I,s:I},s:o,s:o}", "time_ms", (json_int_t)sn->now_ms, "lease", "held",
        sn->ttl_ms >= 0, "holder", sn->holder ? json_string(sn->holder) : json_null(), "ttl_ms",
        (json_int_t)(sn->ttl_ms >= 0 ? sn->ttl_ms : 0), "epoch", (json_int_t)sn->epoch, "accounts",
        accts, "totals", totals));
}

/* ---- The command ----------------------------------------------------------------------------- */

static atomic_int watch_stop;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&watch_stop, 1);
}

int aw_admin_status(const struct aw_admin_cmd *cmd, const struct aw_admin_opts *o)
{
    (void)cmd;
    struct aw_settings s;
    int rc = aw_admin_settings(&s);
    if (rc != AW_ADMIN_EXIT_OK)
        return rc;
    struct aw_store *st = aw_admin_store(&s);
    if (!st) {
        aw_settings_free(&s);
        return AW_ADMIN_EXIT_FAIL;
    }
    if (o->watch) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    struct snapshot prev = {0}, cur;
    bool have_prev = false;
    for (long frame = 1;; frame++) {
        if (read_snapshot(st, &cur) != AW_OK) {
            rc = aw_admin_store_failed(st, "status");
            snapshot_clear(&cur);
            break;
        }
        rates(&cur, have_prev ? &prev : NULL);
        if (o->json)
            rc = print_json(&cur, o->watch);
        else
            print_text(&cur, o->watch);
        if (fflush(stdout) != 0)
            rc = AW_ADMIN_EXIT_FAIL;
        snapshot_clear(&prev);
        prev = cur;
        have_prev = true;
        if (rc != AW_ADMIN_EXIT_OK || !o->watch || (o->count && frame >= o->count))
            break;
        aw_clock_sleep_ms(o->watch_ms, &watch_stop);
        if (atomic_load(&watch_stop))
            break;
    }
    snapshot_clear(&prev);
    aw_store_free(st);
    aw_settings_free(&s);
    return rc;
}
