/* connection.h -- an audience's connection settings (docs/design.md §2), from its
 * `audience_subscription_settings`: `listId`, `propertyMapping`, `consentMapping`. This module
 * only parses and validates; the mapping rules that use them live in map.c. Error details name
 * positions and settings, never values. Pure; any thread. */
#ifndef AW_WORKER_CONNECTION_H
#define AW_WORKER_CONNECTION_H

#include <stddef.h>

#include "common/err.h"
#include "worker/store/change.h"

struct aw_event_setting;

/* Reason for (profile, audience) pairs -- and subscription requests -- whose connection
 * settings do not parse (dead-letter header aw.reason). */
#define AW_CONNECTION_INVALID "invalid_connection_settings"

/* propertyMapping targets (docs/design.md §3); the Klaviyo paths are map.c's business. */
enum aw_connection_target {
    AW_TARGET_ADDRESS2 = 0, /* "$address2" */
    AW_TARGET_IMAGE,        /* "$image" */
    AW_TARGET_LATITUDE,     /* "$latitude" */
    AW_TARGET_LONGITUDE,    /* "$longitude" */
    AW_TARGET_ORGANIZATION, /* "$organization" */
    AW_TARGET_SOURCE,       /* "$source" */
    AW_TARGET_TIMEZONE,     /* "$timezone" */
    AW_TARGET_TITLE,        /* "$title" */
    AW_TARGET_COUNT
};

/* Static name of a target ("$title"); "" when out of range. */
const char *aw_connection_target_str(enum aw_connection_target t);

struct aw_connection_property {
    char *attribute;                  /* owned mParticle attribute key (`map`), non-empty */
    enum aw_connection_target target; /* `value` */
};

struct aw_connection_consent {
    char *purpose;                  /* owned consent purpose (`map`), non-empty */
    enum aw_change_channel channel; /* `value`: email_marketing | sms_marketing */
};

/* Parsed settings of one connection (audience). Plain data, one owner. */
struct aw_connection {
    char *list_id;                             /* owned `listId`; NULL when absent or blank */
    struct aw_connection_property *properties; /* owned array, setting order */
    size_t n_properties;
    struct aw_connection_consent *consents; /* owned array, setting order */
    size_t n_consents;
};

/* Parses an audience's settings (settings[0..n), borrowed): `listId`, `propertyMapping`,
 * `consentMapping` (JSON text; absent, empty or whitespace-only = no mapping; otherwise an array
 * of objects with non-empty string `map` and string `value`, other keys ignored). (map.c
 * additionally refuses a propertyMapping on a default-mapped attribute.) `listId` must look like
 * a Klaviyo list id ([A-Za-z0-9_-], at most 64 bytes after trimming): it becomes part of a URL.
 * *out is overwritten; on AW_OK caller-owned (aw_connection_clear). AW_ERR_INVALID: *out is
 * cleared and detail (if non-NULL) receives the precise reason, e.g.
 * "propertyMapping[1].value: unknown target" -- positions and setting names only, never
 * values. Pure; any thread. */
enum aw_err aw_connection_parse(const struct aw_event_setting *settings, size_t n,
                                struct aw_connection *out, char *detail, size_t detail_len);

/* Releases what *c owns and zeroes it. Safe on a zeroed struct. */
void aw_connection_clear(struct aw_connection *c);

#endif
