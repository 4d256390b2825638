/* settings.c -- the one table of AW_* variables and loading it into struct aw_settings
 * (defaults, trimming, relations between variables, AW_KAFKA_CONFIG_FILE, the problem list).
 * Values are parsed in settings_parse.c, printed in settings_print.c (see settings_table.h). */
#include "worker/settings.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/mem.h"
#include "worker/settings_table.h"

#define OFF(field) offsetof(struct aw_settings, field)

/* ---------------------------------------------------------------------------------------------
 * The table: the one declaration of every AW_* variable.
 * ------------------------------------------------------------------------------------------- */

const struct aw_settings_var aw_settings_vars[] = {
    {.name = "AW_KAFKA_BROKERS",
     .kind = AW_SETTINGS_K_STRING,
     .flags = AW_SETTINGS_F_REQUIRED,
     .off = OFF(kafka.brokers),
     .apply = aw_settings_apply_brokers,
     .format = "host[:port][,host[:port]...]",
     .meaning = "Kafka bootstrap brokers (required to run); host: name, IPv4 or [IPv6], port "
                "default 9092"},
    {.name = "AW_KAFKA_TOPICS",
     .kind = AW_SETTINGS_K_STRING,
     .def = "mparticle.audience",
     .off = AW_SETTINGS_NO_FIELD,
     .apply = aw_settings_apply_topics,
     .show = aw_settings_show_topics,
     .format = "topic[,topic...]",
     .meaning = "input topics (comma-separated) with mParticle audience messages"},
    {.name = "AW_KAFKA_GROUP",
     .kind = AW_SETTINGS_K_STRING,
     .def = "aw-worker",
     .off = OFF(kafka.group),
     .apply = aw_settings_apply_group,
     .format = "1-255 printable characters",
     .meaning = "Kafka consumer group id, shared by all replicas"},
    {.name = "AW_KAFKA_DLQ_TOPIC",
     .kind = AW_SETTINGS_K_STRING,
     .def = "mparticle.audience.dlq",
     .off = OFF(kafka.dlq_topic),
     .apply = aw_settings_apply_topic,
     .format = "topic, not an input topic",
     .meaning = "dead-letter topic for records and profiles that cannot be delivered"},
    {.name = "AW_KAFKA_CONFIG_FILE",
     .kind = AW_SETTINGS_K_STRING,
     .off = OFF(kafka.config_file),
     .format = "path",
     .meaning = "optional file of extra librdkafka `key=value` lines (`#` comments), passed "
                "verbatim; secret values are masked"},
    {.name = "AW_CONSUMER_BATCH_MAX",
     .kind = AW_SETTINGS_K_INT,
     .def = "500",
     .min = 1,
     .max = 100000,
     .off = OFF(kafka.batch_max),
     .meaning = "most Kafka messages aggregated per Redis round trip"},
    {.name = "AW_REDIS_URL",
     .kind = AW_SETTINGS_K_STRING,
     .def = "redis://127.0.0.1:6379/0",
     .flags = AW_SETTINGS_F_SECRET,
     .off = AW_SETTINGS_NO_FIELD,
     .apply = aw_settings_apply_redis_url,
     .show = aw_settings_show_redis_url,
     .format = "redis://[[user:]password@]host[:port][,host[:port]...][/db] or "
               "unix://[[user:]password@]/path[?db=N]",
     .meaning = "Redis server, or Redis Cluster seed nodes when several hosts are listed (db 0 "
                "only); host: name, IPv4 or [IPv6], port default 6379; scheme case-insensitive; "
                "`?db=N` may replace `/N`; the password is a secret (printed as ****), `%XX` "
                "escapes allowed in credentials"},
    {.name = "AW_REDIS_CONNECT_TIMEOUT_MS",
     .kind = AW_SETTINGS_K_DURATION,
     .unit = AW_SETTINGS_U_MS,
     .def = "2000",
     .min = 10,
     .max = 60000,
     .off = OFF(redis.connect_timeout_ms),
     .meaning = "Redis connect timeout"},
    {.name = "AW_REDIS_TIMEOUT_MS",
     .kind = AW_SETTINGS_K_DURATION,
     .unit = AW_SETTINGS_U_MS,
     .def = "2000",
     .min = 10,
     .max = 60000,
     .off = OFF(redis.timeout_ms),
     .meaning = "Redis command timeout"},
    {.name = "AW_KLAVIYO_BASE_URL",
     .kind = AW_SETTINGS_K_STRING,
     .def = "https://a.klaviyo.com",
     .off = OFF(klaviyo.base_url),
     .apply = aw_settings_apply_klaviyo_url,
     .format = "https://host[:port][/prefix] (http:// for simulators)",
     .meaning = "Klaviyo API base URL; https always verifies TLS"},
    {.name = "AW_KLAVIYO_REVISION",
     .kind = AW_SETTINGS_K_STRING,
     .def = "2026-07-15",
     .off = OFF(klaviyo.revision),
     .apply = aw_settings_apply_revision,
     .format = "YYYY-MM-DD[.suffix]",
     .meaning = "Klaviyo API revision header"},
    {.name = "AW_KLAVIYO_CA_FILE",
     .kind = AW_SETTINGS_K_STRING,
     .flags = AW_SETTINGS_F_FILE,
     .off = OFF(klaviyo.ca_file),
     .format = "path",
     .meaning = "PEM CA bundle for Klaviyo TLS (unset: the system store)"},
    {.name = "AW_KLAVIYO_CONNECT_TIMEOUT_MS",
     .kind = AW_SETTINGS_K_DURATION,
     .unit = AW_SETTINGS_U_MS,
     .def = "5000",
     .min = 100,
     .max = 60000,
     .off = OFF(klaviyo.connect_timeout_ms),
     .meaning = "Klaviyo connect timeout"},
    {.name = "AW_KLAVIYO_TIMEOUT_MS",
     .kind = AW_SETTINGS_K_DURATION,
     .unit = AW_SETTINGS_U_MS,
     .def = "20000",
     .min = 1000,
     .max = 300000,
     .off = OFF(klaviyo.timeout_ms),
     .meaning = "Klaviyo whole-request timeout (>= connect timeout, <= AW_SHUTDOWN_TIMEOUT_MS)"},
    {.name = "AW_KLAVIYO_RETRY_BASE_MS",
     .kind = AW_SETTINGS_K_DURATION,
     .unit = AW_SETTINGS_U_MS,
     .def = "500",
     .min = 10,
     .max = 60000,
     .off = OFF(klaviyo.retry_base_ms),
     .meaning = "first retry delay after a transient Klaviyo failure"},
    {.name = "AW_KLAVIYO_RETRY_MAX_MS",
     .kind = AW_SETTINGS_K_DURATION,
     .unit = AW_SETTINGS_U_MS,
     .def = "60000",
     .min = 100,
     .max = 3600000,
     .off = OFF(klaviyo.retry_max_ms),
     .meaning = "retry delay ceiling (exponential backoff with jitter, >= base)"},
    {.name = "AW_KLAVIYO_JOB_POLL_MS",
     .kind = AW_SETTINGS_K_DURATION,
     .unit = AW_SETTINGS_U_MS,
     .def = "2000",
     .min = 100,
     .max = 60000,
     .off = OFF(klaviyo.job_poll_ms),
     .meaning = "first interval between status polls of a Klaviyo bulk job (it grows by half "
                "per poll while the job runs, up to 4 times this)"},
    {.name = "AW_KLAVIYO_CONSENT_SETTLE_MS",
     .kind = AW_SETTINGS_K_DURATION,
     .unit = AW_SETTINGS_U_MS,
     .def = "60000",
     .min = 0,
     .max = 3600000,
     .off = OFF(klaviyo.consent_settle_ms),
     .meaning = "wait after an account's consent job before its next batch sends consent "
                "(subscription jobs give no job id to poll; keeps a user's opposite consents "
                "in order)"},
    {.name = "AW_KLAVIYO_MAX_IN_FLIGHT",
     .kind = AW_SETTINGS_K_INT,
     .def = "32",
     .min = 1,
     .max = 64,
     .off = OFF(klaviyo.max_in_flight),
     .meaning = "requests the leader keeps on the wire to Klaviyo at once, across audiences "
                "(each audience still sends one at a time; every account's rate limits hold)"},
    {.name = "AW_DRY_RUN",
     .kind = AW_SETTINGS_K_BOOL,
     .def = "false",
     .off = OFF(klaviyo.dry_run),
     .meaning = "true: no write reaches Klaviyo (POST/PATCH/DELETE are answered locally and their "
                "bodies appended to AW_DRY_RUN_FILE; GETs still go out); pending changes are "
                "acknowledged as if sent"},
    {.name = "AW_DRY_RUN_FILE",
     .kind = AW_SETTINGS_K_STRING,
     .off = OFF(klaviyo.dry_run_file),
     .format = "path (required when AW_DRY_RUN is true)",
     .meaning = "JSON-lines file the dry run appends each write to (method, path, operation, "
                "account, body); created with mode 0600: the bodies hold personal data"},
    {.name = "AW_FLUSH_MAX_QUEUE",
     .kind = AW_SETTINGS_K_INT,
     .def = "100",
     .min = 1,
     .max = 10000000,
     .off = OFF(flush.max_queue),
     .meaning = "pending changes that make an audience due for a flush"},
    {.name = "AW_FLUSH_MAX_AGE_S",
     .kind = AW_SETTINGS_K_DURATION,
     .unit = AW_SETTINGS_U_S,
     .def = "57600",
     .min = 1,
     .max = 2592000,
     .off = OFF(flush.max_age_s),
     .meaning = "seconds since the last upload (or oldest pending change) that make an audience "
                "due"},
    {.name = "AW_STATE_RETENTION_S",
     .kind = AW_SETTINGS_K_DURATION,
     .unit = AW_SETTINGS_U_S,
     .def = "604800",
     .min = 60,
     .max = 31536000,
     .off = OFF(flush.retention_s),
     .meaning = "seconds a user's versions, sent consent and profile id are kept after its last "
                "change was flushed (keep >= Kafka retention of the input topic; > "
                "AW_FLUSH_MAX_AGE_S)"},
    {.name = "AW_FLUSH_TICK_MS",
     .kind = AW_SETTINGS_K_DURATION,
     .unit = AW_SETTINGS_U_MS,
     .def = "1000",
     .min = 10,
     .max = 60000,
     .off = OFF(flush.tick_ms),
     .meaning = "flusher loop period (<= AW_LEASE_TTL_MS / 3)"},
    {.name = "AW_LEADER_ENABLED",
     .kind = AW_SETTINGS_K_BOOL,
     .def = "true",
     .off = OFF(leader.enabled),
     .meaning = "false: this replica only consumes and never takes the leader lease"},
    {.name = "AW_LEASE_TTL_MS",
     .kind = AW_SETTINGS_K_DURATION,
     .unit = AW_SETTINGS_U_MS,
     .def = "15000",
     .min = 1000,
     .max = 300000,
     .off = OFF(leader.lease_ttl_ms),
     .meaning = "leader lease time-to-live in Redis"},
    {.name = "AW_HTTP_ADDR",
     .kind = AW_SETTINGS_K_STRING,
     .def = "0.0.0.0:9464",
     .off = AW_SETTINGS_NO_FIELD,
     .apply = aw_settings_apply_http_addr,
     .show = aw_settings_show_http_addr,
     .format = "host:port (host: name, IPv4 or [IPv6])",
     .meaning = "listen address of /metrics, /healthz, /readyz, /status; a name listens on the "
                "first of its addresses that can be bound; `[::]` also accepts IPv4"},
    {.name = "AW_LOG_LEVEL",
     .kind = AW_SETTINGS_K_ENUM,
     .def = "info",
     .choices = "debug|info|warn|error",
     .off = AW_SETTINGS_NO_FIELD,
     .apply = aw_settings_apply_log_level,
     .show = aw_settings_show_log_level,
     .meaning = "minimum level of the logfmt lines on stderr"},
    {.name = "AW_INSTANCE_ID",
     .kind = AW_SETTINGS_K_STRING,
     .flags = AW_SETTINGS_F_DEF_HOSTNAME,
     .off = OFF(process.instance_id),
     .apply = aw_settings_apply_instance_id,
     .format = "1-128 of A-Z a-z 0-9 . _ -",
     .meaning = "name of this replica in the lease, logs and metrics (default: host name)"},
    {.name = "AW_CONFIG_FILE",
     .kind = AW_SETTINGS_K_STRING,
     .flags = AW_SETTINGS_F_FILE,
     .off = OFF(process.accounts_file),
     .format = "path",
     .meaning = "optional per-account JSON settings file, keyed by account id"},
    {.name = "AW_SHUTDOWN_TIMEOUT_MS",
     .kind = AW_SETTINGS_K_DURATION,
     .unit = AW_SETTINGS_U_MS,
     .def = "25000",
     .min = 1000,
     .max = 600000,
     .off = OFF(process.shutdown_timeout_ms),
     .meaning = "drain budget after SIGTERM (the pod grace period must exceed it)"},
};

