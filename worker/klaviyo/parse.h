/* parse.h -- parsers of Klaviyo's responses (revision 2026-07-15, JSON:API): bulk import jobs,
 * import errors, error documents, pages of profiles and lists, single-resource ids, page
 * cursors and JSON pointers into our request bodies. Pure: no I/O, no global state; any thread.
 *
 * Parsers take len bytes (need not be NUL-terminated) and fill a caller-provided struct
 * (overwritten; release with its _clear, safe on a zeroed or cleared struct). They return
 * AW_ERR_PROTOCOL when the body is not the document they expect (on error the struct is left
 * cleared). Strings are owned copies; emails and `detail` are personal / free text: never log. */
#ifndef AW_KLAVIYO_PARSE_H
#define AW_KLAVIYO_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

enum aw_parse_job_status {
    AW_PARSE_JOB_QUEUED = 0,
    AW_PARSE_JOB_PROCESSING,
    AW_PARSE_JOB_COMPLETE,
    AW_PARSE_JOB_CANCELLED
};

struct aw_parse_import_job {
    char *id; /* owned job id */
    enum aw_parse_job_status status;
    int64_t total_count;
    int64_t completed_count; /* 0 when absent or null */
    int64_t failed_count;    /* 0 when absent or null */
};

/* Bulk import job document (POST 202 / GET /api/profile-bulk-import-jobs/{id} 200). */
enum aw_err aw_parse_import_job(const char *body, size_t len, struct aw_parse_import_job *out);
void aw_parse_import_job_clear(struct aw_parse_import_job *job);
/* A page of GET /api/profile-bulk-import-jobs, each job as above. */
struct aw_parse_import_jobs {
    struct aw_parse_import_job *items; /* owned array */
    size_t n;
    char *next_cursor; /* owned page[cursor] of links.next, or NULL on the last page */
};
enum aw_err aw_parse_import_jobs(const char *body, size_t len, struct aw_parse_import_jobs *out);
void aw_parse_import_jobs_clear(struct aw_parse_import_jobs *jobs);
/* True when the job will not change any more (complete or cancelled). */
bool aw_parse_job_is_done(enum aw_parse_job_status status);
/* Stable lower-case name, as Klaviyo spells it ("queued", ...). */
const char *aw_parse_job_status_str(enum aw_parse_job_status status);

/* One entry of an errors list: a JSON:API error object or an import-error resource. */
struct aw_parse_error {
    char *id;       /* owned; "" when absent */
    int status;     /* HTTP status from the error object, 0 when absent (import errors) */
    char *code;     /* owned; "" when absent */
    char *title;    /* owned; "" when absent */
    char *detail;   /* owned; "" when absent -- free text, may quote input: never log */
    char *pointer;  /* owned source.pointer; NULL when absent */
    bool has_index; /* pointer names a record: /data/attributes/profiles/data/<n>/... */
    size_t index;   /* that record's position in the request body, when has_index */
    char *email;    /* owned email of the failing record (import errors' original_payload),
                       NULL when absent -- personal data: never log */
};

struct aw_parse_errors {
    struct aw_parse_error *items; /* owned array */
    size_t n;
    char *next_cursor; /* owned page[cursor] of links.next (import-errors pages), or NULL */
};

/* GET /api/profile-bulk-import-jobs/{id}/import-errors page. */
enum aw_err aw_parse_import_errors(const char *body, size_t len, struct aw_parse_errors *out);
/* Klaviyo error document {"errors":[{id,status,code,title,detail,source{pointer}}]}. */
enum aw_err aw_parse_error_doc(const char *body, size_t len, struct aw_parse_errors *out);
void aw_parse_errors_clear(struct aw_parse_errors *errs);

/* Record index named by a JSON pointer into a request body: "/data/attributes/profiles/data/<n>"
 * (jobs) or "/data/<n>" (relationship bodies), optionally followed by "/...". Pure. */
bool aw_parse_pointer_index(const char *pointer, size_t *index);

/* (id, value) of one resource on a page. */
struct aw_parse_pair {
    char *id;    /* owned resource id */
    char *value; /* owned: profile email / list name; NULL when absent or null */
};

struct aw_parse_page {
    struct aw_parse_pair *items; /* owned array */
    size_t n;
    char *next_cursor; /* owned page[cursor] of links.next, or NULL on the last page */
};

/* GET /api/profiles page: (id, attributes.email). */
enum aw_err aw_parse_profiles_page(const char *body, size_t len, struct aw_parse_page *out);
/* GET /api/lists page: (id, attributes.name). */
enum aw_err aw_parse_lists_page(const char *body, size_t len, struct aw_parse_page *out);
/* GET /api/profile-bulk-import-jobs page: (id, attributes.created_at). */
enum aw_err aw_parse_import_jobs_page(const char *body, size_t len, struct aw_parse_page *out);
void aw_parse_page_clear(struct aw_parse_page *page);

/* data.id of a single-resource document whose data.type is `type` ("list" for POST /api/lists,
 * "profile" for POST /api/profile-import). *id_out is caller-owned; AW_ERR_PROTOCOL otherwise. */
enum aw_err aw_parse_resource_id(const char *body, size_t len, const char *type, char **id_out);

/* page[cursor] value of a links.next URL (percent-decoded), caller-owned; NULL when the URL has
 * none. Pure. */
char *aw_parse_cursor_from_url(const char *url);

#endif
