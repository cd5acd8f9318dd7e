/* web/api_executions.c - the execution history for auditors:
 *
 *     GET /executions             filters, keyset pages newest first: {items, next_cursor}
 *     GET /executions/{id}        one execution with code, output and file manifest
 *     GET /executions/export      the same filters as CSV or JSON lines, chunked
 *     GET /executions/stats       counts and durations grouped by environment, status or day
 *     GET /audit/verify           the tamper-evident chain walked: ok, or the first bad row
 *
 * Every query parameter is checked before the catalog is asked: an unknown
 * or repeated parameter and a malformed value are 400 naming the parameter.
 * When the gate limits the caller to its own executions (rq->own_principal),
 * the principal filter is forced to it. */
#include <civetweb.h>
#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "cluster/cluster.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web_internal.h"

#include "core/banned.h"

#define HISTORY_DEFAULT_LIMIT 50
#define HISTORY_MAX_LIMIT 500
#define HISTORY_MAX_VALUE 1024 /* bytes of one decoded parameter */
#define HISTORY_MAX_TEXT 256   /* bytes of q */
#define HISTORY_EXPORT_BATCH 1000
#define HISTORY_CHUNK 65536 /* bytes sent per chunk of an export */

void history_query_release(struct history_query *q)
{
    for (size_t i = 0; i < q->n_values; i++)
        free(q->values[i]);
    memset(q, 0, sizeof(*q));
}

/* ---- cursors: base64url of "seq:<n>" ---- */

char *web_cursor_encode(int64_t seq)
{
    char plain[32];
    size_t n;
    int len = snprintf(plain, sizeof(plain), "seq:%lld", (long long)seq);
    char *b64 = base64_encode(plain, (size_t)len, &n);
    for (char *p = b64; *p; p++) {
        if (*p == '+')
            *p = '-';
        else if (*p == '/')
            *p = '_';
        else if (*p == '=')
            *p = '\0';
    }
    return b64;
}

int web_cursor_decode(const char *s, int64_t *ret)
{
    char std[64];
    size_t n = strlen(s), i;
    struct buf out = BUF_INIT(48);
    int r = -1;

    if (n == 0 || n > 40)
        return -1;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!isalnum((unsigned char)c))
            return -1;
        std[i] = c;
    }
    while (i % 4)
        std[i++] = '=';
    std[i] = '\0';
    if (base64_decode(std, i, &out, NULL) == 0 && out.len > 4 &&
        strncmp(buf_str(&out), "seq:", 4) == 0 &&
        parse_int(buf_str(&out) + 4, 1, INT64_MAX, ret) == 0)
        r = 0;
    buf_release(&out);
    return r;
}

/* ---- parameters ---- */

static const char *const status_list = "queued, running, succeeded, failed, timeout, oom, error, "
                                       "interrupted";

static bool is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!isxdigit((unsigned char)*p))
            return false;
    return true;
}

static bool has_word(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (isalnum(*p) || *p >= 0x80)
            return true;
    return false;
}

static const char *accepted(unsigned allowed)
{
    if (allowed & QP_PAGE)
        return "environment, environment_version, status, principal, since, until, code_sha256, "
               "q, cursor, limit, node";
    if (allowed & QP_FORMAT)
        return "format, environment, environment_version, status, principal, since, until, "
               "code_sha256, q, limit, node";
    if (allowed & QP_GROUP)
        return "group, environment, environment_version, status, principal, since, until, "
               "code_sha256, q, node";
    return "none";
}

