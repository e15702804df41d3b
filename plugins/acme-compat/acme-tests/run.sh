#!/bin/sh
# ACME's public-behaviour tests (esi-acme 2026.6.2, adapted by adapt.py) against
# acme-compat, in a scratch virtual environment. Needs the package index (esi-acme's
# wheel, scipy, ipython, pytest). Usage: run.sh [WORK_DIR] [--keep-differences]
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
WORK=${1:-$(mktemp -d /tmp/acme-tests.XXXXXX)}
KEEP=${2:-}
mkdir -p "$WORK/run" "$WORK/home" "$WORK/bin"

if [ ! -x "$WORK/venv/bin/python" ]; then
    python3 -m venv "$WORK/venv"
    # ACME's test extras: scipy, ipython (test_cancel runs its script under both)
    "$WORK/venv/bin/pip" install -q -e "$ROOT" -e "$ROOT/plugins/acme-esi" \
        -e "$ROOT/plugins/acme-compat" scipy ipython pytest pytest-timeout
fi
"$WORK/venv/bin/pip" download -q --no-deps esi-acme==2026.6.2 -d "$WORK/dl"
rm -rf "$WORK/acme-src" "$WORK/tests"
"$WORK/venv/bin/python" -m zipfile -e "$WORK/dl/esi_acme-2026.6.2-py3-none-any.whl" \
    "$WORK/acme-src"
"$WORK/venv/bin/python" "$HERE/adapt.py" "$WORK/acme-src/acme/tests" "$WORK/tests" $KEEP

# No SLURM command on PATH: ACME's tests take their off-SLURM branches (and nothing is
# submitted to a SLURM that may run here); stdbuf for test_cancel.
ln -sf "$(command -v stdbuf)" "$WORK/bin/stdbuf"
# test_memest is left out: it calls ACME's private memory profiler and allocates 2-4 GB
cd "$WORK/run"
HOME="$WORK/home" PATH="$WORK/venv/bin:$WORK/bin" "$WORK/venv/bin/python" -m pytest \
    "$WORK/tests" --rootdir "$WORK/tests" --timeout 1800 -v -k "not test_memest"
