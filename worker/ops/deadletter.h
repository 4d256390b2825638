/* deadletter.h -- the JSON envelopes of dead-letter records for a bad profile or a change that
 * could not be stored or that Klaviyo refused (contract: docs/contract.md, dead letters). A bad
 * record is dead-lettered as its original bytes, with no envelope. Every envelope starts with
 *   {"type":"aw.dead_letter","stage":…,"reason":…,"detail":…|null,"id":…,"timestamp_ms":…,
 *    "account_id":…,"audience_id":…|null,"profile":{…}}
 * Built with jansson, printed compact. Pure; any thread. */
#ifndef AW_WORKER_OPS_DEADLETTER_H
#define AW_WORKER_OPS_DEADLETTER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct aw_change;

/* Envelope (stage "map") for profile profile_index of the membership message payload[0..len),
 * parsed here so the profile is forwarded exactly as received: "id", "timestamp_ms" and
 * "account_id" are the message's values, "profile" its user_profiles[profile_index].
 * audience_id NULL = every audience of the profile. *out is caller-owned.
 * AW_ERR_INVALID when the payload has no such profile. */
enum aw_err aw_deadletter_profile(const char *payload, size_t len, size_t profile_index,
                                  const char *audience_id, const char *reason, const char *detail,
                                  char **out);

/* Envelope for a change that could not be stored (stage "map") or that Klaviyo refused (stage
 * "flush"): "detail" null, "id"/"timestamp_ms" the change's event id and version, "account_id"
 * a JSON integer when it is a decimal number (as in the message), and "profile" the change:
 *   {"email","phone_e164"?,"external_id"?,"action","audience_name"?,"list_id"?,
 *    "attributes":{"<path>":<value as received>|null (unset)},
 *    "consents":[{"channel":"email"|"sms","subscribe":bool,"consented_at_ms"?:int}],
 *    "custom_source"?,"drops":["invalid_phone",...]}
 * When any of the Klaviyo error fields is given, "klaviyo":{"id","code","title"} (never its
 * detail text, which may echo values). *out is caller-owned. AW_ERR_INVALID when a string of
 * the change is not valid UTF-8 (cannot be JSON); AW_ERR_INTERNAL when printing fails. */
enum aw_err aw_deadletter_change(const struct aw_change *c, const char *stage, const char *reason,
                                 const char *klaviyo_error_id, const char *klaviyo_code,
                                 const char *klaviyo_title, char **out);

/* Envelope (stage "flush", reason "klaviyo_import_error_unmatched") for an error an import job
 * reported that names none of the job's records (neither an email of its original payload nor
 * a record pointer): "id", "timestamp_ms" and "profile" null, "detail" names the job,
 * "klaviyo" the error. Which record failed is unknown, so it is reported, never counted as a
 * success. *out is caller-owned. */
enum aw_err aw_deadletter_unmatched(const char *account_id, const char *audience_id,
                                    const char *job_id, const char *klaviyo_error_id,
                                    const char *klaviyo_code, const char *klaviyo_title,
                                    char **out);

#endif
