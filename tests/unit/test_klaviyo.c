/* test_klaviyo.c -- the response classification table (one check per row) and Retry-After
 * parsing. No network. (Error documents are parse.c's parser: test_parse.c.) */
#include <string.h>

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

int main(void)
{
    test_classification_table();
    test_retry_after();
    test_new_rejects_bad_scheme();
    return aw_test_done();
}