/* One decoded name=value pair into *q. */
static int query_set(struct history_query *q, unsigned allowed, const char *name, char *value,
                     unsigned *seen, struct err *err)
{
    static const char *const names[] = {"environment", "environment_version",
                                        "status",      "principal",
                                        "since",       "until",
                                        "code_sha256", "q",
                                        "cursor",      "limit",
                                        "format",      "group",
                                        "user",        "node"};
    static const unsigned needs[] = {QP_FILTERS, QP_FILTERS,          QP_FILTERS, QP_FILTERS,
                                     QP_FILTERS, QP_FILTERS,          QP_FILTERS, QP_FILTERS,
                                     QP_PAGE,    QP_PAGE | QP_FORMAT, QP_FORMAT,  QP_GROUP,
                                     QP_FILTERS, QP_FILTERS};
    size_t k;

    for (k = 0; k < ARRAY_SIZE(names); k++)
        if (strcmp(name, names[k]) == 0 && (needs[k] & allowed))
            break;
    if (k == ARRAY_SIZE(names))
        return err_set(err, ERR_INVALID, "unknown parameter '%.60s' (this endpoint takes %s)", name,
                       accepted(allowed));
    if (k == 12)
        k = 3; /* user: another name for principal */
    if (*seen & (1u << k))
        return err_set(err, ERR_INVALID, "%s: given more than once", names[k]);
    *seen |= 1u << k;
    q->values[q->n_values++] = value; /* owned by q from here */

    switch (k) {
    case 0:
        if (!value[0] || strlen(value) > 255)
            return err_set(err, ERR_INVALID, "environment: must be a name of 1 to 255 bytes");
        q->f.environment = value;
        return 0;
    case 1:
        if (parse_int(value, 1, INT64_MAX, &q->f.environment_version) < 0)
            return err_set(err, ERR_INVALID,
                           "environment_version: '%.40s' is not a version number (1 or more)",
                           value);
        return 0;
    case 2:
        q->f.status = exec_status_parse(value);
        if (q->f.status < 0)
            return err_set(err, ERR_INVALID, "status: '%.40s' is not one of %s", value,
                           status_list);
        return 0;
    case 3:
        if (!value[0] || strlen(value) > 255)
            return err_set(err, ERR_INVALID, "principal: must be 1 to 255 bytes");
        q->f.principal = value;
        return 0;
    case 4:
    case 5: {
        int64_t *t = k == 4 ? &q->f.since : &q->f.until;
        if (time_parse_iso(value, t) < 0)
            return err_set(err, ERR_INVALID,
                           "%s: '%.60s' is not an RFC 3339 date or time (2026-11-01 or "
                           "2026-11-01T10:00:00Z)",
                           names[k], value);
        if (k == 4)
            q->f.has_since = true;
        else
            q->f.has_until = true;
        return 0;
    }
    case 6:
        if (!is_hex64(value))
            return err_set(err, ERR_INVALID, "code_sha256: must be 64 hexadecimal characters");
        for (char *p = value; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        q->f.code_sha256 = value;
        return 0;
    case 7:
        if (strlen(value) > HISTORY_MAX_TEXT)
            return err_set(err, ERR_INVALID, "q: over the limit of %d bytes", HISTORY_MAX_TEXT);
        if (!has_word(value))
            return err_set(err, ERR_INVALID, "q: has no letters or digits to search for");
        q->f.text = value;
        return 0;
    case 8:
        if (web_cursor_decode(value, &q->before_seq) < 0)
            return err_set(err, ERR_INVALID,
                           "cursor: '%.60s' is not a cursor from this API (use next_cursor "
                           "as given)",
                           value);
        return 0;
    case 9:
        if (parse_int(value, 1, (allowed & QP_PAGE) ? HISTORY_MAX_LIMIT : INT64_MAX, &q->limit) <
            0) {
            if (allowed & QP_PAGE)
                return err_set(err, ERR_INVALID, "limit: '%.40s' must be an integer from 1 to %d",
                               value, HISTORY_MAX_LIMIT);
            return err_set(err, ERR_INVALID, "limit: '%.40s' must be a positive integer", value);
        }
        return 0;
    case 13:
        if (!cluster_node_name_ok(value))
            return err_set(err, ERR_INVALID,
                           "node: must be a node name (1 to %d letters, digits, '.', '_' or '-')",
                           CLUSTER_NAME_MAX);
        q->f.node = value;
        return 0;
    case 10:
        if (strcmp(value, "csv") == 0)
            q->format = EXPORT_CSV;
        else if (strcmp(value, "jsonl") == 0)
            q->format = EXPORT_JSONL;
        else
            return err_set(err, ERR_INVALID, "format: '%.40s' must be csv or jsonl", value);
        return 0;
    default:
        if (strcmp(value, "environment") == 0)
            q->group = HISTORY_GROUP_ENVIRONMENT;
        else if (strcmp(value, "status") == 0)
            q->group = HISTORY_GROUP_STATUS;
        else if (strcmp(value, "day") == 0)
            q->group = HISTORY_GROUP_DAY;
        else
            return err_set(err, ERR_INVALID, "group: '%.40s' must be environment, status or day",
                           value);
        return 0;
    }
}

static char *decode_part(const char *s, size_t len, const char *what, struct err *err)
{
    char *out = xmalloc(len + 1);
    int n = mg_url_decode(s, (int)len, out, (int)len + 1, 1);
    if (n < 0 || strlen(out) != (size_t)n) {
        free(out);
        err_set(err, ERR_INVALID, "%s: is not a valid URL-encoded text without NUL bytes", what);
        return NULL;
    }
    return out;
}

int web_history_query_parse(const char *query, unsigned allowed, const char *own_principal,
                            struct history_query *q, struct err *err)
{
    const char *s = query ? query : "";
    unsigned seen = 0;

    memset(q, 0, sizeof(*q));
    q->f.status = -1;
    while (*s) {
        size_t len = strcspn(s, "&");
        if (len > 0) {
            const char *eq = memchr(s, '=', len);
            size_t nlen = eq ? (size_t)(eq - s) : len;
            if (q->n_values == ARRAY_SIZE(q->values))
                return err_set(err, ERR_INVALID, "too many parameters");
            if (len - nlen > 3 * HISTORY_MAX_VALUE)
                return err_set(err, ERR_INVALID, "a parameter is longer than %d bytes",
                               HISTORY_MAX_VALUE);
            _cleanup_free_ char *name = decode_part(s, nlen, "a parameter name", err);
            if (!name)
                return -1;
            char *value = eq ? decode_part(eq + 1, len - nlen - 1, name, err) : xstrdup("");
            if (!value)
                return -1;
            if (query_set(q, allowed, name, value, &seen, err) < 0) {
                if (q->n_values == 0 || q->values[q->n_values - 1] != value)
                    free(value);
                return -1;
            }
        }
        s += len;
        if (*s == '&')
            s++;
    }
    if (q->f.environment_version > 0 && !q->f.environment)
        return err_set(err, ERR_INVALID, "environment_version: needs environment");
    if (q->f.has_since && q->f.has_until && q->f.until <= q->f.since)
        return err_set(err, ERR_INVALID, "until: must be after since");
    if (own_principal)
        q->f.principal = own_principal;
    return 0;
}

/* Parse rq->query for an endpoint taking @allowed parameters; the gate's
 * restriction to the caller's own executions wins over any principal. */
static int history_query_parse(struct web_request *rq, unsigned allowed, struct history_query *q,
                               struct err *err)
{
    return web_history_query_parse(rq->query, allowed, rq->own_principal, q, err);
}

/* ---- JSON ---- */

/* A row's recorded limits: a JSON object, unless the row was altered.
 * Rows share a few policies: the last text found valid on this thread is
 * remembered, so an export parses each distinct one about once. */
static bool limits_valid(const char *text)
{
    static _Thread_local char last_ok[512];

    if (!text || text[0] != '{')
        return false;
    if (last_ok[0] && strcmp(text, last_ok) == 0)
        return true;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    bool ok = json_is_object(doc);
    json_decref(doc);
    if (ok && strlen(text) < sizeof(last_ok))
        snprintf(last_ok, sizeof(last_ok), "%s", text);
    return ok;
}

static json_t *item_json(const struct history_item *it)
{
    const struct execution_record *r = &it->rec;
    json_t *o = json_object();

    json_object_set_new(o, "id", web_json_str(r->id));
    json_object_set_new(o, "environment", web_json_str(r->environment));
    json_object_set_new(o, "environment_version", json_integer(r->environment_version));
    json_object_set_new(o, "image", web_json_str(r->image));
    json_object_set_new(o, "image_id", web_json_str(r->image_id));
    json_object_set_new(o, "principal", web_json_str(r->principal));
    json_object_set_new(o, "client_addr", web_json_str(r->client_addr));
    json_object_set_new(o, "code_sha256", json_string(r->code_sha256));
    json_object_set_new(o, "status", json_string(exec_status_name(r->status)));
    json_object_set_new(o, "exit_code",
                        r->exit_code == -1 ? json_null() : json_integer(r->exit_code));
    json_object_set_new(o, "error", web_json_str(r->error));
    json_object_set_new(o, "timeout_s", json_integer(r->timeout_s));
    json_object_set_new(o, "queued_at", web_json_time(r->queued_at));
    json_object_set_new(o, "started_at", web_json_time(r->started_at));
    json_object_set_new(o, "finished_at", web_json_time(r->finished_at));
    json_object_set_new(o, "recorded_at", web_json_time(it->recorded_at));
    json_object_set_new(o, "duration_ms",
                        r->duration_ms < 0 ? json_null() : json_integer(r->duration_ms));
    json_object_set_new(o, "stdout_truncated", json_boolean(r->stdout_truncated));
    json_object_set_new(o, "stderr_truncated", json_boolean(r->stderr_truncated));
    json_object_set_new(o, "chain_seq", it->chain_seq ? json_integer(it->chain_seq) : json_null());
    json_object_set_new(o, "chain_hash",
                        it->chain_hash[0] ? json_string(it->chain_hash) : json_null());
    json_object_set_new(o, "session_id", web_json_str(r->session_id));
    /* the limits it ran with (curation policies), as recorded */
    json_t *limits = limits_valid(r->limits) ? json_loads(r->limits, 0, NULL) : NULL;
    json_object_set_new(o, "limits", limits ? limits : json_null());
    json_object_set_new(o, "warning", web_json_str(r->warning));
    json_object_set_new(o, "node", web_json_str(r->node));
    return o;
}

/* ---- GET /executions ---- */

void api_executions_list(struct web_request *rq)
{
    struct history_query q;
    struct history_item *items = NULL;
    size_t n = 0;
    struct err err = ERR_INIT;

    if (history_query_parse(rq, QP_FILTERS | QP_PAGE, &q, &err) < 0) {
        history_query_release(&q);
        web_reply_err(rq, &err);
        return;
    }
    size_t limit = (size_t)(q.limit ? q.limit : HISTORY_DEFAULT_LIMIT);
    /* one more than asked says whether a next page exists */
    if (catalog_history_list(rq->deps->catalog, &q.f, q.before_seq, limit + 1, &items, &n, &err) <
        0) {
        history_query_release(&q);
        web_reply_err(rq, &err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n && i < limit; i++)
        json_array_append_new(list, item_json(&items[i]));
    json_t *next = json_null();
    if (n > limit) {
        _cleanup_free_ char *c = web_cursor_encode(items[limit - 1].seq);
        json_decref(next);
        next = json_string(c);
    }
    history_items_free(items, n);
    history_query_release(&q);
    web_reply_json(rq, 200, json_pack("{s:o, s:o}", "items", list, "next_cursor", next));
}

/* ---- GET /executions/{id} ---- */

json_t *web_json_output(const char *s, size_t len)
{
    if (!s)
        return json_string("");
    json_t *j = json_stringn(s, len); /* NUL and control bytes are \u escapes */
    if (!j) { /* not UTF-8 (a row written by something else): repaired, NUL kept */
        size_t n = 0;
        _cleanup_free_ char *clean = utf8_repair(s, len, &n);
        j = json_stringn(clean, n);
    }
    return j ? j : json_string("");
}

void api_executions_get(struct web_request *rq)
{
    _cleanup_(history_item_release) struct history_item it = {0};
    struct err err = ERR_INIT;
    const char *id = rq->params[0];

    if (strlen(id) > 64 || catalog_history_get(rq->deps->catalog, id, &it, &err) < 0 ||
        (rq->own_principal &&
         strcmp(it.rec.principal ? it.rec.principal : "", rq->own_principal) != 0)) {
        if (err.code == ERR_OK || err.code == ERR_NOT_FOUND) /* not yours reads the same */
            web_reply_detail(rq, 404, "execution '%.64s' not found", id);
        else
            web_reply_err(rq, &err);
        return;
    }
    const struct execution_record *r = &it.rec;
    json_t *doc = item_json(&it);
    json_t *files = json_array();
    for (size_t i = 0; i < r->n_files; i++)
        json_array_append_new(files, json_pack("{s:s, s:o, s:I, s:s}", "direction",
                                               file_direction_name(r->files[i].direction), "path",
                                               web_json_str(r->files[i].path), "size",
                                               (json_int_t)r->files[i].size, "sha256",
                                               r->files[i].sha256));
    json_object_set_new(doc, "code", web_json_str(r->code));
    json_object_set_new(doc, "stdout", web_json_output(r->stdout_text, r->stdout_len));
    json_object_set_new(doc, "stderr", web_json_output(r->stderr_text, r->stderr_len));
    /* retention: dropped output reads "", its digest and size stay */
    json_object_set_new(doc, "output_pruned", json_boolean(r->output_pruned_at != 0));
    json_object_set_new(doc, "output_pruned_at", web_json_time(r->output_pruned_at));
    json_object_set_new(doc, "stdout_sha256", json_string(r->stdout_sha256));
    json_object_set_new(doc, "stdout_size", json_integer(r->stdout_size));
    json_object_set_new(doc, "stderr_sha256", json_string(r->stderr_sha256));
    json_object_set_new(doc, "stderr_size", json_integer(r->stderr_size));
    json_object_set_new(doc, "files", files);
    web_reply_json(rq, 200, doc);
}

/* ---- GET /executions/export ---- */

static const char *const csv_columns[] = {
    "id",
    "environment",
    "environment_version",
    "image",
    "image_id",
    "principal",
    "client_addr",
    "code_sha256",
    "status",
    "exit_code",
    "error",
    "timeout_s",
    "queued_at",
    "started_at",
    "finished_at",
    "recorded_at",
    "duration_ms",
    "stdout_truncated",
    "stderr_truncated",
    "chain_seq",
    "chain_hash",
    "session_id",
    "limits",
    "warning",
    "node",
};

/* time_format_iso()'s text without gmtime and strftime per call: an export
 * writes four times a row, and rows of one day share its date. */
struct iso_cache {
    int64_t day; /* days since the epoch of date[], INT64_MIN: none */
    char date[16];
};

static void iso_time(struct iso_cache *c, int64_t ms, char out[TIME_ISO_MAX])
{
    int64_t day = ms >= 0 ? ms / 86400000 : (ms - 86399999) / 86400000;
    int64_t rest = ms - day * 86400000;
    if (day != c->day) {
        time_format_iso(day * 86400000, out); /* "YYYY-MM-DDT00:00:00.000Z" */
        memcpy(c->date, out, 11);             /* "YYYY-MM-DDT" */
        c->day = day;
    }
    int h = (int)(rest / 3600000), m = (int)(rest / 60000 % 60), sec = (int)(rest / 1000 % 60),
        f = (int)(rest % 1000);
    memcpy(out, c->date, 11);
    char *p = out + 11;
    *p++ = (char)('0' + h / 10);
    *p++ = (char)('0' + h % 10);
    *p++ = ':';
    *p++ = (char)('0' + m / 10);
    *p++ = (char)('0' + m % 10);
    *p++ = ':';
    *p++ = (char)('0' + sec / 10);
    *p++ = (char)('0' + sec % 10);
    *p++ = '.';
    *p++ = (char)('0' + f / 100);
    *p++ = (char)('0' + f / 10 % 10);
    *p++ = (char)('0' + f % 10);
    *p++ = 'Z';
    *p = '\0';
}

/* RFC 4180: quoted when it holds a comma, a quote or a line break. */
static void csv_field(struct buf *b, const char *s)
{
    if (!s)
        return;
    if (!s[strcspn(s, ",\"\r\n")]) {
        buf_put(b, s, strlen(s));
        return;
    }
    buf_put(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            buf_put(b, "\"", 1);
        buf_put(b, p, 1);
    }
    buf_put(b, "\"", 1);
}

static void csv_int(struct buf *b, int64_t v, bool null)
{
    if (!null)
        buf_put_int(b, v);
}

static void csv_time(struct buf *b, struct iso_cache *c, int64_t ms)
{
    char iso[TIME_ISO_MAX];
    if (ms <= 0)
        return;
    iso_time(c, ms, iso);
    buf_put(b, iso, strlen(iso));
}

static void csv_row(struct buf *b, struct iso_cache *c, const struct history_item *it)
{
    const struct execution_record *r = &it->rec;
#define SEP buf_put(b, ",", 1)
    csv_field(b, r->id);
    SEP;
    csv_field(b, r->environment);
    SEP;
    csv_int(b, r->environment_version, false);
    SEP;
    csv_field(b, r->image);
    SEP;
    csv_field(b, r->image_id);
    SEP;
    csv_field(b, r->principal);
    SEP;
    csv_field(b, r->client_addr);
    SEP;
    csv_field(b, r->code_sha256);
    SEP;
    csv_field(b, exec_status_name(r->status));
    SEP;
    csv_int(b, r->exit_code, r->exit_code == -1);
    SEP;
    csv_field(b, r->error);
    SEP;
    csv_int(b, r->timeout_s, false);
    SEP;
    csv_time(b, c, r->queued_at);
    SEP;
    csv_time(b, c, r->started_at);
    SEP;
    csv_time(b, c, r->finished_at);
    SEP;
    csv_time(b, c, it->recorded_at);
    SEP;
    csv_int(b, r->duration_ms, r->duration_ms < 0);
    SEP;
    csv_field(b, r->stdout_truncated ? "true" : "false");
    SEP;
    csv_field(b, r->stderr_truncated ? "true" : "false");
    SEP;
    csv_int(b, it->chain_seq, it->chain_seq == 0);
    SEP;
    csv_field(b, it->chain_hash[0] ? it->chain_hash : NULL);
    SEP;
    csv_field(b, r->session_id);
    SEP;
    csv_field(b, limits_valid(r->limits) ? r->limits : NULL);
    SEP;
    csv_field(b, r->warning);
    SEP;
    csv_field(b, r->node);
    buf_put(b, "\r\n", 2);
#undef SEP
}

/* The JSON line of an item, written directly: the export streams 100,000s
 * of rows a second, and building each as a jansson object cost more than
 * reading it. Same members, same order and values as item_json(). */

#define LIT(b, s) buf_put((b), (s), sizeof(s) - 1)

/* Bytes that a JSON string cannot hold as they are. */
static bool json_escape_needed(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

static void jl_escaped(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!json_escape_needed(c))
            continue;
        buf_put(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            LIT(b, "\\\"");
            break;
        case '\\':
            LIT(b, "\\\\");
            break;
        case '\n':
            LIT(b, "\\n");
            break;
        case '\r':
            LIT(b, "\\r");
            break;
        case '\t':
            LIT(b, "\\t");
            break;
        case '\b':
            LIT(b, "\\b");
            break;
        case '\f':
            LIT(b, "\\f");
            break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_put(b, esc, 6);
            break;
        }
        }
    }
    buf_put(b, s + run, n - run);
}

