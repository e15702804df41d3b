#!/usr/bin/env bash
# slurm.sh - install and start a single-node SLURM cluster (munge + slurmctld + slurmd)
# on a Debian 12 machine (no systemd as PID 1, root, no docker), for CI tests of
# dask-jobqueue's SLURMCluster against a real scheduler.
#
# Safe to run repeatedly: installs only what is missing, rewrites the config only if it
# changed (restarting the daemons this script started in that case), starts only daemons
# that are not already running, then waits until `sinfo` reports the node usable.
# Exit status 0 = scheduler is up; non-zero = it is not (with the reason and log tails).
#
# Tunables (environment):
#   SLURM_PARTITION      default partition name              (default: debug)
#   SLURM_ESI_PARTITIONS extra partitions named like ESI's  (default: "8GBXS 8GBS 16GBXS 16GBS")
#                        "<N>GB<size>": MaxMemPerNode and DefMemPerCPU N*1000 MB (ESI gives
#                        each core N GB), MaxTime 1 h for XS, 1 day otherwise; a partition
#                        needing more memory than the node has is left out. Empty: none.
#   SLURM_CPUS           CPUs advertised for the node        (default: detected; may exceed
#                        the real count to allow more 1-core jobs at once)
#   SLURM_REAL_MEMORY    node RealMemory in MB               (default: detected by slurmd -C)
#   SLURM_START_TIMEOUT  seconds to wait for the node        (default: 60)
#   SLURM_SKIP_INSTALL   set to 1 to never call apt-get      (default: unset)
#   SLURM_SKIP_PROBE     set to 1 to skip the final test job (default: unset)
#
# Files: config /etc/slurm/slurm.conf (rendered from slurm/slurm.conf.in);
#        state /var/spool/slurmctld, /var/spool/slurmd;
#        logs /var/log/slurm/{slurmctld,slurmd}.log (+ .out: the daemons' stdout/stderr),
#        /var/log/munge/munged.log;
#        PIDs /run/slurm/{slurmctld,slurmd}.pid, /run/munge/munged.pid;
#        /run/slurm/ci-started.pids lists "name pid" of daemons started by this script
#        (stop-slurm.sh stops exactly those). The daemons run in their foreground mode
#        (-D / --foreground) under setsid, detached from the caller, so $! is their PID.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shared helpers: now_ms/elapsed, running, comm_of, alive, launch, wait_pidfile, stop_pid, render
# shellcheck source=../lib/daemons.sh
source "$HERE/../lib/daemons.sh"
# shellcheck disable=SC2034  # T0 is read by elapsed() in daemons.sh
T0=$(now_ms)
log() { printf '[slurm %5ss] %s\n' "$(elapsed)" "$*"; }
die() {
    printf '[slurm] ERROR: %s\n' "$*" >&2
    sleep 1   # let a daemon that just failed finish writing its log
    for f in /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log /var/log/slurm/slurmctld.out \
             /var/log/slurm/slurmd.out /var/log/munge/munged.log /var/log/munge/munged.out; do
        if [ -r "$f" ]; then
            printf '[slurm] ---- last lines of %s ----\n' "$f" >&2
            tail -n 25 "$f" >&2 || true
        fi
    done
    exit 1
}
run() { log "+ $*"; "$@"; }

PARTITION=${SLURM_PARTITION:-debug}
ESI_PARTITIONS=${SLURM_ESI_PARTITIONS-8GBXS 8GBS 16GBXS 16GBS}
TIMEOUT=${SLURM_START_TIMEOUT:-60}
CONF=/etc/slurm/slurm.conf
RUNDIR=/run/slurm
STARTED=$RUNDIR/ci-started.pids
MARKER="# managed by start-slurm.sh"  # the text marks files of ours: kept as it was

[ "$(id -u)" = 0 ] || die "must run as root (uses apt-get, writes /etc/slurm, starts daemons)"

# ---------------------------------------------------------------- 1. packages
need_install=0
for b in /usr/sbin/munged /usr/bin/munge /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sinfo /usr/bin/sbatch; do
    [ -x "$b" ] || need_install=1
