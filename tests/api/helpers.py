"""Helpers shared by the black-box API tests: the envhub process, the Docker engine
over its unix socket, the catalog (read-only) and the shapes of POST /execute.

The tests talk only to 127.0.0.1 and to the engine's unix socket."""

import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse

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


def docker_api(method, path, timeout=10):
    """One Engine API call; returns (status, parsed JSON body or raw text or None)."""
    conn = UnixHTTPConnection(docker_socket_path(), timeout=timeout)
    try:
        conn.request(method, path, headers={"Host": "docker"})
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

    def __init__(self, binary, run_id, extra_args=(), env=None):
        self.binary = binary
        self.run_id = run_id
        self.label = f"envhub.test={run_id}"
        self.extra_args = list(extra_args)
        self.tmpdir = tempfile.mkdtemp(prefix="envhub-api-")
        self.db_path = os.path.join(self.tmpdir, "envhub.db")
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
        return f"http://127.0.0.1:{self.port}"

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
                r = requests.get(f"{self.url}/health", timeout=2)
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
