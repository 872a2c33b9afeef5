#!/usr/bin/env bash
# Drop-in replacement for devstack-gate's devstack-vm-gate-wrap.sh.
#
# An existing Jenkins job that ran
#     ./safe-devstack-vm-gate-wrap.sh
# switches to dsvm by running this script instead (copy it, or call it from a dsvm checkout).
# It checks that dsvm is installed and execs `dsvm run` with the environment untouched:
# ZUUL_*, WORKSPACE, PROJECTS, DEVSTACK_GATE_*, BRANCH_OVERRIDE, hooks... are read by dsvm.
# Extra arguments are passed to `dsvm run` (e.g. --plan).
set -u

DSVM=${DSVM:-dsvm}

if ! command -v "$DSVM" >/dev/null 2>&1; then
    cat >&2 <<'MSG'
devstack-vm-gate-wrap.sh: dsvm is not installed (no 'dsvm' on PATH).
  install it on the node image, e.g.:
      python3 -m venv /opt/dsvm && /opt/dsvm/bin/pip install /path/to/dsvm
      ln -s /opt/dsvm/bin/dsvm /usr/local/bin/dsvm
  or set DSVM=/path/to/dsvm for this job.
MSG
    exit 2
fi

exec "$DSVM" run "$@"
