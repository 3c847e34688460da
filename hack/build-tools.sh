#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl), KWOK and Helm from pinned Go modules into a cache outside
# the checkout, one folder per version, and skips whatever is already there.
# Helm has a folder of its own (bin/helm-<v>/), so bumping it never rebuilds the
# control plane, and bumping Kubernetes never rebuilds Helm.
#
# Usage: hack/build-tools.sh                 build what is missing, print the bin folder
#        hack/build-tools.sh --print         print the control plane's bin folder only
#        hack/build-tools.sh --print-helm    print the path of the helm binary only
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
tools="$here/tools"

# The versions are read from the wrapper modules, so go.mod is the one place to bump them.
mod_version() { awk -v m="$2" '($1 == m && $2 ~ /^v/) {print $2; exit} ($1 == "require" && $2 == m) {print $3; exit}' "$tools/$1/go.mod"; }
k8s_version=$(mod_version kubernetes k8s.io/kubernetes)
etcd_version=$(mod_version etcd go.etcd.io/etcd/server/v3)
kwok_version=$(mod_version kwok sigs.k8s.io/kwok)
helm_version=$(mod_version helm helm.sh/helm/v3)

cache=${PULSEBASE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulsebase-operator}
bin="$cache/bin/k8s-$k8s_version-etcd-$etcd_version-kwok-$kwok_version"
helm_bin="$cache/bin/helm-$helm_version"

case "${1:-}" in
  --print) echo "$bin"; exit 0 ;;
  --print-helm) echo "$helm_bin/helm"; exit 0 ;;
esac

mkdir -p "$bin" "$helm_bin"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

build() {  # build NAME... : skip when every named binary exists
  local missing=0
  for name in "$@"; do [ -x "$bin/$name" ] || missing=1; done
  [ $missing = 0 ]
}

if ! build kube-apiserver kube-controller-manager kube-scheduler kubectl; then
  start=$(date +%s)
  minor=$(echo "$k8s_version" | cut -d. -f2)
  # Unstamped binaries report v0.0.0, which breaks kubeVersion checks in Helm charts.
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "building Kubernetes $k8s_version (a cold build takes a long time on 2 cores)" >&2
  (cd "$tools/kubernetes" && go build -trimpath -tags=selinux,notest -ldflags="$ldflags" \
    -o "$bin/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
  echo "built Kubernetes $k8s_version in $(( $(date +%s) - start ))s" >&2
fi

if ! build etcd; then
  start=$(date +%s)
  (cd "$tools/etcd" && go build -trimpath -ldflags="-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
  echo "built etcd $etcd_version in $(( $(date +%s) - start ))s" >&2
fi

if ! build kwok; then
  start=$(date +%s)
  (cd "$tools/kwok" && go build -trimpath -ldflags="-s -w" -o "$bin/kwok" sigs.k8s.io/kwok/cmd/kwok)
  echo "built kwok $kwok_version in $(( $(date +%s) - start ))s" >&2
fi

if [ ! -x "$helm_bin/helm" ]; then
  start=$(date +%s)
  # As Helm's own Makefile does: the version, and the Kubernetes version that
  # `helm template` and `helm lint` assume (from client-go v0.N), which would be 1.20
  # unstamped and fail charts with a newer kubeVersion.
  client_minor=$(mod_version helm k8s.io/client-go | cut -d. -f2)
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$client_minor"
  done
  (cd "$tools/helm" && go build -trimpath -ldflags="$ldflags" -o "$helm_bin/helm" \
    helm.sh/helm/v3/cmd/helm)
  echo "built helm $helm_version in $(( $(date +%s) - start ))s" >&2
fi

echo "$bin"
