#!/usr/bin/env bash
# start-all.sh - install and start the batch schedulers the cluster tests run against:
# single-node SLURM (slurm.sh), Son of Grid Engine (sge.sh) and the PBS shim
# (pbs-shim.sh: Slurm's Torque wrappers over that SLURM). Needs root and a Debian 12
# machine; safe to run again (already-running schedulers are left as they are).
#
#   .ci/schedulers/start-all.sh [slurm] [sge] [pbs]      (default: all three)
#
# Prints one status line per scheduler; the full output of each script goes to
# ${ACME_CI_LOGS:-/tmp/acme-ci}/start-<name>.log; $ACME_CI_LOGS/schedulers-up lists the
# schedulers that are up (nox's test session then requires their tests). Exit status: the
# number of schedulers that failed to start (0 = all up). Stop them with stop-sge.sh and
# stop-slurm.sh (which also ends what the PBS shim uses).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LOGS=${ACME_CI_LOGS:-/tmp/acme-ci}
mkdir -p "$LOGS"
want=("$@")
[ ${#want[@]} -eq 0 ] && want=(slurm sge pbs)

failed=0
up=()
rm -f "$LOGS/schedulers-up"
for name in "${want[@]}"; do
    case "$name" in
        slurm) script=slurm.sh ;;
        sge) script=sge.sh ;;
        pbs) script=pbs-shim.sh ;;
        *) echo "start-all: unknown scheduler '$name' (slurm, sge, pbs)" >&2; exit 64 ;;
    esac
    t0=$(date +%s.%N)
    if bash "$HERE/$script" >"$LOGS/start-$name.log" 2>&1; then
        status=up
        up+=("$name")
    else
        status=FAILED
        failed=$((failed + 1))
    fi
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
    case "$name:$status" in
        slurm:up) detail="partitions $(sinfo -h -o %P 2>/dev/null | tr '\n' ' ')" ;;
        sge:up) detail="queues $(qconf -sql 2>/dev/null | tr '\n' ' ')" ;;
        pbs:up) detail="wrappers in /opt/slurm-torque/bin (PATH=/opt/slurm-torque/bin:\$PATH for PBS only)" ;;
        *) detail="see $LOGS/start-$name.log: $(grep -m1 ERROR "$LOGS/start-$name.log" 2>/dev/null)" ;;
    esac
    printf 'scheduler %-5s %-6s in %5ss  %s\n' "$name" "$status" "$secs" "$detail"
done
# the test session reads which schedulers are up (their tests are then required)
printf '%s\n' "${up[@]}" >"$LOGS/schedulers-up"
exit "$failed"