done
if [ "$need_install" = 1 ]; then
    [ "${SLURM_SKIP_INSTALL:-0}" = 1 ] && die "SLURM/munge binaries missing and SLURM_SKIP_INSTALL=1"
    export DEBIAN_FRONTEND=noninteractive
    log "installing slurm-wlm and munge with apt-get"
    if ! apt-get install -y -q --no-install-recommends slurm-wlm munge >/tmp/start-slurm-apt.log 2>&1; then
        log "apt-get install failed; running apt-get update and retrying"
        run apt-get update -q >>/tmp/start-slurm-apt.log 2>&1 || die "apt-get update failed (see /tmp/start-slurm-apt.log)"
        apt-get install -y -q --no-install-recommends slurm-wlm munge >>/tmp/start-slurm-apt.log 2>&1 \
            || { tail -n 20 /tmp/start-slurm-apt.log >&2; die "apt-get install slurm-wlm munge failed"; }
    fi
    log "installed: $(dpkg-query -W -f='${Package} ${Version}  ' slurm-wlm munge)"
else
    log "slurm-wlm and munge already installed ($(dpkg-query -W -f='${Version}' slurmctld 2>/dev/null || echo '?'))"
fi

# ---------------------------------------------------------------- helpers
# stop_ours NAME PIDFILE: stop a daemon only if this script started it (listed in $STARTED)
stop_ours() {
    local name=$1 f=$2 pid
    pid=$(alive "$f" "$name") || return 0
    if ! grep -qx "$name $pid" "$STARTED" 2>/dev/null; then
        die "$name (pid $pid) is running but was not started by this script; stop it first or keep the config unchanged"
    fi
    log "stopping $name pid $pid (config changed)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do running "$pid" || break; sleep 0.2; done
    running "$pid" && kill -KILL "$pid" 2>/dev/null || true
    sed -i "/^$name $pid\$/d" "$STARTED"
}

# ---------------------------------------------------------------- 2. directories
run mkdir -p "$RUNDIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /etc/slurm
run install -d -o munge -g munge -m 0755 /run/munge
run install -d -o munge -g munge -m 0700 /var/log/munge /etc/munge
run install -d -o munge -g munge -m 0711 /var/lib/munge
touch "$STARTED"

# ---------------------------------------------------------------- 3. munge key + daemon
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then
        runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0600 /etc/munge/munge.key

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if pid=$(alive /run/munge/munged.pid munged) && munge_ok; then
    log "munged already running (pid $pid)"
elif munge_ok; then
    log "a munge daemon already answers on /run/munge/munge.socket.2 (not ours); using it"
else
    rm -f /run/munge/munged.pid
    launch munged /var/log/munge/munged.out \
        setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
    wait_pidfile munged "$LAUNCHED" /run/munge/munged.pid
    for _ in $(seq 1 50); do munge_ok && break; sleep 0.1; done
    munge_ok || die "munged is running but 'munge -n | unmunge' fails"
fi

# ---------------------------------------------------------------- 4. slurm.conf
NODE=$(hostname -s)
[ -n "$NODE" ] || die "hostname -s is empty"
if ! getent hosts "$NODE" >/dev/null; then
    log "hostname $NODE does not resolve; adding '127.0.0.1 $NODE' to /etc/hosts"
    echo "127.0.0.1 $NODE" >>/etc/hosts
fi
HW=$(/usr/sbin/slurmd -C 2>/dev/null | head -n1)   # e.g. NodeName=vm CPUs=2 ... RealMemory=24105
DET_CPUS=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$HW")
DET_MEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$HW")
CPUS=${SLURM_CPUS:-${DET_CPUS:-$(nproc)}}
MEM=${SLURM_REAL_MEMORY:-${DET_MEM:-$(free -m | awk '/^Mem:/{print $2}')}}
log "node $NODE: CPUs=$CPUS RealMemory=${MEM}MB (detected: '$HW')"

# Partitions named like ESI's (the acme-esi plugin's tests use them). They share the node;
# only their memory rules differ.
EXTRA_PARTS=""
for p in $ESI_PARTITIONS; do
    gb=$(sed -n 's/^\([0-9][0-9]*\)GB.*/\1/p' <<<"$p")
    [ -n "$gb" ] || die "SLURM_ESI_PARTITIONS: '$p' does not look like <N>GB<size>"
    mb=$((gb * 1000))
    if [ "$mb" -gt "$MEM" ]; then
        log "partition $p left out: ${mb}MB is more than the node's ${MEM}MB"
        continue
    fi
    case "$p" in *XS) maxtime=01:00:00 ;; *) maxtime=1-00:00:00 ;; esac
    EXTRA_PARTS+="PartitionName=$p Nodes=$NODE Default=NO MaxTime=$maxtime DefMemPerCPU=$mb MaxMemPerNode=$mb State=UP"$'\n'
done

