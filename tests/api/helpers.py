"""Helpers shared by the black-box API tests: the envhub process, the Docker engine
over its unix socket, the catalog (read-only) and the shapes of POST /execute.

The tests talk only to 127.0.0.1 and to the engine's unix socket."""

import base64
import datetime
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest
import requests

# ---------------------------------------------------------------- constants

DEFAULT_IMAGE = "envhub/python:bookworm"
MAX_CODE_BYTES = 50000
MAX_FILE_BYTES = 10485760
OUTPUT_LIMIT = 1 << 20  # default stdout/stderr cap, 1 MiB
RESPONSE_FIELDS = {"success", "stdout", "stderr", "execution_time", "files", "error"}
EXTRA_FIELDS = {"id", "status", "exit_code", "stdout_truncated", "stderr_truncated", "files_skipped"}

# Servers alive right now, so that a failing test can show the tail of their logs.
LIVE_SERVERS = []


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode("ascii")


def unb64(text):
    return base64.b64decode(text, validate=True)


def sha256_hex(data):
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- Docker engine

def docker_socket_path():
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://"):]
    return "/var/run/docker.sock"


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX socket (the Docker engine API)."""

    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def docker_api(method, path, timeout=10, body=None):
    """One Engine API call (`body`: sent as JSON); returns (status, parsed JSON body or raw
    text or None)."""
    conn = UnixHTTPConnection(docker_socket_path(), timeout=timeout)
    headers = {"Host": "docker"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    body = None
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
    return resp.status, body


def engine_answers():
    try:
        status, _ = docker_api("GET", "/_ping", timeout=5)
        return status == 200
    except OSError:
        return False


def labelled_containers(label):
    """Every container (running or not) carrying `label` ("key=value")."""
    filters = urllib.parse.quote(json.dumps({"label": [label]}))
    status, body = docker_api("GET", f"/v1.41/containers/json?all=1&filters={filters}")
    assert status == 200, f"engine: list containers answered {status}: {body}"
    return body


def remove_labelled_containers(label):
    removed = []
    for c in labelled_containers(label):
        docker_api("DELETE", f"/v1.41/containers/{c['Id']}?force=1", timeout=30)
        removed.append(c["Id"][:12])
    return removed


def wait_no_container_left(label, within=5.0):
    """Polls until no container carries `label`; returns what is left after `within` s."""
    deadline = time.monotonic() + within
    while True:
        left = labelled_containers(label)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.2)


def describe_containers(containers):
    return [(c["Id"][:12], c.get("State"), c.get("Status"), c.get("Labels")) for c in containers]


def labelled_images(label):
    """Every image carrying `label` ("key=value")."""
    filters = urllib.parse.quote(json.dumps({"label": [label]}))
    status, body = docker_api("GET", f"/v1.41/images/json?filters={filters}")
    assert status == 200, f"engine: list images answered {status}: {body}"
    return body


def remove_labelled_images(label, run_id=None):
    """Removes the images carrying `label`; with `run_id`, also the (untagged) step images
    of environments whose name contains it (they carry envhub.environment, not `label`)."""
    removed = []
    images = labelled_images(label)
    if run_id:
        images += [i for i in labelled_images("envhub.managed=1")
                   if run_id in ((i.get("Labels") or {}).get("envhub.environment") or "")]
    for image in images:
        status, _ = docker_api("DELETE", f"/v1.41/images/{image['Id']}?force=1", timeout=60)
        if status == 200:
            removed.append(image["Id"][7:19])
    return removed


# The COPY setup.sh step of a build that failed or was cancelled stays in the engine as an
# untagged, unlabelled image (docker build's cache); tests note those of their builds from
# the build log and the session removes them at its end when nothing uses them.
STEP_IMAGES = set()


def note_step_images(log):
    lines = [line.strip() for line in log.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("Step ") and "COPY setup.sh" in line:
            for after in lines[i + 1:i + 4]:
                ref = after[len("--->"):].strip() if after.startswith("--->") else ""
                if len(ref) == 12 and all(ch in "0123456789abcdef" for ch in ref):
                    STEP_IMAGES.add(ref)
                    break


def remove_step_images():
    """Removes the noted step images nothing uses (no force: an image in use stays)."""
    for ref in sorted(STEP_IMAGES):
        docker_api("DELETE", f"/v1.41/images/{ref}", timeout=60)
    STEP_IMAGES.clear()


def image_exists(ref):
    """True when the engine has image `ref` (a tag or an id)."""
    status, body = docker_api("GET", f"/v1.41/images/{urllib.parse.quote(ref, safe='')}/json")
    assert status in (200, 404), f"engine: inspect image {ref} answered {status}: {body}"
    return status == 200


def image_id_of(ref):
    status, body = docker_api("GET", f"/v1.41/images/{urllib.parse.quote(ref, safe='')}/json")
    return body["Id"] if status == 200 else None


def container_exists(container_id):
    status, body = docker_api("GET", f"/v1.41/containers/{container_id}/json")
    assert status in (200, 404), f"engine: inspect container {container_id} answered {status}: {body}"
    return status == 200


def containers_on_image(image_id):
    """Every container (running or not) made from image `image_id`."""
    status, body = docker_api("GET", "/v1.41/containers/json?all=1")
    assert status == 200, f"engine: list containers answered {status}: {body}"
    return [c for c in body if c.get("ImageID") == image_id]


def wait_no_container_on_image(image_id, within=30.0):
    """Polls until no container is made from `image_id`; returns what is left."""
    deadline = time.monotonic() + within
    while True:
        left = containers_on_image(image_id)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.2)


def build_step_containers(since):
    """Containers created at or after `since` (epoch s) that run an environment's setup
    script: docker build's intermediate containers (unlabelled) of envhub builds."""
    status, body = docker_api("GET", "/v1.41/containers/json?all=1")
    assert status == 200, f"engine: list containers answered {status}: {body}"
    return [c for c in body if c.get("Created", 0) >= int(since) - 1 and "/envhub/setup.sh" in c.get("Command", "")]


