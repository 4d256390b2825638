// phone.cc -- the libphonenumber shim: the only C++ in the repository.
// Every exported function catches all exceptions; no memory crosses the language boundary.
#include "common/phone/phone.h"

#include <phonenumbers/phonenumberutil.h>

#include <cctype>
#include <cstring>
#include <string>

namespace
{

#include "common/phone/iso3166.inc"

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

const PhoneNumberUtil *util = nullptr;

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
        util = PhoneNumberUtil::GetInstance();
        return util ? AW_OK : AW_ERR_INTERNAL;
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

extern "C" enum aw_err aw_phone_to_e164(const char *raw, const char *region,
                                        char out[AW_PHONE_E164_MAX])
{
    try {
        if (!util || !raw)
            return AW_ERR_INVALID;
        if (std::strlen(raw) > 64) // far beyond any phone number; libphonenumber caps at 250
            return AW_ERR_INVALID;
        PhoneNumber number;
        std::string reg = (region && *region) ? region : "ZZ";
        if (util->Parse(raw, reg, &number) != PhoneNumberUtil::NO_PARSING_ERROR)
            return AW_ERR_INVALID;
        if (!util->IsValidNumber(number))
            return AW_ERR_INVALID;
        std::string e164;
        util->Format(number, PhoneNumberUtil::E164, &e164);
        if (e164.size() + 1 > AW_PHONE_E164_MAX)
            return AW_ERR_INVALID;
        std::memcpy(out, e164.c_str(), e164.size() + 1);
        return AW_OK;
    } catch (...) {
        return AW_ERR_INTERNAL;
    }
}
