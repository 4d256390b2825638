/* admin_internal.h -- what the admin commands share (private to worker/ops/admin*.c): the
 * command line, settings, the store, JSON output. Main thread only. */
#ifndef AW_WORKER_OPS_ADMIN_INTERNAL_H
#define AW_WORKER_OPS_ADMIN_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/ops/admin.h"

struct aw_settings;
struct aw_store;

/* Options a command accepts (a mask). */
#define AW_ADMIN_O_JSON 1u
#define AW_ADMIN_O_WATCH 2u
#define AW_ADMIN_O_LIMIT 4u
#define AW_ADMIN_O_REASON 8u
#define AW_ADMIN_O_DRY_RUN 16u
#define AW_ADMIN_O_COUNT 32u

#define AW_ADMIN_POS_MAX 4

struct aw_admin_opts {
    bool json;
    bool watch;
    uint64_t watch_ms; /* --watch [SECONDS]: period (default 2 s) */
    long count;        /* --count N: frames of --watch (0 = until a signal) */
    long limit;        /* --limit N (-1 = unset) */
    const char *reason;
    bool dry_run;
    const char *pos[AW_ADMIN_POS_MAX]; /* positional arguments (borrowed from argv) */
    size_t npos;
};

/* One command: argv[0] is its name. */
struct aw_admin_cmd {
    const char *name;
    const char *summary; /* one line, for aw-worker --help */
    const char *help;    /* the whole --help text */
    unsigned options;    /* AW_ADMIN_O_* */
    size_t min_pos, max_pos;
    int (*run)(const struct aw_admin_cmd *cmd, const struct aw_admin_opts *o);
};

/* Loads the AW_* settings for an admin command: AW_ADMIN_EXIT_OK, or each problem on stderr
 * and AW_ADMIN_EXIT_CONFIG. */
int aw_admin_settings(struct aw_settings *s);

/* Opens the store of s; NULL after writing why on stderr. */
struct aw_store *aw_admin_store(const struct aw_settings *s);

/* Writes doc (consumed) as one compact line on stdout. AW_ADMIN_EXIT_OK or _FAIL. */
int aw_admin_print_json(json_t *doc);

/* "aw-worker: <what>: <the store's last error>" on stderr; returns AW_ADMIN_EXIT_FAIL. */
int aw_admin_store_failed(struct aw_store *st, const char *what);

/* Integer, or null when v < 0 (unset). New reference. */
json_t *aw_admin_json_opt_int(int64_t v);

/* The commands of admin_status.c, admin_preview.c, admin_dlq.c. */
int aw_admin_status(const struct aw_admin_cmd *cmd, const struct aw_admin_opts *o);
int aw_admin_preview(const struct aw_admin_cmd *cmd, const struct aw_admin_opts *o);
int aw_admin_dlq(const struct aw_admin_cmd *cmd, const struct aw_admin_opts *o);

#endif
