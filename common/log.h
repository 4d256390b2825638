/* log.h -- one logfmt line per record on stderr, written with a single write().
 * Never pass API keys, emails, phone numbers or payloads to these macros. */
#ifndef AW_COMMON_LOG_H
#define AW_COMMON_LOG_H

#include <stdbool.h>

enum aw_log_level {
    AW_LOG_LEVEL_DEBUG = 0,
    AW_LOG_LEVEL_INFO,
    AW_LOG_LEVEL_WARN,
    AW_LOG_LEVEL_ERROR
};

/* Sets the minimum level written. Call before threads start. */
void aw_log_set_level(enum aw_log_level level);

/* Parses "debug|info|warn|error" (case-insensitive) into *out; false when unknown. */
bool aw_log_parse_level(const char *name, enum aw_log_level *out);

/* True when records of this level are written (cheap; use before expensive formatting). */
bool aw_log_enabled(enum aw_log_level level);

/* Writes one record: `ts=<iso8601> level=<l> mod=<mod> msg="<msg>" <fields>`. fmt produces the
 * logfmt fields after msg (may be NULL or ""). Any thread. */
void aw_log_write(enum aw_log_level level, const char *mod, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Quotes a value for logfmt into out (always NUL-terminated; truncated with "..." when long).
 * Returns out. */
const char *aw_log_quote(char *out, unsigned outlen, const char *value);

#define AW_LOG_(lvl, mod, msg, ...)                                                                \
    do {                                                                                           \
        if (aw_log_enabled(lvl))                                                                   \
            aw_log_write(lvl, mod, msg, __VA_ARGS__);                                              \
    } while (0)
/* AW_LOG_INFO("consumer", "assigned", "partitions=%d", n) */
#define AW_LOG_DEBUG(mod, msg, ...) AW_LOG_(AW_LOG_LEVEL_DEBUG, mod, msg, __VA_ARGS__)
#define AW_LOG_INFO(mod, msg, ...) AW_LOG_(AW_LOG_LEVEL_INFO, mod, msg, __VA_ARGS__)
#define AW_LOG_WARN(mod, msg, ...) AW_LOG_(AW_LOG_LEVEL_WARN, mod, msg, __VA_ARGS__)
#define AW_LOG_ERROR(mod, msg, ...) AW_LOG_(AW_LOG_LEVEL_ERROR, mod, msg, __VA_ARGS__)

#endif
