/* err.h -- the one error enum of the project. Append only, never renumber. */
#ifndef AW_COMMON_ERR_H
#define AW_COMMON_ERR_H

#include <stdbool.h>

enum aw_err {
    AW_OK = 0,
    AW_ERR_INVALID,      /* bad input, permanent for that item */
    AW_ERR_CONFIG,       /* bad configuration */
    AW_ERR_IO,           /* transport / connection failure, transient */
    AW_ERR_TIMEOUT,      /* deadline exceeded, transient */
    AW_ERR_PROTOCOL,     /* peer answered something we cannot understand */
    AW_ERR_RATE_LIMITED, /* remote asked us to slow down */
    AW_ERR_REJECTED,     /* remote refused, permanent */
    AW_ERR_NOT_LEADER,   /* lease not held (fencing) */
    AW_ERR_FATAL,        /* cannot continue */
    AW_ERR_INTERNAL,     /* bug or invariant violated */
    AW_ERR_FULL          /* storage full (Redis maxmemory): retry once space is freed */
};

/* Static, never-NULL name of an error ("ok", "invalid", ...). Any thread. */
const char *aw_err_str(enum aw_err err);

/* True when retrying the same operation later may succeed (IO, timeout, rate limit). */
bool aw_err_is_transient(enum aw_err err);

#endif
