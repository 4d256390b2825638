/* connection.c -- an audience's connection settings (docs/design.md §2). The two mapping settings
 * are JSON text inside a string setting; jansson parses them. Details never quote the text:
 * jansson's own error message would (see aw_event_json_error_str). */
#include "worker/ingest/connection.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/mem.h"
#include "common/text.h"
#include "worker/ingest/event.h"

static const char *const k_targets[AW_TARGET_COUNT] = {
    [AW_TARGET_ADDRESS2] = "$address2",         [AW_TARGET_IMAGE] = "$image",
    [AW_TARGET_LATITUDE] = "$latitude",         [AW_TARGET_LONGITUDE] = "$longitude",
    [AW_TARGET_ORGANIZATION] = "$organization", [AW_TARGET_SOURCE] = "$source",
    [AW_TARGET_TIMEZONE] = "$timezone",         [AW_TARGET_TITLE] = "$title",
};

const char *aw_connection_target_str(enum aw_connection_target t)
{
    if ((int)t < 0 || t >= AW_TARGET_COUNT)
        return "";
    return k_targets[t];
}

void aw_connection_clear(struct aw_connection *c)
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

static const char *const k_channels[] = {
    [AW_CHANNEL_EMAIL] = "email_marketing", [AW_CHANNEL_SMS] = "sms_marketing"};

/* A mapping setting: a JSON array of {map, value} whose value is one of values[]. */
struct mapping_kind {
    const char *setting;       /* "propertyMapping" */
    const char *what;          /* what a value names, for details: "target" */
    const char *const *values; /* the allowed values, indexed by the enum they stand for */
    size_t n_values;
};

static const struct mapping_kind k_property_mapping = {"propertyMapping", "target", k_targets,
                                                       AW_TARGET_COUNT};
static const struct mapping_kind k_consent_mapping = {"consentMapping", "channel", k_channels,
                                                      sizeof k_channels / sizeof k_channels[0]};

/* One {map, value} entry of a mapping setting. */
struct mapping_item {
    const char *map; /* borrowed from the parsed JSON */
    int value;       /* index into the kind's values */
};

/* Fails with "<setting>[i].value: unknown <what> (allowed: ...)". */
static bool unknown_value(const struct mapping_kind *kind, size_t i, char *detail,
                          size_t detail_len)
{
    char allowed[160] = "";
    size_t used = 0;
    for (size_t k = 0; k < kind->n_values && used < sizeof allowed; k++) {
        int w =
            snprintf(allowed + used, sizeof allowed - used, "%s%s", k ? " " : "", kind->values[k]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    set_detail(detail, detail_len, "%s[%zu].value: unknown %s (allowed: %s)", kind->setting, i,
               kind->what, allowed);
    return false;
}

/* Parses the setting of that kind from settings (JSON array of {map, value}). On success *items
 * (caller frees) point into *root_out (caller decrefs); absent or blank text gives no items and
 * no root. Returns false with detail set on the first problem. */
static bool parse_mapping(const struct mapping_kind *kind, const struct aw_event_setting *settings,
                          size_t n_settings, struct mapping_item **items, size_t *n_items,
                          json_t **root_out, char *detail, size_t detail_len)
{
    const char *name = kind->setting;
    const char *text = aw_event_setting_get(settings, n_settings, name);
    *items = NULL;
    *n_items = 0;
    *root_out = NULL;
    if (!text || aw_text_is_blank(text))
        return true;
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root) {
        set_detail(detail, detail_len, "%s: not valid JSON (column %d: %s)", name, jerr.column,
                   aw_event_json_error_str(json_error_code(&jerr)));
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
        arr[i].value = -1;
        for (size_t k = 0; k < kind->n_values; k++) {
            if (strcmp(json_string_value(v), kind->values[k]) == 0)
                arr[i].value = (int)k;
        }
        if (arr[i].value < 0) {
            unknown_value(kind, i, detail, detail_len);
            goto fail;
        }
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

enum aw_err aw_connection_parse(const struct aw_event_setting *settings, size_t n,
                                struct aw_connection *out, char *detail, size_t detail_len)
{
    memset(out, 0, sizeof *out);
    if (detail && detail_len)
        detail[0] = '\0';

    const char *list_id = aw_event_setting_get(settings, n, "listId");
    if (list_id && !aw_text_is_blank(list_id)) {
        char *trimmed = aw_text_trim_dup(list_id, strlen(list_id));
        if (!list_id_ok(trimmed)) {
            free(trimmed);
            set_detail(detail, detail_len, "listId: not a Klaviyo list id");
            return AW_ERR_INVALID;
        }
        out->list_id = trimmed;
    }
    struct mapping_item *props = NULL, *consents = NULL;
    size_t n_props = 0, n_consents = 0;
    json_t *props_root = NULL, *consents_root = NULL;
    enum aw_err rc = AW_ERR_INVALID;
    if (!parse_mapping(&k_property_mapping, settings, n, &props, &n_props, &props_root, detail,
                       detail_len) ||
        !parse_mapping(&k_consent_mapping, settings, n, &consents, &n_consents, &consents_root,
                       detail, detail_len))
        goto out;
    if (n_props) {
        out->properties = aw_calloc(n_props, sizeof *out->properties);
        out->n_properties = n_props;
        for (size_t i = 0; i < n_props; i++) {
            out->properties[i].attribute = aw_strdup(props[i].map);
            out->properties[i].target = (enum aw_connection_target)props[i].value;
        }
    }
    if (n_consents) {
        out->consents = aw_calloc(n_consents, sizeof *out->consents);
        out->n_consents = n_consents;
        for (size_t i = 0; i < n_consents; i++) {
            out->consents[i].purpose = aw_strdup(consents[i].map);
            out->consents[i].channel = (enum aw_change_channel)consents[i].value;
        }
    }
    rc = AW_OK;
out:
    free(props);
    free(consents);
    json_decref(props_root);
    json_decref(consents_root);
    if (rc != AW_OK)
        aw_connection_clear(out);
    return rc;
}