/* A string from the catalog: escaped, and repaired if it is not UTF-8 (as
 * web_json_str() does). One pass when it is plain ASCII with nothing to escape. */
static void jl_str(struct buf *b, const char *s)
{
    if (!s) {
        LIT(b, "null");
        return;
    }
    unsigned char any = 0, special = 0;
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        any |= c;
        special |= json_escape_needed(c);
    }
    LIT(b, "\"");
    if (any & 0x80 && !utf8_valid(s, n)) {
        size_t m;
        _cleanup_free_ char *clean = utf8_sanitize(s, n, &m);
        jl_escaped(b, clean, m);
    } else if (special) {
        jl_escaped(b, s, n);
    } else {
        buf_put(b, s, n);
    }
    LIT(b, "\"");
}

/* A string made by envhub that needs no escaping (hex, a status name). */
static void jl_plain(struct buf *b, const char *s, size_t n)
{
    LIT(b, "\"");
    buf_put(b, s, n);
    LIT(b, "\"");
}

static void jl_int(struct buf *b, int64_t v, bool null)
{
    if (null)
        LIT(b, "null");
    else
        buf_put_int(b, v);
}

static void jl_time(struct buf *b, struct iso_cache *c, int64_t ms)
{
    char iso[TIME_ISO_MAX];
    if (ms <= 0) {
        LIT(b, "null");
        return;
    }
    iso_time(c, ms, iso);
    jl_plain(b, iso, strlen(iso));
}

