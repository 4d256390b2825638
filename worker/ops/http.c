/* http.c -- the libmicrohttpd adapter: listens on what AW_HTTP_ADDR accepts and serves the
 * operational endpoints (see http.h). */
#include "worker/ops/http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/hostport.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/ops/health.h"
#include "worker/ops/metrics.h"

#define BODY_MAX (4u << 20)

struct aw_http {
    struct MHD_Daemon *d;
    char *instance_id;
    char *version;
    atomic_bool ready;
    uint16_t port;
};

/* libmicrohttpd's own messages (bind failures, broken connections) as logfmt lines. */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512], q[600];
    if (vsnprintf(msg, sizeof msg, fmt, ap) < 0)
        return;
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    AW_LOG_WARN("http", "libmicrohttpd", "detail=%s", aw_log_quote(q, sizeof q, msg));
}

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

/* /status: a summary of the metrics registry (thread-safe reads). */
static void status_json(const struct aw_http *h, struct aw_buf *out)
{
    json_t *o =
        json_pack("{s:s, s:s, s:b, s:I, s:b, s:I, s:I, s:I, s:I, s:I}", "version", h->version,
                  "instance", h->instance_id, "leader", aw_metrics_get(AW_M_LEADER) != 0,
                  "partitions_assigned", (json_int_t)aw_metrics_get(AW_M_PARTITIONS_ASSIGNED),
                  "store_up", aw_metrics_get(AW_M_STORE_UP) != 0, "records_consumed",
                  (json_int_t)aw_metrics_get(AW_M_RECORDS_CONSUMED), "records_done",
                  (json_int_t)aw_metrics_get(AW_M_RECORDS_DONE), "dead_letters",
                  (json_int_t)aw_metrics_family_total(AW_MF_DEAD_LETTERS), "flushes",
                  (json_int_t)aw_metrics_get(AW_M_FLUSHES), "accounts_paused",
                  (json_int_t)aw_metrics_get(AW_M_ACCOUNTS_PAUSED));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    aw_buf_append_str(out, text ? text : "{}");
    free(text);
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
    aw_buf_init(&b, BODY_MAX);
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
        const char *stalled = "";
        bool live = aw_health_live(aw_clock_mono_ms(), &stalled);
        code = live ? 200 : 503;
        aw_buf_appendf(&b, live ? "ok\n" : "stalled: %s\n", stalled);
    } else if (strcmp(url, "/readyz") == 0) {
        const char *missing = "";
        bool ready = atomic_load(&h->ready) && aw_health_ready(&missing);
        if (!atomic_load(&h->ready))
            missing = "serving";
        code = ready ? 200 : 503;
        aw_buf_appendf(&b, ready ? "ready\n" : "not ready: %s\n", missing);
    } else if (strcmp(url, "/status") == 0) {
        type = "application/json";
        status_json(h, &b);
        aw_buf_append_str(&b, "\n");
    } else {
        code = 404;
        aw_buf_append_str(&b, "not found\n");
    }
    size_t len = b.len;
    return reply(conn, code, type, aw_buf_take(&b), len);
}

/* Starts the daemon on one socket address (port already set in it). */
static struct MHD_Daemon *start_on(struct aw_http *h, const struct sockaddr *sa)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (sa->sa_family == AF_INET6) {
        /* libmicrohttpd sizes the address and opens the socket by these flags, not by
         * sa_family. The unspecified address "::" serves IPv4 too (IPV6_V6ONLY off), as a
         * listener on "all addresses" is expected to. */
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        flags |= IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
    }
    /* The logger goes first so that every message of the start goes through it. */
    return MHD_start_daemon(flags, 0, NULL, NULL, handler, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                            NULL, MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)10, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                            MHD_OPTION_END);
}

/* Listens on host:port; false with the reason in errbuf. */
static bool listen_on(struct aw_http *h, const char *host, uint16_t port, char *errbuf,
                      size_t errlen)
{
    bool v6 = aw_hostport_is_ipv6(host);
    if (v6) {
        struct sockaddr_in6 s6;
        memset(&s6, 0, sizeof s6);
        s6.sin6_family = AF_INET6;
        s6.sin6_port = htons(port);
        if (inet_pton(AF_INET6, host, &s6.sin6_addr) != 1) {
            snprintf(errbuf, errlen, "http: [%s] is not an IPv6 address", host);
            return false;
        }
        h->d = start_on(h, (const struct sockaddr *)&s6);
    } else {
        /* A name or an IPv4 literal (getaddrinfo reads both); every address it resolves to is
         * tried in the resolver's order. */
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int rc = getaddrinfo(host, NULL, &hints, &res);
        if (rc != 0) {
            snprintf(errbuf, errlen, "http: cannot resolve %s: %s", host, gai_strerror(rc));
            return false;
        }
        for (const struct addrinfo *ai = res; ai && !h->d; ai = ai->ai_next) {
            struct sockaddr_storage ss;
            if (ai->ai_addrlen > sizeof ss)
                continue;
            memset(&ss, 0, sizeof ss);
            memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
            if (ss.ss_family == AF_INET)
                ((struct sockaddr_in *)(void *)&ss)->sin_port = htons(port);
            else if (ss.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)(void *)&ss)->sin6_port = htons(port);
            else
                continue;
            h->d = start_on(h, (const struct sockaddr *)&ss);
        }
        freeaddrinfo(res);
    }
    if (!h->d) {
        snprintf(errbuf, errlen, "http: cannot listen on %s%s%s:%u", v6 ? "[" : "", host,
                 v6 ? "]" : "", (unsigned)port);
        return false;
    }
    return true;
}

struct aw_http *aw_http_new(const struct aw_http_config *cfg, char *errbuf, size_t errlen)
{
    struct aw_http *h = aw_calloc(1, sizeof *h);
    h->instance_id = aw_strdup(cfg->instance_id ? cfg->instance_id : "");
    h->version = aw_strdup(cfg->version ? cfg->version : "");
    atomic_init(&h->ready, false);
    if (!cfg->host || !listen_on(h, cfg->host, cfg->port, errbuf, errlen)) {
        if (!cfg->host)
            snprintf(errbuf, errlen, "http: no listen address");
        aw_http_free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info && info->port ? info->port : cfg->port;
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
    if (h->d)
        MHD_stop_daemon(h->d);
    free(h->instance_id);
    free(h->version);
    free(h);
}
