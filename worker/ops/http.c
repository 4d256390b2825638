#include "worker/ops/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "worker/ops/metrics.h"

struct aw_http {
    struct MHD_Daemon *d;
    aw_http_status_fn status;
    void *opaque;
    atomic_bool ready;
    uint16_t port;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *type,
                             char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_size, void **req_cls)
{
    (void)version;
    (void)upload_data;
    (void)req_cls;
    struct aw_http *h = cls;
    struct aw_buf b;
    aw_buf_init(&b, 4u << 20);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        if (*upload_size) {
            *upload_size = 0; /* discard bodies */
            return MHD_YES;
        }
        aw_buf_append_str(&b, "method not allowed\n");
        size_t mlen = b.len;
        return reply(conn, 405, "text/plain", aw_buf_take(&b), mlen);
    }
    unsigned code = 200;
    const char *type = "text/plain; charset=utf-8";
    if (strcmp(url, "/metrics") == 0) {
        aw_metrics_render(&b);
        type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (strcmp(url, "/healthz") == 0) {
        aw_buf_append_str(&b, "ok\n");
    } else if (strcmp(url, "/readyz") == 0) {
        bool ready = atomic_load(&h->ready);
        code = ready ? 200 : 503;
        aw_buf_append_str(&b, ready ? "ready\n" : "not ready\n");
    } else if (strcmp(url, "/status") == 0) {
        type = "application/json";
        if (h->status)
            h->status(&b, h->opaque);
        else
            aw_buf_append_str(&b, "{}");
        aw_buf_append_str(&b, "\n");
    } else {
        code = 404;
        aw_buf_append_str(&b, "not found\n");
    }
    size_t len = b.len;
    return reply(conn, code, type, aw_buf_take(&b), len);
}

struct aw_http *aw_http_new(const char *host, uint16_t port, aw_http_status_fn status, void *opaque,
                            char *errbuf, size_t errlen)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(errbuf, errlen, "http: %s is not an IPv4 address", host);
        return NULL;
    }
    struct aw_http *h = aw_calloc(1, sizeof *h);
    h->status = status;
    h->opaque = opaque;
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, port, NULL, NULL,
                            handler, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
    if (!h->d) {
        snprintf(errbuf, errlen, "http: cannot listen on %s:%u", host, (unsigned)port);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : port;
    return h;
}

uint16_t aw_http_port(const struct aw_http *h)
{
    return h->port;
}

void aw_http_set_ready(struct aw_http *h, bool ready)
{
    atomic_store(&h->ready, ready);
}

void aw_http_free(struct aw_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
