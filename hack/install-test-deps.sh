#!/usr/bin/env bash
# Installs the Debian packages the tests run as programs, and only those missing.
# Safe to run again: with everything present it installs nothing and needs no root.
#
# Usage: hack/install-test-deps.sh
#
# Add a package as "package:command", the command proving it is installed.
set -euo pipefail

packages=(
  "lua5.4:lua5.4"   # runs docs/argocd/health.lua in tests/unit/argocd and the e2e suite
  "prometheus:promtool"   # checks and unit-tests the alert rules in tests/unit/alerts
)

missing=()
for entry in "${packages[@]}"; do
  package=${entry%%:*}
  command=${entry#*:}
  if ! command -v "$command" >/dev/null 2>&1; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "test dependencies present: ${packages[*]%%:*}"
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
