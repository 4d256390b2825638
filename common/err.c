#include "common/err.h"

const char *aw_err_str(enum aw_err err)
{
    switch (err) {
    case AW_OK:
        return "ok";
    case AW_ERR_INVALID:
        return "invalid";
    case AW_ERR_CONFIG:
        return "config";
    case AW_ERR_IO:
        return "io";
    case AW_ERR_TIMEOUT:
        return "timeout";
    case AW_ERR_PROTOCOL:
        return "protocol";
    case AW_ERR_RATE_LIMITED:
        return "rate_limited";
    case AW_ERR_REJECTED:
        return "rejected";
    case AW_ERR_NOT_LEADER:
        return "not_leader";
    case AW_ERR_FATAL:
        return "fatal";
    case AW_ERR_INTERNAL:
        return "internal";
    case AW_ERR_FULL:
        return "full";
    }
    return "unknown";
}

bool aw_err_is_transient(enum aw_err err)
{
    return err == AW_ERR_IO || err == AW_ERR_TIMEOUT || err == AW_ERR_RATE_LIMITED ||
           err == AW_ERR_FULL;
}
