/* ingest_ops.c -- changes and subscription messages into Redis, pipelined (see ingest_ops.h). */
#include "worker/store/ingest_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/mem.h"
#include "worker/store/change.h"
#include "worker/store/internal.h"

/* ARGV slots filled at exec time, shared by every op of the batch. */
enum { SLOT_NOW = 0, SLOT_MAXQ, SLOT_MAXAGE, SLOT_RETENTION, SLOT_COUNT };

/* apply.lua takes an account's consecutive changes in one call: KEYS[1] and five fixed ARGV,
 * then one block per change: BLOCK_HEAD arguments (action, audience, email, version, name,
 * listId), then BLOCK_PROFILE (email consent, sms consent, paths, values). An op holds the
 * whole block; group_apply leaves out what equals a previous block's (the block's code says
 * which: see apply.lua). Paths and values are NUL-separated lists: arguments go with their
 * lengths. */
#define APPLY_FIXED 6
#define BLOCK_HEAD 6
#define BLOCK_PROFILE 4
/* Changes per call: no script walks more than 1,000 entries (docs/redis.md). */
#define APPLY_GROUP_MAX 1000

struct op {
    int script;
    void *mem;         /* owned: one block holding argv, lens, acct, the argument strings and
                          (apply) room for code */
    const char *acct;  /* in mem */
    const char **argv; /* in mem: into mem (and the batch's exec slots) */
    size_t *lens;      /* in mem: length of each argument (exec slots: set at exec) */
    char *code;        /* in mem: apply's "<code>:<audience>" in its group (group_apply) */
    int argc;
    int slot_at[SLOT_COUNT]; /* argv index of each exec slot, -1 when unused */
    struct aw_store_result res;
    bool ran;
    int64_t min, seq;
    bool changed;
};

struct aw_store_batch {
    struct op *ops;
    size_t n, cap;
    size_t bytes;
    char slots[SLOT_COUNT][24];
};

struct aw_store_batch *aw_store_batch_new(void)
{
    return aw_calloc(1, sizeof(struct aw_store_batch));
}

static void op_clear(struct op *o)
{
    free(o->mem);
    memset(o, 0, sizeof *o);
}

void aw_store_batch_reset(struct aw_store_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        op_clear(&b->ops[i]);
    b->n = 0;
    b->bytes = 0;
}

void aw_store_batch_free(struct aw_store_batch *b)
{
    if (!b)
        return;
    aw_store_batch_reset(b);
    free(b->ops);
    free(b);
}

size_t aw_store_batch_count(const struct aw_store_batch *b)
{
    return b->n;
}

size_t aw_store_batch_bytes(const struct aw_store_batch *b)
{
    return b->bytes;
}

const struct aw_store_result *aw_store_batch_result(const struct aw_store_batch *b, size_t i)
{
    AW_ASSERT(i < b->n);
    return &b->ops[i].res;
}

/* ---- Building one op: arguments packed into one allocation ---------------------------------- */

/* Argument under construction: either a string to copy or an exec slot. */
struct arg {
    const char *s; /* NULL: exec slot */
    size_t len;
    int slot;
};

/* The arguments of one op: at most ARGS_OP (apply's block, the audience script's call). */
#define ARGS_OP 12

struct args {
    struct arg a[ARGS_OP];
    size_t n;
};

static void push(struct args *v, const char *s, size_t len)
{
    AW_ASSERT(v->n < ARGS_OP);
    v->a[v->n++] = (struct arg){s, len, -1};
}

static void push_str(struct args *v, const char *s)
{
    push(v, s ? s : "", s ? strlen(s) : 0);
}

static void push_slot(struct args *v, int slot)
{
    AW_ASSERT(v->n < ARGS_OP);
    v->a[v->n++] = (struct arg){NULL, 0, slot};
}

/* Appends an op running script with args (KEYS[1] first; one key), all of it copied into one
 * allocation, with code_room bytes left for group_apply's code. */
