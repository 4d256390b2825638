#include "worker/ops/deadletter.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "worker/store/change.h"

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static enum aw_err dump(json_t *env, char **out)
{
    *out = json_dumps(env, JSON_COMPACT);
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
    json_t *env = json_object();
    json_object_set_new(env, "type", json_string("aw.dead_letter"));
    json_object_set_new(env, "stage", json_string("map"));
    json_object_set_new(env, "reason", json_string(reason));
    json_object_set_new(env, "detail", str_or_null(detail));
    json_object_set(env, "id", json_object_get(root, "id"));
    json_object_set(env, "timestamp_ms", json_object_get(root, "timestamp_ms"));
    json_object_set(env, "account_id",
                    json_object_get(json_object_get(root, "account"), "account_id"));
    json_object_set_new(env, "audience_id", str_or_null(audience_id));
    json_object_set(env, "profile", profile); /* borrowed from root: set (not _new) adds a ref */
    json_decref(root);
    return dump(env, out);
}

/* The change as the envelope's "profile": what the worker would have sent for the user. */
static json_t *change_json(const struct aw_change *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "email", str_or_null(c->email));
    json_object_set_new(o, "action", json_string(aw_change_action_str(c->action)));
    if (c->phone_e164)
        json_object_set_new(o, "phone_number", json_string(c->phone_e164));
    if (c->external_id)
        json_object_set_new(o, "external_id", json_string(c->external_id));
    if (c->n_attrs) {
        json_t *attrs = json_object();
        for (size_t i = 0; i < c->n_attrs; i++) {
            json_t *v = c->attrs[i].value_json
                            ? json_loads(c->attrs[i].value_json, JSON_DECODE_ANY, NULL)
                            : json_null();
            json_object_set_new(attrs, c->attrs[i].path, v ? v : json_null());
        }
        json_object_set_new(o, "attributes", attrs);
    }
    if (c->n_consents) {
        json_t *cons = json_object();
        for (size_t i = 0; i < c->n_consents; i++) {
            const struct aw_change_consent *cs = &c->consents[i];
            json_t *one = json_object();
            json_object_set_new(one, "subscribe", json_boolean(cs->subscribe));
            if (cs->has_consented_at)
                json_object_set_new(one, "consented_at_ms",
                                    json_integer((json_int_t)cs->consented_at_unix_ms));
            json_object_set_new(cons, aw_change_channel_str(cs->channel), one);
        }
        json_object_set_new(o, "consent", cons);
    }
    if (c->custom_source)
        json_object_set_new(o, "custom_source", json_string(c->custom_source));
    return o;
}

enum aw_err aw_deadletter_change(const struct aw_change *c, const char *stage, const char *reason,
                                 const char *klaviyo_error_id, const char *klaviyo_code,
                                 const char *klaviyo_title, char **out)
{
    *out = NULL;
    json_t *env = json_object();
    json_object_set_new(env, "type", json_string("aw.dead_letter"));
    json_object_set_new(env, "stage", json_string(stage));
    json_object_set_new(env, "reason", json_string(reason));
    json_object_set_new(env, "id", str_or_null(c->event_id));
    json_object_set_new(env, "timestamp_ms", json_integer((json_int_t)c->version_ms));
    json_object_set_new(env, "account_id", str_or_null(c->account_id));
    json_object_set_new(env, "audience_id", str_or_null(c->audience_id));
    json_object_set_new(env, "profile", change_json(c));
    json_t *k = json_object();
    json_object_set_new(k, "id", str_or_null(klaviyo_error_id));
    json_object_set_new(k, "code", str_or_null(klaviyo_code));
    json_object_set_new(k, "title", str_or_null(klaviyo_title));
    json_object_set_new(env, "klaviyo", k);
    return dump(env, out);
}
