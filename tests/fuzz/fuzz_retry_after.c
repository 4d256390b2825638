/* fuzz_retry_after.c -- Retry-After values from the network: never crash, never wait more than a
 * day, never fail to terminate. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/klaviyo/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    uint64_t ms = 0;
    if (aw_klaviyo_parse_retry_after(s, 1764288000000ull, &ms) && ms > 86400000ull)
        abort();
    free(s);
    return 0;
}