#define N_VARS (sizeof aw_settings_vars / sizeof aw_settings_vars[0])
_Static_assert(N_VARS <= AW_SETTINGS_VARS_MAX, "raise AW_SETTINGS_VARS_MAX");

const size_t aw_settings_n_vars = N_VARS;

size_t aw_settings_var_count(void)
{
    return N_VARS;
}

const char *aw_settings_var_name(size_t i)
{
    AW_ASSERT(i < N_VARS);
    return aw_settings_vars[i].name;
}

static const struct aw_settings_var *find_var(const char *name)
{
    for (size_t i = 0; i < N_VARS; i++) {
        if (strcmp(aw_settings_vars[i].name, name) == 0)
            return &aw_settings_vars[i];
    }
    return NULL;
}

bool aw_settings_is_unknown_var(const char *name)
{
    return strncmp(name, "AW_", 3) == 0 && find_var(name) == NULL;
}

const char *aw_settings_getenv_process(const char *name, void *ctx)
{
    (void)ctx;
    return getenv(name); /* the only getenv of the program */
}

/* ---------------------------------------------------------------------------------------------
 * Problems.
 * ------------------------------------------------------------------------------------------- */

static void add_problem_str(struct aw_settings_problems *p, const char *msg)
{
    aw_grow((void **)&p->items, &p->cap, p->n + 1, sizeof *p->items);
    p->items[p->n++] = aw_strdup(msg);
}

