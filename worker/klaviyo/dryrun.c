/* dryrun.c -- AW_DRY_RUN's recorder and local answers (see dryrun.h). */
#include "worker/klaviyo/dryrun.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/mem.h"
#include "worker/klaviyo/client.h"

struct aw_dryrun {
    int fd;
    unsigned long long seq; /* ids invented so far */
};

struct aw_dryrun *aw_dryrun_new(const char *path, char *errbuf, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(errbuf, errlen, "AW_DRY_RUN_FILE: cannot open: %s", strerror(errno));
        return NULL;
    }
    struct aw_dryrun *d = aw_calloc(1, sizeof *d);
    d->fd = fd;
    return d;
}

void aw_dryrun_free(struct aw_dryrun *d)
{
    if (!d)
        return;
    close(d->fd);
    free(d);
}

bool aw_dryrun_intercepts(enum aw_api_endpoint ep, const char *path)
{
    if (aw_api_get(ep)->method != AW_API_GET)
        return true;
    return (ep == AW_API_IMPORT_GET_JOB || ep == AW_API_IMPORT_ERRORS) &&
           strstr(path, AW_DRYRUN_ID_PREFIX) != NULL;
}

/* Appends one JSON line in a single write (lines of one process never interleave). */
static enum aw_err record(struct aw_dryrun *d, const char *account_id, enum aw_api_endpoint ep,
                          const char *path, const char *body)
{
    const struct aw_api_op *op = aw_api_get(ep);
    json_t *line = json_object();
    json_t *b = body ? json_loads(body, 0, NULL) : json_null();
    if (!b)
        b = json_string(body); /* never expected: the builders write JSON */
    json_object_set_new(line, "ts_ms", json_integer((json_int_t)aw_clock_unix_ms()));
    json_object_set_new(line, "account", json_string(account_id));
    json_object_set_new(line, "method", json_string(aw_api_method_str(op->method)));
    json_object_set_new(line, "path", json_string(path));
    json_object_set_new(line, "operation", json_string(op->name));
    json_object_set_new(line, "body", b ? b : json_null());
    char *text = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    if (!text)
        return AW_ERR_INTERNAL;
    size_t n = strlen(text);
    text = aw_realloc(text, n + 2);
    text[n++] = '\n';
    ssize_t w = write(d->fd, text, n);
    free(text);
    return w == (ssize_t)n ? AW_OK : AW_ERR_IO;
}

/* Profiles of a bulk import body (data.attributes.profiles.data). */
static size_t import_count(const char *body)
{
    json_t *doc = body ? json_loads(body, 0, NULL) : NULL;
    json_t *arr = json_object_get(
        json_object_get(json_object_get(json_object_get(doc, "data"), "attributes"), "profiles"),
        "data");
    size_t n = json_array_size(arr);
    json_decref(doc);
    return n;
}

/* Prints doc (consumed; NULL gives NULL). */
static char *dump(json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return text;
}

/* The job document of a bulk import answered here: complete, every profile imported. */
static char *job_doc(const char *id, size_t count)
{
    json_t *doc =
        json_pack("{s:{s:s,s:s,s:{s:s,s:I,s:I,s:I}}}", "data", "type", "profile-bulk-import-job",
                  "id", id, "attributes", "status", "complete", "total_count", (json_int_t)count,
                  "completed_count", (json_int_t)count, "failed_count", (json_int_t)0);
    return dump(doc);
}

enum aw_err aw_dryrun_answer(struct aw_dryrun *d, const char *account_id, enum aw_api_endpoint ep,
                             const char *path, const char *body, struct aw_klaviyo_response *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->ratelimit_limit = resp->ratelimit_remaining = resp->ratelimit_reset_s = -1;
    if (aw_api_get(ep)->method != AW_API_GET) {
        enum aw_err e = record(d, account_id, ep, path, body);
        if (e != AW_OK) {
            snprintf(resp->transport_error, sizeof resp->transport_error,
                     "dry run: cannot write AW_DRY_RUN_FILE");
            resp->action = aw_klaviyo_classify(0, false);
            return e;
        }
    }
    char id[80];
    char *text = NULL;
    switch (ep) {
    case AW_API_CREATE_LIST:
        resp->status = 201;
        snprintf(id, sizeof id, AW_DRYRUN_ID_PREFIX "list-%llu", ++d->seq);
        text = dump(json_pack("{s:{s:s,s:s}}", "data", "type", "list", "id", id));
        break;
    case AW_API_IMPORT_CREATE:
        resp->status = 202;
        snprintf(id, sizeof id, AW_DRYRUN_ID_PREFIX "job-%llu-%zu", ++d->seq, import_count(body));
        text = job_doc(id, import_count(body));
        break;
    case AW_API_IMPORT_GET_JOB: {
        /* ".../dry-run-job-<seq>-<count>": the count the import was answered with */
        const char *dash = strrchr(path, '-');
        const char *start = strstr(path, AW_DRYRUN_ID_PREFIX);
        resp->status = 200;
        text = job_doc(start ? start : AW_DRYRUN_ID_PREFIX "job",
                       dash ? (size_t)strtoull(dash + 1, NULL, 10) : 0);
        break;
    }
    case AW_API_IMPORT_ERRORS:
        resp->status = 200;
        text = aw_strdup("{\"data\":[],\"links\":{}}");
        break;
    case AW_API_PROFILE_IMPORT:
        resp->status = 200;
        text = aw_strdup("{\"data\":{\"type\":\"profile\",\"id\":\"" AW_DRYRUN_ID_PREFIX
                         "profile\"}}");
        break;
    case AW_API_LIST_ADD_PROFILES:
    case AW_API_LIST_REMOVE_PROFILES:
        resp->status = 204;
        break;
    default:
        resp->status = 202;
        break;
    }
    resp->body = text ? text : aw_strdup("");
    resp->body_len = strlen(resp->body);
    resp->action = aw_klaviyo_classify(resp->status, false);
    return AW_OK;
}
