/* fuzz_event.c -- aw_event_decode on arbitrary bytes: must never crash, leak or read past len,
 * and its result must be self-consistent (attribute values: canonical jansson text).
 * Seeds: tests/fuzz/corpus/event/ (the event fixtures). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "worker/ingest/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int cond)
{
    if (!cond)
        abort();
}

static void check_audience(const struct aw_event_audience *a)
{
    must(a->audience_id != NULL && a->audience_id[0] != '\0');
    for (size_t i = 0; i < a->n_settings; i++)
        must(a->settings[i].key != NULL && a->settings[i].value != NULL);
    for (size_t i = 0; i < a->n_attributes; i++) {
        const struct aw_event_attribute *at = &a->attributes[i];
        must(at->key != NULL && at->key[0] != '\0');
        must(at->action == AW_EVENT_ATTR_UPSERT || at->value_json == NULL);
        if (at->value_json != NULL) {
            /* JSON text that jansson reads back, and canonical: dumped again, it is the same. */
            json_t *v = json_loads(at->value_json, JSON_DECODE_ANY, NULL);
            must(v != NULL && !json_is_object(v) && !json_is_null(v));
            char *again = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            must(again != NULL && strcmp(again, at->value_json) == 0);
            free(again);
            json_decref(v);
        }
    }
}

/* Invariants of a decoded event (see event.h). */
static void check_event(const struct aw_event *ev)
{
    must(ev->type == AW_EVENT_MEMBERSHIP || ev->type == AW_EVENT_SUBSCRIPTION);
    must(ev->id != NULL && ev->id[0] != '\0' && strlen(ev->id) <= AW_EVENT_MAX_ID);
    must(ev->account_id != NULL);
    for (size_t i = 0; i < ev->n_account_settings; i++)
        must(ev->account_settings[i].key != NULL && ev->account_settings[i].value != NULL);
    if (ev->type == AW_EVENT_SUBSCRIPTION) {
        must(ev->n_profiles == 0);
        check_audience(&ev->subscription);
        return;
    }
    must(ev->subscription.audience_id == NULL);
    for (size_t i = 0; i < ev->n_profiles; i++) {
        const struct aw_event_profile *p = &ev->profiles[i];
        for (size_t j = 0; j < p->n_identities; j++)
            must(p->identities[j].type != NULL && p->identities[j].encoding != NULL &&
                 p->identities[j].value != NULL);
        for (size_t j = 0; j < p->n_audiences; j++)
            check_audience(&p->audiences[j]);
        for (size_t j = 0; j < p->n_consents; j++)
            must(p->consents[j].purpose != NULL && p->consents[j].purpose[0] != '\0');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so reading past size is an ASan error even in replay mode. */
    char *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    if (size)
        memcpy(copy, data, size);
    struct aw_event ev;
    enum aw_event_reason reason = AW_EVENT_OK;
    char detail[64];
    enum aw_err err =
        aw_event_decode(size ? copy : NULL, size, &ev, &reason, detail, sizeof detail);
    must(strlen(detail) < sizeof detail);
    if (err == AW_OK) {
        must(reason == AW_EVENT_OK && detail[0] == '\0');
        check_event(&ev);
    } else {
        must(err == AW_ERR_INVALID && reason != AW_EVENT_OK && detail[0] != '\0');
        must(ev.id == NULL && ev.profiles == NULL && ev.n_profiles == 0);
        must(strcmp(aw_event_reason_str(reason), "unknown") != 0);
    }
    aw_event_clear(&ev);
    /* Deterministic, and a tiny detail buffer stays terminated. */
    char tiny[2];
    enum aw_event_reason reason2 = AW_EVENT_OK;
    must(aw_event_decode(size ? copy : NULL, size, &ev, &reason2, tiny, sizeof tiny) == err);
    must(reason2 == reason && strlen(tiny) < sizeof tiny);
    aw_event_clear(&ev);
    free(copy);
    return 0;
}
