/* consumer.h -- the librdkafka adapter: high-level consumer in a group (cooperative-sticky),
 * manual offset store (an offset is stored only after the caller says the record is done),
 * partition rewind for transient failures, and the dead-letter producer.
 * All functions: the consumer (main) thread only. */
#ifndef AW_WORKER_CONSUMER_H
#define AW_WORKER_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct aw_consumer;
struct aw_dlq;
struct aw_dlq_set;

struct aw_consumer_config {
    const char *brokers;       /* bootstrap list, required */
    const char *group;         /* group.id, required */
    const char *const *topics; /* topics to subscribe, n_topics >= 1 */
    size_t n_topics;
    const char *dlq_topic;    /* dead-letter topic, required */
    const char *client_id;    /* may be NULL */
    const char *const *extra; /* extra librdkafka properties as key,value pairs (2*n_extra) */
    size_t n_extra;
};

/* A polled record: a borrowed view valid until aw_consumer_release. */
struct aw_consumer_msg {
    const char *payload; /* may be NULL when len == 0 */
    size_t len;
    const char *key; /* may be NULL */
    size_t key_len;
    const char *topic;
    int32_t partition;
    int64_t offset;
    size_t index; /* position in the polled batch */
};

/* Creates the consumer and the DLQ producer and subscribes. Forces the delivery-critical
 * settings (enable.auto.offset.store=false, enable.auto.commit=true,
 * partition.assignment.strategy=cooperative-sticky unless the extra properties choose another
 * assignor, auto.offset.reset=earliest unless set). NULL on failure with the reason in errbuf
 * (never containing a secret). */
struct aw_consumer *aw_consumer_new(const struct aw_consumer_config *cfg, char *errbuf,
                                    size_t errlen);

/* Most payload bytes one poll gathers: the poll stops after the record that reaches it, so a
 * batch (and the Redis pipeline built from it) holds at most this plus one record, however
 * large the records. */
#define AW_CONSUMER_BATCH_BYTES (8u * 1024u * 1024u)

/* Polls up to max records and about AW_CONSUMER_BATCH_BYTES of payload, waiting at most
 * timeout_ms for the first (then taking what is already queued). Fills out[0..n) and returns
 * n. Records stay owned by the consumer until aw_consumer_release. Non-fatal consumer errors
 * are logged and counted; a fatal one makes aw_consumer_is_fatal true. */
size_t aw_consumer_poll(struct aw_consumer *c, struct aw_consumer_msg *out, size_t max,
                        int timeout_ms);

/* Releases every record of the last poll. */
void aw_consumer_release(struct aw_consumer *c);

/* Marks a record done: stores offset+1 for commit (auto commit sends it). */
enum aw_err aw_consumer_store(struct aw_consumer *c, const struct aw_consumer_msg *m);

/* Rewinds m's partition to m's offset so the record is delivered again (after a transient
 * failure). Pre-fetched records of that partition are discarded by librdkafka. */
enum aw_err aw_consumer_rewind(struct aw_consumer *c, const struct aw_consumer_msg *m);

/* Produces a dead-letter record for source record src into set: body (NULL = src's original
 * bytes), with src's key and headers plus aw.reason, aw.stage, aw.source.topic,
 * aw.source.partition, aw.source.offset. Delivery is confirmed by aw_consumer_dlq_wait on the
 * set; until then the source record must not be stored. AW_ERR_IO when the producer queue
 * refuses it. */
enum aw_err aw_consumer_dlq_produce(struct aw_consumer *c, struct aw_dlq_set *set,
                                    const struct aw_consumer_msg *src, const void *body, size_t len,
                                    const char *reason, const char *stage);

/* Waits (at most timeout_ms) until every record of set has its delivery report: AW_OK when
 * the broker acknowledged them all; AW_ERR_IO (a delivery failed) or AW_ERR_TIMEOUT otherwise:
 * the caller treats every source record of the set as not done (rewinds), and a redelivery
 * produces its dead-letter record again (at-least-once). Reports arriving after a timeout stay
 * with their set, never confirming another one. */
enum aw_err aw_consumer_dlq_wait(struct aw_consumer *c, struct aw_dlq_set *set, int timeout_ms);

