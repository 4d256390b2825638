/* deadletter.h -- the JSON envelopes of dead-letter records for a bad profile or a record
 * Klaviyo refused (DESIGN.md §6): the message id, account, audience, reason and the profile.
 * (A bad record is dead-lettered as its original bytes, with no envelope.) Pure; any thread. */
#ifndef AW_WORKER_DEADLETTER_H
#define AW_WORKER_DEADLETTER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct aw_change;

/* Envelope for profile profile_index of the membership message payload[0..len) (re-parsed here,
 * so the profile is forwarded exactly as received):
 * {"type":"aw.dead_letter","stage":"map","reason":…,"detail":…|null,"id":…,"timestamp_ms":…,
 *  "account_id":…,"audience_id":…|null,"profile":{…original user_profiles[i]…}}
 * audience_id NULL = every audience of the profile. *out is caller-owned.
 * AW_ERR_INVALID when the payload has no such profile. */
enum aw_err aw_deadletter_profile(const char *payload, size_t len, size_t profile_index,
                                  const char *audience_id, const char *reason, const char *detail,
                                  char **out);

/* Envelope for a change that could not be stored (stage "map") or that Klaviyo refused (stage
 * "flush"): the same fields, with
 * "profile" holding the change as it was pending (see change.h encoding) and "klaviyo" the
 * error's id/code/title (never its detail text, which may echo values).
 * *out is caller-owned. */
enum aw_err aw_deadletter_change(const struct aw_change *c, const char *stage, const char *reason,
                                 const char *klaviyo_error_id, const char *klaviyo_code,
                                 const char *klaviyo_title, char **out);

#endif
