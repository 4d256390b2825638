/* client.h -- the hiredis adapter of the store (private to worker/store/): one Redis or a Redis
 * Cluster behind one interface. Commands are pipelined per node and routed by the hash slot of
 * their key; in cluster mode the slot map comes from CLUSTER SLOTS and is asked again after a
 * MOVED (from the node it names first), a lost node, CLUSTERDOWN or READONLY. A plain command
 * follows ASK once (ASKING). A script never runs while its slot migrates: every script call
 * declares one more key that never exists in its route's slot, so Redis answers TRYAGAIN / ASK
 * before running it (instead of a script stopping half-way on a key already moved, or running
 * on the importing node against keys not moved yet); the command is sent again after short
 * waits (about 0.4 s in all), then reported as AW_ERR_IO. A slot left open by a failed
 * migration thus holds its account's scripts until `redis-cli --cluster fix`. The store's Lua
 * scripts (worker/store/scripts, embedded at build time) are loaded on every node at connect
 * and again on NOSCRIPT, so callers only name a script.
 *
 * Mode: detected from the server (CLUSTER SLOTS answers or "cluster support disabled"), whatever
 * the URL lists (several seed nodes, DESIGN §2, are only where to start).
 *
 * Threads: a struct aw_redis belongs to one thread. Never logs keys' values or passwords. The
 * process must ignore SIGPIPE (a peer closing the socket). */
#ifndef AW_WORKER_STORE_CLIENT_H
#define AW_WORKER_STORE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct aw_redis;

enum aw_reply_type { AW_REPLY_NIL = 0, AW_REPLY_INT, AW_REPLY_STR, AW_REPLY_ARRAY };

/* A reply, copied out of hiredis (status replies are AW_REPLY_STR). Owned by the command that
 * received it; released by aw_redis_cmd_clear. */
struct aw_reply {
    enum aw_reply_type type;
    long long integer;     /* AW_REPLY_INT */
    char *str;             /* AW_REPLY_STR: NUL-terminated copy (may hold NULs: use len) */
    size_t len;            /* AW_REPLY_STR */
    struct aw_reply *elem; /* AW_REPLY_ARRAY: n elements */
    size_t n;
};

#define AW_REDIS_ARGS_MAX 4096 /* arguments of one command (scripts: KEYS + ARGV) */

/* One command. The caller fills the inputs (borrowed until aw_redis_exec returns); exec fills
 * err and reply. script >= 0 sends EVALSHA of that script (enum aw_script of the generated
 * scripts.h) with args = KEYS then ARGV; script < 0 sends args as they are. */
struct aw_redis_cmd {
    int script;
    int nkeys;          /* scripts: how many of args are KEYS */
    const char *route;  /* key whose slot picks the node (NULL: any node) */
    int argc;           /* <= AW_REDIS_ARGS_MAX */
    const char **argv;  /* borrowed */
    const size_t *lens; /* borrowed; NULL = strlen of each */
    enum aw_err err;    /* AW_OK (reply valid), AW_ERR_INVALID ("INVALID ..." from a script),
                           AW_ERR_NOT_LEADER ("NOTLEADER ..."), AW_ERR_FULL (OOM: maxmemory),
                           AW_ERR_IO (unknown or transient: retry; it is idempotent),
                           AW_ERR_PROTOCOL (any other error reply) */
    struct aw_reply reply;
};

/* Creates a client for url (AW_REDIS_URL, common/redis_url.h); no connection yet.
 * connect_timeout_ms / command_timeout_ms > 0. NULL with the reason in errbuf when the URL is
 * invalid. Caller owns the result. */
struct aw_redis *aw_redis_new(const char *url, uint64_t connect_timeout_ms,
                              uint64_t command_timeout_ms, char *errbuf, size_t errlen);

/* Closes every connection, wipes the credentials, frees. NULL is a no-op. */
void aw_redis_free(struct aw_redis *r);

/* Detail of the last failure (borrowed until the next call; "" when none). No secrets. */
const char *aw_redis_errstr(const struct aw_redis *r);

/* Runs cmds[0..n) in one pipeline per node (connecting and loading scripts first where needed)
 * and fills each command's err/reply (previous replies are released first). Commands to one
 * node keep their order; a command redirected (MOVED/ASK), retried after NOSCRIPT or refused
 * by a migrating slot (TRYAGAIN; it may wait up to about 0.4 s) runs after the others. Returns
 * AW_OK when every command got a definite answer (which may itself be an error code), else
 * AW_ERR_IO (some command carries AW_ERR_IO: a connection failed, the cluster is changing, or
 * redirections did not settle) or AW_ERR_CONFIG (the server refused AUTH or SELECT: every
 * unanswered command carries it). */
enum aw_err aw_redis_exec(struct aw_redis *r, struct aw_redis_cmd *cmds, size_t n);

/* Releases cmd->reply. */
void aw_redis_cmd_clear(struct aw_redis_cmd *cmd);

/* Connects if needed and PINGs one node. AW_OK, AW_ERR_IO, AW_ERR_CONFIG (AUTH/SELECT refused). */
enum aw_err aw_redis_ping(struct aw_redis *r);

/* True while at least one node connection is up (no I/O). */
bool aw_redis_is_connected(const struct aw_redis *r);

/* True once the server said it is a cluster (no I/O). */
bool aw_redis_is_cluster(const struct aw_redis *r);

/* Hash slot of a key (CRC16 of its {hash tag}, or of the whole key), 0..16383. Pure. */
unsigned aw_redis_key_slot(const char *key, size_t len);

#endif
