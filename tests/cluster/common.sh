# Shared by build.sh and build-template-tools.sh (sourced, not run): where the
# cache is, the arguments both take, Go and its flags, logging, and reading a
# wrapper module's pinned versions. The sourcing script sets `script` (its
# name for messages) and `help_lines` (the range of its header to print).

here="$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)"
cache="${TIDEGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tidegate}"
force=0
print_dirs=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --print-dirs) print_dirs=1 ;;
    -h|--help) sed -n "${help_lines}p" "$0"; exit 0 ;;
    *) echo "$script: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

command -v go >/dev/null 2>&1 || PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null 2>&1 || { echo "$script: go not found (install Go >= 1.26)" >&2; exit 1; }

# Static, reproducible binaries; never touch go.mod/go.sum while building.
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -mod=readonly -trimpath -p=${TIDEGATE_BUILD_JOBS:-2}"

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# The version a wrapper module requires of a module, read from its go.mod.
mod_version() { # dir module
  (cd "$here/$1" && go list -m -f '{{.Version}}' "$2")
}
