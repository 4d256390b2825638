/* consumer.c -- the only user of rdkafka.h (docs/style.md §1). */
#include "worker/ingest/consumer.h"

#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/ops/metrics.h"

/* The dead-letter producer (also used alone by the flusher thread). */
struct aw_dlq {
    rd_kafka_t *rk;
    char *topic;
    atomic_bool fatal;
    /* Records without a delivery report yet, all sets together; written by the delivery
     * callback, which runs on the owner's thread inside rd_kafka_poll/flush. */
    long pending;
};

/* Records whose delivery one caller confirms together. Each record names its set (message
 * opaque), so a late report of an abandoned set never counts for another one; the set lives
 * until its owner dropped it and every record of it was reported. */
struct aw_dlq_set {
    long pending; /* produced, not reported yet */
    long failed;  /* reported with an error */
    long refs;    /* records in flight + 1 while the owner holds it */
};

struct aw_consumer {
    rd_kafka_t *rk;             /* consumer */
    struct aw_dlq *dlq;         /* producer of dead-letter records */
    rd_kafka_message_t **batch; /* records of the last poll, owned */
    size_t n_batch;
    size_t cap_batch;
    atomic_int assigned;
    atomic_bool joined; /* an assignment arrived (possibly empty): the group has us */
    atomic_bool fatal;
    bool closed;
    bool synced; /* a rebalance completed for this member at least once */
};

/* librdkafka 2.0.2 aborts in rd_kafka_destroy() when a cooperative-sticky member is destroyed
 * before its first assignment (confluentinc/librdkafka#4312, fixed in 2.3.0). Such a handle is
 * parked here instead of destroyed: the process is exiting, and a reachable pointer keeps leak
 * checkers quiet. */
static rd_kafka_t *parked_handle;

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    char q[512];
    /* librdkafka logs broker connection failures at LOG_ERR although it heals them itself:
     * they are WARN here (ERROR means a human must act; fatal errors come via error_cb). */
    enum aw_log_level l = level <= 2   ? AW_LOG_LEVEL_ERROR
                          : level <= 4 ? AW_LOG_LEVEL_WARN
                          : level <= 6 ? AW_LOG_LEVEL_INFO
                                       : AW_LOG_LEVEL_DEBUG;
    AW_LOG_(l, "rdkafka", "librdkafka", "fac=%s detail=%s", fac, aw_log_quote(q, sizeof q, buf));
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct aw_consumer *c = opaque;
    char q[512];
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[256];
        rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
        AW_LOG_ERROR("consumer", "fatal kafka error", "err=%s detail=%s", rd_kafka_err2name(ferr),
                     aw_log_quote(q, sizeof q, fatal));
        atomic_store(&c->fatal, true);
        return;
    }
    /* Transport errors heal by themselves (librdkafka reconnects). */
    AW_LOG_WARN("consumer", "kafka error", "err=%s detail=%s",
                rd_kafka_err2name((rd_kafka_resp_err_t)err), aw_log_quote(q, sizeof q, reason));
}

