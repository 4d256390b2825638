/* parse.c -- Klaviyo response parsers (see parse.h). Every document is read with jansson
 * (json_loadb, duplicate keys refused); nothing here writes JSON. */
#include "worker/klaviyo/parse.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "common/text.h"

static json_t *load_doc(const char *body, size_t len)
{
    if (!body)
        return NULL;
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc && !json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* Owned copy of a string member, or of dflt (NULL allowed) when absent/null; false when the
 * member exists with another type. */
static bool take_str(json_t *obj, const char *key, const char *dflt, char **dst)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    *dst = NULL;
    if (!v || json_is_null(v)) {
        *dst = dflt ? aw_strdup(dflt) : NULL;
        return true;
    }
    if (!json_is_string(v))
        return false;
    /* jansson strings may hold U+0000; a C string would silently truncate it */
    if (strlen(json_string_value(v)) != json_string_length(v))
        return false;
    *dst = aw_strdup(json_string_value(v));
    return true;
}

static bool take_count(json_t *obj, const char *key, bool required, int64_t *dst)
{
    json_t *v = json_object_get(obj, key);
    *dst = 0;
    if (!v || json_is_null(v))
        return !required;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *dst = (int64_t)json_integer_value(v);
    return true;
}

static const char *const JOB_STATUS[] = {"queued", "processing", "complete", "cancelled"};

const char *aw_parse_job_status_str(enum aw_parse_job_status status)
{
    if ((size_t)status < sizeof JOB_STATUS / sizeof JOB_STATUS[0])
        return JOB_STATUS[status];
    return "unknown";
}

bool aw_parse_job_is_done(enum aw_parse_job_status status)
{
    return status == AW_PARSE_JOB_COMPLETE || status == AW_PARSE_JOB_CANCELLED;
}

void aw_parse_import_job_clear(struct aw_parse_import_job *job)
{
    if (!job)
        return;
    free(job->id);
    memset(job, 0, sizeof *job);
}

/* One profile-bulk-import-job resource object into *out (cleared when false). */
static bool parse_job_resource(json_t *data, struct aw_parse_import_job *out)
{
    memset(out, 0, sizeof *out);
    json_t *attrs = json_object_get(data, "attributes");
    json_t *type = json_object_get(data, "type");
    const char *status = json_string_value(json_object_get(attrs, "status"));
    bool ok = json_is_object(attrs) && json_is_string(type) &&
              strcmp(json_string_value(type), "profile-bulk-import-job") == 0 && status;
    ok = ok && take_str(data, "id", NULL, &out->id) && out->id && out->id[0];
    if (ok) {
        size_t k = 0;
        while (k < sizeof JOB_STATUS / sizeof JOB_STATUS[0] && strcmp(JOB_STATUS[k], status) != 0)
            k++;
        ok = k < sizeof JOB_STATUS / sizeof JOB_STATUS[0];
        out->status = (enum aw_parse_job_status)k;
    }
    ok = ok && take_count(attrs, "total_count", true, &out->total_count) &&
         take_count(attrs, "completed_count", false, &out->completed_count) &&
         take_count(attrs, "failed_count", false, &out->failed_count);
    if (!ok)
        aw_parse_import_job_clear(out);
    return ok;
}

enum aw_err aw_parse_import_job(const char *body, size_t len, struct aw_parse_import_job *out)
{
    AW_ASSERT(out != NULL);
    json_t *doc = load_doc(body, len);
    bool ok = parse_job_resource(json_object_get(doc, "data"), out);
    json_decref(doc);
    return ok ? AW_OK : AW_ERR_PROTOCOL;
}

bool aw_parse_pointer_index(const char *pointer, size_t *index)
{
    static const char *const prefixes[] = {"/data/attributes/profiles/data/", "/data/"};
    if (!pointer)
        return false;
    for (size_t k = 0; k < 2; k++) {
        size_t plen = strlen(prefixes[k]);
        if (strncmp(pointer, prefixes[k], plen) != 0)
            continue;
        const char *p = pointer + plen;
        if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
            continue;
        size_t v = 0;
        bool overflow = false;
        for (; *p >= '0' && *p <= '9'; p++) {
            size_t d = (size_t)(*p - '0');
            if (v > ((size_t)-1 - d) / 10)
                overflow = true;
            else
                v = v * 10 + d;
        }
        if (overflow || (*p != '\0' && *p != '/'))
            continue;
        if (index)
            *index = v;
        return true;
    }
    return false;
}

char *aw_parse_cursor_from_url(const char *url)
{
    if (!url)
        return NULL;
    const char *q = strchr(url, '?');
    if (!q)
        return NULL;
    const char *end = strchr(q, '#');
    if (!end)
        end = q + strlen(q);
    const char *p = q + 1;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        if (eq) {
            char *name = aw_text_pct_decode(p, (size_t)(eq - p));
            bool match = name && strcmp(name, "page[cursor]") == 0;
            free(name);
            if (match) {
                char *v = aw_text_pct_decode(eq + 1, (size_t)(pe - eq - 1));
                if (v && !v[0]) {
                    free(v);
                    v = NULL;
                }
                return v;
            }
        }
        p = pe + 1;
    }
    return NULL;
}

