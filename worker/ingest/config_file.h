/* config_file.h -- the per-account settings file named by AW_CONFIG_FILE (docs/design.md §2): a
 * JSON object keyed by account id whose entries override the messages' account_settings key by key
 * (schemas/aw-config-file.schema.json). Loaded and validated once at startup; immutable after,
 * so any thread may read it. Secrets (API keys) never appear in any error text written here. */
#ifndef AW_WORKER_CONFIG_FILE_H
#define AW_WORKER_CONFIG_FILE_H

#include <stddef.h>

#include "common/err.h"

struct aw_account_overrides;

/* Largest config file / API key file read (bytes); larger files are configuration errors. */
#define AW_CONFIG_FILE_MAX_BYTES (1024u * 1024u)
#define AW_CONFIG_FILE_KEY_MAX_BYTES 4096u

/* Looks up an environment variable: a borrowed value or NULL. Injectable for tests; NULL in
 * aw_config_file_load means getenv(3). ctx is passed through. */
typedef const char *(*aw_config_file_getenv_fn)(const char *name, void *ctx);

/* The parsed file (opaque). */
struct aw_config_file;

/* Reads and validates the file at path: a JSON object keyed by account id, each value an object
 * with optional keys `apiKey` | `apiKeyEnv` (name of an environment variable, read now through
 * getenv_fn) | `apiKeyFile` (path of a file holding the key, relative paths from the config
 * file's directory; surrounding whitespace and newlines are trimmed) -- at most one of the three
 * -- `alternateIdentifier`, `phoneIdentifier`. The key must pass aw_account_api_key_is_clean,
 * the identifiers aw_account_parse_alternate / _phone. Unknown keys are errors (typo guard).
 * On AW_OK *out is caller-owned (aw_config_file_free). On AW_ERR_CONFIG *out is NULL and errbuf
 * receives every problem found, one per line, as `<path>: <json pointer>: <problem>` (JSON
 * syntax errors as `<path>:<line>:<column>: ...`), truncated with "..." when it does not fit;
 * never a key value or file content. Call at startup (reads files and the environment); not
 * thread-safe with setenv. */
enum aw_err aw_config_file_load(const char *path, aw_config_file_getenv_fn getenv_fn, void *ctx,
                                struct aw_config_file **out, char *errbuf, size_t errlen);

/* Releases a config (wiping the keys); NULL is a no-op. */
void aw_config_file_free(struct aw_config_file *cfg);

/* Number of accounts in the file (for --check-config style summaries); 0 for NULL. */
size_t aw_config_file_count(const struct aw_config_file *cfg);

/* The overrides of account account_id, for aw_account_resolve: borrowed from cfg (valid until
 * aw_config_file_free), or NULL when cfg is NULL or has no entry for that account. Any thread. */
const struct aw_account_overrides *aw_config_file_get(const struct aw_config_file *cfg,
                                                      const char *account_id);

#endif
