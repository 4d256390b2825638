/* client.h -- the libcurl adapter: one Klaviyo API request at a time on a reused, keep-alive
 * easy handle, and the classification of every answer into what the flusher must do
 * (docs/design.md §5, docs/style.md §5). One struct aw_klaviyo per thread (the flusher's). */
#ifndef AW_KLAVIYO_CLIENT_H
#define AW_KLAVIYO_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "worker/klaviyo/api.h"
#include "worker/klaviyo/parse.h"

struct aw_klaviyo;

struct aw_klaviyo_config {
    const char *base_url;    /* "https://a.klaviyo.com" or a plain http:// simulator */
    const char *revision;    /* "2026-07-15" */
    const char *ca_file;     /* CA bundle path or NULL (system store); TLS is always verified */
    long connect_timeout_ms; /* > 0 */
    long timeout_ms;         /* total per request, > 0 */
};

/* What the caller must do with an answer (the classification table, one test per row). */
enum aw_klaviyo_action {
    AW_KLAVIYO_DONE = 0,     /* 2xx: success */
    AW_KLAVIYO_RETRY,        /* 5xx (not 501), 408, transport error, timeout: back off, retry */
    AW_KLAVIYO_WAIT,         /* 429: wait Retry-After (or a default), retry */
    AW_KLAVIYO_DROP_RECORDS, /* 400 whose errors point at records: dead-letter those, retry
                                the rest */
    AW_KLAVIYO_REJECT,       /* other 4xx (400 without record pointers, 413, 415, 422, 501):
                                permanent, dead-letter with detail */
    AW_KLAVIYO_PAUSE,        /* 401, 403, 410: setup fault: pause the account, keep data */
    AW_KLAVIYO_NOT_FOUND,    /* 404: the resource is gone (caller decides: re-resolve, or
                                count a removal as done) */
    AW_KLAVIYO_CONFLICT      /* 409: already exists / duplicate (caller decides) */
};

struct aw_klaviyo_response {
    long status; /* HTTP status, 0 on transport error */
    char *body;  /* owned, NUL-terminated, may be empty */
    size_t body_len;
    enum aw_klaviyo_action action;
    bool has_retry_after;
    uint64_t retry_after_ms;       /* from Retry-After (seconds or HTTP date) */
    long ratelimit_limit;          /* RateLimit-Limit, -1 if absent */
    long ratelimit_remaining;      /* RateLimit-Remaining, -1 if absent */
    long ratelimit_reset_s;        /* RateLimit-Reset, -1 if absent */
    struct aw_parse_errors errors; /* errors[] of a non-2xx JSON body (parse.c); `detail`
                                      may echo input values: never log it */
    char transport_error[256];     /* curl's message on transport errors (no secrets, no body) */
};

/* Creates the client. NULL with the reason in errbuf when the base URL is neither https:// nor
 * http:// or curl cannot be initialised. curl_global_init must have run (main). */
struct aw_klaviyo *aw_klaviyo_new(const struct aw_klaviyo_config *cfg, char *errbuf, size_t errlen);

/* Sets the monotonic time (aw_clock_mono_ms) no request may outlive (0 = none): every request
 * after this call is bounded by what is left of it (connect and transfer), and one made at or
 * after it is not sent (AW_ERR_TIMEOUT, action RETRY). The flusher sets its lease's validity, so
 * a leader never has a request on the wire after its lease expired. Flusher thread. */
void aw_klaviyo_set_deadline(struct aw_klaviyo *k, uint64_t deadline_mono_ms);

/* Sends one request to base_url + path (from aw_api_path_build: the operation's path with its
 * query, already escaped; method from the same row of the API table) with the contract headers
 * (Authorization: Klaviyo-API-Key <api_key>, revision, JSON:API accept/content type). body may be
 * NULL. *resp is overwritten (release with aw_klaviyo_response_clear) and always classified.
 * Returns AW_OK when an HTTP answer arrived (whatever its status), AW_ERR_TIMEOUT / AW_ERR_IO on
 * transport failure (then resp->action is AW_KLAVIYO_RETRY). Flusher thread. */
enum aw_err aw_klaviyo_request(struct aw_klaviyo *k, const char *api_key, enum aw_api_method method,
                               const char *path, const char *body, size_t body_len,
                               struct aw_klaviyo_response *resp);

/* Releases what *resp owns and zeroes it. */
void aw_klaviyo_response_clear(struct aw_klaviyo_response *resp);

/* The classification table (pure): status (0 = transport error) and whether the error document
 * names records. */
enum aw_klaviyo_action aw_klaviyo_classify(long status, bool names_records);

/* Parses a Retry-After value: delta-seconds or an HTTP date (relative to now_unix_ms).
 * false when absent or malformed. Pure. */
bool aw_klaviyo_parse_retry_after(const char *value, uint64_t now_unix_ms, uint64_t *out_ms);

/* Stable name of an action ("done", "retry", ...). */
const char *aw_klaviyo_action_str(enum aw_klaviyo_action a);

/* Frees the client. NULL is a no-op. */
void aw_klaviyo_free(struct aw_klaviyo *k);

#endif
