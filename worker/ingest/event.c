/* event.c -- Kafka payload -> struct aw_event (docs/design.md §1). The accepted shape is documented
 * in event.h and, as JSON Schema, in schemas/mparticle-audience-message.schema.json.
 * jansson allocates from the per-thread parse arena (arena.c) while the decoders run.
 *
 * Shape of the code: one small decoder per JSON object of the message. Each takes the path
 * prefix of its object (built with snprintf, so the depth of the calls is fixed by the message
 * shape, never by the input) and stops at the first problem, recording reason and path in
 * struct dec. Every string and array of the output comes from the event's arena (about 140 of
 * them for a message of 3 profiles: one malloc and one free each before), so aw_event_clear
 * releases a half-built event on any error path by dropping the arena. */
#include "worker/ingest/event.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/arena.h"
#include "common/mem.h"
#include "worker/ingest/arena.h"

#define PATH_LEN 192

struct dec {
    enum aw_event_reason reason;
    enum aw_err err;      /* AW_ERR_INVALID, or AW_ERR_FATAL when a library allocation failed */
    struct aw_arena *mem; /* the event's: every string and array of it */
    /* While an attribute of a profile's second (third, ...) audience is decoded: the element
     * at the same index of the audience before it, and what it decoded to (see
     * take_value_text); NULL otherwise. */
    const json_t *twin;
    const struct aw_event_attribute *twin_out;
    char path[PATH_LEN];
};

