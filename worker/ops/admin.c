/* admin.c -- the admin commands' dispatch, command line and shared helpers (see admin.h), and
 * the small ones: flush, pause, resume. status: admin_status.c; preview: admin_preview.c; dlq:
 * admin_dlq.c. */
#include "worker/ops/admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "worker/ops/admin_internal.h"
#include "worker/settings.h"
#include "worker/store/account_ops.h"
#include "worker/store/flush_ops.h"
#include "worker/store/status.h"
#include "worker/store/store.h"

/* ---- Shared helpers -------------------------------------------------------------------------- */

int aw_admin_settings(struct aw_settings *s)
{
    struct aw_settings_problems problems = {0};
    if (aw_settings_load(s, aw_settings_getenv_process, NULL, AW_SETTINGS_FOR_ADMIN, &problems) ==
        AW_OK) {
        /* stdout is the command's output; stderr keeps warnings (debug on request) */
        aw_log_set_level(s->log.level == AW_LOG_LEVEL_DEBUG ? AW_LOG_LEVEL_DEBUG
                                                            : AW_LOG_LEVEL_WARN);
        return AW_ADMIN_EXIT_OK;
    }
    for (size_t i = 0; i < problems.n; i++)
        fprintf(stderr, "aw-worker: %s\n", problems.items[i]);
    aw_settings_problems_free(&problems);
    return AW_ADMIN_EXIT_CONFIG;
}

struct aw_store *aw_admin_store(const struct aw_settings *s)
{
    char err[512];
    struct aw_store_config sc;
    aw_store_config_from_settings(s, &sc);
    struct aw_store *st = aw_store_new(&sc, err, sizeof err);
    if (!st)
        fprintf(stderr, "aw-worker: %s\n", err);
    return st;
}

int aw_admin_store_failed(struct aw_store *st, const char *what)
{
    fprintf(stderr, "aw-worker: %s: redis: %s\n", what, aw_store_errstr(st));
    return AW_ADMIN_EXIT_FAIL;
}

int aw_admin_print_json(json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        fprintf(stderr, "aw-worker: cannot print JSON (a value is not UTF-8?)\n");
        return AW_ADMIN_EXIT_FAIL;
    }
    int rc = puts(text) >= 0 && fflush(stdout) == 0 ? AW_ADMIN_EXIT_OK : AW_ADMIN_EXIT_FAIL;
    free(text);
    return rc;
}

json_t *aw_admin_json_opt_int(int64_t v)
{
    return v < 0 ? json_null() : json_integer((json_int_t)v);
}

/* ---- flush, pause, resume -------------------------------------------------------------------- */

/* Runs fn on the store of the environment's settings. */
static int with_store(const struct aw_admin_opts *o,
                      int (*fn)(struct aw_store *st, const struct aw_admin_opts *o))
{
    struct aw_settings s;
    int rc = aw_admin_settings(&s);
    if (rc != AW_ADMIN_EXIT_OK)
        return rc;
    struct aw_store *st = aw_admin_store(&s);
    rc = st ? fn(st, o) : AW_ADMIN_EXIT_FAIL;
    aw_store_free(st);
    aw_settings_free(&s);
    return rc;
}

static int flush_run(struct aw_store *st, const struct aw_admin_opts *o)
{
    const char *acct = o->pos[0], *aud = o->pos[1];
    bool due = false;
    int64_t pending = 0, inflight = 0;
    enum aw_err e =
        aw_store_flush_due_now(st, acct, aud, aw_clock_unix_ms(), &due, &pending, &inflight);
    if (e == AW_ERR_INVALID) {
        fprintf(stderr, "aw-worker: flush: the store knows no audience %s of account %s\n", aud,
                acct);
        return AW_ADMIN_EXIT_FAIL;
    }
    if (e != AW_OK)
        return aw_admin_store_failed(st, "flush");
    if (o->json)
        return aw_admin_print_json(json_pack("{s:s,s:s,s:b,s:I,s:I}", "account", acct, "audience",
                                             aud, "due", due, "pending", (json_int_t)pending,
                                             "inflight", (json_int_t)inflight));
    printf("flush account=%s audience=%s due=%s pending=%lld inflight=%lld\n", acct, aud,
           due ? "now" : "none", (long long)pending, (long long)inflight);
    if (!due)
        fprintf(stderr, "aw-worker: flush: nothing pending or in flight: nothing to flush\n");
    return fflush(stdout) == 0 ? AW_ADMIN_EXIT_OK : AW_ADMIN_EXIT_FAIL;
}

