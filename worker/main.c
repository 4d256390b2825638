/* main.c -- entry point only: command line, settings, signals, library init, run, teardown.
 *
 *   aw-worker [run]          run a replica (consumer and leader candidate)
 *   aw-worker --check-config parse the AW_* environment and AW_KAFKA_CONFIG_FILE, print the
 *                            effective settings with secrets masked; exit 0, or 78 on problems
 *   aw-worker --config-table the variable table in markdown (README)
 *   aw-worker <command>      the admin commands: status, flush, pause, resume, preview, dlq
 *                            (worker/ops/admin.c)
 *   aw-worker --help | --version */
#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/phone/phone.h"
#include "worker/flush/flusher.h"
#include "worker/ingest/config_file.h"
#include "worker/ingest/consumer.h"
#include "worker/ingest/ingest.h"
#include "worker/ops/admin.h"
#include "worker/ops/health.h"
#include "worker/ops/http.h"
#include "worker/ops/metrics.h"
#include "worker/settings.h"
#include "worker/store/store.h"

#ifndef AW_VERSION
#define AW_VERSION "0.1.0"
#endif

#define EXIT_USAGE 64 /* sysexits.h EX_USAGE */

extern char **environ;

/* The process stop flag, the only one: set by SIGTERM/SIGINT (or by the main thread when it
 * leaves on an error), read by the consumer loop every turn and by the flusher thread. An
 * atomic_int, not a volatile sig_atomic_t, because another thread reads it; a signal handler may
 * use it because it is lock-free. */
static atomic_int stop_requested;
static_assert(ATOMIC_INT_LOCK_FREE == 2, "the stop flag must be lock-free to be set in a handler");

static void on_stop_signal(int sig)
{
    (void)sig;
    /* Only async-signal-safe work here: no logging. A second signal means "now". */
    if (atomic_exchange(&stop_requested, 1) != 0)
        _exit(1);
}

static int install_signal_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return -1;
    /* A peer closing a socket must be an error return, never a process kill. */
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    return sigaction(SIGPIPE, &ign, NULL);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: aw-worker [run]            run a replica (consumer and leader candidate)\n"
            "       aw-worker --check-config   validate the AW_* environment and print the\n"
            "                                  effective settings (secrets masked); exit 0 or 78\n"
            "       aw-worker --config-table   print the variable table (markdown)\n"
            "       aw-worker --help | --version\n"
            "admin commands (--help each; --json where output is data):\n");
    aw_admin_usage(out);
    fprintf(out, "\nConfiguration comes from environment variables:\n");
    for (size_t i = 0; i < aw_settings_var_count(); i++)
        fprintf(out, "  %s\n", aw_settings_var_name(i));
    fprintf(out, "See `aw-worker --config-table` for defaults, ranges and meanings.\n");
}

/* Names of AW_* variables in the environment that the table does not know (likely typos). */
static size_t report_unknown_vars(bool as_log)
{
    size_t n = 0;
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
        char name[128];
        if (len >= sizeof name)
            continue;
        memcpy(name, *e, len);
        name[len] = '\0';
        if (!aw_settings_is_unknown_var(name))
            continue;
        n++;
        if (as_log)
            AW_LOG_WARN("main", "unknown variable ignored", "name=%s", name);
        else
            fprintf(stderr, "aw-worker: warning: %s is not a known variable (ignored)\n", name);
    }
    return n;
}

/* Loads the settings; on problems writes each one (to stderr or the log) and returns false. */
static bool load_settings(struct aw_settings *s, bool as_log, enum aw_settings_purpose purpose)
{
    struct aw_settings_problems problems = {0};
    enum aw_err rc = aw_settings_load(s, aw_settings_getenv_process, NULL, purpose, &problems);
    if (rc == AW_OK)
        return true;
    for (size_t i = 0; i < problems.n; i++) {
        if (as_log) {
            char q[600];
            AW_LOG_ERROR("main", "configuration problem", "problem=%s",
                         aw_log_quote(q, sizeof q, problems.items[i]));
        } else {
            fprintf(stderr, "aw-worker: %s\n", problems.items[i]);
        }
    }
    if (as_log)
        AW_LOG_ERROR("main", "invalid configuration", "problems=%zu exit=%d", problems.n,
                     AW_SETTINGS_EXIT_CONFIG);
    else
        fprintf(stderr, "aw-worker: %zu configuration problem%s\n", problems.n,
                problems.n == 1 ? "" : "s");
    aw_settings_problems_free(&problems);
    return false;
}