# ---------------------------------------------------------------- the envhub process

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_sanitizer_build(binary):
    """True when the binary carries AddressSanitizer (make sanitize)."""
    try:
        with open(binary, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def server_env():
    """The test process's environment minus every setting the server reads, so the
    flags alone decide its configuration (CORS origins, limits, listen address...)."""
    drop = {"SANDBOX_TIMEOUT", "MAX_CODE_LENGTH", "MAX_FILE_SIZE", "DOCKER_IMAGE", "MEMORY_LIMIT",
            "CPU_LIMIT", "NETWORK_MODE", "WORK_DIR", "CONCURRENT_LIMIT"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("ENVHUB_")}


class EnvhubServer:
    """One `envhub serve` process on 127.0.0.1:<free port> with its own catalog file."""

    def __init__(self, binary, run_id, extra_args=(), env=None, db_path=None, scheme="http", verify=None):
        self.binary = binary
        # scheme "https" (the server got --tls-cert) and verify: the CA file requests checks it with
        self.scheme = scheme
        self.verify = verify
        self.run_id = run_id
        self.label = f"envhub.test={run_id}"
        self.extra_args = list(extra_args)
        self.tmpdir = tempfile.mkdtemp(prefix="envhub-api-")
        # db_path: the catalog of an earlier server (a restart); else a new one of its own
        self.db_path = db_path or os.path.join(self.tmpdir, "envhub.db")
        self.log_path = os.path.join(self.tmpdir, "envhub.log")
        self.env = server_env()
        if env:
            self.env.update(env)
        self.proc = None
        self.port = None

    @property
    def pid(self):
        return self.proc.pid

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, ready_within=30.0):
        last_error = None
        for _attempt in range(3):  # another process may grab the free port in between
            self.port = free_port()
            args = [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--db", self.db_path,
                    "--labels", self.label] + self.extra_args
            with open(self.log_path, "ab") as log:
                log.write(("\n$ " + " ".join(args) + "\n").encode())
                log.flush()
                self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             env=self.env, start_new_session=True)
            LIVE_SERVERS.append(self)
            ok, last_error = self._wait_healthy(ready_within)
            if ok:
                return self
            self.stop()
            if "address" not in self.log_tail(20).lower():
                break
        raise RuntimeError(f"envhub did not become healthy: {last_error}\n--- {self.log_path} ---\n"
                           f"{self.log_tail()}")

    def _wait_healthy(self, within):
        deadline = time.monotonic() + within
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, f"the process exited with {self.proc.returncode}"
            try:
                kw = {"verify": self.verify} if self.verify is not None else {}
                r = requests.get(f"{self.url}/health", timeout=2, **kw)
                if r.status_code == 200:
                    return True, None
                last = f"GET /health answered {r.status_code}: {r.text[:300]}"
            except requests.RequestException as e:
                last = f"GET /health: {e.__class__.__name__}"
            time.sleep(0.1)
        return False, f"not healthy within {within:.0f} s ({last})"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace=10.0):
        """SIGTERM, wait up to `grace` s, then SIGKILL; by PID only. Returns the exit status
        and whether it had to be killed."""
        if self in LIVE_SERVERS:
            LIVE_SERVERS.remove(self)
        if self.proc is None:
            return None, False
        if self.proc.poll() is not None:
            return self.proc.returncode, False
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            return self.proc.wait(timeout=grace), False
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=10), True

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=60):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def instance_id(self):
        """The catalog's instance id, as the server logged it when it started (its
        containers carry it as envhub.instance)."""
        found = re.findall(r"instance ([0-9a-f]+)\)", self.log_text())
        return found[-1] if found else None

    def status_kb(self, key):
        """A /proc/PID/status value in kB (VmRSS, VmHWM)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise KeyError(key)


# ---------------------------------------------------------------- the catalog (read-only)

def connect_ro(db_path):
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


def count_rows(db_path, table="executions"):
    conn = connect_ro(db_path)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def catalog_row(db_path, execution_id):
    """The executions row for `execution_id` as a dict, or None."""
    conn = connect_ro(db_path)
    try:
        row = conn.execute("SELECT * FROM executions WHERE id = ?", (execution_id,)).fetchone()
        return dict(row) if row else None
    finally:
        conn.close()


def catalog_files(db_path, execution_id):
    """{(direction, path): (size, sha256)} from execution_files for `execution_id`."""
    conn = connect_ro(db_path)
    try:
        rows = conn.execute(
            "SELECT f.direction, f.path, f.size, f.sha256 FROM execution_files f "
            "JOIN executions e ON e.seq = f.execution_seq WHERE e.id = ?", (execution_id,)).fetchall()
        return {(r["direction"], r["path"]): (r["size"], r["sha256"]) for r in rows}
    finally:
        conn.close()


# ---------------------------------------------------------------- POST /execute

def post_execute(server, body, http_timeout=60, **kw):
    """POST /execute with `body` as JSON (or raw bytes with `data=`); the Response."""
    return requests.post(f"{server.url}/execute", json=body, timeout=http_timeout, **kw)


def execute(server, code, timeout=None, files=None, environment=None, http_timeout=None, **extra):
    """Runs `code`; asserts an HTTP 200 answer with every compatible field; returns its JSON."""
    body = {"code": code}
    if timeout is not None:
        body["timeout"] = timeout
    if files is not None:
        body["files"] = files
    if environment is not None:
        body["environment"] = environment
    body.update(extra)
    if http_timeout is None:
        http_timeout = (timeout or 30) + 60
    r = post_execute(server, body, http_timeout=http_timeout)
    assert r.status_code == 200, f"POST /execute answered {r.status_code}: {r.text[:2000]}"
    res = r.json()
    missing = RESPONSE_FIELDS - set(res)
    assert not missing, f"response lacks {sorted(missing)}: {str(res)[:2000]}"
    return res


def short(res):
    """A response trimmed for assertion messages."""
    out = dict(res)
    for k in ("stdout", "stderr"):
        if isinstance(out.get(k), str) and len(out[k]) > 1500:
            out[k] = out[k][:1500] + f"...({len(res[k])} chars)"
    if isinstance(out.get("files"), dict):
        out["files"] = {k: f"<{len(v)} b64 chars>" for k, v in list(out["files"].items())[:20]}
    return out


# ---------------------------------------------------------------- environments

BUILD_WITHIN = 240.0  # s a basic build may take here (they take 5-15 s)
FINAL_BUILD_STATUSES = ("ready", "failed", "cancelled")


def create_env(server, name, setup_script, **fields):
    """POST /environments; asserts the 200 answer (status building); returns its JSON."""
    body = {"name": name, "setup_script": setup_script}
    body.update(fields)
    r = requests.post(f"{server.url}/environments", json=body, timeout=30)
    assert r.status_code == 200, f"POST /environments {name!r} answered {r.status_code}: {r.text[:2000]}"
    env = r.json()
    assert env["name"] == name and env["status"] == "building", env
    return env


def get_env(server, name):
    r = requests.get(f"{server.url}/environments/{name}", timeout=30)
    assert r.status_code == 200, f"GET /environments/{name} answered {r.status_code}: {r.text[:1000]}"
    return r.json()


def delete_env(server, name):
    r = requests.delete(f"{server.url}/environments/{name}", timeout=60)
    assert r.status_code == 200, f"DELETE /environments/{name} answered {r.status_code}: {r.text[:1000]}"
    return r.json()


def get_build(server, name, version):
    r = requests.get(f"{server.url}/environments/{name}/builds/{version}", timeout=30)
    assert r.status_code == 200, f"GET builds/{version} of {name} answered {r.status_code}: {r.text[:1000]}"
    return r.json()


def build_log(server, name, version=None):
    """The build log as text (the newest build without `version`); '' when there is none."""
    path = f"/environments/{name}/builds/{version}/log" if version else f"/environments/{name}/logs"
    try:
        r = requests.get(server.url + path, timeout=30)
    except requests.RequestException as e:
        return f"<GET {path}: {e.__class__.__name__}>"
    if r.status_code != 200:
        return f"<GET {path} answered {r.status_code}: {r.text[:300]}>"
    return r.text


def log_tail(server, name, version=None, lines=40):
    text = build_log(server, name, version)
    return "\n".join(text.splitlines()[-lines:])


def wait_env(server, name, until=("ready",), within=BUILD_WITHIN, poll=0.5):
    """Polls GET /environments/NAME every `poll` s until its status is not `building`;
    asserts it is one of `until`; returns the environment. A missed deadline or another
    final status fails with the last answer and the tail of the build log."""
    deadline = time.monotonic() + within
    env = None
    while True:
        env = get_env(server, name)
        if env["status"] != "building":
            break
        if time.monotonic() >= deadline:
            raise AssertionError(f"environment {name!r} still building after {within:.0f} s: {env}\n"
                                 f"--- build log tail ---\n{log_tail(server, name)}")
        time.sleep(poll)
    assert env["status"] in until, (f"environment {name!r} ended {env['status']!r}, expected {until}: "
                                    f"error={env.get('error')!r}\n--- build log tail ---\n"
                                    f"{log_tail(server, name)}")
    return env


def wait_build(server, name, version, until=("ready",), within=BUILD_WITHIN, poll=0.5):
    """Polls GET /environments/NAME/builds/N until the build is final; asserts its status
    is one of `until`; returns the build."""
    deadline = time.monotonic() + within
    while True:
        build = get_build(server, name, version)
        if build["status"] in FINAL_BUILD_STATUSES:
            break
        if time.monotonic() >= deadline:
            raise AssertionError(f"build {version} of {name!r} still {build['status']} after {within:.0f} s: "
                                 f"{build}\n--- build log tail ---\n{log_tail(server, name, version)}")
        time.sleep(poll)
    assert build["status"] in until, (f"build {version} of {name!r} ended {build['status']!r}, expected "
                                      f"{until}: error={build.get('error')!r}\n--- build log tail ---\n"
                                      f"{log_tail(server, name, version)}")
    return build


def wait_log_contains(server, name, text, version=None, within=60.0, poll=0.25):
    """Polls the build log until a line contains `text`; returns the log."""
    deadline = time.monotonic() + within
    while True:
        log = build_log(server, name, version)
        if text in log:
            return log
        if time.monotonic() >= deadline:
            raise AssertionError(f"the build log of {name!r} has no {text!r} after {within:.0f} s:\n"
                                 + "\n".join(log.splitlines()[-40:]))
        time.sleep(poll)


def parse_iso(text):
    """An ISO 8601 time with a zone -> aware datetime (asserts the zone)."""
    assert isinstance(text, str), f"not a time: {text!r}"
    value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert value.tzinfo is not None, f"{text!r} has no time zone"
    return value


# ---------------------------------------------------------------- API keys

SECRET_RE = r"ehk_[0-9a-f]{12}_[0-9a-f]{48}"


def key_cli(binary, db_path, *args, timeout=30):
    """`envhub --db DB key ARGS...` -> CompletedProcess (text stdout/stderr)."""
    return subprocess.run([binary, "--db", db_path, "key"] + [str(a) for a in args], env=server_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def create_key(binary, db_path, name, role, max_concurrent=None, max_per_minute=None):
    """`envhub key create` on the catalog file; asserts success; returns the secret."""
    args = ["create", "--name", name, "--role", role]
    if max_concurrent is not None:
        args += ["--max-concurrent", max_concurrent]
    if max_per_minute is not None:
        args += ["--max-per-minute", max_per_minute]
    p = key_cli(binary, db_path, *args)
    assert p.returncode == 0, f"key create {name} exited {p.returncode}: {p.stderr}"
    secret = p.stdout.strip()
    assert re.fullmatch(SECRET_RE, secret), f"key create {name} printed {p.stdout!r} (stderr {p.stderr!r})"
    return secret


def revoke_key(binary, db_path, name):
    """`envhub key revoke NAME`; asserts success."""
    p = key_cli(binary, db_path, "revoke", name)
    assert p.returncode == 0, f"key revoke {name} exited {p.returncode}: {p.stdout} {p.stderr}"
    return p


def bearer(secret):
    """Authorization header for `secret` ({} for None)."""
    return {"Authorization": f"Bearer {secret}"} if secret is not None else {}


def wait_log_line(server, text, within=5.0):
    """Polls the server log until a line contains `text` (the request log line is written
    just after the answer is sent); returns that line or None."""
    deadline = time.monotonic() + within
    while True:
        for line in server.log_text().splitlines():
            if text in line:
                return line
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


# ---------------------------------------------------------------- warm pools, sessions, metrics (issue 7)

def instance_id(server):
    """The catalog's instance id: every container the server makes carries
    envhub.instance=<it>, which tells its containers from other servers' of the run."""
    conn = connect_ro(server.db_path)
    try:
        return conn.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone()[0]
    finally:
        conn.close()


