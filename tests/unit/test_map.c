/* test_map.c -- table-driven tests of the mapping rules (docs/design.md §3).
 *
 * Each fixture tests/data/mapping/<case>.json holds
 *   {"description": "...",
 *    "config": {<AW_CONFIG_FILE content, keyed by account id>},   (optional)
 *    "env": {"NAME": "value"},          (optional: what the injected getenv returns)
 *    "input": {<a full mParticle message>},
 *    "expect": {"changes": [...], "rejects": [...]}}
 * The input is decoded with aw_event_decode, the account resolved with aw_account_resolve and the
 * result of aw_map_event compared field by field. In an expected change every field may be given;
 * an omitted field must have its default: account_id / event_id / version_ms = the message's,
 * audience_name / list_id / email / phone_e164 / external_id / custom_source = null,
 * attrs / consents / drops = []. attrs: [{"path", "value": <JSON value>} | {"path", "unset": true}]
 * in path order; consents: [{"channel": "email"|"sms", "subscribe", "consented_at": ms|null}];
 * drops: names ("invalid_phone", "sms_no_phone"). Rejects: [{"profile", "audience_id"|null,
 * "reason", "detail_contains" (optional)}] in order. */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/phone/phone.h"
#include "tests/harness.h"
#include "worker/ingest/account.h"
#include "worker/ingest/config_file.h"
#include "worker/ingest/event.h"
#include "worker/ingest/map.h"
#include "worker/store/change.h"

int main(void);

static const char *g_case; /* current fixture name, for messages */

static const char *fixture_getenv(const char *name, void *ctx)
{
    json_t *env = ctx;
    return env ? json_string_value(json_object_get(env, name)) : NULL;
}

/* Expected string field: absent or null = NULL. */
static const char *exp_str(json_t *obj, const char *field, const char *dflt)
{
    json_t *v = json_object_get(obj, field);
    if (!v)
        return dflt;
    if (json_is_null(v))
        return NULL;
    AW_CHECK_MSG(json_is_string(v), "%s: %s must be a string or null", g_case, field);
    return json_string_value(v);
}

static void check_str(const char *what, size_t idx, const char *got, const char *want)
{
    bool eq = (got == NULL || want == NULL) ? got == want : strcmp(got, want) == 0;
    AW_CHECK_MSG(eq, "%s: change[%zu].%s: got %s%s%s, want %s%s%s", g_case, idx, what,
                 got ? "\"" : "", got ? got : "null", got ? "\"" : "", want ? "\"" : "",
                 want ? want : "null", want ? "\"" : "");
}

static void compare_attrs(size_t idx, const struct aw_change *c, json_t *want)
{
    size_t n = want ? json_array_size(want) : 0;
    AW_CHECK_MSG(c->n_attrs == n, "%s: change[%zu]: %zu attrs, want %zu", g_case, idx, c->n_attrs,
                 n);
    for (size_t i = 0; i < c->n_attrs && i < n; i++) {
        json_t *w = json_array_get(want, i);
        const char *path = json_string_value(json_object_get(w, "path"));
        AW_CHECK_MSG(path && strcmp(c->attrs[i].path, path) == 0,
                     "%s: change[%zu].attrs[%zu].path: got \"%s\", want \"%s\"", g_case, idx, i,
                     c->attrs[i].path, path ? path : "(missing)");
        if (json_is_true(json_object_get(w, "unset"))) {
            AW_CHECK_MSG(c->attrs[i].value_json == NULL,
                         "%s: change[%zu].attrs[%zu] (%s): want unset, got %s", g_case, idx, i,
                         c->attrs[i].path, c->attrs[i].value_json);
            continue;
        }
        json_t *wv = json_object_get(w, "value");
        AW_CHECK_MSG(wv != NULL, "%s: attrs[%zu]: fixture lacks value/unset", g_case, i);
        if (!c->attrs[i].value_json) {
            AW_CHECK_MSG(false, "%s: change[%zu].attrs[%zu] (%s): unexpectedly unset", g_case, idx,
                         i, c->attrs[i].path);
            continue;
        }
        json_error_t err;
        json_t *gv = json_loads(c->attrs[i].value_json, JSON_DECODE_ANY, &err);
        AW_CHECK_MSG(gv != NULL, "%s: change[%zu].attrs[%zu]: value_json is not JSON: %s", g_case,
                     idx, i, c->attrs[i].value_json);
        if (gv && wv) {
            char *ws = json_dumps(wv, JSON_ENCODE_ANY | JSON_COMPACT);
            AW_CHECK_MSG(json_equal(gv, wv), "%s: change[%zu].attrs[%zu] (%s): got %s, want %s",
                         g_case, idx, i, c->attrs[i].path, c->attrs[i].value_json, ws);
            free(ws);
        }
        json_decref(gv);
    }
}

