/* test_change.c -- struct aw_change helpers and the pending-change codec (worker/store/change.c):
 * records of both streams decode into the change the leader sends, every malformed record is
 * refused whole, field names come from the one table (worker/store/fields.def). */
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "tests/harness.h"
#include "worker/store/change.h"
#include "worker/store/names.h"

#define F(name, value)                                                                             \
    {                                                                                              \
        name, sizeof name - 1, value, sizeof value - 1                                             \
    }

static enum aw_err decode(const char *aud, const struct aw_change_field *f, size_t n,
                          struct aw_change *out)
{
    return aw_change_record_decode("42", aud, "ann@example.com", f, n, out);
}

static void test_membership(void)
{
    const struct aw_change_field add[] = {F("act", "add"), F("ver", "1700000000123:Ev-1")};
    struct aw_change c;
    AW_CHECK_INT_EQ(decode("7", add, 2, &c), AW_OK);
    AW_CHECK_INT_EQ(c.action, AW_CHANGE_ADD);
    AW_CHECK_STR_EQ(c.account_id, "42");
    AW_CHECK_STR_EQ(c.audience_id, "7");
    AW_CHECK_STR_EQ(c.email, "ann@example.com");
    AW_CHECK_STR_EQ(c.event_id, "Ev-1");
    AW_CHECK(c.version_ms == 1700000000123ull);
    AW_CHECK_INT_EQ(c.n_attrs, 0);
    aw_change_clear(&c);

    const struct aw_change_field del[] = {F("act", "delete"), F("ver", "18446744073709551615:")};
    AW_CHECK_INT_EQ(decode("7", del, 2, &c), AW_OK);
    AW_CHECK_INT_EQ(c.action, AW_CHANGE_DELETE);
    AW_CHECK(c.version_ms == 18446744073709551615ull); /* the full range: decimal text */
    AW_CHECK_STR_EQ(c.event_id, "");
    aw_change_clear(&c);
}

static void test_profile(void)
{
    const struct aw_change_field rec[] = {
        F("a:properties.tags", "[\"a\",\"b\"]"),
        F("a:first_name", "\"Ann\""),
        F("a:location.city", "null"),
        F("a:external_id", "cust-1"),
        F("i:phone_number", "+14155550100"),
        F("i:@source", "web form"),
        F("c:email", "1700000000000:1"),
        F("c:sms", "0:0"),
        F("ver", "1700000000000:ev-2"),
    };
    struct aw_change c;
    AW_CHECK_INT_EQ(decode(NULL, rec, sizeof rec / sizeof rec[0], &c), AW_OK);
    AW_CHECK_INT_EQ(c.action, AW_CHANGE_ATTRIBUTE_UPDATE);
    AW_CHECK(c.audience_id == NULL);
    AW_CHECK_INT_EQ(c.n_attrs, 3); /* sorted by path; the special paths become fields */
    AW_CHECK_STR_EQ(c.attrs[0].path, "first_name");
    AW_CHECK_STR_EQ(c.attrs[0].value_json, "\"Ann\"");
    AW_CHECK_STR_EQ(c.attrs[1].path, "location.city");
    AW_CHECK(c.attrs[1].value_json == NULL); /* null unsets */
    AW_CHECK_STR_EQ(c.attrs[2].path, "properties.tags");
    AW_CHECK_STR_EQ(c.external_id, "cust-1");
    AW_CHECK_STR_EQ(c.phone_e164, "+14155550100");
    AW_CHECK_STR_EQ(c.custom_source, "web form");
    AW_CHECK(c.ids_changed); /* external_id came as a changed attribute */
    AW_CHECK_INT_EQ(c.n_consents, 2);
    AW_CHECK_INT_EQ(c.consents[0].channel, AW_CHANNEL_EMAIL);
    AW_CHECK(c.consents[0].subscribe && c.consents[0].has_consented_at);
    AW_CHECK(c.consents[0].consented_at_unix_ms == 1700000000000ull);
    AW_CHECK_INT_EQ(c.consents[1].channel, AW_CHANNEL_SMS);
    AW_CHECK(!c.consents[1].subscribe && !c.consents[1].has_consented_at);
    AW_CHECK(c.version_ms == 1700000000000ull);

    struct aw_change copy;
    aw_change_copy(&copy, &c);
    AW_CHECK_STR_EQ(copy.attrs[2].value_json, "[\"a\",\"b\"]");
    AW_CHECK(copy.ids_changed);
    aw_change_clear(&copy);
    aw_change_clear(&c);

    /* identities carried only for consent do not count as changed */
    const struct aw_change_field consent_only[] = {F("i:phone_number", "+14155550100"),
                                                   F("c:sms", "5:1")};
    AW_CHECK_INT_EQ(decode(NULL, consent_only, 2, &c), AW_OK);
    AW_CHECK(!c.ids_changed);
    AW_CHECK_INT_EQ(c.n_attrs, 0);
    aw_change_clear(&c);
}