def instance_label(server):
    return f"envhub.instance={instance_id(server)}"


def is_waiting_sandbox(command):
    """Is `command` (a container's, as the engine lists it) the main process of a job
    container: envhub's agent (ENVHUB_JOB_TRANSPORT=agent) or `sleep infinity` (exec)?"""
    return command == "sleep infinity" or (command.startswith("python3 -I -c ") and
                                           command.endswith(" envhub-agent"))


def running_containers(label):
    """{full id: container} of the running containers carrying `label`."""
    return {c["Id"]: c for c in labelled_containers(label) if c.get("State") == "running"}


# A job that tells which container it runs in: the id from /proc/self/cgroup (cgroup v1:
# .../docker/<64 hex>) when it is there, and the hostname (the id's first 12 hex).
WHOAMI_CODE = r"""
import json, re, socket
cid = None
try:
    for line in open('/proc/self/cgroup'):
        m = re.search(r'(?:/docker/|docker-)([0-9a-f]{64})', line)
        if m:
            cid = m.group(1)
            break
except OSError:
    pass
print(json.dumps({"cid": cid, "hostname": socket.gethostname()}))
"""


def whoami(stdout):
    """The JSON line WHOAMI_CODE printed (the last line of `stdout` that parses)."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "hostname" in doc:
            return doc
    raise AssertionError(f"no whoami line in the job's stdout: {stdout[-500:]!r}")


def served_by(doc, container_ids):
    """The id among `container_ids` of the container `doc` (whoami) ran in, or None."""
    for cid in container_ids:
        if (doc.get("cid") and doc["cid"] == cid) or (not doc.get("cid") and cid.startswith(doc["hostname"])):
            return cid
    return None


def wait_until(predicate, within, poll=0.1):
    """Calls predicate() until it answers something true or `within` s pass; returns
    its last answer."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(poll)


