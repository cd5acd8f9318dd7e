"""Pieces of `make bench` (tests/bench/bench_execute.py): statistics, a Docker Engine
API client on the unix socket, envhub server processes, an HTTP client for envhub,
/metrics, closed- and open-loop load generators.

Debian's python3 and its standard library only. Traffic goes to 127.0.0.1 (the
envhub servers this bench starts) and to the engine's unix socket, nothing else."""

import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import threading
import time
import urllib.parse

API = "/v1.41"  # Docker 20.10's API version; the engine answers newer clients' paths too


class BenchError(Exception):
    """Something broke (a failed request, a wrong answer): the bench exits 1."""


# ---------------------------------------------------------------- statistics

def percentile(sorted_values, q):
    """Linear interpolation between closest ranks (q in 0..1) of an ascending list."""
    if not sorted_values:
        return float("nan")
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(latencies_s):
    ms = sorted(x * 1000.0 for x in latencies_s)
    return {
        "n": len(ms),
        "p50": statistics.median(ms) if ms else float("nan"),
        "p95": percentile(ms, 0.95),
        "p99": percentile(ms, 0.99),
        "mean": statistics.fmean(ms) if ms else float("nan"),
    }


# ---------------------------------------------------------------- Docker engine

def docker_socket_path():
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://"):]
    return "/var/run/docker.sock"


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX socket (the Docker engine API)."""

    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def demux(raw):
    """The engine's multiplexed stream (8-byte frame headers) -> (stdout, stderr) bytes."""
    out, err = bytearray(), bytearray()
    i = 0
    while i + 8 <= len(raw):
        kind = raw[i]
        size = int.from_bytes(raw[i + 4:i + 8], "big")
        chunk = raw[i + 8:i + 8 + size]
        i += 8 + size
        (err if kind == 2 else out).extend(chunk)
    return bytes(out), bytes(err)


def sandbox_spec(image, labels, memory=512 << 20):
    """A container made like envhub's sandbox (executor/executor.c exec_container_spec):
    sleeping, uid 1000, no network, read-only root, tmpfs workspace and /tmp, limits."""
    return {
        "Image": image,
        "Entrypoint": ["sleep"],
        "Cmd": ["infinity"],
        "Env": ["HOME=/tmp", "LANG=C.UTF-8"],
        "User": "1000:1000",
        "WorkingDir": "/workspace",
        "Labels": labels,
        "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
        "Tty": False, "OpenStdin": False,
        "NetworkDisabled": True,
        "HostConfig": {
            "Memory": memory,
            "MemorySwap": memory,
            "NanoCpus": 1000000000,
            "PidsLimit": 128,
            "ShmSize": 4 << 20,
            "NetworkMode": "none",
            "ReadonlyRootfs": True,
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "LogConfig": {"Type": "none", "Config": {}},
            "Tmpfs": {
                "/workspace": "rw,nosuid,nodev,size=134217728,nr_inodes=8192,uid=1000,gid=1000,mode=0755",
                "/tmp": "rw,nosuid,nodev,size=67108864,nr_inodes=8192,mode=1777",
            },
            "AutoRemove": False,
        },
    }


