/* web/guard.c - what one client may hold of the server: connections, time
 * and memory.
 *
 * civetweb serves each connection on one worker thread from its first byte
 * to its last, so a client that opens many connections, or sends a request
 * slowly, holds threads that every other client needs. Three bounds:
 * - at most ENVHUB_MAX_CONNECTIONS_PER_CLIENT connections per address; one
 *   past it is answered 429 and closed where it is accepted (the door,
 *   below), before it costs a worker;
 * - a request's headers and body must have arrived ENVHUB_REQUEST_DEADLINE
 *   seconds after the request could start (the connection opened, or the
 *   previous answer ended), whatever pace the bytes come at: civetweb bounds
 *   the headers; for the body, a watchdog shuts the reading side of the
 *   socket at the deadline, which ends a read that a trickle of bytes would
 *   otherwise keep alive for good;
 * - request bodies held in memory by all requests at once stay within
 *   ENVHUB_BODY_MEMORY (web_read_body takes a body's size before reading).
 * One mutex guards the tables; the watchdog has a thread of its own. */
#include <arpa/inet.h>
#include <civetweb.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web_internal.h"

#include "core/banned.h"

#define GUARD_BUCKETS 256

/* A client address and its open connections. */
struct peer {
    char addr[48];
    size_t connections;
    struct peer *next;
};

/* An accepted socket, known by its peer's address and port. */
struct sock {
    char addr[48];
    int port;
    int fd;
    struct sock *next;
};

/* A body being read: its socket's reading side is shut at the deadline. */
struct watch {
    int fd;
    int64_t deadline;
    bool fired;
    struct watch *next;
};

struct web_conn {
    int64_t request_start; /* monotonic ms: when the current request could begin */
};

struct guard {
    size_t max_per_client;
    int64_t deadline_ms;
    size_t body_budget, body_held;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct peer *peers[GUARD_BUCKETS];
    struct sock *socks[GUARD_BUCKETS];
    struct watch *watches;
    bool stop;
    pthread_t watchdog;
};

static size_t bucket_of(const char *addr, int port)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
        h = (h ^ *p) * 16777619u;
    h = (h ^ (uint32_t)port) * 16777619u;
    return h % GUARD_BUCKETS;
}

/* ---- the watchdog ---- */

