/* config_file.c -- AW_CONFIG_FILE (docs/design.md §2): jansson parses the file; the values are
 * checked with account.c's grammar. Nothing here logs. Error texts name files, JSON pointers and
 * setting names, never values: jansson's own error text quotes the input near the error, which
 * could be an API key, so only its line/column and error code are used. */
#include "worker/ingest/config_file.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/mem.h"
#include "common/text.h"
#include "worker/ingest/account.h"
#include "worker/ingest/event.h"

struct config_entry {
    char *account_id;
    struct aw_account_overrides ov; /* owned strings; each validated at load */
};

struct aw_config_file {
    struct config_entry *entries; /* sorted by account_id */
    size_t n;
};

/* ---------------------------------------------------------------- problems */

/* Collects problems, one per line, into errbuf (truncated with "..." when full). */
struct problems {
    char *buf;
    size_t len;
    size_t used;
    size_t count;
    bool truncated;
};

static void problem_add(struct problems *pr, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void problem_add(struct problems *pr, const char *fmt, ...)
{
    pr->count++;
    if (!pr->buf || pr->len == 0 || pr->truncated)
        return;
    size_t room = pr->len - pr->used;
    if (pr->used > 0) {
        if (room < 2) {
            pr->truncated = true;
            return;
        }
        pr->buf[pr->used++] = '\n';
        pr->buf[pr->used] = '\0';
        room--;
    }
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(pr->buf + pr->used, room, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= room) {
        pr->truncated = true;
        pr->used = pr->len - 1;
        if (pr->len >= 4)
            memcpy(pr->buf + pr->len - 4, "...", 4);
        return;
    }
    pr->used += (size_t)w;
}

/* Writes the RFC 6901 escaped form of key into a pointer buffer. */
static void pointer_escape(char *out, size_t outlen, const char *key)
{
    size_t o = 0;
    for (const char *p = key; *p && o + 3 < outlen; p++) {
        if (*p == '~') {
            out[o++] = '~';
            out[o++] = '0';
        } else if (*p == '/') {
            out[o++] = '~';
            out[o++] = '1';
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

/* ---------------------------------------------------------------- files */

/* Reads a whole (small) file. Returns NULL and sets *why on failure (static text). The buffer
 * is wiped on failure: it may hold a key. */
static char *read_small_file(const char *path, size_t max_bytes, size_t *len_out, const char **why)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *why = strerror(errno);
        return NULL;
    }
    struct aw_buf b;
    aw_buf_init(&b, max_bytes);
    char chunk[4096];
    size_t n;
    bool ok = true;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (aw_buf_append(&b, chunk, n) != AW_OK) {
            *why = "file too large";
            ok = false;
            break;
        }
    }
    if (ok && ferror(f)) {
        *why = "read error";
        ok = false;
    }
    fclose(f);
    if (!ok) {
        if (b.data)
            memset(b.data, 0, b.cap);
        aw_buf_free(&b);
        return NULL;
    }
    if (aw_buf_append(&b, "", 0) != AW_OK) { /* ensures a NUL-terminated (possibly empty) buffer */
        aw_buf_free(&b);
        *why = "file too large";
        return NULL;
    }
    *len_out = b.len;
    return aw_buf_take(&b);
}

/* A relative apiKeyFile is read relative to the config file's directory (a mounted secret
 * usually sits beside the config); caller-owned result. */
static char *resolve_relative(const char *config_path, const char *file)
{
    const char *slash = strrchr(config_path, '/');
    if (file[0] == '/' || !slash)
        return aw_strdup(file);
    size_t dir_len = (size_t)(slash - config_path) + 1;
    size_t n = strlen(file);
    char *out = aw_malloc(dir_len + n + 1);
    memcpy(out, config_path, dir_len);
    memcpy(out + dir_len, file, n + 1);
    return out;
}

static const char *default_getenv(const char *name, void *ctx)
{
    (void)ctx;
    return getenv(name);
}

/* ---------------------------------------------------------------- one account */

/* Where a problem of one setting is reported: "<path>: /<account>/<key>". */
struct at {
    struct problems *pr;
    const char *path; /* the config file */
    const char *ptr;  /* escaped account id */
    const char *kp;   /* escaped key */
};

#define AT_FMT "%s: /%s/%s: "
#define AT_ARGS(a) (a)->path, (a)->ptr, (a)->kp

/* The key named by apiKey (s itself), apiKeyEnv (a variable) or apiKeyFile (a file), trimmed
 * and checked; caller-owned secret, or NULL after reporting the problem. */
static char *read_api_key(const struct at *at, const char *key, const char *s,
                          aw_config_file_getenv_fn getenv_fn, void *ctx)
{
    char *secret = NULL;
    if (strcmp(key, "apiKey") == 0) {
        secret = aw_text_trim_dup(s, strlen(s));
    } else if (strcmp(key, "apiKeyEnv") == 0) {
        if (s[0] == '\0') {
            problem_add(at->pr, AT_FMT "must name an environment variable", AT_ARGS(at));
            return NULL;
        }
        const char *ev = getenv_fn(s, ctx);
        if (!ev || aw_text_is_blank(ev)) {
            /* The variable's name is not secret; its value would be. */
            problem_add(at->pr, AT_FMT "environment variable %s is not set or empty", AT_ARGS(at),
                        s);
            return NULL;
        }
        secret = aw_text_trim_dup(ev, strlen(ev));
    } else {
        if (s[0] == '\0') {
            problem_add(at->pr, AT_FMT "must name a file", AT_ARGS(at));
            return NULL;
        }
        size_t len = 0;
        const char *why = NULL;
        char *key_path = resolve_relative(at->path, s);
        char *content = read_small_file(key_path, AW_CONFIG_FILE_KEY_MAX_BYTES, &len, &why);
        free(key_path);
        if (!content) {
            problem_add(at->pr, AT_FMT "cannot read key file %s: %s", AT_ARGS(at), s, why);
            return NULL;
        }
        if (strlen(content) != len) {
            aw_account_free_secret(content);
            problem_add(at->pr, AT_FMT "key file %s contains NUL", AT_ARGS(at), s);
            return NULL;
        }
        secret = aw_text_trim_dup(content, len);
        aw_account_free_secret(content);
    }
    if (!aw_account_api_key_is_clean(secret)) {
        problem_add(at->pr, AT_FMT "API key is empty or contains spaces or control characters",
                    AT_ARGS(at));
        aw_account_free_secret(secret);
        return NULL;
    }
    return secret;
}

/* A copy of an identifier setting's value when parse (account.c's grammar) accepts it; NULL
 * after reporting the problem. */
static char *take_identifier(const struct at *at, const char *s,
                             enum aw_err (*parse)(const char *, const char **),
                             const char *expected)
{
    const char *type;
    if (parse(s, &type) != AW_OK) {
        problem_add(at->pr, AT_FMT "unknown value (expected %s)", AT_ARGS(at), expected);
        return NULL;
    }
    return aw_strdup(s);
}

static bool is_key_source(const char *key)
{
    return strcmp(key, "apiKey") == 0 || strcmp(key, "apiKeyEnv") == 0 ||
           strcmp(key, "apiKeyFile") == 0;
}

/* Parses one account object into *e; problems go to pr. */
static void parse_account(const char *path, const char *account_id, json_t *obj,
                          aw_config_file_getenv_fn getenv_fn, void *ctx, struct config_entry *e,
                          struct problems *pr)
{
    char ptr[512];
    pointer_escape(ptr, sizeof ptr, account_id);
    e->account_id = aw_strdup(account_id);
    if (account_id[0] == '\0')
        problem_add(pr, "%s: /: account id must not be empty", path);
    if (!json_is_object(obj)) {
        problem_add(pr, "%s: /%s: must be an object", path, ptr);
        return;
    }
    int key_sources = 0;
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        char kp[256];
        pointer_escape(kp, sizeof kp, key);
        const struct at at = {pr, path, ptr, kp};
        bool known = is_key_source(key) || strcmp(key, "alternateIdentifier") == 0 ||
                     strcmp(key, "phoneIdentifier") == 0;
        if (!known) {
            problem_add(pr,
                        AT_FMT "unknown key (expected apiKey, apiKeyEnv, apiKeyFile, "
                               "alternateIdentifier, phoneIdentifier)",
                        AT_ARGS(&at));
            continue;
        }
        if (!json_is_string(v)) {
            problem_add(pr, AT_FMT "must be a string", AT_ARGS(&at));
            continue;
        }
        const char *s = json_string_value(v);
        if (strlen(s) != json_string_length(v)) {
            problem_add(pr, AT_FMT "must not contain NUL", AT_ARGS(&at));
            continue;
        }
        if (is_key_source(key)) {
            if (++key_sources > 1) {
                problem_add(pr, AT_FMT "apiKey, apiKeyEnv and apiKeyFile are exclusive",
                            AT_ARGS(&at));
                continue;
            }
            e->ov.api_key = read_api_key(&at, key, s, getenv_fn, ctx);
        } else if (strcmp(key, "alternateIdentifier") == 0) {
            e->ov.alternate_identifier = take_identifier(
                &at, s, aw_account_parse_alternate, "None, customer, other, other2 .. other10");
        } else {
            e->ov.phone_identifier = take_identifier(
                &at, s, aw_account_parse_phone, "mobile_number, phone_number_2, phone_number_3");
        }
    }
}

