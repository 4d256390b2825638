/* clock.h -- time sources. Monotonic ms for deadlines, unix ms for versions and records. */
#ifndef AW_COMMON_CLOCK_H
#define AW_COMMON_CLOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC. Any thread. */
uint64_t aw_clock_mono_ms(void);

/* Milliseconds since the unix epoch (CLOCK_REALTIME). Any thread. */
uint64_t aw_clock_unix_ms(void);

/* Parses an ISO 8601 / RFC 3339 date-time as Klaviyo writes it ("2026-12-01T20:47:18+00:00",
 * optional fraction, "Z" or a +hh:mm / -hh:mm offset) into unix ms. False when s is not one.
 * Pure. */
bool aw_clock_parse_iso8601(const char *s, uint64_t *unix_ms);

/* Sleeps for ms milliseconds, or less once *stop is non-zero (checked at least every 50 ms and
 * after each signal; stop may be NULL). Any thread. */
void aw_clock_sleep_ms(uint64_t ms, const atomic_int *stop);

#endif
