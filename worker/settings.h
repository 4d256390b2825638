/* settings.h -- process configuration: the AW_* environment variables (docs/contract.md).
 *
 * Every variable is declared once, in the table of settings.c (name, type, default, range,
 * required, secret, meaning); nothing else in the program calls getenv. The module is split in
 * settings.c (table, load), settings_parse.c (value parsers) and settings_print.c (printing);
 * see settings_table.h. The environment is read
 * through an injectable lookup function, parsed once into a struct aw_settings whose sections are
 * plain data handed to the modules, and every problem is collected so they can be reported
 * together (then the process exits AW_SETTINGS_EXIT_CONFIG).
 *
 * Values: surrounding blanks are trimmed; an empty value counts as unset (the default applies).
 * Durations are whole numbers in the unit their name ends with (_MS, _S), or a number with a unit
 * suffix ms|s|m|h ("90s", "16h") that converts exactly into that unit. Booleans: true/false,
 * 1/0, yes/no, on/off. Enums and booleans are case-insensitive.
 *
 * Threads: load/free/print on the main thread before other threads start; afterwards the struct
 * is read-only and may be read from any thread. */
#ifndef AW_WORKER_SETTINGS_H
#define AW_WORKER_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"

/* Exit status for a configuration error (sysexits.h EX_CONFIG). */
#define AW_SETTINGS_EXIT_CONFIG 78

/* What masked secrets print as. */
#define AW_SETTINGS_MASK "****"

/* Looks up one environment variable: returns the value (borrowed, must stay valid until
 * aw_settings_load returns) or NULL when unset. ctx is passed through. */
typedef const char *(*aw_settings_getenv_fn)(const char *name, void *ctx);

/* The process environment (the one getenv of the program); ctx is ignored. */
const char *aw_settings_getenv_process(const char *name, void *ctx);

enum aw_settings_purpose {
    AW_SETTINGS_FOR_RUN, /* running a replica or checking its configuration: required vars needed */
    AW_SETTINGS_FOR_ADMIN /* admin tools: required vars may be missing (their fields stay NULL) */
};

/* AW_KAFKA_*, AW_CONSUMER_*: consumer.c. */
struct aw_settings_kafka {
    char *brokers; /* AW_KAFKA_BROKERS as given: host[:port] entries (common/hostport.h) joined
                      by ','; NULL only FOR_ADMIN */
    char **topics; /* AW_KAFKA_TOPICS split on ',', n_topics >= 1, distinct, valid names */
    size_t n_topics;
    char *group;            /* AW_KAFKA_GROUP, consumer group id */
    char *dlq_topic;        /* AW_KAFKA_DLQ_TOPIC, never one of topics */
    char *config_file;      /* AW_KAFKA_CONFIG_FILE or NULL */
    struct aw_config extra; /* its key=value lines, to pass verbatim to librdkafka (values may be
                               secrets: never log them; aw_settings_print masks them) */
    uint64_t batch_max;     /* AW_CONSUMER_BATCH_MAX: messages per Redis round trip */
};

/* AW_REDIS_*: the store. The URL is checked here with aw_redis_url_parse (common/redis_url.h),
 * the one grammar of AW_REDIS_URL; the store parses url again with the same function, so a
 * loaded url always parses there. */
struct aw_settings_redis {
    char *url;        /* SECRET: AW_REDIS_URL as given (trimmed) or the default; never NULL after
                         a successful load; never log or print it (it may hold the password) */
    char *url_masked; /* the same URL from aw_redis_url_format_masked: canonical, the password
                         as AW_SETTINGS_MASK; safe to print and log */
    uint64_t connect_timeout_ms; /* AW_REDIS_CONNECT_TIMEOUT_MS */
    uint64_t timeout_ms;         /* AW_REDIS_TIMEOUT_MS: per command */
};

/* AW_KLAVIYO_*: klaviyo.c. */
struct aw_settings_klaviyo {
    char *base_url; /* AW_KLAVIYO_BASE_URL, scheme+host[:port][/prefix], no trailing '/' */
    bool is_tls;    /* https:// (TLS always verified) */
    char *revision; /* AW_KLAVIYO_REVISION, sent as the `revision` header */
    char *ca_file;  /* AW_KLAVIYO_CA_FILE (PEM bundle) or NULL for the system store */
    uint64_t connect_timeout_ms; /* AW_KLAVIYO_CONNECT_TIMEOUT_MS */
    uint64_t timeout_ms;         /* AW_KLAVIYO_TIMEOUT_MS: whole request, >= connect timeout */
    uint64_t retry_base_ms;      /* AW_KLAVIYO_RETRY_BASE_MS: first backoff step */
    uint64_t retry_max_ms;       /* AW_KLAVIYO_RETRY_MAX_MS: backoff ceiling, >= base */
    uint64_t job_poll_ms;        /* AW_KLAVIYO_JOB_POLL_MS: bulk job status polling interval */
    uint64_t consent_settle_ms;  /* AW_KLAVIYO_CONSENT_SETTLE_MS: consent jobs of an account
                                    from two batches are at least this far apart */
    uint64_t max_in_flight;      /* AW_KLAVIYO_MAX_IN_FLIGHT: the flusher's request lanes */
    bool dry_run;                /* AW_DRY_RUN: writes are recorded in dry_run_file, never sent */
    char *dry_run_file;          /* AW_DRY_RUN_FILE or NULL; set whenever dry_run is true */
};