_METRIC_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$')
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


class Metrics:
    """GET /metrics parsed: samples {(name, frozenset(labels)): value}, types and helps
    {family: text}, and the lines that did not parse (`bad`)."""

    def __init__(self, text):
        self.text = text
        self.samples = {}
        self.types = {}
        self.helps = {}
        self.bad = []
        self.order = []  # (name, labels dict) in the order of the text
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] == "TYPE":
                    self.types[parts[2]] = parts[3] if len(parts) > 3 else ""
                elif len(parts) >= 3 and parts[1] == "HELP":
                    self.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
                continue
            m = _METRIC_RE.match(line)
            if not m:
                self.bad.append(line)
                continue
            name, labels_text, value = m.group(1), m.group(3) or "", m.group(4)
            labels, pos = {}, 0
            while pos < len(labels_text):
                lm = _LABEL_RE.match(labels_text, pos)
                if not lm:
                    break
                labels[lm.group(1)] = re.sub(r'\\(.)', lambda e: {"n": "\n"}.get(e.group(1), e.group(1)),
                                             lm.group(2))
                pos = lm.end()
            try:
                number = float(value)
            except ValueError:
                self.bad.append(line)
                continue
            if pos < len(labels_text.strip()):
                self.bad.append(line)
                continue
            key = (name, frozenset(labels.items()))
            if key in self.samples:
                self.bad.append(f"duplicate sample: {line}")
            self.samples[key] = number
            self.order.append((name, labels))

    def get(self, name, default=None, **labels):
        """The value of the sample `name` with exactly `labels`, else `default`."""
        return self.samples.get((name, frozenset(labels.items())), default)

    def value(self, name, **labels):
        """Like get(), 0 when absent (a counter not yet incremented)."""
        return self.get(name, 0.0, **labels)

    def series(self, name):
        """[(labels dict, value)] of every sample called `name`."""
        return [(dict(k[1]), v) for k, v in self.samples.items() if k[0] == name]


