/* dryrun.h -- AW_DRY_RUN: the flusher's writes to Klaviyo (POST, PATCH, DELETE) never leave the
 * process. Each is appended to a JSON-lines file instead and answered here with the success
 * Klaviyo would give (a bulk import job complete at once, a list with a "dry-run-" id, 202/204
 * for the rest), so the whole pipeline runs and pending changes are acknowledged as if sent.
 * GETs still go to Klaviyo, except those naming a "dry-run-" id (polls of the jobs answered
 * here). One struct aw_dryrun per thread (the flusher's). */
#ifndef AW_KLAVIYO_DRYRUN_H
#define AW_KLAVIYO_DRYRUN_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "worker/klaviyo/api.h"

struct aw_dryrun;
struct aw_klaviyo_response;

/* Prefix of every id this module invents (lists, jobs). */
#define AW_DRYRUN_ID_PREFIX "dry-run-"

/* Opens path for appending (created with mode 0600: bodies hold personal data). NULL with the
 * reason in errbuf when it cannot be opened. */
struct aw_dryrun *aw_dryrun_new(const char *path, char *errbuf, size_t errlen);

/* Closes the file. NULL is a no-op. */
void aw_dryrun_free(struct aw_dryrun *d);

/* True when the request of endpoint ep to path must be answered here, not sent: every write,
 * and reads of an id this module invented. */
bool aw_dryrun_intercepts(enum aw_api_endpoint ep, const char *path);

/* Records the request (one line: ts_ms, account, method, path, operation, body as JSON; never
 * the API key) and fills *resp (overwritten; aw_klaviyo_response_clear releases it) with the
 * answer Klaviyo would give on success. A GET is answered without being recorded. AW_ERR_IO
 * when the line could not be written: then resp is a transport failure (action RETRY), so
 * nothing is acknowledged that the file does not hold. */
enum aw_err aw_dryrun_answer(struct aw_dryrun *d, const char *account_id, enum aw_api_endpoint ep,
                             const char *path, const char *body, struct aw_klaviyo_response *resp);

#endif
