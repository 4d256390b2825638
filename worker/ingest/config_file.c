/* account.c -- per-account and per-connection settings (DESIGN.md §2). jansson parses the config
 * file and the JSON-string connection settings; nothing here logs. Error texts name files, JSON
 * pointers and setting names, never values: jansson's own error text quotes the input near the
 * error, which could be an API key, so only its line/column and error code are used. */
#include "worker/ingest/account.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/mem.h"
#include "worker/ingest/event.h"

/* ---------------------------------------------------------------- small helpers */

static const char *setting_find(const struct aw_event_setting *settings, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (settings[i].key && strcmp(settings[i].key, key) == 0)
            return settings[i].value;
    }
    return NULL;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Copies the n bytes at s without leading/trailing whitespace (caller-owned). */
static char *dup_trimmed_n(const char *s, size_t len)
{
    size_t start = 0;
    while (start < len && is_space(s[start]))
        start++;
    while (len > start && is_space(s[len - 1]))
        len--;
    return aw_strndup(s + start, len - start);
}

static char *dup_trimmed(const char *s)
{
    return dup_trimmed_n(s, strlen(s));
}

static bool is_blank(const char *s)
{
    for (; *s; s++) {
        if (!is_space(*s))
            return false;
    }
    return true;
}

/* Wipes a secret before freeing it (keeps keys out of reused heap and core dumps). */
static void free_secret(char *s)
{
    if (!s)
        return;
    volatile char *p = s;
    while (*p)
        *p++ = '\0';
    free(s);
}

/* An API key goes into an HTTP header: printable ASCII without spaces only, non-empty. */
static bool api_key_is_clean(const char *key)
{
    if (!*key)
        return false;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f)
            return false;
    }
    return true;
}

/* Lower-cases value into out dropping ' ', '\t', '_', '-' so that display names and setting
 * names compare equal ("Customer Id" == "customerid", "Phone Number 2" == "phonenumber2").
 * False when it does not fit. */
static bool normalise_choice(const char *value, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = value; *p; p++) {
        if (*p == ' ' || *p == '_' || *p == '-' || *p == '\t')
            continue;
        if (o + 1 >= outlen)
            return false;
        out[o++] = (char)tolower((unsigned char)*p);
    }
    out[o] = '\0';
    return true;
}

/* ---------------------------------------------------------------- choices */

static const char *const k_other_types[] = {"other",  "other2", "other3", "other4", "other5",
                                            "other6", "other7", "other8", "other9", "other10"};

enum aw_err aw_account_parse_alternate(const char *value, const char **identity_type)
{
    char norm[32];
    *identity_type = NULL;
    if (!value)
        return AW_OK;
    if (!normalise_choice(value, norm, sizeof norm))
        return AW_ERR_INVALID;
    if (norm[0] == '\0' || strcmp(norm, "none") == 0)
        return AW_OK;
    if (strcmp(norm, "customer") == 0 || strcmp(norm, "customerid") == 0) {
        *identity_type = "customer";
        return AW_OK;
    }
    const char *rest;
    if (strncmp(norm, "otherid", 7) == 0)
        rest = norm + 7;
    else if (strncmp(norm, "other", 5) == 0)
        rest = norm + 5;
    else
        return AW_ERR_INVALID;
    if (*rest == '\0') {
        *identity_type = k_other_types[0];
        return AW_OK;
    }
    /* "2".."10": no leading zeros, no sign. */
    if (rest[0] < '1' || rest[0] > '9')
        return AW_ERR_INVALID;
    unsigned num = 0;
    for (const char *p = rest; *p; p++) {
        if (*p < '0' || *p > '9' || num > 10)
            return AW_ERR_INVALID;
        num = num * 10u + (unsigned)(*p - '0');
    }
    if (num < 2 || num > 10)
        return AW_ERR_INVALID;
    *identity_type = k_other_types[num - 1];
    return AW_OK;
}

