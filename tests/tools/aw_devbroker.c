/* aw_devbroker.c -- a small development Kafka "cluster" for integration tests and the local stack,
 * built on librdkafka's mock cluster (rdkafka_mock.h). Test tool only: never shipped.
 *
 * Usage: aw_devbroker [--brokers N] [--topic NAME:PARTITIONS[:REPLICAS]]... [--bootstrap-file PATH]
 *                     [--pid-file PATH] [--log-level debug|info|warn|error] [--debug CONTEXTS]
 *                     [--leader TOPIC:BROKER_ID] [--stall-broker BROKER_ID]
 *
 * Faults for tests: --leader puts every partition of TOPIC on broker BROKER_ID (ids start at 1);
 * with --stall-broker, SIGUSR1 takes that broker down (connections refused: its partitions
 * stall) and SIGUSR2 brings it back.
 *
 * Creates N mock brokers listening on 127.0.0.1 (kernel-chosen ports), creates the topics, prints
 * the bootstrap list ("127.0.0.1:port,...") on stdout, writes it atomically (tmp + rename) to
 * --bootstrap-file when given, then waits for SIGTERM/SIGINT, destroys the cluster and exits 0.
 * Exit 2 on bad usage, 1 on a runtime failure.
 *
 * Verified with librdkafka 2.0.2 (tests/integration/test_devbroker.sh): produce with keys and
 * headers, fetch, consumer groups with the cooperative-sticky assignor (client-side assignment),
 * OffsetCommit/OffsetFetch, LeaveGroup. Limits of the 2.0.2 mock to keep in mind:
 *  - After the last member of a group leaves, the group sits in "Joining" for the departed member's
 *    session.timeout.ms minus 1 s; a new member's JoinGroup waits that long (44 s with the default
 *    45 s). The very first join of a group waits 3 s. Use session.timeout.ms=6000 against it.
 *  - The coordinator picks the first member as leader and the leader's first protocol; members of
 *    one group must list the same assignor first, or the mock asserts and the process aborts.
 *  - Metadata requests auto-create unknown topics (4 partitions), from consumers too, so a topic
 *    name typo is silent. The CreateTopics admin API is not supported: use --topic.
 *  - Records and committed offsets live in memory only; a restart loses them. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>

#include "common/log.h"

#define DEVBROKER_MAX_TOPICS 64
#define DEVBROKER_MAX_BROKERS 16
#define DEVBROKER_MAX_PARTITIONS 1024
#define DEVBROKER_MOD "devbroker"

struct devbroker_topic {
    const char *spec; /* borrowed from argv, for messages */
    char name[250];   /* Kafka's topic name limit is 249 characters */
    int partitions;
    int replicas; /* 0: default min(3, brokers) */
};

struct devbroker_opts {
    int brokers;
    size_t topic_cnt;
    struct devbroker_topic topics[DEVBROKER_MAX_TOPICS];
    const char *bootstrap_file;
    const char *pid_file;
    const char *debug;         /* librdkafka "debug" contexts for the host handle, e.g. "mock" */
    char leader_topic[4][256]; /* --leader (repeatable): every partition of leader_topic[i] on
                                  leader_broker[i] */
    int leader_broker[4];
    size_t n_leaders;
    int stall_broker; /* --stall-broker: SIGUSR1 takes it down, SIGUSR2 up (0 = none) */
};

static void usage(FILE *out)
{
    fputs("usage: aw_devbroker [--brokers N] [--topic NAME:PARTITIONS[:REPLICAS]]...\n"
          "                    [--bootstrap-file PATH] [--pid-file PATH] [--log-level LEVEL]\n"
          "                    [--debug RDKAFKA_DEBUG_CONTEXTS (e.g. mock)]\n"
          "                    [--leader TOPIC:BROKER_ID] [--stall-broker BROKER_ID]\n"
          "Runs a librdkafka mock Kafka cluster on 127.0.0.1 until SIGTERM/SIGINT.\n",
          out);
}

static bool parse_int(const char *s, long min, long max, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return false;
    *out = (int)v;
    return true;
}

