# executor/wrapper.sh - runs one job in a sandbox container. Compiled into
# envhub (core/embed.sh) and run by executor/job.c through exec as
#
#     sh -c WRAPPER envhub-wrapper RECYCLED TIMEOUT DISPLAY
#
# in the workspace, as uid 1000, with a tar of the input files, the code
# (.envhub_main.py, EXEC_CODE_NAME) and envhub's matplotlib backend
# (.envhub/envhub_display.py, executor/display.py) on its stdin.
#   RECYCLED  1: the container served a job before: clean it first
#   TIMEOUT   0: the engine's deadline ends the job (its container goes);
#             else seconds, enforced here by timeout(1) (a session's call:
#             the container survives it) and the code file removed after
#   DISPLAY   pictures a job may show (ENVHUB_MAX_DISPLAY); 0 leaves
#             matplotlib on Agg and shows none. Figures are saved as PNG in
#             .envhub/display/, which the collect step reads apart from the
#             output files; the pictures of an earlier call of a session go
#             first.
# After everything the code printed it reports on stderr
#     \0envhub-status RC FILES OOM\0
# the code's exit status, whether the workspace holds any file, and the
# memory cgroup's OOM kills during the run (the engine's OOMKilled flag is
# not set on every kernel); exec_parse_marker() reads it. A container that
# cannot be cleaned reports \0envhub-unclean\0 instead (exit 126) and the
# executor runs the job in a fresh one.

