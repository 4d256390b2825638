/* event.h -- one Kafka payload decoded into struct aw_event: mParticle's Firehose
 * audience-processing messages (docs/design.md §1). Structure and types are validated here;
 * the mapping rules (email, phone, attributes, consent) live in map.c.
 * Pure: no I/O, no global state. Any thread. */
#ifndef AW_WORKER_EVENT_H
#define AW_WORKER_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct aw_arena;

/* Decoding rules (what the decoder accepts; schemas/mparticle-audience-message.schema.json is the
 * same contract as JSON Schema):
 * - Parsing: jansson with JSON_REJECT_DUPLICATES (a repeated key, e.g. two `action`s, is
 *   ambiguous: parsers disagree on which wins, so it is "not_json") and without JSON_ALLOW_NUL
 *   (\u0000 in a string is "not_json"; every decoded string is a plain C string). Integers beyond
 *   int64 are "not_json" too. Nesting deeper than AW_EVENT_MAX_DEPTH is "oversize" (checked
 *   before parsing, as is the size).
 * - JSON null counts as absent everywhere: optional fields become NULL/empty, a required field
 *   that is null is "missing_field". Unknown fields are ignored (forward compatibility), as are
 *   firehose_version, device_identities, partner_identities, audience_description and
 *   previous_audience_subscription_settings.
 * - `type`, `id` (non-empty string, at most AW_EVENT_MAX_ID bytes), `timestamp_ms` (integer >= 0)
 *   and `account.account_id` are required in both message types; `type` is checked first.
 * - account_id / audience_id: a JSON integer >= 0, or a string of decimal digits (leading zeros
 *   are dropped) not above INT64_MAX; stored as canonical decimal text. A real (456.0) is
 *   "wrong_type"; a negative or non-decimal string is "bad_value".
 * - Settings objects: string values kept; numbers/booleans/arrays/objects kept as compact JSON
 *   text; null members skipped. Input order.
 * - mpid: string (as received) or JSON integer (decimal text); optional.
 * - user_identities[]: `type`, `encoding`, `value` required strings, kept as received (the
 *   mapping stage decides what a hashed or unknown identity means).
 * - audiences[]: `audience_id` and `action` (add|delete|attribute_update) required;
 *   `audience_name` optional here (mapping needs it only without `listId`).
 * - user_attributes[]: an element without `key` (mParticle's own example has `{ }`) is skipped,
 *   whatever else it holds; an empty key is "bad_value". `action` upsert|delete, absent = upsert.
 *   upsert: `value` (string/number/bool, kept as its JSON text) or `list_value` (array of
 *   strings/numbers/bools, kept as a compact JSON array); both at once is "bad_value"; neither
 *   gives value_json NULL. delete: `value`/`list_value` are ignored, value_json is NULL.
 *   value_json and non-string settings are jansson's compact text (json_dumps): strings escape
 *   only '"', '\\' and control characters; reals have 17 significant digits, so they read back
 *   as the same double (1.1 -> "1.1000000000000001", 100000.0 -> "100000.0"; payload.c sends
 *   Klaviyo 15 digits whenever those read back the same).
 * - consent_state: `gdpr{purpose:{...}}` and `ccpa{data_sale_opt_out:{...}}`, each purpose an
 *   object with required boolean `consented`, optional integer >= 0 `timestamp_unixtime_ms`,
 *   optional string `document`, `location`, `hardware_id` (type-checked, not kept). The
 *   `gdpr_consent_state`/`ccpa_consent_state` aliases are not read. Order: gdpr, then ccpa.
 * - audience_subscription_request: top-level `audience_id`, optional `audience_name`,
 *   `audience_subscription_settings`, `action` add|update|remove, decoded into `subscription`
 *   (its action field is AW_EVENT_ADD and has no meaning there).
 * - Detail paths name fields ("user_profiles[0].audiences[1].action"); members of a map object
 *   are named by position, never by key ("account.account_settings{2}",
 *   "user_profiles[0].consent_state.gdpr{0}.consented"); "(root)" for the top level;
 *   "payload"/"nesting" for size limits; "<what> at offset N" for not_json. */

/* Largest payload accepted (bytes). Larger records are rejected with AW_EVENT_OVERSIZE. */
#define AW_EVENT_MAX_BYTES (4u * 1024u * 1024u)
/* Longest string value accepted anywhere in a message (bytes). */
#define AW_EVENT_MAX_STRING 65536u
/* Most profiles / audiences per profile / attributes per audience accepted. */
#define AW_EVENT_MAX_ITEMS 100000u
/* Deepest nesting of arrays/objects accepted anywhere in the payload (our own shape needs 8). */
#define AW_EVENT_MAX_DEPTH 32u
/* Longest message `id` accepted (bytes); it is stored with every pending change. */
#define AW_EVENT_MAX_ID 256u

enum aw_event_type {
    AW_EVENT_MEMBERSHIP = 1,  /* audience_membership_change_request */
    AW_EVENT_SUBSCRIPTION = 2 /* audience_subscription_request */
};

