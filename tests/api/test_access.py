"""Access control: API keys with roles (401 without a valid key, 403 without the right),
revocation at once, open mode only on loopback, attribution of executions and changes,
per-key quotas (429 + Retry-After), request ids, and secrets kept out of the log and the
catalog.

The servers here listen on 127.0.0.1 only; the refusal test starts one on 0.0.0.0 that
must exit before serving (it is killed at once when it does not)."""

import json
import os
import re
import secrets as pysecrets
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

import helpers
from helpers import bearer, catalog_row, count_rows, create_key, key_cli, revoke_key, sha256_hex, wait_log_line

ROLES = ("admin", "curator", "runner", "auditor")
ALLOWED = {
    "PUBLIC": set(ROLES),
    "RUN": {"admin", "curator", "runner"},
    "ENV_READ": set(ROLES),
    "ENV_WRITE": {"admin", "curator"},
    "KEYS": {"admin"},
    "AUDIT": {"admin", "auditor"},
    "HISTORY": set(ROLES),  # runners and curators see their own executions only
}
# callers that are not a valid key: each must get 401 everywhere but /health
NOT_KEYS = ("no_key", "wrong_key", "wrong_secret", "malformed_key", "revoked_key")
CALLERS = ROLES + NOT_KEYS

NO_ENV = "acl-no-such-env"  # never created: environment calls that are allowed answer 404
TRIVIAL_SCRIPT = "#!/bin/bash\n# envhub access tests: nothing to install\ntrue\n"


def random_secret(key_id=None):
    """A well-formed key that the server never issued (with `key_id`: a known key's id and a
    wrong secret part)."""
    return f"ehk_{key_id or pysecrets.token_hex(6)}_{pysecrets.token_hex(24)}"


WRONG_KEY = random_secret()

# (id, method, path, JSON body or None, permission, statuses an allowed caller may get
#  (None: any 2xx), the feature it needs (None: always there)); every route of web/server.c's
# table, each with a request that is answered at once after the access check (an invalid
# body, an environment, session or execution that does not exist)
ENDPOINTS = [
    ("execute", "POST", "/execute", {"code": "print(1)"}, "RUN", {200}, None),
    ("execute_with_environment", "POST", "/execute-with-environment",
     {"code": "print(1)", "environment": NO_ENV}, "RUN", {404}, None),
    ("environments_list", "GET", "/environments", None, "ENV_READ", {200}, None),
    ("environment_get", "GET", f"/environments/{NO_ENV}", None, "ENV_READ", {404}, None),
    ("environment_builds", "GET", f"/environments/{NO_ENV}/builds", None, "ENV_READ", {404}, None),
    ("environment_build", "GET", f"/environments/{NO_ENV}/builds/1", None, "ENV_READ", {404}, None),
    ("environment_build_log", "GET", f"/environments/{NO_ENV}/builds/1/log", None, "ENV_READ", {404}, None),
    ("environment_logs", "GET", f"/environments/{NO_ENV}/logs", None, "ENV_READ", {404}, None),
    ("environment_packages", "GET", f"/environments/{NO_ENV}/packages", None, "ENV_READ", {404}, None),
    ("environment_diff", "GET", f"/environments/{NO_ENV}/diff", None, "ENV_READ", {404}, None),
    ("packages", "GET", "/packages?name=acl-no-such-package", None, "ENV_READ", {200}, None),
    ("drift", "GET", f"/drift?environment={NO_ENV}", None, "ENV_READ", {404}, None),
    ("environment_create", "POST", "/environments",
     {"name": "Not A Valid Name!", "setup_script": TRIVIAL_SCRIPT}, "ENV_WRITE", {400}, None),
    ("environment_delete", "DELETE", f"/environments/{NO_ENV}", None, "ENV_WRITE", {404}, None),
    ("environment_rebuild", "POST", f"/environments/{NO_ENV}/rebuild", {}, "ENV_WRITE", {404}, None),
    ("environment_lifecycle", "POST", f"/environments/{NO_ENV}/lifecycle", {}, "ENV_WRITE", {422}, None),
    ("keys_create", "POST", "/keys", {"name": "acl-matrix-nobody", "role": "superuser"}, "KEYS", {400}, None),
    ("keys_list", "GET", "/keys", None, "KEYS", {200}, None),
    ("keys_revoke", "DELETE", "/keys/acl-no-such-key", None, "KEYS", {404}, None),
    ("events", "GET", "/events", None, "AUDIT", {200}, None),
    ("metrics", "GET", "/metrics", None, "AUDIT", {200}, None),
    ("health", "GET", "/health", None, "PUBLIC", {200}, None),
    ("ui_index", "GET", "/", None, "PUBLIC", {200}, None),
    ("ui_asset", "GET", "/ui/app.js", None, "PUBLIC", {200}, None),
    ("redoc", "GET", "/redoc", None, "PUBLIC", {200}, None),
    ("me", "GET", "/me", None, "ENV_READ", {200}, "/me"),
    ("templates", "GET", "/templates", None, "ENV_READ", {200}, "/templates"),
    ("openapi", "GET", "/openapi.json", None, "PUBLIC", {200}, "/openapi.json"),
    ("docs", "GET", "/docs", None, "PUBLIC", {200}, "/docs"),
    ("sessions_list", "GET", "/sessions", None, "RUN", {200}, "sessions"),
    ("session_open", "POST", "/sessions", {"idle_timeout": "soon"}, "RUN", {422}, "sessions"),
    ("session_get", "GET", "/sessions/ses_acl_no_such_session", None, "RUN", {404}, "sessions"),
    ("session_execute", "POST", "/sessions/ses_acl_no_such_session/execute", {"code": "print(1)"}, "RUN",
     {404}, "sessions"),
    ("session_close", "DELETE", "/sessions/ses_acl_no_such_session", None, "RUN", {404}, "sessions"),
    ("session_put_file", "PUT", "/sessions/ses_acl_no_such_session/files/acl/x.txt", "not stored", "RUN",
     {404}, "sessions"),
    ("session_get_file", "GET", "/sessions/ses_acl_no_such_session/files/acl/x.txt", None, "RUN",
     {404}, "sessions"),
    ("executions", "GET", "/executions", None, "HISTORY", None, "history"),
    ("execution_get", "GET", "/executions/ex_000000000000000000000000", None, "HISTORY", {404}, "history"),
    ("executions_export", "GET", "/executions/export", None, "AUDIT", None, "history"),
    ("executions_stats", "GET", "/executions/stats", None, "AUDIT", None, "history"),
    ("audit_verify", "GET", "/audit/verify", None, "AUDIT", None, "history"),
    ("submit", "POST", "/executions", {"code": ""}, "RUN", {400}, "async"),
    ("submit_batch", "POST", "/executions/batch", {"jobs": []}, "RUN", {422}, "async"),
    ("cancel", "POST", "/executions/ex_000000000000000000000000/cancel", {}, "RUN", {404}, "async"),
    ("output", "GET", "/executions/ex_000000000000000000000000/output", None, "HISTORY", {404}, "async"),
]


