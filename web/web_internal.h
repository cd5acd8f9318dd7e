/* web/web_internal.h - shared by the web/ sources and the web unit tests only. */
#ifndef ENVHUB_WEB_INTERNAL_H
#define ENVHUB_WEB_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/embed.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "core/json_shape.h"
#include "executor/executor.h"
#include "web/web.h"

struct mg_connection;
struct cluster;
struct auth;
struct callbacks;
struct web;

/* What a route needs; roles grant them (web_role_allows, the table in docs/security.md). */
enum perm {
    PERM_PUBLIC = 0, /* no key needed: /health, the docs */
    PERM_ENV_READ,   /* list and read environments, builds, logs, packages */
    PERM_RUN,        /* execute */
    PERM_ENV_WRITE,  /* create, rebuild, delete environments */
    PERM_HISTORY,    /* executions: all for admin/auditor, their own for the others */
    PERM_AUDIT,      /* export, statistics, chain verification, events */
    PERM_KEYS,       /* API keys; the cluster's nodes (status, drain, resume) */
    PERM_NODE,       /* a node of the cluster: its token (cluster_token_ok), never a key */
};

/* One request being served. */
struct web_request {
    struct mg_connection *conn;
    const struct web_deps *deps;
    const char *method;
    const char *path;  /* URL-decoded, without the query */
    const char *query; /* raw, may be NULL */
    const char *client_addr;
    const char *principal; /* who calls: the key's name, or the address in open mode */
    char principal_buf[72];
    char key_id[16]; /* "" in open mode */
    enum role role;
    bool open_mode;
    const char *own_principal; /* non-NULL: history is limited to this principal */
    int64_t key_max_concurrent, key_max_per_minute;
    bool quota_held;
    bool quota_in_session;     /* a session's call: the session holds the concurrency */
    int retry_after;           /* seconds, for a 429 */
    const char *extra_headers; /* added to the answer (e.g. WWW-Authenticate) */
    struct auth *auth;
    struct callbacks *callbacks;
    struct web *web;
    char request_id[17];
    const char *params[4]; /* path parameters captured by the route */
    size_t n_params;
    int status;              /* what was answered, for the log */
    struct web_conn *wc;     /* the connection's guard state */
    const char *cors_origin; /* a listed Origin: answers carry the CORS grant */
    bool has_body;           /* Content-Length > 0 or chunked */
    bool body_read;          /* the whole body was read */
    size_t body_reserved;    /* bytes of ENVHUB_BODY_MEMORY this request holds */
};

/* Limits of request bodies (from the configuration). */
struct request_limits {
    int64_t max_code_length;
    int64_t max_file_size;
    int64_t max_files;
    int64_t default_timeout;
    int64_t max_timeout;
    struct json_shape_bounds shape; /* of the JSON text, checked before it is parsed */
};
/* The limits @cfg sets: its sizes, and JSON no deeper than 64 levels, at most
 * 10000 keys per object, 1000 elements per array, keys of 4096 bytes, strings
 * as long as the largest code, script or base64 file may be, 100000 values. */
void web_request_limits(const struct config *cfg, struct request_limits *ret);
/* Parse a request body that must be a JSON object (an empty body is {}):
 * the shape is checked first (json_shape_check), then jansson parses with
 * @flags. ERR_UNPROCESSABLE names the limit, or the line and column of a
 * syntax error, or says the body is not an object (@shape, e.g. "{name,
 * role}", says what is expected). *ret belongs to the caller. Pure. */
int web_json_object(const char *body, size_t len, size_t flags, const struct json_shape_bounds *b,
                    const char *shape, json_t **ret, struct err *err);

/* A validated POST /execute body. */
struct execute_request {
    char *code;
    size_t code_len;
    int64_t timeout_s;
    bool timeout_given;
    struct sandbox_overrides overrides; /* "limits": what the request lowers (0: unchanged) */
    struct job_file *files;
    size_t n_files;
    char *environment; /* NULL when absent */
};
void execute_request_release(struct execute_request *r);

/* Parse and validate an /execute body exactly as the SimplePySandbox contract
 * says: ERR_UNPROCESSABLE (422) for malformed JSON, JSON past lim->shape,
 * missing fields, wrong types and timeout out of range; ERR_INVALID (400) for
 * empty or too long code and bad files. The message names the field and the
 * limit. */
