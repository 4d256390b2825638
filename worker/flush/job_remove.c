/* job_remove.c -- removals from an audience's list: profile ids from the Redis cache, else
 * looked up by email, and list relationships deleted as the ids come in (see job.c). */
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
#include "worker/klaviyo/parse.h"
#include "worker/ops/metrics.h"
#include "worker/settings.h"
#include "worker/store/account_ops.h"
#include "worker/store/flush_ops.h"
#include "worker/store/store.h"

#define MOD "flush"

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

/* What a removal batch can send next (its entries in j->cat[CAT_DEL]): emails to look up (live,
 * not looked up, not claimed by a request on the wire) and ids to delete from the list (looked
 * up and found, not deleted, not claimed). *unresolved: entries not looked up yet, claimed or
 * not. */
struct removal_work {
    size_t *look;
    const char **emails;
    size_t n_look;
    size_t *del;
    size_t n_del;
    size_t unresolved;
};

/* Requests w's counts make: lookups of a page each; full deletes while lookups remain, then the
 * rest. partial: w counts only some entries, so treat lookups as remaining (a lower bound). */
static size_t removal_requests(const struct removal_work *w, bool partial)
{
    size_t page = aw_api_get(AW_API_GET_PROFILES)->filter_max_values;
    size_t del_max = aw_api_get(AW_API_LIST_REMOVE_PROFILES)->max_items;
    return (w->n_look + page - 1) / page +
           (partial || w->unresolved ? w->n_del / del_max : (w->n_del + del_max - 1) / del_max);
}

/* Fills *w; with list false only counts (w's arrays stay NULL: nothing allocated), and stops
 * once the requests counted reach most (it runs on every dispatch). */
static void removal_work(const struct aw_flush_job *j, bool list, size_t most,
                         struct removal_work *w)
{
    size_t nd = j->ncat[CAT_DEL];
    memset(w, 0, sizeof *w);
    if (list) {
        w->look = aw_calloc(nd ? nd : 1, sizeof *w->look);
        w->emails = aw_calloc(nd ? nd : 1, sizeof *w->emails);
        w->del = aw_calloc(nd ? nd : 1, sizeof *w->del);
    }
    for (size_t k = 0; k < nd; k++) {
        size_t i = j->cat[CAT_DEL][k];
        if (j->gone[i])
            continue;
        if (!j->looked_up[i]) {
            w->unresolved++;
            if (!j->claimed[i]) {
                if (list) {
                    w->look[w->n_look] = i;
                    w->emails[w->n_look] = j->t.entries[i].email;
                }
                w->n_look++;
            }
        } else if (j->del_id[i] && !j->removed[i] && !j->claimed[i]) {
            if (list)
                w->del[w->n_del] = i;
            w->n_del++;
        }
        if (!list && removal_requests(w, true) >= most)
            return;
    }
}

static void removal_work_free(struct removal_work *w)
{
    free(w->look);
    free(w->emails);
    free(w->del);
}

/* Deletes go out full (the endpoint's most ids a request) while lookups remain; the rest once
 * every email is looked up. */
static bool delete_next(const struct removal_work *w)
{
    return w->n_del >= aw_api_get(AW_API_LIST_REMOVE_PROFILES)->max_items ||
           (w->n_del > 0 && w->unresolved == 0);
}

size_t aw_job_removal_fan_out(const struct aw_flush_job *j, size_t most)
{
    struct removal_work w;
    removal_work(j, false, most, &w);
    size_t n = removal_requests(&w, false);
    return n < most ? n : most;
}