def call(server, method, path, secret=None, body=None, headers=None, timeout=60):
    """One request with `secret` as Bearer key (None: no Authorization header)."""
    h = dict(bearer(secret))
    if headers:
        h.update(headers)
    kw = {"json": body} if body is not None else {}
    return requests.request(method, server.url + path, headers=h, timeout=timeout, **kw)


def detail_of(r):
    try:
        doc = r.json()
    except ValueError:
        return None
    return doc.get("detail") if isinstance(doc, dict) else None


def describe(r):
    return f"{r.request.method} {r.request.path_url} -> {r.status_code} {r.text[:300]!r}"


# ---------------------------------------------------------------- the server with one key per role

@pytest.fixture(scope="module")
def acl(envhub_module_factory, envhub_bin):
    """A server whose catalog has keys admin, curator, runner, runner2, auditor (named after
    their role) and revoked-admin (an admin key revoked before the start). .keys: name ->
    secret; .sent: every secret sent to it, to look for in its log and catalog."""
    keys = {}

    def make_keys(server):
        for role in ROLES:
            keys[role] = create_key(envhub_bin, server.db_path, role, role)
        keys["runner2"] = create_key(envhub_bin, server.db_path, "runner2", "runner")
        keys["revoked-admin"] = create_key(envhub_bin, server.db_path, "revoked-admin", "admin")
        revoke_key(envhub_bin, server.db_path, "revoked-admin")

    server = envhub_module_factory(before_start=make_keys)
    server.keys = keys
    server.issued = dict(keys)  # every secret the catalog holds the hash of
    server.sent = [WRONG_KEY, random_secret(keys["admin"][4:16])]
    return server


def caller_secret(acl, caller):
    """The Authorization value's secret for a caller of the matrix (None: no header)."""
    if caller in ROLES:
        return acl.keys[caller]
    return {
        "no_key": None,
        "wrong_key": WRONG_KEY,
        "wrong_secret": acl.sent[1],  # the admin key's id with another secret part
        "malformed_key": "ehk_not-a-key",
        "revoked_key": acl.keys["revoked-admin"],
    }[caller]


# optional routes (added while these tests were written) -> the GET that tells whether they exist
FEATURE_PROBES = {"history": "/executions", "sessions": "/sessions", "/me": "/me", "/templates": "/templates",
                  "/openapi.json": "/openapi.json", "/docs": "/docs"}


@pytest.fixture(scope="module")
def features(acl):
    """Which optional routes this build has: route matching comes before authentication,
    so an unknown route answers 404 even to the admin."""
    admin = acl.keys["admin"]
    found = {f: call(acl, "GET", path, admin).status_code != 404 for f, path in FEATURE_PROBES.items()}
    # asynchronous submissions: POST /executions (an empty code runs nothing)
    found["async"] = call(acl, "POST", "/executions", admin, {"code": ""}).status_code not in (404, 405)
    return found


def test_server_with_keys_requires_them_and_does_not_log_open_mode(acl):
    assert wait_log_line(acl, "active API keys", within=1) is not None, acl.log_tail()
    assert "open mode" not in acl.log_text(), acl.log_tail()
    r = call(acl, "GET", "/environments")
    assert r.status_code == 401, describe(r)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_matrix_every_caller_gets_the_documented_status(acl, features, endpoint):
    name, method, path, body, perm, ok_statuses, feature = endpoint
    if feature and not features[feature]:
        probe = "POST /executions" if feature == "async" else f"GET {FEATURE_PROBES[feature]}"
        pytest.skip(f"{feature} is not in this build: {probe} answers 404/405 to the admin")
    if feature == "history" and ok_statuses is None:
        probe = call(acl, method, path, acl.keys["admin"], body)
        if probe.status_code in (404, 405):
            pytest.skip(f"{method} {path} answers {probe.status_code} to the admin: not in this build as such")
    rows_before = count_rows(acl.db_path)
    ran = 0
    wrong = []
    request_ids = []
    for caller in CALLERS:
        r = call(acl, method, path, caller_secret(acl, caller), body)
        rid = r.headers.get("X-Request-Id")
        if not rid:
            wrong.append(f"{caller}: no X-Request-Id: {describe(r)}")
        request_ids.append(rid)
        if perm == "PUBLIC":
            expected = "allowed"
        elif caller in ROLES:
            expected = "allowed" if caller in ALLOWED[perm] else 403
        else:
            expected = 401
        if expected == "allowed":
            fine = (r.status_code in ok_statuses) if ok_statuses else (200 <= r.status_code < 300)
            if not fine:
                wrong.append(f"{caller}: expected {sorted(ok_statuses) if ok_statuses else '2xx'}: {describe(r)}")
            if name == "execute" and r.status_code == 200:
                ran += 1
            continue
        if r.status_code != expected:
            wrong.append(f"{caller}: expected {expected}: {describe(r)}")
            continue
        detail = detail_of(r)
        if not isinstance(detail, str) or not detail:
            wrong.append(f"{caller}: no {{\"detail\"}} in the {expected}: {describe(r)}")
        if expected == 401 and not r.headers.get("WWW-Authenticate", "").startswith("Bearer"):
            wrong.append(f"{caller}: 401 without WWW-Authenticate: Bearer (headers {dict(r.headers)})")
        if expected == 403 and caller not in (detail or ""):
            wrong.append(f"{caller}: the 403 detail does not name the role: {detail!r}")
    assert len(set(request_ids)) == len(request_ids), f"X-Request-Id repeated: {request_ids}"
    added = count_rows(acl.db_path) - rows_before
    if method == "POST" and path.startswith("/execute"):
        assert added == ran, f"{added} execution rows for {ran} allowed runs: a refused caller ran code"
    assert not wrong, f"{method} {path} ({perm}):\n" + "\n".join(wrong)


@pytest.mark.parametrize("value", [
    "Basic {b64}",          # another scheme, carrying the admin key
    "Token {admin}",
    "{admin}",              # no scheme
    "Bearer",
    "Bearer ",
    "Bearer {admin}x",      # one character too many
    "Bearer {admin_short}",  # one too few
    "Bearer {admin_upper}",  # the same hex, upper case: another secret
    "Bearer ehk_{admin_id}",  # the public id alone
], ids=["basic", "token_scheme", "no_scheme", "bearer_alone", "bearer_empty", "key_plus_one",
        "key_minus_one", "key_upper_case", "id_alone"])
