#!/usr/bin/env bash
# Builds the local control plane's binaries from the Go module proxy into a versioned cache
# outside the repository, and reuses them when they are already there.
#
#   testenv/build-binaries.sh            build what is missing, print the bin directory last
#   AGENTIC_TESTENV_CACHE=/path ...      cache root (default ~/.cache/agentic-operator)
#
# Versions are pinned by the wrapper modules in testenv/gomod/*/go.mod.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${AGENTIC_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agentic-operator}

log() { printf '[testenv-build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

version_of() { # module path, go.mod file -> version required there
  awk -v m="$1" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$2"
}
k8s_version=$(version_of k8s.io/kubernetes "$here/gomod/kubernetes/go.mod")
etcd_version=$(version_of go.etcd.io/etcd/server/v3 "$here/gomod/etcd/go.mod")
kwok_version=$(version_of sigs.k8s.io/kwok "$here/gomod/kwok/go.mod")

bin_dir="$cache_root/bin/k8s-$k8s_version-etcd-$etcd_version-kwok-$kwok_version"
mkdir -p "$bin_dir"

all_cached=true
for b in etcd kwok kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  [ -x "$bin_dir/$b" ] || all_cached=false
done
if ! $all_cached && ! command -v go >/dev/null 2>&1; then
  log "error: Go is not installed. Building etcd, kube-apiserver, kube-controller-manager,"
  log "kube-scheduler, kubectl and kwok needs Go >= 1.26 and access to a Go module proxy"
  log "(GOPROXY=$(printf %s "${GOPROXY:-https://proxy.golang.org}")). Alternatively point"
  log "KUBEBUILDER_ASSETS at a directory holding those binaries."
  exit 1
fi

export CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath -buildvcs=false"

build() { # module dir, package, output name, extra ldflags
  local dir=$1 pkg=$2 out=$3 ldflags=${4:-}
  if [ -x "$bin_dir/$out" ]; then
    log "$out: cached ($bin_dir/$out)"
    return
  fi
  log "$out: building $pkg (a cold build takes minutes; progress below)"
  local start=$SECONDS
  if ! (cd "$here/gomod/$dir" && go mod download && \
        go build -ldflags "-s -w $ldflags" -o "$bin_dir/.$out.tmp" "$pkg"); then
    log "error: building $out failed. Check that the Go module proxy is reachable"
    log "(go env GOPROXY: $(go env GOPROXY)) and that Go is >= 1.26 (have: $(go version))."
    rm -f "$bin_dir/.$out.tmp"
    exit 1
  fi
  mv "$bin_dir/.$out.tmp" "$bin_dir/$out"
  log "$out: built in $((SECONDS - start)) s"
}

minor=${k8s_version#v1.}; minor=${minor%%.*}
k8s_ldflags=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  k8s_ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done

build etcd go.etcd.io/etcd/server/v3 etcd
build kwok sigs.k8s.io/kwok/cmd/kwok kwok
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  build kubernetes "k8s.io/kubernetes/cmd/$cmd" "$cmd" "$k8s_ldflags"
done
log "all binaries ready; disk used by the bin cache: $(du -sh "$bin_dir" | cut -f1)"
echo "$bin_dir"
