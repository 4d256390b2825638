// phone.cc -- the libphonenumber shim: the only C++ in the repository.
// Every exported function catches all exceptions; no memory crosses the language boundary.
#include "common/phone/phone.h"

#include <phonenumbers/phonemetadata.pb.h>
#include <phonenumbers/phonenumberutil.h>

#include <cctype>
#include <cstdint>
#include <cstring>
#include <list>
#include <memory>
#include <string>

// The metadata libphonenumber compiles in and loads (phonenumbers/metadata.h, a header the
// package does not install; both functions are exported by libphonenumber.so).
namespace i18n
{
namespace phonenumbers
{
int metadata_size();
const void *metadata_get();
} // namespace phonenumbers
} // namespace i18n

namespace
{

#include "common/phone/iso3166.inc"

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

const PhoneNumberUtil *util = nullptr;

// IsValidNumber(n) is IsValidNumberForRegion(n, GetRegionCodeForNumber(n)). For a country
// calling code shared by several regions (+1, +44, +7, ...) GetRegionCodeForNumber tries the
// regions in turn, the main one first: a region with leading_digits in its metadata is chosen
// when the number starts with them, any other when the number is of one of its types (the
// full type check, a dozen regular expressions); IsValidNumberForRegion then runs that same
// type check again. When the main region has no leading_digits, a number valid for it is
// therefore valid and needs one type check, not two: IsValidNumberForRegion(n, main) is asked
// first and IsValidNumber only when it says no (the answer is the same either way; the
// differential test in test_phone compares both over generated numbers). kMainFirst[cc] holds
// the main region of each such code, empty for every other (one region only, or a main region
// with leading_digits: CW, FI, NO, RE, RU, SH in 8.12). Filled once by aw_phone_init from the
// library's own metadata; if that cannot be read, no code takes the shortcut.
constexpr int kCallingCodes = 1000;
std::string kMainFirst[kCallingCodes];

void LoadMainFirst()
{
    i18n::phonenumbers::PhoneMetadataCollection all;
    if (!all.ParseFromArray(i18n::phonenumbers::metadata_get(),
                            i18n::phonenumbers::metadata_size()))
        return;
    for (const i18n::phonenumbers::PhoneMetadata &m : all.metadata()) {
        int cc = m.country_code();
        if (!m.main_country_for_code() || m.has_leading_digits() || cc <= 0 || cc >= kCallingCodes)
            continue;
        std::list<std::string> regions;
        util->GetRegionCodesForCountryCallingCode(cc, &regions);
        // GetRegionCodeForNumber tries the list in this order: the shortcut holds only if the
        // main region comes first.
        if (regions.size() > 1 && regions.front() == m.id())
            kMainFirst[cc] = m.id();
    }
}

bool IsValid(const PhoneNumber &number)
{
    int cc = number.country_code();
    if (cc > 0 && cc < kCallingCodes && !kMainFirst[cc].empty() &&
        util->IsValidNumberForRegion(number, kMainFirst[cc]))
        return true;
    return util->IsValidNumber(number);
}

// The conversion is a pure function of (raw, region) once the metadata is loaded, and the
// library's regular expressions make it the costliest step of mapping a profile (~35 us a
// number); the same user's number comes back with every message that names the user. So
// results, valid or not, are kept in a bounded cache per thread (allocated on first use:
// threads that never convert pay nothing): 2-way set-associative, the least recently used way
// replaced, 32,768 entries (~3 MB). An entry holds the whole key, so a collision only costs a
// miss.
constexpr size_t kRawMax = 64; // longer input is refused before parsing
constexpr size_t kCacheSets = 16384;

struct CacheSlot {
    uint8_t state; // 0 empty, 1 valid (e164 set), 2 invalid
    uint8_t raw_len;
    char region[2];
    char raw[kRawMax];
    char e164[AW_PHONE_E164_MAX];
};

struct CacheSet {
    CacheSlot way[2];
    uint8_t mru; // the way used last
};

thread_local std::unique_ptr<CacheSet[]> cache;

bool SlotHolds(const CacheSlot &s, const char *raw, size_t n, const char *reg)
{
    return s.state != 0 && s.raw_len == n && s.region[0] == reg[0] && s.region[1] == reg[1] &&
           std::memcmp(s.raw, raw, n) == 0;
}

uint64_t CacheHash(const char *raw, size_t n, const char *region)
{
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (size_t i = 0; i < n; i++)
        h = (h ^ static_cast<unsigned char>(raw[i])) * 1099511628211ull;
    h = (h ^ static_cast<unsigned char>(region[0])) * 1099511628211ull;
    return (h ^ static_cast<unsigned char>(region[1])) * 1099511628211ull;
}

bool IsAlpha(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!std::isalpha(static_cast<unsigned char>(s[i])))
            return false;
    return s[n] == '\0';
}

} // namespace

