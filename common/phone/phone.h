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
 * neither the cache nor the validity shortcut of aw_phone_to_e164: the reference its tests
 * compare it with. Same arguments and results. Any thread after aw_phone_init. */
enum aw_err aw_phone_to_e164_reference(const char *raw, const char *region,
                                       char out[AW_PHONE_E164_MAX]);

/* For tests: for every region and non-geographic entity libphonenumber knows, its example
 * number of each type and variants of it (variants a number: last four digits changed, a digit
 * fewer or more, a digit changed), written international (read without a region) and, for a
 * region, national with and without the national prefix (read in that region), each converted
 * by aw_phone_to_e164 and by aw_phone_to_e164_reference. Returns how many answers differed
 * (0: all the same); *numbers and *valid (may be NULL) say how many were converted and how
 * many of them the reference found valid. After aw_phone_init; slow (tens of thousands of
 * conversions). */
size_t aw_phone_check_examples(size_t variants, size_t *numbers, size_t *valid);

#ifdef __cplusplus
}
#endif

#endif
