/* test_phone.c -- the libphonenumber shim: E.164 conversion and country-code handling. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/phone/phone.h"
#include "common/phone/phone_check.h"
#include "tests/harness.h"

/* The shim caches results per (raw, region): a repeated or colliding lookup answers exactly
 * what the first one did, and the region is part of the key. */
static void check_cache(void)
{
    char out[AW_PHONE_E164_MAX];
    for (int round = 0; round < 3; round++) {
        AW_CHECK_INT_EQ(aw_phone_to_e164("020 7946 0018", "GB", out), AW_OK);
        AW_CHECK_STR_EQ(out, "+442079460018");
        AW_CHECK_INT_EQ(aw_phone_to_e164("020 7946 0018", NULL, out), AW_ERR_INVALID);
        AW_CHECK_INT_EQ(aw_phone_to_e164("020 7946 0018", "", out), AW_ERR_INVALID);
        AW_CHECK_INT_EQ(aw_phone_to_e164("020 7946 0018", "ZZ", out), AW_ERR_INVALID);
        AW_CHECK_INT_EQ(aw_phone_to_e164("(650) 253-0000", "US", out), AW_OK);
        AW_CHECK_STR_EQ(out, "+16502530000");
        AW_CHECK_INT_EQ(aw_phone_to_e164("(650) 253-0000", "GB", out), AW_ERR_INVALID);
        AW_CHECK_INT_EQ(aw_phone_to_e164("030 901820", "DE", out), AW_OK);
        AW_CHECK_STR_EQ(out, "+4930901820");
        /* A region that is not two letters is passed on as it is (and not cached). */
        AW_CHECK_INT_EQ(aw_phone_to_e164("020 7946 0018", "GBR", out), AW_ERR_INVALID);
        AW_CHECK_INT_EQ(aw_phone_to_e164("+44 20 7946 0018", "GBR", out), AW_OK);
        AW_CHECK_STR_EQ(out, "+442079460018");
        /* More distinct keys (40,000) than the cache holds: they evict each other. */
        static const char *const prefixes[] = {"020 7946 ", "0207946", "020-7946-", "(020) 7946 "};
        for (int i = 0; i < 40000; i += round ? 7 : 1) {
            char raw[32], want[32];
            snprintf(raw, sizeof raw, "%s%04d", prefixes[i / 10000], i % 10000);
            snprintf(want, sizeof want, "+44207946%04d", i % 10000);
            AW_CHECK_INT_EQ(aw_phone_to_e164(raw, "GB", out), AW_OK);
            if (strcmp(out, want) != 0)
                AW_CHECK_STR_EQ(out, want);
        }
    }
}

/* Deterministic numbers for the differential check (a 64-bit LCG). */
static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;
static unsigned rnd(unsigned n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)((rng_state >> 33) % n);
}

/* One generated number into raw (written as a user might: blanks, dashes, brackets, a national
 * or international prefix) and the region it is read in; shaped after the numbering plans of
 * the calling codes shared by several regions (+1, +7, +44, +47, +61, +212, +262, +290, +358,
 * +39, +590, +599) and a few others, so that a good share is valid. */