static void test_refused(void)
{
    static const struct aw_change_field bad[][2] = {
        {F("act", "remove"), F("ver", "1:x")},                 /* unknown action */
        {F("act", "add"), F("ver", "12x:x")},                  /* version not decimal */
        {F("act", "add"), F("ver", "nocolon")},                /* version without id */
        {F("act", "add"), F("ver", "99999999999999999999:x")}, /* over 64 bits */
        {F("act", "add"), F("a:first_name", "\"x\"")},         /* membership with attributes */
        {F("c:fax", "1:1"), F("ver", "1:x")},                  /* unknown channel */
        {F("c:email", "1:2"), F("ver", "1:x")},                /* not 0 or 1 */
        {F("c:email", "1:1"), F("c:email", "2:0")},            /* one consent per channel */
        {F("a:x", "1"), F("a:x", "2")},                        /* one value per path */
        {F("i:first_name", "\"x\""), F("ver", "1:x")}, /* identities are only the special paths */
        {F("zz", "1"), F("ver", "1:x")},               /* unknown field */
        {F("a:", "1"), F("ver", "1:x")},               /* empty path */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct aw_change c;
        memset(&c, 0xab, sizeof c);
        AW_CHECK_MSG(decode(NULL, bad[i], 2, &c) == AW_ERR_INVALID, "case %zu", i);
        AW_CHECK_MSG(c.email == NULL && c.attrs == NULL && c.consents == NULL,
                     "case %zu left state behind", i);
    }
    /* a NUL inside a value is refused (values come from Redis: hostile bytes) */
    const struct aw_change_field nul[] = {{"a:first_name", 12, "\"a\0b\"", 5}};
    struct aw_change c;
    AW_CHECK_INT_EQ(decode(NULL, nul, 1, &c), AW_ERR_INVALID);
}

/* The codec's names are the table's (a rename in fields.def changes both sides). */
static void test_names(void)
{
    AW_CHECK_STR_EQ(aw_store_name(AW_F_REC_ACTION), "act");
    AW_CHECK_STR_EQ(aw_store_name(AW_F_REC_VERSION), "ver");
    AW_CHECK_STR_EQ(aw_store_name(AW_F_REC_ATTR), "a:");
    AW_CHECK_STR_EQ(aw_store_name(AW_F_REC_IDENTITY), "i:");
    AW_CHECK_STR_EQ(aw_store_name(AW_F_REC_CONSENT), "c:");
    AW_CHECK(aw_store_name_is_prefix(AW_F_REC_ATTR, "a:x", 3));
    AW_CHECK(!aw_store_name_is_prefix(AW_F_REC_ATTR, "a", 1));
}

static void test_consent_format(void)
{
    char buf[48];
    struct aw_change_consent c = {AW_CHANNEL_EMAIL, true, true, 1700000000000ull};
    AW_CHECK(aw_change_consent_format(&c, buf, sizeof buf));
    AW_CHECK_STR_EQ(buf, "1700000000000:1");
    c = (struct aw_change_consent){AW_CHANNEL_SMS, false, false, 99};
    AW_CHECK(aw_change_consent_format(&c, buf, sizeof buf));
    AW_CHECK_STR_EQ(buf, "0:0"); /* no timestamp: the oldest version */
    AW_CHECK(!aw_change_consent_format(&c, buf, 3));
}

static void test_strings(void)
{
    AW_CHECK_STR_EQ(aw_change_action_str(AW_CHANGE_ADD), "add");
    AW_CHECK_STR_EQ(aw_change_action_str(AW_CHANGE_DELETE), "delete");
    AW_CHECK_STR_EQ(aw_change_action_str(AW_CHANGE_ATTRIBUTE_UPDATE), "attribute_update");
    AW_CHECK_STR_EQ(aw_change_channel_str(AW_CHANNEL_SMS), "sms");
    AW_CHECK_STR_EQ(aw_change_drop_str(AW_CHANGE_DROP_SMS_NO_PHONE), "sms_no_phone");
    struct aw_change z;
    memset(&z, 0, sizeof z);
    aw_change_clear(&z); /* safe on a zeroed struct */
    aw_change_clear(NULL);
}

int main(void)
{
    test_membership();
    test_profile();
    test_refused();
    test_names();
    test_consent_format();
    test_strings();
    return aw_test_done();
}