int web_parse_execute(const char *body, size_t len, const struct request_limits *lim,
                      bool environment_required, struct execute_request *ret, struct err *err);
/* The same checks on a parsed object (one job of a batch). */
int web_parse_execute_doc(const json_t *doc, const struct request_limits *lim,
                          bool environment_required, struct execute_request *ret, struct err *err);

/* ---- answering (server.c) ---- */

/* Write an answer's status line and the headers every answer carries
 * (X-Request-Id, Cache-Control: no-store unless @headers name one, nosniff,
 * the CORS grant for a listed origin), then @headers (CRLF-terminated lines,
 * NULL for none). @length < 0: a stream without Content-Length, after which
 * the connection closes. An answer sent before the request's body was read
 * also closes the connection: the rest of the body is never drained. */
/* The "data:" fields of a server-sent event carrying @text, then the blank
 * line that ends the event. A CR, LF or CR LF in @text starts another field
 * (a reader joins them with LF): no text can end the event early or write
 * an "event:" of its own. */
void web_sse_data(struct buf *out, const char *text);
#define WEB_STREAM (-1)  /* @length of a stream */
#define WEB_NO_BODY (-2) /* @length of a 204 or 304 */
void web_reply_head(struct web_request *rq, int status, const char *content_type, int64_t length,
                    const char *headers);

/* Send @doc (stolen) as JSON with @status. */
void web_reply_json(struct web_request *rq, int status, json_t *doc);
/* JSON values of the catalog's fields: a string (repaired with U+FFFD when it
 * is not UTF-8) or null; a time in ms as RFC 3339, or null when unset (<= 0). */
json_t *web_json_str(const char *s);
json_t *web_json_time(int64_t ms);
/* A job's stdout or stderr (@len bytes, as stored) as a JSON string: NUL and
 * the other control bytes kept (written as \u0000, ...), only bytes that are
 * not UTF-8 repaired with U+FFFD; "" for NULL (api_executions.c). */
json_t *web_json_output(const char *s, size_t len);
/* {"detail": msg} with the status of err->code (ERR_INTERNAL is logged and
 * answered "internal error"). */
