/* map.h -- the mapping rules of docs/design.md §3: a decoded membership message plus the resolved
 * account settings become one struct aw_change per (audience, profile), and a reject per profile
 * or (profile, audience) that cannot be mapped. Pure (no I/O, no global state); any thread
 * after aw_phone_init. The rule table as implemented is in README ("Mapping"). */
#ifndef AW_WORKER_MAP_H
#define AW_WORKER_MAP_H

#include <stddef.h>

#include "common/err.h"

struct aw_event;
struct aw_account;
struct aw_change;
struct aw_arena;

/* Reject reason codes (stable: dead-letter header aw.reason and metrics labels). */
#define AW_MAP_MISSING_EMAIL "missing_email" /* no `email` identity */
#define AW_MAP_HASHED_EMAIL "hashed_email"   /* `email` identities, none with encoding raw */
#define AW_MAP_INVALID_EMAIL "invalid_email" /* raw email fails validation after normalising */
#define AW_MAP_TOO_MANY_ATTRIBUTES "too_many_attributes" /* > AW_MAP_ATTRS_MAX (one audience) */
/* also AW_ACCOUNT_MISSING_API_KEY, AW_ACCOUNT_INVALID_SETTINGS (whole profile, account.h) and
 * AW_CONNECTION_INVALID (one audience of a profile, connection.h) */

/* Most attributes one (profile, audience) may carry after mapping: one change must fit one
 * Redis script call (AW_REDIS_ARGS_MAX arguments, two per attribute). */
#define AW_MAP_ATTRS_MAX 1000u

/* Longest email accepted (RFC 5321 path limit) and its local part. */
#define AW_MAP_EMAIL_MAX 254u
#define AW_MAP_EMAIL_LOCAL_MAX 64u

/* A profile, or one audience of a profile, that produced no change. */
struct aw_map_reject {
    size_t profile_index; /* index into ev->profiles */
    char *audience_id;    /* owned; NULL = the whole profile (every audience of it) */
    const char *reason;   /* static reason code (above) */
    char *detail;         /* owned short explanation without personal data, or NULL */
};

/* The strings and arrays of the changes live in the result's arena and go with it: a change of
 * a result is read (or copied with aw_change_copy), never aw_change_clear'ed or modified, and
 * changes of one result may share strings and attribute arrays (the email of a profile, the
 * attributes mapped once for several audiences). */
struct aw_map_result {
    struct aw_change *changes; /* owned array, profile order then audience order; what each
                                  change points to is in mem */
    size_t n_changes;
    struct aw_map_reject *rejects; /* owned array, profile order */
    size_t n_rejects;
    struct aw_arena *mem; /* owned: the changes' strings and arrays */
};

/* Maps a membership message. ev must be of type AW_EVENT_MEMBERSHIP (borrowed); acct is the
 * resolved account of ev->account_id (borrowed; when acct->problem is set every profile is
 * rejected with that reason). *out is overwritten and caller-owned (aw_map_result_clear) in
 * every case. Errors: AW_ERR_INVALID when ev is not a membership message (nothing mapped);
 * AW_ERR_INTERNAL when the phone library fails (result cleared). Any thread after
 * aw_phone_init. */
enum aw_err aw_map_event(const struct aw_event *ev, const struct aw_account *acct,
                         struct aw_map_result *out);

/* Releases everything *r owns and zeroes it. Safe on a zeroed struct. */
void aw_map_result_clear(struct aw_map_result *r);

/* Normalises (trim ASCII whitespace, lower-case the whole address) and validates an email.
 * On AW_OK *out is caller-owned; AW_ERR_INVALID when the result is not a valid address
 * (*out NULL). Pure; any thread. */
enum aw_err aw_map_email_normalise(const char *raw, char **out);

/* Klaviyo attribute path of an mParticle attribute under the fixed default mapping
 * ("$FirstName" -> "first_name", case-insensitive), static string or NULL. Pure; any thread. */
const char *aw_map_default_path(const char *key);

#endif
