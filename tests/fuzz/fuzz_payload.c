/* fuzz_payload.c -- arbitrary bytes into the pending-store decoder (aw_change_decode), every
 * Klaviyo response parser (parse.c) and the request path builder (api.c). Properties checked:
 * no crash, leak or sanitizer report; a decoded change re-encodes, decodes back to the same
 * text (stable codec) and is accepted or refused cleanly by the body builders (build.c); a
 * built path holds only URL-safe characters whatever id, filter and cursor it carries. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "worker/klaviyo/api.h"
#include "worker/klaviyo/build.h"
#include "worker/klaviyo/parse.h"
#include "worker/store/change.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_change(const char *text, size_t len)
{
    struct aw_change c;
    if (aw_change_decode(text, len, &c) != AW_OK) {
        AW_ASSERT(c.email == NULL && c.attrs == NULL);
        return;
    }
    char *enc = NULL;
    AW_ASSERT(aw_change_encode(&c, &enc) == AW_OK);
    struct aw_change d;
    AW_ASSERT(aw_change_decode(enc, strlen(enc), &d) == AW_OK);
    char *enc2 = NULL;
    AW_ASSERT(aw_change_encode(&d, &enc2) == AW_OK);
    AW_ASSERT(strcmp(enc, enc2) == 0);
    AW_ASSERT(aw_change_version_cmp(c.version_ms, c.event_id, d.version_ms, d.event_id) == 0);

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

    free(enc);
    free(enc2);
    aw_change_clear(&d);
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
