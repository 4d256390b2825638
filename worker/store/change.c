/* change.c -- struct aw_change helpers and its pending-store codec.
 *
 * Encoding (fixed: a Redis Lua script reads it with cjson), one compact JSON object:
 *   {"v":1,"acct":"<account_id>","aud":"<audience_id>","name":"<audience_name>","list":"<list_id>",
 *    "id":"<event_id>","ts":"<version_ms decimal>","act":"add"|"delete"|"attribute_update",
 *    "email":"...","phone":"...","xid":"<external_id>",
 *    "attrs":{"<path>":"<value_json text>"|null,...},
 *    "consent":{"email":{"sub":true,"at":"<ms decimal>"},"sms":{...}},
 *    "src":"<custom_source>","drops":<int>}
 * Optional members ("name", "list", "phone", "xid", "src", a channel's "at", "consent") are
 * omitted when absent. Times are decimal strings because Lua numbers are doubles.
 *
 * The decoder is a small hand-written, non-recursive JSON reader (jansson stays in the modules
 * STYLE.md allows). It reads Redis data, so it treats every byte as hostile: strict JSON
 * grammar, UTF-8 validated, no NUL inside strings, bounded nesting when skipping unknown
 * members. It is lenient only where cjson may rewrite our output: member order, "\/" escapes,
 * and empty objects re-encoded as empty arrays ("attrs":[] / "consent":[]). Unknown members are
 * skipped so that a newer writer does not poison an older reader. */
#include "worker/store/change.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/mem.h"
#include "common/text.h"

/* ---------------------------------------------------------------------------------------- */
/* plain helpers */

static char *dup_or_null(const char *s)
{
    return s ? aw_strdup(s) : NULL;
}

void aw_change_clear(struct aw_change *c)
{
    if (!c)
        return;
    free(c->account_id);
    free(c->audience_id);
    free(c->audience_name);
    free(c->list_id);
    free(c->event_id);
    free(c->email);
    free(c->phone_e164);
    free(c->external_id);
    for (size_t i = 0; i < c->n_attrs; i++) {
        free(c->attrs[i].path);
        free(c->attrs[i].value_json);
    }
    free(c->attrs);
    free(c->consents);
    free(c->custom_source);
    memset(c, 0, sizeof *c);
}

void aw_change_copy(struct aw_change *dst, const struct aw_change *src)
{
    AW_ASSERT(dst != NULL && src != NULL && dst != src);
    memset(dst, 0, sizeof *dst);
    dst->account_id = dup_or_null(src->account_id);
    dst->audience_id = dup_or_null(src->audience_id);
    dst->audience_name = dup_or_null(src->audience_name);
    dst->list_id = dup_or_null(src->list_id);
    dst->event_id = dup_or_null(src->event_id);
    dst->version_ms = src->version_ms;
    dst->action = src->action;
    dst->email = dup_or_null(src->email);
    dst->phone_e164 = dup_or_null(src->phone_e164);
    dst->external_id = dup_or_null(src->external_id);
    if (src->n_attrs) {
        dst->attrs = aw_calloc(src->n_attrs, sizeof *dst->attrs);
        for (size_t i = 0; i < src->n_attrs; i++) {
            dst->attrs[i].path = dup_or_null(src->attrs[i].path);
            dst->attrs[i].value_json = dup_or_null(src->attrs[i].value_json);
        }
        dst->n_attrs = src->n_attrs;
    }
    if (src->n_consents) {
        dst->consents = aw_calloc(src->n_consents, sizeof *dst->consents);
        memcpy(dst->consents, src->consents, src->n_consents * sizeof *dst->consents);
        dst->n_consents = src->n_consents;
    }
    dst->custom_source = dup_or_null(src->custom_source);
    dst->drops = src->drops;
}

static int lower_ascii(int ch)
{
    return (ch >= 'A' && ch <= 'Z') ? ch - 'A' + 'a' : ch;
}

