/* bench_e2e.c -- the client side of bench/ingest_e2e.sh (the end-to-end ingest benchmark): it
 * generates the input, produces it to Kafka, measures the in-run ceilings and the latency.
 *
 *   bench_e2e stats   FIRST N ACCOUNTS USERS                  sizes of the input
 *   bench_e2e dump    FIRST N ACCOUNTS USERS                  the input, a message a line
 *   bench_e2e produce BROKERS TOPIC FIRST N ACCOUNTS USERS    as fast as librdkafka goes
 *   bench_e2e parse   FIRST N ACCOUNTS USERS REPS             ceiling: bare json_loadb, CPU time
 *   bench_e2e latency BROKERS TOPIC REDIS_HOST REDIS_PORT FIRST N ACCOUNTS USERS RATE
 *
 * Message i (deterministic, so every mode sees the same bytes) is an
 * audience_membership_change_request of 3 profiles x 2 audiences, account 4200 + i % ACCOUNTS,
 * timestamp 1714592744000 + i. Each profile: a raw email (mixed case, blanks around), a
 * customer id, a mobile number (national "020 7946 ...", read in the region of its `$Country`
 * GB; international "+44 7700 9....."; national US "(201) 555-...." read in `$Country` "USA";
 * every 8th message's second profile has none), GDPR marketing consent with a timestamp, and 7
 * attributes ($FirstName, $LastName, $Country, $City, tier, score, tags as a list_value). The
 * first audience (100 + i % 4, with a listId) is "add"; the second (200 + i % 3, found by
 * name) is "add", every 4th message "delete". Both map marketing consent to email. Profile u
 * of message i is user (3 i + u) % USERS (USERS 0 = every user new), so USERS bounds what Redis
 * keeps in a long run. Every profile maps: 6 changes per message.
 *
 * latency: produces messages FIRST.. at RATE messages/s for N messages; the first profile of
 * each is a probe user (probe-<i>@...). Redis keyspace notifications (enabled for the run,
 * restored after) report the first write of each probe user's hash; latency = that moment -
 * the moment its message was handed to the producer. Prints p50/p90/p99/max.
 *
 * Output: key=value lines for the script. Exit 1 on any failure (a record not delivered). */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv);

#define PROFILES 3
#define MSG_MAX 8192

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long arg_long(const char *s)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || v < 0) {
        fprintf(stderr, "bench_e2e: bad number '%s'\n", s);
        exit(2);
    }
    return v;
}

