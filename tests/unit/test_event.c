/* test_event.c -- aw_event_decode over the fixtures of tests/data/events/ and mParticle's own
 * examples, plus generated edge cases (limits, truncation, API contract).
 * Invalid fixtures are named <reason>__<case>.json; the expected detail path is in the table
 * below, and every fixture on disk must be listed in one of the tables (and vice versa).
 * Longer than 900 lines on purpose: docs/style.md §9 keeps one test executable per module, and most
 * of the length is the two fixture tables and the per-fixture checks of event.h's contract. */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"
#include "common/buf.h"
#include "worker/ingest/event.h"

int main(void);

#define DETAIL_LEN 256

/* Decodes exactly len bytes from a buffer of that size (no NUL after it), so an over-read is
 * an ASan error. */
static enum aw_err decode_exact(const char *data, size_t len, struct aw_event *ev,
                                enum aw_event_reason *reason, char *detail)
{
    char *copy = malloc(len ? len : 1);
    if (copy == NULL)
        abort();
    if (len)
        memcpy(copy, data, len);
    enum aw_err err = aw_event_decode(len ? copy : NULL, len, ev, reason, detail, DETAIL_LEN);
    free(copy);
    return err;
}

static char *read_rel(const char *dir, const char *name, size_t *len)
{
    char rel[512], path[1024];
    snprintf(rel, sizeof rel, "%s/%s", dir, name);
    aw_test_src_path(path, sizeof path, rel);
    char *buf = aw_test_read_file(path, len);
    AW_CHECK_MSG(buf != NULL, "cannot read %s", path);
    return buf;
}

/* ---- assertions on decoded values ---- */

static const struct aw_event_attribute *attr(const struct aw_event_audience *a, size_t i)
{
    return i < a->n_attributes ? &a->attributes[i] : NULL;
}