static int cmd_flush(const struct aw_admin_cmd *cmd, const struct aw_admin_opts *o)
{
    (void)cmd;
    return with_store(o, flush_run);
}

/* pause (pause true) or resume one account. */
static int pause_set(struct aw_store *st, const struct aw_admin_opts *o, bool pause)
{
    const char *acct = o->pos[0];
    bool changed = false;
    enum aw_err e = pause ? aw_store_account_operator_pause(st, acct, aw_clock_unix_ms(), &changed)
                          : aw_store_account_operator_resume(st, acct, &changed);
    if (e == AW_ERR_INVALID) {
        fprintf(stderr, "aw-worker: %s: not an account id: %s\n", pause ? "pause" : "resume", acct);
        return AW_ADMIN_EXIT_USAGE;
    }
    if (e != AW_OK)
        return aw_admin_store_failed(st, pause ? "pause" : "resume");
    char **accts = NULL;
    size_t n = 0;
    bool known = false;
    if (aw_store_accounts(st, &accts, &n) == AW_OK)
        for (size_t i = 0; i < n && !known; i++)
            known = strcmp(accts[i], acct) == 0;
    aw_store_strings_free(accts, n);
    if (!known && pause)
        fprintf(stderr, "aw-worker: pause: note: the store has seen no data of account %s yet\n",
                acct);
    if (o->json)
        return aw_admin_print_json(json_pack("{s:s,s:b,s:s,s:b}", "account", acct, "paused", pause,
                                             "reason", "operator", "changed", changed));
    printf("account account=%s paused=%s reason=operator changed=%s\n", acct,
           pause ? "true" : "false", changed ? "true" : "false");
    return fflush(stdout) == 0 ? AW_ADMIN_EXIT_OK : AW_ADMIN_EXIT_FAIL;
}

static int pause_run(struct aw_store *st, const struct aw_admin_opts *o)
{
    return pause_set(st, o, true);
}

static int resume_run(struct aw_store *st, const struct aw_admin_opts *o)
{
    return pause_set(st, o, false);
}

static int cmd_pause(const struct aw_admin_cmd *cmd, const struct aw_admin_opts *o)
{
    return with_store(o, strcmp(cmd->name, "pause") == 0 ? pause_run : resume_run);
}

/* ---- The table ------------------------------------------------------------------------------- */

