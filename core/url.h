/* core/url.h - the absolute http(s) URLs envhub sends requests to (result
 * callbacks, the command line's server), parsed by one strict grammar.
 *
 * A URL is refused unless every byte is printable ASCII (no space, no
 * control character, no raw non-ASCII), its scheme is http or https, it
 * names no user (no '@' before the host), its host is a name, an IPv4
 * address or a bracketed IPv6 address, its port (if any) is 1..65535, it has
 * no fragment, and its path and query hold only the characters RFC 3986
 * allows there with well-formed percent-escapes that encode no control
 * character. What comes out can be written into a request line and a Host
 * header as it is: nothing in it can end a line. Pure and thread-safe. */
#ifndef ENVHUB_URL_H
#define ENVHUB_URL_H

#include <stdbool.h>

#include "core/err.h"

#define URL_MAX 2048

struct url {
    bool tls;                 /* https */
    bool ipv6;                /* host is an IPv6 address (written in brackets) */
    char host[256];           /* lower case; an IPv6 address without its brackets */
    int port;                 /* the URL's, or 80 / 443 */
    char target[URL_MAX + 1]; /* path and query, as in a request line; "/" when empty */
};

/* Parse @text; ERR_INVALID naming @what (e.g. "callback_url") and what is
 * wrong. *ret is written only on success. */
int url_parse(const char *text, const char *what, struct url *ret, struct err *err);
/* Is the numeric IPv4 or IPv6 address @ip one a request from envhub must
 * not reach unless an administrator said so: loopback, private (10/8,
 * 172.16/12, 192.168/16, fc00::/7), shared (100.64/10), link-local
 * (169.254/16, fe80::/10), unspecified, multicast or broadcast (IPv4-mapped
 * IPv6 addresses are judged as their IPv4)? Anything that is not an address
 * counts as internal. */
bool url_address_internal(const char *ip);
/* "host:port" (or "[v6]:port") for a Host header. */
void url_authority(const struct url *u, char *out, size_t n);

#endif