static bool take_next_cursor(json_t *doc, char **dst)
{
    *dst = NULL;
    json_t *links = json_object_get(doc, "links");
    if (!links || json_is_null(links))
        return true;
    if (!json_is_object(links))
        return false;
    json_t *next = json_object_get(links, "next");
    if (!next || json_is_null(next))
        return true;
    if (!json_is_string(next))
        return false;
    *dst = aw_parse_cursor_from_url(json_string_value(next));
    return true;
}

void aw_parse_errors_clear(struct aw_parse_errors *errs)
{
    if (!errs)
        return;
    for (size_t i = 0; i < errs->n; i++) {
        struct aw_parse_error *e = &errs->items[i];
        free(e->id);
        free(e->code);
        free(e->title);
        free(e->detail);
        free(e->pointer);
        free(e->email);
    }
    free(errs->items);
    free(errs->next_cursor);
    memset(errs, 0, sizeof *errs);
}

/* Fills e from an object holding code/title/detail/source (+ status for error documents). */
static bool fill_error(json_t *fields, struct aw_parse_error *e)
{
    if (!json_is_object(fields))
        return false;
    if (!take_str(fields, "code", "", &e->code) || !take_str(fields, "title", "", &e->title) ||
        !take_str(fields, "detail", "", &e->detail))
        return false;
    json_t *status = json_object_get(fields, "status");
    if (json_is_integer(status)) {
        json_int_t v = json_integer_value(status);
        e->status = (v >= 100 && v <= 599) ? (int)v : 0;
    } else if (json_is_string(status)) {
        const char *s = json_string_value(status);
        char *endp = NULL;
        errno = 0;
        long v = strtol(s, &endp, 10);
        e->status = (errno == 0 && endp != s && *endp == '\0' && v >= 100 && v <= 599) ? (int)v : 0;
    } else if (status && !json_is_null(status)) {
        return false;
    }
    json_t *source = json_object_get(fields, "source");
    if (source && !json_is_null(source)) {
        if (!json_is_object(source) || !take_str(source, "pointer", NULL, &e->pointer))
            return false;
        e->has_index = aw_parse_pointer_index(e->pointer, &e->index);
    }
    return true;
}

static bool take_original_email(json_t *attrs, char **dst)
{
    *dst = NULL;
    json_t *orig = json_object_get(attrs, "original_payload");
    if (!json_is_object(orig))
        return true;
    json_t *inner = json_object_get(orig, "attributes"); /* a profile resource object */
    json_t *holder = json_is_object(inner) ? inner : orig;
    /* an email of another type is not a reason to drop the whole page */
    if (!json_is_string(json_object_get(holder, "email")))
        return true;
    return take_str(holder, "email", NULL, dst);
}

static enum aw_err parse_errors(json_t *doc, json_t *arr, bool import_errors,
                                struct aw_parse_errors *out)
{
    if (!json_is_array(arr))
        return AW_ERR_PROTOCOL;
    size_t n = json_array_size(arr);
    if (n)
        out->items = aw_calloc(n, sizeof *out->items);
    for (size_t i = 0; i < n; i++) {
        json_t *el = json_array_get(arr, i);
        struct aw_parse_error *e = &out->items[i];
        out->n = i + 1; /* owned from here, so clear frees partial entries */
        if (!json_is_object(el) || !take_str(el, "id", "", &e->id))
            return AW_ERR_PROTOCOL;
        json_t *fields = import_errors ? json_object_get(el, "attributes") : el;
        if (!fill_error(fields, e))
            return AW_ERR_PROTOCOL;
        if (import_errors && !take_original_email(fields, &e->email))
            return AW_ERR_PROTOCOL;
    }
    if (import_errors && !take_next_cursor(doc, &out->next_cursor))
        return AW_ERR_PROTOCOL;
    return AW_OK;
}

/* The errors list under member key of a document: import-error resources or error objects. */
static enum aw_err parse_error_list(const char *body, size_t len, const char *key,
                                    bool import_errors, struct aw_parse_errors *out)
{
    AW_ASSERT(out != NULL);
    memset(out, 0, sizeof *out);
    json_t *doc = load_doc(body, len);
    enum aw_err err =
        doc ? parse_errors(doc, json_object_get(doc, key), import_errors, out) : AW_ERR_PROTOCOL;
    json_decref(doc);
    if (err != AW_OK)
        aw_parse_errors_clear(out);
    return err;
}

enum aw_err aw_parse_import_errors(const char *body, size_t len, struct aw_parse_errors *out)
{
    return parse_error_list(body, len, "data", true, out);
}

enum aw_err aw_parse_error_doc(const char *body, size_t len, struct aw_parse_errors *out)
{
    return parse_error_list(body, len, "errors", false, out);
}