static void jl_bool(struct buf *b, bool v)
{
    if (v)
        LIT(b, "true");
    else
        LIT(b, "false");
}

static void jsonl_row(struct buf *b, struct iso_cache *c, const struct history_item *it)
{
    const struct execution_record *r = &it->rec;
    const char *status = exec_status_name(r->status);

    LIT(b, "{\"id\":");
    jl_str(b, r->id);
    LIT(b, ",\"environment\":");
    jl_str(b, r->environment);
    LIT(b, ",\"environment_version\":");
    jl_int(b, r->environment_version, false);
    LIT(b, ",\"image\":");
    jl_str(b, r->image);
    LIT(b, ",\"image_id\":");
    jl_str(b, r->image_id);
    LIT(b, ",\"principal\":");
    jl_str(b, r->principal);
    LIT(b, ",\"client_addr\":");
    jl_str(b, r->client_addr);
    LIT(b, ",\"code_sha256\":");
    jl_str(b, r->code_sha256); /* as stored: not necessarily hex */
    LIT(b, ",\"status\":");
    jl_plain(b, status, strlen(status));
    LIT(b, ",\"exit_code\":");
    jl_int(b, r->exit_code, r->exit_code == -1);
    LIT(b, ",\"error\":");
    jl_str(b, r->error);
    LIT(b, ",\"timeout_s\":");
    jl_int(b, r->timeout_s, false);
    LIT(b, ",\"queued_at\":");
    jl_time(b, c, r->queued_at);
    LIT(b, ",\"started_at\":");
    jl_time(b, c, r->started_at);
    LIT(b, ",\"finished_at\":");
    jl_time(b, c, r->finished_at);
    LIT(b, ",\"recorded_at\":");
    jl_time(b, c, it->recorded_at);
    LIT(b, ",\"duration_ms\":");
    jl_int(b, r->duration_ms, r->duration_ms < 0);
    LIT(b, ",\"stdout_truncated\":");
    jl_bool(b, r->stdout_truncated);
    LIT(b, ",\"stderr_truncated\":");
    jl_bool(b, r->stderr_truncated);
    LIT(b, ",\"chain_seq\":");
    jl_int(b, it->chain_seq, it->chain_seq == 0);
    LIT(b, ",\"chain_hash\":");
    jl_str(b, it->chain_hash[0] ? it->chain_hash : NULL);
    LIT(b, ",\"session_id\":");
    jl_str(b, r->session_id);
    LIT(b, ",\"limits\":");
    if (limits_valid(r->limits))
        buf_put(b, r->limits, strlen(r->limits)); /* compact JSON, as envhub stored it */
    else
        LIT(b, "null");
    LIT(b, ",\"warning\":");
    jl_str(b, r->warning);
    LIT(b, ",\"node\":");
    jl_str(b, r->node);
    LIT(b, "}\n");
}

