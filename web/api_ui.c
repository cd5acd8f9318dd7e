/* web/api_ui.c - the browser UI, the API documentation and the setup-script
 * templates, all compiled into the binary (core/embed.sh; the Makefile's
 * `ui` step fetches Swagger UI and ReDoc from npm at build time), so a
 * running envhub needs nothing from the network to serve them.
 *
 * Assets hold no data and are public. Every answer names its type, is
 * revalidated by ETag (Cache-Control: no-cache) and carries a
 * Content-Security-Policy that allows nothing but envhub itself; the UI keeps
 * all its script in files, so it needs no inline script at all. */
#include <civetweb.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/embed.h"
#include "core/xalloc.h"
#include "web/web_internal.h"

#include "core/banned.h"

#define UI_TEMPLATE_DESCRIPTION_MAX 1024

/* The UI: no inline script or style; images may be data: or blob: URLs (job
 * outputs are shown from memory). */
#define CSP_APP                                                                                    \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "        \
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "                    \
    "form-action 'self'; frame-ancestors 'none'"
/* Swagger UI and ReDoc set inline styles (ReDoc injects <style> elements)
 * and ReDoc searches in a worker made from a blob: URL. */
#define CSP_DOCS                                                                                   \
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "                    \
    "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; font-src 'self' data:; "   \
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

static const struct {
    const char *ext;
    const char *type;
} content_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static const char *content_type_of(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(content_types) / sizeof(content_types[0]); i++) {
        size_t e = strlen(content_types[i].ext);
        if (n > e && strcmp(name + n - e, content_types[i].ext) == 0)
            return content_types[i].type;
    }
    return "application/octet-stream";
}

/* The embedded file whose base name is @name, or NULL. */
static const struct embedded_file *ui_find(const char *name)
{
    for (const struct embedded_file *f = ui_embedded; f->path; f++)
        if (strcmp(base_name(f->path), name) == 0)
            return f;
    return NULL;
}

/* FNV-1a over the content: the ETag changes with every build that changes
 * the file, and costs a few milliseconds for the largest bundle. */
static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void send_file(struct web_request *rq, const struct embedded_file *f, const char *csp)
{
    char etag[24];
    snprintf(etag, sizeof(etag), "\"%016llx\"", (unsigned long long)fnv1a(f->data, f->len));
    const char *inm = mg_get_header(rq->conn, "If-None-Match");
    bool fresh = inm && strstr(inm, etag) != NULL;

    char headers[1024];
    snprintf(headers, sizeof(headers),
             "Cache-Control: no-cache\r\nETag: %s\r\nContent-Security-Policy: %s\r\n"
             "Referrer-Policy: no-referrer\r\n",
             etag, csp);
    const char *type = content_type_of(base_name(f->path));
    if (fresh) {
        web_reply_head(rq, 304, type, WEB_NO_BODY, headers);
        return;
    }
    web_reply_head(rq, 200, type, (int64_t)f->len, headers);
    if (strcmp(rq->method, "HEAD") != 0)
        mg_write(rq->conn, f->data, f->len);
}

static void send_named(struct web_request *rq, const char *name, const char *csp)
{
    const struct embedded_file *f = ui_find(name);
    if (!f) {
        /* the Makefile embeds every file the pages name */
        web_reply_detail(rq, 500, "the UI asset '%s' is missing from this build", name);
        return;
    }
    send_file(rq, f, csp);
}

void api_ui_index(struct web_request *rq)
{
    send_named(rq, "index.html", CSP_APP);
}

void api_ui_asset(struct web_request *rq)
{
    const struct embedded_file *f = ui_find(rq->params[0]);
    if (!f) {
        web_reply_detail(rq, 404, "not found: %s", rq->path);
        return;
    }
    send_file(rq, f, CSP_APP);
}

void api_ui_docs(struct web_request *rq)
{
    send_named(rq, "docs.html", CSP_DOCS);
}

void api_ui_redoc(struct web_request *rq)
{
    send_named(rq, "redoc.html", CSP_DOCS);
}

void api_openapi(struct web_request *rq)
{
    send_named(rq, "openapi.json", CSP_APP);
}

/* A template's description: its first run of comment lines after the
 * shebang, joined with spaces, without a leading "NAME:". */
static char *template_description(const char *name, const char *script)
{
    _cleanup_(buf_release) struct buf out = BUF_INIT(UI_TEMPLATE_DESCRIPTION_MAX);
    const char *line = script;

    if (strncmp(line, "#!", 2) == 0)
        line += strcspn(line, "\n") + (line[strcspn(line, "\n")] ? 1 : 0);
    while (*line == '#') {
        size_t len = strcspn(line, "\n");
        const char *text = line + 1;
        size_t tlen = len - 1;
        while (tlen && *text == ' ') {
            text++;
            tlen--;
        }
        if (out.len == 0 && strncmp(text, name, strlen(name)) == 0 && text[strlen(name)] == ':') {
            text += strlen(name) + 1;
            tlen -= strlen(name) + 1;
            while (tlen && *text == ' ') {
                text++;
                tlen--;
            }
        }
        if (tlen && ((out.len && buf_append(&out, " ", 1) < 0) || buf_append(&out, text, tlen) < 0))
            break; /* long enough: the limit cuts it */
        line += len + (line[len] ? 1 : 0);
    }
    return buf_detach(&out, NULL);
}

void api_templates(struct web_request *rq)
{
    json_t *list = json_array();
    size_t n = 0;

    for (const struct embedded_file *f = templates_embedded; f->path; f++, n++) {
        const char *file = base_name(f->path);
        size_t len = strlen(file);
        _cleanup_free_ char *name = xstrndup(file, len > 3 ? len - 3 : len); /* no ".sh" */
        _cleanup_free_ char *desc = template_description(name, (const char *)f->data);
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s%}", "name", name, "file", file,
                                              "description", desc, "script", (const char *)f->data,
                                              f->len));
    }
    web_reply_json(rq, 200, json_pack("{s:o, s:I}", "templates", list, "total", (json_int_t)n));
}
