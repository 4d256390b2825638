/* api.c -- the Klaviyo API table and request paths (see api.h). Every number below is quoted
 * from the operation in schemas/vendor/klaviyo/openapi-stable-2026-07-15.json (x-klaviyo-
 * ratelimit, the page[size] schema, or the description's text) unless its comment says it is
 * ours; tests/unit/test_api_spec.py holds the table to the spec. MB and KB in the spec's text
 * are read as decimal units, the smaller reading, so a body stays under either. */
#include "worker/klaviyo/api.h"

#include <string.h>

#include "common/buf.h"
#include "common/mem.h"

#define BUDGET(max_bytes) ((size_t)(max_bytes) / 100u * AW_API_BODY_MARGIN_PCT)

static const struct aw_api_op OPS[AW_API_ENDPOINT_COUNT] = {
    [AW_API_CREATE_LIST] =
        {
            .endpoint = AW_API_CREATE_LIST,
            .name = "create_list",
            .method = AW_API_POST,
            .path = "/api/lists",
            .burst_per_s = 10,
            .steady_per_min = 150,
            .daily = 150,
        },
    [AW_API_GET_LISTS] =
        {
            .endpoint = AW_API_GET_LISTS,
            .name = "get_lists",
            .method = AW_API_GET,
            .path = "/api/lists",
            .page_size_max = 10,
            .filterable = true,
            .burst_per_s = 75,
            .steady_per_min = 750,
        },
    /* The spec's 10/s-150/m tier of this operation applies only with
     * additional-fields[profile]=predictive_analytics, which the worker never asks for. */
    [AW_API_GET_PROFILES] =
        {
            .endpoint = AW_API_GET_PROFILES,
            .name = "get_profiles",
            .method = AW_API_GET,
            .path = "/api/profiles",
            .page_size_max = 100,
            .filterable = true,
            /* ours (docs/design.md §5): as many emails as one page of answers holds */
            .filter_max_values = 100,
            /* ours: any(email,[...]) text per lookup, so the URL stays well under the 8 KB
             * that servers and proxies commonly accept once percent-encoded */
            .filter_max_bytes = 6000,
            .burst_per_s = 75,
            .steady_per_min = 750,
        },
    /* "Accepts up to 10,000 profiles per request. The maximum allowed payload size is 5MB. The
     * maximum allowed payload size per-profile is 100KB." */
    [AW_API_IMPORT_CREATE] =
        {
            .endpoint = AW_API_IMPORT_CREATE,
            .name = "bulk_import_profiles",
            .method = AW_API_POST,
            .path = "/api/profile-bulk-import-jobs",
            .max_items = 10000,
            .max_bytes = 5000000,
            .budget_bytes = BUDGET(5000000),
            .max_item_bytes = 100000,
            .burst_per_s = 10,
            .steady_per_min = 150,
        },
    [AW_API_IMPORT_GET_JOB] =
        {
            .endpoint = AW_API_IMPORT_GET_JOB,
            .name = "get_bulk_import_profiles_job",
            .method = AW_API_GET,
            .path = "/api/profile-bulk-import-jobs/{job_id}",
            .burst_per_s = 10,
            .steady_per_min = 150,
        },
    [AW_API_IMPORT_LIST_JOBS] =
        {
            .endpoint = AW_API_IMPORT_LIST_JOBS,
            .name = "get_bulk_import_profiles_jobs",
            .method = AW_API_GET,
            .path = "/api/profile-bulk-import-jobs",
            .page_size_max = 100,
            .filterable = true,
            .sort_newest = "-created_at", /* ours: the account's newest jobs, polled at once */
            .burst_per_s = 10,
            .steady_per_min = 150,
        },
    [AW_API_IMPORT_ERRORS] =
        {
            .endpoint = AW_API_IMPORT_ERRORS,
            .name = "get_errors_for_bulk_import_profiles_job",
            .method = AW_API_GET,
            .path = "/api/profile-bulk-import-jobs/{id}/import-errors",
            .page_size_max = 100,
            .burst_per_s = 10,
            .steady_per_min = 150,
        },
    /* "The maximum allowed payload size is 100KB." One profile per request: the body is a
     * single resource object (max_items is that shape, not a quoted number). */
    [AW_API_PROFILE_IMPORT] =
        {
            .endpoint = AW_API_PROFILE_IMPORT,
            .name = "create_or_update_profile",
            .method = AW_API_POST,
            .path = "/api/profile-import",
            .max_items = 1,
            .max_bytes = 100000,
            .budget_bytes = BUDGET(100000),
            .burst_per_s = 75,
            .steady_per_min = 750,
        },
    /* "Maximum number of profiles can be submitted for subscription: 1000" */
    [AW_API_SUBSCRIBE] =
        {
            .endpoint = AW_API_SUBSCRIBE,
            .name = "bulk_subscribe_profiles",
            .method = AW_API_POST,
            .path = "/api/profile-subscription-bulk-create-jobs",
            .max_items = 1000,
            .burst_per_s = 75,
            .steady_per_min = 750,
        },
    /* "Maximum number of profiles per call: 100" */
    [AW_API_UNSUBSCRIBE] =
        {
            .endpoint = AW_API_UNSUBSCRIBE,
            .name = "bulk_unsubscribe_profiles",
            .method = AW_API_POST,
            .path = "/api/profile-subscription-bulk-delete-jobs",
            .max_items = 100,
            .burst_per_s = 75,
            .steady_per_min = 750,
        },
    /* "This endpoint accepts a maximum of 1000 profiles per call." (both directions) */
    [AW_API_LIST_ADD_PROFILES] =
        {
            .endpoint = AW_API_LIST_ADD_PROFILES,
            .name = "add_profiles_to_list",
            .method = AW_API_POST,
            .path = "/api/lists/{id}/relationships/profiles",
            .max_items = 1000,
            .burst_per_s = 10,
            .steady_per_min = 150,
        },
    [AW_API_LIST_REMOVE_PROFILES] =
        {
            .endpoint = AW_API_LIST_REMOVE_PROFILES,
            .name = "remove_profiles_from_list",
            .method = AW_API_DELETE,
            .path = "/api/lists/{id}/relationships/profiles",
            .max_items = 1000,
            .burst_per_s = 10,
            .steady_per_min = 150,
        },
    /* Like get_profiles, 10/s-150/m only with predictive_analytics, never asked for. */
    [AW_API_LIST_PROFILES] =
        {
            .endpoint = AW_API_LIST_PROFILES,
            .name = "get_profiles_for_list",
            .method = AW_API_GET,
            .path = "/api/lists/{id}/profiles",
            .page_size_max = 100,
            .filterable = true,
            .burst_per_s = 75,
            .steady_per_min = 750,
        },
};

