"""The OpenAPI document, the documentation pages and the UI's static files.

The document must describe every route envhub serves: the routes are read from
web/server.c's routes[] table, so a route added without its description fails here.
(Its validity against the OpenAPI 3.0 schema is checked by tests/e2e/openapi.test.mjs.)"""

import json
import os
import re

import requests

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def server_routes():
    """{(METHOD, normalised path)} from the routes[] table of web/server.c."""
    with open(os.path.join(ROOT, "web", "server.c")) as f:
        text = f.read()
    m = re.search(r"static const struct route routes\[\] = \{(.*?)\n\};", text, re.S)
    assert m, "routes[] not found in web/server.c"
    rows = re.findall(r'\{\s*"([A-Z]+)",\s*"([^"]+)",\s*PERM_\w+,\s*\w+\s*(?:,\s*\w+\s*)?\}', m.group(1))
    assert len(rows) >= 20, f"only {len(rows)} routes parsed from web/server.c"
    return {(method, normalise(path)) for method, path in rows}


def normalise(path):
    """'/environments/{}' and '/environments/{name}' -> '/environments/{}'; '{*}' too."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def document_routes(doc):
    out = set()
    for path, item in doc["paths"].items():
        for method in item:
            if method in METHODS:
                out.add((method.upper(), normalise(path)))
    return out


def load_document():
    with open(os.path.join(ROOT, "web", "openapi.json")) as f:
        return json.load(f)


def test_every_route_is_described():
    missing = server_routes() - document_routes(load_document())
    assert not missing, ("routes in web/server.c that web/openapi.json does not describe: "
                         + ", ".join(f"{m} {p}" for m, p in sorted(missing)))


def test_the_document_describes_no_route_that_does_not_exist():
    extra = document_routes(load_document()) - server_routes()
    assert not extra, ("web/openapi.json describes routes web/server.c does not serve: "
                       + ", ".join(f"{m} {p}" for m, p in sorted(extra)))


def test_public_routes_say_so_and_others_need_a_key():
    """security: [] exactly on the PERM_PUBLIC routes; every operation has its error answers."""
    with open(os.path.join(ROOT, "web", "server.c")) as f:
        text = f.read()
    public = {(m, normalise(p)) for m, p in re.findall(r'\{\s*"([A-Z]+)",\s*"([^"]+)",\s*PERM_PUBLIC,', text)}
    doc = load_document()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            key = (method.upper(), normalise(path))
            assert "security" in op, f"{key}: no security"
            if key in public:
                assert op["security"] == [], f"{key} is public in web/server.c: security must be []"
            else:
                assert op["security"] == [{"bearerAuth": []}], f"{key} needs a key: security must be bearer"
                assert "401" in op["responses"] and "403" in op["responses"], f"{key}: 401/403 not described"


def test_served_document_is_the_file(envhub):
    r = requests.get(f"{envhub.url}/openapi.json", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == load_document()
    assert r.json()["openapi"] == "3.0.3"


def test_docs_pages_are_served_offline(envhub):
    for path, bundle in (("/docs", "/ui/swagger-ui-bundle.js"), ("/redoc", "/ui/redoc.standalone.js")):
        r = requests.get(envhub.url + path, timeout=10)
        assert r.status_code == 200, path
        assert r.headers["Content-Type"].startswith("text/html")
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert bundle in r.text
        # nothing the page loads comes from elsewhere
        assert not re.search(r'(src|href)="(https?:)?//', r.text), r.text
        b = requests.get(envhub.url + bundle, timeout=10)
        assert b.status_code == 200 and len(b.content) > 100000, bundle
        assert b.headers["Content-Type"].startswith("text/javascript")
    redoc = requests.get(f"{envhub.url}/ui/redoc.standalone.js", timeout=10).text
    assert "cdn.redoc.ly" not in redoc


def test_ui_index_and_assets(envhub):
    r = requests.get(envhub.url + "/", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["Cache-Control"] == "no-cache"
    assert "<script>" not in r.text  # no inline script: the CSP allows none
    for src in re.findall(r'(?:src|href)="(/ui/[^"]+)"', r.text):
        a = requests.get(envhub.url + src, timeout=10)
        assert a.status_code == 200, src
    css = requests.get(envhub.url + "/ui/app.css", timeout=10)
    assert css.headers["Content-Type"] == "text/css; charset=utf-8"
    js = requests.get(envhub.url + "/ui/app.js", timeout=10)
    assert js.headers["Content-Type"] == "text/javascript; charset=utf-8"
    # revalidation by ETag
    again = requests.get(envhub.url + "/ui/app.js", headers={"If-None-Match": js.headers["ETag"]}, timeout=10)
    assert again.status_code == 304 and again.content == b""
    head = requests.head(envhub.url + "/ui/app.js", timeout=10)
    assert head.status_code == 200 and head.content == b""


def test_unknown_asset_is_404(envhub):
    for path in ("/ui/nope.js", "/ui/", "/ui/vendor", "/ui/%2fetc%2fpasswd", "/ui/app.js/x"):
        r = requests.get(envhub.url + path, timeout=10)
        assert r.status_code == 404, (path, r.status_code)
        assert "detail" in r.json()


def test_templates_are_the_example_scripts(envhub):
    r = requests.get(f"{envhub.url}/templates", timeout=10)
    assert r.status_code == 200, r.text
    doc = r.json()
    names = [t["name"] for t in doc["templates"]]
    expected = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "environments"))
                      if f.endswith(".sh") and f != "bootstrap-base.sh")
    assert names == expected and doc["total"] == len(expected)
    ds = next(t for t in doc["templates"] if t["name"] == "data-science")
    with open(os.path.join(ROOT, "environments", "data-science.sh")) as f:
        assert ds["script"] == f.read()
    assert ds["description"].startswith("numpy, pandas") and "data-science:" not in ds["description"]