enum aw_err aw_account_parse_phone(const char *value, const char **identity_type)
{
    char norm[32];
    *identity_type = "mobile_number";
    if (!value)
        return AW_OK;
    if (!normalise_choice(value, norm, sizeof norm))
        return AW_ERR_INVALID;
    if (norm[0] == '\0' || strcmp(norm, "mobilenumber") == 0 || strcmp(norm, "mobile") == 0)
        return AW_OK;
    if (strcmp(norm, "phonenumber2") == 0) {
        *identity_type = "phone_number_2";
        return AW_OK;
    }
    if (strcmp(norm, "phonenumber3") == 0) {
        *identity_type = "phone_number_3";
        return AW_OK;
    }
    return AW_ERR_INVALID;
}

/* ---------------------------------------------------------------- config file */

struct config_entry {
    char *account_id;
    char *api_key;       /* NULL = not overridden */
    char *alternate_raw; /* NULL = not overridden; validated at load */
    char *phone_raw;     /* NULL = not overridden; validated at load */
};

struct aw_account_config {
    struct config_entry *entries; /* sorted by account_id */
    size_t n;
};

/* Collects problems, one per line, into errbuf (truncated with "..." when full). */
struct problems {
    char *buf;
    size_t len;
    size_t used;
    size_t count;
    bool truncated;
};

static void problem_add(struct problems *pr, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void problem_add(struct problems *pr, const char *fmt, ...)
{
    pr->count++;
    if (!pr->buf || pr->len == 0 || pr->truncated)
        return;
    size_t room = pr->len - pr->used;
    if (pr->used > 0) {
        if (room < 2) {
            pr->truncated = true;
            return;
        }
        pr->buf[pr->used++] = '\n';
        pr->buf[pr->used] = '\0';
        room--;
    }
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(pr->buf + pr->used, room, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= room) {
        pr->truncated = true;
        pr->used = pr->len - 1;
        if (pr->len >= 4)
            memcpy(pr->buf + pr->len - 4, "...", 4);
        return;
    }
    pr->used += (size_t)w;
}

/* Appends the RFC 6901 escaped form of key to a pointer buffer. */
static void pointer_escape(char *out, size_t outlen, const char *key)
{
    size_t o = 0;
    for (const char *p = key; *p && o + 3 < outlen; p++) {
        if (*p == '~') {
            out[o++] = '~';
            out[o++] = '0';
        } else if (*p == '/') {
            out[o++] = '~';
            out[o++] = '1';
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

static const char *json_error_name(const json_error_t *err)
{
    switch (json_error_code(err)) {
    case json_error_invalid_utf8:
        return "invalid UTF-8";
    case json_error_premature_end_of_input:
        return "premature end of input";
    case json_error_end_of_input_expected:
        return "end of input expected";
    case json_error_null_character:
    case json_error_null_byte_in_key:
        return "NUL character";
    case json_error_duplicate_key:
        return "duplicate key";
    case json_error_numeric_overflow:
        return "numeric overflow";
    case json_error_stack_overflow:
        return "nesting too deep";
    default:
        return "invalid JSON";
    }
}

/* Reads a whole (small) file. Returns NULL and sets *why on failure (static text). */
static char *read_small_file(const char *path, size_t max_bytes, size_t *len_out, const char **why)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *why = strerror(errno);
        return NULL;
    }
    struct aw_buf b;
    aw_buf_init(&b, max_bytes);
    char chunk[4096];
    size_t n;
    bool ok = true;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (aw_buf_append(&b, chunk, n) != AW_OK) {
            *why = "file too large";
            ok = false;
            break;
        }
    }
    if (ok && ferror(f)) {
        *why = "read error";
        ok = false;
    }
    fclose(f);
    if (!ok) {
        if (b.data)
            memset(b.data, 0, b.cap);
        aw_buf_free(&b);
        return NULL;
    }
    if (aw_buf_append(&b, "", 0) != AW_OK) { /* ensures a NUL-terminated (possibly empty) buffer */
        aw_buf_free(&b);
        *why = "file too large";
        return NULL;
    }
    *len_out = b.len;
    return aw_buf_take(&b);
}

static void entry_clear(struct config_entry *e)
{
    free(e->account_id);
    free_secret(e->api_key);
    free(e->alternate_raw);
    free(e->phone_raw);
    memset(e, 0, sizeof *e);
}

void aw_account_config_free(struct aw_account_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n; i++)
        entry_clear(&cfg->entries[i]);
    free(cfg->entries);
    free(cfg);
}