static void *watchdog_run(void *arg)
{
    struct guard *g = arg;
    pthread_mutex_lock(&g->lock);
    while (!g->stop) {
        int64_t now = time_mono_ms(), next = INT64_MAX;
        for (struct watch *w = g->watches; w; w = w->next) {
            if (w->fired)
                continue;
            if (w->deadline <= now) {
                /* the worker reading this socket holds the watch: the fd is
                 * still its connection's (it cannot close while watched) */
                shutdown(w->fd, SHUT_RD);
                w->fired = true;
            } else if (w->deadline < next) {
                next = w->deadline;
            }
        }
        if (next == INT64_MAX) {
            pthread_cond_wait(&g->wake, &g->lock);
        } else {
            struct timespec until = time_deadline_in(next - now);
            pthread_cond_timedwait(&g->wake, &g->lock, &until);
        }
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

struct guard *web_guard_new(const struct config *cfg)
{
    struct guard *g = xcalloc(1, sizeof(*g));
    g->max_per_client = (size_t)cfg->max_connections_per_client;
    g->deadline_ms = cfg->request_deadline * 1000;
    g->body_budget = (size_t)cfg->body_memory;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->wake, NULL);
    if (pthread_create(&g->watchdog, NULL, watchdog_run, g) != 0) {
        log_error("web: cannot start the request watchdog: bodies are bounded by "
                  "ENVHUB_REQUEST_TIMEOUT per read only");
        g->stop = true;
    }
    return g;
}

void web_guard_free(struct guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    bool running = !g->stop;
    g->stop = true;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
    if (running)
        pthread_join(g->watchdog, NULL);
    for (size_t i = 0; i < GUARD_BUCKETS; i++) {
        while (g->peers[i]) {
            struct peer *p = g->peers[i];
            g->peers[i] = p->next;
            free(p);
        }
        while (g->socks[i]) {
            struct sock *s = g->socks[i];
            g->socks[i] = s->next;
            free(s);
        }
    }
    while (g->watches) {
        struct watch *w = g->watches;
        g->watches = w->next;
        free(w);
    }
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

/* ---- connections per client ---- */

size_t web_guard_client_enter(struct guard *g, const char *addr)
{
    size_t b = bucket_of(addr, 0), n;
    pthread_mutex_lock(&g->lock);
    struct peer *p = g->peers[b];
    while (p && strcmp(p->addr, addr) != 0)
        p = p->next;
    if (!p) {
        p = xcalloc(1, sizeof(*p));
        snprintf(p->addr, sizeof(p->addr), "%s", addr);
        p->next = g->peers[b];
        g->peers[b] = p;
    }
    n = ++p->connections;
    pthread_mutex_unlock(&g->lock);
    return n;
}

size_t web_guard_client_leave(struct guard *g, const char *addr)
{
    size_t b = bucket_of(addr, 0), n = 0;
    pthread_mutex_lock(&g->lock);
    for (struct peer **pp = &g->peers[b]; *pp; pp = &(*pp)->next) {
        struct peer *p = *pp;
        if (strcmp(p->addr, addr) != 0)
            continue;
        n = p->connections ? --p->connections : 0;
        if (n == 0) {
            *pp = p->next;
            free(p);
        }
        break;
    }
    pthread_mutex_unlock(&g->lock);
    return n;
}

/* Under the lock. */
static void sock_add(struct guard *g, const char *addr, int port, int fd)
{
    struct sock *s = xcalloc(1, sizeof(*s));
    size_t b = bucket_of(addr, port);
    snprintf(s->addr, sizeof(s->addr), "%s", addr);
    s->port = port;
    s->fd = fd;
    s->next = g->socks[b];
    g->socks[b] = s;
}

/* Under the lock: the socket's fd (-1 when unknown); @drop forgets it. */
static int sock_find(struct guard *g, const char *addr, int port, bool drop)
{
    for (struct sock **sp = &g->socks[bucket_of(addr, port)]; *sp; sp = &(*sp)->next) {
        struct sock *s = *sp;
        if (s->port != port || strcmp(s->addr, addr) != 0)
            continue;
        int fd = s->fd;
        if (drop) {
            *sp = s->next;
            free(s);
        }
        return fd;
    }
    return -1;
}

/* ---- the door: accept() ----
 *
 * civetweb accepts connections on its master thread and queues them for a
 * worker; its callbacks see a connection only once a worker holds it, and
 * never its socket. A connection past its client's limit must cost no
 * worker, so envhub refuses it where it is accepted: this accept() stands in
 * for the C library's (the program's own definition is the one civetweb's
 * calls bind to), calls the real one, and closes what is over the limit
 * after a 429, telling civetweb there was nothing to accept (it then polls
 * again, silently). It also notes each admitted socket, for the watchdog.
 * Nothing else in envhub accepts connections. */

static struct guard *_Atomic door_guard; /* set while a server runs */

static void door_refuse(int fd, const char *addr, size_t limit)
{
    char id[17], body[300], head[400], sink[4096];
    id_random_hex(id, 8);
    int bl = snprintf(body, sizeof(body),
                      "{\"detail\":\"connections: %s has %zu connections open, the limit "
                      "(ENVHUB_MAX_CONNECTIONS_PER_CLIENT); close one and retry\"}",
                      addr, limit);
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nX-Request-Id: %s\r\nRetry-After: 1\r\n"
                      "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                      "Connection: close\r\n\r\n",
                      bl, id);
    if (send(fd, head, (size_t)hl, MSG_NOSIGNAL | MSG_DONTWAIT) == hl)
        (void)send(fd, body, (size_t)bl, MSG_NOSIGNAL | MSG_DONTWAIT);
    /* what already arrived is read, so that closing sends FIN rather than a
     * reset that could overtake the answer; nothing is waited for */
    for (int i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
        ;
    shutdown(fd, SHUT_WR);
    close(fd);
    log_info("web: request id=%s method=- path=- status=429 client=%s (connection refused: %zu "
             "open, the limit)",
             id, addr, limit);
}

/* The address and port of an IP peer; false for anything else. */
static bool peer_of(int fd, char *addr, size_t n, int *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return false;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        *port = ntohs(in->sin_port);
        return inet_ntop(AF_INET, &in->sin_addr, addr, (socklen_t)n) != NULL;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        *port = ntohs(in6->sin6_port);
        return inet_ntop(AF_INET6, &in6->sin6_addr, addr, (socklen_t)n) != NULL;
    }
    return false;
}

int accept(int sockfd, struct sockaddr *addr, socklen_t *addrlen)
{
    static int (*real_accept)(int, struct sockaddr *, socklen_t *);
    if (!real_accept)
        real_accept = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    int fd = real_accept(sockfd, addr, addrlen);
    struct guard *g = door_guard;
    char who[INET6_ADDRSTRLEN];
    int port;
    if (fd < 0 || !g || !peer_of(fd, who, sizeof(who), &port))
        return fd;
    if (web_guard_client_enter(g, who) > g->max_per_client) {
        web_guard_client_leave(g, who);
        door_refuse(fd, who, g->max_per_client);
        errno = EAGAIN;
        return -1;
    }
    pthread_mutex_lock(&g->lock);
    sock_add(g, who, port, fd);
    pthread_mutex_unlock(&g->lock);
    return fd;
}

void web_guard_door_open(struct guard *g)
{
    door_guard = g;
}

void web_guard_door_close(void)
{
    door_guard = NULL;
}

/* ---- served connections ---- */

void web_guard_connection_open(struct guard *g, const struct mg_connection *conn)
{
    (void)g;
    struct web_conn *wc = xcalloc(1, sizeof(*wc));
    wc->request_start = time_mono_ms();
    mg_set_user_connection_data(conn, wc);
}

void web_guard_connection_close(struct guard *g, const struct mg_connection *conn)
{
    struct web_conn *wc = mg_get_user_connection_data(conn);
    const struct mg_request_info *ri = mg_get_request_info(conn);
    /* a worker's connection object is reused: never see this state again */
    mg_set_user_connection_data(conn, NULL);
    free(wc);
    /* counted at accept(); the address is known again once a worker served
     * it (only a worker's first connection failing its TLS handshake is
     * closed before that, and stays counted) */
    if (!ri || !ri->remote_addr[0])
        return;
    pthread_mutex_lock(&g->lock);
    bool known = sock_find(g, ri->remote_addr, ri->remote_port, true) >= 0;
    pthread_mutex_unlock(&g->lock);
    if (known)
        web_guard_client_leave(g, ri->remote_addr);
}

struct web_conn *web_guard_conn(const struct mg_connection *conn)
{
    return mg_get_user_connection_data(conn);
}

int64_t web_guard_deadline(const struct guard *g, const struct web_conn *wc)
{
    return wc->request_start + g->deadline_ms;
}

void web_guard_request_done(struct web_conn *wc)
{
    if (wc)
        wc->request_start = time_mono_ms();
}

struct watch *web_guard_watch(struct guard *g, const struct mg_connection *conn, int64_t deadline)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct watch *w = NULL;

    pthread_mutex_lock(&g->lock);
    int fd = g->stop ? -1 : sock_find(g, ri->remote_addr, ri->remote_port, false);
    if (fd >= 0) {
        w = xcalloc(1, sizeof(*w));
        w->fd = fd;
        w->deadline = deadline;
        w->next = g->watches;
        g->watches = w;
        pthread_cond_signal(&g->wake);
    }
    pthread_mutex_unlock(&g->lock);
    return w;
}

