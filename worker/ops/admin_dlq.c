/* admin_dlq.c -- `aw-worker dlq stats|show|replay` (see admin.c's help): the dead-letter topic
 * read from its beginning to the end it had when the command started, with an assignment of
 * every partition and no consumer group (no offsets committed, no member of the replicas'
 * group), within READ_BUDGET_MS; replay produces records' original messages back to the input
 * topic.
 *
 * This is the admin's own librdkafka adapter: the replicas' (worker/ingest/consumer.c) is built
 * for the hot path (one group, offsets stored after Redis) and shares nothing with a one-shot
 * reader. Values and keys are personal data: printed to stdout by `show` only, never logged. */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/ops/admin_internal.h"
#include "worker/settings.h"

#define READ_BUDGET_MS 60000
#define META_TIMEOUT_MS 10000
#define SHOW_DEFAULT 100
#define CLIENT_ID "aw-worker-admin"

/* One dead letter, as read. */
struct rec {
    int32_t partition;
    int64_t offset;
    char *stage, *reason, *src_topic, *src_partition, *src_offset; /* owned, "" when absent */
    void *key;
    size_t key_len;
    void *value;
    size_t len;
    rd_kafka_headers_t *hdrs; /* owned copy (replay keeps the source's own headers) */
};

struct dlq {
    rd_kafka_t *rk;
    struct rec *v;
    size_t n, cap;
};

static void dlq_clear(struct dlq *d)
{
    for (size_t i = 0; i < d->n; i++) {
        struct rec *r = &d->v[i];
        free(r->stage);
        free(r->reason);
        free(r->src_topic);
        free(r->src_partition);
        free(r->src_offset);
        free(r->key);
        free(r->value);
        if (r->hdrs)
            rd_kafka_headers_destroy(r->hdrs);
    }
    free(d->v);
    if (d->rk) {
        rd_kafka_consumer_close(d->rk);
        rd_kafka_destroy(d->rk);
    }
    memset(d, 0, sizeof *d);
}