static void gen_number(char *raw, size_t cap, const char **region)
{
    static const struct {
        const char *region, *cc, *national_prefix, *leads;
        unsigned min_len, max_len;
    } plans[] = {
        {"US", "1", "1", "2345679", 10, 10},    {"CA", "1", "1", "2456789", 10, 10},
        {"JM", "1", "1", "8", 10, 10},          {"PR", "1", "1", "79", 10, 10},
        {"GB", "44", "0", "1237", 9, 10},       {"GG", "44", "0", "17", 10, 10},
        {"JE", "44", "0", "17", 10, 10},        {"IM", "44", "0", "17", 10, 10},
        {"RU", "7", "8", "34589", 10, 10},      {"KZ", "7", "8", "367", 10, 10},
        {"NO", "47", "", "2345789", 8, 8},      {"SJ", "47", "", "79", 8, 8},
        {"AU", "61", "0", "23478", 9, 9},       {"CX", "61", "0", "48", 9, 9},
        {"CC", "61", "0", "48", 9, 9},          {"MA", "212", "0", "5678", 9, 9},
        {"EH", "212", "0", "5678", 9, 9},       {"RE", "262", "0", "26", 9, 9},
        {"YT", "262", "0", "26", 9, 9},         {"SH", "290", "", "2568", 4, 5},
        {"TA", "290", "", "8", 4, 5},           {"FI", "358", "0", "1234579", 6, 10},
        {"AX", "358", "0", "14", 6, 10},        {"IT", "39", "", "03", 6, 11},
        {"VA", "39", "", "03", 6, 11},          {"GP", "590", "0", "56", 9, 9},
        {"MF", "590", "0", "56", 9, 9},         {"BL", "590", "0", "56", 9, 9},
        {"CW", "599", "", "79", 7, 8},          {"BQ", "599", "", "37", 7, 8},
        {"DE", "49", "0", "123456789", 6, 11},  {"FR", "33", "0", "123456789", 9, 9},
        {"JP", "81", "0", "123456789", 9, 10},  {"IN", "91", "0", "6789", 10, 10},
        {"BR", "55", "0", "123456789", 10, 11}, {"CH", "41", "0", "2345789", 9, 9},
    };
    unsigned k = rnd(sizeof plans / sizeof plans[0]);
    char digits[16];
    unsigned len = plans[k].min_len + rnd(plans[k].max_len - plans[k].min_len + 1);
    const char *leads = plans[k].leads;
    digits[0] = leads[rnd((unsigned)strlen(leads))];
    for (unsigned i = 1; i < len; i++)
        digits[i] = (char)('0' + rnd(10));
    digits[len] = '\0';
    static const char *const seps[] = {"", " ", "-"};
    const char *sep = seps[rnd(3)];
    size_t half = len / 2;
    *region = plans[k].region;
    switch (rnd(5)) {
    case 0: /* international, E.164-like */
        snprintf(raw, cap, "+%s%s%.*s%s%s", plans[k].cc, sep, (int)half, digits, sep,
                 digits + half);
        break;
    case 1: /* international, read without a region */
        snprintf(raw, cap, "+%s (%.*s) %s", plans[k].cc, (int)half, digits, digits + half);
        *region = NULL;
        break;
    case 2: /* international, read in another region of the same code or not */
        snprintf(raw, cap, "+%s %s", plans[k].cc, digits);
        *region = plans[rnd(sizeof plans / sizeof plans[0])].region;
        break;
    default: /* national, with its national prefix */
        snprintf(raw, cap, "%s%.*s%s%s", plans[k].national_prefix, (int)half, digits, sep,
                 digits + half);
        break;
    }
}

/* aw_phone_to_e164 (its cache, its validity shortcut for codes shared by several regions)
 * answers what libphonenumber's plain Parse + IsValidNumber + Format answers, byte for byte,
 * valid or not; each number twice, so the second answer comes from the cache. */
static void check_against_reference(void)
{
    size_t valid = 0, n = 12000;
    for (size_t i = 0; i < n; i++) {
        char raw[64], want[AW_PHONE_E164_MAX], got[AW_PHONE_E164_MAX];
        const char *region = NULL;
        gen_number(raw, sizeof raw, &region);
        enum aw_err ref = aw_phone_to_e164_reference(raw, region, want);
        for (int again = 0; again < 2; again++) {
            enum aw_err err = aw_phone_to_e164(raw, region, got);
            AW_CHECK_MSG(err == ref, "%s in %s: %d, reference %d", raw, region ? region : "-",
                         (int)err, (int)ref);
            if (err == AW_OK && ref == AW_OK && strcmp(got, want) != 0)
                AW_CHECK_STR_EQ(got, want);
        }
        valid += ref == AW_OK;
    }
    /* Both answers are well represented. */
    AW_CHECK_MSG(valid > n / 5 && valid < n - n / 5, "valid %zu of %zu", valid, n);
}

/* The same over every region of the metadata: their example numbers and variants of them. */
static void check_examples(void)
{
    size_t numbers = 0, valid = 0;
    AW_CHECK_INT_EQ(aw_phone_check_examples(8, &numbers, &valid), 0);
    AW_CHECK_MSG(numbers > 20000 && valid > numbers / 4 && valid < numbers - numbers / 10,
                 "numbers %zu, valid %zu", numbers, valid);
}

/* The fast path of Parse (digits, '+', blanks, dashes, dots, brackets) against libphonenumber's
 * Parse, field for field: the inputs of the bench's shapes, then one round of every region's
 * example numbers in every written form (aw_phone_check_parse). With a number of rounds as the
 * argument (test_phone 200) it runs only this, that many rounds, and prints the counts. */