class Engine:
    """The Engine API on the unix socket; one kept-alive connection per thread (as envhub
    keeps its own), a fresh one for each exec start (the raw stream ends the connection)."""

    def __init__(self, path=None):
        self.path = path or docker_socket_path()
        self._local = threading.local()

    def _connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = UnixHTTPConnection(self.path)
            self._local.conn = conn
        return conn

    def _drop_connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def call(self, method, path, body=None, ok=(200, 201, 204), timeout=60):
        """One API call; returns the parsed JSON answer (or None); raises BenchError on a
        status outside `ok`."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Host": "docker"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            conn = self._connection()
            conn.timeout = timeout
            reused = conn.sock is not None
            try:
                conn.request(method, API + path, data, headers)
                resp = conn.getresponse()
                raw = resp.read()
                if resp.will_close:
                    self._drop_connection()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop_connection()
                if attempt or not reused:  # an idle kept-alive socket may have been closed
                    raise
            except Exception:
                self._drop_connection()
                raise
        if resp.status not in ok:
            raise BenchError(f"engine: {method} {path} answered {resp.status}: {raw[:300]!r}")
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    def ping(self):
        try:
            return self.call("GET", "/_ping", timeout=5) is not None
        except (OSError, BenchError):
            return False

    def image_exists(self, ref):
        try:
            self.call("GET", f"/images/{urllib.parse.quote(ref, safe='')}/json")
            return True
        except BenchError:
            return False

    def create_sandbox(self, image, labels):
        return self.call("POST", "/containers/create", sandbox_spec(image, labels))["Id"]

    def start(self, cid):
        self.call("POST", f"/containers/{cid}/start")

    def remove(self, cid):
        self.call("DELETE", f"/containers/{cid}?force=1", ok=(204, 404), timeout=60)

    def exec_run(self, cid, cmd, timeout=60):
        """Create an exec, start it (non-hijacked; the raw stream to its end), inspect it:
        (exit code, stdout, stderr)."""
        eid = self.call("POST", f"/containers/{cid}/exec", {
            "AttachStdin": False, "AttachStdout": True, "AttachStderr": True, "Tty": False,
            "Cmd": cmd, "User": "1000:1000", "WorkingDir": "/workspace"})["Id"]
        conn = UnixHTTPConnection(self.path, timeout=timeout)
        try:
            conn.request("POST", f"{API}/exec/{eid}/start", b'{"Detach":false,"Tty":false}',
                         {"Host": "docker", "Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise BenchError(f"engine: exec start answered {resp.status}: {raw[:300]!r}")
        out, err = demux(raw)
        info = self.call("GET", f"/exec/{eid}/json")
        return info.get("ExitCode"), out, err

    def fresh_job(self, image, labels, cmd):
        """The raw sequence of a fresh container per job: create (NetworkDisabled), start,
        exec, remove with force. Returns stdout."""
        cid = self.create_sandbox(image, labels)
        try:
            self.start(cid)
            code, out, err = self.exec_run(cid, cmd)
        finally:
            self.remove(cid)
        if code != 0:
            raise BenchError(f"engine: the job exited {code}: {err[:300]!r}")
        return out

    def containers(self, label):
        filters = urllib.parse.quote(json.dumps({"label": [label]}))
        return self.call("GET", f"/containers/json?all=1&filters={filters}")

    def remove_labelled(self, label):
        n = 0
        for c in self.containers(label):
            try:
                self.remove(c["Id"])
                n += 1
            except (OSError, BenchError):
                pass
        return n

    def remove_labelled_images(self, label):
        filters = urllib.parse.quote(json.dumps({"label": [label]}))
        n = 0
        for image in self.call("GET", f"/images/json?filters={filters}") or []:
            try:
                self.call("DELETE", f"/images/{image['Id']}?force=1", ok=(200, 404, 409), timeout=120)
                n += 1
            except (OSError, BenchError):
                pass
        return n

    def remove_image(self, ref):
        """Without force: an image something still uses stays."""
        try:
            self.call("DELETE", f"/images/{ref}", ok=(200, 404, 409), timeout=120)
        except (OSError, BenchError):
            pass


# ---------------------------------------------------------------- envhub

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env():
    """Our environment minus every setting the server reads: its flags alone decide."""
    drop = {"SANDBOX_TIMEOUT", "MAX_CODE_LENGTH", "MAX_FILE_SIZE", "DOCKER_IMAGE", "MEMORY_LIMIT",
            "CPU_LIMIT", "NETWORK_MODE", "WORK_DIR", "CONCURRENT_LIMIT"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("ENVHUB_")}


CLK_TCK = os.sysconf("SC_CLK_TCK")


class Server:
    """One `envhub serve` on 127.0.0.1:<free port> with a catalog of its own; every
    container it makes carries envhub.test=<run id> and envhub.bench=<run id>-<name>."""

    def __init__(self, binary, run_id, name, flags, tmpdir):
        self.binary = binary
        self.name = name
        self.flags = list(flags)
        self.label = f"envhub.bench={run_id}-{name}"
        self.labels = f"envhub.test={run_id},{self.label}"
        self.db = os.path.join(tmpdir, f"{name}.db")
        self.log_path = os.path.join(tmpdir, f"{name}.log")
        self.proc = None
        self.port = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self, within=30):
        for _attempt in range(3):  # another process may take the free port in between
            self.port = free_port()
            args = [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--db", self.db,
                    "--labels", self.labels] + self.flags
            with open(self.log_path, "ab") as log:
                log.write(("$ " + " ".join(args) + "\n").encode())
                log.flush()
                self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             env=server_env(), start_new_session=True)
            deadline = time.monotonic() + within
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if http_call(self.port, "GET", "/health", timeout=2)[0] == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.1)
            self.stop()
            if "address" not in self.log_tail().lower():
                break
        raise BenchError(f"envhub ({self.name}) did not start:\n{self.log_tail()}")

    def stop(self, grace=30):
        """SIGTERM by PID, then SIGKILL after `grace` s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cpu_seconds(self):
        """utime + stime of the process (all its threads) and of its waited-for children."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is the state (field 3): utime is field 14, stime 15, cutime 16, cstime 17
        return sum(int(x) for x in fields[11:15]) / CLK_TCK

    def status_kb(self, key):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise KeyError(key)


def http_call(port, method, path, body=None, timeout=60):
    """(status, raw body) of one request to envhub on a connection of its own."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, data, headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def api(port, method, path, body=None, timeout=60):
    status, raw = http_call(port, method, path, body, timeout)
    try:
        return status, (json.loads(raw) if raw else None)
    except ValueError:
        return status, raw.decode(errors="replace")