/* Why a record was rejected (stable names: aw_event_reason_str, used in DLQ headers/metrics). */
enum aw_event_reason {
    AW_EVENT_OK = 0,
    AW_EVENT_EMPTY,         /* "empty": zero-length payload */
    AW_EVENT_OVERSIZE,      /* "oversize": payload, nesting, a string, an id or an item count
                               beyond the limits above */
    AW_EVENT_NOT_JSON,      /* "not_json": not well-formed JSON / not UTF-8 / duplicate key /
                               \u0000 in a string / integer beyond int64 */
    AW_EVENT_NOT_OBJECT,    /* "not_object": top level is not a JSON object */
    AW_EVENT_UNKNOWN_TYPE,  /* "unknown_type": `type` is not one of the two message types */
    AW_EVENT_MISSING_FIELD, /* "missing_field": a required field is absent */
    AW_EVENT_WRONG_TYPE,    /* "wrong_type": a field has the wrong JSON type */
    AW_EVENT_BAD_VALUE      /* "bad_value": right type, value out of its domain (unknown action,
                               negative timestamp, empty id, ...) */
};

/* One string setting (`account_settings`, `audience_subscription_settings`). */
struct aw_event_setting {
    char *key;   /* owned */
    char *value; /* owned; non-string JSON values are kept as their JSON text */
};

struct aw_event_identity {
    char *type;     /* owned, e.g. "email", "customer", "other2", "mobile_number" */
    char *encoding; /* owned, e.g. "raw", "md5", "sha256" */
    char *value;    /* owned, as received */
};

enum aw_event_attr_action { AW_EVENT_ATTR_UPSERT = 0, AW_EVENT_ATTR_DELETE = 1 };

struct aw_event_attribute {
    char *key;        /* owned, as received (e.g. "$FirstName") */
    char *value_json; /* owned JSON text of `value` (a string stays a JSON string, e.g. "\"Ann\""),
                         or of `list_value` as a JSON array; NULL for delete or no value */
    enum aw_event_attr_action action;
};

enum aw_event_action { AW_EVENT_ADD = 0, AW_EVENT_DELETE = 1, AW_EVENT_ATTRIBUTE_UPDATE = 2 };

struct aw_event_audience {
    char *audience_id;                 /* owned, decimal text of the integer id */
    char *audience_name;               /* owned; NULL when absent */
    struct aw_event_setting *settings; /* owned array (audience_subscription_settings) */
    size_t n_settings;
    enum aw_event_action action;
    struct aw_event_attribute *attributes; /* owned array (user_attributes), input order */
    size_t n_attributes;
};

/* One consent purpose of `consent_state`. */
struct aw_event_consent {
    char *purpose; /* owned: the GDPR purpose key, or "data_sale_opt_out" for CCPA */
    bool is_ccpa;
    bool consented;
    bool has_timestamp;
    uint64_t timestamp_unix_ms; /* `timestamp_unixtime_ms`, when has_timestamp */
};

struct aw_event_profile {
    char *mpid;                           /* owned decimal/text form; NULL when absent */
    struct aw_event_identity *identities; /* owned array (user_identities) */
    size_t n_identities;
    struct aw_event_audience *audiences; /* owned array */
    size_t n_audiences;
    struct aw_event_consent *consents; /* owned array (consent_state), may be empty */
    size_t n_consents;
};

enum aw_event_sub_action { AW_EVENT_SUB_ADD = 0, AW_EVENT_SUB_UPDATE = 1, AW_EVENT_SUB_REMOVE = 2 };

struct aw_event {
    enum aw_event_type type;
    char *id;              /* owned message id (non-empty) */
    uint64_t timestamp_ms; /* message timestamp: the version of every change in it */
    char *account_id;      /* owned decimal text of account.account_id */
    struct aw_event_setting *account_settings; /* owned array */
    size_t n_account_settings;

    /* AW_EVENT_MEMBERSHIP */
    struct aw_event_profile *profiles; /* owned array; empty = valid no-op */
    size_t n_profiles;

    /* AW_EVENT_SUBSCRIPTION: the audience (settings from the message, attributes empty) */
    struct aw_event_audience subscription;
    enum aw_event_sub_action sub_action;

    /* Owned: every string and array above ("owned" there means owned by the event) lives in
     * this arena and goes with aw_event_clear; none is freed or replaced on its own. */
    struct aw_arena *mem;
};

/* Decodes len bytes (need not be NUL-terminated) into *out (caller-provided, overwritten).
 * On AW_OK the caller owns *out and releases it with aw_event_clear.
 * On AW_ERR_INVALID *reason says why, and detail (if non-NULL) receives a short path such as
 * "user_profiles[0].audiences[1].action" -- never a value from the payload. *out is left
 * cleared (aw_event_clear is still safe). AW_ERR_FATAL (reason AW_EVENT_OK) only when jansson
 * runs out of memory. payload may be NULL when len is 0 (a Kafka tombstone: "empty").
 * detail is always NUL-terminated when detail_len > 0 (truncated if short). Any thread. */
enum aw_err aw_event_decode(const char *payload, size_t len, struct aw_event *out,
                            enum aw_event_reason *reason, char *detail, size_t detail_len);

/* Releases everything *ev owns and zeroes it. Safe on a zeroed or cleared struct. */
void aw_event_clear(struct aw_event *ev);

/* Stable lower-case name of a reason ("not_json", ...). */
const char *aw_event_reason_str(enum aw_event_reason reason);

/* Value-free name of a jansson parse error ("duplicate key", "truncated", "syntax error", ...);
 * code is json_error_code() of the json_error_t. For error texts of every JSON text read in
 * ingest: jansson's own message quotes the input near the error (personal data, keys). Static
 * string; any thread. */
const char *aw_event_json_error_str(int code);

/* Looks up a setting by exact key; borrowed value or NULL. */
const char *aw_event_setting_get(const struct aw_event_setting *settings, size_t n,
                                 const char *key);

#endif