static struct op *op_push(struct aw_store_batch *b, int script, const char *acct,
                          const struct args *v, size_t code_room, size_t *index)
{
    AW_ASSERT(v->n <= AW_REDIS_ARGS_MAX);
    aw_grow((void **)&b->ops, &b->cap, b->n + 1, sizeof *b->ops);
    struct op *o = &b->ops[b->n];
    memset(o, 0, sizeof *o);
    o->script = script;
    size_t total = 0;
    for (size_t i = 0; i < v->n; i++)
        total += v->a[i].len + 1;
    size_t acct_len = strlen(acct);
    size_t head = v->n * (sizeof *o->argv + sizeof *o->lens);
    char *mem = aw_malloc(head + acct_len + 1 + total + code_room);
    o->mem = mem;
    o->argv = (const char **)(void *)mem;
    o->lens = (size_t *)(void *)(mem + v->n * sizeof *o->argv);
    char *p = mem + head;
    memcpy(p, acct, acct_len + 1);
    o->acct = p;
    p += acct_len + 1;
    for (int k = 0; k < SLOT_COUNT; k++)
        o->slot_at[k] = -1;
    for (size_t i = 0; i < v->n; i++) {
        if (!v->a[i].s) {
            o->slot_at[v->a[i].slot] = (int)i;
            o->argv[i] = NULL;
            o->lens[i] = 0;
            continue;
        }
        memcpy(p, v->a[i].s, v->a[i].len);
        p[v->a[i].len] = '\0';
        o->argv[i] = p;
        o->lens[i] = v->a[i].len;
        p += v->a[i].len + 1;
    }
    o->code = code_room ? p : NULL;
    o->argc = (int)v->n;
    o->res.err = AW_ERR_IO;
    b->bytes += total + 16 * v->n;
    if (index)
        *index = b->n;
    b->n++;
    return o;
}

static bool text_ok(const char *t, size_t max)
{
    return t && t[0] && strlen(t) <= max;
}

