/* test_parse.c -- Klaviyo response parsers (worker/klaviyo/parse.c): bulk import jobs, import
 * errors, error documents, JSON pointers, pages, resource ids and cursors; malformed documents
 * are refused with AW_ERR_PROTOCOL and leave the output cleared. */
#include <stdlib.h>
#include <string.h>

#include "tests/harness.h"
#include "worker/klaviyo/parse.h"

static void test_parse_import_job(void)
{
    const char *doc =
        "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":\"JOB1\",\"attributes\":{"
        "\"status\":\"complete\",\"created_at\":\"2026-07-20T10:00:00+00:00\",\"total_count\":"
        "10000,\"completed_count\":9998,\"failed_count\":2,\"completed_at\":null,\"expires_at\":"
        "\"2026-08-20T10:00:00+00:00\",\"started_at\":\"2026-07-20T10:00:01+00:00\"},"
        "\"relationships\":{\"lists\":{\"data\":[{\"type\":\"list\",\"id\":\"L1\"}],\"links\":{"
        "\"self\":\"https://a.klaviyo.com/s\",\"related\":\"https://a.klaviyo.com/r\"}}},"
        "\"links\":{\"self\":\"https://a.klaviyo.com/api/profile-bulk-import-jobs/JOB1/\"}},"
        "\"links\":{\"self\":\"https://a.klaviyo.com/api/profile-bulk-import-jobs/JOB1/\"}}";
    struct aw_parse_import_job job;
    AW_CHECK_INT_EQ(aw_parse_import_job(doc, strlen(doc), &job), AW_OK);
    AW_CHECK_STR_EQ(job.id, "JOB1");
    AW_CHECK_INT_EQ(job.status, AW_PARSE_JOB_COMPLETE);
    AW_CHECK(aw_parse_job_is_done(job.status));
    AW_CHECK_INT_EQ(job.total_count, 10000);
    AW_CHECK_INT_EQ(job.completed_count, 9998);
    AW_CHECK_INT_EQ(job.failed_count, 2);
    aw_parse_import_job_clear(&job);

    const char *queued = "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":\"J\","
                         "\"attributes\":{\"status\":\"queued\",\"total_count\":3,"
                         "\"completed_count\":null}}}";
    AW_CHECK_INT_EQ(aw_parse_import_job(queued, strlen(queued), &job), AW_OK);
    AW_CHECK(job.status == AW_PARSE_JOB_QUEUED && !aw_parse_job_is_done(job.status));
    AW_CHECK(job.completed_count == 0 && job.failed_count == 0);
    AW_CHECK_STR_EQ(aw_parse_job_status_str(job.status), "queued");
    aw_parse_import_job_clear(&job);

    static const char *const bad[] = {
        "",
        "[]",
        "{\"data\":null}",
        "{\"data\":{\"type\":\"list\",\"id\":\"J\",\"attributes\":{\"status\":\"queued\",\"total_"
        "count\":1}}}",
        "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":\"J\",\"attributes\":{\"status\":"
        "\"weird\",\"total_count\":1}}}",
        "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":\"J\",\"attributes\":{\"status\":"
        "\"queued\"}}}",
        "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":\"J\",\"attributes\":{\"status\":"
        "\"queued\",\"total_count\":-1}}}",
        "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":7,\"attributes\":{\"status\":"
        "\"queued\",\"total_count\":1}}}",
        "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":\"J\\u0000K\",\"attributes\":{"
        "\"status\":\"queued\",\"total_count\":1}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        AW_CHECK_MSG(aw_parse_import_job(bad[i], strlen(bad[i]), &job) == AW_ERR_PROTOCOL,
                     "case %zu", i);
        AW_CHECK(job.id == NULL);
    }
}