/* One lookup's answer for items[0..n): ids recorded (and cached), the rest not found. */
static void lookup_answered(struct aw_flush_ctx *ctx, struct aw_flush_job *j, const size_t *items,
                            size_t n, const struct aw_parse_page *page)
{
    const char **emails = aw_calloc(n ? n : 1, sizeof *emails);
    const char **ids = aw_calloc(n ? n : 1, sizeof *ids);
    size_t found = 0;
    for (size_t p = 0; p < page->n; p++) {
        if (!page->items[p].value)
            continue;
        for (size_t k = 0; k < n; k++) {
            size_t i = items[k];
            const char *email = j->t.entries[i].email;
            if (strcasecmp(email, page->items[p].value) == 0 && !j->del_id[i]) {
                j->del_id[i] = aw_strdup(page->items[p].id);
                emails[found] = email;
                ids[found++] = j->del_id[i];
            }
        }
    }
    if (found && aw_store_profile_ids_set(ctx->store, j->acct_id, emails, ids, found) != AW_OK)
        aw_metrics_add(AW_M_STORE_ERRORS, 1); /* only the cache: the ids are in hand */
    free(emails);
    free(ids);
    for (size_t k = 0; k < n; k++) {
        size_t i = items[k];
        j->looked_up[i] = true;
        if (!j->del_id[i])
            j->n_not_found++; /* no such profile: not in the list either, done */
    }
}

/* aw_job_send with items[0..n) claimed while the request is on the wire (other lanes running
 * this job's removals leave them alone). */
static enum sent send_claimed(struct aw_flush_ctx *ctx, struct aw_flush_job *j,
                              struct aw_job_track *t, enum aw_api_endpoint ep, const char *path,
                              const char *body, const size_t *items, size_t n,
                              struct aw_klaviyo_response *r)
{
    for (size_t k = 0; k < n; k++)
        j->claimed[items[k]] = true;
    j->fanned_in_flight++;
    enum sent sent = aw_job_send(ctx, j, t, ep, path, body, r);
    j->fanned_in_flight--;
    for (size_t k = 0; k < n; k++)
        j->claimed[items[k]] = false;
    return sent;
}

/* One lookup of up to a page of emails (items[0..n) the candidates). */
static void send_lookup(struct aw_flush_ctx *ctx, struct aw_flush_job *j, struct aw_job_track *t,
                        const size_t *items, const char **emails, size_t n)
{
    char *filter = NULL;
    size_t consumed = 0;
    enum aw_err e = aw_build_email_filter(emails, n, t->split_limit, 0, &filter, &consumed);
    char *path = NULL;
    if (e == AW_OK && consumed > 0) {
        struct aw_api_query q = {.filter = filter,
                                 .page_size = aw_api_get(AW_API_GET_PROFILES)->page_size_max};
        e = aw_api_path_build(AW_API_GET_PROFILES, NULL, &q, &path);
    }
    free(filter);
    if (e != AW_OK || consumed == 0) {
        aw_job_dead_letter(ctx, j, items[0], "unsendable", NULL, NULL, NULL);
        free(path);
        t->next_at = aw_job_now_ms();
        return;
    }
    struct aw_klaviyo_response r;
    enum sent sent = send_claimed(ctx, j, t, AW_API_GET_PROFILES, path, NULL, items, consumed, &r);
    if (sent == SENT && !aw_job_handle_common(ctx, j, t, "profile_lookup", &r)) {
        struct aw_parse_page page;
        memset(&page, 0, sizeof page);
        t->next_at = aw_job_now_ms();
        if (r.action != AW_KLAVIYO_DONE && aw_job_split(j, t, CAT_DEL, consumed, &r)) {
            /* a lookup refused whole: the next ones carry half as many emails */
        } else if (r.action != AW_KLAVIYO_DONE) {
            for (size_t k = 0; k < consumed; k++)
                aw_job_dead_letter(ctx, j, items[k], "klaviyo_lookup_rejected",
                                   aw_job_err_field(&r, 0), aw_job_err_field(&r, 1),
                                   aw_job_err_field(&r, 2));
            t->split_limit = 0;
        } else if (aw_parse_profiles_page(r.body, r.body_len, &page) != AW_OK) {
            aw_job_retry_later(j, t, "profile_lookup", "unexpected response body");
        } else {
            t->split_limit = 0;
            lookup_answered(ctx, j, items, consumed, &page);
        }
        aw_parse_page_clear(&page);
    }
    aw_klaviyo_response_clear(&r);
    free(path);
}

