/* test_account.c -- account settings, the config file (fixtures in tests/data/config/, which
 * test_schemas_config.py validates against schemas/aw-config-file.schema.json) and connection
 * settings. Secrets must never show up in error text. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/harness.h"
#include "worker/ingest/account.h"
#include "worker/ingest/event.h"

int main(void);

/* Injected environment: NAME=value pairs. */
static const char *const k_env[] = {"AW_TEST_KEY_789", "pk_fixture_from_env", "AW_BLANK", "   ",
                                    "AW_SECRET_ENV",   "pk_SECRET_from_env",  NULL};

static const char *test_getenv(const char *name, void *ctx)
{
    (void)ctx;
    for (size_t i = 0; k_env[i]; i += 2) {
        if (strcmp(k_env[i], name) == 0)
            return k_env[i + 1];
    }
    return NULL;
}

static size_t count_lines(const char *s)
{
    if (!*s)
        return 0;
    size_t n = 1;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Writes text to a fresh temporary file; path into out. */
static void write_temp(char *out, size_t outlen, const char *text)
{
    snprintf(out, outlen, "/tmp/aw_test_account_XXXXXX");
    int fd = mkstemp(out);
    AW_CHECK(fd >= 0);
    if (fd < 0)
        return;
    size_t len = strlen(text);
    AW_CHECK(write(fd, text, len) == (ssize_t)len);
    close(fd);
}

static enum aw_err load_text(const char *text, struct aw_account_config **cfg, char *err,
                             size_t errlen)
{
    char path[64];
    write_temp(path, sizeof path, text);
    enum aw_err rc = aw_account_config_load(path, test_getenv, NULL, cfg, err, errlen);
    unlink(path);
    return rc;
}

static void test_parse_choices(void)
{
    static const struct {
        const char *in, *want;
    } alt[] = {{NULL, NULL},
               {"", NULL},
               {"None", NULL},
               {"none", NULL},
               {" NONE ", NULL},
               {"customer", "customer"},
               {"Customer", "customer"},
               {"Customer Id", "customer"},
               {"customer_id", "customer"},
               {"CustomerID", "customer"},
               {"other", "other"},
               {"Other", "other"},
               {"Other Id", "other"},
               {"other2", "other2"},
               {"Other 2", "other2"},
               {"Other ID 2", "other2"},
               {"other_5", "other5"},
               {"OTHER10", "other10"},
               {"Other 10", "other10"}};
    for (size_t i = 0; i < sizeof alt / sizeof alt[0]; i++) {
        const char *t = "unset";
        AW_CHECK_MSG(aw_account_parse_alternate(alt[i].in, &t) == AW_OK, "alt case %zu", i);
        AW_CHECK_STR_EQ(t, alt[i].want);
    }
    static const char *const bad_alt[] = {"facebook",      "email",
                                          "other1",        "other11",
                                          "other0",        "other02",
                                          "other-1x",      "customers",
                                          "mobile_number", "otherotherotherotherotherotherother"};
    for (size_t i = 0; i < sizeof bad_alt / sizeof bad_alt[0]; i++) {
        const char *t = "unset";
        AW_CHECK_MSG(aw_account_parse_alternate(bad_alt[i], &t) == AW_ERR_INVALID, "bad alt %s",
                     bad_alt[i]);
    }
    static const struct {
        const char *in, *want;
    } phone[] = {{NULL, "mobile_number"},
                 {"", "mobile_number"},
                 {"mobile_number", "mobile_number"},
                 {"Mobile Number", "mobile_number"},
                 {"mobile", "mobile_number"},
                 {"phone_number_2", "phone_number_2"},
                 {"Phone Number 2", "phone_number_2"},
                 {"PHONE_NUMBER_3", "phone_number_3"}};
    for (size_t i = 0; i < sizeof phone / sizeof phone[0]; i++) {
        const char *t = NULL;
        AW_CHECK_MSG(aw_account_parse_phone(phone[i].in, &t) == AW_OK, "phone case %zu", i);
        AW_CHECK_STR_EQ(t, phone[i].want);
    }
    const char *t = NULL;
    AW_CHECK(aw_account_parse_phone("fax", &t) == AW_ERR_INVALID);
    AW_CHECK(aw_account_parse_phone("phone_number_4", &t) == AW_ERR_INVALID);
    AW_CHECK(aw_account_parse_phone("phone_number", &t) == AW_ERR_INVALID);
}

static void test_resolve_from_message(void)
{
    struct aw_account a;
    struct aw_event_setting s1[] = {{"apiKey", " pk_abc\n"}};
    AW_CHECK(aw_account_resolve(NULL, "1", s1, 1, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.account_id, "1");
    AW_CHECK_STR_EQ(a.api_key, "pk_abc"); /* trimmed */
    AW_CHECK(a.alternate_identity == NULL);
    AW_CHECK_STR_EQ(a.phone_identity, "mobile_number");
    AW_CHECK(a.problem == NULL);
    aw_account_clear(&a);
    AW_CHECK(a.api_key == NULL && a.account_id == NULL);
    aw_account_clear(&a); /* idempotent */

    struct aw_event_setting s2[] = {{"Example String Setting", "x"},
                                    {"apiKey", "pk_abc"},
                                    {"alternateIdentifier", "Other 3"},
                                    {"phoneIdentifier", "Phone Number 3"}};
    AW_CHECK(aw_account_resolve(NULL, "1", s2, 4, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.alternate_identity, "other3");
    AW_CHECK_STR_EQ(a.phone_identity, "phone_number_3");
    aw_account_clear(&a);

    AW_CHECK(aw_account_resolve(NULL, "1", NULL, 0, &a) == AW_ERR_INVALID);
    AW_CHECK_STR_EQ(a.problem, AW_ACCOUNT_MISSING_API_KEY);
    AW_CHECK_STR_EQ(a.problem_setting, "apiKey");
    AW_CHECK(a.api_key == NULL);
    aw_account_clear(&a);

    struct aw_event_setting s3[] = {{"apiKey", "pk_a\r\nX-Injected: 1"}};
    AW_CHECK(aw_account_resolve(NULL, "1", s3, 1, &a) == AW_ERR_INVALID);
    AW_CHECK_STR_EQ(a.problem, AW_ACCOUNT_INVALID_SETTINGS);
    AW_CHECK_STR_EQ(a.problem_setting, "apiKey");
    aw_account_clear(&a);

    struct aw_event_setting s4[] = {{"apiKey", "pk_a"}, {"alternateIdentifier", "twitter"}};
    AW_CHECK(aw_account_resolve(NULL, "1", s4, 2, &a) == AW_ERR_INVALID);
    AW_CHECK_STR_EQ(a.problem, AW_ACCOUNT_INVALID_SETTINGS);
    AW_CHECK_STR_EQ(a.problem_setting, "alternateIdentifier");
    aw_account_clear(&a);

    struct aw_event_setting s5[] = {{"apiKey", "pk_a"}, {"phoneIdentifier", "pager"}};
    AW_CHECK(aw_account_resolve(NULL, "1", s5, 2, &a) == AW_ERR_INVALID);
    AW_CHECK_STR_EQ(a.problem_setting, "phoneIdentifier");
    aw_account_clear(&a);
}

/* Every valid fixture loads; every invalid one is refused (the schema test checks the same
 * files against the JSON Schema). */
static void test_config_fixtures(void)
{
    const char *kinds[] = {"valid", "invalid"};
    for (int k = 0; k < 2; k++) {
        char dir[4096], rel[64];
        snprintf(rel, sizeof rel, "tests/data/config/%s", kinds[k]);
        aw_test_src_path(dir, sizeof dir, rel);
        DIR *d = opendir(dir);
        AW_CHECK_MSG(d != NULL, "cannot open %s", dir);
        if (!d)
            continue;
        struct dirent *e;
        int n = 0;
        while ((e = readdir(d)) != NULL) {
            size_t len = strlen(e->d_name);
            if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
                continue;
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            struct aw_account_config *cfg = NULL;
            char err[2048];
            enum aw_err rc = aw_account_config_load(path, test_getenv, NULL, &cfg, err, sizeof err);
            if (k == 0) {
                AW_CHECK_MSG(rc == AW_OK, "%s should load: %s", e->d_name, err);
            } else {
                AW_CHECK_MSG(rc == AW_ERR_CONFIG && cfg == NULL, "%s should be refused", e->d_name);
                AW_CHECK_MSG(strstr(err, path) != NULL, "%s: error lacks the file path: %s",
                             e->d_name, err);
                AW_CHECK_MSG(strstr(err, "SECRET") == NULL, "%s: secret in error: %s", e->d_name,
                             err);
            }
            aw_account_config_free(cfg);
            n++;
        }
        closedir(d);
        AW_CHECK_MSG(n >= 3, "too few %s config fixtures", kinds[k]);
    }
}

static struct aw_account_config *load_fixture(const char *rel)
{
    char path[4096];
    aw_test_src_path(path, sizeof path, rel);
    struct aw_account_config *cfg = NULL;
    char err[1024];
    AW_CHECK_MSG(aw_account_config_load(path, test_getenv, NULL, &cfg, err, sizeof err) == AW_OK,
                 "%s: %s", rel, err);
    return cfg;
}

static void test_config_overrides(void)
{
    struct aw_account_config *cfg = load_fixture("tests/data/config/valid/full.json");
    AW_CHECK_INT_EQ(aw_account_config_count(cfg), 3);
    struct aw_event_setting msg[] = {{"apiKey", "pk_from_message"},
                                     {"alternateIdentifier", "other"},
                                     {"phoneIdentifier", "phone_number_3"}};
    struct aw_account a;
    AW_CHECK(aw_account_resolve(cfg, "123456", msg, 3, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.api_key, "pk_fixture_123456");
    AW_CHECK_STR_EQ(a.alternate_identity, "customer");
    AW_CHECK_STR_EQ(a.phone_identity, "mobile_number");
    aw_account_clear(&a);
    AW_CHECK(aw_account_resolve(cfg, "789", msg, 3, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.api_key, "pk_fixture_from_env");
    AW_CHECK_STR_EQ(a.alternate_identity, "other2");
    AW_CHECK_STR_EQ(a.phone_identity, "phone_number_2");
    aw_account_clear(&a);
    /* apiKeyFile relative to the config file's directory, newline trimmed; the file overrides
     * only the keys it has (phoneIdentifier comes from the message). */
    AW_CHECK(aw_account_resolve(cfg, "42", msg, 3, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.api_key, "pk_fixture_from_file");
    AW_CHECK(a.alternate_identity == NULL);
    AW_CHECK_STR_EQ(a.phone_identity, "phone_number_3");
    aw_account_clear(&a);
    /* An account not in the file uses the message only. */
    AW_CHECK(aw_account_resolve(cfg, "999", msg, 3, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.api_key, "pk_from_message");
    AW_CHECK_STR_EQ(a.alternate_identity, "other");
    aw_account_clear(&a);
    aw_account_config_free(cfg);

    cfg = load_fixture("tests/data/config/valid/overrides_only.json");
    AW_CHECK(aw_account_resolve(cfg, "123456", msg, 3, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.api_key, "pk_from_message");
    AW_CHECK_STR_EQ(a.phone_identity, "phone_number_3");
    aw_account_clear(&a);
    AW_CHECK(aw_account_resolve(cfg, "55", NULL, 0, &a) == AW_ERR_INVALID);
    AW_CHECK_STR_EQ(a.problem, AW_ACCOUNT_MISSING_API_KEY);
    aw_account_clear(&a);
    aw_account_config_free(cfg);
    aw_account_config_free(NULL);
}

static void test_config_errors(void)
{
    struct aw_account_config *cfg = NULL;
    char err[2048];

    /* All problems are listed, with JSON pointers (RFC 6901 escaping). */
    char path[4096];
    aw_test_src_path(path, sizeof path, "tests/data/config/invalid/multiple_problems.json");
    AW_CHECK(aw_account_config_load(path, test_getenv, NULL, &cfg, err, sizeof err) ==
             AW_ERR_CONFIG);
    AW_CHECK_INT_EQ(count_lines(err), 4);
    AW_CHECK(strstr(err, ": /1/apiKey: must be a string") != NULL);
    AW_CHECK(strstr(err, ": /1/listId: unknown key") != NULL);
    AW_CHECK(strstr(err, ": /2/phoneIdentifier: unknown value") != NULL);
    AW_CHECK(strstr(err, ": /a~1b~0c: must be an object") != NULL);

    /* Syntax errors: position and kind only -- jansson's text would quote the key. */
    AW_CHECK(load_text("{\"1\": {\"apiKey\": \"pk_SECRET_1\" \"x\"}}", &cfg, err, sizeof err) ==
             AW_ERR_CONFIG);
    AW_CHECK(strstr(err, "SECRET") == NULL);
    AW_CHECK(strstr(err, ":1:") != NULL);
    AW_CHECK(load_text("{\"1\": {}, \"1\": {}}", &cfg, err, sizeof err) == AW_ERR_CONFIG);
    AW_CHECK(strstr(err, "duplicate key") != NULL);
    AW_CHECK(load_text("", &cfg, err, sizeof err) == AW_ERR_CONFIG);

    /* Environment and key file problems. */
    AW_CHECK(load_text("{\"7\": {\"apiKeyEnv\": \"AW_NOT_SET\"}}", &cfg, err, sizeof err) ==
             AW_ERR_CONFIG);
    AW_CHECK(strstr(err, "/7/apiKeyEnv: environment variable AW_NOT_SET is not set") != NULL);
    AW_CHECK(load_text("{\"7\": {\"apiKeyEnv\": \"AW_BLANK\"}}", &cfg, err, sizeof err) ==
             AW_ERR_CONFIG);
    AW_CHECK(load_text("{\"7\": {\"apiKeyFile\": \"/nonexistent/aw/key\"}}", &cfg, err,
                       sizeof err) == AW_ERR_CONFIG);
    AW_CHECK(strstr(err, "/7/apiKeyFile: cannot read key file /nonexistent/aw/key") != NULL);

    char keyfile[64];
    write_temp(keyfile, sizeof keyfile, "pk_SECRET in file\n");
    char text[256];
    snprintf(text, sizeof text, "{\"7\": {\"apiKeyFile\": \"%s\"}}", keyfile);
    AW_CHECK(load_text(text, &cfg, err, sizeof err) == AW_ERR_CONFIG);
    AW_CHECK(strstr(err, "control characters") != NULL);
    AW_CHECK(strstr(err, "SECRET") == NULL);
    unlink(keyfile);

    /* A big key file is refused. */
    char big[AW_ACCOUNT_KEY_FILE_MAX_BYTES + 16];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    write_temp(keyfile, sizeof keyfile, big);
    snprintf(text, sizeof text, "{\"7\": {\"apiKeyFile\": \"%s\"}}", keyfile);
    AW_CHECK(load_text(text, &cfg, err, sizeof err) == AW_ERR_CONFIG);
    AW_CHECK(strstr(err, "too large") != NULL);
    unlink(keyfile);

    /* A good key file with CRLF. */
    write_temp(keyfile, sizeof keyfile, "  pk_good_key\r\n");
    snprintf(text, sizeof text,
             "{\"7\": {\"apiKeyFile\": \"%s\", \"phoneIdentifier\": \"Mobile "
             "Number\"}}",
             keyfile);
    AW_CHECK(load_text(text, &cfg, err, sizeof err) == AW_OK);
    struct aw_account a;
    AW_CHECK(aw_account_resolve(cfg, "7", NULL, 0, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.api_key, "pk_good_key");
    aw_account_clear(&a);
    aw_account_config_free(cfg);
    cfg = NULL;
    unlink(keyfile);

    /* An env var holding a bad key: refused without echoing it. */
    AW_CHECK(load_text("{\"7\": {\"apiKey\": \"pk_SECRET_x y\", \"apiKeyEnv\": \"AW_SECRET_ENV\"}}",
                       &cfg, err, sizeof err) == AW_ERR_CONFIG);
    AW_CHECK(strstr(err, "SECRET") == NULL);
    AW_CHECK(strstr(err, "exclusive") != NULL);

    /* Missing file, NULL path. */
    AW_CHECK(aw_account_config_load("/nonexistent/aw.json", test_getenv, NULL, &cfg, err,
                                    sizeof err) == AW_ERR_CONFIG);
    AW_CHECK(strstr(err, "/nonexistent/aw.json: cannot read") != NULL);
    AW_CHECK(aw_account_config_load(NULL, NULL, NULL, &cfg, err, sizeof err) == AW_ERR_CONFIG);

    /* A tiny error buffer truncates with "..." and stays terminated. */
    char tiny[24];
    AW_CHECK(aw_account_config_load(path, test_getenv, NULL, &cfg, tiny, sizeof tiny) ==
             AW_ERR_CONFIG);
    AW_CHECK(strlen(tiny) == sizeof tiny - 1);
    AW_CHECK(strcmp(tiny + sizeof tiny - 4, "...") == 0);
    AW_CHECK(aw_account_config_load(path, test_getenv, NULL, &cfg, NULL, 0) == AW_ERR_CONFIG);
    AW_CHECK(cfg == NULL);
}

static void test_connection(void)
{
    struct aw_account_connection c;
    char detail[256];
    AW_CHECK(aw_account_connection_parse(NULL, 0, &c, detail, sizeof detail) == AW_OK);
    AW_CHECK(c.list_id == NULL && c.n_properties == 0 && c.n_consents == 0);
    aw_account_connection_clear(&c);

    struct aw_event_setting s[] = {
        {"listId", "Y6nRLr"},
        {"propertyMapping",
         "[{\"map\":\"company\",\"value\":\"$organization\",\"note\":1},"
         "{\"map\":\"src\",\"value\":\"$source\"},{\"map\":\"a2\",\"value\":\"$address2\"},"
         "{\"map\":\"i\",\"value\":\"$image\"},{\"map\":\"la\",\"value\":\"$latitude\"},"
         "{\"map\":\"lo\",\"value\":\"$longitude\"},{\"map\":\"tz\",\"value\":\"$timezone\"},"
         "{\"map\":\"t\",\"value\":\"$title\"}]"},
        {"consentMapping", "[{\"map\":\"marketing\",\"value\":\"email_marketing\"},"
                           "{\"map\":\"data_sale_opt_out\",\"value\":\"sms_marketing\"}]"}};
    AW_CHECK(aw_account_connection_parse(s, 3, &c, detail, sizeof detail) == AW_OK);
    AW_CHECK_STR_EQ(c.list_id, "Y6nRLr");
    AW_CHECK_INT_EQ(c.n_properties, 8);
    if (c.n_properties == 8) {
        AW_CHECK_STR_EQ(c.properties[0].attribute, "company");
        AW_CHECK_INT_EQ(c.properties[0].target, AW_TARGET_ORGANIZATION);
        AW_CHECK_INT_EQ(c.properties[1].target, AW_TARGET_SOURCE);
        AW_CHECK_INT_EQ(c.properties[2].target, AW_TARGET_ADDRESS2);
        AW_CHECK_INT_EQ(c.properties[3].target, AW_TARGET_IMAGE);
        AW_CHECK_INT_EQ(c.properties[4].target, AW_TARGET_LATITUDE);
        AW_CHECK_INT_EQ(c.properties[5].target, AW_TARGET_LONGITUDE);
        AW_CHECK_INT_EQ(c.properties[6].target, AW_TARGET_TIMEZONE);
        AW_CHECK_INT_EQ(c.properties[7].target, AW_TARGET_TITLE);
    }
    AW_CHECK_INT_EQ(c.n_consents, 2);
    if (c.n_consents == 2) {
        AW_CHECK_STR_EQ(c.consents[0].purpose, "marketing");
        AW_CHECK_INT_EQ(c.consents[0].channel, AW_CHANNEL_EMAIL);
        AW_CHECK_STR_EQ(c.consents[1].purpose, "data_sale_opt_out");
        AW_CHECK_INT_EQ(c.consents[1].channel, AW_CHANNEL_SMS);
    }
    aw_account_connection_clear(&c);

    static const struct {
        const char *key, *value, *detail;
    } bad[] = {
        {"listId", "a/b", "listId: not a Klaviyo list id"},
        {"listId", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLM", "listId"},
        {"propertyMapping", "[{\"map\":\"pk_SECRET\"", "propertyMapping: not valid JSON"},
        {"propertyMapping", "\"$title\"", "propertyMapping: not valid JSON"},
        {"propertyMapping", "{}", "propertyMapping: must be a JSON array"},
        {"propertyMapping", "[1]", "propertyMapping[0]: must be an object"},
        {"propertyMapping", "[{\"value\":\"$title\"}]",
         "propertyMapping[0].map: must be a non-empty string"},
        {"propertyMapping", "[{\"map\":\"x\"}]", "propertyMapping[0].value: must be a string"},
        {"propertyMapping",
         "[{\"map\":\"x\",\"value\":\"$title\"},{\"map\":\"y\",\"value\":\"pk_SECRET\"}]",
         "propertyMapping[1].value: unknown target"},
        {"consentMapping", "[{\"map\":\"x\",\"value\":\"Email_Marketing\"}]",
         "consentMapping[0].value: unknown channel"},
        {"consentMapping", "[{\"map\":\"x\",\"value\":true}]",
         "consentMapping[0].value: must be a string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct aw_event_setting one = {(char *)bad[i].key, (char *)bad[i].value};
        detail[0] = '\0';
        AW_CHECK_MSG(aw_account_connection_parse(&one, 1, &c, detail, sizeof detail) ==
                         AW_ERR_INVALID,
                     "bad connection case %zu", i);
        AW_CHECK_MSG(strstr(detail, bad[i].detail) != NULL, "case %zu: detail \"%s\"", i, detail);
        AW_CHECK_MSG(strstr(detail, "SECRET") == NULL, "case %zu: value in detail", i);
        AW_CHECK(c.list_id == NULL && c.properties == NULL && c.consents == NULL);
        aw_account_connection_clear(&c);
    }
    /* Blank settings mean "none"; detail may be NULL. */
    struct aw_event_setting blank[] = {
        {"listId", "  "}, {"propertyMapping", " \n"}, {"consentMapping", ""}};
    AW_CHECK(aw_account_connection_parse(blank, 3, &c, NULL, 0) == AW_OK);
    AW_CHECK(c.list_id == NULL && c.n_properties == 0 && c.n_consents == 0);
    aw_account_connection_clear(&c);

    AW_CHECK_STR_EQ(aw_account_target_str(AW_TARGET_TITLE), "$title");
    AW_CHECK_STR_EQ(aw_account_target_str(AW_TARGET_SOURCE), "$source");
    AW_CHECK_STR_EQ(aw_account_target_str(AW_TARGET_COUNT), "");
}

int main(void)
{
    test_parse_choices();
    test_resolve_from_message();
    test_config_fixtures();
    test_config_overrides();
    test_config_errors();
    test_connection();
    return aw_test_done();
}