/* AW_FLUSH_*: flush.c and the due index. */
struct aw_settings_flush {
    uint64_t max_queue;   /* AW_FLUSH_MAX_QUEUE: pending changes that make an audience due */
    uint64_t max_age_s;   /* AW_FLUSH_MAX_AGE_S: age (s) that makes an audience due */
    uint64_t tick_ms;     /* AW_FLUSH_TICK_MS: flusher loop period, <= lease TTL / 3 */
    uint64_t retention_s; /* AW_STATE_RETENTION_S: per-user state kept after its last flush */
};

/* AW_LEADER_*, AW_LEASE_*: leader.c. */
struct aw_settings_leader {
    bool enabled;          /* AW_LEADER_ENABLED: false = consumer-only replica */
    uint64_t lease_ttl_ms; /* AW_LEASE_TTL_MS */
};

/* AW_HTTP_ADDR: the metrics/health server (common/hostport.h grammar; http.c listens on
 * exactly what is accepted here: names are resolved, IPv6 literals bound as such). */
struct aw_settings_http {
    char *host;    /* host name, IPv4 literal or IPv6 literal (without brackets) */
    uint16_t port; /* 1..65535 */
};

/* AW_LOG_LEVEL. */
struct aw_settings_log {
    enum aw_log_level level;
};

/* Process-wide: main.c and the account configuration loader. */
struct aw_settings_process {
    char *instance_id;            /* AW_INSTANCE_ID (default: host name), in lease and metrics */
    char *accounts_file;          /* AW_CONFIG_FILE (per-account JSON) or NULL; parsed elsewhere */
    uint64_t shutdown_timeout_ms; /* AW_SHUTDOWN_TIMEOUT_MS: drain budget after SIGTERM */
};

/* The whole configuration. Owned by main; modules get a const pointer to their section. */
struct aw_settings {
    struct aw_settings_kafka kafka;
    struct aw_settings_redis redis;
    struct aw_settings_klaviyo klaviyo;
    struct aw_settings_flush flush;
    struct aw_settings_leader leader;
    struct aw_settings_http http;
    struct aw_settings_log log;
    struct aw_settings_process process;
};

/* The problems found by aw_settings_load, each "AW_NAME: what is wrong" (or "file:line: ..." for
 * AW_KAFKA_CONFIG_FILE); never containing a secret value. Owned by the caller. */
struct aw_settings_problems {
    char **items; /* owned array of owned strings */
    size_t n;
    size_t cap;
};

/* Reads every variable through get(name, ctx), applies defaults, checks types, ranges and the
 * relations between variables, and reads AW_KAFKA_CONFIG_FILE. On AW_OK *out is filled
 * (caller-owned: aw_settings_free) and problems is empty. On AW_ERR_CONFIG every problem is
 * appended to problems (caller-owned: aw_settings_problems_free) and *out is left zeroed, owning
 * nothing. problems must be zero-initialised or previously freed. Main thread. */
enum aw_err aw_settings_load(struct aw_settings *out, aw_settings_getenv_fn get, void *ctx,
                             enum aw_settings_purpose purpose,
                             struct aw_settings_problems *problems);

/* Releases everything s owns and zeroes it. NULL is a no-op. */
void aw_settings_free(struct aw_settings *s);

/* Releases the problem list and zeroes it. NULL is a no-op. */
void aw_settings_problems_free(struct aw_settings_problems *p);

/* Writes the effective settings, one `AW_NAME=value` line per variable in table order (unset
 * optional ones as empty), followed by the AW_KAFKA_CONFIG_FILE entries as `kafka.<key>=value`.
 * Secrets are masked: the Redis password (AW_REDIS_URL prints as url_masked), and Kafka values
 * whose key names a secret (password, secret, jaas, token, key material). AW_ERR_IO when writing
 * fails. Main thread. */
enum aw_err aw_settings_print(const struct aw_settings *s, FILE *out);

/* Writes the variable table as a markdown table (name, default, range, meaning), the form
 * pasted into README. AW_ERR_IO when writing fails. Any thread. */
enum aw_err aw_settings_print_table(FILE *out);

/* Number of variables in the table, and the name of the i-th (static string), for tools that
 * need the list (i < aw_settings_var_count()). Any thread. */
size_t aw_settings_var_count(void);
const char *aw_settings_var_name(size_t i);

/* True when name starts with "AW_" and is not in the table (likely a typo). Any thread. */
bool aw_settings_is_unknown_var(const char *name);

/* True when a librdkafka property key names a secret whose value must be masked. Any thread. */
bool aw_settings_kafka_key_is_secret(const char *key);

#endif
