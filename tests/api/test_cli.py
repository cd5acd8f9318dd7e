"""The `envhub` command line client (issue 3): the real binary's `env create --wait`, `env
list`, `env show`, `env logs [-f]`, `env rebuild`, `env rm` and `run`, against a real server
(ENVHUB_URL), their output and their exit status; and what they say when the server refuses.

The tests of this module share one environment, created by the first through the CLI and
removed by the last; they run in file order."""

import json
import re
import subprocess
import time

import pytest
import requests

from helpers import (DEFAULT_IMAGE, build_log, free_port, get_env, note_step_images, server_env,
                     wait_env)

# The environment's one-line setup script: it leaves a marker a job can read back.
MARKER_PATH = "/opt/envhub-cli-marker"


def cli(binary, url, *args, timeout=180, stdin=None):
    """`envhub ARGS...` with ENVHUB_URL=url -> CompletedProcess (text)."""
    env = server_env()
    env["ENVHUB_URL"] = url
    return subprocess.run([binary] + [str(a) for a in args], env=env, input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def explain(p):
    return f"exit {p.returncode}\n--- stdout ---\n{p.stdout[-4000:]}\n--- stderr ---\n{p.stderr[-4000:]}"


@pytest.fixture(scope="module")
def ctx(envhub, envhub_bin, run_id, tmp_path_factory):
    """The module's shared state: the server, the binary, a work dir and the names."""
    work = tmp_path_factory.mktemp("cli")

    class Ctx:
        server = envhub
        binary = envhub_bin
        dir = work
        name = f"cli-{run_id}"
        marker = f"ok-{run_id}"

        def run(self, *args, **kw):
            return cli(envhub_bin, envhub.url, *args, **kw)

        def write(self, filename, text):
            path = work / filename
            path.write_text(text)
            return str(path)

    c = Ctx()
    yield c
    # whatever a failed test left behind
    requests.delete(f"{envhub.url}/environments/{c.name}", timeout=60)


# ---------------------------------------------------------------- env create --wait

def test_env_create_wait_streams_the_build_log_and_exits_0_when_ready(ctx):
    script = ctx.write("setup.sh", f"echo {ctx.marker} | tee {MARKER_PATH}\n")
    t0 = time.monotonic()
    p = ctx.run("env", "create", ctx.name, script, "--description", "made by the CLI test", "--wait")
    took = time.monotonic() - t0
    assert p.returncode == 0, explain(p)
    note_step_images(p.stdout)
    lines = p.stdout.splitlines()
    # what the create answered, then the log as it was written, then the final status
    assert re.fullmatch(rf"envhub: '{ctx.name}' created, building envhub-env/{ctx.name}-[0-9a-f]{{8}}:v1",
                        lines[0]), explain(p)
    assert lines[-1] == f"envhub: '{ctx.name}' build ready", explain(p)
    assert ctx.marker in lines, f"the script's output is not among the streamed lines:\n{explain(p)}"
    assert any(line.startswith(f"envhub: build of '{ctx.name}' version 1 started") for line in lines), explain(p)
    assert any(line.startswith("envhub: version 1 is ready") for line in lines), explain(p)
    # what it streamed is the stored log, line for line
    stored = build_log(ctx.server, ctx.name, 1).splitlines()
    assert lines[1:-1] == stored, f"streamed:\n{lines[1:-1][-20:]}\nstored:\n{stored[-20:]}"

    env = get_env(ctx.server, ctx.name)
    assert env["status"] == "ready" and env["version"] == 1, env
    assert env["description"] == "made by the CLI test"
    assert env["base_image"] == DEFAULT_IMAGE
    assert env["setup_script"] == f"echo {ctx.marker} | tee {MARKER_PATH}\n"
    assert took < 120, f"env create --wait took {took:.1f} s"


def test_env_create_of_an_existing_name_exits_1_with_the_servers_message(ctx):
    script = ctx.write("again.sh", "echo again\n")
    p = ctx.run("env", "create", ctx.name, script)
    assert p.returncode == 1, explain(p)
    assert f"环境 '{ctx.name}' 已存在" in p.stderr and "HTTP 400" in p.stderr, explain(p)
    assert p.stdout == "", explain(p)
    assert get_env(ctx.server, ctx.name)["version"] == 1


# ---------------------------------------------------------------- env list / show / logs

def test_env_list_shows_the_environment_in_a_row(ctx):
    p = ctx.run("env", "list")
    assert p.returncode == 0, explain(p)
    lines = p.stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "STATUS", "VER", "LIFECYCLE"], explain(p)
    rows = [line for line in lines[1:] if line.split()[:1] == [ctx.name]]
    assert len(rows) == 1, explain(p)
    fields = rows[0].split()
    assert fields[1] == "ready" and fields[2] == "1", rows[0]
    assert DEFAULT_IMAGE in fields, rows[0]
    assert rows[0].endswith("made by the CLI test"), rows[0]
    # every environment of the server is listed, no more
    listed = {line.split()[0] for line in lines[1:] if line.strip()}
    api = {e["name"] for e in requests.get(f"{ctx.server.url}/environments", timeout=30).json()["environments"]}
    assert listed == api, (listed, api)


