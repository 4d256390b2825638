/* change.h -- the normalised change for one (audience, user): what map.c produces from an
 * event, what the store keeps (as facets of the user, see worker/store/scripts/apply.lua) and
 * hands back to the leader as records (aw_change_record_decode), and what the Klaviyo body
 * builders turn into requests. Plain data; one owner. Pure functions; any thread. */
#ifndef AW_WORKER_CHANGE_H
#define AW_WORKER_CHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

enum aw_change_action {
    AW_CHANGE_ADD = 0,             /* "add": member of the list, profile upserted */
    AW_CHANGE_DELETE = 1,          /* "delete": removed from the list only */
    AW_CHANGE_ATTRIBUTE_UPDATE = 2 /* "attribute_update": profile updated, membership unchanged */
};

/* One Klaviyo profile attribute to set or unset. */
struct aw_change_attr {
    char *path;       /* owned Klaviyo attribute path: "first_name", "location.country", "image",
                         "properties.<name>" (the property name may itself contain dots) */
    char *value_json; /* owned JSON text of the value as received; NULL = unset in Klaviyo */
};

enum aw_change_channel { AW_CHANNEL_EMAIL = 0, AW_CHANNEL_SMS = 1 };

/* A consent intent for one channel's marketing. */
struct aw_change_consent {
    enum aw_change_channel channel;
    bool subscribe; /* true: subscribe (historical import); false: unsubscribe */
    bool has_consented_at;
    uint64_t consented_at_unix_ms; /* consent timestamp, when has_consented_at */
};

/* Reasons a part of a profile was dropped while mapping (bit flags; see aw_change_drop_str). */
#define AW_CHANGE_DROP_INVALID_PHONE 0x1u /* phone present but not valid: sent without phone */
#define AW_CHANGE_DROP_SMS_NO_PHONE 0x2u  /* SMS consent without a valid phone: not sent */

struct aw_change {
    char *account_id;    /* owned */
    char *audience_id;   /* owned */
    char *audience_name; /* owned; NULL when the message had none */
    char *list_id;       /* owned `listId` connection setting; NULL = find/create by name */
    char *event_id;      /* owned message id (tie-breaker of equal versions) */
    uint64_t version_ms; /* message timestamp_ms */
    enum aw_change_action action;

    char *email;       /* owned, normalised (trimmed, lower-case, validated); the user key */
    char *phone_e164;  /* owned; NULL when absent or invalid */
    char *external_id; /* owned; NULL unless the alternate identifier is configured and present */

    struct aw_change_attr *attrs; /* owned array, sorted by path, paths unique */
    size_t n_attrs;
    struct aw_change_consent *consents; /* owned array, at most one per channel */
    size_t n_consents;
    char *custom_source; /* owned `$source` via propertyMapping (subscription jobs); NULL if none */

    unsigned drops;   /* AW_CHANGE_DROP_* flags */
    bool ids_changed; /* records only: phone, external id or custom source changed (they may
                         also be carried unchanged, for consent) */
};

/* Releases everything *c owns and zeroes it. Safe on a zeroed struct. */
void aw_change_clear(struct aw_change *c);

/* Deep copy of src into *dst (overwritten). */
void aw_change_copy(struct aw_change *dst, const struct aw_change *src);

/* ---- The pending-change codec ---------------------------------------------------------------
 * Redis keeps a change as facets of the user (worker/store/scripts/apply.lua) and hands the
 * leader records: one flat list of (field, value) per email, field names from the one table
 * worker/store/fields.def (REC_*). Values of attributes are JSON text ("null" unsets); the
 * special paths phone_number, external_id and @source hold plain text. */

/* Consent as the store versions it: "<timestamp_ms>:<1 subscribe|0 unsubscribe>" (timestamp 0
 * when the purpose had none) into buf. False when buf is too small. */
bool aw_change_consent_format(const struct aw_change_consent *c, char *buf, size_t len);

/* One (field, value) of a record; not NUL-terminated. */
struct aw_change_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Decodes the record of one email into *out (overwritten; caller clears): membership records
 * (act, ver) give action add/delete; profile records (a:, i:, c:, ver) give an
 * attribute_update with attributes, phone, external id, custom source and consents.
 * account_id, audience_id (NULL for the profile stream) and email are copied. AW_ERR_INVALID
 * when a field is unknown or a value malformed (the caller dead-letters it). Pure. */
enum aw_err aw_change_record_decode(const char *account_id, const char *audience_id,
                                    const char *email, const struct aw_change_field *fields,
                                    size_t n, struct aw_change *out);

/* Stable names: "add"/"delete"/"attribute_update"; "email"/"sms"; "invalid_phone"/... */
const char *aw_change_action_str(enum aw_change_action a);
const char *aw_change_channel_str(enum aw_change_channel ch);
const char *aw_change_drop_str(unsigned single_flag);

#endif
