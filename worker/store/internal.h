/* internal.h -- what the store's modules share (private to worker/store/): the handle, key
 * names and the global due index write. */
#ifndef AW_WORKER_STORE_INTERNAL_H
#define AW_WORKER_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "worker/store/client.h"
#include "worker/store/names.h"
#include "worker/store/scripts.h"
#include "worker/store/store.h"

#define AW_STORE_EMAIL_MAX 512
#define AW_STORE_EVENT_ID_MAX 512

struct aw_store {
    struct aw_redis *r;
    int64_t max_queue;
    uint64_t max_age_ms;
    uint64_t retention_s;
    char max_queue_s[24], max_age_s[24], retention_s_s[24]; /* the same, as script arguments */
    char err[256];
};

/* "aw:{<acct>}:<name><id><tail>" (id, tail may be NULL), caller-owned. */
char *aw_store_key(const char *acct, enum aw_store_name name, const char *id, const char *tail);

/* The stream member of the account's due index: "a:<aud>", or "p" when aud is NULL. */
char *aw_store_stream_member(const char *aud);

/* Decimal text of v into buf (size >= 24); returns buf. */
char *aw_store_u64(uint64_t v, char *buf);
char *aw_store_i64(int64_t v, char *buf);

/* Keeps the client's last error as the store's. Returns e. */
enum aw_err aw_store_fail(struct aw_store *s, enum aw_err e);

/* The account part of a script reply {.., account earliest due, due seq, changed} at index i:
 * fills *min, *seq, *changed. False when the shape is wrong. */
bool aw_store_due_fields(const struct aw_reply *rp, size_t i, int64_t *min, int64_t *seq,
                         bool *changed);

/* Writes the account's earliest due into the global index (due.lua, ordered by seq): one
 * command per account, built into cmd (strings point into buf, which must outlive the exec). */
struct aw_store_due_buf {
    const char *argv[6];
    char score[24], seq[24];
};
void aw_store_due_cmd(const char *acct, int64_t min, int64_t seq, struct aw_store_due_buf *buf,
                      struct aw_redis_cmd *cmd);

/* Runs one command (exec + its own error); on AW_OK the caller owns cmd->reply (clear it). */
enum aw_err aw_store_run(struct aw_store *s, struct aw_redis_cmd *cmd);

/* Runs one script whose reply carries {.., min, seq, changed} at due_index, then the global due
 * write when the account's earliest due changed or the script saw nothing new. On AW_OK the
 * caller owns cmd->reply. */
enum aw_err aw_store_run_due(struct aw_store *s, struct aw_redis_cmd *cmd, const char *acct,
                             size_t due_index);

#endif
