#!/usr/bin/env bash
# daemons.sh - helpers shared by the start-/stop- scripts of the CI schedulers (sourced, not run).
# The caller defines log and die, and, where it uses them: T0 (elapsed), STARTED (the file that
# lists "name pid" of the daemons a start script launched), TIMEOUT (wait_pidfile) and rc
# (stop_pid sets rc=1 when a daemon would not die).

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
elapsed() { local d=$(( $(now_ms) - T0 )); printf '%d.%01d' $((d / 1000)) $(((d % 1000) / 100)); }

# running PID: the process exists and is not a zombie
running() { local st; st=$(sed -n 's/^.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null); [ -n "$st" ] && [ "$st" != Z ]; }
comm_of() { cat "/proc/$1/comm" 2>/dev/null; }

# alive PIDFILE COMM -> prints the pid and returns 0 if the pid in PIDFILE is a live COMM process
alive() {
    local f=$1 name=$2 pid
    [ -s "$f" ] || return 1
    pid=$(tr -dc '0-9' <"$f")
    [ -n "$pid" ] && running "$pid" || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
    echo "$pid"
}
record_started() { echo "$1 $2" >>"$STARTED"; }
# launch NAME OUTFILE CMD...: run a daemon in its foreground mode, in a new session, detached
# from this shell, so that $! is the daemon's own PID (setsid and the wrappers exec, they do not
# fork); the PID is recorded at once, so the stop script can stop it even if start-up then fails.
launch() {
    local name=$1 out=$2
    shift 2
    log "starting $name: $*"
    setsid "$@" >>"$out" 2>&1 </dev/null &
    LAUNCHED=$!
    record_started "$name" "$LAUNCHED"
}
# wait_pidfile NAME PID PIDFILE: wait until the daemon has written its own pid file
wait_pidfile() {
    local name=$1 pid=$2 f=$3 deadline=$(( $(date +%s) + TIMEOUT ))
    until [ "$( { tr -dc '0-9' <"$f"; } 2>/dev/null)" = "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; do
        running "$pid" || die "$name (pid $pid) exited during start-up"
        if [ "$(date +%s)" -ge "$deadline" ]; then
            kill -TERM "$pid" 2>/dev/null || true
            die "$name (pid $pid) did not write $f within ${TIMEOUT}s; sent it SIGTERM"
        fi
        sleep 0.1
    done
    log "$name running (pid $pid)"
}

# stop_pid NAME PID [GRACE]: SIGTERM a daemon we started (if PID still is NAME), SIGKILL it
# after GRACE seconds (default 10); sets rc=1 if it does not die
stop_pid() {
    local name=$1 pid=$2 grace=${3:-10}
    if ! running "$pid"; then
        log "$name (pid $pid) is not running"
        return 0
    fi
    if [ "$(comm_of "$pid")" != "$name" ]; then
        log "pid $pid is now '$(comm_of "$pid")', not $name: leaving it alone"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((grace * 5))); do running "$pid" || break; sleep 0.2; done
    if running "$pid"; then
        log "$name (pid $pid) still alive after ${grace}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
        # shellcheck disable=SC2034  # rc is the caller's exit status
        running "$pid" && { log "ERROR: $name (pid $pid) did not die"; rc=1; }
    fi
}

# render TEMPLATE NAME=VALUE...: print TEMPLATE with every @NAME@ replaced by VALUE (values may
# span lines); the configuration files stay files, with their few variable parts marked
render() {
    local text kv
    text=$(<"$1")
    shift
    for kv in "$@"; do
        text=${text//@${kv%%=*}@/${kv#*=}}
    done
    printf '%s\n' "$text"
}