static json_int_t int_or(json_t *o, const char *key, json_int_t dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

/* The group's lag on one partition of librdkafka's statistics: consumer_lag (high watermark -
 * committed offset); when the group has committed nothing there yet (committed_offset < 0,
 * consumer_lag -1), everything from the log start is the group's backlog: hi - lo. -1 when the
 * partition's offsets are not known. */
static json_int_t partition_lag(json_t *p)
{
    json_int_t lag = int_or(p, "consumer_lag", -1);
    if (lag >= 0)
        return lag;
    json_int_t hi = int_or(p, "hi_offset", -1), lo = int_or(p, "lo_offset", -1);
    if (int_or(p, "committed_offset", -1) < 0 && hi >= 0 && lo >= 0 && hi >= lo)
        return hi - lo;
    return -1;
}

enum aw_err aw_consumer_stats_apply(const char *json, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    json_t *topics = json_object_get(root, "topics");
    if (!json_is_object(topics)) {
        json_decref(root);
        return AW_ERR_INVALID;
    }
    struct label {
        const char *topic; /* borrowed from root */
        char partition[24];
    } *labels = NULL;
    struct aw_metric_sample *samples = NULL;
    size_t n = 0, cap_labels = 0, cap_samples = 0;
    const char *topic;
    json_t *t;
    json_object_foreach(topics, topic, t)
    {
        const char *key;
        json_t *p;
        json_object_foreach(json_object_get(t, "partitions"), key, p)
        {
            json_t *part = json_object_get(p, "partition");
            json_t *desired = json_object_get(p, "desired");
            /* -1 is librdkafka's internal unassigned-partition queue; a partition not desired
             * is not (or no longer) ours. */
            if (!json_is_integer(part) || json_integer_value(part) < 0 ||
                (desired && !json_is_true(desired)))
                continue;
            json_int_t lag = partition_lag(p);
            if (lag < 0)
                continue; /* the partition's offsets are not known yet */
            aw_grow((void **)&labels, &cap_labels, n + 1, sizeof *labels);
            aw_grow((void **)&samples, &cap_samples, n + 1, sizeof *samples);
            labels[n].topic = topic;
            snprintf(labels[n].partition, sizeof labels[n].partition, "%" JSON_INTEGER_FORMAT,
                     json_integer_value(part));
            samples[n].value = (double)lag;
            n++;
        }
    }
    /* Labels point into labels[], which may have moved while growing: set them at the end. */
    for (size_t i = 0; i < n; i++) {
        samples[i].a = labels[i].topic;
        samples[i].b = labels[i].partition;
    }
    aw_metrics_family_replace(AW_MF_CONSUMER_LAG, samples, n);
    free(samples);
    free(labels);
    json_decref(root);
    return AW_OK;
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (aw_consumer_stats_apply(json, json_len) != AW_OK)
        AW_LOG_DEBUG("consumer", "unreadable librdkafka statistics", "bytes=%zu", json_len);
    return 0; /* librdkafka frees json */
}

static const char *protocol(rd_kafka_t *rk)
{
    const char *p = rd_kafka_rebalance_protocol(rk);
    return p ? p : "NONE";
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct aw_consumer *c = opaque;
    bool cooperative = strcmp(protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;

    c->synced = true;
    switch (err) {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        if (cooperative)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            rerr = rd_kafka_assign(rk, parts);
        if (!e && !rerr) {
            atomic_fetch_add(&c->assigned, parts->cnt);
            atomic_store(&c->joined, true);
        }
        AW_LOG_INFO("consumer", "partitions assigned", "count=%d protocol=%s total=%d", parts->cnt,
                    protocol(rk), atomic_load(&c->assigned));
        break;
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        /* Commit what was stored before the partitions move: the next owner starts exactly
         * after the last record Redis acknowledged. Nothing else lives in memory. */
        if (!rd_kafka_assignment_lost(rk)) {
            rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, parts, 0);
            if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
                AW_LOG_WARN("consumer", "commit on revoke failed", "err=%s",
                            rd_kafka_err2name(cerr));
        }
        if (cooperative)
            e = rd_kafka_incremental_unassign(rk, parts);
        else
            rerr = rd_kafka_assign(rk, NULL);
        if (cooperative)
            atomic_fetch_sub(&c->assigned, parts->cnt);
        else
            atomic_store(&c->assigned, 0);
        AW_LOG_INFO("consumer", "partitions revoked", "count=%d lost=%d protocol=%s", parts->cnt,
                    rd_kafka_assignment_lost(rk), protocol(rk));
        break;
    default:
        AW_LOG_ERROR("consumer", "rebalance error", "err=%s", rd_kafka_err2name(err));
        rerr = rd_kafka_assign(rk, NULL);
        atomic_store(&c->assigned, 0);
        break;
    }
    if (e) {
        AW_LOG_ERROR("consumer", "assignment failed", "err=%s", rd_kafka_error_name(e));
        rd_kafka_error_destroy(e);
    }
    if (rerr)
        AW_LOG_ERROR("consumer", "assignment failed", "err=%s", rd_kafka_err2name(rerr));
}

static void set_unref(struct aw_dlq_set *set)
{
    if (--set->refs == 0)
        free(set);
}

static void dlq_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct aw_dlq *d = opaque;
    struct aw_dlq_set *set = m->_private;
    d->pending--;
    if (m->err)
        AW_LOG_WARN("consumer", "dead-letter delivery failed", "err=%s", rd_kafka_err2name(m->err));
    if (set) {
        set->pending--;
        if (m->err)
            set->failed++;
        set_unref(set);
    }
}

