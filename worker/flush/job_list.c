/* job_list.c -- an audience stream's list: the connection's listId, the one found or created by
 * name earlier, else found by name, else created -- only for adds, and never twice (see job.c). */
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
    aw_job_after_list(j);
}

void aw_job_step_list(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    if (!j->list_id && j->t.list_id && j->t.list_id[0]) {
        j->list_id = aw_strdup(j->t.list_id);
        j->list_auto = false;
    } else if (!j->list_id && j->t.klaviyo_list_id && j->t.klaviyo_list_id[0] && !j->relist) {
        j->list_id = aw_strdup(j->t.klaviyo_list_id);
        j->list_auto = true;
    }
    if (j->list_id) {
        aw_job_after_list(j);
        return;
    }
    const char *name = j->t.name;
    char *filter = NULL;
    if (!name || !name[0] || aw_build_list_name_filter(name, &filter) != AW_OK) {
        aw_job_drop_list_work(ctx, j, name && name[0] ? "invalid_list_name" : "no_list_name", NULL);
        aw_job_after_list(j);
        return;
    }
    char *path = NULL;
    struct aw_api_query q = {.filter = filter};
    enum aw_err pe = aw_api_path_build(AW_API_GET_LISTS, NULL, &q, &path);
    free(filter);
    if (pe != AW_OK) {
        aw_job_drop_list_work(ctx, j, "invalid_list_name", NULL);
        aw_job_after_list(j);
        return;
    }
    struct aw_klaviyo_response r;
    if (aw_job_send(ctx, j, &j->run, AW_API_GET_LISTS, path, NULL, &r) == SENT &&
        !aw_job_handle_common(ctx, j, &j->run, "list_find", &r)) {
        struct aw_parse_page page;
        memset(&page, 0, sizeof page);
        if (r.action != AW_KLAVIYO_DONE) {
            aw_job_drop_list_work(ctx, j, "klaviyo_list_lookup_rejected", &r);
            aw_job_after_list(j);
        } else if (aw_parse_lists_page(r.body, r.body_len, &page) != AW_OK) {
            aw_job_retry_later(j, &j->run, "list_find", "unexpected response body");
        } else {
            const char *found = NULL;
            for (size_t i = 0; i < page.n && !found; i++)
                if (page.items[i].value && strcmp(page.items[i].value, name) == 0)
                    found = page.items[i].id;
            if (found) {
                set_list(ctx, j, found);
                AW_LOG_INFO(MOD, "list found by name", "account=%s audience=%s list=%s", j->acct_id,
                            j->aud_id, found);
                aw_job_after_list(j);
            } else if (aw_job_live(j, CAT_ADD) == 0) {
                removals_without_list(j);
            } else {
                j->phase = PH_LIST_CREATE;
                j->run.next_at = aw_job_now_ms();
            }
        }
        aw_parse_page_clear(&page);
    }
    aw_klaviyo_response_clear(&r);
    free(path);
}

void aw_job_step_list_create(struct aw_flush_ctx *ctx, struct aw_flush_job *j)
{
    const char *name = j->t.name;
    char *body = NULL;
    if (!name || !name[0] || aw_build_create_list(name, &body) != AW_OK) {
        aw_job_drop_list_work(ctx, j, name && name[0] ? "invalid_list_name" : "no_list_name", NULL);
        aw_job_after_list(j);
        return;
    }
    int64_t count = 0;
    enum aw_err e =
        aw_store_account_count_list_create(ctx->store, j->acct_id, aw_clock_unix_ms(), 1, &count);
    uint32_t daily = aw_api_get(AW_API_CREATE_LIST)->daily;
    if (e != AW_OK) {
        aw_job_retry_later(j, &j->run, "list_create_count", aw_store_errstr(ctx->store));
    } else if (count > (int64_t)daily) {
        AW_LOG_WARN(MOD, "daily list creation limit reached; waiting",
                    "account=%s audience=%s limit=%u", j->acct_id, j->aud_id, (unsigned)daily);
        j->run.next_at = aw_job_now_ms() + 3600000u; /* the counter is per UTC day */
    } else {
        struct aw_klaviyo_response r;
        char *path = NULL;
        enum aw_err pe = aw_api_path_build(AW_API_CREATE_LIST, NULL, NULL, &path);
        AW_ASSERT(pe == AW_OK); /* fixed template */
        enum sent sent = aw_job_send(ctx, j, &j->run, AW_API_CREATE_LIST, path, body, &r);
        free(path);
        if (sent != SENT) {
            /* Not sent (rate limit, pause, lease): give the day's slot back. A failure here
             * only over-counts, the safe direction. */
            int64_t ignored;
            if (aw_store_account_count_list_create(ctx->store, j->acct_id, aw_clock_unix_ms(), -1,
                                                   &ignored) != AW_OK)
                aw_metrics_add(AW_M_STORE_ERRORS, 1);
        } else if (aw_job_handle_common(ctx, j, &j->run, "list_create", &r)) {
            /* Retried later: the request may have been applied although its answer was lost
             * (Klaviyo allows two lists of one name), so look it up by name first. */
            if (r.action == AW_KLAVIYO_RETRY)
                j->phase = PH_LIST;
        } else {
            char *id = NULL;
            if (r.action == AW_KLAVIYO_CONFLICT) {
                j->phase = PH_LIST; /* created meanwhile: find it */
                j->run.next_at = aw_job_now_ms();
            } else if (r.action != AW_KLAVIYO_DONE) {
                aw_job_drop_list_work(ctx, j, "klaviyo_list_create_rejected", &r);
                aw_job_after_list(j);
            } else if (aw_parse_resource_id(r.body, r.body_len, "list", &id) != AW_OK) {
                j->phase = PH_LIST; /* created, but which id? find it by name */
                aw_job_retry_later(j, &j->run, "list_create", "unexpected response body");
            } else {
                set_list(ctx, j, id);
                AW_LOG_INFO(MOD, "list created", "account=%s audience=%s list=%s", j->acct_id,
                            j->aud_id, id);
                aw_job_after_list(j);
            }
            free(id);
        }
        aw_klaviyo_response_clear(&r);
    }
    free(body);
}
