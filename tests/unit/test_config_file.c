/* test_config_file.c -- the AW_CONFIG_FILE loader (fixtures in tests/data/config/, which
 * test_schemas_config.py validates against schemas/aw-config-file.schema.json) and its overrides
 * as aw_account_resolve applies them. Secrets must never show up in error text. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/harness.h"
#include "worker/ingest/account.h"
#include "worker/ingest/config_file.h"
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
    snprintf(out, outlen, "/tmp/aw_test_config_file_XXXXXX");
    int fd = mkstemp(out);
    AW_CHECK(fd >= 0);
    if (fd < 0)
        return;
    size_t len = strlen(text);
    AW_CHECK(write(fd, text, len) == (ssize_t)len);
    close(fd);
}

static enum aw_err load_text(const char *text, struct aw_config_file **cfg, char *err,
                             size_t errlen)
{
    char path[64];
    write_temp(path, sizeof path, text);
    enum aw_err rc = aw_config_file_load(path, test_getenv, NULL, cfg, err, errlen);
    unlink(path);
    return rc;
}

/* Every valid fixture loads; every invalid one is refused (the schema test checks the same
 * files against the JSON Schema). */
/* Resolves account id with its overrides from cfg, as ingest.c and the flusher do. */
static enum aw_err resolve(const struct aw_config_file *cfg, const char *id,
                           const struct aw_event_setting *settings, size_t n, struct aw_account *a)
{
    return aw_account_resolve(aw_config_file_get(cfg, id), id, settings, n, a);
}

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
            struct aw_config_file *cfg = NULL;
            char err[2048];
            enum aw_err rc = aw_config_file_load(path, test_getenv, NULL, &cfg, err, sizeof err);
            if (k == 0) {
                AW_CHECK_MSG(rc == AW_OK, "%s should load: %s", e->d_name, err);
            } else {
                AW_CHECK_MSG(rc == AW_ERR_CONFIG && cfg == NULL, "%s should be refused", e->d_name);
                AW_CHECK_MSG(strstr(err, path) != NULL, "%s: error lacks the file path: %s",
                             e->d_name, err);
                AW_CHECK_MSG(strstr(err, "SECRET") == NULL, "%s: secret in error: %s", e->d_name,
                             err);
            }
            aw_config_file_free(cfg);
            n++;
        }
        closedir(d);
        AW_CHECK_MSG(n >= 3, "too few %s config fixtures", kinds[k]);
    }
}

static struct aw_config_file *load_fixture(const char *rel)
{
    char path[4096];
    aw_test_src_path(path, sizeof path, rel);
    struct aw_config_file *cfg = NULL;
    char err[1024];
    AW_CHECK_MSG(aw_config_file_load(path, test_getenv, NULL, &cfg, err, sizeof err) == AW_OK,
                 "%s: %s", rel, err);
    return cfg;
}

