# executor/agent.py - the in-container agent: the main process (PID 1) of a
# sandbox container when jobs go by agent (ENVHUB_JOB_TRANSPORT=agent).
# Compiled into envhub (core/embed.sh) and started as
#
#     python3 -I -c "import os; exec(os.environ.pop('ENVHUB_AGENT'))" \
#         envhub-agent [MODULE...]
#
# with this file in ENVHUB_AGENT (gone from the environment before any job),
# as uid 1000 in the workspace; the MODULEs (an environment's `preload`) are
# imported before the first job, so that a job forked from here pays nothing
# for them. envhub attaches to the container for each job (executor/agent.c)
# and speaks in frames: one type byte, a 4-byte big-endian length, the
# payload.
#
#   envhub -> agent (stdin)
#     J  a job: its settings as one line of JSON, "\n", the input tar
#     C  collect: a fresh random nonce (32 hex digits)
#   agent -> envhub (stdout; nothing else writes there)
#     o  the job's stdout bytes          e  the job's stderr bytes
#     u  a recycled container could not be cleaned (why); nothing ran
#     x  the job and every process it started are gone
#     r  the answer to C: the nonce, "\n", a JSON report (exit status,
#        timeout, OOM kills, files left out, preload failures), "\n", the
#        tar of the output files
#
# A session's calls ("kernel" in the job's settings) run in one interpreter
# kept between calls, forked from here at the session's first call: its
# variables, imports and open files persist; the value of a call's final
# expression comes back in the report as "result" (its repr, capped). Past a
# call's timeout the interpreter gets SIGINT (KeyboardInterrupt), and
# SIGKILL when it has not finished the call KERNEL_GRACE s later: the report
# then says the interpreter is gone ("interpreter": "died") and the next
# call starts a new one, as does a job with "reset". Other processes a call
# started are killed when it returns, unless the session keeps them
# ("keep_processes"). The interpreter tells this process that a call ended,
# with its exit status and result, on a pipe of its own; the code it runs
# shares its process and could write there too, so a session's code can
# misstate its own exit status and result, never its files, its timeout,
# an OOM kill, or anything of another job.
#
# The job runs in a forked child with stdin from /dev/null and its stdout
# and stderr on pipes that only this process reads: a job's bytes reach
# envhub inside 'o' and 'e' frames and can never make a frame of their own.
# This process is not dumpable (no ptrace, no /proc/1/mem or /proc/1/fd for
# the job's user, who is also its user), and as PID 1 of its namespace it
# ignores every signal it does not handle, SIGKILL included. After the job's
# first process ends, or its timeout, every other process is killed and
# reaped; only then does 'x' go out, and envhub sends C: the report carries
# the nonce, which did not exist while any process of the job lived.
import ast
import ctypes
import errno
import io
import json
import os
import select
import signal
import stat
import struct
import sys
import tarfile
import time
import traceback
import types

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_DUMPABLE = 4
if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
    os.write(2, b"envhub-agent: cannot make the agent undumpable\n")
    sys.exit(70)

CHUNK = 65536
ENV = {
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": "/tmp/.matplotlib",
}
WIPE = ["/tmp", "/dev/shm", "/dev/mqueue"]
ZOMBIES_MAX = 16
KERNEL_GRACE = 2.0  # s from a call's SIGINT to the interpreter's SIGKILL
KERNEL_DONE_MAX = 1 << 20  # bytes of the interpreter's end-of-call line
LIST_MAX = 1000  # files left out named in a report (AGENT_LIST_MAX)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        view = view[n:]


def send(kind, payload=b""):
    write_all(1, kind + struct.pack(">I", len(payload)) + payload)


def read_exact(n):
    parts = []
    while n > 0:
        try:
            b = os.read(0, min(n, 1 << 20))
        except InterruptedError:
            continue
        if not b:
            os._exit(0)  # envhub closed stdin: the container is done
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


def read_frame():
    head = read_exact(5)
    return head[:1], read_exact(struct.unpack(">I", head[1:])[0])


preload_errors = {}
for name in sys.argv[2:]:  # ["-c", "envhub-agent", MODULE...]
    try:
        __import__(name)
    except BaseException as exc:  # a module may even call sys.exit()
        preload_errors[name] = "%s: %s" % (type(exc).__name__, exc)