#define CHECK_ATTR(a, i, k, v, act)                                                                \
    do {                                                                                           \
        const struct aw_event_attribute *at_ = attr((a), (i));                                     \
        AW_CHECK(at_ != NULL);                                                                     \
        if (at_ != NULL) {                                                                         \
            AW_CHECK_STR_EQ(at_->key, (k));                                                        \
            AW_CHECK_STR_EQ(at_->value_json, (v));                                                 \
            AW_CHECK_INT_EQ(at_->action, (act));                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_IDENTITY(p, i, t, e, v)                                                              \
    do {                                                                                           \
        AW_CHECK((i) < (p)->n_identities);                                                         \
        if ((i) < (p)->n_identities) {                                                             \
            AW_CHECK_STR_EQ((p)->identities[i].type, (t));                                         \
            AW_CHECK_STR_EQ((p)->identities[i].encoding, (e));                                     \
            AW_CHECK_STR_EQ((p)->identities[i].value, (v));                                        \
        }                                                                                          \
    } while (0)

#define CHECK_CONSENT(p, i, purpose_, ccpa_, consented_, has_ts_, ts_)                             \
    do {                                                                                           \
        AW_CHECK((i) < (p)->n_consents);                                                           \
        if ((i) < (p)->n_consents) {                                                               \
            const struct aw_event_consent *c_ = &(p)->consents[i];                                 \
            AW_CHECK_STR_EQ(c_->purpose, (purpose_));                                              \
            AW_CHECK_INT_EQ(c_->is_ccpa, (ccpa_));                                                 \
            AW_CHECK_INT_EQ(c_->consented, (consented_));                                          \
            AW_CHECK_INT_EQ(c_->has_timestamp, (has_ts_));                                         \
            AW_CHECK(c_->timestamp_unix_ms == (uint64_t)(ts_));                                    \
        }                                                                                          \
    } while (0)

static void check_membership_base(const struct aw_event *ev)
{
    AW_CHECK_INT_EQ(ev->type, AW_EVENT_MEMBERSHIP);
    AW_CHECK_STR_EQ(ev->id, "6b1f0c7e-2f4d-4c38-9a51-0e2b7d9c1a01");
    AW_CHECK(ev->timestamp_ms == 1714592744065ull);
    AW_CHECK_STR_EQ(ev->account_id, "123456");
    AW_CHECK_INT_EQ(ev->n_account_settings, 2);
    AW_CHECK_STR_EQ(aw_event_setting_get(ev->account_settings, ev->n_account_settings, "apiKey"),
                    "pk_test_fixture_not_a_key");
    AW_CHECK_STR_EQ(
        aw_event_setting_get(ev->account_settings, ev->n_account_settings, "alternateIdentifier"),
        "None");
    AW_CHECK_INT_EQ(ev->n_profiles, 2);
    if (ev->n_profiles != 2)
        return;
    const struct aw_event_profile *p = &ev->profiles[0];
    AW_CHECK_STR_EQ(p->mpid, "8001");
    AW_CHECK_INT_EQ(p->n_identities, 2);
    CHECK_IDENTITY(p, 0, "email", "raw", "ann@example.com");
    CHECK_IDENTITY(p, 1, "mobile_number", "raw", "+14155550100");
    AW_CHECK_INT_EQ(p->n_audiences, 2);
    if (p->n_audiences == 2) {
        const struct aw_event_audience *a = &p->audiences[0];
        AW_CHECK_STR_EQ(a->audience_id, "456");
        AW_CHECK_STR_EQ(a->audience_name, "Newsletter");
        AW_CHECK_INT_EQ(a->action, AW_EVENT_ADD);
        AW_CHECK_STR_EQ(aw_event_setting_get(a->settings, a->n_settings, "listId"), "XyZ123");
        AW_CHECK_INT_EQ(a->n_attributes, 3);
        CHECK_ATTR(a, 0, "$FirstName", "\"Ann\"", AW_EVENT_ATTR_UPSERT);
        CHECK_ATTR(a, 1, "score", "42", AW_EVENT_ATTR_UPSERT);
        CHECK_ATTR(a, 2, "tags", "[\"a\",\"b\"]", AW_EVENT_ATTR_UPSERT);
        a = &p->audiences[1];
        AW_CHECK_STR_EQ(a->audience_id, "789");
        AW_CHECK_STR_EQ(a->audience_name, "Churn risk");
        AW_CHECK_INT_EQ(a->action, AW_EVENT_DELETE);
        AW_CHECK_INT_EQ(a->n_attributes, 0);
        AW_CHECK_INT_EQ(a->n_settings, 0);
    }
    AW_CHECK_INT_EQ(p->n_consents, 3);
    CHECK_CONSENT(p, 0, "email_marketing", false, true, true, 1714592700000ull);
    CHECK_CONSENT(p, 1, "sms_marketing", false, false, false, 0);
    CHECK_CONSENT(p, 2, "data_sale_opt_out", true, false, true, 1714592700001ull);
    p = &ev->profiles[1];
    AW_CHECK_STR_EQ(p->mpid, "8002");
    CHECK_IDENTITY(p, 0, "email", "raw", "bob@example.com");
    AW_CHECK_INT_EQ(p->n_consents, 0);
    AW_CHECK_INT_EQ(p->n_audiences, 1);
    if (p->n_audiences == 1) {
        AW_CHECK_INT_EQ(p->audiences[0].action, AW_EVENT_ATTRIBUTE_UPDATE);
        CHECK_ATTR(&p->audiences[0], 0, "$LastName", "\"Builder\"", AW_EVENT_ATTR_UPSERT);
    }
    /* A membership message leaves the subscription part empty. */
    AW_CHECK(ev->subscription.audience_id == NULL);
}

static void check_value_types(const struct aw_event *ev)
{
    AW_CHECK_STR_EQ(ev->id, "A1B2C3D4-0000-4000-8000-00000000000F");
    AW_CHECK_STR_EQ(ev->account_id, "777"); /* "000777": leading zeros dropped */
    const struct aw_event_setting *s = ev->account_settings;
    size_t n = ev->n_account_settings;
    AW_CHECK_INT_EQ(n, 6); /* "gone": null is skipped */
    AW_CHECK_STR_EQ(aw_event_setting_get(s, n, "phoneIdentifier"), "phone_number_2");
    AW_CHECK_STR_EQ(aw_event_setting_get(s, n, "flag"), "true");
    AW_CHECK_STR_EQ(aw_event_setting_get(s, n, "count"), "3");
    AW_CHECK_STR_EQ(aw_event_setting_get(s, n, "ratio"), "0.25");
    AW_CHECK_STR_EQ(aw_event_setting_get(s, n, "mapping"),
                    "[{\"map\":\"a\",\"value\":\"$title\"}]");
    AW_CHECK(aw_event_setting_get(s, n, "gone") == NULL);
    if (n == 6) {
        AW_CHECK_STR_EQ(s[0].key, "apiKey"); /* input order */
        AW_CHECK_STR_EQ(s[5].key, "mapping");
    }
    AW_CHECK_INT_EQ(ev->n_profiles, 1);
    if (ev->n_profiles != 1)
        return;
    const struct aw_event_profile *p = &ev->profiles[0];
    AW_CHECK_STR_EQ(p->mpid, "-4611686018427387904");
    CHECK_IDENTITY(p, 0, "email", "raw", "  Mixed.Case@Example.COM "); /* as received */
    CHECK_IDENTITY(p, 1, "other2", "raw", "ext-42");
    CHECK_IDENTITY(p, 2, "phone_number_2", "raw", "(415) 555-0101");
    AW_CHECK_INT_EQ(p->n_audiences, 1);
    if (p->n_audiences != 1)
        return;
    const struct aw_event_audience *a = &p->audiences[0];
    AW_CHECK_STR_EQ(a->audience_id, "9000000000000000001");
    AW_CHECK_STR_EQ(a->audience_name, "VIP \xc3\xa9t\xc3\xa9");
    AW_CHECK_STR_EQ(aw_event_setting_get(a->settings, a->n_settings, "propertyMapping"),
                    "[{\"map\":\"job\",\"value\":\"$title\"}]");
    AW_CHECK_INT_EQ(a->n_attributes, 8); /* {} and {"key": null} skipped */
    CHECK_ATTR(a, 0, "$FirstName", "\"Zo\xc3\xab \\\"Z\\\"\\n\\\\\"", AW_EVENT_ATTR_UPSERT);
    CHECK_ATTR(a, 1, "age", "37", AW_EVENT_ATTR_UPSERT);                 /* no action: upsert */
    CHECK_ATTR(a, 2, "ltv", "1.1000000000000001", AW_EVENT_ATTR_UPSERT); /* == 1.1 exactly */
    CHECK_ATTR(a, 3, "big", "100000.0", AW_EVENT_ATTR_UPSERT);
    CHECK_ATTR(a, 4, "opted", "true", AW_EVENT_ATTR_UPSERT);
    CHECK_ATTR(a, 5, "empty", "\"\"", AW_EVENT_ATTR_UPSERT);
    CHECK_ATTR(a, 6, "nothing", NULL, AW_EVENT_ATTR_UPSERT);
    CHECK_ATTR(a, 7, "Churned", NULL, AW_EVENT_ATTR_DELETE);
}

static void check_no_profiles(const struct aw_event *ev)
{
    AW_CHECK_INT_EQ(ev->type, AW_EVENT_MEMBERSHIP);
    AW_CHECK_STR_EQ(ev->id, "no-profiles-1");
    AW_CHECK(ev->timestamp_ms == 0);
    AW_CHECK_STR_EQ(ev->account_id, "1");
    AW_CHECK_INT_EQ(ev->n_profiles, 0);
    AW_CHECK(ev->profiles == NULL);
    AW_CHECK_INT_EQ(ev->n_account_settings, 0);
}

static void check_empty_lists(const struct aw_event *ev)
{
    AW_CHECK_INT_EQ(ev->n_account_settings, 0);
    AW_CHECK_INT_EQ(ev->n_profiles, 3);
    if (ev->n_profiles != 3)
        return;
    for (size_t i = 0; i < 2; i++) {
        AW_CHECK(ev->profiles[i].mpid == NULL);
        AW_CHECK_INT_EQ(ev->profiles[i].n_identities, 0);
        AW_CHECK_INT_EQ(ev->profiles[i].n_audiences, 0);
        AW_CHECK_INT_EQ(ev->profiles[i].n_consents, 0);
    }
    AW_CHECK_INT_EQ(ev->profiles[2].n_audiences, 1);
    if (ev->profiles[2].n_audiences == 1) {
        const struct aw_event_audience *a = &ev->profiles[2].audiences[0];
        AW_CHECK_STR_EQ(a->audience_id, "3");
        AW_CHECK(a->audience_name == NULL);
        AW_CHECK_INT_EQ(a->n_settings, 0);
        AW_CHECK_INT_EQ(a->n_attributes, 0);
    }
}

static void check_consent_state(const struct aw_event *ev)
{
    AW_CHECK_INT_EQ(ev->n_profiles, 1);
    if (ev->n_profiles != 1)
        return;
    const struct aw_event_profile *p = &ev->profiles[0];
    AW_CHECK_INT_EQ(p->n_consents, 4); /* "unused": null skipped; the alias is not read */
    CHECK_CONSENT(p, 0, "email_marketing", false, true, true, 1714592700000ull);
    CHECK_CONSENT(p, 1, "sms_marketing", false, false, false, 0);
    CHECK_CONSENT(p, 2, "analytics", false, true, false, 0);
    CHECK_CONSENT(p, 3, "data_sale_opt_out", true, true, true, 1714592700002ull);
    AW_CHECK_INT_EQ(p->n_audiences, 1);
    if (p->n_audiences == 1)
        AW_CHECK_INT_EQ(p->audiences[0].action, AW_EVENT_ATTRIBUTE_UPDATE);
}

static void check_list_values(const struct aw_event *ev)
{
    AW_CHECK_INT_EQ(ev->n_profiles, 1);
    if (ev->n_profiles != 1 || ev->profiles[0].n_audiences != 1) {
        AW_CHECK(false);
        return;
    }
    const struct aw_event_audience *a = &ev->profiles[0].audiences[0];
    AW_CHECK(a->audience_name == NULL);
    AW_CHECK_INT_EQ(a->n_attributes, 4);
    CHECK_ATTR(a, 0, "colors",
               "[\"red\",\"gr\\\"een\",\"\xc3\xbc"
               "ber\"]",
               AW_EVENT_ATTR_UPSERT);
    CHECK_ATTR(a, 1, "mixed", "[1,2.5,true,false,\"x\"]", AW_EVENT_ATTR_UPSERT);
    CHECK_ATTR(a, 2, "none", "[]", AW_EVENT_ATTR_UPSERT);
    CHECK_ATTR(a, 3, "null_list", "\"v\"", AW_EVENT_ATTR_UPSERT); /* null list_value = absent */
}

static void check_attribute_deletes(const struct aw_event *ev)
{
    AW_CHECK_INT_EQ(ev->n_profiles, 1);
    if (ev->n_profiles != 1 || ev->profiles[0].n_audiences != 1) {
        AW_CHECK(false);
        return;
    }
    const struct aw_event_audience *a = &ev->profiles[0].audiences[0];
    AW_CHECK_INT_EQ(a->n_attributes, 4);
    CHECK_ATTR(a, 0, "$City", NULL, AW_EVENT_ATTR_DELETE);
    CHECK_ATTR(a, 1, "stale", NULL, AW_EVENT_ATTR_DELETE);
    CHECK_ATTR(a, 2, "stale_list", NULL, AW_EVENT_ATTR_DELETE);
    CHECK_ATTR(a, 3, "$Zip", "\"94107\"", AW_EVENT_ATTR_UPSERT);
}

static void check_unknown_fields(const struct aw_event *ev)
{
    /* Same content as the base message: the extra fields change nothing. */
    check_membership_base(ev);
    AW_CHECK_INT_EQ(ev->n_profiles > 0 ? ev->profiles[0].n_identities : 0, 2);
}

static void check_hashed(const struct aw_event *ev)
{
    AW_CHECK_INT_EQ(ev->n_profiles, 1);
    if (ev->n_profiles != 1)
        return;
    const struct aw_event_profile *p = &ev->profiles[0];
    CHECK_IDENTITY(p, 0, "email", "sha256",
                   "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8");
    CHECK_IDENTITY(p, 1, "facebook_custom_audience_id", "raw", "future-type");
}

static void check_subscription_add(const struct aw_event *ev)
{
    AW_CHECK_INT_EQ(ev->type, AW_EVENT_SUBSCRIPTION);
    AW_CHECK_STR_EQ(ev->id, "0d6c4b8e-93a7-4f0e-b2f1-5e4a8c7d6b02");
    AW_CHECK(ev->timestamp_ms == 1714592744066ull);
    AW_CHECK_STR_EQ(ev->account_id, "123456");
    AW_CHECK_INT_EQ(ev->sub_action, AW_EVENT_SUB_ADD);
    AW_CHECK_STR_EQ(ev->subscription.audience_id, "1234");
    AW_CHECK_STR_EQ(ev->subscription.audience_name, "New Users Low Engagement");
    AW_CHECK_STR_EQ(
        aw_event_setting_get(ev->subscription.settings, ev->subscription.n_settings, "listId"),
        "AbC987");
    AW_CHECK_INT_EQ(ev->subscription.n_attributes, 0);
    AW_CHECK_INT_EQ(ev->n_profiles, 0);
}

static void check_subscription_update(const struct aw_event *ev)
{
    AW_CHECK_INT_EQ(ev->type, AW_EVENT_SUBSCRIPTION);
    AW_CHECK_INT_EQ(ev->sub_action, AW_EVENT_SUB_UPDATE);
    AW_CHECK_STR_EQ(ev->subscription.audience_id, "1234"); /* from a decimal string */
    const struct aw_event_audience *a = &ev->subscription;
    AW_CHECK_INT_EQ(a->n_settings, 3); /* previous_audience_subscription_settings not read */
    AW_CHECK_STR_EQ(aw_event_setting_get(a->settings, a->n_settings, "listId"), "AbC987");
    AW_CHECK_STR_EQ(aw_event_setting_get(a->settings, a->n_settings, "consentMapping"),
                    "[{\"map\":\"sms_marketing\",\"value\":\"sms_marketing\"}]");
}

static void check_subscription_remove(const struct aw_event *ev)
{
    AW_CHECK_INT_EQ(ev->type, AW_EVENT_SUBSCRIPTION);
    AW_CHECK_INT_EQ(ev->sub_action, AW_EVENT_SUB_REMOVE);
    AW_CHECK_STR_EQ(ev->subscription.audience_id, "1234");
    AW_CHECK(ev->subscription.audience_name == NULL);
    AW_CHECK_INT_EQ(ev->n_account_settings, 0);
    AW_CHECK_INT_EQ(ev->n_profiles, 0); /* user_profiles is not read for subscriptions */
}

struct valid_case {
    const char *file;
    void (*check)(const struct aw_event *ev);
};

static const struct valid_case VALID[] = {
    {"membership_base.json", check_membership_base},
    {"membership_value_types.json", check_value_types},
    {"membership_no_profiles.json", check_no_profiles},
    {"membership_empty_and_null_lists.json", check_empty_lists},
    {"membership_consent_state.json", check_consent_state},
    {"membership_list_values.json", check_list_values},
    {"membership_attribute_deletes.json", check_attribute_deletes},
    {"membership_unknown_fields.json", check_unknown_fields},
    {"membership_hashed_identities.json", check_hashed},
    {"subscription_add.json", check_subscription_add},
    {"subscription_update.json", check_subscription_update},
    {"subscription_remove.json", check_subscription_remove},
};

/* detail: exact expected detail, or a prefix when it ends with '*'. */
struct invalid_case {
    const char *file;
    const char *detail;
};

#define P0 "user_profiles[0]"
#define P1 "user_profiles[1]"
static const struct invalid_case INVALID[] = {
    {"empty__zero_bytes.json", "payload"},
    {"not_json__truncated.json", "truncated at offset *"},
    {"not_json__trailing_data.json", "trailing data at offset *"},
    {"not_json__duplicate_key.json", "duplicate key at offset *"},
    {"not_json__duplicate_nested_action.json", "duplicate key at offset *"},
    {"not_json__invalid_utf8.json", "invalid UTF-8 at offset *"},
    {"not_json__nul_escape.json", "NUL character at offset *"},
    {"not_json__integer_overflow.json", "number out of range at offset *"},
    {"not_json__single_quotes.json", "syntax error at offset *"},
    {"not_json__nan.json", "syntax error at offset *"},
    {"not_json__whitespace_only.json", "*"},
    {"not_object__array.json", "(root)"},
    {"not_object__string.json", "(root)"},
    {"not_object__number.json", "(root)"},
    {"oversize__deep_nesting.json", "nesting"},
    {"oversize__long_id.json", "id"},
    {"unknown_type__event_processing.json", "type"},
    {"unknown_type__membership_response.json", "type"},
    {"unknown_type__empty_string.json", "type"},
    {"missing_field__no_type.json", "type"},
    {"missing_field__no_id.json", "id"},
    {"missing_field__null_id.json", "id"},
    {"missing_field__no_timestamp.json", "timestamp_ms"},
    {"missing_field__no_account.json", "account"},
    {"missing_field__no_account_id.json", "account.account_id"},
    {"missing_field__audience_id.json", P0 ".audiences[1].audience_id"},
    {"missing_field__audience_action.json", P1 ".audiences[0].action"},
    {"missing_field__identity_encoding.json", P0 ".user_identities[1].encoding"},
    {"missing_field__consent_consented.json", P0 ".consent_state.gdpr{1}.consented"},
    {"missing_field__subscription_action.json", "action"},
    {"missing_field__subscription_audience_id.json", "audience_id"},
    {"wrong_type__type_number.json", "type"},
    {"wrong_type__id_number.json", "id"},
    {"wrong_type__timestamp_string.json", "timestamp_ms"},
    {"wrong_type__timestamp_real.json", "timestamp_ms"},
    {"wrong_type__account_array.json", "account"},
    {"wrong_type__account_id_real.json", "account.account_id"},
    {"wrong_type__account_settings_array.json", "account.account_settings"},
    {"wrong_type__user_profiles_object.json", "user_profiles"},
    {"wrong_type__profile_string.json", P1},
    {"wrong_type__mpid_bool.json", P0 ".mpid"},
    {"wrong_type__identities_object.json", P1 ".user_identities"},
    {"wrong_type__identity_value_number.json", P0 ".user_identities[1].value"},
    {"wrong_type__audiences_string.json", P1 ".audiences"},
    {"wrong_type__audience_id_bool.json", P0 ".audiences[0].audience_id"},
    {"wrong_type__audience_name_number.json", P0 ".audiences[1].audience_name"},
    {"wrong_type__audience_settings_string.json",
     P0 ".audiences[0].audience_subscription_settings"},
    {"wrong_type__audience_action_array.json", P1 ".audiences[0].action"},
    {"wrong_type__user_attributes_object.json", P0 ".audiences[0].user_attributes"},
    {"wrong_type__attribute_element_string.json", P0 ".audiences[0].user_attributes[3]"},
    {"wrong_type__attribute_key_number.json", P1 ".audiences[0].user_attributes[0].key"},
    {"wrong_type__attribute_value_object.json", P0 ".audiences[0].user_attributes[1].value"},
    {"wrong_type__attribute_action_bool.json", P0 ".audiences[0].user_attributes[0].action"},
    {"wrong_type__list_value_string.json", P0 ".audiences[0].user_attributes[2].list_value"},
    {"wrong_type__list_value_nested.json", P0 ".audiences[0].user_attributes[2].list_value[2]"},
    {"wrong_type__list_value_null_item.json", P0 ".audiences[0].user_attributes[2].list_value[0]"},
    {"wrong_type__consent_state_array.json", P0 ".consent_state"},
    {"wrong_type__consent_gdpr_array.json", P0 ".consent_state.gdpr"},
    {"wrong_type__consent_purpose_bool.json", P0 ".consent_state.gdpr{1}"},
    {"wrong_type__consented_string.json", P0 ".consent_state.gdpr{0}.consented"},
    {"wrong_type__consent_timestamp_string.json",
     P0 ".consent_state.ccpa{0}.timestamp_unixtime_ms"},
    {"wrong_type__consent_document_number.json", P0 ".consent_state.gdpr{0}.document"},
    {"wrong_type__subscription_settings_string.json", "audience_subscription_settings"},
    {"wrong_type__subscription_audience_id_object.json", "audience_id"},
    {"bad_value__audience_action.json", P0 ".audiences[1].action"},
    {"bad_value__audience_action_case.json", P0 ".audiences[0].action"},
    {"bad_value__attribute_action.json", P1 ".audiences[0].user_attributes[0].action"},
    {"bad_value__subscription_action_delete.json", "action"},
    {"bad_value__negative_timestamp.json", "timestamp_ms"},
    {"bad_value__empty_id.json", "id"},
    {"bad_value__negative_account_id.json", "account.account_id"},
    {"bad_value__account_id_not_digits.json", "account.account_id"},
    {"bad_value__account_id_signed_string.json", "account.account_id"},
    {"bad_value__account_id_string_too_large.json", "account.account_id"},
    {"bad_value__audience_id_empty_string.json", P1 ".audiences[0].audience_id"},
    {"bad_value__value_and_list_value.json", P0 ".audiences[0].user_attributes[2].list_value"},
    {"bad_value__empty_attribute_key.json", P0 ".audiences[0].user_attributes[1].key"},
    {"bad_value__consent_negative_timestamp.json",
     P0 ".consent_state.gdpr{0}.timestamp_unixtime_ms"},
    {"bad_value__empty_gdpr_purpose.json", P0 ".consent_state.gdpr{2}"},
};

static bool detail_matches(const char *got, const char *want)
{
    size_t n = strlen(want);
    if (n > 0 && want[n - 1] == '*')
        return strncmp(got, want, n - 1) == 0;
    return strcmp(got, want) == 0;
}

/* Expected reason name = the file name up to "__". */
static void expected_reason(const char *file, char *out, size_t outlen)
{
    const char *sep = strstr(file, "__");
    size_t n = sep ? (size_t)(sep - file) : 0;
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, file, n);
    out[n] = '\0';
}

static bool detail_has_no_payload_value(const char *detail)
{
    /* A few payload values that must never leak into a detail. */
    static const char *const secrets[] = {"pk_test", "@example.com", "+1415", "Newsletter"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (strstr(detail, secrets[i]) != NULL)
            return false;
    return true;
}

static void test_valid_fixture(const struct valid_case *vc)
{
    size_t len = 0;
    char *buf = read_rel("tests/data/events/valid", vc->file, &len);
    if (buf == NULL)
        return;
    struct aw_event ev;
    enum aw_event_reason reason = AW_EVENT_EMPTY;
    char detail[DETAIL_LEN] = "x";
    enum aw_err err = decode_exact(buf, len, &ev, &reason, detail);
    AW_CHECK_MSG(err == AW_OK, "%s: %s %s", vc->file, aw_event_reason_str(reason), detail);
    AW_CHECK_INT_EQ(reason, AW_EVENT_OK);
    AW_CHECK_STR_EQ(detail, "");
    if (err == AW_OK) {
        vc->check(&ev);
    }
    aw_event_clear(&ev);
    aw_event_clear(&ev); /* idempotent */
    AW_CHECK(ev.id == NULL && ev.n_profiles == 0);
    free(buf);
}

static void test_invalid_fixture(const struct invalid_case *ic)
{
    size_t len = 0;
    char *buf = read_rel("tests/data/events/invalid", ic->file, &len);
    if (buf == NULL)
        return;
    char want[64];
    expected_reason(ic->file, want, sizeof want);
    struct aw_event ev;
    enum aw_event_reason reason = AW_EVENT_OK;
    char detail[DETAIL_LEN] = "";
    enum aw_err err = decode_exact(buf, len, &ev, &reason, detail);
    AW_CHECK_MSG(err == AW_ERR_INVALID, "%s decoded", ic->file);
    AW_CHECK_MSG(strcmp(aw_event_reason_str(reason), want) == 0, "%s: reason %s, want %s (%s)",
                 ic->file, aw_event_reason_str(reason), want, detail);
    AW_CHECK_MSG(detail_matches(detail, ic->detail), "%s: detail \"%s\", want \"%s\"", ic->file,
                 detail, ic->detail);
    AW_CHECK_MSG(detail_has_no_payload_value(detail), "%s: detail leaks \"%s\"", ic->file, detail);
    /* *out is left cleared. */
    AW_CHECK(ev.id == NULL && ev.account_id == NULL && ev.profiles == NULL && ev.n_profiles == 0 &&
             ev.account_settings == NULL && ev.subscription.audience_id == NULL);
    aw_event_clear(&ev);
    free(buf);
}

/* Every file in dir must be listed, and every listed file must exist (no silent skips). */
static void test_fixture_lists_complete(void)
{
    static const char *const dirs[] = {"tests/data/events/valid", "tests/data/events/invalid"};
    for (size_t k = 0; k < 2; k++) {
        char path[1024];
        aw_test_src_path(path, sizeof path, dirs[k]);
        DIR *d = opendir(path);
        AW_CHECK_MSG(d != NULL, "cannot open %s", path);
        if (d == NULL)
            continue;
        size_t on_disk = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            size_t n = strlen(e->d_name);
            if (n < 5 || strcmp(e->d_name + n - 5, ".json") != 0)
                continue;
            on_disk++;
            bool listed = false;
            if (k == 0) {
                for (size_t i = 0; i < sizeof VALID / sizeof VALID[0]; i++)
                    listed = listed || strcmp(VALID[i].file, e->d_name) == 0;
            } else {
                for (size_t i = 0; i < sizeof INVALID / sizeof INVALID[0]; i++)
                    listed = listed || strcmp(INVALID[i].file, e->d_name) == 0;
            }
            AW_CHECK_MSG(listed, "fixture %s/%s has no table entry", dirs[k], e->d_name);
        }
        closedir(d);
        size_t listed_n =
            k == 0 ? sizeof VALID / sizeof VALID[0] : sizeof INVALID / sizeof INVALID[0];
        AW_CHECK_MSG(on_disk == listed_n, "%s: %zu files, %zu table entries", dirs[k], on_disk,
                     listed_n);
    }
    /* Every reason is covered by some invalid fixture. */
    for (int r = AW_EVENT_EMPTY; r <= AW_EVENT_BAD_VALUE; r++) {
        const char *name = aw_event_reason_str((enum aw_event_reason)r);
        bool seen = false;
        for (size_t i = 0; i < sizeof INVALID / sizeof INVALID[0]; i++) {
            char want[64];
            expected_reason(INVALID[i].file, want, sizeof want);
            seen = seen || strcmp(want, name) == 0;
        }
        AW_CHECK_MSG(seen, "no invalid fixture for reason %s", name);
    }
}

/* ---- mParticle's own examples (vendored in schemas/vendor/mparticle/) ---- */

static void test_mparticle_examples(void)
{
    size_t len = 0;
    struct aw_event ev;
    enum aw_event_reason reason;
    char detail[DETAIL_LEN];

    char *buf =
        read_rel("schemas/vendor/mparticle/examples", "AudienceMembershipChangeRequest.json", &len);
    if (buf != NULL) {
        enum aw_err err = decode_exact(buf, len, &ev, &reason, detail);
        AW_CHECK_MSG(err == AW_OK, "membership example: %s %s", aw_event_reason_str(reason),
                     detail);
        if (err == AW_OK) {
            AW_CHECK_INT_EQ(ev.type, AW_EVENT_MEMBERSHIP);
            AW_CHECK_STR_EQ(ev.id, "1317071d-3342-4e1e-a691-84bd7e762bda");
            AW_CHECK(ev.timestamp_ms == 1714592744065ull);
            AW_CHECK_STR_EQ(ev.account_id, "123456");
            AW_CHECK_INT_EQ(ev.n_account_settings, 3);
            AW_CHECK_STR_EQ(aw_event_setting_get(ev.account_settings, ev.n_account_settings,
                                                 "Example Boolean Setting"),
                            "false");
            AW_CHECK_INT_EQ(ev.n_profiles, 1);
            const struct aw_event_profile *p = ev.n_profiles ? &ev.profiles[0] : NULL;
            if (p != NULL) {
                AW_CHECK_STR_EQ(p->mpid, "12345");
                AW_CHECK_INT_EQ(p->n_identities, 2); /* device/partner identities ignored */
                CHECK_IDENTITY(p, 0, "email", "md5", "e179e95c00e7718ab4a23840f992ea63");
                CHECK_IDENTITY(p, 1, "customer", "md5", "4739c5c11d833bb199c16ff95a92b267");
                AW_CHECK_INT_EQ(p->n_consents, 0);
                AW_CHECK_INT_EQ(p->n_audiences, 3);
                if (p->n_audiences == 3) {
                    AW_CHECK_STR_EQ(p->audiences[0].audience_id, "456");
                    AW_CHECK_STR_EQ(p->audiences[0].audience_name, "Example Audience Name");
                    AW_CHECK_INT_EQ(p->audiences[0].action, AW_EVENT_ADD);
                    AW_CHECK_STR_EQ(aw_event_setting_get(p->audiences[0].settings,
                                                         p->audiences[0].n_settings,
                                                         "Example Audience-specific setting"),
                                    "Example Value");
                    const struct aw_event_audience *a = &p->audiences[1];
                    AW_CHECK_STR_EQ(a->audience_id, "789");
                    AW_CHECK_INT_EQ(a->action, AW_EVENT_ATTRIBUTE_UPDATE);
                    AW_CHECK_INT_EQ(a->n_attributes, 2); /* the trailing { } is skipped */
                    CHECK_ATTR(a, 0, "Some Key", "\"9999999\"", AW_EVENT_ATTR_UPSERT);
                    CHECK_ATTR(a, 1, "Churned", NULL, AW_EVENT_ATTR_DELETE);
                    AW_CHECK_STR_EQ(p->audiences[2].audience_id, "654");
                    AW_CHECK_INT_EQ(p->audiences[2].action, AW_EVENT_DELETE);
                }
            }
        }
        aw_event_clear(&ev);
        free(buf);
    }

    buf = read_rel("schemas/vendor/mparticle/examples", "AudienceSubscriptionRequest.json", &len);
    if (buf != NULL) {
        enum aw_err err = decode_exact(buf, len, &ev, &reason, detail);
        AW_CHECK_MSG(err == AW_OK, "subscription example: %s %s", aw_event_reason_str(reason),
                     detail);
        if (err == AW_OK) {
            AW_CHECK_INT_EQ(ev.type, AW_EVENT_SUBSCRIPTION);
            AW_CHECK_STR_EQ(ev.id, "416d2087-8b21-476d-95da-1b78a7f44261");
            AW_CHECK(ev.timestamp_ms == 1714592744066ull);
            AW_CHECK_STR_EQ(ev.account_id, "123456");
            AW_CHECK_STR_EQ(
                aw_event_setting_get(ev.account_settings, ev.n_account_settings, "apiKey"),
                "sample API Key");
            AW_CHECK_STR_EQ(ev.subscription.audience_id, "1234");
            AW_CHECK_STR_EQ(ev.subscription.audience_name, "New Users Low Engagement");
            AW_CHECK_INT_EQ(ev.subscription.n_settings, 0);
            AW_CHECK_INT_EQ(ev.sub_action, AW_EVENT_SUB_ADD);
        }
        aw_event_clear(&ev);
        free(buf);
    }

    /* The response messages are not inputs: unknown_type. */
    buf = read_rel("schemas/vendor/mparticle/examples", "AudienceMembershipChangeResponse.json",
                   &len);
    if (buf != NULL) {
        AW_CHECK_INT_EQ(decode_exact(buf, len, &ev, &reason, detail), AW_ERR_INVALID);
        AW_CHECK_INT_EQ(reason, AW_EVENT_UNKNOWN_TYPE);
        free(buf);
    }
}

/* ---- generated cases ---- */

static enum aw_event_reason decode_reason(const char *text, size_t len, char *detail)
{
    struct aw_event ev;
    enum aw_event_reason reason = AW_EVENT_EMPTY;
    enum aw_err err = decode_exact(text, len, &ev, &reason, detail);
    AW_CHECK((err == AW_OK) == (reason == AW_EVENT_OK));
    aw_event_clear(&ev);
    return reason;
}

static enum aw_event_reason decode_str(const char *text, char *detail)
{
    return decode_reason(text, strlen(text), detail);
}

#define HEAD                                                                                       \
    "{\"type\":\"audience_membership_change_request\",\"id\":\"g-1\",\"timestamp_ms\":1,"          \
    "\"account\":{\"account_id\":1}"

/* Appends n copies of ch. */
static void append_repeat(struct aw_buf *b, char ch, size_t n)
{
    char chunk[4096];
    memset(chunk, ch, sizeof chunk);
    enum aw_err err = AW_OK;
    while (n > 0 && err == AW_OK) {
        size_t k = n < sizeof chunk ? n : sizeof chunk;
        err = aw_buf_append(b, chunk, k);
        n -= k;
    }
    AW_CHECK_INT_EQ(err, AW_OK);
}

static void build_padded(struct aw_buf *b, size_t total)
{
    /* HEAD,"pad":"xxxx"} padded to exactly total bytes. */
    aw_buf_reset(b);
    AW_CHECK_INT_EQ(aw_buf_append_str(b, HEAD ",\"pad\":\""), AW_OK);
    append_repeat(b, 'x', total - b->len - 2);
    AW_CHECK_INT_EQ(aw_buf_append_str(b, "\"}"), AW_OK);
}

static void test_limits(void)
{
    char detail[DETAIL_LEN];
    struct aw_buf b;
    aw_buf_init(&b, 0);

    /* Payload size: exactly the maximum is fine, one more byte is oversize (before parsing). */
    build_padded(&b, AW_EVENT_MAX_BYTES);
    AW_CHECK_INT_EQ(b.len, AW_EVENT_MAX_BYTES);
    AW_CHECK_INT_EQ(decode_reason(b.data, b.len, detail), AW_EVENT_OK);
    build_padded(&b, AW_EVENT_MAX_BYTES + 1);
    AW_CHECK_INT_EQ(decode_reason(b.data, b.len, detail), AW_EVENT_OVERSIZE);
    AW_CHECK_STR_EQ(detail, "payload");

    /* Nesting: AW_EVENT_MAX_DEPTH levels in total pass, one more does not. */
    for (int extra = 0; extra <= 1; extra++) {
        aw_buf_reset(&b);
        AW_CHECK_INT_EQ(aw_buf_append_str(&b, HEAD ",\"n\":"), AW_OK);
        size_t levels = AW_EVENT_MAX_DEPTH - 1 + (size_t)extra; /* the root is one level */
        append_repeat(&b, '[', levels);
        append_repeat(&b, ']', levels);
        AW_CHECK_INT_EQ(aw_buf_append(&b, "}", 1), AW_OK);
        AW_CHECK_INT_EQ(decode_reason(b.data, b.len, detail),
                        extra ? AW_EVENT_OVERSIZE : AW_EVENT_OK);
    }
    /* Brackets inside strings do not count. */
    aw_buf_reset(&b);
    AW_CHECK_INT_EQ(aw_buf_append_str(&b, HEAD ",\"s\":\""), AW_OK);
    for (int i = 0; i < 100; i++)
        AW_CHECK_INT_EQ(aw_buf_append_str(&b, "[{\\\""), AW_OK);
    AW_CHECK_INT_EQ(aw_buf_append_str(&b, "\"}"), AW_OK);
    AW_CHECK_INT_EQ(decode_reason(b.data, b.len, detail), AW_EVENT_OK);

    /* String length: AW_EVENT_MAX_STRING bytes pass, one more is oversize with its path. */
    for (int extra = 0; extra <= 1; extra++) {
        aw_buf_reset(&b);
        AW_CHECK_INT_EQ(aw_buf_append_str(&b,
                                          HEAD ",\"user_profiles\":[{\"audiences\":[{"
                                               "\"audience_id\":1,\"action\":\"add\","
                                               "\"user_attributes\":[{\"key\":\"k\",\"value\":\""),
                        AW_OK);
        append_repeat(&b, 'v', AW_EVENT_MAX_STRING + (size_t)extra);
        AW_CHECK_INT_EQ(aw_buf_append_str(&b, "\"}]}]}]}"), AW_OK);
        AW_CHECK_INT_EQ(decode_reason(b.data, b.len, detail),
                        extra ? AW_EVENT_OVERSIZE : AW_EVENT_OK);
        if (extra)
            AW_CHECK_STR_EQ(detail, "user_profiles[0].audiences[0].user_attributes[0].value");
    }

    /* Item counts: AW_EVENT_MAX_ITEMS profiles pass (empty profiles), one more is oversize. */
    for (int extra = 0; extra <= 1; extra++) {
        aw_buf_reset(&b);
        AW_CHECK_INT_EQ(aw_buf_append_str(&b, HEAD ",\"user_profiles\":["), AW_OK);
        AW_CHECK_INT_EQ(aw_buf_append_str(&b, "{}"), AW_OK);
        for (size_t i = 1; i < AW_EVENT_MAX_ITEMS + (size_t)extra; i++)
            (void)aw_buf_append(&b, ",{}", 3); /* unlimited buffer: cannot fail */
        AW_CHECK_INT_EQ(aw_buf_append_str(&b, "]}"), AW_OK);
        struct aw_event ev;
        enum aw_event_reason reason;
        enum aw_err err = aw_event_decode(b.data, b.len, &ev, &reason, detail, sizeof detail);
        if (extra) {
            AW_CHECK_INT_EQ(err, AW_ERR_INVALID);
            AW_CHECK_INT_EQ(reason, AW_EVENT_OVERSIZE);
            AW_CHECK_STR_EQ(detail, "user_profiles");
        } else {
            AW_CHECK_INT_EQ(err, AW_OK);
            AW_CHECK_INT_EQ(ev.n_profiles, AW_EVENT_MAX_ITEMS);
        }
        aw_event_clear(&ev);
    }
    /* Same for list_value items. */
    aw_buf_reset(&b);
    AW_CHECK_INT_EQ(aw_buf_append_str(&b, HEAD ",\"user_profiles\":[{\"audiences\":[{"
                                               "\"audience_id\":1,\"action\":\"add\","
                                               "\"user_attributes\":[{\"key\":\"k\","
                                               "\"list_value\":["),
                    AW_OK);
    AW_CHECK_INT_EQ(aw_buf_append_str(&b, "1"), AW_OK);
    for (size_t i = 1; i < AW_EVENT_MAX_ITEMS + 1; i++)
        (void)aw_buf_append(&b, ",1", 2); /* unlimited buffer: cannot fail */
    AW_CHECK_INT_EQ(aw_buf_append_str(&b, "]}]}]}]}"), AW_OK);
    AW_CHECK_INT_EQ(decode_reason(b.data, b.len, detail), AW_EVENT_OVERSIZE);
    AW_CHECK_STR_EQ(detail, "user_profiles[0].audiences[0].user_attributes[0].list_value");

    /* id: AW_EVENT_MAX_ID bytes pass. */
    aw_buf_reset(&b);
    AW_CHECK_INT_EQ(aw_buf_append_str(&b, "{\"type\":\"audience_subscription_request\",\"id\":\""),
                    AW_OK);
    append_repeat(&b, 'i', AW_EVENT_MAX_ID);
    AW_CHECK_INT_EQ(aw_buf_append_str(&b, "\",\"timestamp_ms\":1,\"account\":{\"account_id\":1},"
                                          "\"audience_id\":2,\"action\":\"remove\"}"),
                    AW_OK);
    AW_CHECK_INT_EQ(decode_reason(b.data, b.len, detail), AW_EVENT_OK);

    aw_buf_free(&b);
}

static void test_edge_values(void)
{
    char detail[DETAIL_LEN];
    struct aw_event ev;
    enum aw_event_reason reason;

    /* A real with an integral value is still not an integer (JSON Schema would accept it). */
    AW_CHECK_INT_EQ(decode_str("{\"type\":\"audience_subscription_request\",\"id\":\"e\","
                               "\"timestamp_ms\":1,\"account\":{\"account_id\":1},"
                               "\"audience_id\":456.0,\"action\":\"add\"}",
                               detail),
                    AW_EVENT_WRONG_TYPE);
    AW_CHECK_STR_EQ(detail, "audience_id");

    /* Largest id, as integer and as string; zero. */
    const char *big = "{\"type\":\"audience_subscription_request\",\"id\":\"e\",\"timestamp_ms\":"
                      "9223372036854775807,\"account\":{\"account_id\":9223372036854775807},"
                      "\"audience_id\":\"09223372036854775807\",\"action\":\"update\"}";
    AW_CHECK_INT_EQ(aw_event_decode(big, strlen(big), &ev, &reason, detail, sizeof detail), AW_OK);
    AW_CHECK_STR_EQ(ev.account_id, "9223372036854775807");
    AW_CHECK_STR_EQ(ev.subscription.audience_id, "9223372036854775807");
    AW_CHECK(ev.timestamp_ms == 9223372036854775807ull);
    aw_event_clear(&ev);
    const char *zero =
        "{\"type\":\"audience_subscription_request\",\"id\":\"e\",\"timestamp_ms\":0,"
        "\"account\":{\"account_id\":\"0000\"},\"audience_id\":0,\"action\":\"add\"}";
    AW_CHECK_INT_EQ(aw_event_decode(zero, strlen(zero), &ev, &reason, detail, sizeof detail),
                    AW_OK);
    AW_CHECK_STR_EQ(ev.account_id, "0");
    AW_CHECK_STR_EQ(ev.subscription.audience_id, "0");
    aw_event_clear(&ev);

    /* Reals are written by jansson with 17 significant digits, which read back as the very same
     * double (not the shortest text: payload.c picks that for Klaviyo); control characters are
     * escaped, '/' and UTF-8 are not. */
    const char *vals =
        HEAD ",\"user_profiles\":[{\"audiences\":[{\"audience_id\":1,\"action\":\"add\","
             "\"user_attributes\":[{\"key\":\"a\",\"value\":0.1},"
             "{\"key\":\"b\",\"value\":-2.5e-7},{\"key\":\"c\",\"value\":1e300},"
             "{\"key\":\"d\",\"value\":\"\\u0001\\t/\\u00e9\"},"
             "{\"key\":\"e\",\"value\":-0.0},{\"key\":\"f\",\"value\":false}]}]}]}";
    AW_CHECK_INT_EQ(aw_event_decode(vals, strlen(vals), &ev, &reason, detail, sizeof detail),
                    AW_OK);
    if (ev.n_profiles == 1 && ev.profiles[0].n_audiences == 1) {
        const struct aw_event_audience *a = &ev.profiles[0].audiences[0];
        CHECK_ATTR(a, 0, "a", "0.10000000000000001", AW_EVENT_ATTR_UPSERT);
        CHECK_ATTR(a, 1, "b", "-2.4999999999999999e-7", AW_EVENT_ATTR_UPSERT);
        CHECK_ATTR(a, 2, "c", "1.0000000000000001e300", AW_EVENT_ATTR_UPSERT);
        static const double want[3] = {0.1, -2.5e-7, 1e300};
        for (size_t i = 0; i < 3 && i < a->n_attributes; i++)
            AW_CHECK_MSG(a->attributes[i].value_json &&
                             strtod(a->attributes[i].value_json, NULL) == want[i],
                         "real %zu does not read back as the same double", i);
        CHECK_ATTR(a, 3, "d", "\"\\u0001\\t/\xc3\xa9\"", AW_EVENT_ATTR_UPSERT);
        CHECK_ATTR(a, 4, "e", "-0.0", AW_EVENT_ATTR_UPSERT);
        CHECK_ATTR(a, 5, "f", "false", AW_EVENT_ATTR_UPSERT);
    } else {
        AW_CHECK(false);
    }
    aw_event_clear(&ev);

    /* Keys are addressed by position only, never by name, in details. */
    AW_CHECK_INT_EQ(decode_str(HEAD ",\"user_profiles\":[{\"consent_state\":{\"ccpa\":{"
                                    "\"secret_purpose\":{\"consented\":1}}}}]}",
                               detail),
                    AW_EVENT_WRONG_TYPE);
    AW_CHECK_STR_EQ(detail, "user_profiles[0].consent_state.ccpa{0}.consented");
}

static void test_api_contract(void)
{
    char detail[DETAIL_LEN];
    struct aw_event ev;
    enum aw_event_reason reason;

    /* NULL payload with length 0 (a Kafka tombstone). */
    AW_CHECK_INT_EQ(aw_event_decode(NULL, 0, &ev, &reason, detail, sizeof detail), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(reason, AW_EVENT_EMPTY);
    AW_CHECK_STR_EQ(detail, "payload");

    /* *out need not be initialised: it is overwritten, not freed. */
    const char *msg = HEAD "}";
    memset(&ev, 0xAB, sizeof ev);
    AW_CHECK_INT_EQ(aw_event_decode(msg, strlen(msg), &ev, &reason, NULL, 0), AW_OK);
    AW_CHECK_STR_EQ(ev.id, "g-1");
    aw_event_clear(&ev);
    memset(&ev, 0xAB, sizeof ev);
    AW_CHECK_INT_EQ(aw_event_decode("[]", 2, &ev, &reason, NULL, 0), AW_ERR_INVALID);
    AW_CHECK(ev.id == NULL && ev.n_profiles == 0);
    aw_event_clear(&ev);

    /* A short detail buffer is truncated and terminated. */
    char small[8];
    AW_CHECK_INT_EQ(aw_event_decode(HEAD ",\"user_profiles\":7}", strlen(HEAD) + 19, &ev, &reason,
                                    small, sizeof small),
                    AW_ERR_INVALID);
    AW_CHECK_INT_EQ(reason, AW_EVENT_WRONG_TYPE);
    AW_CHECK_STR_EQ(small, "user_pr");
    detail[0] = 'x';
    AW_CHECK_INT_EQ(aw_event_decode("{", 1, &ev, &reason, detail, 0), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(detail[0], 'x'); /* detail_len 0: untouched */

    /* aw_event_clear on a zeroed struct and on NULL. */
    memset(&ev, 0, sizeof ev);
    aw_event_clear(&ev);
    aw_event_clear(NULL);

    /* Reason names are stable and distinct. */
    static const char *const names[] = {"ok",         "empty",        "oversize",      "not_json",
                                        "not_object", "unknown_type", "missing_field", "wrong_type",
                                        "bad_value"};
    for (int r = AW_EVENT_OK; r <= AW_EVENT_BAD_VALUE; r++)
        AW_CHECK_STR_EQ(aw_event_reason_str((enum aw_event_reason)r), names[r]);
    AW_CHECK_STR_EQ(aw_event_reason_str((enum aw_event_reason)99), "unknown");

    /* aw_event_setting_get. */
    struct aw_event_setting s[2] = {{"a", "1"}, {"b", "2"}};
    AW_CHECK_STR_EQ(aw_event_setting_get(s, 2, "b"), "2");
    AW_CHECK(aw_event_setting_get(s, 2, "B") == NULL);
    AW_CHECK(aw_event_setting_get(s, 1, "b") == NULL);
    AW_CHECK(aw_event_setting_get(NULL, 0, "a") == NULL);
}

/* Every strict prefix of a valid message is rejected (and nothing crashes or leaks). */
static void test_truncations(void)
{
    size_t len = 0;
    char *buf = read_rel("tests/data/events/valid", "membership_value_types.json", &len);
    if (buf == NULL)
        return;
    size_t end = len;
    while (end > 0 && buf[end - 1] != '}')
        end--;
    char detail[DETAIL_LEN];
    size_t rejected = 0;
    for (size_t n = 0; n < end; n++)
        if (decode_reason(buf, n, detail) != AW_EVENT_OK)
            rejected++;
    AW_CHECK_INT_EQ(rejected, end);
    AW_CHECK_INT_EQ(decode_reason(buf, end, detail), AW_EVENT_OK);
    free(buf);
}

int main(void)
{
    for (size_t i = 0; i < sizeof VALID / sizeof VALID[0]; i++)
        test_valid_fixture(&VALID[i]);
    for (size_t i = 0; i < sizeof INVALID / sizeof INVALID[0]; i++)
        test_invalid_fixture(&INVALID[i]);
    test_fixture_lists_complete();
    test_mparticle_examples();
    test_limits();
    test_edge_values();
    test_api_contract();
    test_truncations();
    return aw_test_done();
}