def test_env_show_prints_the_environment_as_json(ctx):
    p = ctx.run("env", "show", ctx.name)
    assert p.returncode == 0, explain(p)
    shown = json.loads(p.stdout)
    api = get_env(ctx.server, ctx.name)
    for key in ("name", "status", "version", "image_id", "docker_image", "base_image", "setup_script",
                "description", "python_version"):
        assert shown[key] == api[key], (key, shown[key], api[key])
    assert shown["name"] == ctx.name and shown["status"] == "ready" and shown["version"] == 1


def test_env_logs_prints_the_stored_log_of_the_newest_build(ctx):
    p = ctx.run("env", "logs", ctx.name)
    assert p.returncode == 0, explain(p)
    assert p.stdout == build_log(ctx.server, ctx.name), explain(p)
    assert ctx.marker in p.stdout.splitlines(), explain(p)
    assert "envhub: version 1 is ready" in p.stdout, explain(p)


def test_env_logs_follow_of_a_finished_build_replays_it_and_exits_0(ctx):
    p = ctx.run("env", "logs", ctx.name, "-f", timeout=60)
    assert p.returncode == 0, explain(p)
    lines = p.stdout.splitlines()
    assert lines[-1] == f"envhub: '{ctx.name}' build ready", explain(p)
    assert lines[:-1] == build_log(ctx.server, ctx.name).splitlines(), explain(p)


# ---------------------------------------------------------------- run

def test_run_prints_stdout_and_stderr_and_exits_with_the_jobs_code(ctx):
    code = ctx.write("exit3.py", "import sys\n"
                                 "print('hello from the cli')\n"
                                 f"print(open({MARKER_PATH!r}).read().strip())\n"
                                 "print('to stderr', file=sys.stderr)\n"
                                 "sys.exit(3)\n")
    p = ctx.run("run", "--env", ctx.name, code)
    assert p.returncode == 3, explain(p)
    assert p.stdout == f"hello from the cli\n{ctx.marker}\n", explain(p)
    assert p.stderr.startswith("to stderr\n"), explain(p)
    # the environment was used
    assert get_env(ctx.server, ctx.name)["last_used"] is not None


def test_run_of_a_succeeding_job_exits_0_and_round_trips_files(ctx):
    data = ctx.write("data.txt", "abc\n")
    out_dir = ctx.dir / "out"
    out_dir.mkdir()
    code = ctx.write("upper.py", "text = open('data.txt').read()\n"
                                 "open('result.txt', 'w').write(text.upper())\n"
                                 "print(len(text))\n")
    p = ctx.run("run", "--file", data, "--out", str(out_dir), code)
    assert p.returncode == 0, explain(p)
    assert p.stdout == "4\n", explain(p)
    assert (out_dir / "result.txt").read_text() == "ABC\n"


def test_run_reads_the_code_from_stdin_and_reports_a_crash(ctx):
    p = ctx.run("run", "-", stdin="raise SystemExit(7)\n")
    assert p.returncode == 7, explain(p)
    p = ctx.run("run", "-", stdin="1/0\n")
    assert p.returncode == 1, explain(p)
    assert "ZeroDivisionError" in p.stderr, explain(p)


def test_run_timeout_is_runs_own_option_and_a_timeout_exits_124(ctx):
    """`run --timeout` is the job's timeout (run's own option, not the server's SANDBOX_TIMEOUT
    setting that happens to share the name)."""
    t0 = time.monotonic()
    p = ctx.run("run", "--timeout", "1", "-", stdin="import time\nprint('start', flush=True)\ntime.sleep(30)\n")
    assert p.returncode == 124, explain(p)
    assert time.monotonic() - t0 < 25, explain(p)
    p = ctx.run("run", "--timeout", "soon", "-", stdin="print(1)\n", timeout=30)
    assert p.returncode == 2 and "--timeout 'soon'" in p.stderr, explain(p)