def test_malformed_authorization_is_401(acl, value):
    admin = acl.keys["admin"]
    text = value.format(admin=admin, admin_short=admin[:-1], admin_upper=admin[:4] + admin[4:].upper(),
                        admin_id=admin[4:16], b64=helpers.b64(f"admin:{admin}"))
    r = requests.get(acl.url + "/keys", headers={"Authorization": text}, timeout=30)
    assert r.status_code == 401, describe(r)
    assert isinstance(detail_of(r), str), describe(r)
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), dict(r.headers)


def test_bearer_scheme_is_case_insensitive(acl):
    r = requests.get(acl.url + "/keys", headers={"Authorization": f"bearer {acl.keys['admin']}"}, timeout=30)
    assert r.status_code == 200, describe(r)


def test_auditor_cannot_execute_or_create(acl, run_id):
    auditor, admin = acl.keys["auditor"], acl.keys["admin"]
    rows = count_rows(acl.db_path)
    env_name = f"acl-by-auditor-{run_id}"
    attempts = [
        ("POST", "/execute", {"code": "print('auditor ran code')"}),
        ("POST", "/execute-with-environment", {"code": "print(1)", "environment": NO_ENV}),
        ("POST", "/environments", {"name": env_name, "setup_script": TRIVIAL_SCRIPT}),
        ("POST", f"/environments/{NO_ENV}/rebuild", {}),
        ("DELETE", f"/environments/{NO_ENV}", None),
        ("POST", "/keys", {"name": "acl-by-auditor", "role": "admin"}),
        ("GET", "/keys", None),
        ("DELETE", "/keys/runner", None),
    ]
    wrong = []
    for method, path, body in attempts:
        r = call(acl, method, path, auditor, body)
        if r.status_code != 403 or "auditor" not in (detail_of(r) or ""):
            wrong.append(describe(r))
    assert not wrong, "the auditor was not refused with 403:\n" + "\n".join(wrong)
    assert count_rows(acl.db_path) == rows, "the auditor's refused execution wrote a row"
    r = call(acl, "GET", f"/environments/{env_name}", admin)
    assert r.status_code == 404, f"the auditor's refused create left an environment: {describe(r)}"
    names = [k["name"] for k in call(acl, "GET", "/keys", admin).json()["keys"]]
    assert "acl-by-auditor" not in names, names
    r = call(acl, "GET", "/environments", acl.keys["runner"])
    assert r.status_code == 200, f"the runner key stopped working after the auditor's refused revoke: {describe(r)}"
    # what the auditor may do
    for path in ("/environments", "/events"):
        r = call(acl, "GET", path, auditor)
        assert r.status_code == 200, describe(r)


def test_runner_and_curator_cannot_manage_what_is_not_theirs(acl, run_id):
    """With valid bodies (the matrix sends invalid ones): a runner creates no environment,
    neither of them makes or revokes keys or reads the events."""
    runner, curator, admin = acl.keys["runner"], acl.keys["curator"], acl.keys["admin"]
    env_name = f"acl-by-runner-{run_id}"
    checks = [
        (runner, "POST", "/environments", {"name": env_name, "setup_script": TRIVIAL_SCRIPT}),
        (runner, "POST", "/keys", {"name": "acl-by-runner", "role": "admin"}),
        (curator, "POST", "/keys", {"name": "acl-by-curator", "role": "admin"}),
        (runner, "DELETE", "/keys/runner2", None),
        (curator, "DELETE", "/keys/runner2", None),
        (runner, "GET", "/events", None),
        (curator, "GET", "/events", None),
    ]
    wrong = [describe(r) for r in (call(acl, m, p, s, b) for s, m, p, b in checks) if r.status_code != 403]
    assert not wrong, "expected 403:\n" + "\n".join(wrong)
    assert call(acl, "GET", f"/environments/{env_name}", admin).status_code == 404
    names = [k["name"] for k in call(acl, "GET", "/keys", admin).json()["keys"]]
    assert not {"acl-by-runner", "acl-by-curator"} & set(names), names
    assert call(acl, "GET", "/environments", acl.keys["runner2"]).status_code == 200


# ---------------------------------------------------------------- history: own executions only

def test_runner_cannot_read_another_runners_executions_and_auditor_can(acl, features):
    if not features["history"]:
        pytest.skip("no history endpoints in this build (GET /executions answers 404 to the admin)")
    k = acl.keys
    mine = call(acl, "POST", "/execute", k["runner"], {"code": "print('runner one')"})
    theirs = call(acl, "POST", "/execute", k["runner2"], {"code": "print('runner two')"})
    assert mine.status_code == 200 and theirs.status_code == 200, (describe(mine), describe(theirs))
    a, b = mine.json()["id"], theirs.json()["id"]

    wrong = []
    # runner2 may not see runner's execution, by id, in its list or with a principal filter
    r = call(acl, "GET", f"/executions/{a}", k["runner2"])
    if r.status_code not in (403, 404) or "runner one" in r.text:
        wrong.append(f"runner2 reads runner's execution: {describe(r)}")
    for path in ("/executions", "/executions?principal=runner", "/executions?limit=1000"):
        r = call(acl, "GET", path, k["runner2"])
        if r.status_code == 200 and a in r.text:
            wrong.append(f"runner2's listing shows runner's execution {a}: {describe(r)}")
    r = call(acl, "GET", "/executions", k["runner2"])
    if r.status_code != 200 or b not in r.text:
        wrong.append(f"runner2 does not see its own execution {b}: {describe(r)}")
    r = call(acl, "GET", f"/executions/{b}", k["runner2"])
    if r.status_code != 200:
        wrong.append(f"runner2 cannot read its own execution: {describe(r)}")
    if features["async"]:
        r = call(acl, "GET", f"/executions/{a}/output", k["runner2"])
        if r.status_code not in (403, 404) or "runner one" in r.text:
            wrong.append(f"runner2 reads runner's output: {describe(r)}")
        r = call(acl, "POST", f"/executions/{a}/cancel", k["runner2"], {})
        if r.status_code not in (403, 404):
            wrong.append(f"runner2 may cancel runner's execution (or learns it exists): {describe(r)}")
    # a curator sees its own only, too
    r = call(acl, "GET", f"/executions/{a}", k["curator"])
    if r.status_code not in (403, 404):
        wrong.append(f"the curator reads runner's execution: {describe(r)}")
    # the auditor and the admin see everything
    for who in ("auditor", "admin"):
        for x in (a, b):
            r = call(acl, "GET", f"/executions/{x}", k[who])
            if r.status_code != 200 or x not in r.text:
                wrong.append(f"{who} cannot read execution {x}: {describe(r)}")
        r = call(acl, "GET", "/executions", k[who])
        if r.status_code != 200 or a not in r.text or b not in r.text:
            wrong.append(f"{who}'s listing lacks {a} or {b}: {describe(r)}")
    assert not wrong, "\n".join(wrong)