bool web_guard_unwatch(struct guard *g, struct watch *w)
{
    bool fired = false;
    if (!w)
        return false;
    pthread_mutex_lock(&g->lock);
    for (struct watch **wp = &g->watches; *wp; wp = &(*wp)->next)
        if (*wp == w) {
            *wp = w->next;
            break;
        }
    fired = w->fired;
    pthread_mutex_unlock(&g->lock);
    free(w);
    return fired;
}

void web_guard_linger(struct guard *g, const struct mg_connection *conn, int64_t max_ms,
                      int64_t max_bytes)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    int64_t deadline = time_mono_ms() + max_ms;
    char sink[8192];

    pthread_mutex_lock(&g->lock);
    /* the worker serving this connection calls: the fd stays its own */
    int fd = sock_find(g, ri->remote_addr, ri->remote_port, false);
    pthread_mutex_unlock(&g->lock);
    if (fd < 0 || shutdown(fd, SHUT_WR) < 0)
        return;
    while (max_bytes > 0) {
        int64_t left = deadline - time_mono_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            break;
        max_bytes -= n;
    }
}

/* ---- body memory ---- */

bool web_guard_body_take(struct guard *g, size_t n, size_t *ret_held)
{
    bool ok;
    pthread_mutex_lock(&g->lock);
    ok = n <= g->body_budget - g->body_held;
    if (ok)
        g->body_held += n;
    else if (ret_held)
        *ret_held = g->body_held;
    pthread_mutex_unlock(&g->lock);
    return ok;
}

void web_guard_body_give(struct guard *g, size_t n)
{
    pthread_mutex_lock(&g->lock);
    g->body_held -= n <= g->body_held ? n : g->body_held;
    pthread_mutex_unlock(&g->lock);
}