static bool send_chunk(struct web_request *rq, struct buf *b)
{
    bool ok = b->len == 0 || mg_send_chunk(rq->conn, b->data, (unsigned)b->len) > 0;
    buf_reset(b);
    return ok;
}

/* The export reads on a thread of its own while the handler's thread
 * writes: the two halves take about as long each, and a 2-core machine does
 * both at once. At most EXPORT_QUEUE batches wait between them, so memory
 * stays flat whatever the size. */
#define EXPORT_QUEUE 3

struct export_batch {
    struct history_item *items;
    size_t n;
};

struct export_pipe {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct history_export *x;
    int64_t left; /* rows still wanted */
    struct export_batch queue[EXPORT_QUEUE];
    size_t head, count;
    bool done;     /* the reader has put its last batch */
    bool failed;   /* ... after an error: err says which */
    bool stop;     /* the writer gave up (client gone) */
    bool threaded; /* false: the writer reads itself */
    struct err err;
};

static void *export_reader(void *arg)
{
    struct export_pipe *p = arg;
    struct err err = ERR_INIT;

    for (;;) {
        struct history_item *items = NULL;
        size_t n = 0;
        size_t want = p->left < HISTORY_EXPORT_BATCH ? (size_t)p->left : HISTORY_EXPORT_BATCH;
        int r = want ? catalog_history_export_next(p->x, want, &items, &n, &err) : 0;

        pthread_mutex_lock(&p->lock);
        while (p->count == EXPORT_QUEUE && !p->stop)
            pthread_cond_wait(&p->changed, &p->lock);
        if (p->stop || r < 0 || n == 0) {
            if (r < 0) {
                p->failed = true;
                err_copy(&p->err, &err);
            }
            p->done = true;
            pthread_cond_broadcast(&p->changed);
            pthread_mutex_unlock(&p->lock);
            history_items_free(items, n);
            return NULL;
        }
        p->queue[(p->head + p->count) % EXPORT_QUEUE] = (struct export_batch){items, n};
        p->count++;
        p->left -= (int64_t)n;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
    }
}