extern "C" enum aw_err aw_phone_init(void)
{
    try {
        if (util)
            return AW_OK;
        util = PhoneNumberUtil::GetInstance();
        if (!util)
            return AW_ERR_INTERNAL;
        LoadMainFirst();
        return AW_OK;
    } catch (...) {
        return AW_ERR_INTERNAL;
    }
}

extern "C" enum aw_err aw_phone_region_from_country(const char *country, char out[3])
{
    try {
        if (!util || !country)
            return AW_ERR_INVALID;
        // Tolerate surrounding blanks; the attribute itself is forwarded unchanged elsewhere.
        while (*country == ' ')
            country++;
        size_t n = std::strlen(country);
        while (n > 0 && country[n - 1] == ' ')
            n--;
        char up[4] = {0};
        if (n == 2 || n == 3) {
            for (size_t i = 0; i < n; i++)
                up[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(country[i])));
            if (!IsAlpha(up, n))
                return AW_ERR_INVALID;
        } else {
            return AW_ERR_INVALID;
        }
        std::string region;
        if (n == 3) {
            size_t lo = 0, hi = sizeof kAlpha3 / sizeof kAlpha3[0];
            const char *found = nullptr;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = std::strcmp(kAlpha3[mid].a3, up);
                if (c == 0) {
                    found = kAlpha3[mid].a2;
                    break;
                }
                if (c < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (!found)
                return AW_ERR_INVALID;
            region = found;
        } else {
            region = up;
        }
        // Only regions libphonenumber knows are useful for parsing.
        if (util->GetCountryCodeForRegion(region) == 0)
            return AW_ERR_INVALID;
        out[0] = region[0];
        out[1] = region[1];
        out[2] = '\0';
        return AW_OK;
    } catch (...) {
        return AW_ERR_INTERNAL;
    }
}

// The uncached conversion; reg is "ZZ" when the region is unknown. plain: IsValidNumber as
// it is, without the shortcut (the reference the tests compare with).
static enum aw_err ToE164(const char *raw, const std::string &reg, char out[AW_PHONE_E164_MAX],
                          bool plain = false)
{
    PhoneNumber number;
    if (util->Parse(raw, reg, &number) != PhoneNumberUtil::NO_PARSING_ERROR)
        return AW_ERR_INVALID;
    if (!(plain ? util->IsValidNumber(number) : IsValid(number)))
        return AW_ERR_INVALID;
    std::string e164;
    util->Format(number, PhoneNumberUtil::E164, &e164);
    if (e164.size() + 1 > AW_PHONE_E164_MAX)
        return AW_ERR_INVALID;
    std::memcpy(out, e164.c_str(), e164.size() + 1);
    return AW_OK;
}

extern "C" enum aw_err aw_phone_to_e164(const char *raw, const char *region,
                                        char out[AW_PHONE_E164_MAX])
{
    try {
        if (!util || !raw)
            return AW_ERR_INVALID;
        size_t n = std::strlen(raw);
        if (n > kRawMax) // far beyond any phone number; libphonenumber caps at 250
            return AW_ERR_INVALID;
        const char *reg = (region && region[0] && region[1] && !region[2]) ? region : "ZZ";
        if (region && *region && reg != region)
            return ToE164(raw, region, out); // not an alpha-2 region: never cached
        if (!cache)
            cache.reset(new CacheSet[kCacheSets]());
        CacheSet &set = cache[CacheHash(raw, n, reg) & (kCacheSets - 1)];
        for (uint8_t w = 0; w < 2; w++) {
            const CacheSlot &hit = set.way[w];
            if (!SlotHolds(hit, raw, n, reg))
                continue;
            set.mru = w;
            if (hit.state == 2)
                return AW_ERR_INVALID;
            std::memcpy(out, hit.e164, AW_PHONE_E164_MAX);
            return AW_OK;
        }
        enum aw_err err = ToE164(raw, reg, out);
        if (err == AW_OK || err == AW_ERR_INVALID) {
            set.mru = static_cast<uint8_t>(set.mru ^ 1u);
            CacheSlot &s = set.way[set.mru];
            s.state = err == AW_OK ? 1 : 2;
            s.raw_len = static_cast<uint8_t>(n);
            s.region[0] = reg[0];
            s.region[1] = reg[1];
            std::memcpy(s.raw, raw, n);
            if (err == AW_OK)
                std::memcpy(s.e164, out, AW_PHONE_E164_MAX);
        }
        return err;
    } catch (...) {
        return AW_ERR_INTERNAL;
    }
}

extern "C" enum aw_err aw_phone_to_e164_reference(const char *raw, const char *region,
                                                  char out[AW_PHONE_E164_MAX])
{
    try {
        if (!util || !raw || std::strlen(raw) > kRawMax)
            return AW_ERR_INVALID;
        return ToE164(raw, region && *region ? region : "ZZ", out, true);
    } catch (...) {
        return AW_ERR_INTERNAL;
    }
}
