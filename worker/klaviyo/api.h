/* api.h -- the Klaviyo API table: the one place Klaviyo's numbers live (docs/style.md §1). For
 * every operation the worker calls: method, path template, page size maximum, items and bytes per
 * request, and the rate limits of `x-klaviyo-ratelimit`, all read from the vendored spec
 * schemas/vendor/klaviyo/openapi-stable-2026-07-15.json. tests/unit/test_api_spec.py checks
 * every row against that spec (through tests/tools/aw_api_dump), so the table cannot drift;
 * it also fails when a Klaviyo path appears as a string anywhere else in worker/.
 *
 * Also builds request paths: the template with its id percent-encoded, plus the query
 * (filter, page[size], page[cursor]), so no caller writes a path or a query string by hand.
 * Pure: static data, no I/O; any thread. */
#ifndef AW_KLAVIYO_API_H
#define AW_KLAVIYO_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* The revision this table (and build.c's bodies) was read from: the spec's info.version. */
#define AW_API_REVISION "2026-07-15"

/* Body limits are filled up to this share only (budget_bytes): Klaviyo may count a body
 * differently from us (MB vs MiB, re-encoding), and a body over the limit refuses every
 * record in it, while the margin costs a few more requests. */
#define AW_API_BODY_MARGIN_PCT 90u

enum aw_api_method { AW_API_GET = 0, AW_API_POST, AW_API_PATCH, AW_API_DELETE };

/* The operations the worker uses (the spec's operationId in the comment). */
enum aw_api_endpoint {
    AW_API_CREATE_LIST = 0,      /* create_list: POST /api/lists */
    AW_API_GET_LISTS,            /* get_lists: GET /api/lists (find a list by name) */
    AW_API_GET_PROFILES,         /* get_profiles: GET /api/profiles (ids by email) */
    AW_API_IMPORT_CREATE,        /* bulk_import_profiles: POST /api/profile-bulk-import-jobs */
    AW_API_IMPORT_GET_JOB,       /* get_bulk_import_profiles_job: GET .../{job_id} */
    AW_API_IMPORT_LIST_JOBS,     /* get_bulk_import_profiles_jobs: GET .../profile-bulk-... */
    AW_API_IMPORT_ERRORS,        /* get_errors_for_bulk_import_profiles_job */
    AW_API_PROFILE_IMPORT,       /* create_or_update_profile: POST /api/profile-import */
    AW_API_SUBSCRIBE,            /* bulk_subscribe_profiles */
    AW_API_UNSUBSCRIBE,          /* bulk_unsubscribe_profiles */
    AW_API_LIST_ADD_PROFILES,    /* add_profiles_to_list: POST .../relationships/profiles */
    AW_API_LIST_REMOVE_PROFILES, /* remove_profiles_from_list: DELETE .../relationships/... */
    AW_API_LIST_PROFILES,        /* get_profiles_for_list: GET /api/lists/{id}/profiles */
    AW_API_ENDPOINT_COUNT
};

/* One row of the table. Zero means "no such limit". Where a number is ours rather than the
 * spec's, the row's comment in api.c says so. */
struct aw_api_op {
    enum aw_api_endpoint endpoint;
    const char *name; /* the spec's operationId ("bulk_import_profiles"): logs, dumps */
    enum aw_api_method method;
    const char *path;           /* the spec's path template; "{...}" stands for one id */
    uint32_t page_size_max;     /* page[size] maximum; 0 = not paged */
    bool filterable;            /* takes a `filter` query parameter */
    const char *sort_newest;    /* the spec's `sort` value listing the newest first, where the
                                   worker asks for that order; NULL otherwise */
    uint32_t filter_max_values; /* values in one any(...) filter */
    size_t filter_max_bytes;    /* bytes of one filter's text (bounds the URL) */
    uint32_t max_items;         /* items (profiles, ids) in one request body */
    size_t max_bytes;           /* bytes of one request body, as the spec states it */
    size_t budget_bytes;        /* bytes builders fill a body up to: AW_API_BODY_MARGIN_PCT of
                                   max_bytes */
    size_t max_item_bytes;      /* bytes of one item (one profile) in the body */
    uint32_t burst_per_s;       /* x-klaviyo-ratelimit burst, per second */
    uint32_t steady_per_min;    /* x-klaviyo-ratelimit steady, per minute */
    uint32_t daily;             /* x-klaviyo-ratelimit daily; 0 = none stated */
};

/* The row of e (static, never freed). e must be a valid endpoint (AW_ASSERT). */
const struct aw_api_op *aw_api_get(enum aw_api_endpoint e);

/* "GET", "POST", "PATCH", "DELETE". */
const char *aw_api_method_str(enum aw_api_method m);

/* Query of a request path; every member optional (NULL / 0 = left out). */
struct aw_api_query {
    const char *filter; /* Klaviyo filter text (build.h); percent-encoded here */
    uint32_t page_size; /* page[size]; 0 = the server's default */
    const char *cursor; /* page[cursor] from a previous page (parse.h); percent-encoded here */
    bool newest_first;  /* sort=<the operation's sort_newest> */
};

/* Writes the path of e (with its query) into *out, caller-owned (free()): the template with
 * its "{...}" replaced by id, percent-encoded (RFC 3986 unreserved characters kept), then
 * ?filter=...&sort=...&page%5Bsize%5D=...&page%5Bcursor%5D=... for what q (may be NULL) sets.
 * AW_ERR_INVALID (and *out NULL) when id is missing or empty for a template that needs one or
 * given for one that has none, a filter for an operation that takes none, newest_first for one
 * without sort_newest, a page size above the operation's maximum (or for one that is not
 * paged), or a cursor for one not paged. */
enum aw_err aw_api_path_build(enum aw_api_endpoint e, const char *id, const struct aw_api_query *q,
                              char **out);

#endif
