/* aw_payload_dump.c -- prints one Klaviyo request body of every kind build.c builds, for
 * tests/unit/test_payload_openapi.py (validation against the OpenAPI spec) and the fixtures in
 * tests/data/payloads/. Method and path come from the API table (api.h). Output: one JSON line
 * per body,
 *   {"kind":"<name>","method":"post","path":"/api/...","body":<body>}
 * Exit status 0 when every builder succeeded. Fictional data only. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "tests/change_builder.h"
#include "worker/klaviyo/api.h"
#include "worker/klaviyo/build.h"
#include "worker/store/change.h"

static void base(struct aw_change *c, const char *email, const char *phone)
{
    memset(c, 0, sizeof *c);
    c->account_id = aw_strdup("1001");
    c->audience_id = aw_strdup("2002");
    c->audience_name = aw_strdup("Newsletter");
    c->event_id = aw_strdup("evt-1");
    c->version_ms = 1700000000000ull;
    c->action = AW_CHANGE_ADD;
    c->email = aw_strdup(email);
    c->phone_e164 = phone ? aw_strdup(phone) : NULL;
}

static int failures;

/* Prints {"kind","method","path","body"} for a body built for endpoint e (method and path
 * template from the API table, as the spec spells them). Takes body. */
static void emit(const char *kind, enum aw_api_endpoint e, enum aw_err err, char *body)
{
    if (err != AW_OK || !body) {
        fprintf(stderr, "aw_payload_dump: %s: %s\n", kind, aw_err_str(err));
        failures++;
        free(body);
        return;
    }
    const struct aw_api_op *op = aw_api_get(e);
    char method[8] = {0};
    const char *m = aw_api_method_str(op->method);
    for (size_t i = 0; m[i] && i + 1 < sizeof method; i++)
        method[i] = (char)(m[i] >= 'A' && m[i] <= 'Z' ? m[i] - 'A' + 'a' : m[i]);
    json_error_t jerr;
    json_t *doc = json_loads(body, 0, &jerr);
    json_t *line = doc ? json_pack("{s:s,s:s,s:s,s:o}", "kind", kind, "method", method, "path",
                                   op->path, "body", doc)
                       : NULL;
    char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
    if (!text) {
        fprintf(stderr, "aw_payload_dump: %s: body is not JSON: %s\n", kind, jerr.text);
        failures++;
    } else {
        puts(text);
    }
    free(text);
    json_decref(line);
    free(body);
}

int main(void)
{
    struct aw_change c[4];
    /* a rich profile: every standard field, numbers in string fields, lat/long, properties of
     * every JSON type, property and field unsets, text that needs escaping */
    base(&c[0], "o'brien+\"vip\"@example.com", "+14155550100");
    c[0].external_id = aw_strdup("cust-42");
    aw_test_attr(&c[0], "first_name", "\"Ann \\\"A\\\" \\\\ B\"");
    aw_test_attr(&c[0], "image", "\"https://example.com/a.png\"");
    aw_test_attr(&c[0], "last_name", NULL);
    aw_test_attr(&c[0], "location.city", "\"K\xc3\xb6ln\"");
    aw_test_attr(&c[0], "location.country", "\"DE\"");
    aw_test_attr(&c[0], "location.latitude", "50.94");
    aw_test_attr(&c[0], "location.longitude", "\"6.96\"");
    aw_test_attr(&c[0], "location.zip", "50667");
    aw_test_attr(&c[0], "organization", "{\"a\":1}");
    aw_test_attr(&c[0], "properties.gone", NULL);
    aw_test_attr(&c[0], "properties.list", "[\"a\",\"b\"]");
    aw_test_attr(&c[0], "properties.n", "12.5");
    aw_test_attr(&c[0], "properties.nested.dot", "{\"k\":[true,null]}");
    aw_test_attr(&c[0], "properties.ok", "true");
    aw_test_attr(&c[0], "title", "\"Dr\"");
    aw_test_consent(&c[0], AW_CHANNEL_EMAIL, true, 1699990000123ull);
    aw_test_consent(&c[0], AW_CHANNEL_SMS, true, 0);
    c[0].custom_source = aw_strdup("mParticle \"web\"");

    base(&c[1], "b@example.org", NULL);
    aw_test_attr(&c[1], "properties.only_unset", NULL);
    aw_test_consent(&c[1], AW_CHANNEL_EMAIL, false, 0);
    c[1].custom_source = aw_strdup("mParticle \"web\"");

    base(&c[2], "c@example.net", "+447700900123");
    aw_test_consent(&c[2], AW_CHANNEL_SMS, false, 0);
    aw_test_consent(&c[2], AW_CHANNEL_EMAIL, false, 0);

    const struct aw_change *all[3] = {&c[0], &c[1], &c[2]};
    char *body = NULL;
    size_t used = 0;
    enum aw_err err;

    err = aw_build_import(all, 3, "Y6nRLr", 0, 0, &body, &used);
    emit("import_with_list", AW_API_IMPORT_CREATE, used == 3 ? err : AW_ERR_INTERNAL, body);
    err = aw_build_import(all, 3, NULL, 0, 0, &body, &used);
    emit("import_without_list", AW_API_IMPORT_CREATE, used == 3 ? err : AW_ERR_INTERNAL, body);
    err = aw_build_profile_import(&c[0], &body);
    emit("profile_import_clear", AW_API_PROFILE_IMPORT, err, body);

    const struct aw_change *subs[1] = {&c[0]};
    err = aw_build_subscribe(subs, 1, 0, &body, &used);
    emit("subscribe", AW_API_SUBSCRIBE, err, body);
    const struct aw_change *unsubs[2] = {&c[1], &c[2]};
    err = aw_build_unsubscribe(unsubs, 2, 0, &body, &used);
    emit("unsubscribe", AW_API_UNSUBSCRIBE, used == 2 ? err : AW_ERR_INTERNAL, body);

    const char *ids[3] = {"01H0000000000000000000000A", "01H0000000000000000000000B", "x\"y"};
    err = aw_build_list_members(ids, 3, 0, &body, &used);
    emit("list_members_add", AW_API_LIST_ADD_PROFILES, err, body);
    err = aw_build_list_members(ids, 2, 0, &body, &used);
    emit("list_members_remove", AW_API_LIST_REMOVE_PROFILES, err, body);
    err = aw_build_create_list("Audience \"VIP\" \\ 2024 \xe2\x9c\x93", &body);
    emit("create_list", AW_API_CREATE_LIST, err, body);

    for (size_t i = 0; i < 3; i++)
        aw_change_clear(&c[i]);
    return failures ? 1 : 0;
}
