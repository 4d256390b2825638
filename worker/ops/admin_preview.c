/* admin_preview.c -- `aw-worker preview ACCOUNT AUDIENCE` (see admin.c's help): the requests the
 * audience's next flush would send, and then its account's profile stream's, built with the
 * flusher's own body builders (worker/klaviyo/build.c) and request kinds (aw_flush_change_kinds)
 * from what the next take would hold (peek.lua: read-only). Nothing is sent, nothing changes.
 * Bodies hold personal data: stdout only, never a log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "worker/flush/job.h"
#include "worker/klaviyo/api.h"
#include "worker/klaviyo/build.h"
#include "worker/ops/admin_internal.h"
#include "worker/settings.h"
#include "worker/store/account_ops.h"
#include "worker/store/change.h"
#include "worker/store/flush_ops.h"
#include "worker/store/store.h"

#define PREVIEW_MAX 1000u /* entries per stream (one peek.lua call) */
/* The list id in paths and bodies when only Klaviyo's answer will tell it. */
#define LIST_UNKNOWN "LIST_FOUND_OR_CREATED_BY_NAME"

struct req {
    enum aw_api_endpoint ep;
    char *path;       /* owned */
    char *body;       /* owned or NULL */
    size_t records;   /* changes the request carries */
    const char *note; /* static, or NULL */
};

struct stream {
    const char *name; /* "audience" | "profiles" */
    struct aw_store_taken t;
    size_t sendable; /* entries a request carries (not dropped, not undecodable) */
    struct req *reqs;
    size_t n, cap;
};

static void add_req(struct stream *s, enum aw_api_endpoint ep, const char *id,
                    const struct aw_api_query *q, char *body, size_t records, const char *note)
{
    char *path = NULL;
    if (aw_api_path_build(ep, id, q, &path) != AW_OK)
        path = aw_strdup("(no path: the id cannot be sent)");
    aw_grow((void **)&s->reqs, &s->cap, s->n + 1, sizeof *s->reqs);
    s->reqs[s->n++] = (struct req){ep, path, body, records, note};
}

/* A batch builder of build.h over arr[0..n), arg its extra argument. */
typedef enum aw_err (*build_fn)(const struct aw_change *const *arr, size_t n, const char *arg,
                                char **out, size_t *consumed);

static enum aw_err build_import(const struct aw_change *const *arr, size_t n, const char *list_id,
                                char **out, size_t *consumed)
{
    return aw_build_import(arr, n, list_id, 0, 0, out, consumed);
}

static enum aw_err build_unset(const struct aw_change *const *arr, size_t n, const char *arg,
                               char **out, size_t *consumed)
{
    (void)n;
    (void)arg;
    enum aw_err e = aw_build_profile_import(arr[0], out);
    *consumed = e == AW_OK ? 1 : 0;
    return e;
}

static enum aw_err build_subscribe(const struct aw_change *const *arr, size_t n, const char *arg,
                                   char **out, size_t *consumed)
{
    (void)arg;
    return aw_build_subscribe(arr, n, 0, out, consumed);
}

static enum aw_err build_unsubscribe(const struct aw_change *const *arr, size_t n, const char *arg,
                                     char **out, size_t *consumed)
{
    (void)arg;
    return aw_build_unsubscribe(arr, n, 0, out, consumed);
}

/* The requests of kind over the stream's entries, batched as the flusher batches them (an
 * entry no request can carry is dead-lettered by the flusher: noted, skipped). */
static void add_kind(struct stream *s, int kind, enum aw_api_endpoint ep, build_fn fn,
                     const char *arg, const char *note)
{
    const struct aw_change **arr = aw_calloc(s->t.n + 1, sizeof *arr);
    size_t m = 0;
    for (size_t i = 0; i < s->t.n; i++) {
        const struct aw_store_entry *e = &s->t.entries[i];
        if (!e->bad && !e->dropped &&
            (aw_flush_change_kinds(&e->change, strcmp(s->name, "audience") == 0) & (1u << kind)))
            arr[m++] = &e->change;
    }
    for (size_t pos = 0; pos < m;) {
        char *body = NULL;
        size_t consumed = 0;
        if (fn(arr + pos, m - pos, arg, &body, &consumed) != AW_OK || consumed == 0) {
            free(body);
            add_req(s, ep, NULL, NULL, NULL, 1, "unsendable: the flusher dead-letters this record");
            pos++;
            continue;
        }
        add_req(s, ep, NULL, NULL, body, consumed, note);
        pos += consumed;
    }
    free(arr);
}

