/* build.h -- Klaviyo request bodies (revision 2026-07-15, JSON:API) and Klaviyo filter strings.
 * Pure: no I/O, no global state; every function may run on any thread (the flusher uses it).
 * Bodies are built from struct aw_change (worker/change.h); the mapping rules are docs/design.md §3
 * and schemas/klaviyo-outbound.md. Every body kind validates against the requestBody schema of
 * its operation in Klaviyo's OpenAPI spec (tests/unit/test_payload_openapi.py).
 *
 * Batch builders share one contract: they take the items from the front of the input, stop
 * before the first item that would break the endpoint's count or byte limit (or the caller's
 * smaller one), and report in *consumed how many items the body holds (body item i = input
 * item i). A stopped batch is not an error. When the FIRST item alone cannot be sent (too big
 * on its own, or not sendable by that endpoint), they return AW_ERR_INVALID with *consumed = 0
 * and *out = NULL: that item is permanently bad and should be dead-lettered. */
#ifndef AW_KLAVIYO_BUILD_H
#define AW_KLAVIYO_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct aw_change;

/* All builders write a caller-owned NUL-terminated compact JSON body (or filter text) into *out
 * (free()), or NULL on error. Limits come from the operation's row of the API table (api.h):
 * max_items / max_bytes 0 = that maximum; larger values are clamped to it. Body byte limits
 * are filled up to the row's budget_bytes (a margin under the spec's maximum). */

/* POST /api/profile-bulk-import-jobs. One profile per change (add or attribute_update): email,
 * phone_number, external_id, mapped attributes (first_name, location.*, ...; non-string values
 * of string fields are sent as their JSON text), `properties`, and property deletes as
 * meta.patch_properties.unset. list_id non-NULL adds the `lists` relationship (adds), NULL
 * omits it (attribute updates: membership unchanged). Deletes of non-property attributes cannot
 * be expressed here (the bulk job ignores nulls): see aw_build_needs_profile_import.
 * Errors: AW_ERR_INVALID as in the batch contract (unknown attribute path, value that is not
 * JSON, profile over the row's max_item_bytes, text that is not UTF-8). */
enum aw_err aw_build_import(const struct aw_change *const *changes, size_t n, const char *list_id,
                            size_t max_items, size_t max_bytes, char **out, size_t *consumed);

/* True when *c unsets an attribute that is not under `properties.` (first_name, location.city,
 * ...). The bulk import cannot clear those; send aw_build_profile_import for c too. */
bool aw_build_needs_profile_import(const struct aw_change *c);

/* POST /api/profile-import (Create or Update Profile; null clears a field). Body holds the email
 * and, set to null, every non-property attribute *c unsets (nothing else, so it commutes with
 * the bulk import of the same change). AW_ERR_INVALID when c unsets no such attribute, or the
 * body would exceed the operation's budget_bytes. */
enum aw_err aw_build_profile_import(const struct aw_change *c, char **out);

/* True when *c has a consent with subscribe=true that can be sent (SMS needs phone_e164). */
bool aw_build_has_subscribe(const struct aw_change *c);
/* True when *c has a consent with subscribe=false that can be sent (SMS needs phone_e164). */
bool aw_build_has_unsubscribe(const struct aw_change *c);

/* POST /api/profile-subscription-bulk-create-jobs: historical_import true, per profile email
 * and/or sms marketing SUBSCRIBED with consented_at (the consent timestamp, else the change's
 * version_ms: a historical import requires one), custom_source = the changes' custom_source
 * (omitted when NULL). Never a list relationship: consent never changes list membership.
 * A job carries one custom_source, so the batch also stops before the first change whose
 * custom_source differs from the first change's. Errors: AW_ERR_INVALID per the batch contract
 * (a change without a sendable subscribe consent, bad UTF-8). */
enum aw_err aw_build_subscribe(const struct aw_change *const *changes, size_t n, size_t max_items,
                               char **out, size_t *consumed);

/* POST /api/profile-subscription-bulk-delete-jobs: email and/or sms marketing UNSUBSCRIBED,
 * no list relationship. Errors as aw_build_subscribe (unsubscribe consents). */
enum aw_err aw_build_unsubscribe(const struct aw_change *const *changes, size_t n, size_t max_items,
                                 char **out, size_t *consumed);

/* POST and DELETE /api/lists/{id}/relationships/profiles (same body): {"data":[{"type":
 * "profile","id":...},...]} from Klaviyo profile ids (borrowed). AW_ERR_INVALID per the batch
 * contract (NULL/empty id, not UTF-8). */
enum aw_err aw_build_list_members(const char *const *profile_ids, size_t n, size_t max_items,
                                  char **out, size_t *consumed);

/* POST /api/lists: {"data":{"type":"list","attributes":{"name":name}}}. AW_ERR_INVALID when the
 * name is NULL, empty or not UTF-8. */
enum aw_err aw_build_create_list(const char *name, char **out);

/* Filter for GET /api/profiles: any(email,["a","b",...]) -- Klaviyo filter syntax, not JSON:
 * values double-quoted, `\` and `"` backslash-escaped. aw_api_path_build percent-encodes it
 * into the query string. max_items 0 = the row's filter_max_values; max_bytes 0 = its
 * filter_max_bytes (the filter text length, to bound the URL). Batch contract; AW_ERR_INVALID
 * for an empty/NULL email, a control character or bad UTF-8. */
enum aw_err aw_build_email_filter(const char *const *emails, size_t n, size_t max_items,
                                  size_t max_bytes, char **out, size_t *consumed);

/* Filter for GET /api/lists: equals(name,"<name>") with the same quoting. AW_ERR_INVALID for a
 * NULL/empty name, a control character or bad UTF-8. */
enum aw_err aw_build_list_name_filter(const char *name, char **out);

#endif