void aw_settings_problem(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                         const char *fmt, ...)
{
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s: ", v->name);
    if (n < 0 || (size_t)n >= sizeof msg)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0)
        msg[n] = '\0';
    add_problem_str(cx->p, msg);
    cx->bad[v - aw_settings_vars] = true;
}

const char *aw_settings_quoted(char out[80], const struct aw_settings_var *v, const char *value)
{
    if (v->flags & AW_SETTINGS_F_SECRET) {
        snprintf(out, 80, "(value hidden)");
        return out;
    }
    size_t j = 0;
    out[j++] = '"';
    for (const char *p = value; *p && j < 72; p++) {
        unsigned char ch = (unsigned char)*p;
        out[j++] = (ch >= 0x20 && ch < 0x7f && ch != '"') ? (char)ch : '?';
    }
    if (strlen(value) > 70) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j++] = '"';
    out[j] = '\0';
    return out;
}

void aw_settings_problems_free(struct aw_settings_problems *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i]);
    free(p->items);
    memset(p, 0, sizeof *p);
}

/* ---------------------------------------------------------------------------------------------
 * Load.
 * ------------------------------------------------------------------------------------------- */

/* Overwrites a secret before it is freed (volatile, so the stores are kept). */
static void wipe(char *secret)
{
    volatile char *p = secret;
    while (*p)
        *p++ = '\0';
}

