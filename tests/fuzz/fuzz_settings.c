/* fuzz_settings.c -- worker/settings and common/config on arbitrary input.
 * The input is read twice: as a key=value file (aw_config_parse), and as an environment of
 * NAME=value lines given to aw_settings_load. Properties checked beyond "no crash, no leak":
 * a successful load prints without error, its AW_REDIS_URL parses with the store's parser, and
 * the Redis password never appears in the printed AW_REDIS_URL line. File-path variables are
 * ignored so no input opens arbitrary paths. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/mem.h"
#include "common/redis_url.h"
#include "worker/settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_VARS 64

struct fuzz_env {
    char *names[MAX_VARS];
    char *values[MAX_VARS];
    size_t n;
};

static const char *fuzz_get(const char *name, void *ctx)
{
    const struct fuzz_env *e = ctx;
    if (strcmp(name, "AW_KAFKA_CONFIG_FILE") == 0 || strcmp(name, "AW_KLAVIYO_CA_FILE") == 0 ||
        strcmp(name, "AW_CONFIG_FILE") == 0)
        return NULL;
    for (size_t i = 0; i < e->n; i++) {
        if (strcmp(e->names[i], name) == 0)
            return e->values[i];
    }
    return NULL;
}

/* A loaded AW_REDIS_URL parses with the store's parser (common/redis_url.h), and the printed
 * settings never show its password. */
static void check_print(const struct aw_settings *s)
{
    struct aw_redis_url u;
    char why[256];
    AW_ASSERT(s->redis.url != NULL);
    AW_ASSERT(aw_redis_url_parse(s->redis.url, &u, why, sizeof why) == AW_OK);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        aw_redis_url_wipe(&u);
        return;
    }
    AW_ASSERT(aw_settings_print(s, f) == AW_OK);
    fclose(f);
    const char *pw = u.password;
    if (strlen(pw) >= 4) {
        /* The line that starts with the name (another value may contain the same text). */
        const char *line =
            strncmp(text, "AW_REDIS_URL=", 13) == 0 ? text : strstr(text, "\nAW_REDIS_URL=");
        AW_ASSERT(line != NULL);
        if (*line == '\n')
            line++;
        const char *eol = strchr(line, '\n');
        char *url = aw_strndup(line, eol ? (size_t)(eol - line) : strlen(line));
        /* A password without URL punctuation can only show up inside one token of the line;
         * skip the ones that may legitimately hold the same characters. */
        bool coincidence = strpbrk(pw, ":/@?=*[]%,") != NULL ||
                           strspn(pw, "0123456789") == strlen(pw) ||
                           strstr("AW_REDIS_URL redis unix db", pw) || strstr(u.user, pw);
        for (size_t i = 0; i < u.n_nodes && !coincidence; i++)
            coincidence = strstr(u.nodes[i].host, pw) != NULL;
        AW_ASSERT(coincidence || strstr(url, pw) == NULL);
        free(url);
    }
    aw_redis_url_wipe(&u);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct aw_config c;
    aw_config_init(&c);
    (void)aw_config_parse(&c, "fuzz", (const char *)data, size);
    aw_config_free(&c);

    struct fuzz_env e = {.n = 0};
    const char *p = (const char *)data, *end = p + size;
    while (p < end && e.n < MAX_VARS) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *eq = memchr(p, '=', (size_t)(le - p));
        if (eq) {
            e.names[e.n] = aw_strndup(p, (size_t)(eq - p));
            e.values[e.n] = aw_strndup(eq + 1, (size_t)(le - eq - 1)); /* stops at a NUL */
            e.n++;
        }
        p = nl ? nl + 1 : end;
    }
    for (int purpose = 0; purpose < 2; purpose++) {
        struct aw_settings s;
        struct aw_settings_problems probs = {0};
        enum aw_err rc =
            aw_settings_load(&s, fuzz_get, &e, (enum aw_settings_purpose)purpose, &probs);
        AW_ASSERT((rc == AW_OK) == (probs.n == 0));
        if (rc == AW_OK) {
            check_print(&s);
            aw_settings_free(&s);
        }
        aw_settings_problems_free(&probs);
    }
    for (size_t i = 0; i < e.n; i++) {
        free(e.names[i]);
        free(e.values[i]);
    }
    return 0;
}
