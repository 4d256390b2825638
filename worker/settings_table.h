/* settings_table.h -- internal to worker/settings*.c; other modules include settings.h only.
 *
 * The settings module is one module in three files, split along its seams:
 *   settings.c        the one table of AW_* variables, loading (defaults, trimming, relations
 *                     between variables, AW_KAFKA_CONFIG_FILE) and the problem list;
 *   settings_parse.c  the value parsers and validators that fill struct aw_settings;
 *   settings_print.c  --check-config (effective settings, secrets masked) and --config-table.
 * This header is the shape of a table row they share. Main thread only (see settings.h). */
#ifndef AW_WORKER_SETTINGS_TABLE_H
#define AW_WORKER_SETTINGS_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "worker/settings.h"

enum aw_settings_kind {
    AW_SETTINGS_K_STRING,
    AW_SETTINGS_K_INT,
    AW_SETTINGS_K_BOOL,
    AW_SETTINGS_K_ENUM,
    AW_SETTINGS_K_DURATION
};

/* The unit of a K_DURATION (values are whole numbers of it). */
enum aw_settings_unit { AW_SETTINGS_U_NONE, AW_SETTINGS_U_MS, AW_SETTINGS_U_S };

#define AW_SETTINGS_F_REQUIRED 1u     /* must be set (for AW_SETTINGS_FOR_RUN) */
#define AW_SETTINGS_F_SECRET 2u       /* value (or part of it) is secret: never echoed */
#define AW_SETTINGS_F_FILE 4u         /* names a readable regular file */
#define AW_SETTINGS_F_DEF_HOSTNAME 8u /* default is the host name */

#define AW_SETTINGS_NO_FIELD ((size_t)-1)
#define AW_SETTINGS_STRING_MAX 4096 /* any value, in bytes */
#define AW_SETTINGS_VARS_MAX 64     /* table rows (checked by a static assertion) */

struct aw_settings_var;

/* One load in progress: the struct being filled and the problems found so far. */
struct aw_settings_ctx {
    struct aw_settings *s;
    struct aw_settings_problems *p;
    bool bad[AW_SETTINGS_VARS_MAX]; /* row i had a problem: skip cross-checks that use it */
};

/* Structured parse of a value already stored (K_STRING) or validated (K_ENUM): fills the fields
 * it owns, reports problems through aw_settings_problem and returns false on any. */
typedef bool (*aw_settings_apply_fn)(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                                     const char *value);
/* Writes the effective value of a variable without a plain field (for aw_settings_print). */
typedef void (*aw_settings_show_fn)(const struct aw_settings *s, FILE *out);

/* One AW_* variable. */
struct aw_settings_var {
    const char *name;
    enum aw_settings_kind kind;
    const char *def;            /* default as text; NULL: unset by default */
    uint64_t min, max;          /* K_INT, K_DURATION: inclusive range in the variable's unit */
    const char *choices;        /* K_ENUM: "a|b|c" */
    unsigned flags;             /* AW_SETTINGS_F_* */
    enum aw_settings_unit unit; /* K_DURATION */
    size_t off; /* offsetof(struct aw_settings, field) or AW_SETTINGS_NO_FIELD (apply/show do) */
    aw_settings_apply_fn apply;
    aw_settings_show_fn show;
    const char *format; /* K_STRING: the accepted form, for the table */
    const char *meaning;
};

/* settings.c: the table, in the order --check-config and --config-table print it. */
extern const struct aw_settings_var aw_settings_vars[];
extern const size_t aw_settings_n_vars;

/* settings.c: appends "AW_NAME: <message>" to the problems and marks v bad. Never pass a
 * secret value: quote values with aw_settings_quoted. */
__attribute__((format(printf, 3, 4))) void aw_settings_problem(struct aw_settings_ctx *cx,
                                                               const struct aw_settings_var *v,
                                                               const char *fmt, ...);

/* settings.c: a printable, bounded rendering of value in quotes for problem messages, or
 * "(value hidden)" for a secret variable. Returns out. */
const char *aw_settings_quoted(char out[80], const struct aw_settings_var *v, const char *value);

/* settings_parse.c: parses value (trimmed, non-empty, no control characters) by v's kind and
 * stores it into cx->s, calling v->apply for structured values. Problems go to cx. */
void aw_settings_parse_value(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                             const char *value);

/* settings_parse.c: the structured values (apply functions of the table). */
bool aw_settings_apply_brokers(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                               const char *value);
bool aw_settings_apply_topics(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                              const char *value);
bool aw_settings_apply_topic(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                             const char *value);
bool aw_settings_apply_group(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                             const char *value);
bool aw_settings_apply_redis_url(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                                 const char *value);
bool aw_settings_apply_klaviyo_url(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                                   const char *value);
bool aw_settings_apply_revision(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                                const char *value);
bool aw_settings_apply_http_addr(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                                 const char *value);
bool aw_settings_apply_log_level(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                                 const char *value);
bool aw_settings_apply_instance_id(struct aw_settings_ctx *cx, const struct aw_settings_var *v,
                                   const char *value);

/* settings_print.c: the effective values of variables without a plain field. */
void aw_settings_show_topics(const struct aw_settings *s, FILE *out);
void aw_settings_show_redis_url(const struct aw_settings *s, FILE *out);
void aw_settings_show_http_addr(const struct aw_settings *s, FILE *out);
void aw_settings_show_log_level(const struct aw_settings *s, FILE *out);

/* The unit word of a duration ("ms", "s"), for messages and the table. */
static inline const char *aw_settings_unit_word(enum aw_settings_unit u)
{
    return u == AW_SETTINGS_U_S ? "s" : u == AW_SETTINGS_U_MS ? "ms" : "";
}

#endif
