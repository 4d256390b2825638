#include "worker/settings.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mem.h"
#include "common/text.h"

/* ---------------------------------------------------------------------------------------------
 * The table: the one declaration of every AW_* variable.
 * ------------------------------------------------------------------------------------------- */

enum kind { K_STRING, K_INT, K_BOOL, K_ENUM, K_DURATION };
enum unit { U_NONE, U_MS, U_S };

#define F_REQUIRED 1u     /* must be set (for AW_SETTINGS_FOR_RUN) */
#define F_SECRET 2u       /* value (or part of it) is secret: never echoed in problems */
#define F_FILE 4u         /* names a readable regular file */
#define F_DEF_HOSTNAME 8u /* default is the host name */
#define NO_FIELD ((size_t)-1)
#define STRING_MAX 4096 /* any string value */

struct ctx;
struct var;
/* Structured parse of a value already stored (K_STRING) or validated (K_ENUM): fills the fields
 * it owns, reports problems through ctx and returns false on any. */
typedef bool (*apply_fn)(struct ctx *cx, const struct var *v, const char *value);
/* Appends the effective value of a variable without a plain field (for aw_settings_print). */
typedef void (*show_fn)(const struct aw_settings *s, FILE *out);

struct var {
    const char *name;
    enum kind kind;
    const char *def;     /* default as text; NULL: unset by default */
    uint64_t min, max;   /* K_INT, K_DURATION: inclusive range in the variable's unit */
    const char *choices; /* K_ENUM: "a|b|c" */
    unsigned flags;
    enum unit unit; /* K_DURATION */
    size_t off;     /* offsetof(struct aw_settings, field) or NO_FIELD */
    apply_fn apply;
    show_fn show;
    const char *format; /* K_STRING: the accepted form, for the table */
    const char *meaning;
};

static bool apply_brokers(struct ctx *cx, const struct var *v, const char *value);
static bool apply_topics(struct ctx *cx, const struct var *v, const char *value);
static bool apply_topic(struct ctx *cx, const struct var *v, const char *value);
static bool apply_group(struct ctx *cx, const struct var *v, const char *value);
static bool apply_redis_url(struct ctx *cx, const struct var *v, const char *value);
static bool apply_klaviyo_url(struct ctx *cx, const struct var *v, const char *value);
static bool apply_revision(struct ctx *cx, const struct var *v, const char *value);
static bool apply_http_addr(struct ctx *cx, const struct var *v, const char *value);
static bool apply_log_level(struct ctx *cx, const struct var *v, const char *value);
static bool apply_instance_id(struct ctx *cx, const struct var *v, const char *value);
static void show_topics(const struct aw_settings *s, FILE *out);
static void show_redis_url(const struct aw_settings *s, FILE *out);
static void show_http_addr(const struct aw_settings *s, FILE *out);
static void show_log_level(const struct aw_settings *s, FILE *out);

#define OFF(field) offsetof(struct aw_settings, field)

