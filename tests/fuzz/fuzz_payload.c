/* fuzz_payload.c -- arbitrary bytes into the pending-change codec (aw_change_record_decode, the
 * input read as "<field>\t<value>" lines, the flat record the store's take script returns),
 * every Klaviyo response parser (parse.c) and the request path builder (api.c). Properties
 * checked: no crash, leak or sanitizer report; a refused record leaves nothing behind; a decoded
 * change is accepted or refused cleanly by the body builders (build.c); a built path holds only
 * URL-safe characters whatever id, filter and cursor it carries. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "worker/klaviyo/api.h"
#include "worker/klaviyo/build.h"
#include "worker/klaviyo/parse.h"
#include "worker/store/change.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELDS_MAX 64

static void check_change(const char *text, size_t len)
{
    struct aw_change_field f[FIELDS_MAX];
    size_t n = 0;
    const char *p = text, *end = text + len;
    while (p < end && n < FIELDS_MAX) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *tab = memchr(p, '\t', (size_t)(le - p));
        if (tab)
            f[n++] =
                (struct aw_change_field){p, (size_t)(tab - p), tab + 1, (size_t)(le - tab - 1)};
        p = nl ? nl + 1 : end;
    }
    struct aw_change c;
    const char *aud = len > 0 && (text[0] & 1) ? "7" : NULL;
    if (aw_change_record_decode("42", aud, "user@example.com", f, n, &c) != AW_OK) {
        AW_ASSERT(c.email == NULL && c.attrs == NULL && c.consents == NULL);
        return;
    }
    AW_ASSERT(c.email && strcmp(c.email, "user@example.com") == 0);
    for (size_t i = 0; i + 1 < c.n_attrs; i++)
        AW_ASSERT(strcmp(c.attrs[i].path, c.attrs[i + 1].path) < 0);
    AW_ASSERT(c.n_consents <= 2);
    const struct aw_change *one[1] = {&c};
    char *body = NULL;
    size_t used = 0;
    if (aw_build_import(one, 1, c.list_id && c.list_id[0] ? c.list_id : NULL, 0, 0, &body, &used) ==
        AW_OK)
        AW_ASSERT(body != NULL && used == 1);
    free(body);
    body = NULL;
    if (aw_build_needs_profile_import(&c)) {
        if (aw_build_profile_import(&c, &body) == AW_OK)
            AW_ASSERT(body != NULL);
        free(body);
        body = NULL;
    }
    if (aw_build_subscribe(one, 1, 0, &body, &used) == AW_OK)
        AW_ASSERT(aw_build_has_subscribe(&c));
    free(body);
    body = NULL;
    if (aw_build_unsubscribe(one, 1, 0, &body, &used) == AW_OK)
        AW_ASSERT(aw_build_has_unsubscribe(&c));
    free(body);
    body = NULL;
    const char *emails[1] = {c.email};
    if (aw_build_email_filter(emails, 1, 0, 0, &body, &used) == AW_OK)
        AW_ASSERT(used == 1);
    free(body);
    body = NULL;
    if (c.audience_name && aw_build_list_name_filter(c.audience_name, &body) == AW_OK)
        free(body);

    aw_change_clear(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* heap copy of exactly size bytes: reading past the end is a sanitizer report */
    char *text = aw_malloc(size ? size : 1);
    if (size)
        memcpy(text, data, size);
    check_change(text, size);

    struct aw_parse_import_job job;
    if (aw_parse_import_job(text, size, &job) == AW_OK)
        AW_ASSERT(job.id != NULL && job.total_count >= 0);
    aw_parse_import_job_clear(&job);

    struct aw_parse_errors errs;
    if (aw_parse_import_errors(text, size, &errs) == AW_OK)
        for (size_t i = 0; i < errs.n; i++)
            AW_ASSERT(errs.items[i].id && errs.items[i].code && errs.items[i].title);
    aw_parse_errors_clear(&errs);
    if (aw_parse_error_doc(text, size, &errs) == AW_OK)
        for (size_t i = 0; i < errs.n; i++)
            AW_ASSERT(!errs.items[i].has_index || errs.items[i].pointer);
    aw_parse_errors_clear(&errs);

    struct aw_parse_page page;
    if (aw_parse_profiles_page(text, size, &page) == AW_OK)
        for (size_t i = 0; i < page.n; i++)
            AW_ASSERT(page.items[i].id && page.items[i].id[0]);
    aw_parse_page_clear(&page);
    if (aw_parse_lists_page(text, size, &page) == AW_OK)
        for (size_t i = 0; i < page.n; i++)
            AW_ASSERT(page.items[i].id && page.items[i].id[0]);
    aw_parse_page_clear(&page);

    char *id = NULL;
    if (aw_parse_resource_id(text, size, "list", &id) == AW_OK)
        AW_ASSERT(id && id[0]);
    free(id);

    /* NUL-terminated view for the string helpers */
    char *z = aw_strndup(text, size);
    free(aw_parse_cursor_from_url(z));
    size_t idx;
    (void)aw_parse_pointer_index(z, &idx);
    char *path = NULL;
    struct aw_api_query q = {.filter = z, .page_size = 1, .cursor = z};
    if (aw_api_path_build(AW_API_LIST_PROFILES, z, &q, &path) == AW_OK) {
        for (const char *p = path; *p; p++)
            AW_ASSERT(*p > 0x20 && *p < 0x7F && *p != '#' && *p != ' ');
        /* the id stays one path segment */
        const char *slash = strchr(path + strlen("/api/lists/"), '/');
        AW_ASSERT(slash && strncmp(slash, "/profiles", strlen("/profiles")) == 0);
    }
    free(path);
    free(z);
    free(text);
    return 0;
}