static void compare_consents(size_t idx, const struct aw_change *c, json_t *want)
{
    size_t n = want ? json_array_size(want) : 0;
    AW_CHECK_MSG(c->n_consents == n, "%s: change[%zu]: %zu consents, want %zu", g_case, idx,
                 c->n_consents, n);
    for (size_t i = 0; i < c->n_consents && i < n; i++) {
        json_t *w = json_array_get(want, i);
        const struct aw_change_consent *cc = &c->consents[i];
        const char *ch = json_string_value(json_object_get(w, "channel"));
        AW_CHECK_MSG(ch && strcmp(aw_change_channel_str(cc->channel), ch) == 0,
                     "%s: change[%zu].consents[%zu].channel: got %s, want %s", g_case, idx, i,
                     aw_change_channel_str(cc->channel), ch ? ch : "(missing)");
        json_t *sub = json_object_get(w, "subscribe");
        AW_CHECK_MSG(json_is_boolean(sub) && cc->subscribe == json_is_true(sub),
                     "%s: change[%zu].consents[%zu].subscribe: got %d", g_case, idx, i,
                     (int)cc->subscribe);
        json_t *at = json_object_get(w, "consented_at");
        if (!at || json_is_null(at)) {
            AW_CHECK_MSG(!cc->has_consented_at,
                         "%s: change[%zu].consents[%zu]: unexpected "
                         "consented_at",
                         g_case, idx, i);
        } else {
            AW_CHECK_MSG(cc->has_consented_at &&
                             cc->consented_at_unix_ms == (uint64_t)json_integer_value(at),
                         "%s: change[%zu].consents[%zu].consented_at: got %llu, want %lld", g_case,
                         idx, i, (unsigned long long)cc->consented_at_unix_ms,
                         (long long)json_integer_value(at));
        }
    }
}

static void compare_change(size_t idx, const struct aw_change *c, json_t *w,
                           const struct aw_event *ev)
{
    check_str("account_id", idx, c->account_id, exp_str(w, "account_id", ev->account_id));
    check_str("audience_id", idx, c->audience_id, exp_str(w, "audience_id", NULL));
    check_str("audience_name", idx, c->audience_name, exp_str(w, "audience_name", NULL));
    check_str("list_id", idx, c->list_id, exp_str(w, "list_id", NULL));
    check_str("event_id", idx, c->event_id, exp_str(w, "event_id", ev->id));
    json_t *ver = json_object_get(w, "version_ms");
    uint64_t want_ver = ver ? (uint64_t)json_integer_value(ver) : ev->timestamp_ms;
    AW_CHECK_MSG(c->version_ms == want_ver, "%s: change[%zu].version_ms: got %llu want %llu",
                 g_case, idx, (unsigned long long)c->version_ms, (unsigned long long)want_ver);
    check_str("action", idx, aw_change_action_str(c->action), exp_str(w, "action", NULL));
    check_str("email", idx, c->email, exp_str(w, "email", NULL));
    check_str("phone_e164", idx, c->phone_e164, exp_str(w, "phone_e164", NULL));
    check_str("external_id", idx, c->external_id, exp_str(w, "external_id", NULL));
    check_str("custom_source", idx, c->custom_source, exp_str(w, "custom_source", NULL));
    compare_attrs(idx, c, json_object_get(w, "attrs"));
    compare_consents(idx, c, json_object_get(w, "consents"));

    unsigned want_drops = 0;
    json_t *drops = json_object_get(w, "drops");
    size_t i;
    json_t *d;
    json_array_foreach(drops, i, d)
    {
        const char *name = json_string_value(d);
        if (name && strcmp(name, aw_change_drop_str(AW_CHANGE_DROP_INVALID_PHONE)) == 0)
            want_drops |= AW_CHANGE_DROP_INVALID_PHONE;
        else if (name && strcmp(name, aw_change_drop_str(AW_CHANGE_DROP_SMS_NO_PHONE)) == 0)
            want_drops |= AW_CHANGE_DROP_SMS_NO_PHONE;
        else
            AW_CHECK_MSG(false, "%s: unknown drop name", g_case);
    }
    AW_CHECK_MSG(c->drops == want_drops, "%s: change[%zu].drops: got 0x%x want 0x%x", g_case, idx,
                 c->drops, want_drops);
}

