/* account.c -- one account's settings (docs/design.md §2) and the grammar of their values. Nothing
 * here logs or formats a value: problems name the setting only. */
#include "worker/ingest/account.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "common/text.h"
#include "worker/ingest/event.h"

bool aw_account_api_key_is_clean(const char *key)
{
    if (!key || !*key)
        return false;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f)
            return false;
    }
    return true;
}

void aw_account_free_secret(char *secret)
{
    if (!secret)
        return;
    volatile char *p = secret;
    while (*p)
        *p++ = '\0';
    free(secret);
}

/* ---------------------------------------------------------------- choices */

/* Lower-cases value into out dropping ' ', '\t', '_', '-' so that display names and setting
 * names compare equal ("Customer Id" == "customerid", "Phone Number 2" == "phonenumber2").
 * False when it does not fit. */
static bool normalise_choice(const char *value, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = value; *p; p++) {
        if (*p == ' ' || *p == '_' || *p == '-' || *p == '\t')
            continue;
        if (o + 1 >= outlen)
            return false;
        out[o++] = (char)tolower((unsigned char)*p);
    }
    out[o] = '\0';
    return true;
}

static const char *const k_other_types[] = {"other",  "other2", "other3", "other4", "other5",
                                            "other6", "other7", "other8", "other9", "other10"};

enum aw_err aw_account_parse_alternate(const char *value, const char **identity_type)
{
    char norm[32];
    *identity_type = NULL;
    if (!value)
        return AW_OK;
    if (!normalise_choice(value, norm, sizeof norm))
        return AW_ERR_INVALID;
    if (norm[0] == '\0' || strcmp(norm, "none") == 0)
        return AW_OK;
    if (strcmp(norm, "customer") == 0 || strcmp(norm, "customerid") == 0) {
        *identity_type = "customer";
        return AW_OK;
    }
    const char *rest;
    if (strncmp(norm, "otherid", 7) == 0)
        rest = norm + 7;
    else if (strncmp(norm, "other", 5) == 0)
        rest = norm + 5;
    else
        return AW_ERR_INVALID;
    if (*rest == '\0') {
        *identity_type = k_other_types[0];
        return AW_OK;
    }
    /* "2".."10": no leading zeros, no sign. */
    if (rest[0] < '1' || rest[0] > '9')
        return AW_ERR_INVALID;
    unsigned num = 0;
    for (const char *p = rest; *p; p++) {
        if (*p < '0' || *p > '9' || num > 10)
            return AW_ERR_INVALID;
        num = num * 10u + (unsigned)(*p - '0');
    }
    if (num < 2 || num > 10)
        return AW_ERR_INVALID;
    *identity_type = k_other_types[num - 1];
    return AW_OK;
}

enum aw_err aw_account_parse_phone(const char *value, const char **identity_type)
{
    char norm[32];
    *identity_type = "mobile_number";
    if (!value)
        return AW_OK;
    if (!normalise_choice(value, norm, sizeof norm))
        return AW_ERR_INVALID;
    if (norm[0] == '\0' || strcmp(norm, "mobilenumber") == 0 || strcmp(norm, "mobile") == 0)
        return AW_OK;
    if (strcmp(norm, "phonenumber2") == 0) {
        *identity_type = "phone_number_2";
        return AW_OK;
    }
    if (strcmp(norm, "phonenumber3") == 0) {
        *identity_type = "phone_number_3";
        return AW_OK;
    }
    return AW_ERR_INVALID;
}

/* ---------------------------------------------------------------- resolve */

void aw_account_clear(struct aw_account *a)
{
    free(a->account_id);
    aw_account_free_secret(a->api_key);
    memset(a, 0, sizeof *a);
}

enum aw_err aw_account_resolve(const struct aw_account_overrides *ov, const char *account_id,
                               const struct aw_event_setting *settings, size_t n,
                               struct aw_account *out)
{
    memset(out, 0, sizeof *out);
    out->account_id = aw_strdup(account_id ? account_id : "");
    out->phone_identity = "mobile_number";

    const char *key =
        (ov && ov->api_key) ? ov->api_key : aw_event_setting_get(settings, n, "apiKey");
    const char *alt = (ov && ov->alternate_identifier)
                          ? ov->alternate_identifier
                          : aw_event_setting_get(settings, n, "alternateIdentifier");
    const char *phone = (ov && ov->phone_identifier)
                            ? ov->phone_identifier
                            : aw_event_setting_get(settings, n, "phoneIdentifier");

    if (key && !aw_text_is_blank(key)) {
        out->api_key = aw_text_trim_dup(key, strlen(key));
        out->api_key_from_config = ov && ov->api_key;
        if (!aw_account_api_key_is_clean(out->api_key)) {
            out->problem = AW_ACCOUNT_INVALID_SETTINGS;
            out->problem_setting = "apiKey";
        }
    } else {
        out->problem = AW_ACCOUNT_MISSING_API_KEY;
        out->problem_setting = "apiKey";
    }
    if (aw_account_parse_alternate(alt, &out->alternate_identity) != AW_OK && !out->problem) {
        out->problem = AW_ACCOUNT_INVALID_SETTINGS;
        out->problem_setting = "alternateIdentifier";
    }
    if (aw_account_parse_phone(phone, &out->phone_identity) != AW_OK && !out->problem) {
        out->problem = AW_ACCOUNT_INVALID_SETTINGS;
        out->problem_setting = "phoneIdentifier";
    }
    return out->problem ? AW_ERR_INVALID : AW_OK;
}