/* The AW_KAFKA_CONFIG_FILE properties (skip: prefixes of the other role's), then ours. */
static rd_kafka_conf_t *conf_new(const struct aw_settings *s, bool producer, char *err,
                                 size_t errlen)
{
    static const char *const consumer_only[] = {
        "group.", "partition.assignment", "enable.auto", "auto.", "session.", "max.poll",
        "fetch.", "heartbeat.",           "isolation."};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char e[256];
    bool ok = rd_kafka_conf_set(conf, "bootstrap.servers", s->kafka.brokers, e, sizeof e) ==
                  RD_KAFKA_CONF_OK &&
              rd_kafka_conf_set(conf, "client.id", CLIENT_ID, e, sizeof e) == RD_KAFKA_CONF_OK;
    for (size_t i = 0; ok && i < s->kafka.extra.n_entries; i++) {
        const char *k = s->kafka.extra.entries[i].key, *v = s->kafka.extra.entries[i].value;
        bool skip = strncmp(k, "group.", 6) == 0; /* never a member of the replicas' group */
        for (size_t p = 0; producer && p < sizeof consumer_only / sizeof *consumer_only; p++)
            skip = skip || strncmp(k, consumer_only[p], strlen(consumer_only[p])) == 0;
        if (!skip && rd_kafka_conf_set(conf, k, v, e, sizeof e) != RD_KAFKA_CONF_OK) {
            snprintf(err, errlen, "kafka property %s: %s", k, e); /* never the value */
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (ok && producer)
        ok = rd_kafka_conf_set(conf, "enable.idempotence", "true", e, sizeof e) ==
                 RD_KAFKA_CONF_OK &&
             rd_kafka_conf_set(conf, "acks", "all", e, sizeof e) == RD_KAFKA_CONF_OK;
    /* librdkafka's assign() wants a group id; the reader never joins it (assign, not
     * subscribe) and never commits, so the replicas' group and offsets are untouched. */
    if (ok && !producer)
        ok = rd_kafka_conf_set(conf, "group.id", CLIENT_ID, e, sizeof e) == RD_KAFKA_CONF_OK &&
             rd_kafka_conf_set(conf, "enable.auto.commit", "false", e, sizeof e) ==
                 RD_KAFKA_CONF_OK &&
             rd_kafka_conf_set(conf, "enable.partition.eof", "true", e, sizeof e) ==
                 RD_KAFKA_CONF_OK;
    if (!ok) {
        snprintf(err, errlen, "kafka: %s", e);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static char *header_dup(rd_kafka_headers_t *h, const char *name)
{
    const void *v = NULL;
    size_t n = 0;
    if (!h || rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR || !v)
        return aw_strdup("");
    return aw_strndup(v, n);
}

static void keep(struct dlq *d, const rd_kafka_message_t *m)
{
    aw_grow((void **)&d->v, &d->cap, d->n + 1, sizeof *d->v);
    struct rec *r = &d->v[d->n++];
    memset(r, 0, sizeof *r);
    r->partition = m->partition;
    r->offset = m->offset;
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h)
        r->hdrs = rd_kafka_headers_copy(h);
    r->stage = header_dup(h, "aw.stage");
    r->reason = header_dup(h, "aw.reason");
    r->src_topic = header_dup(h, "aw.source.topic");
    r->src_partition = header_dup(h, "aw.source.partition");
    r->src_offset = header_dup(h, "aw.source.offset");
    r->key = m->key_len ? aw_malloc(m->key_len) : NULL;
    if (m->key_len)
        memcpy(r->key, m->key, m->key_len);
    r->key_len = m->key_len;
    r->value = aw_malloc(m->len + 1);
    if (m->len)
        memcpy(r->value, m->payload, m->len);
    ((char *)r->value)[m->len] = '\0';
    r->len = m->len;
}

/* Reads the topic from its beginning to its high watermarks as of now. */
static int read_topic(const struct aw_settings *s, struct dlq *d)
{
    char err[512];
    const char *topic = s->kafka.dlq_topic;
    rd_kafka_conf_t *conf = conf_new(s, false, err, sizeof err);
    if (!conf) {
        fprintf(stderr, "aw-worker: dlq: %s\n", err);
        return AW_ADMIN_EXIT_CONFIG;
    }
    d->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!d->rk) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "aw-worker: dlq: kafka consumer: %s\n", err);
        return AW_ADMIN_EXIT_CONFIG;
    }
    uint64_t deadline = aw_clock_mono_ms() + READ_BUDGET_MS;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(d->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(d->rk, 0, rkt, &md, META_TIMEOUT_MS);
    rd_kafka_topic_destroy(rkt);
    if (e || md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "aw-worker: dlq: topic %s: %s\n", topic,
                rd_kafka_err2str(e               ? e
                                 : md->topic_cnt ? md->topics[0].err
                                                 : e));
        if (md)
            rd_kafka_metadata_destroy(md);
        return AW_ADMIN_EXIT_FAIL;
    }
    int np = md->topics[0].partition_cnt;
    rd_kafka_topic_partition_list_t *assign = rd_kafka_topic_partition_list_new(np ? np : 1);
    int64_t *high = aw_calloc((size_t)np + 1, sizeof *high);
    bool *done = aw_calloc((size_t)np + 1, sizeof *done);
    int rc = AW_ADMIN_EXIT_OK;
    for (int i = 0; i < np; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        e = rd_kafka_query_watermark_offsets(d->rk, topic, p, &lo, &hi, META_TIMEOUT_MS);
        if (e) {
            fprintf(stderr, "aw-worker: dlq: watermarks of partition %" PRId32 ": %s\n", p,
                    rd_kafka_err2str(e));
            rc = AW_ADMIN_EXIT_FAIL;
            break;
        }
        if (p >= 0 && p < np) {
            high[p] = hi;
            done[p] = hi <= lo;
        }
        if (hi > lo)
            rd_kafka_topic_partition_list_add(assign, topic, p)->offset = lo;
    }
    rd_kafka_metadata_destroy(md);
    if (rc == AW_ADMIN_EXIT_OK && assign->cnt > 0) {
        e = rd_kafka_assign(d->rk, assign);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "aw-worker: dlq: assign: %s\n", rd_kafka_err2str(e));
            rc = AW_ADMIN_EXIT_FAIL;
        }
    }
    int left = rc == AW_ADMIN_EXIT_OK ? assign->cnt : 0;
    rd_kafka_topic_partition_list_destroy(assign);
    while (left > 0) {
        if (aw_clock_mono_ms() >= deadline) {
            fprintf(stderr, "aw-worker: dlq: not read to its end within %d s\n",
                    READ_BUDGET_MS / 1000);
            rc = AW_ADMIN_EXIT_FAIL;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(d->rk, 200);
        if (!m)
            continue;
        int32_t p = m->partition;
        bool mine = p >= 0 && p < np && !done[p];
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            fprintf(stderr, "aw-worker: dlq: warning: %s\n", rd_kafka_err2str(m->err));
        else if (mine && !m->err && m->offset < high[p])
            keep(d, m);
        /* done at the last record before the start's end, or at an end past it (offsets the
         * topic skips: compaction, transaction markers) */
        if (mine && (m->err ? m->offset >= high[p] : m->offset + 1 >= high[p])) {
            done[p] = true;
            left--;
        }
        rd_kafka_message_destroy(m);
    }
    free(high);
    free(done);
    return rc;
}