/* The next batch, or false at the end. */
static bool export_take(struct export_pipe *p, struct export_batch *ret)
{
    if (!p->threaded) {
        size_t want = p->left < HISTORY_EXPORT_BATCH ? (size_t)p->left : HISTORY_EXPORT_BATCH;
        ret->items = NULL;
        ret->n = 0;
        if (want == 0)
            return false;
        if (catalog_history_export_next(p->x, want, &ret->items, &ret->n, &p->err) < 0) {
            p->failed = true;
            return false;
        }
        p->left -= (int64_t)ret->n;
        return ret->n > 0;
    }
    pthread_mutex_lock(&p->lock);
    while (p->count == 0 && !p->done)
        pthread_cond_wait(&p->changed, &p->lock);
    bool got = p->count > 0;
    if (got) {
        *ret = p->queue[p->head];
        p->head = (p->head + 1) % EXPORT_QUEUE;
        p->count--;
        pthread_cond_broadcast(&p->changed);
    }
    pthread_mutex_unlock(&p->lock);
    return got;
}

void api_executions_export(struct web_request *rq)
{
    struct history_query q;
    struct export_pipe p = {.err = ERR_INIT};
    struct err err = ERR_INIT;
    _cleanup_(buf_release) struct buf out = BUF_INIT(BUF_UNLIMITED);
    struct iso_cache days = {.day = INT64_MIN};
    pthread_t reader;

    if (history_query_parse(rq, QP_FILTERS | QP_FORMAT, &q, &err) < 0 ||
        catalog_history_export_open(rq->deps->catalog, &q.f, &p.x, &err) < 0) {
        history_query_release(&q);
        web_reply_err(rq, &err);
        return;
    }
    bool csv = q.format == EXPORT_CSV;
    char headers[128];
    snprintf(headers, sizeof(headers),
             "Content-Disposition: attachment; filename=\"executions.%s\"\r\n"
             "Transfer-Encoding: chunked\r\n",
             csv ? "csv" : "jsonl");
    web_reply_head(rq, 200, csv ? "text/csv; charset=utf-8" : "application/x-ndjson", WEB_STREAM,
                   headers);
    if (strcmp(rq->method, "HEAD") == 0) {
        catalog_history_export_close(p.x);
        history_query_release(&q);
        return;
    }
    if (csv) {
        for (size_t i = 0; i < ARRAY_SIZE(csv_columns); i++) {
            if (i)
                buf_put(&out, ",", 1);
            buf_put(&out, csv_columns[i], strlen(csv_columns[i]));
        }
        buf_put(&out, "\r\n", 2);
    }
    p.left = q.limit ? q.limit : INT64_MAX;
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.changed, NULL);
    p.threaded = pthread_create(&reader, NULL, export_reader, &p) == 0;

    bool ok = true;
    int64_t rows = 0;
    struct export_batch batch;
    while (ok && export_take(&p, &batch)) {
        for (size_t i = 0; i < batch.n && ok; i++) {
            if (csv)
                csv_row(&out, &days, &batch.items[i]);
            else
                jsonl_row(&out, &days, &batch.items[i]);
            if (out.len >= HISTORY_CHUNK)
                ok = send_chunk(rq, &out);
        }
        rows += (int64_t)batch.n;
        history_items_free(batch.items, batch.n);
        if (!ok && p.threaded) { /* the client went away: stop the reader */
            pthread_mutex_lock(&p.lock);
            p.stop = true;
            pthread_cond_broadcast(&p.changed);
            pthread_mutex_unlock(&p.lock);
        }
    }
    if (p.threaded)
        pthread_join(reader, NULL);
    if (p.failed) {
        /* the status is sent: cut the stream short so the client sees it fail */
        log_error("web: request_id=%s export cut short after %lld rows: %s", rq->request_id,
                  (long long)rows, p.err.msg);
        ok = false;
    }
    if (ok && send_chunk(rq, &out))
        mg_write(rq->conn, "0\r\n\r\n", 5);
    pthread_cond_destroy(&p.changed);
    pthread_mutex_destroy(&p.lock);
    catalog_history_export_close(p.x);
    history_query_release(&q);
}

