/* map.c -- docs/design.md §3 mapping rules. Connection settings are parsed by connection.c; the few
 * attribute values read here as text ($country, $source) are decoded from their JSON with
 * jansson. */
#include "worker/ingest/map.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/arena.h"
#include "common/mem.h"
#include "common/phone/phone.h"
#include "common/text.h"
#include "worker/ingest/account.h"
#include "worker/ingest/connection.h"
#include "worker/ingest/event.h"
#include "worker/store/change.h"

/* ---------------------------------------------------------------- helpers */

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* ASCII case-insensitive equality (locale-independent, unlike strcasecmp). */
static bool ieq(const char *a, const char *b)
{
    if (!a || !b)
        return false;
    for (; *a && *b; a++, b++) {
        if (lower((unsigned char)*a) != lower((unsigned char)*b))
            return false;
    }
    return *a == *b;
}

/* The string a value_json holds, caller-owned; NULL when it is not a JSON string (a number, a
 * list_value array, ...). value_json comes from event.c, so it is valid JSON without NUL. */
static char *json_text_string(const char *value_json)
{
    if (!value_json)
        return NULL;
    json_error_t jerr;
    json_t *v = json_loads(value_json, JSON_DECODE_ANY, &jerr);
    char *s = json_is_string(v) ? aw_strdup(json_string_value(v)) : NULL;
    json_decref(v);
    return s;
}

static bool same(const char *a, const char *b);
static char *dup_or_null(struct aw_arena *mem, const char *s);

/* ---------------------------------------------------------------- email */

static bool domain_ok(const char *d, size_t len)
{
    size_t labels = 0, start = 0;
    bool tld_has_alpha = false;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && d[i] != '.')
            continue;
        size_t ll = i - start;
        if (ll == 0 || ll > 63)
            return false;
        if (d[start] == '-' || d[i - 1] == '-')
            return false;
        tld_has_alpha = false;
        for (size_t k = start; k < i; k++) {
            char c = d[k];
            bool alpha = c >= 'a' && c <= 'z';
            if (!alpha && !(c >= '0' && c <= '9') && c != '-')
                return false;
            if (alpha)
                tld_has_alpha = true;
        }
        labels++;
        start = i + 1;
    }
    return labels >= 2 && tld_has_alpha;
}

enum aw_err aw_map_email_normalise(const char *raw, char **out)
{
    *out = NULL;
    if (!raw)
        return AW_ERR_INVALID;
    char *e = aw_text_trim_dup(raw, strlen(raw));
    size_t len = strlen(e);
    if (len == 0 || len > AW_MAP_EMAIL_MAX) {
        free(e);
        return AW_ERR_INVALID;
    }
    size_t at = len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)e[i];
        /* Printable ASCII only: no spaces, controls or non-ASCII (see README mapping table). */
        if (c <= 0x20 || c >= 0x7f)
            goto bad;
        e[i] = (char)lower(c);
        if (c == '@') {
            if (at != len)
                goto bad; /* more than one '@' */
            at = i;
        }
    }
    if (at == len || at == 0 || at > AW_MAP_EMAIL_LOCAL_MAX)
        goto bad;
    if (!domain_ok(e + at + 1, len - at - 1))
        goto bad;
    *out = e;
    return AW_OK;
bad:
    free(e);
    return AW_ERR_INVALID;
}

/* ---------------------------------------------------------------- attributes */

struct path_map {
    const char *key;
    const char *path;
};

static const struct path_map k_default[] = {
    {"$firstname", "first_name"},      {"$lastname", "last_name"}, {"$country", "location.country"},
    {"$zip", "location.zip"},          {"$city", "location.city"}, {"$state", "location.region"},
    {"$address", "location.address1"},
};

/* Paths of propertyMapping targets, indexed by enum aw_connection_target; NULL = custom_source. */
static const char *const k_target_path[AW_TARGET_COUNT] = {
    [AW_TARGET_ADDRESS2] = "location.address2", [AW_TARGET_IMAGE] = "image",
    [AW_TARGET_LATITUDE] = "location.latitude", [AW_TARGET_LONGITUDE] = "location.longitude",
    [AW_TARGET_ORGANIZATION] = "organization",  [AW_TARGET_SOURCE] = NULL,
    [AW_TARGET_TIMEZONE] = "location.timezone", [AW_TARGET_TITLE] = "title",
};