void web_reply_err(struct web_request *rq, const struct err *err);
/* {"detail": ...} with an explicit status. */
void web_reply_detail(struct web_request *rq, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Read the whole body within cfg->max_body; refuses from Content-Length
 * before reading. ERR_TOO_LARGE / ERR_INVALID. The caller frees *ret. */
int web_read_body(struct web_request *rq, char **ret, size_t *ret_len, struct err *err);
/* The same within @max bytes, the limit named @limit_name in errors. */
int web_read_body_upto(struct web_request *rq, int64_t max, const char *limit_name, char **ret,
                       size_t *ret_len, struct err *err);
/* Read the body and parse it as a JSON object (web_json_object with the
 * configured bounds). NULL with @err filled on failure. */
json_t *web_read_object(struct web_request *rq, size_t flags, const char *shape, struct err *err);

/* ---- host names and origins (hosts.c) ---- */

/* What the server answers to, built once from the configuration. */
struct web_hosts {
    char **names; /* Host names answered: loopback, the listen host, ENVHUB_ALLOWED_HOSTS */
    char **own;   /* the server's own origins: scheme://name:port for each name */
    char **cors;  /* ENVHUB_CORS_ORIGINS */
    int port;
};
enum web_origin { WEB_ORIGIN_FOREIGN, WEB_ORIGIN_OWN, WEB_ORIGIN_LISTED };
/* ERR_INVALID names ENVHUB_LISTEN, ENVHUB_ALLOWED_HOSTS or ENVHUB_CORS_ORIGINS
 * and the entry that is not a name or an origin ("*" is refused). */
int web_hosts_init(struct web_hosts *h, const char *listen, bool tls, const char *allowed,
                   const char *cors, struct err *err);
void web_hosts_release(struct web_hosts *h);
/* Is @host (a Host header: name[:port], NULL when absent) one of the names? */
bool web_hosts_host_ok(const struct web_hosts *h, const char *host);
enum web_origin web_hosts_origin(const struct web_hosts *h, const char *origin);

/* ---- connections (guard.c) ---- */

/* Per-client connection counts, request deadlines and the body memory
 * budget, shared by all worker threads (one mutex inside). */
struct guard;
struct web_conn; /* one connection's state */
struct guard *web_guard_new(const struct config *cfg);
void web_guard_free(struct guard *g);
/* While the door is open, every connection accepted is counted against its
 * client address; one past ENVHUB_MAX_CONNECTIONS_PER_CLIENT is answered 429
 * and closed where it is accepted, before a worker or a byte of it is used.
 * One server per process. */
void web_guard_door_open(struct guard *g);
void web_guard_door_close(void);
/* civetweb's init_connection / connection_close: the connection's state,
 * and the end of its count. */
void web_guard_connection_open(struct guard *g, const struct mg_connection *conn);
void web_guard_connection_close(struct guard *g, const struct mg_connection *conn);
/* The state of @conn (NULL outside a served connection). */
struct web_conn *web_guard_conn(const struct mg_connection *conn);
/* When the request on @wc must have arrived whole (monotonic ms): its
 * first byte could come when the connection opened or the previous answer
 * ended, plus ENVHUB_REQUEST_DEADLINE. */
int64_t web_guard_deadline(const struct guard *g, const struct web_conn *wc);
/* The answer is sent: the next request's clock starts. */
void web_guard_request_done(struct web_conn *wc);
/* While a body is read: at @deadline the socket's reading side is shut, which
 * ends any read in progress however slowly bytes still come. NULL when the
 * socket is not known (then reads end only by ENVHUB_REQUEST_TIMEOUT).
 * web_guard_unwatch() before the connection can close; true when it fired. */
struct watch;
struct watch *web_guard_watch(struct guard *g, const struct mg_connection *conn, int64_t deadline);
bool web_guard_unwatch(struct guard *g, struct watch *w);
/* The answer is whole and the connection ends with a body left unread: the
 * sending side is shut (the client reads the answer, then end of stream) and
 * what still arrives is read and dropped, at most @max_bytes for at most
 * @max_ms, so that the close is not a reset, which could destroy the answer
 * in the client's buffers before it is read. */
void web_guard_linger(struct guard *g, const struct mg_connection *conn, int64_t max_ms,
                      int64_t max_bytes);
/* Take @n bytes of ENVHUB_BODY_MEMORY; false (nothing taken) when they are
 * not free, with *ret_held the bytes held by others. */
bool web_guard_body_take(struct guard *g, size_t n, size_t *ret_held);
void web_guard_body_give(struct guard *g, size_t n);
/* The connection counts alone (unit tests): the client's connections after
 * the change. */
size_t web_guard_client_enter(struct guard *g, const char *addr);
size_t web_guard_client_leave(struct guard *g, const char *addr);

/* ---- access (auth.c) ---- */

bool web_role_allows(enum role role, enum perm perm);
bool web_listen_is_loopback(const char *listen);
/* Refuses (ERR_FORBIDDEN) a non-loopback address while no key exists. */
int web_auth_open(const struct config *cfg, struct catalog *cat, struct auth **ret,
                  struct err *err);
void web_auth_close(struct auth *a);
/* Identify the caller and check @perm; on refusal answers 401/403 itself and
 * returns false. Sets rq->principal, role, own_principal. */
bool web_authorize(struct auth *a, struct web_request *rq, enum perm perm);
/* Count an execution against the caller's quotas; ERR_BUSY with
 * rq->retry_after when over. web_quota_leave() when it ends. With
 * rq->quota_in_session (a session's call) only the start counts, against
 * the minute: the session holds one of the concurrent ones. */
int web_quota_enter(struct auth *a, struct web_request *rq, struct err *err);
/* Would the caller be over its quota if it started an execution now?
 * ERR_BUSY with rq->retry_after, as web_quota_enter, but nothing is counted:
 * decided from the headers before a body is read. */
int web_quota_check(struct auth *a, struct web_request *rq, struct err *err);
/* Has the caller stored its ENVHUB_OUTPUT_BUDGET of output on the UTC day
 * of @now (ms) already? Then ERR_BUSY naming the setting and the amounts,
 * with rq->retry_after the seconds to the next UTC day; ERR_UNAVAILABLE or
 * ERR_INTERNAL when the catalog cannot say. Reads the catalog; counts
 * nothing. Every caller is held to it, admins and open mode included. */
int web_budget_check(struct auth *a, struct web_request *rq, int64_t now, struct err *err);
/* @started false: the request ran nothing, its start does not count. */
void web_quota_leave(struct auth *a, struct web_request *rq, bool started);
/* An asynchronous execution or a session (@exec_id its id) keeps the
 * caller's concurrency until web_quota_release() with that id; releasing an
 * id that holds nothing does nothing. Thread-safe. */
void web_quota_hold(struct auth *a, struct web_request *rq, const char *exec_id);
void web_quota_release(struct auth *a, const char *exec_id);
bool web_key_name_valid(const char *name);
/* web_key_issue(): web.h (the command line makes keys too). */

/* Raw bytes with @status and @content_type. */
void web_reply_bytes(struct web_request *rq, int status, const char *content_type, const void *data,
                     size_t len);
/* An execution's answer: the seed's fields plus envhub's. */
json_t *web_result_json(const struct job_result *r);

/* ---- SimplePySandbox's texts (compat.c) ---- */

/* @err's detail as the client contract words it (its own message when it
 * is about nothing the contract words). */
void web_compat_detail(const struct err *err, char *out, size_t n);
/* The message of DELETE /environments/{name}; the caller frees it. */
char *web_compat_deleted(const char *name);

/* ---- metrics (metrics.c) ---- */

/* A Prometheus label value: backslash, quote and newline escaped. */
void web_metrics_label(struct buf *out, const char *v);
/* The executor's and builder's metrics, Prometheus text, appended to @out. */
struct builder;
void web_metrics_render(struct buf *out, struct executor *x, struct builder *b,
                        struct catalog *cat);

/* ---- handlers ---- */
void api_execute(struct web_request *rq);
void api_execute_with_environment(struct web_request *rq);
void api_health(struct web_request *rq);
void api_env_create(struct web_request *rq);
void api_env_list(struct web_request *rq);
void api_env_get(struct web_request *rq);
void api_env_delete(struct web_request *rq);
void api_env_rebuild(struct web_request *rq);
void api_env_builds(struct web_request *rq);
void api_env_log(struct web_request *rq);
void api_env_packages(struct web_request *rq);
void api_build_get(struct web_request *rq);
void api_build_log(struct web_request *rq);
void api_keys_create(struct web_request *rq);
void api_keys_list(struct web_request *rq);
void api_keys_revoke(struct web_request *rq);
void api_events(struct web_request *rq);
void api_me(struct web_request *rq);
void api_metrics(struct web_request *rq);
void api_submit(struct web_request *rq);
void api_submit_batch(struct web_request *rq);
void api_cancel(struct web_request *rq);
void api_output(struct web_request *rq);
/* The delivery thread of callback_url results (api_async.c). */
int web_callbacks_start(const struct web_deps *deps, struct auth *auth, struct callbacks **ret,
                        struct err *err);
void web_callbacks_stop(struct callbacks *cb);
/* The callbacks' families of /metrics into @out: delivered and given up
 * since the start (counters), pending in the catalog (gauge). */
void web_callbacks_metrics(struct callbacks *cb, struct buf *out);
/* Open sessions hold their key's concurrency (api_sessions.c): attach
 * registers the executor's session hook that gives it back when a session
 * ends; detach (before @a is freed) returns once no call of it is left. */
void web_sessions_attach(struct executor *x, struct auth *a);
void web_sessions_detach(struct executor *x);
void api_session_open(struct web_request *rq);
void api_session_list(struct web_request *rq);
void api_session_get(struct web_request *rq);
void api_session_close(struct web_request *rq);
void api_session_execute(struct web_request *rq);
void api_session_reset(struct web_request *rq);
void api_session_put_file(struct web_request *rq);
void api_session_get_file(struct web_request *rq);
/* api_ui.c: the UI, the API documentation, the setup-script templates */
void api_ui_index(struct web_request *rq);
void api_ui_asset(struct web_request *rq);
void api_ui_docs(struct web_request *rq);
void api_ui_redoc(struct web_request *rq);
void api_openapi(struct web_request *rq);
void api_templates(struct web_request *rq);
/* ---- the cluster (api_cluster.c) ---- */
void api_node_heartbeat(struct web_request *rq);
void api_node_lease(struct web_request *rq);
void api_node_result(struct web_request *rq);
void api_node_giveback(struct web_request *rq);
void api_node_output(struct web_request *rq);
void api_cluster_nodes(struct web_request *rq);
void api_cluster_drain(struct web_request *rq);
void api_cluster_resume(struct web_request *rq);
/* The nodes on /metrics (nothing outside cluster mode). */
void web_cluster_metrics(struct buf *out, struct cluster *c);

/* Compiled in by core/embed.sh (Makefile: UI_OWN, UI_VENDOR, TEMPLATES):
 * the UI's files, Swagger UI, ReDoc and openapi.json; the example setup
 * scripts of environments/ but the base-image bootstrap. Found by base name. */
extern const struct embedded_file ui_embedded[];
extern const struct embedded_file templates_embedded[];

/* ---- curation (api_curation.c) ---- */
void api_packages(struct web_request *rq);
void api_env_diff(struct web_request *rq);
void api_env_lifecycle(struct web_request *rq);
void api_drift(struct web_request *rq);

/* ---- environments as JSON (env_json.c) ---- */

/* An environment as the API shows it (SimplePySandbox's fields + envhub's). */
json_t *web_env_json(const struct env_record *env);
/* "drifted" of a drift report: true, false, or null when unknown (< 0). */
json_t *web_env_drift_flag(int drifted);
/* How to rebuild @name: {method, path, cli}. */
json_t *web_env_rebuild_hint(const char *name);
/* Add "runs": {"7d", "30d", "90d"} (executions recorded in those last days). */
void web_env_runs_json(struct web_request *rq, const char *name, json_t *doc);

/* ---- history (api_executions.c) ---- */
void api_executions_list(struct web_request *rq);
void api_executions_get(struct web_request *rq);
void api_executions_export(struct web_request *rq);
void api_executions_stats(struct web_request *rq);
void api_audit_verify(struct web_request *rq);
/* GET /audit/verify's answer for @v: {ok, count, head, head_seq, checkpoint,
 * and first_bad_id, first_bad_seq, reason when broken}. */
json_t *web_verify_json(const struct history_verify *v);

/* ---- the pure parsers of the history's query strings (api_executions.c)
 * and of callback URLs (api_async.c), for the handlers and tests/fuzz/ ---- */

/* Which parameters an endpoint of the history takes. */
enum {
    QP_FILTERS = 1 << 0, /* environment, environment_version, status, principal, since,
                          * until, code_sha256, q */
    QP_PAGE = 1 << 1,    /* cursor, limit */
    QP_FORMAT = 1 << 2,  /* format, limit */
    QP_GROUP = 1 << 3,   /* group */
};

enum export_format { EXPORT_CSV, EXPORT_JSONL };

struct history_query {
    struct history_filter f;
    int64_t before_seq; /* from the cursor; 0: none */
    int64_t limit;      /* 0: none given */
    enum export_format format;
    enum history_group group;
    char *values[16]; /* decoded strings the filter points into */
    size_t n_values;
};
/* Free the decoded strings and zero *q (also after a failed parse). */
void history_query_release(struct history_query *q);
/* Parse the raw query string @query (NULL: none) of an endpoint taking
 * @allowed parameters (QP_*) into *q, which the caller releases in any case.
 * An unknown or repeated parameter and a malformed value are ERR_INVALID
 * naming the parameter. @own_principal (non-NULL when the caller may only
 * see its own executions) wins over any principal given. Pure. */
int web_history_query_parse(const char *query, unsigned allowed, const char *own_principal,
                            struct history_query *q, struct err *err);
/* A page cursor: base64url of "seq:<n>" without padding; the caller frees. */
char *web_cursor_encode(int64_t seq);
/* The seq (>= 1) of a cursor web_cursor_encode made; -1 for any other text. */
int web_cursor_decode(const char *s, int64_t *ret);

/* Where a callback to @u may go: its host must be listed in
 * ENVHUB_CALLBACK_HOSTS (cfg->callback_hosts; none by default), and the
 * address it resolves to, when loopback or private (url_address_internal),
 * must be listed too. *ret_ip is the numeric address to connect to: the one
 * just checked. ERR_INVALID naming callback_url and the setting. */
struct url;
int web_callback_target(const struct config *cfg, const struct url *u, char *ret_ip, size_t n,
                        struct err *err);
/* A callback_url a submission may name: url_parse accepts it, it is http,
 * and web_callback_target finds it a place to go. */
int web_callback_check(const struct config *cfg, const char *url, struct err *err);

#endif