def pids(spare=0):
    """Processes but this one and `spare`."""
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me, spare)]


def others(spare=0):
    """Processes but this one and `spare`: (alive, zombies)."""
    alive = zombies = 0
    for p in pids(spare):
        try:
            with open("/proc/%d/stat" % p, "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state == b"Z":
            zombies += 1
        else:
            alive += 1
    return alive, zombies


def reap_watching(pid=0):
    """Reap every child that ended (@pid, and orphans: PID 1 gets them): the
    wait status of @pid when it was among them, else None."""
    status = None
    while True:
        try:
            done, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if done == 0:
            return status
        if done == pid:
            status = st


def kill_all(spare=0):
    """Kill every process but this one (and `spare`, a session's interpreter),
    again until none is left (a fork while a round ran escapes that round,
    not the next)."""
    for _ in range(200):
        if spare:
            for pid in pids(spare):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        else:
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reap_watching()
        alive, zombies = others(spare)
        if alive == 0 and (os.getpid() == 1 or zombies == 0 or spare):
            return True
        time.sleep(0.005)
    return False


def remove_tree_content(top):
    for entry in os.listdir(top):
        path = os.path.join(top, entry)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, 0o700)
                remove_tree_content(path)
                os.rmdir(path)
            else:
                os.unlink(path)
        except OSError:
            pass


def ipc_ids(kind):
    with open("/proc/sysvipc/" + kind) as f:
        lines = f.read().splitlines()[1:]
    return [int(line.split()[1]) for line in lines if line.strip()]


def clean(workdir):
    """A recycled container as the engine made it: None, or why not."""
    if not kill_all():
        return "a process of the last job survives"
    alive, zombies = others()
    if zombies > ZOMBIES_MAX:
        return "%d zombies of the last jobs use the pids limit" % zombies
    for top in [workdir] + WIPE:
        if os.path.isdir(top):
            remove_tree_content(top)
            if os.listdir(top):
                return "a file of the last job is left in %s" % top
    IPC_RMID = 0
    remove = {
        "shm": lambda i: libc.shmctl(i, IPC_RMID, None),
        "msg": lambda i: libc.msgctl(i, IPC_RMID, None),
        "sem": lambda i: libc.semctl(i, 0, IPC_RMID),
    }
    for kind in ("shm", "msg", "sem"):
        try:
            for ident in ipc_ids(kind):
                remove[kind](ident)
            if ipc_ids(kind):
                return "SysV IPC objects are left (%s)" % kind
        except OSError as exc:
            return "cannot read /proc/sysvipc/%s: %s" % (kind, exc)
    return None


def oom_kills():
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
            return 0
        except OSError:
            continue
    return 0


def become_job(spec, out_w, err_w, keep=()):
    """In a forked child: stdin from /dev/null, stdout and stderr on the
    pipes, every other descriptor but `keep` closed, default signals, the
    job's environment and sys.std*, a fresh __main__ (returned)."""
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # the job's own /proc/self is its own
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")  # out of memory, the job goes before the agent
    except OSError:
        pass
    workdir = spec["workdir"]
    os.environ.update(ENV)
    private = os.path.join(workdir, spec["private"])
    if spec["display"] > 0 and os.path.isfile(os.path.join(private, "envhub_display.py")):
        os.environ.update(
            MPLBACKEND="module://envhub_display",
            ENVHUB_DISPLAY_DIR=os.path.join(workdir, spec["display_dir"]),
            ENVHUB_MAX_DISPLAY=str(spec["display"]),
            PYTHONPATH=private,
        )
        sys.path.insert(0, private)
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True
    )
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        write_through=True,
    )
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.path.insert(0, workdir)
    main = types.ModuleType("__main__")
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    return main


def print_job_exception(exc):
    """The traceback from the job's own code down: Python prints the
    exception's __traceback__, whose first frame is the agent's."""
    tb = exc.__traceback__
    exc = exc.with_traceback(tb.tb_next if tb else None)
    sys.excepthook(type(exc), exc, exc.__traceback__)


