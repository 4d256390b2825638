/* admin.h -- the operator's commands (`aw-worker <command>`): status, flush, pause, resume,
 * preview, dlq. Each has --help, prints data as logfmt lines or, with --json, JSON, and exits
 * AW_ADMIN_EXIT_OK (0), AW_ADMIN_EXIT_FAIL (1: Redis, Kafka or the request failed),
 * AW_ADMIN_EXIT_USAGE (64: bad command line) or AW_ADMIN_EXIT_CONFIG (78: bad AW_* settings).
 * They read the same AW_* variables as a replica (only those they need must be set). Output
 * never holds API keys; only `preview` and `dlq show` print personal data, to stdout, because
 * the operator asked for it; nothing of it is logged. Main thread, before any other thread. */
#ifndef AW_WORKER_OPS_ADMIN_H
#define AW_WORKER_OPS_ADMIN_H

#include <stdbool.h>
#include <stdio.h>

#define AW_ADMIN_EXIT_OK 0
#define AW_ADMIN_EXIT_FAIL 1
#define AW_ADMIN_EXIT_USAGE 64  /* sysexits.h EX_USAGE */
#define AW_ADMIN_EXIT_CONFIG 78 /* sysexits.h EX_CONFIG, as AW_SETTINGS_EXIT_CONFIG */

/* True when name is an admin command. */
bool aw_admin_is_command(const char *name);

/* Runs the command argv[0] (argv[0..argc) are the command and its arguments). Returns the
 * process exit status. */
int aw_admin_main(int argc, char **argv);

/* One line per command (for `aw-worker --help`). */
void aw_admin_usage(FILE *out);

#endif
