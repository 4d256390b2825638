/* names.c -- the table of worker/store/fields.def (see names.h). */
#include "worker/store/names.h"

#include <string.h>

static const char *const names[AW_STORE_NAME_COUNT] = {
#define AW_KEY(name, text) text,
#define AW_FIELD(name, text) text,
#include "worker/store/fields.def"
#undef AW_KEY
#undef AW_FIELD
};

const char *aw_store_name(enum aw_store_name n)
{
    return names[n];
}

int aw_store_name_is_prefix(enum aw_store_name n, const char *s, size_t len)
{
    size_t k = strlen(names[n]);
    return len >= k && memcmp(s, names[n], k) == 0;
}
