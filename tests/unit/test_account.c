/* test_account.c -- one account's settings: the grammar of alternateIdentifier and
 * phoneIdentifier, and aw_account_resolve from the message's settings and from overrides (the
 * config file's loading is test_config_file.c's). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/harness.h"
#include "worker/ingest/account.h"
#include "worker/ingest/event.h"

int main(void);

static void test_parse_choices(void)
{
    static const struct {
        const char *in, *want;
    } alt[] = {{NULL, NULL},
               {"", NULL},
               {"None", NULL},
               {"none", NULL},
               {" NONE ", NULL},
               {"customer", "customer"},
               {"Customer", "customer"},
               {"Customer Id", "customer"},
               {"customer_id", "customer"},
               {"CustomerID", "customer"},
               {"other", "other"},
               {"Other", "other"},
               {"Other Id", "other"},
               {"other2", "other2"},
               {"Other 2", "other2"},
               {"Other ID 2", "other2"},
               {"other_5", "other5"},
               {"OTHER10", "other10"},
               {"Other 10", "other10"}};
    for (size_t i = 0; i < sizeof alt / sizeof alt[0]; i++) {
        const char *t = "unset";
        AW_CHECK_MSG(aw_account_parse_alternate(alt[i].in, &t) == AW_OK, "alt case %zu", i);
        AW_CHECK_STR_EQ(t, alt[i].want);
    }
    static const char *const bad_alt[] = {"facebook",      "email",
                                          "other1",        "other11",
                                          "other0",        "other02",
                                          "other-1x",      "customers",
                                          "mobile_number", "otherotherotherotherotherotherother"};
    for (size_t i = 0; i < sizeof bad_alt / sizeof bad_alt[0]; i++) {
        const char *t = "unset";
        AW_CHECK_MSG(aw_account_parse_alternate(bad_alt[i], &t) == AW_ERR_INVALID, "bad alt %s",
                     bad_alt[i]);
    }
    static const struct {
        const char *in, *want;
    } phone[] = {{NULL, "mobile_number"},
                 {"", "mobile_number"},
                 {"mobile_number", "mobile_number"},
                 {"Mobile Number", "mobile_number"},
                 {"mobile", "mobile_number"},
                 {"phone_number_2", "phone_number_2"},
                 {"Phone Number 2", "phone_number_2"},
                 {"PHONE_NUMBER_3", "phone_number_3"}};
    for (size_t i = 0; i < sizeof phone / sizeof phone[0]; i++) {
        const char *t = NULL;
        AW_CHECK_MSG(aw_account_parse_phone(phone[i].in, &t) == AW_OK, "phone case %zu", i);
        AW_CHECK_STR_EQ(t, phone[i].want);
    }
    const char *t = NULL;
    AW_CHECK(aw_account_parse_phone("fax", &t) == AW_ERR_INVALID);
    AW_CHECK(aw_account_parse_phone("phone_number_4", &t) == AW_ERR_INVALID);
    AW_CHECK(aw_account_parse_phone("phone_number", &t) == AW_ERR_INVALID);
}

static void test_resolve_from_message(void)
{
    struct aw_account a;
    struct aw_event_setting s1[] = {{"apiKey", " pk_abc\n"}};
    AW_CHECK(aw_account_resolve(NULL, "1", s1, 1, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.account_id, "1");
    AW_CHECK_STR_EQ(a.api_key, "pk_abc"); /* trimmed */
    AW_CHECK(a.alternate_identity == NULL);
    AW_CHECK_STR_EQ(a.phone_identity, "mobile_number");
    AW_CHECK(a.problem == NULL);
    aw_account_clear(&a);
    AW_CHECK(a.api_key == NULL && a.account_id == NULL);
    aw_account_clear(&a); /* idempotent */

    struct aw_event_setting s2[] = {{"Example String Setting", "x"},
                                    {"apiKey", "pk_abc"},
                                    {"alternateIdentifier", "Other 3"},
                                    {"phoneIdentifier", "Phone Number 3"}};
    AW_CHECK(aw_account_resolve(NULL, "1", s2, 4, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.alternate_identity, "other3");
    AW_CHECK_STR_EQ(a.phone_identity, "phone_number_3");
    aw_account_clear(&a);

    AW_CHECK(aw_account_resolve(NULL, "1", NULL, 0, &a) == AW_ERR_INVALID);
    AW_CHECK_STR_EQ(a.problem, AW_ACCOUNT_MISSING_API_KEY);
    AW_CHECK_STR_EQ(a.problem_setting, "apiKey");
    AW_CHECK(a.api_key == NULL);
    aw_account_clear(&a);

    struct aw_event_setting s3[] = {{"apiKey", "pk_a\r\nX-Injected: 1"}};
    AW_CHECK(aw_account_resolve(NULL, "1", s3, 1, &a) == AW_ERR_INVALID);
    AW_CHECK_STR_EQ(a.problem, AW_ACCOUNT_INVALID_SETTINGS);
    AW_CHECK_STR_EQ(a.problem_setting, "apiKey");
    aw_account_clear(&a);

    struct aw_event_setting s4[] = {{"apiKey", "pk_a"}, {"alternateIdentifier", "twitter"}};
    AW_CHECK(aw_account_resolve(NULL, "1", s4, 2, &a) == AW_ERR_INVALID);
    AW_CHECK_STR_EQ(a.problem, AW_ACCOUNT_INVALID_SETTINGS);
    AW_CHECK_STR_EQ(a.problem_setting, "alternateIdentifier");
    aw_account_clear(&a);

    struct aw_event_setting s5[] = {{"apiKey", "pk_a"}, {"phoneIdentifier", "pager"}};
    AW_CHECK(aw_account_resolve(NULL, "1", s5, 2, &a) == AW_ERR_INVALID);
    AW_CHECK_STR_EQ(a.problem_setting, "phoneIdentifier");
    aw_account_clear(&a);
}

