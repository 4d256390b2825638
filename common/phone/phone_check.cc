// phone_check.cc -- the shim's differential checks for tests: generated input converted or parsed
// both by the shim and by libphonenumber's plain calls (phone_check.h). Not linked into the
// worker (nothing there calls it).
#include "common/phone/phone_check.h"

#include <phonenumbers/phonenumberutil.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/phone/phone.h"

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

// Every supported region's example number of every type, then every non-geographic entity's
// (region "").
static std::vector<std::pair<PhoneNumber, std::string>> ExampleNumbers(const PhoneNumberUtil *util)
{
    std::set<std::string> regions;
    util->GetSupportedRegions(&regions);
    std::set<int> non_geo;
    util->GetSupportedGlobalNetworkCallingCodes(&non_geo);
    std::vector<std::pair<PhoneNumber, std::string>> examples;
    for (const std::string &r : regions)
        for (int t = PhoneNumberUtil::FIXED_LINE; t <= PhoneNumberUtil::VOICEMAIL; t++) {
            PhoneNumber p;
            if (util->GetExampleNumberForType(r, static_cast<PhoneNumberUtil::PhoneNumberType>(t),
                                              &p))
                examples.emplace_back(p, r);
        }
    for (int cc : non_geo) {
        PhoneNumber p;
        if (util->GetExampleNumberForNonGeoEntity(cc, &p))
            examples.emplace_back(p, "");
    }
    return examples;
}

extern "C" size_t aw_phone_check_examples(size_t variants, size_t *numbers, size_t *valid)
{
    size_t differ = 0, n = 0, ok = 0;
    try {
        const PhoneNumberUtil *util = PhoneNumberUtil::GetInstance();
        if (!util)
            return 1;
        const std::vector<std::pair<PhoneNumber, std::string>> examples = ExampleNumbers(util);
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

extern "C" size_t aw_phone_check_parse(size_t rounds, unsigned long long seed, size_t *inputs,
                                       size_t *fast, char *first, size_t first_len)
{
    size_t differ = 0, n = 0, answered = 0;
    if (first && first_len)
        first[0] = '\0';
    try {
        const PhoneNumberUtil *util = PhoneNumberUtil::GetInstance();
        if (!util)
            return 1;
        std::set<std::string> region_set;
        util->GetSupportedRegions(&region_set);
        std::vector<std::string> regions(region_set.begin(), region_set.end());
        struct Example {
            std::string nsn, region, national_prefix;
            int cc;
        };
        std::vector<Example> examples;
        for (const auto &[p, r] : ExampleNumbers(util)) {
            Example e{"", r, "", p.country_code()};
            util->GetNationalSignificantNumber(p, &e.nsn);
            if (!r.empty())
                util->GetNddPrefixForRegion(r, true, &e.national_prefix);
            examples.push_back(e);
        }
        uint64_t rng = seed | 1;
        auto rnd = [&rng](size_t bound) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            return static_cast<size_t>(rng % bound);
        };
        auto digits = [&rnd](size_t len) {
            std::string d;
            for (size_t i = 0; i < len; i++)
                d.push_back(static_cast<char>('0' + rnd(10)));
            return d;
        };
        // Written as users write: separators between digits, brackets, blanks around.
        static const char *const seps[] = {" ", "-", ".", "(", ")", " (", ") ", " - ", "  ", "."};
        auto spaced = [&](const std::string &plain) {
            size_t density = rnd(4); // 0: none
            std::string out = rnd(6) == 0 ? (rnd(2) ? "(" : " ") : "";
            for (size_t i = 0; i < plain.size(); i++) {
                out.push_back(plain[i]);
                if (density && i + 1 < plain.size() && rnd(8) < density * 2)
                    out += seps[rnd(sizeof seps / sizeof seps[0])];
            }
            if (rnd(6) == 0)
                out += rnd(2) ? ")" : " ";
            return out;
        };
        static const char *const idds[] = {"00",  "011", "810", "0011", "001", "010", "0",
                                           "000", "009", "119", "01",   "99",  "8",   "0010"};
        static const char *const odd_regions[] = {"ZZ", "", "001", "gb", "GBR", "us", "XK"};
        static const char *const foreign[] = {"x",        "#", "*",  ";", ",",   "/",
                                              "~",        "a", "\t", "+", "ext", "\xef\xbc\x91",
                                              "\xd9\xa3", "_", ":"};
        auto check = [&](const std::string &raw, const std::string &region) {
            int f = 0;
            int d = aw_phone_compare_parse(raw.c_str(), region.c_str(), &f);
            n++;
            answered += static_cast<size_t>(f);
            if (d && !differ && first && first_len)
                std::snprintf(first, first_len, "\"%s\" in \"%s\"", raw.c_str(), region.c_str());
            differ += static_cast<size_t>(d);
        };
        auto any_region = [&]() -> std::string {
            if (rnd(4) == 0)
                return odd_regions[rnd(sizeof odd_regions / sizeof odd_regions[0])];
            return regions[rnd(regions.size())];
        };
        for (size_t round = 0; round < rounds; round++)
            for (const Example &e : examples) {
                // The example, or a variant: its last digits changed, a digit fewer or more.
                std::string d = e.nsn;
                size_t v = round % 4;
                if (v == 1 && d.size() > 2)
                    d.pop_back();
                if (v == 2)
                    d += digits(1);
                for (size_t i = d.size() > 4 ? d.size() - 4 : 1; round > 0 && i < d.size(); i++)
                    d[i] = static_cast<char>('0' + rnd(10));
                if (v == 3)
                    d[rnd(d.size())] = static_cast<char>('0' + rnd(10));
                const std::string cc = std::to_string(e.cc);
                const std::string r = e.region.empty() ? any_region() : e.region;
                const std::string idd = idds[rnd(sizeof idds / sizeof idds[0])];
                check(spaced("+" + cc + d), r);
                check(spaced("+" + cc + d), any_region());
                check(spaced(d), r);
                check(spaced(e.national_prefix + d), r);
                check(spaced(cc + d), r);
                check(spaced(cc + e.national_prefix + d), r);
                check(spaced(idd + cc + d), r);
                check(spaced("+" + idd + cc + d), r);
                check(spaced("+" + d), r);
                check(spaced(std::string(1 + rnd(3), '0') + d), r);
                check(spaced(d.substr(0, 1 + rnd(4))), r);
                // Its last 5 to 8 digits: local numbers, which some regions complete with an
                // area code (national_prefix_transform_rule).
                size_t local = 5 + rnd(4);
                check(spaced(d.size() > local ? d.substr(d.size() - local) : d), r);
                check(spaced((rnd(2) ? "+" : "") + d + digits(1 + rnd(8))), r);
                check(spaced((rnd(3) ? "" : "+") + digits(1 + rnd(20))), r);
                check(spaced(digits(1 + rnd(20))), any_region());
                // A character outside the shape: declined (Parse alone).
                std::string odd = spaced(rnd(2) ? "+" + cc + d : d);
                odd.insert(rnd(odd.size() + 1), foreign[rnd(sizeof foreign / sizeof foreign[0])]);
                check(odd, r);
            }
    } catch (...) {
        differ++;
    }
    if (inputs)
        *inputs = n;
    if (fast)
        *fast = answered;
    return differ;
}
