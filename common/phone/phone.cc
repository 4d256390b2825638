// phone.cc -- the libphonenumber shim: the only C++ in the repository.
// Every exported function catches all exceptions; no memory crosses the language boundary.
#include "common/phone/phone.h"

#include <phonenumbers/phonemetadata.pb.h>
#include <phonenumbers/phonenumberutil.h>
#include <unicode/regex.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <list>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

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

// Validity, the second half of a conversion, without libphonenumber's per-call costs.
// IsValidNumber(n) is IsValidNumberForRegion(n, GetRegionCodeForNumber(n)), and both come down
// to GetNumberTypeHelper(nsn, metadata) != UNKNOWN: the national significant number must fully
// match the region's general pattern and one of its type patterns (premium rate ... voicemail,
// fixed line, mobile), each only when the number's length is one of the type's possible
// lengths. libphonenumber runs each of those regular expressions through a new ICU
// RegexMatcher (an allocation, a UTF-16 copy of the number, a hash of the whole pattern text
// to find it in its cache, and a second, useless prefix match when the full match fails), and
// for a calling code shared by several regions (+1, +44, +7, ...) it runs the chosen region's
// type check twice (once to choose it, once to validate). Here the same patterns of the same
// metadata (the blob libphonenumber loads, read once through phonemetadata.pb.h) are compiled
// once per thread, on first use of a region, with the same ICU call and flags; each check is a
// reset and a matches() of the number's UTF-16 text, made once a number. The rules are
// libphonenumber 8.12's, step by step:
//  - GetRegionCodeForNumber: no region for the code -> invalid; one region -> that one;
//    several -> the first, in the library's order, that has leading_digits matching the start
//    of the number (lookingAt) or, without leading_digits, of whose types the number is one;
//  - IsValidNumberForRegion: the region's metadata ("001": the code's non-geographic entity)
//    and code must agree, then the type check.
// The type check only asks whether the type is UNKNOWN, so the order of the type patterns
// does not matter (each is a pure predicate): fixed line and mobile go first. test_phone
// compares the conversion with the plain Parse + IsValidNumber + Format sequence over every
// region's example numbers and variants of them (aw_phone_check_examples) and over generated
// numbers. If the metadata cannot be read, IsValidNumber itself is called.
using i18n::phonenumbers::PhoneMetadata;
using i18n::phonenumbers::PhoneMetadataCollection;
using i18n::phonenumbers::PhoneNumberDesc;

constexpr int kCallingCodes = 1000;

struct Metadata {
    PhoneMetadataCollection all;
    std::unordered_map<std::string, const PhoneMetadata *> by_region; // geographic regions
    const PhoneMetadata *non_geo[kCallingCodes] = {};                 // "001" by calling code
    std::vector<std::string> regions[kCallingCodes]; // GetRegionCodesForCountryCallingCode
};

const Metadata *metadata = nullptr; // set once by aw_phone_init; NULL: call IsValidNumber

void LoadMetadata()
{
    auto md = std::make_unique<Metadata>();
    if (!md->all.ParseFromArray(i18n::phonenumbers::metadata_get(),
                                i18n::phonenumbers::metadata_size()))
        return;
    for (const PhoneMetadata &m : md->all.metadata()) {
        if (m.id() == "001") {
            if (m.country_code() <= 0 || m.country_code() >= kCallingCodes)
                return;
            md->non_geo[m.country_code()] = &m;
        } else {
            md->by_region[m.id()] = &m;
        }
    }
    for (int cc = 1; cc < kCallingCodes; cc++) {
        std::list<std::string> regions;
        util->GetRegionCodesForCountryCallingCode(cc, &regions);
        for (const std::string &r : regions) {
            // Every region the library maps a code to has metadata of that code.
            const PhoneMetadata *m = r == "001" ? md->non_geo[cc] : nullptr;
            if (r != "001") {
                auto it = md->by_region.find(r);
                m = it == md->by_region.end() ? nullptr : it->second;
            }
            if (!m || m->country_code() != cc || (r == "001" && regions.size() > 1))
                return;
        }
        md->regions[cc].assign(regions.begin(), regions.end());
    }
    metadata = md.release();
}

