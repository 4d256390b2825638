/* test_settings.c -- worker/settings: defaults, every variable's parse and range errors, all
 * problems reported together, Redis URL / Kafka broker / HTTP / Klaviyo addresses (through the
 * shared grammars, so the store's parser reads what settings accepted), masking of secrets in the
 * printed settings and in problems, AW_KAFKA_CONFIG_FILE problems as file:line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/redis_url.h"
#include "tests/harness.h"
#include "worker/settings.h"

/* ---- a fake environment ---- */

#define ENV_MAX 40
struct env {
    const char *names[ENV_MAX];
    const char *values[ENV_MAX];
    size_t n;
};

static const char *env_get(const char *name, void *ctx)
{
    const struct env *e = ctx;
    for (size_t i = 0; i < e->n; i++) {
        if (strcmp(e->names[i], name) == 0)
            return e->values[i];
    }
    return NULL;
}

static void env_set(struct env *e, const char *name, const char *value)
{
    for (size_t i = 0; i < e->n; i++) {
        if (strcmp(e->names[i], name) == 0) {
            e->values[i] = value;
            return;
        }
    }
    if (e->n < ENV_MAX) {
        e->names[e->n] = name;
        e->values[e->n++] = value;
    }
}

/* An environment with only the required variable set. */
static struct env base_env(void)
{
    struct env e = {.n = 0};
    env_set(&e, "AW_KAFKA_BROKERS", "127.0.0.1:9092");
    return e;
}

static bool any_contains(const struct aw_settings_problems *p, const char *needle)
{
    for (size_t i = 0; i < p->n; i++) {
        if (strstr(p->items[i], needle))
            return true;
    }
    return false;
}

static void dump(const struct aw_settings_problems *p)
{
    for (size_t i = 0; i < p->n; i++)
        fprintf(stderr, "  problem: %s\n", p->items[i]);
}

/* Loads e; expects success. Caller frees s. */
static bool load_ok(struct env *e, struct aw_settings *s)
{
    struct aw_settings_problems p = {0};
    enum aw_err rc = aw_settings_load(s, env_get, e, AW_SETTINGS_FOR_RUN, &p);
    if (rc != AW_OK)
        dump(&p);
    AW_CHECK_INT_EQ(p.n, 0);
    aw_settings_problems_free(&p);
    return rc == AW_OK;
}

/* Loads e with one variable overridden; expects exactly one problem, naming the variable and
 * containing want (when not NULL). */
static void expect_one_problem(const char *name, const char *value, const char *want, int line)
{
    struct env e = base_env();
    env_set(&e, name, value);
    struct aw_settings s;
    struct aw_settings_problems p = {0};
    enum aw_err rc = aw_settings_load(&s, env_get, &e, AW_SETTINGS_FOR_RUN, &p);
    AW_CHECK_MSG(rc == AW_ERR_CONFIG, "line %d: %s=%s accepted", line, name, value);
    AW_CHECK_MSG(p.n == 1, "line %d: %s=%s gave %zu problems", line, name, value, p.n);
    if (p.n >= 1) {
        AW_CHECK_MSG(strncmp(p.items[0], name, strlen(name)) == 0, "line %d: %s", line, p.items[0]);
        AW_CHECK_MSG(want == NULL || strstr(p.items[0], want) != NULL,
                     "line %d: \"%s\" lacks \"%s\"", line, p.items[0], want);
    }
    /* On failure the settings own nothing and are zeroed. */
    AW_CHECK(s.kafka.brokers == NULL && s.kafka.topics == NULL && s.redis.url == NULL);
    aw_settings_problems_free(&p);
    AW_CHECK(p.items == NULL && p.n == 0);
}
#define EXPECT_BAD(name, value, want) expect_one_problem(name, value, want, __LINE__)

/* ---- tests ---- */