static char *lower_dup(const char *s)
{
    char *d = aw_strdup(s);
    for (char *p = d; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return d;
}

/* The action's code in apply.lua's block head: upper case (the block's own consents and
 * attributes follow) or lower case (those of the previous block). */
static const char *action_code(enum aw_change_action a, bool own)
{
    switch (a) {
    case AW_CHANGE_ADD:
        return own ? "A" : "a";
    case AW_CHANGE_DELETE:
        return own ? "D" : "d";
    case AW_CHANGE_ATTRIBUTE_UPDATE:
        break;
    }
    return own ? "U" : "u";
}

/* Longest block code of group_apply ("Aen") and its ':'. */
#define CODE_MAX 4

/* Whether path is among the first n attrs' paths or the specials taken so far. */
static bool path_taken(const struct aw_change *c, const char *path, const char *const *taken,
                       size_t n_taken)
{
    for (size_t i = 0; i < c->n_attrs; i++)
        if (strcmp(c->attrs[i].path, path) == 0)
            return true;
    for (size_t i = 0; i < n_taken; i++)
        if (strcmp(taken[i], path) == 0)
            return true;
    return false;
}

enum aw_err aw_store_batch_add_apply(struct aw_store_batch *b, const struct aw_change *c,
                                     size_t *index)
{
    if (!aw_store_id_ok(c->account_id) || !aw_store_id_ok(c->audience_id) ||
        !text_ok(c->event_id, AW_STORE_EVENT_ID_MAX) || !text_ok(c->email, AW_STORE_EMAIL_MAX))
        return AW_ERR_INVALID;
    char consent[2][48] = {"", ""};
    for (size_t i = 0; i < c->n_consents; i++) {
        const struct aw_change_consent *cs = &c->consents[i];
        if (!aw_change_consent_format(cs, consent[cs->channel == AW_CHANNEL_SMS],
                                      sizeof consent[0]))
            return AW_ERR_INVALID;
    }
    /* "<version_ms>:<event id in lower case>" */
    char version[24 + 1 + AW_STORE_EVENT_ID_MAX + 1];
    size_t vl = strlen(aw_store_u64(c->version_ms, version));
    version[vl++] = ':';
    for (const char *e = c->event_id; *e; e++)
        version[vl++] = (char)(*e >= 'A' && *e <= 'Z' ? *e - 'A' + 'a' : *e);
    version[vl] = '\0';
    /* The pairs: paths "<n>\0<path>\0...<path>\0" and values "<value>\0...<value>"; the
     * attributes (unique paths: map.c), then the special paths not among them. */
    const char *sp_path[3], *sp_value[3];
    size_t n_sp = 0, pairs = 0, paths_len = 0, values_len = 0;
    if (c->action != AW_CHANGE_DELETE) {
        for (size_t i = 0; i < c->n_attrs; i++) {
            paths_len += strlen(c->attrs[i].path) + 1;
            values_len += strlen(c->attrs[i].value_json ? c->attrs[i].value_json : "null");
        }
        pairs = c->n_attrs;
        static const enum aw_store_name special[3] = {AW_F_PATH_PHONE, AW_F_PATH_EXTERNAL_ID,
                                                      AW_F_PATH_SOURCE};
        const char *specials[3] = {c->phone_e164, c->external_id, c->custom_source};
        for (int k = 0; k < 3; k++) {
            const char *path = aw_store_name(special[k]);
            if (!specials[k] || path_taken(c, path, sp_path, n_sp))
                continue;
            sp_path[n_sp] = path;
            sp_value[n_sp++] = specials[k];
            paths_len += strlen(path) + 1;
            values_len += strlen(specials[k]);
        }
        pairs += n_sp;
    }
    /* as many attributes as one call of one argument per path and value would take (no script
     * walks more than that) */
    if (APPLY_FIXED + BLOCK_HEAD + BLOCK_PROFILE + 2 * pairs > AW_REDIS_ARGS_MAX)
        return AW_ERR_INVALID;
    char npairs[24] = "";
    size_t h_len = 0;
    if (pairs > 0) {
        h_len = strlen(aw_store_u64(pairs, npairs)) + 1 + paths_len;
        values_len += pairs - 1;
    }
    /* h and values side by side: on the stack unless large */
    char small[2048];
    char *pv = h_len + values_len <= sizeof small ? small : aw_malloc(h_len + values_len);
    char *h = pv, *values = pv + h_len, *hp = h, *vp = values;
    if (pairs > 0) {
        size_t nl = strlen(npairs) + 1;
        memcpy(hp, npairs, nl);
        hp += nl;
        for (size_t i = 0; i < pairs; i++) {
            bool attr = i < c->n_attrs;
            const char *path = attr ? c->attrs[i].path : sp_path[i - c->n_attrs];
            const char *value = attr ? (c->attrs[i].value_json ? c->attrs[i].value_json : "null")
                                     : sp_value[i - c->n_attrs];
            size_t pl = strlen(path) + 1, vl2 = strlen(value);
            memcpy(hp, path, pl);
            hp += pl;
            if (i > 0)
                *vp++ = '\0';
            memcpy(vp, value, vl2);
            vp += vl2;
        }
    }
    AW_ASSERT((size_t)(hp - h) == h_len && (size_t)(vp - values) == values_len);
    struct args v = {.n = 0};
    push_str(&v, action_code(c->action, true));
    push_str(&v, c->audience_id);
    push_str(&v, c->email);
    push(&v, version, vl);
    push_str(&v, c->audience_name);
    push_str(&v, c->list_id);
    push_str(&v, consent[0]);
    push_str(&v, consent[1]);
    push(&v, h_len ? h : "", h_len);
    push(&v, values_len ? values : "", values_len);
    (void)op_push(b, AW_SCRIPT_APPLY, c->account_id, &v, CODE_MAX + strlen(c->audience_id) + 1,
                  index);
    if (pv != small)
        free(pv);
    return AW_OK;
}

static enum aw_err add_audience(struct aw_store_batch *b, const char *op, const char *acct,
                                const char *aud, const char *name, const char *list_id,
                                uint64_t version_ms, const char *event_id, size_t *index)
{
    if (!aw_store_id_ok(acct) || !aw_store_id_ok(aud) || !text_ok(event_id, AW_STORE_EVENT_ID_MAX))
        return AW_ERR_INVALID;
    char ts[24];
    char *meta = aw_store_key(acct, AW_K_AUDIENCE, aud, NULL);
    char *id = lower_dup(event_id);
    struct args v = {.n = 0};
    push_str(&v, meta);
    push_str(&v, acct);
    push_str(&v, aud);
    push_str(&v, op);
    push_str(&v, aw_store_u64(version_ms, ts));
    push_str(&v, id);
    push_slot(&v, SLOT_NOW);
    push_slot(&v, SLOT_MAXQ);
    push_slot(&v, SLOT_MAXAGE);
    push_str(&v, name);
    push_str(&v, list_id);
    (void)op_push(b, AW_SCRIPT_AUDIENCE, acct, &v, 0, index);
    free(meta);
    free(id);
    return AW_OK;
}

enum aw_err aw_store_batch_add_upsert(struct aw_store_batch *b, const char *account_id,
                                      const char *audience_id, const char *name,
                                      const char *list_id, uint64_t version_ms,
                                      const char *event_id, size_t *index)
{
    return add_audience(b, "upsert", account_id, audience_id, name, list_id, version_ms, event_id,
                        index);
}

enum aw_err aw_store_batch_add_remove(struct aw_store_batch *b, const char *account_id,
                                      const char *audience_id, uint64_t version_ms,
                                      const char *event_id, size_t *index)
{
    return add_audience(b, "remove", account_id, audience_id, NULL, NULL, version_ms, event_id,
                        index);
}

/* ---- Exec ------------------------------------------------------------------------------------ */

/* The outcome of one op: its status word and pending count, the account's due fields. */
static void set_result(struct aw_store *s, struct op *o, const struct aw_reply *st,
                       const struct aw_reply *pending, int64_t min, int64_t seq, bool changed)
{
    if (st->type != AW_REPLY_STR || pending->type != AW_REPLY_INT) {
        snprintf(s->err, sizeof s->err, "%s: unexpected reply shape", aw_script_name[o->script]);
        o->res.err = AW_ERR_PROTOCOL;
        return;
    }
    o->min = min;
    o->seq = seq;
    o->changed = changed;
    o->res.pending = pending->integer;
    o->res.due_unix_ms = min;
    if (strcmp(st->str, "applied") == 0) {
        o->res.status = AW_STORE_APPLIED;
    } else if (strcmp(st->str, "stale") == 0) {
        o->res.status = AW_STORE_STALE;
        o->changed = true; /* maybe a redelivery whose due write never happened: write again */
    } else if (strcmp(st->str, "disabled") == 0) {
        o->res.status = AW_STORE_DISABLED;
        o->changed = true;
    } else if (strcmp(st->str, "invalid") == 0) {
        snprintf(s->err, sizeof s->err, "%s: change refused as invalid", aw_script_name[o->script]);
        o->res.err = AW_ERR_INVALID;
        return;
    } else {
        snprintf(s->err, sizeof s->err, "%s: unknown status", aw_script_name[o->script]);
        o->res.err = AW_ERR_PROTOCOL;
        return;
    }
    o->ran = true;
}

/* audience.lua: {status, pending, min, seq, changed} into o. */
static void parse_reply(struct aw_store *s, struct op *o, const struct aw_reply *rp)
{
    int64_t min, seq;
    bool changed;
    if (rp->type != AW_REPLY_ARRAY || rp->n < 5 ||
        !aw_store_due_fields(rp, 2, &min, &seq, &changed)) {
        snprintf(s->err, sizeof s->err, "%s: unexpected reply shape", aw_script_name[o->script]);
        o->res.err = AW_ERR_PROTOCOL;
        return;
    }
    set_result(s, o, &rp->elem[0], &rp->elem[1], min, seq, changed);
}

/* Phase 2: one global due write per account that needs it: the newest (seq) state of the
 * account seen in this exec. Sets each ran op's err from the write of its account. */
static enum aw_err update_due(struct aw_store *s, struct aw_store_batch *b)
{
    size_t *rep = aw_calloc(b->n, sizeof *rep); /* op index of each account's newest state */
    bool *need = aw_calloc(b->n, sizeof *need);
    size_t *acct_of = aw_calloc(b->n, sizeof *acct_of);
    size_t na = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct op *o = &b->ops[i];
        if (!o->ran)
            continue;
        size_t a = 0;
        while (a < na && strcmp(b->ops[rep[a]].acct, o->acct) != 0)
            a++;
        if (a == na)
            rep[na++] = i;
        else if (o->seq >= b->ops[rep[a]].seq)
            rep[a] = i;
        need[a] = need[a] || o->changed;
        acct_of[i] = a;
    }
    struct aw_redis_cmd *cmds = aw_calloc(na ? na : 1, sizeof *cmds);
    struct aw_store_due_buf *bufs = aw_calloc(na ? na : 1, sizeof *bufs);
    size_t *cmd_of = aw_calloc(na ? na : 1, sizeof *cmd_of);
    size_t nc = 0;
    for (size_t a = 0; a < na; a++) {
        if (!need[a])
            continue;
        const struct op *o = &b->ops[rep[a]];
        aw_store_due_cmd(o->acct, o->min, o->seq, &bufs[nc], &cmds[nc]);
        cmd_of[a] = nc++;
    }
    enum aw_err e = aw_redis_exec(s->r, cmds, nc);
    (void)aw_store_fail(s, e);
    for (size_t i = 0; i < b->n; i++) {
        struct op *o = &b->ops[i];
        if (!o->ran)
            continue;
        size_t a = acct_of[i];
        enum aw_err ae = need[a] ? cmds[cmd_of[a]].err : AW_OK;
        o->res.err = ae == AW_OK ? AW_OK : ae == AW_ERR_FULL ? AW_ERR_FULL : AW_ERR_IO;
    }
    for (size_t c = 0; c < nc; c++)
        aw_redis_cmd_clear(&cmds[c]);
    free(cmds);
    free(bufs);
    free(cmd_of);
    free(rep);
    free(need);
    free(acct_of);
    return e;
}

