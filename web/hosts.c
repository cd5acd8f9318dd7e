/* web/hosts.c - the names this server answers to and the origins it trusts.
 *
 * A page on attacker.example can make a browser send requests to a server on
 * 127.0.0.1 once attacker.example resolves there (DNS rebinding); its Host
 * header then reads attacker.example, and the page's own origin is
 * http://attacker.example:8000. So the server answers only to Host names it
 * knows (loopback, its listen address, ENVHUB_ALLOWED_HOSTS) and derives its
 * own origin from those names and its listen port, never from the request.
 * Everything here is pure: built once from the configuration, then read by
 * every worker thread without locks. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web_internal.h"

#include "core/banned.h"

/* Names every server answers to: the loopback ones. */
static const char *const loopback_names[] = {"localhost", "127.0.0.1", "[::1]"};

/* A host name, an IPv4 address or a bracketed IPv6 address, without port. */
static bool name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    if (s[0] == '[') {
        if (n < 3 || s[n - 1] != ']')
            return false;
        for (size_t i = 1; i + 1 < n; i++)
            if (!isxdigit((unsigned char)s[i]) && s[i] != ':' && s[i] != '.')
                return false;
        return true;
    }
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
            return false;
    return s[0] != '.' && s[0] != '-';
}

static char *lower_dup(const char *s, size_t n)
{
    char *d = xstrndup(s, n);
    for (char *p = d; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

/* "name", "name:port", "[v6]" or "[v6]:port" -> the length of the name
 * and the port (0 when none); -1 when anything else follows the name. */
static int authority_split(const char *s, size_t *ret_name_len, int64_t *ret_port)
{
    size_t n;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return -1;
        n = (size_t)(close - s) + 1;
    } else {
        n = strcspn(s, ":");
    }
    *ret_name_len = n;
    *ret_port = 0;
    if (!s[n])
        return 0;
    if (s[n] != ':' || !s[n + 1] || strspn(s + n + 1, "0123456789") != strlen(s + n + 1))
        return -1;
    return parse_int(s + n + 1, 1, 65535, ret_port);
}

/* ENVHUB_LISTEN: "host:port", "[v6]:port" or a bare port (every address),
 * with civetweb's suffix "s" (TLS) or "r" (redirect) allowed after the port. */
static int listen_split(const char *listen, char **ret_host, int64_t *ret_port)
{
    _cleanup_free_ char *s = xstrdup(listen);
    size_t len = strlen(s);
    if (len && (s[len - 1] == 's' || s[len - 1] == 'r'))
        s[len - 1] = '\0';
    if (strspn(s, "0123456789") == strlen(s)) {
        *ret_host = xstrdup("");
        return parse_int(s, 1, 65535, ret_port);
    }
    size_t n;
    if (authority_split(s, &n, ret_port) < 0 || *ret_port == 0)
        return -1;
    *ret_host = lower_dup(s, n);
    return 0;
}

static bool list_has(char *const *v, const char *s, size_t n)
{
    for (; v && *v; v++)
        if (strlen(*v) == n && strncasecmp(*v, s, n) == 0)
            return true;
    return false;
}

static void add_unique(char ***v, char *s)
{
    if (list_has(*v, s, strlen(s)))
        free(s);
    else
        strv_push(v, s);
}

/* "http://host[:port]" with a valid host and nothing after it. */
static bool origin_valid(const char *o)
{
    const char *rest;
    if (strncasecmp(o, "http://", 7) == 0)
        rest = o + 7;
    else if (strncasecmp(o, "https://", 8) == 0)
        rest = o + 8;
    else
        return false;
    size_t n;
    int64_t port;
    if (authority_split(rest, &n, &port) < 0)
        return false;
    _cleanup_free_ char *host = xstrndup(rest, n);
    return name_valid(host);
}

int web_hosts_init(struct web_hosts *h, const char *listen, bool tls, const char *allowed,
                   const char *cors, struct err *err)
{
    _cleanup_free_ char *listen_host = NULL;
    int64_t port;
    const char *scheme = tls ? "https" : "http";

    memset(h, 0, sizeof(*h));
    if (listen_split(listen, &listen_host, &port) < 0)
        return err_set(err, ERR_INVALID, "ENVHUB_LISTEN '%s' must be host:port", listen);
    h->port = (int)port;
    h->names = xcalloc(1, sizeof(char *));
    h->own = xcalloc(1, sizeof(char *));
    for (size_t i = 0; i < ARRAY_SIZE(loopback_names); i++)
        strv_push(&h->names, xstrdup(loopback_names[i]));
    /* an address of every interface ("0.0.0.0", "[::]", "") names nothing */
    if (listen_host[0] && strcmp(listen_host, "0.0.0.0") != 0 && strcmp(listen_host, "[::]") != 0)
        add_unique(&h->names, xstrdup(listen_host));
    size_t n_fixed = strv_length(h->names);

    _cleanup_(strv_freep) char **extra = strv_split(allowed, ',');
    for (char **p = extra; *p; p++) {
        if (!name_valid(*p)) {
            web_hosts_release(h);
            return err_set(err, ERR_INVALID,
                           "ENVHUB_ALLOWED_HOSTS: '%.100s' is not a host name (names, IPv4 or "
                           "[IPv6] addresses, without port or wildcard)",
                           *p);
        }
        add_unique(&h->names, lower_dup(*p, strlen(*p)));
    }
    for (size_t i = 0; h->names[i]; i++) {
        add_unique(&h->own, xasprintf("%s://%s:%d", scheme, h->names[i], h->port));
        if (port == (tls ? 443 : 80))
            add_unique(&h->own, xasprintf("%s://%s", scheme, h->names[i]));
        /* names of the deployment's own (behind a proxy on the default ports) */
        if (i >= n_fixed) {
            add_unique(&h->own, xasprintf("https://%s", h->names[i]));
            add_unique(&h->own, xasprintf("http://%s", h->names[i]));
        }
    }

    h->cors = strv_split(cors, ',');
    for (char **p = h->cors; *p; p++)
        if (!origin_valid(*p)) {
            const char *why = strcmp(*p, "*") == 0
                                  ? " (a wildcard would let every web page a user visits drive "
                                    "the API; list the origins)"
                                  : "";
            err_set(err, ERR_INVALID,
                    "ENVHUB_CORS_ORIGINS: '%.100s' is not an origin such as "
                    "https://app.example:8443%s",
                    *p, why);
            web_hosts_release(h);
            return -1;
        }
    return 0;
}

void web_hosts_release(struct web_hosts *h)
{
    if (!h)
        return;
    strv_free(h->names);
    strv_free(h->own);
    strv_free(h->cors);
    memset(h, 0, sizeof(*h));
}

bool web_hosts_host_ok(const struct web_hosts *h, const char *host)
{
    size_t n;
    int64_t port;
    /* the name decides; the port may differ behind a proxy */
    return host && authority_split(host, &n, &port) == 0 && n > 0 && list_has(h->names, host, n);
}

enum web_origin web_hosts_origin(const struct web_hosts *h, const char *origin)
{
    size_t n = strlen(origin);
    if (list_has(h->own, origin, n))
        return WEB_ORIGIN_OWN;
    if (list_has(h->cors, origin, n))
        return WEB_ORIGIN_LISTED;
    return WEB_ORIGIN_FOREIGN;
}
