/* settings_parse.c -- the value parsers and validators of the AW_* table (see settings_table.h):
 * whole numbers, durations, booleans, enums, files, topic lists, and the structured values.
 * Addresses go through the shared grammars (common/hostport.h, common/redis_url.h) so that what
 * --check-config accepts is exactly what the consumer, the store and the HTTP server use. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hostport.h"
#include "common/mem.h"
#include "common/redis_url.h"
#include "worker/settings.h"
#include "worker/settings_table.h"

/* ---------------------------------------------------------------------------------------------
 * Scalars.
 * ------------------------------------------------------------------------------------------- */

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
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

static bool parse_duration(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                           const char *value, uint64_t *out)
{
    char q[80];
    uint64_t n = 0;
    const char *end = NULL;
    if (!parse_u64_prefix(value, &n, &end)) {
        if (is_digit(*value))
            aw_settings_problem(cx, v, "%s is too large", aw_settings_quoted(q, v, value));
        else
            aw_settings_problem(
                cx, v, "%s is not a duration (a whole number of %s, or with unit ms|s|m|h)",
                aw_settings_quoted(q, v, value),
                v->unit == AW_SETTINGS_U_S ? "seconds" : "milliseconds");
        return false;
    }
    uint64_t mult_ms;
    if (*end == '\0')
        mult_ms = v->unit == AW_SETTINGS_U_S ? 1000 : 1;
    else if (strcmp(end, "ms") == 0)
        mult_ms = 1;
    else if (strcmp(end, "s") == 0)
        mult_ms = 1000;
    else if (strcmp(end, "m") == 0)
        mult_ms = 60000;
    else if (strcmp(end, "h") == 0)
        mult_ms = 3600000;
    else {
        aw_settings_problem(cx, v, "%s has an unknown unit (use ms, s, m or h)",
                            aw_settings_quoted(q, v, value));
        return false;
    }
    if (n > UINT64_MAX / mult_ms) {
        aw_settings_problem(cx, v, "%s is too large", aw_settings_quoted(q, v, value));
        return false;
    }
    uint64_t ms = n * mult_ms;
    if (v->unit == AW_SETTINGS_U_S) {
        if (ms % 1000 != 0) {
            aw_settings_problem(cx, v, "%s is not a whole number of seconds",
                                aw_settings_quoted(q, v, value));
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

static bool check_readable_file(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                                const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        aw_settings_problem(cx, v, "cannot open %s: %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    close(fd);
    if (!ok)
        aw_settings_problem(cx, v, "%s is not a regular file", path);
    return ok;
}

static void *field(struct aw_settings *s, const struct aw_settings_var *v)
{
    return (char *)s + v->off;
}

void aw_settings_parse_value(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                             const char *value)
{
    char q[80];
    uint64_t n = 0;
    bool flag = false;
    switch (v->kind) {
    case AW_SETTINGS_K_STRING:
        if (v->off != AW_SETTINGS_NO_FIELD)
            *(char **)field(cx->s, v) = aw_strdup(value);
        if ((v->flags & AW_SETTINGS_F_FILE) && !check_readable_file(cx, v, value))
            break;
        if (v->apply)
            v->apply(cx, v, value);
        break;
    case AW_SETTINGS_K_INT: {
        const char *end = NULL;
        if (!parse_u64_prefix(value, &n, &end)) {
            aw_settings_problem(cx, v, "%s is %s", aw_settings_quoted(q, v, value),
                                is_digit(*value) ? "too large" : "not a whole number");
            break;
        }
        if (*end != '\0') {
            aw_settings_problem(cx, v, "%s is not a whole number", aw_settings_quoted(q, v, value));
            break;
        }
        if (n < v->min || n > v->max) {
            aw_settings_problem(cx, v, "%s is out of range %llu..%llu",
                                aw_settings_quoted(q, v, value), (unsigned long long)v->min,
                                (unsigned long long)v->max);
            break;
        }
        *(uint64_t *)field(cx->s, v) = n;
        break;
    }
    case AW_SETTINGS_K_DURATION:
        if (!parse_duration(cx, v, value, &n))
            break;
        if (n < v->min || n > v->max) {
            aw_settings_problem(cx, v, "%s is out of range %llu..%llu %s",
                                aw_settings_quoted(q, v, value), (unsigned long long)v->min,
                                (unsigned long long)v->max, aw_settings_unit_word(v->unit));
            break;
        }
        *(uint64_t *)field(cx->s, v) = n;
        break;
    case AW_SETTINGS_K_BOOL:
        if (!parse_bool(value, &flag)) {
            aw_settings_problem(cx, v, "%s is not a boolean (true/false, 1/0, yes/no, on/off)",
                                aw_settings_quoted(q, v, value));
            break;
        }
        *(bool *)field(cx->s, v) = flag;
        break;
    case AW_SETTINGS_K_ENUM:
        if (enum_index(v->choices, value) < 0) {
            aw_settings_problem(cx, v, "%s is not one of %s", aw_settings_quoted(q, v, value),
                                v->choices);
            break;
        }
        if (v->apply)
            v->apply(cx, v, value);
        break;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Kafka.
 * ------------------------------------------------------------------------------------------- */

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

bool aw_settings_apply_topic(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                             const char *value)
{
    char q[80];
    if (!topic_is_valid(value, strlen(value))) {
        aw_settings_problem(cx, v, "%s is not a valid topic name (1-249 of A-Z a-z 0-9 . _ -)",
                            aw_settings_quoted(q, v, value));
        return false;
    }
    return true;
}

bool aw_settings_apply_topics(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                              const char *value)
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
            aw_settings_problem(cx, v, "empty topic name in the list");
            ok = false;
            free(name);
        } else if (!topic_is_valid(b, len)) {
            aw_settings_problem(cx, v, "%s is not a valid topic name (1-249 of A-Z a-z 0-9 . _ -)",
                                aw_settings_quoted(q, v, name));
            ok = false;
            free(name);
        } else {
            bool dup = false;
            for (size_t i = 0; i < k->n_topics; i++)
                dup = dup || strcmp(k->topics[i], name) == 0;
            if (dup) {
                aw_settings_problem(cx, v, "topic %s is listed twice",
                                    aw_settings_quoted(q, v, name));
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

/* librdkafka's bootstrap.servers, restricted to the common host[:port] grammar (its default
 * port is 9092) so a typo is reported here rather than retried forever by the client. */
bool aw_settings_apply_brokers(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                               const char *value)
{
    char q[80];
    for (const char *p = value; *p; p++) {
        if (is_blank(*p)) {
            aw_settings_problem(cx, v, "must not contain blanks (use host:port,host:port)");
            return false;
        }
    }
    if (strstr(value, "://")) {
        aw_settings_problem(cx, v,
                            "no protocol prefix: list host:port and set "
                            "security.protocol in AW_KAFKA_CONFIG_FILE");
        return false;
    }
    for (const char *p = value;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0) {
            aw_settings_problem(cx, v, "empty broker in the list");
            return false;
        }
        char host[AW_HOSTPORT_HOST_MAX];
        uint16_t port = 0;
        const char *why = aw_hostport_parse(p, len, 9092, false, host, &port);
        if (why) {
            char *entry = aw_strndup(p, len);
            aw_settings_problem(cx, v, "%s: %s (expected host[:port], IPv6 as [addr]:port)",
                                aw_settings_quoted(q, v, entry), why);
            free(entry);
            return false;
        }
        if (!comma)
            return true;
        p = comma + 1;
    }
}

bool aw_settings_apply_group(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                             const char *value)
{
    char q[80];
    size_t len = strlen(value);
    bool ok = len >= 1 && len <= 255;
    for (size_t i = 0; ok && i < len; i++)
        ok = value[i] > 0x20 && value[i] < 0x7f;
    if (!ok)
        aw_settings_problem(cx, v, "%s must be 1-255 printable characters without blanks",
                            aw_settings_quoted(q, v, value));
    return ok;
}

/* ---------------------------------------------------------------------------------------------
 * Process, HTTP, log.
 * ------------------------------------------------------------------------------------------- */

bool aw_settings_apply_instance_id(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                                   const char *value)
{
    char q[80];
    size_t len = strlen(value);
    bool ok = len >= 1 && len <= 128;
    for (size_t i = 0; ok && i < len; i++)
        ok = is_topic_char(value[i]);
    if (!ok)
        aw_settings_problem(cx, v, "%s must be 1-128 of A-Z a-z 0-9 . _ -",
                            aw_settings_quoted(q, v, value));
    return ok;
}

bool aw_settings_apply_http_addr(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                                 const char *value)
{
    char q[80];
    char host[AW_HOSTPORT_HOST_MAX];
    uint16_t port = 0;
    const char *why = aw_hostport_parse(value, strlen(value), 0, true, host, &port);
    if (why) {
        aw_settings_problem(cx, v, "%s: %s (expected host:port or [ipv6]:port)",
                            aw_settings_quoted(q, v, value), why);
        return false;
    }
    struct aw_settings_http *h = &cx->s->http;
    free(h->host);
    h->host = aw_strdup(host);
    h->port = port;
    return true;
}

bool aw_settings_apply_log_level(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                                 const char *value)
{
    enum aw_log_level level;
    if (!aw_log_parse_level(value, &level)) {
        aw_settings_problem(cx, v, "unknown level"); /* unreachable: the enum check came first */
        return false;
    }
    cx->s->log.level = level;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Redis, Klaviyo.
 * ------------------------------------------------------------------------------------------- */

/* Checked with the store's own parser; the reason it gives never quotes the URL or password. */
bool aw_settings_apply_redis_url(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                                 const char *value)
{
    struct aw_settings_redis *r = &cx->s->redis;
    struct aw_redis_url u;
    char why[256];
    bool ok = aw_redis_url_parse(value, &u, why, sizeof why) == AW_OK;
    if (ok) {
        char masked[AW_SETTINGS_STRING_MAX + 64];
        aw_redis_url_format_masked(&u, masked, sizeof masked);
        free(r->url_masked);
        r->url_masked = aw_strdup(masked);
        free(r->url);
        r->url = aw_strdup(value);
    } else {
        aw_settings_problem(cx, v, "%s", why);
    }
    aw_redis_url_wipe(&u);
    return ok;
}

static bool has_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

bool aw_settings_apply_klaviyo_url(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                                   const char *value)
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
        aw_settings_problem(cx, v, "%s: scheme must be https:// (or http:// for a simulator)",
                            aw_settings_quoted(q, v, value));
        return false;
    }
    if (strpbrk(rest, "?#")) {
        aw_settings_problem(cx, v, "%s: query or fragment not allowed",
                            aw_settings_quoted(q, v, value));
        return false;
    }
    const char *slash = strchr(rest, '/');
    const char *ae = slash ? slash : rest + strlen(rest);
    if (memchr(rest, '@', (size_t)(ae - rest))) {
        aw_settings_problem(cx, v, "credentials in the URL are not allowed");
        return false;
    }
    char host[AW_HOSTPORT_HOST_MAX];
    uint16_t port = 0;
    const char *why =
        aw_hostport_parse(rest, (size_t)(ae - rest), k->is_tls ? 443 : 80, false, host, &port);
    if (why) {
        aw_settings_problem(cx, v, "%s: %s", aw_settings_quoted(q, v, value), why);
        return false;
    }
    for (const char *p = ae; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            aw_settings_problem(cx, v, "%s: invalid character in the path",
                                aw_settings_quoted(q, v, value));
            return false;
        }
    }
    /* Normalise: lower-case scheme, no trailing '/', so callers append "/api/...". */
    size_t len = strlen(rest);
    while (len > 0 && rest[len - 1] == '/')
        len--;
    char buf[AW_SETTINGS_STRING_MAX + 16];
    snprintf(buf, sizeof buf, "%s://%.*s", k->is_tls ? "https" : "http", (int)len, rest);
    free(k->base_url);
    k->base_url = aw_strdup(buf);
    return true;
}

bool aw_settings_apply_revision(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                                const char *value)
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
        aw_settings_problem(cx, v, "%s is not a revision (YYYY-MM-DD[.suffix])",
                            aw_settings_quoted(q, v, value));
    return ok;
}
