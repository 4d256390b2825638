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
#include <cstdio>
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
        } else if (m.id() != "ZZ") { // the library skips "ZZ" too
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

// Runs m over text: the whole of it (whole: RegexMatcher::matches) or a prefix (lookingAt, as
// libphonenumber's anchored Consume). False without a matcher or on an ICU error.
bool MatchText(icu::RegexMatcher *m, const icu::UnicodeString &text, bool whole)
{
    if (!m)
        return false;
    UErrorCode status = U_ZERO_ERROR;
    m->reset(text);
    bool ok = whole ? m->matches(status) : m->lookingAt(status);
    return ok && U_SUCCESS(status);
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
        return MatchText(matcher.get(), nsn, true);
    }
};

// One region's metadata, compiled (per thread: a RegexMatcher is used by one thread).
struct RegionCheck {
    const PhoneMetadata *m;
    DescCheck general, fixed_line, mobile, others[8];
    std::unique_ptr<icu::RegexMatcher> leading_digits; // NULL: none, or ICU refused it
    // For parsing (NULL: ICU refused the pattern, or national_prefix_for_parsing is empty).
    std::unique_ptr<icu::RegexMatcher> international_prefix, national_prefix;

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
        international_prefix = CompilePattern(m->international_prefix());
        if (!m->national_prefix_for_parsing().empty())
            national_prefix = CompilePattern(m->national_prefix_for_parsing());
    }

    // IsMatch(number, general_desc): the general pattern matches the whole number, whatever
    // its length (RegexBasedMatcher::Match without prefix match).
    bool GeneralMatches(const std::string &number)
    {
        return general.matcher &&
               MatchText(general.matcher.get(), icu::UnicodeString::fromUTF8(number), true);
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
        return MatchText(leading_digits.get(), nsn, false);
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

// The conversion is a pure function of (raw, region) once the metadata is loaded, and
// regular expressions make it the costliest step of mapping a profile (~14 k instructions a
// number on the fast path below, ~35 us through Parse); the same user's number comes back with
// every message that names the user. So results, valid or not, are kept in a bounded cache per
// thread (allocated on first use: threads that never convert pay nothing): 2-way
// set-associative, the least recently used way replaced, 32,768 entries (~3 MB). An entry
// holds the whole key, so a collision only costs a miss.
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

// Parse without libphonenumber's per-call costs, for the input shapes that are common. Parse
// (ParseHelper) runs about a dozen generic regular expressions over the raw text, each through
// a new ICU matcher (~130 k instructions a number), before any of the region's own patterns.
// For raw text of ASCII digits, the separators ' ', '-', '.', '(' and ')', and at most one '+'
// before the first digit, every one of those generic steps has a fixed answer, and what is
// left are the region's patterns (international prefix, national prefix for parsing, general
// pattern) run here on this thread's compiled matchers with the same ICU calls. The steps are
// libphonenumber 8.12's ParseHelper, in its order:
//  - BuildNationalNumberForParsing: no ";phone-context=" or ";isub=" (no ';');
//    ExtractPossibleNumber keeps the text from the first '+' or digit to the last digit
//    (TrimUnwantedEndChars drops the trailing non-letters, non-digits); no '/' or '\\', so
//    nothing is cut as a second number;
//  - IsViablePhoneNumber: exactly two digits, or at least three digits after the optional '+'
//    with only punctuation between them (all five separators are the library's punctuation);
//  - CheckRegionForParsing: an unknown region needs the '+';
//  - MaybeStripExtension: every extension form needs a letter, '#', '~', ',' or ';': none;
//  - MaybeExtractCountryCode, with the retry without the '+' when the code after it is
//    invalid; Normalize keeps the digits (no letters to convert);
//  - the region of the code, MaybeStripNationalPrefixAndCarrierCode kept only when
//    TestNumberLength allows it, the NSN length limits, the leading zeros.
// Anything else (letters, '#', '*', 'x', ',', ';', '/', '~', tabs, a second '+', non-ASCII
// digits, another punctuation) is declined and parsed by util->Parse. test_phone compares
// the result with Parse's field for field over inputs of every accepted shape
// (aw_phone_check_parse).
constexpr int kDeclined = -1;
constexpr size_t kMinLengthForNsn = 2, kMaxLengthForNsn = 17, kMaxLengthCountryCode = 3; // 8.12's
using ErrorType = PhoneNumberUtil::ErrorType;
enum class Length { kPossible, kLocalOnly, kTooShort, kInvalid, kTooLong };

// TestNumberLength(number, metadata) (type UNKNOWN: the general description's lengths, which
// the caller has checked are there).
Length TestNumberLength(size_t len, const PhoneMetadata &m)
{
    const auto &possible = m.general_desc().possible_length();
    const auto &local = m.general_desc().possible_length_local_only();
    if (possible.Get(0) == -1)
        return Length::kInvalid;
    int actual = static_cast<int>(len);
    if (std::find(local.begin(), local.end(), actual) != local.end())
        return Length::kLocalOnly;
    int minimum = possible.Get(0);
    if (minimum == actual)
        return Length::kPossible;
    if (minimum > actual)
        return Length::kTooShort;
    if (possible.Get(possible.size() - 1) < actual)
        return Length::kTooLong;
    return std::find(possible.begin() + 1, possible.end(), actual) != possible.end()
               ? Length::kPossible
               : Length::kInvalid;
}

// MaybeStripNationalPrefixAndCarrierCode (the carrier code is not kept by Parse).
void StripNationalPrefix(RegionCheck &rc, std::string *number)
{
    if (number->empty() || rc.m->national_prefix_for_parsing().empty() || !rc.national_prefix)
        return; // a pattern ICU refused never matches in the library either
    icu::RegexMatcher &p = *rc.national_prefix;
    const icu::UnicodeString text = icu::UnicodeString::fromUTF8(*number);
    if (!MatchText(&p, text, false))
        return; // both of the library's branches start with this anchored match
    UErrorCode status = U_ZERO_ERROR;
    int32_t end = p.end(status);
    if (U_FAILURE(status))
        return;
    // Consume(&carrier, &captured) needs two groups, else Consume(&captured) one.
    const std::string &rule = rc.m->national_prefix_transform_rule();
    icu::UnicodeString captured;
    int32_t groups = p.groupCount();
    if (groups >= 2)
        captured = p.group(2, status);
    else if (groups == 1)
        captured = p.group(1, status);
    if (U_FAILURE(status))
        return;
    std::string result;
    if (!rule.empty() && groups >= 1 && !captured.isEmpty()) {
        // Replace(number, rule): the first match (the one at 0) replaced, the rest appended.
        icu::UnicodeString out;
        p.reset(text);
        status = U_ZERO_ERROR;
        bool replaced = p.find();
        if (replaced) {
            p.appendReplacement(out, icu::UnicodeString::fromUTF8(rule), status);
            p.appendTail(out);
        }
        if (replaced && U_SUCCESS(status))
            out.toUTF8String(result);
        else
            result = *number; // Replace failed: the library keeps the copy unchanged
    } else {
        result = number->substr(static_cast<size_t>(end));
    }
    // If the number was viable (general pattern) before, it must still be after.
    if (rc.GeneralMatches(*number) && !rc.GeneralMatches(result))
        return;
    *number = result;
}

// MaybeExtractCountryCode(metadata, text): text is the extracted number (or, on the retry,
// what follows its '+'); *national gets the normalized digits without the code, *cc the code
// or 0.
ErrorType ExtractCountryCode(RegionCheck *rc, const std::string &text, std::string *national,
                             int *cc)
{
    *cc = 0;
    national->clear();
    bool international = false;
    if (!text.empty() && text[0] == '+') {
        international = true;
        for (char c : text)
            if (c >= '0' && c <= '9')
                national->push_back(c);
    } else if (!text.empty()) {
        for (char c : text)
            if (c >= '0' && c <= '9')
                national->push_back(c);
        // ParsePrefixAsIdd, without a region: "NonMatch", which digits never match.
        if (rc && rc->international_prefix) {
            icu::RegexMatcher &p = *rc->international_prefix;
            const icu::UnicodeString digits = icu::UnicodeString::fromUTF8(*national);
            UErrorCode status = U_ZERO_ERROR;
            if (MatchText(&p, digits, false)) {
                size_t end = static_cast<size_t>(p.end(status));
                // Not when a 0 follows: country calling codes do not start with 0.
                if (U_SUCCESS(status) && (end >= national->size() || (*national)[end] != '0')) {
                    national->erase(0, end);
                    international = true;
                }
            }
        }
    }
    if (international) {
        if (national->size() <= kMinLengthForNsn)
            return PhoneNumberUtil::TOO_SHORT_AFTER_IDD;
        if ((*national)[0] != '0')
            for (size_t i = 1, code = 0; i <= kMaxLengthCountryCode; i++) {
                code = code * 10 + static_cast<size_t>((*national)[i - 1] - '0');
                if (!metadata->regions[code].empty()) {
                    national->erase(0, i);
                    *cc = static_cast<int>(code);
                    return PhoneNumberUtil::NO_PARSING_ERROR;
                }
            }
        return PhoneNumberUtil::INVALID_COUNTRY_CODE_ERROR;
    }
    if (rc) {
        // The number starts with the region's own calling code, without '+': taken as the
        // code when the rest matches the region's general pattern and the whole does not, or
        // when the whole is too long.
        const std::string code = std::to_string(rc->m->country_code());
        if (national->compare(0, code.size(), code) == 0) {
            std::string potential = national->substr(code.size());
            StripNationalPrefix(*rc, &potential);
            if ((!rc->GeneralMatches(*national) && rc->GeneralMatches(potential)) ||
                TestNumberLength(national->size(), *rc->m) == Length::kTooLong) {
                *national = potential;
                *cc = rc->m->country_code();
            }
        }
    }
    return PhoneNumberUtil::NO_PARSING_ERROR;
}

// Parse(raw, region, number) for the shapes above: an ErrorType, or kDeclined (parse it
// with util->Parse).
int FastParse(const char *raw, const std::string &region, PhoneNumber *number)
{
    if (!metadata)
        return kDeclined;
    // The shape, and ExtractPossibleNumber's bounds: from the first '+' or digit to the last
    // digit.
    size_t first = std::string::npos, last = std::string::npos, digits = 0, i = 0;
    for (; raw[i]; i++) {
        char c = raw[i];
        if (c >= '0' && c <= '9') {
            if (first == std::string::npos)
                first = i;
            last = i;
            digits++;
        } else if (c == '+') {
            if (first != std::string::npos)
                return kDeclined; // a second '+', or one after a digit
            first = i;
        } else if (c != ' ' && c != '-' && c != '.' && c != '(' && c != ')') {
            return kDeclined;
        }
        if (i >= kRawMax)
            return kDeclined;
    }
    if (last == std::string::npos) // nothing, or a '+' and separators: trimmed to nothing
        return PhoneNumberUtil::NOT_A_NUMBER;
    const std::string extracted(raw + first, last + 1 - first);
    // IsViablePhoneNumber.
    if (!(digits >= 3 || (digits == 2 && extracted.size() == 2)))
        return PhoneNumberUtil::NOT_A_NUMBER;
    const bool plus = extracted[0] == '+';
    auto found = metadata->by_region.find(region);
    const PhoneMetadata *region_md = found == metadata->by_region.end() ? nullptr : found->second;
    if (!region_md && !plus) // CheckRegionForParsing
        return PhoneNumberUtil::INVALID_COUNTRY_CODE_ERROR;
    if (region_md && region_md->general_desc().possible_length_size() == 0)
        return kDeclined; // the library would read past the end of the lengths
    RegionCheck *rc = region_md ? &checks.For(region_md) : nullptr;
    std::string national;
    int cc = 0;
    ErrorType err = ExtractCountryCode(rc, extracted, &national, &cc);
    if (err != PhoneNumberUtil::NO_PARSING_ERROR) {
        if (err != PhoneNumberUtil::INVALID_COUNTRY_CODE_ERROR || !plus)
            return err;
        // Without the '+', and again; only a code found counts.
        ExtractCountryCode(rc, extracted.substr(1), &national, &cc);
        if (cc == 0)
            return PhoneNumberUtil::INVALID_COUNTRY_CODE_ERROR;
    }
    const PhoneMetadata *md = region_md;
    if (cc != 0) {
        const std::string &main = metadata->regions[cc].front(); // GetRegionCodeForCountryCode
        if (main != region)
            md = main == "001" ? metadata->non_geo[cc] : metadata->by_region.at(main);
    } else if (md) {
        cc = md->country_code();
    }
    if (national.size() < kMinLengthForNsn)
        return PhoneNumberUtil::TOO_SHORT_NSN;
    if (md) {
        if (md->general_desc().possible_length_size() == 0)
            return kDeclined; // the library would read past the end of the lengths
        std::string potential = national;
        StripNationalPrefix(checks.For(md), &potential);
        Length l = TestNumberLength(potential.size(), *md);
        if (l != Length::kTooShort && l != Length::kLocalOnly && l != Length::kInvalid)
            national = potential;
    }
    if (national.size() < kMinLengthForNsn)
        return PhoneNumberUtil::TOO_SHORT_NSN;
    if (national.size() > kMaxLengthForNsn)
        return PhoneNumberUtil::TOO_LONG_NSN;
    // The fields Parse sets, and only those (SetItalianLeadingZerosForPhoneNumber).
    number->Clear();
    number->set_country_code(cc);
    if (national.size() > 1 && national[0] == '0') {
        number->set_italian_leading_zero(true);
        size_t zeros = 1;
        while (zeros < national.size() - 1 && national[zeros] == '0')
            zeros++;
        if (zeros != 1)
            number->set_number_of_leading_zeros(static_cast<int32_t>(zeros));
    }
    uint64_t value = 0;
    for (char c : national)
        value = value * 10 + static_cast<uint64_t>(c - '0');
    number->set_national_number(value);
    return PhoneNumberUtil::NO_PARSING_ERROR;
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

// The uncached conversion; reg is "ZZ" when the region is unknown. plain: Parse and
// IsValidNumber as they are, without the fast path and the shortcut (the reference the tests
// compare with).
static enum aw_err ToE164(const char *raw, const std::string &reg, char out[AW_PHONE_E164_MAX],
                          bool plain = false)
{
    PhoneNumber number;
    int parsed = plain ? kDeclined : FastParse(raw, reg, &number);
    if (parsed == kDeclined)
        parsed = util->Parse(raw, reg, &number);
    if (parsed != PhoneNumberUtil::NO_PARSING_ERROR)
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

extern "C" int aw_phone_compare_parse(const char *raw, const char *region, int *fast)
{
    try {
        if (fast)
            *fast = 0;
        if (!util || !raw || !region)
            return 1;
        PhoneNumber mine, theirs;
        int got = FastParse(raw, region, &mine);
        if (got == kDeclined)
            return 0;
        if (fast)
            *fast = 1;
        int want = util->Parse(raw, region, &theirs);
        if (got != want)
            return 1;
        // Every field and whether it is set: the serialized forms are the same.
        return want == PhoneNumberUtil::NO_PARSING_ERROR &&
               mine.SerializeAsString() != theirs.SerializeAsString();
    } catch (...) {
        return 1;
    }
}