const char *aw_map_default_path(const char *key)
{
    if (!key || key[0] != '$') /* every key of the table starts with '$' */
        return NULL;
    for (size_t i = 0; i < sizeof k_default / sizeof k_default[0]; i++) {
        if (ieq(key, k_default[i].key))
            return k_default[i].path;
    }
    return NULL;
}

struct pending_attr {
    char *path;             /* in the result's arena */
    const char *value_json; /* borrowed from the event; NULL = unset */
    size_t seq;             /* input order: later wins */
};

struct attr_list {
    struct pending_attr *items;
    size_t n, cap;
};

static void attr_push(struct attr_list *l, char *path, const char *value_json)
{
    aw_grow((void **)&l->items, &l->cap, l->n + 1, sizeof *l->items);
    l->items[l->n].path = path;
    l->items[l->n].value_json = value_json;
    l->items[l->n].seq = l->n;
    l->n++;
}

static int pending_cmp(const void *a, const void *b)
{
    const struct pending_attr *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    if (c)
        return c;
    return x->seq < y->seq ? -1 : (x->seq > y->seq ? 1 : 0);
}

/* Sorts by path, keeps the last input of each path, moves the result into the change. */
static void attrs_finish(struct aw_arena *mem, struct attr_list *l, struct aw_change *c)
{
    if (l->n == 0)
        return;
    qsort(l->items, l->n, sizeof *l->items, pending_cmp);
    c->attrs = aw_arena_calloc(mem, l->n, sizeof *c->attrs);
    for (size_t i = 0; i < l->n; i++) {
        bool last_of_path = i + 1 == l->n || strcmp(l->items[i].path, l->items[i + 1].path) != 0;
        if (!last_of_path)
            continue;
        struct aw_change_attr *a = &c->attrs[c->n_attrs++];
        a->path = l->items[i].path;
        a->value_json =
            l->items[i].value_json ? aw_arena_strdup(mem, l->items[i].value_json) : NULL;
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

static char *property_path(struct aw_arena *mem, const char *key)
{
    const char *name = key[0] == '$' ? key + 1 : key;
    if (*name == '\0')
        return NULL;
    size_t n = strlen(name);
    char *p = aw_arena_alloc(mem, n + sizeof "properties.");
    memcpy(p, "properties.", sizeof "properties." - 1);
    memcpy(p + sizeof "properties." - 1, name, n + 1);
    return p;
}

static void map_attributes(struct aw_arena *mem, const struct aw_event_audience *aud,
                           const struct aw_connection *conn, struct aw_change *c)
{
    struct attr_list l = {0};
    for (size_t i = 0; i < aud->n_attributes; i++) {
        const struct aw_event_attribute *at = &aud->attributes[i];
        if (!at->key || at->key[0] == '\0')
            continue;
        bool del = at->action == AW_EVENT_ATTR_DELETE;
        if (!del && !at->value_json)
            continue; /* upsert without a value carries nothing */
        const char *value = del ? NULL : at->value_json;

        const char *path = aw_map_default_path(at->key);
        if (path) {
            attr_push(&l, aw_arena_strdup(mem, path), value);
            continue;
        }
        bool mapped = false;
        for (size_t k = 0; k < conn->n_properties; k++) {
            if (!ieq(conn->properties[k].attribute, at->key))
                continue;
            mapped = true;
            const char *tp = k_target_path[conn->properties[k].target];
            if (tp) {
                attr_push(&l, aw_arena_strdup(mem, tp), value);
            } else if (del) {
                c->custom_source = NULL;
            } else {
                char *s = json_text_string(value);
                if (s) { /* non-string values (list_value) cannot be a source: ignored */
                    c->custom_source = aw_arena_strdup(mem, s);
                    free(s);
                }
            }
        }
        if (mapped)
            continue;
        char *pp = property_path(mem, at->key);
        if (pp)
            attr_push(&l, pp, value);
    }
    attrs_finish(mem, &l, c);
}

/* Whether two audiences of a profile carry the same user_attributes (keys, actions and values
 * in the same order): mParticle repeats the profile's attributes in each of its audiences. */
static bool same_attributes(const struct aw_event_audience *a, const struct aw_event_audience *b)
{
    if (a->n_attributes != b->n_attributes)
        return false;
    for (size_t i = 0; i < a->n_attributes; i++) {
        const struct aw_event_attribute *x = &a->attributes[i], *y = &b->attributes[i];
        if (x->action != y->action || !same(x->key, y->key) || !same(x->value_json, y->value_json))
            return false;
    }
    return true;
}

/* The attributes (and custom source) another change of the profile mapped, shared with c:
 * both live in the result's arena and are never changed once mapped. */
static void copy_attributes(const struct aw_change *from, struct aw_change *c)
{
    c->attrs = from->attrs;
    c->n_attrs = from->n_attrs;
    c->custom_source = from->custom_source;
}

/* ---------------------------------------------------------------- consent */

/* What one consent purpose asks of the channel it is mapped to. */
struct intent {
    const struct aw_event_consent *ec; /* NULL = nothing asked */
    bool subscribe;
};

/* The intent of a purpose (docs/design.md §3). GDPR: consented -> subscribe, not consented ->
 * unsubscribe. CCPA (data_sale_opt_out) is not a marketing consent: an opt-out (consented:
 * true) unsubscribes, an opt-in (consented: false) asks nothing. */
static struct intent consent_intent(const struct aw_event_consent *ec)
{
    struct intent in = {ec, ec->consented};
    if (ec->is_ccpa) {
        in.subscribe = false;
        if (!ec->consented)
            in.ec = NULL;
    }
    return in;
}

/* True when cand should replace cur for the same channel: the newer purpose timestamp wins, a
 * timestamped consent beats one without, and on a tie the unsubscribe (opt-out) wins. */
static bool intent_beats(const struct intent *cand, const struct intent *cur)
{
    if (cand->ec->has_timestamp != cur->ec->has_timestamp)
        return cand->ec->has_timestamp;
    if (cand->ec->has_timestamp && cand->ec->timestamp_unix_ms != cur->ec->timestamp_unix_ms)
        return cand->ec->timestamp_unix_ms > cur->ec->timestamp_unix_ms;
    return !cand->subscribe && cur->subscribe;
}

static void map_consents(struct aw_arena *mem, const struct aw_event_profile *prof,
                         const struct aw_connection *conn, bool has_phone, struct aw_change *c)
{
    struct intent best[2] = {{NULL, false}, {NULL, false}}; /* [0] email, [1] sms */
    for (size_t i = 0; i < prof->n_consents; i++) {
        const struct aw_event_consent *ec = &prof->consents[i];
        if (!ec->purpose)
            continue;
        struct intent in = consent_intent(ec);
        if (!in.ec)
            continue;
        for (size_t k = 0; k < conn->n_consents; k++) {
            if (!ieq(conn->consents[k].purpose, ec->purpose))
                continue;
            int ch = conn->consents[k].channel == AW_CHANNEL_SMS ? 1 : 0;
            if (!best[ch].ec || intent_beats(&in, &best[ch]))
                best[ch] = in;
        }
    }
    if (best[1].ec && !has_phone) {
        c->drops |= AW_CHANGE_DROP_SMS_NO_PHONE;
        best[1].ec = NULL;
    }
    size_t n = (best[0].ec != NULL) + (best[1].ec != NULL);
    if (n == 0)
        return;
    c->consents = aw_arena_calloc(mem, n, sizeof *c->consents);
    for (int ch = 0; ch < 2; ch++) {
        if (!best[ch].ec)
            continue;
        struct aw_change_consent *cc = &c->consents[c->n_consents++];
        cc->channel = ch ? AW_CHANNEL_SMS : AW_CHANNEL_EMAIL;
        cc->subscribe = best[ch].subscribe;
        /* The purpose's own timestamp is the version of this consent, for subscribe and
         * unsubscribe alike (docs/design.md §3); Klaviyo also gets it as consented_at. */
        cc->has_consented_at = best[ch].ec->has_timestamp;
        cc->consented_at_unix_ms = best[ch].ec->timestamp_unix_ms;
    }
}

/* ---------------------------------------------------------------- profile */

static void reject_add(struct aw_map_result *r, size_t *cap, size_t profile, const char *audience,
                       const char *reason, const char *detail)
{
    aw_grow((void **)&r->rejects, cap, r->n_rejects + 1, sizeof *r->rejects);
    struct aw_map_reject *rj = &r->rejects[r->n_rejects++];
    rj->profile_index = profile;
    rj->audience_id = audience ? aw_strdup(audience) : NULL;
    rj->reason = reason;
    rj->detail = detail && *detail ? aw_strdup(detail) : NULL;
}

/* Identity of the given type with encoding raw and a non-blank value; NULL when none.
 * *seen_any (optional) tells whether any identity of that type exists. */
static const char *find_raw_identity(const struct aw_event_profile *p, const char *type,
                                     bool *seen_any)
{
    if (seen_any)
        *seen_any = false;
    for (size_t i = 0; i < p->n_identities; i++) {
        const struct aw_event_identity *id = &p->identities[i];
        if (!ieq(id->type, type))
            continue;
        if (seen_any)
            *seen_any = true;
        if (ieq(id->encoding, "raw") && id->value && !aw_text_is_blank(id->value))
            return id->value;
    }
    return NULL;
}

/* Region for phone numbers without a country code: the last `$country` upsert of the profile
 * (all audiences, input order) that is a known ISO alpha-2/alpha-3 code. */
static bool profile_region(const struct aw_event_profile *p, char region[3])
{
    const char *last = NULL;
    for (size_t a = 0; a < p->n_audiences; a++) {
        const struct aw_event_audience *aud = &p->audiences[a];
        for (size_t i = 0; i < aud->n_attributes; i++) {
            const struct aw_event_attribute *at = &aud->attributes[i];
            if (at->action == AW_EVENT_ATTR_UPSERT && at->value_json && ieq(at->key, "$country"))
                last = at->value_json;
        }
    }
    if (!last)
        return false;
    char *s = json_text_string(last);
    if (!s)
        return false;
    char *code = aw_text_trim_dup(s, strlen(s));
    bool ok = aw_phone_region_from_country(code, region) == AW_OK;
    free(code);
    free(s);
    return ok;
}

/* Parsed connection settings, cached per thread across messages: an audience's settings come
 * back with every message that names it, and parsing them (consentMapping and propertyMapping
 * are JSON texts in a string) cost ~12 k instructions an audience, twice a message of the
 * benchmark. Keyed by the three raw setting texts (copies). A slot a message uses is kept
 * until that message is mapped (changes of one message compare slots by address to share
 * attributes), and the least recently used of the others is replaced when the cache is full;
 * settings longer than CONN_KEY_MAX in all are parsed into the scratch slot each time, which
 * is never shared. */
struct conn_slot {
    char *list_id, *props, *consents; /* owned copies of the raw setting texts (the key) */
    uint64_t used;                    /* the number of the message that used it last */
    enum aw_err err;
    struct aw_connection conn;
    char detail[200];
};

#define CONN_CACHE_MAX 64
#define CONN_KEY_MAX 4096u

struct conn_cache {
    struct conn_slot slots[CONN_CACHE_MAX]; /* [0, n) in use */
    size_t n;
    uint64_t message;         /* the number of the message being mapped */
    struct conn_slot scratch; /* settings too long to keep, or every slot in use */
};

static _Thread_local struct conn_cache *t_conn_cache;
static pthread_key_t conn_cache_key; /* frees a thread's cache when it exits */
static pthread_once_t conn_cache_once = PTHREAD_ONCE_INIT;

static void conn_slot_clear(struct conn_slot *s)
{
    free(s->list_id);
    free(s->props);
    free(s->consents);
    aw_connection_clear(&s->conn);
    memset(s, 0, sizeof *s);
}

static void conn_cache_free(void *p)
{
    struct conn_cache *cc = p;
    for (size_t i = 0; i < cc->n; i++)
        conn_slot_clear(&cc->slots[i]);
    conn_slot_clear(&cc->scratch);
    free(cc);
}

static void conn_cache_key_create(void)
{
    AW_ASSERT(pthread_key_create(&conn_cache_key, conn_cache_free) == 0);
}

/* This thread's cache, created on first use, with a new message number. */
static struct conn_cache *conn_cache_begin(void)
{
    struct conn_cache *cc = t_conn_cache;
    if (cc == NULL) {
        AW_ASSERT(pthread_once(&conn_cache_once, conn_cache_key_create) == 0);
        cc = aw_calloc(1, sizeof *cc);
        AW_ASSERT(pthread_setspecific(conn_cache_key, cc) == 0);
        t_conn_cache = cc;
    }
    cc->message++;
    return cc;
}

static bool same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Refuses a propertyMapping on an attribute that the fixed default mapping already maps. */
static void check_reserved(struct conn_slot *s)
{
    for (size_t k = 0; k < s->conn.n_properties; k++) {
        if (aw_map_default_path(s->conn.properties[k].attribute)) {
            snprintf(s->detail, sizeof s->detail,
                     "propertyMapping[%zu].map: attribute has a fixed default mapping", k);
            aw_connection_clear(&s->conn);
            s->err = AW_ERR_INVALID;
            return;
        }
    }
}

static char *key_dup(const char *s)
{
    return s ? aw_strdup(s) : NULL;
}

static const struct conn_slot *conn_get(struct conn_cache *cc, const struct aw_event_audience *aud)
{
    const char *l = aw_event_setting_get(aud->settings, aud->n_settings, "listId");
    const char *pm = aw_event_setting_get(aud->settings, aud->n_settings, "propertyMapping");
    const char *cm = aw_event_setting_get(aud->settings, aud->n_settings, "consentMapping");
    for (size_t i = 0; i < cc->n; i++) {
        struct conn_slot *s = &cc->slots[i];
        if (same(s->list_id, l) && same(s->props, pm) && same(s->consents, cm)) {
            s->used = cc->message;
            return s;
        }
    }
    size_t key_len = (l ? strlen(l) : 0) + (pm ? strlen(pm) : 0) + (cm ? strlen(cm) : 0);
    struct conn_slot *s = &cc->scratch;
    if (key_len <= CONN_KEY_MAX) {
        if (cc->n < CONN_CACHE_MAX) {
            s = &cc->slots[cc->n++];
        } else {
            struct conn_slot *lru = NULL;
            for (size_t i = 0; i < cc->n; i++)
                if (cc->slots[i].used != cc->message && (!lru || cc->slots[i].used < lru->used))
                    lru = &cc->slots[i];
            if (lru)
                s = lru;
        }
    }
    conn_slot_clear(s);
    if (s != &cc->scratch) {
        s->list_id = key_dup(l);
        s->props = key_dup(pm);
        s->consents = key_dup(cm);
    }
    s->used = cc->message;
    s->err =
        aw_connection_parse(aud->settings, aud->n_settings, &s->conn, s->detail, sizeof s->detail);
    if (s->err == AW_OK)
        check_reserved(s);
    return s;
}

static char *dup_or_null(struct aw_arena *mem, const char *s)
{
    return s ? aw_arena_strdup(mem, s) : NULL;
}

static enum aw_change_action change_action(enum aw_event_action a)
{
    switch (a) {
    case AW_EVENT_DELETE:
        return AW_CHANGE_DELETE;
    case AW_EVENT_ATTRIBUTE_UPDATE:
        return AW_CHANGE_ATTRIBUTE_UPDATE;
    case AW_EVENT_ADD:
    default:
        return AW_CHANGE_ADD;
    }
}

void aw_map_result_clear(struct aw_map_result *r)
{
    free(r->changes);
    aw_arena_free(r->mem);
    for (size_t i = 0; i < r->n_rejects; i++) {
        free(r->rejects[i].audience_id);
        free(r->rejects[i].detail);
    }
    free(r->rejects);
    memset(r, 0, sizeof *r);
}

enum aw_err aw_map_event(const struct aw_event *ev, const struct aw_account *acct,
                         struct aw_map_result *out)
{
    memset(out, 0, sizeof *out);
    if (!ev || !acct || ev->type != AW_EVENT_MEMBERSHIP)
        return AW_ERR_INVALID;
    size_t changes_cap = 0, rejects_cap = 0;
    struct conn_cache *cache = conn_cache_begin();
    enum aw_err rc = AW_OK;
    struct aw_arena *mem = out->mem = aw_arena_new();
    /* Strings every change of the message (or of a profile) carries are copied once and
     * shared. */
    const char *account_id = aw_arena_strdup(mem, ev->account_id ? ev->account_id : "");
    const char *event_id = aw_arena_strdup(mem, ev->id ? ev->id : "");

    for (size_t pi = 0; pi < ev->n_profiles; pi++) {
        const struct aw_event_profile *p = &ev->profiles[pi];
        if (acct->problem) {
            char detail[96];
            snprintf(detail, sizeof detail, "account setting %s",
                     acct->problem_setting ? acct->problem_setting : "?");
            reject_add(out, &rejects_cap, pi, NULL, acct->problem, detail);
            continue;
        }
        bool any_email = false;
        const char *raw_email = find_raw_identity(p, "email", &any_email);
        if (!raw_email) {
            reject_add(out, &rejects_cap, pi, NULL,
                       any_email ? AW_MAP_HASHED_EMAIL : AW_MAP_MISSING_EMAIL, NULL);
            continue;
        }
        char *email_owned = NULL;
        if (aw_map_email_normalise(raw_email, &email_owned) != AW_OK) {
            reject_add(out, &rejects_cap, pi, NULL, AW_MAP_INVALID_EMAIL, NULL);
            continue;
        }
        char *email = aw_arena_strdup(mem, email_owned);
        free(email_owned);
        char *external_id = dup_or_null(
            mem,
            acct->alternate_identity ? find_raw_identity(p, acct->alternate_identity, NULL) : NULL);
        char phone[AW_PHONE_E164_MAX] = "";
        bool has_phone = false;
        unsigned drops = 0;
        const char *raw_phone = find_raw_identity(
            p, acct->phone_identity ? acct->phone_identity : "mobile_number", NULL);
        if (raw_phone) {
            char region[3] = "";
            bool has_region = profile_region(p, region);
            enum aw_err pe = aw_phone_to_e164(raw_phone, has_region ? region : NULL, phone);
            if (pe == AW_OK) {
                has_phone = true;
            } else if (pe == AW_ERR_INVALID) {
                drops |= AW_CHANGE_DROP_INVALID_PHONE;
            } else {
                rc = AW_ERR_INTERNAL;
                goto done;
            }
        }
        char *phone_e164 = has_phone ? aw_arena_strdup(mem, phone) : NULL;

        /* The last change of this profile whose attributes were mapped (or copied). */
        size_t mapped_from = SIZE_MAX;
        const struct aw_event_audience *mapped_aud = NULL;
        const struct conn_slot *mapped_slot = NULL;
        for (size_t ai = 0; ai < p->n_audiences; ai++) {
            const struct aw_event_audience *aud = &p->audiences[ai];
            const struct conn_slot *slot = conn_get(cache, aud);
            if (slot->err != AW_OK) {
                reject_add(out, &rejects_cap, pi, aud->audience_id, AW_CONNECTION_INVALID,
                           slot->detail);
                continue;
            }
            aw_grow((void **)&out->changes, &changes_cap, out->n_changes + 1, sizeof *out->changes);
            struct aw_change *c = &out->changes[out->n_changes++];
            memset(c, 0, sizeof *c);
            c->account_id = (char *)account_id;
            c->audience_id = aw_arena_strdup(mem, aud->audience_id ? aud->audience_id : "");
            c->audience_name = dup_or_null(mem, aud->audience_name);
            c->list_id = dup_or_null(mem, slot->conn.list_id);
            c->event_id = (char *)event_id;
            c->version_ms = ev->timestamp_ms;
            c->action = change_action(aud->action);
            c->email = email;
            c->phone_e164 = phone_e164;
            c->external_id = external_id;
            c->drops = drops;
            /* delete = removal from the list only: attributes riding along are ignored. The
             * profile's attributes are mapped once: an audience that repeats those of the
             * last mapped one under the same connection settings gets a copy. */
            if (c->action != AW_CHANGE_DELETE) {
                if (mapped_from != SIZE_MAX && mapped_slot == slot && slot != &cache->scratch &&
                    same_attributes(mapped_aud, aud))
                    copy_attributes(&out->changes[mapped_from], c);
                else
                    map_attributes(mem, aud, &slot->conn, c);
            }
            if (c->n_attrs > AW_MAP_ATTRS_MAX) {
                char detail[64];
                snprintf(detail, sizeof detail, "%zu attributes, at most %u", c->n_attrs,
                         AW_MAP_ATTRS_MAX);
                memset(c, 0, sizeof *c); /* what it holds stays in the arena until the end */
                out->n_changes--;
                reject_add(out, &rejects_cap, pi, aud->audience_id, AW_MAP_TOO_MANY_ATTRIBUTES,
                           detail);
                continue;
            }
            map_consents(mem, p, &slot->conn, has_phone, c);
            if (c->action != AW_CHANGE_DELETE) {
                mapped_from = out->n_changes - 1;
                mapped_aud = aud;
                mapped_slot = slot;
            }
        }
    }
done:
    if (rc != AW_OK)
        aw_map_result_clear(out);
    return rc;
}