static bool fail(struct dec *d, enum aw_event_reason reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail(struct dec *d, enum aw_event_reason reason, const char *fmt, ...)
{
    va_list ap;
    d->reason = reason;
    va_start(ap, fmt);
    int n = vsnprintf(d->path, sizeof d->path, fmt, ap);
    va_end(ap);
    if (n < 0)
        d->path[0] = '\0';
    return false;
}

/* Fails with the path "<prefix>.<field>" (or just field at the top level). */
static bool fail_at(struct dec *d, enum aw_event_reason reason, const char *prefix,
                    const char *field)
{
    return fail(d, reason, "%s%s%s", prefix, prefix[0] ? "." : "", field);
}

/* Writes a path prefix; paths are short and bounded by the message shape, so truncation (of an
 * absurdly long prefix) only shortens a diagnostic. */
static void path_fmt(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void path_fmt(char *out, size_t outlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, outlen, fmt, ap);
    va_end(ap);
    if (n < 0)
        out[0] = '\0';
}

/* "<prefix>.<name>[<index>]" ("<name>[<index>]" at the top level) into out: what path_fmt
 * writes for that format, truncated alike, without printf: it runs for every array element of
 * every message, failing or not. */
static void path_item(char *out, size_t outlen, const char *prefix, const char *name, size_t index)
{
    char digits[24];
    size_t nd = 0;
    do {
        digits[nd++] = (char)('0' + index % 10);
        index /= 10;
    } while (index > 0);
    size_t n = 0;
    const char *parts[3] = {prefix, prefix[0] ? "." : "", name};
    for (size_t k = 0; k < 3; k++)
        for (const char *c = parts[k]; *c && n + 1 < outlen; c++)
            out[n++] = *c;
    if (n + 1 < outlen)
        out[n++] = '[';
    while (nd > 0 && n + 1 < outlen)
        out[n++] = digits[--nd];
    if (n + 1 < outlen)
        out[n++] = ']';
    out[n] = '\0';
}

/* A member of obj, with JSON null treated as absent. Borrowed. */
static json_t *member(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return (v != NULL && json_is_null(v)) ? NULL : v;
}

/* Bit 7 of every byte of w that equals b is set; bits above the first such byte may be set
 * too (a borrow), never below it: the lowest bit set marks the first match. */
static inline uint64_t bytes_equal(uint64_t w, unsigned char b)
{
    uint64_t x = w ^ (0x0101010101010101ull * b);
    return (x - 0x0101010101010101ull) & ~x & 0x8080808080808080ull;
}

/* Nesting depth of arrays/objects, counted on the raw bytes (strings skipped). Not a JSON
 * reader: it only bounds what the parser is asked to build, and the payload may not be valid
 * JSON. It exists because jansson cannot do this job: its depth limit is a compile-time constant
 * (JSON_PARSER_MAX_DEPTH, 2048 in Debian's build), not a per-call option, and event.h promises
 * AW_EVENT_MAX_DEPTH. */
static bool is_too_deep(const char *p, size_t len)
{
    size_t depth = 0;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (c == '"') {
            /* Strings, most of a message's bytes, are crossed eight bytes at a time up to the
             * next quote or backslash (a byte loop with a branch a byte was 4 % of the
             * worker's CPU time); the escaped byte after a backslash is skipped, whatever it
             * is. */
            i++;
            while (i < len) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                if (i + 8 <= len) {
                    uint64_t w;
                    memcpy(&w, p + i, 8);
                    uint64_t hit = bytes_equal(w, '"') | bytes_equal(w, '\\');
                    if (hit == 0) {
                        i += 8;
                        continue;
                    }
                    i += (size_t)__builtin_ctzll(hit) / 8;
                }
#endif
                if (p[i] == '"')
                    break;
                i += p[i] == '\\' ? 2 : 1;
            }
        } else if (c == '[' || c == '{') {
            if (++depth > AW_EVENT_MAX_DEPTH)
                return true;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return false;
}

/* ---- scalar helpers ---- */

/* take_string of a member already looked up (v = member(obj, field)). */
static bool take_string_v(struct dec *d, const json_t *v, const char *prefix, const char *field,
                          bool required, size_t max_len, char **out)
{
    *out = NULL;
    if (v == NULL)
        return required ? fail_at(d, AW_EVENT_MISSING_FIELD, prefix, field) : true;
    if (!json_is_string(v))
        return fail_at(d, AW_EVENT_WRONG_TYPE, prefix, field);
    if (json_string_length(v) > max_len)
        return fail_at(d, AW_EVENT_OVERSIZE, prefix, field);
    /* No NUL inside (JSON_ALLOW_NUL is off), so the length is the C string length. */
    *out = aw_arena_strndup(d->mem, json_string_value(v), json_string_length(v));
    return true;
}

static bool take_string(struct dec *d, const json_t *obj, const char *prefix, const char *field,
                        bool required, size_t max_len, char **out)
{
    return take_string_v(d, member(obj, field), prefix, field, required, max_len, out);
}

/* Optional string-typed member that is checked but not kept. */
static bool check_string(struct dec *d, const json_t *obj, const char *prefix, const char *field)
{
    json_t *v = member(obj, field);
    if (v != NULL && !json_is_string(v))
        return fail_at(d, AW_EVENT_WRONG_TYPE, prefix, field);
    return true;
}

/* Integer >= 0. *has (may be NULL when required) tells whether it was present. */
static bool take_uint(struct dec *d, const json_t *obj, const char *prefix, const char *field,
                      bool required, bool *has, uint64_t *out)
{
    *out = 0;
    if (has != NULL)
        *has = false;
    json_t *v = member(obj, field);
    if (v == NULL)
        return required ? fail_at(d, AW_EVENT_MISSING_FIELD, prefix, field) : true;
    if (!json_is_integer(v))
        return fail_at(d, AW_EVENT_WRONG_TYPE, prefix, field);
    json_int_t n = json_integer_value(v);
    if (n < 0)
        return fail_at(d, AW_EVENT_BAD_VALUE, prefix, field);
    *out = (uint64_t)n;
    if (has != NULL)
        *has = true;
    return true;
}

/* account_id / audience_id: JSON integer >= 0 or a decimal string, stored as canonical text. */
static bool take_id(struct dec *d, const json_t *obj, const char *prefix, const char *field,
                    char **out)
{
    char text[32];
    *out = NULL;
    json_t *v = member(obj, field);
    if (v == NULL)
        return fail_at(d, AW_EVENT_MISSING_FIELD, prefix, field);
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 0)
            return fail_at(d, AW_EVENT_BAD_VALUE, prefix, field);
        snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, n);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len == 0)
            return fail_at(d, AW_EVENT_BAD_VALUE, prefix, field);
        for (size_t i = 0; i < len; i++)
            if (s[i] < '0' || s[i] > '9')
                return fail_at(d, AW_EVENT_BAD_VALUE, prefix, field);
        while (len > 1 && s[0] == '0') {
            s++;
            len--;
        }
        if (len > 19)
            return fail_at(d, AW_EVENT_BAD_VALUE, prefix, field);
        errno = 0;
        char *end = NULL;
        unsigned long long n = strtoull(s, &end, 10);
        if (errno != 0 || end != s + len || n > (unsigned long long)INT64_MAX)
            return fail_at(d, AW_EVENT_BAD_VALUE, prefix, field);
        snprintf(text, sizeof text, "%llu", n);
    } else {
        return fail_at(d, AW_EVENT_WRONG_TYPE, prefix, field);
    }
    *out = aw_arena_strdup(d->mem, text);
    return true;
}

