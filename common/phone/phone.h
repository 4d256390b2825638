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

/* For tests: for every region and non-geographic entity libphonenumber knows, its example
 * number of each type and variants of it (variants a number: last four digits changed, a digit
 * fewer or more, a digit changed), written international (read without a region) and, for a
 * region, national with and without the national prefix (read in that region), each converted
 * by aw_phone_to_e164 and by aw_phone_to_e164_reference. Returns how many answers differed
 * (0: all the same); *numbers and *valid (may be NULL) say how many were converted and how
 * many of them the reference found valid. After aw_phone_init; slow (tens of thousands of
 * conversions). */
size_t aw_phone_check_examples(size_t variants, size_t *numbers, size_t *valid);

/* For tests: parses raw in region (as aw_phone_to_e164 passes it on: "ZZ" when unknown) by
 * the shim's fast path and by libphonenumber's Parse and compares the results: the error, or
 * every field of the number and whether it is set. Returns 1 when they differ, else 0; *fast
 * (may be NULL) is set to 1 when the fast path answered, 0 when it declined the input's shape
 * (then only Parse reads it and nothing is compared). After aw_phone_init, any thread. */
int aw_phone_compare_parse(const char *raw, const char *region, int *fast);

/* For tests: aw_phone_compare_parse over generated input, rounds times (~16 inputs an example
 * number a round; ~22,000 a round): every region's and non-geographic entity's example numbers
 * of each type, the first round as they are and later ones varied (digits changed, one fewer
 * or more), written national, with the national prefix, international with '+' (read in the
 * region, in another or in none), with the region's code without '+', with an international
 * prefix (00, 011, 810, ...) with and without a '+' before it, with leading zeros, too short,
 * too long, random digit strings, each with random separators; and with a character outside
 * the fast path's shape (letters, '#', ';', ...). Returns the differences (0: none); *inputs and
 * *fast (may be NULL) say how many inputs were compared and how many of them the fast path
 * answered; the first difference is described in first (first_len bytes, may be NULL: test
 * data only). After aw_phone_init; slow (one Parse an input). */
size_t aw_phone_check_parse(size_t rounds, unsigned long long seed, size_t *inputs, size_t *fast,
                            char *first, size_t first_len);

#ifdef __cplusplus
}
#endif

#endif