/* One command of the pipeline: an audience op, or a group of an account's apply ops. */
struct unit {
    size_t op;   /* audience op, or the group's first op */
    size_t *ops; /* group: its ops in order (owned) */
    size_t n_ops, cap_ops;
    const char **argv; /* group: owned array (strings borrowed from the ops and the batch) */
    size_t *lens;      /* group: owned, the length of each argument */
    size_t argc, cap_argv, cap_lens;
    char *key; /* group: owned KEYS[1] */
    bool open; /* group: more changes of its account may join */
};

static void unit_push_arg(struct unit *u, const char *a, size_t len)
{
    aw_grow((void **)&u->argv, &u->cap_argv, u->argc + 1, sizeof *u->argv);
    aw_grow((void **)&u->lens, &u->cap_lens, u->argc + 1, sizeof *u->lens);
    u->argv[u->argc] = a;
    u->lens[u->argc++] = len;
}

/* True when argument k of ops a and b is the same. */
static bool same_arg(const struct op *a, const struct op *b, int k)
{
    return a->lens[k] == b->lens[k] && memcmp(a->argv[k], b->argv[k], a->lens[k]) == 0;
}

/* True when ops a and b carry the same consents and attribute pairs. */
static bool same_profile(const struct op *a, const struct op *b)
{
    for (int k = BLOCK_HEAD; k < BLOCK_HEAD + BLOCK_PROFILE; k++)
        if (!same_arg(a, b, k))
            return false;
    return true;
}

