/* change_builder.h -- builds struct aw_change values in tests and tools. Header-only. */
#ifndef AW_TESTS_CHANGE_BUILDER_H
#define AW_TESTS_CHANGE_BUILDER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/mem.h"
#include "worker/store/change.h"

/* Appends an attribute (value_json NULL = unset), in call order. */
static inline void aw_test_attr(struct aw_change *c, const char *path, const char *value_json)
{
    c->attrs = aw_realloc(c->attrs, (c->n_attrs + 1) * sizeof *c->attrs);
    c->attrs[c->n_attrs].path = aw_strdup(path);
    c->attrs[c->n_attrs].value_json = value_json ? aw_strdup(value_json) : NULL;
    c->n_attrs++;
}

/* Appends a consent intent; at_ms 0 = no consent timestamp. */
static inline void aw_test_consent(struct aw_change *c, enum aw_change_channel ch, bool sub,
                                   uint64_t at_ms)
{
    c->consents = aw_realloc(c->consents, (c->n_consents + 1) * sizeof *c->consents);
    c->consents[c->n_consents] = (struct aw_change_consent){ch, sub, at_ms != 0, at_ms};
    c->n_consents++;
}

#endif
