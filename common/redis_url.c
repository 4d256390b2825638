/* redis_url.c -- AW_REDIS_URL grammar (see redis_url.h). */
#include "common/redis_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/text.h"

static enum aw_err fail(char *errbuf, size_t errlen, const char *msg)
{
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", msg);
    return AW_ERR_CONFIG;
}

/* Percent-decodes s[0..n) into out (size outlen). False when malformed, %00 or too long. */
static bool pct_decode_into(const char *s, size_t n, char *out, size_t outlen)
{
    char *d = aw_text_pct_decode(s, n);
    size_t len = d ? strlen(d) : 0;
    bool ok = d && len < outlen;
    if (ok)
        memcpy(out, d, len + 1);
    if (d) {
        memset(d, 0, len);
        free(d);
    }
    return ok;
}

/* Decimal 0..2147483647 from s[0..n). */
static bool parse_db(const char *s, size_t n, int *out)
{
    if (n == 0 || n > 10)
        return false;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v > 2147483647LL)
        return false;
    *out = (int)v;
    return true;
}

/* Credentials p[0..n): "user:password", ":password", "user:" or a lone "password". */
static enum aw_err parse_userinfo(const char *p, size_t n, struct aw_redis_url *out, char *errbuf,
                                  size_t errlen)
{
    const char *colon = memchr(p, ':', n);
    if (!colon) {
        if (!pct_decode_into(p, n, out->password, sizeof out->password))
            return fail(errbuf, errlen, "bad password in the URL (%XX escape or length)");
        return AW_OK;
    }
    if (!pct_decode_into(p, (size_t)(colon - p), out->user, sizeof out->user))
        return fail(errbuf, errlen, "bad user name in the URL (%XX escape or length)");
    if (!pct_decode_into(colon + 1, n - (size_t)(colon - p) - 1, out->password,
                         sizeof out->password))
        return fail(errbuf, errlen, "bad password in the URL (%XX escape or length)");
    return AW_OK;
}

/* "?db=N" (q points at '?') into out->db. */
static enum aw_err parse_query(const char *q, bool have_db, struct aw_redis_url *out, char *errbuf,
                               size_t errlen)
{
    if (strncmp(q, "?db=", 4) != 0 || have_db)
        return fail(errbuf, errlen,
                    "the only query parameter is db=N, and only without /N in the path");
    if (!parse_db(q + 4, strlen(q + 4), &out->db))
        return fail(errbuf, errlen, "database index must be 0-2147483647");
    return AW_OK;
}

static enum aw_err parse_unix(const char *rest, struct aw_redis_url *out, char *errbuf,
                              size_t errlen)
{
    out->is_unix = true;
    const char *path = rest;
    if (*rest != '/') {
        const char *at = strstr(rest, "@/");
        if (!at)
            return fail(errbuf, errlen,
                        "unix:// needs an absolute socket path (unix:///run/redis.sock)");
        enum aw_err e = parse_userinfo(rest, (size_t)(at - rest), out, errbuf, errlen);
        if (e != AW_OK)
            return e;
        path = at + 1;
    }
    size_t len = strcspn(path, "?");
    if (len < 2)
        return fail(errbuf, errlen, "missing socket path");
    if (len >= AW_REDIS_URL_PATH_MAX)
        return fail(errbuf, errlen, "socket path longer than 107 bytes");
    memcpy(out->nodes[0].host, path, len);
    out->nodes[0].host[len] = '\0';
    out->nodes[0].port = 0;
    out->n_nodes = 1;
    return path[len] == '?' ? parse_query(path + len, false, out, errbuf, errlen) : AW_OK;
}

