/* test_deadletter.c -- dead-letter envelopes (DESIGN.md §6): a bad profile forwarded exactly as
 * received with the message id, account and audience; a refused change with Klaviyo's error
 * id/code/title and never its detail. */
#include <jansson.h>
#include <string.h>

#include "common/mem.h"
#include "tests/harness.h"
#include "worker/store/change.h"
#include "worker/ops/deadletter.h"

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
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "stage")), "flush");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "reason")), "klaviyo_import_error");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(env, "id")), "m-9");
    AW_CHECK_INT_EQ(json_integer_value(json_object_get(env, "timestamp_ms")), 1714592744065ll);
    AW_CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(env, "profile"), "email")),
                    "o'neil@example.com");
    json_t *k = json_object_get(env, "klaviyo");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(k, "id")), "e-1");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(k, "code")), "invalid");
    AW_CHECK_STR_EQ(json_string_value(json_object_get(k, "title")), "Invalid input.");
    AW_CHECK(json_object_get(k, "detail") == NULL);
    json_decref(env);
    free(out);
    aw_change_clear(&c);
}

int main(void)
{
    test_profile_envelope();
    test_change_envelope();
    return aw_test_done();
}
