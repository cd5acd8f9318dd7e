#!/usr/bin/env python3
"""make bench-session (also part of make bench): a stateful session (issue 14, item 3),
every figure measured in this run.

One server with default settings (agent transport): a session whose first call defines
`total = 0`, then BENCH_SESSION_CALLS calls of `total += 1` + `total`, each answer's
`result` checked against the count; p50/p95 per call. Beside it, the same calls in a
session of a server by exec (each call a process of its own: the variable cannot persist,
so its calls print a constant) for the cost of a call without the kept interpreter.

Environment: ENVHUB_BIN, BENCH_SESSION_CALLS (default 100)."""

import os
import secrets
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import BenchError  # noqa: E402

BIN = os.path.abspath(os.environ.get("ENVHUB_BIN", "build/envhub"))
CALLS = int(os.environ.get("BENCH_SESSION_CALLS", "100"))
RUN_ID = "bench-session-" + secrets.token_hex(4)


def note(msg):
    print(f"[bench-session] {msg}", file=sys.stderr, flush=True)


def session_call(port, sid, code):
    t0 = time.perf_counter()
    status, answer = bl.api(port, "POST", f"/sessions/{sid}/execute", {"code": code, "timeout": 30})
    elapsed = time.perf_counter() - t0
    if status != 200 or not isinstance(answer, dict) or not answer.get("success"):
        raise BenchError(f"session call answered {status}: {str(answer)[:400]}")
    return elapsed, answer


def run(server, stateful):
    port = server.port
    status, s = bl.api(port, "POST", "/sessions", {})
    if status != 201 or s.get("stateful") is not stateful:
        raise BenchError(f"POST /sessions answered {status}: {s}")
    sid = s["id"]
    lat = []
    try:
        session_call(port, sid, "total = 0")
        for k in range(1, CALLS + 1):
            if stateful:
                elapsed, answer = session_call(port, sid, "total += 1\ntotal")
                if answer.get("result") != str(k):
                    raise BenchError(f"call {k}: result {answer.get('result')!r}, expected {k!r}")
            else:
                elapsed, answer = session_call(port, sid, "print(1)")
                if answer.get("stdout") != "1\n":
                    raise BenchError(f"call {k}: stdout {answer.get('stdout')!r}")
            lat.append(elapsed)
    finally:
        bl.api(port, "DELETE", f"/sessions/{sid}")
    return lat


def main():
    engine = bl.Engine()
    if not engine.ping():
        sys.exit(f"bench-session: no Docker engine answers on {engine.path} (make engine)")
    tmp = tempfile.mkdtemp(prefix="envhub-bench-session-")
    binary = os.path.join(tmp, "envhub")
    shutil.copy2(BIN, binary)
    servers = []
    try:
        rows = []
        for name, flags, stateful in (("agent", [], True), ("exec", ["--job-transport", "exec"], False)):
            s = bl.Server(binary, RUN_ID, name, flags, tmp)
            servers.append(s)
            s.start()
            bl.wait_quiet(s, engine)
            note(f"{name}: one session, {CALLS} calls")
            lat = run(s, stateful)
            rows.append((name, stateful, bl.summarize(lat)))
            s.stop()
        print()
        print(f"one session, {CALLS} sequential calls, default settings   {'p50 ms':>8} {'p95 ms':>8}")
        for name, stateful, st in rows:
            what = "agent: total += 1; total (all results right)" if stateful else "exec: print(1), no state kept"
            print(f"  {what:<52} {st['p50']:8.1f} {st['p95']:8.1f}")
        print(f"  stateful p50 / exec-session p50 = {rows[0][2]['p50'] / rows[1][2]['p50']:.2f}x")
        return 0
    except BenchError as e:
        print(f"bench-session: {e}", file=sys.stderr)
        for s in servers:
            print(f"--- {s.name}\n{s.log_tail()}", file=sys.stderr)
        return 1
    finally:
        for s in servers:
            s.stop()
        engine.remove_labelled(f"envhub.test={RUN_ID}")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