def child(spec, out_w, err_w):
    """The job, in the forked child: never returns."""
    rc = 1
    try:
        main = become_job(spec, out_w, err_w)
        path = os.path.join(spec["workdir"], spec["code"])
        main.__file__ = path
        sys.argv = [spec["code"]]
        rc = 0
        try:
            with open(path, "rb") as f:
                source = f.read()
            code = compile(source, path, "exec")
        except BaseException as exc:
            sys.excepthook(type(exc), exc.with_traceback(None), None)
            rc = 1
        else:
            try:
                exec(code, main.__dict__)
            except SystemExit as exc:
                rc = exit_status(exc)
            except BaseException as exc:
                print_job_exception(exc)
                rc = 1
        import threading

        threading._shutdown()
        import atexit

        atexit._run_exitfuncs()
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except BaseException:
                pass
    except SystemExit as exc:
        rc = exit_status(exc)
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
        rc = 1
    os._exit(rc & 0xFF)


def exit_status(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    try:
        print(code, file=sys.stderr)
    except BaseException:
        pass
    return 1


def run(spec, workdir, wake_r):
    """Fork the job, relay its output, end it: (exit status, timed out)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        child(spec, out_w, err_w)
    os.close(out_w)
    os.close(err_w)
    deadline = time.monotonic() + spec["timeout"] if spec["timeout"] > 0 else None
    status, timed_out = None, False
    open_fds = {out_r: b"o", err_r: b"e"}

    def drain(fd):
        data = os.read(fd, CHUNK)
        if data:
            send(open_fds[fd], data)
        else:
            os.close(fd)
            del open_fds[fd]

    while status is None:
        status = reap_watching(pid)
        if status is not None:
            break
        left = None
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
        ready = select.select(list(open_fds) + [wake_r], [], [], left)[0]
        for fd in ready:
            if fd == wake_r:
                os.read(wake_r, 512)
            else:
                drain(fd)
    kill_all()
    for fd in list(open_fds):  # every writer is gone: read to the end
        while fd in open_fds:
            drain(fd)
    if status is None:
        rc = -1
    elif os.WIFSIGNALED(status):
        rc = 128 + os.WTERMSIG(status)
    else:
        rc = os.WEXITSTATUS(status)
    return rc, timed_out


# ---------------------------------------------------------------- sessions

kernel = None  # a session's interpreter, while it lives: Kernel


class Kernel:
    def __init__(self, pid, cmd_w, done_r, out_r, err_r):
        self.pid, self.cmd_w, self.done_r = pid, cmd_w, done_r
        self.out_r, self.err_r = out_r, err_r
        self.done = b""

    def close(self):
        for fd in (self.cmd_w, self.done_r, self.out_r, self.err_r):
            try:
                os.close(fd)
            except OSError:
                pass


def kernel_call(main, call):
    """One call in the interpreter: (exit status, repr of the final
    expression's value or None). SIGINT interrupts only here."""
    path, limit = call["path"], call["result_max"]
    main.__file__ = path
    sys.argv = [os.path.basename(path)]
    if not call["keep_processes"]:
        reap_watching()  # the processes the last call left were killed: their zombies
    rc, result = 0, None
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        try:
            with open(path, "rb") as f:
                tree = ast.parse(f.read(), path)
        except BaseException as exc:
            sys.excepthook(type(exc), exc.with_traceback(None), None)
            return 1, None
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        try:
            exec(compile(tree, path, "exec"), main.__dict__)
            if last is not None:
                value = eval(compile(last, path, "eval"), main.__dict__)
                if value is not None:
                    result = repr(value)
                    if len(result) > limit:
                        result = "%s... (%d characters; the first %d shown)" % (
                            result[:limit], len(result), limit)
        except SystemExit as exc:
            rc = exit_status(exc)
        except BaseException as exc:
            print_job_exception(exc)
            rc = 1
        shown = sys.modules.get("envhub_display")
        if shown is not None:
            try:
                shown._show_all()  # figures left open come back, as at a job's end
            except BaseException:
                pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return rc, result


def kernel_main(spec, out_w, err_w, cmd_r, done_w):
    """The session's interpreter, in the forked child: runs the calls it is
    given on cmd_r, one JSON line each, and answers each on done_w. Never
    returns."""
    try:
        main = become_job(spec, out_w, err_w, keep=(cmd_r, done_w))
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # only a call is interrupted
        pending = b""
        while True:
            while b"\n" not in pending:
                data = os.read(cmd_r, 4096)
                if not data:
                    os._exit(0)
                pending += data
            line, _, pending = pending.partition(b"\n")
            try:
                rc, result = kernel_call(main, json.loads(line))
            except BaseException:
                rc, result = 1, None
            for f in (sys.stdout, sys.stderr):
                try:
                    f.flush()
                except BaseException:
                    pass
            write_all(done_w, json.dumps({"rc": rc, "result": result}).encode() + b"\n")
    except BaseException:
        pass
    os._exit(1)


def start_kernel(spec):
    global kernel
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    cmd_r, cmd_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        kernel_main(spec, out_w, err_w, cmd_r, done_w)
    for fd in (out_w, err_w, cmd_r, done_w):
        os.close(fd)
    for fd in (out_r, err_r, done_r):
        os.set_blocking(fd, False)
    kernel = Kernel(pid, cmd_w, done_r, out_r, err_r)


def stop_kernel():
    """Kill the interpreter and every other process: (its wait status or None)."""
    global kernel
    status = None
    if kernel is not None:
        try:
            os.kill(kernel.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            status = os.waitpid(kernel.pid, 0)[1]
        except ChildProcessError:
            pass
        kernel.close()
        kernel = None
    kill_all()
    return status


def relay_ready(fd, kind, budget=16):
    """Send what the pipe holds now (at most `budget` reads): False at its end."""
    for _ in range(budget):
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return True
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            return False
        if not data:
            return False
        send(kind, data)
    return True


def wait_status(status, timed_out):
    if timed_out or status is None:
        return -1
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def run_kernel(spec, workdir, wake_r):
    """One call of a session in its interpreter: (exit status, timed out,
    the interpreter's state: started / kept / died, the result)."""
    global kernel
    state = "kept"
    if kernel is None:
        start_kernel(spec)
        state = "started"
    k = kernel
    shown = os.path.join(workdir, spec["display_dir"])
    if os.path.isdir(shown) and not os.path.islink(shown):
        remove_tree_content(shown)  # the last call's pictures went with its answer
    call = {"path": os.path.join(workdir, spec["code"]), "result_max": spec["result_max"],
            "keep_processes": bool(spec.get("keep_processes"))}
    try:
        write_all(k.cmd_w, json.dumps(call).encode() + b"\n")
    except OSError:
        pass  # it died: seen below
    deadline = time.monotonic() + spec["timeout"] if spec["timeout"] > 0 else None
    status, done, timed_out, broken = None, None, False, False
    pipes = {k.out_r: b"o", k.err_r: b"e"}
    while done is None and status is None and not broken:
        status = reap_watching(k.pid)
        if status is not None:
            break
        left = None
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                if timed_out:
                    break  # the interrupt did not end the call
                timed_out = True
                os.kill(k.pid, signal.SIGINT)
                deadline = time.monotonic() + KERNEL_GRACE
                continue
        ready = select.select(list(pipes) + [k.done_r, wake_r], [], [], left)[0]
        for fd in ready:
            if fd == wake_r:
                os.read(wake_r, 512)
            elif fd in pipes:
                if not relay_ready(fd, pipes[fd], 1):
                    del pipes[fd]
            elif fd == k.done_r:
                try:
                    data = os.read(fd, 4096)
                except BlockingIOError:
                    continue
                k.done += data
                if not data or len(k.done) > KERNEL_DONE_MAX:
                    broken = True  # the call's code closed or flooded the pipe
                elif b"\n" in k.done:
                    line, _, k.done = k.done.partition(b"\n")
                    try:
                        done = json.loads(line)
                        rc, result = int(done["rc"]) & 0xFF, done["result"]
                        if result is not None and not isinstance(result, str):
                            raise ValueError("result")
                        if result is not None:  # text envhub's JSON takes
                            result = result.encode("utf-8", "backslashreplace").decode()
                            result = result.replace("\0", "\\x00")[: spec["result_max"] + 100]
                    except (ValueError, KeyError, TypeError):
                        done, broken = None, True
    if done is None:  # it died, or did not end the call in time, or broke the pipe
        if status is None:
            try:
                os.kill(k.pid, signal.SIGKILL)
                status = os.waitpid(k.pid, 0)[1]
            except (ProcessLookupError, ChildProcessError):
                pass
        rc, result, state = wait_status(status, timed_out), None, "died"
        kill_all()  # every writer of its pipes is gone: read them to the end
        for fd, kind in pipes.items():
            for _ in range(64):
                if not relay_ready(fd, kind):
                    break
        k.close()
        kernel = None
    else:
        if not spec.get("keep_processes"):
            kill_all(spare=k.pid)
        for fd, kind in pipes.items():
            relay_ready(fd, kind)
    return rc, timed_out, state, result


def collect(spec, workdir):
    """The output files as a tar (cut where envhub stops reading one: it
    says what is past its limits), the ones over the size limit, and whether
    the tar was cut."""
    limit, skipped, truncated = spec["max_file_size"], [], False
    cap = spec["max_total"] + (1 << 20)  # as much as envhub reads of a workspace tar
    buf = io.BytesIO()
    tar = tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT)
    private = os.path.join(workdir, spec["private"])
    shown = os.path.join(workdir, spec["display_dir"])
    tops = [workdir]
    if os.path.isdir(shown) and not os.path.islink(shown):
        tops.append(shown)
    for top in tops:
        for folder, dirs, names in os.walk(top):
            if top == workdir:
                dirs[:] = [d for d in dirs if os.path.join(folder, d) != private]
            for name in sorted(names):
                path = os.path.join(folder, name)
                rel = "./" + os.path.relpath(path, workdir)
                if top == workdir and rel == "./" + spec["code"]:
                    continue
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                if st.st_size > limit:
                    if len(skipped) < LIST_MAX:  # envhub lists no more
                        skipped.append([st.st_size, os.fsencode(rel).hex()])
                    continue
                if truncated or buf.tell() + 1024 + st.st_size > cap:
                    truncated = True  # envhub lists what is past its limits
                    continue
                try:
                    with open(path, "rb") as f:
                        info = tarfile.TarInfo(rel)
                        info.size = st.st_size
                        info.mtime = int(st.st_mtime)
                        info.mode = 0o644
                        tar.addfile(info, f)
                except OSError:
                    continue
    tar.close()
    return buf.getvalue(), skipped, truncated


def empty_tar():
    buf = io.BytesIO()
    tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT).close()
    return buf.getvalue()


def main():
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    # as PID 1 it gets only the signals it handles: Python's SIGINT handler
    # would let a job interrupt it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    workdir = os.getcwd()
    while True:
        kind, payload = read_frame()
        if kind != b"J":
            continue  # a collect with no job: nothing to answer
        line, _, tar = payload.partition(b"\n")
        spec = json.loads(line)
        if spec.get("recycled"):
            why = clean(workdir)
            if why:
                send(b"u", why.encode())
                continue
        oom0 = oom_kills()
        extra = {}
        if spec.get("reset"):
            stop_kernel()
            rc, timed_out, extra["interpreter"] = 0, False, "reset"
        else:
            try:
                with tarfile.open(fileobj=io.BytesIO(tar), mode="r") as t:
                    t.extractall(workdir)
            except (OSError, tarfile.TarError) as exc:
                send(b"e", b"envhub: cannot unpack the input files into the workspace: %s\n" % str(exc).encode())
                rc, timed_out = 125, False
            else:
                if spec.get("kernel"):
                    rc, timed_out, extra["interpreter"], extra["result"] = run_kernel(spec, workdir, wake_r)
                else:
                    rc, timed_out = run(spec, workdir, wake_r)
        oom = oom_kills() - oom0
        send(b"x")
        kind, nonce = read_frame()
        while kind != b"C":
            kind, nonce = read_frame()
        if spec.get("reset"):
            files, skipped, truncated = empty_tar(), [], False
        else:
            files, skipped, truncated = collect(spec, workdir)
        report = {
            "rc": rc,
            "timed_out": timed_out,
            "oom_kills": oom,
            "skipped": skipped,
            "truncated": truncated,
            "preload_errors": preload_errors,
        }
        report.update(extra)
        send(b"r", nonce + b"\n" + json.dumps(report).encode() + b"\n" + files)


main()
