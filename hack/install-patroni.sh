#!/usr/bin/env bash
# Installs Patroni, pinned, into a virtual environment of its own, for the integration
# test that restores under a real Patroni (tests/integration/test_restore_patroni.py).
# Patroni is not a dependency of the operator, so it stays out of the project's venv.
#
# Usage: hack/install-patroni.sh [--print]
#   --print   print the patroni program's path, installing nothing
#
# PostgreSQL runs as the postgres user when the tests run as root, and Patroni starts
# it, so as root the venv goes where that user can read it (/opt); otherwise into the
# tools cache. Safe to run again: a complete venv is left alone.
set -euo pipefail

PATRONI_VERSION=4.1.5
PYSYNCOBJ_VERSION=0.3.17
PSYCOPG2_VERSION=2.9.13

if [ "$(id -u)" -eq 0 ]; then
  base=/opt/pulsebase-tests
  # The venv links to its interpreter, which the postgres user must reach too: the
  # system's, not one under root's home.
  python=/usr/bin/python3
else
  base=${PULSEBASE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulsebase-operator}
  python=python3
fi
home="$base/patroni-$PATRONI_VERSION"
program="$home/bin/patroni"

if [ "${1:-}" = "--print" ]; then
  echo "$program"
  exit 0
fi
if [ -x "$program" ] && [ -e "$home/.complete" ]; then
  echo "patroni $PATRONI_VERSION present: $program"
  exit 0
fi

rm -rf "$home"
mkdir -p "$base"
"$python" -m venv "$home"
"$home/bin/pip" install --quiet --disable-pip-version-check \
  "patroni[raft]==$PATRONI_VERSION" "pysyncobj==$PYSYNCOBJ_VERSION" \
  "psycopg2-binary==$PSYCOPG2_VERSION"
chmod -R a+rX "$home"
touch "$home/.complete"
echo "patroni $PATRONI_VERSION installed: $program"
