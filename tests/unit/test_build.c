/* test_payload.c -- Klaviyo request bodies and response parsers (worker/payload.c).
 * Schema validity of every body kind is proven by test_payload_openapi.py; here: exact bytes,
 * escaping, unsets, batch limits by count and by bytes, and every parser. */
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "tests/change_builder.h"
#include "tests/harness.h"
#include "worker/store/change.h"
#include "worker/klaviyo/payload.h"

static void base(struct aw_change *c, const char *email)
{
    memset(c, 0, sizeof *c);
    c->account_id = aw_strdup("1");
    c->audience_id = aw_strdup("2");
    c->event_id = aw_strdup("e");
    c->version_ms = 1000;
    c->email = aw_strdup(email);
}

#define IMPORT_PREFIX                                                                              \
    "{\"data\":{\"type\":\"profile-bulk-import-job\",\"attributes\":{\"profiles\":{\"data\":["

static void test_import_exact(void)
{
    struct aw_change a, b;
    base(&a, "a\"q@x.io");
    a.phone_e164 = aw_strdup("+15005550006");
    aw_test_attr(&a, "first_name", "\"Ann\"");
    aw_test_attr(&a, "last_name", NULL); /* field unset: not in the bulk body */
    aw_test_attr(&a, "location.city", "\"Paris\"");
    aw_test_attr(&a, "location.zip", "75001");       /* number in a string field -> its text */
    aw_test_attr(&a, "properties.a.b", "[1,\"x\"]"); /* dotted property name kept whole */
    aw_test_attr(&a, "properties.old", NULL);        /* property unset -> meta.patch_properties */
    aw_test_attr(&a, "properties.z", "null");        /* JSON null = unset too */
    base(&b, "b@x.io");
    const struct aw_change *in[2] = {&a, &b};
    char *body = NULL;
    size_t used = 0;
    AW_CHECK_INT_EQ(aw_payload_build_import(in, 2, "L1", 0, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 2);
    AW_CHECK_STR_EQ(
        body, IMPORT_PREFIX
        "{\"type\":\"profile\",\"attributes\":{\"email\":\"a\\\"q@x.io\",\"phone_number\":"
        "\"+15005550006\",\"first_name\":\"Ann\",\"location\":{\"city\":\"Paris\",\"zip\":"
        "\"75001\"},"
        "\"properties\":{\"a.b\":[1,\"x\"]}},\"meta\":{\"patch_properties\":{\"unset\":"
        "[\"old\",\"z\"]}}},"
        "{\"type\":\"profile\",\"attributes\":{\"email\":\"b@x.io\"}}"
        "]}},\"relationships\":{\"lists\":{\"data\":[{\"type\":\"list\",\"id\":\"L1\"}]}}}}");
    free(body);

    AW_CHECK_INT_EQ(aw_payload_build_import(in + 1, 1, NULL, 0, 0, &body, &used), AW_OK);
    AW_CHECK_STR_EQ(body, IMPORT_PREFIX "{\"type\":\"profile\",\"attributes\":{\"email\":"
                                        "\"b@x.io\"}}]}}}}");
    free(body);

    /* field clears go through profile-import with nulls, nothing else */
    AW_CHECK(aw_payload_needs_profile_import(&a));
    AW_CHECK(!aw_payload_needs_profile_import(&b));
    AW_CHECK_INT_EQ(aw_payload_build_profile_import(&a, &body), AW_OK);
    AW_CHECK_STR_EQ(body, "{\"data\":{\"type\":\"profile\",\"attributes\":{\"email\":"
                          "\"a\\\"q@x.io\",\"last_name\":null}}}");
    free(body);
    AW_CHECK_INT_EQ(aw_payload_build_profile_import(&b, &body), AW_ERR_INVALID);
    AW_CHECK(body == NULL);
    aw_change_clear(&a);
    aw_change_clear(&b);
}

static void test_import_invalid_items(void)
{
    struct aw_change good, unknown, notjson;
    base(&good, "g@x.io");
    base(&unknown, "u@x.io");
    aw_test_attr(&unknown, "shoe_size", "\"42\""); /* no such Klaviyo field */
    base(&notjson, "n@x.io");
    aw_test_attr(&notjson, "properties.p", "{oops");
    const struct aw_change *in[3] = {&good, &unknown, &good};
    char *body = (char *)"x";
    size_t used = 99;
    /* stops before the bad item ... */
    AW_CHECK_INT_EQ(aw_payload_build_import(in, 3, NULL, 0, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 1);
    free(body);
    /* ... which then fails alone, to be dead-lettered */
    AW_CHECK_INT_EQ(aw_payload_build_import(in + 1, 2, NULL, 0, 0, &body, &used), AW_ERR_INVALID);
    AW_CHECK(body == NULL && used == 0);
    const struct aw_change *in2[1] = {&notjson};
    AW_CHECK_INT_EQ(aw_payload_build_import(in2, 1, NULL, 0, 0, &body, &used), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_payload_build_import(in, 0, NULL, 0, 0, &body, &used), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_payload_build_import(in, 1, "", 0, 0, &body, &used), AW_ERR_INVALID);
    aw_change_clear(&good);
    aw_change_clear(&unknown);
    aw_change_clear(&notjson);
}

static void test_import_limits(void)
{
    enum { N = 10050 };
    struct aw_change *cs = aw_calloc(N, sizeof *cs);
    const struct aw_change **in = aw_calloc(N, sizeof *in);
    for (size_t i = 0; i < N; i++) {
        char email[64];
        snprintf(email, sizeof email, "user%05zu@example.com", i);
        base(&cs[i], email);
        in[i] = &cs[i];
    }
    char *body = NULL;
    size_t used = 0;
    /* by count: the endpoint maximum of 10,000 */
    AW_CHECK_INT_EQ(aw_payload_build_import(in, N, "L", 0, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, AW_PAYLOAD_IMPORT_MAX_PROFILES);
    AW_CHECK(body && strlen(body) <= AW_PAYLOAD_IMPORT_MAX_BYTES);
    free(body);
    /* caller count below it; larger requests clamp */
    AW_CHECK_INT_EQ(aw_payload_build_import(in, N, "L", 7, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 7);
    free(body);
    AW_CHECK_INT_EQ(aw_payload_build_import(in, N, "L", 20000, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, AW_PAYLOAD_IMPORT_MAX_PROFILES);
    free(body);

    /* by bytes: each profile here is exactly 74 bytes, the wrapper with list "L" 136 */
    const char *one = "{\"type\":\"profile\",\"attributes\":{\"email\":\"user00000@example.com\"}}";
    size_t item = strlen(one);
    AW_CHECK_INT_EQ(aw_payload_build_import(in, 1, "L", 0, 0, &body, &used), AW_OK);
    size_t wrapper = strlen(body) - item;
    free(body);
    size_t limit = wrapper + 3 * item + 2; /* 3 items + 2 commas: fits exactly */
    AW_CHECK_INT_EQ(aw_payload_build_import(in, N, "L", 0, limit, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 3);
    AW_CHECK_INT_EQ(strlen(body), limit);
    free(body);
    AW_CHECK_INT_EQ(aw_payload_build_import(in, N, "L", 0, limit - 1, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 2);
    free(body);
    AW_CHECK_INT_EQ(aw_payload_build_import(in, N, "L", 0, wrapper + item - 1, &body, &used),
                    AW_ERR_INVALID);
    AW_CHECK_INT_EQ(used, 0);

    /* by bytes at the real 5 MB: big profiles fill a batch to just under the maximum */
    char *big = aw_malloc(90002);
    big[0] = '"';
    memset(big + 1, 'x', 90000 - 2);
    big[90000 - 1] = '"';
    big[90000] = '\0';
    for (size_t i = 0; i < 100; i++)
        aw_test_attr(&cs[i], "properties.blob", big);
    AW_CHECK_INT_EQ(aw_payload_build_import(in, 100, "L", 0, 0, &body, &used), AW_OK);
    AW_CHECK(used > 0 && used < 100);
    AW_CHECK(strlen(body) <= AW_PAYLOAD_IMPORT_MAX_BYTES);
    AW_CHECK(strlen(body) + 90100 > AW_PAYLOAD_IMPORT_MAX_BYTES); /* one more would not fit */
    size_t first = used;
    free(body);
    AW_CHECK_INT_EQ(aw_payload_build_import(in + first, 100 - first, "L", 0, 0, &body, &used),
                    AW_OK);
    AW_CHECK_INT_EQ(first + used, 100);
    free(body);
    /* one profile over the per-profile 100 KB limit is refused on its own */
    big = aw_realloc(big, 100102);
    memset(big + 1, 'y', 100100 - 2);
    big[100100 - 1] = '"';
    big[100100] = '\0';
    aw_test_attr(&cs[200], "properties.huge", big);
    AW_CHECK_INT_EQ(aw_payload_build_import(in + 200, 1, "L", 0, 0, &body, &used), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_payload_build_import(in + 199, 2, "L", 0, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 1);
    free(body);
    free(big);

    for (size_t i = 0; i < N; i++)
        aw_change_clear(&cs[i]);
    free(cs);
    free(in);
}

static void test_subscriptions(void)
{
    struct aw_change a, b, c, d;
    base(&a, "a@x.io");
    a.phone_e164 = aw_strdup("+15005550006");
    aw_test_consent(&a, AW_CHANNEL_EMAIL, true, 1700000000123ull);
    aw_test_consent(&a, AW_CHANNEL_SMS, true, 0); /* no timestamp: the change's version is used */
    a.custom_source = aw_strdup("src \"1\"");
    base(&b, "b@x.io");
    aw_test_consent(&b, AW_CHANNEL_EMAIL, true, 86400000ull);
    aw_test_consent(&b, AW_CHANNEL_SMS, true, 1); /* no phone: the SMS part is not sendable */
    b.custom_source = aw_strdup("src \"1\"");
    base(&c, "c@x.io");
    aw_test_consent(&c, AW_CHANNEL_EMAIL, true, 5);
    c.custom_source = aw_strdup("other"); /* another job */
    base(&d, "d@x.io");
    d.phone_e164 = aw_strdup("+15005550007");
    aw_test_consent(&d, AW_CHANNEL_EMAIL, false, 0);
    aw_test_consent(&d, AW_CHANNEL_SMS, false, 0);

    AW_CHECK(aw_payload_has_subscribe(&a) && !aw_payload_has_unsubscribe(&a));
    AW_CHECK(aw_payload_has_unsubscribe(&d) && !aw_payload_has_subscribe(&d));

    const struct aw_change *in[4] = {&a, &b, &c, &d};
    char *body = NULL;
    size_t used = 0;
    AW_CHECK_INT_EQ(aw_payload_build_subscribe(in, 4, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 2); /* stops at the change with another custom_source */
    AW_CHECK_STR_EQ(
        body,
        "{\"data\":{\"type\":\"profile-subscription-bulk-create-job\",\"attributes\":{"
        "\"custom_source\":\"src \\\"1\\\"\",\"historical_import\":true,\"profiles\":{\"data\":["
        "{\"type\":\"profile\",\"attributes\":{\"email\":\"a@x.io\",\"phone_number\":"
        "\"+15005550006\",\"subscriptions\":{\"email\":{\"marketing\":{\"consent\":\"SUBSCRIBED\","
        "\"consented_at\":\"2023-11-14T22:13:20.123Z\"}},\"sms\":{\"marketing\":{\"consent\":"
        "\"SUBSCRIBED\",\"consented_at\":\"1970-01-01T00:00:01.000Z\"}}}}},"
        "{\"type\":\"profile\",\"attributes\":{\"email\":\"b@x.io\",\"subscriptions\":{\"email\":"
        "{\"marketing\":{\"consent\":\"SUBSCRIBED\",\"consented_at\":"
        "\"1970-01-02T00:00:00.000Z\"}}}}}]}}}}");
    AW_CHECK(strstr(body, "relationships") == NULL);
    free(body);
    AW_CHECK_INT_EQ(aw_payload_build_subscribe(in + 2, 1, 0, &body, &used), AW_OK);
    AW_CHECK(strstr(body, "\"custom_source\":\"other\"") != NULL);
    free(body);
    /* NULL custom_source: member omitted */
    free(c.custom_source);
    c.custom_source = NULL;
    AW_CHECK_INT_EQ(aw_payload_build_subscribe(in + 2, 1, 0, &body, &used), AW_OK);
    AW_CHECK(strstr(body, "custom_source") == NULL);
    free(body);
    /* a change with nothing to subscribe is refused when first */
    AW_CHECK_INT_EQ(aw_payload_build_subscribe(in + 3, 1, 0, &body, &used), AW_ERR_INVALID);

    AW_CHECK_INT_EQ(aw_payload_build_unsubscribe(in + 3, 1, 0, &body, &used), AW_OK);
    AW_CHECK_STR_EQ(
        body,
        "{\"data\":{\"type\":\"profile-subscription-bulk-delete-job\",\"attributes\":{"
        "\"profiles\":{\"data\":[{\"type\":\"profile\",\"attributes\":{\"email\":\"d@x.io\","
        "\"phone_number\":\"+15005550007\",\"subscriptions\":{\"email\":{\"marketing\":{"
        "\"consent\":\"UNSUBSCRIBED\"}},\"sms\":{\"marketing\":{\"consent\":\"UNSUBSCRIBED\"}}}}}"
        "]}}}}");
    free(body);
    AW_CHECK_INT_EQ(aw_payload_build_unsubscribe(in, 1, 0, &body, &used), AW_ERR_INVALID);

    /* count limits: subscribe 1000, unsubscribe 100 */
    enum { M = 1200 };
    const struct aw_change **many = aw_calloc(M, sizeof *many);
    for (size_t i = 0; i < M; i++)
        many[i] = &d;
    AW_CHECK_INT_EQ(aw_payload_build_unsubscribe(many, M, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, AW_PAYLOAD_UNSUBSCRIBE_MAX_PROFILES);
    free(body);
    for (size_t i = 0; i < M; i++)
        many[i] = &b;
    AW_CHECK_INT_EQ(aw_payload_build_subscribe(many, M, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, AW_PAYLOAD_SUBSCRIBE_MAX_PROFILES);
    free(body);
    AW_CHECK_INT_EQ(aw_payload_build_subscribe(many, M, 3, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 3);
    free(body);
    free(many);
    aw_change_clear(&a);
    aw_change_clear(&b);
    aw_change_clear(&c);
    aw_change_clear(&d);
}

static void test_lists_and_filters(void)
{
    const char *ids[3] = {"P1", "P\"2", "P3"};
    char *body = NULL;
    size_t used = 0;
    AW_CHECK_INT_EQ(aw_payload_build_list_members(ids, 3, 2, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 2);
    AW_CHECK_STR_EQ(body, "{\"data\":[{\"type\":\"profile\",\"id\":\"P1\"},{\"type\":\"profile\","
                          "\"id\":\"P\\\"2\"}]}");
    free(body);
    const char *bad_ids[2] = {"", "P"};
    AW_CHECK_INT_EQ(aw_payload_build_list_members(bad_ids, 2, 0, &body, &used), AW_ERR_INVALID);
    const char **many = aw_calloc(1500, sizeof *many);
    for (size_t i = 0; i < 1500; i++)
        many[i] = "P";
    AW_CHECK_INT_EQ(aw_payload_build_list_members(many, 1500, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, AW_PAYLOAD_LIST_MEMBERS_MAX);
    free(body);

    AW_CHECK_INT_EQ(aw_payload_build_create_list("My \"List\" \\ 1", &body), AW_OK);
    AW_CHECK_STR_EQ(body, "{\"data\":{\"type\":\"list\",\"attributes\":{\"name\":"
                          "\"My \\\"List\\\" \\\\ 1\"}}}");
    free(body);
    AW_CHECK_INT_EQ(aw_payload_build_create_list("", &body), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_payload_build_create_list("bad\xc3", &body), AW_ERR_INVALID);

    /* filters: " and \ escaped, ' and , kept inside the double quotes */
    const char *emails[4] = {"a@x.io", "o'neil,jr@x.io", "q\"uote@x.io", "back\\slash@x.io"};
    AW_CHECK_INT_EQ(aw_payload_build_email_filter(emails, 4, 0, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 4);
    AW_CHECK_STR_EQ(body, "any(email,[\"a@x.io\",\"o'neil,jr@x.io\",\"q\\\"uote@x.io\","
                          "\"back\\\\slash@x.io\"])");
    size_t full = strlen(body);
    free(body);
    AW_CHECK_INT_EQ(aw_payload_build_email_filter(emails, 4, 0, full - 1, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 3);
    AW_CHECK_STR_EQ(body, "any(email,[\"a@x.io\",\"o'neil,jr@x.io\",\"q\\\"uote@x.io\"])");
    free(body);
    for (size_t i = 0; i < 1500; i++)
        many[i] = "a@x.io";
    AW_CHECK_INT_EQ(aw_payload_build_email_filter(many, 1500, 0, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, AW_PAYLOAD_FILTER_MAX_VALUES);
    free(body);
    free(many);
    const char *ctl[1] = {"a\nb@x.io"};
    AW_CHECK_INT_EQ(aw_payload_build_email_filter(ctl, 1, 0, 0, &body, &used), AW_ERR_INVALID);

    AW_CHECK_INT_EQ(aw_payload_build_list_name_filter("VIP \"gold\", o'k \\", &body), AW_OK);
    AW_CHECK_STR_EQ(body, "equals(name,\"VIP \\\"gold\\\", o'k \\\\\")");
    free(body);
    AW_CHECK_INT_EQ(aw_payload_build_list_name_filter(NULL, &body), AW_ERR_INVALID);
}

static void test_parse_import_job(void)
{
    const char *doc =
        "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":\"JOB1\",\"attributes\":{"
        "\"status\":\"complete\",\"created_at\":\"2026-07-20T10:00:00+00:00\",\"total_count\":"
        "10000,\"completed_count\":9998,\"failed_count\":2,\"completed_at\":null,\"expires_at\":"
        "\"2026-08-20T10:00:00+00:00\",\"started_at\":\"2026-07-20T10:00:01+00:00\"},"
        "\"relationships\":{\"lists\":{\"data\":[{\"type\":\"list\",\"id\":\"L1\"}],\"links\":{"
        "\"self\":\"https://a.klaviyo.com/s\",\"related\":\"https://a.klaviyo.com/r\"}}},"
        "\"links\":{\"self\":\"https://a.klaviyo.com/api/profile-bulk-import-jobs/JOB1/\"}},"
        "\"links\":{\"self\":\"https://a.klaviyo.com/api/profile-bulk-import-jobs/JOB1/\"}}";
    struct aw_payload_import_job job;
    AW_CHECK_INT_EQ(aw_payload_parse_import_job(doc, strlen(doc), &job), AW_OK);
    AW_CHECK_STR_EQ(job.id, "JOB1");
    AW_CHECK_INT_EQ(job.status, AW_PAYLOAD_JOB_COMPLETE);
    AW_CHECK(aw_payload_job_is_done(job.status));
    AW_CHECK_INT_EQ(job.total_count, 10000);
    AW_CHECK_INT_EQ(job.completed_count, 9998);
    AW_CHECK_INT_EQ(job.failed_count, 2);
    aw_payload_import_job_clear(&job);

    const char *queued = "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":\"J\","
                         "\"attributes\":{\"status\":\"queued\",\"total_count\":3,"
                         "\"completed_count\":null}}}";
    AW_CHECK_INT_EQ(aw_payload_parse_import_job(queued, strlen(queued), &job), AW_OK);
    AW_CHECK(job.status == AW_PAYLOAD_JOB_QUEUED && !aw_payload_job_is_done(job.status));
    AW_CHECK(job.completed_count == 0 && job.failed_count == 0);
    AW_CHECK_STR_EQ(aw_payload_job_status_str(job.status), "queued");
    aw_payload_import_job_clear(&job);

    static const char *const bad[] = {
        "",
        "[]",
        "{\"data\":null}",
        "{\"data\":{\"type\":\"list\",\"id\":\"J\",\"attributes\":{\"status\":\"queued\",\"total_"
        "count\":1}}}",
        "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":\"J\",\"attributes\":{\"status\":"
        "\"weird\",\"total_count\":1}}}",
        "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":\"J\",\"attributes\":{\"status\":"
        "\"queued\"}}}",
        "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":\"J\",\"attributes\":{\"status\":"
        "\"queued\",\"total_count\":-1}}}",
        "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":7,\"attributes\":{\"status\":"
        "\"queued\",\"total_count\":1}}}",
        "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":\"J\\u0000K\",\"attributes\":{"
        "\"status\":\"queued\",\"total_count\":1}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        AW_CHECK_MSG(aw_payload_parse_import_job(bad[i], strlen(bad[i]), &job) == AW_ERR_PROTOCOL,
                     "case %zu", i);
        AW_CHECK(job.id == NULL);
    }
}

static void test_parse_errors(void)
{
    const char *page =
        "{\"data\":[{\"type\":\"import-error\",\"id\":\"e1\",\"attributes\":{\"code\":\"invalid\","
        "\"title\":\"Invalid input\",\"detail\":\"bad phone\",\"source\":{\"pointer\":"
        "\"/data/attributes/profiles/data/17/attributes/phone_number\"},\"original_payload\":{"
        "\"type\":\"profile\",\"attributes\":{\"email\":\"x@y.io\"}}}},"
        "{\"type\":\"import-error\",\"id\":\"e2\",\"attributes\":{\"code\":\"invalid\",\"title\":"
        "\"T\",\"detail\":\"D\",\"source\":{\"pointer\":\"/data\"},\"original_payload\":null}}],"
        "\"links\":{\"self\":\"https://a.klaviyo.com/api/profile-bulk-import-jobs/J/import-errors/"
        "\","
        "\"next\":\"https://a.klaviyo.com/api/profile-bulk-import-jobs/J/import-errors/"
        "?page%5Bsize%5D=100&page%5Bcursor%5D=bmV4dA%3D%3D\"}}";
    struct aw_payload_errors errs;
    AW_CHECK_INT_EQ(aw_payload_parse_import_errors(page, strlen(page), &errs), AW_OK);
    AW_CHECK_INT_EQ(errs.n, 2);
    if (errs.n == 2) {
        AW_CHECK_STR_EQ(errs.items[0].id, "e1");
        AW_CHECK_STR_EQ(errs.items[0].code, "invalid");
        AW_CHECK_STR_EQ(errs.items[0].title, "Invalid input");
        AW_CHECK(errs.items[0].has_index && errs.items[0].index == 17);
        AW_CHECK_STR_EQ(errs.items[0].email, "x@y.io");
        AW_CHECK(!errs.items[1].has_index && errs.items[1].email == NULL);
    }
    AW_CHECK_STR_EQ(errs.next_cursor, "bmV4dA==");
    aw_payload_errors_clear(&errs);
    const char *last = "{\"data\":[],\"links\":{\"self\":\"s\",\"next\":null}}";
    AW_CHECK_INT_EQ(aw_payload_parse_import_errors(last, strlen(last), &errs), AW_OK);
    AW_CHECK(errs.n == 0 && errs.next_cursor == NULL);
    aw_payload_errors_clear(&errs);

    const char *doc =
        "{\"errors\":[{\"id\":\"7b1c\",\"status\":400,\"code\":\"invalid\",\"title\":\"Invalid "
        "input.\",\"detail\":\"The email is invalid\",\"source\":{\"pointer\":"
        "\"/data/attributes/profiles/data/3/attributes/email\"}},{\"id\":\"8c\",\"status\":\"429\","
        "\"code\":\"throttled\",\"title\":\"Request was throttled.\",\"detail\":\"x\"},"
        "{\"id\":\"9\",\"code\":\"c\",\"title\":\"t\",\"detail\":\"d\",\"source\":{\"pointer\":"
        "\"/data/12/id\"}}]}";
    AW_CHECK_INT_EQ(aw_payload_parse_error_doc(doc, strlen(doc), &errs), AW_OK);
    AW_CHECK_INT_EQ(errs.n, 3);
    if (errs.n == 3) {
        AW_CHECK_STR_EQ(errs.items[0].id, "7b1c");
        AW_CHECK_INT_EQ(errs.items[0].status, 400);
        AW_CHECK_STR_EQ(errs.items[0].code, "invalid");
        AW_CHECK_STR_EQ(errs.items[0].detail, "The email is invalid");
        AW_CHECK_STR_EQ(errs.items[0].pointer, "/data/attributes/profiles/data/3/attributes/email");
        AW_CHECK(errs.items[0].has_index && errs.items[0].index == 3);
        AW_CHECK_INT_EQ(errs.items[1].status, 429);
        AW_CHECK(errs.items[1].pointer == NULL && !errs.items[1].has_index);
        AW_CHECK(errs.items[2].has_index && errs.items[2].index == 12);
        AW_CHECK_INT_EQ(errs.items[2].status, 0);
    }
    aw_payload_errors_clear(&errs);
    static const char *const bad[] = {"{}",
                                      "{\"errors\":{}}",
                                      "{\"errors\":[1]}",
                                      "{\"errors\":[{\"id\":1}]}",
                                      "not json",
                                      "{\"errors\":[{\"source\":\"x\"}]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        AW_CHECK_MSG(aw_payload_parse_error_doc(bad[i], strlen(bad[i]), &errs) == AW_ERR_PROTOCOL,
                     "case %zu", i);
        AW_CHECK(errs.items == NULL && errs.n == 0);
    }

    size_t idx = 0;
    AW_CHECK(aw_payload_pointer_index("/data/attributes/profiles/data/0", &idx) && idx == 0);
    AW_CHECK(!aw_payload_pointer_index("/data/attributes/profiles/data/01", &idx));
    AW_CHECK(!aw_payload_pointer_index("/data/attributes/profiles/data/x", &idx));
    AW_CHECK(!aw_payload_pointer_index("/data/attributes/profiles/data/2x", &idx));
    AW_CHECK(!aw_payload_pointer_index("/data/attributes", &idx));
    AW_CHECK(!aw_payload_pointer_index("/data/99999999999999999999999", &idx));
    AW_CHECK(!aw_payload_pointer_index(NULL, &idx));
}

static void test_parse_pages(void)
{
    const char *profiles =
        "{\"data\":[{\"type\":\"profile\",\"id\":\"01P1\",\"attributes\":{\"email\":\"a@x.io\","
        "\"phone_number\":null,\"properties\":{}},\"links\":{\"self\":\"s\"}},"
        "{\"type\":\"profile\",\"id\":\"01P2\",\"attributes\":{\"email\":null}}],"
        "\"links\":{\"self\":\"s\",\"next\":\"https://a.klaviyo.com/api/profiles/"
        "?filter=x&page[cursor]=abc%2Bdef\","
        "\"prev\":null}}";
    struct aw_payload_page page;
    AW_CHECK_INT_EQ(aw_payload_parse_profiles_page(profiles, strlen(profiles), &page), AW_OK);
    AW_CHECK_INT_EQ(page.n, 2);
    if (page.n == 2) {
        AW_CHECK_STR_EQ(page.items[0].id, "01P1");
        AW_CHECK_STR_EQ(page.items[0].value, "a@x.io");
        AW_CHECK_STR_EQ(page.items[1].id, "01P2");
        AW_CHECK(page.items[1].value == NULL);
    }
    AW_CHECK_STR_EQ(page.next_cursor, "abc+def");
    aw_payload_page_clear(&page);

    const char *lists =
        "{\"data\":[{\"type\":\"list\",\"id\":\"Y6nRLr\",\"attributes\":{\"name\":"
        "\"Newsletter\",\"created\":\"2022-11-08T00:00:00+00:00\",\"opt_in_process\":"
        "\"single_opt_in\"}}],\"links\":{\"self\":\"s\"}}";
    AW_CHECK_INT_EQ(aw_payload_parse_lists_page(lists, strlen(lists), &page), AW_OK);
    AW_CHECK(page.n == 1 && page.next_cursor == NULL);
    if (page.n == 1) {
        AW_CHECK_STR_EQ(page.items[0].id, "Y6nRLr");
        AW_CHECK_STR_EQ(page.items[0].value, "Newsletter");
    }
    aw_payload_page_clear(&page);
    /* a profile page is not a list page */
    AW_CHECK_INT_EQ(aw_payload_parse_lists_page(profiles, strlen(profiles), &page),
                    AW_ERR_PROTOCOL);
    AW_CHECK(page.items == NULL && page.n == 0);
    const char *noid = "{\"data\":[{\"type\":\"list\",\"attributes\":{}}]}";
    AW_CHECK_INT_EQ(aw_payload_parse_lists_page(noid, strlen(noid), &page), AW_ERR_PROTOCOL);
    const char *badname =
        "{\"data\":[{\"type\":\"list\",\"id\":\"L\",\"attributes\":{\"name\":5}}]}";
    AW_CHECK_INT_EQ(aw_payload_parse_lists_page(badname, strlen(badname), &page), AW_ERR_PROTOCOL);

    char *id = NULL;
    const char *created = "{\"data\":{\"type\":\"list\",\"id\":\"NEWID\",\"attributes\":{\"name\":"
                          "\"N\"},\"links\":{\"self\":\"s\"}},\"links\":{\"self\":\"s\"}}";
    AW_CHECK_INT_EQ(aw_payload_parse_resource_id(created, strlen(created), "list", &id), AW_OK);
    AW_CHECK_STR_EQ(id, "NEWID");
    free(id);
    AW_CHECK_INT_EQ(aw_payload_parse_resource_id(created, strlen(created), "profile", &id),
                    AW_ERR_PROTOCOL);
    AW_CHECK(id == NULL);
    /* length is honoured: a truncated document is refused */
    AW_CHECK_INT_EQ(aw_payload_parse_resource_id(created, 20, "list", &id), AW_ERR_PROTOCOL);

    char *cur = aw_payload_cursor_from_url("https://h/api/lists/?page%5bcursor%5d=a%20b#frag");
    AW_CHECK_STR_EQ(cur, "a b");
    free(cur);
    AW_CHECK(aw_payload_cursor_from_url("https://h/api/lists/?page[size]=10") == NULL);
    AW_CHECK(aw_payload_cursor_from_url("https://h/api/lists/?page[cursor]=%zz") == NULL);
    AW_CHECK(aw_payload_cursor_from_url("https://h/api/lists/?page[cursor]=a%00") == NULL);
    AW_CHECK(aw_payload_cursor_from_url("https://h/api/lists/?page[cursor]=%4") == NULL);
    AW_CHECK(aw_payload_cursor_from_url("https://h/api/lists/") == NULL);
}

int main(void)
{
    test_import_exact();
    test_import_invalid_items();
    test_import_limits();
    test_subscriptions();
    test_lists_and_filters();
    test_parse_import_job();
    test_parse_errors();
    test_parse_pages();
    return aw_test_done();
}