enum aw_err aw_redis_url_parse(const char *url, struct aw_redis_url *out, char *errbuf,
                               size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!url || !url[0])
        return fail(errbuf, errlen, "empty URL");
    if (strchr(url, '#'))
        return fail(errbuf, errlen, "fragments (#) are not allowed");
    if (strncasecmp(url, "unix://", 7) == 0)
        return parse_unix(url + 7, out, errbuf, errlen);
    if (strncasecmp(url, "rediss://", 9) == 0)
        return fail(errbuf, errlen,
                    "TLS (rediss://) is not supported by this build; use redis:// or unix://");
    if (strncasecmp(url, "redis://", 8) != 0)
        return fail(errbuf, errlen, "scheme must be redis:// or unix://");
    const char *rest = url + 8;
    size_t auth_len = strcspn(rest, "/?");
    /* Credentials end at the last '@' of the authority: a password may hold a raw '@'. */
    const char *at = NULL;
    for (size_t i = 0; i < auth_len; i++)
        if (rest[i] == '@')
            at = rest + i;
    const char *hosts = rest;
    if (at) {
        enum aw_err e = parse_userinfo(rest, (size_t)(at - rest), out, errbuf, errlen);
        if (e != AW_OK)
            return e;
        hosts = at + 1;
    }
    const char *hend = rest + auth_len;
    for (const char *p = hosts;;) {
        const char *comma = memchr(p, ',', (size_t)(hend - p));
        const char *e = comma ? comma : hend;
        if (out->n_nodes == AW_REDIS_URL_NODES_MAX)
            return fail(errbuf, errlen, "too many seed nodes (at most 16)");
        struct aw_redis_url_node *nd = &out->nodes[out->n_nodes];
        const char *why = aw_hostport_parse(p, (size_t)(e - p), 6379, false, nd->host, &nd->port);
        if (why)
            return fail(errbuf, errlen, why);
        out->n_nodes++;
        if (!comma)
            break;
        p = comma + 1;
    }
    bool have_db = false;
    const char *q = hend;
    if (*hend == '/') {
        size_t n = strcspn(hend + 1, "?");
        if (n > 0) {
            if (!parse_db(hend + 1, n, &out->db))
                return fail(errbuf, errlen, "database index must be 0-2147483647");
            have_db = true;
        }
        q = hend + 1 + n;
    }
    if (*q == '?') {
        enum aw_err e = parse_query(q, have_db, out, errbuf, errlen);
        if (e != AW_OK)
            return e;
    }
    if (out->n_nodes > 1 && out->db != 0)
        return fail(errbuf, errlen, "several seed nodes mean Redis Cluster, which has only db 0");
    return AW_OK;
}

/* Appends the user name, percent-encoded where the grammar needs it. */
static size_t put_user(char *out, size_t outlen, size_t w, const char *user)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)user; *p && w + 4 < outlen; p++) {
        if (*p <= 0x20 || *p >= 0x7f || strchr(":@/?#,%[]", *p)) {
            out[w++] = '%';
            out[w++] = hex[*p >> 4];
            out[w++] = hex[*p & 15];
        } else {
            out[w++] = (char)*p;
        }
    }
    out[w] = '\0';
    return w;
}

/* Appends text (truncating at outlen). */
static size_t put(char *out, size_t outlen, size_t w, const char *text)
{
    size_t n = strlen(text);
    if (w + n >= outlen)
        n = w + 1 < outlen ? outlen - 1 - w : 0;
    memcpy(out + w, text, n);
    out[w + n] = '\0';
    return w + n;
}

void aw_redis_url_format_masked(const struct aw_redis_url *u, char *out, size_t outlen)
{
    if (!outlen)
        return;
    out[0] = '\0';
    char num[16];
    size_t w = put(out, outlen, 0, u->is_unix ? "unix://" : "redis://");
    if (u->user[0] || u->password[0]) {
        w = put_user(out, outlen, w, u->user);
        w = put(out, outlen, w, u->password[0] ? ":****@" : ":@");
    }
    if (u->is_unix) {
        snprintf(num, sizeof num, "?db=%d", u->db);
        w = put(out, outlen, w, u->nodes[0].host);
        (void)put(out, outlen, w, num);
        return;
    }
    for (size_t i = 0; i < u->n_nodes; i++) {
        const struct aw_redis_url_node *nd = &u->nodes[i];
        bool v6 = aw_hostport_is_ipv6(nd->host);
        w = put(out, outlen, w, i > 0 ? (v6 ? ",[" : ",") : (v6 ? "[" : ""));
        w = put(out, outlen, w, nd->host);
        snprintf(num, sizeof num, "%s:%u", v6 ? "]" : "", (unsigned)nd->port);
        w = put(out, outlen, w, num);
    }
    snprintf(num, sizeof num, "/%d", u->db);
    (void)put(out, outlen, w, num);
}

void aw_redis_url_wipe(struct aw_redis_url *u)
{
    volatile char *p = (volatile char *)u->password;
    for (size_t i = 0; i < sizeof u->password; i++)
        p[i] = 0;
    p = (volatile char *)u->user;
    for (size_t i = 0; i < sizeof u->user; i++)
        p[i] = 0;
}
