#include "worker/ingest/ingest.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/text.h"
#include "worker/ingest/account.h"
#include "worker/ingest/config_file.h"
#include "worker/ingest/connection.h"
#include "worker/ingest/consumer.h"
#include "worker/ingest/event.h"
#include "worker/ingest/map.h"
#include "worker/ops/deadletter.h"
#include "worker/ops/health.h"
#include "worker/ops/metrics.h"
#include "worker/store/account_ops.h"
#include "worker/store/change.h"
#include "worker/store/ingest_ops.h"
#include "worker/store/store.h"

/* What one record produced in the current batch. */
struct rec {
    size_t first_op; /* its operations are [first_op, first_op + n_ops) of the store batch */
    size_t n_ops;
    size_t n_dlq; /* dead-letter records produced for it */
    bool failed;  /* transient failure while preparing it: not done */
};

/* API keys already written to Redis (aw_store_account_put), so each account's key is written
 * once per process and again only when it changes. Holds a hash of the key, never the key. */
#define KEY_CACHE_MAX 1024
struct key_seen {
    char *account_id;
    uint64_t key_hash;
};

struct aw_ingest {
    struct aw_ingest_config cfg;
    struct key_seen *keys;
    size_t n_keys;
    struct aw_consumer_msg *msgs;
    struct rec *recs;
    struct aw_store_batch *batch;
    struct aw_backoff backoff;
    uint64_t full_logged_ms; /* last "redis is full" line */
    struct aw_dlq_set *dlq;  /* dead letters of the current batch, confirmed together */
    uint64_t last_ping_ms;   /* last readiness ping of Redis while idle */
    /* What each operation of the store batch is, for the metrics: an aw_change_action, or
     * OP_SUBSCRIPTION. Indexed by the batch's op index. */
    signed char *op_kind;
    size_t cap_op_kind;
};

#define OP_SUBSCRIPTION (-1)

static void note_op(struct aw_ingest *ing, size_t index, int kind)
{
    aw_grow((void **)&ing->op_kind, &ing->cap_op_kind, index + 1, sizeof *ing->op_kind);
    ing->op_kind[index] = (signed char)kind;
}

struct aw_ingest *aw_ingest_new(const struct aw_ingest_config *cfg)
{
    struct aw_ingest *ing = aw_calloc(1, sizeof *ing);
    ing->cfg = *cfg;
    if (ing->cfg.batch_max == 0)
        ing->cfg.batch_max = 500;
    if (ing->cfg.poll_timeout_ms <= 0 || ing->cfg.poll_timeout_ms > 200)
        ing->cfg.poll_timeout_ms = 200;
    if (ing->cfg.dlq_timeout_ms <= 0)
        ing->cfg.dlq_timeout_ms = 10000;
    ing->msgs = aw_calloc(ing->cfg.batch_max, sizeof *ing->msgs);
    ing->recs = aw_calloc(ing->cfg.batch_max, sizeof *ing->recs);
    ing->batch = aw_store_batch_new();
    aw_backoff_init(&ing->backoff, cfg->backoff_base_ms ? cfg->backoff_base_ms : 100,
                    cfg->backoff_max_ms ? cfg->backoff_max_ms : 10000,
                    aw_clock_unix_ms() ^ (uint64_t)(uintptr_t)ing);
    return ing;
}

void aw_ingest_free(struct aw_ingest *ing)
{
    if (!ing)
        return;
    aw_store_batch_free(ing->batch);
    for (size_t i = 0; i < ing->n_keys; i++)
        free(ing->keys[i].account_id);
    free(ing->keys);
    free(ing->msgs);
    free(ing->recs);
    free(ing->op_kind);
    free(ing);
}

static void dead_letter(struct aw_ingest *ing, const struct aw_consumer_msg *m, struct rec *r,
                        const char *body, size_t len, const char *reason, const char *stage)
{
    if (aw_consumer_dlq_produce(ing->cfg.consumer, ing->dlq, m, body, len, reason, stage) !=
        AW_OK) {
        r->failed = true; /* cannot record why: keep the record unstored, retry later */
        return;
    }
    r->n_dlq++;
    aw_metrics_count(AW_MF_DEAD_LETTERS, stage, reason);
    AW_LOG_WARN("ingest", "dead-lettered",
                "stage=%s reason=%s topic=%s partition=%" PRId32 " offset=%" PRId64, stage, reason,
                m->topic, m->partition, m->offset);
}