// A pattern compiled with the flags libphonenumber's ICU regexps use; NULL when ICU refuses it
// (libphonenumber then never matches it either).
std::unique_ptr<icu::RegexMatcher> CompilePattern(const std::string &pattern)
{
    UErrorCode status = U_ZERO_ERROR;
    auto m = std::make_unique<icu::RegexMatcher>(icu::UnicodeString::fromUTF8(pattern), 0, status);
    if (U_FAILURE(status))
        m.reset();
    return m;
}

// One PhoneNumberDesc, compiled. No matcher: the type never matches (an empty pattern, or one
// ICU refuses, which libphonenumber treats the same way).
struct DescCheck {
    std::vector<int> lengths; // possible_length; empty: any length
    std::unique_ptr<icu::RegexMatcher> matcher;

    void Compile(const PhoneNumberDesc &d)
    {
        lengths.assign(d.possible_length().begin(), d.possible_length().end());
        if (!d.national_number_pattern().empty())
            matcher = CompilePattern(d.national_number_pattern());
    }

    // IsNumberMatchingDesc(nsn, desc).
    bool Matches(const icu::UnicodeString &nsn, int nsn_len)
    {
        if (!lengths.empty() && std::find(lengths.begin(), lengths.end(), nsn_len) == lengths.end())
            return false;
        if (!matcher)
            return false;
        UErrorCode status = U_ZERO_ERROR;
        matcher->reset(nsn);
        bool ok = matcher->matches(status);
        return ok && U_SUCCESS(status);
    }
};

// One region's metadata, compiled (per thread: a RegexMatcher is used by one thread).
struct RegionCheck {
    const PhoneMetadata *m;
    DescCheck general, fixed_line, mobile, others[8];
    std::unique_ptr<icu::RegexMatcher> leading_digits; // NULL: none, or ICU refused it

    explicit RegionCheck(const PhoneMetadata *md) : m(md)
    {
        general.Compile(m->general_desc());
        fixed_line.Compile(m->fixed_line());
        mobile.Compile(m->mobile());
        const PhoneNumberDesc *o[8] = {&m->premium_rate(), &m->toll_free(),       &m->shared_cost(),
                                       &m->voip(),         &m->personal_number(), &m->pager(),
                                       &m->uan(),          &m->voicemail()};
        for (int i = 0; i < 8; i++)
            others[i].Compile(*o[i]);
        if (m->has_leading_digits())
            leading_digits = CompilePattern(m->leading_digits());
    }

    // GetNumberTypeHelper(nsn, metadata) != UNKNOWN.
    bool IsOfAType(const icu::UnicodeString &nsn, int len)
    {
        if (!general.Matches(nsn, len))
            return false;
        if (fixed_line.Matches(nsn, len))
            return true;
        if (!m->same_mobile_and_fixed_line_pattern() && mobile.Matches(nsn, len))
            return true;
        for (DescCheck &d : others)
            if (d.Matches(nsn, len))
                return true;
        return false;
    }

    // The leading_digits pattern matches at the start of nsn (RegExp::Consume, anchored).
    bool LeadingDigitsMatch(const icu::UnicodeString &nsn)
    {
        if (!leading_digits)
            return false;
        UErrorCode status = U_ZERO_ERROR;
        leading_digits->reset(nsn);
        bool ok = leading_digits->lookingAt(status);
        return ok && U_SUCCESS(status);
    }
};

// This thread's compiled regions, by their metadata (a non-geographic entity has its own).
struct ThreadChecks {
    std::unordered_map<const PhoneMetadata *, std::unique_ptr<RegionCheck>> regions;

    RegionCheck &For(const PhoneMetadata *m)
    {
        std::unique_ptr<RegionCheck> &slot = regions[m];
        if (!slot)
            slot = std::make_unique<RegionCheck>(m);
        return *slot;
    }
};

thread_local ThreadChecks checks;

