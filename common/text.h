/* text.h -- small text helpers shared by the parsers (URLs, JSON escapes). Pure; any thread. */
#ifndef AW_COMMON_TEXT_H
#define AW_COMMON_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Value of one hexadecimal digit (0-9, a-f, A-F), or -1. */
int aw_text_hexval(int ch);

/* True for ASCII white space: ' ', '\t', '\n', '\v', '\f', '\r' (locale-independent). */
bool aw_text_is_space(int ch);

/* True when s is empty or holds only ASCII white space. */
bool aw_text_is_blank(const char *s);

/* Caller-owned copy of s[0..len) without leading and trailing ASCII white space. */
char *aw_text_trim_dup(const char *s, size_t len);

/* FNV-1a hash of s[0..len): for in-memory tables, never stored. */
uint64_t aw_text_hash(const char *s, size_t len);

/* Percent-decodes s[0..n) into a caller-owned NUL-terminated string. NULL when an escape is
 * malformed (not two hex digits) or encodes a NUL byte. */
char *aw_text_pct_decode(const char *s, size_t n);

#endif