/* Enumerated string member; *index receives the position of the match in names. */
/* take_enum of a member already looked up (v = member(obj, field)). */
static bool take_enum_v(struct dec *d, const json_t *v, const char *prefix, const char *field,
                        const char *const *names, size_t n_names, int *index)
{
    if (v == NULL)
        return fail_at(d, AW_EVENT_MISSING_FIELD, prefix, field);
    if (!json_is_string(v))
        return fail_at(d, AW_EVENT_WRONG_TYPE, prefix, field);
    const char *s = json_string_value(v);
    for (size_t i = 0; i < n_names; i++) {
        if (strcmp(s, names[i]) == 0) {
            *index = (int)i;
            return true;
        }
    }
    return fail_at(d, AW_EVENT_BAD_VALUE, prefix, field);
}

static bool take_enum(struct dec *d, const json_t *obj, const char *prefix, const char *field,
                      const char *const *names, size_t n_names, int *index)
{
    return take_enum_v(d, member(obj, field), prefix, field, names, n_names, index);
}

/* ---- JSON text of values ---- */

/* The compact JSON text of v (any JSON value) into *out, caller-owned. Reals get jansson's
 * 17 significant digits, which read back as the same double (1.1 -> "1.1000000000000001"). */
static bool dump_value(struct dec *d, const json_t *v, char **out)
{
    /* Into a stack buffer first (most values are short); a longer one again into a buffer of
     * its exact size. jansson allocates nothing that outlives the call (see the arena). */
    char small[256];
    size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    size_t n = json_dumpb(v, small, sizeof small, flags);
    if (n == 0) {
        d->err = AW_ERR_FATAL;
        return fail(d, AW_EVENT_OK, "out of memory");
    }
    if (n <= sizeof small) {
        *out = aw_arena_strndup(d->mem, small, n);
        return true;
    }
    char *text = aw_arena_alloc(d->mem, n + 1);
    if (json_dumpb(v, text, n, flags) != n) {
        d->err = AW_ERR_FATAL;
        return fail(d, AW_EVENT_OK, "out of memory");
    }
    text[n] = '\0';
    *out = text;
    return true;
}

/* Whether a and b (scalars, or arrays of scalars: attribute values, already checked by
 * scalar_ok) have the same type and value, so that json_dumpb writes the same text for both.
 * Reals are compared bit for bit: 0.0 == -0.0, but their texts differ. */
static bool same_scalar(const json_t *a, const json_t *b)
{
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_INTEGER:
        return json_integer_value(a) == json_integer_value(b);
    case JSON_REAL: {
        double x = json_real_value(a), y = json_real_value(b);
        return memcmp(&x, &y, sizeof x) == 0;
    }
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NULL:
        return true;
    default:
        return false;
    }
}

static bool same_value(const json_t *a, const json_t *b)
{
    if (!json_is_array(a))
        return same_scalar(a, b);
    if (!json_is_array(b) || json_array_size(a) != json_array_size(b))
        return false;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!same_scalar(json_array_get(a, i), json_array_get(b, i)))
            return false;
    return true;
}

/* dump_value of an attribute's v, its member `field` ("value" or "list_value"). mParticle
 * repeats a profile's attributes in each of its audiences: when the element at the same index
 * of the audience before holds the same value under the same member, its text is shared
 * instead of written again (json_dumpb was ~1,000 instructions a value, 42 values a record of
 * the benchmark; the mapping then finds the two audiences' attributes equal by pointer). */
static bool take_value_text(struct dec *d, const json_t *v, const char *field, char **out)
{
    if (d->twin != NULL && d->twin_out->value_json != NULL) {
        const json_t *tv = member(d->twin, field);
        if (tv != NULL && same_value(v, tv)) {
            *out = d->twin_out->value_json;
            return true;
        }
    }
    return dump_value(d, v, out);
}