static void test_defaults(void)
{
    struct env e = base_env();
    struct aw_settings s;
    if (!load_ok(&e, &s))
        return;
    AW_CHECK_STR_EQ(s.kafka.brokers, "127.0.0.1:9092");
    AW_CHECK_INT_EQ(s.kafka.n_topics, 1);
    AW_CHECK_STR_EQ(s.kafka.topics[0], "mparticle.audience");
    AW_CHECK_STR_EQ(s.kafka.group, "aw-worker");
    AW_CHECK_STR_EQ(s.kafka.dlq_topic, "mparticle.audience.dlq");
    AW_CHECK(s.kafka.config_file == NULL);
    AW_CHECK_INT_EQ(s.kafka.extra.n_entries, 0);
    AW_CHECK_INT_EQ(s.kafka.batch_max, 500);
    AW_CHECK_STR_EQ(s.redis.url, "redis://127.0.0.1:6379/0");
    AW_CHECK_STR_EQ(s.redis.url_masked, "redis://127.0.0.1:6379/0");
    AW_CHECK_INT_EQ(s.redis.connect_timeout_ms, 2000);
    AW_CHECK_INT_EQ(s.redis.timeout_ms, 2000);
    AW_CHECK_STR_EQ(s.klaviyo.base_url, "https://a.klaviyo.com");
    AW_CHECK(s.klaviyo.is_tls);
    AW_CHECK_STR_EQ(s.klaviyo.revision, "2026-07-15");
    AW_CHECK(s.klaviyo.ca_file == NULL);
    AW_CHECK_INT_EQ(s.klaviyo.connect_timeout_ms, 5000);
    AW_CHECK_INT_EQ(s.klaviyo.timeout_ms, 20000);
    AW_CHECK_INT_EQ(s.klaviyo.retry_base_ms, 500);
    AW_CHECK_INT_EQ(s.klaviyo.retry_max_ms, 60000);
    AW_CHECK_INT_EQ(s.klaviyo.job_poll_ms, 2000);
    AW_CHECK_INT_EQ(s.klaviyo.max_in_flight, 32);
    AW_CHECK_INT_EQ(s.flush.max_queue, 100);
    AW_CHECK_INT_EQ(s.flush.max_age_s, 57600);
    AW_CHECK_INT_EQ(s.flush.tick_ms, 1000);
    AW_CHECK(s.leader.enabled);
    AW_CHECK_INT_EQ(s.leader.lease_ttl_ms, 15000);
    AW_CHECK_STR_EQ(s.http.host, "0.0.0.0");
    AW_CHECK_INT_EQ(s.http.port, 9464);
    AW_CHECK_INT_EQ(s.log.level, AW_LOG_LEVEL_INFO);
    char host[256] = "";
    AW_CHECK(gethostname(host, sizeof host) == 0);
    AW_CHECK_STR_EQ(s.process.instance_id, host);
    AW_CHECK(s.process.accounts_file == NULL);
    AW_CHECK_INT_EQ(s.process.shutdown_timeout_ms, 25000);
    aw_settings_free(&s);
    AW_CHECK(s.kafka.brokers == NULL);
    aw_settings_free(&s); /* idempotent on a zeroed struct */
    aw_settings_free(NULL);
}

static void test_required(void)
{
    struct env e = {.n = 0};
    struct aw_settings s;
    struct aw_settings_problems p = {0};
    AW_CHECK_INT_EQ(aw_settings_load(&s, env_get, &e, AW_SETTINGS_FOR_RUN, &p), AW_ERR_CONFIG);
    AW_CHECK_INT_EQ(p.n, 1);
    AW_CHECK(any_contains(&p, "AW_KAFKA_BROKERS: required"));
    aw_settings_problems_free(&p);
    /* Blank counts as unset. */
    env_set(&e, "AW_KAFKA_BROKERS", "  \n");
    AW_CHECK_INT_EQ(aw_settings_load(&s, env_get, &e, AW_SETTINGS_FOR_RUN, &p), AW_ERR_CONFIG);
    aw_settings_problems_free(&p);
    /* Admin tools do not need the broker list. */
    AW_CHECK_INT_EQ(aw_settings_load(&s, env_get, &e, AW_SETTINGS_FOR_ADMIN, &p), AW_OK);
    AW_CHECK(s.kafka.brokers == NULL);
    AW_CHECK_STR_EQ(s.kafka.group, "aw-worker");
    aw_settings_free(&s);
}

static void test_values(void)
{
    struct env e = base_env();
    env_set(&e, "AW_KAFKA_TOPICS", " a.b , c_d,e-f ");
    env_set(&e, "AW_KAFKA_GROUP", "  grp-1\n"); /* trimmed */
    env_set(&e, "AW_FLUSH_MAX_QUEUE", "1");
    env_set(&e, "AW_FLUSH_MAX_AGE_S", "16h");
    env_set(&e, "AW_FLUSH_TICK_MS", "2s");
    env_set(&e, "AW_LEASE_TTL_MS", "1m");
    env_set(&e, "AW_KLAVIYO_TIMEOUT_MS", "20000ms");
    env_set(&e, "AW_LEADER_ENABLED", "OFF");
    env_set(&e, "AW_LOG_LEVEL", "DEBUG");
    env_set(&e, "AW_HTTP_ADDR", "[::1]:8080");
    env_set(&e, "AW_INSTANCE_ID", "aw-worker-7d9f.x_1");
    env_set(&e, "AW_KLAVIYO_REVISION", "2025-01-15.pre");
    env_set(&e, "AW_KLAVIYO_BASE_URL", "HTTP://127.0.0.1:18080/sim//");
    env_set(&e, "AW_CONSUMER_BATCH_MAX", "100000");
    struct aw_settings s;
    if (!load_ok(&e, &s))
        return;
    AW_CHECK_INT_EQ(s.kafka.n_topics, 3);
    AW_CHECK_STR_EQ(s.kafka.topics[0], "a.b");
    AW_CHECK_STR_EQ(s.kafka.topics[1], "c_d");
    AW_CHECK_STR_EQ(s.kafka.topics[2], "e-f");
    AW_CHECK_STR_EQ(s.kafka.group, "grp-1");
    AW_CHECK_INT_EQ(s.flush.max_queue, 1);
    AW_CHECK_INT_EQ(s.flush.max_age_s, 57600);
    AW_CHECK_INT_EQ(s.flush.tick_ms, 2000);
    AW_CHECK_INT_EQ(s.leader.lease_ttl_ms, 60000);
    AW_CHECK_INT_EQ(s.klaviyo.timeout_ms, 20000);
    AW_CHECK(!s.leader.enabled);
    AW_CHECK_INT_EQ(s.log.level, AW_LOG_LEVEL_DEBUG);
    AW_CHECK_STR_EQ(s.http.host, "::1");
    AW_CHECK_INT_EQ(s.http.port, 8080);
    AW_CHECK_STR_EQ(s.process.instance_id, "aw-worker-7d9f.x_1");
    AW_CHECK_STR_EQ(s.klaviyo.revision, "2025-01-15.pre");
    AW_CHECK_STR_EQ(s.klaviyo.base_url, "http://127.0.0.1:18080/sim");
    AW_CHECK(!s.klaviyo.is_tls);
    AW_CHECK_INT_EQ(s.kafka.batch_max, 100000);
    aw_settings_free(&s);

    static const char *const truthy[] = {"true", "1", "Yes", "on"};
    static const char *const falsy[] = {"FALSE", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        env_set(&e, "AW_LEADER_ENABLED", truthy[i]);
        if (load_ok(&e, &s)) {
            AW_CHECK_MSG(s.leader.enabled, "%s", truthy[i]);
            aw_settings_free(&s);
        }
        env_set(&e, "AW_LEADER_ENABLED", falsy[i]);
        if (load_ok(&e, &s)) {
            AW_CHECK_MSG(!s.leader.enabled, "%s", falsy[i]);
            aw_settings_free(&s);
        }
    }
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        env_set(&e, "AW_LOG_LEVEL", levels[i]);
        if (load_ok(&e, &s)) {
            AW_CHECK_INT_EQ(s.log.level, i);
            aw_settings_free(&s);
        }
    }
}