int aw_change_version_cmp(uint64_t a_version_ms, const char *a_event_id, uint64_t b_version_ms,
                          const char *b_event_id)
{
    if (a_version_ms != b_version_ms)
        return a_version_ms < b_version_ms ? -1 : 1;
    const unsigned char *a = (const unsigned char *)(a_event_id ? a_event_id : "");
    const unsigned char *b = (const unsigned char *)(b_event_id ? b_event_id : "");
    for (;; a++, b++) {
        int ca = lower_ascii(*a), cb = lower_ascii(*b);
        if (ca != cb)
            return ca < cb ? -1 : 1;
        if (ca == 0)
            return 0;
    }
}

const char *aw_change_action_str(enum aw_change_action a)
{
    switch (a) {
    case AW_CHANGE_ADD:
        return "add";
    case AW_CHANGE_DELETE:
        return "delete";
    case AW_CHANGE_ATTRIBUTE_UPDATE:
        return "attribute_update";
    }
    return "unknown";
}

const char *aw_change_channel_str(enum aw_change_channel ch)
{
    switch (ch) {
    case AW_CHANNEL_EMAIL:
        return "email";
    case AW_CHANNEL_SMS:
        return "sms";
    }
    return "unknown";
}

const char *aw_change_drop_str(unsigned single_flag)
{
    switch (single_flag) {
    case AW_CHANGE_DROP_INVALID_PHONE:
        return "invalid_phone";
    case AW_CHANGE_DROP_SMS_NO_PHONE:
        return "sms_no_phone";
    default:
        return "unknown";
    }
}

/* ---------------------------------------------------------------------------------------- */
/* JSON reading primitives (shared by encode-side validation and decode) */

#define SKIP_MAX_DEPTH 64

struct jr {
    const unsigned char *p;
    const unsigned char *end;
};

static void jr_ws(struct jr *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool jr_peek(struct jr *j, unsigned char ch)
{
    jr_ws(j);
    return j->p < j->end && *j->p == ch;
}

static bool jr_eat(struct jr *j, unsigned char ch)
{
    if (!jr_peek(j, ch))
        return false;
    j->p++;
    return true;
}

static bool jr_word(struct jr *j, const char *w)
{
    size_t n = strlen(w);
    jr_ws(j);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
        return false;
    j->p += n;
    return true;
}

static bool read_hex4(struct jr *j, unsigned *out)
{
    if (j->end - j->p < 4)
        return false;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = aw_text_hexval((unsigned char)j->p[i]);
        if (h < 0)
            return false;
        v = (v << 4) | (unsigned)h;
    }
    j->p += 4;
    *out = v;
    return true;
}