NEWCONF=$(mktemp)
render "$HERE/slurm/slurm.conf.in" MARKER="$MARKER" NODE="$NODE" RUNDIR="$RUNDIR" CPUS="$CPUS" \
    MEM="$MEM" PARTITION="$PARTITION" EXTRA_PARTITIONS="${EXTRA_PARTS%$'\n'}" >"$NEWCONF"

conf_changed=0
if [ -f "$CONF" ] && cmp -s "$NEWCONF" "$CONF"; then
    log "$CONF unchanged"
    rm -f "$NEWCONF"
else
    if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
        bak="$CONF.bak.$(date +%Y%m%d%H%M%S)"
        log "existing $CONF was not written by this script; saving it as $bak"
        cp -p "$CONF" "$bak"
    fi
    [ -f "$CONF" ] && conf_changed=1
    install -m 0644 "$NEWCONF" "$CONF"
    rm -f "$NEWCONF"
    log "wrote $CONF"
fi

if [ "$conf_changed" = 1 ]; then
    stop_ours slurmd "$RUNDIR/slurmd.pid"
    stop_ours slurmctld "$RUNDIR/slurmctld.pid"
fi

# ---------------------------------------------------------------- 5. daemons
if pid=$(alive "$RUNDIR/slurmctld.pid" slurmctld); then
    log "slurmctld already running (pid $pid)"
else
    rm -f "$RUNDIR/slurmctld.pid"
    launch slurmctld /var/log/slurm/slurmctld.out /usr/sbin/slurmctld -D
    wait_pidfile slurmctld "$LAUNCHED" "$RUNDIR/slurmctld.pid"
fi
# wait until the controller answers before starting slurmd (it registers with it)
for _ in $(seq 1 $((TIMEOUT * 5))); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
scontrol ping 2>/dev/null | grep -q UP || die "slurmctld does not answer 'scontrol ping' after ${TIMEOUT}s"

if pid=$(alive "$RUNDIR/slurmd.pid" slurmd); then
    log "slurmd already running (pid $pid)"
else
    rm -f "$RUNDIR/slurmd.pid"
    launch slurmd /var/log/slurm/slurmd.out /usr/sbin/slurmd -D
    wait_pidfile slurmd "$LAUNCHED" "$RUNDIR/slurmd.pid"
fi

# ---------------------------------------------------------------- 6. wait for the node
log "waiting up to ${TIMEOUT}s for node $NODE to be idle in partition $PARTITION"
deadline=$(( $(date +%s) + TIMEOUT ))
resumed=0
state=""
while :; do
    state=$(sinfo -h -N -n "$NODE" -p "$PARTITION" -o '%T' 2>/dev/null | head -n1 || true)
    case "$state" in
        idle) break ;;
        mixed|allocated|completing)
            log "node is up but busy ($state): jobs from an earlier run are still there"; break ;;
        down*|drain*|fail*|inval*)
            if [ "$resumed" = 0 ]; then
                log "node state '$state' ($(sinfo -h -N -n "$NODE" -o '%E' 2>/dev/null)); trying State=RESUME"
                scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true
                resumed=1
            fi ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
        sinfo -N -l >&2 2>/dev/null || true
        die "node $NODE not idle after ${TIMEOUT}s (last state: '${state:-none}')"
    fi
    sleep 0.2
done

# 7. end-to-end probe: a batch job must actually run. (After slurmctld starts, its scheduler
#    thread first runs ~3 s later, so batch jobs submitted right away wait that long.)
if [ "${SLURM_SKIP_PROBE:-0}" = 1 ]; then
    log "probe skipped (SLURM_SKIP_PROBE=1)"
elif [ "$state" != idle ]; then
    log "probe skipped: node is busy ($state)"
else
    log "probe: sbatch --wrap true, waiting for it to complete"
    J=$(cd / && sbatch --parsable -J ci-probe -p "$PARTITION" -n1 -t 1 --mem=100M -o /dev/null --wrap true) \
        || die "sbatch of the probe job failed"
    deadline=$(( $(date +%s) + TIMEOUT ))
    while [ -n "$(squeue -h -j "$J" -o %i 2>/dev/null)" ]; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            squeue -j "$J" >&2 || true
            scancel "$J" 2>/dev/null || true
            die "probe job $J did not finish within ${TIMEOUT}s"
        fi
        sleep 0.1
    done
    st=$(scontrol show job "$J" 2>/dev/null | grep -o 'JobState=[A-Z_]*' || true)
    [ "$st" = JobState=COMPLETED ] || die "probe job $J ended with '${st:-unknown state}'"
    log "probe job $J completed"
fi

log "SLURM is up: $(sinfo --version)"
sinfo
log "SLURM ready after $(elapsed)s"
