/* test_http.c -- the HTTP server listens on every address form AW_HTTP_ADDR accepts (IPv4
 * literal, host name, IPv6 literal, the wildcards), so `--check-config` and `run` agree: it is
 * started on 127.0.0.1:0, localhost:0, [::1]:0 (when this machine has IPv6 loopback), 0.0.0.0:0
 * and [::]:0, and /healthz is fetched over a real loopback socket each time. Then the settings
 * path itself (AW_HTTP_ADDR -> struct aw_settings_http -> aw_http_new), the other endpoints,
 * and the failures (unresolvable name, port in use). */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/clock.h"
#include "tests/harness.h"
#include "worker/ops/health.h"
#include "worker/ops/http.h"
#include "worker/ops/metrics.h"
#include "worker/settings.h"

/* True when an IPv6 socket can be bound to [::1] here. */
static bool have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* GET path from ip:port (an IPv4 or IPv6 literal) with HTTP/1.0; the whole response into out.
 * Returns the status code, or -1 when no connection could be made. */
static int http_get(const char *ip, uint16_t port, const char *path, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        if (inet_pton(AF_INET6, ip, &a->sin6_addr) != 1)
            return -1;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        if (inet_pton(AF_INET, ip, &a->sin_addr) != 1)
            return -1;
        len = sizeof *a;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -1;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: test\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, out + got, outlen - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == outlen - 1)
            break;
    }
    out[got] = '\0';
    close(fd);
    int code = 0;
    if (sscanf(out, "HTTP/1.%*d %d", &code) != 1)
        return 0;
    return code;
}

/* The body of a response (after the blank line), or "". */
static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

static struct aw_http *start(const char *host, uint16_t port)
{
    struct aw_http_config cfg = {
        .host = host, .port = port, .instance_id = "replica-1", .version = "9.9.9"};
    char err[256] = "";
    struct aw_http *h = aw_http_new(&cfg, err, sizeof err);
    AW_CHECK_MSG(h != NULL, "cannot listen on %s:%u: %s", host, (unsigned)port, err);
    return h;
}

/* Starts on host:0 and fetches /healthz from each of the given loopback addresses. */
static void check_listen(const char *host, const char *const *from, size_t n_from)
{
    struct aw_http *h = start(host, 0);
    if (!h)
        return;
    uint16_t port = aw_http_port(h);
    AW_CHECK_MSG(port != 0, "%s: no bound port", host);
    for (size_t i = 0; i < n_from; i++) {
        char resp[4096];
        int code = http_get(from[i], port, "/healthz", resp, sizeof resp);
        AW_CHECK_MSG(code == 200, "server on %s: GET /healthz from %s gave %d", host, from[i],
                     code);
        AW_CHECK_MSG(strcmp(body_of(resp), "ok\n") == 0, "server on %s: body \"%s\"", host,
                     body_of(resp));
    }
    aw_http_free(h);
}

static void test_listen_forms(bool v6)
{
    static const char *const v4[] = {"127.0.0.1"};
    static const char *const v6lo[] = {"::1"};
    static const char *const both[] = {"127.0.0.1", "::1"};
    check_listen("127.0.0.1", v4, 1);
    check_listen("0.0.0.0", v4, 1);
    /* localhost may resolve to 127.0.0.1 or ::1 first: whichever was bound answers */
    struct aw_http *h = start("localhost", 0);
    if (h) {
        char resp[4096];
        int code = http_get("127.0.0.1", aw_http_port(h), "/healthz", resp, sizeof resp);
        if (code != 200 && v6)
            code = http_get("::1", aw_http_port(h), "/healthz", resp, sizeof resp);
        AW_CHECK_MSG(code == 200, "server on localhost: GET /healthz gave %d", code);
        aw_http_free(h);
    }
    if (!v6) {
        printf("no IPv6 loopback on this machine: [::1] and [::] not tested\n");
        return;
    }
    check_listen("::1", v6lo, 1);
    check_listen("::", both, 2); /* the IPv6 wildcard serves IPv4 too */
}

/* AW_HTTP_ADDR as settings accept it is what the server is started with. */
static const char *env_addr;
static const char *env_get(const char *name, void *ctx)
{
    (void)ctx;
    if (strcmp(name, "AW_KAFKA_BROKERS") == 0)
        return "127.0.0.1:9092";
    if (strcmp(name, "AW_HTTP_ADDR") == 0)
        return env_addr;
    return NULL;
}

