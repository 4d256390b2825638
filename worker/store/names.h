/* names.h -- the Redis key and field names of worker/store/fields.def for C (the same table
 * the build hands to the Lua scripts), so each name is written once. Any thread. */
#ifndef AW_WORKER_STORE_NAMES_H
#define AW_WORKER_STORE_NAMES_H

#include <stddef.h>

enum aw_store_name {
#define AW_KEY(name, text) AW_K_##name,
#define AW_FIELD(name, text) AW_F_##name,
#include "worker/store/fields.def"
#undef AW_KEY
#undef AW_FIELD
    AW_STORE_NAME_COUNT
};

/* The name (static, NUL-terminated) of one table entry. */
const char *aw_store_name(enum aw_store_name n);

/* True when s[0..len) starts with the name n (a prefix such as "a:" or an exact field). */
int aw_store_name_is_prefix(enum aw_store_name n, const char *s, size_t len);

#endif