/* Length of a valid UTF-8 sequence starting at p (lead byte >= 0x80), 0 when invalid. */
static size_t utf8_seq_len(const unsigned char *p, const unsigned char *end)
{
    size_t avail = (size_t)(end - p);
    unsigned char c = p[0];
    if (c >= 0xC2 && c <= 0xDF)
        return (avail >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (avail < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && p[1] < 0xA0)
            return 0; /* overlong */
        if (c == 0xED && p[1] >= 0xA0)
            return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (avail < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && p[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xF4 && p[1] >= 0x90)
            return 0; /* > U+10FFFF */
        return 4;
    }
    return 0;
}

static void put_utf8(struct aw_buf *out, unsigned cp)
{
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    (void)aw_buf_append(out, b, n); /* unlimited buffer: cannot fail */
}

/* Reads one JSON string (the opening quote is next after whitespace). Unescaped text goes to
 * out when out is non-NULL. Rejects raw control characters, bad escapes, lone surrogates,
 * invalid UTF-8 and (when reject_nul) U+0000, which a C string cannot carry. */
static bool jr_string(struct jr *j, struct aw_buf *out, bool reject_nul)
{
    if (!jr_eat(j, '"'))
        return false;
    if (out)
        (void)aw_buf_append(out, "", 0); /* make data non-NULL even for "" */
    while (j->p < j->end) {
        unsigned char c = *j->p;
        if (c == '"') {
            j->p++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            j->p++;
            if (j->p >= j->end)
                return false;
            unsigned char e = *j->p++;
            const char *simple = NULL;
            switch (e) {
            case '"':
                simple = "\"";
                break;
            case '\\':
                simple = "\\";
                break;
            case '/':
                simple = "/";
                break;
            case 'b':
                simple = "\b";
                break;
            case 'f':
                simple = "\f";
                break;
            case 'n':
                simple = "\n";
                break;
            case 'r':
                simple = "\r";
                break;
            case 't':
                simple = "\t";
                break;
            case 'u':
                break;
            default:
                return false;
            }
            if (simple) {
                if (out)
                    (void)aw_buf_append(out, simple, 1);
                continue;
            }
            unsigned cp;
            if (!read_hex4(j, &cp))
                return false;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return false; /* lone low surrogate */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
                    return false;
                j->p += 2;
                if (!read_hex4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return false;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0 && reject_nul)
                return false;
            if (out)
                put_utf8(out, cp);
            continue;
        }
        size_t n = 1;
        if (c >= 0x80) {
            n = utf8_seq_len(j->p, j->end);
            if (n == 0)
                return false;
        }
        if (out)
            (void)aw_buf_append(out, j->p, n);
        j->p += n;
    }
    return false;
}

/* Reads a JSON number per the RFC 8259 grammar (value not needed). */
static bool jr_number(struct jr *j)
{
    jr_ws(j);
    const unsigned char *p = j->p, *end = j->end;
    if (p < end && *p == '-')
        p++;
    if (p >= end)
        return false;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return false;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return false;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return false;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    j->p = p;
    return true;
}

/* Validates and skips one JSON value of any kind, iteratively (explicit stack, bounded depth).
 * NUL escapes are allowed here: skipped text is never turned into a C string by this reader. */
static bool jr_skip_value(struct jr *j)
{
    unsigned char stack[SKIP_MAX_DEPTH]; /* '{' or '[' */
    size_t depth = 0;
    for (;;) {
        /* expect a value */
        jr_ws(j);
        if (j->p >= j->end)
            return false;
        unsigned char c = *j->p;
        bool opened = false;
        if (c == '{' || c == '[') {
            if (depth == SKIP_MAX_DEPTH)
                return false;
            stack[depth++] = c;
            j->p++;
            if (jr_eat(j, c == '{' ? '}' : ']')) {
                depth--;
            } else {
                opened = true;
                if (c == '{') {
                    if (!jr_string(j, NULL, false) || !jr_eat(j, ':'))
                        return false;
                }
            }
        } else if (c == '"') {
            if (!jr_string(j, NULL, false))
                return false;
        } else if (c == 't') {
            if (!jr_word(j, "true"))
                return false;
        } else if (c == 'f') {
            if (!jr_word(j, "false"))
                return false;
        } else if (c == 'n') {
            if (!jr_word(j, "null"))
                return false;
        } else if (!jr_number(j)) {
            return false;
        }
        if (opened)
            continue; /* read the first element / member value */
        /* after a value: close containers or move to the next element */
        for (;;) {
            if (depth == 0)
                return true;
            unsigned char top = stack[depth - 1];
            if (jr_eat(j, ',')) {
                if (top == '{' && (!jr_string(j, NULL, false) || !jr_eat(j, ':')))
                    return false;
                break;
            }
            if (!jr_eat(j, top == '{' ? '}' : ']'))
                return false;
            depth--;
        }
    }
}

/* True when text[0..len) is exactly one JSON value (surrounding whitespace allowed). */
static bool is_json_text(const char *text, size_t len)
{
    struct jr j = {(const unsigned char *)text, (const unsigned char *)text + len};
    if (!jr_skip_value(&j))
        return false;
    jr_ws(&j);
    return j.p == j.end;
}

/* ---------------------------------------------------------------------------------------- */
/* encode */

static bool valid_utf8_cstr(const char *s)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t n = utf8_seq_len(p, end);
        if (n == 0)
            return false;
        p += n;
    }
    return true;
}