/* One bad value per failure mode of every variable; the table must not grow untested. */
static void test_each_variable_errors(void)
{
    static const struct {
        const char *name, *value, *want;
    } cases[] = {
        {"AW_KAFKA_BROKERS", "a:1, b:2", "blanks"},
        {"AW_KAFKA_BROKERS", "a:1,,b:2", "empty broker"},
        {"AW_KAFKA_BROKERS", ",a:1", "empty broker"},
        {"AW_KAFKA_BROKERS", "a:1,", "empty broker"},
        {"AW_KAFKA_BROKERS", "kafka-0:99999", "port must be 1-65535"},
        {"AW_KAFKA_BROKERS", "kafka-0:", "port must be 1-65535"},
        {"AW_KAFKA_BROKERS", "[::1:9092", "unterminated"},
        {"AW_KAFKA_BROKERS", "a:1,[:::]:9092", "invalid IPv6"},
        {"AW_KAFKA_BROKERS", "PLAINTEXT://a:9092", "security.protocol"},
        {"AW_KAFKA_BROKERS", "kafka/0:9092", "invalid character"},
        {"AW_KAFKA_TOPICS", "a,,b", "empty topic"},
        {"AW_KAFKA_TOPICS", "a,b,a", "twice"},
        {"AW_KAFKA_TOPICS", "bad topic!", "not a valid topic"},
        {"AW_KAFKA_TOPICS", "..", "not a valid topic"},
        {"AW_KAFKA_GROUP", "my group", "printable"},
        {"AW_KAFKA_DLQ_TOPIC", "dlq/x", "not a valid topic"},
        {"AW_KAFKA_DLQ_TOPIC", "mparticle.audience", "must not be one of AW_KAFKA_TOPICS"},
        {"AW_KAFKA_CONFIG_FILE", "/nonexistent/kafka.properties", "cannot open"},
        {"AW_KAFKA_CONFIG_FILE", "/tmp", "not a regular file"},
        {"AW_CONSUMER_BATCH_MAX", "0", "out of range 1..100000"},
        {"AW_CONSUMER_BATCH_MAX", "100001", "out of range"},
        {"AW_CONSUMER_BATCH_MAX", "12abc", "not a whole number"},
        {"AW_CONSUMER_BATCH_MAX", "-1", "not a whole number"},
        {"AW_CONSUMER_BATCH_MAX", "+5", "not a whole number"},
        {"AW_CONSUMER_BATCH_MAX", "99999999999999999999999", "too large"},
        {"AW_REDIS_URL", "http://127.0.0.1:6379", "scheme"},
        {"AW_REDIS_URL", "rediss://h:6379", "TLS"},
        {"AW_REDIS_URL", "redis://h:0", "port"},
        {"AW_REDIS_URL", "redis://h:65536", "port"},
        {"AW_REDIS_URL", "redis://h:x", "port"},
        {"AW_REDIS_URL", "redis://:6379/0", "missing host"},
        {"AW_REDIS_URL", "redis://h/abc", "database index"},
        {"AW_REDIS_URL", "redis://h/2147483648", "database index"},
        {"AW_REDIS_URL", "redis://h?foo=1", "query"},
        {"AW_REDIS_URL", "redis://h/1?db=2", "query"},
        {"AW_REDIS_URL", "redis://h#x", "fragment"},
        {"AW_REDIS_URL", "redis://a:7000,b:7001/2", "Cluster"},
        {"AW_REDIS_URL", "redis://a:7000,,b:7001", "missing host"},
        {"AW_REDIS_URL", "redis://[::g]:7000", "IPv6"},
        {"AW_REDIS_URL", "redis://:bad%zzpw@h", "escape"},
        {"AW_REDIS_URL", "redis://:nul%00pw@h", "escape"},
        {"AW_REDIS_URL", "redis://ho st", "host"},
        {"AW_REDIS_URL", "unix://relative.sock", "absolute"},
        {"AW_REDIS_CONNECT_TIMEOUT_MS", "9", "out of range 10..60000 ms"},
        {"AW_REDIS_CONNECT_TIMEOUT_MS", "61s", "out of range"},
        {"AW_REDIS_TIMEOUT_MS", "fast", "not a duration"},
        {"AW_REDIS_TIMEOUT_MS", "5d", "unknown unit"},
        {"AW_KLAVIYO_BASE_URL", "ftp://a.klaviyo.com", "scheme"},
        {"AW_KLAVIYO_BASE_URL", "a.klaviyo.com", "scheme"},
        {"AW_KLAVIYO_BASE_URL", "https://", "missing host"},
        {"AW_KLAVIYO_BASE_URL", "https://u:p@a.klaviyo.com", "credentials"},
        {"AW_KLAVIYO_BASE_URL", "https://a.klaviyo.com?x=1", "query"},
        {"AW_KLAVIYO_BASE_URL", "https://a.klaviyo.com:0", "port"},
        {"AW_KLAVIYO_REVISION", "2026-7-15", "revision"},
        {"AW_KLAVIYO_REVISION", "2026-13-01", "revision"},
        {"AW_KLAVIYO_REVISION", "2026-07-15.", "revision"},
        {"AW_KLAVIYO_CA_FILE", "/nonexistent/ca.pem", "cannot open"},
        {"AW_KLAVIYO_CA_FILE", "/tmp", "not a regular file"},
        {"AW_KLAVIYO_CONNECT_TIMEOUT_MS", "99", "out of range 100..60000 ms"},
        {"AW_KLAVIYO_CONNECT_TIMEOUT_MS", "1.5s", "unknown unit"},
        {"AW_KLAVIYO_TIMEOUT_MS", "999", "out of range"},
        {"AW_KLAVIYO_TIMEOUT_MS", "4000", "below AW_KLAVIYO_CONNECT_TIMEOUT_MS"},
        {"AW_KLAVIYO_TIMEOUT_MS", "30000", "below AW_KLAVIYO_TIMEOUT_MS"}, /* on AW_SHUTDOWN_... */
        {"AW_KLAVIYO_RETRY_BASE_MS", "0", "out of range"},
        {"AW_KLAVIYO_RETRY_BASE_MS", "61000", "out of range"},
        {"AW_KLAVIYO_RETRY_MAX_MS", "400", "below AW_KLAVIYO_RETRY_BASE_MS"},
        {"AW_KLAVIYO_RETRY_MAX_MS", "2h", "out of range 100..3600000 ms"},
        {"AW_KLAVIYO_JOB_POLL_MS", "50", "out of range"},
        {"AW_KLAVIYO_CONSENT_SETTLE_MS", "3600001", "out of range"},
        {"AW_KLAVIYO_MAX_IN_FLIGHT", "0", "out of range 1..64"},
        {"AW_KLAVIYO_MAX_IN_FLIGHT", "65", "out of range 1..64"},
        {"AW_DRY_RUN", "perhaps", "not a boolean"},
        {"AW_DRY_RUN", "true", "required when AW_DRY_RUN is true"}, /* on AW_DRY_RUN_FILE */
        {"AW_DRY_RUN_FILE", "/tmp/a\tb", "control characters"},
        {"AW_FLUSH_MAX_QUEUE", "0", "out of range 1..10000000"},
        {"AW_FLUSH_MAX_QUEUE", "100k", "not a whole number"},
        {"AW_FLUSH_MAX_QUEUE", "1e3", "not a whole number"},
        {"AW_FLUSH_MAX_AGE_S", "0", "out of range 1..2592000 s"},
        {"AW_FLUSH_MAX_AGE_S", "1500ms", "whole number of seconds"},
        {"AW_FLUSH_MAX_AGE_S", "31d", "unknown unit"},
        {"AW_FLUSH_MAX_AGE_S", "721h", "out of range"},
        {"AW_FLUSH_MAX_AGE_S", "99999999999999999h", "too large"},
        {"AW_STATE_RETENTION_S", "59", "out of range 60..31536000 s"},
        {"AW_STATE_RETENTION_S", "16h", "not above AW_FLUSH_MAX_AGE_S"},
        {"AW_FLUSH_TICK_MS", "5", "out of range"},
        {"AW_FLUSH_TICK_MS", "6000", "AW_LEASE_TTL_MS / 3"},
        {"AW_LEADER_ENABLED", "maybe", "not a boolean"},
        {"AW_LEASE_TTL_MS", "999", "out of range 1000..300000 ms"},
        {"AW_LEASE_TTL_MS", "2999", "AW_LEASE_TTL_MS / 3"}, /* reported on AW_FLUSH_TICK_MS */
        {"AW_HTTP_ADDR", "9464", "missing :port"},
        {"AW_HTTP_ADDR", ":9464", "missing host"},
        {"AW_HTTP_ADDR", "0.0.0.0:0", "port"},
        {"AW_HTTP_ADDR", "[::1", "unterminated"},
        {"AW_HTTP_ADDR", "[::g]:1", "IPv6"},
        {"AW_HTTP_ADDR", "[:::]:9464", "IPv6"},
        {"AW_HTTP_ADDR", "local host:9464", "invalid character"},
        {"AW_LOG_LEVEL", "verbose", "not one of debug|info|warn|error"},
        {"AW_INSTANCE_ID", "pod 1", "1-128"},
        {"AW_CONFIG_FILE", "/nonexistent/accounts.json", "cannot open"},
        {"AW_SHUTDOWN_TIMEOUT_MS", "999", "out of range 1000..600000 ms"},
        {"AW_SHUTDOWN_TIMEOUT_MS", "15000", "below AW_KLAVIYO_TIMEOUT_MS"},
        {"AW_KAFKA_GROUP", "tab\there", "control characters"},
    };
    size_t n_cases = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < n_cases; i++) {
        /* Cross-variable cases are reported on the other variable. */
        const char *on = cases[i].name;
        if (strcmp(cases[i].value, "2999") == 0)
            on = "AW_FLUSH_TICK_MS";
        if (strcmp(cases[i].name, "AW_KLAVIYO_TIMEOUT_MS") == 0 &&
            strcmp(cases[i].value, "30000") == 0)
            on = "AW_SHUTDOWN_TIMEOUT_MS";
        if (strcmp(cases[i].name, "AW_DRY_RUN") == 0 && strcmp(cases[i].value, "true") == 0)
            on = "AW_DRY_RUN_FILE";
        struct env e = base_env();
        env_set(&e, cases[i].name, cases[i].value);
        struct aw_settings s;
        struct aw_settings_problems p = {0};
        enum aw_err rc = aw_settings_load(&s, env_get, &e, AW_SETTINGS_FOR_RUN, &p);
        AW_CHECK_MSG(rc == AW_ERR_CONFIG, "%s=%s accepted", cases[i].name, cases[i].value);
        AW_CHECK_MSG(p.n == 1, "%s=%s: %zu problems", cases[i].name, cases[i].value, p.n);
        if (p.n >= 1) {
            AW_CHECK_MSG(strncmp(p.items[0], on, strlen(on)) == 0 && p.items[0][strlen(on)] == ':',
                         "%s", p.items[0]);
            AW_CHECK_MSG(strstr(p.items[0], cases[i].want) != NULL, "\"%s\" lacks \"%s\"",
                         p.items[0], cases[i].want);
        }
        if (rc == AW_OK)
            aw_settings_free(&s);
        aw_settings_problems_free(&p);
    }
    /* Every variable of the table has at least one failing case above. */
    for (size_t v = 0; v < aw_settings_var_count(); v++) {
        const char *name = aw_settings_var_name(v);
        bool covered = false;
        for (size_t i = 0; i < n_cases; i++)
            covered = covered || strcmp(cases[i].name, name) == 0;
        AW_CHECK_MSG(covered, "%s has no error test", name);
    }
    /* The secret-free helper itself. */
    EXPECT_BAD("AW_FLUSH_MAX_QUEUE", "abc", "\"abc\"");
}