static bool is_scalar(const json_t *v)
{
    return json_is_string(v) || json_is_number(v) || json_is_boolean(v);
}

/* Whether v is a scalar attribute value (value, or an item of list_value) within the limits;
 * *reason says why not. */
static bool scalar_ok(const json_t *v, enum aw_event_reason *reason)
{
    if (!is_scalar(v)) {
        *reason = AW_EVENT_WRONG_TYPE;
        return false;
    }
    if (json_is_string(v) && json_string_length(v) > AW_EVENT_MAX_STRING) {
        *reason = AW_EVENT_OVERSIZE;
        return false;
    }
    return true;
}

/* ---- objects ---- */

/* A settings map: string values kept, other values as compact JSON text, nulls skipped. */
static bool take_settings(struct dec *d, const json_t *obj, const char *prefix, const char *field,
                          struct aw_event_setting **out, size_t *n_out)
{
    json_t *map = member(obj, field);
    if (map == NULL)
        return true;
    if (!json_is_object(map))
        return fail_at(d, AW_EVENT_WRONG_TYPE, prefix, field);
    size_t n = json_object_size(map);
    if (n > AW_EVENT_MAX_ITEMS)
        return fail_at(d, AW_EVENT_OVERSIZE, prefix, field);
    if (n == 0)
        return true;
    *out = aw_arena_calloc(d->mem, n, sizeof **out);
    *n_out = n;
    size_t pos = 0, kept = 0;
    const char *key;
    json_t *val;
    json_object_foreach(map, key, val)
    {
        size_t at = pos++;
        if (strlen(key) > AW_EVENT_MAX_STRING)
            return fail(d, AW_EVENT_OVERSIZE, "%s%s%s{%zu}", prefix, prefix[0] ? "." : "", field,
                        at);
        if (json_is_null(val))
            continue;
        char *text = NULL;
        if (json_is_string(val))
            text = aw_arena_strndup(d->mem, json_string_value(val), json_string_length(val));
        else if (!dump_value(d, val, &text))
            return false;
        struct aw_event_setting *s = &(*out)[kept++];
        s->key = aw_arena_strdup(d->mem, key);
        s->value = text;
        if (strlen(text) > AW_EVENT_MAX_STRING)
            return fail(d, AW_EVENT_OVERSIZE, "%s%s%s{%zu}", prefix, prefix[0] ? "." : "", field,
                        at);
    }
    *n_out = kept;
    return true;
}

/* An optional array member; *arr is NULL when absent. */
static bool get_array(struct dec *d, const json_t *obj, const char *prefix, const char *field,
                      json_t **arr)
{
    *arr = member(obj, field);
    if (*arr == NULL)
        return true;
    if (!json_is_array(*arr))
        return fail_at(d, AW_EVENT_WRONG_TYPE, prefix, field);
    if (json_array_size(*arr) > AW_EVENT_MAX_ITEMS)
        return fail_at(d, AW_EVENT_OVERSIZE, prefix, field);
    return true;
}

/* The upsert value of one attribute into out->value_json (prefix = the attribute's path). */
static bool take_attr_value(struct dec *d, const json_t *a, const char *prefix,
                            struct aw_event_attribute *out)
{
    json_t *value = member(a, "value");
    json_t *list = member(a, "list_value");
    if (value != NULL && list != NULL)
        return fail_at(d, AW_EVENT_BAD_VALUE, prefix, "list_value");
    enum aw_event_reason why = AW_EVENT_OK;
    if (value != NULL) {
        if (!scalar_ok(value, &why))
            return fail_at(d, why, prefix, "value");
        return take_value_text(d, value, "value", &out->value_json);
    }
    if (list == NULL)
        return true;
    if (!json_is_array(list))
        return fail_at(d, AW_EVENT_WRONG_TYPE, prefix, "list_value");
    if (json_array_size(list) > AW_EVENT_MAX_ITEMS)
        return fail_at(d, AW_EVENT_OVERSIZE, prefix, "list_value");
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
    {
        if (!scalar_ok(item, &why)) {
            char path[PATH_LEN];
            path_item(path, sizeof path, prefix, "list_value", i);
            return fail(d, why, "%s", path);
        }
    }
    return take_value_text(d, list, "list_value", &out->value_json);
}

