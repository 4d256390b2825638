/* phone.h -- plain-C face of the libphonenumber shim (the only C++ in the tree).
 * No memory crosses languages: results go into caller buffers. Every function catches all
 * C++ exceptions and returns AW_ERR_INTERNAL. */
#ifndef AW_COMMON_PHONE_H
#define AW_COMMON_PHONE_H

#include <stddef.h>

#include "common/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "+" + at most 15 digits + NUL, with headroom. */
#define AW_PHONE_E164_MAX 20

/* Loads libphonenumber's metadata. Call once in main (or a test) before any thread starts.
 * AW_ERR_INTERNAL if the library cannot be initialised. */
enum aw_err aw_phone_init(void);

/* Converts an ISO 3166-1 country code, alpha-2 ("GB", "gb") or alpha-3 ("GBR"), into the
 * upper-case alpha-2 region libphonenumber uses, written into out[3].
 * AW_ERR_INVALID when the code is unknown. Any thread after aw_phone_init. */
enum aw_err aw_phone_region_from_country(const char *country, char out[3]);

/* Parses raw (as received) and, when it is a valid number, writes its E.164 form into out.
 * A number without an international prefix is read in region (upper-case alpha-2, may be NULL
 * or "" when unknown). AW_ERR_INVALID when the number cannot be parsed or is not valid.
 * Any thread after aw_phone_init. */
enum aw_err aw_phone_to_e164(const char *raw, const char *region, char out[AW_PHONE_E164_MAX]);

/* The same conversion by libphonenumber's plain sequence (Parse, IsValidNumber, Format), with
 * none of the cache, the fast Parse and the validity shortcut of aw_phone_to_e164: the
 * reference its tests compare it with. Same arguments and results. Any thread after
 * aw_phone_init. */
enum aw_err aw_phone_to_e164_reference(const char *raw, const char *region,
                                       char out[AW_PHONE_E164_MAX]);

/* For tests: parses raw in region (as aw_phone_to_e164 passes it on: "ZZ" when unknown) by
 * the shim's fast path and by libphonenumber's Parse and compares the results: the error, or
 * every field of the number and whether it is set. Returns 1 when they differ, else 0; *fast
 * (may be NULL) is set to 1 when the fast path answered, 0 when it declined the input's shape
 * (then only Parse reads it and nothing is compared). After aw_phone_init, any thread. */
int aw_phone_compare_parse(const char *raw, const char *region, int *fast);

#ifdef __cplusplus
}
#endif

#endif