static void test_all_problems_together(void)
{
    struct env e = {.n = 0}; /* AW_KAFKA_BROKERS missing too */
    env_set(&e, "AW_FLUSH_MAX_QUEUE", "0");
    env_set(&e, "AW_FLUSH_MAX_AGE_S", "soon");
    env_set(&e, "AW_LOG_LEVEL", "loud");
    env_set(&e, "AW_HTTP_ADDR", "nowhere");
    env_set(&e, "AW_REDIS_URL", "mysql://x");
    env_set(&e, "AW_KLAVIYO_BASE_URL", "gopher://x");
    env_set(&e, "AW_LEADER_ENABLED", "perhaps");
    env_set(&e, "AW_KAFKA_DLQ_TOPIC", "mparticle.audience");
    struct aw_settings s;
    struct aw_settings_problems p = {0};
    AW_CHECK_INT_EQ(aw_settings_load(&s, env_get, &e, AW_SETTINGS_FOR_RUN, &p), AW_ERR_CONFIG);
    AW_CHECK_INT_EQ(p.n, 9);
    static const char *const names[] = {
        "AW_KAFKA_BROKERS:",    "AW_FLUSH_MAX_QUEUE:", "AW_FLUSH_MAX_AGE_S:",
        "AW_LOG_LEVEL:",        "AW_HTTP_ADDR:",       "AW_REDIS_URL:",
        "AW_KLAVIYO_BASE_URL:", "AW_LEADER_ENABLED:",  "AW_KAFKA_DLQ_TOPIC:"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        AW_CHECK_MSG(any_contains(&p, names[i]), "%s not reported", names[i]);
    aw_settings_problems_free(&p);
}

/* The URL the store will connect with: settings keep it as given, and it must parse with the
 * store's parser (common/redis_url.h) into these parts. */
struct url_case {
    const char *url;
    const char *masked;
    bool is_unix;
    size_t n_nodes;
    const char *host0;
    unsigned port0;
    const char *user;
    const char *password;
    int db;
};

static void test_redis_urls(void)
{
    static const struct url_case cases[] = {
        {"redis://:S3cretPw@redis.aw.svc:6380/2", "redis://:****@redis.aw.svc:6380/2", false, 1,
         "redis.aw.svc", 6380, "", "S3cretPw", 2},
        /* upper-case scheme, %XX escapes in credentials, default port and db */
        {"REDIS://worker:p%40ss%3Aw0rd@10.0.0.5", "redis://worker:****@10.0.0.5:6379/0", false, 1,
         "10.0.0.5", 6379, "worker", "p@ss:w0rd", 0},
        /* a lone userinfo is the password (as redis-cli reads it) */
        {"redis://Zz9secret@h", "redis://:****@h:6379/0", false, 1, "h", 6379, "", "Zz9secret", 0},
        {"redis://localhost/", "redis://localhost:6379/0", false, 1, "localhost", 6379, "", "", 0},
        {"redis://[::1]:7000?db=5", "redis://[::1]:7000/5", false, 1, "::1", 7000, "", "", 5},
        /* several seed nodes: Redis Cluster */
        {"redis://u:pw@r-0.r:7000,r-1.r:7001,[fd00::3]",
         "redis://u:****@r-0.r:7000,r-1.r:7001,[fd00::3]:6379/0", false, 3, "r-0.r", 7000, "u",
         "pw", 0},
        {"unix:///run/redis/redis.sock?db=3", "unix:///run/redis/redis.sock?db=3", true, 1,
         "/run/redis/redis.sock", 0, "", "", 3},
        {"unix://:Zz9secret@/tmp/r.sock", "unix://:****@/tmp/r.sock?db=0", true, 1, "/tmp/r.sock",
         0, "", "Zz9secret", 0},
    };
    struct env e = base_env();
    struct aw_settings s;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct url_case *c = &cases[i];
        env_set(&e, "AW_REDIS_URL", c->url);
        if (!load_ok(&e, &s))
            continue;
        AW_CHECK_STR_EQ(s.redis.url, c->url);
        AW_CHECK_STR_EQ(s.redis.url_masked, c->masked);
        struct aw_redis_url u;
        char err[128] = "";
        AW_CHECK_MSG(aw_redis_url_parse(s.redis.url, &u, err, sizeof err) == AW_OK, "%s: %s",
                     c->url, err);
        AW_CHECK_MSG(u.is_unix == c->is_unix, "%s", c->url);
        AW_CHECK_INT_EQ(u.n_nodes, c->n_nodes);
        AW_CHECK_STR_EQ(u.nodes[0].host, c->host0);
        AW_CHECK_INT_EQ(u.nodes[0].port, c->port0);
        AW_CHECK_STR_EQ(u.user, c->user);
        AW_CHECK_STR_EQ(u.password, c->password);
        AW_CHECK_INT_EQ(u.db, c->db);
        aw_redis_url_wipe(&u);
        /* --check-config shows the masked form only */
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        AW_CHECK(f != NULL);
        if (f) {
            AW_CHECK_INT_EQ(aw_settings_print(&s, f), AW_OK);
            fclose(f);
            char line[512];
            snprintf(line, sizeof line, "AW_REDIS_URL=%s\n", c->masked);
            AW_CHECK_MSG(strstr(text, line) != NULL, "%s not printed", line);
            AW_CHECK_MSG(c->password[0] == '\0' || strstr(text, c->password) == NULL,
                         "password of %s printed", c->url);
        }
        free(text);
        aw_settings_free(&s);
    }
    /* A password never appears in a problem, whatever else is wrong with the URL. */
    static const char *const bad[] = {
        "redis://:TopSecret1@h:99999/0",
        "redis://:TopSecret1@h/x",
        "redis://:TopSecret1@/0",
        "rediss://:TopSecret1@h",
        "TopSecret1",
        "redis://TopSecret1@h:0",
        "redis://:TopSecret1%zz@h",
        "redis://:TopSecret1@h?x=y",
        "redis://:TopSecret1@h#f",
        "redis://:TopSecret1@a,b/3",
        "unix://:TopSecret1@relative.sock",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        env_set(&e, "AW_REDIS_URL", bad[i]);
        struct aw_settings_problems p = {0};
        AW_CHECK_INT_EQ(aw_settings_load(&s, env_get, &e, AW_SETTINGS_FOR_RUN, &p), AW_ERR_CONFIG);
        AW_CHECK_INT_EQ(p.n, 1);
        AW_CHECK_MSG(!any_contains(&p, "TopSecret1"), "secret leaked for case %zu", i);
        aw_settings_problems_free(&p);
    }
}

