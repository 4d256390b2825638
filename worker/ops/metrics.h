/* metrics.h -- the process-wide metrics registry, exported as Prometheus text by http.c.
 *
 * Every metric is declared once, in the tables of metrics.c (name, help, type): the plain
 * counters and gauges of enum aw_metric, and the labelled counter families of enum
 * aw_metric_family ({stage, reason} labels). Counter names end in _total; values are in base
 * units (counts). The exposition holds each family exactly once, HELP and TYPE first.
 * Every function is thread-safe (atomics; the labelled series table takes a mutex). */
#ifndef AW_WORKER_OPS_METRICS_H
#define AW_WORKER_OPS_METRICS_H

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
    AW_M_DUE_AUDIENCES,        /* gauge: accounts with a due stream at the leader's last scan */
    AW_M_FLUSH_JOBS,           /* gauge: stream flushes the leader is working on */
    AW_M_STORE_FULL,           /* gauge: 1 while Redis refuses ingest's writes (maxmemory) */
    AW_M_FLUSH_BATCH_BYTES,    /* gauge: bytes of the batches the leader holds in memory */
    AW_M__COUNT
};

/* Labelled counters: one series per (stage, reason). */
enum aw_metric_family {
    /* aw_dead_letters_total{stage,reason}: dead-letter records produced, for every stage:
     * stage "decode" (bad record), "map" (bad profile), "flush" (refused by Klaviyo) */
    AW_MF_DEAD_LETTERS = 0,
    /* aw_store_refused_total{stage,reason}: store operations Redis refused for their data */
    AW_MF_STORE_REFUSED,
    AW_MF__COUNT
};

/* Adds n to a counter, sets a gauge, reads either. */
void aw_metrics_add(enum aw_metric m, uint64_t n);
void aw_metrics_set(enum aw_metric m, int64_t value);
int64_t aw_metrics_get(enum aw_metric m);

/* Counts one event of family f with labels stage and reason (short fixed words such as
 * "decode", "not_json"; never personal data). Label values are reduced to [a-z0-9_.-]; at most
 * 256 distinct series are kept over all families, further ones are folded into the family's
 * series {stage="other",reason="other"}, so the sum of its series stays exact. */
void aw_metrics_count(enum aw_metric_family f, const char *stage, const char *reason);

/* Sum of every series of family f (e.g. all dead letters, for /status). */
int64_t aw_metrics_family_total(enum aw_metric_family f);

/* Appends the Prometheus text exposition (format 0.0.4) of every metric and family to out. */
void aw_metrics_render(struct aw_buf *out);

/* Resets everything (tests). Not while other threads count. */
void aw_metrics_reset(void);

#endif