def test_a_runner_cannot_use_another_runners_session(acl, features):
    if not features["sessions"]:
        pytest.skip("no sessions in this build (GET /sessions answers 404 to the admin)")
    k = acl.keys
    r = call(acl, "POST", "/sessions", k["runner"], {})
    assert r.status_code == 201, describe(r)
    sid = r.json()["id"]
    try:
        assert r.json().get("principal") == "runner", r.json()
        wrong = []
        for who in ("runner2", "curator"):
            for method, path, body in (("GET", f"/sessions/{sid}", None),
                                       ("POST", f"/sessions/{sid}/execute", {"code": "print('intruder')"}),
                                       ("GET", f"/sessions/{sid}/files/x.txt", None),
                                       ("DELETE", f"/sessions/{sid}", None)):
                r = call(acl, method, path, k[who], body)
                if r.status_code not in (403, 404):
                    wrong.append(f"{who}: {describe(r)}")
            r = call(acl, "GET", "/sessions", k[who])
            if r.status_code != 200 or sid in r.text:
                wrong.append(f"{who}'s session list: {describe(r)}")
        r = call(acl, "GET", f"/sessions/{sid}", k["auditor"])
        if r.status_code != 403:
            wrong.append(f"auditor: {describe(r)}")
        r = call(acl, "GET", f"/sessions/{sid}", k["admin"])
        if r.status_code != 200:
            wrong.append(f"admin cannot see the session: {describe(r)}")
        assert not wrong, "another caller reached runner's session:\n" + "\n".join(wrong)
        r = call(acl, "POST", f"/sessions/{sid}/execute", k["runner"], {"code": "print('mine')"})
        assert r.status_code == 200 and r.json()["stdout"] == "mine\n", describe(r)
        row = catalog_row(acl.db_path, r.json()["id"])
        assert row and row["principal"] == "runner", row
    finally:
        r = call(acl, "DELETE", f"/sessions/{sid}", k["runner"])
    assert r.status_code == 200, f"the owner cannot close its session: {describe(r)}"


# ---------------------------------------------------------------- keys: API, CLI, revocation

def test_admin_creates_lists_and_validates_keys_over_the_api(acl, envhub_bin):
    admin = acl.keys["admin"]
    r = call(acl, "POST", "/keys", admin, {"name": "acl-api-runner", "role": "runner", "max_per_minute": 7})
    assert r.status_code == 201, describe(r)
    key = r.json()
    assert set(key) == {"name", "id", "role", "created_at", "created_by", "revoked_at", "revoked_by",
                        "max_concurrent", "max_per_minute", "secret"}, key
    secret = key["secret"]
    acl.issued["acl-api-runner"] = secret
    assert re.fullmatch(helpers.SECRET_RE, secret), key
    assert key["id"] == secret[4:16], key
    assert (key["name"], key["role"], key["created_by"]) == ("acl-api-runner", "runner", "admin"), key
    assert key["revoked_at"] is None and key["revoked_by"] is None, key
    assert key["max_concurrent"] is None and key["max_per_minute"] == 7, key
    helpers.parse_iso(key["created_at"])

    # it works at once, with its role's rights only
    assert call(acl, "GET", "/environments", secret).status_code == 200
    assert call(acl, "GET", "/keys", secret).status_code == 403

    # only the hash is stored
    conn = helpers.connect_ro(acl.db_path)
    try:
        row = dict(conn.execute("SELECT * FROM api_keys WHERE name = ?", ("acl-api-runner",)).fetchone())
    finally:
        conn.close()
    assert row["secret_sha256"] == sha256_hex(secret), row
    assert row["id"] == key["id"] and row["max_per_minute"] == 7 and row["max_concurrent"] is None, row

    # the list: every key, no secret
    r = call(acl, "GET", "/keys", admin)
    assert r.status_code == 200, describe(r)
    listing = r.json()
    names = [k["name"] for k in listing["keys"]]
    assert listing["total"] == len(names), listing
    assert {"admin", "curator", "runner", "runner2", "auditor", "revoked-admin", "acl-api-runner"} <= set(names)
    assert all("secret" not in k and "secret_sha256" not in k for k in listing["keys"]), listing
    for s in acl.issued.values():
        assert s not in r.text and s[17:] not in r.text, "GET /keys shows a secret"
    revoked = next(k for k in listing["keys"] if k["name"] == "revoked-admin")
    assert revoked["revoked_at"] and revoked["revoked_by"], revoked

    # validation
    cases = [
        ({"name": "acl-x1", "role": "superuser"}, 400),
        ({"name": "acl-x2", "role": "Admin"}, 400),
        ({"role": "runner"}, 422),
        ({"name": "acl-x3"}, 422),
        ({"name": 5, "role": "runner"}, 422),
        ({"name": "bad name!", "role": "runner"}, 400),
        ({"name": "", "role": "runner"}, 400),
        ({"name": "-starts-with-dash", "role": "runner"}, 400),
        ({"name": "x" * 65, "role": "runner"}, 400),
        ({"name": "acl-x4", "role": "runner", "max_concurrent": -1}, 422),
        ({"name": "acl-x5", "role": "runner", "max_per_minute": "ten"}, 422),
        ({"name": "runner", "role": "runner"}, 409),  # the name exists
        ({"name": "revoked-admin", "role": "admin"}, 409),  # a revoked key's name too
    ]
    wrong = []
    for body, status in cases:
        r = call(acl, "POST", "/keys", admin, body)
        if r.status_code != status or not isinstance(detail_of(r), str):
            wrong.append(f"{json.dumps(body)[:80]}: expected {status}: {describe(r)}")
    assert not wrong, "\n".join(wrong)
    names_after = [k["name"] for k in call(acl, "GET", "/keys", admin).json()["keys"]]
    assert sorted(names_after) == sorted(names), "a refused POST /keys made a key"


