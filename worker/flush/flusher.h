/* flusher.h -- the flusher thread: the leader lease (leader.c, driven through the store), then
 * for each due stream (an audience's membership, an account's profiles) its in-flight batch
 * turned into Klaviyo requests (job.c) within the account's rate limits (ratelimit.c), acked,
 * retried or dead-lettered (docs/design.md §5). Owns its own store connection, dead-letter
 * producer, and a curl handle per request lane (AW_KLAVIYO_MAX_IN_FLIGHT; docs/style.md §1). */
#ifndef AW_WORKER_FLUSH_FLUSHER_H
#define AW_WORKER_FLUSH_FLUSHER_H

#include <stdatomic.h>
#include <stddef.h>

struct aw_settings;
struct aw_config_file;
struct aw_flusher;

/* Starts the flusher thread. s and accounts (may be NULL) are borrowed and must outlive the
 * flusher; stop is the process stop flag (read only). NULL on failure with the reason in errbuf.
 * Main thread. */
struct aw_flusher *aw_flusher_start(const struct aw_settings *s,
                                    const struct aw_config_file *accounts, const atomic_int *stop,
                                    char *errbuf, size_t errlen);

/* Waits for the thread to end (it ends once *stop is set: the current request finishes within
 * its timeout, the lease is released), then frees. NULL is a no-op. Main thread. */
void aw_flusher_join(struct aw_flusher *f);

#endif
