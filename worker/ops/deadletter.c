/* deadletter.c -- dead-letter envelopes (see deadletter.h), built as jansson values in one
 * pass: the envelope head is shared by both kinds, the profile is either the received JSON value
 * itself or the pending change turned into JSON field by field (never encoded to text and
 * parsed back). */
#include "worker/ops/deadletter.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/store/change.h"

/* jansson prints reals with 17 digits, as the event decoder wrote attribute values: a value
 * goes through parse and print unchanged. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))

/* Sets key to a string (NULL -> null). False when s is not valid UTF-8 (jansson refuses it). */
static bool set_str(json_t *o, const char *key, const char *s)
{
    json_t *v = s ? json_string(s) : json_null();
    return v && json_object_set_new(o, key, v) == 0;
}

/* Sets key to s only when s is not NULL. */
static bool set_opt_str(json_t *o, const char *key, const char *s)
{
    return !s || set_str(o, key, s);
}

/* {"type","stage","reason","detail"}: the head every envelope starts with. */
static json_t *envelope_new(const char *stage, const char *reason, const char *detail)
{
    json_t *env = json_object();
    if (!env)
        return NULL;
    bool ok = set_str(env, "type", "aw.dead_letter") && set_str(env, "stage", stage) &&
              set_str(env, "reason", reason) && set_str(env, "detail", detail);
    if (!ok) {
        json_decref(env);
        return NULL;
    }
    return env;
}

/* Prints env (consumed) into *out. */
static enum aw_err dump(json_t *env, char **out)
{
    *out = json_dumps(env, DUMP_FLAGS);
    json_decref(env);
    return *out ? AW_OK : AW_ERR_INTERNAL;
}

enum aw_err aw_deadletter_profile(const char *payload, size_t len, size_t profile_index,
                                  const char *audience_id, const char *reason, const char *detail,
                                  char **out)
{
    *out = NULL;
    json_t *root = json_loadb(payload, len, 0, NULL);
    json_t *profile = json_array_get(json_object_get(root, "user_profiles"), profile_index);
    if (!json_is_object(profile)) {
        json_decref(root);
        return AW_ERR_INVALID;
    }
    json_t *env = envelope_new("map", reason, detail);
    bool ok = env != NULL;
    /* Values of the message as received (json_object_set adds a reference to each). */
    json_t *id = json_object_get(root, "id");
    json_t *ts = json_object_get(root, "timestamp_ms");
    json_t *acct = json_object_get(json_object_get(root, "account"), "account_id");
    ok = ok && json_object_set(env, "id", id ? id : json_null()) == 0;
    ok = ok && json_object_set(env, "timestamp_ms", ts ? ts : json_null()) == 0;
    ok = ok && json_object_set(env, "account_id", acct ? acct : json_null()) == 0;
    ok = ok && set_str(env, "audience_id", audience_id);
    ok = ok && json_object_set(env, "profile", profile) == 0;
    json_decref(root);
    if (!ok) {
        json_decref(env);
        return AW_ERR_INVALID;
    }
    return dump(env, out);
}

/* An account id as the message carried it: a JSON integer when it is one (the decoder keeps
 * it as decimal text), else the text. */
static json_t *account_id_value(const char *s)
{
    if (!s)
        return json_null();
    size_t n = strlen(s);
    bool digits = n > 0 && n <= 18 && (s[0] != '0' || n == 1);
    for (size_t i = 0; digits && i < n; i++)
        digits = s[i] >= '0' && s[i] <= '9';
    return digits ? json_integer((json_int_t)strtoll(s, NULL, 10)) : json_string(s);
}

/* An attribute value: the JSON value its text holds (null = unset), or the text itself when it
 * is not JSON, so nothing is lost. */
static json_t *attr_value(const char *value_json)
{
    if (!value_json)
        return json_null();
    json_t *v = json_loads(value_json, JSON_DECODE_ANY, NULL);
    return v ? v : json_string(value_json);
}

/* The change as a JSON object:
 * {"email","phone_e164"?,"external_id"?,"action","audience_name"?,"list_id"?,
 *  "attributes":{path: value|null},"consents":[{"channel","subscribe","consented_at_ms"?}],
 *  "custom_source"?,"drops":[name...]}. NULL when a value is not valid UTF-8. */