/* Removals: cached profile ids, a lookup by email for the others, then DELETE from the list. */
static enum aw_err add_removals(struct aw_store *st, const char *acct, struct stream *s,
                                const char *list_id)
{
    const char **emails = aw_calloc(s->t.n + 1, sizeof *emails);
    size_t n = 0;
    for (size_t i = 0; i < s->t.n; i++) {
        const struct aw_store_entry *e = &s->t.entries[i];
        if (!e->bad && !e->dropped && e->change.action == AW_CHANGE_DELETE)
            emails[n++] = e->email;
    }
    char **ids = aw_calloc(n + 1, sizeof *ids);
    enum aw_err err = n ? aw_store_profile_ids_get(st, acct, emails, n, ids) : AW_OK;
    const char **unknown = aw_calloc(n + 1, sizeof *unknown),
               **known = aw_calloc(n + 1, sizeof *known);
    size_t nu = 0, nk = 0;
    for (size_t i = 0; i < n && err == AW_OK; i++) {
        if (ids[i])
            known[nk++] = ids[i];
        else
            unknown[nu++] = emails[i];
    }
    for (size_t pos = 0; pos < nu;) {
        char *filter = NULL;
        size_t consumed = 0;
        if (aw_build_email_filter(unknown + pos, nu - pos, 0, 0, &filter, &consumed) != AW_OK ||
            consumed == 0) {
            free(filter);
            pos++;
            continue;
        }
        struct aw_api_query q = {.filter = filter,
                                 .page_size = aw_api_get(AW_API_GET_PROFILES)->page_size_max};
        add_req(s, AW_API_GET_PROFILES, NULL, &q, NULL, consumed,
                "profile ids of these emails; those Klaviyo does not know are done");
        free(filter);
        pos += consumed;
    }
    for (size_t pos = 0; pos < nk;) {
        char *body = NULL;
        size_t consumed = 0;
        if (aw_build_list_members(known + pos, nk - pos, 0, &body, &consumed) != AW_OK ||
            consumed == 0) {
            free(body);
            pos++;
            continue;
        }
        add_req(s, AW_API_LIST_REMOVE_PROFILES, list_id, NULL, body, consumed,
                "profile ids cached in Redis");
        pos += consumed;
    }
    if (nu)
        add_req(s, AW_API_LIST_REMOVE_PROFILES, list_id, NULL, NULL, nu,
                "the ids the lookup finds (body known only then)");
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    free(known);
    free(unknown);
    free(emails);
    return err;
}

/* The audience stream: its list, adds, removals. */
static enum aw_err plan_audience(struct aw_store *st, const char *acct, struct stream *s)
{
    const struct aw_store_taken *t = &s->t;
    bool adds = false, dels = false;
    for (size_t i = 0; i < t->n; i++) {
        const struct aw_store_entry *e = &t->entries[i];
        if (e->bad || e->dropped)
            continue;
        adds = adds || e->change.action != AW_CHANGE_DELETE;
        dels = dels || e->change.action == AW_CHANGE_DELETE;
    }
    const char *list_id = t->list_id && t->list_id[0]                   ? t->list_id
                          : t->klaviyo_list_id && t->klaviyo_list_id[0] ? t->klaviyo_list_id
                                                                        : NULL;
    bool lookup = !list_id && (adds || dels);
    if (lookup) {
        char *filter = NULL;
        if (t->name && aw_build_list_name_filter(t->name, &filter) == AW_OK) {
            struct aw_api_query q = {.filter = filter};
            add_req(s, AW_API_GET_LISTS, NULL, &q, NULL, 0,
                    "no list id known: the list is looked up by the audience's name");
            char *body = NULL;
            if (adds && aw_build_create_list(t->name, &body) == AW_OK)
                add_req(s, AW_API_CREATE_LIST, NULL, NULL, body, 0,
                        "only when no list has that name");
        }
        free(filter);
        list_id = LIST_UNKNOWN;
    }
    add_kind(s, AW_FLUSH_KIND_ADD, AW_API_IMPORT_CREATE, build_import, list_id,
             lookup ? "the list id comes from the lookup above" : NULL);
    return dels ? add_removals(st, acct, s, list_id) : AW_OK;
}

/* The profile stream: attributes, clears, consent. */
static void plan_profiles(struct stream *s)
{
    add_kind(s, AW_FLUSH_KIND_UPDATE, AW_API_IMPORT_CREATE, build_import, NULL, NULL);
    add_kind(s, AW_FLUSH_KIND_UNSET, AW_API_PROFILE_IMPORT, build_unset, NULL, NULL);
    add_kind(s, AW_FLUSH_KIND_SUBSCRIBE, AW_API_SUBSCRIBE, build_subscribe, NULL, NULL);
    add_kind(s, AW_FLUSH_KIND_UNSUBSCRIBE, AW_API_UNSUBSCRIBE, build_unsubscribe, NULL, NULL);
}