def check_hi(answer):
    """The check of print('hi') for execute(): None when right, else what was wrong."""
    return None if answer.get("stdout") == "hi\n" else f"stdout {answer.get('stdout')!r}, expected 'hi\\n'"


def health_once(port):
    """Seconds of one GET /health; raises BenchError unless it answers 200."""
    t0 = time.perf_counter()
    status, raw = http_call(port, "GET", "/health", timeout=120)
    if status != 200:
        raise BenchError(f"GET /health answered {status}: {raw[:200]!r}")
    return time.perf_counter() - t0


def measure_health_and_hi(port, health_n, exec_n):
    """summarize() of `health_n` sequential GET /health and of `exec_n` print('hi')."""
    health = [health_once(port) for _ in range(health_n)]
    execs = [execute(port, "print('hi')", check_hi) for _ in range(exec_n)]
    return summarize(health), summarize(execs)


def execute(port, code, check, environment=None, timeout_s=30):
    """POST /execute; `check(answer)` names what is wrong or returns None. Returns the
    seconds from sending to the whole answer read; raises BenchError on a failure."""
    body = {"code": code, "timeout": timeout_s}
    if environment:
        body["environment"] = environment
    t0 = time.perf_counter()
    status, raw = http_call(port, "POST", "/execute", body, timeout=timeout_s + 60)
    elapsed = time.perf_counter() - t0
    try:
        answer = json.loads(raw)
    except ValueError:
        raise BenchError(f"POST /execute answered {status} with no JSON: {raw[:300]!r}")
    if status != 200 or not answer.get("success"):
        raise BenchError(f"POST /execute answered {status}: {str(answer)[:400]}")
    problem = check(answer)
    if problem:
        raise BenchError(f"POST /execute: {problem}")
    return elapsed


