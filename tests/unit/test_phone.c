/* test_phone.c -- the libphonenumber shim: E.164 conversion and country-code handling. */
#include <stdio.h>
#include <string.h>

#include "common/phone/phone.h"
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

int main(void)
{
    char out[AW_PHONE_E164_MAX];
    char region[3];
    AW_CHECK_INT_EQ(aw_phone_init(), AW_OK);

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
    return aw_test_done();
}