static bool put_str(struct aw_buf *b, const char *s)
{
    if (!valid_utf8_cstr(s))
        return false;
    (void)aw_buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            (void)aw_buf_append(b, esc, 2);
        } else if (*p < 0x20) {
            (void)aw_buf_appendf(b, "\\u%04x", (unsigned)*p);
        } else {
            (void)aw_buf_append(b, p, 1);
        }
    }
    (void)aw_buf_append(b, "\"", 1);
    return true;
}

static bool put_member_str(struct aw_buf *b, const char *key, const char *value)
{
    (void)aw_buf_appendf(b, ",\"%s\":", key);
    return put_str(b, value);
}

enum aw_err aw_change_encode(const struct aw_change *c, char **out)
{
    if (!c || !out)
        return AW_ERR_INTERNAL;
    *out = NULL;
    if (!c->account_id || !c->audience_id || !c->event_id || !c->email ||
        (c->n_attrs && !c->attrs) || (c->n_consents && !c->consents))
        return AW_ERR_INTERNAL;
    if (c->action != AW_CHANGE_ADD && c->action != AW_CHANGE_DELETE &&
        c->action != AW_CHANGE_ATTRIBUTE_UPDATE)
        return AW_ERR_INTERNAL;

    struct aw_buf b;
    aw_buf_init(&b, 0);
    bool ok = true;
    (void)aw_buf_append_str(&b, "{\"v\":1");
    ok = ok && put_member_str(&b, "acct", c->account_id);
    ok = ok && put_member_str(&b, "aud", c->audience_id);
    if (c->audience_name)
        ok = ok && put_member_str(&b, "name", c->audience_name);
    if (c->list_id)
        ok = ok && put_member_str(&b, "list", c->list_id);
    ok = ok && put_member_str(&b, "id", c->event_id);
    (void)aw_buf_appendf(&b, ",\"ts\":\"%llu\"", (unsigned long long)c->version_ms);
    ok = ok && put_member_str(&b, "act", aw_change_action_str(c->action));
    ok = ok && put_member_str(&b, "email", c->email);
    if (c->phone_e164)
        ok = ok && put_member_str(&b, "phone", c->phone_e164);
    if (c->external_id)
        ok = ok && put_member_str(&b, "xid", c->external_id);

    (void)aw_buf_append_str(&b, ",\"attrs\":{");
    for (size_t i = 0; ok && i < c->n_attrs; i++) {
        const struct aw_change_attr *a = &c->attrs[i];
        if (!a->path) {
            ok = false;
            break;
        }
        /* duplicate paths would collide as JSON keys; the header promises uniqueness */
        for (size_t k = 0; k < i; k++)
            if (strcmp(c->attrs[k].path, a->path) == 0)
                ok = false;
        if (i)
            (void)aw_buf_append(&b, ",", 1);
        ok = ok && put_str(&b, a->path);
        (void)aw_buf_append(&b, ":", 1);
        if (a->value_json) {
            ok = ok && is_json_text(a->value_json, strlen(a->value_json));
            ok = ok && put_str(&b, a->value_json);
        } else {
            (void)aw_buf_append_str(&b, "null");
        }
    }
    (void)aw_buf_append(&b, "}", 1);

