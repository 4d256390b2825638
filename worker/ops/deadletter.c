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

enum aw_err aw_deadletter_change(const struct aw_change *c, const char *stage, const char *reason,
                                 const char *klaviyo_error_id, const char *klaviyo_code,
                                 const char *klaviyo_title, char **out)
{
    *out = NULL;
    char *encoded = NULL;
    enum aw_err err = aw_change_encode(c, &encoded);
    if (err != AW_OK)
        return err;
    json_t *change = json_loads(encoded, 0, NULL);
    free(encoded);
    if (!change)
        return AW_ERR_INTERNAL;
    json_t *env = json_object();
    json_object_set_new(env, "type", json_string("aw.dead_letter"));
    json_object_set_new(env, "stage", json_string(stage));
    json_object_set_new(env, "reason", json_string(reason));
    json_object_set_new(env, "id", str_or_null(c->event_id));
    json_object_set_new(env, "timestamp_ms", json_integer((json_int_t)c->version_ms));
    json_object_set_new(env, "account_id", str_or_null(c->account_id));
    json_object_set_new(env, "audience_id", str_or_null(c->audience_id));
    json_object_set_new(env, "profile", change);
    json_t *k = json_object();
    json_object_set_new(k, "id", str_or_null(klaviyo_error_id));
    json_object_set_new(k, "code", str_or_null(klaviyo_code));
    json_object_set_new(k, "title", str_or_null(klaviyo_title));
    json_object_set_new(env, "klaviyo", k);
    return dump(env, out);
}