static void compare_rejects(const struct aw_map_result *r, json_t *want)
{
    size_t n = want ? json_array_size(want) : 0;
    AW_CHECK_MSG(r->n_rejects == n, "%s: %zu rejects, want %zu", g_case, r->n_rejects, n);
    for (size_t i = 0; i < r->n_rejects && i < n; i++) {
        json_t *w = json_array_get(want, i);
        const struct aw_map_reject *rj = &r->rejects[i];
        AW_CHECK_MSG(rj->profile_index == (size_t)json_integer_value(json_object_get(w, "profile")),
                     "%s: reject[%zu].profile: got %zu", g_case, i, rj->profile_index);
        const char *aud = exp_str(w, "audience_id", NULL);
        bool aud_eq = (aud == NULL || rj->audience_id == NULL) ? aud == rj->audience_id
                                                               : strcmp(aud, rj->audience_id) == 0;
        AW_CHECK_MSG(aud_eq, "%s: reject[%zu].audience_id: got %s want %s", g_case, i,
                     rj->audience_id ? rj->audience_id : "null", aud ? aud : "null");
        const char *reason = exp_str(w, "reason", NULL);
        AW_CHECK_MSG(reason && strcmp(rj->reason, reason) == 0,
                     "%s: reject[%zu].reason: got %s want %s", g_case, i, rj->reason,
                     reason ? reason : "(missing)");
        const char *dc = exp_str(w, "detail_contains", NULL);
        if (dc)
            AW_CHECK_MSG(rj->detail && strstr(rj->detail, dc) != NULL,
                         "%s: reject[%zu].detail \"%s\" lacks \"%s\"", g_case, i,
                         rj->detail ? rj->detail : "(null)", dc);
    }
}

/* Writes the fixture's config to a temporary file and loads it. */
static struct aw_config_file *load_config(json_t *config, json_t *env)
{
    char path[] = "/tmp/aw_test_map_cfg_XXXXXX";
    int fd = mkstemp(path);
    AW_CHECK(fd >= 0);
    if (fd < 0)
        return NULL;
    close(fd);
    AW_CHECK(json_dump_file(config, path, 0) == 0);
    struct aw_config_file *cfg = NULL;
    char err[1024];
    enum aw_err rc = aw_config_file_load(path, fixture_getenv, env, &cfg, err, sizeof err);
    AW_CHECK_MSG(rc == AW_OK, "%s: config does not load: %s", g_case, err);
    unlink(path);
    return cfg;
}