static void stream_clear(struct stream *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->reqs[i].path);
        free(s->reqs[i].body);
    }
    free(s->reqs);
    aw_store_taken_clear(&s->t);
}

static const char *status_str(enum aw_store_batch_status st)
{
    return st == AW_STORE_BATCH_RESUMED ? "in_flight"
           : st == AW_STORE_BATCH_TAKEN ? "pending"
                                        : "empty";
}

/* ---- Output ---------------------------------------------------------------------------------- */

static void print_text(const char *acct, const char *aud, const struct stream *s)
{
    printf("stream account=%s audience=%s stream=%s batch=%s records=%zu requests=%zu", acct, aud,
           s->name, status_str(s->t.status), s->sendable, s->n);
    if (s->t.job_id) /* the flusher polls that job instead of sending its category again */
        printf(" klaviyo_job=%s", s->t.job_id);
    putchar('\n');
    for (size_t i = 0; i < s->n; i++) {
        const struct req *r = &s->reqs[i];
        const struct aw_api_op *op = aw_api_get(r->ep);
        printf("request stream=%s op=%s method=%s path=%s records=%zu", s->name, op->name,
               aw_api_method_str(op->method), r->path, r->records);
        if (r->note)
            printf(" note=\"%s\"", r->note);
        putchar('\n');
        if (r->body)
            printf("%s\n", r->body);
    }
}

static json_t *stream_json(const struct stream *s)
{
    json_t *reqs = json_array();
    for (size_t i = 0; i < s->n; i++) {
        const struct req *r = &s->reqs[i];
        const struct aw_api_op *op = aw_api_get(r->ep);
        json_t *body = r->body ? json_loads(r->body, 0, NULL) : NULL;
        json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:o}", "op", op->name, "method",
                              aw_api_method_str(op->method), "path", r->path, "records",
                              (json_int_t)r->records, "body", body ? body : json_null());
        if (r->note)
            json_object_set_new(o, "note", json_string(r->note));
        json_array_append_new(reqs, o);
    }
    return json_pack("{s:s,s:s,s:I,s:o,s:o}", "stream", s->name, "batch", status_str(s->t.status),
                     "records", (json_int_t)s->sendable, "klaviyo_job",
                     s->t.job_id ? json_string(s->t.job_id) : json_null(), "requests", reqs);
}

static size_t sendable(const struct aw_store_taken *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        n += !t->entries[i].bad && !t->entries[i].dropped;
    return n;
}

int aw_admin_preview(const struct aw_admin_cmd *cmd, const struct aw_admin_opts *o)
{
    (void)cmd;
    const char *acct = o->pos[0], *aud = o->pos[1];
    size_t limit = o->limit > 0 && (size_t)o->limit < PREVIEW_MAX ? (size_t)o->limit : PREVIEW_MAX;
    struct aw_settings s;
    int rc = aw_admin_settings(&s);
    if (rc != AW_ADMIN_EXIT_OK)
        return rc;
    struct aw_store *st = aw_admin_store(&s);
    struct stream streams[2] = {{.name = "audience"}, {.name = "profiles"}};
    rc = AW_ADMIN_EXIT_FAIL;
    if (!st)
        goto out;
    for (int k = 0; k < 2; k++) {
        enum aw_err e = aw_store_flush_peek(st, acct, k == 0 ? aud : NULL, limit, &streams[k].t);
        if (e == AW_ERR_INVALID) {
            fprintf(stderr, "aw-worker: preview: not an account and audience id: %s %s\n", acct,
                    aud);
            rc = AW_ADMIN_EXIT_USAGE;
            goto out;
        }
        if (e != AW_OK || (k == 0 && plan_audience(st, acct, &streams[0]) != AW_OK)) {
            rc = aw_admin_store_failed(st, "preview");
            goto out;
        }
        streams[k].sendable = sendable(&streams[k].t);
    }
    plan_profiles(&streams[1]);
    if (o->json) {
        rc = aw_admin_print_json(json_pack("{s:s,s:s,s:[o,o]}", "account", acct, "audience", aud,
                                           "streams", stream_json(&streams[0]),
                                           stream_json(&streams[1])));
    } else {
        print_text(acct, aud, &streams[0]);
        print_text(acct, aud, &streams[1]);
        rc = fflush(stdout) == 0 ? AW_ADMIN_EXIT_OK : AW_ADMIN_EXIT_FAIL;
    }
out:
    stream_clear(&streams[0]);
    stream_clear(&streams[1]);
    aw_store_free(st);
    aw_settings_free(&s);
    return rc;
}