static bool is_trimmed(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static bool has_control_char(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch == 0x7f)
            return true;
    }
    return false;
}

static void load_var(struct aw_settings_ctx *cx, const struct aw_settings_var *v, const char *raw,
                     enum aw_settings_purpose purpose)
{
    char host[256];
    /* Trim blanks and line ends (values pasted from files often keep a newline). */
    const char *b = raw ? raw : "";
    const char *e = b + strlen(b);
    while (b < e && is_trimmed(*b))
        b++;
    while (e > b && is_trimmed(e[-1]))
        e--;
    if ((size_t)(e - b) > AW_SETTINGS_STRING_MAX) {
        aw_settings_problem(cx, v, "longer than %d bytes", AW_SETTINGS_STRING_MAX);
        return;
    }
    char *value = aw_strndup(b, (size_t)(e - b));
    const char *eff = value;
    if (*value == '\0') {
        if (v->flags & AW_SETTINGS_F_DEF_HOSTNAME) {
            if (gethostname(host, sizeof host) != 0) {
                aw_settings_problem(cx, v, "unset and the host name is unavailable: %s",
                                    strerror(errno));
                goto out;
            }
            host[sizeof host - 1] = '\0';
            eff = host;
        } else if (v->def) {
            eff = v->def;
        } else {
            if ((v->flags & AW_SETTINGS_F_REQUIRED) && purpose == AW_SETTINGS_FOR_RUN)
                aw_settings_problem(cx, v, "required but not set");
            goto out; /* unset: field stays NULL / zero */
        }
    }
    if (has_control_char(eff))
        aw_settings_problem(cx, v, "contains control characters");
    else
        aw_settings_parse_value(cx, v, eff);
out:
    if (v->flags & AW_SETTINGS_F_SECRET)
        wipe(value);
    free(value);
}

