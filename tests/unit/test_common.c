/* test_common.c -- common/: arenas, buffers with a hard maximum, backoff bounds, error names. */
#include <stdint.h>
#include <string.h>

#include "common/arena.h"
#include "common/backoff.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/text.h"
#include "tests/harness.h"

static void test_buf(void)
{
    struct aw_buf b;
    aw_buf_init(&b, 8);
    AW_CHECK_INT_EQ(aw_buf_append_str(&b, "abc"), AW_OK);
    AW_CHECK_INT_EQ(aw_buf_appendf(&b, "%d", 1234), AW_OK);
    AW_CHECK_STR_EQ(b.data, "abc1234");
    AW_CHECK_INT_EQ(aw_buf_append_str(&b, "xy"), AW_ERR_INVALID); /* 9 > 8: refused whole */
    AW_CHECK_STR_EQ(b.data, "abc1234");
    AW_CHECK_INT_EQ(aw_buf_append_str(&b, "z"), AW_OK);
    AW_CHECK_INT_EQ(b.len, 8);
    char *s = aw_buf_take(&b);
    AW_CHECK_STR_EQ(s, "abc1234z");
    AW_CHECK_INT_EQ(b.len, 0);
    free(s);
    aw_buf_free(&b);
}

static void test_backoff(void)
{
    struct aw_backoff b;
    aw_backoff_init(&b, 100, 1000, 42);
    uint64_t ceilings[] = {100, 200, 400, 800, 1000, 1000};
    for (size_t i = 0; i < sizeof ceilings / sizeof ceilings[0]; i++) {
        uint64_t d = aw_backoff_next_ms(&b);
        AW_CHECK_MSG(d >= ceilings[i] / 2 && d <= ceilings[i], "attempt %zu delay %llu", i,
                     (unsigned long long)d);
    }
    aw_backoff_reset(&b);
    AW_CHECK(aw_backoff_next_ms(&b) <= 100);
}

static void test_err_and_log(void)
{
    AW_CHECK_STR_EQ(aw_err_str(AW_OK), "ok");
    AW_CHECK_STR_EQ(aw_err_str(AW_ERR_RATE_LIMITED), "rate_limited");
    AW_CHECK(aw_err_is_transient(AW_ERR_IO));
    AW_CHECK(aw_err_is_transient(AW_ERR_TIMEOUT));
    AW_CHECK(!aw_err_is_transient(AW_ERR_REJECTED));
    enum aw_log_level l;
    AW_CHECK(aw_log_parse_level("WARN", &l) && l == AW_LOG_LEVEL_WARN);
    AW_CHECK(!aw_log_parse_level("loud", &l));
    char q[16];
    AW_CHECK_STR_EQ(aw_log_quote(q, sizeof q, "a\"b"), "\"a\\\"b\"");
    aw_log_quote(q, sizeof q, "0123456789abcdefghij");
    AW_CHECK(strlen(q) < sizeof q);
    AW_CHECK(strstr(q, "...") != NULL);
}

static void test_text(void)
{
    AW_CHECK_INT_EQ(aw_text_hexval('0'), 0);
    AW_CHECK_INT_EQ(aw_text_hexval('f'), 15);
    AW_CHECK_INT_EQ(aw_text_hexval('A'), 10);
    AW_CHECK_INT_EQ(aw_text_hexval('g'), -1);
    AW_CHECK_INT_EQ(aw_text_hexval('%'), -1);
    char *d = aw_text_pct_decode("p%40ss%2fw%2Bd", 14);
    AW_CHECK_STR_EQ(d, "p@ss/w+d");
    free(d);
    d = aw_text_pct_decode("abc%4", 5); /* truncated escape */
    AW_CHECK(d == NULL);
    d = aw_text_pct_decode("a%00b", 5); /* encoded NUL */
    AW_CHECK(d == NULL);
    d = aw_text_pct_decode("%zz", 3);
    AW_CHECK(d == NULL);
    d = aw_text_pct_decode("x%41", 4); /* escape at the very end */
    AW_CHECK_STR_EQ(d, "xA");
    free(d);
}

static void test_iso8601(void)
{
    uint64_t ms = 0;
    AW_CHECK(aw_clock_parse_iso8601("2026-12-01T20:47:18+00:00", &ms));
    AW_CHECK_INT_EQ(ms, 1796158038000ull);
    AW_CHECK(aw_clock_parse_iso8601("2026-12-01T20:47:18.25Z", &ms));
    AW_CHECK_INT_EQ(ms, 1796158038250ull);
    AW_CHECK(aw_clock_parse_iso8601("2026-12-01T22:47:18+02:00", &ms));
    AW_CHECK_INT_EQ(ms, 1796158038000ull);
    AW_CHECK(aw_clock_parse_iso8601("2026-12-01T18:17:18-02:30", &ms));
    AW_CHECK_INT_EQ(ms, 1796158038000ull);
    const char *bad[] = {"",
                         "2026-12-01",
                         "2026-12-01T20:47:18",
                         "2026-13-01T20:47:18Z",
                         "2026-12-01T20:47:18.Z",
                         "2026-12-01T20:47:18+0000",
                         "2026-12-01T20:47:18Zx",
                         "1969-12-31T23:59:59Z",
                         "20261201T204718Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        AW_CHECK_MSG(!aw_clock_parse_iso8601(bad[i], &ms), "accepted %s", bad[i]);
}

static void test_arena(void)
{
    aw_arena_free(NULL);
    struct aw_arena *a = aw_arena_new();
    /* many small blocks and a few larger than a chunk: every one aligned, intact, distinct */
    char *strs[3000];
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        char text[32];
        snprintf(text, sizeof text, "s%zu", i);
        strs[i] = aw_arena_strdup(a, text);
        AW_CHECK((uintptr_t)strs[i] % 16 == 0);
        if (i % 1000 == 999) {
            char *big = aw_arena_calloc(a, 40000, 1);
            AW_CHECK(big[0] == 0 && big[39999] == 0);
            memset(big, 'x', 40000);
        }
    }
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        char text[32];
        snprintf(text, sizeof text, "s%zu", i);
        AW_CHECK_STR_EQ(strs[i], text);
    }
    AW_CHECK_STR_EQ(aw_arena_strndup(a, "abcdef", 3), "abc");
    AW_CHECK_STR_EQ(aw_arena_strndup(a, "ab", 10), "ab");
    AW_CHECK(aw_arena_alloc(a, 0) != NULL);
    aw_arena_free(a);
}

int main(void)
{
    test_arena();
    test_text();
    test_buf();
    test_backoff();
    test_err_and_log();
    test_iso8601();
    return aw_test_done();
}