/* True once the group assigned this member (even no partition): readiness. Any thread. */
bool aw_consumer_has_joined(const struct aw_consumer *c);

/* Number of partitions currently assigned. */
int aw_consumer_assigned_count(const struct aw_consumer *c);

/* Reads one librdkafka statistics JSON document (the consumer's stats_cb, every
 * statistics.interval.ms: 5000 unless AW_KAFKA_CONFIG_FILE says otherwise) and replaces the
 * gauge aw_consumer_lag{topic,partition} with topics.<t>.partitions.<p>.consumer_lag of every
 * partition this member is assigned ("desired"), skipping the internal partition -1 and
 * unknown (negative) lags. AW_ERR_INVALID (metric unchanged) when json is not such a document.
 * json is borrowed. Any thread (the stats callback runs on the consumer's). */
enum aw_err aw_consumer_stats_apply(const char *json, size_t len);

/* True after a fatal librdkafka error: the caller must stop and exit non-zero. */
bool aw_consumer_is_fatal(const struct aw_consumer *c);

/* Commits stored offsets synchronously, leaves the group and closes. Idempotent. */
void aw_consumer_close(struct aw_consumer *c);

/* Closes if needed and destroys both handles. NULL is a no-op. */
void aw_consumer_free(struct aw_consumer *c);

/* ---- Stand-alone dead-letter producer (the flusher thread's; aw_consumer uses one inside) ----
 * An idempotent producer (acks=all) of dead-letter records to one topic. One struct aw_dlq
 * belongs to one thread; different instances may live on different threads. */

/* Creates the producer. brokers/topic required; extra: librdkafka properties as key,value pairs
 * (2*n_extra; consumer-only keys are skipped), client_id may be NULL. Strings are copied.
 * NULL on failure with the reason in errbuf (never a property value). */
struct aw_dlq *aw_dlq_new(const char *brokers, const char *topic, const char *const *extra,
                          size_t n_extra, const char *client_id, char *errbuf, size_t errlen);

/* A set of dead-letter records confirmed together (a batch of source records, a flush job).
 * new: the caller owns it; free: the caller drops it (late reports of its records still find
 * it, then it goes). NULL-safe free. Owner thread of the producer. */
struct aw_dlq_set *aw_dlq_set_new(void);
void aw_dlq_set_free(struct aw_dlq_set *set);
/* Records of set without a delivery report yet. */
long aw_dlq_set_pending(const struct aw_dlq_set *set);

/* Produces one dead-letter record into set (may be NULL: unconfirmed): key (may be NULL),
 * body, and headers aw.reason, aw.stage, aw.source.topic, aw.source.partition,
 * aw.source.offset (src_topic "klaviyo" with -1/-1 for records that come from the flusher
 * rather than from a Kafka record). Everything is copied. AW_ERR_IO when the producer queue
 * refuses it. Confirm with aw_dlq_set_wait. */
enum aw_err aw_dlq_produce(struct aw_dlq *d, struct aw_dlq_set *set, const void *key,
                           size_t key_len, const void *body, size_t len, const char *reason,
                           const char *stage, const char *src_topic, int32_t src_partition,
                           int64_t src_offset);

/* Waits (at most timeout_ms) for every record of set: AW_OK when all were acknowledged,
 * AW_ERR_IO (a delivery failed) or AW_ERR_TIMEOUT otherwise (the caller produces them again
 * into a new set: at-least-once). */
enum aw_err aw_dlq_set_wait(struct aw_dlq *d, struct aw_dlq_set *set, int timeout_ms);

/* Flushes everything produced (at most timeout_ms), for shutdown. AW_ERR_TIMEOUT when some
 * record is still unreported. */
enum aw_err aw_dlq_flush(struct aw_dlq *d, int timeout_ms);

/* Records of this producer without a delivery report yet. */
long aw_dlq_pending(const struct aw_dlq *d);

/* True after a fatal producer error (idempotence broken): the owner should stop. */
bool aw_dlq_is_fatal(const struct aw_dlq *d);

/* Flushes (at most 5 s) and destroys. NULL is a no-op. */
void aw_dlq_free(struct aw_dlq *d);

#endif
