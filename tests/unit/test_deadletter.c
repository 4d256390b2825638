/* test_deadletter.c -- dead-letter envelopes (docs/contract.md): a bad profile forwarded exactly
 * as received with the message id, account and audience; a change with every field as JSON
 * values, and for a refused one Klaviyo's error id/code/title, never its detail. */
#include <jansson.h>
#include <string.h>

#include "common/mem.h"
#include "tests/harness.h"
#include "worker/ops/deadletter.h"
#include "worker/store/change.h"

static void test_profile_envelope(void)
{
    const char *msg =
        "{\"type\":\"audience_membership_change_request\",\"id\":\"m-1\",\"timestamp_ms\":17,"
        "\"account\":{\"account_id\":42},\"user_profiles\":["
        "{\"mpid\":\"1\",\"user_identities\":[{\"type\":\"email\",\"encoding\":\"raw\",\"value\":"
        "\"a@b.io\"}]},"
        "{\"mpid\":\"2\",\"user_identities\":[{\"type\":\"email\",\"encoding\":\"md5\",\"value\":"
        "\"x\"}],"
        "\"extra\":[1,2.5,{\"k\":null}]}]}";
    char *out = NULL;
    AW_CHECK_INT_EQ(aw_deadletter_profile(msg, strlen(msg), 1, "456", "hashed_email", NULL, &out),
                    AW_OK);
    json_t *env = out ? json_loads(out, 0, NULL) : NULL;
    AW_CHECK(env != NULL);
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "type")), "aw.dead_letter");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "stage")), "map");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "reason")), "hashed_email");
    AW_CHECK(json_is_null(json_object_get(env, "detail")));
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "id")), "m-1");
    AW_CHECK_INT_EQ(json_integer_value(json_object_get(env, "timestamp_ms")), 17);
    AW_CHECK_INT_EQ(json_integer_value(json_object_get(env, "account_id")), 42);
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "audience_id")), "456");
    /* the profile exactly as received, including fields the worker does not read */
    json_t *root = json_loads(msg, 0, NULL);
    AW_CHECK(json_equal(json_object_get(env, "profile"),
                        json_array_get(json_object_get(root, "user_profiles"), 1)));
    json_decref(root);
    json_decref(env);
    free(out);
    /* whole profile (no audience), and a profile index that does not exist */
    AW_CHECK_INT_EQ(
        aw_deadletter_profile(msg, strlen(msg), 0, NULL, "missing_api_key", "apiKey", &out), AW_OK);
    AW_CHECK(out && strstr(out, "\"audience_id\":null") && strstr(out, "\"detail\":\"apiKey\""));
    free(out);
    AW_CHECK_INT_EQ(aw_deadletter_profile(msg, strlen(msg), 2, NULL, "x", NULL, &out),
                    AW_ERR_INVALID);
    AW_CHECK(out == NULL);
    AW_CHECK_INT_EQ(aw_deadletter_profile("not json", 8, 0, NULL, "x", NULL, &out), AW_ERR_INVALID);
}

static void test_change_envelope(void)
{
    struct aw_change c;
    memset(&c, 0, sizeof c);
    c.account_id = aw_strdup("42");
    c.audience_id = aw_strdup("7");
    c.event_id = aw_strdup("m-9");
    c.version_ms = 1714592744065ull;
    c.action = AW_CHANGE_ADD;
    c.email = aw_strdup("o'neil@example.com");
    char *out = NULL;
    AW_CHECK_INT_EQ(aw_deadletter_change(&c, "flush", "klaviyo_import_error", "e-1", "invalid",
                                         "Invalid input.", &out),
                    AW_OK);
    json_t *env = out ? json_loads(out, 0, NULL) : NULL;
    AW_CHECK(env != NULL);
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "type")), "aw.dead_letter");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "stage")), "flush");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "reason")), "klaviyo_import_error");
    AW_CHECK(json_is_null(json_object_get(env, "detail")));
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "id")), "m-9");
    AW_CHECK_INT_EQ(json_integer_value(json_object_get(env, "timestamp_ms")), 1714592744065ll);
    /* the account id as the message carried it (a number), as in the profile envelope */
    AW_CHECK(json_is_integer(json_object_get(env, "account_id")));
    AW_CHECK_INT_EQ(json_integer_value(json_object_get(env, "account_id")), 42);
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "audience_id")), "7");
    json_t *pr = json_object_get(env, "profile");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(pr, "email")), "o'neil@example.com");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(pr, "action")), "add");
    AW_CHECK(json_object_get(pr, "phone_e164") == NULL);
    AW_CHECK_INT_EQ(json_object_size(json_object_get(pr, "attributes")), 0);
    AW_CHECK_INT_EQ(json_array_size(json_object_get(pr, "consents")), 0);
    AW_CHECK_INT_EQ(json_array_size(json_object_get(pr, "drops")), 0);
    json_t *k = json_object_get(env, "klaviyo");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(k, "id")), "e-1");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(k, "code")), "invalid");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(k, "title")), "Invalid input.");
    AW_CHECK(json_object_get(k, "detail") == NULL);
    json_decref(env);
    free(out);
    aw_change_clear(&c);
}