/* ---- GET /executions/stats ---- */

static json_t *stat_json(const struct history_stat *s, bool with_key)
{
    json_t *o = json_object();
    if (with_key)
        json_object_set_new(o, "key", web_json_str(s->key));
    json_object_set_new(o, "count", json_integer(s->count));
    json_object_set_new(o, "timed", json_integer(s->timed));
    json_object_set_new(o, "total_duration_ms", json_integer(s->total_ms));
    json_object_set_new(o, "p50_duration_ms",
                        s->p50_ms < 0 ? json_null() : json_integer(s->p50_ms));
    json_object_set_new(o, "p95_duration_ms",
                        s->p95_ms < 0 ? json_null() : json_integer(s->p95_ms));
    return o;
}

void api_executions_stats(struct web_request *rq)
{
    static const char *const group_names[] = {"environment", "status", "day"};
    struct history_query q;
    struct history_stat *stats = NULL, all = {0};
    size_t n = 0;
    struct err err = ERR_INIT;

    if (history_query_parse(rq, QP_FILTERS | QP_GROUP, &q, &err) < 0 ||
        catalog_history_stats(rq->deps->catalog, &q.f, q.group, &stats, &n, &all, &err) < 0) {
        history_query_release(&q);
        web_reply_err(rq, &err);
        return;
    }
    json_t *groups = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(groups, stat_json(&stats[i], true));
    history_stats_free(stats, n);
    free(all.key);
    const char *group = group_names[q.group];
    history_query_release(&q);
    web_reply_json(rq, 200,
                   json_pack("{s:s, s:o, s:o}", "group", group, "groups", groups, "total",
                             stat_json(&all, false)));
}