static void prepare_subscription(struct aw_ingest *ing, const struct aw_consumer_msg *m,
                                 struct rec *r, const struct aw_event *ev)
{
    enum aw_err err;
    size_t index = 0;
    const struct aw_event_audience *a = &ev->subscription;
    if (ev->sub_action == AW_EVENT_SUB_REMOVE) {
        err = aw_store_batch_add_remove(ing->batch, ev->account_id, a->audience_id,
                                        ev->timestamp_ms, ev->id, &index);
    } else {
        struct aw_connection conn;
        char detail[160];
        if (aw_connection_parse(a->settings, a->n_settings, &conn, detail, sizeof detail) !=
            AW_OK) {
            dead_letter(ing, m, r, NULL, 0, AW_CONNECTION_INVALID, "decode");
            return;
        }
        err =
            aw_store_batch_add_upsert(ing->batch, ev->account_id, a->audience_id, a->audience_name,
                                      conn.list_id, ev->timestamp_ms, ev->id, &index);
        aw_connection_clear(&conn);
    }
    if (err != AW_OK) {
        dead_letter(ing, m, r, NULL, 0, "invalid_ids", "decode");
        return;
    }
    note_op(ing, index, OP_SUBSCRIPTION);
    r->n_ops++;
}

/* Makes the account's API key available to the flusher (it may run on another replica):
 * written to Redis, with the version of the message that carried it, when it differs from what
 * this process wrote last. Only a key that passed validation, and never one from
 * AW_CONFIG_FILE (the flusher reads that file itself). A failure marks the record failed, so
 * it is retried. */
static void remember_key(struct aw_ingest *ing, struct rec *r, const struct aw_account *acct,
                         uint64_t version_ms)
{
    if (!acct->api_key || !acct->api_key[0] || !acct->account_id || acct->problem ||
        acct->api_key_from_config)
        return;
    uint64_t h = aw_text_hash(acct->api_key, strlen(acct->api_key));
    size_t i = 0;
    while (i < ing->n_keys && strcmp(ing->keys[i].account_id, acct->account_id) != 0)
        i++;
    if (i < ing->n_keys && ing->keys[i].key_hash == h)
        return;
    enum aw_err e =
        aw_store_account_put(ing->cfg.store, acct->account_id, acct->api_key, version_ms);
    if (e == AW_ERR_INVALID)
        return; /* bad id or key: map.c rejects the profiles with the reason */
    if (e != AW_OK) {
        r->failed = true;
        return;
    }
    if (i == ing->n_keys) {
        if (ing->n_keys == KEY_CACHE_MAX) {
            for (size_t k = 0; k < ing->n_keys; k++)
                free(ing->keys[k].account_id);
            ing->n_keys = i = 0;
        } else if (!ing->keys) {
            ing->keys = aw_calloc(KEY_CACHE_MAX, sizeof *ing->keys);
        }
        ing->keys[i].account_id = aw_strdup(acct->account_id);
        ing->n_keys++;
    }
    ing->keys[i].key_hash = h;
}

static void prepare_membership(struct aw_ingest *ing, const struct aw_consumer_msg *m,
                               struct rec *r, const struct aw_event *ev)
{
    struct aw_account acct;
    struct aw_map_result res;
    /* A problem with the account is reported by map, profile by profile. */
    aw_account_resolve(aw_config_file_get(ing->cfg.accounts, ev->account_id), ev->account_id,
                       ev->account_settings, ev->n_account_settings, &acct);
    remember_key(ing, r, &acct, ev->timestamp_ms);
    enum aw_err err = aw_map_event(ev, &acct, &res);
    aw_account_clear(&acct);
    if (err == AW_ERR_INTERNAL) {
        r->failed = true; /* the phone library failed: not the record's fault, retry */
        aw_map_result_clear(&res);
        return;
    }
    for (size_t i = 0; i < res.n_changes; i++) {
        size_t index = 0;
        if (aw_store_batch_add_apply(ing->batch, &res.changes[i], &index) == AW_OK) {
            note_op(ing, index, (int)res.changes[i].action);
            r->n_ops++;
            continue;
        }
        char *env = NULL;
        if (aw_deadletter_change(&res.changes[i], "map", "invalid_ids", NULL, NULL, NULL, &env) ==
            AW_OK)
            dead_letter(ing, m, r, env, strlen(env), "invalid_ids", "map");
        else
            dead_letter(ing, m, r, NULL, 0, "invalid_ids", "map");
        free(env);
    }
    for (size_t i = 0; i < res.n_rejects; i++) {
        const struct aw_map_reject *rj = &res.rejects[i];
        char *env = NULL;
        if (aw_deadletter_profile(m->payload, m->len, rj->profile_index, rj->audience_id,
                                  rj->reason, rj->detail, &env) != AW_OK) {
            r->failed = true; /* cannot happen for a decoded payload; never drop silently */
            continue;
        }
        dead_letter(ing, m, r, env, strlen(env), rj->reason, "map");
        free(env);
    }
    aw_map_result_clear(&res);
}