    if (ok && c->n_consents) {
        unsigned seen = 0;
        (void)aw_buf_append_str(&b, ",\"consent\":{");
        for (size_t i = 0; i < c->n_consents; i++) {
            const struct aw_change_consent *cs = &c->consents[i];
            if ((cs->channel != AW_CHANNEL_EMAIL && cs->channel != AW_CHANNEL_SMS) ||
                (seen & (1u << cs->channel))) {
                ok = false;
                break;
            }
            seen |= 1u << cs->channel;
            (void)aw_buf_appendf(&b, "%s\"%s\":{\"sub\":%s", i ? "," : "",
                                 aw_change_channel_str(cs->channel),
                                 cs->subscribe ? "true" : "false");
            if (cs->has_consented_at)
                (void)aw_buf_appendf(&b, ",\"at\":\"%llu\"",
                                     (unsigned long long)cs->consented_at_unix_ms);
            (void)aw_buf_append(&b, "}", 1);
        }
        (void)aw_buf_append(&b, "}", 1);
    }
    if (ok && c->custom_source)
        ok = put_member_str(&b, "src", c->custom_source);
    (void)aw_buf_appendf(&b, ",\"drops\":%u}", c->drops);

    if (!ok) {
        aw_buf_free(&b);
        return AW_ERR_INTERNAL;
    }
    *out = aw_buf_take(&b);
    return AW_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* decode */

/* Reads a string into a fresh C string. */
static bool rd_cstr(struct jr *j, char **dst)
{
    struct aw_buf b;
    aw_buf_init(&b, 0);
    if (!jr_string(j, &b, true)) {
        aw_buf_free(&b);
        return false;
    }
    *dst = aw_buf_take(&b);
    return true;
}

/* Reads a string holding a non-negative decimal integer that fits uint64_t. */
static bool rd_u64_str(struct jr *j, uint64_t *dst)
{
    char *s = NULL;
    if (!rd_cstr(j, &s))
        return false;
    bool ok = s[0] >= '0' && s[0] <= '9' && strlen(s) <= 20;
    for (const char *p = s; ok && *p; p++)
        ok = *p >= '0' && *p <= '9';
    if (ok) {
        char *endp = NULL;
        errno = 0;
        unsigned long long v = strtoull(s, &endp, 10);
        ok = errno == 0 && endp && *endp == '\0';
        if (ok)
            *dst = (uint64_t)v;
    }
    free(s);
    return ok;
}

/* Reads a bare non-negative JSON integer (no sign, fraction or exponent) up to max. */
static bool rd_uint(struct jr *j, unsigned long long max, unsigned long long *dst)
{
    jr_ws(j);
    const unsigned char *start = j->p;
    if (!jr_number(j))
        return false;
    size_t n = (size_t)(j->p - start);
    if (n == 0 || n > 20 || (n > 1 && start[0] == '0'))
        return false;
    unsigned long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (start[i] < '0' || start[i] > '9')
            return false;
        unsigned d = (unsigned)(start[i] - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *dst = v;
    return true;
}

/* Reads an optional string member: JSON null leaves *dst NULL. */
static bool rd_opt_cstr(struct jr *j, char **dst)
{
    if (jr_peek(j, 'n'))
        return jr_word(j, "null");
    return rd_cstr(j, dst);
}

static int attr_cmp(const void *a, const void *b)
{
    return strcmp(((const struct aw_change_attr *)a)->path,
                  ((const struct aw_change_attr *)b)->path);
}

static bool rd_attrs(struct jr *j, struct aw_change *c)
{
    size_t cap = 0;
    if (jr_eat(j, '[')) /* cjson writes an empty table as [] */
        return jr_eat(j, ']');
    if (!jr_eat(j, '{'))
        return false;
    if (jr_eat(j, '}'))
        return true;
    do {
        aw_grow((void **)&c->attrs, &cap, c->n_attrs + 1, sizeof *c->attrs);
        struct aw_change_attr *a = &c->attrs[c->n_attrs];
        a->path = NULL;
        a->value_json = NULL;
        if (!rd_cstr(j, &a->path))
            return false;
        c->n_attrs++; /* owned from here on, freed by aw_change_clear */
        if (a->path[0] == '\0' || !jr_eat(j, ':'))
            return false;
        if (jr_peek(j, 'n')) {
            if (!jr_word(j, "null"))
                return false;
        } else {
            if (!rd_cstr(j, &a->value_json))
                return false;
            if (!is_json_text(a->value_json, strlen(a->value_json)))
                return false;
        }
    } while (jr_eat(j, ','));
    if (!jr_eat(j, '}'))
        return false;
    qsort(c->attrs, c->n_attrs, sizeof *c->attrs, attr_cmp);
    for (size_t i = 1; i < c->n_attrs; i++)
        if (strcmp(c->attrs[i - 1].path, c->attrs[i].path) == 0)
            return false;
    return true;
}

static bool rd_channel(struct jr *j, struct aw_change_consent *cs)
{
    bool have_sub = false, have_at = false;
    if (!jr_eat(j, '{'))
        return false;
    if (!jr_eat(j, '}')) {
        do {
            char *key = NULL;
            if (!rd_cstr(j, &key))
                return false;
            bool ok = jr_eat(j, ':');
            if (ok && strcmp(key, "sub") == 0) {
                ok = !have_sub;
                have_sub = true;
                if (ok && jr_peek(j, 't')) {
                    ok = jr_word(j, "true");
                    cs->subscribe = true;
                } else if (ok) {
                    ok = jr_word(j, "false");
                    cs->subscribe = false;
                }
            } else if (ok && strcmp(key, "at") == 0) {
                ok = !have_at && rd_u64_str(j, &cs->consented_at_unix_ms);
                have_at = true;
                cs->has_consented_at = true;
            } else if (ok) {
                ok = jr_skip_value(j);
            }
            free(key);
            if (!ok)
                return false;
        } while (jr_eat(j, ','));
        if (!jr_eat(j, '}'))
            return false;
    }
    return have_sub;
}

static bool rd_consent(struct jr *j, struct aw_change *c)
{
    if (jr_eat(j, '['))
        return jr_eat(j, ']');
    if (!jr_eat(j, '{'))
        return false;
    if (jr_eat(j, '}'))
        return true;
    struct aw_change_consent found[2];
    bool have[2] = {false, false};
    memset(found, 0, sizeof found);
    do {
        char *key = NULL;
        if (!rd_cstr(j, &key))
            return false;
        int ch = strcmp(key, "email") == 0 ? AW_CHANNEL_EMAIL
                 : strcmp(key, "sms") == 0 ? AW_CHANNEL_SMS
                                           : -1;
        free(key);
        if (!jr_eat(j, ':'))
            return false;
        if (ch < 0) {
            if (!jr_skip_value(j))
                return false;
            continue;
        }
        if (have[ch])
            return false;
        have[ch] = true;
        found[ch].channel = (enum aw_change_channel)ch;
        if (!rd_channel(j, &found[ch]))
            return false;
    } while (jr_eat(j, ','));
    if (!jr_eat(j, '}'))
        return false;
    size_t n = (size_t)have[0] + (size_t)have[1];
    if (n) {
        c->consents = aw_calloc(n, sizeof *c->consents);
        for (int ch = 0; ch < 2; ch++)
            if (have[ch])
                c->consents[c->n_consents++] = found[ch];
    }
    return true;
}

enum {
    K_V = 1u << 0,
    K_ACCT = 1u << 1,
    K_AUD = 1u << 2,
    K_NAME = 1u << 3,
    K_LIST = 1u << 4,
    K_ID = 1u << 5,
    K_TS = 1u << 6,
    K_ACT = 1u << 7,
    K_EMAIL = 1u << 8,
    K_PHONE = 1u << 9,
    K_XID = 1u << 10,
    K_ATTRS = 1u << 11,
    K_CONSENT = 1u << 12,
    K_SRC = 1u << 13,
    K_DROPS = 1u << 14
};
#define K_REQUIRED (K_V | K_ACCT | K_AUD | K_ID | K_TS | K_ACT | K_EMAIL | K_ATTRS | K_DROPS)

static const struct {
    const char *name;
    unsigned bit;
} KEYS[] = {
    {"v", K_V},
    {"acct", K_ACCT},
    {"aud", K_AUD},
    {"name", K_NAME},
    {"list", K_LIST},
    {"id", K_ID},
    {"ts", K_TS},
    {"act", K_ACT},
    {"email", K_EMAIL},
    {"phone", K_PHONE},
    {"xid", K_XID},
    {"attrs", K_ATTRS},
    {"consent", K_CONSENT},
    {"src", K_SRC},
    {"drops", K_DROPS},
};

static bool rd_member(struct jr *j, unsigned bit, struct aw_change *c)
{
    unsigned long long u = 0;
    char *s = NULL;
    switch (bit) {
    case K_V:
        return rd_uint(j, 1000, &u) && u == 1;
    case K_ACCT:
        return rd_cstr(j, &c->account_id) && c->account_id[0];
    case K_AUD:
        return rd_cstr(j, &c->audience_id) && c->audience_id[0];
    case K_NAME:
        return rd_opt_cstr(j, &c->audience_name);
    case K_LIST:
        return rd_opt_cstr(j, &c->list_id);
    case K_ID:
        return rd_cstr(j, &c->event_id) && c->event_id[0];
    case K_TS:
        return rd_u64_str(j, &c->version_ms);
    case K_ACT: {
        if (!rd_cstr(j, &s))
            return false;
        bool ok = true;
        if (strcmp(s, "add") == 0)
            c->action = AW_CHANGE_ADD;
        else if (strcmp(s, "delete") == 0)
            c->action = AW_CHANGE_DELETE;
        else if (strcmp(s, "attribute_update") == 0)
            c->action = AW_CHANGE_ATTRIBUTE_UPDATE;
        else
            ok = false;
        free(s);
        return ok;
    }
    case K_EMAIL:
        return rd_cstr(j, &c->email) && c->email[0];
    case K_PHONE:
        return rd_opt_cstr(j, &c->phone_e164) && (!c->phone_e164 || c->phone_e164[0]);
    case K_XID:
        return rd_opt_cstr(j, &c->external_id);
    case K_ATTRS:
        return rd_attrs(j, c);
    case K_CONSENT:
        return rd_consent(j, c);
    case K_SRC:
        return rd_opt_cstr(j, &c->custom_source);
    case K_DROPS:
        if (!rd_uint(j, 0xFFFFFFFFull, &u))
            return false;
        c->drops = (unsigned)u;
        return true;
    default:
        return false;
    }
}

enum aw_err aw_change_decode(const char *text, size_t len, struct aw_change *out)
{
    if (!out)
        return AW_ERR_INVALID;
    memset(out, 0, sizeof *out);
    if (!text)
        return AW_ERR_INVALID;
    struct jr j = {(const unsigned char *)text, (const unsigned char *)text + len};
    unsigned seen = 0;
    bool ok = jr_eat(&j, '{') && !jr_peek(&j, '}');
    while (ok) {
        char *key = NULL;
        ok = rd_cstr(&j, &key) && jr_eat(&j, ':');
        unsigned bit = 0;
        for (size_t i = 0; ok && i < sizeof KEYS / sizeof KEYS[0]; i++)
            if (strcmp(key, KEYS[i].name) == 0)
                bit = KEYS[i].bit;
        free(key);
        if (!ok)
            break;
        if (bit == 0) {
            ok = jr_skip_value(&j);
        } else {
            ok = !(seen & bit) && rd_member(&j, bit, out);
            seen |= bit;
        }
        if (ok && !jr_eat(&j, ','))
            break;
    }
    ok = ok && jr_eat(&j, '}');
    if (ok) {
        jr_ws(&j);
        ok = j.p == j.end && (seen & K_REQUIRED) == K_REQUIRED;
    }
    if (!ok) {
        aw_change_clear(out);
        return AW_ERR_INVALID;
    }
    return AW_OK;
}