void aw_parse_page_clear(struct aw_parse_page *page)
{
    if (!page)
        return;
    for (size_t i = 0; i < page->n; i++) {
        free(page->items[i].id);
        free(page->items[i].value);
    }
    free(page->items);
    free(page->next_cursor);
    memset(page, 0, sizeof *page);
}

/* Reads a listing's data[] element by element through one(element, item i, arg) into a new
 * array of items of size bytes, and links.next into *cursor. False when the page or any element
 * is malformed; what was read is in *items / *n either way (the caller clears it). */
typedef bool (*resource_fn)(json_t *el, void *item, const void *arg);
static bool read_listing(const char *body, size_t len, resource_fn one, const void *arg,
                         size_t size, void **items, size_t *n, char **cursor)
{
    json_t *doc = load_doc(body, len);
    json_t *data = json_object_get(doc, "data");
    bool ok = json_is_array(data);
    size_t count = ok ? json_array_size(data) : 0;
    if (count)
        *items = aw_calloc(count, size);
    for (size_t i = 0; ok && i < count; i++) {
        *n = i + 1;
        ok = one(json_array_get(data, i), (char *)*items + i * size, arg);
    }
    ok = ok && take_next_cursor(doc, cursor);
    json_decref(doc);
    return ok;
}

struct pair_kind {
    const char *type;      /* data[].type */
    const char *value_key; /* the attribute read as the pair's value */
};

/* One resource as (id, attributes.<value_key>). */
static bool pair_resource(json_t *el, void *item, const void *arg)
{
    const struct pair_kind *k = arg;
    struct aw_parse_pair *pr = item;
    json_t *t = json_object_get(el, "type");
    bool ok = json_is_string(t) && strcmp(json_string_value(t), k->type) == 0 &&
              take_str(el, "id", NULL, &pr->id) && pr->id && pr->id[0];
    json_t *attrs = ok ? json_object_get(el, "attributes") : NULL;
    return ok && (!attrs || json_is_object(attrs)) &&
           (!attrs || take_str(attrs, k->value_key, NULL, &pr->value));
}

static enum aw_err parse_page(const char *body, size_t len, const char *type, const char *value_key,
                              struct aw_parse_page *out)
{
    AW_ASSERT(out != NULL);
    memset(out, 0, sizeof *out);
    struct pair_kind k = {type, value_key};
    void *items = NULL;
    bool ok = read_listing(body, len, pair_resource, &k, sizeof *out->items, &items, &out->n,
                           &out->next_cursor);
    out->items = items;
    if (!ok) {
        aw_parse_page_clear(out);
        return AW_ERR_PROTOCOL;
    }
    return AW_OK;
}

enum aw_err aw_parse_profiles_page(const char *body, size_t len, struct aw_parse_page *out)
{
    return parse_page(body, len, "profile", "email", out);
}

enum aw_err aw_parse_lists_page(const char *body, size_t len, struct aw_parse_page *out)
{
    return parse_page(body, len, "list", "name", out);
}

enum aw_err aw_parse_import_jobs_page(const char *body, size_t len, struct aw_parse_page *out)
{
    return parse_page(body, len, "profile-bulk-import-job", "created_at", out);
}

static bool job_resource(json_t *el, void *item, const void *arg)
{
    (void)arg;
    return parse_job_resource(el, item);
}

enum aw_err aw_parse_import_jobs(const char *body, size_t len, struct aw_parse_import_jobs *out)
{
    AW_ASSERT(out != NULL);
    memset(out, 0, sizeof *out);
    void *items = NULL;
    bool ok = read_listing(body, len, job_resource, NULL, sizeof *out->items, &items, &out->n,
                           &out->next_cursor);
    out->items = items;
    if (!ok) {
        aw_parse_import_jobs_clear(out);
        return AW_ERR_PROTOCOL;
    }
    return AW_OK;
}

void aw_parse_import_jobs_clear(struct aw_parse_import_jobs *jobs)
{
    if (!jobs)
        return;
    for (size_t i = 0; i < jobs->n; i++)
        aw_parse_import_job_clear(&jobs->items[i]);
    free(jobs->items);
    free(jobs->next_cursor);
    memset(jobs, 0, sizeof *jobs);
}

enum aw_err aw_parse_resource_id(const char *body, size_t len, const char *type, char **id_out)
{
    AW_ASSERT(id_out != NULL && type != NULL);
    *id_out = NULL;
    json_t *doc = load_doc(body, len);
    json_t *data = json_object_get(doc, "data");
    json_t *t = json_object_get(data, "type");
    bool ok = json_is_string(t) && strcmp(json_string_value(t), type) == 0 &&
              take_str(data, "id", NULL, id_out) && *id_out && (*id_out)[0];
    json_decref(doc);
    if (!ok) {
        free(*id_out);
        *id_out = NULL;
        return AW_ERR_PROTOCOL;
    }
    return AW_OK;
}
