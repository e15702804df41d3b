#!/usr/bin/env bash
# start-schedulers.sh - install and start the batch schedulers the cluster tests run against:
# single-node SLURM (start-slurm.sh), Son of Grid Engine (start-sge.sh) and the PBS shim
# (start-pbs-shim.sh: Slurm's Torque wrappers over that SLURM). Needs root and a Debian 12
# machine; safe to run again (already-running schedulers are left as they are).
#
#   .ci/start-schedulers.sh [slurm] [sge] [pbs]      (default: all three)
#
# Prints one status line per scheduler; the full output of each script goes to
# ${ACME_CI_LOGS:-/tmp/acme-ci}/start-<name>.log. Exit status: the number of schedulers that
# failed to start (0 = all up). Stop them with stop-sge.sh and stop-slurm.sh (which also ends
# what the PBS shim uses).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LOGS=${ACME_CI_LOGS:-/tmp/acme-ci}
mkdir -p "$LOGS"
want=("$@")
[ ${#want[@]} -eq 0 ] && want=(slurm sge pbs)

failed=0
for name in "${want[@]}"; do
    case "$name" in
        slurm) script=start-slurm.sh ;;
        sge) script=start-sge.sh ;;
        pbs) script=start-pbs-shim.sh ;;
        *) echo "start-schedulers: unknown scheduler '$name' (slurm, sge, pbs)" >&2; exit 64 ;;
    esac
    t0=$(date +%s.%N)
    if bash "$HERE/$script" >"$LOGS/start-$name.log" 2>&1; then
        status=up
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
exit "$failed"