/* Appends apply op i to its account's open group (a new one when there is none or it is
 * full). An account's audience op closes its group: an account's ops keep their order. */
static void group_apply(struct aw_store_batch *b, struct unit *units, size_t *nu, size_t i)
{
    struct op *o = &b->ops[i];
    struct unit *u = NULL;
    for (size_t k = *nu; k-- > 0;) {
        if (units[k].open && strcmp(b->ops[units[k].op].acct, o->acct) == 0) {
            u = &units[k];
            break;
        }
    }
    if (u && (u->argc + (size_t)o->argc > AW_REDIS_ARGS_MAX || u->n_ops == APPLY_GROUP_MAX)) {
        u->open = false;
        u = NULL;
    }
    if (!u) {
        u = &units[(*nu)++];
        memset(u, 0, sizeof *u);
        u->op = i;
        u->open = true;
        u->key = aw_store_key(o->acct, AW_K_ACCOUNT, NULL, NULL);
        unit_push_arg(u, u->key, strlen(u->key));
        unit_push_arg(u, o->acct, strlen(o->acct));
        for (int k = 0; k < SLOT_COUNT; k++)
            unit_push_arg(u, b->slots[k], strlen(b->slots[k]));
    }
    /* The block's code (apply.lua), then ':' and the audience id (which never holds ':'): the
     * action, in lower case when the consents and attributes are the previous block's; 'e' when
     * the email and version are the previous block's; 'n' when the name and listId are those of
     * the audience's previous block (looked for among the last NAME_WINDOW blocks). */
    static const char *const codes[3][2][2][2] = {
        {{{"A", "An"}, {"Ae", "Aen"}}, {{"a", "an"}, {"ae", "aen"}}},
        {{{"D", "Dn"}, {"De", "Den"}}, {{"d", "dn"}, {"de", "den"}}},
        {{{"U", "Un"}, {"Ue", "Uen"}}, {{"u", "un"}, {"ue", "uen"}}}};
    enum { NAME_WINDOW = 16 };
    const struct op *prev = u->n_ops > 0 ? &b->ops[u->ops[u->n_ops - 1]] : NULL;
    int act = o->argv[0][0] == 'A' ? 0 : o->argv[0][0] == 'D' ? 1 : 2;
    bool same = prev && same_profile(prev, o);
    bool ev = prev && same_arg(prev, o, 2) && same_arg(prev, o, 3);
    bool nl = false;
    for (size_t k = u->n_ops; k-- > 0 && k + NAME_WINDOW >= u->n_ops;) {
        const struct op *p = &b->ops[u->ops[k]];
        if (same_arg(p, o, 1)) {
            nl = same_arg(p, o, 4) && same_arg(p, o, 5);
            break;
        }
    }
    const char *code = codes[act][same][ev][nl];
    size_t cl = strlen(code);
    AW_ASSERT(cl + 1 <= CODE_MAX); /* op_push left CODE_MAX + audience + NUL */
    memcpy(o->code, code, cl);
    o->code[cl] = ':';
    memcpy(o->code + cl + 1, o->argv[1], o->lens[1] + 1);
    unit_push_arg(u, o->code, cl + 1 + o->lens[1]);
    for (int k = 2; k < BLOCK_HEAD; k++)
        if (!(ev && (k == 2 || k == 3)) && !(nl && (k == 4 || k == 5)))
            unit_push_arg(u, o->argv[k], o->lens[k]);
    for (int k = BLOCK_HEAD; !same && k < o->argc; k++)
        unit_push_arg(u, o->argv[k], o->lens[k]);
    aw_grow((void **)&u->ops, &u->cap_ops, u->n_ops + 1, sizeof *u->ops);
    u->ops[u->n_ops++] = i;
}