size_t aw_account_config_count(const struct aw_account_config *cfg)
{
    return cfg ? cfg->n : 0;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct config_entry *)a)->account_id,
                  ((const struct config_entry *)b)->account_id);
}

static const char *default_getenv(const char *name, void *ctx)
{
    (void)ctx;
    return getenv(name);
}

/* A relative apiKeyFile is read relative to the config file's directory (a mounted secret
 * usually sits beside the config); caller-owned result. */
static char *resolve_relative(const char *config_path, const char *file)
{
    const char *slash = strrchr(config_path, '/');
    if (file[0] == '/' || !slash)
        return aw_strdup(file);
    size_t dir_len = (size_t)(slash - config_path) + 1;
    size_t n = strlen(file);
    char *out = aw_malloc(dir_len + n + 1);
    memcpy(out, config_path, dir_len);
    memcpy(out + dir_len, file, n + 1);
    return out;
}

/* Parses one account object into *e; problems go to pr. */
static void parse_account(const char *path, const char *account_id, json_t *obj,
                          aw_account_getenv_fn getenv_fn, void *ctx, struct config_entry *e,
                          struct problems *pr)
{
    char ptr[512];
    pointer_escape(ptr, sizeof ptr, account_id);
    e->account_id = aw_strdup(account_id);
    if (account_id[0] == '\0')
        problem_add(pr, "%s: /: account id must not be empty", path);
    if (!json_is_object(obj)) {
        problem_add(pr, "%s: /%s: must be an object", path, ptr);
        return;
    }
    int key_sources = 0;
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        char kp[256];
        pointer_escape(kp, sizeof kp, key);
        bool known = strcmp(key, "apiKey") == 0 || strcmp(key, "apiKeyEnv") == 0 ||
                     strcmp(key, "apiKeyFile") == 0 || strcmp(key, "alternateIdentifier") == 0 ||
                     strcmp(key, "phoneIdentifier") == 0;
        if (!known) {
            problem_add(pr,
                        "%s: /%s/%s: unknown key (expected apiKey, apiKeyEnv, apiKeyFile, "
                        "alternateIdentifier, phoneIdentifier)",
                        path, ptr, kp);
            continue;
        }
        if (!json_is_string(v)) {
            problem_add(pr, "%s: /%s/%s: must be a string", path, ptr, kp);
            continue;
        }
        const char *s = json_string_value(v);
        if (strlen(s) != json_string_length(v)) {
            problem_add(pr, "%s: /%s/%s: must not contain NUL", path, ptr, kp);
            continue;
        }
        if (strcmp(key, "apiKey") == 0 || strcmp(key, "apiKeyEnv") == 0 ||
            strcmp(key, "apiKeyFile") == 0) {
            key_sources++;
            if (key_sources > 1) {
                problem_add(pr, "%s: /%s/%s: apiKey, apiKeyEnv and apiKeyFile are exclusive", path,
                            ptr, kp);
                continue;
            }
            char *secret = NULL;
            if (strcmp(key, "apiKey") == 0) {
                secret = dup_trimmed(s);
            } else if (strcmp(key, "apiKeyEnv") == 0) {
                if (s[0] == '\0') {
                    problem_add(pr, "%s: /%s/%s: must name an environment variable", path, ptr, kp);
                    continue;
                }
                const char *ev = getenv_fn(s, ctx);
                if (!ev || is_blank(ev)) {
                    /* The variable's name is not secret; its value would be. */
                    problem_add(pr, "%s: /%s/%s: environment variable %s is not set or empty", path,
                                ptr, kp, s);
                    continue;
                }
                secret = dup_trimmed(ev);
            } else {
                if (s[0] == '\0') {
                    problem_add(pr, "%s: /%s/%s: must name a file", path, ptr, kp);
                    continue;
                }
                size_t len = 0;
                const char *why = NULL;
                char *key_path = resolve_relative(path, s);
                char *content =
                    read_small_file(key_path, AW_ACCOUNT_KEY_FILE_MAX_BYTES, &len, &why);
                free(key_path);
                if (!content) {
                    problem_add(pr, "%s: /%s/%s: cannot read key file %s: %s", path, ptr, kp, s,
                                why);
                    continue;
                }
                if (strlen(content) != len) {
                    free_secret(content);
                    problem_add(pr, "%s: /%s/%s: key file %s contains NUL", path, ptr, kp, s);
                    continue;
                }
                secret = dup_trimmed_n(content, len);
                free_secret(content);
            }
            if (!api_key_is_clean(secret)) {
                problem_add(pr,
                            "%s: /%s/%s: API key is empty or contains spaces or control "
                            "characters",
                            path, ptr, kp);
                free_secret(secret);
                continue;
            }
            e->api_key = secret;
        } else if (strcmp(key, "alternateIdentifier") == 0) {
            const char *type;
            if (aw_account_parse_alternate(s, &type) != AW_OK) {
                problem_add(pr,
                            "%s: /%s/%s: unknown value (expected None, customer, other, "
                            "other2 .. other10)",
                            path, ptr, kp);
                continue;
            }
            e->alternate_raw = aw_strdup(s);
        } else {
            const char *type;
            if (aw_account_parse_phone(s, &type) != AW_OK) {
                problem_add(pr,
                            "%s: /%s/%s: unknown value (expected mobile_number, "
                            "phone_number_2, phone_number_3)",
                            path, ptr, kp);
                continue;
            }
            e->phone_raw = aw_strdup(s);
        }
    }
}