/* One user_attributes element. *skip is set for an element without a key. */
static bool decode_attribute(struct dec *d, const json_t *a, const char *prefix,
                             struct aw_event_attribute *out, bool *skip)
{
    static const char *const actions[] = {"upsert", "delete"};
    *skip = false;
    if (!json_is_object(a))
        return fail(d, AW_EVENT_WRONG_TYPE, "%s", prefix);
    json_t *key = member(a, "key");
    if (key == NULL) {
        *skip = true;
        return true;
    }
    if (!take_string_v(d, key, prefix, "key", true, AW_EVENT_MAX_STRING, &out->key))
        return false;
    if (out->key[0] == '\0')
        return fail_at(d, AW_EVENT_BAD_VALUE, prefix, "key");
    out->action = AW_EVENT_ATTR_UPSERT;
    json_t *action = member(a, "action");
    if (action != NULL) {
        int idx = 0;
        if (!take_enum_v(d, action, prefix, "action", actions, 2, &idx))
            return false;
        out->action = idx == 0 ? AW_EVENT_ATTR_UPSERT : AW_EVENT_ATTR_DELETE;
    }
    if (out->action == AW_EVENT_ATTR_DELETE)
        return true;
    return take_attr_value(d, a, prefix, out);
}

/* The audience fields shared by a membership audience and a subscription request. */
static bool decode_audience_common(struct dec *d, const json_t *a, const char *prefix,
                                   struct aw_event_audience *out)
{
    return take_id(d, a, prefix, "audience_id", &out->audience_id) &&
           take_string(d, a, prefix, "audience_name", false, AW_EVENT_MAX_STRING,
                       &out->audience_name) &&
           take_settings(d, a, prefix, "audience_subscription_settings", &out->settings,
                         &out->n_settings);
}

/* prev: the profile's audience decoded just before this one (its attributes are the twins of
 * this one's, see take_value_text), or NULL. */
static bool decode_audience(struct dec *d, const json_t *a, const char *prefix, const json_t *prev,
                            const struct aw_event_audience *prev_out, struct aw_event_audience *out)
{
    static const char *const actions[] = {"add", "delete", "attribute_update"};
    if (!json_is_object(a))
        return fail(d, AW_EVENT_WRONG_TYPE, "%s", prefix);
    int idx = 0;
    json_t *attrs;
    if (!decode_audience_common(d, a, prefix, out) ||
        !take_enum(d, a, prefix, "action", actions, 3, &idx) ||
        !get_array(d, a, prefix, "user_attributes", &attrs))
        return false;
    out->action = idx == 0 ? AW_EVENT_ADD : idx == 1 ? AW_EVENT_DELETE : AW_EVENT_ATTRIBUTE_UPDATE;
    if (attrs == NULL || json_array_size(attrs) == 0)
        return true;
    out->attributes = aw_arena_calloc(d->mem, json_array_size(attrs), sizeof *out->attributes);
    out->n_attributes = json_array_size(attrs);
    /* Twins only when the audience before kept every element: then its element i decoded to
     * its attributes[i]. */
    const json_t *twins = prev != NULL ? member(prev, "user_attributes") : NULL;
    if (twins != NULL &&
        (!json_is_array(twins) || prev_out->n_attributes != json_array_size(twins)))
        twins = NULL;
    size_t i, kept = 0;
    json_t *item;
    json_array_foreach(attrs, i, item)
    {
        d->twin = twins != NULL && i < json_array_size(twins) ? json_array_get(twins, i) : NULL;
        d->twin_out = d->twin != NULL ? &prev_out->attributes[i] : NULL;
        /* An element's path matters only when it fails (and attributes are most of the
         * elements of a message): it is built then, and the element decoded again with it for
         * the diagnostic, which fails at the same place. */
        bool skip = false;
        bool ok = decode_attribute(d, item, "", &out->attributes[kept], &skip);
        d->twin = NULL;
        d->twin_out = NULL;
        if (!ok) {
            char path[PATH_LEN];
            path_item(path, sizeof path, prefix, "user_attributes", i);
            memset(&out->attributes[kept], 0, sizeof out->attributes[kept]);
            (void)decode_attribute(d, item, path, &out->attributes[kept], &skip);
            return false;
        }
        if (!skip)
            kept++;
    }
    out->n_attributes = kept;
    return true;
}

