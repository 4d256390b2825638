/* metrics.h -- process-wide counters and gauges, exported as Prometheus text by http.c.
 * Every function is thread-safe (atomics; the labelled reason table takes a mutex). */
#ifndef AW_WORKER_METRICS_H
#define AW_WORKER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

enum aw_metric {
    AW_M_RECORDS_CONSUMED = 0, /* counter: Kafka records polled */
    AW_M_RECORDS_DONE,         /* counter: records whose offset was stored */
    AW_M_RECORDS_REWOUND,      /* counter: records re-read after a transient failure */
    AW_M_CHANGES_APPLIED,      /* counter: changes written to the pending store */
    AW_M_CHANGES_STALE,        /* counter: changes ignored as older than the stored version */
    AW_M_AUDIENCE_UPDATES,     /* counter: audience subscription messages applied */
    AW_M_DEAD_LETTERS,         /* counter: dead-letter records produced */
    AW_M_STORE_ERRORS,         /* counter: Redis failures (connection, timeout, script) */
    AW_M_KLAVIYO_REQUESTS,     /* counter: HTTP requests sent to Klaviyo */
    AW_M_KLAVIYO_RATE_LIMITED, /* counter: 429 answers */
    AW_M_KLAVIYO_ERRORS,       /* counter: transport errors and 5xx */
    AW_M_PROFILES_UPLOADED,    /* counter: profiles imported/added */
    AW_M_PROFILES_REMOVED,     /* counter: profiles removed from lists */
    AW_M_FLUSHES,              /* counter: audience flushes completed */
    AW_M_PARTITIONS_ASSIGNED,  /* gauge */
    AW_M_LEADER,               /* gauge: 1 while this replica holds the lease */
    AW_M_STORE_UP,             /* gauge: 1 while the last Redis operation succeeded */
    AW_M_ACCOUNTS_PAUSED,      /* gauge: accounts paused after 401/403 */
    AW_M_DUE_AUDIENCES,        /* gauge: audiences due at the leader's last scan (max 512) */
    AW_M_FLUSH_JOBS,           /* gauge: audience flushes the leader is working on */
    AW_M__COUNT
};

/* Adds n to a counter (or sets a gauge with aw_metrics_set). */
void aw_metrics_add(enum aw_metric m, uint64_t n);
void aw_metrics_set(enum aw_metric m, int64_t value);
int64_t aw_metrics_get(enum aw_metric m);

/* Counts one occurrence of a labelled reason, e.g. ("dead_letters_by_reason", "decode",
 * "not_json"). family/stage/reason are copied; at most 256 distinct series are kept (further
 * ones are folded into reason="other"). Never pass personal data. */
void aw_metrics_reason(const char *family, const char *stage, const char *reason);

/* Appends the Prometheus text exposition of every metric to out. */
void aw_metrics_render(struct aw_buf *out);

/* Resets everything (tests). Not while other threads count. */
void aw_metrics_reset(void);

#endif