/* ---- GET /audit/verify ---- */

json_t *web_verify_json(const struct history_verify *v)
{
    json_t *doc = json_object();
    json_object_set_new(doc, "ok", json_boolean(v->ok));
    json_object_set_new(doc, "count", json_integer(v->count));
    json_object_set_new(doc, "head", json_string(v->head_hash));
    json_object_set_new(doc, "head_seq", json_integer(v->head_seq));
    if (!v->ok) {
        json_object_set_new(doc, "first_bad_id",
                            v->first_bad_id[0] ? web_json_str(v->first_bad_id) : json_null());
        json_object_set_new(doc, "first_bad_seq",
                            v->first_bad_seq ? json_integer(v->first_bad_seq) : json_null());
        json_object_set_new(doc, "reason", web_json_str(v->reason));
    }
    if (v->has_checkpoint)
        json_object_set_new(
            doc, "checkpoint",
            json_pack("{s:I, s:s, s:o, s:o, s:I}", "chain_seq", (json_int_t)v->checkpoint_seq,
                      "chain_hash", v->checkpoint_hash, "before",
                      web_json_time(v->checkpoint_before), "created_at",
                      web_json_time(v->checkpoint_at), "pruned", (json_int_t)v->checkpoint_pruned));
    else
        json_object_set_new(doc, "checkpoint", json_null());
    return doc;
}

char *web_verify_text(const struct history_verify *v)
{
    json_auto_t *doc = web_verify_json(v);
    return json_dumps(doc, JSON_INDENT(2));
}

void api_audit_verify(struct web_request *rq)
{
    struct history_verify v;
    struct err err = ERR_INIT;
    struct history_query q;

    if (history_query_parse(rq, 0, &q, &err) < 0) {
        history_query_release(&q);
        web_reply_err(rq, &err);
        return;
    }
    history_query_release(&q);
    int64_t t0 = time_mono_ms();
    if (catalog_history_verify(rq->deps->catalog, &v, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    json_t *doc = web_verify_json(&v);
    json_object_set_new(doc, "ms", json_integer(time_mono_ms() - t0));
    if (!v.ok)
        log_warn("web: request_id=%s audit chain broken at '%s' (link %lld): %s", rq->request_id,
                 v.first_bad_id, (long long)v.first_bad_seq, v.reason);
    web_reply_json(rq, 200, doc);
}