struct aw_dlq_set *aw_dlq_set_new(void)
{
    struct aw_dlq_set *set = aw_calloc(1, sizeof *set);
    set->refs = 1;
    return set;
}

void aw_dlq_set_free(struct aw_dlq_set *set)
{
    if (set)
        set_unref(set);
}

long aw_dlq_set_pending(const struct aw_dlq_set *set)
{
    return set ? set->pending : 0;
}

enum aw_err aw_dlq_set_wait(struct aw_dlq *d, struct aw_dlq_set *set, int timeout_ms)
{
    uint64_t deadline = aw_clock_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    while (set->pending > 0) {
        uint64_t now = aw_clock_mono_ms();
        if (now >= deadline)
            break;
        uint64_t left = deadline - now;
        rd_kafka_poll(d->rk, (int)(left < 100 ? left : 100));
    }
    if (set->failed > 0)
        return AW_ERR_IO;
    return set->pending > 0 ? AW_ERR_TIMEOUT : AW_OK;
}

static void dlq_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct aw_dlq *d = opaque;
    char q[512];
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[256];
        rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
        AW_LOG_ERROR("consumer", "fatal dead-letter producer error", "err=%s detail=%s",
                     rd_kafka_err2name(ferr), aw_log_quote(q, sizeof q, fatal));
        atomic_store(&d->fatal, true);
        return;
    }
    AW_LOG_WARN("consumer", "kafka producer error", "err=%s detail=%s",
                rd_kafka_err2name((rd_kafka_resp_err_t)err), aw_log_quote(q, sizeof q, reason));
}

static bool set(rd_kafka_conf_t *conf, const char *k, const char *v, char *errbuf, size_t errlen)
{
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        /* Name the property, not its value: values may be credentials. */
        snprintf(errbuf, errlen, "kafka property %s: %s", k, err);
        return false;
    }
    return true;
}

static bool apply_extra(rd_kafka_conf_t *conf, const char *const *extra, size_t n_extra,
                        bool producer, char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < n_extra; i++) {
        const char *k = extra[2 * i], *v = extra[2 * i + 1];
        /* Consumer-only properties would make the producer refuse to start, and vice versa;
         * librdkafka ignores the other role's properties with a warning, which is fine. */
        if (producer &&
            (strncmp(k, "group.", 6) == 0 || strncmp(k, "partition.assignment", 20) == 0 ||
             strncmp(k, "enable.auto", 11) == 0 || strncmp(k, "auto.", 5) == 0 ||
             strncmp(k, "session.", 8) == 0 || strncmp(k, "max.poll", 8) == 0 ||
             strncmp(k, "fetch.", 6) == 0 || strncmp(k, "heartbeat.", 10) == 0))
            continue;
        if (!set(conf, k, v, errbuf, errlen))
            return false;
    }
    return true;
}