const struct aw_api_op *aw_api_get(enum aw_api_endpoint e)
{
    AW_ASSERT((unsigned)e < AW_API_ENDPOINT_COUNT);
    return &OPS[e];
}

const char *aw_api_method_str(enum aw_api_method m)
{
    switch (m) {
    case AW_API_GET:
        return "GET";
    case AW_API_POST:
        return "POST";
    case AW_API_PATCH:
        return "PATCH";
    case AW_API_DELETE:
        return "DELETE";
    }
    return "GET";
}

/* Percent-encodes everything but RFC 3986 unreserved characters: ids and cursors come from
 * outside, Klaviyo filters contain quotes, commas and brackets, and '+' would be read as a
 * space by form decoders. */
static void pct_encode(struct aw_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            char ch = (char)*p;
            (void)aw_buf_append(b, &ch, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            (void)aw_buf_append(b, e, 3);
        }
    }
}

enum aw_err aw_api_path_build(enum aw_api_endpoint e, const char *id, const struct aw_api_query *q,
                              char **out)
{
    AW_ASSERT(out != NULL);
    *out = NULL;
    const struct aw_api_op *op = aw_api_get(e);
    const char *open = strchr(op->path, '{');
    const char *close = open ? strchr(open, '}') : NULL;
    bool has_id = id && id[0];
    if ((open != NULL) != has_id)
        return AW_ERR_INVALID;
    const char *filter = q ? q->filter : NULL;
    uint32_t page_size = q ? q->page_size : 0;
    const char *cursor = q ? q->cursor : NULL;
    bool newest_first = q && q->newest_first;
    if ((filter && (!op->filterable || !filter[0])) || (newest_first && !op->sort_newest) ||
        (page_size && (!op->page_size_max || page_size > op->page_size_max)) ||
        (cursor && (!op->page_size_max || !cursor[0])))
        return AW_ERR_INVALID;

    struct aw_buf b;
    aw_buf_init(&b, 0);
    if (open) {
        AW_ASSERT(close != NULL);
        (void)aw_buf_append(&b, op->path, (size_t)(open - op->path));
        pct_encode(&b, id);
        (void)aw_buf_append_str(&b, close + 1);
    } else {
        (void)aw_buf_append_str(&b, op->path);
    }
    char sep = '?';
    if (filter) {
        (void)aw_buf_appendf(&b, "%cfilter=", sep);
        pct_encode(&b, filter);
        sep = '&';
    }
    if (newest_first) {
        (void)aw_buf_appendf(&b, "%csort=", sep);
        pct_encode(&b, op->sort_newest);
        sep = '&';
    }
    if (page_size) {
        (void)aw_buf_appendf(&b, "%cpage%%5Bsize%%5D=%u", sep, (unsigned)page_size);
        sep = '&';
    }
    if (cursor) {
        (void)aw_buf_appendf(&b, "%cpage%%5Bcursor%%5D=", sep);
        pct_encode(&b, cursor);
    }
    *out = aw_buf_take(&b);
    return AW_OK;
}
