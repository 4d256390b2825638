/* http.h -- the operational HTTP endpoint on AW_HTTP_ADDR: /metrics (Prometheus text),
 * /healthz (process alive), /readyz (consumer and Redis working), /status (JSON).
 * Runs its own libmicrohttpd thread; reads only atomics and the status callback. */
#ifndef AW_WORKER_HTTP_H
#define AW_WORKER_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

struct aw_http;

/* Appends a JSON object describing the replica to out; called on the HTTP thread, so it must
 * read only thread-safe state. */
typedef void (*aw_http_status_fn)(struct aw_buf *out, void *opaque);

/* Starts serving on host:port ("0.0.0.0", "127.0.0.1", or an IPv4 literal; port 0 = any free
 * port, see aw_http_port). NULL on failure with the reason in errbuf. */
struct aw_http *aw_http_new(const char *host, uint16_t port, aw_http_status_fn status, void *opaque,
                            char *errbuf, size_t errlen);

/* The bound port. */
uint16_t aw_http_port(const struct aw_http *h);

/* Sets readiness (answered by /readyz: 200 when true, 503 otherwise). Any thread. */
void aw_http_set_ready(struct aw_http *h, bool ready);

/* Stops the server thread and frees. NULL is a no-op. */
void aw_http_free(struct aw_http *h);

#endif