struct aw_consumer *aw_consumer_new(const struct aw_consumer_config *cfg, char *errbuf,
                                    size_t errlen)
{
    struct aw_consumer *c = aw_calloc(1, sizeof *c);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *subs = NULL;
    char err[512];

    if (!set(conf, "bootstrap.servers", cfg->brokers, errbuf, errlen) ||
        !set(conf, "group.id", cfg->group, errbuf, errlen) ||
        (cfg->client_id && !set(conf, "client.id", cfg->client_id, errbuf, errlen)) ||
        !set(conf, "partition.assignment.strategy", "cooperative-sticky", errbuf, errlen) ||
        !set(conf, "auto.offset.reset", "earliest", errbuf, errlen) ||
        /* aw_consumer_lag (the file may choose another interval, or 0 to turn it off) */
        !set(conf, "statistics.interval.ms", "5000", errbuf, errlen) ||
        !apply_extra(conf, cfg->extra, cfg->n_extra, false, errbuf, errlen) ||
        /* Delivery-critical: forced after the extra properties so a file cannot undo them. */
        !set(conf, "enable.auto.offset.store", "false", errbuf, errlen) ||
        !set(conf, "enable.auto.commit", "true", errbuf, errlen) ||
        !set(conf, "enable.partition.eof", "false", errbuf, errlen))
        goto fail;
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);

    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!c->rk) {
        snprintf(errbuf, errlen, "kafka consumer: %s", err);
        goto fail;
    }
    conf = NULL; /* owned by rk now */
    c->dlq = aw_dlq_new(cfg->brokers, cfg->dlq_topic, cfg->extra, cfg->n_extra, cfg->client_id,
                        errbuf, errlen);
    if (!c->dlq)
        goto fail;
    rd_kafka_poll_set_consumer(c->rk);

    subs = rd_kafka_topic_partition_list_new((int)cfg->n_topics);
    for (size_t i = 0; i < cfg->n_topics; i++)
        rd_kafka_topic_partition_list_add(subs, cfg->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t serr = rd_kafka_subscribe(c->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (serr) {
        snprintf(errbuf, errlen, "kafka subscribe: %s", rd_kafka_err2str(serr));
        goto fail;
    }
    return c;

fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    c->closed = true; /* never subscribed or joined: nothing to leave */
    aw_consumer_free(c);
    return NULL;
}

size_t aw_consumer_poll(struct aw_consumer *c, struct aw_consumer_msg *out, size_t max,
                        int timeout_ms)
{
    aw_consumer_release(c);
    aw_grow((void **)&c->batch, &c->cap_batch, max, sizeof *c->batch);
    /* Serve the producer's delivery reports too. */
    rd_kafka_poll(c->dlq->rk, 0);
    size_t n = 0, bytes = 0;
    int wait = timeout_ms;
    while (n < max && bytes < AW_CONSUMER_BATCH_BYTES) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, wait);
        if (!m)
            break;
        wait = 0; /* after the first record, take only what is already queued */
        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                rd_kafka_message_destroy(m);
                continue;
            }
            AW_LOG_WARN("consumer", "consume error", "err=%s", rd_kafka_err2name(m->err));
            if (m->err == RD_KAFKA_RESP_ERR__FATAL)
                atomic_store(&c->fatal, true);
            rd_kafka_message_destroy(m);
            break;
        }
        c->batch[n] = m;
        out[n].payload = m->payload;
        out[n].len = m->len;
        out[n].key = m->key;
        out[n].key_len = m->key_len;
        out[n].topic = rd_kafka_topic_name(m->rkt);
        out[n].partition = m->partition;
        out[n].offset = m->offset;
        out[n].index = n;
        bytes += m->len;
        n++;
    }
    c->n_batch = n;
    return n;
}

void aw_consumer_release(struct aw_consumer *c)
{
    for (size_t i = 0; i < c->n_batch; i++)
        rd_kafka_message_destroy(c->batch[i]);
    c->n_batch = 0;
}