/* Addresses in the common host:port grammar: names, IPv4 and bracketed IPv6, the same forms
 * the HTTP server (test_http.c) and the Kafka client accept. */
static void test_addresses(void)
{
    static const struct {
        const char *value, *host;
        unsigned port;
        const char *printed;
    } http[] = {
        {"localhost:9464", "localhost", 9464, "localhost:9464"},
        {"[::]:9464", "::", 9464, "[::]:9464"},
        {"[::1]:8080", "::1", 8080, "[::1]:8080"},
        {"127.0.0.1:1", "127.0.0.1", 1, "127.0.0.1:1"},
        {"metrics.aw.svc.cluster.local:65535", "metrics.aw.svc.cluster.local", 65535,
         "metrics.aw.svc.cluster.local:65535"},
    };
    struct env e = base_env();
    struct aw_settings s;
    for (size_t i = 0; i < sizeof http / sizeof http[0]; i++) {
        env_set(&e, "AW_HTTP_ADDR", http[i].value);
        if (!load_ok(&e, &s))
            continue;
        AW_CHECK_STR_EQ(s.http.host, http[i].host);
        AW_CHECK_INT_EQ(s.http.port, http[i].port);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (f) {
            AW_CHECK_INT_EQ(aw_settings_print(&s, f), AW_OK);
            fclose(f);
            char line[128];
            snprintf(line, sizeof line, "AW_HTTP_ADDR=%s\n", http[i].printed);
            AW_CHECK_MSG(strstr(text, line) != NULL, "%s not printed", line);
        }
        free(text);
        aw_settings_free(&s);
    }
    env_set(&e, "AW_HTTP_ADDR", "0.0.0.0:9464");
    static const char *const brokers[] = {
        "127.0.0.1:9092",
        "kafka-0.kafka.svc:9093,kafka-1.kafka.svc:9093",
        "kafka",
        "[::1]:9092,[fd00::2]",
        "b_1.internal:1,10.0.0.2",
    };
    for (size_t i = 0; i < sizeof brokers / sizeof brokers[0]; i++) {
        env_set(&e, "AW_KAFKA_BROKERS", brokers[i]);
        if (load_ok(&e, &s)) {
            AW_CHECK_STR_EQ(s.kafka.brokers, brokers[i]); /* passed to librdkafka as given */
            aw_settings_free(&s);
        }
    }
}