def test_revocation_over_the_api_takes_effect_at_once(acl):
    admin = acl.keys["admin"]
    r = call(acl, "POST", "/keys", admin, {"name": "acl-api-revoked", "role": "curator"})
    assert r.status_code == 201, describe(r)
    secret = r.json()["secret"]
    acl.issued["acl-api-revoked"] = secret
    assert call(acl, "GET", "/environments", secret).status_code == 200

    r = call(acl, "DELETE", "/keys/acl-api-revoked", admin)
    assert r.status_code == 200, describe(r)
    assert r.json() == {"message": "key 'acl-api-revoked' revoked"}, r.text
    r = call(acl, "GET", "/environments", secret)  # the very next request
    assert r.status_code == 401, f"a key revoked over the API still works: {describe(r)}"
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    r = call(acl, "POST", "/execute", secret, {"code": "print(1)"})
    assert r.status_code == 401, describe(r)

    r = call(acl, "DELETE", "/keys/acl-api-revoked", admin)
    assert r.status_code == 409 and isinstance(detail_of(r), str), describe(r)
    r = call(acl, "DELETE", "/keys/acl-never-made", admin)
    assert r.status_code == 404 and isinstance(detail_of(r), str), describe(r)
    k = next(k for k in call(acl, "GET", "/keys", admin).json()["keys"] if k["name"] == "acl-api-revoked")
    assert k["revoked_by"] == "admin" and k["revoked_at"], k


def test_key_cli_creation_and_revocation_take_effect_at_once(acl, envhub_bin):
    """`envhub key` works on the catalog of a running server: a new key is accepted and a
    revoked key refused at the next request."""
    p = key_cli(envhub_bin, acl.db_path, "create", "--name", "acl-cli-runner", "--role", "runner")
    assert p.returncode == 0, p.stderr
    secret = p.stdout.strip()
    assert re.fullmatch(helpers.SECRET_RE, secret), f"stdout is not the secret alone: {p.stdout!r}"
    assert secret not in p.stderr and "acl-cli-runner" in p.stderr, p.stderr
    acl.issued["acl-cli-runner"] = secret
    r = call(acl, "POST", "/execute", secret, {"code": "print('cli key')"})
    assert r.status_code == 200 and r.json()["stdout"] == "cli key\n", describe(r)

    listing = key_cli(envhub_bin, acl.db_path, "list")
    assert listing.returncode == 0, listing.stderr
    line = next((l for l in listing.stdout.splitlines() if l.split()[:1] == ["acl-cli-runner"]), None)
    assert line and "runner" in line and "active" in line, listing.stdout
    for s in acl.issued.values():
        assert s not in listing.stdout + listing.stderr and s[17:] not in listing.stdout, "key list shows a secret"

    revoke_key(envhub_bin, acl.db_path, "acl-cli-runner")
    r = call(acl, "POST", "/execute", secret, {"code": "print('revoked')"})
    assert r.status_code == 401, f"a key revoked with the CLI still works: {describe(r)}"
    again = key_cli(envhub_bin, acl.db_path, "revoke", "acl-cli-runner")
    assert again.returncode != 0, "revoking a revoked key again succeeded"
    unknown = key_cli(envhub_bin, acl.db_path, "revoke", "acl-cli-never-made")
    assert unknown.returncode != 0
    bad_role = key_cli(envhub_bin, acl.db_path, "create", "--name", "acl-cli-bad", "--role", "root")
    assert bad_role.returncode != 0 and not bad_role.stdout.strip(), bad_role
    line = next(l for l in key_cli(envhub_bin, acl.db_path, "list").stdout.splitlines()
                if l.split()[:1] == ["acl-cli-runner"])
    assert "revoked" in line, line


# ---------------------------------------------------------------- attribution

def _wait_build_final(server, secret, name, version, within=helpers.BUILD_WITHIN):
    deadline = time.monotonic() + within
    while True:
        r = call(server, "GET", f"/environments/{name}/builds/{version}", secret)
        assert r.status_code == 200, describe(r)
        build = r.json()
        if build["status"] in helpers.FINAL_BUILD_STATUSES:
            break
        if time.monotonic() >= deadline:
            raise AssertionError(f"build {version} of {name} still {build['status']} after {within:.0f} s")
        time.sleep(0.5)
    if build["status"] != "ready":
        log = call(server, "GET", f"/environments/{name}/builds/{version}/log", secret).text
        helpers.note_step_images(log)
        raise AssertionError(f"build {version} of {name} ended {build['status']}: {build}\n"
                             + "\n".join(log.splitlines()[-30:]))
    return build


def test_executions_record_the_key_name_as_principal(acl):
    wrong = []
    for who in ("admin", "curator", "runner", "runner2"):
        r = call(acl, "POST", "/execute", acl.keys[who], {"code": f"print('{who}')"})
        assert r.status_code == 200, describe(r)
        res = r.json()
        row = catalog_row(acl.db_path, res["id"])
        if row is None or row.get("principal") != who:
            wrong.append(f"{who}: executions row {res['id']}: principal {row and row.get('principal')!r}")
        line = wait_log_line(acl, f"id={r.headers['X-Request-Id']}")
        if not line or f"principal={who}" not in line:
            wrong.append(f"{who}: request log line {line!r}")
    assert not wrong, "\n".join(wrong)


def test_events_name_who_changed_environments_and_keys(acl, run_id):
    """A curator creates and rebuilds an environment, the admin deletes it and makes and
    revokes a key: GET /events names each of them; the CLI's changes name the CLI."""
    curator, admin, auditor = acl.keys["curator"], acl.keys["admin"], acl.keys["auditor"]
    name = f"acl-attr-{run_id}"
    r = call(acl, "POST", "/environments", curator, {"name": name, "setup_script": TRIVIAL_SCRIPT})
    assert r.status_code == 200, describe(r)
    assert r.json().get("created_by") == "curator", r.json()
    try:
        _wait_build_final(acl, curator, name, 1)
        r = call(acl, "POST", f"/environments/{name}/rebuild", curator, {})
        assert r.status_code in (200, 202), describe(r)
        _wait_build_final(acl, curator, name, r.json()["version"])
    finally:
        r = call(acl, "DELETE", f"/environments/{name}", admin)
    assert r.status_code == 200, describe(r)

    r = call(acl, "POST", "/keys", admin, {"name": "acl-attr-key", "role": "auditor"})
    assert r.status_code == 201, describe(r)
    acl.issued["acl-attr-key"] = r.json()["secret"]
    assert call(acl, "DELETE", "/keys/acl-attr-key", admin).status_code == 200

    r = call(acl, "GET", "/events?limit=1000", auditor)
    assert r.status_code == 200, describe(r)
    doc = r.json()
    events = doc["events"]
    for e in events:
        assert {"seq", "at", "principal", "action", "subject", "detail"} <= set(e), e
    got = [(e["action"], e["principal"]) for e in sorted(events, key=lambda e: e["seq"]) if e["subject"] == name]
    assert got == [("environment.create", "curator"), ("environment.rebuild", "curator"),
                   ("environment.delete", "admin")], f"events of {name}: {got}"
    got = [(e["action"], e["principal"]) for e in sorted(events, key=lambda e: e["seq"])
           if e["subject"] == "acl-attr-key"]
    assert got == [("key.create", "admin"), ("key.revoke", "admin")], f"events of acl-attr-key: {got}"
    # the keys made and revoked with the CLI before the start
    by_cli = [(e["action"], e["principal"]) for e in events if e["subject"] == "revoked-admin"]
    assert sorted(a for a, _ in by_cli) == ["key.create", "key.revoke"], by_cli
    assert all(p.startswith("cli:") for _, p in by_cli), by_cli

    # the subject filter
    r = call(acl, "GET", f"/events?subject={name}", admin)
    assert r.status_code == 200, describe(r)
    assert {e["subject"] for e in r.json()["events"]} == {name}, r.text[:1000]


