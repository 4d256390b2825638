/* test_api.c -- the Klaviyo API table (worker/klaviyo/api.c): rows complete and consistent,
 * request paths built with their ids and queries percent-encoded, misuse refused. The numbers
 * themselves are checked against the vendored OpenAPI spec by test_api_spec.py. */
#include <stdlib.h>
#include <string.h>

#include "tests/harness.h"
#include "worker/klaviyo/api.h"

static void test_rows(void)
{
    for (int e = 0; e < AW_API_ENDPOINT_COUNT; e++) {
        const struct aw_api_op *op = aw_api_get((enum aw_api_endpoint)e);
        AW_CHECK_MSG(op->endpoint == (enum aw_api_endpoint)e, "row %d out of place", e);
        AW_CHECK_MSG(op->name && op->name[0], "row %d has no name", e);
        AW_CHECK_MSG(op->path && strncmp(op->path, "/api/", 5) == 0, "row %d path", e);
        AW_CHECK_MSG(op->burst_per_s > 0 && op->steady_per_min >= op->burst_per_s,
                     "%s: rate limits", op->name);
        /* a byte budget exists exactly where a byte limit does, and keeps the margin */
        AW_CHECK_MSG((op->max_bytes == 0) == (op->budget_bytes == 0), "%s: budget", op->name);
        AW_CHECK_MSG(op->budget_bytes <= op->max_bytes / 100 * AW_API_BODY_MARGIN_PCT,
                     "%s: budget above the margin", op->name);
        /* a lookup filter is answered by one page */
        AW_CHECK_MSG(op->filter_max_values <= op->page_size_max, "%s: filter vs page", op->name);
        AW_CHECK_MSG(!op->filter_max_values || op->filterable, "%s: filter", op->name);
    }
    /* adding and removing list members share one body builder, so one limit */
    AW_CHECK_INT_EQ(aw_api_get(AW_API_LIST_ADD_PROFILES)->max_items,
                    aw_api_get(AW_API_LIST_REMOVE_PROFILES)->max_items);
    AW_CHECK_STR_EQ(aw_api_get(AW_API_LIST_ADD_PROFILES)->path,
                    aw_api_get(AW_API_LIST_REMOVE_PROFILES)->path);
    /* job polls and imports are distinct operations (each has its own rate limit) */
    AW_CHECK(strcmp(aw_api_get(AW_API_IMPORT_CREATE)->name,
                    aw_api_get(AW_API_IMPORT_GET_JOB)->name) != 0);
    AW_CHECK_STR_EQ(aw_api_method_str(AW_API_DELETE), "DELETE");
    AW_CHECK_STR_EQ(aw_api_method_str(aw_api_get(AW_API_CREATE_LIST)->method), "POST");
}

static void check_path(enum aw_api_endpoint e, const char *id, const struct aw_api_query *q,
                       const char *want)
{
    char *got = (char *)"unset";
    AW_CHECK_INT_EQ(aw_api_path_build(e, id, q, &got), AW_OK);
    AW_CHECK_STR_EQ(got, want);
    free(got);
}

static void check_refused(enum aw_api_endpoint e, const char *id, const struct aw_api_query *q)
{
    char *got = (char *)"unset";
    AW_CHECK_INT_EQ(aw_api_path_build(e, id, q, &got), AW_ERR_INVALID);
    AW_CHECK(got == NULL);
}

static void test_paths(void)
{
    check_path(AW_API_CREATE_LIST, NULL, NULL, "/api/lists");
    check_path(AW_API_IMPORT_CREATE, NULL, NULL, "/api/profile-bulk-import-jobs");
    /* ids: unreserved characters kept, everything else percent-encoded */
    check_path(AW_API_IMPORT_GET_JOB, "a-b_c.d~9", NULL, "/api/profile-bulk-import-jobs/a-b_c.d~9");
    check_path(AW_API_LIST_REMOVE_PROFILES, "x/y?z", NULL,
               "/api/lists/x%2Fy%3Fz/relationships/profiles");
    check_path(AW_API_LIST_ADD_PROFILES, "L 1+\xc3\xa9", NULL,
               "/api/lists/L%201%2B%C3%A9/relationships/profiles");
    /* queries: filter, then page[size], then page[cursor], each encoded */
    struct aw_api_query q = {.filter = "equals(name,\"VIP & co\")"};
    check_path(AW_API_GET_LISTS, NULL, &q,
               "/api/lists?filter=equals%28name%2C%22VIP%20%26%20co%22%29");
    q = (struct aw_api_query){.filter = "any(email,[\"a+b@x.io\"])", .page_size = 100};
    check_path(AW_API_GET_PROFILES, NULL, &q,
               "/api/profiles?filter=any%28email%2C%5B%22a%2Bb%40x.io%22%5D%29&page%5Bsize%5D=100");
    q = (struct aw_api_query){.page_size = 100, .cursor = "bmV4dA=="};
    check_path(AW_API_IMPORT_ERRORS, "J1", &q,
               "/api/profile-bulk-import-jobs/J1/import-errors?page%5Bsize%5D=100&page%5Bcursor%5D="
               "bmV4dA%3D%3D");
    q = (struct aw_api_query){.cursor = "c"};
    check_path(AW_API_LIST_PROFILES, "L", &q, "/api/lists/L/profiles?page%5Bcursor%5D=c");
    /* newest first: the operation's own descending sort, before the page size */
    q = (struct aw_api_query){.newest_first = true, .page_size = 100};
    check_path(AW_API_IMPORT_LIST_JOBS, NULL, &q,
               "/api/profile-bulk-import-jobs?sort=-created_at&page%5Bsize%5D=100");
    struct aw_api_query empty = {0};
    check_path(AW_API_GET_LISTS, NULL, &empty, "/api/lists");

    /* misuse */
    check_refused(AW_API_IMPORT_GET_JOB, NULL, NULL); /* template needs an id */
    check_refused(AW_API_IMPORT_GET_JOB, "", NULL);   /* empty id */
    check_refused(AW_API_CREATE_LIST, "x", NULL);     /* no id in the template */
    q = (struct aw_api_query){.filter = "equals(name,\"x\")"};
    check_refused(AW_API_CREATE_LIST, NULL, &q); /* not filterable */
    q = (struct aw_api_query){.filter = ""};
    check_refused(AW_API_GET_LISTS, NULL, &q);
    q = (struct aw_api_query){.page_size = 11};
    check_refused(AW_API_GET_LISTS, NULL, &q); /* above the maximum of 10 */
    q = (struct aw_api_query){.page_size = 10};
    check_path(AW_API_GET_LISTS, NULL, &q, "/api/lists?page%5Bsize%5D=10");
    q = (struct aw_api_query){.page_size = 1};
    check_refused(AW_API_IMPORT_CREATE, NULL, &q); /* not paged */
    q = (struct aw_api_query){.cursor = "c"};
    check_refused(AW_API_IMPORT_GET_JOB, "J", &q);
    q = (struct aw_api_query){.newest_first = true};
    check_refused(AW_API_GET_LISTS, NULL, &q); /* no sort_newest of ours */
}

int main(void)
{
    test_rows();
    test_paths();
    return aw_test_done();
}
