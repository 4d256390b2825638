/* flush.c -- being written (issue 4); until then a replica runs as consumer only. */
#include "worker/flush.h"

#include <stdio.h>

struct aw_flusher *aw_flusher_start(const struct aw_settings *s,
                                    const struct aw_account_config *accounts,
                                    const volatile sig_atomic_t *stop, char *errbuf,
                                    size_t errlen)
{
    (void)s;
    (void)accounts;
    (void)stop;
    snprintf(errbuf, errlen, "the flusher is not built yet: set AW_LEADER_ENABLED=false");
    return NULL;
}

void aw_flusher_join(struct aw_flusher *f) { (void)f; }
