#!/usr/bin/env bash
# Installs the Debian packages the tests run as programs, and only those missing.
# Safe to run again: with everything present it installs nothing and needs no root.
#
# Usage: hack/install-test-deps.sh
#
# Add a package as "package:command", the command proving it is installed: a name looked
# up on PATH, or an absolute path for programs Debian keeps off PATH.
set -euo pipefail

packages=(
  "lua5.4:lua5.4"   # runs docs/argocd/health.lua in tests/unit/argocd and the e2e suite
  "prometheus:promtool"   # checks and unit-tests the alert rules in tests/unit/alerts
  # tests/integration: a primary, a streaming replica (pg_basebackup) and pg_stat_statements
  "postgresql-15:/usr/lib/postgresql/15/bin/postgres"
  "postgresql-15:/usr/lib/postgresql/15/bin/pg_basebackup"
  # tests/integration: a single node and six-node clusters; redis-cli forms the clusters
  "redis-server:redis-server"
  "redis-tools:redis-cli"
  # tests/integration: physical backups, WAL archiving and point-in-time restores
  "pgbackrest:pgbackrest"
  # nginx -t on the rendered edge cache config in tests/unit/render, and TLS in front of
  # moto's S3 server in tests/integration (pgBackRest's S3 driver speaks only TLS)
  "nginx:/usr/sbin/nginx"
)

present() {
  if [[ $1 == /* ]]; then
    [ -x "$1" ]
  else
    command -v "$1" >/dev/null 2>&1
  fi
}

missing=()
for entry in "${packages[@]}"; do
  package=${entry%%:*}
  command=${entry#*:}
  if ! present "$command" && [[ " ${missing[*]} " != *" $package "* ]]; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "test dependencies present: $(printf '%s\n' "${packages[@]%%:*}" | sort -u | xargs)"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "run this script as root, or: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing packages: ${missing[*]}; no apt-get here, install them another way" >&2
  exit 1
fi

echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
