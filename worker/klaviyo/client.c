/* client.c -- the only user of curl/curl.h (docs/style.md §1). */
#include "worker/klaviyo/client.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"

/* Largest response body kept (Klaviyo pages are far smaller). */
#define MAX_BODY (16u << 20)

struct aw_klaviyo {
    CURL *curl;
    char *base_url;
    char *revision;
    char *ca_file;
    long connect_timeout_ms;
    long timeout_ms;
    uint64_t deadline_ms; /* monotonic; 0 = none (aw_klaviyo_set_deadline) */
    char errbuf[CURL_ERROR_SIZE];
};

struct header_state {
    struct aw_klaviyo_response *resp;
};

static const char *const action_names[] = {"done",   "retry", "wait",      "drop_records",
                                           "reject", "pause", "not_found", "conflict"};

const char *aw_klaviyo_action_str(enum aw_klaviyo_action a)
{
    return (unsigned)a < sizeof action_names / sizeof action_names[0] ? action_names[a] : "unknown";
}

enum aw_klaviyo_action aw_klaviyo_classify(long status, bool names_records)
{
    if (status >= 200 && status < 300)
        return AW_KLAVIYO_DONE;
    switch (status) {
    case 0:   /* transport error or timeout */
    case 408: /* request timeout */
        return AW_KLAVIYO_RETRY;
    case 429:
        return AW_KLAVIYO_WAIT;
    case 400:
        return names_records ? AW_KLAVIYO_DROP_RECORDS : AW_KLAVIYO_REJECT;
    case 401:
    case 403:
    case 410: /* revision retired: a setup fault as much as a revoked key */
        return AW_KLAVIYO_PAUSE;
    case 404:
        return AW_KLAVIYO_NOT_FOUND;
    case 409:
        return AW_KLAVIYO_CONFLICT;
    case 501: /* the server lacks the feature: a retry cannot succeed */
        return AW_KLAVIYO_REJECT;
    default:
        break;
    }
    if (status >= 500 && status < 600)
        return AW_KLAVIYO_RETRY;
    /* 1xx/3xx should never reach us (no redirects followed); other 4xx are permanent. */
    return AW_KLAVIYO_REJECT;
}

bool aw_klaviyo_parse_retry_after(const char *value, uint64_t now_unix_ms, uint64_t *out_ms)
{
    if (!value)
        return false;
    while (*value == ' ' || *value == '\t')
        value++;
    if (*value == '\0')
        return false;
    if (isdigit((unsigned char)*value)) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(value, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (errno || *end != '\0')
            return false;
        if (s > 86400ull) /* cap absurd waits at a day */
            s = 86400ull;
        *out_ms = (uint64_t)s * 1000u;
        return true;
    }
    time_t t = curl_getdate(value, NULL);
    if (t < 0)
        return false;
    uint64_t at_ms = (uint64_t)t * 1000u;
    *out_ms = at_ms > now_unix_ms ? at_ms - now_unix_ms : 0;
    if (*out_ms > 86400000ull)
        *out_ms = 86400000ull;
    return true;
}

void aw_klaviyo_response_clear(struct aw_klaviyo_response *resp)
{
    free(resp->body);
    aw_parse_errors_clear(&resp->errors);
    memset(resp, 0, sizeof *resp);
}

struct aw_klaviyo *aw_klaviyo_new(const struct aw_klaviyo_config *cfg, char *errbuf, size_t errlen)
{
    if (strncmp(cfg->base_url, "https://", 8) != 0 && strncmp(cfg->base_url, "http://", 7) != 0) {
        snprintf(errbuf, errlen, "klaviyo base url must start with https:// or http://");
        return NULL;
    }
    struct aw_klaviyo *k = aw_calloc(1, sizeof *k);
    k->curl = curl_easy_init();
    if (!k->curl) {
        snprintf(errbuf, errlen, "curl_easy_init failed");
        free(k);
        return NULL;
    }
    size_t n = strlen(cfg->base_url);
    while (n > 0 && cfg->base_url[n - 1] == '/')
        n--;
    k->base_url = aw_strndup(cfg->base_url, n);
    k->revision = aw_strdup(cfg->revision);
    k->ca_file = cfg->ca_file && *cfg->ca_file ? aw_strdup(cfg->ca_file) : NULL;
    k->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 5000;
    k->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
    return k;
}

void aw_klaviyo_free(struct aw_klaviyo *k)
{
    if (!k)
        return;
    curl_easy_cleanup(k->curl);
    free(k->base_url);
    free(k->revision);
    free(k->ca_file);
    free(k);
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct aw_buf *b = userdata;
    size_t n = size * nmemb;
    if (aw_buf_append(b, ptr, n) != AW_OK)
        return 0; /* oversize: abort the transfer (CURLE_WRITE_ERROR) */
    return n;
}