static const struct aw_admin_cmd commands[] = {
    {.name = "status",
     .summary = "the lease, paused accounts and every stream's backlog, from Redis",
     .help =
         "usage: aw-worker status [--json] [--watch [SECONDS] [--count N]]\n"
         "\n"
         "Prints, from Redis (AW_REDIS_URL): the leader lease (held, ttl, fencing epoch), the\n"
         "paused accounts and why (reason=operator: `aw-worker pause`; reason=klaviyo: Klaviyo\n"
         "refused the API key), then per account each audience's and the profile stream's\n"
         "pending and in-flight changes, oldest pending change, when it is due and its last\n"
         "upload; one logfmt line each, or one JSON document with --json.\n"
         "\n"
         "  --json             one JSON document (with --watch: one per line)\n"
         "  --watch [SECONDS]  redraw every SECONDS (default 2) with each stream's drain rate\n"
         "                     (changes/s from successive pending + in-flight counts) and the\n"
         "                     time left at that rate; ends on SIGINT/SIGTERM (exit 0)\n"
         "  --count N          with --watch: stop after N frames\n"
         "\n"
         "Exit: 0 ok, 1 Redis failed, 64 usage, 78 bad AW_* settings.\n",
     .options = AW_ADMIN_O_JSON | AW_ADMIN_O_WATCH | AW_ADMIN_O_COUNT,
     .run = aw_admin_status},
    {.name = "flush",
     .summary = "make an audience due now (the leader takes it at its next scan)",
     .help =
         "usage: aw-worker flush ACCOUNT AUDIENCE [--json]\n"
         "\n"
         "Makes the audience's stream due now and drained until nothing is pending, as if it\n"
         "had reached AW_FLUSH_MAX_QUEUE (one atomic script, due_now.lua); the leader takes it\n"
         "at its next scan (AW_FLUSH_TICK_MS) unless the account is paused. Prints the\n"
         "pending and in-flight counts; due=none when there is nothing to flush.\n"
         "\n"
         "Exit: 0 ok (also when nothing is pending), 1 unknown audience or Redis failed,\n"
         "64 usage, 78 bad AW_* settings.\n",
     .options = AW_ADMIN_O_JSON,
     .min_pos = 2,
     .max_pos = 2,
     .run = cmd_flush},
    {.name = "pause",
     .summary = "stop flushing an account until `resume` (reason operator)",
     .help =
         "usage: aw-worker pause ACCOUNT [--json]\n"
         "\n"
         "Pauses the account's flushes (reason operator): at its next scan the leader starts no\n"
         "new batch of the account and gives back those it holds (they stay in flight in Redis\n"
         "and are resumed later); ingest goes on. Unlike Klaviyo's 401/403 pause, neither a new\n"
         "API key nor a retry ends it: only `aw-worker resume ACCOUNT`. Shown by `status` and\n"
         "counted in aw_accounts_paused.\n"
         "\n"
         "Exit: 0 ok (also when already paused), 1 Redis failed, 64 usage, 78 bad settings.\n",
     .options = AW_ADMIN_O_JSON,
     .min_pos = 1,
     .max_pos = 1,
     .run = cmd_pause},
    {.name = "resume",
     .summary = "end an operator's pause of an account",
     .help = "usage: aw-worker resume ACCOUNT [--json]\n"
             "\n"
             "Ends the operator's pause of the account; the leader flushes it again from its next\n"
             "scan (a pause because Klaviyo refused the key is not affected).\n"
             "\n"
             "Exit: 0 ok (also when not paused), 1 Redis failed, 64 usage, 78 bad settings.\n",
     .options = AW_ADMIN_O_JSON,
     .min_pos = 1,
     .max_pos = 1,
     .run = cmd_pause},
    {.name = "preview",
     .summary = "print the requests the audience's next flush would send (read-only)",
     .help =
         "usage: aw-worker preview ACCOUNT AUDIENCE [--json] [--limit N]\n"
         "\n"
         "Prints the Klaviyo requests (method, path, body) the audience's next flush would send,\n"
         "built by the flusher's own body builders from what it would take: the batch in flight\n"
         "(a leader resumes it first), else the first N pending changes (default and most 1000);\n"
         "then the same for the account's profile stream (attributes and consent), which a flush\n"
         "of the audience makes due. Nothing is sent and nothing changes in Redis (a no-writes\n"
         "script). Requests that depend on Klaviyo's answers are marked: a list looked up by name\n"
         "(and created only if missing), profile ids looked up for removals.\n"
         "The bodies hold personal data (emails, attributes): they go to stdout only, never to a\n"
         "log.\n"
         "\n"
         "Exit: 0 ok, 1 Redis failed, 64 usage, 78 bad AW_* settings.\n",
     .options = AW_ADMIN_O_JSON | AW_ADMIN_O_LIMIT,
     .min_pos = 2,
     .max_pos = 2,
     .run = aw_admin_preview},
    {.name = "dlq",
     .summary = "dead-letter topic: stats, show, replay",
     .help =
         "usage: aw-worker dlq stats [--json]\n"
         "       aw-worker dlq show [--reason R] [--limit N] [--json]\n"
         "       aw-worker dlq replay --reason R [--limit N] [--dry-run] [--json]\n"
         "\n"
         "Reads the dead-letter topic (AW_KAFKA_DLQ_TOPIC on AW_KAFKA_BROKERS, with\n"
         "AW_KAFKA_CONFIG_FILE's properties) from the beginning to the end it has when the "
         "command\n"
         "starts, with its own assignment (no consumer group, no committed offsets), within 60 s.\n"
         "  stats   counts by stage and reason\n"
         "  show    the records (partition, offset, stage, reason, source topic/partition/offset,\n"
         "          key, value: personal data, printed to stdout only), --limit N first (default\n"
         "          100), only reason R with --reason\n"
         "  replay  produces the original message of each record of reason R back to the input\n"
         "          topic it came from (aw.source.topic, else the first of AW_KAFKA_TOPICS) with "
         "its\n"
         "          key and its own headers: only records that hold the original message (stages\n"
         "          decode and store); envelopes of one profile or change (stages map and flush)\n"
         "          are counted as skipped. --dry-run: counts what would be produced, produces\n"
         "          nothing.\n"
         "\n"
         "Exit: 0 ok, 1 Kafka failed or timed out, 64 usage, 78 bad AW_* settings "
         "(AW_KAFKA_BROKERS\n"
         "is required).\n",
     .options = AW_ADMIN_O_JSON | AW_ADMIN_O_LIMIT | AW_ADMIN_O_REASON | AW_ADMIN_O_DRY_RUN,
     .min_pos = 1,
     .max_pos = 1,
     .run = aw_admin_dlq},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const struct aw_admin_cmd *find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

bool aw_admin_is_command(const char *name)
{
    return find(name) != NULL;
}

void aw_admin_usage(FILE *out)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "       aw-worker %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "       aw-worker COMMAND --help   each command's arguments\n");
}

