/* test_change.c -- struct aw_change helpers and the pending-store codec (worker/change.c). */
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "tests/harness.h"
#include "worker/store/change.h"

static void set_attr(struct aw_change_attr *a, const char *path, const char *value_json)
{
    a->path = aw_strdup(path);
    a->value_json = value_json ? aw_strdup(value_json) : NULL;
}

/* A change using every field, with strings that need escaping. */
static void make_full(struct aw_change *c)
{
    memset(c, 0, sizeof *c);
    c->account_id = aw_strdup("12345");
    c->audience_id = aw_strdup("678");
    c->audience_name = aw_strdup("VIP \"gold\" \\ list / é");
    c->list_id = aw_strdup("Y6nRLr");
    c->event_id = aw_strdup("ev-ABC");
    c->version_ms = 18446744073709551615ull; /* UINT64_MAX survives: it travels as a string */
    c->action = AW_CHANGE_ADD;
    c->email = aw_strdup("o'hara,\"x\"@example.com");
    c->phone_e164 = aw_strdup("+14155550100");
    c->external_id = aw_strdup("cust-1");
    c->n_attrs = 4;
    c->attrs = aw_calloc(4, sizeof *c->attrs);
    set_attr(&c->attrs[0], "first_name", "\"Ann\\n\\u00e9\"");
    set_attr(&c->attrs[1], "location.country", "\"DE\"");
    set_attr(&c->attrs[2], "properties.a.b", "[1,2.5,{\"k\":null}]");
    set_attr(&c->attrs[3], "properties.gone", NULL);
    c->n_consents = 2;
    c->consents = aw_calloc(2, sizeof *c->consents);
    c->consents[0] = (struct aw_change_consent){AW_CHANNEL_EMAIL, true, true, 1700000000123ull};
    c->consents[1] = (struct aw_change_consent){AW_CHANNEL_SMS, false, false, 0};
    c->custom_source = aw_strdup("web\tform");
    c->drops = AW_CHANGE_DROP_INVALID_PHONE | AW_CHANGE_DROP_SMS_NO_PHONE;
}

