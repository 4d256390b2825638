/* hostport.c -- host[:port] grammar (see hostport.h). */
#include "common/hostport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Letters, digits, '-', '.', '_' (RFC 1123 names, IPv4 literals, and '_' as some internal DNS
 * names use). */
static bool is_host_char(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
           c == '.' || c == '_';
}

static bool parse_port(const char *b, const char *e, uint16_t *out)
{
    if (b == e || e - b > 5)
        return false;
    unsigned v = 0;
    for (const char *p = b; p < e; p++) {
        if (!is_digit(*p))
            return false;
        v = v * 10u + (unsigned)(*p - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

const char *aw_hostport_parse(const char *s, size_t n, uint16_t default_port, bool port_required,
                              char host[AW_HOSTPORT_HOST_MAX], uint16_t *port)
{
    const char *b = s, *e = s + n;
    const char *hb, *he, *rest;
    if (b < e && *b == '[') {
        const char *close = memchr(b, ']', n);
        if (!close)
            return "unterminated [ in the address";
        hb = b + 1;
        he = close;
        for (const char *p = hb; p < he; p++)
            if (!(is_hex(*p) || *p == ':' || *p == '.'))
                return "invalid IPv6 address";
        /* The characters alone let "[:::]" or "[1::2::3]" through, which every later
         * inet_pton/getaddrinfo refuses: check the literal here, so what settings accept the
         * listeners and clients can use. */
        char lit[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        size_t len = (size_t)(he - hb);
        if (len > 0) {
            if (len >= sizeof lit)
                return "invalid IPv6 address";
            memcpy(lit, hb, len);
            lit[len] = '\0';
            if (inet_pton(AF_INET6, lit, &a6) != 1)
                return "invalid IPv6 address";
        }
        rest = close + 1;
    } else {
        const char *colon = memchr(b, ':', n);
        hb = b;
        he = colon ? colon : e;
        for (const char *p = hb; p < he; p++)
            if (!is_host_char(*p))
                return "invalid character in the host name";
        rest = he;
    }
    if (hb == he)
        return "missing host";
    if ((size_t)(he - hb) >= AW_HOSTPORT_HOST_MAX)
        return "host name too long";
    uint16_t pt = default_port;
    if (rest < e) {
        if (*rest != ':')
            return "unexpected characters after the host";
        if (!parse_port(rest + 1, e, &pt))
            return "port must be 1-65535";
    } else if (port_required) {
        return "missing :port";
    }
    memcpy(host, hb, (size_t)(he - hb));
    host[he - hb] = '\0';
    *port = pt;
    return NULL;
}

bool aw_hostport_is_ipv6(const char *host)
{
    return strchr(host, ':') != NULL;
}
