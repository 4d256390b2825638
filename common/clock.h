/* clock.h -- time sources. Monotonic ms for deadlines, unix ms for versions and records. */
#ifndef AW_COMMON_CLOCK_H
#define AW_COMMON_CLOCK_H

#include <stdatomic.h>
#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC. Any thread. */
uint64_t aw_clock_mono_ms(void);

/* Milliseconds since the unix epoch (CLOCK_REALTIME). Any thread. */
uint64_t aw_clock_unix_ms(void);

/* Sleeps for ms milliseconds, or less once *stop is non-zero (checked at least every 50 ms and
 * after each signal; stop may be NULL). Any thread. */
void aw_clock_sleep_ms(uint64_t ms, const atomic_int *stop);

#endif
