#!/usr/bin/env python3
"""make bench-hostile: envhub under slow and heavy clients, beside itself idle, in one run.

One server (default settings but a shorter request deadline, printed) is measured twice:
  idle:     GET /health (sequential, HEALTH_N requests) and POST /execute print('hi')
            (sequential, EXEC_N requests) from 127.0.0.1;
  attacked: the same, while TRICKLERS connections (spread over 20 client addresses,
            127.0.2.x, fewer than ENVHUB_MAX_CONNECTIONS_PER_CLIENT each) send a POST
            /execute body of 100 kB one byte a second, reconnecting when cut, and UPLOADERS
            clients (one address each, 127.0.3.x) each send 50 MB POST /execute bodies
            back to back (a valid request: print(1) and 50 strings of 1 MB).
Printed: /health p50/p99 and /execute p50 idle and attacked with their ratios, what the
attackers got (408 cuts, 503 refusals of bodies past ENVHUB_BODY_MEMORY, accepted
uploads), and the server's RSS idle and at its peak (VmHWM). Only 127.0.0.0/8 and the
engine's socket are used. Exit status 0 unless something broke.

Environment: ENVHUB_BIN, HOSTILE_SECONDS (attack length, default 45), TRICKLERS (200),
UPLOADERS (60), HEALTH_N (300), EXEC_N (20)."""

import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import BenchError  # noqa: E402

BIN = os.path.abspath(os.environ.get("ENVHUB_BIN", "build/envhub"))
SECONDS = float(os.environ.get("HOSTILE_SECONDS", "45"))
TRICKLERS = int(os.environ.get("TRICKLERS", "200"))
UPLOADERS = int(os.environ.get("UPLOADERS", "60"))
HEALTH_N = int(os.environ.get("HEALTH_N", "300"))
EXEC_N = int(os.environ.get("EXEC_N", "20"))
DEADLINE_S = 15
RUN_ID = "bench-" + secrets.token_hex(4)
MB = 1 << 20


class Attack:
    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts = {}
        self.threads = []
        pad = json.dumps(["x" * MB] * 50)
        self.upload = json.dumps({"code": "print(1)", "pad": "@"}).replace('"@"', pad).encode()

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def head(self, length):
        return (f"POST /execute HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()

    def trickle(self, addr):
        while not self.stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5,
                                             source_address=(addr, 0))
            except OSError:
                self.count("trickle: connect failed")
                time.sleep(1)
                continue
            try:
                s.sendall(self.head(100000))
                s.settimeout(1.0)
                while not self.stop.is_set():
                    s.sendall(b" ")
                    try:
                        data = s.recv(4096)
                    except socket.timeout:
                        continue
                    status = data[9:12].decode(errors="replace") if data else "closed"
                    self.count(f"trickle: {status}")
                    break
            except OSError:
                self.count("trickle: reset")
            finally:
                s.close()

    def upload_loop(self, addr):
        while not self.stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=120,
                                             source_address=(addr, 0))
                s.sendall(self.head(len(self.upload)))
                s.settimeout(0.05)
                refused = b""
                try:
                    refused = s.recv(4096)  # a refusal comes before the body is taken
                except socket.timeout:
                    pass
                if refused:
                    self.count(f"upload: {refused[9:12].decode(errors='replace')}")
                    s.close()
                    time.sleep(1)  # Retry-After
                    continue
                s.settimeout(120)
                s.sendall(self.upload)
                data = s.recv(4096)
                self.count(f"upload: {data[9:12].decode(errors='replace') if data else 'closed'}")
                s.close()
            except OSError as e:
                self.count(f"upload: {e.__class__.__name__}")
                time.sleep(0.5)

    def start(self):
        for i in range(TRICKLERS):
            addr = f"127.0.2.{1 + i % 20}"
            self.threads.append(threading.Thread(target=self.trickle, args=(addr,), daemon=True))
        for i in range(UPLOADERS):
            addr = f"127.0.3.{1 + i}"
            self.threads.append(threading.Thread(target=self.upload_loop, args=(addr,), daemon=True))
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=130)


def rss_mb(server, key):
    return server.status_kb(key) / 1024.0


def main():
    tmp = tempfile.mkdtemp(prefix="envhub-bench-hostile-")
    flags = ["--request-deadline", str(DEADLINE_S)]
    server = bl.Server(BIN, RUN_ID, "hostile", flags, tmp)
    ok = False
    try:
        server.start()
        print(f"envhub {' '.join(flags)} (other settings default: ENVHUB_MAX_BODY 64m, "
              f"ENVHUB_BODY_MEMORY 256m, ENVHUB_MAX_CONNECTIONS_PER_CLIENT 32, threads derived)")
        print(f"attack: {TRICKLERS} trickling connections over 20 addresses, {UPLOADERS} "
              f"uploaders of 50 MB bodies, {SECONDS:.0f} s; measured: {HEALTH_N} x GET /health, "
              f"{EXEC_N} x POST /execute, sequential, from 127.0.0.1")
        bl.execute(server.port, "print('hi')", bl.check_hi)  # warm up
        idle_health, idle_exec = bl.measure_health_and_hi(server.port, HEALTH_N, EXEC_N)
        idle_rss = rss_mb(server, "VmRSS")

        attack = Attack(server.port)
        attack.start()
        time.sleep(3)  # let it take hold
        t0 = time.monotonic()
        hostile_health, hostile_exec = bl.measure_health_and_hi(server.port, HEALTH_N, EXEC_N)
        left = SECONDS - (time.monotonic() - t0)
        if left > 0:
            time.sleep(left)
        attack.finish()
        peak_rss = rss_mb(server, "VmHWM")
        health_after = bl.health_once(server.port)

        def row(name, idle, hostile, key):
            ratio = hostile[key] / idle[key] if idle[key] else float("nan")
            print(f"  {name:<28} {idle[key]:9.1f} ms {hostile[key]:11.1f} ms   x{ratio:.2f}")

        print("\n                               idle        attacked    ratio")
        row("GET /health p50", idle_health, hostile_health, "p50")
        row("GET /health p99", idle_health, hostile_health, "p99")
        row("POST /execute p50", idle_exec, hostile_exec, "p50")
        row("POST /execute p99", idle_exec, hostile_exec, "p99")
        print(f"\n  server RSS: idle {idle_rss:.0f} MB, peak (VmHWM) {peak_rss:.0f} MB")
        print(f"  GET /health after the attack: {health_after * 1000:.1f} ms")
        print("  what the attackers got:")
        for what, n in sorted(attack.counts.items()):
            print(f"    {what:<30} {n}")
        if server.proc.poll() is not None:
            raise BenchError("the server exited during the attack")
        ok = True
    finally:
        server.stop()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench-hostile: {e}", file=sys.stderr)
        sys.exit(1)