static const struct var vars[] = {
    {.name = "AW_KAFKA_BROKERS",
     .kind = K_STRING,
     .flags = F_REQUIRED,
     .off = OFF(kafka.brokers),
     .apply = apply_brokers,
     .format = "host:port[,host:port...]",
     .meaning = "Kafka bootstrap brokers (required to run)"},
    {.name = "AW_KAFKA_TOPICS",
     .kind = K_STRING,
     .def = "mparticle.audience",
     .off = NO_FIELD,
     .apply = apply_topics,
     .show = show_topics,
     .format = "topic[,topic...]",
     .meaning = "input topics (comma-separated) with mParticle audience messages"},
    {.name = "AW_KAFKA_GROUP",
     .kind = K_STRING,
     .def = "aw-worker",
     .off = OFF(kafka.group),
     .apply = apply_group,
     .format = "1-255 printable characters",
     .meaning = "Kafka consumer group id, shared by all replicas"},
    {.name = "AW_KAFKA_DLQ_TOPIC",
     .kind = K_STRING,
     .def = "mparticle.audience.dlq",
     .off = OFF(kafka.dlq_topic),
     .apply = apply_topic,
     .format = "topic, not an input topic",
     .meaning = "dead-letter topic for records and profiles that cannot be delivered"},
    {.name = "AW_KAFKA_CONFIG_FILE",
     .kind = K_STRING,
     .off = OFF(kafka.config_file),
     .format = "path",
     .meaning = "optional file of extra librdkafka `key=value` lines (`#` comments), passed "
                "verbatim; secret values are masked"},
    {.name = "AW_CONSUMER_BATCH_MAX",
     .kind = K_INT,
     .def = "500",
     .min = 1,
     .max = 100000,
     .off = OFF(kafka.batch_max),
     .meaning = "most Kafka messages aggregated per Redis round trip"},
    {.name = "AW_REDIS_URL",
     .kind = K_STRING,
     .def = "redis://127.0.0.1:6379/0",
     .flags = F_SECRET,
     .off = NO_FIELD,
     .apply = apply_redis_url,
     .show = show_redis_url,
     .format =
         "redis://[[user]:password@]host[:port][/db] or unix://[[user]:password@]/path[?db=N]",
     .meaning = "Redis server; the password is a secret (printed as ****); `%XX` escapes allowed "
                "in credentials"},
    {.name = "AW_REDIS_CONNECT_TIMEOUT_MS",
     .kind = K_DURATION,
     .unit = U_MS,
     .def = "2000",
     .min = 10,
     .max = 60000,
     .off = OFF(redis.connect_timeout_ms),
     .meaning = "Redis connect timeout"},
    {.name = "AW_REDIS_TIMEOUT_MS",
     .kind = K_DURATION,
     .unit = U_MS,
     .def = "2000",
     .min = 10,
     .max = 60000,
     .off = OFF(redis.timeout_ms),
     .meaning = "Redis command timeout"},
    {.name = "AW_KLAVIYO_BASE_URL",
     .kind = K_STRING,
     .def = "https://a.klaviyo.com",
     .off = OFF(klaviyo.base_url),
     .apply = apply_klaviyo_url,
     .format = "https://host[:port][/prefix] (http:// for simulators)",
     .meaning = "Klaviyo API base URL; https always verifies TLS"},
    {.name = "AW_KLAVIYO_REVISION",
     .kind = K_STRING,
     .def = "2026-07-15",
     .off = OFF(klaviyo.revision),
     .apply = apply_revision,
     .format = "YYYY-MM-DD[.suffix]",
     .meaning = "Klaviyo API revision header"},
    {.name = "AW_KLAVIYO_CA_FILE",
     .kind = K_STRING,
     .flags = F_FILE,
     .off = OFF(klaviyo.ca_file),
     .format = "path",
     .meaning = "PEM CA bundle for Klaviyo TLS (unset: the system store)"},
    {.name = "AW_KLAVIYO_CONNECT_TIMEOUT_MS",
     .kind = K_DURATION,
     .unit = U_MS,
     .def = "5000",
     .min = 100,
     .max = 60000,
     .off = OFF(klaviyo.connect_timeout_ms),
     .meaning = "Klaviyo connect timeout"},
    {.name = "AW_KLAVIYO_TIMEOUT_MS",
     .kind = K_DURATION,
     .unit = U_MS,
     .def = "20000",
     .min = 1000,
     .max = 300000,
     .off = OFF(klaviyo.timeout_ms),
     .meaning = "Klaviyo whole-request timeout (>= connect timeout, <= AW_SHUTDOWN_TIMEOUT_MS)"},
    {.name = "AW_KLAVIYO_RETRY_BASE_MS",
     .kind = K_DURATION,
     .unit = U_MS,
     .def = "500",
     .min = 10,
     .max = 60000,
     .off = OFF(klaviyo.retry_base_ms),
     .meaning = "first retry delay after a transient Klaviyo failure"},
    {.name = "AW_KLAVIYO_RETRY_MAX_MS",
     .kind = K_DURATION,
     .unit = U_MS,
     .def = "60000",
     .min = 100,
     .max = 3600000,
     .off = OFF(klaviyo.retry_max_ms),
     .meaning = "retry delay ceiling (exponential backoff with jitter, >= base)"},
    {.name = "AW_KLAVIYO_JOB_POLL_MS",
     .kind = K_DURATION,
     .unit = U_MS,
     .def = "2000",
     .min = 100,
     .max = 60000,
     .off = OFF(klaviyo.job_poll_ms),
     .meaning = "interval between status polls of a Klaviyo bulk job"},
    {.name = "AW_FLUSH_MAX_QUEUE",
     .kind = K_INT,
     .def = "100",
     .min = 1,
     .max = 10000000,
     .off = OFF(flush.max_queue),
     .meaning = "pending changes that make an audience due for a flush"},
    {.name = "AW_FLUSH_MAX_AGE_S",
     .kind = K_DURATION,
     .unit = U_S,
     .def = "57600",
     .min = 1,
     .max = 2592000,
     .off = OFF(flush.max_age_s),
     .meaning = "seconds since the last upload (or oldest pending change) that make an audience "
                "due"},
    {.name = "AW_FLUSH_TICK_MS",
     .kind = K_DURATION,
     .unit = U_MS,
     .def = "1000",
     .min = 10,
     .max = 60000,
     .off = OFF(flush.tick_ms),
     .meaning = "flusher loop period (<= AW_LEASE_TTL_MS / 3)"},
    {.name = "AW_LEADER_ENABLED",
     .kind = K_BOOL,
     .def = "true",
     .off = OFF(leader.enabled),
     .meaning = "false: this replica only consumes and never takes the leader lease"},
    {.name = "AW_LEASE_TTL_MS",
     .kind = K_DURATION,
     .unit = U_MS,
     .def = "15000",
     .min = 1000,
     .max = 300000,
     .off = OFF(leader.lease_ttl_ms),
     .meaning = "leader lease time-to-live in Redis"},
    {.name = "AW_HTTP_ADDR",
     .kind = K_STRING,
     .def = "0.0.0.0:9464",
     .off = NO_FIELD,
     .apply = apply_http_addr,
     .show = show_http_addr,
     .format = "host:port or [ipv6]:port",
     .meaning = "listen address of /metrics, /healthz, /readyz, /status"},
    {.name = "AW_LOG_LEVEL",
     .kind = K_ENUM,
     .def = "info",
     .choices = "debug|info|warn|error",
     .off = NO_FIELD,
     .apply = apply_log_level,
     .show = show_log_level,
     .meaning = "minimum level of the logfmt lines on stderr"},
    {.name = "AW_INSTANCE_ID",
     .kind = K_STRING,
     .flags = F_DEF_HOSTNAME,
     .off = OFF(process.instance_id),
     .apply = apply_instance_id,
     .format = "1-128 of A-Z a-z 0-9 . _ -",
     .meaning = "name of this replica in the lease, logs and metrics (default: host name)"},
    {.name = "AW_CONFIG_FILE",
     .kind = K_STRING,
     .flags = F_FILE,
     .off = OFF(process.accounts_file),
     .format = "path",
     .meaning = "optional per-account JSON settings file, keyed by account id"},
    {.name = "AW_SHUTDOWN_TIMEOUT_MS",
     .kind = K_DURATION,
     .unit = U_MS,
     .def = "25000",
     .min = 1000,
     .max = 600000,
     .off = OFF(process.shutdown_timeout_ms),
     .meaning = "drain budget after SIGTERM (the pod grace period must exceed it)"},
};