def get_metrics(server, **kw):
    r = requests.get(f"{server.url}/metrics", timeout=30, **kw)
    assert r.status_code == 200, f"GET /metrics answered {r.status_code}: {r.text[:1000]}"
    return Metrics(r.text)


def pool_state(server, environment="", image=DEFAULT_IMAGE):
    """(ready, target, hits, misses) of one pool from /metrics (None where absent)."""
    m = get_metrics(server)
    lab = {"environment": environment, "image": image}
    return tuple(m.get(f"envhub_pool_{k}", **lab) for k in ("ready", "target", "hits_total", "misses_total"))


def make_volume_image(label, ref, volume="/data"):
    """Commits a container of the default image as `ref`, declaring VOLUME `volume` and
    carrying `label` ("key=value"), so that the session removes it."""
    key, value = label.split("=", 1)
    status, body = docker_api("POST", "/v1.41/containers/create",
                              body={"Image": DEFAULT_IMAGE, "Cmd": ["true"],
                                    "Labels": {key: value}})
    assert status == 201, f"engine: create answered {status}: {body}"
    cid = body["Id"]
    try:
        repo, tag = ref.rsplit(":", 1)
        query = urllib.parse.urlencode({"container": cid, "repo": repo, "tag": tag})
        status, body = docker_api("POST", f"/v1.41/commit?{query}",
                                  body={"Image": DEFAULT_IMAGE, "Cmd": ["python3"],
                                        "Labels": {key: value}, "Volumes": {volume: {}}})
        assert status == 201, f"engine: commit answered {status}: {body}"
    finally:
        docker_api("DELETE", f"/v1.41/containers/{cid}?force=1")
    return ref


