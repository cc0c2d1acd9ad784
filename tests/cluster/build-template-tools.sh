#!/usr/bin/env bash
# Build (or reuse) the template tools Tidegate runs for Helm and Kustomize apps:
#   helm       (helm.sh/helm/v3)
#   kustomize  (sigs.k8s.io/kustomize/kustomize/v5)
#
# Built from Go modules exactly like the control plane (tests/cluster/build.sh):
# one wrapper module per tool next to this script pins its version, and the
# binaries go to a cache outside the repository, keyed by tool and version:
#
#   $TIDEGATE_CACHE_DIR/helm/<version>/bin/helm
#   $TIDEGATE_CACHE_DIR/kustomize/<version>/bin/kustomize
#
# where TIDEGATE_CACHE_DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/tidegate.
# tidegate finds them there (or on PATH). Only missing binaries are built;
# `--force` rebuilds them. A cold build takes a few minutes on 2 cores.
#
# Usage: tests/cluster/build-template-tools.sh [--force] [--print-dirs]
set -euo pipefail

script=build-template-tools.sh
help_lines=2,17
# shellcheck source=tests/cluster/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

helm_version="$(mod_version helm helm.sh/helm/v3)"
kustomize_version="$(mod_version kustomize sigs.k8s.io/kustomize/kustomize/v5)"
kustomize_api_version="$(mod_version kustomize sigs.k8s.io/kustomize/api)"
# Helm's default .Capabilities.KubeVersion is the client-go it was built with.
client_go_version="$(mod_version helm k8s.io/client-go)"
helm_bin="$cache/helm/$helm_version/bin"
kustomize_bin="$cache/kustomize/$kustomize_version/bin"

if [ "$print_dirs" = 1 ]; then
  printf '%s\n%s\n' "$helm_bin" "$kustomize_bin"
  exit 0
fi

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
  (cd "$here/$dir" && go build -ldflags "-s -w $ldflags" -o "$out/.$name.tmp.$$" "$pkg")
  mv -f "$out/.$name.tmp.$$" "$out/$name"
  log "$name: built in $((SECONDS - start))s -> $out/$name"
}

# Kubernetes 1.x from client-go v0.x: the stamps Helm's own Makefile sets.
k8s_minor="${client_go_version#v0.}"; k8s_minor="${k8s_minor%%.*}"
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$k8s_minor"
done
kustomize_ldflags="-X sigs.k8s.io/kustomize/api/provenance.version=$kustomize_version"

log "cache: $cache (helm $helm_version, kustomize $kustomize_version with api $kustomize_api_version)"
build helm "$helm_bin" helm.sh/helm/v3/cmd/helm helm "$helm_ldflags"
build kustomize "$kustomize_bin" sigs.k8s.io/kustomize/kustomize/v5 kustomize "$kustomize_ldflags"
"$helm_bin/helm" version --short >&2
"$kustomize_bin/kustomize" version >&2
