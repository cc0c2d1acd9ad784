# Tidegate — the two commands a newcomer needs:
#   make demo   sync the example prod fleet to three local clusters, end to end
#   make test   every test, including those against real local Kubernetes clusters
#
# Everything else is for day-to-day work. Nothing here needs more than Rust,
# Go (to build the Kubernetes control plane from Go modules) and Debian packages
# that .ci/run installs.

SHELL := /bin/bash
CARGO ?= cargo
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/.cargo/bin

TIDEGATE := target/debug/tidegate
TESTKIT := target/debug/tidegate-testkit
# The local clusters' state (kubeconfig, certificates, logs); ignored by Git.
export TIDEGATE_CLUSTERS_STATE_DIR ?= $(CURDIR)/.tidegate/clusters

.PHONY: build test test-unit test-cluster test-deps lint fmt demo bench bench-fleet-path bench-controller bench-fleet bench-server bench-page fuzz cluster-bins template-tools oci-registry clusters-up clusters-down clean

## build: compile every crate and binary
build:
	$(CARGO) build --workspace

## test-unit: the fast tier, no Kubernetes needed (skips cluster:: tests)
test-unit:
	$(CARGO) test --workspace -- --skip cluster::

## test: everything; builds (or reuses) the control plane, starts 3 local clusters, stops them after
test: cluster-bins template-tools test-deps
	$(CARGO) build --workspace --all-targets
	@set -euo pipefail; \
	export TIDEGATE_CLUSTERS_STATE_DIR=$(CURDIR)/.tidegate/test-clusters; \
	trap '$(TESTKIT) down || true' EXIT; \
	kubeconfig=$$($(TESTKIT) up --ephemeral-ports); \
	TIDEGATE_TEST_KUBECONFIG=$$kubeconfig $(CARGO) test --workspace