static int cmd_check_config(void)
{
    struct aw_settings s;
    report_unknown_vars(false);
    if (!load_settings(&s, false, AW_SETTINGS_FOR_RUN))
        return AW_SETTINGS_EXIT_CONFIG;
    /* The per-account file is part of the configuration: check it the way run loads it. */
    size_t n_accounts = 0;
    if (s.process.accounts_file) {
        struct aw_config_file *accounts = NULL;
        char err[4096];
        if (aw_config_file_load(s.process.accounts_file, aw_settings_getenv_process, NULL,
                                &accounts, err, sizeof err) != AW_OK) {
            fprintf(stderr, "aw-worker: AW_CONFIG_FILE: %s\n", err);
            aw_settings_free(&s);
            return AW_SETTINGS_EXIT_CONFIG;
        }
        n_accounts = aw_config_file_count(accounts);
        aw_config_file_free(accounts);
    }
    enum aw_err rc = aw_settings_print(&s, stdout);
    if (s.process.accounts_file)
        printf("accounts.configured=%zu\n", n_accounts);
    aw_settings_free(&s);
    if (rc != AW_OK || fflush(stdout) != 0)
        return 1;
    return 0;
}

/* Runs one replica until stop_requested. Returns the process exit status. Teardown order:
 * stop polling -> join flusher -> (lease released by the flusher) -> consumer close (commits
 * stored offsets) -> free in reverse creation order. */
/* ---- Shutdown watchdog ------------------------------------------------------------------------
 * SIGTERM must end within AW_SHUTDOWN_TIMEOUT_MS (the pod's grace period exceeds it): the
 * watchdog thread ends the process when the drain overruns, rather than letting Kubernetes
 * SIGKILL it at a random point. Nothing is lost either way: offsets are stored only after
 * Redis acknowledged, and batches stay in Redis. */
static atomic_bool watchdog_done;

static void *watchdog_main(void *arg)
{
    uint64_t deadline = aw_clock_mono_ms() + *(const uint64_t *)arg;
    free(arg);
    while (!atomic_load(&watchdog_done)) {
        if (aw_clock_mono_ms() >= deadline) {
            AW_LOG_ERROR("main", "shutdown exceeded AW_SHUTDOWN_TIMEOUT_MS; exiting now", "%s", "");
            _exit(1);
        }
        aw_clock_sleep_ms(50, NULL);
    }
    return NULL;
}

static void start_watchdog(uint64_t budget_ms)
{
    static bool started;
    if (started || budget_ms == 0)
        return;
    uint64_t *arg = aw_malloc(sizeof *arg);
    *arg = budget_ms;
    pthread_t t;
    if (pthread_create(&t, NULL, watchdog_main, arg) != 0) {
        free(arg);
        return;
    }
    pthread_detach(t);
    started = true;
}

