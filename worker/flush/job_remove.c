/* job_remove.c -- removals from an audience's list: profile ids from the Redis cache, else
 * looked up by email, then list relationships deleted (see job.c). */
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

/* The removals to look up next: live, not looked up, not claimed by a lookup on the wire. */
static size_t lookup_candidates(const struct aw_flush_job *j, size_t *items, const char **emails)
{
    size_t ne = 0;
    const size_t *del = j->cat[CAT_DEL];
    for (size_t k = 0; k < j->ncat[CAT_DEL]; k++) {
        size_t i = del[k];
        if (j->gone[i] || j->looked_up[i] || j->claimed[i])
            continue;
        items[ne] = i;
        emails[ne++] = j->t.entries[i].email;
    }
    return ne;
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

/* Looks up (by email) the profile ids of up to a page of removals. Several lanes may run this
 * step of one job at once (aw_flush_job_fans_out): each claims the emails it sends, and the job
 * moves on to the deletes once none is left and none is on the wire. */
void aw_job_step_lookup(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    if (!j->cache_checked) {
        lookup_cached(ctx, j);
        j->cache_checked = true;
    }
    const size_t *del = j->cat[CAT_DEL];
    size_t nd = j->ncat[CAT_DEL];
    const char **emails = aw_calloc(nd ? nd : 1, sizeof *emails);
    size_t *items = aw_calloc(nd ? nd : 1, sizeof *items);
    size_t ne = lookup_candidates(j, items, emails);
    if (ne == 0) {
        free(emails);
        free(items);
        j->next_at = aw_job_now_ms();
        if (j->fanned_in_flight > 0)
            return; /* another lane's lookup is on the wire: its end steps the job again */
        j->n_rm = 0;
        for (size_t k = 0; k < nd; k++)
            if (!j->gone[del[k]] && j->del_id[del[k]])
                j->rm[j->n_rm++] = del[k];
        j->phase = PH_REMOVE;
        j->pos = 0;
        return;
    }
    char *filter = NULL;
    size_t consumed = 0;
    enum aw_err e = aw_build_email_filter(emails, ne, j->split_limit, 0, &filter, &consumed);
    free(emails);
    char *path = NULL;
    if (e == AW_OK && consumed > 0) {
        struct aw_api_query q = {.filter = filter,
                                 .page_size = aw_api_get(AW_API_GET_PROFILES)->page_size_max};
        e = aw_api_path_build(AW_API_GET_PROFILES, NULL, &q, &path);
    }
    free(filter);
    if (e != AW_OK || consumed == 0) {
        aw_job_dead_letter(ctx, j, items[0], "unsendable", NULL, NULL, NULL);
        free(items);
        free(path);
        j->next_at = aw_job_now_ms();
        return;
    }
    for (size_t k = 0; k < consumed; k++)
        j->claimed[items[k]] = true;
    j->fanned_in_flight++;
    struct aw_klaviyo_response r;
    enum sent sent = aw_job_send(ctx, j, AW_API_GET_PROFILES, path, NULL, &r);
    j->fanned_in_flight--;
    for (size_t k = 0; k < consumed; k++)
        j->claimed[items[k]] = false;
    if (sent == SENT && !aw_job_handle_common(ctx, j, "profile_lookup", &r)) {
        struct aw_parse_page page;
        memset(&page, 0, sizeof page);
        j->next_at = aw_job_now_ms();
        if (r.action != AW_KLAVIYO_DONE && aw_job_split(j, consumed, &r)) {
            /* a lookup refused whole: the next ones carry half as many emails */
        } else if (r.action != AW_KLAVIYO_DONE) {
            for (size_t k = 0; k < consumed; k++)
                aw_job_dead_letter(ctx, j, items[k], "klaviyo_lookup_rejected",
                                   aw_job_err_field(&r, 0), aw_job_err_field(&r, 1),
                                   aw_job_err_field(&r, 2));
            j->split_limit = 0;
        } else if (aw_parse_profiles_page(r.body, r.body_len, &page) != AW_OK) {
            aw_job_retry_later(j, "profile_lookup", "unexpected response body");
        } else {
            j->split_limit = 0;
            lookup_answered(ctx, j, items, consumed, &page);
        }
        aw_parse_page_clear(&page);
    }
    aw_klaviyo_response_clear(&r);
    free(items);
    free(path);
}

/* Deletes up to a request's worth of looked-up removals from the list. Like the lookups, several
 * lanes may run this step of one job at once (disjoint claimed items; deletes of one batch
 * commute); the job moves on once none is left and none is on the wire. */
void aw_job_step_remove(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    size_t *items = aw_calloc(j->n_rm ? j->n_rm : 1, sizeof *items);
    size_t m = 0;
    for (size_t k = 0; k < j->n_rm; k++)
        if (!j->gone[j->rm[k]] && !j->removed[j->rm[k]] && !j->claimed[j->rm[k]])
            items[m++] = j->rm[k];
    if (m == 0) {
        free(items);
        j->next_at = aw_job_now_ms();
        if (j->fanned_in_flight == 0)
            aw_job_next_stage(j, CAT_DEL + 1);
        return; /* else another lane's delete is on the wire: its end steps the job again */
    }
    const char **ids = aw_calloc(m, sizeof *ids);
    for (size_t k = 0; k < m; k++)
        ids[k] = j->del_id[items[k]];
    char *body = NULL;
    size_t consumed = 0;
    enum aw_err e = aw_build_list_members(ids, m, j->split_limit, &body, &consumed);
    free(ids);
    char *path = NULL;
    if (e == AW_OK && consumed > 0)
        e = aw_api_path_build(AW_API_LIST_REMOVE_PROFILES, j->list_id, NULL, &path);
    if (e != AW_OK || consumed == 0) {
        aw_job_dead_letter(ctx, j, items[0], "unsendable", NULL, NULL, NULL);
        free(items);
        free(path);
        free(body);
        j->next_at = aw_job_now_ms();
        return;
    }
    for (size_t k = 0; k < consumed; k++)
        j->claimed[items[k]] = true;
    j->fanned_in_flight++;
    struct aw_klaviyo_response r;
    enum sent sent = aw_job_send(ctx, j, AW_API_LIST_REMOVE_PROFILES, path, body, &r);
    j->fanned_in_flight--;
    for (size_t k = 0; k < consumed; k++)
        j->claimed[items[k]] = false;
    if (sent == SENT && !aw_job_handle_common(ctx, j, "remove", &r)) {
        j->next_at = aw_job_now_ms();
        if (r.action == AW_KLAVIYO_DONE) {
            j->split_limit = 0;
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
            (void)aw_job_refuse_items(ctx, j, items, consumed, &r); /* dead letters are gone */
        }
    }
    aw_klaviyo_response_clear(&r);
    free(items);
    free(path);
    free(body);
}