static void test_parse_errors(void)
{
    const char *page =
        "{\"data\":[{\"type\":\"import-error\",\"id\":\"e1\",\"attributes\":{\"code\":\"invalid\","
        "\"title\":\"Invalid input\",\"detail\":\"bad phone\",\"source\":{\"pointer\":"
        "\"/data/attributes/profiles/data/17/attributes/phone_number\"},\"original_payload\":{"
        "\"type\":\"profile\",\"attributes\":{\"email\":\"x@y.io\"}}}},"
        "{\"type\":\"import-error\",\"id\":\"e2\",\"attributes\":{\"code\":\"invalid\",\"title\":"
        "\"T\",\"detail\":\"D\",\"source\":{\"pointer\":\"/data\"},\"original_payload\":null}}],"
        "\"links\":{\"self\":\"https://a.klaviyo.com/api/profile-bulk-import-jobs/J/import-errors/"
        "\","
        "\"next\":\"https://a.klaviyo.com/api/profile-bulk-import-jobs/J/import-errors/"
        "?page%5Bsize%5D=100&page%5Bcursor%5D=bmV4dA%3D%3D\"}}";
    struct aw_parse_errors errs;
    AW_CHECK_INT_EQ(aw_parse_import_errors(page, strlen(page), &errs), AW_OK);
    AW_CHECK_INT_EQ(errs.n, 2);
    if (errs.n == 2) {
        AW_CHECK_STR_EQ(errs.items[0].id, "e1");
        AW_CHECK_STR_EQ(errs.items[0].code, "invalid");
        AW_CHECK_STR_EQ(errs.items[0].title, "Invalid input");
        AW_CHECK(errs.items[0].has_index && errs.items[0].index == 17);
        AW_CHECK_STR_EQ(errs.items[0].email, "x@y.io");
        AW_CHECK(!errs.items[1].has_index && errs.items[1].email == NULL);
    }
    AW_CHECK_STR_EQ(errs.next_cursor, "bmV4dA==");
    aw_parse_errors_clear(&errs);
    const char *last = "{\"data\":[],\"links\":{\"self\":\"s\",\"next\":null}}";
    AW_CHECK_INT_EQ(aw_parse_import_errors(last, strlen(last), &errs), AW_OK);
    AW_CHECK(errs.n == 0 && errs.next_cursor == NULL);
    aw_parse_errors_clear(&errs);

    const char *doc =
        "{\"errors\":[{\"id\":\"7b1c\",\"status\":400,\"code\":\"invalid\",\"title\":\"Invalid "
        "input.\",\"detail\":\"The email is invalid\",\"source\":{\"pointer\":"
        "\"/data/attributes/profiles/data/3/attributes/email\"}},{\"id\":\"8c\",\"status\":\"429\","
        "\"code\":\"throttled\",\"title\":\"Request was throttled.\",\"detail\":\"x\"},"
        "{\"id\":\"9\",\"code\":\"c\",\"title\":\"t\",\"detail\":\"d\",\"source\":{\"pointer\":"
        "\"/data/12/id\"}}]}";
    AW_CHECK_INT_EQ(aw_parse_error_doc(doc, strlen(doc), &errs), AW_OK);
    AW_CHECK_INT_EQ(errs.n, 3);
    if (errs.n == 3) {
        AW_CHECK_STR_EQ(errs.items[0].id, "7b1c");
        AW_CHECK_INT_EQ(errs.items[0].status, 400);
        AW_CHECK_STR_EQ(errs.items[0].code, "invalid");
        AW_CHECK_STR_EQ(errs.items[0].detail, "The email is invalid");
        AW_CHECK_STR_EQ(errs.items[0].pointer, "/data/attributes/profiles/data/3/attributes/email");
        AW_CHECK(errs.items[0].has_index && errs.items[0].index == 3);
        AW_CHECK_INT_EQ(errs.items[1].status, 429);
        AW_CHECK(errs.items[1].pointer == NULL && !errs.items[1].has_index);
        AW_CHECK(errs.items[2].has_index && errs.items[2].index == 12);
        AW_CHECK_INT_EQ(errs.items[2].status, 0);
    }
    aw_parse_errors_clear(&errs);
    static const char *const bad[] = {"{}",
                                      "{\"errors\":{}}",
                                      "{\"errors\":[1]}",
                                      "{\"errors\":[{\"id\":1}]}",
                                      "not json",
                                      "{\"errors\":[{\"source\":\"x\"}]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        AW_CHECK_MSG(aw_parse_error_doc(bad[i], strlen(bad[i]), &errs) == AW_ERR_PROTOCOL,
                     "case %zu", i);
        AW_CHECK(errs.items == NULL && errs.n == 0);
    }

    size_t idx = 0;
    AW_CHECK(aw_parse_pointer_index("/data/attributes/profiles/data/0", &idx) && idx == 0);
    AW_CHECK(!aw_parse_pointer_index("/data/attributes/profiles/data/01", &idx));
    AW_CHECK(!aw_parse_pointer_index("/data/attributes/profiles/data/x", &idx));
    AW_CHECK(!aw_parse_pointer_index("/data/attributes/profiles/data/2x", &idx));
    AW_CHECK(!aw_parse_pointer_index("/data/attributes", &idx));
    AW_CHECK(!aw_parse_pointer_index("/data/99999999999999999999999", &idx));
    AW_CHECK(!aw_parse_pointer_index(NULL, &idx));
}