static int cmd_run(const struct aw_settings *s)
{
    char err[1024];
    int status = 1;
    struct aw_config_file *accounts = NULL;
    struct aw_http *http = NULL;
    struct aw_store *store = NULL;
    struct aw_consumer *consumer = NULL;
    struct aw_ingest *ingest = NULL;
    struct aw_flusher *flusher = NULL;
    const char **extra = NULL;

    if (s->process.accounts_file &&
        aw_config_file_load(s->process.accounts_file, aw_settings_getenv_process, NULL, &accounts,
                            err, sizeof err) != AW_OK) {
        char q[1100];
        AW_LOG_ERROR("main", "invalid account config file", "problems=%s",
                     aw_log_quote(q, sizeof q, err));
        status = AW_SETTINGS_EXIT_CONFIG;
        goto out;
    }
    struct aw_http_config hc = {
        .host = s->http.host,
        .port = s->http.port,
        .instance_id = s->process.instance_id,
        .version = AW_VERSION,
    };
    http = aw_http_new(&hc, err, sizeof err);
    if (!http) {
        AW_LOG_ERROR("main", "cannot start http server", "detail=\"%s\"", err);
        goto out;
    }
    struct aw_store_config sc;
    aw_store_config_from_settings(s, &sc);
    store = aw_store_new(&sc, err, sizeof err);
    if (!store) {
        AW_LOG_ERROR("main", "invalid redis settings", "detail=\"%s\"", err);
        status = AW_SETTINGS_EXIT_CONFIG;
        goto out;
    }
    size_t n_extra = s->kafka.extra.n_entries;
    extra = aw_calloc(2 * n_extra + 1, sizeof *extra);
    for (size_t i = 0; i < n_extra; i++) {
        extra[2 * i] = s->kafka.extra.entries[i].key;
        extra[2 * i + 1] = s->kafka.extra.entries[i].value;
    }
    struct aw_consumer_config cc = {
        .brokers = s->kafka.brokers,
        .group = s->kafka.group,
        .topics = (const char *const *)s->kafka.topics,
        .n_topics = s->kafka.n_topics,
        .dlq_topic = s->kafka.dlq_topic,
        .client_id = s->process.instance_id,
        .extra = extra,
        .n_extra = n_extra,
    };
    consumer = aw_consumer_new(&cc, err, sizeof err);
    if (!consumer) {
        AW_LOG_ERROR("main", "cannot start kafka consumer", "detail=\"%s\"", err);
        status = AW_SETTINGS_EXIT_CONFIG;
        goto out;
    }
    if (s->leader.enabled) {
        flusher = aw_flusher_start(s, accounts, &stop_requested, err, sizeof err);
        if (!flusher) {
            AW_LOG_ERROR("main", "cannot start flusher", "detail=\"%s\"", err);
            goto out;
        }
    }
    struct aw_ingest_config ic = {
        .consumer = consumer,
        .store = store,
        .accounts = accounts,
        .batch_max = (size_t)s->kafka.batch_max,
        .poll_timeout_ms = 100,
        .backoff_base_ms = 100,
        .backoff_max_ms = 5000,
        .dlq_timeout_ms = 10000,
    };
    ingest = aw_ingest_new(&ic);
    aw_http_set_ready(http, true);
    AW_LOG_INFO("main", "running", "topics=%zu group=%s leader_candidate=%d http_port=%u",
                s->kafka.n_topics, s->kafka.group, (int)s->leader.enabled,
                (unsigned)aw_http_port(http));
    aw_health_set(AW_HEALTH_SERVING, true);
    enum aw_err rc = aw_ingest_run(ingest, &stop_requested);
    aw_http_set_ready(http, false);
    aw_health_set(AW_HEALTH_SERVING, false);
    status = rc == AW_OK ? 0 : 1;
    AW_LOG_INFO("main", "stopping", "reason=%s budget_ms=%llu", rc == AW_OK ? "signal" : "fatal",
                (unsigned long long)s->process.shutdown_timeout_ms);

out:
    /* The drain, in order and within AW_SHUTDOWN_TIMEOUT_MS (a watchdog ends the process when
     * it is exceeded): polling has stopped; the flusher finishes or abandons its request and
     * releases the lease while the consumer commits and hands its partitions over; then the
     * flusher is joined and everything freed. */
    atomic_store(&stop_requested, 1); /* the flusher stops too when we leave on an error */
    start_watchdog(s->process.shutdown_timeout_ms);
    if (consumer)
        aw_consumer_close(consumer); /* commits stored offsets, leaves the group */
    aw_flusher_join(flusher);
    aw_ingest_free(ingest);
    aw_consumer_free(consumer);
    free(extra);
    aw_store_free(store);
    aw_http_free(http);
    aw_config_file_free(accounts);
    atomic_store(&watchdog_done, true);
    if (status == 0)
        AW_LOG_INFO("main", "stopped", "%s", "");
    return status;
}

static int run_replica(void)
{
    struct aw_settings s;
    if (!load_settings(&s, true, AW_SETTINGS_FOR_RUN))
        return AW_SETTINGS_EXIT_CONFIG;
    aw_log_set_level(s.log.level);
    report_unknown_vars(true);
    AW_LOG_INFO("main", "starting", "version=%s instance=%s", AW_VERSION, s.process.instance_id);

    int status = 1;
    bool curl_ready = false;
    if (install_signal_handlers() != 0) {
        AW_LOG_ERROR("main", "cannot install signal handlers", "errno=%d", errno);
        goto out;
    }
    /* Library-wide initialisation happens here, before any thread starts. */
    if (aw_phone_init() != AW_OK) {
        AW_LOG_ERROR("main", "cannot initialise libphonenumber", "%s", "");
        goto out;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        AW_LOG_ERROR("main", "cannot initialise libcurl", "%s", "");
        goto out;
    }
    curl_ready = true;
    status = cmd_run(&s);
out:
    if (curl_ready)
        curl_global_cleanup();
    aw_settings_free(&s);
    return status;
}

int main(int argc, char **argv)
{
    if (argc == 1 || (argc == 2 && strcmp(argv[1], "run") == 0))
        return run_replica();
    if (argc == 2 && strcmp(argv[1], "--check-config") == 0)
        return cmd_check_config();
    if (argc >= 2 && aw_admin_is_command(argv[1]))
        return aw_admin_main(argc - 1, argv + 1);
    if (argc == 2 && strcmp(argv[1], "--config-table") == 0)
        return aw_settings_print_table(stdout) == AW_OK && fflush(stdout) == 0 ? 0 : 1;
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("aw-worker %s\n", AW_VERSION);
        return 0;
    }
    fprintf(stderr, "aw-worker: unknown command line:");
    for (int i = 1; i < argc; i++)
        fprintf(stderr, " %s", argv[i]);
    fputc('\n', stderr);
    usage(stderr);
    return EXIT_USAGE;
}