static bool decode_identity(struct dec *d, const json_t *id, const char *prefix,
                            struct aw_event_identity *out)
{
    if (!json_is_object(id))
        return fail(d, AW_EVENT_WRONG_TYPE, "%s", prefix);
    return take_string(d, id, prefix, "type", true, AW_EVENT_MAX_STRING, &out->type) &&
           take_string(d, id, prefix, "encoding", true, AW_EVENT_MAX_STRING, &out->encoding) &&
           take_string(d, id, prefix, "value", true, AW_EVENT_MAX_STRING, &out->value);
}

/* One purpose object of consent_state.gdpr / .ccpa (prefix = its path). */
static bool decode_consent(struct dec *d, const json_t *c, const char *prefix,
                           struct aw_event_consent *out)
{
    if (!json_is_object(c))
        return fail(d, AW_EVENT_WRONG_TYPE, "%s", prefix);
    json_t *consented = member(c, "consented");
    if (consented == NULL)
        return fail_at(d, AW_EVENT_MISSING_FIELD, prefix, "consented");
    if (!json_is_boolean(consented))
        return fail_at(d, AW_EVENT_WRONG_TYPE, prefix, "consented");
    out->consented = json_is_true(consented);
    return take_uint(d, c, prefix, "timestamp_unixtime_ms", false, &out->has_timestamp,
                     &out->timestamp_unix_ms) &&
           check_string(d, c, prefix, "document") && check_string(d, c, prefix, "location") &&
           check_string(d, c, prefix, "hardware_id");
}

static bool decode_consent_state(struct dec *d, const json_t *profile, const char *prefix,
                                 struct aw_event_profile *out)
{
    static const char *const regimes[] = {"gdpr", "ccpa"};
    char cs_path[PATH_LEN];
    json_t *cs = member(profile, "consent_state");
    if (cs == NULL)
        return true;
    path_fmt(cs_path, sizeof cs_path, "%s.consent_state", prefix);
    if (!json_is_object(cs))
        return fail(d, AW_EVENT_WRONG_TYPE, "%s", cs_path);
    json_t *maps[2];
    size_t total = 0;
    for (size_t r = 0; r < 2; r++) {
        maps[r] = member(cs, regimes[r]);
        if (maps[r] == NULL)
            continue;
        if (!json_is_object(maps[r]))
            return fail_at(d, AW_EVENT_WRONG_TYPE, cs_path, regimes[r]);
        if (json_object_size(maps[r]) > AW_EVENT_MAX_ITEMS)
            return fail_at(d, AW_EVENT_OVERSIZE, cs_path, regimes[r]);
        total += json_object_size(maps[r]);
    }
    if (total == 0)
        return true;
    out->consents = aw_arena_calloc(d->mem, total, sizeof *out->consents);
    out->n_consents = total;
    size_t kept = 0;
    for (size_t r = 0; r < 2; r++) {
        if (maps[r] == NULL)
            continue;
        size_t pos = 0;
        const char *key;
        json_t *val;
        json_object_foreach(maps[r], key, val)
        {
            char path[PATH_LEN];
            path_fmt(path, sizeof path, "%s.%s{%zu}", cs_path, regimes[r], pos++);
            if (key[0] == '\0')
                return fail(d, AW_EVENT_BAD_VALUE, "%s", path);
            if (strlen(key) > AW_EVENT_MAX_STRING)
                return fail(d, AW_EVENT_OVERSIZE, "%s", path);
            if (json_is_null(val))
                continue;
            struct aw_event_consent *c = &out->consents[kept++];
            c->purpose = aw_arena_strdup(d->mem, key);
            c->is_ccpa = r == 1;
            if (!decode_consent(d, val, path, c))
                return false;
        }
    }
    out->n_consents = kept;
    return true;
}