/* NAME:PARTITIONS[:REPLICAS]; the name may not contain ':' (Kafka forbids it anyway). */
static bool parse_topic(const char *spec, struct devbroker_topic *t)
{
    const char *colon = strchr(spec, ':');
    if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof t->name)
        return false;
    memcpy(t->name, spec, (size_t)(colon - spec));
    t->name[colon - spec] = '\0';
    t->spec = spec;

    char num[32];
    const char *p = colon + 1;
    const char *colon2 = strchr(p, ':');
    size_t len = colon2 ? (size_t)(colon2 - p) : strlen(p);
    if (len == 0 || len >= sizeof num)
        return false;
    memcpy(num, p, len);
    num[len] = '\0';
    if (!parse_int(num, 1, DEVBROKER_MAX_PARTITIONS, &t->partitions))
        return false;
    t->replicas = 0;
    if (colon2 && !parse_int(colon2 + 1, 1, DEVBROKER_MAX_BROKERS, &t->replicas))
        return false;
    return true;
}

/* Returns 0 on success, 2 on bad usage (message printed), -1 when --help was printed. */
static int parse_args(int argc, char **argv, struct devbroker_opts *o)
{
    memset(o, 0, sizeof *o);
    o->brokers = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return -1;
        }
        if (!v) {
            fprintf(stderr, "aw_devbroker: %s needs a value (or is unknown)\n", a);
            usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(a, "--brokers") == 0) {
            if (!parse_int(v, 1, DEVBROKER_MAX_BROKERS, &o->brokers)) {
                fprintf(stderr, "aw_devbroker: --brokers must be 1..%d\n", DEVBROKER_MAX_BROKERS);
                return 2;
            }
        } else if (strcmp(a, "--topic") == 0) {
            if (o->topic_cnt == DEVBROKER_MAX_TOPICS) {
                fprintf(stderr, "aw_devbroker: at most %d topics\n", DEVBROKER_MAX_TOPICS);
                return 2;
            }
            if (!parse_topic(v, &o->topics[o->topic_cnt])) {
                fprintf(stderr,
                        "aw_devbroker: bad --topic '%s' (want NAME:PARTITIONS[:REPLICAS], "
                        "partitions 1..%d)\n",
                        v, DEVBROKER_MAX_PARTITIONS);
                return 2;
            }
            o->topic_cnt++;
        } else if (strcmp(a, "--leader") == 0) {
            const char *colon = strrchr(v, ':');
            size_t k = o->n_leaders;
            if (k == 4 || !colon || colon == v ||
                (size_t)(colon - v) >= sizeof o->leader_topic[0] ||
                !parse_int(colon + 1, 1, DEVBROKER_MAX_BROKERS, &o->leader_broker[k])) {
                fprintf(stderr,
                        "aw_devbroker: bad --leader '%s' (want TOPIC:BROKER_ID, at most 4)\n", v);
                return 2;
            }
            memcpy(o->leader_topic[k], v, (size_t)(colon - v));
            o->leader_topic[k][colon - v] = '\0';
            o->n_leaders++;
        } else if (strcmp(a, "--stall-broker") == 0) {
            if (!parse_int(v, 1, DEVBROKER_MAX_BROKERS, &o->stall_broker)) {
                fprintf(stderr, "aw_devbroker: bad --stall-broker '%s'\n", v);
                return 2;
            }
        } else if (strcmp(a, "--bootstrap-file") == 0) {
            o->bootstrap_file = v;
        } else if (strcmp(a, "--pid-file") == 0) {
            o->pid_file = v;
        } else if (strcmp(a, "--debug") == 0) {
            o->debug = v;
            aw_log_set_level(AW_LOG_LEVEL_DEBUG);
        } else if (strcmp(a, "--log-level") == 0) {
            enum aw_log_level lvl;
            if (!aw_log_parse_level(v, &lvl)) {
                fprintf(stderr, "aw_devbroker: bad --log-level '%s'\n", v);
                return 2;
            }
            aw_log_set_level(lvl);
        } else {
            fprintf(stderr, "aw_devbroker: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    for (size_t i = 0; i < o->topic_cnt; i++) {
        struct devbroker_topic *t = &o->topics[i];
        if (t->replicas == 0)
            t->replicas = o->brokers < 3 ? o->brokers : 3;
        if (t->replicas > o->brokers) {
            fprintf(stderr, "aw_devbroker: --topic '%s': replicas %d > brokers %d\n", t->spec,
                    t->replicas, o->brokers);
            return 2;
        }
    }
    return 0;
}