/* ---- stats ----------------------------------------------------------------------------------- */

struct count {
    const char *stage, *reason; /* borrowed from the records */
    size_t n;
};

static int count_cmp(const void *a, const void *b)
{
    const struct count *x = a, *y = b;
    int c = strcmp(x->stage, y->stage);
    return c ? c : strcmp(x->reason, y->reason);
}

static int cmd_stats(const struct aw_settings *s, const struct dlq *d, bool json)
{
    struct count *c = aw_calloc(d->n + 1, sizeof *c);
    size_t nc = 0;
    for (size_t i = 0; i < d->n; i++) {
        size_t k = 0;
        while (k < nc && (strcmp(c[k].stage, d->v[i].stage) || strcmp(c[k].reason, d->v[i].reason)))
            k++;
        if (k == nc)
            c[nc++] = (struct count){d->v[i].stage, d->v[i].reason, 0};
        c[k].n++;
    }
    qsort(c, nc, sizeof *c, count_cmp);
    int rc = AW_ADMIN_EXIT_OK;
    if (json) {
        json_t *by = json_array();
        for (size_t k = 0; k < nc; k++)
            json_array_append_new(by, json_pack("{s:s,s:s,s:I}", "stage", c[k].stage, "reason",
                                                c[k].reason, "count", (json_int_t)c[k].n));
        rc = aw_admin_print_json(json_pack("{s:s,s:I,s:o}", "topic", s->kafka.dlq_topic, "records",
                                           (json_int_t)d->n, "by", by));
    } else {
        printf("dlq topic=%s records=%zu\n", s->kafka.dlq_topic, d->n);
        for (size_t k = 0; k < nc; k++)
            printf("count stage=%s reason=%s records=%zu\n", c[k].stage, c[k].reason, c[k].n);
    }
    free(c);
    return rc;
}

/* ---- show ------------------------------------------------------------------------------------ */

static bool selected(const struct rec *r, const char *reason)
{
    return !reason || strcmp(r->reason, reason) == 0;
}

static json_t *bytes_json(const void *p, size_t n)
{
    json_t *v = p ? json_stringn(p, n) : json_null();
    return v ? v : json_string("(not UTF-8)");
}