## test-deps: the Debian packages the tests run besides Rust and Go: Chromium (the HTML report
## test), docker-registry (the Helm OCI tests), prometheus (the metric analysis tests run
## /usr/bin/prometheus themselves; the package's service plays no part) and postgresql (the audit
## tests start their own throw-away server from /usr/lib/postgresql/*/bin), installed with apt-get when this is Debian
## and we are root; otherwise stop and say how
test-deps:
	@missing=""; \
	if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null \
	    && ! command -v google-chrome >/dev/null && [ "$${TIDEGATE_SKIP_CHROMIUM:-}" != 1 ]; then \
	  missing="chromium"; fi; \
	if ! command -v docker-registry >/dev/null && [ ! -x /usr/bin/docker-registry ]; then \
	  missing="$$missing docker-registry"; fi; \
	if ! command -v prometheus >/dev/null && [ ! -x /usr/bin/prometheus ]; then \
	  missing="$$missing prometheus"; fi; \
	if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ -z "$${TIDEGATE_PG_BIN:-}" ]; then \
	  missing="$$missing postgresql"; fi; \
	if [ -z "$$missing" ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian packages the tests need:$$missing (apt-get)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
	  echo "make test needs:$$missing. On Debian/Ubuntu run 'sudo apt-get install$$missing'," \
	       "then run make test again (TIDEGATE_SKIP_CHROMIUM=1 skips the one Chromium test)" >&2; \
	  exit 1; \
	fi

## test-cluster: only the tests that need the local clusters (uses running ones if TIDEGATE_TEST_KUBECONFIG is set)
test-cluster:
	$(CARGO) test --workspace -- cluster::

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## demo: the main job end to end: 3 local clusters, validate, diff, sync prod, status, drift correction, audit
demo: build cluster-bins template-tools
	tests/demo.sh

## bench: criterion benchmarks (slow: release build)
bench:
	$(CARGO) bench --workspace

## bench-fleet-path: a one-object rollout, a no-op sync and diff across the local clusters × 200 objects
## (TIDEGATE_BENCH_KUBECONFIG: running clusters, e.g. `tidegate-testkit up --clusters 10`; TIDEGATE_BASELINE_BIN: a
## tidegate build of main to time in the same run)
bench-fleet-path: build cluster-bins
	$(CARGO) bench -p tidegate-tests --bench fleet_path

## bench-controller: the controller's targets on the local clusters (drift to correction, new commit to
## first apply, RSS and bytes per cached object, 5 minutes of steady state); debug build, not in make test
bench-controller: build cluster-bins
	$(CARGO) bench --profile dev -p tidegate-tests --bench controller

## bench-fleet: the fleet-scale benchmark (docs/scale.md): the controller process managing N local clusters
## (TIDEGATE_BENCH_CLUSTERS, default 10; shared etcd) × ~1,000 objects in 3 waves: initial and change rollouts,
## drift in every cluster, steady-state requests from the API servers' own metrics, RSS and CPU; measures the
## release build of `tidegate` (built here unless TIDEGATE_BENCH_BIN names another); not in make test
## (TIDEGATE_BENCH_KUBECONFIG: running clusters to use)
bench-fleet: build cluster-bins
	@if [ -z "$$TIDEGATE_BENCH_BIN" ]; then $(CARGO) build --release -p tidegate-cli; fi
	TIDEGATE_BENCH_BIN="$${TIDEGATE_BENCH_BIN:-$(CURDIR)/target/release/tidegate}" \
		$(CARGO) bench --profile dev -p tidegate-tests --bench fleet_scale

## bench-server: the HTTP server's targets on the local clusters (signed GitHub push → first apply in wave 1,
## /metrics scrape time and series with 3 clusters × 1,000 objects), with the debug build of tidegate
bench-server: build cluster-bins
	$(CARGO) bench --profile dev -p tidegate-tests --bench server

## bench-page: the fleet page's overview of 100 clusters x 20 apps rendered in-process (target < 50 ms, < 300 KB);
## a debug build like make test's, not in make test
bench-page:
	$(CARGO) bench --profile dev -p tidegate-tests --bench page

## fuzz: the parser fuzz targets (tests/it/fuzz.rs) with 20,000 cases each instead of make test's 256;
## property-based mutation fuzzing on stable Rust, not coverage-guided (see docs/limits.md)
fuzz:
	TIDEGATE_FUZZ_CASES=$${TIDEGATE_FUZZ_CASES:-20000} $(CARGO) test --release -p tidegate-tests --test it -- fuzz::

## cluster-bins: build or reuse kube-apiserver, controller-manager, scheduler, kubectl, etcd, kwok
cluster-bins:
	tests/cluster/build.sh

## template-tools: build or reuse helm and kustomize (pinned, from Go modules) for Helm and Kustomize apps
template-tools:
	tests/cluster/build-template-tools.sh

## oci-registry: Debian's docker-registry (the OCI registry the Helm OCI tests push charts to),
## installed by test-deps
oci-registry: test-deps

## clusters-up: start 3 local clusters (eks-us-east-1, aks-westeurope, gke-us-central1) for people
clusters-up: cluster-bins
	$(CARGO) build -p tidegate-testkit
	$(TESTKIT) up

## clusters-down: stop them
clusters-down:
	@if [ -x $(TESTKIT) ]; then $(TESTKIT) down; else $(CARGO) run -q -p tidegate-testkit -- down; fi

.PHONY: image image-binary image-dynamic image-build-and-run

## image-binary: the statically linked tidegate the image holds (glibc +crt-static, release), checked to be
## static and to run; target/static/x86_64-unknown-linux-gnu/release/tidegate
STATIC_TARGET := x86_64-unknown-linux-gnu
STATIC_BIN := target/static/$(STATIC_TARGET)/release/tidegate
image-binary:
	RUSTFLAGS="-C target-feature=+crt-static" OPENSSL_STATIC=1 \
	  $(CARGO) build --release --locked -p tidegate-cli --target $(STATIC_TARGET) --target-dir target/static
	@# A static-pie binary is ELF type DYN and `ldd` answers 0 for it ("statically linked"):
	@# what matters is that it needs no shared library (no NEEDED entry).
	@if readelf -d $(STATIC_BIN) | grep -q '(NEEDED)'; then echo "$(STATIC_BIN) is not statically linked:" >&2; \
	  readelf -d $(STATIC_BIN) | grep '(NEEDED)' >&2; exit 1; fi
	env -i $(STATIC_BIN) --version

## image: the container image (Containerfile, FROM scratch) with Debian's buildah: the static binary built
## on the host, vfs storage, chroot isolation (no daemon, no registry); then runs it. Not part of make test.
IMAGE ?= localhost/tidegate:$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
BUILDAH := buildah --storage-driver vfs
image: image-binary
	@command -v buildah >/dev/null || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah >/dev/null; \
	  else echo "make image needs buildah: sudo apt-get install buildah" >&2; exit 1; fi; }
	deploy/image-rootfs.sh $(STATIC_BIN)
	$(MAKE) --no-print-directory image-build-and-run IMAGE=$(IMAGE)

## image-dynamic: the same image from the host's dynamically linked tidegate (HOST_BIN, default the debug
## build) plus exactly the shared libraries ldd names, for machines where the static release build is too
## costly; built with buildah and run as uid 65532. Not part of make test.
HOST_BIN ?= target/debug/tidegate
image-dynamic:
	@test -x $(HOST_BIN) || { echo "no $(HOST_BIN): cargo build -p tidegate-cli first" >&2; exit 1; }
	@command -v buildah >/dev/null || { echo "make image-dynamic needs buildah: sudo apt-get install buildah" >&2; exit 1; }
	deploy/image-rootfs.sh --libs $(HOST_BIN)
	$(MAKE) --no-print-directory image-build-and-run IMAGE=$(IMAGE)-dynamic

# Builds the Containerfile's stage image-from-host from target/image-rootfs, then runs the image's binary as
# the image's user (deploy/image-check.sh: buildah run, and chroot into the root filesystem mounted read-only).
image-build-and-run:
	$(BUILDAH) bud --isolation chroot --target image-from-host -f Containerfile -t $(IMAGE) .
	BUILDAH="$(BUILDAH)" deploy/image-check.sh $(IMAGE)

clean:
	$(CARGO) clean