/* Writes text + '\n' to path through path.tmp.<pid> and rename(), so a reader polling for path
 * never sees a partial file. */
static bool write_file_atomic(const char *path, const char *text)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) {
        AW_LOG_ERROR(DEVBROKER_MOD, "path too long", "path_len=%zu", strlen(path));
        return false;
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        AW_LOG_ERROR(DEVBROKER_MOD, "cannot create file", "path=%s errno=%d", tmp, errno);
        return false;
    }
    bool ok = fprintf(f, "%s\n", text) >= 0;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, path) != 0)
        ok = false;
    if (!ok) {
        AW_LOG_ERROR(DEVBROKER_MOD, "cannot write file", "path=%s errno=%d", path, errno);
        unlink(tmp);
    }
    return ok;
}

/* librdkafka logs from its own threads; aw_log_write is thread-safe (one write() per line). */
static void forward_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* The host handle has no bootstrap.servers on purpose; its warning would only mislead. */
    if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "bootstrap.servers") != NULL)
        return;
    char qfac[64];
    char qbuf[512];
    aw_log_quote(qfac, sizeof qfac, fac);
    aw_log_quote(qbuf, sizeof qbuf, buf);
    if (level <= 3)
        AW_LOG_ERROR(DEVBROKER_MOD, "rdkafka", "fac=%s detail=%s", qfac, qbuf);
    else if (level <= 4)
        AW_LOG_WARN(DEVBROKER_MOD, "rdkafka", "fac=%s detail=%s", qfac, qbuf);
    else if (level <= 6)
        AW_LOG_INFO(DEVBROKER_MOD, "rdkafka", "fac=%s detail=%s", qfac, qbuf);
    else
        AW_LOG_DEBUG(DEVBROKER_MOD, "rdkafka", "fac=%s detail=%s", qfac, qbuf);
}

/* A bare producer handle: no bootstrap servers, never produces; the mock cluster needs an
 * rd_kafka_t for its bookkeeping and its I/O thread. */
