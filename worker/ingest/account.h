/* account.h -- one account's settings (docs/design.md §2): `apiKey`, `alternateIdentifier`,
 * `phoneIdentifier`, from the message's `account.account_settings`, overridden key by key by the
 * account's entry in the config file (config_file.h loads it and hands out its overrides).
 * This module owns the grammar of the two identifier settings, which the config file loader
 * uses to validate its values. Pure: no I/O, nothing logged; secrets (API keys) never appear in
 * any text written here. Any thread. */
#ifndef AW_WORKER_ACCOUNT_H
#define AW_WORKER_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct aw_event_setting;

/* Reasons an account is unusable (struct aw_account.problem; map.c rejects every profile of
 * such a message with this reason). */
#define AW_ACCOUNT_MISSING_API_KEY "missing_api_key"
#define AW_ACCOUNT_INVALID_SETTINGS "invalid_account_settings"

/* Settings that override the message's, key by key (the config file's entry of an account).
 * Plain data; NULL members are not overridden. The owner (config_file.c) keeps the strings. */
struct aw_account_overrides {
    char *api_key;              /* secret, trimmed and checked; never log it */
    char *alternate_identifier; /* raw value as written (valid for aw_account_parse_alternate) */
    char *phone_identifier;     /* raw value as written (valid for aw_account_parse_phone) */
};

/* Resolved settings of one account. Plain data, one owner. */
struct aw_account {
    char *account_id;         /* owned */
    char *api_key;            /* owned secret; NULL when none is configured. Never log it. */
    bool api_key_from_config; /* api_key came from AW_CONFIG_FILE: never written to Redis */
    /* Identity type used as Klaviyo external_id ("customer", "other", "other2" ... "other10"),
     * static string; NULL = None (no external_id). */
    const char *alternate_identity;
    /* Identity type read as the phone ("mobile_number" | "phone_number_2" | "phone_number_3"),
     * static string, never NULL after resolve. */
    const char *phone_identity;
    /* NULL when usable, else a static reason code: AW_ACCOUNT_MISSING_API_KEY or
     * AW_ACCOUNT_INVALID_SETTINGS. */
    const char *problem;
    /* When problem is set: the setting at fault ("apiKey", "alternateIdentifier",
     * "phoneIdentifier"), static string; never its value. */
    const char *problem_setting;
};

/* Resolves account account_id from the message's account_settings (settings[0..n), borrowed),
 * overridden key by key by ov (borrowed; NULL = no overrides, e.g. aw_config_file_get found no
 * entry). The API key is trimmed; it must then be printable ASCII without spaces (it goes into
 * an HTTP header). Identifier values as in aw_account_parse_alternate / _phone. *out is
 * overwritten and caller-owned (aw_account_clear) in every case. Returns AW_OK when usable;
 * AW_ERR_INVALID when out->problem is set (the account is still filled so that map.c can reject
 * the profiles with that reason). Pure; any thread. */
enum aw_err aw_account_resolve(const struct aw_account_overrides *ov, const char *account_id,
                               const struct aw_event_setting *settings, size_t n,
                               struct aw_account *out);

/* Releases what *a owns (wiping the key) and zeroes it. Safe on a zeroed struct. */
void aw_account_clear(struct aw_account *a);

/* True when key can be sent as an API key: non-empty printable ASCII without spaces. Pure. */
bool aw_account_api_key_is_clean(const char *key);

/* Wipes a secret string before freeing it (keeps keys out of reused heap and core dumps).
 * NULL is a no-op. */
void aw_account_free_secret(char *secret);

/* Parses an alternateIdentifier value into its identity type (static) or NULL for None.
 * Accepted (case-insensitive; spaces, '_' and '-' ignored): NULL, empty or `None`; `customer` /
 * `Customer Id`; `other` / `Other Id`; `other2`..`other10` / `Other 2` / `Other Id 2`.
 * AW_ERR_INVALID when unknown. Pure; any thread. */
enum aw_err aw_account_parse_alternate(const char *value, const char **identity_type);

/* Parses a phoneIdentifier value into its identity type (static); NULL/empty = default
 * "mobile_number". Accepted (same folding): `mobile_number` / `Mobile Number` / `mobile`,
 * `phone_number_2`, `phone_number_3`. AW_ERR_INVALID when unknown. Pure; any thread. */
enum aw_err aw_account_parse_phone(const char *value, const char **identity_type);

#endif
