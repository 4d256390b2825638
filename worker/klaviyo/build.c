/* build.c -- Klaviyo request bodies and filter strings (see build.h).
 *
 * Bodies are jansson trees dumped once with JSON_COMPACT (jansson keeps object members in
 * insertion order, so bodies are deterministic). A batch builder keeps its limits exact
 * without dumping and retrying: it measures each item's compact text once (json_dumps), and
 * the body's size is the size of its wrapper with an empty array plus the items plus one comma
 * between two items -- which is what the final dump produces, asserted.
 *
 * Numbers: a real is written with 15 significant digits when that reproduces it (what a sender
 * typed: 50.94, not 50.939999999999998), else with 17 (exact). One dump has one precision, so
 * a body uses 17 digits as soon as one of its items needs them; an item is measured at both.
 *
 * Filters (any(email,[...]), equals(name,"...")) are Klaviyo filter syntax, not JSON: one
 * quoting function, filter_quote(). */
#include "worker/klaviyo/build.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/mem.h"
#include "worker/klaviyo/api.h"
#include "worker/store/change.h"

#define DUMP_SHORT (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))
#define DUMP_EXACT (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))

/* ---------------------------------------------------------------------------------------- */
/* small helpers */

static size_t clamp_limit(size_t requested, size_t endpoint_max)
{
    return (requested == 0 || requested > endpoint_max) ? endpoint_max : requested;
}

/* For text that is not JSON (filters, attribute paths checked before use as object keys):
 * jansson checks what becomes a JSON string itself. */
static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        size_t n;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            n = 2;
        else if (c >= 0xE0 && c <= 0xEF)
            n = 3;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 4;
        else
            return false;
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return false; /* also stops at the NUL terminator */
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0) ||
            (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
            return false;
        p += n;
    }
    return true;
}

/* A JSON string of s; NULL for NULL or text that is not UTF-8 (json_string refuses it), which
 * callers map to AW_ERR_INVALID. */
static json_t *jstr(const char *s)
{
    return s ? json_string(s) : NULL;
}

/* Serialises v (stolen) compactly; NULL when v is NULL or on allocation failure. */
static char *dump_take(json_t *v)
{
    if (!v)
        return NULL;
    char *s = json_dumps(v, DUMP_SHORT);
    json_decref(v);
    return s;
}

/* True when the compact text of v at 15 significant digits reads back as v (false: v holds a
 * real that needs 17). */
static bool short_reproduces(const json_t *v, const char *short_text)
{
    json_error_t jerr;
    json_t *back = json_loads(short_text, JSON_DECODE_ANY, &jerr);
    bool same = back && json_equal(back, v);
    json_decref(back);
    return same;
}

/* The text of a JSON value v (stolen) for a string field: the shortest precision that
 * reproduces it. */
static char *dump_exact_take(json_t *v)
{
    if (!v)
        return NULL;
    char *s = json_dumps(v, DUMP_SHORT);
    if (s && !short_reproduces(v, s)) {
        free(s);
        s = json_dumps(v, DUMP_EXACT);
    }
    json_decref(v);
    return s;
}

/* Sizes of one item's compact text at both precisions. */
struct measured {
    size_t short_len, exact_len;
    bool needs_exact; /* the 15-digit text does not reproduce the item */
};

/* false on allocation failure. */
static bool measure(const json_t *v, struct measured *m)
{
    char *s = json_dumps(v, DUMP_SHORT);
    char *x = json_dumps(v, DUMP_EXACT);
    bool ok = s && x;
    if (ok) {
        m->short_len = strlen(s);
        m->exact_len = strlen(x);
        /* the texts differ only where reals print differently */
        m->needs_exact = strcmp(s, x) != 0 && !short_reproduces(v, s);
    }
    free(s);
    free(x);
    return ok;
}

/* Item builder of a batch: a new JSON value for one input item into *out. */
typedef enum aw_err (*item_fn)(const void *item, json_t **out);

struct batch_limits {
    size_t max_items;
    size_t max_bytes;      /* whole body */
    size_t max_item_bytes; /* one item's text; 0 = none */
};