/* apply.lua: {min, seq, changed, status, pending, ...} into the group's ops. */
static void parse_group(struct aw_store *s, struct aw_store_batch *b, const struct unit *u,
                        const struct aw_reply *rp)
{
    int64_t min, seq;
    bool changed;
    if (!aw_store_due_fields(rp, 0, &min, &seq, &changed) || rp->n != 3 + 2 * u->n_ops) {
        snprintf(s->err, sizeof s->err, "apply: unexpected reply shape");
        for (size_t k = 0; k < u->n_ops; k++)
            b->ops[u->ops[k]].res.err = AW_ERR_PROTOCOL;
        return;
    }
    for (size_t k = 0; k < u->n_ops; k++)
        set_result(s, &b->ops[u->ops[k]], &rp->elem[3 + 2 * k], &rp->elem[4 + 2 * k], min, seq,
                   changed);
}

enum aw_err aw_store_batch_exec(struct aw_store *s, struct aw_store_batch *b, uint64_t now_unix_ms)
{
    aw_store_u64(now_unix_ms, b->slots[SLOT_NOW]);
    snprintf(b->slots[SLOT_MAXQ], sizeof b->slots[0], "%s", s->max_queue_s);
    snprintf(b->slots[SLOT_MAXAGE], sizeof b->slots[0], "%s", s->max_age_s);
    snprintf(b->slots[SLOT_RETENTION], sizeof b->slots[0], "%s", s->retention_s_s);
    if (b->n == 0)
        return AW_OK;
    struct unit *units = aw_calloc(b->n, sizeof *units);
    size_t nu = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct op *o = &b->ops[i];
        memset(&o->res, 0, sizeof o->res);
        o->res.err = AW_ERR_IO;
        o->ran = false;
        if (o->script == AW_SCRIPT_APPLY) {
            group_apply(b, units, &nu, i);
            continue;
        }
        for (int k = 0; k < SLOT_COUNT; k++)
            if (o->slot_at[k] >= 0)
                o->argv[o->slot_at[k]] = b->slots[k];
        for (size_t k = 0; k < nu; k++)
            if (units[k].open && strcmp(b->ops[units[k].op].acct, o->acct) == 0)
                units[k].open = false;
        memset(&units[nu], 0, sizeof units[nu]);
        units[nu++].op = i;
    }
    struct aw_redis_cmd *cmds = aw_calloc(nu, sizeof *cmds);
    for (size_t k = 0; k < nu; k++) {
        const struct unit *u = &units[k];
        const struct op *o = &b->ops[u->op];
        cmds[k].script = o->script;
        cmds[k].nkeys = 1;
        cmds[k].route = u->ops ? u->key : o->argv[0];
        cmds[k].argc = u->ops ? (int)u->argc : o->argc;
        cmds[k].argv = u->ops ? u->argv : o->argv;
        cmds[k].lens = u->ops ? u->lens : NULL;
    }
    enum aw_err e = aw_redis_exec(s->r, cmds, nu);
    (void)aw_store_fail(s, e);
    for (size_t k = 0; k < nu; k++) {
        struct unit *u = &units[k];
        if (cmds[k].err != AW_OK) {
            for (size_t j = 0; j < (u->ops ? u->n_ops : 1); j++)
                b->ops[u->ops ? u->ops[j] : u->op].res.err = cmds[k].err;
        } else if (u->ops) {
            parse_group(s, b, u, &cmds[k].reply);
        } else {
            parse_reply(s, &b->ops[u->op], &cmds[k].reply);
        }
        aw_redis_cmd_clear(&cmds[k]);
        free(u->ops);
        free(u->argv);
        free(u->lens);
        free(u->key);
    }
    free(cmds);
    free(units);
    enum aw_err de = update_due(s, b);
    return e == AW_OK && de == AW_OK ? AW_OK : AW_ERR_IO;
}