static json_t *change_value(const struct aw_change *c)
{
    json_t *o = json_object();
    json_t *attrs = json_object();
    json_t *consents = json_array();
    json_t *drops = json_array();
    bool ok = o && attrs && consents && drops;
    ok = ok && set_str(o, "email", c->email) && set_opt_str(o, "phone_e164", c->phone_e164) &&
         set_opt_str(o, "external_id", c->external_id) &&
         set_str(o, "action", aw_change_action_str(c->action)) &&
         set_opt_str(o, "audience_name", c->audience_name) && set_opt_str(o, "list_id", c->list_id);
    for (size_t i = 0; ok && i < c->n_attrs; i++) {
        json_t *v = c->attrs[i].path ? attr_value(c->attrs[i].value_json) : NULL;
        ok = v && json_object_set_new(attrs, c->attrs[i].path, v) == 0;
    }
    for (size_t i = 0; ok && i < c->n_consents; i++) {
        const struct aw_change_consent *cs = &c->consents[i];
        json_t *e = json_object();
        ok = e && json_array_append_new(consents, e) == 0;
        ok = ok && set_str(e, "channel", aw_change_channel_str(cs->channel)) &&
             json_object_set_new(e, "subscribe", json_boolean(cs->subscribe)) == 0;
        if (ok && cs->has_consented_at)
            ok = json_object_set_new(e, "consented_at_ms",
                                     json_integer((json_int_t)cs->consented_at_unix_ms)) == 0;
    }
    ok = ok && set_opt_str(o, "custom_source", c->custom_source);
    for (unsigned bit = 1; ok && bit != 0 && bit <= c->drops; bit <<= 1)
        if (c->drops & bit)
            ok = json_array_append_new(drops, json_string(aw_change_drop_str(bit))) == 0;
    /* The containers are attached last, so a failure above frees each exactly once. */
    if (ok) {
        ok = json_object_set_new(o, "attributes", attrs) == 0;
        attrs = NULL;
        ok = json_object_set_new(o, "consents", consents) == 0 && ok;
        consents = NULL;
        ok = json_object_set_new(o, "drops", drops) == 0 && ok;
        drops = NULL;
    }
    json_decref(attrs);
    json_decref(consents);
    json_decref(drops);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* "klaviyo":{"id","code","title"} when Klaviyo named any of them (never its detail text). */
static bool set_klaviyo(json_t *env, const char *id, const char *code, const char *title)
{
    if (!id && !code && !title)
        return true;
    json_t *k = json_object();
    return k && json_object_set_new(env, "klaviyo", k) == 0 && set_str(k, "id", id) &&
           set_str(k, "code", code) && set_str(k, "title", title);
}

enum aw_err aw_deadletter_change(const struct aw_change *c, const char *stage, const char *reason,
                                 const char *klaviyo_error_id, const char *klaviyo_code,
                                 const char *klaviyo_title, char **out)
{
    *out = NULL;
    json_t *env = envelope_new(stage, reason, NULL);
    if (!env)
        return AW_ERR_INVALID;
    /* json_object_set_new takes the value's reference whether it succeeds or not. */
    bool ok =
        set_str(env, "id", c->event_id) &&
        json_object_set_new(env, "timestamp_ms", json_integer((json_int_t)c->version_ms)) == 0 &&
        json_object_set_new(env, "account_id", account_id_value(c->account_id)) == 0 &&
        set_str(env, "audience_id", c->audience_id);
    json_t *profile = ok ? change_value(c) : NULL;
    ok = profile && json_object_set_new(env, "profile", profile) == 0;
    ok = ok && set_klaviyo(env, klaviyo_error_id, klaviyo_code, klaviyo_title);
    if (!ok) {
        json_decref(env);
        return AW_ERR_INVALID;
    }
    return dump(env, out);
}

enum aw_err aw_deadletter_unmatched(const char *account_id, const char *audience_id,
                                    const char *job_id, const char *klaviyo_error_id,
                                    const char *klaviyo_code, const char *klaviyo_title, char **out)
{
    *out = NULL;
    char detail[320];
    snprintf(detail, sizeof detail, "import job %s reported an error naming none of its records",
             job_id ? job_id : "");
    json_t *env = envelope_new("flush", "klaviyo_import_error_unmatched", detail);
    if (!env)
        return AW_ERR_INVALID;
    bool ok = json_object_set_new(env, "id", json_null()) == 0 &&
              json_object_set_new(env, "timestamp_ms", json_null()) == 0 &&
              json_object_set_new(env, "account_id", account_id_value(account_id)) == 0 &&
              set_str(env, "audience_id", audience_id) &&
              json_object_set_new(env, "profile", json_null()) == 0 &&
              set_klaviyo(env, klaviyo_error_id, klaviyo_code, klaviyo_title);
    if (!ok) {
        json_decref(env);
        return AW_ERR_INVALID;
    }
    return dump(env, out);
}