enum aw_err aw_account_config_load(const char *path, aw_account_getenv_fn getenv_fn, void *ctx,
                                   struct aw_account_config **out, char *errbuf, size_t errlen)
{
    struct problems pr = {errbuf, errlen, 0, 0, false};
    if (errbuf && errlen)
        errbuf[0] = '\0';
    *out = NULL;
    if (!getenv_fn)
        getenv_fn = default_getenv;
    if (!path || !*path) {
        problem_add(&pr, "(config): no path given");
        return AW_ERR_CONFIG;
    }
    size_t len = 0;
    const char *why = NULL;
    char *text = read_small_file(path, AW_ACCOUNT_CONFIG_MAX_BYTES, &len, &why);
    if (!text) {
        problem_add(&pr, "%s: cannot read: %s", path, why);
        return AW_ERR_CONFIG;
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    memset(text, 0, len);
    free(text);
    if (!root) {
        problem_add(&pr, "%s:%d:%d: %s", path, jerr.line, jerr.column, json_error_name(&jerr));
        return AW_ERR_CONFIG;
    }
    if (!json_is_object(root)) {
        problem_add(&pr, "%s: : must be an object keyed by account id", path);
        json_decref(root);
        return AW_ERR_CONFIG;
    }
    struct aw_account_config *cfg = aw_calloc(1, sizeof *cfg);
    size_t n = json_object_size(root);
    cfg->entries = aw_calloc(n ? n : 1, sizeof *cfg->entries);
    const char *account_id;
    json_t *obj;
    json_object_foreach(root, account_id, obj)
    {
        parse_account(path, account_id, obj, getenv_fn, ctx, &cfg->entries[cfg->n], &pr);
        cfg->n++;
    }
    json_decref(root);
    if (pr.count > 0) {
        aw_account_config_free(cfg);
        return AW_ERR_CONFIG;
    }
    qsort(cfg->entries, cfg->n, sizeof *cfg->entries, entry_cmp);
    *out = cfg;
    return AW_OK;
}

static const struct config_entry *config_find(const struct aw_account_config *cfg, const char *id)
{
    if (!cfg || !id || cfg->n == 0)
        return NULL;
    struct config_entry key = {.account_id = (char *)(uintptr_t)id};
    return bsearch(&key, cfg->entries, cfg->n, sizeof *cfg->entries, entry_cmp);
}

/* ---------------------------------------------------------------- resolve */

void aw_account_clear(struct aw_account *a)
{
    free(a->account_id);
    free_secret(a->api_key);
    memset(a, 0, sizeof *a);
}

enum aw_err aw_account_resolve(const struct aw_account_config *cfg, const char *account_id,
                               const struct aw_event_setting *settings, size_t n,
                               struct aw_account *out)
{
    memset(out, 0, sizeof *out);
    out->account_id = aw_strdup(account_id ? account_id : "");
    out->phone_identity = "mobile_number";
    const struct config_entry *e = config_find(cfg, account_id);