/* Every field of a change, embedded as JSON values (not as a re-parsed encoding): attribute
 * values as received (reals unchanged), unsets as null, consents, drops, custom source; no
 * "klaviyo" member without a Klaviyo error; a non-numeric account id stays a string. */
static void test_change_fields(void)
{
    struct aw_change c;
    memset(&c, 0, sizeof c);
    c.account_id = aw_strdup("acct-x");
    c.audience_id = aw_strdup("7");
    c.audience_name = aw_strdup("VIP \xc3\xa9t\xc3\xa9");
    c.list_id = aw_strdup("Xy12");
    c.event_id = aw_strdup("m-10");
    c.version_ms = 5;
    c.action = AW_CHANGE_ATTRIBUTE_UPDATE;
    c.email = aw_strdup("a@b.io");
    c.phone_e164 = aw_strdup("+14155550100");
    c.external_id = aw_strdup("cust-1");
    c.n_attrs = 4;
    c.attrs = aw_calloc(c.n_attrs, sizeof *c.attrs);
    c.attrs[0].path = aw_strdup("first_name");
    c.attrs[0].value_json = aw_strdup("\"Ann \\\"A\\\"\"");
    c.attrs[1].path = aw_strdup("location.latitude");
    c.attrs[1].value_json = aw_strdup("0.10000000000000001");
    c.attrs[2].path = aw_strdup("properties.tags");
    c.attrs[2].value_json = aw_strdup("[\"a\",1,{\"k\":null}]");
    c.attrs[3].path = aw_strdup("properties.gone");
    c.attrs[3].value_json = NULL;
    c.n_consents = 2;
    c.consents = aw_calloc(c.n_consents, sizeof *c.consents);
    c.consents[0].channel = AW_CHANNEL_EMAIL;
    c.consents[0].subscribe = true;
    c.consents[0].has_consented_at = true;
    c.consents[0].consented_at_unix_ms = 1700000000000ull;
    c.consents[1].channel = AW_CHANNEL_SMS;
    c.consents[1].subscribe = false;
    c.custom_source = aw_strdup("Import 1");
    c.drops = AW_CHANGE_DROP_INVALID_PHONE | AW_CHANGE_DROP_SMS_NO_PHONE;
    char *out = NULL;
    AW_CHECK_INT_EQ(aw_deadletter_change(&c, "map", "invalid_ids", NULL, NULL, NULL, &out), AW_OK);
    json_t *env = out ? json_loads(out, 0, NULL) : NULL;
    AW_CHECK(env != NULL);
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "stage")), "map");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "account_id")), "acct-x");
    AW_CHECK(json_object_get(env, "klaviyo") == NULL);
    json_t *pr = json_object_get(env, "profile");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(pr, "action")), "attribute_update");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(pr, "phone_e164")), "+14155550100");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(pr, "external_id")), "cust-1");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(pr, "audience_name")),
                    "VIP \xc3\xa9t\xc3\xa9");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(pr, "list_id")), "Xy12");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(pr, "custom_source")), "Import 1");
    json_t *at = json_object_get(pr, "attributes");
    AW_CHECK_INT_EQ(json_object_size(at), 4);
    AW_CHECK_STR_EQ(json_string_value(json_object_get(at, "first_name")), "Ann \"A\"");
    AW_CHECK(json_is_real(json_object_get(at, "location.latitude")));
    AW_CHECK(json_is_null(json_object_get(at, "properties.gone")));
    json_t *want_tags = json_loads("[\"a\",1,{\"k\":null}]", 0, NULL);
    AW_CHECK(json_equal(json_object_get(at, "properties.tags"), want_tags));
    json_decref(want_tags);
    /* a value goes through unchanged: the text holds it as the decoder printed it */
    AW_CHECK(out && strstr(out, "\"location.latitude\":0.10000000000000001") != NULL);
    json_t *cs = json_object_get(pr, "consents");
    AW_CHECK_INT_EQ(json_array_size(cs), 2);
    AW_CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(cs, 0), "channel")), "email");
    AW_CHECK(json_is_true(json_object_get(json_array_get(cs, 0), "subscribe")));
    AW_CHECK_INT_EQ(json_integer_value(json_object_get(json_array_get(cs, 0), "consented_at_ms")),
                    1700000000000ll);
    AW_CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(cs, 1), "channel")), "sms");
    AW_CHECK(json_is_false(json_object_get(json_array_get(cs, 1), "subscribe")));
    AW_CHECK(json_object_get(json_array_get(cs, 1), "consented_at_ms") == NULL);
    json_t *dr = json_object_get(pr, "drops");
    AW_CHECK_INT_EQ(json_array_size(dr), 2);
    AW_CHECK_STR_EQ(json_string_value(json_array_get(dr, 0)), "invalid_phone");
    AW_CHECK_STR_EQ(json_string_value(json_array_get(dr, 1)), "sms_no_phone");
    json_decref(env);
    free(out);

    /* a string that cannot be JSON (invalid UTF-8): refused, nothing returned, nothing leaked */
    free(c.custom_source);
    c.custom_source = aw_strdup("bad \xff byte");
    out = NULL;
    AW_CHECK_INT_EQ(aw_deadletter_change(&c, "flush", "klaviyo_rejected", "e", NULL, NULL, &out),
                    AW_ERR_INVALID);
    AW_CHECK(out == NULL);
    /* an attribute text that is not JSON is kept as text */
    free(c.custom_source);
    c.custom_source = NULL;
    free(c.attrs[0].value_json);
    c.attrs[0].value_json = aw_strdup("not json");
    AW_CHECK_INT_EQ(aw_deadletter_change(&c, "flush", "unsendable", NULL, NULL, NULL, &out), AW_OK);
    AW_CHECK(out && strstr(out, "\"first_name\":\"not json\"") != NULL);
    free(out);
    aw_change_clear(&c);
}