static long header_long(const char *v)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    return errno || end == v ? -1 : x;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct header_state *hs = userdata;
    size_t n = size * nitems;
    char line[512];
    if (n >= sizeof line)
        return n;
    memcpy(line, buf, n);
    line[n] = '\0';
    /* A new status line starts a new header block (e.g. after 100 Continue). */
    if (strncmp(line, "HTTP/", 5) == 0) {
        hs->resp->has_retry_after = false;
        hs->resp->ratelimit_limit = hs->resp->ratelimit_remaining = hs->resp->ratelimit_reset_s =
            -1;
        return n;
    }
    char *colon = strchr(line, ':');
    if (!colon)
        return n;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t vl = strlen(v);
    while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        v[--vl] = '\0';
    if (strcasecmp(line, "Retry-After") == 0) {
        uint64_t ms;
        if (aw_klaviyo_parse_retry_after(v, aw_clock_unix_ms(), &ms)) {
            hs->resp->has_retry_after = true;
            hs->resp->retry_after_ms = ms;
        }
    } else if (strcasecmp(line, "RateLimit-Limit") == 0) {
        hs->resp->ratelimit_limit = header_long(v);
    } else if (strcasecmp(line, "RateLimit-Remaining") == 0) {
        hs->resp->ratelimit_remaining = header_long(v);
    } else if (strcasecmp(line, "RateLimit-Reset") == 0) {
        hs->resp->ratelimit_reset_s = header_long(v);
    }
    return n;
}

void aw_klaviyo_set_deadline(struct aw_klaviyo *k, uint64_t deadline_mono_ms)
{
    k->deadline_ms = deadline_mono_ms;
}

enum aw_err aw_klaviyo_request(struct aw_klaviyo *k, const char *api_key, enum aw_api_method method,
                               const char *path, const char *body, size_t body_len,
                               struct aw_klaviyo_response *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->ratelimit_limit = resp->ratelimit_remaining = resp->ratelimit_reset_s = -1;
    /* No request outlives the deadline (the leader's lease validity): the whole transfer,
     * connect included, is bounded by what is left of it, and nothing is sent without time. */
    long timeout_ms = k->timeout_ms;
    if (k->deadline_ms) {
        uint64_t now = aw_clock_mono_ms();
        if (now + 1 >= k->deadline_ms) {
            snprintf(resp->transport_error, sizeof resp->transport_error,
                     "not sent: the deadline (lease validity) has passed");
            resp->body = aw_strdup("");
            resp->action = aw_klaviyo_classify(0, false);
            return AW_ERR_TIMEOUT;
        }
        if (k->deadline_ms - now < (uint64_t)timeout_ms)
            timeout_ms = (long)(k->deadline_ms - now);
    }
    struct aw_buf url, auth, rev, out;
    aw_buf_init(&url, 0);
    aw_buf_init(&auth, 0);
    aw_buf_init(&rev, 0);
    aw_buf_init(&out, MAX_BODY);
    aw_buf_appendf(&url, "%s%s", k->base_url, path);
    aw_buf_appendf(&auth, "Authorization: Klaviyo-API-Key %s", api_key);
    aw_buf_appendf(&rev, "revision: %s", k->revision);

    struct curl_slist *hdrs = NULL;
    hdrs = curl_slist_append(hdrs, auth.data);
    hdrs = curl_slist_append(hdrs, rev.data);
    hdrs = curl_slist_append(hdrs, "Accept: application/vnd.api+json");
    if (body)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/vnd.api+json");
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */

    struct header_state hs = {resp};
    CURL *c = k->curl;
    curl_easy_reset(c); /* keeps the connection cache: keep-alive survives */
    k->errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url.data);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     k->connect_timeout_ms < timeout_ms ? k->connect_timeout_ms : timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, k->errbuf);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (k->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, k->ca_file);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "audience-worker/0.1");
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hs);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, aw_api_method_str(method));
    if (method == AW_API_GET)
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    /* libcurl silently sends a request again when a reused connection dies before any byte of
     * the answer -- which is exactly what a request applied by Klaviyo whose answer was lost
     * looks like. A POST creates something (a list, a job): it goes on a fresh connection, so an
     * ambiguous failure reaches the flusher, which finds out what happened before acting. */
    if (method == AW_API_POST)
        curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }

    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(hdrs);
    /* The Authorization header held the key: wipe our copy. */
    memset(auth.data, 0, auth.len);
    aw_buf_free(&auth);
    aw_buf_free(&url);
    aw_buf_free(&rev);

    enum aw_err err = AW_OK;
    if (rc != CURLE_OK) {
        snprintf(resp->transport_error, sizeof resp->transport_error, "%s",
                 k->errbuf[0] ? k->errbuf : curl_easy_strerror(rc));
        resp->status = 0;
        err = rc == CURLE_OPERATION_TIMEDOUT ? AW_ERR_TIMEOUT : AW_ERR_IO;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    }
    resp->body_len = out.len;
    resp->body = aw_buf_take(&out);
    bool names_records = false;
    if (resp->status >= 400 &&
        aw_parse_error_doc(resp->body, resp->body_len, &resp->errors) == AW_OK) {
        for (size_t i = 0; i < resp->errors.n; i++)
            if (resp->errors.items[i].has_index)
                names_records = true;
    }
    resp->action = aw_klaviyo_classify(resp->status, names_records);
    return err;
}