/* Overrides win key by key; an absent override leaves the message's value. */
static void test_resolve_with_overrides(void)
{
    struct aw_event_setting msg[] = {{"apiKey", "pk_from_message"},
                                     {"alternateIdentifier", "other"},
                                     {"phoneIdentifier", "phone_number_3"}};
    struct aw_account_overrides ov = {.api_key = "pk_override", .phone_identifier = "mobile"};
    struct aw_account a;
    AW_CHECK(aw_account_resolve(&ov, "9", msg, 3, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.api_key, "pk_override");
    AW_CHECK_STR_EQ(a.alternate_identity, "other");
    AW_CHECK_STR_EQ(a.phone_identity, "mobile_number");
    aw_account_clear(&a);

    struct aw_account_overrides alt_only = {.alternate_identifier = "None"};
    AW_CHECK(aw_account_resolve(&alt_only, "9", msg, 3, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.api_key, "pk_from_message");
    AW_CHECK(a.alternate_identity == NULL);
    AW_CHECK_STR_EQ(a.phone_identity, "phone_number_3");
    aw_account_clear(&a);

    /* No key anywhere: the overrides cannot supply what they do not have. */
    AW_CHECK(aw_account_resolve(&alt_only, "9", NULL, 0, &a) == AW_ERR_INVALID);
    AW_CHECK_STR_EQ(a.problem, AW_ACCOUNT_MISSING_API_KEY);
    aw_account_clear(&a);
}

static void test_api_key_grammar(void)
{
    AW_CHECK(aw_account_api_key_is_clean("pk_abc123"));
    AW_CHECK(!aw_account_api_key_is_clean(""));
    AW_CHECK(!aw_account_api_key_is_clean(NULL));
    AW_CHECK(!aw_account_api_key_is_clean("pk abc"));
    AW_CHECK(!aw_account_api_key_is_clean("pk_\x7f"));
    AW_CHECK(!aw_account_api_key_is_clean("pk_\xc3\xa9"));
    aw_account_free_secret(NULL);
    aw_account_free_secret(strdup("pk_wiped"));
}

int main(void)
{
    test_parse_choices();
    test_resolve_from_message();
    test_resolve_with_overrides();
    test_api_key_grammar();
    return aw_test_done();
}