/* Appends one profile of message i; returns the bytes written (its JSON size) or 0. */
static size_t profile(char *out, size_t cap, long i, int p, long users, bool probe)
{
    long u = i * PROFILES + p;
    if (users > 0)
        u %= users;
    char email[64], phone[40];
    if (probe)
        snprintf(email, sizeof email, "probe-%ld@bench.example", i);
    else
        snprintf(email, sizeof email, " User%ld@Example.COM ", u);
    const char *country = p == 2 ? "USA" : "GB";
    if (p == 0)
        snprintf(phone, sizeof phone, "020 7946 %04ld", u % 10000);
    else if (p == 1)
        snprintf(phone, sizeof phone, "+44 7700 9%05ld", u % 100000);
    else
        snprintf(phone, sizeof phone, "(201) 555-%04ld", u % 10000);
    bool no_phone = p == 1 && i % 8 == 0;
    char phone_id[96] = "";
    if (!no_phone)
        snprintf(phone_id, sizeof phone_id,
                 ",{\"type\":\"mobile_number\",\"encoding\":\"raw\",\"value\":\"%s\"}", phone);
    char attrs[700];
    snprintf(attrs, sizeof attrs,
             "[{\"key\":\"$FirstName\",\"value\":\"Ann\",\"action\":\"upsert\"},"
             "{\"key\":\"$LastName\",\"value\":\"Number %ld\",\"action\":\"upsert\"},"
             "{\"key\":\"$Country\",\"value\":\"%s\",\"action\":\"upsert\"},"
             "{\"key\":\"$City\",\"value\":\"London\",\"action\":\"upsert\"},"
             "{\"key\":\"tier\",\"value\":\"%s\",\"action\":\"upsert\"},"
             "{\"key\":\"score\",\"value\":%ld,\"action\":\"upsert\"},"
             "{\"key\":\"tags\",\"list_value\":[\"a\",\"b\"],\"action\":\"upsert\"}]",
             u, country, i % 2 ? "silver" : "gold", (u * 7 + i) % 1000);
    const char *consent = "{\\\"map\\\":\\\"marketing\\\",\\\"value\\\":\\\"email_marketing\\\"}";
    int n = snprintf(
        out, cap,
        "{\"mpid\":\"%ld\",\"user_identities\":[{\"type\":\"email\",\"encoding\":\"raw\","
        "\"value\":\"%s\"},{\"type\":\"customer\",\"encoding\":\"raw\",\"value\":\"c-%ld\"}%s],"
        "\"consent_state\":{\"gdpr\":{\"marketing\":{\"consented\":%s,"
        "\"timestamp_unixtime_ms\":%ld}}},\"audiences\":["
        "{\"audience_id\":%ld,\"audience_name\":\"Bench %ld\",\"action\":\"add\","
        "\"audience_subscription_settings\":{\"listId\":\"L%ld\",\"consentMapping\":\"[%s]\"},"
        "\"user_attributes\":%s},"
        "{\"audience_id\":%ld,\"audience_name\":\"Other %ld\",\"action\":\"%s\","
        "\"audience_subscription_settings\":{\"consentMapping\":\"[%s]\"},"
        "\"user_attributes\":%s}]}",
        u, email, u, phone_id, (i + p) % 5 ? "true" : "false", 1714592000000L + i, 100 + i % 4,
        100 + i % 4, 100 + i % 4, consent, attrs, 200 + i % 3, 200 + i % 3,
        i % 4 == 3 ? "delete" : "add", consent, attrs);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Message i into out (MSG_MAX); its length, and the JSON bytes of its profiles added to
 * *profile_bytes. */
static size_t message(char *out, long i, long accounts, long users, bool probe,
                      size_t *profile_bytes)
{
    int len = snprintf(out, MSG_MAX,
                       "{\"type\":\"audience_membership_change_request\",\"id\":\"e2e-%ld\","
                       "\"timestamp_ms\":%ld,\"firehose_version\":\"3.2.0\",\"account\":"
                       "{\"account_id\":%ld,\"account_settings\":{\"apiKey\":\"pk_bench_%ld\","
                       "\"alternateIdentifier\":\"customer\"}},\"user_profiles\":[",
                       i, 1714592744000L + i, 4200 + i % accounts, 4200 + i % accounts);
    size_t n = (size_t)len;
    for (int p = 0; p < PROFILES; p++) {
        if (p)
            out[n++] = ',';
        size_t w = profile(out + n, MSG_MAX - n - 4, i, p, users, probe && p == 0);
        if (w == 0) {
            fprintf(stderr, "bench_e2e: message %ld too large\n", i);
            exit(1);
        }
        n += w;
        *profile_bytes += w;
    }
    memcpy(out + n, "]}", 3);
    return n + 2;
}

/* ---- produce ------------------------------------------------------------------------------- */

static atomic_long delivered, failed;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err)
        atomic_fetch_add(&failed, 1);
    else
        atomic_fetch_add(&delivered, 1);
}

static rd_kafka_t *producer(const char *brokers)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err) ||
        rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", err, sizeof err) ||
        rd_kafka_conf_set(conf, "queue.buffering.max.kbytes", "2000000", err, sizeof err) ||
        rd_kafka_conf_set(conf, "message.timeout.ms", "60000", err, sizeof err) ||
        rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err)) {
        fprintf(stderr, "bench_e2e: producer config: %s\n", err);
        exit(1);
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "bench_e2e: producer: %s\n", err);
        exit(1);
    }
    return rk;
}

static void produce_one(rd_kafka_t *rk, const char *topic, const char *buf, size_t len, long i)
{
    char key[32];
    int kl = snprintf(key, sizeof key, "e2e-%ld", i);
    /* rd_kafka_produceva, not producev: producev's macros are GNU statement expressions,
     * which clang -Werror refuses in this C11 tree */
    rd_kafka_vu_t vu[4];
    memset(vu, 0, sizeof vu);
    vu[0].vtype = RD_KAFKA_VTYPE_TOPIC;
    vu[0].u.cstr = topic;
    vu[1].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[1].u.i = RD_KAFKA_MSG_F_COPY;
    vu[2].vtype = RD_KAFKA_VTYPE_KEY;
    vu[2].u.mem.ptr = key;
    vu[2].u.mem.size = (size_t)kl;
    vu[3].vtype = RD_KAFKA_VTYPE_VALUE;
    vu[3].u.mem.ptr = (void *)buf;
    vu[3].u.mem.size = len;
    for (;;) {
        rd_kafka_error_t *err = rd_kafka_produceva(rk, vu, 4);
        rd_kafka_resp_err_t e = err ? rd_kafka_error_code(err) : RD_KAFKA_RESP_ERR_NO_ERROR;
        if (err)
            rd_kafka_error_destroy(err);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            fprintf(stderr, "bench_e2e: produce: %s\n", rd_kafka_err2str(e));
            exit(1);
        }
        rd_kafka_poll(rk, 10);
    }
    rd_kafka_poll(rk, 0);
}