enum aw_err aw_consumer_store(struct aw_consumer *c, const struct aw_consumer_msg *m)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, m->topic, m->partition)->offset = m->offset + 1;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, l);
    if (!err && l->elems[0].err)
        err = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        /* Typically the partition was revoked meanwhile: its new owner re-reads the record. */
        AW_LOG_WARN("consumer", "offset store failed",
                    "topic=%s partition=%" PRId32 " offset=%" PRId64 " err=%s", m->topic,
                    m->partition, m->offset, rd_kafka_err2name(err));
        return AW_ERR_IO;
    }
    return AW_OK;
}

#define REWIND_TIMEOUT_MS 5000
#define REWIND_ATTEMPTS 3 /* a seek that timed out is sent again: it is idempotent */

enum aw_err aw_consumer_rewind(struct aw_consumer *c, const struct aw_consumer_msg *m)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, m->topic, m->partition)->offset = m->offset;
    rd_kafka_error_t *e = NULL;
    /* librdkafka's own threads confirm the seek: on a loaded host (seen under ASan in CI) that
     * can take longer than one timeout, and a rewind that fails stops the worker */
    for (int attempt = 1; attempt <= REWIND_ATTEMPTS; attempt++) {
        e = rd_kafka_seek_partitions(c->rk, l, REWIND_TIMEOUT_MS);
        rd_kafka_resp_err_t code = e ? rd_kafka_error_code(e) : l->elems[0].err;
        if (code != RD_KAFKA_RESP_ERR__TIMED_OUT || attempt == REWIND_ATTEMPTS)
            break;
        AW_LOG_WARN("consumer", "rewind timed out; seeking again",
                    "topic=%s partition=%" PRId32 " attempt=%d", m->topic, m->partition, attempt);
        if (e)
            rd_kafka_error_destroy(e);
        e = NULL;
        l->elems[0].err = RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    enum aw_err rc = AW_OK;
    if (e) {
        AW_LOG_WARN("consumer", "rewind failed", "topic=%s partition=%" PRId32 " err=%s", m->topic,
                    m->partition, rd_kafka_error_name(e));
        rd_kafka_error_destroy(e);
        rc = AW_ERR_IO;
    } else if (l->elems[0].err) {
        AW_LOG_WARN("consumer", "rewind failed", "topic=%s partition=%" PRId32 " err=%s", m->topic,
                    m->partition, rd_kafka_err2name(l->elems[0].err));
        rc = AW_ERR_IO;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* Produces body with hdrs (taken in every case) plus the aw.* headers. */
static enum aw_err dlq_produce_hdrs(struct aw_dlq *d, struct aw_dlq_set *set,
                                    rd_kafka_headers_t *hdrs, const void *key, size_t key_len,
                                    const void *body, size_t len, const char *reason,
                                    const char *stage, const char *src_topic, int32_t src_partition,
                                    int64_t src_offset)
{
    char part[16], off[24];
    snprintf(part, sizeof part, "%" PRId32, src_partition);
    snprintf(off, sizeof off, "%" PRId64, src_offset);
    rd_kafka_header_add(hdrs, "aw.reason", -1, reason, -1);
    rd_kafka_header_add(hdrs, "aw.stage", -1, stage, -1);
    rd_kafka_header_add(hdrs, "aw.source.topic", -1, src_topic, -1);
    rd_kafka_header_add(hdrs, "aw.source.partition", -1, part, -1);
    rd_kafka_header_add(hdrs, "aw.source.offset", -1, off, -1);
    /* The array form: the RD_KAFKA_V_* macros use GNU statement expressions (not C11). */
    rd_kafka_vu_t vu[6];
    memset(vu, 0, sizeof vu);
    vu[0].vtype = RD_KAFKA_VTYPE_TOPIC;
    vu[0].u.cstr = d->topic;
    vu[1].vtype = RD_KAFKA_VTYPE_VALUE;
    vu[1].u.mem.ptr = (void *)body;
    vu[1].u.mem.size = len;
    vu[2].vtype = RD_KAFKA_VTYPE_KEY;
    vu[2].u.mem.ptr = (void *)key;
    vu[2].u.mem.size = key ? key_len : 0;
    vu[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[3].u.i = RD_KAFKA_MSG_F_COPY;
    vu[4].vtype = RD_KAFKA_VTYPE_HEADERS;
    vu[4].u.headers = hdrs;
    vu[5].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vu[5].u.ptr = set;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int attempt = 0;; attempt++) {
        rd_kafka_error_t *e = rd_kafka_produceva(d->rk, vu, 6);
        err = e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
        if (e)
            rd_kafka_error_destroy(e);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt >= 50)
            break;
        rd_kafka_poll(d->rk, 100); /* let deliveries drain the queue */
    }
    if (err) {
        rd_kafka_headers_destroy(hdrs); /* not taken on failure */
        AW_LOG_WARN("consumer", "dead-letter produce failed", "err=%s", rd_kafka_err2name(err));
        return AW_ERR_IO;
    }
    d->pending++;
    if (set) {
        set->pending++;
        set->refs++;
    }
    return AW_OK;
}

enum aw_err aw_consumer_dlq_produce(struct aw_consumer *c, struct aw_dlq_set *set,
                                    const struct aw_consumer_msg *src, const void *body, size_t len,
                                    const char *reason, const char *stage)
{
    const rd_kafka_message_t *m = c->batch[src->index];
    rd_kafka_headers_t *orig = NULL;
    rd_kafka_headers_t *hdrs;
    if (rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR && orig)
        hdrs = rd_kafka_headers_copy(orig);
    else
        hdrs = rd_kafka_headers_new(8);
    if (!body) {
        body = src->payload;
        len = src->len;
    }
    return dlq_produce_hdrs(c->dlq, set, hdrs, src->key, src->key_len, body, len, reason, stage,
                            src->topic, src->partition, src->offset);
}

enum aw_err aw_consumer_dlq_wait(struct aw_consumer *c, struct aw_dlq_set *set, int timeout_ms)
{
    return aw_dlq_set_wait(c->dlq, set, timeout_ms);
}

bool aw_consumer_has_joined(const struct aw_consumer *c)
{
    return atomic_load(&c->joined);
}

int aw_consumer_assigned_count(const struct aw_consumer *c)
{
    return atomic_load(&c->assigned);
}

bool aw_consumer_is_fatal(const struct aw_consumer *c)
{
    return atomic_load(&c->fatal) || (c->dlq && aw_dlq_is_fatal(c->dlq));
}

void aw_consumer_close(struct aw_consumer *c)
{
    if (c->closed)
        return;
    c->closed = true;
    aw_consumer_release(c);
    /* A member still joining its group: let the join finish (bounded), so the handle can be
     * destroyed safely (see parked_handle). Records polled meanwhile are not stored: they are
     * delivered again to the member that gets their partition. */
    for (int i = 0; i < 100 && !c->synced && !atomic_load(&c->fatal); i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
        if (m)
            rd_kafka_message_destroy(m);
    }
    rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        AW_LOG_WARN("consumer", "final commit failed", "err=%s", rd_kafka_err2name(err));
    /* librdkafka#4527 (fixed after Debian's 2.0.2): a cooperative consumer that receives an
     * assignment while closing hangs in rd_kafka_consumer_close. Leave the group first and let
     * the revocation run (bounded, 5 s); records polled meanwhile are not stored. */
    if (c->synced && !atomic_load(&c->fatal)) {
        rd_kafka_unsubscribe(c->rk);
        for (int i = 0; i < 50; i++) {
            rd_kafka_topic_partition_list_t *a = NULL;
            bool empty =
                rd_kafka_assignment(c->rk, &a) == RD_KAFKA_RESP_ERR_NO_ERROR && a && a->cnt == 0;
            if (a)
                rd_kafka_topic_partition_list_destroy(a);
            if (empty)
                break;
            rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
            if (m)
                rd_kafka_message_destroy(m);
        }
    }
    err = rd_kafka_consumer_close(c->rk);
    if (err)
        AW_LOG_WARN("consumer", "close failed", "err=%s", rd_kafka_err2name(err));
    AW_LOG_INFO("consumer", "closed", "%s", "");
}

void aw_consumer_free(struct aw_consumer *c)
{
    if (!c)
        return;
    if (c->rk)
        aw_consumer_close(c);
    aw_consumer_release(c);
    free(c->batch);
    aw_dlq_free(c->dlq);
    if (c->rk && !c->synced) {
        AW_LOG_WARN("consumer", "consumer never joined its group; handle left to process exit",
                    "%s", "librdkafka#4312");
        parked_handle = c->rk;
    } else if (c->rk) {
        rd_kafka_destroy(c->rk);
    }
    free(c);
}

/* ---- Stand-alone dead-letter producer ------------------------------------------------------ */

struct aw_dlq *aw_dlq_new(const char *brokers, const char *topic, const char *const *extra,
                          size_t n_extra, const char *client_id, char *errbuf, size_t errlen)
{
    if (!brokers || !brokers[0] || !topic || !topic[0]) {
        snprintf(errbuf, errlen, "dead-letter producer: brokers and topic are required");
        return NULL;
    }
    struct aw_dlq *d = aw_calloc(1, sizeof *d);
    rd_kafka_conf_t *pconf = rd_kafka_conf_new();
    char err[512];
    d->topic = aw_strdup(topic);
    if (!set(pconf, "bootstrap.servers", brokers, errbuf, errlen) ||
        (client_id && !set(pconf, "client.id", client_id, errbuf, errlen)) ||
        !apply_extra(pconf, extra, n_extra, true, errbuf, errlen) ||
        /* Dead-letter records must not be lost or duplicated by producer retries. */
        !set(pconf, "enable.idempotence", "true", errbuf, errlen) ||
        !set(pconf, "acks", "all", errbuf, errlen) ||
        !set(pconf, "linger.ms", "5", errbuf, errlen)) {
        rd_kafka_conf_destroy(pconf);
        aw_dlq_free(d);
        return NULL;
    }
    rd_kafka_conf_set_opaque(pconf, d);
    rd_kafka_conf_set_log_cb(pconf, log_cb);
    rd_kafka_conf_set_error_cb(pconf, dlq_error_cb);
    rd_kafka_conf_set_dr_msg_cb(pconf, dlq_dr_cb);
    d->rk = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, err, sizeof err);
    if (!d->rk) {
        snprintf(errbuf, errlen, "kafka dead-letter producer: %s", err);
        rd_kafka_conf_destroy(pconf); /* not taken on failure */
        aw_dlq_free(d);
        return NULL;
    }
    return d;
}

enum aw_err aw_dlq_produce(struct aw_dlq *d, struct aw_dlq_set *set, const void *key,
                           size_t key_len, const void *body, size_t len, const char *reason,
                           const char *stage, const char *src_topic, int32_t src_partition,
                           int64_t src_offset)
{
    rd_kafka_poll(d->rk, 0); /* serve delivery reports */
    return dlq_produce_hdrs(d, set, rd_kafka_headers_new(8), key, key_len, body, len, reason, stage,
                            src_topic, src_partition, src_offset);
}

enum aw_err aw_dlq_flush(struct aw_dlq *d, int timeout_ms)
{
    if (d->pending > 0)
        rd_kafka_flush(d->rk, timeout_ms);
    return d->pending > 0 ? AW_ERR_TIMEOUT : AW_OK;
}

long aw_dlq_pending(const struct aw_dlq *d)
{
    return d->pending;
}

bool aw_dlq_is_fatal(const struct aw_dlq *d)
{
    return atomic_load(&d->fatal);
}

void aw_dlq_free(struct aw_dlq *d)
{
    if (!d)
        return;
    if (d->rk) {
        rd_kafka_flush(d->rk, 5000);
        rd_kafka_destroy(d->rk);
    }
    free(d->topic);
    free(d);
}