static void prepare(struct aw_ingest *ing, const struct aw_consumer_msg *m, struct rec *r)
{
    struct aw_event ev;
    enum aw_event_reason reason = AW_EVENT_OK;
    char detail[256];
    memset(&ev, 0, sizeof ev);
    r->first_op = aw_store_batch_count(ing->batch);
    if (aw_event_decode(m->payload, m->len, &ev, &reason, detail, sizeof detail) != AW_OK) {
        char q[300];
        AW_LOG_DEBUG("ingest", "invalid record", "reason=%s at=%s", aw_event_reason_str(reason),
                     aw_log_quote(q, sizeof q, detail));
        dead_letter(ing, m, r, NULL, 0, aw_event_reason_str(reason), "decode");
        aw_event_clear(&ev);
        return;
    }
    if (ev.type == AW_EVENT_SUBSCRIPTION)
        prepare_subscription(ing, m, r, &ev);
    else
        prepare_membership(ing, m, r, &ev);
    aw_event_clear(&ev);
}

/* True when everything the record produced was acknowledged (or permanently refused and
 * dead-lettered). */
static bool rec_done(const struct aw_ingest *ing, const struct rec *r)
{
    if (r->failed)
        return false;
    for (size_t k = r->first_op; k < r->first_op + r->n_ops; k++) {
        const struct aw_store_result *res = aw_store_batch_result(ing->batch, k);
        if (res->err != AW_OK && res->err != AW_ERR_INVALID)
            return false;
    }
    return true;
}

/* A record whose operation the store refused for its data (a script's INVALID: permanent) is
 * dead-lettered whole, with its original bytes, so it is never dropped silently. */
static void dead_letter_refused(struct aw_ingest *ing, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct rec *r = &ing->recs[i];
        for (size_t k = r->first_op; k < r->first_op + r->n_ops; k++) {
            if (aw_store_batch_result(ing->batch, k)->err != AW_ERR_INVALID)
                continue;
            AW_LOG_ERROR("ingest", "store refused an operation",
                         "op=%zu topic=%s partition=%" PRId32 " offset=%" PRId64, k,
                         ing->msgs[i].topic, ing->msgs[i].partition, ing->msgs[i].offset);
            dead_letter(ing, &ing->msgs[i], r, NULL, 0, "store_refused", "store");
            break;
        }
    }
}

/* One WARN per interval while Redis refuses writes for memory (maxmemory): ingest pauses (no
 * offset stored) and resumes by itself once the leader drained enough. */
static void report_full(struct aw_ingest *ing, size_t n)
{
    size_t full = 0;
    for (size_t i = 0; i < aw_store_batch_count(ing->batch); i++)
        full += aw_store_batch_result(ing->batch, i)->err == AW_ERR_FULL;
    aw_metrics_set(AW_M_STORE_FULL, full > 0);
    if (full == 0)
        return;
    uint64_t now = aw_clock_mono_ms();
    if (ing->full_logged_ms == 0 || now - ing->full_logged_ms >= 10000) {
        AW_LOG_WARN("ingest", "redis is full (maxmemory): ingest paused until the leader drains",
                    "ops_refused=%zu records=%zu", full, n);
        ing->full_logged_ms = now;
    }
}

enum aw_err aw_ingest_step(struct aw_ingest *ing, size_t *n_polled)
{
    size_t n = aw_consumer_poll(ing->cfg.consumer, ing->msgs, ing->cfg.batch_max,
                                ing->cfg.poll_timeout_ms);
    *n_polled = n;
    aw_metrics_set(AW_M_PARTITIONS_ASSIGNED, aw_consumer_assigned_count(ing->cfg.consumer));
    if (n == 0)
        return AW_OK;
    aw_metrics_add(AW_M_RECORDS_CONSUMED, n);
    aw_store_batch_reset(ing->batch);
    ing->dlq = aw_dlq_set_new();
    for (size_t i = 0; i < n; i++) {
        memset(&ing->recs[i], 0, sizeof ing->recs[i]);
        prepare(ing, &ing->msgs[i], &ing->recs[i]);
    }

    enum aw_err serr = AW_OK;
    if (aw_store_batch_count(ing->batch) > 0) {
        serr = aw_store_batch_exec(ing->cfg.store, ing->batch, aw_clock_unix_ms());
        aw_metrics_set(AW_M_STORE_UP, serr == AW_OK);
        if (serr != AW_OK) {
            aw_metrics_add(AW_M_STORE_ERRORS, 1);
            AW_LOG_WARN("ingest", "store batch failed", "err=%s detail=%s", aw_err_str(serr),
                        aw_store_errstr(ing->cfg.store));
        }
    }
    if (serr == AW_OK || aw_store_batch_count(ing->batch) > 0) {
        dead_letter_refused(ing, n);
        report_full(ing, n);
    }
    /* Only this batch's dead letters confirm this batch's records: a set that timed out earlier
     * keeps its late reports to itself. */
    enum aw_err derr = aw_consumer_dlq_wait(ing->cfg.consumer, ing->dlq, ing->cfg.dlq_timeout_ms);