static void test_config_overrides(void)
{
    struct aw_config_file *cfg = load_fixture("tests/data/config/valid/full.json");
    AW_CHECK_INT_EQ(aw_config_file_count(cfg), 3);
    struct aw_event_setting msg[] = {{"apiKey", "pk_from_message"},
                                     {"alternateIdentifier", "other"},
                                     {"phoneIdentifier", "phone_number_3"}};
    struct aw_account a;
    AW_CHECK(resolve(cfg, "123456", msg, 3, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.api_key, "pk_fixture_123456");
    AW_CHECK_STR_EQ(a.alternate_identity, "customer");
    AW_CHECK_STR_EQ(a.phone_identity, "mobile_number");
    aw_account_clear(&a);
    AW_CHECK(resolve(cfg, "789", msg, 3, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.api_key, "pk_fixture_from_env");
    AW_CHECK_STR_EQ(a.alternate_identity, "other2");
    AW_CHECK_STR_EQ(a.phone_identity, "phone_number_2");
    aw_account_clear(&a);
    /* apiKeyFile relative to the config file's directory, newline trimmed; the file overrides
     * only the keys it has (phoneIdentifier comes from the message). */
    AW_CHECK(resolve(cfg, "42", msg, 3, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.api_key, "pk_fixture_from_file");
    AW_CHECK(a.alternate_identity == NULL);
    AW_CHECK_STR_EQ(a.phone_identity, "phone_number_3");
    aw_account_clear(&a);
    /* An account not in the file uses the message only. */
    AW_CHECK(aw_config_file_get(cfg, "999") == NULL);
    AW_CHECK(aw_config_file_get(NULL, "123456") == NULL);
    AW_CHECK_INT_EQ(aw_config_file_count(NULL), 0);
    AW_CHECK(resolve(cfg, "999", msg, 3, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.api_key, "pk_from_message");
    AW_CHECK_STR_EQ(a.alternate_identity, "other");
    aw_account_clear(&a);
    aw_config_file_free(cfg);

    cfg = load_fixture("tests/data/config/valid/overrides_only.json");
    AW_CHECK(resolve(cfg, "123456", msg, 3, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.api_key, "pk_from_message");
    AW_CHECK_STR_EQ(a.phone_identity, "phone_number_3");
    aw_account_clear(&a);
    AW_CHECK(resolve(cfg, "55", NULL, 0, &a) == AW_ERR_INVALID);
    AW_CHECK_STR_EQ(a.problem, AW_ACCOUNT_MISSING_API_KEY);
    aw_account_clear(&a);
    aw_config_file_free(cfg);
    aw_config_file_free(NULL);
}

static void test_config_errors(void)
{
    struct aw_config_file *cfg = NULL;
    char err[2048];

    /* All problems are listed, with JSON pointers (RFC 6901 escaping). */
    char path[4096];
    aw_test_src_path(path, sizeof path, "tests/data/config/invalid/multiple_problems.json");
    AW_CHECK(aw_config_file_load(path, test_getenv, NULL, &cfg, err, sizeof err) == AW_ERR_CONFIG);
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
    char big[AW_CONFIG_FILE_KEY_MAX_BYTES + 16];
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
    AW_CHECK(resolve(cfg, "7", NULL, 0, &a) == AW_OK);
    AW_CHECK_STR_EQ(a.api_key, "pk_good_key");
    aw_account_clear(&a);
    aw_config_file_free(cfg);
    cfg = NULL;
    unlink(keyfile);

    /* An env var holding a bad key: refused without echoing it. */
    AW_CHECK(load_text("{\"7\": {\"apiKey\": \"pk_SECRET_x y\", \"apiKeyEnv\": \"AW_SECRET_ENV\"}}",
                       &cfg, err, sizeof err) == AW_ERR_CONFIG);
    AW_CHECK(strstr(err, "SECRET") == NULL);
    AW_CHECK(strstr(err, "exclusive") != NULL);

    /* Missing file, NULL path. */
    AW_CHECK(aw_config_file_load("/nonexistent/aw.json", test_getenv, NULL, &cfg, err,
                                 sizeof err) == AW_ERR_CONFIG);
    AW_CHECK(strstr(err, "/nonexistent/aw.json: cannot read") != NULL);
    AW_CHECK(aw_config_file_load(NULL, NULL, NULL, &cfg, err, sizeof err) == AW_ERR_CONFIG);

    /* A tiny error buffer truncates with "..." and stays terminated. */
    char tiny[24];
    AW_CHECK(aw_config_file_load(path, test_getenv, NULL, &cfg, tiny, sizeof tiny) ==
             AW_ERR_CONFIG);
    AW_CHECK(strlen(tiny) == sizeof tiny - 1);
    AW_CHECK(strcmp(tiny + sizeof tiny - 4, "...") == 0);
    AW_CHECK(aw_config_file_load(path, test_getenv, NULL, &cfg, NULL, 0) == AW_ERR_CONFIG);
    AW_CHECK(cfg == NULL);
}

int main(void)
{
    test_config_fixtures();
    test_config_overrides();
    test_config_errors();
    return aw_test_done();
}