static char *write_temp(const char *content)
{
    char tmpl[] = "/tmp/aw_test_settings_XXXXXX";
    int fd = mkstemp(tmpl);
    AW_CHECK(fd >= 0);
    if (fd < 0)
        return NULL;
    size_t len = strlen(content);
    AW_CHECK(write(fd, content, len) == (ssize_t)len);
    close(fd);
    char *path = malloc(sizeof tmpl);
    memcpy(path, tmpl, sizeof tmpl);
    return path;
}

/* Prints s into a caller-owned string. */
static char *print_to_string(const struct aw_settings *s)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    AW_CHECK(f != NULL);
    if (!f)
        return NULL;
    AW_CHECK_INT_EQ(aw_settings_print(s, f), AW_OK);
    fclose(f);
    return text;
}

static void test_masking(void)
{
    char *kafka = write_temp("# extra librdkafka properties\n"
                             "security.protocol=SASL_SSL\n"
                             "sasl.mechanisms = PLAIN\n"
                             "sasl.username=svc-aw\n"
                             "sasl.password=Hunter2Kafka\n"
                             "ssl.key.password=KeyPass99\n"
                             "\n"
                             "client.rack=use1-az1\r\n");
    if (!kafka)
        return;
    struct env e = base_env();
    env_set(&e, "AW_REDIS_URL", "redis://admin:R3disPa55@redis:6379/1");
    env_set(&e, "AW_KAFKA_CONFIG_FILE", kafka);
    struct aw_settings s;
    if (load_ok(&e, &s)) {
        AW_CHECK_INT_EQ(s.kafka.extra.n_entries, 6);
        AW_CHECK_STR_EQ(aw_config_get(&s.kafka.extra, "sasl.password"), "Hunter2Kafka");
        AW_CHECK_STR_EQ(aw_config_get(&s.kafka.extra, "sasl.mechanisms"), "PLAIN");
        AW_CHECK_STR_EQ(aw_config_get(&s.kafka.extra, "client.rack"), "use1-az1");
        char *out = print_to_string(&s);
        if (out) {
            AW_CHECK(strstr(out, "R3disPa55") == NULL);
            AW_CHECK(strstr(out, "Hunter2Kafka") == NULL);
            AW_CHECK(strstr(out, "KeyPass99") == NULL);
            AW_CHECK(strstr(out, "AW_REDIS_URL=redis://admin:****@redis:6379/1\n") != NULL);
            AW_CHECK(strstr(out, "kafka.sasl.password=****\n") != NULL);
            AW_CHECK(strstr(out, "kafka.ssl.key.password=****\n") != NULL);
            AW_CHECK(strstr(out, "kafka.sasl.username=svc-aw\n") != NULL);
            AW_CHECK(strstr(out, "kafka.client.rack=use1-az1\n") != NULL);
            AW_CHECK(strstr(out, "AW_KAFKA_BROKERS=127.0.0.1:9092\n") != NULL);
            AW_CHECK(strstr(out, "AW_FLUSH_MAX_AGE_S=57600\n") != NULL);
            AW_CHECK(strstr(out, "AW_LEADER_ENABLED=true\n") != NULL);
            AW_CHECK(strstr(out, "AW_LOG_LEVEL=info\n") != NULL);
            AW_CHECK(strstr(out, "AW_HTTP_ADDR=0.0.0.0:9464\n") != NULL);
            AW_CHECK(strstr(out, "AW_KAFKA_TOPICS=mparticle.audience\n") != NULL);
            AW_CHECK(strstr(out, "AW_KLAVIYO_CA_FILE=\n") != NULL);
            /* Every variable is printed. */
            for (size_t i = 0; i < aw_settings_var_count(); i++) {
                char line[128];
                snprintf(line, sizeof line, "%s=", aw_settings_var_name(i));
                AW_CHECK_MSG(strstr(out, line) != NULL, "%s missing", line);
            }
            free(out);
        }
        aw_settings_free(&s);
    }
    unlink(kafka);
    free(kafka);

    AW_CHECK(aw_settings_kafka_key_is_secret("sasl.password"));
    AW_CHECK(aw_settings_kafka_key_is_secret("SSL.KEY.PASSWORD"));
    AW_CHECK(aw_settings_kafka_key_is_secret("sasl.oauthbearer.client.secret"));
    AW_CHECK(aw_settings_kafka_key_is_secret("sasl.jaas.config"));
    AW_CHECK(aw_settings_kafka_key_is_secret("ssl.key.pem"));
    AW_CHECK(aw_settings_kafka_key_is_secret("sasl.oauthbearer.config"));
    AW_CHECK(!aw_settings_kafka_key_is_secret("sasl.username"));
    AW_CHECK(!aw_settings_kafka_key_is_secret("ssl.ca.location"));
    AW_CHECK(!aw_settings_kafka_key_is_secret("bootstrap.servers"));
}