# Recycling: the next job finds the container as the engine made it, but for
# what cannot be undone from inside (zombies, PID 1's memory). Every process
# but the container's first (PID 1, `sleep infinity`, which kill(-1) spares)
# and this wrapper is killed, again on each try, so that a process forking
# while the first kill ran does not outlive it; the SysV IPC objects go
# (ipcrm -a: the job's user owns every one, the container has its own IPC
# namespace), and so do the POSIX message queues (/dev/mqueue, which the
# engine mounts) and everything in /workspace, /tmp and /dev/shm (POSIX
# shared memory). Then it is checked: any failure reports unclean and the
# container goes. Zombies (background processes whose parent was PID 1, which
# never reaps) cannot be killed and hold nothing but a pid: a few (16) are
# tolerated.
WIPE='/workspace/* /workspace/.[!.]* /workspace/..?* /tmp/* /tmp/.[!.]* /tmp/..?*
 /dev/shm/* /dev/shm/.[!.]* /dev/shm/..?* /dev/mqueue/* /dev/mqueue/.[!.]* /dev/mqueue/..?*'

# Processes left but PID 1 and this wrapper: $left 1 when one is alive, $z
# the zombies.
scan() {
    left=0; z=0
    for p in /proc/[0-9]*; do
        q=${p#/proc/}
        { [ "$q" = 1 ] || [ "$q" = $$ ]; } && continue
        st=
        while read -r k v rest; do [ "$k" = State: ] && { st=$v; break; }; done < $p/status 2>/dev/null
        case $st in Z) z=$((z+1));; '') ;; *) left=1;; esac
    done
}

# PID 1 is still the engine's `sleep infinity`, as the job's user could have
# changed it (same uid): one thread, traced by nobody, no file open but the
# three it started with, no executable memory but mapped files of the image.
init_intact() {
    name=; threads=; tracer=
    while read -r k v rest; do
        case $k in Name:) name=$v;; Threads:) threads=$v;; TracerPid:) tracer=$v;; esac
    done < /proc/1/status
    [ "$name" = sleep ] && [ "$threads" = 1 ] && [ "$tracer" = 0 ] || return 1
    [ -O /proc/1 ] || return 0 # another user's: out of the job's reach
    for f in /proc/1/fd/*; do
        case ${f#/proc/1/fd/} in 0|1|2) ;; *) return 1;; esac
    done
    while read -r _ perms rest; do
        case $perms in *x*) ;; *) continue;; esac
        path=${rest#* * * }
        while [ "${path# }" != "$path" ]; do path=${path# }; done
        case $path in
        '[vdso]'|'[vsyscall]') ;;
        *' (deleted)') return 1;;
        /usr/*|/lib/*|/lib64/*|/bin/*) ;;
        *) return 1;;
        esac
    done < /proc/1/maps
    return 0
}

clean() {
    kill -9 -1 2>/dev/null
    for try in 1 2 3 4 5 6 7 8 9 10; do
        scan
        [ $left = 0 ] && break
        kill -9 -1 2>/dev/null
        sleep 0.02
    done
    [ $left = 0 ] || { echo 'envhub: a process of the last job survives' >&2; return 1; }
    [ $z -le 16 ] || { echo "envhub: $z zombies of the last jobs use the pids limit" >&2; return 1; }
    init_intact || { echo 'envhub: the container'"'"'s first process was changed' >&2; return 1; }
    rm -rf $WIPE 2>/dev/null
    command -v ipcrm >/dev/null 2>&1 && ipcrm -a 2>/dev/null
    for f in /proc/sysvipc/shm /proc/sysvipc/msg /proc/sysvipc/sem; do
        n=0
        [ -r $f ] || { echo "envhub: cannot read $f: SysV IPC cannot be checked" >&2; return 1; }
        while read -r _; do n=$((n+1)); done < $f
        [ $n -le 1 ] || { echo "envhub: SysV IPC objects are left ($f)" >&2; return 1; }
    done
    while read -r _ mnt type rest; do
        [ "$mnt" = /dev/mqueue ] && [ "$type" = mqueue ] && break
        mnt=
    done < /proc/self/mounts
    [ "$mnt" = /dev/mqueue ] || { echo 'envhub: /dev/mqueue is not mounted: message queues cannot be checked' >&2; return 1; }
    for f in $WIPE; do
        { [ -e "$f" ] || [ -L "$f" ]; } && { echo 'envhub: a file of the last job is left' >&2; return 1; }
    done
    return 0
}

# The memory cgroup's oom_kill counter (v1 or v2) into $n.
oom() {
    n=0
    for f in /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events; do
        [ -r "$f" ] || continue
        while read -r k v; do [ "$k" = oom_kill ] && n=$v; done < "$f"
        break
    done
}

if [ "$1" = 1 ]; then
    clean || { printf '\0envhub-unclean\0' >&2; exit 126; }
fi
oom; o0=$n
# a session's earlier call left its pictures (not this call's), or made
# .envhub something but a folder (the backend could not be unpacked)
if [ -L .envhub ] || { [ -e .envhub ] && [ ! -d .envhub ]; }; then rm -rf .envhub
elif [ -e .envhub/display ] || [ -L .envhub/display ]; then rm -rf .envhub/display; fi
tar -x -f - || { echo 'envhub: cannot unpack the input files into the workspace' >&2; exit 125; }
if [ "${3:-0}" -gt 0 ] 2>/dev/null && [ -f .envhub/envhub_display.py ]; then
    export MPLBACKEND=module://envhub_display ENVHUB_DISPLAY_DIR="$PWD/.envhub/display"
    export ENVHUB_MAX_DISPLAY="$3" PYTHONPATH="$PWD/.envhub${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ "$2" = 0 ]; then
    python3 .envhub_main.py; rc=$?
else
    timeout -k 2 "$2" python3 .envhub_main.py; rc=$?
    rm -f .envhub_main.py
fi
oom; files=0
# any entry but the code file and envhub's folder, or a picture, without forking
for f in * .[!.]* ..?*; do
    { [ -e "$f" ] || [ -L "$f" ]; } || continue
    [ "$f" = .envhub_main.py ] && continue
    [ "$f" = .envhub ] && continue
    files=1; break
done
{ [ -e .envhub/display ] || [ -L .envhub/display ]; } && files=1
printf '\0envhub-status %d %d %d\0' "$rc" "$files" "$((n - o0))" >&2
exit $rc