static bool is_bad(const struct aw_settings_ctx *cx, const char *name)
{
    const struct aw_settings_var *v = find_var(name);
    AW_ASSERT(v != NULL);
    return cx->bad[v - aw_settings_vars];
}

/* Relations between variables, checked only when each of them parsed. */
static void cross_check(struct aw_settings_ctx *cx)
{
    struct aw_settings *s = cx->s;
    if (!is_bad(cx, "AW_KAFKA_DLQ_TOPIC") && !is_bad(cx, "AW_KAFKA_TOPICS") && s->kafka.dlq_topic) {
        for (size_t i = 0; i < s->kafka.n_topics; i++) {
            if (strcmp(s->kafka.topics[i], s->kafka.dlq_topic) == 0)
                aw_settings_problem(
                    cx, find_var("AW_KAFKA_DLQ_TOPIC"),
                    "must not be one of AW_KAFKA_TOPICS (dead letters would be re-consumed)");
        }
    }
    if (!is_bad(cx, "AW_KLAVIYO_TIMEOUT_MS") && !is_bad(cx, "AW_KLAVIYO_CONNECT_TIMEOUT_MS") &&
        s->klaviyo.timeout_ms < s->klaviyo.connect_timeout_ms)
        aw_settings_problem(cx, find_var("AW_KLAVIYO_TIMEOUT_MS"),
                            "%llu is below AW_KLAVIYO_CONNECT_TIMEOUT_MS (%llu)",
                            (unsigned long long)s->klaviyo.timeout_ms,
                            (unsigned long long)s->klaviyo.connect_timeout_ms);
    if (!is_bad(cx, "AW_KLAVIYO_RETRY_BASE_MS") && !is_bad(cx, "AW_KLAVIYO_RETRY_MAX_MS") &&
        s->klaviyo.retry_max_ms < s->klaviyo.retry_base_ms)
        aw_settings_problem(cx, find_var("AW_KLAVIYO_RETRY_MAX_MS"),
                            "%llu is below AW_KLAVIYO_RETRY_BASE_MS (%llu)",
                            (unsigned long long)s->klaviyo.retry_max_ms,
                            (unsigned long long)s->klaviyo.retry_base_ms);
    if (!is_bad(cx, "AW_STATE_RETENTION_S") && !is_bad(cx, "AW_FLUSH_MAX_AGE_S") &&
        s->flush.retention_s <= s->flush.max_age_s)
        aw_settings_problem(cx, find_var("AW_STATE_RETENTION_S"),
                            "%llu is not above AW_FLUSH_MAX_AGE_S (%llu): versions would expire "
                            "before the changes they order are flushed",
                            (unsigned long long)s->flush.retention_s,
                            (unsigned long long)s->flush.max_age_s);
    if (!is_bad(cx, "AW_FLUSH_TICK_MS") && !is_bad(cx, "AW_LEASE_TTL_MS") &&
        s->flush.tick_ms * 3 > s->leader.lease_ttl_ms)
        aw_settings_problem(
            cx, find_var("AW_FLUSH_TICK_MS"),
            "%llu is more than AW_LEASE_TTL_MS / 3 (%llu): the lease could expire between "
            "renewals",
            (unsigned long long)s->flush.tick_ms, (unsigned long long)(s->leader.lease_ttl_ms / 3));
    if (!is_bad(cx, "AW_DRY_RUN") && !is_bad(cx, "AW_DRY_RUN_FILE") && s->klaviyo.dry_run &&
        !s->klaviyo.dry_run_file)
        aw_settings_problem(cx, find_var("AW_DRY_RUN_FILE"),
                            "required when AW_DRY_RUN is true (where the writes go)");
    if (!is_bad(cx, "AW_SHUTDOWN_TIMEOUT_MS") && !is_bad(cx, "AW_KLAVIYO_TIMEOUT_MS") &&
        s->process.shutdown_timeout_ms < s->klaviyo.timeout_ms)
        aw_settings_problem(
            cx, find_var("AW_SHUTDOWN_TIMEOUT_MS"),
            "%llu is below AW_KLAVIYO_TIMEOUT_MS (%llu): an in-flight request could not "
            "finish during shutdown",
            (unsigned long long)s->process.shutdown_timeout_ms,
            (unsigned long long)s->klaviyo.timeout_ms);
}

