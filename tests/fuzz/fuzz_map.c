/* fuzz_map.c -- fuzzes decode -> account resolve -> map, plus the string-level entry points
 * (email normalisation, connection settings parsing) on the raw input, and checks the invariants
 * every change must hold (normalised email, attrs sorted by path and unique, at most one consent
 * per channel, SMS consent only with a phone). Seeds: tests/fuzz/corpus/map/. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "common/phone/phone.h"
#include "worker/ingest/account.h"
#include "worker/ingest/connection.h"
#include "worker/ingest/event.h"
#include "worker/ingest/map.h"
#include "worker/store/change.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_change(const struct aw_change *c)
{
    AW_ASSERT(c->email != NULL && c->account_id != NULL && c->audience_id != NULL);
    char *again = NULL;
    AW_ASSERT(aw_map_email_normalise(c->email, &again) == AW_OK); /* idempotent */
    AW_ASSERT(strcmp(again, c->email) == 0);
    free(again);
    for (size_t i = 0; i + 1 < c->n_attrs; i++)
        AW_ASSERT(strcmp(c->attrs[i].path, c->attrs[i + 1].path) < 0);
    AW_ASSERT(c->n_consents <= 2);
    if (c->n_consents == 2)
        AW_ASSERT(c->consents[0].channel != c->consents[1].channel);
    for (size_t i = 0; i < c->n_consents; i++) {
        if (c->consents[i].channel == AW_CHANNEL_SMS)
            AW_ASSERT(c->phone_e164 != NULL);
    }
    if (c->action == AW_CHANGE_DELETE)
        AW_ASSERT(c->n_attrs == 0 && c->custom_source == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool inited;
    if (!inited) {
        AW_ASSERT(aw_phone_init() == AW_OK);
        inited = true;
    }
    char *text = aw_strndup((const char *)data, size);

    char *email = NULL;
    if (aw_map_email_normalise(text, &email) == AW_OK)
        AW_ASSERT(email != NULL && strlen(email) <= AW_MAP_EMAIL_MAX);
    free(email);

    struct aw_event_setting s[] = {
        {"listId", text}, {"propertyMapping", text}, {"consentMapping", text}};
    struct aw_connection conn;
    char detail[128];
    for (size_t i = 0; i < 3; i++) {
        (void)aw_connection_parse(&s[i], 1, &conn, detail, sizeof detail);
        aw_connection_clear(&conn);
    }

    struct aw_event ev;
    enum aw_event_reason reason;
    if (aw_event_decode((const char *)data, size, &ev, &reason, NULL, 0) == AW_OK &&
        ev.type == AW_EVENT_MEMBERSHIP) {
        struct aw_account acct;
        (void)aw_account_resolve(NULL, ev.account_id, ev.account_settings, ev.n_account_settings,
                                 &acct);
        struct aw_map_result res;
        if (aw_map_event(&ev, &acct, &res) == AW_OK) {
            for (size_t i = 0; i < res.n_changes; i++)
                check_change(&res.changes[i]);
            for (size_t i = 0; i < res.n_rejects; i++)
                AW_ASSERT(res.rejects[i].profile_index < ev.n_profiles && res.rejects[i].reason);
        }
        aw_map_result_clear(&res);
        aw_account_clear(&acct);
    }
    aw_event_clear(&ev);
    free(text);
    return 0;
}