/* ---------------------------------------------------------------- the file */

static void entry_clear(struct config_entry *e)
{
    free(e->account_id);
    aw_account_free_secret(e->ov.api_key);
    free(e->ov.alternate_identifier);
    free(e->ov.phone_identifier);
    memset(e, 0, sizeof *e);
}

void aw_config_file_free(struct aw_config_file *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n; i++)
        entry_clear(&cfg->entries[i]);
    free(cfg->entries);
    free(cfg);
}

size_t aw_config_file_count(const struct aw_config_file *cfg)
{
    return cfg ? cfg->n : 0;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct config_entry *)a)->account_id,
                  ((const struct config_entry *)b)->account_id);
}

enum aw_err aw_config_file_load(const char *path, aw_config_file_getenv_fn getenv_fn, void *ctx,
                                struct aw_config_file **out, char *errbuf, size_t errlen)
{
    struct problems pr = {errbuf, errlen, 0, 0, false};
    if (errbuf && errlen)
        errbuf[0] = '\0';
    *out = NULL;
    if (!getenv_fn)
        getenv_fn = default_getenv;
    if (!path || !*path) {
        problem_add(&pr, "(config): no path given");
        return AW_ERR_CONFIG;
    }
    size_t len = 0;
    const char *why = NULL;
    char *text = read_small_file(path, AW_CONFIG_FILE_MAX_BYTES, &len, &why);
    if (!text) {
        problem_add(&pr, "%s: cannot read: %s", path, why);
        return AW_ERR_CONFIG;
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    memset(text, 0, len);
    free(text);
    if (!root) {
        problem_add(&pr, "%s:%d:%d: %s", path, jerr.line, jerr.column,
                    aw_event_json_error_str(json_error_code(&jerr)));
        return AW_ERR_CONFIG;
    }
    if (!json_is_object(root)) {
        problem_add(&pr, "%s: : must be an object keyed by account id", path);
        json_decref(root);
        return AW_ERR_CONFIG;
    }
    struct aw_config_file *cfg = aw_calloc(1, sizeof *cfg);
    size_t n = json_object_size(root);
    cfg->entries = aw_calloc(n ? n : 1, sizeof *cfg->entries);
    const char *account_id;
    json_t *obj;
    json_object_foreach(root, account_id, obj)
    {
        parse_account(path, account_id, obj, getenv_fn, ctx, &cfg->entries[cfg->n], &pr);
        cfg->n++;
    }
    json_decref(root);
    if (pr.count > 0) {
        aw_config_file_free(cfg);
        return AW_ERR_CONFIG;
    }
    qsort(cfg->entries, cfg->n, sizeof *cfg->entries, entry_cmp);
    *out = cfg;
    return AW_OK;
}

const struct aw_account_overrides *aw_config_file_get(const struct aw_config_file *cfg,
                                                      const char *account_id)
{
    if (!cfg || !account_id || cfg->n == 0)
        return NULL;
    struct config_entry key = {.account_id = (char *)(uintptr_t)account_id};
    const struct config_entry *e =
        bsearch(&key, cfg->entries, cfg->n, sizeof *cfg->entries, entry_cmp);
    return e ? &e->ov : NULL;
}