static int finish_produce(rd_kafka_t *rk, long n)
{
    rd_kafka_flush(rk, 60000);
    long ok = atomic_load(&delivered), bad = atomic_load(&failed);
    printf("produced=%ld\nproduce_failed=%ld\n", ok, bad);
    rd_kafka_destroy(rk);
    return ok == n && bad == 0 ? 0 : 1;
}

static int cmd_produce(char **a)
{
    const char *brokers = a[0], *topic = a[1];
    long first = arg_long(a[2]), n = arg_long(a[3]), accounts = arg_long(a[4]);
    long users = arg_long(a[5]);
    rd_kafka_t *rk = producer(brokers);
    char *buf = malloc(MSG_MAX);
    size_t pb = 0, bytes = 0;
    double t0 = now_s();
    for (long i = first; i < first + n; i++) {
        size_t len = message(buf, i, accounts, users, false, &pb);
        bytes += len;
        produce_one(rk, topic, buf, len, i);
    }
    int rc = finish_produce(rk, n);
    printf("produce_wall_s=%.3f\nproduced_bytes=%zu\n", now_s() - t0, bytes);
    free(buf);
    return rc;
}

static int cmd_stats(char **a, bool dump)
{
    long first = arg_long(a[0]), n = arg_long(a[1]), accounts = arg_long(a[2]);
    long users = arg_long(a[3]);
    char *buf = malloc(MSG_MAX);
    size_t pb = 0, bytes = 0;
    for (long i = first; i < first + n; i++) {
        size_t len = message(buf, i, accounts, users, false, &pb);
        bytes += len;
        if (dump)
            printf("%s\n", buf);
    }
    if (dump) {
        free(buf);
        return 0;
    }
    printf("messages=%ld\nchanges=%ld\nmessage_json_bytes=%.1f\nprofile_json_bytes=%.1f\n", n,
           n * PROFILES * 2, (double)bytes / (double)n, (double)pb / (double)(n * PROFILES));
    free(buf);
    return 0;
}

/* ---- parse: the json_loadb ceiling ----------------------------------------------------------- */

static int cmd_parse(char **a)
{
    long first = arg_long(a[0]), n = arg_long(a[1]), accounts = arg_long(a[2]);
    long users = arg_long(a[3]), reps = arg_long(a[4]);
    char **msgs = calloc((size_t)n, sizeof *msgs);
    size_t *lens = calloc((size_t)n, sizeof *lens), pb = 0;
    char *buf = malloc(MSG_MAX);
    for (long i = 0; i < n; i++) {
        lens[i] = message(buf, first + i, accounts, users, false, &pb);
        msgs[i] = malloc(lens[i] + 1);
        memcpy(msgs[i], buf, lens[i] + 1);
    }
    double best = 0;
    size_t sink = 0;
    for (long r = 0; r < (reps ? reps : 1); r++) {
        double c0 = cpu_s();
        for (long i = 0; i < n; i++) {
            json_t *j = json_loadb(msgs[i], lens[i], 0, NULL);
            sink += json_object_size(j);
            json_decref(j);
        }
        double c = cpu_s() - c0;
        if (r == 0 || c < best)
            best = c;
    }
    printf("parse_cpu_s=%.6f\nparse_changes_per_cpu_s=%.0f\n", best,
           (double)(n * PROFILES * 2) / best);
    for (long i = 0; i < n; i++)
        free(msgs[i]);
    free(msgs);
    free(lens);
    free(buf);
    return sink == 0;
}

/* ---- latency ------------------------------------------------------------------------------- */

struct lat {
    long first, n;
    double *sent; /* produce time per probe, 0 until produced */
    double *seen; /* first notification time per probe */
    atomic_long n_seen;
    redisContext *sub;
};

static void *subscriber(void *arg)
{
    struct lat *l = arg;
    for (;;) {
        redisReply *r = NULL;
        if (redisGetReply(l->sub, (void **)&r) != REDIS_OK || !r)
            return NULL; /* the main thread closed the socket */
        double t = now_s();
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
            r->element[2]->type == REDIS_REPLY_STRING) {
            const char *p = strstr(r->element[2]->str, ":u:probe-");
            if (p) {
                long i = strtol(p + 9, NULL, 10) - l->first;
                if (i >= 0 && i < l->n && l->seen[i] == 0) {
                    l->seen[i] = t;
                    atomic_fetch_add(&l->n_seen, 1);
                }
            }
        }
        freeReplyObject(r);
    }
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static redisContext *redis_connect(const char *host, int port)
{
    redisContext *c = redisConnect(host, port);
    if (!c || c->err) {
        fprintf(stderr, "bench_e2e: redis: %s\n", c ? c->errstr : "cannot connect");
        exit(1);
    }
    return c;
}