static int cmd_show(const struct aw_settings *s, const struct dlq *d, const struct aw_admin_opts *o)
{
    size_t limit = o->limit > 0 ? (size_t)o->limit : SHOW_DEFAULT, shown = 0, matching = 0;
    json_t *arr = o->json ? json_array() : NULL;
    for (size_t i = 0; i < d->n; i++) {
        const struct rec *r = &d->v[i];
        if (!selected(r, o->reason))
            continue;
        matching++;
        if (shown >= limit)
            continue;
        shown++;
        if (arr) {
            json_array_append_new(
                arr,
                json_pack("{s:i,s:I,s:s,s:s,s:s,s:s,s:s,s:o,s:o}", "partition", (int)r->partition,
                          "offset", (json_int_t)r->offset, "stage", r->stage, "reason", r->reason,
                          "source_topic", r->src_topic, "source_partition", r->src_partition,
                          "source_offset", r->src_offset, "key", bytes_json(r->key, r->key_len),
                          "value", bytes_json(r->value, r->len)));
            continue;
        }
        size_t cap = 4 * (r->len > r->key_len ? r->len : r->key_len) + 16;
        char *q = aw_malloc(cap);
        char *kq = aw_malloc(cap);
        printf("record partition=%" PRId32 " offset=%" PRId64
               " stage=%s reason=%s source_topic=%s source_partition=%s source_offset=%s",
               r->partition, r->offset, r->stage, r->reason, r->src_topic, r->src_partition,
               r->src_offset);
        char *key = aw_strndup(r->key ? r->key : "", r->key_len);
        printf(" key=%s value=%s\n", aw_log_quote(kq, (unsigned)cap, key),
               aw_log_quote(q, (unsigned)cap, r->value));
        free(key);
        free(kq);
        free(q);
    }
    if (arr)
        return aw_admin_print_json(json_pack("{s:s,s:I,s:I,s:o}", "topic", s->kafka.dlq_topic,
                                             "matching", (json_int_t)matching, "shown",
                                             (json_int_t)shown, "records", arr));
    printf("dlq topic=%s records=%zu matching=%zu shown=%zu\n", s->kafka.dlq_topic, d->n, matching,
           shown);
    return AW_ADMIN_EXIT_OK;
}

/* ---- replay ---------------------------------------------------------------------------------- */

/* Delivery reports: failures counted in *opaque. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    size_t *failed = opaque;
    if (m->err)
        (*failed)++;
}

/* A record holding the original message: a decode or store dead letter (no envelope). */
static bool holds_original(const struct rec *r)
{
    return strcmp(r->stage, "decode") == 0 || strcmp(r->stage, "store") == 0;
}

/* The input topic a record came from, if it is one of AW_KAFKA_TOPICS, else the first. */
static const char *target_topic(const struct aw_settings *s, const struct rec *r)
{
    for (size_t i = 0; i < s->kafka.n_topics; i++)
        if (strcmp(s->kafka.topics[i], r->src_topic) == 0)
            return s->kafka.topics[i];
    return s->kafka.topics[0];
}

