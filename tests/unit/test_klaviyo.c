/* test_klaviyo.c -- the response classification table (one check per row), Retry-After parsing,
 * and the request deadline (a socket on 127.0.0.1, no network). (Error documents are parse.c's
 * parser: test_parse.c.) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "tests/harness.h"
#include "worker/klaviyo/client.h"

static void test_classification_table(void)
{
    static const struct {
        long status;
        bool names_records;
        enum aw_klaviyo_action want;
    } rows[] = {
        {200, false, AW_KLAVIYO_DONE}, /* 2xx */
        {201, false, AW_KLAVIYO_DONE},
        {202, false, AW_KLAVIYO_DONE},        /* bulk jobs accepted */
        {204, false, AW_KLAVIYO_DONE},        /* relationship add/remove */
        {400, true, AW_KLAVIYO_DROP_RECORDS}, /* 400 naming records: dead-letter those */
        {400, false, AW_KLAVIYO_REJECT},      /* 400 about the whole request */
        {401, false, AW_KLAVIYO_PAUSE},       /* bad key: pause the account */
        {403, false, AW_KLAVIYO_PAUSE},       /* missing scope */
        {404, false, AW_KLAVIYO_NOT_FOUND},   /* list gone / removal of unknown */
        {405, false, AW_KLAVIYO_REJECT},
        {408, false, AW_KLAVIYO_RETRY},
        {409, false, AW_KLAVIYO_CONFLICT}, /* duplicate */
        {410, false, AW_KLAVIYO_PAUSE},    /* revision retired */
        {413, false, AW_KLAVIYO_REJECT},   /* payload too large */
        {415, false, AW_KLAVIYO_REJECT},
        {422, false, AW_KLAVIYO_REJECT},
        {429, false, AW_KLAVIYO_WAIT}, /* rate limited: Retry-After */
        {500, false, AW_KLAVIYO_RETRY},
        {501, false, AW_KLAVIYO_REJECT},
        {502, false, AW_KLAVIYO_RETRY},
        {503, false, AW_KLAVIYO_RETRY},
        {504, false, AW_KLAVIYO_RETRY},
        {0, false, AW_KLAVIYO_RETRY},    /* transport error / timeout */
        {302, false, AW_KLAVIYO_REJECT}, /* redirects are never followed */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        enum aw_klaviyo_action got = aw_klaviyo_classify(rows[i].status, rows[i].names_records);
        AW_CHECK_MSG(got == rows[i].want, "status %ld names_records %d: got %s want %s",
                     rows[i].status, rows[i].names_records, aw_klaviyo_action_str(got),
                     aw_klaviyo_action_str(rows[i].want));
    }
}

static void test_retry_after(void)
{
    uint64_t ms = 0;
    AW_CHECK(aw_klaviyo_parse_retry_after("7", 0, &ms) && ms == 7000);
    AW_CHECK(aw_klaviyo_parse_retry_after(" 0 ", 0, &ms) && ms == 0);
    AW_CHECK(aw_klaviyo_parse_retry_after("999999999", 0, &ms) && ms == 86400000ull); /* capped */
    /* HTTP date 10 s after "now". */
    uint64_t now = 1445412480000ull - 10000ull; /* Wed, 21 Oct 2015 07:28:00 GMT minus 10 s */
    AW_CHECK(aw_klaviyo_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now, &ms) &&
             ms == 10000);
    AW_CHECK(aw_klaviyo_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now + 60000, &ms) &&
             ms == 0);
    AW_CHECK(!aw_klaviyo_parse_retry_after("", 0, &ms));
    AW_CHECK(!aw_klaviyo_parse_retry_after(NULL, 0, &ms));
    AW_CHECK(!aw_klaviyo_parse_retry_after("7s", 0, &ms));
    AW_CHECK(!aw_klaviyo_parse_retry_after("-1", 0, &ms));
    AW_CHECK(!aw_klaviyo_parse_retry_after("soon", 0, &ms));
}

static void test_new_rejects_bad_scheme(void)
{
    char err[128];
    struct aw_klaviyo_config cfg = {"ftp://a.klaviyo.com", "2026-07-15", NULL, 1000, 1000};
    AW_CHECK(aw_klaviyo_new(&cfg, err, sizeof err) == NULL);
    AW_CHECK(strstr(err, "https://") != NULL);
    cfg.base_url = "https://a.klaviyo.com/";
    struct aw_klaviyo *k = aw_klaviyo_new(&cfg, err, sizeof err);
    AW_CHECK(k != NULL);
    aw_klaviyo_free(k);
}

/* A request never outlives the deadline the flusher sets (its lease's validity): against a
 * peer that accepts and never answers, it ends at the deadline, not at the request timeout; at
 * or past the deadline nothing is sent. The peer is a listening socket on 127.0.0.1 whose
 * backlog completes the connection (no accept, no network). */
static void test_deadline(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    AW_CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 8) == 0 &&
             getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    char url[64], err[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    struct aw_klaviyo_config cfg = {url, "2026-07-15", NULL, 5000, 20000};
    struct aw_klaviyo *k = aw_klaviyo_new(&cfg, err, sizeof err);
    AW_CHECK(k != NULL);
    if (k) {
        struct aw_klaviyo_response r;
        uint64_t t0 = aw_clock_mono_ms();
        aw_klaviyo_set_deadline(k, t0 + 300);
        AW_CHECK_INT_EQ(aw_klaviyo_request(k, "pk_x", AW_API_GET, "/api/lists", NULL, 0, &r),
                        AW_ERR_TIMEOUT);
        uint64_t took = aw_clock_mono_ms() - t0;
        AW_CHECK_MSG(took >= 250 && took < 2000, "took %llu ms", (unsigned long long)took);
        AW_CHECK_INT_EQ(r.action, AW_KLAVIYO_RETRY);
        aw_klaviyo_response_clear(&r);
        /* past the deadline: not sent at all */
        aw_klaviyo_set_deadline(k, aw_clock_mono_ms());
        t0 = aw_clock_mono_ms();
        AW_CHECK_INT_EQ(aw_klaviyo_request(k, "pk_x", AW_API_GET, "/api/lists", NULL, 0, &r),
                        AW_ERR_TIMEOUT);
        AW_CHECK(aw_clock_mono_ms() - t0 < 50);
        AW_CHECK(strstr(r.transport_error, "deadline") != NULL);
        AW_CHECK_INT_EQ(r.status, 0);
        aw_klaviyo_response_clear(&r);
        aw_klaviyo_free(k);
    }
    close(fd);
}

int main(void)
{
    test_classification_table();
    test_retry_after();
    test_new_rejects_bad_scheme();
    test_deadline();
    return aw_test_done();
}