/* The shared batch loop (see the contract in build.h). doc is the whole body (stolen) holding
 * arr, an empty array that receives the items (borrowed from doc); items[i] is passed to fn. */
static enum aw_err build_batch(json_t *doc, json_t *arr, const void *const *items, size_t n,
                               item_fn fn, struct batch_limits lim, char **out, size_t *consumed)
{
    *out = NULL;
    *consumed = 0;
    if (!doc || !arr) {
        json_decref(doc);
        return AW_ERR_FATAL;
    }
    if (n == 0 || !items) {
        json_decref(doc);
        return AW_ERR_INVALID;
    }
    size_t wrapper = json_dumpb(doc, NULL, 0, DUMP_SHORT); /* no reals: same at 17 */
    size_t sum_short = 0, sum_exact = 0, taken = 0;
    bool exact = false; /* some item needs 17 digits */
    enum aw_err err = wrapper ? AW_OK : AW_ERR_FATAL;
    for (size_t i = 0; err == AW_OK && i < n && taken < lim.max_items; i++) {
        json_t *item = NULL;
        err = items[i] ? fn(items[i], &item) : AW_ERR_INVALID;
        if (err != AW_OK)
            break;
        struct measured m;
        if (!measure(item, &m)) {
            json_decref(item);
            err = AW_ERR_FATAL;
            break;
        }
        bool body_exact = exact || m.needs_exact;
        size_t body = wrapper + taken /* commas */ +
                      (body_exact ? sum_exact + m.exact_len : sum_short + m.short_len);
        if ((lim.max_item_bytes && m.exact_len > lim.max_item_bytes) || body > lim.max_bytes) {
            json_decref(item);
            err = AW_ERR_INVALID;
            break;
        }
        if (json_array_append_new(arr, item) != 0) {
            err = AW_ERR_FATAL;
            break;
        }
        sum_short += m.short_len;
        sum_exact += m.exact_len;
        exact = body_exact;
        taken++;
    }
    if (taken == 0 || err == AW_ERR_FATAL) {
        json_decref(doc);
        return err == AW_OK ? AW_ERR_INVALID : err;
    }
    *out = json_dumps(doc, exact ? DUMP_EXACT : DUMP_SHORT);
    json_decref(doc);
    if (!*out)
        return AW_ERR_FATAL;
    AW_ASSERT(strlen(*out) == wrapper + taken - 1 + (exact ? sum_exact : sum_short));
    *consumed = taken;
    return AW_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* profile attributes */

enum field_kind { F_STRING, F_STRING_OR_NUMBER };

struct field {
    const char *path; /* aw_change_attr.path */
    const char *key;  /* key inside attributes (or inside location) */
    bool in_location;
    enum field_kind kind;
};

/* Writable profile fields of ProfileUpsertQueryResourceObject (spec) that map.c produces. */
static const struct field FIELDS[] = {
    {"first_name", "first_name", false, F_STRING},
    {"last_name", "last_name", false, F_STRING},
    {"organization", "organization", false, F_STRING},
    {"title", "title", false, F_STRING},
    {"image", "image", false, F_STRING},
    {"locale", "locale", false, F_STRING},
    {"location.address1", "address1", true, F_STRING},
    {"location.address2", "address2", true, F_STRING},
    {"location.city", "city", true, F_STRING},
    {"location.country", "country", true, F_STRING},
    {"location.latitude", "latitude", true, F_STRING_OR_NUMBER},
    {"location.longitude", "longitude", true, F_STRING_OR_NUMBER},
    {"location.region", "region", true, F_STRING},
    {"location.zip", "zip", true, F_STRING},
    {"location.timezone", "timezone", true, F_STRING},
    {"location.ip", "ip", true, F_STRING},
};

#define PROPERTIES_PREFIX "properties."

static const struct field *find_field(const char *path)
{
    for (size_t i = 0; i < sizeof FIELDS / sizeof FIELDS[0]; i++)
        if (strcmp(FIELDS[i].path, path) == 0)
            return &FIELDS[i];
    return NULL;
}

static const char *property_name(const char *path)
{
    size_t n = strlen(PROPERTIES_PREFIX);
    if (strncmp(path, PROPERTIES_PREFIX, n) != 0 || path[n] == '\0')
        return NULL;
    return path + n;
}

/* Parses an attribute's value_json. *is_unset for NULL text or JSON null. */
static enum aw_err load_value(const char *value_json, json_t **out, bool *is_unset)
{
    *out = NULL;
    *is_unset = false;
    if (!value_json) {
        *is_unset = true;
        return AW_OK;
    }
    json_error_t jerr;
    json_t *v = json_loads(value_json, JSON_DECODE_ANY, &jerr);
    if (!v)
        return AW_ERR_INVALID;
    if (json_is_null(v)) {
        json_decref(v);
        *is_unset = true;
        return AW_OK;
    }
    *out = v;
    return AW_OK;
}

/* Coerces v (stolen) to the field's schema type: strings stay, numbers stay where allowed,
 * anything else is sent as its JSON text (a string field cannot take 42 or [..]). */
static json_t *coerce(json_t *v, enum field_kind kind)
{
    if (json_is_string(v))
        return v;
    if (kind == F_STRING_OR_NUMBER && json_is_number(v))
        return v;
    char *txt = dump_exact_take(v);
    if (!txt)
        return NULL;
    json_t *s = json_string(txt);
    free(txt);
    return s;
}

static json_t *get_or_add_object(json_t *parent, const char *key)
{
    json_t *o = json_object_get(parent, key);
    if (o)
        return o;
    o = json_object();
    if (!o || json_object_set_new(parent, key, o) != 0)
        return NULL;
    return o;
}

/* Profile resource object for the bulk import. */
static enum aw_err import_profile(const void *item, json_t **out)
{
    const struct aw_change *c = item;
    *out = NULL;
    if (!c->email || !c->email[0])
        return AW_ERR_INVALID;
    json_t *prof = json_object();
    json_t *attrs = json_object();
    json_t *unset = json_array();
    if (!prof || !attrs || !unset) {
        json_decref(prof);
        json_decref(attrs);
        json_decref(unset);
        return AW_ERR_FATAL;
    }
    enum aw_err err = AW_OK;
    json_object_set_new(prof, "type", json_string("profile"));
    json_object_set_new(prof, "attributes", attrs);
    json_t *s = jstr(c->email);
    if (!s || json_object_set_new(attrs, "email", s) != 0)
        err = AW_ERR_INVALID;
    if (err == AW_OK && c->phone_e164) {
        s = jstr(c->phone_e164);
        if (!s || json_object_set_new(attrs, "phone_number", s) != 0)
            err = AW_ERR_INVALID;
    }
    if (err == AW_OK && c->external_id) {
        s = jstr(c->external_id);
        if (!s || json_object_set_new(attrs, "external_id", s) != 0)
            err = AW_ERR_INVALID;
    }
    for (size_t i = 0; err == AW_OK && i < c->n_attrs; i++) {
        const struct aw_change_attr *a = &c->attrs[i];
        if (!a->path || !utf8_valid(a->path)) {
            err = AW_ERR_INVALID;
            break;
        }
        json_t *v = NULL;
        bool is_unset = false;
        err = load_value(a->value_json, &v, &is_unset);
        if (err != AW_OK)
            break;
        const struct field *f = find_field(a->path);
        const char *prop = f ? NULL : property_name(a->path);
        if (!f && !prop) {
            json_decref(v);
            err = AW_ERR_INVALID; /* map.c produced a path Klaviyo has no field for */
            break;
        }
        if (is_unset) {
            /* properties: patch unset; standard fields: aw_build_profile_import */
            if (prop && json_array_append_new(unset, json_string(prop)) != 0)
                err = AW_ERR_FATAL;
            continue;
        }
        json_t *parent = attrs;
        const char *key = prop;
        if (f) {
            v = coerce(v, f->kind);
            key = f->key;
            parent = f->in_location ? get_or_add_object(attrs, "location") : attrs;
        } else {
            parent = get_or_add_object(attrs, "properties");
        }
        if (!v || !parent) {
            json_decref(v);
            err = AW_ERR_FATAL;
            break;
        }
        if (json_object_set_new(parent, key, v) != 0)
            err = AW_ERR_FATAL;
    }
    if (err == AW_OK && json_array_size(unset) > 0) {
        json_t *meta = json_pack("{s:{s:O}}", "patch_properties", "unset", unset);
        if (!meta || json_object_set_new(prof, "meta", meta) != 0)
            err = AW_ERR_FATAL;
    }
    json_decref(unset);
    if (err != AW_OK) {
        json_decref(prof);
        return err;
    }
    *out = prof;
    return AW_OK;
}

enum aw_err aw_build_import(const struct aw_change *const *changes, size_t n, const char *list_id,
                            size_t max_items, size_t max_bytes, char **out, size_t *consumed)
{
    AW_ASSERT(out != NULL && consumed != NULL);
    *out = NULL;
    *consumed = 0;
    json_t *rel = NULL;
    if (list_id) {
        json_t *id = list_id[0] ? jstr(list_id) : NULL;
        if (!id)
            return AW_ERR_INVALID;
        rel = json_pack("{s:{s:[{s:s,s:o}]}}", "lists", "data", "type", "list", "id", id);
        if (!rel)
            return AW_ERR_FATAL;
    }
    json_t *arr = json_array();
    json_t *doc = arr ? json_pack("{s:{s:s,s:{s:{s:O}}}}", "data", "type",
                                  "profile-bulk-import-job", "attributes", "profiles", "data", arr)
                      : NULL;
    json_decref(arr); /* doc holds it */
    if (rel) {
        /* set_new takes rel even when it fails */
        if (doc && json_object_set_new(json_object_get(doc, "data"), "relationships", rel) != 0) {
            json_decref(doc);
            doc = NULL;
        } else if (!doc) {
            json_decref(rel);
        }
    }
    const struct aw_api_op *op = aw_api_get(AW_API_IMPORT_CREATE);
    struct batch_limits lim = {clamp_limit(max_items, op->max_items),
                               clamp_limit(max_bytes, op->budget_bytes), op->max_item_bytes};
    return build_batch(doc, arr, (const void *const *)changes, n, import_profile, lim, out,
                       consumed);
}

bool aw_build_needs_profile_import(const struct aw_change *c)
{
    if (!c)
        return false;
    for (size_t i = 0; i < c->n_attrs; i++) {
        const struct aw_change_attr *a = &c->attrs[i];
        if (!a->path || !find_field(a->path))
            continue;
        json_t *v = NULL;
        bool is_unset = false;
        if (load_value(a->value_json, &v, &is_unset) == AW_OK && is_unset)
            return true;
        json_decref(v);
    }
    return false;
}

enum aw_err aw_build_profile_import(const struct aw_change *c, char **out)
{
    AW_ASSERT(out != NULL);
    *out = NULL;
    if (!c || !c->email || !c->email[0])
        return AW_ERR_INVALID;
    json_t *email = jstr(c->email);
    if (!email)
        return AW_ERR_INVALID;
    json_t *attrs = json_object();
    if (!attrs) {
        json_decref(email);
        return AW_ERR_FATAL;
    }
    json_object_set_new(attrs, "email", email);
    size_t cleared = 0;
    enum aw_err err = AW_OK;
    for (size_t i = 0; err == AW_OK && i < c->n_attrs; i++) {
        const struct aw_change_attr *a = &c->attrs[i];
        const struct field *f = a->path ? find_field(a->path) : NULL;
        if (!f)
            continue;
        json_t *v = NULL;
        bool is_unset = false;
        err = load_value(a->value_json, &v, &is_unset);
        json_decref(v);
        if (err != AW_OK || !is_unset)
            continue;
        json_t *parent = f->in_location ? get_or_add_object(attrs, "location") : attrs;
        if (!parent || json_object_set_new(parent, f->key, json_null()) != 0)
            err = AW_ERR_FATAL;
        cleared++;
    }
    if (err == AW_OK && cleared == 0)
        err = AW_ERR_INVALID;
    if (err != AW_OK) {
        json_decref(attrs);
        return err;
    }
    json_t *doc = json_pack("{s:{s:s,s:o}}", "data", "type", "profile", "attributes", attrs);
    char *txt = dump_take(doc);
    if (!txt)
        return AW_ERR_FATAL;
    if (strlen(txt) > aw_api_get(AW_API_PROFILE_IMPORT)->budget_bytes) {
        free(txt);
        return AW_ERR_INVALID;
    }
    *out = txt;
    return AW_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* subscriptions */

static bool consent_sendable(const struct aw_change *c, const struct aw_change_consent *cs)
{
    if (cs->channel == AW_CHANNEL_EMAIL)
        return c->email && c->email[0];
    if (cs->channel == AW_CHANNEL_SMS)
        return c->phone_e164 && c->phone_e164[0];
    return false;
}

static bool has_consent(const struct aw_change *c, bool subscribe)
{
    if (!c || !c->consents)
        return false;
    for (size_t i = 0; i < c->n_consents; i++)
        if (c->consents[i].subscribe == subscribe && consent_sendable(c, &c->consents[i]))
            return true;
    return false;
}

bool aw_build_has_subscribe(const struct aw_change *c)
{
    return has_consent(c, true);
}

bool aw_build_has_unsubscribe(const struct aw_change *c)
{
    return has_consent(c, false);
}

/* RFC 3339 UTC with milliseconds: 2023-11-14T22:13:20.123Z. */
static bool format_rfc3339_ms(uint64_t unix_ms, char *buf, size_t len)
{
    if (unix_ms > 253402300799999ull) /* 9999-12-31T23:59:59.999Z */
        return false;
    time_t secs = (time_t)(unix_ms / 1000u);
    struct tm tm;
    if (!gmtime_r(&secs, &tm))
        return false;
    int n =
        snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(unix_ms % 1000u));
    return n > 0 && (size_t)n < len;
}

/* Profile object of a subscription job: identifiers and subscriptions.<channel>.marketing. */
static enum aw_err subscription_profile(const struct aw_change *c, bool subscribe, json_t **out)
{
    *out = NULL;
    json_t *subs = json_object();
    if (!subs)
        return AW_ERR_FATAL;
    bool sms = false;
    enum aw_err err = AW_OK;
    for (size_t i = 0; err == AW_OK && i < c->n_consents; i++) {
        const struct aw_change_consent *cs = &c->consents[i];
        if (cs->subscribe != subscribe || !consent_sendable(c, cs))
            continue;
        json_t *marketing;
        if (subscribe) {
            char at[40];
            uint64_t ms = cs->has_consented_at ? cs->consented_at_unix_ms : c->version_ms;
            if (!format_rfc3339_ms(ms, at, sizeof at)) {
                err = AW_ERR_INVALID;
                break;
            }
            marketing = json_pack("{s:s,s:s}", "consent", "SUBSCRIBED", "consented_at", at);
        } else {
            marketing = json_pack("{s:s}", "consent", "UNSUBSCRIBED");
        }
        json_t *chan = marketing ? json_pack("{s:o}", "marketing", marketing) : NULL;
        if (!chan || json_object_set_new(subs, aw_change_channel_str(cs->channel), chan) != 0)
            err = AW_ERR_FATAL;
        if (cs->channel == AW_CHANNEL_SMS)
            sms = true;
    }
    if (err == AW_OK && json_object_size(subs) == 0)
        err = AW_ERR_INVALID; /* nothing sendable in this direction */
    json_t *email = err == AW_OK ? jstr(c->email) : NULL;
    if (err == AW_OK && !email)
        err = AW_ERR_INVALID;
    json_t *phone = NULL;
    if (err == AW_OK && sms) {
        phone = jstr(c->phone_e164);
        if (!phone)
            err = AW_ERR_INVALID;
    }
    if (err != AW_OK) {
        json_decref(subs);
        json_decref(email);
        return err;
    }
    json_t *attrs = json_object();
    if (!attrs) {
        json_decref(subs);
        json_decref(email);
        json_decref(phone);
        return AW_ERR_FATAL;
    }
    json_object_set_new(attrs, "email", email);
    if (phone)
        json_object_set_new(attrs, "phone_number", phone);
    json_object_set_new(attrs, "subscriptions", subs);
    *out = json_pack("{s:s,s:o}", "type", "profile", "attributes", attrs);
    return *out ? AW_OK : AW_ERR_FATAL;
}

static enum aw_err subscribe_profile(const void *item, json_t **out)
{
    return subscription_profile(item, true, out);
}

static enum aw_err unsubscribe_profile(const void *item, json_t **out)
{
    return subscription_profile(item, false, out);
}

static bool same_source(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

enum aw_err aw_build_subscribe(const struct aw_change *const *changes, size_t n, size_t max_items,
                               char **out, size_t *consumed)
{
    AW_ASSERT(out != NULL && consumed != NULL);
    *out = NULL;
    *consumed = 0;
    if (n == 0 || !changes || !changes[0])
        return AW_ERR_INVALID;
    const char *source = changes[0]->custom_source;
    size_t run = 1;
    while (run < n && changes[run] && same_source(changes[run]->custom_source, source))
        run++;
    json_t *attrs = json_object();
    json_t *arr = json_array();
    bool ok = attrs && arr;
    if (ok && source) {
        json_t *src = jstr(source);
        if (!src) {
            json_decref(attrs);
            json_decref(arr);
            return AW_ERR_INVALID;
        }
        ok = json_object_set_new(attrs, "custom_source", src) == 0;
    }
    ok = ok && json_object_set_new(attrs, "historical_import", json_true()) == 0 &&
         json_object_set_new(attrs, "profiles", json_pack("{s:O}", "data", arr)) == 0;
    json_t *doc = ok ? json_pack("{s:{s:s,s:O}}", "data", "type",
                                 "profile-subscription-bulk-create-job", "attributes", attrs)
                     : NULL;
    json_decref(attrs); /* doc holds them */
    json_decref(arr);
    struct batch_limits lim = {clamp_limit(max_items, aw_api_get(AW_API_SUBSCRIBE)->max_items),
                               (size_t)-1, 0};
    return build_batch(doc, arr, (const void *const *)changes, run, subscribe_profile, lim, out,
                       consumed);
}

enum aw_err aw_build_unsubscribe(const struct aw_change *const *changes, size_t n, size_t max_items,
                                 char **out, size_t *consumed)
{
    AW_ASSERT(out != NULL && consumed != NULL);
    *out = NULL;
    *consumed = 0;
    json_t *arr = json_array();
    json_t *doc = arr ? json_pack("{s:{s:s,s:{s:{s:O}}}}", "data", "type",
                                  "profile-subscription-bulk-delete-job", "attributes", "profiles",
                                  "data", arr)
                      : NULL;
    json_decref(arr); /* doc holds it */
    struct batch_limits lim = {clamp_limit(max_items, aw_api_get(AW_API_UNSUBSCRIBE)->max_items),
                               (size_t)-1, 0};
    return build_batch(doc, arr, (const void *const *)changes, n, unsubscribe_profile, lim, out,
                       consumed);
}

/* ---------------------------------------------------------------------------------------- */
/* lists */

static enum aw_err member_item(const void *item, json_t **out)
{
    const char *id = item;
    *out = NULL;
    json_t *s = id[0] ? jstr(id) : NULL;
    if (!s)
        return AW_ERR_INVALID;
    *out = json_pack("{s:s,s:o}", "type", "profile", "id", s);
    return *out ? AW_OK : AW_ERR_FATAL;
}

/* Adding and removing share the body and the limit (test_api.c checks both rows agree). */
enum aw_err aw_build_list_members(const char *const *profile_ids, size_t n, size_t max_items,
                                  char **out, size_t *consumed)
{
    AW_ASSERT(out != NULL && consumed != NULL);
    *out = NULL;
    *consumed = 0;
    json_t *arr = json_array();
    json_t *doc = arr ? json_pack("{s:O}", "data", arr) : NULL;
    json_decref(arr); /* doc holds it */
    struct batch_limits lim = {
        clamp_limit(max_items, aw_api_get(AW_API_LIST_ADD_PROFILES)->max_items), (size_t)-1, 0};
    return build_batch(doc, arr, (const void *const *)profile_ids, n, member_item, lim, out,
                       consumed);
}

enum aw_err aw_build_create_list(const char *name, char **out)
{
    AW_ASSERT(out != NULL);
    *out = NULL;
    if (!name || !name[0])
        return AW_ERR_INVALID;
    json_t *s = jstr(name);
    if (!s)
        return AW_ERR_INVALID;
    *out =
        dump_take(json_pack("{s:{s:s,s:{s:o}}}", "data", "type", "list", "attributes", "name", s));
    return *out ? AW_OK : AW_ERR_FATAL;
}

/* ---------------------------------------------------------------------------------------- */
/* filters */

/* Klaviyo filter string literal: "..." with \ and " backslash-escaped. Control characters
 * have no documented escape, so they are refused. */
static enum aw_err filter_quote(const char *s, char **text)
{
    *text = NULL;
    if (!s || !s[0] || !utf8_valid(s))
        return AW_ERR_INVALID;
    struct aw_buf b;
    aw_buf_init(&b, 0);
    (void)aw_buf_append(&b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7F) {
            aw_buf_free(&b);
            return AW_ERR_INVALID;
        }
        if (*p == '"' || *p == '\\')
            (void)aw_buf_append(&b, "\\", 1);
        (void)aw_buf_append(&b, p, 1);
    }
    (void)aw_buf_append(&b, "\"", 1);
    *text = aw_buf_take(&b);
    return AW_OK;
}

enum aw_err aw_build_email_filter(const char *const *emails, size_t n, size_t max_items,
                                  size_t max_bytes, char **out, size_t *consumed)
{
    AW_ASSERT(out != NULL && consumed != NULL);
    *out = NULL;
    *consumed = 0;
    if (n == 0 || !emails)
        return AW_ERR_INVALID;
    const struct aw_api_op *op = aw_api_get(AW_API_GET_PROFILES);
    max_items = clamp_limit(max_items, op->filter_max_values);
    max_bytes = clamp_limit(max_bytes, op->filter_max_bytes);
    static const char prefix[] = "any(email,[", suffix[] = "])";
    struct aw_buf b;
    aw_buf_init(&b, 0);
    (void)aw_buf_append_str(&b, prefix);
    size_t taken = 0;
    for (size_t i = 0; i < n && taken < max_items; i++) {
        char *q = NULL;
        if (filter_quote(emails[i], &q) != AW_OK)
            break;
        size_t qlen = strlen(q);
        if (b.len + (taken ? 1 : 0) + qlen + strlen(suffix) > max_bytes) {
            free(q);
            break;
        }
        if (taken)
            (void)aw_buf_append(&b, ",", 1);
        (void)aw_buf_append(&b, q, qlen);
        free(q);
        taken++;
    }
    if (taken == 0) {
        aw_buf_free(&b);
        return AW_ERR_INVALID;
    }
    (void)aw_buf_append_str(&b, suffix);
    *out = aw_buf_take(&b);
    *consumed = taken;
    return AW_OK;
}

enum aw_err aw_build_list_name_filter(const char *name, char **out)
{
    AW_ASSERT(out != NULL);
    *out = NULL;
    char *q = NULL;
    enum aw_err err = filter_quote(name, &q);
    if (err != AW_OK)
        return err;
    struct aw_buf b;
    aw_buf_init(&b, 0);
    (void)aw_buf_appendf(&b, "equals(name,%s)", q);
    free(q);
    *out = aw_buf_take(&b);
    return AW_OK;
}