static void check_fast_parse(size_t rounds, unsigned long long seed, bool report)
{
    static const char *const fixed[][2] = {
        {"020 7946 0018", "GB"},
        {"+44 7700 900123", "GB"},
        {"(201) 555-0123", "US"},
        {"+1 (650) 253-0000", "ZZ"},
        {"0044 20 7946 0018", "GB"},
        {"011 44 20 7946 0018", "US"},
        {"+00 44 20 7946 0018", "GB"},
        {"44 20 7946 0018", "GB"},
        {"1 650 253 0000", "US"},
        {"8 (495) 123-45-67", "RU"},
        {"8 10 44 20 7946 0018", "RU"},
        {"02 1234 5678", "IT"},
        {"+39 02 1234 5678", "IT"},
        {"0000", "IT"},
        {"12", "US"},
        {"+12", "US"},
        {"(0) 12", "DE"},
        {"+", "GB"},
        {"", "GB"},
        {"555 0123", "AG"},
        {"0 11 1234 5678", "AR"},
        {"0 15 1234 5678", "AR"},
        {"+800 1234 5678", "ZZ"},
        {"030 901820", "DE"},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        int fast = 0;
        AW_CHECK_MSG(aw_phone_compare_parse(fixed[i][0], fixed[i][1], &fast) == 0, "%s in %s",
                     fixed[i][0], fixed[i][1]);
        AW_CHECK_MSG(fast == 1, "declined %s in %s", fixed[i][0], fixed[i][1]);
    }
    int fast = 1;
    AW_CHECK_INT_EQ(aw_phone_compare_parse("020 7946 0018 ext. 12", "GB", &fast), 0);
    AW_CHECK_INT_EQ(fast, 0); /* an extension: Parse's */
    size_t inputs = 0, answered = 0;
    char first[128];
    size_t differ = aw_phone_check_parse(rounds, seed, &inputs, &answered, first, sizeof first);
    AW_CHECK_MSG(differ == 0, "%zu of %zu differ, first %s", differ, inputs, first);
    AW_CHECK_MSG(inputs > 15000 * rounds && answered > inputs * 3 / 4, "inputs %zu, fast %zu",
                 inputs, answered);
    if (report)
        printf("fast parse: %zu inputs in %zu rounds, %zu answered by the fast path, %zu differ\n",
               inputs, rounds, answered, differ);
}

int main(int argc, char **argv)
{
    char out[AW_PHONE_E164_MAX];
    char region[3];
    AW_CHECK_INT_EQ(aw_phone_init(), AW_OK);
    if (argc > 1) { /* the long one-off comparison */
        check_fast_parse(strtoul(argv[1], NULL, 10), strtoull(argc > 2 ? argv[2] : "7", NULL, 0),
                         true);
        return aw_test_done();
    }

    /* International numbers need no region. */
    AW_CHECK_INT_EQ(aw_phone_to_e164("+1 (650) 253-0000", NULL, out), AW_OK);
    AW_CHECK_STR_EQ(out, "+16502530000");
    AW_CHECK_INT_EQ(aw_phone_to_e164("+44 20 7946 0018", "", out), AW_OK);
    AW_CHECK_STR_EQ(out, "+442079460018");
    /* National numbers need a region. */
    AW_CHECK_INT_EQ(aw_phone_to_e164("020 7946 0018", NULL, out), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_phone_to_e164("020 7946 0018", "GB", out), AW_OK);
    AW_CHECK_STR_EQ(out, "+442079460018");
    AW_CHECK_INT_EQ(aw_phone_to_e164("(650) 253-0000", "US", out), AW_OK);
    AW_CHECK_STR_EQ(out, "+16502530000");
    AW_CHECK_INT_EQ(aw_phone_to_e164("030 901820", "DE", out), AW_OK);
    AW_CHECK_STR_EQ(out, "+4930901820");
    /* Invalid numbers. */
    AW_CHECK_INT_EQ(aw_phone_to_e164("12", "US", out), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_phone_to_e164("not a phone", "US", out), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_phone_to_e164("+1 555 0100", NULL, out), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_phone_to_e164("", "US", out), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(
        aw_phone_to_e164("+1650253000012345678901234567890123456789012345678901234567890123456789",
                         NULL, out),
        AW_ERR_INVALID);

    /* Country codes: alpha-2 and alpha-3, any case, blanks tolerated. */
    AW_CHECK_INT_EQ(aw_phone_region_from_country("GB", region), AW_OK);
    AW_CHECK_STR_EQ(region, "GB");
    AW_CHECK_INT_EQ(aw_phone_region_from_country("gbr", region), AW_OK);
    AW_CHECK_STR_EQ(region, "GB");
    AW_CHECK_INT_EQ(aw_phone_region_from_country("USA", region), AW_OK);
    AW_CHECK_STR_EQ(region, "US");
    AW_CHECK_INT_EQ(aw_phone_region_from_country(" de ", region), AW_OK);
    AW_CHECK_STR_EQ(region, "DE");
    AW_CHECK_INT_EQ(aw_phone_region_from_country("DEU", region), AW_OK);
    AW_CHECK_STR_EQ(region, "DE");
    AW_CHECK_INT_EQ(aw_phone_region_from_country("XX", region), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_phone_region_from_country("XYZ", region), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_phone_region_from_country("United Kingdom", region), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_phone_region_from_country("G1", region), AW_ERR_INVALID);
    AW_CHECK_INT_EQ(aw_phone_region_from_country("", region), AW_ERR_INVALID);
    check_cache();
    check_against_reference();
    check_examples();
    check_fast_parse(1, 0x9E3779B97F4A7C15ull, false);
    return aw_test_done();
}