static void run_fixture(const char *dir, const char *name)
{
    char path[8192];
    int w = snprintf(path, sizeof path, "%s/%s", dir, name);
    AW_CHECK(w > 0 && (size_t)w < sizeof path);
    g_case = name;
    json_error_t jerr;
    json_t *fx = json_load_file(path, 0, &jerr);
    AW_CHECK_MSG(fx != NULL, "%s: fixture is not JSON: %s", name, jerr.text);
    if (!fx)
        return;
    AW_CHECK_MSG(json_is_string(json_object_get(fx, "description")), "%s: no description", name);
    json_t *input = json_object_get(fx, "input");
    json_t *expect = json_object_get(fx, "expect");
    AW_CHECK_MSG(input && expect, "%s: needs input and expect", name);
    if (!input || !expect) {
        json_decref(fx);
        return;
    }
    char *payload = json_dumps(input, JSON_COMPACT);
    struct aw_event ev = {0};
    enum aw_event_reason reason = AW_EVENT_OK;
    char detail[256] = "";
    enum aw_err rc = aw_event_decode(payload, strlen(payload), &ev, &reason, detail, sizeof detail);
    AW_CHECK_MSG(rc == AW_OK, "%s: input does not decode: %s at %s", name,
                 aw_event_reason_str(reason), detail);
    free(payload);
    if (rc != AW_OK) {
        json_decref(fx);
        return;
    }
    struct aw_config_file *cfg = NULL;
    json_t *config = json_object_get(fx, "config");
    if (config)
        cfg = load_config(config, json_object_get(fx, "env"));

    struct aw_account acct;
    (void)aw_account_resolve(aw_config_file_get(cfg, ev.account_id), ev.account_id,
                             ev.account_settings, ev.n_account_settings, &acct);
    struct aw_map_result res;
    rc = aw_map_event(&ev, &acct, &res);
    AW_CHECK_MSG(rc == AW_OK, "%s: aw_map_event: %s", name, aw_err_str(rc));

    json_t *want_changes = json_object_get(expect, "changes");
    size_t n = want_changes ? json_array_size(want_changes) : 0;
    AW_CHECK_MSG(res.n_changes == n, "%s: %zu changes, want %zu", name, res.n_changes, n);
    for (size_t i = 0; i < res.n_changes && i < n; i++)
        compare_change(i, &res.changes[i], json_array_get(want_changes, i), &ev);
    compare_rejects(&res, json_object_get(expect, "rejects"));

    aw_map_result_clear(&res);
    aw_account_clear(&acct);
    aw_config_file_free(cfg);
    aw_event_clear(&ev);
    json_decref(fx);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t run_fixtures(void)
{
    char dir[4096];
    aw_test_src_path(dir, sizeof dir, "tests/data/mapping");
    DIR *d = opendir(dir);
    AW_CHECK_MSG(d != NULL, "cannot open %s", dir);
    if (!d)
        return 0;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof *names);
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, name_cmp);
    for (size_t i = 0; i < n; i++) {
        int before = aw_test_failures;
        run_fixture(dir, names[i]);
        printf("%-48s %s\n", names[i], aw_test_failures == before ? "ok" : "FAIL");
        free(names[i]);
    }
    free(names);
    return n;
}

/* mParticle's own example message: its only email identity is md5-hashed. */
static void test_mparticle_example(void)
{
    char path[4096];
    aw_test_src_path(path, sizeof path,
                     "schemas/vendor/mparticle/examples/AudienceMembershipChangeRequest.json");
    size_t len = 0;
    char *text = aw_test_read_file(path, &len);
    AW_CHECK_MSG(text != NULL, "cannot read %s", path);
    if (!text)
        return;
    g_case = "mparticle example";
    struct aw_event ev = {0};
    enum aw_event_reason reason;
    AW_CHECK(aw_event_decode(text, len, &ev, &reason, NULL, 0) == AW_OK);
    free(text);
    struct aw_event_setting key = {"apiKey", "pk_test"};
    struct aw_account acct;
    AW_CHECK(aw_account_resolve(NULL, ev.account_id, &key, 1, &acct) == AW_OK);
    struct aw_map_result res;
    AW_CHECK(aw_map_event(&ev, &acct, &res) == AW_OK);
    AW_CHECK_INT_EQ(res.n_changes, 0);
    AW_CHECK_INT_EQ(res.n_rejects, 1);
    if (res.n_rejects == 1) {
        AW_CHECK_STR_EQ(res.rejects[0].reason, "hashed_email");
        AW_CHECK(res.rejects[0].audience_id == NULL);
        AW_CHECK_INT_EQ(res.rejects[0].profile_index, 0);
    }
    aw_map_result_clear(&res);
    aw_account_clear(&acct);
    aw_event_clear(&ev);
}