static rd_kafka_t *new_host_handle(const char *debug)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, forward_log);
    if (rd_kafka_conf_set(conf, "client.id", "aw_devbroker", errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK ||
        (debug &&
         rd_kafka_conf_set(conf, "debug", debug, errstr, sizeof errstr) != RD_KAFKA_CONF_OK)) {
        AW_LOG_ERROR(DEVBROKER_MOD, "config failed", "detail=\"%s\"", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        AW_LOG_ERROR(DEVBROKER_MOD, "rd_kafka_new failed", "detail=\"%s\"", errstr);
        rd_kafka_conf_destroy(conf); /* not taken on failure */
    }
    return rk;
}

int main(int argc, char **argv)
{
    struct devbroker_opts opts;
    int rc = parse_args(argc, argv, &opts);
    if (rc != 0)
        return rc < 0 ? 0 : rc;

    /* Block the stop signals before librdkafka starts threads (they inherit the mask), so only
     * sigwait() below ever sees them; a peer closing a socket must not kill us with SIGPIPE. */
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGUSR1); /* --stall-broker: down */
    sigaddset(&stop_set, SIGUSR2); /* --stall-broker: up */
    if (pthread_sigmask(SIG_BLOCK, &stop_set, NULL) != 0) {
        AW_LOG_ERROR(DEVBROKER_MOD, "pthread_sigmask failed", "%s", "");
        return 1;
    }
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, NULL);

    rc = 1;
    bool wrote_pid = false;
    bool wrote_bootstrap = false;
    rd_kafka_mock_cluster_t *mcluster = NULL;
    rd_kafka_t *rk = new_host_handle(opts.debug);
    if (!rk)
        goto out;

    mcluster = rd_kafka_mock_cluster_new(rk, opts.brokers);
    if (!mcluster) {
        AW_LOG_ERROR(DEVBROKER_MOD, "mock cluster creation failed", "brokers=%d", opts.brokers);
        goto out;
    }
    for (size_t i = 0; i < opts.topic_cnt; i++) {
        const struct devbroker_topic *t = &opts.topics[i];
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(mcluster, t->name, t->partitions, t->replicas);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            AW_LOG_ERROR(DEVBROKER_MOD, "topic creation failed", "topic=%s err=%s", t->name,
                         rd_kafka_err2name(err));
            goto out;
        }
        AW_LOG_INFO(DEVBROKER_MOD, "topic created", "topic=%s partitions=%d replicas=%d", t->name,
                    t->partitions, t->replicas);
    }

    for (size_t k = 0; k < opts.n_leaders; k++) {
        const struct devbroker_topic *t = NULL;
        for (size_t i = 0; i < opts.topic_cnt; i++)
            if (strcmp(opts.topics[i].name, opts.leader_topic[k]) == 0)
                t = &opts.topics[i];
        if (!t) {
            AW_LOG_ERROR(DEVBROKER_MOD, "--leader names no --topic", "topic=%s",
                         opts.leader_topic[k]);
            goto out;
        }
        for (int p = 0; p < t->partitions; p++) {
            rd_kafka_resp_err_t err = rd_kafka_mock_partition_set_leader(
                mcluster, t->name, p, (int32_t)opts.leader_broker[k]);
            if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                AW_LOG_ERROR(DEVBROKER_MOD, "cannot set the leader", "topic=%s partition=%d err=%s",
                             t->name, p, rd_kafka_err2name(err));
                goto out;
            }
        }
        AW_LOG_INFO(DEVBROKER_MOD, "leader set", "topic=%s broker=%d", t->name,
                    opts.leader_broker[k]);
    }

    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mcluster);
    if (!bootstraps || !*bootstraps) {
        AW_LOG_ERROR(DEVBROKER_MOD, "no bootstrap list", "%s", "");
        goto out;
    }
    if (opts.pid_file) {
        char pidtext[32];
        snprintf(pidtext, sizeof pidtext, "%ld", (long)getpid());
        if (!write_file_atomic(opts.pid_file, pidtext))
            goto out;
        wrote_pid = true;
    }
    if (printf("%s\n", bootstraps) < 0 || fflush(stdout) != 0) {
        AW_LOG_ERROR(DEVBROKER_MOD, "cannot write stdout", "errno=%d", errno);
        goto out;
    }
    /* The bootstrap file comes last: its appearance means "ready". */
    if (opts.bootstrap_file) {
        if (!write_file_atomic(opts.bootstrap_file, bootstraps))
            goto out;
        wrote_bootstrap = true;
    }
    AW_LOG_INFO(DEVBROKER_MOD, "ready", "brokers=%d topics=%zu bootstrap=%s", opts.brokers,
                opts.topic_cnt, bootstraps);

    int sig = 0;
    for (;;) {
        if (sigwait(&stop_set, &sig) != 0) {
            AW_LOG_ERROR(DEVBROKER_MOD, "sigwait failed", "%s", "");
            goto out;
        }
        if (sig != SIGUSR1 && sig != SIGUSR2)
            break;
        if (!opts.stall_broker) {
            AW_LOG_WARN(DEVBROKER_MOD, "no --stall-broker: signal ignored", "signal=%d", sig);
            continue;
        }
        rd_kafka_resp_err_t err =
            sig == SIGUSR1 ? rd_kafka_mock_broker_set_down(mcluster, (int32_t)opts.stall_broker)
                           : rd_kafka_mock_broker_set_up(mcluster, (int32_t)opts.stall_broker);
        AW_LOG_INFO(DEVBROKER_MOD, sig == SIGUSR1 ? "broker down" : "broker up", "broker=%d err=%s",
                    opts.stall_broker, rd_kafka_err2name(err));
    }
    AW_LOG_INFO(DEVBROKER_MOD, "stopping", "signal=%d", sig);
    rc = 0;

out:
    if (mcluster)
        rd_kafka_mock_cluster_destroy(mcluster);
    if (rk)
        rd_kafka_destroy(rk);
    /* Remove what we published so a stale file never points at dead ports. */
    if (wrote_bootstrap)
        unlink(opts.bootstrap_file);
    if (wrote_pid)
        unlink(opts.pid_file);
    if (rc == 0)
        AW_LOG_INFO(DEVBROKER_MOD, "stopped", "%s", "");
    return rc;
}
