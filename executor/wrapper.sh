# executor/wrapper.sh - runs one job in a sandbox container. Compiled into
# envhub (core/embed.sh) and run by executor/job.c through exec as
#
#     sh -c WRAPPER envhub-wrapper RECYCLED TIMEOUT
#
# in the workspace, as uid 1000, with a tar of the input files and the code
# (.envhub_main.py, EXEC_CODE_NAME) on its stdin.
#   RECYCLED  1: the container served a job before: clean it first
#   TIMEOUT   0: the engine's deadline ends the job (its container goes);
#             else seconds, enforced here by timeout(1) (a session's call:
#             the container survives it) and the code file removed after
# After everything the code printed it reports on stderr
#     \0envhub-status RC FILES OOM\0
# the code's exit status, whether the workspace holds any file, and the
# memory cgroup's OOM kills during the run (the engine's OOMKilled flag is
# not set on every kernel); exec_parse_marker() reads it. A container that
# cannot be cleaned reports \0envhub-unclean\0 instead (exit 126) and the
# executor runs the job in a fresh one.

# Recycling: every process of uid 1000 but the container's first is killed
# and the writable places emptied. Zombies (background processes whose parent
# was the container's first process, which never reaps) cannot be killed and
# do no harm but use the pids limit: a few (16) are tolerated.
clean() {
    kill -9 -1 2>/dev/null
    rm -rf /workspace/* /workspace/.[!.]* /workspace/..?* /tmp/* /tmp/.[!.]* /tmp/..?* \
        /dev/shm/* /dev/shm/.[!.]* 2>/dev/null
    for try in 1 2 3 4 5 6 7 8 9 10; do
        left=0; z=0
        for p in /proc/[0-9]*; do
            q=${p#/proc/}
            { [ "$q" = 1 ] || [ "$q" = $$ ]; } && continue
            st=
            while read -r k v rest; do [ "$k" = State: ] && { st=$v; break; }; done < $p/status 2>/dev/null
            case $st in Z) z=$((z+1));; '') ;; *) left=1;; esac
        done
        [ $left = 0 ] && break
        sleep 0.02
    done
    [ $left = 0 ] && [ $z -le 16 ] || return 1
    for f in /workspace/* /workspace/.[!.]* /workspace/..?* /tmp/* /tmp/.[!.]* /tmp/..?* /dev/shm/*; do
        { [ -e "$f" ] || [ -L "$f" ]; } && return 1
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
tar -x -f - || { echo 'envhub: cannot unpack the input files into the workspace' >&2; exit 125; }
if [ "$2" = 0 ]; then
    python3 .envhub_main.py; rc=$?
else
    timeout -k 2 "$2" python3 .envhub_main.py; rc=$?
    rm -f .envhub_main.py
fi
oom; files=0
# any entry but the code file, without forking
for f in * .[!.]* ..?*; do
    { [ -e "$f" ] || [ -L "$f" ]; } || continue
    [ "$f" = .envhub_main.py ] && continue
    files=1; break
done
printf '\0envhub-status %d %d %d\0' "$rc" "$files" "$((n - o0))" >&2
exit $rc