# ---------------------------------------------------------------- request ids

def test_every_response_has_a_request_id_that_the_log_repeats(acl):
    k = acl.keys
    attempts = [
        ("health", "GET", "/health", None, None, {}),
        ("ok", "GET", "/environments", k["runner"], None, {}),
        ("unauthenticated", "GET", "/environments", None, None, {}),
        ("wrong key", "GET", "/keys", WRONG_KEY, None, {}),
        ("forbidden", "POST", "/execute", k["auditor"], {"code": "print(1)"}, {}),
        ("not found", "GET", "/acl-no-such-route", k["admin"], None, {}),
        ("method not allowed", "PUT", "/execute", k["admin"], None, {}),
        ("unsupported media", "POST", "/execute", k["runner"], None,
         {"Content-Type": "text/plain", "data": "print(1)"}),
        ("invalid body", "POST", "/execute", k["runner"], {"code": ""}, {}),
    ]
    wrong = []
    ids = []
    for what, method, path, secret, body, extra in attempts:
        extra = dict(extra)
        data = extra.pop("data", None)
        h = dict(bearer(secret))
        h.update(extra)
        r = requests.request(method, acl.url + path, headers=h, json=body, data=data, timeout=60)
        rid = r.headers.get("X-Request-Id")
        if not rid:
            wrong.append(f"{what}: no X-Request-Id: {describe(r)} {dict(r.headers)}")
            continue
        ids.append(rid)
        line = wait_log_line(acl, f"id={rid}")
        if line is None:
            wrong.append(f"{what}: no log line with id={rid} ({describe(r)})")
        elif f"status={r.status_code}" not in line:
            wrong.append(f"{what}: the log line of {rid} has another status: {line!r} vs {r.status_code}")
    assert len(set(ids)) == len(ids), f"repeated request ids: {ids}"
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------- secrets

def test_secrets_never_appear_in_the_log_or_the_catalog_files(acl):
    """Runs after the tests above sent every key (valid, revoked, wrong) and made new ones
    over the API and the CLI: no secret, nor its random part, is in the server log or in
    the bytes of the catalog (-wal and -shm included), while their sha256 are."""
    # a request more with each secret, so that the latest traffic is in the log too
    for s in list(acl.issued.values()) + acl.sent:
        call(acl, "GET", "/environments", s)
    files = [acl.log_path] + [acl.db_path + sfx for sfx in ("", "-wal", "-shm") if os.path.exists(acl.db_path + sfx)]
    blobs = {}
    for path in files:
        with open(path, "rb") as f:
            blobs[path] = f.read()
    found = []
    for s in set(acl.issued.values()) | set(acl.sent):
        for path, data in blobs.items():
            if s.encode() in data:
                found.append(f"{s[:17]}… in {path}")
            elif s[17:].encode() in data:
                found.append(f"the random part of {s[:17]}… in {path}")
    assert not found, "secrets in clear:\n" + "\n".join(found)
    catalog = b"".join(v for p, v in blobs.items() if p != acl.log_path)
    missing = [n for n, s in acl.issued.items() if sha256_hex(s).encode() not in catalog]
    assert not missing, f"the sha256 of keys {missing} is not in the catalog files read: the check read the wrong files"


# ---------------------------------------------------------------- quotas

@pytest.fixture(scope="module")
def quota(envhub_module_factory, envhub_bin):
    """Runners: 2 executions a minute and no concurrency limit by role; qa, qb and qe use
    the role's defaults; qc has its own --max-concurrent 1 (and no per-minute limit), qd its own
    --max-per-minute 0 (no limit); qf is like qc (for asynchronous submissions); qadmin is
    an admin."""
    keys = {}

    def make_keys(server):
        for name in ("qa", "qb", "qe"):
            keys[name] = create_key(envhub_bin, server.db_path, name, "runner")
        keys["qc"] = create_key(envhub_bin, server.db_path, "qc", "runner", max_concurrent=1, max_per_minute=0)
        keys["qd"] = create_key(envhub_bin, server.db_path, "qd", "runner", max_per_minute=0)
        keys["qf"] = create_key(envhub_bin, server.db_path, "qf", "runner", max_concurrent=1, max_per_minute=0)
        keys["qadmin"] = create_key(envhub_bin, server.db_path, "qadmin", "admin")

    server = envhub_module_factory("--quota-runner-per-minute", "2", "--quota-runner-concurrent", "0",
                                   before_start=make_keys)
    server.keys = keys
    return server


def _assert_quota_429(r, what):
    assert r.status_code == 429, f"{what}: expected 429: {describe(r)}"
    ra = r.headers.get("Retry-After")
    assert ra is not None and ra.isdigit() and 1 <= int(ra) <= 60, f"{what}: Retry-After {ra!r}"
    assert "quota" in (detail_of(r) or "").lower(), f"{what}: the detail does not name the quota: {r.text}"
    return int(ra)