# ---------------------------------------------------------------- env rebuild

def test_env_rebuild_with_a_new_script_builds_version_2(ctx):
    script = ctx.write("setup2.sh", f"echo v2-{ctx.marker} | tee {MARKER_PATH}\n")
    p = ctx.run("env", "rebuild", ctx.name, script, "--wait")
    assert p.returncode == 0, explain(p)
    note_step_images(p.stdout)
    lines = p.stdout.splitlines()
    assert lines[0] == f"envhub: '{ctx.name}' version 2 queued", explain(p)
    assert lines[-1] == f"envhub: '{ctx.name}' build ready", explain(p)
    assert f"v2-{ctx.marker}" in lines, explain(p)
    env = get_env(ctx.server, ctx.name)
    assert env["version"] == 2 and env["status"] == "ready", env
    p = ctx.run("run", "--env", ctx.name, ctx.write("marker.py", f"print(open({MARKER_PATH!r}).read())"))
    assert p.returncode == 0 and p.stdout == f"v2-{ctx.marker}\n\n", explain(p)


def test_env_rebuild_then_logs_follow_streams_the_build_to_its_end(ctx):
    """Rebuild without --wait, then follow: each line is printed when the build writes it
    (not when the stream ends), and the follow ends with the final status."""
    script = ctx.write("setup3.sh", f"echo v3-begin-{ctx.marker}; sleep 4; echo v3-end-{ctx.marker}\n")
    p = ctx.run("env", "rebuild", ctx.name, script)
    assert p.returncode == 0, explain(p)
    assert p.stdout == f"envhub: '{ctx.name}' version 3 queued\n", explain(p)
    follow = subprocess.Popen([ctx.binary, "env", "logs", ctx.name, "-f"],
                              env=dict(server_env(), ENVHUB_URL=ctx.server.url), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    arrived = {}  # line -> (seconds after the follow started, the build's status then)
    lines = []
    t0 = time.monotonic()
    try:
        for line in follow.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            if line in (f"v3-begin-{ctx.marker}", f"v3-end-{ctx.marker}"):
                arrived[line] = (time.monotonic() - t0, get_env(ctx.server, ctx.name)["latest_build"]["status"])
        rc = follow.wait(timeout=120)
        stderr = follow.stderr.read()
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    note_step_images("\n".join(lines))
    assert rc == 0, f"exit {rc}: {lines[-20:]} {stderr}"
    assert lines[-1] == f"envhub: '{ctx.name}' build ready", lines[-10:]
    assert lines[:-1] == build_log(ctx.server, ctx.name, 3).splitlines(), lines[-20:]
    assert get_env(ctx.server, ctx.name)["version"] == 3
    begin, end = arrived[f"v3-begin-{ctx.marker}"], arrived[f"v3-end-{ctx.marker}"]
    # the script sleeps 4 s between its two lines: printed live, they arrive seconds apart,
    # the first while the build still runs
    assert end[0] - begin[0] >= 2.5 and begin[1] == "building", \
        f"`env logs -f` printed the build's lines only later, not as they were written: " \
        f"begin at {begin[0]:.2f} s (build {begin[1]}), end at {end[0]:.2f} s (build {end[1]})"


def test_env_rebuild_that_fails_exits_1_and_version_n_keeps_serving(ctx):
    script = ctx.write("broken.sh", "echo broken-start\nfalse\n")
    p = ctx.run("env", "rebuild", ctx.name, script, "--wait")
    note_step_images(p.stdout)
    assert p.returncode == 1, explain(p)
    lines = p.stdout.splitlines()
    assert lines[0] == f"envhub: '{ctx.name}' version 4 queued", explain(p)
    assert lines[-1] == f"envhub: '{ctx.name}' build failed", explain(p)
    assert any("setup.sh failed at line 2: false" in line for line in lines), explain(p)
    env = get_env(ctx.server, ctx.name)
    assert env["status"] == "ready" and env["version"] == 3, env
    assert "setup.sh failed at line 2" in (env["error"] or ""), env
    # `env logs` without -f shows the failed (newest) build
    p = ctx.run("env", "logs", ctx.name)
    assert p.returncode == 0 and "envhub: build failed: setup.sh failed at line 2: false" in p.stdout, explain(p)


# ---------------------------------------------------------------- env rm

def test_env_rm_deletes_it_and_later_commands_name_it_as_unknown(ctx):
    p = ctx.run("env", "rm", ctx.name)
    assert p.returncode == 0, explain(p)
    assert p.stdout == f"环境 '{ctx.name}' 已删除\n", explain(p)
    r = requests.get(f"{ctx.server.url}/environments/{ctx.name}", timeout=30)
    assert r.status_code == 404, r.text
    p = ctx.run("env", "show", ctx.name)
    assert p.returncode == 1, explain(p)
    assert f"环境 '{ctx.name}' 不存在" in p.stderr and "HTTP 404" in p.stderr, explain(p)
    p = ctx.run("env", "rm", ctx.name)
    assert p.returncode == 1 and f"'{ctx.name}'" in p.stderr, explain(p)


# ---------------------------------------------------------------- errors

def test_unknown_environment_exits_non_zero_with_a_message_naming_it(ctx, run_id):
    name = f"nosuch-{run_id}"
    code = ctx.write("hello.py", "print('never')\n")
    for args in (("env", "show", name), ("env", "logs", name), ("env", "logs", name, "-f"),
                 ("env", "rm", name), ("env", "rebuild", name), ("run", "--env", name, code)):
        p = ctx.run(*args, timeout=60)
        assert p.returncode != 0, f"{args}: {explain(p)}"
        assert p.returncode in (1, 2), f"{args}: {explain(p)}"
        assert name in p.stderr, f"{args}: the message does not name {name!r}: {explain(p)}"
        assert "never" not in p.stdout, f"{args}: {explain(p)}"


def test_failing_create_wait_exits_1_with_the_failing_line(ctx, run_id):
    name = f"cli-bad-{run_id}"
    script = ctx.write("bad.sh", f"echo bad-{run_id}\nfalse\n")
    try:
        p = ctx.run("env", "create", name, script, "--wait")
        note_step_images(p.stdout)
        assert p.returncode == 1, explain(p)
        lines = p.stdout.splitlines()
        assert f"bad-{run_id}" in lines, explain(p)
        assert any("setup.sh failed at line 2: false" in line for line in lines), explain(p)
        assert lines[-1] == f"envhub: '{name}' build failed", explain(p)
        assert wait_env(ctx.server, name, until=("failed",), within=5)["error"]
    finally:
        requests.delete(f"{ctx.server.url}/environments/{name}", timeout=60)


def test_usage_errors_exit_2(ctx, run_id):
    for args in (("env",), ("env", "create", f"x-{run_id}"), ("env", "frobnicate", "x"),
                 ("run",), ("run", "--bogus", "x.py"), ("env", "create", f"x-{run_id}", "s.sh", "--bogus")):
        p = ctx.run(*args, timeout=30)
        assert p.returncode == 2, f"{args}: {explain(p)}"
        assert p.stderr.strip(), f"{args}: no message: {explain(p)}"
    r = requests.get(f"{ctx.server.url}/environments/x-{run_id}", timeout=30)
    assert r.status_code == 404, "a usage error created an environment"


def test_missing_script_or_code_file_exits_1_naming_the_file(ctx, run_id):
    missing = str(ctx.dir / "does-not-exist.sh")
    p = ctx.run("env", "create", f"nofile-{run_id}", missing)
    assert p.returncode == 1 and missing in p.stderr, explain(p)
    p = ctx.run("run", missing)
    assert p.returncode == 1 and missing in p.stderr, explain(p)


def test_unreachable_server_exits_1_saying_so(envhub_bin, tmp_path):
    code = tmp_path / "c.py"
    code.write_text("print(1)\n")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for args in (("env", "list"), ("run", str(code))):
        p = cli(envhub_bin, url, *args, timeout=60)
        assert p.returncode == 1, f"{args}: {explain(p)}"
        assert "cannot reach envhub" in p.stderr and url.split("//")[1] in p.stderr, f"{args}: {explain(p)}"


def test_bad_envhub_url_is_a_usage_error(envhub_bin):
    p = cli(envhub_bin, "https://127.0.0.1:1", "env", "list", timeout=30)
    assert p.returncode == 2 and "ENVHUB_URL" in p.stderr, explain(p)


# ---------------------------------------------------------------- options and help (issue 12)

# Every command and subcommand, with the options its --help must list (each on a line with its
# one-line description). -h/--help belongs to all of them.
COMMAND_OPTIONS = {
    (): ["--version"],
    ("serve",): [],
    ("migrate",): ["--db"],
    ("config",): [],
    ("image",): [],
    ("image", "exists"): ["--docker-host"],
    ("image", "import"): ["--docker-host"],
    ("key",): [],
    ("key", "create"): ["--name", "--role", "--max-concurrent", "--max-per-minute", "--db"],
    ("key", "list"): ["--db"],
    ("key", "revoke"): ["--db"],
    ("env",): [],
    ("env", "create"): ["--base", "--description", "--python", "--test", "--policy", "--wait", "--listen"],
    ("env", "list"): ["--listen"],
    ("env", "show"): ["--listen"],
    ("env", "logs"): ["-f, --follow", "--listen"],
    ("env", "rebuild"): ["--base", "--test", "--no-test", "--policy", "--wait", "--listen"],
    ("env", "rm"): ["--listen"],
    ("env", "diff"): ["--listen"],
    ("env", "check"): ["--listen"],
    ("env", "deprecate"): ["--replacement", "--listen"],
    ("env", "retire"): ["--replacement", "--listen"],
    ("env", "reinstate"): ["--listen"],
    ("packages",): ["--version", "--manager", "--current", "--listen"],
    ("run",): ["--env", "--file", "--out", "--timeout", "--listen"],
    ("history",): ["--env", "--env-version", "--status", "--principal", "--since", "--until",
                   "--code-sha256", "--q", "--limit", "--format", "--listen"],
    ("history", "show"): ["--format", "--listen"],
    ("history", "stats"): ["--group", "--env", "--env-version", "--status", "--principal", "--since",
                           "--until", "--code-sha256", "--q", "--format", "--listen"],
    ("history", "prune"): ["--before", "--db"],
    ("audit",): [],
    ("audit", "verify"): ["--format", "--db", "--listen"],
    ("version",): [],
    ("help",): [],
}


def plain(binary, *args, env=None, timeout=30):
    """`envhub ARGS...` with no server anywhere (ENVHUB_URL points at a closed port)."""
    e = dict(server_env(), ENVHUB_URL=f"http://127.0.0.1:{free_port()}")
    e.update(env or {})
    return subprocess.run([binary, *args], env=e, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def assert_lists(help_text, option, what):
    """`option` starts a line of `help_text`, with a description on it or on the next line."""
    lines = help_text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(rf"\s+{re.escape(option)}(?: [A-Z][A-Z0-9_.|]*)?(?:\s+(\S.*))?$", line)
        if m:
            described = m.group(1) or (i + 1 < len(lines) and re.match(r"\s{8,}\S", lines[i + 1]))
            assert described, f"{what}: {option} has no description:\n{help_text}"
            return
    raise AssertionError(f"{what} does not list {option}:\n{help_text}")


def server_flags(binary):
    """Every server setting's flag, from `envhub config`'s table."""
    p = plain(binary, "config")
    assert p.returncode == 0, explain(p)
    flags = re.findall(r"^\| `(--[a-z0-9-]+)` \|", p.stdout, re.M)
    assert len(flags) > 40, p.stdout
    return flags


def test_help_of_every_command_lists_each_of_its_options(envhub_bin):
    for path, options in COMMAND_OPTIONS.items():
        what = "envhub " + " ".join(path) + " --help"
        p = plain(envhub_bin, *path, "--help")
        assert p.returncode == 0, f"{what}: {explain(p)}"
        assert p.stderr == "", f"{what}: {explain(p)}"
        assert p.stdout.startswith("usage: envhub" + "".join(" " + w for w in path)), f"{what}: {explain(p)}"
        for option in options + ["-h, --help"]:
            assert_lists(p.stdout, option, what)
        # -h is the same, and so is `envhub help PATH`
        assert plain(envhub_bin, *path, "-h").stdout == p.stdout, what
        if path and path != ("help",):
            assert plain(envhub_bin, "help", *path).stdout == p.stdout, what


def test_help_names_every_command_and_subcommand(envhub_bin):
    top = plain(envhub_bin, "--help")
    assert top.returncode == 0, explain(top)
    for path in COMMAND_OPTIONS:
        if len(path) == 1:
            assert re.search(rf"^  {path[0]}\b", top.stdout, re.M), f"envhub --help omits {path[0]}"
        elif len(path) == 2:
            parent = plain(envhub_bin, path[0], "--help").stdout
            assert re.search(rf"^  {path[1]}\b", parent, re.M), f"envhub {path[0]} --help omits {path[1]}"


def test_serve_and_config_help_list_every_server_setting(envhub_bin):
    flags = server_flags(envhub_bin)
    for cmd in ("serve", "config"):
        p = plain(envhub_bin, cmd, "--help")
        for flag in flags:
            assert_lists(p.stdout, flag, f"envhub {cmd} --help")


def test_an_unknown_option_is_named_and_exits_2(envhub_bin, tmp_path):
    for path in COMMAND_OPTIONS:
        what = "envhub " + " ".join(path + ("--no-such-option",))
        p = plain(envhub_bin, *path, "--no-such-option", env={"ENVHUB_DB": str(tmp_path / "never.db")})
        assert p.returncode == 2, f"{what}: {explain(p)}"
        assert "unknown option '--no-such-option'" in p.stderr, f"{what}: {explain(p)}"
        assert "envhub" + "".join(" " + w for w in path) + " --help" in p.stderr, f"{what}: {explain(p)}"
        assert p.stdout == "", f"{what}: {explain(p)}"
    assert not (tmp_path / "never.db").exists(), "a usage error opened the catalog"
    # an option of another command is unknown too, and a short one is named as written
    for args, name in ((("env", "list", "--wait"), "--wait"), (("history", "--group", "day"), "--group"),
                       (("env", "reinstate", "x", "--replacement", "y"), "--replacement"),
                       (("run", "-x", "c.py"), "-x"), (("key", "create", "--bogus=1"), "--bogus")):
        p = plain(envhub_bin, *args)
        assert p.returncode == 2 and f"unknown option '{name}'" in p.stderr, f"{args}: {explain(p)}"
    p = plain(envhub_bin, "env", "create", "x", "s.sh", "--base")
    assert p.returncode == 2 and "option '--base' needs a value" in p.stderr, explain(p)
    p = plain(envhub_bin, "env", "create", "x", "s.sh", "--wait=yes")
    assert p.returncode == 2 and "option '--wait' takes no value" in p.stderr, explain(p)


def test_server_settings_stay_accepted_before_and_after_the_command(envhub_bin, tmp_path):
    db = str(tmp_path / "settings.db")
    for args in (("--pool-size", "7", "config"), ("config", "--pool-size", "7"),
                 ("config", "--pool-size=7")):
        p = plain(envhub_bin, *args)
        assert p.returncode == 0, f"{args}: {explain(p)}"
        assert re.search(r"^\| `--pool-size` \| `ENVHUB_POOL_SIZE` \| `2` \| `7` \|", p.stdout, re.M), args
    p = plain(envhub_bin, "config", "--pool-size", "-3")
    assert p.returncode == 1 and "--pool-size '-3'" in p.stderr, explain(p)
    # --db before the command, between it and its subcommand, and after
    for args in (("--db", db, "key", "list"), ("key", "--db", db, "list"), ("key", "list", "--db", db),
                 ("migrate", "--db", db)):
        p = plain(envhub_bin, *args)
        assert p.returncode == 0, f"{args}: {explain(p)}"
    assert (tmp_path / "settings.db").exists()
    # the client commands take the server's address as a setting, as before
    port = free_port()
    p = subprocess.run([envhub_bin, "env", "list", "--listen", f"127.0.0.1:{port}"],
                       env={k: v for k, v in server_env().items() if k != "ENVHUB_URL"},
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and f"127.0.0.1:{port}" in p.stderr, explain(p)


def test_usage_errors_of_arguments_say_what_is_missing_or_extra(envhub_bin):
    for args, says in ((("env", "show"), "missing arguments: it takes NAME"),
                       (("env", "show", "a", "b"), "unexpected argument 'b'"),
                       (("env", "frobnicate"), "unknown subcommand 'frobnicate'"),
                       (("frobnicate",), "unknown command 'frobnicate'"),
                       (("key",), "a subcommand is needed: create, list, revoke"),
                       (("history", "prune"), "--before DATE is needed")):
        p = plain(envhub_bin, *args)
        assert p.returncode == 2 and says in p.stderr, f"{args}: {explain(p)}"
    p = plain(envhub_bin)
    assert p.returncode == 2 and p.stderr.startswith("usage: envhub"), explain(p)
    p = plain(envhub_bin, "--version")
    assert p.returncode == 0 and re.fullmatch(r"envhub \d+\.\d+\.\d+\n", p.stdout), explain(p)