# ---------------------------------------------------------------- seeded catalogs

def seed_bin_path(envhub_bin):
    """tests/bench/seed_history beside `envhub_bin` (or $SEED_BIN); fails the test without it."""
    path = os.environ.get("SEED_BIN") or os.path.join(os.path.dirname(envhub_bin), "bench",
                                                      "seed_history")
    if not os.access(path, os.X_OK):
        pytest.fail(f"no seeder at {path}: `make api` builds it (make build/bench/seed_history)",
                    pytrace=False)
    return path


def seed(seed_bin, db_path, count, *args):
    """`count` executions into the catalog at `db_path` through the catalog's own API."""
    r = subprocess.run([seed_bin, db_path, str(count), "--quiet", *args], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, f"seed_history failed: {r.stdout}{r.stderr}"


def start_node(binary, name, server, key_file, pool_size=1):
    """An `envhub node` named `name` for `server` (cluster mode) on this engine; its
    containers carry the server's label. Its log: node-NAME.log in the server's folder."""
    env = server_env()
    env["ENVHUB_URL"] = server.url
    log = open(os.path.join(server.tmpdir, f"node-{name}.log"), "ab")
    try:
        return subprocess.Popen([binary, "node", "--name", name, "--node-key-file", key_file,
                                 "--labels", server.label, "--pool-size", str(pool_size)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                start_new_session=True)
    finally:
        log.close()


def wait_nodes_ready(server, count, within=30.0):
    """Until `count` nodes report ready to the cluster-mode `server`."""
    deadline = time.monotonic() + within
    nodes = []
    while time.monotonic() < deadline:
        nodes = requests.get(f"{server.url}/cluster/nodes", timeout=10).json()["nodes"]
        if sum(n["state"] == "ready" for n in nodes) >= count:
            return nodes
        time.sleep(0.2)
    raise RuntimeError(f"{count} nodes not ready within {within:.0f} s: {nodes}")


def stop_process(proc, grace=20.0):
    """SIGTERM by PID, then SIGKILL after `grace` s."""
    if proc.poll() is not None:
        return proc.returncode
    os.kill(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=10)


def execute_many(url, codes, concurrency, http_timeout=300):
    """POST {url}/execute for each code, `concurrency` at once; the answers in order."""
    out = [None] * len(codes)
    todo = iter(range(len(codes)))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            out[i] = requests.post(f"{url}/execute", json={"code": codes[i]}, timeout=http_timeout)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out