static void load_kafka_file(struct aw_settings_ctx *cx)
{
    struct aw_settings_kafka *k = &cx->s->kafka;
    if (!k->config_file || is_bad(cx, "AW_KAFKA_CONFIG_FILE"))
        return;
    if (aw_config_load(&k->extra, k->config_file) == AW_OK)
        return;
    const struct aw_settings_var *v = find_var("AW_KAFKA_CONFIG_FILE");
    for (size_t i = 0; i < k->extra.n_errors; i++)
        aw_settings_problem(cx, v, "%s", k->extra.errors[i]);
    if (k->extra.n_errors_dropped > 0)
        aw_settings_problem(cx, v, "%zu more problems in %s", k->extra.n_errors_dropped,
                            k->config_file);
}

enum aw_err aw_settings_load(struct aw_settings *out, aw_settings_getenv_fn get, void *ctx,
                             enum aw_settings_purpose purpose,
                             struct aw_settings_problems *problems)
{
    AW_ASSERT(out != NULL && get != NULL && problems != NULL);
    memset(out, 0, sizeof *out);
    aw_config_init(&out->kafka.extra);
    struct aw_settings_ctx cx = {.s = out, .p = problems};
    size_t before = problems->n;
    for (size_t i = 0; i < N_VARS; i++)
        load_var(&cx, &aw_settings_vars[i], get(aw_settings_vars[i].name, ctx), purpose);
    cross_check(&cx);
    load_kafka_file(&cx);
    if (problems->n != before) {
        aw_settings_free(out);
        return AW_ERR_CONFIG;
    }
    return AW_OK;
}

void aw_settings_free(struct aw_settings *s)
{
    if (s == NULL)
        return;
    free(s->kafka.brokers);
    for (size_t i = 0; i < s->kafka.n_topics; i++)
        free(s->kafka.topics[i]);
    free(s->kafka.topics);
    free(s->kafka.group);
    free(s->kafka.dlq_topic);
    free(s->kafka.config_file);
    aw_config_free(&s->kafka.extra);
    if (s->redis.url) {
        wipe(s->redis.url); /* do not leave the password in freed heap memory */
        free(s->redis.url);
    }
    free(s->redis.url_masked);
    free(s->klaviyo.base_url);
    free(s->klaviyo.revision);
    free(s->klaviyo.ca_file);
    free(s->klaviyo.dry_run_file);
    free(s->http.host);
    free(s->process.instance_id);
    free(s->process.accounts_file);
    memset(s, 0, sizeof *s);
}