/* ---- Single operations ------------------------------------------------------------------- */

static enum aw_err exec_single(struct aw_store *s, struct aw_store_batch *b, enum aw_err added,
                               uint64_t now_unix_ms, struct aw_store_result *out)
{
    enum aw_err e = added;
    if (e == AW_OK) {
        (void)aw_store_batch_exec(s, b, now_unix_ms);
        const struct aw_store_result *r = aw_store_batch_result(b, 0);
        if (out)
            *out = *r;
        e = r->err;
    } else if (out) {
        memset(out, 0, sizeof *out);
        out->err = e;
    }
    aw_store_batch_free(b);
    return e;
}

enum aw_err aw_store_apply(struct aw_store *s, const struct aw_change *c, uint64_t now_unix_ms,
                           struct aw_store_result *out)
{
    struct aw_store_batch *b = aw_store_batch_new();
    return exec_single(s, b, aw_store_batch_add_apply(b, c, NULL), now_unix_ms, out);
}

enum aw_err aw_store_audience_upsert(struct aw_store *s, const char *account_id,
                                     const char *audience_id, const char *name, const char *list_id,
                                     uint64_t version_ms, const char *event_id,
                                     uint64_t now_unix_ms, struct aw_store_result *out)
{
    struct aw_store_batch *b = aw_store_batch_new();
    enum aw_err e = aw_store_batch_add_upsert(b, account_id, audience_id, name, list_id, version_ms,
                                              event_id, NULL);
    return exec_single(s, b, e, now_unix_ms, out);
}

enum aw_err aw_store_audience_remove(struct aw_store *s, const char *account_id,
                                     const char *audience_id, uint64_t version_ms,
                                     const char *event_id, uint64_t now_unix_ms,
                                     struct aw_store_result *out)
{
    struct aw_store_batch *b = aw_store_batch_new();
    enum aw_err e =
        aw_store_batch_add_remove(b, account_id, audience_id, version_ms, event_id, NULL);
    return exec_single(s, b, e, now_unix_ms, out);
}