    const char *key = (e && e->api_key) ? e->api_key : setting_find(settings, n, "apiKey");
    const char *alt = (e && e->alternate_raw) ? e->alternate_raw
                                              : setting_find(settings, n, "alternateIdentifier");
    const char *phone =
        (e && e->phone_raw) ? e->phone_raw : setting_find(settings, n, "phoneIdentifier");

    if (key && !is_blank(key)) {
        out->api_key = dup_trimmed(key);
        if (!api_key_is_clean(out->api_key)) {
            out->problem = AW_ACCOUNT_INVALID_SETTINGS;
            out->problem_setting = "apiKey";
        }
    } else {
        out->problem = AW_ACCOUNT_MISSING_API_KEY;
        out->problem_setting = "apiKey";
    }
    if (aw_account_parse_alternate(alt, &out->alternate_identity) != AW_OK && !out->problem) {
        out->problem = AW_ACCOUNT_INVALID_SETTINGS;
        out->problem_setting = "alternateIdentifier";
    }
    if (aw_account_parse_phone(phone, &out->phone_identity) != AW_OK && !out->problem) {
        out->problem = AW_ACCOUNT_INVALID_SETTINGS;
        out->problem_setting = "phoneIdentifier";
    }
    return out->problem ? AW_ERR_INVALID : AW_OK;
}

/* ---------------------------------------------------------------- connection */

static const char *const k_targets[AW_TARGET_COUNT] = {
    [AW_TARGET_ADDRESS2] = "$address2",         [AW_TARGET_IMAGE] = "$image",
    [AW_TARGET_LATITUDE] = "$latitude",         [AW_TARGET_LONGITUDE] = "$longitude",
    [AW_TARGET_ORGANIZATION] = "$organization", [AW_TARGET_SOURCE] = "$source",
    [AW_TARGET_TIMEZONE] = "$timezone",         [AW_TARGET_TITLE] = "$title",
};

const char *aw_account_target_str(enum aw_account_target t)
{
    if ((int)t < 0 || t >= AW_TARGET_COUNT)
        return "";
    return k_targets[t];
}

void aw_account_connection_clear(struct aw_account_connection *c)
{
    free(c->list_id);
    for (size_t i = 0; i < c->n_properties; i++)
        free(c->properties[i].attribute);
    free(c->properties);
    for (size_t i = 0; i < c->n_consents; i++)
        free(c->consents[i].purpose);
    free(c->consents);
    memset(c, 0, sizeof *c);
}

static void set_detail(char *detail, size_t detail_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_detail(char *detail, size_t detail_len, const char *fmt, ...)
{
    if (!detail || detail_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(detail, detail_len, fmt, ap);
    va_end(ap);
}

static bool list_id_ok(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 64)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* Parses a mapping setting (JSON array of {map, value}) and calls take() for each entry.
 * Returns false with detail set on the first problem. */
struct mapping_item {
    const char *map;
    const char *value;
};

static bool parse_mapping(const char *name, const char *text, struct mapping_item **items,
                          size_t *n_items, json_t **root_out, char *detail, size_t detail_len)
{
    *items = NULL;
    *n_items = 0;
    *root_out = NULL;
    if (!text || is_blank(text))
        return true;
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root) {
        set_detail(detail, detail_len, "%s: not valid JSON (column %d: %s)", name, jerr.column,
                   json_error_name(&jerr));
        return false;
    }
    if (!json_is_array(root)) {
        set_detail(detail, detail_len, "%s: must be a JSON array", name);
        json_decref(root);
        return false;
    }
    size_t n = json_array_size(root);
    struct mapping_item *arr = aw_calloc(n ? n : 1, sizeof *arr);
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(root, i);
        if (!json_is_object(it)) {
            set_detail(detail, detail_len, "%s[%zu]: must be an object", name, i);
            goto fail;
        }
        json_t *m = json_object_get(it, "map");
        json_t *v = json_object_get(it, "value");
        if (!json_is_string(m) || json_string_length(m) == 0 ||
            strlen(json_string_value(m)) != json_string_length(m)) {
            set_detail(detail, detail_len, "%s[%zu].map: must be a non-empty string", name, i);
            goto fail;
        }
        if (!json_is_string(v)) {
            set_detail(detail, detail_len, "%s[%zu].value: must be a string", name, i);
            goto fail;
        }
        arr[i].map = json_string_value(m);
        arr[i].value = json_string_value(v);
    }
    *items = arr;
    *n_items = n;
    *root_out = root;
    return true;
fail:
    free(arr);
    json_decref(root);
    return false;
}

enum aw_err aw_account_connection_parse(const struct aw_event_setting *settings, size_t n,
                                        struct aw_account_connection *out, char *detail,
                                        size_t detail_len)
{
    memset(out, 0, sizeof *out);
    if (detail && detail_len)
        detail[0] = '\0';

    const char *list_id = setting_find(settings, n, "listId");
    if (list_id && !is_blank(list_id)) {
        char *trimmed = dup_trimmed(list_id);
        if (!list_id_ok(trimmed)) {
            free(trimmed);
            set_detail(detail, detail_len, "listId: not a Klaviyo list id");
            return AW_ERR_INVALID;
        }
        out->list_id = trimmed;
    }

    struct mapping_item *items = NULL;
    size_t n_items = 0;
    json_t *root = NULL;
    if (!parse_mapping("propertyMapping", setting_find(settings, n, "propertyMapping"), &items,
                       &n_items, &root, detail, detail_len))
        goto fail;
    if (n_items) {
        out->properties = aw_calloc(n_items, sizeof *out->properties);
        for (size_t i = 0; i < n_items; i++) {
            int t = -1;
            for (int k = 0; k < AW_TARGET_COUNT; k++) {
                if (strcmp(items[i].value, k_targets[k]) == 0)
                    t = k;
            }
            if (t < 0) {
                set_detail(detail, detail_len,
                           "propertyMapping[%zu].value: unknown target (allowed: $address2 "
                           "$image $latitude $longitude $organization $source $timezone $title)",
                           i);
                goto fail;
            }
            out->properties[i].attribute = aw_strdup(items[i].map);
            out->properties[i].target = (enum aw_account_target)t;
            out->n_properties++;
        }
    }
    free(items);
    items = NULL;
    json_decref(root);
    root = NULL;

    if (!parse_mapping("consentMapping", setting_find(settings, n, "consentMapping"), &items,
                       &n_items, &root, detail, detail_len))
        goto fail;
    if (n_items) {
        out->consents = aw_calloc(n_items, sizeof *out->consents);
        for (size_t i = 0; i < n_items; i++) {
            enum aw_change_channel ch;
            if (strcmp(items[i].value, "email_marketing") == 0) {
                ch = AW_CHANNEL_EMAIL;
            } else if (strcmp(items[i].value, "sms_marketing") == 0) {
                ch = AW_CHANNEL_SMS;
            } else {
                set_detail(detail, detail_len,
                           "consentMapping[%zu].value: unknown channel (allowed: "
                           "email_marketing sms_marketing)",
                           i);
                goto fail;
            }
            out->consents[i].purpose = aw_strdup(items[i].map);
            out->consents[i].channel = ch;
            out->n_consents++;
        }
    }
    free(items);
    json_decref(root);
    return AW_OK;

fail:
    free(items);
    json_decref(root);
    aw_account_connection_clear(out);
    return AW_ERR_INVALID;
}
