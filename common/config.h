/* config.h -- generic `key=value` file parser (the lines of AW_KAFKA_CONFIG_FILE).
 * Knows nothing about what the keys mean: values are kept verbatim for the caller to pass on.
 *
 * Syntax, one entry per line (LF or CRLF):
 *   - blank lines and lines whose first non-blank character is '#' are ignored;
 *   - otherwise `key = value`: blanks around the key and the value are trimmed, the value is
 *     everything after the first '=' (it may itself contain '=' or '#', and may be empty);
 *   - a key is 1..AW_CONFIG_KEY_MAX characters of [A-Za-z0-9._-];
 *   - a key may appear once; control characters (other than tab) and NUL bytes are errors.
 * Every problem is collected, as "<name>:<line>: <message>"; messages never quote a value (values
 * may be secrets). Plain data, one owner, not thread-safe. */
#ifndef AW_COMMON_CONFIG_H
#define AW_COMMON_CONFIG_H

#include <stddef.h>

#include "common/err.h"

#define AW_CONFIG_KEY_MAX 128
#define AW_CONFIG_VALUE_MAX 65536
#define AW_CONFIG_FILE_MAX (1024 * 1024) /* larger files are refused whole */
#define AW_CONFIG_ERRORS_MAX 50          /* further problems are counted in one last message */

struct aw_config_entry {
    char *key;     /* owned, NUL-terminated, never empty */
    char *value;   /* owned, NUL-terminated, may be empty; may be a secret: never log it */
    unsigned line; /* 1-based line number in the source */
};

struct aw_config {
    struct aw_config_entry *entries; /* owned array, in source order; only valid lines */
    size_t n_entries;
    size_t cap_entries;
    char **errors; /* owned array of owned "<name>:<line>: <message>" strings */
    size_t n_errors;
    size_t cap_errors;
    size_t n_errors_dropped; /* problems beyond AW_CONFIG_ERRORS_MAX, not stored */
};

/* Initialises an empty config (no entries, no errors). */
void aw_config_init(struct aw_config *c);

/* Releases everything c owns; c is empty and reusable afterwards. NULL is a no-op. */
void aw_config_free(struct aw_config *c);

/* Parses len bytes of text (need not be NUL-terminated), appending valid entries and problems to
 * c. name labels the problems (a file path). Returns AW_OK when no problem was found, else
 * AW_ERR_CONFIG (valid lines are still appended). Any thread, one config per thread. */
enum aw_err aw_config_parse(struct aw_config *c, const char *name, const char *text, size_t len);

/* Reads the regular file at path (at most AW_CONFIG_FILE_MAX bytes) and parses it as above. An
 * unreadable, non-regular or oversize file is one problem "<path>: <reason>". Returns AW_OK or
 * AW_ERR_CONFIG. */
enum aw_err aw_config_load(struct aw_config *c, const char *path);

/* Value of the entry named key (borrowed from c, valid until c changes), or NULL. */
const char *aw_config_get(const struct aw_config *c, const char *key);

#endif
