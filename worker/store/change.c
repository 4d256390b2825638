/* change.c -- struct aw_change helpers and the pending-change codec: records of the store
 * (flat field lists, names from worker/store/fields.def) into changes. Records come from Redis,
 * so every field is checked: unknown names, malformed versions and consents are refused. */
#include "worker/store/change.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "worker/store/names.h"

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
    dst->ids_changed = src->ids_changed;
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

/* ---- Codec --------------------------------------------------------------------------------- */

bool aw_change_consent_format(const struct aw_change_consent *c, char *buf, size_t len)
{
    /* "%llu:%d" without printf: it runs for every change the worker writes */
    uint64_t ts = c->has_consented_at ? c->consented_at_unix_ms : 0;
    char digits[20];
    size_t nd = 0;
    do {
        digits[nd++] = (char)('0' + ts % 10);
        ts /= 10;
    } while (ts > 0);
    if (nd + 3 > len)
        return false;
    for (size_t i = 0; i < nd; i++)
        buf[i] = digits[nd - 1 - i];
    buf[nd] = ':';
    buf[nd + 1] = c->subscribe ? '1' : '0';
    buf[nd + 2] = '\0';
    return true;
}

/* Decimal digits s[0..n) (1..20 of them) into *out. */
static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool has_nul(const char *s, size_t n)
{
    return memchr(s, '\0', n) != NULL;
}

/* "<ts>:<id>" into version_ms and event_id. */
static bool decode_version(const struct aw_change_field *f, struct aw_change *out)
{
    const char *colon = memchr(f->value, ':', f->value_len);
    if (!colon || has_nul(f->value, f->value_len) ||
        !parse_u64(f->value, (size_t)(colon - f->value), &out->version_ms))
        return false;
    free(out->event_id);
    out->event_id = aw_strndup(colon + 1, f->value_len - (size_t)(colon - f->value) - 1);
    return true;
}

/* "c:<channel>" = "<ts>:<0|1>". */
static bool decode_consent(const char *channel, size_t channel_len, const struct aw_change_field *f,
                           struct aw_change *out)
{
    struct aw_change_consent c;
    memset(&c, 0, sizeof c);
    if (channel_len == 5 && memcmp(channel, "email", 5) == 0)
        c.channel = AW_CHANNEL_EMAIL;
    else if (channel_len == 3 && memcmp(channel, "sms", 3) == 0)
        c.channel = AW_CHANNEL_SMS;
    else
        return false;
    const char *v = f->value;
    size_t n = f->value_len;
    uint64_t ts;
    if (n < 3 || v[n - 2] != ':' || (v[n - 1] != '0' && v[n - 1] != '1') ||
        !parse_u64(v, n - 2, &ts))
        return false;
    for (size_t i = 0; i < out->n_consents; i++)
        if (out->consents[i].channel == c.channel)
            return false; /* one per channel */
    c.subscribe = v[n - 1] == '1';
    c.has_consented_at = ts > 0;
    c.consented_at_unix_ms = ts;
    out->consents = aw_realloc(out->consents, (out->n_consents + 1) * sizeof *out->consents);
    out->consents[out->n_consents++] = c;
    return true;
}

/* "a:<path>" (changed) or "i:<path>" (identity, unchanged). */
static bool decode_path(const char *path, size_t path_len, bool changed,
                        const struct aw_change_field *f, struct aw_change *out)
{
    if (path_len == 0 || has_nul(path, path_len) || has_nul(f->value, f->value_len))
        return false;
    static const enum aw_store_name special[3] = {AW_F_PATH_PHONE, AW_F_PATH_EXTERNAL_ID,
                                                  AW_F_PATH_SOURCE};
    char **slot[3] = {&out->phone_e164, &out->external_id, &out->custom_source};
    for (int k = 0; k < 3; k++) {
        const char *name = aw_store_name(special[k]);
        if (strlen(name) == path_len && memcmp(name, path, path_len) == 0) {
            out->ids_changed = out->ids_changed || changed;
            free(*slot[k]);
            *slot[k] = aw_strndup(f->value, f->value_len);
            return true;
        }
    }
    if (!changed)
        return false; /* identities are only the special paths */
    out->attrs = aw_realloc(out->attrs, (out->n_attrs + 1) * sizeof *out->attrs);
    out->attrs[out->n_attrs].path = aw_strndup(path, path_len);
    out->attrs[out->n_attrs].value_json = f->value_len == 4 && memcmp(f->value, "null", 4) == 0
                                              ? NULL
                                              : aw_strndup(f->value, f->value_len);
    out->n_attrs++;
    return true;
}

static int attr_cmp(const void *a, const void *b)
{
    return strcmp(((const struct aw_change_attr *)a)->path,
                  ((const struct aw_change_attr *)b)->path);
}

enum aw_err aw_change_record_decode(const char *account_id, const char *audience_id,
                                    const char *email, const struct aw_change_field *fields,
                                    size_t n, struct aw_change *out)
{
    memset(out, 0, sizeof *out);
    out->account_id = aw_strdup(account_id);
    out->audience_id = audience_id ? aw_strdup(audience_id) : NULL;
    out->email = aw_strdup(email);
    out->action = AW_CHANGE_ATTRIBUTE_UPDATE;
    bool have_action = false, ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        const struct aw_change_field *f = &fields[i];
        const char *name = f->name;
        size_t len = f->name_len;
        size_t k;
        if (len == strlen(aw_store_name(AW_F_REC_ACTION)) &&
            aw_store_name_is_prefix(AW_F_REC_ACTION, name, len)) {
            have_action = true;
            if (f->value_len == 3 && memcmp(f->value, "add", 3) == 0)
                out->action = AW_CHANGE_ADD;
            else if (f->value_len == 6 && memcmp(f->value, "delete", 6) == 0)
                out->action = AW_CHANGE_DELETE;
            else
                ok = false;
        } else if (len == strlen(aw_store_name(AW_F_REC_VERSION)) &&
                   aw_store_name_is_prefix(AW_F_REC_VERSION, name, len)) {
            ok = decode_version(f, out);
        } else if (aw_store_name_is_prefix(AW_F_REC_ATTR, name, len)) {
            k = strlen(aw_store_name(AW_F_REC_ATTR));
            ok = decode_path(name + k, len - k, true, f, out);
        } else if (aw_store_name_is_prefix(AW_F_REC_IDENTITY, name, len)) {
            k = strlen(aw_store_name(AW_F_REC_IDENTITY));
            ok = decode_path(name + k, len - k, false, f, out);
        } else if (aw_store_name_is_prefix(AW_F_REC_CONSENT, name, len)) {
            k = strlen(aw_store_name(AW_F_REC_CONSENT));
            ok = decode_consent(name + k, len - k, f, out);
        } else {
            ok = false;
        }
    }
    /* a membership record is exactly an action and its version */
    if (ok && have_action && (out->n_attrs || out->n_consents || out->phone_e164))
        ok = false;
    if (!ok) {
        aw_change_clear(out);
        return AW_ERR_INVALID;
    }
    if (out->n_attrs > 1)
        qsort(out->attrs, out->n_attrs, sizeof *out->attrs, attr_cmp);
    for (size_t i = 1; i < out->n_attrs; i++)
        if (strcmp(out->attrs[i - 1].path, out->attrs[i].path) == 0) {
            aw_change_clear(out);
            return AW_ERR_INVALID;
        }
    return AW_OK;
}
