/* accounts.c -- the flusher's accounts: keys, Retry-After blocks, pauses (see accounts.h). */
#include "worker/flush/accounts.h"

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/flush/context.h"
#include "worker/flush/ratelimit.h"
#include "worker/ingest/account.h"
#include "worker/ingest/config_file.h"
#include "worker/ops/metrics.h"
#include "worker/store/account_ops.h"
#include "worker/store/store.h"

#define MOD "flush"

struct aw_flush_accounts {
    struct aw_flush_account **v;
    size_t n, cap;
    size_t n_paused;
};

static void free_secret(char *p)
{
    if (p) {
        memset(p, 0, strlen(p));
        free(p);
    }
}

struct aw_flush_accounts *aw_flush_accounts_new(void)
{
    return aw_calloc(1, sizeof(struct aw_flush_accounts));
}

void aw_flush_accounts_free(struct aw_flush_accounts *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->v[i]->id);
        free_secret(a->v[i]->api_key);
        aw_parse_import_jobs_clear(&a->v[i]->board.jobs);
        free(a->v[i]);
    }
    free(a->v);
    free(a);
}

struct aw_flush_account *aw_flush_accounts_get(struct aw_flush_accounts *a, const char *id)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i]->id, id) == 0)
            return a->v[i];
    aw_grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v);
    struct aw_flush_account *acc = aw_calloc(1, sizeof *acc);
    acc->id = aw_strdup(id);
    a->v[a->n++] = acc;
    return acc;
}

void aw_flush_accounts_trim_boards(struct aw_flush_accounts *a, uint64_t now_ms, uint64_t keep_ms)
{
    for (size_t i = 0; i < a->n; i++) {
        struct aw_flush_job_board *b = &a->v[i]->board;
        if (b->sent_ms && b->sent_ms + keep_ms < now_ms) {
            aw_parse_import_jobs_clear(&b->jobs);
            b->sent_ms = 0; /* no listing: a job sends a new one rather than miss itself here */
        }
    }
}

void aw_flush_accounts_unload(struct aw_flush_accounts *a)
{
    for (size_t i = 0; i < a->n; i++)
        a->v[i]->loaded = false;
}

size_t aw_flush_accounts_paused(const struct aw_flush_accounts *a)
{
    return a->n_paused;
}

bool aw_flush_account_is_paused(const struct aw_flush_account *acc, uint64_t now_ms)
{
    return acc->operator_paused || (acc->paused && acc->paused_until > now_ms);
}

/* Recounts the paused accounts (either way) into the gauge. */
static void paused_metric(struct aw_flush_accounts *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->n; i++)
        n += a->v[i]->paused || a->v[i]->operator_paused;
    a->n_paused = n;
    aw_metrics_set(AW_M_ACCOUNTS_PAUSED, (int64_t)n);
}

void aw_flush_accounts_set_operator_paused(struct aw_flush_accounts *a, char *const *ids, size_t n)
{
    for (size_t k = 0; k < n; k++)
        aw_flush_accounts_get(a, ids[k])->operator_listed = true;
    for (size_t i = 0; i < a->n; i++) {
        struct aw_flush_account *acc = a->v[i];
        if (acc->operator_listed && !acc->operator_paused)
            AW_LOG_INFO(MOD, "account paused by an operator: no flushes, batches given back",
                        "account=%s", acc->id);
        else if (!acc->operator_listed && acc->operator_paused)
            AW_LOG_INFO(MOD, "account resumed by an operator", "account=%s", acc->id);
        acc->operator_paused = acc->operator_listed;
        acc->operator_listed = false;
    }
    paused_metric(a);
}

enum aw_err aw_flush_account_load(struct aw_flush_ctx *ctx, struct aw_flush_account *acc)
{
    if (acc->loaded)
        return AW_OK;
    char *key = NULL;
    if (ctx->config) {
        struct aw_account resolved;
        aw_account_resolve(aw_config_file_get(ctx->config, acc->id), acc->id, NULL, 0, &resolved);
        if (resolved.api_key)
            key = aw_strdup(resolved.api_key);
        aw_account_clear(&resolved);
    }
    char *stored = NULL;
    uint64_t block = 0;
    enum aw_err e = aw_store_account_get(ctx->store, acc->id, key ? NULL : &stored, &block);
    if (e != AW_OK) {
        free_secret(key);
        return e;
    }
    if (!key)
        key = stored;
    free_secret(acc->api_key);
    acc->api_key = key;
    uint64_t now_unix = aw_clock_unix_ms();
    if (block > now_unix)
        aw_ratelimit_block(ctx->rl, acc->id, aw_clock_mono_ms() + (block - now_unix));
    acc->loaded = true;
    return AW_OK;
}

void aw_flush_account_pause(struct aw_flush_ctx *ctx, struct aw_flush_account *acc, long status,
                            const char *reason)
{
    uint64_t now = aw_clock_mono_ms();
    acc->paused_until = now + AW_FLUSH_PAUSE_MS;
    acc->loaded = false; /* re-read the key: a new one may have arrived meanwhile */
    acc->pause_count++;
    if (!acc->paused) {
        acc->paused = true;
        paused_metric(ctx->accounts);
    }
    /* visible to `status` on every replica and to the next leader; a new key clears it */
    if (aw_store_account_pause(ctx->store, acc->id, aw_clock_unix_ms() + AW_FLUSH_PAUSE_MS,
                               status) != AW_OK)
        aw_metrics_add(AW_M_STORE_ERRORS, 1);
    if (acc->last_pause_log == 0 || now - acc->last_pause_log >= AW_FLUSH_PAUSE_MS) {
        AW_LOG_ERROR(MOD, "account paused: Klaviyo refused its API key (data kept)",
                     "account=%s status=%ld reason=%s refusals=%u retry_in_ms=%u", acc->id, status,
                     reason, acc->pause_count, AW_FLUSH_PAUSE_MS);
        acc->last_pause_log = now;
        acc->pause_count = 0;
    }
}

void aw_flush_account_resume(struct aw_flush_ctx *ctx, struct aw_flush_account *acc)
{
    if (!acc->paused)
        return;
    acc->paused = false;
    acc->paused_until = 0;
    acc->last_pause_log = 0;
    paused_metric(ctx->accounts);
    if (aw_store_account_unpause(ctx->store, acc->id) != AW_OK)
        aw_metrics_add(AW_M_STORE_ERRORS, 1);
    AW_LOG_INFO(MOD, "account resumed", "account=%s", acc->id);
}

bool aw_flush_account_check_pause(struct aw_flush_ctx *ctx, struct aw_flush_account *acc,
                                  uint64_t now_ms)
{
    if (!aw_flush_account_is_paused(acc, now_ms))
        return false;
    if (acc->operator_paused)
        return true; /* the scan reads those from Redis: only `aw-worker resume` ends them */
    uint64_t until = 0;
    long status = 0;
    if (aw_store_account_paused(ctx->store, acc->id, &until, &status) != AW_OK)
        return true;
    if (until != 0)
        return true;
    /* cleared in Redis: a new key arrived (or another leader resumed it): try at once */
    AW_LOG_INFO(MOD, "account pause cleared (new API key?): trying again", "account=%s", acc->id);
    acc->paused_until = now_ms;
    acc->loaded = false;
    return false;
}
