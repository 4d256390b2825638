/* hostport.h -- the one grammar of "host[:port]" used by every address the worker reads (Kafka
 * brokers, AW_HTTP_ADDR, Redis URLs): a host name, an IPv4 literal or a bracketed IPv6 literal,
 * then an optional ":port". Pure; any thread. */
#ifndef AW_COMMON_HOSTPORT_H
#define AW_COMMON_HOSTPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AW_HOSTPORT_HOST_MAX 256 /* host buffer size, NUL included (DNS names are <= 253) */

/* Parses s[0..n) as host[:port] or [ipv6][:port] into host (brackets removed, size
 * AW_HOSTPORT_HOST_MAX) and *port. Without a port: *port = default_port, or an error when
 * port_required. Returns NULL on success, else a static reason (never quoting the input). */
const char *aw_hostport_parse(const char *s, size_t n, uint16_t default_port, bool port_required,
                              char host[AW_HOSTPORT_HOST_MAX], uint16_t *port);

/* True when host (as returned by aw_hostport_parse) is an IPv6 literal (contains ':'), which
 * must be bracketed when printed with a port. */
bool aw_hostport_is_ipv6(const char *host);

#endif