static void test_kafka_file_problems(void)
{
    char *kafka = write_temp("ok.key=1\n"
                             "no equals sign here\n"
                             "=value without key\n"
                             "ok.key=2\n"
                             "bad key=Hunter2Value\n");
    if (!kafka)
        return;
    struct env e = base_env();
    env_set(&e, "AW_KAFKA_CONFIG_FILE", kafka);
    env_set(&e, "AW_FLUSH_MAX_QUEUE", "-3"); /* reported with the file's problems */
    struct aw_settings s;
    struct aw_settings_problems p = {0};
    AW_CHECK_INT_EQ(aw_settings_load(&s, env_get, &e, AW_SETTINGS_FOR_RUN, &p), AW_ERR_CONFIG);
    AW_CHECK_INT_EQ(p.n, 5);
    char want[256];
    snprintf(want, sizeof want, "AW_KAFKA_CONFIG_FILE: %s:2: expected key=value", kafka);
    AW_CHECK_MSG(any_contains(&p, want), "missing %s", want);
    snprintf(want, sizeof want, "%s:3: empty key", kafka);
    AW_CHECK_MSG(any_contains(&p, want), "missing %s", want);
    snprintf(want, sizeof want, "%s:4: duplicate key ok.key (first set on line 1)", kafka);
    AW_CHECK_MSG(any_contains(&p, want), "missing %s", want);
    snprintf(want, sizeof want, "%s:5: invalid character in key", kafka);
    AW_CHECK_MSG(any_contains(&p, want), "missing %s", want);
    AW_CHECK(any_contains(&p, "AW_FLUSH_MAX_QUEUE:"));
    AW_CHECK(!any_contains(&p, "Hunter2Value"));
    aw_settings_problems_free(&p);
    unlink(kafka);
    free(kafka);
}