/* ---- Command line ---------------------------------------------------------------------------- */

static int usage_error(const struct aw_admin_cmd *cmd, const char *what, const char *arg)
{
    fprintf(stderr, "aw-worker %s: %s%s%s\n\n%s", cmd->name, what, arg ? ": " : "", arg ? arg : "",
            cmd->help);
    return AW_ADMIN_EXIT_USAGE;
}

/* A whole number in [min, max] from text, or false. */
static bool parse_long(const char *text, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = text ? strtol(text, &end, 10) : 0;
    if (!text || end == text || *end || errno || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Seconds (a decimal number, 0.1 .. 86400) as ms, or false. */
static bool parse_seconds(const char *text, uint64_t *ms)
{
    char *end = NULL;
    errno = 0;
    double v = text ? strtod(text, &end) : 0;
    if (!text || end == text || *end || errno || !(v >= 0.1 && v <= 86400))
        return false;
    *ms = (uint64_t)(v * 1000.0 + 0.5);
    return true;
}

/* Parses argv[1..argc) for cmd into *o. -1 to go on, else the exit status (help: 0). */
static int parse(const struct aw_admin_cmd *cmd, int argc, char **argv, struct aw_admin_opts *o)
{
    memset(o, 0, sizeof *o);
    o->limit = -1;
    o->watch_ms = 2000;
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned need = 0;
        if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
            if (o->npos >= cmd->max_pos)
                return usage_error(cmd, "unexpected argument", a);
            o->pos[o->npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(cmd->help, stdout);
            return fflush(stdout) == 0 ? AW_ADMIN_EXIT_OK : AW_ADMIN_EXIT_FAIL;
        } else if (strcmp(a, "--json") == 0) {
            need = AW_ADMIN_O_JSON;
            o->json = true;
        } else if (strcmp(a, "--watch") == 0) {
            need = AW_ADMIN_O_WATCH;
            o->watch = true;
            if (next && next[0] != '-') { /* an optional SECONDS */
                if (!parse_seconds(next, &o->watch_ms))
                    return usage_error(cmd, "--watch: not a number of seconds (0.1..86400)", next);
                i++;
            }
        } else if (strcmp(a, "--count") == 0) {
            need = AW_ADMIN_O_COUNT;
            if (!parse_long(next, 1, 1000000, &o->count))
                return usage_error(cmd, "--count: want a whole number 1..1000000", next);
            i++;
        } else if (strcmp(a, "--limit") == 0) {
            need = AW_ADMIN_O_LIMIT;
            if (!parse_long(next, 1, 100000000, &o->limit))
                return usage_error(cmd, "--limit: want a whole number 1..100000000", next);
            i++;
        } else if (strcmp(a, "--reason") == 0) {
            need = AW_ADMIN_O_REASON;
            if (!next || !next[0])
                return usage_error(cmd, "--reason: want a reason", NULL);
            o->reason = next;
            i++;
        } else if (strcmp(a, "--dry-run") == 0) {
            need = AW_ADMIN_O_DRY_RUN;
            o->dry_run = true;
        } else {
            return usage_error(cmd, "unknown option", a);
        }
        if (need && !(cmd->options & need))
            return usage_error(cmd, "option not accepted here", a);
    }
    if (o->npos < cmd->min_pos)
        return usage_error(cmd, "missing arguments", NULL);
    if (o->count && !o->watch)
        return usage_error(cmd, "--count goes with --watch", NULL);
    return -1;
}

int aw_admin_main(int argc, char **argv)
{
    const struct aw_admin_cmd *cmd = find(argv[0]);
    if (!cmd) {
        fprintf(stderr, "aw-worker: unknown command: %s\n", argv[0]);
        return AW_ADMIN_EXIT_USAGE;
    }
    struct aw_admin_opts o;
    int rc = parse(cmd, argc, argv, &o);
    return rc >= 0 ? rc : cmd->run(cmd, &o);
}