def test_runner_over_its_per_minute_quota_gets_429_and_another_runner_is_unaffected(quota):
    k = quota.keys
    for i in range(2):
        r = call(quota, "POST", "/execute", k["qa"], {"code": f"print({i})"})
        assert r.status_code == 200, f"execution {i + 1} of 2 allowed a minute: {describe(r)}"
    rows = count_rows(quota.db_path)
    r = call(quota, "POST", "/execute", k["qa"], {"code": "print('over')"})
    ra = _assert_quota_429(r, "the 3rd execution within a minute")
    assert ra >= 30, f"Retry-After {ra} s, but the first start left the window only in about a minute"
    assert count_rows(quota.db_path) == rows, "the refused execution wrote a row"
    # another runner, and the admin (no limit), are unaffected
    for who, n in (("qb", 2), ("qadmin", 3)):
        for i in range(n):
            r = call(quota, "POST", "/execute", k[who], {"code": f"print({i})"})
            assert r.status_code == 200, f"{who} execution {i + 1}: {describe(r)}"
    # still refused, and reads are not counted
    assert call(quota, "GET", "/environments", k["qa"]).status_code == 200
    _assert_quota_429(call(quota, "POST", "/execute", k["qa"], {"code": "print(1)"}), "qa again")


def test_a_keys_own_per_minute_limit_overrides_its_roles(quota):
    k = quota.keys
    # qd: --max-per-minute 0 = no limit, over the role's 2
    for i in range(3):
        r = call(quota, "POST", "/execute", k["qd"], {"code": f"print({i})"})
        assert r.status_code == 200, f"qd (no limit of its own) execution {i + 1}: {describe(r)}"
    # a key made over the API with max_per_minute 1
    r = call(quota, "POST", "/keys", k["qadmin"], {"name": "q-one", "role": "runner", "max_per_minute": 1})
    assert r.status_code == 201, describe(r)
    one = r.json()["secret"]
    assert call(quota, "POST", "/execute", one, {"code": "print(1)"}).status_code == 200
    _assert_quota_429(call(quota, "POST", "/execute", one, {"code": "print(2)"}), "q-one's 2nd execution")


def test_concurrent_quota_refuses_a_second_simultaneous_job(quota):
    k = quota.keys
    first = {}

    def run_first():
        try:
            first["r"] = call(quota, "POST", "/execute", k["qc"],
                              {"code": "import time\ntime.sleep(4)\nprint('first done')", "timeout": 30})
        except requests.RequestException as e:  # reported below
            first["error"] = e

    t = threading.Thread(target=run_first)
    t.start()
    try:
        # the first job holds its slot once its execution row says it runs (warm pool
        # containers may be running before any job, so the engine cannot tell)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _running_rows(quota, "qc"):
            time.sleep(0.05)
        assert _running_rows(quota, "qc"), f"the first job of qc never ran: {first}"
        assert t.is_alive(), f"the first job ended before the second started: {first}"
        r = call(quota, "POST", "/execute", k["qc"], {"code": "print('second')"})
        _assert_quota_429(r, "a second job while the first runs (max_concurrent 1)")
        # another key runs meanwhile
        r = call(quota, "POST", "/execute", k["qd"], {"code": "print('other key')"})
        assert r.status_code == 200, f"another runner was blocked by qc's quota: {describe(r)}"
    finally:
        t.join(60)
    assert "r" in first, f"the first job failed: {first}"
    r = first["r"]
    assert r.status_code == 200 and r.json()["stdout"] == "first done\n", describe(r)
    # the slot is free again
    r = call(quota, "POST", "/execute", k["qc"], {"code": "print('third')"})
    assert r.status_code == 200, f"after the first job ended: {describe(r)}"
    assert _rows_of(quota, "qc") == 2, "the refused job wrote an execution row"


def _running_rows(server, principal):
    conn = helpers.connect_ro(server.db_path)
    try:
        return conn.execute("SELECT count(*) FROM executions WHERE principal = ? AND status = 'running'",
                            (principal,)).fetchone()[0]
    finally:
        conn.close()


def _rows_of(server, principal):
    conn = helpers.connect_ro(server.db_path)
    try:
        return conn.execute("SELECT count(*) FROM executions WHERE principal = ?", (principal,)).fetchone()[0]
    finally:
        conn.close()


# ---------------------------------------------------------------- open mode and the refusal

@pytest.mark.parametrize("catalog", ["empty", "only_revoked_keys"])
def test_refuses_to_start_on_0_0_0_0_without_keys(envhub_bin, run_label, tmp_path, catalog):
    db = str(tmp_path / "envhub.db")
    if catalog == "only_revoked_keys":
        create_key(envhub_bin, db, "gone", "admin")
        revoke_key(envhub_bin, db, "gone")
    port = helpers.free_port()
    args = [envhub_bin, "serve", "--listen", f"0.0.0.0:{port}", "--db", db, "--labels", run_label]
    t0 = time.monotonic()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=helpers.server_env(), start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"envhub served on 0.0.0.0 without keys (killed after 15 s):\n{out.decode(errors='replace')}")
    elapsed = time.monotonic() - t0
    text = out.decode(errors="replace")
    assert proc.returncode != 0, f"exit status 0:\n{text}"
    assert "refusing to serve" in text, text
    assert elapsed < 10, f"the refusal took {elapsed:.1f} s"


def test_open_mode_on_loopback_is_logged_and_the_first_key_ends_it(envhub_factory):
    server = envhub_factory()
    line = wait_log_line(server, "open mode", within=2)
    assert line is not None, f"no 'open mode' in the start-up log:\n{server.log_tail()}"
    # everyone is admin, known by the address
    r = call(server, "GET", "/keys")
    assert r.status_code == 200 and r.json()["total"] == 0, describe(r)
    r = call(server, "POST", "/execute", None, {"code": "print('open')"})
    assert r.status_code == 200, describe(r)
    assert catalog_row(server.db_path, r.json()["id"])["principal"] == "127.0.0.1"
    assert call(server, "GET", "/events").status_code == 200

    r = call(server, "POST", "/keys", None, {"name": "first-admin", "role": "admin"})
    assert r.status_code == 201, describe(r)
    assert r.json()["created_by"] == "127.0.0.1", r.json()
    secret = r.json()["secret"]
    r = call(server, "GET", "/keys")
    assert r.status_code == 401, f"the first key did not end open mode: {describe(r)}"
    r = call(server, "POST", "/execute", None, {"code": "print(1)"})
    assert r.status_code == 401, describe(r)
    r = call(server, "GET", "/events", secret)
    assert r.status_code == 200, describe(r)
    ev = [(e["action"], e["principal"]) for e in r.json()["events"] if e["subject"] == "first-admin"]
    assert ev == [("key.create", "127.0.0.1")], ev
    with open(server.log_path, "rb") as f:
        assert secret[17:].encode() not in f.read(), "the secret is in the log"


# ---------------------------------------------------------------- last: tests that found server bugs
# (at the end of the module so that, under -x, they do not hide the other results)