_METRIC_RE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})?\s+(\S+)$")
_LABEL_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metrics(port):
    """GET /metrics -> [(name, {label: value}, float)]."""
    status, raw = http_call(port, "GET", "/metrics", timeout=10)
    if status != 200:
        raise BenchError(f"GET /metrics answered {status}")
    out = []
    for line in raw.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC_RE.match(line)
        if m:
            labels = dict(_LABEL_RE.findall(m.group(2) or ""))
            try:
                out.append((m.group(1), labels, float(m.group(3))))
            except ValueError:
                pass
    return out


def pool_numbers(port, environment=None):
    """{ready, target, hits, misses} summed over the pools of `environment` ("" is the
    default image; None: every pool)."""
    names = {"envhub_pool_ready": "ready", "envhub_pool_target": "target",
             "envhub_pool_hits_total": "hits", "envhub_pool_misses_total": "misses"}
    out = dict.fromkeys(names.values(), 0)
    for name, labels, value in metrics(port):
        if name in names and (environment is None or labels.get("environment") == environment):
            out[names[name]] += int(value)
    return out


def wait_quiet(server, engine, within=60.0):
    """Until the server's pools are full and nothing else of it lives in the engine (its
    removals done, its replacements started): as many containers as its pools hold ready,
    all running, at least their targets. Polls the engine, and /metrics only to confirm,
    so that the server's CPU is hardly touched while it settles. Returns the seconds
    waited, or None when it did not settle within `within`."""
    t0 = time.monotonic()
    target = pool_numbers(server.port)["target"]
    while time.monotonic() - t0 < within:
        cs = engine.containers(server.label)
        if len(cs) >= target and all(c.get("State") == "running" for c in cs):
            pools = pool_numbers(server.port)
            if pools["ready"] == len(cs) and pools["ready"] >= pools["target"]:
                return time.monotonic() - t0
            time.sleep(0.2)
        time.sleep(0.1)
    return None


# ---------------------------------------------------------------- load

class Load:
    """The outcome of one load run: latencies (s), wall time (s), failures."""

    def __init__(self):
        self.latencies = []
        self.errors = []
        self.wall = 0.0
        self.lock = threading.Lock()

    def add(self, seconds):
        with self.lock:
            self.latencies.append(seconds)

    def fail(self, e):
        with self.lock:
            self.errors.append(f"{e.__class__.__name__}: {e}")

    @property
    def jobs(self):
        return len(self.latencies)

    @property
    def rate(self):
        return self.jobs / self.wall if self.wall > 0 else float("nan")


def closed_loop(job, concurrency, per_client):
    """`concurrency` clients, each sending its next job when the previous one answered,
    `per_client` jobs each. job(client) -> seconds. Wall time: from the common start to
    the last answer."""
    load = Load()
    barrier = threading.Barrier(concurrency + 1)
    ends = [0.0] * concurrency

    def client(i):
        barrier.wait()
        for _ in range(per_client):
            try:
                load.add(job(i))
            except Exception as e:  # noqa: BLE001 - counted and reported
                load.fail(e)
        ends[i] = time.perf_counter()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    load.wall = max(ends) - t0
    return load


def open_loop(job, concurrency, per_client, period=1.0, side_job=None, side_offset=0.5):
    """Each client sends one job every `period` s (clients staggered by period/concurrency),
    whatever the answers' times; `side_job`, when given, runs `side_offset` s after each job
    (a baseline measured in the same seconds). Returns (load of job, load of side_job)."""
    main, side = Load(), Load()
    t0 = time.perf_counter() + 0.2

    def wait_until(t):
        delay = t - time.perf_counter()
        if delay > 0:
            time.sleep(delay)

    def client(i):
        start = t0 + i * period / concurrency
        for k in range(per_client):
            wait_until(start + k * period)
            try:
                main.add(job(i))
            except Exception as e:  # noqa: BLE001
                main.fail(e)
            if side_job is not None:
                wait_until(start + k * period + side_offset)
                try:
                    side.add(side_job(i))
                except Exception as e:  # noqa: BLE001
                    side.fail(e)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    main.wall = side.wall = time.perf_counter() - t0
    return main, side
