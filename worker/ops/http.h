/* http.h -- the operational HTTP endpoint on AW_HTTP_ADDR: /metrics (Prometheus text),
 * /healthz (process alive), /readyz (consumer running), /status (JSON summary of the metrics).
 * Runs its own libmicrohttpd thread, which reads only the metrics registry and atomics. */
#ifndef AW_WORKER_OPS_HTTP_H
#define AW_WORKER_OPS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aw_http;

struct aw_http_config {
    const char *host; /* what AW_HTTP_ADDR accepts (common/hostport.h): a host name (resolved with
                         getaddrinfo; the first address that can be bound wins), an IPv4 literal
                         or an IPv6 literal without brackets ("::" also accepts IPv4) */
    uint16_t port;    /* 0 = any free port (see aw_http_port) */
    const char *instance_id; /* shown by /status; copied */
    const char *version;     /* shown by /status; copied */
};

/* Starts serving. NULL on failure (name not resolved, nothing could be bound) with the reason in
 * errbuf. Main thread. */
struct aw_http *aw_http_new(const struct aw_http_config *cfg, char *errbuf, size_t errlen);

/* The bound port. Any thread. */
uint16_t aw_http_port(const struct aw_http *h);

/* Sets readiness (answered by /readyz: 200 when true, 503 otherwise). Any thread. */
void aw_http_set_ready(struct aw_http *h, bool ready);

/* Stops the server thread and frees. NULL is a no-op. Main thread. */
void aw_http_free(struct aw_http *h);

#endif