def test_a_request_over_the_header_limit_gets_a_request_id_too(acl):
    """Headers over 16 KiB are refused by the HTTP layer itself; that answer is a response
    too and must carry an X-Request-Id that the log repeats."""
    with socket.create_connection(("127.0.0.1", acl.port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: " + b"a" * 20000
                  + b"\r\nConnection: close\r\n\r\n")
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1")
    assert head.startswith("HTTP/"), f"no HTTP answer: {data[:200]!r}"
    status = head.split()[1]
    assert status.startswith("4"), head
    ids = [l.split(":", 1)[1].strip() for l in head.split("\r\n")[1:] if l.lower().startswith("x-request-id:")]
    assert ids, f"the {status} answer to oversized headers has no X-Request-Id:\n{head}"
    assert wait_log_line(acl, f"id={ids[0]}") is not None, f"no log line with id={ids[0]}"


def test_requests_that_start_no_execution_do_not_use_up_the_per_minute_quota(quota):
    """The quota counts executions started: a request refused before anything runs (an
    invalid body, an environment that does not exist) must not count."""
    k = quota.keys
    refused = [
        ("/execute", {"code": ""}, 400),
        ("/execute", {"code": "print(1)", "timeout": 0}, 422),
        ("/execute-with-environment", {"code": "print(1)", "environment": NO_ENV}, 404),
        ("/execute-with-environment", {"code": "print(1)", "environment": NO_ENV}, 404),
    ]
    for path, body, status in refused:
        r = call(quota, "POST", path, k["qe"], body)
        assert r.status_code == status, describe(r)
    r = call(quota, "POST", "/execute", k["qe"], {"code": "print('first real run')"})
    assert r.status_code == 200, (f"the first real execution of a key allowed 2 a minute, after "
                                  f"{len(refused)} requests that ran nothing: {describe(r)}")


def test_revoking_the_last_key_does_not_reopen_the_server(envhub_factory, envhub_bin):
    """docs/security.md: open mode is 'while no key exists'; a catalog whose keys are all revoked has
    keys, and a revoked key must stop working at once, so the server must not fall back to
    serving everyone as admin."""
    server = envhub_factory()  # a fresh catalog (open mode); the key is made while it runs
    secret = create_key(envhub_bin, server.db_path, "only-admin", "admin")
    r = call(server, "GET", "/keys")
    assert r.status_code == 401, f"a key made with the CLI did not end open mode at once: {describe(r)}"
    assert call(server, "GET", "/keys", secret).status_code == 200
    revoke_key(envhub_bin, server.db_path, "only-admin")
    rows = count_rows(server.db_path)
    wrong = []
    for who, s in (("the revoked key", secret), ("no key", None)):
        for method, path, body in (("GET", "/keys", None), ("POST", "/execute", {"code": "print('reopened')"})):
            r = call(server, method, path, s, body)
            if r.status_code != 401:
                wrong.append(f"{who}: {describe(r)}")
    assert not wrong, ("after the only key was revoked (key revoke only-admin), the server serves "
                       "without authentication again:\n" + "\n".join(wrong))
    assert count_rows(server.db_path) == rows


def test_a_loopback_server_whose_keys_are_all_revoked_does_not_start_in_open_mode(envhub_factory, envhub_bin,
                                                                                   tmp_path):
    """Open mode lasts only while no key was ever created (each request counts every key,
    revoked ones too): a catalog whose only key is revoked must not be announced as open
    mode at start-up, and must answer 401 without a key."""
    db = str(tmp_path / "envhub.db")
    secret = create_key(envhub_bin, db, "gone-admin", "admin")
    revoke_key(envhub_bin, db, "gone-admin")
    server = envhub_factory(db_path=db)
    line = wait_log_line(server, "auth:", within=2)
    assert line is not None, f"no 'auth:' line in the start-up log:\n{server.log_tail()}"
    log = server.log_text()
    assert "open mode" not in log and "without authentication" not in log, (
        f"the start-up log claims open mode while requests need a key:\n{server.log_tail()}")
    assert "revoked" in line, f"the start-up line does not say why no key works: {line!r}"
    assert call(server, "GET", "/health").status_code == 200
    rows = count_rows(server.db_path)
    wrong = []
    for who, s in (("no key", None), ("the revoked key", secret)):
        for method, path, body in (("GET", "/environments", None), ("GET", "/keys", None),
                                   ("POST", "/execute", {"code": "print('open')"})):
            r = call(server, method, path, s, body)
            if r.status_code != 401 or not isinstance(detail_of(r), str):
                wrong.append(f"{who}: expected 401: {describe(r)}")
            elif not r.headers.get("WWW-Authenticate", "").startswith("Bearer"):
                wrong.append(f"{who}: 401 without WWW-Authenticate: Bearer: {dict(r.headers)}")
    assert not wrong, "\n".join(wrong)
    assert count_rows(server.db_path) == rows, "a refused request ran code"


def test_concurrent_quota_holds_for_asynchronous_submissions(quota):
    """POST /executions (asynchronous) starts executions too: a key allowed one at a time
    must not get two running at once, whether the second is refused (429) or waits."""
    k = quota.keys
    first = call(quota, "POST", "/executions", k["qadmin"], {"code": ""})
    if first.status_code in (404, 405):
        pytest.skip("no asynchronous submissions in this build (POST /executions)")
    code = "import time\ntime.sleep(3)\nprint('async')"
    ids, refused = [], []
    for _ in range(2):
        r = call(quota, "POST", "/executions", k["qf"], {"code": code, "timeout": 30})
        if r.status_code == 429:
            refused.append(r)
            continue
        assert r.status_code == 202, describe(r)
        ids.append(r.json()["id"])
    if refused:
        _assert_quota_429(refused[0], "a second asynchronous job of a key with max_concurrent 1")
        return
    records = {}
    deadline = time.monotonic() + 60
    while len(records) < len(ids) and time.monotonic() < deadline:
        for x in ids:
            r = call(quota, "GET", f"/executions/{x}", k["qadmin"])
            if r.status_code == 200 and r.json().get("finished_at"):
                records[x] = r.json()
        time.sleep(0.3)
    assert len(records) == 2, f"the jobs did not finish in 60 s: {records}"
    a, b = (records[x] for x in ids)
    first_end = min(helpers.parse_iso(a["finished_at"]), helpers.parse_iso(b["finished_at"]))
    second_start = max(helpers.parse_iso(a["started_at"]), helpers.parse_iso(b["started_at"]))
    assert second_start >= first_end, (
        f"two asynchronous jobs of key qf (max_concurrent 1) ran at once, both accepted with 202: "
        f"{a['id']} {a['started_at']}..{a['finished_at']}, {b['id']} {b['started_at']}..{b['finished_at']}")