/* An import error naming none of the job's records: reported with the job and the error, no
 * profile (which record failed is unknown), the account id as a number. */
static void test_unmatched_envelope(void)
{
    char *out = NULL;
    AW_CHECK_INT_EQ(
        aw_deadletter_unmatched("42", "7", "job-1", "e-2", "invalid", "Invalid input.", &out),
        AW_OK);
    json_t *env = out ? json_loads(out, 0, NULL) : NULL;
    AW_CHECK(env != NULL);
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "stage")), "flush");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "reason")),
                    "klaviyo_import_error_unmatched");
    AW_CHECK(strstr(json_string_value(json_object_get(env, "detail")), "job-1") != NULL);
    AW_CHECK(json_is_null(json_object_get(env, "id")));
    AW_CHECK(json_is_null(json_object_get(env, "timestamp_ms")));
    AW_CHECK(json_is_null(json_object_get(env, "profile")));
    AW_CHECK_INT_EQ(json_integer_value(json_object_get(env, "account_id")), 42);
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "audience_id")), "7");
    json_t *k = json_object_get(env, "klaviyo");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(k, "id")), "e-2");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(k, "code")), "invalid");
    json_decref(env);
    free(out);
}

int main(void)
{
    test_profile_envelope();
    test_change_envelope();
    test_change_fields();
    test_unmatched_envelope();
    return aw_test_done();
}