static void test_parse_pages(void)
{
    const char *profiles =
        "{\"data\":[{\"type\":\"profile\",\"id\":\"01P1\",\"attributes\":{\"email\":\"a@x.io\","
        "\"phone_number\":null,\"properties\":{}},\"links\":{\"self\":\"s\"}},"
        "{\"type\":\"profile\",\"id\":\"01P2\",\"attributes\":{\"email\":null}}],"
        "\"links\":{\"self\":\"s\",\"next\":\"https://a.klaviyo.com/api/profiles/"
        "?filter=x&page[cursor]=abc%2Bdef\","
        "\"prev\":null}}";
    struct aw_parse_page page;
    AW_CHECK_INT_EQ(aw_parse_profiles_page(profiles, strlen(profiles), &page), AW_OK);
    AW_CHECK_INT_EQ(page.n, 2);
    if (page.n == 2) {
        AW_CHECK_STR_EQ(page.items[0].id, "01P1");
        AW_CHECK_STR_EQ(page.items[0].value, "a@x.io");
        AW_CHECK_STR_EQ(page.items[1].id, "01P2");
        AW_CHECK(page.items[1].value == NULL);
    }
    AW_CHECK_STR_EQ(page.next_cursor, "abc+def");
    aw_parse_page_clear(&page);

    const char *lists =
        "{\"data\":[{\"type\":\"list\",\"id\":\"Y6nRLr\",\"attributes\":{\"name\":"
        "\"Newsletter\",\"created\":\"2022-11-08T00:00:00+00:00\",\"opt_in_process\":"
        "\"single_opt_in\"}}],\"links\":{\"self\":\"s\"}}";
    AW_CHECK_INT_EQ(aw_parse_lists_page(lists, strlen(lists), &page), AW_OK);
    AW_CHECK(page.n == 1 && page.next_cursor == NULL);
    if (page.n == 1) {
        AW_CHECK_STR_EQ(page.items[0].id, "Y6nRLr");
        AW_CHECK_STR_EQ(page.items[0].value, "Newsletter");
    }
    aw_parse_page_clear(&page);
    /* a profile page is not a list page */
    AW_CHECK_INT_EQ(aw_parse_lists_page(profiles, strlen(profiles), &page), AW_ERR_PROTOCOL);
    AW_CHECK(page.items == NULL && page.n == 0);
    const char *noid = "{\"data\":[{\"type\":\"list\",\"attributes\":{}}]}";
    AW_CHECK_INT_EQ(aw_parse_lists_page(noid, strlen(noid), &page), AW_ERR_PROTOCOL);
    const char *badname =
        "{\"data\":[{\"type\":\"list\",\"id\":\"L\",\"attributes\":{\"name\":5}}]}";
    AW_CHECK_INT_EQ(aw_parse_lists_page(badname, strlen(badname), &page), AW_ERR_PROTOCOL);
    const char *jobs =
        "{\"data\":[{\"type\":\"profile-bulk-import-job\",\"id\":\"J1\","
        "\"attributes\":{\"status\":\"queued\",\"created_at\":"
        "\"2026-12-01T20:47:18+00:00\",\"total_count\":3}}],\"links\":{\"next\":"
        "\"https://a.klaviyo.com/api/profile-bulk-import-jobs?page%5Bcursor%5D=n2\"}}";
    AW_CHECK_INT_EQ(aw_parse_import_jobs_page(jobs, strlen(jobs), &page), AW_OK);
    AW_CHECK(page.n == 1);
    if (page.n == 1) {
        AW_CHECK_STR_EQ(page.items[0].id, "J1");
        AW_CHECK_STR_EQ(page.items[0].value, "2026-12-01T20:47:18+00:00");
    }
    AW_CHECK_STR_EQ(page.next_cursor, "n2");
    aw_parse_page_clear(&page);
    AW_CHECK_INT_EQ(aw_parse_import_jobs_page(lists, strlen(lists), &page), AW_ERR_PROTOCOL);
    /* the same listing with each job's status and counts (the account's jobs polled at once) */
    const char *two =
        "{\"data\":[{\"type\":\"profile-bulk-import-job\",\"id\":\"J2\",\"attributes\":{"
        "\"status\":\"complete\",\"total_count\":5,\"completed_count\":4,\"failed_count\":1}},"
        "{\"type\":\"profile-bulk-import-job\",\"id\":\"J1\",\"attributes\":{\"status\":"
        "\"processing\",\"total_count\":3,\"completed_count\":null}}],\"links\":{\"next\":null}}";
    struct aw_parse_import_jobs js;
    AW_CHECK_INT_EQ(aw_parse_import_jobs(two, strlen(two), &js), AW_OK);
    AW_CHECK_INT_EQ(js.n, 2);
    if (js.n == 2) {
        AW_CHECK_STR_EQ(js.items[0].id, "J2");
        AW_CHECK(js.items[0].status == AW_PARSE_JOB_COMPLETE && js.items[0].completed_count == 4 &&
                 js.items[0].failed_count == 1);
        AW_CHECK_STR_EQ(js.items[1].id, "J1");
        AW_CHECK(js.items[1].status == AW_PARSE_JOB_PROCESSING && js.items[1].completed_count == 0);
    }
    AW_CHECK(js.next_cursor == NULL);
    aw_parse_import_jobs_clear(&js);
    AW_CHECK_INT_EQ(aw_parse_import_jobs(jobs, strlen(jobs), &js), AW_OK);
    AW_CHECK(js.n == 1 && js.items[0].status == AW_PARSE_JOB_QUEUED);
    AW_CHECK_STR_EQ(js.next_cursor, "n2");
    aw_parse_import_jobs_clear(&js);
    /* one job without its status spoils the page (no half-read listing is believed) */
    const char *half = "{\"data\":[{\"type\":\"profile-bulk-import-job\",\"id\":\"J2\","
                       "\"attributes\":{\"status\":\"complete\",\"total_count\":5}},"
                       "{\"type\":\"profile-bulk-import-job\",\"id\":\"J1\",\"attributes\":{}}]}";
    AW_CHECK_INT_EQ(aw_parse_import_jobs(half, strlen(half), &js), AW_ERR_PROTOCOL);
    AW_CHECK(js.items == NULL && js.n == 0);
    AW_CHECK_INT_EQ(aw_parse_import_jobs(lists, strlen(lists), &js), AW_ERR_PROTOCOL);

    char *id = NULL;
    const char *created = "{\"data\":{\"type\":\"list\",\"id\":\"NEWID\",\"attributes\":{\"name\":"
                          "\"N\"},\"links\":{\"self\":\"s\"}},\"links\":{\"self\":\"s\"}}";
    AW_CHECK_INT_EQ(aw_parse_resource_id(created, strlen(created), "list", &id), AW_OK);
    AW_CHECK_STR_EQ(id, "NEWID");
    free(id);
    AW_CHECK_INT_EQ(aw_parse_resource_id(created, strlen(created), "profile", &id),
                    AW_ERR_PROTOCOL);
    AW_CHECK(id == NULL);
    /* length is honoured: a truncated document is refused */
    AW_CHECK_INT_EQ(aw_parse_resource_id(created, 20, "list", &id), AW_ERR_PROTOCOL);

    char *cur = aw_parse_cursor_from_url("https://h/api/lists/?page%5bcursor%5d=a%20b#frag");
    AW_CHECK_STR_EQ(cur, "a b");
    free(cur);
    AW_CHECK(aw_parse_cursor_from_url("https://h/api/lists/?page[size]=10") == NULL);
    AW_CHECK(aw_parse_cursor_from_url("https://h/api/lists/?page[cursor]=%zz") == NULL);
    AW_CHECK(aw_parse_cursor_from_url("https://h/api/lists/?page[cursor]=a%00") == NULL);
    AW_CHECK(aw_parse_cursor_from_url("https://h/api/lists/?page[cursor]=%4") == NULL);
    AW_CHECK(aw_parse_cursor_from_url("https://h/api/lists/") == NULL);
}

int main(void)
{
    test_parse_import_job();
    test_parse_errors();
    test_parse_pages();
    return aw_test_done();
}