static bool decode_profile(struct dec *d, const json_t *p, const char *prefix,
                           struct aw_event_profile *out)
{
    if (!json_is_object(p))
        return fail(d, AW_EVENT_WRONG_TYPE, "%s", prefix);
    json_t *mpid = member(p, "mpid");
    if (mpid != NULL && json_is_integer(mpid)) {
        char text[32];
        snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value(mpid));
        out->mpid = aw_arena_strdup(d->mem, text);
    } else if (!take_string(d, p, prefix, "mpid", false, AW_EVENT_MAX_STRING, &out->mpid)) {
        return false;
    }

    json_t *ids, *auds;
    if (!get_array(d, p, prefix, "user_identities", &ids) ||
        !get_array(d, p, prefix, "audiences", &auds))
        return false;
    size_t i;
    json_t *item;
    if (ids != NULL && json_array_size(ids) > 0) {
        out->identities = aw_arena_calloc(d->mem, json_array_size(ids), sizeof *out->identities);
        out->n_identities = json_array_size(ids);
        json_array_foreach(ids, i, item)
        {
            char path[PATH_LEN];
            path_item(path, sizeof path, prefix, "user_identities", i);
            if (!decode_identity(d, item, path, &out->identities[i]))
                return false;
        }
    }
    if (auds != NULL && json_array_size(auds) > 0) {
        out->audiences = aw_arena_calloc(d->mem, json_array_size(auds), sizeof *out->audiences);
        out->n_audiences = json_array_size(auds);
        json_array_foreach(auds, i, item)
        {
            char path[PATH_LEN];
            path_item(path, sizeof path, prefix, "audiences", i);
            if (!decode_audience(d, item, path, i > 0 ? json_array_get(auds, i - 1) : NULL,
                                 i > 0 ? &out->audiences[i - 1] : NULL, &out->audiences[i]))
                return false;
        }
    }
    return decode_consent_state(d, p, prefix, out);
}

static bool decode_root(struct dec *d, const json_t *root, struct aw_event *out)
{
    static const char *const types[] = {"audience_membership_change_request",
                                        "audience_subscription_request"};
    static const char *const sub_actions[] = {"add", "update", "remove"};
    json_t *type = member(root, "type");
    if (type == NULL)
        return fail(d, AW_EVENT_MISSING_FIELD, "type");
    if (!json_is_string(type))
        return fail(d, AW_EVENT_WRONG_TYPE, "type");
    if (strcmp(json_string_value(type), types[0]) == 0)
        out->type = AW_EVENT_MEMBERSHIP;
    else if (strcmp(json_string_value(type), types[1]) == 0)
        out->type = AW_EVENT_SUBSCRIPTION;
    else
        return fail(d, AW_EVENT_UNKNOWN_TYPE, "type");

    if (!take_string(d, root, "", "id", true, AW_EVENT_MAX_ID, &out->id))
        return false;
    if (out->id[0] == '\0')
        return fail(d, AW_EVENT_BAD_VALUE, "id");
    if (!take_uint(d, root, "", "timestamp_ms", true, NULL, &out->timestamp_ms))
        return false;
    json_t *account = member(root, "account");
    if (account == NULL)
        return fail(d, AW_EVENT_MISSING_FIELD, "account");
    if (!json_is_object(account))
        return fail(d, AW_EVENT_WRONG_TYPE, "account");
    if (!take_id(d, account, "account", "account_id", &out->account_id) ||
        !take_settings(d, account, "account", "account_settings", &out->account_settings,
                       &out->n_account_settings))
        return false;

    if (out->type == AW_EVENT_SUBSCRIPTION) {
        int idx = 0;
        if (!decode_audience_common(d, root, "", &out->subscription) ||
            !take_enum(d, root, "", "action", sub_actions, 3, &idx))
            return false;
        out->sub_action = idx == 0   ? AW_EVENT_SUB_ADD
                          : idx == 1 ? AW_EVENT_SUB_UPDATE
                                     : AW_EVENT_SUB_REMOVE;
        return true;
    }

    json_t *profiles;
    if (!get_array(d, root, "", "user_profiles", &profiles))
        return false;
    if (profiles == NULL || json_array_size(profiles) == 0)
        return true;
    out->profiles = aw_arena_calloc(d->mem, json_array_size(profiles), sizeof *out->profiles);
    out->n_profiles = json_array_size(profiles);
    size_t i;
    json_t *item;
    json_array_foreach(profiles, i, item)
    {
        char path[PATH_LEN];
        path_item(path, sizeof path, "", "user_profiles", i);
        if (!decode_profile(d, item, path, &out->profiles[i]))
            return false;
    }
    return true;
}

