/* test_build.c -- Klaviyo request bodies and filter strings (worker/klaviyo/build.c).
 * Schema validity of every body kind is proven by test_payload_openapi.py; here: exact bytes,
 * escaping, unsets, batch limits by count and by bytes. Parsers: test_parse.c. */
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "tests/change_builder.h"
#include "tests/harness.h"
#include "worker/klaviyo/api.h"
#include "worker/klaviyo/build.h"
#include "worker/store/change.h"

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
    AW_CHECK_INT_EQ(aw_build_import(in, 2, "L1", 0, 0, &body, &used), AW_OK);
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

    AW_CHECK_INT_EQ(aw_build_import(in + 1, 1, NULL, 0, 0, &body, &used), AW_OK);
    AW_CHECK_STR_EQ(body, IMPORT_PREFIX "{\"type\":\"profile\",\"attributes\":{\"email\":"
                                        "\"b@x.io\"}}]}}}}");
    free(body);

    /* field clears go through profile-import with nulls, nothing else */
    AW_CHECK(aw_build_needs_profile_import(&a));
    AW_CHECK(!aw_build_needs_profile_import(&b));
    AW_CHECK_INT_EQ(aw_build_profile_import(&a, &body), AW_OK);
    AW_CHECK_STR_EQ(body, "{\"data\":{\"type\":\"profile\",\"attributes\":{\"email\":"
                          "\"a\\\"q@x.io\",\"last_name\":null}}}");
    free(body);
    AW_CHECK_INT_EQ(aw_build_profile_import(&b, &body), AW_ERR_INVALID);
    AW_CHECK(body == NULL);
    aw_change_clear(&a);
    aw_change_clear(&b);
}

/* Reals: 15 significant digits when they reproduce the value, else 17; one body has one
 * precision, and the byte limits stay exact across the switch. */