#define N_VARS (sizeof vars / sizeof vars[0])

size_t aw_settings_var_count(void)
{
    return N_VARS;
}

const char *aw_settings_var_name(size_t i)
{
    AW_ASSERT(i < N_VARS);
    return vars[i].name;
}

static const struct var *find_var(const char *name)
{
    for (size_t i = 0; i < N_VARS; i++) {
        if (strcmp(vars[i].name, name) == 0)
            return &vars[i];
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
    return getenv(name); /* the only getenv of the program (STYLE.md §7) */
}

/* ---------------------------------------------------------------------------------------------
 * Problems.
 * ------------------------------------------------------------------------------------------- */

struct ctx {
    struct aw_settings *s;
    struct aw_settings_problems *p;
    bool bad[N_VARS]; /* the variable had a problem: skip cross-checks that use it */
};

static void add_problem_str(struct aw_settings_problems *p, const char *msg)
{
    aw_grow((void **)&p->items, &p->cap, p->n + 1, sizeof *p->items);
    p->items[p->n++] = aw_strdup(msg);
}

__attribute__((format(printf, 3, 4))) static void problem(struct ctx *cx, const struct var *v,
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
    cx->bad[v - vars] = true;
}

/* A printable, bounded rendering of a non-secret value for problem messages. */
static const char *quoted(char out[80], const struct var *v, const char *value)
{
    if (v->flags & F_SECRET) {
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
 * Scalars.
 * ------------------------------------------------------------------------------------------- */

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* Decimal digits only (no sign, no blanks), into *out. False on anything else or overflow. */
static bool parse_u64_prefix(const char *s, uint64_t *out, const char **end)
{
    if (!is_digit(*s))
        return false;
    char *e = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno != 0 || e == s)
        return false;
    *out = (uint64_t)v;
    *end = e;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    const char *end = NULL;
    return parse_u64_prefix(s, out, &end) && *end == '\0';
}

static const char *unit_word(enum unit u)
{
    return u == U_S ? "s" : u == U_MS ? "ms" : "";
}

static bool parse_duration(struct ctx *cx, const struct var *v, const char *value, uint64_t *out)
{
    char q[80];
    uint64_t n = 0;
    const char *end = NULL;
    if (!parse_u64_prefix(value, &n, &end)) {
        if (is_digit(*value))
            problem(cx, v, "%s is too large", quoted(q, v, value));
        else
            problem(cx, v, "%s is not a duration (a whole number of %s, or with unit ms|s|m|h)",
                    quoted(q, v, value), v->unit == U_S ? "seconds" : "milliseconds");
        return false;
    }
    uint64_t mult_ms;
    if (*end == '\0')
        mult_ms = v->unit == U_S ? 1000 : 1;
    else if (strcmp(end, "ms") == 0)
        mult_ms = 1;
    else if (strcmp(end, "s") == 0)
        mult_ms = 1000;
    else if (strcmp(end, "m") == 0)
        mult_ms = 60000;
    else if (strcmp(end, "h") == 0)
        mult_ms = 3600000;
    else {
        problem(cx, v, "%s has an unknown unit (use ms, s, m or h)", quoted(q, v, value));
        return false;
    }
    if (n > UINT64_MAX / mult_ms) {
        problem(cx, v, "%s is too large", quoted(q, v, value));
        return false;
    }
    uint64_t ms = n * mult_ms;
    if (v->unit == U_S) {
        if (ms % 1000 != 0) {
            problem(cx, v, "%s is not a whole number of seconds", quoted(q, v, value));
            return false;
        }
        *out = ms / 1000;
    } else {
        *out = ms;
    }
    return true;
}

static bool parse_bool(const char *value, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(value, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(value, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Index of value among "a|b|c" (case-insensitive), or -1. */
static int enum_index(const char *choices, const char *value)
{
    int idx = 0;
    size_t vlen = strlen(value);
    for (const char *p = choices;; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == vlen && strncasecmp(p, value, len) == 0)
            return idx;
        if (!bar)
            return -1;
        p = bar + 1;
    }
}

static bool check_readable_file(struct ctx *cx, const struct var *v, const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        problem(cx, v, "cannot open %s: %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    close(fd);
    if (!ok)
        problem(cx, v, "%s is not a regular file", path);
    return ok;
}

/* ---------------------------------------------------------------------------------------------
 * Structured values.
 * ------------------------------------------------------------------------------------------- */

static char **field_str(struct aw_settings *s, const struct var *v)
{
    return (char **)(void *)((char *)s + v->off);
}

static bool is_topic_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch) || ch == '.' ||
           ch == '_' || ch == '-';
}

/* Kafka's rule for topic names: 1..249 of [A-Za-z0-9._-], not "." or "..". */
static bool topic_is_valid(const char *t, size_t len)
{
    if (len == 0 || len > 249)
        return false;
    if ((len == 1 && t[0] == '.') || (len == 2 && t[0] == '.' && t[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_topic_char(t[i]))
            return false;
    }
    return true;
}

static bool apply_topic(struct ctx *cx, const struct var *v, const char *value)
{
    char q[80];
    if (!topic_is_valid(value, strlen(value))) {
        problem(cx, v, "%s is not a valid topic name (1-249 of A-Z a-z 0-9 . _ -)",
                quoted(q, v, value));
        return false;
    }
    return true;
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

static bool apply_topics(struct ctx *cx, const struct var *v, const char *value)
{
    struct aw_settings_kafka *k = &cx->s->kafka;
    size_t cap = 0;
    bool ok = true;
    const char *p = value;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *b = p, *e = comma ? comma : p + strlen(p);
        while (b < e && is_blank(*b))
            b++;
        while (e > b && is_blank(e[-1]))
            e--;
        size_t len = (size_t)(e - b);
        char *name = aw_strndup(b, len);
        char q[80];
        if (len == 0) {
            problem(cx, v, "empty topic name in the list");
            ok = false;
            free(name);
        } else if (!topic_is_valid(b, len)) {
            problem(cx, v, "%s is not a valid topic name (1-249 of A-Z a-z 0-9 . _ -)",
                    quoted(q, v, name));
            ok = false;
            free(name);
        } else {
            bool dup = false;
            for (size_t i = 0; i < k->n_topics; i++)
                dup = dup || strcmp(k->topics[i], name) == 0;
            if (dup) {
                problem(cx, v, "topic %s is listed twice", quoted(q, v, name));
                ok = false;
                free(name);
            } else {
                aw_grow((void **)&k->topics, &cap, k->n_topics + 1, sizeof *k->topics);
                k->topics[k->n_topics++] = name;
            }
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return ok;
}

static bool apply_brokers(struct ctx *cx, const struct var *v, const char *value)
{
    /* librdkafka parses the list itself; refuse what it would silently misread. */
    for (const char *p = value; *p; p++) {
        if (is_blank(*p)) {
            problem(cx, v, "must not contain blanks (use host:port,host:port)");
            return false;
        }
    }
    if (value[0] == ',' || value[strlen(value) - 1] == ',' || strstr(value, ",,") != NULL) {
        problem(cx, v, "empty broker in the list");
        return false;
    }
    return true;
}

static bool apply_group(struct ctx *cx, const struct var *v, const char *value)
{
    char q[80];
    size_t len = strlen(value);
    bool ok = len >= 1 && len <= 255;
    for (size_t i = 0; ok && i < len; i++)
        ok = value[i] > 0x20 && value[i] < 0x7f;
    if (!ok)
        problem(cx, v, "%s must be 1-255 printable characters without blanks", quoted(q, v, value));
    return ok;
}

static bool apply_instance_id(struct ctx *cx, const struct var *v, const char *value)
{
    char q[80];
    size_t len = strlen(value);
    bool ok = len >= 1 && len <= 128;
    for (size_t i = 0; ok && i < len; i++)
        ok = is_topic_char(value[i]);
    if (!ok)
        problem(cx, v, "%s must be 1-128 of A-Z a-z 0-9 . _ -", quoted(q, v, value));
    return ok;
}

static bool apply_revision(struct ctx *cx, const struct var *v, const char *value)
{
    char q[80];
    /* YYYY-MM-DD, optionally followed by .suffix (Klaviyo's ".pre" revisions). */
    bool ok = strlen(value) >= 10;
    static const char shape[] = "dddd-dd-dd";
    for (size_t i = 0; ok && i < 10; i++)
        ok = shape[i] == 'd' ? is_digit(value[i]) : value[i] == '-';
    if (ok && value[10] != '\0') {
        ok = value[10] == '.' && value[11] != '\0';
        for (const char *p = value + 11; ok && *p; p++)
            ok = (*p >= 'a' && *p <= 'z') || is_digit(*p);
    }
    if (ok) {
        int month = (value[5] - '0') * 10 + (value[6] - '0');
        int day = (value[8] - '0') * 10 + (value[9] - '0');
        ok = month >= 1 && month <= 12 && day >= 1 && day <= 31;
    }
    if (!ok)
        problem(cx, v, "%s is not a revision (YYYY-MM-DD[.suffix])", quoted(q, v, value));
    return ok;
}

/* Parses "1".."65535". */
static bool parse_port(const char *b, const char *e, uint16_t *out)
{
    if (e - b < 1 || e - b > 5)
        return false;
    uint32_t n = 0;
    for (const char *p = b; p < e; p++) {
        if (!is_digit(*p))
            return false;
        n = n * 10 + (uint32_t)(*p - '0');
    }
    if (n < 1 || n > 65535)
        return false;
    *out = (uint16_t)n;
    return true;
}

static bool is_host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch) || ch == '.' ||
           ch == '-' || ch == '_';
}

/* Splits an authority "host", "host:port", "[v6]", "[v6]:port" in [b, e) into a caller-owned
 * host (brackets removed) and port (default_port when absent). Returns a static reason or NULL. */
static const char *parse_hostport(const char *b, const char *e, uint16_t default_port,
                                  bool port_required, char **host, uint16_t *port)
{
    const char *hb, *he, *rest;
    if (b < e && *b == '[') {
        const char *close = memchr(b, ']', (size_t)(e - b));
        if (!close)
            return "unterminated [ in the address";
        hb = b + 1;
        he = close;
        for (const char *p = hb; p < he; p++) {
            if (!(is_digit(*p) || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F') ||
                  *p == ':' || *p == '.'))
                return "invalid IPv6 address";
        }
        rest = close + 1;
    } else {
        const char *colon = memchr(b, ':', (size_t)(e - b));
        hb = b;
        he = colon ? colon : e;
        for (const char *p = hb; p < he; p++) {
            if (!is_host_char(*p))
                return "invalid character in the host name";
        }
        rest = he;
    }
    if (hb == he)
        return "missing host";
    uint16_t pt = default_port;
    if (rest < e) {
        if (*rest != ':')
            return "unexpected characters after the host";
        if (!parse_port(rest + 1, e, &pt))
            return "port must be 1-65535";
    } else if (port_required) {
        return "missing :port";
    }
    *host = aw_strndup(hb, (size_t)(he - hb));
    *port = pt;
    return NULL;
}

static bool apply_http_addr(struct ctx *cx, const struct var *v, const char *value)
{
    char q[80];
    struct aw_settings_http *h = &cx->s->http;
    const char *why = parse_hostport(value, value + strlen(value), 0, true, &h->host, &h->port);
    if (why) {
        problem(cx, v, "%s: %s (expected host:port or [ipv6]:port)", quoted(q, v, value), why);
        return false;
    }
    return true;
}

static bool has_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* Redis URL into cx->s->redis. Never quotes the value: it may hold the password. */
static bool apply_redis_url(struct ctx *cx, const struct var *v, const char *value)
{
    struct aw_settings_redis *r = &cx->s->redis;
    const char *rest;
    if (has_prefix_ci(value, "redis://")) {
        rest = value + 8;
        r->is_unix = false;
    } else if (has_prefix_ci(value, "unix://")) {
        rest = value + 7;
        r->is_unix = true;
    } else if (has_prefix_ci(value, "rediss://")) {
        problem(cx, v, "TLS (rediss://) is not supported by this build; use redis:// or unix://");
        return false;
    } else {
        problem(cx, v, "scheme must be redis:// or unix://");
        return false;
    }
    if (strchr(rest, '#')) {
        problem(cx, v, "fragments (#) are not allowed");
        return false;
    }
    const char *query = strchr(rest, '?');
    const char *end = query ? query : rest + strlen(rest);
    /* Credentials end at the last '@' before the path or query. */
    const char *auth_end = NULL;
    if (r->is_unix) {
        const char *at = memchr(rest, '@', (size_t)(end - rest));
        if (*rest != '/' && at)
            auth_end = at;
    } else {
        const char *slash = memchr(rest, '/', (size_t)(end - rest));
        const char *limit = slash ? slash : end;
        for (const char *p = rest; p < limit; p++) {
            if (*p == '@')
                auth_end = p;
        }
    }
    const char *b = rest;
    if (auth_end) {
        const char *colon = memchr(rest, ':', (size_t)(auth_end - rest));
        if (!colon) {
            problem(cx, v, "credentials must be user:password or :password");
            return false;
        }
        if (colon > rest) {
            r->username = aw_text_pct_decode(rest, (size_t)(colon - rest));
            if (!r->username) {
                problem(cx, v, "bad %%XX escape in the user name");
                return false;
            }
        }
        if (auth_end > colon + 1) {
            r->password = aw_text_pct_decode(colon + 1, (size_t)(auth_end - colon - 1));
            if (!r->password) {
                problem(cx, v, "bad %%XX escape in the password");
                return false;
            }
        }
        b = auth_end + 1;
    }
    uint32_t db = 0;
    bool have_path_db = false;
    if (r->is_unix) {
        if (*b != '/') {
            problem(cx, v, "unix:// needs an absolute socket path (unix:///run/redis.sock)");
            return false;
        }
        if ((size_t)(end - b) >= 108) {
            problem(cx, v, "socket path longer than 107 bytes");
            return false;
        }
        r->socket_path = aw_strndup(b, (size_t)(end - b));
    } else {
        const char *slash = memchr(b, '/', (size_t)(end - b));
        const char *he = slash ? slash : end;
        const char *why = parse_hostport(b, he, 6379, false, &r->host, &r->port);
        if (why) {
            problem(cx, v, "%s", why);
            return false;
        }
        if (slash && slash + 1 < end) {
            uint64_t n = 0;
            char *dbs = aw_strndup(slash + 1, (size_t)(end - slash - 1));
            bool ok = parse_u64(dbs, &n) && n <= INT32_MAX;
            free(dbs);
            if (!ok) {
                problem(cx, v, "database index must be 0-2147483647");
                return false;
            }
            db = (uint32_t)n;
            have_path_db = true;
        }
    }
    if (query) {
        if (strncmp(query, "?db=", 4) != 0 || have_path_db) {
            problem(cx, v, "the only query parameter is db=N, and only without /N in the path");
            return false;
        }
        uint64_t n = 0;
        if (!parse_u64(query + 4, &n) || n > INT32_MAX) {
            problem(cx, v, "database index must be 0-2147483647");
            return false;
        }
        db = (uint32_t)n;
    }
    r->db = db;

    char masked[STRING_MAX + 64];
    char cred[320] = "";
    if (r->username || r->password) {
        /* The user name is not a secret; it is shown escaped as it was given. */
        int n = snprintf(cred, sizeof cred, "%.*s:%s@",
                         r->username ? (int)(strchr(rest, ':') - rest) : 0, rest,
                         r->password ? AW_SETTINGS_MASK : "");
        if (n < 0 || (size_t)n >= sizeof cred)
            snprintf(cred, sizeof cred, "%s:%s@", "(long)", AW_SETTINGS_MASK);
    }
    if (r->is_unix)
        snprintf(masked, sizeof masked, "unix://%s%s?db=%u", cred, r->socket_path, (unsigned)db);
    else if (strchr(r->host, ':'))
        snprintf(masked, sizeof masked, "redis://%s[%s]:%u/%u", cred, r->host, (unsigned)r->port,
                 (unsigned)db);
    else
        snprintf(masked, sizeof masked, "redis://%s%s:%u/%u", cred, r->host, (unsigned)r->port,
                 (unsigned)db);
    r->url_masked = aw_strdup(masked);
    free(r->url);
    r->url = aw_strdup(value);
    return true;
}

static bool apply_klaviyo_url(struct ctx *cx, const struct var *v, const char *value)
{
    char q[80];
    struct aw_settings_klaviyo *k = &cx->s->klaviyo;
    const char *rest;
    if (has_prefix_ci(value, "https://")) {
        rest = value + 8;
        k->is_tls = true;
    } else if (has_prefix_ci(value, "http://")) {
        rest = value + 7;
        k->is_tls = false;
    } else {
        problem(cx, v, "%s: scheme must be https:// (or http:// for a simulator)",
                quoted(q, v, value));
        return false;
    }
    if (strpbrk(rest, "?#")) {
        problem(cx, v, "%s: query or fragment not allowed", quoted(q, v, value));
        return false;
    }
    const char *slash = strchr(rest, '/');
    const char *ae = slash ? slash : rest + strlen(rest);
    if (memchr(rest, '@', (size_t)(ae - rest))) {
        problem(cx, v, "credentials in the URL are not allowed");
        return false;
    }
    char *host = NULL;
    uint16_t port = 0;
    const char *why = parse_hostport(rest, ae, k->is_tls ? 443 : 80, false, &host, &port);
    free(host);
    if (why) {
        problem(cx, v, "%s: %s", quoted(q, v, value), why);
        return false;
    }
    for (const char *p = ae; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            problem(cx, v, "%s: invalid character in the path", quoted(q, v, value));
            return false;
        }
    }
    /* Normalise: lower-case scheme, no trailing '/', so callers append "/api/...". */
    size_t len = strlen(rest);
    while (len > 0 && rest[len - 1] == '/')
        len--;
    char buf[STRING_MAX + 16];
    snprintf(buf, sizeof buf, "%s://%.*s", k->is_tls ? "https" : "http", (int)len, rest);
    free(k->base_url);
    k->base_url = aw_strdup(buf);
    return true;
}

static bool apply_log_level(struct ctx *cx, const struct var *v, const char *value)
{
    enum aw_log_level level;
    if (!aw_log_parse_level(value, &level)) {
        problem(cx, v, "unknown level"); /* unreachable: the enum check came first */
        return false;
    }
    cx->s->log.level = level;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Load.
 * ------------------------------------------------------------------------------------------- */

static bool has_control_char(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch == 0x7f)
            return true;
    }
    return false;
}

static void load_var(struct ctx *cx, const struct var *v, const char *raw,
                     enum aw_settings_purpose purpose)
{
    char q[80];
    char host[256];
    /* Trim blanks and line ends (values pasted from files often keep a newline). */
    const char *b = raw ? raw : "";
    const char *e = b + strlen(b);
    while (b < e && (is_blank(*b) || *b == '\n' || *b == '\r'))
        b++;
    while (e > b && (is_blank(e[-1]) || e[-1] == '\n' || e[-1] == '\r'))
        e--;
    if ((size_t)(e - b) > STRING_MAX) {
        problem(cx, v, "longer than %d bytes", STRING_MAX);
        return;
    }
    char *value = aw_strndup(b, (size_t)(e - b));
    const char *eff = value;
    if (*value == '\0') {
        if (v->flags & F_DEF_HOSTNAME) {
            if (gethostname(host, sizeof host) != 0) {
                problem(cx, v, "unset and the host name is unavailable: %s", strerror(errno));
                goto out;
            }
            host[sizeof host - 1] = '\0';
            eff = host;
        } else if (v->def) {
            eff = v->def;
        } else {
            if ((v->flags & F_REQUIRED) && purpose == AW_SETTINGS_FOR_RUN)
                problem(cx, v, "required but not set");
            goto out; /* unset: field stays NULL / zero */
        }
    }
    if (has_control_char(eff)) {
        problem(cx, v, "contains control characters");
        goto out;
    }
    uint64_t n = 0;
    bool flag = false;
    switch (v->kind) {
    case K_STRING:
        if (v->off != NO_FIELD)
            *field_str(cx->s, v) = aw_strdup(eff);
        if ((v->flags & F_FILE) && !check_readable_file(cx, v, eff))
            break;
        if (v->apply)
            v->apply(cx, v, eff);
        break;
    case K_INT: {
        const char *end = NULL;
        if (!parse_u64_prefix(eff, &n, &end)) {
            problem(cx, v, "%s is %s", quoted(q, v, eff),
                    is_digit(*eff) ? "too large" : "not a whole number");
            break;
        }
        if (*end != '\0') {
            problem(cx, v, "%s is not a whole number", quoted(q, v, eff));
            break;
        }
        if (n < v->min || n > v->max) {
            problem(cx, v, "%s is out of range %llu..%llu", quoted(q, v, eff),
                    (unsigned long long)v->min, (unsigned long long)v->max);
            break;
        }
        *(uint64_t *)(void *)((char *)cx->s + v->off) = n;
        break;
    }
    case K_DURATION:
        if (!parse_duration(cx, v, eff, &n))
            break;
        if (n < v->min || n > v->max) {
            problem(cx, v, "%s is out of range %llu..%llu %s", quoted(q, v, eff),
                    (unsigned long long)v->min, (unsigned long long)v->max, unit_word(v->unit));
            break;
        }
        *(uint64_t *)(void *)((char *)cx->s + v->off) = n;
        break;
    case K_BOOL:
        if (!parse_bool(eff, &flag)) {
            problem(cx, v, "%s is not a boolean (true/false, 1/0, yes/no, on/off)",
                    quoted(q, v, eff));
            break;
        }
        *(bool *)(void *)((char *)cx->s + v->off) = flag;
        break;
    case K_ENUM:
        if (enum_index(v->choices, eff) < 0) {
            problem(cx, v, "%s is not one of %s", quoted(q, v, eff), v->choices);
            break;
        }
        if (v->apply)
            v->apply(cx, v, eff);
        break;
    }
out:
    free(value);
}

static bool is_bad(const struct ctx *cx, const char *name)
{
    const struct var *v = find_var(name);
    AW_ASSERT(v != NULL);
    return cx->bad[v - vars];
}

/* Relations between variables, checked only when each of them parsed. */
static void cross_check(struct ctx *cx)
{
    struct aw_settings *s = cx->s;
    if (!is_bad(cx, "AW_KAFKA_DLQ_TOPIC") && !is_bad(cx, "AW_KAFKA_TOPICS") && s->kafka.dlq_topic) {
        for (size_t i = 0; i < s->kafka.n_topics; i++) {
            if (strcmp(s->kafka.topics[i], s->kafka.dlq_topic) == 0)
                problem(cx, find_var("AW_KAFKA_DLQ_TOPIC"),
                        "must not be one of AW_KAFKA_TOPICS (dead letters would be re-consumed)");
        }
    }
    if (!is_bad(cx, "AW_KLAVIYO_TIMEOUT_MS") && !is_bad(cx, "AW_KLAVIYO_CONNECT_TIMEOUT_MS") &&
        s->klaviyo.timeout_ms < s->klaviyo.connect_timeout_ms)
        problem(cx, find_var("AW_KLAVIYO_TIMEOUT_MS"),
                "%llu is below AW_KLAVIYO_CONNECT_TIMEOUT_MS (%llu)",
                (unsigned long long)s->klaviyo.timeout_ms,
                (unsigned long long)s->klaviyo.connect_timeout_ms);
    if (!is_bad(cx, "AW_KLAVIYO_RETRY_BASE_MS") && !is_bad(cx, "AW_KLAVIYO_RETRY_MAX_MS") &&
        s->klaviyo.retry_max_ms < s->klaviyo.retry_base_ms)
        problem(cx, find_var("AW_KLAVIYO_RETRY_MAX_MS"),
                "%llu is below AW_KLAVIYO_RETRY_BASE_MS (%llu)",
                (unsigned long long)s->klaviyo.retry_max_ms,
                (unsigned long long)s->klaviyo.retry_base_ms);
    if (!is_bad(cx, "AW_FLUSH_TICK_MS") && !is_bad(cx, "AW_LEASE_TTL_MS") &&
        s->flush.tick_ms * 3 > s->leader.lease_ttl_ms)
        problem(cx, find_var("AW_FLUSH_TICK_MS"),
                "%llu is more than AW_LEASE_TTL_MS / 3 (%llu): the lease could expire between "
                "renewals",
                (unsigned long long)s->flush.tick_ms,
                (unsigned long long)(s->leader.lease_ttl_ms / 3));
    if (!is_bad(cx, "AW_SHUTDOWN_TIMEOUT_MS") && !is_bad(cx, "AW_KLAVIYO_TIMEOUT_MS") &&
        s->process.shutdown_timeout_ms < s->klaviyo.timeout_ms)
        problem(cx, find_var("AW_SHUTDOWN_TIMEOUT_MS"),
                "%llu is below AW_KLAVIYO_TIMEOUT_MS (%llu): an in-flight request could not "
                "finish during shutdown",
                (unsigned long long)s->process.shutdown_timeout_ms,
                (unsigned long long)s->klaviyo.timeout_ms);
}

static void load_kafka_file(struct ctx *cx)
{
    struct aw_settings_kafka *k = &cx->s->kafka;
    if (!k->config_file || is_bad(cx, "AW_KAFKA_CONFIG_FILE"))
        return;
    if (aw_config_load(&k->extra, k->config_file) == AW_OK)
        return;
    const struct var *v = find_var("AW_KAFKA_CONFIG_FILE");
    for (size_t i = 0; i < k->extra.n_errors; i++)
        problem(cx, v, "%s", k->extra.errors[i]);
    if (k->extra.n_errors_dropped > 0)
        problem(cx, v, "%zu more problems in %s", k->extra.n_errors_dropped, k->config_file);
}

enum aw_err aw_settings_load(struct aw_settings *out, aw_settings_getenv_fn get, void *ctx,
                             enum aw_settings_purpose purpose,
                             struct aw_settings_problems *problems)
{
    AW_ASSERT(out != NULL && get != NULL && problems != NULL);
    memset(out, 0, sizeof *out);
    aw_config_init(&out->kafka.extra);
    struct ctx cx = {.s = out, .p = problems};
    size_t before = problems->n;
    for (size_t i = 0; i < N_VARS; i++)
        load_var(&cx, &vars[i], get(vars[i].name, ctx), purpose);
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
    free(s->redis.host);
    free(s->redis.socket_path);
    free(s->redis.username);
    if (s->redis.password) {
        /* Do not leave the secret in freed heap memory. */
        volatile char *p = s->redis.password;
        while (*p)
            *p++ = '\0';
        free(s->redis.password);
    }
    free(s->redis.url_masked);
    free(s->redis.url);
    free(s->klaviyo.base_url);
    free(s->klaviyo.revision);
    free(s->klaviyo.ca_file);
    free(s->http.host);
    free(s->process.instance_id);
    free(s->process.accounts_file);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------------------------------------
 * Printing.
 * ------------------------------------------------------------------------------------------- */

bool aw_settings_kafka_key_is_secret(const char *key)
{
    static const char *const parts[] = {
        "password",           "secret", "jaas", "token", "credential", "key.pem",
        "oauthbearer.config", "private"};
    size_t klen = strlen(key);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        size_t plen = strlen(parts[i]);
        for (size_t j = 0; j + plen <= klen; j++) {
            if (strncasecmp(key + j, parts[i], plen) == 0)
                return true;
        }
    }
    return false;
}

static void show_topics(const struct aw_settings *s, FILE *out)
{
    for (size_t i = 0; i < s->kafka.n_topics; i++)
        fprintf(out, "%s%s", i ? "," : "", s->kafka.topics[i]);
}

static void show_redis_url(const struct aw_settings *s, FILE *out)
{
    fputs(s->redis.url_masked ? s->redis.url_masked : "", out);
}

static void show_http_addr(const struct aw_settings *s, FILE *out)
{
    if (!s->http.host)
        return;
    if (strchr(s->http.host, ':'))
        fprintf(out, "[%s]:%u", s->http.host, (unsigned)s->http.port);
    else
        fprintf(out, "%s:%u", s->http.host, (unsigned)s->http.port);
}

static void show_log_level(const struct aw_settings *s, FILE *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    fputs(names[(unsigned)s->log.level & 3u], out);
}

enum aw_err aw_settings_print(const struct aw_settings *s, FILE *out)
{
    for (size_t i = 0; i < N_VARS; i++) {
        const struct var *v = &vars[i];
        fprintf(out, "%s=", v->name);
        const char *base = (const char *)s;
        if (v->show) {
            v->show(s, out);
        } else if (v->kind == K_STRING) {
            const char *str = *(char *const *)(const void *)(base + v->off);
            fputs(str ? str : "", out);
        } else if (v->kind == K_BOOL) {
            fputs(*(const bool *)(const void *)(base + v->off) ? "true" : "false", out);
        } else if (v->kind == K_INT || v->kind == K_DURATION) {
            fprintf(out, "%llu",
                    (unsigned long long)*(const uint64_t *)(const void *)(base + v->off));
        }
        fputc('\n', out);
    }
    for (size_t i = 0; i < s->kafka.extra.n_entries; i++) {
        const struct aw_config_entry *en = &s->kafka.extra.entries[i];
        fprintf(out, "kafka.%s=%s\n", en->key,
                aw_settings_kafka_key_is_secret(en->key) ? AW_SETTINGS_MASK : en->value);
    }
    return ferror(out) ? AW_ERR_IO : AW_OK;
}

enum aw_err aw_settings_print_table(FILE *out)
{
    fputs("| Variable | Default | Range / format | Meaning |\n", out);
    fputs("|---|---|---|---|\n", out);
    for (size_t i = 0; i < N_VARS; i++) {
        const struct var *v = &vars[i];
        fprintf(out, "| `%s` | ", v->name);
        if (v->flags & F_DEF_HOSTNAME)
            fputs("host name", out);
        else if (v->def)
            fprintf(out, "`%s`", v->def);
        else if (v->flags & F_REQUIRED)
            fputs("**required**", out);
        else
            fputs("unset", out);
        fputs(" | ", out);
        switch (v->kind) {
        case K_STRING:
            fprintf(out, "%s", v->format ? v->format : "text");
            break;
        case K_INT:
            fprintf(out, "%llu..%llu", (unsigned long long)v->min, (unsigned long long)v->max);
            break;
        case K_DURATION:
            fprintf(out, "%llu..%llu %s", (unsigned long long)v->min, (unsigned long long)v->max,
                    unit_word(v->unit));
            break;
        case K_BOOL:
            fputs("true, false", out);
            break;
        case K_ENUM:
            for (const char *p = v->choices; *p; p++) {
                if (*p == '|')
                    fputs(", ", out);
                else
                    fputc(*p, out);
            }
            break;
        }
        fprintf(out, " | %s%s |\n", v->meaning, (v->flags & F_SECRET) ? " (secret)" : "");
    }
    return ferror(out) ? AW_ERR_IO : AW_OK;
}
