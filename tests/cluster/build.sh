#!/usr/bin/env bash
# Build (or reuse) the binaries of Tidegate's local test clusters:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  (k8s.io/kubernetes)
#   etcd                                                              (go.etcd.io/etcd/server/v3)
#   kwok                                                              (sigs.k8s.io/kwok)
#
# Versions come from the wrapper modules next to this script (one Go module per
# tool, so minimal version selection never mixes their dependencies). Binaries
# go to a cache outside the repository, keyed by tool and version:
#
#   $TIDEGATE_CACHE_DIR/k8s/<version>/bin/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl}
#   $TIDEGATE_CACHE_DIR/etcd/<version>/bin/etcd
#   $TIDEGATE_CACHE_DIR/kwok/<version>/bin/kwok
#
# where TIDEGATE_CACHE_DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/tidegate.
# Only missing binaries are built; `--force` rebuilds everything. Needs nothing
# but Go and the Go module proxy. A cold build takes tens of minutes on 2 cores.
#
# Usage: tests/cluster/build.sh [--force] [--print-dirs]
set -euo pipefail

script=build.sh
help_lines=2,19
# shellcheck source=tests/cluster/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

k8s_version="$(mod_version kubernetes k8s.io/kubernetes)"
etcd_version="$(mod_version etcd go.etcd.io/etcd/server/v3)"
kwok_version="$(mod_version kwok sigs.k8s.io/kwok)"
k8s_bin="$cache/k8s/$k8s_version/bin"
etcd_bin="$cache/etcd/$etcd_version/bin"
kwok_bin="$cache/kwok/$kwok_version/bin"

if [ "$print_dirs" = 1 ]; then
  printf '%s\n%s\n%s\n' "$k8s_bin" "$etcd_bin" "$kwok_bin"
  exit 0
fi

build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

# build <module dir> <out dir> <package> <name> [ldflags]
build() {
  local dir="$1" out="$2" pkg="$3" name="$4" ldflags="${5:-}"
  if [ "$force" = 0 ] && [ -x "$out/$name" ]; then
    log "$name: cached at $out/$name"
    return 0
  fi
  mkdir -p "$out"
  log "$name: building $pkg"
  local start=$SECONDS
  # Build to a temporary name first so an interrupted build never leaves a
  # half-written binary that a later run would take as cached.
  (cd "$here/$dir" && go build -ldflags "-s -w $ldflags" -o "$out/.$name.tmp.$$" "$pkg")
  mv -f "$out/.$name.tmp.$$" "$out/$name"
  log "$name: built in $((SECONDS - start))s -> $out/$name"
}

# Version stamps, as the Kubernetes release build sets them, so that
# `--version` reports the real release.
k8s_major="${k8s_version#v}"; k8s_major="${k8s_major%%.*}"
k8s_minor="${k8s_version#v*.}"; k8s_minor="${k8s_minor%%.*}"
k8s_ldflags=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=$k8s_major -X $p.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $p.gitCommit=unknown -X $p.gitTreeState=clean -X $p.buildDate=$build_date"
done

log "cache: $cache (kubernetes $k8s_version, etcd $etcd_version, kwok $kwok_version)"
log "go: $(go version), GOFLAGS=$GOFLAGS"
total=$SECONDS
# kube-apiserver first: it compiles most of what the others share.
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  build kubernetes "$k8s_bin" "k8s.io/kubernetes/cmd/$cmd" "$cmd" "$k8s_ldflags"
done
build etcd "$etcd_bin" go.etcd.io/etcd/server/v3 etcd
build kwok "$kwok_bin" sigs.k8s.io/kwok/cmd/kwok kwok
log "done in $((SECONDS - total))s"
"$k8s_bin/kube-apiserver" --version >&2