static int streq_null(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static int changes_equal(const struct aw_change *a, const struct aw_change *b)
{
    if (!streq_null(a->account_id, b->account_id) || !streq_null(a->audience_id, b->audience_id) ||
        !streq_null(a->audience_name, b->audience_name) || !streq_null(a->list_id, b->list_id) ||
        !streq_null(a->event_id, b->event_id) || a->version_ms != b->version_ms ||
        a->action != b->action || !streq_null(a->email, b->email) ||
        !streq_null(a->phone_e164, b->phone_e164) || !streq_null(a->external_id, b->external_id) ||
        !streq_null(a->custom_source, b->custom_source) || a->drops != b->drops ||
        a->n_attrs != b->n_attrs || a->n_consents != b->n_consents)
        return 0;
    for (size_t i = 0; i < a->n_attrs; i++)
        if (!streq_null(a->attrs[i].path, b->attrs[i].path) ||
            !streq_null(a->attrs[i].value_json, b->attrs[i].value_json))
            return 0;
    for (size_t i = 0; i < a->n_consents; i++) {
        const struct aw_change_consent *x = &a->consents[i], *y = &b->consents[i];
        if (x->channel != y->channel || x->subscribe != y->subscribe ||
            x->has_consented_at != y->has_consented_at ||
            (x->has_consented_at && x->consented_at_unix_ms != y->consented_at_unix_ms))
            return 0;
    }
    return 1;
}

static void test_roundtrip_full(void)
{
    struct aw_change c, d, copy;
    make_full(&c);
    char *text = NULL;
    AW_CHECK_INT_EQ(aw_change_encode(&c, &text), AW_OK);
    AW_CHECK(text != NULL);
    AW_CHECK_STR_EQ(
        text,
        "{\"v\":1,\"acct\":\"12345\",\"aud\":\"678\",\"name\":\"VIP \\\"gold\\\" \\\\ list / "
        "\xc3\xa9\","
        "\"list\":\"Y6nRLr\",\"id\":\"ev-ABC\",\"ts\":\"18446744073709551615\",\"act\":\"add\","
        "\"email\":\"o'hara,\\\"x\\\"@example.com\",\"phone\":\"+14155550100\",\"xid\":\"cust-1\","
        "\"attrs\":{\"first_name\":\"\\\"Ann\\\\n\\\\u00e9\\\"\",\"location.country\":"
        "\"\\\"DE\\\"\","
        "\"properties.a.b\":\"[1,2.5,{\\\"k\\\":null}]\",\"properties.gone\":null},"
        "\"consent\":{\"email\":{\"sub\":true,\"at\":\"1700000000123\"},\"sms\":{\"sub\":false}},"
        "\"src\":\"web\\u0009form\",\"drops\":3}");
    AW_CHECK_INT_EQ(aw_change_decode(text, strlen(text), &d), AW_OK);
    AW_CHECK(changes_equal(&c, &d));
    aw_change_copy(&copy, &d);
    AW_CHECK(changes_equal(&c, &copy));
    aw_change_clear(&copy);
    aw_change_clear(&d);
    free(text);
    aw_change_clear(&c);
    AW_CHECK(c.email == NULL && c.n_attrs == 0);
    aw_change_clear(&c); /* safe twice */
}

static void test_roundtrip_minimal(void)
{
    struct aw_change c, d;
    memset(&c, 0, sizeof c);
    c.account_id = aw_strdup("1");
    c.audience_id = aw_strdup("2");
    c.event_id = aw_strdup("e");
    c.email = aw_strdup("a@b.co");
    c.action = AW_CHANGE_DELETE;
    c.version_ms = 0;
    char *text = NULL;
    AW_CHECK_INT_EQ(aw_change_encode(&c, &text), AW_OK);
    AW_CHECK_STR_EQ(text, "{\"v\":1,\"acct\":\"1\",\"aud\":\"2\",\"id\":\"e\",\"ts\":\"0\","
                          "\"act\":\"delete\",\"email\":\"a@b.co\",\"attrs\":{},\"drops\":0}");
    AW_CHECK_INT_EQ(aw_change_decode(text, strlen(text), &d), AW_OK);
    AW_CHECK(changes_equal(&c, &d));
    AW_CHECK(d.audience_name == NULL && d.list_id == NULL && d.phone_e164 == NULL);
    aw_change_clear(&d);
    free(text);

    c.action = AW_CHANGE_ATTRIBUTE_UPDATE;
    AW_CHECK_INT_EQ(aw_change_encode(&c, &text), AW_OK);
    AW_CHECK(strstr(text, "\"act\":\"attribute_update\"") != NULL);
    AW_CHECK_INT_EQ(aw_change_decode(text, strlen(text), &d), AW_OK);
    AW_CHECK_INT_EQ(d.action, AW_CHANGE_ATTRIBUTE_UPDATE);
    aw_change_clear(&d);
    free(text);
    aw_change_clear(&c);
}

/* What cjson may hand back after a Lua decode/encode: other member order, "\/" escapes,
 * empty tables as [], unknown members, whitespace. */
static void test_decode_cjson_variants(void)
{
    const char *text =
        " { \"drops\" : 1 , \"attrs\" : [] , \"email\":\"a\\/b@x.io\", \"consent\":[],"
        "\"act\":\"add\",\"ts\":\"42\",\"id\":\"E\",\"aud\":\"9\",\"acct\":\"8\",\"v\":1,"
        "\"future\":{\"x\":[1,{\"y\":\"\\u0000\"}]}, \"name\":null } \n";
    struct aw_change d;
    AW_CHECK_INT_EQ(aw_change_decode(text, strlen(text), &d), AW_OK);
    AW_CHECK_STR_EQ(d.email, "a/b@x.io");
    AW_CHECK(d.version_ms == 42 && d.drops == 1 && d.n_attrs == 0 && d.n_consents == 0);
    AW_CHECK(d.audience_name == NULL);
    aw_change_clear(&d);

    /* attrs out of order come back sorted; consent order normalised to email, sms;
     * surrogate pairs decode to UTF-8 */
    const char *t2 =
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\","
        "\"email\":\"a@b.c\",\"attrs\":{\"z\":\"1\",\"a\":\"\\\"\\ud83d\\ude00\\\"\"},"
        "\"consent\":{\"sms\":{\"at\":\"5\",\"sub\":true},\"email\":{\"sub\":false}},"
        "\"drops\":0}";
    AW_CHECK_INT_EQ(aw_change_decode(t2, strlen(t2), &d), AW_OK);
    AW_CHECK_INT_EQ(d.n_attrs, 2);
    if (d.n_attrs == 2) {
        AW_CHECK_STR_EQ(d.attrs[0].path, "a");
        AW_CHECK_STR_EQ(d.attrs[0].value_json, "\"\xf0\x9f\x98\x80\"");
        AW_CHECK_STR_EQ(d.attrs[1].path, "z");
    }
    AW_CHECK_INT_EQ(d.n_consents, 2);
    if (d.n_consents == 2) {
        AW_CHECK(d.consents[0].channel == AW_CHANNEL_EMAIL && !d.consents[0].subscribe &&
                 !d.consents[0].has_consented_at);
        AW_CHECK(d.consents[1].channel == AW_CHANNEL_SMS && d.consents[1].subscribe &&
                 d.consents[1].has_consented_at && d.consents[1].consented_at_unix_ms == 5);
    }
    aw_change_clear(&d);
}

static void test_decode_rejects(void)
{
    static const char *const base_ok =
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\","
        "\"email\":\"a@b.c\",\"attrs\":{},\"drops\":0}";
    static const char *const bad[] = {
        "",
        "null",
        "[]",
        "{}",
        "{\"v\":1}",
        /* missing each required member */
        "{\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":\"a@b."
        "c\",\"attrs\":{},\"drops\":0}",
        "{\"v\":1,\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":\"a@b.c\","
        "\"attrs\":{},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"act\":\"add\",\"email\":\"a@b.c\","
        "\"attrs\":{},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"attrs\":"
        "{},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"drops\":0}",
        /* wrong version, types, values */
        "{\"v\":2,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":{},\"drops\":0}",
        "{\"v\":1,\"acct\":8,\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":\"a@"
        "b.c\",\"attrs\":{},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":1,\"act\":\"add\",\"email\":\"a@"
        "b.c\",\"attrs\":{},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"-1\",\"act\":\"add\","
        "\"email\":\"a@b.c\",\"attrs\":{},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"18446744073709551616\","
        "\"act\":\"add\",\"email\":\"a@b.c\",\"attrs\":{},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"upsert\","
        "\"email\":\"a@b.c\",\"attrs\":{},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"\",\"attrs\":{},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":{},\"drops\":-1}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":{},\"drops\":1.5}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":{},\"drops\":4294967296}",
        /* attrs: value not a string, value not JSON, duplicate path, empty path */
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":{\"a\":1},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":{\"a\":\"not json\"},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":{\"a\":\"1\",\"a\":null},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":{\"\":\"1\"},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":[1],\"drops\":0}",
        /* consent: missing sub, sub not bool, duplicate channel, bad at */
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":{},\"consent\":{\"email\":{}},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":{},\"consent\":{\"email\":{\"sub\":1}},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":{},\"consent\":{\"sms\":{\"sub\":true},\"sms\":{\"sub\":true}},"
        "\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":{},\"consent\":{\"sms\":{\"sub\":true,\"at\":\"x\"}},\"drops\":0}",
        /* duplicate member, trailing garbage, trailing comma, NUL escape, bad UTF-8, raw control */
        "{\"v\":1,\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\","
        "\"email\":\"a@b.c\",\"attrs\":{},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":{},\"drops\":0}x",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":{},\"drops\":0,}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a\\u0000@b.c\",\"attrs\":{},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a\xff@b.c\",\"attrs\":{},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a\xc0\xaf@b.c\",\"attrs\":{},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a\\ud800@b.c\",\"attrs\":{},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a\n@b.c\",\"attrs\":{},\"drops\":0}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":{},\"drops\":0,\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
        "[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":{},\"drops\":0,\"x\":[1,]}",
        "{\"v\":1,\"acct\":\"8\",\"aud\":\"9\",\"id\":\"E\",\"ts\":\"1\",\"act\":\"add\",\"email\":"
        "\"a@b.c\",\"attrs\":{},\"drops\":0,\"x\":01}",
    };
    struct aw_change d;
    AW_CHECK_INT_EQ(aw_change_decode(base_ok, strlen(base_ok), &d), AW_OK);
    aw_change_clear(&d);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&d, 0xAB, sizeof d); /* decode must overwrite */
        enum aw_err err = aw_change_decode(bad[i], strlen(bad[i]), &d);
        AW_CHECK_MSG(err == AW_ERR_INVALID, "case %zu accepted", i);
        AW_CHECK(d.email == NULL && d.attrs == NULL && d.n_attrs == 0);
        aw_change_clear(&d);
    }
    /* every truncation of a valid text is rejected, and the length argument is honoured */
    struct aw_change full;
    make_full(&full);
    char *text = NULL;
    AW_CHECK_INT_EQ(aw_change_encode(&full, &text), AW_OK);
    size_t n = strlen(text);
    int accepted = 0;
    for (size_t k = 0; k < n; k++) {
        if (aw_change_decode(text, k, &d) == AW_OK)
            accepted++;
        aw_change_clear(&d);
    }
    AW_CHECK_INT_EQ(accepted, 0);
    free(text);
    aw_change_clear(&full);
}

static void test_encode_rejects(void)
{
    struct aw_change c;
    char *text = (char *)"sentinel";
    make_full(&c);
    free(c.email);
    c.email = NULL;
    AW_CHECK_INT_EQ(aw_change_encode(&c, &text), AW_ERR_INTERNAL);
    AW_CHECK(text == NULL);
    c.email = aw_strdup("bad\xff@x.io"); /* not UTF-8 */
    AW_CHECK_INT_EQ(aw_change_encode(&c, &text), AW_ERR_INTERNAL);
    free(c.email);
    c.email = aw_strdup("a@b.c");
    free(c.attrs[0].value_json);
    c.attrs[0].value_json = aw_strdup("{not json");
    AW_CHECK_INT_EQ(aw_change_encode(&c, &text), AW_ERR_INTERNAL);
    free(c.attrs[0].value_json);
    c.attrs[0].value_json = aw_strdup("true");
    c.consents[1].channel = AW_CHANNEL_EMAIL; /* two email consents */
    AW_CHECK_INT_EQ(aw_change_encode(&c, &text), AW_ERR_INTERNAL);
    c.consents[1].channel = AW_CHANNEL_SMS;
    AW_CHECK_INT_EQ(aw_change_encode(&c, &text), AW_OK);
    free(text);
    aw_change_clear(&c);
}

static void test_version_cmp(void)
{
    AW_CHECK(aw_change_version_cmp(1, "b", 2, "a") < 0);
    AW_CHECK(aw_change_version_cmp(3, "a", 2, "z") > 0);
    AW_CHECK(aw_change_version_cmp(5, "abc", 5, "abd") < 0);
    AW_CHECK(aw_change_version_cmp(5, "ABD", 5, "abc") > 0); /* lower-cased before comparing */
    AW_CHECK(aw_change_version_cmp(5, "AbC", 5, "aBc") == 0);
    AW_CHECK(aw_change_version_cmp(5, "ab", 5, "abc") < 0);
    AW_CHECK(aw_change_version_cmp(5, "abc", 5, "ab") > 0);
    /* "Z" (0x5A) < "_" (0x5F) bytewise, but lower-case "z" (0x7A) > "_" */
    AW_CHECK(aw_change_version_cmp(5, "Z", 5, "_") > 0);
    AW_CHECK(aw_change_version_cmp(UINT64_MAX, "a", 0, "z") > 0);
    AW_CHECK(aw_change_version_cmp(7, NULL, 7, "") == 0);
}

static void test_names(void)
{
    AW_CHECK_STR_EQ(aw_change_action_str(AW_CHANGE_ADD), "add");
    AW_CHECK_STR_EQ(aw_change_action_str(AW_CHANGE_DELETE), "delete");
    AW_CHECK_STR_EQ(aw_change_action_str(AW_CHANGE_ATTRIBUTE_UPDATE), "attribute_update");
    AW_CHECK_STR_EQ(aw_change_channel_str(AW_CHANNEL_EMAIL), "email");
    AW_CHECK_STR_EQ(aw_change_channel_str(AW_CHANNEL_SMS), "sms");
    AW_CHECK_STR_EQ(aw_change_drop_str(AW_CHANGE_DROP_INVALID_PHONE), "invalid_phone");
    AW_CHECK_STR_EQ(aw_change_drop_str(AW_CHANGE_DROP_SMS_NO_PHONE), "sms_no_phone");
    AW_CHECK_STR_EQ(aw_change_drop_str(0x80), "unknown");
}

int main(void)
{
    test_roundtrip_full();
    test_roundtrip_minimal();
    test_decode_cjson_variants();
    test_decode_rejects();
    test_encode_rejects();
    test_version_cmp();
    test_names();
    return aw_test_done();
}