const char *aw_event_json_error_str(int code)
{
    switch ((enum json_error_code)code) {
    case json_error_out_of_memory:
        return "out of memory";
    case json_error_stack_overflow:
        return "nesting too deep";
    case json_error_invalid_utf8:
        return "invalid UTF-8";
    case json_error_premature_end_of_input:
        return "truncated";
    case json_error_end_of_input_expected:
        return "trailing data";
    case json_error_null_character:
    case json_error_null_byte_in_key:
        return "NUL character";
    case json_error_duplicate_key:
        return "duplicate key";
    case json_error_numeric_overflow:
        return "number out of range";
    default:
        return "syntax error";
    }
}

/* Maps a jansson parse failure to a reason and a value-free detail. */
static void parse_failure(struct dec *d, const json_error_t *jerr)
{
    switch (json_error_code(jerr)) {
    case json_error_out_of_memory:
        d->err = AW_ERR_FATAL;
        fail(d, AW_EVENT_OK, "out of memory");
        return;
    case json_error_stack_overflow:
        fail(d, AW_EVENT_OVERSIZE, "nesting");
        return;
    default:
        fail(d, AW_EVENT_NOT_JSON, "%s at offset %d",
             aw_event_json_error_str(json_error_code(jerr)), jerr->position);
        return;
    }
}

enum aw_err aw_event_decode(const char *payload, size_t len, struct aw_event *out,
                            enum aw_event_reason *reason, char *detail, size_t detail_len)
{
    AW_ASSERT(out != NULL && reason != NULL);
    AW_ASSERT(payload != NULL || len == 0);
    memset(out, 0, sizeof *out);
    out->mem = aw_arena_new();
    struct dec d = {.reason = AW_EVENT_OK, .err = AW_ERR_INVALID, .mem = out->mem, .path = ""};
    json_t *root = NULL;
    bool ok = false;

    if (len == 0) {
        fail(&d, AW_EVENT_EMPTY, "payload");
    } else if (len > AW_EVENT_MAX_BYTES) {
        fail(&d, AW_EVENT_OVERSIZE, "payload");
    } else if (is_too_deep(payload, len)) {
        fail(&d, AW_EVENT_OVERSIZE, "nesting");
    } else {
        json_error_t jerr;
        aw_parse_arena_begin();
        root = json_loadb(payload, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (root == NULL)
            parse_failure(&d, &jerr);
        else if (!json_is_object(root))
            fail(&d, AW_EVENT_NOT_OBJECT, "(root)");
        else
            ok = decode_root(&d, root, out);
        /* A tree built in the arena goes with it: walking it to free node by node (a sixth of
         * the parse) would free nothing. */
        if (!aw_parse_arena_holds(root))
            json_decref(root);
        aw_parse_arena_end();
    }

    if (ok) {
        *reason = AW_EVENT_OK;
        if (detail != NULL && detail_len > 0)
            detail[0] = '\0';
        return AW_OK;
    }
    aw_event_clear(out);
    *reason = d.reason;
    if (detail != NULL && detail_len > 0)
        snprintf(detail, detail_len, "%s", d.path);
    return d.err;
}

void aw_event_clear(struct aw_event *ev)
{
    if (ev == NULL)
        return;
    aw_arena_free(ev->mem);
    memset(ev, 0, sizeof *ev);
}

const char *aw_event_reason_str(enum aw_event_reason reason)
{
    switch (reason) {
    case AW_EVENT_OK:
        return "ok";
    case AW_EVENT_EMPTY:
        return "empty";
    case AW_EVENT_OVERSIZE:
        return "oversize";
    case AW_EVENT_NOT_JSON:
        return "not_json";
    case AW_EVENT_NOT_OBJECT:
        return "not_object";
    case AW_EVENT_UNKNOWN_TYPE:
        return "unknown_type";
    case AW_EVENT_MISSING_FIELD:
        return "missing_field";
    case AW_EVENT_WRONG_TYPE:
        return "wrong_type";
    case AW_EVENT_BAD_VALUE:
        return "bad_value";
    }
    return "unknown";
}

const char *aw_event_setting_get(const struct aw_event_setting *settings, size_t n, const char *key)
{
    if (settings == NULL || key == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (settings[i].key != NULL && strcmp(settings[i].key, key) == 0)
            return settings[i].value;
    return NULL;
}