static enum aw_err produce(rd_kafka_t *p, const char *topic, const struct rec *r)
{
    rd_kafka_headers_t *h = r->hdrs ? rd_kafka_headers_copy(r->hdrs) : rd_kafka_headers_new(0);
    static const char *const ours[] = {"aw.reason", "aw.stage", "aw.source.topic",
                                       "aw.source.partition", "aw.source.offset"};
    for (size_t i = 0; i < sizeof ours / sizeof *ours; i++)
        (void)rd_kafka_header_remove(h, ours[i]); /* the source record's own headers remain */
    rd_kafka_vu_t vu[5];
    memset(vu, 0, sizeof vu);
    vu[0].vtype = RD_KAFKA_VTYPE_TOPIC;
    vu[0].u.cstr = topic;
    vu[1].vtype = RD_KAFKA_VTYPE_VALUE;
    vu[1].u.mem.ptr = r->value;
    vu[1].u.mem.size = r->len;
    vu[2].vtype = RD_KAFKA_VTYPE_KEY;
    vu[2].u.mem.ptr = r->key;
    vu[2].u.mem.size = r->key_len;
    vu[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[3].u.i = RD_KAFKA_MSG_F_COPY;
    vu[4].vtype = RD_KAFKA_VTYPE_HEADERS;
    vu[4].u.headers = h;
    for (int attempt = 0;; attempt++) {
        rd_kafka_error_t *e = rd_kafka_produceva(p, vu, 5);
        if (!e)
            return AW_OK;
        bool full = rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__QUEUE_FULL;
        rd_kafka_error_destroy(e);
        if (!full || attempt >= 50) {
            rd_kafka_headers_destroy(h); /* not taken on failure */
            return AW_ERR_IO;
        }
        rd_kafka_poll(p, 100);
    }
}

static int cmd_replay(const struct aw_settings *s, const struct dlq *d,
                      const struct aw_admin_opts *o)
{
    size_t selected_n = 0, skipped = 0, queued = 0, failed = 0, dr_failed = 0;
    size_t limit = o->limit > 0 ? (size_t)o->limit : (size_t)-1;
    rd_kafka_t *p = NULL;
    if (!o->dry_run) {
        char err[512];
        rd_kafka_conf_t *conf = conf_new(s, true, err, sizeof err);
        if (conf) {
            rd_kafka_conf_set_opaque(conf, &dr_failed);
            rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
            p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
            if (!p)
                rd_kafka_conf_destroy(conf);
        }
        if (!p) {
            fprintf(stderr, "aw-worker: dlq replay: kafka producer: %s\n", err);
            return AW_ADMIN_EXIT_CONFIG;
        }
    }
    for (size_t i = 0; i < d->n && selected_n < limit; i++) {
        const struct rec *r = &d->v[i];
        if (!selected(r, o->reason))
            continue;
        if (!holds_original(r)) {
            skipped++;
            continue;
        }
        selected_n++;
        if (p && produce(p, target_topic(s, r), r) != AW_OK)
            failed++;
        else if (p)
            queued++;
    }
    size_t undelivered = 0;
    if (p) {
        if (rd_kafka_flush(p, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR)
            undelivered = (size_t)rd_kafka_outq_len(p);
        rd_kafka_destroy(p);
    }
    undelivered += dr_failed;
    size_t delivered = queued >= undelivered ? queued - undelivered : 0;
    failed += undelivered;
    int rc = AW_ADMIN_EXIT_OK;
    if (o->json)
        rc = aw_admin_print_json(json_pack("{s:s,s:s,s:b,s:I,s:I,s:I,s:I}", "reason", o->reason,
                                           "topic", s->kafka.topics[0], "dry_run", o->dry_run,
                                           "selected", (json_int_t)selected_n, "produced",
                                           (json_int_t)delivered, "failed", (json_int_t)failed,
                                           "skipped_envelopes", (json_int_t)skipped));
    else
        printf("replay reason=%s dry_run=%s selected=%zu produced=%zu failed=%zu "
               "skipped_envelopes=%zu\n",
               o->reason, o->dry_run ? "true" : "false", selected_n, delivered, failed, skipped);
    if (failed) {
        fprintf(stderr, "aw-worker: dlq replay: %zu records were not delivered\n", failed);
        rc = AW_ADMIN_EXIT_FAIL;
    }
    return rc;
}

/* ---- The command ----------------------------------------------------------------------------- */

int aw_admin_dlq(const struct aw_admin_cmd *cmd, const struct aw_admin_opts *o)
{
    const char *sub = o->pos[0];
    bool stats = strcmp(sub, "stats") == 0, show = strcmp(sub, "show") == 0,
         replay = strcmp(sub, "replay") == 0;
    const char *bad = !stats && !show && !replay             ? "unknown subcommand"
                      : stats && (o->reason || o->limit > 0) ? "stats takes no --reason or --limit"
                      : !replay && o->dry_run                ? "--dry-run goes with replay"
                      : replay && !o->reason                 ? "replay needs --reason"
                                                             : NULL;
    if (bad) {
        fprintf(stderr, "aw-worker dlq: %s\n\n%s", bad, cmd->help);
        return AW_ADMIN_EXIT_USAGE;
    }
    struct aw_settings s;
    int rc = aw_admin_settings(&s);
    if (rc != AW_ADMIN_EXIT_OK)
        return rc;
    if (!s.kafka.brokers) {
        fprintf(stderr, "aw-worker: AW_KAFKA_BROKERS: required by dlq\n");
        aw_settings_free(&s);
        return AW_ADMIN_EXIT_CONFIG;
    }
    struct dlq d = {0};
    rc = read_topic(&s, &d);
    if (rc == AW_ADMIN_EXIT_OK)
        rc = stats  ? cmd_stats(&s, &d, o->json)
             : show ? cmd_show(&s, &d, o)
                    : cmd_replay(&s, &d, o);
    if (rc == AW_ADMIN_EXIT_OK && fflush(stdout) != 0)
        rc = AW_ADMIN_EXIT_FAIL;
    dlq_clear(&d);
    aw_settings_free(&s);
    return rc;
}
