/* phone_check.h -- differential checks of the libphonenumber shim, for tests: generated input
 * converted (or parsed) by the shim and by libphonenumber's plain calls, answers compared.
 * Test code only; slow. */
#ifndef AW_COMMON_PHONE_CHECK_H
#define AW_COMMON_PHONE_CHECK_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* For tests: for every region and non-geographic entity libphonenumber knows, its example
 * number of each type and variants of it (variants a number: last four digits changed, a digit
 * fewer or more, a digit changed), written international (read without a region) and, for a
 * region, national with and without the national prefix (read in that region), each converted
 * by aw_phone_to_e164 and by aw_phone_to_e164_reference. Returns how many answers differed
 * (0: all the same); *numbers and *valid (may be NULL) say how many were converted and how
 * many of them the reference found valid. After aw_phone_init; slow (tens of thousands of
 * conversions). */
size_t aw_phone_check_examples(size_t variants, size_t *numbers, size_t *valid);

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