/* One delete of list relationships (items[0..n) the candidates, ids known). */
static void send_delete(struct aw_flush_ctx *ctx, struct aw_flush_job *j, struct aw_job_track *t,
                        const size_t *items, size_t n)
{
    const char **ids = aw_calloc(n, sizeof *ids);
    for (size_t k = 0; k < n; k++)
        ids[k] = j->del_id[items[k]];
    char *body = NULL;
    size_t consumed = 0;
    enum aw_err e = aw_build_list_members(ids, n, t->split_limit, &body, &consumed);
    free(ids);
    char *path = NULL;
    if (e == AW_OK && consumed > 0)
        e = aw_api_path_build(AW_API_LIST_REMOVE_PROFILES, j->list_id, NULL, &path);
    if (e != AW_OK || consumed == 0) {
        aw_job_dead_letter(ctx, j, items[0], "unsendable", NULL, NULL, NULL);
        free(path);
        free(body);
        t->next_at = aw_job_now_ms();
        return;
    }
    struct aw_klaviyo_response r;
    enum sent sent =
        send_claimed(ctx, j, t, AW_API_LIST_REMOVE_PROFILES, path, body, items, consumed, &r);
    if (sent == SENT && !aw_job_handle_common(ctx, j, t, "remove", &r)) {
        t->next_at = aw_job_now_ms();
        if (r.action == AW_KLAVIYO_DONE) {
            t->split_limit = 0;
            aw_metrics_add(AW_M_PROFILES_REMOVED, consumed);
            j->n_removed += consumed;
            for (size_t k = 0; k < consumed; k++)
                j->removed[items[k]] = true;
        } else if (r.action == AW_KLAVIYO_NOT_FOUND) {
            /* no such list: nobody is a member of it, so the removal holds */
            if (j->list_auto)
                (void)aw_store_audience_list_set(ctx->store, j->acct_id, j->aud_id, NULL);
            j->n_not_found += consumed;
            for (size_t k = 0; k < consumed; k++)
                j->removed[items[k]] = true;
        } else {
            (void)aw_job_refuse_items(ctx, j, t, CAT_DEL, items, consumed,
                                      &r); /* dead letters are gone */
        }
    }
    aw_klaviyo_response_clear(&r);
    free(path);
    free(body);
}

/* One request of a removal batch: a full delete when one is ready and its rate limit lets it go
 * now, else a lookup, else the rest of the deletes once every email is looked up. Several lanes may
 * run this step of one job at once (aw_flush_job_fan_out): each claims the emails or ids it sends
 * (lookups are reads, and deletes of one batch commute), and the batch moves on once nothing is
 * left and nothing is on the wire. side: run on the job's side track while its imports go on
 * (aw_flush_job_step); the batch's own removal stage (PH_REMOVALS) later finishes what is left and
 * moves on. */
void aw_job_step_removals(struct aw_flush_ctx *ctx, struct aw_flush_job *j, struct aw_job_track *t,
                          bool side)
{
    if (!j->cache_checked) {
        lookup_cached(ctx, j);
        j->cache_checked = true;
    }
    struct removal_work w;
    removal_work(j, true, SIZE_MAX, &w);
    /* Deletes (9/s) and lookups (67/s) have their own slots: the one whose slot is free goes,
     * and when neither is, the job waits for the sooner of the two (a job that waited out the
     * delete's turn left lookups idle, and one that waited out the lookups' window left a
     * ready delete idle). aw_job_send asks the limiter again and handles the rest (lease,
     * pause, key). */
    bool del = delete_next(&w);
    uint64_t now = aw_job_now_ms();
    uint64_t dw =
        del ? aw_ratelimit_wait(ctx->rl, j->acct_id, AW_API_LIST_REMOVE_PROFILES, now) : UINT64_MAX;
    uint64_t lw = w.n_look > 0 ? aw_ratelimit_wait(ctx->rl, j->acct_id, AW_API_GET_PROFILES, now)
                               : UINT64_MAX;
    if (del && (dw == 0 || lw == UINT64_MAX)) {
        send_delete(ctx, j, t, w.del, w.n_del);
    } else if (w.n_look > 0 && (lw == 0 || !del)) {
        send_lookup(ctx, j, t, w.look, w.emails, w.n_look);
    } else if (del) {
        t->next_at = now + (dw < lw ? dw : lw); /* both wait */
    } else if (!side) {
        t->next_at = aw_job_now_ms();
        /* else another lane's request is on the wire: its end steps the job again */
        if (j->fanned_in_flight == 0)
            aw_job_next_stage(j, CAT_DEL + 1);
    }
    removal_work_free(&w);
}
