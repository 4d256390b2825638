/* test_connection.c -- an audience's connection settings: listId, propertyMapping and
 * consentMapping, and the precise, value-free detail of every refusal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/harness.h"
#include "worker/ingest/connection.h"
#include "worker/ingest/event.h"

int main(void);

static void test_connection(void)
{
    struct aw_connection c;
    char detail[256];
    AW_CHECK(aw_connection_parse(NULL, 0, &c, detail, sizeof detail) == AW_OK);
    AW_CHECK(c.list_id == NULL && c.n_properties == 0 && c.n_consents == 0);
    aw_connection_clear(&c);

    struct aw_event_setting s[] = {
        {"listId", "Y6nRLr"},
        {"propertyMapping",
         "[{\"map\":\"company\",\"value\":\"$organization\",\"note\":1},"
         "{\"map\":\"src\",\"value\":\"$source\"},{\"map\":\"a2\",\"value\":\"$address2\"},"
         "{\"map\":\"i\",\"value\":\"$image\"},{\"map\":\"la\",\"value\":\"$latitude\"},"
         "{\"map\":\"lo\",\"value\":\"$longitude\"},{\"map\":\"tz\",\"value\":\"$timezone\"},"
         "{\"map\":\"t\",\"value\":\"$title\"}]"},
        {"consentMapping", "[{\"map\":\"marketing\",\"value\":\"email_marketing\"},"
                           "{\"map\":\"data_sale_opt_out\",\"value\":\"sms_marketing\"}]"}};
    AW_CHECK(aw_connection_parse(s, 3, &c, detail, sizeof detail) == AW_OK);
    AW_CHECK_STR_EQ(c.list_id, "Y6nRLr");
    AW_CHECK_INT_EQ(c.n_properties, 8);
    if (c.n_properties == 8) {
        AW_CHECK_STR_EQ(c.properties[0].attribute, "company");
        AW_CHECK_INT_EQ(c.properties[0].target, AW_TARGET_ORGANIZATION);
        AW_CHECK_INT_EQ(c.properties[1].target, AW_TARGET_SOURCE);
        AW_CHECK_INT_EQ(c.properties[2].target, AW_TARGET_ADDRESS2);
        AW_CHECK_INT_EQ(c.properties[3].target, AW_TARGET_IMAGE);
        AW_CHECK_INT_EQ(c.properties[4].target, AW_TARGET_LATITUDE);
        AW_CHECK_INT_EQ(c.properties[5].target, AW_TARGET_LONGITUDE);
        AW_CHECK_INT_EQ(c.properties[6].target, AW_TARGET_TIMEZONE);
        AW_CHECK_INT_EQ(c.properties[7].target, AW_TARGET_TITLE);
    }
    AW_CHECK_INT_EQ(c.n_consents, 2);
    if (c.n_consents == 2) {
        AW_CHECK_STR_EQ(c.consents[0].purpose, "marketing");
        AW_CHECK_INT_EQ(c.consents[0].channel, AW_CHANNEL_EMAIL);
        AW_CHECK_STR_EQ(c.consents[1].purpose, "data_sale_opt_out");
        AW_CHECK_INT_EQ(c.consents[1].channel, AW_CHANNEL_SMS);
    }
    aw_connection_clear(&c);

    static const struct {
        const char *key, *value, *detail;
    } bad[] = {
        {"listId", "a/b", "listId: not a Klaviyo list id"},
        {"listId", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLM", "listId"},
        {"propertyMapping", "[{\"map\":\"pk_SECRET\"", "propertyMapping: not valid JSON"},
        {"propertyMapping", "\"$title\"", "propertyMapping: not valid JSON"},
        {"propertyMapping", "{}", "propertyMapping: must be a JSON array"},
        {"propertyMapping", "[1]", "propertyMapping[0]: must be an object"},
        {"propertyMapping", "[{\"value\":\"$title\"}]",
         "propertyMapping[0].map: must be a non-empty string"},
        {"propertyMapping", "[{\"map\":\"x\"}]", "propertyMapping[0].value: must be a string"},
        {"propertyMapping",
         "[{\"map\":\"x\",\"value\":\"$title\"},{\"map\":\"y\",\"value\":\"pk_SECRET\"}]",
         "propertyMapping[1].value: unknown target"},
        {"consentMapping", "[{\"map\":\"x\",\"value\":\"Email_Marketing\"}]",
         "consentMapping[0].value: unknown channel"},
        {"consentMapping", "[{\"map\":\"x\",\"value\":true}]",
         "consentMapping[0].value: must be a string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct aw_event_setting one = {(char *)bad[i].key, (char *)bad[i].value};
        detail[0] = '\0';
        AW_CHECK_MSG(aw_connection_parse(&one, 1, &c, detail, sizeof detail) == AW_ERR_INVALID,
                     "bad connection case %zu", i);
        AW_CHECK_MSG(strstr(detail, bad[i].detail) != NULL, "case %zu: detail \"%s\"", i, detail);
        AW_CHECK_MSG(strstr(detail, "SECRET") == NULL, "case %zu: value in detail", i);
        AW_CHECK(c.list_id == NULL && c.properties == NULL && c.consents == NULL);
        aw_connection_clear(&c);
    }
    /* Blank settings mean "none"; detail may be NULL. */
    struct aw_event_setting blank[] = {
        {"listId", "  "}, {"propertyMapping", " \n"}, {"consentMapping", ""}};
    AW_CHECK(aw_connection_parse(blank, 3, &c, NULL, 0) == AW_OK);
    AW_CHECK(c.list_id == NULL && c.n_properties == 0 && c.n_consents == 0);
    aw_connection_clear(&c);

    AW_CHECK_STR_EQ(aw_connection_target_str(AW_TARGET_TITLE), "$title");
    AW_CHECK_STR_EQ(aw_connection_target_str(AW_TARGET_SOURCE), "$source");
    AW_CHECK_STR_EQ(aw_connection_target_str(AW_TARGET_COUNT), "");
}

int main(void)
{
    test_connection();
    return aw_test_done();
}