static void test_files(void)
{
    char *ca = write_temp("-----BEGIN CERTIFICATE-----\n");
    char *accounts = write_temp("{}\n");
    if (!ca || !accounts)
        return;
    struct env e = base_env();
    env_set(&e, "AW_KLAVIYO_CA_FILE", ca);
    env_set(&e, "AW_CONFIG_FILE", accounts);
    struct aw_settings s;
    if (load_ok(&e, &s)) {
        AW_CHECK_STR_EQ(s.klaviyo.ca_file, ca);
        AW_CHECK_STR_EQ(s.process.accounts_file, accounts);
        aw_settings_free(&s);
    }
    unlink(ca);
    unlink(accounts);
    free(ca);
    free(accounts);
}

static void test_table(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    AW_CHECK(f != NULL);
    if (!f)
        return;
    AW_CHECK_INT_EQ(aw_settings_print_table(f), AW_OK);
    fclose(f);
    AW_CHECK(strstr(text, "| Variable | Default |") == text);
    for (size_t i = 0; i < aw_settings_var_count(); i++) {
        char cell[128];
        snprintf(cell, sizeof cell, "| `%s` |", aw_settings_var_name(i));
        AW_CHECK_MSG(strstr(text, cell) != NULL, "%s missing from the table", cell);
    }
    AW_CHECK(strstr(text, "| `AW_FLUSH_MAX_QUEUE` | `100` | 1..10000000 |") != NULL);
    AW_CHECK(strstr(text, "| `AW_KAFKA_BROKERS` | **required** |") != NULL);
    AW_CHECK(strstr(text, "| `AW_LOG_LEVEL` | `info` | debug, info, warn, error |") != NULL);
    free(text);

    AW_CHECK(aw_settings_is_unknown_var("AW_FLUSH_MAX_QUEUES"));
    AW_CHECK(!aw_settings_is_unknown_var("AW_FLUSH_MAX_QUEUE"));
    AW_CHECK(!aw_settings_is_unknown_var("PATH"));
    AW_CHECK(aw_settings_var_count() >= 13);
}

int main(void)
{
    test_defaults();
    test_required();
    test_values();
    test_each_variable_errors();
    test_all_problems_together();
    test_redis_urls();
    test_addresses();
    test_masking();
    test_kafka_file_problems();
    test_files();
    test_table();
    return aw_test_done();
}