bool IsValid(const PhoneNumber &number)
{
    if (!metadata)
        return util->IsValidNumber(number);
    int cc = number.country_code();
    if (cc <= 0 || cc >= kCallingCodes || metadata->regions[cc].empty())
        return false; // GetRegionCodeForNumber: "ZZ", which has no metadata
    std::string nsn_text;
    util->GetNationalSignificantNumber(number, &nsn_text);
    const icu::UnicodeString nsn = icu::UnicodeString::fromUTF8(nsn_text);
    int len = static_cast<int>(nsn_text.size());
    const std::vector<std::string> &regions = metadata->regions[cc];
    if (regions.size() == 1) {
        const std::string &r = regions.front();
        const PhoneMetadata *m = r == "001" ? metadata->non_geo[cc] : metadata->by_region.at(r);
        return checks.For(m).IsOfAType(nsn, len);
    }
    // Several regions (never "001"): the first chosen is validated, and a region chosen by
    // its type check is valid by that same check.
    for (const std::string &r : regions) {
        RegionCheck &rc = checks.For(metadata->by_region.at(r));
        if (rc.m->has_leading_digits()) {
            if (rc.LeadingDigitsMatch(nsn))
                return rc.IsOfAType(nsn, len);
        } else if (rc.IsOfAType(nsn, len)) {
            return true;
        }
    }
    return false;
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
        LoadMetadata();
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

extern "C" size_t aw_phone_check_examples(size_t variants, size_t *numbers, size_t *valid)
{
    size_t differ = 0, n = 0, ok = 0;
    try {
        if (!util)
            return 1;
        std::set<std::string> regions;
        util->GetSupportedRegions(&regions);
        std::set<int> non_geo;
        util->GetSupportedGlobalNetworkCallingCodes(&non_geo);
        std::vector<std::pair<PhoneNumber, std::string>> examples;
        for (const std::string &r : regions)
            for (int t = PhoneNumberUtil::FIXED_LINE; t <= PhoneNumberUtil::VOICEMAIL; t++) {
                PhoneNumber p;
                if (util->GetExampleNumberForType(
                        r, static_cast<PhoneNumberUtil::PhoneNumberType>(t), &p))
                    examples.emplace_back(p, r);
            }
        for (int cc : non_geo) {
            PhoneNumber p;
            if (util->GetExampleNumberForNonGeoEntity(cc, &p))
                examples.emplace_back(p, "");
        }
        uint64_t rng = 0x2545F4914F6CDD1Dull;
        auto digit = [&rng]() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            return static_cast<char>('0' + rng % 10);
        };
        auto check = [&](const std::string &raw, const char *region) {
            char a[AW_PHONE_E164_MAX], b[AW_PHONE_E164_MAX];
            enum aw_err x = aw_phone_to_e164(raw.c_str(), region, a);
            enum aw_err y = aw_phone_to_e164_reference(raw.c_str(), region, b);
            n++;
            ok += y == AW_OK;
            differ += x != y || (x == AW_OK && std::strcmp(a, b) != 0);
        };
        for (const auto &[example, region] : examples) {
            std::string nsn;
            util->GetNationalSignificantNumber(example, &nsn);
            for (size_t v = 0; v < variants; v++) {
                // The example itself, then its last four digits changed, one digit fewer or
                // one more, one digit anywhere changed.
                std::string d = nsn;
                if (v % 4 == 1 && d.size() > 2)
                    d.pop_back();
                if (v % 4 == 2)
                    d.push_back(digit());
                for (size_t i = d.size() > 4 ? d.size() - 4 : 1; v > 0 && i < d.size(); i++)
                    d[i] = digit();
                if (v % 4 == 3)
                    d[rng % d.size()] = digit();
                std::string intl = "+" + std::to_string(example.country_code()) + " " + d;
                check(intl, nullptr);
                if (region.empty())
                    continue;
                check(d, region.c_str());
                PhoneNumber parsed;
                std::string national;
                if (util->Parse(intl, region, &parsed) == PhoneNumberUtil::NO_PARSING_ERROR) {
                    util->Format(parsed, PhoneNumberUtil::NATIONAL, &national);
                    check(national, region.c_str());
                }
            }
        }
    } catch (...) {
        differ++;
    }
    if (numbers)
        *numbers = n;
    if (valid)
        *valid = ok;
    return differ;
}