static void test_import_numbers(void)
{
    struct aw_change typed, computed;
    base(&typed, "t@x.io");
    aw_test_attr(&typed, "location.latitude", "50.94");
    aw_test_attr(&typed, "properties.n", "12.5");
    base(&computed, "c@x.io");
    aw_test_attr(&computed, "properties.n", "0.30000000000000004"); /* 0.1 + 0.2 */
    const struct aw_change *in[2] = {&typed, &computed};
    char *body = NULL;
    size_t used = 0;
    AW_CHECK_INT_EQ(aw_build_import(in, 1, NULL, 0, 0, &body, &used), AW_OK);
    AW_CHECK(body && strstr(body, "\"latitude\":50.94}") && strstr(body, "\"n\":12.5}"));
    free(body);
    AW_CHECK_INT_EQ(aw_build_import(in + 1, 1, NULL, 0, 0, &body, &used), AW_OK);
    AW_CHECK(body && strstr(body, "\"n\":0.30000000000000004}"));
    free(body);
    /* both in one body: 17 digits for every real, still the same numbers */
    AW_CHECK_INT_EQ(aw_build_import(in, 2, NULL, 0, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 2);
    AW_CHECK(body && strstr(body, "0.30000000000000004") && !strstr(body, "50.94}"));
    size_t both = body ? strlen(body) : 0;
    free(body);
    /* the limit that holds both exactly keeps both; one byte less keeps the first, short */
    AW_CHECK_INT_EQ(aw_build_import(in, 2, NULL, 0, both, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 2);
    AW_CHECK_INT_EQ(body ? strlen(body) : 0, both);
    free(body);
    AW_CHECK_INT_EQ(aw_build_import(in, 2, NULL, 0, both - 1, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 1);
    AW_CHECK(body && strstr(body, "\"latitude\":50.94}"));
    free(body);
    aw_change_clear(&typed);
    aw_change_clear(&computed);
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
    AW_CHECK_INT_EQ(aw_build_import(in, 3, NULL, 0, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 1);
    free(body);
    /* ... which then fails alone, to be dead-lettered */
    AW_CHECK_INT_EQ(aw_build_import(in + 1, 2, NULL, 0, 0, &body, &used), AW_ERR_INVALID);
    AW_CHECK(body == NULL && used == 0);
    const struct aw_change *in2[1] = {&notjson};
    AW_CHECK_INT_EQ(aw_build_import(in2, 1, NULL, 0, 0, &body, &used), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_build_import(in, 0, NULL, 0, 0, &body, &used), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_build_import(in, 1, "", 0, 0, &body, &used), AW_ERR_INVALID);
    aw_change_clear(&good);
    aw_change_clear(&unknown);
    aw_change_clear(&notjson);
}

static void test_import_limits(void)
{
    const struct aw_api_op *op = aw_api_get(AW_API_IMPORT_CREATE);
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
    AW_CHECK_INT_EQ(aw_build_import(in, N, "L", 0, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, op->max_items);
    AW_CHECK(body && strlen(body) <= op->budget_bytes);
    free(body);
    /* caller count below it; larger requests clamp */
    AW_CHECK_INT_EQ(aw_build_import(in, N, "L", 7, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 7);
    free(body);
    AW_CHECK_INT_EQ(aw_build_import(in, N, "L", 20000, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, op->max_items);
    free(body);

    /* by bytes: each profile here is exactly 74 bytes, the wrapper with list "L" 136 */
    const char *one = "{\"type\":\"profile\",\"attributes\":{\"email\":\"user00000@example.com\"}}";
    size_t item = strlen(one);
    AW_CHECK_INT_EQ(aw_build_import(in, 1, "L", 0, 0, &body, &used), AW_OK);
    size_t wrapper = strlen(body) - item;
    free(body);
    size_t limit = wrapper + 3 * item + 2; /* 3 items + 2 commas: fits exactly */
    AW_CHECK_INT_EQ(aw_build_import(in, N, "L", 0, limit, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 3);
    AW_CHECK_INT_EQ(strlen(body), limit);
    free(body);
    AW_CHECK_INT_EQ(aw_build_import(in, N, "L", 0, limit - 1, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 2);
    free(body);
    AW_CHECK_INT_EQ(aw_build_import(in, N, "L", 0, wrapper + item - 1, &body, &used),
                    AW_ERR_INVALID);
    AW_CHECK_INT_EQ(used, 0);

    /* by bytes at the real 5 MB: big profiles fill a batch to just under the budget, which
     * keeps a margin under the spec's maximum */
    AW_CHECK(op->budget_bytes < op->max_bytes);
    char *big = aw_malloc(90002);
    big[0] = '"';
    memset(big + 1, 'x', 90000 - 2);
    big[90000 - 1] = '"';
    big[90000] = '\0';
    for (size_t i = 0; i < 100; i++)
        aw_test_attr(&cs[i], "properties.blob", big);
    AW_CHECK_INT_EQ(aw_build_import(in, 100, "L", 0, 0, &body, &used), AW_OK);
    AW_CHECK(used > 0 && used < 100);
    AW_CHECK(strlen(body) <= op->budget_bytes);
    AW_CHECK(strlen(body) + 90100 > op->budget_bytes); /* one more would not fit */
    size_t first = used;
    free(body);
    /* the rest drains in further full batches, every one under the budget */
    size_t done = first, batches = 1;
    while (done < 100 && batches < 10) {
        AW_CHECK_INT_EQ(aw_build_import(in + done, 100 - done, "L", 0, 0, &body, &used), AW_OK);
        AW_CHECK(used > 0 && body && strlen(body) <= op->budget_bytes);
        AW_CHECK(done + used == 100 || used == first); /* same-sized profiles: same count */
        done += used ? used : 100;
        batches++;
        free(body);
    }
    AW_CHECK_INT_EQ(done, 100);
    AW_CHECK_INT_EQ(batches, (100 + first - 1) / first);
    /* one profile over the per-profile 100 KB limit is refused on its own */
    big = aw_realloc(big, 100102);
    memset(big + 1, 'y', 100100 - 2);
    big[100100 - 1] = '"';
    big[100100] = '\0';
    aw_test_attr(&cs[200], "properties.huge", big);
    AW_CHECK_INT_EQ(aw_build_import(in + 200, 1, "L", 0, 0, &body, &used), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_build_import(in + 199, 2, "L", 0, 0, &body, &used), AW_OK);
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

    AW_CHECK(aw_build_has_subscribe(&a) && !aw_build_has_unsubscribe(&a));
    AW_CHECK(aw_build_has_unsubscribe(&d) && !aw_build_has_subscribe(&d));

    const struct aw_change *in[4] = {&a, &b, &c, &d};
    char *body = NULL;
    size_t used = 0;
    AW_CHECK_INT_EQ(aw_build_subscribe(in, 4, 0, &body, &used), AW_OK);
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
    AW_CHECK_INT_EQ(aw_build_subscribe(in + 2, 1, 0, &body, &used), AW_OK);
    AW_CHECK(strstr(body, "\"custom_source\":\"other\"") != NULL);
    free(body);
    /* NULL custom_source: member omitted */
    free(c.custom_source);
    c.custom_source = NULL;
    AW_CHECK_INT_EQ(aw_build_subscribe(in + 2, 1, 0, &body, &used), AW_OK);
    AW_CHECK(strstr(body, "custom_source") == NULL);
    free(body);
    /* a change with nothing to subscribe is refused when first */
    AW_CHECK_INT_EQ(aw_build_subscribe(in + 3, 1, 0, &body, &used), AW_ERR_INVALID);

    AW_CHECK_INT_EQ(aw_build_unsubscribe(in + 3, 1, 0, &body, &used), AW_OK);
    AW_CHECK_STR_EQ(
        body,
        "{\"data\":{\"type\":\"profile-subscription-bulk-delete-job\",\"attributes\":{"
        "\"profiles\":{\"data\":[{\"type\":\"profile\",\"attributes\":{\"email\":\"d@x.io\","
        "\"phone_number\":\"+15005550007\",\"subscriptions\":{\"email\":{\"marketing\":{"
        "\"consent\":\"UNSUBSCRIBED\"}},\"sms\":{\"marketing\":{\"consent\":\"UNSUBSCRIBED\"}}}}}"
        "]}}}}");
    free(body);
    AW_CHECK_INT_EQ(aw_build_unsubscribe(in, 1, 0, &body, &used), AW_ERR_INVALID);

    /* count limits: subscribe 1000, unsubscribe 100 */
    enum { M = 1200 };
    const struct aw_change **many = aw_calloc(M, sizeof *many);
    for (size_t i = 0; i < M; i++)
        many[i] = &d;
    AW_CHECK_INT_EQ(aw_build_unsubscribe(many, M, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, aw_api_get(AW_API_UNSUBSCRIBE)->max_items);
    free(body);
    for (size_t i = 0; i < M; i++)
        many[i] = &b;
    AW_CHECK_INT_EQ(aw_build_subscribe(many, M, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, aw_api_get(AW_API_SUBSCRIBE)->max_items);
    free(body);
    AW_CHECK_INT_EQ(aw_build_subscribe(many, M, 3, &body, &used), AW_OK);
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
    AW_CHECK_INT_EQ(aw_build_list_members(ids, 3, 2, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 2);
    AW_CHECK_STR_EQ(body, "{\"data\":[{\"type\":\"profile\",\"id\":\"P1\"},{\"type\":\"profile\","
                          "\"id\":\"P\\\"2\"}]}");
    free(body);
    const char *bad_ids[2] = {"", "P"};
    AW_CHECK_INT_EQ(aw_build_list_members(bad_ids, 2, 0, &body, &used), AW_ERR_INVALID);
    const char **many = aw_calloc(1500, sizeof *many);
    for (size_t i = 0; i < 1500; i++)
        many[i] = "P";
    AW_CHECK_INT_EQ(aw_build_list_members(many, 1500, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, aw_api_get(AW_API_LIST_REMOVE_PROFILES)->max_items);
    free(body);

    AW_CHECK_INT_EQ(aw_build_create_list("My \"List\" \\ 1", &body), AW_OK);
    AW_CHECK_STR_EQ(body, "{\"data\":{\"type\":\"list\",\"attributes\":{\"name\":"
                          "\"My \\\"List\\\" \\\\ 1\"}}}");
    free(body);
    AW_CHECK_INT_EQ(aw_build_create_list("", &body), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_build_create_list("bad\xc3", &body), AW_ERR_INVALID);

    /* filters: " and \ escaped, ' and , kept inside the double quotes */
    const char *emails[4] = {"a@x.io", "o'neil,jr@x.io", "q\"uote@x.io", "back\\slash@x.io"};
    AW_CHECK_INT_EQ(aw_build_email_filter(emails, 4, 0, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 4);
    AW_CHECK_STR_EQ(body, "any(email,[\"a@x.io\",\"o'neil,jr@x.io\",\"q\\\"uote@x.io\","
                          "\"back\\\\slash@x.io\"])");
    size_t full = strlen(body);
    free(body);
    AW_CHECK_INT_EQ(aw_build_email_filter(emails, 4, 0, full - 1, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, 3);
    AW_CHECK_STR_EQ(body, "any(email,[\"a@x.io\",\"o'neil,jr@x.io\",\"q\\\"uote@x.io\"])");
    free(body);
    for (size_t i = 0; i < 1500; i++)
        many[i] = "a@x.io";
    AW_CHECK_INT_EQ(aw_build_email_filter(many, 1500, 0, 0, &body, &used), AW_OK);
    AW_CHECK_INT_EQ(used, aw_api_get(AW_API_GET_PROFILES)->filter_max_values);
    free(body);
    free(many);
    const char *ctl[1] = {"a\nb@x.io"};
    AW_CHECK_INT_EQ(aw_build_email_filter(ctl, 1, 0, 0, &body, &used), AW_ERR_INVALID);

    AW_CHECK_INT_EQ(aw_build_list_name_filter("VIP \"gold\", o'k \\", &body), AW_OK);
    AW_CHECK_STR_EQ(body, "equals(name,\"VIP \\\"gold\\\", o'k \\\\\")");
    free(body);
    AW_CHECK_INT_EQ(aw_build_list_name_filter(NULL, &body), AW_ERR_INVALID);
}

int main(void)
{
    test_import_exact();
    test_import_numbers();
    test_import_invalid_items();
    test_import_limits();
    test_subscriptions();
    test_lists_and_filters();
    return aw_test_done();
}
