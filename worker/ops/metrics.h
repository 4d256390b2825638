/* metrics.h -- the process-wide metrics registry, exported as Prometheus text by http.c.
 *
 * Every metric is declared once, in the tables of metrics.c (name, help, type): the plain
 * counters and gauges of enum aw_metric, and the labelled families of enum aw_metric_family
 * (counters, gauges and histograms with one or two fixed label names, or none). Counter names
 * end in _total; values are in base units (counts, seconds, bytes). The exposition holds each
 * family exactly once, HELP and TYPE first; it also carries aw_build_info{version,revision} and
 * the standard process_* families (read from /proc/self at scrape time).
 * Every function is thread-safe (atomics; the labelled series table takes a mutex): the
 * consumer thread, the flusher thread and libmicrohttpd's thread all use it. */
#ifndef AW_WORKER_OPS_METRICS_H
#define AW_WORKER_OPS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

enum aw_metric {
    AW_M_RECORDS_CONSUMED = 0,   /* counter: Kafka records polled */
    AW_M_RECORDS_DONE,           /* counter: records whose offset was stored */
    AW_M_RECORDS_REWOUND,        /* counter: records re-read after a transient failure */
    AW_M_AUDIENCE_UPDATES,       /* counter: audience subscription messages applied */
    AW_M_STORE_ERRORS,           /* counter: Redis failures (connection, timeout, script) */
    AW_M_KLAVIYO_REQUESTS,       /* counter: HTTP requests sent to Klaviyo */
    AW_M_KLAVIYO_RATE_LIMITED,   /* counter: 429 answers */
    AW_M_KLAVIYO_ERRORS,         /* counter: transport errors and 5xx */
    AW_M_PROFILES_UPLOADED,      /* counter: profiles imported/added */
    AW_M_PROFILES_REMOVED,       /* counter: profiles removed from lists */
    AW_M_FLUSHES,                /* counter: audience flushes completed */
    AW_M_PARTITIONS_ASSIGNED,    /* gauge */
    AW_M_LEADER,                 /* gauge: 1 while this replica holds the lease */
    AW_M_STORE_UP,               /* gauge: 1 while the last Redis operation succeeded */
    AW_M_ACCOUNTS_PAUSED,        /* gauge: accounts paused after 401/403 */
    AW_M_DUE_AUDIENCES,          /* gauge: accounts with a due stream at the leader's last scan */
    AW_M_FLUSH_JOBS,             /* gauge: stream flushes the leader is working on */
    AW_M_KLAVIYO_IN_FLIGHT,      /* gauge: requests to Klaviyo on the wire (the leader's lanes) */
    AW_M_STORE_FULL,             /* gauge: 1 while Redis refuses ingest's writes (maxmemory) */
    AW_M_KLAVIYO_JOB_FAILED,     /* counter: records Klaviyo's bulk import jobs failed */
    AW_M_PENDING_CHANGES,        /* gauge (leader, every 15 s): changes waiting in Redis */
    AW_M_INFLIGHT_CHANGES,       /* gauge (leader, every 15 s): changes of batches in flight */
    AW_M_OLDEST_PENDING_AGE_MS,  /* gauge (leader, every 15 s): age of the oldest pending change,
                                    in ms, exposed in seconds */
    AW_M_FLUSH_BATCH_BYTES,      /* gauge: bytes of the batches the leader holds in memory */
    AW_M_KLAVIYO_RETRY_AFTER_MS, /* counter, exposed in seconds: Retry-After waits of 429s */
    AW_M__COUNT
};

/* Labelled families. Label values are short fixed words chosen by the code (stages, reasons,
 * actions, endpoint names, status classes, topic names, partition numbers): never personal data,
 * ids or keys. Each family keeps a bounded number of series (its cap in metrics.c); label sets
 * beyond the cap fold into the family's one series whose labels are all "other". */