/* A port that was free a moment ago. */
static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    uint16_t port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static void test_from_settings(bool v6)
{
    static const struct {
        const char *host; /* AW_HTTP_ADDR without the port */
        const char *from; /* where to connect */
        bool needs_v6;
    } cases[] = {
        {"127.0.0.1", "127.0.0.1", false},
        {"localhost", NULL, false},
        {"[::1]", "::1", true},
        {"[::]", "127.0.0.1", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].needs_v6 && !v6)
            continue;
        uint16_t port = free_port();
        AW_CHECK(port != 0);
        char addr[64];
        snprintf(addr, sizeof addr, "%s:%u", cases[i].host, (unsigned)port);
        env_addr = addr;
        struct aw_settings s;
        struct aw_settings_problems p = {0};
        AW_CHECK_MSG(aw_settings_load(&s, env_get, NULL, AW_SETTINGS_FOR_RUN, &p) == AW_OK,
                     "AW_HTTP_ADDR=%s refused: %s", addr, p.n ? p.items[0] : "");
        aw_settings_problems_free(&p);
        struct aw_http *h = start(s.http.host, s.http.port);
        if (h) {
            AW_CHECK_INT_EQ(aw_http_port(h), port);
            char resp[4096];
            int code = -1;
            if (cases[i].from)
                code = http_get(cases[i].from, port, "/healthz", resp, sizeof resp);
            else
                for (int k = 0; k < 2 && code != 200; k++)
                    code =
                        http_get(k == 0 ? "127.0.0.1" : "::1", port, "/healthz", resp, sizeof resp);
            AW_CHECK_MSG(code == 200, "AW_HTTP_ADDR=%s: GET /healthz gave %d", addr, code);
            aw_http_free(h);
        }
        aw_settings_free(&s);
    }
}

static void test_endpoints(void)
{
    aw_metrics_reset();
    aw_metrics_set(AW_M_LEADER, 1);
    aw_metrics_add(AW_M_RECORDS_CONSUMED, 7);
    aw_metrics_count(AW_MF_DEAD_LETTERS, "decode", "not_json");
    aw_metrics_count(AW_MF_DEAD_LETTERS, "flush", "klaviyo_rejected");
    struct aw_http *h = start("127.0.0.1", 0);
    if (!h)
        return;
    uint16_t port = aw_http_port(h);
    static char resp[1 << 16];
    AW_CHECK_INT_EQ(http_get("127.0.0.1", port, "/readyz", resp, sizeof resp), 503);
    aw_http_set_ready(h, true);
    /* ready needs Redis answering and the consumer in its group too */
    aw_health_reset();
    aw_health_set(AW_HEALTH_SERVING, true);
    aw_health_set(AW_HEALTH_STORE, true);
    AW_CHECK_INT_EQ(http_get("127.0.0.1", port, "/readyz", resp, sizeof resp), 503);
    AW_CHECK(strstr(resp, "not ready: kafka_group") != NULL);
    aw_health_set(AW_HEALTH_JOINED, true);
    AW_CHECK_INT_EQ(http_get("127.0.0.1", port, "/readyz", resp, sizeof resp), 200);
    /* live while the registered parts beat; a stalled one makes /healthz fail, naming it */
    AW_CHECK_INT_EQ(http_get("127.0.0.1", port, "/healthz", resp, sizeof resp), 200);
    aw_health_register(AW_HEALTH_FLUSHER, 1);
    aw_clock_sleep_ms(20, NULL);
    AW_CHECK_INT_EQ(http_get("127.0.0.1", port, "/healthz", resp, sizeof resp), 503);
    AW_CHECK(strstr(resp, "stalled: flusher") != NULL);
    aw_health_reset();
    AW_CHECK_INT_EQ(http_get("127.0.0.1", port, "/metrics", resp, sizeof resp), 200);
    AW_CHECK(strstr(resp, "text/plain; version=0.0.4") != NULL);
    AW_CHECK(
        strstr(resp, "\naw_dead_letters_total{stage=\"flush\",reason=\"klaviyo_rejected\"} 1\n"));
    AW_CHECK_INT_EQ(http_get("127.0.0.1", port, "/status", resp, sizeof resp), 200);
    AW_CHECK(strstr(resp, "application/json") != NULL);
    json_t *st = json_loads(body_of(resp), 0, NULL);
    AW_CHECK(st != NULL);
    AW_CHECK_STR_EQ(json_string_value(json_object_get(st, "instance")), "replica-1");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(st, "version")), "9.9.9");
    AW_CHECK(json_is_true(json_object_get(st, "leader")));
    AW_CHECK_INT_EQ(json_integer_value(json_object_get(st, "records_consumed")), 7);
    AW_CHECK_INT_EQ(json_integer_value(json_object_get(st, "dead_letters")), 2);
    json_decref(st);
    AW_CHECK_INT_EQ(http_get("127.0.0.1", port, "/nope", resp, sizeof resp), 404);

    /* the port is taken: a second server fails with a reason */
    struct aw_http_config cfg = {.host = "127.0.0.1", .port = port, .instance_id = "x"};
    char err[256] = "";
    struct aw_http *again = aw_http_new(&cfg, err, sizeof err);
    AW_CHECK(again == NULL);
    AW_CHECK_MSG(strstr(err, "cannot listen on 127.0.0.1:") != NULL, "%s", err);
    aw_http_free(again);
    aw_http_free(h);

    cfg.host = "no-such-host.invalid";
    cfg.port = 0;
    err[0] = '\0';
    AW_CHECK(aw_http_new(&cfg, err, sizeof err) == NULL);
    AW_CHECK_MSG(strstr(err, "cannot resolve no-such-host.invalid") != NULL, "%s", err);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    bool v6 = have_ipv6_loopback();
    test_listen_forms(v6);
    test_from_settings(v6);
    test_endpoints();
    return aw_test_done();
}
