/* account.h -- per-account and per-connection settings (DESIGN.md §2).
 *
 * Account settings come from `account.account_settings` of each message; the optional config
 * file (AW_CONFIG_FILE: a JSON object keyed by account id) overrides them key by key.
 * Connection settings come from an audience's `audience_subscription_settings`.
 * This module only parses and validates; the mapping rules that use the settings live in
 * map.c. Secrets (API keys) never appear in any error text or log line written here. */
#ifndef AW_WORKER_ACCOUNT_H
#define AW_WORKER_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "worker/store/change.h"

struct aw_event_setting;

/* Largest config file / API key file read (bytes); larger files are configuration errors. */
#define AW_ACCOUNT_CONFIG_MAX_BYTES (1024u * 1024u)
#define AW_ACCOUNT_KEY_FILE_MAX_BYTES 4096u

/* Reasons an account is unusable (struct aw_account.problem; map.c rejects every profile of
 * such a message with this reason). */
#define AW_ACCOUNT_MISSING_API_KEY "missing_api_key"
#define AW_ACCOUNT_INVALID_SETTINGS "invalid_account_settings"
/* Reason for (profile, audience) pairs whose connection settings do not parse. */
#define AW_ACCOUNT_INVALID_CONNECTION "invalid_connection_settings"

/* Looks up an environment variable: a borrowed value or NULL. Injectable for tests; NULL in
 * aw_account_config_load means getenv(3). ctx is passed through. */
typedef const char *(*aw_account_getenv_fn)(const char *name, void *ctx);

/* The parsed config file (opaque). Immutable after load, so any thread may read it. */
struct aw_account_config;

/* Reads and validates the config file at path: a JSON object keyed by account id, each value an
 * object with optional keys `apiKey` | `apiKeyEnv` (name of an environment variable, read now
 * through getenv_fn) | `apiKeyFile` (path of a file holding the key, relative paths from the config
 * file's directory; surrounding whitespace and newlines are trimmed) -- at most one of the three --
 * `alternateIdentifier`, `phoneIdentifier`. Values are validated as in aw_account_resolve. Unknown
 * keys are errors (typo guard). On AW_OK *out is caller-owned (aw_account_config_free). On
 * AW_ERR_CONFIG *out is NULL and errbuf receives every problem found, one per line, as `<path>:
 * <json pointer>: <problem>` (JSON syntax errors as `<path>:<line>:<column>: ...`); never a key
 * value or file content. Call at startup (reads files and the environment); not thread-safe with
 * setenv. */
enum aw_err aw_account_config_load(const char *path, aw_account_getenv_fn getenv_fn, void *ctx,
                                   struct aw_account_config **out, char *errbuf, size_t errlen);

/* Releases a config; NULL is a no-op. */
void aw_account_config_free(struct aw_account_config *cfg);

/* Number of accounts in the config (for --check-config style summaries). */
size_t aw_account_config_count(const struct aw_account_config *cfg);

/* Resolved settings of one account. Plain data, one owner. */
struct aw_account {
    char *account_id; /* owned */
    char *api_key;    /* owned secret; NULL when none is configured. Never log it. */
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
 * overridden key by key by cfg (may be NULL). Accepted values (case-insensitive; spaces, '_' and
 * '-' ignored): alternateIdentifier `None` or empty, `customer` / `Customer Id`, `other` /
 * `Other Id`, `other2`..`other10` / `Other 2` / `Other Id 2`; phoneIdentifier `mobile_number` /
 * `Mobile Number` / `mobile`, `phone_number_2` / `Phone Number 2`, `phone_number_3`; absent or
 * empty = default. *out is overwritten and caller-owned (aw_account_clear) in every case.
 * Returns AW_OK when usable; AW_ERR_INVALID when out->problem is set (the account is still
 * filled so that map.c can reject the profiles with that reason). Pure; any thread. */
enum aw_err aw_account_resolve(const struct aw_account_config *cfg, const char *account_id,
                               const struct aw_event_setting *settings, size_t n,
                               struct aw_account *out);

/* Releases what *a owns (wiping the key) and zeroes it. Safe on a zeroed struct. */
void aw_account_clear(struct aw_account *a);

/* Parses an alternateIdentifier value into its identity type (static) or NULL for None.
 * AW_ERR_INVALID when unknown. Pure; any thread. */
enum aw_err aw_account_parse_alternate(const char *value, const char **identity_type);

/* Parses a phoneIdentifier value into its identity type (static); NULL/empty = default
 * "mobile_number". AW_ERR_INVALID when unknown. Pure; any thread. */
enum aw_err aw_account_parse_phone(const char *value, const char **identity_type);

/* propertyMapping targets (DESIGN.md §3); the Klaviyo paths are map.c's business. */
enum aw_account_target {
    AW_TARGET_ADDRESS2 = 0, /* "$address2" */
    AW_TARGET_IMAGE,        /* "$image" */
    AW_TARGET_LATITUDE,     /* "$latitude" */
    AW_TARGET_LONGITUDE,    /* "$longitude" */
    AW_TARGET_ORGANIZATION, /* "$organization" */
    AW_TARGET_SOURCE,       /* "$source" */
    AW_TARGET_TIMEZONE,     /* "$timezone" */
    AW_TARGET_TITLE,        /* "$title" */
    AW_TARGET_COUNT
};

/* Static name of a target ("$title"); "" when out of range. */
const char *aw_account_target_str(enum aw_account_target t);

struct aw_account_property {
    char *attribute;               /* owned mParticle attribute key (`map`), non-empty */
    enum aw_account_target target; /* `value` */
};

struct aw_account_consent {
    char *purpose;                  /* owned consent purpose (`map`), non-empty */
    enum aw_change_channel channel; /* `value`: email_marketing | sms_marketing */
};

/* Parsed settings of one connection (audience). Plain data, one owner. */
struct aw_account_connection {
    char *list_id;                          /* owned `listId`; NULL when absent or empty */
    struct aw_account_property *properties; /* owned array, setting order */
    size_t n_properties;
    struct aw_account_consent *consents; /* owned array, setting order */
    size_t n_consents;
};

/* Parses an audience's settings (settings[0..n), borrowed): `listId`, `propertyMapping`,
 * `consentMapping` (JSON text; absent, empty or whitespace-only = no mapping; otherwise an array
 * of objects with non-empty string `map` and string `value`, other keys ignored). (map.c
 * additionally refuses a propertyMapping on a default-mapped attribute.) `listId` must look like
 * a Klaviyo list id ([A-Za-z0-9_-], at most 64 bytes after trimming): it becomes part of a URL.
 * *out is overwritten; on AW_OK caller-owned (aw_account_connection_clear). AW_ERR_INVALID:
 * *out is cleared and detail (if non-NULL) receives the precise reason, e.g.
 * "propertyMapping[1].value: unknown target" -- positions and setting names only, never
 * values. Pure; any thread. */
enum aw_err aw_account_connection_parse(const struct aw_event_setting *settings, size_t n,
                                        struct aw_account_connection *out, char *detail,
                                        size_t detail_len);

/* Releases what *c owns and zeroes it. Safe on a zeroed struct. */
void aw_account_connection_clear(struct aw_account_connection *c);

#endif
