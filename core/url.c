/* core/url.c - one strict grammar for the URLs of outgoing requests (see
 * url.h): the byte classes of RFC 3986, checked one byte at a time. */
#include "core/url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"

#include "core/banned.h"

/* pchar of RFC 3986 (unreserved, sub-delims, ':' and '@') plus '/' and '?',
 * percent-escapes aside. */
static bool target_char(char c)
{
    return isalnum((unsigned char)c) || strchr("-._~!$&'()*+,;=:@/?", c) != NULL;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int refuse(struct err *err, const char *what, const char *text, const char *why)
{
    return err_set(err, ERR_INVALID, "%s: '%.100s%s' %s", what, text,
                   strlen(text) > 100 ? "..." : "", why);
}

/* A host name or an IPv4 address: letters, digits, '-' and '.', in labels
 * that are neither empty nor start or end with '-'. */
static bool name_valid(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)s[i]) && !(s[i] == '-' && label > 0))
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0 && s[n - 1] != '-';
}

int url_parse(const char *text, const char *what, struct url *ret, struct err *err)
{
    struct url u;
    size_t len = strlen(text);
    const char *p;

    memset(&u, 0, sizeof(u));
    if (len > URL_MAX)
        return err_set(err, ERR_INVALID, "%s: longer than %d bytes", what, URL_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] <= 0x20 || (unsigned char)text[i] >= 0x7f)
            return refuse(err, what, text,
                          "holds a space, a control character or a byte that is not ASCII "
                          "(percent-encode it)");
    if (strncasecmp(text, "http://", 7) == 0) {
        p = text + 7;
    } else if (strncasecmp(text, "https://", 8) == 0) {
        u.tls = true;
        p = text + 8;
    } else {
        return refuse(err, what, text, "must start with http:// or https://");
    }

    size_t auth_len = strcspn(p, "/?#");
    if (memchr(p, '@', auth_len))
        return refuse(err, what, text, "names a user: no user or password may precede the host");
    const char *port = NULL;
    if (p[0] == '[') {
        const char *close = memchr(p, ']', auth_len);
        if (!close || (size_t)(close - p) - 1 >= sizeof(u.host))
            return refuse(err, what, text, "has an unterminated IPv6 address");
        size_t hl = (size_t)(close - p) - 1;
        memcpy(u.host, p + 1, hl);
        struct in6_addr a6;
        if (inet_pton(AF_INET6, u.host, &a6) != 1)
            return refuse(err, what, text, "has an IPv6 address that is not one");
        u.ipv6 = true;
        if (close + 1 < p + auth_len) {
            if (close[1] != ':')
                return refuse(err, what, text, "has something after its IPv6 address");
            port = close + 2;
        }
    } else {
        const char *colon = memchr(p, ':', auth_len);
        size_t hl = colon ? (size_t)(colon - p) : auth_len;
        if (!name_valid(p, hl))
            return refuse(err, what, text,
                          "has no valid host (a name, an IPv4 address or an [IPv6] address)");
        for (size_t i = 0; i < hl; i++)
            u.host[i] = (char)tolower((unsigned char)p[i]);
        if (colon)
            port = colon + 1;
    }
    u.port = u.tls ? 443 : 80;
    if (port) {
        size_t pl = (size_t)(p + auth_len - port);
        char digits[8];
        int64_t v;
        if (pl == 0 || pl >= sizeof(digits))
            return refuse(err, what, text, "has a port that is not 1 to 65535");
        memcpy(digits, port, pl);
        digits[pl] = '\0';
        if (parse_int(digits, 1, 65535, &v) < 0)
            return refuse(err, what, text, "has a port that is not 1 to 65535");
        u.port = (int)v;
    }

    const char *t = p + auth_len;
    if (strchr(t, '#'))
        return refuse(err, what, text, "has a fragment ('#'), which is never sent");
    for (const char *c = t; *c; c++) {
        if (*c == '%') {
            int hi = hex_value(c[1]), lo = hi < 0 ? -1 : hex_value(c[2]);
            if (hi < 0 || lo < 0)
                return refuse(err, what, text, "has a '%' that is not followed by two hex digits");
            if (hi * 16 + lo < 0x20 || hi * 16 + lo == 0x7f)
                return refuse(err, what, text, "encodes a control character");
            c += 2;
        } else if (!target_char(*c)) {
            return refuse(err, what, text, "has a character that must be percent-encoded");
        }
    }
    if (*t == '?' || !*t)
        snprintf(u.target, sizeof(u.target), "/%s", t);
    else
        snprintf(u.target, sizeof(u.target), "%s", t);
    *ret = u;
    return 0;
}

void url_authority(const struct url *u, char *out, size_t n)
{
    snprintf(out, n, u->ipv6 ? "[%s]:%d" : "%s:%d", u->host, u->port);
}

static bool v4_internal(uint32_t a)
{
    uint32_t b0 = a >> 24, b1 = (a >> 16) & 0xff;
    return b0 == 0 || b0 == 10 || b0 == 127 || b0 >= 224 || (b0 == 100 && (b1 & 0xc0) == 64) ||
           (b0 == 169 && b1 == 254) || (b0 == 172 && (b1 & 0xf0) == 16) || (b0 == 192 && b1 == 168);
}

bool url_address_internal(const char *ip)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, ip, &a4) == 1)
        return v4_internal(ntohl(a4.s_addr));
    if (inet_pton(AF_INET6, ip, &a6) != 1)
        return true;
    const unsigned char *b = a6.s6_addr;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(b, mapped, sizeof(mapped)) == 0)
        return v4_internal((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 |
                           b[15]);
    bool zero_prefix = true;
    for (int i = 0; i < 15; i++)
        zero_prefix &= b[i] == 0;
    return (zero_prefix && b[15] <= 1) /* :: and ::1 */ || (b[0] & 0xfe) == 0xfc ||
           (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || b[0] == 0xff;
}
