/* redis_url.h -- the one grammar of AW_REDIS_URL, shared by settings (validation, --check-config)
 * and the store client (connection), so what one accepts the other can use:
 *
 *   redis://[[user]:password@]host[:port][,host[:port]...][/db]      (several hosts: cluster seeds)
 *   unix://[[user]:password@]/socket/path[?db=N]
 *
 * Scheme letters are case-insensitive; hosts follow common/hostport.h (names, IPv4, [IPv6]);
 * the default port is 6379; user and password may carry %XX escapes; a lone userinfo
 * ("redis://secret@host") is the password, as redis-cli reads it; `?db=N` may replace `/N`.
 * Pure string handling (no I/O, no Redis client); any thread. */
#ifndef AW_COMMON_REDIS_URL_H
#define AW_COMMON_REDIS_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/hostport.h"

#define AW_REDIS_URL_NODES_MAX 16   /* seed nodes in one URL */
#define AW_REDIS_URL_SECRET_MAX 512 /* user / password buffer, NUL included */
#define AW_REDIS_URL_PATH_MAX 108   /* unix socket path, NUL included (sun_path) */

struct aw_redis_url_node {
    char host[AW_HOSTPORT_HOST_MAX]; /* name or IP literal (brackets removed); socket path for
                                        unix:// */
    uint16_t port;                   /* 0 for unix:// */
};

/* Parsed URL. Plain data; holds the password: wipe with aw_redis_url_wipe when done. */
struct aw_redis_url {
    bool is_unix;
    struct aw_redis_url_node nodes[AW_REDIS_URL_NODES_MAX];
    size_t n_nodes;                         /* >= 1; exactly 1 for unix:// */
    char user[AW_REDIS_URL_SECRET_MAX];     /* "" = AUTH with the password only (or no AUTH) */
    char password[AW_REDIS_URL_SECRET_MAX]; /* "" = no AUTH */
    int db;                                 /* SELECT index; 0 with several seed nodes */
};

/* Parses url into *out (overwritten). AW_ERR_CONFIG with a reason in errbuf when malformed; the
 * reason never contains the password (nor the URL). */
enum aw_err aw_redis_url_parse(const char *url, struct aw_redis_url *out, char *errbuf,
                               size_t errlen);

/* Prints *u canonically with the password as "****" (for --check-config, logs):
 * redis://user:****@host:port,host:port/db or unix://user:****@/path?db=N. Truncates to outlen. */
void aw_redis_url_format_masked(const struct aw_redis_url *u, char *out, size_t outlen);

/* Overwrites the credentials in *u (volatile writes, so the compiler keeps them). */
void aw_redis_url_wipe(struct aw_redis_url *u);

#endif