enum aw_metric_family {
    /* counter aw_dead_letters_total{stage,reason}: dead-letter records produced, for every
     * stage: "decode" (bad record), "map" (bad profile), "flush" (refused by Klaviyo) */
    AW_MF_DEAD_LETTERS = 0,
    /* counter aw_store_refused_total{stage,reason}: store operations Redis refused for their
     * data */
    AW_MF_STORE_REFUSED,
    /* counter aw_changes_applied_total{action}: changes written to the pending store, by action
     * (aw_change_action_str: add, delete, attribute_update) */
    AW_MF_CHANGES_APPLIED,
    /* counter aw_changes_stale_total{action}: changes ignored as older than the stored version */
    AW_MF_CHANGES_STALE,
    /* gauge aw_consumer_lag{topic,partition}: messages between the partition's high watermark
     * and the group's committed offset, per assigned partition, from librdkafka's statistics
     * (set as a whole by aw_metrics_family_replace). Bounded by the subscribed topics'
     * partitions. */
    AW_MF_CONSUMER_LAG,
    /* counter aw_klaviyo_rate_limit_wait_seconds_total{endpoint}: time requests were held
     * back by the client-side limiter (own windows, the server's RateLimit headers, an
     * account's Retry-After block). endpoint = the API table's operation name. */
    AW_MF_KLAVIYO_RATE_LIMIT_WAIT,
    /* counter aw_leader_transitions_total{to}: lease transitions, to "leader" or "follower" */
    AW_MF_LEADER_TRANSITIONS,
    /* counter aw_flush_step_failures_total{step}: flush steps that failed and were scheduled
     * again with backoff (step: take, ack, import_job_poll, ...: fixed words of flush/) */
    AW_MF_FLUSH_STEP_FAILURES,
    /* histogram aw_klaviyo_request_duration_seconds{endpoint,class}: Klaviyo requests from
     * send to answer; class: 2xx, 4xx, 429, 5xx, transport (no HTTP answer), other */
    AW_MF_KLAVIYO_REQUEST_DURATION,
    /* histogram aw_flush_duration_seconds: one batch from take to ack */
    AW_MF_FLUSH_DURATION,
    /* counter aw_klaviyo_jobs_total{result}: Klaviyo bulk import jobs polled to their end;
     * result: complete (every record imported), failed_records (some records failed: their
     * import errors are read and dead-lettered), cancelled, not_found (both sent again) */
    AW_MF_KLAVIYO_JOBS,
    AW_MF__COUNT
};

/* Adds n to a counter, sets a gauge, reads either. */
void aw_metrics_add(enum aw_metric m, uint64_t n);
void aw_metrics_set(enum aw_metric m, int64_t value);
int64_t aw_metrics_get(enum aw_metric m);

/* The label values of one series: a for the family's first label, b for its second (NULL or
 * ignored when the family has fewer). Values are reduced to [a-z0-9_.-] ([A-Za-z0-9_.-] for
 * topic names), at most 63 bytes, so the exposition never needs escaping and no free text
 * reaches a label. */

/* Counts one event of counter family f with labels a, b (e.g. stage "decode", reason
 * "not_json"). */
void aw_metrics_count(enum aw_metric_family f, const char *a, const char *b);

/* Adds v (>= 0, finite; others ignored) to the series (a, b) of counter family f. */
void aw_metrics_family_add(enum aw_metric_family f, const char *a, const char *b, double v);

/* Records one observation v (seconds; negative or non-finite ones ignored) in histogram
 * family f. */
void aw_metrics_observe(enum aw_metric_family f, const char *a, const char *b, double v);

/* One sample of a gauge family, for aw_metrics_family_replace. */
struct aw_metric_sample {
    const char *a, *b; /* label values */
    double value;
};

/* Replaces every series of gauge family f by samples[0..n) at once (a scrape sees the old set
 * or the new one). Samples beyond the family's cap are summed into its "other" series. */
void aw_metrics_family_replace(enum aw_metric_family f, const struct aw_metric_sample *samples,
                               size_t n);

/* Events counted (aw_metrics_count: sum of every series) or observed (histograms) in family f
 * (e.g. all dead letters, for /status). */
int64_t aw_metrics_family_total(enum aw_metric_family f);

/* Appends the Prometheus text exposition (format 0.0.4) of every metric and family to out:
 * the tables, aw_build_info, then process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds and
 * process_start_time_seconds (from /proc; a figure that cannot be read is left without a
 * sample). */
void aw_metrics_render(struct aw_buf *out);

/* Resets everything (tests). Not while other threads count. */
void aw_metrics_reset(void);

#endif