static int cmd_latency(char **a)
{
    const char *brokers = a[0], *topic = a[1], *host = a[2];
    int port = (int)arg_long(a[3]);
    struct lat l = {.first = arg_long(a[4]), .n = arg_long(a[5])};
    long accounts = arg_long(a[6]), users = arg_long(a[7]), rate = arg_long(a[8]);
    if (l.n == 0 || rate == 0)
        return 2;
    l.sent = calloc((size_t)l.n, sizeof *l.sent);
    l.seen = calloc((size_t)l.n, sizeof *l.seen);

    redisContext *ctl = redis_connect(host, port);
    redisReply *r = redisCommand(ctl, "CONFIG GET notify-keyspace-events");
    char old[64] = "";
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        snprintf(old, sizeof old, "%s", r->element[1]->str);
    freeReplyObject(r);
    freeReplyObject(redisCommand(ctl, "CONFIG SET notify-keyspace-events Kh"));
    l.sub = redis_connect(host, port);
    r = redisCommand(l.sub, "PSUBSCRIBE __keyspace@*__:*:u:probe-*");
    freeReplyObject(r);
    pthread_t th;
    pthread_create(&th, NULL, subscriber, &l);

    rd_kafka_t *rk = producer(brokers);
    char *buf = malloc(MSG_MAX);
    size_t pb = 0;
    double t0 = now_s();
    for (long k = 0; k < l.n; k++) {
        size_t len = message(buf, l.first + k, accounts, users, true, &pb);
        double due = t0 + (double)k / (double)rate;
        for (double t = now_s(); t < due; t = now_s()) {
            double wait = due - t;
            struct timespec ts = {0, (long)(wait * 1e9)};
            if (wait > 0.002)
                rd_kafka_poll(rk, (int)(wait * 1000));
            else
                nanosleep(&ts, NULL);
        }
        l.sent[k] = now_s();
        produce_one(rk, topic, buf, len, l.first + k);
    }
    double offered_s = now_s() - t0;
    int rc = finish_produce(rk, l.n);
    for (double end = now_s() + 60; atomic_load(&l.n_seen) < l.n && now_s() < end;)
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    long seen = atomic_load(&l.n_seen);
    shutdown(l.sub->fd, 2);
    pthread_join(th, NULL);
    redisFree(l.sub);
    freeReplyObject(redisCommand(ctl, "CONFIG SET notify-keyspace-events %s", old));
    redisFree(ctl);

    double *lat = calloc((size_t)l.n, sizeof *lat);
    size_t m = 0;
    for (long k = 0; k < l.n; k++)
        if (l.seen[k] > 0)
            lat[m++] = (l.seen[k] - l.sent[k]) * 1000;
    qsort(lat, m, sizeof *lat, cmp_double);
    printf("latency_offered_msgs_per_s=%.0f\nlatency_probes=%ld\nlatency_seen=%ld\n",
           (double)l.n / offered_s, l.n, seen);
    if (m > 0)
        printf("latency_p50_ms=%.1f\nlatency_p90_ms=%.1f\nlatency_p99_ms=%.1f\n"
               "latency_max_ms=%.1f\n",
               lat[m / 2], lat[m * 9 / 10], lat[m * 99 / 100], lat[m - 1]);
    free(lat);
    free(buf);
    free(l.sent);
    free(l.seen);
    return rc || seen != l.n;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && strcmp(argv[1], "stats") == 0)
        return cmd_stats(argv + 2, false);
    if (argc >= 6 && strcmp(argv[1], "dump") == 0)
        return cmd_stats(argv + 2, true);
    if (argc >= 8 && strcmp(argv[1], "produce") == 0)
        return cmd_produce(argv + 2);
    if (argc >= 7 && strcmp(argv[1], "parse") == 0)
        return cmd_parse(argv + 2);
    if (argc >= 11 && strcmp(argv[1], "latency") == 0)
        return cmd_latency(argv + 2);
    fprintf(stderr, "usage: bench_e2e stats|dump FIRST N ACCOUNTS USERS\n"
                    "       bench_e2e produce BROKERS TOPIC FIRST N ACCOUNTS USERS\n"
                    "       bench_e2e parse FIRST N ACCOUNTS USERS REPS\n"
                    "       bench_e2e latency BROKERS TOPIC REDIS_HOST REDIS_PORT FIRST N "
                    "ACCOUNTS USERS RATE\n");
    return 2;
}