    /* Per partition, records are in offset order: store the done prefix, rewind at the first
     * record not done and skip the rest of that partition in this batch. */
    bool rewound = false, fatal = false;
    bool *skip = aw_calloc(n, sizeof *skip);
    for (size_t i = 0; i < n; i++) {
        if (skip[i])
            continue;
        const struct aw_consumer_msg *m = &ing->msgs[i];
        struct rec *r = &ing->recs[i];
        bool done = rec_done(ing, r) && !(r->n_dlq > 0 && derr != AW_OK);
        if (done && aw_consumer_store(ing->cfg.consumer, m) == AW_OK) {
            aw_metrics_add(AW_M_RECORDS_DONE, 1);
            for (size_t k = r->first_op; k < r->first_op + r->n_ops; k++) {
                const struct aw_store_result *res = aw_store_batch_result(ing->batch, k);
                if (res->err != AW_OK)
                    continue;
                bool applied = res->status == AW_STORE_APPLIED;
                int kind = k < ing->cap_op_kind ? ing->op_kind[k] : OP_SUBSCRIPTION;
                if (kind == OP_SUBSCRIPTION) {
                    if (applied)
                        aw_metrics_add(AW_M_AUDIENCE_UPDATES, 1);
                    continue;
                }
                aw_metrics_count(applied ? AW_MF_CHANGES_APPLIED : AW_MF_CHANGES_STALE,
                                 aw_change_action_str((enum aw_change_action)kind), NULL);
            }
            continue;
        }
        if (done)
            continue; /* partition revoked meanwhile: its new owner re-reads it */
        if (aw_consumer_rewind(ing->cfg.consumer, m) != AW_OK) {
            /* The fetch position stays past a record that is not done: storing any later
             * offset of the partition would skip it. Stop (nothing more is stored); the group
             * re-reads from the committed offset after the restart. */
            AW_LOG_ERROR("ingest", "cannot rewind a partition to a record not done; stopping",
                         "topic=%s partition=%" PRId32 " offset=%" PRId64, m->topic, m->partition,
                         m->offset);
            fatal = true;
        }
        rewound = true;
        size_t skipped = 0;
        for (size_t j = i; j < n; j++) {
            if (ing->msgs[j].partition == m->partition &&
                strcmp(ing->msgs[j].topic, m->topic) == 0) {
                skip[j] = true;
                skipped++;
            }
        }
        aw_metrics_add(AW_M_RECORDS_REWOUND, skipped);
    }
    free(skip);
    aw_consumer_release(ing->cfg.consumer);
    aw_dlq_set_free(ing->dlq);
    ing->dlq = NULL;
    return fatal ? AW_ERR_FATAL : rewound ? AW_ERR_IO : AW_OK;
}

/* Readiness: the group has us, and Redis answers (pinged while idle, so a Redis that went away
 * is seen without traffic). */
static void update_health(struct aw_ingest *ing, size_t n, enum aw_err err)
{
    aw_health_beat(AW_HEALTH_INGEST);
    aw_health_set(AW_HEALTH_JOINED, aw_consumer_has_joined(ing->cfg.consumer));
    uint64_t now = aw_clock_mono_ms();
    if (n > 0) {
        aw_health_set(AW_HEALTH_STORE, err == AW_OK || aw_store_is_connected(ing->cfg.store));
        ing->last_ping_ms = now;
    } else if (now - ing->last_ping_ms >= 5000) {
        aw_health_set(AW_HEALTH_STORE, aw_store_ping(ing->cfg.store) == AW_OK);
        ing->last_ping_ms = now;
    }
}

enum aw_err aw_ingest_run(struct aw_ingest *ing, const atomic_int *stop)
{
    aw_health_register(AW_HEALTH_INGEST, AW_INGEST_STALL_MS);
    ing->last_ping_ms = 0;
    while (!atomic_load(stop)) {
        if (aw_consumer_is_fatal(ing->cfg.consumer))
            return AW_ERR_FATAL;
        size_t n = 0;
        enum aw_err err = aw_ingest_step(ing, &n);
        update_health(ing, n, err);
        if (err == AW_ERR_FATAL)
            return err;
        if (err == AW_OK) {
            aw_backoff_reset(&ing->backoff);
            continue;
        }
        uint64_t wait = aw_backoff_next_ms(&ing->backoff);
        AW_LOG_WARN("ingest", "transient failure, backing off", "wait_ms=%" PRIu64, wait);
        aw_clock_sleep_ms(wait, stop);
    }
    return AW_OK;
}