static void test_email_normalise(void)
{
    static const struct {
        const char *in, *want; /* want NULL = invalid */
    } cases[] = {
        {"ann@example.com", "ann@example.com"},
        {"  Ann.Lee@Example.COM \t\n", "ann.lee@example.com"},
        {"o'brien@example.ie", "o'brien@example.ie"},
        {"\"quoted,name\"@example.com", "\"quoted,name\"@example.com"},
        {"back\\slash@example.com", "back\\slash@example.com"},
        {"a+tag@sub.example-site.co.uk", "a+tag@sub.example-site.co.uk"},
        {"x@a1.io", "x@a1.io"},
        {"", NULL},
        {"   ", NULL},
        {"no-at.example.com", NULL},
        {"two@@example.com", NULL},
        {"a@b@example.com", NULL},
        {"@example.com", NULL},
        {"ann@", NULL},
        {"ann@localhost", NULL},
        {"ann@example..com", NULL},
        {"ann@.example.com", NULL},
        {"ann@example.com.", NULL},
        {"ann@-example.com", NULL},
        {"ann@example-.com", NULL},
        {"ann@exa_mple.com", NULL},
        {"ann lee@example.com", NULL},
        {"ann\x01@example.com", NULL},
        {"ann@example.123", NULL},
        {"ann@1.2.3.4", NULL},
        {"j\xc3\xb6rg@example.com", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL;
        enum aw_err rc = aw_map_email_normalise(cases[i].in, &out);
        if (cases[i].want) {
            AW_CHECK_MSG(rc == AW_OK, "email case %zu should be valid", i);
            AW_CHECK_STR_EQ(out, cases[i].want);
        } else {
            AW_CHECK_MSG(rc == AW_ERR_INVALID && out == NULL, "email case %zu should be invalid",
                         i);
        }
        free(out);
    }
    /* Length limits: local part 64, whole address 254. */
    char buf[400];
    memset(buf, 'a', 64);
    memcpy(buf + 64, "@example.com", sizeof "@example.com");
    char *out = NULL;
    AW_CHECK(aw_map_email_normalise(buf, &out) == AW_OK);
    free(out);
    memset(buf, 'a', 65);
    memcpy(buf + 65, "@example.com", sizeof "@example.com");
    AW_CHECK(aw_map_email_normalise(buf, &out) == AW_ERR_INVALID);
    /* 64 + 1 + 3 * 62 + 3 = 254 bytes */
    memset(buf, 'a', 64);
    size_t o = 64;
    buf[o++] = '@';
    for (int l = 0; l < 3; l++) {
        memset(buf + o, 'b', 61);
        o += 61;
        buf[o++] = '.';
    }
    memcpy(buf + o, "com", 4);
    o += 3;
    AW_CHECK_INT_EQ(o, 254);
    AW_CHECK(aw_map_email_normalise(buf, &out) == AW_OK);
    free(out);
    out = NULL;
    memcpy(buf + o - 3, "coma", 5); /* 255 bytes, otherwise valid */
    AW_CHECK(aw_map_email_normalise(buf, &out) == AW_ERR_INVALID);
}

static void test_default_path(void)
{
    AW_CHECK_STR_EQ(aw_map_default_path("$firstname"), "first_name");
    AW_CHECK_STR_EQ(aw_map_default_path("$FirstName"), "first_name");
    AW_CHECK_STR_EQ(aw_map_default_path("$LASTNAME"), "last_name");
    AW_CHECK_STR_EQ(aw_map_default_path("$Country"), "location.country");
    AW_CHECK_STR_EQ(aw_map_default_path("$zip"), "location.zip");
    AW_CHECK_STR_EQ(aw_map_default_path("$city"), "location.city");
    AW_CHECK_STR_EQ(aw_map_default_path("$State"), "location.region");
    AW_CHECK_STR_EQ(aw_map_default_path("$Address"), "location.address1");
    AW_CHECK(aw_map_default_path("firstname") == NULL);
    AW_CHECK(aw_map_default_path("$address2") == NULL);
    AW_CHECK(aw_map_default_path("$title") == NULL);
}

/* n attributes on the one audience of one profile: a change up to AW_MAP_ATTRS_MAX, else that
 * audience rejected (too_many_attributes) and nothing else lost. */
static void attrs_case(size_t n, bool accepted)
{
    json_t *attrs = json_array();
    for (size_t i = 0; i < n; i++) {
        char k[32];
        snprintf(k, sizeof k, "k%zu", i);
        json_array_append_new(
            attrs, json_pack("{s:s,s:s,s:s}", "key", k, "value", "v", "action", "upsert"));
    }
    json_t *m =
        json_pack("{s:s,s:s,s:I,s:{s:I,s:{s:s}},s:[{s:[{s:s,s:s,s:s}],s:[{s:I,s:s,s:s,s:o}]}]}",
                  "type", "audience_membership_change_request", "id", "m-attrs", "timestamp_ms",
                  (json_int_t)1000, "account", "account_id", (json_int_t)5, "account_settings",
                  "apiKey", "pk_test", "user_profiles", "user_identities", "type", "email",
                  "encoding", "raw", "value", "a@example.com", "audiences", "audience_id",
                  (json_int_t)9, "audience_name", "A", "action", "add", "user_attributes", attrs);
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    g_case = accepted ? "attributes at the bound" : "attributes over the bound";
    struct aw_event ev = {0};
    enum aw_event_reason reason;
    AW_CHECK(aw_event_decode(text, strlen(text), &ev, &reason, NULL, 0) == AW_OK);
    free(text);
    struct aw_event_setting key = {"apiKey", "pk_test"};
    struct aw_account acct;
    AW_CHECK(aw_account_resolve(NULL, ev.account_id, &key, 1, &acct) == AW_OK);
    struct aw_map_result res;
    AW_CHECK(aw_map_event(&ev, &acct, &res) == AW_OK);
    AW_CHECK_INT_EQ(res.n_changes, accepted ? 1 : 0);
    AW_CHECK_INT_EQ(res.n_rejects, accepted ? 0 : 1);
    if (accepted && res.n_changes == 1)
        AW_CHECK_INT_EQ(res.changes[0].n_attrs, n);
    if (!accepted && res.n_rejects == 1) {
        AW_CHECK_STR_EQ(res.rejects[0].reason, AW_MAP_TOO_MANY_ATTRIBUTES);
        AW_CHECK_STR_EQ(res.rejects[0].audience_id, "9");
    }
    aw_map_result_clear(&res);
    aw_account_clear(&acct);
    aw_event_clear(&ev);
}

static void test_attribute_bound(void)
{
    attrs_case(AW_MAP_ATTRS_MAX, true);
    attrs_case(AW_MAP_ATTRS_MAX + 1, false);
}

static void test_not_membership(void)
{
    struct aw_event ev = {0};
    ev.type = AW_EVENT_SUBSCRIPTION;
    struct aw_account acct = {0};
    struct aw_map_result res;
    AW_CHECK(aw_map_event(&ev, &acct, &res) == AW_ERR_INVALID);
    AW_CHECK(res.n_changes == 0 && res.n_rejects == 0 && res.changes == NULL);
    aw_map_result_clear(&res);
}

int main(void)
{
    if (aw_phone_init() != AW_OK) {
        fprintf(stderr, "aw_phone_init failed\n");
        return 1;
    }
    test_email_normalise();
    test_default_path();
    test_not_membership();
    test_attribute_bound();
    test_mparticle_example();
    size_t n = run_fixtures();
    printf("%zu mapping fixtures\n", n);
    AW_CHECK_MSG(n >= 30, "only %zu mapping fixtures", n);
    return aw_test_done();
}
